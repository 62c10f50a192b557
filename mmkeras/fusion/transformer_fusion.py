"""Modalities as tokens through a transformer encoder block."""

import keras
from keras import ops

from mmkeras import checks
from mmkeras.fusion.base_fusion import BaseFusion
from mmkeras.fusion.base_fusion import check_arguments
from mmkeras.fusion.base_fusion import masked_softmax


@keras.saving.register_keras_serializable(package="mmkeras")
class TransformerFusion(BaseFusion):
    """Self-attention across modality tokens, then mean pooling over the present ones.

    Each modality vector is projected to `units` and gets a learned modality embedding; absent
    modalities are masked out of the attention keys and of the pooling.

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Token width (and width of the fused vector).
        num_heads: int. Attention heads; `units` must be divisible by it.
        feedforward_units: int. Hidden width of the feed-forward block.
        dropout: float. Dropout in attention and feed-forward.
        activation: str. Activation of the projections.

    Example:

    >>> import numpy as np
    >>> fusion = TransformerFusion(["text", "image"], units=8, num_heads=2)
    >>> tuple(fusion([np.ones((3, 5), "float32")] * 2, np.ones((3, 2), "float32")).shape)
    (3, 8)
    """

    OPTIONS = {**BaseFusion.OPTIONS, "num_heads": checks.integer(1), "feedforward_units": checks.integer(1),
               "dropout": checks.number(0, 1)}

    def __init__(
        self, modalities, units=64, num_heads=4, feedforward_units=128, dropout=0.1, activation="relu", **kwargs
    ):
        super().__init__(modalities, units=units, activation=activation, **kwargs)
        check_arguments(self, num_heads=num_heads, feedforward_units=feedforward_units, dropout=dropout)
        if self.units % num_heads:
            raise ValueError(
                f"Expected units to be divisible by num_heads. Received: units={units}, num_heads={num_heads}"
            )
        self.num_heads = int(num_heads)
        self.feedforward_units = int(feedforward_units)
        self.dropout = float(dropout)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=self.units // self.num_heads, dropout=self.dropout, dtype=self.dtype_policy, name="attention"
        )
        self.attention_norm = keras.layers.LayerNormalization(dtype=self.dtype_policy, name="attention_norm")
        self.feedforward_hidden = keras.layers.Dense(self.feedforward_units, activation="gelu", dtype=self.dtype_policy, name="feedforward_hidden")
        self.feedforward_output = keras.layers.Dense(self.units, dtype=self.dtype_policy, name="feedforward_output")
        self.feedforward_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="feedforward_dropout")
        self.feedforward_norm = keras.layers.LayerNormalization(dtype=self.dtype_policy, name="feedforward_norm")

    def build(self, vectors_shape, presence_shape=None):
        super().build(vectors_shape, presence_shape)
        tokens = (None, len(self.modalities), self.units)
        self.modality_embedding = self.add_weight(
            name="modality_embedding", shape=(len(self.modalities), self.units), initializer="glorot_uniform"
        )
        self.attention.build(tokens, tokens)
        self.attention_norm.build(tokens)
        self.feedforward_hidden.build(tokens)
        self.feedforward_output.build((None, len(self.modalities), self.feedforward_units))
        self.feedforward_norm.build(tokens)

    def call(self, vectors, presence, training=False):
        self._check_inputs(vectors)
        tokens = self.project(vectors, presence)  # (batch, modalities, units)
        tokens = tokens + ops.cast(self.modality_embedding, tokens.dtype)[None]
        # With missing embeddings, an absent modality is a learned "missing" token that takes part.
        present = ops.cast(ops.ones_like(presence) if self.missing_embeddings else presence, "bool")
        key_mask = ops.broadcast_to(present[:, None, :], (ops.shape(present)[0], len(self.modalities), len(self.modalities)))
        attended = self.attention(tokens, tokens, attention_mask=key_mask, training=training)
        tokens = self.attention_norm(tokens + attended)  # (batch, modalities, units)
        hidden = self.feedforward_output(self.feedforward_hidden(tokens))
        tokens = self.feedforward_norm(tokens + self.feedforward_dropout(hidden, training=training))
        # The mean over the present tokens, as uniform softmax weights (no division: see masked_softmax)
        uniform = masked_softmax(ops.zeros_like(ops.cast(present, "float32")), present)  # (batch, modalities)
        pooled = ops.sum(tokens * ops.cast(uniform, tokens.dtype)[..., None], axis=1)  # (batch, units)
        return pooled

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        return (vectors_shape[0][0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_heads": self.num_heads, "feedforward_units": self.feedforward_units, "dropout": self.dropout}
        )
        return config
