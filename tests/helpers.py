"""Test helpers that do the heavy lifting (after keras-hub's TestCase), at tiny sizes."""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from mmkeras import constants

def built_once(tmp_path_factory, name, build):
    """The folder `name`, filled by `build(folder)` once per test session, however many xdist
    workers ask: the first to take the lock builds it, the others wait and then read it. Tests
    must only read it (copy it to change it). Each worker built its own before: a minute of
    training repeated for nothing."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder the workers' own temporary roots share
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if `build` fails
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a build that failed left
            folder.mkdir(exist_ok=True)
            build(folder)
            (folder / ".built").touch()
    return folder


#: Tiny settings for every modality: vocabulary 10, 8x8 grey images, half a second of 8 kHz audio.
TINY_MODALITIES = {
    "text": {"max_tokens": 10, "sequence_length": 6, "embedding_dim": 4, "lstm_units": 4},
    "image": {"height": 8, "width": 8, "channels": 1, "filters": (4, 8)},
    "audio": {"sample_rate": 8000, "duration": 0.5, "num_mel_bins": 16, "conv_filters": (8,), "lstm_units": 4},
}

#: Tiny fusion options (each fusion's own argument names).
TINY_FUSION_OPTIONS = {
    "concat": {"units": 8},
    "attention": {"units": 8, "attention_units": 4},
    "weighted": {"units": 8},
    "gated": {"units": 8},
    "transformer": {"units": 8, "num_heads": 2, "feedforward_units": 8},
    "late": {"mode": "learned"},
    "low_rank": {"units": 8, "rank": 2},
}


def random_inputs(model, n=6, seed=0, present=True):
    """A dict of random inputs matching `model.input`, all modalities present (or all absent)."""
    rng = np.random.default_rng(seed)
    x = {}
    for name, tensor in model.input.items():
        shape = (n,) + tuple(tensor.shape[1:])
        if name.endswith(constants.PRESENT_SUFFIX):
            x[name] = np.full(shape, 1.0 if present else 0.0, "float32")
        elif "int" in str(tensor.dtype):
            x[name] = rng.integers(1, 10, shape).astype("int32")
        else:
            x[name] = rng.normal(size=shape).astype("float32")
    return x


def random_labels(model, n=6, seed=0):
    """Labels for every head of `model`, shaped from its outputs."""
    rng = np.random.default_rng(seed)
    y = {}
    for name, tensor in model.output.items():
        units = tensor.shape[-1]
        loss = model.loss[name] if isinstance(model.loss, dict) else None
        kind = type(loss).__name__
        if kind == "SparseCategoricalCrossentropy":
            y[name] = rng.integers(0, units, n)
        elif kind == "BinaryCrossentropy":
            y[name] = rng.integers(0, 2, (n, units)).astype("float32")
        else:
            y[name] = rng.normal(size=(n, units)).astype("float32")
    return y


def run_layer_test(layer, inputs, expected_shapes, fit_target_shape=None, **call_kwargs):
    """Builds `layer`, calls it symbolically and eagerly, and runs one fit step through it.

    Args:
        layer: the layer under test.
        inputs: list of numpy arrays (positional call arguments; a list argument is a list).
        expected_shapes: shape tuples of the outputs (batch dimension included).
    """

    def as_list(x):
        return list(x) if isinstance(x, (list, tuple)) else [x]

    eager = as_list(layer(*inputs, **call_kwargs))
    assert [tuple(o.shape) for o in eager] == [tuple(s) for s in expected_shapes]

    # Symbolic call inside a functional model, then one training step.
    def symbolic(value):
        if isinstance(value, list):
            return [symbolic(v) for v in value]
        return keras.Input(value.shape[1:], dtype=str(value.dtype))

    sym_inputs = [symbolic(v) for v in inputs]
    sym_out = as_list(layer(*sym_inputs, **call_kwargs))
    assert [tuple(o.shape[1:]) for o in sym_out] == [tuple(s[1:]) for s in expected_shapes]
    flat_inputs = keras.tree.flatten(sym_inputs)
    head = keras.layers.Dense(1)(keras.layers.Flatten()(sym_out[0]))
    model = keras.Model(flat_inputs, head)
    model.compile(optimizer="adam", loss="mse")
    flat_values = keras.tree.flatten(inputs)
    batch = flat_values[0].shape[0]
    history = model.fit(flat_values, np.zeros((batch, 1), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    return eager


def run_serialization_test(layer):
    """`from_config(get_config())` gives a layer with the same config (compared as JSON)."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True, default=str) == json.dumps(
        config, sort_keys=True, default=str
    )
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer)
    return clone


def run_model_saving_test(model, x, path):
    """Saves `model` as `.keras`, reloads it in this process, and checks the outputs are equal."""
    path = str(path)
    model.save(path)
    reloaded = keras.saving.load_model(path)
    expected = model.predict(x, verbose=0)
    actual = reloaded.predict(x, verbose=0)
    keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), expected, actual)
    return reloaded


def run_export_test(model, x, path):
    """`model.export()`, reload the SavedModel, `serving_default` present, other batch sizes work."""
    path = str(path)
    model.export(path, verbose=False)
    restored = tf.saved_model.load(path)
    assert "serving_default" in restored.signatures
    expected = model.predict(x, verbose=0)
    for n in (len(next(iter(x.values()))), 1):
        batch = {k: tf.constant(v[:n]) for k, v in x.items()}
        actual = restored.serve(batch)
        keras.tree.map_structure(
            lambda a, b: np.testing.assert_allclose(a[:n], np.asarray(b), rtol=1e-5, atol=1e-6), expected, actual
        )
        signature_out = restored.signatures["serving_default"](**batch)
        assert set(signature_out) == set(expected)
    return restored


def predict_in_fresh_process(model_paths, x, workdir, env=None):
    """Loads each `.keras` file in a new Python process (importing only mmkeras) and predicts `x`.

    Returns a list of output dicts, one per path.
    """
    inputs_path = os.path.join(workdir, "fresh_inputs.npz")
    np.savez(inputs_path, **x)
    script = textwrap.dedent(
        """
        import sys, numpy as np
        import keras
        import mmkeras  # registers the custom layers
        x = dict(np.load(sys.argv[1]))
        for i, path in enumerate(sys.argv[3:]):
            out = keras.saving.load_model(path).predict(x, verbose=0)
            np.savez(f"{sys.argv[2]}_{i}.npz", **out)
        """
    )
    prefix = os.path.join(workdir, "fresh_outputs")
    run_env = dict(os.environ, **(env or {}))
    result = subprocess.run(
        [sys.executable, "-c", script, inputs_path, prefix, *map(str, model_paths)],
        capture_output=True,
        text=True,
        env=run_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [dict(np.load(f"{prefix}_{i}.npz")) for i in range(len(model_paths))]
