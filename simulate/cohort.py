"""Simulated MDS / AA smear cohorts in the layout a laboratory export gives.

``<out>/<smear_id>/cell_0001.jpg`` ..., ``<out>/cohort.csv`` (``smear_id,diagnosis,n_cells,seed``)
and ``<out>/cells.csv`` (``path,cell_type,features``: the per-cell ground truth, ``features`` as
``id:grade`` pairs joined by ``;``), with ``provenance.csv`` (``path,source_file``: the real crop
each cell was made from) and ``smear_parameters.csv`` (each smear's drawn rates). Deterministic for a seed. The cohort is written to a temporary
folder beside ``out`` and moved into place only when complete.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from core.datasets import load_marrow, load_pbc
from core.errors import DataNotFound, InvalidInput
from core.taxonomy import load_taxonomy
from simulate.cells import CropPool, make_cell
from simulate.filters import blur_rgb
from simulate.partition import splits_for
from simulate.transforms import TRANSFORMS

log = logging.getLogger(__name__)
DIAGNOSES = ("MDS", "AA")
DIFFICULTIES = ("easy", "standard", "hard")


@dataclass(frozen=True)
class CohortConfig:
    """One cohort: how many smears, which crops, how hard."""
    n_smears: int
    seed: int = 0
    cells_per_smear: int | None = None   # fixed N; None draws from the config's range
    difficulty: str = "standard"
    partition: str = "test-cohort"       # see simulate.partition
    mds_fraction: float = 0.5
    include_normal: bool = False          # add healthy smears (diagnosis "normal")
    export_px: int | None = None          # resize crops (e.g. 360, the DI-60 size); None keeps the source size
    jpeg_quality: int = 90
    workers: int = 2


@dataclass(frozen=True)
class SmearPlan:
    smear_id: str
    diagnosis: str
    profile: str                  # the disease entry drawn from (MDS, mild_mds, AA, normal)
    seed: list
    n_cells: int
    type_probs: dict
    feature_rates: dict
    stain_gain: tuple
    stain_offset: tuple
    focus_sigma_px: float


def load_disease_config(path: Path | str | None = None) -> dict:
    """The disease distributions: ``diseases.yaml`` shipped here, or a user's file of the same form."""
    text = Path(path).read_text() if path else resources.files("simulate").joinpath("diseases.yaml").read_text()
    config = yaml.safe_load(text)
    tax = load_taxonomy()
    sim_features = {t.feature_id for t in TRANSFORMS.values()}
    for name, d in config.get("diseases", {}).items():
        bad = set(d["type_mix"]) - set(tax.type_abbrs)
        if bad:
            raise InvalidInput(f"disease config: {name} names unknown cell types {sorted(bad)}")
        bad = set(d["feature_rates"]) - sim_features
        if bad:
            raise InvalidInput(f"disease config: {name} names features the simulator cannot make {sorted(bad)}")
    for key in ("MDS", "AA"):
        if key not in config.get("diseases", {}):
            raise InvalidInput(f"disease config: needs a `{key}` entry under `diseases`")
    return config


def plan_cohort(config: CohortConfig, diseases: dict, available_types: set[str]) -> list[SmearPlan]:
    """Draw every smear's diagnosis, cell mix, feature rates and stain from the seed."""
    if config.difficulty not in diseases["difficulty"]:
        raise InvalidInput(f"unknown difficulty {config.difficulty!r}; choose one of {sorted(diseases['difficulty'])}")
    level = diseases["difficulty"][config.difficulty]
    master = np.random.default_rng([config.seed, 0])
    labels = ["MDS"] * int(round(config.n_smears * config.mds_fraction))
    labels += ["AA"] * (config.n_smears - len(labels))
    if config.include_normal:
        labels = [lab if i % 5 else "normal" for i, lab in enumerate(labels)]
    labels = [labels[i] for i in master.permutation(len(labels))]
    lo, hi = diseases["cells_per_smear"]
    abbrs = load_taxonomy().type_abbrs
    plans = []
    for i, diagnosis in enumerate(labels):
        rng = np.random.default_rng([config.seed, 1, i])
        profile = diagnosis
        if diagnosis == "MDS" and rng.random() < level["mild_fraction"]:
            profile = "mild_mds"
        d = diseases["diseases"][profile]
        mean = np.array([d["type_mix"].get(a, 0.0) if a in available_types else 0.0 for a in abbrs]) + 1e-6
        mean = mean / mean.sum()
        mix = rng.dirichlet(mean * d["type_concentration"])
        k = level["rate_concentration"]
        rates = {f: float(rng.beta(max(m * k, 1e-3), max((1 - m) * k, 1e-3))) for f, m in d["feature_rates"].items()}
        n = config.cells_per_smear or int(rng.integers(lo, hi + 1))
        plans.append(SmearPlan(
            smear_id=f"smear_{i + 1:04d}", diagnosis=diagnosis, profile=profile, seed=[config.seed, 2, i], n_cells=n,
            type_probs=dict(zip(abbrs, mix.tolist())), feature_rates=rates,
            stain_gain=tuple(rng.normal(1.0, level["stain_sd"], 3).tolist()),
            stain_offset=tuple(rng.normal(0.0, 60 * level["stain_sd"], 3).tolist()),
            focus_sigma_px=float(rng.uniform(*level["focus_sigma_px"]))))
    return plans


