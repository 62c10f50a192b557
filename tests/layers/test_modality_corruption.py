import numpy as np
import pytest
from helpers import run_serialization_test

from mmkeras.layers import ModalityCorruption


def _batch(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 50)).astype("float32") * rng.uniform(0.1, 10.0, size=(n, 1)).astype("float32")
    tokens = rng.integers(1, 30, size=(n, 8)).astype("int32")
    tokens[:, 6:] = 0  # padding at the end
    presence = np.ones((n, 2), "float32")
    presence[::3, 1] = 0.0  # a third of the examples have no text
    return signal, tokens, presence


def test_corrupts_present_modalities_at_about_the_rate_never_all_of_an_example():
    signal, tokens, presence = _batch()
    (_, _), corrupted = ModalityCorruption(rate=0.3, seed=1)([signal, tokens], presence, training=True)
    corrupted = np.asarray(corrupted)
    assert np.all(corrupted <= presence)  # a missing modality is never flagged
    assert np.all(corrupted.sum(axis=1) < presence.sum(axis=1))  # something is always left clean
    both = presence.sum(axis=1) == 2
    assert 0.2 < corrupted[both].mean() < 0.35


def test_an_example_that_modality_dropout_took_from_stays_clean():
    x = [np.ones((1000, 4), "float32")] * 3
    available = np.ones((1000, 3), "float32")
    presence = available.copy()
    presence[:500, 0] = 0.0  # dropped in training
    _, corrupted = ModalityCorruption(rate=0.5, seed=8)(x, presence, available=available, training=True)
    corrupted = np.asarray(corrupted)
    assert corrupted[:500].sum() == 0 and corrupted[500:].sum() > 300


def test_noise_is_at_the_asked_signal_to_noise_ratio_whatever_the_input_scale():
    signal, tokens, presence = _batch()
    layer = ModalityCorruption(rate=0.5, snr_db=(0.0, 0.0), seed=2)
    (noisy, _), corrupted = layer([signal, tokens], presence, training=True)
    noisy, flagged = np.asarray(noisy), np.asarray(corrupted)[:, 0] > 0
    assert np.array_equal(noisy[~flagged], signal[~flagged])
    noise_power = ((noisy - signal)[flagged] ** 2).mean(axis=1)
    signal_power = signal[flagged].var(axis=1)
    snr_db = 10 * np.log10(signal_power / noise_power)
    assert abs(np.median(snr_db)) < 1.0  # 0 dB whether the example's scale is 0.1 or 10


def test_tokens_are_replaced_by_the_batch_s_tokens_and_padding_stays():
    signal, tokens, presence = _batch()
    (_, shuffled), corrupted = ModalityCorruption(rate=0.5, seed=3)([signal, tokens], presence, training=True)
    shuffled, flagged = np.asarray(shuffled), np.asarray(corrupted)[:, 1] > 0
    assert np.array_equal(shuffled[~flagged], tokens[~flagged])
    assert np.all(shuffled[:, 6:] == 0)
    changed = (shuffled[flagged, :6] != tokens[flagged, :6]).mean()
    assert 0.6 < changed < 0.8  # half to all of them drawn again, some drawn as themselves
    assert set(np.unique(shuffled)) <= set(np.unique(tokens))


def test_frames_mode_keeps_the_frame_mask_and_none_mode_keeps_everything():
    rng = np.random.default_rng(4)
    clips = rng.uniform(size=(500, 3, 4, 4, 2)).astype("float32")
    clips[..., -1] = 1.0
    other = rng.uniform(size=(500, 5)).astype("float32")
    layer = ModalityCorruption(rate=0.5, modes=["frames", "none"], seed=5)
    (noisy, kept), corrupted = layer([clips, other], np.ones((500, 2), "float32"), training=True)
    noisy, corrupted = np.asarray(noisy), np.asarray(corrupted)
    assert corrupted[:, 1].sum() == 0 and corrupted[:, 0].sum() > 100
    assert np.all(noisy[..., -1] == 1.0)
    assert not np.allclose(noisy[corrupted[:, 0] > 0, ..., 0], clips[corrupted[:, 0] > 0, ..., 0])
    assert np.array_equal(np.asarray(kept), other)


def test_strings_are_never_corrupted_and_a_mode_that_does_not_fit_the_dtype_is_none():
    texts = np.array(["a b", "c d"] * 50)
    numbers = np.ones((100, 3), "float32")
    layer = ModalityCorruption(rate=0.9, modes=["tokens", "tokens"], seed=6)
    (same_texts, same_numbers), corrupted = layer([texts, numbers], np.ones((100, 2), "float32"), training=True)
    assert np.asarray(corrupted).sum() == 0
    assert np.array_equal(np.asarray(same_numbers), numbers)


def test_identity_at_inference_and_round_trips():
    signal, tokens, presence = _batch(n=8)
    layer = ModalityCorruption(rate=0.5, modes=["noise", "tokens"], snr_db=(-5, 0), seed=7)
    (a, b), corrupted = layer([signal, tokens], presence, training=False)
    assert np.array_equal(np.asarray(a), signal) and np.array_equal(np.asarray(b), tokens)
    assert np.asarray(corrupted).sum() == 0
    run_serialization_test(layer)


@pytest.mark.parametrize("kwargs, message", [
    ({"rate": 1.0}, "Received: rate=1.0"),
    ({"snr_db": (5, 0)}, "low <= high"),
    ({"modes": ["blur"]}, "Expected modes from"),
])
def test_bad_arguments_say_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModalityCorruption(**kwargs)
