"""The ``/v1`` JSON API for laboratory systems (flask-smorest: the OpenAPI document comes from here)."""
from __future__ import annotations

import logging
import uuid

import marshmallow as ma
from flask import current_app, g, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from core.errors import IdempotencyKeyReused, InvalidImage, InvalidInput, ModelLoadError
from service.auth import may_delete, visible_smear, visible_smears
from service.config import MAX_PAGE
from service.db import GranuleBatch, Smear
from service.smears import delete_smear, smear_json, submit_smear
from service.uploads import UploadError, read_smear_upload, too_large_message

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5  # about one database timeout: the lock a writer holds is usually gone by then
blp = Blueprint("api", __name__, url_prefix="/v1", description="Smears, reports and granule scoring")


class SmearForm(ma.Schema):
    external_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 200),
                                   metadata={"description": "the laboratory's identifier of the slide"})
    patient_pseudonym = ma.fields.String(load_default=None, validate=ma.validate.Length(1, 200),
                                         metadata={"description": "optional pseudonym; never a name or a record number"})


class SmearFiles(ma.Schema):
    images = ma.fields.List(ma.fields.Raw(metadata={"type": "string", "format": "binary"}),
                            metadata={"description": "repeated: one file per cell (JPEG, PNG, TIFF or BMP)"})
    archive = ma.fields.Raw(metadata={"type": "string", "format": "binary", "description": "one zip of the cell images"})


class SmearUpload(SmearForm, SmearFiles):
    """The documented body of POST /v1/smears: flask-smorest documents only the last of several
    ``arguments`` of one request body, which left ``external_id`` out of the OpenAPI."""


class DeletedOut(ma.Schema):
    id = ma.fields.String()
    deleted = ma.fields.Boolean()
    n_cells = ma.fields.Integer()
    images_removed = ma.fields.Integer(metadata={"description": "image files no other smear uses, removed now"})
    images_kept = ma.fields.Integer(metadata={"description": "unreferenced files used within MDSDX_IMAGE_GRACE_SECONDS; "
                                                             "`mdsdx smears gc` removes them later"})


class PageArgs(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(1, MAX_PAGE))
    per_page = ma.fields.Integer(load_default=20, validate=ma.validate.Range(1, 100))


class SmearOut(ma.Schema):
    id = ma.fields.String()
    external_id = ma.fields.String()
    created_at = ma.fields.String()
    p_mds = ma.fields.Float()
    call = ma.fields.String(metadata={"enum": ["MDS", "AA"]})
    threshold = ma.fields.Float()
    n_cells = ma.fields.Integer()
    n_usable = ma.fields.Integer()
    type_counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    who = ma.fields.Dict()
    top_features = ma.fields.List(ma.fields.Dict())
    model_versions = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    warnings = ma.fields.List(ma.fields.String())
    report_url = ma.fields.String()
    fhir_url = ma.fields.String()
    patient_pseudonym = ma.fields.String(allow_none=True)
    example = ma.fields.Boolean()
    research_use_only = ma.fields.Boolean()
    training_data = ma.fields.String()


def error(status: int, message: str):
    names = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
             413: "Payload Too Large",
             415: "Unsupported Media Type", 422: "Unprocessable Entity", 503: "Service Unavailable"}
    return jsonify(code=status, status=names.get(status, ""), message=message), status


