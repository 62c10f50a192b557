import numpy as np
import pytest

from mmkeras.fusion import TransformerFusion


def test_units_must_divide_among_heads():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TransformerFusion(["a", "b"], units=10, num_heads=4)


def test_a_lone_modality_gives_the_same_output_whatever_the_absent_ones_hold():
    layer = TransformerFusion(["a", "b", "c"], units=8, num_heads=2, dropout=0.0)
    rng = np.random.default_rng(1)
    present = rng.normal(size=(1, 4)).astype("float32")
    out1 = layer([present, rng.normal(size=(1, 4)).astype("float32")] * 1 + [present], np.array([[1, 0, 0]], "float32"))
    out2 = layer([present, rng.normal(size=(1, 4)).astype("float32")] * 1 + [-present], np.array([[1, 0, 0]], "float32"))
    np.testing.assert_allclose(np.asarray(out1), np.asarray(out2), rtol=1e-5, atol=1e-6)
