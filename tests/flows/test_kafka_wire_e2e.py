"""Avro and Protobuf events in the Confluent wire format, end to end on the real broker.

The demo's events are produced twice, to two sets of topics: once in the wire format
(schema id 1: an ``.avsc`` file, or a ``.proto`` file compiled at start, named in the
config), once as the JSON text of the same records. Both runs of ``drift run --until-end``
must give the same findings and tickets and the same dead letters (reasons, details,
positions); the wire-format run's dead letters keep the original bytes.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from confluent_kafka import Producer

from drift import demo
from drift.wire_protobuf import ProtobufSchema, compile_proto_texts, encode_message_indexes

pytestmark = pytest.mark.kafka

TEXT = ["null", "string", "long"]
SCALAR = ["null", "boolean", "long", "double", "string"]
SCHEMA: dict[str, Any] = {
    "type": "record", "name": "InferenceEvent", "namespace": "drift.demo",
    "fields": [
        {"name": "event_id", "type": TEXT, "default": None},
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}, "long", "string"],
         "default": None},
        *({"name": n, "type": TEXT, "default": None}
          for n in ("model", "model_version", "tenant", "region", "route", "entity_id")),
        {"name": "segment", "type": ["null", {"type": "map", "values": "string"}], "default": None},
        {"name": "features", "type": ["null", {"type": "map", "values": SCALAR}], "default": None},
        {"name": "prediction", "type": ["null", {"type": "map", "values": SCALAR}], "default": None},
        {"name": "embedding", "type": ["null", "bytes", {"type": "array", "items": "double"}], "default": None},
    ],
}
FIELDS = [f["name"] for f in SCHEMA["fields"]]
PARSED = fastavro.parse_schema(SCHEMA)


def avro_twin(line: bytes) -> tuple[bytes, bytes] | None:
    """(the Avro message, the JSON text of the same record) of a demo line the schema can hold."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not set(event) <= set(FIELDS):
        return None
    record = {name: event.get(name) for name in FIELDS}
    if isinstance(record["ts"], str):
        try:
            ts = datetime.fromisoformat(record["ts"])
        except ValueError:
            ts = None
        if ts is not None and ts.tzinfo is not None:
            record["ts"] = ts.astimezone(timezone.utc)
    embedding = record["embedding"]
    if isinstance(embedding, dict) and set(embedding) == {"dtype", "b64"} and embedding["dtype"] == "float32":
        try:
            record["embedding"] = base64.b64decode(embedding["b64"], validate=True)
        except ValueError:
            return None
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, PARSED, record)
    except (ValueError, TypeError, fastavro.validation.ValidationError):
        return None
    text = orjson.dumps(record, default=lambda b: {"dtype": "float32", "b64": base64.b64encode(b).decode()})
    return b"\x00" + struct.pack(">I", 1) + out.getvalue(), text


PROTO = """
syntax = "proto3";
package drift.demo;

import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";

message Scalar { oneof kind { bool flag = 1; int64 integer = 2; double number = 3; string text = 4; } }
message Ts { oneof kind { google.protobuf.Timestamp instant = 1; int64 epoch = 2; string text = 3; } }
message Embedding { oneof kind { google.protobuf.ListValue values = 1; bytes float32 = 2; } }
message InferenceEvent {
  optional string event_id = 1;
  Ts ts = 2;
  optional string model = 3;
  optional string model_version = 4;
  optional string tenant = 5;
  optional string region = 6;
  optional string route = 7;
  optional string entity_id = 8;
  map<string, string> segment = 9;
  map<string, Scalar> features = 10;
  map<string, Scalar> prediction = 11;
  Embedding embedding = 12;
}
"""
PROTO_EVENT, PROTO_DESCRIPTOR = ProtobufSchema(
    list(compile_proto_texts({"inference.proto": PROTO}, "inference.proto").file)).message_type((3,))
TEXT_FIELDS = ("event_id", "model", "model_version", "tenant", "region", "route", "entity_id")


def _scalar(target: Any, value: Any) -> Any:
    """Set a Scalar; the value it reads back as (raises TypeError where it holds none)."""
    if value is None:
        return None
    for kind, types in (("flag", bool), ("integer", int), ("number", float), ("text", str)):
        if type(value) is types:
            setattr(target, kind, value)
            return value
    raise TypeError(value)


