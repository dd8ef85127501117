"""Stage-1 throughput: `mdsdx cells classify`'s path (JPEG decode + resize + network), and where the
time goes. Target: >= 200 cells/s on 2 cores with decode included.

    .venv/bin/python bench/bench_classify.py [--cells 2000] [--model DIR] [--export-px 360] [--runtime onnx|bf16|int8|keras]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import test_crops  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--export-px", type=int, default=None, help="upscale crops to this size (360 = DI-60 export)")
    ap.add_argument("--runtime", default=None, help="auto (default), onnx, bf16, int8 or keras")
    args = ap.parse_args()
    from models.engine.infer import CellPredictor
    predictor = CellPredictor(args.model, runtime=args.runtime)
    blobs = test_crops(args.cells, args.export_px)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, b in enumerate(blobs):
            p = Path(tmp) / f"c{i:05d}.jpg"
            p.write_bytes(b)
            paths.append(str(p))
        predictor.predict_files(paths[:128])  # warm-up: tracing
        t = time.perf_counter()
        images, _ = predictor.decode(paths)
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        predictor.predict_arrays(images)
        network_s = time.perf_counter() - t
        t = time.perf_counter()
        predictor.predict_files(paths)
        total_s = time.perf_counter() - t
    n = len(paths)
    print(f"model {predictor.version} ({predictor.runtime} runtime), input {predictor.input_px} px, "
          f"{n} cells of {args.export_px or 256} px")
    print(f"decode + resize only : {n / decode_s:8.1f} cells/s ({1000 * decode_s / n:.2f} ms/cell, 2 threads)")
    print(f"network only         : {n / network_s:8.1f} cells/s ({1000 * network_s / n:.2f} ms/cell)")
    print(f"pipelined end to end : {n / total_s:8.1f} cells/s  (target >= 200)")


if __name__ == "__main__":
    main()
