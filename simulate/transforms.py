"""Cell-level dysmorphic transforms applied to real crops.

Every transform has the signature ``fn(rgb, masks, severity, rng) -> rgb``: ``rgb`` is an RGB
uint8 crop (H, W, 3) of about 256 px, ``masks`` its :class:`~simulate.segment.CellMasks`,
``severity`` a grade in 1..3 (``decreased_granules`` also takes 0, the identity), and ``rng`` a
``numpy.random.Generator``. Sizes are in pixels of a 256-px crop (about 0.28 µm per px for the
CellaVision crops of the PBC set, where a red cell is about 50 px across); they scale with the
crop. :data:`TRANSFORMS` maps each transform to the taxonomy feature it labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from simulate.filters import gaussian
from simulate.segment import CellMasks

# MGG colours (RGB) of the structures painted here.
PALE_BLUE_GREY = np.array([196, 200, 222], np.float32)   # agranular neutrophil cytoplasm
TOXIC_GRANULE = np.array([78, 32, 98], np.float32)       # coarse azurophilic granules
DOHLE_BLUE = np.array([150, 168, 214], np.float32)       # rough-ER remnant, pale blue-grey
VACUOLE_CLEAR = np.array([244, 238, 242], np.float32)    # unstained vacuole lumen


def crop_scale(rgb: np.ndarray) -> float:
    """The crop's side over 256 px: the factor for sizes given in pixels of a 256-px crop."""
    return rgb.shape[0] / 256.0


def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field smoothed at ``sigma`` px."""
    field = gaussian(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def masked_blur(img: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Blur ``img`` (H, W, C) using only pixels under ``mask`` (normalised convolution)."""
    m = mask.astype(np.float32)
    num = gaussian(img * m[..., None], sigma)
    den = gaussian(m, sigma)[..., None]
    # far (> 3 sigma) from any masked pixel the ratio is 0/0: fall back to the masked mean colour
    mean = img[mask].mean(0) if mask.any() else img.reshape(-1, img.shape[-1]).mean(0)
    eps = 1e-2
    return (num + eps * mean) / (den + eps)


def blend(base: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``base`` (H, W, 3) float painted with ``colour`` at opacity ``alpha`` (H, W) in [0, 1]."""
    return base * (1 - alpha[..., None]) + colour * alpha[..., None]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a float image to uint8 0-255."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _points_in(mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros((0, 2), int)
    idx = rng.choice(len(ys), size=min(n, len(ys)), replace=len(ys) < n)
    return np.stack([ys[idx], xs[idx]], 1)


def soft_discs(shape, centres, radii) -> np.ndarray:
    """Soft-edged union of discs, float in [0, 1]."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    out = np.zeros(shape, np.float32)
    for (cy, cx), r in zip(centres, radii):
        y0, y1 = max(int(cy - r - 3), 0), min(int(cy + r + 4), shape[0])
        x0, x1 = max(int(cx - r - 3), 0), min(int(cx + r + 4), shape[1])
        d = np.hypot(yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx)
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], np.clip(r + 0.5 - d, 0, 1))
    return out


def inner_cytoplasm(masks: CellMasks, margin_px: float) -> np.ndarray:
    """Boolean (H, W) cytoplasm at least ``margin_px`` inside the cell edge and off the nucleus: where
    granules are painted and measured."""
    inner = ndi.binary_erosion(masks.cell, iterations=max(int(margin_px), 1))
    return inner & ~ndi.binary_dilation(masks.nucleus, iterations=1)


def granule_texture_energy(rgb: np.ndarray, masks: CellMasks, sigma_px: float = 2.0) -> float:
    """Mean squared high-pass (green channel minus its 2-px blur *within the cytoplasm*) over the
    inner cytoplasm: the granule texture. Blurring within the mask keeps the nucleus and cell
    edges out of the measure, so a paler cytoplasm does not read as more texture; the 4 px margin
    keeps the feathered cell border (where old and new cytoplasm blend) out too."""
    g = rgb[..., 1].astype(np.float32)[..., None]
    cyto = masks.cytoplasm
    high = (g - masked_blur(g, cyto, sigma_px * crop_scale(rgb)))[..., 0]
    inner = ndi.binary_erosion(cyto, iterations=max(int(4 * crop_scale(rgb)), 1))  # clear of the feathered edge
    return float((high[inner] ** 2).mean()) if inner.any() else 0.0


