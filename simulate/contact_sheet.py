"""A contact sheet of every simulated feature at every grade, and of the rendered types, so a
person can judge realism. Rows: one transform (or render) each; columns: examples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from core.errors import InvalidInput
from simulate.cells import CropPool, make_cell
from simulate.renders import RENDERED_TYPES
from simulate.transforms import APPLY_ORDER, TRANSFORMS

TILE_PX = 128
LABEL_PX = 210


def make_contact_sheet(frame: pd.DataFrame, path: Path, seed: int = 0, examples: int = 2) -> Path:
    """Write a PNG: for each transform, ``examples`` real crops shown at grade 0 (original), 1, 2, 3."""
    pool = CropPool.from_frame(frame, ("train", "val", "test"), prefer_source="pbc")
    rows: list[tuple[str, list[np.ndarray]]] = []
    for name in APPLY_ORDER:
        t = TRANSFORMS[name]
        tiles = []
        for e in range(examples):
            cell_rng = np.random.default_rng([seed, e, len(rows)])
            path_, _ = pool.draw(t.cell_types[e % len(t.cell_types)], cell_rng)
            rgb, masks = pool.load(path_)
            tiles.append(rgb)
            for grade in (1, 2, 3):
                tiles.append(t.fn(rgb, masks, grade, np.random.default_rng([seed, e, grade])))
        rows.append((f"{t.feature_id}\n0 | 1 | 2 | 3", tiles))
    for cell_type in RENDERED_TYPES:
        tiles = [make_cell(pool, cell_type, {}, np.random.default_rng([seed, 99, i])).rgb for i in range(4 * examples)]
        rows.append((f"{cell_type} (rendered)", tiles))
    ncols = max(len(t) for _, t in rows)
    sheet = Image.new("RGB", (LABEL_PX + ncols * TILE_PX, len(rows) * TILE_PX + 24), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 4), "SIMULATED morphology (mdsdx simulate) from real healthy-donor crops", fill="black")
    for r, (label, tiles) in enumerate(rows):
        y = 24 + r * TILE_PX
        draw.text((6, y + TILE_PX // 2 - 10), label, fill="black")
        for c, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile).resize((TILE_PX, TILE_PX), Image.Resampling.LANCZOS), (LABEL_PX + c * TILE_PX, y))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return Path(path)


def make_mask_sheet(frame: pd.DataFrame, source: str, path: Path, seed: int = 0, n: int = 32,
                    segmenter: str = "pbc") -> Path:
    """Write a PNG of ``n`` crops of one source folder (e.g. "marrow/segmented_neutrophil"), each above
    the same crop with the masks every transform writes through: nucleus green, cytoplasm yellow.

    The transforms are only as good as these masks, and they were tuned on PBC crops; a person judges
    here, source by source, whether a simulated label can be trusted. ``segmenter``: a key of
    :data:`simulate.segment.SEGMENTERS`.
    """
    from simulate.segment import SEGMENTERS
    key = frame["source"] + "/" + frame["source_label"]
    paths = frame.loc[key == source, "path"].tolist()
    if not paths:
        raise InvalidInput(f"no crops of source {source!r}; known: {', '.join(sorted(key.unique()))}")
    chosen = np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False)
    per_row = 8
    rows = -(-len(chosen) // per_row)
    sheet = Image.new("RGB", (per_row * TILE_PX, rows * 2 * TILE_PX + 24), "white")
    ImageDraw.Draw(sheet).text((6, 4), f"{source}: segmentation masks (nucleus green, cytoplasm yellow)", fill="black")
    for k, i in enumerate(chosen):
        with Image.open(paths[i]) as im:
            rgb = np.asarray(im.convert("RGB"))
        masks = SEGMENTERS[segmenter](rgb)
        overlay = rgb.astype(np.float32)
        overlay[masks.nucleus] = 0.5 * overlay[masks.nucleus] + (0, 127, 0)
        overlay[masks.cytoplasm] = 0.5 * overlay[masks.cytoplasm] + (127, 127, 0)
        x, y = (k % per_row) * TILE_PX, 24 + (k // per_row) * 2 * TILE_PX
        for dy, tile in ((0, rgb), (TILE_PX, overlay.clip(0, 255).astype(np.uint8))):
            sheet.paste(Image.fromarray(tile).resize((TILE_PX, TILE_PX), Image.Resampling.LANCZOS), (x, y + dy))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return Path(path)
