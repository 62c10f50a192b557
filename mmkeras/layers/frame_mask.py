"""Splits a video tensor into its frames and the per-frame mask carried in its last channel."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class FrameMask(keras.layers.Layer):
    """`(batch, frames, H, W, C + 1)` → frames `(batch, frames, H, W, C)` and mask `(batch, frames)`.

    The video kind pads a clip shorter than its frame count with blank frames and marks the
    real ones with a plane of ones in an extra last channel; this layer takes the plane off
    again, so a recurrent layer after it can skip the padding (`mask=`).

    Example:

    >>> import numpy as np
    >>> clip = np.zeros((1, 3, 2, 2, 2), "float32")
    >>> clip[0, :2, ..., -1] = 1.0  # two real frames, one padding frame
    >>> frames, mask = FrameMask()(clip)
    >>> tuple(frames.shape), np.asarray(mask).tolist()
    ((1, 3, 2, 2, 1), [[True, True, False]])
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_at_init()  # no weights: built on creation (unless a subclass builds), as Keras' own are

    def call(self, clip):
        frames = clip[..., :-1]
        mask = ops.mean(clip[..., -1], axis=(2, 3)) > 0.5  # (batch, frames)
        return frames, mask

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] - 1), tuple(input_shape[:2])

    def compute_output_spec(self, clip):
        # The frames keep the clip's dtype; the mask is boolean, eager and symbolic alike.
        frames, mask = self.compute_output_shape(clip.shape)
        return keras.KerasTensor(frames, dtype=clip.dtype), keras.KerasTensor(mask, dtype="bool")
