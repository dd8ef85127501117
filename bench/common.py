"""Helpers shared by the benchmarks: timing and the test images they run on."""
from __future__ import annotations

import io
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image


def cpu_line() -> str:
    """This machine's CPU model and the vector features that decide which runtime can run."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    features = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}; {', '.join(features) or 'no AVX2'}"


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Peak float32 matrix-multiply rate of this machine (GFLOP/s), numpy's BLAS on its default threads:
    the best of ``repeats`` n x n products."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def network_gflop(onnx_path: Path) -> float:
    """Floating-point operations (GFLOP, a multiply-add counted as 2) of one input through an ONNX
    network's convolutions and matrix products, from its inferred shapes at batch 1."""
    import onnx
    from onnx import shape_inference
    model = onnx.load(str(onnx_path))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    flop = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight, out = shapes[node.input[1]], shapes[node.output[0]]
            flop += 2 * int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            flop += 2 * int(np.prod(out)) * a[-1]
    return flop / 1e9


@contextmanager
def timed(label: str, results: dict):
    start = time.perf_counter()
    yield
    results[label] = time.perf_counter() - start


def test_crops(n: int, export_px: int | None = None) -> list[bytes]:
    """``n`` JPEG crops from the real test split (upscaled to ``export_px`` like a DI-60 export),
    or generated cells where ../shared/data is absent."""
    from core.datasets import default_data_root, load_pbc
    from core.preprocess import as_export
    root = default_data_root()
    out = []
    if (root / "pbc").is_dir():
        frame = load_pbc(root)
        paths = frame.loc[frame.split == "test", "path"].tolist()
        for i in range(n):
            data = Path(paths[i % len(paths)]).read_bytes()
            out.append(as_export(data, export_px) if export_px else data)
        return out
    rng = np.random.default_rng(0)
    for _ in range(n):
        arr = rng.integers(150, 255, (export_px or 256, export_px or 256, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out
