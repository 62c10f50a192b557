"""The video kind: a clip per example → `frames` images, and a per-frame CNN → LSTM encoder.

Video is a sequence of images. A clip reaches the model in one of these forms:

- an animated GIF (`tf.io.decode_gif`, a core TensorFlow op): in manifests and in requests;
- a list of encoded JPEG/PNG frames: in requests (the `<name>_frames` input, one row of
  strings per example) and, in manifests, a folder holding the frames as image files;
- MP4, WebM, AVI, MOV or MKV files in manifests, decoded by PyAV (`pip install "mmkeras[video]"`).

Formats that only Python reads (compressed video, frame folders) are decoded when the manifest
is read, once per process (`FRAMES_CACHE`): the `frames` frames the spec samples are stored,
already resized, as a serialized float32 tensor that the pipeline's TF ops parse. A SavedModel
must not hold Python (a `tf.py_function` fails to load in another process), so a served model
takes GIF bytes or frames, never MP4: clients convert (e.g. `ffmpeg -i clip.mp4 -vf
fps=8,scale=64:-1 clip.gif`).

Frames are taken evenly over the clip (or every `stride`-th from the start), resized and scaled
to [0, 1]. A clip with fewer frames is padded with blank frames, and the model input carries
which frames are real in one extra channel (a plane of ones), which the encoder turns into the
recurrent layer's mask (`FrameMask`).
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.data import video as video_files
from mmkeras.data.file_cache import ConversionCache
from mmkeras.data.images import decode_image
from mmkeras.data.images import image_check
from mmkeras.layers import FrameMask
from mmkeras.modalities.image import ImageSpec
from mmkeras.modalities.image import build_image_encoder
from mmkeras.modalities.modality import Modality

KIND = "video"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
#: Leading bytes of a serialized `tf.string` vector (TensorProto dtype DT_STRING): a list of frames.
FRAME_LIST_HEAD = b"\x08\x07\x12"
#: Leading bytes of a serialized float32 tensor (DT_FLOAT): frames already sampled and resized.
DECODED_HEAD = b"\x08\x01\x12"
#: Leading bytes of a value that carries a reason instead of a clip (see `join_served`).
PROBLEM_HEAD = b"\x00mmkeras problem: "


@dataclasses.dataclass
class VideoSpec:
    """Settings of a video modality (animated GIFs, frame folders, MP4/WebM/AVI for training).

    Args:
        frames: int. Frames per clip given to the model.
        sampling: str. "even" (default: `frames` frames spread evenly over the whole clip) or
            "stride" (every `stride`-th frame from the first).
        stride: int. Step between frames for `sampling="stride"`.
        height: int. Frame height after resizing.
        width: int. Frame width after resizing.
        channels: int. 1 (grey) or 3 (RGB).
        filters: tuple of int. Filters of the per-frame Conv2D blocks (the image branch's).
        grid: int. Each frame's last feature map is averaged to `grid` x `grid` cells and
            flattened, so where things are in the frame (and so how they move) is kept.
        recurrent: str. "lstm" or "gru" over the frames.
        units: int. Width of the recurrent layer.
        dropout: float. Dropout on the encoder's output vector.
        encoder: dict. A pretrained image encoder run on every frame instead of the Conv2D
            blocks, with the image kind's settings (`{source: keras.applications:NAME |
            keras_hub:PRESET | SavedModel folder | .keras file, trainable: false, ...}`; see
            `mmkeras.pretrained`); the masked LSTM/GRU then runs over its frame vectors.

    Example:

    >>> VideoModality.model_input(VideoSpec(frames=4, height=8, width=8, channels=1))
    ((4, 8, 8, 2), 'float32')
    """

    kind = KIND
    frames: int = 8
    sampling: str = "even"
    stride: int = 1
    height: int = 32
    width: int = 32
    channels: int = 3
    filters: tuple = (16, 32)
    grid: int = 2
    recurrent: str = "lstm"
    units: int = 32
    dropout: float = 0.1
    encoder: dict = None

    def __post_init__(self):
        self.filters = tuple(self.filters)
        specs_lib.check_choice("sampling", self.sampling, ("even", "stride"))
        specs_lib.check_choice("recurrent", self.recurrent, ("lstm", "gru"))
        specs_lib.check_choice("channels", self.channels, (1, 3))


def build_video_encoder(spec=None, **options):
    """Video encoder: clip → `TimeDistributed(image branch)` per frame → masked LSTM/GRU → vector.

    Args:
        spec: `VideoSpec`. Settings; alternatively pass VideoSpec's fields as keyword options.
        **options: VideoSpec fields, and `name` (the modality name, default "video").

    Example:

    >>> encoder = build_video_encoder(frames=3, height=8, width=8, channels=1, filters=(4,), units=5)
    >>> tuple(encoder.input.shape), tuple(encoder.output.shape)
    ((None, 3, 8, 8, 2), (None, 5))
    """
    spec, p = specs_lib.resolve_spec(spec, options, KIND)
    (frames, height, width, planes), _ = VideoModality.model_input(spec)
    clip = keras.Input((frames, height, width, planes), name=p)  # (batch, T, H, W, C + 1)
    pictures, mask = FrameMask(name=f"{p}_frame_mask")(clip)  # (batch, T, H, W, C), (batch, T)
    if spec.encoder:  # a pretrained image encoder per frame (mmkeras.pretrained); its layers keep the modality's name
        per_frame = pretrained.build_pretrained_encoder(
            ImageSpec(height=height, width=width, channels=spec.channels, encoder=spec.encoder, augment={}), p)
        per_frame.name = f"{p}_frame_encoder"
    else:
        per_frame = build_image_encoder(ImageSpec(height=height, width=width, channels=spec.channels,
                                                  filters=spec.filters, pooling="grid", grid=spec.grid, dropout=0.0,
                                                  augment={}),
                                        name=f"{p}_frame")
    x = keras.layers.TimeDistributed(per_frame, name=f"{p}_frames")(pictures)  # (batch, T, filters[-1])
    layer = keras.layers.GRU if spec.recurrent == "gru" else keras.layers.LSTM
    x = layer(spec.units, name=f"{p}_{spec.recurrent}")(x, mask=mask)  # (batch, units)
    x = keras.layers.Dropout(spec.dropout, name=f"{p}_dropout")(x)
    return keras.Model(clip, x, name=f"{p}_encoder")


def frame_indices(count, spec):
    """Which of a clip's `count` frames the spec takes (NumPy; the TF ops take the same ones).

    Example:

    >>> frame_indices(7, VideoSpec(frames=4)).tolist(), frame_indices(7, VideoSpec(frames=4, sampling="stride", stride=3)).tolist()
    ([0, 2, 4, 6], [0, 3, 6])
    """
    if spec.sampling == "even":
        return np.round(np.linspace(0.0, count - 1, min(count, spec.frames), dtype="float32")).astype("int64")
    return np.arange(0, count, spec.stride)[: spec.frames]


def _frame_indices_tf(count, spec):
    if spec.sampling == "even":
        taken = tf.minimum(count, spec.frames)
        return tf.cast(tf.round(tf.linspace(0.0, tf.cast(count - 1, tf.float32), taken)), tf.int32)
    return tf.range(0, count, spec.stride)[: spec.frames]


def _unit_frames(frames, spec):
    """uint8 `(n, h, w, 3)` frames → float32 `(n, height, width, 3)` in [0, 1]: the spec's size."""
    return tf.image.resize(tf.cast(frames, tf.float32) / 255.0, [spec.height, spec.width])


# ----------------------------------------------------------------- formats only Python reads
def _decoded_bytes(frames):
    """Sampled, resized frames (float32 `(n, height, width, 3)`) → the bytes the pipeline parses."""
    return tf.make_tensor_proto(np.asarray(frames, "float32")).SerializeToString()


def _decode_compressed(path, spec):
    frames = video_files.decode_frames(path, lambda count: frame_indices(count, spec))
    return _decoded_bytes(_unit_frames(np.stack(frames), spec))


def _decode_folder(folder, spec):
    files = video_files.frame_files(folder)
    if not files:
        raise ValueError(f"folder has no frames (expected image files: {', '.join(video_files.FRAME_EXTENSIONS)})")
    frames = []
    for index in frame_indices(len(files), spec):
        with open(files[index], "rb") as f:
            data = tf.constant(f.read())
        ok, reason = image_check(data)
        if not ok:
            raise ValueError(f"frame {os.path.basename(files[index])}: {reason.numpy().decode()}")
        frames.append(_frame_pixels(data, spec))
    return _decoded_bytes(tf.stack(frames))


def _frame_pixels(data, spec):
    """One encoded frame → float32 `(height, width, 3)` in [0, 1], as a GIF's frames are made."""
    return decode_image(data, ImageSpec(height=spec.height, width=spec.width, channels=3, augment={}))


def _convert(path, frames, sampling, stride, height, width):
    spec = VideoSpec(frames=frames, sampling=sampling, stride=stride, height=height, width=width)
    return _decode_folder(path, spec) if os.path.isdir(path) else _decode_compressed(path, spec)


#: Frame folders and compressed video, decoded once per process into what the pipeline parses.
FRAMES_CACHE = ConversionCache("frames", ".frames", _convert)


class VideoModality(Modality):
    """Video clips: animated GIFs, frame lists, frame folders and (for training) MP4/WebM/AVI files.

    Example:

    >>> import io, numpy as np, tensorflow as tf
    >>> from PIL import Image
    >>> pictures = [Image.fromarray(np.full((4, 4), 60 * i, "uint8")) for i in range(3)]
    >>> gif = io.BytesIO()
    >>> pictures[0].save(gif, "GIF", save_all=True, append_images=pictures[1:])
    >>> video = VideoModality("clip", VideoSpec(frames=4, height=2, width=2, channels=1))
    >>> clip, present, reason = video.decode_one(tf.constant(gif.getvalue()))
    >>> [round(float(v), 2) for v in clip[:, 0, 0, 0]], clip[:, 0, 0, 1].numpy().tolist()  # grey, mask
    ([0.0, 0.24, 0.47, 0.0], [1.0, 1.0, 1.0, 0.0])
    """

    kind = KIND
    training_corruption = "frames"
    spec_class = VideoSpec
    per_example = True
    reads_folders = True
    takes_pixel_scaling = True

    @classmethod
    def pretrained_builders(cls):
        from mmkeras.modalities.image import ImageModality

        return ImageModality.pretrained_builders()  # run per frame by build_video_encoder

    @classmethod
    def model_input(cls, spec):
        return (spec.frames, spec.height, spec.width, spec.channels + 1), "float32"

    @classmethod
    def build_encoder(cls, spec, name):
        return build_video_encoder(spec, name=name)

    # ----------------------------------------------------------------- manifests (Python)
    def check_value(self, value, path):
        """Frame folders and MP4/WebM/AVI files are decoded here, once (`FRAMES_CACHE`); GIFs pass."""
        if not value:
            return value, None
        if not os.path.isdir(value):
            container = video_files.sniff_container(value)
            if container is None:
                return value, None  # a GIF, or bytes `decode_one` gives the reason for
            missing = video_files.pyav_missing()
            if missing:
                return value, (f"{container} file: {missing} (or convert the clips to GIF: "
                               "ffmpeg -i clip.mp4 -vf fps=8,scale=64:-1 clip.gif)")
        spec = self.spec
        try:
            return FRAMES_CACHE.converted(value, spec.frames, spec.sampling, spec.stride, spec.height,
                                          spec.width), None
        except ValueError as error:
            return value, str(error)

    # ----------------------------------------------------------------- served inputs
    @property
    def frames_input(self):
        """Name of the served input that takes a clip as a list of encoded frames."""
        return f"{self.name}_frames"

    def served_inputs(self):
        return {self.name: self.name, self.frames_input: self.name}

    def served_rank(self, served):
        return 2 if served == self.frames_input else 1

    def join_served(self, raw):
        """GIF bytes (`<name>`) and frame lists (`<name>_frames`, `[batch, frames]`, "" padding)
        → one `[batch]` string per clip; an example with both is refused."""
        gif, frames = raw.get(self.name), raw.get(self.frames_input)
        if gif is None and frames is None:
            return None
        if frames is None:
            return gif

        def listed(row):
            kept = tf.boolean_mask(row, tf.strings.length(row) > 0)
            return tf.cond(tf.size(kept) > 0, lambda: tf.io.serialize_tensor(kept), lambda: tf.constant(""))

        frames = tf.map_fn(listed, frames, fn_output_signature=tf.string)
        if gif is None:
            return frames
        both = tf.logical_and(tf.strings.length(gif) > 0, tf.strings.length(frames) > 0)
        problem = PROBLEM_HEAD + (f"send a clip either as GIF bytes ({self.name}) or as frames "
                                  f"({self.frames_input}), not both").encode()
        return tf.where(both, problem, tf.where(tf.strings.length(gif) > 0, gif, frames))

    # ----------------------------------------------------------------- decoding (TF)
    def decode_one(self, data):
        spec = self.spec
        shape, _ = self.model_input(spec)
        head = tf.strings.substr(data, 0, 3)
        forms = [  # (test, fn → (RGB frames (n, height, width, 3) in [0, 1], reason))
            (tf.strings.substr(data, 0, len(PROBLEM_HEAD)) == PROBLEM_HEAD, lambda: self._problem(data)),
            (tf.reduce_any([tf.strings.substr(data, 0, 6) == s for s in GIF_SIGNATURES]), lambda: self._gif(data)),
            (head == FRAME_LIST_HEAD, lambda: self._frame_list(data)),
            (head == DECODED_HEAD, lambda: (tf.ensure_shape(tf.io.parse_tensor(data, tf.float32),
                                                            [None, spec.height, spec.width, 3]), tf.constant(""))),
        ]
        present = tf.strings.length(data) > 0
        forms = [(tf.logical_and(present, test), fn) for test, fn in forms]
        unknown = tf.where(present, "not a video clip (expected an animated GIF, or a list of JPEG/PNG frames; "
                                    "convert other video to GIF, e.g. with ffmpeg)", "")
        pictures, reason = tf.case(forms, default=lambda: self._nothing(unknown), exclusive=False)
        if spec.channels == 1:
            pictures = tf.image.rgb_to_grayscale(pictures)
        clip = tf.concat([pictures, tf.ones_like(pictures[..., :1])], axis=-1)  # the mask plane
        clip = tf.pad(clip, [[0, spec.frames - tf.shape(clip)[0]], [0, 0], [0, 0], [0, 0]])
        clip = tf.where(tf.strings.length(reason) > 0, tf.zeros(shape, tf.float32), clip)
        return tf.ensure_shape(clip, shape), present, reason

    def _nothing(self, reason):
        return tf.zeros([0, self.spec.height, self.spec.width, 3], tf.float32), reason

    def _problem(self, data):
        return self._nothing(tf.strings.substr(data, len(PROBLEM_HEAD), -1))

    def _gif(self, data):
        def decoded():
            frames = tf.io.decode_gif(data)  # (N, h, w, 3) uint8
            index = _frame_indices_tf(tf.shape(frames)[0], self.spec)
            return _unit_frames(tf.gather(frames, index), self.spec), tf.constant("")

        # The image kind's header check first: a GIF whose screen claims 65535 x 65535 is refused
        # before the decoder allocates it, with the image kind's limit and words.
        ok, reason = image_check(data)
        return tf.cond(ok, decoded, lambda: self._nothing(reason))

    def _frame_list(self, data):
        frames = tf.ensure_shape(tf.io.parse_tensor(data, tf.string), [None])
        frames = tf.gather(frames, _frame_indices_tf(tf.size(frames), self.spec))
        ok, reasons = tf.map_fn(image_check, frames, fn_output_signature=(tf.bool, tf.string))
        first_bad = tf.argmin(tf.cast(ok, tf.int32))
        reason = tf.strings.join(["frame ", tf.strings.as_string(first_bad), " of the list: ",
                                  tf.gather(reasons, first_bad)])

        def decoded():
            pixels = tf.map_fn(lambda f: _frame_pixels(f, self.spec), frames, fn_output_signature=tf.TensorSpec(
                [self.spec.height, self.spec.width, 3], tf.float32))
            return pixels, tf.constant("")

        return tf.cond(tf.reduce_all(ok), decoded, lambda: self._nothing(reason))

    def attribution_baseline(self, inputs):
        """Black frames; the frame-mask plane (the last channel) stays as it was."""
        baseline = np.zeros_like(inputs)
        baseline[..., -1] = inputs[..., -1]
        return baseline

    def describe_attribution(self, attribution, inputs, on_layer):
        """Per frame, and the heat map of the frame that counts most (pixels, channels summed)."""
        pixels = attribution[..., :-1]
        per_frame = pixels.reshape(len(pixels), -1).sum(axis=1)
        top = int(np.argmax(np.abs(per_frame)))
        return {"unit": "frame", "labels": [f"frame {i}" for i in range(len(per_frame))], "scores": per_frame,
                "map": pixels[top].sum(axis=-1), "map_axes": (f"row (frame {top})", "column"),
                "picture": inputs[top, ..., :-1]}

    def corruptions(self):
        def frames_lost(clips, rng):
            lost = rng.random(clips.shape[:2]) < 0.5  # half the frames gone, mask included
            return clips * ~lost[:, :, None, None, None]

        def noise(clips, rng):
            out = clips.copy()
            pixels = (clips[..., :-1] + rng.normal(0, 0.3, clips[..., :-1].shape)).clip(0, 1)
            out[..., :-1] = pixels * clips[..., -1:]  # padding frames stay blank
            return out

        return {"half_frames_lost": frames_lost, "noise_0.3": noise}
