import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmkeras.evaluation import mark_absent
from mmkeras.export import TENSORS_SIGNATURE
from mmkeras.export import export_saved_model
from mmkeras.export import load_saved_model
from mmkeras.export import serving_model
from mmkeras.training import load_run


def _raw(rows, folder, n=4):
    read = lambda p: open(os.path.join(folder, p), "rb").read()  # noqa: E731
    return {
        "text": [r["text"].encode() for r in rows[:n]],
        "image": [read(r["image"]) for r in rows[:n]],
        "audio": [read(r["audio"]) for r in rows[:n]],
    }


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    run_dir, manifest, rows = tiny_run
    model, preprocessor, _ = load_run(run_dir)
    base = str(tmp_path_factory.mktemp("export") / "tiny")
    raw = _raw(rows, os.path.dirname(manifest))
    path = export_saved_model(model, preprocessor, base, check_inputs=raw)
    return path, model, preprocessor, raw


def test_layout_is_a_tf_serving_version_folder(exported):
    path, _, preprocessor, _ = exported
    assert os.path.basename(path) == "1" and os.path.exists(os.path.join(path, "saved_model.pb"))
    assert os.listdir(os.path.dirname(path)) == ["1"], "no temporary folder is left behind"
    _, heads = load_saved_model(os.path.dirname(path))
    assert [(h.name, h.type, h.label_names) for h in heads] == [("label", "classification", preprocessor.label_names)]
    with open(os.path.join(path, "assets.extra", "labels.txt")) as f:
        assert f.read().split() == preprocessor.label_names


def test_next_export_gets_the_next_version_and_refuses_to_overwrite(exported):
    path, model, preprocessor, _ = exported
    base = os.path.dirname(path)
    assert export_saved_model(model, preprocessor, base).endswith(os.sep + "2")
    with pytest.raises(FileExistsError):
        export_saved_model(model, preprocessor, base, version=1)


def test_signature_contract_and_equality_with_keras(exported):
    path, model, preprocessor, raw = exported
    restored, _ = load_saved_model(path)
    signature = restored.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        m: (tf.string, [None]) for m in ("text", "image", "audio")}
    out = signature(**{k: tf.constant(v) for k, v in raw.items()})
    assert set(out) == {"probabilities", "label", "class_id", "modality_weights"}
    features = preprocessor.preprocess_batch({k: tf.constant(v) for k, v in raw.items()})
    expected = serving_model(model).predict({k: v.numpy() for k, v in features.items()}, verbose=0)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected["label"], atol=1e-6)
    np.testing.assert_array_equal(out["class_id"].numpy(), expected["label"].argmax(-1))
    assert [x.decode() for x in out["label"].numpy()] == [preprocessor.label_names[i] for i in expected["label"].argmax(-1)]
    tensors = restored.signatures[TENSORS_SIGNATURE](**features)
    np.testing.assert_allclose(tensors["probabilities"].numpy(), out["probabilities"].numpy(), atol=1e-6)


@pytest.mark.parametrize("missing", ["text", "image", "audio"])
def test_an_empty_input_matches_keras_with_that_modality_absent(exported, missing):
    path, model, preprocessor, raw = exported
    restored, _ = load_saved_model(path)
    request = dict(raw, **{missing: [b""] * len(raw[missing])})
    out = restored.signatures["serving_default"](**{k: tf.constant(v) for k, v in request.items()})
    features = preprocessor.preprocess_batch({k: tf.constant(v) for k, v in raw.items()})
    absent = mark_absent({k: v.numpy() for k, v in features.items()}, [missing])
    expected = serving_model(model).predict(absent, verbose=0)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected["label"], atol=1e-6)
    weights = out["modality_weights"].numpy()
    assert np.all(weights[:, preprocessor.modalities.index(missing)] == 0)


def test_rest_json_request_as_tf_serving_decodes_it(exported):
    path, _, _, raw = exported
    # What a client sends to POST /v1/models/tiny:predict (row format, binary as {"b64": ...}).
    body = json.dumps({"signature_name": "serving_default", "instances": [
        {"text": raw["text"][i].decode(), "image": {"b64": base64.b64encode(raw["image"][i]).decode()},
         "audio": {"b64": base64.b64encode(raw["audio"][i]).decode()}} for i in range(2)]})
    # What TF Serving does with it: {"b64": ...} objects become the decoded bytes of a DT_STRING.
    instances = json.loads(body)["instances"]
    decode = lambda v: base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode()  # noqa: E731
    tensors = {k: tf.constant([decode(inst[k]) for inst in instances]) for k in instances[0]}
    restored, _ = load_saved_model(path)
    out = restored.signatures["serving_default"](**tensors)
    direct = restored.signatures["serving_default"](**{k: tf.constant(v[:2]) for k, v in raw.items()})
    np.testing.assert_array_equal(out["probabilities"].numpy(), direct["probabilities"].numpy())


