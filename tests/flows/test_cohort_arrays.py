"""The cohort arrays against the per-cohort engine they replaced, on random streams.

The oracle (``oracle_windows.CohortWindows``) keeps one state per cohort and counts
each window with :func:`drift.summary.add_event` / :func:`drift.columnar.add_block`;
the array engine (:class:`flows.shard_windows.ShardWindows`) keeps every cohort of a
shard as a row of :class:`drift.cohort_arrays.WindowArrays`. On random streams (many
cohorts, nulls, absent fields, wrong types, values out of range, unseen categories,
unknown feature names, duplicate event ids, out-of-order and late events, random batch
cuts, Arrow IPC messages) both must close the same cohort windows with the same counts
and send the same events to the dead letters.

The array engine keeps a cohort's watermark once its windows closed, where a flow drops
the oracle's state with its last window. So either the system clock is frozen (a
watermark then moves with its cohort's events only), or the oracle is driven directly,
its state kept, and the array engine never frees a row as idle.

Windows are compared field by field: counts exactly, example lists as sets (the array
engine counts rows in arrival order, the oracle in ``ts`` order; the streams draw at most
five distinct offending values per feature, so no list is cut), moments within a
relative 1e-12 (mean) and 1e-9 (m2).

The whole flow (:func:`flows.pipeline.build_flow`) is checked the same way: its
findings must be those of the model's detectors scoring the oracle's windows.
"""

from __future__ import annotations

import pickle
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bytewax.testing import TestingSource, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from connectors.memory import ListSink
from drift.batch import BatchDecoder, DecodedBatch, encode_arrow, model_columns
from drift.cohort_arrays import layout_of
from drift.config import load_config
from drift.events import DeadLetter, Decoder, RawMessage
from drift.findings import Finding, Severity
from drift.reference import PredictionColumn, build_reference
from drift.summary import SchemaState, WindowSummary, track_schema
from flows.pipeline import Outputs, batch_decoder, build_flow, plan_models
from flows.runner import load_profiles
from flows.shard_windows import ShardSpec, ShardState, ShardWindows, as_shards, shard_key, shard_of
from oracle_windows import CohortWindows, WindowSpec, as_pieces, window_specs

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 27, 9, tzinfo=timezone.utc)
SIZE = timedelta(minutes=10)
SHARDS = 4
RNG = np.random.default_rng(11)
N_REFERENCE = 1000
REFERENCE = {
    "x": RNG.normal(size=N_REFERENCE),
    "y": RNG.uniform(0, 50, size=N_REFERENCE),
    "c": [["a", "b", "c"][i % 3] for i in range(N_REFERENCE)],
    "score": RNG.uniform(size=N_REFERENCE),
    "label": [["approve", "deny"][i % 2] for i in range(N_REFERENCE)],
}
PROFILE = build_reference(
    "m", REFERENCE, {"x": "numeric", "y": "numeric", "c": "categorical"}, {"x": 6, "y": 5}, "test", N_REFERENCE,
    predictions={"prediction.score": PredictionColumn("score", "numeric", 4),
                 "prediction.label": PredictionColumn("label", "categorical")},
)
BOUNDS: dict[str, tuple[float | None, float | None]] = {"y": (0.0, 50.0)}
"""``y`` has a configured range; ``x`` is bounded by the reference's own [min, max]."""
DECODER = Decoder(models=frozenset({"m"}), now=lambda: NOW)
LABELS = ("tenant", "region")

# Offending values, at most five distinct per feature (the example lists keep five).
X_WRONG = ["12", "abc", True]
X_OUT = [-9.5, 7.25, 1e9]
Y_WRONG = ["7"]
Y_OUT = [-1.5, 50.5, 75.0, 1e6]
C_UNSEEN = ["zz", "q", "\u00fc"]
C_NUMBERS = [12, 3.5]
"""Numbers sent to a categorical feature: unseen categories ``"12"`` and ``"3.5"``."""
SCORE_WRONG = ["0.5", [1]]
LABEL_WRONG = [[1], {"k": 1}]
LABEL_UNSEEN = ["maybe", 1]
UNKNOWN = ["zip", "extra", "x2"]
DUPLICATE_IDS = ["d0", "d1", "d2", "d3"]
STEPS = [0, 5, 5, 20, 20, 60, 60, 200, -30, -400, -1500]
"""Seconds from the newest ``ts`` so far: mostly forward, sometimes back (reordered, or late)."""


# -- random streams ------------------------------------------------------------------------


def _value(draw: st.DrawFn, dirt: list[str], normal: Any, offending: list[Any], numbers: list[Any]) -> Any:
    """A field's value: mostly ``normal``; else, as ``dirt`` draws, null, absent (``_ABSENT``),
    an offending value, or one of ``numbers`` (a valid type, out of range or unseen)."""
    kind = draw(st.sampled_from(dirt))
    if kind == "ok":
        return normal
    if kind == "null":
        return None
    if kind == "absent":
        return _ABSENT
    return draw(st.sampled_from(offending if kind == "bad" else numbers))


