"""Waveform → normalised log-mel frames, computed per example inside the model."""

import keras
import numpy as np
from keras import ops

#: Power below which an STFT frame counts as padding (digital silence), not sound.
_SILENCE_POWER = 1e-10


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype="float64") / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype="float64") / 2595.0) - 1.0)


def mel_filterbank(num_mel_bins, fft_length, sample_rate, fmin, fmax):
    """Triangular HTK-scale mel filters as a `(fft_length // 2 + 1, num_mel_bins)` matrix."""
    num_bins = fft_length // 2 + 1
    bin_hz = np.linspace(0.0, sample_rate / 2.0, num_bins)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), num_mel_bins + 2))
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_hz[:, None] - lower) / np.maximum(center - lower, 1e-9)
    falling = (upper - bin_hz[:, None]) / np.maximum(upper - center, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling)).astype("float32")


@keras.saving.register_keras_serializable(package="mmkeras")
class LogMelSpectrogram(keras.layers.Layer):
    """Log-mel spectrogram of a waveform, normalised per example, as `(batch, frames, mels)`.

    Unlike `keras.layers.MelSpectrogram` (whose dB conversion clips against the loudest value of
    the whole batch), every quantity here is computed per example, so an example's features do
    not depend on its batch-mates. Frames of pure digital silence (the zero padding the
    Preprocessor puts before short clips) count as padding: they are left out of the statistics
    and set to 0 in the output.

    Args:
        sample_rate: int. Sample rate of the waveform (Hz).
        num_mel_bins: int. Mel bands.
        frame_length: int. STFT window length in samples.
        frame_step: int. STFT hop in samples.
        fft_length: int. FFT size (>= frame_length).
        fmin: float. Lowest mel frequency (Hz).
        fmax: float. Highest mel frequency (Hz); None means sample_rate / 2.
        top_db: float. Each example's dB values are floored at its own maximum minus `top_db`.
        normalization: str. "example": standardise with the mean and standard deviation of the
            example's real frames; "bin": standardise each mel bin with statistics learned by
            `adapt()`; "none": return dB values.

    Example:

    >>> import numpy as np
    >>> layer = LogMelSpectrogram(sample_rate=8000, num_mel_bins=16, frame_length=200,
    ...                           frame_step=80, fft_length=256)
    >>> tuple(layer(np.zeros((2, 4000), "float32")).shape)
    (2, 51, 16)
    """

    def __init__(
        self,
        sample_rate=16000,
        num_mel_bins=64,
        frame_length=400,
        frame_step=160,
        fft_length=512,
        fmin=20.0,
        fmax=None,
        top_db=80.0,
        normalization="example",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in ("example", "bin", "none"):
            raise ValueError(
                "Expected normalization to be one of ['bin', 'example', 'none']. "
                f"Received: normalization={normalization!r}"
            )
        if fft_length < frame_length:
            raise ValueError(
                f"Expected fft_length >= frame_length. Received: fft_length={fft_length}, "
                f"frame_length={frame_length}"
            )
        self.sample_rate = int(sample_rate)
        self.num_mel_bins = int(num_mel_bins)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = int(fft_length)
        self.fmin = float(fmin)
        self.fmax = float(fmax) if fmax is not None else None
        self.top_db = float(top_db)
        self.normalization = normalization
        self._filterbank = mel_filterbank(
            self.num_mel_bins,
            self.fft_length,
            self.sample_rate,
            self.fmin,
            self.fmax if self.fmax is not None else self.sample_rate / 2.0,
        )

    @property
    def input_dtype(self):
        # Keras would cast the waveform to the compute dtype (float16 under mixed precision), which
        # quantises quiet samples and moves bins by over 1 dB; the waveform stays float32.
        return "float32"

    def build(self, input_shape):
        if self.normalization == "bin":
            self.bin_mean = self.add_weight(
                name="bin_mean", shape=(self.num_mel_bins,), initializer="zeros", trainable=False
            )
            self.bin_variance = self.add_weight(
                name="bin_variance", shape=(self.num_mel_bins,), initializer="ones", trainable=False
            )
        self.built = True

    def _log_mel(self, waveform):
        """dB log-mel `(batch, frames, mels)` and a `(batch, frames, 1)` real-frame indicator."""
        waveform = ops.cast(waveform, "float32")
        real, imag = ops.stft(
            waveform,
            sequence_length=self.frame_length,
            sequence_stride=self.frame_step,
            fft_length=self.fft_length,
            window="hann",
            center=True,
        )
        power = ops.square(real) + ops.square(imag)  # (batch, frames, fft_length // 2 + 1)
        is_real = ops.cast(ops.sum(power, axis=-1, keepdims=True) > _SILENCE_POWER, "float32")
        mel = ops.matmul(power, ops.convert_to_tensor(self._filterbank))  # (batch, frames, mels)
        db = 10.0 * ops.log(ops.maximum(mel, 1e-10)) / np.log(10.0)
        peak = ops.max(db, axis=(1, 2), keepdims=True)  # per example, never across the batch
        db = ops.maximum(db, peak - self.top_db)
        return db, is_real

    def call(self, inputs):
        # The spectrogram is computed in float32 whatever the dtype policy (float16 loses the
        # quiet bins), then handed on in the layer's compute dtype, as its output spec declares.
        return ops.cast(self._features(inputs), self.compute_dtype)

    def _features(self, inputs):
        db, is_real = self._log_mel(inputs)
        if self.normalization == "none":
            return db * is_real
        if self.normalization == "example":
            count = ops.maximum(ops.sum(is_real, axis=(1, 2), keepdims=True) * self.num_mel_bins, 1.0)
            mean = ops.sum(db * is_real, axis=(1, 2), keepdims=True) / count
            variance = ops.sum(ops.square(db - mean) * is_real, axis=(1, 2), keepdims=True) / count
            features = (db - mean) / ops.sqrt(variance + 1e-6)
        else:
            mean, variance = ops.cast(self.bin_mean, "float32"), ops.cast(self.bin_variance, "float32")
            features = (db - mean) / ops.sqrt(variance + 1e-6)
        return features * is_real  # padding frames are exactly 0

    def adapt(self, waveforms, batch_size=64):
        """Learns per-mel-bin mean and variance over the real frames of `waveforms`.

        Only used with `normalization="bin"`.

        Args:
            waveforms: array `(examples, samples)` or an iterable of such batches.
            batch_size: int. Batch size when `waveforms` is one array.
        """
        if self.normalization != "bin":
            raise ValueError(
                f"adapt() learns per-bin statistics, which only normalization='bin' uses. "
                f"Received: normalization={self.normalization!r}"
            )
        if isinstance(waveforms, np.ndarray):
            batches = (waveforms[i : i + batch_size] for i in range(0, len(waveforms), batch_size))
        else:
            batches = waveforms
        total = np.zeros(self.num_mel_bins, "float64")
        total_sq = np.zeros(self.num_mel_bins, "float64")
        frames = 0.0
        for batch in batches:
            if not self.built:
                self.build(ops.shape(batch))
            db, is_real = self._log_mel(batch)
            db = ops.convert_to_numpy(db).astype("float64")
            is_real = ops.convert_to_numpy(is_real).astype("float64")
            total += (db * is_real).sum(axis=(0, 1))
            total_sq += (np.square(db) * is_real).sum(axis=(0, 1))
            frames += is_real.sum()
        if frames == 0:
            raise ValueError("adapt() found no non-silent frame in the waveforms it was given.")
        mean = total / frames
        self.bin_mean.assign(mean.astype("float32"))
        self.bin_variance.assign(np.maximum(total_sq / frames - np.square(mean), 0.0).astype("float32"))

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else samples // self.frame_step + 1
        return (input_shape[0], frames, self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "num_mel_bins": self.num_mel_bins,
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "fft_length": self.fft_length,
                "fmin": self.fmin,
                "fmax": self.fmax,
                "top_db": self.top_db,
                "normalization": self.normalization,
            }
        )
        return config
