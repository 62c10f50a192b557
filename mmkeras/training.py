"""Training from a config: data → Preprocessor → model → `model.fit` with the usual callbacks.

A run directory holds everything `evaluate`, `export` and `predict` need: `model.keras`, the
Preprocessor's state, the resolved config, the history and the metrics.
"""

import csv
import importlib.util
import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from mmkeras import config as config_lib
from mmkeras import constants
from mmkeras import distillation
from mmkeras import distributed
from mmkeras.data import adapt_preprocessor
from mmkeras.data import make_dataset
from mmkeras.data import read_manifest
from mmkeras.data import stratified_split
from mmkeras.data.dataset import decode_errors_located
from mmkeras.data.manifest import LABEL_COLUMN
from mmkeras.heads import make_heads
from mmkeras.model import adapt_model
from mmkeras.model import build_model
from mmkeras.model import compile_model
from mmkeras.preprocessor import Preprocessor

MODEL_FILE = "model.keras"
BEST_FILE = "best.keras"
PREPROCESSOR_DIR = "preprocessor"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
#: Written last, once everything else is in place: the run is finished.
FINISHED_FILE = "finished.json"
BACKUP_DIR = "backup"
LOG_FILE = "training.csv"
#: Everything `train` writes into a run directory (removed first by `overwrite=True`).
RUN_FILES = (MODEL_FILE, BEST_FILE, PREPROCESSOR_DIR, CONFIG_FILE, HISTORY_FILE, METRICS_FILE, FINISHED_FILE,
             BACKUP_DIR, LOG_FILE, "logs", "skipped_train.csv", "skipped_validation.csv")


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


def split_data(config):
    """(training source, validation source or None): the config's validation manifest, else a
    stratified `validation_split` of the training one."""
    data = config["data"]
    if data["validation"]:
        return data["train"], data["validation"]
    label_column = data["columns"].get(constants.DEFAULT_HEAD, LABEL_COLUMN)
    if not data["validation_split"]:
        return data["train"], None
    return stratified_split(data["train"], data["validation_split"], label_column, seed=config["training"]["seed"])


def label_heads(preprocessor, train_cfg):
    """The run's one head, "label", as `build_model` and `make_heads` take it (label and head types share names)."""
    smoothing = train_cfg["label_smoothing"] if preprocessor.label_type != "regression" else 0.0
    return [{"name": constants.DEFAULT_HEAD, "type": preprocessor.label_type, "units": preprocessor.num_classes,
             "label_smoothing": smoothing}]


def model_from_config(config, heads):
    """The uncompiled model a resolved config's modalities, fusion and model blocks describe."""
    fusion = dict(config["fusion"])
    return build_model(config["modalities"], heads=heads, fusion=fusion.pop("type"),
                       modality_dropout=fusion.pop("modality_dropout", 0.0), fusion_options=fusion or None,
                       hidden_units=config["model"]["hidden_units"], dropout=config["model"]["dropout"],
                       modality_logits=config["model"]["modality_logits"], compile=False)


def datasets(config, preprocessor, train_manifest, val_source):
    """(training dataset, validation dataset or None) as a resolved config's data and training blocks say."""
    data_cfg, train_cfg = config["data"], config["training"]
    common = dict(columns=data_cfg["columns"], batch_size=train_cfg["batch_size"], seed=train_cfg["seed"],
                  on_bad_record=data_cfg["on_bad_record"], cache=data_cfg["cache"],
                  deterministic=bool(train_cfg["deterministic"]))
    train_ds = make_dataset(train_manifest, preprocessor, training=True, **common)
    val_ds = make_dataset(val_source, preprocessor, **common) if val_source is not None else None
    return train_ds, val_ds


