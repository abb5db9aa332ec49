"""Running the dataflow: references, sources and sinks chosen from the config."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Callable

from bytewax.outputs import DynamicSink

from connectors.files import EventFileError, EventFileSource
from connectors.memory import CountSink, FanOutSink, ListSink, TeeSink
from connectors.reference import read_columns, read_embeddings
from drift.backend import resolve_device
from drift.config import Config, ModelConfig, TicketsConfig
from drift.errors import ConfigError, BaselineError
from drift.events import DeadLetter
from drift.findings import Finding, Severity
from drift.health import Health
from drift.reference import (
    ReferenceProfile, baseline_path, build_reference, load_embeddings, load_reference, save_embeddings, save_reference,
)
from drift.tickets import TicketEvent
from flows.pipeline import Outputs, WindowReport, build_flow
from flows.shutdown import Interrupted, Shutdown
from flows.labels import needs_label_events
from flows.value_skew import needs_feature_events


def build_model_reference(config: Config, model: ModelConfig, parquet: Path) -> ReferenceProfile:
    """Profile ``model``'s features from a Parquet file of training data."""
    types = {name: spec.type for name, spec in model.features.items()}
    predictions = model.prediction_columns()
    categorical = [name for name, kind in types.items() if kind != "numeric"]
    categorical += [spec.column for spec in predictions.values() if spec.type != "numeric"]
    columns, n_rows = read_columns(
        parquet, [*types, *(spec.column for spec in predictions.values())], categorical=categorical,
    )
    return build_reference(model.name, columns, types, model.psi_bins(), str(parquet), n_rows, predictions)


def load_profiles(config: Config, log: Callable[[str], None] | None = None) -> dict[str, ReferenceProfile]:
    """The reference profile of every model: stored, or built now from ``reference.parquet``.

    A stored profile (``drift baseline build``) wins. Without one, a model with a
    ``reference`` in the config is profiled from it and the result stored, so the
    next start reads the same bins.
    """
    directory = config.resolve(config.baselines.dir)
    profiles = {}
    for model in config.models:
        try:
            profiles[model.name] = load_reference(directory, model.name)
            continue
        except BaselineError as exc:
            if model.reference is None:
                raise
            refused = str(exc) if baseline_path(directory, model.name).exists() else None
        parquet = config.resolve(model.reference.parquet)
        if log is not None:
            why = f" (the stored one is refused: {refused})" if refused else ""
            log(f"building the reference profile of {model.name!r} from {parquet}{why}")
        profile = build_model_reference(config, model, parquet)
        save_reference(profile, directory)
        profiles[model.name] = profile
    for name, profile in profiles.items():
        missing = sorted(set(config.model(name).features) - set(profile.features))
        if missing:
            raise BaselineError(
                f"the stored baseline of {name!r} lacks features {missing}; rebuild it with "
                f"'drift baseline build --config CONFIG --model {name} --reference PATH.parquet'"
            )
    for model in config.models:
        if model.embedding_sampling() is not None:
            profiles[model.name] = replace(
                profiles[model.name], embeddings=load_model_embeddings(config, model, log),
            )
    return profiles


def build_model_embeddings(config: Config, model: ModelConfig, parquet: Path) -> dict[str, Any]:
    """Read ``model``'s reference embeddings from Parquet and store them (``.npy``) with its baseline."""
    sampling = model.embedding_sampling()
    if sampling is None:
        return {}
    rows = read_embeddings(parquet, sampling.field, sampling.dim)
    save_embeddings(rows, config.resolve(config.baselines.dir), model.name, sampling.field)
    return {sampling.field: rows}


