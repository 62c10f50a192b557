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
def test_compressed_formats_convert_to_wav_through_the_available_backend(fmt, subtype):
    backend, message = audio.compressed_audio_backend()
    assert backend == "soundfile" and "soundfile" in message and "tensorflow-io" in message
    data = wav_bytes(tone(22050, channels=2), 22050, subtype, fmt)
    assert bool(audio.is_compressed(tf.constant(data)))
    converted = audio.transcode_to_wav(data)
    assert converted[:4] == b"RIFF"
    clip, reason = audio.decode_clip(tf.constant(converted), AudioSpec(sample_rate=22050, duration=0.25))
    assert reason.numpy() == b"" and abs(_peak_hz(clip.numpy(), 22050) - 440) < 10


def test_corrupt_compressed_audio_gives_a_reason():
    with pytest.raises(ValueError, match="undecodable audio"):
        audio.transcode_to_wav(b"fLaC" + b"\x00" * 50)


def test_compressed_bytes_reaching_the_graph_are_refused_with_a_reason():
    data = wav_bytes(tone(22050), 22050, "PCM_16", "FLAC")
    _, reason = audio.decode_clip(tf.constant(data), AudioSpec(sample_rate=8000, duration=0.25))
    assert b"not WAV: expected WAV bytes" in reason.numpy()


def _pcm16(seconds, rate, channels=1, hz=440.0):
    return wav_bytes(tone(rate, seconds=seconds, channels=channels, hz=hz), rate)


@pytest.mark.parametrize("channels", [1, 2])
def test_a_uniform_batch_decodes_vectorised_to_the_same_clips_as_one_by_one(channels):
    spec = AudioSpec(sample_rate=16000, duration=0.25)
    batch = [_pcm16(0.5, 22050, channels), _pcm16(0.1, 22050, channels, hz=300.0), b"",
             _pcm16(0.25, 22050, channels, hz=1000.0)]
    clips, present, reasons = audio.decode_clips(tf.constant(batch), spec)
    assert present.numpy().tolist() == [True, True, False, True] and reasons.numpy().tolist() == [b""] * 4
    for i, data in enumerate(batch):
        one, reason = audio.decode_clip(tf.constant(data), spec) if data else (tf.zeros([4000]), b"")
        np.testing.assert_allclose(clips[i].numpy(), one.numpy(), atol=1e-6, err_msg=f"clip {i}")
    # Short clip: silence first (up to the resampler's ringing), the sound at the end.
    assert np.abs(clips[1].numpy()[:2000]).max() < 0.02 and np.abs(clips[1].numpy()[-1000:]).max() > 0.3


def test_a_mixed_batch_decodes_clip_by_clip_with_the_same_values():
    spec = AudioSpec(sample_rate=16000, duration=0.25)
    plain = [_pcm16(0.3, 22050), _pcm16(0.2, 22050, hz=600.0)]
    uniform, _, _ = audio.decode_clips(tf.constant(plain), spec)
    mixed, _, reasons = audio.decode_clips(tf.constant(plain + [wav_bytes(tone(44100), 44100, "PCM_24"), b"junk"]), spec)
    np.testing.assert_allclose(mixed[:2].numpy(), uniform.numpy(), atol=1e-6)
    assert abs(_peak_hz(mixed[2].numpy(), 16000) - 440.0) < 8.0
    assert reasons.numpy().tolist()[:3] == [b"", b"", b""] and b"not a WAV file" in reasons.numpy()[3]
    assert not mixed[3].numpy().any()


def test_random_crops_differ_between_the_clips_of_a_vectorised_batch():
    ramp = (np.arange(1000) * 20).astype("int16")[:, None]
    data = wav_bytes(ramp.astype("float32") / 32768.0, 1000)
    spec = AudioSpec(sample_rate=1000, duration=0.4, crop="random")
    clips, _, _ = audio.decode_clips(tf.constant([data] * 16), spec, training=True)
    starts = np.round(clips.numpy()[:, 0] * 32768.0 / 20).astype(int)
    assert len(set(starts.tolist())) > 5 and starts.min() >= 0 and starts.max() <= 600
    centred, _, _ = audio.decode_clips(tf.constant([data] * 2), spec, training=False)
    assert np.round(centred.numpy()[:, 0] * 32768.0 / 20).astype(int).tolist() == [300, 300]


def test_non_finite_samples_are_a_bad_clip_not_nan_features():
    """A float WAV of NaN (or infinite) samples would turn every loss and served answer into NaN."""
    spec = AudioSpec(sample_rate=8000, duration=0.25)
    good = tone(8000, seconds=0.25, hz=440.0)
    nan = good.copy()
    nan[100] = np.nan
    inf = good.copy()
    inf[-1] = np.inf
    data = tf.constant([wav_bytes(good, 8000, "FLOAT"), wav_bytes(nan, 8000, "FLOAT"), wav_bytes(inf, 8000, "DOUBLE"),
                        b""])
    clips, present, reasons = audio.decode_clips(data, spec)
    assert [r.decode() for r in reasons.numpy()] == [""] + [
        "the audio holds samples that are not finite numbers (NaN or infinity)"] * 2 + [""]
    assert np.isfinite(clips.numpy()).all() and not clips.numpy()[1:].any()
    assert present.numpy().tolist() == [True, True, True, False]
