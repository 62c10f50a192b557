"""TensorFlow Lite export: the model on decoded tensors, float32 or quantised, for small devices.

TFLite's builtin ops have no PNG, JPEG or WAV decoder, so the `.tflite` model takes what the
Preprocessor makes (the tensors of the SavedModel's `serving_tensors` signature: token ids,
pixels in [0, 1], waveforms, with a 0/1 presence flag per modality), one example at a time
(batch 1, the usual case on a device). The folder written beside it holds what a client needs
to make those tensors and read the answers:

- `model.tflite`;
- `inputs.json`: each input's name, shape (batch first), dtype and what it carries;
- `heads.json`: each output head's name, type, width and class names;
- `preprocessor/`: the run's Preprocessor (`Preprocessor.load`): the vocabulary, image and audio
  settings and label names that turn files into the inputs.

Quantisation (`quantize`): "none" (float32), "dynamic" (int8 weights, float activations),
"float16" (float16 weights) or "int8" (int8 weights and activations, calibrated on a
representative sample of the training data; inputs and outputs stay float32 so that every
format takes the same tensors). Recurrent layers convert as TFLite loops, except under "int8":
full-integer calibration crashes TensorFlow's converter on loops, so they are unrolled. Their
weights are still stored once (every step's operator reads the same constant), but every step
adds its own operators and tensors. The converter names each tensor after all the graph nodes
it came from, which for the outputs of an unrolled sequence grows with the square of the steps
(half of an int8 file of the demo's encoders), so the file keeps only the names of its inputs
and outputs (`_drop_inner_names`). `inputs.json` records the model's size against the float32
weights (`size`), and a quantised model that comes out larger than them is reported with a
warning.
"""

import json
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from mmkeras import constants
from mmkeras import layout
from mmkeras.heads import Head
from mmkeras.layout import HEADS_FILE
from mmkeras.layout import INPUTS_FILE
from mmkeras.layout import PREPROCESSOR_DIR
from mmkeras.layout import TFLITE_FILE
from mmkeras.postprocess import model_heads

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
MODEL_FILE = TFLITE_FILE


def _conversion_copy(model, quantize):
    """The model the converter gets: `model` itself, or for "int8" an unrolled copy."""
    return _unrolled_copy(model) if quantize == "int8" else model