def load_model_embeddings(
    config: Config, model: ModelConfig, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Reference embeddings of ``model`` by field: stored (``.npy``), or read now from its reference Parquet.

    As with profiles, a stored file wins; without one the model's ``reference``
    Parquet is read (only the embedding column) and the rows stored for the next start.
    """
    sampling = model.embedding_sampling()
    if sampling is None:
        return {}
    for _, settings in model.detector_configs():
        # device: gpu without cupy (or a GPU) fails here, at start, naming the install command.
        resolve_device(getattr(settings, "device", "cpu"))
    directory = config.resolve(config.baselines.dir)
    try:
        return {sampling.field: load_embeddings(directory, model.name, sampling.field, sampling.dim)}
    except BaselineError:
        if model.reference is None:
            raise
    parquet = config.resolve(model.reference.parquet)
    if log is not None:
        log(f"reading the reference embeddings of {model.name!r} ({sampling.field}) from {parquet}")
    return build_model_embeddings(config, model, parquet)


@dataclass
class RunResult:
    """What a bounded run produced (replay, demo, or ``run --until-end``)."""

    windows: list[WindowReport]
    findings: list[Finding]
    tickets: list[TicketEvent]
    dlq: list[DeadLetter]
    stopped: bool = False
    """The run was stopped by SIGTERM before the end of its input."""
    feature_events: int = 0
    """Decoded feature events (value skew); undecodable ones are in ``dlq``."""
    label_events: int = 0
    """Decoded label events (models with ``labels:``); undecodable ones are in ``dlq``."""
    quality: list[Any] = field(default_factory=list)
    """Quality records of the cohort windows judged on their labels (:class:`drift.labels.judging.QualityReport`)."""
    halts: list[Finding] = field(default_factory=list)
    """Halt signals of the canary comparisons (``canary.halt`` findings at alert)."""

    def to_dict(self, all_findings: bool = False) -> dict[str, Any]:
        late = sum(1 for d in self.dlq if d.reason.value == "late")
        decoded = sum(w.n_events for w in self.windows) + late
        reasons = Counter(d.reason.value for d in self.dlq)
        shown = [f for f in self.findings if all_findings or f.severity is not Severity.OK]
        shown.sort(key=lambda f: (f.window.start, f.cohort.key, f.detector, f.feature or ""))
        return {
            "events": decoded + self.feature_events + self.label_events + len(self.dlq) - late,
            "decoded": decoded,
            "feature_events": self.feature_events,
            "label_events": self.label_events,
            "late": late,
            "dlq": {"total": len(self.dlq), "by_reason": dict(sorted(reasons.items()))},
            "windows": len(self.windows),
            "findings_total": len(self.findings),
            "findings": [f.to_dict() for f in shown],
            "tickets": [t.to_dict() for t in self.tickets],
            "quality": [q.to_dict() for q in sorted(self.quality, key=lambda q: (q.window.start, q.cohort.key))],
            "halts": [f.to_dict() for f in self.halts],
        }


GC_THRESHOLDS = (50_000, 20, 100)
"""Collection thresholds of the job's processes (Python's defaults: 700, 10, 10)."""
_gc_tuned = False


def tune_gc() -> None:
    """Collect cyclic garbage less often than Python's defaults, once the job is loaded.

    The job holds many long-lived objects (every cohort's open window summary, its queued
    rows, the reference profiles) and frees most short-lived ones by reference counting;
    with the default thresholds the collector rescans that state over and over (with
    10,000 cohorts about a quarter of the time, and the run twice as slow:
    docs/benchmarks.md). Objects alive at this call (libraries, profiles) are moved out
    of the collector's generations (``gc.freeze``), once per process: a process that runs
    flows one after another (tests, a notebook) does not freeze its later garbage.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_history(
    config: Config, events: Path, store: str | None = None, progress: Callable[[int], None] | None = None,
) -> RunResult:
    """:func:`run_file` for ``replay`` and ``backtest``: the tickets go to ``store``
    (:meth:`Config.with_ticket_store`), or without one to a scratch store discarded at the
    end. A scratch store sends nothing: its ticket events would reach a real receiver under a
    new store id on every run, and history must not land in the live job's store by accident.
    """
    if store is not None:
        return run_file(config.with_ticket_store(store), events, progress=progress)
    with tempfile.TemporaryDirectory(prefix="drift-history-") as folder:
        scratch = TicketsConfig(store=f"sqlite:///{Path(folder) / 'tickets.db'}", sinks=[])
        return run_file(config.model_copy(update={"tickets": scratch}), events, progress=progress)


