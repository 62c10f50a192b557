"""The tabular kind: several manifest columns (numbers and categories) → one feature vector.

One tabular modality reads the columns its spec lists, e.g. `{kind: tabular, numeric: [age,
income], categorical: [city, device]}`. Numbers are standardised with the mean and spread of
the training rows; an empty numeric cell is imputed with the mean and flagged by a 0/1
indicator. Categories become one-hot vectors over the `max_categories` most frequent values of
the training rows, with one more slot for any value not among them; an empty categorical cell
is all zeros. A row whose cells are all empty marks the modality absent.

Inside the pipeline the cells of one row travel as one string (joined by `SEPARATOR`); the
served model takes one string input per column, named after it (numbers written as text, ""
for a missing cell) and joins them the same way.
"""

import dataclasses
import re

import keras
import numpy as np
import tensorflow as tf

from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.data.manifest import NUMBER_PATTERN
from mmkeras.data.manifest import cell_text
from mmkeras.modalities.modality import Modality

KIND = "tabular"
#: Joins one row's cells into the one string per example that the pipeline carries.
SEPARATOR = "\x1f"


@dataclasses.dataclass
class TabularSpec:
    """Settings of a tabular modality (several manifest columns read together).

    Args:
        numeric: list of str. Columns holding numbers.
        categorical: list of str. Columns holding categories (any text; numbers are read as text).
        max_categories: int. Categories kept per column (the most frequent in the training
            rows); the others share one out-of-vocabulary slot.
        hidden_units: tuple of int. Dense ReLU layers of the default encoder.
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained encoder instead of the default one: `{source: .keras file |
            SavedModel folder, trainable: false}` taking the `(features,)` vector.

    Example:

    >>> spec = TabularSpec(numeric=["age"], categorical=["city"], max_categories=4)
    >>> TabularModality.model_input(spec)  # age, its missing flag, 4 cities + 1 other
    ((7,), 'float32')
    """

    kind = KIND
    numeric: list = dataclasses.field(default_factory=list)
    categorical: list = dataclasses.field(default_factory=list)
    max_categories: int = 32
    hidden_units: tuple = (64,)
    dropout: float = 0.1
    encoder: dict = None

    def __post_init__(self):
        self.numeric, self.categorical = list(self.numeric), list(self.categorical)
        self.hidden_units = tuple(self.hidden_units)
        columns = self.numeric + self.categorical
        if not columns:
            raise ValueError("Expected a tabular modality to list its columns under numeric: [...] and/or "
                             "categorical: [...]. Received: no column")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"Expected each tabular column once. Received: {repeated} more than once")


def build_tabular_encoder(spec=None, **options):
    """Tabular encoder: the feature vector → `[Dense → ReLU] * n` → Dropout.

    Args:
        spec: `TabularSpec`. Settings; alternatively pass TabularSpec's fields as keyword options.
        **options: TabularSpec fields, and `name` (the modality name, default "tabular").

    Example:

    >>> encoder = build_tabular_encoder(numeric=["age"], categorical=["city"], max_categories=4,
    ...                                 hidden_units=(8,))
    >>> tuple(encoder.input.shape), tuple(encoder.output.shape)
    ((None, 7), (None, 8))
    """
    spec, p = specs_lib.resolve_spec(spec, options, KIND)
    if spec.encoder:  # a pretrained encoder instead (mmkeras.pretrained)
        return pretrained.build_pretrained_encoder(spec, p)
    (width,), _ = TabularModality.model_input(spec)
    features = keras.Input((width,), name=p)  # (batch, features)
    x = features
    for i, units in enumerate(spec.hidden_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"{p}_dense_{i}")(x)  # (batch, units)
    x = keras.layers.Dropout(spec.dropout, name=f"{p}_dropout")(x)
    return keras.Model(features, x, name=f"{p}_encoder")


