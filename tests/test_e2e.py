"""End to end: gunicorn on 127.0.0.1 with the real config file, and a browser opening a report.

The gunicorn test posts a simulated-looking smear to the running server and reads it back; the
browser test drives Debian's Chromium through Playwright (executable_path set, no download) and
saves a screenshot. Both use the tiny test models; they bind only to 127.0.0.1.
"""
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import jpeg_bytes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(fields: dict, files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "mdsdxtestboundary"
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for field, name, data in files:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                  f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def test_gunicorn_serves_a_smear(tmp_path, tiny_models):
    port = free_port()
    env = {**os.environ, "MDSDX_HOME": str(tmp_path / "home"), "MDSDX_CELL_MODEL": str(tiny_models["cellnet"]),
           "MDSDX_DIAGNOSER": str(tiny_models["diagnoser"]), "MDSDX_AKIRA_MODEL": str(tiny_models["akira"]),
           "MDSDX_BIND": f"127.0.0.1:{port}", "MDSDX_DEV": "1"}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    proc = subprocess.Popen([gunicorn, "--config", "python:service.gunicorn_conf", "service.wsgi:app"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("gunicorn did not become ready in 120 s")
        body, ctype = multipart({"external_id": "E2E-1"}, [("images", f"cell_{i:04d}.jpg", jpeg_bytes(i)) for i in range(8)])
        req = urllib.request.Request(f"{base}/v1/smears", data=body, headers={"Content-Type": ctype}, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 201
            import json
            created = json.loads(r.read())
        with urllib.request.urlopen(f"{base}/v1/smears/{created['id']}", timeout=10) as r:
            assert json.loads(r.read())["external_id"] == "E2E-1"
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    log = out.decode(errors="replace")
    assert "mdsdx models loaded in worker" in log
    assert "POST /v1/smears" in log and "E2E-1" not in log  # access log has no metadata


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test.sh installs it as root)")
def test_browser_opens_a_report(tmp_path, tiny_models, tiny_pipeline):
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from conftest import service_config
    from service.app import create_app
    from service.auth import create_key
    app = create_app({"MDSDX": service_config(tmp_path / "home", tiny_models)})
    app.extensions["mdsdx"]["pipeline"] = tiny_pipeline
    with app.extensions["mdsdx"]["sessions"]() as db:
        key = create_key(db, "browser")
    client = app.test_client()
    data = {"external_id": "BROWSER-1", "images": [(io.BytesIO(jpeg_bytes(i)), f"cell_{i:04d}.jpg") for i in range(12)]}
    smear = client.post("/v1/smears", data=data, headers={"Authorization": f"Bearer {key}"},
                        content_type="multipart/form-data").json
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    shots = Path(os.environ.get("MDSDX_SCREENSHOTS", tmp_path))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/smears/{smear['id']}")
            assert "/login" in page.url
            page.fill("input[name=key]", key)
            page.click("input[type=submit]")
            page.wait_for_selector("text=Cell gallery")
            assert page.locator(".call").inner_text() in ("MDS", "AA")
            assert page.locator(".cell img").count() == 12
            # gallery images load lazily: bring each into view, then wait until every one has loaded
            for img in page.locator(".cell img").all():
                img.scroll_into_view_if_needed()
            page.wait_for_function("() => [...document.querySelectorAll('.cell img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)", timeout=20000)
            page.screenshot(path=str(shots / "report.png"), full_page=True)
            page.goto(f"http://127.0.0.1:{port}/")
            assert "BROWSER-1" in page.content()
            page.screenshot(path=str(shots / "smears.png"))
            browser.close()
    finally:
        server.shutdown()
    assert (shots / "report.png").stat().st_size > 10_000
