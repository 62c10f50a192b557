"""How good is each branch's vector inside a trained model? A linear probe per encoder (issue 31)

A fused model can score below one of its modalities trained alone for two different reasons: the
branch learned a weaker vector inside the fused model, or the layers after the fusion use a good
vector badly. This script tells them apart. For every finished run given, and every modality
encoder in it, it computes the encoder's output vectors for the training and test manifests,
fits a logistic regression on the training vectors (standardised; examples where the modality is
absent are left out) and prints its test accuracy. A branch whose probe matches the same encoder
trained alone learned as well inside the fused model.

Run: `python benchmarks/branch_probe.py RUN [RUN ...] [--train CSV --test CSV] [--modalities M ...]`
(`--modalities` takes every name after it: put it last), where each RUN is a run folder of
`mmkeras train` (`defaults_table.py` keeps them under DIR/runs); without `--train`/`--test` each
run reads the manifest its config names for training, and the `test.csv` beside it.
"""

import argparse
import os

import numpy as np

from seed_agreement import default_test_manifest
from seed_agreement import training_manifest


def probe_accuracy(train_vectors, train_labels, test_vectors, test_labels):
    """Test accuracy of a logistic regression fitted on standardised training vectors."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_vectors)
    classifier = LogisticRegression(max_iter=5000).fit(scaler.transform(train_vectors), train_labels)
    return float(classifier.score(scaler.transform(test_vectors), test_labels))


def encoder_vectors(model, modality, features):
    """`(vectors, present)`: the `<modality>_encoder` sub-model's output for every example, and
    which examples have the modality."""
    from mmkeras import constants

    encoder = model.get_layer(f"{modality}_encoder")  # every kind's encoder reads the modality's one input
    vectors = np.asarray(encoder.predict(features[modality], batch_size=64, verbose=0))
    present = features[constants.presence_name(modality)].reshape(-1) > 0
    return vectors.reshape(len(vectors), -1), present


def probe_run(run, train=None, test=None, modalities=None):
    """{modality: (test accuracy of its probe, training examples, test examples)} for one run."""
    import mmkeras
    from mmkeras.evaluation import collect

    model, preprocessor, config = mmkeras.load_run(run)
    train = train or training_manifest(config)
    if not train:
        raise SystemExit(f"{run} keeps no config naming its training manifest: pass --train and --test")
    test = test or default_test_manifest(train)
    splits = {name: collect(mmkeras.make_dataset(path, preprocessor, batch_size=64))
              for name, path in (("train", train), ("test", test))}
    found = {}
    for modality in modalities or preprocessor.modalities:
        if modality not in preprocessor.modalities:
            raise SystemExit(f"{run} has no modality {modality!r}; it has {preprocessor.modalities}")
        x_train, p_train = encoder_vectors(model, modality, splits["train"][0])
        x_test, p_test = encoder_vectors(model, modality, splits["test"][0])
        y_train, y_test = splits["train"][1][p_train], splits["test"][1][p_test]
        found[modality] = (probe_accuracy(x_train[p_train], y_train, x_test[p_test], y_test), len(y_train), len(y_test))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--train", default=None, help="training manifest (default: the run's own)")
    parser.add_argument("--test", default=None, help="test manifest (default: test.csv beside the training one)")
    parser.add_argument("--modalities", nargs="+", default=None, help="default: every modality of each run")
    args = parser.parse_args()
    print("| run | modality | probe test accuracy | train / test examples |")
    print("| --- | --- | --- | --- |")
    for run in args.runs:
        for modality, (accuracy, n_train, n_test) in probe_run(run, args.train, args.test, args.modalities).items():
            print(f"| {os.path.basename(os.path.normpath(run))} | {modality} | {accuracy:.3f} | {n_train} / {n_test} |",
                  flush=True)


if __name__ == "__main__":
    main()
