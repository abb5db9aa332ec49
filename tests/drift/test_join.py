"""The point-in-time join (drift/join.py): semantics table, bounded state, window counts."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from drift.events import RawMessage
from drift.feature_events import FeatureEvent
from drift.findings import Cohort
from drift.join import (
    MAX_VERSIONS,
    JoinOutcome,
    JoinState,
    Lookup,
    add_outcome,
    empty_value_summary,
    merge_value_summaries,
)
from flows.value_skew import JoinLogic

T = datetime(2026, 11, 2, 10, tzinfo=timezone.utc)
WALL = datetime(2030, 1, 1, tzinfo=timezone.utc)
M = timedelta(minutes=1)
COHORT = Cohort("m", (("region", "eu"),))


def lookup(ts: datetime, entity: str = "e1", income: float = 10.0, arrived: datetime = WALL) -> Lookup:
    return Lookup("m", COHORT, ts, entity, (("income", income),), arrived)


def feature_event(entity: str, ts: datetime, values: dict[str, float]) -> FeatureEvent:
    return FeatureEvent(ts, "test", entity, "offline", values, None, RawMessage(b"", "features", 0, 0))


def state(max_entities: int = 100, label: str = "test") -> JoinState:
    return JoinState(max_age=60 * M, grace=2 * M, max_entities=max_entities, label=label)


def _offline(out: list[JoinOutcome]) -> list[float | None]:
    return [None if o.offline is None else dict(o.offline.values)["income"] for o in out]  # type: ignore[misc]


# (feature versions offered first as (offset, income), inference offset, expected offline income, stale)
CASES = [
    ("before ts", [(-10, 1.0)], 0, 1.0, False),
    ("exactly at ts", [(0, 1.0)], 0, 1.0, False),
    ("latest at or before ts wins", [(-30, 1.0), (-5, 2.0), (5, 3.0)], 0, 2.0, False),
    ("only after ts", [(1, 1.0)], 0, None, False),
    ("exactly max_age old", [(-60, 1.0)], 0, 1.0, False),
    ("older than max_age", [(-61, 1.0)], 0, None, True),
    ("none at all", [], 0, None, False),
]


@pytest.mark.parametrize(("name", "versions", "at", "expected", "stale"), CASES, ids=[c[0] for c in CASES])
def test_point_in_time_rule(name: str, versions: list[tuple[int, float]], at: int, expected: float | None, stale: bool) -> None:
    join = state()
    for offset, income in versions:
        assert join.offer_feature("e1", T + offset * M, {"income": income}) == []
    out = join.offer_inference(lookup(T + at * M)) + join.flush()
    assert _offline(out) == [expected]
    assert out[0].stale is stale


def test_feature_arriving_after_the_inference_within_grace_still_matches() -> None:
    join = state()
    assert join.offer_inference(lookup(T)) == []  # nothing known yet: it waits
    assert join.n_pending == 1
    out = join.offer_feature("e1", T - 5 * M, {"income": 7.0})
    assert _offline(out) == [7.0] and join.n_pending == 0


def test_a_feature_stamped_after_the_inference_does_not_resolve_it() -> None:
    join = state()
    join.offer_inference(lookup(T))
    assert join.offer_feature("e1", T + M, {"income": 7.0}) == []
    assert _offline(join.flush()) == [None]


def test_grace_ends_in_event_time() -> None:
    join = state()
    join.offer_inference(lookup(T))
    assert join.offer_inference(lookup(T + M, entity="e2")) == []  # T + 1m: still within grace
    out = join.offer_inference(lookup(T + 2 * M, entity="e3"))  # T + grace: e1 is due
    assert [(o.lookup.entity_id, o.offline) for o in out] == [("e1", None)]
    # The feature event arriving now is too late for e1.
    assert join.offer_feature("e1", T - M, {"income": 1.0}) == []


def test_grace_ends_in_wall_clock_time() -> None:
    join = state()
    join.offer_inference(lookup(T, arrived=WALL))
    assert join.next_deadline() == WALL + 2 * M
    assert join.expire(WALL + M) == []
    assert _offline(join.expire(WALL + 2 * M)) == [None]
    assert join.next_deadline() is None


def test_eviction_past_the_cap_is_counted_and_state_stays_bounded() -> None:
    label = "cap-test"
    before = REGISTRY.get_sample_value("drift_join_evictions_total", {"feature_set": label, "reason": "cap"}) or 0.0
    join = state(max_entities=10, label=label)
    logic = JoinLogic(join, lambda: WALL)  # the flow's step, which reports the evictions
    for i in range(1000):
        logic.on_item(feature_event(f"e{i}", T, {"income": float(i)}))
        assert len(join.entities) <= 10
    assert join.n_evicted_cap == 990
    after = REGISTRY.get_sample_value("drift_join_evictions_total", {"feature_set": label, "reason": "cap"})
    assert after == before + 990
    # The least recently used went first: the last ten remain.
    assert list(join.entities) == [f"e{i}" for i in range(990, 1000)]
    assert len(pickle.dumps(join.snapshot())) < 5000


def test_a_lookup_keeps_its_entity_from_eviction() -> None:
    join = state(max_entities=2)
    join.offer_feature("a", T, {"income": 1.0})
    join.offer_feature("b", T, {"income": 2.0})
    join.offer_inference(lookup(T, entity="a"))  # touches a: b is now least recently used
    join.offer_feature("c", T, {"income": 3.0})
    assert set(join.entities) == {"a", "c"}


def test_ttl_drops_entities_past_max_age_and_counts_them() -> None:
    join = state(label="ttl-test")
    logic = JoinLogic(join, lambda: WALL)
    logic.on_item(feature_event("old", T, {"income": 1.0}))
    logic.on_item(feature_event("new", T + 100 * M, {"income": 2.0}))
    logic.on_item(lookup(T + 120 * M, entity="new"))
    assert set(join.entities) == {"new"} and join.n_evicted_ttl == 1
    assert REGISTRY.get_sample_value("drift_join_evictions_total", {"feature_set": "ttl-test", "reason": "ttl"}) == 1.0


def test_versions_per_entity_are_capped() -> None:
    join = state()
    for i in range(3 * MAX_VERSIONS):
        join.offer_feature("e1", T + i * M, {"income": float(i)})
    assert len(join.entities["e1"]) == MAX_VERSIONS


def test_snapshot_resumes_to_the_same_answers() -> None:
    join = state()
    join.offer_feature("e1", T - 5 * M, {"income": 4.0})
    join.offer_inference(lookup(T, entity="e2"))
    resumed = JoinState(60 * M, 2 * M, 100, resume=pickle.loads(pickle.dumps(join.snapshot())))
    assert resumed.n_pending == 1
    assert _offline(resumed.offer_inference(lookup(T, entity="e1"))) == [4.0]
    assert _offline(resumed.offer_feature("e2", T - M, {"income": 5.0})) == [5.0]


def _outcome(served: object, offline: object | None, stale: bool = False, feature: str = "income") -> JoinOutcome:
    from drift.join import Version

    look = Lookup("m", COHORT, T, "e1", ((feature, served),), WALL)  # type: ignore[arg-type]
    version = None if offline is None else Version(T - M, ((feature, offline),))  # type: ignore[arg-type]
    return JoinOutcome(look, version, stale)


def test_window_counts_and_unit_ratio() -> None:
    summary = empty_value_summary("m", ["income", "country"], COHORT)
    for served, offline in [(510000.0, 5100.0), (12000.0, 120.0), (100.004, 100.0), (None, None)]:
        add_outcome(summary, _outcome(served, offline) if served is not None else _outcome(1.0, None, stale=True),
                    abs_tol=0.01, rel_tol=0.001)
    add_outcome(summary, _outcome("DE", "FR", feature="country"), 0.01, 0.001)
    income, country = summary.features["income"], summary.features["country"]
    assert (income.n_lookups, income.n_match, income.n_mismatch, income.n_missing, income.n_stale) == (4, 1, 2, 1, 1)
    assert income.sum_ratio / income.n_ratio == pytest.approx((100 + 100 + 1.00004) / 3)
    assert income.sum_difference / income.n_numeric == pytest.approx((504900 + 11880 + 0.004) / 3)
    assert (country.n_mismatch, country.examples[0][2]) == (1, ("served", "DE"))
    # merge is the sum, whichever way round
    half = empty_value_summary("m", ["income", "country"], COHORT)
    add_outcome(half, _outcome(1.0, 1.0), 0.01, 0.001)
    left, right = merge_value_summaries(summary, half), merge_value_summaries(half, summary)
    assert left.features["income"].n_match == right.features["income"].n_match == 2
    assert left.n_events == right.n_events == 6
