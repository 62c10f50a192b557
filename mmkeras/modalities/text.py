"""The text kind: a UTF-8 string per example → token ids, and its Embedding + LSTM encoder."""

import dataclasses
import os

import keras
import numpy as np
from keras import ops
import tensorflow as tf

from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.modalities.modality import Modality

KIND = "text"


@dataclasses.dataclass
class TextSpec:
    """Settings of a text modality.

    Args:
        max_tokens: int. Vocabulary size, including the padding (0) and out-of-vocabulary (1) ids.
        sequence_length: int. Token ids per example; shorter texts are padded with 0.
        standardize: str. `TextVectorization` standardisation ("lower_and_strip_punctuation",
            "lower", "strip_punctuation" or None).
        embedding_dim: int. Width of the token embedding.
        lstm_units: int. Width of the LSTM (per direction).
        bidirectional: bool. Read the text both ways.
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained encoder instead of the default branch: `{source:
            "keras_hub:PRESET" | "hub:HANDLE" | SavedModel folder | .keras file, trainable: false}`
            (every key in `mmkeras.pretrained`).

    Example:

    >>> TextSpec(max_tokens=100).sequence_length
    32
    """

    kind = KIND
    max_tokens: int = 20000
    sequence_length: int = 32
    standardize: str = dataclasses.field(default="lower_and_strip_punctuation", metadata={"nullable": True})
    embedding_dim: int = 64
    lstm_units: int = 64
    bidirectional: bool = False
    dropout: float = 0.1
    encoder: dict = None


def build_text_encoder(spec=None, **options):
    """Text encoder: token ids → `Embedding(mask_zero=True)` → (Bi)LSTM → vector.

    Args:
        spec: `TextSpec`. Settings; alternatively pass TextSpec's fields as keyword options.
        **options: TextSpec fields, and `name` (the modality name, default "text").

    Example:

    >>> encoder = build_text_encoder(max_tokens=10, sequence_length=6, lstm_units=4)
    >>> tuple(encoder.output.shape)
    (None, 4)
    """
    spec, p = specs_lib.resolve_spec(spec, options, KIND)
    if spec.encoder:  # a pretrained encoder instead (mmkeras.pretrained)
        return pretrained.build_pretrained_encoder(spec, p)
    token_ids = keras.Input((spec.sequence_length,), dtype="int32", name=p)  # (batch, tokens)
    x = keras.layers.Embedding(spec.max_tokens, spec.embedding_dim, mask_zero=True, name=f"{p}_embedding")(token_ids)
    lstm = keras.layers.LSTM(spec.lstm_units, name=f"{p}_lstm")
    if spec.bidirectional:
        lstm = keras.layers.Bidirectional(lstm, name=f"{p}_bilstm")
    x = lstm(x)  # (batch, lstm_units [* 2])
    x = keras.layers.Dropout(spec.dropout, name=f"{p}_dropout")(x)
    return keras.Model(token_ids, x, name=f"{p}_encoder")


