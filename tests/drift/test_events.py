"""Decoding inference events: every bad input becomes a dead letter, nothing raises."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.events import (
    MAX_MESSAGE_BYTES,
    DeadLetter,
    Decoder,
    DlqReason,
    InferenceEvent,
    RawMessage,
    parse_timestamp,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
MODELS = frozenset({"credit-risk", "fraud"})
STEP_ID = "decode_inference_test"
TOPIC, PARTITION, OFFSET, KEY = "inference-events", 3, 41_207, b"cust-42"

decode = Decoder(MODELS, max_future=timedelta(minutes=10), now=lambda: NOW, step_id=STEP_ID)

_DROP = object()


def event(**changes: Any) -> bytes:
    """A valid event as JSON bytes, with fields changed (or dropped with ``_DROP``)."""
    body: dict[str, Any] = {
        "event_id": "e-123",
        "ts": "2026-11-27T10:00:00.123Z",
        "model": "credit-risk",
        "model_version": "3.2.0",
        "tenant": "acme",
        "region": "eu-west-1",
        "route": "/score",
        "segment": {"channel": "mobile"},
        "entity_id": "cust-42",
        "features": {"age": 42, "income": 5100.0, "country": "DE", "vip": True, "notes": None},
        "prediction": {"score": 0.83, "label": "approve"},
        "embedding": [0.01, -0.2],
    }
    for name, value in changes.items():
        if value is _DROP:
            del body[name]
        else:
            body[name] = value
    return orjson.dumps(body)


def message(value: bytes | None, error: str | None = None) -> RawMessage:
    return RawMessage(value=value, topic=TOPIC, partition=PARTITION, offset=OFFSET, key=KEY, error=error)


# --------------------------------------------------------------------- valid events


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        pytest.param("2026-11-27T10:00:00.123Z", datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC), id="rfc3339-Z"),
        pytest.param("2026-11-27T10:00:00+02:00", datetime(2026, 11, 27, 8, 0, tzinfo=UTC), id="offset-to-utc"),
        pytest.param("2026-11-27T05:30:00-04:30", datetime(2026, 11, 27, 10, 0, tzinfo=UTC), id="negative-offset"),
        pytest.param(1764237600123, datetime(2025, 11, 27, 10, 0, 0, 123000, tzinfo=UTC), id="epoch-ms"),
        pytest.param(946684800000, datetime(2000, 1, 1, tzinfo=UTC), id="epoch-ms-first-accepted"),
    ],
)
def test_valid_event(ts: object, expected: datetime) -> None:
    raw = message(event(ts=ts))
    out = decode(raw)
    assert isinstance(out, InferenceEvent), out
    assert out.ts == expected
    assert out.ts.utcoffset() == timedelta(0)
    assert out.model == "credit-risk"
    assert out.event_id == "e-123"
    assert (out.model_version, out.tenant, out.region, out.route) == ("3.2.0", "acme", "eu-west-1", "/score")
    assert out.segment == {"channel": "mobile"}
    assert out.entity_id == "cust-42"
    assert out.features == {"age": 42, "income": 5100.0, "country": "DE", "vip": True, "notes": None}
    assert out.prediction == {"score": 0.83, "label": "approve"}
    assert out.embedding == [0.01, -0.2]
    assert out.raw is raw
    assert out.label("tenant") == "acme"
    assert out.label("segment.channel") == "mobile"
    assert out.label("segment.absent") is None


def test_minimal_event_has_optional_fields_empty() -> None:
    out = decode(message(b'{"ts": "2026-11-27T10:00:00Z", "model": "fraud", "features": {}}'))
    assert isinstance(out, InferenceEvent)
    assert out.model == "fraud"
    assert out.event_id is out.tenant is out.prediction is out.embedding is None
    assert out.segment == {} and out.features == {}


def test_numeric_text_fields_become_text() -> None:
    out = decode(message(event(model_version=3, tenant=17)))
    assert isinstance(out, InferenceEvent)
    assert (out.model_version, out.tenant) == ("3", "17")


def test_future_boundary_is_allowed() -> None:
    just_inside = (NOW + timedelta(minutes=10)).isoformat()
    assert isinstance(decode(message(event(ts=just_inside))), InferenceEvent)


# ----------------------------------------------------------------------- edge cases

TS = "2026-11-27T10:00:00Z"
EDGE_CASES = [
    pytest.param(b"", DlqReason.EMPTY, "message has no value", id="empty"),
    pytest.param(None, DlqReason.EMPTY, "message has no value", id="no-value"),
    pytest.param(b"not json", DlqReason.INVALID_JSON, "not JSON", id="invalid-json"),
    pytest.param(event()[:40], DlqReason.INVALID_JSON, "unexpected end of data", id="truncated-json"),
    pytest.param(b'{"ts": "\xff\xfe"}', DlqReason.NOT_UTF8, "not UTF-8 at byte 8", id="not-utf8"),
    pytest.param(b"\xfe" * 16, DlqReason.NOT_UTF8, "not UTF-8 at byte 0", id="binary"),
    pytest.param(b"\xff" * 16, DlqReason.BAD_ARROW, "Arrow IPC stream", id="arrow-marker"),
    pytest.param(b"[1, 2, 3]", DlqReason.NOT_AN_OBJECT, "got list", id="json-array"),
    pytest.param(b'"text"', DlqReason.NOT_AN_OBJECT, "got str", id="json-string"),
    pytest.param(b"null", DlqReason.NOT_AN_OBJECT, "got NoneType", id="json-null"),
    pytest.param(event(ts=_DROP), DlqReason.MISSING_FIELD, "ts is required", id="missing-ts"),
    pytest.param(event(model=_DROP), DlqReason.MISSING_FIELD, "model is required", id="missing-model"),
    pytest.param(event(model=None), DlqReason.MISSING_FIELD, "model is required", id="model-null"),
    pytest.param(event(features=_DROP), DlqReason.MISSING_FIELD, "features is required", id="missing-features"),
    pytest.param(event(model=7), DlqReason.WRONG_TYPE, "model must be a string; got int", id="model-not-string"),
    pytest.param(event(model="churn"), DlqReason.UNKNOWN_MODEL,
                 "model 'churn' is not configured; known: ['credit-risk', 'fraud']", id="unknown-model"),
    pytest.param(event(ts="2026-11-27T10:00:00"), DlqReason.BAD_TIMESTAMP, "ts has no UTC offset", id="ts-naive"),
    pytest.param(event(ts="2026-11-27"), DlqReason.BAD_TIMESTAMP, "ts has no UTC offset", id="ts-date-only"),
    pytest.param(event(ts="yesterday"), DlqReason.BAD_TIMESTAMP, "ts is not RFC 3339; got 'yesterday'",
                 id="ts-garbage"),
    pytest.param(event(ts=True), DlqReason.BAD_TIMESTAMP, "got True", id="ts-bool"),
    pytest.param(event(ts=-1), DlqReason.BAD_TIMESTAMP,
                 "ts -1 read as epoch milliseconds of model 'credit-risk' is 1969-12-31T23:59:59.999000+00:00, "
                 "before 2000", id="ts-negative-epoch"),
    pytest.param(event(ts=0), DlqReason.BAD_TIMESTAMP, "is 1970-01-01T00:00:00+00:00, before 2000", id="ts-epoch-zero"),
    pytest.param(event(ts=946684799999), DlqReason.BAD_TIMESTAMP, "before 2000", id="ts-epoch-ms-last-of-1999"),
    pytest.param(event(ts=10**16), DlqReason.BAD_TIMESTAMP, "out of range", id="ts-epoch-past-9999"),
    pytest.param(event(ts="0001-01-01T00:00:00+01:00"), DlqReason.BAD_TIMESTAMP, "out of range in UTC",
                 id="ts-before-year-1-in-utc"),
    pytest.param(event(ts="9999-12-31T23:59:59-01:00"), DlqReason.BAD_TIMESTAMP, "out of range in UTC",
                 id="ts-after-year-9999-in-utc"),
    pytest.param(event(ts=None), DlqReason.WRONG_TYPE, "ts must be a string or integer; got NoneType", id="ts-null"),
    pytest.param(event(ts=[1]), DlqReason.WRONG_TYPE, "got list", id="ts-list"),
    pytest.param(event(ts=(NOW + timedelta(minutes=11)).isoformat()), DlqReason.FUTURE_TIMESTAMP,
                 "in the future", id="ts-far-future"),
    pytest.param(event(ts=int((NOW + timedelta(days=1)).timestamp() * 1000)), DlqReason.FUTURE_TIMESTAMP,
                 "in the future", id="ts-far-future-epoch-ms"),
    pytest.param(event(features=[1, 2]), DlqReason.WRONG_TYPE, "features must be an object; got list",
                 id="features-not-object"),
    pytest.param(event(features={"age": [42]}), DlqReason.WRONG_TYPE,
                 "features.age must be a number, string, boolean or null; got list", id="feature-list"),
    pytest.param(event(features={"age": {"v": 42}}), DlqReason.WRONG_TYPE, "features.age must be", id="feature-dict"),
    # orjson follows RFC 8259: NaN/Infinity are not JSON, so they are invalid JSON
    # (not non_finite, which only a decoder accepting them could reach).
    pytest.param(b'{"ts": "' + TS.encode() + b'", "model": "credit-risk", "features": {"age": NaN}}',
                 DlqReason.INVALID_JSON, "not JSON", id="nan-literal"),
    pytest.param(b'{"ts": "' + TS.encode() + b'", "model": "credit-risk", "features": {"age": Infinity}}',
                 DlqReason.INVALID_JSON, "not JSON", id="infinity-literal"),
    pytest.param(b'{"ts": "' + TS.encode() + b'", "model": "credit-risk", "features": {"age": 1e999}}',
                 DlqReason.INVALID_JSON, "infinity", id="overflowing-number"),
    pytest.param(b"{" + b" " * MAX_MESSAGE_BYTES + b"}", DlqReason.TOO_LARGE,
                 f"message is {MAX_MESSAGE_BYTES + 2} bytes; limit {MAX_MESSAGE_BYTES}", id="too-large"),
    pytest.param(event(prediction=0.83), DlqReason.WRONG_TYPE, "prediction must be an object; got float",
                 id="prediction-not-object"),
    pytest.param(event(segment={"channel": 1}), DlqReason.WRONG_TYPE, "segment must be an object of strings",
                 id="segment-not-strings"),
    pytest.param(event(segment=["mobile"]), DlqReason.WRONG_TYPE, "segment must be an object of strings",
                 id="segment-list"),
    pytest.param(event(tenant=True), DlqReason.WRONG_TYPE, "tenant must be a string; got bool", id="tenant-bool"),
    pytest.param(event(event_id=1.5), DlqReason.WRONG_TYPE, "event_id must be a string; got float",
                 id="event-id-float"),
]


@pytest.mark.parametrize(("value", "reason", "detail"), EDGE_CASES)
def test_edge_case_becomes_dead_letter(value: bytes | None, reason: DlqReason, detail: str) -> None:
    out = decode(message(value))
    assert isinstance(out, DeadLetter), out
    assert out.reason is reason
    assert detail in out.detail
    assert out.value is value  # the original bytes, untouched
    assert (out.topic, out.partition, out.offset, out.key, out.step_id) == (TOPIC, PARTITION, OFFSET, KEY, STEP_ID)
    orjson.dumps(out.to_dict())


def test_kafka_error_is_a_dead_letter_even_with_a_valid_value() -> None:
    value = event()
    out = decode(message(value, error="KafkaError{code=_TRANSPORT,val=-195}"))
    assert isinstance(out, DeadLetter)
    assert out.reason is DlqReason.KAFKA_ERROR
    assert out.detail == "KafkaError{code=_TRANSPORT,val=-195}"
    assert out.value is value
    assert (out.topic, out.partition, out.offset, out.step_id) == (TOPIC, PARTITION, OFFSET, STEP_ID)


def test_message_at_the_size_limit_is_parsed() -> None:
    value = b"[" + b" " * (MAX_MESSAGE_BYTES - 2) + b"]"
    out = decode(message(value))
    assert isinstance(out, DeadLetter)
    assert out.reason is DlqReason.NOT_AN_OBJECT  # parsed, not refused for its size


def test_max_future_is_configurable() -> None:
    strict = Decoder(MODELS, max_future=timedelta(0), now=lambda: NOW)
    later = (NOW + timedelta(seconds=1)).isoformat()
    out = strict(message(event(ts=later)))
    assert isinstance(out, DeadLetter) and out.reason is DlqReason.FUTURE_TIMESTAMP
    assert out.step_id == "decode_inference"  # the default step id


def test_reasons_are_metric_labels() -> None:
    values = [reason.value for reason in DlqReason]
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", v) for v in values)


# ----------------------------------------------------------------- dead letter as JSON


@pytest.mark.parametrize(
    ("value", "shown", "encoding"),
    [
        (b'{"ts": 1}', '{"ts": 1}', "utf-8"),
        ("café".encode(), "café", "utf-8"),
        (b"\xff\x00{", "ff007b", "hex"),
        (None, None, None),
    ],
    ids=["utf8", "utf8-non-ascii", "not-utf8-as-hex", "no-value"],
)
def test_dead_letter_to_dict(value: bytes | None, shown: str | None, encoding: str | None) -> None:
    letter = DeadLetter(DlqReason.INVALID_JSON, "detail", STEP_ID, TOPIC, PARTITION, OFFSET, value, b"\xffk")
    document = letter.to_dict()
    assert document == {
        "reason": "invalid_json",
        "detail": "detail",
        "step_id": STEP_ID,
        "topic": TOPIC,
        "partition": PARTITION,
        "offset": OFFSET,
        "key": "\ufffdk",
        "value": shown,
        "value_encoding": encoding,
    }
    assert orjson.loads(orjson.dumps(document)) == document


# ------------------------------------------------------------------------- timestamps


def test_parse_timestamp_keeps_the_instant() -> None:
    a = parse_timestamp("2026-11-27T12:00:00+02:00")
    b = parse_timestamp("2026-11-27T10:00:00Z")
    c = parse_timestamp(int(b.timestamp() * 1000))
    assert a == b == c
    assert a.tzinfo is UTC or a.utcoffset() == timedelta(0)


# ----------------------------------------------------------------------- properties


def _check(raw: RawMessage, out: InferenceEvent | DeadLetter) -> None:
    assert isinstance(out, (InferenceEvent, DeadLetter))
    if isinstance(out, DeadLetter):
        # The catch-all is for bugs; every input here has a named reason.
        assert not out.detail.startswith("unexpected "), out.detail
        assert out.value is raw.value
        assert (out.topic, out.partition, out.offset, out.key, out.step_id) == (
            raw.topic, raw.partition, raw.offset, raw.key, STEP_ID)
        document = out.to_dict()
        restored = orjson.loads(orjson.dumps(document))
        assert restored["reason"] == out.reason.value
        if raw.value is not None:
            kept = restored["value"]
            if restored["value_encoding"] == "hex":
                assert bytes.fromhex(kept) == raw.value
            else:
                assert kept.encode("utf-8") == raw.value
    else:
        assert out.ts.utcoffset() == timedelta(0)
        assert out.ts <= NOW + decode.max_future
        assert out.model in MODELS
        assert out.raw is raw


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=512), key=st.none() | st.binary(max_size=16))
def test_arbitrary_bytes_never_raise(value: bytes, key: bytes | None) -> None:
    raw = RawMessage(value=value, topic=TOPIC, partition=0, offset=1, key=key)
    _check(raw, decode(raw))


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()  # NaN and infinities too: json.dumps writes them as NaN/Infinity
    | st.text(max_size=20)  # may hold lone surrogates, which encode to non-UTF-8 bytes
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
offsets = st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m)))


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` about three times in four, so valid events are reached often, not by luck."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda i: bad if i == 0 else good)


valid_timestamps = (
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=NOW.replace(tzinfo=None), timezones=offsets)
    .map(lambda d: d.isoformat())
    | st.integers(min_value=0, max_value=int(NOW.timestamp() * 1000))
)
odd_timestamps = (
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    # Near datetime.min/max an offset pushes the instant outside the UTC range.
    | st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.sampled_from([datetime.min, datetime.max]), offsets)
    | st.integers(min_value=-(10**17), max_value=10**17)
    | json_values
)
events = st.fixed_dictionaries(
    {
        "ts": mostly(valid_timestamps, odd_timestamps),
        "model": mostly(st.sampled_from(sorted(MODELS)), json_values),
        "features": mostly(st.dictionaries(st.text(max_size=8), scalars, max_size=4), json_values),
    },
    optional={
        "segment": mostly(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3), json_values),
        "prediction": json_values,
        "tenant": json_values,
        "event_id": json_values,
        "embedding": json_values,
    },
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None)
@given(value=mostly(events, json_values))
def test_arbitrary_json_never_raises(value: Any) -> None:
    raw = RawMessage(value=_encode(value), topic=TOPIC, partition=0, offset=1, key=KEY)
    _check(raw, decode(raw))


# --------------------------------------------------------------------- embeddings

EMBEDDING_DIM = 4
embedding_decode = Decoder(
    MODELS, max_future=timedelta(minutes=10), now=lambda: NOW, step_id=STEP_ID,
    embeddings={"fraud": ("text_embedding", EMBEDDING_DIM)},
)


def _b64(values: list[float], dtype: str = "<f4") -> dict[str, str]:
    import base64

    import numpy as np

    return {"dtype": "float32", "b64": base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()}


def fraud_event(embedding: Any) -> bytes:
    body = orjson.loads(event(model="fraud", embedding=_DROP))
    if embedding is not _DROP:
        body["text_embedding"] = embedding
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("embedding", "expected"),
    [
        pytest.param([1, 0.5, -2.25, 0], [1.0, 0.5, -2.25, 0.0], id="json-list"),
        pytest.param(_b64([1.0, 0.5, -2.25, 0.0]), [1.0, 0.5, -2.25, 0.0], id="b64-float32-le"),
        pytest.param([3.4e38, -1e-45, 0.1, 7], [3.4e38, -1e-45, 0.1, 7.0], id="float32-extremes"),
        pytest.param(None, None, id="null-not-sampled"),
        pytest.param(_DROP, None, id="absent-not-sampled"),
    ],
)
def test_embedding_decodes_to_a_float32_vector(embedding: Any, expected: list[float] | None) -> None:
    import pickle

    import numpy as np

    out = embedding_decode(message(fraud_event(embedding)))
    assert isinstance(out, InferenceEvent), out
    if expected is None:
        assert out.embedding is None
        return
    assert out.embedding.dtype == np.float32 and out.embedding.shape == (EMBEDDING_DIM,)
    assert np.array_equal(out.embedding, np.asarray(expected, dtype=np.float32))
    # Small and picklable: Bytewax moves events between workers.
    assert np.array_equal(pickle.loads(pickle.dumps(out.embedding)), out.embedding)
    assert out.embedding.nbytes == 4 * EMBEDDING_DIM


EMBEDDING_CASES = [
    pytest.param([1.0, 2.0, 3.0], DlqReason.WRONG_DIMENSION, "text_embedding must have 4 numbers; got 3", id="short"),
    pytest.param([0.0] * 5, DlqReason.WRONG_DIMENSION, "must have 4 numbers; got 5", id="long"),
    pytest.param([], DlqReason.WRONG_DIMENSION, "got 0", id="empty"),
    pytest.param(_b64([1.0, 2.0]), DlqReason.WRONG_DIMENSION,
                 "text_embedding.b64 must decode to 16 bytes (4 float32); got 8 bytes", id="b64-short"),
    pytest.param(_b64([float("nan"), 0, 0, 0]), DlqReason.NON_FINITE, "text_embedding[0] is not finite", id="b64-nan"),
    pytest.param(_b64([0, 0, float("inf"), 0]), DlqReason.NON_FINITE, "text_embedding[2] is not finite", id="b64-inf"),
    pytest.param([0, 1e39, 0, 0], DlqReason.NON_FINITE, "text_embedding[1] is not finite as float32", id="float32-overflow"),
    pytest.param({"dtype": "float32", "b64": "AAAA*AAA"}, DlqReason.BAD_EMBEDDING,
                 "text_embedding.b64 is not valid base64", id="bad-b64-char"),
    pytest.param({"dtype": "float32", "b64": "AAAAA"}, DlqReason.BAD_EMBEDDING,
                 "text_embedding.b64 is not valid base64", id="bad-b64-padding"),
    pytest.param({"dtype": "float32", "b64": 7}, DlqReason.BAD_EMBEDDING, "must be a base64 string; got int",
                 id="b64-not-text"),
    pytest.param({"dtype": "float64", "b64": "AAAAAAAAAAA="}, DlqReason.BAD_EMBEDDING,
                 "text_embedding.dtype must be one of float32; got 'float64'", id="wrong-dtype"),
    pytest.param({"dtype": "float32", "b64": "AAAAAA==", "shape": [4]}, DlqReason.BAD_EMBEDDING,
                 "must have exactly the keys dtype and b64", id="extra-key"),
    pytest.param({"b64": "AAAAAA=="}, DlqReason.BAD_EMBEDDING, "exactly the keys dtype and b64", id="no-dtype"),
    pytest.param("0.1,0.2,0.3,0.4", DlqReason.WRONG_TYPE, "must be a list of numbers or an object", id="text"),
    pytest.param(0.5, DlqReason.WRONG_TYPE, "got float", id="scalar"),
    pytest.param([0.1, "0.2", 0.3, 0.4], DlqReason.WRONG_TYPE, "text_embedding[1] must be a number; got str",
                 id="string-item"),
    pytest.param([0.1, True, 0.3, 0.4], DlqReason.WRONG_TYPE, "text_embedding[1] must be a number; got bool",
                 id="bool-item"),
    pytest.param([[0.1, 0.2, 0.3, 0.4]], DlqReason.WRONG_TYPE, "text_embedding[0] must be a number; got list",
                 id="nested"),
    pytest.param([0.1, None, 0.3, 0.4], DlqReason.WRONG_TYPE, "got NoneType", id="null-item"),
]


@pytest.mark.parametrize(("embedding", "reason", "detail"), EMBEDDING_CASES)
def test_bad_embedding_becomes_a_dead_letter(embedding: Any, reason: DlqReason, detail: str) -> None:
    value = fraud_event(embedding)
    out = embedding_decode(message(value))
    assert isinstance(out, DeadLetter), out
    assert (out.reason, out.step_id, out.value, out.offset) == (reason, STEP_ID, value, OFFSET)
    assert detail in out.detail, out.detail


def test_embedding_is_checked_only_for_models_with_an_embedding_detector() -> None:
    # credit-risk has no embedding detector: its "embedding" key is kept as sent, unchecked.
    out = embedding_decode(message(event(embedding=[1.0, 2.0, 3.0])))
    assert isinstance(out, InferenceEvent) and out.embedding == [1.0, 2.0, 3.0]
    # fraud reads "text_embedding"; an "embedding" key there is not its embedding.
    body = orjson.loads(fraud_event([1, 2, 3, 4]))
    body["embedding"] = "ignored"
    out = embedding_decode(message(orjson.dumps(body)))
    assert isinstance(out, InferenceEvent) and out.embedding.tolist() == [1.0, 2.0, 3.0, 4.0]


# ------------------------------------------------------------------------- epoch units (ts_unit)

INSTANT = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
_SECONDS = 1795773600  # INSTANT without its fraction


@pytest.mark.parametrize(
    ("unit", "ts", "expected"),
    [
        pytest.param("s", _SECONDS, INSTANT.replace(microsecond=0), id="s"),
        pytest.param("s", _SECONDS + 0.5, INSTANT.replace(microsecond=500000), id="s-float"),
        pytest.param("ms", _SECONDS * 1000 + 123, INSTANT.replace(microsecond=123000), id="ms"),
        pytest.param("us", _SECONDS * 10**6 + 123456, INSTANT, id="us"),
        pytest.param("ns", _SECONDS * 10**9 + 123456789, INSTANT, id="ns-floored-to-the-microsecond"),
    ],
)
def test_ts_unit_reads_epoch_numbers_in_the_models_unit(unit: str, ts: float, expected: datetime) -> None:
    decoder = Decoder(MODELS, now=lambda: NOW, ts_units={"credit-risk": unit})
    out = decoder(message(event(ts=ts)))
    assert isinstance(out, InferenceEvent), out
    assert out.ts == expected
    other = decoder(message(event(ts=ts, model="fraud")))  # fraud keeps milliseconds
    assert (isinstance(other, InferenceEvent) and other.ts == expected) is (unit == "ms")


@pytest.mark.parametrize(
    ("unit", "ts", "reason", "detail"),
    [
        pytest.param("ms", 1795773600, DlqReason.BAD_TIMESTAMP,
                     "ts 1795773600 read as epoch milliseconds of model 'credit-risk' is "
                     "1970-01-21T18:49:33.600000+00:00, before 2000; as epoch seconds it would be "
                     "2026-11-27T10:00:00+00:00: set ts_unit: s on the model", id="seconds-read-as-ms"),
        pytest.param("ms", 1795773600123456, DlqReason.BAD_TIMESTAMP,
                     "as epoch microseconds it would be 2026-11-27T10:00:00.123456+00:00: set ts_unit: us",
                     id="micros-read-as-ms-is-far-future"),
        pytest.param("s", 1795773600123, DlqReason.BAD_TIMESTAMP,
                     "read as epoch seconds of model 'credit-risk' is after year 9999; as epoch milliseconds "
                     "it would be 2026-11-27T10:00:00.123000+00:00: set ts_unit: ms", id="ms-read-as-seconds"),
        pytest.param("ns", 1795773600123, DlqReason.BAD_TIMESTAMP, "set ts_unit: ms", id="ms-read-as-ns"),
        pytest.param("s", 2**63 - 1, DlqReason.BAD_TIMESTAMP, "ts epoch seconds out of range", id="s-int64-max"),
        pytest.param("ns", -(2**63), DlqReason.BAD_TIMESTAMP, "before 2000", id="ns-int64-min"),
        pytest.param("s", 5, DlqReason.BAD_TIMESTAMP, "is 1970-01-01T00:00:05+00:00, before 2000", id="no-unit-fits"),
        pytest.param("s", int((NOW + timedelta(hours=1)).timestamp()), DlqReason.FUTURE_TIMESTAMP,
                     "in the future", id="an-hour-ahead-is-future"),
    ],
)
def test_an_epoch_implausible_for_the_unit_is_a_bad_timestamp(
    unit: str, ts: int, reason: DlqReason, detail: str,
) -> None:
    decoder = Decoder(MODELS, now=lambda: NOW, ts_units={"credit-risk": unit})
    out = decoder(message(event(ts=ts)))
    assert isinstance(out, DeadLetter), out
    assert out.reason is reason
    assert detail in out.detail, out.detail


def test_an_unknown_models_epoch_is_read_in_milliseconds() -> None:
    decoder = Decoder(MODELS, now=lambda: NOW, ts_units={"credit-risk": "s"})
    out = decoder(message(event(ts=1795773600, model="churn")))
    assert isinstance(out, DeadLetter) and out.reason is DlqReason.BAD_TIMESTAMP  # ts is checked first
    assert "as epoch seconds it would be 2026-11-27T10:00:00+00:00" in out.detail
    assert "ts_unit" not in out.detail  # no configured model to set it on
    ok = decoder(message(event(ts=1795773600000, model="churn")))
    assert isinstance(ok, DeadLetter) and ok.reason is DlqReason.UNKNOWN_MODEL


def test_parse_timestamp_accepts_2000_and_names_the_unit() -> None:
    assert parse_timestamp(946684800, "s") == datetime(2000, 1, 1, tzinfo=UTC)
    with pytest.raises(Exception, match="as epoch seconds it would be 2025-11-27T10:00:00"):
        parse_timestamp(1764237600)


# ------------------------------------------------------------------------- NaN and infinity


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_of_a_parquet_row_are_non_finite(literal: bytes) -> None:
    value = event(features={"income": 0.5, "age": 3}).replace(b"0.5", literal)
    parquet = decode(RawMessage(value, "file:events.parquet", 0, 7))
    assert isinstance(parquet, DeadLetter) and parquet.reason is DlqReason.NON_FINITE, parquet
    assert parquet.detail.startswith("features.income is not finite")
    # The same bytes on a JSON topic are not JSON (RFC 8259).
    kafka = decode(message(value))
    assert isinstance(kafka, DeadLetter) and kafka.reason is DlqReason.INVALID_JSON


def test_a_non_finite_prediction_of_a_parquet_row_is_non_finite() -> None:
    value = event(prediction={"score": 0.5}).replace(b"0.5", b"NaN")
    out = decode(RawMessage(value, "file:events.parquet", 0, 7))
    assert isinstance(out, DeadLetter) and out.reason is DlqReason.NON_FINITE
    assert out.detail == "prediction.score is not finite; got nan"


def test_other_invalid_json_of_a_parquet_row_stays_invalid_json() -> None:
    value = event(tenant="x").replace(b'"x"', b'"x" x')
    out = decode(RawMessage(value, "file:events.parquet", 0, 7))
    assert isinstance(out, DeadLetter) and out.reason is DlqReason.INVALID_JSON
