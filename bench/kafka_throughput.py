"""Throughput of the stream job on a real Kafka broker, printed as JSON.

    python bench/kafka_throughput.py [--events 1000000] [--partitions 4] [--processes 1 2]
                                     [--format json arrow] [--cohorts 10] [--arrow-batch 1000]
                                     [--partitioning tenant|round-robin] [--poll 0.02]

For each ``--format`` the events of the shared workload (bench/workload.py: one model,
20 numeric + 5 categorical features, PSI + quality, 5-minute windows keyed by
``tenant``, ``--cohorts`` tenants) are produced to a new topic of ``--partitions``
partitions before anything is timed: one JSON event per message (``json``) or Arrow
IPC stream messages of ``--arrow-batch`` events (``arrow``), each tenant's events to
partition ``tenant % partitions`` (``--partitioning tenant``, a producer keyed by
cohort) or message by message round-robin (every partition holds every cohort, and a
cohort's watermark then follows whichever partition is read furthest ahead). Then,
for each ``--processes``, the job reads the topic from the beginning to its end, as
``drift run --until-end`` does:

* 1 process: :func:`flows.runner.run_kafka` in this process (one worker);
* P > 1: ``drift run --processes P --until-end --json``, the supported local cluster
  (``flows.cluster.run_local_cluster``), one worker per process.

Times, from ``time.perf_counter`` in this process:

``flow_s``
    from the dataflow's start (the source lists its partitions: the ``flow`` readiness
    check; for a cluster the first member to get there) to the moment the events-in
    counters (``drift_events_total`` plus non-late ``drift_dlq_total``) reach the
    number of events: the rate ``events_per_s`` is events / ``flow_s``;
``to_end_s``
    from the same start to the end of the run (windows closed at the end of the
    input, scored, written);
``wall_s``
    from the call (or the cluster's launch) to its end: interpreter and Bytewax start,
    baselines loaded, cluster connection.

Progress is read every ``--poll`` seconds: in this process from the Prometheus
registry, for a cluster from each member's ``/metrics`` and ``/readyz``. Broker start and
JVM warm-up are outside every time: the broker answers metadata and has taken all the
produced messages before a run starts.

A run is complete when every event is accounted for: the closed windows' event counts
plus the late events equal the events produced, with no other dead letter. A run that
is not complete makes the whole benchmark exit 1 after printing the document.

The broker is ``KAFKA_BOOTSTRAP`` when set, else one started from
``deploy/kafka/broker.py`` (its jars fetched with Maven on first use).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, cast

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402  (bench/ is a folder of scripts, not a package)

REPO_ROOT = Path(__file__).resolve().parents[1]


# -- broker and topics ----------------------------------------------------------------------


def broker_module() -> ModuleType:
    """deploy/kafka/broker.py, loaded by path (``deploy`` is tooling, not a package)."""
    name = "drift_deploy_kafka_broker"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO_ROOT / "deploy" / "kafka" / "broker.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the Kafka broker helper from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


PRODUCER_SETTINGS = {
    # Not timed: fill the topic fast. No compression, so the consumer pays none either.
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "compression.type": "none",
    "acks": "1",
    "enable.idempotence": False,
}


def payloads(fmt: str, n: int, cohorts: int, partitions: int, arrow_batch: int,
             partitioning: str) -> Iterator[tuple[int, int, bytes]]:
    """``(partition, events in the message, message)`` for the whole workload, lazily.

    ``tenant``: each tenant's events go to partition ``tenant % partitions``, as with a
    producer keyed by the cohort (an Arrow message holds events of one partition's
    tenants, in time order). ``round-robin``: message ``i`` goes to partition
    ``i % partitions``, so every partition holds every cohort.
    """
    if fmt == "json":
        for i, record in enumerate(workload.records(n, cohorts=cohorts)):
            tenant = int(record["tenant"].rsplit("-", 1)[1])
            partition = tenant % partitions if partitioning == "tenant" else i % partitions
            yield partition, 1, orjson.dumps(record)
        return
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from memory import ipc_message, workload_tables

    sent = 0
    waiting: list[list[pa.Table]] = [[] for _ in range(partitions)]

    def drain(partition: int, final: bool) -> Iterator[tuple[int, int, bytes]]:
        nonlocal sent
        tables = waiting[partition]
        rows = sum(t.num_rows for t in tables)
        if not rows or (rows < arrow_batch and not final):
            return
        table = pa.concat_tables(tables)
        cut = rows if final else rows - rows % arrow_batch
        for lo in range(0, cut, arrow_batch):
            part = table.slice(lo, min(arrow_batch, cut - lo)).combine_chunks()
            target = partition if partitioning == "tenant" else sent % partitions
            sent += 1
            yield target, part.num_rows, ipc_message(part)
        waiting[partition] = [table.slice(cut)] if cut < rows else []

    for table in workload_tables(n, cohorts):
        if partitioning == "tenant":
            tenant_ids = np.asarray(pc.cast(pc.utf8_slice_codeunits(table["tenant"], 7), pa.int64()))
            for partition in range(partitions):
                rows = np.flatnonzero(tenant_ids % partitions == partition)
                if rows.size:
                    waiting[partition].append(table.take(pa.array(rows)))
        else:
            waiting[0].append(table)
        for partition in range(partitions):
            yield from drain(partition, final=False)
    for partition in range(partitions):
        yield from drain(partition, final=True)


def produce(bootstrap: str, topic: str, fmt: str, n: int, cohorts: int, partitions: int,
            arrow_batch: int, partitioning: str) -> dict[str, Any]:
    """Write the workload to ``topic`` (see :func:`payloads`); wait until all is acknowledged."""
    from confluent_kafka import Producer

    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS})
    started = time.perf_counter()
    messages = 0
    size = 0
    events = 0
    for partition, count, value in payloads(fmt, n, cohorts, partitions, arrow_batch, partitioning):
        events += count
        while True:
            try:
                producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        messages += 1
        size += len(value)
    left = producer.flush(120)
    if left or failures:
        raise RuntimeError(f"producing to {topic!r}: {left} message(s) not delivered; errors: {failures[:3]}")
    if events != n:
        raise RuntimeError(f"produced {events} events, expected {n}")
    return {"messages": messages, "bytes": size, "seconds": round(time.perf_counter() - started, 2)}


def topic_end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    finally:
        consumer.close()


# -- the config -----------------------------------------------------------------------------


def write_config(folder: Path, bootstrap: str, topics: dict[str, str], name: str) -> Path:
    """The workload's drift.yaml with a ``kafka:`` section for these topics and no metrics server."""
    text = (folder / "drift.yaml").read_text(encoding="utf-8")
    kafka = (
        "kafka:\n"
        f"  bootstrap: \"{bootstrap}\"\n"
        f"  inference_topic: {topics['inference']}\n"
        f"  feature_topic: {topics['inference']}-features\n"
        f"  findings_topic: {topics['findings']}\n"
        f"  tickets_topic: {topics['tickets']}\n"
        f"  dlq_topic: {topics['dlq']}\n"
        "  batch_size: 5000\n"  # polls as large as the in-process benchmark's batches
    )
    text = text.replace("version: 1\n", "version: 1\n" + kafka, 1)
    text = text.replace("metrics:\n", "metrics:\n  port: 0\n", 1)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- progress -------------------------------------------------------------------------------


