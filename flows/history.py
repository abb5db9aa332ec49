"""Offline seasonal baselines from a file of historical inference events.

The same decoding, windowing and scoring code as the live flow
(:func:`drift.baselines.build_from_history`), run over a JSONL or Parquet file.
"""

from __future__ import annotations

from pathlib import Path

from connectors.files import iter_file
from drift.baselines import BuildStats, SeasonalBaseline, build_from_history
from drift.config import Config, ModelConfig
from drift.events import Decoder, InferenceEvent, RawMessage
from drift.reference import ReferenceProfile
from flows.pipeline import cohort_of


def seasonal_from_file(
    config: Config, model: ModelConfig, reference: ReferenceProfile, path: Path,
) -> tuple[dict[str, SeasonalBaseline], BuildStats, int]:
    """Baselines per cohort, build statistics, and the number of undecodable lines."""
    decoder = Decoder(
        models=frozenset({model.name}), max_future=config.events.max_future,
        embeddings={k: v for k, v in config.embedding_fields().items() if k == model.name},
        ts_units={model.name: model.ts_unit},
    )
    events: list[InferenceEvent] = []
    n_unusable = 0
    for offset, data in iter_file(path):
        item = decoder(RawMessage(value=data, topic=f"file:{path.name}", partition=0, offset=offset))
        if isinstance(item, InferenceEvent):
            events.append(item)
        else:
            n_unusable += 1
    # Windows close as time moves on, as they do live; sorting makes a file written
    # out of order build the same baseline as one in order.
    events.sort(key=lambda event: event.ts)
    stats = BuildStats()
    baselines = build_from_history(
        events, reference, model, lambda event: cohort_of(event, model.cohort), stats=stats,
    )
    return baselines, stats, n_unusable
