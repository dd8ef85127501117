"""Options and helpers shared by several commands, defined once."""
from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import click
import yaml

from core.errors import InvalidInput


def seed_option(default: int = 0, help: str = "Random seed; same seed, same output."):
    return click.option("--seed", type=int, default=default, show_default=True, help=help)


def config_option():
    return click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                        help="YAML file overriding the default settings.")


def out_dir_option(help: str = "Output folder.", required: bool = True):
    """``--out`` as a folder (``out``: a Path)."""
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=required, help=help)


def out_file_option(help: str | None = None):
    """``--out`` as a file to write (``out``: a Path)."""
    return click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help=help)


def data_root_option():
    """``--data-root``: the real crops (``data_root``; None: ../shared/data)."""
    return click.option("--data-root", type=click.Path(file_okay=False, exists=True),
                        help="Folder with pbc/ and marrow/ (default ../shared/data).")


def check_images_option():
    """``--check-images``: where a model folder's agreement-check crops are chosen (``check_dir``)."""
    return click.option("--check-images", "check_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
                        help="Choose the folder's check crops (copied into it) from this folder: generated crops for a "
                             "folder that is committed, never copies of the shared data.")


def model_option(help: str = "Model folder (default: shipped)."):
    """``--model``: a saved model folder (``model_dir``; None: the shipped one)."""
    return click.option("--model", "model_dir", type=click.Path(file_okay=False, exists=True), help=help)


def cell_model_option():
    """``--cell-model``: the stage-1 model folder (``cell_model``; None: the shipped one)."""
    return click.option("--cell-model", type=click.Path(file_okay=False, exists=True),
                        help="Stage-1 model folder (default: shipped).")


def simulated_dir_option(help: str, required: bool = False, exists: bool = True):
    """``--simulated-dir``: a folder of simulated cells (cells.csv inside)."""
    return click.option("--simulated-dir", type=click.Path(file_okay=False, exists=exists), required=required, help=help)


def labels_option():
    """``--labels``: an AKIRA label-table folder (``labels_dir``, labels.csv inside)."""
    return click.option("--labels", "labels_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
                        required=True)


def epochs_option(type=click.IntRange(min=1)):
    """``--epochs``: overrides the config's number of epochs."""
    return click.option("--epochs", type=type, help="Override the number of epochs.")


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
    engine = make_engine(cfg.db_url, cfg.database_timeout_seconds)
    migrate(engine)
    return cfg, make_session_factory(engine)()