def consumed_in_process() -> float:
    """Events read so far by this process: decoded plus dead letters that are not late."""
    from drift import metrics

    total = 0.0
    for family in (*metrics.EVENTS_IN.collect(), *metrics.DLQ.collect()):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            if family.name == "drift_events" and labels.get("outcome") == "ok":
                total += sample.value
            elif family.name == "drift_dlq" and labels.get("reason") != "late":
                total += sample.value
    return total


_SAMPLE = re.compile(r'^(drift_events_total|drift_dlq_total)\{([^}]*)\}\s+(\S+)$', re.M)


def consumed_from_text(text: str) -> float:
    """The same count from a member's ``/metrics`` text."""
    total = 0.0
    for name, labels, value in _SAMPLE.findall(text):
        if name == "drift_events_total" and 'outcome="ok"' in labels:
            total += float(value)
        elif name == "drift_dlq_total" and 'reason="late"' not in labels:
            total += float(value)
    return total


class Watch:
    """Polls ``ready()`` and ``consumed()`` in a thread; keeps the first times they passed."""

    def __init__(self, ready: Callable[[], bool], consumed: Callable[[], float], target: float, poll: float) -> None:
        self._ready = ready
        self._consumed = consumed
        self._target = target
        self._poll = poll
        self.started_at: float | None = None
        self.consumed_at: float | None = None
        self.last_consumed = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self, ended: float) -> None:
        """Stop polling; a run that ended (at ``ended``) within one poll of its last count is read
        once more, and counted as consumed at its end."""
        self._stop.set()
        self._thread.join()
        if self.consumed_at is None:
            try:
                self.last_consumed = self._consumed()
            except OSError:
                return
            if self.last_consumed >= self._target:
                self.consumed_at = ended

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            if self.started_at is None:
                try:
                    if self._ready():
                        self.started_at = now
                except OSError:
                    pass
            if self.consumed_at is None:
                try:
                    self.last_consumed = self._consumed()
                except OSError:
                    pass
                if self.last_consumed >= self._target:
                    self.consumed_at = time.perf_counter()
                    if self.started_at is None:
                        self.started_at = now
            if self.started_at is not None and self.consumed_at is not None:
                return
            self._stop.wait(self._poll)


