import struct

import numpy as np
import pytest
import tensorflow as tf
from media import stdlib_wav_bytes
from media import tone
from media import wav_bytes

from mmkeras.data.wav import decode_wav
from mmkeras.data.wav import wav_header

# (subtype, tolerance): the error allowed is one quantisation step of the width.
WIDTHS = [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-7), ("FLOAT", 1e-7), ("DOUBLE", 1e-7)]


@pytest.mark.parametrize("fmt", ["WAV", "WAVEX"])
@pytest.mark.parametrize("subtype, tolerance", WIDTHS)
def test_every_width_decodes_to_the_written_samples(subtype, tolerance, fmt):
    samples = tone(8000, channels=2)
    decoded, rate = decode_wav(tf.constant(wav_bytes(samples, 8000, subtype, fmt)))
    assert int(rate) == 8000 and decoded.shape == samples.shape
    np.testing.assert_allclose(decoded.numpy(), samples, atol=tolerance)


def test_stdlib_wave_files_and_many_channels():
    ints = (np.arange(60).reshape(10, 6) * 100 - 3000).astype("int16")
    decoded, rate = decode_wav(tf.constant(stdlib_wav_bytes(ints, 44100, 6)))
    assert int(rate) == 44100
    np.testing.assert_allclose(decoded.numpy(), ints / 32768.0, atol=1e-7)


def test_chunks_before_data_and_odd_sized_chunks_are_skipped():
    payload = (np.arange(8, dtype="<i2") * 1000).tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    odd = b"abc"  # odd size: one pad byte follows
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"LIST" + struct.pack("<I", 3) + odd + b"\0"
    body += b"data" + struct.pack("<I", len(payload)) + payload
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    decoded, rate = decode_wav(tf.constant(data))
    assert int(rate) == 16000
    np.testing.assert_allclose(decoded.numpy()[:, 0], np.arange(8) * 1000 / 32768.0, atol=1e-7)


def test_a_cut_short_file_is_reported_but_a_streamed_size_reads_what_is_there():
    data = wav_bytes(tone(8000), 8000)
    header = wav_header(tf.constant(data[:-100]))
    assert b"truncated file" in header["reason"].numpy() and b"claims 4000 bytes" in header["reason"].numpy()
    streamed = data[:40] + struct.pack("<I", 0xFFFFFFFF) + data[44:-100]
    decoded, _ = decode_wav(tf.constant(streamed))
    assert decoded.shape[0] == (len(data) - 44 - 100) // 2


@pytest.mark.parametrize("rate, channels, reason", [
    (2_000_000_000, 1, b"WAV sample rate 2000000000 Hz is out of range (1 to 384000)"),
    (8000, 5000, b"WAV header claims 5000 channels (at most 64)"),
])
def test_hostile_headers_are_refused_before_anything_is_allocated(rate, channels, reason):
    samples = np.zeros(1000, "<i2").tobytes()
    data = (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, channels,
            rate, rate * 2 * channels % 2**32, 2 * channels, 16) + b"data" + struct.pack("<I", len(samples)) + samples)
    assert wav_header(tf.constant(data))["reason"].numpy() == reason
    from mmkeras.data import audio
    from mmkeras.specs import AudioSpec

    clips, present, reasons = audio.decode_clips(tf.constant([data, data]), AudioSpec(sample_rate=16000, duration=1.0))
    assert reasons.numpy().tolist() == [reason, reason] and not clips.numpy().any()


def test_an_empty_data_chunk_is_not_present_audio():
    data = wav_bytes(tone(8000), 8000)[:44]
    data = data[:40] + struct.pack("<I", 0)
    assert b"no audio samples" in wav_header(tf.constant(data))["reason"].numpy()


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "not a WAV file"),
        (b"OggS" + b"\0" * 60, "not a WAV file"),
        (b"RIFF\x04\0\0\0WAVE", "no fmt chunk"),
        (b"RIFF\x1c\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8), "no data chunk"),
        (b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 2, 1, 8000, 8000, 1, 4) + b"data\0\0\0\0",
         "unsupported WAV encoding"),
    ],
)
def test_bad_bytes_give_a_reason_and_a_named_error(data, reason):
    header = wav_header(tf.constant(data))
    assert not bool(header["ok"]) and reason in header["reason"].numpy().decode()
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Input voice: .*{reason}"):
        decode_wav(tf.constant(data), name="voice")


def test_decodes_inside_a_graph():
    graph_decode = tf.function(lambda data: decode_wav(data)[0], input_signature=[tf.TensorSpec([], tf.string)])
    samples = tone(8000, channels=2)
    np.testing.assert_allclose(graph_decode(tf.constant(wav_bytes(samples, 8000, "PCM_24"))).numpy(), samples, atol=1e-6)


def test_the_served_path_names_the_input_for_a_header_bomb():
    import resource

    from mmkeras.preprocessor import Preprocessor

    samples = np.zeros(1000, "<i2").tobytes()
    bomb = (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1,
            200_000_000, 400_000_000, 2, 16) + b"data" + struct.pack("<I", len(samples)) + samples)
    pre = Preprocessor({"audio": {"sample_rate": 16000, "duration": 1.0}})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input audio: WAV sample rate 200000000 Hz is out of range"):
        pre.preprocess_batch({"audio": tf.constant([bomb])})
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"
