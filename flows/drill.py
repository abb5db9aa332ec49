"""Game days: a history with a drift injected, run through the real flow, and what the flow made of it.

:func:`inject` copies a JSONL or Parquet history to a JSONL file in which the events of
one model's chosen cohorts, from a chosen time on, carry a drift in chosen features:

- a **numeric** feature moves by ``shift`` reference standard deviations (``scale="std"``,
  the population standard deviation of the reference profile, or of the reference Parquet
  for a profile stored without it), or by ``shift`` times its own value (``scale="share"``:
  ``x * (1 + shift)``). Values that are not finite numbers are left as they are.
- a **categorical** feature has a share ``shift`` (0 to 1) of its values replaced by the
  reference's least frequent category (ties: the first name in sorted order), a value the
  model knows, so that only distribution detectors see the change (a new value would
  also trip the quality checks' unseen category). Which values are replaced is drawn from
  a generator seeded with ``seed`` and the feature's name, one draw per value in file
  order: the same history, spec and seed give the same drilled file.

Every line keeps its line number (a dead letter of the drilled run points at the line of
the original file), and lines that are not drilled are copied byte for byte.

:func:`drill` runs the drilled file exactly as ``drift replay`` does
(:func:`flows.runner.run_history`) and :func:`assess` reads the findings and ticket
events: for each drilled cohort and feature, the first window at warn and at alert after
the drill's start, the ticket that followed, and the findings and tickets elsewhere
during the drill (false alarms).
"""

from __future__ import annotations

import math
import sys
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from connectors.files import iter_file
from drift.config import Config, ModelConfig
from drift.duration import format_duration
from drift.errors import DriftError
from drift.events import Decoder, InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity
from drift.rollups import ALL, is_rollup
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from drift.tickets import TicketEvent
from drift.windowing import window_at, window_index
from flows.plans import cohort_of
from flows.runner import RunResult, load_profiles, run_history

PROGRESS_LINES = 5000
"""Lines read between two calls of :func:`inject`'s progress hook."""
Scale = Literal["std", "share"]
SCALES: tuple[Scale, ...] = ("std", "share")
DRILL_KINDS = ("opened", "reopened", "updated")
"""Ticket events that record a drilled window (``cleared`` records none)."""


class DrillError(DriftError):
    """A drill that cannot be run as asked: a model, cohort, feature, time or shift that does not fit."""


class NothingToDrill(DrillError):
    """Not one event of the drilled model in the history could be decoded."""


@dataclass(frozen=True)
class DrillSpec:
    """What to inject: where (model, cohorts, features), from when, and how much."""

    model: str
    at: datetime | timedelta
    """The drill's start: an instant, or a duration after the start of the window of the model's
    first event in the history."""
    features: tuple[str, ...]
    shift: float
    cohorts: tuple[Mapping[str, str], ...] = ()
    """Label filters; an event is drilled when its cohort matches any of them (none: every cohort)."""
    scale: Scale = "std"
    seed: int = 0


@dataclass(frozen=True)
class FeatureInjection:
    """How one feature was drilled."""

    name: str
    type: str
    n_carried: int
    """Drilled events with a value of the feature that the drill can change."""
    n_changed: int
    delta: float | None = None
    """Numeric, ``scale="std"``: the amount added (``shift`` x the reference std)."""
    std: float | None = None
    replacement: str | None = None
    """Categorical: the category that replaced the drawn values."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "n_carried": self.n_carried, "n_changed": self.n_changed,
                "delta": self.delta, "std": self.std, "replacement": self.replacement}


@dataclass(frozen=True)
class Injection:
    """The drift :func:`inject` wrote."""

    model: str
    at: datetime
    window: timedelta
    history_start: datetime
    history_end: datetime
    cohorts: tuple[Cohort, ...]
    """The model's cohorts with drilled events (at or after ``at``), by key."""
    features: tuple[FeatureInjection, ...]
    shift: float
    scale: Scale
    seed: int
    n_events: int
    """Events of the drilled cohorts at or after ``at``."""
    n_events_changed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "at": self.at.isoformat(), "window": format_duration(self.window),
            "history_start": self.history_start.isoformat(), "history_end": self.history_end.isoformat(),
            "cohorts": [c.key for c in self.cohorts], "features": [f.to_dict() for f in self.features],
            "shift": self.shift, "scale": self.scale, "seed": self.seed,
            "n_events": self.n_events, "n_events_changed": self.n_events_changed,
        }


