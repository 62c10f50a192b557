"""One learned, non-negative weight per modality."""

import keras
from keras import ops

from mmkeras.fusion.base_fusion import BaseFusion
from mmkeras.fusion.base_fusion import masked_softmax


@keras.saving.register_keras_serializable(package="mmkeras")
class WeightedFusion(BaseFusion):
    """Weighted sum of projected modality vectors with one global learned weight per modality.

    The weights are a softmax of learned logits over the modalities present in each example
    (non-negative, summing to 1). Returns `(fused, weights)`.

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Width of the projections and of the fused vector.
        activation: str. Activation of the projections.

    Example:

    >>> import numpy as np
    >>> fusion = WeightedFusion(["text", "audio"], units=4)
    >>> fused, weights = fusion([np.ones((1, 3), "float32")] * 2, np.array([[1, 1]], "float32"))
    >>> weights.numpy().tolist()
    [[0.5, 0.5]]
    """

    returns_weights = True

    def build(self, vectors_shape, presence_shape=None):
        super().build(vectors_shape, presence_shape)
        self.modality_logits = self.add_weight(
            name="modality_logits", shape=(len(self.modalities),), initializer="zeros"
        )

    def call(self, vectors, presence):
        self._check_inputs(vectors)
        projected = self.project(vectors, presence)  # (batch, modalities, units)
        logits = ops.zeros_like(ops.cast(presence, "float32")) + ops.cast(self.modality_logits, "float32")
        weights = masked_softmax(logits, presence)  # (batch, modalities)
        fused = ops.sum(projected * ops.cast(weights, projected.dtype)[..., None], axis=1)  # (batch, units)
        return fused, weights

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        batch = vectors_shape[0][0]
        return (batch, self.units), (batch, len(self.modalities))
