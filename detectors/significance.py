r"""Significance of a binned window against its reference, and false-discovery control.

An effect size such as PSI does not say how sure we are: under no drift at all, PSI
over ``B`` bins grows like :math:`(B-1)(1/n + 1/N)`, so a fixed threshold is a
different false-alarm rate at ``n = 100`` than at ``n = 100,000``. Every binned detector
therefore reports, next to its value, the p-value of

    H0: the window's values and the reference's come from one distribution over the bins,

and a finding is at warn or alert only when its value crosses the threshold **and** it
stays significant after Benjamini–Hochberg over the detector's tests of the cohort
window (one per feature).

The test is the chi-square test of homogeneity of the ``2 × B`` table of reference
counts :math:`R_i = N r_i` (``r`` the reference shares, ``N`` its size) and window
counts :math:`C_i`. With :math:`T_i = R_i + C_i` over the ``k`` bins where
:math:`T_i > 0`, the expected counts are :math:`E^R_i = N T_i / (N + n)` and
:math:`E^C_i = n T_i / (N + n)`, and

.. math::

    X^2 = \sum_i \frac{(R_i - E^R_i)^2}{E^R_i} + \frac{(C_i - E^C_i)^2}{E^C_i}
        = \sum_i \frac{(n R_i - N C_i)^2}{N\,n\,T_i}

is referred to :math:`\chi^2_{k-1}` when every expected count is at least
:data:`MIN_EXPECTED` (Cochran's rule). Otherwise the p-value is a Monte-Carlo one: tables
are drawn under H0 from the pooled shares :math:`\hat p = T / (N + n)` (window
:math:`\sim \mathrm{Mult}(n, \hat p)`, reference :math:`\sim \mathrm{Mult}(N, \hat p)`),
and ``p = (1 + #{X²* >= X²}) / (1 + draws)``: :data:`FIRST_DRAWS` first, and
:data:`MORE_DRAWS` more only when the first ones leave the p-value below 0.05 (a clearly
large p-value needs no precision). When no drawn table is as extreme as the window's, the
p-value is the smaller of that floor, ``1 / 2000``, and the chi-square p-value of the table
with its small bins merged into their neighbours until every expected count is at least 5:
still calibrated (below the floor only the merged test decides), and small enough for
Benjamini–Hochberg over many features. The draws are seeded from the counts themselves, so one
window always gets one p-value (replays and recovery agree).

Testing against the reference *sample* (two-sample), not against its shares taken as
exact, keeps the p-values calibrated when the window is as large as the reference.

Benjamini–Hochberg: with the ``m`` p-values of a family sorted,
:math:`q_{(i)} = \min_{j \ge i} \min(1, m\,p_{(j)} / j)`; a test is significant at
level ``q`` when :math:`q_{(i)} \le q`. That bounds the expected share of false findings
among those raised by ``q``, whatever the number of features.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Sequence, Union

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from drift.findings import Finding, Severity

MIN_EXPECTED = 5.0
"""Smallest expected count in any cell for the chi-square approximation."""

FIRST_DRAWS = 199
MORE_DRAWS = 1800
"""Monte-Carlo tables drawn: 199 first, 1,800 more when p < 0.05 after those."""

Method = Literal["chi2", "monte_carlo", "z", "binomial", "none"]


class Significance(BaseModel):
    """``significance:`` of a binned detector in YAML.

    ``{method: bh, q: 0.01}`` (the default) requires a finding at warn or alert to be
    significant after Benjamini–Hochberg at ``q`` over the detector's features of the
    cohort window. ``significance: none`` judges the value alone, as fixed thresholds do.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    method: Literal["bh"] = "bh"
    q: float = Field(default=0.01, gt=0, lt=1)


SignificanceSetting = Union[Significance, Literal["none"]]


