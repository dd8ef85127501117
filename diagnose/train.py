"""Training of the MDS-vs-AA diagnoser (``mdsdx train diagnosis``).

Kimura trained XGBoost on the CNN's parameters of real smears. Here the smears are SIMULATED
(``simulate.cohort``) and, as for a real smear, featurized **through the stage-1 model**, never from
the simulator's ground truth:

1. for each design of ``designs`` (``matched``, ``literature``: simulate/diseases.yaml), a training
   cohort and a validation cohort, each its own seed, from ``train-cohort`` crops (the CNN's
   validation split; no test-split crop), standard difficulty;
2. every cell goes through :class:`models.engine.infer.CellPredictor` once
   (:func:`diagnose.cohort_cells.predict_cohort`), then the 114 parameters of each smear;
3. for the shipped design (``design``), one :class:`MdsDiagnoser` per candidate of ``max_depth_grid``
   is fitted on the training cohort (stratified CV, Platt calibration, threshold) and the candidate
   with the lowest log-loss on the validation cohort is kept.

No test cohort is made or read here: the sealed test cohorts (``diagnose/sealed_cohorts.yaml``) are
scored by ``mdsdx evaluate diagnoser``, which also fits the ablation models on the other designs'
training and validation cohorts written here. Writes ``diagnoser.ubj``, ``metadata.json``,
``validation.json`` and the feature tables ``<design>_<train|val>_features.csv``; cohorts and
predictions are reused when present, so a stopped run resumes.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.metrics import exact_ci95
from diagnose.model import DiagnoserConfig, MdsDiagnoser
from featurize.smear import parameter_ids

log = logging.getLogger(__name__)

# The parameter groups of the ablation: the 17 type proportions, the 97 feature rates, all 114.
PARAMETER_SETS = ("proportions", "features", "all")


@dataclass
class DiagnosisTrainConfig:
    design: str = "matched"                          # the shipped diagnoser's training design
    designs: tuple[str, ...] = ("matched", "literature")   # cohorts made for it and for the ablation
    train_smears: int = 300
    val_smears: int = 100
    train_seed: int = 101
    val_seed: int = 102
    difficulty: str = "standard"
    cells_per_smear: int | None = None               # None: the simulator's 100-200 per smear
    max_depth_grid: tuple[int, ...] = (2, 3, 4)      # candidates, chosen on the validation cohort
    cell_model_dir: str | None = None   # the shipped stage-1 model when None
    data_root: str | None = None
    random_state: int = 0


def select_parameters(X: pd.DataFrame, parameter_set: str) -> pd.DataFrame:
    """The 114 columns with those outside ``parameter_set`` blanked to NaN (missing for every smear, so
    XGBoost can never split on them): a model of the proportions only, the feature rates only, or all."""
    if parameter_set not in PARAMETER_SETS:
        raise ValueError(f"unknown parameter set {parameter_set!r}; choose one of {PARAMETER_SETS}")
    X = X[parameter_ids()].copy()
    if parameter_set == "proportions":
        X.loc[:, [c for c in X.columns if c.startswith("feat_")]] = np.nan
    elif parameter_set == "features":
        X.loc[:, [c for c in X.columns if c.startswith("type_")]] = np.nan
    return X


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import log_loss as sk_log_loss
    return float(sk_log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))


def fit_chosen(train: pd.DataFrame, val: pd.DataFrame, parameter_set: str = "all", max_depth_grid=(2, 3, 4),
               random_state: int = 0) -> tuple[MdsDiagnoser, dict]:
    """Fit one diagnoser per ``max_depth`` on ``train`` and keep the one with the lowest validation
    log-loss (then the higher validation AUC, then the shallower). Returns the model and the record of
    every candidate's validation figures."""
    from sklearn.metrics import roc_auc_score
    y_val = (val["diagnosis"] == "MDS").astype(int).to_numpy()
    candidates = []
    for depth in max_depth_grid:
        model = MdsDiagnoser(replace(DiagnoserConfig(), max_depth=int(depth)), random_state=random_state)
        model.fit(select_parameters(train, parameter_set), train["diagnosis"])
        p = model.predict_proba(select_parameters(val, parameter_set))[:, 1]
        candidates.append((log_loss(y_val, p), -float(roc_auc_score(y_val, p)), int(depth), model))
    candidates.sort(key=lambda c: c[:3])
    record = {"parameter_set": parameter_set, "chosen_max_depth": candidates[0][2], "rule": "lowest validation log-loss",
              "candidates": [{"max_depth": d, "val_log_loss": ll, "val_auc": -nauc} for ll, nauc, d, _ in
                             sorted(candidates, key=lambda c: c[2])]}
    return candidates[0][3], record


