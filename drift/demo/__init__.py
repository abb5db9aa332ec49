"""The embedded default: a config, a reference and a few thousand events with a known shift.

Everything is generated from a fixed seed, so every run of ``drift demo`` sees
the same data: two tenants of ``credit-risk`` over three hours in 30-minute
windows. From 09:30 on, tenant ``globex`` in ``us-east-1`` gets richer
applicants (``income`` × 1.6) and a new market (``country`` = ``BR``); tenant
``acme`` stays as trained, and ``age`` never moves. From 10:00 on, an upstream
bug sends ``income: null`` in about 30% of ``acme``'s events: a data-quality
incident, not drift (PSI counts only values, so it stays quiet; the ``quality``
detector's null rate alerts). A handful of malformed and late messages show the
dead-letter path.

A second model, ``doc-classifier``, logs a 32-dimensional text embedding with each
event (as a JSON list or as base64 float32, alternately), interleaved in time with
the credit-risk events. Its reference embeddings are a mixture of a few topic
clusters; from 09:30 on about 40% of tenant ``support``'s documents come from a new
topic (a cluster the reference never had), while tenant ``newsroom`` stays as
trained: the ``embedding`` detector alerts for ``support`` only, and its finding
names the new documents' event ids.

A third model, ``credit-limit`` (tenant ``initech``, 08:00–10:00, one 2-hour window per
region), is checked for training–serving *value* skew: the file also holds the offline
feature store's values of its 200 customers (feature events of feature set
``customer_profile``, lines with a top-level ``feature_set`` key, stamped 07:30). Every
inference serves exactly those values, except that ``us-east-1`` serves ``income`` in
cents while the store holds dollars (:mod:`drift.demo.skew`): one ``skew.value`` alert,
on ``income`` in ``us-east-1``, with a mean served/offline ratio of 100.
"""

from __future__ import annotations

import base64
import heapq
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

import numpy as np

START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
DURATION = timedelta(hours=3)
SHIFT_AT = START + timedelta(minutes=90)
SHIFTED_TENANT = "globex"
STABLE_TENANT = "acme"
SHIFTED_FEATURES = ("income", "country")
STABLE_FEATURES = ("age",)
NULL_AT = START + timedelta(minutes=120)
NULL_TENANT = STABLE_TENANT
NULL_FEATURE = "income"
NULL_SHARE = 0.3
COUNTRIES = ("DE", "FR", "ES", "IT", "NL")
COUNTRY_SHARES = (0.35, 0.25, 0.2, 0.12, 0.08)
N_EVENTS = 6000
N_REFERENCE = 20000
SEED = 20261102
DECLINE_BELOW = 0.3

DOC_MODEL = "doc-classifier"
DOC_DIM = 32
N_DOC_EVENTS = 1500
N_DOC_REFERENCE = 2000
DOC_TENANTS = ("newsroom", "support")
DOC_SHIFTED_TENANT = "support"
DOC_STABLE_TENANT = "newsroom"
DOC_SHIFT_AT = SHIFT_AT
DOC_NEW_TOPIC_SHARE = 0.4
DOC_TOPICS = 4
DOC_LANGUAGES = ("en", "de", "fr")
DOC_LANGUAGE_SHARES = (0.6, 0.25, 0.15)
SKEW_MODEL = "credit-limit"
SKEW_TENANT = "initech"
N_SKEW_EVENTS = 600
REFERENCE_FILE = "reference.parquet"
DOC_REFERENCE_FILE = "doc-reference.parquet"


_VALUE_SKEW_BLOCK = ("  # Training–serving value skew", "routing:")


def config_text(value_skew: bool = True) -> str:
    """The demo's YAML config, as shipped in the package.

    ``value_skew=False`` leaves out the ``credit-limit`` model (the value-skew join), for
    tests about the inference path alone (pair it with :meth:`DemoEvents.without_value_skew`).
    """
    text = resources.files("drift.demo").joinpath("drift.yaml").read_text(encoding="utf-8")
    if not value_skew:
        start, end = text.index(_VALUE_SKEW_BLOCK[0]), text.index(_VALUE_SKEW_BLOCK[1])
        text = text[:start] + text[end:]
    return text


def label_of(score: float) -> str:
    """The model's decision for a score: ``decline`` below :data:`DECLINE_BELOW`."""
    return "decline" if score < DECLINE_BELOW else "approve"


