"""Procedural renders of the cell types that have no real images in ../shared/data.

Variant lymphocyte, platelet aggregation, megakaryocyte fragment and smudge cell are drawn over a
real red-cell background taken from a real crop, with May-Grünwald-Giemsa colours, so the
surroundings match the real crops. Each render takes a background crop (RGB uint8, ~256 px) and,
where it needs one, a donor crop with its masks; output is RGB uint8 of the background's shape.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from simulate.filters import gaussian
from simulate.segment import CellMasks
from simulate.transforms import blend, crop_scale, masked_blur, smooth_noise, soft_discs, to_uint8

BASOPHILIC_CYTO = np.array([172, 186, 222], np.float32)   # reactive-lymphocyte cytoplasm
PLATELET_PURPLE = np.array([150, 105, 175], np.float32)   # platelet granulomere
PLATELET_PALE = np.array([205, 180, 215], np.float32)     # hyalomere
MEGA_NUCLEUS = np.array([88, 45, 118], np.float32)
SMUDGE_PURPLE = np.array([160, 120, 185], np.float32)


def _blob(shape, centre, radius, irregularity, rng, sigma_frac=0.35) -> np.ndarray:
    """A soft irregular blob: a disc whose radius is modulated by a smooth angular noise."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    ang = np.arctan2(yy - centre[0], xx - centre[1])
    k = np.arange(1, 7)
    amp = rng.normal(0, irregularity, 6) / k
    phase = rng.uniform(0, 2 * np.pi, 6)
    rad = radius * (1 + (amp[:, None, None] * np.cos(k[:, None, None] * ang[None] + phase[:, None, None])).sum(0))
    d = np.hypot(yy - centre[0], xx - centre[1])
    return np.clip((rad - d) / max(sigma_frac * radius * 0.1, 1.0), 0, 1)


def clear_centre(background: np.ndarray, masks: CellMasks, rng: np.random.Generator) -> np.ndarray:
    """Remove the central object of a crop, refilling it with the surrounding field."""
    s = crop_scale(background)
    img = background.astype(np.float32)
    hole = ndi.binary_dilation(masks.cell, iterations=int(4 * s)) if masks.cell.any() else np.zeros(img.shape[:2], bool)
    if not hole.any():
        return img
    field = masked_blur(img, ~hole, 10 * s)
    texture = smooth_noise(hole.shape, 3 * s, rng)[..., None] * 4.0
    alpha = gaussian(hole.astype(np.float32), 2 * s)
    return img * (1 - alpha[..., None]) + (field + texture) * alpha[..., None]


def variant_lymphocyte(donor: np.ndarray, masks: CellMasks, rng: np.random.Generator) -> np.ndarray:
    """A reactive lymphocyte: a real lymphocyte given a wide basophilic cytoplasm that deepens in
    colour toward its edge and is scalloped by the neighbouring red cells."""
    s = crop_scale(donor)
    img = donor.astype(np.float32)
    cy, cx = ndi.center_of_mass(masks.nucleus) if masks.nucleus.any() else (img.shape[0] / 2, img.shape[1] / 2)
    nuc_r = np.sqrt(max(masks.nucleus.sum(), 400 * s * s) / np.pi)
    skirt = _blob(img.shape[:2], (cy + rng.normal(0, 4 * s), cx + rng.normal(0, 4 * s)), nuc_r * rng.uniform(1.9, 2.5),
                  0.35, rng)
    dist = ndi.distance_transform_edt(skirt > 0.5)
    edge = np.clip(1 - dist / (nuc_r * 0.8), 0, 1)  # 1 at the rim, 0 inside
    colour = BASOPHILIC_CYTO * (1 - 0.16 * edge[..., None]) + smooth_noise(skirt.shape, 1.5 * s, rng)[..., None] * 5
    out = blend(img, colour, gaussian(skirt, 0.8 * s) * rng.uniform(0.7, 0.85))
    nucleus = gaussian(masks.nucleus.astype(np.float32), 0.7 * s)
    return to_uint8(blend(out, img, nucleus))


def platelet_patch(crop: np.ndarray, masks: CellMasks) -> tuple[np.ndarray, np.ndarray] | None:
    """The central platelet of a real LP crop as (rgb float32, alpha) windows, or None."""
    if not masks.cell.any():
        return None
    ys, xs = np.nonzero(masks.cell)
    pad = 3
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, crop.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, crop.shape[1])
    alpha = gaussian(masks.cell.astype(np.float32), 1.0)[y0:y1, x0:x1]
    return crop[y0:y1, x0:x1].astype(np.float32), alpha


