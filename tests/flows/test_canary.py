"""Canary and champion–challenger comparison: the statistics, the pairing step, the dataflow.

The flow tests replay generated events of cohorts ``tenant × route``: each tenant's traffic
is served by the champion, a challenger and a canary. The challenger is identical to the
champion everywhere; the canary's scores are shifted in one tenant and one window only.
"""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from connectors.files import write_jsonl, write_parquet
from connectors.memory import ListSink
from detectors.canary import (
    HALT, CanaryConfig, CanaryDetector, QualityWindow, RouteWindow, accuracy_drop, route_psi, route_test,
)
from detectors.significance import bh_qvalues
from drift.config import load_config
from drift.errors import ConfigError
from drift.events import RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from flows.canary import QUALITY_WAIT_WINDOWS, WAIT_WINDOWS, Pairing, PairingLogic, canary_plans, is_halt
from flows.pipeline import Outputs, build_flow
from flows.plans import plan_models
from flows.runner import load_profiles, run_file

START = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
SIZE = timedelta(minutes=10)
SHIFTED_TENANT, SHIFTED_WINDOW = "acme", 1

CONFIG = """\
version: 1
models:
  - name: credit-risk
    cohort: [tenant, route]
    window: {size: 10m, allowed_lateness: 1m}
    reference: {parquet: reference.parquet}
    features:
      age: {type: numeric}
      income: {type: numeric}
    detectors:
      - score: {field: prediction.score}
    canary: {}
routing:
  - when: {severity: alert}
    action: ticket
tickets:
  store: sqlite:///./drift-tickets.db
baselines:
  dir: baselines
"""


# --------------------------------------------------------------------------- statistics


counts_pairs = st.integers(2, 12).flatmap(lambda bins: st.tuples(
    st.lists(st.integers(0, 400), min_size=bins, max_size=bins),
    st.lists(st.integers(0, 400), min_size=bins, max_size=bins),
))


@settings(max_examples=80, deadline=None)
@given(counts_pairs)
def test_route_psi_is_the_direct_formula(pair: tuple[list[int], list[int]]) -> None:
    champion, challenger = (np.asarray(c, dtype=np.float64) for c in pair)
    value, terms = route_psi(champion, challenger)
    if champion.sum() == 0 or challenger.sum() == 0:
        assert value == 0.0
        return
    h = np.maximum(champion / champion.sum(), 1e-4)
    c = np.maximum(challenger / challenger.sum(), 1e-4)
    assert value == pytest.approx(float(np.sum((c - h) * np.log(c / h))), rel=1e-12, abs=1e-15)
    assert value >= 0 and terms.sum() == pytest.approx(value)
    assert route_psi(champion, champion)[0] == 0.0


@settings(max_examples=80, deadline=None)
@given(counts_pairs)
def test_route_test_is_scipys_chi_square_test_of_homogeneity(pair: tuple[list[int], list[int]]) -> None:
    champion, challenger = (np.asarray(c, dtype=np.int64) for c in pair)
    p, method, x2 = route_test(champion, challenger)
    table = np.vstack([champion, challenger])
    table = table[:, table.sum(axis=0) > 0]
    if champion.sum() == 0 or challenger.sum() == 0 or table.shape[1] < 2:
        assert (p, method) == (1.0, "none")
        return
    expected = chi2_contingency(table, correction=False)
    assert x2 == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    if method == "chi2":
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    else:
        # Small expected counts: a Monte-Carlo p-value of the same statistic, within its own noise.
        assert method == "monte_carlo" and 0 < p <= 1
        assert expected.expected_freq.min() < 5


def _window(i: int = 0) -> Window:
    return Window(START + i * SIZE, START + (i + 1) * SIZE)


def _route_window(route: str, counts: list[list[int]], i: int = 0, tenant: str = "acme") -> RouteWindow:
    arrays = tuple(np.asarray(c, dtype=np.int64) for c in counts)
    return RouteWindow(Cohort("m", (("tenant", tenant), ("route", route))), route, _window(i), int(arrays[0].sum()),
                       arrays)


def _detector(config: CanaryConfig | None = None, n_fields: int = 2, n_bins: int = 4) -> CanaryDetector:
    names = [f"f{j}" for j in range(n_fields)]
    return CanaryDetector(config or CanaryConfig(), names, [[f"b{i}" for i in range(n_bins)]] * n_fields)


