import io

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_cell
from core.errors import InvalidImage
from core.preprocess import ImageLimits, as_export, load_cell_image


def _jpeg(arr: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("size", [(256, 256), (360, 363), (363, 360)])
def test_any_input_size_gives_the_input_px(size):
    arr = synthetic_cell(px=size[1], height=size[0])
    out = load_cell_image(_jpeg(arr), 128)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8


def test_256_and_360_crops_of_one_cell_agree():
    """Antialiasing: the same cell exported at two resolutions looks the same at 128 px."""
    big = synthetic_cell(px=360, seed=1)
    small = np.asarray(Image.fromarray(big).resize((256, 256), Image.Resampling.LANCZOS))
    a = load_cell_image(_jpeg(big), 128).astype(float)
    b = load_cell_image(_jpeg(small), 128).astype(float)
    assert np.abs(a - b).mean() < 4.0


def test_an_analyser_export_of_a_shared_crop_decodes_like_the_crop():
    """``mdsdx evaluate cells --export-px 360`` and the benchmarks send shared crops down the export path."""
    crop = _jpeg(synthetic_cell(px=256, seed=2), quality=90)
    export = as_export(crop, 360)
    assert Image.open(io.BytesIO(export)).size == (360, 363) and Image.open(io.BytesIO(export)).format == "JPEG"
    a = load_cell_image(crop, 192, field_of_view=0.8).astype(float)
    b = load_cell_image(export, 192, field_of_view=0.8).astype(float)
    assert np.abs(a - b).mean() < 4.0


def test_png_and_paths(tmp_path):
    arr = synthetic_cell(px=200)
    p = tmp_path / "c.png"
    Image.fromarray(arr).save(p)
    assert load_cell_image(p, 96).shape == (96, 96, 3)


def test_not_an_image():
    with pytest.raises(InvalidImage, match="not a JPEG/PNG/TIFF/BMP image"):
        load_cell_image(b"hello, I am text", 128, name="cell_0007.jpg")


def test_truncated_jpeg():
    data = _jpeg(synthetic_cell(px=256))
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        load_cell_image(data[: len(data) // 2], 128, name="cut.jpg")


def test_size_and_pixel_limits():
    data = _jpeg(synthetic_cell(px=256))
    with pytest.raises(InvalidImage, match="byte limit"):
        load_cell_image(data, 128, limits=ImageLimits(max_image_bytes=100))
    with pytest.raises(InvalidImage, match="pixel limit"):
        load_cell_image(data, 128, limits=ImageLimits(max_image_pixels=100 * 100))


@pytest.mark.parametrize("size", [256, 360])
def test_field_of_view_is_the_central_share_at_higher_resolution(size):
    """field_of_view 0.5: the central half of the crop's side, at twice the resolution of the whole crop."""
    from core.preprocess import centre_crop, frame_px
    data = _jpeg(synthetic_cell(px=size, seed=2))
    assert frame_px(64, 0.5) == 128 and frame_px(192, 0.8) == 240
    half = load_cell_image(data, 64, field_of_view=0.5)
    whole = load_cell_image(data, 128)
    assert half.shape == (64, 64, 3)
    np.testing.assert_array_equal(half, centre_crop(whole, 64))
    assert np.array_equal(load_cell_image(data, 64, field_of_view=1.0), load_cell_image(data, 64))


def test_field_of_view_out_of_range():
    with pytest.raises(ValueError, match="field_of_view"):
        load_cell_image(_jpeg(synthetic_cell(px=64)), 32, field_of_view=1.5)


def test_training_warp_takes_the_central_window_of_a_larger_source():
    """The augmentation of a field-of-view model: a 64-px source in, its 32-px centre out, still centred
    after any rotation, flip and zoom (a red disc of radius 10 px at the centre stays under the centre)."""
    import tensorflow as tf

    from models.engine.train import augment_fn
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.zeros((64, 64, 3), np.uint8)
    img[:] = (30, 30, 220)
    img[np.hypot(yy - 31.5, xx - 31.5) < 10] = (220, 30, 30)
    tf.random.set_seed(0)
    out, _ = augment_fn(32, 64)(tf.constant(np.stack([img] * 16)), {})
    out = np.asarray(out)
    assert out.shape == (16, 32, 32, 3)
    centre = out[:, 14:18, 14:18].mean(axis=(1, 2))
    assert (centre[:, 0] > centre[:, 2] + 100).all()
    edge = out[:, 0, 0]
    assert (edge[:, 2] > edge[:, 0] + 100).all()  # the disc (radius 10 of a 32-px window) does not reach a corner


def test_rendition_jitter_softens_and_sharpens_and_recodes():
    """The training-time rendition jitter spreads an image's fine detail both ways around the original."""
    import tensorflow as tf

    from core.errors import InvalidInput
    from models.engine.train import TrainConfig, _rendition
    img = synthetic_cell(px=64, seed=3)
    batch = tf.constant(np.stack([img] * 32))
    assert np.array_equal(np.asarray(_rendition(batch)), np.stack([img] * 32).astype(np.float32))  # off by default
    tf.random.set_seed(0)
    out = np.asarray(_rendition(batch, sharpness_jitter=0.5, jpeg_quality_min=70))
    assert out.shape == (32, 64, 64, 3) and out.min() >= 0 and out.max() <= 255
    detail = lambda a: np.abs(np.diff(a.astype(float), axis=-2)).mean(axis=(-3, -2, -1))
    assert (detail(out) < detail(img) - 0.05).any() and (detail(out) > detail(img) + 0.05).any()
    for bad in ({"jpeg_quality_min": 99}, {"sharpness_jitter": 2.0}):
        with pytest.raises(InvalidInput, match="must lie between"):
            TrainConfig(**bad)
