"""Pretrained encoders: a modality's branch from `keras.applications`, TF Hub, a SavedModel or a `.keras` file.

A modality's settings name the encoder under `encoder:`; the Preprocessor still decodes the raw
input (pixels in [0, 1] for images), and the encoder's own input scaling is a layer inside the
model, so training, `.keras` reloads and the served SavedModel all apply it. The pretrained weights
become part of the model: a saved run or an export never fetches anything again.

Sources:
- `keras.applications:NAME` (image modalities): the backbone without its classifier, global-average
  pooled. `weights: imagenet` fetches Keras' ImageNet weights once (or takes them from
  `~/.keras/models/`); `weights: PATH` loads a local weights file; `weights: null` starts random.
- a path to a `.keras` file (any modality): a model taking the modality's tensor (token ids,
  pixels or the waveform) and returning `(batch, features)` (a feature map is average pooled).
- `keras_hub:PRESET` (text modalities): a keras-hub backbone (BERT, MiniLM in Hugging Face format,
  ...) from a built-in preset name, a `kaggle://` / `hf://` handle, or a local preset folder. The
  preset's own tokenizer and packer replace the Preprocessor's vocabulary (`modalities.text`),
  so training, the `.keras` file and the served graph tokenize alike; the model masks padding and
  averages the backbone's sequence output.
- `keras_hub:PRESET` (image modalities): a keras-hub vision backbone (ResNet, EfficientNet, ViT,
  ...) behind its preset's image converter, whose resize and rescaling become model layers
  (`Resizing`, `PixelScaling("affine")`); the feature map (or token sequence) is average pooled.
- `keras_hub:PRESET` (audio modalities): the encoder half of a keras-hub speech backbone (Whisper,
  Moonshine) behind its preset's audio converter (a layer of the model: Whisper's log-mel, ...),
  averaged over time. The modality's `sample_rate` must be the converter's.
- `hub:HANDLE` (a TF Hub / Kaggle Models handle, resolved by `tensorflow_hub.resolve`, which caches
  under `TFHUB_CACHE_DIR`) or a path to a SavedModel folder (any modality): called through
  `mmkeras.layers.SavedModelEncoder` on the same tensor; `endpoint` picks the function and
  `output_key` the output. A copy of the SavedModel travels inside the run's `.keras` file.

The sources that only some kinds take are each kind's own (`Modality.pretrained_builders`): a
kind's module holds its keras-hub builder (`modalities/text.py`, `image.py`, `audio.py`) and
this module the shared parts (fetching a preset, the backbone, pooling, pixel scaling).

Frozen by default (`trainable: false`): the backbone runs in inference mode and its weights stay
as loaded. `trainable: true` fine-tunes every layer (use a smaller `training.learning_rate`).
"""

import os

import keras
from keras import ops

from mmkeras import checks
from mmkeras.layers.saved_model_encoder import SavedModelEncoder
from mmkeras.modalities.registry import get_kind
from mmkeras.modalities.registry import kinds_that

#: Input scaling each `keras.applications` family expects from 0-255 RGB pixels:
#: "raw" (the model rescales itself), "tf" ([-1, 1]), "torch" (ImageNet mean/std), "caffe" (BGR, mean).
APPLICATION_SCALING = {
    "EfficientNet": "raw", "ConvNeXt": "raw", "MobileNetV3": "raw", "RegNet": "raw",
    "ResNet50V2": "tf", "ResNet101V2": "tf", "ResNet152V2": "tf",
    "ResNet": "caffe", "VGG": "caffe",
    "MobileNet": "tf", "Xception": "tf", "Inception": "tf", "NASNet": "tf",
    "DenseNet": "torch",
}
SCALINGS = ("raw", "tf", "torch", "caffe", "unit")
#: Prefix of a TF Hub handle in `encoder.source`.
APPLICATIONS_PREFIX = "keras.applications:"
HUB_PREFIX = "hub:"
#: Prefix of a keras-hub preset (a built-in name, a Kaggle/Hugging Face handle, or a local folder).
KERAS_HUB_PREFIX = "keras_hub:"