DIRT = [
    ["ok"] * 9 + ["number"],
    ["ok"] * 12 + ["null", "absent", "bad", "number"],
    ["ok"] * 5 + ["null", "absent", "bad", "number"],
]
"""How often a field is null, absent, wrong-typed or out of range / unseen: a clean stream
(its numeric columns are counted together, as a matrix), a little dirty, dirty."""


_ABSENT = object()


def _event(
    draw: st.DrawFn, dirt: list[str], i: int, ts: datetime, cohort: tuple[str | None, str | None], model: str = "m",
) -> dict[str, Any]:
    features: dict[str, Any] = {
        "x": _value(draw, dirt, round(draw(st.floats(-2, 2)), 3), X_WRONG, X_OUT),
        "y": _value(draw, dirt, draw(st.sampled_from([0, 3, 12.5, 25.25, 49.0, 50])), Y_WRONG, Y_OUT),
        "c": _value(draw, dirt, draw(st.sampled_from(["a", "b", "c"])), C_NUMBERS, C_UNSEEN),
    }
    features = {k: v for k, v in features.items() if v is not _ABSENT}
    for name in draw(st.lists(st.sampled_from(UNKNOWN), max_size=2)) if draw(st.sampled_from(dirt)) != "ok" else []:
        features[name] = 1.0
    body: dict[str, Any] = {"model": model, "features": features}
    stamp = draw(st.sampled_from(["iso", "z", "ms"]))
    body["ts"] = (int(ts.timestamp() * 1000) if stamp == "ms"
                  else ts.isoformat().replace("+00:00", "Z") if stamp == "z" else ts.isoformat())
    tenant, region = cohort
    if tenant is not None:
        body["tenant"] = tenant
    if region is not None:
        body["region"] = region
    id_kind = draw(st.sampled_from(["unique", "unique", "duplicate", "none"]))
    if id_kind == "unique":
        body["event_id"] = f"u{i}"
    elif id_kind == "duplicate":
        body["event_id"] = draw(st.sampled_from(DUPLICATE_IDS))
    prediction = {
        "score": _value(draw, dirt, round(draw(st.floats(0, 1)), 4), SCORE_WRONG, [0.25]),
        "label": _value(draw, dirt, draw(st.sampled_from(["approve", "deny"])), LABEL_WRONG, LABEL_UNSEEN),
    }
    prediction = {k: v for k, v in prediction.items() if v is not _ABSENT}
    if prediction or draw(st.booleans()):
        body["prediction"] = prediction
    return body


def _arrow(bodies: list[dict[str, Any]]) -> bytes | None:
    """The events as one Arrow IPC message (``ts`` as text), or None where Arrow cannot type a column."""
    rows = [{**b, "ts": b["ts"] if isinstance(b["ts"], str) else
             datetime.fromtimestamp(b["ts"] / 1000, timezone.utc).isoformat()} for b in bodies]
    try:
        return encode_arrow(rows)
    except (pa.ArrowException, TypeError, ValueError):
        return None


@st.composite
def streams(
    draw: st.DrawFn, max_events: int = 240, max_cohorts: int = 50, models: tuple[str, ...] = ("m",),
) -> list[RawMessage]:
    """Messages of ``models`` in up to ``max_cohorts`` cohorts each, with a few that do not decode."""
    n_cohorts = draw(st.integers(1, max_cohorts))
    names = draw(st.lists(st.text("abxyz-\u00e9", max_size=3), min_size=n_cohorts, max_size=n_cohorts))
    cohorts = [(None if j == 0 else f"{name}{j}", draw(st.sampled_from([None, "eu", "us"])))
               for j, name in enumerate(names)]
    n = draw(st.integers(1, max_events))
    dirt = draw(st.sampled_from(DIRT))
    arrow = draw(st.booleans())
    newest = T0
    values: list[bytes] = []
    run: list[dict[str, Any]] = []
    for i in range(n):
        ts = newest + timedelta(seconds=draw(st.sampled_from(STEPS)))
        newest = max(newest, ts)
        kind = draw(st.integers(0, 40))
        if kind == 0:
            values.append(b"{not json")
        elif kind == 1:
            values.append(orjson.dumps({"model": "m", "ts": (NOW + timedelta(days=1)).isoformat(), "features": {}}))
        else:
            body = _event(draw, dirt, i, ts, draw(st.sampled_from(cohorts)), draw(st.sampled_from(models)))
            if not arrow:
                values.append(orjson.dumps(body))
                continue
            # Runs of events sent as one Arrow IPC message (a batching producer), where Arrow can type them.
            run.append(body)
            if draw(st.integers(0, 5)) == 0 or i == n - 1:
                packed = _arrow(run)
                values.extend([packed] if packed is not None else [orjson.dumps(b) for b in run])
                run = []
    if run:
        packed = _arrow(run)
        values.extend([packed] if packed is not None else [orjson.dumps(b) for b in run])
    return [RawMessage(value, "inference", 0, i) for i, value in enumerate(values)]


