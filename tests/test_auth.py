"""Browser sessions, CSRF, and who may do what: driven through the test client as a browser or a
laboratory system would."""
import io
from datetime import timedelta

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