def protobuf_twin(line: bytes) -> tuple[bytes, bytes] | None:
    """(the Protobuf message, the JSON text of its content) of a demo line the schema can hold."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not set(event) <= set(PROTO_DESCRIPTOR.fields_by_name):
        return None
    out: Any = PROTO_EVENT()
    twin: dict[str, Any] = {}
    try:
        for name, value in event.items():
            if value is None:
                continue
            if name in TEXT_FIELDS:
                if type(value) is not str:
                    return None
                setattr(out, name, value)
            elif name == "ts":
                twin[name] = value
                ts = datetime.fromisoformat(value) if isinstance(value, str) else None
                if ts is not None and ts.tzinfo is not None and ts.year > 1:
                    out.ts.instant.FromDatetime(ts.astimezone(timezone.utc))
                    utc = ts.astimezone(timezone.utc)
                    fraction = f".{utc.microsecond * 1000:09d}" if utc.microsecond else ""
                    twin[name] = utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
                elif type(value) is int:
                    out.ts.epoch = value
                elif type(value) is str:
                    out.ts.text = value
                else:
                    return None
                continue
            elif name == "segment":
                if not all(type(v) is str for v in value.values()):
                    return None
                out.segment.update(value)
            elif name in ("features", "prediction"):
                value = {k: _scalar(getattr(out, name)[k], v) for k, v in value.items()}
            elif name == "embedding":
                if isinstance(value, dict):
                    out.embedding.float32 = base64.b64decode(value["b64"], validate=True)
                    value = {"dtype": "float32", "b64": base64.b64encode(out.embedding.float32).decode()}
                else:
                    out.embedding.values.extend(value)
                    value = [float(v) for v in value]
            if value or name not in ("segment", "features", "prediction"):
                twin[name] = value
    except (TypeError, ValueError, AttributeError, KeyError):
        return None
    return b"\x00" + struct.pack(">I", 1) + encode_message_indexes([3]) + out.SerializeToString(), orjson.dumps(twin)


def _config(tmp_path: Path, topics: dict[str, str], avro: bool, protobuf: bool = False) -> Path:
    text = demo.config_text()
    text = text.replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}",
        f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}",
        f"  dlq_topic: {topics['dlq']}",
    ]))
    text = text.replace("feature_topic: feature-events", f"feature_topic: {topics['features']}")
    text += "metrics:\n  port: 0\n"
    tmp_path.mkdir(exist_ok=True)
    if avro:
        (tmp_path / "inference.avsc").write_text(json.dumps(SCHEMA), encoding="utf-8")
        text += 'events:\n  format: avro\n  schemas:\n    files: {"1": inference.avsc}\n'
    if protobuf:
        (tmp_path / "inference.proto").write_text(PROTO, encoding="utf-8")
        text += 'events:\n  format: protobuf\n  schemas:\n    files: {"1": inference.proto}\n'
    path = tmp_path / "drift.yaml"
    path.write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    return path


def _original(letter: dict[str, Any]) -> bytes:
    return bytes.fromhex(letter["value"]) if letter["value_encoding"] == "hex" else (letter["value"] or "").encode()


def _run(config: Path, bootstrap: str) -> dict[str, Any]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--until-end", "--json"],
        capture_output=True, timeout=300, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


JOINED = ("skew.value", "freshness")
"""Detectors that join the feature topic: what they find depends on how the two topics'
messages interleave as they are read, which differs between any two runs."""


def _comparable(records: list[dict[str, Any]]) -> list[str]:
    """Output records without the wall-clock fields and the joined detectors, in a stable order."""
    volatile = {"created_at", "updated_at", "at", "emitted_at", "opened_at", "id", "ticket_id", "request_id"}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in volatile}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    def detector(record: dict[str, Any]) -> str:
        return str(record.get("detector") or record.get("ticket", {}).get("detector", ""))

    return sorted(json.dumps(strip(r), sort_keys=True) for r in records if not detector(r).startswith(JOINED))


def test_avro_events_on_real_kafka_match_their_json_twins(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    bundle = demo.events()
    avro_lines, json_lines = [], []
    for line in bundle.inference_lines:
        twin = avro_twin(line)
        avro_lines.append(line if twin is None else twin[0])
        json_lines.append(line if twin is None else twin[1])
    broken = [
        (b"\x00" + struct.pack(">I", 9) + avro_lines[0][5:], "unknown_schema"),
        (avro_lines[0][:-4], "bad_avro"),
    ]
    _wire_matches_json(tmp_path, kafka_bootstrap, read_topic, kafka_topics, "avro", avro_lines, json_lines, broken)


def test_protobuf_events_on_real_kafka_match_their_json_twins(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    bundle = demo.events()
    proto_lines, json_lines = [], []
    for line in bundle.inference_lines:
        twin = protobuf_twin(line)
        proto_lines.append(line if twin is None else twin[0])
        json_lines.append(line if twin is None else twin[1])
    broken = [
        (b"\x00" + struct.pack(">I", 9) + proto_lines[0][5:], "unknown_schema"),
        (proto_lines[0][:-4], "bad_protobuf"),
        (proto_lines[0][:5] + b"\x02\x10" + proto_lines[0][7:], "bad_protobuf"),  # message index 8: none
    ]
    _wire_matches_json(tmp_path, kafka_bootstrap, read_topic, kafka_topics, "protobuf", proto_lines, json_lines, broken)


def _wire_matches_json(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any, wire: str,
    wire_lines: list[bytes], json_lines: list[bytes], broken: list[tuple[bytes, str]],
) -> None:
    """Runs the wire-format lines (and the ``broken`` ones after them) and their JSON twins: the same output."""
    bundle = demo.events()
    n_framed = sum(a != j for a, j in zip(wire_lines, json_lines))
    assert n_framed >= len(wire_lines) - 20  # all but the demo's malformed lines are in the wire format
    runs = {}
    for name, lines in ((wire, wire_lines + [b for b, _ in broken]), ("json", json_lines)):
        topics = {t: kafka_topics(f"{name}-{t}") for t in ("inference", "features", "findings", "tickets", "dlq")}
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
        for line in bundle.feature_lines:
            producer.produce(topics["features"], value=line, key=b"k")
        for line in lines:
            producer.produce(topics["inference"], value=line, key=b"k")
        assert producer.flush(30) == 0
        summary = _run(
            _config(tmp_path / name, topics, avro=name == "avro", protobuf=name == "protobuf"), kafka_bootstrap)
        runs[name] = (summary, lines, {t: read_topic(topics[t]) for t in ("findings", "tickets", "dlq")})

    (avro, avro_sent, avro_out), (plain, _, plain_out) = runs[wire], runs["json"]
    assert avro["events"] == plain["events"] + len(broken)
    assert avro["decoded"] == plain["decoded"] > 0
    assert avro["late"] == plain["late"] == bundle.n_late
    assert avro["dlq"]["total"] == plain["dlq"]["total"] + len(broken)
    assert avro["findings_total"] == plain["findings_total"] > 0
    assert _comparable(avro_out["findings"]) == _comparable(plain_out["findings"])
    assert _comparable(avro_out["tickets"]) == _comparable(plain_out["tickets"])

    avro_dlq = {d["offset"]: d for d in avro_out["dlq"]}
    plain_dlq = {d["offset"]: d for d in plain_out["dlq"]}
    assert set(avro_dlq) == set(plain_dlq) | {len(json_lines) + i for i in range(len(broken))}
    assert {d["reason"] for d in plain_dlq.values()} >= {"late", "invalid_json", "unknown_model", "wrong_type"}
    for offset, letter in plain_dlq.items():
        twin = avro_dlq[offset]
        assert (twin["reason"], twin["detail"], twin["step_id"]) == (letter["reason"], letter["detail"], letter["step_id"])
        assert _original(twin) == avro_sent[offset]  # the Avro bytes, late ones included
    for i, (value, reason) in enumerate(broken):
        letter = avro_dlq[len(json_lines) + i]
        assert letter["reason"] == reason and _original(letter) == value
