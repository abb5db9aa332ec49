"""Nasty input, to the decoder and to the whole flow: each message ends decoded or in the DLQ.

A corpus of hostile messages, each with the exact :class:`DlqReason` it must get
(``None``: it decodes). The decoder is checked on each; the flow is run on the
corpus mixed into the demo's stream, under one and two workers, and must finish,
account for every message, count the DLQ in Prometheus as it wrote it, and find
the same PSI for the demo's cohorts as without the corpus. A hypothesis test runs
the flow on random mixes.
"""

from __future__ import annotations

import base64
import math
import pickle
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from bytewax.testing import TestingSource, cluster_main, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from connectors.memory import ListSink
from drift import demo
from drift.config import Config, load_config
from drift.events import MAX_MESSAGE_BYTES, MAX_NESTING, DeadLetter, Decoder, DlqReason, InferenceEvent, RawMessage
from drift.findings import Finding
from drift.reference import ReferenceProfile
from flows.pipeline import Outputs, WindowReport, build_flow
from flows.runner import load_profiles

Entry = tuple[str, bytes, DlqReason | None]

SEED = 20261127
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
"""The wall clock of every run: one hour after the demo's last event."""
TS = "2026-11-02T09:00:00Z"
"""Inside the demo's stream, so decoded corpus events are neither late nor future."""
TS_MS = int(datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp() * 1000)
MODEL = "credit-risk"
DOC_DIM = 32
MAX_FUTURE = timedelta(minutes=10)
MIB = 1024 * 1024
TOPIC = "inference-events"

_DROP = object()
_RAW = "@RAW@"
BASE_FEATURES: dict[str, Any] = {"age": 42, "income": 5100.0, "country": "DE"}

DETAILS = {
    "bom-prefixed-valid-json": "BOM",
    "nested-600-in-prediction": f"prediction nests deeper than {MAX_NESTING} levels",
    "nested-1000-in-embedding": f"embedding nests deeper than {MAX_NESTING} levels",
    "nested-10000-in-feature": "depth limit exceeded",
    "over-size-limit": f"message is {MAX_MESSAGE_BYTES + 1} bytes",
    "model-1mb-name": "not configured",
}
"""Entries whose dead letter must also say this (a substring of ``detail``)."""


def _body(name: str, **changes: Any) -> dict[str, Any]:
    """A valid event in a cohort of its own (tenant ``fuzz-<name>``), with fields changed or dropped."""
    body: dict[str, Any] = {
        "event_id": f"fuzz-{name}",
        "ts": TS,
        "model": MODEL,
        "model_version": "fuzz",
        "tenant": f"fuzz-{name}",
        "region": "fuzz",
        "route": "/score",
        "segment": {"channel": "mobile"},
        "entity_id": "cust-fuzz",
        "features": dict(BASE_FEATURES),
        "prediction": {"score": 0.5, "label": "approve"},
        "embedding": [0.01, -0.2],
    }
    for key, value in changes.items():
        if value is _DROP:
            del body[key]
        else:
            body[key] = value
    return body


def _event(name: str, **changes: Any) -> bytes:
    return orjson.dumps(_body(name, **changes))


def _doc_event(name: str, embedding: Any) -> bytes:
    """A ``doc-classifier`` event in a cohort of its own, with ``embedding`` (or none: ``_DROP``)."""
    body: dict[str, Any] = {
        "event_id": f"fuzz-{name}", "ts": TS, "model": demo.DOC_MODEL, "tenant": f"fuzz-{name}",
        "features": {"n_tokens": 120, "language": "en"}, "embedding": embedding,
    }
    if embedding is _DROP:
        del body["embedding"]
    return orjson.dumps(body)


def _b64(values: list[float]) -> dict[str, str]:
    return {"dtype": "float32", "b64": base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()}


def _with_feature(name: str, feature: str, value: Any) -> bytes:
    return _event(name, features={**BASE_FEATURES, feature: value})


