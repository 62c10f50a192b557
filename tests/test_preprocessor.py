import numpy as np
import pytest
import tensorflow as tf

from media import TINY
from media import image_bytes
from media import tone
from media import wav_bytes

import mmkeras
from mmkeras import Preprocessor


def _raw_batch():
    return {
        "text": ["Red apple!", "", "green   pear", "apple apple unknownword"],
        "image": [image_bytes("PNG", seed=1), image_bytes("JPEG", "L"), b"", image_bytes("BMP")],
        "audio": [wav_bytes(tone(8000), 8000), wav_bytes(tone(22050, channels=2), 22050, "PCM_24"), b"",
                  wav_bytes(tone(44100), 44100, "FLOAT")],
    }


@pytest.fixture
def preprocessor():
    pre = Preprocessor(TINY)
    pre.adapt(texts={"text": ["red apple", "green pear", "apple"]}, labels=["a", "b", "a"])
    return pre


def test_dataset_map_per_example_equals_the_batched_serving_path(preprocessor):
    raw = _raw_batch()
    batched = preprocessor.preprocess_batch({k: tf.constant(v) for k, v in raw.items()})
    per_example = tf.data.Dataset.from_tensor_slices(raw).map(preprocessor.preprocess_example).batch(4)
    mapped = next(iter(per_example))
    for key in batched:
        np.testing.assert_array_equal(batched[key].numpy(), mapped[key].numpy(), err_msg=key)


def test_empty_cells_mean_absent_and_neutral(preprocessor):
    out = preprocessor.preprocess_batch({k: tf.constant(v) for k, v in _raw_batch().items()})
    assert out["text_present"].numpy().ravel().tolist() == [1, 0, 1, 1]
    assert out["image_present"].numpy().ravel().tolist() == [1, 1, 0, 1]
    assert out["audio_present"].numpy().ravel().tolist() == [1, 1, 0, 1]
    assert not out["text"].numpy()[1].any() and not out["image"].numpy()[2].any() and not out["audio"].numpy()[2].any()


def test_text_standardises_and_maps_unknown_words_to_oov(preprocessor):
    ids = preprocessor.preprocess_batch({"text": tf.constant(["RED apple!", "apple zebra"])})["text"].numpy()
    vocab = preprocessor.vocabulary("text")
    assert [vocab[i] for i in ids[0][:2]] == ["red", "apple"]
    assert ids[1][1] == 1 and ids[1][2:].tolist() == [0, 0, 0]


def test_saved_state_gives_identical_outputs(preprocessor, tmp_path):
    preprocessor.save(tmp_path)
    loaded = Preprocessor.load(tmp_path)
    assert loaded.label_names == ["a", "b"] and loaded.vocabulary("text") == preprocessor.vocabulary("text")
    raw = {k: tf.constant(v) for k, v in _raw_batch().items()}
    a, b = preprocessor.preprocess_batch(raw), loaded.preprocess_batch(raw)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


@pytest.mark.parametrize(
    "modality, data, message",
    [
        ("image", b"GIF89a broken", "Input image"),
        ("image", b"definitely not an image", "Input image: not an image file"),
        ("audio", b"not audio at all", "Input audio: not a WAV file"),
        ("audio", b"fLaC" + b"\0" * 40, "Input audio: not WAV: expected WAV bytes"),
    ],
)
def test_serving_path_rejects_bad_bytes_naming_the_input(preprocessor, modality, data, message):
    raw = {k: tf.constant(v[:1]) for k, v in _raw_batch().items()}
    raw[modality] = tf.constant([data])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        preprocessor.preprocess_batch(raw)


def test_labels_encode_by_type():
    classes = Preprocessor({"text": {}}, label_names=["cat", "dog"])
    assert classes.encode_label("dog") == 1
    with pytest.raises(ValueError, match=r"unknown label 'cow', expected one of \['cat', 'dog'\]"):
        classes.encode_label("cow")
    tags = Preprocessor({"text": {}}, label_type="multilabel", label_names=["a", "b", "c"])
    assert tags.encode_label("a|c").tolist() == [1, 0, 1] and tags.encode_label(["b"]).tolist() == [0, 1, 0]
    values = Preprocessor({"text": {}}, label_type="regression")
    assert values.encode_label("2.5") == 2.5 and values.num_classes == 1
    with pytest.raises(ValueError, match="expected a number"):
        values.encode_label("tall")


