"""Nucleus and cell masks of the centred cell in a May-Grünwald-Giemsa crop, from stain colour.

In MGG crops the nucleus is the darkest, purple structure (low green); white-cell cytoplasm is
lilac to blue: bluer relative to red than the red cells and the cream background around it.
The centred cell is the connected component nearest the image centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from simulate.filters import gaussian

HUE_BLUR_PX = 1.5            # at half size
CYTOPLASM_HUE_MARGIN = 12.0  # (blue - red) above the crop's median (background and red cells)


@dataclass(frozen=True)
class CellMasks:
    """Boolean masks (H, W) of one crop: ``nucleus`` within ``cell``; ``cytoplasm`` = cell - nucleus."""
    cell: np.ndarray
    nucleus: np.ndarray

    @property
    def cytoplasm(self) -> np.ndarray:
        return self.cell & ~self.nucleus


def _central_components(mask: np.ndarray, max_dist_frac: float) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    h, w = mask.shape
    centres = ndi.center_of_mass(mask, labels, range(1, n + 1))
    sizes = ndi.sum(mask, labels, range(1, n + 1))
    keep = np.zeros(n + 1, bool)
    best, best_d = 0, np.inf
    for i, ((cy, cx), size) in enumerate(zip(centres, sizes), start=1):
        d = np.hypot(cy - h / 2, cx - w / 2) / max(h, w)
        if size >= 0.002 * h * w and d < max_dist_frac:
            keep[i] = True
        if size >= 0.001 * h * w and d < best_d:
            best, best_d = i, d
    if not keep.any() and best:
        keep[best] = True
    return keep[labels]


def segment_cell(rgb: np.ndarray) -> CellMasks:
    """Masks of the centred cell of an RGB uint8 crop (H, W, 3); computed at half size for speed."""
    h, w = rgb.shape[:2]
    small = rgb[::2, ::2].astype(np.float32)
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    # Thresholds are relative to the crop's own distribution (the background and red cells fill
    # most of it), so they follow stain and exposure drift between smears.
    g_lo, g_mid = np.percentile(g, 1), np.percentile(g, 50)
    nucleus = g < g_lo + 0.5 * (g_mid - g_lo)
    nucleus = ndi.binary_opening(nucleus)
    nucleus = _central_components(nucleus, 0.22)
    nucleus = ndi.binary_fill_holes(ndi.binary_closing(nucleus, iterations=2))
    # Neutrophil cytoplasm is pink-lilac, only 10-25 units of (blue - red) above the red cells, and
    # its granules make the raw map speckled: threshold it after a 1.5 px (half-size) blur, or the
    # opening below erodes the speckled cytoplasm away (it then kept about a third of it).
    hue = gaussian(b - r, HUE_BLUR_PX)
    blueish = hue > np.percentile(hue, 50) + CYTOPLASM_HUE_MARGIN
    cell = ndi.binary_opening(blueish, iterations=2) | nucleus
    cell = ndi.binary_fill_holes(ndi.binary_closing(cell, iterations=2))
    labels, n = ndi.label(cell)
    if n:
        touching = np.unique(labels[nucleus & (labels > 0)])
        touching = touching[touching > 0]
        cell = np.isin(labels, touching) if touching.size else _central_components(cell, 0.25)
    cell |= nucleus
    if nucleus.any():
        # a white cell's cytoplasm rim is at most about one nucleus radius wide; beyond that the
        # blue-ish region is a touching neighbour
        nuc_r = np.sqrt(nucleus.sum() / np.pi)
        cell &= ndi.distance_transform_edt(~nucleus) < max(1.1 * nuc_r, 12.0)
    up = lambda m: np.repeat(np.repeat(m, 2, 0), 2, 1)[:h, :w]
    cell_full, nucleus_full = up(cell), up(nucleus)
    # refine the nucleus edge at full resolution with the same threshold
    fine = rgb[..., 1].astype(np.float32) < g_lo + 0.5 * (g_mid - g_lo)
    nucleus_full = ndi.binary_dilation(nucleus_full, iterations=1) & fine & cell_full
    return CellMasks(cell=cell_full, nucleus=nucleus_full)