def train(config, output_dir, callbacks=None, overwrite=False, teacher=None):
    """Trains a model as `config` says and writes the run directory.

    Started again with the same `output_dir` after being killed, training resumes from the
    last finished epoch (Keras' `BackupAndRestore`), and `best.keras` keeps the best epoch of
    the whole run. A run directory whose run finished (`finished.json`, written last) is not
    trained again unless `overwrite` is set.

    Args:
        config: dict (resolved or not) or the path of a YAML config.
        output_dir: str. The run directory.
        callbacks: list. Extra Keras callbacks.
        overwrite: bool. Start afresh in a directory that holds a finished run.
        teacher: `mmkeras.distillation.Teacher`. Distil from it (see `distillation.distill`):
            the data go through the teacher's Preprocessor, and the loss adds its softened outputs.

    Returns:
        (model, preprocessor, history dict).
    """
    if distributed.cluster_from_env():
        # TF_CONFIG names several workers: Keras' fit cannot run there (see mmkeras.distributed).
        if teacher is not None or callbacks:
            raise ValueError("Training on several workers (TF_CONFIG) takes neither a teacher nor extra callbacks")
        return distributed.train_across_workers(config, output_dir, overwrite=overwrite)
    try:
        return _train(config, output_dir, callbacks, overwrite, teacher)
    finally:
        # A failed run (bad data, a killed fit) must not leave mixed_float16 on for what follows.
        keras.mixed_precision.set_global_policy("float32")


def _train(config, output_dir, callbacks, overwrite, teacher):
    if isinstance(config, (str, os.PathLike)):
        config = config_lib.load_config(config)
    else:
        config = config_lib.resolve_config(config)
    data_cfg, train_cfg = config["data"], config["training"]
    if not data_cfg["train"]:
        raise ValueError("The config needs data.train: the training manifest (CSV/JSONL) or TFRecord shards.")
    check_environment(config)
    _prepare_run_directory(output_dir, overwrite)
    keras.utils.set_random_seed(train_cfg["seed"])
    if train_cfg["deterministic"]:
        # Process-wide and irreversible: every op picks a deterministic kernel (slower on GPU).
        tf.config.experimental.enable_op_determinism()
    mixed = use_mixed_precision(train_cfg["mixed_precision"])

    train_source, val_source = split_data(config)
    train_manifest = read_manifest(train_source)
    if teacher is None:
        preprocessor = Preprocessor(config["modalities"], label_type=data_cfg["label_type"])
        adapt_preprocessor(preprocessor, train_manifest, data_cfg["columns"])
        data_preprocessor = preprocessor
    else:  # the student keeps the teacher's vocabularies and labels; the data feed both models
        preprocessor = teacher.student_preprocessor(config["modalities"], train_manifest, data_cfg["columns"])
        data_preprocessor = teacher.preprocessor
    preprocessor.save(os.path.join(output_dir, PREPROCESSOR_DIR))

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
    fit_model, fit_heads, fit_train, fit_val = model, make_heads(heads=heads), train_ds, val_ds
    if teacher is not None:  # the student inside a model that also outputs the teacher's answer
        with strategy.scope():
            fit_model, fit_heads = teacher.fitting_model(model, fit_heads)
        fit_train = distillation.with_distill_target(train_ds)
        fit_val = distillation.with_distill_target(val_ds) if val_ds is not None else None

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
        initial_epoch = stage.first_epoch if stage.name != "fine_tune" else _epochs_logged(log_path)
        learning_rate = stage.learning_rate
        if train_cfg["lr_schedule"] == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(
                learning_rate, decay_steps=steps * max(1, stage.last_epoch - initial_epoch))
        with strategy.scope():
            compile_model(fit_model, fit_heads, learning_rate=learning_rate,
                          weight_decay=train_cfg["weight_decay"], jit_compile=bool(train_cfg["jit_compile"]))
        run_callbacks = _callbacks(train_cfg, output_dir, val_ds is not None,
                                   os.path.join(backup_dir, stage.name) if stage.name else backup_dir)
        run_callbacks.extend(bad_records.values())
        run_callbacks.extend(callbacks or [])
        # The length is known (make_dataset counts usable records, under either bad-record policy),
        # so one iterator serves every epoch (repeat + steps_per_epoch): the pipeline starts once and
        # keeps prefetching across epoch boundaries, instead of Keras building a new iterator (and
        # re-instantiating the decoding graph) each epoch.
        # shuffle=False: the dataset shuffles itself (with the seed); Keras cannot shuffle a tf.data.Dataset.
        # An image decoder's own error ("Invalid PNG") names no record: find it and say where it is.
        with decode_errors_located(train_ds, val_ds):
            history = fit_model.fit(fit_train.repeat(), validation_data=fit_val, epochs=stage.last_epoch,
                                initial_epoch=initial_epoch, shuffle=False, steps_per_epoch=steps,
                                callbacks=run_callbacks, verbose=train_cfg["verbose"])
    if teacher is not None:
        compile_model(model, make_heads(heads=heads))  # the student alone, as the run keeps it
    _atomic_save_model(model, os.path.join(output_dir, MODEL_FILE))
    history_dict = _full_history(output_dir, history.history)
    _atomic_json(history_dict, os.path.join(output_dir, HISTORY_FILE))
    metrics = {"mixed_precision": mixed, "strategy": type(strategy).__name__,
               "replicas": strategy.num_replicas_in_sync, "epochs_run": len(history_dict.get("loss", [])),
               "adapted_layers": adapted}
    if teacher is not None:
        metrics["distillation"] = {"teacher": os.path.abspath(teacher.run_dir), "temperature": teacher.temperature,
                                   "alpha": teacher.alpha}
    if val_ds is not None:
        student_val = distillation.student_inputs(val_ds, model) if teacher is not None else val_ds
        metrics["validation"] = {k: float(v) for k, v in model.evaluate(student_val, verbose=0,
                                                                         return_dict=True).items()}
    skipped = {role: len(report) for role, report in bad_records.items() if len(report)}
    if skipped:
        metrics["skipped_records"] = skipped
        for role in skipped:
            bad_records[role].to_csv(os.path.join(output_dir, f"skipped_{role}.csv"))
    _atomic_json(metrics, os.path.join(output_dir, METRICS_FILE))
    config_lib.save_config(config, os.path.join(output_dir, CONFIG_FILE))
    _atomic_json({"epochs_run": metrics["epochs_run"]}, os.path.join(output_dir, FINISHED_FILE))
    shutil.rmtree(os.path.join(output_dir, BACKUP_DIR), ignore_errors=True)
    return model, preprocessor, history_dict


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
    encoder = model.get_layer(f"{name}_encoder")
    found = [layer for layer in encoder._flatten_layers(include_self=False) if layer.name == wanted]
    if not found:
        raise ValueError(f"Modality {name!r} has no layer {wanted!r} to unfreeze (is its encoder pretrained?)")
    return found[0]


