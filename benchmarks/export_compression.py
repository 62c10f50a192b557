"""Every export format against the float32 SavedModel, in one run: file size, test accuracy, latency.

Run: `.venv/bin/python benchmarks/export_compression.py [--run RUN --test TEST.csv] [--epochs 30]`.

Without `--run` it writes the demo data set and trains the demo's config (as `mmkeras demo`
does) first. Formats: the float32 SavedModel (`mmkeras export`), Keras' own `quantize("int8")`
then the same SavedModel export (where Keras can quantise the model), and TFLite as float32,
dynamic-range int8, float16 and full int8 (`mmkeras export --format tflite --quantize ...`).

Accuracy is on the demo's test split, from the same decoded tensors for every format (the
SavedModel's `serving_tensors` signature; the TFLite interpreter one example at a time). Latency
is the median of `--latency-runs` calls at batch 1 on one test example, after warm-up calls.
Targets (issue 16): int8 at most 1/3 of the float32 size and within 1 point of its accuracy.
(Not named compression.py: run from this folder, that name would shadow the `compression`
package that jax, which Keras imports, takes from the standard library's backport.)
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402
from _bench import call_ms  # noqa: E402

import mmkeras  # noqa: E402
from mmkeras.demo import DEMO_CONFIG  # noqa: E402
from mmkeras.demo import write_demo_data  # noqa: E402
from mmkeras.evaluation import collect  # noqa: E402
from mmkeras.export import TENSORS_SIGNATURE  # noqa: E402
from mmkeras.export import export_saved_model  # noqa: E402
from mmkeras.layout import weights_bytes  # noqa: E402
from mmkeras.tflite import TFLiteModel  # noqa: E402
from mmkeras.tflite import export_run_tflite  # noqa: E402
from mmkeras import load_run  # noqa: E402
from mmkeras import train  # noqa: E402


def folder_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def median_ms(call, runs):
    return call_ms(call, runs, warmup=5)[0]


def saved_model_row(model, pre, folder, x, y, runs):
    path = export_saved_model(model, pre, folder)
    signature = tf.saved_model.load(path).signatures[TENSORS_SIGNATURE]
    inputs = {k: tf.constant(v) for k, v in x.items()}
    probabilities = signature(**inputs)["probabilities"].numpy()
    one = {k: v[:1] for k, v in inputs.items()}
    return folder_size(path), float((probabilities.argmax(1) == y).mean()), median_ms(lambda: signature(**one), runs)


def tflite_row(model, pre, config, folder, quantize, x, y, runs, calibration):
    path = export_run_tflite(model, pre, config, folder, quantize=quantize, representative_examples=calibration)
    lite = TFLiteModel(folder)
    probabilities = lite.predict(x)["label"]
    one = {name: np.asarray(x[name][:1], detail["dtype"]) for name, detail in lite.inputs.items()}
    return os.path.getsize(path), float((probabilities.argmax(1) == y).mean()), median_ms(lambda: lite.runner(**one), runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing run directory (default: train the demo config)")
    parser.add_argument("--test", help="its labelled test manifest (with --run)")
    parser.add_argument("--epochs", type=int, default=None, help="demo training epochs (default: the demo's)")
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--calibration-examples", type=int, default=200, help="int8: training examples")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="mmkeras-compression-")
    if args.run:
        run, test = args.run, args.test
    else:
        paths = write_demo_data(os.path.join(workdir, "data"))
        config = {**DEMO_CONFIG, "training": {**DEMO_CONFIG["training"], "verbose": 0}}
        if args.epochs:
            config["training"]["epochs"] = args.epochs
        with open(os.path.join(workdir, "config.yaml"), "w") as f:
            yaml.safe_dump(config, f)
        run, test = os.path.join(workdir, "run"), paths["test"]
        print(f"training the demo config into {run}")
        train(os.path.join(workdir, "config.yaml"), run)
    model, pre, config = load_run(run)
    x, y = collect(mmkeras.make_dataset(test, pre, columns=(config or {}).get("data", {}).get("columns"),
                                          batch_size=64))
    print(f"test split: {len(y)} examples; {args.latency_runs} timed calls at batch 1 per format\n")

    rows = {"SavedModel, float32": saved_model_row(model, pre, os.path.join(workdir, "saved"), x, y, args.latency_runs)}
    try:
        quantized = keras.models.clone_model(model)
        quantized.set_weights(model.get_weights())
        quantized.quantize("int8")
        rows["SavedModel, Keras quantize('int8')"] = saved_model_row(
            quantized, pre, os.path.join(workdir, "saved_int8"), x, y, args.latency_runs)
    except Exception as error:  # noqa: BLE001 - reported as a row of the table
        print(f"Keras quantize('int8') + SavedModel export: not available for this model ({type(error).__name__}: "
              f"{str(error).splitlines()[0][:160]})\n")
    for quantize in ("none", "dynamic", "float16", "int8"):
        rows[f"TFLite, {quantize}"] = tflite_row(model, pre, config, os.path.join(workdir, f"tflite_{quantize}"),
                                                 quantize, x, y, args.latency_runs, args.calibration_examples)

    base_size, base_accuracy, base_ms = rows["SavedModel, float32"]
    weights = weights_bytes(model, optimizer=False)
    print(f"float32 weights: {weights / 1024:,.0f} KB\n")
    print("| format | size (KB) | vs SavedModel | vs float32 weights | test accuracy | vs float32 (points) "
          "| latency, batch 1 (ms) | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (size, accuracy, ms) in rows.items():
        print(f"| {name} | {size / 1024:,.0f} | {size / base_size:.2f} | {size / weights:.2f} | {accuracy:.3f} | "
              f"{100 * (accuracy - base_accuracy):+.1f} | {ms:.2f} | {ms / base_ms:.2f} |")
    int8_size, int8_accuracy, _ = rows["TFLite, int8"]
    print(f"\nTFLite int8: {int8_size / base_size:.2f} of the float32 SavedModel's size (target <= 0.33), "
          f"{int8_size / weights:.2f} of the float32 weights, "
          f"{100 * (int8_accuracy - base_accuracy):+.1f} points of accuracy (target within 1)")
    print(f"machine: {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras {keras.__version__}")


if __name__ == "__main__":
    main()
