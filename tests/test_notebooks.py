"""Every notebook runs top to bottom, headless, with the small sizes of its parameter cell."""

import glob
import os

import nbformat
import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb")))
#: What CI puts in each notebook's "parameters" cell instead of its own values.
SMALL = {"EXAMPLES": 240, "EPOCHS": 1}


def test_there_are_notebooks_and_they_carry_no_bulky_outputs():
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        assert os.path.getsize(path) < 200_000, f"{path}: clear or shrink its outputs before committing"
        book = nbformat.read(path, as_version=4)
        assert [c for c in book.cells if "parameters" in c.metadata.get("tags", [])], f"{path}: no parameters cell"
        code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
        assert "import mmkeras" in code and "def " not in code and "class " not in code, "notebooks define no library code"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path):
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if "parameters" in cell.metadata.get("tags", []):
            lines = []
            for line in cell.source.splitlines():
                name = line.split("=")[0].strip()
                lines.append(f"{name} = {SMALL[name]!r}" if name in SMALL else line)
            cell.source = "\n".join(lines)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
