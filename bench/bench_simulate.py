"""Cohort simulation speed. Target: 200 smears of 150 cells in <= 2 minutes on 2 cores.

    .venv/bin/python bench/bench_simulate.py [--smears 200] [--cells 150] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smears", type=int, default=200)
    ap.add_argument("--cells", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from core.datasets import default_data_root
    from simulate.cohort import CohortConfig, simulate_cohort
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        simulate_cohort(Path(tmp) / "cohort", CohortConfig(n_smears=args.smears, seed=1, cells_per_smear=args.cells,
                                                           workers=args.workers), default_data_root())
        elapsed = time.perf_counter() - t
    n = args.smears * args.cells
    print(f"{args.smears} smears x {args.cells} cells = {n} cells in {elapsed:.1f} s "
          f"({n / elapsed:.0f} cells/s, {args.workers} workers); target <= 120 s")


if __name__ == "__main__":
    main()
