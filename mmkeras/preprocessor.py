"""The Preprocessor: raw text / file bytes → model inputs, in TensorFlow ops.

The same object runs per example inside `tf.data` (training) and on a batch of raw bytes inside
the exported serving graph, so training and serving preprocess identically.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras import constants
from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.data import audio as audio_lib
from mmkeras.data import images as images_lib
from mmkeras.data.bad_records import first_flagged

STATE_FILE = "preprocessor.json"
LABEL_TYPES = ("classification", "multilabel", "regression")
#: Separator of several labels in one cell (multi-label), e.g. "cat|dog".
LABEL_SEPARATOR = "|"


class Preprocessor:
    """Turns raw modality data (UTF-8 text, image file bytes, audio file bytes) into model inputs.

    Args:
        modalities: dict. Modality name → settings dict or spec (as in `build_model`).
        label_type: str. "classification", "multilabel" or "regression".
        label_names: list of str. Class names in class-id order; learned by `adapt()` if None.
        vocabularies: dict. Text modality name → vocabulary list (as saved); else `adapt()`.

    Example:

    >>> import tensorflow as tf
    >>> pre = Preprocessor({"text": {"max_tokens": 20, "sequence_length": 4}})
    >>> pre.adapt(texts={"text": ["red apple", "green apple"]}, labels=["a", "b"])
    >>> features = pre.preprocess_batch({"text": tf.constant(["apple pie", ""])})
    >>> features["text"].numpy().tolist(), features["text_present"].numpy().ravel().tolist()
    ([[2, 1, 0, 0], [0, 0, 0, 0]], [1.0, 0.0])
    """

    def __init__(self, modalities, label_type="classification", label_names=None, vocabularies=None,
                 tokenizers=None):
        if label_type not in LABEL_TYPES:
            raise ValueError(f"Expected label_type to be one of {list(LABEL_TYPES)}. Received: label_type={label_type!r}")
        self.specs = {name: specs_lib.make_spec(name, options) for name, options in modalities.items()}
        self.label_type = label_type
        self.label_names = list(label_names) if label_names is not None else None
        self._vectorizers = {}
        self._has_vocabulary = set()  # Python-side: checked while tracing, where tables are symbolic
        self._preset_text = set()  # text modalities tokenized by their keras-hub preset's own tokenizer
        for name, spec in self.specs.items():
            if spec.kind == constants.TEXT and pretrained.is_keras_hub_source(spec):
                folder = (tokenizers or {}).get(name)
                self._vectorizers[name] = (pretrained.load_text_preprocessor(folder) if folder
                                           else pretrained.keras_hub_text_preprocessor(spec, name))
                self._preset_text.add(name)
                self._has_vocabulary.add(name)
            elif spec.kind == constants.TEXT:
                vocabulary = (vocabularies or {}).get(name)
                self._vectorizers[name] = self._make_vectorizer(spec, vocabulary)
                if vocabulary:
                    self._has_vocabulary.add(name)
        self._image_augmenters = {}

    # ----------------------------------------------------------------- state
    @staticmethod
    def _make_vectorizer(spec, vocabulary=None):
        return keras.layers.TextVectorization(
            max_tokens=spec.max_tokens,
            standardize=spec.standardize,
            output_mode="int",
            output_sequence_length=spec.sequence_length,
            vocabulary=vocabulary,
        )

    @property
    def modalities(self):
        return list(self.specs)

    @property
    def num_classes(self):
        """Classes (or labels, or regression targets: 1) the model's head must output."""
        if self.label_type == "regression":
            return 1
        if self.label_names is None:
            raise ValueError("The Preprocessor has no label names yet: call adapt() or pass label_names.")
        return len(self.label_names)

    def vocabulary(self, name):
        """The text modality `name`'s vocabulary ("" is padding, "[UNK]" out-of-vocabulary)."""
        if name in self._preset_text:
            return [str(token) for token in self._vectorizers[name].tokenizer.get_vocabulary()]
        return [str(token) for token in self._vectorizers[name].get_vocabulary()]

    def serving_layers(self):
        """The Keras layers the served graph runs before the model (to be tracked by an export)."""
        return list(self._vectorizers.values())

    def adapt(self, texts=None, labels=None):
        """Learns text vocabularies and label names from training data.

        Args:
            texts: dict. Text modality name → iterable of strings (empty ones are skipped).
            labels: iterable of label cells (strings, ints, or "a|b" for multi-label).
        """
        for name, values in (texts or {}).items():
            if name in self._preset_text:
                continue  # the preset's vocabulary is fixed
            values = [v for v in values if isinstance(v, str) and v.strip()]
            if values:
                self._vectorizers[name].adapt(tf.constant(values))
                self._has_vocabulary.add(name)
        if labels is not None and self.label_type != "regression" and self.label_names is None:
            names = set()
            for value in labels:
                names.update(self._split_label(value))
            names.discard("")
            self.label_names = sorted(names, key=_natural_key)

    def save(self, directory):
        """Writes the full state (settings, vocabularies, label names) to `directory/preprocessor.json`."""
        os.makedirs(directory, exist_ok=True)
        state = {
            "modalities": {name: specs_lib.spec_to_dict(spec) for name, spec in self.specs.items()},
            "label_type": self.label_type,
            "label_names": self.label_names,
            "vocabularies": {name: self.vocabulary(name) for name in self._vectorizers if name not in self._preset_text},
            # Each keras-hub tokenizer is saved beside the state, so reloading never fetches the preset.
            "tokenizers": {name: f"tokenizer_{name}" for name in sorted(self._preset_text)},
        }
        for name in self._preset_text:
            pretrained.save_text_preprocessor(self._vectorizers[name], os.path.join(directory, f"tokenizer_{name}"))
        with open(os.path.join(directory, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1, ensure_ascii=False)

    @classmethod
    def load(cls, directory):
        """Rebuilds a Preprocessor saved with `save(directory)`."""
        with open(os.path.join(directory, STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
        tokenizers = {name: os.path.join(directory, folder) for name, folder in state.get("tokenizers", {}).items()}
        return cls(state["modalities"], state["label_type"], state["label_names"], state["vocabularies"], tokenizers)

    # ----------------------------------------------------------------- labels (Python side)
    @staticmethod
    def _split_label(value):
        if isinstance(value, (list, tuple)):
            return [str(v).strip() for v in value]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return [""]
        return [part.strip() for part in str(value).split(LABEL_SEPARATOR)]

    def encode_label(self, value):
        """A label cell → class id (int), multi-hot vector, or float. Raises ValueError if bad."""
        if self.label_type == "regression":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"expected a number, got {value!r}") from None
            if not np.isfinite(number):
                raise ValueError(f"expected a finite number, got {value!r}")
            return np.float32(number)
        parts = self._split_label(value)
        if parts == [""]:
            raise ValueError("empty label")
        index = {name: i for i, name in enumerate(self.label_names)}
        unknown = [p for p in parts if p not in index]
        if unknown:
            shown = self.label_names if len(self.label_names) <= 20 else self.label_names[:20] + ["..."]
            raise ValueError(f"unknown label {unknown[0]!r}, expected one of {shown}")
        if self.label_type == "classification":
            if len(parts) != 1:
                raise ValueError(f"expected one label, got {len(parts)} ({value!r})")
            return np.int64(index[parts[0]])
        hot = np.zeros(len(self.label_names), "float32")
        hot[[index[p] for p in parts]] = 1.0
        return hot

    # ----------------------------------------------------------------- decoding (TF ops)
    # Decoding runs in two stages. Images decode one at a time (TensorFlow's decoders take one
    # file); text and audio decode a whole batch in vectorised ops, which in tf.data is several
    # times faster than one small op graph per example. Every path (per example in
    # `Dataset.map`, the training pipeline, the serving batch) goes through both stages, so they
    # preprocess identically.
    def _text_batch(self, name, texts):
        if name not in self._has_vocabulary:
            raise ValueError(
                f"Text modality {name!r} has no vocabulary yet: call adapt() (or adapt_preprocessor()) on the "
                "training data, or pass vocabularies= when constructing the Preprocessor."
            )
        present = tf.strings.length(tf.strings.strip(texts)) > 0
        ids = self._vectorizers[name](texts)
        ids = tf.cast(ids["token_ids"] if isinstance(ids, dict) else ids, tf.int32)  # (batch, sequence_length)
        ids = tf.where(present[:, None], ids, tf.zeros_like(ids))
        return ids, present, tf.fill(tf.shape(texts), "")

    def _image(self, spec, data):
        present = tf.strings.length(data) > 0
        ok, reason = images_lib.image_check(data)
        reason = tf.where(present, reason, "")
        usable = tf.logical_and(present, ok)
        pixels = images_lib.decode_image(tf.where(usable, data, images_lib.PLACEHOLDER_PNG), spec)
        pixels = tf.where(usable, pixels, tf.zeros_like(pixels))
        return pixels, present, reason

    def _image_signature(self, spec):
        return (tf.TensorSpec([spec.height, spec.width, spec.channels], tf.float32),
                tf.TensorSpec([], tf.bool), tf.TensorSpec([], tf.string))

    def decode_images(self, raw):
        """Stage one, for one example: decodes the image modalities; others pass through.

        Args:
            raw: dict. Modality name → scalar `tf.string`; a missing key means absent.

        Returns:
            dict. Image modality → (pixels, present, reason); other modality → its raw string.
        """
        staged = {}
        for name, spec in self.specs.items():
            value = tf.convert_to_tensor(raw.get(name, ""), tf.string)
            staged[name] = self._image(spec, value) if spec.kind == constants.IMAGE else value
        return staged

    def decode_staged_batch(self, staged, training=False, seed=None):
        """Stage two, for a batch of `decode_images` outputs: text and audio, vectorised.

        Returns:
            features: batched model inputs, presence flags `(batch, 1)`.
            reasons: modality name → `[batch]` strings, empty where that modality decoded fine.
        """
        features, reasons = {}, {}
        for name, spec in self.specs.items():
            value = staged[name]
            if spec.kind == constants.TEXT:
                tensor, present, reason = self._text_batch(name, value)
            elif spec.kind == constants.IMAGE:
                tensor, present, reason = value
            else:
                tensor, present, reason = audio_lib.decode_clips(value, spec, training, seed)
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

        A modality missing from `raw` is absent for the whole batch.
        """
        given = sorted(raw)
        raw = {name: tf.convert_to_tensor(value, tf.string) for name, value in raw.items() if name in self.specs}
        if not raw:
            raise ValueError(f"Expected at least one of the inputs {self.modalities}. Received: {given}")
        empty = tf.fill(tf.shape(next(iter(raw.values()))), "")
        staged = {}
        for name, spec in self.specs.items():
            value = raw.get(name, empty)
            if spec.kind == constants.IMAGE:
                value = tf.map_fn(lambda data, spec=spec: self._image(spec, data), value,
                                  fn_output_signature=self._image_signature(spec))
            staged[name] = value
        return self.decode_staged_batch(staged, training)

    def _checked_batch(self, raw):
        """`raw` with assertions that every input is a non-empty 1-D batch of one common size."""
        raw = {name: tf.convert_to_tensor(value, tf.string) for name, value in raw.items() if name in self.specs}
        if not raw:
            return raw
        names = sorted(raw)
        checks = []
        for name in names:
            # The signature declares [None], so the traced graph takes the rank to be 1 (tf.rank
            # is folded to a constant) while a loaded SavedModel still accepts [n, k]: the check
            # reads the shape the tensor has when the request runs.
            value = raw[name]
            shape = tf.strings.reduce_join(tf.strings.as_string(tf.shape(value)), separator=", ")
            checks.append(tf.debugging.Assert(tf.strings.regex_full_match(shape, r"[0-9]+"), [tf.strings.join([
                f"Input {name}: expected a 1-D batch of strings (one per example), got shape [", shape, "]"])]))
        with tf.control_dependencies(checks):
            sizes = tf.stack([tf.size(raw[name]) for name in names])
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
            message = tf.strings.join([f"Input {name}: ", first_flagged(reason, bad), " (example ", where, " of the batch)"])
            checks.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message]))
        with tf.control_dependencies(checks):
            return {key: tf.identity(value) for key, value in features.items()}

    # ----------------------------------------------------------------- augmentation (training only)
    def augment_batch(self, features, seed=None):
        """Training-only augmentation of a batch of features, as each spec's `augment` asks.

        Absent modalities stay exactly zero.
        """
        features = dict(features)
        for name, spec in self.specs.items():
            options = getattr(spec, "augment", None)
            if not options:
                continue
            present = features[constants.presence_name(name)]  # (batch, 1)
            if spec.kind == constants.IMAGE:
                augmented = self._augment_images(name, spec, features[name], seed)
                features[name] = augmented * present[:, :, None, None]
            elif spec.kind == constants.AUDIO:
                features[name] = _augment_audio(features[name], options, seed) * present
        return features

    def _augment_images(self, name, spec, images, seed):
        options = spec.augment
        if name not in self._image_augmenters:
            steps = []
            if options.get("shift"):
                shift = options["shift"]
                steps.append(keras.layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed))
            if options.get("flip"):
                steps.append(keras.layers.RandomFlip(options["flip"], seed=seed))
            if options.get("rotation"):
                steps.append(keras.layers.RandomRotation(options["rotation"], fill_mode="constant", seed=seed))
            if options.get("zoom"):
                steps.append(keras.layers.RandomZoom(options["zoom"], fill_mode="constant", seed=seed))
            if options.get("contrast"):
                steps.append(keras.layers.RandomContrast(options["contrast"], seed=seed))
            self._image_augmenters[name] = steps
        for step in self._image_augmenters[name]:
            images = step(images, training=True)
        if options.get("noise"):
            images = images + tf.random.normal(tf.shape(images), stddev=options["noise"], seed=seed)
        if options.get("occlusion"):
            images = _occlude(images, options["occlusion"], seed)
        return tf.clip_by_value(images, 0.0, 1.0)


def _occlude(images, fraction, seed):
    """Blanks one random square (side = fraction of the shorter side) per image."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    side = tf.maximum(1, tf.cast(tf.cast(tf.minimum(height, width), tf.float32) * fraction, tf.int32))
    top = tf.random.uniform([shape[0], 1, 1], 0, tf.maximum(height - side, 0) + 1, tf.int32, seed=seed)
    left = tf.random.uniform([shape[0], 1, 1], 0, tf.maximum(width - side, 0) + 1, tf.int32, seed=seed)
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return images * tf.cast(tf.logical_not(inside), images.dtype)[..., None]


def _augment_audio(clips, options, seed):
    """Random gain, white noise at a given SNR, and circular time shift on `(batch, samples)`."""
    batch = tf.shape(clips)[0]
    if options.get("gain_db"):
        gain_db = tf.random.uniform([batch, 1], -options["gain_db"], options["gain_db"], seed=seed)
        clips = clips * tf.pow(10.0, gain_db / 20.0)
    if options.get("noise_snr_db") is not None:
        power = tf.reduce_mean(tf.square(clips), axis=1, keepdims=True)
        noise_power = power / tf.pow(10.0, options["noise_snr_db"] / 10.0)
        clips = clips + tf.random.normal(tf.shape(clips), seed=seed) * tf.sqrt(noise_power)
    if options.get("shift"):
        limit = int(options["shift"] * clips.shape[1])
        if limit:
            shifts = tf.random.uniform([batch], -limit, limit + 1, tf.int32, seed=seed)
            clips = tf.map_fn(lambda a: tf.roll(a[0], a[1], axis=0), (clips, shifts), fn_output_signature=tf.float32)
    return clips


def _natural_key(name):
    """Sort "2" before "10" when label names are numbers."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)