def _splice(body: dict[str, Any], raw: bytes) -> bytes:
    """``body`` as JSON with the one ``"@RAW@"`` string replaced by ``raw`` (literals JSON cannot express)."""
    text = orjson.dumps(body)
    assert text.count(orjson.dumps(_RAW)) == 1
    return text.replace(orjson.dumps(_RAW), raw)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def corpus(rng: np.random.Generator) -> list[Entry]:
    """Hostile messages as ``(name, bytes, expected reason or None for decoded)``.

    Every entry that decodes is a ``credit-risk`` event in a cohort of its own
    (tenant ``fuzz-<name>``, model version ``fuzz``), so in the flow it never
    lands in a demo cohort and never makes another entry late.
    """
    entries: list[Entry] = []

    def add(name: str, data: bytes, reason: DlqReason | None) -> None:
        assert name not in {e[0] for e in entries}, name
        entries.append((name, data, reason))

    # -- random bytes: 0xFF is never UTF-8; '#' never starts JSON
    for i in range(6):
        add(f"random-bytes-{i}", b"\xff" + rng.bytes(int(rng.integers(1, 4096))), DlqReason.NOT_UTF8)
    for i in range(4):
        text = rng.integers(0x20, 0x7F, size=int(rng.integers(1, 2048)), dtype=np.uint8).tobytes()
        add(f"random-ascii-{i}", b"#" + text, DlqReason.INVALID_JSON)
    valid = _event("spliced")
    for i in range(4):
        cut = int(rng.integers(1, len(valid)))
        add(f"valid-prefix-then-random-bytes-{i}", valid[:cut] + b"\xfe" + rng.bytes(64), DlqReason.NOT_UTF8)

    # -- truncated JSON: every proper prefix of an object is invalid
    full = _event("truncated")
    assert full.isascii()
    cuts = {1, 2, len(full) // 2, len(full) - 2, len(full) - 1} | {int(c) for c in rng.integers(1, len(full), 25)}
    for cut in sorted(cuts):
        add(f"truncated-at-{cut}", full[:cut], DlqReason.INVALID_JSON)
    accented = _event("truncated-utf8", tenant="fuzz-café")
    cut = accented.index("é".encode()) + 1
    add("truncated-inside-a-utf8-character", accented[:cut], DlqReason.NOT_UTF8)

    # -- deep nesting: the parser stops at 1024 levels; the decoder at MAX_NESTING in kept values
    add("nested-10000-top-level-arrays", _nested(10_000), DlqReason.INVALID_JSON)
    add("nested-10000-top-level-objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, DlqReason.INVALID_JSON)
    add("nested-10000-in-feature",
        _splice(_body("n", features={**BASE_FEATURES, "age": _RAW}), _nested(10_000)), DlqReason.INVALID_JSON)
    add("nested-10000-in-prediction",
        _splice(_body("n", prediction={"x": _RAW}), _nested(10_000)), DlqReason.INVALID_JSON)
    add("nested-1000-in-feature",
        _splice(_body("n", features={**BASE_FEATURES, "age": _RAW}), _nested(1000)), DlqReason.WRONG_TYPE)
    add("nested-600-in-prediction",
        _splice(_body("n", prediction={"x": _RAW}), _nested(600)), DlqReason.INVALID_JSON)
    add("nested-1000-in-embedding", _splice(_body("n", embedding=_RAW), _nested(1000)), DlqReason.INVALID_JSON)
    add("nested-at-limit-in-embedding",
        _splice(_body("nested-at-limit-in-embedding", embedding=_RAW), _nested(MAX_NESTING)), None)
    add("nested-past-limit-in-embedding",
        _splice(_body("n", embedding=_RAW), _nested(MAX_NESTING + 1)), DlqReason.INVALID_JSON)
    add("nested-past-limit-in-prediction",
        _splice(_body("n", prediction={"x": _RAW}), _nested(MAX_NESTING)), DlqReason.INVALID_JSON)

    # -- huge strings
    add("categorical-1mb-value", _with_feature("categorical-1mb-value", "country", "x" * MIB), None)
    add("numeric-1mb-digits-as-text", _with_feature("numeric-1mb-digits-as-text", "age", "9" * MIB), None)
    add("feature-1mb-name", _event("feature-1mb-name", features={**BASE_FEATURES, "f" * MIB: 1}), None)
    add("event-id-1mb", _event("event-id-1mb", event_id="e" * MIB), None)
    add("model-1mb-name", _event("m", model="m" * MIB), DlqReason.UNKNOWN_MODEL)
    add("ts-1mb", _event("t", ts=TS + "x" * MIB), DlqReason.BAD_TIMESTAMP)

    # -- huge arrays and objects
    embedding = [round(float(v), 6) for v in rng.standard_normal(200_000)]
    add("embedding-200k-numbers", _event("embedding-200k-numbers", embedding=embedding), None)
    add("feature-200k-array", _with_feature("a", "income", embedding), DlqReason.WRONG_TYPE)
    add("features-10k-extra-keys",
        _event("features-10k-extra-keys", features={**BASE_FEATURES, **{f"x{i}": i for i in range(10_000)}}), None)
    add("segment-10k-keys", _event("segment-10k-keys", segment={f"s{i}": "v" for i in range(10_000)}), None)

    # -- wrong types, field by field
    for i, wrong in enumerate([None, [TS], {"ts": TS}]):
        add(f"ts-wrong-type-{i}", _event("t", ts=wrong), DlqReason.WRONG_TYPE)
    for i, bad in enumerate([True, False, "", "yesterday", "2026-11-02T09:00:00"]):
        add(f"ts-bad-value-{i}", _event("t", ts=bad), DlqReason.BAD_TIMESTAMP)
    for i, model in enumerate([7, 1.5, True, [MODEL], {"name": MODEL}]):
        add(f"model-wrong-type-{i}", _event("m", model=model), DlqReason.WRONG_TYPE)
    add("model-null", _event("m", model=None), DlqReason.MISSING_FIELD)
    add("model-missing", _event("m", model=_DROP), DlqReason.MISSING_FIELD)
    for i, model in enumerate(["", "fraud", "Credit-Risk", MODEL + " ", MODEL + "\u0000"]):
        add(f"model-unknown-{i}", _event("m", model=model), DlqReason.UNKNOWN_MODEL)
    for i, features in enumerate([None, [], [BASE_FEATURES], "age=42", 42, True]):
        add(f"features-wrong-type-{i}", _event("f", features=features), DlqReason.WRONG_TYPE)
    add("features-missing", _event("f", features=_DROP), DlqReason.MISSING_FIELD)
    add("features-empty", _event("features-empty", features={}), None)
    for feature in BASE_FEATURES:
        add(f"feature-{feature}-list", _with_feature("f", feature, [1]), DlqReason.WRONG_TYPE)
        add(f"feature-{feature}-object", _with_feature("f", feature, {"v": 1}), DlqReason.WRONG_TYPE)
        add(f"feature-{feature}-null", _with_feature(f"feature-{feature}-null", feature, None), None)
    # Scalars of the other kind decode; the quality detector counts them as type mismatches.
    add("feature-age-text", _with_feature("feature-age-text", "age", "forty"), None)
    add("feature-income-bool", _with_feature("feature-income-bool", "income", True), None)
    add("feature-country-number", _with_feature("feature-country-number", "country", 42), None)
    add("feature-missing", _event("feature-missing", features={"age": 42}), None)
    for i, prediction in enumerate([0.83, "approve", [0.83], True, 0]):
        add(f"prediction-wrong-type-{i}", _event("p", prediction=prediction), DlqReason.WRONG_TYPE)
    add("prediction-null", _event("prediction-null", prediction=None), None)
    add("prediction-fields-any-type", _event("prediction-fields-any-type", prediction={"score": "high"}), None)
    segments: list[Any] = [["mobile"], "mobile", 1, {"channel": 1}, {"channel": None}, {"channel": {"a": "b"}}]
    for i, segment in enumerate(segments):
        add(f"segment-wrong-type-{i}", _event("s", segment=segment), DlqReason.WRONG_TYPE)
    add("segment-null", _event("segment-null", segment=None), None)
    add("segment-empty", _event("segment-empty", segment={}), None)
    for name in ("event_id", "model_version", "tenant", "region", "route", "entity_id"):
        for i, value in enumerate([1.5, True, [], {}, ["x"]]):
            add(f"{name}-wrong-type-{i}", _event("w", **{name: value}), DlqReason.WRONG_TYPE)
        add(f"{name}-integer", _event(f"{name}-integer", **{name: 42}), None)
        add(f"{name}-null", _event(f"{name}-null", **{name: None}), None)
    # Not validated for credit-risk: none of its detectors reads the embedding.
    add("embedding-text", _event("embedding-text", embedding="0.1,0.2"), None)
    add("embedding-b64-object",
        _event("embedding-b64-object", embedding={"dtype": "float32", "b64": "AAAAAA=="}), None)
    # doc-classifier's embedding detector makes its embeddings checked: 32 float32 values.
    ok32 = [0.01] * DOC_DIM
    add("doc-embedding-list", _doc_event("doc-embedding-list", ok32), None)
    add("doc-embedding-b64", _doc_event("doc-embedding-b64", _b64([0.5] * DOC_DIM)), None)
    add("doc-embedding-absent", _doc_event("doc-embedding-absent", _DROP), None)
    add("doc-embedding-null", _doc_event("doc-embedding-null", None), None)
    add("doc-embedding-short", _doc_event("d", ok32[:-1]), DlqReason.WRONG_DIMENSION)
    add("doc-embedding-b64-short", _doc_event("d", _b64([0.5] * (DOC_DIM - 1))), DlqReason.WRONG_DIMENSION)
    add("doc-embedding-b64-nan", _doc_event("d", _b64([float("nan")] * DOC_DIM)), DlqReason.NON_FINITE)
    add("doc-embedding-over-float32", _doc_event("d", [1e39] * DOC_DIM), DlqReason.NON_FINITE)
    add("doc-embedding-bad-b64", _doc_event("d", {"dtype": "float32", "b64": "not base64!"}), DlqReason.BAD_EMBEDDING)
    add("doc-embedding-float64", _doc_event("d", {"dtype": "float64", "b64": "AAAAAA=="}), DlqReason.BAD_EMBEDDING)
    add("doc-embedding-text", _doc_event("d", "0.1,0.2"), DlqReason.WRONG_TYPE)
    add("doc-embedding-strings", _doc_event("d", ["0.1"] * DOC_DIM), DlqReason.WRONG_TYPE)
    add("doc-embedding-nested", _doc_event("d", [ok32]), DlqReason.WRONG_TYPE)

    # -- NaN and infinities are not JSON (RFC 8259), nor is a number that overflows a double
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"nan", b"1e999", b"-1e999"):
        add(f"feature-literal-{literal.decode()}",
            _splice(_body("l", features={**BASE_FEATURES, "income": _RAW}), literal), DlqReason.INVALID_JSON)
    add("ts-literal-NaN", _splice(_body("l", ts=_RAW), b"NaN"), DlqReason.INVALID_JSON)
    add("prediction-score-Infinity",
        _splice(_body("l", prediction={"score": _RAW}), b"Infinity"), DlqReason.INVALID_JSON)

    # -- integers past 64 bits: the parser turns them into doubles, or refuses them when infinite
    add("feature-2^64", _splice(_body("feature-2^64", features={**BASE_FEATURES, "age": _RAW}), b"%d" % 2**64), None)
    add("feature-u64-max",
        _splice(_body("feature-u64-max", features={**BASE_FEATURES, "age": _RAW}), b"%d" % (2**64 - 1)), None)
    add("feature-below-i64-min",
        _splice(_body("feature-below-i64-min", features={**BASE_FEATURES, "age": _RAW}), b"%d" % (-(2**63) - 1)),
        None)
    add("feature-400-digit-integer",
        _splice(_body("l", features={**BASE_FEATURES, "age": _RAW}), b"1" + b"0" * 400), DlqReason.INVALID_JSON)
    add("ts-2^64", _splice(_body("t", ts=_RAW), b"%d" % 2**64), DlqReason.BAD_TIMESTAMP)
    add("ts-i64-max", _event("t", ts=2**63 - 1), DlqReason.BAD_TIMESTAMP)
    add("ts-i64-min", _event("t", ts=-(2**63)), DlqReason.BAD_TIMESTAMP)
    add("event-id-2^64", _splice(_body("e", event_id=_RAW), b"%d" % 2**64), DlqReason.WRONG_TYPE)
    add("event-id-u64-max", _splice(_body("event-id-u64-max", event_id=_RAW), b"%d" % (2**64 - 1)), None)

    # -- timestamps: negative, far future, and the accepted forms
    add("ts-epoch-ms-negative", _event("t", ts=-1), DlqReason.BAD_TIMESTAMP)
    add("ts-epoch-ms-negative-large", _event("t", ts=-TS_MS), DlqReason.BAD_TIMESTAMP)
    add("ts-rfc3339-negative-year", _event("t", ts="-2026-11-02T09:00:00Z"), DlqReason.BAD_TIMESTAMP)
    add("ts-rfc3339-year-10000", _event("t", ts="10000-01-01T00:00:00Z"), DlqReason.BAD_TIMESTAMP)
    add("ts-rfc3339-far-future", _event("t", ts="2999-01-01T00:00:00Z"), DlqReason.FUTURE_TIMESTAMP)
    add("ts-rfc3339-year-9999", _event("t", ts="9999-12-31T23:59:59Z"), DlqReason.FUTURE_TIMESTAMP)
    add("ts-rfc3339-just-too-far", _event("t", ts=(NOW + MAX_FUTURE + timedelta(seconds=1)).isoformat()),
        DlqReason.FUTURE_TIMESTAMP)
    add("ts-epoch-ms-far-future", _event("t", ts=32503680000000), DlqReason.FUTURE_TIMESTAMP)  # year 3000
    add("ts-epoch-ms-last", _event("t", ts=253402300799999), DlqReason.FUTURE_TIMESTAMP)
    add("ts-epoch-ms-past-9999", _event("t", ts=253402300800000), DlqReason.BAD_TIMESTAMP)
    add("ts-epoch-ms", _event("ts-epoch-ms", ts=TS_MS), None)
    add("ts-epoch-ms-float", _event("ts-epoch-ms-float", ts=TS_MS + 0.5), None)
    add("ts-epoch-zero", _event("t", ts=0), DlqReason.BAD_TIMESTAMP)  # before 2000: a wrong unit, most likely
    add("ts-rfc3339-offset", _event("ts-rfc3339-offset", ts="2026-11-02T10:00:00+01:00"), None)
    add("ts-rfc3339-nanoseconds", _event("ts-rfc3339-nanoseconds", ts="2026-11-02T09:00:00.123456789Z"), None)
    # RFC 3339 has no epoch bound, unlike epoch milliseconds.
    add("ts-rfc3339-before-1970", _event("ts-rfc3339-before-1970", ts="1969-12-31T23:59:59Z"), None)
    add("ts-near-future", _event("ts-near-future", ts=(NOW + MAX_FUTURE).isoformat()), None)

    # -- not UTF-8
    add("lone-continuation-byte", _splice(_body("u", tenant=_RAW), b'"fuzz-\x80"'), DlqReason.NOT_UTF8)
    add("overlong-slash", _splice(_body("u", tenant=_RAW), b'"\xc0\xaf"'), DlqReason.NOT_UTF8)
    add("overlong-nul", _splice(_body("u", features={**BASE_FEATURES, "country": _RAW}), b'"\xc0\x80"'),
        DlqReason.NOT_UTF8)
    add("overlong-three-bytes", _splice(_body("u", tenant=_RAW), b'"\xe0\x80\xaf"'), DlqReason.NOT_UTF8)
    add("utf8-encoded-surrogate", _splice(_body("u", tenant=_RAW), b'"\xed\xa0\x80"'), DlqReason.NOT_UTF8)
    add("latin-1", _event("u", tenant="fuzz-café").decode().encode("latin-1"), DlqReason.NOT_UTF8)
    add("utf-16-with-bom", _event("u").decode().encode("utf-16"), DlqReason.NOT_UTF8)
    add("utf-16-be-with-bom", b"\xfe\xff" + _event("u").decode().encode("utf-16-be"), DlqReason.NOT_UTF8)
    # ASCII in UTF-16 without a BOM is valid UTF-8 (full of NULs), just not JSON.
    add("utf-16-le-without-bom", _event("u").decode().encode("utf-16-le"), DlqReason.INVALID_JSON)
    add("escaped-lone-surrogate", _splice(_body("u", tenant=_RAW), b'"\\ud800"'), DlqReason.INVALID_JSON)
    add("escaped-nul-in-tenant", _event("escaped-nul-in-tenant", tenant="fuzz-\u0000-nul"), None)
    add("non-ascii-everywhere", _event("non-ascii-everywhere", tenant="fuzz-ü-東京-🚀",
                                       features={**BASE_FEATURES, "country": "Ελλάδα"}), None)

    # -- empty and whitespace (whitespace is a message, just not JSON)
    add("empty", b"", DlqReason.EMPTY)
    add("whitespace-only", b" \t\r\n ", DlqReason.INVALID_JSON)
    add("newline-only", b"\n", DlqReason.INVALID_JSON)

    # -- sizes: 5 MB decodes; the limit is inclusive; one byte more is refused before parsing
    big = _with_feature("categorical-5mb-value", "country", "x" * (5 * MIB))
    add("categorical-5mb-value", big, None)
    scores = {f"shap_{i}": round(float(v), 6) for i, v in enumerate(rng.standard_normal(300_000))}
    big = _event("prediction-5mb-object", prediction={"score": 0.5, "label": "approve", **scores})
    assert 5 * MIB <= len(big) < MAX_MESSAGE_BYTES, len(big)
    add("prediction-5mb-object", big, None)
    at_limit = _event("at-size-limit")
    at_limit = at_limit[:-1] + b" " * (MAX_MESSAGE_BYTES - len(at_limit)) + b"}"
    assert len(at_limit) == MAX_MESSAGE_BYTES
    add("at-size-limit", at_limit, None)
    over = _event("o")
    over = over[:-1] + b" " * (MAX_MESSAGE_BYTES + 1 - len(over)) + b"}"
    add("over-size-limit", over, DlqReason.TOO_LARGE)
    add("arrow-stream-garbage", b"\xff\xff\xff\xff" + rng.bytes(200), DlqReason.BAD_ARROW)
    add("over-size-limit-not-utf8", b"\xff" * (MAX_MESSAGE_BYTES + 1), DlqReason.TOO_LARGE)

    # -- duplicate keys: the last one wins, as in the parser (and Python's json)
    add("duplicate-model-last-configured",
        _event("duplicate-model-last-configured", model="fraud")[:-1] + b',"model":"credit-risk"}', None)
    add("duplicate-model-last-unknown", _event("d")[:-1] + b',"model":"fraud"}', DlqReason.UNKNOWN_MODEL)
    add("duplicate-ts-last-bad", _event("d")[:-1] + b',"ts":"yesterday"}', DlqReason.BAD_TIMESTAMP)
    add("duplicate-feature-last-number",
        _splice(_body("duplicate-feature-last-number", features=_RAW), b'{"age":[1],"age":30,"country":"DE"}'),
        None)

    # -- not an object at the top level
    for name, text in [("string", b'"event"'), ("number", b"42"), ("negative-float", b"-1.5e3"), ("null", b"null"),
                       ("true", b"true"), ("array", b"[]"), ("array-of-events", b"[" + _event("a") + b"]")]:
        add(f"top-level-{name}", text, DlqReason.NOT_AN_OBJECT)

    # -- framing: a BOM is refused (RFC 8259 forbids sending one; the bytes stay in the DLQ),
    # trailing content is refused, trailing whitespace is fine
    add("bom-prefixed-valid-json", b"\xef\xbb\xbf" + _event("b"), DlqReason.INVALID_JSON)
    add("trailing-garbage", _event("g") + b" x", DlqReason.INVALID_JSON)
    add("trailing-nul", _event("g") + b"\x00", DlqReason.INVALID_JSON)
    add("two-events-in-one-message", _event("g") + b"\n" + _event("g"), DlqReason.INVALID_JSON)
    add("surrounding-whitespace", b" \n" + _event("surrounding-whitespace") + b"\r\n", None)
    return entries


@cache
def default_corpus() -> tuple[Entry, ...]:
    return tuple(corpus(np.random.default_rng(SEED)))


# ------------------------------------------------------------------------------ decoder


decode = Decoder(frozenset({MODEL, demo.DOC_MODEL}), max_future=MAX_FUTURE, now=lambda: NOW,
                 embeddings={demo.DOC_MODEL: ("embedding", DOC_DIM)})


@pytest.mark.parametrize(("name", "value", "reason"), default_corpus(), ids=[e[0] for e in default_corpus()])
def test_decoder_on_the_corpus(name: str, value: bytes, reason: DlqReason | None) -> None:
    raw = RawMessage(value=value, topic=TOPIC, partition=2, offset=1234, key=b"k")
    out = decode(raw)
    if reason is None:
        if isinstance(out, DeadLetter):
            pytest.fail(f"{name} went to the DLQ: {out.reason.value}: {out.detail[:200]}")
        assert isinstance(out, InferenceEvent) and out.raw is raw and out.model in (MODEL, demo.DOC_MODEL)
        # What decodes must travel: Bytewax pickles events between processes and into snapshots.
        again = pickle.loads(pickle.dumps(out))
        assert again.features == out.features
        if out.model == demo.DOC_MODEL and out.embedding is not None:
            assert out.embedding.dtype == np.float32 and out.embedding.shape == (DOC_DIM,)
            assert np.array_equal(again.embedding, out.embedding)
        return
    assert isinstance(out, DeadLetter), f"{name} decoded"
    assert out.reason is reason, out.detail[:200]
    assert not out.detail.startswith("unexpected "), out.detail[:200]
    assert DETAILS.get(name, "") in out.detail
    assert out.value is value
    assert (out.topic, out.partition, out.offset, out.key, out.step_id) == (TOPIC, 2, 1234, b"k", "decode_inference")
    assert len(out.detail) < 2000, "a detail must not copy a huge value"
    orjson.dumps(out.to_dict())


def test_corpus_covers_every_decoder_reason() -> None:
    reasons = Counter(reason for _, _, reason in default_corpus())
    flow_only = {DlqReason.LATE, DlqReason.KAFKA_ERROR}  # not reachable from bytes
    # Only the wire-format decoder (events.format: avro, protobuf) gives these: tests/drift/test_wire*.py.
    wire_only = {DlqReason.UNKNOWN_SCHEMA, DlqReason.BAD_AVRO, DlqReason.BAD_PROTOBUF}
    assert set(DlqReason) - flow_only - wire_only <= set(reasons)
    assert reasons[None] >= 40


# --------------------------------------------------------------------------------- flow


@dataclass(frozen=True)
class Setup:
    config: Config
    profiles: dict[str, ReferenceProfile]
    demo_lines: list[bytes]
    baseline: Run


@dataclass(frozen=True)
class Run:
    windows: list[WindowReport]
    findings: list[Finding]
    dlq: list[DeadLetter]
    dlq_deltas: dict[tuple[str, str], float]
    step_ids: frozenset[str]


def _step_ids(config: Config) -> frozenset[str]:
    return frozenset({"decode_inference", "cohort_windows"})  # late events: the windows step


def _dlq_counter(step_ids: frozenset[str]) -> dict[tuple[str, str], float]:
    return {
        (step, reason.value): REGISTRY.get_sample_value("drift_dlq_total", {"step_id": step, "reason": reason.value})
        or 0.0
        for step in step_ids for reason in DlqReason
    }


def _run(setup_config: Config, profiles: dict[str, ReferenceProfile], lines: list[bytes], workers: int) -> Run:
    raw = [RawMessage(value=line, topic=TOPIC, partition=0, offset=i) for i, line in enumerate(lines)]
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), windows=ListSink())
    # Items are batches of messages, as Kafka and file sources deliver them.
    batches = [raw[i:i + 256] for i in range(0, len(raw), 256)]
    flow = build_flow(setup_config, profiles, TestingSource(batches), outputs, now=lambda: NOW)
    step_ids = _step_ids(setup_config)
    before = _dlq_counter(step_ids)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=workers)
    after = _dlq_counter(step_ids)
    return Run(
        windows=list(outputs.windows.items),  # type: ignore[union-attr]
        findings=list(outputs.findings.items),  # type: ignore[attr-defined]
        dlq=list(outputs.dlq.items),  # type: ignore[attr-defined]
        dlq_deltas={key: after[key] - before[key] for key in after},
        step_ids=step_ids,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    workspace: Path = tmp_path_factory.mktemp("fuzz")
    (workspace / "drift.yaml").write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(workspace)
    config = load_config(workspace / "drift.yaml")
    assert config.events.max_future == MAX_FUTURE and MODEL in {m.name for m in config.models}
    profiles = load_profiles(config)
    lines = demo.events().lines
    return Setup(config, profiles, lines, _run(config, profiles, lines, workers=1))


def _psi(run: Run, cohorts: set[str]) -> set[tuple[str, datetime, str | None, str, str]]:
    return {
        (f.cohort.key, f.window.start, f.feature, repr(round(f.value, 9)), f.severity.value)
        for f in run.findings if f.detector == "psi" and f.cohort.key in cohorts
    }


def _check_accounting(run: Run, lines: list[bytes], expected: dict[int, DlqReason | None]) -> None:
    """Every message is in a window or the DLQ, the corpus ones as expected, and the counter agrees."""
    assert sum(w.n_events for w in run.windows) + len(run.dlq) == len(lines)
    by_offset = {letter.offset: letter for letter in run.dlq}
    assert len(by_offset) == len(run.dlq), "a message went to the DLQ twice"
    for letter in run.dlq:
        assert letter.value is lines[letter.offset] and letter.topic == TOPIC and letter.partition == 0
    for offset, reason in expected.items():
        got = by_offset.get(offset)
        assert (got.reason if got else None) is reason, (offset, got and got.detail[:200])
    assert {letter.step_id for letter in run.dlq} <= run.step_ids
    written = Counter((letter.step_id, letter.reason.value) for letter in run.dlq)
    assert run.dlq_deltas == {key: float(written[key]) for key in run.dlq_deltas}


@pytest.mark.parametrize("workers", [1, 2])
def test_flow_on_the_corpus_mixed_into_the_demo(setup: Setup, workers: int) -> None:
    entries = default_corpus()
    rng = np.random.default_rng(SEED + workers)
    at = np.sort(rng.integers(0, len(setup.demo_lines) + 1, len(entries)))
    order = rng.permutation(len(entries))
    lines: list[bytes] = []
    corpus_reason: dict[int, DlqReason | None] = {}
    demo_offset: dict[int, int] = {}
    position = 0
    for i, line in enumerate(setup.demo_lines + [b""]):
        while position < len(entries) and at[position] == i:
            corpus_reason[len(lines)] = entries[order[position]][2]
            lines.append(entries[order[position]][1])
            position += 1
        if i < len(setup.demo_lines):
            demo_offset[len(lines)] = i
            lines.append(line)
    assert len(lines) == len(setup.demo_lines) + len(entries)

    run = _run(setup.config, setup.profiles, lines, workers)

    baseline_reason = {letter.offset: letter.reason for letter in setup.baseline.dlq}
    expected = corpus_reason | {offset: baseline_reason.get(i) for offset, i in demo_offset.items()}
    _check_accounting(run, lines, expected)
    assert Counter(d.reason for d in run.dlq) == (
        Counter(d.reason for d in setup.baseline.dlq)
        + Counter(reason for reason in corpus_reason.values() if reason is not None)
    )
    # The demo's cohorts see exactly their own events, so their PSI does not move.
    cohorts = {w.cohort.key for w in setup.baseline.windows}
    windows = sorted((w.cohort.key, w.window.start, w.n_events) for w in run.windows if w.cohort.key in cohorts)
    assert windows == sorted((w.cohort.key, w.window.start, w.n_events) for w in setup.baseline.windows)
    psi = _psi(setup.baseline, cohorts)
    assert psi and _psi(run, cohorts) == psi
    assert all(not math.isnan(f.value) for f in run.findings if f.cohort.key in cohorts)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    mix=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=10**6)), min_size=1, max_size=60,
    ),
    workers=st.sampled_from([1, 2]),
)
def test_flow_on_random_mixes(setup: Setup, mix: list[tuple[bool, int]], workers: int) -> None:
    entries = default_corpus()
    lines: list[bytes] = []
    expected: dict[int, DlqReason | None] = {}
    for from_corpus, index in mix:
        if from_corpus:
            _, value, reason = entries[index % len(entries)]
            expected[len(lines)] = reason
            lines.append(value)
        else:
            lines.append(setup.demo_lines[index % len(setup.demo_lines)])
    _check_accounting(_run(setup.config, setup.profiles, lines, workers), lines, expected)
