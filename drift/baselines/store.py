"""Seasonal baselines on disk: one JSON file per model, never pickled, with its format version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping


from drift.errors import BaselineError
from drift.reference import ReferenceProfile, baseline_path
from drift.baselines.scoring import resume
from drift.baselines.state import SeasonalBaseline

if TYPE_CHECKING:
    from drift.config import BaselineConfig


# -- the store on disk ------------------------------------------------------------

SEASONAL_FORMAT = 3
"""Format 2 adds each cohort's ``timezone`` and ``n_holiday_slots`` (format 1: UTC, none);
format 3 the histories of prediction fields, quality rates and embeddings (formats 1 and 2
load with those empty: they fill online, or rebuild with ``--history``)."""


def seasonal_path(directory: Path, model: str) -> Path:
    """Where the seasonal baselines of ``model`` are stored, next to its reference profile."""
    reference = baseline_path(directory, model)
    return reference.with_name(reference.name.removesuffix(".reference.json") + ".seasonal.json")


def save_seasonal(baselines: Mapping[str, SeasonalBaseline], directory: Path, model: str) -> Path:
    """Write every cohort's baseline of ``model`` as one JSON file (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = seasonal_path(directory, model)
    text = json.dumps(
        {"format": SEASONAL_FORMAT, "model": model, "cohorts": {key: b.to_dict() for key, b in sorted(baselines.items())}},
        sort_keys=True,
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def load_seasonal(
    directory: Path, model: str, reference: ReferenceProfile, config: BaselineConfig,
) -> dict[str, SeasonalBaseline]:
    """The stored baselines of ``model`` by cohort key; empty when none were built.

    Raises :class:`~drift.errors.BaselineError` when the file is unreadable or was built
    for other slots, history or reference bins than ``config`` and ``reference``.
    """
    path = seasonal_path(directory, model)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
        cohorts = data["cohorts"]
        if data.get("format") not in (1, 2, SEASONAL_FORMAT) or data.get("model") != model or not isinstance(cohorts, dict):
            raise ValueError(f"expected format 1 to {SEASONAL_FORMAT} for model {model!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(f"{path}: not a valid seasonal baseline file ({type(exc).__name__}: {exc})") from None
    out: dict[str, SeasonalBaseline] = {}
    for key, item in cohorts.items():
        baseline = SeasonalBaseline.from_dict(item, f"{path} cohort {key!r}")
        problem = baseline.mismatch(reference, config)
        if problem is not None:
            raise BaselineError(
                f"{path} cohort {key!r}: does not match the config: {problem}; rebuild it with "
                f"'drift baseline build --config CONFIG --model {model} --reference PATH.parquet --history PATH'"
            )
        out[str(key)] = resume(baseline, reference, config)
    return out
