"""Reading one smear's images from a multipart request: repeated ``images`` files or one ``archive`` zip.

Every limit is checked before any image is decoded or stored: file count, per-file bytes, zip
entry names (no absolute path, no ``..``), zip total uncompressed size and per-entry compression
ratio (zip bombs), and each zip entry is read in full (CRC, stream, method, encryption: a corrupt one
is a 400 before anything is stored); then the image headers are read (not decoded) and the pixels they declare are
summed against ``MDSDX_MAX_REQUEST_PIXELS``, so one request cannot hold a worker's inference lock
for long. Per-image checks (format, decompression bombs, truncation) are :mod:`core.preprocess`'s,
which raises :class:`~core.errors.InvalidImage`. Errors are :class:`UploadError` with the HTTP status to answer.
"""
from __future__ import annotations

import io
import lzma
import posixpath
import traceback
import zipfile
import zlib
from dataclasses import dataclass

from flask import Request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from core.preprocess import IMAGE_SUFFIXES, ImageLimits, declared_pixels


# the methods Python's zipfile reads; others (e.g. 9, deflate64) raise NotImplementedError
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


class _FormDataParser(FormDataParser):
    """Werkzeug's form parser, except that a malformed multipart body is a 400 that says why: Werkzeug's
    default drops the whole form silently, so one Latin-1 file name surfaced as "external_id missing"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.silent = False

    def parse(self, *args, **kwargs):
        try:
            return super().parse(*args, **kwargs)
        except UnicodeDecodeError as exc:
            raise BadRequest("a part header of the multipart body is not UTF-8: send file names and field names "
                             "in UTF-8 (RFC 7578)") from exc
        except ValueError as exc:
            raise BadRequest(f"the multipart body is malformed ({exc})") from exc


class MdsdxRequest(Request):
    form_data_parser_class = _FormDataParser


def too_large_message(exc: RequestEntityTooLarge, config, max_form_parts: int, max_form_memory_size: int) -> str:
    """Which limit a 413 hit. Werkzeug raises the same bare exception for the body's size, the number
    of multipart parts and a text field's size; the frame that raised it tells them apart."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = frames[-1].name if frames else ""
    if where == "next_event":
        return f"the multipart body has more than {max_form_parts} parts (the limit is MDSDX_MAX_IMAGES_PER_SMEAR + 16)"
    if where in ("receive_data", "parse"):
        return f"a text field of the form is over the {max_form_memory_size}-byte limit"
    return f"the request body is over the {config.max_upload_bytes}-byte limit (MDSDX_MAX_UPLOAD_BYTES)"


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class UploadedImage:
    name: str
    data: bytes


MAX_NAME_CHARS = 255  # a file name on every common file system
MAX_PATH_CHARS = 1024  # a zip entry's folders and name


