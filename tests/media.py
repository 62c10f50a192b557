"""Small media files the tests write themselves: images, WAVs of every width, manifests."""

import csv
import io
import os
import wave

import numpy as np
import soundfile as sf
from PIL import Image

TINY = {
    "text": {"max_tokens": 20, "sequence_length": 5},
    "image": {"height": 8, "width": 8, "channels": 1, "filters": [4]},
    "audio": {"sample_rate": 8000, "duration": 0.5, "num_mel_bins": 16, "conv_filters": [8], "lstm_units": 4},
}


def image_bytes(fmt, mode="RGB", size=(10, 12), seed=0):
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    array = (rng.random((size[1], size[0], channels)) * 255).astype("uint8")
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def tone(rate, seconds=0.25, channels=1, hz=440.0):
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.5 * np.sin(2 * np.pi * hz * t)
    return np.stack([mono * (1 - 0.5 * c) for c in range(channels)], axis=1).astype("float32")


def wav_bytes(samples, rate, subtype="PCM_16", fmt="WAV"):
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def stdlib_wav_bytes(samples_int16, rate, channels):
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples_int16.astype("<i2").tobytes())
    return buffer.getvalue()


def write_manifest(folder, rows, name="manifest.csv"):
    path = os.path.join(folder, name)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["text", "image", "audio", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_tiny_dataset(folder, count=24, classes=3, seed=0):
    """`count` examples (PNG, 8 kHz WAV, text) whose label shows in every modality; CSV manifest.

    Returns (manifest path, rows).
    """
    import os

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "files"), exist_ok=True)
    words = ["zero", "one", "two", "three"]
    rows = []
    for i in range(count):
        label = i % classes
        pixels = np.zeros((8, 8), "uint8")
        pixels[:, label * 2 : label * 2 + 2] = 255
        pixels = np.clip(pixels + rng.integers(0, 40, (8, 8)), 0, 255).astype("uint8")
        Image.fromarray(pixels, "L").save(os.path.join(folder, "files", f"{i}.png"))
        clip = tone(8000, seconds=0.5, hz=300.0 + 500 * label) + 0.01 * rng.normal(size=(4000, 1)).astype("float32")
        sf.write(os.path.join(folder, "files", f"{i}.wav"), clip, 8000, subtype="PCM_16")
        rows.append({"text": f"{words[label]} item", "image": f"files/{i}.png", "audio": f"files/{i}.wav",
                     "label": f"class{label}"})
    return write_manifest(folder, rows), rows


def tiny_config(manifest, epochs=2, **training):
    """A config for TINY modalities on `manifest`, quick to train."""
    return {
        "data": {"train": manifest, "validation_split": 0.25},
        "modalities": {name: dict(options) for name, options in TINY.items()},
        "fusion": {"type": "attention", "units": 8},
        "model": {"hidden_units": 8},
        "training": {"epochs": epochs, "batch_size": 6, "tensorboard": False, "verbose": 0, **training},
    }


def gif_from(frames, duration=40):
    """An animated GIF of uint8 frames (h, w) grey or (h, w, 3) RGB."""
    pictures = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    return buffer.getvalue()


def write_frame_folder(folder, frames, fmt="png"):
    """One image file per frame, named so that only a natural sort orders them (f2 before f10)."""
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"f{i}.{fmt}"))
    return folder


#: Container → (file extension, codec) of the compressed videos tests write with PyAV.
VIDEO_FORMATS = {"mp4": ("mp4", "mpeg4"), "webm": ("webm", "libvpx"), "avi": ("avi", "mpeg4")}


def write_video(path, frames, container="mp4", rate=8, sound=None, sound_rate=16000):
    """A compressed video file of uint8 RGB frames `(h, w, 3)` (even sizes), written with PyAV;
    with `sound` (float samples in [-1, 1], mono) an AAC soundtrack too."""
    import av

    with av.open(path, "w") as out:
        stream = out.add_stream(VIDEO_FORMATS[container][1], rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        track = None if sound is None else out.add_stream("aac", rate=sound_rate, layout="mono")
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
        if track is not None:
            samples = np.asarray(sound, "float32")[None, :]
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate = sound_rate
            out.mux(track.encode(chunk))
            out.mux(track.encode())
    return path
