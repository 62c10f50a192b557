"""What every fusion layer shares: per-modality projections and presence masking."""

import keras
from keras import ops

from mmkeras import checks


#: How far below its row's lowest score an absent modality's score is put: its exp is then at most
#: e^-16 (about 1e-7) of any present one's. A -1e9 mask did the same in float, but in an int8 TFLite
#: model it stretched the scores' quantised range so far that every present score fell on one level.
MASK_MARGIN = 16.0


def masked_softmax(scores, presence):
    """Softmax over modalities that gives exactly 0 to absent ones (all 0 when none is present).

    No division: the softmax's own normalisation is the only one. (A quantised int8 TFLite DIV
    refuses any divisor whose stored integer is 0, whatever real value that integer stands for, so
    a renormalising `w / maximum(sum(w), eps)` failed on rows whose sum landed on that level.)

    Args:
        scores: tensor `(batch, modalities)`.
        presence: tensor `(batch, modalities)` of 0/1 flags.
    """
    scores = ops.cast(scores, "float32")
    flags = ops.cast(ops.cast(presence, "float32") > 0, "float32")
    if scores.shape[-1] == 1:
        return flags  # one modality: weight 1 when present (and no softmax over one value)
    floor = ops.min(scores, axis=-1, keepdims=True) - MASK_MARGIN
    scores = ops.where(flags > 0, scores, ops.broadcast_to(floor, ops.shape(scores)))
    return ops.softmax(scores, axis=-1) * flags  # absent exps are ~0: the present weights add up to 1


def shares(values):
    """Non-negative `values` `(batch, modalities)` as shares that add up to 1 over the last axis (a
    row with no positive value stays 0), as a softmax of their logarithms: no division (see
    `masked_softmax`)."""
    values = ops.cast(values, "float32")
    positive = values > 0
    return masked_softmax(ops.log(ops.maximum(values, 1e-6)), positive)


def check_arguments(layer, **arguments):
    """Raises ValueError naming the first argument that `layer.OPTIONS` (the layer's table of
    option → check) does not accept."""
    for name, value in arguments.items():
        checks.require(name, value, layer.OPTIONS[name], f"{type(layer).__name__} argument")


def zero_absent(vector, flag):
    """`vector` where `flag` is 1, zeros where it is 0 (NaN or garbage in an absent row included)."""
    flag = ops.cast(flag, vector.dtype)
    return ops.where(flag > 0, vector, ops.zeros_like(vector))


class BaseFusion(keras.layers.Layer):
    """Base of the fusion layers: called as `fusion(vectors, presence)`.

    `vectors` is a list with one `(batch, features_i)` tensor per modality, in the order of
    `modalities`; `presence` is `(batch, len(modalities))` with a 0/1 flag per modality.
    Subclasses that set `returns_weights = True` return `(fused, weights)`, weights being
    `(batch, modalities)` and 0 for absent modalities.

    Args:
        modalities: list of str. Names of the fused modalities, in input order.
        units: int. Common width every modality is projected to.
        activation: str. Activation of the projections.
        missing_embeddings: bool. Put a learned vector per modality in place of an absent
            modality's projection, instead of zeros (concat, gated and transformer fusions; the
            weighting fusions give absent modalities weight 0 either way).
    """

    returns_weights = False

    #: What each option (a constructor argument, or a key of the config's `fusion` block) accepts.
    #: A subclass extends it with its own options; `check_fusion` reads it too.
    OPTIONS = {"units": checks.integer(1), "activation": checks.optional(checks.text()),
               "missing_embeddings": checks.boolean()}

    def __init__(self, modalities, units=64, activation="relu", missing_embeddings=False, **kwargs):
        super().__init__(**kwargs)
        check_arguments(self, units=units, activation=activation, missing_embeddings=missing_embeddings)
        self.missing_embeddings = bool(missing_embeddings)
        if not modalities:
            raise ValueError("Expected at least one modality to fuse. Received: modalities=[]")
        self.modalities = list(modalities)
        self.units = int(units)
        self.activation = activation
        self.projections = [
            keras.layers.Dense(self.units, activation=activation, dtype=self.dtype_policy, name=f"{m}_projection")
            for m in self.modalities
        ]

    def compute_output_spec(self, *args, **kwargs):
        """Keras' spec (the compute dtype), except the weights: a softmax over modalities computed
        in float32 whatever the policy."""
        spec = super().compute_output_spec(*args, **kwargs)
        if not self.returns_weights:
            return spec
        return spec[0], keras.KerasTensor(spec[1].shape, "float32")

    def _check_inputs(self, vectors):
        if len(vectors) != len(self.modalities):
            raise ValueError(
                f"{type(self).__name__} expected {len(self.modalities)} inputs, one per modality "
                f"{self.modalities}. Received: {len(vectors)} inputs"
            )

    def build(self, vectors_shape, presence_shape=None):
        self._check_inputs(vectors_shape)
        for projection, shape in zip(self.projections, vectors_shape):
            projection.build(shape)
        if self.missing_embeddings:
            self.missing_embedding = self.add_weight(
                name="missing_embedding", shape=(len(self.modalities), self.units), initializer="zeros"
            )
        self.built = True

    def project(self, vectors, presence):
        """Each modality projected to `units`: `(batch, modalities, units)`.

        Absent modalities get zeros, or their learned missing embedding.
        """
        projected = []
        for i, (projection, v) in enumerate(zip(self.projections, vectors)):
            vector = zero_absent(projection(v), presence[:, i : i + 1])
            if self.missing_embeddings:
                absent = 1.0 - ops.cast(presence[:, i : i + 1], vector.dtype)
                vector = vector + absent * ops.cast(self.missing_embedding[i], vector.dtype)[None]
            projected.append(vector)
        return ops.stack(projected, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "modalities": self.modalities,
            "units": self.units,
            "activation": self.activation,
            "missing_embeddings": self.missing_embeddings,
        })
        return config
