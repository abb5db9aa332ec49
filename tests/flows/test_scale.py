"""Scale-out on the real broker, and the health endpoints.

A topic of four partitions, keyed by cohort (each cohort's events stay in one
partition, in order), read by one worker and by a local cluster of two
processes of two workers each, gives the same window results. A cluster's
members serve ``/healthz``, ``/readyz`` and ``/metrics`` (with the consumer
lag of each partition they read); a member that dies stops the cluster.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

import drift.metrics  # noqa: F401 - registers drift's metrics for /metrics
from drift import demo
from drift.health import Health, serve

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
LAG = "bytewax_kafka_consumer_lag"


def _topics(kafka_topics: Any) -> dict[str, str]:
    topics = {"inference": kafka_topics("inference", partitions=PARTITIONS)}
    topics.update({name: kafka_topics(name) for name in ("findings", "tickets", "dlq")})
    return topics


def _config(folder: Path, topics: dict[str, str], metrics_port: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = demo.config_text(value_skew=False).replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}",
        f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}",
        f"  dlq_topic: {topics['dlq']}",
    ])) + f"metrics:\n  port: {metrics_port}\n"
    (folder / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(folder)
    return folder / "drift.yaml"


def _cohort_key(line: bytes) -> bytes:
    try:
        event = json.loads(line)
        return f"{event.get('model_version')}|{event.get('tenant')}|{event.get('region')}".encode()
    except (ValueError, AttributeError):
        return b"-"


def _produce(bootstrap: str, topic: str, lines: list[bytes]) -> dict[int, int]:
    """Produce keyed by cohort; returns how many messages went to each partition."""
    counts: dict[int, int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        counts[message.partition()] = counts.get(message.partition(), 0) + 1

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for line in lines:
        producer.produce(topic, value=line, key=_cohort_key(line), on_delivery=delivered)
    assert producer.flush(30) == 0
    return counts


def _read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(out) < sum(highs.values()):
            assert time.monotonic() < deadline, f"timed out reading {topic}: {len(out)} of {sum(highs.values())}"
            out.extend(json.loads(m.value()) for m in consumer.consume(1000, 0.2) if m.error() is None)
        return out
    finally:
        consumer.close()


def _results(findings: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    out = set()
    for f in findings:
        value = f["value"]
        value = None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 9)
        out.add((f["cohort_key"], f["window_start"], f["detector"], f["feature"], value, f["n_current"]))
    return out


ACROSS_COHORTS = ("cohort_windows", "cohort_rank", "not_significant")


def _unsharded(finding: dict[str, Any]) -> dict[str, Any]:
    """A finding without what the judgement across cohorts adds (it depends on the shards)."""
    evidence = {k: v for k, v in finding.get("evidence", {}).items() if k not in ACROSS_COHORTS}
    return {**{k: v for k, v in finding.items() if k != "q_value"}, "evidence": evidence}


def _env(bootstrap: str) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "PYTHONUNBUFFERED": "1"}


def _run_until_end(config: Path, bootstrap: str, *options: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config), *options, "--until-end", "--json"],
        env=_env(bootstrap), cwd=ROOT, capture_output=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _tickets(config: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "drift.cli", "tickets", "list", "--config", str(config), "--json"],
        capture_output=True, timeout=60, check=True, cwd=ROOT,
    )
    return {t["fingerprint"]: t["occurrences"] for t in json.loads(done.stdout)}


@pytest.mark.kafka
def test_one_worker_and_two_processes_of_two_workers_find_the_same(
    tmp_path: Path, kafka_bootstrap: str, kafka_topics: Any,
) -> None:
    lines = demo.events().without_value_skew()
    runs = {}
    for name, options in (("single", ()), ("cluster", ("--processes", "2", "--workers", "2"))):
        topics = _topics(kafka_topics)
        config = _config(tmp_path / name, topics)
        per_partition = _produce(kafka_bootstrap, topics["inference"], lines)
        # Two cohorts and a few unkeyed bad lines: at least two partitions carry events.
        assert len(per_partition) >= 2
        summary = _run_until_end(config, kafka_bootstrap, *options)
        runs[name] = (summary, _read_all(kafka_bootstrap, topics["findings"]),
                      _read_all(kafka_bootstrap, topics["dlq"]), _tickets(config))
    single, cluster = runs["single"], runs["cluster"]
    assert cluster[0]["processes"] == 2
    for key in ("events", "decoded", "late", "dlq", "windows", "findings_total"):
        assert cluster[0][key] == single[0][key], key
    # Across cohorts a shard judges its own cohort windows as they close, and counts the
    # model's as its own times the shards: the rank and the family size, and so the q-value
    # across cohorts, depend on the sharding; the findings and their severities do not.
    assert [_unsharded(f) for f in cluster[0]["findings"]] == [_unsharded(f) for f in single[0]["findings"]]
    assert len(single[1]) == len(cluster[1]) == single[0]["findings_total"]
    assert _results(cluster[1]) == _results(single[1])
    letters = [{(d["partition"], d["offset"], d["reason"]) for d in run[2]} for run in (single, cluster)]
    assert letters[0] == letters[1]
    assert cluster[3] == single[3] and single[3]


def _free_port_pair() -> int:
    """A port P such that P and P + 1 were both free a moment ago."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _lags(port: int) -> dict[int, float]:
    _, text = _get(f"http://127.0.0.1:{port}/metrics")
    return {int(s.labels["partition"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == LAG}


def _wait(predicate: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"drift run exited with {proc.returncode} while waiting for {what}:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)


@pytest.mark.kafka
def test_cluster_members_report_health_and_lag_and_stop_together(
    tmp_path: Path, kafka_bootstrap: str, kafka_topics: Any,
) -> None:
    topics = _topics(kafka_topics)
    base = _free_port_pair()
    config = _config(tmp_path, topics)
    per_partition = _produce(kafka_bootstrap, topics["inference"], demo.events().without_value_skew())
    command = [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--processes", "2",
               "--metrics-port", str(base)]
    for attempt in ("kill a member", "SIGTERM the parent"):
        log = tmp_path / f"{attempt.replace(' ', '-')}.log"
        with open(log, "wb") as handle:
            proc = subprocess.Popen(command, env=_env(kafka_bootstrap), cwd=ROOT, stdin=subprocess.DEVNULL,
                                    stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ports = [base, base + 1]
            _wait(lambda: all(_get(f"http://127.0.0.1:{p}/readyz")[0] == 200 for p in ports),
                  "both members ready", proc, log)
            for port in ports:
                assert _get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
                ready = json.loads(_get(f"http://127.0.0.1:{port}/readyz")[1])
                assert ready == {"ready": True, "stopping": False,
                                 "checks": {"config": True, "baselines": True, "flow": True}}
            # Every partition that holds messages is read by one member, which
            # reports its lag; once caught up the lag is zero.
            _wait(lambda: (lambda lags: set(lags) == set(per_partition) and not any(lags.values()))(
                {**_lags(base), **_lags(base + 1)}), "zero lag on every partition", proc, log)
            pids = [int(p) for p in re.search(r"\(pids (\d+), (\d+)\)", log.read_text()).groups()]  # type: ignore[union-attr]
            started = time.monotonic()
            if attempt == "kill a member":
                os.kill(pids[1], signal.SIGKILL)
                code = proc.wait(timeout=40)
                assert code == 1
                text = log.read_text(errors="replace")
                assert f"process 1 (pid {pids[1]}) exited with status -9; stopping the other processes" in text
            else:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=25)
                assert code == 0, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() - started < 20
            for pid in pids:
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)


def test_health_endpoints_over_http() -> None:
    health = Health()
    server = serve("127.0.0.1", 0, health)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        assert _get(f"{url}/healthz") == (200, "ok\n")
        status, body = _get(f"{url}/readyz")
        assert status == 503
        assert json.loads(body)["checks"] == {"config": False, "baselines": False, "flow": False}
        for check in ("config", "baselines"):
            health.passed(check)
        assert _get(f"{url}/readyz")[0] == 503
        health.passed("flow")
        status, body = _get(f"{url}/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        status, text = _get(f"{url}/metrics")
        assert status == 200
        names = {family.name for family in text_string_to_metric_families(text)}
        assert {"drift_events", "drift_dlq", "drift_windows_closed"} <= names
        assert _get(f"{url}/nothing")[0] == 404
        health.stopping()
        status, body = _get(f"{url}/readyz")
        assert status == 503 and json.loads(body)["stopping"] is True
        assert _get(f"{url}/healthz")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("options", "message"), [
    (["--processes", "3", "--addresses", "a:1;b:2", "--process-id", "0"],
     "--addresses lists 2 process(es) but --processes is 3"),
    (["--processes", "2", "--addresses", "a:1;b:2"], "--addresses needs --process-id"),
    (["--processes", "2", "--process-id", "2", "--addresses", "a:1;b:2"], "--process-id must be below --processes (2)"),
    (["--processes", "2", "--process-id", "1"], "--process-id needs --addresses"),
    (["--snapshot-interval", "0s"], "--snapshot-interval must be positive"),
    (["--snapshot-interval", "soon"], "--snapshot-interval must be a duration"),
])
def test_run_rejects_inconsistent_cluster_options(options: list[str], message: str) -> None:
    from click.testing import CliRunner

    from drift.cli import main

    result = CliRunner().invoke(main, ["run", "--config", "drift.yaml", *options])
    assert result.exit_code == 2
    assert message in result.output
