"""Running the dataflow: references, sources and sinks chosen from the config."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from connectors.files import EventFileSource
from connectors.memory import ListSink, TeeSink
from connectors.reference import read_columns
from drift.config import Config, ModelConfig
from drift.errors import BaselineError, ReferenceDataError
from drift.events import DeadLetter
from drift.findings import Finding, Severity
from drift.reference import ReferenceProfile, build_reference, load_reference, save_reference
from drift.tickets import TicketEvent
from flows.pipeline import Outputs, WindowReport, build_flow


def build_model_reference(config: Config, model: ModelConfig, parquet: Path) -> ReferenceProfile:
    """Profile ``model``'s features from a Parquet file of training data."""
    types = {name: spec.type for name, spec in model.features.items()}
    columns, n_rows = read_columns(parquet, list(types))
    return build_reference(model.name, columns, types, model.psi_bins(), str(parquet), n_rows)


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
        except BaselineError:
            if model.reference is None:
                raise
        parquet = config.resolve(model.reference.parquet)
        if log is not None:
            log(f"building the reference profile of {model.name!r} from {parquet}")
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
    return profiles


@dataclass
class RunResult:
    """What a bounded run produced (replay, demo, or ``run --until-end``)."""

    windows: list[WindowReport]
    findings: list[Finding]
    tickets: list[TicketEvent]
    dlq: list[DeadLetter]

    def to_dict(self, all_findings: bool = False) -> dict[str, Any]:
        late = sum(1 for d in self.dlq if d.reason.value == "late")
        decoded = sum(w.n_events for w in self.windows) + late
        reasons = Counter(d.reason.value for d in self.dlq)
        shown = [f for f in self.findings if all_findings or f.severity is not Severity.OK]
        shown.sort(key=lambda f: (f.window.start, f.cohort.key, f.detector, f.feature or ""))
        return {
            "events": decoded + len(self.dlq) - late,
            "decoded": decoded,
            "late": late,
            "dlq": {"total": len(self.dlq), "by_reason": dict(sorted(reasons.items()))},
            "windows": len(self.windows),
            "findings_total": len(self.findings),
            "findings": [f.to_dict() for f in shown],
            "tickets": [t.to_dict() for t in self.tickets],
        }


def run_file(config: Config, events: Path, now: Callable[[], datetime] | None = None) -> RunResult:
    """The dataflow over one JSONL/Parquet file, in this process, to the end."""
    from bytewax.testing import run_main

    profiles = load_profiles(config, log=lambda text: print(text, file=sys.stderr))
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), windows=ListSink())
    flow = build_flow(config, profiles, EventFileSource(events), outputs, now=now)
    run_main(flow)
    return _result(outputs)


def _result(outputs: Outputs) -> RunResult:
    def items(sink: Any) -> list[Any]:
        return list(sink.items) if isinstance(sink, (ListSink, TeeSink)) else []

    return RunResult(
        windows=items(outputs.windows), findings=items(outputs.findings),
        tickets=items(outputs.tickets), dlq=items(outputs.dlq),
    )


def kafka_outputs(config: Config, keep: bool = False) -> Outputs:
    """Output topics; with ``keep`` every item is also kept in memory for the run summary."""
    from connectors.kafka import JsonTopicSink

    kafka = config.kafka
    settings = kafka.client_settings()
    sinks: list[Any] = [
        JsonTopicSink(kafka.bootstrap, kafka.findings_topic, settings, Finding.to_dict, lambda f: f.cohort.key),
        JsonTopicSink(kafka.bootstrap, kafka.tickets_topic, settings, TicketEvent.to_dict, lambda t: t.ticket.id),
        JsonTopicSink(kafka.bootstrap, kafka.dlq_topic, settings, DeadLetter.to_dict,
                      lambda d: f"{d.topic}:{d.partition}:{d.offset}"),
    ]
    if keep:
        sinks = [TeeSink(sink) for sink in sinks]
    return Outputs(findings=sinks[0], tickets=sinks[1], dlq=sinks[2], windows=ListSink() if keep else None)


def run_kafka(
    config: Config,
    workers: int = 1,
    processes: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    recovery_dir: Path | None = None,
    until_end: bool = False,
) -> RunResult:
    """The stream job on Kafka. With ``until_end`` it stops at the end of every partition."""
    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig

    from connectors.kafka import inference_source, to_raw

    profiles = load_profiles(config, log=lambda text: print(text, file=sys.stderr))
    kafka = config.kafka
    source = inference_source(
        kafka.bootstrap, kafka.inference_topic, kafka.client_settings(), tail=not until_end,
        batch_size=kafka.batch_size,
    )
    outputs = kafka_outputs(config, keep=until_end)
    flow = build_flow(config, profiles, source, outputs, to_raw=to_raw)
    recovery = RecoveryConfig(str(recovery_dir)) if recovery_dir is not None else None
    if processes > 1 and addresses is None:
        raise ValueError("--processes above 1 needs --addresses (one host:port per process)")
    cli_main(
        flow, workers_per_process=workers, process_id=process_id, addresses=addresses,
        recovery_config=recovery,
    )
    return _result(outputs)
