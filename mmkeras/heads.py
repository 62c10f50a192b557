"""Output heads: what each task predicts, with its activation, loss and metrics."""

import dataclasses

import keras
from keras import ops

from mmkeras import constants

HEAD_TYPES = ("classification", "multilabel", "regression")


@keras.saving.register_keras_serializable(package="mmkeras")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy of integer class ids against probabilities, with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no `label_smoothing`; this one-hot encodes the
    ids and uses `categorical_crossentropy(label_smoothing=...)`: the target puts
    `1 - label_smoothing + label_smoothing / classes` on the true class.

    Args:
        label_smoothing: float. In [0, 1).

    Example:

    >>> import numpy as np
    >>> loss = SparseCategoricalCrossentropyWithSmoothing(0.0)
    >>> round(float(loss(np.array([1]), np.array([[0.5, 0.5]], "float32"))), 4)
    0.6931
    """

    def __init__(self, label_smoothing=0.1, name="sparse_categorical_crossentropy_with_smoothing", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        ids = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        one_hot = ops.one_hot(ids, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update({"label_smoothing": self.label_smoothing})
        return config


@dataclasses.dataclass
class Head:
    """One output of a model.

    Args:
        name: str. Output name; also the label column / label dict key.
        type: str. "classification" (softmax, integer class ids), "multilabel" (sigmoid,
            multi-hot labels) or "regression" (linear).
        units: int. Classes, labels, or regression targets.
        label_names: list of str. Class names in class-id order (None for regression, or until
            the labels are learned); post-processing names classes "0", "1", ... without them.
        loss_weight: float. Weight of this head's loss in the total.
        label_smoothing: float. Label smoothing of classification and multi-label losses.

    Example:

    >>> Head("label", "classification", 10).activation
    'softmax'
    """

    name: str = constants.DEFAULT_HEAD
    type: str = "classification"
    units: int = 2
    label_names: list = None
    loss_weight: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self):
        if self.type not in HEAD_TYPES:
            raise ValueError(f"Expected head type to be one of {list(HEAD_TYPES)}. Received: type={self.type!r}")
        if int(self.units) < 1:
            raise ValueError(f"Expected head {self.name!r} to have units >= 1. Received: units={self.units!r}")
        self.units = int(self.units)
        if self.label_names is not None:
            self.label_names = [str(n) for n in self.label_names]
            if self.type == "regression":
                raise ValueError(f"Head {self.name!r} is a regression head: it takes no label_names")
            if len(self.label_names) != self.units:
                raise ValueError(f"Head {self.name!r} has {self.units} units but {len(self.label_names)} label names: "
                                 f"{self.label_names[:10]}")

    @property
    def class_names(self):
        """The names post-processing gives the classes: `label_names`, else "0", "1", ... (None for regression)."""
        if self.type == "regression":
            return None
        return list(self.label_names) if self.label_names is not None else [str(i) for i in range(self.units)]

    def to_dict(self):
        """Every field, JSON-friendly (`Head(**head.to_dict())` gives the head back)."""
        return dataclasses.asdict(self)

    @property
    def activation(self):
        return {"classification": "softmax", "multilabel": "sigmoid", "regression": None}[self.type]

    @property
    def output_suffix(self):
        return {"classification": "probs", "multilabel": "scores", "regression": "values"}[self.type]

    def loss(self):
        if self.type == "classification":
            if self.label_smoothing:
                return SparseCategoricalCrossentropyWithSmoothing(self.label_smoothing)
            return keras.losses.SparseCategoricalCrossentropy()
        if self.type == "multilabel":
            return keras.losses.BinaryCrossentropy(label_smoothing=self.label_smoothing)
        return keras.losses.MeanSquaredError()

    def metrics(self):
        if self.type == "classification":
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if self.type == "multilabel":
            return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc", multi_label=True)]
        return [keras.metrics.MeanAbsoluteError(name="mae")]


def make_heads(num_classes=None, heads=None):
    """Heads from `num_classes` (one classification head named "label") or a list of heads.

    Args:
        num_classes: int. Shorthand for `[Head("label", "classification", num_classes)]`.
        heads: list of `Head` or dicts of Head's arguments.

    Example:

    >>> [h.name for h in make_heads(heads=[{"name": "digit", "units": 10},
    ...                                     {"name": "size", "type": "regression", "units": 1}])]
    ['digit', 'size']
    """
    if (num_classes is None) == (heads is None):
        raise ValueError(
            f"Expected exactly one of num_classes or heads. Received: num_classes={num_classes!r}, heads={heads!r}"
        )
    if heads is None:
        return [Head(constants.DEFAULT_HEAD, "classification", num_classes)]
    made = [h if isinstance(h, Head) else Head(**h) for h in heads]
    names = [h.name for h in made]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"Expected one or more heads with distinct names. Received: names={names}")
    return made


def label_head(preprocessor, label_smoothing=0.0):
    """The head that predicts a Preprocessor's own label column ("label"): its type, width and names.

    Example:

    >>> from mmkeras.preprocessor import Preprocessor
    >>> pre = Preprocessor({"text": {"max_tokens": 10, "sequence_length": 2}}, label_names=["no", "yes"])
    >>> label_head(pre)
    Head(name='label', type='classification', units=2, label_names=['no', 'yes'], loss_weight=1.0, label_smoothing=0.0)
    """
    regression = preprocessor.label_type == "regression"
    return Head(constants.DEFAULT_HEAD, preprocessor.label_type, preprocessor.num_classes,
                label_names=None if regression else preprocessor.label_names,
                label_smoothing=0.0 if regression else float(label_smoothing))
