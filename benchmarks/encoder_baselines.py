"""The library's image, audio and text branches, trained alone with the defaults, against simple
models a practitioner would write first, on the same decoded files. The plain branches here
(`BRANCHES`, one per kind) also make `defaults_table.py`'s plain models, alone and concatenated.

Run: `.venv/bin/python benchmarks/encoder_baselines.py [--datasets digits tones shapes] [--seeds 1 2 3]
      [--modalities image audio] [--spec KEY=VALUE ...]`

Per data set of `datasets.py` (test accuracy, mean ± standard deviation over the seeds):
- `mmkeras image` / `mmkeras audio`: `mmkeras train` with one modality and the defaults;
- `small CNN`: Conv2D(16) → pool → Conv2D(32) → pool → Flatten → Dense(64), plain Keras;
- `logistic regression`: scikit-learn on the raw pixels (no training on the GPU, no augmentation);
- `Conv1D + pooling`: log-mel (Keras' `MelSpectrogram`) → Conv1D(32) x 2 → global mean and max
  pooling → Dense(64), plain Keras;
- `embedding + mean`: Embedding(16) of the token ids → mean over the positions → Dense(64).
The plain Keras models train on the Preprocessor's decoded tensors (the same pixels and waveforms
the library's models see) with Adam 1e-3, batch 32, the library's epoch budget and early stopping
on validation loss (its patience, best weights restored). An encoder that
trails its simple baseline by more than the seeds' spread has a fault to look for; this script is
how the image branch's global average pooling was found (tones: 0.29 alone, against 0.74 for
logistic regression on the pixels and 0.79 for the small CNN).
"""

import argparse
import copy
import json
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

import mmkeras  # noqa: E402
from datasets import DATASETS  # noqa: E402
from datasets import MODALITIES  # noqa: E402
from _seeded import setting  # noqa: E402
from _seeded import with_settings  # noqa: E402
from fusion_comparison import _fmt  # noqa: E402
from fusion_comparison import run_one  # noqa: E402
from mmkeras.config import DEFAULTS  # noqa: E402
from mmkeras.evaluation import collect  # noqa: E402
from motion_clips import td_cnn_gru_branch  # noqa: E402

#: The library's training budget, which the plain models get too.
EPOCHS = DEFAULTS["training"]["epochs"]
PATIENCE = DEFAULTS["training"]["early_stopping_patience"]


def _decoded(paths):
    """Decoded train/validation/test tensors and label ids, through the library's Preprocessor."""
    preprocessor = mmkeras.Preprocessor(MODALITIES)
    mmkeras.adapt_preprocessor(preprocessor, paths["train"])
    splits = {split: collect(mmkeras.make_dataset(paths[split], preprocessor, batch_size=64))
              for split in ("train", "validation", "test")}
    return splits, len(preprocessor.label_names)


def conv1d_pooled(x):
    """`(batch, steps, features)` → Conv1D(32, 5) x 2 → mean and max over the steps: the plain
    audio and sensor branches' shared body."""
    for _ in range(2):
        x = keras.layers.Conv1D(32, 5, padding="same", activation="relu")(x)
    return keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(x), keras.layers.GlobalMaxPooling1D()(x)])


def image_branch(shape, name="image"):
    """Conv2D(16) → pool → Conv2D(32) → pool → Flatten: the plain image branch, as (input, features)."""
    pixels = keras.Input(shape, name=name)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(pixels)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    return pixels, keras.layers.Flatten()(x)


def audio_branch(samples, name="audio"):
    """Log-mel (Keras' `MelSpectrogram`) → LayerNormalization → Conv1D(32) x 2 → mean and max over
    time: the plain audio branch, as (input, features)."""
    spec = MODALITIES["audio"]
    waveform = keras.Input((samples,), name=name)
    mel = keras.layers.MelSpectrogram(
        fft_length=256, sequence_stride=int(0.010 * spec["sample_rate"]), sequence_length=int(0.025 * spec["sample_rate"]),
        sampling_rate=spec["sample_rate"], num_mel_bins=spec["num_mel_bins"], power_to_db=True)(waveform)  # (batch, mels, frames)
    x = keras.layers.Permute((2, 1))(mel)  # (batch, frames, mels)
    return waveform, conv1d_pooled(keras.layers.LayerNormalization()(x))


def text_branch(length, name="text"):
    """Embedding(16) of the token ids → mean over the positions, padding included: the plain text
    branch, as (input, features). (A mask would make the mean of an empty text 0 / 0.)"""
    spec = MODALITIES["text"]
    ids = keras.Input((length,), dtype="int32", name=name)
    x = keras.layers.Embedding(spec["max_tokens"] + 2, 16)(ids)  # ids < max_tokens; 2 spare rows cost nothing
    return ids, keras.layers.GlobalAveragePooling1D()(x)


def sensor_branch(shape, name="sensor"):
    """Conv1D(32) x 2 over the standardised readings → mean and max over time: the plain sensor
    branch, as (input, features)."""
    series = keras.Input(shape, name=name)
    return series, conv1d_pooled(series)


