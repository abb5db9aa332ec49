"""Delayed-labels wiring: predictions + label events → one join state per model → quality, SLO findings.

For the models with ``labels:``::

    decoded inference batches ─ label_predictions ─┐
                                                    ├─ key_labels_by_model ─ judge_labels (stateful)
    label messages ─ decode_labels ─ label_batches ─┘        ├─ slo findings → stream policy → tickets
                                        └─ dead letters       └─ quality records (run output)

The stateful step holds, per model, a :class:`drift.labels.judging.LabelState` (the
predictions waiting for their labels, the outcomes per cohort window, the cohorts and the
prediction-time watermark) and the model's :class:`drift.labels.slo.SloBook`. The judging
rule is :mod:`drift.labels.judging`'s: a cohort window is judged once, when it has closed
and its label coverage reached the gate, or when the horizon has passed it. The SLO
findings of a judged window (``detector: slo``) go through the same policy as the other
per-event findings; a quality record per judged cohort window goes to the run's output.
At the end of the input the windows still waiting are reported with their quality so far
(``judged: false``) and stay in the state.

Predictions are the decoded rows of the cohorts (not of rollups) with their join key
(``event_id``, or the categorical feature ``labels.join_key``), ``ts`` and the prediction
field (``labels.prediction``), which the batch decoder reads for these models even when no
detector profiles it (:func:`with_label_prediction`).

Label events come from ``kafka.labels_topic`` (``label_source``), and from the same file
as the inference events in a replay: a line with a top-level ``label`` key and no
``features`` (:func:`drift.labels.events.is_label_message`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional, Sequence, Union, cast

import bytewax.operators as op
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic

from drift import metrics
from flows.clock import engine_deadline
from drift.batch import DecodedBatch, ModelRows
from drift.batch.columns import ModelColumns
from drift.columnar import OK
from drift.config import Config, ModelConfig
from drift.config.labels import LabelsConfig
from drift.events import RawMessage
from drift.findings import Cohort, Finding
from drift.labels.events import STEP_ID as LABEL_STEP_ID
from drift.labels.events import LabelBatch, LabelDecoder, LabelSpec, is_label_message
from drift.labels.judging import (
    DEFAULT_GATE,
    JudgedWindows,
    LabelState,
    PredictionRows,
    QualityReport,
    quality_reports,
    usable_predictions,
)
from drift.labels.slo import SloBook, SloConfig, min_coverage

STEP_ID = "judge_labels"

LabelOutput = Union[Finding, QualityReport]
LabelSnapshot = tuple[LabelState, SloBook]


@dataclass(frozen=True)
class LabelPlan:
    """One model with ``labels:``: its config, its SLOs and the coverage gate."""

    model: ModelConfig
    labels: LabelsConfig
    slos: tuple[SloConfig, ...]
    """The model's SLOs, with the gate (``label_coverage >= x before judging``) always among them."""
    gate: float


def label_plans(config: Config) -> list[LabelPlan]:
    """The models with ``labels:`` (none: the flow reads no label events)."""
    out = []
    for model in config.models:
        if model.labels is None:
            continue
        slos = tuple(model.slo)
        if not any(s.judging for s in slos):
            # Without a gate of its own a model is judged at DEFAULT_GATE, and its SLO findings
            # are skipped below it, as with a gate written in the config.
            slos = (*slos, SloConfig.model_validate(f"label_coverage >= {DEFAULT_GATE} before judging"))
        out.append(LabelPlan(model, model.labels, slos, min_coverage(slos)))
    return out


def needs_label_events(config: Config) -> bool:
    """Whether the flow reads label events: some model has ``labels:``."""
    return any(model.labels is not None for model in config.models)


def label_specs(config: Config) -> dict[str, LabelSpec]:
    """What the label decoder needs of every model with ``labels:``."""
    return {
        model.name: LabelSpec(model.labels.kind, model.labels.join_key, model.labels.n_classes, model.ts_unit)
        for model in config.models if model.labels is not None
    }


def with_label_prediction(columns: ModelColumns, model: ModelConfig) -> ModelColumns:
    """``columns`` reading the model's ``labels.prediction`` field too (as a number), if no
    detector profiles it already."""
    if model.labels is None:
        return columns
    name = model.labels.prediction_field
    if any(p == name for p, _ in columns.predictions):
        return columns
    return ModelColumns(
        columns.name, columns.cohort, columns.numeric, columns.categorical, (*columns.predictions, (name, True)),
        columns.columnar, columns.per_event,
    )


