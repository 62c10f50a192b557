"""Hyperparameter search with KerasTuner over a config's `tuning:` ranges (`mmkeras tune`).

Each trial builds the model from the config with its hyperparameters (fusion type, learning
rate, dropout, modality dropout, hidden units, and one multiplier of every encoder's widths) and
fits it on the same `tf.data` pipeline `mmkeras train` uses, with early stopping on the
objective. The data are read, checked and adapted once for all trials.

`output_dir` holds KerasTuner's project folder (`tuner/`: a search started again with the same
folder resumes, and trials already run are not run again), `best_config.yaml` (a config
`mmkeras train` takes, the best trial's values filled in) and `trials.csv` (one row per trial:
its values, score and status). Needs `pip install "mmkeras[tune]"` (keras-tuner).
"""

import copy
import csv
import os

import keras

from mmkeras import config as config_lib
from mmkeras import specs as specs_lib

#: Spec fields scaled by the `width` multiplier: lists of layer widths, and single widths.
WIDTH_LISTS = ("filters", "conv_filters", "hidden_units")
WIDTH_SUFFIXES = ("units", "_dim")
TUNER_DIR = "tuner"
BEST_CONFIG = "best_config.yaml"
TRIALS_FILE = "trials.csv"


def scaled_widths(name, options, factor):
    """A modality's options with every encoder width multiplied by `factor` (at least 1).

    Example:

    >>> scaled = scaled_widths("text", {"max_tokens": 100, "lstm_units": 16, "embedding_dim": 8}, 0.5)
    >>> scaled["lstm_units"], scaled["embedding_dim"], scaled["max_tokens"]
    (8, 4, 100)
    """
    spec = specs_lib.spec_to_dict(specs_lib.make_spec(name, options))
    out = dict(options)
    for key, value in spec.items():
        if key in WIDTH_LISTS and isinstance(value, list):
            out[key] = [max(1, round(v * factor)) for v in value]
        elif key.endswith(WIDTH_SUFFIXES) and isinstance(value, int) and not isinstance(value, bool):
            out[key] = max(1, round(value * factor))
    return out


def trial_config(config, values):
    """`config` (resolved) with one trial's values (a dict of the hyperparameters) filled in."""
    trial = copy.deepcopy(config)
    fusion = dict(config["fusion"])
    kept = fusion if values["fusion"] == fusion["type"] else {}  # a fusion's own options fit it alone
    trial["fusion"] = {**kept, "type": values["fusion"], "modality_dropout": values["modality_dropout"]}
    trial["model"]["dropout"] = values["dropout"]
    trial["model"]["hidden_units"] = values["hidden_units"]
    trial["training"]["learning_rate"] = values["learning_rate"]
    trial["modalities"] = {name: scaled_widths(name, options or {}, values["width"])
                           for name, options in config["modalities"].items()}
    return trial


def _values(hp, space):
    return {
        "fusion": hp.Choice("fusion", list(space["fusion"])),
        "learning_rate": hp.Float("learning_rate", *space["learning_rate"], sampling="log"),
        "dropout": hp.Float("dropout", *space["dropout"]),
        "modality_dropout": hp.Float("modality_dropout", *space["modality_dropout"]),
        "hidden_units": hp.Choice("hidden_units", list(space["hidden_units"])),
        "width": hp.Choice("width", [float(w) for w in space["width"]]),
    }


