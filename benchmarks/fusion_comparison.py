"""Every fusion on several data sets and seeds, with the library's defaults, against single-modality
and two-modality reference models trained the same way.

Run: `.venv/bin/python benchmarks/fusion_comparison.py [--datasets digits tones shapes]
      [--seeds 1 2 3] [--epochs E] [--jobs 2] [--output DIR]`
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
import concurrent.futures
import copy
import itertools
import json
import multiprocessing
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
from mmkeras import train  # noqa: E402

FUSION_OPTIONS = {"late": {}}


def run_one(config, run_dir, test_features, test_labels):
    keras.utils.set_random_seed(config["training"]["seed"])
    start = time.perf_counter()
    model, _, history = train(config, run_dir)
    row = score(model, list(config["modalities"]), test_features, test_labels)
    return {**row, "epochs": len(history["loss"]), "seconds": time.perf_counter() - start}


def score(model, modalities, test_features, test_labels):
    """Test accuracy of a trained model with every modality, and with each of several marked missing."""
    features = {k: v for k, v in test_features.items() if k.replace("_present", "") in modalities}

    def accuracy(missing=()):
        x = mark_absent(features, missing) if missing else features
        return float((model.predict(x, verbose=0)["label"].argmax(-1) == test_labels).mean())

    row = {"all": accuracy()}
    if len(modalities) > 1:
        for m in modalities:
            row[f"without_{m}"] = accuracy([m])
    return row


def _mean(rows, key):
    values = [r[key] for r in rows]
    return float(np.mean(values)), float(np.std(values))


_TEST_SETS = {}


def _test_set(test_path, train_path):
    """The test split's decoded features and labels (made once per process)."""
    if test_path not in _TEST_SETS:
        preprocessor = mmkeras.Preprocessor(MODALITIES)
        mmkeras.adapt_preprocessor(preprocessor, train_path)
        features, labels = collect(mmkeras.make_dataset(test_path, preprocessor, batch_size=64))
        _TEST_SETS[test_path] = (features, labels, len(preprocessor.label_names))
    return _TEST_SETS[test_path]


def _task(job):
    """One training run of `compare`'s plan; runs in this process or in a worker process."""
    features, labels, _ = _test_set(job["test"], job["config"]["data"]["train"])
    row = run_one(job["config"], job["run_dir"], features, labels)
    print(job["name"], job["group"], job["key"], job["config"]["training"]["seed"], json.dumps(row), flush=True)
    return row


def _worker_init():
    # Two small models side by side use two cores better than one model using both.
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def compare(name, paths, seeds, epochs, workdir, fusions, jobs=1):
    modalities = list(MODALITIES)
    base = {"data": {"train": paths["train"], "validation": paths["validation"]},
            "modalities": copy.deepcopy(MODALITIES),
            "training": {"verbose": 0, "tensorboard": False, "backup": False, "checkpoint": False}}
    if epochs:
        base["training"]["epochs"] = epochs
    _, test_labels, classes = _test_set(paths["test"], paths["train"])
    plan = []
    for fusion in fusions:
        for seed in seeds:
            config = copy.deepcopy(base)
            config["fusion"] = {"type": fusion, **FUSION_OPTIONS.get(fusion, {})}
            config["training"]["seed"] = seed
            plan.append({"group": "fusions", "key": fusion, "config": config,
                         "run_dir": os.path.join(workdir, f"{name}-{fusion}-{seed}")})
    for size in (len(modalities) - 1, 1):
        for kept in itertools.combinations(modalities, size):
            for seed in seeds:
                config = copy.deepcopy(base)
                config["modalities"] = {m: MODALITIES[m] for m in kept}
                config["training"]["seed"] = seed
                key = "+".join(kept)
                plan.append({"group": "references", "key": key, "config": config,
                             "run_dir": os.path.join(workdir, f"{name}-only-{key}-{seed}")})
    for job in plan:
        job.update(name=name, test=paths["test"])
    if jobs > 1:
        context = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init) as pool:
            rows = list(pool.map(_task, plan))
    else:
        rows = [_task(job) for job in plan]
    result = {"fusions": {}, "references": {}, "classes": classes, "test_examples": int(len(test_labels))}
    for job, row in zip(plan, rows):
        result[job["group"]].setdefault(job["key"], []).append(row)
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
    parser.add_argument("--epochs", type=int, default=None, help="default: the library's (early stopping ends most runs sooner)")
    parser.add_argument("--jobs", type=int, default=1, help="training runs side by side, one process each")
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
        results[name] = compare(name, paths, args.seeds, args.epochs, workdir, args.fusions, args.jobs)
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
