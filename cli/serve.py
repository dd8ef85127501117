"""``mdsdx serve``: initialise the data directory, then run gunicorn with the service."""
from __future__ import annotations

import os
import shutil
import sys

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="gunicorn workers; each loads the models once (TensorFlow already uses every core).")
@click.option("--dev", is_flag=True, help="Turn authentication OFF (development only).")
def serve(host: str, port: int, workers: int, dev: bool) -> None:
    """Start the HTTP service (MDSDX_HOME and MDSDX_DATABASE_URL are honoured)."""
    from cli.common import setup_logging
    setup_logging()
    if dev:
        os.environ["MDSDX_DEV"] = "1"
        click.secho("WARNING: --dev: authentication is OFF. Never expose this instance or send patient data to it.",
                    fg="red", bold=True, err=True)
    from service.app import create_app
    from service.config import ServiceConfig
    from service.home import init_home
    cfg = ServiceConfig.from_env()
    app = create_app({"MDSDX": cfg})
    init = init_home(app)
    if init["admin_key"]:
        click.echo("\nA first API key named 'admin' was created. It is shown only this once; keep it safe:\n")
        click.echo(f"    {init['admin_key']}\n")
        click.echo("Sign in to the pages with it, or send it as 'Authorization: Bearer <key>'.\n")
    if init["examples"]:
        click.echo(f"Diagnosed {init['examples']} bundled example smears (SIMULATED).")
    click.echo(f"mdsdx: http://{host}:{port}/  (data in {cfg.home.resolve()}, database {cfg.db_url.split('://')[0]})")
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if gunicorn is None:
        from core.errors import InvalidInput
        raise InvalidInput("gunicorn is not installed in this environment")
    os.environ.update(MDSDX_BIND=f"{host}:{port}", MDSDX_WORKERS=str(workers), MDSDX_HOME=str(cfg.home))
    sys.stdout.flush()
    os.execv(gunicorn, [gunicorn, "--config", "python:service.gunicorn_conf", "service.wsgi:app"])
