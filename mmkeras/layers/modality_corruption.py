"""Training-time corruption of whole modalities, with flags saying which were corrupted."""

import keras
from keras import ops

MODES = ("noise", "frames", "tokens", "none")


@keras.saving.register_keras_serializable(package="mmkeras")
class ModalityCorruption(keras.layers.Layer):
    """Corrupts some present modalities' inputs during training and returns which ones it corrupted.

    Called as `layer(inputs, presence)` with one model input per modality and the
    `(batch, modalities)` presence flags (optionally `available=`, the flags before modality
    dropout: an example that lost a modality to dropout is then never corrupted); returns `(inputs, corrupted)`, `corrupted` being
    `(batch, modalities)` 0/1 flags. A fusion that learns how far to trust each modality (the
    attention fusion) is trained to give the flagged modalities a low weight, so at inference
    its weights drop when an input is degraded. At inference the inputs pass unchanged and the
    flags are all 0.

    Each present modality of an example is corrupted with probability `rate`, never all of an
    example's present modalities at once:

    - `"noise"` (float inputs: pixels, waveforms, series, tabular values): white noise at a
      signal-to-noise ratio drawn uniformly from `snr_db` (dB, relative to the example's own
      standard deviation, so the scale of the input does not matter);
    - `"frames"` (video clips, whose last plane is the frame mask): the same noise on every
      plane but the mask;
    - `"tokens"` (integer token ids): a share of the non-zero ids, drawn uniformly from 0.5 to
      1, replaced by ids taken at random from the batch: words that no longer go together.
      Zeros (padding) stay where they are;
    - `"none"`: never corrupted (string inputs, or a kind that opts out).

    Args:
        rate: float. Probability that each present modality of an example is corrupted.
        modes: list of str, one per input (see above). None (for all, or for one input):
            "noise" for float inputs, "tokens" for integer ones, "none" for the rest. A mode that does not fit the input's dtype
            counts as "none".
        snr_db: pair of floats. Range of the noise's signal-to-noise ratio.
        seed: int. Seed of the random draws.

    Example:

    >>> import numpy as np
    >>> layer = ModalityCorruption(rate=0.5)
    >>> x = [np.ones((4, 3), "float32"), np.arange(8, dtype="int32").reshape(4, 2)]
    >>> (a, b), corrupted = layer(x, np.ones((4, 2), "float32"), training=False)
    >>> bool(np.all(np.asarray(a) == x[0])), float(np.asarray(corrupted).sum())
    (True, 0.0)
    >>> _, corrupted = layer(x, np.ones((4, 2), "float32"), training=True)
    >>> bool(np.all(np.asarray(corrupted).sum(axis=1) < 2))  # never both of an example's
    True
    """

    def __init__(self, rate=0.15, modes=None, snr_db=(-10.0, 5.0), seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Expected 0 <= rate < 1. Received: rate={rate!r}")
        low, high = (float(v) for v in snr_db)
        if low > high:
            raise ValueError(f"Expected snr_db as (low, high) with low <= high. Received: snr_db={snr_db!r}")
        if modes is not None and any(mode is not None and mode not in MODES for mode in modes):
            raise ValueError(f"Expected modes from {list(MODES)}. Received: modes={modes!r}")
        self.rate = float(rate)
        self.modes = None if modes is None else list(modes)
        self.snr_db = (low, high)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._build_at_init()  # no weights: built on creation (unless a subclass builds), as Keras' own are

    def call(self, inputs, presence, available=None, training=False):
        inputs = list(inputs)
        presence = ops.cast(presence, "float32")
        if not training or self.rate == 0.0:
            return inputs, ops.zeros_like(presence)
        if self.modes is not None and len(self.modes) != len(inputs):
            raise ValueError(f"ModalityCorruption has {len(self.modes)} modes for {len(inputs)} inputs")
        modes = self._modes(inputs)
        corruptible = ops.convert_to_tensor([[0.0 if m == "none" else 1.0 for m in modes]], "float32")  # (1, M)
        draws = keras.random.uniform(ops.shape(presence), seed=self.seed_generator)
        chosen = presence * corruptible * ops.cast(draws < self.rate, "float32")
        # An example whose every present modality was drawn keeps them all clean: some modality
        # has to be worth trusting.
        everything = ops.sum(chosen, axis=-1, keepdims=True) >= ops.sum(presence, axis=-1, keepdims=True)
        chosen = ops.where(everything, ops.zeros_like(chosen), chosen)
        if available is not None:
            # An example that modality dropout has already taken something from stays clean:
            # the paths used when a modality is missing learn from intact inputs.
            dropped = ops.sum(ops.cast(available, "float32") - presence, axis=-1, keepdims=True) > 0
            chosen = ops.where(dropped, ops.zeros_like(chosen), chosen)
        outputs = []
        for i, (x, mode) in enumerate(zip(inputs, modes)):
            if mode == "noise":
                outputs.append(self._noisy(x, chosen[:, i]))
            elif mode == "frames":  # the last plane is the frame mask: kept as it is
                outputs.append(ops.concatenate([self._noisy(x[..., :-1], chosen[:, i]), x[..., -1:]], axis=-1))
            elif mode == "tokens":
                outputs.append(self._shuffled_tokens(x, chosen[:, i]))
            else:
                outputs.append(x)
        return outputs, chosen

    def _modes(self, inputs):
        """Each input's mode, "none" where the asked-for one does not fit its dtype."""
        result = []
        for i, x in enumerate(inputs):
            dtype = keras.backend.standardize_dtype(x.dtype)
            numeric = "float" if dtype.startswith(("float", "bfloat")) else "int" if dtype.startswith(("int", "uint")) else None
            wanted = self.modes[i] if self.modes is not None and self.modes[i] is not None else {"float": "noise", "int": "tokens"}.get(numeric, "none")
            fits = {"noise": "float", "frames": "float", "tokens": "int"}.get(wanted)
            result.append(wanted if fits is not None and fits == numeric else "none")
        return result

    def _per_example(self, flag, x):
        """`(batch,)` values reshaped to broadcast over `x`'s other axes."""
        return ops.reshape(flag, (-1,) + (1,) * (len(x.shape) - 1))

    def _noisy(self, x, flag):
        axes = tuple(range(1, len(x.shape)))
        values = ops.cast(x, "float32")
        std = ops.sqrt(ops.var(values, axis=axes, keepdims=True) + 1e-12)
        snr = keras.random.uniform((ops.shape(x)[0],), self.snr_db[0], self.snr_db[1], seed=self.seed_generator)
        sigma = std * self._per_example(ops.power(10.0, -snr / 20.0), x)
        noise = keras.random.normal(ops.shape(x), seed=self.seed_generator) * sigma
        corrupted = values + noise
        return ops.cast(ops.where(self._per_example(flag, x) > 0, corrupted, values), x.dtype)

    def _shuffled_tokens(self, x, flag):
        # The batch's non-zero ids sort to the end; a replacement is one of them at random.
        ordered = ops.sort(ops.reshape(x, (-1,)))
        size = ops.shape(ordered)[0]
        nonzero = ops.sum(ops.cast(ordered != 0, "float32"))
        offsets = ops.floor(keras.random.uniform(ops.shape(x), seed=self.seed_generator) * nonzero)
        picks = ops.clip(ops.cast(size, "float32") - 1.0 - offsets, 0.0, ops.cast(size, "float32") - 1.0)
        replacement = ops.take(ordered, ops.cast(picks, "int32"))
        share = keras.random.uniform((ops.shape(x)[0],), 0.5, 1.0, seed=self.seed_generator)
        draws = keras.random.uniform(ops.shape(x), seed=self.seed_generator)
        replace = (draws < self._per_example(share, x)) & (x != 0) & (self._per_example(flag, x) > 0)
        return ops.where(replace, replacement, x)

    def compute_output_spec(self, inputs, presence, available=None, training=False):
        flags = keras.KerasTensor(presence.shape, dtype="float32")
        return [keras.KerasTensor(x.shape, dtype=x.dtype) for x in inputs], flags

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "modes": self.modes, "snr_db": list(self.snr_db), "seed": self.seed})
        return config

