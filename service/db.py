"""Storage schema (SQLAlchemy 2): API keys, browser sessions, smears, their cells, and granule scorings.

The schema is versioned: ``schema_version`` holds the number of the last migration applied, and
:func:`migrate` applies the missing ones in order inside one transaction. Version 1 creates every
missing table with the columns of this module; each later migration creates the tables and adds the
columns that a database made by an older mdsdx lacks, so it is a no-op on a fresh database and
``mdsdx serve`` (or any ``mdsdx keys``/``smears`` command) upgrades an existing one in place. SQLite by default,
PostgreSQL through ``MDSDX_DATABASE_URL``. Every stored prediction carries the versions of the
models that made it (the audit trail).
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint,
                        create_engine, false, select, text, update)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every time stored here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # what the key may do (service.auth.ROLE_PERMISSIONS) and whether it sees only the smears it submitted
    role: Mapped[str] = mapped_column(String(16), default="submitter", server_default="submitter")
    own_smears_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class BrowserSession(Base):
    """A browser signed in with a key. The cookie holds a random token; only its SHA-256 is stored,
    so every request can check that the session has not ended, idled out or lost its key."""
    __tablename__ = "browser_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's token
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Smear(Base):
    __tablename__ = "smears"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key", name="uq_smear_idempotency"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), index=True)
    patient_pseudonym: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # what a retry with the same Idempotency-Key must match: see service.smears.request_fingerprint
    request_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    example: Mapped[bool] = mapped_column(Boolean, default=False)
    n_cells: Mapped[int] = mapped_column(Integer)
    p_mds: Mapped[float] = mapped_column(Float)
    call: Mapped[str] = mapped_column(String(8))
    threshold: Mapped[float] = mapped_column(Float)
    cellnet_version: Mapped[str] = mapped_column(String(100))
    diagnoser_version: Mapped[str] = mapped_column(String(100))
    result: Mapped[dict] = mapped_column(JSON)
    cells: Mapped[list["Cell"]] = relationship(back_populates="smear", order_by="Cell.position",
                                               cascade="all, delete-orphan")


class Cell(Base):
    __tablename__ = "cells"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    smear_id: Mapped[str] = mapped_column(ForeignKey("smears.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    cell_type: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    dysplastic: Mapped[bool] = mapped_column(Boolean, default=False)
    features: Mapped[list] = mapped_column(JSON)
    smear: Mapped[Smear] = relationship(back_populates="cells")


class GranuleBatch(Base):
    __tablename__ = "granule_batches"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    akira_version: Mapped[str] = mapped_column(String(100))
    result: Mapped[dict] = mapped_column(JSON)


def _add_missing_columns(conn, table) -> set[str]:
    """ALTER TABLE ... ADD COLUMN for each column of ``table`` the database lacks (each must be
    nullable or have a server default, so rows already stored stay valid); returns the names added."""
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateColumn
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    for column in table.columns:
        if column.name not in present:
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
    return {c.name for c in table.columns} - present


# Migrations, applied in order; see the module docstring.
def _v1(conn) -> None:
    Base.metadata.create_all(conn)


def _v2(conn) -> None:
    """Server-side browser sessions."""
    BrowserSession.__table__.create(conn, checkfirst=True)


def _v3(conn) -> None:
    """smears.request_sha256 (an Idempotency-Key reused with another request is refused)."""
    _add_missing_columns(conn, Smear.__table__)


def _v4(conn) -> None:
    """api_keys.role and api_keys.own_smears_only. Keys made before roles keep what every key could do
    then (submit, read every smear, delete their own): the role 'submitter'. The key named 'admin',
    which the first ``mdsdx serve`` creates, becomes 'admin'."""
    if "role" in _add_missing_columns(conn, ApiKey.__table__):
        conn.execute(update(ApiKey.__table__).where(ApiKey.__table__.c.name == "admin").values(role="admin"))


MIGRATIONS = [_v1, _v2, _v3, _v4]
SCHEMA_VERSION = len(MIGRATIONS)


def make_engine(url: str, timeout_seconds: float = 5):
    """An engine whose statements wait at most ``timeout_seconds`` for a lock (SQLite's busy timeout,
    PostgreSQL's ``lock_timeout``) and for a connection, then raise OperationalError, which the
    service answers with 503 and ``Retry-After``."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout_seconds})
    connect_args = {}
    if url.startswith("postgresql"):
        connect_args = {"connect_timeout": max(1, round(timeout_seconds)),
                        "options": f"-c lock_timeout={int(timeout_seconds * 1000)}"}
    return create_engine(url, pool_pre_ping=True, pool_timeout=timeout_seconds, connect_args=connect_args)


def migrate(engine) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version now in force."""
    with engine.begin() as conn:
        SchemaVersion.__table__.create(conn, checkfirst=True)
        current = conn.execute(select(SchemaVersion.version).order_by(SchemaVersion.version.desc())).scalar() or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"database schema {current} is newer than this mdsdx ({SCHEMA_VERSION}); upgrade mdsdx")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version - 1](conn)
            conn.execute(SchemaVersion.__table__.insert().values(version=version, applied_at=utcnow()))
    return SCHEMA_VERSION


def make_session_factory(engine):
    return sessionmaker(bind=engine, expire_on_commit=False)


def check_writable(engine, timeout_seconds: float) -> None:
    """Take the write lock a smear's insert needs, within ``timeout_seconds``, and let it go at once.
    Raises (OperationalError) while another writer holds it that long or the database is unreachable."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = conn.connection.dbapi_connection
            previous = raw.execute("PRAGMA busy_timeout").fetchone()[0]
            raw.execute(f"PRAGMA busy_timeout = {int(timeout_seconds * 1000)}")
            try:
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("ROLLBACK")
            finally:
                raw.execute(f"PRAGMA busy_timeout = {int(previous)}")
        else:
            with conn.begin() as tx:
                conn.execute(text(f"SET LOCAL lock_timeout = {int(timeout_seconds * 1000)}"))
                conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_seconds * 1000)}"))
                conn.execute(text("LOCK TABLE smears IN ROW EXCLUSIVE MODE"))  # the lock an INSERT takes
                tx.rollback()
