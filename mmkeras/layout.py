"""Every folder mmkeras writes: presets, run directories and exports; their file names, how they
are written, and how they are read.

A *preset* is what a trained model is: `model.keras`, the Preprocessor (`preprocessor/`, which
holds the column mapping), `task.json` (the heads: type, width, class names) and the resolved
`config.yaml`. `MultimodalTask.save_to_preset` writes one and `MultimodalTask.from_preset` reads
one. A *run directory* is a preset plus what training leaves beside it: `best.keras`, the CSV log,
`history.json`, `metrics.json`, skipped-record reports, the resume backup, and `finished.json`,
written last. An export's side files (`assets.extra/` of a SavedModel version folder, the files
beside `model.tflite`) are named here too. This module is the only place that knows these names;
the trainers, the task and the exporters ask it.
"""

import csv
import datetime
import json
import os
import re
import resource
import shutil
import socket
import zipfile

import keras
import numpy as np

from mmkeras import config as config_lib

MODEL_FILE = "model.keras"
BEST_FILE = "best.keras"
PREPROCESSOR_DIR = "preprocessor"
CONFIG_FILE = "config.yaml"
#: The task's own description: format version and heads (see `write_task`).
TASK_FILE = "task.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
#: Written last, once everything else is in place: the run is finished.
FINISHED_FILE = "finished.json"
BACKUP_DIR = "backup"
LOG_FILE = "training.csv"
#: Held by the process training into a run directory (its pid, host and start time).
LOCK_FILE = "run.lock"
#: Everything training writes into a run directory (removed first by `overwrite=True`).
RUN_FILES = (MODEL_FILE, BEST_FILE, PREPROCESSOR_DIR, CONFIG_FILE, TASK_FILE, HISTORY_FILE, METRICS_FILE,
             FINISHED_FILE, BACKUP_DIR, LOG_FILE, "logs", "skipped_train.csv", "skipped_validation.csv")
#: A SavedModel version folder's files that TF Serving does not read itself.
EXPORT_EXTRA_DIR = "assets.extra"
#: Class names, one per line in class-id order (the first head's), in `EXPORT_EXTRA_DIR`.
LABELS_FILE = "labels.txt"
#: Every head's name, type, width and class names: in `EXPORT_EXTRA_DIR`, and beside `model.tflite`.
HEADS_FILE = "heads.json"
#: Each served input's modality, manifest column and content (`Preprocessor.served_input_table`) in
#: `EXPORT_EXTRA_DIR`; beside `model.tflite`, each input tensor's shape, dtype and content.
INPUTS_FILE = "inputs.json"
TFLITE_FILE = "model.tflite"
#: Version of `task.json`'s layout; a reader refuses a newer one instead of misreading it.
TASK_FORMAT = 1


class StorageError(OSError):
    """A folder mmkeras writes is read-only, or lacks the room for what is about to be written.

    Raised before the write, so the files already there (the last finished epoch's backup, the
    best checkpoint, earlier exports) stay whole. Its text is the message alone.
    """

    def __str__(self):
        return self.strerror


#: Room kept free beyond an estimate of what a write needs.
_ROOM_MARGIN = 1 << 20


