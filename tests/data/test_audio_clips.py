import numpy as np
import pytest
import tensorflow as tf
from media import tone
from media import wav_bytes

from mmkeras.data import audio
from mmkeras.specs import AudioSpec


def _peak_hz(signal, rate):
    spectrum = np.abs(np.fft.rfft(signal))
    return np.fft.rfftfreq(len(signal), 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_resampling_keeps_pitch_and_level(rate):
    spec = AudioSpec(sample_rate=16000, duration=0.25)
    clip = audio.to_clip(tf.constant(tone(rate, seconds=0.25, hz=440.0)), rate, spec).numpy()
    assert clip.shape == (4000,)
    assert abs(_peak_hz(clip, 16000) - 440.0) < 8.0
    assert abs(np.abs(clip[1000:3000]).max() - 0.5) < 0.05


def test_stereo_is_downmixed_to_the_mean():
    samples = np.stack([np.ones(100), -np.ones(100) * 0.5], axis=1).astype("float32")
    clip = audio.to_clip(tf.constant(samples), 8000, AudioSpec(sample_rate=8000, duration=100 / 8000)).numpy()
    np.testing.assert_allclose(clip, 0.25, atol=1e-5)  # equal rates: FFT round trip, float rounding


def test_short_clips_are_padded_before_the_sound():
    samples = np.ones((300, 1), "float32")
    clip = audio.to_clip(tf.constant(samples), 8000, AudioSpec(sample_rate=8000, duration=0.05)).numpy()
    assert clip.shape == (400,) and np.all(clip[:100] == 0)
    np.testing.assert_allclose(clip[100:], 1.0, atol=1e-5)


@pytest.mark.parametrize("crop, expected_start", [("start", 0), ("center", 300)])
def test_long_clips_are_cropped_where_asked(crop, expected_start):
    samples = np.arange(1000, dtype="float32")[:, None]
    clip = audio.to_clip(tf.constant(samples), 1000, AudioSpec(sample_rate=1000, duration=0.4, crop=crop)).numpy()
    assert clip.shape == (400,) and abs(clip[0] - expected_start) < 1e-2


def test_random_crop_varies_in_training_and_is_centred_otherwise():
    samples = np.arange(1000, dtype="float32")[:, None]
    spec = AudioSpec(sample_rate=1000, duration=0.4, crop="random")
    starts = {round(float(audio.to_clip(tf.constant(samples), 1000, spec, training=True)[0])) for _ in range(20)}
    assert len(starts) > 5 and all(0 <= s <= 600 for s in starts)
    assert abs(float(audio.to_clip(tf.constant(samples), 1000, spec, training=False)[0]) - 300) < 1e-2


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_compressed_formats_decode_through_the_available_backend(fmt, subtype):
    backend, message = audio.compressed_audio_backend()
    assert backend == "soundfile" and "soundfile" in message and "tensorflow-io" in message
    data = wav_bytes(tone(22050, channels=2), 22050, subtype, fmt)
    assert bool(audio.is_compressed(tf.constant(data)))
    samples, rate, reason = audio.decode_compressed(tf.constant(data))
    assert reason.numpy() == b"" and int(rate) == 22050 and samples.shape[1] == 2
    assert abs(_peak_hz(samples.numpy()[:, 0], 22050) - 440) < 10


def test_corrupt_compressed_audio_gives_a_reason():
    _, _, reason = audio.decode_compressed(tf.constant(b"fLaC" + b"\x00" * 50))
    assert b"undecodable audio" in reason.numpy()
