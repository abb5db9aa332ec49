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
