"""Settings of each modality: one object per modality, read by the Preprocessor and the builders.

A spec holds both what the data pipeline needs (sizes, sample rate, crop policy) and what the
encoder needs (widths, depths), so one `modalities:` block of a config describes a modality once.
"""

import dataclasses

from mmkeras import constants

#: Training-time augmentation that is on unless a config says otherwise (safe for most data:
#: no flips or rotations, which change the meaning of digits, text or arrows).
DEFAULT_IMAGE_AUGMENT = {"shift": 0.1}
DEFAULT_AUDIO_AUGMENT = {"gain_db": 6.0}
DEFAULT_SPEC_AUGMENT = {"time_masks": 2, "time_width": 0.1, "freq_masks": 2, "freq_width": 0.1}


@dataclasses.dataclass
class TextSpec:
    """Settings of a text modality.

    Args:
        max_tokens: int. Vocabulary size, including the padding (0) and out-of-vocabulary (1) ids.
        sequence_length: int. Token ids per example; shorter texts are padded with 0.
        standardize: str. `TextVectorization` standardisation ("lower_and_strip_punctuation",
            "lower", "strip_punctuation" or None).
        embedding_dim: int. Width of the token embedding.
        conv_pool: int. MaxPooling1D size after each Conv1D layer. 1 (default) keeps every
            frame for the LSTM, which learned best on the benchmark data sets (short tones,
            spoken digits); 2 or more shortens the sequence (faster on long clips).
        lstm_units: int. Width of the LSTM (per direction).
        bidirectional: bool. Read the text both ways.
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained encoder instead of the default branch: `{source:
            "keras_hub:PRESET" | "hub:HANDLE" | SavedModel folder | .keras file, trainable: false}`
            (every key in `mmkeras.pretrained`).

    Example:

    >>> TextSpec(max_tokens=100).sequence_length
    32
    """

    kind = constants.TEXT
    max_tokens: int = 20000
    sequence_length: int = 32
    standardize: str = "lower_and_strip_punctuation"
    embedding_dim: int = 64
    lstm_units: int = 64
    bidirectional: bool = False
    dropout: float = 0.1
    encoder: dict = None


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
        augment: dict. Training-only augmentation (default: small shifts; `{}` turns it off):
            "shift" (random translation, as a fraction of height and width), "flip" ("horizontal",
            "vertical" or "horizontal_and_vertical"), "rotation" (fraction of a full turn),
            "zoom" (fraction), "contrast" (factor), "noise" (std of added Gaussian noise),
            "occlusion" (side of a random blanked square, as a fraction of the image).

    Example:

    >>> ImageSpec(height=8, width=8).filters
    (32, 64, 128)
    """

    kind = constants.IMAGE
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
    augment: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_IMAGE_AUGMENT))

    def __post_init__(self):
        self.filters = tuple(self.filters)
        _check_choice("pooling", self.pooling, ("grid", "avg", "max"))
        _check_keys("image augment", self.augment,
                    ("shift", "flip", "rotation", "zoom", "contrast", "noise", "occlusion"))


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
        conv_pool: int. MaxPooling1D size after each Conv1D layer. 1 (default) keeps every
            frame for the LSTM, which learned best on the benchmark data sets (short tones,
            spoken digits); 2 or more shortens the sequence (faster on long clips).
        lstm_units: int. Width of the LSTM (per direction).
        pooling: str. How the LSTM's outputs become one vector: "mean_max" (mean and max over
            the frames, concatenated: a sound anywhere in the clip counts) or "last" (the
            final state).
        spec_augment: dict. Training-only SpecAugment masking of the log-mel (empty: off):
            "time_masks", "time_width", "freq_masks", "freq_width" (see `SpecAugment`).
        bidirectional: bool. Read the frames both ways.
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained encoder instead of the default branch: `{source:
            "hub:HANDLE" | SavedModel folder | .keras file, trainable: false, endpoint,
            output_key}` (every key in `mmkeras.pretrained`).
        augment: dict. Training-only augmentation (default: gain; `{}` turns it off): "gain_db" (random gain up to
            +/- this), "noise_snr_db" (white noise at this signal-to-noise ratio), "shift"
            (random circular shift up to this fraction of the clip).

    Example:

    >>> spec = AudioSpec(sample_rate=8000, duration=0.5)
    >>> spec.num_samples, spec.frame_length, spec.frame_step, spec.fft_length
    (4000, 200, 80, 256)
    """

    kind = constants.AUDIO
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
    conv_pool: int = 1
    lstm_units: int = 64
    pooling: str = "mean_max"
    bidirectional: bool = False
    dropout: float = 0.1
    encoder: dict = None
    spec_augment: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_SPEC_AUGMENT))
    augment: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_AUDIO_AUGMENT))

    def __post_init__(self):
        _check_keys("audio augment", self.augment, ("gain_db", "noise_snr_db", "shift"))
        _check_keys("audio spec_augment", self.spec_augment, ("time_masks", "time_width", "freq_masks", "freq_width"))
        _check_choice("pooling", self.pooling, ("mean_max", "last"))
        if self.frame_length is None:
            self.frame_length = int(round(0.025 * self.sample_rate))
        if self.frame_step is None:
            self.frame_step = int(round(0.010 * self.sample_rate))
        if self.fft_length is None:
            self.fft_length = 1 << (int(self.frame_length) - 1).bit_length()
        if self.fmax is None:
            self.fmax = self.sample_rate / 2.0
        self.conv_filters = tuple(self.conv_filters)
        _check_choice("crop", self.crop, ("start", "center", "random"))
        _check_choice("normalization", self.normalization, ("example", "bin", "none"))

    @property
    def num_samples(self):
        """Samples per clip: `sample_rate * duration`."""
        return int(round(self.sample_rate * self.duration))


