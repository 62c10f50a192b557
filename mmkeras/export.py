"""Export for TF Serving: a SavedModel whose `serving_default` takes raw text, image and audio bytes.

Layout: `<export_base>/<version>/saved_model.pb` + `variables/`, written to a temporary folder and
renamed into place (a watching model server never sees half a model), then reloaded and checked.
"""

import errno
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mmkeras import constants
from mmkeras import layout
from mmkeras.model import with_modality_weights
from mmkeras.heads import Head
from mmkeras.layout import EXPORT_EXTRA_DIR
from mmkeras.layout import HEADS_FILE
from mmkeras.layout import INPUTS_FILE
from mmkeras.layout import LABELS_FILE
from mmkeras.postprocess import model_heads
from mmkeras.postprocess import postprocess

#: Name of the second signature, for clients that send decoded tensors.
TENSORS_SIGNATURE = "serving_tensors"


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


def serving_model(model):
    """`model` with modality weights as an extra output where its fusion has them."""
    try:
        return with_modality_weights(model)
    except ValueError:
        return model


def export_saved_model(model, preprocessor, export_base, version=None, check_inputs=None, label_names=None,
                       heads=None):
    """Writes a TF-Serving SavedModel and checks that it loads and answers.

    Every output head is served (see `postprocess`); with several heads each output name is
    prefixed by the head's name (`digit_label`, `size_value`, ...).

    Args:
        model: keras.Model from `build_model` (or a run's `model.keras`).
        preprocessor: the run's `Preprocessor`.
        export_base: str. Folder of the versions, e.g. `saved_models/my_model`.
        version: int. Version folder; default: highest existing + 1.
        check_inputs: dict of raw `[batch]` strings. If given, the reloaded SavedModel's answers
            must equal the Keras model's on them (else a RuntimeError).
        heads: list of `Head`: the model's heads, as a `MultimodalTask` knows them. Without
            them they are worked out from the model's output layers (`postprocess.model_heads`).
        label_names: dict. Head name → class names, for heads other than the Preprocessor's own
            (multi-task models, when `heads` is not given); default "0", "1", ...

    Returns:
        str. The path of the version folder.
    """
    chosen = version is not None
    version = next_version(export_base) if version is None else int(version)
    if version < 1:
        raise ValueError(f"Expected a positive integer version (TF Serving ignores others). Received: version={version}")
    final = os.path.join(export_base, str(version))
    if chosen and os.path.exists(final):
        raise FileExistsError(f"{final} exists already; choose another --version or leave it out")
    # The graph of a model of this package takes a few MB beside its weights.
    layout.ensure_room(export_base, layout.weights_bytes(model, optimizer=False) + (4 << 20), "the SavedModel")
    remove_stale_temporaries(export_base)
    served = serving_model(model)
    heads = list(heads) if heads is not None else model_heads(model, preprocessor, label_names)

    raw_signature = preprocessor.served_signature()
    tensor_signature = {
        name: tf.TensorSpec([None, *spec.shape], spec.dtype, name=name)
        for name, spec in preprocessor.feature_signature().items()
    }

    def serve_raw(inputs):
        return postprocess(served(preprocessor.preprocess_batch(inputs), training=False), heads)

    def serve_tensors(inputs):
        return postprocess(served(inputs, training=False), heads)

    # Run the Preprocessor once so that its Keras layers are built before they are tracked.
    preprocessor.preprocess_batch(empty_request(preprocessor))
    archive = keras.export.ExportArchive()
    archive.track(served)
    for vectorizer in preprocessor.serving_layers():
        archive.track(vectorizer)
    _store_each_variable_once(archive)
    archive.add_endpoint("serving_default", serve_raw, input_signature=[raw_signature])
    archive.add_endpoint(TENSORS_SIGNATURE, serve_tensors, input_signature=[tensor_signature])

    # The temporary folder's name carries this process's id, so a later export can tell the
    # leftovers of a killed export (process gone) from one that is still being written.
    temporary = tempfile.mkdtemp(prefix=f".{version}-{os.getpid()}-", dir=export_base)
    try:
        try:
            archive.write_out(temporary, verbose=False)
        except tf.errors.OpError as error:  # a write the room check could not foresee
            raise layout.StorageError(errno.EIO, f"{export_base}: the SavedModel could not be written "
                                      f"({error.message.strip()[:300]}); its earlier versions are untouched") from None
        # assets.extra/ is where TF Serving expects files it does not read itself.
        os.makedirs(os.path.join(temporary, EXPORT_EXTRA_DIR))
        with open(os.path.join(temporary, EXPORT_EXTRA_DIR, HEADS_FILE), "w", encoding="utf-8") as f:
            json.dump([h.to_dict() for h in heads], f, indent=1, ensure_ascii=False)
        with open(os.path.join(temporary, EXPORT_EXTRA_DIR, INPUTS_FILE), "w", encoding="utf-8") as f:
            json.dump(preprocessor.served_input_table(), f, indent=1, ensure_ascii=False)
        if heads[0].class_names:
            with open(os.path.join(temporary, EXPORT_EXTRA_DIR, LABELS_FILE), "w", encoding="utf-8") as f:
                f.write("\n".join(heads[0].class_names) + "\n")
        _check(temporary, served, preprocessor, heads, check_inputs)
        _make_readable(temporary)
        final = _move_into_place(temporary, export_base, version, chosen)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def empty_request(preprocessor, size=1):
    """A request of `size` examples with every modality missing ("" in every input)."""
    return {name: tf.fill([size] + [1] * (len(spec.shape) - 1), "")
            for name, spec in preprocessor.served_signature().items()}


