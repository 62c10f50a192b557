"""SpecAugment-style masking of log-mel features, training only."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class SpecAugment(keras.layers.Layer):
    """Zeroes random bands of time frames and of mel bins during training (Park et al., 2019).

    Works on `(batch, frames, bins)` features that are standardised (0 is their mean), such as
    `LogMelSpectrogram`'s output. Each example gets its own masks; at inference the features
    pass through unchanged.

    Args:
        time_masks: int. Time bands per example.
        time_width: float. Widest time band, as a fraction of the frames.
        freq_masks: int. Frequency bands per example.
        freq_width: float. Widest frequency band, as a fraction of the bins.
        seed: int. Seed of the random draws.

    Example:

    >>> import numpy as np
    >>> layer = SpecAugment(time_masks=1, time_width=0.5, freq_masks=1, freq_width=0.5, seed=0)
    >>> x = np.ones((2, 10, 8), "float32")
    >>> bool((layer(x, training=False) == 1).numpy().all()), bool((layer(x, training=True) == 0).numpy().any())
    (True, True)
    """

    def __init__(self, time_masks=2, time_width=0.1, freq_masks=2, freq_width=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("time_width", time_width), ("freq_width", freq_width)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"Expected {name} in [0, 1]. Received: {name}={value!r}")
        self.time_masks = int(time_masks)
        self.time_width = float(time_width)
        self.freq_masks = int(freq_masks)
        self.freq_width = float(freq_width)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True  # masks bands of the frames it is given: a frame mask still holds
        self._build_at_init()  # no weights: built on creation (unless a subclass builds), as Keras' own are

    def _keep(self, batch, size, masks, width):
        """(batch, size) 1/0: 0 inside `masks` random bands of up to `width * size` positions."""
        keep = ops.ones((batch, size))
        widest = int(width * size)
        if not masks or widest < 1:
            return keep
        positions = ops.arange(size, dtype="float32")[None, :]
        for _ in range(masks):
            band = ops.floor(keras.random.uniform((batch, 1), 0.0, widest + 1.0, seed=self.seed_generator))
            start = ops.floor(keras.random.uniform((batch, 1), 0.0, 1.0, seed=self.seed_generator) * (size - band + 1))
            inside = ops.logical_and(positions >= start, positions < start + band)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        return keep

    def call(self, features, training=False):
        if not training:
            return features
        batch, frames, bins = ops.shape(features)[0], features.shape[1], features.shape[2]
        keep = self._keep(batch, frames, self.time_masks, self.time_width)[:, :, None]
        keep = keep * self._keep(batch, bins, self.freq_masks, self.freq_width)[:, None, :]
        return features * ops.cast(keep, features.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"time_masks": self.time_masks, "time_width": self.time_width, "freq_masks": self.freq_masks,
                       "freq_width": self.freq_width, "seed": self.seed})
        return config
