"""Every notebook runs top to bottom, headless, with the small sizes of its parameter cell."""

import glob
import os

import nbformat
import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.ipynb")))
#: What CI puts in each notebook's "parameters" cell instead of its own values.
SMALL = {"EXAMPLES": 120, "EPOCHS": 1}


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_the_colab_setup_cell_installs_from_a_wheel_or_says_what_to_do(path, tmp_path, monkeypatch):
    """mmkeras is on no package index: in Colab the first cell installs an uploaded wheel or a git URL."""
    import subprocess
    import sys
    import types

    book = nbformat.read(path, as_version=4)
    setup = next(c.source for c in book.cells if c.cell_type == "code" and c.source.startswith("# Setup"))
    install = setup.split("\n\n", 1)[0]  # the install block, before the imports
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kwargs: calls.append(args))
    monkeypatch.setattr(glob, "glob", lambda pattern: [])  # nothing uploaded
    with pytest.raises(SystemExit, match=r"upload dist/mmkeras-\*.whl \(from `make dist` in a clone\)"):
        exec(install, {})
    assert not calls
    monkeypatch.setattr(glob, "glob", lambda pattern: ["/content/mmkeras-0.1.0-py3-none-any.whl"])
    exec(install, {})
    exec(install.replace('MMKERAS_SOURCE = ""', 'MMKERAS_SOURCE = "git+https://example.org/me/mmkeras"'), {})
    wheel, git = calls[0][-1], calls[1][-1]
    assert wheel.startswith("/content/mmkeras-0.1.0-py3-none-any.whl[") and wheel.endswith("]")
    assert git.startswith("mmkeras[") and git.endswith("] @ git+https://example.org/me/mmkeras")