@keras.saving.register_keras_serializable(package="mmkeras")
class PixelScaling(keras.layers.Layer):
    """Maps pixels in [0, 1] to the range a pretrained image model was trained on.

    Args:
        mode: str. "raw" (0-255), "tf" ([-1, 1]), "torch" (ImageNet mean and std of [0, 1]
            RGB), "caffe" (0-255 BGR minus the ImageNet mean), "unit" (unchanged), or "affine":
            `255 * pixels * scale + offset`, the rescaling of a keras-hub `ImageConverter`
            (which takes 0-255 pixels).
        scale: float or list of float (one per channel). "affine" only.
        offset: float or list of float (one per channel). "affine" only.

    Example:

    >>> import numpy as np
    >>> PixelScaling("tf")(np.array([[[[0.0, 0.5, 1.0]]]], "float32")).numpy().tolist()
    [[[[-1.0, 0.0, 1.0]]]]
    """

    def __init__(self, mode="raw", scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in SCALINGS + ("affine",):
            raise ValueError(f"Expected scaling to be one of {list(SCALINGS)}. Received: scaling={mode!r}")
        self.mode = mode
        self.scale = _plain(1.0 if scale is None else scale)
        self.offset = _plain(0.0 if offset is None else offset)
        self.supports_masking = True  # an elementwise rescaling
        self._build_at_init()  # no weights: built on creation (unless a subclass builds), as Keras' own are

    def call(self, pixels):
        if self.mode == "affine":
            scale = ops.convert_to_tensor(self.scale, pixels.dtype)
            offset = ops.convert_to_tensor(self.offset, pixels.dtype)
            return pixels * 255.0 * scale + offset
        if self.mode == "raw":
            return pixels * 255.0
        if self.mode == "tf":
            return pixels * 2.0 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor([0.485, 0.456, 0.406], pixels.dtype)
            std = ops.convert_to_tensor([0.229, 0.224, 0.225], pixels.dtype)
            return (pixels - mean) / std
        if self.mode == "caffe":
            bgr = ops.flip(pixels, axis=-1) * 255.0
            return bgr - ops.convert_to_tensor([103.939, 116.779, 123.68], pixels.dtype)
        return pixels

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "scale": self.scale, "offset": self.offset})
        return config


