"""One post-processing path: a model's outputs → the named results users see.

The exported SavedModel (inside its graph), `predict` from a run directory and `evaluate` all call
`postprocess`, so a multi-label row, a regression value or a class name is the same whichever
path produced it. `result_rows` turns those results into manifest rows for `predict`.
"""

import numpy as np
import tensorflow as tf

from mmkeras import constants
from mmkeras.heads import Head

#: A multi-label head names every class scoring at least this.
MULTILABEL_THRESHOLD = 0.5
#: Suffix of a head's output layer (see `Head.output_suffix`) → head type.
#: A head's type from the activation of the layer that makes its output (a Dense head's, an
#: Activation layer's, LateFusion's; no activation: a value).
_ACTIVATION_TYPES = {"softmax": "classification", "sigmoid": "multilabel", "linear": "regression", None: "regression"}


#: Older name of `mmkeras.heads.Head` (what post-processing needs of a head is the head itself).
HeadInfo = Head


def head_outputs(model):
    """Output name → output tensor of every head of `model` (the modality weights left out), in order."""
    outputs = model.output if isinstance(model.output, dict) else dict(zip(model.output_names, model.outputs))
    return {name: tensor for name, tensor in outputs.items() if name != constants.MODALITY_WEIGHTS}


def model_heads(model, preprocessor=None, label_names=None):
    """A `Head` for every output of a model from `build_model` (modality weights left out),
    worked out from the model itself: for models that come without their heads (a `.keras` file
    of a run written before `task.json`, or a model built in Python and exported directly).
    A `MultimodalTask` knows its heads and never calls this.

    The head type comes from the activation of the layer that makes the output (softmax:
    classification, sigmoid: multi-label, linear or none: regression), never from layer names.
    Class names: `label_names[head]`, else the Preprocessor's for its own head ("label", or the
    only head), else "0", "1", ...

    Args:
        model: keras.Model.
        preprocessor: `Preprocessor`. Gives the label type and names of the default head.
        label_names: dict. Head name → class names, for the other heads of a multi-task model.

    Example:

    >>> from mmkeras.model import build_model
    >>> model = build_model({"text": {"max_tokens": 10, "sequence_length": 4, "lstm_units": 2}},
    ...                     heads=[{"name": "topic", "units": 2}, {"name": "score", "type": "regression"}],
    ...                     compile=False)
    >>> [(h.name, h.type, h.label_names) for h in model_heads(model, label_names={"topic": ["a", "b"]})]
    [('topic', 'classification', ['a', 'b']), ('score', 'regression', None)]
    """
    output_tensors = head_outputs(model)
    outputs = list(output_tensors)
    heads = []
    for name in outputs:
        kind = _head_type(output_tensors[name])
        if kind is None and preprocessor is not None and (name == constants.DEFAULT_HEAD or len(outputs) == 1):
            kind = preprocessor.label_type
        if kind is None:
            raise ValueError(
                f"Cannot tell the type of output {name!r}: the layer that makes it has no softmax, sigmoid or "
                "linear activation. Pass heads=[mmkeras.Head(name, type, units, class_names), ...] (a "
                "MultimodalTask knows its heads)."
            )
        units = int(output_tensors[name].shape[-1])
        names = (label_names or {}).get(name)
        own = name == constants.DEFAULT_HEAD or len(outputs) == 1
        if names is None and preprocessor is not None and own and kind != "regression":
            names = preprocessor.label_names
        if names is None and kind != "regression":
            names = [str(i) for i in range(units)]
        if names is not None and len(names) != units:
            raise ValueError(f"Output {name!r} has {units} units but {len(names)} class names: {list(names)[:10]}")
        heads.append(Head(name, kind, units, list(names) if names is not None else None))
    return heads


def _head_type(tensor):
    """classification / multilabel / regression from the activation of the layer making `tensor`, or None."""
    history = getattr(tensor, "_keras_history", None)
    config = history.operation.get_config() if history is not None else {}
    if "activation" not in config:
        return None
    activation = config["activation"]
    if isinstance(activation, dict):  # a serialized activation object
        activation = activation.get("config", {}).get("name", activation.get("class_name"))
    return _ACTIVATION_TYPES.get(activation)


def output_prefix(head, heads):
    """"" for a single-head model, else "<head>_" (outputs of several heads are prefixed)."""
    return "" if len(heads) == 1 else f"{head.name}_"


def postprocess(outputs, heads):
    """Model outputs → named results, in TensorFlow ops (they run inside the served graph).

    Per head (names prefixed with "<head>_" when there are several): classification gives
    `probabilities`, `class_id` and `label` (the class name); multi-label gives `probabilities`,
    `class_id` (the top class) and `label` (every class scoring at least 0.5, joined by "|");
    regression gives `value` (`[batch]` for one target, `[batch, units]` for several). The
    fusion's `modality_weights` pass through.

    Args:
        outputs: dict. Output name → `(batch, units)` tensor or array.
        heads: list of `Head`.
    """
    result = {}
    for head in heads:
        prefix = output_prefix(head, heads)
        scores = tf.cast(outputs[head.name], tf.float32)
        if head.type == "regression":
            result[prefix + "value"] = scores[:, 0] if head.units == 1 else scores
            continue
        names = tf.constant(head.class_names)
        class_id = tf.argmax(scores, axis=-1)
        result[prefix + "probabilities"] = scores
        result[prefix + "class_id"] = class_id
        if head.type == "classification":
            result[prefix + "label"] = tf.gather(names, class_id)
        else:
            chosen = tf.ragged.boolean_mask(tf.broadcast_to(names, tf.shape(scores)), scores >= MULTILABEL_THRESHOLD)
            result[prefix + "label"] = tf.strings.reduce_join(chosen, axis=-1, separator="|")
    if constants.MODALITY_WEIGHTS in outputs:
        result[constants.MODALITY_WEIGHTS] = tf.cast(outputs[constants.MODALITY_WEIGHTS], tf.float32)
    return result


def result_rows(numbers, results, heads):
    """Post-processed results (numpy) → one plain, JSON-friendly dict per manifest row.

    Columns: `row`, then per head `label` and `prob_<class>` (classification and multi-label), or
    `value` (`value_<i>` for several targets); prefixed with "<head>_" when there are several.
    """
    rows = []
    for i, number in enumerate(numbers):
        row = {"row": int(number)}
        for head in heads:
            prefix = output_prefix(head, heads)
            if head.type == "regression":
                value = np.asarray(results[prefix + "value"][i])
                if value.ndim == 0:
                    row[prefix + "value"] = float(value)
                else:
                    row.update({f"{prefix}value_{j}": float(v) for j, v in enumerate(value)})
                continue
            label = results[prefix + "label"][i]
            row[prefix + "label"] = label.decode("utf-8") if isinstance(label, bytes) else str(label)
            probabilities = results[prefix + "probabilities"][i]
            row.update({f"{prefix}prob_{n}": float(p) for n, p in zip(head.class_names, probabilities)})
        rows.append(row)
    return rows
