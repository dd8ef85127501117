"""Save and load the stage-1 model: ``cellnet.keras`` beside ``metadata.json``.

The metadata is the model's contract: version, library versions, input size, output order (type
abbreviations, feature ids), the features that had training labels, calibration, and metrics.
The loader checks it and says plainly what is wrong when it cannot use a file.
"""
from __future__ import annotations

import json
import logging
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

from core.errors import ModelLoadError
from core.taxonomy import load_taxonomy
from models.export.agreement import MakeInputs, run_check
from models.export.runtime import OnnxModel, OpenVinoModel, export_onnx, open_runtime, runtime_candidates

log = logging.getLogger(__name__)
FORMAT = "mdsdx-cellnet/1"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "cellnet"
ONNX_FILE = "cellnet.onnx"
ONNX_OUTPUTS = ("cell_type_logits", "features_logits", "embedding", "attributes")


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
    meta = {
        "format": FORMAT,
        "version": version or datetime.now(timezone.utc).strftime("cellnet-%Y%m%d-%H%M"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "libraries": library_versions("tensorflow-cpu", "tensorflow", "keras", "numpy"),
        "architecture": asdict(net_config),
        "input": {"shape": [net_config.input_px, net_config.input_px, 3], "dtype": "uint8 RGB 0-255",
                  "field_of_view": net_config.field_of_view,
                  "preprocess": "models.preprocess.load_cell_image (centre square crop, antialiased resize, "
                                "then the central field_of_view of the side)"},
        "outputs": {"cell_types": tax.type_abbrs, "features": tax.feature_ids},
        "trained_features": trained_features,
        "calibration": calibration,
        "training": training,
    }
    resave_cellnet(net, Path(out), meta)
    return Path(out) / "cellnet.keras"


def model_kind(model_dir: Path) -> str:
    """``cellnet`` or ``akira``, from the Keras file a model folder holds."""
    if (Path(model_dir) / "cellnet.keras").is_file():
        return "cellnet"
    if (Path(model_dir) / "akira.keras").is_file():
        return "akira"
    raise ModelLoadError(f"{model_dir}: no cellnet.keras or akira.keras")


def input_geometry(meta: dict) -> tuple[int, float]:
    """(input_px, field_of_view) of a stage-1 model; models saved before 2026-12-06 saw the whole crop."""
    return int(meta["input"]["shape"][0]), float(meta["input"].get("field_of_view", 1.0))


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

    import models.architecture.losses  # noqa: F401  (registers the custom objects)
    model_dir = Path(model_dir) if model_dir else DEFAULT_DIR
    meta = read_metadata(model_dir)
    try:
        net = keras.models.load_model(model_dir / "cellnet.keras", compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelLoadError(f"{model_dir / 'cellnet.keras'}: cannot be read by keras ({exc})") from exc
    return net, meta


def sha256_of(path: Path) -> str:
    import hashlib
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def copy_weights_by_name(donor, layers) -> int:
    """Copy into each of ``layers`` the weights of the ``donor`` model's layer of the same name;
    returns how many layers received weights."""
    by_name = {layer.name: layer for layer in donor.layers}
    copied = 0
    for layer in layers:
        if layer.weights and layer.name in by_name:
            layer.set_weights(by_name[layer.name].get_weights())
            copied += 1
    return copied


def onnx_record(onnx_path: Path) -> dict:
    """The ``runtime`` entry of a model's metadata: its ONNX file, opset and checksum."""
    from models.export.runtime import OPSET
    return {"onnx": Path(onnx_path).name, "opset": OPSET, "onnx_sha256": sha256_of(onnx_path),
            "libraries": library_versions("tf2onnx", "onnx", "onnxruntime")}


def checked_onnx_path(model_dir: Path, meta: dict, int8: bool = False) -> Path | None:
    """The model folder's ONNX file (``int8``: its quantised one) when its metadata names it and the
    checksum matches, else None (the Keras file is then used). A file that is present but altered is
    an error."""
    record = meta.get("runtime") or {}
    if int8:
        record = record.get("int8") or {}
    if not record.get("onnx"):
        return None
    path = Path(model_dir) / record["onnx"]
    if not path.is_file():
        return None
    if sha256_of(path) != record.get("onnx_sha256"):
        remake = f"mdsdx train quantize {model_dir}" if int8 else f"mdsdx train onnx {model_dir}"
        raise ModelLoadError(f"{path}: checksum differs from metadata.json; make it again with `{remake}`")
    return path


def open_checked_runtime(model_dir: Path, meta: dict, kind: str, make_inputs: MakeInputs,
                         requested: str | None = None, threads: int = 2) -> tuple[str, OnnxModel | OpenVinoModel | None]:
    """``(runtime, model)``: the first of the folder's runtime candidates
    (:func:`models.export.runtime.runtime_candidates`) that gives the float model's answers here, opened;
    ``model`` is None for ``keras``, whose model the caller loads.

    An int8 or bf16 runtime is checked against the float outputs stored with the folder's check crops
    (:func:`models.export.agreement.run_check`); under ``auto`` one that fails is logged and the next is
    tried, and one asked for by name that fails is a :class:`ModelLoadError` saying why. The opened
    model's ``runtime_checks`` holds the check of every runtime tried. ``make_inputs``: check-crop
    paths -> model input batches."""
    record = meta.get("runtime") or {}
    onnx_path, int8_path = checked_onnx_path(model_dir, meta), checked_onnx_path(model_dir, meta, int8=True)
    candidates = runtime_candidates(model_dir, onnx_path, requested, int8_path, bool(record.get("bf16")))
    checks = {}
    for name in candidates:
        if name == "keras":
            return "keras", None
        model = open_runtime(name, int8_path if name == "int8" else onnx_path, threads)
        model.runtime_checks = checks
        if name == "onnx":
            return "onnx", model
        result = run_check(kind, name, model, model_dir, meta, make_inputs)
        checks[name] = result.as_dict()
        if result.passed:
            return name, model
        if len(candidates) == 1:
            raise ModelLoadError(f"{model_dir}: {result.reason}; use MDSDX_RUNTIME=onnx")
        log.warning("%s: %s; trying the next runtime", model_dir, result.reason)
    raise AssertionError("runtime_candidates always ends with onnx or keras")


def resave_cellnet(net, model_dir: Path, meta: dict) -> None:
    """Write an existing stage-1 folder again after its weights changed: ``cellnet.keras``, its ONNX
    export and ``metadata.json`` (``meta`` with the new runtime record)."""
    model_dir = Path(model_dir)
    net.save(model_dir / "cellnet.keras")
    onnx_path = export_onnx(net, model_dir / ONNX_FILE, int(meta["input"]["shape"][0]), outputs=ONNX_OUTPUTS)
    meta["runtime"] = onnx_record(onnx_path)
    (model_dir / "metadata.json").write_text(json.dumps(meta, indent=2))


def add_onnx(model_dir: Path) -> Path:
    """Export the ONNX file of an existing stage-1 or AKIRA model folder and record it in its metadata."""
    model_dir = Path(model_dir)
    meta_path = model_dir / "metadata.json"
    if (model_dir / "cellnet.keras").is_file():
        net, meta = load_cellnet(model_dir)
        path = export_onnx(net, model_dir / ONNX_FILE, int(meta["input"]["shape"][0]), outputs=ONNX_OUTPUTS)
    elif (model_dir / "akira.keras").is_file():
        from models.export.akira_artifact import ONNX_FILE as AKIRA_ONNX, load_akira_keras
        model, meta = load_akira_keras(model_dir)
        path = export_onnx(model, model_dir / AKIRA_ONNX, int(meta["config"]["input_px"]))
    else:
        raise ModelLoadError(f"{model_dir}: no cellnet.keras or akira.keras to export")
    meta["runtime"] = onnx_record(path)
    meta_path.write_text(json.dumps(meta, indent=2))
    return path
