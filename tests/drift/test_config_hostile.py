"""YAML that hurts: alias bombs, deep nesting, huge integers, bad bytes.

Each one is a config error (file, line, YAML path), found fast and in little
memory, never a traceback, a hang or a ``MemoryError``.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from drift.config import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, load_config, parse_config
from drift.errors import ConfigError

VALID_TAIL = "models:\n  - name: m\n    features: {x: {type: numeric}}\n"


def billion_laughs(levels: int = 9, fanout: int = 9) -> str:
    """The classic: ``levels`` anchors, each a list of ``fanout`` aliases of the one before."""
    lines = ["version: 1", 'a0: &a0 [' + ", ".join(['"lol"'] * fanout) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]")
    lines.append(f"models: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [m.replace(str(path.parent) + "/", "") for m in caught.value.messages]


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "drift.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_billion_laughs_fails_fast_in_little_memory(tmp_path: Path) -> None:
    text = billion_laughs()
    assert len(text) < 700  # the size of the file in the report
    path = write(tmp_path, text)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        messages = errors(path)
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # Before: over 50 s and 2.2 GB, then a MemoryError traceback.
    assert elapsed < 0.5, elapsed
    assert peak < 20 * 1024 * 1024, peak
    assert messages == [
        f"drift.yaml:7:15 a5: the aliases expand to more than {MAX_NODES:,} nodes; a config needs far fewer "
        "(an alias counts as a copy of what it names)"
    ]


def test_aliases_that_stay_small_still_work(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        version: 1
        models:
          - name: a
            features: {x: &numeric {type: numeric}, y: *numeric}
          - name: b
            features: {x: *numeric}
        """.replace("        ", "")))
    assert [sorted(m.features) for m in config.models] == [["x", "y"], ["x"]]


def test_merge_keys_count_like_aliases(tmp_path: Path) -> None:
    lines = ["version: 1", "a0: &a0 {k0: 1, k1: 2, k2: 3, k3: 4, k4: 5, k5: 6, k6: 7, k7: 8, k8: 9}"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"{{<<: *a{i - 1}}}"] * 9) + "]")
    messages = errors(write(tmp_path, "\n".join(lines) + "\n"))
    assert len(messages) == 1 and f"expand to more than {MAX_NODES:,} nodes" in messages[0]


def test_recursive_alias(tmp_path: Path) -> None:
    assert errors(write(tmp_path, "version: 1\nmodels: &a [*a]\n")) == [
        "drift.yaml:2:13 models: an alias refers to a node that contains it; YAML anchors must not be recursive"
    ]


@pytest.mark.parametrize(
    ("text", "expected_start"),
    [
        pytest.param("version: 1\nmodels: " + "[" * 5000 + "]" * 5000 + "\n",
                     "drift.yaml:2:40 models" + "[0]" * (MAX_DEPTH - 1), id="flow-sequence-5000"),
        pytest.param("version: 1\nmodels: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
                     "drift.yaml:2:130 models" + ".a" * (MAX_DEPTH - 2) + ":", id="flow-mapping-3000"),
        pytest.param("version: 1\nmodels:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
                     "drift.yaml:", id="block-sequence-200"),
    ],
)
def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path: Path, text: str, expected_start: str) -> None:
    [message] = errors(write(tmp_path, text))
    assert message.startswith(expected_start)
    assert message.endswith(f"nests deeper than {MAX_DEPTH} levels; a config needs far fewer")


def test_nesting_a_real_config_needs_is_fine(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
version: 1
models:
  - name: m
    features: {x: {type: numeric, range: [0, 1]}}
    detectors:
      - skew: {method: jensen_shannon, alert: 0.1, values: {feature_set: s, key: entity_id, features: [x]}}
"""))
    assert config.models[0].features["x"].range == (0.0, 1.0)


def test_huge_integer_names_its_path(tmp_path: Path) -> None:
    text = "version: 1\nmetrics:\n  port: " + "9" * 5001 + "\n" + VALID_TAIL
    assert errors(write(tmp_path, text)) == [
        "drift.yaml:3:9 metrics.port: an integer of 5,001 digits is too long (at most 100)"
    ]


def test_huge_integer_in_a_list(tmp_path: Path) -> None:
    text = ("version: 1\nmodels:\n  - name: m\n    features:\n      x: {type: numeric, range: [0, "
            + "1" * 200 + "]}\n")
    assert errors(write(tmp_path, text)) == [
        "drift.yaml:5:37 models[0].features.x.range[1]: an integer of 200 digits is too long (at most 100)"
    ]


def test_not_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n# café\n".encode("latin-1") + VALID_TAIL.encode())
    assert errors(path) == [
        "drift.yaml:2:6 is not UTF-8: byte 0xe9 at offset 16 cannot be decoded; save the file as UTF-8"
    ]


def test_utf16_file_is_not_utf8(tmp_path: Path) -> None:
    [message] = errors(write(tmp_path, ("version: 1\n" + VALID_TAIL).encode("utf-16")))
    assert message.startswith("drift.yaml:1:1 is not UTF-8: byte 0xff at offset 0")


def test_utf8_bom_is_fine(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, b"\xef\xbb\xbf" + ("version: 1\n" + VALID_TAIL).encode())).version == 1


def test_control_character_names_line_and_column(tmp_path: Path) -> None:
    assert errors(write(tmp_path, "version: 1\nmodels: [a\x00]\n")) == [
        "drift.yaml:2:11 is not valid YAML: the control character #x0000 is not allowed in a YAML file"
    ]


def test_impossible_timestamp_is_an_error_with_its_path(tmp_path: Path) -> None:
    text = "version: 1\n" + VALID_TAIL + "routing:\n  - when: {model: 2026-02-31}\n    action: ticket\n"
    assert errors(write(tmp_path, text)) == [
        "drift.yaml:6:19 routing[0].when.model: is not valid YAML: day is out of range for month"
    ]


@pytest.mark.parametrize(
    ("key", "label"),
    [("~", "[None]: a key must be text; YAML read this one as NoneType None"),
     ("true", "[True]: a key must be text; YAML read this one as bool True"),
     ("1.5", "[1.5]: a key must be text; YAML read this one as float 1.5")],
    ids=["null", "bool", "float"],
)
def test_keys_that_are_not_text(tmp_path: Path, key: str, label: str) -> None:
    assert errors(write(tmp_path, f"version: 1\n{key}: x\n" + VALID_TAIL)) == [
        f"drift.yaml:2:{len(key) + 3} {label} (quote it)"
    ]


def test_integer_key_inside_a_model(tmp_path: Path) -> None:
    text = "version: 1\nmodels:\n  - name: m\n    features: {3: {type: numeric}}\n"
    assert errors(write(tmp_path, text)) == [
        "drift.yaml:4:19 models[0].features[3]: a key must be text; YAML read this one as int 3 (quote it)",
    ]


def test_a_long_received_value_is_shortened(tmp_path: Path) -> None:
    text = "version: 1\nmetrics:\n  host: [" + ", ".join(["x" * 50] * 2000) + "]\n" + VALID_TAIL
    [message] = errors(write(tmp_path, text))
    assert message.startswith("drift.yaml:3:9 metrics.host: must be a string; got ['xxxx")
    assert message.endswith(" characters)") and len(message) < 300


def test_oversized_file(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n" + VALID_TAIL + "#" * MAX_FILE_BYTES + "\n")
    assert errors(path) == ["drift.yaml: the config file is larger than 4 MiB"]


def test_parse_config_has_the_same_bounds() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(billion_laughs(), "drift.yaml")
    assert "expand to more than" in caught.value.messages[0]
