"""AKIRA speed with all 16 rotations on 2 cores: the default compact config (target >= 20 cells/s)
beside the paper-faithful ResNet-152 at 224 px (random weights: only its speed is measured here).

    .venv/bin/python bench/bench_granules.py [--cells 40] [--paper-cells 4] [--model DIR] [--runtime int8]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import test_crops  # noqa: E402


def rate(scorer, blobs) -> float:
    scorer.score_files(blobs[:2])
    t = time.perf_counter()
    scorer.score_files(blobs)
    return len(blobs) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--paper-cells", type=int, default=4)
    ap.add_argument("--model", default=None)
    ap.add_argument("--runtime", default=None, help="auto (default), onnx, bf16, int8 or keras")
    args = ap.parse_args()
    from models.architecture.akira import AkiraConfig, build_akira
    from models.engine.akira.infer import GranuleScorer
    blobs = test_crops(max(args.cells, args.paper_cells))
    try:
        if args.runtime:
            os.environ["MDSDX_RUNTIME"] = args.runtime
        compact = GranuleScorer(args.model)
        print(f"compact ({compact.version}, {compact.input_px} px, {compact.runtime} runtime): "
              f"{rate(compact, blobs[:args.cells]):.1f} cells/s with 16 rotations (target >= 20)")
    except Exception as exc:  # no shipped model yet: measure the untrained default architecture
        from models.engine.akira.train import AkiraTrainConfig
        cfg = AkiraTrainConfig(init_from_cellnet=None)
        scorer = GranuleScorer(model=build_akira(cfg.net()), input_px=cfg.input_px)
        print(f"compact (untrained default architecture, {cfg.input_px} px; {exc}): "
              f"{rate(scorer, blobs[:args.cells]):.1f} cells/s with 16 rotations")
    paper = GranuleScorer(model=build_akira(AkiraConfig.paper()), input_px=224)
    print(f"paper ResNet-152 (224 px, random init, keras runtime): {rate(paper, blobs[:args.paper_cells]):.2f} cells/s "
          "with 16 rotations")


if __name__ == "__main__":
    main()
