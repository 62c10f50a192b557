import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import yaml
from media import tiny_config
from media import write_tiny_dataset

from mmkeras import config as config_lib
from mmkeras.training import load_run
from mmkeras.training import train


def test_run_directory_holds_everything_later_steps_need(tiny_run):
    run_dir, _, _ = tiny_run
    for name in ("model.keras", "best.keras", "preprocessor/preprocessor.json", "config.yaml", "history.json",
                 "metrics.json", "training.csv"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert not os.path.exists(os.path.join(run_dir, "backup")), "backup is removed after a finished run"
    history = json.load(open(os.path.join(run_dir, "history.json")))
    assert len(history["loss"]) == 2 and "val_accuracy" in history
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["mixed_precision"] is False and 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    model, preprocessor, config = load_run(run_dir)
    assert preprocessor.label_names == ["class0", "class1", "class2"]
    assert config["fusion"]["type"] == "attention" and sorted(model.input) == sorted(
        ["text", "text_present", "image", "image_present", "audio", "audio_present"])


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated kill after epoch 1")


@pytest.mark.slow
def test_a_killed_run_resumes_from_the_next_epoch(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path))
    config = tiny_config(manifest, epochs=3, early_stopping_patience=0)
    run_dir = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir, callbacks=[StopAfterFirstEpoch()])
    assert os.path.isdir(os.path.join(run_dir, "backup"))
    epochs_seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)

    _, _, history = train(config, run_dir, callbacks=[Record()])
    assert epochs_seen == [1, 2], "the second start trains epochs 2 and 3 only"
    with open(os.path.join(run_dir, "training.csv")) as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]
    assert len(history["loss"]) == 3


def test_class_weights_and_cosine_schedule_train(tmp_path):
    manifest, rows = write_tiny_dataset(str(tmp_path), count=20)
    config = tiny_config(manifest, epochs=1, class_weights=True, lr_schedule="cosine", checkpoint=False)
    _, _, history = train(config, str(tmp_path / "run"))
    assert np.isfinite(history["loss"][0])


def test_config_rejects_unknown_keys_and_resolves_paths(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown config key 'training.epoch'"):
        config_lib.resolve_config({"modalities": {"text": {}}, "training": {"epoch": 3}})
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['height'\] for text modality"):
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
