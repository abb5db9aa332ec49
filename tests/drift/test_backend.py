"""Array backend: namespace detection, device choice, and the reservoir sample."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.stats

from drift.backend import BackendError, Reservoir, get_namespace, resolve_device, to_host

# --------------------------------------------------------------------------
# Namespaces and devices
# --------------------------------------------------------------------------


def fake_cupy(monkeypatch: pytest.MonkeyPatch) -> type:
    """A stand-in ``cupy`` module with an ndarray type that lives on a device.

    cupy cannot run on a machine without a GPU; detection only looks at the
    array's type module and its ``device.id``, which this reproduces.
    """
    module = types.ModuleType("cupy")

    class Device:
        def __init__(self, id: int) -> None:
            self.id = id

    class ndarray:  # noqa: N801 - named like cupy's
        __module__ = "cupy._core.core"

        def __init__(self, data: list[float], device: int = 0) -> None:
            self.data = np.asarray(data)
            self.device = Device(device)

        def get(self) -> np.ndarray:
            return self.data

    module.ndarray = ndarray  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", module)
    return ndarray


def test_numpy_arrays_and_host_values_are_numpy() -> None:
    assert get_namespace(np.zeros(3), np.ones((2, 2))) is np
    assert get_namespace([1.0, 2.0], 3.0) is np
    assert get_namespace() is np
    assert get_namespace(np.zeros(2), xp=np) is np


def test_cupy_arrays_give_the_cupy_module(monkeypatch: pytest.MonkeyPatch) -> None:
    ndarray = fake_cupy(monkeypatch)
    assert get_namespace(ndarray([1.0]), ndarray([2.0])) is sys.modules["cupy"]
    assert to_host(ndarray([1.0, 2.0])).tolist() == [1.0, 2.0]


@pytest.mark.parametrize("device_b, match", [(None, r"numpy \(host\) or all cupy"), (1, "on one GPU")])
def test_mixed_devices_are_refused(monkeypatch: pytest.MonkeyPatch, device_b: int | None, match: str) -> None:
    ndarray = fake_cupy(monkeypatch)
    other = np.zeros(1) if device_b is None else ndarray([1.0], device=device_b)
    with pytest.raises(BackendError, match=match):
        get_namespace(ndarray([1.0], device=0), other)


def test_forced_namespace_must_match_the_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cupy(monkeypatch)
    with pytest.raises(BackendError, match="xp=cupy"):
        get_namespace(np.zeros(2), xp=sys.modules["cupy"])


def test_cpu_is_numpy() -> None:
    assert resolve_device("cpu") is np


def test_gpu_without_cupy_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(BackendError, match=r"pip install 'drift\[gpu\]'"):
        resolve_device("gpu")
    assert resolve_device("auto") is np


def test_auto_needs_a_device_as_well_as_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("cupy")
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 0)
    module.cuda = types.SimpleNamespace(runtime=runtime)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", module)
    assert resolve_device("auto") is np
    with pytest.raises(BackendError, match="sees no GPU"):
        resolve_device("gpu")
    runtime.getDeviceCount = lambda: 1
    assert resolve_device("auto") is module
    assert resolve_device("gpu") is module


def test_unknown_device_lists_the_options() -> None:
    with pytest.raises(BackendError, match="auto, cpu, gpu; got 'tpu'"):
        resolve_device("tpu")


# --------------------------------------------------------------------------
# Reservoir
# --------------------------------------------------------------------------


def stream(n: int, dim: int = 2) -> np.ndarray:
    """Row i is (i, i, ...): the row says which stream item it is."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], dim, axis=1)


def items(reservoir: Reservoir) -> list[int]:
    return sorted(int(v) for v in reservoir.rows[:, 0])


def test_fills_up_to_capacity_then_keeps_capacity() -> None:
    r = Reservoir(5, dim=2, rng=np.random.default_rng(0))
    r.add(stream(3))
    assert items(r) == [0, 1, 2] and r.n_seen == 3
    r.add(stream(10)[3:])
    assert len(r) == 5 and r.rows.shape == (5, 2) and r.n_seen == 10
    assert len(set(items(r))) == 5 and set(items(r)) <= set(range(10))


def test_ids_follow_their_rows() -> None:
    r = Reservoir(4, dim=2, rng=np.random.default_rng(1))
    for start in range(0, 40, 7):
        rows = stream(40)[start:start + 7]
        r.add(rows, ids=[f"e{int(v)}" for v in rows[:, 0]])
    assert r.ids == [f"e{int(v)}" for v in r.rows[:, 0]]