class TabularModality(Modality):
    """Tabular cells → `[numbers standardised, missing flags, one-hot categories]`.

    Example:

    >>> import tensorflow as tf
    >>> table = TabularModality("person", TabularSpec(numeric=["age"], categorical=["city"], max_categories=2))
    >>> table.adapt(["30\\x1fParis", "50\\x1fRome", "\\x1fParis"])
    >>> features, present, reason = table.decode(tf.constant(["40\\x1fRome", "\\x1fOslo", "\\x1f", "x\\x1f"]))
    >>> features.numpy().round(2).tolist()
    [[0.0, 0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
    >>> present.numpy().tolist(), reason.numpy()[3].decode()
    ([True, True, False, True], "column age: expected a number, got 'x'")
    """

    kind = KIND
    spec_class = TabularSpec
    reads_files = False

    def __init__(self, name, spec, state=None, folder=None):
        super().__init__(name, spec, state, folder)
        state = state or {}
        self.mean = state.get("mean")
        self.std = state.get("std")
        self.vocabularies = state.get("vocabularies")
        self.lookups = self._make_lookups() if self.vocabularies is not None else None

    @classmethod
    def model_input(cls, spec):
        return (2 * len(spec.numeric) + len(spec.categorical) * (spec.max_categories + 1),), "float32"

    @classmethod
    def build_encoder(cls, spec, name):
        return build_tabular_encoder(spec, name=name)

    # ----------------------------------------------------------------- columns and served inputs
    @property
    def columns(self):
        return self.spec.numeric + self.spec.categorical

    def manifest_columns(self, columns):
        return list(self.columns)

    def served_inputs(self):
        return {column: column for column in self.columns}

    def join_cells(self, cells):
        texts = [cell_text(c).strip() for c in cells]
        for column, text in zip(self.columns, texts):
            if SEPARATOR in text:
                return "", f"column {column}: the cell holds the control character \\x1f, which is not allowed"
        return SEPARATOR.join(texts), None

    def join_served(self, raw):
        given = [raw[c] for c in self.columns if c in raw]
        if not given:
            return None
        empty = tf.fill(tf.shape(given[0]), "")
        return tf.strings.join([raw.get(c, empty) for c in self.columns], separator=SEPARATOR)

    # ----------------------------------------------------------------- learned state
    def adapt(self, cells):
        rows = [str(c).split(SEPARATOR) for c in cells if c]
        rows = [r for r in rows if len(r) == len(self.columns)]
        numeric = len(self.spec.numeric)
        mean, std = [], []
        for j, column in enumerate(self.spec.numeric):
            values = [float(r[j]) for r in rows if _is_number(r[j])]
            values = np.asarray(values or [0.0], "float64")
            mean.append(float(values.mean()))
            std.append(float(values.std()) if values.std() > 1e-8 else 1.0)
        vocabularies = {}
        for j, column in enumerate(self.spec.categorical, start=numeric):
            counts = {}
            for r in rows:
                if r[j].strip():
                    counts[r[j].strip()] = counts.get(r[j].strip(), 0) + 1
            ranked = sorted(counts, key=lambda v: (-counts[v], v))
            vocabularies[column] = ranked[: self.spec.max_categories]
        self.mean, self.std, self.vocabularies = mean, std, vocabularies
        self.lookups = self._make_lookups()

    def _make_lookups(self):
        """One `StringLookup` per categorical column: 1..K for the kept categories, 0 for any other."""
        return {column: keras.layers.StringLookup(
                    # a column with no category seen gets a token no cell can hold
                    vocabulary=self.vocabularies.get(column) or [SEPARATOR], num_oov_indices=1,
                    name=f"{self.name}_{column}_lookup")
                for column in self.spec.categorical}

    def serving_layers(self):
        return list((self.lookups or {}).values())

    def get_state(self, folder):
        if self.mean is None:
            return {}
        return {"mean": self.mean, "std": self.std, "vocabularies": self.vocabularies}

    # ----------------------------------------------------------------- decoding
    def decode(self, values, training=False, seed=None):
        if self.lookups is None:
            raise ValueError(
                f"Tabular modality {self.name!r} has no statistics yet: call adapt() (or adapt_preprocessor()) on "
                "the training data."
            )
        count = len(self.columns)
        parts = tf.strings.split(values, SEPARATOR)
        right_count = tf.equal(parts.row_lengths(), count)
        cells = tf.strings.strip(parts.to_tensor("", shape=[None, count]))  # (batch, columns)
        filled = tf.strings.length(cells) > 0
        present = tf.reduce_any(filled, axis=1)
        reason = tf.where(right_count, "", f"expected {count} cells ({', '.join(self.columns)})")
        blocks = []
        numeric = len(self.spec.numeric)
        if numeric:
            text = cells[:, :numeric]
            is_number = tf.strings.regex_full_match(text, NUMBER_PATTERN)  # cells are stripped
            number = tf.strings.to_number(tf.where(is_number, text, "0"), tf.float32)
            too_large = tf.logical_and(is_number, tf.logical_not(tf.math.is_finite(number)))
            is_number = tf.logical_and(is_number, tf.logical_not(too_large))
            bad = tf.logical_and(tf.strings.length(text) > 0, tf.logical_not(is_number))
            for j, column in enumerate(self.spec.numeric):
                expected = tf.where(too_large[:, j], "a number within float32's range (|x| < 3.4e38)", "a number")
                reason = tf.where(tf.logical_and(tf.equal(reason, ""), bad[:, j]), tf.strings.join(
                    [f"column {column}: expected ", expected, ", got '", text[:, j], "'"]), reason)
            number = tf.where(is_number, number, 0.0)
            scaled = (number - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)
            blocks += [tf.where(is_number, scaled, 0.0), tf.cast(tf.logical_not(is_number), tf.float32)]
        for j, column in enumerate(self.spec.categorical, start=numeric):
            index = tf.where(filled[:, j], self.lookups[column](cells[:, j]), -1)  # 0: not among the kept ones
            blocks.append(tf.one_hot(index, self.spec.max_categories + 1, dtype=tf.float32))
        features = tf.concat(blocks, axis=1)
        usable = tf.logical_and(present, tf.equal(reason, ""))
        features = tf.where(usable[:, None], features, tf.zeros_like(features))
        reason = tf.where(present, reason, "")
        return tf.ensure_shape(features, [None, self.model_input(self.spec)[0][0]]), present, reason

    # ----------------------------------------------------------------- robustness report
    def describe_attribution(self, attribution, inputs, on_layer):
        """Per column: a number's value and missing flag, or a category's one-hot block, summed."""
        numeric, categorical = self.spec.numeric, self.spec.categorical
        width = self.spec.max_categories + 1
        scores = [attribution[i] + attribution[len(numeric) + i] for i in range(len(numeric))]
        start = 2 * len(numeric)
        scores += [attribution[start + k * width: start + (k + 1) * width].sum() for k in range(len(categorical))]
        return {"unit": "column", "labels": list(numeric) + list(categorical), "scores": np.array(scores)}

    def corruptions(self):
        numeric, slots = len(self.spec.numeric), self.spec.max_categories + 1

        def half_cells_missing(features, rng):
            out = features.copy()
            lost = rng.random((len(features), len(self.columns))) < 0.5
            out[:, :numeric] = np.where(lost[:, :numeric], 0.0, out[:, :numeric])
            out[:, numeric : 2 * numeric] = np.where(lost[:, :numeric], 1.0, out[:, numeric : 2 * numeric])
            for k in range(len(self.spec.categorical)):
                start = 2 * numeric + k * slots
                out[:, start : start + slots] *= ~lost[:, numeric + k : numeric + k + 1]
            return out

        result = {"half_cells_missing": half_cells_missing}
        if numeric:
            def numeric_noise(features, rng):
                out = features.copy()
                noise = rng.normal(0, 1.0, (len(features), numeric))
                out[:, :numeric] += np.where(out[:, numeric : 2 * numeric] > 0, 0.0, noise).astype(out.dtype)
                return out

            result["numeric_noise_1.0"] = numeric_noise
        return result


def _is_number(text):
    """A cell that decodes to a finite float32 (1e39 matches the pattern but overflows)."""
    text = text.strip()
    return re.fullmatch(NUMBER_PATTERN, text) is not None and bool(np.isfinite(np.float32(float(text))))