def tabular_branch(shape, name="tabular"):
    """Dense(64) over the columns' vector (standardised numbers, missing flags, one-hot
    categories): the plain tabular branch, as (input, features)."""
    columns = keras.Input(shape, name=name)
    return columns, keras.layers.Dense(64, activation="relu")(columns)


def plain_classifier(branches, classes):
    """Branch features concatenated → Dropout(0.3) → Dense(64) → softmax: one model for one branch
    or several (the plain fused baseline: concatenation, what a notebook does first)."""
    inputs = [i for i, _ in branches]
    x = branches[0][1] if len(branches) == 1 else keras.layers.Concatenate()([f for _, f in branches])
    x = keras.layers.Dense(64, activation="relu")(keras.layers.Dropout(0.3)(x))
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


#: kind → (one example's shape, the input's name) → (input, features)
BRANCHES = {"image": image_branch, "audio": lambda shape, name: audio_branch(shape[0], name),
            "text": lambda shape, name: text_branch(shape[0], name), "sensor": sensor_branch,
            "tabular": tabular_branch,
            "video": lambda shape, name: td_cnn_gru_branch(shape, "flatten", name)}
#: kind → the name of its plain baseline in tables.
BASELINE_NAMES = {"image": "small CNN", "audio": "Conv1D + pooling", "text": "embedding + mean",
                  "sensor": "Conv1D + pooling", "tabular": "Dense(64)"}


def plain_model(shapes, classes, kinds=None):
    """The plain Keras model over the modalities of `shapes` (modality → one example's shape);
    `kinds` maps a modality to its kind where the two names differ."""
    kinds = kinds or {}
    return plain_classifier([BRANCHES[kinds.get(m, m)](shape, m) for m, shape in shapes.items()], classes)


def fit_plain(modalities, splits, classes, seed, epochs=EPOCHS, kinds=None):
    """Trains `plain_model` over `modalities` on the decoded splits; returns its test accuracy."""
    keras.utils.set_random_seed(seed)
    model = plain_model({m: splits["train"][0][m].shape[1:] for m in modalities}, classes, kinds)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    (x, y), (xv, yv), (xt, yt) = (({m: splits[s][0][m] for m in modalities}, splits[s][1])
                                  for s in ("train", "validation", "test"))
    stop = keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)
    model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=32, verbose=0, callbacks=[stop])
    return float((model.predict(xt, verbose=0).argmax(-1) == yt).mean())


def logistic_regression(splits):
    from sklearn.linear_model import LogisticRegression

    (x, y), (xt, yt) = ((splits[s][0]["image"].reshape(len(splits[s][1]), -1), splits[s][1]) for s in ("train", "test"))
    return float(LogisticRegression(C=0.05, max_iter=3000).fit(x, y).score(xt, yt))


def compare(name, paths, seeds, workdir, modalities=("image", "audio"), changes=()):
    splits, classes = _decoded(paths)
    test_features, test_labels = splits["test"]
    rows = {}
    for modality in modalities:
        for seed in seeds:
            config = {"data": {"train": paths["train"], "validation": paths["validation"]},
                      "modalities": {modality: {**copy.deepcopy(MODALITIES[modality]), **dict(changes)}},
                      "training": {"verbose": 0, "tensorboard": False, "backup": False, "checkpoint": False,
                                   "seed": seed, "epochs": EPOCHS, "early_stopping_patience": PATIENCE}}
            row = run_one(config, os.path.join(workdir, f"{name}-{modality}-{seed}"), test_features, test_labels)
            rows.setdefault(with_settings(f"mmkeras {modality}", changes), []).append(row["all"])
            rows.setdefault(BASELINE_NAMES[modality], []).append(fit_plain([modality], splits, classes, seed))
            print(name, modality, seed, {k: round(v[-1], 3) for k, v in rows.items()}, flush=True)
    if "image" in modalities:
        rows["logistic regression (pixels)"] = [logistic_regression(splits)]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=sorted(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--modalities", nargs="+", default=["image", "audio"], choices=["image", "audio", "text"])
    parser.add_argument("--spec", nargs="+", type=setting, default=[], metavar="KEY=VALUE",
                        help="changes to the trained modality's spec (values read as YAML), e.g. "
                             "'spec_augment={time_masks: 2, time_width: 0.1}'; the mmkeras row names them")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="mmkeras-encoders-")
    results = {}
    lines = ["| data set | model | test accuracy |", "|---|---|---|"]
    for name in args.datasets:
        results[name] = compare(name, DATASETS[name](os.path.join(workdir, "data", name)), args.seeds, workdir,
                                args.modalities, args.spec)
        for model, values in results[name].items():
            lines.append(f"| {name} | {model} | {_fmt(float(np.mean(values)), float(np.std(values)))} |")
    print("\n".join(lines))
    with open(os.path.join(workdir, "encoder_baselines.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"written to {workdir}")


if __name__ == "__main__":
    main()
