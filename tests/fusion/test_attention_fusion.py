import numpy as np

from mmkeras.fusion import AttentionFusion


def test_weights_follow_the_scores_and_fused_vector_is_their_weighted_sum():
    layer = AttentionFusion(["a", "b"], units=4, attention_units=3)
    vectors = [np.ones((2, 3), "float32"), -np.ones((2, 3), "float32")]
    presence = np.ones((2, 2), "float32")
    fused, weights = layer(vectors, presence)
    projected = np.stack([np.asarray(p(v)) for p, v in zip(layer.projections, vectors)], axis=1)
    scores = np.asarray(layer.attention_score(layer.attention_hidden(projected)))[..., 0]
    expected_weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(weights), expected_weights, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fused), (projected * expected_weights[..., None]).sum(1), rtol=1e-5)


def test_an_example_with_no_modality_gives_zeros_not_nan():
    layer = AttentionFusion(["a", "b"], units=4)
    fused, weights = layer([np.ones((1, 3), "float32")] * 2, np.zeros((1, 2), "float32"))
    assert np.all(np.asarray(fused) == 0) and np.all(np.asarray(weights) == 0)
