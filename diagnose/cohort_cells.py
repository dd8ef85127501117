"""Stage-1 predictions of every cell of a simulated cohort, kept, and the smear parameters made from them.

A cohort's cells go through :class:`models.engine.infer.CellPredictor` once; the calibrated type and
feature probabilities are saved beside the cohort (``stage1_<model version>_<runtime>.npz``) with
each cell's SHA-1, its smear and the real crop it was made from (``provenance.csv``). Cells whose
JPEG bytes were already predicted (another cohort of the same seed at another dysplasia rate, see
:mod:`simulate.cohort`) are copied, not predicted again.

:func:`smear_parameters` turns the cells into the 114 parameters of :func:`featurize.smear.featurize_smear`
(the same definitions, tested equal) with optional per-cell weights, which the cluster bootstrap of
:mod:`diagnose.evidence` uses to resample source crops.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from featurize.smear import feature_type_matrix, parameter_ids

log = logging.getLogger(__name__)


@dataclass
class CohortCells:
    """The cells of one cohort.

    - ``smear_ids`` (n_smears,), ``diagnosis`` (n_smears,) "MDS" / "AA";
    - ``cell_smear`` (n_cells,) int: the row of the cell's smear in ``smear_ids``;
    - ``cell_crop`` (n_cells,) str: the real crop the cell was made from; ``cell_type`` (n_cells,) str:
      the simulated type (the truth, used to stratify crops by type, never as a feature);
    - ``type_probs`` (n_cells, 17) and ``feature_probs`` (n_cells, 97; NaN for untrained features):
      the stage-1 model's calibrated probabilities.
    """
    smear_ids: np.ndarray
    diagnosis: np.ndarray
    cell_smear: np.ndarray
    cell_crop: np.ndarray
    cell_type: np.ndarray
    type_probs: np.ndarray
    feature_probs: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """(n_smears,) 1 for MDS, 0 for AA."""
        return (self.diagnosis == "MDS").astype(int)

    def crop_counts(self) -> pd.Series:
        """Cells per distinct source crop."""
        return pd.Series(self.cell_crop).value_counts()

    def crop_summary(self) -> dict:
        """How independent the cells are: distinct crops, cells, the mean uses of a crop, and Kish's
        effective number of crops, (sum n_c)^2 / sum n_c^2 over the crops' cell counts n_c."""
        n = self.crop_counts().to_numpy(float)
        return {"cells": int(n.sum()), "smears": int(len(self.smear_ids)), "distinct_crops": int(len(n)),
                "mean_cells_per_crop": float(n.mean()), "effective_crops_kish": float(n.sum() ** 2 / (n ** 2).sum())}


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def predict_cohort(predictor, cohort_dir: Path, memo: dict | None = None) -> CohortCells:
    """The cohort's cells with their stage-1 predictions, read from the cohort's saved file when it was
    made by the same model version and runtime, else predicted (copying from ``memo``, SHA-1 ->
    (type_probs, feature_probs), what it already holds) and saved. ``memo`` is filled in place."""
    from tqdm import tqdm
    cohort_dir = Path(cohort_dir)
    cache = cohort_dir / f"stage1_{predictor.version}_{predictor.runtime}.npz"
    cohort = pd.read_csv(cohort_dir / "cohort.csv")
    cells = pd.read_csv(cohort_dir / "cells.csv", keep_default_na=False)
    provenance = pd.read_csv(cohort_dir / "provenance.csv")
    if not cells["path"].equals(provenance["path"]):
        raise ValueError(f"{cohort_dir}: cells.csv and provenance.csv list different cells")
    if cache.is_file():
        saved = np.load(cache, allow_pickle=False)
        sha, type_probs, feature_probs = saved["sha1"], saved["type_probs"], saved["feature_probs"]
    else:
        sha = np.array([_sha1(cohort_dir / p) for p in cells["path"]])
        memo = {} if memo is None else memo
        todo = [i for i, s in enumerate(sha) if s not in memo]
        log.info("%s: %d cells, %d already predicted in another cohort", cohort_dir.name, len(sha), len(sha) - len(todo))
        n_types, n_feats = feature_type_matrix().shape
        batch = 2048
        for start in tqdm(range(0, len(todo), batch), desc=f"stage 1 {cohort_dir.name}", unit="batch", disable=None):
            idx = todo[start:start + batch]
            preds = predictor.predict_files([str(cohort_dir / cells["path"][i]) for i in idx])
            for k, i in enumerate(idx):
                memo[sha[i]] = (preds.type_probs[k].astype(np.float32), preds.feature_probs[k].astype(np.float32))
        type_probs = np.stack([memo[s][0] for s in sha]) if len(sha) else np.zeros((0, n_types), np.float32)
        feature_probs = np.stack([memo[s][1] for s in sha]) if len(sha) else np.zeros((0, n_feats), np.float32)
        np.savez_compressed(cache, sha1=sha, type_probs=type_probs, feature_probs=feature_probs)
    if memo is not None:
        for s, t, f in zip(sha, type_probs, feature_probs):
            memo.setdefault(s, (t, f))
    smear_of_cell = cells["path"].str.split("/").str[0].to_numpy()
    smear_ids = cohort["smear_id"].to_numpy()
    row = {s: i for i, s in enumerate(smear_ids)}
    return CohortCells(smear_ids=smear_ids, diagnosis=cohort["diagnosis"].to_numpy(),
                       cell_smear=np.array([row[s] for s in smear_of_cell]), cell_crop=provenance["source_file"].to_numpy(),
                       cell_type=cells["cell_type"].to_numpy(), type_probs=type_probs.astype(np.float64),
                       feature_probs=feature_probs.astype(np.float64))