def test_a_moved_field_halts_with_its_evidence() -> None:
    detector = _detector()
    champion = _route_window("champion", [[250, 250, 250, 250], [250, 250, 250, 250]])
    canary = _route_window("canary", [[250, 250, 250, 250], [100, 100, 300, 500]])
    found = detector.compare(champion, canary)
    fields, halt = found[:-1], found[-1]
    assert [f.feature for f in fields] == ["f0", "f1"] and all(f.detector == "canary" for f in fields)
    assert [f.severity for f in fields] == [Severity.OK, Severity.ALERT]
    assert [f.q_value for f in fields] == pytest.approx(bh_qvalues([f.p_value or 1.0 for f in fields]).tolist())
    moved = fields[1]
    assert moved.value == pytest.approx(route_psi([250] * 4, [100, 100, 300, 500])[0])
    assert moved.evidence["n_champion"] == moved.evidence["n_challenger"] == 1000
    assert moved.evidence["top_bins"][0] == {"bin": "b3", "champion_share": 0.25, "challenger_share": 0.5,
                                             "contribution": pytest.approx(0.25 * np.log(2), abs=1e-6)}
    assert (halt.detector, halt.feature, halt.severity) == (HALT, None, Severity.ALERT) and is_halt(halt)
    assert halt.cohort == canary.cohort and halt.window == canary.window
    evidence = halt.evidence
    assert evidence["decision"] == "halt"
    assert (evidence["label"], evidence["champion"], evidence["route"]) == ("route", "champion", "canary")
    assert evidence["cohort"] == {"model": "m", "tenant": "acme"} and evidence["cohort_key"] == "m|tenant=acme"
    assert evidence["window_start"] == START.isoformat() and evidence["window_end"] == (START + SIZE).isoformat()
    assert [f["field"] for f in evidence["fields"]] == ["f1"]
    assert evidence["fields"][0]["q_value"] == moved.q_value and halt.q_value == moved.q_value


@pytest.mark.parametrize(("champion", "challenger", "why"), [
    ([[100, 50, 25, 25]], [[10, 80, 80, 30]], None),  # a big PSI, but 200 is under min_samples=500
    ([[25, 25, 25, 25]] , [[10, 10, 40, 40]], None),
], ids=["too-few-events", "too-few-values"])
def test_small_windows_are_skipped_not_halted(champion: list[list[int]], challenger: list[list[int]],
                                              why: None) -> None:
    detector = _detector(CanaryConfig(min_samples=500), n_fields=1)
    found = detector.compare(_route_window("champion", champion), _route_window("canary", challenger))
    assert all(f.severity is Severity.OK and f.skipped is not None for f in found)
    assert found[-1].evidence["decision"] == "continue"


def test_a_moved_field_that_is_not_significant_does_not_halt() -> None:
    # PSI past alert on few values: chance explains it (q > alpha).
    detector = _detector(CanaryConfig(min_samples=10), n_fields=1)
    found = detector.compare(_route_window("champion", [[6, 4, 5, 5]]), _route_window("canary", [[2, 8, 5, 5]]))
    assert found[0].value >= 0.25 and found[0].severity is Severity.OK and "not_significant" in found[0].evidence
    assert found[-1].severity is Severity.OK


def test_the_false_halt_rate_without_a_shift_is_at_most_alpha() -> None:
    # Thresholds at 0: a comparison halts as soon as a field is significant, so this is the test's own rate.
    alpha = 0.01
    detector = _detector(CanaryConfig(alpha=alpha, psi={"warn": 0.0, "alert": 0.0}, min_samples=50),  # type: ignore[arg-type]
                         n_fields=3, n_bins=10)
    rng = np.random.default_rng(7)
    shares = rng.dirichlet(np.full(10, 3.0), size=3)
    n_runs, halts = 1500, 0
    for _ in range(n_runs):
        champion = _route_window("champion", [rng.multinomial(400, s).tolist() for s in shares])
        canary = _route_window("canary", [rng.multinomial(300, s).tolist() for s in shares])
        halts += detector.compare(champion, canary)[-1].severity is Severity.ALERT
    # BH over 3 fields at alpha bounds the chance of any false finding by alpha (independent fields).
    assert halts / n_runs <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / n_runs)


