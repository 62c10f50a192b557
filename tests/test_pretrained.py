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
from mmkeras_cli import main

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


def _assert_served_equals_keras(run, served, manifest, count, tmp_path):
    """`mmkeras predict` from the run and from its SavedModel give the same labels and probabilities."""
    assert main(["predict", "--model", str(run), "--data", manifest, "--output", str(tmp_path / "k.csv")]) == 0
    assert main(["predict", "--model", str(served), "--data", manifest, "--output", str(tmp_path / "s.csv")]) == 0
    _assert_same_rows(tmp_path / "k.csv", tmp_path / "s.csv", count)


def _assert_same_rows(keras_csv, served_csv, count):
    keras_rows, served_rows = (open(path).read().splitlines() for path in (keras_csv, served_csv))
    assert len(keras_rows) == len(served_rows) == count + 1
    for a, b in zip(keras_rows[1:], served_rows[1:]):
        a, b = a.split(","), b.split(",")
        assert a[1] == b[1] and np.allclose(np.float32(a[2:]), np.float32(b[2:]), atol=1e-5)


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
    ({"source": "keras.applications:MobileNetV3Small", "weigths": None},
     r"Unknown config key 'modalities.image.encoder.weigths' for a pretrained encoder"),
    ({"source": "keras.applications:NoSuchNet", "weights": None}, "has no model 'NoSuchNet'"),
    ({"source": "encoder.onnx"}, "a path ending in .keras"),
    ({"source": "missing.keras"}, "no file"),
    ({"source": "keras.applications:MobileNetV3Small", "trainable": "yes"}, "expected true or false"),
])
def test_bad_encoder_settings_name_the_key(encoder, message):
    with pytest.raises(ValueError, match=message):
        mmkeras.build_model({"image": {**RGB32, "encoder": encoder}}, num_classes=2)


def test_keras_applications_take_images_only():
    with pytest.raises(ValueError, match="keras.applications: encoders take image, video modalities only; 'audio' is of kind audio"):
        mmkeras.build_model({"audio": {"sample_rate": 8000, "duration": 0.25, "encoder": MOBILENET}}, num_classes=2)


def test_a_backbone_model_reloads_in_a_fresh_process(tmp_path):
    from helpers import predict_in_fresh_process

    model = _model(trainable=False)
    x = _inputs(model, n=3)
    path = tmp_path / "model.keras"
    model.save(str(path))
    (fresh,) = predict_in_fresh_process([path], x, str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_allclose(fresh["label"], model.predict(x, verbose=0)["label"], rtol=1e-5, atol=1e-6)
    assert os.path.getsize(path) > 1_000_000  # the backbone's weights are in the file


# SavedModel folders and TF Hub handles ---------------------------------------------------------


def _audio_saved_model(folder, samples=4000, seed=3):
    """A small waveform encoder exported as a SavedModel (what a TF Hub audio model is on disk)."""
    keras.utils.set_random_seed(seed)
    waveform = keras.Input((samples,))
    x = keras.layers.Reshape((samples, 1))(waveform)
    x = keras.layers.Conv1D(8, 32, strides=16, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    encoder = keras.Model(waveform, keras.layers.Dense(12, activation="relu")(x))
    encoder.export(str(folder), verbose=False)
    return encoder


class _TwoOutputs(__import__("tensorflow").Module):
    """A Hub-style module whose signature returns named outputs."""

    def __init__(self):
        import tensorflow as tf

        super().__init__()
        self.kernel = tf.Variable(np.arange(6, dtype="float32").reshape(3, 2), name="dense/kernel")

    @__import__("tensorflow").function(input_signature=[__import__("tensorflow").TensorSpec([None, 3], "float32")])
    def embed(self, features):
        import tensorflow as tf

        return {"embedding": tf.matmul(features, self.kernel), "norm": tf.norm(features, axis=-1)}


def test_a_signature_output_is_chosen_by_key_and_a_wrong_key_lists_the_outputs(tmp_path):
    import tensorflow as tf

    module = _TwoOutputs()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.embed})
    layer = mmkeras.layers.SavedModelEncoder(str(tmp_path / "sm"), output_key="embedding", example_shape=(3,))
    np.testing.assert_allclose(layer(np.ones((1, 3), "float32")).numpy(), [[6.0, 9.0]])
    assert [w.path for w in layer.weights] == [f"{layer.name}/v0"]  # no ':0', so optimizers can name slots
    with pytest.raises(ValueError, match=r"no output 'logits'.*\['embedding', 'norm'\]"):
        mmkeras.layers.SavedModelEncoder(str(tmp_path / "sm"), output_key="logits", example_shape=(3,))
    with pytest.raises(ValueError, match=r"returns \['embedding', 'norm'\]; choose one with output_key"):
        mmkeras.layers.SavedModelEncoder(str(tmp_path / "sm"), example_shape=(3,))
    with pytest.raises(ValueError, match=r"no endpoint 'encode'.*serving_default"):
        mmkeras.layers.SavedModelEncoder(str(tmp_path / "sm"), endpoint="encode", example_shape=(3,))


