"""In-process throughput of the dataflow, with the cost split by stage; prints one JSON document.

    python bench/throughput.py [--events 500000] [--cohorts N[,N...]] [--repeats 3] [--stages NAME[,NAME...]]

The workload (bench/workload.py): 20 numeric + 5 categorical features, ``--cohorts``
tenants, PSI on every feature plus the quality checks, 5-minute windows. Measured in
one process, one worker, no Kafka:

* ``file_json``: ``drift replay``'s path: a JSONL file → the whole flow (decode, cohort
  windows, detectors, policy, SQLite tickets);
* ``memory_json`` / ``memory_arrow``: the same flow fed from memory with batches of
  JSON messages, or with Arrow IPC messages of 10,000 events (a batching producer);
* ``memory_avro``: the JSON batches' events as Avro in the Confluent wire format (one
  message each, schema id 1 from an ``.avsc`` file: ``events.format: avro``);
  ``memory_protobuf`` the same as Protobuf (a ``.proto`` file: ``events.format: protobuf``);
* ``memory_arrow_polls``: Arrow IPC messages of 1,000 events, 5 to a batch (a Kafka poll
  of the Kafka benchmark's messages: the decoder screens a batch's messages as one table);
* stages, on the same JSON batches outside Bytewax: ``decode`` (drift.batch),
  ``decode + windows`` (flows.shard_windows), ``decode_avro``/``decode_protobuf`` (drift.wire, then drift.batch) and, for the ratio, the per-event decoder
  (``Decoder`` one message at a time) the flow used before batches.

Each number is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402
import fastavro  # noqa: E402
from bytewax.testing import TestingSource, run_main  # noqa: E402

from connectors.files import write_jsonl  # noqa: E402
from connectors.memory import CountSink, ListSink  # noqa: E402
from drift.config import EventsConfig, SchemasConfig, load_config  # noqa: E402
from drift.events import Decoder, RawMessage  # noqa: E402
from drift.wire_protobuf import ProtobufSchema, compile_proto_texts, encode_message_indexes  # noqa: E402
from flows.pipeline import Outputs, batch_decoder, build_flow, plan_models, shard_specs  # noqa: E402
from flows.runner import load_profiles, resolve_shards, run_file  # noqa: E402
from flows.shard_windows import ShardWindows, as_shards  # noqa: E402

BATCH = 5000
STAGES = (
    "file_json", "memory_json", "memory_arrow", "memory_avro", "memory_protobuf", "memory_arrow_polls",
    "decode", "decode_windows", "decode_avro", "decode_protobuf", "per_event_decoder",
)
POLL_EVENTS = 1000
POLL_MESSAGES = 5


def avro_schema() -> dict[str, Any]:
    """The workload's events as an Avro record (features a record of typed fields)."""
    text = ["null", "string"]
    return {
        "type": "record", "name": "InferenceEvent", "namespace": "drift.bench", "fields": [
            {"name": "event_id", "type": text}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "model", "type": "string"}, {"name": "model_version", "type": text}, {"name": "tenant", "type": text},
            {"name": "features", "type": {"type": "record", "name": "Features", "fields": [
                *({"name": f, "type": ["null", "double"]} for f in workload.NUMERIC),
                *({"name": f, "type": ["null", "string"]} for f in workload.CATEGORICAL)]}},
        ],
    }


def avro_messages(lines: list[bytes], schema: dict[str, Any]) -> list[bytes]:
    """Each JSON event as a Confluent wire-format Avro message of schema id 1."""
    parsed = fastavro.parse_schema(schema)
    out = []
    for line in lines:
        event = json.loads(line)
        event["ts"] = datetime.fromisoformat(event["ts"])
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, event)
        out.append(b"\x00" + struct.pack(">I", 1) + buffer.getvalue())
    return out


