"""Teacher, student from scratch and distilled student on the demo data, in one run.

Run: `.venv/bin/python benchmarks/distillation.py [--seeds 0 1 2] [--epochs 30] [--temperature 4 --alpha 0.7]`.

The teacher is the demo's config (`mmkeras demo`). The student keeps every modality with
narrower encoders and fusion (about a tenth of the parameters). "From scratch" trains it on the
labels with `mmkeras train`; "distilled" trains the same student with `mmkeras distill` from the
teacher (temperature and alpha below). Accuracy is on the demo's test split; mean and spread
over the seeds.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mmkeras.demo import DEMO_CONFIG  # noqa: E402
from mmkeras.demo import write_demo_data  # noqa: E402
from mmkeras.distillation import distill  # noqa: E402
from mmkeras.evaluation import evaluate  # noqa: E402
from mmkeras import load_run  # noqa: E402
from mmkeras import train  # noqa: E402

#: The student's encoder and fusion options, overlaid on the teacher's modalities.
STUDENT = {
    "text": {"embedding_dim": 8, "lstm_units": 4},
    "image": {"filters": [4, 8]},
    "audio": {"conv_filters": [8], "lstm_units": 8},
    "motion": {"conv_filters": [4], "lstm_units": 4},
    "writer": {"hidden_units": [4]},
}


def accuracy(run, test):
    model, pre, _ = load_run(run)
    return evaluate(model, pre, test)["ablation"]["all"]["accuracy"], model.count_params()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.7)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="mmkeras-distill-")
    paths = write_demo_data(os.path.join(workdir, "data"))
    base = {**DEMO_CONFIG, "data": {"train": paths["train"], "validation": paths["validation"]},
            "training": {**DEMO_CONFIG["training"], "epochs": args.epochs, "verbose": 0}}
    student_modalities = {name: {**options, **STUDENT.get(name, {})} for name, options in DEMO_CONFIG["modalities"].items()}
    student_fusion = {"type": "attention", "units": 16, "attention_units": 8}
    results = {"teacher": [], "student, from scratch": [], "student, distilled": []}
    params = {}
    for seed in args.seeds:
        training = {**base["training"], "seed": seed}
        folder = os.path.join(workdir, f"seed{seed}")
        train({**base, "training": training}, os.path.join(folder, "teacher"))
        train({**base, "modalities": student_modalities, "fusion": student_fusion, "model": {"hidden_units": 16},
               "training": training}, os.path.join(folder, "scratch"))
        distill(os.path.join(folder, "teacher"),
                {"modalities": {name: STUDENT.get(name, {}) for name in DEMO_CONFIG["modalities"]},
                 "fusion": student_fusion, "model": {"hidden_units": 16}, "training": training},
                os.path.join(folder, "distilled"), temperature=args.temperature, alpha=args.alpha)
        for name, run in (("teacher", "teacher"), ("student, from scratch", "scratch"),
                          ("student, distilled", "distilled")):
            score, params[name] = accuracy(os.path.join(folder, run), paths["test"])
            results[name].append(score)
            print(f"seed {seed}: {name:24s} test accuracy {score:.3f}", flush=True)
        keras.backend.clear_session()

    print(f"\ndemo data, {args.epochs} epochs at most (early stopping), seeds {args.seeds}, "
          f"T={args.temperature}, alpha={args.alpha}\n")
    print("| model | parameters | test accuracy, mean | spread (min-max) |")
    print("| --- | --- | --- | --- |")
    for name, scores in results.items():
        print(f"| {name} | {params[name]:,} | {np.mean(scores):.3f} | {min(scores):.3f}-{max(scores):.3f} |")


if __name__ == "__main__":
    main()
