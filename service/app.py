"""The Flask application factory (after the official tutorial's ``create_app``).

Defaults first, then the environment (:class:`ServiceConfig`), then ``test_config``; then the
database is migrated and the blueprints registered: ``api`` (``/v1`` JSON, OpenAPI at
``/openapi.json``, docs UI at ``/docs``), ``pages`` (HTML for clinicians) and ``health``.
No work happens at import time; models load in :func:`load_models` (called by the factory unless
``load_models`` is false, and by gunicorn's ``post_worker_init`` hook).
"""
from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

from flask import Flask, g, request

from service.config import ServiceConfig

log = logging.getLogger(__name__)


def _secret_key(home: Path) -> str:
    path = home / "secret_key"
    if not path.is_file():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def load_models(app: Flask) -> None:
    """Load the stage-1 model, the diagnoser and AKIRA once for this process."""
    from core.preprocess import ImageLimits
    from diagnose.pipeline import SmearDiagnosisPipeline
    cfg: ServiceConfig = app.config["MDSDX"]
    limits = ImageLimits(max_image_bytes=cfg.max_image_bytes, max_image_pixels=cfg.max_image_pixels)
    ext = app.extensions["mdsdx"]
    if ext.get("pipeline") is None:
        ext["pipeline"] = SmearDiagnosisPipeline(cfg.cell_model_dir, cfg.diagnoser_dir, limits=limits)
    if ext.get("granules") is None:
        try:
            from models.engine.akira.infer import GranuleScorer
            ext["granules"] = GranuleScorer(cfg.akira_model_dir, limits=limits)
        except Exception as exc:  # the service runs without AKIRA; /v1/granules answers 503
            ext["granules_error"] = str(exc)
            log.warning("AKIRA model not loaded: %s", exc)


def create_app(test_config: dict | None = None) -> Flask:
    from flask_smorest import Api

    from service import db as dbm
    from service.metrics import ServiceMetrics
    from service.storage import ImageStore

    from service.uploads import MdsdxRequest
    app = Flask(__name__, instance_relative_config=False)
    app.request_class = MdsdxRequest
    test_config = dict(test_config or {})
    cfg = test_config.pop("MDSDX", None) or ServiceConfig.from_env()
    Path(cfg.home).mkdir(parents=True, exist_ok=True)
    app.config.update(
        MDSDX=cfg, SECRET_KEY=_secret_key(Path(cfg.home)), MAX_CONTENT_LENGTH=cfg.max_upload_bytes,
        # a full smear is one part per image plus the text fields (external_id, pseudonym, CSRF token)
        MAX_FORM_PARTS=cfg.max_images_per_smear + 16,
        API_TITLE="mdsdx", API_VERSION="v1", OPENAPI_VERSION="3.0.3", OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": "MDS screening from peripheral-blood cell images. Research use only; "
                                                  "not a medical device. Authenticate with 'Authorization: Bearer <key>'."},
                          "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
                          "security": [{"bearer": []}]},
    )
    app.config.update(test_config)

    engine = dbm.make_engine(cfg.db_url, cfg.database_timeout_seconds)
    dbm.migrate(engine)
    session_factory = dbm.make_session_factory(engine)
    app.extensions["mdsdx"] = {"engine": engine, "sessions": session_factory, "store": ImageStore(cfg.images_dir),
                               "metrics": ServiceMetrics(), "pipeline": None, "granules": None}
    if cfg.dev:
        log.warning("=" * 72)
        log.warning("mdsdx is running with --dev: AUTHENTICATION IS OFF. Never expose this instance.")
        log.warning("=" * 72)

    @app.before_request
    def open_session():
        g.db = session_factory()
        g.started = time.perf_counter()

    @app.teardown_request
    def close_session(exc):
        db = g.pop("db", None)
        if db is not None:
            if exc is not None:
                db.rollback()
            db.close()

    @app.after_request
    def count(response):
        m = app.extensions["mdsdx"]["metrics"]
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        m.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        if "started" in g:
            m.latency.labels(endpoint).observe(time.perf_counter() - g.started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if cfg.dev:
            response.headers["X-Mdsdx-Dev-Mode"] = "authentication-off"
        return response

    from service import api, auth, health, pages
    auth.init_app(app)
    if cfg.forwarded_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.forwarded_proxies, x_proto=cfg.forwarded_proxies)
    smorest = Api(app)
    smorest.register_blueprint(api.blp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    api.register_error_handlers(app)
    if cfg.load_models:
        load_models(app)
    return app