def homogeneity_test(
    reference_shares: npt.ArrayLike, n_reference: float, current: npt.ArrayLike,
) -> tuple[float, Method, float]:
    """p-value of H0 "window and reference share one distribution", its method and X².

    ``reference_shares`` are the reference's bin shares (they sum to 1) and
    ``n_reference`` its size; ``current`` the window's counts in the same bins.
    Returns ``(1.0, "none", 0.0)`` when either side is empty or only one bin holds values.

    >>> p, method, x2 = homogeneity_test([0.5, 0.5], 10_000, [50, 50])
    >>> round(p, 3), method, round(x2, 3)
    (1.0, 'chi2', 0.0)
    >>> homogeneity_test([0.5, 0.5], 10_000, [90, 10])[0] < 1e-12
    True
    """
    r = np.asarray(reference_shares, dtype=np.float64) * float(n_reference)
    c = np.asarray(current, dtype=np.float64)
    n = float(c.sum())
    big_n = float(r.sum())
    if n <= 0 or big_n <= 0:
        return 1.0, "none", 0.0
    total = r + c
    used = total > 0
    if int(used.sum()) < 2:
        return 1.0, "none", 0.0
    r, c, total = r[used], c[used], total[used]
    observed = _x2(r, c, total, big_n, n)
    expected_min = float(total.min()) * min(big_n, n) / (big_n + n)
    if expected_min >= MIN_EXPECTED:
        return _chi2_sf(observed, int(used.sum()) - 1), "chi2", observed
    return _monte_carlo(r, c, total, big_n, n, observed), "monte_carlo", observed


def _x2(
    r: npt.NDArray[np.float64], c: npt.NDArray[np.float64], total: npt.NDArray[np.float64], big_n: float, n: float,
) -> float:
    # Pearson's X² of the 2 × k table in one expression: sum (n R - N C)² / (N n T).
    return float(np.sum((n * r - big_n * c) ** 2 / total) / (big_n * n))


def _chi2_sf(x2: float, df: int) -> float:
    from scipy.special import chdtrc

    return float(min(1.0, max(0.0, chdtrc(df, x2))))