def _callbacks(train_cfg, output_dir, validating, backup_dir):
    """The run's own callbacks for one `model.fit` call."""
    monitor = "val_loss" if validating else "loss"
    log_path = os.path.join(output_dir, LOG_FILE)
    run_callbacks = [keras.callbacks.CSVLogger(log_path, append=True)]
    if train_cfg["backup"]:
        # The backup is removed by `train` once the run's files are all written, not by the
        # callback at the end of fit: a run killed in between resumes instead of restarting.
        run_callbacks.insert(0, keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False))
    if train_cfg["early_stopping_patience"]:
        run_callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=train_cfg["early_stopping_patience"], restore_best_weights=True))
    if train_cfg["checkpoint"]:
        # A resumed run starts from the best value logged so far, so best.keras stays the best
        # epoch of the whole run rather than the first one after the restart.
        run_callbacks.append(keras.callbacks.ModelCheckpoint(
            os.path.join(output_dir, BEST_FILE), monitor=monitor, save_best_only=True,
            initial_value_threshold=_best_logged(log_path, monitor)))
    if train_cfg["lr_schedule"] == "plateau":
        run_callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=2))
    if train_cfg["tensorboard"]:
        run_callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")))
    return run_callbacks


def _epochs_logged(log_path):
    return len((_read_log(log_path) or {}).get("loss", []))


