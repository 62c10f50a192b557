"""The video kind: an animated GIF per example → `frames` images, and a per-frame CNN → LSTM encoder.

Video is a sequence of images. Each clip is an animated GIF, decoded by `tf.io.decode_gif`, a
core TensorFlow op, so stock TF Serving runs the served graph and a client sends the file's
bytes. `frames` frames are taken evenly over the clip (or every `stride`-th from the start),
resized and scaled to [0, 1]. A clip with fewer frames is padded with blank frames, and the
model input carries which frames are real in one extra channel (a plane of ones), which the
encoder turns into the recurrent layer's mask (`FrameMask`).

MP4/WebM and other compressed video are not read: convert them to GIF (e.g. `ffmpeg -i clip.mp4
-vf fps=8,scale=64:-1 clip.gif`), for training and serving alike.
"""

import dataclasses

import keras
import tensorflow as tf

from mmkeras import pretrained
from mmkeras import specs as specs_lib
from mmkeras.layers import FrameMask
from mmkeras.modalities.image import ImageSpec
from mmkeras.modalities.image import build_image_encoder
from mmkeras.modalities.modality import Modality

KIND = "video"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")


@dataclasses.dataclass
class VideoSpec:
    """Settings of a video modality (animated GIF files).

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
        encoder: dict. A pretrained encoder for the whole clip instead of the default one:
            `{source: .keras file | SavedModel folder, trainable: false}` taking
            `(frames, height, width, channels + 1)` (the last channel is the frame mask).

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
    if spec.encoder:  # a pretrained encoder instead (mmkeras.pretrained)
        return pretrained.build_pretrained_encoder(spec, p)
    (frames, height, width, planes), _ = VideoModality.model_input(spec)
    clip = keras.Input((frames, height, width, planes), name=p)  # (batch, T, H, W, C + 1)
    pictures, mask = FrameMask(name=f"{p}_frame_mask")(clip)  # (batch, T, H, W, C), (batch, T)
    per_frame = build_image_encoder(ImageSpec(height=height, width=width, channels=spec.channels,
                                              filters=spec.filters, pooling="grid", grid=spec.grid, dropout=0.0,
                                              augment={}),
                                    name=f"{p}_frame")
    x = keras.layers.TimeDistributed(per_frame, name=f"{p}_frames")(pictures)  # (batch, T, filters[-1])
    layer = keras.layers.GRU if spec.recurrent == "gru" else keras.layers.LSTM
    x = layer(spec.units, name=f"{p}_{spec.recurrent}")(x, mask=mask)  # (batch, units)
    x = keras.layers.Dropout(spec.dropout, name=f"{p}_dropout")(x)
    return keras.Model(clip, x, name=f"{p}_encoder")


class VideoModality(Modality):
    """Video clips: the cell names an animated GIF; decoded per example in TF ops.

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
    spec_class = VideoSpec
    per_example = True

    @classmethod
    def model_input(cls, spec):
        return (spec.frames, spec.height, spec.width, spec.channels + 1), "float32"

    @classmethod
    def build_encoder(cls, spec, name):
        return build_video_encoder(spec, name=name)

    def decode_one(self, data):
        spec = self.spec
        present = tf.strings.length(data) > 0
        is_gif = tf.reduce_any([tf.strings.substr(data, 0, 6) == s for s in GIF_SIGNATURES])
        reason = tf.where(tf.logical_and(present, tf.logical_not(is_gif)),
                          "not an animated GIF (convert other video to GIF, e.g. with ffmpeg)", "")
        usable = tf.logical_and(present, is_gif)

        def decoded():
            frames = tf.io.decode_gif(data)  # (N, h, w, 3) uint8
            count = tf.shape(frames)[0]
            if spec.sampling == "even":
                taken = tf.minimum(count, spec.frames)
                index = tf.cast(tf.round(tf.linspace(0.0, tf.cast(count - 1, tf.float32), taken)), tf.int32)
            else:
                index = tf.range(0, count, spec.stride)[: spec.frames]
            pictures = tf.image.resize(tf.cast(tf.gather(frames, index), tf.float32) / 255.0,
                                       [spec.height, spec.width])
            if spec.channels == 1:
                pictures = tf.image.rgb_to_grayscale(pictures)
            clip = tf.concat([pictures, tf.ones_like(pictures[..., :1])], axis=-1)  # the mask plane
            padding = spec.frames - tf.shape(clip)[0]
            return tf.pad(clip, [[0, padding], [0, 0], [0, 0], [0, 0]])

        shape, _ = self.model_input(spec)
        clip = tf.cond(usable, decoded, lambda: tf.zeros(shape, tf.float32))
        return tf.ensure_shape(clip, shape), present, reason

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