def _unrolled_copy(model):
    """`model` with every LSTM/GRU unrolled over its (fixed) steps; the same weights."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)):
            config["unroll"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _drop_inner_names(blob):
    """The flatbuffer `blob` with every tensor name emptied but those of each subgraph's inputs and
    outputs. Names are for people reading the graph; the interpreter runs by tensor index, and
    signatures carry their own names. Outputs are unchanged bit for bit."""
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    for subgraph in graph.subgraphs:
        ends = {int(i) for i in [*(subgraph.inputs if subgraph.inputs is not None else []),
                                 *(subgraph.outputs if subgraph.outputs is not None else [])]}
        for index, tensor in enumerate(subgraph.tensors or []):
            if index not in ends:
                tensor.name = b""
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


def _describe(name):
    if name.endswith(constants.PRESENT_SUFFIX):
        return f"1.0 when modality {name[: -len(constants.PRESENT_SUFFIX)]!r} is present, 0.0 when it is missing"
    return f"modality {name!r} as the Preprocessor decodes it (zeros when missing)"


def export_tflite(model, preprocessor, output_dir, quantize="none", representative=None, representative_examples=200,
                  heads=None):
    """Writes `model.tflite` and the files a client needs beside it into `output_dir`.

    Args:
        model: keras.Model from `build_model` (or a run's `model.keras`).
        preprocessor: the run's `Preprocessor`.
        output_dir: str. Folder to write (created; files of an earlier export there are replaced).
        quantize: str. One of "none", "dynamic", "float16", "int8" (see the module's docstring).
        representative: iterable of feature dicts (batches of model inputs, e.g. a
            `make_dataset(..., with_labels=False)`); required for "int8".
        representative_examples: int. Examples of `representative` used for calibration.
        heads: list of `Head`: the model's heads, as a `MultimodalTask` knows them (default:
            worked out from the model's output layers, `postprocess.model_heads`).

    Returns:
        str. The path of `model.tflite`.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"Expected quantize to be one of {list(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    if quantize == "int8" and representative is None:
        raise ValueError("quantize='int8' needs representative data (feature batches) to calibrate activations.")
    heads = list(heads) if heads is not None else model_heads(model, preprocessor)
    converted = _conversion_copy(model, quantize)
    names = [tensor.name for tensor in converted.inputs]
    signature = [tf.TensorSpec([1, *tensor.shape[1:]], tensor.dtype, name=tensor.name) for tensor in converted.inputs]

    @tf.function(input_signature=signature)
    def serve(*tensors):
        outputs = converted(dict(zip(names, tensors)), training=False)
        return {head.name: tf.cast(outputs[head.name], tf.float32) for head in heads}

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Variables become constants first; the converter then sees a plain graph, and a SavedModel
    # of it keeps the input names for the signature runner.
    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    order = sorted(head.name for head in heads)  # the frozen function's flat outputs follow the dict's sorted keys
    holder = tf.Module()
    holder.serve = tf.function(lambda *tensors: dict(zip(order, tf.nest.flatten(frozen(*tensors)))),
                               input_signature=signature)
    workdir = tempfile.mkdtemp(prefix="mmkeras-tflite-")
    try:
        tf.saved_model.save(holder, workdir, signatures={"serving_default": holder.serve.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(workdir)
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = _calibration(representative, names, representative_examples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        blob = _drop_inner_names(converter.convert())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, MODEL_FILE)
    with open(path, "wb") as f:
        f.write(blob)
    inputs = {spec.name: {"shape": [1, *spec.shape[1:]], "dtype": spec.dtype.name, "content": _describe(spec.name)}
              for spec in signature}
    weights = layout.weights_bytes(model, optimizer=False)
    size = {"bytes": len(blob), "float32_weights_bytes": weights, "ratio": round(len(blob) / max(weights, 1), 3)}
    if quantize != "none" and len(blob) > weights:
        why = (" the recurrent layers are unrolled for full-integer quantisation, and every step adds its own "
               "operators; quantize='dynamic' (int8 weights, float activations) keeps them as loops and is the "
               "smaller choice for models with long recurrent encoders" if quantize == "int8" else
               " the operators and tensors of a small model can outweigh its weights")
        warnings.warn(f"{path}: the {quantize} model ({len(blob):,} bytes) is larger than the float32 weights "
                      f"({weights:,} bytes):{why}.", stacklevel=2)
    with open(os.path.join(output_dir, INPUTS_FILE), "w", encoding="utf-8") as f:
        json.dump({"quantize": quantize, "size": size, "inputs": inputs}, f, indent=1)
    with open(os.path.join(output_dir, HEADS_FILE), "w", encoding="utf-8") as f:
        json.dump([h.to_dict() for h in heads], f, indent=1, ensure_ascii=False)
    shutil.rmtree(os.path.join(output_dir, PREPROCESSOR_DIR), ignore_errors=True)
    preprocessor.save(os.path.join(output_dir, PREPROCESSOR_DIR))
    return path


def export_run_tflite(model, preprocessor, config, output_dir, quantize="none", representative_examples=200,
                      heads=None):
    """`export_tflite` for a run: int8 calibrates on its training manifest, through its Preprocessor."""
    representative = None
    if quantize == "int8":
        from mmkeras.data import make_dataset

        data = (config or {}).get("data") or {}
        if not data.get("train"):
            raise ValueError("quantize='int8' calibrates on the run's training data, but its config names no data.train")
        representative = make_dataset(data["train"], preprocessor, batch_size=32,
                                      shuffle=True, seed=0, on_bad_record="skip", with_labels=False)
    return export_tflite(model, preprocessor, output_dir, quantize=quantize, representative=representative,
                         representative_examples=representative_examples, heads=heads)


def _calibration(batches, names, limit):
    """A representative-dataset generator: up to `limit` single examples from feature batches."""

    def examples():
        seen = 0
        for batch in batches:
            features = batch[0] if isinstance(batch, tuple) else batch
            size = len(next(iter(features.values())))
            for i in range(size):
                if seen >= limit:
                    return
                yield {name: np.asarray(features[name][i : i + 1]) for name in names}
                seen += 1

    return examples


def is_tflite(path):
    """True for a `.tflite` file or a folder holding `model.tflite`."""
    path = os.fspath(path)
    return (os.path.isfile(path) and path.endswith(".tflite")) or os.path.isfile(os.path.join(path, MODEL_FILE))


class TFLiteModel:
    """A `.tflite` export with its heads and Preprocessor, run one example at a time.

    Args:
        path: str. The `.tflite` file, or the folder `export_tflite` wrote.

    Example: `TFLiteModel("exports/tflite").predict(features)` → head name → `(n, units)` array,
    for `features` as `make_dataset(..., with_labels=False)` yields them.
    """

    def __init__(self, path):
        path = os.fspath(path)
        folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        self.path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
        with open(os.path.join(folder, HEADS_FILE), encoding="utf-8") as f:
            self.heads = [Head(**h) for h in json.load(f)]
        self.preprocessor_dir = os.path.join(folder, PREPROCESSOR_DIR)
        try:  # LiteRT, TFLite's successor package, when installed; else TensorFlow's own interpreter
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            Interpreter = tf.lite.Interpreter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            self.interpreter = Interpreter(model_path=self.path)
        self.runner = self.interpreter.get_signature_runner()
        self.inputs = self.runner.get_input_details()

    def preprocessor(self):
        """The Preprocessor saved beside the model."""
        from mmkeras.preprocessor import Preprocessor

        return Preprocessor.load(self.preprocessor_dir)

    def predict(self, features):
        """Feature batch (dict of arrays, the model's inputs) → head name → `(n, units)` float32 array."""
        size = len(next(iter(features.values())))
        missing = sorted(set(self.inputs) - set(features))
        if missing:
            raise ValueError(f"{self.path}: features lack the input(s) {missing}; it takes {sorted(self.inputs)}")
        outputs = {head.name: [] for head in self.heads}
        for i in range(size):
            example = {name: np.asarray(features[name][i : i + 1], detail["dtype"])
                       for name, detail in self.inputs.items()}
            answer = self.runner(**example)
            for head in self.heads:
                outputs[head.name].append(answer[head.name])
        return {name: np.concatenate(values) for name, values in outputs.items()}
