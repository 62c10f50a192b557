"""README's Python examples run as written, so they cannot drift from the code."""

import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_has_a_first_screen_example():
    blocks = python_blocks()
    assert blocks and len(blocks[0].strip().splitlines()) <= 20


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_block_runs(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", python_blocks()[index]], cwd=tmp_path, capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    if index == 0:
        assert "tf.Tensor([b'" in result.stdout  # the served label
        assert os.path.exists(tmp_path / "saved_models" / "digits" / "1" / "saved_model.pb")
