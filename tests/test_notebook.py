"""notebooks/walkthrough.ipynb runs top to bottom; any error in any cell fails the suite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"
KERNEL = "drift-walkthrough-test"


@pytest.fixture()
def kernel_of_this_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec that runs ipykernel on this interpreter (the test's venv), whatever
    ``python3`` kernels the machine has registered."""
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "drift test kernel", "language": "python",
    }), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return KERNEL


def test_walkthrough_notebook_runs_top_to_bottom(kernel_of_this_interpreter: str, tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, kernel_name=kernel_of_this_interpreter, timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    # Reference shares, the globex timeline, the worst finding's histogram, the embedding
    # projection, the seasonal baseline against the observed values, the before/after bars.
    assert len(images) >= 6
    text = "".join(out.get("text", "") for out in outputs if out.get("output_type") == "stream")
    assert "PSI alerting windows:" in text
    assert "of the reference variance" in text
    assert text.count("against the hour's history") == 2  # one line per cohort of the seasonal plot
