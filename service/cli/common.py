"""Options and helpers shared by several commands, defined once."""
from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import click
import yaml

from core.errors import InvalidInput


def seed_option(default: int = 0):
    return click.option("--seed", type=int, default=default, show_default=True, help="Random seed; same seed, same output.")


def config_option():
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                        help="YAML file overriding the default settings.")


def load_dataclass_config(cls, config_file: Path | None, **overrides):
    """Defaults of ``cls``, then the YAML file, then explicit overrides that are not None."""
    values: dict = {}
    if config_file:
        try:
            values = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{config_file}: not valid YAML ({exc})") from exc
        if not isinstance(values, dict):
            raise InvalidInput(f"{config_file}: expected a mapping of settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"{config_file}: unknown settings {unknown}; known: {sorted(known)}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def service_db():
    """(ServiceConfig from the environment, a database session with the schema migrated), for the service's
    operator commands; ``MDSDX_HOME`` / ``MDSDX_DATABASE_URL`` select the database."""
    from service.config import ServiceConfig
    from service.db import make_engine, make_session_factory, migrate
    cfg = ServiceConfig.from_env()
    cfg.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(cfg.db_url)
    migrate(engine)
    return cfg, make_session_factory(engine)()
