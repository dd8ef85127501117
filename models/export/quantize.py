"""Reduced-precision runtimes of a model folder: static int8 quantisation of its ONNX file (ONNX
Runtime, QDQ format), and the record of its bfloat16 runtime (OpenVINO, :func:`add_bf16`).

Weights are int8 per output channel, in 7 bits by default (``reduce_range``) so that ONNX Runtime's
u8s8 kernels cannot saturate on x86 CPUs without VNNI; activations uint8, their ranges calibrated on
stage-1 *train-split* crops, never on held-out ones: by each tensor's extremes (``minmax``, the
default) or by the 99.999th percentile of its values (``percentile``). The quantised file sits beside
the float one and is recorded in ``metadata.json`` (``runtime.int8``: file, checksum, calibration, and
its agreement with the float model on other train-split crops), with the folder's check crops
(``runtime.check``), on which every load checks it again (:mod:`models.export.agreement`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from core.errors import InvalidInput, ModelLoadError
from models.export.agreement import CHECK_DIR, agreement, decision_outputs, write_check
from models.export.artifact import checked_onnx_path, library_versions, model_kind, sha256_of
from models.export.runtime import OnnxModel, OpenVinoModel, bf16_support

INT8_SUFFIX = ".int8.onnx"


def onnx_quantization():
    """``onnxruntime.quantization``; importing it appends onnxruntime's ``transformers`` folder to
    ``sys.path``, whose own ``models`` package could shadow this project's, so the path is restored."""
    before = list(sys.path)
    from onnxruntime import quantization
    sys.path[:] = before
    return quantization


CALIBRATIONS = ("percentile", "minmax")


def quantize_onnx(src: Path, dst: Path, batches: Iterable[np.ndarray], reduce_range: bool = False,
                  calibration: str = "minmax") -> Path:
    """Write the int8 (QDQ) version of ``src`` to ``dst``, calibrated on ``batches`` of model inputs
    (n, px, px, 3) float32, 0-255. ``reduce_range``: 7-bit weights, which ONNX Runtime documents as the
    guard against its u8s8 kernels saturating on x86 CPUs without VNNI, so the file computes the same
    outputs on any x86 CPU. ``calibration``: one of :data:`CALIBRATIONS` (ONNX Runtime's Percentile
    method at its default 99.999th percentile, or MinMax)."""
    if calibration not in CALIBRATIONS:
        raise InvalidInput(f"calibration {calibration!r}: expected one of {', '.join(CALIBRATIONS)}")
    q = onnx_quantization()
    src, dst = Path(src), Path(dst)
    name = OnnxModel(src, threads=1).input_name

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: np.ascontiguousarray(batch, np.float32)}

    prepared = dst.with_suffix(".prep.onnx")
    partial = dst.with_suffix(".partial")
    try:
        q.quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        method = q.CalibrationMethod.Percentile if calibration == "percentile" else q.CalibrationMethod.MinMax
        q.quantize_static(str(prepared), str(partial), Reader(), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, per_channel=True,
                          reduce_range=reduce_range, calibrate_method=method)
        partial.replace(dst)
    finally:
        prepared.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return dst


def train_split_crops(data_root: Path | None, n: int, seed: int, skip: int = 0) -> list[str]:
    """``n`` train-split crop paths of the shared data, a seeded sample after the first ``skip``."""
    from core.datasets import load_all
    frame = load_all(data_root)
    paths = frame.loc[frame["split"] == "train", "path"].sample(frac=1.0, random_state=seed).tolist()
    if len(paths) < skip + n:
        raise InvalidInput(f"{n + skip} train-split crops needed for int8 calibration, found {len(paths)}")
    return paths[skip:skip + n]


def model_inputs(kind: str, meta: dict, images: Sequence) -> list[np.ndarray]:
    """Model input batches (float32 0-255) for the crops ``images`` (paths or bytes): 32 crops per
    batch (n, px, px, 3) for the stage-1 network; for AKIRA one batch per crop, its 16 rotated views."""
    from core.preprocess import load_cell_image
    if kind == "cellnet":
        from models.export.artifact import input_geometry
        px, field_of_view = input_geometry(meta)
        crops = np.stack([load_cell_image(i, px, field_of_view=field_of_view) for i in images]).astype(np.float32)
        return [crops[s:s + 32] for s in range(0, len(crops), 32)]
    from models.engine.akira.augment import rotation_views, saved_interpolation
    from models.engine.akira.infer import N_VIEWS, decode_px
    px = int(meta["config"]["input_px"])
    interpolation = saved_interpolation(meta["config"])
    return [rotation_views(load_cell_image(i, decode_px(px)), px, N_VIEWS, interpolation).astype(np.float32) for i in images]


def agreement_with_float(kind: str, fp32: OnnxModel, reduced: OnnxModel | OpenVinoModel, batches: list[np.ndarray]) -> dict:
    """How far the ``reduced``-precision outputs (the int8 file, or the bf16 runtime) are from the
    float ones on ``batches`` (:func:`models.export.agreement.agreement`): for the stage-1 network the share of
    crops with the same top type; for AKIRA the share with the same DG grade (maximum over the views,
    before gating); and the largest absolute difference of those outputs."""
    return agreement(kind, decision_outputs(kind, fp32, batches), decision_outputs(kind, reduced, batches))