def register_error_handlers(app) -> None:
    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        return error(413, too_large_message(exc, app.config["MDSDX"], app.config["MAX_FORM_PARTS"],
                                            app.config["MAX_FORM_MEMORY_SIZE"]))

    @app.errorhandler(OperationalError)
    @app.errorhandler(SQLAlchemyTimeoutError)
    def database_unavailable(exc):
        # locked (SQLite "database is locked", PostgreSQL lock_timeout), unreachable, or no free connection:
        # the request changed nothing (its transaction rolled back), so the client may simply retry
        orig = getattr(exc, "orig", None) or exc
        log.warning("database unavailable: %s: %s", type(orig).__name__, str(orig).splitlines()[0][:200] if str(orig) else "")
        retry = str(RETRY_AFTER_SECONDS)
        message = f"the database is busy or unreachable; nothing was changed, retry in {retry} s"
        if request.path.startswith("/v1"):
            response = jsonify(code=503, status="Service Unavailable", message=message)
        else:
            from flask import render_template
            response = current_app.make_response(render_template("error.html", title="Busy", message=message))
        response.status_code = 503
        response.headers["Retry-After"] = retry
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if request.path.startswith("/v1") or request.path in ("/openapi.json",):
            messages = getattr(exc, "data", {}).get("messages") if hasattr(exc, "data") else None
            message = exc.description if not messages else f"invalid request: {messages}"
            response, status = error(exc.code or 500, message)
            for name, value in exc.get_headers():  # e.g. Allow on a 405, WWW-Authenticate
                if name.lower() != "content-type":
                    response.headers[name] = value
            return response, status
        return exc


def _base_url() -> str:
    return request.host_url.rstrip("/")


def _pipeline():
    pipeline = current_app.extensions["mdsdx"].get("pipeline")
    if pipeline is None:
        raise ModelLoadError("the models are not loaded yet")
    return pipeline


@blp.route("/smears")
class Smears(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200)
    def get(self, args):
        """List smears, newest first (paged)."""
        page, per_page = args["page"], args["per_page"]
        total = g.db.scalar(visible_smears(select(func.count()).select_from(Smear)))
        rows = g.db.scalars(visible_smears(select(Smear)).order_by(Smear.created_at.desc(), Smear.id)
                            .offset((page - 1) * per_page).limit(per_page)).all()
        return {"items": [smear_json(s, _base_url()) for s in rows], "page": page, "per_page": per_page, "total": total}

    @blp.arguments(SmearForm, location="form")
    @blp.arguments(SmearFiles, location="files")
    @blp.response(201, SmearOut)
    @blp.alt_response(200, schema=SmearOut, description="replay of the first result for a repeated Idempotency-Key")
    @blp.alt_response(400, description="malformed request or empty smear")
    @blp.alt_response(413, description="over a size or count limit")
    @blp.alt_response(415, description="not multipart/form-data")
    @blp.alt_response(422, description="an image is not a readable cell image, or the Idempotency-Key was first sent "
                                       "with a different request")
    @blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "schema": {"type": "string", "minLength": 1,
                                                                             "maxLength": 200}, "required": False,
                          "description": "a retry with the same key and request returns the first result instead of "
                                         "a new smear"}],
             requestBody={"required": True, "content": {"multipart/form-data": {"schema": SmearUpload}}})
    def post(self, form, _files):
        """Diagnose one smear: repeated `images` files or one `archive` zip, as multipart/form-data."""
        if not (request.mimetype or "").startswith("multipart/form-data"):
            return error(415, "send the smear as multipart/form-data with 'images' files or an 'archive' zip")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 200:
            return error(400, "Idempotency-Key must have 1 to 200 characters")
        cfg = current_app.config["MDSDX"]
        try:
            images = read_smear_upload(request.files, cfg)
            smear, created = submit_smear(g.db, current_app.extensions["mdsdx"]["store"], _pipeline(), images,
                                          form["external_id"], form.get("patient_pseudonym"), g.api_key_id, key)
        except UploadError as exc:
            return error(exc.status, exc.message)
        except (InvalidImage, IdempotencyKeyReused) as exc:
            return error(422, str(exc))
        except InvalidInput as exc:
            return error(400, str(exc))
        except ModelLoadError as exc:
            return error(503, str(exc))
        if created:
            metrics = current_app.extensions["mdsdx"]["metrics"]
            metrics.smears.labels(smear.call).inc()
            metrics.cells.inc(smear.n_cells)
        body = smear_json(smear, _base_url())
        response = jsonify(body)
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/smears/{smear.id}"
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        return response


def _get_smear(smear_id: str) -> Smear | None:
    return visible_smear(g.db, smear_id)


