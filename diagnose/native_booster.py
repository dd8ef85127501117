"""A saved XGBoost booster evaluated through XGBoost's C API, without importing the Python package.

``import xgboost`` imports scikit-learn and with it ``scipy.stats`` when they are installed (they
are: training needs them), which measured 1.0-1.3 s on this 2-core machine: two thirds of the time
of a whole ``mdsdx diagnose`` of one smear. Inference needs none of that, so the diagnoser loads
its ``diagnoser.ubj`` here, into the same native library (``xgboost/lib/libxgboost.so``) through its
public, stable C API (``c_api.h``, the interface the R and JVM bindings use), and asks it for margins
and TreeSHAP contributions. Outputs equal those of ``xgboost.Booster.predict`` (tested).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import ModelLoadError

_ULONG = ctypes.c_uint64
PREDICT_MARGIN, PREDICT_CONTRIBUTIONS = 1, 2  # the C API's prediction types


class NativeBoosterError(RuntimeError):
    """XGBoost's C API returned an error; the message is XGBoost's own."""


@lru_cache(maxsize=1)
def native_library() -> ctypes.CDLL:
    """The ``libxgboost`` shipped inside the installed xgboost package (found without importing it)."""
    spec = importlib.util.find_spec("xgboost")
    candidates = []
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent
        candidates += [package / "lib" / name for name in ("libxgboost.so", "libxgboost.dylib", "xgboost.dll")]
    found = ctypes.util.find_library("xgboost")
    candidates += [Path(found)] if found else []
    for path in candidates:
        if path.is_file():
            lib = ctypes.cdll.LoadLibrary(str(path))
            lib.XGBGetLastError.restype = ctypes.c_char_p
            return lib
    raise ModelLoadError("the XGBoost native library was not found; install the project (`pip install -e .`)")


def _check(ret: int) -> None:
    if ret != 0:
        raise NativeBoosterError(native_library().XGBGetLastError().decode("utf-8", "replace"))


class NativeBooster:
    """One booster loaded from an XGBoost model file (``.ubj`` or ``.json``).

    ``margin(X)`` gives (n,) raw margins; ``contributions(X)`` gives (n, n_features + 1) TreeSHAP
    values on the margin, the last column the bias. ``X`` is (n, n_features) float, NaN = missing.
    """

    def __init__(self, model_file: Path | str, n_features: int, nthread: int = 1):
        self._lib = native_library()
        self.n_features = int(n_features)
        self._handle = ctypes.c_void_p()
        _check(self._lib.XGBoosterCreate(None, _ULONG(0), ctypes.byref(self._handle)))
        try:
            _check(self._lib.XGBoosterLoadModel(self._handle, str(model_file).encode()))
            _check(self._lib.XGBoosterSetParam(self._handle, b"nthread", str(int(nthread)).encode()))
            n = _ULONG()
            _check(self._lib.XGBoosterGetNumFeature(self._handle, ctypes.byref(n)))
        except NativeBoosterError as exc:
            self.close()
            raise ModelLoadError(f"{model_file}: xgboost cannot read it ({exc})") from exc
        if n.value != self.n_features:
            self.close()
            raise ModelLoadError(f"{model_file}: the booster has {n.value} inputs, expected {self.n_features}")
        self._nthread = int(nthread)

    def close(self) -> None:
        if self._handle:
            self._lib.XGBoosterFree(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _predict(self, X: np.ndarray, kind: int) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected an (n, {self.n_features}) matrix, got shape {X.shape}")
        interface = json.dumps({"data": [X.ctypes.data, True], "shape": list(X.shape), "typestr": "<f4",
                                "version": 3}).encode()
        matrix = ctypes.c_void_p()
        _check(self._lib.XGDMatrixCreateFromDense(interface, json.dumps(
            {"missing": float("nan"), "nthread": self._nthread}).encode(), ctypes.byref(matrix)))
        try:
            shape, dims, out = ctypes.POINTER(_ULONG)(), _ULONG(), ctypes.POINTER(ctypes.c_float)()
            config = {"type": kind, "training": False, "iteration_begin": 0, "iteration_end": 0,
                      "strict_shape": False}
            _check(self._lib.XGBoosterPredictFromDMatrix(self._handle, matrix, json.dumps(config).encode(),
                                                         ctypes.byref(shape), ctypes.byref(dims),
                                                         ctypes.byref(out)))
            dims_shape = tuple(int(shape[i]) for i in range(dims.value))
            # the buffer belongs to the booster and is reused by its next call: copy it
            return np.ctypeslib.as_array(out, shape=(int(np.prod(dims_shape)),)).reshape(dims_shape).copy()
        finally:
            self._lib.XGDMatrixFree(matrix)

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self._predict(X, PREDICT_MARGIN).reshape(len(X))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return self._predict(X, PREDICT_CONTRIBUTIONS).reshape(len(X), self.n_features + 1)
