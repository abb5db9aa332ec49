r"""Rollups: cohorts summed over some of their labels, scored as cohorts of their own.

A drift spread thinly over many small cohorts is significant in none of them, and
obvious in their sum. A model's ``rollups:`` (``[[model], [tenant]]``) name the
cohort labels each rollup keeps; a rollup cohort's other labels read ``*``:
with ``cohort: [tenant, region]``, the rollup ``[tenant]`` of ``tenant=acme,
region=eu`` is ``tenant=acme, region=*`` and ``[model]`` is ``tenant=*, region=*``.
Every event is counted into its cohort and into each of its rollup cohorts; a rollup
cohort has its own rows, watermark and windows (flows/shard_windows.py), and goes
through the same detectors, significance, policy and tickets as any cohort.

Attribution: a rollup window also keeps each member cohort's bin counts
(:class:`MemberCounts`). A PSI over bins ``b`` with rollup shares
:math:`c_b = \sum_k (n_k / n) c_{k,b}` (member ``k`` of ``n_k`` values) splits exactly
into one term per member,

.. math::

    \mathrm{PSI} = \sum_b (c_b - r_b) \ln\frac{c_b}{r_b}
                 = \sum_k \frac{n_k}{n} \sum_b (c_{k,b} - r_b) \ln\frac{c_b}{r_b},

so a member's *share* of the rollup's PSI is its term over the sum (the shares add up to
1; a member pulling against the rollup's drift has a negative share). With the
detector's ``epsilon`` floor on empty bins the logarithm is the floored one, as in the
PSI itself. A rollup's PSI finding at warn or alert names its largest contributors
(:func:`contributors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drift.columnar import OK, Block
from drift.findings import Cohort

ALL = "*"
"""The value of a label a rollup sums over."""
TOP_CONTRIBUTORS = 5
"""Members a rollup's finding names."""


def rollup_cohort(cohort: Cohort, kept: tuple[str, ...]) -> Cohort:
    """``cohort``'s rollup that keeps the labels ``kept``.

    >>> rollup_cohort(Cohort("m", (("tenant", "a"), ("region", "eu"))), ("tenant",)).key
    'm|tenant=a|region=*'
    """
    return Cohort(cohort.model, tuple((name, value if name in kept else ALL) for name, value in cohort.labels))


def is_rollup(cohort: Cohort) -> bool:
    """Whether ``cohort`` is a rollup (one of its labels is ``*``)."""
    return any(value == ALL for _, value in cohort.labels)


@dataclass
class MemberCounts:
    """The bin counts of each member cohort of one rollup cohort's window."""

    n_bins: int
    index: dict[str, int] = field(default_factory=dict)
    """Member cohort key -> row of ``counts``."""
    keys: list[str] = field(default_factory=list)
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    def __post_init__(self) -> None:
        if self.counts.shape[1] != self.n_bins:
            self.counts = np.zeros((0, self.n_bins), np.int64)

    def add(self, members: list[str], member_of: npt.NDArray[np.intp], present: npt.NDArray[np.intp],
            events: npt.NDArray[np.intp], bins: npt.NDArray[np.int64]) -> None:
        """Count the events ``present`` (their member key is ``members[member_of[event]]``) and
        bin ``bins[j]`` of event ``events[j]`` into their members' rows."""
        codes = np.unique(member_of[present])
        rows = np.zeros(len(members), dtype=np.intp)
        for code in codes.tolist():
            key = members[code]
            row = self.index.get(key)
            if row is None:
                row = self.index[key] = len(self.keys)
                self.keys.append(key)
            rows[code] = row
        if len(self.keys) > self.counts.shape[0]:
            grown = np.zeros((max(16, 2 * len(self.keys)), self.n_bins), dtype=np.int64)
            grown[: self.counts.shape[0]] = self.counts
            self.counts = grown
        if bins.size:
            np.add.at(self.counts.reshape(-1), rows[member_of[events]] * self.n_bins + bins, 1)

    def copy(self) -> MemberCounts:
        return MemberCounts(self.n_bins, dict(self.index), list(self.keys), self.counts.copy())

    def __getstate__(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "keys": self.keys, "counts": self.counts[: len(self.keys)].copy()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.n_bins = state["n_bins"]
        self.keys = list(state["keys"])
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.counts = state["counts"]


def event_bins(layout: Any, block: Block) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
    """(event, bin) of every value of ``block`` the window arrays bin: bins numbered as in
    ``layout`` (:class:`drift.cohort_arrays.Layout`), values with a cell state other than
    OK left out, as the window's own counts leave them out."""
    events: list[npt.NDArray[np.intp]] = []
    bins: list[npt.NDArray[np.int64]] = []
    numeric_at = {name: j for j, name in enumerate(block.numeric_names)}
    n = len(block)
    for f, name in enumerate(layout.names):
        states = block.states.get(name)
        ok = None if states is None else states == OK
        if name in numeric_at:
            edges = layout.edges[f]
            values = block.numeric[numeric_at[name]]
            index = np.searchsorted(edges, values, side="right").astype(np.int64)
            at = np.arange(n, dtype=np.intp) if ok is None else np.flatnonzero(ok)
            events.append(at)
            bins.append(index[at] + layout.offsets[f])
        elif name in block.categorical:
            column = block.categorical[name]
            at = np.arange(n, dtype=np.intp) if ok is None else np.flatnonzero(ok)
            if ok is not None:
                column = column.filter(pa.array(ok))
            if len(column) == 0:
                continue
            categories = layout.categories[f]
            positions = pc.index_in(column, value_set=categories)
            index = positions.fill_null(len(categories)).to_numpy(zero_copy_only=False).astype(np.int64)
            events.append(at)
            bins.append(index + layout.offsets[f])
    if not events:
        return np.zeros(0, np.intp), np.zeros(0, np.int64)
    return np.concatenate(events), np.concatenate(bins)


def contributors(
    members: MemberCounts, low: int, high: int, reference_shares: npt.ArrayLike, epsilon: float,
    top: int = TOP_CONTRIBUTORS,
) -> dict[str, Any]:
    """Each member's share of the rollup's PSI over bins ``low:high`` (one feature), the
    ``top`` largest first: ``{"contributors": [{"cohort", "n", "share"}], "n_members": m}``."""
    counts = members.counts[: len(members.keys), low:high].astype(np.float64)
    per_member = counts.sum(axis=1)
    total = counts.sum(axis=0)
    n = float(total.sum())
    reference = np.asarray(reference_shares, dtype=np.float64)
    if n <= 0 or reference.sum() <= 0:
        return {"contributors": [], "n_members": int(np.count_nonzero(per_member))}
    r = np.maximum(reference / reference.sum(), epsilon)
    log_ratio = np.log(np.maximum(total / n, epsilon) / r)
    terms = (counts @ log_ratio - per_member * float(r @ log_ratio)) / n
    whole = float(terms.sum())
    share = terms / whole if whole != 0 else np.zeros_like(terms)
    order = np.argsort(-terms, kind="stable")[:top]
    return {
        "contributors": [
            {"cohort": members.keys[i], "n": int(per_member[i]), "share": round(float(share[i]), 4)}
            for i in order.tolist() if per_member[i] > 0
        ],
        "n_members": int(np.count_nonzero(per_member)),
    }
