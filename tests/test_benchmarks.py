"""Benchmarks that must keep running on a CPU machine (CI) at a small size."""

import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.mark.slow
def test_gpu_training_benchmark_runs_every_mode_on_cpu():
    command = [sys.executable, "gpu_training.py", "--examples", "16", "--batch-size", "8", "--epochs", "2",
               "--feeds", "files"]  # the pipeline only: the cached-tensor comparison says nothing on CPU
    result = subprocess.run(command, cwd=BENCHMARKS, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "examples/s" not in line
            and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["float32", "mixed_float16", "mixed_float16 + XLA"]
    assert all(float(row.split("|")[2].replace(",", "")) > 0 for row in rows)
    assert "device: CPU" in result.stdout


@pytest.mark.parametrize("name", ["tones", "shapes"])
def test_benchmark_data_sets_read_as_manifests(tmp_path, name, monkeypatch):
    # The data sets the fusion benchmark judges defaults on; tones' extra test rows once broke
    # when the demo's manifests gained columns.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import datasets

    from mmkeras.data.manifest import read_manifest

    writer = {"tones": lambda f: datasets.write_tones(f, examples=40, extra_test=20),
              "shapes": lambda f: datasets.write_shapes(f, examples=40)}[name]
    paths = writer(str(tmp_path))
    sizes = {split: len(read_manifest(path)) for split, path in paths.items()}
    assert sizes == ({"train": 28, "validation": 6, "test": 26} if name == "tones"
                     else {"train": 28, "validation": 6, "test": 6})
    assert all(set(datasets.MODALITIES) <= set(read_manifest(path).rows[0]) for path in paths.values())