def test_a_model_with_a_saved_model_encoder_clones_and_converts(tmp_path):
    """Rebuilt from its config (clone_model, which the TFLite export uses), the layer loads its
    SavedModel again instead of failing with 'no SavedModel loaded'."""
    import tensorflow as tf

    module = _TwoOutputs()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.embed})
    inputs = keras.Input((3,), name="features")
    encoded = mmkeras.layers.SavedModelEncoder(str(tmp_path / "sm"), output_key="embedding", example_shape=(3,))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(encoded))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    rebuilt = keras.models.model_from_json(model.to_json())
    assert tuple(rebuilt.output.shape) == (None, 2)


@pytest.mark.parametrize("optimizer", ["adamw", "rmsprop"])
def test_a_trainable_saved_model_fine_tunes_with_adaptive_optimizers(tmp_path, optimizer):
    # keras.layers.TFSMLayer names its variables 'dense_kernel:0' and these optimizers then fail to
    # create their slots ("not a valid scope name"); SGD was the only way to fine-tune one.
    _audio_saved_model(tmp_path / "sm")
    spec = mmkeras.specs.make_spec("audio", {"sample_rate": 8000, "duration": 0.5,
                                             "encoder": {"source": str(tmp_path / "sm"), "trainable": True}})
    encoder = pretrained.build_pretrained_encoder(spec, "audio")
    model = keras.Sequential([encoder, keras.layers.Dense(2)])
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    backbone = encoder.get_layer("audio_backbone")
    before = [w.numpy().copy() for w in backbone.weights]
    waves = np.random.default_rng(0).normal(size=(8, 4000)).astype("float32")
    model.fit(waves, np.arange(8) % 2, epochs=2, batch_size=4, verbose=0)
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(before, backbone.weights))


def test_pixel_scaling_is_refused_for_a_kind_whose_input_is_not_pixels(tmp_path):
    _audio_saved_model(tmp_path / "sm")
    spec = mmkeras.specs.make_spec("audio", {"sample_rate": 8000, "duration": 0.5,
                                             "encoder": {"source": str(tmp_path / "sm"), "scaling": "tf"}})
    with pytest.raises(ValueError, match=r"'modalities.audio.encoder.scaling' applies to image, video modalities only"):
        pretrained.build_pretrained_encoder(spec, "audio")


def test_offline_hub_handle_fails_with_the_handle_and_the_way_out(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_hub")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    spec = mmkeras.specs.make_spec("audio", {"sample_rate": 8000, "duration": 0.5,
                                             "encoder": {"source": "hub:https://tfhub.invalid/google/yamnet/1"}})
    with pytest.raises(RuntimeError, match=r"tfhub\.invalid/google/yamnet/1.*modalities\.audio\.encoder\.source"
                                           r".*TFHUB_CACHE_DIR"):
        pretrained.build_pretrained_encoder(spec, "audio")


def test_a_relative_saved_model_folder_resolves_beside_the_config(tmp_path):
    from mmkeras.config import resolve_config

    (tmp_path / "encoders" / "sound").mkdir(parents=True)
    config = {"data": {"train": "m.csv"}, "modalities": {"audio": {"encoder": {"source": "encoders/sound"}},
                                                         "image": {"encoder": MOBILENET}}}
    resolved = resolve_config(config, base_dir=str(tmp_path))
    assert resolved["modalities"]["audio"]["encoder"]["source"] == str(tmp_path / "encoders" / "sound")
    assert resolved["modalities"]["image"]["encoder"]["source"] == MOBILENET["source"]


