"""Temperature scaling and the UNID threshold, fitted on the validation split.

- ``type_temperature`` T and ``type_bias`` b (17 values, taxonomy order, mean 0) minimise the
  validation NLL of softmax(logits / T + b): bias-corrected temperature scaling (Alexandari et al.
  2020). Class-balanced sampling trains the network under a uniform type prior; b restores the
  prior of the real validation crops (neutrophils far more common than metamyelocytes), which
  temperature alone cannot. A small L2 penalty (``BIAS_L2``) keeps b finite for a rare type.
- ``feature_temperature`` likewise for the sigmoid features, over known labels only.
- ``unid_threshold``: the lowest calibrated top-1 confidence at which the validation cells kept
  are at least ``target_accuracy`` correct, capped so that at most ``max_unid_rate`` of them are
  routed to UNID (as CellaVision routes doubtful cells to "Unidentified").
- ``feature_thresholds``: per feature with at least ``MIN_LABELLED`` positive and negative
  validation cells, the lowest calibrated probability at which at least ``FEATURE_SPECIFICITY`` of
  the negative cells stay below it, with the validation AUC, sensitivity and specificity there. A
  feature is ``validated`` when its AUC reaches ``MIN_FEATURE_AUC`` and its sensitivity at the
  threshold ``MIN_FEATURE_SENSITIVITY``; only validated features count a cell as dysplastic in the
  WHO view (``diagnose.who``), because a weak detector's false positives, summed over a lineage's
  cells, would read as dysplasia in a normal smear.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, softmax

TARGET_ACCURACY = 0.99
MAX_UNID_RATE = 0.05
FEATURE_SPECIFICITY = 0.99
MIN_FEATURE_AUC = 0.90
MIN_FEATURE_SENSITIVITY = 0.50
MIN_LABELLED = 20
BIAS_L2 = 1e-3


def _partial_label_nll(logits: np.ndarray, allowed: np.ndarray) -> float:
    """Mean -log of the softmax mass on the allowed types; logits and allowed are (n, k)."""
    lp = log_softmax(logits, axis=1)
    return float(-np.log(np.maximum((np.exp(lp) * allowed).sum(1), 1e-12)).mean())


def fit_type_temperature(logits: np.ndarray, allowed: np.ndarray) -> float:
    def nll(log_t):
        return _partial_label_nll(logits / np.exp(log_t), allowed)
    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def fit_type_calibration(logits: np.ndarray, allowed: np.ndarray, t0: float) -> tuple[float, np.ndarray]:
    """Temperature T and per-type bias b (k,) for logits (n, k), from ``allowed`` (n, k), 1 where a
    type is a correct answer for the cell; starts from the temperature-only fit ``t0``."""
    def objective(q):
        return _partial_label_nll(logits / np.exp(q[0]) + q[1:], allowed) + BIAS_L2 * float(np.sum(q[1:] ** 2))
    q = minimize(objective, np.r_[np.log(t0), np.zeros(logits.shape[1])], method="L-BFGS-B").x
    return float(np.exp(q[0])), q[1:] - q[1:].mean()


def fit_feature_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    known = targets >= 0
    if not known.any():
        return 1.0
    z, y = logits[known], targets[known]

    def nll(log_t):
        s = z / np.exp(log_t)
        return (np.maximum(s, 0) - s * y + np.log1p(np.exp(-np.abs(s)))).mean()
    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def choose_unid_threshold(confidence: np.ndarray, correct: np.ndarray, target_accuracy: float = TARGET_ACCURACY,
                          max_unid_rate: float = MAX_UNID_RATE) -> float:
    order = np.argsort(confidence)
    conf, ok = confidence[order], correct[order].astype(float)
    kept_acc = np.cumsum(ok[::-1])[::-1] / np.arange(len(ok), 0, -1)  # accuracy of cells >= conf[i]
    cap = int(np.floor(max_unid_rate * len(conf)))
    for i in range(min(cap, len(conf) - 1) + 1):
        if kept_acc[i] >= target_accuracy:
            return float(conf[i])
    return float(conf[min(cap, len(conf) - 1)])


def choose_feature_thresholds(probs: np.ndarray, targets: np.ndarray, feature_ids: list[str]) -> dict:
    """Per-feature decision thresholds from calibrated probabilities (n, 97) and targets (n, 97;
    1 present, 0 absent, -1 unknown). See the module docstring for the rule."""
    from sklearn.metrics import roc_auc_score
    out = {}
    for j, fid in enumerate(feature_ids):
        known = targets[:, j] >= 0
        y, p = targets[known, j] > 0, probs[known, j]
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        if n_pos < MIN_LABELLED or n_neg < MIN_LABELLED:
            continue
        negatives = np.sort(p[~y])
        k = int(np.ceil(FEATURE_SPECIFICITY * n_neg)) - 1
        threshold = float(np.nextafter(negatives[k], 1.0))
        auc = float(roc_auc_score(y, p))
        sensitivity, specificity = float((p[y] >= threshold).mean()), float((p[~y] < threshold).mean())
        out[fid] = {"threshold": threshold, "auc": round(auc, 4), "sensitivity": round(sensitivity, 4),
                    "specificity": round(specificity, 4), "n_positive": n_pos, "n_negative": n_neg,
                    "validated": bool(auc >= MIN_FEATURE_AUC and sensitivity >= MIN_FEATURE_SENSITIVITY)}
    return out


def calibrate(net, images: np.ndarray, frame: pd.DataFrame, batch_size: int = 128) -> dict:
    """Fit the type temperature and bias, the feature temperature, the UNID threshold and the feature
    thresholds on the validation images (n, px, px, 3)."""
    type_logits, feat_logits = [], []
    for s in range(0, len(images), batch_size):
        out = net(images[s:s + batch_size].astype("float32"), training=False)
        type_logits.append(np.asarray(out["cell_type_logits"]))
        feat_logits.append(np.asarray(out["features_logits"]))
    type_logits, feat_logits = np.concatenate(type_logits), np.concatenate(feat_logits)
    allowed = np.stack(frame["type_target"].values)
    feats = np.stack(frame["feature_target"].values)
    t_only = fit_type_temperature(type_logits, allowed)
    t_type, bias = fit_type_calibration(type_logits, allowed, t_only)
    t_feat = fit_feature_temperature(feat_logits, feats)
    single = allowed.sum(1) == 1
    probs = softmax(type_logits[single] / t_type + bias, axis=1)
    correct = allowed[single][np.arange(single.sum()), probs.argmax(1)] > 0
    from core.taxonomy import load_taxonomy
    feature_probs = expit(feat_logits / t_feat)
    return {"type_temperature": t_type, "type_bias": [round(float(v), 6) for v in bias],
            "type_nll_validation": {"temperature_only": _partial_label_nll(type_logits / t_only, allowed),
                                    "temperature_and_bias": _partial_label_nll(type_logits / t_type + bias, allowed)},
            "feature_temperature": t_feat,
            "unid_threshold": choose_unid_threshold(probs.max(1), correct),
            "unid_rule": f"lowest confidence keeping >= {TARGET_ACCURACY:.0%} accuracy on validation, "
                         f"at most {MAX_UNID_RATE:.0%} UNID",
            "feature_thresholds": choose_feature_thresholds(feature_probs, feats, load_taxonomy().feature_ids),
            "feature_threshold_rule": f">= {FEATURE_SPECIFICITY:.0%} of negative validation cells below it; "
                                      f"validated when AUC >= {MIN_FEATURE_AUC} and sensitivity >= {MIN_FEATURE_SENSITIVITY}",
            "n_validation": int(len(images))}
