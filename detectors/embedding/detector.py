"""The ``embedding:`` config and detector: the tests of a cohort window's embedding sample against the reference (or its seasonal slot)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.seasonal_profile import SeasonalProfile
from drift.backend import Array, resolve_device, to_host
from drift.countermeasures import suggest
from drift.events import EVENT_FIELDS
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import ReferenceProfile
from drift.summary import WindowSummary
from detectors.embedding.arrays import PROJECTION_COMPONENTS
from detectors.embedding.knn import knn_ood_test, knn_threshold
from detectors.embedding.mmd import median_heuristic, mmd_permutation_test
from detectors.embedding.shift import (
    Components, centroid_permutation_test, centroid_shift, principal_components, projection_ks,
)

N_MOVED_COMPONENTS = 3
"""Principal components named in a finding's evidence as the ones that moved most."""
N_FARTHEST = 5
"""Event ids of the window's rows farthest from the reference named in the evidence."""


class EmbeddingConfig(BaseModel):
    """``embedding:`` in YAML.

    ``p_value: 0.01`` alerts about once per hundred drift-free windows per cohort
    before the policy's consecutive-window rule; ``warn_p_value: 0.05`` is the usual
    test level. 500 permutations resolve p-values down to 0.002, well under 0.01.
    A sample of 2,000 per side keeps the kernel matrix at 4,000² (a fraction of a
    second on two cores) and detects mean shifts of a few percent of the spread.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    field: str = "embedding"
    dim: int = Field(ge=1)
    method: Literal["mmd", "knn", "centroid"] = "mmd"
    sample: int = Field(default=2000, ge=10, le=1_000_000)
    permutations: int = Field(default=500, ge=1, le=100_000)
    p_value: float = Field(default=0.01, gt=0, lt=1)
    warn_p_value: float = Field(default=0.05, gt=0, lt=1)
    k: int = Field(default=10, ge=1, le=1000)
    quantile: float = Field(default=0.95, gt=0, lt=1)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    seed: int = Field(default=0, ge=0)
    min_samples: int = Field(default=100, ge=2)
    seasonal_rows: int | None = Field(default=None, ge=2, le=100_000)
    """With a seasonal baseline: embedding rows each slot keeps over the history (default
    ``max(256, min_samples)``); see :attr:`slot_rows`."""

    @field_validator("field")
    @classmethod
    def _own_event_key(cls, value: str) -> str:
        # The embedding is a top-level key of the event (and the reference Parquet column).
        if not value or value in EVENT_FIELDS:
            raise ValueError(
                f"must be a top-level event key other than {', '.join(EVENT_FIELDS)}; got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered_levels(self) -> EmbeddingConfig:
        if self.warn_p_value < self.p_value:
            raise ValueError(
                f"warn_p_value must be >= p_value; got warn_p_value={self.warn_p_value}, p_value={self.p_value}")
        if self.k >= self.min_samples:
            raise ValueError(f"k must be < min_samples; got k={self.k}, min_samples={self.min_samples}")
        if self.min_samples > self.sample:
            raise ValueError(f"min_samples must be <= sample; got min_samples={self.min_samples}, sample={self.sample}")
        if self.seasonal_rows is not None and self.seasonal_rows < self.min_samples:
            raise ValueError(
                f"seasonal_rows must be >= min_samples (a slot is used from min_samples rows on); "
                f"got seasonal_rows={self.seasonal_rows}, min_samples={self.min_samples}")
        return self

    @property
    def slot_rows(self) -> int:
        """Rows a seasonal slot keeps over its K periods (``ceil(slot_rows / K)`` per period)."""
        return self.seasonal_rows if self.seasonal_rows is not None else max(256, self.min_samples)


def severity_of_p(p_value: float, warn_p_value: float, alert_p_value: float) -> Severity:
    """Severity of a p-value (smaller is worse).

    >>> severity_of_p(0.003, warn_p_value=0.05, alert_p_value=0.01)
    <Severity.ALERT: 'alert'>
    """
    if p_value < alert_p_value:
        return Severity.ALERT
    if p_value < warn_p_value:
        return Severity.WARN
    return Severity.OK


@dataclass(frozen=True, slots=True)
class EmbeddingReference:
    """Everything the detector needs from the reference, computed once (host arrays; picklable).

    Build with :meth:`EmbeddingDetector.prepare` when the baseline is built, so each
    window costs only the window's work.
    """

    rows: npt.NDArray[np.float32]
    """The reference sample, at most ``sample`` rows."""
    n: int
    """Rows in the full reference (before sampling)."""
    bandwidth: float
    knn_threshold: float
    components: Components


def window_rng(seed: int, cohort: Cohort, window: Window) -> np.random.Generator:
    """A generator for one cohort and window: reproducible, different across windows."""
    digest = hashlib.sha256(f"{cohort.key}\x1f{window.start.isoformat()}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


class EmbeddingDetector:
    """Drift of a window's embeddings against reference embeddings.

    One finding per window, ``feature`` = the configured field. ``value`` is MMD²
    (``method: mmd``), the kNN OOD rate (``knn``) or the cosine distance between
    means (``centroid``); severity comes from that method's p-value (permutation
    test, binomial test, permutation test of the mean distance): ``alert`` when
    ``p < p_value``, ``warn`` when ``p < warn_p_value``. The finding's ``warn`` and
    ``alert`` hold those p-value levels (``evidence["levels_on"] == "p_value"``).

    Evidence, whatever the method: ``p_value``, ``n``, ``centroid`` (cosine and
    Euclidean distance, variance shares along the shift), ``ood`` (kNN OOD rate,
    threshold, binomial p), ``moved_components`` (the reference principal components
    whose projections moved most, by KS), ``farthest`` (event ids and k-th neighbour
    distances of the current rows farthest from the reference: content to inspect),
    and ``bandwidth`` for MMD.

    In the flow the detector keeps the :class:`detectors.base.Detector` contract:
    :meth:`bind` prepares the reference embeddings once, at flow start, and
    :meth:`score` then scores a window summary's embedding sample (its reservoir).
    ``n_current`` is the number of embeddings the window saw (the reservoir keeps at
    most ``sample``); evidence adds ``n_without_embedding`` (events of the model that
    carried none) and, when not ``ok``, ``countermeasures`` naming the farthest event ids.

    Raises :class:`drift.backend.BackendError` when built with ``device: gpu``
    and cupy is missing (naming the install command) or sees no GPU.
    """

    name = "embedding"

    def __init__(self, config: EmbeddingConfig, reference: EmbeddingReference | None = None) -> None:
        self.config = config
        self.xp = resolve_device(config.device)
        self.reference = reference
        """The prepared reference :meth:`score` compares with (set by :meth:`bind`)."""

    def bind(self, reference: Array) -> EmbeddingDetector:
        """A detector like this one that scores windows against ``reference`` rows, prepared now."""
        bound = EmbeddingDetector.__new__(EmbeddingDetector)
        bound.config, bound.xp = self.config, self.xp
        bound.reference = self.prepare(reference)
        return bound

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window,
    ) -> list[Finding]:
        """Score a closed window's embedding sample against the bound reference, or its slot's.

        The reference embeddings were prepared by :meth:`bind`. With a seasonal baseline
        ``profile`` is a :class:`drift.baselines.SeasonalProfile`: when its slot holds
        ``min_samples`` rows (``slot_embeddings``) the window is compared with those
        (:meth:`prepare_slot`), else with the reference, and the finding's ``baseline``
        says which. A summary without an embedding sample scores as an empty window (a
        skipped finding).
        """
        if self.reference is None:
            raise RuntimeError("EmbeddingDetector.score needs a reference: build it with .bind(reference rows)")
        sample = summary.embedding
        if sample is None:
            rows = np.empty((0, self.config.dim), dtype=np.float32)
            ids: list[str | None] = []
            n_seen = n_missing = 0
        else:
            sample.flush()
            rows, ids = sample.reservoir.rows, sample.reservoir.ids
            n_seen, n_missing = sample.reservoir.n_seen, sample.n_missing
        prepared, baseline = self.reference, "reference"
        if isinstance(profile, SeasonalProfile):
            baseline = profile.baselines.get(self.config.field, "reference") if profile.baselines else "reference"
            slot_rows = profile.slot_embeddings.get(self.config.field)
            if slot_rows is not None:
                prepared = self.prepare_slot(slot_rows)
        found = self.score_arrays(prepared, rows, ids, cohort, window, baseline=baseline)
        out = []
        for finding in found:
            evidence = {**finding.evidence, "n_without_embedding": n_missing}
            if finding.severity is not Severity.OK and finding.skipped is None:
                advice = suggest(self.name).to_dict()
                evidence["countermeasures"] = [{
                    **advice,
                    "event_ids": [row["event_id"] for row in evidence.get("farthest", [])
                                  if row["event_id"] is not None],
                }]
            out.append(replace(finding, n_current=n_seen, evidence=evidence))
        return out

    def prepare(self, reference: Array) -> EmbeddingReference:
        """Sample the reference and compute its bandwidth, kNN threshold and components.

        Raises ValueError for fewer than ``min_samples`` rows, a wrong dimension or
        non-finite values: a baseline that cannot be judged against.
        """
        config = self.config
        ref = np.asarray(to_host(reference), dtype=np.float32)
        self._check_dim(ref, "reference")
        rng = np.random.default_rng([config.seed, 0])
        n = ref.shape[0]
        if n < config.min_samples:
            raise ValueError(f"reference needs at least min_samples={config.min_samples} embeddings; got {n}")
        if n > config.sample:
            ref = ref[np.sort(rng.choice(n, size=config.sample, replace=False))]
        xp = self.xp
        on_device = xp.asarray(ref)
        return EmbeddingReference(
            rows=ref, n=n,
            bandwidth=median_heuristic(on_device, rng=rng, xp=xp),
            knn_threshold=knn_threshold(on_device, config.k, config.quantile, xp=xp),
            components=principal_components(on_device, PROJECTION_COMPONENTS, xp=xp),
        )

    def prepare_slot(self, rows: Array) -> EmbeddingReference:
        """A seasonal slot's rows as a reference: its own kNN threshold and components, the
        bound reference's bandwidth (so MMD² keeps one unit across slots and windows)."""
        if self.reference is None:
            raise RuntimeError("EmbeddingDetector.prepare_slot needs a bound reference: build it with .bind(rows)")
        config = self.config
        slot = np.asarray(to_host(rows), dtype=np.float32)
        self._check_dim(slot, "slot")
        n = slot.shape[0]
        if n <= config.k:
            raise ValueError(f"a slot needs more than k={config.k} embeddings; got {n}")
        if n > config.sample:
            rng = np.random.default_rng([config.seed, 1])
            slot = slot[np.sort(rng.choice(n, size=config.sample, replace=False))]
        on_device = self.xp.asarray(slot)
        return EmbeddingReference(
            rows=slot, n=n, bandwidth=self.reference.bandwidth,
            knn_threshold=knn_threshold(on_device, config.k, config.quantile, xp=self.xp),
            components=principal_components(on_device, PROJECTION_COMPONENTS, xp=self.xp),
        )

    def score_arrays(
        self, reference: Array | EmbeddingReference, current: Array, current_ids: list[str | None],
        cohort: Cohort, window: Window, *, baseline: str = "reference",
    ) -> list[Finding]:
        """Score a window's current rows (with their event ids) against the reference.

        ``reference`` is an :class:`EmbeddingReference` (from :meth:`prepare`, stored
        with the baseline) or raw ``(n, dim)`` rows, prepared on every call. A
        window or raw reference with fewer than ``min_samples`` rows gives a skipped
        finding; ``n_current`` counts the rows given, ``evidence["n"]`` those tested
        (at most ``sample``).
        """
        config = self.config
        if not isinstance(reference, EmbeddingReference):
            n_reference = int(reference.shape[0])
            if n_reference < config.min_samples:
                skipped = f"{n_reference} reference embeddings; min_samples is {config.min_samples}"
                return [self._finding(cohort, window, 0.0, Severity.OK, len(current_ids), n_reference, {}, skipped,
                                      baseline)]
            reference = self.prepare(reference)
        prepared = reference
        cur = np.asarray(to_host(current), dtype=np.float32)
        self._check_dim(cur, "current")
        if len(current_ids) != cur.shape[0]:
            raise ValueError(f"current_ids must have one id per row; got {len(current_ids)} for {cur.shape[0]} rows")
        n_current = cur.shape[0]
        rng = window_rng(config.seed, cohort, window)
        ids = list(current_ids)
        if n_current > config.sample:
            keep = np.sort(rng.choice(n_current, size=config.sample, replace=False))
            cur, ids = cur[keep], [ids[i] for i in keep.tolist()]
        if n_current < config.min_samples:
            skipped = f"{n_current} embeddings in the window; min_samples is {config.min_samples}"
            return [self._finding(cohort, window, 0.0, Severity.OK, n_current, prepared.n, {}, skipped, baseline)]

        xp = self.xp
        ref_x, cur_x = xp.asarray(prepared.rows), xp.asarray(cur)
        shift = centroid_shift(ref_x, cur_x, xp=xp)
        ood = knn_ood_test(ref_x, cur_x, config.k, config.quantile, threshold=prepared.knn_threshold, xp=xp)
        evidence: dict[str, Any] = {"levels_on": "p_value", "method": config.method, "n": int(cur.shape[0])}
        if config.method == "mmd":
            value, p_value = mmd_permutation_test(
                ref_x, cur_x, config.permutations, rng, bandwidth=prepared.bandwidth, xp=xp)
            evidence.update(mmd2=value, bandwidth=prepared.bandwidth, n_permutations=config.permutations)
        elif config.method == "knn":
            value, p_value = ood.ood_rate, ood.p_value
        else:
            _, p_value = centroid_permutation_test(ref_x, cur_x, config.permutations, rng, xp=xp)
            value = shift.cosine_distance
            evidence.update(n_permutations=config.permutations)
        moved = sorted(projection_ks(ref_x, cur_x, prepared.components, xp=xp), key=lambda c: -c.ks_stat)
        farthest = np.argsort(-ood.distances, kind="stable")[:N_FARTHEST]
        evidence.update(
            p_value=p_value,
            centroid={
                "cosine_distance": shift.cosine_distance,
                "euclidean_distance": shift.euclidean_distance,
                "variance_share_along_shift": shift.variance_share_along_shift,
                "reference_variance_share_along_shift": shift.reference_variance_share_along_shift,
            },
            ood={
                "ood_rate": ood.ood_rate, "n_ood": ood.n_ood, "expected_rate": ood.expected_rate,
                "threshold": ood.threshold, "p_value": ood.p_value, "k": config.k,
            },
            moved_components=[
                {"component": c.component, "ks_stat": c.ks_stat, "p_value": c.p_value,
                 "explained_variance_ratio": c.explained_variance_ratio}
                for c in moved[:N_MOVED_COMPONENTS]
            ],
            farthest=[{"event_id": ids[i], "distance": float(ood.distances[i])} for i in farthest.tolist()],
        )
        severity = severity_of_p(p_value, config.warn_p_value, config.p_value)
        return [self._finding(cohort, window, float(value), severity, n_current, prepared.n, evidence, None, baseline)]

    def _check_dim(self, rows: npt.NDArray[np.float32], name: str) -> None:
        if rows.ndim != 2 or rows.shape[1] != self.config.dim:
            raise ValueError(f"{name} embeddings must have shape (n, {self.config.dim}); got {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise ValueError(f"{name} embeddings must be finite; got NaN or infinity")

    def _finding(
        self, cohort: Cohort, window: Window, value: float, severity: Severity, n_current: int,
        n_reference: int, evidence: dict[str, Any], skipped: str | None, baseline: str = "reference",
    ) -> Finding:
        return Finding(
            detector=self.name, cohort=cohort, window=window, feature=self.config.field, value=value,
            severity=severity, warn=self.config.warn_p_value, alert=self.config.p_value,
            n_current=n_current, n_reference=n_reference, baseline=baseline,
            evidence=evidence, skipped=skipped,
        )
