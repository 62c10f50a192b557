"""Generated files for the benchmarks: PNG images, WAV clips and text, with a CSV manifest."""

import csv
import os

import numpy as np
import soundfile as sf
from PIL import Image

WORDS = "red green blue small large round square loud quiet fast slow bright dark".split()


def write_files(folder, count, image_size=64, audio_rate=22050, audio_seconds=1.0, classes=5, seed=0):
    """Writes `count` examples (RGB PNG, mono 16-bit WAV at `audio_rate`, a sentence) and a manifest."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "files"), exist_ok=True)
    rows = []
    t = np.arange(int(audio_rate * audio_seconds)) / audio_rate
    for i in range(count):
        label = i % classes
        pixels = (rng.random((image_size, image_size, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(os.path.join(folder, "files", f"{i}.png"))
        clip = 0.3 * np.sin(2 * np.pi * (200 + 100 * label) * t) + 0.05 * rng.normal(size=t.shape)
        sf.write(os.path.join(folder, "files", f"{i}.wav"), clip.astype("float32"), audio_rate, subtype="PCM_16")
        text = " ".join(rng.choice(WORDS, 6))
        rows.append({"text": text, "image": f"files/{i}.png", "audio": f"files/{i}.wav", "label": f"c{label}"})
    path = os.path.join(folder, "manifest.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["text", "image", "audio", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path, rows
