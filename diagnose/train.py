"""Training and evaluation of the MDS-vs-AA diagnoser (``mdsdx train diagnosis``).

Kimura trained XGBoost on the CNN's parameters of real smears. Here the smears are SIMULATED
(``simulate.cohort``) and, as for a real smear, featurized **through the stage-1 model**, never from
the simulator's ground truth:

1. a training cohort from ``train-cohort`` crops (the CNN's validation split) and an independent
   test cohort from ``test-cohort`` crops (no training step saw them), standard difficulty;
2. every smear's cells go through :class:`models.engine.infer.CellPredictor`, then :func:`featurize_smear`;
3. :class:`MdsDiagnoser` is fitted (stratified CV, Platt calibration, threshold) on the training cohort;
4. sensitivity and specificity on the test cohort with exact (Clopper-Pearson) 95 % CIs, and the AUC with a
   percentile bootstrap 95 % CI.
Writes ``diagnoser.ubj``, ``metadata.json``, ``metrics.json``, ``roc.png``, ``heatmap.png`` and the
feature tables; cohorts and features are reused when present, so a stopped run resumes.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.metrics import exact_ci95
from diagnose.model import DiagnoserConfig, MdsDiagnoser
from featurize.smear import featurize_smear, parameter_ids, usable_cells

log = logging.getLogger(__name__)


@dataclass
class DiagnosisTrainConfig:
    train_smears: int = 600
    test_smears: int = 300
    difficulty: str = "standard"
    train_seed: int = 101
    test_seed: int = 202
    bootstrap_resamples: int = 2000
    cell_model_dir: str | None = None   # the shipped stage-1 model when None
    data_root: str | None = None
    random_state: int = 0


def featurize_cohort(predictor, cohort_dir: Path) -> pd.DataFrame:
    """The 114 parameters of every smear in a cohort folder (rows indexed by smear_id), with
    ``diagnosis`` and ``n_cells`` columns, computed through the stage-1 model."""
    from tqdm import tqdm
    cohort = pd.read_csv(Path(cohort_dir) / "cohort.csv")
    rows = []
    for smear_id in tqdm(cohort["smear_id"], desc=f"featurize {Path(cohort_dir).name}", unit="smear", disable=None):
        files = sorted(str(p) for p in (Path(cohort_dir) / smear_id).glob("*.jpg"))
        preds = predictor.predict_files(files)
        rows.append(featurize_smear(preds.type_probs, preds.feature_probs,
                                    usable=usable_cells(preds.cell_type)).values.rename(smear_id))
    frame = pd.DataFrame(rows)
    frame.index.name = "smear_id"
    return frame.join(cohort.set_index("smear_id")[["diagnosis", "n_cells"]])


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
    from core.datasets import default_data_root
    from diagnose.report import cohort_heatmap_png, roc_png
    from models.engine.infer import CellPredictor
    from simulate.cohort import CohortConfig, simulate_cohort
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    source = Path(config.data_root) if config.data_root else default_data_root()
    cohorts = {"train": (config.train_smears, config.train_seed, "train-cohort"),
               "test": (config.test_smears, config.test_seed, "test-cohort")}
    predictor = None
    frames = {}
    for name, (n, seed, partition) in cohorts.items():
        cohort_dir = out / f"{name}_cohort"
        if not (cohort_dir / "cohort.csv").is_file():
            log.info("simulating the %s cohort (%d smears, %s crops)", name, n, partition)
            simulate_cohort(cohort_dir, CohortConfig(n_smears=n, seed=seed, difficulty=config.difficulty,
                                                     partition=partition), source)
        features_csv = out / f"{name}_features.csv"
        if features_csv.is_file():
            frames[name] = pd.read_csv(features_csv, index_col="smear_id")
        else:
            predictor = predictor or CellPredictor(config.cell_model_dir)
            frames[name] = featurize_cohort(predictor, cohort_dir)
            frames[name].to_csv(features_csv)
    train, test = frames["train"], frames["test"]
    model = MdsDiagnoser(DiagnoserConfig(), random_state=config.random_state)
    model.fit(train[parameter_ids()], train["diagnosis"])
    metrics = evaluate_diagnoser(model, test, config.bootstrap_resamples, config.random_state)
    metrics["cross_validated_train"] = {
        "sensitivity": float(((model.oof_proba_ >= model.threshold_) & (model.y_train_ == 1)).sum() / model.y_train_.sum()),
        "specificity": float(((model.oof_proba_ < model.threshold_) & (model.y_train_ == 0)).sum() / (model.y_train_ == 0).sum())}
    metrics["data"] = "SIMULATED cohorts (mdsdx simulate, standard difficulty) featurized through the stage-1 CNN"
    from models.export.artifact import DEFAULT_DIR, read_metadata
    cell_version = read_metadata(Path(config.cell_model_dir) if config.cell_model_dir else DEFAULT_DIR)["version"]
    model.save(out, training={"config": asdict(config), "cellnet": cell_version, "test_metrics": metrics})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    y = (test["diagnosis"] == "MDS").astype(int).values
    p = model.predict_proba(test[parameter_ids()])[:, 1]
    roc_png(y, p, "MDS vs AA on a SIMULATED independent test cohort\n(featurized through the stage-1 CNN)",
            out / "roc.png", tuple(metrics["auc_ci95"]), (metrics["sensitivity"], metrics["specificity"]))
    shap_values, _ = model.explain(test[parameter_ids()])
    sample = np.random.default_rng(0).permutation(len(test))[:60]
    cohort_heatmap_png([test.index[i] for i in sample], shap_values[sample],
                       [test["diagnosis"].iloc[i] for i in sample], path=out / "heatmap.png")
    return metrics
