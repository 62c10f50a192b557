"""Draws docs/images/explain_every_kind.png: Integrated Gradients inside each of six modality
kinds for one test example, from a model trained briefly on the demo's data plus a clip column.

Run: `.venv/bin/python docs/images/explain_figure.py [--epochs 8]` (about two minutes on 2 CPU cores).
"""

import argparse
import csv
import io
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

import mmkeras
from mmkeras.demo import DEMO_CONFIG
from mmkeras.demo import write_demo_data


def _gif(frames):
    pictures = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=40, loop=0)
    return buffer.getvalue()


def _add_clips(folder, paths):
    """A `clip` column: a bright bar whose row follows the label's digit, moving across 4 frames."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(folder, "clips"), exist_ok=True)
    for split, path in paths.items():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for i, row in enumerate(rows):
            frames = []
            for t in range(4):
                frame = (rng.random((12, 12)) * 60).astype("uint8")
                frame[int(row["label"]) % 10 + 1, 2 * t: 2 * t + 4] = 255
                frames.append(frame)
            name = f"clips/{split}_{i}.gif"
            with open(os.path.join(folder, name), "wb") as f:
                f.write(_gif(frames))
            row["clip"] = name
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--examples", type=int, default=600)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="explain_figure_")
    paths = write_demo_data(folder, examples=args.examples)
    _add_clips(folder, paths)
    config = {**DEMO_CONFIG, "data": {"train": paths["train"], "validation": paths["validation"]}}
    config["modalities"] = {**DEMO_CONFIG["modalities"],
                            "clip": {"kind": "video", "frames": 4, "height": 12, "width": 12, "channels": 1}}
    config["training"] = {**DEMO_CONFIG["training"], "epochs": args.epochs, "verbose": 0}
    mmkeras.train(config, os.path.join(folder, "run"))
    task = mmkeras.MultimodalTask.from_preset(os.path.join(folder, "run"))
    result = task.explain(paths["test"], output_dir=os.path.join(folder, "why"), rows=[1])
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explain_every_kind.png")
    shutil.copyfile(result["files"]["attribution plots"] + "/row1_label.png", target)
    print(f"row 1 predicted {result['rows'][0]['predicted']}; figure: {target}")


if __name__ == "__main__":
    main()
