"""Simulated MDS / AA smear cohorts in the layout a laboratory export gives.

``<out>/<smear_id>/cell_0001.jpg`` ..., ``<out>/cohort.csv`` (``smear_id,diagnosis,n_cells,seed``)
and ``<out>/cells.csv`` (``path,cell_type,features``: the per-cell ground truth, ``features`` as
``id:grade`` pairs joined by ``;``), with ``provenance.csv`` (``path,source_file``: the real crop
each cell was made from) and ``smear_parameters.csv`` (each smear's design, drawn rates and MDS
dysplasia rate). Deterministic for a seed. The cohort is written to a temporary folder beside ``out``
and moved into place only when complete.

Designs (``diseases.yaml``, ``designs``): ``literature`` draws each diagnosis's type mix from its own
entry; ``matched`` draws every smear's type mix and reactive features from one shared distribution,
so only dysplasia differs. ``dysplasia_rate`` R makes every cell of a dysplasia lineage of an MDS smear
dysplastic with probability R (``dysplasia_lineages``). In the matched design, and whenever R is set,
each cell draws from its own random stream (seeded by smear and cell index) and always consumes the
same numbers, so two cohorts of one seed at different R hold byte-identical copies of every cell
that is not dysplastic in either: a dose-response series differs only where the dysplasia does.
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
DESIGNS = ("literature", "matched")


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
    design: str = "literature"           # see DESIGNS and diseases.yaml `designs`
    dysplasia_rate: float | None = None   # MDS share of dysplastic cells per lineage; None: the entries' rates


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
    design: str = "literature"
    dysplasia_rate: float | None = None   # set on MDS smears of a dose-response cohort only


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
    for name, d in config.get("designs", {}).items():
        bad = set(d["type_mix"]) - set(tax.type_abbrs)
        bad |= set(d.get("shared_feature_rates", {})) - sim_features
        if bad:
            raise InvalidInput(f"disease config: design {name} names unknown types or features {sorted(bad)}")
    by_feature = {t.feature_id: t.cell_types for t in TRANSFORMS.values()}
    for name, weights in config.get("dysplasia_lineages", {}).items():
        if set(weights) - sim_features:
            raise InvalidInput(f"disease config: lineage {name} names features the simulator cannot make "
                               f"{sorted(set(weights) - sim_features)}")
        if len({by_feature[f] for f in weights}) != 1:
            raise InvalidInput(f"disease config: the features of lineage {name} apply to different cell types")
    return config


def dysplasia_features(diseases: dict) -> set[str]:
    """The features the lineages of ``dysplasia_lineages`` name: the dysplasia that a matched design
    lets differ and that ``dysplasia_rate`` sets."""
    return {f for weights in diseases.get("dysplasia_lineages", {}).values() for f in weights}


def lineage_types(weights: dict) -> tuple[str, ...]:
    """The cell types a lineage's features apply to (one set, checked by :func:`load_disease_config`)."""
    by_feature = {t.feature_id: t.cell_types for t in TRANSFORMS.values()}
    return by_feature[next(iter(weights))]


def plan_cohort(config: CohortConfig, diseases: dict, available_types: set[str]) -> list[SmearPlan]:
    """Draw every smear's diagnosis, cell mix, feature rates and stain from the seed."""
    if config.difficulty not in diseases["difficulty"]:
        raise InvalidInput(f"unknown difficulty {config.difficulty!r}; choose one of {sorted(diseases['difficulty'])}")
    if config.design != "literature" and config.design not in diseases.get("designs", {}):
        raise InvalidInput(f"unknown design {config.design!r}; choose literature or one of {sorted(diseases.get('designs', {}))}")
    if config.dysplasia_rate is not None and not 0.0 <= config.dysplasia_rate <= 1.0:
        raise InvalidInput(f"--dysplasia-rate must be a share between 0 and 1, not {config.dysplasia_rate}")
    if config.dysplasia_rate is not None and not diseases.get("dysplasia_lineages"):
        raise InvalidInput("disease config: --dysplasia-rate needs a `dysplasia_lineages` table")
    level = diseases["difficulty"][config.difficulty]
    shared = diseases["designs"][config.design] if config.design != "literature" else None
    dysplastic = dysplasia_features(diseases)
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
        mix_source = shared or d  # the matched design: one type distribution for every diagnosis
        mean = np.array([mix_source["type_mix"].get(a, 0.0) if a in available_types else 0.0 for a in abbrs]) + 1e-6
        mean = mean / mean.sum()
        mix = rng.dirichlet(mean * mix_source["type_concentration"])
        k = level["rate_concentration"]
        means = dict(d["feature_rates"])
        if shared:
            means = {f: m for f, m in means.items() if f in dysplastic} | shared.get("shared_feature_rates", {})
        rates = {f: float(rng.beta(max(m * k, 1e-3), max((1 - m) * k, 1e-3))) for f, m in means.items()}
        n = config.cells_per_smear or int(rng.integers(lo, hi + 1))
        dose = config.dysplasia_rate if diagnosis == "MDS" else None
        if dose is not None:
            # the lineage rate R replaces the entry's dysplasia rates (the draws above are still made,
            # so smear i has the same mix, size and stain at every R)
            profile = "MDS"
            rates = {f: r for f, r in rates.items() if f not in dysplastic}
        plans.append(SmearPlan(
            smear_id=f"smear_{i + 1:04d}", diagnosis=diagnosis, profile=profile, seed=[config.seed, 2, i], n_cells=n,
            type_probs=dict(zip(abbrs, mix.tolist())), feature_rates=rates,
            stain_gain=tuple(rng.normal(1.0, level["stain_sd"], 3).tolist()),
            stain_offset=tuple(rng.normal(0.0, 60 * level["stain_sd"], 3).tolist()),
            focus_sigma_px=float(rng.uniform(*level["focus_sigma_px"])),
            design=config.design, dysplasia_rate=dose))
    return plans


