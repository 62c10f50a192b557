"""What every fusion layer must do: build, call, train, round-trip its config, respect presence."""

import numpy as np
import pytest
from helpers import TINY_FUSION_OPTIONS
from helpers import run_layer_test
from helpers import run_serialization_test

from mmkeras.fusion import FUSIONS
from mmkeras.fusion import get_fusion

MODALITIES = ["text", "image", "audio"]


def _inputs(batch=4):
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=(batch, width)).astype("float32") for width in (3, 5, 7)]
    presence = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 0]][:batch], "float32")
    return vectors, presence


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_layer_builds_calls_and_trains(name):
    layer = get_fusion(name)(MODALITIES, **TINY_FUSION_OPTIONS[name])
    vectors, presence = _inputs()
    if name == "late":  # decision level: fuses per-modality predictions of one width
        vectors = [np.abs(v[:, :3]) for v in vectors]
    run_layer_test(layer, [vectors, presence], _expected_shapes(layer, name))


def _expected_shapes(layer, name):
    width = {"concat": 3 * (8 + 1), "attention": 3 * (8 + 1), "late": 3}.get(name, 8)
    return [(4, width), (4, 3)] if layer.returns_weights else [(4, width)]


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_config_round_trips(name):
    clone = run_serialization_test(get_fusion(name)(MODALITIES, name="fusion", **TINY_FUSION_OPTIONS[name]))
    assert clone.modalities == MODALITIES


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_absent_modality_garbage_does_not_reach_the_output(name):
    layer = get_fusion(name)(MODALITIES, **TINY_FUSION_OPTIONS[name])
    vectors, presence = _inputs()
    if name == "late":
        vectors = [np.abs(v[:, :3]) for v in vectors]
    before = layer(vectors, presence)
    garbage = [np.where(presence[:, i : i + 1] > 0, v, 1e4 * np.sign(v) + 7.0) for i, v in enumerate(vectors)]
    garbage[1][1, 0] = np.nan  # even a NaN in an absent modality must not leak
    after = layer(garbage, presence)
    if not layer.returns_weights:
        before, after = (before,), (after,)
    for b, a in zip(before, after):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(n for n, cls in FUSIONS.items() if cls.returns_weights))
def test_weights_are_zero_for_absent_and_sum_to_one(name):
    layer = get_fusion(name)(MODALITIES, **TINY_FUSION_OPTIONS[name])
    vectors, presence = _inputs()
    if name == "late":
        vectors = [np.abs(v[:, :3]) for v in vectors]
    _, weights = layer(vectors, presence)
    weights = np.asarray(weights)
    assert np.all(weights[presence == 0] == 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_fusion_names_the_choices():
    with pytest.raises(ValueError, match=r"Expected one of \['attention', 'concat'.*Received: fusion='sum'"):
        get_fusion("sum")


def test_wrong_number_of_inputs_is_reported():
    layer = get_fusion("concat")(MODALITIES, units=4)
    vectors, presence = _inputs()
    with pytest.raises(ValueError, match="expected 3 inputs"):
        layer(vectors[:2], presence)


@pytest.mark.parametrize("name", ["concat", "gated", "transformer"])
def test_missing_embeddings_stand_in_for_absent_modalities(name):
    layer = get_fusion(name)(MODALITIES, missing_embeddings=True, **TINY_FUSION_OPTIONS[name])
    vectors, presence = _inputs()
    before = layer(vectors, presence)
    before = before[0] if layer.returns_weights else before
    layer.missing_embedding.assign(np.ones((3, 8), "float32"))
    after = layer(vectors, presence)
    after = after[0] if layer.returns_weights else after
    complete = presence.sum(axis=1) == 3
    np.testing.assert_allclose(np.asarray(before)[complete], np.asarray(after)[complete], rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(before)[~complete], np.asarray(after)[~complete])
    garbage = [np.where(presence[:, i : i + 1] > 0, v, 1e3) for i, v in enumerate(vectors)]
    again = layer(garbage, presence)
    np.testing.assert_allclose(np.asarray(again[0] if layer.returns_weights else again), np.asarray(after),
                               rtol=1e-5, atol=1e-5)
    assert run_serialization_test(layer).missing_embeddings is True



@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_a_float32_fusion_computes_in_float32_under_a_mixed_precision_policy(name):
    """`dtype=` reaches every sub-layer, as `build_model` relies on for layers it keeps in float32."""
    import keras

    vectors, presence = _inputs()
    if name == "late":
        vectors = [np.abs(v[:, :3]) for v in vectors]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = get_fusion(name)(MODALITIES, dtype="float32", **TINY_FUSION_OPTIONS[name])
        out = layer(vectors, presence)
        mixed = get_fusion(name)(MODALITIES, **TINY_FUSION_OPTIONS[name])
        mixed(vectors, presence)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    outputs = out if isinstance(out, (tuple, list)) else [out]
    assert all(keras.backend.standardize_dtype(o.dtype) == "float32" for o in outputs)
    inner = list(layer._flatten_layers(include_self=False))
    assert {sub.compute_dtype for sub in inner} <= {"float32"}
    assert {sub.compute_dtype for sub in mixed._flatten_layers(include_self=False)} <= {"float16"}


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_every_option_is_in_the_options_table_and_a_bad_value_names_it(name):
    """The table a config's fusion block is checked against is the layer's own arguments, and the
    layer built in Python refuses a bad value with the same check, naming the argument."""
    import inspect

    cls = get_fusion(name)
    arguments = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass.__module__.startswith("mmkeras."):
            arguments |= set(inspect.signature(klass.__init__).parameters) - {"self", "modalities", "kwargs"}
    assert set(cls.OPTIONS) == arguments
    for option in cls.OPTIONS:
        with pytest.raises(ValueError, match=rf"{cls.__name__} argument '{option}': expected .* Received: \[\]"):
            cls(MODALITIES, **{option: []})
