"""Stage-1 throughput: `mdsdx cells classify`'s path (JPEG decode + resize + network), and where the
time goes, for the runtime the model folder chooses here and, in the same run, for the float ONNX
file. Target: >= 200 cells/s end to end on 2 cores, on 360-px crops (analyser exports).

Also printed: the network's achieved GFLOP/s as a share of this machine's sgemm peak, measured in
the same run (aim: >= 50 %).

    .venv/bin/python bench/bench_classify.py [--cells 2000] [--model DIR] [--export-px 360] [--runtime RUNTIME]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_line, network_gflop, sgemm_gflops, test_crops  # noqa: E402


def measure(predictor, paths: list[str]) -> dict:
    """Cells/s of decoding alone, the network alone and the pipelined whole, on ``paths``."""
    predictor.predict_files(paths[:128])  # warm-up
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
    return {"decode": n / decode_s, "network": n / network_s, "end_to_end": n / total_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--export-px", type=int, default=360, help="re-encode crops as analyser exports this wide (360: DI-60)")
    ap.add_argument("--runtime", default=None, help="auto (default), onnx, bf16, int8 or keras")
    args = ap.parse_args()
    from models.engine.infer import CellPredictor
    from models.export.artifact import ONNX_FILE
    chosen = CellPredictor(args.model, runtime=args.runtime)
    predictors = [chosen] + ([CellPredictor(args.model, runtime="onnx")] if chosen.runtime != "onnx" else [])
    peak = sgemm_gflops()
    gflop = network_gflop(chosen.model_dir / ONNX_FILE)
    blobs = test_crops(args.cells, args.export_px)
    print(f"CPU: {cpu_line()}; sgemm peak {peak:.0f} GFLOP/s; network {gflop:.3f} GFLOP per cell")
    print(f"model {chosen.version}, input {chosen.input_px} px, {len(blobs)} cells of {args.export_px or 256} px; "
          f"auto chose {chosen.runtime} ({chosen.runtime_checks or 'no reduced-precision runtime tried'})")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, b in enumerate(blobs):
            p = Path(tmp) / f"c{i:05d}.jpg"
            p.write_bytes(b)
            paths.append(str(p))
        results = {p.runtime: measure(p, paths) for p in predictors}
    print("| runtime | decode + resize | network | network GFLOP/s (share of sgemm peak) | end to end (target >= 200) |")
    print("|---|---|---|---|---|")
    for runtime, r in results.items():
        achieved = r["network"] * gflop
        print(f"| {runtime} | {r['decode']:.1f} cells/s | {r['network']:.1f} cells/s | {achieved:.0f} ({100 * achieved / peak:.0f} %) "
              f"| {r['end_to_end']:.1f} cells/s |")
    if chosen.runtime != "onnx":
        ratio = results[chosen.runtime]["end_to_end"] / results["onnx"]["end_to_end"]
        print(f"{chosen.runtime} / float ONNX end to end: {ratio:.2f}x")


if __name__ == "__main__":
    main()
