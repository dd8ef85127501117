"""Save and load the stage-1 model: ``cellnet.keras`` beside ``metadata.json``.

The metadata is the model's contract: version, library versions, input size, output order (type
abbreviations, feature ids), the features that had training labels, calibration, and metrics.
The loader checks it and says plainly what is wrong when it cannot use a file.
"""
from __future__ import annotations

import json
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

from models.errors import ModelLoadError
from models.taxonomy import load_taxonomy

FORMAT = "mdsdx-cellnet/1"
DEFAULT_DIR = Path(__file__).resolve().parent / "cellnet"


def library_versions(*names: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def save_cellnet(net, net_config, out: Path, calibration: dict, trained_features: list[str], training: dict,
                 version: str | None = None) -> Path:
    tax = load_taxonomy()
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / "cellnet.keras"
    net.save(path)
    meta = {
        "format": FORMAT,
        "version": version or datetime.now(timezone.utc).strftime("cellnet-%Y%m%d-%H%M"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "libraries": library_versions("tensorflow-cpu", "tensorflow", "keras", "numpy"),
        "architecture": asdict(net_config),
        "input": {"shape": [net_config.input_px, net_config.input_px, 3], "dtype": "uint8 RGB 0-255",
                  "preprocess": "models.preprocess.load_cell_image (centre square crop, antialiased resize)"},
        "outputs": {"cell_types": tax.type_abbrs, "features": tax.feature_ids},
        "trained_features": trained_features,
        "calibration": calibration,
        "training": training,
    }
    (Path(out) / "metadata.json").write_text(json.dumps(meta, indent=2))
    return path


def read_metadata(model_dir: Path) -> dict:
    model_dir = Path(model_dir)
    meta_path = model_dir / "metadata.json"
    if not (model_dir / "cellnet.keras").is_file() or not meta_path.is_file():
        raise ModelLoadError(f"{model_dir}: expected cellnet.keras and metadata.json (train one with `mdsdx train cells --out DIR`)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{meta_path}: not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ModelLoadError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    tax = load_taxonomy()
    if meta["outputs"]["cell_types"] != tax.type_abbrs or meta["outputs"]["features"] != tax.feature_ids:
        raise ModelLoadError(f"{meta_path}: the model's output order does not match this taxonomy; retrain it")
    return meta


def load_cellnet(model_dir: Path | None = None):
    """Load ``(keras model, metadata)`` from ``model_dir`` (the shipped model by default)."""
    import keras

    import models.losses  # noqa: F401  (registers the custom objects)
    model_dir = Path(model_dir) if model_dir else DEFAULT_DIR
    meta = read_metadata(model_dir)
    try:
        net = keras.models.load_model(model_dir / "cellnet.keras", compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelLoadError(f"{model_dir / 'cellnet.keras'}: cannot be read by keras ({exc})") from exc
    return net, meta
