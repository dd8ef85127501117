"""``mdsdx keys create|revoke|list``: API keys for laboratory systems (stored hashed)."""
from __future__ import annotations

import click

from cli.common import service_db


@click.group()
def keys() -> None:
    """Manage API keys (MDSDX_HOME / MDSDX_DATABASE_URL select the database)."""


ROLES = ("submitter", "reviewer", "admin")  # service.auth.ROLES, kept here so `mdsdx --help` imports nothing heavy


@keys.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="submitter", show_default=True,
              help="submitter: submit, read, delete its own smears; reviewer: read only; admin: also delete any smear.")
@click.option("--own-smears-only", is_flag=True, help="The key sees only the smears it submitted.")
def create(name: str, role: str, own_smears_only: bool) -> None:
    """Create a key and print it once."""
    from service.auth import create_key
    with service_db()[1] as db:
        key = create_key(db, name, role=role, own_smears_only=own_smears_only)
    click.echo(key)
    scope = ", own smears only" if own_smears_only else ""
    click.echo(f"(key {name!r} created, role {role}{scope}; it is not stored and will not be shown again)", err=True)


@keys.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a key by name."""
    from service.auth import revoke_key
    with service_db()[1] as db:
        revoke_key(db, name)
    click.echo(f"revoked {name}")


@keys.command("list")
def list_keys() -> None:
    """Names, prefixes and status of the keys (never the keys themselves)."""
    from sqlalchemy import select

    from service.db import ApiKey
    with service_db()[1] as db:
        for k in db.scalars(select(ApiKey).order_by(ApiKey.name)):
            status = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            used = f"last used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used"
            scope = "own smears" if k.own_smears_only else "all smears"
            click.echo(f"{k.name}\tmdsdx_{k.prefix}_...\t{k.role}\t{scope}\t{status}\t{used}")