def _check_name(name: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UploadError(400, f"{name[:80]!r}: a file name with a NUL or another control character; rename the file")
    if len(name) > MAX_PATH_CHARS or len(posixpath.basename(name)) > MAX_NAME_CHARS:
        raise UploadError(400, f"{name[:80]!r}...: a file name over {MAX_NAME_CHARS} characters "
                               f"(or a path over {MAX_PATH_CHARS}); rename the file")
    if not name or name.startswith("/") or "\\" in name or ".." in posixpath.normpath(name).split("/"):
        raise UploadError(400, f"{name!r}: unsafe file name in the upload (absolute path or '..')")
    return posixpath.basename(name)


def read_zip(data: bytes, config) -> list[UploadedImage]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise UploadError(400, "archive: not a valid zip file") from exc
    entries = [i for i in archive.infolist() if not i.is_dir()]
    for info in entries:
        _check_name(info.filename)
    images = [i for i in entries if posixpath.splitext(i.filename)[1].lower() in IMAGE_SUFFIXES
              and not posixpath.basename(i.filename).startswith(".")]
    if len(images) > config.max_images_per_smear:
        raise UploadError(413, f"archive: {len(images)} images, more than the limit of {config.max_images_per_smear} per smear")
    total = sum(i.file_size for i in images)
    if total > config.max_zip_uncompressed_bytes:
        raise UploadError(413, f"archive: {total} bytes uncompressed, over the {config.max_zip_uncompressed_bytes}-byte limit")
    out = []
    for info in images:
        if info.file_size > config.max_image_bytes:
            raise UploadError(413, f"{info.filename}: {info.file_size} bytes is over the {config.max_image_bytes}-byte limit per image")
        if info.compress_size and info.file_size / info.compress_size > config.max_zip_ratio:
            raise UploadError(413, f"{info.filename}: compression ratio {info.file_size / info.compress_size:.0f}:1 "
                                   f"exceeds {config.max_zip_ratio}:1 (zip bomb guard)")
        if info.flag_bits & 0x1:
            raise UploadError(400, f"{info.filename}: the zip entry is encrypted; send a zip without a password")
        if info.compress_type not in ZIP_METHODS:
            raise UploadError(400, f"{info.filename}: zip compression method {info.compress_type} is not supported; "
                                   f"use deflate (every zip tool's default) or store")
        try:
            with archive.open(info) as fh:
                blob = fh.read(config.max_image_bytes + 1)
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, RuntimeError,
                NotImplementedError) as exc:  # what zipfile raises for a bad CRC, stream, method or password
            raise UploadError(400, f"{info.filename}: the zip entry is corrupt ({exc}); create the zip again") from exc
        if len(blob) != info.file_size:
            raise UploadError(400, f"{info.filename}: the zip entry's size does not match its header")
        out.append(UploadedImage(info.filename, blob))
    return out


def check_request_pixels(images: list[UploadedImage], config) -> int:
    """The pixels the images' headers declare in all; 413 over ``config.max_request_pixels``."""
    limits = ImageLimits(max_image_bytes=config.max_image_bytes, max_image_pixels=config.max_image_pixels)
    total = sum(declared_pixels(i.data, i.name, limits) for i in images)
    if total > config.max_request_pixels:
        raise UploadError(413, f"the images declare {total} pixels in all, over the {config.max_request_pixels}-pixel "
                               f"limit per request (MDSDX_MAX_REQUEST_PIXELS); send fewer or smaller images")
    return total


def read_smear_upload(files, config) -> list[UploadedImage]:
    """The images of one smear from ``request.files`` (a MultiDict of FileStorage)."""
    image_files: list[FileStorage] = files.getlist("images")
    archives: list[FileStorage] = files.getlist("archive")
    if image_files and archives:
        raise UploadError(400, "send either repeated 'images' files or one 'archive' zip, not both")
    if len(archives) > 1:
        raise UploadError(400, "send one 'archive' zip per smear")
    if archives:
        data = archives[0].read(config.max_upload_bytes + 1)
        images = read_zip(data, config)
    else:
        if len(image_files) > config.max_images_per_smear:
            raise UploadError(413, f"{len(image_files)} images, more than the limit of {config.max_images_per_smear} per smear")
        images = []
        for f in image_files:
            name = _check_name(f.filename or f"image_{len(images) + 1:04d}")
            data = f.read(config.max_image_bytes + 1)
            if len(data) > config.max_image_bytes:
                raise UploadError(413, f"{name}: over the {config.max_image_bytes}-byte limit per image")
            images.append(UploadedImage(name, data))
    if not images:
        raise UploadError(400, "the smear is empty: send at least one cell image as 'images' or in an 'archive' zip")
    check_request_pixels(images, config)
    names = [i.name for i in images]
    if len(set(names)) != len(names):
        seen: dict[str, int] = {}
        for img in images:
            seen[img.name] = seen.get(img.name, 0) + 1
            if seen[img.name] > 1:
                stem, ext = posixpath.splitext(img.name)
                img.name = f"{stem}_{seen[img.name]}{ext}"
    return images
