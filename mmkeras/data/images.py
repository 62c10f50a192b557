"""Image bytes → float pixels in core TensorFlow ops (PNG, JPEG, GIF first frame, BMP)."""

import base64

import tensorflow as tf

#: Leading bytes of each supported format.
IMAGE_SIGNATURES = {"PNG": b"\x89PNG", "JPEG": b"\xff\xd8\xff", "GIF": b"GIF8", "BMP": b"BM"}


#: A valid 1x1 grey PNG, decoded in place of absent or invalid bytes so that no per-example
#: conditional is needed (in tf.data a `tf.cond` costs as much as a small decode).
PLACEHOLDER_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def image_check(data):
    """(ok, reason) for image bytes: is it a format `decode_image` reads? Never raises."""
    known = tf.reduce_any(
        [tf.strings.substr(data, 0, len(sig)) == sig for sig in IMAGE_SIGNATURES.values()]
    )
    big_enough = tf.strings.length(data) >= 16
    ok = tf.logical_and(known, big_enough)
    reason = tf.where(ok, "", "not an image file (expected PNG, JPEG, GIF or BMP bytes)")
    return ok, reason


def _to_channels(image, channels):
    """uint8 image with any channel count (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) → `channels`."""
    native = tf.shape(image)[-1]
    rgb = tf.case(
        [
            (tf.equal(native, 1), lambda: tf.tile(image, [1, 1, 3])),
            (tf.equal(native, 2), lambda: tf.tile(image[..., :1], [1, 1, 3])),
        ],
        default=lambda: image[..., :3],
    )
    rgb = tf.ensure_shape(rgb, [None, None, 3])
    if channels == 3:
        return rgb
    if channels == 1:
        grey_native = tf.logical_or(tf.equal(native, 1), tf.equal(native, 2))
        # Native grey stays exact; colour uses the ITU-R 601 luma weights.
        return tf.cond(
            grey_native,
            lambda: rgb[..., :1],
            lambda: tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(rgb, tf.float32))), tf.uint8),
        )
    alpha = tf.case(
        [(tf.equal(native, 2), lambda: image[..., 1:2]), (tf.equal(native, 4), lambda: image[..., 3:4])],
        default=lambda: tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), tf.constant(255, tf.uint8)),
    )
    return tf.concat([rgb, alpha], axis=-1)


def decode_image(data, spec):
    """Decodes image bytes to float32 `(height, width, channels)` in [0, 1] as `spec` says.

    Args:
        data: scalar `tf.string` with PNG, JPEG, GIF or BMP bytes.
        spec: `ImageSpec`.

    Example:

    >>> import io, numpy as np
    >>> from PIL import Image
    >>> from mmkeras.specs import ImageSpec
    >>> buffer = io.BytesIO()
    >>> Image.fromarray(np.full((4, 6, 3), 255, "uint8")).save(buffer, format="PNG")
    >>> pixels = decode_image(tf.constant(buffer.getvalue()), ImageSpec(height=2, width=3, channels=1))
    >>> pixels.shape.as_list(), float(pixels[0, 0, 0])
    ([2, 3, 1], 1.0)
    """
    if spec.channels == 3:
        # The decoders convert grey, grey+alpha and RGBA to RGB themselves (grey repeated, alpha
        # dropped), as `_to_channels` would, in one op instead of a per-image conditional.
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    else:
        image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)  # (h, w, native)
        image = _to_channels(image, spec.channels)
    image = tf.cast(image, tf.float32) / 255.0
    size = [spec.height, spec.width]
    if spec.preserve_aspect_ratio:
        image = tf.image.resize_with_pad(image, spec.height, spec.width, method=spec.resize_method)
    else:
        image = tf.image.resize(image, size, method=spec.resize_method)
    image = tf.clip_by_value(image, 0.0, 1.0)  # bicubic/lanczos overshoot
    return tf.ensure_shape(image, [spec.height, spec.width, spec.channels])