def cohort_configs(config: DiagnosisTrainConfig) -> dict[str, "CohortConfig"]:
    """``<design>_<train|val>`` -> the cohort's simulator settings (train-cohort crops)."""
    from simulate.cohort import CohortConfig
    out = {}
    for design in config.designs:
        for split, n, seed in (("train", config.train_smears, config.train_seed), ("val", config.val_smears, config.val_seed)):
            out[f"{design}_{split}"] = CohortConfig(n_smears=n, seed=seed, difficulty=config.difficulty,
                                                    partition="train-cohort", design=design,
                                                    cells_per_smear=config.cells_per_smear)
    return out


def auc_bootstrap_ci(y: np.ndarray, score: np.ndarray, resamples: int, seed: int) -> dict:
    """Percentile 95 % CI of the AUC over resampled smears."""
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(seed)
    auc = []
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():
            auc.append(roc_auc_score(y[i], score[i]))
    return {"auc_ci95": [float(np.percentile(auc, 2.5)), float(np.percentile(auc, 97.5))], "resamples": len(auc)}


def evaluate_diagnoser(model: MdsDiagnoser, test: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Test-cohort sensitivity and specificity with exact (Clopper-Pearson) 95 % intervals, which stay
    honest at 0 or 100 % where a bootstrap collapses to a point, and the AUC with a bootstrap interval."""
    from sklearn.metrics import roc_auc_score
    y = (test["diagnosis"] == "MDS").astype(int).values
    p = model.predict_proba(test[parameter_ids()])[:, 1]
    pred = p >= model.threshold_
    tp, tn = int((pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    n_mds, n_aa = int(y.sum()), int((1 - y).sum())
    out = {"n_smears": int(len(y)), "n_mds": n_mds, "n_aa": n_aa, "threshold": model.threshold_,
           "sensitivity": tp / n_mds, "specificity": tn / n_aa,
           "auc": float(roc_auc_score(y, p)), "accuracy": float((pred == (y == 1)).mean()),
           "sensitivity_ci95": exact_ci95(tp, n_mds), "specificity_ci95": exact_ci95(tn, n_aa),
           "interval_methods": {"sensitivity": "Clopper-Pearson", "specificity": "Clopper-Pearson",
                                "auc": "percentile bootstrap over smears"}}
    out.update(auc_bootstrap_ci(y, p, resamples, seed))
    return out


def train_diagnosis(out: Path, config: DiagnosisTrainConfig) -> dict:
    """Simulate and featurize the training and validation cohorts, fit and choose the diagnoser, save it
    to ``out``; returns the validation record."""
    from core.datasets import default_data_root
    from diagnose.cohort_cells import predict_cohort, smear_parameters
    from models.engine.infer import CellPredictor
    from simulate.cohort import simulate_cohort
    if config.design not in config.designs:
        raise ValueError(f"design {config.design!r} must be one of designs {config.designs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    source = Path(config.data_root) if config.data_root else default_data_root()
    predictor = CellPredictor(config.cell_model_dir)
    memo: dict = {}
    frames = {}
    for name, cohort_config in cohort_configs(config).items():
        cohort_dir = out / f"{name}_cohort"
        if not (cohort_dir / "cohort.csv").is_file():
            log.info("simulating the %s cohort (%d smears, %s crops)", name, cohort_config.n_smears, cohort_config.partition)
            simulate_cohort(cohort_dir, cohort_config, source)
        frames[name] = smear_parameters(predict_cohort(predictor, cohort_dir, memo))
        frames[name].to_csv(out / f"{name}_features.csv")
    train, val = frames[f"{config.design}_train"], frames[f"{config.design}_val"]
    model, validation = fit_chosen(train, val, "all", config.max_depth_grid, config.random_state)
    y = model.y_train_
    validation["cross_validated_train"] = {
        "sensitivity": float(((model.oof_proba_ >= model.threshold_) & (y == 1)).sum() / y.sum()),
        "specificity": float(((model.oof_proba_ < model.threshold_) & (y == 0)).sum() / (y == 0).sum())}
    p_val = model.predict_proba(val[parameter_ids()])[:, 1]
    y_val = (val["diagnosis"] == "MDS").astype(int).to_numpy()
    validation["validation_at_threshold"] = {"sensitivity": float((p_val[y_val == 1] >= model.threshold_).mean()),
                                             "specificity": float((p_val[y_val == 0] < model.threshold_).mean())}
    validation["data"] = (f"SIMULATED {config.design}-design cohorts (mdsdx simulate, {config.difficulty} difficulty, "
                          "train-cohort crops) featurized through the stage-1 CNN")
    model.save(out, training={"config": asdict(config), "cellnet": predictor.version, "stage1_runtime": predictor.runtime,
                              "validation": validation})
    (out / "validation.json").write_text(json.dumps(validation, indent=2))
    return validation
