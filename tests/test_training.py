import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from media import tiny_config
from media import write_manifest
from media import write_tiny_dataset

from mmkeras import config as config_lib
from mmkeras.data import BadRecordError
from mmkeras.training import load_run
from mmkeras.training import train


def test_run_directory_holds_everything_later_steps_need(tiny_run):
    run_dir, _, _ = tiny_run
    for name in ("model.keras", "best.keras", "preprocessor/preprocessor.json", "config.yaml", "history.json",
                 "metrics.json", "training.csv", "task.json", "finished.json"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert not os.path.exists(os.path.join(run_dir, "backup")), "backup is removed after a finished run"
    assert not os.path.exists(os.path.join(run_dir, "run.lock")), "the lock is released after a finished run"
    history = json.load(open(os.path.join(run_dir, "history.json")))
    assert len(history["loss"]) == 2 and "val_accuracy" in history
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["mixed_precision"] is False and 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    model, preprocessor, config = load_run(run_dir)
    assert preprocessor.label_names == ["class0", "class1", "class2"]
    assert config["fusion"]["type"] == "attention" and sorted(model.input) == sorted(
        ["text", "text_present", "image", "image_present", "audio", "audio_present"])


def test_class_weights_weight_each_example_by_its_class(tmp_path):
    import tensorflow as tf

    from mmkeras.training import _with_sample_weights

    ds = tf.data.Dataset.from_tensors(({"x": tf.zeros((4, 1))}, {"label": tf.constant([0, 0, 0, 1])}))
    _, _, weights = next(iter(_with_sample_weights(ds, {0: 0.5, 1: 2.0})))
    assert weights["label"].numpy().tolist() == [0.5, 0.5, 0.5, 2.0]
    manifest, rows = write_tiny_dataset(str(tmp_path), count=24)
    for i, row in enumerate(rows):  # imbalanced: 20 of class0
        row["label"] = "class0" if i < 20 else "class1"
    manifest = write_manifest(str(tmp_path), rows)
    losses = {}
    for weighted in (False, True):
        keras.utils.set_random_seed(3)
        config = tiny_config(manifest, epochs=1, class_weights=weighted, checkpoint=False)
        config["data"]["validation_split"] = 0.0
        losses[weighted] = train(config, str(tmp_path / f"run_{weighted}"))[2]["loss"][0]
    assert abs(losses[True] - losses[False]) > 1e-3, "class weights changed nothing"


class RecordLearningRate(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.rates = [float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))]

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_cosine_schedule_decays_under_the_skip_policy_and_skips_are_reported(tmp_path):
    manifest, rows = write_tiny_dataset(str(tmp_path), count=24)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    rows[3]["image"] = "broken.png"
    manifest = write_manifest(str(tmp_path), rows)
    config = tiny_config(manifest, epochs=3, lr_schedule="cosine", learning_rate=0.01, early_stopping_patience=0)
    config["data"]["on_bad_record"] = "skip"
    run_dir = tmp_path / "run"
    recorder = RecordLearningRate()
    train(config, str(run_dir), callbacks=[recorder])
    assert recorder.rates[0] == pytest.approx(0.01)
    assert recorder.rates[1] < recorder.rates[0] and recorder.rates[-1] < 1e-4, recorder.rates
    skipped = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("skipped_"))
    assert skipped == ["skipped_train.csv"] or skipped == ["skipped_train.csv", "skipped_validation.csv"]
    text = "".join((run_dir / name).read_text() for name in skipped)
    assert "broken.png" in text and "not an image file" in text
    assert sum(json.load(open(run_dir / "metrics.json"))["skipped_records"].values()) == 1


