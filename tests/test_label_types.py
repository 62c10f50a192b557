"""Multi-label, regression and multi-task models from training to serving: one answer per question.

`predict` from a run directory (Keras) and from the exported SavedModel (the TF Serving path)
must give the same rows, because both post-process with `mmkeras.postprocess`.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODALITIES
from helpers import random_inputs
from helpers import random_labels
from media import tiny_config
from media import write_manifest
from media import write_tiny_dataset

import mmkeras
from mmkeras_cli import main
from mmkeras.export import load_saved_model
from mmkeras.postprocess import model_heads
from mmkeras.postprocess import postprocess
from mmkeras.predict import predict
from mmkeras.training import load_run
from mmkeras.training import train


def _train_and_export(tmp_path, label_of):
    manifest, rows = write_tiny_dataset(str(tmp_path), count=24)
    for i, row in enumerate(rows):
        row["label"] = label_of(i)
    manifest = write_manifest(str(tmp_path), rows)
    label_type = "regression" if isinstance(label_of(0), float) else "multilabel"
    config = tiny_config(manifest, epochs=3)
    config["data"]["label_type"] = label_type
    run_dir = str(tmp_path / "run")
    train(config, run_dir)
    model, preprocessor, _ = load_run(run_dir)
    export = mmkeras.export_saved_model(model, preprocessor, str(tmp_path / "saved_models" / label_type))
    return manifest, rows, run_dir, export


@pytest.mark.slow
def test_multilabel_rows_are_the_same_from_the_run_and_from_the_saved_model(tmp_path):
    tags = ["red", "red|round", "round", "blue|round"]
    manifest, rows, run_dir, export = _train_and_export(tmp_path, lambda i: tags[i % len(tags)])
    from_run, served = predict(run_dir, manifest), predict(export, manifest)
    assert list(from_run[0]) == ["row", "label", "prob_blue", "prob_red", "prob_round"] == list(served[0])
    for a, b in zip(from_run, served):
        assert a["label"] == b["label"]
        scores = {k: v for k, v in a.items() if k.startswith("prob_")}
        np.testing.assert_allclose(list(scores.values()), [b[k] for k in scores], atol=1e-5)
        # the label is every class scoring at least 0.5, as the served model says
        assert a["label"] == "|".join(k[len("prob_"):] for k, v in scores.items() if v >= 0.5)
    _, heads = load_saved_model(export)
    assert heads[0].type == "multilabel" and heads[0].label_names == ["blue", "red", "round"]


@pytest.mark.slow
def test_regression_predicts_values_without_probability_columns_on_every_path(tmp_path, capsys):
    manifest, rows, run_dir, export = _train_and_export(tmp_path, lambda i: float(i % 3) * 1.5)
    from_run, served = predict(run_dir, manifest), predict(export, manifest)
    assert list(from_run[0]) == ["row", "value"] == list(served[0])
    np.testing.assert_allclose([r["value"] for r in from_run], [r["value"] for r in served], atol=1e-4)
    json.dumps(from_run + served)  # plain floats, not numpy scalars
    assert main(["predict", "--model", run_dir, "--data", manifest]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(rows) and set(json.loads(lines[0])) == {"row", "value"}
    csv_path = tmp_path / "preds.csv"
    assert main(["predict", "--model", export, "--data", manifest, "--output", str(csv_path)]) == 0
    assert csv_path.read_text().splitlines()[0] == "row,value"


def test_a_multitask_saved_model_serves_every_head_prefixed_by_its_name(tmp_path):
    heads = [{"name": "digit", "type": "classification", "units": 3},
             {"name": "tags", "type": "multilabel", "units": 2},
             {"name": "size", "type": "regression", "units": 1}]
    model = mmkeras.build_model(TINY_MODALITIES, heads=heads, fusion="gated", fusion_options={"units": 8})
    model.fit(random_inputs(model, n=8), random_labels(model, n=8), epochs=1, verbose=0)
    pre = mmkeras.Preprocessor(TINY_MODALITIES, vocabularies={"text": ["", "[UNK]", "one", "two"]})
    names = {"digit": ["zero", "one", "two"], "tags": ["small", "loud"]}
    export = mmkeras.export_saved_model(model, pre, str(tmp_path / "multi"), label_names=names)
    served = tf.saved_model.load(export).signatures["serving_default"]
    texts = tf.constant(["one two", "two", ""])
    out = served(text=texts, image=tf.constant([b""] * 3), audio=tf.constant([b""] * 3))
    assert set(out) == {"digit_probabilities", "digit_class_id", "digit_label", "tags_probabilities",
                        "tags_class_id", "tags_label", "size_value", "modality_weights"}
    assert out["digit_probabilities"].shape == (3, 3) and out["size_value"].shape == (3,)
    assert set(out["digit_label"].numpy().tolist()) <= {b"zero", b"one", b"two"}
    infos = model_heads(model, pre, names)
    expected = postprocess(model(pre.preprocess_batch({"text": texts, "image": tf.constant([b""] * 3),
                                                       "audio": tf.constant([b""] * 3)})), infos)
    for key in ("digit_probabilities", "tags_probabilities", "size_value"):
        np.testing.assert_allclose(out[key].numpy(), expected[key].numpy(), atol=1e-5, err_msg=key)
    for key in ("digit_label", "tags_label"):
        assert out[key].numpy().tolist() == expected[key].numpy().tolist()
    with open(os.path.join(export, "assets.extra", "heads.json")) as f:
        assert [h["name"] for h in json.load(f)] == ["digit", "tags", "size"]


def test_late_fusion_heads_are_told_apart_by_their_per_modality_layers():
    model = mmkeras.build_model(TINY_MODALITIES, heads=[{"name": "a", "units": 2},
                                                        {"name": "b", "type": "regression", "units": 2}],
                                fusion="late", compile=False)
    assert [(h.name, h.type, h.units) for h in model_heads(model)] == [("a", "classification", 2),
                                                                       ("b", "regression", 2)]
