"""``drift validate`` on generated YAML: it says valid (exit 0) or lists errors (exit 2), nothing else.

Three sources of input: arbitrary YAML documents built from the config's own
vocabulary (so validation goes deep), a valid config with YAML-significant
characters spliced in, and raw bytes. No traceback, no exit 1, no hang.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drift.cli import main

VALID = """\
version: 1
kafka:
  bootstrap: ${DRIFT_FUZZ_BOOTSTRAP:-127.0.0.1:9092}
models:
  - name: credit-risk
    cohort: [model_version, tenant]
    window: {size: 5m, allowed_lateness: 1m}
    features:
      age: {type: numeric, range: [18, 120]}
      country: {type: categorical}
    detectors:
      - psi: {features: "*", bins: 10, warn: 0.1, alert: 0.25}
      - quality: {null_rate: {alert: 0.05}}
    policy: {consecutive_windows: 2, cooldown: 1h}
routing:
  - when: {impact: high}
    action: human_review
tickets:
  store: sqlite:///./drift-tickets.db
metrics: {port: 0}
"""

KEYS = ["version", "kafka", "models", "name", "features", "type", "numeric", "categorical", "range", "min",
        "max", "detectors", "psi", "bins", "quality", "window", "size", "tickets", "store", "webhook", "url",
        "token", "sasl_password", "metrics", "port", "routing", "action", "when", "file", "reference", "parquet"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(),
    st.sampled_from(KEYS + ["${DRIFT_FUZZ_UNSET}", "${DRIFT_FUZZ_SET}", "${X:-[1, {a: b}]}", "5m", "1h", "*",
                            "postgresql://u:p@h/d", "https://h/?token=t", "2026-02-31", "0x1F", "1:30"]),
    st.text(max_size=20),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=40,
)
SPLICE = st.sampled_from(["&a ", "*a", "[", "]", "{", "}", ": ", "- ", "!!", "!!python/name:os.system ", "\t",
                          "\x00", "#", "'", '"', "? ", "<<: *a", "|\n", "%YAML 1.1\n", "---\n", "9" * 5000,
                          "\xe9", "${", "}\n"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def validate(folder: Path, data: bytes) -> None:
    path = folder / "drift.yaml"
    path.write_bytes(data)
    result = CliRunner().invoke(main, ["validate", str(path)], env={"DRIFT_FUZZ_SET": "42"})
    assert result.exit_code in (0, 2), (data[:500], result.output, result.exception)
    if result.exit_code == 2:
        assert result.output.rstrip().endswith(f"error(s) in {path}"), result.output
    assert "Traceback" not in result.output


FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(document=st.one_of(DOCUMENTS, st.fixed_dictionaries({"version": st.just(1), "models": DOCUMENTS})))
def test_generated_documents(folder: Path, document: object) -> None:
    validate(folder, yaml.safe_dump(document, allow_unicode=True).encode("utf-8"))


@FUZZ
@given(cuts=st.lists(st.tuples(st.integers(0, len(VALID)), SPLICE), min_size=1, max_size=4))
def test_valid_config_with_splices(folder: Path, cuts: list[tuple[int, str]]) -> None:
    text = VALID
    for at, piece in sorted(cuts, reverse=True):
        text = text[:at] + piece + text[at:]
    validate(folder, text.encode("utf-8", errors="surrogatepass") if "\xe9" not in text
             else text.encode("latin-1", errors="replace"))


@FUZZ
@given(data=st.binary(max_size=300))
def test_raw_bytes(folder: Path, data: bytes) -> None:
    validate(folder, data)


def test_the_base_config_is_valid(folder: Path) -> None:
    path = folder / "base.yaml"
    path.write_text(VALID, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
