"""``drift validate`` as a user runs it: a real process, real files, exit status and output."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import drift
from drift.config import DETECTOR_NAMES

DEMO_CONFIG = Path(drift.__file__).parent / "demo" / "drift.yaml"
EXIT_CONFIG = 2

INVALID = """\
version: 1
models:
  - name: credit-risk
    windw: {size: 5m}
    features:
      age: {type: numeric}
    detectors:
      - psi: {bins: 1}
      - psii: {}
  - name: fraud
"""


def drift_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    return subprocess.run(
        [sys.executable, "-m", "drift.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """The bundled demo config next to the reference Parquet files it names (validate reads them)."""
    from drift import demo

    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "drift.yaml").write_text(DEMO_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    demo.write_references(folder)
    return folder / "drift.yaml"


def test_valid_file_exits_0_with_a_summary(tmp_path: Path, demo_config: Path) -> None:
    result = drift_cli("validate", str(demo_config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"{demo_config}: valid"
    assert lines[1].startswith("  model credit-risk: 3 features, cohort [model_version, tenant, region], window ")
    assert lines[1].endswith("detectors: psi, quality, score")


def test_invalid_file_exits_2_with_every_error_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(INVALID, encoding="utf-8")
    result = drift_cli("validate", "drift.yaml", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert result.stdout == ""
    assert sorted(result.stderr.splitlines()) == sorted([
        "drift.yaml:4:5 models[0].windw: unknown key 'windw' (did you mean 'window'?); valid keys: "
        "baseline, canary, cohort, detectors, features, impact, labels, name, policy, reference, rollups, slo, ts_unit, window",
        "drift.yaml:8:21 models[0].detectors[0].psi.bins: must be >= 2; got 1",
        "drift.yaml:9:9 models[0].detectors[1]: must be a mapping with one key naming a detector, "
        "one of " + ", ".join(DETECTOR_NAMES) + "; got {'psii': {}}",
        "drift.yaml:10:5 models[1].features: is required",
        "4 error(s) in drift.yaml",
    ])


def test_missing_file_exits_2_with_a_clear_error(tmp_path: Path) -> None:
    result = drift_cli("validate", "absent.yaml", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "absent.yaml: cannot read the config file: No such file or directory",
        "1 error(s) in absent.yaml",
    ]
    assert "Traceback" not in result.stderr


def test_directory_instead_of_file_exits_2(tmp_path: Path) -> None:
    result = drift_cli("validate", str(tmp_path), cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_yaml_exits_2(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text("version: 1\nmodels:\n\t- name: m\n", encoding="utf-8")
    result = drift_cli("validate", "drift.yaml", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.splitlines()[0] == (
        "drift.yaml:3:1 is not valid YAML: found character '\\t' that cannot start any token"
    )


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system", "!!python/object/apply:subprocess.call"],
)
def test_python_tag_is_refused_never_executed(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "executed"
    argument = f'"touch {marker}"' if tag.endswith("os.system") else f'[["touch", "{marker}"]]'
    (tmp_path / "drift.yaml").write_text(
        textwrap.dedent(f"""\
            version: 1
            models:
              - name: credit-risk
                features: {{age: {{type: numeric}}}}
            kafka:
              bootstrap: {tag} [{argument}]
            """),
        encoding="utf-8",
    )
    result = drift_cli("validate", "drift.yaml", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "could not determine a constructor for the tag" in result.stderr
    assert result.stderr.startswith("drift.yaml:6:14 kafka.bootstrap: is not valid YAML")
    assert not marker.exists()


def test_console_script_validates(tmp_path: Path, demo_config: Path) -> None:
    script = Path(sysconfig.get_path("scripts")) / "drift"
    assert script.exists(), f"the `drift` console script is not installed next to {sys.executable}"
    ok = subprocess.run([str(script), "validate", str(demo_config)], capture_output=True, text=True,
                        timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{demo_config}: valid")

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nmodels: []\n", encoding="utf-8")
    failed = subprocess.run([str(script), "validate", str(bad)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert failed.returncode == EXIT_CONFIG
    assert f"{bad}:1:10 version: must be one of 1; got 2" in failed.stderr.splitlines()


def test_the_summary_names_labels_slos_canary_and_rollups(tmp_path: Path) -> None:
    from drift.demo import rollout

    folder = tmp_path / "rollout"
    folder.mkdir()
    text = rollout.CONFIG.replace("    policy: {consecutive_windows: 1, cooldown: 1h}",
                                  "    rollups: [[model], [tenant]]\n    policy: {consecutive_windows: 1, cooldown: 1h}")
    (folder / "drift.yaml").write_text(text, encoding="utf-8")
    rollout.write_reference(folder)
    result = drift_cli("validate", "drift.yaml", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  model fraud-scorer: 2 features, cohort [tenant, route], window 1h, detectors: psi, score",
        "    rollups: [model], [tenant]",
        "    labels: binary on prediction.score, joined by event_id within 1d",
        "    slo: recall >= 0.8 over 1h on cohorts route=champion",
        "    slo: label_coverage >= 0.5 before judging",
        "    canary: canary against champion (label route)",
    ]