def platelet_aggregation(background: np.ndarray, bg_masks: CellMasks, patches: list, rng: np.random.Generator) -> np.ndarray:
    """A clump of 5-14 real platelets pasted overlapping around the centre of a cleared field."""
    img = clear_centre(background, bg_masks, rng)
    h, w = img.shape[:2]
    s = crop_scale(background)
    n = int(rng.integers(5, 15))
    spread = rng.uniform(12, 22) * s
    for _ in range(n):
        patch, alpha = patches[int(rng.integers(len(patches)))]
        if rng.random() < 0.5:
            patch, alpha = patch[:, ::-1], alpha[:, ::-1]
        ph, pw = alpha.shape
        cy, cx = h / 2 + rng.normal(0, spread / 2), w / 2 + rng.normal(0, spread / 2)
        y0, x0 = int(np.clip(cy - ph / 2, 0, h - ph)), int(np.clip(cx - pw / 2, 0, w - pw))
        region = img[y0:y0 + ph, x0:x0 + pw]
        img[y0:y0 + ph, x0:x0 + pw] = blend(region, patch, alpha * 0.95)
    return to_uint8(img)


def megakaryocyte_fragment(background: np.ndarray, bg_masks: CellMasks, rng: np.random.Generator) -> np.ndarray:
    """A large irregular megakaryocyte fragment: granular lilac cytoplasm with dense purple granule
    clusters and, in about half, a lobulated dense nucleus (a circulating micromegakaryocyte)."""
    s = crop_scale(background)
    img = clear_centre(background, bg_masks, rng)
    h, w = img.shape[:2]
    radius = rng.uniform(28, 48) * s
    body = _blob((h, w), (h / 2, w / 2), radius, 0.45, rng)
    granules = np.clip(smooth_noise((h, w), 1.1 * s, rng) - 0.6, 0, 2) / 2
    clusters = np.clip(smooth_noise((h, w), 4 * s, rng), 0, 2) / 2
    colour = PLATELET_PALE + (PLATELET_PURPLE - PLATELET_PALE) * np.clip(granules + 0.6 * clusters, 0, 1)[..., None]
    img = blend(img, colour, gaussian(body, 1.0 * s) * 0.95)
    if rng.random() < 0.5:
        n = int(rng.integers(1, 4))
        centres = [(h / 2 + rng.normal(0, radius / 5), w / 2 + rng.normal(0, radius / 5)) for _ in range(n)]
        lobes = soft_discs((h, w), centres, rng.uniform(0.22, 0.35, n) * radius)
        shade = MEGA_NUCLEUS * (1 + 0.08 * smooth_noise((h, w), 1.3 * s, rng))[..., None]
        img = blend(img, shade, gaussian(lobes, 0.8 * s))
    return to_uint8(img)


def smudge_cell(donor: np.ndarray, masks: CellMasks, rng: np.random.Generator) -> np.ndarray:
    """A ruptured white cell: its nucleus smeared into a pale, streaked purple patch with no cytoplasm."""
    s = crop_scale(donor)
    img = clear_centre(donor, masks, rng)
    h, w = img.shape[:2]
    theta = rng.uniform(0, np.pi)
    radius = np.sqrt(max(masks.nucleus.sum(), 500 * s * s) / np.pi) * rng.uniform(1.3, 1.8)
    blob = _blob((h, w), (h / 2, w / 2), radius, 0.5, rng)
    yy, xx = np.mgrid[0:h, 0:w]
    along = (xx - w / 2) * np.cos(theta) + (yy - h / 2) * np.sin(theta)
    streaks = np.sin(along / (2.5 * s) + smooth_noise((h, w), 6 * s, rng) * 2) * 0.5 + 0.5
    density = 0.55 + 0.35 * streaks * np.clip(smooth_noise((h, w), 3 * s, rng) * 0.5 + 0.7, 0, 1)
    alpha = gaussian(blob, 2.0 * s) * density
    return to_uint8(blend(img, SMUDGE_PURPLE * (1 + 0.05 * smooth_noise((h, w), 1.2 * s, rng))[..., None], alpha))


RENDERED_TYPES = ("VLY", "TAG", "MEK", "SMU")
