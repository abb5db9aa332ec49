"""Point-in-time join of served feature values with the offline feature store, and its window counts.

:class:`JoinState` is the state of one join shard: the recent offline values of its
entities and the inference lookups still waiting for one. It is plain Python with the
clock passed in, so its semantics test without a dataflow; ``flows/value_skew.py`` runs
one per ``(model, feature_set, shard)`` key in a Bytewax ``stateful`` step.

Join rule for an inference event at ``ts`` of entity ``e``: the offline value of ``e``
is the version with the **latest ``ts' <= ts``**; it counts only when ``ts - ts' <=
max_age`` (else the outcome is ``stale``, a kind of missing). An inference event with no
usable version waits (``pending``) for at most ``grace``, measured both in event time
(the shard has seen an inference event stamped ``ts + grace`` or later) and in wall-clock
time since it arrived, whichever comes first, and at the end of the input; a usable
feature event arriving meanwhile resolves it at once. An inference event that finds a
usable version is joined at once: a version stamped between that one and ``ts`` that
arrives later is not applied (the join does not hold every event back for ``grace``).

Bounded state: an entity's versions are dropped once the newest is more than ``max_age``
older than the newest inference ``ts`` the shard has seen (TTL, counted as
``reason="ttl"``); past ``max_entities`` the least recently used entity is evicted
(``reason="cap"``); an entity keeps at most :data:`MAX_VERSIONS` versions and a shard at
most :data:`MAX_PENDING` waiting lookups (the oldest is resolved early).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from drift.categories import category_text
from drift.events import FeatureValue
from drift.findings import Cohort

MAX_VERSIONS = 8
"""Offline versions kept per entity (the newest ones)."""
MAX_PENDING = 10_000
"""Lookups waiting for an offline value, per shard."""
MAX_EXAMPLES = 5

Values = tuple[tuple[str, FeatureValue], ...]


@dataclass(frozen=True, slots=True)
class Version:
    """An offline value set of one entity, valid from ``ts``."""

    ts: datetime
    values: Values


@dataclass(frozen=True, slots=True)
class Lookup:
    """The served values of one inference event, to be joined."""

    model: str
    cohort: Cohort
    ts: datetime
    entity_id: str
    served: Values
    arrived: datetime
    """Wall-clock time the lookup reached the join (for ``grace``)."""


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """A resolved lookup: the offline version found, or None (``stale``: only too old ones)."""

    lookup: Lookup
    offline: Version | None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class JoinSnapshot:
    """The immutable, picklable state of a shard (Bytewax recovery)."""

    entities: tuple[tuple[str, tuple[Version, ...]], ...]
    pending: tuple[Lookup, ...]
    high_ts: datetime | None
    last_prune: datetime | None
    n_evicted_cap: int
    n_evicted_ttl: int


class JoinState:
    """One join shard: offline versions per entity (LRU-ordered) and pending lookups."""

    def __init__(
        self, max_age: timedelta, grace: timedelta, max_entities: int, label: str = "-",
        resume: JoinSnapshot | None = None,
    ) -> None:
        if max_entities < 1:
            raise ValueError(f"max_entities must be >= 1; got {max_entities}")
        self.max_age = max_age
        self.grace = grace
        self.max_entities = max_entities
        self.label = label
        """The ``feature_set`` this join serves (the metric label of its evictions)."""
        self.entities: OrderedDict[str, list[Version]] = OrderedDict()
        self.pending: OrderedDict[str, list[Lookup]] = OrderedDict()
        self.n_pending = 0
        self.high_ts: datetime | None = None
        self.last_prune: datetime | None = None
        self.n_evicted_cap = 0
        self.n_evicted_ttl = 0
        if resume is not None:
            self.entities = OrderedDict((e, list(v)) for e, v in resume.entities)
            for lookup in resume.pending:
                self._wait(lookup)
            self.high_ts, self.last_prune = resume.high_ts, resume.last_prune
            self.n_evicted_cap, self.n_evicted_ttl = resume.n_evicted_cap, resume.n_evicted_ttl

    def snapshot(self) -> JoinSnapshot:
        return JoinSnapshot(
            entities=tuple((e, tuple(v)) for e, v in self.entities.items()),
            pending=tuple(lookup for lookups in self.pending.values() for lookup in lookups),
            high_ts=self.high_ts, last_prune=self.last_prune,
            n_evicted_cap=self.n_evicted_cap, n_evicted_ttl=self.n_evicted_ttl,
        )

    # ------------------------------------------------------------------ inputs

    def offer_feature(self, entity_id: str, ts: datetime, values: Mapping[str, FeatureValue]) -> list[JoinOutcome]:
        """Store an offline version; resolve the entity's waiting lookups it is usable for."""
        versions = self.entities.get(entity_id)
        if versions is None:
            versions = self.entities[entity_id] = []
            self._evict_over_cap()
        else:
            self.entities.move_to_end(entity_id)
        version = Version(ts, tuple(values.items()))
        stamps = [v.ts for v in versions]
        at = bisect.bisect_left(stamps, ts)
        if at < len(versions) and versions[at].ts == ts:
            versions[at] = version  # a re-materialised version replaces the earlier one
        else:
            versions.insert(at, version)
        del versions[:-MAX_VERSIONS]
        out: list[JoinOutcome] = []
        waiting = self.pending.get(entity_id)
        if waiting:
            keep = []
            for lookup in waiting:
                found = self._usable(entity_id, lookup.ts)
                if found is not None:
                    out.append(JoinOutcome(lookup, found))
                else:
                    keep.append(lookup)
            self._set_waiting(entity_id, keep)
        return out

    def offer_inference(self, lookup: Lookup) -> list[JoinOutcome]:
        """Join a lookup now if a usable version is known, else let it wait; expire others by event time."""
        if self.high_ts is None or lookup.ts > self.high_ts:
            self.high_ts = lookup.ts
        out: list[JoinOutcome] = []
        found = self._usable(lookup.entity_id, lookup.ts)
        if found is not None:
            self.entities.move_to_end(lookup.entity_id)
            out.append(JoinOutcome(lookup, found))
        else:
            if self.n_pending >= MAX_PENDING:
                out.extend(self._resolve_oldest())
            self._wait(lookup)
        out.extend(self.expire(None))
        self._maybe_prune()
        return out

    def expire(self, now: datetime | None) -> list[JoinOutcome]:
        """Resolve lookups past ``grace``: in event time, or in wall-clock time when ``now`` is given."""
        if not self.n_pending:
            return []
        out: list[JoinOutcome] = []
        for entity_id in list(self.pending):
            keep = []
            for lookup in self.pending[entity_id]:
                due = (self.high_ts is not None and lookup.ts + self.grace <= self.high_ts) or (
                    now is not None and lookup.arrived + self.grace <= now
                )
                if due:
                    out.append(self._resolve(lookup))
                else:
                    keep.append(lookup)
            self._set_waiting(entity_id, keep)
        return out

    def flush(self) -> list[JoinOutcome]:
        """Resolve every waiting lookup with what is known (end of input)."""
        out = [self._resolve(lookup) for lookups in self.pending.values() for lookup in lookups]
        self.pending.clear()
        self.n_pending = 0
        return out

    def next_deadline(self) -> datetime | None:
        """Wall-clock time the oldest waiting lookup's grace ends (None when none waits)."""
        if not self.n_pending:
            return None
        return min(lookup.arrived for lookups in self.pending.values() for lookup in lookups) + self.grace

    # ------------------------------------------------------------------ internals

    def _usable(self, entity_id: str, ts: datetime) -> Version | None:
        best = self._latest_at(entity_id, ts)
        return best if best is not None and ts - best.ts <= self.max_age else None

    def _latest_at(self, entity_id: str, ts: datetime) -> Version | None:
        versions = self.entities.get(entity_id)
        if not versions:
            return None
        at = bisect.bisect_right([v.ts for v in versions], ts)
        return versions[at - 1] if at else None

    def _resolve(self, lookup: Lookup) -> JoinOutcome:
        found = self._latest_at(lookup.entity_id, lookup.ts)
        if found is None:
            return JoinOutcome(lookup, None)
        if lookup.ts - found.ts > self.max_age:
            return JoinOutcome(lookup, None, stale=True)
        return JoinOutcome(lookup, found)

    def _resolve_oldest(self) -> list[JoinOutcome]:
        entity_id = next(iter(self.pending))
        lookups = self.pending[entity_id]
        first = lookups.pop(0)
        self._set_waiting(entity_id, lookups, removed=1)
        return [self._resolve(first)]

    def _wait(self, lookup: Lookup) -> None:
        self.pending.setdefault(lookup.entity_id, []).append(lookup)
        self.n_pending += 1

    def _set_waiting(self, entity_id: str, keep: list[Lookup], removed: int | None = None) -> None:
        before = len(self.pending.get(entity_id, ())) if removed is None else len(keep) + removed
        self.n_pending -= before - len(keep)
        if keep:
            self.pending[entity_id] = keep
        else:
            self.pending.pop(entity_id, None)

    def _evict_over_cap(self) -> None:
        while len(self.entities) > self.max_entities:
            self.entities.popitem(last=False)
            self.n_evicted_cap += 1

    def _maybe_prune(self) -> None:
        """Drop entities whose newest version is past ``max_age`` (a scan at most every ``max_age / 4``)."""
        high = self.high_ts
        if high is None or (self.last_prune is not None and high - self.last_prune < self.max_age / 4):
            return
        self.last_prune = high
        expired = [
            e for e, versions in self.entities.items()
            if (not versions or high - versions[-1].ts > self.max_age) and e not in self.pending  # waiting: kept to say stale
        ]
        for entity_id in expired:
            del self.entities[entity_id]
        if expired:
            self.n_evicted_ttl += len(expired)