# -- predictions ---------------------------------------------------------------------------


def _numbers(column: Any, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A block column as floats (NaN where a value is not a number)."""
    if isinstance(column, np.ndarray):
        return column.astype(np.float64, copy=False)
    out = np.full(n, np.nan)
    for i, value in enumerate(column.to_pylist()):
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            pass
    return out


def prediction_rows(plan: LabelPlan, item: ModelRows) -> PredictionRows:
    """The predictions of a model's decoded rows, with their join keys, cohorts and ``ts``."""
    block, labels = item.block, plan.labels
    n = len(block)
    path = labels.prediction
    if path in block.numeric_names:
        values = block.numeric[block.numeric_names.index(path)].astype(np.float64)
    elif path in block.categorical:
        values = _numbers(block.categorical[path], n)
    else:
        values = np.full(n, np.nan)
    states = block.states.get(path)
    valid = usable_predictions(labels.kind, values, labels.n_classes)
    if states is not None:
        valid &= states == OK
    if labels.join_key == "event_id":
        ids = block.event_ids
    else:
        ids = block.categorical[labels.join_key]
        key_states = block.states.get(labels.join_key)
        if key_states is not None and (key_states != OK).any():
            ids = pc.if_else(pa.array(key_states == OK), ids, pa.nulls(n, ids.type))
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if not pa.types.is_string(ids.type):
        ids = ids.cast(pa.string())
    encoded = item.keys.dictionary_encode()
    keys = encoded.dictionary.to_pylist()
    cohorts = [Cohort(item.model, item.labels[key]) for key in keys]
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return PredictionRows(item.model, ids, codes, cohorts, block.ts, values, valid)


@dataclass(slots=True)
class LabelledBatch(DecodedBatch):
    """A decoded batch with the label events that came in the same source batch."""

    labels: list[LabelBatch] = field(default_factory=list)


class LabelMessages(list[RawMessage]):
    """A source batch's inference messages, with its label messages set aside in ``labels``."""

    def __init__(self, inference: Iterable[RawMessage], labels: list[RawMessage]) -> None:
        super().__init__(inference)
        self.labels = labels


@dataclass(frozen=True)
class ModelBatch:
    """What one source batch brings one model with ``labels:``: predictions, labels, or both."""

    model: str
    predictions: PredictionRows | None
    labels: LabelBatch | None


def model_batches(plans: dict[str, LabelPlan]) -> Callable[[DecodedBatch], list[ModelBatch]]:
    """The predictions (cohort rows only) and labels of a decoded batch, one item per model."""
    def extract(batch: DecodedBatch) -> list[ModelBatch]:
        predictions = {item.model: prediction_rows(plans[item.model], item) for item in batch.models
                       if item.model in plans and item.members is None and len(item)}
        labels = {b.model: b for b in batch.labels} if isinstance(batch, LabelledBatch) else {}
        return [ModelBatch(model, predictions.get(model), labels.get(model))
                for model in plans if model in predictions or model in labels]
    return extract


# -- the stateful step ---------------------------------------------------------------------


class LabelsLogic(StatefulLogic["ModelBatch", LabelOutput, LabelSnapshot]):
    """A model's :class:`LabelState` and :class:`SloBook` as Bytewax stateful logic (clock injected).

    ``copies``: snapshots are independent copies (a recovery store keeps them); False hands
    Bytewax the live state, for runs without one.
    """

    def __init__(self, plan: LabelPlan, now: Callable[[], datetime], resume: LabelSnapshot | None,
                 copies: bool = True) -> None:
        self.plan, self.now, self.copies = plan, now, copies
        model, labels = plan.model, plan.labels
        if resume is not None:
            self.state, self.book = resume
            self.state.resumed(now())
        else:
            self.state = LabelState(
                model.name, labels.kind, model.window.size, model.window.allowed_lateness, labels.horizon,
                labels.cap, gate=plan.gate, threshold=labels.score_threshold, n_classes=labels.n_classes,
                n_bins=labels.calibration_bins,
            )
            self.book = SloBook(model.name, labels.kind, plan.slos, model.window.size)
        self.book.metrics = metrics.cohort_metrics()
        # Counts reported to Prometheus so far (a resumed state's were reported before the restart).
        self._reported = self._counts()

    def _counts(self) -> dict[tuple[str, str], int]:
        pending, counters = self.state.pending, self.state.counters
        out = {
            ("labels", "joined"): pending.n_joined, ("labels", "unmatched"): pending.n_unmatched_labels,
            ("labels", "duplicate"): pending.n_duplicate_labels, ("labels", "without_id"): pending.n_without_id,
            ("predictions", "duplicate"): pending.n_duplicate_predictions,
            ("evicted", "expired"): pending.n_evicted["expired"], ("evicted", "capped"): pending.n_evicted["capped"],
        }
        out.update({("labels", k): v for k, v in counters.labels.items()})
        out.update({("predictions", k): v for k, v in counters.predictions.items()})
        out.update({("judged", k): v for k, v in self.state.n_judged.items()})
        return out

    def _report(self) -> None:
        name = self.plan.model.name
        counts = self._counts()
        for (what, outcome), value in counts.items():
            delta = value - self._reported.get((what, outcome), 0)
            if delta <= 0:
                continue
            if what == "labels":
                metrics.LABELS.labels(name, outcome).inc(delta)
            elif what == "predictions":
                metrics.LABEL_PREDICTIONS.labels(name, outcome).inc(delta)
            elif what == "evicted":
                metrics.LABEL_EVICTIONS.labels(name, outcome).inc(delta)
            else:
                metrics.LABEL_WINDOWS_JUDGED.labels(name, outcome).inc(delta)
        self._reported = counts
        metrics.LABEL_PREDICTIONS_HELD.labels(name).set(len(self.state.pending))

    def _emit(self, *all_judged: JudgedWindows, waiting: bool = False) -> tuple[Iterable[LabelOutput], bool]:
        out: list[LabelOutput] = []
        for judged in all_judged:
            if not len(judged):
                continue
            found = self.book.judge(judged.cohorts, judged.windows, judged.counts)
            for finding in found:
                metrics.FINDINGS.labels(finding.cohort.model, finding.detector, finding.severity.value).inc()
                metrics.record_finding(finding.cohort, finding)
            out.extend(found)
            out.extend(quality_reports(judged.cohorts, judged.windows, judged.counts, judged.judged_by))
        if waiting and len(self.state.outcomes):
            cohorts, windows, counts = self.state.waiting()
            out.extend(quality_reports(cohorts, windows, counts, [None] * len(cohorts)))
        self._report()
        return out, StatefulLogic.RETAIN

    def on_item(self, value: ModelBatch) -> tuple[Iterable[LabelOutput], bool]:
        now = self.now()
        judged: list[JudgedWindows] = []
        # The batch's labels first: they wait for the predictions before their ts, which the
        # batch's predictions (added in ts order) may bring.
        if value.labels is not None:
            judged.extend(self.state.add_labels(value.labels.keys, value.labels.labels, value.labels.ts, now))
        if value.predictions is not None:
            judged.extend(self.state.add_predictions(value.predictions, now))
        return self._emit(*judged)

    def on_notify(self) -> tuple[Iterable[LabelOutput], bool]:
        return self._emit(*self.state.advance(self.now()))

    def on_eof(self) -> tuple[Iterable[LabelOutput], bool]:
        # Every prediction there is has been read: the labels waiting for theirs join now. The
        # windows still open keep waiting (a resumed run goes on with them); the run's output
        # shows their quality so far.
        return self._emit(*self.state.flush(self.now()), waiting=True)

    def notify_at(self) -> Optional[datetime]:
        now = self.now()
        return engine_deadline(self.state.next_deadline(now), now)

    def snapshot(self) -> LabelSnapshot:
        return copy.deepcopy((self.state, self.book)) if self.copies else (self.state, self.book)


# -- wiring --------------------------------------------------------------------------------


def attach_label_messages(
    flow: Dataflow, raw: Stream[list[RawMessage]], labels_topic: str, label_source: Source[Any] | None,
    as_batch: Callable[[Any], list[RawMessage]],
) -> Stream[list[RawMessage]]:
    """Source batches whose label messages are set aside (:class:`LabelMessages`) for
    :func:`with_labels` to decode with the batch.

    ``label_source`` is a second input (Kafka: ``kafka.labels_topic``, its items turned into
    batches by ``as_batch``); files carry both kinds in one JSONL, told apart by
    :func:`drift.labels.events.is_label_message`. A file's batch keeps its predictions and
    labels together, so that the labels step sees them in the file's order.
    """
    if label_source is not None:
        extra = op.map("as_label_batch", op.input("read_labels", flow, label_source), as_batch)
        raw = op.merge("merge_label_inputs", raw, extra)

    def split(batch: list[RawMessage]) -> list[RawMessage]:
        kinds = [is_label_message(m, labels_topic) for m in batch]
        if not any(kinds):
            return batch
        return LabelMessages([m for m, k in zip(batch, kinds) if not k], [m for m, k in zip(batch, kinds) if k])

    return op.map("split_label_messages", raw, split)


def label_decoder(config: Config, now: Callable[[], datetime] | None = None) -> LabelDecoder:
    """The decoder of the config's label events."""
    clock = now if now is not None else (lambda: datetime.now(timezone.utc))
    return LabelDecoder(label_specs(config), frozenset(m.name for m in config.models),
                        max_future=config.events.max_future, now=clock)


def with_labels(
    decode: Callable[[Sequence[RawMessage]], DecodedBatch], labels: LabelDecoder,
) -> Callable[[Sequence[RawMessage]], DecodedBatch]:
    """``decode``, which also decodes the label messages set aside in a batch: the result is a
    :class:`LabelledBatch`, the labels' dead letters among its own (step id ``decode_label``)."""
    def run(raws: Sequence[RawMessage]) -> DecodedBatch:
        if not isinstance(raws, LabelMessages):
            return decode(raws)
        batch = decode(raws) if len(raws) else DecodedBatch()
        decoded, dead = labels.decode_batch(raws.labels)
        n = sum(len(b) for b in decoded)
        if n:
            metrics.EVENTS_IN.labels(LABEL_STEP_ID, "ok").inc(n)
        values = {f.name: getattr(batch, f.name) for f in fields(DecodedBatch)}
        values["dead"] = [*batch.dead, *dead]
        return LabelledBatch(**values, labels=decoded)
    return run


@dataclass(frozen=True)
class LabelStreams:
    """What the labels step hands on: SLO findings, quality records, and one item per decoded
    label event (the model's name), for the run's accounting."""

    findings: Stream[Finding]
    quality: Stream[QualityReport]
    events: Stream[str]


def label_streams(
    plans: list[LabelPlan], decoded: Stream[DecodedBatch], now: Callable[[], datetime] | None = None,
    copies: bool = True,
) -> LabelStreams:
    """The labels step of every plan, fed by the decoded batches (:func:`with_labels`)."""
    clock = now if now is not None else (lambda: datetime.now(timezone.utc))
    by_model = {plan.model.name: plan for plan in plans}
    items = op.flat_map("label_inputs", decoded, model_batches(by_model))
    outputs: list[Stream[LabelOutput]] = []
    for plan in plans:
        outputs.append(_one_model(plan, items, clock, copies))
    judged = outputs[0] if len(outputs) == 1 else op.merge("label_outputs", *outputs)
    branch = op.branch("split_label_outputs", judged, lambda item: isinstance(item, Finding))
    events = op.flat_map("count_label_events", items, lambda b: [b.model] * (len(b.labels) if b.labels else 0))
    return LabelStreams(cast(Stream[Finding], branch.trues), cast(Stream[QualityReport], branch.falses), events)


def _one_model(plan: LabelPlan, inputs: Stream[ModelBatch], now: Callable[[], datetime],
               copies: bool) -> Stream[LabelOutput]:
    """One model's step: its predictions and labels, keyed by the model, into its labels state."""
    model = plan.model.name
    name = "".join(ch if ch.isalnum() else "_" for ch in model)
    mine = op.filter(f"labels_of_{name}", inputs, lambda item: item.model == model)
    keyed = op.key_on(f"key_labels_{name}", mine, lambda _item: model)
    judged = op.stateful(f"{STEP_ID}_{name}", keyed, lambda resume: LabelsLogic(plan, now, resume, copies))
    return op.key_rm(f"unkey_labels_{name}", judged)
