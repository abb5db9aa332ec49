"""Config loading on real YAML files: valid examples, and one message per mistake.

Every message is checked whole, with the line and column it must point at in the
YAML written by the test (STYLE.md §5: ``drift.yaml:LINE:COL path: message``).
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

import drift
from detectors.psi import PsiConfig
from drift.config import DETECTOR_NAMES, load_config, parse_config
from drift.errors import ConfigError, DriftError
from drift.reference import PredictionColumn
from drift.summary import EmbeddingSampling

DEMO_CONFIG = Path(drift.__file__).parent / "demo" / "drift.yaml"

# The shape of DESIGN.md §Configuration, limited to what is implemented: only the
# `psi` detector is registered so far (quality, skew, embedding, score are not).
FULL_EXAMPLE = """\
version: 1
kafka:
  bootstrap: ${DRIFT_TEST_BOOTSTRAP:-127.0.0.1:9092}
  inference_topic: inference-events
  feature_topic: feature-events
events:
  max_future: 5m
models:
  - name: credit-risk
    cohort: [model_version, tenant, region, segment.channel]
    window: {size: 5m, allowed_lateness: 1m}
    reference: {parquet: data/credit_train.parquet}
    baseline: {seasonality: hour_of_week, history: 4w, min_samples: 500}
    impact: {tier: high, regulated: true}
    features:
      age: {type: numeric, range: [18, 120]}
      income: {type: numeric, min: 0}
      country: {type: categorical}
    detectors:
      - psi: {features: "*", bins: 10, warn: 0.1, alert: 0.25}
      - psi: {features: [income], bins: 20, warn: 0.05, alert: 0.1}
    policy: {consecutive_windows: 2, cooldown: 1h}
  - name: fraud
    features:
      amount: {type: numeric}
routing:
  - when: {impact: high}
    action: human_review
    approvals: 2
  - when: {severity: alert}
    action: ticket
tickets:
  store: sqlite:///./drift-tickets.db
  sinks: [kafka]
metrics: {host: 0.0.0.0, port: 9464}
baselines: {dir: baselines}
"""


def write(tmp_path: Path, text: str, name: str = "drift.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors(path: Path) -> list[str]:
    """The messages of the ConfigError that loading ``path`` raises, file shown as ``drift.yaml``."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [m.replace(str(path), "drift.yaml", 1) for m in info.value.messages]


# ---------------------------------------------------------------------- valid files


def test_bundled_demo_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    config = load_config(DEMO_CONFIG)

    assert config.version == 1
    assert config.kafka.bootstrap == "127.0.0.1:9092"
    model, doc, limit = config.models
    assert model.name == "credit-risk"
    assert model.cohort == ["model_version", "tenant", "region"]
    assert model.window.size == timedelta(minutes=30)
    assert model.window.allowed_lateness == timedelta(minutes=2)
    assert list(model.features) == ["age", "income", "country"]
    assert model.features["age"].bounds == (18.0, 120.0)
    assert model.features["income"].bounds == (0.0, None)
    assert [name for name, _ in model.detector_configs()] == ["psi", "quality", "score"]
    assert model.psi_bins() == {"age": 10, "income": 10, "country": 10}
    assert model.prediction_columns() == {
        "prediction.score": PredictionColumn("score", "numeric", 10),
        "prediction.label": PredictionColumn("label", "categorical", 10),
    }
    # Relative paths in the file resolve against the file's folder, not the cwd.
    assert Path(config.source_dir) == DEMO_CONFIG.parent.resolve()
    assert config.resolve("reference.parquet") == DEMO_CONFIG.parent.resolve() / "reference.parquet"
    assert config.ticket_store_path() == DEMO_CONFIG.parent.resolve() / "drift-tickets.db"
    # The text model: one embedding detector, sampled per cohort window.
    assert doc.name == "doc-classifier" and [name for name, _ in doc.detector_configs()] == ["embedding"]
    assert doc.embedding_sampling() == EmbeddingSampling(field="embedding", dim=32, capacity=500, seed=7)
    assert config.embedding_fields() == {"doc-classifier": ("embedding", 32)}
    assert model.embedding_sampling() is None
    # Routing: the text model is high impact (human review), credit-risk opens directly.
    assert (model.impact.tier, doc.impact.tier) == ("medium", "high")
    # Value skew against the offline feature store, and nothing else, for credit-limit.
    assert limit.name == "credit-limit" and [name for name, _ in limit.detector_configs()] == ["skew"]
    assert config.kafka.feature_topic == "feature-events"