# ----------------------------------------------------------------------------- window counts


@dataclass(slots=True)
class FeatureValueCounts:
    """Join outcomes of one feature in one cohort window.

    ``n_lookups = n_match + n_mismatch + n_missing``; ``n_stale`` is the part of
    ``n_missing`` that had only versions older than ``max_age``. Sums over numeric pairs:
    ``sum_difference`` of ``served - offline``, ``sum_ratio`` of ``served / offline``
    (offline non-zero), ``sum_log_ratio`` of ``ln(served / offline)`` (both the same sign).
    """

    n_lookups: int = 0
    n_match: int = 0
    n_mismatch: int = 0
    n_missing: int = 0
    n_stale: int = 0
    n_numeric: int = 0
    sum_difference: float = 0.0
    n_ratio: int = 0
    sum_ratio: float = 0.0
    n_log_ratio: int = 0
    sum_log_ratio: float = 0.0
    examples: list[tuple[tuple[str, Any], ...]] = field(default_factory=list)
    """Up to :data:`MAX_EXAMPLES` mismatches: entity, ts, served, offline, offline ts."""

    def merge(self, other: FeatureValueCounts) -> FeatureValueCounts:
        out = FeatureValueCounts(**{
            name: getattr(self, name) + getattr(other, name)
            for name in ("n_lookups", "n_match", "n_mismatch", "n_missing", "n_stale", "n_numeric",
                         "sum_difference", "n_ratio", "sum_ratio", "n_log_ratio", "sum_log_ratio")
        })
        out.examples = list(self.examples)
        for example in other.examples:
            if len(out.examples) < MAX_EXAMPLES and example not in out.examples:
                out.examples.append(example)
        return out


