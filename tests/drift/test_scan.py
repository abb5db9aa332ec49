"""The compiled JSON scanner (drift/batch/_scan.c) against msgspec's typed road.

The scanner reads a chunk only when every message has the plain shape; what it reads must be
exactly what the msgspec road reads from the same messages (numbers bit for bit, strings, nulls
and absent fields told apart), and whatever it refuses goes to that road unchanged.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drift.batch.typed_json as typed_json
from drift.batch import BatchDecoder, model_columns
from drift.batch.typed_json import TypedColumns, TypedFields, TypedJson
from drift.events import Decoder
from drift.reference import PredictionColumn, build_reference

RNG = np.random.default_rng(11)
PROFILE = build_reference(
    "p",
    {"x": RNG.normal(size=300), "y": RNG.normal(size=300), "c": [["a", "b"][i % 2] for i in range(300)],
     "score": RNG.uniform(size=300), "label": [["yes", "no"][i % 2] for i in range(300)]},
    {"x": "numeric", "y": "numeric", "c": "categorical"}, {"x": 5, "y": 5}, "test", 300,
    predictions={"prediction.score": PredictionColumn("score", "numeric", 5),
                 "prediction.label": PredictionColumn("label", "categorical", 5)},
)
COHORT = ("tenant", "region", "segment.channel")


def typed() -> TypedJson:
    decoder = BatchDecoder(Decoder(models=frozenset({"p"})), [
        model_columns("p", COHORT, PROFILE, per_event=False, embeddings=False)], min_columnar=1)
    return decoder._typed


def test_the_scanner_is_built_and_used() -> None:
    """The package builds the extension (a compiler is part of the set-up); without it every
    chunk would silently take the slower road."""
    assert typed_json.SCANNER
    assert typed()._scan is not None


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def scan_number(text: str) -> float | None:
    """The scanner's reading of ``text`` as a numeric feature, or None when it refuses it."""
    scan = typed()._scan
    assert scan is not None
    message = ('{"model":"p","features":{"x":' + text + "}}").encode()
    out = scan([message])
    if out is None:
        return None
    floats = np.frombuffer(out[5][1], dtype=np.float64)
    return float(floats[0])  # field x is the first float field


NUMBER_TEXTS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.17e}"),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda v: f"{v:.9g}"),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(0, 30).flatmap(lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places)).map(str),
    st.tuples(st.sampled_from(["", "-"]), st.integers(0, 10**25), st.integers(0, 10**25), st.sampled_from(["e", "E"]),
              st.sampled_from(["", "+", "-"]), st.integers(0, 400))
    .map(lambda t: f"{t[0]}{t[1]}.{t[2]}{t[3]}{t[4]}{t[5]}"),
    st.sampled_from(["-0", "0", "-0.0", "0e0", "1E5", "1e-7", "2.5E+3", "9007199254740993", "-9223372036854775808",
                     "18446744073709551615", "18446744073709551616", "1e308", "1e309", "4.9e-324", "2e-324",
                     "0.1e1", "123456789012345678901234567890", "01", "1.", ".5", "+1", "1e", "--1", "0x10", "1.5e+"]),
)


@settings(max_examples=600, deadline=None)
@given(NUMBER_TEXTS)
def test_numbers_read_as_msgspec_reads_a_float_field(text: str) -> None:
    try:
        expected: float | None = msgspec.json.decode(text.encode(), type=float)
    except msgspec.ValidationError:
        expected = None
    except msgspec.DecodeError:
        expected = None
    got = scan_number(text)
    if expected is None or math.isinf(expected):
        assert got is None  # refused: the msgspec road decides
    else:
        assert got is not None and _bits(got) == _bits(expected), (text, got, expected)


# -- whole events: scanner and msgspec road side by side ------------------------------------

TEXTS = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters='"\\'), max_size=12)
ABSENT = object()


def _value(draw: st.DrawFn, kind: str) -> Any:
    if kind == "number":
        return draw(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**60), 2**60),
                              st.sampled_from([None, ABSENT])))
    return draw(st.one_of(TEXTS, st.sampled_from([None, ABSENT])))