def test_full_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFT_TEST_BOOTSTRAP", raising=False)
    config = load_config(write(tmp_path, FULL_EXAMPLE))

    assert config.kafka.bootstrap == "127.0.0.1:9092"
    assert config.kafka.inference_topic == "inference-events"
    assert config.kafka.dlq_topic == "drift-dlq"  # default
    assert config.events.max_future == timedelta(minutes=5)
    assert [m.name for m in config.models] == ["credit-risk", "fraud"]

    model = config.model("credit-risk")
    assert model.cohort == ["model_version", "tenant", "region", "segment.channel"]
    assert model.window.size == timedelta(minutes=5)
    assert model.reference is not None
    assert config.resolve(model.reference.parquet) == tmp_path.resolve() / "data" / "credit_train.parquet"
    assert model.baseline.seasonality == "hour_of_week"
    assert model.baseline.history == timedelta(weeks=4)
    assert model.impact.tier == "high" and model.impact.regulated is True
    assert model.policy.consecutive_windows == 2
    assert model.policy.cooldown == timedelta(hours=1)

    detectors = model.detector_configs()
    assert [name for name, _ in detectors] == ["psi", "psi"]
    first, second = (settings for _, settings in detectors)
    assert isinstance(first, PsiConfig) and first.features == "*"
    assert isinstance(second, PsiConfig) and second.features == ["income"]
    # The reference profile uses the finest binning any PSI detector asks for.
    assert model.psi_bins() == {"age": 10, "income": 20, "country": 10}

    fraud = config.model("fraud")
    assert fraud.detectors == [] and fraud.cohort == []
    with pytest.raises(KeyError):
        config.model("nope")

    assert [(r.action, r.approvals) for r in config.routing] == [("human_review", 2), ("ticket", 1)]
    assert config.routing[0].when.impact == "high"
    assert config.routing[1].when.severity == "alert"
    assert config.ticket_store_path() == tmp_path.resolve() / "drift-tickets.db"
    assert config.metrics.host == "0.0.0.0"
    assert config.resolve(config.baselines.dir) == tmp_path.resolve() / "baselines"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_EXAMPLE))
    with pytest.raises(ValidationError):
        config.version = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.models[0].window.size = timedelta(0)  # type: ignore[misc]


def test_parse_config_names_the_given_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("version: 2\nmodels: []\n", path="inline.yaml")
    assert info.value.messages == [
        "inline.yaml:1:10 version: must be one of 1; got 2",
        "inline.yaml:2:9 models: must have at least 1 item after validation, not 0; got []",
    ]
    assert isinstance(info.value, DriftError)


# ------------------------------------------------------------- one mistake per file

MODEL_HEAD = """\
version: 1
models:
  - name: credit-risk
"""
# Line 4 onwards belongs to the case; columns count from 1.