def load_served_inputs(path, restored):
    """The served input table of a version folder (`Preprocessor.served_input_table`), also for older exports.

    Exports written before `inputs.json` served one input per modality; text was the one whose
    decoded tensor is token ids (int32), every other input a file's bytes.
    """
    table_path = os.path.join(resolve_version(path), EXPORT_EXTRA_DIR, INPUTS_FILE)
    if os.path.exists(table_path):
        with open(table_path, encoding="utf-8") as f:
            return json.load(f)
    tensors = restored.signatures[TENSORS_SIGNATURE].structured_input_signature[1]
    names = restored.signatures["serving_default"].structured_input_signature[1]
    return {m: {"modality": m, "column": m, "file": tensors[m].dtype != tf.int32, "list": False} for m in names}


def _store_each_variable_once(archive):
    """Points the archive's variable lists at the `tf.Variable`s that the endpoints capture.

    `ExportArchive.track` lists Keras' variable wrappers, and `write_out` adds the `tf.Variable`s
    the traced endpoints read; the checkpoint cannot tell the two objects apart and writes every
    weight twice (keras-team/keras#23553), so a 90 MB encoder became 180 MB on disk and in TF
    Serving's memory. With one object per weight, the checkpoint holds each once.
    """
    holder = archive._tf_trackable
    for collection in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(holder, collection, [_underlying(v) for v in getattr(holder, collection)])


def _underlying(variable):
    """The `tf.Variable` behind a Keras variable (itself when there is none)."""
    value = getattr(variable, "value", None) if isinstance(variable, keras.Variable) else None
    return value if isinstance(value, tf.Variable) else variable


def _move_into_place(temporary, export_base, version, chosen):
    """Renames `temporary` to its version folder (atomic on one file system).

    Another export may have taken the version meanwhile (two exports to one base at once): a
    version that was not asked for moves on to the next free number.
    """
    while True:
        final = os.path.join(export_base, str(version))
        try:
            os.rename(temporary, final)
            return final
        except OSError:
            if not os.path.exists(final):
                raise
            if chosen:
                raise FileExistsError(f"{final} was created by another export meanwhile; choose another --version")
            version = max(version, next_version(export_base) - 1) + 1


def _make_readable(folder):
    """mkdtemp makes folders 0700; a model server running as another user must read the export."""
    umask = os.umask(0)
    os.umask(umask)
    for root, folders, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


def remove_stale_temporaries(export_base):
    """Removes `.<version>-<pid>-*` folders left by exports whose process no longer runs."""
    for name in os.listdir(export_base):
        parts = name.split("-")
        if not (name.startswith(".") and len(parts) >= 3 and parts[0][1:].isdigit() and parts[1].isdigit()):
            continue
        pid = int(parts[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(export_base, name), ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def _check(path, model, preprocessor, heads, check_inputs):
    """Reloads the SavedModel and compares it with the Keras model (or sanity-checks it)."""
    restored = _load_with_custom_ops(path)
    signature = restored.signatures["serving_default"]
    if check_inputs is None:
        # Every modality missing: must still answer with a proper distribution.
        check_inputs = empty_request(preprocessor)
    size = len(next(iter(check_inputs.values())))
    # The signature takes every input; one left out of check_inputs is sent empty (missing).
    inputs = {**empty_request(preprocessor, size),
              **{name: tf.constant(value, tf.string) for name, value in check_inputs.items()
                 if name in preprocessor.served_inputs()}}
    got = signature(**inputs)
    expected = postprocess(model(preprocessor.preprocess_batch(inputs), training=False), heads)
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
    """(loaded SavedModel, list of `Head`) of a version folder or an export base."""
    path = resolve_version(path)
    restored = _load_with_custom_ops(path)
    heads_path = os.path.join(path, EXPORT_EXTRA_DIR, HEADS_FILE)
    if os.path.exists(heads_path):
        with open(heads_path, encoding="utf-8") as f:
            return restored, [Head(**h) for h in json.load(f)]
    # Exports written before heads.json: one head, told apart by its outputs.
    outputs = restored.signatures["serving_default"].structured_outputs
    if "value" in outputs:
        return restored, [Head(constants.DEFAULT_HEAD, "regression", 1)]
    names = None
    labels_path = os.path.join(path, EXPORT_EXTRA_DIR, LABELS_FILE)
    if os.path.exists(labels_path):
        with open(labels_path, encoding="utf-8") as f:
            names = [line.rstrip("\n") for line in f if line.rstrip("\n")]
    units = int(outputs["probabilities"].shape[-1])
    return restored, [Head(constants.DEFAULT_HEAD, "classification", units, names or None)]


def _load_with_custom_ops(path):
    """`tf.saved_model.load`, registering TF Text's ops first when the graph uses them.

    A keras-hub tokenizer in the served graph runs TF Text ops (`RegexSplitWithOffsets`, ...),
    which a process has only after `import tensorflow_text`. A damaged export (truncated
    variables or graph) is a ValueError naming the folder.
    """
    try:
        return _load_checked(path)
    except (RuntimeError, tf.errors.NotFoundError) as error:
        if "Op type not registered" not in str(error):
            raise
        try:
            import tensorflow_text  # noqa: F401 - registers the ops
        except ImportError:
            raise RuntimeError(f"{path} uses TensorFlow Text ops (a keras-hub tokenizer): pip install "
                               f"tensorflow-text matching your TensorFlow, then load it again. ({error})") from None
        return _load_checked(path)


def _load_checked(path):
    from google.protobuf.message import DecodeError

    try:
        return tf.saved_model.load(path)
    except (IndexError, DecodeError, tf.errors.DataLossError, tf.errors.OutOfRangeError) as error:
        raise ValueError(f"{path}: the SavedModel cannot be read, its files are damaged or incomplete "
                         f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200]}); export it again "
                         "from its run (mmkeras export --run RUN --output BASE)") from None