def protobuf_messages(lines: list[bytes], folder: Path) -> list[bytes]:
    """The workload's events as Protobuf (features a message of typed fields), schema id 1 of
    ``folder/inference.proto``, each in the Confluent wire format (message indexes ``[1]``)."""
    fields = [f"optional double {f} = {i};" for i, f in enumerate(workload.NUMERIC, 1)] + [
        f"optional string {f} = {i};" for i, f in enumerate(workload.CATEGORICAL, len(workload.NUMERIC) + 1)]
    text = ('syntax = "proto3"; import "google/protobuf/timestamp.proto"; message Features {'
            + " ".join(fields) + "} message InferenceEvent { optional string event_id = 1; "
            "google.protobuf.Timestamp ts = 2; string model = 3; optional string model_version = 4; "
            "optional string tenant = 5; Features features = 6; }")
    (folder / "inference.proto").write_text(text, encoding="utf-8")
    schema = ProtobufSchema(list(compile_proto_texts({"i.proto": text}, "i.proto").file))
    event_class: Any = schema.message_type((1,))[0]
    out = []
    for line in lines:
        event = json.loads(line)
        message = event_class(**{k: v for k, v in event.items() if k not in ("ts", "features")})
        message.ts.FromDatetime(datetime.fromisoformat(event["ts"]))
        features = {k: v for k, v in event["features"].items() if v is not None}
        message.features.MergeFrom(type(message.features)(**features))
        out.append(b"\x00" + struct.pack(">I", 1) + encode_message_indexes([1]) + message.SerializeToString())
    return out


