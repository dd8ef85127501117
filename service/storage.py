"""Images on disk by content hash: ``<home>/images/ab/cd/<sha256>.<ext>``.

A file is written to a temporary name and renamed into place, so a reader never sees half a
file; writing the same content twice only refreshes the file's modification time. :meth:`ImageStore.put_many`
reports which files it created, so a failed request can remove exactly those (unless another request
has reused one since) and leave nothing half-stored. :meth:`ImageStore.remove_stale` spares files written or reused recently, so a sweep
never removes an image that a request still being stored is about to reference.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

EXTENSIONS = {b"\xff\xd8\xff": ".jpg", b"\x89PNG": ".png", b"II*\x00": ".tif", b"MM\x00*": ".tif", b"BM": ".bmp"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _extension(data: bytes) -> str:
    return next((ext for magic, ext in EXTENSIONS.items() if data.startswith(magic)), ".bin")


class ImageStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, digest: str) -> Path | None:
        folder = self.root / digest[:2] / digest[2:4]
        matches = list(folder.glob(f"{digest}.*")) if folder.is_dir() else []
        return matches[0] if matches else None

    def put(self, data: bytes) -> tuple[str, int | None]:
        """Store ``data``; returns (sha256, the new file's st_mtime_ns, or None if the file existed)."""
        digest = sha256(data)
        existing = self.path_for(digest)
        if existing:
            os.utime(existing)  # marks it in use, for remove_stale and remove_untouched
            return digest, None
        folder = self.root / digest[:2] / digest[2:4]
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        path = folder / f"{digest}{_extension(data)}"
        os.replace(tmp, path)
        return digest, path.stat().st_mtime_ns

    def put_many(self, blobs: list[bytes]) -> tuple[list[str], dict[str, int]]:
        """Store every blob; returns (digests in order, {digest: st_mtime_ns} of the files newly created)."""
        digests, created = [], {}
        try:
            for data in blobs:
                digest, mtime_ns = self.put(data)
                digests.append(digest)
                if mtime_ns is not None:
                    created[digest] = mtime_ns
        except BaseException:
            self.remove_untouched(created)
            raise
        return digests, created

    def remove_untouched(self, created: dict[str, int]) -> None:
        """Undo :meth:`put_many`: remove the files it created, except those another request has reused since."""
        for digest, mtime_ns in created.items():
            path = self.path_for(digest)
            if path and path.stat().st_mtime_ns == mtime_ns:
                path.unlink(missing_ok=True)

    def remove_stale(self, digests: Iterable[str], older_than: float) -> list[str]:
        """Remove the files of ``digests`` last written or reused before ``older_than`` (Unix seconds).

        Returns the digests removed; missing files and newer ones are left alone."""
        removed = []
        for digest in digests:
            path = self.path_for(digest)
            if path and path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)
                removed.append(digest)
        return removed

    def digests(self) -> Iterator[str]:
        """Every stored digest (temporary ``.part-`` files excluded)."""
        if self.root.is_dir():
            for path in self.root.glob("??/??/*.*"):
                if not path.name.startswith(".part-"):
                    yield path.name.split(".", 1)[0]
