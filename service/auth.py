"""API keys for laboratory systems, browser sessions for clinicians, and the one place where every
request is authenticated.

A key is ``mdsdx_<prefix>_<secret>``, printed once at creation. Only its SHA-256 is stored: the
secret is 32 random bytes, so a fast hash is as safe as a slow one and keeps each request cheap.
Requests send ``Authorization: Bearer <key>``. Browsers sign in with a key once and get a session:
the (signed, ``HttpOnly``, ``SameSite=Lax``, and over HTTPS ``Secure``) cookie holds a random token,
the database its hash (:class:`~service.db.BrowserSession`). Every request checks that the session
has not ended (sign-out), has not been idle longer than ``MDSDX_SESSION_IDLE_SECONDS`` and that its
key is still active, so revoking a key signs its browsers out at once. Forms that a session posts
carry a CSRF token (Flask-WTF); Bearer requests need none, since a browser never adds that header to
a cross-site request. ``--dev`` (``MDSDX_DEV=1``) turns authentication off and the service says so loudly.

Authorisation is here too, in one table: :data:`PERMISSIONS` names what each endpoint and method
needs, :data:`ROLE_PERMISSIONS` what each role grants. A key with ``own_smears_only`` sees only the
smears it submitted (:func:`visible_smears`, :func:`visible_smear`); others are 404 to it.
"""
from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import current_app, g, jsonify, redirect, request, session, url_for
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import delete, select, update

from service.db import ApiKey, BrowserSession, as_utc, utcnow
from service.storage import sha256

KEY_PREFIX = "mdsdx"
# last_seen_at / last_used_at are written at most once a minute: a write on every page view and
# every gallery image would contend for SQLite's single write lock.
TOUCH_SECONDS = 60
# Endpoints open without a key: health probes, the sign-in pages and the API description.
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "health.metrics", "pages.login", "pages.logout",
                              "pages.docs", "pages.docs_static", "api-docs.openapi_json", "static"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# What each role may do. 'submitter' is what every key could do before roles existed.
ROLE_PERMISSIONS = {
    "reviewer": frozenset({"read"}),
    "submitter": frozenset({"read", "submit", "delete_own"}),
    "admin": frozenset({"read", "submit", "delete_own", "delete_any"}),
}
ROLES = tuple(ROLE_PERMISSIONS)
# The permission each (endpoint, method) needs. An endpoint neither here nor public is refused (403),
# so a new view is closed until it is added; tests/test_auth.py checks that every route is covered.
PERMISSIONS = {
    ("api.Smears", "GET"): "read", ("api.Smears", "POST"): "submit",
    ("api.SmearItem", "GET"): "read", ("api.SmearItem", "DELETE"): "delete_own",
    ("api.SmearFhir", "GET"): "read", ("api.SmearReport", "GET"): "read",
    ("api.Granules", "POST"): "submit",
    ("pages.index", "GET"): "read", ("pages.report", "GET"): "read", ("pages.cell_image", "GET"): "read",
    ("pages.cohort", "GET"): "read", ("pages.models", "GET"): "read", ("pages.model_card", "GET"): "read",
    ("pages.upload", "GET"): "submit", ("pages.upload", "POST"): "submit",
}

csrf = CSRFProtect()