def _cut(raws: list[RawMessage], cuts: list[int]) -> list[list[RawMessage]]:
    bounds = sorted({0, len(raws), *(min(c, len(raws)) for c in cuts)})
    return [raws[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


# -- the two engines -----------------------------------------------------------------------


def _decoder(by_model: bool, min_columnar: int) -> BatchDecoder:
    columns = model_columns("m", LABELS, PROFILE, per_event=False, embeddings=False)
    return BatchDecoder(DECODER, [columns], min_columnar=min_columnar, by_model=by_model)


def _letters(letters: list[DeadLetter]) -> list[tuple[str, int | None]]:
    return sorted((d.reason.value, d.offset) for d in letters)


Windows = dict[tuple[str, datetime], WindowSummary]


def run_oracle(batches: list[list[RawMessage]], lateness: timedelta, min_columnar: int = 1) -> tuple[
        Windows, list[Any], list[Any]]:
    """(closed windows, late letters, decoder letters) of the per-cohort engine."""
    decoder = _decoder(False, min_columnar)
    specs = {"m": WindowSpec(PROFILE, SIZE, lateness, BOUNDS, True, None)}
    logics: dict[str, CohortWindows] = {}
    windows: Windows = {}
    late: list[DeadLetter] = []
    dead: list[DeadLetter] = []

    def take(out: Any) -> None:
        for kind, value in out:
            if kind == "window":
                cohort, window, summary = value
                assert (cohort.key, window.start) not in windows
                windows[(cohort.key, window.start)] = summary
            else:
                late.append(value)

    for batch in batches:
        decoded = decoder(batch)
        dead.extend(decoded.dead)
        for key, piece in as_pieces(decoded):
            logic = logics.get(key)
            if logic is None:
                logic = logics[key] = CohortWindows(specs, None, lambda: NOW)
            take(logic.on_batch([piece])[0])
    for logic in logics.values():
        take(logic.on_eof()[0])
    return windows, _letters(late), _letters(dead)


def shard_spec(lateness: timedelta, idle_windows: int = 12) -> dict[str, ShardSpec]:
    return {"m": ShardSpec("m", layout_of(PROFILE, BOUNDS, None, True), SIZE, lateness, idle_windows)}


def run_arrays(batches: list[list[RawMessage]], lateness: timedelta, min_columnar: int = 1,
               shards: int = SHARDS) -> tuple[Windows, list[Any], list[Any]]:
    """(closed windows, late letters, decoder letters) of the array engine over ``shards`` shards."""
    decoder = _decoder(True, min_columnar)
    specs = shard_spec(lateness)
    split = as_shards(shards)
    logics: dict[str, ShardWindows] = {}
    windows: Windows = {}
    late: list[DeadLetter] = []
    dead: list[DeadLetter] = []
    for batch in batches:
        decoded = decoder(batch)
        dead.extend(decoded.dead)
        for key, rows in split(decoded):
            logic = logics.get(key)
            if logic is None:
                logic = logics[key] = ShardWindows(specs, None, lambda: NOW)
            _take(logic.on_batch([rows])[0], windows, late)
    for logic in logics.values():
        _take(logic.on_eof()[0], windows, late)
    return windows, _letters(late), _letters(dead)


def _take(out: Any, windows: Windows, late: list[DeadLetter]) -> None:
    for kind, value in out:
        if kind == "closed":
            for i in range(len(value)):
                key = (value.cohorts[i].key, value.window.start)
                assert key not in windows
                windows[key] = value.summary(i)
        else:
            late.append(value)


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def assert_same_window(key: Any, old: WindowSummary, new: WindowSummary) -> None:
    where = f"cohort window {key}"
    assert new.cohort == old.cohort, where
    assert (new.n_events, new.first_ts, new.last_ts) == (old.n_events, old.first_ts, old.last_ts), where
    assert (new.n_event_id, new.n_duplicate_event_id, new.event_ids_capped) == (
        old.n_event_id, old.n_duplicate_event_id, old.event_ids_capped), where
    assert set(new.duplicate_examples) == set(old.duplicate_examples), where
    assert (new.unknown_fields, new.unknown_fields_capped) == (old.unknown_fields, old.unknown_fields_capped), where
    for group in ("features", "predictions"):
        olds, news = getattr(old, group), getattr(new, group)
        assert list(news) == list(olds), where
        for name, a in olds.items():
            b = news[name]
            at = f"{where}, {name}"
            assert b.counts.tolist() == a.counts.tolist(), at
            assert (b.n_null, b.n_missing, b.n_wrong_type, b.n_out_of_range) == (
                a.n_null, a.n_missing, a.n_wrong_type, a.n_out_of_range), at
            assert b.bounds == a.bounds, at
            assert (b.unseen, b.unseen_capped) == (a.unseen, a.unseen_capped), at
            assert set(b.examples) == set(a.examples) and len(b.examples) == len(a.examples), at
            assert set(b.out_of_range_examples) == set(a.out_of_range_examples), at
            assert len(b.out_of_range_examples) == len(a.out_of_range_examples), at
            assert b.moments.n == a.moments.n, at
            if a.moments.n:
                assert _close(b.moments.mean, a.moments.mean, 1e-12), (at, a.moments, b.moments)
                assert _close(b.moments.m2, a.moments.m2, 1e-9), (at, a.moments, b.moments)


def assert_same(old: tuple[Windows, list[Any], list[Any]], new: tuple[Windows, list[Any], list[Any]]) -> None:
    (old_windows, old_late, old_dead), (new_windows, new_late, new_dead) = old, new
    assert new_dead == old_dead
    assert new_late == old_late
    assert sorted(new_windows) == sorted(old_windows)
    for key, summary in old_windows.items():
        assert_same_window(key, summary, new_windows[key])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(), st.lists(st.integers(0, 240), max_size=6), st.sampled_from([0, 30, 300]),
       st.sampled_from([1, 32]))
def test_the_arrays_close_the_windows_the_per_cohort_engine_closes(
    raws: list[RawMessage], cuts: list[int], lateness_s: int, min_columnar: int,
) -> None:
    batches = _cut(raws, cuts)
    lateness = timedelta(seconds=lateness_s)
    assert_same(run_oracle(batches, lateness, min_columnar), run_arrays(batches, lateness, min_columnar))



def _drive(batches: list[list[RawMessage]], lateness: timedelta, advances: list[int], arrays: bool) -> tuple[
        Windows, list[Any], list[Any]]:
    """(closed windows, late letters, nothing) of one engine on a clock that moves ``advances[i]``
    seconds before batch ``i`` (cyclically); every state is woken after each batch, as Bytewax
    wakes those whose ``notify_at`` passed."""
    clock = [NOW]

    def now() -> datetime:
        return clock[0]

    windows: Windows = {}
    late: list[DeadLetter] = []

    def take(out: Any) -> None:
        for kind, value in out:
            if kind == "window":
                windows[(value[0].key, value[1].start)] = value[2]
            else:
                _take([(kind, value)], windows, late)

    decode = _decoder(arrays, 1)
    split: Any = as_shards(SHARDS) if arrays else as_pieces
    # Rows never idle (the per-cohort engine keeps every cohort it saw, driven directly).
    shards = {"m": ShardSpec("m", layout_of(PROFILE, BOUNDS, None, True), SIZE, lateness, 10**6)}
    cohorts = {"m": WindowSpec(PROFILE, SIZE, lateness, BOUNDS, True, None)}
    logics: dict[str, Any] = {}
    for i, batch in enumerate(batches):
        clock[0] += timedelta(seconds=advances[i % len(advances)])
        for key, item in split(decode(batch)):
            if key not in logics:
                logics[key] = ShardWindows(shards, None, now) if arrays else CohortWindows(cohorts, None, now)
            take(logics[key].on_batch([item])[0])
        for logic in logics.values():
            take(logic.on_notify()[0])
    for logic in logics.values():
        take(logic.on_eof()[0])
    return windows, _letters(late), []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(), st.lists(st.integers(0, 240), max_size=8), st.sampled_from([0, 30, 300]),
       st.lists(st.sampled_from([0, 10, 60, 300, 900]), min_size=1, max_size=8))
