"""The audio kind: WAV file bytes → a mono waveform at one rate and length, and its CRNN encoder."""

import dataclasses

import keras
from keras import ops
import numpy as np
import tensorflow as tf

from mmkeras import checks
from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.data import audio as audio_lib
from mmkeras.layers import LogMelSpectrogram
from mmkeras.layers import SpecAugment
from mmkeras.modalities.modality import Modality
from mmkeras.modalities.sequence_blocks import conv_lstm
from mmkeras.modalities.sequence_blocks import layer_pools

KIND = "audio"

#: Training-time augmentation: off unless a config asks for it. SpecAugment's masks cost about 2
#: points on noisy spoken keywords (benchmarks/keyword_speech.py, 6 seeds), and a random gain does
#: nothing under the default per-example normalisation of the log-mel (benchmarks/RESULTS.md).
DEFAULT_AUGMENT = {}
DEFAULT_SPEC_AUGMENT = {}


@dataclasses.dataclass
class AudioSpec:
    """Settings of an audio modality.

    Args:
        sample_rate: int. Rate (Hz) every clip is resampled to.
        duration: float. Seconds per clip after padding or cropping.
        crop: str. Where a long clip is cut: "start", "center" or "random" (training only;
            "center" at inference).
        num_mel_bins: int. Mel bands of the log-mel spectrogram.
        frame_length: int. STFT window in samples (default: 25 ms).
        frame_step: int. STFT hop in samples (default: 10 ms).
        fft_length: int. FFT size (default: the power of two >= frame_length).
        fmin: float. Lowest mel frequency (Hz).
        fmax: float. Highest mel frequency (Hz; default: sample_rate / 2).
        normalization: str. "example" (standardise each clip's log-mel over its real frames),
            "bin" (per-mel-bin statistics from `adapt()`), or "none" (raw dB).
        conv_filters: tuple of int. Conv1D layers over the mel frames before the LSTM (a CRNN);
            `()` feeds the log-mel straight to the LSTM.
        conv_pool: int or list of int. MaxPooling1D size after every Conv1D layer, or a list
            with one size per Conv1D layer. 1 (default) keeps every frame for the LSTM, which
            learned best on the benchmark data sets (short tones, spoken digits); 2 or more
            shortens the sequence (faster on long clips).
        lstm_units: int. Width of the LSTM (per direction).
        pooling: str. How the LSTM's outputs become one vector: "mean_max" (mean and max over
            the frames, concatenated: a sound anywhere in the clip counts) or "last" (the
            final state).
        spec_augment: dict. Training-only SpecAugment masking of the log-mel (default `{}`: off):
            "time_masks", "time_width", "freq_masks", "freq_width" (see `SpecAugment`).
        bidirectional: bool. Read the frames both ways.
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained encoder instead of the default branch: `{source:
            "hub:HANDLE" | SavedModel folder | .keras file, trainable: false, endpoint,
            output_key}` (every key in `mmkeras.pretrained`).
        augment: dict. Training-only augmentation (default `{}`: off): "gain_db" (random gain up to
            +/- this; it changes nothing under `normalization: example`), "noise_snr_db" (white
            noise at this signal-to-noise ratio), "shift" (random circular shift up to this
            fraction of the clip).

    Example:

    >>> spec = AudioSpec(sample_rate=8000, duration=0.5)
    >>> spec.num_samples, spec.frame_length, spec.frame_step, spec.fft_length
    (4000, 200, 80, 256)
    """

    kind = KIND
    sample_rate: int = 16000
    duration: float = 1.0
    crop: str = "center"
    num_mel_bins: int = 64
    frame_length: int = None
    frame_step: int = None
    fft_length: int = None
    fmin: float = 20.0
    fmax: float = None
    normalization: str = "example"
    conv_filters: tuple = (64, 64)
    conv_pool: int = dataclasses.field(default=1, metadata={"check": checks.pool_sizes()})
    lstm_units: int = 64
    pooling: str = "mean_max"
    bidirectional: bool = False
    dropout: float = 0.1
    encoder: dict = None
    spec_augment: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_SPEC_AUGMENT))
    augment: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_AUGMENT))

    def __post_init__(self):
        if isinstance(self.conv_pool, (list, tuple)):
            self.conv_pool = layer_pools(self.conv_pool, tuple(self.conv_filters))  # one size per Conv1D layer
        specs_lib.check_keys("audio augment", self.augment, ("gain_db", "noise_snr_db", "shift"))
        specs_lib.check_keys("audio spec_augment", self.spec_augment, ("time_masks", "time_width", "freq_masks", "freq_width"))
        specs_lib.check_choice("pooling", self.pooling, ("mean_max", "last"))
        if self.frame_length is None:
            self.frame_length = int(round(0.025 * self.sample_rate))
        if self.frame_step is None:
            self.frame_step = int(round(0.010 * self.sample_rate))
        if self.fft_length is None:
            self.fft_length = 1 << (int(self.frame_length) - 1).bit_length()
        if self.fmax is None:
            self.fmax = self.sample_rate / 2.0
        self.conv_filters = tuple(self.conv_filters)
        specs_lib.check_choice("crop", self.crop, ("start", "center", "random"))
        specs_lib.check_choice("normalization", self.normalization, ("example", "bin", "none"))

    @property
    def num_samples(self):
        """Samples per clip: `sample_rate * duration`."""
        return int(round(self.sample_rate * self.duration))


