"""Modality Shapley values: exact sums, the sampled estimate, credit where the label is, and the
model-randomisation sanity check (Adebayo et al., 2018); `mmkeras explain` on a run."""

import csv
import json

import keras
import numpy as np
import pytest
from helpers import random_inputs

import mmkeras
from mmkeras import explain as explain_lib
from mmkeras.fusion import FUSIONS
from mmkeras.heads import Head
from mmkeras_cli import main

MODALITIES = {"text": {"max_tokens": 10, "sequence_length": 4, "embedding_dim": 4, "lstm_units": 4},
              "image": {"height": 8, "width": 8, "channels": 1, "filters": [4]},
              "audio": {"sample_rate": 8000, "duration": 0.25, "num_mel_bins": 8, "conv_filters": [4], "lstm_units": 4}}
HEADS = [Head("label", "classification", 3, ["a", "b", "c"])]


def _model(seed=0, fusion="concat"):
    keras.utils.set_random_seed(seed)
    return mmkeras.build_model(MODALITIES, num_classes=3, fusion=fusion)


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_values_sum_exactly_to_all_present_minus_none_present(fusion):
    model = _model(fusion=fusion)
    x = random_inputs(model, n=5)
    x["audio_present"][1] = 0.0  # an example that lacks a modality already
    result = explain_lib.modality_shapley(model, x, list(MODALITIES), HEADS)["label"]
    assert result["values"].shape == (5, 3)
    np.testing.assert_allclose(result["values"].sum(axis=1), result["full"] - result["empty"], atol=1e-5)
    np.testing.assert_allclose(result["log_values"].sum(axis=1), np.log(result["full"]) - np.log(result["empty"]),
                               atol=1e-5)
    assert abs(result["values"][1, 2]) < 1e-7  # a modality the example does not have contributes nothing
    probabilities = model.predict(x, verbose=0)["label"]
    np.testing.assert_allclose(result["full"], probabilities.max(axis=1), rtol=1e-6)
    assert (result["target"] == probabilities.argmax(axis=1)).all()


def test_sampled_orders_sum_exactly_and_estimate_the_exact_values(monkeypatch):
    model = _model()
    x = random_inputs(model, n=4)
    exact = explain_lib.modality_shapley(model, x, list(MODALITIES), HEADS)["label"]
    monkeypatch.setattr(explain_lib, "EXACT_UP_TO", 2)  # three modalities: sampled
    sampled = explain_lib.modality_shapley(model, x, list(MODALITIES), HEADS, samples=60, seed=1)["label"]
    np.testing.assert_allclose(sampled["values"].sum(axis=1), exact["full"] - exact["empty"], atol=1e-5)
    assert (sampled["stderr"] > 0).any()
    assert (np.abs(sampled["values"] - exact["values"]) <= 5 * sampled["stderr"] + 1e-6).all()


@pytest.mark.slow
def test_the_modality_that_carries_the_label_gets_the_credit_and_a_random_model_differs():
    rng = np.random.default_rng(0)
    n = 240
    labels = rng.integers(0, 3, n)
    model = _model()
    x = random_inputs(model, n=n, seed=1)
    x["image"] = (rng.normal(0, 0.1, x["image"].shape) + labels[:, None, None, None]).astype("float32")  # label in the image
    model.fit(x, {"label": labels}, epochs=15, batch_size=32, verbose=0)
    test = {k: v[:40] for k, v in x.items()}
    trained = explain_lib.modality_shapley(model, test, list(MODALITIES), HEADS)["label"]["values"]
    share = np.abs(trained).mean(axis=0) / np.abs(trained).mean(axis=0).sum()
    assert share[1] > 0.8, share  # text, image, audio
    untrained = explain_lib.modality_shapley(_model(seed=5), test, list(MODALITIES), HEADS)["label"]["values"]
    # the same examples through a re-initialised model: the credit is spread differently
    random_share = np.abs(untrained).mean(axis=0) / np.abs(untrained).mean(axis=0).sum()
    assert np.abs(share - random_share).sum() > 0.3, (share, random_share)


def test_explain_command_writes_values_summary_and_plot(tiny_run, tmp_path, capsys):
    run_dir, manifest, rows = tiny_run
    output = tmp_path / "why"
    assert main(["explain", "--run", run_dir, "--data", manifest, "--output", str(output), "--rows", "1,3,4"]) == 0
    out = capsys.readouterr().out
    assert "head label: mean |Shapley value| per modality over 3 example(s)" in out
    assert f"summary plot:       {output / 'modality_shapley.png'}" in out
    with open(output / "modality_shapley.csv") as f:
        table = list(csv.DictReader(f))
    assert [int(r["row"]) for r in table] == [1, 3, 4]
    for r in table:
        total = sum(float(r[f"shapley_{m}"]) for m in ("text", "image", "audio"))
        assert abs(total - (float(r["output_all"]) - float(r["output_none"]))) < 1e-5
    summary = json.load(open(output / "summary.json"))["label"]
    assert set(summary["mean_abs_shapley"]) == {"text", "image", "audio"} and summary["examples"] == 3
    assert (output / "modality_shapley.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["explain", "--run", run_dir, "--data", manifest, "--rows", "999"]) == 2
    assert "no row(s) [999] (its rows are numbered 1 to" in capsys.readouterr().err