def test_watermarks_move_on_with_the_system_clock_as_in_the_per_cohort_engine(
    raws: list[RawMessage], cuts: list[int], lateness_s: int, advances: list[int],
) -> None:
    """A watermark also advances by the system time since its cohort's newest event: windows
    close between batches, and rows of those windows arriving afterwards are late."""
    batches = _cut(raws, cuts)
    lateness = timedelta(seconds=lateness_s)
    assert_same(_drive(batches, lateness, advances, False), _drive(batches, lateness, advances, True))

# -- the whole flow ------------------------------------------------------------------------

FLOW_CONFIG = """\
version: 1
models:
  - name: m
    cohort: [tenant, region]
    window: {size: 10m, allowed_lateness: 2m}
    reference: {parquet: reference.parquet}
    features:
      x: {type: numeric}
      y: {type: numeric, range: [0, 50]}
      c: {type: categorical}
    detectors:
      - psi: {features: "*", bins: 5, warn: 0.1, alert: 0.25, min_samples: 3}
      - quality: {features: "*", min_samples: 3, significance: none}
    policy: {consecutive_windows: 1, cooldown: 1h}
  - name: s
    cohort: [tenant]
    window: {size: 10m, allowed_lateness: 2m}
    reference: {parquet: reference.parquet}
    features:
      x: {type: numeric}
      y: {type: numeric, range: [0, 50]}
      c: {type: categorical}
    detectors:
      - psi: {features: "*", bins: 5, min_samples: 3, significance: none}
      - quality: {features: [x, c], min_samples: 3, significance: none, duplicate_event_id: null}
      - score: {field: prediction.score, bins: 4, label_field: prediction.label, min_samples: 3, significance: none}
    policy: {consecutive_windows: 2, cooldown: 1h}
routing:
  - when: {severity: warn}
    action: alert_only
  - when: {severity: alert}
    action: ticket
tickets:
  store: sqlite:///./drift-tickets.db
baselines:
  dir: baselines
engine:
  shards: 4
"""
"""Model ``m`` is screened by array expressions (psi, with its significance test, and
quality only); ``s`` is scored in full (a ``score`` detector), without the duplicate
check (no event ids kept)."""