MISTAKES = [
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi: {bins: "ten"}
        """,
        'drift.yaml:7:21 models[0].detectors[0].psi.bins: must be an integer; got \'ten\'',
        id="wrong-type",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi: {bins: 1}
        """,
        "drift.yaml:7:21 models[0].detectors[0].psi.bins: must be >= 2; got 1",
        id="bound",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi: {bins: true}
        """,
        "drift.yaml:7:21 models[0].detectors[0].psi.bins: must be an integer; got True",
        id="bool-is-not-an-integer",
    ),
    pytest.param(
        """\
        windw: {size: 5m}
        features:
          age: {type: numeric}
        """,
        "drift.yaml:4:5 models[0].windw: unknown key 'windw' (did you mean 'window'?); valid keys: "
        "baseline, canary, cohort, detectors, features, impact, labels, name, policy, reference, rollups, slo, ts_unit, window",
        id="unknown-key",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi: {bins: 10, wran: 0.1}
        """,
        "drift.yaml:7:25 models[0].detectors[0].psi.wran: unknown key 'wran' (did you mean 'warn'?); "
        "valid keys: alert, bins, epsilon, features, min_samples, significance, warn",
        id="unknown-key-inside-detector",
    ),
    pytest.param(
        """\
        cohort: [tenant]
        """,
        "drift.yaml:3:5 models[0].features: is required",
        id="missing-required",
    ),
    pytest.param(
        """\
        baseline: {seasonality: monthly}
        features:
          age: {type: numeric}
        """,
        "drift.yaml:4:29 models[0].baseline.seasonality: must be one of 'none', 'hour_of_day', "
        "'day_of_week' or 'hour_of_week'; got 'monthly'",
        id="literal-choice",
    ),
    pytest.param(
        """\
        window:
          size: 5 minutes
        features:
          age: {type: numeric}
        """,
        "drift.yaml:5:13 models[0].window.size: must be a duration like '30s', '5m', '1h', '2d' or '4w'; "
        "got '5 minutes'",
        id="bad-duration",
    ),
    pytest.param(
        """\
        window: {size: 0s}
        features:
          age: {type: numeric}
        """,
        "drift.yaml:4:20 models[0].window.size: must be a positive duration; got '0ms'",
        id="zero-duration",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi: {warn: 0.5, alert: 0.2}
        """,
        "drift.yaml:7:14 models[0].detectors[0].psi: warn must be <= alert; got warn=0.5, alert=0.2",
        id="warn-above-alert",
    ),
    pytest.param(
        """\
        cohort: [tenant, colour]
        features:
          age: {type: numeric}
        """,
        "drift.yaml:4:13 models[0].cohort: cohort labels must be among model_version, tenant, region, "
        "route or 'segment.<name>'; got 'colour'",
        id="unknown-cohort-label",
    ),
    pytest.param(
        """\
        cohort: [tenant, tenant]
        features:
          age: {type: numeric}
        """,
        "drift.yaml:4:13 models[0].cohort: cohort labels must be distinct; got ['tenant', 'tenant']",
        id="repeated-cohort-label",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psii: {bins: 3}
        """,
        "drift.yaml:7:9 models[0].detectors[0]: must be a mapping with one key naming a detector, "
        "one of " + ", ".join(DETECTOR_NAMES) + "; got {'psii': {'bins': 3}}",
        id="unknown-detector",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - quality: {nul_rate: {alert: 0.05}}
        """,
        "drift.yaml:7:19 models[0].detectors[0].quality.nul_rate: unknown key 'nul_rate' (did you mean "
        "'null_rate'?); valid keys: cardinality_growth, duplicate_event_id, features, min_samples, missing_rate, "
        "null_rate, out_of_range, schema_change, significance, type_mismatch, unseen_category",
        id="quality-check-misspelt",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi
        """,
        "drift.yaml:7:9 models[0].detectors[0]: must be a mapping with one key naming a detector, "
        "one of " + ", ".join(DETECTOR_NAMES) + "; got 'psi'",
        id="detector-not-a-mapping",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi:
        """,
        "drift.yaml:7:13 models[0].detectors[0].psi: must be a mapping; got None",
        id="detector-settings-empty",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - psi: {features: [age, salary]}
        """,
        "drift.yaml:3:5 models[0]: psi.features names features not declared under features: "
        "['salary']; declared: ['age']",
        id="psi-feature-undeclared",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric, range: [120, 18]}
        """,
        "drift.yaml:5:12 models[0].features.age: range must be [low, high] with low <= high; "
        "got [120.0, 18.0]",
        id="range-reversed",
    ),
    pytest.param(
        """\
        features:
          country: {type: categorical, min: 0}
        """,
        "drift.yaml:5:16 models[0].features.country: range/min/max apply to numeric features only",
        id="bounds-on-categorical",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric, range: [1, 2, 3]}
        """,
        "drift.yaml:5:35 models[0].features.age.range: must have at most 2 items after validation, "
        "not 3; got [1, 2, 3]",
        id="range-three-numbers",
    ),
    pytest.param(
        """\
        window: {size: 300}
        features:
          age: {type: numeric}
        """,
        "drift.yaml:4:20 models[0].window.size: must be a duration like '30s', '5m', '1h', '2d' or "
        "'4w'; got 300",
        id="duration-without-unit",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {field: embedding}
        """,
        "drift.yaml:7:20 models[0].detectors[0].embedding.dim: is required",
        id="embedding-dim-missing",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {dim: 0}
        """,
        "drift.yaml:7:26 models[0].detectors[0].embedding.dim: must be >= 1; got 0",
        id="embedding-dim-zero",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {dim: 8, device: cuda}
        """,
        "drift.yaml:7:37 models[0].detectors[0].embedding.device: must be one of 'auto', 'cpu' or 'gpu'; "
        "got 'cuda'",
        id="embedding-device-unknown",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {dim: 8, method: kmeans}
        """,
        "drift.yaml:7:37 models[0].detectors[0].embedding.method: must be one of 'mmd', 'knn' or "
        "'centroid'; got 'kmeans'",
        id="embedding-method-unknown",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {dim: 8, feild: emb}
        """,
        "drift.yaml:7:29 models[0].detectors[0].embedding.feild: unknown key 'feild' (did you mean 'field'?); "
        "valid keys: device, dim, field, k, method, min_samples, p_value, permutations, quantile, sample, seasonal_rows, "
        "seed, "
        "warn_p_value",
        id="embedding-key-misspelt",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {dim: 8, field: features}
        """,
        "drift.yaml:7:36 models[0].detectors[0].embedding.field: must be a top-level event key other than "
        "event_id, ts, model, model_version, tenant, region, route, segment, entity_id, features, prediction; "
        "got 'features'",
        id="embedding-field-reserved",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {dim: 8, sample: 50, min_samples: 100}
        """,
        "drift.yaml:7:20 models[0].detectors[0].embedding: min_samples must be <= sample; "
        "got min_samples=100, sample=50",
        id="embedding-min-samples-over-sample",
    ),
    pytest.param(
        """\
        features:
          age: {type: numeric}
        detectors:
          - embedding: {dim: 8}
          - embedding: {dim: 16, method: knn}
        """,
        "drift.yaml:3:5 models[0]: embedding detectors of one model must share field and dim; detectors[0] has "
        "field='embedding', dim=8, detectors[1] has field='embedding', dim=16",
        id="embedding-dims-differ",
    ),
]


@pytest.mark.parametrize(("model_body", "expected"), MISTAKES)
def test_each_mistake_has_path_line_column_and_message(
    tmp_path: Path, model_body: str, expected: str
) -> None:
    path = write(tmp_path, MODEL_HEAD + textwrap.indent(textwrap.dedent(model_body), "    "))
    assert errors(path) == [expected]


def test_unknown_detector_lists_every_valid_name(tmp_path: Path) -> None:
    path = write(tmp_path, MODEL_HEAD + """\
    features: {age: {type: numeric}}
    detectors:
      - psii: {}
""")
    (message,) = errors(path)
    for name in DETECTOR_NAMES:
        assert name in message.split("one of ", 1)[1]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        version: 1
        kafka:
          batch_size: 0
        models:
          - name: credit-risk
            windw: {size: 5m}
            cohort: [tenant, colour]
            baseline: {seasonality: monthly}
            window: {size: 5 minutes}
            features:
              age: {type: numeric}
            detectors:
              - psi: {bins: "ten"}
              - psi: {bins: 1}
              - psi: {warn: 0.5, alert: 0.2}
              - psii: {bins: 3}
          - name: fraud
        routing:
          - action: page_someone
        tickets: {store: "mysql://db"}
        """)
    assert sorted(errors(path)) == sorted([
        "drift.yaml:3:15 kafka.batch_size: must be >= 1; got 0",
        "drift.yaml:6:5 models[0].windw: unknown key 'windw' (did you mean 'window'?); valid keys: "
        "baseline, canary, cohort, detectors, features, impact, labels, name, policy, reference, rollups, slo, ts_unit, window",
        "drift.yaml:7:13 models[0].cohort: cohort labels must be among model_version, tenant, region, "
        "route or 'segment.<name>'; got 'colour'",
        "drift.yaml:8:29 models[0].baseline.seasonality: must be one of 'none', 'hour_of_day', "
        "'day_of_week' or 'hour_of_week'; got 'monthly'",
        "drift.yaml:9:20 models[0].window.size: must be a duration like '30s', '5m', '1h', '2d' or '4w'; "
        "got '5 minutes'",
        "drift.yaml:13:21 models[0].detectors[0].psi.bins: must be an integer; got 'ten'",
        "drift.yaml:14:21 models[0].detectors[1].psi.bins: must be >= 2; got 1",
        "drift.yaml:15:14 models[0].detectors[2].psi: warn must be <= alert; got warn=0.5, alert=0.2",
        "drift.yaml:16:9 models[0].detectors[3]: must be a mapping with one key naming a detector, "
        "one of " + ", ".join(DETECTOR_NAMES) + "; got {'psii': {'bins': 3}}",
        "drift.yaml:17:5 models[1].features: is required",
        "drift.yaml:19:13 routing[0].action: must be one of 'human_review', 'ticket' or 'alert_only'; "
        "got 'page_someone'",
        "drift.yaml:20:18 tickets.store: must be a URL 'sqlite:///PATH' or 'postgresql://...'; "
        "got 'mysql://db'",
    ])


