"""The frame of a seeded comparison benchmark (keyword_speech.py, motion_clips.py): threads, the
output folder, the data set, the runs, and the table written as Markdown and JSON.

No TensorFlow import at module level: `--data-only` runs without it.
"""

import csv
import json
import os
import tempfile
import time

import numpy as np


def seed_table(rows):
    """Markdown rows: per model, test accuracy mean ± std over the seeds, each seed's, epochs run."""
    lines = ["| model | test accuracy | per seed | epochs run |", "|---|---|---|---|"]
    for name, runs in rows.items():
        values = [r["all"] for r in runs]
        lines.append(f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} | "
                     f"{' / '.join(f'{v:.3f}' for v in values)} | {' / '.join(str(r['epochs']) for r in runs)} |")
    return lines


def setting(text):
    """A command-line `KEY=VALUE` → (key, the value read as YAML)."""
    import argparse

    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def add_training_option(parser):
    """`--training KEY=VALUE ...`: training settings of every mmkeras run."""
    parser.add_argument("--training", nargs="+", type=setting, default=[], metavar="KEY=VALUE",
                        help="training settings of every mmkeras run, e.g. ema=0.99 (table rows name them)")


def with_settings(name, settings):
    """A model's row (or run folder) name with the `KEY=VALUE` settings its runs had."""
    return name + "".join(f", {key}: {value}" for key, value in settings)


def run_folder(workdir, slug, seed, settings):
    """The folder of one mmkeras run: its model's slug, seed and `KEY=VALUE` settings, so that runs
    with other settings into the same `--output` do not collide."""
    return os.path.join(workdir, "_".join([f"{slug}-{seed}", *(f"{key}={value}" for key, value in settings)]))


def run_comparison(name, title, write_data, compare, args, sizes):
    """Writes the data into `args.output` (or a temporary folder), runs `compare(paths, runs_dir,
    log)` (→ model name → one result dict per seed) and writes `<name>.md` and `<name>.json`.

    `title` is the table's first words; `args` holds seeds, epochs and threads.
    """
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    started = time.perf_counter()
    output = args.output or tempfile.mkdtemp(prefix=f"mmkeras-{name}-")
    os.makedirs(output, exist_ok=True)
    paths = write_data(os.path.join(output, "data"))
    print(f"data set written in {time.perf_counter() - started:.0f} s: {paths}", flush=True)

    def log(model, seed, row):
        print(f"{time.perf_counter() - started:7.0f} s  {model}  seed {seed}  {json.dumps(row)}", flush=True)

    rows = compare(paths, os.path.join(output, "runs"), log)
    minutes = (time.perf_counter() - started) / 60
    lines = [f"{title} ({', '.join(f'{k} {v}' for k, v in sizes.items())}), seeds {args.seeds}, up to {args.epochs} "
             f"epochs, {args.threads or 'all'} thread(s), {minutes:.0f} min", ""] + seed_table(rows)
    print("\n".join(lines))
    with open(os.path.join(output, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(output, f"{name}.json"), "w") as f:
        json.dump({"seeds": args.seeds, "epochs": args.epochs, "sizes": sizes, "rows": rows}, f, indent=1)
    print(f"written to {output}")
    return rows


def write_balanced(folder, sizes, names, seed, example, extra_test=0):
    """A seeded data set, every split balanced over the classes `names`: `example(i, name, rng)`
    writes row i's files under `folder` and returns its manifest row. Returns the manifests' paths
    (`sizes`: split → rows).

    `extra_test` more test rows come from a second random stream seeded by `seed` and follow the
    others' numbering, so the rows that `sizes` asks for stay those of a run without them: a larger
    test split keeps the training and validation data that earlier results were trained on."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([rng.permutation(np.arange(size) % len(names)) for size in sizes.values()])
    rows = [example(i, names[label], rng) for i, label in enumerate(labels)]
    if extra_test:
        assert list(sizes)[-1] == "test", "the extra rows follow the test split, the last of `sizes`"
        more = np.random.default_rng([seed, 1])
        extra = more.permutation(np.arange(extra_test) % len(names))
        rows += [example(len(rows) + i, names[label], more) for i, label in enumerate(extra)]
        sizes = {**sizes, "test": sizes["test"] + extra_test}
    return write_splits(folder, rows, sizes)


def write_splits(folder, rows, sizes):
    """`rows` in order as one CSV manifest per split (`sizes`: split → rows); returns their paths."""
    paths, begin = {}, 0
    for split, size in sizes.items():
        paths[split] = os.path.join(folder, f"{split}.csv")
        with open(paths[split], "w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows[begin : begin + size])
        begin += size
    return paths