_worker_pool: CropPool | None = None  # one per worker process, so its decode-and-segment cache lasts


def _init_worker(pool: CropPool) -> None:
    global _worker_pool
    _worker_pool = pool


def _render_smear(args) -> list[dict]:
    plan, out, grade_weights, export_px, quality = args
    pool = _worker_pool
    rng = np.random.default_rng(plan.seed)
    abbrs = list(plan.type_probs)
    probs = np.array([plan.type_probs[a] for a in abbrs])
    types = rng.choice(abbrs, size=plan.n_cells, p=probs / probs.sum())
    by_type = {t.feature_id: t.cell_types for t in TRANSFORMS.values()}
    gain, offset = np.array(plan.stain_gain, np.float32), np.array(plan.stain_offset, np.float32)
    # the stain drift as a per-channel lookup table (same float32 arithmetic and truncation as
    # clip(rgb * gain + offset).astype(uint8), applied in C by Pillow)
    stain_lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * gain + offset, 0, 255).astype(np.uint8).T.ravel().tolist()
    (out / plan.smear_id).mkdir(parents=True, exist_ok=True)
    rows = []
    for j, cell_type in enumerate(types, start=1):
        feats = {f: int(rng.choice([1, 2, 3], p=grade_weights)) for f, rate in plan.feature_rates.items()
                 if cell_type in by_type[f] and rng.random() < rate}
        cell = make_cell(pool, str(cell_type), feats, rng)
        rgb = cell.rgb
        if plan.focus_sigma_px > 0.05:
            rgb = blur_rgb(rgb, plan.focus_sigma_px * rgb.shape[1] / 256)
        img = Image.fromarray(rgb).point(stain_lut)
        if export_px and img.width != export_px:
            img = img.resize((export_px, export_px), Image.Resampling.BICUBIC)
        rel = f"{plan.smear_id}/cell_{j:04d}.jpg"
        img.save(out / rel, "JPEG", quality=quality)
        rows.append({"path": rel, "cell_type": cell.cell_type, "features": cell.feature_string(),
                     "source_file": cell.source_file})
    return rows


def source_frame(source: Path) -> pd.DataFrame:
    """The real crops under ``source`` (a data root with ``pbc/`` and / or ``marrow/``) as one
    :func:`core.datasets.load_pbc` / :func:`core.datasets.load_marrow` frame; DataNotFound when it has neither."""
    frames = []
    for sub, loader in (("pbc", load_pbc), ("marrow", load_marrow)):
        if (source / sub).is_dir():
            frames.append(loader(source))
    if not frames:
        raise DataNotFound(f"{source}: expected crops in pbc/<class>/ or marrow/<class>/ (see ../shared/data/README.md)")
    return pd.concat(frames, ignore_index=True)


def simulate_cohort(out: Path, config: CohortConfig, source: Path, disease_config: Path | None = None) -> pd.DataFrame:
    """Write a cohort to ``out`` (which must not hold a cohort already) and return cohort.csv's frame."""
    out = Path(out)
    if config.n_smears < 1:
        raise InvalidInput("--smears must be at least 1")
    if config.cells_per_smear is not None and not 1 <= config.cells_per_smear <= 5000:
        raise InvalidInput("--cells must be between 1 and 5000")
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out}: folder exists and is not empty; choose a new --out so nothing is overwritten")
    diseases = load_disease_config(disease_config)
    frame = source_frame(Path(source))
    pool = CropPool.from_frame(frame, splits_for(config.partition), prefer_source="pbc")
    available = pool.available_types()
    if not {"SNE", "LY"} <= available:
        raise DataNotFound(f"{source}: the {config.partition} crops lack neutrophils or lymphocytes; cannot build smears")
    plans = plan_cohort(config, diseases, available)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        jobs = [(p, tmp, diseases["grade_weights"], config.export_px, config.jpeg_quality) for p in plans]
        rows: list[dict] = []
        from tqdm import tqdm
        with ProcessPoolExecutor(max_workers=max(config.workers, 1), initializer=_init_worker, initargs=(pool,)) as ex:
            for part in tqdm(ex.map(_render_smear, jobs, chunksize=4), total=len(jobs), desc="smears", unit="smear",
                             disable=None):
                rows += part
        cohort = pd.DataFrame({"smear_id": [p.smear_id for p in plans], "diagnosis": [p.diagnosis for p in plans],
                               "n_cells": [p.n_cells for p in plans], "seed": config.seed})
        cohort.to_csv(tmp / "cohort.csv", index=False)
        cells = pd.DataFrame(rows)
        cells[["path", "cell_type", "features"]].to_csv(tmp / "cells.csv", index=False)
        cells[["path", "source_file"]].to_csv(tmp / "provenance.csv", index=False)
        pd.DataFrame([{"smear_id": p.smear_id, "profile": p.profile, "focus_sigma_px": p.focus_sigma_px,
                       **{f"rate_{k}": v for k, v in p.feature_rates.items()}} for p in plans]).to_csv(
            tmp / "smear_parameters.csv", index=False)
        (tmp / "README.txt").write_text(
            "SIMULATED cohort made by `mdsdx simulate` from real healthy-donor crops "
            f"(partition {config.partition}, difficulty {config.difficulty}, seed {config.seed}).\n"
            "Diagnoses and dysplasia labels are the simulator's; no patient is behind these smears.\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cohort
