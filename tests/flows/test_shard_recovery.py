"""What a recovery folder says about the cohort state: its shard count, and older per-cohort snapshots.

Real Bytewax recovery partitions (``init_db_dir``) with snapshot rows written into their
``snaps`` table as Bytewax writes them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from bytewax.recovery import init_db_dir

from drift.config import Config, EngineConfig, ModelConfig
from drift.config.models import FeatureSpec
from drift.errors import ConfigError
from flows.runner import prepare_recovery_dir, recorded_shards, resolve_shards
from flows.shard_windows import shard_key


def _config(shards: int | str = "auto") -> Config:
    return Config(version=1, models=[ModelConfig(name="m", features={"x": FeatureSpec(type="numeric")})],
                  engine=EngineConfig(shards=shards))  # type: ignore[arg-type]


def _snap(folder: Path, step: str, key: str, part: int = 0) -> None:
    with sqlite3.connect(folder / f"part-{part}.sqlite3") as db:
        db.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, 1, ?)",
                   (f"drift.{step}", key, b"\x80\x04N."))


def test_auto_takes_the_folders_count_and_a_new_folder_the_workers(tmp_path: Path) -> None:
    assert resolve_shards(_config(), 6, None) == 6
    assert resolve_shards(_config(), 6, tmp_path / "missing") == 6
    init_db_dir(tmp_path, 2)  # type: ignore[no-untyped-call]
    assert recorded_shards(tmp_path) == set() and resolve_shards(_config(), 3, tmp_path) == 3
    _snap(tmp_path, "cohort_windows", shard_key("m", 1, 4), part=1)
    _snap(tmp_path, "score_windows", shard_key("m", 2, 4))
    assert recorded_shards(tmp_path) == {4}
    assert resolve_shards(_config(), 1, tmp_path) == 4  # rescaled to one worker: the state keeps its keys
    assert resolve_shards(_config(4), 1, tmp_path) == 4


def test_a_count_that_disagrees_with_the_folder_is_refused(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    _snap(tmp_path, "cohort_windows", shard_key("m", 0, 4))
    with pytest.raises(ConfigError, match=r"engine.shards: 8, but .* written with 4 shards"):
        resolve_shards(_config(8), 1, tmp_path)
    _snap(tmp_path, "cohort_windows", shard_key("m", 0, 2))
    with pytest.raises(ConfigError, match="several shard counts"):
        resolve_shards(_config(), 1, tmp_path)


def test_a_folder_of_per_cohort_snapshots_is_refused_with_what_to_do(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    _snap(tmp_path, "summarise_windows", "m|tenant=a")
    with pytest.raises(ConfigError, match=r"per-cohort window state \(drift.summarise_windows\).*--until-end"):
        prepare_recovery_dir(tmp_path, 1)


def test_a_folder_of_cohort_arrays_is_used_as_it_is(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 2)  # type: ignore[no-untyped-call]
    _snap(tmp_path, "cohort_windows", shard_key("m", 0, 1))
    assert prepare_recovery_dir(tmp_path, 5) == 2