def test_duplicate_model_names(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        version: 1
        models:
          - name: credit-risk
            features: {age: {type: numeric}}
          - name: fraud
            features: {amount: {type: numeric}}
          - name: credit-risk
            features: {age: {type: numeric}}
        """)
    (message,) = errors(path)
    assert message.startswith(
        "drift.yaml:3:3 models: model names must be unique; repeated: ['credit-risk']"
    )


def test_unknown_top_level_key_and_missing_models(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        version: 1
        model:
          - name: credit-risk
        """)
    assert errors(path) == [
        "drift.yaml:1:1 models: is required",
        "drift.yaml:2:1 model: unknown key 'model' (did you mean 'models'?); valid keys: "
        "baselines, engine, events, kafka, metrics, models, review, routing, tickets, version",
    ]


def test_unsupported_version(tmp_path: Path) -> None:
    path = write(tmp_path, MODEL_HEAD.replace("version: 1", "version: 2") + "    features: {a: {type: numeric}}\n")
    assert errors(path) == ["drift.yaml:1:10 version: must be one of 1; got 2"]


# ----------------------------------------------------------------- not even a config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "version: 1\nmodels:\n  - name: credit-risk\n    window: {size: 5m\n    features: {}\n",
            "drift.yaml:5:13 models[0].window: is not valid YAML: expected ',' or '}', but got ':'",
            id="unclosed-flow-mapping",
        ),
        pytest.param(
            "version: 1\nmodels:\n  - name: credit-risk\n   features: {}\n",
            "drift.yaml:4:4 models: is not valid YAML: expected <block end>, but found '<block mapping start>'",
            id="bad-indentation",
        ),
        pytest.param(
            "version: 1\nmodels:\n\t- name: credit-risk\n",
            "drift.yaml:3:1 is not valid YAML: found character '\\t' that cannot start any token",
            id="tab",
        ),
        pytest.param(
            "version: 1\n---\nversion: 1\n",
            "drift.yaml:2:1 is not valid YAML: but found another document",
            id="two-documents",
        ),
    ],
)
def test_invalid_yaml_reports_the_line(tmp_path: Path, text: str, expected: str) -> None:
    assert errors(write(tmp_path, text)) == [expected]


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- version: 1\n- models: []\n", "list"), ("just text\n", "str"), ("", "NoneType"), ("42\n", "int")],
    ids=["list", "scalar", "empty-file", "number"],
)
def test_document_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    assert errors(write(tmp_path, text)) == [
        f"drift.yaml:1:1 the file must be a mapping with keys version, models, ...; got {kind}"
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.messages == [f"{path}: cannot read the config file: No such file or directory"]


def test_python_tags_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = write(tmp_path, f"""\
        version: 1
        models: !!python/object/apply:os.system ["touch {marker}"]
        """)
    assert errors(path) == [
        "drift.yaml:2:9 models: is not valid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'"
    ]
    assert not marker.exists()


# -------------------------------------------------------------- environment and secrets

ENV_CONFIG = """\
version: 1
kafka:
  bootstrap: ${DRIFT_TEST_BOOTSTRAP:-127.0.0.1:9092}
  group_id: drift-${DRIFT_TEST_ENVIRONMENT:-dev}
  sasl_username: ${DRIFT_TEST_SASL_USER}
  sasl_password: ${DRIFT_TEST_SASL_PASSWORD}
models:
  - name: credit-risk
    features: {age: {type: numeric}}
"""


@pytest.fixture
def sasl_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DRIFT_TEST_BOOTSTRAP", "DRIFT_TEST_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIFT_TEST_SASL_USER", "drift-svc")
    monkeypatch.setenv("DRIFT_TEST_SASL_PASSWORD", "hunter2-s3cret")
    return monkeypatch


def test_env_defaults_apply_when_unset(tmp_path: Path, sasl_env: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, ENV_CONFIG))
    assert config.kafka.bootstrap == "127.0.0.1:9092"
    assert config.kafka.group_id == "drift-dev"
    assert config.kafka.sasl_username == "drift-svc"