def build_audio_encoder(spec=None, **options):
    """Audio encoder: waveform → log-mel → SpecAugment → Conv1D front end → (Bi)LSTM → pooling.

    Args:
        spec: `AudioSpec`. Settings; alternatively pass AudioSpec's fields as keyword options.
        **options: AudioSpec fields, and `name` (the modality name, default "audio").

    Example:

    >>> encoder = build_audio_encoder(sample_rate=8000, duration=0.5, num_mel_bins=16,
    ...                               conv_filters=(8,), lstm_units=4)
    >>> tuple(encoder.output.shape)  # mean and max of the LSTM's outputs over time
    (None, 8)
    """
    spec, p = specs_lib.resolve_spec(spec, options, KIND)
    if spec.encoder:  # a pretrained encoder instead (mmkeras.pretrained)
        return pretrained.build_pretrained_encoder(spec, p)
    waveform = keras.Input((spec.num_samples,), name=p)  # (batch, samples)
    x = LogMelSpectrogram(
        sample_rate=spec.sample_rate,
        num_mel_bins=spec.num_mel_bins,
        frame_length=spec.frame_length,
        frame_step=spec.frame_step,
        fft_length=spec.fft_length,
        fmin=spec.fmin,
        fmax=spec.fmax,
        normalization=spec.normalization,
        name=f"{p}_mel",
    )(waveform)  # (batch, frames, mels)
    if spec.spec_augment:
        x = SpecAugment(**spec.spec_augment, name=f"{p}_spec_augment")(x)  # training only
    x = conv_lstm(x, p, spec.conv_filters, spec.lstm_units, conv_pool=spec.conv_pool,
                  bidirectional=spec.bidirectional, pooling=spec.pooling)  # (batch, features)
    x = keras.layers.Dropout(spec.dropout, name=f"{p}_dropout")(x)
    return keras.Model(waveform, x, name=f"{p}_encoder")


