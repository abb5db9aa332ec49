"""Reference profiles: quantile bins, category shares, and the stored JSON baseline."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.errors import BaselineError, ReferenceDataError
from drift.reference import (
    MAX_CATEGORIES,
    UNSEEN,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    baseline_path,
    build_reference,
    categorical_profile,
    load_reference,
    numeric_profile,
    save_reference,
)

T0 = datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc)

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
# few distinct values, so ties and repeated quantiles are common
discrete_floats = st.integers(-5, 5).map(float)


def bin_of(x: float, edges: tuple[float, ...]) -> int:
    """Bin i holds edges[i-1] <= x < edges[i] (the documented convention)."""
    return sum(1 for e in edges if e <= x)


def loop_counts(values: list[float], edges: tuple[float, ...]) -> list[int]:
    counts = [0] * (len(edges) + 1)
    for x in values:
        counts[bin_of(x, edges)] += 1
    return counts


# --------------------------------------------------------------------------
# numeric_profile
# --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(finite_floats, discrete_floats), min_size=1, max_size=300),
    st.integers(min_value=2, max_value=20),
)
def test_numeric_edges_are_quantiles_and_shares_are_counts(values: list[float], n_bins: int) -> None:
    profile = numeric_profile(values, n_bins)
    quantiles = [float(np.quantile(values, i / n_bins)) for i in range(1, n_bins)]
    distinct = sorted(set(quantiles))
    # each quantile is an edge, up to the last bit of the probability grid (numpy's float
    # probabilities can merge a subnormal data value such as -5e-324 into 0.0; the exact
    # interpolation keeps it, so edges closer than the tolerance count as one)
    clusters = 1 + sum(1 for a, b in zip(profile.edges, profile.edges[1:]) if b - a > 1e-9 * max(1.0, abs(b)))
    assert clusters <= len(distinct)
    for q in quantiles:
        assert min(abs(q - e) for e in profile.edges) <= 1e-9 * max(1.0, abs(q))
    for e in profile.edges:
        assert min(abs(q - e) for q in quantiles) <= 1e-9 * max(1.0, abs(e))
    assert all(a < b for a, b in zip(profile.edges, profile.edges[1:]))
    assert profile.n_bins == len(profile.edges) + 1 == len(profile.shares)
    assert math.fsum(profile.shares) == pytest.approx(1.0, abs=1e-12)
    counts = loop_counts(values, profile.edges)
    assert [round(s * len(values)) for s in profile.shares] == counts
    assert profile.n == len(values)
    assert (profile.low, profile.high) == (min(values), max(values))


@settings(max_examples=300, deadline=None)
@given(st.lists(discrete_floats, min_size=1, max_size=60), st.integers(min_value=2, max_value=20))
def test_numeric_edges_of_discrete_data_are_data_values_or_between(values: list[float], n_bins: int) -> None:
    # an edge a hair away from a value would be a bin that no value can fill
    distinct = sorted(set(values))
    for e in numeric_profile(values, n_bins).edges:
        assert e in distinct or min(abs(e - v) for v in distinct) >= 1e-3


def test_numeric_shares_match_np_histogram() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(size=5_000), rng.integers(0, 3, size=2_000).astype(float)])
    profile = numeric_profile(values, n_bins=10)
    np.testing.assert_allclose(
        profile.edges, np.unique(np.quantile(values, np.arange(1, 10) / 10)), rtol=1e-12
    )
    # np.histogram bins are [a, b) but the last is [a, b]; bounding by min and max
    # gives the profile's bins exactly
    counts, _ = np.histogram(values, bins=[values.min(), *profile.edges, values.max()])
    np.testing.assert_allclose(profile.shares, counts / values.size, rtol=1e-12)


@pytest.mark.parametrize(
    ("values", "n_bins", "edges", "shares"),
    [
        pytest.param([1.0, 2.0, 3.0, 4.0], 2, (2.5,), (0.5, 0.5), id="median"),
        # a value equal to an edge belongs to the bin above it
        pytest.param([1.0, 2.0, 3.0], 2, (2.0,), (1 / 3, 2 / 3), id="value-on-edge"),
        pytest.param([3.0] * 10, 10, (3.0,), (0.0, 1.0), id="constant"),
        pytest.param([0.0] * 8 + [1.0] * 2, 4, (0.0,), (0.0, 1.0), id="discrete-dedup"),
        pytest.param([0.0] * 5 + [1.0] * 5, 4, (0.0, 0.5, 1.0), (0.0, 0.5, 0.0, 0.5), id="two-values"),
        pytest.param([5.0], 3, (5.0,), (0.0, 1.0), id="single-value"),
        # the 0.6 quantile is exactly -1.0, not a float a few ulps above it
        pytest.param([0.0] * 4 + [-1.0] * 7, 5, (-1.0, 0.0), (0.0, 7 / 11, 4 / 11), id="tie-at-quantile"),
    ],
)
def test_numeric_by_hand(values: list[float], n_bins: int, edges: tuple[float, ...], shares: tuple[float, ...]) -> None:
    profile = numeric_profile(values, n_bins)
    assert profile.edges == pytest.approx(edges)
    assert profile.shares == pytest.approx(shares)


def test_numeric_ignores_nan_and_inf() -> None:
    clean = [0.5, 1.5, 2.5, 3.5, 4.5, 10.0]
    dirty = [math.nan, *clean[:3], math.inf, -math.inf, *clean[3:], math.nan]
    profile = numeric_profile(dirty, n_bins=3)
    assert profile == numeric_profile(clean, n_bins=3)
    assert profile.n == len(clean)
    assert (profile.low, profile.high) == (0.5, 10.0)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([math.nan, math.nan], id="all-nan"),
        pytest.param([math.inf, -math.inf], id="all-inf"),
        pytest.param([], id="empty"),
    ],
)
def test_numeric_without_finite_values_raises(values: list[float]) -> None:
    with pytest.raises(ReferenceDataError, match="no finite values"):
        numeric_profile(values, n_bins=10)


# --------------------------------------------------------------------------
# categorical_profile
# --------------------------------------------------------------------------


def test_categorical_ordering_and_shares() -> None:
    values = ["b", "a", "c", "a", "b", "a", None, math.nan, "d"]
    profile = categorical_profile(values)
    # by count, then by name among ties
    assert profile.categories == ("a", "b", "c", "d")
    assert profile.n == 7
    assert profile.shares == pytest.approx((3 / 7, 2 / 7, 1 / 7, 1 / 7, 0.0))
    assert profile.bin_labels() == ["a", "b", "c", "d", UNSEEN]


def test_categorical_booleans_and_ints_are_text() -> None:
    profile = categorical_profile([True, True, False, 3, "3", 3.0])
    assert profile.categories == ("3", "true", "false")
    assert profile.shares == pytest.approx((0.5, 1 / 3, 1 / 6, 0.0))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=200))
def test_categorical_matches_counter(values: list[str]) -> None:
    profile = categorical_profile(values)
    counter = Counter(values)
    assert sorted(profile.categories) == sorted(counter)
    for category, share in zip(profile.categories, profile.shares):
        assert share == counter[category] / len(values)
    ranked = [counter[c] for c in profile.categories]
    assert ranked == sorted(ranked, reverse=True)
    assert profile.shares[-1] == 0.0
    assert math.fsum(profile.shares) == pytest.approx(1.0)


def test_categorical_caps_categories_and_rest_is_unseen() -> None:
    extra = 10
    # category k appears k + 1 times, so the rarest `extra` ones are cut
    values = [f"c{k:04d}" for k in range(MAX_CATEGORIES + extra) for _ in range(k + 1)]
    profile = categorical_profile(values)
    assert len(profile.categories) == MAX_CATEGORIES
    assert profile.n_bins == MAX_CATEGORIES + 1
    assert profile.categories[0] == f"c{MAX_CATEGORIES + extra - 1:04d}"
    assert "c0000" not in profile.categories
    cut = sum(k + 1 for k in range(extra))
    assert profile.shares[-1] == pytest.approx(cut / len(values))
    assert math.fsum(profile.shares) == pytest.approx(1.0)


@pytest.mark.parametrize("values", [[], [None, None], [math.nan]], ids=["empty", "nulls", "nan"])
def test_categorical_without_values_raises(values: list[object]) -> None:
    with pytest.raises(ReferenceDataError):
        categorical_profile(values)


# --------------------------------------------------------------------------
# The profiles against the former per-value implementation (the oracle)
# --------------------------------------------------------------------------


def oracle_numeric_profile(values: object, n_bins: int) -> NumericProfile:
    """Quantile bins as first written: every value sorted, then binned by searchsorted."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ReferenceDataError("no finite values to profile")
    ordered = np.sort(array)
    lower, remainder = np.divmod(np.arange(1, n_bins) * (array.size - 1), n_bins)
    upper = np.minimum(lower + 1, array.size - 1)
    quantiles = ordered[lower] + (remainder / n_bins) * (ordered[upper] - ordered[lower])
    edges = np.unique(quantiles)
    counts = np.bincount(np.searchsorted(edges, array, side="right"), minlength=edges.size + 1)
    shares = counts / array.size
    return NumericProfile(
        edges=tuple(float(e) for e in edges), shares=tuple(float(s) for s in shares),
        n=int(array.size), low=float(array.min()), high=float(array.max()),
        mean=float(array.mean()), std=float(array.std()),
    )


