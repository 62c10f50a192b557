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


def _run_small(path, folder, kernel="python3", **values):
    """Runs the notebook at `path` in `folder` with SMALL (and `values`) in place of its own values."""
    from nbclient import NotebookClient

    values = {**SMALL, **values}
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if "parameters" in cell.metadata.get("tags", []) or cell.source.startswith("# Setup"):
            lines = []
            for line in cell.source.splitlines():
                name = line.split("=")[0].strip()
                lines.append(f"{name} = {values[name]!r}" if name in values else line)
            cell.source = "\n".join(lines)
    NotebookClient(book, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(folder)}}).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    warned = [o.text for o in outputs if o.output_type == "stream" and "`shuffle=True` was passed" in o.text]
    assert not warned, "a notebook cell that Keras warns about"


QUICKSTART = next(p for p in NOTEBOOKS if os.path.basename(p).startswith("01_"))


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p != QUICKSTART], ids=os.path.basename)
def test_notebook_runs(path, tmp_path):
    # Notebook 03 trains each of its FUSIONS; two still run every branch of its code (late fusion's
    # own options, attention's weights and export). tests/test_model.py trains every fusion.
    values = {"FUSIONS": ["attention", "late"]} if os.path.basename(path).startswith("03_") else {}
    _run_small(path, tmp_path, **values)


@pytest.mark.slow
def test_the_quickstart_installs_mmkeras_through_its_own_first_cell_and_runs(tmp_path, monkeypatch):
    """Where mmkeras is not installed, the quickstart's first cell installs it (here from the folder
    of a clone, MMKERAS_SOURCE) and the notebook then runs top to bottom in that kernel."""
    import subprocess
    import sys
    import sysconfig

    from test_first_contact import _copy_source

    source = _copy_source(str(tmp_path / "src"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # TensorFlow, Jupyter's kernel and the rest come from the test environment (pip downloads only
    # its build tools): its site-packages joins the new one's path. mmkeras does not: the editable install's own .pth
    # file is read only in its own environment.
    with open(os.path.join(site, "test_environment.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    monkeypatch.delenv("PYTHONPATH", raising=False)
    missing = subprocess.run([python, "-c", "import mmkeras"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "No module named 'mmkeras'" in missing.stderr
    subprocess.run([python, "-m", "ipykernel", "install", "--prefix", str(tmp_path / "jupyter"), "--name", "fresh"],
                   check=True, capture_output=True, env=env)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))

    _run_small(QUICKSTART, tmp_path, kernel="fresh", MMKERAS_SOURCE=source)
    assert os.path.isdir(os.path.join(site, "mmkeras")), "the first cell installed mmkeras into the kernel's environment"


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
