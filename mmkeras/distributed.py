"""Training on several machines: `MultiWorkerMirroredStrategy` with a training step of our own.

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585:
"Attempt to convert a value (PerReplica...)"), while a training step written with the strategy's
own API (`strategy.run`, `tf.nn.compute_average_loss`) runs the same Keras model and optimizer
on every worker, with gradients all-reduced each step. That is the route here: it stays on
TensorFlow (the SavedModel export and the `tf.data` pipeline are TensorFlow's), needs no other
engine, and every worker is told its role the usual way, by `TF_CONFIG`.

`mmkeras train --config C --output RUN` on each machine, with `TF_CONFIG` naming two or more
workers, comes here. Each worker decodes its own share of the data (`make_dataset(shard=...)`:
its TFRecord shards, or every n-th manifest row); `training.batch_size` is the global batch.
The chief (worker 0) writes the run directory; every worker writes a checkpoint each epoch (the
chief into `RUN/backup`, the others into temporary folders, as the strategy requires), and a
run started again resumes from the chief's last one, so `RUN` must be on storage all workers
see (a shared volume or a bucket). Early stopping is on the all-reduced validation loss, so
every worker stops at the same epoch.
"""

import os
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from mmkeras import config as config_lib
from mmkeras import constants
from mmkeras import recipe
from mmkeras import layout
from mmkeras import training
from mmkeras.data import make_dataset
from mmkeras.data import read_manifest
from mmkeras.heads import make_heads
from mmkeras.model import adapt_model
from mmkeras.model import compile_model
from mmkeras.model import walk_layers
from mmkeras.recipe import cluster_from_env


def train(config, output_dir, callbacks=None, overwrite=False):
    """What `mmkeras.train` and `mmkeras train` run: `train_across_workers` on every worker when
    `TF_CONFIG` names two or more, else `mmkeras.training.train` in this process.

    Args and returns as `mmkeras.training.train`.
    """
    if cluster_from_env():
        # Keras' fit cannot run under MultiWorkerMirroredStrategy (see the module's docstring).
        if callbacks:
            raise ValueError("Training on several workers (TF_CONFIG) takes no extra callbacks")
        return train_across_workers(config, output_dir, overwrite=overwrite)
    return training.train(config, output_dir, callbacks=callbacks, overwrite=overwrite)


def train_across_workers(config, output_dir, strategy=None, overwrite=False):
    """Trains as `train()` does, on every worker named in `TF_CONFIG` (see the module's docstring).

    Returns:
        (model, preprocessor, history dict); the run directory is the chief's to write.
    """
    workers, rank, chief = cluster_from_env()
    strategy = strategy or tf.distribute.MultiWorkerMirroredStrategy()
    config = config_lib.as_config(config)
    train_cfg = config["training"]
    ignored = [f"training.{key}" for key, off in (("tensorboard", False), ("lr_schedule", None), ("class_weights", False),
                                                   ("frozen_epochs", 0), ("mixed_precision", "auto"),
                                                   ("jit_compile", False), ("deterministic", False), ("ema", None))
               if train_cfg[key] != off and not (key == "mixed_precision" and train_cfg[key] is False)]
    if ignored:
        warnings.warn(f"Training on {workers} workers does not apply {', '.join(ignored)} (see mmkeras.distributed)",
                      stacklevel=2)
    global_batch = train_cfg["batch_size"]
    if global_batch % workers:
        raise ValueError(f"Config key 'training.batch_size' is the global batch on {workers} workers: expected a "
                         f"multiple of {workers}. Received: {global_batch}")
    # On every worker: one left waiting for the others would hang.
    layout.refuse_finished(output_dir, overwrite, how="pass --overwrite on every worker")
    lock = layout.RunLock(output_dir)
    if chief:  # the chief writes the run directory: it holds the lock until the run is finished
        lock.acquire()
        layout.prepare(output_dir, overwrite)
    try:
        return _train_across_workers(config, output_dir, strategy, overwrite, workers, rank, chief)
    finally:
        lock.release()