def run_file(
    config: Config, events: Path, now: Callable[[], datetime] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """The dataflow over one JSONL/Parquet file, in this process, to the end.

    ``progress`` is called with the number of lines (rows) read after each batch.
    """
    from bytewax.testing import run_main

    profiles = load_profiles(config, log=lambda text: print(text, file=sys.stderr))
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), windows=ListSink(),
                      feature_events=CountSink(), halts=ListSink(), quality=ListSink(), label_events=CountSink())
    outputs = _with_webhook(config, outputs)
    # Replays and backtests keep every finding: their reports draw each window's values.
    flow = build_flow(config, profiles, EventFileSource(events, on_batch=progress), outputs, now=now, durable=False,
                      ok_findings=True)
    tune_gc()
    try:
        run_main(flow)
    except Exception as exc:
        # A damaged part of the file shows up inside the engine: say what it was, in one line.
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, EventFileError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None
    return _result(outputs)


def webhook_sink(config: Config) -> Any | None:
    """The webhook sink of ticket events when ``tickets.sinks`` lists ``webhook`` (else None).

    The job has one spool, ``tickets.webhook.spool_dir`` (relative to the config file),
    which every worker and process writes and drains; a thread of each process sends it,
    so the flow never waits on the receiver, and a restart finds and sends what is left.
    """
    from connectors.ticket_store import open_store
    from connectors.webhook import WebhookDelivery, ticket_event_sink

    hook = config.tickets.webhook
    if "webhook" not in config.tickets.sinks or hook is None:
        return None
    spool = config.resolve(hook.spool_dir).resolve()
    token = hook.token.get_secret_value() if hook.token is not None else None
    store_ids: list[str] = []

    def delivery() -> WebhookDelivery:
        return WebhookDelivery(
            hook.url, spool, token=token, timeout_s=hook.timeout.total_seconds(),
            max_attempts=hook.max_attempts, backoff_s=hook.backoff.total_seconds(),
            drain_interval_s=hook.drain_interval.total_seconds(), queue_size=hook.queue_size,
        )

    def store_id() -> str:
        # Ticket ids start at 1 in every store: the store's own id makes the keys global.
        if not store_ids:
            with open_store(config) as store:
                store_ids.append(store.store_id())
        return store_ids[0]

    return ticket_event_sink(spool, delivery, store_id, hook.flush_timeout.total_seconds())


def _with_webhook(config: Config, outputs: Outputs) -> Outputs:
    """``outputs`` whose ticket events also go to the webhook, when the config asks for it."""
    hook = webhook_sink(config)
    if hook is None:
        return outputs
    tickets = outputs.tickets
    if isinstance(tickets, ListSink):
        tickets = TeeSink(hook)  # keeps the items for the summary, like the ListSink did
    elif isinstance(tickets, TeeSink):
        tickets = TeeSink(FanOutSink(tickets.inner, hook))
    elif isinstance(tickets, DynamicSink):
        tickets = FanOutSink(tickets, hook)
    else:
        raise TypeError(f"cannot add the webhook to a {type(tickets).__name__} ticket sink")
    return replace(outputs, tickets=tickets)


def _result(outputs: Outputs) -> RunResult:
    def items(sink: Any) -> list[Any]:
        return list(sink.items) if isinstance(sink, (ListSink, TeeSink)) else []

    return RunResult(
        windows=items(outputs.windows), findings=items(outputs.findings),
        # Events of this run; ones a crashed earlier run left in the outbox were published too.
        tickets=[t for t in items(outputs.tickets) if isinstance(t, TicketEvent)], dlq=items(outputs.dlq),
        feature_events=outputs.feature_events.count if isinstance(outputs.feature_events, CountSink) else 0,
        label_events=outputs.label_events.count if isinstance(outputs.label_events, CountSink) else 0,
        quality=items(outputs.quality),
        halts=items(outputs.halts),
    )


