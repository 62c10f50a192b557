"""The label encoder: one set of rules for label cells, in Python (manifests) and in TF ops (TFRecords).

Both paths split multi-label cells on the same separator, accept the same numbers, and give the
same reasons for a bad label, so a record is refused with the same words whichever way it came in.
"""

import re

import numpy as np
import tensorflow as tf

from mmkeras.data.manifest import NUMBER_PATTERN

LABEL_TYPES = ("classification", "multilabel", "regression")
#: Separator of several labels in one cell (multi-label), e.g. "cat|dog".
LABEL_SEPARATOR = "|"
#: Label names listed in full in an "unknown label" message; longer lists are cut with "...".
SHOWN_NAMES = 20


class LabelEncoder:
    """Label cells → class ids, multi-hot vectors or numbers.

    Args:
        label_type: str. "classification", "multilabel" or "regression".
        names: list of str. Class names in class-id order; learned by `adapt` if None.
        separator: str. Separator of several labels in one multi-label cell.

    Example:

    >>> import tensorflow as tf
    >>> labels = LabelEncoder("multilabel", ["cat", "dog", "owl"])
    >>> labels.encode("owl|cat").tolist()
    [1.0, 0.0, 1.0]
    >>> hot, reason = labels.encode_graph(tf.constant("dog|cow"))
    >>> reason.numpy().decode() == labels.problem("dog|cow")
    True
    """

    def __init__(self, label_type="classification", names=None, separator=LABEL_SEPARATOR):
        if label_type not in LABEL_TYPES:
            raise ValueError(f"Expected label_type to be one of {list(LABEL_TYPES)}. Received: label_type={label_type!r}")
        self.label_type = label_type
        self.names = list(names) if names is not None else None
        self.separator = separator

    @property
    def num_classes(self):
        """Outputs the head needs: classes, labels, or 1 for regression."""
        if self.label_type == "regression":
            return 1
        if self.names is None:
            raise ValueError("The Preprocessor has no label names yet: call adapt() or pass label_names.")
        return len(self.names)

    def adapt(self, cells, order="sorted"):
        """Learns the label names unless they were given.

        Args:
            cells: iterable of label cells.
            order: "sorted" (numbers in numeric order: "2" before "10") or "manifest" (in the
                order the cells first name them).
        """
        if order not in ("sorted", "manifest"):
            raise ValueError(f"Expected order 'sorted' or 'manifest'. Received: order={order!r}")
        if self.label_type == "regression" or self.names is not None:
            return
        names = {}  # insertion-ordered: first seen first
        for value in cells:
            names.update(dict.fromkeys(self.split(value)))
        names.pop("", None)
        self.names = list(names) if order == "manifest" else sorted(names, key=_natural_key)

    def split(self, value):
        """A cell → its label strings ([""] for an empty cell)."""
        if isinstance(value, (list, tuple)):
            return [str(v).strip() for v in value]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return [""]
        return [part.strip() for part in str(value).split(self.separator)]

    def _shown_names(self):
        return self.names if len(self.names) <= SHOWN_NAMES else self.names[:SHOWN_NAMES] + ["..."]

    def _unknown_message(self, label):
        return f"unknown label {label!r}, expected one of {self._shown_names()}"

    def problem(self, value):
        """Why a cell is not a valid label, or "" when it is."""
        try:
            self.encode(value)
        except ValueError as error:
            return str(error)
        return ""

    def encode(self, value):
        """A label cell → class id (int64), multi-hot vector (float32) or number (float32).

        Raises ValueError saying what is wrong with the cell.
        """
        if self.label_type == "regression":
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                number = float(value)
            else:
                text = "" if value is None else str(value).strip()
                if not re.fullmatch(NUMBER_PATTERN, text):
                    raise ValueError(f"expected a number, got {value!r}")
                number = float(text)
            if not np.isfinite(number):
                raise ValueError(f"expected a finite number, got {value!r}")
            return np.float32(number)
        parts = self.split(value)
        if parts == [""]:
            raise ValueError("empty label")
        index = {name: i for i, name in enumerate(self.names)}
        unknown = [p for p in parts if p not in index]
        if unknown:
            raise ValueError(self._unknown_message(unknown[0]))
        if self.label_type == "classification":
            if len(parts) != 1:
                raise ValueError(f"expected one label, got {len(parts)} ({value!r})")
            return np.int64(index[parts[0]])
        hot = np.zeros(len(self.names), "float32")
        hot[[index[p] for p in parts]] = 1.0
        return hot

    def encode_graph(self, raw):
        """A scalar label string → (encoded label, reason) in TF ops; reason "" when it is valid.

        The reasons are the ones `encode` raises with.
        """
        raw = tf.convert_to_tensor(raw, tf.string)
        quoted = tf.strings.join(["'", raw, "'"])
        if self.label_type == "regression":
            text = tf.strings.strip(raw)
            ok = tf.strings.regex_full_match(text, NUMBER_PATTERN)
            value = tf.strings.to_number(tf.where(ok, text, "0"), tf.float32)
            finite = tf.math.is_finite(value)
            reason = tf.where(ok, tf.where(finite, "", tf.strings.join(["expected a finite number, got ", quoted])),
                              tf.strings.join(["expected a number, got ", quoted]))
            return value, reason
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.names), tf.range(len(self.names), dtype=tf.int64)),
            default_value=-1,
        )
        parts = tf.strings.strip(tf.strings.split(raw, self.separator))
        ids = table.lookup(parts)
        known = ids >= 0
        first_unknown = tf.boolean_mask(parts, tf.logical_not(known))
        unknown = tf.strings.join(["unknown label '", tf.concat([first_unknown, [""]], 0)[0],
                                   f"', expected one of {self._shown_names()}"])
        empty = tf.equal(tf.strings.length(tf.strings.strip(raw)), 0)
        reason = tf.where(empty, "empty label", tf.where(tf.reduce_all(known), "", unknown))
        if self.label_type == "classification":
            count = tf.size(ids)
            several = tf.logical_and(tf.equal(reason, ""), count != 1)
            reason = tf.where(several, tf.strings.join(
                ["expected one label, got ", tf.strings.as_string(count), " (", quoted, ")"]), reason)
            return tf.where(tf.equal(reason, ""), ids[0], tf.constant(0, tf.int64)), reason
        hot = tf.reduce_max(tf.one_hot(tf.maximum(ids, 0), len(self.names)), axis=0)
        return hot, reason


def _natural_key(name):
    """Sort "2" before "10" when label names are numbers."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)
