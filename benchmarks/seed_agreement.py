"""How much of a spread over seeds is the test split's size? (issue 31)

Two runs of the same settings that are equally good still get different test accuracies when
they err on different examples: with n test examples of which d are right in one run only, the
difference of their accuracies has a standard deviation of about sqrt(d) / n from the draw of
the examples alone. This script loads finished runs of one data set, predicts their test split
and prints, per pair, the examples right in one run only and that standard deviation, in points.

Run: `python benchmarks/seed_agreement.py RUN [RUN ...] [--test CSV]`, where each RUN is a run
folder of `mmkeras train` on the same data (`defaults_table.py` keeps them under DIR/runs);
without `--test` each run reads the `test.csv` beside its own training manifest, and the runs must
have the same one.
"""

import argparse
import itertools
import os

import numpy as np


def training_manifest(config):
    """The training manifest the run's saved config names, or None where it keeps none."""
    return (config or {}).get("data", {}).get("train")


def default_test_manifest(train):
    """The `test.csv` that `defaults_table.py`'s data sets keep beside their training manifest."""
    return os.path.join(os.path.dirname(train), "test.csv")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--test", default=None, help="test manifest (default: test.csv beside the training one)")
    args = parser.parse_args()

    import mmkeras
    from mmkeras.evaluation import collect

    correct = []
    for run in args.runs:
        model, preprocessor, config = mmkeras.load_run(run)
        train = training_manifest(config)
        if not args.test and not train:
            parser.error(f"{run} keeps no config naming its training manifest: pass --test")
        test = args.test or default_test_manifest(train)
        features, labels = collect(mmkeras.make_dataset(test, preprocessor, batch_size=64))
        predicted = model.predict(features, verbose=0)["label"].argmax(-1)
        if correct and len(labels) != len(correct[0]):
            parser.error(f"{run} read {len(labels)} test examples from {test}, the first run {len(correct[0])}: "
                         "pass --test")
        correct.append(predicted == labels)
        print(f"{os.path.basename(os.path.normpath(run))}: {np.mean(correct[-1]):.3f} on {len(labels)} test examples")
    right = np.array(correct)
    print(f"right in every run {int(right.all(0).sum())}, in none {int((~right).all(0).sum())}, "
          f"in some {int((right.any(0) & ~right.all(0)).sum())}")
    for a, b, only, difference, draw in pairs(right):
        print(f"runs {a + 1} and {b + 1}: {only} examples right in one only; accuracy {100 * difference:+.1f} "
              f"points, of which the examples' draw alone gives about ± {100 * draw:.1f}")


def pairs(right):
    """Per pair of runs (rows of the boolean `right`, runs x test examples): (a, b, examples right
    in one only, accuracy of a minus b, the standard deviation of that difference which the
    examples' draw alone gives)."""
    n = right.shape[1]
    return [(a, b, int((right[a] != right[b]).sum()), float(right[a].mean() - right[b].mean()),
             float(np.sqrt((right[a] != right[b]).sum()) / n))
            for a, b in itertools.combinations(range(len(right)), 2)]


if __name__ == "__main__":
    main()