def kafka_outputs(config: Config, keep: bool = False, stop: threading.Event | None = None) -> Outputs:
    """Output topics; with ``keep`` every item is also kept in memory for the run summary.

    Dead letters' values are cut to ``kafka.dlq_max_value_bytes``; what a topic does not
    take goes to ``kafka.spill_dir`` (see :class:`connectors.kafka.JsonTopicSink`).
    """
    from connectors.kafka import JsonTopicSink

    kafka = config.kafka
    settings = kafka.client_settings()
    limit = kafka.dlq_max_value_bytes
    sink = partial(JsonTopicSink, kafka.bootstrap, settings=settings, spill_dir=config.resolve(kafka.spill_dir),
                   attempts=kafka.produce_attempts, backoff_s=kafka.produce_backoff.total_seconds(), stop=stop)
    sinks: list[Any] = [
        sink(kafka.findings_topic, to_dict=Finding.to_dict, key_of=lambda f: f.cohort.key),
        # Ticket events, or the outbox's stored ones after a restart: both give their document.
        sink(kafka.tickets_topic, to_dict=lambda t: t.to_dict(), key_of=lambda t: t.ticket.id),
        sink(kafka.dlq_topic, to_dict=lambda d: d.to_dict(max_value_bytes=limit),
             key_of=lambda d: f"{d.topic}:{d.partition}:{d.offset}"),
        # Canary halt signals: the halt finding's document, keyed by the route's cohort.
        sink(kafka.halt_topic, to_dict=Finding.to_dict, key_of=lambda f: f.cohort.key),
    ]
    if keep:
        sinks = [TeeSink(sink) for sink in sinks]
    return Outputs(findings=sinks[0], tickets=sinks[1], dlq=sinks[2], windows=ListSink() if keep else None,
                   feature_events=CountSink() if keep else None, halts=sinks[3],
                   quality=ListSink() if keep else None, label_events=CountSink() if keep else None)


DEFAULT_SNAPSHOT_INTERVAL = timedelta(seconds=10)
"""Epoch (snapshot) interval of ``drift run``: at most this much input is read again after a crash."""

RECOVERY_PART_GLOB = "part-*.sqlite3"


def recovery_partitions(directory: Path) -> list[Path]:
    """The recovery partition files already in ``directory`` (none when it is missing)."""
    return sorted(directory.glob(RECOVERY_PART_GLOB)) if directory.is_dir() else []


PER_COHORT_STEPS = ("summarise_windows", "track_schema", "detect_drift", "apply_policy")
"""Steps of the per-cohort window state that the cohort arrays replaced (their snapshots are not read)."""


def check_snapshot_format(partitions: list[Path]) -> None:
    """Refuse a recovery folder whose snapshots hold per-cohort window state (an older drift's).

    The cohort arrays keep one state per model shard under other step names; resuming such a
    folder would drop its open windows without a word, so it is refused with what to do.
    """
    import sqlite3

    for path in partitions:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                rows = db.execute(
                    "SELECT step_id FROM snaps WHERE ser_change IS NOT NULL GROUP BY step_id").fetchall()
        except sqlite3.Error:
            continue  # not readable as a partition: Bytewax says why when it opens it
        old = sorted({step for (step,) in rows if step.rsplit(".", 1)[-1] in PER_COHORT_STEPS})
        if old:
            raise ConfigError([
                f"{path.parent}: the recovery snapshots hold per-cohort window state ({', '.join(old)}) written "
                "by an older drift, which this version keeps as cohort arrays per model shard; finish them with "
                "that version (drift run --until-end), or start with a new --recovery-dir (the windows open in "
                "the old snapshot are then lost)"])


def recorded_shards(directory: Path) -> set[int]:
    """The shard counts of the cohort-window state keys in a recovery folder's snapshots."""
    import sqlite3

    from flows.shard_windows import STEP_ID, shards_of_key

    found: set[int] = set()
    for path in recovery_partitions(directory):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                keys = db.execute(
                    "SELECT DISTINCT state_key FROM snaps WHERE step_id LIKE ?", (f"%.{STEP_ID}",)).fetchall()
        except sqlite3.Error:
            continue
        found.update(n for (key,) in keys if (n := shards_of_key(key)) is not None)
    return found


