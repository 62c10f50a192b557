"""A TensorFlow SavedModel (a TF Hub model or any exported folder) as a Keras layer that travels.

`keras.layers.TFSMLayer` calls a SavedModel, but three things stop it from being a modality's
encoder here: its config keeps the folder's path, so a `.keras` file reloads from wherever the
SavedModel was (and fails once that is gone or the run is moved); deserializing it needs
`safe_mode=False`; and its variables are named after the SavedModel's (`dense/kernel:0`), so
Adam, AdamW and RMSprop fail to create their slots (`'..._kernel:0_momentum' is not a valid
scope name`) when it is fine-tuned. `SavedModelEncoder` keeps a copy of the SavedModel among the
`.keras` file's assets, names its variables `v0`, `v1`, ... so any optimizer can train them, and
stores their current values like any layer's weights (so `.weights.h5` files and
`BackupAndRestore` carry fine-tuned values too).
"""

import atexit
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

#: Endpoints tried, in order, when none is named: Keras' `model.export`, TF1/Hub signatures, `__call__`.
DEFAULT_ENDPOINTS = ("serve", "serving_default", "__call__")
_SUBFOLDER = "saved_model"


@keras.saving.register_keras_serializable(package="mmkeras")
class SavedModelEncoder(keras.layers.Layer):
    """Calls one endpoint of a SavedModel on a batch and returns one of its outputs.

    The endpoint must take a batch (first axis) of one tensor; inputs are cast to the dtype it
    declares. Signatures (`serving_default`) are called with their single named input.

    Args:
        folder: str. A SavedModel folder (holding `saved_model.pb`). The config keeps it, so that
            `from_config` (`keras.models.clone_model`, TFLite export) loads it again; restored from
            a `.keras` file where the folder no longer exists, the file's assets hold a copy.
        endpoint: str. Attribute or signature to call; default: the first of `serve`,
            `serving_default`, `__call__` that the SavedModel has.
        output_key: str or int. Which output to return when the endpoint returns a dict (a key)
            or a tuple (an index); a single output needs none.
        example_shape: tuple. Shape of one example of the input (what the layer is called on).
        example_dtype: str. Its dtype.

    Example:

    >>> import numpy as np, tempfile, keras
    >>> inputs = keras.Input((3,))
    >>> saved = keras.Model(inputs, keras.layers.Dense(2, kernel_initializer="ones")(inputs))
    >>> folder = tempfile.mkdtemp()
    >>> saved.export(folder, verbose=False)
    >>> layer = SavedModelEncoder(folder, example_shape=(3,))
    >>> layer(np.ones((1, 3), "float32")).numpy().tolist()
    [[3.0, 3.0]]
    """

    def __init__(self, folder=None, endpoint=None, output_key=None, example_shape=None, example_dtype="float32",
                 output_shape=None, output_dtype=None, variables=None, **kwargs):
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.output_key = output_key
        self.example_shape = tuple(example_shape) if example_shape is not None else None
        self.example_dtype = example_dtype
        self._output_shape = tuple(output_shape) if output_shape is not None else None
        self._output_dtype = output_dtype
        self._folder = None
        if folder is not None and (os.path.exists(os.path.join(folder, "saved_model.pb")) or not variables):
            self._load(folder)
        elif variables:
            # Restoring from a `.keras` file: the SavedModel arrives with the assets, after the
            # weights and the optimizer's slots. Stand-ins of the right shapes take the weights
            # now and hand their values (and their identity) over in `load_assets`.
            for index, (shape, dtype, trainable) in enumerate(variables):
                self.add_weight(shape=tuple(shape), dtype=dtype, trainable=trainable, initializer="zeros",
                                name=f"v{index}")

    # Loading -----------------------------------------------------------------------------------

    def _load(self, folder):
        if not os.path.exists(os.path.join(folder, "saved_model.pb")):
            raise ValueError(f"{folder} is not a SavedModel folder (it has no saved_model.pb).")
        self._folder = folder
        self._saved = tf.saved_model.load(folder)
        self._fn, self._input_name, self.endpoint = _endpoint(self._saved, self.endpoint, folder)
        spec = _input_spec(self._fn, self._input_name)
        self._input_dtype = spec.dtype if spec is not None else tf.dtypes.as_dtype(self.example_dtype)
        if self.example_shape is None:
            if spec is None or spec.shape.rank is None or None in spec.shape[1:]:
                raise ValueError(f"The SavedModel in {folder} does not declare its input's shape; pass example_shape.")
            self.example_shape = tuple(spec.shape[1:])
        traced = tf.function(self._call_saved).get_concrete_function(
            tf.TensorSpec((None, *self.example_shape), self.example_dtype))
        output = traced.structured_outputs
        self._output_shape = tuple(output.shape[1:])
        self._output_dtype = output.dtype.name
        saved_variables = _variables_of(self._fn)
        stand_ins = self.weights
        if stand_ins:
            if [tuple(v.shape) for v in stand_ins] != [tuple(v.shape) for v in saved_variables]:
                raise ValueError(f"Layer {self.name!r}: the SavedModel in {folder} does not have the variables the "
                                 f"layer was saved with.")
            for stand_in, variable in zip(stand_ins, saved_variables):
                variable.assign(stand_in.value)
                stand_in._value = variable  # the Keras variable now reads and trains the SavedModel's own
        else:
            with keras.name_scope(self.name, caller=self):
                for index, variable in enumerate(saved_variables):
                    # Keras variables share the SavedModel's `tf.Variable`s; their names carry no
                    # '/' or ':' because optimizers name their slots after them.
                    self._track_variable(keras.Variable(variable, trainable=variable.trainable, name=f"v{index}"))
        self.built = True

    def _call_saved(self, inputs):
        inputs = tf.cast(inputs, self._input_dtype)
        outputs = self._fn(**{self._input_name: inputs}) if self._input_name else self._fn(inputs)
        return _select(outputs, self.output_key, self.endpoint)

    def call(self, inputs):
        if self._folder is None:
            raise RuntimeError(f"Layer {self.name!r} has no SavedModel loaded (it was restored without its assets).")
        return tf.cast(self._call_saved(inputs), self.compute_dtype)

    def compute_output_spec(self, inputs):
        if self._output_shape is None:
            raise ValueError(f"Layer {self.name!r}: the output shape is unknown until a SavedModel is loaded.")
        return keras.KerasTensor((inputs.shape[0], *self._output_shape), dtype=self.compute_dtype)

    # Saving ------------------------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update({
            "folder": self._folder,
            "endpoint": self.endpoint, "output_key": self.output_key,
            "example_shape": list(self.example_shape) if self.example_shape is not None else None,
            "example_dtype": self.example_dtype,
            "output_shape": list(self._output_shape) if self._output_shape is not None else None,
            "output_dtype": self._output_dtype,
            "variables": [[list(v.shape), v.dtype, v.trainable] for v in self.weights],
        })
        return config

    def save_assets(self, dir_path):
        shutil.copytree(self._folder, os.path.join(dir_path, _SUBFOLDER))

    def load_assets(self, dir_path):
        if self._folder is not None:
            return
        # The assets folder is temporary; the SavedModel's own asset files (vocabularies) must
        # outlive it for later exports, so the layer keeps a private copy for the process's life.
        private = tempfile.mkdtemp(prefix="mmkeras-saved-model-")
        atexit.register(shutil.rmtree, private, ignore_errors=True)
        copy = os.path.join(private, _SUBFOLDER)
        shutil.copytree(os.path.join(dir_path, _SUBFOLDER), copy)
        self._load(copy)

    def save_own_variables(self, store):
        for index, variable in enumerate(self.weights):
            store[str(index)] = variable.numpy()

    def load_own_variables(self, store):
        values = [np.asarray(store[str(index)]) for index in range(len(store.keys()))]
        if len(values) != len(self.weights):
            raise ValueError(f"Layer {self.name!r}: the saved file holds {len(values)} variables, the SavedModel "
                             f"{len(self.weights)}.")
        for variable, value in zip(self.weights, values):
            variable.assign(value)


