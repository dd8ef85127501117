"""The HTTP service driven through Flask's test client, as a laboratory system would drive it."""
import contextlib
import io
import time
import zipfile

import pytest
from PIL import Image

from conftest import csrf_token, jpeg_bytes, login


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def smear_form(n=6, external_id="SLIDE-1", **extra):
    data = {"external_id": external_id, **extra}
    data["images"] = [(io.BytesIO(jpeg_bytes(i)), f"cell_{i:04d}.jpg") for i in range(n)]
    return data


def count_smears(app):
    from sqlalchemy import func, select

    from service.db import Smear
    with app.extensions["mdsdx"]["sessions"]() as db:
        return db.scalar(select(func.count()).select_from(Smear))


def stored_files(app):
    root = app.config["MDSDX"].images_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def post(client, key, data, **headers):
    return client.post("/v1/smears", data=data, headers={**auth(key), **headers}, content_type="multipart/form-data")


def test_health_ready_metrics(client):
    assert client.get("/healthz").json == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["database"] and ready.json["checks"]["cell_model"]
    assert ready.json["model_versions"] == {"cellnet": "cellnet-tiny-test", "diagnoser": "diagnoser-tiny-test",
                                            "akira": "akira-tiny-test"}
    assert ready.json["model_runtimes"] == {"cellnet": "onnx", "akira": "onnx"}  # the tiny models have only float files
    assert "runtime_checks" not in ready.json  # no int8 or bf16 runtime was tried
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and b"mdsdx_http_requests_total" in metrics.data


def test_readyz_shows_a_runtime_that_failed_its_check(app, tiny_models, tmp_path):
    """A stage-1 int8 file that gives other answers than the float model on this CPU is passed over at
    load: the worker serves the float file, and /readyz says which runtime failed and why."""
    import shutil

    import numpy as np

    from conftest import jpeg_bytes
    from diagnose.pipeline import SmearDiagnosisPipeline
    from models.export.quantize import add_int8
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    crops = []
    for seed in range(6):
        crops.append(tmp_path / f"c{seed}.jpg")
        crops[-1].write_bytes(jpeg_bytes(seed, px=360))
    add_int8(folder, images=[str(p) for p in crops])
    reference = folder / "check" / "float_outputs.npy"
    np.save(reference, np.load(reference) * 3)  # as a kernel that computes something else would look
    app.extensions["mdsdx"]["pipeline"] = SmearDiagnosisPipeline(folder, tiny_models["diagnoser"])
    ready = app.test_client().get("/readyz").json
    assert ready["status"] == "ready" and ready["model_runtimes"]["cellnet"] == "onnx"
    check = ready["runtime_checks"]["cellnet"]["int8"]
    assert check["passed"] is False and "differs from the float model on this CPU" in check["reason"]


def test_openapi_and_docs_have_no_cdn(client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/v1/smears", "/v1/smears/{smear_id}", "/v1/smears/{smear_id}/fhir", "/v1/smears/{smear_id}/report",
            "/v1/granules"} <= set(spec["paths"])
    assert {"get", "delete"} <= set(spec["paths"]["/v1/smears/{smear_id}"])
    page = client.get("/docs").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    asset = client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()


def test_auth_required_and_keys_work(app, client, api_key):
    r = client.get("/v1/smears")
    assert r.status_code == 401 and "Bearer" in r.json["message"]
    assert client.get("/v1/smears", headers=auth("mdsdx_bad_key")).status_code == 401
    assert client.get("/v1/smears", headers=auth(api_key)).status_code == 200
    from service.auth import revoke_key
    with app.extensions["mdsdx"]["sessions"]() as db:
        revoke_key(db, "lab-system")
    assert client.get("/v1/smears", headers=auth(api_key)).status_code == 401


def test_keys_are_stored_hashed(app, api_key):
    from sqlalchemy import select

    from service.db import ApiKey
    with app.extensions["mdsdx"]["sessions"]() as db:
        row = db.scalar(select(ApiKey))
    assert api_key not in (row.key_hash, row.prefix) and len(row.key_hash) == 64


