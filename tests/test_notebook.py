"""notebooks/walkthrough.ipynb is committed executed; run again, it gives the same outputs.

Every code cell is run top to bottom with nbclient (any error fails), and its outputs are
compared with the committed ones: the same kinds (text, result, image), and the same text
once every number is masked (run times, report sizes and p-values may move; lines, names,
detectors and statuses may not). The notebook uses the public API only (``drift.api``).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"
KERNEL = "drift-walkthrough-test"
RERUN = "re-execute it (notebooks/README.md) and commit the outputs"
NUMBER = re.compile(r"\d[\d,.]*(e[-+]?\d+)?")


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
    return KERNEL


def _read() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]


def _code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _shape(cell: Any) -> tuple[list[str], str]:
    """What a cell showed: its kinds of output, and its text (stdout and results) with numbers masked.

    stdout is taken whole: the kernel may cut one print run into several stream outputs.
    """
    kinds: list[str] = []
    text = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            if out["name"] == "stdout":
                text.append(out["text"])
                kind = "stdout"
            else:
                continue  # stderr: logs and warnings of the libraries, not the notebook's output
        else:
            kind = out["output_type"] + ":" + ",".join(sorted(out.get("data", {})))
            text.append(out.get("data", {}).get("text/plain", "") + "\n")
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
    return kinds, NUMBER.sub("#", "".join(text))


def test_the_committed_notebook_is_executed_and_uses_only_the_public_api() -> None:
    notebook = _read()
    cells = _code_cells(notebook)
    assert all(cell.get("execution_count") for cell in cells), f"a cell was committed unexecuted: {RERUN}"
    assert all(cell.get("outputs") for cell in cells), f"a cell was committed without outputs: {RERUN}"
    imported: set[str] = set()
    for cell in cells:
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module + ":" + ",".join(a.name for a in node.names))
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    ours = {name for name in imported
            if name.split(":")[0].split(".")[0] in {"drift", "flows", "connectors", "detectors"}}
    assert ours == {"drift:api"}, ours


def test_walkthrough_notebook_gives_its_committed_outputs(kernel_of_this_interpreter: str, tmp_path: Path) -> None:
    committed = _read()
    notebook = _read()
    client = NotebookClient(
        notebook, kernel_name=kernel_of_this_interpreter, timeout=180,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    for number, (before, after) in enumerate(zip(_code_cells(committed), _code_cells(notebook)), start=1):
        assert not [out for out in after.outputs if out["output_type"] == "error"]
        was, now = _shape(before), _shape(after)
        assert now[0] == was[0], f"code cell {number} shows {now[0]}, committed {was[0]}: {RERUN}"
        assert now[1] == was[1], f"code cell {number} prints otherwise than committed: {RERUN}\n{now[1]}"
    text = "".join(out.get("text", "") for cell in _code_cells(notebook) for out in cell.outputs
                   if out["output_type"] == "stream" and out["name"] == "stdout")
    # The event format, the report, a ticket under review, its approvals and the acknowledged incident.
    assert '"features": {' in text and "required: ['ts', 'model', 'features']" in text
    assert re.search(r"report: report\.html, \d+\.\d MB", text)
    assert "pending_review, 2 approvals needed" in text
    assert "after bob: approved; retraining request in the outbox: True" in text
    assert "('quality.null_rate', 'income', 'in_progress')" in text
