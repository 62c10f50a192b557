"""Do the attention weights drop when a modality is corrupted? The default attention (trust gate
trained on corrupted inputs) against the same fusion with `corruption: 0`, on several data sets
and seeds.

Run: `.venv/bin/python benchmarks/attention_reliability.py [--datasets digits tones]
      [--seeds 1 2] [--jobs 2] [--output DIR]`

Every model is `mmkeras train` with the library's defaults (the modality sizes of `datasets.py`,
the seed, and for the baseline `fusion.corruption: 0`), then `mmkeras.evaluate` on the test
split. Reported as the mean over the seeds: test accuracy, and each modality's mean attention
weight with clean inputs and under each of `evaluate`'s corruptions (image noise σ 0.1 and 0.3
and occlusion, audio noise at 20/10/0 dB SNR, half the text tokens dropped), with the change
of the corrupted modality's own weight. Writes `attention_reliability.md` and `.json`.
"""

import argparse
import concurrent.futures
import copy
import json
import multiprocessing
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from datasets import DATASETS  # noqa: E402
from datasets import MODALITIES  # noqa: E402
from fusion_comparison import _worker_init  # noqa: E402

VARIANTS = {"default (corruption 0.15)": {}, "corruption 0": {"corruption": 0.0}}


def _task(job):
    import keras

    from mmkeras.evaluation import evaluate
    from mmkeras import train

    keras.utils.set_random_seed(job["config"]["training"]["seed"])
    model, preprocessor, _ = train(job["config"], job["run_dir"])
    result = evaluate(model, preprocessor, job["test"])
    row = {"accuracy": result["ablation"]["all"]["accuracy"],
           "robustness": {k: v["accuracy"] for k, v in result["robustness"].items()},
           "weights": result["modality_weights_under_corruption"]}
    print(job["dataset"], job["variant"], job["config"]["training"]["seed"], json.dumps(row), flush=True)
    return row


def plan_runs(name, paths, seeds, workdir):
    jobs = []
    for variant, options in VARIANTS.items():
        for seed in seeds:
            config = {"data": {"train": paths["train"], "validation": paths["validation"]},
                      "modalities": copy.deepcopy(MODALITIES),
                      "fusion": {"type": "attention", **options},
                      "training": {"verbose": 0, "tensorboard": False, "backup": False, "checkpoint": False,
                                   "seed": seed}}
            jobs.append({"dataset": name, "variant": variant, "config": config, "test": paths["test"],
                         "run_dir": os.path.join(workdir, f"{name}-{len(jobs)}")})
    return jobs


def table(name, variant, rows):
    """Markdown lines: accuracy, then per condition the mean weights and the corrupted modality's change."""
    modalities = list(rows[0]["weights"]["all"])
    clean = {m: np.mean([r["weights"]["all"][m] for r in rows]) for m in modalities}
    lines = [f"#### {name}, {variant}: accuracy {np.mean([r['accuracy'] for r in rows]):.3f} "
             f"({len(rows)} seeds)", "",
             "| inputs | accuracy | " + " | ".join(f"{m} weight" for m in modalities) + " | change of the corrupted one |",
             "|---" * (3 + len(modalities)) + "|"]
    for condition in rows[0]["weights"]:
        weights = {m: np.mean([r["weights"][condition][m] for r in rows]) for m in modalities}
        accuracy = np.mean([r["robustness"].get(condition, r["accuracy"]) for r in rows])
        target = next((m for m in modalities if condition.startswith(f"{m}_")), None)
        change = f"{weights[target] - clean[target]:+.3f}" if target else ""
        lines.append(f"| {condition if condition != 'all' else 'clean'} | {accuracy:.3f} | "
                     + " | ".join(f"{weights[m]:.3f}" for m in modalities) + f" | {change} |")
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "tones"], choices=sorted(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="training runs side by side, one process each")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="mmkeras-reliability-")
    output = args.output or workdir
    os.makedirs(output, exist_ok=True)
    jobs = []
    for name in args.datasets:
        jobs += plan_runs(name, DATASETS[name](os.path.join(workdir, "data", name)), args.seeds, workdir)
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_worker_init) as pool:
            rows = list(pool.map(_task, jobs))
    else:
        rows = [_task(job) for job in jobs]
    grouped = {}
    for job, row in zip(jobs, rows):
        grouped.setdefault((job["dataset"], job["variant"]), []).append(row)
    lines = []
    for (name, variant), group in grouped.items():
        lines += table(name, variant, group)
    text = "\n".join(lines)
    with open(os.path.join(output, "attention_reliability.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(output, "attention_reliability.json"), "w") as f:
        json.dump({"seeds": args.seeds, "results": {f"{d} / {v}": g for (d, v), g in grouped.items()}}, f, indent=1)
    print(text)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