class EarlyStop:
    """Early stopping of the custom loop, as `fit`'s in one process (Keras' `EarlyStopping` on
    `val_loss` with the best weights restored): every worker sees the same all-reduced loss and
    holds the same weights, so each keeps its own copy of the best epoch's weights and all stop
    together.

    After a resume the best loss of the epochs before the kill is known from the log but not its
    weights; if no later epoch beats it, the run keeps its last weights, as `fit` does when it
    has no best weights to restore.

    Args:
        history: dict. The run's history so far (`val_loss` among its lists).
        patience: int. Epochs without a better `val_loss` before the run stops; 0 = never.
        epochs: int. The run's epoch limit (for the report).
    """

    def __init__(self, history, patience, epochs):
        values = history.get("val_loss") or []
        self.best = min(values, default=np.inf)
        self.best_epoch = int(np.argmin(values)) + 1 if values else None
        self.patience, self.epochs = patience, epochs
        self.waited, self.weights, self.stopped_after = 0, None, None

    def update(self, epoch, val_loss, model):
        """After epoch `epoch` (counted from 1): whether the run stops now."""
        if val_loss < self.best:
            self.best, self.best_epoch, self.waited = val_loss, epoch, 0
            self.weights = model.get_weights()
            return False
        self.waited += 1
        if self.patience and self.waited >= self.patience:
            self.stopped_after = epoch
            return True
        return False

    def restore(self, model):
        """If the run stopped early: puts the best epoch's weights back (where this process has
        them) and returns what happened, with the keys of `metrics.json`'s `early_stopping`; else
        None."""
        if self.stopped_after is None:
            return None
        restored = self.stopped_after
        if self.weights is not None:
            model.set_weights(self.weights)
            restored = self.best_epoch
        return training.early_stop_report(self.stopped_after, self.epochs, "val_loss", self.patience, restored,
                                          self.best)


