"""Audio clips: downmix, resample and crop/pad in TensorFlow ops; compressed formats for training.

WAV decodes in-graph (see `wav.py`) and so works in stock TF Serving. FLAC, OGG/Vorbis and MP3
need a decoder library and are for the training pipeline only: tensorflow-io where its ops load
with the installed TensorFlow, else soundfile.
"""

import functools
import io

import numpy as np
import tensorflow as tf

from mmkeras.data import wav


#: Leading bytes of the compressed formats the training pipeline decodes.
COMPRESSED_SIGNATURES = {"FLAC": b"fLaC", "OGG": b"OggS", "MP3 (ID3)": b"ID3", "MP3": b"\xff\xfb"}


def resample(signal, rate, target_rate):
    """Band-limited (FFT) resampling of a mono signal from `rate` to `target_rate` Hz.

    No `tf.cond`: in tf.data a conditional costs about as much as the FFT itself, and at equal
    rates the FFT round trip returns the signal to within float rounding (~1e-7).

    Args:
        signal: float32 `(samples,)`.
        rate: scalar int tensor, the signal's rate.
        target_rate: int. The rate wanted.
    """
    rate = tf.cast(rate, tf.int64)
    length = tf.maximum(tf.cast(tf.shape(signal)[0], tf.int64), 1)
    signal = tf.pad(signal, [[0, length - tf.cast(tf.shape(signal)[0], tf.int64)]])
    out_length = tf.maximum((length * target_rate + rate // 2) // rate, 1)
    spectrum = tf.signal.rfft(signal)  # (length // 2 + 1,)
    bins = tf.cast(out_length // 2 + 1, tf.int32)
    kept = spectrum[: tf.minimum(bins, tf.shape(spectrum)[0])]
    padded = tf.pad(kept, [[0, bins - tf.shape(kept)[0]]])
    out = tf.signal.irfft(padded, fft_length=tf.cast(out_length, tf.int32)[None])
    out = out * tf.cast(out_length, tf.float32) / tf.cast(length, tf.float32)
    return tf.ensure_shape(out, [None])


def to_clip(samples, rate, spec, training=False, seed=None):
    """`(frames, channels)` samples at `rate` → mono float32 `(spec.num_samples,)` at spec's rate.

    Long clips are cut where `spec.crop` says ("random" only when training, else the centre);
    short ones are padded with zeros *before* the sound, so the end of every clip is aligned.
    """
    mono = tf.reduce_mean(tf.cast(samples, tf.float32), axis=1)  # (frames,)
    rate = tf.cast(rate, tf.int64)
    source_needed = (int(spec.num_samples) * rate + spec.sample_rate - 1) // spec.sample_rate
    excess = tf.maximum(tf.cast(tf.shape(mono)[0], tf.int64) - source_needed, 0)
    crop = spec.crop if (training or spec.crop != "random") else "center"
    if crop == "start":
        start = tf.constant(0, tf.int64)
    elif crop == "center":
        start = excess // 2
    else:
        start = tf.random.uniform([], 0, excess + 1, dtype=tf.int64, seed=seed)
    mono = mono[start : start + source_needed]
    mono = resample(mono, rate, spec.sample_rate)[: spec.num_samples]
    mono = tf.pad(mono, [[spec.num_samples - tf.shape(mono)[0], 0]])  # silence before the sound
    return tf.ensure_shape(mono, [spec.num_samples])


def is_wav(data):
    return tf.strings.substr(data, 0, 4) == "RIFF"


def is_compressed(data):
    return tf.reduce_any([tf.strings.substr(data, 0, len(s)) == s for s in COMPRESSED_SIGNATURES.values()])


@functools.lru_cache(maxsize=None)
def compressed_audio_backend():
    """("soundfile" | None, message): how the training pipeline decodes FLAC/OGG/MP3.

    soundfile (libsndfile) decodes all three and reports each file's sample rate. tensorflow-io's
    compiled ops load only with the TensorFlow they were built for (0.37.1 with TF 2.17; other
    pairings fail with "undefined symbol"); its state is reported in the message.
    """
    try:
        import tensorflow_io as tfio

        tfio.audio.decode_flac(tf.constant(b""), dtype=tf.int16)  # forces its ops library to load
        tfio_state = "loads"
    except tf.errors.InvalidArgumentError:  # the ops loaded and rejected the empty input
        tfio_state = "loads"
    except Exception as error:  # noqa: BLE001 - ImportError, NotImplementedError, undefined symbol
        tfio_state = f"unavailable: {type(error).__name__}"
    try:
        import soundfile  # noqa: F401
    except (ImportError, OSError):
        return None, (
            f"FLAC/OGG/MP3 cannot be decoded: soundfile is not installed (tensorflow-io {tfio_state}). "
            "Install it with `pip install mmkeras[audio]`, or convert the files to WAV."
        )
    return "soundfile", (
        f"FLAC/OGG/MP3 are decoded by soundfile for training (tensorflow-io {tfio_state}); "
        "the exported model takes WAV only."
    )


def _soundfile_decode(data):
    import soundfile

    try:
        # .numpy() of a string tensor is the exact bytes (np.bytes_ would drop trailing NULs).
        samples, rate = soundfile.read(io.BytesIO(data.numpy()), dtype="float32", always_2d=True)
        if samples.shape[0] == 0:
            raise ValueError("no audio samples")
        return samples, np.int32(rate), np.bytes_(b"")
    except Exception as error:  # noqa: BLE001 - every decoder failure becomes a reported reason
        return np.zeros((1, 1), "float32"), np.int32(1), np.bytes_(f"undecodable audio ({error})".encode())


def decode_compressed(data):
    """FLAC/OGG/MP3 bytes → (samples `(frames, channels)`, rate, reason); reason "" when ok.

    Training pipeline only: it calls soundfile through `tf.py_function`, which stock TF
    Serving cannot run.
    """
    backend, message = compressed_audio_backend()
    if backend is None:
        return tf.zeros((1, 1)), tf.constant(1), tf.constant(message)
    samples, rate, reason = tf.py_function(_soundfile_decode, [data], [tf.float32, tf.int32, tf.string])
    return tf.ensure_shape(samples, [None, None]), tf.ensure_shape(rate, []), tf.ensure_shape(reason, [])
