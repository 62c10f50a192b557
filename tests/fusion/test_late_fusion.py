import numpy as np
import pytest

from mmkeras.fusion import LateFusion


def test_average_mode_averages_present_predictions():
    layer = LateFusion(["a", "b", "c"], mode="average")
    preds = [np.array([[0.9, 0.1]]), np.array([[0.2, 0.8]]), np.array([[0.5, 0.5]])]
    combined, weights = layer(preds, np.array([[1.0, 0.0, 1.0]]))
    np.testing.assert_allclose(np.asarray(combined), [[0.7, 0.3]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(weights), [[0.5, 0.0, 0.5]], rtol=1e-6)


def test_learned_mode_has_one_trainable_weight_per_modality():
    layer = LateFusion(["a", "b"], mode="learned")
    layer([np.ones((1, 2))] * 2, np.ones((1, 2)))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(2,)]


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match=r"LateFusion argument 'mode': expected one of .* Received: 'max'"):
        LateFusion(["a"], mode="max")


def test_stacking_starts_as_a_product_of_experts_and_renormalises():
    import numpy as np

    from mmkeras.fusion import LateFusion

    layer = LateFusion(["a", "b"], mode="stacking", activation="softmax")
    p = np.array([[0.7, 0.2, 0.1]], "float32")
    q = np.array([[0.2, 0.5, 0.3]], "float32")
    combined, weights = layer([p, q], np.ones((1, 2), "float32"))
    geometric = np.sqrt(p * q)
    np.testing.assert_allclose(np.asarray(combined), geometric / geometric.sum(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(weights), [[0.5, 0.5]], rtol=1e-6)
    alone, weights = layer([p, q], np.array([[1.0, 0.0]], "float32"))
    assert np.asarray(weights).tolist() == [[1.0, 0.0]]
    np.testing.assert_allclose(np.asarray(alone), (np.sqrt(p) / np.sqrt(p).sum()), rtol=1e-5)
