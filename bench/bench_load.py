"""HTTP load: 150-cell smears of 360-px JPEGs POSTed to gunicorn on 127.0.0.1 at 1, 2 and 4
concurrent clients, with the stage-1 runtime the service chooses and then, in the same run, with the
float ONNX file (MDSDX_RUNTIME=onnx). Bounded in count and time; only loopback. Reports smears per
minute, p50 / p95 latency, 5xx count and checks that every accepted smear is stored.
Target: >= 60 smears/min with 4 clients, p95 <= 3 s, no 5xx.

    .venv/bin/python bench/bench_load.py [--smears-per-level 20] [--max-seconds 240] [--no-float]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_line, test_crops  # noqa: E402


def multipart(external_id: str, blobs: list[bytes]) -> tuple[bytes, str]:
    boundary = "mdsdxbenchboundary"
    out = io.BytesIO()
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="external_id"\r\n\r\n{external_id}\r\n'.encode())
    for i, data in enumerate(blobs):
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="cell_{i:04d}.jpg"\r\n'
                  "Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post(base: str, key: str, body: bytes, ctype: str) -> tuple[int, float]:
    req = urllib.request.Request(f"{base}/v1/smears", data=body, method="POST",
                                 headers={"Content-Type": ctype, "Authorization": f"Bearer {key}"})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            return r.status, time.perf_counter() - t
    except urllib.error.HTTPError as exc:
        return exc.code, time.perf_counter() - t


def run_level_series(runtime: str | None, args, body: bytes, ctype: str) -> None:
    """Start gunicorn (``runtime``: MDSDX_RUNTIME, None for the service's own choice), post at 1, 2 and
    4 clients, print each level and check that every accepted smear was stored."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tempfile.mkdtemp(prefix="mdsdx-bench-")
    env = {**os.environ, "MDSDX_HOME": home, "MDSDX_BIND": f"127.0.0.1:{port}"}
    env.pop("MDSDX_RUNTIME", None)
    if runtime:
        env["MDSDX_RUNTIME"] = runtime
    venv_bin = Path(sys.executable).parent
    key = subprocess.run([str(venv_bin / "mdsdx"), "keys", "create", "bench"], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    server = subprocess.Popen([str(venv_bin / "gunicorn"), "--config", "python:service.gunicorn_conf", "service.wsgi:app"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = {}
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                    if r.status == 200:
                        ready = json.loads(r.read())
                        break
            except OSError:
                time.sleep(0.5)
        print(f"stage-1 runtime: {ready.get('model_runtimes', {}).get('cellnet')} "
              f"({'MDSDX_RUNTIME=' + runtime if runtime else 'chosen by the service'})")
        accepted = 0
        for clients in (1, 2, 4):
            deadline = time.time() + args.max_seconds
            t = time.perf_counter()
            with ThreadPoolExecutor(clients) as ex:
                futures = [ex.submit(post, base, key, body, ctype) for _ in range(args.smears_per_level)]
                results = [f.result() for f in futures if time.time() < deadline or f.done()]
            elapsed = time.perf_counter() - t
            latencies = sorted(r[1] for r in results)
            codes = [r[0] for r in results]
            accepted += sum(c == 201 for c in codes)
            print(f"  {clients} client(s): {len(results)} smears in {elapsed:.1f} s = {60 * len(results) / elapsed:.1f} smears/min; "
                  f"p50 {statistics.median(latencies):.2f} s, p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s; "
                  f"5xx {sum(c >= 500 for c in codes)}, non-201 {sum(c != 201 for c in codes)}")
        req = urllib.request.Request(f"{base}/v1/smears?per_page=1", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            total = json.loads(r.read())["total"]
        print(f"  stored smears: {total} (accepted {accepted}, examples excluded: none seeded)"
              + ("" if total == accepted else "  MISMATCH"))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smears-per-level", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=240)
    ap.add_argument("--no-float", action="store_true", help="skip the float ONNX run")
    args = ap.parse_args()
    print(f"CPU: {cpu_line()}")
    body, ctype = multipart("BENCH", test_crops(150, export_px=360))
    run_level_series(None, args, body, ctype)
    if not args.no_float:
        run_level_series("onnx", args, body, ctype)


if __name__ == "__main__":
    main()
