"""Benchmarks that must keep running on a CPU machine (CI) at a small size."""

import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.mark.slow
def test_gpu_training_benchmark_runs_every_mode_on_cpu():
    result = subprocess.run([sys.executable, "gpu_training.py", "--examples", "16", "--batch-size", "8",
                             "--epochs", "2"], cwd=BENCHMARKS, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "examples/s" not in line
            and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["float32", "mixed_float16", "mixed_float16 + XLA"]
    assert all(float(row.split("|")[2].replace(",", "")) > 0 for row in rows)
    assert "device: CPU" in result.stdout