# --- granules -------------------------------------------------------------------------------

DG_DETAIL_KEPT = (1.0, 0.45, 0.18, 0.04)   # share of granule texture left at DG 0..3
DG_FADE = (0.0, 0.30, 0.55, 0.80)          # pull of the cytoplasm colour toward pale blue-grey
DG_PATCH_REMOVED = (0.0, 0.45, 0.75, 0.95) # share of the cytoplasm where granules vanish first


def decreased_granules(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """DG 0-3: remove cytoplasmic granules step by step and fade the cytoplasm to pale blue-grey.

    The cytoplasm is split into a smooth colour and a granule detail (image minus a 2.5 px
    normalised blur within the cytoplasm). Granules vanish first in random patches, then the rest
    of the detail is attenuated. Nucleus pixels are never written.
    """
    if severity == 0:
        return rgb.copy()
    s = crop_scale(rgb)
    img = rgb.astype(np.float32)
    cyto = masks.cytoplasm
    smooth = masked_blur(img, cyto, 2.5 * s)
    detail = img - smooth
    field = smooth_noise(cyto.shape, 4.0 * s, rng)
    removed = field < np.quantile(field[cyto], DG_PATCH_REMOVED[severity]) if cyto.any() else np.zeros_like(cyto)
    keep = np.where(removed, DG_DETAIL_KEPT[severity] * 0.3, DG_DETAIL_KEPT[severity])
    target = PALE_BLUE_GREY
    # the colour layer itself loses its fine structure with grade: mix in a wider blur
    wide = masked_blur(img, cyto, 6.0 * s)
    smooth = smooth + (wide - smooth) * DG_FADE[severity]
    colour = blend(smooth, target, np.full(cyto.shape, DG_FADE[severity], np.float32))
    new = colour + detail * keep[..., None]
    # feather only at the cell border, so the nucleus stays pixel-identical
    alpha = gaussian(cyto.astype(np.float32), 0.7 * s) * cyto
    out = img * (1 - alpha[..., None]) + new * alpha[..., None]
    out[masks.nucleus] = img[masks.nucleus]
    return to_uint8(out)


def toxic_granulation(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Coarse dark-purple granules over the cytoplasm, denser with severity."""
    s = crop_scale(rgb)
    area = inner_cytoplasm(masks, 2 * s)
    n = int(area.sum() / (s * s) * (0.012, 0.025, 0.04)[severity - 1])
    centres = _points_in(area, n, rng)
    radii = rng.uniform(0.9, 1.7, len(centres)) * s
    alpha = gaussian(soft_discs(area.shape, centres, radii), 0.5 * s) * 0.75 * area
    return to_uint8(blend(rgb.astype(np.float32), TOXIC_GRANULE, alpha))


def dohle_bodies(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """1-4 pale blue-grey elongated inclusions at the periphery of the cytoplasm."""
    s = crop_scale(rgb)
    rim = inner_cytoplasm(masks, 1.5 * s) & ~ndi.binary_erosion(masks.cell, iterations=int(9 * s))
    img = rgb.astype(np.float32)
    alpha = np.zeros(rim.shape, np.float32)
    yy, xx = np.mgrid[0:rim.shape[0], 0:rim.shape[1]]
    cy, cx = ndi.center_of_mass(masks.cell) if masks.cell.any() else (rim.shape[0] / 2, rim.shape[1] / 2)
    for py, px in _points_in(rim, int(rng.integers(1, 2 + severity)), rng):
        theta = np.arctan2(py - cy, px - cx) + np.pi / 2  # along the cell edge
        a, b = rng.uniform(4, 7) * s, rng.uniform(2, 3.2) * s
        u = (xx - px) * np.cos(theta) + (yy - py) * np.sin(theta)
        v = -(xx - px) * np.sin(theta) + (yy - py) * np.cos(theta)
        alpha = np.maximum(alpha, np.clip(1.5 - np.hypot(u / a, v / b) * 1.5, 0, 1))
    alpha = gaussian(alpha, 0.8 * s) * (0.45 + 0.1 * severity) * masks.cytoplasm
    return to_uint8(blend(img, DOHLE_BLUE, alpha))


def vacuoles(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Round, sharply bordered clear vacuoles in the cytoplasm (2-3 / 4-6 / 7-10)."""
    s = crop_scale(rgb)
    area = inner_cytoplasm(masks, 4 * s)
    n = int(rng.integers(*((2, 4), (4, 7), (7, 11))[severity - 1]))
    centres = _points_in(area, n, rng)
    radii = rng.uniform(2.2, 4.5, len(centres)) * s
    lumen = soft_discs(area.shape, centres, radii)
    rim = np.clip(soft_discs(area.shape, centres, radii + 1.0 * s) - lumen, 0, 1)
    img = rgb.astype(np.float32)
    img = blend(img, img * 0.82, rim * 0.8 * masks.cell)
    return to_uint8(blend(img, VACUOLE_CLEAR, lumen * 0.85 * masks.cell))


# --- nuclei ---------------------------------------------------------------------------------

def _erase_nucleus(img: np.ndarray, masks: CellMasks, rng: np.random.Generator) -> np.ndarray:
    """Fill the nucleus with cytoplasm: its smooth colour plus granule texture borrowed from it."""
    s = crop_scale(img)
    cyto = masks.cytoplasm if masks.cytoplasm.sum() > 50 else masks.cell
    grown = ndi.binary_dilation(masks.nucleus, iterations=int(2 * s))
    colour = masked_blur(img, cyto & ~grown, 8.0 * s)
    detail = img - masked_blur(img, cyto, 2.5 * s)
    ys, xs = np.nonzero(cyto & ~grown)
    out = img.copy()
    if len(ys):
        ty, tx = np.nonzero(grown)
        pick = rng.integers(0, len(ys), len(ty))
        # borrow texture from random cytoplasm pixels, smoothed so it reads as granules, not salt
        borrowed = np.zeros_like(img)
        borrowed[ty, tx] = detail[ys[pick], xs[pick]]
        borrowed = gaussian(borrowed, 0.7 * s)
        out[grown] = colour[grown] + borrowed[grown] * 1.5
    return out


def _nucleus_texture(img: np.ndarray, masks: CellMasks, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour (3,) and chromatin texture amplitude of the original nucleus."""
    px = img[masks.nucleus] if masks.nucleus.any() else np.array([[110, 60, 140]], np.float32)
    return px.mean(0), px.std(0).mean() + 6.0


def _paint_nucleus(img: np.ndarray, shape_alpha: np.ndarray, colour: np.ndarray, texture: float,
                   rng: np.random.Generator, clumped: float = 0.0) -> np.ndarray:
    s = crop_scale(img)
    chromatin = smooth_noise(shape_alpha.shape, 1.4 * s, rng)
    if clumped:
        chromatin = chromatin + clumped * np.where(smooth_noise(shape_alpha.shape, 3.0 * s, rng) > 0.6, -2.5, 0.6)
    shade = colour[None, None, :] * (1 + 0.012 * texture * chromatin[..., None])
    alpha = gaussian(np.clip(shape_alpha, 0, 1), 0.8 * s)
    return blend(img, shade, alpha)


def _lobes_mask(shape, centre, positions, radii, bridge_px) -> np.ndarray:
    """Lobes (discs) at ``positions`` relative to ``centre``, joined in order by thin bridges."""
    cy, cx = centre
    pts = [(cy + dy, cx + dx) for dy, dx in positions]
    mask = soft_discs(shape, pts, radii)
    for (y0, x0), (y1, x1) in zip(pts[:-1], pts[1:]):
        n = int(np.hypot(y1 - y0, x1 - x0)) + 1
        line = [(y0 + (y1 - y0) * t, x0 + (x1 - x0) * t) for t in np.linspace(0, 1, n)]
        mask = np.maximum(mask, soft_discs(shape, line, [bridge_px] * n))
    return mask


def _nucleus_frame(masks: CellMasks, img: np.ndarray):
    s = crop_scale(img)
    centre = ndi.center_of_mass(masks.nucleus) if masks.nucleus.any() else (img.shape[0] / 2, img.shape[1] / 2)
    area = max(masks.nucleus.sum(), 600 * s * s)
    cell_r = np.sqrt(max(masks.cell.sum(), area * 2) / np.pi)
    return centre, area, cell_r, s


def pseudo_pelger(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Bilobed "pince-nez" nucleus: two round lobes joined by a thin chromatin bridge.

    Severity sets chromatin condensation (coarser, darker at 3). Labels ``neu_pseudo_pelger``.
    """
    img = rgb.astype(np.float32)
    colour, texture = _nucleus_texture(img, masks, rng)
    out = _erase_nucleus(img, masks, rng)
    centre, area, cell_r, s = _nucleus_frame(masks, img)
    lobe_r = min(np.sqrt(0.42 * area / np.pi), 0.36 * cell_r)
    theta = rng.uniform(0, np.pi)
    half = lobe_r * rng.uniform(1.25, 1.6)
    pos = [(-half * np.sin(theta), -half * np.cos(theta)), (half * np.sin(theta), half * np.cos(theta))]
    shape = _lobes_mask(img.shape[:2], centre, pos, [lobe_r, lobe_r * rng.uniform(0.85, 1.0)], 1.0 * s)
    return to_uint8(_paint_nucleus(out, shape, colour * (1 - 0.05 * severity), texture, rng, clumped=0.3 * severity))


def round_nucleus(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Non-lobed round or ovoid nucleus with clumped chromatin (Pelger variant). Labels ``neu_spherical_nucleus``."""
    img = rgb.astype(np.float32)
    colour, texture = _nucleus_texture(img, masks, rng)
    out = _erase_nucleus(img, masks, rng)
    centre, area, cell_r, s = _nucleus_frame(masks, img)
    r = min(np.sqrt(0.75 * area / np.pi), 0.55 * cell_r)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    ecc = rng.uniform(1.0, 1.3)
    theta = rng.uniform(0, np.pi)
    u = (xx - centre[1]) * np.cos(theta) + (yy - centre[0]) * np.sin(theta)
    v = -(xx - centre[1]) * np.sin(theta) + (yy - centre[0]) * np.cos(theta)
    shape = np.clip(r + 0.5 - np.hypot(u * ecc, v / ecc), 0, 1)
    return to_uint8(_paint_nucleus(out, shape, colour * (1 - 0.05 * severity), texture, rng, clumped=0.4 + 0.3 * severity))


def hypersegmentation(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Six or more small lobes (6 / 7 / 8 by severity) strung on thin filaments along an arc."""
    img = rgb.astype(np.float32)
    colour, texture = _nucleus_texture(img, masks, rng)
    out = _erase_nucleus(img, masks, rng)
    centre, area, cell_r, s = _nucleus_frame(masks, img)
    n = 5 + severity
    arc_r = 0.5 * cell_r
    start = rng.uniform(0, 2 * np.pi)
    span = rng.uniform(1.4, 1.75) * np.pi
    spacing = arc_r * span / (n - 1)
    lobe_r = min(np.sqrt(0.8 * area / (n * np.pi)), 0.2 * cell_r, 0.36 * spacing)  # lobes must not touch
    angles = start + np.linspace(0, span, n) + rng.normal(0, 0.08, n)
    radial = arc_r * rng.uniform(0.92, 1.04, n)
    pos = [(r * np.sin(a), r * np.cos(a)) for a, r in zip(angles, radial)]
    radii = lobe_r * rng.uniform(0.9, 1.1, n)
    shape = _lobes_mask(img.shape[:2], centre, pos, radii, 0.9 * s)
    return to_uint8(_paint_nucleus(out, shape, colour, texture, rng, clumped=0.2))


def chromatin_clumping(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Coarse dark chromatin blocks separated by pale parachromatin, inside the nucleus only."""
    s = crop_scale(rgb)
    img = rgb.astype(np.float32)
    nuc = masks.nucleus
    blocks = smooth_noise(nuc.shape, 2.2 * s, rng)
    dark = np.clip((blocks - 0.2) * 1.5, 0, 1)
    pale = np.clip((-blocks - 0.4) * 1.5, 0, 1)
    strength = (0.25, 0.38, 0.5)[severity - 1]
    alpha_n = gaussian(nuc.astype(np.float32), 0.6 * s) * nuc
    shaded = img * (1 - strength * dark[..., None]) + (np.array([205, 175, 215], np.float32) - img) * (strength * 0.8 * pale[..., None])
    out = img * (1 - alpha_n[..., None]) + shaded * alpha_n[..., None]
    out[~nuc] = img[~nuc]
    return to_uint8(out)


# --- platelets ------------------------------------------------------------------------------

GIANT_PLATELET_SCALE = (1.8, 2.5, 3.2)  # linear enlargement; grade 3 exceeds a red cell (~50 px)


def giant_platelet(rgb: np.ndarray, masks: CellMasks, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Enlarge the central platelet of an LP crop and composite it back over the red-cell field."""
    s = crop_scale(rgb)
    img = rgb.astype(np.float32)
    plt_mask = masks.cell if masks.cell.any() else masks.nucleus
    if not plt_mask.any():
        return rgb.copy()
    cy, cx = ndi.center_of_mass(plt_mask)
    factor = GIANT_PLATELET_SCALE[severity - 1] * rng.uniform(0.92, 1.08)
    alpha = gaussian(ndi.binary_dilation(plt_mask, iterations=int(1 * s) + 1).astype(np.float32), 0.8 * s)
    zoom = lambda a: ndi.affine_transform(a, np.eye(2) / factor, offset=(cy - cy / factor, cx - cx / factor), order=1)
    big = np.stack([zoom(img[..., c]) for c in range(3)], -1)
    big_alpha = np.clip(zoom(alpha), 0, 1)
    return to_uint8(blend(img, big, big_alpha) if big.ndim == 3 else img)


@dataclass(frozen=True)
class Transform:
    """A transform and the feature it labels; ``cell_types`` are the types it applies to."""
    name: str
    fn: Callable[[np.ndarray, CellMasks, int, np.random.Generator], np.ndarray]
    feature_id: str
    cell_types: tuple[str, ...]
    nuclear: bool = False  # rewrites the nucleus shape; at most one such transform per cell


NEUTROPHILS = ("SNE", "BNE")
TRANSFORMS: dict[str, Transform] = {t.name: t for t in [
    Transform("decreased_granules", decreased_granules, "neu_degranulation", NEUTROPHILS),
    Transform("toxic_granulation", toxic_granulation, "neu_toxic_granulation", NEUTROPHILS),
    Transform("dohle_bodies", dohle_bodies, "neu_dohle_body", NEUTROPHILS),
    Transform("vacuoles", vacuoles, "neu_vacuoles", NEUTROPHILS),
    Transform("pseudo_pelger", pseudo_pelger, "neu_pseudo_pelger", NEUTROPHILS, nuclear=True),
    Transform("round_nucleus", round_nucleus, "neu_spherical_nucleus", NEUTROPHILS, nuclear=True),
    Transform("hypersegmentation", hypersegmentation, "neu_hypersegmentation", NEUTROPHILS, nuclear=True),
    Transform("chromatin_clumping", chromatin_clumping, "neu_abnormal_chromatin_clumping", NEUTROPHILS),
    Transform("giant_platelet", giant_platelet, "plt_giant", ("LP",)),
]}
# Order in which transforms are applied to one cell: nucleus first, then cytoplasm, so granule
# changes act on the final cytoplasm.
APPLY_ORDER = ("pseudo_pelger", "round_nucleus", "hypersegmentation", "chromatin_clumping", "decreased_granules",
               "toxic_granulation", "dohle_bodies", "vacuoles", "giant_platelet")
