"""The sensor kind: a multichannel time series per example (CSV or .npy file) → `(length, channels)`.

A file holds one example's readings, one row per time step and one column per channel: a CSV
(an optional header line, numbers separated by commas) or a NumPy `.npy` array of shape
`(steps, channels)` (or `(steps,)` for one channel). Both are parsed in TensorFlow ops, so the
served model takes the file's bytes as they are, like audio.

Each channel is standardised with the mean and spread learned from the training files
(`normalization: adapted`), then the series is cropped or zero-padded to `length` steps (or
linearly resampled to it, `fit: resample`). The default encoder is Conv1D blocks → LSTM →
mean and max over time.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras import checks
from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.data.manifest import NUMBER_PATTERN
from mmkeras.modalities.modality import Modality
from mmkeras.modalities.sequence_blocks import conv_lstm
from mmkeras.modalities.sequence_blocks import layer_pools

KIND = "sensor"

#: Training-time augmentation: off unless a config asks for it. The per-channel gain and jitter
#: that were on until 2026-12-07 lowered the sensor alone and the fused model on the sensor
#: benchmark set and widened their spread over seeds (benchmarks/RESULTS.md, defaults_table.py).
DEFAULT_AUGMENT = {}
#: Files read at most by `adapt` to learn each channel's mean and spread.
ADAPT_FILES = 2000
#: How a sensor beside other modalities shortens its series for the LSTM: by FUSED_POOLS[i] per
#: Conv1D layer (largest first), in one pooling after the last Conv1D layer, leaving at least
#: MIN_POOLED_STEPS steps; a sensor alone keeps every step. Beside others the shorter LSTM raised
#: the fused model on one benchmark set; pooling once, so that every Conv1D layer reads every
#: step, kept that and raised the other set too (benchmarks/RESULTS.md, 2026-12-07).
FUSED_POOLS = (4, 2)
MIN_POOLED_STEPS = 8

NPY_MAGIC = b"\x93NUMPY"
_NUMBER = rf"\s*{NUMBER_PATTERN}\s*"
_NUMBER_LINE = rf"{_NUMBER}(,{_NUMBER})*"
#: .npy element types read: descr → (TF dtype, bytes per element).
_NPY_TYPES = {"<f4": (tf.float32, 4), "<f8": (tf.float64, 8), "<i2": (tf.int16, 2), "<i4": (tf.int32, 4),
              "<i8": (tf.int64, 8), "|u1": (tf.uint8, 1), "|i1": (tf.int8, 1)}


@dataclasses.dataclass
class SensorSpec:
    """Settings of a sensor (multichannel time series) modality.

    Args:
        channels: int. Channels per time step (columns of the CSV, last axis of the .npy).
        length: int. Time steps per example after fitting.
        fit: str. How a series becomes `length` steps: "pad_crop" (default: cut, or pad with
            zeros after the readings; the time scale is kept) or "resample" (linear
            interpolation to `length` steps; for series recorded at different rates).
        crop: str. Which steps "pad_crop" keeps from a long series: "start", "center" or "end".
        normalization: str. "adapted" (default: each channel's mean and standard deviation
            learned from the training files), "example" (each series standardised on its own)
            or "none".
        conv_filters: tuple of int. Conv1D layers before the LSTM (`()` for none).
        kernel_size: int. Conv1D kernel size (time steps).
        conv_pool: int or list of int. MaxPooling1D size after every Conv1D layer (1: none),
            or a list with one size per Conv1D layer. Unset (null, the default), the model's
            modalities settle it: 1 for a sensor that is the model's only modality; beside
            other modalities one pooling after the last Conv1D layer by 4 per layer (`[1, 16]`
            for two layers), or by 2 per layer where that would leave the LSTM fewer than
            `MIN_POOLED_STEPS` steps (1 where 2 would too, and without Conv1D layers). The fused
            model's runs then learn within the epochs a fused model gets, where the full-rate
            LSTM learns slowly.
        lstm_units: int. Width of the LSTM (per direction).
        bidirectional: bool. Read the series both ways.
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained encoder instead of the default branch: `{source: SavedModel
            folder | "hub:HANDLE" | .keras file, trainable: false}` taking `(length, channels)`.
        augment: dict. Training-only augmentation (default `{}`: off): "scale" (random
            per-channel gain up to +/- this fraction), "jitter" (std of added Gaussian noise, in
            standardised units).

    Example:

    >>> SensorSpec(channels=6, length=64).fit
    'pad_crop'
    """

    kind = KIND
    channels: int = 3
    length: int = 128
    fit: str = "pad_crop"
    crop: str = "start"
    normalization: str = "adapted"
    conv_filters: tuple = (32, 32)
    kernel_size: int = 5
    conv_pool: int = dataclasses.field(default=None, metadata={"check": checks.pool_sizes()})
    lstm_units: int = 32
    bidirectional: bool = False
    dropout: float = 0.1
    encoder: dict = None
    augment: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_AUGMENT))

    def __post_init__(self):
        self.conv_filters = tuple(self.conv_filters)
        if isinstance(self.conv_pool, (list, tuple)):
            self.conv_pool = layer_pools(self.conv_pool, self.conv_filters)  # one size per Conv1D layer
        specs_lib.check_choice("fit", self.fit, ("pad_crop", "resample"))
        specs_lib.check_choice("crop", self.crop, ("start", "center", "end"))
        specs_lib.check_choice("normalization", self.normalization, ("adapted", "example", "none"))
        specs_lib.check_keys("sensor augment", self.augment, ("scale", "jitter"))


def build_sensor_encoder(spec=None, **options):
    """Sensor encoder: `(length, channels)` → `[Conv1D → BatchNormalization → ReLU] * n` → LSTM → mean and max.

    Args:
        spec: `SensorSpec`. Settings; alternatively pass SensorSpec's fields as keyword options.
        **options: SensorSpec fields, and `name` (the modality name, default "sensor").

    Example:

    >>> encoder = build_sensor_encoder(channels=2, length=16, conv_filters=(4,), lstm_units=3)
    >>> tuple(encoder.output.shape)  # mean and max of the LSTM's outputs over time
    (None, 6)
    """
    spec, p = specs_lib.resolve_spec(spec, options, KIND)
    if spec.encoder:  # a pretrained encoder instead (mmkeras.pretrained)
        return pretrained.build_pretrained_encoder(spec, p)
    series = keras.Input((spec.length, spec.channels), name=p)  # (batch, steps, channels)
    conv_pool = 1 if spec.conv_pool is None else spec.conv_pool  # unsettled: built on its own
    x = conv_lstm(series, p, spec.conv_filters, spec.lstm_units, kernel_size=spec.kernel_size,
                  conv_pool=conv_pool, bidirectional=spec.bidirectional)  # (batch, 2 * lstm_units [* 2])
    x = keras.layers.Dropout(spec.dropout, name=f"{p}_dropout")(x)
    return keras.Model(series, x, name=f"{p}_encoder")


class SensorModality(Modality):
    """Sensor series: the cell names a CSV or `.npy` file; decoded per example in TF ops.

    Example:

    >>> import tensorflow as tf
    >>> sensor = SensorModality("sensor", SensorSpec(channels=2, length=4, normalization="none"))
    >>> series, present, reason = sensor.decode_one(tf.constant("x,y\\n1,2\\n3,4\\n5,6\\n"))
    >>> series.numpy().tolist(), bool(present), reason.numpy()
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, 0.0]], True, b'')
    >>> sensor.decode_one(tf.constant("1,2,3\\n"))[2].numpy().decode()
    'expected 2 columns (one per channel), got 3 on line 1'
    """

    kind = KIND
    spec_class = SensorSpec
    per_example = True
    settled_encoder_keys = ("conv_pool",)

    def __init__(self, name, spec, state=None, folder=None):
        super().__init__(name, spec, state, folder)
        state = state or {}
        self.mean = state.get("mean")
        self.std = state.get("std")

    @classmethod
    def model_input(cls, spec):
        return (spec.length, spec.channels), "float32"

    @classmethod
    def build_encoder(cls, spec, name):
        return build_sensor_encoder(spec, name=name)

    @classmethod
    def settle_spec(cls, spec, specs):
        """An unset `conv_pool`: 1 for a sensor alone, else one pooling after the last Conv1D
        layer by the largest of FUSED_POOLS per layer that leaves the LSTM at least
        MIN_POOLED_STEPS steps (1 where none does)."""
        if spec.conv_pool is not None:
            return spec
        pool = 1
        if len(specs) > 1 and spec.conv_filters and not spec.encoder:  # pooling follows a Conv1D
            layers = len(spec.conv_filters)
            per_layer = next((p for p in FUSED_POOLS if spec.length // p**layers >= MIN_POOLED_STEPS), 1)
            if per_layer > 1:
                pool = (1,) * (layers - 1) + (per_layer**layers,)
        return dataclasses.replace(spec, conv_pool=pool)

    # ----------------------------------------------------------------- learned state
    def adapt(self, cells):
        """Learns each channel's mean and standard deviation from (up to `ADAPT_FILES`) training files."""
        if self.spec.normalization != "adapted":
            return
        total = np.zeros(self.spec.channels)
        squares = np.zeros(self.spec.channels)
        count = 0
        for path in [c for c in cells if c and os.path.isfile(c)][:ADAPT_FILES]:
            with open(path, "rb") as f:
                values, reason = parse_series(tf.constant(f.read()), self.spec.channels)
            if reason.numpy():
                continue  # reported, with its row, when the data set is read
            values = values.numpy().astype("float64")
            total += values.sum(axis=0)
            squares += np.square(values).sum(axis=0)
            count += len(values)
        if not count:
            raise ValueError(f"Sensor modality {self.name!r}: no readable training file to learn the channels' "
                             "mean and spread from (normalization: adapted).")
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
        self.mean, self.std = mean.tolist(), np.where(std > 1e-8, std, 1.0).tolist()

    def get_state(self, folder):
        return {"mean": self.mean, "std": self.std} if self.mean is not None else {}

    # ----------------------------------------------------------------- decoding
    def decode_one(self, data):
        present = tf.strings.length(data) > 0
        values, reason = parse_series(data, self.spec.channels)
        reason = tf.where(present, reason, "")
        usable = tf.logical_and(present, tf.equal(reason, ""))
        series = fit_length(self._normalize(values), self.spec)
        series = tf.where(usable, series, tf.zeros_like(series))
        return tf.ensure_shape(series, [self.spec.length, self.spec.channels]), present, reason

    def _normalize(self, values):
        if self.spec.normalization == "none":
            return values
        if self.spec.normalization == "example":
            mean = tf.reduce_mean(values, axis=0, keepdims=True)
            std = tf.math.reduce_std(values, axis=0, keepdims=True)
            return (values - mean) / tf.where(std > 1e-8, std, 1.0)
        if self.mean is None:
            raise ValueError(
                f"Sensor modality {self.name!r} has no channel statistics yet: call adapt() (or "
                "adapt_preprocessor()) on the training data, or set normalization: example or none."
            )
        return (values - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)

    def augment(self, series, seed=None):
        """Random per-channel gain (`scale`) and Gaussian jitter (`jitter`), as `spec.augment` asks."""
        options = self.spec.augment
        if not options:
            return series
        if options.get("scale"):
            shape = tf.stack([tf.shape(series)[0], 1, self.spec.channels])
            series = series * tf.random.uniform(shape, 1 - options["scale"], 1 + options["scale"], seed=seed)
        if options.get("jitter"):
            series = series + tf.random.normal(tf.shape(series), stddev=options["jitter"], seed=seed)
        return series

    def describe_attribution(self, attribution, inputs, on_layer):
        """Per time step (channels summed), with the step x channel map and a per-channel total."""
        return {"unit": "time step", "labels": [f"step {i}" for i in range(len(attribution))],
                "scores": attribution.sum(axis=-1), "map": attribution.T, "map_axes": ("channel", "time step"),
                "by_channel": attribution.sum(axis=0)}

    def corruptions(self):
        def noise(sigma):
            return lambda series, rng: series + rng.normal(0, sigma, series.shape).astype(series.dtype)

        def one_channel_lost(series, rng):
            lost = rng.integers(0, series.shape[-1], len(series))
            return series * (np.arange(series.shape[-1])[None, None, :] != lost[:, None, None])

        return {"noise_0.5": noise(0.5), "noise_1.0": noise(1.0), "channel_lost": one_channel_lost}


