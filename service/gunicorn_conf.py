"""gunicorn settings for mdsdx (``gunicorn --config python:service.gunicorn_conf service.wsgi:app``).

- ``preload_app``: the master imports the app once (configuration, database migration) before forking.
- Models load once per worker in ``post_worker_init``, not in the master: neither ONNX Runtime
  sessions, OpenVINO compiled models (the bf16 runtime) nor TensorFlow (with ``MDSDX_RUNTIME=keras``)
  survive a fork (their thread pools do not). One worker is the default because inference already uses both cores of a small machine;
  threads let uploads overlap with inference.
- Environment: ``MDSDX_BIND`` (127.0.0.1:8000), ``MDSDX_WORKERS`` (1), ``MDSDX_THREADS`` (4),
  ``MDSDX_TIMEOUT`` seconds (300).
- gunicorn's control socket lives in the data directory (``$MDSDX_HOME/gunicorn.ctl``), not in the
  user's home.
"""
import os

bind = os.environ.get("MDSDX_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("MDSDX_WORKERS", "1"))
threads = int(os.environ.get("MDSDX_THREADS", "4"))
worker_class = "gthread"
preload_app = True
timeout = int(os.environ.get("MDSDX_TIMEOUT", "300"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# the query string is left out of the access log: a pseudonym must never reach a log
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
limit_request_line = 8190
control_socket = os.path.join(os.path.abspath(os.environ.get("MDSDX_HOME", "mdsdx-home")), "gunicorn.ctl")


def post_fork(server, worker):
    # SQLAlchemy connections must not be shared across fork
    worker.app.callable.extensions["mdsdx"]["engine"].dispose()


def post_worker_init(worker):
    from service.app import load_models
    load_models(worker.app.callable)
    worker.log.info("mdsdx models loaded in worker %s", worker.pid)
