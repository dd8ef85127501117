"""The saved AKIRA regressor: ``akira.keras`` (and ``akira.onnx``) beside ``metadata.json``.

This module reads a model folder and checks its contract (format and output order) without choosing
a runtime; :func:`models.engine.akira.infer.load_akira` picks the runtime, and ``models.engine.akira.train.save_akira``
writes the folder.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.akira_labels import load_labels
from core.errors import ModelLoadError

FORMAT = "mdsdx-akira/1"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "akira_compact"
ONNX_FILE = "akira.onnx"


def read_akira_metadata(model_dir: Path) -> dict:
    """The checked ``metadata.json`` of an AKIRA model folder; :class:`~core.errors.ModelLoadError` when the
    folder lacks ``akira.keras`` or its metadata, or the metadata is of another format or output order."""
    model_dir = Path(model_dir)
    meta_path = model_dir / "metadata.json"
    if not (model_dir / "akira.keras").is_file() or not meta_path.is_file():
        raise ModelLoadError(f"{model_dir}: expected akira.keras and metadata.json (train one with `mdsdx granules train`)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT or meta.get("outputs") != list(load_labels().ids):
        raise ModelLoadError(f"{meta_path}: not an AKIRA model of this version (format or output order differ)")
    return meta


def load_akira_keras(model_dir: Path) -> tuple:
    """``(keras model, metadata)`` of an AKIRA model folder, whatever runtimes it also has."""
    model_dir = Path(model_dir)
    meta = read_akira_metadata(model_dir)
    import keras

    import models.architecture.akira  # noqa: F401  (registers the custom layers)
    try:
        model = keras.models.load_model(model_dir / "akira.keras", compile=False)
    except Exception as exc:
        raise ModelLoadError(f"{model_dir / 'akira.keras'}: cannot be read by keras ({exc})") from exc
    return model, meta
