"""Decode a cell image and bring it to the network's input size.

Analysers export crops of about 360 x 363 px; the shared crops are 256 px. Both go through the
same path: centre-crop to a square, then an antialiased downscale (Pillow's resampling filters
widen their support when shrinking, so 256 -> 128 and 360 -> 128 see the same low-pass). For JPEG
the decoder's DCT scaling (``Image.draft``) first skips to the smallest power-of-two scale that is
still at least the target size, which is itself an antialiased reduction and halves decode time.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import InvalidImage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")  # cell image files, any case

ACCEPTED_FORMATS = ("JPEG", "PNG", "TIFF", "BMP")


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied to every decoded image."""
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096  # decompression-bomb guard
    min_image_px: int = 16


def _open(source: str | Path | bytes, name: str, limits: ImageLimits) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        if len(source) > limits.max_image_bytes:
            raise InvalidImage(f"{name}: {len(source)} bytes is over the {limits.max_image_bytes}-byte limit per image")
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidImage(f"{name}: no such file")
        if path.stat().st_size > limits.max_image_bytes:
            raise InvalidImage(f"{name}: {path.stat().st_size} bytes is over the {limits.max_image_bytes}-byte limit per image")
        stream = io.BytesIO(path.read_bytes())
    try:
        img = Image.open(stream)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Image.open refuses a header declaring over 2 x Image.MAX_IMAGE_PIXELS (about 179 M) itself, and
        # warns above half that (an exception where warnings are errors): both are bombs to us
        raise InvalidImage(f"{name}: its header declares over {Image.MAX_IMAGE_PIXELS} pixels, over the "
                           f"{limits.max_image_pixels}-pixel limit (a cell crop is about 360x360)") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidImage(f"{name}: not a JPEG/PNG/TIFF/BMP image") from exc
    if img.format not in ACCEPTED_FORMATS:
        raise InvalidImage(f"{name}: {img.format} images are not accepted; send JPEG, PNG, TIFF or BMP")
    w, h = img.size
    if w * h > limits.max_image_pixels:
        raise InvalidImage(f"{name}: {w}x{h} pixels is over the {limits.max_image_pixels}-pixel limit (a cell crop is about 360x360)")
    if min(w, h) < limits.min_image_px:
        raise InvalidImage(f"{name}: {w}x{h} pixels is too small for a cell crop (at least {limits.min_image_px} px a side)")
    return img


def declared_pixels(source: str | Path | bytes, name: str, limits: ImageLimits = ImageLimits()) -> int:
    """Width x height that the file's header declares, read without decoding the pixels; raises
    :class:`InvalidImage` for what :func:`load_cell_image` would refuse before decoding (format,
    bytes, pixels, a side under ``limits.min_image_px``)."""
    width, height = _open(source, name, limits).size
    return width * height


def frame_px(input_px: int, field_of_view: float = 1.0) -> int:
    """Side (px) to which the whole square crop is resized so that its central ``field_of_view``
    share of the side measures ``input_px``."""
    if not 0.0 < field_of_view <= 1.0:
        raise ValueError(f"field_of_view must be in (0, 1], got {field_of_view}")
    return int(round(input_px / field_of_view))


