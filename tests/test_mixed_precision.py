"""The GPU path on CPU: `training.mixed_precision: true` forces `mixed_float16`, as a Colab GPU
gets by default. Every modality kind (audio with `normalization: bin`) trains, evaluates, exports
and serves with the default fusion; every other fusion with float32 parts trains, exports and
serves on an image and a bin-normalised audio modality. The answers are finite, and the
served SavedModel agrees with the Keras model within float16's precision.
"""

import copy
import csv
import os

import keras
import numpy as np
import pytest
from helpers import TINY_FUSION_OPTIONS
from media import gif_from

import mmkeras
from mmkeras.demo import DEMO_CONFIG
from mmkeras.demo import write_demo_data


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """The demo's five kinds, plus a `clip` column of small GIFs (a video modality), 60 examples:
    every digit is in the training part (42 rows), and the test part holds 9 (explained: rows 1-2).
    The checks are finite answers and served = Keras, which do not need more rows to train on."""
    folder = tmp_path_factory.mktemp("mixed")
    paths = write_demo_data(str(folder), examples=60)
    rng = np.random.default_rng(0)
    for split, path in paths.items():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for i, row in enumerate(rows):
            name = f"clips/{split}_{i}.gif"
            os.makedirs(folder / "clips", exist_ok=True)
            frames = [(rng.random((8, 8)) * 255).astype("uint8") for _ in range(3)]
            (folder / name).write_bytes(gif_from(frames))
            row["clip"] = name
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return paths


def _config(paths, fusion, kinds=None):
    config = copy.deepcopy(DEMO_CONFIG)
    config["data"] = {"train": paths["train"], "validation": paths["validation"]}
    modalities = config["modalities"]
    modalities["audio"].update(normalization="bin", num_mel_bins=16, conv_filters=[8], lstm_units=8)
    modalities["image"]["filters"] = [8]
    modalities["clip"] = {"kind": "video", "frames": 3, "height": 8, "width": 8, "channels": 1}
    if kinds:
        config["modalities"] = {name: spec for name, spec in modalities.items() if name in kinds}
    config["fusion"] = {"type": fusion, **TINY_FUSION_OPTIONS[fusion]}
    config["training"].update(epochs=1, batch_size=16, mixed_precision=True, verbose=0, early_stopping_patience=0)
    return config


def _train_export_serve(config, manifests, tmp_path, evaluate=False):
    run = str(tmp_path / "run")
    mmkeras.train(config, run)
    assert keras.config.dtype_policy().name == "float32"  # the run leaves the global policy as it found it
    task = mmkeras.MultimodalTask.from_preset(run)
    assert task.config["training"]["mixed_precision"] is True
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in task.model.layers)
    if evaluate:
        result = task.evaluate(manifests["test"])
        assert np.isfinite(result["report"]["accuracy"]) and all(np.isfinite(r["accuracy"])
                                                                 for r in result["ablation"].values())
        # explanations of every kind in float16 compute: finite, and adding up within float16's precision
        explained = task.explain(manifests["test"], rows=[1, 2], steps=16)
        for record in explained["inputs"]:
            assert set(record["modalities"]) == set(config["modalities"]), record["modalities"].keys()
            for name, found in record["modalities"].items():
                assert np.all(np.isfinite(found["scores"])), name
                assert abs(found["total"] - found["delta"]) <= 0.1 * abs(found["delta"]) + 1e-2, (name, found)
    version = task.export(str(tmp_path / "served"))
    keras_rows = task.predict(manifests["test"])
    served_rows = mmkeras.predict(version, manifests["test"])
    assert [r["label"] for r in served_rows] and len(served_rows) == len(keras_rows)
    columns = [c for c in keras_rows[0] if c.startswith("prob_")]
    ours = np.array([[r[c] for c in columns] for r in keras_rows], "float64")
    served = np.array([[r[c] for c in columns] for r in served_rows], "float64")
    assert np.all(np.isfinite(ours)) and np.all(np.isfinite(served))
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-2)
    np.testing.assert_allclose(served, ours, atol=1e-2)  # float16 compute, float32 weights


@pytest.mark.slow
def test_every_kind_trains_evaluates_exports_and_serves_in_mixed_float16(manifests, tmp_path):
    _train_export_serve(_config(manifests, "attention"), manifests, tmp_path, evaluate=True)


#: Fusions with float32 parts under a mixed policy (softmax weights, probabilities, attention); concat
#: and low-rank have none, and the layer harness checks every fusion's dtypes under mixed_float16.
FLOAT32_ISLANDS = ("gated", "late", "transformer", "weighted")


@pytest.mark.slow
@pytest.mark.parametrize("fusion", FLOAT32_ISLANDS)
def test_fusions_with_float32_parts_train_export_and_serve_in_mixed_float16(fusion, manifests, tmp_path):
    _train_export_serve(_config(manifests, fusion, kinds=("image", "audio")), manifests, tmp_path)