# -- one run --------------------------------------------------------------------------------


def run_one_process(config_path: Path, n: int, poll: float) -> dict[str, Any]:
    """``run_kafka(..., until_end=True)`` in this process, one worker."""
    from drift.config import load_config
    from drift.health import Health
    from flows.runner import run_kafka

    health = Health()
    before = consumed_in_process()
    called = time.perf_counter()
    cpu_before = _cpu(resource.RUSAGE_SELF)
    config = load_config(config_path)
    health.passed("config")
    watch = Watch(lambda: cast(dict[str, Any], health.readiness()[1]["checks"])["flow"],
                  lambda: consumed_in_process() - before,
                  n, poll).start()
    try:
        result = run_kafka(config, until_end=True, health=health)
    finally:
        ended = time.perf_counter()
        watch.stop(ended)
    summary = result.to_dict()
    # For a run that is not complete: where the first dead letters came from, and why.
    summary["dead_letter_examples"] = [
        {"reason": d.reason.value, "detail": d.detail[:300], "topic": d.topic, "partition": d.partition,
         "offset": d.offset, "value_bytes": len(d.value or b"")}
        for d in result.dlq if d.reason.value != "late"
    ][:5]
    return _timing(watch, called, ended, cpu_before, resource.RUSAGE_SELF) | {"summary": summary}


