"""Latency of the exported serving signature (raw bytes in) against the Keras model (decoded tensors in).

Run: `.venv/bin/python benchmarks/serving_latency.py [--repeats 50]`

Both sides answer the same requests: the SavedModel's `serving_default` decodes PNG/WAV/text in
its graph, as TF Serving runs it (without the network); the Keras model gets tensors that were
decoded beforehand. The difference is the price of taking raw bytes.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _synthetic  # noqa: E402
from _bench import call_ms  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmkeras  # noqa: E402

MODALITIES = {
    "text": {"max_tokens": 100, "sequence_length": 16, "embedding_dim": 16, "lstm_units": 16},
    "image": {"height": 32, "width": 32, "channels": 3, "filters": [16, 32]},
    "audio": {"sample_rate": 16000, "duration": 1.0, "num_mel_bins": 32, "conv_filters": [16], "lstm_units": 16},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="mmkeras-latency-")
    manifest, rows = _synthetic.write_files(folder, 64, audio_rate=16000)
    pre = mmkeras.Preprocessor(MODALITIES)
    mmkeras.adapt_preprocessor(pre, manifest)
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(MODALITIES, num_classes=pre.num_classes, fusion="attention")
    path = mmkeras.export_saved_model(model, pre, os.path.join(folder, "export"))
    serve = tf.saved_model.load(path).signatures["serving_default"]

    def read(p):
        with open(os.path.join(folder, p), "rb") as f:
            return f.read()

    print(f"model: attention fusion, 32x32x3 image, 1 s 16 kHz audio, 16 tokens; {args.repeats} repeats, median (p90)")
    print(f"{'batch':>5}  {'SavedModel, raw bytes':>24}  {'Keras predict_on_batch, decoded':>32}  {'ratio':>6}")
    for batch in (1, 32):
        raw = {
            "text": tf.constant([r["text"] for r in rows[:batch]]),
            "image": tf.constant([read(r["image"]) for r in rows[:batch]]),
            "audio": tf.constant([read(r["audio"]) for r in rows[:batch]]),
        }
        decoded = {k: v.numpy() for k, v in pre.preprocess_batch(raw).items()}
        served_ms, served_p90 = call_ms(lambda: serve(**raw), args.repeats)
        # predict_on_batch runs Keras' compiled predict step (an eager model(...) call would run
        # the LSTMs step by step in Python and be ~50x slower: not a fair baseline).
        keras_ms, keras_p90 = call_ms(lambda: model.predict_on_batch(decoded), args.repeats)
        print(f"{batch:>5}  {served_ms:>11.2f} ms ({served_p90:6.2f})  {keras_ms:>19.2f} ms ({keras_p90:6.2f})"
              f"  {served_ms / keras_ms:>6.2f}")
    print(f"machine: {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras {keras.__version__}")


if __name__ == "__main__":
    main()