@pytest.mark.slow
def test_hub_saved_model_and_keras_file_encoders_train_reload_without_their_sources_and_serve_raw_bytes(tmp_path):
    """A TF Hub-style SavedModel folder (audio) and a user's own `.keras` image encoder (named
    relative to the config) in one run, through the command line."""
    pytest.importorskip("tensorflow_hub")
    import shutil

    from helpers import predict_in_fresh_process

    folder = tmp_path / "data"
    manifest, rows = write_tiny_dataset(str(folder))
    reference = _audio_saved_model(tmp_path / "yamnet_like")
    pixels = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(6, 3, activation="relu", name="mine")(pixels)  # a feature map: pooled for us
    keras.Model(pixels, features).save(str(tmp_path / "my_encoder.keras"))
    config = tiny_config(manifest, epochs=1)  # the default optimizer, AdamW
    config["modalities"]["audio"]["encoder"] = {"source": f"hub:{tmp_path / 'yamnet_like'}", "trainable": True}
    config["modalities"]["image"]["encoder"] = {"source": "my_encoder.keras", "trainable": True}  # beside the config
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "config.yaml"), "--output", str(run)]) == 0
    shutil.rmtree(tmp_path / "yamnet_like")  # the run must not need the sources any more
    os.remove(tmp_path / "my_encoder.keras")

    from mmkeras.training import load_run

    model, _, _ = load_run(str(run))
    assert model.get_layer("image_encoder").get_layer("image_backbone").get_layer("mine")
    backbone = model.get_layer("audio_encoder").get_layer("audio_backbone")
    fine_tuned = [w.numpy() for w in backbone.weights]
    assert len(fine_tuned) == len(reference.weights)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(fine_tuned, reference.weights))
    x = _inputs(model, n=3)
    (fresh,) = predict_in_fresh_process([run / "model.keras"], x, str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_allclose(fresh["label"], model.predict(x, verbose=0)["label"], rtol=1e-5, atol=1e-6)

    assert main(["export", "--run", str(run), "--output", str(tmp_path / "served")]) == 0
    _assert_served_equals_keras(run, tmp_path / "served", manifest, len(rows), tmp_path)
    variables = tmp_path / "served" / "1" / "variables"
    stored = sum(os.path.getsize(variables / f) for f in os.listdir(variables) if f.startswith("variables.data"))
    parameters = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    assert stored <= 1.1 * parameters, (stored, parameters)


@pytest.mark.slow
def test_two_stage_fine_tuning_trains_the_head_on_a_frozen_encoder_first_then_unfreezes_it(tmp_path):
    import csv

    from mmkeras.training import train

    manifest, _ = write_tiny_dataset(str(tmp_path / "data"))
    pixels = keras.Input((8, 8, 1))
    keras.Model(pixels, keras.layers.Conv2D(6, 3, activation="relu", name="mine")(pixels)).save(
        str(tmp_path / "mine.keras"))
    config = tiny_config(manifest, epochs=3, frozen_epochs=1, learning_rate=0.01, early_stopping_patience=0)
    config["modalities"]["image"]["encoder"] = {"source": str(tmp_path / "mine.keras"), "trainable": True}
    seen = []

    class Watch(keras.callbacks.Callback):
        def __init__(self, kill_after=None):
            super().__init__()
            self.kill_after = kill_after

        def on_epoch_end(self, epoch, logs=None):
            backbone = self.model.get_layer("image_encoder").get_layer("image_backbone")
            seen.append((epoch, backbone.get_layer("mine").kernel.numpy().copy(),
                         float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))
            if epoch == self.kill_after:
                raise KeyboardInterrupt("simulated kill in the fine-tuning stage")

    initial = keras.saving.load_model(str(tmp_path / "mine.keras")).get_layer("mine").kernel.numpy()
    with pytest.raises(KeyboardInterrupt):
        train(config, str(tmp_path / "run"), callbacks=[Watch(kill_after=1)])
    model, _, history = train(config, str(tmp_path / "run"), callbacks=[Watch()])  # resumes where it was
    assert [epoch for epoch, _, _ in seen] == [0, 1, 2] and len(history["loss"]) == 3
    with open(tmp_path / "run" / "training.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]
    np.testing.assert_array_equal(seen[0][1], initial)  # the frozen epoch left the encoder alone
    assert not np.array_equal(seen[1][1], initial) and not np.array_equal(seen[2][1], seen[1][1])
    assert seen[0][2] == pytest.approx(0.01)
    assert seen[1][2] == pytest.approx(0.001) and seen[2][2] == pytest.approx(0.001)  # learning_rate / 10
    assert model.get_layer("image_encoder").get_layer("image_backbone").trainable


@pytest.mark.parametrize("training, message", [
    ({"frozen_epochs": 2, "epochs": 2}, "expected fewer than training.epochs"),
    ({"frozen_epochs": 1, "epochs": 3, "fine_tune_learning_rate": 0}, "a number > 0 or null"),
])
def test_two_stage_settings_are_checked_before_training(training, message):
    from mmkeras.config import resolve_config

    config = {"data": {"train": "m.csv"},
              "modalities": {"image": {**RGB32, "encoder": {**MOBILENET, "trainable": True}}}, "training": training}
    with pytest.raises(ValueError, match=message):
        resolve_config(config)


# keras-hub presets -------------------------------------------------------------------------------

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zero", "one", "two", "three", "item", "the"]


def _tiny_bert_preset(folder, seed=4):
    """A BERT backbone and its WordPiece tokenizer saved as a keras-hub preset folder."""
    keras_hub = pytest.importorskip("keras_hub")
    pytest.importorskip("tensorflow_text")
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(VOCABULARY), num_layers=1, num_heads=2,
                                             hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    backbone.save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True).save_to_preset(str(folder))
    return backbone


def test_a_keras_hub_preset_tokenizes_with_its_own_vocabulary_and_masks_padding(tmp_path):
    backbone = _tiny_bert_preset(tmp_path / "bert")
    modalities = {"text": {"sequence_length": 6, "encoder": {"source": f"keras_hub:{tmp_path / 'bert'}"}}}
    pre = mmkeras.Preprocessor(modalities)
    features = pre.preprocess_batch({"text": __import__("tensorflow").constant(["Two item", ""])})
    assert features["text"].numpy().tolist() == [[2, 7, 9, 3, 0, 0], [0] * 6]  # [CLS] two item [SEP], padding
    encoder = pretrained.build_pretrained_encoder(pre.specs["text"], "text")
    ids = features["text"].numpy()[:1]
    sequence = backbone({"token_ids": ids[:, :4], "segment_ids": np.zeros((1, 4), "int32"),
                         "padding_mask": np.ones((1, 4), bool)})["sequence_output"].numpy()
    # The mean over the four real tokens: padding changes nothing.
    np.testing.assert_allclose(encoder(ids).numpy(), sequence.mean(axis=1), rtol=1e-5, atol=1e-6)
    absent = pre.preprocess_batch({"text": __import__("tensorflow").constant([""])})["text"].numpy()
    assert np.isfinite(encoder(absent).numpy()).all()  # an absent text is all padding: still no NaN
    with pytest.raises(ValueError, match="longer than the preset's 16 positions"):
        pretrained.build_pretrained_encoder(
            mmkeras.specs.make_spec("text", {"sequence_length": 32, "encoder": modalities["text"]["encoder"]}), "text")


def test_offline_keras_hub_preset_fails_with_the_preset_and_the_way_out(monkeypatch):
    keras_hub = pytest.importorskip("keras_hub")

    def offline(*args, **kwargs):
        raise OSError("HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries exceeded "
                      "(Caused by NameResolutionError: Failed to resolve 'api.kaggle.com')")

    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
    spec = mmkeras.specs.make_spec("text", {"encoder": {"source": "keras_hub:bert_tiny_en_uncased"}})
    with pytest.raises(RuntimeError, match=r"'bert_tiny_en_uncased'.*save_to_preset.*modalities\.text\.encoder\."
                                           r"source to 'keras_hub:FOLDER'"):
        pretrained.build_pretrained_encoder(spec, "text")


def test_a_frozen_keras_hub_encoder_is_still_frozen_when_a_run_is_reloaded(tmp_path):
    # Keras restores trainable: false layer by layer, but the transformer blocks' sub-layers are
    # created in build() and came back trainable: the next fit would have fine-tuned them.
    from mmkeras.training import load_model_file

    _tiny_bert_preset(tmp_path / "bert")
    model = mmkeras.build_model({"text": {"sequence_length": 6, "encoder": {"source": f"keras_hub:{tmp_path / 'bert'}"}}},
                                num_classes=2)
    model.save(str(tmp_path / "model.keras"))
    reloaded = load_model_file(str(tmp_path / "model.keras"))
    assert sorted(w.path for w in reloaded.trainable_weights) == sorted(w.path for w in model.trainable_weights)
    assert reloaded.compiled


def test_the_encoder_builders_take_the_encoder_option_too(tmp_path):
    encoder = mmkeras.build_image_encoder(**RGB32, encoder=MOBILENET, name="photo")
    assert encoder.name == "photo_encoder" and encoder.get_layer("photo_backbone").trainable is False
    _audio_saved_model(tmp_path / "sm")
    audio = mmkeras.build_audio_encoder(sample_rate=8000, duration=0.5, encoder={"source": str(tmp_path / "sm")})
    assert tuple(audio.output.shape) == (None, 12)


# keras-hub vision presets ----------------------------------------------------------------------

IMAGENET_SCALE = [1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)]
IMAGENET_OFFSET = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]