def test_post_get_list_report_fhir(app, client, api_key):
    r = post(client, api_key, smear_form(external_id="SLIDE-7", patient_pseudonym="PSN-42"))
    assert r.status_code == 201, r.json
    body = r.json
    for field in ("id", "p_mds", "call", "threshold", "n_cells", "type_counts", "who", "top_features",
                  "model_versions", "warnings", "report_url"):
        assert field in body, field
    assert body["n_cells"] == 6 and body["call"] in ("MDS", "AA") and len(body["top_features"]) == 5
    assert body["model_versions"] == {"cellnet": "cellnet-tiny-test", "diagnoser": "diagnoser-tiny-test"}
    assert any("usable cells" in w for w in body["warnings"])
    one = client.get(f"/v1/smears/{body['id']}", headers=auth(api_key))
    assert one.status_code == 200 and one.json["external_id"] == "SLIDE-7"
    listing = client.get("/v1/smears?page=1&per_page=1", headers=auth(api_key)).json
    assert listing["total"] == 1 and listing["items"][0]["id"] == body["id"]
    report = client.get(f"/v1/smears/{body['id']}/report", headers=auth(api_key))
    assert report.status_code == 200 and b"Research use only" in report.data and b"<svg" in report.data
    fhir = client.get(f"/v1/smears/{body['id']}/fhir", headers=auth(api_key))
    assert fhir.status_code == 200 and fhir.mimetype == "application/fhir+json"
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    doc = DiagnosticReport.model_validate(fhir.json)
    device = [c for c in fhir.json["contained"] if c["resourceType"] == "Device"][0]
    assert {v["value"] for v in device["version"]} == {"cellnet-tiny-test", "diagnoser-tiny-test"}
    assert doc.subject.display == "PSN-42"
    assert len(stored_files(app)) == 6


def test_zip_archive_upload(client, api_key):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(5):
            z.writestr(f"smear/cell_{i:04d}.jpg", jpeg_bytes(i))
        z.writestr("smear/notes.txt", "ignored")
    r = post(client, api_key, {"external_id": "ZIP-1", "archive": (io.BytesIO(buf.getvalue()), "smear.zip")})
    assert r.status_code == 201, r.json
    assert r.json["n_cells"] == 5