@dataclass(slots=True)
class ValueSkewSummary:
    """Join outcomes of one cohort window, per compared feature."""

    model: str
    cohort: Cohort | None = None
    n_events: int = 0
    features: dict[str, FeatureValueCounts] = field(default_factory=dict)


def empty_value_summary(model: str, features: Iterable[str], cohort: Cohort | None = None) -> ValueSkewSummary:
    return ValueSkewSummary(model, cohort, 0, {name: FeatureValueCounts() for name in features})


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_match(served: FeatureValue, offline: FeatureValue, abs_tol: float, rel_tol: float) -> bool:
    """Numbers within ``abs_tol + rel_tol * |offline|``; anything else by category text.

    A number never matches a non-number (``"12"`` vs ``12``): that is a type skew.

    >>> values_match(100.0, 100.004, 0.01, 0.0), values_match(510000, 5100.0, 0.01, 0.001)
    (True, False)
    >>> values_match("DE", "DE", 0, 0), values_match(True, "true", 0, 0), values_match("12", 12, 0, 0)
    (True, True, False)
    """
    if _is_number(served) and _is_number(offline):
        return abs(float(served) - float(offline)) <= abs_tol + rel_tol * abs(float(offline))  # type: ignore[arg-type]
    if _is_number(served) or _is_number(offline):
        return False
    return category_text(served) == category_text(offline)


def add_outcome(summary: ValueSkewSummary, outcome: JoinOutcome, abs_tol: float, rel_tol: float) -> ValueSkewSummary:
    """Count one join outcome into ``summary`` (in place) and return it."""
    summary.n_events += 1
    lookup = outcome.lookup
    offline = dict(outcome.offline.values) if outcome.offline is not None else None
    for name, served in lookup.served:
        counts = summary.features.get(name)
        if counts is None:
            continue
        counts.n_lookups += 1
        value = offline.get(name) if offline is not None else None
        if value is None:
            counts.n_missing += 1
            counts.n_stale += outcome.stale
            continue
        if _is_number(served) and _is_number(value):
            s, o = float(served), float(value)  # type: ignore[arg-type]
            counts.n_numeric += 1
            counts.sum_difference += s - o
            if o != 0:
                counts.n_ratio += 1
                counts.sum_ratio += s / o
                if s / o > 0:
                    counts.n_log_ratio += 1
                    counts.sum_log_ratio += math.log(s / o)
        if values_match(served, value, abs_tol, rel_tol):
            counts.n_match += 1
        else:
            counts.n_mismatch += 1
            if len(counts.examples) < MAX_EXAMPLES:
                assert outcome.offline is not None
                counts.examples.append((
                    ("entity_id", lookup.entity_id[:64]), ("ts", lookup.ts.isoformat()),
                    ("served", served), ("offline", value), ("offline_ts", outcome.offline.ts.isoformat()),
                ))
    return summary


def merge_value_summaries(a: ValueSkewSummary, b: ValueSkewSummary) -> ValueSkewSummary:
    """A new summary of both (associative; neither input is changed)."""
    features = dict(a.features)
    for name, counts in b.features.items():
        features[name] = features[name].merge(counts) if name in features else counts.merge(FeatureValueCounts())
    for name, counts in a.features.items():
        if name not in b.features:
            features[name] = counts.merge(FeatureValueCounts())
    return ValueSkewSummary(a.model, a.cohort if a.cohort is not None else b.cohort, a.n_events + b.n_events, features)
