"""One simulated cell: a real crop of the wanted type, or a procedural render, with dysmorphic
transforms applied at chosen grades, and its ground-truth labels.

:class:`CropPool` indexes real crops by type for one set of partitions and caches decoded crops
and their masks, so a cohort that reuses a crop segments it once.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image

from core.taxonomy import load_taxonomy
from simulate import renders
from simulate.segment import CellMasks, segment_cell
from simulate.transforms import APPLY_ORDER, TRANSFORMS

# Types drawn from real crops of another type before rendering (the render's donor or background).
RENDER_DONOR = {"VLY": "LY", "SMU": "LY", "TAG": "LP", "MEK": "LP"}


@dataclass
class SimulatedCell:
    """An RGB uint8 crop and its labels: ``features`` maps feature id -> grade (1..3)."""
    rgb: np.ndarray
    cell_type: str
    features: dict[str, int]
    source_file: str

    def feature_string(self) -> str:
        """``id:grade`` pairs joined by ``;`` (empty for a normal cell), the cells.csv format."""
        return ";".join(f"{k}:{v}" for k, v in sorted(self.features.items()))


@dataclass
class CropPool:
    """Real crops by type (abbreviation -> list of (path, file)), with a decode-and-segment cache."""
    by_type: dict[str, list[tuple[str, str]]]
    cache_size: int = 3000
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, splits: tuple[str, ...], prefer_source: str | None = None) -> "CropPool":
        """Crops of ``splits`` whose label is a single type (partial labels are not drawn).

        With ``prefer_source`` (``pbc``), a type that has crops from that source draws only those:
        a peripheral smear takes marrow crops (another magnification and stain) only for the
        types the peripheral set lacks, the blasts and artifacts.
        """
        by_type: dict[str, list[tuple[str, str]]] = {}
        preferred: set[str] = set()
        sources = frame["source"] if "source" in frame else pd.Series([None] * len(frame))
        for types, split, source in zip(frame["cell_types"], frame["split"], sources):
            if split in splits and len(types) == 1 and prefer_source and source == prefer_source:
                preferred.add(types[0])
        for path, file, types, split, source in zip(frame["path"], frame["file"], frame["cell_types"], frame["split"], sources):
            if split in splits and len(types) == 1:
                if prefer_source and types[0] in preferred and source != prefer_source:
                    continue
                by_type.setdefault(types[0], []).append((path, file))
        return cls(by_type)

    def available_types(self) -> set[str]:
        real = {t for t, v in self.by_type.items() if v}
        return real | {t for t, donor in RENDER_DONOR.items() if donor in real}

    def draw(self, cell_type: str, rng: np.random.Generator) -> tuple[str, str]:
        items = self.by_type.get(cell_type) or []
        if not items:
            raise KeyError(cell_type)
        return items[int(rng.integers(len(items)))]

    def load(self, path: str) -> tuple[np.ndarray, CellMasks]:
        """The decoded crop and its masks (segmented once, cached)."""
        rgb, masks = self.load_rgb(path), self._cache[path][1]
        if masks is None:
            masks = segment_cell(rgb)
            self._cache[path] = (rgb, masks)
        return rgb, masks

    def load_rgb(self, path: str) -> np.ndarray:
        """The decoded crop only (cached); segmentation is left until a transform needs it."""
        hit = self._cache.get(path)
        if hit is not None:
            self._cache.move_to_end(path)
            return hit[0]
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        self._cache[path] = (rgb, None)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return rgb


def _platelet_patches(pool: CropPool, rng: np.random.Generator, n: int = 12) -> list:
    patches = []
    for _ in range(n * 2):
        rgb, masks = pool.load(pool.draw("LP", rng)[0])
        patch = renders.platelet_patch(rgb, masks)
        if patch is not None and patch[1].shape[0] < rgb.shape[0] // 4:
            patches.append(patch)
        if len(patches) >= n:
            break
    return patches or [(np.full((9, 9, 3), 150, np.float32), np.ones((9, 9), np.float32))]


def make_cell(pool: CropPool, cell_type: str, features: dict[str, int], rng: np.random.Generator) -> SimulatedCell:
    """Draw a crop of ``cell_type`` and apply the transforms that label ``features`` ({id: grade}).

    Features that do not apply to the type, and more than one nucleus-shape transform, are
    dropped, so the returned labels are exactly what was drawn.
    """
    donor_type = RENDER_DONOR.get(cell_type, cell_type)
    path, file = pool.draw(donor_type, rng)
    needs_masks = cell_type in RENDER_DONOR or any(
        g > 0 and cell_type in t.cell_types for t in TRANSFORMS.values() for f, g in features.items() if f == t.feature_id)
    if not needs_masks:
        return SimulatedCell(rgb=pool.load_rgb(path), cell_type=cell_type, features={}, source_file=file)
    rgb, masks = pool.load(path)
    if cell_type == "VLY":
        rgb = renders.variant_lymphocyte(rgb, masks, rng)
    elif cell_type == "SMU":
        rgb = renders.smudge_cell(rgb, masks, rng)
    elif cell_type == "TAG":
        rgb = renders.platelet_aggregation(rgb, masks, _platelet_patches(pool, rng), rng)
    elif cell_type == "MEK":
        rgb = renders.megakaryocyte_fragment(rgb, masks, rng)
    by_feature = {t.feature_id: t for t in TRANSFORMS.values()}
    kept: dict[str, int] = {}
    nuclear_done = False
    for name in APPLY_ORDER:
        t = TRANSFORMS[name]
        grade = features.get(t.feature_id, 0)
        if grade <= 0 or cell_type not in t.cell_types or (t.nuclear and nuclear_done):
            continue
        rgb = t.fn(rgb, masks, int(grade), rng)
        if t.nuclear:
            nuclear_done = True
            masks = segment_cell(rgb)
        kept[t.feature_id] = int(grade)
    unknown = set(features) - set(by_feature)
    if unknown:
        raise ValueError(f"no transform simulates {sorted(unknown)}")
    return SimulatedCell(rgb=rgb, cell_type=cell_type, features=kept, source_file=file)


def simulated_feature_ids() -> list[str]:
    """Features the simulator can label, in taxonomy order."""
    ids = {t.feature_id for t in TRANSFORMS.values()}
    return [f for f in load_taxonomy().feature_ids if f in ids]


def label_vector(cell_type: str, features: dict[str, int]) -> np.ndarray:
    """Stage-1 feature targets (97,) of a simulated cell: 1 / 0 / -1 (unknown, masked).

    Every simulated feature that applies to the cell's type is known: present at grade >= 2,
    absent at 0. Decreased-granules grade 1 (Mori's "intermediate") is left unknown for the
    binary head; the AKIRA regressor learns the grades.
    """
    tax = load_taxonomy()
    out = np.full(len(tax.features), -1.0, np.float32)
    for t in TRANSFORMS.values():
        if cell_type in t.cell_types:
            grade = features.get(t.feature_id, 0)
            out[tax.feature_index(t.feature_id)] = -1.0 if grade == 1 and t.name == "decreased_granules" else float(grade > 0)
    return out


def allowed_types(cell_type: str, features: dict[str, int]) -> tuple[str, ...]:
    """The types a simulated cell may be called. A transform that rewrites the nucleus shape
    (pseudo-Pelger, round nucleus, hypersegmentation) also erases what tells a band from a
    segmented neutrophil, so such a neutrophil is only known to be one of the two."""
    nuclear = {t.feature_id for t in TRANSFORMS.values() if t.nuclear and cell_type in t.cell_types}
    if any(features.get(f, 0) > 0 for f in nuclear):
        return tuple(sorted({ct for t in TRANSFORMS.values() if t.nuclear for ct in t.cell_types}))
    return (cell_type,)


def parse_feature_string(text: str) -> dict[str, int]:
    """Inverse of :meth:`SimulatedCell.feature_string`."""
    if not isinstance(text, str) or not text.strip():
        return {}
    return {k: int(v) for k, v in (item.split(":") for item in text.split(";"))}
