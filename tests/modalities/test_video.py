import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.modalities.video import VideoModality
from mmkeras.modalities.video import VideoSpec

from media import gif_from
from media import write_frame_folder
from media import write_video


def grey_frames(count, size=(12, 10), step=40, offset=0):
    """`count` flat grey frames (`size` = width, height): frame i is level offset + step * i."""
    return [np.full(size[::-1], offset + step * i, "uint8") for i in range(count)]


def gif_bytes(count, size=(12, 10), step=40, offset=0):
    return gif_from(grey_frames(count, size, step, offset))


def moving_square(direction, rng, count=6, side=16):
    """Frames (RGB uint8) of a bright square moving right (0), left (1) or down (2) over noise."""
    frames = []
    for i in range(count):
        pixels = rng.integers(0, 60, (side, side)).astype("uint8")
        step = 2 * i
        top, left = [(6, step), (6, side - 4 - step), (step, 6)][direction]
        pixels[top : top + 4, left : left + 4] = 255
        frames.append(np.repeat(pixels[..., None], 3, axis=-1))
    return frames


def _decode(data, **settings):
    spec = VideoSpec(**{"frames": 4, "height": 5, "width": 6, "channels": 1, **settings})
    clip, present, reason = VideoModality("clip", spec).decode_one(tf.constant(data))
    return clip.numpy(), bool(present), reason.numpy().decode()


def test_frames_are_sampled_evenly_or_by_stride_and_short_clips_are_masked():
    clip, present, reason = _decode(gif_bytes(7))
    assert (present, reason) == (True, "") and clip.shape == (4, 5, 6, 2)
    levels = (clip[:, 0, 0, 0] * 255).round() / 40
    assert levels.round().tolist() == [0, 2, 4, 6]  # first, last and evenly between
    assert clip[..., 1].min() == 1.0  # every frame real
    strided, _, _ = _decode(gif_bytes(7), sampling="stride", stride=3)
    assert ((strided[:3, 0, 0, 0] * 255).round() / 40).round().tolist() == [0, 3, 6]
    assert strided[3].max() == 0.0  # the clip ran out: a blank, masked frame
    short, _, _ = _decode(gif_bytes(2))
    assert short[:, 0, 0, 1].tolist() == [1.0, 1.0, 0.0, 0.0] and short[2:].max() == 0.0
    rgb, _, _ = _decode(gif_bytes(3), channels=3)
    assert rgb.shape == (4, 5, 6, 4)


def test_an_empty_cell_is_absent_and_other_bytes_say_what_to_do():
    clip, present, reason = _decode(b"")
    assert (present, reason) == (False, "") and not clip.any()
    png = tf.io.encode_png(np.zeros((4, 4, 1), "uint8")).numpy()
    clip, present, reason = _decode(png)
    assert present and reason.startswith("not a video clip (expected an animated GIF, or a list of JPEG/PNG") \
        and not clip.any()


def test_a_gif_whose_header_claims_a_huge_screen_is_refused_before_decoding():
    """The image kind refuses a 65535 x 65535 GIF header; the video kind now says the same."""
    gif = bytearray(gif_from([np.zeros((4, 4), "uint8")] * 2))
    gif[6:10] = (65535).to_bytes(2, "little") * 2  # logical screen width and height
    clip, present, reason = _decode(bytes(gif))
    assert present and not clip.any()
    assert reason == "image is 65535 x 65535 pixels (at most 40,000,000 are decoded; resize it first)"


def test_the_encoder_ignores_padding_frames():
    keras.utils.set_random_seed(0)
    encoder = mmkeras.modalities.get_kind("video").build_encoder(
        VideoSpec(frames=4, height=8, width=8, channels=1, filters=(4,), units=3, dropout=0.0), "clip")
    rng = np.random.default_rng(0)
    clip = np.zeros((1, 4, 8, 8, 2), "float32")
    clip[0, :2, ..., 0] = rng.random((2, 8, 8))
    clip[0, :2, ..., 1] = 1.0
    changed = clip.copy()
    changed[0, 2:, ..., 0] = rng.random((2, 8, 8))  # different pixels where the mask says padding
    np.testing.assert_allclose(encoder(clip), encoder(changed), atol=1e-6)
    assert encoder.get_layer("clip_frames") and encoder.get_layer("clip_lstm")


