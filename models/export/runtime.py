"""ONNX export of a trained Keras model and its inference with ONNX Runtime or OpenVINO.

Training and evaluation use Keras; serving and the CLI run the same weights through ONNX Runtime,
which on 2 CPU cores measured about 1.5-2x faster than Keras for the stage-1 network and imports
in 0.4 s instead of TensorFlow's 3 s. ``export_onnx`` writes the ``.onnx`` file beside the
``.keras`` one when a model is saved; the outputs agree with Keras to about 1e-5 (tested).

The ``bf16`` runtime runs the same float ONNX file through OpenVINO's CPU plugin with bfloat16
inference precision. It needs a CPU with bfloat16 instructions (AVX512_BF16 or AMX), where it
measured about 1.6x ONNX Runtime's float speed for the stage-1 network (2026-12-06).
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from core.errors import ModelLoadError

log = logging.getLogger(__name__)
OPSET = 17
RUNTIMES = ("auto", "onnx", "bf16", "int8", "keras")


def runtime_choice(requested: str | None = None) -> str:
    """``auto`` (ONNX Runtime when the model folder has an ``.onnx`` file), ``onnx``, ``bf16`` (the
    float ONNX file through OpenVINO in bfloat16), ``int8`` (the folder's int8-quantised ONNX file,
    :mod:`models.export.quantize`) or ``keras``; the ``MDSDX_RUNTIME`` environment variable sets the default."""
    choice = (requested or os.environ.get("MDSDX_RUNTIME") or "auto").lower()
    if choice not in RUNTIMES:
        raise ValueError(f"runtime {choice!r}: expected one of {', '.join(RUNTIMES)}")
    return choice


@functools.lru_cache(maxsize=1)
def _openvino_core():
    """One OpenVINO ``Core`` per process (making one takes tens of milliseconds)."""
    import openvino
    return openvino.Core()


@functools.lru_cache(maxsize=1)
def bf16_support() -> str | None:
    """None when this machine can run the ``bf16`` runtime, otherwise the reason it cannot."""
    try:
        core = _openvino_core()
    except ImportError:
        return "OpenVINO is not installed"
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return None if "BF16" in capabilities else "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX)"


SPEED_ORDER = ("int8", "bf16", "onnx")
"""Reduced-precision runtimes first, fastest first, then the float file. int8 ran the stage-1 network
about 2x faster than float on an AVX2-only AMD EPYC and 1.3x faster than bf16 on an AVX-512 one
(docs/benchmarks.md); bf16 runs only on CPUs with bfloat16 instructions."""


def runtime_candidates(model_dir: Path, onnx_path: Path | None, requested: str | None = None,
                       int8_path: Path | None = None, bf16_recorded: bool = False) -> list[str]:
    """The runtimes to try, in order, for a model folder whose checked ONNX files are ``onnx_path`` and
    ``int8_path`` (None when absent); ``bf16_recorded``: its metadata records a bf16 check.

    ``auto`` gives every runtime the folder and this CPU can run, in :data:`SPEED_ORDER`, ending with
    the float ONNX file (or Keras when there is none); the loader keeps the first that passes its
    agreement check (:func:`models.export.artifact.open_checked_runtime`). A runtime asked for by name is the
    only candidate, and asking for one that cannot run here is a :class:`ModelLoadError`."""
    choice = runtime_choice(requested)
    if choice == "auto":
        available = {"int8": int8_path is not None, "onnx": onnx_path is not None,
                     "bf16": onnx_path is not None and bf16_recorded and bf16_support() is None}
        found = [name for name in SPEED_ORDER if available[name]]
        return found if "onnx" in found else found + ["keras"]
    if choice == "bf16":
        reason = bf16_support() if onnx_path is not None else (
            f"no ONNX file recorded in metadata.json; export one with `mdsdx train onnx {model_dir}`")
        if reason is not None:
            raise ModelLoadError(f"{model_dir}: the bf16 runtime cannot run: {reason}; use MDSDX_RUNTIME=onnx")
    if choice == "int8" and int8_path is None:
        raise ModelLoadError(f"{model_dir}: no int8 ONNX file recorded in metadata.json; "
                             f"make one with `mdsdx train quantize {model_dir}`")
    if choice == "onnx" and onnx_path is None:
        raise ModelLoadError(f"{model_dir}: no ONNX file recorded in metadata.json; "
                             f"export one with `mdsdx train onnx {model_dir}`")
    return [choice]


def export_onnx(model, path: Path, input_px: int, outputs: Sequence[str] | None = None) -> Path:
    """Convert ``model`` (input (batch, input_px, input_px, 3) float32, values 0-255) to ONNX.

    ``outputs`` names the entries of a dict-output model to keep; a model with a single tensor
    output gets the output name ``output``.
    """
    import tensorflow as tf
    import tf2onnx
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    spec = (tf.TensorSpec((None, input_px, input_px, 3), tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def forward(x):
        out = model(x, training=False)
        if isinstance(out, dict):
            return {k: out[k] for k in (outputs or out)}
        return {"output": out}

    path = Path(path)
    tmp = path.with_suffix(".onnx.partial")
    tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET, output_path=str(tmp))
    os.replace(tmp, path)
    return path


class OnnxModel:
    """An ONNX Runtime session: ``model(x)`` with x (n, px, px, 3) float32 0-255 returns a dict of
    output name -> (n, ...) float32 arrays."""

    def __init__(self, path: Path, threads: int = 2, label: str = "onnx"):
        import onnxruntime as ort
        self.label = label  # the runtime's name in reports: "onnx" or "int8"
        self.runtime_checks: dict = {}  # runtime -> its agreement check at load (models.export.artifact.open_checked_runtime)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Idle worker threads sleep instead of spinning: the decoding threads that run beside the network
        # get the cores back (stage-1 end to end 216.9 against 204.5 cells/s, int8, 2-core AVX2 AMD EPYC).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise ModelLoadError(f"{path}: cannot be read by ONNX Runtime ({exc})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})
        return dict(zip(self.output_names, values))


class OpenVinoModel:
    """The float ONNX file compiled by OpenVINO's CPU plugin with bfloat16 inference precision; called
    like :class:`OnnxModel`. Each calling thread gets its own infer request (a request is not
    thread-safe), and the outputs are copies (``share_outputs=False``), never views of the request's buffers."""

    def __init__(self, path: Path, threads: int = 2, label: str = "bf16"):
        self.label = label
        self.runtime_checks: dict = {}  # runtime -> its agreement check at load (models.export.artifact.open_checked_runtime)
        try:
            core = _openvino_core()
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", {
                "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16"})
        except Exception as exc:  # OpenVINO raises RuntimeError for a bad file
            raise ModelLoadError(f"{path}: cannot be compiled by OpenVINO ({exc})") from exc
        self.input_name = self.compiled.inputs[0].get_any_name()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._local = threading.local()

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        values = request.infer({0: np.ascontiguousarray(x, np.float32)}, share_outputs=False)
        return {name: values[i] for i, name in enumerate(self.output_names)}


def open_runtime(runtime: str, path: Path, threads: int = 2) -> OnnxModel | OpenVinoModel:
    """The loaded model file for ``runtime`` (``onnx``, ``int8`` or ``bf16``), called as ``model(x)``."""
    if runtime == "bf16":
        return OpenVinoModel(path, threads)
    return OnnxModel(path, threads, label=runtime)
