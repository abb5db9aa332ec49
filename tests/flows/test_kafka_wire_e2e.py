"""Avro events in the Confluent wire format, end to end on the real broker.

The demo's events are produced twice, to two sets of topics: once as Avro (schema id 1,
an ``.avsc`` file named in the config), once as the JSON text of the same records. Both
runs of ``drift run --until-end`` must give the same findings and tickets and the same
dead letters (reasons, details, positions); the Avro run's dead letters keep the Avro bytes.
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


def _config(tmp_path: Path, topics: dict[str, str], avro: bool) -> Path:
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
    n_framed = sum(a != j for a, j in zip(avro_lines, json_lines))
    assert n_framed >= len(avro_lines) - 20  # all but the demo's malformed lines are Avro
    broken = [
        (b"\x00" + struct.pack(">I", 9) + avro_lines[0][5:], "unknown_schema"),
        (avro_lines[0][:-4], "bad_avro"),
    ]
    runs = {}
    for name, lines in (("avro", avro_lines + [b for b, _ in broken]), ("json", json_lines)):
        topics = {t: kafka_topics(f"{name}-{t}") for t in ("inference", "features", "findings", "tickets", "dlq")}
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
        for line in bundle.feature_lines:
            producer.produce(topics["features"], value=line, key=b"k")
        for line in lines:
            producer.produce(topics["inference"], value=line, key=b"k")
        assert producer.flush(30) == 0
        summary = _run(_config(tmp_path / name, topics, avro=name == "avro"), kafka_bootstrap)
        runs[name] = (summary, lines, {t: read_topic(topics[t]) for t in ("findings", "tickets", "dlq")})

    (avro, avro_sent, avro_out), (plain, _, plain_out) = runs["avro"], runs["json"]
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
