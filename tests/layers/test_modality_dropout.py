import numpy as np
import pytest
from helpers import run_serialization_test

from mmkeras.layers import ModalityDropout


def test_drops_at_about_the_rate_but_never_every_modality():
    flags = np.ones((4000, 3), "float32")
    flags[::2, 2] = 0.0  # some examples miss a modality already
    dropped = np.asarray(ModalityDropout(rate=0.3, seed=1)(flags, training=True))
    assert np.all(dropped.sum(axis=1) >= 1)
    assert np.all(dropped <= flags)  # never marks a missing modality present
    rate = 1 - dropped[1::2].mean()  # examples with all three modalities
    assert 0.2 < rate < 0.35


def test_identity_at_inference_and_round_trips():
    layer = ModalityDropout(rate=0.5, seed=3)
    flags = np.array([[1, 0, 1]], "float32")
    assert np.asarray(layer(flags, training=False)).tolist() == flags.tolist()
    run_serialization_test(layer)


def test_rate_must_be_a_probability():
    with pytest.raises(ValueError, match="Received: rate=1.0"):
        ModalityDropout(rate=1.0)
