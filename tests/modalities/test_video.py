import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import mmkeras
from mmkeras.modalities.video import VideoModality
from mmkeras.modalities.video import VideoSpec


def gif_bytes(count, size=(12, 10), step=40, offset=0):
    """An animated GIF whose frame i is grey level offset + step * i (mode L, `count` frames)."""
    frames = [Image.fromarray(np.full(size[::-1], offset + step * i, "uint8"), "L") for i in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buffer.getvalue()


def moving_square(direction, rng, count=6, side=16):
    """Frames of a bright square moving right (0), left (1) or down (2) over noise, as GIF bytes."""
    frames = []
    for i in range(count):
        pixels = rng.integers(0, 60, (side, side)).astype("uint8")
        step = 2 * i
        top, left = [(6, step), (6, side - 4 - step), (step, 6)][direction]
        pixels[top : top + 4, left : left + 4] = 255
        frames.append(Image.fromarray(pixels, "L"))
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buffer.getvalue()


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
    assert present and reason.startswith("not an animated GIF (convert other video to GIF") and not clip.any()


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


def _write_dataset(folder, count=45, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder / "clips", exist_ok=True)
    rows = ["text,clip,label"]
    for i in range(count):
        direction = i % 3
        (folder / "clips" / f"{i}.gif").write_bytes(moving_square(direction, rng))
        rows.append(f"{'a clip' if i % 4 else ''},{'clips/%d.gif' % i if i != 4 else ''},{['right', 'left', 'down'][direction]}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return str(folder / "manifest.csv"), count


@pytest.mark.slow
def test_gif_clips_train_export_and_serve_raw_bytes_through_the_cli(tmp_path):
    from test_end_to_end import assert_served_and_reloaded_equal_keras
    from test_end_to_end import train_evaluate_export

    manifest, count = _write_dataset(tmp_path)
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
    assert_served_and_reloaded_equal_keras(tmp_path, run, served, manifest, count)
