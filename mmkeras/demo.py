"""`mmkeras demo`: a small multimodal data set written as real files, then train → evaluate →
export → predict → one query, through the same code paths as the CLI.

The data: each example is a digit 0-9 seen five ways, none of them enough alone:
- image: scikit-learn's bundled handwritten digits (8x8, real handwriting), with noise and a
  random occluding block;
- audio: the digit's telephone (DTMF) tone pair with jittered pitch and timing, in loud noise;
- text: one partial clue ("an even number", "bigger than five", ...), sometimes none;
- motion (a sensor series, CSV): the pen's two-axis movement, a wobble whose speed tells the
  digit modulo 5, in heavy noise;
- writer (tabular): the pen's `pressure` (a number that grows with the digit, very noisy) and
  its `ink` colour (usually blue for 5-9 and black for 0-4); some cells are empty.
"""

import csv
import os
import time
import wave

import numpy as np

SAMPLE_RATE = 8000
CLIP_SECONDS = 0.5
#: DTMF frequencies (Hz) of the telephone keypad, row and column tone of each digit.
DTMF = {1: (697, 1209), 2: (697, 1336), 3: (697, 1477), 4: (770, 1209), 5: (770, 1336), 6: (770, 1477),
        7: (852, 1209), 8: (852, 1336), 9: (852, 1477), 0: (941, 1336)}

#: Time steps of each demo motion series.
MOTION_STEPS = 32
#: Manifest columns of the demo data, in order.
COLUMNS = ["text", "image", "audio", "motion", "pressure", "ink", "label"]

DEMO_CONFIG = {
    "data": {"train": "data/train.csv", "validation": "data/validation.csv"},
    "modalities": {
        "text": {"max_tokens": 64, "sequence_length": 6, "embedding_dim": 16, "lstm_units": 16},
        "image": {"height": 16, "width": 16, "channels": 1, "filters": [16, 32]},
        "audio": {"sample_rate": SAMPLE_RATE, "duration": CLIP_SECONDS, "num_mel_bins": 32,
                  "conv_filters": [32, 32], "lstm_units": 32},
        "motion": {"kind": "sensor", "channels": 2, "length": MOTION_STEPS, "conv_filters": [16], "lstm_units": 16},
        "writer": {"kind": "tabular", "numeric": ["pressure"], "categorical": ["ink"], "hidden_units": [16]},
    },
    # The library's default fusion (attention, modality dropout 0.25), as a user gets it.
    "fusion": {"type": "attention"},
    "training": {"epochs": 30, "batch_size": 32, "learning_rate": 0.001, "early_stopping_patience": 6,
                 "seed": 7, "tensorboard": False, "verbose": 2},
}


def clue(digit, rng):
    """One partial clue about `digit` in words, or "" (no text for this example)."""
    options = [
        "an even number" if digit % 2 == 0 else "an odd number",
        "bigger than five" if digit > 5 else "five or less",
        "less than three" if digit < 3 else "three or more",
        "a multiple of three" if digit % 3 == 0 else "not a multiple of three",
    ]
    if rng.random() < 0.1:
        return ""
    return options[rng.integers(len(options))]


def degrade_image(pixels, rng):
    """8x8 digit (0-16) → noisy, partly occluded 16x16 uint8 image."""
    image = np.kron(pixels / 16.0, np.ones((2, 2)))
    image = image + rng.normal(0.0, 0.25, image.shape)
    side = 5
    top, left = rng.integers(0, 16 - side + 1, 2)
    image[top : top + side, left : left + side] = rng.random()
    return (np.clip(image, 0, 1) * 255).astype("uint8")


