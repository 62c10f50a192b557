import numpy as np
from helpers import run_layer_test
from helpers import run_serialization_test

from mmkeras.layers import ModalityLogits


def test_sums_one_linear_map_per_present_modality():
    layer = ModalityLogits(["a", "b"], units=3)
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(3, 2)).astype("float32")]
    presence = np.array([[1, 1], [1, 0], [0, 0]], "float32")
    out = np.asarray(layer(vectors, presence))
    a, b = (np.asarray(d.kernel) for d in layer.maps)
    expected = (vectors[0] @ a) * presence[:, :1] + (vectors[1] @ b) * presence[:, 1:]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    garbage = [vectors[0], np.full_like(vectors[1], np.nan)]  # an absent modality's NaN does not leak
    np.testing.assert_allclose(np.asarray(layer(garbage, presence))[1:], out[1:], rtol=1e-6)


def test_builds_trains_and_round_trips():
    layer = ModalityLogits(["a", "b"], units=2, name="logits")
    vectors = [np.ones((4, 3), "float32"), np.ones((4, 5), "float32")]
    run_layer_test(layer, [vectors, np.ones((4, 2), "float32")], [(4, 2)])
    run_serialization_test(ModalityLogits(["a", "b"], units=2))


def test_float32_logits_stay_float32_under_a_mixed_precision_policy():
    """`build_model` makes the logits `dtype="float32"` so that softmax never runs in float16."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = ModalityLogits(["a", "b"], units=3, dtype="float32")
        rng = np.random.default_rng(1)
        out = layer([rng.normal(size=(2, 4)).astype("float32")] * 2, np.ones((2, 2), "float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert [m.compute_dtype for m in layer.maps] == ["float32", "float32"]
