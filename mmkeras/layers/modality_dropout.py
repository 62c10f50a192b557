"""Training-time modality dropout on presence flags."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class ModalityDropout(keras.layers.Layer):
    """Marks whole modalities absent at random during training, never all of an example's.

    It acts on the `(batch, modalities)` presence flags, so a dropped modality is handled exactly
    like a missing one: the fusion masks it out. At inference it returns the flags unchanged.
    An example keeps at least one of the modalities it has.

    Args:
        rate: float. Probability that each present modality of an example is dropped.
        seed: int. Seed of the random draws.

    Example:

    >>> import numpy as np
    >>> flags = np.ones((4, 3), "float32")
    >>> ModalityDropout(rate=0.5)(flags, training=False).numpy().tolist()[0]
    [1.0, 1.0, 1.0]
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Expected 0 <= rate < 1. Received: rate={rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True  # the flags pass through with their mask
        self._build_at_init()  # no weights: built on creation (unless a subclass builds), as Keras' own are

    def call(self, presence, training=False):
        if not training or self.rate == 0.0:
            return presence
        draws = keras.random.uniform(ops.shape(presence), seed=self.seed_generator)
        kept = presence * ops.cast(draws >= self.rate, presence.dtype)
        # Where every modality would go, keep the flags as they were.
        nothing_left = ops.sum(kept, axis=-1, keepdims=True) <= 0
        return ops.where(nothing_left, presence, kept)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
