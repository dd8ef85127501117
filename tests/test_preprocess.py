import io

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_cell
from models.errors import InvalidImage
from models.preprocess import ImageLimits, load_cell_image


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
