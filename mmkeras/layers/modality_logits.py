"""Per-modality logits added to a head: a direct training signal for every encoder."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class ModalityLogits(keras.layers.Layer):
    """`sum_i present_i * (W_i v_i)`: one linear map per modality to a head's logits.

    Added to the logits a feature-level fusion computes, it makes the head a mix of feature-
    and decision-level fusion: every encoder gets a gradient from the labels directly (as in
    late fusion), whatever weight the fusion gives it, so no branch stops learning because
    another one dominated early. Absent modalities add nothing.

    Args:
        modalities: list of str. Names of the modalities, in input order.
        units: int. Width of the head's logits.

    Example:

    >>> import numpy as np
    >>> layer = ModalityLogits(["text", "image"], units=3)
    >>> out = layer([np.ones((2, 4), "float32"), np.ones((2, 5), "float32")], np.array([[1, 0], [0, 0]], "float32"))
    >>> tuple(out.shape), float(np.abs(out[1]).max())
    ((2, 3), 0.0)
    """

    def __init__(self, modalities, units, **kwargs):
        super().__init__(**kwargs)
        self.modalities = list(modalities)
        self.units = int(units)
        self.maps = [keras.layers.Dense(self.units, use_bias=False, dtype=self.dtype_policy, name=f"{m}_logits") for m in self.modalities]

    def build(self, vectors_shape, presence_shape=None):
        for dense, shape in zip(self.maps, vectors_shape):
            dense.build(shape)
        self.built = True

    def call(self, vectors, presence):
        total = None
        for i, (dense, vector) in enumerate(zip(self.maps, vectors)):
            flag = ops.cast(presence[:, i : i + 1], vector.dtype)
            term = dense(ops.where(flag > 0, vector, ops.zeros_like(vector)))
            total = term if total is None else total + term
        return total

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        return (vectors_shape[0][0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({"modalities": self.modalities, "units": self.units})
        return config
