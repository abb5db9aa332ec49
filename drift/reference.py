"""Reference profiles: the training distribution of each feature, binned once.

A profile stores the bin edges (numeric: quantiles of the reference; categorical:
the category set) and the reference share of each bin. Windows are binned with
these same edges, so values compare across windows and across restarts. Profiles
are stored as JSON, never pickled.
"""

from __future__ import annotations

import functools

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import numpy as np
import numpy.typing as npt

from drift.categories import ENCODING, category_text, category_texts, is_category
from drift.errors import BaselineError, ReferenceDataError
from drift.events import FeatureValue

MAX_CATEGORIES = 256
"""Categories kept per feature; rarer ones share the reference's ``unseen`` bin."""

UNSEEN = "__unseen__"


@dataclass(frozen=True, slots=True)
class NumericProfile:
    """Quantile bins of a numeric feature.

    ``edges`` are the interior cut points, strictly increasing; bin ``i`` holds
    ``edges[i-1] <= x < edges[i]`` (open at both ends), so there are
    ``len(edges) + 1`` bins and ``shares`` has that length.
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    n: int
    low: float
    high: float
    mean: float | None = None
    """Mean of the finite reference values (None in baselines stored before it was kept)."""
    std: float | None = None
    """Population standard deviation (``ddof=0``) of the finite reference values."""

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def bin_labels(self) -> list[str]:
        return list(_interval_labels(self.edges))


@dataclass(frozen=True, slots=True)
class CategoricalProfile:
    """Category shares of a categorical feature; the last bin is ``unseen``."""

    categories: tuple[str, ...]
    shares: tuple[float, ...]
    n: int
    n_distinct: int | None = None
    """Distinct non-null reference values, also those beyond :data:`MAX_CATEGORIES`
    (None in baselines stored before it was kept)."""

    @property
    def n_categories(self) -> int:
        """Distinct reference categories: ``n_distinct``, else the kept ones."""
        return self.n_distinct if self.n_distinct is not None else len(self.categories)

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 1

    def bin_labels(self) -> list[str]:
        return [*self.categories, UNSEEN]


FeatureProfile = Union[NumericProfile, CategoricalProfile]


@functools.lru_cache(maxsize=4096)
def _interval_labels(edges: tuple[float, ...]) -> tuple[str, ...]:
    """``[-inf, e0)``, ``[e0, e1)``, ..., ``[en, inf)`` (detectors label every finding's bins)."""
    bounds = ["-inf", *(f"{e:.6g}" for e in edges), "inf"]
    return tuple(f"[{bounds[i]}, {bounds[i + 1]})" for i in range(len(edges) + 1))


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Every profiled feature of one model, with where it came from."""

    model: str
    features: Mapping[str, FeatureProfile]
    n_rows: int
    source: str
    built_at: datetime
    baselines: Mapping[str, str] | None = None
    """What each feature's ``shares`` were taken from, when not the training data:
    :func:`drift.baselines.baseline_profile` sets it (``hour_of_week=37 over 4 weeks
    (n=2412)``, or why it fell back to ``reference``). None for a profile of the
    reference data itself. Detectors copy it into ``Finding.baseline``; not stored in JSON."""
    predictions: Mapping[str, FeatureProfile] = field(default_factory=dict)
    """Profiles of prediction fields (``prediction.score``, ``prediction.label``) that a
    ``score`` detector monitors, keyed by the event field path; empty without one."""
    embeddings: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict, compare=False, repr=False)
    """Reference embeddings ``(n, dim)`` float32 by event field, for ``embedding`` detectors;
    stored next to the JSON as ``.npy`` (:func:`save_embeddings`), not in it."""

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "format": 1, "category_encoding": ENCODING, "model": self.model, "n_rows": self.n_rows, "source": self.source,
            "built_at": self.built_at.isoformat(),
            "features": {name: _profile_json(p) for name, p in self.features.items()},
        }
        if self.predictions:  # left out when empty: the file is as before without a score detector
            document["predictions"] = {name: _profile_json(p) for name, p in self.predictions.items()}
        return json.dumps(document, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "<baseline>") -> ReferenceProfile:
        try:
            data = json.loads(text)
            features = {name: _profile_from_json(item) for name, item in data["features"].items()}
            predictions = {name: _profile_from_json(item) for name, item in data.get("predictions", {}).items()}
            _check_category_encoding(data, {**features, **predictions}, where)
            return cls(
                model=str(data["model"]), features=features, n_rows=int(data["n_rows"]),
                source=str(data["source"]), built_at=datetime.fromisoformat(data["built_at"]),
                predictions=predictions,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BaselineError(f"{where}: not a valid baseline file ({type(exc).__name__}: {exc})") from None


_FLOAT_TEXT = re.compile(r"-?(\d+\.\d*|\d*\.\d+|\d+(\.\d*)?e[+-]?\d+|inf|nan)")


def _check_category_encoding(data: Mapping[str, Any], profiles: Mapping[str, FeatureProfile], where: str) -> None:
    """Refuse a profile whose categories were written by an older category encoding.

    Before :data:`drift.categories.ENCODING` 2, integer and boolean reference columns
    were read as floats: their categories are ``1.0``, ``0.0``, which no event matches.
    A profile without the version whose categories are all texts that no float gives
    (``DE``, ``mobile``, ``3``) means the same under both rules and is read as it is.
    """
    version = data.get("category_encoding", 1)
    if version == ENCODING:
        return
    if version != 1:
        raise ValueError(f"unknown category_encoding {version!r}; this version writes {ENCODING}")
    stale = sorted(
        name for name, profile in profiles.items()
        if isinstance(profile, CategoricalProfile) and any(_FLOAT_TEXT.fullmatch(c) for c in profile.categories)
    )
    if stale:
        model = data.get("model", "MODEL")
        raise BaselineError(
            f"{where}: the categories of {', '.join(map(repr, stale))} were stored by an older version "
            f"that read integer and boolean reference columns as floats ({_example(profiles[stale[0]])}); "
            f"no event would match them. Rebuild the baseline: "
            f"'drift baseline build --config CONFIG --model {model} --reference PATH.parquet' "
            f"(or delete {where} to have 'drift run' build it from the config's reference)"
        )


def _example(profile: FeatureProfile) -> str:
    assert isinstance(profile, CategoricalProfile)
    return ", ".join(repr(c) for c in profile.categories[:3])


def _profile_json(profile: FeatureProfile) -> dict[str, Any]:
    if isinstance(profile, NumericProfile):
        out: dict[str, Any] = {
            "type": "numeric", "edges": list(profile.edges), "shares": list(profile.shares),
            "n": profile.n, "low": profile.low, "high": profile.high,
        }
        if profile.mean is not None and profile.std is not None:
            out["mean"], out["std"] = profile.mean, profile.std
        return out
    out = {
        "type": "categorical", "categories": list(profile.categories),
        "shares": list(profile.shares), "n": profile.n,
    }
    if profile.n_distinct is not None:
        out["n_distinct"] = profile.n_distinct
    return out


def _profile_from_json(item: Mapping[str, Any]) -> FeatureProfile:
    """One feature's profile; keys added later (mean, std, n_distinct) may be absent."""
    if item["type"] == "numeric":
        mean, std = item.get("mean"), item.get("std")
        return NumericProfile(
            edges=tuple(float(e) for e in item["edges"]),
            shares=tuple(float(s) for s in item["shares"]),
            n=int(item["n"]), low=float(item["low"]), high=float(item["high"]),
            mean=None if mean is None else float(mean), std=None if std is None else float(std),
        )
    n_distinct = item.get("n_distinct")
    return CategoricalProfile(
        categories=tuple(str(c) for c in item["categories"]),
        shares=tuple(float(s) for s in item["shares"]), n=int(item["n"]),
        n_distinct=None if n_distinct is None else int(n_distinct),
    )


def numeric_profile(values: npt.ArrayLike, n_bins: int) -> NumericProfile:
    """Quantile bins of the finite values.

    Edges are the ``i / n_bins`` quantiles (``i = 1 .. n_bins-1``), deduplicated,
    so a feature with few distinct values gets fewer, wider bins instead of empty
    ones.

    >>> p = numeric_profile(np.arange(100.0), n_bins=4)
    >>> p.edges, p.shares
    ((24.75, 49.5, 74.25), (0.25, 0.25, 0.25, 0.25))
    """
    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    filtered = not finite.all()
    if filtered:
        array = array[finite]
    if array.size == 0:
        raise ReferenceDataError("no finite values to profile")
    # Statistics of the values in their own order (the sum's rounding depends on it).
    low, high = float(array.min()), float(array.max())
    mean, std = float(array.mean()), float(array.std())
    # numpy's default ("linear") quantile at p = i / n_bins sits at position
    # (n - 1) * i / n_bins of the sorted values. The position is split in integers:
    # a float p puts a tie a few ulps off its value (-0.9999999999999991 next to
    # -1.0), which np.unique keeps as a spurious, empty bin.
    if filtered:  # a copy of ours: sorted in place
        array.sort()
        ordered = array
    else:
        ordered = np.sort(array)
    n = ordered.size
    lower, remainder = np.divmod(np.arange(1, n_bins) * (n - 1), n_bins)
    upper = np.minimum(lower + 1, n - 1)
    quantiles = ordered[lower] + (remainder / n_bins) * (ordered[upper] - ordered[lower])
    edges = np.unique(quantiles)
    # Bin i holds edges[i-1] <= x < edges[i]: counted from where each edge falls in the
    # sorted values (values below it), not by binning every value.
    below = np.searchsorted(ordered, edges, side="left")
    counts = np.diff(below, prepend=0, append=n)
    shares = counts / n
    return NumericProfile(
        edges=tuple(float(e) for e in edges), shares=tuple(float(s) for s in shares),
        n=int(n), low=low, high=high, mean=mean, std=std,
    )


def categorical_profile(values: Iterable[FeatureValue]) -> CategoricalProfile:
    """Shares of the most frequent categories (at most :data:`MAX_CATEGORIES`).

    Categories rank by count, then by text (code point order) among ties; nulls,
    NaN and infinities are left out; every value counts as its category text
    (:mod:`drift.categories`: ``1``, ``1.0`` and ``"1"`` are one category).

    >>> categorical_profile(["a", "b", "a", None]).categories
    ('a', 'b')
    """
    counted = _text_counts(values)
    if isinstance(counted, dict):
        n = sum(counted.values())
        if n == 0:
            raise ReferenceDataError("no non-null values to profile")
        n_distinct = len(counted)
        kept = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CATEGORIES]
    else:
        import pyarrow as pa
        import pyarrow.compute as pc

        texts, counts = counted
        n = int(pc.sum(counts).as_py() or 0)
        if n == 0:
            raise ReferenceDataError("no non-null values to profile")
        n_distinct = len(texts)
        table = pa.table({"text": texts, "count": counts})
        order = [("count", "descending"), ("text", "ascending")]
        if n_distinct > MAX_CATEGORIES:  # texts are distinct: the order is total
            top = pc.select_k_unstable(table, k=MAX_CATEGORIES, sort_keys=order)
        else:
            top = pc.sort_indices(table, sort_keys=order)
        kept = list(zip(texts.take(top).to_pylist(), counts.take(top).to_pylist()))
    rest = n - sum(c for _, c in kept)
    return CategoricalProfile(
        categories=tuple(k for k, _ in kept),
        shares=(*(c / n for _, c in kept), rest / n),
        n=n,
        n_distinct=n_distinct,
    )