@pytest.fixture(scope="module")
def flow_config(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("flow")
    (folder / "drift.yaml").write_text(FLOW_CONFIG, encoding="utf-8")
    pq.write_table(pa.table({name: list(values) for name, values in REFERENCE.items()}), folder / "reference.parquet")
    config = load_config(folder / "drift.yaml")
    return config, load_profiles(config)


FindingKey = tuple[str, datetime, str, str | None]


def _by_key(findings: list[Finding]) -> dict[FindingKey, Finding]:
    keyed = {(f.cohort.key, f.window.start, f.detector, f.feature): f for f in findings}
    assert len(keyed) == len(findings), "one finding per cohort window, detector and feature"
    return keyed


def oracle_findings(config: Any, profiles: Any, batches: list[list[RawMessage]]) -> list[Finding]:
    """Every finding of the oracle's windows, scored by each model's detectors directly."""
    plans = {plan.config.name: plan for plan in plan_models(config, profiles)}
    decoder = batch_decoder(config, list(plans.values()), Decoder(
        models=frozenset(plans), max_future=config.events.max_future, now=lambda: NOW), set())
    specs = window_specs(list(plans.values()))
    logics: dict[str, CohortWindows] = {}
    schemas: dict[str, SchemaState] = {}
    found: list[Finding] = []

    def score(out: Any) -> None:
        for kind, value in out:
            if kind != "window":
                continue
            cohort, window, summary = value
            schemas[cohort.key] = track_schema(schemas.get(cohort.key), window.start, summary)
            plan = plans[cohort.model]
            found.extend(f for d in plan.detectors for f in d.score(summary, plan.profile, cohort, window))

    for batch in batches:
        for key, piece in as_pieces(decoder(batch)):
            logic = logics.get(key)
            if logic is None:
                logic = logics[key] = CohortWindows(specs, None, lambda: NOW)
            score(logic.on_batch([piece])[0])
    for logic in logics.values():
        score(logic.on_eof()[0])
    return found


def run_flow(config: Any, profiles: Any, batches: list[list[RawMessage]], ok_findings: bool) -> tuple[
        list[Finding], list[Any]]:
    (config.resolve(".") / "drift-tickets.db").unlink(missing_ok=True)
    findings: ListSink[Finding] = ListSink()
    tickets: ListSink[Any] = ListSink()
    outputs = Outputs(findings=findings, tickets=tickets, dlq=ListSink())
    run_main(build_flow(config, profiles, TestingSource(batches), outputs, now=lambda: NOW, durable=False,
                        ok_findings=ok_findings))
    return list(findings.items), list(tickets.items)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(max_events=200, max_cohorts=20, models=("m", "s")), st.lists(st.integers(0, 200), max_size=4))
def test_the_flow_finds_what_the_detectors_find_in_the_oracle_windows(
    flow_config: Any, raws: list[RawMessage], cuts: list[int],
) -> None:
    config, profiles = flow_config
    batches = _cut(raws, cuts)
    expected = _by_key(oracle_findings(config, profiles, batches))
    every, tickets = run_flow(config, profiles, batches, ok_findings=True)
    found = _by_key(every)
    assert sorted(found) == sorted(expected)
    for key, want in expected.items():
        got = found[key]
        assert (got.n_current, got.cohort, got.window) == (want.n_current, want.cohort, want.window), key
        across = got.evidence.get("q_within_cohort")
        if across is None:
            assert got.severity == want.severity, key
            assert (got.q_value is None) == (want.q_value is None), key
            # Moments merged per batch may differ in the last bits, and with them a mean shift's p.
            assert got.q_value is None or _close(got.q_value, want.q_value, 1e-9), key
        else:
            # Judged again across the model window's cohorts: the cohort's own judgement,
            # then q·K/R against the detector's q (detectors/significance.py).
            assert want.severity.value != "ok" and _close(across, want.q_value, 1e-9), key
            k, r = got.evidence["cohort_windows"], got.evidence["cohort_rank"]
            assert got.q_value == min(1.0, across * k / r) and r <= k, key
            assert got.severity == (want.severity if got.q_value <= 0.01 else Severity.OK), key
        assert got.value == want.value or _close(got.value, want.value, 1e-12), (key, got.value, want.value)
    problems, problem_tickets = run_flow(config, profiles, batches, ok_findings=False)
    assert sorted(_by_key(problems)) == sorted(k for k, f in found.items() if f.severity.value != "ok")
    assert Counter((t.kind, t.ticket.fingerprint) for t in problem_tickets) == Counter(
        (t.kind, t.ticket.fingerprint) for t in tickets)


