"""The notebooks run top to bottom (each ends with checks of its own numbers), so they cannot rot."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

pytestmark = [pytest.mark.sampling, pytest.mark.notebooks]


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"london_schools", "growth_curves", "crossed_penicillin", "model_building", "cbpp_binomial", "robust_refit"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_with_its_outputs(path):
    """Readers of the project page see tables and figures, not code only
    (scripts/execute_notebooks.py stores them)."""
    nbformat = pytest.importorskip("nbformat")
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in cells), "a code cell was never run"
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the stored outputs"
    # every cell that draws shows its figure (a style context once switched the inline backend off)
    drawing = [c for c in cells if ".plot" in c.source]
    unshown = [c.source.splitlines()[0] for c in drawing if not any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert not unshown, unshown
