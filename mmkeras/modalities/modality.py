"""What every modality kind provides: the converter between manifest cells and model inputs.

A kind (text, image, audio, ...) is one module holding its spec dataclass, its converter (a
subclass of `Modality`) and its default encoder builder. The Preprocessor, the data pipeline,
the evaluation's corruptions and the model builder call the converter's methods and never ask
which kind it is, so a new kind is one new module registered in `mmkeras.modalities`.

One converter instance serves one named modality of a Preprocessor: `Modality(name, spec)`.
"""

import numpy as np
import tensorflow as tf

from mmkeras.data.manifest import cell_text


class Modality:
    """Base of the modality converters: cells → `(tensor, present, reason)` in TensorFlow ops.

    Class attributes a kind sets:
        kind: str. The kind's name, as written in a config's `kind:` key.
        spec_class: the kind's spec dataclass.
        reads_files: bool. The manifest cell names a file whose bytes are decoded (False: the
            cell itself is the data, as text is).
        reads_folders: bool. The cell may name a folder instead of a file (`check_value` turns
            it into a file the pipeline reads; video: a folder of frames).
        per_example: bool. Decoded one example at a time (stage one, `decode_one`), because
            TensorFlow's decoder takes one file; else a whole batch at once (`decode`).
        takes_pixel_scaling: bool. The model input is pixels in [0, 1], so a pretrained
            encoder's `scaling:` option applies.
        training_corruption: str. How `ModalityCorruption` degrades the model input when the
            attention fusion learns to distrust corrupted modalities: "noise", "frames" (noise
            on all planes but the last, the frame mask), "tokens" or "none".

    Args:
        name: str. The modality's name (input and feature name).
        spec: the kind's spec.
        state: dict. Learned state as `get_state` returned it (None: not adapted yet).
        folder: str. Folder of the saved Preprocessor, for state kept in files beside it.
    """

    kind = None
    spec_class = None
    reads_files = True
    reads_folders = False
    per_example = False
    takes_pixel_scaling = False
    training_corruption = "noise"
    #: Spec fields whose unset value `settle_spec` fills and which shape the encoder (the sensor's
    #: `conv_pool`). A distillation student settles them among its own modalities unless the
    #: teacher's config set them.
    settled_encoder_keys = ()

    def __init__(self, name, spec, state=None, folder=None):
        self.name = name
        self.spec = spec

    # ----------------------------------------------------------------- spec-level facts
    @classmethod
    def model_input(cls, spec):
        """(shape without the batch dimension, dtype) of the tensor the converter makes."""
        raise NotImplementedError(f"{cls.__name__} does not define model_input()")

    @classmethod
    def build_encoder(cls, spec, name):
        """The default encoder: a named `keras.Model` from the model input to `(batch, features)`."""
        raise NotImplementedError(f"{cls.__name__} does not define build_encoder()")

    @classmethod
    def settle_spec(cls, spec, specs):
        """The spec with the defaults that depend on the model's other modalities filled in.

        Called by the Preprocessor (for what a run saves and decodes) and by `build_model` (for
        the encoders), with the same modalities, so the two agree.

        Args:
            spec: this kind's spec, as the config made it.
            specs: dict. Every modality of the model (this one included), name → its spec, or the
                `keras.Model` given to `build_model` as a custom encoder.

        Returns:
            A spec (a new one where something changed: `spec` may be the caller's own). The
            default fills nothing.
        """
        return spec

    @classmethod
    def pretrained_builders(cls):
        """Pretrained sources only this kind takes: source prefix → fn(spec, name, rest, options) → encoder.

        Sources every kind takes (`hub:`, SavedModel folders, `.keras` files) are not listed.
        """
        return {}

    # ----------------------------------------------------------------- learned state
    def adapt(self, cells):
        """Learns state from the training manifest's cells (strings; file paths if `reads_files`)."""

    def get_state(self, folder):
        """Learned state as a JSON-friendly dict; may write files into `folder` (the saved Preprocessor)."""
        return {}

    def serving_layers(self):
        """Keras layers the served graph runs before the model (tracked by the export)."""
        return []

    # ----------------------------------------------------------------- columns and served inputs
    def manifest_columns(self, columns):
        """The manifest columns this modality reads, given the run's modality → column mapping."""
        return [columns.get(self.name, self.name)]

    def served_inputs(self):
        """Served input name → the manifest column a client fills it from (strings, see `served_rank`)."""
        return {self.name: self.name}

    def served_rank(self, served):
        """Rank of served input `served`: 1 (`[batch]` strings) or 2 (`[batch, items]`, "" padding)."""
        return 1

    def join_cells(self, cells):
        """Python: the cells of `manifest_columns` for one row → (one string for `decode`, problem or None).

        Only for kinds that do not read files; file kinds take one column, resolved as a path.
        """
        return cell_text(cells[0]), None

    def join_served(self, raw):
        """TF: the served inputs (dict of `[batch]` strings) → this modality's `[batch]` strings, or
        None when the request has none of its inputs (the modality is absent for the whole batch).
        """
        return raw.get(self.name)

    # ----------------------------------------------------------------- Python side (manifest rows)
    def check_value(self, value, path):
        """Checks one row's value in Python before any TF op runs.

        Args:
            value: str. For file kinds the resolved path ("" when the cell is empty).
            path: str. The path shown in messages ("" for inline kinds).

        Returns:
            (value to decode, problem or None): the value may be replaced (e.g. a converted file).
        """
        return value, None

    def record_bytes(self, value):
        """The bytes a TFRecord stores for one example's value (the file's bytes, or the text)."""
        if not self.reads_files:
            return value.encode("utf-8")
        if not value:
            return b""
        with open(value, "rb") as f:
            return f.read()

    def read(self, value):
        """In TF ops: a manifest value (a path for file kinds) → the raw string to decode."""
        if not self.reads_files:
            return value
        return tf.cond(tf.strings.length(value) > 0, lambda: tf.io.read_file(value), lambda: tf.constant(""))

    # ----------------------------------------------------------------- TF side (decoding)
    def decode_one(self, data):
        """Stage one, for `per_example` kinds: a scalar string → (tensor, present, reason)."""
        return data

    def one_signature(self):
        """`tf.TensorSpec`s of `decode_one`'s outputs (for `tf.map_fn` over a batch)."""
        shape, dtype = self.model_input(self.spec)
        return tf.TensorSpec(list(shape), dtype), tf.TensorSpec([], tf.bool), tf.TensorSpec([], tf.string)

    def decode(self, values, training=False, seed=None):
        """Stage two, for a batch: `[batch]` strings (or `decode_one`'s batched outputs) →
        (tensor `(batch, ...)`, present `[batch]` bool, reason `[batch]` string, "" where fine).
        """
        if self.per_example:
            return values
        raise NotImplementedError(f"{type(self).__name__} does not define decode()")

    def augment(self, tensor, seed=None):
        """Training-only augmentation of a batch of model inputs (default: none)."""
        return tensor

    # ----------------------------------------------------------------- robustness report
    def corruptions(self):
        """Named input corruptions for the robustness table: suffix → fn(batch array, rng) → array.

        `rng` is a `numpy.random.Generator`; the report names each `<modality>_<suffix>` and
        keeps absent examples as they were.
        """
        return {}

    # ----------------------------------------------------------------- explanations
    #: Integrated Gradients (`mmkeras.explain`) attribute to the output of the default encoder's
    #: layer `<modality name><attribution_layer>` when the kind sets it (text: the embeddings, as
    #: token ids have no gradient; audio: the log-mel, which a reader can look at), else, or when
    #: the model has no such layer (a pretrained encoder), to the model input.
    attribution_layer = None

    def attribution_baseline(self, inputs):
        """The model input that stands for "no signal" on the path Integrated Gradients follow:
        numpy, the shape of `inputs` (a batch). Default: zeros (black pixels, silence, the
        standardised mean of a series or a number, no category, padding tokens)."""
        return np.zeros_like(inputs)

    def describe_attribution(self, attribution, inputs, on_layer):
        """One example's attributions, in the units a reader knows.

        Args:
            attribution: numpy array, the attribution of each element of the layer's output
                (`on_layer`) or of the model input, without the batch axis.
            inputs: numpy array, the example's model input (no batch axis).
            on_layer: bool. Whether `attribution` is on `attribution_layer`'s output.

        Returns:
            dict: "unit" (what one score belongs to), "labels" and "scores" (one per unit, in
            the input's order), and where a picture helps, "map" (2-D array) with "map_axes"
            (names of its row and column axes) and "picture" (the input to draw it over).
        """
        scores = attribution.reshape(len(attribution), -1).sum(axis=1)
        return {"unit": "position", "labels": [str(i) for i in range(len(scores))], "scores": scores}
