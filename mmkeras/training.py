"""Training from a config: data → Preprocessor → model → `model.fit` with the usual callbacks.

What is built from the config comes from `mmkeras.recipe`; the run directory it writes (a
preset that `MultimodalTask.from_preset` loads, plus logs) is `mmkeras.layout`'s to lay out.
"""

import importlib.util
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from mmkeras import config as config_lib
from mmkeras import constants
from mmkeras import layout
from mmkeras.data import read_manifest
from mmkeras.data.dataset import decode_errors_located
from mmkeras.heads import make_heads
from mmkeras.layers import find_layer
from mmkeras.model import adapt_model
from mmkeras.model import compile_model
from mmkeras.recipe import cluster_from_env
from mmkeras.recipe import datasets
from mmkeras.recipe import fitted_preprocessor
from mmkeras.recipe import label_heads
from mmkeras.recipe import model_from_config
from mmkeras.recipe import split_data
from mmkeras.layout import BACKUP_DIR
from mmkeras.layout import BEST_FILE
from mmkeras.layout import LOG_FILE
from mmkeras.layout import load_model_file  # noqa: F401 - kept importable from here for older scripts
from mmkeras.task import load_run  # noqa: F401 - kept importable from here for older scripts

__all__ = ["TrainingHooks", "train", "load_run", "choose_strategy", "use_mixed_precision", "split_data",
           "label_heads", "model_from_config", "datasets"]


class TrainingHooks:
    """What a trainer built on `train` may change, each step defaulting to plain training.

    `mmkeras.distillation.Teacher` is one: the data go through the teacher's Preprocessor and
    the fitted model also outputs the teacher's softened answer. Hooks let such trainers build
    on `train` without `train` knowing them.
    """

    def preprocessors(self, config, train_manifest):
        """(the Preprocessor the run keeps, the one the data are decoded with)."""
        preprocessor = fitted_preprocessor(config, train_manifest)
        return preprocessor, preprocessor

    def fitting(self, model, heads, train_ds, val_ds):
        """(model to fit, its heads, training data, validation data or None); called in the strategy's scope."""
        return model, heads, train_ds, val_ds

    def evaluation_data(self, dataset, model):
        """`dataset` as the kept `model` reads it, for the run's final validation metrics."""
        return dataset

    def metrics(self):
        """Extra entries for the run's `metrics.json`."""
        return {}


def choose_strategy(name="auto"):
    """The `tf.distribute` strategy: "auto" mirrors across several GPUs, else the default."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name in ("auto", "default"):
        return tf.distribute.get_strategy()
    raise ValueError(f"Expected strategy to be one of ['auto', 'default', 'mirrored']. Received: strategy={name!r}")


def use_mixed_precision(setting="auto"):
    """Sets Keras' global dtype policy: mixed_float16 with a GPU (or when asked), float32 else."""
    on = bool(tf.config.list_physical_devices("GPU")) if setting == "auto" else bool(setting)
    keras.mixed_precision.set_global_policy("mixed_float16" if on else "float32")
    return on


