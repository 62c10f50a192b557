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


#: Fixtures that train a model once per session (`helpers.built_once`), shared by the workers.
BUILT_ONCE = ("tiny_run", "renamed_run", "trained_models")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Tests marked slow run first. With two workers taking one test at a time in this order
    (`make test`: --maxschedchunk 1), the long ones run side by side from the start and the many
    short tests fill the gaps at the end, instead of one worker finishing a three-minute test
    while the other waits.

    Of the tests that use a fixture built once for all workers, the first builds it in its place;
    the others move to the end of their part (slow or not), so that the other worker does not sit
    waiting for the build, as it would if it took the next test of the same module meanwhile."""
    first = {}
    for item in sorted(items, key=lambda item: item.get_closest_marker("slow") is None):
        for name in BUILT_ONCE:
            if name in getattr(item, "fixturenames", ()):
                first.setdefault(name, item)

    def rank(item):
        slow = item.get_closest_marker("slow") is not None
        waits = any(name in getattr(item, "fixturenames", ()) and first[name] is not item for name in BUILT_ONCE)
        return (0 if slow else 2) + int(waits)

    items.sort(key=rank)