def parse_series(data, channels):
    """One file's bytes (CSV text or .npy) → (float32 `(steps, channels)`, reason "" when fine). Never raises."""
    is_npy = tf.equal(tf.strings.substr(data, 0, len(NPY_MAGIC)), NPY_MAGIC)
    return tf.cond(is_npy, lambda: _parse_npy(data, channels), lambda: _parse_csv(data, channels))


def _failed(channels, reason):
    return tf.zeros([1, channels], tf.float32), reason


def _parse_csv(data, channels):
    lines = tf.strings.split(tf.strings.regex_replace(data, "\r", ""), "\n")
    numbered = tf.range(1, tf.size(lines) + 1)
    kept = tf.strings.length(tf.strings.strip(lines)) > 0
    lines, numbered = tf.boolean_mask(lines, kept), tf.boolean_mask(numbered, kept)
    numeric = tf.strings.regex_full_match(lines, _NUMBER_LINE)
    # A first line that is not numbers is a header (channel names).
    header = tf.cast(tf.logical_and(tf.size(lines) > 0, tf.logical_not(tf.reduce_any(numeric[:1]))), tf.int32)
    lines, numbered, numeric = lines[header:], numbered[header:], numeric[header:]
    fields = tf.strings.split(lines, ",")
    counts = tf.cast(fields.row_lengths(), tf.int32)
    wrong_count = tf.not_equal(counts, channels)

    def first(mask, values):
        return tf.strings.as_string(tf.concat([tf.boolean_mask(values, mask), [0]], 0)[0])

    def parsed():
        numbers = tf.strings.to_number(tf.strings.strip(fields.flat_values), tf.float32)
        return tf.reshape(numbers, [-1, channels]), tf.constant("")

    not_numbers = tf.logical_not(numeric)
    return tf.case([
        (tf.equal(tf.size(lines), 0), lambda: _failed(channels, "no rows of numbers (expected one line per time "
                                                                "step, numbers separated by commas)")),
        (tf.reduce_any(not_numbers), lambda: _failed(channels, tf.strings.join([
            "line ", first(not_numbers, numbered), " is not numbers separated by commas"]))),
        (tf.reduce_any(wrong_count), lambda: _failed(channels, tf.strings.join([
            f"expected {channels} columns (one per channel), got ", first(wrong_count, counts), " on line ",
            first(wrong_count, numbered)]))),
    ], default=parsed, exclusive=False)


