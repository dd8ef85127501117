"""Shared fixtures. Tests that read ../shared/data skip, with the reason, where it is absent."""
from __future__ import annotations

import numpy as np
import pytest

from core.datasets import default_data_root

DATA_ROOT = default_data_root()
needs_shared_data = pytest.mark.skipif(not (DATA_ROOT / "pbc").is_dir(),
                                       reason=f"{DATA_ROOT} is absent (a fresh machine has no shared data)")


@pytest.fixture(scope="session")
def data_root():
    if not (DATA_ROOT / "pbc").is_dir():
        pytest.skip(f"{DATA_ROOT} is absent (a fresh machine has no shared data)")
    return DATA_ROOT


def synthetic_cell(px: int = 256, seed: int = 0, height: int | None = None) -> np.ndarray:
    """A cell-like RGB uint8 image: pink background, a lilac cytoplasm disc and a purple nucleus."""
    rng = np.random.default_rng(seed)
    h, w = height or px, px
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2, w / 2
    r = np.hypot(yy - cy, xx - cx)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (232, 196, 200)
    img[r < 0.32 * px] = (214, 190, 214)
    nucleus = np.hypot(yy - cy + 0.06 * px, (xx - cx) * 1.3) < 0.16 * px
    img[nucleus] = (110, 60, 140)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(seed: int = 0, px: int = 96, quality: int = 90) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(synthetic_cell(px, seed)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from tiny_models import make_tiny_models
    return make_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_models):
    from diagnose.pipeline import SmearDiagnosisPipeline
    return SmearDiagnosisPipeline(tiny_models["cellnet"], tiny_models["diagnoser"])


@pytest.fixture(scope="session")
def tiny_scorer(tiny_models):
    from models.engine.akira.infer import GranuleScorer
    return GranuleScorer(tiny_models["akira"])


def fresh_test_database() -> str | None:
    """With ``MDSDX_TEST_POSTGRES_URL`` set (an admin URL such as
    ``postgresql+psycopg://postgres@127.0.0.1:5433/postgres``), a new empty PostgreSQL database for
    one test, so the service tests run against PostgreSQL; otherwise None (a SQLite file)."""
    import os
    import uuid
    base = os.environ.get("MDSDX_TEST_POSTGRES_URL")
    if not base:
        return None
    from sqlalchemy import create_engine, make_url, text
    name = f"mdsdx_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(autouse=True)
def _close_app_databases(monkeypatch):
    """Dispose of the database connections of every app a test creates (PostgreSQL warns otherwise)."""
    import service.app
    created = []
    original = service.app.create_app

    def tracking(*args, **kwargs):
        created.append(original(*args, **kwargs))
        return created[-1]
    monkeypatch.setattr(service.app, "create_app", tracking)
    yield
    for app in created:
        app.extensions["mdsdx"]["engine"].dispose()


def service_config(home, tiny_models, **overrides):
    from service.config import ServiceConfig
    values = dict(home=home, database_url=fresh_test_database(), cell_model_dir=str(tiny_models["cellnet"]), diagnoser_dir=str(tiny_models["diagnoser"]),
                  akira_model_dir=str(tiny_models["akira"]), max_images_per_smear=40, max_image_bytes=300_000,
                  max_upload_bytes=8_000_000, max_zip_uncompressed_bytes=4_000_000, max_granule_images=10,
                  load_models=False)
    values.update(overrides)
    return ServiceConfig(**values)


@pytest.fixture
def app(tmp_path, tiny_models, tiny_pipeline, tiny_scorer):
    """A fresh app with its own temporary database and image store; models shared across tests."""
    from service.app import create_app
    app = create_app({"MDSDX": service_config(tmp_path / "home", tiny_models), "TESTING": True})
    app.extensions["mdsdx"]["pipeline"] = tiny_pipeline
    app.extensions["mdsdx"]["granules"] = tiny_scorer
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def api_key(app):
    from service.auth import create_key
    with app.extensions["mdsdx"]["sessions"]() as db:
        return create_key(db, "lab-system")


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of the form on ``path``, as a browser would send it back."""
    import re
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token in the form of {path}"
    return match.group(1)


def login(client, key: str, next: str | None = None):
    """Sign in through the /login form (with its CSRF token); returns the response."""
    data = {"key": key, "csrf_token": csrf_token(client)}
    if next is not None:
        data["next"] = next
    return client.post("/login", data=data)