class AudioModality(Modality):
    """Audio: the cell names a WAV file (FLAC/OGG/MP3 are converted to WAV when the manifest is
    read); decoded, down-mixed to mono, resampled to `sample_rate` and padded or cropped to
    `duration`, a whole batch at a time. The log-mel spectrogram is computed inside the model.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> audio = AudioModality("audio", AudioSpec(sample_rate=8000, duration=0.25))
    >>> clips, present, reason = audio.decode(tf.constant([b"", b"RIFF....WAVE"]))
    >>> clips.shape.as_list(), present.numpy().tolist(), reason.numpy()[0]
    ([2, 2000], [False, True], b'')
    """

    kind = KIND
    spec_class = AudioSpec

    @classmethod
    def model_input(cls, spec):
        return (spec.num_samples,), "float32"

    @classmethod
    def build_encoder(cls, spec, name):
        return build_audio_encoder(spec, name=name)

    @classmethod
    def pretrained_builders(cls):
        return {pretrained.KERAS_HUB_PREFIX: keras_hub_encoder}

    def check_value(self, value, path):
        """A compressed file (FLAC/OGG/MP3, or a video's soundtrack) is converted to WAV once, here
        (see `audio.WAV_CACHE`)."""
        if value and audio_lib.sniff_compressed(value):
            try:
                return audio_lib.WAV_CACHE.converted(value), None
            except ValueError as error:
                return value, str(error)
        return value, None

    def decode(self, values, training=False, seed=None):
        return audio_lib.decode_clips(values, self.spec, training, seed)

    def augment(self, clips, seed=None):
        """Random gain, white noise at a given SNR, and circular time shift on `(batch, samples)`."""
        options = self.spec.augment
        if not options:
            return clips
        batch = tf.shape(clips)[0]
        if options.get("gain_db"):
            gain_db = tf.random.uniform([batch, 1], -options["gain_db"], options["gain_db"], seed=seed)
            clips = clips * tf.pow(10.0, gain_db / 20.0)
        if options.get("noise_snr_db") is not None:
            clips = add_noise(clips, tf.random.normal(tf.shape(clips), seed=seed), options["noise_snr_db"])
        if options.get("shift"):
            limit = int(options["shift"] * clips.shape[1])
            if limit:
                shifts = tf.random.uniform([batch], -limit, limit + 1, tf.int32, seed=seed)
                clips = tf.map_fn(lambda a: tf.roll(a[0], a[1], axis=0), (clips, shifts),
                                  fn_output_signature=tf.float32)
        return clips

    attribution_layer = "_mel"

    def describe_attribution(self, attribution, inputs, on_layer):
        """Per moment (10 ms hops by default): the log-mel's attributions summed over mel bands,
        with the time x mel map; on the waveform (pretrained encoders) per hop of samples."""
        step = self.spec.frame_step
        if on_layer:
            per_frame = attribution.sum(axis=-1)
            extra = {"map": attribution.T, "map_axes": ("mel band", "time frame")}
        else:
            frames = -(-len(attribution) // step)
            padded = np.zeros(frames * step, attribution.dtype)
            padded[: len(attribution)] = attribution
            per_frame, extra = padded.reshape(frames, step).sum(axis=1), {}
        labels = [f"{i * step / self.spec.sample_rate:.2f} s" for i in range(len(per_frame))]
        return {"unit": "moment", "labels": labels, "scores": per_frame, **extra}

    def corruptions(self):
        return {f"noise_snr_{snr}db": _noise_corruption(snr) for snr in (20, 10, 0)}


def add_noise(clips, normal, snr_db):
    """`clips` plus standard normal draws `normal` scaled to `snr_db` below each clip's power."""
    power = tf.reduce_mean(tf.square(clips), axis=1, keepdims=True)
    noise_power = power / tf.pow(10.0, tf.cast(snr_db, clips.dtype) / 10.0)
    return clips + tf.cast(normal, clips.dtype) * tf.sqrt(noise_power)


def _noise_corruption(snr_db):
    def apply(clips, rng):
        return add_noise(tf.constant(clips), rng.normal(size=clips.shape), float(snr_db)).numpy().astype(clips.dtype)

    return apply


# ----------------------------------------------------------------- keras-hub presets of this kind
def keras_hub_encoder(spec, name, preset, options):
    """The audio encoder of a keras-hub speech backbone (Whisper, Moonshine) behind its audio converter."""
    where = f"modalities.{name}.encoder"
    keras_hub, backbone = pretrained.keras_hub_backbone(spec, name, preset, options, ("weights", "scaling", "endpoint"))
    try:
        converter = keras_hub.layers.AudioConverter.from_preset(preset)
    except FileNotFoundError as error:
        raise ValueError(f"Modality {name!r}: the keras-hub preset {preset!r} has no audio converter "
                         f"(audio_converter.json), so the features its backbone expects are unknown. Save the "
                         f"converter into the preset folder.") from error
    rate = getattr(converter, "sampling_rate", None)
    if rate is not None and int(rate) != spec.sample_rate:
        raise ValueError(f"Modality {name!r}: the preset {preset!r} takes audio at {rate} Hz. Set "
                         f"modalities.{name}.sample_rate: {rate}. Received: sample_rate={spec.sample_rate}")
    waveform = keras.Input((spec.num_samples,), name=name)
    features = converter(waveform)  # e.g. Whisper's log-mel frames, Moonshine's (batch, samples, 1)
    if isinstance(backbone.input, dict):
        # Encoder-decoder speech models: keep the encoder's part of the graph only.
        audio_keys = [k for k in backbone.input if k.startswith("encoder_") and not k.endswith("padding_mask")]
        output_key = options.get("output_key") or "encoder_sequence_output"
        if len(audio_keys) != 1 or output_key not in backbone.output:
            raise ValueError(f"Modality {name!r}: cannot tell the audio input and output of the backbone of {preset!r} "
                             f"(inputs {sorted(backbone.input)}, outputs {sorted(backbone.output)}); set "
                             f"'{where}.output_key' to one of its outputs.")
        given = {audio_keys[0]: features}
        for key in backbone.input:
            if key.startswith("encoder_") and key.endswith("padding_mask"):
                given[key] = ops.ones_like(features[..., 0], dtype="bool")  # every sample of the clip counts
        backbone = keras.Model({k: backbone.input[k] for k in given}, backbone.output[output_key])
    backbone.name = f"{name}_backbone"
    backbone.trainable = bool(options.get("trainable", False))
    inputs = given if isinstance(backbone.input, dict) else features
    x = backbone(inputs, training=False) if not backbone.trainable else backbone(inputs)
    return pretrained.pooled_vector(spec, name, waveform, x, f"keras_hub:{preset}")
