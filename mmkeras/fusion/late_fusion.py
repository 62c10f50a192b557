"""Decision-level fusion: combine the predictions of one head per modality."""

import keras
import numpy as np
from keras import ops

from mmkeras import checks
from mmkeras.fusion.base_fusion import check_arguments
from mmkeras.fusion.base_fusion import masked_softmax
from mmkeras.fusion.base_fusion import shares


MODES = ("stacking", "learned", "average")


@keras.saving.register_keras_serializable(package="mmkeras")
class LateFusion(keras.layers.Layer):
    """Decision-level fusion of per-modality predictions, over the modalities present.

    Called as `fusion(predictions, presence)` where `predictions` holds one `(batch, outputs)`
    tensor per modality (probabilities, sigmoid scores or regression values). Returns
    `(combined, weights)`.

    Args:
        modalities: list of str. Names of the modalities, in input order.
        mode: str. "stacking" (default): a learned layer over every modality's log-probabilities
            (values, for regression) and the presence flags, then the head's activation; it
            starts as the normalised product of the modalities' probabilities (a product of
            experts) and learns how far to trust each modality for each class. Its weights are
            each modality's share of the layer's absolute weights. "learned": a weighted
            average with one learned weight per modality (softmax over present ones);
            "average": equal weights over present modalities.
        activation: str. The head's activation ("softmax", "sigmoid" or None), used by
            "stacking".

    Example:

    >>> import numpy as np
    >>> fusion = LateFusion(["text", "image"], mode="average")
    >>> combined, weights = fusion([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])],
    ...                            np.array([[1.0, 1.0]]))
    >>> combined.numpy().tolist()
    [[0.5, 0.5]]
    """

    returns_weights = True

    #: What each option (a constructor argument, or a key of the config's `fusion` block) accepts.
    OPTIONS = {"mode": checks.choice(*MODES), "activation": checks.choice("softmax", "sigmoid", None)}

    def __init__(self, modalities, mode="stacking", activation="softmax", **kwargs):
        super().__init__(**kwargs)
        check_arguments(self, mode=mode, activation=activation)
        self.modalities = list(modalities)
        self.mode = mode
        self.activation = activation

    def build(self, predictions_shape, presence_shape=None):
        count = len(self.modalities)
        if self.mode == "learned":
            self.modality_logits = self.add_weight(name="modality_logits", shape=(count,), initializer="zeros")
        if self.mode == "stacking":
            outputs = int(predictions_shape[0][-1])
            start = np.concatenate([np.eye(outputs) / count] * count + [np.zeros((count, outputs))]).astype("float32")
            self.stacking_kernel = self.add_weight(name="stacking_kernel", shape=start.shape,
                                                   initializer=keras.initializers.Constant(start))
            self.stacking_bias = self.add_weight(name="stacking_bias", shape=(outputs,), initializer="zeros")
        self.built = True

    def _stack(self, predictions, presence):
        """The "stacking" mode: a learned layer over log-probabilities (or values) and flags."""
        blocks = []
        for i, p in enumerate(predictions):
            p = ops.cast(p, "float32")
            if self.activation is not None:
                p = ops.log(ops.clip(p, 1e-7, 1.0))
            blocks.append(ops.where(presence[:, i : i + 1] > 0, p, ops.zeros_like(p)))
        features = ops.concatenate(blocks + [presence], axis=-1)  # (batch, modalities * outputs + modalities)
        z = ops.matmul(features, ops.cast(self.stacking_kernel, "float32")) + ops.cast(self.stacking_bias, "float32")
        combined = {"softmax": ops.softmax, "sigmoid": ops.sigmoid}.get(self.activation, lambda x: x)(z)
        outputs = int(predictions[0].shape[-1])
        share = ops.stack([ops.sum(ops.abs(self.stacking_kernel[i * outputs : (i + 1) * outputs])) for i in
                           range(len(self.modalities))])  # (modalities,)
        weights = presence * ops.cast(share, "float32")[None]
        weights = shares(weights)
        return combined, weights

    def call(self, predictions, presence):
        presence = ops.cast(presence, "float32")
        if self.mode == "stacking":
            return self._stack(predictions, presence)
        logits = ops.zeros_like(presence)
        if self.mode == "learned":
            logits = logits + ops.cast(self.modality_logits, "float32")
        weights = masked_softmax(logits, presence)  # (batch, modalities)
        stacked = ops.stack([ops.cast(p, "float32") for p in predictions], axis=1)  # (batch, modalities, outputs)
        # where() rather than a product: an absent modality's NaN cannot leak through a 0 weight.
        stacked = ops.where(presence[..., None] > 0, stacked, ops.zeros_like(stacked))
        combined = ops.sum(stacked * weights[..., None], axis=1)  # (batch, outputs)
        # No modality at all: the prior of an uninformed head (uniform classes, 0.5 per label, value 0)
        # rather than all zeros, which is no distribution.
        prior = {"softmax": 1.0 / int(combined.shape[-1]), "sigmoid": 0.5}.get(self.activation, 0.0)
        nothing = ops.sum(presence, axis=-1, keepdims=True) == 0
        return ops.where(nothing, ops.full_like(combined, prior), combined), weights

    def compute_output_shape(self, predictions_shape, presence_shape=None):
        batch = predictions_shape[0][0]
        return (batch, predictions_shape[0][-1]), (batch, len(self.modalities))

    def compute_output_spec(self, predictions, presence=None):
        """Both outputs are computed in float32 (probabilities and their weights), whatever the policy."""
        fused_shape, weights_shape = self.compute_output_shape([p.shape for p in predictions])
        return keras.KerasTensor(fused_shape, "float32"), keras.KerasTensor(weights_shape, "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"modalities": self.modalities, "mode": self.mode, "activation": self.activation})
        return config
