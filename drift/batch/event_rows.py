"""Events decoded one by one, turned into block rows, so a batch counts them column-wise too."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from drift.batch.columns import ModelColumns
from drift.categories import category_text
from drift.columnar import MISSING, NULL, OK, WRONG, Block
from drift.events import InferenceEvent
from drift.windowing import to_micros


_ABSENT = object()


def events_block(
    events: Sequence[InferenceEvent], m: ModelColumns, wrong_categorical: bool = False,
) -> tuple[Block | None, list[int]]:
    """Events decoded one by one, as block rows: (the block, positions of events left out).

    Nulls, absent fields, wrong-typed numbers and unknown feature names become cell
    states, so counting the block is counting the events. An event whose categorical
    field holds a container (only prediction fields can) is left out: its example
    order depends on when unseen values are flushed, so it is added on its own; with
    ``wrong_categorical`` it is a row whose cell is wrong-typed, its example the value's
    ``repr`` (the cohort arrays count it so).
    """
    numeric_paths = [*m.numeric, *(f"prediction.{p}" for p, num in m.predictions if num)]
    categorical_paths = [*m.categorical, *(f"prediction.{p}" for p, num in m.predictions if not num)]
    known = {*m.numeric, *m.categorical}
    kept: list[int] = []
    left: list[int] = []
    matrix = np.full((len(numeric_paths), len(events)), math.nan)
    numeric_states = np.zeros((len(numeric_paths), len(events)), dtype=np.int8)
    texts: list[list[str | None]] = [[] for _ in categorical_paths]
    categorical_states: list[list[int]] = [[] for _ in categorical_paths]
    wrong: dict[str, list[tuple[int, str]]] = {}
    unknown: dict[int, tuple[str, ...]] = {}
    for position, event in enumerate(events):
        cells = [_cell(event, path) for path in categorical_paths]
        if any(state == WRONG for state, _ in cells):
            if not wrong_categorical:
                left.append(position)
                continue
        row = len(kept)
        kept.append(position)
        for j, (state, text) in enumerate(cells):
            categorical_states[j].append(state)
            texts[j].append(text)
            if state == WRONG:
                path = categorical_paths[j]
                wrong.setdefault(path, []).append((row, repr(_value_at(event, path))[:64]))
        for j, path in enumerate(numeric_paths):
            value = _value_at(event, path)
            if value is _ABSENT:
                numeric_states[j, row] = MISSING
            elif value is None:
                numeric_states[j, row] = NULL
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                matrix[j, row] = float(value)
            else:
                numeric_states[j, row] = WRONG
                wrong.setdefault(path, []).append((row, repr(value)[:64]))
        extra = tuple(name for name in event.features if name not in known)
        if extra:
            unknown[row] = extra
    if not kept:
        return None, left
    n = len(kept)
    states = {path: numeric_states[j, :n] for j, path in enumerate(numeric_paths) if numeric_states[j, :n].any()}
    states.update({
        path: np.asarray(categorical_states[j], dtype=np.int8)
        for j, path in enumerate(categorical_paths) if any(categorical_states[j])
    })
    chosen = [events[i] for i in kept]
    block = Block(
        ts=np.asarray([to_micros(e.ts) for e in chosen], dtype=np.int64),
        event_ids=pa.array([e.event_id for e in chosen], type=pa.string()),
        numeric_names=tuple(numeric_paths), numeric=matrix[:, :n].copy(),
        categorical={path: pa.array(texts[j], type=pa.string()) for j, path in enumerate(categorical_paths)},
        raws=[e.raw for e in chosen], states=states, wrong=wrong, unknown=unknown,
    )
    return block, left


def _value_at(event: InferenceEvent, path: str) -> Any:
    if path.startswith("prediction."):
        prediction = event.prediction
        if not isinstance(prediction, dict):
            return _ABSENT
        return prediction.get(path[len("prediction."):], _ABSENT)
    return event.features.get(path, _ABSENT)


def _cell(event: InferenceEvent, path: str) -> tuple[int, str | None]:
    value = _value_at(event, path)
    if value is _ABSENT:
        return MISSING, None
    if value is None:
        return NULL, None
    if isinstance(value, (str, int, float, bool)):
        return OK, category_text(value)
    return WRONG, None
