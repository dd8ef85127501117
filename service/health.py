"""``/healthz`` (alive), ``/readyz`` (models loaded and the database writable within
:data:`READY_DB_TIMEOUT_SECONDS`, with the models' versions, runtimes and the agreement checks that chose them) and ``/metrics`` (Prometheus)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.db import check_writable
from service.model_cards import runtime_checks, served_runtimes

bp = Blueprint("health", __name__)
# a probe must answer quickly: a write lock held longer than this means requests are waiting too
READY_DB_TIMEOUT_SECONDS = 1.0


@bp.route("/healthz")
def healthz():
    return jsonify(status="alive")


@bp.route("/readyz")
def readyz():
    ext = current_app.extensions["mdsdx"]
    checks = {"cell_model": ext.get("pipeline") is not None, "diagnoser": ext.get("pipeline") is not None,
              "granules_model": ext.get("granules") is not None}
    try:
        check_writable(ext["engine"], min(READY_DB_TIMEOUT_SECONDS, current_app.config["MDSDX"].database_timeout_seconds))
        checks["database"] = True
    except Exception:  # any driver error (locked, unreachable) means not ready
        checks["database"] = False
    ready = checks["cell_model"] and checks["database"]
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    versions = dict(ext["pipeline"].model_versions) if ext.get("pipeline") is not None else {}
    if ext.get("granules") is not None:
        versions["akira"] = ext["granules"].version
    if versions:
        body["model_versions"] = versions
        body["model_runtimes"] = served_runtimes(ext)
        if runtime_checks(ext):
            body["runtime_checks"] = runtime_checks(ext)
    return jsonify(body), 200 if ready else 503


@bp.route("/metrics")
def metrics():
    return Response(generate_latest(current_app.extensions["mdsdx"]["metrics"].registry), mimetype=CONTENT_TYPE_LATEST)
