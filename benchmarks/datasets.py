"""Benchmark data sets made here, so that defaults are judged on more than the demo data.

Each writes PNG images, 16-bit WAV clips and a text column with `train.csv`, `validation.csv`
and `test.csv` manifests, and returns their paths. They differ in size and in which modality
carries the most:

- `digits` (1,797 examples, 10 classes): the demo data; the image is strongest.
- `tones` (600 examples and 300 more for testing, 10 classes): scikit-learn's digits again, but
  the images are very noisy and the telephone tones clean: the sound is strongest and the
  training set small (420 examples).
- `shapes` (3,000 examples, 8 classes): a drawn shape (4 kinds) and a chirp that rises or falls,
  label = shape x direction; the image tells the shape, the sound the direction and a little of
  the shape, the text is a weak hint. No modality alone can reach the fused accuracy.

Run: `python benchmarks/datasets.py tones /tmp/tones` writes one.
"""

import csv
import os
import sys
import wave

import numpy as np

from mmkeras.demo import DTMF
from mmkeras.demo import clue
from mmkeras.demo import write_demo_data
from mmkeras.demo import write_splits

SAMPLE_RATE = 8000
CLIP_SECONDS = 0.5
SHAPES = ("circle", "square", "triangle", "cross")


def _write_wav(path, samples, rate=SAMPLE_RATE):
    """Mono 16-bit PCM WAV of float samples in [-1, 1]."""
    samples = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def _write_png(path, pixels):
    from PIL import Image

    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype("uint8"), "L").save(path)


def write_tones(folder, examples=600, extra_test=300, seed=1):
    """Digits whose tones are clear and whose images are buried in noise.

    `examples` are split 70/15/15 into train, validation and test like the other data sets;
    `extra_test` more examples join the test split only, so that the small training set is
    measured on enough examples (with 90 test examples one example is 1.1 points).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))[: examples + extra_test]
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    rows = []
    for i in order:
        digit = int(digits.target[i])
        image = np.kron(digits.images[i] / 16.0, np.ones((2, 2))) + rng.normal(0.0, 0.55, (16, 16))
        low, high = DTMF[digit]
        jitter = rng.uniform(0.97, 1.03, 2)
        start, length = rng.integers(0, n // 2), rng.integers(n // 8, n // 3)
        envelope = np.zeros(n)
        envelope[start : start + length] = 1.0
        sound = 0.2 * envelope * (np.sin(2 * np.pi * low * jitter[0] * t) + np.sin(2 * np.pi * high * jitter[1] * t))
        sound = sound + rng.normal(0.0, 0.55, n)
        _write_png(os.path.join(folder, f"images/{i:04d}.png"), image)
        _write_wav(os.path.join(folder, f"audio/{i:04d}.wav"), sound)
        text = clue(digit, rng) if rng.random() < 0.6 else ""
        rows.append({"text": text, "image": f"images/{i:04d}.png", "audio": f"audio/{i:04d}.wav", "label": str(digit)})
    paths = write_splits(folder, rows[:examples])
    with open(paths["test"], newline="") as f:
        header = next(csv.reader(f))  # the demo's columns; the ones these rows lack stay empty
    with open(paths["test"], "a", newline="") as f:
        csv.DictWriter(f, header, restval="").writerows(rows[examples:])
    return paths


def _draw(shape, size, rng):
    """A 16x16 grey drawing of `shape` at a random place and size, in noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    r = rng.uniform(3.0, 6.0)
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        mask = np.abs(np.hypot(dy, dx) - r) < 1.0
    elif shape == "square":
        mask = (np.maximum(np.abs(dy), np.abs(dx)) < r) & (np.maximum(np.abs(dy), np.abs(dx)) > r - 1.6)
    elif shape == "triangle":
        mask = (dy < r) & (dy > -r) & (np.abs(dx) < (dy + r) / 2.0) & ((np.abs(dx) > (dy + r) / 2.0 - 1.6) | (dy > r - 1.6))
    else:
        mask = (np.abs(dy) < 0.9) & (np.abs(dx) < r) | (np.abs(dx) < 0.9) & (np.abs(dy) < r)
    return mask.astype("float32") * rng.uniform(0.5, 1.0) + rng.normal(0.0, 0.35, (size, size))


def write_shapes(folder, examples=3000, seed=2):
    """Shape (image) x chirp direction (sound); label = both."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    hints = {"circle": "round", "square": "corners", "triangle": "corners", "cross": "lines"}
    rows = []
    for i in range(examples):
        shape_id, rising = int(rng.integers(4)), bool(rng.integers(2))
        shape = SHAPES[shape_id]
        label = f"{shape}_{'up' if rising else 'down'}"
        # the sweep's band says a little about the shape (overlapping bands), its direction the rest
        base = 500.0 + 250.0 * shape_id + rng.normal(0.0, 180.0)
        span = rng.uniform(600.0, 1200.0)
        f0, f1 = (base, base + span) if rising else (base + span, base)
        phase = 2 * np.pi * np.cumsum(f0 + (f1 - f0) * t / CLIP_SECONDS) / SAMPLE_RATE
        sound = 0.3 * np.sin(phase) + rng.normal(0.0, 0.3, n)
        _write_png(os.path.join(folder, f"images/{i:05d}.png"), _draw(shape, 16, rng))
        _write_wav(os.path.join(folder, f"audio/{i:05d}.wav"), sound)
        text = hints[shape] if rng.random() < 0.5 else ""
        rows.append({"text": text, "image": f"images/{i:05d}.png", "audio": f"audio/{i:05d}.wav", "label": label})
    return write_splits(folder, rows)


#: name → writer(folder) → manifest paths
DATASETS = {
    "digits": lambda folder: write_demo_data(folder),
    "tones": write_tones,
    "shapes": write_shapes,
}

#: Modality settings used for every data set (the images are 16x16 grey, the clips 0.5 s at 8 kHz).
MODALITIES = {
    "text": {"max_tokens": 64, "sequence_length": 6, "embedding_dim": 16, "lstm_units": 16},
    "image": {"height": 16, "width": 16, "channels": 1, "filters": [16, 32]},
    "audio": {"sample_rate": SAMPLE_RATE, "duration": CLIP_SECONDS, "num_mel_bins": 32, "conv_filters": [32, 32],
              "lstm_units": 32},
}


if __name__ == "__main__":
    name, folder = sys.argv[1], sys.argv[2]
    print(DATASETS[name](folder))