@pytest.mark.parametrize("modality, data, reason", [
    ("image", b"this is not an image", "Input image: not an image file"),
    ("audio", b"RIFF....WAVEjunk-junk-junk", "Input audio: WAV file has no fmt chunk"),
])
def test_undecodable_request_bytes_name_the_input(exported, modality, data, reason):
    path, _, _, raw = exported
    restored, _ = load_saved_model(path)
    request = {k: tf.constant(v[:1]) for k, v in raw.items()}
    request[modality] = tf.constant([data])
    with pytest.raises(tf.errors.InvalidArgumentError, match=reason):
        restored.signatures["serving_default"](**request)


@pytest.mark.slow
def test_saved_model_cli_run_serves_it_without_mmkeras(exported):
    # (The signatures' inputs and outputs, as `saved_model_cli show` lists them, are checked in
    # test_signature_contract_and_equality_with_keras.)
    path, _, _, _ = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    run = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", "text=['zero item'];image=[''];audio=['']"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "probabilities" in run.stdout and "class" in run.stdout


@pytest.mark.parametrize("make, message", [
    (lambda: {m: tf.constant([], tf.string) for m in ("text", "image", "audio")},
     r"Inputs audio, image, text: the batch is empty"),
    (lambda: {"text": tf.constant(["a", "b"]), "image": tf.constant([b""]), "audio": tf.constant([b"", b""])},
     r"Inputs have different batch sizes \(audio 2, image 1, text 2\)"),
    (lambda: {"text": tf.constant([["a"]]), "image": tf.constant([[b""]]), "audio": tf.constant([[b""]])},
     r"Input audio: expected a 1-D batch of strings \(one per example\), got shape \[1, 1\]"),
    # refused by TensorFlow before the graph runs, by position: inputs count in alphabetical order
    # (docs/faults.md tells clients so), and text comes third
    (lambda: {"text": tf.constant([1.0]), "image": tf.constant([b""]), "audio": tf.constant([b""])},
     r"input #2\(zero-based\) was expected to be a string tensor but is a float tensor"),
])
def test_malformed_requests_name_the_input_and_what_was_expected(exported, make, message):
    path, _, _, raw = exported
    signature = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signature(**make())
    signature(**{k: tf.constant(v) for k, v in raw.items()})  # and it keeps serving


def test_exports_that_race_for_a_version_both_land_and_folders_are_readable(exported, tmp_path, monkeypatch):
    import mmkeras.export as export_lib

    _, model, preprocessor, _ = exported
    base = str(tmp_path / "race")
    os.makedirs(os.path.join(base, ".1-999999999-abcd"))  # left by a killed export: that process is gone
    os.makedirs(os.path.join(base, f".1-{os.getpid()}-live"))  # being written by a live process
    first = export_saved_model(model, preprocessor, base)
    # A second export that computed its version before the first one landed: both chose 1.
    monkeypatch.setattr(export_lib, "next_version", lambda export_base, calls=[]: calls.append(1) or (
        1 if len(calls) == 1 else max(int(n) for n in os.listdir(export_base) if n.isdigit()) + 1))
    second = export_saved_model(model, preprocessor, base)
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    leftovers = sorted(n for n in os.listdir(base) if n.startswith("."))
    assert leftovers == [f".1-{os.getpid()}-live"], "only the live process's temporary folder stays"
    umask = os.umask(0)
    os.umask(umask)
    for folder in (first, second, os.path.join(second, "variables")):
        assert os.stat(folder).st_mode & 0o777 == 0o777 & ~umask
    assert os.stat(os.path.join(second, "saved_model.pb")).st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.slow
def test_three_concurrent_exports_to_one_base_get_three_versions(tiny_run, tmp_path):
    run_dir = tiny_run[0]
    base = str(tmp_path / "concurrent")
    script = ("import sys; from mmkeras.training import load_run; from mmkeras.export import export_saved_model; "
              "m, p, _ = load_run(sys.argv[1]); print('VERSION', export_saved_model(m, p, sys.argv[2]))")
    processes = [subprocess.Popen([sys.executable, "-c", script, run_dir, base], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    assert sorted(os.listdir(base)) == ["1", "2", "3"]


def test_saved_model_stores_each_weight_once(exported):
    # Keras' ExportArchive wrote every weight twice (keras-team/keras#23553): a 90 MB encoder
    # exported 180 MB of variables, and TF Serving held both copies in memory.
    path, model, _, _ = exported
    parameter_bytes = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    data = [f for f in os.listdir(os.path.join(path, "variables")) if f.startswith("variables.data")]
    stored = sum(os.path.getsize(os.path.join(path, "variables", f)) for f in data)
    assert stored <= 1.1 * parameter_bytes, (stored, parameter_bytes)
