"""Running moments against numpy, at magnitudes where sums of squares cancel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.moments import EMPTY, Moments, merge, of


def _merged(values: np.ndarray, cuts: list[int]) -> Moments:
    bounds = sorted({0, values.size, *(min(c, values.size) for c in cuts)})
    out = EMPTY
    for a, b in zip(bounds, bounds[1:]):
        out = merge(out, of(values[a:b]))
    return out


@pytest.mark.parametrize("offset", [0.0, 1e9, 1e12, -1e12])
def test_variance_of_large_magnitude_values_matches_numpy(offset: float) -> None:
    rng = np.random.default_rng(4)
    values = offset + rng.normal(0, 1, 100_000)
    moments = _merged(values, list(range(0, 100_000, 4096)))
    assert moments.n == values.size
    assert moments.mean == pytest.approx(values.mean(), rel=1e-15, abs=1e-6)
    assert moments.variance == pytest.approx(values.var(), rel=1e-6)
    # What sums of x and x² give: nothing usable at 1e9 and beyond.
    naive = float((values * values).sum() / values.size - values.mean() ** 2)
    if offset >= 1e9:
        assert abs(naive - values.var()) > 0.05 * values.var()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=300),
    st.sampled_from([0.0, 1e6, 1e9, 1e12]),
    st.lists(st.integers(0, 300), max_size=6),
)
def test_merging_slices_gives_the_moments_of_the_whole(values: list[float], offset: float, cuts: list[int]) -> None:
    array = np.asarray(values) + offset
    merged = _merged(array, cuts)
    assert merged.n == array.size
    assert merged.mean == pytest.approx(array.mean(), rel=1e-12, abs=1e-9)
    assert merged.variance == pytest.approx(array.var(), rel=1e-6, abs=1e-6)


def test_merge_with_empty_is_identity_and_order_only_rounds() -> None:
    a, b = of(np.array([1.0, 2.0, 4.0])), of(np.array([10.0, 11.0]))
    assert merge(EMPTY, a) == a and merge(a, EMPTY) == a
    ab, ba = merge(a, b), merge(b, a)
    assert ab.n == ba.n == 5 and ab.mean == pytest.approx(ba.mean) and ab.m2 == pytest.approx(ba.m2)
    assert ab.variance == pytest.approx(np.var([1.0, 2.0, 4.0, 10.0, 11.0]))


def test_feature_counts_of_a_previous_snapshot_read_their_sums_as_moments() -> None:
    """A pickled FeatureCounts of the previous layout (total, total_sq) resumes with moments."""
    import pickle

    from drift.summary import FeatureCounts

    values = np.array([1.0, 2.0, 4.0])
    counts = FeatureCounts(np.array([1, 2], dtype=np.int64), moments=of(values))
    again = pickle.loads(pickle.dumps(counts))
    assert again.counts.tolist() == [1, 2] and again.moments == counts.moments
    old_state = [getattr(counts, f) for f in (
        "counts", "n_null", "n_missing", "n_wrong_type", "examples", "pending", "bounds", "n_out_of_range",
        "out_of_range_examples")] + [float(values.sum()), float((values * values).sum()), set(), False]
    restored = FeatureCounts.__new__(FeatureCounts)
    restored.__setstate__(old_state)
    assert restored.moments.n == 3
    assert restored.moments.mean == pytest.approx(values.mean()) and restored.moments.variance == pytest.approx(values.var())
