"""Per-epoch augmentation and the inference geometry of Mori et al. 2020.

Training, per image and epoch (sizes at 224 px input; they scale with ``input_px``):
1. resize so the longest side is 232 x U(0.8, 1.2);
2. paste at the centre of a canvas of the crop's blank-smear colour (not black), which removes
   boundary effects; only a window large enough for any rotation is made, since rotating a huge
   canvas is slow;
3. flip left-right with p = 0.5;
4. rotate by U(-180, 180) degrees;
5. centre-crop 232, then random-crop 224.
Inference: the same paste without randomness, rotated by 22.5 x n degrees (n = 0..15).

The paper does not name the rotation's interpolation. ``bilinear`` (the default, as the shipped model
was trained) averages neighbouring pixels at every angle but a multiple of 90 degrees: at the compact
model's 128-px decode it cuts the granule texture energy of a normal neutrophil (the measure of
:func:`simulate.transforms.granule_texture_energy`) to a median 0.60 of the unrotated view at 22.5
degrees and 0.66 at 45, so the texture that tells DG0 from DG1 varies with the view angle.
``bicubic`` keeps it (1.04 and 1.07). A CV with bicubic rotation (runs/akira/cv17, 2026-12-06) did not
lower the false positives, so the shipped model keeps bilinear.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

ROTATION_INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
DEFAULT_INTERPOLATION = "bilinear"


def rotation_resample(name: str) -> Image.Resampling:
    """The Pillow filter of a rotation interpolation name (``bilinear`` or ``bicubic``)."""
    try:
        return ROTATION_INTERPOLATIONS[name]
    except KeyError:
        raise ValueError(f"rotation_interpolation {name!r}: expected one of {', '.join(ROTATION_INTERPOLATIONS)}") from None


def saved_interpolation(config: dict) -> str:
    """The rotation interpolation a saved model's ``config`` (its metadata) was trained with; models saved
    before the setting existed were trained with bilinear rotations."""
    return config.get("rotation_interpolation", DEFAULT_INTERPOLATION)


def blank_smear_colour(rgb: np.ndarray) -> tuple[int, int, int]:
    """The crop's background colour: the median of its brightest border pixels."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
    bright = border[border.sum(1) >= np.percentile(border.sum(1), 50)]
    return tuple(int(v) for v in np.median(bright, axis=0))


def _paste(rgb: np.ndarray, longest: int, window: int) -> Image.Image:
    img = Image.fromarray(rgb)
    w, h = img.size
    scale = longest / max(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (window, window), blank_smear_colour(rgb))
    canvas.paste(img, ((window - img.width) // 2, (window - img.height) // 2))
    return canvas


def _centre_crop(img: Image.Image, size: int) -> Image.Image:
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def augment(rgb: np.ndarray, input_px: int, rng: np.random.Generator,
            interpolation: str = DEFAULT_INTERPOLATION) -> np.ndarray:
    """One training view (input_px, input_px, 3) uint8 of a crop, rotated with ``interpolation``."""
    outer = int(round(input_px * 232 / 224))
    longest = int(round(outer * rng.uniform(0.8, 1.2)))
    window = int(math.ceil(max(longest, outer) * math.sqrt(2))) + 2
    img = _paste(rgb, longest, window)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.rotate(float(rng.uniform(-180, 180)), resample=rotation_resample(interpolation), fillcolor=blank_smear_colour(rgb))
    img = _centre_crop(img, outer)
    dx, dy = rng.integers(0, outer - input_px + 1, 2)
    return np.asarray(img.crop((int(dx), int(dy), int(dx) + input_px, int(dy) + input_px)), dtype=np.uint8)


def rotation_views(rgb: np.ndarray, input_px: int, n_views: int = 16,
                   interpolation: str = DEFAULT_INTERPOLATION) -> np.ndarray:
    """The 16 inference views (n_views, input_px, input_px, 3): rotations by 360/16 = 22.5 deg x n."""
    resample = rotation_resample(interpolation)
    outer = int(round(input_px * 232 / 224))
    window = int(math.ceil(outer * math.sqrt(2))) + 2
    img = _paste(rgb, outer, window)
    colour = blank_smear_colour(rgb)
    views = []
    for n in range(n_views):
        view = img.rotate(360.0 / n_views * n, resample=resample, fillcolor=colour)
        views.append(np.asarray(_centre_crop(_centre_crop(view, outer), input_px), dtype=np.uint8))
    return np.stack(views)
