"""README's Python examples run as written, so they cannot drift from the code."""

import os
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def fenced_blocks():
    """(language, text) of every fenced code block, in order."""
    blocks, language, lines = [], None, []
    with open(README, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                if language is None:
                    language, lines = line[3:].strip(), []
                else:
                    blocks.append((language, "".join(lines)))
                    language = None
            elif language is not None:
                lines.append(line)
    return blocks


def _blocks(language):
    return [text for lang, text in fenced_blocks() if lang == language]


def python_blocks():
    return _blocks("python")


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


def test_config_block_lists_every_key_with_its_default():
    import yaml

    from mmkeras.config import DEFAULTS
    from mmkeras.specs import SPECS
    from mmkeras.specs import spec_to_dict

    documented = yaml.safe_load(_blocks("yaml")[0])
    assert sorted(documented["modalities"]) == sorted(SPECS)  # every registered kind is documented
    for section in ("data", "training", "model", "tuning"):
        assert documented[section] == {k: v for k, v in DEFAULTS[section].items() if k != "train"} | (
            {"train": documented[section]["train"]} if section == "data" else {}), section
    assert documented["fusion"] == DEFAULTS["fusion"]
    required = {"tabular": ("numeric", "categorical")}  # settings a kind has no default for
    for kind, options in documented["modalities"].items():
        defaults = spec_to_dict(SPECS[kind](**{key: options[key] for key in required.get(kind, ())}))
        defaults.pop("kind")
        if kind == "audio":  # derived from the sample rate when left out
            for key in ("frame_length", "frame_step", "fft_length", "fmax"):
                defaults[key] = None
        assert options == defaults, kind


def test_cli_block_matches_the_parser():
    from mmkeras.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    synopsis = [line.split() for line in _blocks("")[1].strip().splitlines() if line.startswith("mmkeras ")]
    assert sorted(words[1] for words in synopsis) == sorted(commands)
    for words in synopsis:
        flags = {option for action in commands[words[1]]._actions for option in action.option_strings}
        for word in words[2:]:
            flag = word.strip("[]")
            if flag.startswith("--"):
                assert flag in flags, f"mmkeras {words[1]} has no {flag}"