def test_env_overrides_default(tmp_path: Path, sasl_env: pytest.MonkeyPatch) -> None:
    sasl_env.setenv("DRIFT_TEST_BOOTSTRAP", "kafka-0.internal:9093")
    sasl_env.setenv("DRIFT_TEST_ENVIRONMENT", "prod")
    config = load_config(write(tmp_path, ENV_CONFIG))
    assert config.kafka.bootstrap == "kafka-0.internal:9093"
    assert config.kafka.group_id == "drift-prod"


def test_env_empty_value_falls_back_to_default(tmp_path: Path, sasl_env: pytest.MonkeyPatch) -> None:
    sasl_env.setenv("DRIFT_TEST_BOOTSTRAP", "")
    assert load_config(write(tmp_path, ENV_CONFIG)).kafka.bootstrap == "127.0.0.1:9092"


def test_unset_env_without_default_names_path_and_line(
    tmp_path: Path, sasl_env: pytest.MonkeyPatch
) -> None:
    sasl_env.delenv("DRIFT_TEST_SASL_USER")
    sasl_env.delenv("DRIFT_TEST_SASL_PASSWORD")
    assert errors(write(tmp_path, ENV_CONFIG)) == [
        "drift.yaml:5:18 kafka.sasl_username: environment variable DRIFT_TEST_SASL_USER is not set "
        "and has no default",
        "drift.yaml:6:18 kafka.sasl_password: environment variable DRIFT_TEST_SASL_PASSWORD is not set "
        "and has no default",
    ]


