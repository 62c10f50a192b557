"""Storage faults as a user meets them on the command line: a write limit (`ulimit -f`, which
fails a write as a full disk does), a full disk, a read-only folder, and files damaged after they
were written (a resume backup, a SavedModel's variables, a `.keras` file). Each is one located line
with exit status 2, before anything already written is touched, and the same command works once
the cause is gone.

A new command or file kind adds its case to `CASES`: a function that makes the fault, runs the
command (`_run`: in this process, or as its own process where a resource limit must apply to it
alone), checks the one line, and returns the command that must then work.
"""

import os
import resource
import shutil
import subprocess
import sys

import pytest
import yaml
from media import tiny_config

from mmkeras_cli import main


def _mmkeras(*args, file_limit=None):
    exe = shutil.which("mmkeras", path=os.path.dirname(sys.executable)) or shutil.which("mmkeras")

    def limit():  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600,
                          preexec_fn=limit if file_limit else None)


def _one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


def _run(capsys, *args):
    """`mmkeras ARGS` in this process (the command's own code path, without a TensorFlow start-up),
    as a `CompletedProcess` like `_mmkeras`'s."""
    capsys.readouterr()
    status = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, captured.out, captured.err)


@pytest.fixture
def config(tiny_run, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_run[1], epochs=1)))
    return str(path)


def _train_under_a_write_limit(tiny_run, config, tmp_path, capsys):
    run = tmp_path / "run"
    line = _one_line(_mmkeras("train", "--config", config, "--output", str(run), file_limit=20_000))
    assert "writing the epoch's checkpoints needs about" in line and "(ulimit -f)" in line and str(run) in line
    return ["train", "--config", config, "--output", str(run)]


def _export_under_a_write_limit(tiny_run, config, tmp_path, capsys):
    base = tmp_path / "saved_models" / "tiny"
    line = _one_line(_mmkeras("export", "--run", tiny_run[0], "--output", str(base), file_limit=20_000))
    assert "writing the SavedModel needs about" in line and "(ulimit -f)" in line
    assert not [name for name in os.listdir(base) if not name.startswith(".")]  # no version folder, whole or half
    return ["export", "--run", tiny_run[0], "--output", str(base)]


def _damaged_resume_backup(tiny_run, config, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)  # cut short
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    line = _one_line(_run(capsys, "train", "--config", config, "--output", str(run)))
    assert f"{run / 'backup'}: the resume backup cannot be read" in line and "remove that folder" in line
    shutil.rmtree(run / "backup")
    return ["train", "--config", config, "--output", str(run)]


def _truncated_saved_model_variables(tiny_run, config, tmp_path, capsys):
    base = tmp_path / "saved_models" / "tiny"
    assert _run(capsys, "export", "--run", tiny_run[0], "--output", str(base)).returncode == 0
    damaged = tmp_path / "damaged"
    shutil.copytree(base, damaged)
    data = next(p for p in (damaged / "1" / "variables").iterdir() if p.name.startswith("variables.data"))
    data.write_bytes(data.read_bytes()[:1000])
    line = _one_line(_run(capsys, "predict", "--model", str(damaged), "--data", tiny_run[1]))
    assert f"{damaged / '1'}: the SavedModel cannot be read, its files are damaged or incomplete" in line
    return ["predict", "--model", str(base), "--data", tiny_run[1]]


def _truncated_keras_file(tiny_run, config, tmp_path, capsys):
    damaged = tmp_path / "damaged_run"
    shutil.copytree(tiny_run[0], damaged)
    model = damaged / "model.keras"
    model.write_bytes(model.read_bytes()[:5000])
    line = _one_line(_run(capsys, "predict", "--model", str(damaged), "--data", tiny_run[1]))
    assert f"{model}: not a readable .keras file (truncated or damaged" in line
    return ["predict", "--model", tiny_run[0], "--data", tiny_run[1]]


CASES = {
    "train under ulimit -f": _train_under_a_write_limit,
    "export under ulimit -f": _export_under_a_write_limit,
    "train resuming from a damaged backup": _damaged_resume_backup,
    "predict with a truncated SavedModel": _truncated_saved_model_variables,
    "predict with a truncated model.keras": _truncated_keras_file,
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_storage_fault_is_one_line_and_the_same_command_works_once_it_is_gone(case, tiny_run, config, tmp_path,
                                                                                capsys):
    again = CASES[case](tiny_run, config, tmp_path, capsys)
    result = _run(capsys, *again)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_full_disk_or_read_only_folder_is_refused_before_anything_is_written(tiny_run, tmp_path, monkeypatch,
                                                                               capsys):
    base = tmp_path / "saved_models" / "tiny"
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=100_000))
    assert main(["export", "--run", tiny_run[0], "--output", str(base)]) == 2
    err = capsys.readouterr().err
    assert "writing the SavedModel needs about" in err and "the disk has 0.1 MB free; free some space" in err
    monkeypatch.undo()

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if os.fspath(path) == str(read_only)
                        else real_access(path, mode))
    assert main(["export", "--run", tiny_run[0], "--output", str(read_only)]) == 2
    assert f"{read_only}: the folder for the SavedModel is read-only for this process" in capsys.readouterr().err
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_run[1], epochs=1)))
    assert main(["train", "--config", str(config), "--output", str(read_only)]) == 2
    assert f"{read_only}: the folder for the run is read-only" in capsys.readouterr().err
    assert os.listdir(read_only) == []