def oracle_text(value: object, width: int = 64) -> str | None:
    """The category text of one value, written out from the documented rule.

    ``width`` is the float width of the column the value came from: a float32 value is
    written with the fewest significant digits that give it back as a float32.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x) or math.isinf(x):
            return None
        if width < 64:
            narrow = np.float32 if width == 32 else np.float16
            digits = next(d for d in range(1, 18) if narrow(float(f"{x:.{d}g}")) == narrow(x))
            x = float(f"{x:.{digits}g}")
        if x == int(x):
            return str(int(x))
        return repr(x)
    return value if isinstance(value, str) else str(value)


def oracle_categorical_profile(values: object) -> CategoricalProfile:
    """Category shares as first written: each value's text counted in a dict, ranked in Python."""
    try:
        array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        array = None
    width = 64
    if array is not None:
        kind = array.type.value_type if pa.types.is_dictionary(array.type) else array.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
                or pa.types.is_boolean(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
            if len(array):
                raise ReferenceDataError("a categorical column must hold strings, integers, booleans or floats")
        width = kind.bit_width if pa.types.is_floating(kind) else 64
    counts: dict[str, int] = {}
    for value in array.to_pylist() if array is not None else values:  # type: ignore[attr-defined]
        key = oracle_text(value, width)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    n = sum(counts.values())
    if n == 0:
        raise ReferenceDataError("no non-null values to profile")
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = ranked[:MAX_CATEGORIES]
    rest = n - sum(c for _, c in kept)
    return CategoricalProfile(
        categories=tuple(k for k, _ in kept), shares=(*(c / n for _, c in kept), rest / n),
        n=n, n_distinct=len(counts),
    )


def bits(profile: NumericProfile | CategoricalProfile) -> tuple[object, ...]:
    """Every field, floats as their exact bits (-0.0 apart from 0.0)."""
    if isinstance(profile, NumericProfile):
        assert profile.mean is not None and profile.std is not None
        return (
            tuple(map(float.hex, profile.edges)), tuple(map(float.hex, profile.shares)), profile.n,
            float.hex(profile.low), float.hex(profile.high), float.hex(profile.mean), float.hex(profile.std),
        )
    return profile.categories, tuple(map(float.hex, profile.shares)), profile.n, profile.n_distinct


def same_outcome(new: object, old: object, values: object, *args: object) -> None:
    """``new(values, *args)`` and ``old(values, *args)`` give the same bits, or both refuse."""
    try:
        expected = bits(old(values, *args))  # type: ignore[operator]
    except ReferenceDataError as exc:
        with pytest.raises(ReferenceDataError, match=str(exc)):
            new(values, *args)  # type: ignore[operator]
        return
    assert bits(new(values, *args)) == expected  # type: ignore[operator]


special_floats = st.sampled_from(
    [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 1e308, -1e308, 1.0, -1.0, 0.1]
)
any_floats = st.one_of(finite_floats, discrete_floats, special_floats, st.floats())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # mean and std of +-1e308
@settings(max_examples=400, deadline=None)
@given(st.lists(any_floats, max_size=400), st.integers(min_value=1, max_value=25))
def test_numeric_matches_oracle(values: list[float], n_bins: int) -> None:
    same_outcome(numeric_profile, oracle_numeric_profile, values, n_bins)
    # numpy input: the caller's array is read, never sorted in place
    array = np.array(values, dtype=np.float64)
    before = array.copy()
    same_outcome(numeric_profile, oracle_numeric_profile, array, n_bins)
    np.testing.assert_array_equal(array, before)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # mean and std of +-1e308
@pytest.mark.parametrize("nan_share", [0.0, 0.01, 0.5])
@pytest.mark.parametrize("n_bins", [2, 10, 37])
def test_numeric_matches_oracle_on_big_columns(nan_share: float, n_bins: int) -> None:
    rng = np.random.default_rng(11)
    n = 200_000
    columns = [
        rng.normal(size=n), rng.lognormal(size=n), rng.integers(-3, 4, size=n).astype(float),
        np.round(rng.exponential(size=n), 1) * rng.choice([-1.0, 1.0], size=n),  # ties, -0.0 and 0.0
    ]
    for column in columns:
        column[rng.random(n) < nan_share] = rng.choice([math.nan, math.inf, -math.inf])
        before = column.copy()
        assert bits(numeric_profile(column, n_bins)) == bits(oracle_numeric_profile(column, n_bins))
        np.testing.assert_array_equal(column, before)


texts = st.text(max_size=4)
mixed_values = st.one_of(
    st.none(), texts, st.sampled_from(["None", "nan", "true", "false", "3", "1.0", "-0.0", "", "é", "e\u0301"]),
    st.booleans(), st.integers(-5, 5), st.integers(), special_floats, finite_floats,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(mixed_values, max_size=120))
def test_categorical_of_mixed_values_matches_oracle(values: list[object]) -> None:
    same_outcome(categorical_profile, oracle_categorical_profile, values)
    same_outcome(categorical_profile, oracle_categorical_profile, np.array(values, dtype=object))


def _typed_forms(values: list[object], kind: str) -> list[object]:
    """``values`` (one kind plus None) as the inputs a reference column arrives as."""
    forms: list[object] = [values, np.array(values, dtype=object)]
    non_null = [v for v in values if v is not None]
    if kind == "str":
        array = pa.array(values, type=pa.string())
        forms += [array, array.cast(pa.large_string()), array.dictionary_encode(),
                  pa.chunked_array([array[: len(values) // 2], array[len(values) // 2:]], type=pa.string())]
        if non_null and len(non_null) == len(values):
            forms.append(np.array(values, dtype=str))
    elif kind == "int":
        forms += [pa.array(values, type=pa.int64()), pa.array(values, type=pa.int8()).dictionary_encode()]
        if non_null and min(non_null) >= 0:  # type: ignore[type-var]
            forms.append(pa.array(values, type=pa.uint64()))
        if len(non_null) == len(values):
            forms.append(np.array(values, dtype=np.int64))
    elif kind == "bool":
        forms.append(pa.array(values, type=pa.bool_()))
        if len(non_null) == len(values):
            forms.append(np.array(values, dtype=bool))
    else:
        forms += [pa.array(values, type=pa.float64()), pa.array(values, type=pa.float32()),
                  np.array([math.nan if v is None else v for v in values], dtype=np.float64)]
    return forms


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(["str", "int", "bool", "float"]))
def test_categorical_of_typed_columns_matches_oracle(data: st.DataObject, kind: str) -> None:
    element = {
        "str": st.one_of(texts, st.sampled_from(["a", "b", "None", "nan", "ab", "\x00", "\U0001f600", "ÿ"])),
        "int": st.integers(-128, 127),
        "bool": st.booleans(),
        "float": st.one_of(discrete_floats, special_floats, finite_floats),
    }[kind]
    values = data.draw(st.lists(st.one_of(st.none(), element), max_size=150))
    for form in _typed_forms(values, kind):
        same_outcome(categorical_profile, oracle_categorical_profile, form)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(MAX_CATEGORIES - 20, MAX_CATEGORIES + 150))
def test_categorical_with_many_categories_matches_oracle(seed: int, n_categories: int) -> None:
    # around the cap, with ties at the cut: which of the tied ones are kept is decided by text
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("aAbz\u00e90~ \x00\u00ff\u4e00\U0001f600"), dtype=object)
    names = {"".join(rng.choice(alphabet, size=rng.integers(1, 4))) for _ in range(n_categories)}
    values: list[object] = [name for name in sorted(names) for _ in range(rng.integers(1, 4))]
    values += [None] * int(rng.integers(0, 40))
    rng.shuffle(values)  # type: ignore[arg-type]
    for form in _typed_forms(values, "str"):
        same_outcome(categorical_profile, oracle_categorical_profile, form)
    codes = {name: i for i, name in enumerate(sorted(names))}
    ints = [None if v is None else codes[v] - 128 for v in values]  # many distinct integers
    for form in _typed_forms(ints, "int")[:3]:
        same_outcome(categorical_profile, oracle_categorical_profile, form)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["\ud800", "a", "\ud800", None], id="lone-surrogate"),
        pytest.param([b"x", b"x", "x"], id="bytes"),
        pytest.param([2**64, 2**64, 1], id="beyond-int64"),
        pytest.param([-0.0, 0.0, 0.0, math.nan, None], id="signed-zero"),
        pytest.param([True, 1, 1.0, "1", "true"], id="equal-but-different-texts"),
        pytest.param(pa.array([None, None], type=pa.string()), id="string-nulls-only"),
        pytest.param(pa.array([math.nan, None], type=pa.float64()), id="float-nan-only"),
        pytest.param(pa.chunked_array([], type=pa.int32()), id="no-chunks"),
        pytest.param(pa.array([1, 2, 1], type=pa.int16()).dictionary_encode(), id="dictionary-of-ints"),
        pytest.param(pa.array([0.5, 0.5, 2.0], type=pa.float16()), id="float16"),
        pytest.param(pa.array([1, 1, 2], type=pa.timestamp("s")), id="timestamps"),
    ],
)
def test_categorical_edge_columns_match_oracle(values: object) -> None:
    same_outcome(categorical_profile, oracle_categorical_profile, values)


