"""One category text for a value, whether it comes from Parquet, JSON or an Arrow message.

The property: a categorical column written to Parquet with pyarrow's natural type for
its values, profiled by the reference build, and the same values sent as events in
their natural JSON form (and as an Arrow message of the same type) count into exactly
the reference's bins, nothing in ``unseen``, through both the one-by-one decoder and
the column-wise one.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.reference import read_columns
from drift.batch import BatchDecoder, encode_arrow, model_columns
from drift.categories import category_text, category_texts, float_text
from drift.columnar import add_block
from drift.errors import BaselineError
from drift.events import Decoder, DeadLetter, RawMessage
from drift.reference import UNSEEN, ReferenceProfile, build_reference, save_reference, load_reference
from drift.summary import add_event, empty_summary, flush

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
DECODER = Decoder(models=frozenset({"m"}), now=lambda: NOW)

INTEGER_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
FLOAT_TYPES = [pa.float16(), pa.float32(), pa.float64()]
STRING_TYPES = [pa.string(), pa.large_string()]


def _values_for(kind: pa.DataType) -> st.SearchStrategy[Any]:
    if pa.types.is_dictionary(kind):
        return _values_for(kind.value_type)
    if pa.types.is_boolean(kind):
        return st.booleans()
    if pa.types.is_integer(kind):
        bits = kind.bit_width
        low, high = (0, 2**bits - 1) if pa.types.is_unsigned_integer(kind) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return st.one_of(st.integers(-3, 3).filter(lambda v: low <= v <= high), st.integers(low, high))
    if pa.types.is_floating(kind):
        width = kind.bit_width
        narrow = {16: np.float16, 32: np.float32, 64: np.float64}[width]
        floats = st.floats(allow_nan=False, allow_infinity=False, width=width)
        return st.one_of(st.integers(-5, 5).map(float), st.sampled_from([0.1, 0.5, -0.0, 2.25, 1e-5]), floats).map(
            lambda v: float(narrow(v))).filter(math.isfinite)
    return st.one_of(st.sampled_from(["DE", "1", "true", "1.0", "", "é"]), st.text(max_size=6))


ACCEPTED = [
    *INTEGER_TYPES, pa.bool_(), *FLOAT_TYPES, *STRING_TYPES,
    pa.dictionary(pa.int32(), pa.string()), pa.dictionary(pa.int8(), pa.int64()),
    pa.dictionary(pa.int16(), pa.float64()),
]


def _json_number(value: Any, kind: pa.DataType) -> bytes:
    """The value as a producer writes it in JSON: a float32 with numpy's shortest digits."""
    value_type = kind.value_type if pa.types.is_dictionary(kind) else kind
    if pa.types.is_floating(value_type) and value_type.bit_width < 64:
        narrow = np.float32 if value_type.bit_width == 32 else np.float16
        return str(narrow(value)).encode()
    return orjson.dumps(value)


def _event(i: int, value: Any, kind: pa.DataType) -> bytes:
    ts = (NOW - timedelta(minutes=10, seconds=i)).isoformat().replace("+00:00", "Z")
    head = orjson.dumps({"event_id": f"e-{i}", "ts": ts, "model": "m", "tenant": "acme"})
    return head[:-1] + b',"features":{"c":' + _json_number(value, kind) + b"}}"


def _counts(profile: ReferenceProfile, raws: list[RawMessage], batch: bool, arrow: bytes | None = None) -> list[int]:
    """The window's bin counts of ``c`` after decoding ``raws`` (or one Arrow message)."""
    reference = profile.features["c"]
    summary = empty_summary(profile)
    if batch:
        decoder = BatchDecoder(DECODER, [model_columns("m", ("tenant",), profile, per_event=False, embeddings=False)],
                               min_columnar=1)
        messages = raws if arrow is None else [RawMessage(arrow, "t", 0, 0)]
        decoded = decoder(messages)
        assert not decoded.dead, decoded.dead
        for piece in decoded.pieces:
            if piece.block is not None:
                add_block(summary, piece.block, profile)
            for event in piece.events:
                add_event(summary, event, profile)
    else:
        for raw in raws:
            event = DECODER(raw)
            assert not isinstance(event, DeadLetter), event
            add_event(summary, event, profile)
    flush(summary, profile)
    counts = summary.features["c"]
    assert counts.n_wrong_type == 0 and counts.n_null == 0
    assert reference.bin_labels()[-1] == UNSEEN
    return [int(c) for c in counts.counts]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(ACCEPTED))