class TextModality(Modality):
    """Text: the manifest cell is the text; an empty (or all-blank) string marks it absent.

    Token ids come from a `TextVectorization` layer whose vocabulary `adapt` learns, or from
    the keras-hub preset's own tokenizer when the encoder is a keras-hub preset. The layer runs
    in `tf.data` and in the served graph alike.

    Example:

    >>> import tensorflow as tf
    >>> text = TextModality("text", TextSpec(max_tokens=10, sequence_length=3))
    >>> text.adapt(["red apple", "green apple", ""])
    >>> ids, present, reason = text.decode(tf.constant(["apple pie", " "]))
    >>> ids.numpy().tolist(), present.numpy().tolist()
    ([[2, 1, 0], [0, 0, 0]], [True, False])
    """

    kind = KIND
    training_corruption = "tokens"
    spec_class = TextSpec
    reads_files = False

    def __init__(self, name, spec, state=None, folder=None):
        super().__init__(name, spec, state, folder)
        state = state or {}
        self._described_words = None  # the vocabulary, as describe_attribution last read it
        self.preset = pretrained.is_keras_hub_source(spec)
        if self.preset:
            tokenizer = state.get("tokenizer")
            self.vectorizer = (load_text_preprocessor(os.path.join(folder or "", tokenizer)) if tokenizer
                               else keras_hub_text_preprocessor(spec, name))
            self.ready = True  # the preset's vocabulary is fixed
        else:
            vocabulary = state.get("vocabulary")
            self.vectorizer = keras.layers.TextVectorization(
                max_tokens=spec.max_tokens,
                standardize=spec.standardize,
                output_mode="int",
                output_sequence_length=spec.sequence_length,
                vocabulary=vocabulary,
            )
            self.ready = bool(vocabulary)  # Python-side: checked while tracing, where tables are symbolic

    @classmethod
    def model_input(cls, spec):
        return (spec.sequence_length,), "int32"

    @classmethod
    def build_encoder(cls, spec, name):
        return build_text_encoder(spec, name=name)

    @classmethod
    def pretrained_builders(cls):
        return {pretrained.KERAS_HUB_PREFIX: keras_hub_encoder}

    def vocabulary(self):
        """The vocabulary ("" is padding, "[UNK]" out-of-vocabulary)."""
        source = self.vectorizer.tokenizer if self.preset else self.vectorizer
        return [str(token) for token in source.get_vocabulary()]

    def adapt(self, cells):
        self._described_words = None
        if self.preset:
            return
        values = [v for v in cells if isinstance(v, str) and v.strip()]
        if values:
            self.vectorizer.adapt(tf.constant(values))
            self.ready = True

    def get_state(self, folder):
        if not self.preset:
            return {"vocabulary": self.vocabulary()}
        # The keras-hub tokenizer is saved beside the state, so reloading never fetches the preset.
        tokenizer = f"tokenizer_{self.name}"
        save_text_preprocessor(self.vectorizer, os.path.join(folder, tokenizer))
        return {"tokenizer": tokenizer}

    def serving_layers(self):
        return [self.vectorizer]

    def decode(self, values, training=False, seed=None):
        if not self.ready:
            raise ValueError(
                f"Text modality {self.name!r} has no vocabulary yet: call adapt() (or adapt_preprocessor()) on "
                "the training data, or pass vocabularies= when constructing the Preprocessor."
            )
        present = tf.strings.length(tf.strings.strip(values)) > 0
        # Bytes that are not UTF-8 (a served value is any bytes) would tokenize to [UNK]s: a reason instead.
        utf8 = tf.equal(tf.strings.unicode_transcode(values, "UTF-8", "UTF-8", errors="ignore"), values)
        ids = self.vectorizer(tf.where(utf8, values, ""))
        ids = tf.cast(ids["token_ids"] if isinstance(ids, dict) else ids, tf.int32)  # (batch, sequence_length)
        ids = tf.where((present & utf8)[:, None], ids, tf.zeros_like(ids))
        return ids, present, tf.where(utf8, "", "not UTF-8 text (the bytes do not decode as UTF-8)")

    attribution_layer = "_embedding"

    def describe_attribution(self, attribution, inputs, on_layer):
        """Per token of the text (its embedding's attributions summed), padding left out."""
        if self._described_words is None:  # read once for all the examples described, not per example
            self._described_words = self.vocabulary()
        vocabulary = self._described_words
        ids = np.asarray(inputs).astype(int)
        kept = [i for i, token in enumerate(ids) if token != 0]
        scores = attribution.reshape(len(ids), -1).sum(axis=1)[kept]
        labels = [vocabulary[ids[i]] if ids[i] < len(vocabulary) else f"token {ids[i]}" for i in kept]
        return {"unit": "token", "labels": labels, "scores": scores}

    def corruptions(self):
        return {"drop_0.5_tokens": _drop_tokens(0.5)}


def _drop_tokens(rate):
    """Replaces each token id by padding (0, masked by the encoder) with probability `rate`."""

    def apply(ids, rng):
        return tf.where(rng.random(ids.shape) < rate, 0, ids).numpy().astype(ids.dtype)

    return apply


