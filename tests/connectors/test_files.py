"""Events files as the source reads them: Parquet rows with NaN, and damaged files."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.files import EventFileError, EventFileSource, iter_file
from drift.events import Decoder, DeadLetter, DlqReason, InferenceEvent, RawMessage

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def _record(i: int, income: float = 1.0, score: float = 0.5) -> dict[str, object]:
    return {"ts": (NOW - timedelta(minutes=i)).isoformat(), "model": "m",
            "features": {"income": income, "country": "DE"}, "prediction": {"score": score},
            "embedding": [0.5, 0.25]}


def _decode(path: Path) -> list[InferenceEvent | DeadLetter]:
    decoder = Decoder(frozenset({"m"}), now=lambda: NOW)
    return [decoder(RawMessage(data, f"file:{path.name}", 0, offset)) for offset, data in iter_file(path)]


def test_non_finite_parquet_values_are_non_finite_dead_letters(tmp_path: Path) -> None:
    records = [_record(i) for i in range(6)]
    records[1]["features"] = {"income": math.nan, "country": "DE"}
    records[2]["features"] = {"income": math.inf, "country": "DE"}
    records[3]["prediction"] = {"score": -math.inf}
    records[4]["embedding"] = [0.5, math.nan]
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    out = _decode(path)
    assert isinstance(out[0], InferenceEvent) and isinstance(out[5], InferenceEvent)
    assert out[0].features["income"] == 1.0
    letters = out[1:5]
    assert all(isinstance(d, DeadLetter) and d.reason is DlqReason.NON_FINITE for d in letters), letters
    assert [d.field for d in letters if isinstance(d, DeadLetter)] == [
        "features.income", "features.income", "prediction.score", "embedding[1]"]
    assert [d.line for d in letters if isinstance(d, DeadLetter)] == [2, 3, 4, 5]
    # The dead letter keeps the value as it was, not a null.
    assert b'"income":NaN' in letters[0].value  # type: ignore[union-attr, operator]


def test_a_file_that_is_not_parquet_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1" + b"\x13" * 5000 + b"PAR1")
    with pytest.raises(EventFileError, match=r"^events file .*events.parquet is not a readable Parquet file: ") as info:
        EventFileSource(path)
    assert "\n" not in str(info.value)


def test_a_damaged_row_group_fails_in_one_line_before_the_run_and_after_the_rows_before_it(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.Table.from_pylist([{**_record(0), "event_id": f"e-{i}" * 10} for i in range(20_000)])
    pq.write_table(table, path, row_group_size=5000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = b"A" * 2000
    path.write_bytes(bytes(data))
    # The footer is intact: the source reads every page before the flow starts.
    with pytest.raises(EventFileError, match=r"^events file .* is damaged after row \d+: "):
        EventFileSource(path)
    read = []
    with pytest.raises(EventFileError, match=r"^events file .* is damaged after row \d+: ") as info:
        for offset, line in iter_file(path):
            read.append(offset)
    assert read == list(range(len(read))) and len(read) >= 5000
    assert "\n" not in str(info.value)


def test_jsonl_lines_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(_record(0)) + b"\n" + b'{"ts": NaN}\r\n')
    assert [line for _, line in iter_file(path)][1] == b'{"ts": NaN}'
