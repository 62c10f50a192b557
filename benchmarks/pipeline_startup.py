"""Time to a first batch: building the `tf.data` pipeline of the demo's five modality kinds and
starting its iterator, with the pipeline's functions traced as written (the package's way) and
with AutoGraph's source rewrite (TensorFlow's default for `Dataset.map`), in the same process.

Run: `.venv/bin/python benchmarks/pipeline_startup.py [--repeats 3]`

Each way runs in its own fresh process, as a `mmkeras train` or `predict` command does: the first
pipeline there pays AutoGraph's conversion of every decoding function, later ones in the same
process reuse the converted code. Prints the first pipeline's seconds and the median of the
`--repeats` pipelines built after it, with the ratio to the AutoGraph baseline.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import tensorflow as tf

from mmkeras import recipe
from mmkeras.config import resolve_config
from mmkeras.data import dataset as dataset_lib
from mmkeras.demo import DEMO_CONFIG
from mmkeras.demo import write_demo_data


def _autograph(fn):
    return fn  # Dataset.map converts a plain function with AutoGraph


def _one(config, preprocessor, manifest, wrap):
    dataset_lib._graph, saved = wrap, dataset_lib._graph
    try:
        start = time.perf_counter()
        ds = dataset_lib.make_dataset(manifest, preprocessor, batch_size=config["training"]["batch_size"],
                                      training=True, seed=0)
        built = time.perf_counter()
        next(iter(ds))
        first = time.perf_counter()
    finally:
        dataset_lib._graph = saved
    return built - start, first - built


WAYS = {"AutoGraph (TensorFlow's default)": "autograph", "traced as written (mmkeras)": "as_written"}


def _child(way, repeats):
    folder = tempfile.mkdtemp(prefix="pipeline_startup_")
    paths = write_demo_data(folder, examples=60)
    config = resolve_config({**DEMO_CONFIG, "data": {"train": paths["train"]}})
    preprocessor = recipe.fitted_preprocessor(config, paths["train"])
    wrap = _autograph if way == "autograph" else dataset_lib._graph
    runs = [_one(config, preprocessor, paths["train"], wrap) for _ in range(repeats + 1)]
    kinds = sorted({spec.kind for spec in preprocessor.specs.values()})
    print(json.dumps({"kinds": kinds, "first": runs[0], "later": runs[1:]}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--way", choices=sorted(WAYS.values()), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.way:
        return _child(args.way, args.repeats)
    results = {}
    for name, way in WAYS.items():
        child = subprocess.run([sys.executable, __file__, "--way", way, "--repeats", str(args.repeats)],
                               capture_output=True, text=True, check=True)
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
    base = results["AutoGraph (TensorFlow's default)"]
    print(f"tf.data pipeline of the demo's kinds ({', '.join(base['kinds'])}), TensorFlow {tf.__version__}, "
          f"a fresh process per way; later = median of {args.repeats}")
    for name, result in results.items():
        cells = []
        for label, pair, ref in (("first", result["first"], base["first"]),
                                 ("later", [statistics.median(v) for v in zip(*result["later"])],
                                  [statistics.median(v) for v in zip(*base["later"])])):
            total, ref_total = sum(pair), sum(ref)
            cells.append(f"{label}: build {pair[0]:5.2f} s + first batch {pair[1]:5.2f} s = {total:5.2f} s "
                         f"({total / ref_total:.2f}x)")
        print(f"{name:34s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
