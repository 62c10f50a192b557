"""Gated multimodal unit: sigmoid gates, computed from all modalities, open or close each one."""

import keras
from keras import ops

from mmkeras.fusion.base_fusion import BaseFusion
from mmkeras.fusion.base_fusion import shares
from mmkeras.fusion.base_fusion import zero_absent


@keras.saving.register_keras_serializable(package="mmkeras")
class GatedFusion(BaseFusion):
    """`fused = sum_i z_i * tanh(W_i v_i)`, with gates `z_i = sigmoid(G_i [v_1 .. v_n, flags])`.

    Every gate sees all present modalities (absent ones are zeroed before they reach a gate), so
    one modality can switch another off example by example. Returns `(fused, weights)`, where
    the weights are each modality's mean gate value, normalised over the present modalities.

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Width of the gated vectors and of the fused vector.
        activation: str. Activation of the projections (tanh in the original unit).

    Example:

    >>> import numpy as np
    >>> fusion = GatedFusion(["image", "audio"], units=4)
    >>> fused, weights = fusion([np.ones((1, 3), "float32")] * 2, np.array([[0, 1]], "float32"))
    >>> weights.numpy().tolist()
    [[0.0, 1.0]]
    """

    returns_weights = True

    def __init__(self, modalities, units=64, activation="tanh", **kwargs):
        super().__init__(modalities, units=units, activation=activation, **kwargs)
        self.gates = [keras.layers.Dense(self.units, activation="sigmoid", dtype=self.dtype_policy, name=f"{m}_gate") for m in self.modalities]

    def build(self, vectors_shape, presence_shape=None):
        super().build(vectors_shape, presence_shape)
        gate_input = sum(int(shape[-1]) for shape in vectors_shape) + len(self.modalities)
        for gate in self.gates:
            gate.build((None, gate_input))

    def call(self, vectors, presence):
        self._check_inputs(vectors)
        projected = self.project(vectors, presence)  # (batch, modalities, units), absent rows 0
        present = [zero_absent(v, presence[:, i : i + 1]) for i, v in enumerate(vectors)]
        gate_input = ops.concatenate(present + [ops.cast(presence, present[0].dtype)], axis=-1)
        gates = ops.stack([gate(gate_input) for gate in self.gates], axis=1)  # (batch, modalities, units)
        if not self.missing_embeddings:  # with them, an absent modality's embedding is gated like the rest
            gates = gates * ops.cast(presence, gates.dtype)[..., None]
        fused = ops.sum(gates * projected, axis=1)  # (batch, units)
        mean_gate = ops.cast(ops.mean(gates, axis=-1), "float32")  # (batch, modalities)
        weights = shares(mean_gate)
        return fused, weights

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        batch = vectors_shape[0][0]
        return (batch, self.units), (batch, len(self.modalities))
