"""Decision-level fusion: combine the predictions of one head per modality."""

import keras
from keras import ops

from mmkeras.fusion.base_fusion import masked_softmax


@keras.saving.register_keras_serializable(package="mmkeras")
class LateFusion(keras.layers.Layer):
    """Weighted average of per-modality predictions, over the modalities present.

    Called as `fusion(predictions, presence)` where `predictions` holds one `(batch, outputs)`
    tensor per modality (probabilities, sigmoid scores or regression values). Returns
    `(combined, weights)`.

    Args:
        modalities: list of str. Names of the modalities, in input order.
        mode: str. "learned": one learned weight per modality (softmax over present ones);
            "average": equal weights over present modalities.

    Example:

    >>> import numpy as np
    >>> fusion = LateFusion(["text", "image"], mode="average")
    >>> combined, weights = fusion([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])],
    ...                            np.array([[1.0, 1.0]]))
    >>> combined.numpy().tolist()
    [[0.5, 0.5]]
    """

    returns_weights = True

    def __init__(self, modalities, mode="learned", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("learned", "average"):
            raise ValueError(f"Expected mode to be one of ['average', 'learned']. Received: mode={mode!r}")
        self.modalities = list(modalities)
        self.mode = mode

    def build(self, predictions_shape, presence_shape=None):
        if self.mode == "learned":
            self.modality_logits = self.add_weight(
                name="modality_logits", shape=(len(self.modalities),), initializer="zeros"
            )
        self.built = True

    def call(self, predictions, presence):
        presence = ops.cast(presence, "float32")
        logits = ops.zeros_like(presence)
        if self.mode == "learned":
            logits = logits + ops.cast(self.modality_logits, "float32")
        weights = masked_softmax(logits, presence)  # (batch, modalities)
        stacked = ops.stack([ops.cast(p, "float32") for p in predictions], axis=1)  # (batch, modalities, outputs)
        # where() rather than a product: an absent modality's NaN cannot leak through a 0 weight.
        stacked = ops.where(presence[..., None] > 0, stacked, ops.zeros_like(stacked))
        combined = ops.sum(stacked * weights[..., None], axis=1)  # (batch, outputs)
        return combined, weights

    def compute_output_shape(self, predictions_shape, presence_shape=None):
        batch = predictions_shape[0][0]
        return (batch, predictions_shape[0][-1]), (batch, len(self.modalities))

    def get_config(self):
        config = super().get_config()
        config.update({"modalities": self.modalities, "mode": self.mode})
        return config