def _text_counts(values: Iterable[FeatureValue]) -> dict[str, int] | tuple[Any, Any]:
    """Occurrences of each category text (:mod:`drift.categories`), non-categories left out.

    Columns Arrow can type as strings, integers, booleans or floats (or dictionaries of
    them) are counted by Arrow: distinct values by ``value_counts``, then their texts,
    then the counts of values sharing a text (``0.0`` and ``-0.0``, ``1`` and ``1.0`` of
    a dictionary) summed. The result is a pair of Arrow arrays, distinct texts and their
    counts. Others (mixed types, ...) are counted value by value into a dict.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        array = None
    if array is not None and pa.types.is_dictionary(array.type):
        array = pc.cast(array, array.type.value_type)
    if array is not None and _category_type(array.type):
        counted = pc.value_counts(array)
        texts = category_texts(counted.field("values"))
        keep = pc.is_valid(texts)  # nulls, NaN and infinities have no category
        table = pa.table({"text": texts.filter(keep), "count": counted.field("counts").filter(keep)})
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
                or pa.types.is_integer(array.type) or pa.types.is_boolean(array.type)):
            table = table.group_by("text").aggregate([("count", "sum")]).rename_columns(["text", "count"])
        return table.column("text").combine_chunks(), table.column("count").combine_chunks()
    if array is not None and not pa.types.is_null(array.type) and len(array):
        raise ReferenceDataError(
            f"a categorical column must hold strings, integers, booleans or floats "
            f"(or a dictionary of them); got Arrow type {array.type}"
        )
    tally: dict[str, int] = {}
    for value in values if array is None else ():
        if not is_category(value):
            continue
        key = category_text(value)
        tally[key] = tally.get(key, 0) + 1
    return tally


def _category_type(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
                or pa.types.is_boolean(kind) or pa.types.is_floating(kind))


def build_reference(
    model: str,
    columns: Mapping[str, Any],
    feature_types: Mapping[str, str],
    n_bins: Mapping[str, int],
    source: str,
    n_rows: int,
    predictions: Mapping[str, PredictionColumn] | None = None,
) -> ReferenceProfile:
    """Profile every configured feature from column data (arrays or lists).

    ``predictions`` maps a prediction field path (``prediction.score``) to the
    reference column it is profiled from; those go to ``ReferenceProfile.predictions``.
    """
    features: dict[str, FeatureProfile] = {}
    for name, kind in feature_types.items():
        features[name] = _profile_column(columns, name, kind, n_bins.get(name, 10), source, f"feature {name!r}")
    profiled: dict[str, FeatureProfile] = {}
    for path, spec in (predictions or {}).items():
        profiled[path] = _profile_column(
            columns, spec.column, spec.type, spec.bins, source, f"prediction field {path!r}",
        )
    return ReferenceProfile(
        model=model, features=features, n_rows=n_rows, source=source,
        built_at=datetime.now(timezone.utc), predictions=profiled,
    )


@dataclass(frozen=True, slots=True)
class PredictionColumn:
    """The reference column a monitored prediction field is profiled from."""

    column: str
    type: str
    """``numeric`` (a score) or ``categorical`` (a label)."""
    bins: int = 10


def _profile_column(
    columns: Mapping[str, Any], name: str, kind: str, bins: int, source: str, what: str,
) -> FeatureProfile:
    if name not in columns:
        purpose = "" if what.startswith("feature") else f" for {what}"
        raise ReferenceDataError(
            f"{source}: reference has no column {name!r}{purpose}; columns: {sorted(columns)}"
        )
    try:
        if kind == "numeric":
            column = columns[name]
            try:
                array = np.asarray(column, dtype=np.float64)
            except (TypeError, ValueError):
                raise ReferenceDataError(
                    f"column {name!r} is declared numeric but holds non-numeric values"
                ) from None
            return numeric_profile(array, bins)
        return categorical_profile(columns[name])
    except ReferenceDataError as exc:
        raise ReferenceDataError(f"{source}: {what}: {exc}") from None


def baseline_path(directory: Path, model: str) -> Path:
    """Where the reference profile of ``model`` is stored."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    return directory / f"{safe}.reference.json"