def class_weights_from_labels(labels, num_classes):
    """Inverse-frequency weights (mean 1 over the examples): `n / (classes * count_c)`.

    Example:

    >>> class_weights_from_labels([0, 0, 0, 1], 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    counts = np.bincount(np.asarray(labels, "int64"), minlength=num_classes).astype("float64")
    total = counts.sum()
    return {c: (float(total / (num_classes * counts[c])) if counts[c] else 0.0) for c in range(num_classes)}


def _with_sample_weights(dataset, weights):
    table = tf.constant([weights[c] for c in sorted(weights)], tf.float32)

    def add(features, labels):
        return features, labels, {constants.DEFAULT_HEAD: tf.gather(table, labels[constants.DEFAULT_HEAD])}

    return dataset.map(add)


def train(config, output_dir, callbacks=None, overwrite=False, hooks=None):
    """Trains a model in this process as `config` says and writes the run directory.

    `mmkeras.train` (and `mmkeras train`) also trains on several workers named by `TF_CONFIG`
    (`mmkeras.distributed`); this function refuses to run there. Started again with the same `output_dir` after being killed, training resumes from the
    last finished epoch (Keras' `BackupAndRestore`), and `best.keras` keeps the best epoch of
    the whole run. A run directory whose run finished (`finished.json`, written last) is not
    trained again unless `overwrite` is set.

    Args:
        config: dict (resolved or not) or the path of a YAML config.
        output_dir: str. The run directory.
        callbacks: list. Extra Keras callbacks.
        overwrite: bool. Start afresh in a directory that holds a finished run.
        hooks: `TrainingHooks`. Steps a trainer built on this one changes (a
            `mmkeras.distillation.Teacher`: distil from it, see `distillation.distill`).

    Returns:
        (model, preprocessor, history dict).
    """
    cluster = cluster_from_env()
    if cluster:  # Keras' fit cannot run under the multi-worker strategy (see mmkeras.distributed)
        raise ValueError(f"TF_CONFIG names {cluster[0]} workers: train with mmkeras.train or `mmkeras train`, which "
                         "run the multi-worker loop (a teacher or extra callbacks are not supported there)")
    lock = layout.RunLock(output_dir)
    try:
        return _train(config, output_dir, callbacks, overwrite, hooks or TrainingHooks(), lock)
    finally:
        lock.release()
        # A failed run (bad data, a killed fit) must not leave mixed_float16 on for what follows.
        keras.mixed_precision.set_global_policy("float32")


def _train(config, output_dir, callbacks, overwrite, hooks, lock):
    config = config_lib.as_config(config)
    data_cfg, train_cfg = config["data"], config["training"]
    if not data_cfg["train"]:
        raise ValueError("The config needs data.train: the training manifest (CSV/JSONL) or TFRecord shards.")
    check_environment(config)
    lock.acquire()  # a second train into this directory refuses here, naming this process
    layout.prepare(output_dir, overwrite)
    keras.utils.set_random_seed(train_cfg["seed"])
    if train_cfg["deterministic"]:
        # Process-wide and irreversible: every op picks a deterministic kernel (slower on GPU).
        tf.config.experimental.enable_op_determinism()
    mixed = use_mixed_precision(train_cfg["mixed_precision"])

    train_source, val_source = split_data(config)
    train_manifest = read_manifest(train_source)
    preprocessor, data_preprocessor = hooks.preprocessors(config, train_manifest)

    train_ds, val_ds = datasets(config, data_preprocessor, train_manifest, val_source)
    bad_records = {"train": train_ds.bad_records}
    if val_ds is not None:
        bad_records["validation"] = val_ds.bad_records
    if train_cfg["class_weights"] and preprocessor.label_type == "classification":
        labels = np.concatenate([y[constants.DEFAULT_HEAD].numpy() for _, y in train_ds])
        weights = class_weights_from_labels(labels, preprocessor.num_classes)
        train_ds = _with_sample_weights(train_ds, weights)

    heads = label_heads(preprocessor, train_cfg)
    steps = int(train_ds.cardinality())
    if steps <= 0:
        raise RuntimeError(f"The training dataset's length is unknown ({steps}); make_dataset always sets it.")
    strategy = choose_strategy(train_cfg["strategy"])
    with strategy.scope():
        model = model_from_config(config, heads)
    adapted = adapt_model(model, train_ds)  # e.g. per-mel-bin statistics for normalization: bin
    with strategy.scope():
        fit_model, fit_heads, fit_train, fit_val = hooks.fitting(model, make_heads(heads=heads), train_ds, val_ds)

    log_path = os.path.join(output_dir, LOG_FILE)
    backup_dir = os.path.join(output_dir, BACKUP_DIR)
    history = None
    for stage in _stages(config, model):
        if stage.name == "frozen" and os.path.isdir(os.path.join(backup_dir, "fine_tune")):
            continue  # a resumed run that had finished its frozen epochs
        for backbone in stage.frozen:
            backbone.trainable = False
        for backbone in stage.unfrozen:
            backbone.trainable = True
        initial_epoch = stage.first_epoch if stage.name != "fine_tune" else layout.epochs_logged(log_path)
        learning_rate = stage.learning_rate
        if train_cfg["lr_schedule"] == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(
                learning_rate, decay_steps=steps * max(1, stage.last_epoch - initial_epoch))
        with strategy.scope():
            compile_model(fit_model, fit_heads, learning_rate=learning_rate,
                          weight_decay=train_cfg["weight_decay"], ema=train_cfg["ema"],
                          jit_compile=bool(train_cfg["jit_compile"]))
        run_callbacks = _callbacks(train_cfg, output_dir, val_ds is not None,
                                   os.path.join(backup_dir, stage.name) if stage.name else backup_dir)
        run_callbacks.extend(bad_records.values())
        run_callbacks.extend(callbacks or [])
        if train_cfg["ema"]:
            swap = next(c for c in run_callbacks if isinstance(c, keras.callbacks.SwapEMAWeights))
            run_callbacks.append(AverageAtStop(swap))  # after every callback that may stop the run
        # The length is known (make_dataset counts usable records, under either bad-record policy),
        # so one iterator serves every epoch (repeat + steps_per_epoch): the pipeline starts once and
        # keeps prefetching across epoch boundaries, instead of Keras building a new iterator (and
        # re-instantiating the decoding graph) each epoch.
        # shuffle=False: the dataset shuffles itself (with the seed); Keras cannot shuffle a tf.data.Dataset.
        # An image decoder's own error ("Invalid PNG") names no record: find it and say where it is.
        with decode_errors_located(train_ds, val_ds):
            history = fit_model.fit(fit_train.repeat(), validation_data=fit_val, epochs=stage.last_epoch,
                                    initial_epoch=initial_epoch, shuffle=False, steps_per_epoch=steps,
                                    callbacks=run_callbacks, verbose=_verbosity(train_cfg["verbose"]))
    if fit_model is not model:
        compile_model(model, make_heads(heads=heads))  # the model alone, as the run keeps it
    history_dict = layout.full_history(output_dir, history.history)
    metrics = {"mixed_precision": mixed, "strategy": type(strategy).__name__,
               "replicas": strategy.num_replicas_in_sync, "epochs_run": len(history_dict.get("loss", [])),
               "adapted_layers": adapted, **hooks.metrics()}
    stopped = _early_stop(run_callbacks, train_cfg["epochs"])
    if stopped:
        metrics["early_stopping"] = stopped
    cut_short = epoch_limit(stopped, history_dict, train_cfg["epochs"], train_cfg["early_stopping_patience"])
    if cut_short:
        metrics["epoch_limit"] = cut_short
    if train_cfg["verbose"] != 0:
        for line in training_notes(stopped, history_dict, cut_short):
            print(f"mmkeras: {line}")
    if val_ds is not None:
        metrics["validation"] = {k: float(v) for k, v in model.evaluate(hooks.evaluation_data(val_ds, model), verbose=0,
                                                                         return_dict=True).items()}
    skipped = {role: len(report) for role, report in bad_records.items() if len(report)}
    if skipped:
        metrics["skipped_records"] = skipped
        for role in skipped:
            bad_records[role].to_csv(os.path.join(output_dir, f"skipped_{role}.csv"))
    layout.finish(output_dir, model, preprocessor, heads, config, history_dict, metrics)
    return model, preprocessor, history_dict


def _verbosity(verbose):
    """Keras' verbosity; "auto": a progress bar on a terminal, one line per epoch in a log file
    (Keras' own "auto" draws the bar, carriage returns and all, into redirected output)."""
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() else 2


def _early_stop(run_callbacks, epochs):
    """What early stopping did in the last `fit` (None if it did not end the run)."""
    stopper = next((c for c in run_callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
    if stopper is None or not stopper.stopped_epoch:
        return None
    best = stopper.best_epoch if stopper.best_weights is not None else stopper.stopped_epoch
    return early_stop_report(stopper.stopped_epoch + 1, epochs, stopper.monitor, stopper.patience, best + 1,
                             stopper.best)


def early_stop_report(stopped_after, epochs, monitor, patience, restored, best):
    """`metrics.json`'s `early_stopping` entry, for one process and for several workers alike
    (epochs counted from 1; `restored` is the epoch whose weights the model kept)."""
    return {"stopped_after_epoch": int(stopped_after), "of_epochs": int(epochs), "monitor": monitor,
            "patience": int(patience), "restored_epoch": int(restored), "best": float(best)}


def epoch_limit(stopped, history, epochs, patience):
    """Whether the run ended at its epoch limit with the validation loss still falling: its best
    value in the last `max(1, patience // 3)` epochs. None otherwise (early stopping ended it, no
    validation, or the loss had levelled off)."""
    values = history.get("val_loss") or []
    if stopped or len(values) < epochs:
        return None
    best = int(np.argmin(values))
    if best < len(values) - max(1, patience // 3):
        return None
    return {"epochs": len(values), "monitor": "val_loss", "best_epoch": best + 1, "best": float(values[best])}


def training_notes(stopped, history, cut_short=None):
    """Lines that explain the run's end and figures that look wrong but are not."""
    notes = []
    if stopped:
        notes.append(f"early stopping ended the run after epoch {stopped['stopped_after_epoch']} of "
                     f"{stopped['of_epochs']}: {stopped['monitor']} had not improved for {stopped['patience']} "
                     f"epochs. The run keeps the weights of epoch {stopped['restored_epoch']} "
                     f"({stopped['monitor']} {stopped['best']:.4f}), its best.")
    if cut_short:
        notes.append(f"the run used all {cut_short['epochs']} epochs and {cut_short['monitor']} was still falling "
                     f"(its best, {cut_short['best']:.4f}, at epoch {cut_short['best_epoch']}): a larger "
                     "training.epochs may give a better model. Early stopping ends a longer run once it stops "
                     "improving.")
    last = {key: values[-1] for key, values in history.items() if values}
    below = [key for key in last if key.endswith("accuracy") and not key.startswith("val_")
             and f"val_{key}" in last and last[key] < last[f"val_{key}"]]
    if below:
        key = below[0]
        notes.append(f"training {key} ({last[key]:.3f}) is below validation's ({last[f'val_{key}']:.3f}), as is "
                     "common: training figures are averaged over the epoch while the weights change, with "
                     "dropout, modality dropout, augmentation and label smoothing on; validation measures the "
                     "epoch's final weights with all of them off.")
    return notes


class _Stage:
    """One `model.fit` call: its epochs, learning rate and the backbones it freezes or unfreezes."""

    def __init__(self, name, first_epoch, last_epoch, learning_rate, frozen=(), unfrozen=()):
        self.name, self.first_epoch, self.last_epoch = name, first_epoch, last_epoch
        self.learning_rate, self.frozen, self.unfrozen = learning_rate, list(frozen), list(unfrozen)


def _stages(config, model):
    """One stage, or with `training.frozen_epochs` two: the heads learn on frozen pretrained
    encoders first, then those with `trainable: true` are unfrozen at a lower learning rate
    (the Keras transfer-learning recipe: a randomly initialised head's first, large gradients
    would otherwise wreck the pretrained weights)."""
    train_cfg = config["training"]
    frozen_epochs = train_cfg.get("frozen_epochs", 0)
    if not frozen_epochs:
        return [_Stage(None, 0, train_cfg["epochs"], train_cfg["learning_rate"])]
    backbones = [_backbone(model, name) for name in config_lib.fine_tuned_modalities(config)]
    fine_tune_rate = train_cfg.get("fine_tune_learning_rate") or train_cfg["learning_rate"] / 10
    return [_Stage("frozen", 0, frozen_epochs, train_cfg["learning_rate"], frozen=backbones),
            _Stage("fine_tune", frozen_epochs, train_cfg["epochs"], fine_tune_rate, unfrozen=backbones)]


def _backbone(model, name):
    """Modality `name`'s pretrained backbone layer, also where it runs inside a wrapper (video: per frame)."""
    wanted = f"{name}_backbone"
    found = find_layer(model.get_layer(f"{name}_encoder"), wanted)
    if found is None:
        raise ValueError(f"Modality {name!r} has no layer {wanted!r} to unfreeze (is its encoder pretrained?)")
    return found


class AverageAtStop(keras.callbacks.Callback):
    """With `training.ema`, the last of a fit's callbacks: when one of them stops the run before its
    last epoch, the model keeps the weights' average, as it does after the last epoch. (`fit` ends
    by writing the optimizer's average slots into the model; after `SwapEMAWeights` swapped them at
    the epoch's end those slots hold the raw weights, and Keras puts the average back only when the
    epoch is the last one.)"""

    def __init__(self, swap):
        super().__init__()
        self.swap = swap

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training and self.swap._ema_weights_in_model:
            self.swap._finalize_ema_values()


class StorageGuard(keras.callbacks.Callback):
    """Stops training with a `layout.StorageError` at the end of an epoch whose checkpoints (the
    resume backup and `best.keras`) would not fit on the disk or under `ulimit -f`: checked before
    they are written, so the last good ones stay whole and the same command resumes."""

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir = output_dir

    def on_train_begin(self, logs=None):
        layout.ensure_writable(self.output_dir, "the run")

    def on_epoch_end(self, epoch, logs=None):
        layout.ensure_room(self.output_dir, 2 * layout.weights_bytes(self.model), "the epoch's checkpoints")


class RunBackup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore`, written atomically, with a readable error for a damaged backup.

    Weights go to a temporary file, then replace the last backup; the epoch counter is replaced
    after them. A process killed or a disk filled mid-write leaves the previous epoch's backup.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        writing = os.path.join(self.backup_dir, f".writing-{os.getpid()}.weights.h5")
        try:
            self.model.save_weights(writing, overwrite=True)
            os.replace(writing, self._weights_path)
        finally:
            if os.path.exists(writing):
                os.remove(writing)
        layout.atomic_json({"epoch": self._current_epoch, "batch": self._last_batch_seen},
                           self._training_metadata_path)

    def _load_model(self):
        try:
            super()._load_model()
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{self.backup_dir}: the resume backup cannot be read ({type(error).__name__}: "
                             f"{error}); remove that folder to train the run from its first epoch, or train "
                             "with --overwrite (overwrite=True)") from None


def _callbacks(train_cfg, output_dir, validating, backup_dir):
    """The run's own callbacks for one `model.fit` call."""
    monitor = "val_loss" if validating else "loss"
    log_path = os.path.join(output_dir, LOG_FILE)
    # First of all: a write that would fail is refused before the backup or best.keras is touched.
    run_callbacks = [StorageGuard(output_dir)]
    if train_cfg["backup"]:
        # The backup is removed by `train` once the run's files are all written, not by the
        # callback at the end of fit: a run killed in between resumes instead of restarting.
        run_callbacks.append(RunBackup(backup_dir, delete_checkpoint=False))
    if train_cfg["ema"]:
        # After the backup (which keeps the raw weights and their average apart) and before every
        # callback that judges or keeps the epoch: validation, early stopping's best weights and
        # best.keras all see the average. At the end of fit the model holds the average.
        run_callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    run_callbacks.append(keras.callbacks.CSVLogger(log_path, append=True))
    if train_cfg["early_stopping_patience"]:
        run_callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=train_cfg["early_stopping_patience"], restore_best_weights=True))
    if train_cfg["checkpoint"]:
        # A resumed run starts from the best value logged so far, so best.keras stays the best
        # epoch of the whole run rather than the first one after the restart.
        run_callbacks.append(keras.callbacks.ModelCheckpoint(
            os.path.join(output_dir, BEST_FILE), monitor=monitor, save_best_only=True,
            initial_value_threshold=layout.best_logged(log_path, monitor)))
    if train_cfg["lr_schedule"] == "plateau":
        run_callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=2))
    if train_cfg["tensorboard"]:
        run_callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")))
    return run_callbacks


def check_environment(config):
    """Fails at start-up, with what to do, when a setting needs a package that is not installed."""
    if config["training"]["tensorboard"] and importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            "training.tensorboard is true (the default) but TensorBoard is not installed: "
            "`pip install tensorboard`, or set `training: {tensorboard: false}` in the config."
        )
