"""Compare fusion types, with and without modality dropout, on the demo data or your manifests.

Run: `.venv/bin/python benchmarks/fusion_comparison.py [--epochs 15] [--examples 1797] [--output DIR]`
     `... --train T.csv --validation V.csv --test X.csv --config C.yaml` for your own data.

Every model gets the same seeds, epochs and early stopping. Reported per fusion: test accuracy
with all modalities and with each one missing, parameters, seconds per epoch, and serving
latency (SavedModel, one request of raw bytes). References trained on the same budget: a model
on each pair of modalities (what "one missing" should approach) and on each modality alone.
Writes `fusion_comparison.md`, `fusion_comparison.json` and `fusion_comparison.png`.
"""

import argparse
import copy
import json
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402

import mmkeras  # noqa: E402
from mmkeras.demo import DEMO_CONFIG  # noqa: E402
from mmkeras.demo import write_demo_data  # noqa: E402
from mmkeras.evaluation import collect  # noqa: E402
from mmkeras.evaluation import mark_absent  # noqa: E402
from mmkeras.training import train  # noqa: E402

FUSION_OPTIONS = {"transformer": {"num_heads": 4}, "late": {"mode": "learned"}}


def accuracy(model, features, labels, missing=()):
    x = mark_absent(features, missing) if missing else features
    return float((model.predict(x, verbose=0)["label"].argmax(-1) == labels).mean())


def latency_ms(model, preprocessor, raw, folder):
    path = mmkeras.export_saved_model(model, preprocessor, folder)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    request = {k: tf.constant(v[:1]) for k, v in raw.items()}
    for _ in range(3):
        serve(**request)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        serve(**request)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def run_one(name, config, workdir, test_features, test_labels, raw=None):
    keras.utils.set_random_seed(config["training"]["seed"])
    run_dir = os.path.join(workdir, name)
    start = time.perf_counter()
    model, preprocessor, history = train(config, run_dir)
    seconds = time.perf_counter() - start
    modalities = list(config["modalities"])
    features = {k: v for k, v in test_features.items() if k.replace("_present", "") in modalities}
    row = {"name": name, "params": int(model.count_params()), "epochs": len(history["loss"]),
           "seconds_per_epoch": seconds / max(1, len(history["loss"])),
           "all": accuracy(model, features, test_labels)}
    for m in modalities:
        if len(modalities) > 1:
            row[f"without_{m}"] = accuracy(model, features, test_labels, [m])
    if raw is not None:
        row["latency_ms"] = latency_ms(model, preprocessor, raw, os.path.join(workdir, "exports", name))
    print(json.dumps(row))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--examples", type=int, default=None, help="demo examples to use (default: all 1797)")
    parser.add_argument("--dropout", type=float, default=0.25, help="modality dropout rate of the dropout runs")
    parser.add_argument("--train")
    parser.add_argument("--validation")
    parser.add_argument("--test")
    parser.add_argument("--config", help="YAML whose modalities/model/training blocks are used")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="mmkeras-fusions-")
    output = args.output or workdir
    os.makedirs(output, exist_ok=True)
    base = copy.deepcopy(DEMO_CONFIG)
    if args.config:
        with open(args.config) as f:
            base.update({k: v for k, v in yaml.safe_load(f).items() if k in ("modalities", "model", "training")})
    if args.train:
        paths = {"train": args.train, "validation": args.validation, "test": args.test}
    else:
        paths = write_demo_data(os.path.join(workdir, "data"), examples=args.examples)
    base["data"] = {"train": paths["train"], "validation": paths["validation"]}
    base["training"].update({"epochs": args.epochs, "verbose": 0, "tensorboard": False, "backup": False})
    modalities = list(base["modalities"])

    preprocessor = mmkeras.Preprocessor(base["modalities"])
    mmkeras.adapt_preprocessor(preprocessor, paths["train"])
    test_features, test_labels = collect(mmkeras.make_dataset(paths["test"], preprocessor, batch_size=64))
    manifest = mmkeras.read_manifest(paths["test"])
    raw = {m: [(open(os.path.join(manifest.base_dir, r[m]), "rb").read() if m != "text" else r[m].encode())
               for r in manifest.rows[:1]] for m in modalities}

    rows = []
    for fusion in mmkeras.FUSIONS:
        for dropout in (0.0, args.dropout):
            config = copy.deepcopy(base)
            config["fusion"] = {"type": fusion, "modality_dropout": dropout, **FUSION_OPTIONS.get(fusion, {})}
            if fusion == "late":
                config["fusion"].pop("units", None)
            else:
                config["fusion"]["units"] = base["fusion"].get("units", 64)
            row = run_one(f"{fusion}{'+md' if dropout else ''}", config, workdir, test_features, test_labels, raw)
            row.update({"fusion": fusion, "modality_dropout": dropout})
            rows.append(row)
    references = {}
    for size in (len(modalities) - 1, 1):
        for kept in __import__("itertools").combinations(modalities, size):
            config = copy.deepcopy(base)
            config["modalities"] = {m: base["modalities"][m] for m in kept}
            config["fusion"] = {"type": "attention", "units": 64, "modality_dropout": 0.0}
            references["+".join(kept)] = run_one("only_" + "+".join(kept), config, workdir, test_features, test_labels)["all"]

    lines = [f"| fusion | modality dropout | all | " + " | ".join(f"no {m}" for m in modalities)
             + " | params | s/epoch | latency (ms) |",
             "|---" * (6 + len(modalities)) + "|"]
    for r in rows:
        lines.append(f"| {r['fusion']} | {r['modality_dropout']:.2f} | {r['all']:.3f} | "
                     + " | ".join(f"{r[f'without_{m}']:.3f}" for m in modalities)
                     + f" | {r['params']:,} | {r['seconds_per_epoch']:.1f} | {r['latency_ms']:.1f} |")
    lines.append("")
    lines.append("| reference model trained on | test accuracy |")
    lines.append("|---|---|")
    for kept, acc in references.items():
        lines.append(f"| {kept.replace('+', ' + ')} | {acc:.3f} |")
    best_single = max(acc for kept, acc in references.items() if "+" not in kept)
    lines.append("")
    checks = []
    for r in rows:
        if r["modality_dropout"]:
            gaps = {m: references["+".join(o for o in modalities if o != m)] - r[f"without_{m}"] for m in modalities}
            worst = max(gaps.values())
            checks.append(f"- {r['fusion']} + modality dropout: worst gap to the model trained without that modality "
                          f"{100 * worst:+.1f} points ({'within' if worst <= 0.05 else 'NOT within'} 5); "
                          f"all modalities {r['all']:.3f} vs best single {best_single:.3f} "
                          f"({'beats' if r['all'] > best_single else 'does NOT beat'} it)")
    lines.extend(checks)
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(output, "fusion_comparison.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(output, "fusion_comparison.json"), "w") as f:
        json.dump({"fusions": rows, "references": references}, f, indent=1)
    _plot(rows, modalities, os.path.join(output, "fusion_comparison.png"))
    print(f"written to {output}")


def _plot(rows, modalities, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["all"] + [f"without_{m}" for m in modalities]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(columns)
    for j, column in enumerate(columns):
        ax.bar(np.arange(len(rows)) + j * width, [r[column] for r in rows], width, label=column.replace("_", " "))
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [r["name"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