# -- routing, rows, snapshots ----------------------------------------------------------------


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(max_events=150), st.lists(st.integers(0, 150), max_size=5))
def test_a_cohort_goes_to_one_shard_in_every_batch(raws: list[RawMessage], cuts: list[int]) -> None:
    decoder, split = _decoder(True, 1), as_shards(SHARDS)
    shard_of_key: dict[str, str] = {}
    for batch in _cut(raws, cuts):
        decoded = decoder(batch)
        for item in decoded.models:
            keys = item.keys.to_pylist()
            ts = item.block.ts.tolist()
            parts = split(DecodedBatch(models=[item]))
            assert len({key for key, _ in parts}) == len(parts)
            assert sum(len(rows) for _, rows in parts) == len(keys)
            home = [shard_key("m", shard_of(k, SHARDS), SHARDS) for k in keys]
            for shard, rows in parts:
                for cohort_key in set(rows.keys.to_pylist()):
                    assert shard == shard_key("m", shard_of(cohort_key, SHARDS), SHARDS)
                    assert shard_of_key.setdefault(cohort_key, shard) == shard
                # A shard's rows in arrival order.
                assert rows.block.ts.tolist() == [t for t, h in zip(ts, home) if h == shard]
                assert rows.keys.to_pylist() == [k for k, h in zip(keys, home) if h == shard]


def _message(i: int, tenant: str, ts: datetime, **features: Any) -> RawMessage:
    body = {"event_id": f"e{i}", "model": "m", "tenant": tenant, "ts": ts.isoformat(),
            "features": {"x": 0.5, "y": 10.0, "c": "a", **features}, "prediction": {"score": 0.5}}
    return RawMessage(orjson.dumps(body), "inference", 0, i)


def test_rows_grow_past_sixteen_cohorts_while_windows_are_open() -> None:
    # 40 cohorts join one by one, a few per batch, while their first window is open.
    raws = [_message(i, f"t{i % 40}", T0 + timedelta(seconds=i), x=i / 100) for i in range(200)]
    batches = [raws[i:i + 7] for i in range(0, len(raws), 7)]
    decoder = _decoder(True, 1)
    logic = ShardWindows(shard_spec(timedelta(minutes=1)), None, lambda: NOW)
    windows: Windows = {}
    late: list[DeadLetter] = []
    for batch in batches:
        _take(logic.on_batch(decoder(batch).models)[0], windows, late)
    assert logic.state.capacity == 64 and len(logic.state.keys) == 40
    [arrays] = logic.state.open.values()
    assert arrays.capacity == 64 and int(arrays.active.sum()) == 40
    _take(logic.on_eof()[0], windows, late)
    assert len(windows) == 40 and not late
    assert_same(run_oracle([raws], timedelta(minutes=1)), (windows, [], []))


def test_a_quiet_cohort_frees_its_row_and_a_new_cohort_takes_it() -> None:
    clock = [NOW]
    logic = ShardWindows(shard_spec(timedelta(0), idle_windows=2), None, lambda: clock[0])
    decoder = _decoder(True, 1)
    freed = REGISTRY.get_sample_value("drift_cohort_rows_freed_total", {"model": "m"}) or 0.0

    def batch(*raws: RawMessage) -> list[Any]:
        return list(logic.on_batch(decoder(list(raws)).models)[0])

    def advance(minutes: int) -> list[Any]:
        clock[0] += timedelta(minutes=minutes)
        return list(logic.on_notify()[0])

    assert batch(_message(0, "a", T0 + timedelta(minutes=1), zip=1)) == []
    assert logic.state.keys == {"m|tenant=a|region=-": 0}
    [(kind, closed)] = advance(10)  # a's watermark: 9:11, past its window's end
    assert kind == "closed" and closed.summary(0).n_events == 1
    assert logic.state.keys and not logic.state.open  # closed, but not yet idle for 2 windows
    assert advance(18) == [] and logic.state.keys  # 9:29: in the second window after its last one
    assert advance(1) == []  # 9:30: two whole windows without events
    assert logic.state.keys == {} and logic.state.free == [0]
    assert REGISTRY.get_sample_value("drift_cohort_rows_freed_total", {"model": "m"}) == freed + 1
    # b takes the free row; a, back, gets a new one and no memory of its schema.
    assert batch(_message(1, "b", T0 + timedelta(minutes=41)), _message(2, "a", T0 + timedelta(minutes=42))) == []
    assert logic.state.keys == {"m|tenant=b|region=-": 0, "m|tenant=a|region=-": 1} and logic.state.free == []
    out = list(logic.on_eof()[0])
    summaries = {closed.cohorts[i].key: closed.summary(i) for _, closed in out for i in range(len(closed))}
    assert {key: s.n_events for key, s in summaries.items()} == {"m|tenant=b|region=-": 1, "m|tenant=a|region=-": 1}
    assert all(s.schema_before is None and not s.unknown_fields for s in summaries.values())
    assert summaries["m|tenant=a|region=-"].features["x"].counts.sum() == 1


def _state(summary: WindowSummary) -> tuple[Any, ...]:
    """Everything a closed window says, bit for bit."""
    fields = tuple(
        (name, c.counts.tolist(), c.n_null, c.n_missing, c.n_wrong_type, c.n_out_of_range, c.examples,
         c.out_of_range_examples, c.moments.n, c.moments.mean.hex(), c.moments.m2.hex(), sorted(c.unseen))
        for name, c in {**summary.features, **summary.predictions}.items()
    )
    return (summary.cohort, summary.n_events, summary.first_ts, summary.last_ts, summary.n_event_id,
            summary.n_duplicate_event_id, summary.duplicate_examples, sorted(summary.unknown_fields),
            summary.schema_before, fields)