def test_bin_normalization_learns_statistics_from_the_training_audio(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path), count=18)
    config = tiny_config(manifest, epochs=1)
    config["modalities"]["audio"]["normalization"] = "bin"
    model, _, _ = train(config, str(tmp_path / "run"))
    mel = model.get_layer("audio_encoder").get_layer("audio_mel")
    mean = keras.ops.convert_to_numpy(mel.bin_mean)
    assert np.abs(mean).max() > 1.0, "per-bin means are still the initial zeros"
    assert json.load(open(tmp_path / "run" / "metrics.json"))["adapted_layers"] == ["audio_mel"]
    reloaded, _, _ = load_run(str(tmp_path / "run"))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded.get_layer("audio_encoder").get_layer("audio_mel").bin_mean), mean)


@pytest.mark.parametrize("fusion, message", [
    ({"type": "attention", "num_heads": 4}, r"Unknown config key 'fusion.num_heads' for the attention fusion"),
    ({"type": "transformer", "units": 10, "num_heads": 4}, r"divisible by num_heads"),
    ({"type": "sum"}, r"Config key 'fusion.type': expected one of .*Received: 'sum'"),
    ({"type": "gated", "modality_dropout": 1.5}, r"fusion.modality_dropout"),
])
def test_fusion_options_are_checked_before_any_data_is_read(tmp_path, fusion, message):
    config = {"data": {"train": str(tmp_path / "does_not_exist.csv")}, "modalities": {"text": {}, "image": {}},
              "fusion": fusion}
    with pytest.raises(ValueError, match=message):
        config_lib.resolve_config(config)
    with pytest.raises(ValueError, match=message):  # not FileNotFoundError: checked first
        train(config, str(tmp_path / "run"))


def test_a_split_that_cannot_be_stratified_warns():
    from mmkeras.data import stratified_split

    rows = [{"label": "a"}] * 8 + [{"label": "lonely"}]
    with pytest.warns(UserWarning, match=r"could not stratify.*\['lonely'\]"):
        train_rows, val_rows = stratified_split(rows, 0.25)
    assert len(train_rows) + len(val_rows) == 9


