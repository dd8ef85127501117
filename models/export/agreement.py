"""How far a reduced-precision runtime (int8 or bf16) is from the float model, on crops a folder keeps.

A model folder that carries an int8 file or a bf16 record also carries a few *check crops* (``check/``)
and the float model's outputs on them (``metadata.json``, ``runtime.check``). Every time such a
runtime is loaded, it runs those crops and is compared with the stored float outputs; a runtime whose
kernels misbehave on this CPU (ONNX Runtime's u8s8 int8 kernels saturate on x86 CPUs without VNNI,
for example) fails the comparison and is not used (:func:`models.export.artifact.open_checked_runtime`).

The check crops are those the float model calls most clearly (:func:`margins`), so that a correct
runtime keeps every call and the tolerance on the outputs catches one that computes something else.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

CHECK_DIR = "check"
N_CHECK_CROPS = 16
CELLNET_TOLERANCE = 0.25  # largest change of a softmax type probability (0-1) a runtime may make on a check crop
AKIRA_TOLERANCE = 0.3     # largest change of the DG output (0-3) a runtime may make on a check crop

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


def margins(kind: str, outputs: np.ndarray) -> np.ndarray:
    """How far each output is from changing its call: the gap between the two most likely types
    (stage 1), or twice the DG output's distance to the nearest grade boundary (AKIRA); a runtime that
    moves no output by more than half the margin keeps the call."""
    if kind == "cellnet":
        top2 = np.sort(outputs, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]
    return 2 * (0.5 - np.abs(outputs - np.rint(outputs)))  # grades are the rounded output


def choose_check_crops(kind: str, float_outputs: np.ndarray, n: int = N_CHECK_CROPS) -> np.ndarray:
    """Indices of the ``n`` crops the float model calls most clearly (the largest :func:`margins`)."""
    return np.argsort(-margins(kind, float_outputs), kind="stable")[:n]


def write_check(model_dir: Path, kind: str, float_model: Callable, crops: Sequence[str | Path],
                make_inputs: MakeInputs) -> dict:
    """Copy the clearest ``N_CHECK_CROPS`` of ``crops`` (image paths) into ``model_dir/check/`` and
    return the ``runtime.check`` record: their file names and the float model's outputs on them."""
    outputs = decision_outputs(kind, float_model, make_inputs(crops))
    chosen = choose_check_crops(kind, outputs)
    folder = Path(model_dir) / CHECK_DIR
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    names = []
    for rank, i in enumerate(chosen):
        source = Path(crops[i])
        name = f"check_{rank:02d}{source.suffix.lower()}"
        shutil.copyfile(source, folder / name)
        names.append(name)
    tolerance = CELLNET_TOLERANCE if kind == "cellnet" else AKIRA_TOLERANCE
    return {"crops": names, "float_outputs": np.round(outputs[chosen], 6).tolist(), "tolerance": tolerance}


@dataclass
class CheckResult:
    """A runtime's comparison with the stored float outputs: ``passed`` when no output moved more than
    the tolerance and every crop whose float margin exceeds twice the tolerance kept its call (for a
    shipped model's clearly called check crops, every crop); ``reason`` says why not; ``cells_per_s``
    is how fast it ran the check crops (a second, warm pass)."""
    runtime: str
    passed: bool
    reason: str
    same_calls: float
    max_abs_difference: float
    cells_per_s: float

    def as_dict(self) -> dict:
        return {"passed": self.passed, "reason": self.reason, "same_calls": round(self.same_calls, 4),
                "max_abs_difference": round(self.max_abs_difference, 4), "cells_per_s": round(self.cells_per_s, 1)}


def run_check(kind: str, runtime: str, model: Callable, model_dir: Path, meta: dict, make_inputs: MakeInputs) -> CheckResult:
    """Run the folder's check crops through ``model`` (a loaded ``runtime``) and compare with the stored
    float outputs. A folder without a check record fails, with the command that makes one."""
    record = (meta.get("runtime") or {}).get("check")
    if not record:
        return CheckResult(runtime, False, f"{model_dir} has no agreement check for reduced-precision runtimes; "
                           f"make one with `mdsdx train quantize {model_dir}`", 0.0, float("nan"), 0.0)
    paths = [Path(model_dir) / CHECK_DIR / name for name in record["crops"]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        return CheckResult(runtime, False, f"{model_dir / CHECK_DIR} lacks {', '.join(missing)}", 0.0, float("nan"), 0.0)
    batches = make_inputs(paths)
    outputs = decision_outputs(kind, model, batches)
    start = time.perf_counter()
    decision_outputs(kind, model, batches)
    cells_per_s = len(paths) / max(time.perf_counter() - start, 1e-9)
    reference = np.asarray(record["float_outputs"], dtype=np.float64)
    found = agreement(kind, reference, outputs)
    same = found["same_top_type" if kind == "cellnet" else "same_dg_grade"]
    worst, tolerance = found["max_abs_difference"], float(record["tolerance"])
    clear = margins(kind, reference) > 2 * tolerance
    kept_clear_calls = bool((decisions(kind, reference) == decisions(kind, outputs))[clear].all())
    passed = worst <= tolerance and kept_clear_calls
    reason = "" if passed else (
        f"the {runtime} runtime differs from the float model on this CPU: {100 * same:.0f} % of "
        f"{len(paths)} check crops keep their call, largest output change {worst:.3f} (tolerance {tolerance})")
    return CheckResult(runtime, passed, reason, same, worst, cells_per_s)