def resolve_shards(config: Config, workers: int, recovery_dir: Path | None) -> int:
    """``engine.shards`` for this run: ``auto`` is the count the recovery folder was started
    with, else ``workers`` (the cluster's); a count that disagrees with the folder's is refused."""
    recorded = recorded_shards(recovery_dir) if recovery_dir is not None else set()
    setting = config.engine.shards
    if len(recorded) > 1:
        raise ConfigError([f"{recovery_dir}: the snapshots hold cohort state of several shard counts "
                           f"({', '.join(map(str, sorted(recorded)))}); start with a new --recovery-dir"])
    if isinstance(setting, int):
        if recorded and recorded != {setting}:
            raise ConfigError([
                f"engine.shards: {setting}, but {recovery_dir} holds cohort state written with "
                f"{recorded.pop()} shards; keep that count (or engine.shards: auto) for this folder, or drain it "
                "(drift run --until-end) and start with a new --recovery-dir"])
        return setting
    return recorded.pop() if recorded else max(1, workers)


def prepare_recovery_dir(directory: Path, count: int, process_id: int | None = None, processes: int = 1) -> int:
    """Create the Bytewax recovery partitions in ``directory`` unless it already has some.

    A missing or empty folder gets ``count`` partitions; one that has
    partitions is used as it is, whatever ``count`` says, because the number
    of partitions is fixed once created (the worker count can change between
    runs: Bytewax redistributes the state over the workers on resume).

    For one process of a multi-host cluster (``process_id`` given and
    ``processes`` above 1) each host keeps its own folder, and this process
    creates only its share: partition ``i`` of ``count`` lives with process
    ``i % processes``. Together the hosts hold every partition exactly once.

    Returns the number of partition files in ``directory`` afterwards.
    """
    from bytewax.recovery import init_db_dir

    existing = recovery_partitions(directory)
    if existing:
        check_snapshot_format(existing)
        return len(existing)
    if count < 1:
        raise ValueError(f"the number of recovery partitions must be at least 1; got {count}")
    directory.mkdir(parents=True, exist_ok=True)
    if process_id is None or processes <= 1:
        init_db_dir(directory, count)
        return count
    # init_db_dir creates all of them; keep this process's share. Each file
    # records its index and the total count, so the shares fit together.
    with tempfile.TemporaryDirectory(prefix=".drift-recovery-", dir=directory) as scratch:
        init_db_dir(Path(scratch), count)
        for index in range(process_id, count, processes):
            name = f"part-{index}.sqlite3"
            os.replace(Path(scratch) / name, directory / name)
    return len(recovery_partitions(directory))


def run_kafka(
    config: Config,
    workers: int = 1,
    processes: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    recovery_dir: Path | None = None,
    until_end: bool = False,
    snapshot_interval: timedelta = DEFAULT_SNAPSHOT_INTERVAL,
    health: Health | None = None,
    shutdown: Shutdown | None = None,
) -> RunResult:
    """The stream job on Kafka, as one process of a cluster of ``processes``.

    With ``until_end`` it stops at the end of every partition. With
    ``recovery_dir`` it snapshots its state and input offsets every
    ``snapshot_interval`` and resumes from the last snapshot; a missing or
    empty folder gets one recovery partition per worker of the cluster.

    The dataflow starts once the broker answers (one line on stderr says when it
    does not, and again when it answers after all); while it does not, or later
    loses it, ``health`` is not ready. SIGTERM or SIGINT stops the job in any of
    these states (``shutdown``, installed here when not given; see
    :mod:`flows.shutdown`): the run returns with ``stopped`` set.
    """
    if shutdown is not None:
        return _run_kafka(config, workers, processes, process_id, addresses, recovery_dir, until_end,
                          snapshot_interval, health, shutdown)
    with Shutdown() as own:
        return _run_kafka(config, workers, processes, process_id, addresses, recovery_dir, until_end,
                          snapshot_interval, health, own)
    return RunResult([], [], [], [], stopped=True)  # the dataflow was interrupted (several workers)


