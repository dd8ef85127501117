"""Browser sessions, CSRF, and who may do what: driven through the test client as a browser or a
laboratory system would."""
import io
from datetime import timedelta

import pytest

from conftest import csrf_token, jpeg_bytes, login


def smear_form(n=3, external_id="SLIDE-1", **extra):
    return {"external_id": external_id, **extra,
            "images": [(io.BytesIO(jpeg_bytes(i)), f"cell_{i:04d}.jpg") for i in range(n)]}


def count_smears(app):
    from sqlalchemy import func, select

    from service.db import Smear
    with app.extensions["mdsdx"]["sessions"]() as db:
        return db.scalar(select(func.count()).select_from(Smear))


def revoke(app, name):
    from service.auth import revoke_key
    with app.extensions["mdsdx"]["sessions"]() as db:
        revoke_key(db, name)


def test_a_revoked_keys_session_stops_reading_and_writing(app, client, api_key):
    assert login(client, api_key).status_code == 302
    token = csrf_token(client, "/upload")
    assert client.get("/").status_code == 200
    revoke(app, "lab-system")
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = client.post("/upload", data=smear_form(csrf_token=token), content_type="multipart/form-data")
    assert r.status_code in (302, 400) and count_smears(app) == 0


def test_a_copied_cookie_stops_working_at_logout(app, client, api_key):
    login(client, api_key)
    cookie = client.get_cookie("session").value
    assert client.get("/").status_code == 200
    r = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/").status_code == 302


def test_sessions_end_after_the_idle_period(app, client, api_key):
    from sqlalchemy import update

    from service.db import BrowserSession, utcnow
    login(client, api_key)
    assert client.get("/").status_code == 200
    idle = app.config["MDSDX"].session_idle_seconds
    assert idle == 8 * 3600  # the default
    with app.extensions["mdsdx"]["sessions"]() as db:
        db.execute(update(BrowserSession).values(last_seen_at=utcnow() - timedelta(seconds=idle + 5)))
        db.commit()
    assert client.get("/").status_code == 302


def test_session_cookie_flags(app, api_key):
    plain = app.test_client()
    r = login(plain, api_key)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie and "Expires=" in cookie
    tls = app.test_client()
    tls.get("/login", base_url="https://localhost")
    token = csrf_token(tls, "https://localhost/login")
    r = tls.post("/login", data={"key": api_key, "csrf_token": token}, base_url="https://localhost",
                 headers={"Referer": "https://localhost/login"})
    assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]


def test_https_behind_a_proxy_makes_the_cookie_secure(tiny_models, tmp_path):
    from conftest import service_config
    from service.app import create_app
    from service.auth import create_key
    app = create_app({"MDSDX": service_config(tmp_path / "home", tiny_models, forwarded_proxies=1), "TESTING": True})
    with app.extensions["mdsdx"]["sessions"]() as db:
        key = create_key(db, "browser")
    c = app.test_client()
    proxied = {"X-Forwarded-Proto": "https"}
    page = c.get("/login", headers=proxied).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = c.post("/login", data={"key": key, "csrf_token": token},
               headers={**proxied, "Referer": "https://localhost/login"})
    assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]


def test_forms_need_their_csrf_token(app, client, api_key):
    r = client.post("/login", data={"key": api_key})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    login(client, api_key)
    r = client.post("/upload", data=smear_form(), content_type="multipart/form-data")
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True) and count_smears(app) == 0
    ok = client.post("/upload", data=smear_form(csrf_token=csrf_token(client, "/upload")),
                     content_type="multipart/form-data")
    assert ok.status_code == 302 and count_smears(app) == 1
    # a laboratory system posting the form with its Bearer key needs no token: browsers never add that header
    bearer = app.test_client().post("/upload", data=smear_form(external_id="LIS-1"), content_type="multipart/form-data",
                                    headers={"Authorization": f"Bearer {api_key}"})
    assert bearer.status_code == 302 and count_smears(app) == 2


def test_the_api_ignores_session_cookies(app, client, api_key):
    login(client, api_key)
    assert client.get("/v1/smears").status_code == 401


def make_key(app, name, role="submitter", own_smears_only=False):
    from service.auth import create_key
    with app.extensions["mdsdx"]["sessions"]() as db:
        return create_key(db, name, role=role, own_smears_only=own_smears_only)


def test_every_route_is_public_or_has_a_permission(app):
    from service.auth import PERMISSIONS, PUBLIC_ENDPOINTS
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (rule.endpoint, method) in PERMISSIONS, (rule.endpoint, method)


# (method, path template, permission); {id} is a smear the submitter key posted
ENDPOINTS = [
    ("get", "/v1/smears", "read"), ("get", "/v1/smears/{id}", "read"), ("get", "/v1/smears/{id}/fhir", "read"),
    ("get", "/v1/smears/{id}/report", "read"), ("post", "/v1/smears", "submit"), ("post", "/v1/granules", "submit"),
    ("get", "/", "read"), ("get", "/smears/{id}", "read"), ("get", "/smears/{id}/cells/0.img", "read"),
    ("get", "/cohort?id={id}", "read"), ("get", "/models", "read"), ("get", "/upload", "submit"),
    ("post", "/upload", "submit"), ("delete", "/v1/smears/{id}", "delete"),
]
ALLOWED = {"reviewer": {"read"}, "submitter": {"read", "submit", "delete"}, "admin": {"read", "submit", "delete"}}


