"""Metric definitions shared by the stage-1 evaluation (sklearn.metrics where it has them).

Kimura et al. 2019 report per-type sensitivity and specificity one-vs-rest (Table 2) and per-feature
sensitivity, specificity and AUC (Table 3); we keep their definitions.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score


def exact_ci95(k: int, n: int) -> list[float]:
    """Clopper-Pearson 95 % interval of the proportion k / n; NaNs when n is 0."""
    from scipy.stats import binomtest
    if not n:
        return [float("nan"), float("nan")]
    ci = binomtest(int(k), int(n)).proportion_ci(0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def one_vs_rest(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> list[dict]:
    """Per label: n, sensitivity TP/(TP+FN), specificity TN/(TN+FP), with predictions as given."""
    rows = []
    for label in labels:
        t, p = y_true == label, y_pred == label
        tp, fn = int((t & p).sum()), int((t & ~p).sum())
        tn, fp = int((~t & ~p).sum()), int((~t & p).sum())
        rows.append({"label": label, "n": int(t.sum()),
                     "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
                     "specificity": tn / (tn + fp) if tn + fp else float("nan")})
    return rows


def macro_sensitivity_ci95(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], seed: int = 0,
                           n_resamples: int = 10_000) -> list[float]:
    """95 % percentile-bootstrap interval of the macro sensitivity over ``labels`` (the mean of their
    one-vs-rest sensitivities). Each label's crops are resampled on their own, as each sensitivity
    depends only on them; labels with no crop are left out, as the macro mean leaves them out."""
    from scipy.stats import bootstrap
    hits = [(y_pred[y_true == label] == label).astype(float) for label in labels if (y_true == label).any()]
    if not hits or min(len(h) for h in hits) < 2:  # a label with one crop has no spread to resample
        return [float("nan"), float("nan")]
    ci = bootstrap(hits, lambda *h, axis=-1: np.mean([x.mean(axis=axis) for x in h], axis=0), n_resamples=n_resamples,
                   method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
    return [float(ci.low), float(ci.high)]


def binary_scores(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict:
    """Sensitivity, specificity and ROC AUC of a score against 0/1 labels."""
    y_true = y_true.astype(bool)
    pred = score >= threshold
    tp, fn = int((y_true & pred).sum()), int((y_true & ~pred).sum())
    tn, fp = int((~y_true & ~pred).sum()), int((~y_true & pred).sum())
    auc = roc_auc_score(y_true, score) if 0 < y_true.sum() < len(y_true) else float("nan")
    return {"n_positive": int(y_true.sum()), "n_negative": int((~y_true).sum()),
            "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
            "specificity": tn / (tn + fp) if tn + fp else float("nan"), "auc": float(auc)}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE (Guo et al. 2017): sum over equal-width confidence bins of
    |accuracy - mean confidence| weighted by the bin's share of samples."""
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def normalised_confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> np.ndarray:
    """Row-normalised confusion matrix (rows true, columns predicted)."""
    cm = confusion_matrix(y_true, y_pred, labels=labels).astype(float)
    return cm / np.maximum(cm.sum(1, keepdims=True), 1)
