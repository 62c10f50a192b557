"""The video branch on clips whose label is only in the motion (issue 31), and on clips whose label
is only in what moves: mmkeras video alone with the defaults (and with changes that test why it
trails) against a plain Keras TimeDistributed CNN → GRU, all on the same files.

Run: `nice -n 19 .venv/bin/python benchmarks/motion_clips.py [--task motion|content] [--seeds 1 2 3]
      [--epochs 30] [--threads 1] [--variants NAME ...] [--baselines [NAME ...]] [--training KEY=VALUE ...]
      [--output DIR]`
     `python benchmarks/motion_clips.py [--task ...] --data-only DIR` writes the data set and stops.

Data: 8-frame 24x24 grey animated GIFs, one of two tasks (`--task`, 5 classes each):
- `motion` (the default, `write_motion_clips`): a bright 4x4 square moves 2 or 3 pixels a frame
  left, right, up or down, or stays still (the class), wrapping around the edges, so that its
  place in any one frame is uniform over the canvas whatever the class: no single frame tells the
  label, only the frames' order does;
- `content` (`write_content_clips`): the class is the bright glyph that moves (`GLYPHS`: a filled
  3x3 square, a hollow 4x4 ring, a 5x5 plus, a 2x5 horizontal bar, a 5x2 vertical bar, 9-12
  pixels each, so their mass barely differs), which starts anywhere and moves the same way as a
  motion clip's square in a direction drawn at random (or stays still): where it is and which way
  it goes tell nothing, its shape tells the label in every frame.
Distractors in both: a dimmer 4x4 square that stays still, two single pixels that flicker at
random places each frame, Gaussian noise (sd 0.08) on every frame; the bright shape's brightness
varies per clip. 300 train / 100 validation / 150 test clips, every split balanced over the
classes; seeded: the same seed writes the same files.

Models, each trained with every seed (test accuracy, mean ± standard deviation over the seeds):
- `mmkeras defaults`: `mmkeras.train` with `clip: {kind: video, frames: 8, height: 24, width: 24,
  channels: 1}` and every other setting the library's default;
- `mmkeras <change>`: the same with one setting of the video spec changed (`VARIANTS`);
- `plain TD-CNN GAP → GRU`: TimeDistributed(Conv2D(16) → pool → Conv2D(32) → global average
  pooling) → GRU(32) → Dense(64) → softmax, the model people write first;
- `plain TD-CNN flatten → GRU`: the same with the 6x6 map flattened instead of averaged (where
  the square is stays in each frame's vector).
The plain models train on the clips the library's Preprocessor decodes (the grey plane, without
the mask plane) with Adam 1e-3, batch 32, early stopping on validation loss (patience 10, best
weights restored), the same epoch budget as the library runs. The video branch has no
augmentation (no flips that would swap left and right); what decides on motion clips is the
per-frame pooling: a global one (`grid: 1`, the GAP baseline) cannot see which way the square
moved, while on content clips keeping where things are may only cost. Writes `<task>_clips.json`
and `<task>_clips.md` (`motion_clips.*`, `content_clips.*`) in the output folder.
"""

import argparse
import io
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _seeded import add_training_option  # noqa: E402
from _seeded import run_comparison  # noqa: E402
from _seeded import run_folder  # noqa: E402
from _seeded import with_settings  # noqa: E402
from _seeded import write_balanced  # noqa: E402

MOTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0), "still": (0, 0)}  # (rows, columns)
FRAMES = 8
SIZE = 24
SQUARE = 4
#: name → the bright shape of a content clip (1 where it is lit).
GLYPHS = {name: np.array([[c == "#" for c in row] for row in rows.split()], float) for name, rows in {
    "square": "### ### ###",
    "ring": "#### #..# #..# ####",
    "plus": "..#.. ..#.. ##### ..#.. ..#..",
    "horizontal bar": "##### #####",
    "vertical bar": "## ## ## ## ##",
}.items()}
SPEEDS = (2, 3)  # pixels a frame (1 hides in the first 2x2 max pooling)
NOISE = 0.08
SPLITS = {"train": 300, "validation": 100, "test": 150}

