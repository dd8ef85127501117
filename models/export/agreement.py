"""How far a reduced-precision runtime (int8 or bf16) is from the float model, on crops a folder keeps.

A model folder that carries an int8 file or a bf16 record also carries a few *check crops*
(``check/``) and the float model's outputs on them (``check/float_outputs.npy``; the record is
``runtime.check`` in ``metadata.json``). Every time such a runtime is loaded, it runs those crops and
is compared with the stored float outputs; a runtime whose kernels misbehave on this CPU fails the
comparison and is not used (:func:`models.export.artifact.open_checked_runtime`).

The comparison is on a vector that every kernel error reaches, not on the calls: ONNX Runtime's u8s8
int8 kernels saturate on x86 CPUs without VNNI, and on an AVX2-only AMD EPYC a file quantised with
8-bit weights kept the float call on clear crops while its embedding moved by a median 24 % (relative
L2 error; 4 % for 7-bit weights, which cannot saturate). The statistic is the median over the check
crops of that relative error, of the stage-1 embedding or of AKIRA's 34 outputs.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

CHECK_DIR = "check"
REFERENCE_FILE = "float_outputs.npy"
N_CHECK_CROPS = 16
TOLERANCE = 0.12  # largest median relative L2 error of the compared vector a runtime may have on the check crops

MakeInputs = Callable[[Sequence], list]
"""Image paths -> the model's input batches (float32 0-255): for the stage-1 network (n, px, px, 3)
batches of crops, for AKIRA one batch of 16 rotated views per crop."""


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def decision_outputs(kind: str, model: Callable, batches: list[np.ndarray]) -> np.ndarray:
    """The outputs a runtime is judged on: for the stage-1 network the (n, 17) softmax of its type
    logits (uncalibrated); for AKIRA the (n,) DG output, the maximum over each crop's views."""
    if kind == "cellnet":
        return np.concatenate([_softmax(model(x)["cell_type_logits"]) for x in batches])
    from core.akira_labels import load_labels
    dg = load_labels().focus_index
    return np.array([model(x)["output"].max(0)[dg] for x in batches])


def decisions(kind: str, outputs: np.ndarray) -> np.ndarray:
    """The call each output stands for: the top type index (stage 1) or the DG grade 0-3 (AKIRA)."""
    if kind == "cellnet":
        return outputs.argmax(1)
    from models.engine.akira.metrics import grades_from_scores
    return grades_from_scores(outputs)


def agreement(kind: str, reference: np.ndarray, outputs: np.ndarray) -> dict:
    """How ``outputs`` of a runtime compare with the float ``reference`` of the same crops: the share
    with the same call (``same_top_type`` or ``same_dg_grade``), the largest absolute difference and
    the number of crops."""
    same = float((decisions(kind, reference) == decisions(kind, outputs)).mean())
    key = "same_top_type" if kind == "cellnet" else "same_dg_grade"
    return {key: same, "max_abs_difference": float(np.abs(reference - outputs).max()), "crops": int(len(reference))}


def compared_outputs(kind: str, model: Callable, batches: list[np.ndarray]) -> np.ndarray:
    """The vectors a runtime is checked on: the stage-1 (n, d) embedding, or AKIRA's (n, 34) outputs
    (the maximum over each crop's views)."""
    if kind == "cellnet":
        return np.concatenate([model(x)["embedding"] for x in batches]).astype(np.float64)
    return np.array([model(x)["output"].max(0) for x in batches], dtype=np.float64)


def relative_errors(reference: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """(n,) ||outputs - reference|| / ||reference|| per row (L2)."""
    return np.linalg.norm(outputs - reference, axis=1) / np.maximum(np.linalg.norm(reference, axis=1), 1e-12)


def write_check(model_dir: Path, kind: str, float_model: Callable, crops: Sequence[str | Path],
                make_inputs: MakeInputs, seed: int = 0) -> dict:
    """Copy ``N_CHECK_CROPS`` of ``crops`` (image paths; a seeded sample) into ``model_dir/check/``
    with the float model's outputs on them, and return the ``runtime.check`` record."""
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.permutation(len(crops))[:N_CHECK_CROPS].tolist())
    folder = Path(model_dir) / CHECK_DIR
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    names = []
    for rank, i in enumerate(chosen):
        source = Path(crops[i])
        names.append(f"check_{rank:02d}{source.suffix.lower()}")
        shutil.copyfile(source, folder / names[-1])
    reference = compared_outputs(kind, float_model, make_inputs([folder / n for n in names]))
    np.save(folder / REFERENCE_FILE, reference.astype(np.float32))
    compared = "the embedding" if kind == "cellnet" else "the 34 outputs"
    return {"crops": names, "float_outputs": REFERENCE_FILE, "tolerance": TOLERANCE,
            "statistic": f"median over the check crops of the relative L2 error of {compared}"}


@dataclass
class CheckResult:
    """A runtime's comparison with the stored float outputs: ``passed`` when the median relative error
    over the check crops is within the tolerance; ``reason`` says why not; ``cells_per_s`` is how fast
    it ran the check crops (a second, warm pass)."""
    runtime: str
    passed: bool
    reason: str
    median_relative_error: float
    cells_per_s: float

    def as_dict(self) -> dict:
        return {"passed": self.passed, "reason": self.reason,
                "median_relative_error": round(self.median_relative_error, 4), "cells_per_s": round(self.cells_per_s, 1)}


def run_check(kind: str, runtime: str, model: Callable, model_dir: Path, meta: dict, make_inputs: MakeInputs) -> CheckResult:
    """Run the folder's check crops through ``model`` (a loaded ``runtime``) and compare with the stored
    float outputs. A folder without a complete check fails, with the command that makes one."""
    record = (meta.get("runtime") or {}).get("check")
    folder = Path(model_dir) / CHECK_DIR
    if not record:
        return CheckResult(runtime, False, f"{model_dir} has no agreement check for reduced-precision runtimes; "
                           f"make one with `mdsdx train quantize {model_dir}`", float("nan"), 0.0)
    missing = [n for n in [*record["crops"], record["float_outputs"]] if not (folder / n).is_file()]
    if missing:
        return CheckResult(runtime, False, f"{folder} lacks {', '.join(missing)}", float("nan"), 0.0)
    batches = make_inputs([folder / n for n in record["crops"]])
    outputs = compared_outputs(kind, model, batches)
    start = time.perf_counter()
    compared_outputs(kind, model, batches)
    cells_per_s = len(record["crops"]) / max(time.perf_counter() - start, 1e-9)
    reference = np.load(folder / record["float_outputs"]).astype(np.float64)
    error = float(np.median(relative_errors(reference, outputs)))
    passed = error <= float(record["tolerance"])
    reason = "" if passed else (
        f"the {runtime} runtime differs from the float model on this CPU: median relative error "
        f"{error:.3f} on {len(record['crops'])} check crops (tolerance {record['tolerance']})")
    return CheckResult(runtime, passed, reason, error, cells_per_s)
