"""The builders are backend-agnostic Keras 3: the same code builds and fits under JAX."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import keras, numpy as np
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import mmkeras
    sys_path = None
    modalities = {
        "text": {"max_tokens": 10, "sequence_length": 6, "embedding_dim": 4, "lstm_units": 4},
        "image": {"height": 8, "width": 8, "channels": 1, "filters": (4,)},
        "audio": {"sample_rate": 8000, "duration": 0.5, "num_mel_bins": 16, "conv_filters": (8,), "lstm_units": 4},
    }
    for fusion in ("attention", "late"):  # every fusion layer runs under JAX in test_keras_harness.py
        model = mmkeras.build_model(modalities, num_classes=3, fusion=fusion, modality_dropout=0.2)
        rng = np.random.default_rng(0)
        x = {"text": rng.integers(1, 10, (8, 6)).astype("int32"),
             "image": rng.normal(size=(8, 8, 8, 1)).astype("float32"),
             "audio": rng.normal(size=(8, 4000)).astype("float32")}
        x.update({f"{m}_present": np.ones((8, 1), "float32") for m in modalities})
        loss = model.fit(x, {"label": rng.integers(0, 3, 8)}, epochs=1, verbose=0).history["loss"][0]
        assert np.isfinite(loss), loss
        print(fusion, "ok", model.predict(x, verbose=0)["label"].shape)
    # explanations: modality Shapley values run under JAX; Integrated Gradients say they need TensorFlow
    from mmkeras import explain
    from mmkeras.heads import Head
    heads = [Head("label", "classification", 3, ["a", "b", "c"])]
    values = explain.modality_shapley(model, x, list(modalities), heads)["label"]
    assert np.allclose(values["values"].sum(axis=1), values["full"] - values["empty"], atol=1e-5)
    try:
        explain.input_attributions(model, x, "image", None, heads, {"label": values["target"]})
    except RuntimeError as error:
        assert "need the TensorFlow backend" in str(error), error
        print("explain ok")
    """
)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install jax)")
def test_builds_and_fits_under_jax():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(" ok ") == 2 and "explain ok" in result.stdout, result.stdout


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install jax)")
def test_backend_agnostic_layers_pass_keras_harness_under_jax():
    """tests/layers/test_keras_harness.py under KERAS_BACKEND=jax: every case but its TF_ONLY ones."""
    harness = os.path.join(os.path.dirname(__file__), "layers", "test_keras_harness.py")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", harness,
                             "-k", "harness or building_blocks or mixed_precision"], capture_output=True, text=True,
                            env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    passed = int(result.stdout.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 20, result.stdout[-500:]  # four single-input cases and the list-input ones, twice
