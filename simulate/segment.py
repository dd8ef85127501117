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


def segment_marrow_cell(rgb: np.ndarray) -> CellMasks:
    """Masks of the centred cell of a crowded bone-marrow crop (H, W, 3 uint8).

    :func:`segment_cell` thresholds against the crop's median, which on a peripheral crop is the
    background; on a marrow crop the median is other cells, so it under-segments the nucleus and finds
    little or the wrong cytoplasm. Here the nuclei are the darker Otsu class of the blurred green
    channel. The cytoplasm is grown from the central nucleus: a pixel belongs to it when its smoothed
    colour is closer to the ring just outside that nucleus than to the bright background, and it is
    nearer that nucleus than any other (a touching neighbour's cytoplasm goes to its own nucleus).
    """
    import cv2
    g = cv2.GaussianBlur(np.ascontiguousarray(rgb[..., 1]), (0, 0), 1.5)
    otsu, _ = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    nuclei = ndi.binary_opening(g < otsu, iterations=2)
    central = _central_components(nuclei, 0.22)
    central = ndi.binary_fill_holes(ndi.binary_closing(central, iterations=3))
    if not central.any():
        return CellMasks(cell=central, nucleus=central)
    radius = np.sqrt(central.sum() / np.pi)
    reach = ndi.distance_transform_edt(~central)
    others = nuclei & ~ndi.binary_dilation(central, iterations=2)
    ours = reach < (ndi.distance_transform_edt(~others) if others.any() else np.inf)
    rim = max(1.1 * radius, 12.0)  # a white cell's cytoplasm rim, as in segment_cell
    smooth = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 3.0)  # granules averaged out
    ring = (reach > 2) & (reach <= 6) & ~nuclei & ours
    if ring.sum() < 10:
        return CellMasks(cell=central, nucleus=central)
    cytoplasm_colour = np.median(smooth[ring], axis=0)
    far = (reach > 1.4 * radius) & ~nuclei
    far_px = smooth[far] if far.sum() > 50 else smooth[~nuclei]
    background = np.median(far_px[far_px[:, 1] >= np.percentile(far_px[:, 1], 60)], axis=0)
    closer = np.linalg.norm(smooth - cytoplasm_colour, axis=-1) < np.linalg.norm(smooth - background, axis=-1)
    grown = ndi.binary_opening(closer & ~nuclei & ours & (reach < rim), iterations=2)
    labels, _ = ndi.label(grown | central)
    touching = np.unique(labels[central])
    cell = np.isin(labels, touching[touching > 0])
    cell = (ndi.binary_fill_holes(ndi.binary_closing(cell, iterations=2)) & (reach < rim)) | central
    return CellMasks(cell=cell, nucleus=central)


SEGMENTERS = {"pbc": segment_cell, "marrow": segment_marrow_cell}


def segment_for_source(rgb: np.ndarray, source: str, marrow: str = "marrow") -> CellMasks:
    """Masks with the segmenter for a crop's source folder ("marrow/..." or "pbc/..."). ``marrow="pbc"``
    keeps the peripheral segmenter for marrow crops too, as label tables made before 2026-12-03 did."""
    return SEGMENTERS[marrow if source.startswith("marrow") else "pbc"](rgb)
