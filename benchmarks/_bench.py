"""Timing the benchmarks share: epochs of `model.fit`, and single calls."""

import time

import keras
import numpy as np


class EpochTimes(keras.callbacks.Callback):
    """Wall time of each epoch of a `fit` call (`times`, seconds)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def later_epochs_rate(timer, examples):
    """Examples/s of the median epoch after the first (which traces the step and starts the pipeline)."""
    return examples / float(np.median(timer.times[1:]))



def call_ms(fn, repeats, warmup=2):
    """(median, 90th percentile) in milliseconds of `repeats` calls of `fn`, after `warmup` untimed ones
    (tracing, first allocations)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), 1000 * float(np.percentile(times, 90))