def ensure_writable(folder, what):
    """StorageError unless this process can create files in `folder` (made if missing)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise StorageError(error.errno, f"{folder}: cannot create the folder for {what} ({error.strerror}); "
                           "choose another folder", folder) from None
    if not os.access(folder, os.W_OK):
        raise StorageError(13, f"{folder}: the folder for {what} is read-only for this process; choose another "
                           "folder or make it writable", folder)


def ensure_room(folder, needed, what):
    """StorageError if a file of about `needed` bytes cannot be written in `folder`: too little free
    disk space, or larger than this process may write (`ulimit -f`)."""
    ensure_writable(folder, what)
    free = shutil.disk_usage(folder).free
    megabytes = (needed + _ROOM_MARGIN) / 1e6
    if needed + _ROOM_MARGIN > free:
        raise StorageError(28, f"{folder}: writing {what} needs about {megabytes:.1f} MB, and the disk has "
                           f"{free / 1e6:.1f} MB free; free some space (or choose another folder) and run the "
                           "same command again", folder)
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY and needed + _ROOM_MARGIN > limit:
        raise StorageError(27, f"{folder}: writing {what} needs about {megabytes:.1f} MB, and this process may write files "
                           f"of at most {limit / 1e6:.2f} MB (ulimit -f); raise the limit and run the same command "
                           "again", folder)


def weights_bytes(model, optimizer=True):
    """Bytes of a model's variables (and its optimizer's): about what a checkpoint of it takes."""
    variables = list(model.weights)
    if optimizer and getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    return sum(int(np.prod(v.shape)) * _item_bytes(v.dtype) for v in variables)


def _item_bytes(dtype):
    bits = re.search(r"\d+", keras.backend.standardize_dtype(dtype))
    return int(bits.group()) // 8 if bits else 1


def is_finished(output_dir):
    return os.path.exists(os.path.join(output_dir, FINISHED_FILE))


def refuse_finished(output_dir, overwrite, how="pass --overwrite (overwrite=True)"):
    """FileExistsError for a directory that holds a finished run, unless `overwrite`."""
    if is_finished(output_dir) and not overwrite:
        raise FileExistsError(f"{output_dir} holds a finished run ({FINISHED_FILE}); train into another --output, "
                              f"or {how} to start it again from scratch")


def prepare(output_dir, overwrite):
    """Makes `output_dir` ready for training: refuses a finished run (unless `overwrite`, which
    removes its files), and drops a log that no backup can continue."""
    refuse_finished(output_dir, overwrite)
    if is_finished(output_dir):
        for name in RUN_FILES:
            path = os.path.join(output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    ensure_writable(output_dir, "the run")
    log = os.path.join(output_dir, LOG_FILE)
    if os.path.exists(log) and not os.path.isdir(os.path.join(output_dir, BACKUP_DIR)):
        os.remove(log)  # epochs of a run that left no backup to resume from: they would be appended to


class RunLock:
    """Keeps a second process from training into a run directory that one is training into.

    `acquire()` creates `run.lock` (exclusively) holding this process's pid, host and start
    time; a lock whose process is gone (same host, pid not running) is stale and taken over.
    `release()` removes it if it is this process's; it is safe to call when never acquired.
    """

    def __init__(self, output_dir):
        self.path = os.path.join(output_dir, LOCK_FILE)
        self.held = False

    def acquire(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not self._stale(holder):
                    raise FileExistsError(
                        f"{os.path.dirname(self.path)} is being trained by process {holder.get('pid')} on "
                        f"{holder.get('host')} since {holder.get('started')} ({LOCK_FILE}); wait for it to finish, "
                        f"or train into another --output. If that process is gone, remove {self.path}") from None
                try:
                    os.remove(self.path)  # a killed run's lock (or an unreadable one): take it over
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as f:
                json.dump(mine, f)
            self.held = True
            return self
        raise FileExistsError(f"{self.path}: another process took the lock meanwhile; try again")

    def release(self):
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self.held = False

    def _holder(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
            return holder if isinstance(holder, dict) else None
        except (OSError, ValueError):
            return None

    @staticmethod
    def _stale(holder):
        if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return False  # another machine's process: cannot tell, so it holds the lock
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


# ----------------------------------------------------------------- the training log
def read_log(log_path):
    """The CSV log of the epochs run so far as {key: [values]} (None when there is no log)."""
    if not os.path.exists(log_path):
        return None
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    # CSVLogger writes "NA" where an epoch has no value for a key.
    history = {k: [float(r[k]) for r in rows if r.get(k) not in (None, "", "NA")] for k in keys}
    return {k: v for k, v in history.items() if v}


def best_logged(log_path, monitor):
    """The lowest `monitor` value in the CSV log of the epochs run so far (None when none)."""
    values = (read_log(log_path) or {}).get(monitor)
    return min(values) if values else None


def epochs_logged(log_path):
    return len((read_log(log_path) or {}).get("loss", []))


def append_log(path, row):
    """Adds one epoch's row to the CSV log (with the header when the log is new)."""
    new = not os.path.exists(path)
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_history(path, epochs, rewrite):
    """The logged history of the first `epochs` epochs (the checkpoint's); with `rewrite`, the
    log keeps only those rows (an epoch logged but not checkpointed runs again)."""
    if not os.path.exists(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < epochs]
    if rewrite:
        os.remove(path)
        for row in rows:
            append_log(path, row)
    return {key: [float(r[key]) for r in rows] for key in (rows[0] if rows else {}) if key != "epoch"}


