import numpy as np
import pytest
from helpers import run_serialization_test

from mmkeras.layers import SpecAugment


def test_masks_whole_time_and_frequency_bands_per_example_in_training_only():
    layer = SpecAugment(time_masks=1, time_width=0.3, freq_masks=1, freq_width=0.3, seed=2)
    x = np.ones((64, 20, 10), "float32")
    out = np.asarray(layer(x, training=True))
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    masked_frames = (out == 0).all(axis=2)  # a time band zeroes every bin of its frames
    masked_bins = (out == 0).all(axis=1)
    assert masked_frames.sum(axis=1).max() <= 6 and masked_bins.sum(axis=1).max() <= 3
    assert masked_frames.any() and masked_bins.any()
    assert len({tuple(row) for row in masked_frames}) > 5, "each example gets its own masks"
    assert set(np.unique(out)) <= {0.0, 1.0}


def test_round_trips_and_checks_widths():
    run_serialization_test(SpecAugment(time_masks=3, time_width=0.2, seed=1))
    with pytest.raises(ValueError, match="Received: time_width=1.5"):
        SpecAugment(time_width=1.5)