def test_categorical_matches_oracle_on_big_columns() -> None:
    rng = np.random.default_rng(5)
    n = 300_000
    labels = np.array([f"c_{k:03d}" for k in range(300)] + ["é", "Z", "z"], dtype=object)
    strings = labels[rng.integers(0, labels.size, size=n)]
    strings[rng.random(n) < 0.02] = None
    ids = rng.integers(0, 100_000, size=n)  # far more than the cap, many tied
    for column in (strings, pa.array(strings), ids, ids.astype(float), rng.integers(0, 2, size=n).astype(bool)):
        assert bits(categorical_profile(column)) == bits(oracle_categorical_profile(column))


# --------------------------------------------------------------------------
# build_reference
# --------------------------------------------------------------------------


def test_build_reference_profiles_each_feature() -> None:
    columns = {"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None], "unused": [0, 0, 0, 0]}
    profile = build_reference(
        "m", columns, {"x": "numeric", "c": "categorical"}, {"x": 2}, source="ref.parquet", n_rows=4,
    )
    assert set(profile.features) == {"x", "c"}
    assert profile.features["x"] == numeric_profile([1.0, 2.0, 4.0], 2)
    assert profile.features["c"] == categorical_profile(["a", "b", "a"])
    assert (profile.model, profile.n_rows, profile.source) == ("m", 4, "ref.parquet")
    assert profile.built_at.tzinfo is not None


@pytest.mark.parametrize(
    ("columns", "types", "match"),
    [
        pytest.param({"y": [1.0]}, {"x": "numeric"}, r"ref\.parquet: reference has no column 'x'; columns: \['y'\]", id="missing"),
        pytest.param({"x": ["a", "b"]}, {"x": "numeric"}, r"ref\.parquet: feature 'x': .*non-numeric", id="not-numeric"),
        pytest.param({"x": [math.nan]}, {"x": "numeric"}, r"ref\.parquet: feature 'x': no finite values", id="all-nan"),
        pytest.param({"c": [None]}, {"c": "categorical"}, r"ref\.parquet: feature 'c': no non-null", id="all-null"),
    ],
)
def test_build_reference_errors_name_source_and_feature(
    columns: dict[str, list[object]], types: dict[str, str], match: str
) -> None:
    with pytest.raises(ReferenceDataError, match=match):
        build_reference("m", columns, types, {}, source="ref.parquet", n_rows=1)


# --------------------------------------------------------------------------
# JSON baseline
# --------------------------------------------------------------------------


def sample_profile() -> ReferenceProfile:
    rng = np.random.default_rng(3)
    return ReferenceProfile(
        model="credit-risk",
        features={
            "amount": numeric_profile(rng.lognormal(size=1_000), n_bins=10),
            "country": categorical_profile(["DE", "FR", "DE", True, 3]),
        },
        n_rows=1_000,
        source="s3://bucket/ref.parquet",
        built_at=T0,
    )


def test_json_round_trip() -> None:
    profile = sample_profile()
    text = profile.to_json()
    assert json.loads(text)["format"] == 1
    restored = ReferenceProfile.from_json(text)
    assert restored == profile
    assert isinstance(restored.features["amount"], NumericProfile)
    assert isinstance(restored.features["country"], CategoricalProfile)
    assert restored.built_at == T0 and restored.built_at.tzinfo is not None


@settings(max_examples=50, deadline=None)
@given(st.lists(finite_floats, min_size=1, max_size=100), st.integers(2, 12))
def test_json_round_trip_is_exact_for_numeric(values: list[float], n_bins: int) -> None:
    profile = ReferenceProfile("m", {"x": numeric_profile(values, n_bins)}, len(values), "src", T0)
    assert ReferenceProfile.from_json(profile.to_json()) == profile


def test_save_then_load(tmp_path: Path) -> None:
    profile = sample_profile()
    path = save_reference(profile, tmp_path / "baselines")
    assert path == baseline_path(tmp_path / "baselines", "credit-risk")
    assert path.name == "credit-risk.reference.json"
    assert load_reference(tmp_path / "baselines", "credit-risk") == profile
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_baseline_path_is_safe() -> None:
    assert baseline_path(Path("b"), "../etc/pass wd").name == ".._etc_pass_wd.reference.json"
    assert baseline_path(Path("b"), "../etc/pass wd").parent == Path("b")


CORRUPT = [
    pytest.param("", id="empty-file"),
    pytest.param('{"format": 1, "model": "m"', id="truncated"),
    pytest.param("[]", id="not-an-object"),
    pytest.param('"text"', id="a-string"),
    pytest.param('{"format": 1, "model": "m", "n_rows": 1, "source": "s", "built_at": "2026-01-01T00:00:00+00:00"}', id="no-features"),
    pytest.param('{"format": 1, "model": "m", "n_rows": 1, "source": "s", "built_at": "2026-01-01T00:00:00+00:00", "features": []}', id="features-a-list"),
    pytest.param('{"format": 1, "model": "m", "n_rows": 1, "source": "s", "built_at": "yesterday", "features": {}}', id="bad-date"),
    pytest.param('{"format": 1, "model": "m", "n_rows": "x", "source": "s", "built_at": "2026-01-01T00:00:00+00:00", "features": {}}', id="bad-n-rows"),
    pytest.param('{"format": 1, "model": "m", "n_rows": 1, "source": "s", "built_at": "2026-01-01T00:00:00+00:00", "features": {"x": {"type": "numeric", "edges": [1], "shares": null, "n": 1, "low": 0, "high": 2}}}', id="null-shares"),
    pytest.param('{"format": 1, "model": "m", "n_rows": 1, "source": "s", "built_at": "2026-01-01T00:00:00+00:00", "features": {"x": {"type": "numeric", "edges": [1]}}}', id="numeric-fields-missing"),
]


@pytest.mark.parametrize("text", CORRUPT)
def test_from_json_corrupt_raises_baseline_error(text: str) -> None:
    with pytest.raises(BaselineError, match=r"^baselines/m\.reference\.json: not a valid baseline file"):
        ReferenceProfile.from_json(text, "baselines/m.reference.json")


@pytest.mark.parametrize("text", CORRUPT[:3])
def test_load_corrupt_file_names_the_path(tmp_path: Path, text: str) -> None:
    path = baseline_path(tmp_path, "m")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_reference(tmp_path, "m")
    assert str(path) in str(caught.value)


def test_load_missing_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(BaselineError) as caught:
        load_reference(tmp_path, "credit-risk")
    message = str(caught.value)
    assert str(baseline_path(tmp_path, "credit-risk")) in message
    assert "drift baseline build" in message
    assert "--model credit-risk" in message
