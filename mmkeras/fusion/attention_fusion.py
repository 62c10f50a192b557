"""Modality attention: a learned softmax weighting of the modalities, example by example."""

import keras
from keras import ops

from mmkeras.fusion.base_fusion import BaseFusion
from mmkeras.fusion.base_fusion import masked_softmax


@keras.saving.register_keras_serializable(package="mmkeras")
class AttentionFusion(BaseFusion):
    """Weighted sum of modality vectors with weights `a_i = softmax_i(u . tanh(W v_i))`.

    `v_i` is modality i projected to `units`; `W` and `u` are shared across modalities. Absent
    modalities get weight 0. Returns `(fused, weights)`: `(batch, units)` and
    `(batch, modalities)`, so the weights can be inspected per example.

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Width of the projections and of the fused vector.
        attention_units: int. Width of `W`.
        activation: str. Activation of the projections.

    Example:

    >>> import numpy as np
    >>> fusion = AttentionFusion(["text", "image", "audio"], units=4)
    >>> fused, weights = fusion([np.ones((2, 3), "float32")] * 3,
    ...                         np.array([[1, 1, 1], [1, 0, 1]], "float32"))
    >>> tuple(fused.shape), tuple(weights.shape)
    ((2, 4), (2, 3))
    >>> float(weights[1, 1]), round(float(weights[1].numpy().sum()), 5)
    (0.0, 1.0)
    """

    returns_weights = True

    def __init__(self, modalities, units=64, attention_units=32, activation="relu", **kwargs):
        super().__init__(modalities, units=units, activation=activation, **kwargs)
        self.attention_units = int(attention_units)
        self.attention_hidden = keras.layers.Dense(self.attention_units, activation="tanh", name="attention_hidden")
        self.attention_score = keras.layers.Dense(1, use_bias=False, name="attention_score")

    def build(self, vectors_shape, presence_shape=None):
        super().build(vectors_shape, presence_shape)
        self.attention_hidden.build((None, self.units))
        self.attention_score.build((None, self.attention_units))

    def call(self, vectors, presence):
        self._check_inputs(vectors)
        projected = self.project(vectors, presence)  # (batch, modalities, units)
        scores = self.attention_score(self.attention_hidden(projected))[..., 0]  # (batch, modalities)
        weights = masked_softmax(scores, presence)  # (batch, modalities)
        fused = ops.sum(projected * ops.cast(weights, projected.dtype)[..., None], axis=1)  # (batch, units)
        return fused, weights

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        batch = vectors_shape[0][0]
        return (batch, self.units), (batch, len(self.modalities))

    def get_config(self):
        config = super().get_config()
        config.update({"attention_units": self.attention_units})
        return config