# ----------------------------------------------------------------- keras-hub presets of this kind
def keras_hub_text_preprocessor(spec, name):
    """The keras-hub preset's own text preprocessor (tokenizer + packer) for a text modality.

    It maps a `[batch]` string tensor to a dict whose `token_ids` are `(batch, sequence_length)`
    int32, with the preset's start, end and padding tokens.
    """
    keras_hub = pretrained.keras_hub_module()
    preset = spec.encoder["source"][len(pretrained.KERAS_HUB_PREFIX):]
    return pretrained.from_preset(lambda p: keras_hub.models.TextClassifierPreprocessor.from_preset(
        p, sequence_length=spec.sequence_length), preset, f"modalities.{name}.encoder.source")


def save_text_preprocessor(preprocessor, folder):
    """Writes a keras-hub text preprocessor (its config and tokenizer assets) to `folder`."""
    preprocessor.save_to_preset(folder)


def load_text_preprocessor(folder):
    """Reads back what `save_text_preprocessor` wrote, with no network and no backbone."""
    import json

    pretrained.keras_hub_module()  # registers the classes
    with open(os.path.join(folder, "preprocessor.json"), encoding="utf-8") as f:
        preprocessor = keras.saving.deserialize_keras_object(json.load(f))
    preprocessor.tokenizer.load_preset_assets(folder)
    return preprocessor


def keras_hub_encoder(spec, name, preset, options):
    """A keras-hub text backbone (text modalities), padding masked, its sequence output averaged."""
    where = f"modalities.{name}.encoder"
    keras_hub, backbone = pretrained.keras_hub_backbone(spec, name, preset, options,
                                              ("weights", "scaling", "endpoint", "output_key"))
    tokenizer = pretrained.from_preset(keras_hub.tokenizers.Tokenizer.from_preset, preset, f"{where}.source")
    longest = getattr(backbone, "max_sequence_length", None)
    if longest is not None and spec.sequence_length > longest:
        raise ValueError(f"Modality {name!r}: sequence_length {spec.sequence_length} is longer than the preset's "
                         f"{longest} positions. Set modalities.{name}.sequence_length <= {longest}.")
    if isinstance(backbone.output, dict) and "sequence_output" in backbone.output:
        # Only the path to the token vectors: a pooler head left out of the graph would get no
        # gradients when fine-tuning (and Keras would warn about it at every step).
        backbone = keras.Model(backbone.input, backbone.output["sequence_output"])
    backbone.name = f"{name}_backbone"
    backbone.trainable = bool(options.get("trainable", False))
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    token_ids = keras.Input((spec.sequence_length,), dtype="int32", name=name)
    # The first position always counts: an absent text is all padding, and a mask with nothing
    # in it would give NaN (softmax over no keys, a mean over no tokens). The fusion masks an
    # absent modality's vector anyway; it only has to be finite.
    first = ops.arange(spec.sequence_length) == 0
    padding_mask = ops.logical_or(ops.not_equal(token_ids, pad), first)
    given = {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": ops.zeros_like(token_ids)}
    expected = list(backbone.input) if isinstance(backbone.input, dict) else ["token_ids"]
    unknown = [key for key in expected if key not in given]
    if unknown:
        raise ValueError(f"Modality {name!r}: the backbone of {preset!r} takes {expected}; mmkeras can give it "
                         f"{sorted(given)}.")
    outputs = backbone({key: given[key] for key in expected}) if isinstance(backbone.input, dict) \
        else backbone(token_ids)
    sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    # Mean over the real tokens (the sentence-embedding recipe of MiniLM / sentence-transformers).
    x = keras.layers.GlobalAveragePooling1D(name=f"{name}_pool")(sequence, mask=padding_mask)
    x = keras.layers.Dropout(spec.dropout, name=f"{name}_dropout")(x)
    return keras.Model(token_ids, x, name=f"{name}_encoder")
