"""A training–serving skew scenario: feature events and inference events for the same entities.

200 customers of ``credit-risk``, half in ``eu-west-1`` and half in ``us-east-1``. The
offline store holds one version of each customer's features (``feature_set:
customer_profile``), stamped before the first inference. Every inference serves exactly
the offline values, except that ``us-east-1`` serves ``income`` in cents while the
offline store (and the training data) hold dollars: value skew with a ratio of 100 on
one feature of one region, which is also a distribution skew of that feature there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson

START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
DURATION = timedelta(hours=2)
FEATURE_SET = "customer_profile"
SKEWED_REGION = "us-east-1"
CLEAN_REGION = "eu-west-1"
SKEWED_FEATURE = "income"
UNIT_FACTOR = 100.0
COUNTRIES = ("DE", "FR", "ES", "IT", "NL")
COUNTRY_SHARES = (0.35, 0.25, 0.2, 0.12, 0.08)
N_ENTITIES = 200
N_EVENTS = 2000
N_REFERENCE = 20000
SEED = 4

CONFIG = """\
version: 1
kafka:
  bootstrap: ${KAFKA_BOOTSTRAP:-127.0.0.1:9092}
  inference_topic: inference-events
  feature_topic: feature-events
models:
  - name: credit-risk
    cohort: [region]
    window: {size: 30m, allowed_lateness: 5m}
    reference: {parquet: reference.parquet}
    features:
      age: {type: numeric}
      income: {type: numeric}
      country: {type: categorical}
    detectors:
      - skew: {method: jensen_shannon, alert: 0.1,
               values: {feature_set: customer_profile, key: entity_id, max_age: 6h, grace: 3h,
                        tolerance: {abs: 0.01, rel: 0.001}, alert: 0.05}}
    policy: {consecutive_windows: 1, cooldown: 1h}
routing:
  - when: {severity: alert}
    action: ticket
tickets:
  store: sqlite:///./drift-tickets.db
baselines:
  dir: baselines
"""
"""The scenario's config: distribution and value skew, split by region. ``grace: 3h`` lets
feature events arrive as late as they may when two topics are read side by side."""


def _z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _entities(rng: np.random.Generator) -> list[dict[str, Any]]:
    return [
        {
            "entity_id": f"cust-{i}",
            "region": CLEAN_REGION if i % 2 == 0 else SKEWED_REGION,
            "age": int(np.clip(round(rng.normal(41, 12)), 18, 95)),
            "income": round(float(rng.lognormal(8.4, 0.45)), 2),
            "country": str(rng.choice(COUNTRIES, p=COUNTRY_SHARES)),
        }
        for i in range(N_ENTITIES)
    ]


def reference_columns(seed: int = SEED) -> dict[str, Any]:
    """Training data drawn like the customers' offline values (dollars)."""
    rng = np.random.default_rng(seed + 10)
    return {
        "age": np.clip(rng.normal(41, 12, N_REFERENCE), 18, 95).round(),
        "income": rng.lognormal(8.4, 0.45, N_REFERENCE).round(2),
        "country": list(rng.choice(COUNTRIES, size=N_REFERENCE, p=COUNTRY_SHARES)),
    }


@dataclass(frozen=True)
class SkewEvents:
    """Feature event lines and inference event lines (bytes), each in time order."""

    features: list[bytes]
    inference: list[bytes]


def events(seed: int = SEED, model: str = "credit-risk", tenant: str = "acme", n_events: int = N_EVENTS) -> SkewEvents:
    """The scenario's events; ``model``, ``tenant`` and ``n_events`` let ``drift demo`` embed it."""
    rng = np.random.default_rng(seed)
    customers = _entities(rng)
    stamped = START - timedelta(minutes=30)
    features = [
        orjson.dumps({
            "ts": _z(stamped), "feature_set": FEATURE_SET, "entity_id": c["entity_id"], "source": "offline",
            "values": {"age": c["age"], "income": c["income"], "country": c["country"]},
            "materialized_at": _z(stamped + timedelta(minutes=5)),
        })
        for c in customers
    ]
    offsets = np.sort(rng.uniform(0, DURATION.total_seconds(), n_events))
    inference = []
    for i, offset in enumerate(offsets):
        c = customers[int(rng.integers(0, N_ENTITIES))]
        income = c["income"] * UNIT_FACTOR if c["region"] == SKEWED_REGION else c["income"]
        inference.append(orjson.dumps({
            "event_id": f"e-{i}", "ts": _z(START + timedelta(seconds=float(offset))), "model": model,
            "model_version": "3.2.0", "tenant": tenant, "region": c["region"], "entity_id": c["entity_id"],
            "features": {"age": c["age"], "income": round(income, 2), "country": c["country"]},
        }))
    return SkewEvents(features=features, inference=inference)