def test_sasl_password_is_a_masked_secret(tmp_path: Path, sasl_env: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, ENV_CONFIG))
    secret = config.kafka.sasl_password
    assert isinstance(secret, SecretStr)
    assert secret.get_secret_value() == "hunter2-s3cret"
    for shown in (repr(config), str(config), repr(config.kafka), str(config.kafka), str(secret),
                  config.model_dump_json(), str(config.model_dump())):
        assert "hunter2" not in shown
    assert "**********" in repr(config.kafka)
    # The real value only leaves the config for the Kafka client itself.
    assert config.kafka.client_settings()["sasl.password"] == "hunter2-s3cret"



@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("version: 1\nversion: 2\nmodels: []\n", ["drift.yaml:2:1 duplicate key 'version'"], id="duplicate-top-key"),
        pytest.param("version: true\nmodels: []\n", None, id="version-bool"),
        pytest.param("version: 1.0\nmodels: []\n", None, id="version-float"),
        pytest.param("version: 1\nmodels: &a [*a]\n", None, id="recursive-alias"),
    ],
)
def test_document_level_mistakes(tmp_path: Path, text: str, expected: list[str] | None) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    if expected is not None:
        assert [m.replace(str(tmp_path) + "/", "") for m in caught.value.messages] == expected
    else:
        assert caught.value.messages and all(str(path) in m for m in caught.value.messages)


def test_unknown_keys_with_brackets_are_named_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        v[ersion: 1
        version: 1
        engine: {"shards[": 2}
        models:
          - name: m
            features: {x: {type: numeric}}
        """)
    assert sorted(errors(path)) == [
        "drift.yaml:1:1 v[ersion: unknown key 'v[ersion' (did you mean 'version'?); valid keys: "
        "baselines, engine, events, kafka, metrics, models, review, routing, tickets, version",
        "drift.yaml:3:10 engine.shards[: unknown key 'shards[' (did you mean 'shards'?); valid keys: "
        "idle_windows, ok_findings, shards",
    ]