SPECS = {constants.TEXT: TextSpec, constants.IMAGE: ImageSpec, constants.AUDIO: AudioSpec}


def _check_choice(field, value, choices):
    if value not in choices:
        raise ValueError(f"Expected {field} to be one of {list(choices)}. Received: {field}={value!r}")


def _check_keys(what, mapping, allowed):
    unknown = sorted(set(mapping or {}) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown {what} option(s) {unknown}. Expected some of {sorted(allowed)}.")


def make_spec(name, options):
    """Turns one entry of a `modalities` mapping into a spec.

    The kind comes from `options["kind"]`, else from the name (`text`, `image`, `audio`), so
    `{"photo": {"kind": "image", "height": 64}}` is a second image modality named `photo`.

    Args:
        name: str. The modality's name (becomes the input and feature name).
        options: dict, spec or None. The settings; None takes every default.

    Example:

    >>> make_spec("photo", {"kind": "image", "height": 64}).height
    64
    """
    if isinstance(options, tuple(SPECS.values())):
        return options
    options = dict(options or {})
    kind = options.pop("kind", name)
    if kind not in SPECS:
        raise ValueError(
            f"Cannot tell the kind of modality {name!r}. Expected its name or its 'kind' option to "
            f"be one of {sorted(SPECS)}. Received: kind={kind!r}"
        )
    cls = SPECS[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for {kind} modality {name!r}. Expected some of {sorted(fields)}."
        )
    for key, value in options.items():
        _check_type(name, key, value, cls.__dataclass_fields__[key].type)
    for key in ("filters", "conv_filters"):
        if key in options:
            options[key] = tuple(options[key])
    if options.get("encoder") is not None:
        from mmkeras.pretrained import check_encoder_options

        check_encoder_options(name, options["encoder"])
        options["encoder"] = dict(options["encoder"])
    return cls(**options)


#: Spec fields that may be null (computed from others when they are).
_OPTIONAL = {"frame_length", "frame_step", "fft_length", "fmax", "standardize", "encoder"}


def _check_type(modality, key, value, kind):
    """Raises ValueError naming `modalities.<modality>.<key>` when `value` is not of type `kind`."""
    if value is None and key in _OPTIONAL:
        return
    is_int = isinstance(value, int) and not isinstance(value, bool)
    checks = {
        int: (is_int and value >= (0 if key in ("dropout",) else 1), "an integer >= 1"),
        float: ((is_int or isinstance(value, float)) and value >= 0, "a number >= 0"),
        bool: (isinstance(value, bool), "true or false"),
        str: (isinstance(value, str), "a string"),
        dict: (isinstance(value, dict), "a mapping"),
        tuple: (isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                         for v in value), "a list of integers >= 1"),
    }
    ok, expected = checks.get(kind, (True, ""))
    if key == "dropout" and ok and not value < 1:
        ok, expected = False, "a number >= 0, < 1"
    if not ok:
        raise ValueError(f"Config key 'modalities.{modality}.{key}': expected {expected}. Received: {value!r}")


def model_input(spec):
    """(shape without the batch dimension, dtype) of the tensor the Preprocessor makes for `spec`.

    Example:

    >>> model_input(make_spec("image", {"height": 8, "width": 6, "channels": 1}))
    ((8, 6, 1), 'float32')
    """
    if spec.kind == constants.TEXT:
        return (spec.sequence_length,), "int32"
    if spec.kind == constants.IMAGE:
        return (spec.height, spec.width, spec.channels), "float32"
    return (spec.num_samples,), "float32"


def spec_to_dict(spec):
    """The spec's settings as a plain dict (JSON/YAML friendly), with its kind."""
    config = dataclasses.asdict(spec)
    for key, value in config.items():
        if isinstance(value, tuple):
            config[key] = list(value)
    return {"kind": spec.kind, **config}