class ParameterMaker:
    """The 114 parameters of every smear of ``cells``, for any per-cell weights (the weight of a cell is
    how many times it is counted; 1 everywhere gives :func:`featurize.smear.featurize_smear`).

    Type proportion = sum_i w_i P_i(t) / sum_i w_i; feature rate = sum_i w_i P_i(T_f) P_i(f) /
    sum_i w_i P_i(T_f), missing when that weighted expected count is below ``min_expected_cells``.
    """

    def __init__(self, cells: CohortCells, min_expected_cells: float = 0.5):
        from scipy import sparse
        self.cells = cells
        self.min_expected_cells = min_expected_cells
        weight = cells.type_probs @ feature_type_matrix()                     # (n, 97): P_i(T_f)
        self.known = ~np.isnan(cells.feature_probs).all(0)
        self.columns = np.hstack([np.ones((len(weight), 1)), cells.type_probs, weight,
                                  weight * np.nan_to_num(cells.feature_probs)])
        self._sparse = sparse
        self.n_types = cells.type_probs.shape[1]

    def __call__(self, cell_weights: np.ndarray | None = None) -> pd.DataFrame:
        c = self.cells
        w = np.ones(len(c.cell_smear)) if cell_weights is None else np.asarray(cell_weights, float)
        s = self._sparse.csr_matrix((w, (c.cell_smear, np.arange(len(w)))), shape=(len(c.smear_ids), len(w)))
        sums = np.asarray(s @ self.columns)
        n, t = sums[:, :1], self.n_types
        with np.errstate(invalid="ignore", divide="ignore"):
            proportions = np.where(n > 0, sums[:, 1:1 + t] / n, np.nan)
            den, num = sums[:, 1 + t:1 + t + 97], sums[:, 1 + t + 97:]
            rates = np.where((den >= self.min_expected_cells) & self.known, num / den, np.nan)
        return pd.DataFrame(np.hstack([proportions, rates]), index=pd.Index(c.smear_ids, name="smear_id"),
                            columns=parameter_ids())


def smear_parameters(cells: CohortCells, cell_weights: np.ndarray | None = None) -> pd.DataFrame:
    """(n_smears, 114) parameters indexed by smear_id, with a ``diagnosis`` column."""
    frame = ParameterMaker(cells)(cell_weights)
    frame["diagnosis"] = cells.diagnosis
    return frame


def with_true_types(cells: CohortCells) -> CohortCells:
    """The same cells with the simulator's true types as one-hot type probabilities: the type mix the
    simulator drew, before the stage-1 model reads it (a dysplastic cell can be called another type).
    Its type proportions show what a design put into the mix; never an input of a shipped model."""
    from core.taxonomy import load_taxonomy
    abbrs = load_taxonomy().type_abbrs
    onehot = (cells.cell_type[:, None] == np.array(abbrs)[None, :]).astype(np.float64)
    return CohortCells(smear_ids=cells.smear_ids, diagnosis=cells.diagnosis, cell_smear=cells.cell_smear,
                       cell_crop=cells.cell_crop, cell_type=cells.cell_type, type_probs=onehot,
                       feature_probs=cells.feature_probs)
