"""Training speed in float32, mixed_float16, and mixed + XLA, from files and from cached tensors.

Run on a GPU machine: `.venv/bin/python benchmarks/gpu_training.py [--examples 4096 --batch-size 128]`.
It runs on CPU too (`--examples 16 --epochs 2 --feeds files` in CI), where mixed precision has no
fast kernels and the figures only show that every mode works.

One model (text, 32x32 RGB image, 1 s of 16 kHz audio, attention fusion: the pipeline benchmark's)
and one generated data set for every mode. Per mode: examples/s and steps/s of the median epoch
after the first, fed by the `tf.data` pipeline decoding the files each epoch (one iterator, as
`mmkeras train` runs it) and fed from the same tensors already in memory; the ratio of the two
says whether the pipeline keeps up; peak GPU memory of the mode (GPU only).
Targets (issue 15): mixed + XLA at least 2x float32 steps/s; files at least 0.95 of cached on a GPU.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _synthetic  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from _bench import EpochTimes  # noqa: E402
from _bench import later_epochs_rate  # noqa: E402

import mmkeras  # noqa: E402
from mmkeras.evaluation import collect  # noqa: E402
from mmkeras.heads import make_heads  # noqa: E402
from mmkeras.model import compile_model  # noqa: E402

MODALITIES = {
    "text": {"max_tokens": 100, "sequence_length": 16, "embedding_dim": 16, "lstm_units": 16},
    "image": {"height": 32, "width": 32, "channels": 3, "filters": [16, 32]},
    "audio": {"sample_rate": 16000, "duration": 1.0, "num_mel_bins": 32, "conv_filters": [16], "lstm_units": 16},
}
MODES = (("float32", "float32", False), ("mixed_float16", "mixed_float16", False),
         ("mixed_float16 + XLA", "mixed_float16", True))


def run_mode(policy, jit, pre, fed, in_memory, count, batch_size, epochs, gpu):
    """(examples/s from files, examples/s from memory or None, peak GPU bytes or None) for one mode."""
    keras.mixed_precision.set_global_policy(policy)
    feeds = [((fed.repeat(),), {"steps_per_epoch": len(fed)})]
    if in_memory is not None:
        feeds.append(((in_memory[0], in_memory[1]), {"batch_size": batch_size, "shuffle": True}))
    try:
        rates = [None, None]
        for index, (fit_args, fit_kwargs) in enumerate(feeds):
            keras.utils.set_random_seed(0)
            model = mmkeras.build_model(MODALITIES, num_classes=pre.num_classes, fusion="attention", compile=False)
            compile_model(model, make_heads(pre.num_classes), jit_compile=jit)
            if gpu:
                tf.config.experimental.reset_memory_stats("GPU:0")
            timer = EpochTimes()
            model.fit(*fit_args, epochs=epochs, verbose=0, callbacks=[timer], **fit_kwargs)
            rates[index] = later_epochs_rate(timer, count)
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpu else None
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return rates[0], rates[1], peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4, help="timed: every epoch after the first")
    parser.add_argument("--feeds", choices=("both", "files"), default="both",
                        help="files: only the tf.data pipeline, not the cached-tensor comparison (half the time)")
    args = parser.parse_args()

    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    folder = tempfile.mkdtemp(prefix="mmkeras-gpu-bench-")
    manifest, _ = _synthetic.write_files(folder, args.examples)
    pre = mmkeras.Preprocessor(MODALITIES)
    mmkeras.adapt_preprocessor(pre, manifest)
    fed = mmkeras.make_dataset(manifest, pre, batch_size=args.batch_size, training=True, seed=0)
    in_memory = None
    if args.feeds == "both":
        in_memory = collect(mmkeras.make_dataset(manifest, pre, batch_size=args.batch_size))
    steps = len(fed)

    print(f"device: {device}; {args.examples} examples, batch {args.batch_size} ({steps} steps an epoch), "
          f"{args.epochs} epochs, TensorFlow {tf.__version__}, Keras {keras.__version__}\n")
    print("| mode | from files (examples/s) | from cached tensors (examples/s) | files / cached | steps/s (files) "
          "| vs float32 | peak GPU memory (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = None
    for name, policy, jit in MODES:
        files, cached, peak = run_mode(policy, jit, pre, fed, in_memory, args.examples, args.batch_size,
                                       args.epochs, bool(gpus))
        base = base or files
        memory = f"{peak / 2**20:,.0f}" if peak is not None else "n/a (CPU)"
        cached_cells = f"{cached:,.0f} | {files / cached:.2f}" if cached is not None else "n/a | n/a"
        print(f"| {name} | {files:,.0f} | {cached_cells} | {files / args.batch_size:.1f} "
              f"| {files / base:.2f} | {memory} |", flush=True)


if __name__ == "__main__":
    main()