def _parse_npy(data, channels):
    too_short = tf.strings.length(data) < 16
    return tf.cond(too_short, lambda: _failed(channels, "truncated .npy file (no complete header)"),
                   lambda: _parse_npy_body(data, channels))


def _parse_npy_body(data, channels):
    size = tf.strings.length(data)
    version = tf.io.decode_raw(tf.strings.substr(data, 6, 1), tf.uint8)[0]
    short = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 8, 2), tf.uint16)[0], tf.int32)
    long = tf.io.decode_raw(tf.strings.substr(data, 8, 4), tf.int32)[0]  # header sizes stay below 2**31
    header_start = tf.where(version == 1, 10, 12)
    header_length = tf.clip_by_value(tf.where(version == 1, short, long), 0, size - header_start)
    header = tf.strings.substr(data, header_start, header_length)
    start = header_start + header_length
    descr = tf.strings.regex_replace(header, r"(?s).*'descr':\s*'([^']*)'.*", r"\1")
    fortran = tf.strings.regex_full_match(header, r"(?s).*'fortran_order':\s*True.*")
    shape_text = tf.strings.regex_replace(header, r"(?s).*'shape':\s*\(([^)]*)\).*", r"\1")
    parts = tf.strings.strip(tf.strings.split(shape_text, ","))
    parts = tf.boolean_mask(parts, tf.strings.length(parts) > 0)
    rank = tf.size(parts)
    shape_ok = tf.logical_and(tf.reduce_all(tf.strings.regex_full_match(parts, r"[0-9]+")),
                              tf.logical_and(rank >= 1, rank <= 2))
    # Nine digits at most per dimension: the product of two stays within int64, and the size check
    # below then refuses any shape the file cannot hold, without allocating it.
    huge = tf.logical_and(shape_ok, tf.reduce_any(tf.strings.length(parts) > 9))
    dims = tf.concat([tf.strings.to_number(tf.where(shape_ok & ~huge, parts, "0"), tf.int64), [1, 1]], 0)
    steps, width = dims[0], tf.where(rank == 1, tf.constant(1, tf.int64), dims[1])
    start = tf.cast(start, tf.int64)
    size = tf.cast(size, tf.int64)

    def reader(dtype, item_bytes):
        def read():
            needed = steps * width * item_bytes
            payload = tf.strings.substr(data, start, tf.minimum(needed, size - start))
            whole = tf.strings.length(payload) // item_bytes * item_bytes
            values = tf.cast(tf.io.decode_raw(tf.strings.substr(payload, 0, whole), dtype), tf.float32)
            values = tf.reshape(values, [-1])

            def shaped():
                table = tf.reshape(values, [steps, width])
                if_fortran = tf.transpose(tf.reshape(values, [width, steps]))
                return tf.where(fortran, if_fortran, table), tf.constant("")

            return tf.cond(tf.equal(tf.size(values, tf.int64), steps * width), shaped, lambda: _failed(channels, tf.strings.join([
                "truncated .npy file: its header says shape (", shape_text, ") but the data holds ",
                tf.strings.as_string(tf.size(values)), " values"])))
        return read

    cases = [(tf.equal(descr, key), reader(dtype, item_bytes)) for key, (dtype, item_bytes) in _NPY_TYPES.items()]
    values, reason = tf.case(
        [(tf.logical_not(shape_ok), lambda: _failed(channels, tf.strings.join([
            "expected a .npy array of shape (steps, channels), got shape (", shape_text, ")"]))),
         (huge, lambda: _failed(channels, tf.strings.join([
             "truncated .npy file: its header says shape (", shape_text, "), far more than the file holds"])))] + cases,
        default=lambda: _failed(channels, tf.strings.join([
            "unsupported .npy element type ", descr, f" (expected one of {sorted(_NPY_TYPES)})"])),
        exclusive=False,
    )
    wrong_width = tf.logical_and(tf.equal(reason, ""), tf.not_equal(width, channels))
    reason = tf.where(wrong_width, tf.strings.join([
        f"expected {channels} channels, got ", tf.strings.as_string(width), " (.npy shape (", shape_text, "))"]), reason)
    return tf.cond(tf.equal(reason, ""), lambda: (tf.reshape(values, [-1, channels]), reason),
                   lambda: _failed(channels, reason))


def fit_length(values, spec):
    """`(steps, channels)` → `(spec.length, channels)`: cropped or zero-padded, or linearly resampled."""
    if spec.fit == "resample":
        stretched = tf.image.resize(values[:, None, :], [spec.length, 1], method="bilinear")
        return stretched[:, 0, :]
    steps = tf.shape(values)[0]
    excess = tf.maximum(steps - spec.length, 0)
    start = {"start": 0, "center": excess // 2, "end": excess}[spec.crop]
    window = values[start : start + spec.length]
    return tf.pad(window, [[0, spec.length - tf.shape(window)[0]], [0, 0]])