def test_parquet_values_and_their_json_form_land_in_the_same_bins(
    tmp_path: Path, data: st.DataObject, kind: pa.DataType,
) -> None:
    values = data.draw(st.lists(_values_for(kind), min_size=1, max_size=25), label="values")
    column = pa.array(values, type=kind.value_type if pa.types.is_dictionary(kind) else kind)
    if pa.types.is_dictionary(kind):
        column = column.dictionary_encode().cast(kind)
    path = tmp_path / "reference.parquet"
    pq.write_table(pa.table({"c": column}), path)
    columns, n_rows = read_columns(path, ["c"], categorical=["c"])
    profile = build_reference("m", columns, {"c": "categorical"}, {}, str(path), n_rows)
    reference = profile.features["c"]
    expected = [round(share * reference.n) for share in reference.shares]
    assert expected[-1] == 0  # nothing of the reference itself is unseen

    # The values as pyarrow reads them back from the file, in their natural JSON form.
    stored = pq.read_table(path).column("c").to_pylist()
    raws = [RawMessage(_event(i, v, kind), "t", 0, i) for i, v in enumerate(stored)]
    assert _counts(profile, raws, batch=False) == expected
    assert _counts(profile, raws, batch=True) == expected

    # An Arrow message of the same type, as a batching producer sends it.
    table = pq.read_table(path)
    records = [{"event_id": f"a-{i}", "ts": NOW - timedelta(minutes=10), "model": "m", "tenant": "acme",
                "features": {"c": v}} for i, v in enumerate(table.column("c").to_pylist())]
    schema = pa.schema([
        ("event_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("model", pa.string()),
        ("tenant", pa.string()), ("features", pa.struct([("c", table.schema.field("c").type)])),
    ])
    assert _counts(profile, [], batch=True, arrow=encode_arrow(records, schema)) == expected


@pytest.mark.parametrize(
    ("parquet", "json_values", "texts"),
    [
        pytest.param(pa.array([1, 2, 3, 1], type=pa.int64()), [1, 2, 3, 1], ["1", "2", "3"], id="int64-codes"),
        pytest.param(pa.array([True, False, True]), [True, False, True], ["true", "false"], id="bool-flags"),
        pytest.param(pa.array([1.0, 2.0, 2.5]), [1, 2, 2.5], ["1", "2", "2.5"], id="integral-floats-as-ints"),
        pytest.param(pa.array([0.1], type=pa.float32()), [0.1], ["0.1"], id="float32-shortest"),
        pytest.param(pa.array(["a", "b"]).dictionary_encode(), ["a", "b"], ["a", "b"], id="dictionary"),
    ],
)
def test_the_issue_cases_match(tmp_path: Path, parquet: pa.Array, json_values: list[Any], texts: list[str]) -> None:
    """Integer codes and flags from Parquet against the JSON numbers and booleans: PSI ~ 0, not ~ 17."""
    path = tmp_path / "ref.parquet"
    pq.write_table(pa.table({"c": parquet}), path)
    columns, n_rows = read_columns(path, ["c"], categorical=["c"])
    profile = build_reference("m", columns, {"c": "categorical"}, {}, str(path), n_rows)
    assert sorted(profile.features["c"].categories) == sorted(texts)
    assert sorted({category_text(v) for v in json_values}) == sorted(texts)


def test_category_texts_agree_with_category_text_value_by_value() -> None:
    for array in (
        pa.array([1, -2, None, 2**63 - 1], type=pa.int64()), pa.array([0, 2**64 - 1], type=pa.uint64()),
        pa.array([True, None, False]), pa.array(["x", None, ""]),
        pa.array([1.0, -0.0, 2.5, None, 1e20, 1e-7, 2.0**60]), pa.array([0.1, 3.0, 1 / 3], type=pa.float32()),
        pa.array([0.1, 65504.0], type=pa.float16()), pa.array([3, 3, 4], type=pa.int8()).dictionary_encode(),
    ):
        expected = [None if v is None else category_text(v) for v in array.to_numpy(zero_copy_only=False)
                    ] if pa.types.is_floating(array.type) else [
            None if v is None else category_text(v) for v in array.to_pylist()]
        if pa.types.is_floating(array.type):
            expected = [None if not array[i].is_valid else e for i, e in enumerate(expected)]
        assert category_texts(array).to_pylist() == expected, array


def test_non_finite_floats_are_not_categories() -> None:
    assert category_texts(pa.array([math.nan, math.inf, -math.inf, 1.0])).to_pylist() == [None, None, None, "1"]


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, -7.0, 2.0**53, 1e300, 0.5, 1e-300, 123.456])
def test_float_text_reads_back_as_the_same_number(value: float) -> None:
    text = float_text(value)
    assert float(text) == value
    assert ("." in text or "e" in text) == (not value.is_integer())


def _old_profile_json(tmp_path: Path, categories: list[str]) -> Path:
    """A profile as the previous version stored it: no category_encoding."""
    profile = build_reference("m", {"c": categories}, {"c": "categorical"}, {}, "old.parquet", len(categories))
    path = save_reference(profile, tmp_path)
    document = orjson.loads(path.read_bytes())
    del document["category_encoding"]
    path.write_bytes(orjson.dumps(document))
    return path


def test_a_stored_profile_of_the_old_encoding_is_refused_with_how_to_rebuild(tmp_path: Path) -> None:
    _old_profile_json(tmp_path, ["1.0", "2.0", "1.0"])
    with pytest.raises(BaselineError, match=r"older version.*'1\.0'.*drift baseline build --config CONFIG --model m"):
        load_reference(tmp_path, "m")


def test_a_stored_profile_of_plain_strings_reads_the_same_under_both_encodings(tmp_path: Path) -> None:
    _old_profile_json(tmp_path, ["DE", "FR", "3"])
    assert load_reference(tmp_path, "m").features["c"].categories == ("3", "DE", "FR")


def test_unsupported_arrow_types_are_refused_naming_the_type() -> None:
    from drift.errors import ReferenceDataError

    with pytest.raises(ReferenceDataError, match=r"got Arrow type timestamp"):
        build_reference("m", {"c": pa.array([1, 2], type=pa.timestamp("s"))}, {"c": "categorical"}, {}, "x", 2)
