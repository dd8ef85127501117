"""WSGI entry point for gunicorn: ``service.wsgi:app``. Models load in each worker (see gunicorn_conf)."""
from service.app import create_app
from service.config import ServiceConfig

app = create_app({"MDSDX": ServiceConfig.from_env(load_models=False)})