def _cell_features_shared_stream(plan: SmearPlan, cell_type: str, rng: np.random.Generator, grade_weights,
                                 by_type: dict) -> dict[str, int]:
    """The literature design's draw of one cell's features from the smear's stream (unchanged since
    the first cohorts, so their seeds still give the same smears)."""
    return {f: int(rng.choice([1, 2, 3], p=grade_weights)) for f, rate in plan.feature_rates.items()
            if cell_type in by_type[f] and rng.random() < rate}


def _cell_features_own_stream(plan: SmearPlan, cell_type: str, rng: np.random.Generator, grade_weights,
                              by_type: dict, lineages: dict) -> dict[str, int]:
    """One cell's features from its own stream. Every draw is made whether or not it applies, so the
    stream's later numbers (the crop and the transforms) do not depend on the rates."""
    feats = {}
    for f, rate in plan.feature_rates.items():
        present, grade = rng.random() < rate, int(rng.choice([1, 2, 3], p=grade_weights))
        if present and cell_type in by_type[f]:
            feats[f] = grade
    for weights in lineages.values():
        names = list(weights)
        p = np.array([weights[f] for f in names], float)
        u, k, grade = rng.random(), int(rng.choice(len(names), p=p / p.sum())), int(rng.choice([1, 2, 3], p=grade_weights))
        if plan.dysplasia_rate is not None and cell_type in by_type[names[0]] and u < plan.dysplasia_rate:
            feats[names[k]] = grade
    return feats


_worker_pool: CropPool | None = None  # one per worker process, so its decode-and-segment cache lasts


def _init_worker(pool: CropPool) -> None:
    global _worker_pool
    _worker_pool = pool


def _render_smear(args) -> list[dict]:
    plan, out, grade_weights, export_px, quality, lineages = args
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
    own_streams = plan.design != "literature" or plan.dysplasia_rate is not None
    for j, cell_type in enumerate(types, start=1):
        if own_streams:
            cell_rng = np.random.default_rng([*plan.seed, j])
            feats = _cell_features_own_stream(plan, str(cell_type), cell_rng, grade_weights, by_type, lineages)
        else:
            cell_rng = rng
            feats = _cell_features_shared_stream(plan, str(cell_type), rng, grade_weights, by_type)
        cell = make_cell(pool, str(cell_type), feats, cell_rng)
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
        jobs = [(p, tmp, diseases["grade_weights"], config.export_px, config.jpeg_quality,
                 diseases.get("dysplasia_lineages", {})) for p in plans]
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
        pd.DataFrame([{"smear_id": p.smear_id, "profile": p.profile, "design": p.design,
                       "dysplasia_rate": p.dysplasia_rate, "focus_sigma_px": p.focus_sigma_px,
                       **{f"rate_{k}": v for k, v in p.feature_rates.items()}} for p in plans]).to_csv(
            tmp / "smear_parameters.csv", index=False)
        dose = "" if config.dysplasia_rate is None else f", MDS dysplasia rate {config.dysplasia_rate:g} per lineage"
        (tmp / "README.txt").write_text(
            "SIMULATED cohort made by `mdsdx simulate` from real healthy-donor crops "
            f"(partition {config.partition}, difficulty {config.difficulty}, design {config.design}{dose}, "
            f"seed {config.seed}).\n"
            "Diagnoses and dysplasia labels are the simulator's; no patient is behind these smears.\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cohort
