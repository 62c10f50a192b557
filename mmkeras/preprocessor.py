"""The Preprocessor: raw text / file bytes → model inputs, in TensorFlow ops.

The same object runs per example inside `tf.data` (training) and on a batch of raw bytes inside
the exported serving graph, so training and serving preprocess identically. It composes one
converter per modality (`mmkeras.modalities`: what each kind does with its bytes) and one label
encoder (`mmkeras.labels`), and asks none of them which kind it is.
"""

import json
import os

import tensorflow as tf

from mmkeras import constants
from mmkeras import modalities as modalities_lib
from mmkeras import specs as specs_lib
from mmkeras.data.bad_records import first_flagged
from mmkeras.data.manifest import default_columns
from mmkeras.labels import LABEL_SEPARATOR  # noqa: F401 (kept importable from here)
from mmkeras.labels import LABEL_TYPES  # noqa: F401
from mmkeras.labels import LabelEncoder

STATE_FILE = "preprocessor.json"


class Preprocessor:
    """Turns raw modality data (UTF-8 text, image file bytes, audio file bytes) into model inputs.

    Args:
        modalities: dict. Modality name → settings dict or spec (as in `build_model`).
        label_type: str. "classification", "multilabel" or "regression".
        label_names: list of str. Class names in class-id order; learned by `adapt()` if None.
        vocabularies: dict. Text modality name → vocabulary list (as saved); else `adapt()`.
        tokenizers: dict. Text modality name → folder of a saved keras-hub tokenizer.
        states: dict. Modality name → learned state as its converter's `get_state` returned it.
        folder: str. Folder the states' files are in (a saved Preprocessor's).
        columns: dict. Modality name (and "label") → manifest column, where they differ. Kept
            with the Preprocessor's state, so that every reader of manifests (datasets,
            `predict`, the served input table of an export) reads the columns it was trained on.

    Example:

    >>> import tensorflow as tf
    >>> pre = Preprocessor({"text": {"max_tokens": 20, "sequence_length": 4}})
    >>> pre.adapt(texts={"text": ["red apple", "green apple"]}, labels=["a", "b"])
    >>> features = pre.preprocess_batch({"text": tf.constant(["apple pie", ""])})
    >>> features["text"].numpy().tolist(), features["text_present"].numpy().ravel().tolist()
    ([[2, 1, 0, 0], [0, 0, 0, 0]], [1.0, 0.0])
    """

    def __init__(self, modalities, label_type="classification", label_names=None, vocabularies=None,
                 tokenizers=None, states=None, folder=None, columns=None):
        self.labels = LabelEncoder(label_type, label_names)
        self.columns = {str(k): str(v) for k, v in (columns or {}).items()}
        self.specs = specs_lib.settle_specs({name: specs_lib.make_spec(name, options)
                                             for name, options in modalities.items()})
        states = {name: dict(state) for name, state in (states or {}).items()}
        for name, vocabulary in (vocabularies or {}).items():
            states.setdefault(name, {})["vocabulary"] = vocabulary
        for name, tokenizer in (tokenizers or {}).items():
            states.setdefault(name, {})["tokenizer"] = tokenizer
        self.converters = {name: modalities_lib.converter(name, spec, states.get(name), folder)
                           for name, spec in self.specs.items()}
        owners = {}
        for name, converter in self.converters.items():
            for served in converter.served_inputs():
                if served in owners:
                    raise ValueError(f"Modalities {owners[served]!r} and {name!r} both take a served input named "
                                     f"{served!r}: rename a modality or a column.")
                owners[served] = name

    # ----------------------------------------------------------------- state
    @property
    def modalities(self):
        return list(self.specs)

    def column_mapping(self, columns=None):
        """Modality name (and "label") → manifest column: each name by default, then the
        Preprocessor's own mapping, then `columns` (a caller's override) on top."""
        return {**default_columns(self.specs), **self.columns, **(columns or {})}

    def served_input_table(self):
        """Served input → {"modality", "column", "file", "list"}: what a client puts in each input of a row.

        "column" is the manifest column it is filled from (the trained column mapping applied);
        "file" is true where the input carries a file's bytes (the manifest cell is its path), false
        where it carries the cell's own text; "list" is true for an input that takes a list of
        files' bytes per example (a video's frames: the cell names a folder of frames).
        """
        mapping = self.column_mapping()
        table = {}
        for name, converter in self.converters.items():
            read = converter.manifest_columns(mapping)
            for input_name, column in converter.served_inputs().items():
                # a kind that reads one column fills every input of it from that column (a video's
                # GIF and frame-list inputs alike); one that reads several names each input's own
                table[input_name] = {"modality": name, "column": read[0] if len(read) == 1 else column,
                                     "file": bool(converter.reads_files),
                                     "list": converter.served_rank(input_name) == 2}
        return table

    @property
    def label_type(self):
        return self.labels.label_type

    @property
    def label_names(self):
        return self.labels.names

    @label_names.setter
    def label_names(self, names):
        self.labels.names = list(names) if names is not None else None

    @property
    def num_classes(self):
        """Classes (or labels, or regression targets: 1) the model's head must output."""
        return self.labels.num_classes

    def vocabulary(self, name):
        """The text modality `name`'s vocabulary ("" is padding, "[UNK]" out-of-vocabulary)."""
        return self.converters[name].vocabulary()

    def served_inputs(self):
        """Served input name → the manifest column it comes from.

        One per modality (named after it), except kinds that read several columns (tabular: one
        per column) or take a second form (video: `<name>_frames`, a list of frames).
        """
        return {served: column for converter in self.converters.values()
                for served, column in converter.served_inputs().items()}

    def served_signature(self):
        """Served input name → `tf.TensorSpec` of strings: `[None]`, or `[None, None]` for list inputs."""
        return {served: tf.TensorSpec([None] * converter.served_rank(served), tf.string, name=served)
                for converter in self.converters.values() for served in converter.served_inputs()}

    def serving_layers(self):
        """The Keras layers the served graph runs before the model (to be tracked by an export)."""
        return [layer for converter in self.converters.values() for layer in converter.serving_layers()]

    def adapt(self, texts=None, labels=None, cells=None, label_order="sorted"):
        """Learns each modality's state (text vocabularies, ...) and the label names from training data.

        Args:
            texts: dict. Modality name → iterable of strings (kept for text modalities; same as `cells`).
            labels: iterable of label cells (strings, ints, or "a|b" for multi-label).
            cells: dict. Modality name → the training manifest's cells of that modality.
            label_order: "sorted" (numbers numerically) or "manifest" (first seen first): the
                order of the classes in the head, reports and plots, unless `label_names` were given.
        """
        for name, values in {**(texts or {}), **(cells or {})}.items():
            self.converters[name].adapt(list(values))
        if labels is not None:
            self.labels.adapt(labels, order=label_order)

    def get_config(self):
        """The settings, as Keras objects give them (JSON-ready): every modality's spec, the label
        type and names, the column mapping. What each kind learned from data (vocabularies,
        statistics) is not in it: `save` writes that too, beside it.

        >>> pre = Preprocessor({"text": {"max_tokens": 20}}, label_names=["cold", "warm"], columns={"text": "caption"})
        >>> config = pre.get_config()
        >>> config["label_names"], config["columns"], config["modalities"]["text"]["max_tokens"]
        (['cold', 'warm'], {'text': 'caption'}, 20)
        >>> Preprocessor.from_config(config).get_config() == config
        True
        """
        return {
            "modalities": {name: specs_lib.spec_to_dict(spec) for name, spec in self.specs.items()},
            "label_type": self.label_type,
            "label_names": self.label_names,
            "columns": dict(self.columns),
        }

    @classmethod
    def from_config(cls, config):
        """A Preprocessor with the settings of `get_config()` (to be adapted, or given its states)."""
        return cls(**config)

    def save(self, directory):
        """Writes the full state (settings, each modality's learned state, label names) to `directory`."""
        os.makedirs(directory, exist_ok=True)
        state = {**self.get_config(),
                 "states": {name: converter.get_state(directory) for name, converter in self.converters.items()}}
        with open(os.path.join(directory, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1, ensure_ascii=False)

    @classmethod
    def load(cls, directory):
        """Rebuilds a Preprocessor saved with `save(directory)` (also one saved before `states` existed)."""
        path = os.path.join(directory, STATE_FILE)
        with open(path, encoding="utf-8") as f:
            try:
                state = json.load(f)
            except ValueError as error:  # a truncated or edited file
                raise ValueError(f"{path}: not a saved Preprocessor's state (invalid JSON: {error}); save the "
                                 "Preprocessor again, or train the run again") from None
        if not isinstance(state, dict) or "modalities" not in state:
            raise ValueError(f"{path}: not a saved Preprocessor's state (expected a JSON object with 'modalities')")
        return cls(state["modalities"], state["label_type"], state["label_names"], state.get("vocabularies"),
                   state.get("tokenizers"), state.get("states"), folder=directory, columns=state.get("columns"))

    # ----------------------------------------------------------------- labels (Python side)
    def encode_label(self, value):
        """A label cell → class id (int), multi-hot vector, or float. Raises ValueError if bad."""
        return self.labels.encode(value)

    # ----------------------------------------------------------------- decoding (TF ops)
    # Decoding runs in two stages. Kinds whose TensorFlow decoder takes one file (images) decode
    # one example at a time (stage one); the others decode a whole batch in vectorised ops
    # (stage two), which in tf.data is several times faster than one small op graph per
    # example. Every path (per example in `Dataset.map`, the training pipeline, the serving
    # batch) goes through both stages, so they preprocess identically.
    def decode_images(self, raw):
        """Stage one, for one example: decodes the per-example kinds (images); others pass through.

        Args:
            raw: dict. Modality name → scalar `tf.string`; a missing key means absent.

        Returns:
            dict. Per-example modality → (tensor, present, reason); other modality → its raw string.
        """
        staged = {}
        for name, converter in self.converters.items():
            value = tf.convert_to_tensor(raw.get(name, ""), tf.string)
            staged[name] = converter.decode_one(value) if converter.per_example else value
        return staged

    def decode_staged_batch(self, staged, training=False, seed=None):
        """Stage two, for a batch of `decode_images` outputs: the batch-decoded kinds, vectorised.

        Returns:
            features: batched model inputs, presence flags `(batch, 1)`.
            reasons: modality name → `[batch]` strings, empty where that modality decoded fine.
        """
        features, reasons = {}, {}
        for name, converter in self.converters.items():
            tensor, present, reason = converter.decode(staged[name], training, seed)
            features[name] = tensor
            features[constants.presence_name(name)] = tf.reshape(tf.cast(present, tf.float32), [-1, 1])
            reasons[name] = reason
        return features, reasons

    def decode_example(self, raw, training=False):
        """One example's raw values → (features dict, reasons dict). Never raises on bad bytes.

        Args:
            raw: dict. Modality name → scalar `tf.string` (text, or the file's bytes); a
                missing key or an empty string means the modality is absent.
            training: bool. Random crops where the spec asks for them.

        Returns:
            features: the model inputs for one example (no batch dimension).
            reasons: modality name → scalar string, empty where that modality decoded fine.
        """
        one = tf.nest.map_structure(lambda tensor: tensor[None], self.decode_images(raw))
        features, reasons = self.decode_staged_batch(one, training)
        return ({key: value[0] for key, value in features.items()}, {key: value[0] for key, value in reasons.items()})

    def preprocess_example(self, raw, training=False):
        """Like `decode_example`, raising `InvalidArgumentError` naming the input for bad bytes."""
        features, reasons = self.decode_example(raw, training)
        checks = [
            tf.debugging.Assert(tf.equal(reason, ""), [tf.strings.join([f"Input {name}: ", reason])])
            for name, reason in reasons.items()
        ]
        with tf.control_dependencies(checks):
            return {key: tf.identity(value) for key, value in features.items()}

    def feature_signature(self):
        """`tf.TensorSpec`s of one example's features (no batch dimension)."""
        signature = {}
        for name, spec in self.specs.items():
            shape, dtype = specs_lib.model_input(spec)
            signature[name] = tf.TensorSpec(list(shape), dtype)
            signature[constants.presence_name(name)] = tf.TensorSpec([1], tf.float32)
        return signature

    def decode_batch(self, raw, training=False):
        """A batch of raw values (dict of `[batch]` strings) → (features, reasons), never raising.

        `raw` is keyed by served input (`served_inputs()`: the modality's name for most kinds); a
        modality none of whose inputs is in `raw` is absent for the whole batch.
        """
        given, inputs = sorted(raw), self.served_inputs()
        raw = {name: tf.convert_to_tensor(value, tf.string) for name, value in raw.items() if name in inputs}
        if not raw:
            raise ValueError(f"Expected at least one of the inputs {list(inputs)}. Received: {given}")
        empty = tf.fill(tf.shape(next(iter(raw.values())))[:1], "")
        staged = {}
        for name, converter in self.converters.items():
            value = converter.join_served(raw)
            value = empty if value is None else value
            if converter.per_example:
                value = tf.map_fn(converter.decode_one, value, fn_output_signature=converter.one_signature())
            staged[name] = value
        return self.decode_staged_batch(staged, training)

    def _checked_batch(self, raw):
        """`raw` with assertions that every input is a non-empty batch of one common size, of its rank."""
        signature = self.served_signature()
        raw = {name: tf.convert_to_tensor(value, tf.string) for name, value in raw.items() if name in signature}
        if not raw:
            return raw
        names = sorted(raw)
        checks = []
        for name in names:
            # The signature declares the rank, so the traced graph takes it as given (tf.rank is
            # folded to a constant) while a loaded SavedModel still accepts other ranks: the
            # check reads the shape the tensor has when the request runs.
            value = raw[name]
            shape = tf.strings.reduce_join(tf.strings.as_string(tf.shape(value)), separator=", ")
            if len(signature[name].shape) == 1:
                pattern, expected = r"[0-9]+", "a 1-D batch of strings (one per example)"
            else:
                pattern, expected = r"[0-9]+, [0-9]+", 'a 2-D batch of strings (a list per example, "" padding)'
            checks.append(tf.debugging.Assert(tf.strings.regex_full_match(shape, pattern), [tf.strings.join([
                f"Input {name}: expected {expected}, got shape [", shape, "]"])]))
        with tf.control_dependencies(checks):
            sizes = tf.stack([tf.shape(raw[name])[0] for name in names])
        listed = tf.strings.reduce_join(
            tf.strings.join([tf.constant(names), tf.strings.as_string(sizes)], separator=" "), separator=", ")
        checks = [
            tf.debugging.Assert(tf.reduce_all(tf.equal(sizes, sizes[0])), [tf.strings.join([
                "Inputs have different batch sizes (", listed, "): send one value per example for every input; "
                "an empty string marks a missing modality"])]),
            tf.debugging.Assert(sizes[0] > 0, [tf.strings.join([
                "Inputs ", ", ".join(names), ": the batch is empty; send at least one example"])]),
        ]
        with tf.control_dependencies(checks):
            return {name: tf.identity(value) for name, value in raw.items()}

    def preprocess_batch(self, raw):
        """A batch of raw values (dict of `[batch]` strings) → batched model inputs (serving path).

        Core TensorFlow ops only; bad bytes raise `InvalidArgumentError` naming the input and
        the example's position in the batch, and so do a batch that is empty, inputs that are
        not 1-D, or inputs whose batch sizes differ.
        """
        raw = self._checked_batch(raw)
        features, reasons = self.decode_batch(raw)
        checks = []
        for name, reason in reasons.items():
            bad = tf.strings.length(reason) > 0
            where = first_flagged(tf.range(tf.size(reason)), bad)
            held_by = first_flagged(self._holding_input(name, raw, tf.shape(reason)[:1]), bad)
            message = tf.strings.join(["Input ", held_by, ": ", first_flagged(reason, bad), " (example ", where,
                                       " of the batch)"])
            checks.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message]))
        with tf.control_dependencies(checks):
            return {key: tf.identity(value) for key, value in features.items()}

    def _holding_input(self, name, raw, batch):
        """`[batch]` names of the input a bad example of modality `name` came in: where the modality
        takes alternative inputs (a video's GIF or frame list) and the client filled exactly one,
        that one; else the modality's name (a tabular modality's inputs are all filled at once)."""
        served = [s for s in self.converters[name].served_inputs() if s in raw]
        names = tf.fill(batch, name)
        if len(served) < 2:
            return names
        filled = []
        for s in served:
            value = tf.convert_to_tensor(raw[s], tf.string)
            nonempty = tf.strings.length(value) > 0
            filled.append(tf.reduce_any(nonempty, axis=-1) if value.shape.rank == 2 else nonempty)
        alone = tf.reduce_sum(tf.cast(tf.stack(filled), tf.int32), axis=0) == 1
        for s, has in zip(served, filled):
            names = tf.where(alone & has, s, names)
        return names

    # ----------------------------------------------------------------- augmentation (training only)
    def augment_batch(self, features, seed=None):
        """Training-only augmentation of a batch of features, as each spec's `augment` asks.

        Absent modalities stay exactly zero.
        """
        features = dict(features)
        for name, converter in self.converters.items():
            augmented = converter.augment(features[name], seed)
            if augmented is features[name]:
                continue
            present = features[constants.presence_name(name)]  # (batch, 1)
            present = tf.reshape(present, [-1] + [1] * (len(augmented.shape) - 1))
            features[name] = augmented * tf.cast(present, augmented.dtype)
        return features