def _run_kafka(
    config: Config, workers: int, processes: int, process_id: int | None, addresses: list[str] | None,
    recovery_dir: Path | None, until_end: bool, snapshot_interval: timedelta, health: Health | None,
    shutdown: Shutdown,
) -> RunResult:
    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig

    from connectors.kafka import KafkaWatch, inference_source, spill_undelivered, to_raw

    if processes > 1 and (addresses is None or process_id is None):
        raise ValueError("a cluster of several processes needs the addresses of all and this process's id")
    stop = shutdown.stop
    if health is not None:
        shutdown.on_stop(health.stopping)
    shutdown.before_exit(spill_undelivered)
    profiles = load_profiles(config, log=lambda text: print(text, file=sys.stderr))
    if health is not None:
        health.passed("baselines")
    kafka = config.kafka
    timeout = kafka.connect_timeout.total_seconds()

    def started(_parts: list[str]) -> None:
        if health is not None:
            health.passed("flow")

    watch = KafkaWatch(kafka.bootstrap, kafka.inference_topic, kafka.client_settings(), timeout,
                       on_change=_reachability_reporter(kafka.bootstrap, health)).start()
    try:
        # Nothing is built against a broker that does not answer: wait for it, stoppable.
        while not watch.reachable.wait(0.2):
            if stop.is_set():
                return RunResult([], [], [], [], stopped=True)
        single_worker = workers == 1 and processes == 1
        source = inference_source(
            kafka.bootstrap, kafka.inference_topic, kafka.client_settings(), tail=not until_end,
            batch_size=kafka.batch_size, on_start=started, stop=stop if single_worker else None, timeout=timeout,
        )
        outputs = _with_webhook(config, kafka_outputs(config, keep=until_end, stop=stop))
        # Value skew (a skew detector with values:) also reads the feature events' topic.
        features = inference_source(
            kafka.bootstrap, kafka.feature_topic, kafka.client_settings(), tail=not until_end,
            batch_size=kafka.batch_size, stop=stop if single_worker else None, timeout=timeout,
        ) if needs_feature_events(config) else None
        # Delayed labels (a model with labels:) come from the labels topic.
        labels = inference_source(
            kafka.bootstrap, kafka.labels_topic, kafka.client_settings(), tail=not until_end,
            batch_size=kafka.batch_size, stop=stop if single_worker else None, timeout=timeout,
        ) if needs_label_events(config) else None
        flow = build_flow(
            config, profiles, source, outputs, to_raw=to_raw, feature_source=features, label_source=labels,
            durable=recovery_dir is not None, shards=resolve_shards(config, workers * processes, recovery_dir),
        )
        recovery = None
        if recovery_dir is not None:
            count = prepare_recovery_dir(
                recovery_dir, workers * processes, process_id=process_id if processes > 1 else None,
                processes=processes,
            )
            print(f"recovery: {count} partition(s) in {recovery_dir}, snapshot every "
                  f"{snapshot_interval.total_seconds():g}s", file=sys.stderr)
            recovery = RecoveryConfig(str(recovery_dir))
        tune_gc()
        # With several workers Bytewax's main thread only polls for signals: the
        # handler raises there to stop them all. A single worker is the main thread,
        # where an exception would count as an operator's failure: the sources and
        # sinks check ``stop`` instead.
        shutdown.interrupt = not single_worker
        try:
            if not stop.is_set():
                cli_main(
                    flow, workers_per_process=workers, process_id=process_id if processes > 1 else None,
                    addresses=addresses if processes > 1 else None, epoch_interval=snapshot_interval,
                    recovery_config=recovery,
                )
        except Interrupted:
            pass
        except Exception:
            if not stop.is_set():
                raise
            # Stopped while the engine started (a source without partitions, ...): a stop all the same.
        finally:
            shutdown.interrupt = False
    finally:
        watch.close()
    result = _result(outputs)
    result.stopped = stop.is_set()
    return result


def _reachability_reporter(bootstrap: str, health: Health | None) -> Callable[[str | None], None]:
    """One stderr line (and the readiness problem) each time the broker stops or starts answering."""
    state = {"connected": False}

    def report(reason: str | None) -> None:
        if reason is None:
            line = f"Kafka at {bootstrap} answers again" if state["connected"] else f"connected to Kafka at {bootstrap}"
            print(f"drift: {line}", file=sys.stderr, flush=True)
            state["connected"] = True
            if health is not None:
                health.problem("kafka", None)
            return
        what = f"{'lost' if state['connected'] else 'cannot reach'} Kafka at {bootstrap} ({reason})"
        print(f"drift: {what}; retrying", file=sys.stderr, flush=True)
        if health is not None:
            health.problem("kafka", what)

    return report
