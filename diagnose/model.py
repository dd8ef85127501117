"""The MDS-vs-AA classifier: XGBoost on the 114 smear parameters, after Kimura et al. 2019.

``MdsDiagnoser.fit``:
1. stratified k-fold cross-validation gives out-of-fold margins for every training smear;
2. Platt scaling (a logistic fit of the label on the out-of-fold margin) calibrates the probability;
3. the decision threshold is chosen on those out-of-fold calibrated probabilities: the lowest
   threshold at which the one-sided ``specificity_confidence`` Clopper-Pearson lower bound of the
   out-of-fold specificity is at least ``target_specificity`` (Kimura: 100 % specificity, 96.2 %
   sensitivity; our target: >= 97 % / >= 96 %). Requiring the bound, not the point estimate, keeps
   the specificity of new smears at the target: the point-estimate rule measured 94 % on the
   independent simulated test cohort;
4. the final booster is refit on every training smear.
Saved as XGBoost's own ``diagnoser.ubj`` beside ``metadata.json`` (never pickled).

SHAP contributions are TreeSHAP values on the booster's margin (log-odds): for every smear,
``shap.sum() + base_value == margin``. They are computed by XGBoost's own TreeSHAP
(``pred_contribs``), which gives the values of ``shap.TreeExplainer`` (path-dependent) to float
precision (tested) in about 1 ms instead of shap's 1.6 s import and per-call overhead;
:meth:`MdsDiagnoser.tree_explainer` returns the ``shap`` explainer for plots that want it.
A loaded model predicts and explains through :mod:`diagnose.native_booster` (XGBoost's C API), so
serving never imports the xgboost Python package and, with it, scikit-learn and scipy.stats.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import ModelLoadError
from diagnose.native_booster import NativeBooster
from featurize.smear import parameter_ids, parameter_names
from models.export.artifact import library_versions

log = logging.getLogger(__name__)
FORMAT = "mdsdx-diagnoser/1"
CLASSES = ("AA", "MDS")  # label 1 = MDS
DEFAULT_DIR = Path(__file__).resolve().parent / "diagnoser"


@dataclass(frozen=True)
class DiagnoserConfig:
    """XGBoost settings. ``n_jobs=1``: with two threads xgboost can be 100x slower beside TensorFlow."""
    n_estimators: int = 300
    max_depth: int = 3
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.6
    min_child_weight: float = 2.0
    reg_lambda: float = 1.0
    n_folds: int = 5
    target_specificity: float = 0.97
    specificity_confidence: float = 0.95  # one-sided; 0 chooses on the point estimate
    n_jobs: int = 1


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class MdsDiagnoser:
    """fit / predict_proba / explain on frames with the 114 parameter columns (NaN allowed)."""

    def __init__(self, config: DiagnoserConfig = DiagnoserConfig(), random_state: int = 0):
        self.config = config
        self.random_state = random_state
        self.model_ = None   # the fitted xgboost.XGBClassifier (training, or on demand after load)
        self.native_ = None  # a loaded model's NativeBooster: inference without importing xgboost

    def _new_classifier(self):
        import xgboost as xgb
        c = self.config
        return xgb.XGBClassifier(n_estimators=c.n_estimators, max_depth=c.max_depth, learning_rate=c.learning_rate,
                                 subsample=c.subsample, colsample_bytree=c.colsample_bytree,
                                 min_child_weight=c.min_child_weight, reg_lambda=c.reg_lambda, n_jobs=c.n_jobs,
                                 random_state=self.random_state, eval_metric="logloss", tree_method="hist")

    def fit(self, X: pd.DataFrame, y) -> "MdsDiagnoser":
        """``X`` (n_smears, 114) parameters; ``y`` 1 for MDS, 0 for AA (or the strings)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        X = X[parameter_ids()]
        y = np.array([1 if v in (1, "MDS", True) else 0 for v in y])
        if len(set(y)) < 2:
            raise ValueError("training needs both MDS and AA smears")
        oof = np.zeros(len(y))
        folds = StratifiedKFold(self.config.n_folds, shuffle=True, random_state=self.random_state)
        for train_idx, test_idx in folds.split(X, y):
            model = self._new_classifier().fit(X.iloc[train_idx], y[train_idx])
            oof[test_idx] = model.predict(X.iloc[test_idx], output_margin=True)
        platt = LogisticRegression(C=1e6).fit(oof.reshape(-1, 1), y)
        self.platt_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
        self.oof_margin_ = oof
        self.oof_proba_ = self._calibrate(oof)
        self.threshold_ = self._choose_threshold(self.oof_proba_, y)
        self.y_train_ = y
        self.model_ = self._new_classifier().fit(X, y)
        self.feature_names_ = parameter_ids()
        self.classes_ = np.array(CLASSES)
        return self

    def _calibrate(self, margin: np.ndarray) -> np.ndarray:
        a, b = self.platt_
        return _sigmoid(a * margin + b)

    def _choose_threshold(self, proba: np.ndarray, y: np.ndarray) -> float:
        from scipy.stats import beta
        negatives = np.sort(proba[y == 0])
        n = len(negatives)
        if not n:
            return 0.5
        alpha = 1.0 - self.config.specificity_confidence
        # k negatives at or below the threshold; the Clopper-Pearson lower bound of k / n
        k = np.arange(1, n + 1)
        lower = beta.ppf(alpha, k, n - k + 1) if alpha < 1 else k / n
        ok = np.flatnonzero(lower >= self.config.target_specificity)
        k_needed = int(k[ok[0]]) if len(ok) else n
        # the smallest threshold above the k-th negative keeps k negatives below it
        return float(min(np.nextafter(negatives[k_needed - 1], 1.0), 0.999))

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.feature_names_].to_numpy(np.float32)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) log-odds of MDS before calibration."""
        if self.native_ is not None:
            return self.native_.margin(self._matrix(X))
        return self.model_.predict(X[self.feature_names_], output_margin=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) calibrated probabilities, columns ``classes_`` = (AA, MDS)."""
        p = self._calibrate(self.margin(X))
        return np.stack([1 - p, p], 1)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(self.predict_proba(X)[:, 1] >= self.threshold_, "MDS", "AA")

    def booster(self):
        """The ``xgboost.Booster`` (imports xgboost; a loaded model reads its file again)."""
        if self.model_ is None:
            import xgboost as xgb
            self.model_ = xgb.XGBClassifier(n_jobs=self.config.n_jobs)
            self.model_.load_model(str(self.model_file_))
        return self.model_.get_booster()

    def tree_explainer(self):
        """``shap.TreeExplainer`` of the booster (imports shap)."""
        import shap
        return shap.TreeExplainer(self.booster())

    def explain(self, X: pd.DataFrame) -> tuple[np.ndarray, float]:
        """SHAP values (n, 114) on the margin (log-odds of MDS) and the base value."""
        if self.native_ is not None:
            contribs = self.native_.contributions(self._matrix(X))
        else:
            import xgboost as xgb
            matrix = xgb.DMatrix(self._matrix(X), missing=np.nan, feature_names=self.feature_names_)
            contribs = self.booster().predict(matrix, pred_contribs=True)
        return contribs[:, :-1].astype(np.float64), float(contribs[0, -1]) if len(contribs) else 0.0

    def top_features(self, shap_row: np.ndarray, k: int = 5) -> list[dict]:
        """The k parameters with the largest |SHAP| of one smear, readable names first."""
        names = parameter_names()
        order = np.argsort(-np.abs(shap_row))[:k]
        return [{"parameter": self.feature_names_[i], "name": names[self.feature_names_[i]],
                 "shap": round(float(shap_row[i]), 4)} for i in order]

    def save(self, out: Path, training: dict | None = None, version: str | None = None) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.booster().save_model(str(out / "diagnoser.ubj"))
        meta = {"format": FORMAT,
                "version": version or datetime.now(timezone.utc).strftime("diagnoser-%Y%m%d-%H%M"),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "libraries": library_versions("xgboost-cpu", "xgboost", "shap", "numpy"),
                "inputs": self.feature_names_, "input_names": [parameter_names()[c] for c in self.feature_names_],
                "classes": list(CLASSES), "positive_class": "MDS",
                "platt": list(self.platt_), "threshold": self.threshold_,
                "config": asdict(self.config), "random_state": self.random_state, "training": training or {}}
        (out / "metadata.json").write_text(json.dumps(meta, indent=2))
        return out / "diagnoser.ubj"

    @classmethod
    def load(cls, model_dir: Path | None = None) -> "MdsDiagnoser":
        model_dir = Path(model_dir) if model_dir else DEFAULT_DIR
        meta_path = model_dir / "metadata.json"
        if not (model_dir / "diagnoser.ubj").is_file() or not meta_path.is_file():
            raise ModelLoadError(f"{model_dir}: expected diagnoser.ubj and metadata.json "
                                 "(train one with `mdsdx train diagnosis --out DIR`)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ModelLoadError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        if meta["inputs"] != parameter_ids():
            raise ModelLoadError(f"{meta_path}: the model's inputs do not match the 114 parameters of this version")
        self = cls(DiagnoserConfig(**meta["config"]), meta.get("random_state", 0))
        self.model_file_ = model_dir / "diagnoser.ubj"
        self.native_ = NativeBooster(self.model_file_, len(meta["inputs"]), nthread=self.config.n_jobs)
        self.platt_ = tuple(meta["platt"])
        self.threshold_ = float(meta["threshold"])
        self.feature_names_ = meta["inputs"]
        self.classes_ = np.array(CLASSES)
        self.metadata_ = meta
        return self
