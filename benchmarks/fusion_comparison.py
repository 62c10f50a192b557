"""Every fusion on several data sets and seeds, with the library's defaults, against single-modality
and two-modality reference models trained the same way.

Run: `.venv/bin/python benchmarks/fusion_comparison.py [--datasets digits tones shapes]
      [--seeds 1 2 3] [--epochs 30] [--output DIR]`
     `... --train T.csv --validation V.csv --test X.csv` for your own data (one data set).

Every model is `mmkeras train` with the defaults (only the modality sizes of `datasets.py`, the
fusion type and the seed are set), so the table says what a user gets. Reported per data set
and fusion, as mean ± standard deviation over the seeds: test accuracy with all modalities and
with each one marked missing. The four targets checked at the end, on every data set:
1. fused (attention, the default) at least 8 points above the best single-modality model;
2. every modality whose single-modality model reaches twice chance costs at least 3 points when
   marked missing (no collapse onto one modality);
3. attention within 2 points of the best fusion;
4. with one modality missing, within 5 points of the model trained without it.
Writes `fusion_comparison.md` and `fusion_comparison.json`.
"""

import argparse
import copy
import itertools
import json
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

import mmkeras  # noqa: E402
from datasets import DATASETS  # noqa: E402
from datasets import MODALITIES  # noqa: E402
from mmkeras.evaluation import collect  # noqa: E402
from mmkeras.evaluation import mark_absent  # noqa: E402
from mmkeras.training import train  # noqa: E402

FUSION_OPTIONS = {"late": {}}


def run_one(config, run_dir, test_features, test_labels):
    keras.utils.set_random_seed(config["training"]["seed"])
    start = time.perf_counter()
    model, _, history = train(config, run_dir)
    modalities = list(config["modalities"])
    features = {k: v for k, v in test_features.items() if k.replace("_present", "") in modalities}

    def accuracy(missing=()):
        x = mark_absent(features, missing) if missing else features
        return float((model.predict(x, verbose=0)["label"].argmax(-1) == test_labels).mean())

    row = {"all": accuracy(), "epochs": len(history["loss"]), "seconds": time.perf_counter() - start}
    if len(modalities) > 1:
        for m in modalities:
            row[f"without_{m}"] = accuracy([m])
    return row


def _mean(rows, key):
    values = [r[key] for r in rows]
    return float(np.mean(values)), float(np.std(values))


def compare(name, paths, seeds, epochs, workdir, fusions):
    modalities = list(MODALITIES)
    base = {"data": {"train": paths["train"], "validation": paths["validation"]},
            "modalities": copy.deepcopy(MODALITIES),
            "training": {"epochs": epochs, "verbose": 0, "tensorboard": False, "backup": False, "checkpoint": False}}
    preprocessor = mmkeras.Preprocessor(MODALITIES)
    mmkeras.adapt_preprocessor(preprocessor, paths["train"])
    test_features, test_labels = collect(mmkeras.make_dataset(paths["test"], preprocessor, batch_size=64))
    classes = len(preprocessor.label_names)
    result = {"fusions": {}, "references": {}, "classes": classes, "test_examples": int(len(test_labels))}
    for fusion in fusions:
        rows = []
        for seed in seeds:
            config = copy.deepcopy(base)
            config["fusion"] = {"type": fusion, **FUSION_OPTIONS.get(fusion, {})}
            config["training"]["seed"] = seed
            rows.append(run_one(config, os.path.join(workdir, f"{name}-{fusion}-{seed}"), test_features, test_labels))
            print(name, fusion, seed, json.dumps(rows[-1]), flush=True)
        result["fusions"][fusion] = rows
    for size in (len(modalities) - 1, 1):
        for kept in itertools.combinations(modalities, size):
            rows = []
            for seed in seeds:
                config = copy.deepcopy(base)
                config["modalities"] = {m: MODALITIES[m] for m in kept}
                config["training"]["seed"] = seed
                key = "+".join(kept)
                rows.append(run_one(config, os.path.join(workdir, f"{name}-only-{key}-{seed}"), test_features,
                                    test_labels))
                print(name, "only", key, seed, json.dumps(rows[-1]), flush=True)
            result["references"]["+".join(kept)] = rows
    return result