def _tiny_resnet_preset(folder, converter=True, image_size=(12, 12), seed=5):
    """A small keras-hub ResNet backbone saved as a preset folder, with its image converter."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block")
    backbone.save_to_preset(str(folder))
    if converter:
        keras_hub.layers.ResNetImageConverter(image_size=image_size, scale=IMAGENET_SCALE,
                                              offset=IMAGENET_OFFSET).save_to_preset(str(folder))
    return backbone


def test_a_keras_hub_image_preset_applies_its_converter_inside_the_encoder(tmp_path):
    import tensorflow as tf

    backbone = _tiny_resnet_preset(tmp_path / "resnet")
    spec = mmkeras.specs.make_spec("image", {"height": 16, "width": 16, "channels": 3,
                                             "encoder": {"source": f"keras_hub:{tmp_path / 'resnet'}"}})
    encoder = pretrained.build_pretrained_encoder(spec, "image")
    assert encoder.get_layer("image_backbone").trainable is False
    pixels = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    # What the preset's own converter does to 0-255 pixels: resize to 12 x 12, then scale and offset.
    resized = tf.image.resize(pixels * 255.0, (12, 12)).numpy()
    expected = backbone(resized * np.float32(IMAGENET_SCALE) + np.float32(IMAGENET_OFFSET)).numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(encoder(pixels).numpy(), expected, rtol=1e-4, atol=1e-5)
    grey = mmkeras.specs.make_spec("image", {"height": 16, "width": 16, "channels": 1, "encoder": spec.encoder})
    with pytest.raises(ValueError, match="takes 3-channel images. Set modalities.image.channels: 3"):
        pretrained.build_pretrained_encoder(grey, "image")


def test_a_keras_hub_image_preset_without_a_converter_needs_a_scaling(tmp_path):
    _tiny_resnet_preset(tmp_path / "bare", converter=False)
    options = {"height": 16, "width": 16, "channels": 3, "encoder": {"source": f"keras_hub:{tmp_path / 'bare'}"}}
    with pytest.raises(ValueError, match=r"no image converter \(image_converter.json\).*modalities.image.encoder.scaling"):
        pretrained.build_pretrained_encoder(mmkeras.specs.make_spec("image", options), "image")
    options["encoder"]["scaling"] = "torch"
    encoder = pretrained.build_pretrained_encoder(mmkeras.specs.make_spec("image", options), "image")
    assert encoder.get_layer("image_scaling").mode == "torch" and tuple(encoder.output.shape) == (None, 16)


def _tiny_whisper_preset(folder, seed=6):
    """A small keras-hub Whisper backbone and its audio converter (8 kHz, 1 s) saved as a preset folder."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.WhisperBackbone(vocabulary_size=20, num_layers=1, num_heads=2, hidden_dim=8,
                                                intermediate_dim=16, num_mels=16, max_encoder_sequence_length=100,
                                                max_decoder_sequence_length=8)
    converter = keras_hub.layers.WhisperAudioConverter(num_mels=16, sampling_rate=8000, stride=80, num_fft_bins=200,
                                                       max_audio_length=1)
    backbone.save_to_preset(str(folder))
    converter.save_to_preset(str(folder))
    return backbone, converter