@blp.route("/smears/<smear_id>")
class SmearItem(MethodView):
    @blp.response(200, SmearOut)
    @blp.alt_response(404, description="unknown smear id")
    def get(self, smear_id):
        """One smear's result."""
        smear = _get_smear(smear_id)
        if smear is None:
            return error(404, f"no smear with id {smear_id!r}")
        return jsonify(smear_json(smear, _base_url()))

    @blp.response(200, DeletedOut)
    @blp.alt_response(403, description="the smear was submitted with another key (and this key is not an admin)")
    @blp.alt_response(404, description="unknown smear id")
    def delete(self, smear_id):
        """Delete a smear, its cells and the images no other smear uses. Only the key that submitted it may."""
        smear = _get_smear(smear_id)
        if smear is None:
            return error(404, f"no smear with id {smear_id!r}")
        cfg = current_app.config["MDSDX"]
        if not may_delete(smear):
            return error(403, "only the key that submitted a smear, or an admin key, can delete it over the API; "
                              "an operator can delete any smear with `mdsdx smears delete ID`")
        return jsonify(delete_smear(g.db, current_app.extensions["mdsdx"]["store"], smear, cfg.image_grace_seconds))


@blp.route("/smears/<smear_id>/fhir")
class SmearFhir(MethodView):
    @blp.response(200)
    @blp.alt_response(404, description="unknown smear id")
    def get(self, smear_id):
        """The smear as an HL7 FHIR R4 DiagnosticReport with contained Observations and Device."""
        from service.fhir import smear_report
        smear = _get_smear(smear_id)
        if smear is None:
            return error(404, f"no smear with id {smear_id!r}")
        response = jsonify(smear_report(smear, _base_url()))
        response.mimetype = "application/fhir+json"
        return response


@blp.route("/smears/<smear_id>/report")
class SmearReport(MethodView):
    @blp.response(200, content_type="text/html")
    @blp.alt_response(404, description="unknown smear id")
    def get(self, smear_id):
        """The HTML report (the same page clinicians see under /smears/<id>)."""
        from service.pages import render_report
        smear = _get_smear(smear_id)
        if smear is None:
            return error(404, f"no smear with id {smear_id!r}")
        return render_report(smear)


@blp.route("/granules")
class Granules(MethodView):
    @blp.arguments(SmearFiles, location="files")
    @blp.response(200)
    @blp.alt_response(503, description="no AKIRA model loaded")
    def post(self, _files):
        """Decreased-granules (DG 0-3) scores of bone-marrow cell images (AKIRA; trained on SIMULATED grades)."""
        if not (request.mimetype or "").startswith("multipart/form-data"):
            return error(415, "send multipart/form-data with 'images' files or an 'archive' zip")
        ext = current_app.extensions["mdsdx"]
        scorer = ext.get("granules")
        if scorer is None:
            return error(503, f"no AKIRA model is loaded ({ext.get('granules_error', 'not configured')})")
        cfg = current_app.config["MDSDX"]
        try:
            images = read_smear_upload(request.files, cfg)
            if len(images) > cfg.max_granule_images:
                raise UploadError(413, f"{len(images)} images, more than the limit of {cfg.max_granule_images} per request")
            from service.smears import inference_lock
            with inference_lock:
                scores = scorer.score_files([i.data for i in images], [i.name for i in images])
        except UploadError as exc:
            return error(exc.status, exc.message)
        except InvalidImage as exc:
            return error(422, str(exc))
        cells = [{"name": i.name, "dg_score": round(float(s), 4), "dg_grade": int(gr), "category": str(c)}
                 for i, s, gr, c in zip(images, scores.dg_score, scores.dg_grade, scores.category)]
        batch = GranuleBatch(id=str(uuid.uuid4()), api_key_id=g.api_key_id, akira_version=scorer.version,
                             result={"cells": cells})
        g.db.add(batch)
        g.db.commit()
        return jsonify({"id": batch.id, "model_version": scorer.version, "cells": cells,
                        "note": "DG grades of the training data were SIMULATED; research use only"})
