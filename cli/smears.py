"""``mdsdx smears list|delete|gc``: the stored smears, for operators on the service's machine."""
from __future__ import annotations

import click

from cli.common import service_db


@click.group()
def smears() -> None:
    """List and delete stored smears (MDSDX_HOME / MDSDX_DATABASE_URL select the database)."""


@smears.command("list")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Newest smears shown.")
def list_smears(limit: int) -> None:
    """Id, time, slide id, call and cell count of the newest smears."""
    from sqlalchemy import select

    from service.db import Smear, as_utc
    _, db = service_db()
    with db:
        for s in db.scalars(select(Smear).order_by(Smear.created_at.desc(), Smear.id).limit(limit)):
            example = "\texample" if s.example else ""
            click.echo(f"{s.id}\t{as_utc(s.created_at):%Y-%m-%d %H:%M}\t{s.external_id}\t{s.call}\t{s.n_cells} cells{example}")


@smears.command("delete")
@click.argument("smear_ids", nargs=-1, required=True)
def delete(smear_ids: tuple[str, ...]) -> None:
    """Delete smears by id, with their cells and the images no other smear uses. All ids are checked first."""
    from core.errors import InvalidInput
    from service.db import Smear
    from service.smears import delete_smear
    from service.storage import ImageStore
    cfg, db = service_db()
    with db:
        rows = [db.get(Smear, i) for i in smear_ids]
        missing = [i for i, row in zip(smear_ids, rows) if row is None]
        if missing:
            raise InvalidInput(f"no smear with id {', '.join(missing)}; nothing deleted")
        store = ImageStore(cfg.images_dir)
        for row in rows:
            done = delete_smear(db, store, row, cfg.image_grace_seconds)
            click.echo(f"deleted {done['id']}: {done['n_cells']} cells, {done['images_removed']} image files removed, "
                       f"{done['images_kept']} kept for the grace period")


@smears.command("gc")
@click.option("--grace-seconds", type=click.IntRange(0), default=None,
              help="Keep files written or reused this recently [default: MDSDX_IMAGE_GRACE_SECONDS, 900].")
def gc(grace_seconds: int | None) -> None:
    """Remove stored image files that no cell references (left by deletions within the grace period)."""
    from service.smears import sweep_images
    from service.storage import ImageStore
    cfg, db = service_db()
    store = ImageStore(cfg.images_dir)
    with db:
        removed, kept = sweep_images(db, store, store.digests(),
                                     cfg.image_grace_seconds if grace_seconds is None else grace_seconds)
    click.echo(f"{removed} unreferenced image files removed, {kept} recent ones kept")
