"""Server-rendered pages for clinicians: the smear list, the report, the cohort heatmap, the upload
form and sign-in. No external asset or CDN: CSS is inline, charts are inline SVG or PNG data URIs,
and the API docs UI is served from the swagger-ui-bundle package."""
from __future__ import annotations

import base64
import math
from urllib.parse import urlparse

from flask import (Blueprint, abort, current_app, g, redirect, render_template, request, send_file, send_from_directory,
                   session, url_for)
from sqlalchemy import func, select

from service.auth import end_session, start_session, verify_key, visible_smear, visible_smears
from service.db import Cell, Smear

bp = Blueprint("pages", __name__, template_folder="templates")


@bp.app_context_processor
def common():
    return {"dev": current_app.config["MDSDX"].dev, "signed_in": bool(g.get("via_session"))}


def render_report(smear: Smear) -> str:
    from diagnose.pipeline import CellCall, SmearResult, render_report as render_smear
    from service.model_cards import model_folders
    r = dict(smear.result)
    r["cells"] = [CellCall(name=c.name, cell_type=c.cell_type, confidence=c.confidence, features=c.features,
                           dysplastic=c.dysplastic) for c in smear.cells]
    r["smear_id"] = smear.external_id
    result = SmearResult(**r)
    by_name = {c.name: c for c in smear.cells}
    nav = (f'<a href="{url_for("pages.index")}">All smears</a> &middot; received {smear.created_at:%Y-%m-%d %H:%M} UTC'
           f' &middot; <a href="{url_for("api.SmearFhir", smear_id=smear.id)}">FHIR</a>'
           f' &middot; <a href="{url_for("pages.models")}">the models and their limits</a>')
    return render_smear(result, lambda name: url_for("pages.cell_image", smear_id=smear.id, position=by_name[name].position),
                        model_folders(current_app.config["MDSDX"])["cellnet"], nav=nav)


@bp.route("/")
def index():
    from service.config import MAX_PAGE
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    per_page = 25
    total = g.db.scalar(visible_smears(select(func.count()).select_from(Smear)))
    smears = g.db.scalars(visible_smears(select(Smear)).order_by(Smear.created_at.desc(), Smear.id)
                          .offset((page - 1) * per_page).limit(per_page)).all()
    return render_template("smears.html", smears=smears, page=page, total=total,
                           pages=max(1, math.ceil(total / per_page)))


@bp.route("/smears/<smear_id>")
def report(smear_id):
    smear = visible_smear(g.db, smear_id)
    if smear is None:
        abort(404)
    return render_report(smear)


@bp.route("/smears/<smear_id>/cells/<int:position>.img")
def cell_image(smear_id, position):
    smear = visible_smear(g.db, smear_id)
    cell = g.db.scalar(select(Cell).where(Cell.smear_id == smear.id, Cell.position == position)) if smear else None
    path = current_app.extensions["mdsdx"]["store"].path_for(cell.image_sha256) if cell else None
    if path is None:
        abort(404)
    return send_file(path, max_age=86400)


@bp.route("/cohort")
def cohort():
    import numpy as np

    from diagnose.report import cohort_heatmap_png
    ids = request.args.getlist("id")[:200]
    smears = [s for s in (visible_smear(g.db, i) for i in ids) if s is not None]
    image = None
    if smears:
        keys = list(smears[0].result["shap"])
        matrix = np.array([[s.result["shap"][k] for k in keys] for s in smears])
        png = cohort_heatmap_png([s.external_id for s in smears], matrix, [s.call for s in smears])
        image = "data:image/png;base64," + base64.b64encode(png).decode()
    return render_template("cohort.html", image=image, n=len(smears))


@bp.route("/models")
def models():
    from service.model_cards import served_cards, served_runtimes
    return render_template("models.html", cards=served_cards(current_app.config["MDSDX"]),
                           runtimes=served_runtimes(current_app.extensions["mdsdx"]))


@bp.route("/models/<kind>/MODEL_CARD.md")
def model_card(kind):
    from service.model_cards import card_markdown
    path = card_markdown(current_app.config["MDSDX"], kind)
    if path is None:
        abort(404)
    return send_file(path, mimetype="text/markdown", max_age=0)


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    from core.errors import MdsdxError
    from service.smears import submit_smear
    from service.uploads import UploadError, read_smear_upload
    cfg = current_app.config["MDSDX"]
    if request.method == "GET":
        return render_template("upload.html", cfg=cfg, error=None)
    external_id = (request.form.get("external_id") or "").strip()
    if not external_id or len(external_id) > 200:
        return render_template("upload.html", cfg=cfg, error="a slide identifier of 1 to 200 characters is needed"), 400
    pipeline = current_app.extensions["mdsdx"].get("pipeline")
    try:
        images = read_smear_upload(request.files, cfg)
        smear, _ = submit_smear(g.db, current_app.extensions["mdsdx"]["store"], pipeline, images, external_id,
                                (request.form.get("patient_pseudonym") or "").strip() or None, g.api_key_id)
    except UploadError as exc:
        return render_template("upload.html", cfg=cfg, error=exc.message), exc.status
    except MdsdxError as exc:
        return render_template("upload.html", cfg=cfg, error=str(exc)), 422
    return redirect(url_for("pages.report", smear_id=smear.id))


@bp.route("/login", methods=["GET", "POST"])
def login():
    nxt = request.values.get("next") or url_for("pages.index")
    if urlparse(nxt).netloc or not nxt.startswith("/"):
        nxt = url_for("pages.index")  # no open redirect
    if request.method == "POST":
        row = verify_key(g.db, request.form.get("key", "").strip())
        if row is None:
            return render_template("login.html", next=nxt, error="that key is not valid or was revoked"), 401
        token = start_session(g.db, row, current_app.config["MDSDX"].session_idle_seconds)
        session.clear()
        session["sid"] = token
        session.permanent = True  # the cookie's lifetime is the idle period, renewed on each response
        return redirect(nxt)
    return render_template("login.html", next=nxt, error=None)


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Ends the session in the database too: a copy of the cookie no longer opens anything."""
    if session.get("sid"):
        end_session(g.db, session["sid"])
    session.clear()
    return redirect(url_for("pages.login"))


@bp.route("/docs")
def docs():
    return render_template("docs.html")


@bp.route("/docs/static/<path:filename>")
def docs_static(filename):
    import swagger_ui_bundle
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)