#: The modality settings of every run: only the clip format is set, the rest is the library's default.
CLIP = {"kind": "video", "frames": FRAMES, "height": SIZE, "width": SIZE, "channels": 1}
#: name → changes to `CLIP` of each mmkeras run.
VARIANTS = {
    "mmkeras defaults": {},
    "mmkeras grid: 3": {"grid": 3},  # 3x3 cells of 8x8 pixels
    "mmkeras grid: 4": {"grid": 4},  # 4x4 cells of 6x6 pixels (uneven cells of the 6x6 map)
    "mmkeras grid: 6": {"grid": 6},  # the 6x6 map whole: no averaging within cells
    "mmkeras grid: 1": {"grid": 1},  # global average pooling, as the GAP baseline
    "mmkeras recurrent: gru": {"recurrent": "gru"},
}
BASELINES = {"plain TD-CNN GAP → GRU": "avg", "plain TD-CNN flatten → GRU": "flatten"}
PATIENCE = 10


def gif_bytes(frames):
    """An animated GIF of uint8 grey frames `(h, w)` (every frame kept whole: no delta frames)."""
    from PIL import Image

    pictures = [Image.fromarray(f, "L") for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=100, loop=0,
                     optimize=False, disposal=1)
    return buffer.getvalue()


def draw_clip(glyph, motion, rng):
    """`FRAMES` float frames in [0, 1] of `glyph` (an array of 0 and 1) moving as `motion` says,
    with the distractors."""
    (dy, dx), speed = MOTIONS[motion], int(rng.choice(SPEEDS))
    y, x = rng.integers(0, SIZE, 2)
    still_y, still_x = rng.integers(0, SIZE, 2)
    bright, dim = rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.5)
    frames = rng.normal(0.1, NOISE, (FRAMES, SIZE, SIZE))
    for t in range(FRAMES):
        rows = (y + dy * speed * t + np.arange(glyph.shape[0])) % SIZE  # wraps around: the place stays uniform
        columns = (x + dx * speed * t + np.arange(glyph.shape[1])) % SIZE
        frames[t][np.ix_((still_y + np.arange(SQUARE)) % SIZE, (still_x + np.arange(SQUARE)) % SIZE)] += dim
        frames[t][np.ix_(rows, columns)] += bright * glyph
        frames[t][tuple(rng.integers(0, SIZE, (2, 2)))] += bright  # two flickering pixels
    return np.clip(frames, 0, 1)


def write_gif(path, frames):
    """Writes float frames in [0, 1] `(frames, h, w)` as an animated grey GIF."""
    with open(path, "wb") as f:
        f.write(gif_bytes((frames * 255).round().astype("uint8")))


def write_clips(folder, names, draw, sizes, seed):
    """Writes `draw(name, rng)`'s clips as GIFs and `train.csv`, `validation.csv`, `test.csv`
    (columns `clip,label`, paths relative to `folder`), every split balanced over `names`; returns
    the manifests' paths."""
    os.makedirs(os.path.join(folder, "clips"), exist_ok=True)

    def example(i, label, rng):
        name = f"clips/{i:04d}.gif"
        write_gif(os.path.join(folder, name), draw(label, rng))
        return {"clip": name, "label": label}

    return write_balanced(folder, sizes or SPLITS, names, seed, example)


def write_motion_clips(folder, sizes=None, seed=11):
    """The motion clips: the label is which way the square moves."""
    square = np.ones((SQUARE, SQUARE))
    return write_clips(folder, list(MOTIONS), lambda motion, rng: draw_clip(square, motion, rng), sizes, seed)


def write_content_clips(folder, sizes=None, seed=12):
    """The content clips: the label is the glyph, which moves in a random direction (or stays still)."""

    def draw(glyph, rng):
        return draw_clip(GLYPHS[glyph], rng.choice(list(MOTIONS)), rng)

    return write_clips(folder, list(GLYPHS), draw, sizes, seed)


#: task → the output files' name, the table's title and the data set's writer.
TASKS = {"motion": ("motion_clips", f"Motion clips, {len(MOTIONS)} classes", write_motion_clips),
         "content": ("content_clips", f"Content clips, {len(GLYPHS)} classes", write_content_clips)}


