"""How much can the sensor set's columns add to a trained sensor model? (issue 31)

Issue 31 asks the fused model for 5 points over the best single modality "where the modalities are
complementary". On `sensor_activity.py`'s set the sensor alone is strong, and how much the heart
rate can still add depends on the errors that sensor model makes. This script measures it.

The set's generator draws the heart rate from a normal distribution around the activity's mean
(sd 12), independently of the recording, and the placement independently of the activity. So the
best use of the columns that any fusion can make, given a sensor model's class probabilities, is
Bayes' rule: p(y | recording, heart rate) ∝ p(y | recording) · N(heart rate; mean of y, 12). An
empty heart rate leaves the probabilities as they are. The placement is left out: it says nothing
about the activity, only how to read the recording, which the sensor model does already.

The rule is exact only for calibrated probabilities. A trained model is usually overconfident, so
the script also reports the rule with the model's probabilities softened by a temperature chosen
on the validation split (the temperature with the lowest log loss of the combined probabilities).

Run: `python benchmarks/sensor_ceiling.py --data DIR --sensor RUN [RUN ...] [--fused RUN ...]`,
with the set's folder (`sensor_activity.py DIR`) and the run folders of sensor-alone models (and
optionally of fused models, whose test accuracy is printed beside for comparison). It calls
`mmkeras predict`, so `mmkeras` must be on PATH (the virtual environment's bin folder).
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sensor_activity import HEART_RATE_SD  # noqa: E402
from sensor_activity import MOVES  # noqa: E402

TEMPERATURES = np.exp(np.linspace(np.log(0.5), np.log(8.0), 41))


def predict(run, manifest):
    """(probabilities (rows, classes), class names) of `mmkeras predict` on a manifest."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "predictions.csv")
        subprocess.run(["mmkeras", "predict", "--model", run, "--data", manifest, "--output", out],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
    classes = [c[len("prob_"):] for c in rows[0] if c.startswith("prob_")]
    probabilities = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])
    return probabilities, classes


def manifest_columns(manifest):
    """(labels, heart rates with NaN where empty) of a manifest's rows."""
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    labels = [r["label"] for r in rows]
    heart = np.array([float(r["heart_rate"]) if r["heart_rate"].strip() else np.nan for r in rows])
    return labels, heart


def heart_rate_likelihood(heart, classes):
    """(rows, classes) likelihood of each row's heart rate under each activity; 1 where it is empty."""
    means = np.array([MOVES[c][2] for c in classes], dtype=float)
    z = (heart[:, None] - means[None, :]) / HEART_RATE_SD
    likelihood = np.exp(-0.5 * z ** 2)
    return np.where(np.isnan(heart)[:, None], 1.0, likelihood)


def combine(probabilities, likelihood, temperature=1.0):
    """Bayes' rule with the model's probabilities softened by `temperature` (1 leaves them as they are)."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature + np.log(np.clip(likelihood, 1e-300, None))
    logits -= logits.max(axis=1, keepdims=True)
    combined = np.exp(logits)
    return combined / combined.sum(axis=1, keepdims=True)


def accuracy(probabilities, labels, classes):
    return float(np.mean([classes[i] == label for i, label in zip(probabilities.argmax(axis=1), labels)]))


def log_loss(probabilities, labels, classes):
    index = [classes.index(label) for label in labels]
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(index)), index], 1e-12, None))))


def fitted_temperature(probabilities, likelihood, labels, classes):
    """The temperature whose combined probabilities have the lowest log loss on these rows."""
    losses = [log_loss(combine(probabilities, likelihood, t), labels, classes) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def confusions(probabilities, labels, classes, top=4):
    """The most frequent (true → predicted) errors, as text."""
    counts = {}
    for i, label in zip(probabilities.argmax(axis=1), labels):
        if classes[i] != label:
            counts[(label, classes[i])] = counts.get((label, classes[i]), 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{true} → {predicted} {n}" for (true, predicted), n in ranked)


def sensor_row(run, data, splits):
    """One sensor-alone run's figures; `splits`: {"test", "validation"} → manifest_columns."""
    (test_labels, test_heart), (val_labels, val_heart) = splits["test"], splits["validation"]
    test_p, classes = predict(run, os.path.join(data, "test.csv"))
    val_p, val_classes = predict(run, os.path.join(data, "validation.csv"))
    assert val_classes == classes, (val_classes, classes)
    temperature = fitted_temperature(val_p, heart_rate_likelihood(val_heart, classes), val_labels, classes)
    test_likelihood = heart_rate_likelihood(test_heart, classes)
    return {
        "run": run,
        "sensor": accuracy(test_p, test_labels, classes),
        "with heart rate": accuracy(combine(test_p, test_likelihood), test_labels, classes),
        "with heart rate, fitted temperature": accuracy(combine(test_p, test_likelihood, temperature),
                                                        test_labels, classes),
        "temperature": temperature,
        "sensor errors": confusions(test_p, test_labels, classes),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the sensor set's folder (train/validation/test.csv)")
    parser.add_argument("--sensor", nargs="+", required=True, help="run folders of sensor-alone models")
    parser.add_argument("--fused", nargs="*", default=[], help="run folders of fused models, for comparison")
    args = parser.parse_args(argv)
    splits = {split: manifest_columns(os.path.join(args.data, f"{split}.csv")) for split in ("test", "validation")}
    rows = [sensor_row(run, args.data, splits) for run in args.sensor]
    columns = ("sensor", "with heart rate", "with heart rate, fitted temperature")
    print("| sensor run | " + " | ".join(columns) + " | temperature | the sensor's most frequent errors |")
    print("| --- " * (len(columns) + 3) + "|")
    for row in rows:
        print(f"| {os.path.basename(row['run'].rstrip('/'))} | " + " | ".join(f"{row[c]:.3f}" for c in columns)
              + f" | {row['temperature']:.2f} | {row['sensor errors']} |")
    means = {c: float(np.mean([row[c] for row in rows])) for c in columns}
    print(f"| mean of {len(rows)} | " + " | ".join(f"{means[c]:.3f}" for c in columns) + " | | |")
    print(f"\nceiling of the columns' gain over the sensor alone: {100 * (means[columns[1]] - means['sensor']):+.1f} "
          f"points (calibrated as trained), {100 * (means[columns[2]] - means['sensor']):+.1f} (fitted temperature)")
    if args.fused:
        test_labels = splits["test"][0]
        fused = []
        for run in args.fused:
            p, classes = predict(run, os.path.join(args.data, "test.csv"))
            fused.append(accuracy(p, test_labels, classes))
            print(f"fused {os.path.basename(run.rstrip('/'))}: {fused[-1]:.3f}")
        print(f"fused mean of {len(fused)}: {np.mean(fused):.3f} "
              f"({100 * (np.mean(fused) - means['sensor']):+.1f} points over the sensor runs above)")


if __name__ == "__main__":
    main()