def new_key() -> tuple[str, str, str]:
    """(full key, prefix, sha256 of the key)."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, sha256(key.encode())


def create_key(db, name: str, role: str = "submitter", own_smears_only: bool = False) -> str:
    """Create a key named ``name`` with ``role`` (one of :data:`ROLES`) and return it (the only time it is shown)."""
    from core.errors import InvalidInput
    if not name or len(name) > 100:
        raise InvalidInput("a key name must have 1 to 100 characters")
    if role not in ROLE_PERMISSIONS:
        raise InvalidInput(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    existing = db.scalar(select(ApiKey).where(ApiKey.name == name))
    if existing is not None and existing.revoked_at is None:
        raise InvalidInput(f"a key named {name!r} exists; revoke it first or choose another name")
    key, prefix, digest = new_key()
    if existing is not None:
        existing.prefix, existing.key_hash, existing.revoked_at, existing.created_at = prefix, digest, None, utcnow()
        existing.role, existing.own_smears_only = role, own_smears_only
    else:
        db.add(ApiKey(name=name, prefix=prefix, key_hash=digest, role=role, own_smears_only=own_smears_only))
    db.commit()
    return key


def revoke_key(db, name: str) -> None:
    """Revoke the key ``name`` and end its browser sessions."""
    from core.errors import InvalidInput
    row = db.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None or row.revoked_at is not None:
        raise InvalidInput(f"no active key named {name!r}")
    now = utcnow()
    row.revoked_at = now
    db.execute(update(BrowserSession).where(BrowserSession.api_key_id == row.id, BrowserSession.ended_at.is_(None))
               .values(ended_at=now))
    db.commit()


def _touch_due(last, now) -> bool:
    return last is None or (now - as_utc(last)).total_seconds() >= TOUCH_SECONDS


def verify_key(db, key: str) -> ApiKey | None:
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX:
        return None
    digest = sha256(key.encode())
    for row in db.scalars(select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None))):
        if hmac.compare_digest(row.key_hash, digest):
            now = utcnow()
            if _touch_due(row.last_used_at, now):
                row.last_used_at = now
                db.commit()
            return row
    return None


def start_session(db, key: ApiKey, idle_seconds: int) -> str:
    """A new browser session for ``key``; returns the token for the cookie. Sessions that ended or
    idled out are deleted on the way."""
    now = utcnow()
    db.execute(delete(BrowserSession).where(BrowserSession.ended_at.is_not(None)
                                            | (BrowserSession.last_seen_at < now - timedelta(seconds=idle_seconds))))
    token = secrets.token_urlsafe(32)
    db.add(BrowserSession(id=sha256(token.encode()), api_key_id=key.id, created_at=now, last_seen_at=now))
    db.commit()
    return token


def end_session(db, token: str) -> None:
    row = db.get(BrowserSession, sha256(token.encode()))
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        db.commit()


def session_key(db, token: str, idle_seconds: int) -> ApiKey | None:
    """The active key of the session with ``token``, or None when the session is unknown, ended,
    idle for longer than ``idle_seconds`` or its key was revoked."""
    row = db.get(BrowserSession, sha256(token.encode()))
    if row is None or row.ended_at is not None:
        return None
    now = utcnow()
    if (now - as_utc(row.last_seen_at)).total_seconds() > idle_seconds:
        row.ended_at = now
        db.commit()
        return None
    key = db.get(ApiKey, row.api_key_id)
    if key is None or key.revoked_at is not None:
        return None
    if _touch_due(row.last_seen_at, now):
        row.last_seen_at = now
        db.commit()
    return key


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _is_api() -> bool:
    return request.blueprint == "api"


def _unauthenticated():
    if _is_api():
        return jsonify(code=401, status="Unauthorized",
                       message="send a valid API key as 'Authorization: Bearer <key>' "
                               "(create one with `mdsdx keys create NAME`)"), 401
    return redirect(url_for("pages.login", next=request.full_path))


def _forbidden(role: str, permission: str | None):
    what = {"read": "read smears", "submit": "submit smears or images", "delete_own": "delete smears"}.get(
        permission, "use this endpoint")
    message = (f"a key with the role {role!r} may not {what}; an administrator creates keys with "
               f"`mdsdx keys create NAME --role {'|'.join(ROLES)}`")
    if _is_api():
        return jsonify(code=403, status="Forbidden", message=message), 403
    from flask import render_template
    return render_template("error.html", title="Not allowed", message=message), 403


def may(permission: str) -> bool:
    """Whether the caller holds ``permission`` (always, in dev mode)."""
    key = g.get("api_key")
    if key is None:
        return current_app.config["MDSDX"].dev
    return permission in ROLE_PERMISSIONS.get(key.role, ())


def may_delete(smear) -> bool:
    """An admin deletes any smear; a submitter only the smears its key submitted."""
    return may("delete_any") or (may("delete_own") and (current_app.config["MDSDX"].dev
                                                      or smear.api_key_id == g.api_key_id))


def visible_smears(stmt):
    """``stmt`` (a select over Smear) limited to what the caller may see."""
    from service.db import Smear
    key = g.get("api_key")
    if key is not None and key.own_smears_only:
        stmt = stmt.where(Smear.api_key_id == key.id)
    return stmt


def visible_smear(db, smear_id: str):
    """The smear ``smear_id`` if it exists and the caller may see it, else None (a 404 to the caller)."""
    import uuid

    from service.db import Smear
    try:
        uuid.UUID(smear_id)
    except ValueError:
        return None
    return db.scalar(visible_smears(select(Smear).where(Smear.id == smear_id)))


def authenticate():
    """``before_request``: who is asking. Sets ``g.api_key`` (None in dev mode and on public
    endpoints) and ``g.api_key_id``; checks the CSRF token of a form a browser posts."""
    g.api_key, g.api_key_id, g.via_session = None, None, False
    if request.endpoint is None:  # 404 / 405: nothing to protect
        return None
    bearer = _bearer()
    if request.method in UNSAFE_METHODS and not _is_api() and bearer is None:
        csrf.protect()
    cfg = current_app.config["MDSDX"]
    if request.endpoint in PUBLIC_ENDPOINTS or cfg.dev:
        return None
    if bearer is not None:
        row = verify_key(g.db, bearer)
    elif not _is_api() and session.get("sid"):  # the API takes Bearer keys only: no cookie, no CSRF
        row = session_key(g.db, session["sid"], cfg.session_idle_seconds)
        if row is None:
            session.clear()
        g.via_session = row is not None
    else:
        row = None
    if row is None:
        return _unauthenticated()
    g.api_key, g.api_key_id = row, row.id
    method = "GET" if request.method == "HEAD" else request.method
    permission = PERMISSIONS.get((request.endpoint, method))
    if method != "OPTIONS" and (permission is None or not may(permission)):
        return _forbidden(row.role, permission)
    return None


def init_app(app) -> None:
    """Session cookie settings, CSRF and the authentication hook."""
    from flask.sessions import SecureCookieSessionInterface
    from flask_wtf.csrf import CSRFError

    class SessionInterface(SecureCookieSessionInterface):
        def get_cookie_secure(self, app) -> bool:  # Secure whenever this request came over HTTPS
            return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    cfg = app.config["MDSDX"]
    app.session_interface = SessionInterface()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=cfg.session_idle_seconds),
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in authenticate(), where Bearer requests are told apart
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which idles out
    )
    csrf.init_app(app)
    app.before_request(authenticate)

    @app.errorhandler(CSRFError)
    def csrf_failed(exc):
        from flask import render_template
        message = f"{exc.description} Reload the page and send the form again."
        if request.endpoint == "pages.login":
            return render_template("login.html", next=url_for("pages.index"), error=message), 400
        return render_template("error.html", title="Form expired", message=message), 400
