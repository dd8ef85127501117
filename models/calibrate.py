"""Temperature scaling and the UNID threshold, fitted on the validation split.

- ``type_temperature`` T minimises the validation NLL of softmax(logits / T) (Guo et al. 2017).
- ``feature_temperature`` likewise for the sigmoid features, over known labels only.
- ``unid_threshold``: the lowest calibrated top-1 confidence at which the validation cells kept
  are at least ``target_accuracy`` correct, capped so that at most ``max_unid_rate`` of them are
  routed to UNID (as CellaVision routes doubtful cells to "Unidentified").
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

TARGET_ACCURACY = 0.99
MAX_UNID_RATE = 0.05


def fit_type_temperature(logits: np.ndarray, allowed: np.ndarray) -> float:
    def nll(log_t):
        lp = log_softmax(logits / np.exp(log_t), axis=1)
        return -np.log(np.maximum((np.exp(lp) * allowed).sum(1), 1e-12)).mean()
    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


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


def calibrate(net, images: np.ndarray, frame: pd.DataFrame, batch_size: int = 128) -> dict:
    """Fit both temperatures and the UNID threshold on the validation images (n, px, px, 3)."""
    type_logits, feat_logits = [], []
    for s in range(0, len(images), batch_size):
        out = net(images[s:s + batch_size].astype("float32"), training=False)
        type_logits.append(np.asarray(out["cell_type_logits"]))
        feat_logits.append(np.asarray(out["features_logits"]))
    type_logits, feat_logits = np.concatenate(type_logits), np.concatenate(feat_logits)
    allowed = np.stack(frame["type_target"].values)
    feats = np.stack(frame["feature_target"].values)
    t_type = fit_type_temperature(type_logits, allowed)
    t_feat = fit_feature_temperature(feat_logits, feats)
    single = allowed.sum(1) == 1
    probs = softmax(type_logits[single] / t_type, axis=1)
    correct = allowed[single][np.arange(single.sum()), probs.argmax(1)] > 0
    return {"type_temperature": t_type, "feature_temperature": t_feat,
            "unid_threshold": choose_unid_threshold(probs.max(1), correct),
            "unid_rule": f"lowest confidence keeping >= {TARGET_ACCURACY:.0%} accuracy on validation, "
                         f"at most {MAX_UNID_RATE:.0%} UNID", "n_validation": int(len(images))}