def test_tensorboard_missing_is_a_start_up_error(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    manifest, _ = write_tiny_dataset(str(tmp_path), count=6)
    with pytest.raises(ValueError, match=r"TensorBoard is not installed: `pip install tensorboard`"):
        train(tiny_config(manifest, tensorboard=True), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists(), "nothing was started"


def test_a_failed_mixed_precision_run_leaves_the_float32_policy_behind(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path), count=6)
    (tmp_path / "files" / "0.png").write_bytes(b"not a png at all")  # decoding fails mid-run
    config = tiny_config(manifest, mixed_precision=True, epochs=1)
    failed = (BadRecordError, tf.errors.InvalidArgumentError)
    with pytest.raises(failed, match=r"row 1, column image.*not an image file"):
        train(config, str(tmp_path / "run"))  # raised by fit, after the policy was set
    assert keras.mixed_precision.global_policy().name == "float32"


def test_config_rejects_unknown_keys_and_resolves_paths(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown config key 'training.epoch'"):
        config_lib.resolve_config({"modalities": {"text": {}}, "training": {"epoch": 3}})
    with pytest.raises(ValueError, match=r"Unknown config key 'modalities.text.height' for a text modality"):
        config_lib.resolve_config({"modalities": {"text": {"height": 3}}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"train": "d/train.csv"}, "modalities": {"text": {}}}))
    assert config_lib.load_config(str(path))["data"]["train"] == str(tmp_path / "d" / "train.csv")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path), count=24)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(manifest, epochs=1, strategy="mirrored")))
    script = textwrap.dedent(
        """
        import sys, json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from mmkeras.training import train
        train(sys.argv[1], sys.argv[2])
        print(json.load(open(sys.argv[2] + "/metrics.json"))["replicas"])
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(config_path), str(tmp_path / "run")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "2"


_REPEAT = """
import json, sys
from media import tiny_config
from mmkeras.training import train
config = tiny_config(sys.argv[1], epochs=2, deterministic=True, seed=5)
config["modalities"]["image"]["augment"] = {"shift": 0.1, "noise": 0.05}
config["modalities"]["audio"]["crop"] = "random"
_, _, history = train(config, sys.argv[2])
print("HISTORY", json.dumps(history))
"""


@pytest.mark.slow
def test_deterministic_runs_repeat_exactly(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path), count=24)
    histories = []
    for attempt in range(2):
        env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}
        result = subprocess.run([sys.executable, "-c", _REPEAT, manifest, str(tmp_path / f"run{attempt}")],
                                capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        histories.append(json.loads(result.stdout.split("HISTORY", 1)[1]))
    assert histories[0] == histories[1]


class KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"simulated kill after epoch {epoch + 1}")


class Scramble(keras.callbacks.Callback):
    """After the restore: weights far off, so the resumed epochs are worse than the earlier ones."""

    def on_train_begin(self, logs=None):
        rng = np.random.default_rng(0)
        self.model.set_weights([w + rng.normal(0, 3.0, w.shape).astype(w.dtype) for w in self.model.get_weights()])


def _val_loss(run_dir, config, name):
    from mmkeras.data import make_dataset
    from mmkeras.preprocessor import Preprocessor
    from mmkeras.training import split_data

    _, val = split_data(config_lib.resolve_config(config))
    pre = Preprocessor.load(os.path.join(run_dir, "preprocessor"))
    model = keras.saving.load_model(os.path.join(run_dir, name))
    return model.evaluate(make_dataset(val, pre, batch_size=6), verbose=0, return_dict=True)["loss"]


class KillAtTheEnd(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        raise KeyboardInterrupt("simulated kill after the last epoch, before the run's files are written")


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


@pytest.mark.slow
def test_a_killed_run_resumes_and_best_keras_is_the_best_epoch_of_the_whole_run(tmp_path):
    """Killed after epoch 2 of 4: started again, it trains epochs 3 and 4 only. Killed once more
    after its last epoch but before its files are written: started again, it trains nothing and
    finishes. best.keras is the best epoch of the whole run, not of the part after the restart."""
    manifest, _ = write_tiny_dataset(str(tmp_path), count=24)
    config = tiny_config(manifest, epochs=4, early_stopping_patience=0)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(config, str(run_dir), callbacks=[KillAfterEpoch(1)])
    assert (run_dir / "backup").is_dir()
    resumed = RecordEpochs()
    with pytest.raises(KeyboardInterrupt):
        train(config, str(run_dir), callbacks=[resumed, Scramble(), KillAtTheEnd()])
    assert resumed.epochs == [2, 3], "the second start trains epochs 3 and 4 only"
    assert not (run_dir / "finished.json").exists() and (run_dir / "backup").is_dir()
    last = RecordEpochs()
    _, _, history = train(config, str(run_dir), callbacks=[last])
    assert last.epochs == [] and len(history["loss"]) == 4
    assert (run_dir / "finished.json").exists() and not (run_dir / "backup").exists()
    with open(run_dir / "training.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    logged = [float(r["val_loss"]) for r in rows]
    assert min(logged[:2]) < min(logged[2:]), logged
    assert _val_loss(str(run_dir), config, "best.keras") == pytest.approx(min(logged), rel=1e-3)


def test_a_finished_run_is_not_trained_again_unless_overwritten(tmp_path, capsys):
    from mmkeras_cli import main

    manifest, _ = write_tiny_dataset(str(tmp_path), count=12)
    config = tiny_config(manifest, epochs=1, checkpoint=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    assert main(["train", "--config", str(path), "--output", str(run_dir)]) == 0
    stamp = (run_dir / "model.keras").stat().st_mtime_ns
    assert main(["train", "--config", str(path), "--output", str(run_dir)]) == 2
    assert "holds a finished run" in capsys.readouterr().err
    assert (run_dir / "model.keras").stat().st_mtime_ns == stamp, "the finished run was left alone"
    # Trained again, with Keras' output on: captured output is not a terminal, so one line per
    # epoch rather than a progress bar's carriage returns and escape codes.
    path.write_text(yaml.safe_dump(tiny_config(manifest, epochs=2, checkpoint=False, verbose="auto")))
    capsys.readouterr()
    assert main(["train", "--config", str(path), "--output", str(run_dir), "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "\r" not in out and "\x1b[" not in out
    with open(run_dir / "training.csv") as f:
        assert len(list(csv.DictReader(f))) == 2, "a fresh log, not appended to the old one"


def _lock(run, pid, started="2026-12-06T08:00:00"):
    import socket

    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "run.lock"), "w") as f:
        json.dump({"pid": pid, "host": socket.gethostname(), "started": started}, f)


def test_a_second_training_into_a_run_directory_refuses_at_once_naming_the_first(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path))
    run = str(tmp_path / "run")
    _lock(run, os.getpid())  # a live process holds it
    with pytest.raises(FileExistsError, match=rf"is being trained by process {os.getpid()} on .* since "
                                              r"2026-12-06T08:00:00 \(run.lock\)"):
        train(tiny_config(manifest), run)
    assert os.listdir(run) == ["run.lock"], "nothing of the other run is touched, its lock included"


def test_the_lock_of_a_killed_run_is_taken_over_and_released(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = str(tmp_path / "run")
    _lock(run, int(gone.stdout))
    with open(os.path.join(run, "finished.json"), "w") as f:  # stops the run right after the lock is taken
        json.dump({"epochs_run": 1}, f)
    with pytest.raises(FileExistsError, match="holds a finished run"):
        train(tiny_config(manifest), run)
    assert not os.path.exists(os.path.join(run, "run.lock"))


def test_the_run_says_when_early_stopping_ended_it_and_which_epoch_it_keeps():
    from mmkeras.training import _early_stop
    from mmkeras.training import training_notes

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    assert _early_stop([stopper], 30) is None  # it did not end the run
    stopper.stopped_epoch, stopper.best_epoch, stopper.best, stopper.best_weights = 15, 12, 0.4321, [np.zeros(1)]
    stopped = _early_stop([keras.callbacks.CSVLogger("unused.csv"), stopper], 30)
    assert stopped == {"stopped_after_epoch": 16, "of_epochs": 30, "monitor": "val_loss", "patience": 3,
                       "restored_epoch": 13, "best": 0.4321}
    assert training_notes(stopped, {"loss": [1.0]}) == [
        "early stopping ended the run after epoch 16 of 30: val_loss had not improved for 3 epochs. The run keeps "
        "the weights of epoch 13 (val_loss 0.4321), its best."]


def test_the_run_says_when_it_ran_out_of_epochs_while_validation_loss_was_still_falling():
    # On a small data set (360 examples) the default 40 epochs ended runs that were still learning,
    # with nothing in the output to say so.
    from mmkeras.training import epoch_limit
    from mmkeras.training import training_notes

    falling = {"loss": [1.0, 0.8, 0.7, 0.6], "val_loss": [1.2, 1.0, 0.95, 0.9]}
    cut_short = epoch_limit(None, falling, 4, 10)
    assert cut_short == {"epochs": 4, "monitor": "val_loss", "best_epoch": 4, "best": 0.9}
    assert training_notes(None, falling, cut_short) == [
        "the run used all 4 epochs and val_loss was still falling (its best, 0.9000, at epoch 4): a larger "
        "training.epochs may give a better model. Early stopping ends a longer run once it stops improving."]
    levelled = {"val_loss": [1.0, 0.5, 0.6, 0.7, 0.6, 0.65, 0.7]}  # best 5 epochs before the end
    assert epoch_limit(None, levelled, 7, 10) is None
    assert epoch_limit(None, levelled, 7, 18)["best_epoch"] == 2  # within patience // 3 (6) of the end
    assert epoch_limit({"stopped_after_epoch": 4}, falling, 4, 10) is None  # early stopping ended it
    assert epoch_limit(None, falling, 10, 10) is None  # a resumed or short history: not at the limit
    assert epoch_limit(None, {"loss": [1.0, 0.5]}, 2, 10) is None  # no validation: training loss says nothing


def test_a_training_accuracy_below_validation_is_explained():
    from mmkeras.training import training_notes

    notes = training_notes(None, {"accuracy": [0.5, 0.8], "val_accuracy": [0.6, 0.9], "loss": [1.0, 0.5]})
    assert len(notes) == 1 and notes[0].startswith("training accuracy (0.800) is below validation's (0.900)")
    assert "dropout, modality dropout, augmentation and label smoothing on" in notes[0]
    assert training_notes(None, {"accuracy": [0.9], "val_accuracy": [0.8]}) == []


@pytest.mark.parametrize("classes, expected", [("sorted", ["2", "10", "a", "b"]), ("manifest", ["b", "10", "a", "2"]),
                                               (["a", "b", 2, 10], ["a", "b", "2", "10"])])
def test_classes_keep_the_order_asked_for(classes, expected, tmp_path):
    from mmkeras.recipe import fitted_preprocessor

    rows = [{"text": "x", "label": label} for label in ("b", "10", "a", "2", "b")]
    config = config_lib.as_config({"data": {"train": "unused.csv", "classes": classes},
                                     "modalities": {"text": {"max_tokens": 5, "sequence_length": 2}}})
    assert fitted_preprocessor(config, rows).label_names == expected


def test_classes_that_are_neither_an_order_nor_a_list_of_names_are_refused():
    for wrong in ("alphabetical", ["a", "a"], []):
        with pytest.raises(ValueError, match=r"Config key 'data.classes': expected 'sorted', 'manifest', or a list"):
            config_lib.as_config({"data": {"train": "t.csv", "classes": wrong}, "modalities": {"text": {}}})


def test_with_ema_validation_early_stopping_and_best_keras_all_use_the_averaged_weights(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path))
    config = tiny_config(manifest, epochs=4, ema=0.5, early_stopping_patience=2, learning_rate=0.01)
    seen = {"average": [], "raw": []}

    class Record(keras.callbacks.Callback):  # after the run's own callbacks
        def on_epoch_begin(self, epoch, logs=None):
            if epoch:
                seen["raw"].append(self.model.get_weights())

        def on_epoch_end(self, epoch, logs=None):
            seen["average"].append(self.model.get_weights())

    model, preprocessor, history = train(config, str(tmp_path / "run"), callbacks=[Record()])
    best = int(np.argmin(history["val_loss"]))
    kept = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kept, seen["average"][best])), "the best epoch's average"
    assert not all(np.allclose(a, b) for a, b in zip(seen["average"][0], seen["raw"][0])), "the average is not the raw"
    saved = keras.models.load_model(str(tmp_path / "run" / "best.keras"))
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), kept))
    metrics = json.load(open(tmp_path / "run" / "metrics.json"))
    assert metrics["validation"]["loss"] == pytest.approx(history["val_loss"][best], rel=1e-4), (
        "the logged validation loss is that of the weights the run keeps")
    assert yaml.safe_load(open(tmp_path / "run" / "config.yaml"))["training"]["ema"] == 0.5


def test_with_ema_a_run_another_callback_stops_keeps_the_averaged_weights(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path))
    config = tiny_config(manifest, epochs=4, ema=0.5, early_stopping_patience=0, learning_rate=0.01)
    averages = []

    class StopAfterTwo(keras.callbacks.Callback):  # after the run's own callbacks: sees the average
        def on_epoch_end(self, epoch, logs=None):
            averages.append(self.model.get_weights())
            self.model.stop_training = epoch == 1

    model, _, history = train(config, str(tmp_path / "run"), callbacks=[StopAfterTwo()])
    assert len(history["loss"]) == 2
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), averages[-1])), "the average, not the raw"


@pytest.mark.parametrize("value", [1.0, 0, -0.1, "0.99", True])
def test_an_ema_momentum_outside_0_to_1_is_refused(value):
    with pytest.raises(ValueError, match="training.ema"):
        config_lib.resolve_config({"modalities": {"text": {}}, "training": {"ema": value}})
