"""Low-rank multimodal (tensor) fusion, after Liu et al., 2018 ("Efficient Low-rank Multimodal
Fusion with Modality-Specific Factors")."""

import keras
from keras import ops

from mmkeras import checks
from mmkeras.fusion.base_fusion import BaseFusion
from mmkeras.fusion.base_fusion import check_arguments


@keras.saving.register_keras_serializable(package="mmkeras")
class LowRankFusion(BaseFusion):
    """Multiplicative fusion of every modality with every other, through rank-r factors.

    Tensor fusion takes the outer product of the modality vectors, each with a 1 appended, so
    that single modalities, pairs and triples all interact; its weight tensor grows with the
    product of the widths. The low-rank form factors that weight into `rank` terms of one matrix
    per modality:

        fused = sum_r w_r * prod_i ([p_i, 1] @ F_i^r) + b

    where `p_i` is modality i projected to `units`. An absent modality contributes `[0, 1]`,
    i.e. only its factors' last row, a learned "missing" term. The last rows start at 1, so at
    initialisation the product is close to 1 + the sum of the modality terms (an additive
    fusion) and the multiplicative interactions are learned from there.

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Width of the projections and of the fused vector.
        rank: int. Number of rank-1 terms.
        activation: str. Activation of the projections.

    Example:

    >>> import numpy as np
    >>> fusion = LowRankFusion(["text", "image"], units=4, rank=2)
    >>> tuple(fusion([np.ones((3, 5), "float32")] * 2, np.ones((3, 2), "float32")).shape)
    (3, 4)
    """

    OPTIONS = {**BaseFusion.OPTIONS, "rank": checks.integer(1)}

    def __init__(self, modalities, units=64, rank=4, activation="relu", **kwargs):
        super().__init__(modalities, units=units, activation=activation, **kwargs)
        check_arguments(self, rank=rank)
        self.rank = int(rank)

    def build(self, vectors_shape, presence_shape=None):
        super().build(vectors_shape, presence_shape)
        scale = 1.0 / self.units ** 0.5
        self.factors = []
        for m in self.modalities:
            factor = self.add_weight(
                name=f"{m}_factor", shape=(self.rank, self.units + 1, self.units),
                initializer=keras.initializers.RandomNormal(stddev=scale),
            )
            self.factors.append(factor)
        self.rank_weights = self.add_weight(name="rank_weights", shape=(self.rank,),
                                            initializer=keras.initializers.Constant(1.0 / self.rank))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        # The "1" row of every factor starts at 1: an additive start (see the class docstring).
        for factor in self.factors:
            value = ops.convert_to_numpy(factor)
            value[:, -1, :] = 1.0
            factor.assign(value)

    def call(self, vectors, presence):
        self._check_inputs(vectors)
        projected = self.project(vectors, presence)  # (batch, modalities, units), absent rows 0
        ones = ops.ones_like(projected[:, 0, :1])  # (batch, 1)
        product = None
        for i, factor in enumerate(self.factors):
            z = ops.concatenate([projected[:, i, :], ones], axis=-1)  # (batch, units + 1)
            term = ops.einsum("bd,rdu->bru", z, ops.cast(factor, z.dtype))  # (batch, rank, units)
            product = term if product is None else product * term
        weights = ops.cast(self.rank_weights, product.dtype)
        return ops.einsum("r,bru->bu", weights, product) + ops.cast(self.bias, product.dtype)  # (batch, units)

    def compute_output_shape(self, vectors_shape, presence_shape=None):
        return (vectors_shape[0][0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({"rank": self.rank})
        return config
