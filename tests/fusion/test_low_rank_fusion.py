import numpy as np
import pytest

from mmkeras.fusion import LowRankFusion


def test_output_is_the_rank_weighted_sum_of_products_of_modality_factors():
    layer = LowRankFusion(["a", "b"], units=3, rank=2)
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 2)).astype("float32")]
    presence = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], "float32")
    fused = np.asarray(layer(vectors, presence))
    expected = np.zeros((4, 3))
    projected = [np.asarray(p(v)) * presence[:, i : i + 1] for i, (p, v) in enumerate(zip(layer.projections, vectors))]
    factors = [np.asarray(f) for f in layer.factors]
    for r in range(2):
        product = np.ones((4, 3))
        for z, factor in zip(projected, factors):
            product = product * (np.concatenate([z, np.ones((4, 1))], 1) @ factor[r])
        expected += np.asarray(layer.rank_weights)[r] * product
    np.testing.assert_allclose(fused, expected + np.asarray(layer.bias), rtol=1e-4, atol=1e-5)


def test_an_absent_modality_contributes_only_its_learned_constant():
    layer = LowRankFusion(["a", "b"], units=4, rank=3)
    rng = np.random.default_rng(1)
    vectors = [rng.normal(size=(2, 3)).astype("float32") for _ in range(2)]
    presence = np.array([[1, 0], [1, 0]], "float32")
    garbage = [vectors[0], vectors[1] * 100 + 7]
    np.testing.assert_allclose(np.asarray(layer(vectors, presence)), np.asarray(layer(garbage, presence)), rtol=1e-6)


def test_rank_must_be_positive():
    with pytest.raises(ValueError, match="LowRankFusion argument 'rank': expected an integer >= 1. Received: 0"):
        LowRankFusion(["a"], rank=0)
