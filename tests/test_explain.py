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
from mmkeras_cli import build_parser
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
    out, err = capsys.readouterr()
    assert "mmkeras explain: modality Shapley values: 3 example(s), 8 forward passes each" in err  # progress
    assert "mmkeras explain: Integrated Gradients inside audio (3/3): 3 example(s) x 32 steps" in err
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
    # inside each modality: the words of the text, regions of the image, moments of the sound
    assert "what inside each modality moved it most (Integrated Gradients)" in out
    words = {r["text"].split()[0] for r in rows}
    assert all(r["top_text"].split(":")[0] in words | {"item"} for r in table)
    assert all(r["top_image"].startswith("rows ") and " s: " in r["top_audio"] for r in table)
    records = json.load(open(output / "input_attributions.json"))
    assert [r["row"] for r in records] == [1, 3, 4]
    for record in records:
        assert {m["unit"] for m in record["modalities"].values()} == {"token", "region", "moment"}
        for m in record["modalities"].values():
            assert abs(m["total"] - m["delta"]) <= 0.05 * abs(m["delta"]) + 2e-3  # completeness
            assert len(m["labels"]) == len(m["scores"])
    assert sorted(p.name for p in (output / "attributions").iterdir()) == ["row1_label.png", "row3_label.png",
                                                                          "row4_label.png"]
    # the launcher answers --help without importing mmkeras, so it keeps its own copy of the defaults
    defaults = build_parser().parse_args(["explain", "--run", run_dir, "--data", manifest])
    assert (defaults.steps, defaults.plots) == (explain_lib.IG_STEPS, explain_lib.PLOTTED_EXAMPLES)
    assert main(["explain", "--run", run_dir, "--data", manifest, "--output", str(tmp_path / "only"), "--rows", "2",
                 "--modalities-only"]) == 0
    assert not (tmp_path / "only" / "input_attributions.json").exists()
    capsys.readouterr()
    assert main(["explain", "--run", run_dir, "--data", manifest, "--rows", "999"]) == 2
    assert "no row(s) [999] (its rows are numbered 1 to" in capsys.readouterr().err


#: One modality of every kind, small (text, image and audio as above).
EVERY_KIND = {
    **MODALITIES,
    "motion": {"kind": "sensor", "channels": 2, "length": 12, "conv_filters": [4], "lstm_units": 4},
    "person": {"kind": "tabular", "numeric": ["age"], "categorical": ["city"], "max_categories": 3,
               "hidden_units": [4]},
    "clip": {"kind": "video", "frames": 3, "height": 6, "width": 6, "channels": 1, "filters": [4], "units": 4},
}


def _converters(modalities):
    from mmkeras.modalities.registry import get_kind
    from mmkeras.specs import make_spec

    converters = {}
    for name, options in modalities.items():
        spec = make_spec(name, options)
        state = {"vocabulary": ["", "[UNK]"] + [f"w{i}" for i in range(8)]} if spec.kind == "text" else None
        converters[name] = get_kind(spec.kind)(name, spec, state=state)
    return converters


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_integrated_gradients_add_up_inside_every_kind_with_every_fusion(fusion):
    from helpers import TINY_FUSION_OPTIONS

    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(EVERY_KIND, num_classes=3, fusion=fusion, fusion_options=TINY_FUSION_OPTIONS[fusion])
    x = random_inputs(model, n=3)
    x["clip"][..., -1] = 1.0  # every frame real (the last plane is the frame mask)
    targets = {"label": model.predict(x, verbose=0)["label"].argmax(axis=1)}
    converters = _converters(EVERY_KIND)
    for name, converter in converters.items():
        found = explain_lib.input_attributions(model, x, name, converter, HEADS, targets, steps=16)
        entry = found["label"]
        assert found["on_layer"] == (name in ("text", "audio")), (name, found["layer"])
        # completeness: the attributions add up to the output's change along the path
        np.testing.assert_allclose(entry["total"], entry["delta"], rtol=0.05, atol=2e-3, err_msg=name)
        described = converter.describe_attribution(entry["attributions"][0], x[name][0], found["on_layer"])
        assert len(described["labels"]) == len(described["scores"]) > 0, name
        # a kind's units split the attributions without losing any (video: the frame-mask plane gets none)
        assert abs(float(np.sum(described["scores"])) - entry["total"][0]) < 1e-4 + 1e-3 * abs(entry["total"][0]), name
    assert converters["person"].describe_attribution(np.arange(7.0), None, False)["labels"] == ["age", "city"]


@pytest.mark.slow
def test_the_heat_map_sits_where_the_label_is_and_a_random_model_differs():
    """Class 1 is a bright square in the image's top-left corner; class 0 has none."""
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 0.3, (n, 16, 16, 1)).astype("float32")
    images[labels == 1, :5, :5, 0] += 0.7
    modalities = {"image": {"height": 16, "width": 16, "channels": 1, "filters": [8]}}
    heads = [Head("label", "classification", 2, ["plain", "corner"])]

    def model(seed):
        keras.utils.set_random_seed(seed)
        return mmkeras.build_model(modalities, num_classes=2, fusion="concat")

    trained = model(0)
    x = {"image": images, "image_present": np.ones((n, 1), "float32")}
    trained.fit(x, {"label": labels}, epochs=12, batch_size=32, verbose=0)
    corner = {key: value[labels == 1][:12] for key, value in x.items()}
    assert (trained.predict(corner, verbose=0)["label"].argmax(axis=1) == 1).mean() > 0.9
    converter = _converters(modalities)["image"]
    targets = {"label": np.ones(12, int)}

    def heat(m):
        found = explain_lib.input_attributions(m, corner, "image", converter, heads, targets)
        return found["label"]["attributions"][..., 0]

    ours = heat(trained)
    share = np.abs(ours)[:, :8, :8].sum(axis=(1, 2)) / np.abs(ours).sum(axis=(1, 2))  # the top-left quarter
    assert share.mean() > 0.6, share
    # Model-randomisation check (Adebayo et al., 2018): the maps of a re-initialised model differ. Their
    # magnitudes alone would not show it: attributions from a black baseline scale with the pixels.
    random = heat(model(7))
    correlation = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(ours, random)]
    assert np.mean(correlation) < 0.4, correlation