def test_a_keras_hub_audio_preset_is_its_converter_and_the_backbones_encoder(tmp_path):
    backbone, converter = _tiny_whisper_preset(tmp_path / "whisper")
    options = {"sample_rate": 8000, "duration": 0.5, "encoder": {"source": f"keras_hub:{tmp_path / 'whisper'}"}}
    encoder = pretrained.build_pretrained_encoder(mmkeras.specs.make_spec("audio", options), "audio")
    assert encoder.get_layer("audio_backbone").trainable is False
    clips = np.random.default_rng(1).normal(0, 0.1, (2, 4000)).astype("float32")
    features = np.asarray(converter(clips))  # padded to the converter's 1 s: (2, 100, 16) log-mel frames
    sequence = backbone({"encoder_features": features, "decoder_token_ids": np.zeros((2, 1), "int32"),
                         "decoder_padding_mask": np.ones((2, 1), bool)})["encoder_sequence_output"]
    np.testing.assert_allclose(encoder(clips).numpy(), sequence.numpy().mean(axis=1), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="takes audio at 8000 Hz. Set modalities.audio.sample_rate: 8000"):
        pretrained.build_pretrained_encoder(mmkeras.specs.make_spec("audio", dict(options, sample_rate=16000)), "audio")
    scaled = dict(options, encoder=dict(options["encoder"], scaling="tf"))
    with pytest.raises(ValueError, match=r"'modalities.audio.encoder.scaling' does not apply to keras_hub: audio"):
        pretrained.build_pretrained_encoder(mmkeras.specs.make_spec("audio", scaled), "audio")
    os.remove(tmp_path / "whisper" / "audio_converter.json")
    with pytest.raises(ValueError, match=r"no audio converter \(audio_converter.json\)"):
        pretrained.build_pretrained_encoder(mmkeras.specs.make_spec("audio", options), "audio")