def load_cell_image(source: str | Path | bytes, input_px: int, name: str | None = None,
                    limits: ImageLimits = ImageLimits(), field_of_view: float = 1.0) -> np.ndarray:
    """Decode one crop to RGB uint8 of shape (input_px, input_px, 3).

    ``source`` is a path or the file's bytes; ``name`` labels error messages. With
    ``field_of_view`` f < 1 the network sees only the central f of the crop's side, at 1/f the
    resolution: the whole square is resized to ``frame_px(input_px, f)`` and then centre-cropped.
    Raises :class:`InvalidImage` for anything that is not a complete, plausible image.
    """
    name = name or (Path(source).name if not isinstance(source, (bytes, bytearray)) else "image")
    img = _open(source, name, limits)
    side = frame_px(input_px, field_of_view)
    try:
        if img.format == "JPEG":
            img.draft("RGB", (side, side))
        img = img.convert("RGB")
        img.load()
    except Exception as exc:  # Pillow's decoders raise many types on malformed data (OSError, ValueError, SyntaxError, ...)
        raise InvalidImage(f"{name}: the image data is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    return window_resize(img, input_px, side)


def window_resize(img: Image.Image, input_px: int, frame: int) -> np.ndarray:
    """The central ``input_px`` window of ``img``'s centre square resized to ``frame`` px, as
    (input_px, input_px, 3) uint8: what resizing the whole square (antialiased) and cropping its
    centre gives, within rounding, at about half the cost for a field of view of 0.8, because only the
    window is resampled (Pillow's ``box``, whose filter still reads the pixels around the window)."""
    w, h = img.size
    side = min(w, h)
    if w != h:
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if side == frame:
        off = (frame - input_px) // 2
        return np.asarray(img.crop((off, off, off + input_px, off + input_px)), dtype=np.uint8)
    scale = side / frame
    start = (frame - input_px) // 2 * scale
    box = (start, start, start + input_px * scale, start + input_px * scale)
    return np.asarray(img.resize((input_px, input_px), Image.Resampling.BILINEAR, box=box, reducing_gap=None), dtype=np.uint8)


def decode_images(sources: Sequence[str | Path | bytes], input_px: int, names: Sequence[str | None] | None = None,
                  limits: ImageLimits = ImageLimits(), field_of_view: float = 1.0, skip_invalid: bool = False,
                  threads: int = 2) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode a batch of crops (paths or bytes) as :func:`load_cell_image` does, with ``threads``
    threads: ``(images, failed)``, images (n_ok, input_px, input_px, 3) uint8 in input order, and
    ``failed`` the (index, message) of each input that could not be decoded.

    The decoding contract of every engine that scores files: without ``skip_invalid`` the first
    undecodable input raises its :class:`~core.errors.InvalidImage`; with it, that input is left out
    and listed in ``failed``."""
    from concurrent.futures import ThreadPoolExecutor
    names = list(names) if names else [None] * len(sources)

    def one(item):
        try:
            return load_cell_image(item[0], input_px, item[1], limits, field_of_view)
        except InvalidImage as exc:
            if not skip_invalid:
                raise
            return exc
    with ThreadPoolExecutor(threads) as ex:
        results = list(ex.map(one, zip(sources, names)))
    failed = [(i, str(r)) for i, r in enumerate(results) if isinstance(r, Exception)]
    arrays = [r for r in results if not isinstance(r, Exception)]
    stacked = np.stack(arrays) if arrays else np.zeros((0, input_px, input_px, 3), np.uint8)
    return stacked, failed


def export_size(export_px: int) -> tuple[int, int]:
    """(width, height) in px of an analyser export ``export_px`` wide: about 360 x 363 for a DI-60 or CellaVision."""
    return export_px, export_px + 3


def as_export(data: bytes, export_px: int, jpeg_quality: int = 90) -> bytes:
    """Re-encode a crop (file bytes) the way an analyser exports one: bicubic resize to ``export_px``
    wide by ``export_px + 3`` high (a Sysmex DI-60 or CellaVision crop is about 360 x 363 px), JPEG at
    ``jpeg_quality``. Upscaling a 256-px shared crop adds no detail; it sends the crop down the
    decode path a real export takes."""
    img = Image.open(io.BytesIO(data)).convert("RGB").resize(export_size(export_px), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=jpeg_quality)
    return buf.getvalue()


def square_resize(rgb: np.ndarray, input_px: int) -> np.ndarray:
    """Centre-crop an RGB array to a square and resize it with antialiasing to ``input_px``."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(np.ascontiguousarray(rgb[top:top + side, left:left + side]))
    if side != input_px:
        img = img.resize((input_px, input_px), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


def centre_crop(rgb: np.ndarray, px: int) -> np.ndarray:
    """The central (px, px) window of a (side, side, 3) image or an (n, side, side, 3) batch, as a view."""
    top = (rgb.shape[-3] - px) // 2
    if top == 0:
        return rgb
    return rgb[..., top:top + px, top:top + px, :]


def decode_all(paths: list[str], input_px: int, threads: int, field_of_view: float = 1.0) -> np.ndarray:
    """Decode the crops at ``paths`` to one (n, input_px, input_px, 3) uint8 array with ``threads``
    threads, each as :func:`load_cell_image` does (training and its diagnostics hold every crop in
    memory). An undecodable file raises its :class:`~core.errors.InvalidImage`."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm
    out = np.empty((len(paths), input_px, input_px, 3), np.uint8)
    load = lambda p: load_cell_image(p, input_px, field_of_view=field_of_view)
    with ThreadPoolExecutor(threads) as ex:
        for i, arr in enumerate(tqdm(ex.map(load, paths), total=len(paths),
                                     desc="decode", unit="img", mininterval=5)):
            out[i] = arr
    return out
