"""WAV decoding in core TensorFlow ops (usable in stock TF Serving).

`tf.audio.decode_wav` reads 16-bit PCM only; this parser walks the RIFF chunks itself and reads
8/16/24/32-bit PCM and 32/64-bit float, plain or WAVE_FORMAT_EXTENSIBLE, any channel count and
sample rate.
"""

import tensorflow as tf

_PCM = 1
_FLOAT = 3
#: Headers beyond these are refused before any sample is decoded or resampled (a 2 KB file
#: claiming 2 GHz would otherwise make the resampler allocate gigabytes).
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 64
_EXTENSIBLE = 0xFFFE


def _read(data, offset, length):
    """`length` bytes at `offset`, zero-filled past the end (substr itself fails past the end)."""
    offset = tf.minimum(tf.cast(offset, tf.int64), tf.cast(tf.strings.length(data), tf.int64))
    piece = tf.strings.substr(data, offset, tf.fill(tf.shape(offset), tf.constant(length, tf.int64)))
    return tf.strings.substr(tf.strings.join([piece, "\0" * length]), 0, length)


def _u16(data, offset):
    return tf.cast(tf.io.decode_raw(_read(data, offset, 2), tf.uint16)[..., 0], tf.int32)


def _u32(data, offset):
    # RIFF sizes are unsigned; int64 keeps sizes above 2 GiB from turning negative.
    raw = tf.io.decode_raw(_read(data, offset, 4), tf.uint8)
    raw = tf.cast(raw, tf.int64)
    return raw[..., 0] + raw[..., 1] * 256 + raw[..., 2] * 65536 + raw[..., 3] * 16777216