def save_reference(profile: ReferenceProfile, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = baseline_path(directory, profile.model)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(profile.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path


def load_reference(directory: Path, model: str) -> ReferenceProfile:
    path = baseline_path(directory, model)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"no baseline for model {model!r} at {path}; build it with "
            f"'drift baseline build --config CONFIG --model {model} --reference PATH.parquet'"
        ) from None
    return ReferenceProfile.from_json(text, str(path))


def embeddings_path(directory: Path, model: str, field_name: str) -> Path:
    """Where the reference embeddings of ``model``'s ``field_name`` are stored (``.npy``)."""
    reference = baseline_path(directory, model)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in field_name)
    return reference.with_name(reference.name.removesuffix(".reference.json") + f".{safe}.embeddings.npy")


def save_embeddings(rows: npt.NDArray[np.float32], directory: Path, model: str, field_name: str) -> Path:
    """Store reference embeddings as ``.npy`` (numpy's format, never pickle), atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = embeddings_path(directory, model, field_name)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(rows, dtype=np.float32), allow_pickle=False)
    tmp.replace(path)
    return path


def load_embeddings(directory: Path, model: str, field_name: str, dim: int) -> npt.NDArray[np.float32]:
    """Reference embeddings stored by :func:`save_embeddings`, checked to be ``(n, dim)`` float32."""
    path = embeddings_path(directory, model, field_name)
    try:
        rows: npt.NDArray[np.float32] = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BaselineError(
            f"no reference embeddings for model {model!r} at {path}; give the model a reference Parquet "
            f"file with a {field_name!r} column, or build it with "
            f"'drift baseline build --config CONFIG --model {model} --reference PATH.parquet'"
        ) from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{path}: not a valid embeddings file ({type(exc).__name__}: {exc})") from None
    if rows.dtype != np.float32 or rows.ndim != 2 or rows.shape[1] != dim:
        raise BaselineError(
            f"{path}: reference embeddings must be (n, {dim}) float32; got {rows.shape} {rows.dtype} "
            f"(rebuild the baseline after changing dim)"
        )
    return rows
