"""Shared pytest set-up: make `helpers` importable from every test folder, seed everything."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory trained for two epochs on a tiny data set: (run dir, manifest path, rows)."""
    import json

    from helpers import built_once
    from media import tiny_config
    from media import write_tiny_dataset

    from mmkeras.training import train

    def build(folder):
        manifest, rows = write_tiny_dataset(str(folder))
        keras.utils.set_random_seed(0)
        train(tiny_config(manifest), str(folder / "run"))
        (folder / "rows.json").write_text(json.dumps([manifest, rows]))

    folder = built_once(tmp_path_factory, "tiny_run", build)
    manifest, rows = json.loads((folder / "rows.json").read_text())
    return str(folder / "run"), manifest, rows


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Tests marked slow run first. With two workers taking one test at a time in this order
    (`make test`: --dist loadgroup), the long ones run side by side from the start and the many
    short tests fill the gaps at the end, instead of one worker finishing a three-minute test
    while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