def wav_header(data):
    """Reads a WAV file's header without decoding samples.

    Args:
        data: scalar `tf.string`, the bytes of a file.

    Returns:
        dict of scalar tensors: `ok` (bool), `reason` (string, empty when ok), `format`
        (1 PCM, 3 float), `channels`, `sample_rate`, `bits`, `data_offset`, `data_size`.
    """
    size = tf.cast(tf.strings.length(data), tf.int64)
    is_riff = tf.logical_and(
        size >= 12,
        tf.logical_and(_read(data, 0, 4) == "RIFF", _read(data, 8, 4) == "WAVE"),
    )

    def walk(offset, fmt_offset, data_offset, data_size):
        chunk_id = _read(data, offset, 4)
        chunk_size = _u32(data, offset + 4)
        fmt_offset = tf.where(tf.logical_and(chunk_id == "fmt ", fmt_offset < 0), offset + 8, fmt_offset)
        found_data = tf.logical_and(chunk_id == "data", data_offset < 0)
        data_offset = tf.where(found_data, offset + 8, data_offset)
        data_size = tf.where(found_data, chunk_size, data_size)
        return offset + 8 + chunk_size + chunk_size % 2, fmt_offset, data_offset, data_size

    def more(offset, fmt_offset, data_offset, data_size):
        return tf.logical_and(offset + 8 <= size, tf.logical_or(fmt_offset < 0, data_offset < 0))

    minus_one = tf.constant(-1, tf.int64)
    start = tf.where(is_riff, tf.constant(12, tf.int64), size)  # not RIFF: skip the walk
    _, fmt_offset, data_offset, data_size = tf.while_loop(
        more, walk, (start, minus_one, minus_one, minus_one), maximum_iterations=10000
    )
    has_fmt = tf.logical_and(fmt_offset >= 0, fmt_offset + 16 <= size)
    safe_fmt = tf.where(has_fmt, fmt_offset, 0)
    fmt_tag = _u16(data, safe_fmt)
    sub_tag = tf.cond(
        tf.logical_and(tf.equal(fmt_tag, _EXTENSIBLE), safe_fmt + 26 <= size),
        lambda: _u16(data, safe_fmt + 24),
        lambda: fmt_tag,
    )
    channels = _u16(data, safe_fmt + 2)
    sample_rate = _u32(data, safe_fmt + 4)  # int64: a hostile header can claim 4 GHz
    bits = _u16(data, safe_fmt + 14)
    available = tf.maximum(size - data_offset, 0)
    # Streamed WAVs leave the size 0 or 0xFFFFFFFF and may hold anything: read what is there.
    # Any other size larger than what the file holds means the file was cut short.
    streamed = tf.logical_or(tf.equal(data_size, 0), data_size >= 0xFFFFFFFE)
    truncated = tf.logical_and(tf.logical_not(streamed), data_size > available)
    claimed = data_size
    data_size = tf.clip_by_value(data_size, 0, available)
    frame_bytes = tf.cast(tf.maximum(channels * tf.maximum(bits // 8, 1), 1), tf.int64)
    supported = tf.logical_or(
        tf.logical_and(tf.equal(sub_tag, _PCM), tf.reduce_any(tf.equal(bits, [8, 16, 24, 32]))),
        tf.logical_and(tf.equal(sub_tag, _FLOAT), tf.reduce_any(tf.equal(bits, [32, 64]))),
    )
    checks = [
        (tf.logical_not(is_riff), "not a WAV file (no RIFF/WAVE header)"),
        (tf.logical_not(has_fmt), "WAV file has no fmt chunk"),
        (data_offset < 0, "WAV file has no data chunk"),
        (tf.logical_not(supported), "unsupported WAV encoding (expected 8/16/24/32-bit PCM or 32/64-bit float)"),
        (tf.logical_or(channels < 1, sample_rate < 1), "WAV header has zero channels or sample rate"),
        (sample_rate > MAX_SAMPLE_RATE, tf.strings.join([
            "WAV sample rate ", tf.strings.as_string(sample_rate), f" Hz is out of range (1 to {MAX_SAMPLE_RATE})"])),
        (channels > MAX_CHANNELS, tf.strings.join([
            "WAV header claims ", tf.strings.as_string(channels), f" channels (at most {MAX_CHANNELS})"])),
        (truncated, tf.strings.join(["WAV data chunk claims ", tf.strings.as_string(claimed), " bytes but the file "
                                     "holds ", tf.strings.as_string(available), " (truncated file)"])),
        (data_size < frame_bytes, "WAV file has no audio samples (empty data chunk)"),
    ]
    reason = tf.constant("")
    for failed, message in reversed(checks):  # the first failing check wins
        reason = tf.where(failed, message, reason)
    return {
        "ok": tf.equal(reason, ""),
        "reason": reason,
        "format": sub_tag,
        "channels": tf.maximum(channels, 1),
        "sample_rate": tf.cast(tf.clip_by_value(sample_rate, 1, MAX_SAMPLE_RATE), tf.int32),
        "bits": bits,
        "data_offset": tf.maximum(data_offset, 0),
        "data_size": data_size,
    }


def _samples(payload, header):
    """The data chunk as float32 in [-1, 1], one flat vector (channels interleaved)."""
    bits = header["bits"]

    def pcm8():
        return (tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.float32) - 128.0) / 128.0

    def pcm16():
        return tf.cast(tf.io.decode_raw(payload, tf.int16), tf.float32) / 32768.0

    def pcm24():
        raw = tf.reshape(tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.int32), (-1, 3))
        value = raw[:, 0] + raw[:, 1] * 256 + raw[:, 2] * 65536
        value = tf.where(value >= 8388608, value - 16777216, value)
        return tf.cast(value, tf.float32) / 8388608.0

    def pcm32():
        return tf.cast(tf.io.decode_raw(payload, tf.int32), tf.float32) / 2147483648.0

    def float32():
        return tf.io.decode_raw(payload, tf.float32)

    def float64():
        return tf.cast(tf.io.decode_raw(payload, tf.float64), tf.float32)

    is_float = tf.equal(header["format"], _FLOAT)
    index = tf.case(
        [
            (tf.logical_and(is_float, tf.equal(bits, 64)), lambda: tf.constant(5)),
            (is_float, lambda: tf.constant(4)),
            (tf.equal(bits, 8), lambda: tf.constant(0)),
            (tf.equal(bits, 16), lambda: tf.constant(1)),
            (tf.equal(bits, 24), lambda: tf.constant(2)),
        ],
        default=lambda: tf.constant(3),
    )
    return tf.switch_case(index, [pcm8, pcm16, pcm24, pcm32, float32, float64])


def decode_wav(data, name="audio"):
    """Decodes WAV bytes to float32 samples `(frames, channels)` and the sample rate.

    Raises `InvalidArgumentError` naming `name` and what was wrong for bytes that are not a WAV
    file this parser reads.

    Args:
        data: scalar `tf.string`.
        name: str. Name of the input, used in error messages.

    Example:

    >>> import io, wave, numpy as np
    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as w:
    ...     w.setnchannels(2); w.setsampwidth(2); w.setframerate(8000)
    ...     w.writeframes(np.array([[16384, -16384]] * 4, "<i2").tobytes())
    >>> samples, rate = decode_wav(tf.constant(buffer.getvalue()))
    >>> samples.numpy().tolist()[0], int(rate)
    ([0.5, -0.5], 8000)
    """
    header = wav_header(data)
    tf.debugging.Assert(header["ok"], [tf.strings.join([f"Input {name}: ", header["reason"]])])
    return decode_checked_wav(data, header)


def decode_checked_wav(data, header):
    """Like `decode_wav`, for bytes whose `wav_header` is already known to be ok."""
    frame_bytes = tf.cast(header["channels"] * (header["bits"] // 8), tf.int64)
    usable = header["data_size"] - header["data_size"] % frame_bytes
    payload = tf.strings.substr(data, header["data_offset"], usable)
    samples = tf.reshape(_samples(payload, header), (-1, header["channels"]))  # (frames, channels)
    return samples, header["sample_rate"]


def plain_pcm16_in_bounds(data):
    """Elementwise: a canonical header's rate and channels are in range and it holds a frame."""
    channels, rate = plain_pcm16_format(data)
    frames = (tf.cast(tf.strings.length(data), tf.int64) - 44) // tf.cast(2 * tf.maximum(channels, 1), tf.int64)
    return (rate >= 1) & (rate <= MAX_SAMPLE_RATE) & (channels >= 1) & (channels <= MAX_CHANNELS) & (frames >= 1)


def is_plain_pcm16(data):
    """True for the common canonical layout: 'fmt ' first, 16-bit PCM, then 'data' to the end.

    Works elementwise on a tensor of files of any shape. Such files decode without walking the
    chunks: the samples start at byte 44 and run to the end.
    """
    exact_size = tf.equal(_u32(data, 40) + 44, tf.cast(tf.strings.length(data), tf.int64))
    return tf.logical_and(
        tf.logical_and(tf.logical_and(_read(data, 0, 4) == "RIFF", _read(data, 8, 8) == "WAVEfmt "), exact_size),
        tf.logical_and(
            tf.logical_and(_read(data, 16, 4) == b"\x10\x00\x00\x00", _read(data, 20, 2) == b"\x01\x00"),
            tf.logical_and(_read(data, 34, 2) == b"\x10\x00", _read(data, 36, 4) == "data"),
        ),
    )


def plain_pcm16_format(data):
    """(channels, sample_rate) int32 tensors from canonical headers (see `is_plain_pcm16`)."""
    return _u16(data, 22), tf.cast(_u32(data, 24), tf.int32)
