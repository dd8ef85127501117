"""API keys for laboratory systems and the browser login for clinicians.

A key is ``mdsdx_<prefix>_<secret>``, printed once at creation. Only its SHA-256 is stored: the
secret is 32 random bytes, so a fast hash is as safe as a slow one and keeps each request cheap.
Requests send ``Authorization: Bearer <key>``; browsers sign in with a key once and get a signed
session cookie. ``--dev`` (``MDSDX_DEV=1``) turns all of this off and the service says so loudly.
"""
from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import current_app, g, jsonify, redirect, request, session, url_for
from sqlalchemy import select

from service.db import ApiKey, utcnow
from service.storage import sha256

KEY_PREFIX = "mdsdx"


def new_key() -> tuple[str, str, str]:
    """(full key, prefix, sha256 of the key)."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, sha256(key.encode())


def create_key(db, name: str) -> str:
    """Create a key named ``name`` and return it (the only time it is shown)."""
    from core.errors import InvalidInput
    if not name or len(name) > 100:
        raise InvalidInput("a key name must have 1 to 100 characters")
    existing = db.scalar(select(ApiKey).where(ApiKey.name == name))
    if existing is not None and existing.revoked_at is None:
        raise InvalidInput(f"a key named {name!r} exists; revoke it first or choose another name")
    key, prefix, digest = new_key()
    if existing is not None:
        existing.prefix, existing.key_hash, existing.revoked_at, existing.created_at = prefix, digest, None, utcnow()
    else:
        db.add(ApiKey(name=name, prefix=prefix, key_hash=digest))
    db.commit()
    return key


def revoke_key(db, name: str) -> None:
    from core.errors import InvalidInput
    row = db.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None or row.revoked_at is not None:
        raise InvalidInput(f"no active key named {name!r}")
    row.revoked_at = utcnow()
    db.commit()


def verify_key(db, key: str) -> ApiKey | None:
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX:
        return None
    digest = sha256(key.encode())
    for row in db.scalars(select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None))):
        if hmac.compare_digest(row.key_hash, digest):
            row.last_used_at = utcnow()
            db.commit()
            return row
    return None


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def require_key(view):
    """API views: a valid Bearer key, else 401 JSON."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        g.api_key_id = None
        if current_app.config["MDSDX"].dev:
            return view(*args, **kwargs)
        key = _bearer()
        row = verify_key(g.db, key) if key else None
        if row is None:
            return jsonify(code=401, status="Unauthorized",
                           message="send a valid API key as 'Authorization: Bearer <key>' (create one with `mdsdx keys create NAME`)"), 401
        g.api_key_id = row.id
        return view(*args, **kwargs)
    return wrapper


def require_login(view):
    """Pages: a signed-in session or a Bearer key, else the sign-in page."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_app.config["MDSDX"].dev or session.get("key_id"):
            return view(*args, **kwargs)
        key = _bearer()
        if key and verify_key(g.db, key):
            return view(*args, **kwargs)
        return redirect(url_for("pages.login", next=request.full_path))
    return wrapper
