"""The model cards of the models this service runs, for the Models page: which version each folder
holds, what its card measured on held-out data, its intended use and its limits."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.export.model_card import read_json
from service.config import ServiceConfig


@dataclass(frozen=True)
class ServedCard:
    """One model folder and its card. ``card`` is the parsed ``model_card.json`` (None when absent);
    ``folder_version`` is the version in the folder's ``metadata.json`` (None when unreadable)."""
    kind: str
    folder: Path
    card: dict | None
    folder_version: str | None

    @property
    def card_matches(self) -> bool:
        """True when the card describes the weights in the folder."""
        return self.card is not None and self.card.get("version") == self.folder_version


def model_folders(cfg: ServiceConfig) -> dict[str, Path]:
    """kind (cellnet: stage 1, diagnoser: stage 2, akira: bone-marrow granules) -> the folder the service
    loads it from (its configured folder or the shipped default)."""
    from diagnose.model import DEFAULT_DIR as DIAGNOSER_DIR
    from models.export.akira_artifact import DEFAULT_DIR as AKIRA_DIR
    from models.export.artifact import DEFAULT_DIR as CELLNET_DIR
    return {"cellnet": Path(cfg.cell_model_dir or CELLNET_DIR), "diagnoser": Path(cfg.diagnoser_dir or DIAGNOSER_DIR),
            "akira": Path(cfg.akira_model_dir or AKIRA_DIR)}


def served_runtimes(ext: dict) -> dict[str, str]:
    """kind -> the engine this worker runs the loaded model in (onnx, bf16, int8 or keras); ``ext`` is the
    app's ``extensions["mdsdx"]``. The diagnoser runs on XGBoost's C API and has no entry."""
    runtimes = {}
    if ext.get("pipeline") is not None:
        runtimes["cellnet"] = ext["pipeline"].predictor.runtime
    if ext.get("granules") is not None:
        runtimes["akira"] = ext["granules"].runtime
    return runtimes


def runtime_checks(ext: dict) -> dict[str, dict]:
    """kind -> runtime -> the agreement check each int8 or bf16 runtime this worker tried at load ran
    (passed or not, with the reason), for the models that tried one."""
    checks = {}
    if ext.get("pipeline") is not None and ext["pipeline"].predictor.runtime_checks:
        checks["cellnet"] = ext["pipeline"].predictor.runtime_checks
    if ext.get("granules") is not None and ext["granules"].runtime_checks:
        checks["akira"] = ext["granules"].runtime_checks
    return checks


def served_cards(cfg: ServiceConfig) -> list[ServedCard]:
    """The card of every model folder the service is configured with, in pipeline order."""
    out = []
    for kind, folder in model_folders(cfg).items():
        meta = read_json(folder / "metadata.json") or {}
        out.append(ServedCard(kind, folder, read_json(folder / "model_card.json"), meta.get("version")))
    return out


def card_markdown(cfg: ServiceConfig, kind: str) -> Path | None:
    """The full ``MODEL_CARD.md`` of one served model, or None."""
    folder = model_folders(cfg).get(kind)
    path = folder / "MODEL_CARD.md" if folder else None
    return path if path is not None and path.is_file() else None