def _prepare_run_directory(output_dir, overwrite):
    """Refuses a finished run (unless `overwrite`), and drops a log no backup can continue."""
    finished = os.path.join(output_dir, FINISHED_FILE)
    if os.path.exists(finished):
        if not overwrite:
            raise FileExistsError(
                f"{output_dir} holds a finished run ({FINISHED_FILE}); train into another --output, or pass "
                "--overwrite (overwrite=True) to start it again from scratch"
            )
        for name in RUN_FILES:
            path = os.path.join(output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(output_dir, exist_ok=True)
    log = os.path.join(output_dir, LOG_FILE)
    if os.path.exists(log) and not os.path.isdir(os.path.join(output_dir, BACKUP_DIR)):
        os.remove(log)  # epochs of a run that left no backup to resume from: they would be appended to


def _read_log(log_path):
    """The CSV log of the epochs run so far as {key: [values]} (None when there is no log)."""
    if not os.path.exists(log_path):
        return None
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    # CSVLogger writes "NA" where an epoch has no value for a key.
    history = {k: [float(r[k]) for r in rows if r.get(k) not in (None, "", "NA")] for k in keys}
    return {k: v for k, v in history.items() if v}


def _best_logged(log_path, monitor):
    """The lowest `monitor` value in the CSV log of the epochs run so far (None when none)."""
    values = (_read_log(log_path) or {}).get(monitor)
    return min(values) if values else None


def _atomic_json(value, path):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(temporary, path)


def _atomic_save_model(model, path):
    temporary = f"{path[: -len('.keras')]}.tmp-{os.getpid()}.keras"
    model.save(temporary)
    os.replace(temporary, path)


def check_environment(config):
    """Fails at start-up, with what to do, when a setting needs a package that is not installed."""
    if config["training"]["tensorboard"] and importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            "training.tensorboard is true (the default) but TensorBoard is not installed: "
            "`pip install tensorboard`, or set `training: {tensorboard: false}` in the config."
        )


def _full_history(output_dir, history):
    """The whole run's history from the CSV log (a resumed run's History holds only its own epochs)."""
    logged = _read_log(os.path.join(output_dir, LOG_FILE))
    if logged is None:
        return {k: [float(x) for x in v] for k, v in history.items()}
    return logged


def load_model_file(path):
    """A `.keras` model, compiled as it was saved, with frozen layers frozen all the way down.

    Keras restores `trainable: false` on each layer of the file, but sub-layers that a layer
    creates in `build()` (keras-hub's transformer blocks, for one) come back trainable; a frozen
    pretrained encoder would silently fine-tune on the next `fit`, and the compiled optimizer
    would not match the one saved. The model is loaded uncompiled, each frozen layer is frozen
    again (now that its sub-layers exist), then compiled from the file's own settings.
    """
    import zipfile

    model = keras.saving.load_model(path, compile=False)
    frozen = [layer for layer in model._flatten_layers(include_self=False) if not layer.trainable]
    for layer in frozen:
        # Setting the value a layer already has does nothing in Keras, so it goes True, then
        # False, which now reaches the sub-layers built after the flag was restored.
        layer.trainable = True
        layer.trainable = False
    with zipfile.ZipFile(path) as archive:
        compile_config = json.loads(archive.read("config.json")).get("compile_config")
    if compile_config:
        model.compile_from_config(compile_config)
    return model


def load_run(run_dir):
    """(model, preprocessor, config) of a run directory."""
    import mmkeras.fusion  # noqa: F401 - registers the custom layers before loading
    import mmkeras.layers  # noqa: F401

    model = load_model_file(os.path.join(run_dir, MODEL_FILE))
    preprocessor = Preprocessor.load(os.path.join(run_dir, PREPROCESSOR_DIR))
    config = config_lib.load_config(os.path.join(run_dir, CONFIG_FILE)) if os.path.exists(
        os.path.join(run_dir, CONFIG_FILE)) else None
    return model, preprocessor, config