field_counts = st.lists(st.integers(0, 300), min_size=4, max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(field_counts, field_counts), min_size=1, max_size=4), st.floats(0.0, 0.5))
def test_the_verdict_halts_exactly_when_a_field_is_at_alert(
    fields: list[tuple[list[int], list[int]]], alert: float,
) -> None:
    config = CanaryConfig(psi={"warn": alert, "alert": alert}, min_samples=1)  # type: ignore[arg-type]
    detector = _detector(config, n_fields=len(fields))
    found = detector.compare(_route_window("champion", [h for h, _ in fields]),
                             _route_window("canary", [c for _, c in fields]))
    per_field, verdict = found[:-1], found[-1]
    halting = [f.feature for f in per_field if f.severity is Severity.ALERT]
    assert (verdict.severity is Severity.ALERT) == bool(halting)
    assert [f["field"] for f in verdict.evidence["fields"]] == halting
    # An alert is significant: its q-value, Benjamini-Hochberg over the comparison's fields, is at most alpha.
    assert all(f.q_value is not None and f.q_value <= config.alpha for f in per_field if f.severity is Severity.ALERT)


def test_windows_of_different_routes_must_be_the_same_window() -> None:
    with pytest.raises(ValueError, match="different windows"):
        _detector(n_fields=1).compare(_route_window("champion", [[1, 1, 1, 1]]),
                                      _route_window("canary", [[1, 1, 1, 1]], i=1))


# --------------------------------------------------------------------------- pairing


def _item(route: str, i: int, tenant: str = "acme") -> RouteWindow:
    return _route_window(route, [[250, 250, 250, 250]], i=i, tenant=tenant)


def test_the_champion_waits_for_every_compared_route_of_its_window() -> None:
    pairing = Pairing("champion", ("challenger", "canary"))
    assert pairing.offer(_item("canary", 0)) == []
    pairs = pairing.offer(_item("champion", 0))
    assert [(a.route, b.route) for a, b in pairs] == [("champion", "canary")]
    assert pairing.n_waiting() == 1  # the champion, for the challenger
    pairs = pairing.offer(_item("challenger", 0))
    assert [(a.route, b.route) for a, b in pairs] == [("champion", "challenger")]
    assert pairing.empty()


def test_a_lone_route_is_dropped_once_a_later_window_arrives() -> None:
    pairing = Pairing("champion", ("canary",))
    pairing.offer(_item("champion", 0))
    pairing.offer(_item("champion", WAIT_WINDOWS))
    assert pairing.n_waiting() == 2  # window 0 still waits (within WAIT_WINDOWS)
    pairing.offer(_item("champion", WAIT_WINDOWS + 1))
    assert sorted(pairing.waiting) == sorted(pairing.waiting)[-1 - WAIT_WINDOWS:]
    assert pairing.offer(_item("canary", 0)) == []  # its champion was dropped
    assert pairing.n_waiting() == WAIT_WINDOWS + 1


routes = st.sampled_from(["champion", "challenger", "canary", "shadow"])


@pytest.mark.parametrize("wait", [WAIT_WINDOWS, QUALITY_WAIT_WINDOWS])
@settings(max_examples=120, deadline=None)
@given(items=st.lists(st.tuples(routes, st.integers(0, 12)), max_size=60))
def test_pairing_state_is_bounded_and_pairs_each_route_once(items: list[tuple[str, int]], wait: int) -> None:
    compare = ("challenger", "canary", "shadow")
    pairing = Pairing("champion", compare, wait)
    seen: list[tuple[int, str]] = []
    for route, i in items:
        for champion, other in pairing.offer(_item(route, i)):
            assert champion.route == "champion" and other.route in compare and champion.window == other.window
            seen.append((i, other.route))
        assert len(pairing.waiting) <= wait + 1
        assert pairing.n_waiting() <= (wait + 1) * (1 + len(compare))
        assert all(routes_ for routes_ in pairing.waiting.values())
    assert len(seen) == len(set(seen))
    # Every pair whose routes both came in window order, without a newer window between them, is compared.
    for i in {i for _, i in items}:
        for route in compare:
            firsts = [k for k, item in enumerate(items) if item == ("champion", i)][:1] + \
                     [k for k, item in enumerate(items) if item == (route, i)][:1]
            if len(firsts) == 2 and max(items[k][1] for k in range(max(firsts) + 1)) <= i + wait:
                assert (i, route) in seen