@pytest.mark.slow
def test_keras_hub_text_image_and_audio_presets_train_reload_offline_and_serve_raw_inputs(tmp_path):
    """BERT, ResNet and Whisper preset folders (beside the config) in one run through the command
    line: once trained, neither the run, its reload in a fresh process, the export nor the served
    SavedModel needs them, and serving needs TF Text's ops but not keras-hub."""
    import shutil
    import subprocess
    import sys

    from helpers import predict_in_fresh_process

    folder = tmp_path / "data"
    manifest, rows = write_tiny_dataset(str(folder))
    _tiny_bert_preset(tmp_path / "bert_preset")
    _tiny_resnet_preset(tmp_path / "resnet_preset")
    _tiny_whisper_preset(tmp_path / "whisper_preset")
    config = tiny_config(manifest, epochs=1)
    config["modalities"]["text"] = {"sequence_length": 6, "encoder": {"source": "keras_hub:bert_preset",
                                                                      "trainable": True}}
    config["modalities"]["image"] = {"height": 8, "width": 8, "channels": 3,  # grey files, converted to RGB
                                     "encoder": {"source": "keras_hub:resnet_preset", "trainable": True}}
    config["modalities"]["audio"] = {"sample_rate": 8000, "duration": 0.5,
                                     "encoder": {"source": "keras_hub:whisper_preset", "trainable": True}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "config.yaml"), "--output", str(run)]) == 0
    for preset in ("bert_preset", "resnet_preset", "whisper_preset"):
        shutil.rmtree(tmp_path / preset)  # neither the run nor the export may need them again
    model = keras.saving.load_model(str(run / "model.keras"))
    x = _inputs(model, n=3)
    (fresh,) = predict_in_fresh_process([run / "model.keras"], x, str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_allclose(fresh["label"], model.predict(x, verbose=0)["label"], rtol=1e-5, atol=1e-6)
    assert main(["export", "--run", str(run), "--output", str(tmp_path / "served")]) == 0
    assert main(["predict", "--model", str(run), "--data", manifest, "--output", str(tmp_path / "k.csv")]) == 0
    script = (
        "import sys\n"
        "from mmkeras.predict import predict\n"
        "predict(sys.argv[1], sys.argv[2], sys.argv[3])\n"
        "print('keras_hub' in sys.modules)\n"
    )
    served = subprocess.run([sys.executable, "-c", script, str(tmp_path / "served"), manifest, str(tmp_path / "s.csv")],
                            capture_output=True, text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert served.returncode == 0, served.stderr[-3000:]
    assert served.stdout.split()[-1] == "False", "the SavedModel needs TF Text's ops, not keras-hub"
    _assert_same_rows(tmp_path / "k.csv", tmp_path / "s.csv", len(rows))
