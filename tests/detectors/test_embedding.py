"""Embedding drift: statistics against direct formulas, permutation-test calibration and
power, kNN on faiss against brute force, and the detector's finding."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from types import ModuleType

import faiss  # noqa: F401 - a dev dependency: the faiss path is compared, never skipped
import numpy as np
import orjson
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from detectors.embedding import (
    EmbeddingConfig,
    EmbeddingDetector,
    EmbeddingReference,
    centroid_permutation_test,
    centroid_shift,
    knn_ood_test,
    knn_reference_distances,
    knn_search,
    median_heuristic,
    mmd2_permutations,
    mmd2_unbiased,
    mmd_permutation_test,
    permutation_indices,
    principal_components,
    projection_ks,
    severity_of_p,
)
from drift.backend import resolve_device, to_host
from drift.findings import Cohort, Severity, Window

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
COHORT = Cohort("m")
WINDOW = Window(T0, T0 + timedelta(hours=1))

# Backend parity runs over every namespace this machine has: numpy, and cupy on a GPU.
NAMESPACES: list[ModuleType] = [np] + ([xp] if (xp := resolve_device("auto")) is not np else [])


def direct_mmd2(x: np.ndarray, y: np.ndarray, h: float) -> float:
    """Unbiased MMD² written out pair by pair (Gretton et al. 2012, Lemma 6)."""
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * h * h))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def shifted_in_subspace(rng: np.random.Generator, n: int, d: int, rank: int, norm: float) -> np.ndarray:
    """``n`` standard normal rows moved by ``norm`` along a random direction of a random ``rank``-subspace."""
    basis, _ = np.linalg.qr(rng.normal(size=(d, rank)))
    v = rng.normal(size=rank)
    return rng.normal(size=(n, d)) + basis @ (v * norm / np.linalg.norm(v))


# --------------------------------------------------------------------------
# MMD²
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n, m, d", [(2, 2, 1), (7, 5, 3), (12, 20, 4)])
def test_mmd2_matches_the_pairwise_formula(n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(n * 100 + m)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) + 0.3
    for h in (0.5, 1.7):
        assert mmd2_unbiased(x, y, h) == pytest.approx(direct_mmd2(x, y, h), rel=1e-12, abs=1e-14)


def test_median_heuristic_is_the_median_pairwise_distance() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(31, 5))
    distances = [np.linalg.norm(ref[i] - ref[j]) for i in range(31) for j in range(i + 1, 31)]
    assert median_heuristic(ref) == pytest.approx(float(np.median(distances)), rel=1e-12)


@pytest.mark.parametrize("rows, expected", [
    ([[0.0], [0.0], [0.0]], 1.0),                 # all identical: a defined fallback
    ([[0.0], [0.0], [0.0], [0.0], [2.0]], 2.0),   # median 0: mean of the non-zero distances
])
def test_median_heuristic_edge_cases(rows: list[list[float]], expected: float) -> None:
    assert median_heuristic(np.array(rows)) == expected


def test_median_heuristic_subsamples_with_the_generator() -> None:
    ref = np.random.default_rng(2).normal(size=(300, 3))
    a = median_heuristic(ref, max_points=50, rng=np.random.default_rng(7))
    b = median_heuristic(ref, max_points=50, rng=np.random.default_rng(7))
    assert a == b and a == pytest.approx(median_heuristic(ref), rel=0.15)


def naive_permutation_stats(x: np.ndarray, y: np.ndarray, perms: np.ndarray, h: float) -> np.ndarray:
    """One :func:`mmd2_unbiased` per permutation: the loop the matrix form replaces."""
    z, n = np.concatenate([x, y]), len(x)
    return np.array([mmd2_unbiased(x, y, h)] + [mmd2_unbiased(z[p[:n]], z[p[n:]], h) for p in perms])


@pytest.mark.parametrize("block, perm_block", [(512, 1024), (7, 13), (1, 1)])
def test_permutations_equal_a_naive_loop_over_the_same_permutations(block: int, perm_block: int) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(23, 4)), rng.normal(size=(17, 4)) + 0.2
    h, n_perm = 1.3, 60
    perms = permutation_indices(40, n_perm, np.random.default_rng(11))
    expected = naive_permutation_stats(x, y, perms, h)
    stats = mmd2_permutations(x, y, n_perm, np.random.default_rng(11), h, block, perm_block, dtype="float64")
    np.testing.assert_allclose(stats, expected, rtol=1e-10, atol=1e-13)
    mmd2, p = mmd_permutation_test(x, y, n_perm, np.random.default_rng(11), h, block, perm_block, dtype="float64")
    assert mmd2 == pytest.approx(expected[0], rel=1e-10)
    assert p == (1 + int(np.sum(expected[1:] >= expected[0]))) / (1 + n_perm)


def test_float32_statistics_are_float64_ones_to_a_fraction_of_their_spread() -> None:
    rng = np.random.default_rng(4)
    # Offset from the origin as real embeddings are: centring keeps float32 precise.
    x, y = rng.normal(size=(300, 64)) + 5.0, rng.normal(size=(300, 64)) + 5.0
    h = median_heuristic(x)
    f64 = mmd2_permutations(x, y, 100, np.random.default_rng(1), h, dtype="float64")
    f32 = mmd2_permutations(x, y, 100, np.random.default_rng(1), h, dtype="float32")
    assert np.max(np.abs(f32 - f64)) < 1e-3 * np.std(f64[1:])


@pytest.mark.parametrize("xp", NAMESPACES, ids=lambda m: m.__name__)
def test_backend_parity_and_input_dtype(xp: ModuleType) -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(50, 8)) + 0.4
    expected = mmd_permutation_test(x, y, 99, np.random.default_rng(1), dtype="float64")
    for dtype, rel in ((np.float64, 1e-9), (np.float32, 1e-4)):
        got = mmd_permutation_test(xp.asarray(x.astype(dtype)), xp.asarray(y.astype(dtype)), 99,
                                   np.random.default_rng(1), dtype="float64")
        assert got[0] == pytest.approx(expected[0], rel=rel) and got[1] == expected[1]


def test_p_value_is_calibrated_without_drift() -> None:
    """Rejection rate at α = 0.05 over 500 drift-free trials lies in [0.02, 0.08] (±3 sd)."""
    rng = np.random.default_rng(6)
    trials = 500
    rejected = sum(
        mmd_permutation_test(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), 200, rng)[1] <= 0.05
        for _ in range(trials)
    )
    assert 0.02 <= rejected / trials <= 0.08


def test_mean_shift_in_a_random_subspace_is_detected() -> None:
    """A shift of norm 1.5 (unit-variance rows) in a random 3-d subspace of 16: ≥ 95% detected."""
    rng = np.random.default_rng(7)
    trials = 200
    detected = sum(
        mmd_permutation_test(rng.normal(size=(50, 16)), shifted_in_subspace(rng, 50, 16, 3, 1.5), 200, rng)[1]
        <= 0.05
        for _ in range(trials)
    )
    assert detected >= 0.95 * trials


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(2, 9), st.just(3)), elements=st.floats(-5, 5)),
    y=hnp.arrays(np.float64, st.tuples(st.integers(2, 9), st.just(3)), elements=st.floats(-5, 5)),
    h=st.floats(0.1, 10),
)
def test_mmd2_is_symmetric_and_order_free(x: np.ndarray, y: np.ndarray, h: float) -> None:
    value = mmd2_unbiased(x, y, h)
    assert value == pytest.approx(mmd2_unbiased(y, x, h), rel=1e-9, abs=1e-12)
    assert value == pytest.approx(mmd2_unbiased(x[::-1], y[::-1], h), rel=1e-9, abs=1e-12)
    # Unbiased, so it may dip below 0, but never below −(max kernel value) · 2.
    assert -2.0 <= value <= 2.0


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(2, 8), st.just(2)), elements=st.floats(-3, 3)),
    y=hnp.arrays(np.float64, st.tuples(st.integers(2, 8), st.just(2)), elements=st.floats(-3, 3)),
    n_perm=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_permutation_p_value_is_in_the_unit_interval(x: np.ndarray, y: np.ndarray, n_perm: int, seed: int) -> None:
    _, p = mmd_permutation_test(x, y, n_perm, np.random.default_rng(seed), bandwidth=1.0)
    assert 1 / (n_perm + 1) <= p <= 1.0
    assert (p * (n_perm + 1)) == pytest.approx(round(p * (n_perm + 1)))


@pytest.mark.parametrize("kwargs, match", [
    ({"x": np.zeros((1, 2))}, "at least 2 rows"),
    ({"y": np.zeros((4, 3))}, "one dimension"),
    ({"n_permutations": 0}, "n_permutations must be >= 1"),
    ({"bandwidth": 0.0}, "bandwidth must be > 0"),
    ({"x": np.zeros(4)}, "must be 2-D"),
])
def test_bad_mmd_inputs_are_refused(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"x": np.ones((4, 2)), "y": np.zeros((4, 2)), "n_permutations": 5,
                               "rng": np.random.default_rng(0), "bandwidth": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        mmd_permutation_test(**args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# kNN
# --------------------------------------------------------------------------


def direct_knn(reference: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    distances = np.linalg.norm(queries[:, None, :] - reference[None, :, :], axis=2)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


def test_brute_force_knn_matches_sorted_distances() -> None:
    rng = np.random.default_rng(8)
    ref, qry = rng.normal(size=(200, 6)), rng.normal(size=(70, 6))
    distances, indices = knn_search(ref, qry, 5, use_faiss=False, block=16)
    expected_d, expected_i = direct_knn(ref, qry, 5)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-10)


def test_faiss_and_brute_force_find_the_same_neighbours() -> None:
    rng = np.random.default_rng(9)
    # Offset rows: real embeddings do not sit at the origin.
    ref = (rng.normal(size=(600, 24)) + 3.0).astype(np.float32)
    cur = (rng.normal(size=(250, 24)) * 1.3 + 3.0).astype(np.float32)
    f_d, f_i = knn_search(ref, cur, 10, use_faiss=True)
    n_d, n_i = knn_search(ref, cur, 10, use_faiss=False)
    np.testing.assert_array_equal(f_i, n_i)
    np.testing.assert_allclose(f_d, n_d, rtol=1e-4)
    np.testing.assert_allclose(knn_reference_distances(ref, 10, use_faiss=True),
                               knn_reference_distances(ref, 10, use_faiss=False), rtol=1e-4)
    with_faiss = knn_ood_test(ref, cur, 10, 0.95, use_faiss=True)
    brute = knn_ood_test(ref, cur, 10, 0.95, use_faiss=False)
    assert with_faiss.n_ood == brute.n_ood and with_faiss.p_value == pytest.approx(brute.p_value)
    assert with_faiss.threshold == pytest.approx(brute.threshold, rel=1e-4)


def test_leave_one_out_distances_skip_the_row_itself_even_with_duplicates() -> None:
    ref = np.array([[0.0], [0.0], [1.0], [3.0], [7.0]])
    expected_1st = [0.0, 0.0, 1.0, 2.0, 4.0]
    np.testing.assert_allclose(knn_reference_distances(ref, 1, use_faiss=False), expected_1st)
    np.testing.assert_allclose(knn_reference_distances(ref, 1, use_faiss=True), expected_1st)


def test_ood_rate_against_the_direct_definition() -> None:
    rng = np.random.default_rng(10)
    ref = rng.normal(size=(300, 5))
    cur = np.concatenate([rng.normal(size=(150, 5)), rng.normal(size=(50, 5)) + 4.0])
    result = knn_ood_test(ref, cur, 7, 0.9, use_faiss=False)
    full = np.linalg.norm(ref[:, None] - ref[None], axis=2)
    np.fill_diagonal(full, np.inf)
    threshold = np.quantile(np.sort(full, axis=1)[:, 6], 0.9)
    kth = np.sort(np.linalg.norm(cur[:, None] - ref[None], axis=2), axis=1)[:, 6]
    n_ood = int(np.sum(kth > threshold))
    assert result.threshold == pytest.approx(threshold, rel=1e-10)
    assert result.n_ood == n_ood and result.ood_rate == n_ood / 200
    assert result.expected_rate == pytest.approx(0.1)
    assert result.p_value == pytest.approx(scipy.stats.binomtest(n_ood, 200, 0.1, alternative="greater").pvalue)
    assert result.p_value < 1e-10 and result.n_ood >= 50


# --------------------------------------------------------------------------
# Centroid shift and projections
# --------------------------------------------------------------------------


def test_centroid_shift_against_the_formula() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(120, 6)) + 1.0
    cur = rng.normal(size=(80, 6)) * 0.5 + np.array([1.0, 2.0, 1.0, 1.0, 0.0, 1.0])
    mu_r, mu_c = ref.mean(axis=0), cur.mean(axis=0)
    u = (mu_c - mu_r) / np.linalg.norm(mu_c - mu_r)
    shift = centroid_shift(ref, cur)
    assert shift.cosine_distance == pytest.approx(
        1 - mu_r @ mu_c / (np.linalg.norm(mu_r) * np.linalg.norm(mu_c)), rel=1e-12)
    assert shift.euclidean_distance == pytest.approx(np.linalg.norm(mu_c - mu_r), rel=1e-12)
    # Variance along u over total variance (the 1/m factors cancel).
    assert shift.variance_share_along_shift == pytest.approx(
        np.var(cur @ u) / np.trace(np.cov(cur.T, bias=True)), rel=1e-10)
    assert shift.reference_variance_share_along_shift == pytest.approx(
        np.var(ref @ u) / np.trace(np.cov(ref.T, bias=True)), rel=1e-10)


def test_no_centroid_shift_is_all_zero() -> None:
    ref = np.random.default_rng(12).normal(size=(10, 3))
    shift = centroid_shift(ref, ref[::-1])
    assert shift.euclidean_distance == pytest.approx(0.0, abs=1e-15)
    assert centroid_shift(np.zeros((3, 2)), np.zeros((2, 2))).cosine_distance == 0.0


def test_centroid_permutation_test_equals_a_naive_loop() -> None:
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(25, 5)) + 0.3
    perms = permutation_indices(55, 80, np.random.default_rng(3))
    z = np.concatenate([x, y])
    stats = [float(np.sum((z[p[:30]].mean(0) - z[p[30:]].mean(0)) ** 2)) for p in perms]
    observed = float(np.sum((x.mean(0) - y.mean(0)) ** 2))
    distance2, p = centroid_permutation_test(x, y, 80, np.random.default_rng(3))
    assert distance2 == pytest.approx(observed, rel=1e-12)
    assert p == (1 + sum(s >= observed - 1e-12 for s in stats)) / 81


def test_principal_components_match_the_covariance_eigenvectors() -> None:
    rng = np.random.default_rng(14)
    ref = rng.normal(size=(400, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2])
    components = principal_components(ref, 3)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(ref.T))
    top = eigenvectors[:, ::-1][:, :3].T
    np.testing.assert_allclose(np.abs(np.sum(components.vectors * top, axis=1)), 1.0, rtol=1e-8)
    np.testing.assert_allclose(components.explained_variance_ratio,
                               eigenvalues[::-1][:3] / eigenvalues.sum(), rtol=1e-8)


def test_projection_ks_is_scipy_on_the_projections_and_finds_the_moved_direction() -> None:
    rng = np.random.default_rng(15)
    ref = rng.normal(size=(500, 4)) * np.array([4.0, 2.0, 1.0, 0.5])
    cur = rng.normal(size=(300, 4)) * np.array([4.0, 2.0, 1.0, 0.5]) + np.array([0.0, 0.0, 1.5, 0.0])
    shifts = projection_ks(ref, cur, n_components=4)
    components = principal_components(ref, 4)
    for shift in shifts:
        vector = components.vectors[shift.component]
        expected = scipy.stats.ks_2samp((ref - components.mean) @ vector, (cur - components.mean) @ vector)
        assert shift.ks_stat == pytest.approx(expected.statistic) and shift.p_value == pytest.approx(expected.pvalue)
    assert max(shifts, key=lambda s: s.ks_stat).component == 2


# --------------------------------------------------------------------------
# Config and detector
# --------------------------------------------------------------------------


def test_config_defaults_and_validation() -> None:
    config = EmbeddingConfig(dim=8)
    assert (config.field, config.method, config.sample, config.permutations, config.p_value,
            config.warn_p_value, config.k, config.quantile, config.device, config.seed,
            config.min_samples) == ("embedding", "mmd", 2000, 500, 0.01, 0.05, 10, 0.95, "auto", 0, 100)


@pytest.mark.parametrize("given, match", [
    ({}, "dim"),
    ({"dim": 8, "bandwith": 1.0}, "Extra inputs are not permitted"),
    ({"dim": "8"}, "valid integer"),
    ({"dim": 8, "method": "kl"}, "'mmd', 'knn' or 'centroid'"),
    ({"dim": 8, "device": "tpu"}, "'auto', 'cpu' or 'gpu'"),
    ({"dim": 8, "p_value": 0.1, "warn_p_value": 0.05}, "warn_p_value must be >= p_value"),
    ({"dim": 8, "quantile": 1.0}, "less than 1"),
    ({"dim": 8, "k": 100}, "k must be < min_samples"),
    ({"dim": 8, "sample": 50}, "min_samples must be <= sample"),
])
def test_config_errors(given: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        EmbeddingConfig(**given)  # type: ignore[arg-type]


def test_severity_from_p_value() -> None:
    assert [severity_of_p(p, 0.05, 0.01) for p in (0.001, 0.01, 0.03, 0.05, 0.5)] == [
        Severity.ALERT, Severity.WARN, Severity.WARN, Severity.OK, Severity.OK]


def window_sample(rng: np.random.Generator, n: int, d: int, n_new: int) -> tuple[np.ndarray, list[str | None]]:
    """``n`` rows like the reference, ``n_new`` of them replaced by a new, far cluster (ids ``new-*``)."""
    rows = rng.normal(size=(n, d))
    ids: list[str | None] = [f"e{i}" for i in range(n)]
    for i in range(n_new):
        rows[i] = rng.normal(size=d) * 0.3 + 6.0
        ids[i] = f"new-{i}"
    return rows, ids


@pytest.mark.parametrize("method", ["mmd", "knn", "centroid"])
def test_detector_alerts_on_a_new_cluster_and_names_its_events(method: str) -> None:
    rng = np.random.default_rng(16)
    config = EmbeddingConfig(dim=16, method=method, permutations=200, sample=400, device="cpu")
    detector = EmbeddingDetector(config)
    reference = rng.normal(size=(600, 16))
    current, ids = window_sample(rng, 300, 16, n_new=30)
    [finding] = detector.score_arrays(reference, current, ids, COHORT, WINDOW)
    assert finding.detector == "embedding" and finding.feature == "embedding"
    assert finding.severity is Severity.ALERT and finding.skipped is None
    assert (finding.n_current, finding.n_reference) == (300, 600)
    assert (finding.warn, finding.alert) == (0.05, 0.01)
    evidence = finding.evidence
    assert evidence["levels_on"] == "p_value" and evidence["p_value"] < 0.01 and evidence["n"] == 300
    assert all(e["event_id"].startswith("new-") for e in evidence["farthest"]) and len(evidence["farthest"]) == 5
    distances = [e["distance"] for e in evidence["farthest"]]
    assert distances == sorted(distances, reverse=True)
    assert evidence["ood"]["ood_rate"] >= 0.1
    assert evidence["centroid"]["euclidean_distance"] > 0.5
    assert len(evidence["moved_components"]) == 3
    if method == "mmd":
        assert finding.value == evidence["mmd2"] > 0 and evidence["bandwidth"] > 0
    elif method == "knn":
        assert finding.value == evidence["ood"]["ood_rate"]
    else:
        assert finding.value == evidence["centroid"]["cosine_distance"]
    orjson.dumps(finding.to_dict())  # JSON-ready for the findings topic


def test_detector_is_quiet_without_drift_and_reproducible() -> None:
    rng = np.random.default_rng(17)
    detector = EmbeddingDetector(EmbeddingConfig(dim=8, permutations=200, device="cpu", seed=3))
    reference, current = rng.normal(size=(500, 8)), rng.normal(size=(200, 8))
    ids: list[str | None] = [f"e{i}" for i in range(200)]
    prepared = detector.prepare(reference)
    [a] = detector.score_arrays(prepared, current, ids, COHORT, WINDOW)
    [b] = detector.score_arrays(reference, current, ids, COHORT, WINDOW)
    # A drift-free window alerts with probability p_value (1%); this seed's does not.
    assert a.severity is not Severity.ALERT and a.evidence["p_value"] >= 0.01
    assert a == b  # same seed, cohort and window: same permutations


def test_detector_samples_large_inputs_down_to_the_sample_size() -> None:
    rng = np.random.default_rng(18)
    detector = EmbeddingDetector(EmbeddingConfig(dim=4, sample=150, permutations=50, device="cpu"))
    prepared = detector.prepare(rng.normal(size=(1000, 4)))
    assert isinstance(prepared, EmbeddingReference) and prepared.rows.shape == (150, 4) and prepared.n == 1000
    [finding] = detector.score_arrays(prepared, rng.normal(size=(400, 4)), [None] * 400, COHORT, WINDOW)
    assert finding.n_current == 400 and finding.evidence["n"] == 150


def test_detector_skips_small_windows() -> None:
    rng = np.random.default_rng(19)
    detector = EmbeddingDetector(EmbeddingConfig(dim=4, min_samples=50, device="cpu"))
    [finding] = detector.score_arrays(rng.normal(size=(200, 4)), rng.normal(size=(49, 4)), [None] * 49,
                                      COHORT, WINDOW)
    assert finding.severity is Severity.OK and finding.value == 0.0
    assert finding.skipped == "49 embeddings in the window; min_samples is 50"
    [finding] = detector.score_arrays(rng.normal(size=(30, 4)), rng.normal(size=(80, 4)), [None] * 80,
                                      COHORT, WINDOW)
    assert finding.skipped == "30 reference embeddings; min_samples is 50" and finding.n_reference == 30
    with pytest.raises(ValueError, match="at least min_samples=50 embeddings; got 30"):
        detector.prepare(rng.normal(size=(30, 4)))


@pytest.mark.parametrize("current, ids, match", [
    (np.zeros((120, 5)), [None] * 120, r"shape \(n, 4\)"),
    (np.zeros((120, 4)), [None] * 3, "one id per row"),
    (np.full((120, 4), np.nan), [None] * 120, "finite"),
])
def test_detector_refuses_bad_windows(current: np.ndarray, ids: list[str | None], match: str) -> None:
    detector = EmbeddingDetector(EmbeddingConfig(dim=4, device="cpu"))
    with pytest.raises(ValueError, match=match):
        detector.score_arrays(np.random.default_rng(0).normal(size=(200, 4)), current, ids, COHORT, WINDOW)


def test_results_come_back_on_the_host() -> None:
    rng = np.random.default_rng(20)
    xp = NAMESPACES[-1]
    shifts = projection_ks(xp.asarray(rng.normal(size=(50, 3))), xp.asarray(rng.normal(size=(40, 3))), n_components=2)
    assert all(isinstance(s.ks_stat, float) for s in shifts)
    distances, _ = knn_search(xp.asarray(rng.normal(size=(50, 3))), xp.asarray(rng.normal(size=(5, 3))), 2,
                              use_faiss=False)
    assert isinstance(to_host(distances), np.ndarray)