def td_cnn_gru_branch(shape, pooling, name="clip"):
    """TimeDistributed(Conv2D(16) → pool → Conv2D(32) → pooling) → GRU(32) over a grey clip, as
    (input, features): the plain clip branch, alone or in a plain fused model. `shape` is
    `(frames, height, width, planes)`: 1 plane (the grey frames), or 2 (the Preprocessor's grey
    plane and its mask plane, which the branch leaves out, as a plain model would)."""
    import keras

    frames, height, width, planes = shape
    if planes not in (1, 2):
        raise ValueError(f"Expected a grey clip of 1 plane, or 2 with the mask. Received: shape={shape}")
    picture = keras.Input((height, width, 1), name=f"{name}_frame")  # (batch, H, W, 1)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name=f"{name}_conv_1")(picture)
    x = keras.layers.MaxPooling2D(name=f"{name}_pool_1")(x)  # (batch, H / 2, W / 2, 16)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name=f"{name}_conv_2")(x)
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_global_pool")(x)  # (batch, 32)
    else:
        x = keras.layers.MaxPooling2D(name=f"{name}_pool_2")(x)  # (batch, H / 4, W / 4, 32)
        x = keras.layers.Flatten(name=f"{name}_flatten")(x)  # (batch, H / 4 * W / 4 * 32)
    per_frame = keras.Model(picture, x, name=f"{name}_frame_encoder")
    clip = keras.Input(shape, name=name)  # (batch, T, H, W, channels)
    grey = clip[..., :1] if planes == 2 else clip  # (batch, T, H, W, 1)
    x = keras.layers.TimeDistributed(per_frame, name=f"{name}_frames")(grey)  # (batch, T, features)
    return clip, keras.layers.GRU(32, name=f"{name}_gru")(x)  # (batch, 32)


def td_cnn_gru(shape, classes, pooling):
    """`td_cnn_gru_branch` → Dropout(0.3) → Dense(64) → softmax: the plain model of a clip alone."""
    import keras

    clip, x = td_cnn_gru_branch(shape, pooling)
    x = keras.layers.Dropout(0.3, name="clip_dropout")(x)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)  # (batch, 64)
    probs = keras.layers.Dense(classes, activation="softmax", name="label_probs")(x)  # (batch, classes)
    return keras.Model(clip, probs, name=f"plain_td_cnn_{pooling}_gru")


def fit_baseline(splits, classes, seed, epochs, pooling):
    import keras

    keras.utils.set_random_seed(seed)
    (x, y), (xv, yv), (xt, yt) = ((splits[s][0]["clip"], splits[s][1]) for s in ("train", "validation", "test"))
    model = td_cnn_gru(x.shape[1:], classes, pooling)  # the branch leaves the mask plane out
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)
    history = model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=32, verbose=0, callbacks=[stop])
    accuracy = float((model.predict(xt, verbose=0).argmax(-1) == yt).mean())
    return {"all": accuracy, "epochs": len(history.history["loss"])}


def compare(paths, seeds, epochs, variants, baselines, workdir, log, training=()):
    """Every variant and baseline, seed by seed (so a cut-short run still has whole seeds)."""
    import mmkeras
    from fusion_comparison import run_one
    from mmkeras.evaluation import collect

    preprocessor = mmkeras.Preprocessor({"clip": CLIP})
    mmkeras.adapt_preprocessor(preprocessor, paths["train"])
    splits = {s: collect(mmkeras.make_dataset(paths[s], preprocessor, batch_size=64)) for s in SPLITS}
    classes = len(preprocessor.label_names)
    rows = {}
    for seed in seeds:
        for name in baselines:
            start = time.perf_counter()
            row = fit_baseline(splits, classes, seed, epochs, BASELINES[name])
            rows.setdefault(name, []).append({**row, "seconds": time.perf_counter() - start})
            log(name, seed, rows[name][-1])
        for name in variants:
            config = {"data": {"train": paths["train"], "validation": paths["validation"]},
                      "modalities": {"clip": {**CLIP, **VARIANTS[name]}},
                      "training": {"verbose": 0, "tensorboard": False, "backup": False, "checkpoint": False,
                                   "seed": seed, "epochs": epochs, "early_stopping_patience": PATIENCE,
                                   **dict(training)}}
            slug = name.split(" ", 1)[1].replace(":", "").replace(" ", "_")
            row_name = with_settings(name, training)
            rows.setdefault(row_name, []).append(run_one(config, run_folder(workdir, slug, seed, training),
                                                         *splits["test"]))
            log(row_name, seed, rows[row_name][-1])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="motion", choices=list(TASKS), help="what tells the class")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=30, help="for every model")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads (0: all cores)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES))
    add_training_option(parser)
    parser.add_argument("--data-only", metavar="DIR", help="write the data set to DIR and stop")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    name, title, write_data = TASKS[args.task]
    if args.data_only:
        print(write_data(args.data_only))
        return

    def runs(paths, folder, log):
        return compare(paths, args.seeds, args.epochs, args.variants, args.baselines, folder, log, args.training)

    run_comparison(name, title, write_data, runs, args, SPLITS)


if __name__ == "__main__":
    main()
