"""The evaluation metrics of Mori et al. 2020, with DG1-3 as positive.

sensitivity = TP / positive labels; specificity = TN / negative labels; PPV = TP / positive
predictions; NPV = TN / negative predictions; accuracy = (TP + TN) / all. From the paper's
Table 2 these give 91.0 / 97.7 / 76.3 / 99.3 / 97.2 %. Each rate comes with its exact
(Clopper-Pearson) 95 % interval in ``ci95``: 26 false positives among 1,025 negatives is a
specificity of 97.5 % (96.3-98.3 %), so a CV of this size cannot tell 97.5 % from 97.7 %.

DG2-3 analysis (the paper's second set of figures): DG1 labels are excluded and each DG1
prediction is reassigned to DG0 or DG2 by its continuous score (below 1.0 -> DG0). That needs the
scores; from a confusion matrix alone only the bounds (every DG1 prediction negative, or every one
positive) can be given.
"""
from __future__ import annotations

import numpy as np

from core.metrics import exact_ci95


def _rates(tp: float, fp: float, tn: float, fn: float) -> dict:
    div = lambda a, b: float(a / b) if b else float("nan")
    counts = {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp),
              "npv": (tn, tn + fn), "accuracy": (tp + tn, tp + tn + fp + fn)}
    out = {name: div(k, n) for name, (k, n) in counts.items()}
    out.update({"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn),
                "ci95": {name: exact_ci95(k, n) for name, (k, n) in counts.items()}})
    return out


def metrics_from_confusion(confusion) -> dict:
    """Metrics from a 4x4 confusion matrix (rows true DG0-3, columns predicted DG0-3)."""
    cm = np.asarray(confusion, dtype=float)
    if cm.shape != (4, 4) or (cm < 0).any():
        raise ValueError(f"expected a 4x4 matrix of non-negative counts, got shape {cm.shape}")
    tp, fn = cm[1:, 1:].sum(), cm[1:, 0].sum()
    fp, tn = cm[0, 1:].sum(), cm[0, 0]
    i, j = np.indices(cm.shape)
    far = np.abs(i - j) >= 2
    out = {"dg1_3": _rates(tp, fp, tn, fn),
           "errors_two_or_more_grades": int(cm[far].sum()),
           "false_negatives_two_or_more": int(cm[far & (i > j)].sum()),
           "false_positives_two_or_more": int(cm[far & (i < j)].sum()),
           "confusion": cm.astype(int).tolist()}
    keep = cm[[0, 2, 3]]  # DG1 labels excluded
    lower = _rates(tp=keep[1:, 2:].sum(), fp=keep[0, 2:].sum(), tn=keep[0, :2].sum(), fn=keep[1:, :2].sum())
    upper = _rates(tp=keep[1:, 1:].sum(), fp=keep[0, 1:].sum(), tn=keep[0, 0], fn=keep[1:, 0].sum())
    out["dg2_3_bounds"] = {"dg1_predictions_negative": lower, "dg1_predictions_positive": upper,
                           "note": "the exact DG2-3 figures need the continuous scores"}
    return out


def grades_from_scores(scores: np.ndarray) -> np.ndarray:
    """Round the continuous DG score to the grade 0-3."""
    return np.clip(np.rint(np.asarray(scores, dtype=float)), 0, 3).astype(int)


def metrics_from_scores(true_grades, scores) -> dict:
    """Every metric, the AUCs on the continuous score and the exact DG2-3 analysis."""
    from sklearn.metrics import confusion_matrix, roc_auc_score
    y = np.asarray(true_grades, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = grades_from_scores(s)
    out = metrics_from_confusion(confusion_matrix(y, pred, labels=[0, 1, 2, 3]))
    positive = y >= 1
    out["dg1_3"]["auc"] = float(roc_auc_score(positive, s)) if 0 < positive.sum() < len(y) else float("nan")
    keep = y != 1
    y23, s23, p23 = y[keep], s[keep], pred[keep].copy()
    p23[p23 == 1] = np.where(s23[p23 == 1] < 1.0, 0, 2)
    pos23 = y23 >= 2
    pred_pos = p23 >= 2
    out["dg2_3"] = _rates(tp=(pos23 & pred_pos).sum(), fp=(~pos23 & pred_pos).sum(), tn=(~pos23 & ~pred_pos).sum(),
                          fn=(pos23 & ~pred_pos).sum())
    out["dg2_3"]["auc"] = float(roc_auc_score(pos23, s23)) if 0 < pos23.sum() < len(y23) else float("nan")
    out.pop("dg2_3_bounds")
    return out


def rates_by_group(true_grades, scores, groups) -> dict:
    """DG1-3 rates per group of cells (for example the source folder of each crop), so that a weak
    subgroup is not hidden in the pooled figure: ``{group: {"n", "negatives", "positives", ...rates}}``."""
    y = np.asarray(true_grades, dtype=int) >= 1
    pred = grades_from_scores(scores) >= 1
    g = np.asarray(groups)
    out = {}
    for name in sorted(set(g.tolist())):
        m = g == name
        rates = _rates(tp=(y & pred & m).sum(), fp=(~y & pred & m).sum(), tn=(~y & ~pred & m).sum(),
                       fn=(y & ~pred & m).sum())
        out[str(name)] = {"n": int(m.sum()), "negatives": int((~y & m).sum()), "positives": int((y & m).sum()), **rates}
    return out