def run_cluster(config_path: Path, n: int, processes: int, poll: float) -> dict[str, Any]:
    """``drift run --processes P --until-end --json``: P processes on this host."""
    base = _consecutive_free_ports(processes)
    command = [sys.executable, "-m", "drift.cli", "run", "--config", str(config_path), "--processes", str(processes),
               "--until-end", "--json", "--metrics-port", str(base)]
    urls = [f"http://127.0.0.1:{base + i}" for i in range(processes)]

    def ready() -> bool:
        return any(_get(f"{url}/readyz") is not None for url in urls)

    def consumed() -> float:
        total = 0.0
        for url in urls:
            text = _get(f"{url}/metrics")
            total += consumed_from_text(text) if text is not None else 0.0
        return total

    log = tempfile.TemporaryFile()
    called = time.perf_counter()
    cpu_before = _cpu(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=REPO_ROOT)  # noqa: S603
    watch = Watch(ready, consumed, n, poll).start()
    try:
        stdout, _ = proc.communicate(timeout=3600)
    finally:
        ended = time.perf_counter()
        watch.stop(ended)
    if proc.returncode != 0:
        log.seek(0)
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n"
                           + log.read().decode(errors="replace")[-4000:])
    return _timing(watch, called, ended, cpu_before, resource.RUSAGE_CHILDREN) | {"summary": orjson.loads(stdout)}


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own local endpoint
            return str(response.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _consecutive_free_ports(count: int) -> int:
    """A port ``p`` such that ``p .. p+count-1`` were all free a moment ago.

    Chosen below the kernel's ephemeral range: the progress polls open many client
    connections, and one of them could take a member's port before it binds it.
    """
    low, _high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(max(1024, low - 12000), low - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"found no {count} consecutive free ports")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return float(usage.ru_utime + usage.ru_stime)


def _timing(watch: Watch, called: float, ended: float, cpu_before: float, who: int) -> dict[str, Any]:
    started = watch.started_at
    consumed = watch.consumed_at
    return {
        # CPU seconds of the whole call (this process, or the cluster's processes once
        # waited for): start-up and the end included; less sensitive to a shared machine.
        "cpu_s": round(_cpu(who) - cpu_before, 2),
        "flow_s": round(consumed - started, 3) if started is not None and consumed is not None else None,
        "to_end_s": round(ended - started, 3) if started is not None else None,
        "wall_s": round(ended - called, 3),
        "startup_s": round(started - called, 3) if started is not None else None,
        "consumed_by_counters": watch.last_consumed,
    }


def account(summary: dict[str, Any], n: int) -> dict[str, Any]:
    """Whether every produced event was counted: windows' events + late = N, no other dead letter."""
    late = int(summary["late"])
    in_windows = int(summary["decoded"]) - late
    other = int(summary["dlq"]["total"]) - late
    return {
        "dead_letter_examples": summary.get("dead_letter_examples", []),
        "window_events": in_windows, "late": late, "dlq_other": other,
        "dlq_by_reason": summary["dlq"]["by_reason"], "windows": summary["windows"],
        "findings": summary["findings_total"], "complete": in_windows + late == n and other == 0,
    }


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--format", nargs="+", choices=["json", "arrow"], default=["json", "arrow"])
    parser.add_argument("--cohorts", type=int, default=10)
    parser.add_argument("--arrow-batch", type=int, default=1000, help="events per Arrow IPC message")
    parser.add_argument("--partitioning", choices=["tenant", "round-robin"], default="tenant",
                        help="which partition an event goes to: its tenant's (keyed producer) or the next one")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between progress reads")
    args = parser.parse_args(argv)
    if min(args.events, args.partitions, args.cohorts, args.arrow_batch, *args.processes) < 1:
        parser.error("--events, --partitions, --cohorts, --arrow-batch and --processes must be positive")

    broker_lib = broker_module()
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    broker = None
    broker_start_s = None
    if external:
        broker_lib.check_bootstrap(external, timeout=30)
        bootstrap = external
    else:
        started = time.perf_counter()
        broker = broker_lib.KafkaBroker(broker_lib.ensure_jars()).start(timeout=180)
        broker_start_s = round(time.perf_counter() - started, 1)
        bootstrap = broker.bootstrap
    runs: list[dict[str, Any]] = []
    produced: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="drift-bench-kafka-") as tmp:
            folder = Path(tmp)
            workload.prepare(folder, cohorts=args.cohorts)
            from drift.config import load_config
            from flows.runner import load_profiles

            load_profiles(load_config(folder / "drift.yaml"))  # build and store the reference once, untimed
            for fmt in args.format:
                inference = f"bench-{fmt}-{uuid.uuid4().hex[:8]}"
                broker_lib.create_topics(bootstrap, [inference], partitions=args.partitions)
                print(f"kafka_throughput: producing {args.events:,} events ({fmt}) to {inference}",
                      file=sys.stderr, flush=True)
                produced[fmt] = produce(bootstrap, inference, fmt, args.events, args.cohorts, args.partitions,
                                        args.arrow_batch, args.partitioning)
                produced[fmt]["topic"] = inference
                produced[fmt]["end_offsets"] = topic_end_offsets(bootstrap, inference, args.partitions)
                for processes in args.processes:
                    suffix = uuid.uuid4().hex[:8]
                    topics = {"inference": inference, **{k: f"bench-{k}-{suffix}" for k in ("findings", "tickets", "dlq")}}
                    broker_lib.create_topics(bootstrap, [topics["findings"], topics["tickets"], topics["dlq"]])
                    config_path = write_config(folder, bootstrap, topics, f"drift-{fmt}-{processes}-{suffix}.yaml")
                    print(f"kafka_throughput: {fmt}, {processes} process(es) ...", file=sys.stderr, flush=True)
                    load_before = [round(x, 2) for x in os.getloadavg()]
                    if processes == 1:
                        timing = run_one_process(config_path, args.events, args.poll)
                    else:
                        timing = run_cluster(config_path, args.events, processes, args.poll)
                    summary = timing.pop("summary")
                    accounting = account(summary, args.events)
                    flow_s = timing["flow_s"]
                    run = {
                        "format": fmt, "processes": processes, "workers_per_process": 1, "events": args.events,
                        **timing,
                        "events_per_s": round(args.events / flow_s) if flow_s else None,
                        "events_per_s_to_end": round(args.events / timing["to_end_s"]) if timing["to_end_s"] else None,
                        "events_per_cpu_s": round(args.events / timing["cpu_s"]) if timing["cpu_s"] else None,
                        "accounting": accounting,
                        "load_average_before": load_before,
                        "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    }
                    runs.append(run)
                    print(f"kafka_throughput: {fmt}, {processes} process(es): {run['events_per_s']} events/s "
                          f"(flow {flow_s} s, to end {timing['to_end_s']} s, wall {timing['wall_s']} s), "
                          f"complete={accounting['complete']}", file=sys.stderr, flush=True)
    finally:
        if broker is not None:
            broker.stop()
    document = {
        "benchmark": "kafka_throughput",
        "events": args.events, "partitions": args.partitions, "cohorts": args.cohorts,
        "arrow_batch": args.arrow_batch, "partitioning": args.partitioning,
        "target_events_per_s_1_process": 100_000,
        "runs": runs, "produced": produced,
        "broker": {"kafka_version": broker_lib.kafka_version(), "external": bool(external),
                   "start_s": broker_start_s},
        "machine": workload.machine(),
        "complete": all(run["accounting"]["complete"] for run in runs),
    }
    print(json.dumps(document, indent=2))
    if not document["complete"]:
        lost = [f"{r['format']}/{r['processes']}p: {r['accounting']}" for r in runs if not r["accounting"]["complete"]]
        print("error: events not accounted for: " + "; ".join(lost), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
