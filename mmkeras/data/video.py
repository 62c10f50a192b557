"""Compressed video files (MP4/MOV, WebM/MKV, AVI) and frame folders, read in Python for training.

PyAV (`pip install "mmkeras[video]"`) decodes the containers: a clip's frames for a video
modality (`mmkeras.modalities.video`), or its soundtrack for an audio modality. Neither runs in
a served graph: TF Serving gets GIF bytes or frames, and WAV bytes.
"""

import io
import os
import re
import wave

import numpy as np

#: Compressed video containers: name → test of a file's first 12 bytes.
CONTAINERS = {
    "MP4/MOV": lambda head: head[4:8] == b"ftyp",
    "WebM/MKV": lambda head: head.startswith(b"\x1a\x45\xdf\xa3"),
    "AVI": lambda head: head.startswith(b"RIFF") and head[8:12] == b"AVI ",
}
#: Image files a frame folder may hold.
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def sniff_container(path):
    """The container name ("MP4/MOV", "WebM/MKV", "AVI") of the file at `path`, or None."""
    with open(path, "rb") as f:
        head = f.read(12)
    return next((name for name, test in CONTAINERS.items() if test(head)), None)


def pyav_missing():
    """Why compressed video cannot be read here (PyAV not installed), or None when it can."""
    try:
        import av  # noqa: F401
    except ImportError:
        return 'reading MP4/WebM/AVI needs PyAV: pip install "mmkeras[video]"'
    return None


def frame_files(folder):
    """A frame folder's image files in natural order (frame2 before frame10)."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(FRAME_EXTENSIONS) and not n.startswith(".")]
    names.sort(key=lambda n: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", n)])
    return [os.path.join(folder, n) for n in names]


def _opened(path, what):
    """PyAV's container for `path`, or ValueError naming what could not be decoded."""
    missing = pyav_missing()
    if missing:
        raise ValueError(missing)
    import av

    try:
        return av.open(path)
    except (av.FFmpegError, OSError) as error:
        raise ValueError(f"{what} could not be decoded ({getattr(error, 'strerror', None) or error})") from None


def decode_frames(path, pick):
    """Some of a video file's frames as uint8 RGB arrays `(h, w, 3)`.

    Args:
        path: str. The file.
        pick: fn(frame count) → the indices wanted (ascending).

    Raises ValueError with the reason when the file does not decode.
    """
    import av

    with _opened(path, "video") as container:
        try:
            if not container.streams.video:
                raise ValueError("video could not be decoded (the file has no video stream)")
            stream = container.streams.video[0]
            count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            wanted = set(int(i) for i in pick(count))
            container.seek(0)
            frames = [frame.to_ndarray(format="rgb24")
                      for i, frame in enumerate(container.decode(stream)) if i in wanted]
        except av.FFmpegError as error:
            raise ValueError(f"video could not be decoded ({getattr(error, 'strerror', None) or error})") from None
    if not frames:
        raise ValueError("video could not be decoded (no frames)")
    return frames


def soundtrack_wav(path):
    """A video file's first audio track as 16-bit PCM WAV bytes (its own rate and channels).

    Raises ValueError when the file has no audio track or it does not decode.
    """
    import av

    with _opened(path, "soundtrack") as container:
        if not container.streams.audio:
            raise ValueError("the video file has no audio track")
        stream = container.streams.audio[0]
        try:
            resampler = av.AudioResampler(format="fltp")  # planar float: (channels, samples) per frame
            chunks = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray() for out in resampler.resample(None)]
        except av.FFmpegError as error:
            raise ValueError(f"soundtrack could not be decoded ({getattr(error, 'strerror', None) or error})") from None
        rate = stream.rate
    if not chunks:
        raise ValueError("soundtrack could not be decoded (no samples)")
    samples = np.concatenate(chunks, axis=1).T  # (samples, channels)
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as f:
        f.setnchannels(pcm.shape[1])
        f.setsampwidth(2)
        f.setframerate(int(rate))
        f.writeframes(pcm.tobytes())
    return out.getvalue()