def test_numeric_label_names_sort_naturally():
    pre = Preprocessor({"text": {}})
    pre.adapt(labels=[10, 2, 1, "2"])
    assert pre.label_names == ["1", "2", "10"]


def test_augmentation_changes_present_and_keeps_absent_zero(preprocessor):
    pre = Preprocessor({**TINY, "image": {**TINY["image"], "augment": {"flip": "horizontal", "noise": 0.1, "occlusion": 0.5}},
                        "audio": {**TINY["audio"], "augment": {"gain_db": 6, "noise_snr_db": 10, "shift": 0.1}}},
                       vocabularies={"text": preprocessor.vocabulary("text")})
    raw = {k: tf.constant(v) for k, v in _raw_batch().items()}
    features = pre.preprocess_batch(raw)
    augmented = pre.augment_batch(features, seed=3)
    assert not np.allclose(augmented["image"].numpy()[0], features["image"].numpy()[0])
    assert not np.allclose(augmented["audio"].numpy()[0], features["audio"].numpy()[0])
    assert not augmented["image"].numpy()[2].any() and not augmented["audio"].numpy()[2].any()
    np.testing.assert_array_equal(augmented["text"].numpy(), features["text"].numpy())


def test_the_image_shift_default_depends_on_the_other_modalities(tmp_path):
    """An image alone trains with the milder shift, an image beside other modalities with the
    stronger one; a config's own augment wins, and a saved Preprocessor keeps what was settled."""
    alone = Preprocessor({"image": dict(TINY["image"])})
    fused = Preprocessor({"image": dict(TINY["image"]), "text": {}})
    assert alone.specs["image"].augment == {"shift": 0.05}
    assert fused.specs["image"].augment == {"shift": 0.1}
    assert Preprocessor({"image": {**TINY["image"], "augment": {}}}).specs["image"].augment == {}
    assert Preprocessor({"image": {**TINY["image"], "augment": {"shift": 0.2}}, "text": {}}).specs["image"].augment == {"shift": 0.2}
    assert alone.get_config()["modalities"]["image"]["augment"] == {"shift": 0.05}
    alone.save(str(tmp_path))
    assert Preprocessor.load(str(tmp_path)).specs["image"].augment == {"shift": 0.05}
    saved_before = alone.get_config()  # a run saved before the shift was settled: its image alone had 0.1
    saved_before["modalities"]["image"]["augment"] = {"shift": 0.1}
    assert Preprocessor.from_config(saved_before).specs["image"].augment == {"shift": 0.1}
    spec = mmkeras.specs.make_spec("image", dict(TINY["image"]))
    Preprocessor({"image": spec})
    assert spec.augment is None  # the caller's spec object is not changed


def test_text_without_vocabulary_says_to_adapt():
    with pytest.raises(ValueError, match="no vocabulary yet: call adapt"):
        Preprocessor({"text": {}}).preprocess_batch({"text": tf.constant(["hello"])})


def test_the_served_input_table_names_the_trained_columns():
    """What inputs.json tells a client: every input of a one-column kind reads its mapped column."""
    pre = Preprocessor({"clip": {"kind": "video", "frames": 2, "height": 8, "width": 8}, "text": {},
                                "person": {"kind": "tabular", "numeric": ["age"], "categorical": ["city"]}},
                               columns={"clip": "video_path", "text": "caption"})
    table = {name: entry["column"] for name, entry in pre.served_input_table().items()}
    assert table == {"clip": "video_path", "clip_frames": "video_path", "text": "caption", "age": "age", "city": "city"}
    assert pre.column_mapping({"text": "words"})["text"] == "words"  # a caller's override comes last