def _members(table: Any) -> Any:
    """A rollup window's member counts, by member key (None for a cohort's own window)."""
    if table is None:
        return None
    return sorted((key, tuple(table.counts[table.index[key]].tolist())) for key in table.keys)


def _outputs(out: Any) -> list[Any]:
    return [
        (kind, [(value.window.start, _state(value.summary(i)), _members(value.members.get(i)))
                for i in range(len(value))]
         if kind == "closed" else value.offset)
        for kind, value in out
    ]


def _finish(logics: dict[str, ShardWindows], batches: list[list[tuple[str, Any]]],
            build: Any) -> dict[str, list[Any]]:
    """Each shard's outputs for ``batches`` and then the end of the input."""
    out: dict[str, list[Any]] = {}
    for batch in batches:
        for key, rows in batch:
            logic = logics.get(key) or logics.setdefault(key, build(None))
            out.setdefault(key, []).extend(_outputs(logic.on_batch([rows])[0]))
    for key, logic in logics.items():
        out.setdefault(key, []).extend(_outputs(logic.on_eof()[0]))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(max_events=150, max_cohorts=20), st.lists(st.integers(0, 150), max_size=5), st.integers(0, 6),
       st.sampled_from([0, 30, 300]))
def test_a_snapshot_resumes_to_what_an_uninterrupted_run_gives(
    raws: list[RawMessage], cuts: list[int], at: int, lateness_s: int,
) -> None:
    # With rollups: their windows and their members' counts resume too.
    decoder, split = _decoder(True, 1), as_shards(SHARDS, ROLLUPS)
    batches = [split(decoder(batch)) for batch in _cut(raws, cuts)]
    at = min(at, len(batches))
    specs = shard_spec(timedelta(seconds=lateness_s))

    def build(state: ShardState | None) -> ShardWindows:
        return ShardWindows(specs, state, lambda: NOW)

    expected = _finish({}, batches, build)
    logics: dict[str, ShardWindows] = {}
    before: dict[str, list[Any]] = {}
    for batch in batches[:at]:
        for key, rows in batch:
            logic = logics.get(key) or logics.setdefault(key, build(None))
            before.setdefault(key, []).extend(_outputs(logic.on_batch([rows])[0]))
    pickled = {key: pickle.dumps(logic.snapshot()) for key, logic in logics.items()}
    copies = {key: logic.state.copy() for key, logic in logics.items()}

    def joined(after: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {key: before.get(key, []) + after.get(key, []) for key in {*before, *after}}

    # The original goes on, and neither copy moves with it.
    assert joined(_finish(logics, batches[at:], build)) == expected
    assert joined(_finish({k: build(pickle.loads(v)) for k, v in pickled.items()}, batches[at:], build)) == expected
    assert joined(_finish({k: build(v) for k, v in copies.items()}, batches[at:], build)) == expected


def test_a_window_pickles_its_active_rows_only() -> None:
    # Ten cohorts open the 9:00 window; three of them move on to 9:25, which closes theirs.
    raws = [_message(i, f"t{i}", T0 + timedelta(minutes=1), zip=1) for i in range(10)]
    raws += [_message(10 + i, f"t{i}", T0 + timedelta(minutes=25)) for i in range(3)]
    raws += [_message(20 + i, f"t{i}", T0 + timedelta(minutes=2)) for i in range(5, 8)]  # duplicate ids: e25..e27
    raws += [_message(20 + i, f"t{i}", T0 + timedelta(minutes=3)) for i in range(5, 8)]
    logic = ShardWindows(shard_spec(timedelta(0)), None, lambda: NOW)
    out = logic.on_batch(_decoder(True, 1)(raws).models)[0]
    assert [len(closed) for _, closed in out] == [3]
    arrays = logic.state.open[int((T0 - datetime(1970, 1, 1, tzinfo=timezone.utc)) / SIZE)]
    active = np.flatnonzero(arrays.active)
    assert active.tolist() == list(range(3, 10)) and arrays.capacity == 16
    state = arrays.__getstate__()
    assert state["rows"].tolist() == active.tolist()
    for name, value in state.items():
        if isinstance(value, np.ndarray) and name not in ("rows", "slots"):
            assert len(active) in value.shape and value.size < getattr(arrays, name).size, name
    assert {t[0] for t in state["ids"]} <= set(active.tolist())
    assert set(state["extras"]) <= set(active.tolist())
    restored = pickle.loads(pickle.dumps(arrays))
    copied = arrays.copy()
    for other in (restored, copied):
        assert other.capacity == arrays.capacity
        for name in ("counts", "cells", "mom_n", "mom_mean", "mom_m2", "n_events", "first_ts", "last_ts", "n_event_id",
                     "n_duplicate", "active"):
            assert np.array_equal(getattr(other, name), getattr(arrays, name)), name
    # Restored, the window goes on counting as the original does.
    again = [_message(30 + i, f"t{i}", T0 + timedelta(minutes=4)) for i in range(5, 8)]
    logic.state.open = {w: (restored if a is arrays else a) for w, a in logic.state.open.items()}
    twin = ShardWindows(shard_spec(timedelta(0)), None, lambda: NOW)
    twin.on_batch(_decoder(True, 1)(raws).models)
    assert _outputs(logic.on_batch(_decoder(True, 1)(again).models)[0]) == _outputs(
        twin.on_batch(_decoder(True, 1)(again).models)[0])
    assert _outputs(logic.on_eof()[0]) == _outputs(twin.on_eof()[0])


# -- rollups ---------------------------------------------------------------------------------

ROLLUPS = {"m": [("tenant",), ()]}
"""``[tenant]`` (each tenant over its regions) and ``[model]`` (every cohort)."""


def run_rollups(batches: list[list[RawMessage]], lateness: timedelta, rollups: Any) -> tuple[
        dict[tuple[str, datetime], tuple[np.ndarray, np.ndarray, int, Any]], list[Any]]:
    """(cohort key, window start) -> (bin counts, quality cells, events, member counts) of
    every closed window, and the late letters, of the array engine with ``rollups``."""
    decoder, split = _decoder(True, 1), as_shards(SHARDS, rollups)
    specs = shard_spec(lateness)
    logics: dict[str, ShardWindows] = {}
    out: dict[tuple[str, datetime], tuple[np.ndarray, np.ndarray, int, Any]] = {}
    late: list[DeadLetter] = []

    def take(items: Any) -> None:
        for kind, value in items:
            if kind != "closed":
                late.append(value)
                continue
            for i, key in enumerate(value.cohort_keys()):
                assert (key, value.window.start) not in out
                out[key, value.window.start] = (np.asarray(value.counts[i], np.int64), value.cells[:, i].astype(np.int64),
                                                int(value.n_events[i]), value.members.get(i))

    for batch in batches:
        for key, rows in split(decoder(batch)):
            logic = logics.get(key)
            if logic is None:
                logic = logics[key] = ShardWindows(specs, None, lambda: NOW)
            take(logic.on_batch([rows])[0])
    for logic in logics.values():
        take(logic.on_eof()[0])
    return out, _letters(late)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(max_events=200, max_cohorts=12), st.lists(st.integers(0, 200), max_size=4))