def reference_columns(seed: int = SEED) -> dict[str, Any]:
    """Training data: ``age``, ``income`` and ``country`` columns, and the model's
    ``score`` and ``label`` on them (for the ``score`` detector)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {
        "age": np.clip(rng.normal(41, 12, N_REFERENCE), 18, 95).round(),
        "income": rng.lognormal(8.4, 0.45, N_REFERENCE).round(2),
        "country": list(rng.choice(COUNTRIES, size=N_REFERENCE, p=COUNTRY_SHARES)),
    }
    # Drawn after the features, so adding them left the feature columns as they were.
    columns["score"] = rng.uniform(size=N_REFERENCE).round(4)
    columns["label"] = [label_of(float(s)) for s in columns["score"]]
    return columns


def _doc_topics(seed: int) -> tuple[Any, Any]:
    """Centres of the reference topics ``(DOC_TOPICS, DOC_DIM)`` and of the new topic ``(DOC_DIM,)``."""
    rng = np.random.default_rng(seed + 3)
    centres = rng.normal(0.0, 1.0, (DOC_TOPICS + 1, DOC_DIM))
    return centres[:DOC_TOPICS], centres[DOC_TOPICS]


def _doc_embedding(rng: np.random.Generator, centres: Any, new_topic: Any | None) -> Any:
    """One document's embedding: a topic centre plus noise (the new topic when given)."""
    centre = new_topic if new_topic is not None else centres[int(rng.integers(0, len(centres)))]
    return (centre + rng.normal(0.0, 0.6, DOC_DIM)).astype(np.float32)


def doc_reference_columns(seed: int = SEED) -> dict[str, Any]:
    """Training data of ``doc-classifier``: ``n_tokens``, ``language`` and ``embedding``
    (a ``(N_DOC_REFERENCE, DOC_DIM)`` float32 array, written as a fixed-size list column)."""
    centres, _ = _doc_topics(seed)
    rng = np.random.default_rng(seed + 4)
    return {
        "n_tokens": rng.gamma(4.0, 60.0, N_DOC_REFERENCE).round(),
        "language": list(rng.choice(DOC_LANGUAGES, size=N_DOC_REFERENCE, p=DOC_LANGUAGE_SHARES)),
        "embedding": np.stack([_doc_embedding(rng, centres, None) for _ in range(N_DOC_REFERENCE)]),
    }


def write_references(folder: Path, seed: int = SEED) -> None:
    """Write both models' reference Parquet files into ``folder`` (the names drift.yaml uses).

    2-D arrays (the embeddings) become ``fixed_size_list<float, dim>`` columns.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def column(values: Any) -> Any:
        if isinstance(values, np.ndarray) and values.ndim == 2:
            return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
        return values if isinstance(values, np.ndarray) else list(values)

    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in ((REFERENCE_FILE, reference_columns(seed)), (DOC_REFERENCE_FILE, doc_reference_columns(seed))):
        pq.write_table(pa.table({key: column(values) for key, values in columns.items()}), folder / name)


def _doc_events(seed: int) -> list[tuple[datetime, bytes]]:
    """``doc-classifier`` events in time order, as (ts, line)."""
    import orjson

    centres, new_topic = _doc_topics(seed)
    rng = np.random.default_rng(seed + 5)
    offsets = np.sort(rng.uniform(0, DURATION.total_seconds(), N_DOC_EVENTS))
    out = []
    for i, offset in enumerate(offsets):
        ts = START + timedelta(seconds=float(offset))
        tenant = DOC_TENANTS[i % 2]
        new = tenant == DOC_SHIFTED_TENANT and ts >= DOC_SHIFT_AT and rng.random() < DOC_NEW_TOPIC_SHARE
        vector = _doc_embedding(rng, centres, new_topic if new else None)
        # Both wire forms: a JSON list, and base64 of little-endian float32.
        embedding: Any = (
            [round(float(v), 5) for v in vector] if i % 2 == 0
            else {"dtype": "float32", "b64": base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")}
        )
        event = {
            "event_id": f"doc-{i}{'-new' if new else ''}",
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "model": DOC_MODEL,
            "model_version": "1.4.0",
            "tenant": tenant,
            "route": "/classify",
            "features": {
                "n_tokens": int(rng.gamma(4.0, 60.0)),
                "language": str(rng.choice(DOC_LANGUAGES, p=DOC_LANGUAGE_SHARES)),
            },
            "embedding": embedding,
        }
        out.append((ts, orjson.dumps(event)))
    return out


@dataclass(frozen=True)
class DemoEvents:
    """Event lines (bytes) in arrival order, and how many of them are unusable."""

    lines: list[bytes]
    n_malformed: int
    n_late: int
    feature_lines: list[bytes] = field(default_factory=list)
    """The feature events among ``lines`` (on Kafka: ``kafka.feature_topic``)."""

    @property
    def inference_lines(self) -> list[bytes]:
        """``lines`` without the feature events: what goes to ``kafka.inference_topic``."""
        features = set(self.feature_lines)
        return [line for line in self.lines if line not in features]

    def without_value_skew(self) -> list[bytes]:
        """``inference_lines`` without ``credit-limit``'s events: for ``config_text(value_skew=False)``."""
        marker = b'"model":"' + SKEW_MODEL.encode() + b'"'
        return [line for line in self.inference_lines if marker not in line]