def test_a_snapshot_resumes_the_waiting_routes() -> None:
    config = CanaryConfig()
    plan = _plan(config)
    logic = PairingLogic({"m": plan}, None)
    found, _ = logic.on_item(_route_window("champion", [[250, 250, 250, 250], [250, 250, 250, 250]]))
    assert list(found) == []
    state = pickle.loads(pickle.dumps(logic.snapshot()))
    logic.on_item(_route_window("challenger", [[250] * 4, [250] * 4]))  # after the snapshot: not in it
    resumed = PairingLogic({"m": plan}, state)
    found, _ = resumed.on_item(_route_window("canary", [[250, 250, 250, 250], [100, 100, 300, 500]]))
    assert [f.severity for f in found if f.detector == HALT] == [Severity.ALERT]
    assert resumed.state is not None and resumed.state.n_waiting() == 1  # the champion, for the challenger


def _plan(config: CanaryConfig) -> Any:
    from flows.canary import CanaryPlan

    return CanaryPlan("m", config, _detector(config))


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(("canary", "message"), [
    ("{label: region}", "models[0]: canary.label 'region' must be one of the model's cohort labels"),
    ("{fields: [agee]}", "models[0]: canary.fields names fields that are neither features nor profiled prediction "
                         "fields: ['agee']; known: ['age', 'income', 'prediction.score']"),
    ("{fields: [prediction.label]}", "canary.fields names fields that are neither features nor profiled"),
    ("{compare: [champion]}", "models[0].canary: compare must not name the champion 'champion'"),
    ("{compare: [canary, canary]}", "models[0].canary: compare must name distinct routes"),
    ("{psi: {warn: 0.5, alert: 0.2}}", "models[0].canary.psi: warn must be <= alert"),
    ("{alpha: 0}", "models[0].canary.alpha: must be > 0"),
    ("{min_samples: 0}", "models[0].canary.min_samples: must be >= 1"),
    ("{halt: true}", "models[0].canary.halt: unknown key 'halt'"),
])
def test_config_errors_name_the_canary_setting(tmp_path: Path, canary: str, message: str) -> None:
    (tmp_path / "drift.yaml").write_text(CONFIG.replace("canary: {}", f"canary: {canary}"), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "drift.yaml")
    assert message in str(raised.value)