def _train_across_workers(config, output_dir, strategy, overwrite, workers, rank, chief):
    data_cfg, train_cfg = config["data"], config["training"]
    global_batch = train_cfg["batch_size"]
    keras.utils.set_random_seed(train_cfg["seed"])  # the same initial weights on every worker

    train_source, val_source = recipe.split_data(config)
    train_manifest = read_manifest(train_source)
    preprocessor = recipe.fitted_preprocessor(config, train_manifest)  # the same data: the same state
    common = dict(seed=train_cfg["seed"], on_bad_record=data_cfg["on_bad_record"])

    def batches(whole, source, training_set):
        """(this worker's share of `source`, distributed; steps an epoch), from `whole`: all of `source`."""
        def make(context):
            return make_dataset(source, preprocessor, training=training_set,
                                batch_size=context.get_per_replica_batch_size(global_batch), drop_remainder=True,
                                shard=(context.num_input_pipelines, context.input_pipeline_id), **common).repeat()

        return strategy.distribute_datasets_from_function(make), whole.num_examples // global_batch

    # All the training data, unsharded: its length sets the steps, and log-mel statistics learn from it.
    whole_train = make_dataset(train_manifest, preprocessor, batch_size=global_batch, **common)
    train_batches, steps = batches(whole_train, train_manifest, True)
    if steps < 1:
        raise ValueError(f"Fewer training examples than one global batch ({global_batch}) across {workers} workers")
    val_batches, val_steps = ((batches(make_dataset(val_source, preprocessor, batch_size=global_batch, **common),
                                       val_source, False)) if val_source is not None else (None, 0))

    head_options = recipe.label_heads(preprocessor, train_cfg)
    heads = make_heads(heads=head_options)
    with strategy.scope():
        model = recipe.model_from_config(config, head_options)
        compile_model(model, heads, learning_rate=train_cfg["learning_rate"], weight_decay=train_cfg["weight_decay"])
        for layer in walk_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                # Batch statistics of the global batch: every worker's moving averages stay the same.
                layer.synchronized = True
        optimizer = model.optimizer
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    # Learned input statistics (log-mel normalization), from all the training data on every worker.
    adapt_model(model, whole_train)
    losses = {h.name: h.loss() for h in heads}
    for loss in losses.values():
        loss.reduction = None  # per example; averaged over the global batch below

    def per_replica(x, y, train_step):
        with tf.GradientTape() as tape:
            outputs = model(x, training=train_step)
            per_example = sum(losses[name](y[name], outputs[name]) for name in losses)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if train_step and model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        if train_step:
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        scores = outputs[constants.DEFAULT_HEAD]
        label = y[constants.DEFAULT_HEAD]
        hits = (tf.cast(tf.equal(tf.argmax(scores, -1), tf.cast(label, tf.int64)), tf.float32)
                if preprocessor.label_type == "classification" else tf.zeros_like(per_example))
        return loss, tf.reduce_sum(hits)

    @tf.function
    def run_steps(iterator, count, train_step):  # train_step: a Python bool (one trace each)
        loss_sum, hits = tf.constant(0.0), tf.constant(0.0)
        for _ in tf.range(count):
            x, y = next(iterator)
            loss, hit = strategy.run(per_replica, args=(x, y, train_step))
            loss_sum += strategy.reduce("SUM", loss, axis=None)
            hits += strategy.reduce("SUM", hit, axis=None)
        return loss_sum / tf.cast(count, tf.float32), hits / tf.cast(count * global_batch, tf.float32)

    backup = os.path.join(output_dir, layout.BACKUP_DIR)
    own_backup = backup if chief else tempfile.mkdtemp(prefix=f"mmkeras-worker{rank}-")
    manager = tf.train.CheckpointManager(checkpoint, own_backup, max_to_keep=1)
    latest = None if overwrite else tf.train.latest_checkpoint(backup)  # the chief clears it when overwriting
    if latest:
        checkpoint.restore(latest)
    log_path = os.path.join(output_dir, layout.LOG_FILE)
    history = layout.read_history(log_path, int(epoch.numpy()), rewrite=chief)
    train_iterator = iter(train_batches)
    val_iterator = iter(val_batches) if val_batches is not None else None
    stopper = EarlyStop(history, train_cfg["early_stopping_patience"], train_cfg["epochs"])
    while int(epoch.numpy()) < train_cfg["epochs"]:
        loss, accuracy = run_steps(train_iterator, tf.constant(steps), True)
        row = {"epoch": int(epoch.numpy()), "loss": float(loss), "accuracy": float(accuracy)}
        if val_steps:
            val_loss, val_accuracy = run_steps(val_iterator, tf.constant(val_steps), False)
            row.update(val_loss=float(val_loss), val_accuracy=float(val_accuracy))
        if chief:  # before the checkpoint: a resumed run drops rows of epochs it runs again
            layout.append_log(log_path, row)
        epoch.assign_add(1)
        manager.save()  # every worker: the strategy's save is collective
        for key, value in row.items():
            history.setdefault(key, []).append(value)
        if train_cfg["verbose"] != 0:
            print(f"worker {rank}/{workers} epoch {row['epoch'] + 1}/{train_cfg['epochs']}: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch")
                  + f"; weights sum {sum(float(np.sum(w)) for w in model.get_weights()):.6f}", flush=True)
        if val_steps and stopper.update(row["epoch"] + 1, row["val_loss"], model):
            break
    stopped = stopper.restore(model)  # every worker: the same weights
    if chief:
        metrics = {"strategy": type(strategy).__name__, "workers": workers, "replicas": strategy.num_replicas_in_sync,
                   "epochs_run": len(history.get("loss", [])), "global_batch_size": global_batch}
        if stopped:
            metrics["early_stopping"] = stopped
        cut_short = training.epoch_limit(stopped, history, train_cfg["epochs"], train_cfg["early_stopping_patience"])
        if cut_short:
            metrics["epoch_limit"] = cut_short
        if val_steps:
            kept = (stopped["restored_epoch"] if stopped else len(history["val_loss"])) - 1
            metrics["validation"] = {"loss": history["val_loss"][kept], "accuracy": history["val_accuracy"][kept]}
        if train_cfg["verbose"] != 0:
            for line in training.training_notes(stopped, history, cut_short):
                print(f"mmkeras: {line}")
        layout.finish(output_dir, model, preprocessor, head_options, config, history, metrics)
    else:
        shutil.rmtree(own_backup, ignore_errors=True)
    return model, preprocessor, history
