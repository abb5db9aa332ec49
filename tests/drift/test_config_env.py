"""``${VAR}`` values are typed like the YAML scalar they replace, and can never be YAML structure;
feature bounds are numbers (NaN never, infinities only as open ends)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from drift.config import load_config, parse_config, yaml_scalar
from drift.errors import ConfigError

TAIL = "models:\n  - name: m\n    features: {x: {type: numeric}}\n"


def load(text: str, environ: dict[str, str]) -> object:
    return parse_config(text, "drift.yaml", environ=environ)


def errors(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "drift.yaml", environ=environ or {})
    return caught.value.messages


def test_integer_field_from_the_environment() -> None:
    # Before: "metrics.port: must be an integer; got '9464'".
    config = parse_config("version: 1\nmetrics:\n  port: ${PORT}\n" + TAIL, environ={"PORT": "9464"})
    assert config.metrics.port == 9464


def test_every_scalar_type_from_the_environment() -> None:
    text = """\
version: ${VERSION}
kafka:
  batch_size: ${BATCH}
  group_id: ${GROUP}
  bootstrap: ${HOST}:${KAFKA_PORT}
metrics: {port: "${PORT:-9464}"}
models:
  - name: ${MODEL}
    impact: {regulated: "${REGULATED}", weight: "${WEIGHT}"}
    window: {size: "${WINDOW}"}
    features:
      x: {type: numeric, range: ["${LOW}", "${HIGH}"]}
"""
    environ = {"VERSION": "1", "BATCH": "0x10", "GROUP": "42", "HOST": "kafka", "KAFKA_PORT": "9093",
               "MODEL": "007", "REGULATED": "true", "WEIGHT": "2.5", "WINDOW": "10m", "LOW": "-1", "HIGH": "1000.5"}
    config = parse_config(text, environ=environ)
    assert config.version == 1
    assert config.kafka.batch_size == 16
    assert config.kafka.group_id == "42"  # a text key keeps the text
    assert config.kafka.bootstrap == "kafka:9093"  # a reference inside text is text
    assert config.metrics.port == 9464  # the default is typed too
    assert config.models[0].name == "007"
    assert config.models[0].impact.regulated is True
    assert config.models[0].impact.weight == 2.5
    assert config.models[0].window.size.total_seconds() == 600
    assert config.models[0].features["x"].range == (-1.0, 1000.5)


@pytest.mark.parametrize(
    "value",
    ["[1, 2]", "{a: b}", "&x [*x]", "!!python/object/apply:os.system ['touch /tmp/x']", "a\nb: c", "- 1"],
)
def test_an_environment_value_is_never_yaml_structure(value: str) -> None:
    config = parse_config("version: 1\nkafka:\n  group_id: ${GROUP}\n" + TAIL, environ={"GROUP": value})
    assert config.kafka.group_id == value
    # Into a number field it is still one scalar: text, which the field refuses.
    assert errors("version: 1\nmetrics:\n  port: ${PORT}\n" + TAIL, {"PORT": value}) == [
        f"drift.yaml:3:9 metrics.port: must be an integer; got {value!r}"
    ]


def test_env_value_of_the_wrong_type_names_path_and_line() -> None:
    assert errors("version: 1\nmetrics:\n  port: ${PORT}\n" + TAIL, {"PORT": "http"}) == [
        "drift.yaml:3:9 metrics.port: must be an integer; got 'http'"
    ]


def test_a_long_integer_from_the_environment_stays_text() -> None:
    [message] = errors("version: 1\nmetrics:\n  port: ${PORT}\n" + TAIL, {"PORT": "9" * 5000})
    assert message.startswith("drift.yaml:3:9 metrics.port: must be an integer; got '9999")
    assert len(message) < 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [("9464", 9464), ("-1", -1), ("1_000", 1000), ("0.25", 0.25), ("1.0e+3", 1000.0), ("1e3", "1e3"), (".inf", math.inf),
     ("true", True), ("off", False), ("~", None), ("", None), ("abc", "abc"), ("2026-01-01", "2026-01-01"),
     ("[1]", "[1]"), ("'quoted'", "'quoted'")],
)
def test_yaml_scalar(text: str, expected: object) -> None:
    assert yaml_scalar(text) == expected and type(yaml_scalar(text)) is type(expected)


def test_unset_variables_are_all_reported_with_other_errors() -> None:
    text = "version: 1\nmetrics:\n  port: ${PORT}\n  host: ${HOST}\n  max_cohorts: 0\n" + TAIL
    assert errors(text) == [
        "drift.yaml:3:9 metrics.port: environment variable PORT is not set and has no default",
        "drift.yaml:4:9 metrics.host: environment variable HOST is not set and has no default",
        "drift.yaml:5:16 metrics.max_cohorts: must be >= 1; got 0",
    ]


# ------------------------------------------------------------------------ feature bounds

BOUNDS = "version: 1\nmodels:\n  - name: m\n    features:\n      x: {{type: numeric, {}}}\n"


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ("range: [.nan, .inf]", "drift.yaml:5:33 models[0].features.x.range: range bounds must be numbers, not NaN; "
                                "got [nan, inf]"),
        ("range: [0, .nan]", "drift.yaml:5:33 models[0].features.x.range: range bounds must be numbers, not NaN; "
                             "got [0.0, nan]"),
        ("range: [.inf, .inf]", "drift.yaml:5:33 models[0].features.x.range: range must be [low, high] with "
                                "low < .inf and high > -.inf; got [inf, inf]"),
        ("min: .nan", "drift.yaml:5:31 models[0].features.x.min: must be a number, not NaN; got nan"),
        ("max: .NaN", "drift.yaml:5:31 models[0].features.x.max: must be a number, not NaN; got nan"),
        ("min: .inf", "drift.yaml:5:31 models[0].features.x.min: must not be .inf: no value would be allowed "
                      "(leave min out for no bound); got inf"),
        ("max: -.inf", "drift.yaml:5:31 models[0].features.x.max: must not be -.inf: no value would be allowed "
                       "(leave max out for no bound); got -inf"),
    ],
)
def test_nan_and_impossible_infinite_bounds_are_refused(bounds: str, expected: str) -> None:
    assert errors(BOUNDS.format(bounds)) == [expected]


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [("range: [0, .inf]", (0.0, math.inf)), ("range: [-.inf, 1]", (-math.inf, 1.0)),
     ("min: -.inf", (-math.inf, None)), ("max: .inf", (None, math.inf))],
)
def test_infinite_bounds_are_open_ends(bounds: str, expected: tuple[float | None, float | None]) -> None:
    config = parse_config(BOUNDS.format(bounds), environ={})
    assert config.models[0].features["x"].bounds == expected


def test_load_config_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFT_TEST_PORT", "9100")
    path = tmp_path / "drift.yaml"
    path.write_text("version: 1\nmetrics: {port: '${DRIFT_TEST_PORT}'}\n" + TAIL, encoding="utf-8")
    assert load_config(path).metrics.port == 9100