def table(name, result, modalities):
    lines = [f"### {name} ({result['classes']} classes, {result['test_examples']} test examples)", "",
             "| model | all | " + " | ".join(f"no {m}" for m in modalities) + " |",
             "|---" * (2 + len(modalities)) + "|"]
    for fusion, rows in result["fusions"].items():
        cells = [_fmt(*_mean(rows, "all"))] + [_fmt(*_mean(rows, f"without_{m}")) for m in modalities]
        lines.append(f"| {fusion} | " + " | ".join(cells) + " |")
    for kept, rows in result["references"].items():
        lines.append(f"| trained on {kept.replace('+', ' + ')} only | {_fmt(*_mean(rows, 'all'))} |"
                     + " |" * len(modalities))
    return lines


def _fmt(mean, std):
    return f"{mean:.3f} ± {std:.3f}"


def check_targets(name, result, modalities, default="attention"):
    """The issue's four targets on one data set, as (description, passed) pairs."""
    chance = 1.0 / result["classes"]
    singles = {m: _mean(result["references"][m], "all")[0] for m in modalities}
    best_single = max(singles.values())
    fused = {f: _mean(rows, "all")[0] for f, rows in result["fusions"].items()}
    attention = result["fusions"][default]
    att_all = fused[default]
    checks = [(f"fused {att_all:.3f} vs best single-modality {best_single:.3f}: "
               f"{100 * (att_all - best_single):+.1f} points (target >= +8)", att_all - best_single >= 0.08)]
    for m in modalities:
        if singles[m] >= 2 * chance:
            drop = att_all - _mean(attention, f"without_{m}")[0]
            checks.append((f"removing {m} (alone {singles[m]:.3f}) costs {100 * drop:.1f} points (target >= 3)",
                           drop >= 0.03))
    best = max(fused.values())
    checks.append((f"attention {att_all:.3f} vs best fusion {best:.3f} ({max(fused, key=fused.get)}): "
                   f"{100 * (att_all - best):+.1f} points (target >= -2)", att_all - best >= -0.02))
    for m in modalities:
        pair = "+".join(o for o in modalities if o != m)
        reference = _mean(result["references"][pair], "all")[0]
        missing = _mean(attention, f"without_{m}")[0]
        checks.append((f"{m} missing: {missing:.3f} vs trained without it {reference:.3f}: "
                       f"{100 * (missing - reference):+.1f} points (target >= -5)", missing - reference >= -0.05))
    return [(f"{name}: {text}", ok) for text, ok in checks]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=sorted(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fusions", nargs="+", default=list(mmkeras.FUSIONS), choices=sorted(mmkeras.FUSIONS))
    parser.add_argument("--train")
    parser.add_argument("--validation")
    parser.add_argument("--test")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="mmkeras-fusions-")
    output = args.output or workdir
    os.makedirs(output, exist_ok=True)
    if args.train:
        sources = {"yours": {"train": args.train, "validation": args.validation, "test": args.test}}
    else:
        sources = {name: DATASETS[name](os.path.join(workdir, "data", name)) for name in args.datasets}
    modalities = list(MODALITIES)
    results, lines, checks = {}, [], []
    for name, paths in sources.items():
        results[name] = compare(name, paths, args.seeds, args.epochs, workdir, args.fusions)
        lines += table(name, results[name], modalities) + [""]
        if "attention" in args.fusions:
            checks += check_targets(name, results[name], modalities)
        # Written after every data set, so a long run that is stopped keeps what it measured.
        text = "\n".join(lines + [f"- {'PASS' if ok else 'MISS'}: {text}" for text, ok in checks])
        with open(os.path.join(output, "fusion_comparison.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(output, "fusion_comparison.json"), "w") as f:
            json.dump({"seeds": args.seeds, "epochs": args.epochs, "results": results}, f, indent=1)
    print(text)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