def tune(config, output_dir, trials=10, max_epochs=None, overwrite=False):
    """Searches the config's `tuning:` space; writes `best_config.yaml` and `trials.csv`.

    Args:
        config: dict or YAML path.
        output_dir: str. Folder for the search (resumed when it holds one).
        trials: int. Trials in all, counting those of a resumed search (Bayesian and random; Hyperband
            sets its own number from `max_epochs`).
        max_epochs: int. Epochs per trial at most (default: the config's `training.epochs`).
        overwrite: bool. Start afresh instead of resuming.

    Returns:
        (best config dict, list of trial rows as written to `trials.csv`).
    """
    try:
        import keras_tuner as kt
    except ImportError:
        raise ImportError('mmkeras tune needs KerasTuner: pip install "mmkeras[tune]" (keras-tuner)') from None
    from mmkeras.data import read_manifest
    from mmkeras.fusion import FUSIONS
    from mmkeras.heads import make_heads
    from mmkeras.model import compile_model
    from mmkeras.recipe import datasets
    from mmkeras.recipe import fitted_preprocessor
    from mmkeras.recipe import label_heads
    from mmkeras.recipe import model_from_config
    from mmkeras.recipe import split_data

    config = config_lib.as_config(config)
    space, train_cfg = config["tuning"], config["training"]
    unknown = sorted(set(space["fusion"]) - set(FUSIONS))
    if unknown:
        raise ValueError(f"Config key 'tuning.fusion': unknown fusion type(s) {unknown}; expected some of {sorted(FUSIONS)}")
    if config["data"]["label_type"] != "classification" and space["objective"] == "val_accuracy":
        raise ValueError("Config key 'tuning.objective': val_accuracy needs classification labels; use val_loss")
    max_epochs = int(max_epochs or train_cfg["epochs"])
    keras.utils.set_random_seed(train_cfg["seed"])

    train_source, val_source = split_data(config)
    if val_source is None:
        raise ValueError("mmkeras tune scores trials on validation data: set data.validation or data.validation_split")
    train_manifest = read_manifest(train_source)
    preprocessor = fitted_preprocessor(config, train_manifest)
    train_ds, val_ds = datasets(config, preprocessor, train_manifest, val_source)
    steps = int(train_ds.cardinality())
    heads = label_heads(preprocessor, train_cfg)

    class Search(kt.HyperModel):
        def build(self, hp):
            trial = trial_config(config, _values(hp, space))
            return compile_model(model_from_config(trial, heads), make_heads(heads=heads), learning_rate=trial["training"]["learning_rate"],
                                 weight_decay=trial["training"]["weight_decay"], ema=trial["training"]["ema"])

    direction = "min" if space["objective"] == "val_loss" else "max"
    common = dict(objective=kt.Objective(space["objective"], direction), directory=output_dir,
                  project_name=TUNER_DIR, overwrite=overwrite, seed=train_cfg["seed"])
    if space["algorithm"] == "hyperband":
        tuner = kt.Hyperband(Search(), max_epochs=max_epochs, factor=3, **common)
    elif space["algorithm"] == "random":
        tuner = kt.RandomSearch(Search(), max_trials=trials, **common)
    else:
        tuner = kt.BayesianOptimization(Search(), max_trials=trials, **common)
    stop = keras.callbacks.EarlyStopping(monitor=space["objective"], mode=direction,
                                         patience=max(1, train_cfg["early_stopping_patience"] or max_epochs),
                                         restore_best_weights=True)
    verbose = 0 if train_cfg["verbose"] == 0 else 1
    tuner.search(train_ds.repeat(), steps_per_epoch=steps, validation_data=val_ds, epochs=max_epochs,
                 callbacks=[*_averaging(train_cfg), stop], shuffle=False, verbose=verbose)

    rows = _trial_rows(tuner)
    with open(os.path.join(output_dir, TRIALS_FILE), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]) if rows else ["trial", "status", "score"])
        writer.writeheader()
        writer.writerows(rows)
    best = trial_config(config, tuner.get_best_hyperparameters(1)[0].values)
    config_lib.save_config(best, os.path.join(output_dir, BEST_CONFIG))
    return best, rows


def _averaging(train_cfg):
    """With `training.ema`, trials are scored and kept with their averaged weights, as `train` does."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if train_cfg["ema"] else []


def _trial_rows(tuner):
    """One row per trial, best first: id, status, score, then its hyperparameters."""
    trials = tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials))
    done = {t.trial_id for t in trials}
    trials += [t for t in tuner.oracle.trials.values() if t.trial_id not in done]
    return [{"trial": t.trial_id, "status": t.status, "score": t.score, **t.hyperparameters.values} for t in trials]
