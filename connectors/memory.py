"""An in-process sink that collects items into a list (demo and replay)."""

from __future__ import annotations

from typing import Generic, TypeVar

from bytewax.outputs import DynamicSink, StatelessSinkPartition

X = TypeVar("X")


class _ListPartition(StatelessSinkPartition[X], Generic[X]):
    def __init__(self, items: list[X]) -> None:
        self._items = items

    def write_batch(self, items: list[X]) -> None:
        self._items.extend(items)


class ListSink(DynamicSink[X], Generic[X]):
    """Appends every item to ``items``; for flows run in this process."""

    def __init__(self) -> None:
        self.items: list[X] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ListPartition[X]:
        return _ListPartition(self.items)


class _TeePartition(StatelessSinkPartition[X], Generic[X]):
    def __init__(self, inner: StatelessSinkPartition[X], items: list[X]) -> None:
        self._inner = inner
        self._items = items

    def write_batch(self, items: list[X]) -> None:
        self._inner.write_batch(items)
        self._items.extend(items)

    def close(self) -> None:
        self._inner.close()


class TeeSink(DynamicSink[X], Generic[X]):
    """Writes to ``inner`` and keeps a copy in ``items``: for bounded runs that report a summary."""

    def __init__(self, inner: DynamicSink[X]) -> None:
        self.inner = inner
        self.items: list[X] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TeePartition[X]:
        return _TeePartition(self.inner.build(step_id, worker_index, worker_count), self.items)


class _CountPartition(StatelessSinkPartition[X], Generic[X]):
    def __init__(self, sink: CountSink[X]) -> None:
        self._sink = sink

    def write_batch(self, items: list[X]) -> None:
        with self._sink.lock:
            self._sink.count += len(items)


class CountSink(DynamicSink[X], Generic[X]):
    """Counts the items written (by every worker of this process); keeps none of them."""

    def __init__(self) -> None:
        import threading

        self.count = 0
        self.lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountPartition[X]:
        return _CountPartition(self)


class _FanOutPartition(StatelessSinkPartition[X], Generic[X]):
    def __init__(self, inner: list[StatelessSinkPartition[X]]) -> None:
        self._inner = inner

    def write_batch(self, items: list[X]) -> None:
        for partition in self._inner:
            partition.write_batch(items)

    def close(self) -> None:
        for partition in self._inner:
            partition.close()


class FanOutSink(DynamicSink[X], Generic[X]):
    """Writes every batch to each of ``sinks``, in order (e.g. the tickets topic and a webhook)."""

    def __init__(self, *sinks: DynamicSink[X]) -> None:
        self.sinks = list(sinks)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FanOutPartition[X]:
        return _FanOutPartition([sink.build(step_id, worker_index, worker_count) for sink in self.sinks])
