"""Throughput of the file dataflow (decode → windows → PSI → tickets), printed as JSON.

    python bench/throughput.py [--events 60000]

Generates events with the demo's generator (repeated with later timestamps), runs
``drift replay``'s code path in this process and reports events per second, with the
cost of decoding alone measured in the same run for a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from connectors.files import write_jsonl, write_parquet
from drift import demo
from drift.config import load_config
from drift.events import Decoder, RawMessage
from flows.runner import run_file


def _events(n: int) -> list[bytes]:
    base = [orjson.loads(line) for line in demo.events().lines if line.startswith(b'{"event_id":"e-')]
    out: list[bytes] = []
    shift = 0
    while len(out) < n:
        for event in base:
            ts = demo.START + timedelta(hours=3 * shift) + (
                datetime.fromisoformat(event["ts"]) - demo.START)
            out.append(orjson.dumps({**event, "ts": ts.isoformat()}))
            if len(out) >= n:
                break
        shift += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60000)
    args = parser.parse_args()
    lines = _events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "drift.yaml").write_text(demo.config_text(), encoding="utf-8")
        write_parquet(folder / "reference.parquet", demo.reference_columns())
        write_jsonl(folder / "events.jsonl", lines)
        config = load_config(folder / "drift.yaml")
        run_file(config, folder / "events.jsonl")  # builds and stores the reference profile
        (folder / "drift-tickets.db").unlink()

        decoder = Decoder(models=frozenset({"credit-risk"}))
        start = time.perf_counter()
        for i, line in enumerate(lines):
            decoder(RawMessage(value=line, topic="t", partition=0, offset=i))
        decode_s = time.perf_counter() - start

        start = time.perf_counter()
        result = run_file(config, folder / "events.jsonl")
        flow_s = time.perf_counter() - start
    print(json.dumps({
        "benchmark": "file_flow_throughput",
        "events": len(lines),
        "windows": len(result.windows),
        "flow_seconds": round(flow_s, 3),
        "flow_events_per_second": round(len(lines) / flow_s),
        "decode_only_seconds": round(decode_s, 3),
        "decode_share_of_flow": round(decode_s / flow_s, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }, indent=2))


if __name__ == "__main__":
    main()