def full_history(output_dir, history):
    """The whole run's history from the CSV log (a resumed run's History holds only its own epochs)."""
    logged = read_log(os.path.join(output_dir, LOG_FILE))
    if logged is None:
        return {k: [float(x) for x in v] for k, v in history.items()}
    return logged


# ----------------------------------------------------------------- writing
def atomic_json(value, path):
    """Writes `value` as JSON so that a reader sees the old file or the new one, never half of one."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)
    os.replace(temporary, path)


def atomic_save_model(model, path):
    temporary = f"{path[: -len('.keras')]}.tmp-{os.getpid()}.keras"
    model.save(temporary)
    os.replace(temporary, path)


def write_task(folder, heads):
    """Writes `task.json`: the format version and each head (name, type, units, class names, loss settings)."""
    atomic_json({"format": TASK_FORMAT, "heads": [head.to_dict() for head in heads]}, os.path.join(folder, TASK_FILE))


def read_task(folder):
    """`task.json` as written by `write_task` (None for a folder written before it existed)."""
    file = os.path.join(folder, TASK_FILE)
    if not os.path.exists(file):
        return None
    with open(file, encoding="utf-8") as f:
        task = json.load(f)
    if not isinstance(task, dict) or int(task.get("format", 0)) > TASK_FORMAT or not task.get("heads"):
        raise ValueError(f"{file}: expected a task description of format <= {TASK_FORMAT} with heads, written by "
                         f"this or an older mmkeras; upgrade mmkeras to read it. Received: {str(task)[:200]}")
    return task


def save_preset(folder, model, preprocessor, heads, config=None):
    """Writes a preset: the model, the Preprocessor, `task.json` and (when given) the config."""
    os.makedirs(folder, exist_ok=True)
    preprocessor.save(os.path.join(folder, PREPROCESSOR_DIR))
    atomic_save_model(model, os.path.join(folder, MODEL_FILE))
    if config is not None:
        config_lib.save_config(config, os.path.join(folder, CONFIG_FILE))
    write_task(folder, heads)


def finish(output_dir, model, preprocessor, heads, config, history, metrics):
    """Writes a trained run's preset, history and metrics, then `finished.json`, then drops the backup.

    Every file is in place before `finished.json`: a run killed before it resumes from its backup.
    """
    save_preset(output_dir, model, preprocessor, heads, config)
    atomic_json(history, os.path.join(output_dir, HISTORY_FILE))
    atomic_json(metrics, os.path.join(output_dir, METRICS_FILE))
    atomic_json({"epochs_run": metrics["epochs_run"]}, os.path.join(output_dir, FINISHED_FILE))
    shutil.rmtree(os.path.join(output_dir, BACKUP_DIR), ignore_errors=True)


# ----------------------------------------------------------------- reading
def load_model_file(path):
    """A `.keras` model, compiled as it was saved, with frozen layers frozen all the way down.

    Keras restores `trainable: false` on each layer of the file, but sub-layers that a layer
    creates in `build()` (keras-hub's transformer blocks, for one) come back trainable; a frozen
    pretrained encoder would silently fine-tune on the next `fit`, and the compiled optimizer
    would not match the one saved. The model is loaded uncompiled, each frozen layer is frozen
    again (now that its sub-layers exist), then compiled from the file's own settings.
    """
    import mmkeras.fusion  # noqa: F401 - registers the custom layers before loading
    import mmkeras.layers  # noqa: F401

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .keras file (truncated or damaged: a .keras file is a zip "
                         "archive); train the run again, or load the run's other checkpoint (best.keras or model.keras)")
    model = keras.saving.load_model(path, compile=False)
    frozen = [layer for layer in mmkeras.layers.walk_layers(model) if not layer.trainable]
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


def read_config(folder):
    """The resolved `config.yaml` of a preset or run (None where there is none)."""
    file = os.path.join(folder, CONFIG_FILE)
    return config_lib.load_config(file) if os.path.exists(file) else None