def test_defaults_compare_the_challenger_and_the_canary_with_the_champion(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(CONFIG, encoding="utf-8")
    canary = load_config(tmp_path / "drift.yaml").models[0].canary
    assert canary == CanaryConfig(label="route", champion="champion", compare=["challenger", "canary"], fields="*",
                                  alpha=0.01, min_samples=200)
    assert (canary.psi.warn, canary.psi.alert) == (0.1, 0.25)


# --------------------------------------------------------------------------- the dataflow


def _z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def events(tenants: list[str], n_windows: int, shifted: set[tuple[str, int]], seed: int = 3,
           sizes: dict[str, int] | None = None) -> list[bytes]:
    """Events of ``tenants × routes`` over ``n_windows`` 10-minute windows; the canary's scores
    move in the (tenant, window) pairs of ``shifted``. The canary serves from minute 3 of each window,
    so its window closes minutes after the champion's (the pairing step waits for it)."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"champion": 400, "challenger": 250, "canary": 250}
    timed: list[tuple[datetime, bytes]] = []
    for w in range(n_windows):
        start = START + w * SIZE
        for tenant in tenants:
            for route, n in sizes.items():
                first = timedelta(minutes=3) if route == "canary" else timedelta(0)
                offsets = rng.uniform(first.total_seconds(), SIZE.total_seconds(), size=n)
                moved = route == "canary" and (tenant, w) in shifted
                scores = rng.beta(5, 2, size=n) if moved else rng.beta(2, 5, size=n)
                ages, incomes = rng.normal(40, 10, size=n), rng.lognormal(8, 0.5, size=n)
                for k in range(n):
                    ts = start + timedelta(seconds=float(offsets[k]))
                    timed.append((ts, orjson.dumps({
                        "ts": _z(ts), "model": "credit-risk", "event_id": f"{tenant}-{route}-{w}-{k}",
                        "tenant": tenant, "route": route,
                        "features": {"age": float(ages[k]), "income": float(incomes[k])},
                        "prediction": {"score": float(scores[k])},
                    })))
    timed.sort(key=lambda item: item[0])
    return [line for _, line in timed]


def _workspace(tmp_path: Path, config: str = CONFIG) -> Path:
    (tmp_path / "drift.yaml").write_text(config, encoding="utf-8")
    rng = np.random.default_rng(11)
    write_parquet(tmp_path / "reference.parquet", {
        "age": rng.normal(40, 10, size=5000), "income": rng.lognormal(8, 0.5, size=5000),
        "score": rng.beta(2, 5, size=5000),
    })
    return tmp_path / "drift.yaml"


def test_replay_halts_the_shifted_canary_of_one_tenant_only(tmp_path: Path) -> None:
    config = load_config(_workspace(tmp_path))
    write_jsonl(tmp_path / "events.jsonl",
                events(["acme", "globex", "initech"], 3, {(SHIFTED_TENANT, SHIFTED_WINDOW)}))
    result = run_file(config, tmp_path / "events.jsonl")

    compared = [f for f in result.findings if f.detector == HALT]
    # Every (tenant, window) compares the challenger and the canary with the champion.
    assert sorted((dict(f.cohort.labels)["tenant"], dict(f.cohort.labels)["route"], f.window.start)
                  for f in compared) == sorted(
        (t, r, START + w * SIZE) for t in ("acme", "globex", "initech") for r in ("challenger", "canary")
        for w in range(3))
    assert len(result.halts) == 1
    halt = result.halts[0]
    assert halt.cohort.key == "credit-risk|tenant=acme|route=canary"
    assert halt.window == Window(START + SHIFTED_WINDOW * SIZE, START + (SHIFTED_WINDOW + 1) * SIZE)
    assert [f["field"] for f in halt.evidence["fields"]] == ["prediction.score"]
    assert halt.evidence["cohort"] == {"model": "credit-risk", "tenant": "acme"}
    assert halt.evidence["n_champion"] == 400 and halt.evidence["n_challenger"] == 250
    raised = [f for f in result.findings if f.detector == "canary" and f.severity is not Severity.OK]
    assert [(f.cohort.key, f.feature, f.window) for f in raised] == [
        (halt.cohort.key, "prediction.score", halt.window)]
    # The halt goes through the stream policy like any finding: one ticket, with its evidence.
    opened = [t for t in result.tickets if t.ticket.detector == HALT and t.kind == "opened"]
    assert [t.ticket.cohort for t in opened] == [{"model": "credit-risk", "tenant": "acme", "route": "canary"}]
    advice = [c["action"] for c in opened[0].context["countermeasures"]]
    assert advice[0] == "halt the rollout: send this route's traffic back to the champion"
    assert result.to_dict()["halts"] == [halt.to_dict()]
    # Each comparison sets the per-cohort gauges of its route's cohort.
    from prometheus_client import REGISTRY

    gauges = {(s.labels["tenant"], s.labels["route"], s.labels["detector"], s.labels["feature"])
              for m in REGISTRY.collect() if m.name == "drift_detector_value" for s in m.samples
              if s.labels.get("model") == "credit-risk" and s.labels["detector"].startswith("canary")}
    assert gauges >= {(t, r, d, f) for t in ("acme", "globex", "initech") for r in ("challenger", "canary")
                      for d, f in [("canary.halt", "-"), ("canary", "age"), ("canary", "income"),
                                   ("canary", "prediction.score")]}


def test_replay_without_a_shift_raises_no_halt_across_many_cohort_windows(tmp_path: Path) -> None:
    config = load_config(_workspace(tmp_path))
    tenants = [f"t{i:02d}" for i in range(12)]
    write_jsonl(tmp_path / "events.jsonl", events(
        tenants, 3, set(), seed=5, sizes={"champion": 250, "challenger": 200, "canary": 200}))
    result = run_file(config, tmp_path / "events.jsonl")
    verdicts = [f for f in result.findings if f.detector == HALT]
    assert len(verdicts) == len(tenants) * 3 * 2
    assert result.halts == [] and all(f.severity is Severity.OK for f in verdicts)
    fields = [f for f in result.findings if f.detector == "canary"]
    assert len(fields) == len(verdicts) * 3
    # The tests are calibrated: about alpha of the field tests are below alpha before BH.
    low = sum(1 for f in fields if f.p_value is not None and f.p_value <= 0.05)
    assert low / len(fields) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(fields))


def test_a_rollup_that_keeps_the_route_compares_the_routes_model_wide(tmp_path: Path) -> None:
    config = load_config(_workspace(tmp_path, CONFIG.replace("    canary: {}\n", "    canary: {}\n    rollups: [[route]]\n")))
    write_jsonl(tmp_path / "events.jsonl", events(["acme", "globex", "initech"], 2, {(SHIFTED_TENANT, SHIFTED_WINDOW)}))
    result = run_file(config, tmp_path / "events.jsonl")
    wide = [f for f in result.findings if f.detector == HALT and f.cohort.key.startswith("credit-risk|tenant=*")]
    assert len(wide) == 2 * 2 and all((f.n_current, f.n_reference) == (3 * 250, 3 * 400) for f in wide)
    assert sorted((h.cohort.key, h.window.start) for h in result.halts) == [
        ("credit-risk|tenant=*|route=canary", START + SHIFTED_WINDOW * SIZE),
        ("credit-risk|tenant=acme|route=canary", START + SHIFTED_WINDOW * SIZE),
    ]
    assert [h.evidence["cohort"] for h in result.halts if "*" in h.cohort.key] == [
        {"model": "credit-risk", "tenant": "*"}]


def test_a_model_without_canary_builds_no_canary_step(tmp_path: Path) -> None:
    config = load_config(_workspace(tmp_path, CONFIG.replace("    canary: {}\n", "")))
    assert canary_plans(plan_models(config, load_profiles(config))) == {}
    write_jsonl(tmp_path / "events.jsonl", events(["acme"], 1, {("acme", 0)}))
    result = run_file(config, tmp_path / "events.jsonl")
    assert not [f for f in result.findings if f.detector.startswith("canary")] and result.halts == []


def _compared(config: Any, lines: list[bytes], workers: int, shards: int) -> list[tuple[Any, ...]]:
    from bytewax.testing import cluster_main

    raw = [RawMessage(value=line, topic="t", partition=0, offset=k) for k, line in enumerate(lines)]
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), halts=ListSink())
    now = lambda: datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    flow = build_flow(config, load_profiles(config), TestingSource(raw, batch_size=100), outputs, now=now,
                      ok_findings=True, shards=shards)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=workers)
    found = [f for f in outputs.findings.items if f.detector.startswith("canary")]  # type: ignore[union-attr]
    assert len([f for f in found if is_halt(f)]) == len(outputs.halts.items)  # type: ignore[union-attr]
    return sorted((f.cohort.key, f.window.start, f.detector, f.feature or "", round(f.value, 9), f.severity.value,
                   f.q_value) for f in found)


def test_routes_in_different_shards_and_workers_are_compared_alike(tmp_path: Path) -> None:
    # With 4 shards the routes of a tenant are counted in different shards (and workers), and meet by group.
    config = load_config(_workspace(tmp_path))
    lines = events(["acme", "globex", "initech"], 2, {(SHIFTED_TENANT, SHIFTED_WINDOW)})
    one = _compared(config, lines, workers=1, shards=1)
    assert len(one) == 3 * 2 * 2 * 4 and sum(1 for row in one if row[2] == HALT and row[5] == "alert") == 1
    assert _compared(config, lines, workers=2, shards=4) == one


def test_a_run_stopped_between_the_routes_of_a_window_resumes_its_pairing(tmp_path: Path) -> None:
    """The champion's shifted window closes, the run stops before the canary's does (it serves from
    minute 3); resumed from its snapshot, the canary's window still meets the champion's."""
    config = load_config(_workspace(tmp_path))
    profiles = load_profiles(config)
    lines = events(["acme"], 3, {("acme", SHIFTED_WINDOW)})
    stop_at = START + (SHIFTED_WINDOW + 1) * SIZE + timedelta(minutes=2)  # champion closed, canary not yet
    split = next(k for k, line in enumerate(lines) if orjson.loads(line)["ts"] >= _z(stop_at))
    raw: list[Any] = [RawMessage(value=line, topic="t", partition=0, offset=k) for k, line in enumerate(lines)]
    raw.insert(split, TestingSource.ABORT())
    now = lambda: datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)

    halts: list[Finding] = []
    waiting: list[int] = []
    for _ in range(2):
        outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), halts=ListSink())
        flow = build_flow(config, profiles, TestingSource(raw, batch_size=50), outputs, now=now)
        run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(recovery)))
        halts += outputs.halts.items  # type: ignore[union-attr]
        waiting.append(len(_pairing_snapshots(recovery)))
    assert waiting == [1, 0], "the stop must fall between the champion's and the canary's windows"
    assert [(h.cohort.key, h.window.start) for h in halts] == [
        ("credit-risk|tenant=acme|route=canary", START + SHIFTED_WINDOW * SIZE)]


def _pairing_snapshots(recovery: Path) -> list[Pairing]:
    """The pairing states in the newest snapshot of ``recovery`` (none once every key was discarded)."""
    import sqlite3

    out = []
    for path in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT state_key, ser_change FROM snaps WHERE step_id LIKE '%pair_canary_routes%' "
                "ORDER BY snap_epoch").fetchall()
        latest: dict[str, Any] = {}
        for key, blob in rows:
            latest[key] = None if blob is None else pickle.loads(blob)
        out += [state for state in latest.values() if state is not None]
    return out


def test_replay_prints_the_halts_and_writes_them_with_halts_out(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    config = _workspace(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", events(["acme", "globex"], 2, {(SHIFTED_TENANT, SHIFTED_WINDOW)}))
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "drift.cli", "replay", "--config", str(config), "--events",
         str(tmp_path / "events.jsonl"), *extra], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    done = run("--json", "--halts-out", str(tmp_path / "halts.jsonl"))
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    written = [json.loads(line) for line in (tmp_path / "halts.jsonl").read_text().splitlines()]
    assert written == document["halts"] and len(written) == 1
    assert written[0]["detector"] == HALT and written[0]["cohort"] == {
        "model": "credit-risk", "tenant": "acme", "route": "canary"}
    assert written[0]["evidence"]["decision"] == "halt"
    text = run().stdout
    assert "canary halts: 1" in text and "credit-risk|tenant=acme|route=canary  prediction.score  10:10-10:20" in text


# --------------------------------------------------------------------------- quality on the labels


QUALITY_CONFIG = CONFIG.replace("    canary: {}\n", """\
    labels: {kind: binary, prediction: prediction.score, horizon: 1h}
    canary: {quality: {min_labels: 100}}
""")


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 500), st.integers(1, 500), st.data())
def test_accuracy_drop_is_the_one_sided_two_proportion_test(n_h: int, n_c: int, data: st.DataObject) -> None:
    k_h, k_c = data.draw(st.integers(0, n_h)), data.draw(st.integers(0, n_c))
    drop, p = accuracy_drop(k_h, n_h, k_c, n_c)
    assert drop == pytest.approx(k_h / n_h - k_c / n_c)
    table = np.array([[k_h, n_h - k_h], [k_c, n_c - k_c]])
    if (table.sum(axis=0) == 0).any():
        assert p == 1.0
        return
    expected = chi2_contingency(table, correction=False)
    # z² is Pearson's X² of the 2 × 2 table; the one-sided p is half its p-value in the direction of a drop.
    assert p == pytest.approx(expected.pvalue / 2 if drop > 0 else 1 - expected.pvalue / 2, abs=1e-9)


def _quality(route: str, n: int, correct: int, i: int = 0) -> QualityWindow:
    return QualityWindow(Cohort("m", (("tenant", "acme"), ("route", route))), route, _window(i), n, n, correct,
                         "coverage")


def test_a_less_accurate_route_halts_on_its_labels() -> None:
    config = CanaryConfig(quality={"min_labels": 100})  # type: ignore[arg-type]
    detector = _detector(config)
    finding, halt = detector.compare_quality(_quality("champion", 1000, 900), _quality("canary", 500, 400))
    assert (finding.detector, finding.feature, finding.severity) == ("canary.quality", "accuracy", Severity.ALERT)
    assert finding.value == pytest.approx(0.1) and finding.q_value == finding.p_value < 1e-6
    assert finding.evidence["champion_accuracy"] == 0.9 and finding.evidence["challenger_accuracy"] == 0.8
    assert (halt.detector, halt.feature, halt.severity) == (HALT, "accuracy", Severity.ALERT)
    assert halt.evidence["basis"] == "quality" and halt.evidence["decision"] == "halt"
    assert halt.evidence["fields"] == [{"field": "accuracy", "drop": finding.value, "champion": 0.9,
                                        "challenger": 0.8, "p_value": finding.p_value, "q_value": finding.q_value,
                                        "severity": "alert"}]
    # A better route, one within the thresholds, one drop chance explains, and too few labels: no halt.
    for champion, canary in [((1000, 900), (500, 480)), ((1000, 900), (500, 445)), ((120, 100), (110, 85)),
                             ((1000, 900), (50, 20))]:
        verdict = detector.compare_quality(_quality("champion", *champion), _quality("canary", *canary))[-1]
        assert verdict.severity is Severity.OK, (champion, canary)


def events_with_labels(tenants: list[str], n_windows: int, degraded: set[tuple[str, int]], seed: int = 9) -> list[bytes]:
    """Predictions (uniform scores, the same on every route) and their labels two minutes later:
    a label is drawn with the score as its chance of being 1, except for the canary in ``degraded``,
    whose labels are coin flips (its scores say nothing any more)."""
    rng = np.random.default_rng(seed)
    timed: list[tuple[datetime, bytes]] = []
    for w in range(n_windows):
        start = START + w * SIZE
        for tenant in tenants:
            for route, n in {"champion": 400, "challenger": 250, "canary": 250}.items():
                first = timedelta(minutes=3) if route == "canary" else timedelta(0)
                offsets = rng.uniform(first.total_seconds(), SIZE.total_seconds(), size=n)
                scores = rng.uniform(0, 1, size=n)
                chance = np.full(n, 0.5) if route == "canary" and (tenant, w) in degraded else scores
                labels = rng.random(n) < chance
                ages, incomes = rng.normal(40, 10, size=n), rng.lognormal(8, 0.5, size=n)
                for k in range(n):
                    ts = start + timedelta(seconds=float(offsets[k]))
                    event_id = f"{tenant}-{route}-{w}-{k}"
                    timed.append((ts, orjson.dumps({
                        "ts": _z(ts), "model": "credit-risk", "event_id": event_id, "tenant": tenant, "route": route,
                        "features": {"age": float(ages[k]), "income": float(incomes[k])},
                        "prediction": {"score": float(scores[k])},
                    })))
                    later = ts + timedelta(minutes=2)
                    timed.append((later, orjson.dumps({
                        "ts": _z(later), "model": "credit-risk", "event_id": event_id, "label": int(labels[k])})))
    timed.sort(key=lambda item: item[0])
    return [line for _, line in timed]


def _uniform_workspace(tmp_path: Path, config: str) -> Path:
    path = _workspace(tmp_path, config)
    rng = np.random.default_rng(12)
    write_parquet(tmp_path / "reference.parquet", {
        "age": rng.normal(40, 10, size=5000), "income": rng.lognormal(8, 0.5, size=5000),
        "score": rng.uniform(0, 1, size=5000),
    })
    return path


def test_replay_halts_the_canary_whose_labels_say_it_got_worse(tmp_path: Path) -> None:
    config = load_config(_uniform_workspace(tmp_path, QUALITY_CONFIG))
    write_jsonl(tmp_path / "events.jsonl",
                events_with_labels(["acme", "globex", "initech"], 3, {(SHIFTED_TENANT, SHIFTED_WINDOW)}))
    result = run_file(config, tmp_path / "events.jsonl")

    verdicts = [f for f in result.findings if f.detector == HALT and f.feature == "accuracy"]
    # Every judged (tenant, window) compares both routes' accuracy with the champion's; the last window
    # still waits for its labels at the end of the input (not judged, not compared).
    assert sorted({f.window.start for f in verdicts}) == [START, START + SIZE]
    assert len(verdicts) == 3 * 2 * 2 and all(f.skipped is None for f in verdicts)
    # Its scores moved nowhere: the distributions halt nothing; the labels halt acme's canary in that window.
    assert [(h.cohort.key, h.window.start, h.feature, h.evidence["basis"]) for h in result.halts] == [
        ("credit-risk|tenant=acme|route=canary", START + SHIFTED_WINDOW * SIZE, "accuracy", "quality")]
    halt = result.halts[0]
    drop = halt.evidence["fields"][0]
    assert drop["champion"] > 0.7 and drop["challenger"] < 0.6 and drop["q_value"] <= 0.01
    quality = [f for f in result.findings if f.detector == "canary.quality" and f.severity is not Severity.OK]
    assert [(f.cohort.key, f.window) for f in quality] == [(halt.cohort.key, halt.window)]


@pytest.mark.parametrize(("quality", "labels", "message"), [
    ("{quality: {}}", "", "canary.quality compares the routes' accuracy on their labels: the model needs labels:"),
    ("{quality: {}}", "    labels: {kind: regression}\n", "which a regression model does not have"),
    ("{quality: {warn: 0.1, alert: 0.05}}", "    labels: {kind: binary}\n", "models[0].canary.quality: warn must be <= alert"),
    ("{quality: {metric: recall}}", "    labels: {kind: binary}\n", "models[0].canary.quality.metric: "),
])
def test_quality_config_errors(tmp_path: Path, quality: str, labels: str, message: str) -> None:
    text = CONFIG.replace("    canary: {}\n", f"{labels}    canary: {quality}\n")
    (tmp_path / "drift.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "drift.yaml")
    assert message in str(raised.value)