def _plain(value):
    """A float, or a list of floats, from a number, a list or an array (for JSON configs)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


#: What each `encoder` key accepts (`weights` is checked where it is loaded: a path or "imagenet").
ENCODER_CHECKS = {
    "weights": ((lambda value: True), "a path, 'imagenet' or null"),
    "source": ((lambda value: isinstance(value, str) and bool(value)),
               "'keras.applications:NAME', 'keras_hub:PRESET', 'hub:HANDLE', a SavedModel folder or a .keras file"),
    "trainable": checks.boolean(),
    "endpoint": checks.optional(((lambda value: isinstance(value, str)),
                                 "the name of a function or signature of the SavedModel")),
    "output_key": checks.optional(((lambda value: isinstance(value, (str, int)) and not isinstance(value, bool)),
                                   "an output's name or index")),
    "scaling": checks.optional(checks.choice(*SCALINGS)),
}


def check_encoder_options(modality, options):
    """Raises ValueError naming `modalities.<modality>.encoder` when its settings are malformed."""
    where = f"modalities.{modality}.encoder"
    checks.require_table(options, ENCODER_CHECKS, f"{where}.", "a pretrained encoder")
    if "source" not in options:  # the one required key
        checks.require(f"{where}.source", None, ENCODER_CHECKS["source"])


def build_pretrained_encoder(spec, name):
    """The encoder `spec.encoder` asks for, as a model from the modality's tensor to a vector.

    Args:
        spec: a modality spec whose `encoder` is set (see the module's docstring).
        name: str. The modality's name (names the layers).

    Example:

    >>> from mmkeras.specs import make_spec
    >>> spec = make_spec("image", {"height": 32, "width": 32, "channels": 3,
    ...     "encoder": {"source": "keras.applications:MobileNetV3Small", "weights": None}})
    >>> encoder = build_pretrained_encoder(spec, "image")
    >>> tuple(encoder.output.shape), encoder.get_layer("image_backbone").trainable
    ((None, 576), False)
    """
    options = dict(spec.encoder)
    check_encoder_options(name, options)
    source = options["source"]
    # keras.applications and keras-hub sources are per kind: each kind lists the ones it takes.
    for prefix, build in get_kind(spec.kind).pretrained_builders().items():
        if source.startswith(prefix):
            return build(spec, name, source[len(prefix):], options)
    for prefix in (APPLICATIONS_PREFIX, KERAS_HUB_PREFIX):
        if source.startswith(prefix):
            takes = kinds_that(lambda cls: prefix in cls.pretrained_builders())
            raise ValueError(f"Modality {name!r}: {prefix} encoders take {', '.join(takes)} modalities only; {name!r} "
                             f"is of kind {spec.kind}. Use a SavedModel, a TF Hub handle or a .keras file for it.")
    if source.startswith(HUB_PREFIX) or os.path.isdir(source):
        return _saved_model_folder_encoder(spec, name, source, options)
    for key in ("endpoint", "output_key"):
        if options.get(key) is not None:
            raise ValueError(f"Config key 'modalities.{name}.encoder.{key}' applies to TF Hub handles and SavedModel "
                             f"folders, not to {source!r}.")
    return _saved_model_file_encoder(spec, name, source, options)


def application_encoder(spec, name, application, options):
    """A `keras.applications` backbone (image modalities), average pooled, its input scaling inside."""
    constructor = getattr(keras.applications, application, None)
    if constructor is None or not callable(constructor):
        known = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise ValueError(f"Config key 'modalities.{name}.encoder.source': keras.applications has no model "
                         f"{application!r}. Known: {known}")
    weights = options.get("weights", "imagenet")
    if weights not in (None, "imagenet") and not os.path.exists(weights):
        raise ValueError(f"Config key 'modalities.{name}.encoder.weights': no weights file {weights!r}.")
    if weights is not None and spec.channels != 3:
        raise ValueError(f"Modality {name!r}: {application} with pretrained weights takes RGB images; set "
                         f"channels: 3 (the Preprocessor converts grey images). Received: channels={spec.channels}")
    try:
        backbone = constructor(include_top=False, weights="imagenet" if weights == "imagenet" else None,
                               input_shape=(spec.height, spec.width, spec.channels), pooling="avg")
    except Exception as error:  # noqa: BLE001 - re-raised with the source named
        if weights == "imagenet" and _is_fetch_failure(error):
            raise RuntimeError(
                f"Could not fetch the ImageNet weights of keras.applications:{application} ({error}). On a "
                f"machine without internet, download them elsewhere and set modalities.{name}.encoder.weights "
                f"to the local file, or copy them into ~/.keras/models/."
            ) from error
        raise
    if weights not in (None, "imagenet"):
        backbone.load_weights(weights)
    backbone.name = f"{name}_backbone"
    backbone.trainable = bool(options.get("trainable", False))
    scaling = options.get("scaling") or _application_scaling(application)
    pixels = keras.Input((spec.height, spec.width, spec.channels), name=name)
    x = PixelScaling(scaling, name=f"{name}_scaling")(pixels)
    # A frozen backbone's BatchNormalization keeps its statistics (the Keras transfer-learning recipe).
    x = backbone(x, training=False) if not backbone.trainable else backbone(x)
    x = keras.layers.Dropout(spec.dropout, name=f"{name}_dropout")(x)
    return keras.Model(pixels, x, name=f"{name}_encoder")


def _application_scaling(application):
    for prefix in sorted(APPLICATION_SCALING, key=len, reverse=True):
        if application.startswith(prefix):
            return APPLICATION_SCALING[prefix]
    return "raw"


def _is_fetch_failure(error):
    text = f"{type(error).__name__} {error}"
    return any(word in text for word in ("URL fetch failure", "URLError", "HTTP Error", "urlopen",
                                         "Name or service not known", "Temporary failure in name resolution",
                                         "Connection refused", "Network is unreachable", "timed out",
                                         "ConnectionError", "Failed to resolve", "Max retries exceeded"))


def _saved_model_file_encoder(spec, name, path, options):
    if not path.endswith(".keras"):
        raise ValueError(f"Config key 'modalities.{name}.encoder.source': expected 'keras.applications:NAME', "
                         f"'keras_hub:PRESET', 'hub:HANDLE', a SavedModel folder or a path ending in .keras. "
                         f"Received: {path!r}")
    if not os.path.exists(path):
        raise ValueError(f"Config key 'modalities.{name}.encoder.source': no file {path!r}.")
    if options.get("weights") is not None:
        raise ValueError(f"Config key 'modalities.{name}.encoder.weights': a .keras file holds its own weights; "
                         f"remove 'weights'.")
    loaded = keras.saving.load_model(path, compile=False)
    loaded.name = f"{name}_backbone"
    loaded.trainable = bool(options.get("trainable", False))
    expected, dtype = get_kind(spec.kind).model_input(spec)
    given = tuple(loaded.inputs[0].shape[1:]) if len(loaded.inputs) == 1 else None
    if given is None or len(given) != len(expected) or any(g not in (None, e) for g, e in zip(given, expected)):
        raise ValueError(f"Modality {name!r}: the encoder in {path} must take one input of shape {(None,) + expected} "
                         f"(what the Preprocessor makes for this modality). Received inputs: "
                         f"{[tuple(t.shape) for t in loaded.inputs]}")
    tensor = keras.Input(expected, dtype=dtype, name=name)
    x = loaded(tensor, training=False) if not loaded.trainable else loaded(tensor)
    return pooled_vector(spec, name, tensor, x, path)


def _saved_model_folder_encoder(spec, name, source, options):
    where = f"modalities.{name}.encoder"
    if options.get("weights") is not None:
        raise ValueError(f"Config key '{where}.weights': a SavedModel holds its own weights; remove 'weights'.")
    folder = resolve_hub_handle(source[len(HUB_PREFIX):], f"{where}.source") if source.startswith(HUB_PREFIX) else source
    expected, dtype = get_kind(spec.kind).model_input(spec)
    tensor = keras.Input(expected, dtype=dtype, name=name)
    x = tensor
    if options.get("scaling") is not None:
        if not get_kind(spec.kind).takes_pixel_scaling:
            takes = kinds_that(lambda cls: cls.takes_pixel_scaling)
            raise ValueError(f"Config key '{where}.scaling' applies to {', '.join(takes)} modalities only.")
        x = PixelScaling(options["scaling"], name=f"{name}_scaling")(x)
    try:
        layer = SavedModelEncoder(folder, endpoint=options.get("endpoint"), output_key=options.get("output_key"),
                                  example_shape=expected, example_dtype=dtype, name=f"{name}_backbone")
    except ValueError as error:
        raise ValueError(f"Config key '{where}.source' ({source}): {error}") from error
    layer.trainable = bool(options.get("trainable", False))
    return pooled_vector(spec, name, tensor, layer(x), source)


def resolve_hub_handle(handle, where="encoder.source"):
    """The local folder of a TF Hub handle: downloaded and cached by `tensorflow_hub` when online.

    A local folder passes through unchanged. Offline, a handle that is not in `TFHUB_CACHE_DIR`
    raises one RuntimeError saying how to point to a local copy.
    """
    try:
        import tensorflow_hub as hub
    except ImportError as error:
        raise ImportError(f"Config key '{where}' names a TF Hub handle ({handle}), which needs tensorflow-hub: "
                          f"pip install 'mmkeras[hub]' (or point the source to a local SavedModel folder).") from error
    return _fetch(hub.resolve, handle, f"the TF Hub model {handle}",
                  f"download it elsewhere (the handle's address with '?tf-hub-format=compressed' gives a .tar.gz), "
                  f"unpack it and set {where} to that folder, or set TFHUB_CACHE_DIR to a cache folder that holds it.")


def _fetch(load, source, what, way_out):
    """`load(source)`; a network failure becomes one RuntimeError naming `what` and the way out."""
    try:
        return load(source)
    except Exception as error:  # noqa: BLE001 - re-raised with the source named
        if os.path.isdir(source) or not _is_fetch_failure(error):
            raise
        raise RuntimeError(f"Could not fetch {what} ({error}). On a machine without internet, {way_out}") from error


def pooled_vector(spec, name, tensor, x, source):
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    elif len(x.shape) == 3:
        x = keras.layers.GlobalAveragePooling1D(name=f"{name}_pool")(x)
    if len(x.shape) != 2:
        raise ValueError(f"Modality {name!r}: the encoder in {source} must return (batch, features) or a feature map. "
                         f"Received: {tuple(x.shape)}")
    x = keras.layers.Dropout(spec.dropout, name=f"{name}_dropout")(x)
    return keras.Model(tensor, x, name=f"{name}_encoder")



def is_keras_hub_source(spec):
    """Whether a modality spec's encoder is a keras-hub preset (whose tokenizer the Preprocessor uses)."""
    source = (spec.encoder or {}).get("source", "")
    return isinstance(source, str) and source.startswith(KERAS_HUB_PREFIX)


def keras_hub_module():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError("A keras_hub: encoder needs keras-hub and tensorflow-text: pip install 'mmkeras[hub]'.") \
            from error
    return keras_hub


def from_preset(load, preset, where):
    """`load(preset)`, with the way out of an offline failure named."""
    return _fetch(load, preset, f"the keras-hub preset {preset!r}",
                  f"save it elsewhere (keras_hub.models.Backbone.from_preset(...).save_to_preset(FOLDER), and the "
                  f"same for its tokenizer, or download the Kaggle / Hugging Face model folder), copy the folder over "
                  f"and set {where} to 'keras_hub:FOLDER'.")


def keras_hub_backbone(spec, name, preset, options, unused):
    """(keras_hub, the preset's backbone), after refusing encoder keys that do not apply to this kind."""
    for key in unused:
        if options.get(key) is not None:
            raise ValueError(f"Config key 'modalities.{name}.encoder.{key}' does not apply to keras_hub: "
                             f"{spec.kind} presets; remove it.")
    keras_hub = keras_hub_module()
    return keras_hub, from_preset(keras_hub.models.Backbone.from_preset, preset, f"modalities.{name}.encoder.source")
