"""Audio clips: downmix, resample and crop/pad in TensorFlow ops; compressed files for training.

WAV decodes in-graph (see `wav.py`) and so works in stock TF Serving. FLAC, OGG/Vorbis and MP3
need a decoder library: when a manifest is read, each compressed file is converted once to a WAV
file in a cache folder (soundfile; see `file_cache`), and the pipeline reads that WAV. So is the
soundtrack of a video file (MP4/WebM/AVI, through PyAV), so that one clip can feed a video
modality and an audio modality.
"""

import functools
import io

import tensorflow as tf

from mmkeras.data import video
from mmkeras.data import wav
from mmkeras.data.file_cache import ConversionCache


#: Leading bytes of the compressed formats the training pipeline decodes.
COMPRESSED_SIGNATURES = {"FLAC": b"fLaC", "OGG": b"OggS", "MP3 (ID3)": b"ID3", "MP3": b"\xff\xfb"}


def resample(signal, rate, target_rate):
    """Band-limited (FFT) resampling along the last axis from `rate` to `target_rate` Hz.

    Every row of a batch is resampled with the same plan, so a batch gives the same values as
    its rows one at a time.

    Args:
        signal: float32 `(..., samples)`, at least one sample.
        rate: scalar int tensor, the signal's rate.
        target_rate: int. The rate wanted.
    """
    rate = tf.cast(rate, tf.int64)
    length = tf.cast(tf.shape(signal)[-1], tf.int64)
    out_length = tf.maximum((length * target_rate + rate // 2) // rate, 1)
    spectrum = tf.signal.rfft(signal)  # (..., length // 2 + 1)
    bins = tf.cast(out_length // 2 + 1, tf.int32)
    kept = spectrum[..., : tf.minimum(bins, tf.shape(spectrum)[-1])]
    pad = tf.concat([tf.zeros([tf.rank(signal) - 1, 2], tf.int32), [[0, bins - tf.shape(kept)[-1]]]], axis=0)
    out = tf.signal.irfft(tf.pad(kept, pad), fft_length=tf.cast(out_length, tf.int32)[None])
    return out * tf.cast(out_length, tf.float32) / tf.cast(length, tf.float32)


def source_length(spec, rate):
    """Samples at `rate` that cover `spec.duration` (int64 tensor)."""
    rate = tf.cast(rate, tf.int64)
    return (int(spec.num_samples) * rate + spec.sample_rate - 1) // spec.sample_rate


def crop_start(frames, needed, spec, training=False, seed=None):
    """Where the clip's window of `needed` frames starts, for a tensor of clip lengths `frames`.

    "random" draws a start only when training (else the centre); short clips start at 0.
    """
    frames = tf.cast(frames, tf.int64)
    excess = tf.maximum(frames - needed, 0)
    crop = spec.crop if (training or spec.crop != "random") else "center"
    if crop == "start":
        return tf.zeros_like(excess)
    if crop == "center":
        return excess // 2
    draw = tf.random.uniform(tf.shape(excess), 0, 1, seed=seed)
    return tf.minimum(tf.cast(draw * tf.cast(excess + 1, tf.float32), tf.int64), excess)


def window_to_clip(window, rate, spec):
    """Windows `(..., source_length)` at `rate`, sound at the end → `(..., spec.num_samples)`.

    At the spec's own rate nothing is resampled (the window already has `num_samples`).
    """
    def resampled():
        out = resample(window, rate, spec.sample_rate)
        return out[..., tf.shape(out)[-1] - spec.num_samples :]

    def same_rate():
        return window[..., tf.shape(window)[-1] - spec.num_samples :]

    clip = tf.cond(tf.equal(tf.cast(rate, tf.int64), spec.sample_rate), same_rate, resampled)
    return tf.ensure_shape(clip, window.shape[:-1].concatenate([spec.num_samples]))


def to_clip(samples, rate, spec, training=False, seed=None):
    """`(frames, channels)` samples at `rate` → mono float32 `(spec.num_samples,)` at spec's rate.

    Long clips are cut where `spec.crop` says ("random" only when training, else the centre);
    short ones are padded with zeros *before* the sound, so the end of every clip is aligned.
    Padding happens before resampling, so every clip at one rate resamples at one length.
    """
    mono = tf.reduce_mean(tf.cast(samples, tf.float32), axis=1)  # (frames,)
    needed = source_length(spec, rate)
    start = crop_start(tf.shape(mono)[0], needed, spec, training, seed)
    window = mono[start : start + needed]
    window = tf.pad(window, [[needed - tf.cast(tf.shape(window)[0], tf.int64), 0]])  # silence before
    return window_to_clip(window, rate, spec)


def decode_clip(data, spec, training=False, seed=None):
    """One audio file's bytes → (clip `(spec.num_samples,)`, reason); reason "" when it decoded.

    Any WAV the in-graph parser reads. Bad bytes give zeros and a reason, never an error;
    FLAC/OGG/MP3 bytes are refused with a reason that says to send WAV (manifests convert them
    with `transcode_to_wav` before they reach the graph).
    """
    zeros = tf.zeros([spec.num_samples])

    def from_wav(header):
        samples, rate = wav.decode_checked_wav(data, header)
        return to_clip(samples, rate, spec, training, seed), tf.constant("")

    def not_wav(header):
        expected = "WAV bytes (FLAC/OGG/MP3 files in a manifest are converted to WAV when it is read)"
        return zeros, tf.where(is_compressed(data), f"not WAV: expected {expected}", header["reason"])

    header = wav.wav_header(data)
    clip, reason = tf.cond(header["ok"], lambda: from_wav(header), lambda: not_wav(header))
    return tf.ensure_shape(clip, [spec.num_samples]), reason


def decode_clips(data, spec, training=False, seed=None):
    """A batch of audio files' bytes `[batch]` → (clips `(batch, num_samples)`, present, reasons).

    An empty string is an absent clip: zeros, present False, reason "". When every clip of the
    batch is a canonical 16-bit PCM WAV (44-byte header) with one sample rate and channel count
    (the usual case for a prepared data set), the batch decodes, crops and resamples as a few
    vectorised ops; any other batch decodes clip by clip through `decode_clip`. Both give the
    same values.
    """
    data = tf.convert_to_tensor(data, tf.string)
    present = tf.strings.length(data) > 0
    plain = present & wav.is_plain_pcm16(data) & wav.plain_pcm16_in_bounds(data)
    channels, rates = wav.plain_pcm16_format(data)
    rate = tf.reduce_max(tf.where(plain, rates, 0))
    rate = tf.where(rate > 0, rate, spec.sample_rate)
    width = tf.maximum(tf.reduce_max(tf.where(plain, channels, 0)), 1)
    uniform = tf.reduce_all(
        tf.logical_or(tf.logical_not(present), plain & tf.equal(rates, rate) & tf.equal(channels, width))
    )

    def vectorised():
        frame_bytes = tf.cast(2 * width, tf.int64)
        frames = tf.where(present, (tf.cast(tf.strings.length(data), tf.int64) - 44) // frame_bytes, 0)
        needed = source_length(spec, rate)
        start = crop_start(frames, needed, spec, training, seed)
        take = tf.minimum(frames - start, needed)
        payload = tf.strings.substr(data, tf.where(present, 44 + start * frame_bytes, 0), take * frame_bytes)

        def silence_first():  # short clips: NUL bytes (zeros) before the sound, as `to_clip` pads
            silence = tf.strings.reduce_join(tf.fill([needed * frame_bytes], "\0"))
            fill = tf.strings.substr(tf.fill(tf.shape(data), silence), tf.zeros_like(take), (needed - take) * frame_bytes)
            return tf.strings.join([fill, payload])

        padded = tf.cond(tf.reduce_all(take == needed), lambda: payload, silence_first)
        raw = tf.io.decode_raw(padded, tf.int16, fixed_length=tf.cast(needed * frame_bytes, tf.int32))
        samples = tf.cast(raw, tf.float32) / 32768.0
        window = tf.reduce_mean(tf.reshape(samples, [tf.shape(data)[0], -1, width]), axis=2)  # (batch, needed)
        clips = window_to_clip(window, rate, spec)
        return clips, tf.fill(tf.shape(data), "")

    # A separate, never-inlined function: its graph is built only when a batch needs it, not
    # each time a tf.data iterator starts (which costs about half a second for this graph). Traced
    # as written (tf.cond, tf.while_loop), like the rest of the pipeline: AutoGraph's rewrite
    # only costs tracing time here.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], experimental_attributes={"_noinline": True},
                 autograph=False)
    def clip_by_clip(files):
        return tf.map_fn(
            lambda one: decode_clip(one, spec, training, seed),
            files,
            fn_output_signature=(tf.TensorSpec([spec.num_samples], tf.float32), tf.TensorSpec([], tf.string)),
        )

    clips, reasons = tf.cond(uniform, vectorised, lambda: clip_by_clip(data))
    # A float WAV may hold NaN or infinite samples: they would make every loss and answer NaN.
    finite = tf.reduce_all(tf.math.is_finite(clips), axis=1)
    reasons = tf.where(finite | tf.not_equal(reasons, ""), reasons,
                       "the audio holds samples that are not finite numbers (NaN or infinity)")
    clips = tf.where((present & finite)[:, None], clips, 0.0)
    reasons = tf.where(present, reasons, "")
    return tf.ensure_shape(clips, [None, spec.num_samples]), present, reasons


def is_compressed(data):
    return tf.reduce_any([tf.strings.substr(data, 0, len(s)) == s for s in COMPRESSED_SIGNATURES.values()])


@functools.lru_cache(maxsize=None)
def compressed_audio_backend():
    """("soundfile" | None, message): how FLAC/OGG/MP3 files are converted for training.

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
        f"FLAC/OGG/MP3 are converted to WAV by soundfile for training (tensorflow-io {tfio_state}); "
        "the exported model takes WAV only."
    )


def sniff_compressed(path):
    """The compressed format name of the file at `path` ("FLAC", "OGG", "MP3"..., or a video
    container such as "MP4/MOV", whose soundtrack is read), or None."""
    with open(path, "rb") as f:
        head = f.read(4)
    for name, signature in COMPRESSED_SIGNATURES.items():
        if head.startswith(signature):
            return name
    return video.sniff_container(path)


def transcode_to_wav(data):
    """FLAC/OGG/MP3 bytes → WAV bytes (16-bit PCM for 16-bit or narrower sources, else 32-bit float).

    Raises ValueError with the decoder's reason when the bytes do not decode.
    """
    backend, message = compressed_audio_backend()
    if backend is None:
        raise ValueError(message)
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as source:
            subtype = "PCM_16" if source.subtype in ("PCM_16", "PCM_S8", "PCM_U8") else "FLOAT"
            samples = source.read(dtype="float32", always_2d=True)
            rate = source.samplerate
    except Exception as error:  # noqa: BLE001 - every decoder failure becomes a reported reason
        raise ValueError(f"undecodable audio ({error})") from None
    if samples.shape[0] == 0:
        raise ValueError("undecodable audio (no audio samples)")
    out = io.BytesIO()
    soundfile.write(out, samples, rate, subtype=subtype, format="WAV")
    return out.getvalue()


def _wav_of_file(path):
    if video.sniff_container(path):
        return video.soundtrack_wav(path)
    with open(path, "rb") as f:
        return transcode_to_wav(f.read())


#: The process-wide cache of compressed audio converted to WAV that manifests use.
WAV_CACHE = ConversionCache("wav", ".wav", _wav_of_file)