def _endpoint(saved, endpoint, folder):
    """(callable, name of its keyword input or None, endpoint name)."""
    names = [endpoint] if endpoint else list(DEFAULT_ENDPOINTS)
    signatures = getattr(saved, "signatures", {})
    for name in names:
        if name in signatures:
            function = signatures[name]
            keys = list(function.structured_input_signature[1])
            if len(keys) != 1:
                raise ValueError(f"Signature {name!r} of {folder} takes {keys}; a modality's encoder takes one input.")
            return function, keys[0], name
        if name != "__call__" and callable(getattr(saved, name, None)):
            return getattr(saved, name), None, name
        if name == "__call__" and hasattr(saved, "__call__") and getattr(saved.__call__, "concrete_functions", None):
            return saved.__call__, None, name
    available = sorted(set(signatures) | {n for n in ("serve", "__call__") if hasattr(saved, n)})
    raise ValueError(f"The SavedModel in {folder} has no endpoint {names if not endpoint else endpoint!r}. "
                     f"Available: {available}. Name one under encoder.endpoint.")


def _input_spec(function, input_name):
    if input_name:
        return function.structured_input_signature[1][input_name]
    concrete = getattr(function, "concrete_functions", None) or []
    for candidate in concrete:
        args = candidate.structured_input_signature[0]
        if args and isinstance(args[0], tf.TensorSpec):
            return args[0]
    return None


def _variables_of(function):
    concrete = getattr(function, "concrete_functions", None) or [function]
    seen, ordered = set(), []
    for candidate in concrete:
        for variable in list(candidate.trainable_variables) + list(candidate.variables):
            if id(variable) not in seen:
                seen.add(id(variable))
                ordered.append(variable)
    return ordered


def _select(outputs, key, endpoint):
    if isinstance(outputs, dict):
        if key is None:
            if len(outputs) != 1:
                raise ValueError(f"Endpoint {endpoint!r} returns {sorted(outputs)}; choose one with output_key.")
            return next(iter(outputs.values()))
        if key not in outputs:
            raise ValueError(f"Endpoint {endpoint!r} has no output {key!r}. Its outputs: {sorted(outputs)}.")
        return outputs[key]
    if isinstance(outputs, (list, tuple)):
        if key is None:
            if len(outputs) != 1:
                raise ValueError(f"Endpoint {endpoint!r} returns {len(outputs)} outputs; choose one with output_key "
                                 f"(an index).")
            return outputs[0]
        if not isinstance(key, int) or not -len(outputs) <= key < len(outputs):
            raise ValueError(f"Endpoint {endpoint!r} returns {len(outputs)} outputs; output_key must be an index "
                             f"below {len(outputs)}. Received: {key!r}")
        return outputs[key]
    if key is not None:
        raise ValueError(f"Endpoint {endpoint!r} returns one tensor; remove output_key (received {key!r}).")
    return outputs