def _float_onnx_of(model_dir: Path, purpose: str) -> tuple[str, Path, dict, Path]:
    """``(kind, metadata path, metadata, checked float ONNX file)`` of a stage-1 or AKIRA folder; a folder
    without that file is a :class:`ModelLoadError` naming ``purpose`` and the export command."""
    kind = model_kind(model_dir)
    meta_path = model_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    src = checked_onnx_path(model_dir, meta)
    if src is None:
        raise ModelLoadError(f"{model_dir}: no float ONNX file to {purpose}; export one with `mdsdx train onnx {model_dir}`")
    return kind, meta_path, meta, src


def _record_check(model_dir: Path, kind: str, meta: dict, src: Path, crops: Sequence,
                  check_images: Sequence | None) -> None:
    """Store the folder's agreement-check crops and the float outputs on them (``runtime.check``),
    chosen among ``check_images`` when given (new crops replace any the folder has), otherwise among
    ``crops`` unless the folder has check crops already."""
    runtime = meta.setdefault("runtime", {})
    has_check = runtime.get("check") and all((model_dir / CHECK_DIR / n).is_file() for n in runtime["check"]["crops"])
    if check_images:
        crops = check_images
    elif has_check:
        return
    runtime["check"] = write_check(model_dir, kind, OnnxModel(src), list(crops), lambda paths: model_inputs(kind, meta, paths))


def add_int8(model_dir: Path, data_root: Path | None = None, images: Sequence | None = None,
             n_calibration: int = 192, n_check: int = 192, seed: int = 0,
             reduce_range: bool = True, calibration: str = "minmax", check_images: Sequence | None = None) -> dict:
    """Quantise a stage-1 or AKIRA folder's float ONNX file and record it in ``metadata.json``.

    ``images``: calibration crops (paths); by default ``n_calibration`` train-split crops of the
    shared data, with the agreement measured on ``n_check`` other ones, among which the folder's
    check crops are chosen (:mod:`models.export.agreement`) unless ``check_images`` (paths) are given: a
    folder that is committed takes generated crops there, never copies of the shared data. ``reduce_range``: 7-bit weights, right on every
    x86 CPU; ``calibration``: how the activation ranges are set (both :func:`quantize_onnx`).
    Returns the ``runtime.int8`` record."""
    model_dir = Path(model_dir)
    kind, meta_path, meta, src = _float_onnx_of(model_dir, "quantise")
    if images is None:
        calibration_crops = train_split_crops(data_root, n_calibration, seed)
        check_crops = train_split_crops(data_root, n_check, seed, skip=n_calibration)
        described = f"{n_calibration} train-split crops of the shared data (seed {seed})"
    else:
        half = max(1, len(images) // 2)
        calibration_crops, check_crops = list(images[:half]), list(images[half:]) or list(images[:half])
        described = f"{len(calibration_crops)} given crops"
    dst = quantize_onnx(src, model_dir / (src.name[:-len(".onnx")] + INT8_SUFFIX), model_inputs(kind, meta, calibration_crops),
                        reduce_range, calibration)
    record = {"onnx": dst.name, "onnx_sha256": sha256_of(dst), "calibration": described,
              "format": ("QDQ, int8 weights per channel" + (" in 7 bits (reduce_range)" if reduce_range else "")
                         + f", uint8 activations ({'Percentile 99.999' if calibration == 'percentile' else 'MinMax'})"),
              "reduce_range": reduce_range, "activation_calibration": calibration,
              "agreement_with_float": agreement_with_float(kind, OnnxModel(src), OnnxModel(dst), model_inputs(kind, meta, check_crops)),
              "libraries": library_versions("onnx", "onnxruntime")}
    meta.setdefault("runtime", {})["int8"] = record
    _record_check(model_dir, kind, meta, src, check_crops, check_images)
    meta_path.write_text(json.dumps(meta, indent=2))
    return record


def add_bf16(model_dir: Path, data_root: Path | None = None, images: Sequence | None = None,
             n_check: int = 192, seed: int = 0, check_images: Sequence | None = None) -> dict:
    """Check a stage-1 or AKIRA folder's float ONNX file under the ``bf16`` runtime (OpenVINO,
    bfloat16) against ONNX Runtime's float result, and record it in ``metadata.json``
    (``runtime.bf16``). ``images``: the crops (paths) to check on; by default ``n_check`` train-split
    crops of the shared data, among which the folder's check crops are chosen when it has none yet
    and no ``check_images`` are given (as for :func:`add_int8`). Returns the ``runtime.bf16`` record."""
    reason = bf16_support()
    if reason is not None:
        raise InvalidInput(f"the bf16 runtime cannot run here: {reason}")
    model_dir = Path(model_dir)
    kind, meta_path, meta, src = _float_onnx_of(model_dir, "run in bf16")
    if images is None:
        check_crops = train_split_crops(data_root, n_check, seed)
        described = f"{n_check} train-split crops of the shared data (seed {seed})"
    else:
        check_crops, described = list(images), f"{len(images)} given crops"
    record = {"engine": "OpenVINO CPU plugin, bfloat16 inference precision", "onnx": src.name,
              "checked_on": described,
              "agreement_with_float": agreement_with_float(kind, OnnxModel(src), OpenVinoModel(src),
                                                           model_inputs(kind, meta, check_crops)),
              "libraries": library_versions("openvino", "onnxruntime")}
    meta.setdefault("runtime", {})["bf16"] = record
    _record_check(model_dir, kind, meta, src, check_crops, check_images)
    meta_path.write_text(json.dumps(meta, indent=2))
    return record
