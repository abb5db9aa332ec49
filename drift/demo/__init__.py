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
"""

from __future__ import annotations

from dataclasses import dataclass
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


def config_text() -> str:
    """The demo's YAML config, as shipped in the package."""
    return resources.files("drift.demo").joinpath("drift.yaml").read_text(encoding="utf-8")


def reference_columns(seed: int = SEED) -> dict[str, Any]:
    """Training data: ``age``, ``income`` and ``country`` columns."""
    rng = np.random.default_rng(seed)
    return {
        "age": np.clip(rng.normal(41, 12, N_REFERENCE), 18, 95).round(),
        "income": rng.lognormal(8.4, 0.45, N_REFERENCE).round(2),
        "country": list(rng.choice(COUNTRIES, size=N_REFERENCE, p=COUNTRY_SHARES)),
    }


@dataclass(frozen=True)
class DemoEvents:
    """Event lines (bytes) in arrival order, and how many of them are unusable."""

    lines: list[bytes]
    n_malformed: int
    n_late: int


def events(seed: int = SEED) -> DemoEvents:
    """The bundled stream: JSON lines, mostly in time order, with a few bad ones."""
    import orjson

    rng = np.random.default_rng(seed + 1)
    # Its own generator, so the injected nulls leave every other drawn value as it was.
    nulls = np.random.default_rng(seed + 2)
    offsets = np.sort(rng.uniform(0, DURATION.total_seconds(), N_EVENTS))
    lines: list[bytes] = []
    for i, offset in enumerate(offsets):
        ts = START + timedelta(seconds=float(offset))
        tenant = STABLE_TENANT if i % 2 == 0 else SHIFTED_TENANT
        region = "eu-west-1" if tenant == STABLE_TENANT else "us-east-1"
        shifted = tenant == SHIFTED_TENANT and ts >= SHIFT_AT
        income = float(rng.lognormal(8.4, 0.45)) * (1.6 if shifted else 1.0)
        country = "BR" if shifted and rng.random() < 0.3 else str(rng.choice(COUNTRIES, p=COUNTRY_SHARES))
        event = {
            "event_id": f"e-{i}",
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "model": "credit-risk",
            "model_version": "3.2.0",
            "tenant": tenant,
            "region": region,
            "route": "/score",
            "segment": {"channel": "mobile" if rng.random() < 0.6 else "web"},
            "entity_id": f"cust-{int(rng.integers(0, 5000))}",
            "features": {
                "age": int(np.clip(round(rng.normal(41, 12)), 18, 95)),
                "income": round(income, 2),
                "country": country,
            },
            "prediction": {"score": round(float(rng.uniform()), 4), "label": "approve"},
        }
        if tenant == NULL_TENANT and ts >= NULL_AT and nulls.random() < NULL_SHARE:
            event["features"][NULL_FEATURE] = None  # type: ignore[index]
        lines.append(orjson.dumps(event))
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
    return DemoEvents(lines=lines, n_malformed=len(bad), n_late=1)