def parse_cohort(text: str) -> dict[str, str]:
    """``tenant=acme,region=eu`` as ``{"tenant": "acme", "region": "eu"}`` (ValueError when malformed)."""
    labels: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"must be LABEL=VALUE[,LABEL=VALUE]; got {text!r}")
        if name in labels and labels[name] != value:
            raise ValueError(f"names {name!r} twice; got {text!r}")
        labels[name] = value
    return labels


def check_spec(config: Config, spec: DrillSpec) -> ModelConfig:
    """The drilled model, once the spec's names and numbers fit it (else :class:`DrillError`)."""
    names = [m.name for m in config.models]
    if spec.model not in names:
        raise DrillError(f"--model {spec.model!r} is not a model of the config; known: {names}")
    model = config.model(spec.model)
    if not spec.features:
        raise DrillError("give at least one --feature")
    unknown = [f for f in spec.features if f not in model.features]
    if unknown:
        raise DrillError(f"--feature {unknown[0]!r} is not a feature of model {model.name!r}; "
                         f"its features: {sorted(model.features)}")
    for labels in spec.cohorts:
        other = sorted(set(labels) - set(model.cohort))
        if other:
            raise DrillError(f"--cohort label {other[0]!r} is not a cohort label of model {model.name!r}; "
                             f"its labels: {list(model.cohort)}")
    if not math.isfinite(spec.shift):
        raise DrillError(f"--shift must be a finite number; got {spec.shift!r}")
    if spec.scale not in SCALES:
        raise DrillError(f"--scale must be one of {list(SCALES)}; got {spec.scale!r}")
    categorical = [f for f in spec.features if model.features[f].type == "categorical"]
    if categorical and not 0 <= spec.shift <= 1:
        raise DrillError(f"--shift of categorical feature {categorical[0]!r} is the share of its values replaced, "
                         f"between 0 and 1; got {spec.shift!r}")
    return model


def _matches(cohort: Cohort, filters: Sequence[Mapping[str, str]]) -> bool:
    if not filters:
        return True
    labels = dict(cohort.labels)
    return any(all(labels.get(k) == v for k, v in f.items()) for f in filters)


def _filter_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


@dataclass
class _Scan:
    """The drilled model's decoded events, as one pass over the history found them."""

    offsets: list[int] = field(default_factory=list)
    ts: list[datetime] = field(default_factory=list)
    cohorts: list[Cohort] = field(default_factory=list)


def _scan(config: Config, model: ModelConfig, path: Path, progress: Callable[[int], None] | None = None) -> _Scan:
    decoder = Decoder(models=frozenset({model.name}), max_future=config.events.max_future,
                      ts_units={model.name: model.ts_unit})
    scan = _Scan()
    topic = f"file:{path.name}"
    done = 0
    for offset, data in iter_file(path):
        done = offset + 1
        if progress is not None and done % PROGRESS_LINES == 0:
            progress(done)
        event = decoder(RawMessage(value=data, topic=topic, partition=0, offset=offset))
        if isinstance(event, InferenceEvent):
            scan.offsets.append(offset)
            scan.ts.append(event.ts)
            scan.cohorts.append(cohort_of(event, list(model.cohort)))
    if progress is not None:
        progress(done)
    return scan


