import numpy as np

from mmkeras.fusion import WeightedFusion


def test_learned_weights_are_a_softmax_over_present_modalities():
    layer = WeightedFusion(["a", "b", "c"], units=2)
    vectors = [np.ones((2, 3), "float32")] * 3
    layer(vectors, np.ones((2, 3), "float32"))
    layer.modality_logits.assign(np.log(np.array([1.0, 2.0, 5.0], "float32")))
    _, weights = layer(vectors, np.array([[1, 1, 1], [1, 0, 1]], "float32"))
    np.testing.assert_allclose(np.asarray(weights), [[0.125, 0.25, 0.625], [1 / 6, 0.0, 5 / 6]], rtol=1e-5)
