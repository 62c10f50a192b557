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
