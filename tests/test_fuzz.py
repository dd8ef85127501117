"""In-process decoder fuzz: byte mutations of small valid cell images, through exactly what the
service runs on an upload (header check, then decode). The only error allowed out is the project's
own InvalidImage; anything else would be a 500. Slow (10,000 inputs): ``pytest -m slow tests/test_fuzz.py``."""
import io

import numpy as np
import pytest

from conftest import synthetic_cell

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _seeds() -> list[bytes]:
    from PIL import Image
    img = Image.fromarray(synthetic_cell(48, seed=1))
    out = []
    for fmt, kwargs in (("JPEG", {"quality": 85}), ("JPEG", {"progressive": True}), ("PNG", {}),
                        ("TIFF", {"compression": "tiff_deflate"}), ("TIFF", {}), ("BMP", {})):
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def mutated_image(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "header"]))
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and data:
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "header" and len(data) > 40:  # where sizes, offsets and counts live
            pos = draw(st.integers(0, 40))
            data[pos:pos + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(data)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # Pillow warns on odd files; in the service a warning is not an error
@settings(max_examples=10_000, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_image())
def test_decoder_raises_only_invalid_image(data):
    from core.errors import InvalidImage
    from core.preprocess import ImageLimits, declared_pixels, load_cell_image
    limits = ImageLimits(max_image_pixels=4096 * 4096)
    try:
        assert declared_pixels(data, "fuzz.img", limits) > 0
        crop = load_cell_image(data, 32, "fuzz.img", limits)
    except InvalidImage:
        return
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