@pytest.mark.parametrize("rows, ids, match", [
    (np.zeros((2, 3)), None, r"shape \(k, 2\)"),
    (np.zeros((2, 2)), ["a"], "one entry per row"),
])
def test_bad_batches_are_refused(rows: np.ndarray, ids: list[str | None] | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Reservoir(3, dim=2, rng=np.random.default_rng(0)).add(rows, ids)


def test_pickles_with_its_state() -> None:
    r = Reservoir(4, dim=2, rng=np.random.default_rng(2))
    r.add(stream(9), ids=[str(i) for i in range(9)])
    back = pickle.loads(pickle.dumps(r))
    assert back.n_seen == 9 and np.array_equal(back.rows, r.rows) and back.ids == r.ids
    # The generator travels too: both continue identically.
    r.add(stream(30)[9:])
    back.add(stream(30)[9:])
    assert np.array_equal(back.rows, r.rows)


def inclusion_chi2(counts: np.ndarray) -> float:
    """p-value of a chi-square test that every item was kept equally often.

    Items are not independent (the sample size is fixed), which makes the
    statistic slightly smaller than chi-square: the test is conservative.
    """
    return float(scipy.stats.chisquare(counts).pvalue)


def test_algorithm_r_keeps_each_item_with_equal_probability() -> None:
    n_items, capacity, trials = 60, 10, 1500
    counts = np.zeros(n_items)
    batches = [0, 4, 11, 12, 30, 60]  # one-row, partial-fill and overflowing batches
    rng = np.random.default_rng(0)
    for _ in range(trials):
        r = Reservoir(capacity, dim=1, rng=rng)
        for a, b in zip(batches, batches[1:]):
            r.add(stream(n_items, dim=1)[a:b])
        counts[items(r)] += 1
    assert counts.sum() == trials * capacity
    assert inclusion_chi2(counts) > 1e-4
    # Loose absolute check too: every item within 40% of capacity / n_items (> 4 sd).
    assert np.all(np.abs(counts / trials - capacity / n_items) < 0.4 * capacity / n_items)


@pytest.mark.parametrize("n_a, n_b", [(30, 70), (4, 50), (3, 5), (0, 25)])
def test_merge_is_a_uniform_sample_of_the_union(n_a: int, n_b: int) -> None:
    capacity, trials = 10, 1500
    n_items = n_a + n_b
    counts = np.zeros(n_items)
    rng = np.random.default_rng([n_a, n_b])
    for _ in range(trials):
        a = Reservoir(capacity, dim=1, rng=rng)
        b = Reservoir(capacity, dim=1, rng=rng)
        a.add(stream(n_items, dim=1)[:n_a])
        b.add(stream(n_items, dim=1)[n_a:])
        merged = a.merge(b, rng)
        assert merged.n_seen == n_items and len(merged) == min(capacity, n_items)
        counts[items(merged)] += 1
    if n_items <= capacity:
        assert np.all(counts == trials)
        return
    assert inclusion_chi2(counts) > 1e-4
    assert np.all(np.abs(counts / trials - capacity / n_items) < 0.4 * capacity / n_items)


def test_merge_then_add_stays_uniform() -> None:
    capacity, trials, n_items = 8, 1500, 40
    counts = np.zeros(n_items)
    rng = np.random.default_rng(3)
    for _ in range(trials):
        a = Reservoir(capacity, dim=1, rng=rng)
        b = Reservoir(capacity, dim=1, rng=rng)
        a.add(stream(n_items, dim=1)[:10])
        b.add(stream(n_items, dim=1)[10:25])
        merged = a.merge(b, rng)
        merged.add(stream(n_items, dim=1)[25:])
        counts[items(merged)] += 1
    assert inclusion_chi2(counts) > 1e-4


def test_merge_keeps_ids_and_refuses_other_shapes() -> None:
    a = Reservoir(3, dim=2, rng=np.random.default_rng(0))
    a.add(stream(5), ids=[f"a{i}" for i in range(5)])
    b = Reservoir(3, dim=2, rng=np.random.default_rng(1))
    b.add(stream(5) + 100, ids=[f"b{i}" for i in range(5)])
    merged = a.merge(b, np.random.default_rng(2))
    expected = [f"a{int(v)}" if v < 100 else f"b{int(v) - 100}" for v in merged.rows[:, 0]]
    assert merged.ids == expected
    with pytest.raises(ValueError, match="one capacity and dim"):
        a.merge(Reservoir(4, dim=2, rng=np.random.default_rng(0)), np.random.default_rng(0))