def tone_pair(digit, rng):
    """Jittered DTMF tone pair in loud white noise, 16-bit PCM samples."""
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    low, high = DTMF[digit]
    jitter = rng.uniform(0.95, 1.05, 2)
    signal = np.sin(2 * np.pi * low * jitter[0] * t) + np.sin(2 * np.pi * high * jitter[1] * t)
    start = rng.integers(0, n // 3)
    length = rng.integers(n // 8, n // 3)
    envelope = np.zeros(n)
    envelope[start : start + length] = 1.0
    audio = 0.2 * signal * envelope + rng.normal(0.0, 0.6, n)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2")


def pen_motion(digit, rng):
    """(MOTION_STEPS, 2) pen movement: a wobble of 1-5 cycles (the digit modulo 5) in heavy noise."""
    t = np.arange(MOTION_STEPS) / MOTION_STEPS
    cycles, phase = 1 + digit % 5, rng.uniform(0, 2 * np.pi)
    wobble = np.stack([np.sin(2 * np.pi * cycles * t + phase), 0.5 * np.cos(2 * np.pi * cycles * t + phase)], axis=1)
    return wobble + rng.normal(0.0, 1.4, wobble.shape)


def writer_cells(digit, rng):
    """(pressure, ink) cells: pressure grows with the digit under heavy noise; ink is usually
    blue for 5-9 and black for 0-4; either cell is sometimes empty."""
    pressure = f"{0.3 * digit + rng.normal(0.0, 1.2):.2f}" if rng.random() > 0.1 else ""
    ink = ("blue" if digit >= 5 else "black") if rng.random() < 0.6 else str(rng.choice(["blue", "black", "red"]))
    return pressure, ink if rng.random() > 0.1 else ""


def _write_wav(path, samples):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.tobytes())


def write_demo_data(folder, examples=None, seed=0):
    """Writes the demo files and `train.csv` / `validation.csv` / `test.csv` manifests.

    Returns:
        dict of manifest paths.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))[: examples or len(digits.target)]
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
    os.makedirs(os.path.join(folder, "motion"), exist_ok=True)
    # The motion and writer signals draw from their own generator, so the image, audio and text
    # of every example stay what they were before those columns existed.
    extra = np.random.default_rng(seed + 1000)
    rows = []
    for i in order:
        digit = int(digits.target[i])
        image_path = f"images/{i:04d}.png"
        audio_path = f"audio/{i:04d}.wav"
        Image.fromarray(degrade_image(digits.images[i], rng), "L").save(os.path.join(folder, image_path))
        _write_wav(os.path.join(folder, audio_path), tone_pair(digit, rng))
        motion_path = f"motion/{i:04d}.csv"
        motion = pen_motion(digit, extra)
        with open(os.path.join(folder, motion_path), "w") as f:
            f.write("x,y\n" + "".join(f"{x:.3f},{y:.3f}\n" for x, y in motion))
        pressure, ink = writer_cells(digit, extra)
        rows.append({"text": clue(digit, rng), "image": image_path, "audio": audio_path,
                     "motion": motion_path if extra.random() > 0.05 else "", "pressure": pressure, "ink": ink,
                     "label": str(digit)})
    return write_splits(folder, rows)


def write_splits(folder, rows, train=0.7, validation=0.15):
    """Writes `rows` in order as `train.csv`, `validation.csv` and `test.csv`; returns their paths."""
    n = len(rows)
    cut1, cut2 = int(train * n), int((train + validation) * n)
    paths = {}
    for name, part in (("train", rows[:cut1]), ("validation", rows[cut1:cut2]), ("test", rows[cut2:])):
        paths[name] = os.path.join(folder, f"{name}.csv")
        with open(paths[name], "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(part)
    return paths


def run_demo(workdir="mmkeras_demo", epochs=None, examples=None):
    """Runs the whole loop on the demo data and prints what a user wants to see."""
    import yaml

    from mmkeras.evaluation import alone_key
    from mmkeras.evaluation import format_ablation
    from mmkeras.export import load_saved_model
    from mmkeras.export import load_served_inputs
    from mmkeras.predict import padded
    from mmkeras.predict import predict
    from mmkeras.predict import served_value
    from mmkeras.task import MultimodalTask
    from mmkeras.training import train

    started = time.time()
    workdir = os.path.abspath(workdir)
    data_dir = os.path.join(workdir, "data")
    print(f"[1/5] writing the demo data set to {data_dir}")
    paths = write_demo_data(data_dir, examples=examples)
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEMO_CONFIG.items()}
    config["training"] = dict(config["training"])
    if epochs is not None:
        config["training"]["epochs"] = epochs
    config_path = os.path.join(workdir, "demo_config.yaml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)

    run_dir = os.path.join(workdir, "run")
    print(f"[2/5] training ({config_path} → {run_dir})")
    train(config_path, run_dir)

    print(f"[3/5] evaluating on {paths['test']}")
    task = MultimodalTask.from_preset(run_dir)
    preprocessor = task.preprocessor
    result = task.evaluate(paths["test"], output_dir=os.path.join(run_dir, "evaluation"))
    print(result["report_text"])
    print(format_ablation(result["ablation"]))

    export_base = os.path.join(workdir, "saved_models", "digits")
    print(f"[4/5] exporting a SavedModel for TF Serving to {export_base}")
    version_dir = task.export(export_base)

    print("[5/5] predicting the test manifest with the SavedModel, and one query with raw bytes")
    predictions_path = os.path.join(run_dir, "test_predictions.csv")
    predict(version_dir, paths["test"], output=predictions_path)
    with open(paths["test"], newline="") as f:
        first = next(csv.DictReader(f))
    restored, _ = load_saved_model(version_dir)
    import tensorflow as tf

    request = {}
    for name, entry in load_served_inputs(version_dir, restored).items():  # as a TF Serving client fills them
        value = served_value(entry, first[entry["column"]], data_dir)
        request[name] = tf.constant(padded([value]) if entry["list"] else [value])
    answer = restored.signatures["serving_default"](**request)
    ablation = result["ablation"]
    alone = {m: ablation[alone_key(ablation, m, preprocessor.modalities)]["accuracy"]
             for m in preprocessor.modalities}
    print()
    print("=" * 64)
    print(f"fused model accuracy (test, all modalities): {ablation['all']['accuracy']:.3f}")
    for m, accuracy in alone.items():
        print(f"  with {m} alone (others marked missing):   {accuracy:.3f}")
    print(f"SavedModel: {version_dir}")
    weights = ([round(float(w), 2) for w in answer["modality_weights"].numpy()[0]]
               if "modality_weights" in answer else None)
    print(f"query: {', '.join(f'{k}={v!r}' for k, v in first.items() if k != 'label')} (true label {first['label']})")
    print(f"  → label {answer['label'].numpy()[0].decode()}, p={answer['probabilities'].numpy()[0].max():.2f}; "
          + (f"fusion weights {dict(zip(preprocessor.modalities, weights))}" if weights else ""))
    if weights:
        print("  (how the attention fusion mixed this example's modalities, not how much each one matters:\n"
              "   the 'alone' accuracies above, and evaluate's ablation table, measure that)")
    # Modality values for every test row; Integrated Gradients (a gradient pass per step) for the queried one.
    explained = task.explain(paths["test"], output_dir=os.path.join(run_dir, "explanations"), inputs=False)
    queried = next(r for r in explained["rows"] if r["row"] == 1)  # the first test row, queried above
    shapley = {m: queried[f"shapley_{m}"] for m in preprocessor.modalities}
    top = max(shapley, key=lambda m: abs(shapley[m]))
    print(f"  the answer rests most on {top} (exact modality Shapley values, change in p: "
          + ", ".join(f"{m} {v:+.2f}" for m, v in shapley.items()) + ")")
    inside = task.explain(paths["test"], output_dir=os.path.join(run_dir, "explanations", "row1"), rows=[1])
    print("  inside it, " + "; ".join(f"{m}: {inside['rows'][0][f'top_{m}'].split(';')[0]}"
                                      for m in preprocessor.modalities if inside["rows"][0].get(f"top_{m}")))
    print(f"predictions for the test manifest: {predictions_path}")
    print(f"what every test prediction rests on: {explained['files']['per-example values']} "
          f"(plot: {explained['files']['summary plot']}; inside the queried one: "
          f"{os.path.join(inside['files']['attribution plots'], 'row1_label.png')})")
    print(f"done in {time.time() - started:.0f} s")
    print("=" * 64)
    return result