def _numeric_std(config: Config, model: ModelConfig, profile: ReferenceProfile, name: str) -> float:
    """The reference's population standard deviation of ``name`` (from the profile, else the Parquet)."""
    feature = profile.features.get(name)
    std = feature.std if isinstance(feature, NumericProfile) else None
    if std is None:
        if model.reference is None:
            raise DrillError(f"the stored baseline of {model.name!r} has no standard deviation of {name!r} and the "
                             "model names no reference Parquet to compute it; rebuild the baseline "
                             "(drift baseline build) or use --scale share")
        from connectors.reference import read_columns

        columns, _ = read_columns(config.resolve(model.reference.parquet), [name])
        values = np.asarray(columns[name], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise DrillError(f"the reference of {model.name!r} has no finite value of {name!r}")
        std = float(values.std())
    if not std > 0:
        raise DrillError(f"the reference standard deviation of {name!r} is {std!r}: a shift in standard "
                         "deviations moves nothing; use --scale share")
    return std


def _least_frequent(profile: ReferenceProfile, name: str) -> str:
    feature = profile.features.get(name)
    if not isinstance(feature, CategoricalProfile) or not feature.categories:
        raise DrillError(f"the reference profile of {profile.model!r} has no categories of {name!r}")
    return min(zip(feature.shares, feature.categories))[1]


def resolve_at(at: datetime | timedelta, start: datetime, end: datetime, size: timedelta) -> datetime:
    """The drill's start as an instant in the history's time range (else :class:`DrillError`).

    The range runs from the start of the window holding the first event (``start``) to the
    last event (``end``); a duration counts from that window's start, so ``+30m`` with
    30-minute windows is the start of the second window.
    """
    first = window_at(window_index(start, size), size).start
    moment = first + at if isinstance(at, timedelta) else at
    if not first <= moment <= end:
        raise DrillError(f"--at {moment.isoformat()} is outside the history's time range "
                         f"{first.isoformat()} .. {end.isoformat()} (the first event's window to the last event)")
    return moment


def inject(
    config: Config, spec: DrillSpec, source: Path, target: Path,
    profile: ReferenceProfile | None = None, progress: Callable[[int], None] | None = None,
) -> Injection:
    """Write ``source`` (JSONL or Parquet) to ``target`` (JSONL) with the drift of ``spec``.

    ``progress`` is called with the number of lines (rows) read while the history is decoded.
    """
    model = check_spec(config, spec)
    if profile is None:
        profile = load_profiles(config, log=lambda text: print(text, file=sys.stderr))[model.name]
    scan = _scan(config, model, source, progress)
    if not scan.ts:
        raise NothingToDrill(f"no event of model {model.name!r} in {source} could be decoded")
    start, end = min(scan.ts), max(scan.ts)
    at = resolve_at(spec.at, start, end, model.window.size)
    after = [i for i, ts in enumerate(scan.ts) if ts >= at]
    for labels in spec.cohorts:
        if not any(_matches(scan.cohorts[i], [labels]) for i in after):
            there = sorted({scan.cohorts[i].key for i in after})
            shown = ", ".join(there[:5]) + (f" and {len(there) - 5} more" if len(there) > 5 else "")
            raise DrillError(f"--cohort {_filter_text(labels)} matches no event of model {model.name!r} at or after "
                             f"{at.isoformat()}; its cohorts then: {shown}")
    chosen = [i for i in after if _matches(scan.cohorts[i], spec.cohorts)]
    drilled = {scan.offsets[i] for i in chosen}
    types = {name: model.features[name].type for name in spec.features}
    delta: dict[str, float] = {}
    stds: dict[str, float] = {}
    replacement: dict[str, str] = {}
    for name, kind in types.items():
        if kind == "numeric" and spec.scale == "std":
            stds[name] = _numeric_std(config, model, profile, name)
            delta[name] = spec.shift * stds[name]
        elif kind == "categorical":
            replacement[name] = _least_frequent(profile, name)
    draws = {name: np.random.default_rng([spec.seed, zlib.crc32(name.encode())]) for name in replacement}
    carried = dict.fromkeys(types, 0)
    changed = dict.fromkeys(types, 0)
    n_events_changed = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for offset, data in iter_file(source):
            if offset in drilled:
                obj = orjson.loads(data)
                features = obj.get("features")
                touched = False
                for name in types:
                    value = features.get(name) if isinstance(features, dict) else None
                    new = _drilled_value(value, name, types[name], spec, delta, replacement, draws)
                    if new is _NOT_CARRIED:
                        continue
                    carried[name] += 1
                    if new is not _UNCHANGED:
                        assert isinstance(features, dict)
                        features[name] = new
                        changed[name] += 1
                        touched = True
                if touched:
                    n_events_changed += 1
                    data = orjson.dumps(obj)
            out.write(data.replace(b"\n", b" ") + b"\n")
    for name in types:
        if carried[name] == 0:
            raise DrillError(f"--feature {name!r}: none of the {len(chosen)} drilled events carries a "
                             f"{types[name]} value of it")
    return Injection(
        model=model.name, at=at, window=model.window.size, history_start=start, history_end=end,
        cohorts=tuple(sorted({scan.cohorts[i] for i in chosen}, key=lambda c: c.key)),
        features=tuple(
            FeatureInjection(name, kind, carried[name], changed[name], delta.get(name), stds.get(name),
                             replacement.get(name))
            for name, kind in types.items()
        ),
        shift=spec.shift, scale=spec.scale, seed=spec.seed, n_events=len(chosen), n_events_changed=n_events_changed,
    )


def duration_text(value: timedelta) -> str:
    """``value`` to the second, largest units first: ``1h5m``, ``14m59s``, ``0s``.

    >>> duration_text(timedelta(minutes=14, seconds=59, microseconds=2))
    '14m59s'
    """
    seconds = round(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")


_NOT_CARRIED = object()
_UNCHANGED = object()


def _drilled_value(
    value: Any, name: str, kind: str, spec: DrillSpec, delta: Mapping[str, float], replacement: Mapping[str, str],
    draws: Mapping[str, np.random.Generator],
) -> Any:
    """The drilled value; ``_NOT_CARRIED`` when the drill cannot change it, ``_UNCHANGED`` when it did not."""
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return _NOT_CARRIED
        new = value + delta[name] if spec.scale == "std" else value * (1 + spec.shift)
        return new if new != value and math.isfinite(new) else _UNCHANGED
    if value is None or isinstance(value, (dict, list)):
        return _NOT_CARRIED
    # One draw per carried value, whatever it is: which events change does not depend on their values.
    picked = draws[name].random() < spec.shift
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return replacement[name] if picked and text != replacement[name] else _UNCHANGED


# What the flow made of the drill.


@dataclass(frozen=True)
class WindowHit:
    """The first window of a drilled cohort and feature at a severity, and how long after the drill it closed."""

    window_start: datetime
    window_end: datetime
    n_windows: int
    """Windows from the one holding the drill's start to this one, both counted."""
    time_to_detect: timedelta
    """Event time from the drill's start to this window's end."""
    severity: str
    detectors: tuple[str, ...]
    value: float
    """The largest value among the window's findings at that severity."""

    def to_dict(self) -> dict[str, Any]:
        return {"window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
                "n_windows": self.n_windows, "time_to_detect": duration_text(self.time_to_detect),
                "time_to_detect_s": self.time_to_detect.total_seconds(), "severity": self.severity,
                "detectors": list(self.detectors), "value": self.value}


@dataclass(frozen=True)
class TicketHit:
    """The first ticket event that recorded a drilled window."""

    id: str
    kind: str
    status: str
    action: str
    detector: str
    window_start: datetime
    window_end: datetime
    n_windows: int
    time_to_detect: timedelta

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "action": self.action,
                "detector": self.detector, "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(), "n_windows": self.n_windows,
                "time_to_detect": duration_text(self.time_to_detect),
                "time_to_detect_s": self.time_to_detect.total_seconds()}


@dataclass(frozen=True)
class Detection:
    """One drilled cohort and feature: when the flow saw it, and the ticket it produced."""

    cohort_key: str
    feature: str
    warn: WindowHit | None
    """The first window at warn or alert."""
    alert: WindowHit | None
    ticket: TicketHit | None

    def to_dict(self) -> dict[str, Any]:
        return {"cohort_key": self.cohort_key, "feature": self.feature,
                "detected": self.alert is not None,
                "first_warn": None if self.warn is None else self.warn.to_dict(),
                "first_alert": None if self.alert is None else self.alert.to_dict(),
                "ticket": None if self.ticket is None else self.ticket.to_dict()}


@dataclass(frozen=True)
class DrillResult:
    """A drill: what was injected, the run, and what the flow made of it."""

    injection: Injection
    run: RunResult
    detections: tuple[Detection, ...]
    elsewhere_findings: tuple[Finding, ...]
    """Findings at warn or alert of windows ending after the drill's start, not of a drilled cohort and feature."""
    elsewhere_tickets: tuple[TicketEvent, ...]

    @property
    def detected(self) -> bool:
        """Every drilled cohort and feature reached alert."""
        return all(d.alert is not None for d in self.detections)

    def to_dict(self) -> dict[str, Any]:
        run = self.run.to_dict()
        drilled = self.injection.cohorts
        return {
            "injection": self.injection.to_dict(),
            "detected": self.detected,
            "detections": [d.to_dict() for d in self.detections],
            "undetected": [{"cohort_key": d.cohort_key, "feature": d.feature, "warned": d.warn is not None}
                           for d in self.detections if d.alert is None],
            "elsewhere": {
                "findings": [
                    {"detector": f.detector, "cohort_key": f.cohort.key, "feature": f.feature,
                     "severity": f.severity.value, "value": f.value, "window_start": f.window.start.isoformat(),
                     "window_end": f.window.end.isoformat(), "relation": relation(f.cohort, drilled)}
                    for f in self.elsewhere_findings],
                "tickets": [
                    {"id": t.ticket.id, "kind": t.kind, "status": t.ticket.status.value, "action": t.ticket.action,
                     "detector": t.ticket.detector, "cohort_key": t.ticket.cohort_key, "feature": t.ticket.feature,
                     "window_end": _ticket_window(t)[1].isoformat(),
                     "relation": relation(_ticket_cohort(t), drilled)}
                    for t in self.elsewhere_tickets],
            },
            "run": {k: run[k] for k in ("events", "decoded", "feature_events", "late", "dlq", "windows",
                                        "findings_total")},
        }


Relation = Literal["drilled_cohort", "rollup_of_drilled", "other"]


def relation(cohort: Cohort, drilled: Sequence[Cohort]) -> Relation:
    """How a finding's cohort stands to the drill: a drilled cohort (another feature or detector),
    a rollup that sums a drilled cohort (the drift, summed: not a false alarm), or another one.

    >>> a = Cohort("m", (("tenant", "a"), ("region", "eu")))
    >>> relation(Cohort("m", (("tenant", "*"), ("region", "eu"))), [a])
    'rollup_of_drilled'
    >>> relation(Cohort("m", (("tenant", "b"), ("region", "*"))), [a])
    'other'
    """
    if cohort.key in {member.key for member in drilled}:
        return "drilled_cohort"
    if is_rollup(cohort):
        for member in drilled:
            labels = dict(member.labels)
            if member.model == cohort.model and all(
                    value == ALL or labels.get(name) == value for name, value in cohort.labels):
                return "rollup_of_drilled"
    return "other"


def _ticket_cohort(event: TicketEvent) -> Cohort:
    ticket = event.ticket
    return Cohort(ticket.model, tuple((k, str(v)) for k, v in ticket.cohort.items() if k != "model"))


def _ticket_window(event: TicketEvent) -> tuple[datetime, datetime]:
    """The window of the finding a ticket event recorded."""
    finding = event.ticket.last_finding
    try:
        return datetime.fromisoformat(finding["window_start"]), datetime.fromisoformat(finding["window_end"])
    except (KeyError, TypeError, ValueError):
        return event.ticket.first_window_start, event.ticket.last_window_end


_RANK = {Severity.OK: 0, Severity.WARN: 1, Severity.ALERT: 2}


def _first_hit(findings: Sequence[Finding], at: datetime, size: timedelta, least: Severity) -> WindowHit | None:
    hits = [f for f in findings if _RANK[f.severity] >= _RANK[least]]
    if not hits:
        return None
    first = min(f.window.start for f in hits)
    window = [f for f in hits if f.window.start == first]
    worst = max(_RANK[f.severity] for f in window)
    top = [f for f in window if _RANK[f.severity] == worst]
    end = top[0].window.end
    return WindowHit(
        window_start=first, window_end=end, n_windows=window_index(first, size) - window_index(at, size) + 1,
        time_to_detect=end - at, severity=top[0].severity.value,
        detectors=tuple(sorted({f.detector for f in top})), value=max(f.value for f in top),
    )


def assess(injection: Injection, run: RunResult, features: Sequence[str]) -> DrillResult:
    """For each drilled cohort and feature: the first windows at warn and alert, and the first ticket."""
    at, size = injection.at, injection.window
    pairs = [(cohort.key, feature) for cohort in injection.cohorts for feature in features]
    wanted = set(pairs)
    during = [f for f in run.findings if f.window.end > at]
    by_pair: dict[tuple[str, str], list[Finding]] = {pair: [] for pair in pairs}
    elsewhere: list[Finding] = []
    for finding in during:
        pair = (finding.cohort.key, finding.feature or "")
        if pair in wanted and finding.feature is not None:
            by_pair[pair].append(finding)
        elif finding.severity is not Severity.OK:
            elsewhere.append(finding)
    tickets: dict[tuple[str, str], TicketHit] = {}
    other_tickets: list[TicketEvent] = []
    for event in sorted(run.tickets, key=lambda e: _ticket_window(e)):
        start, end = _ticket_window(event)
        if end <= at or event.kind not in DRILL_KINDS:
            continue
        pair = (event.ticket.cohort_key, event.ticket.feature or "")
        if pair in wanted and event.ticket.feature is not None:
            if pair not in tickets:
                tickets[pair] = TicketHit(
                    id=event.ticket.id, kind=event.kind, status=event.ticket.status.value,
                    action=event.ticket.action, detector=event.ticket.detector, window_start=start, window_end=end,
                    n_windows=window_index(start, size) - window_index(at, size) + 1, time_to_detect=end - at,
                )
        else:
            other_tickets.append(event)
    detections = tuple(
        Detection(cohort, feature, _first_hit(by_pair[(cohort, feature)], at, size, Severity.WARN),
                  _first_hit(by_pair[(cohort, feature)], at, size, Severity.ALERT), tickets.get((cohort, feature)))
        for cohort, feature in pairs
    )
    elsewhere.sort(key=lambda f: (f.window.start, f.cohort.key, f.detector, f.feature or ""))
    return DrillResult(injection, run, detections, tuple(elsewhere), tuple(other_tickets))


def drill(
    config: Config, spec: DrillSpec, events: Path, store: str | None = None,
    progress: Callable[[str], Callable[[int], None] | None] | None = None,
) -> DrillResult:
    """Inject ``spec``'s drift into the history ``events``, replay it, and assess the result.

    The drilled history is a temporary JSONL file, removed at the end; the run is
    :func:`flows.runner.run_history`'s (tickets in a scratch store unless ``store``).
    ``progress``, when given, is called with each phase's name (``inject``, then ``replay``)
    and returns that phase's hook, called with the lines (rows) read so far.
    """
    check_spec(config, spec)
    profile = load_profiles(config, log=lambda text: print(text, file=sys.stderr))[spec.model]
    with tempfile.TemporaryDirectory(prefix="drift-drill-") as folder:
        drilled = Path(folder) / f"{events.stem}.drill.jsonl"
        injection = inject(config, spec, events, drilled, profile=profile,
                           progress=None if progress is None else progress("inject"))
        run = run_history(config, drilled, store=store, progress=None if progress is None else progress("replay"))
    return assess(injection, run, spec.features)
