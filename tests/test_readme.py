"""README's and docs/'s examples run as written, so they cannot drift from the code."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
README = os.path.join(ROOT, "README.md")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def fenced_blocks(path=README):
    """(language, text) of every fenced code block of a Markdown file, in order."""
    blocks, language, lines = [], None, []
    with open(path, encoding="utf-8") as f:
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


def _blocks(language, paths=(README,)):
    return [text for path in paths for lang, text in fenced_blocks(path) if lang == language]


def python_blocks():
    """README's Python blocks first, then those of docs/."""
    return _blocks("python", (README, *DOCS))


def test_readme_has_a_first_screen_example_and_stays_a_front_door():
    blocks = _blocks("python")
    assert blocks and len(blocks[0].strip().splitlines()) <= 20
    with open(README, encoding="utf-8") as f:
        assert len(f.readlines()) <= 300, "README is the front door: reference goes to docs/, results to benchmarks/"


def test_every_document_linked_from_readme_exists():
    import re

    with open(README, encoding="utf-8") as f:
        links = re.findall(r"\]\(([^)#]+\.md)\)", f.read())
    assert links and all(os.path.exists(os.path.join(ROOT, link)) for link in links), links
    assert {os.path.relpath(d, ROOT) for d in DOCS} <= set(links), "every docs/ page is linked"


def test_contributing_names_every_module_of_the_package():
    contributing = open(os.path.join(ROOT, "CONTRIBUTING.md"), encoding="utf-8").read()
    tree = contributing.split("```\nmmkeras/\n", 1)[1].split("```", 1)[0]
    package = os.path.join(ROOT, "mmkeras")
    names = [n for n in os.listdir(package) if not n.startswith(("_", ".")) and (n.endswith(".py") or os.path.isfile(
        os.path.join(package, n, "__init__.py")))]
    missing = [n for n in names if (n if n.endswith(".py") else f"{n}/") not in tree]
    assert not missing, f"CONTRIBUTING.md's tree does not say where these are: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_block_runs(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", python_blocks()[index]], cwd=tmp_path, capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "`shuffle=True` was passed" not in result.stderr, "a README block that Keras warns about"
    if index == 0:
        assert "tf.Tensor([b'" in result.stdout  # the served label
        assert os.path.exists(tmp_path / "saved_models" / "digits" / "1" / "saved_model.pb")


def test_config_block_lists_every_key_with_its_default():
    import yaml

    from mmkeras.config import DEFAULTS
    from mmkeras.specs import SPECS
    from mmkeras.specs import spec_to_dict

    documented = yaml.safe_load(_blocks("yaml", [os.path.join(ROOT, "docs", "config.md")])[0])
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
    from mmkeras_cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    block = next(text for text in _blocks("") if "\nmmkeras train " in f"\n{text}")
    synopsis = [line.split() for line in block.strip().splitlines() if line.startswith("mmkeras ")]
    assert sorted(words[1] for words in synopsis) == sorted(commands)
    for words in synopsis:
        flags = {option for action in commands[words[1]]._actions for option in action.option_strings}
        for word in words[2:]:
            flag = word.strip("[]")
            if flag.startswith("--"):
                assert flag in flags, f"mmkeras {words[1]} has no {flag}"