@pytest.mark.parametrize("role", ["reviewer", "submitter", "admin"])
@pytest.mark.parametrize("method,template,permission", ENDPOINTS)
def test_roles_per_endpoint(app, role, method, template, permission):
    owner = make_key(app, "owner")
    smear = app.test_client().post("/v1/smears", data=smear_form(), content_type="multipart/form-data",
                                   headers={"Authorization": f"Bearer {owner}"}).json
    key = owner if role == "submitter" else make_key(app, role, role=role)  # a submitter deletes its own smear
    path = template.format(id=smear["id"])
    data = {"external_id": "X", "images": smear_form()["images"]} if method == "post" else None
    r = getattr(app.test_client(), method)(path, data=data, content_type="multipart/form-data" if data else None,
                                           headers={"Authorization": f"Bearer {key}"})
    if permission in ALLOWED[role]:
        assert r.status_code < 400, (role, method, path, r.status_code)
    else:
        assert r.status_code == 403, (role, method, path, r.status_code)
        if path.startswith("/v1"):
            assert f"role '{role}'" in r.json["message"]
    r.close()


def test_a_submitter_deletes_only_its_own_smears_an_admin_any(app):
    owner, other, admin = make_key(app, "owner"), make_key(app, "other"), make_key(app, "root", role="admin")
    c = app.test_client()
    ids = [c.post("/v1/smears", data=smear_form(external_id=f"S{i}"), content_type="multipart/form-data",
                  headers={"Authorization": f"Bearer {owner}"}).json["id"] for i in range(2)]
    assert c.delete(f"/v1/smears/{ids[0]}", headers={"Authorization": f"Bearer {other}"}).status_code == 403
    assert c.delete(f"/v1/smears/{ids[0]}", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    assert c.delete(f"/v1/smears/{ids[1]}", headers={"Authorization": f"Bearer {owner}"}).status_code == 200


def test_own_smears_only_keys_see_only_their_smears(app):
    lab_a = make_key(app, "lab-a", own_smears_only=True)
    lab_b = make_key(app, "lab-b")
    c = app.test_client()

    def submit(key, external_id):
        return c.post("/v1/smears", data=smear_form(external_id=external_id), content_type="multipart/form-data",
                      headers={"Authorization": f"Bearer {key}"}).json["id"]
    mine, theirs = submit(lab_a, "A-1"), submit(lab_b, "B-1")
    auth_a = {"Authorization": f"Bearer {lab_a}"}
    listing = c.get("/v1/smears", headers=auth_a).json
    assert listing["total"] == 1 and [s["id"] for s in listing["items"]] == [mine]
    for path in (f"/v1/smears/{theirs}", f"/v1/smears/{theirs}/fhir", f"/v1/smears/{theirs}/report",
                 f"/smears/{theirs}", f"/smears/{theirs}/cells/0.img"):
        assert c.get(path, headers=auth_a).status_code == 404, path
    assert c.delete(f"/v1/smears/{theirs}", headers=auth_a).status_code == 404
    assert c.get(f"/v1/smears/{mine}", headers=auth_a).status_code == 200
    assert c.get("/v1/smears", headers={"Authorization": f"Bearer {lab_b}"}).json["total"] == 2
    page = app.test_client()
    login(page, lab_a)
    home = page.get("/").get_data(as_text=True)
    assert "A-1" in home and "B-1" not in home
    assert b"data:image/png" not in page.get(f"/cohort?id={theirs}").data


def test_keys_cli_roles(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import cli
    monkeypatch.setenv("MDSDX_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(cli, ["keys", "create", "viewer", "--role", "reviewer"]).exit_code == 0
    assert runner.invoke(cli, ["keys", "create", "lab", "--own-smears-only"]).exit_code == 0
    assert runner.invoke(cli, ["keys", "create", "x", "--role", "owner"]).exit_code == 2
    listed = runner.invoke(cli, ["keys", "list"]).output
    assert "viewer\tmdsdx_" in listed and "\treviewer\tall smears" in listed and "\tsubmitter\town smears" in listed


def test_an_older_database_is_upgraded_in_place(tmp_path):
    """A database made before sessions, fingerprints and roles (schema 1) keeps its keys and smears:
    its keys become submitters (what every key could do), the key named 'admin' an admin."""
    from sqlalchemy import text

    from service.db import SCHEMA_VERSION, make_engine, migrate
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    migrate(engine)
    with engine.begin() as conn:  # back to schema 1, as an mdsdx of that time left it
        for table, column in (("api_keys", "role"), ("api_keys", "own_smears_only"), ("smears", "request_sha256")):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("DROP TABLE browser_sessions"))
        conn.execute(text("DELETE FROM schema_version WHERE version > 1"))
        conn.execute(text("INSERT INTO api_keys (name, prefix, key_hash, created_at) VALUES "
                          "('admin', 'aa', 'h1', '2025-01-01'), ('lis', 'bb', 'h2', '2025-01-01')"))
    assert migrate(engine) == SCHEMA_VERSION
    with engine.connect() as conn:
        roles = dict(conn.execute(text("SELECT name, role FROM api_keys")).all())
        assert roles == {"admin": "admin", "lis": "submitter"}
        assert conn.execute(text("SELECT count(*) FROM browser_sessions")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM api_keys WHERE own_smears_only")).scalar() == 0
    engine.dispose()
