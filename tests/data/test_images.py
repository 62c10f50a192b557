import numpy as np
import pytest
import tensorflow as tf
from media import image_bytes

from mmkeras.data.images import decode_image
from mmkeras.data.images import image_check
from mmkeras.specs import ImageSpec

FORMATS = ["PNG", "JPEG", "GIF", "BMP"]
MODES = {"PNG": ["L", "LA", "RGB", "RGBA"], "JPEG": ["L", "RGB"], "GIF": ["L", "RGB"], "BMP": ["L", "RGB", "RGBA"]}


@pytest.mark.parametrize("fmt, mode", [(f, m) for f in FORMATS for m in MODES[f]])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_format_and_mode_decodes_to_the_configured_channels(fmt, mode, channels):
    data = image_bytes(fmt, mode)
    ok, reason = image_check(tf.constant(data))
    assert bool(ok), reason
    pixels = decode_image(tf.constant(data), ImageSpec(height=6, width=5, channels=channels)).numpy()
    assert pixels.shape == (6, 5, channels) and pixels.dtype == np.float32
    assert 0.0 <= pixels.min() and pixels.max() <= 1.0 and pixels.std() > 0.01


def test_lossless_pixels_survive_exactly_at_native_size():
    array = (np.arange(48).reshape(4, 4, 3) * 5).astype("uint8")
    from PIL import Image
    import io
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    pixels = decode_image(tf.constant(buffer.getvalue()), ImageSpec(height=4, width=4, channels=3)).numpy()
    np.testing.assert_allclose(pixels, array / 255.0, atol=1e-6)


def test_grey_to_rgb_repeats_and_rgb_to_grey_uses_luma():
    grey = decode_image(tf.constant(image_bytes("PNG", "L")), ImageSpec(height=12, width=10, channels=3)).numpy()
    np.testing.assert_allclose(grey[..., 0], grey[..., 2])
    colour = decode_image(tf.constant(image_bytes("PNG", "RGB")), ImageSpec(height=12, width=10, channels=3)).numpy()
    luma = decode_image(tf.constant(image_bytes("PNG", "RGB")), ImageSpec(height=12, width=10, channels=1)).numpy()
    np.testing.assert_allclose(luma[..., 0], colour @ [0.2989, 0.587, 0.114], atol=1 / 255 + 1e-3)


def test_aspect_preserving_resize_pads():
    wide = image_bytes("PNG", "RGB", size=(20, 5))
    pixels = decode_image(tf.constant(wide), ImageSpec(height=8, width=8, channels=3, preserve_aspect_ratio=True))
    pixels = pixels.numpy()
    assert np.all(pixels[0] == 0) and np.all(pixels[-1] == 0) and pixels[4].std() > 0


@pytest.mark.parametrize("data", [b"", b"hello world, not an image", b"RIFF" + b"\0" * 40])
def test_non_images_are_reported(data):
    ok, reason = image_check(tf.constant(data))
    assert not bool(ok) and "not an image file" in reason.numpy().decode()


@pytest.mark.parametrize("fmt, mode", [(f, m) for f in ["PNG", "GIF", "BMP"] for m in MODES[f]])
def test_rgb_output_matches_pil_conversion_for_lossless_formats(fmt, mode):
    import io
    from PIL import Image

    data = image_bytes(fmt, mode)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), "float32") / 255.0
    pixels = decode_image(tf.constant(data), ImageSpec(height=12, width=10, channels=3)).numpy()
    np.testing.assert_allclose(pixels, expected, atol=1e-6)


def test_a_huge_image_is_refused_from_its_header_in_training_and_serving(tmp_path):
    import io
    import resource

    from PIL import Image

    import mmkeras
    from mmkeras.data.images import image_check
    from mmkeras.data.images import image_size

    buffer = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buffer, format="PNG")
    bomb = buffer.getvalue()  # about 140 KB on disk, 144 million pixels
    assert [int(v) for v in image_size(tf.constant(bomb))] == [12000, 12000]
    assert b"image is 12000 x 12000 pixels" in image_check(tf.constant(bomb))[1].numpy()
    pre = mmkeras.Preprocessor({"image": {"height": 8, "width": 8, "channels": 1}}, label_names=["a"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input image: image is 12000 x 12000 pixels"):
        pre.preprocess_batch({"image": tf.constant([bomb])})
    (tmp_path / "bomb.png").write_bytes(bomb)
    (tmp_path / "ok.png").write_bytes(image_bytes("PNG", "L"))
    rows = [{"image": "bomb.png", "label": "a"}] + [{"image": "ok.png", "label": "a"}] * 3
    ds = mmkeras.make_dataset(mmkeras.read_manifest(rows, base_dir=str(tmp_path)), pre, batch_size=2,
                              on_bad_record="skip")
    assert ds.bad_records.rows == [1] and "12000 x 12000" in ds.bad_records.summary() and ds.num_examples == 3
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"
