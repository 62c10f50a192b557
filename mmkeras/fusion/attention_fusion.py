"""Modality attention: a learned softmax weighting of the modalities, example by example."""

import keras
from keras import ops

from mmkeras.fusion.base_fusion import BaseFusion
from mmkeras.fusion.base_fusion import masked_softmax

MODES = ("scale", "sum")


@keras.saving.register_keras_serializable(package="mmkeras")
class AttentionFusion(BaseFusion):
    """Modality attention with weights `a_i = softmax_i(u . tanh(W v_i))` over present modalities.

    `v_i` is modality i projected to `units`; `W` and `u` are shared across modalities; absent
    modalities get weight 0. Two ways to use the weights:

    - `mode="scale"` (default): each projection is scaled by `n * a_i` (n = modalities present,
      so uniform weights scale by 1) and the scaled projections are concatenated, with the
      presence flags. Every modality keeps its own slots, so a modality the weights favour does
      not crowd the others out of one shared vector, and down-weighting a modality (noise, a
      corrupted input) still shows in the weights.
    - `mode="sum"`: the classic convex sum `sum_i a_i v_i` (`units` wide). In this form the
      weights tend to collapse onto the modality that is easiest early in training, and the
      other encoders then stop learning.

    `balance` adds a training loss that keeps the batch's mean weights near uniform over the
    present modalities (KL divergence from uniform), so no modality is switched off for good
    while per-example weights still move.

    Returns `(fused, weights)`: the fused vector and `(batch, modalities)` weights.

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Width of the projections.
        attention_units: int. Width of `W`.
        activation: str. Activation of the projections.
        mode: str. "scale" or "sum" (see above).
        balance: float. Weight of the load-balancing loss (0 turns it off).

    Example:

    >>> import numpy as np
    >>> fusion = AttentionFusion(["text", "image", "audio"], units=4)
    >>> fused, weights = fusion([np.ones((2, 3), "float32")] * 3,
    ...                         np.array([[1, 1, 1], [1, 0, 1]], "float32"))
    >>> tuple(fused.shape), tuple(weights.shape)
    ((2, 15), (2, 3))
    >>> float(weights[1, 1]), round(float(weights[1].numpy().sum()), 5)
    (0.0, 1.0)
    """

    returns_weights = True

    def __init__(self, modalities, units=64, attention_units=32, activation="relu", mode="scale", balance=0.1,
                 **kwargs):
        super().__init__(modalities, units=units, activation=activation, **kwargs)
        if mode not in MODES:
            raise ValueError(f"Expected mode to be one of {list(MODES)}. Received: mode={mode!r}")
        if float(balance) < 0:
            raise ValueError(f"Expected balance >= 0. Received: balance={balance!r}")
        self.attention_units = int(attention_units)
        self.mode = mode
        self.balance = float(balance)
        self.attention_hidden = keras.layers.Dense(self.attention_units, activation="tanh", name="attention_hidden")
        self.attention_score = keras.layers.Dense(1, use_bias=False, name="attention_score")
        if len(self.modalities) == 1:
            # One modality's weight is its presence flag: the scores receive no gradient, and
            # Keras would warn about that at every training step.
            self.attention_hidden.trainable = False
            self.attention_score.trainable = False

    def build(self, vectors_shape, presence_shape=None):
        super().build(vectors_shape, presence_shape)
        self.attention_hidden.build((None, self.units))
        self.attention_score.build((None, self.attention_units))

    def call(self, vectors, presence, training=False):
        self._check_inputs(vectors)
        projected = self.project(vectors, presence)  # (batch, modalities, units)
        scores = self.attention_score(self.attention_hidden(projected))[..., 0]  # (batch, modalities)
        weights = masked_softmax(scores, presence)  # (batch, modalities), float32
        flags = ops.cast(presence, "float32")
        if training and self.balance:
            self.add_loss(self.balance * _balance_loss(weights, flags))
        if self.mode == "sum":
            fused = ops.sum(projected * ops.cast(weights, projected.dtype)[..., None], axis=1)  # (batch, units)
            return fused, weights
        present = ops.sum(flags, axis=-1, keepdims=True)  # (batch, 1)
        scale = ops.cast(weights * present, projected.dtype)[..., None]  # uniform weights → 1
        flat = ops.reshape(projected * scale, (-1, len(self.modalities) * self.units))
        fused = ops.concatenate([flat, ops.cast(flags, flat.dtype)], axis=-1)  # (batch, M * units + M)
        return fused, weights

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        batch = vectors_shape[0][0]
        width = self.units if self.mode == "sum" else len(self.modalities) * (self.units + 1)
        return (batch, width), (batch, len(self.modalities))

    def get_config(self):
        config = super().get_config()
        config.update({"attention_units": self.attention_units, "mode": self.mode, "balance": self.balance})
        return config


def _balance_loss(weights, flags):
    """KL(target || mean weights): target = each modality's share of presence in the batch."""
    per_example = flags / ops.maximum(ops.sum(flags, axis=-1, keepdims=True), 1.0)
    target = ops.mean(per_example, axis=0)  # (modalities,)
    mean = ops.mean(weights, axis=0)
    return ops.sum(target * (ops.log(target + 1e-7) - ops.log(mean + 1e-7)))
