"""The image kind: encoded file bytes → float pixels in [0, 1], and its Conv2D encoder."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.data import images as images_lib
from mmkeras.modalities.modality import Modality

KIND = "image"

#: Training-time augmentation that is on unless a config says otherwise (safe for most data:
#: no flips or rotations, which change the meaning of digits, text or arrows): this one for an
#: image beside other modalities, where fused models scored best with it...
DEFAULT_AUGMENT = {"shift": 0.1}
#: ...and this milder one when the image is the model's only modality, where the stronger one
#: cost the image branch accuracy (both measured in benchmarks/RESULTS.md, issue 31).
ALONE_AUGMENT = {"shift": 0.05}


@dataclasses.dataclass
class ImageSpec:
    """Settings of an image modality.

    Args:
        height: int. Height the image is resized to.
        width: int. Width the image is resized to.
        channels: int. 1 (grey), 3 (RGB) or 4 (RGBA); decoded images are converted to this.
        resize_method: str. `tf.image.resize` method ("bilinear", "nearest", "area", ...).
        preserve_aspect_ratio: bool. Resize to fit, then pad to `height` x `width`.
        filters: tuple of int. Filters of each Conv2D block; one block per entry.
        kernel_size: int. Conv2D kernel size.
        batchnorm_momentum: float. BatchNormalization momentum (0.9 makes early validation
            scores meaningful on small data sets).
        pooling: str. How the last feature map becomes a vector: "grid" (default) averages it
            down to `grid` x `grid` cells and flattens them, so where a feature is stays known
            (a digit's stroke at the top or the bottom); "avg" or "max" pool globally (position-
            free: fine for textures and objects anywhere, much weaker for centred drawings).
        grid: int. Cells per side for `pooling="grid"` (a smaller map is flattened as it is).
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained encoder instead of the default branch: `{source:
            "keras.applications:NAME" | "keras_hub:PRESET" | "hub:HANDLE" | SavedModel folder |
            .keras file, weights: imagenet | PATH | null, trainable: false, scaling: raw | tf |
            torch | caffe | unit}` (every key in `mmkeras.pretrained`).
        augment: dict. Training-only augmentation; `{}` turns it off, and None (the default)
            takes small shifts: `DEFAULT_AUGMENT` beside other modalities, the milder
            `ALONE_AUGMENT` when the image is the model's only modality (the Preprocessor
            settles which, and saves the result). Its options:
            "shift" (random translation, as a fraction of height and width), "flip" ("horizontal",
            "vertical" or "horizontal_and_vertical"), "rotation" (fraction of a full turn),
            "zoom" (fraction), "contrast" (factor), "noise" (std of added Gaussian noise),
            "occlusion" (side of a random blanked square, as a fraction of the image).

    Example:

    >>> ImageSpec(height=8, width=8).filters
    (32, 64, 128)
    """

    kind = KIND
    height: int = 32
    width: int = 32
    channels: int = 3
    resize_method: str = "bilinear"
    preserve_aspect_ratio: bool = False
    filters: tuple = (32, 64, 128)
    kernel_size: int = 3
    batchnorm_momentum: float = 0.9
    pooling: str = "grid"
    grid: int = 4
    dropout: float = 0.1
    encoder: dict = None
    augment: dict = None

    def __post_init__(self):
        self.filters = tuple(self.filters)
        specs_lib.check_choice("pooling", self.pooling, ("grid", "avg", "max"))
        specs_lib.check_keys("image augment", self.augment,
                    ("shift", "flip", "rotation", "zoom", "contrast", "noise", "occlusion"))


def build_image_encoder(spec=None, **options):
    """Image encoder: `[Conv2D → BatchNormalization → ReLU → MaxPooling2D] * n` → pooled vector.

    The last feature map is averaged down to a `grid` x `grid` map and flattened (default), or
    pooled globally (`pooling="avg"` or `"max"`).

    Args:
        spec: `ImageSpec`. Settings; alternatively pass ImageSpec's fields as keyword options.
        **options: ImageSpec fields, and `name` (the modality name, default "image").

    Example:

    >>> encoder = build_image_encoder(height=8, width=8, channels=1, filters=(4, 8))
    >>> tuple(encoder.output.shape)  # a 2 x 2 map of 8 filters, flattened
    (None, 32)
    >>> tuple(build_image_encoder(height=8, width=8, channels=1, filters=(4, 8), pooling="avg").output.shape)
    (None, 8)
    """
    spec, p = specs_lib.resolve_spec(spec, options, KIND)
    if spec.encoder:  # a pretrained encoder instead (mmkeras.pretrained)
        return pretrained.build_pretrained_encoder(spec, p)
    pixels = keras.Input((spec.height, spec.width, spec.channels), name=p)  # (batch, H, W, C)
    x = pixels
    size = min(spec.height, spec.width)
    for i, filters in enumerate(spec.filters, start=1):
        x = keras.layers.Conv2D(filters, spec.kernel_size, padding="same", use_bias=False, name=f"{p}_conv_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=spec.batchnorm_momentum, name=f"{p}_bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"{p}_relu_{i}")(x)
        if size >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"{p}_pool_{i}")(x)  # (batch, H / 2**i, W / 2**i, filters)
            size //= 2
    if spec.pooling == "grid":
        cells = (min(spec.grid, x.shape[1]), min(spec.grid, x.shape[2]))
        if cells != tuple(x.shape[1:3]):
            x = grid_pool(x, cells, f"{p}_grid_pool")  # (batch, g, g, filters)
        x = keras.layers.Flatten(name=f"{p}_flatten")(x)  # (batch, g * g * filters[-1])
    elif spec.pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name=f"{p}_global_pool")(x)  # (batch, filters[-1])
    else:
        x = keras.layers.GlobalAveragePooling2D(name=f"{p}_global_pool")(x)  # (batch, filters[-1])
    x = keras.layers.Dropout(spec.dropout, name=f"{p}_dropout")(x)
    return keras.Model(pixels, x, name=f"{p}_encoder")


def grid_pool(x, cells, name):
    """Averages a `(batch, H, W, C)` feature map down to `cells` = (rows, columns) of cells.

    Keras' `AdaptiveAveragePooling2D` fails inside a graph (`fit`, the served model) when a side
    of its output is 1 ("Negative dimension size"), so a side pooled to 1 is averaged whole with
    `AveragePooling2D`, and the other side, where it still needs pooling, in one dimension.
    """
    rows, columns = cells
    if rows > 1 and columns > 1:
        return keras.layers.AdaptiveAveragePooling2D(cells, name=name)(x)
    height, width, channels = x.shape[1:]
    if rows == 1 and columns == 1:
        return keras.layers.AveragePooling2D((height, width), name=name)(x)
    if rows == 1:  # (batch, 1, W, C), then W → columns
        x = keras.layers.AveragePooling2D((height, 1), name=f"{name}_rows")(x)
        if columns == width:
            return x
        x = keras.layers.Reshape((width, channels), name=f"{name}_flat")(x)
        x = keras.layers.AdaptiveAveragePooling1D(columns, name=name)(x)
        return keras.layers.Reshape((1, columns, channels), name=f"{name}_map")(x)
    x = keras.layers.AveragePooling2D((1, width), name=f"{name}_columns")(x)  # (batch, H, 1, C), then H → rows
    if rows == height:
        return x
    x = keras.layers.Reshape((height, channels), name=f"{name}_flat")(x)
    x = keras.layers.AdaptiveAveragePooling1D(rows, name=name)(x)
    return keras.layers.Reshape((rows, 1, channels), name=f"{name}_map")(x)


def _regions(heat, cells=4):
    """A 2-D map summed over a grid of at most `cells` x `cells` regions: (labels, scores)."""
    labels, scores = [], []
    row_edges = np.linspace(0, heat.shape[0], min(cells, heat.shape[0]) + 1).astype(int)
    col_edges = np.linspace(0, heat.shape[1], min(cells, heat.shape[1]) + 1).astype(int)
    for top, bottom in zip(row_edges[:-1], row_edges[1:]):
        for left, right in zip(col_edges[:-1], col_edges[1:]):
            labels.append(f"rows {top}-{bottom - 1}, columns {left}-{right - 1}")
            scores.append(float(heat[top:bottom, left:right].sum()))
    return labels, np.array(scores)


class ImageModality(Modality):
    """Images: the cell names a PNG, JPEG, GIF or BMP file; decoded, resized and scaled to [0, 1].

    TensorFlow's image decoders take one file at a time, so images decode per example
    (`decode_one`); a file that is not an image, or one TensorFlow cannot read, comes back as
    a reason rather than an error.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> image = ImageModality("image", ImageSpec(height=2, width=2, channels=1))
    >>> png = tf.io.encode_png(np.full((4, 4, 1), 255, "uint8"))
    >>> pixels, present, reason = image.decode_one(png)
    >>> pixels.shape.as_list(), bool(present), image.decode_one(tf.constant(b"not an image"))[2].numpy()
    ([2, 2, 1], True, b'not an image file (expected PNG, JPEG, GIF or BMP bytes)')
    """

    kind = KIND
    spec_class = ImageSpec
    per_example = True
    takes_pixel_scaling = True

    def __init__(self, name, spec, state=None, folder=None):
        super().__init__(name, spec, state, folder)
        self._augmenters = None

    @classmethod
    def model_input(cls, spec):
        return (spec.height, spec.width, spec.channels), "float32"

    @classmethod
    def build_encoder(cls, spec, name):
        return build_image_encoder(spec, name=name)

    @classmethod
    def settle_spec(cls, spec, specs):
        """An unset `augment` becomes the shift for an image alone or beside other modalities."""
        if spec.augment is not None:
            return spec
        return dataclasses.replace(spec, augment=dict(ALONE_AUGMENT if len(specs) == 1 else DEFAULT_AUGMENT))

    @classmethod
    def pretrained_builders(cls):
        return {pretrained.APPLICATIONS_PREFIX: pretrained.application_encoder,
                pretrained.KERAS_HUB_PREFIX: keras_hub_encoder}

    def decode_one(self, data):
        present = tf.strings.length(data) > 0
        ok, reason = images_lib.image_check(data)
        reason = tf.where(present, reason, "")
        usable = tf.logical_and(present, ok)
        pixels = images_lib.decode_image(tf.where(usable, data, images_lib.PLACEHOLDER_PNG), self.spec)
        pixels = tf.where(usable, pixels, tf.zeros_like(pixels))
        return pixels, present, reason

    def augment(self, images, seed=None):
        """Random shifts, flips, rotations, zoom, contrast, noise and occlusion, as `spec.augment` asks."""
        options = self.spec.augment
        if options is None:  # a converter made outside a Preprocessor: the image beside others
            options = DEFAULT_AUGMENT
        if not options:
            return images
        if self._augmenters is None:
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
            self._augmenters = steps
        for step in self._augmenters:
            images = step(images, training=True)
        if options.get("noise"):
            images = add_noise(images, tf.random.normal(tf.shape(images), stddev=options["noise"], seed=seed))
        if options.get("occlusion"):
            images = occlude(images, *_random_squares(tf.shape(images), options["occlusion"], seed))
        return tf.clip_by_value(images, 0.0, 1.0)

    def describe_attribution(self, attribution, inputs, on_layer):
        """Pixels: a heat map (summed over channels) drawn over the image, scored by region."""
        heat = attribution.sum(axis=-1)
        labels, scores = _regions(heat)
        return {"unit": "region", "labels": labels, "scores": scores, "map": heat, "map_axes": ("row", "column"),
                "picture": inputs}

    def corruptions(self):
        result = {f"noise_{sigma}": _noise_corruption(sigma) for sigma in (0.1, 0.3)}
        result["occlusion_0.5"] = _occlusion_corruption(0.5)
        return result


def add_noise(images, noise):
    """Images plus `noise`, clipped back to [0, 1]."""
    return tf.clip_by_value(images + noise, 0.0, 1.0)


def square_side(height, width, fraction):
    """Side of an occluding square: `fraction` of the shorter side, at least 1 pixel."""
    return tf.maximum(1, tf.cast(tf.cast(tf.minimum(height, width), tf.float32) * fraction, tf.int32))


def occlude(images, top, left, side):
    """Blanks the square of `side` pixels at `(top, left)` of each image (`top`, `left`: `[batch]`)."""
    shape = tf.shape(images)
    rows = tf.range(shape[1])[None, :, None]
    cols = tf.range(shape[2])[None, None, :]
    top, left = tf.reshape(top, [-1, 1, 1]), tf.reshape(left, [-1, 1, 1])
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return images * tf.cast(tf.logical_not(inside), images.dtype)[..., None]


def _random_squares(shape, fraction, seed):
    side = square_side(shape[1], shape[2], fraction)
    top = tf.random.uniform([shape[0]], 0, tf.maximum(shape[1] - side, 0) + 1, tf.int32, seed=seed)
    left = tf.random.uniform([shape[0]], 0, tf.maximum(shape[2] - side, 0) + 1, tf.int32, seed=seed)
    return top, left, side


def _noise_corruption(sigma):
    def apply(images, rng):
        return add_noise(images, rng.normal(0, sigma, images.shape).astype(images.dtype)).numpy()

    return apply


def _occlusion_corruption(fraction):
    def apply(images, rng):
        height, width = images.shape[1:3]
        side = int(square_side(height, width, fraction))
        top = rng.integers(0, height - side + 1, len(images))
        left = rng.integers(0, width - side + 1, len(images))
        return occlude(images, top.astype("int32"), left.astype("int32"), side).numpy()

    return apply


# ----------------------------------------------------------------- keras-hub presets of this kind
def keras_hub_encoder(spec, name, preset, options):
    """A keras-hub vision backbone with its preset's image converter (resize + rescale) in front."""
    where = f"modalities.{name}.encoder"
    keras_hub, backbone = pretrained.keras_hub_backbone(spec, name, preset, options, ("weights", "endpoint"))
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except FileNotFoundError:  # a preset saved without its converter (the backbone alone)
        converter = None
    if converter is None and not options.get("scaling"):
        raise ValueError(f"Modality {name!r}: the keras-hub preset {preset!r} has no image converter "
                         f"(image_converter.json), so the pixel range its backbone expects is unknown. Set "
                         f"'{where}.scaling' ({', '.join(pretrained.SCALINGS)}) or save the converter into the preset folder.")
    expected = backbone.input.shape[-1] if not isinstance(backbone.input, dict) else None
    if expected is not None and expected != spec.channels:
        raise ValueError(f"Modality {name!r}: the backbone of {preset!r} takes {expected}-channel images. Set "
                         f"modalities.{name}.channels: {expected}. Received: channels={spec.channels}")
    backbone.name = f"{name}_backbone"
    backbone.trainable = bool(options.get("trainable", False))
    pixels = keras.Input((spec.height, spec.width, spec.channels), name=name)
    x = pixels
    size = tuple(converter.image_size) if converter is not None and converter.image_size is not None else None
    if size is not None and size != (spec.height, spec.width):
        # The preset's input size, cropped to its aspect ratio first when the converter does that.
        x = keras.layers.Resizing(*size, interpolation=converter.interpolation,
                                  crop_to_aspect_ratio=bool(converter.crop_to_aspect_ratio), name=f"{name}_resize")(x)
    if options.get("scaling"):
        x = pretrained.PixelScaling(options["scaling"], name=f"{name}_scaling")(x)
    else:
        x = pretrained.PixelScaling("affine", scale=converter.scale, offset=converter.offset, name=f"{name}_scaling")(x)
    x = backbone(x, training=False) if not backbone.trainable else backbone(x)
    if isinstance(x, dict):
        key = options.get("output_key")
        if key not in x:
            raise ValueError(f"Modality {name!r}: the backbone of {preset!r} returns {sorted(x)}; set "
                             f"'{where}.output_key' to one of them.")
        x = x[key]
    return pretrained.pooled_vector(spec, name, pixels, x, f"keras_hub:{preset}")