@st.composite
def plain_events(draw: st.DrawFn) -> list[bytes]:
    """Events of the plain shape, with random key order and whitespace; some with a twist
    (an escape, a number category, a repeated key, ...) that the scanner must refuse."""
    out = []
    for i in range(draw(st.integers(1, 30))):
        event: dict[str, Any] = {
            "event_id": draw(st.sampled_from([f"e{i}", None, ABSENT])),
            "ts": draw(st.sampled_from(["2026-11-27T11:00:00Z", 1764241200000, None, ABSENT, -5, "x"])),
            "model": draw(st.sampled_from(["p", "p", "q", None, ABSENT])),
            "model_version": draw(st.sampled_from(["v1", None, ABSENT])),
            "tenant": draw(st.one_of(TEXTS, st.sampled_from([None, ABSENT]))),
            "region": draw(st.sampled_from(["eu", "us", "日本", None, ABSENT])),
            "segment": draw(st.sampled_from([{"channel": "web"}, {"channel": "app", "other": "x"}, {}, {"other": "y"},
                                             None, ABSENT])),
        }
        features = {name: _value(draw, kind) for name, kind in [("x", "number"), ("y", "number"), ("c", "text")]}
        event["features"] = draw(st.sampled_from([{k: v for k, v in features.items() if v is not ABSENT}, None, ABSENT]))
        prediction = {"score": _value(draw, "number"), "label": _value(draw, "text")}
        event["prediction"] = draw(st.sampled_from([{k: v for k, v in prediction.items() if v is not ABSENT},
                                                    None, ABSENT]))
        keys = [k for k, v in event.items() if v is not ABSENT]
        keys = draw(st.permutations(keys))
        separator = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
        text = json.dumps({k: event[k] for k in keys}, separators=separator, ensure_ascii=draw(st.booleans()))
        twist = draw(st.integers(0, 11))
        if twist == 0:
            text = text[:-1] + ',"model":"p"}'  # a repeated key
        elif twist == 1 and '"c"' in text:
            text = text.replace('"c":', '"c":1,"c":', 1) if '"c":' in text else text
        elif twist == 2:
            text = text[:-1] + ',"tenant":"a\\"b"}' if '"tenant"' not in text else text  # an escape
        elif twist == 3:
            text = " \n" + text + " \r\n"
        out.append(text.encode())
    return out


def _fields(a: TypedFields) -> Any:
    return (a.present.tolist(), sorted(a.floats.items()), repr(a.values.tolist()), a.null.tolist(), a.absent.tolist(),
            {k: (v[0].to_pylist() if isinstance(v[0], pa.Array) else repr(list(v[0])), *(x.tolist() for x in v[1:]))
             for k, v in sorted(a.others.items())})


def columns(read: TypedColumns) -> Any:
    return (read.parsed.tolist(), {k: v.to_pylist() for k, v in read.envelope.items()},
            [a.to_pylist() for a in read.ts], {k: v.to_pylist() for k, v in read.segment.items()},
            _fields(read.features), _fields(read.prediction))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_events(), st.integers(1, 8))
def test_the_scanner_reads_what_msgspec_reads(values: list[bytes], chunk: int) -> None:
    reader = typed()
    scan = reader._scan
    assert scan is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typed_json, "CHUNK", chunk)
        both = columns(reader.read(values))
        reader._scan = None
        msgspec_only = columns(reader.read(values))
    assert both == msgspec_only
    for value in values:  # the scanner reads a message alone exactly when it is plain and msgspec takes it
        if scan([value]) is not None:
            reader._scan = None
            assert reader.read([value]).parsed.tolist() == [0]


def test_plain_events_are_read_by_the_scanner() -> None:
    """Not every chunk falls back: the usual events are scanned (the test above could pass on
    msgspec alone otherwise)."""
    values = [json.dumps({"event_id": f"e{i}", "ts": "2026-11-27T11:00:00Z", "model": "p", "tenant": "acme",
                          "region": "eu", "segment": {"channel": "web"},
                          "features": {"x": i * 0.5, "y": None, "c": "a"}, "prediction": {"score": 0.25}}).encode()
              for i in range(20)]
    scan = typed()._scan
    assert scan is not None and scan(values) is not None
    refused = [
        b'{"model":"p","features":{"c":1}}',  # a number category: msgspec's road
        b'{"model":"p","tenant":"a\\u0062"}',  # an escape
        b'{"model":"p","model":"p"}',  # a repeated key
        b'{"model":"p","region":"\xff"}',  # not UTF-8
        b'{"model":"p","region":"\xed\xa0\x80"}',  # a surrogate in UTF-8
        b'{"model":"p","features":{"x":1e400}}',  # overflow
        b'{"model":"p","ts":1.5}',
        b'{"model":"p","ts":9223372036854775808}',
        b'{"model":"p","note":1}',
        b'{"model":"p","segment":{"channel":1}}',
        b'{"model":"p"} x',
        b'[]',
        b'',
    ]
    for value in refused:
        assert scan([value]) is None, value
        assert scan([*values, value]) is None, value


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.binary(min_size=1, max_size=3))
def test_mutated_bytes_are_refused_or_read_like_msgspec(at: int, noise: bytes) -> None:
    base = json.dumps({"event_id": "e1", "ts": 1764241200000, "model": "p", "tenant": "t", "region": "eu",
                       "segment": {"channel": "web"}, "features": {"x": 1.25, "y": -3, "c": "b"},
                       "prediction": {"score": 0.5, "label": "yes"}}).encode()
    at = min(at, len(base))
    value = base[:at] + noise + base[at + len(noise):]
    reader = typed()
    scan = reader._scan
    assert scan is not None
    scanned = columns(reader.read([value]))
    reader._scan = None
    assert scanned == columns(reader.read([value]))
