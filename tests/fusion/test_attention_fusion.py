import keras
import numpy as np
import pytest

from mmkeras.fusion import AttentionFusion
from mmkeras.fusion.attention_fusion import _balance_loss
from mmkeras.fusion.attention_fusion import _trust_loss


def _scores_to_weights(layer, vectors):
    projected = np.stack([np.asarray(p(v)) for p, v in zip(layer.projections, vectors)], axis=1)
    scores = np.asarray(layer.attention_score(layer.attention_hidden(projected)))[..., 0]
    return projected, np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)


def test_sum_mode_is_the_weighted_sum_of_the_projections():
    layer = AttentionFusion(["a", "b"], units=4, attention_units=3, mode="sum", corruption=0.0)  # no trust gate
    vectors = [np.ones((2, 3), "float32"), -np.ones((2, 3), "float32")]
    fused, weights = layer(vectors, np.ones((2, 2), "float32"))
    projected, expected = _scores_to_weights(layer, vectors)
    np.testing.assert_allclose(np.asarray(weights), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fused), (projected * expected[..., None]).sum(1), rtol=1e-5)


def test_scale_mode_concatenates_projections_scaled_by_present_count_times_weight():
    layer = AttentionFusion(["a", "b", "c"], units=4, attention_units=3)
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=(2, 3)).astype("float32") for _ in range(3)]
    presence = np.array([[1, 1, 1], [1, 0, 1]], "float32")
    fused, weights = layer(vectors, presence)
    projected, _ = _scores_to_weights(layer, vectors)
    weights = np.asarray(weights)
    projected[1, 1] = 0.0  # absent
    expected = projected * (weights * presence.sum(1, keepdims=True))[..., None]
    np.testing.assert_allclose(np.asarray(fused)[:, :12], expected.reshape(2, 12), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(fused)[:, 12:], presence)
    assert weights[1, 1] == 0.0


def test_balance_loss_is_zero_at_uniform_weights_and_grows_with_collapse():
    flags = np.ones((4, 3), "float32")
    uniform = np.full((4, 3), 1 / 3, "float32")
    collapsed = np.array([[0.98, 0.01, 0.01]] * 4, "float32")
    assert abs(float(_balance_loss(uniform, flags))) < 1e-5
    assert float(_balance_loss(collapsed, flags)) > 1.0
    # the target follows presence: a modality missing everywhere is expected to get no weight
    missing = np.array([[1, 1, 0]] * 4, "float32")
    assert abs(float(_balance_loss(np.array([[0.5, 0.5, 0.0]] * 4, "float32"), missing))) < 1e-5


def test_the_balance_loss_is_added_in_training_only():
    layer = AttentionFusion(["a", "b"], units=4, balance=0.5)
    vectors, presence = [np.ones((3, 2), "float32")] * 2, np.ones((3, 2), "float32")
    inputs = [keras.Input((2,)), keras.Input((2,))], keras.Input((2,))
    model = keras.Model(inputs, layer(*inputs)[0])
    model([vectors, presence], training=False)
    assert not model.losses
    model([vectors, presence], training=True)
    assert len(model.losses) == 1


def test_trust_loss_is_cross_entropy_with_corrupted_and_clean_pairs_counting_half_each():
    trust = np.array([[4.0, -4.0], [4.0, 4.0], [0.0, 0.0]], "float32")
    flags = np.array([[1, 1], [1, 1], [1, 0]], "float32")
    corrupted = np.array([[0, 1], [0, 0], [0, 0]], "float32")
    clean_terms = [np.log1p(np.exp(-4.0))] * 3 + [np.log(2.0)]  # -log σ(t) for the 4 clean present pairs
    expected = 0.5 * np.log1p(np.exp(-4.0)) + 0.5 * np.mean(clean_terms)
    np.testing.assert_allclose(float(_trust_loss(trust, corrupted, flags)), expected, rtol=1e-5)
    wrong = np.array([[-4.0, 4.0], [4.0, 4.0], [0.0, 0.0]], "float32")  # trusts the corrupted one
    assert float(_trust_loss(wrong, corrupted, flags)) > 10 * expected


def test_the_gate_scales_the_weights_and_learns_only_from_the_corruption_flags():
    layer = AttentionFusion(["a", "b"], units=4, balance=0.0, reliability=2.0)
    inputs = [keras.Input((2,)), keras.Input((2,))], keras.Input((2,)), keras.Input((2,))
    model = keras.Model(inputs, layer(*inputs)[1])
    rng = np.random.default_rng(0)
    vectors, presence = [rng.normal(size=(3, 2)).astype("float32") for _ in range(2)], np.ones((3, 2), "float32")
    corrupted = np.array([[1, 0], [0, 0], [0, 1]], "float32")
    weights = np.asarray(model([vectors, presence, corrupted], training=False))
    assert not model.losses
    projected, attention = _scores_to_weights(layer, vectors)
    trust = np.asarray(layer.reliability_score(layer.reliability_hidden(projected)))[..., 0]
    gated = attention / (1 + np.exp(-trust))
    np.testing.assert_allclose(weights, gated / gated.sum(axis=1, keepdims=True), rtol=1e-5)
    model([vectors, presence, corrupted], training=True)
    np.testing.assert_allclose(float(model.losses[0]), 2.0 * float(_trust_loss(trust, corrupted, presence)), rtol=1e-5)
    assert not hasattr(AttentionFusion(["a", "b"], corruption=0.0), "reliability_score")


def test_a_layer_saved_before_the_trust_gate_loads_without_one():
    config = AttentionFusion(["a", "b"], units=4).get_config()
    assert config["corruption"] == 0.15 and AttentionFusion.from_config(config).gated
    del config["corruption"], config["reliability"]  # as written before the gate existed
    assert not AttentionFusion.from_config(config).gated


def test_an_example_with_no_modality_gives_zeros_not_nan():
    for mode in ("scale", "sum"):
        layer = AttentionFusion(["a", "b"], units=4, mode=mode)
        fused, weights = layer([np.ones((1, 3), "float32")] * 2, np.zeros((1, 2), "float32"))
        assert np.all(np.asarray(fused) == 0) and np.all(np.asarray(weights) == 0)


def test_bad_options_say_what_was_expected():
    with pytest.raises(ValueError, match=r"AttentionFusion argument 'mode': expected one of .* Received: 'max'"):
        AttentionFusion(["a"], mode="max")
    with pytest.raises(ValueError, match=r"argument 'corruption': expected a number >= 0, < 1. Received: 1"):
        AttentionFusion(["a"], corruption=1)
    with pytest.raises(ValueError, match=r"argument 'reliability': expected a number >= 0. Received: -1"):
        AttentionFusion(["a"], reliability=-1)
    with pytest.raises(ValueError, match=r"argument 'balance': expected a number >= 0. Received: -1"):
        AttentionFusion(["a"], balance=-1)