def events(seed: int = SEED) -> DemoEvents:
    """The bundled stream: JSON lines, mostly in time order, with a few bad ones."""
    import orjson

    rng = np.random.default_rng(seed + 1)
    # Its own generator, so the injected nulls leave every other drawn value as it was.
    nulls = np.random.default_rng(seed + 2)
    offsets = np.sort(rng.uniform(0, DURATION.total_seconds(), N_EVENTS))
    credit: list[tuple[datetime, bytes]] = []
    for i, offset in enumerate(offsets):
        ts = START + timedelta(seconds=float(offset))
        tenant = STABLE_TENANT if i % 2 == 0 else SHIFTED_TENANT
        region = "eu-west-1" if tenant == STABLE_TENANT else "us-east-1"
        shifted = tenant == SHIFTED_TENANT and ts >= SHIFT_AT
        income = float(rng.lognormal(8.4, 0.45)) * (1.6 if shifted else 1.0)
        country = "BR" if shifted and rng.random() < 0.3 else str(rng.choice(COUNTRIES, p=COUNTRY_SHARES))
        channel = "mobile" if rng.random() < 0.6 else "web"
        entity = f"cust-{int(rng.integers(0, 5000))}"
        age = int(np.clip(round(rng.normal(41, 12)), 18, 95))
        score = round(float(rng.uniform()), 4)
        event = {
            "event_id": f"e-{i}",
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "model": "credit-risk",
            "model_version": "3.2.0",
            "tenant": tenant,
            "region": region,
            "route": "/score",
            "segment": {"channel": channel},
            "entity_id": entity,
            "features": {
                "age": age,
                "income": round(income, 2),
                "country": country,
            },
            "prediction": {"score": score, "label": label_of(score)},
        }
        if tenant == NULL_TENANT and ts >= NULL_AT and nulls.random() < NULL_SHARE:
            event["features"][NULL_FEATURE] = None  # type: ignore[index]
        credit.append((ts, orjson.dumps(event)))
    # The two models' events interleave in time (each model's windows see only its own).
    from drift.demo import skew

    # The value-skew scenario: offline values first (stamped before any inference), then its
    # model's inference events interleaved with the others.
    scenario = skew.events(model=SKEW_MODEL, tenant=SKEW_TENANT, n_events=N_SKEW_EVENTS)
    limit = [(datetime.fromisoformat(orjson.loads(line)["ts"].replace("Z", "+00:00")), line)
             for line in scenario.inference]
    merged = heapq.merge(credit, _doc_events(seed), limit, key=lambda item: item[0])
    lines = list(scenario.features) + [line for _, line in merged]
    bad = [
        b"{not json",
        b"",
        b'{"ts": "2026-11-02T09:00:00Z", "model": "fraud", "features": {}}',
        b'{"model": "credit-risk", "features": {"age": 30}}',
        b'{"ts": "yesterday", "model": "credit-risk", "features": {"age": 30}}',
        b'{"ts": "2026-11-02T09:00:00Z", "model": "credit-risk", "features": {"age": [1, 2]}}',
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
    ]
    for n, line in enumerate(bad):
        lines.insert(500 + n * 700, line)
    # One event stamped 08:05 that arrives near the end of the stream, long after its window closed.
    late_ts = (START + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    late = orjson.dumps({
        "event_id": "late-1", "ts": late_ts, "model": "credit-risk", "model_version": "3.2.0",
        "tenant": STABLE_TENANT, "region": "eu-west-1", "features": {"age": 40, "income": 4400.0, "country": "DE"},
    })
    lines.insert(len(lines) - 10, late)
    return DemoEvents(lines=lines, n_malformed=len(bad), n_late=1, feature_lines=list(scenario.features))
