"""A rollout scenario: delayed labels with a quality SLO, and a canary beside the champion.

``fraud-scorer`` scores card payments of two tenants, ``north`` and ``south``, over four
hours in one-hour windows. Every payment is served by the current model (route
``champion``, 65% of the traffic) or by the model being rolled out (route ``canary``, 35%).
Whether a payment was fraud is known later: a label event arrives 20 minutes to 3 hours
after the prediction (one in ten never does), so the file holds predictions and labels in
the order they happened.

Two things go wrong, each seen by one part of the loop:

- **Fraud the model misses** (``north``, from 10:00): fraudsters start making payments that
  look like everyone else's, and the model scores them as legitimate. No feature and no
  score moves, so the drift detectors stay quiet; once the labels arrive, the recall of
  ``north``'s champion drops from about 0.98 to about 0.5, and the SLO
  ``recall >= 0.8 over 1h on cohorts route=champion`` is breached: one ticket, with the SLO
  context (recall, error budget, burn rate).
- **A canary that scores differently** (``south``, all along): the new model's scores are
  shifted up for ``south``'s payments. Compared with the champion of the same tenant and
  window, its ``prediction.score`` histogram moves far past the canary's PSI alert: a
  ``canary.halt`` signal (on ``kafka.halt_topic`` when run on Kafka) and one ticket. The
  ``score`` detector also sees the canary's scores move against the training data.

``north``'s canary scores like its champion and is never halted.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from drift.demo.skew import _z

MODEL = "fraud-scorer"
START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
DURATION = timedelta(hours=4)
TENANTS = ("north", "south")
SLO_TENANT = "north"
"""The tenant whose champion misses the new fraud (the SLO breach)."""
MISSED_FRAUD_AT = START + timedelta(hours=2)
MISSED_FRAUD_SHARE = 0.12
"""Share of ``north``'s payments from 10:00 that are fraud the model scores as legitimate."""
CANARY_TENANT = "south"
"""The tenant whose canary scores higher than its champion (the canary halt)."""
CANARY_SHIFT = 1.5
"""How far (in log-odds) the canary's scores are moved up for :data:`CANARY_TENANT`."""
CANARY_SHARE = 0.35
FRAUD_RATE = 0.1
MERCHANTS = ("grocery", "fuel", "online", "travel")
LEGIT_MERCHANTS = (0.4, 0.2, 0.3, 0.1)
FRAUD_MERCHANTS = (0.1, 0.1, 0.5, 0.3)
EVENTS_PER_HOUR = 800
"""Payments per tenant per hour."""
LABEL_DELAY = (timedelta(minutes=20), timedelta(hours=3))
UNLABELLED = 0.1
N_REFERENCE = 20000
SEED = 20261103
REFERENCE_FILE = "fraud-reference.parquet"

CONFIG = """\
# drift demo --scenario rollout: delayed labels with a quality SLO, and a canary beside the
# champion (drift/demo/rollout.py says what happens in the data).
version: 1
kafka:
  bootstrap: ${KAFKA_BOOTSTRAP:-127.0.0.1:9092}
  inference_topic: inference-events
  labels_topic: labels
  halt_topic: drift-halts
models:
  - name: fraud-scorer
    cohort: [tenant, route]
    window: {size: 1h, allowed_lateness: 5m}
    reference: {parquet: fraud-reference.parquet}
    impact: {tier: medium, regulated: false}
    features:
      amount: {type: numeric, min: 0}
      merchant: {type: categorical}
    detectors:
      - psi: {features: "*", bins: 10, warn: 0.1, alert: 0.25}
      # Profiles prediction.score, which the canary compares.
      - score: {field: prediction.score, psi: {warn: 0.1, alert: 0.25}}
    # Whether a payment was fraud comes later, on the labels topic (here: label lines).
    labels: {kind: binary, prediction: prediction.score, threshold: 0.5, horizon: 1d}
    slo:
      - recall >= 0.8 over 1h on cohorts route=champion
      - label_coverage >= 0.5 before judging
    # The new model (route canary) against the current one (route champion), per tenant and window.
    canary: {champion: champion, compare: [canary], fields: [prediction.score, amount, merchant],
             psi: {warn: 0.1, alert: 0.25}, min_samples: 200}
    policy: {consecutive_windows: 1, cooldown: 1h}
routing:
  - when: {severity: alert}
    action: ticket
tickets:
  store: sqlite:///./drift-tickets.db
baselines:
  dir: baselines
"""


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


