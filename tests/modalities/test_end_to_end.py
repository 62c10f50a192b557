"""The new kinds end to end: sensor series and tabular columns through train, evaluate, export, predict."""

import os

import keras
import numpy as np
import pytest
import yaml

import mmkeras
from mmkeras_cli import main
from mmkeras.export import load_saved_model
from mmkeras.training import load_run

from test_sensor import _csv


def _write_dataset(folder, count=48, seed=0):
    """Three classes: the sensor's shape over time tells them apart, the device column often does.

    Sensor series alternate between CSV and .npy files; a few cells are empty. The device names
    the class in 70% of rows and is "car" or empty in the others, on rows of every class, so the
    columns alone cannot reach the series' accuracy (at best 0.85 on these rows).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(folder / "files", exist_ok=True)
    rows = ["text,motion,age,device,label"]
    t = np.linspace(0, 1, 20)[:, None]
    for i in range(count):
        label = i % 3
        shape = [np.sin(2 * np.pi * t * 2), t * 2 - 1, np.cos(2 * np.pi * t * 4)][label]
        values = (np.repeat(shape, 2, axis=1) * [1.0, 0.5] + rng.normal(0, 0.3, (20, 2))).astype("float32")
        name = f"files/{i}.npy" if i % 2 else f"files/{i}.csv"
        if i % 2:
            np.save(folder / name, values)
        else:
            (folder / name).write_bytes(_csv(values, header=False).replace(b"\r", b""))
        text = "reading" if i % 4 else ""  # no clue to the class
        draw = rng.random()
        device = ["phone", "watch", "tablet"][label] if draw < 0.7 else ("car" if draw < 0.85 else "")
        age = "" if i % 5 == 0 else f"{rng.normal(40, 10):.1f}"
        rows.append(f"{text},{name if i != 7 else ''},{age},{device},c{label}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return str(folder / "manifest.csv"), count


def train_evaluate_export(tmp_path, manifest, config):
    """`mmkeras train`, `evaluate` and `export` on `config`; returns (run dir, served dir, metrics)."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run, served = tmp_path / "run", tmp_path / "served"
    assert main(["train", "--config", str(tmp_path / "config.yaml"), "--output", str(run)]) == 0
    assert main(["evaluate", "--run", str(run), "--data", manifest, "--output", str(tmp_path / "eval")]) == 0
    assert main(["export", "--run", str(run), "--output", str(served)]) == 0
    return run, served, yaml.safe_load(open(tmp_path / "eval" / "metrics.json"))


def assert_served_and_reloaded_equal_keras(tmp_path, run, served, manifest, count):
    """The SavedModel's answers on raw files, and a fresh process's `.keras` reload, equal Keras's."""
    from helpers import predict_in_fresh_process
    from test_pretrained import _assert_served_equals_keras

    _assert_served_equals_keras(run, served, manifest, count, tmp_path)
    _, pre, _ = load_run(str(run))
    x, _ = next(iter(mmkeras.make_dataset(manifest, pre, batch_size=8)))
    x = {k: v.numpy() for k, v in x.items()}
    (fresh,) = predict_in_fresh_process([run / "model.keras"], x, str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_allclose(fresh["label"], keras.saving.load_model(str(run / "model.keras")).predict(
        x, verbose=0)["label"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sensor_and_tabular_data_train_export_and_serve_through_the_cli(tmp_path):
    manifest, count = _write_dataset(tmp_path)
    config = {
        "data": {"train": manifest, "validation_split": 0.25},
        "modalities": {"text": {"max_tokens": 10, "sequence_length": 2, "embedding_dim": 4, "lstm_units": 4},
                       "motion": {"kind": "sensor", "channels": 2, "length": 20, "conv_filters": [8], "lstm_units": 8},
                       "person": {"kind": "tabular", "numeric": ["age"], "categorical": ["device"],
                                  "hidden_units": [8]}},
        "fusion": {"type": "attention", "units": 8},
        "training": {"epochs": 12, "batch_size": 8, "learning_rate": 0.01, "tensorboard": False, "verbose": 0},
    }
    run, served, metrics = train_evaluate_export(tmp_path, manifest, config)
    assert metrics["ablation"]["all"]["accuracy"] >= 0.8  # the series carries the class
    ablation = {k: v["accuracy"] for k, v in metrics["ablation"].items()}
    # the series matters most: without it the model falls furthest
    assert ablation["without_motion"] < min(ablation["without_person"], ablation["without_text"])
    assert ablation["without_motion"] >= 0.6  # the device column alone still beats chance (1/3) by far
    assert {"motion_noise_0.5", "motion_noise_1.0", "motion_channel_lost", "person_half_cells_missing",
            "person_numeric_noise_1.0"} <= set(metrics["robustness"])
    restored, _ = load_saved_model(str(served))
    served_inputs = restored.signatures["serving_default"].structured_input_signature[1]
    assert sorted(served_inputs) == ["age", "device", "motion", "text"]  # one per tabular column
    assert_served_and_reloaded_equal_keras(tmp_path, run, served, manifest, count)

NEW_KINDS = {"motion": {"kind": "sensor", "channels": 2, "length": 8, "conv_filters": [4], "lstm_units": 4},
             "person": {"kind": "tabular", "numeric": ["age"], "categorical": ["device"], "max_categories": 3,
                        "hidden_units": [4]},
             "clip": {"kind": "video", "frames": 3, "height": 8, "width": 8, "channels": 1, "filters": [4],
                      "units": 4}}


@pytest.mark.parametrize("fusion", sorted(mmkeras.FUSIONS))
def test_every_fusion_takes_the_new_kinds_and_ignores_them_when_absent(fusion):
    from helpers import TINY_FUSION_OPTIONS
    from helpers import random_inputs

    model = mmkeras.build_model(NEW_KINDS, num_classes=3, fusion=fusion, fusion_options=TINY_FUSION_OPTIONS[fusion],
                                modality_dropout=0.25)
    x = random_inputs(model, n=8)
    x["clip"][..., -1] = 1.0  # the video's mask plane: every frame real
    history = model.fit(x, {"label": np.arange(8) % 3}, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for missing in NEW_KINDS:
        absent = dict(x, **{f"{missing}_present": np.zeros((8, 1), "float32")})
        flipped = dict(absent, **{missing: (x[missing][::-1] * -3 + 1).astype("float32")})
        if missing == "clip":  # keep the mask plane a mask: only the pixels change
            flipped[missing][..., -1] = x[missing][..., -1]
        before, after = (model.predict(v, verbose=0)["label"] for v in (absent, flipped))
        np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-6, err_msg=f"{fusion}: {missing}")
        assert not np.allclose(before, model.predict(x, verbose=0)["label"]), f"{fusion}: {missing} had no effect"
