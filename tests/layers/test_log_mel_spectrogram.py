import numpy as np
import pytest
from helpers import run_layer_test
from helpers import run_serialization_test

import mmkeras
from mmkeras.layers import LogMelSpectrogram

TINY = dict(sample_rate=8000, num_mel_bins=16, frame_length=200, frame_step=80, fft_length=256)


def _clips(n=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(4000) / 8000.0
    clips = np.stack([np.sin(2 * np.pi * (300 + 200 * i) * t) * (0.1 + i) for i in range(n)]).astype("float32")
    return clips + 0.01 * rng.normal(size=clips.shape).astype("float32")


@pytest.mark.parametrize("normalization", ["example", "none"])
def test_features_do_not_depend_on_the_batch(normalization):
    layer = LogMelSpectrogram(normalization=normalization, **TINY)
    clips = _clips()
    alone = np.asarray(layer(clips[:1]))
    loud_mate = np.concatenate([clips[:1], 100.0 * clips[3:4]])
    quiet_mates = np.concatenate([clips[:1], 1e-3 * clips[1:3]])
    np.testing.assert_allclose(np.asarray(layer(loud_mate))[:1], alone, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(layer(quiet_mates))[:1], alone, rtol=1e-4, atol=1e-4)


def test_audio_encoder_output_does_not_depend_on_the_batch():
    encoder = mmkeras.build_audio_encoder(sample_rate=8000, duration=0.5, num_mel_bins=16, conv_filters=(8,),
                                          lstm_units=4)
    clips = _clips()
    alone = encoder.predict(clips[:1], verbose=0)
    together = encoder.predict(np.concatenate([clips[:1], 1000.0 * clips[1:]]), verbose=0)
    np.testing.assert_allclose(together[:1], alone, rtol=1e-4, atol=1e-5)


def test_padding_frames_are_zero_and_stats_use_real_frames_only():
    layer = LogMelSpectrogram(**TINY)
    clip = _clips(1)[0].copy()
    clip[:2000] = 0.0  # the Preprocessor pads before the sound
    features = np.asarray(layer(clip[None]))[0]
    padding = ~features.any(axis=1)
    assert padding[:22].all() and not padding[27:].any()  # 2000 zero samples = 25 hops of 80
    real = features[~padding]
    assert abs(real.mean()) < 1e-3 and abs(real.std() - 1.0) < 1e-3


def test_silence_gives_zeros_not_nan():
    features = np.asarray(LogMelSpectrogram(**TINY)(np.zeros((2, 4000), "float32")))
    assert np.all(features == 0.0)


def test_a_tone_lights_the_mel_bin_that_holds_its_frequency():
    layer = LogMelSpectrogram(normalization="none", fmin=0.0, **{k: v for k, v in TINY.items()})
    t = np.arange(4000) / 8000.0
    for hz in (250.0, 1000.0, 3000.0):
        db = np.asarray(layer(np.sin(2 * np.pi * hz * t).astype("float32")[None]))[0]
        edges = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 4000 / 700), 18) / 2595) - 1)
        expected_bin = int(np.argmin(np.abs(edges[1:-1] - hz)))
        assert abs(int(db.mean(axis=0).argmax()) - expected_bin) <= 1, hz


def test_bin_normalization_adapts_to_unit_statistics():
    layer = LogMelSpectrogram(normalization="bin", **TINY)
    clips = _clips(8, seed=3)
    layer.adapt(clips, batch_size=3)
    features = np.asarray(layer(clips))
    np.testing.assert_allclose(features.mean(axis=(0, 1)), 0.0, atol=1e-3)
    np.testing.assert_allclose(features.std(axis=(0, 1)), 1.0, atol=1e-2)


def test_adapt_needs_bin_normalization():
    with pytest.raises(ValueError, match="normalization='bin'"):
        LogMelSpectrogram(**TINY).adapt(_clips())


def test_layer_contract():
    layer = LogMelSpectrogram(**TINY)
    run_layer_test(layer, [_clips()], [(4, 51, 16)])
    run_serialization_test(layer)


def test_bad_settings_are_reported():
    with pytest.raises(ValueError, match="Received: normalization='max'"):
        LogMelSpectrogram(normalization="max")
    with pytest.raises(ValueError, match="fft_length >= frame_length"):
        LogMelSpectrogram(frame_length=400, fft_length=256)


@pytest.mark.parametrize("normalization", ["bin", "example", "none"])
def test_mixed_precision_computes_in_float32_and_hands_on_float16(normalization):
    """The policy a Colab GPU gets by default (`training.mixed_precision: auto`)."""
    import keras

    clips = _clips(6, seed=5)
    reference = LogMelSpectrogram(normalization=normalization, **TINY)
    if normalization == "bin":
        reference.adapt(clips)
    expected = np.asarray(reference(clips))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = LogMelSpectrogram(normalization=normalization, **TINY)
        if normalization == "bin":
            layer.adapt(clips)
        out = layer(clips)
        symbolic = layer.compute_output_spec(keras.KerasTensor(clips.shape))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(out.dtype) == "float16" == symbolic.dtype
    np.testing.assert_allclose(np.asarray(out, "float32"), expected, atol=2e-2, rtol=1e-2)
