"""Pretrained encoders: keras.applications backbones and .keras files as a modality's branch."""

import os

import keras
import numpy as np
import pytest
import yaml
from media import tiny_config
from media import write_tiny_dataset

import mmkeras
from mmkeras import pretrained
from mmkeras.cli import main

RGB32 = {"height": 32, "width": 32, "channels": 3}
MOBILENET = {"source": "keras.applications:MobileNetV3Small", "weights": None}


def _inputs(model, n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {}
    for tensor in model.inputs:
        shape = (n,) + tuple(tensor.shape[1:])
        if tensor.name.endswith("_present"):
            x[tensor.name] = np.ones(shape, "float32")
        elif "int" in str(tensor.dtype):
            x[tensor.name] = rng.integers(1, 10, shape).astype("int32")
        else:
            x[tensor.name] = rng.uniform(0, 1, shape).astype("float32")
    return x


def _model(trainable):
    modalities = {"image": {**RGB32, "encoder": {**MOBILENET, "trainable": trainable}},
                  "text": {"max_tokens": 10, "sequence_length": 4, "embedding_dim": 4, "lstm_units": 4}}
    return mmkeras.build_model(modalities, num_classes=3, fusion="concat", fusion_options={"units": 8})


@pytest.mark.parametrize("trainable", [False, True])
def test_a_frozen_backbone_keeps_its_weights_and_a_trainable_one_learns(trainable):
    model = _model(trainable)
    backbone = model.get_layer("image_encoder").get_layer("image_backbone")
    before = [w.numpy().copy() for w in backbone.weights]
    head_before = model.get_layer("label_fused_logits").kernel.numpy().copy()
    x = _inputs(model)
    model.fit(x, {"label": np.arange(8) % 3}, epochs=2, batch_size=4, verbose=0)
    changed = [not np.array_equal(a, w.numpy()) for a, w in zip(before, backbone.weights)]
    assert any(changed) is trainable  # frozen: BatchNormalization statistics included
    assert not np.array_equal(head_before, model.get_layer("label_fused_logits").kernel.numpy())


def test_a_local_weights_file_is_loaded(tmp_path):
    keras.utils.set_random_seed(5)
    reference = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                                    pooling="avg")
    path = str(tmp_path / "mobilenet.weights.h5")
    reference.save_weights(path)
    spec = mmkeras.specs.make_spec("image", {**RGB32, "encoder": {**MOBILENET, "weights": path}})
    encoder = pretrained.build_pretrained_encoder(spec, "image")
    pixels = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(encoder(pixels).numpy(), reference(pixels * 255.0).numpy(), rtol=1e-4, atol=1e-5)


def test_offline_imagenet_weights_fail_with_the_source_and_the_way_out(monkeypatch):
    import keras.src.utils.file_utils as file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    spec = mmkeras.specs.make_spec("image", {**RGB32, "encoder": {"source": "keras.applications:MobileNetV3Small"}})
    with pytest.raises(RuntimeError, match=r"MobileNetV3Small.*modalities\.image\.encoder\.weights.*~/\.keras/models"):
        pretrained.build_pretrained_encoder(spec, "image")


@pytest.mark.parametrize("mode, module", [("caffe", "resnet50"), ("torch", "densenet"), ("tf", "mobilenet_v2")])
def test_pixel_scaling_matches_the_applications_own_preprocessing(mode, module):
    pixels = np.random.default_rng(1).uniform(0, 1, (2, 4, 4, 3)).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(pixels * 255.0)
    np.testing.assert_allclose(pretrained.PixelScaling(mode)(pixels).numpy(), expected, rtol=1e-5, atol=1e-4)
    assert pretrained._application_scaling({"caffe": "ResNet50", "torch": "DenseNet121",
                                            "tf": "MobileNetV2"}[mode]) == mode


@pytest.mark.parametrize("encoder, message", [
    ({"source": "keras.applications:MobileNetV3Small", "weigths": None}, r"Unknown config key\(s\) \['weigths'\]"),
    ({"source": "keras.applications:NoSuchNet", "weights": None}, "has no model 'NoSuchNet'"),
    ({"source": "encoder.onnx"}, "a path ending in .keras"),
    ({"source": "missing.keras"}, "no file"),
    ({"source": "keras.applications:MobileNetV3Small", "trainable": "yes"}, "expected true or false"),
])
def test_bad_encoder_settings_name_the_key(encoder, message):
    with pytest.raises(ValueError, match=message):
        mmkeras.build_model({"image": {**RGB32, "encoder": encoder}}, num_classes=2)


def test_keras_applications_take_images_only():
    with pytest.raises(ValueError, match="take images"):
        mmkeras.build_model({"audio": {"sample_rate": 8000, "duration": 0.25, "encoder": MOBILENET}}, num_classes=2)


@pytest.mark.slow
def test_a_keras_file_encoder_trains_exports_and_serves_raw_bytes(tmp_path):
    # A user's own image encoder, saved earlier, used through the config and the command line.
    folder = tmp_path / "data"
    manifest, rows = write_tiny_dataset(str(folder))
    pixels = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(6, 3, activation="relu", name="mine")(pixels)  # a feature map: pooled for us
    keras.Model(pixels, features).save(str(tmp_path / "my_encoder.keras"))
    config = tiny_config(manifest, epochs=1)
    config["modalities"]["image"]["encoder"] = {"source": "my_encoder.keras", "trainable": True}  # beside the config
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "config.yaml"), "--output", str(run)]) == 0
    saved = keras.saving.load_model(str(run / "model.keras"))
    assert saved.get_layer("image_encoder").get_layer("image_backbone").get_layer("mine")
    assert main(["export", "--run", str(run), "--output", str(tmp_path / "served")]) == 0
    assert main(["predict", "--model", str(run), "--data", manifest, "--output", str(tmp_path / "k.csv")]) == 0
    assert main(["predict", "--model", str(tmp_path / "served"), "--data", manifest,
                 "--output", str(tmp_path / "s.csv")]) == 0
    keras_rows, served_rows = (open(tmp_path / name).read().splitlines() for name in ("k.csv", "s.csv"))
    assert len(served_rows) == len(rows) + 1
    for a, b in zip(keras_rows[1:], served_rows[1:]):
        a, b = a.split(","), b.split(",")
        assert a[1] == b[1] and np.allclose(np.float32(a[2:]), np.float32(b[2:]), atol=1e-5)


def test_a_backbone_model_reloads_in_a_fresh_process(tmp_path):
    from helpers import predict_in_fresh_process

    model = _model(trainable=False)
    x = _inputs(model, n=3)
    path = tmp_path / "model.keras"
    model.save(str(path))
    (fresh,) = predict_in_fresh_process([path], x, str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_allclose(fresh["label"], model.predict(x, verbose=0)["label"], rtol=1e-5, atol=1e-6)
    assert os.path.getsize(path) > 1_000_000  # the backbone's weights are in the file