def test_idempotency_key_returns_first_result(app, client, api_key):
    first = post(client, api_key, smear_form(), **{"Idempotency-Key": "abc-1"})
    again = post(client, api_key, smear_form(), **{"Idempotency-Key": "abc-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert count_smears(app) == 1


def test_idempotency_key_reused_with_another_request_is_422(app, client, api_key):
    """The IETF idempotency-key draft: a key reused with a different payload is 422, not a replay."""
    assert post(client, api_key, smear_form(), **{"Idempotency-Key": "abc-2"}).status_code == 201
    for changed in (smear_form(external_id="OTHER"), smear_form(n=5), smear_form(patient_pseudonym="PSN-1")):
        r = post(client, api_key, changed, **{"Idempotency-Key": "abc-2"})
        assert r.status_code == 422 and "different request" in r.json["message"]
    assert count_smears(app) == 1


def _png(width, height):
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (230, 200, 200)).save(buf, "PNG")
    return buf.getvalue()


def _zip(entries, compression=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


BAD_UPLOADS = {
    "not an image": ({"images": [(io.BytesIO(b"%PDF-1.4 not an image"), "cell.jpg")]}, 422, "not a JPEG"),
    "truncated jpeg": ({"images": [(io.BytesIO(jpeg_bytes(1)[:900]), "cut.jpg")]}, 422, "truncated or corrupt"),
    "image too large": ({"images": [(io.BytesIO(b"\xff\xd8\xff" + b"0" * 400_000), "big.jpg")]}, 413, "byte limit"),
    "decompression bomb": ({"images": [(io.BytesIO(_png(5000, 5000)), "bomb.png")]}, 422, "pixel limit"),
    "too many images": ({"images": [(io.BytesIO(jpeg_bytes(0, 32)), f"c{i}.jpg") for i in range(41)]}, 413, "limit of 40"),
    "empty smear": ({}, 400, "empty"),
    "zip path traversal": ({"archive": (io.BytesIO(_zip([("../../etc/cell.jpg", jpeg_bytes(0))])), "a.zip")}, 400, "unsafe"),
    "zip bomb": ({"archive": (io.BytesIO(_zip([("bomb.jpg", b"\xff\xd8\xff" + b"\0" * 250_000)])), "a.zip")}, 413, "zip bomb"),
    "not a zip": ({"archive": (io.BytesIO(b"PK no zip"), "a.zip")}, 400, "not a valid zip"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_uploads_are_4xx_json_and_store_nothing(app, client, api_key, case):
    files, status, message = BAD_UPLOADS[case]
    r = post(client, api_key, {"external_id": "BAD", **files})
    assert r.status_code == status, r.json
    assert r.is_json and message in r.json["message"]
    assert count_smears(app) == 0 and stored_files(app) == []


def test_wrong_content_type_and_bad_metadata(app, client, api_key):
    r = client.post("/v1/smears", json={"external_id": "X"}, headers=auth(api_key))
    assert r.status_code in (415, 422) and r.is_json
    r = post(client, api_key, {"images": [(io.BytesIO(jpeg_bytes(0)), "c.jpg")]})  # no external_id
    assert r.status_code == 422 and r.is_json and "external_id" in r.json["message"]
    r = post(client, api_key, smear_form(external_id="x" * 300))
    assert r.status_code == 422
    r = post(client, api_key, smear_form(), **{"Idempotency-Key": "k" * 300})
    assert r.status_code == 400 and "Idempotency-Key" in r.json["message"]
    assert count_smears(app) == 0


def test_request_body_limit(tiny_models, tiny_pipeline, tmp_path):
    from conftest import service_config
    from service.app import create_app
    small = create_app({"MDSDX": service_config(tmp_path / "h", tiny_models, max_upload_bytes=5000, dev=True)})
    small.extensions["mdsdx"]["pipeline"] = tiny_pipeline
    r = small.test_client().post("/v1/smears", data=smear_form(4), content_type="multipart/form-data")
    assert r.status_code == 413 and r.is_json and "byte limit" in r.json["message"]


def test_unknown_smear_is_404_json(client, api_key):
    for path in ("/v1/smears/00000000-0000-0000-0000-000000000000", "/v1/smears/not-a-uuid",
                 "/v1/smears/00000000-0000-0000-0000-000000000000/fhir", "/v1/smears/nope/report"):
        r = client.get(path, headers=auth(api_key))
        assert r.status_code == 404 and r.is_json and "no smear" in r.json["message"]


def test_granules(client, api_key):
    data = {"images": [(io.BytesIO(jpeg_bytes(i)), f"m{i}.jpg") for i in range(3)]}
    r = client.post("/v1/granules", data=data, headers=auth(api_key), content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    assert len(r.json["cells"]) == 3 and r.json["model_version"] == "akira-tiny-test"
    assert all(0 <= c["dg_grade"] <= 3 for c in r.json["cells"])
    too_many = {"images": [(io.BytesIO(jpeg_bytes(i, 32)), f"m{i}.jpg") for i in range(11)]}
    r = client.post("/v1/granules", data=too_many, headers=auth(api_key), content_type="multipart/form-data")
    assert r.status_code == 413


def test_dev_mode_turns_auth_off_loudly(tiny_models, tiny_pipeline, tmp_path):
    from conftest import service_config
    from service.app import create_app
    app = create_app({"MDSDX": service_config(tmp_path / "d", tiny_models, dev=True)})
    app.extensions["mdsdx"]["pipeline"] = tiny_pipeline
    c = app.test_client()
    r = c.get("/v1/smears")
    assert r.status_code == 200 and r.headers["X-Mdsdx-Dev-Mode"] == "authentication-off"
    assert b"DEVELOPMENT MODE" in c.get("/").data


def test_pages_need_login_then_show_reports(app, client, api_key):
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    created = post(client, api_key, smear_form(external_id="PAGE-1")).json
    assert login(client, "wrong").status_code == 401
    r = login(client, api_key, next="/")
    assert r.status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert "PAGE-1" in home
    report = client.get(f"/smears/{created['id']}").get_data(as_text=True)
    assert "Cell gallery" in report and "WHO view" in report and "The 114 parameters" in report
    assert 'href="/models"' in report
    assert "https://" not in report.split("</style>")[0]
    img = client.get(f"/smears/{created['id']}/cells/0.img")
    assert img.status_code == 200 and img.data[:3] == b"\xff\xd8\xff"
    img.close()
    cohort = client.get(f"/cohort?id={created['id']}")
    assert cohort.status_code == 200 and b"data:image/png;base64" in cohort.data
    assert client.get("/upload").status_code == 200
    up = client.post("/upload", data=smear_form(external_id="FORM-1", csrf_token=csrf_token(client, "/upload")),
                     content_type="multipart/form-data")
    assert up.status_code == 302 and count_smears(app) == 2
    assert client.get("/login?next=https://evil.example/").status_code == 200


def test_login_next_is_not_an_open_redirect(client, api_key):
    r = login(client, api_key, next="https://evil.example/x")
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_keys_cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import cli
    monkeypatch.setenv("MDSDX_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    r = runner.invoke(cli, ["keys", "create", "lis"])
    assert r.exit_code == 0 and r.stdout.strip().startswith("mdsdx_")
    listed = runner.invoke(cli, ["keys", "list"]).output
    assert "lis" in listed and r.stdout.strip() not in listed
    assert runner.invoke(cli, ["keys", "create", "lis"]).exit_code == 2
    assert runner.invoke(cli, ["keys", "revoke", "lis"]).exit_code == 0
    assert runner.invoke(cli, ["keys", "revoke", "lis"]).exit_code == 2


def test_schema_is_versioned(app):
    from sqlalchemy import select

    from service.db import SCHEMA_VERSION, SchemaVersion, migrate
    engine = app.extensions["mdsdx"]["engine"]
    assert migrate(engine) == SCHEMA_VERSION
    with app.extensions["mdsdx"]["sessions"]() as db:
        assert db.scalars(select(SchemaVersion.version)).all() == list(range(1, SCHEMA_VERSION + 1))


def test_delete_smear_removes_only_images_no_other_smear_uses(tiny_models, tiny_pipeline, tmp_path):
    from conftest import service_config
    from service.app import create_app
    from service.auth import create_key
    app = create_app({"MDSDX": service_config(tmp_path / "home", tiny_models, image_grace_seconds=0), "TESTING": True})
    app.extensions["mdsdx"]["pipeline"] = tiny_pipeline
    client = app.test_client()
    with app.extensions["mdsdx"]["sessions"]() as db:
        key = create_key(db, "lis")
    first = post(client, key, smear_form(6, "SLIDE-A")).json
    shared = {"external_id": "SLIDE-B", "images": [(io.BytesIO(jpeg_bytes(i)), f"c{i}.jpg") for i in range(3, 9)]}
    second = post(client, key, shared).json
    assert len(stored_files(app)) == 9
    r = client.delete(f"/v1/smears/{first['id']}", headers=auth(key))
    assert r.status_code == 200, r.json
    assert r.json == {"id": first["id"], "deleted": True, "n_cells": 6, "images_removed": 3, "images_kept": 0}
    assert client.get(f"/v1/smears/{first['id']}", headers=auth(key)).status_code == 404
    assert client.get(f"/v1/smears/{second['id']}", headers=auth(key)).json["n_cells"] == 6
    assert len(stored_files(app)) == 6
    for position in range(6):  # the images the deleted smear shared are still served for the other one
        image = client.get(f"/smears/{second['id']}/cells/{position}.img", headers=auth(key))
        assert image.status_code == 200
        image.close()
    assert client.delete(f"/v1/smears/{second['id']}", headers=auth(key)).json["images_removed"] == 6
    assert stored_files(app) == [] and count_smears(app) == 0


def test_delete_needs_the_submitting_key_and_gc_sweeps_after_the_grace(app, client, api_key, monkeypatch):
    from click.testing import CliRunner

    from cli import cli
    from service.auth import create_key
    with app.extensions["mdsdx"]["sessions"]() as db:
        other = create_key(db, "another-lab")
    smear = post(client, api_key, smear_form(6, "SLIDE-G")).json
    kept = post(client, api_key, smear_form(2, "SLIDE-K")).json  # shares its 2 images with SLIDE-G
    r = client.delete(f"/v1/smears/{smear['id']}", headers=auth(other))
    assert r.status_code == 403 and "mdsdx smears delete" in r.json["message"]
    assert client.delete("/v1/smears/not-a-smear", headers=auth(api_key)).status_code == 404
    assert client.delete(f"/v1/smears/{smear['id']}").status_code == 401
    assert count_smears(app) == 2
    r = client.delete(f"/v1/smears/{smear['id']}", headers=auth(api_key))
    assert r.status_code == 200 and r.json["images_removed"] == 0 and r.json["images_kept"] == 4  # default 900-s grace
    assert len(stored_files(app)) == 6

    cfg = app.config["MDSDX"]
    monkeypatch.setenv("MDSDX_HOME", str(cfg.home))
    monkeypatch.setenv("MDSDX_DATABASE_URL", cfg.db_url)
    runner = CliRunner()
    assert "0 unreferenced image files removed, 4 recent ones kept" in runner.invoke(cli, ["smears", "gc"]).output
    swept = runner.invoke(cli, ["smears", "gc", "--grace-seconds", "0"])
    assert swept.exit_code == 0 and "4 unreferenced image files removed" in swept.output
    assert len(stored_files(app)) == 2
    listed = runner.invoke(cli, ["smears", "list"])
    assert listed.exit_code == 0 and kept["id"] in listed.output and smear["id"] not in listed.output
    bad = runner.invoke(cli, ["smears", "delete", kept["id"], "no-such-id"])
    assert bad.exit_code == 2 and "no-such-id" in bad.output and count_smears(app) == 1
    done = runner.invoke(cli, ["smears", "delete", kept["id"]])
    assert done.exit_code == 0 and count_smears(app) == 0


def test_image_store_undo_spares_a_file_another_request_reused(tmp_path):
    from service.storage import ImageStore, sha256
    store = ImageStore(tmp_path)
    _, created = store.put_many([b"cell-a", b"cell-b"])
    time.sleep(0.01)
    store.put(b"cell-b")  # a concurrent request stores the same image and will reference it
    store.remove_untouched(created)
    assert store.path_for(sha256(b"cell-a")) is None and store.path_for(sha256(b"cell-b")) is not None


def test_failed_commit_stores_nothing_and_keeps_earlier_images(app, client, api_key, tiny_pipeline):
    from service.smears import submit_smear
    from service.uploads import UploadedImage
    assert post(client, api_key, smear_form(3, "SLIDE-1")).status_code == 201
    before = sorted(stored_files(app))

    class FailingCommit:
        def __init__(self, db):
            self.db = db

        def __getattr__(self, name):
            return getattr(self.db, name)

        def commit(self):
            raise RuntimeError("database went away")

    images = [UploadedImage(f"c{i}.jpg", jpeg_bytes(i)) for i in range(1, 5)]  # shares 2 images with SLIDE-1
    with app.extensions["mdsdx"]["sessions"]() as db, pytest.raises(RuntimeError):
        submit_smear(FailingCommit(db), app.extensions["mdsdx"]["store"], tiny_pipeline, images, "SLIDE-2", None, None)
    assert sorted(stored_files(app)) == before and count_smears(app) == 1


def test_models_page_shows_the_cards_of_the_served_models(tiny_models, tmp_path):
    """/models lists each served model's version, held-out figures, intended use and limits; it says
    so when a folder has no card, or a card that describes other weights; the full card downloads."""
    import json
    import shutil

    from conftest import service_config
    from models.export.model_card import write_card
    from service.app import create_app
    from service.auth import create_key
    cellnet = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], cellnet)
    version = json.loads((cellnet / "metadata.json").read_text())["version"]
    card = {"title": "tiny stage-1 network", "version": version, "summary": "A test network.", "commands": ["x"],
            "data": "none", "metrics": {"8 classic PBC groups, accuracy (real test crops)": ["12.5 %", ">= 98 %"],
                                        "fine classes SNE/BNE/MMY/MY/PMY, macro sensitivity (real)": ["3.1 %", ">= 90 %"]},
            "intended_use": "Tests only.", "limits": "Knows nothing.", "libraries": {}}
    write_card(cellnet, card)
    app = create_app({"MDSDX": service_config(tmp_path / "home", tiny_models, cell_model_dir=str(cellnet),
                                              load_models=True),
                      "TESTING": True})
    with app.extensions["mdsdx"]["sessions"]() as db:
        key = create_key(db, "reader")
    c = app.test_client()
    assert c.get("/models").status_code == 302  # login first
    login(c, key)
    page = c.get("/models").get_data(as_text=True)
    assert "tiny stage-1 network" in page and version in page and "12.5 %" in page and "&gt;= 98 %" in page
    assert "Tests only." in page and "Knows nothing." in page
    assert page.count("runs in <code>onnx</code> here") == 1  # the engine of the loaded stage-1 model, beside its card
    assert page.count("No model card in this model") == 2  # the tiny diagnoser and AKIRA have none
    assert "describes version" not in page
    md = c.get("/models/cellnet/MODEL_CARD.md")
    assert md.status_code == 200 and md.mimetype == "text/markdown" and b"# Model card: tiny stage-1 network" in md.data
    md.close()
    assert c.get("/models/diagnoser/MODEL_CARD.md").status_code == 404
    assert c.get("/models/../etc/MODEL_CARD.md").status_code == 404
    # a smear report says, from the card of the model that called its cells, which splits to read with caution
    smear = post(c, key, smear_form(external_id="CARD-1")).json
    caution = ("least reliable calls: macro sensitivity 3.1 % on held-out real crops, against a target of &gt;= 90 %. "
               "Read those splits with caution; the 8 classic groups they sum into are called with 12.5 % accuracy.")
    assert caution in c.get(f"/smears/{smear['id']}").get_data(as_text=True)

    write_card(cellnet, dict(card, version="cellnet-older"))
    page = c.get("/models").get_data(as_text=True)
    assert "describes version <code>cellnet-older</code>" in page
    assert "least reliable calls" not in c.get(f"/smears/{smear['id']}").get_data(as_text=True)


def test_models_page_reads_the_shipped_cards(tmp_path, tiny_models):
    from conftest import service_config
    from service.model_cards import served_cards
    cfg = service_config(tmp_path / "home", tiny_models, cell_model_dir=None, diagnoser_dir=None, akira_model_dir=None)
    cards = served_cards(cfg)
    assert [c.kind for c in cards] == ["cellnet", "diagnoser", "akira"]
    assert all(c.card_matches for c in cards), [(c.kind, c.folder_version) for c in cards]
    assert all("Not for diagnosing patients" in c.card["intended_use"] for c in cards)


def declared_png(width, height):
    """A 16 x 16 PNG whose header claims ``width`` x ``height``: a few hundred bytes that a decoder
    would expand to width x height pixels."""
    import struct
    import zlib
    data = bytearray(_png(16, 16))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("path", ["/v1/smears", "/v1/granules", "/upload"])
def test_an_image_declaring_400_million_pixels_is_4xx(app, client, api_key, path):
    bomb = declared_png(20000, 20000)
    assert len(bomb) < 1000
    data = {"external_id": "BOMB", "images": [(io.BytesIO(bomb), "bomb.png")]}
    r = client.post(path, data=data, headers=auth(api_key), content_type="multipart/form-data")
    assert r.status_code == 422
    assert "pixel limit" in (r.json["message"] if r.is_json else r.get_data(as_text=True))
    assert count_smears(app) == 0 and stored_files(app) == []


def test_decoder_maps_pillow_bomb_errors_to_invalid_image():
    from core.errors import InvalidImage
    from core.preprocess import ImageLimits, load_cell_image
    limits = ImageLimits(max_image_pixels=10**12)  # past our own limit: Pillow's guard speaks
    for side in (10000, 20000):  # above half of Pillow's limit it warns, above the limit it raises
        with pytest.raises(InvalidImage, match="pixel limit"):
            load_cell_image(declared_png(side, side), 64, "bomb.png", limits)


def test_total_pixels_per_request_are_capped_before_decoding(app, client, api_key):
    """40 images whose headers declare 4096 x 4096 each (each within the per-image limit) are refused
    from their headers: the pixel data is not valid, so decoding them would have said 'corrupt'."""
    images = [(io.BytesIO(declared_png(4096, 4096)), f"big_{i}.png") for i in range(40)]
    r = post(client, api_key, {"external_id": "HUGE", "images": images})
    assert r.status_code == 413 and "MDSDX_MAX_REQUEST_PIXELS" in r.json["message"]
    r = client.post("/v1/granules", data={"images": [(io.BytesIO(declared_png(4096, 4096)), f"m{i}.png") for i in range(10)]},
                    headers=auth(api_key), content_type="multipart/form-data")
    assert r.status_code == 413 and "pixels in all" in r.json["message"]
    assert count_smears(app) == 0 and stored_files(app) == []


def _corrupt_zip(kind):
    """A one-image zip made unreadable in one way; header fields patched as a broken tool would."""
    import struct
    compression = zipfile.ZIP_STORED if kind in ("bad crc", "lying size") else zipfile.ZIP_DEFLATED
    data = bytearray(_zip([("cell.jpg", jpeg_bytes(3))], compression))
    local, central = 0, data.index(b"PK\x01\x02")
    if kind == "bad crc":
        data[200] ^= 0xFF  # inside the stored image bytes
    elif kind == "bad deflate":
        data[60:90] = b"\xff" * 30  # inside the deflate stream
    elif kind == "unsupported method":
        for at in (local + 8, central + 10):
            data[at:at + 2] = struct.pack("<H", 9)  # deflate64, which zipfile cannot read
    elif kind == "encrypted":
        for at in (local + 6, central + 8):
            data[at] |= 0x1
    elif kind == "lying size":
        for at in (local + 22, central + 24):
            data[at:at + 4] = struct.pack("<I", 500)  # the header says 500 bytes; the entry holds more
    return bytes(data)


@pytest.mark.parametrize("kind", ["bad crc", "bad deflate", "unsupported method", "encrypted", "lying size"])
def test_a_zip_with_a_corrupt_entry_is_400_and_stores_nothing(app, client, api_key, kind):
    archive = {"archive": (io.BytesIO(_corrupt_zip(kind)), "smear.zip")}
    r = post(client, api_key, {"external_id": "ZIP-BAD", **archive})
    assert r.status_code == 400, r.json
    assert "cell.jpg" in r.json["message"]
    assert count_smears(app) == 0 and stored_files(app) == []
    r = client.post("/v1/granules", data={"archive": (io.BytesIO(_corrupt_zip(kind)), "m.zip")}, headers=auth(api_key),
                    content_type="multipart/form-data")
    assert r.status_code == 400


def test_paging_arguments_are_bounded(app, client, api_key):
    for query in ("page=9223372036854775807", "page=99999999999999999999999", "page=0", "per_page=101",
                  "per_page=-1", "page=1e400", "page=nan"):
        r = client.get(f"/v1/smears?{query}", headers=auth(api_key))
        assert r.status_code == 422 and r.is_json, (query, r.status_code)
    spec = client.get("/openapi.json").json
    page = [p for p in spec["paths"]["/v1/smears"]["get"]["parameters"] if p["name"] == "page"][0]
    assert page["schema"]["maximum"] == 100_000
    login(client, api_key)
    assert client.get("/?page=9223372036854775807").status_code == 200


@contextlib.contextmanager
def write_lock_held(url):
    """Another process's writer holding the database's lock (SQLite: an EXCLUSIVE transaction;
    PostgreSQL: the tables locked)."""
    if url.startswith("sqlite"):
        import sqlite3
        con = sqlite3.connect(url.split("sqlite:///", 1)[1], isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()
    else:
        from sqlalchemy import create_engine, text
        engine = create_engine(url)
        try:
            with engine.connect() as conn, conn.begin():
                conn.execute(text("LOCK TABLE api_keys, smears, browser_sessions IN ACCESS EXCLUSIVE MODE"))
                yield
        finally:
            engine.dispose()


def test_a_locked_database_is_503_with_retry_after_and_not_ready(tiny_models, tiny_pipeline, tmp_path):
    from conftest import service_config
    from service.app import create_app
    from service.auth import create_key
    app = create_app({"MDSDX": service_config(tmp_path / "home", tiny_models, database_timeout_seconds=1),
                      "TESTING": True})
    app.extensions["mdsdx"]["pipeline"] = tiny_pipeline
    with app.extensions["mdsdx"]["sessions"]() as db:
        key = create_key(db, "lis")
    client, browser = app.test_client(), app.test_client()
    login(browser, key)
    assert client.get("/readyz").json["checks"]["database"] is True
    with write_lock_held(app.config["MDSDX"].db_url):
        started = time.perf_counter()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json["checks"]["database"] is False
        assert time.perf_counter() - started < 3
        for r in (post(client, key, smear_form(3, "LOCKED")), client.get("/v1/smears", headers=auth(key))):
            assert r.status_code == 503 and r.is_json and "retry" in r.json["message"], r.status_code
            assert int(r.headers["Retry-After"]) > 0
        page = browser.get("/")
        assert page.status_code == 503 and "Retry-After" in page.headers
    assert count_smears(app) == 0 and stored_files(app) == []
    assert client.get("/readyz").status_code == 200
    assert post(client, key, smear_form(3, "AFTER")).status_code == 201


def test_413_says_which_limit(app, client, api_key):
    many = "".join(f'--B\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(100)) + "--B--\r\n"
    r = client.post("/v1/smears", data=many.encode(), content_type="multipart/form-data; boundary=B", headers=auth(api_key))
    assert r.status_code == 413 and "more than 56 parts" in r.json["message"]  # 40 images + 16
    long = '--B\r\nContent-Disposition: form-data; name="external_id"\r\n\r\n' + "x" * 600_000 + "\r\n--B--\r\n"
    r = client.post("/v1/smears", data=long.encode(), content_type="multipart/form-data; boundary=B", headers=auth(api_key))
    assert r.status_code == 413 and "text field" in r.json["message"] and "8000000" not in r.json["message"]
    r = post(client, api_key, smear_form(40))  # a full smear is not too many parts
    assert r.status_code == 201, r.json


def test_a_non_utf8_file_name_is_a_clear_400(app, client, api_key):
    body = (b'--B\r\nContent-Disposition: form-data; name="external_id"\r\n\r\nX1\r\n'
            b'--B\r\nContent-Disposition: form-data; name="images"; filename="c\xe9ll.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + jpeg_bytes(0) + b"\r\n--B--\r\n")
    r = client.post("/v1/smears", data=body, content_type="multipart/form-data; boundary=B", headers=auth(api_key))
    assert r.status_code == 400 and "UTF-8" in r.json["message"] and "external_id" not in r.json["message"]
    assert count_smears(app) == 0


def test_openapi_marks_external_id_required(client):
    spec = client.get("/openapi.json").json
    body = spec["paths"]["/v1/smears"]["post"]["requestBody"]
    ref = body["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    schema = spec["components"]["schemas"][ref]
    assert schema["required"] == ["external_id"]
    assert {"external_id", "patient_pseudonym", "images", "archive"} <= set(schema["properties"])


def test_405_carries_allow(client, api_key):
    for method, path, allowed in (("put", "/v1/smears", {"GET", "POST"}), ("patch", "/v1/granules", {"POST"}),
                                  ("post", "/v1/smears/00000000-0000-0000-0000-000000000000", {"GET", "DELETE"}),
                                  ("delete", "/healthz", {"GET"})):
        r = getattr(client, method)(path, headers=auth(api_key))
        assert r.status_code == 405, (method, path)
        assert allowed <= {m.strip() for m in r.headers["Allow"].split(",")}
    assert client.put("/v1/smears").is_json


@pytest.mark.parametrize("name", ["cell\x00.jpg", "cell\x1b[31m.jpg", "c" * 5000 + ".jpg"])
def test_file_names_with_control_characters_or_too_long_are_400(app, client, api_key, name):
    body = (b'--B\r\nContent-Disposition: form-data; name="external_id"\r\n\r\nX1\r\n'
            b'--B\r\nContent-Disposition: form-data; name="images"; filename="' + name.encode() + b'"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + jpeg_bytes(0) + b"\r\n--B--\r\n")
    r = client.post("/v1/smears", data=body, content_type="multipart/form-data; boundary=B", headers=auth(api_key))
    assert r.status_code == 400 and r.is_json and "file name" in r.json["message"], r.json
    assert len(r.json["message"]) < 300
    archive = _zip([("smear/" + "d" * 300 + ".jpg", jpeg_bytes(0))])
    r = post(client, api_key, {"external_id": "Z", "archive": (io.BytesIO(archive), "a.zip")})
    assert r.status_code == 400 and "over 255 characters" in r.json["message"]
    assert count_smears(app) == 0
