"""Training on two workers (TF_CONFIG, loopback addresses): one model on both, resumable after a kill."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from media import tiny_config
from media import write_tiny_dataset

from mmkeras.distributed import EarlyStop
from mmkeras.distributed import cluster_from_env
from mmkeras.training import load_run
from mmkeras.training import train

WORKER_LINE = re.compile(r"worker (\d)/2 epoch (\d+)/\d+: loss ([\d.]+).*weights sum (-?[\d.]+)")


def test_tf_config_names_the_chief_and_this_workers_rank():
    two = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 1}}
    assert cluster_from_env({"TF_CONFIG": json.dumps(two)}) == (3, 2, False)
    alone = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    assert cluster_from_env({"TF_CONFIG": json.dumps(alone)}) is None and cluster_from_env({}) is None


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(config_path, run, logs):
    ports = _free_ports(2)
    workers = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "CUDA_VISIBLE_DEVICES": ""}
        log = open(logs / f"worker{index}.log", "a")
        workers.append(subprocess.Popen([sys.executable, "-m", "mmkeras_cli", "train", "--config", str(config_path),
                                         "--output", str(run)], env=env, stdout=log, stderr=subprocess.STDOUT))
    return workers


def _finish(workers, timeout=300):
    try:
        return [w.wait(timeout=timeout) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()


def _epochs(log_path):
    """Per worker line: {(epoch): (loss, weights sum)}."""
    found = {}
    for line in open(log_path):
        match = WORKER_LINE.search(line)
        if match:
            found[int(match.group(2))] = (float(match.group(3)), float(match.group(4)))
    return found


class _Weights:
    """A model as EarlyStop sees it: weights to copy and put back."""

    def __init__(self):
        self.value = 0

    def get_weights(self):
        return [np.array(self.value)]

    def set_weights(self, weights):
        self.value = int(weights[0])


def test_workers_stop_early_and_keep_the_best_epochs_weights_as_one_process_does():
    # Several workers once kept the last epoch's weights when early stopping ended the run, where
    # one process keeps the best epoch's: the same config gave a model several epochs worse.
    model = _Weights()
    stopper = EarlyStop({}, patience=2, epochs=20)
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.95], start=1):
        model.value = epoch  # the weights after this epoch
        stopped = stopper.update(epoch, loss, model)
    assert stopped
    report = stopper.restore(model)
    assert model.value == 2
    assert report == {"stopped_after_epoch": 4, "of_epochs": 20, "monitor": "val_loss", "patience": 2,
                      "restored_epoch": 2, "best": 0.8}

    # Resumed after a kill: the best epoch came before it, and its weights are gone with the process.
    resumed = EarlyStop({"val_loss": [1.0, 0.7]}, patience=2, epochs=20)
    model.value = 3
    assert not resumed.update(3, 0.9, model)
    model.value = 4
    assert resumed.update(4, 0.8, model)
    assert resumed.restore(model)["restored_epoch"] == 4 and model.value == 4  # the last weights, said so

    # No patience, or the run not stopped: nothing restored, nothing reported.
    never = EarlyStop({}, patience=0, epochs=3)
    assert not any(never.update(epoch, 1.0 + epoch, model) for epoch in (1, 2, 3))
    assert never.restore(model) is None and model.value == 4


@pytest.mark.slow
def test_two_workers_train_one_model_like_a_single_process_and_resume_after_a_kill(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path), count=48)
    config = tiny_config(manifest, epochs=10)
    # Enough epochs for the kill to land mid-run; no early stop, so the resumed run ends at epoch 10.
    config["training"].update(batch_size=8, verbose=2, early_stopping_patience=0)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))

    # Killed after an epoch, both started again: the run goes on from the last checkpoint.
    run, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    workers = _start_workers(tmp_path / "c.yaml", run, logs)
    deadline = time.time() + 300
    # Both workers' logs show an epoch (they print it at nearly the same moment) before the kill.
    while (not (_epochs(logs / "worker0.log") and _epochs(logs / "worker1.log")) and time.time() < deadline
           and workers[0].poll() is None):
        time.sleep(0.1)
    for w in workers:
        w.kill()
    _finish(workers)
    before, other_before = _epochs(logs / "worker0.log"), _epochs(logs / "worker1.log")
    assert 1 <= len(before) < 10, "the kill came after the first epoch and before the last"
    both = sorted(set(before) & set(other_before))
    assert both and all(before[e] == other_before[e] for e in both)  # from a fresh start: one model on both
    for index in range(2):
        open(logs / f"worker{index}.log", "w").close()
    assert _finish(_start_workers(tmp_path / "c.yaml", run, logs)) == [0, 0]
    chief, other = _epochs(logs / "worker0.log"), _epochs(logs / "worker1.log")
    assert min(chief) > 1 and max(chief) == 10  # it did not start from epoch 1 again
    assert chief == other  # one model: the same loss and weights on both workers every epoch
    history = json.load(open(run / "history.json"))
    assert len(history["loss"]) == 10  # one row per epoch, none twice
    np.testing.assert_allclose(history["loss"][: min(chief) - 1], [before[e][0] for e in range(1, min(chief))],
                               rtol=1e-4)

    # The chief's run directory is a normal one.
    metrics = json.load(open(run / "metrics.json"))
    assert metrics["workers"] == 2 and metrics["global_batch_size"] == 8
    load_run(str(run))
    assert not (run / "backup").exists()

    # The same config in one process (Keras' fit, same global batch): it learns as well.
    os.environ.pop("TF_CONFIG", None)
    _, _, single = train(config, str(tmp_path / "single"))
    assert metrics["validation"]["accuracy"] >= 0.6 and single["val_accuracy"][-1] >= 0.6
    assert abs(metrics["validation"]["accuracy"] - single["val_accuracy"][-1]) <= 0.4  # 8-12 validation examples