def test_a_gif_a_frame_list_and_a_frame_folder_give_the_same_clip(tmp_path):
    frames = [np.random.default_rng(i).integers(0, 255, (10, 12, 3)).astype("uint8") for i in range(11)]
    pre = mmkeras.Preprocessor({"clip": {"kind": "video", "frames": 4, "height": 5, "width": 6}})
    pngs = [tf.io.encode_png(f).numpy() for f in frames]
    served = pre.preprocess_batch({"clip": [gif_from(frames), b"", b""],
                                   "clip_frames": [[b""] * 11, pngs, [b""] * 11]})["clip"].numpy()
    np.testing.assert_array_equal(served[0], served[1])  # 256 colours at most: the GIF is lossless here
    assert served[0][..., -1].min() == 1.0 and not served[2].any()
    folder = write_frame_folder(str(tmp_path / "frames"), frames)  # f0 ... f10: natural order
    converter = pre.converters["clip"]
    cached, problem = converter.check_value(folder, folder)
    assert problem is None
    from_folder, present, reason = converter.decode_one(tf.io.read_file(cached))
    np.testing.assert_array_equal(from_folder.numpy(), served[1])
    assert bool(present) and reason.numpy() == b""


def test_a_request_with_both_forms_or_a_bad_frame_names_the_input():
    pre = mmkeras.Preprocessor({"clip": {"kind": "video", "frames": 2, "height": 4, "width": 4}})
    png = tf.io.encode_png(np.zeros((4, 4, 3), "uint8")).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input clip: send a clip either as GIF bytes \(clip\) "
                                                             r"or as frames \(clip_frames\), not both \(example 1"):
        pre.preprocess_batch({"clip": [b"", gif_bytes(2)], "clip_frames": [[b""], [png]]})
    # the input that held the bad value is named, not the GIF input the client left empty
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input clip_frames: frame 1 of the list: not an image file"):
        pre.preprocess_batch({"clip": [b""], "clip_frames": [[png, b"junk bytes, not a frame"]]})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input clip: not a video clip .* \(example 1 of the batch"):
        pre.preprocess_batch({"clip": [b"", b"junk"], "clip_frames": [[b""], [b""]]})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input clip_frames: expected a 2-D batch of strings"):
        pre.preprocess_batch({"clip": [b""], "clip_frames": tf.constant([png])})


@pytest.mark.parametrize("container", ["mp4", "webm", "avi"])
def test_compressed_video_is_decoded_by_pyav_for_training(tmp_path, container):
    pytest.importorskip("av")
    frames = [np.repeat(f[..., None], 3, axis=-1) for f in grey_frames(7, size=(16, 16), step=30)]
    path = write_video(str(tmp_path / f"clip.{container}"), frames, container)
    for settings, levels in [({}, [0, 2, 4, 6]), ({"sampling": "stride", "stride": 3}, [0, 3, 6])]:
        spec = VideoSpec(frames=4, height=4, width=4, channels=1, **settings)
        converter = VideoModality("clip", spec)
        cached, problem = converter.check_value(path, path)
        assert problem is None and cached != path
        clip, present, reason = converter.decode_one(tf.io.read_file(cached))
        got = clip.numpy()[: len(levels), 0, 0, 0] * 255 / 30  # lossy codec: levels within a few steps
        np.testing.assert_allclose(got, levels, atol=0.15)
        assert clip.numpy()[:, 0, 0, 1].tolist() == [1.0] * len(levels) + [0.0] * (4 - len(levels))


def test_bad_or_unreadable_video_files_are_reported_with_their_row(tmp_path, monkeypatch):
    pytest.importorskip("av")
    frames = [np.zeros((8, 8, 3), "uint8")] * 3
    write_video(str(tmp_path / "good.mp4"), frames)
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "good.mp4").read_bytes()[:40])
    os.makedirs(tmp_path / "no_frames")
    rows = [{"clip": "good.mp4", "label": "a"}, {"clip": "cut.mp4", "label": "b"}, {"clip": "no_frames", "label": "a"},
            {"clip": "nowhere", "label": "b"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(__import__("json").dumps(r) for r in rows) + "\n")
    pre = mmkeras.Preprocessor({"clip": {"kind": "video", "frames": 2, "height": 4, "width": 4}})
    mmkeras.adapt_preprocessor(pre, str(manifest))
    ds = mmkeras.make_dataset(str(manifest), pre, batch_size=4, on_bad_record="skip")
    assert ds.num_examples == 1
    reasons = {row: reason for (row, _), (_, reason) in ds.bad_records.records.items()}
    assert reasons[2].startswith("video could not be decoded")  # JSONL rows count from 1
    assert reasons[3].startswith("folder has no frames (expected image files")
    assert reasons[4] == "file not found"
    monkeypatch.setitem(__import__("sys").modules, "av", None)  # as without the "video" extra
    pre = mmkeras.Preprocessor({"clip": {"kind": "video", "frames": 3, "height": 4, "width": 4}})  # not cached yet
    with pytest.raises(mmkeras.BadRecordError, match=r"row 1, column clip, file .*good.mp4: MP4/MOV file: reading "
                                                     r'MP4/WebM/AVI needs PyAV: pip install "mmkeras\[video\]"'):
        mmkeras.make_dataset(str(manifest), pre, batch_size=4, with_labels=False)


def _write_dataset(folder, count=45, seed=0):
    """Clips of a square moving right, left or down: GIFs, frame folders and MP4 files in turn.

    Returns the manifest, and a second one without the MP4 rows (what a served model takes).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(folder / "clips", exist_ok=True)
    rows, servable = ["text,clip,label"], ["text,clip,label"]
    for i in range(count):
        direction = i % 3
        frames = moving_square(direction, rng)
        form = ["gif", "folder", "mp4"][(i // 3) % 3]
        if form == "gif":
            name = f"clips/{i}.gif"
            (folder / name).write_bytes(gif_from(frames))
        elif form == "folder":
            name = write_frame_folder(str(folder / "clips" / str(i)), frames)[len(str(folder)) + 1:]
        else:
            name = write_video(str(folder / "clips" / f"{i}.mp4"), frames)[len(str(folder)) + 1:]
        row = f"{'a clip' if i % 4 else ''},{name if i != 4 else ''},{['right', 'left', 'down'][direction]}"
        rows.append(row)
        if form != "mp4":
            servable.append(row)
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    (folder / "servable.csv").write_text("\n".join(servable) + "\n")
    return str(folder / "manifest.csv"), str(folder / "servable.csv"), len(servable) - 1


@pytest.mark.slow
def test_clips_train_export_and_serve_raw_bytes_through_the_cli(tmp_path):
    """GIF, frame-folder and MP4 clips train through the CLI; the SavedModel answers GIF bytes and
    frame lists (also as a TF Serving REST request) as Keras does, `predict` with the SavedModel
    converts MP4 rows to frames as a client would, and TFRecords hold decoded MP4s."""
    import base64
    import json

    from test_end_to_end import assert_served_and_reloaded_equal_keras
    from test_end_to_end import train_evaluate_export

    from mmkeras_cli import main
    from mmkeras.export import load_saved_model

    pytest.importorskip("av")
    manifest, servable, count = _write_dataset(tmp_path)
    config = {
        "data": {"train": manifest, "validation_split": 0.2},
        "modalities": {"text": {"max_tokens": 10, "sequence_length": 2, "embedding_dim": 4, "lstm_units": 4},
                       "clip": {"kind": "video", "frames": 6, "height": 16, "width": 16, "channels": 1,
                                "filters": [8], "units": 8}},
        "fusion": {"type": "attention", "units": 8},
        "training": {"epochs": 15, "batch_size": 8, "learning_rate": 0.01, "tensorboard": False, "verbose": 0},
    }
    run, served, metrics = train_evaluate_export(tmp_path, manifest, config)
    assert metrics["ablation"]["all"]["accuracy"] >= 0.8  # the direction of motion is the label
    assert metrics["ablation"]["without_clip"]["accuracy"] < 0.5
    assert {"clip_half_frames_lost", "clip_noise_0.3"} <= set(metrics["robustness"])
    assert_served_and_reloaded_equal_keras(tmp_path, run, served, servable, count)
    # The training manifest itself, MP4 rows included: `predict` as a client converts them to frames.
    assert main(["predict", "--model", str(served), "--data", manifest, "--output", str(tmp_path / "all.csv")]) == 0
    assert main(["predict", "--model", str(run), "--data", manifest, "--output", str(tmp_path / "all_k.csv")]) == 0
    from test_pretrained import _assert_same_rows

    _assert_same_rows(tmp_path / "all_k.csv", tmp_path / "all.csv", 45)

    # TF Serving's REST API: a GIF row and a frame-folder row, binary strings as {"b64": ...}.
    lines = open(servable).read().splitlines()[1:]
    picked = [lines[0], lines[3]]  # clips/0.gif, clips/3 (a folder)
    instances = []
    for line in picked:
        text, clip, _ = line.split(",")
        gif = (tmp_path / clip).read_bytes() if clip.endswith(".gif") else b""
        frames = [(tmp_path / clip / f"f{k}.png").read_bytes() for k in range(6)] if not gif else [b""] * 6
        instances.append({"text": text, "clip": {"b64": base64.b64encode(gif).decode()},
                          "clip_frames": [{"b64": base64.b64encode(f).decode()} for f in frames]})
    body = json.loads(json.dumps({"signature_name": "serving_default", "instances": instances}))
    decode = lambda v: base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode()  # noqa: E731
    tensors = {key: tf.constant([[decode(f) for f in inst[key]] if isinstance(inst[key], list) else decode(inst[key])
                                 for inst in body["instances"]]) for key in instances[0]}
    restored, _ = load_saved_model(str(served))
    out = restored.signatures["serving_default"](**tensors)["probabilities"].numpy()
    keras_rows = [np.float32(row.split(",")[2:]) for row in open(tmp_path / "k.csv").read().splitlines()[1:]]
    np.testing.assert_allclose(out, [keras_rows[0], keras_rows[3]], atol=1e-5)

    # `mmkeras prepare` stores the MP4s' decoded frames: the TFRecords evaluate as the manifest does.
    assert main(["prepare", "--config", str(tmp_path / "config.yaml"), "--data", manifest,
                 "--output", str(tmp_path / "records"), "--shards", "2"]) == 0
    assert main(["evaluate", "--run", str(run), "--data", str(tmp_path / "records"),
                 "--output", str(tmp_path / "eval_records")]) == 0
    from_records = json.load(open(tmp_path / "eval_records" / "metrics.json"))
    assert from_records["ablation"]["all"] == metrics["ablation"]["all"]


def test_a_pretrained_image_encoder_runs_on_every_frame_and_unfreezes_for_fine_tuning():
    from mmkeras.training import _stages

    modalities = {"clip": {"kind": "video", "frames": 2, "height": 32, "width": 32, "channels": 3, "units": 4,
                           "encoder": {"source": "keras.applications:MobileNetV3Small", "weights": None,
                                       "trainable": True}}}
    model = mmkeras.build_model(modalities, num_classes=2, fusion="concat", fusion_options={"units": 4})
    frames = model.get_layer("clip_encoder").get_layer("clip_frames")
    assert isinstance(frames, keras.layers.TimeDistributed) and frames.layer.get_layer("clip_backbone")
    config = {"modalities": modalities, "training": {"epochs": 3, "frozen_epochs": 1, "learning_rate": 0.01}}
    frozen, fine_tune = _stages(config, model)
    assert frozen.frozen == fine_tune.unfrozen == [frames.layer.get_layer("clip_backbone")]
    x = {"clip": np.random.default_rng(0).random((4, 2, 32, 32, 4)).astype("float32"),
         "clip_present": np.ones((4, 1), "float32")}
    x["clip"][..., -1] = 1.0
    assert model.predict(x, verbose=0)["label"].shape == (4, 2)


def test_one_mp4_feeds_a_video_modality_and_its_soundtrack_an_audio_modality(tmp_path):
    pytest.importorskip("av")
    t = np.arange(16000) / 16000
    frames = [np.full((16, 16, 3), 40 * i, "uint8") for i in range(4)]
    write_video(str(tmp_path / "talk.mp4"), frames, sound=0.5 * np.sin(2 * np.pi * 440 * t))
    write_video(str(tmp_path / "silent.mp4"), frames)
    manifest = [{"clip": str(tmp_path / name), "sound": str(tmp_path / name), "label": label}
                for name, label in [("talk.mp4", "a"), ("silent.mp4", "b")]]
    pre = mmkeras.Preprocessor({"clip": {"kind": "video", "frames": 4, "height": 4, "width": 4},
                                "sound": {"kind": "audio", "sample_rate": 16000, "duration": 0.5}})
    pre.adapt(labels=["a", "b"])
    ds = mmkeras.make_dataset(manifest, pre, batch_size=2, on_bad_record="skip")
    assert ds.num_examples == 1
    (row, column), (_, reason) = next(iter(ds.bad_records.records.items()))
    assert (row, column, reason) == (2, "sound", "the video file has no audio track")
    x, _ = next(iter(ds))
    wave = x["sound"].numpy()[0]
    assert x["clip_present"].numpy()[0, 0] == x["sound_present"].numpy()[0, 0] == 1.0
    peak = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave)
    assert abs(peak - 440) < 5 and x["clip"].numpy()[0, :, 0, 0, :3].mean(axis=-1).round(2).tolist() == \
        pytest.approx([0.0, 40 / 255, 80 / 255, 120 / 255], abs=0.03)


def test_a_gif_with_a_junk_body_is_blamed_on_the_clip_not_the_image_beside_it(tmp_path):
    from media import image_bytes

    from mmkeras.data import BadRecordError
    from mmkeras.data.dataset import decode_errors_located

    good = gif_bytes(3)
    (tmp_path / "good.gif").write_bytes(good)
    (tmp_path / "junk.gif").write_bytes(good[:13] + b"\x00junk, not GIF blocks" * 8)  # signature and screen, then junk
    (tmp_path / "photo.png").write_bytes(image_bytes("PNG", size=(8, 8)))
    photo, clips = str(tmp_path / "photo.png"), {n: str(tmp_path / f"{n}.gif") for n in ("good", "junk")}
    rows = [{"photo": photo, "clip": clips["good"], "label": "a"}, {"photo": photo, "clip": clips["junk"],
                                                                         "label": "b"}] * 2
    pre = mmkeras.Preprocessor({"photo": {"kind": "image", "height": 8, "width": 8},
                                "clip": {"kind": "video", "frames": 2, "height": 8, "width": 8}})
    mmkeras.adapt_preprocessor(pre, rows)
    dataset = mmkeras.make_dataset(rows, pre, batch_size=2, on_bad_record="skip")
    assert dataset.bad_records.rows == [2, 4]
    (path, reason), = {dataset.bad_records.records[(2, "clip")]}
    assert path.endswith("junk.gif") and reason == "video file could not be decoded (corrupt or truncated file)"
    assert set(dataset.bad_records.records) == {(2, "clip"), (4, "clip")}  # the photo beside it is not named
    dataset = mmkeras.make_dataset(rows, pre, batch_size=2)
    with pytest.raises(BadRecordError, match=r"row 2, column clip, file .*junk.gif: video file could not be decoded"):
        with decode_errors_located(dataset):
            for _ in dataset:
                pass
