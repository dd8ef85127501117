"""First start of a data directory: schema, a first admin key, and the bundled example smears.

The example smears (``service/examples/*.zip``, SIMULATED from held-out crops) are diagnosed with
the shipped models once, so the home page shows real reports on a fresh machine.
"""
from __future__ import annotations

import csv
import logging
from importlib import resources
from pathlib import Path

from sqlalchemy import func, select

from service.db import ApiKey, Smear

log = logging.getLogger(__name__)


def example_archives() -> list[tuple[str, Path]]:
    folder = Path(str(resources.files("service").joinpath("examples")))
    index = folder / "examples.csv"
    if not index.is_file():
        return []
    with index.open() as fh:
        return [(row["external_id"], folder / row["archive"]) for row in csv.DictReader(fh)]


def init_home(app, create_admin_key: bool = True) -> dict:
    """Returns ``{"admin_key": key or None, "examples": n}``; safe to call on every start."""
    from service.auth import create_key
    from service.smears import submit_smear
    from service.uploads import read_zip
    ext = app.extensions["mdsdx"]
    out = {"admin_key": None, "examples": 0}
    with ext["sessions"]() as db:
        if create_admin_key and not app.config["MDSDX"].dev and db.scalar(select(func.count()).select_from(ApiKey)) == 0:
            out["admin_key"] = create_key(db, "admin", role="admin")
        if db.scalar(select(func.count()).select_from(Smear)) == 0:
            for external_id, archive in example_archives():
                images = read_zip(archive.read_bytes(), app.config["MDSDX"])
                submit_smear(db, ext["store"], ext["pipeline"], images, external_id, None, None,
                             idempotency_key=f"example:{external_id}", example=True)
                out["examples"] += 1
    return out
