"""Rollups: their cohorts, their config, and the attribution of a rollup's PSI to its members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.psi import psi
from drift.config import load_config
from drift.errors import ConfigError
from drift.findings import Cohort
from drift.rollups import MemberCounts, contributors, is_rollup, rollup_cohort

EPSILON = 1e-4


def test_a_rollup_cohort_keeps_its_labels_and_reads_star_for_the_others() -> None:
    cohort = Cohort("m", (("tenant", "acme"), ("region", "eu")))
    assert rollup_cohort(cohort, ("tenant",)) == Cohort("m", (("tenant", "acme"), ("region", "*")))
    assert rollup_cohort(cohort, ()).key == "m|tenant=*|region=*"
    assert is_rollup(rollup_cohort(cohort, ())) and not is_rollup(cohort)


def _members(counts: np.ndarray) -> MemberCounts:
    table = MemberCounts(counts.shape[1])
    table.add([f"m|tenant=t{k}" for k in range(counts.shape[0])], np.arange(counts.shape[0]),
              np.arange(counts.shape[0]), np.zeros(0, np.intp), np.zeros(0, np.int64))
    table.counts[: counts.shape[0]] = counts
    return table


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 12).flatmap(lambda bins: st.tuples(
    st.lists(st.integers(1, 1000), min_size=bins, max_size=bins),
    st.lists(st.lists(st.integers(0, 500), min_size=bins, max_size=bins), min_size=1, max_size=20),
)))
def test_the_members_shares_add_up_to_the_rollups_psi(data: tuple[list[int], list[list[int]]]) -> None:
    reference, members = np.asarray(data[0], np.float64), np.asarray(data[1], np.int64)
    total = members.sum(axis=0)
    if total.sum() == 0:
        return
    shares = reference / reference.sum()
    out = contributors(_members(members), 0, members.shape[1], shares, EPSILON, top=len(members))
    expected = psi(shares, total, EPSILON)
    # Every member's term, summed, is the PSI (up to the epsilon floor of empty rollup bins).
    per_member = members.sum(axis=1)
    r = np.maximum(shares, EPSILON)
    log_ratio = np.log(np.maximum(total / total.sum(), EPSILON) / r)
    terms = [(members[k] / total.sum() - per_member[k] / total.sum() * r) @ log_ratio for k in range(len(members))]
    if (total > 0).all():
        assert sum(terms) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    named = out["contributors"]
    assert [c["n"] for c in named] == [int(per_member[int(c["cohort"].rpartition("t")[2])]) for c in named]
    assert out["n_members"] == int(np.count_nonzero(per_member))
    if abs(sum(terms)) > 1e-9:
        by_key = {f"m|tenant=t{k}": terms[k] / sum(terms) for k in range(len(members)) if per_member[k] > 0}
        for c in named:
            assert c["share"] == pytest.approx(by_key[c["cohort"]], abs=1e-4)
        # Largest share first.
        assert [c["share"] for c in named] == sorted((c["share"] for c in named), reverse=True)


def test_the_drifted_member_is_named_first() -> None:
    rng = np.random.default_rng(1)
    shares = np.full(10, 0.1)
    members = rng.multinomial(1000, shares, size=30)
    members[7] = rng.multinomial(3000, np.r_[np.full(5, 0.04), np.full(5, 0.16)])
    out = contributors(_members(members), 0, 10, shares, EPSILON)
    assert out["contributors"][0]["cohort"] == "m|tenant=t7"
    assert out["contributors"][0]["share"] > 0.5
    assert len(out["contributors"]) == 5 and out["n_members"] == 30


CONFIG = """version: 1
models:
  - name: m
    cohort: {cohort}
    reference: {{parquet: reference.parquet}}
    rollups: {rollups}
    features:
      x: {{type: numeric}}
"""


@pytest.mark.parametrize(("cohort", "rollups", "message"), [
    ("[]", "[[model]]", "rollups need cohort labels"),
    ("[tenant]", "[[region]]", "not cohort labels of the model"),
    ("[tenant]", "[[tenant]]", "it would be the cohorts themselves"),
    ("[tenant, region]", "[[model, tenant]]", "[model] is the whole model"),
    ("[tenant, region]", "[[tenant], [tenant]]", "repeats an earlier rollup"),
    ("[tenant, region]", "[[tenant, tenant]]", "labels must be distinct"),
])
def test_a_rollup_that_cannot_be_is_refused_with_what_is_wrong(
    tmp_path: Path, cohort: str, rollups: str, message: str,
) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(CONFIG.format(cohort=cohort, rollups=rollups), encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_rollups_of_a_model() -> None:
    from drift.config import ModelConfig

    assert ModelConfig.rollup_labels(["model"]) == []
    assert ModelConfig.rollup_labels(["tenant"]) == ["tenant"]
