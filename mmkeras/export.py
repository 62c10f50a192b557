"""Export for TF Serving: a SavedModel whose `serving_default` takes raw text, image and audio bytes.

Layout: `<export_base>/<version>/saved_model.pb` + `variables/`, written to a temporary folder and
renamed into place (a watching model server never sees half a model), then reloaded and checked.
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mmkeras import constants
from mmkeras.model import with_modality_weights

#: Name of the second signature, for clients that send decoded tensors.
TENSORS_SIGNATURE = "serving_tensors"
#: Class names, one per line in class-id order, under `<version>/assets.extra/`.
LABELS_FILE = "labels.txt"


def next_version(export_base):
    """Highest integer version folder under `export_base` plus one (1 when there is none).

    Example:

    >>> next_version("/nonexistent/folder")
    1
    """
    if not os.path.isdir(export_base):
        return 1
    versions = [int(name) for name in os.listdir(export_base) if name.isdigit()]
    return max(versions, default=0) + 1


def _postprocess(model, preprocessor, features):
    """Model outputs → the serving contract's named outputs."""
    outputs = model(features, training=False)
    result = {}
    scores = tf.cast(outputs[constants.DEFAULT_HEAD], tf.float32)
    if preprocessor.label_type == "regression":
        result["value"] = scores[:, 0]
    else:
        names = tf.constant(preprocessor.label_names)
        class_id = tf.argmax(scores, axis=-1)
        result["probabilities"] = scores
        result["class_id"] = class_id
        if preprocessor.label_type == "classification":
            result["label"] = tf.gather(names, class_id)
        else:  # multi-label: every name scoring at least 0.5, joined by "|"
            chosen = tf.ragged.boolean_mask(tf.broadcast_to(names, tf.shape(scores)), scores >= 0.5)
            result["label"] = tf.strings.reduce_join(chosen, axis=-1, separator="|")
    if constants.MODALITY_WEIGHTS in outputs:
        result[constants.MODALITY_WEIGHTS] = tf.cast(outputs[constants.MODALITY_WEIGHTS], tf.float32)
    return result


def serving_model(model):
    """`model` with modality weights as an extra output where its fusion has them."""
    try:
        return with_modality_weights(model)
    except ValueError:
        return model


def export_saved_model(model, preprocessor, export_base, version=None, check_inputs=None):
    """Writes a TF-Serving SavedModel and checks that it loads and answers.

    Args:
        model: keras.Model from `build_model` (or a run's `model.keras`).
        preprocessor: the run's `Preprocessor`.
        export_base: str. Folder of the versions, e.g. `saved_models/my_model`.
        version: int. Version folder; default: highest existing + 1.
        check_inputs: dict of raw `[batch]` strings. If given, the reloaded SavedModel's answers
            must equal the Keras model's on them (else a RuntimeError).

    Returns:
        str. The path of the version folder.
    """
    version = next_version(export_base) if version is None else int(version)
    if version < 1:
        raise ValueError(f"Expected a positive integer version (TF Serving ignores others). Received: version={version}")
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists already; choose another --version or leave it out")
    os.makedirs(export_base, exist_ok=True)
    served = serving_model(model)

    raw_signature = {m: tf.TensorSpec([None], tf.string, name=m) for m in preprocessor.modalities}
    tensor_signature = {
        name: tf.TensorSpec([None, *spec.shape], spec.dtype, name=name)
        for name, spec in preprocessor.feature_signature().items()
    }

    def serve_raw(inputs):
        return _postprocess(served, preprocessor, preprocessor.preprocess_batch(inputs))

    def serve_tensors(inputs):
        return _postprocess(served, preprocessor, inputs)

    # Run the Preprocessor once so that its Keras layers are built before they are tracked.
    preprocessor.preprocess_batch({m: tf.constant([""]) for m in preprocessor.modalities})
    archive = keras.export.ExportArchive()
    archive.track(served)
    for vectorizer in preprocessor._vectorizers.values():
        archive.track(vectorizer)
    archive.add_endpoint("serving_default", serve_raw, input_signature=[raw_signature])
    archive.add_endpoint(TENSORS_SIGNATURE, serve_tensors, input_signature=[tensor_signature])

    temporary = tempfile.mkdtemp(prefix=f".{version}-", dir=export_base)
    try:
        archive.write_out(temporary, verbose=False)
        if preprocessor.label_names:
            # assets.extra/ is where TF Serving expects files it does not read itself.
            os.makedirs(os.path.join(temporary, "assets.extra"))
            with open(os.path.join(temporary, "assets.extra", LABELS_FILE), "w", encoding="utf-8") as f:
                f.write("\n".join(preprocessor.label_names) + "\n")
        _check(temporary, served, preprocessor, check_inputs)
        os.rename(temporary, final)  # atomic on one file system
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def _check(path, model, preprocessor, check_inputs):
    """Reloads the SavedModel and compares it with the Keras model (or sanity-checks it)."""
    restored = tf.saved_model.load(path)
    signature = restored.signatures["serving_default"]
    if check_inputs is None:
        # Every modality missing: must still answer with a proper distribution.
        check_inputs = {m: tf.constant([""]) for m in preprocessor.modalities}
    inputs = {m: tf.constant(v, tf.string) for m, v in check_inputs.items()}
    got = signature(**inputs)
    expected = _postprocess(model, preprocessor, preprocessor.preprocess_batch(inputs))
    for key, value in expected.items():
        a, b = np.asarray(value), got[key].numpy()
        same = np.array_equal(a, b) if a.dtype.kind in "OSU" or a.dtype.kind in "iu" else np.allclose(a, b, atol=1e-5)
        if not same:
            raise RuntimeError(f"Exported SavedModel disagrees with the Keras model on output {key!r}: {b} vs {a}")


def resolve_version(path):
    """A version folder itself, or an export base's highest version folder."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [n for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []
    if not versions:
        raise FileNotFoundError(f"No SavedModel in {path!r} (expected saved_model.pb or integer version folders)")
    return os.path.join(path, str(max(map(int, versions))))


def load_saved_model(path):
    """(loaded SavedModel, class names or None) of a version folder or an export base."""
    path = resolve_version(path)
    labels_path = os.path.join(path, "assets.extra", LABELS_FILE)
    names = None
    if os.path.exists(labels_path):
        with open(labels_path, encoding="utf-8") as f:
            names = [line.rstrip("\n") for line in f if line.rstrip("\n")]
    return tf.saved_model.load(path), names
