"""Feature-level fusion by concatenation."""

import keras
from keras import ops

from mmkeras.fusion.base_fusion import BaseFusion


@keras.saving.register_keras_serializable(package="mmkeras")
class ConcatFusion(BaseFusion):
    """Projects each modality to `units`, zeroes absent ones, and concatenates them with the flags.

    The presence flags are part of the output, so the layers after the fusion can tell
    "absent" from "present with small features".

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Width of each modality's projection.
        activation: str. Activation of the projections.

    Example:

    >>> import numpy as np
    >>> fusion = ConcatFusion(["text", "image"], units=4)
    >>> out = fusion([np.ones((2, 3), "float32"), np.ones((2, 5), "float32")],
    ...              np.array([[1, 1], [1, 0]], "float32"))
    >>> tuple(out.shape)
    (2, 10)
    """

    def call(self, vectors, presence):
        self._check_inputs(vectors)
        projected = self.project(vectors, presence)  # (batch, modalities, units)
        flat = ops.reshape(projected, (-1, len(self.modalities) * self.units))
        return ops.concatenate([flat, ops.cast(presence, flat.dtype)], axis=-1)

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        return (vectors_shape[0][0], len(self.modalities) * (self.units + 1))
