"""Helpers shared by the benchmarks: timing and the test images they run on."""
from __future__ import annotations

import io
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image


@contextmanager
def timed(label: str, results: dict):
    start = time.perf_counter()
    yield
    results[label] = time.perf_counter() - start


def test_crops(n: int, export_px: int | None = None) -> list[bytes]:
    """``n`` JPEG crops from the real test split (upscaled to ``export_px`` like a DI-60 export),
    or generated cells where ../shared/data is absent."""
    from core.datasets import default_data_root, load_pbc
    from core.preprocess import as_export
    root = default_data_root()
    out = []
    if (root / "pbc").is_dir():
        frame = load_pbc(root)
        paths = frame.loc[frame.split == "test", "path"].tolist()
        for i in range(n):
            data = Path(paths[i % len(paths)]).read_bytes()
            out.append(as_export(data, export_px) if export_px else data)
        return out
    rng = np.random.default_rng(0)
    for _ in range(n):
        arr = rng.integers(150, 255, (export_px or 256, export_px or 256, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out
