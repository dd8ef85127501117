"""Simulated single cells for training and evaluating the stage-1 CNN's dysplasia features.

Cells of a split are made only from real crops of that split (``train`` from ``train`` ...), so
the hygiene rule of :mod:`simulate.partition` holds for cell-level data too. Output:
``<out>/<split>/sim_000001.jpg`` and ``<out>/cells.csv`` with ``path,cell_type,features,split,source_file``
(``path`` relative to ``<out>``). :func:`read_training_set` reads such a folder back with the
stage-1 network's targets, the form in which training and evaluation take simulated cells.
"""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.errors import InvalidInput
from simulate.cells import CropPool, allowed_types, label_vector, make_cell, parse_feature_string
from simulate.transforms import TRANSFORMS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSetConfig:
    """How many simulated cells of each kind one split gets (scaled by ``scale``)."""
    neutrophils: int = 4000        # SNE/BNE, ~80 % with 1-2 dysplastic transforms
    large_platelets: int = 800     # LP, half of them giant
    per_rendered_type: int = 600   # VLY, TAG, MEK, SMU
    jpeg_quality: int = 92


def _plan(split: str, n_scale: float, config: TrainingSetConfig, seed: int) -> list[tuple[str, dict]]:
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2}.get(split, 3)])
    neutrophil_transforms = [t for t in TRANSFORMS.values() if "SNE" in t.cell_types]
    plan: list[tuple[str, dict]] = []
    for _ in range(int(config.neutrophils * n_scale)):
        cell_type = "SNE" if rng.random() < 0.5 else "BNE"
        feats: dict[str, int] = {}
        if rng.random() < 0.8:
            for t in rng.choice(neutrophil_transforms, size=int(rng.integers(1, 3)), replace=False):
                feats[t.feature_id] = int(rng.integers(1, 4))
        plan.append((cell_type, feats))
    for _ in range(int(config.large_platelets * n_scale)):
        plan.append(("LP", {"plt_giant": int(rng.integers(1, 4))} if rng.random() < 0.5 else {}))
    for cell_type in ("VLY", "TAG", "MEK", "SMU"):
        plan += [(cell_type, {}) for _ in range(int(config.per_rendered_type * n_scale))]
    return plan


def _make_chunk(args) -> list[dict]:
    frame, split, items, start, out, seed, quality = args
    pool = CropPool.from_frame(frame, (split,))
    rows = []
    for i, (cell_type, feats) in enumerate(items, start=start):
        rng = np.random.default_rng([seed, i, {"train": 0, "val": 1, "test": 2}.get(split, 3)])
        cell = make_cell(pool, cell_type, feats, rng)
        rel = f"{split}/sim_{i:06d}.jpg"
        Image.fromarray(cell.rgb).save(out / rel, "JPEG", quality=quality)
        rows.append({"path": rel, "cell_type": cell.cell_type, "features": cell.feature_string(), "split": split,
                     "source_file": cell.source_file})
    return rows


def make_training_set(frame: pd.DataFrame, out: Path, seed: int = 0, scales: dict[str, float] | None = None,
                      config: TrainingSetConfig = TrainingSetConfig(), workers: int = 2) -> pd.DataFrame:
    """Write simulated cells for each split in ``scales`` (split -> size factor) and return cells.csv."""
    scales = scales or {"train": 1.0, "val": 0.15, "test": 0.25}
    out = Path(out)
    frame = frame[["path", "file", "cell_types", "split"]]
    jobs = []
    for split, n_scale in scales.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        plan = _plan(split, n_scale, config, seed)
        chunk = 250
        for start in range(0, len(plan), chunk):
            jobs.append((frame, split, plan[start:start + chunk], start, out, seed, config.jpeg_quality))
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for part in ex.map(_make_chunk, jobs):
            rows += part
    cells = pd.DataFrame(rows, columns=["path", "cell_type", "features", "split", "source_file"])
    cells.to_csv(out / "cells.csv", index=False)
    (out / "README.txt").write_text("SIMULATED cells made by mdsdx simulate from real healthy-donor crops; "
                                    "their dysplasia labels are the simulator's, not a morphologist's.\n")
    return cells


def read_training_set(folder: Path, split: str | None = None) -> pd.DataFrame:
    """The cells of a :func:`make_training_set` folder (all splits, or only ``split``) with their
    stage-1 targets, one row per cell:

    - ``path``: the image file (``folder`` joined with cells.csv's relative path);
    - ``split``, ``cell_type`` (the drawn type) and ``features`` (``{feature id: grade 1-3}``);
    - ``allowed_types``: the types the cell may be called (:func:`simulate.cells.allowed_types`);
    - ``feature_target``: (97,) float32 of 1 / 0 / -1 (unknown) (:func:`simulate.cells.label_vector`).
    """
    folder = Path(folder)
    if not (folder / "cells.csv").is_file():
        raise InvalidInput(f"{folder}: no cells.csv; give a folder of simulated cells made by the simulator "
                           "(mdsdx train cells makes one in <out>/simcells)")
    cells = pd.read_csv(folder / "cells.csv", keep_default_na=False)
    if split is not None:
        cells = cells[cells["split"] == split].reset_index(drop=True)
    features = [parse_feature_string(f) for f in cells["features"]]
    return pd.DataFrame({
        "path": [str(folder / p) for p in cells["path"]],
        "split": cells["split"].astype(str).to_numpy(),
        "cell_type": cells["cell_type"].astype(str).to_numpy(),
        "features": features,
        "allowed_types": [allowed_types(t, f) for t, f in zip(cells["cell_type"], features)],
        "feature_target": [label_vector(t, f) for t, f in zip(cells["cell_type"], features)],
    })
