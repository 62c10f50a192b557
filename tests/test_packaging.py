"""The package builds as a wheel and an sdist whose metadata PyPI would accept (`twine check`)."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_wheel_and_sdist_build_and_pass_twine_check(tmp_path):
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path), ROOT], capture_output=True,
                           text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    files = sorted(os.listdir(tmp_path))
    wheel = next(f for f in files if f.endswith(".whl"))
    assert wheel.startswith("mmkeras-") and any(f.endswith(".tar.gz") for f in files)
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *[str(tmp_path / f) for f in files]],
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with zipfile.ZipFile(tmp_path / wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "mmkeras = mmkeras_cli:main" in archive.read(entry_points).decode()
    assert "mmkeras/task.py" in names and "mmkeras/modalities/registry.py" in names and "mmkeras_cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "notebooks/"))]


def test_importing_mmkeras_changes_nothing_and_a_folder_named_mmkeras_does_not_shadow_it(tmp_path):
    """`import mmkeras` only defines names: it leaves the same environment (log level included) and
    dtype policy as importing TensorFlow and Keras alone, each in a fresh process.

    Both run beside a folder named mmkeras/ (a clone's top folder, no __init__.py): Python took it
    for the package, and a script beside it failed with "module 'mmkeras' has no attribute
    'Preprocessor'"."""
    (tmp_path / "mmkeras").mkdir()
    (tmp_path / "mmkeras" / "README.md").write_text("a clone's top folder\n")

    def after(module):
        probe = (f"import json, os, sys, {module}, keras\n"
                 "found = getattr(sys.modules.get('mmkeras'), 'Preprocessor', None)\n"
                 "print(json.dumps([dict(os.environ), keras.config.dtype_policy().name, "
                 "getattr(found, '__name__', None)]))")
        env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                                cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    environment, policy, name = after("mmkeras")
    assert name == "Preprocessor", "the installed package, not the folder beside the script"
    assert [environment, policy] == after("tensorflow")[:2]
