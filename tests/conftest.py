"""Shared fixtures. Tests that read ../shared/data skip, with the reason, where it is absent."""
from __future__ import annotations

import numpy as np
import pytest

from models.datasets import default_data_root

DATA_ROOT = default_data_root()
needs_shared_data = pytest.mark.skipif(not (DATA_ROOT / "pbc").is_dir(),
                                       reason=f"{DATA_ROOT} is absent (a fresh machine has no shared data)")


@pytest.fixture(scope="session")
def data_root():
    if not (DATA_ROOT / "pbc").is_dir():
        pytest.skip(f"{DATA_ROOT} is absent (a fresh machine has no shared data)")
    return DATA_ROOT


def synthetic_cell(px: int = 256, seed: int = 0, height: int | None = None) -> np.ndarray:
    """A cell-like RGB uint8 image: pink background, a lilac cytoplasm disc and a purple nucleus."""
    rng = np.random.default_rng(seed)
    h, w = height or px, px
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2, w / 2
    r = np.hypot(yy - cy, xx - cx)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (232, 196, 200)
    img[r < 0.32 * px] = (214, 190, 214)
    nucleus = np.hypot(yy - cy + 0.06 * px, (xx - cx) * 1.3) < 0.16 * px
    img[nucleus] = (110, 60, 140)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
