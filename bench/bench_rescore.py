"""Batch rescoring throughput: `mdsdx diagnose`'s local engine against Ray workers on this machine.

Runs the same smear folders (150 cells of 360-px JPEGs each) through the local engine with 1 and 2
threads and through a local Ray cluster with 1 and 2 one-thread workers, checks that every run gives
the local rows, and prints smears per minute, the 2-worker speed-up over 1 worker (target >= 1.7x on
2 cores) and the per-smear overhead Ray adds over the local engine at the same thread count (target
<= 5 %). Model loading is left out of every figure (a warm-up smear first).

    .venv/bin/python bench/bench_rescore.py [--smears 24]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_line, test_crops  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smears", type=int, default=24)
    args = ap.parse_args()
    import ray

    from diagnose.rescore import PipelineSpec, rescore_local, rescore_ray, start_ray_workers
    blobs = test_crops(150, export_px=360)
    print(f"CPU: {cpu_line()}; {args.smears} smears of 150 cells (360-px JPEGs)")
    with tempfile.TemporaryDirectory() as tmp:
        smears = []
        for s in range(args.smears + 1):
            folder = Path(tmp) / f"SMEAR-{s:03d}"
            folder.mkdir()
            for i in range(150):
                (folder / f"cell_{i:03d}.jpg").write_bytes(blobs[(7 * s + i) % len(blobs)])
            smears.append(folder)
        warm, timed = smears[:1], smears[1:]
        rates, reference = {}, None
        for label, threads in (("local, 2 threads", 2), ("local, 1 thread", 1)):
            spec = PipelineSpec(threads=threads)
            rescore_local(warm, spec)
            t = time.perf_counter()
            rows = [r.row for r in rescore_local(timed, spec)]
            rates[label] = len(timed) / (time.perf_counter() - t) * 60
            reference = reference or rows
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            for workers in (1, 2):
                label = f"ray, {workers} worker(s) x 1 thread"
                spec = PipelineSpec(threads=1)
                actors = start_ray_workers(spec, workers)
                rescore_ray(warm * workers, spec, workers, actors=actors)  # the actors load their models
                t = time.perf_counter()
                rows = [r.row for r in rescore_ray(timed, spec, workers, actors=actors)]
                rates[label] = len(timed) / (time.perf_counter() - t) * 60
                print(f"{label}: rows identical to the local engine: {rows == reference}")
        finally:
            ray.shutdown()
    for label, rate in rates.items():
        print(f"{label:32s} {rate:6.1f} smears/min ({60 / rate:.2f} s per smear)")
    one, two = rates["ray, 1 worker(s) x 1 thread"], rates["ray, 2 worker(s) x 1 thread"]
    print(f"2 Ray workers / 1: {two / one:.2f}x (target >= 1.7x)")
    overhead = rates["local, 1 thread"] / one - 1
    print(f"Ray's per-smear overhead over the local engine at 1 thread: {100 * overhead:+.1f} % (target <= 5 %)")
    print(f"estimate for a cluster of 10 such 2-core nodes at 2 workers each: {10 * two:.0f} smears/min")


if __name__ == "__main__":
    main()
