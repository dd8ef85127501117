"""Service configuration: a dataclass with documented defaults, read once from the environment.

| variable | default | meaning |
|---|---|---|
| ``MDSDX_HOME`` | ``./mdsdx-home`` | data directory: SQLite file, stored images (by content hash), secret key |
| ``MDSDX_DATABASE_URL`` | ``sqlite:///$MDSDX_HOME/mdsdx.sqlite3`` | any SQLAlchemy URL, e.g. ``postgresql+psycopg://...`` |
| ``MDSDX_DEV`` | unset | ``1`` turns authentication off (also ``mdsdx serve --dev``); never in production |
| ``MDSDX_CELL_MODEL`` / ``MDSDX_DIAGNOSER`` / ``MDSDX_AKIRA_MODEL`` | shipped models | model folders |
| ``MDSDX_MAX_IMAGE_BYTES`` | 10485760 | one image file, bytes |
| ``MDSDX_MAX_IMAGE_PIXELS`` | 16777216 | one image, width x height (decompression-bomb guard) |
| ``MDSDX_MAX_IMAGES_PER_SMEAR`` | 1000 | images in one smear |
| ``MDSDX_MAX_REQUEST_PIXELS`` | 160000000 | sum of the pixels that a request's image headers declare, checked before decoding (1000 crops of 400 x 400) |
| ``MDSDX_MAX_UPLOAD_BYTES`` | 209715200 | one request body, bytes |
| ``MDSDX_MAX_ZIP_UNCOMPRESSED_BYTES`` | 524288000 | sum of a zip's uncompressed sizes |
| ``MDSDX_MAX_ZIP_RATIO`` | 50 | largest compression ratio of a zip entry (zip-bomb guard) |
| ``MDSDX_MAX_GRANULE_IMAGES`` | 200 | images in one ``/v1/granules`` request |
| ``MDSDX_IMAGE_GRACE_SECONDS`` | 900 | deleting a smear keeps unreferenced images written or reused this recently, seconds |
| ``MDSDX_DATABASE_TIMEOUT_SECONDS`` | 5 | longest wait for a database lock or connection; then 503 with ``Retry-After`` |
| ``MDSDX_SESSION_IDLE_SECONDS`` | 28800 | a browser session unused this long ends (8 h), seconds |
| ``MDSDX_FORWARDED_PROXIES`` | 0 | reverse proxies in front of the service whose ``X-Forwarded-Proto``/``-For`` are trusted (1 behind one nginx); HTTPS there makes the session cookie ``Secure`` |
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path


MAX_PAGE = 100_000  # listings: 10 million smears at 100 a page; keeps the SQL OFFSET far inside a 64-bit integer


@dataclass(frozen=True)
class ServiceConfig:
    home: Path = Path("mdsdx-home")
    database_url: str | None = None
    dev: bool = False
    cell_model_dir: str | None = None
    diagnoser_dir: str | None = None
    akira_model_dir: str | None = None
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_images_per_smear: int = 1000
    max_request_pixels: int = 1000 * 400 * 400  # a full smear of analyser crops (about 360 x 363) fits
    max_upload_bytes: int = 200 * 1024 * 1024
    max_zip_uncompressed_bytes: int = 500 * 1024 * 1024
    max_zip_ratio: int = 50
    max_granule_images: int = 200
    image_grace_seconds: int = 900
    database_timeout_seconds: int = 5
    session_idle_seconds: int = 8 * 3600
    forwarded_proxies: int = 0
    load_models: bool = True

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(Path(self.home) / 'mdsdx.sqlite3').resolve()}"

    @property
    def images_dir(self) -> Path:
        return Path(self.home) / "images"

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "ServiceConfig":
        env = os.environ if environ is None else environ
        values: dict = {}
        if env.get("MDSDX_HOME"):
            values["home"] = Path(env["MDSDX_HOME"])
        if env.get("MDSDX_DATABASE_URL"):
            values["database_url"] = env["MDSDX_DATABASE_URL"]
        if env.get("MDSDX_DEV", "").lower() in ("1", "true", "yes"):
            values["dev"] = True
        for key, name in (("cell_model_dir", "MDSDX_CELL_MODEL"), ("diagnoser_dir", "MDSDX_DIAGNOSER"),
                          ("akira_model_dir", "MDSDX_AKIRA_MODEL")):
            if env.get(name):
                values[key] = env[name]
        ints = [f.name for f in fields(cls) if f.type == "int"]
        for name in ints:
            var = f"MDSDX_{name.upper()}"
            if env.get(var):
                try:
                    values[name] = int(env[var])
                except ValueError as exc:
                    raise ValueError(f"{var} must be an integer, got {env[var]!r}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