def _monte_carlo(
    r: npt.NDArray[np.float64], c: npt.NDArray[np.float64], total: npt.NDArray[np.float64],
    big_n: float, n: float, observed: float,
) -> float:
    seed = hashlib.blake2b(np.concatenate([r, c]).tobytes(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(seed, "little"))
    pooled = total / total.sum()
    n_int, big_int = int(round(n)), max(1, int(round(big_n)))
    exceed, drawn = 0, 0
    for draws in (FIRST_DRAWS, MORE_DRAWS):
        cs = rng.multinomial(n_int, pooled, size=draws).astype(np.float64)
        rs = rng.multinomial(big_int, pooled, size=draws).astype(np.float64)
        ts = cs + rs
        with np.errstate(divide="ignore", invalid="ignore"):
            cells = np.where(ts > 0, (n_int * rs - big_int * cs) ** 2 / ts, 0.0)
        stats = cells.sum(axis=1) / (big_int * n_int)
        # A tolerance for ties: tables equal to the observed one up to rounding count as >=.
        exceed += int(np.count_nonzero(stats >= observed * (1 - 1e-9) - 1e-12))
        drawn += draws
        if (1 + exceed) / (1 + drawn) >= 0.05:
            break
    floor = 1 / (1 + drawn)
    if exceed == 0:
        # No drawn table was as extreme: the Monte-Carlo p-value only says p <= 1/2000, too
        # coarse for Benjamini-Hochberg over many features. The chi-square test of the table
        # with its small bins merged (every expected count >= 5 again) is valid and can say
        # how far below; below the floor it decides, above it the Monte-Carlo value stands,
        # so the p-value stays calibrated at every level.
        return min(floor, _collapsed_chi2_p(r, c, big_n, n))
    return (1 + exceed) / (1 + drawn)


def _collapsed_chi2_p(
    r: npt.NDArray[np.float64], c: npt.NDArray[np.float64], big_n: float, n: float,
) -> float:
    """Chi-square p-value of the table after merging bins into neighbours until every expected count is >= 5.

    The bin with the smallest total joins the smaller of its neighbours (bins stay in their
    order: adjacent quantile bins, categories by reference frequency with ``__unseen__`` last).
    A table merged down to one bin cannot be tested: 1.
    """
    rs, cs = [float(x) for x in r], [float(x) for x in c]
    scale = min(big_n, n) / (big_n + n)
    while len(rs) > 1:
        totals = [a + b for a, b in zip(rs, cs)]
        smallest = min(range(len(totals)), key=totals.__getitem__)
        if totals[smallest] * scale >= MIN_EXPECTED:
            break
        if smallest == 0:
            other = 1
        elif smallest == len(totals) - 1:
            other = smallest - 1
        else:
            other = smallest - 1 if totals[smallest - 1] <= totals[smallest + 1] else smallest + 1
        low, high = sorted((smallest, other))
        rs[low], cs[low] = rs[low] + rs[high], cs[low] + cs[high]
        del rs[high], cs[high]
    if len(rs) < 2:
        return 1.0
    ra, ca = np.asarray(rs), np.asarray(cs)
    return _chi2_sf(_x2(ra, ca, ra + ca, big_n, n), len(rs) - 1)


def bh_qvalues(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini–Hochberg adjusted p-values (q-values) of one family, in input order.

    >>> bh_qvalues([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    q = np.empty(m, dtype=np.float64)
    q[order] = adjusted
    return q


def rate_p(k: int, n: int, p0: float) -> float:
    """One-sided binomial p-value P(X >= k) for X ~ Binomial(n, p0): is the rate above ``p0``?

    >>> rate_p(0, 100, 0.02), rate_p(3, 100, 0.0)
    (1.0, 0.0)
    >>> round(rate_p(5, 100, 0.02), 4)
    0.0508
    """
    if k <= 0 or n <= 0:
        return 1.0
    if p0 <= 0:
        return 0.0
    from scipy.special import bdtrc

    return float(min(1.0, max(0.0, bdtrc(k - 1, n, min(p0, 1.0)))))


def mean_shift_p(shift_in_std: float, n: int) -> float:
    """Two-sided p-value of a window mean ``shift_in_std`` reference deviations away, over ``n`` values.

    The z statistic is ``shift · √n`` (the window mean's standard error is ``σ / √n``).

    >>> round(mean_shift_p(0.0, 100), 3), mean_shift_p(1.0, 100) < 1e-12
    (1.0, True)
    """
    from scipy.special import ndtr

    z = abs(shift_in_std) * float(np.sqrt(max(n, 0)))
    return float(min(1.0, 2.0 * ndtr(-z)))


def judge(
    severities: Sequence[Severity], p_values: Sequence[float | None], setting: SignificanceSetting,
) -> tuple[list[Severity], list[float | None]]:
    """Severities after significance, and the q-values, for one detector's tests of a cohort window.

    Tests without a p-value (skipped, not testable) keep their severity and get no
    q-value. With ``setting`` ``none`` the q-values are reported and nothing changes;
    else a test at warn or alert whose q-value is above ``setting.q`` is ``ok``.

    >>> judge([Severity.ALERT, Severity.WARN], [1e-9, 0.2], Significance(q=0.01))[0]
    [<Severity.ALERT: 'alert'>, <Severity.OK: 'ok'>]
    """
    tested = [(i, p) for i, p in enumerate(p_values) if p is not None]
    q_values: list[float | None] = [None] * len(p_values)
    if tested:
        adjusted = bh_qvalues([p for _, p in tested])
        for (i, _), q in zip(tested, adjusted.tolist()):
            q_values[i] = q
    out = list(severities)
    if setting != "none":
        for i, _ in tested:
            q = q_values[i]
            if q is not None and q > setting.q:
                out[i] = Severity.OK
    return out, q_values


def evidence(
    p_value: float | None, method: Method, q_value: float | None, setting: SignificanceSetting,
    effect: Severity, judged: Severity,
) -> dict[str, Any]:
    """What a finding says about its significance: p, q, the test, and why it did not fire."""
    out: dict[str, Any] = {"p_value": p_value, "p_method": method, "q_value": q_value,
                           "significance": "none" if setting == "none" else f"bh q<={setting.q:g}"}
    if effect is not judged:
        out["not_significant"] = (
            f"the value is at {effect.value}, but q={q_value:.3g} > {setting.q:g} "  # type: ignore[union-attr]
            f"(p={p_value:.3g}): within what this window's size lets chance explain"
        )
    return out


@dataclass(frozen=True, slots=True)
class Draft:
    """A finding before significance: its effect severity and p-value, and how to build it.

    Building a finding (its evidence, its object) costs more than judging it: a detector
    that only needs the findings above ``ok`` builds just those (:func:`settle`)."""

    severity: Severity
    p_value: float | None
    build: Callable[[], Finding]


def settle(drafts: list[Draft], setting: SignificanceSetting, problems_only: bool = False) -> list[Finding]:
    """:func:`apply` over drafts: the family is judged from their severities and p-values, and
    only the findings kept are built (with ``problems_only``, those at warn or alert after
    significance). The findings built are exactly those :func:`apply` returns."""
    judged, q_values = judge([d.severity for d in drafts], [d.p_value for d in drafts], setting)
    out = []
    for draft, severity, q in zip(drafts, judged, q_values):
        if problems_only and severity is Severity.OK:
            continue
        finding = draft.build()
        if finding.p_value is None:
            out.append(finding)
            continue
        method = finding.evidence.get("p_method", "chi2")
        extra = evidence(finding.p_value, method, q, setting, finding.severity, severity)
        out.append(replace(finding, severity=severity, q_value=q, evidence={**finding.evidence, **extra}))
    return out


def apply(findings: list[Finding], setting: SignificanceSetting) -> list[Finding]:
    """One detector's findings of a cohort window, judged for significance as one family.

    Each finding comes with its effect severity (value against the thresholds) and, where
    it was tested, ``p_value`` and ``evidence["p_method"]``. Returned: the same findings
    with ``q_value``, the significance evidence, and ``ok`` where the effect is not
    significant (:func:`judge`).
    """
    return settle([Draft(f.severity, f.p_value, _kept(f)) for f in findings], setting)


def _kept(finding: Finding) -> Callable[[], Finding]:
    return lambda: finding


@dataclass
class CohortFamilies:
    r"""False-discovery control across the cohorts of a model window, one detector at a time.

    Within a cohort window a detector's tests are one Benjamini–Hochberg family
    (:func:`settle`). Across cohorts, a model window with ``K`` cohort windows tested is a
    family of families, judged the way Benjamini and Bogomolov (2014) select families:
    a cohort's *selection p-value* is the smallest q-value of its findings at warn or
    alert (a Simes p-value of the cohort's tests), the cohorts are ranked by it, and a
    finding of the cohort of rank ``R`` stays at warn or alert only when

    .. math:: q_\text{cohort} \cdot K / R \le q,

    the q-value it carries. Under no drift at all this bounds the chance of any finding
    in the model window by ``q``, however many cohorts there are.

    In a stream the cohorts of a window close one batch after another: the rank counts the
    cohorts selected so far (a cohort closing early is judged with fewer others, never
    more leniently), and ``K`` is the larger of the cohort windows tested so far in this
    window and in the previous one, times the model's shards (each shard sees its share of
    the cohorts). A cohort window counts as tested by a detector when it has at least the
    detector's ``min_samples`` events.
    """

    tested: dict[tuple[int, int], int] = field(default_factory=dict)
    """(window start in µs, detector) -> cohort windows tested so far."""
    selected: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    """(window start in µs, detector) -> selection p-values of the cohorts judged so far, sorted."""

    def count(self, window_us: int, detector: int, n: int) -> None:
        """``n`` more cohort windows tested by ``detector`` in the window starting at ``window_us``."""
        if n:
            key = (window_us, detector)
            self.tested[key] = self.tested.get(key, 0) + n

    def forget_before(self, window_us: int) -> None:
        """Drop the families of windows starting before ``window_us``."""
        for table in (self.tested, self.selected):
            for key in [k for k in table if k[0] < window_us]:
                del table[key]

    def judge(
        self, findings: list[Finding], setting: SignificanceSetting, window_us: int, previous_us: int,
        detector: int, shards: int = 1,
    ) -> list[Finding]:
        """One cohort window's findings of ``detector`` (after :func:`settle`), judged across cohorts."""
        if setting == "none":
            return findings
        fired = [i for i, f in enumerate(findings) if f.severity is not Severity.OK and f.q_value is not None]
        if not fired:
            return findings
        selection = min(float(findings[i].q_value) for i in fired)  # type: ignore[arg-type]
        chosen = self.selected.setdefault((window_us, detector), [])
        bisect.insort(chosen, selection)
        rank = bisect.bisect_right(chosen, selection)
        tested = max(self.tested.get((window_us, detector), 0), self.tested.get((previous_us, detector), 0))
        families = max(tested * shards, rank)
        out = list(findings)
        for i in fired:
            f = findings[i]
            within = float(f.q_value)  # type: ignore[arg-type]
            across = min(1.0, within * families / rank)
            extra: dict[str, Any] = {"q_within_cohort": within, "cohort_windows": families, "cohort_rank": rank}
            severity = f.severity
            if across > setting.q:
                severity = Severity.OK
                extra["not_significant"] = (
                    f"the value is at {f.severity.value} and significant within its cohort window "
                    f"(q={within:.3g}), but not across the model's {families} cohort windows: "
                    f"q={across:.3g} > {setting.q:g} (rank {rank})"
                )
            out[i] = replace(f, severity=severity, q_value=across, evidence={**f.evidence, **extra})
        return out