def test_a_rollup_window_is_the_sum_of_its_members_windows(raws: list[RawMessage], cuts: list[int]) -> None:
    # Lateness beyond the stream's reordering: every event reaches its rollups too.
    batches = _cut(raws, cuts)
    windows, late = run_rollups(batches, timedelta(days=1), ROLLUPS)
    assert not late
    plain, _, _ = run_arrays(batches, timedelta(days=1))
    cohorts = {key: w for key, w in windows.items() if "=*" not in key[0]}
    assert sorted(cohorts) == sorted(plain)
    rolled = {key: w for key, w in windows.items() if "=*" in key[0]}
    for (key, start), (counts, cells, n, members) in rolled.items():
        kept = dict(part.split("=", 1) for part in key.split("|")[1:])
        mine = [(k, w) for (k, s), w in cohorts.items() if s == start and all(
            v == "*" or dict(p.split("=", 1) for p in k.split("|")[1:])[label] == v for label, v in kept.items())]
        assert mine, key
        assert n == sum(w[2] for _, w in mine)
        assert (counts == sum(w[0] for _, w in mine)).all()
        assert (cells == sum(w[1] for _, w in mine)).all()
        # Attribution: each member's own bin counts.
        assert sorted(members.keys) == sorted(k for k, _ in mine)
        for k, w in mine:
            assert (members.counts[members.index[k]] == w[0]).all(), k
    # Every cohort window is in exactly one window of each rollup.
    for (key, start) in cohorts:
        labels = dict(p.split("=", 1) for p in key.split("|")[1:])
        assert (f"m|tenant=*|region=*", start) in rolled
        assert (f"m|tenant={labels['tenant']}|region=*", start) in rolled


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(max_events=150, max_cohorts=12), st.lists(st.integers(0, 150), max_size=4))
def test_rollups_change_no_cohort_window_and_no_dead_letter(raws: list[RawMessage], cuts: list[int]) -> None:
    # A rollup's watermark follows all its members, so it may find an event late that its
    # own cohort does not: the rollup misses it, the cohort counts it, nothing is dead-lettered twice.
    batches = _cut(raws, cuts)
    windows, late = run_rollups(batches, timedelta(minutes=2), ROLLUPS)
    plain, plain_late, _ = run_arrays(batches, timedelta(minutes=2))
    assert late == plain_late
    cohorts = {key: w for key, w in windows.items() if "=*" not in key[0]}
    assert sorted(cohorts) == sorted(plain)
    for key, (counts, _, n, members) in cohorts.items():
        assert members is None and n == plain[key].n_events


def test_snapshots_written_before_rollups_resume() -> None:
    from flows.scoring import ShardScores

    state = ShardState(model="m")
    del state.__dict__["members"]
    assert pickle.loads(pickle.dumps(state)).members == {}
    scores = ShardScores()
    del scores.__dict__["families"]
    resumed = pickle.loads(pickle.dumps(scores))
    assert resumed.families.tested == {} and resumed.families.selected == {}
