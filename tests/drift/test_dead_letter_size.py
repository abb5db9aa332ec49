"""A dead letter for the Kafka DLQ fits in a message whatever the size of the original value."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from drift.events import DeadLetter, DlqReason

LIMIT = 64 * 1024


@pytest.mark.parametrize(
    ("value", "encoding", "head_char"),
    [
        (b"\x01" * 200_000, "utf-8", "\x01"),  # JSON-escaped: 6 bytes per byte
        (bytes(range(128, 256)) * 4_700, "hex", None),  # not UTF-8: 2 bytes per byte
        ("é".encode() * 100_000, "utf-8", "é"),  # 2 UTF-8 bytes per character
        (b"x" * 1_000_000, "utf-8", "x"),
    ],
    ids=["control-characters", "not-utf8", "multibyte", "ascii"],
)
def test_a_large_value_is_cut_to_its_head_with_size_and_digest(value: bytes, encoding: str, head_char: str | None) -> None:
    letter = DeadLetter(DlqReason.INVALID_JSON, "detail", "decode_inference", "events", 3, 41, value, b"k")
    record = letter.to_dict(max_value_bytes=LIMIT)
    assert record["value_truncated"] is True
    assert record["value_size"] == len(value)
    assert record["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert record["value_encoding"] == encoding
    shown = len(orjson.dumps(record["value"])) - 2
    assert LIMIT - 8 <= shown <= LIMIT  # as much of the head as fits
    assert len(orjson.dumps(record)) < LIMIT + 1024
    if encoding == "hex":
        assert value.startswith(bytes.fromhex(record["value"]))
    else:
        assert value.startswith(record["value"].encode()) and set(record["value"]) == {head_char}
    # The fields of a whole dead letter are all there.
    assert set(letter.to_dict()) < set(record)


def test_a_small_value_is_kept_whole() -> None:
    letter = DeadLetter(DlqReason.MISSING_FIELD, "ts is required", "decode_inference", "events", 0, 7, b'{"a": 1}')
    record = letter.to_dict(max_value_bytes=LIMIT)
    assert record == {**letter.to_dict(), "value_size": 8, "value_truncated": False,
                      "value_sha256": hashlib.sha256(b'{"a": 1}').hexdigest()}

