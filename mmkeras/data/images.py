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


#: Images claiming more pixels than this in their header are refused before decoding (a
#: 12000 x 12000 PNG would otherwise take about 0.6 GB to decode, whatever size it is resized to).
MAX_PIXELS = 40_000_000


def _bytes_at(data, offset, length):
    """`length` bytes at `offset` as int64 values, zero past the end."""
    size = tf.cast(tf.strings.length(data), tf.int64)
    offset = tf.minimum(tf.cast(offset, tf.int64), size)
    piece = tf.strings.substr(tf.strings.join([tf.strings.substr(data, offset, length), "\0" * length]), 0, length)
    return tf.cast(tf.io.decode_raw(piece, tf.uint8), tf.int64)


def _big_endian(data, offset, length):
    values = _bytes_at(data, offset, length)
    return tf.reduce_sum(values * tf.constant([256 ** (length - 1 - i) for i in range(length)], tf.int64))


def _little_endian(data, offset, length):
    values = _bytes_at(data, offset, length)
    return tf.reduce_sum(values * tf.constant([256 ** i for i in range(length)], tf.int64))


def _jpeg_size(data):
    """(height, width) from a JPEG's first start-of-frame segment; (0, 0) when none is found."""
    size = tf.cast(tf.strings.length(data), tf.int64)
    sof = tf.constant([0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF], tf.int64)

    def more(offset, found):
        return tf.logical_and(tf.logical_not(found), offset + 9 <= size)

    def step(offset, found):
        marker = _bytes_at(data, offset, 2)
        is_sof = tf.logical_and(tf.equal(marker[0], 0xFF), tf.reduce_any(tf.equal(marker[1], sof)))
        length = _big_endian(data, offset + 2, 2)
        # A byte that is not a marker (0xFF): move on by one (fill bytes, or garbage).
        advance = tf.where(tf.equal(marker[0], 0xFF), 2 + tf.maximum(length, 0), 1)
        return tf.where(is_sof, offset, offset + advance), is_sof

    offset, found = tf.while_loop(more, step, (tf.constant(2, tf.int64), tf.constant(False)), maximum_iterations=4096)
    height = tf.where(found, _big_endian(data, offset + 5, 2), 0)
    width = tf.where(found, _big_endian(data, offset + 7, 2), 0)
    return height, width


def image_size(data):
    """(height, width) int64 scalars read from the header of PNG/GIF/BMP/JPEG bytes (0 if unknown)."""
    def png():
        return _big_endian(data, 20, 4), _big_endian(data, 16, 4)

    def gif():
        return _little_endian(data, 8, 2), _little_endian(data, 6, 2)

    def bmp():
        height = _little_endian(data, 22, 4)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # negative: top-down rows
        return height, _little_endian(data, 18, 4)

    def zero():
        return tf.constant(0, tf.int64), tf.constant(0, tf.int64)

    head = tf.strings.substr(data, 0, 4)
    return tf.case([
        (tf.equal(head, IMAGE_SIGNATURES["PNG"]), png),
        (tf.equal(head, IMAGE_SIGNATURES["GIF"]), gif),
        (tf.equal(tf.strings.substr(data, 0, 2), IMAGE_SIGNATURES["BMP"]), bmp),
        (tf.equal(tf.strings.substr(data, 0, 3), IMAGE_SIGNATURES["JPEG"]), lambda: _jpeg_size(data)),
    ], default=zero, exclusive=False)


def image_check(data):
    """(ok, reason) for image bytes: a format `decode_image` reads, of a size it may decode. Never raises."""
    known = tf.reduce_any(
        [tf.strings.substr(data, 0, len(sig)) == sig for sig in IMAGE_SIGNATURES.values()]
    )
    big_enough = tf.strings.length(data) >= 16
    ok = tf.logical_and(known, big_enough)
    reason = tf.where(ok, "", "not an image file (expected PNG, JPEG, GIF or BMP bytes)")
    height, width = tf.cond(ok, lambda: image_size(data),
                            lambda: (tf.constant(0, tf.int64), tf.constant(0, tf.int64)))
    too_big = height * width > MAX_PIXELS
    reason = tf.where(too_big, tf.strings.join([
        "image is ", tf.strings.as_string(width), " x ", tf.strings.as_string(height),
        f" pixels (at most {MAX_PIXELS:,} are decoded; resize it first)"]), reason)
    return tf.logical_and(ok, tf.logical_not(too_big)), reason


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