def _payments(rng: np.random.Generator, fraud: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Amounts, merchants and the champion's log-odds of payments whose label is ``fraud``."""
    n = fraud.size
    amount = np.where(fraud, rng.lognormal(5.2, 0.8, n), rng.lognormal(3.8, 0.9, n)).round(2)
    merchant = [str(rng.choice(MERCHANTS, p=FRAUD_MERCHANTS if f else LEGIT_MERCHANTS)) for f in fraud]
    logit = np.where(fraud, rng.normal(2.2, 1.0, n), rng.normal(-2.6, 1.0, n))
    return amount, merchant, logit


def reference_columns(seed: int = SEED) -> dict[str, Any]:
    """The training data: payments of both tenants with the champion's scores."""
    rng = np.random.default_rng(seed + 1)
    fraud = rng.uniform(size=N_REFERENCE) < FRAUD_RATE
    amount, merchant, logit = _payments(rng, fraud)
    return {"amount": amount, "merchant": merchant, "score": _sigmoid(logit).round(4)}


def write_reference(folder: Path, seed: int = SEED) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(reference_columns(seed)), folder / REFERENCE_FILE)


@dataclass(frozen=True)
class RolloutEvents:
    """The scenario's lines in the order they happened: predictions and the labels that follow."""

    lines: list[bytes]
    predictions: list[bytes]
    labels: list[bytes]
    """The label events among ``lines`` (on Kafka: ``kafka.labels_topic``)."""


def events(seed: int = SEED) -> RolloutEvents:
    rng = np.random.default_rng(seed)
    timed: list[tuple[float, int, bytes]] = []
    predictions: list[bytes] = []
    labels: list[bytes] = []
    hours = int(DURATION.total_seconds() // 3600)
    n = 0
    for tenant in TENANTS:
        for hour in range(hours):
            start = START + timedelta(hours=hour)
            offsets = np.sort(rng.uniform(0, 3600, EVENTS_PER_HOUR))
            fraud = rng.uniform(size=EVENTS_PER_HOUR) < FRAUD_RATE
            amount, merchant, logit = _payments(rng, fraud)
            if tenant == SLO_TENANT and start >= MISSED_FRAUD_AT:
                # Fraud that looks legitimate: drawn like legitimate payments, labelled fraud.
                missed = ~fraud & (rng.uniform(size=EVENTS_PER_HOUR) < MISSED_FRAUD_SHARE / (1 - FRAUD_RATE))
                fraud = fraud | missed
            canary = rng.uniform(size=EVENTS_PER_HOUR) < CANARY_SHARE
            shift = np.where(canary & (tenant == CANARY_TENANT), CANARY_SHIFT, 0.0)
            score = _sigmoid(logit + shift).round(4)
            delays = rng.uniform(LABEL_DELAY[0].total_seconds(), LABEL_DELAY[1].total_seconds(), EVENTS_PER_HOUR)
            labelled = rng.uniform(size=EVENTS_PER_HOUR) >= UNLABELLED
            for i in range(EVENTS_PER_HOUR):
                ts = start + timedelta(seconds=float(offsets[i]))
                event_id = f"pay-{n}"
                n += 1
                line = orjson.dumps({
                    "event_id": event_id, "ts": _z(ts), "model": MODEL, "model_version": "7.1.0",
                    "tenant": tenant, "route": "canary" if canary[i] else "champion",
                    "features": {"amount": float(amount[i]), "merchant": merchant[i]},
                    "prediction": {"score": float(score[i])},
                })
                predictions.append(line)
                heapq.heappush(timed, (ts.timestamp(), len(timed), line))
                if labelled[i]:
                    known = ts + timedelta(seconds=float(delays[i]))
                    label = orjson.dumps({"model": MODEL, "event_id": event_id, "ts": _z(known),
                                          "label": int(fraud[i])})
                    labels.append(label)
                    heapq.heappush(timed, (known.timestamp(), len(timed), label))
    lines = [heapq.heappop(timed)[2] for _ in range(len(timed))]
    return RolloutEvents(lines=lines, predictions=predictions, labels=labels)