def best(repeats: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--cohorts", default="10", metavar="N[,N...]",
                        help="tenants; several (10,1000,10000,100000) run one after another, each in its own "
                             "process, and the document compares each stage's rate with the first N's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stages", default=",".join(STAGES), metavar="NAME[,NAME...]",
                        help="the stages to time (default: all): " + ", ".join(STAGES))
    args = parser.parse_args()
    chosen = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; valid: {', '.join(STAGES)}")
    try:
        counts = [int(c) for c in args.cohorts.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--cohorts takes whole numbers separated by commas; got {args.cohorts!r}")
    if not counts or min(counts) < 1:
        parser.error(f"--cohorts needs at least one count of 1 or more; got {args.cohorts!r}")
    if len(counts) > 1:
        scaling(args, counts)
        return
    args.cohorts = counts[0]
    n = args.events
    lines = workload.events(n, cohorts=args.cohorts)
    ipc = workload.arrow_batches(n, cohorts=args.cohorts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = load_config(workload.prepare(folder, cohorts=args.cohorts))
        write_jsonl(folder / "events.jsonl", lines)
        profiles = load_profiles(config)
        plans = plan_models(config, profiles)
        now = datetime(2027, 1, 1, tzinfo=timezone.utc)
        decoder = Decoder(models=frozenset({workload.MODEL}), max_future=config.events.max_future, now=lambda: now)
        batched = batch_decoder(config, plans, decoder, set(), by_model=True)
        raws = [RawMessage(v, "bench", 0, i) for i, v in enumerate(lines)]
        batches = [raws[i:i + BATCH] for i in range(0, n, BATCH)]
        arrow = [[RawMessage(v, "bench", 0, i)] for i, v in enumerate(ipc)]
        small = [RawMessage(v, "bench", 0, i) for i, v in enumerate(
            workload.arrow_batches(n, batch=POLL_EVENTS, cohorts=args.cohorts))]
        polls = [small[i:i + POLL_MESSAGES] for i in range(0, len(small), POLL_MESSAGES)]
        schema = avro_schema()
        (folder / "inference.avsc").write_text(json.dumps(schema), encoding="utf-8")
        avro_config = config.model_copy(update={"events": EventsConfig(
            max_future=config.events.max_future, format="avro",
            schemas=SchemasConfig(files={"1": str(folder / "inference.avsc")}))})
        avro_values = avro_messages(lines, schema)
        avro_raws = [RawMessage(v, "bench", 0, i) for i, v in enumerate(avro_values)]
        avro_batches = [avro_raws[i:i + BATCH] for i in range(0, n, BATCH)]
        avro_decoder = batch_decoder(avro_config, plans, decoder, set(), by_model=True)

        def decode_avro() -> None:
            for batch in avro_batches:
                avro_decoder(batch)

        proto_values = protobuf_messages(lines, folder)
        proto_raws = [RawMessage(v, "bench", 0, i) for i, v in enumerate(proto_values)]
        proto_batches = [proto_raws[i:i + BATCH] for i in range(0, n, BATCH)]
        proto_config = config.model_copy(update={"events": EventsConfig(
            max_future=config.events.max_future, format="protobuf",
            schemas=SchemasConfig(files={"1": str(folder / "inference.proto")}))})
        proto_decoder = batch_decoder(proto_config, plans, decoder, set(), by_model=True)

        def decode_protobuf() -> None:
            for batch in proto_batches:
                proto_decoder(batch)

        def decode() -> None:
            for batch in batches:
                batched(batch)

        def decode_windows() -> None:
            specs = shard_specs(plans, config)
            split = as_shards(resolve_shards(config, 1, None))  # one worker, as the flows below
            logics: dict[str, ShardWindows] = {}
            for batch in batches:
                for key, rows in split(batched(batch)):
                    logic = logics.get(key)
                    if logic is None:
                        logic = logics[key] = ShardWindows(specs, None, lambda: now, copies=False)
                    logic.on_batch([rows])
            for logic in logics.values():
                logic.on_eof()

        def one_by_one() -> None:
            for raw in raws:
                decoder(raw)

        def flow(items: list[list[RawMessage]], flow_config: Any = config) -> Callable[[], None]:
            def run() -> None:
                store = folder / "drift-tickets.db"
                store.unlink(missing_ok=True)
                windows: CountSink[Any] = CountSink()
                outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), windows=windows)
                run_main(build_flow(flow_config, profiles, TestingSource(items), outputs, now=lambda: now))
                assert windows.count > 0
            return run

        def replay() -> None:
            (folder / "drift-tickets.db").unlink(missing_ok=True)
            result = run_file(config, folder / "events.jsonl", now=lambda: now)
            assert sum(w.n_events for w in result.windows) == n, "events lost"

        runs: dict[str, Callable[[], None]] = {
            "file_json": replay,
            "memory_json": flow(batches),
            "memory_arrow": flow(arrow),
            "memory_avro": flow(avro_batches, avro_config),
            "memory_protobuf": flow(proto_batches, proto_config),
            "memory_arrow_polls": flow(polls),
            "decode": decode,
            "decode_windows": decode_windows,
            "decode_avro": decode_avro,
            "decode_protobuf": decode_protobuf,
            "per_event_decoder": one_by_one,
        }
        seconds = {
            name: best(max(1, args.repeats - 1) if name == "per_event_decoder" else args.repeats, runs[name])
            for name in STAGES if name in chosen
        }
    rate = {k: round(n / v) for k, v in seconds.items()}
    split = None
    if {"decode", "decode_windows", "memory_json"} <= seconds.keys():
        split = {
            "decode": round(seconds["decode"] / seconds["memory_json"], 3),
            "windows": round((seconds["decode_windows"] - seconds["decode"]) / seconds["memory_json"], 3),
            "rest": round(1 - seconds["decode_windows"] / seconds["memory_json"], 3),
        }
    ratio = None
    if {"decode", "per_event_decoder"} <= seconds.keys():
        ratio = round(seconds["per_event_decoder"] / seconds["decode"], 2)
    print(json.dumps({
        "benchmark": "flow_throughput",
        "events": n,
        "cohorts": args.cohorts,
        "features": {"numeric": len(workload.NUMERIC), "categorical": len(workload.CATEGORICAL)},
        "json_bytes_per_event": round(sum(map(len, lines)) / n, 1),
        "avro_bytes_per_event": round(sum(map(len, avro_values)) / n, 1),
        "protobuf_bytes_per_event": round(sum(map(len, proto_values)) / n, 1),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "events_per_second": rate,
        "split_of_memory_json": split,
        "batch_decode_vs_per_event_decoder": ratio,
        "load_average": os.getloadavg(),
        "machine": workload.machine(),
    }, indent=2))


def scaling(args: argparse.Namespace, counts: list[int]) -> None:
    """One run per cohort count (each its own process, so none inherits another's heap), then
    each stage's events per second as a share of the first count's."""
    import subprocess

    runs = []
    for cohorts in counts:
        command = [sys.executable, __file__, "--events", str(args.events), "--cohorts", str(cohorts),
                   "--repeats", str(args.repeats), "--stages", args.stages]
        print(f"cohorts {cohorts}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout))
    first = runs[0]["events_per_second"]
    print(json.dumps({
        "benchmark": "flow_throughput_by_cohorts",
        "events": args.events,
        "cohorts": counts,
        "events_per_second": {str(r["cohorts"]): r["events_per_second"] for r in runs},
        "share_of_first": {
            str(r["cohorts"]): {k: round(v / first[k], 3) for k, v in r["events_per_second"].items() if first.get(k)}
            for r in runs
        },
        "load_average": os.getloadavg(),
        "machine": workload.machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
