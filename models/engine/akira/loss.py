"""The weighted mean quartic loss of Mori et al. 2020: mean(w * (y_pred - y_true) ** 4) over the
batch and all 34 outputs, w = 1 everywhere and 10 on DG. A plain mean, not divided by sum(w)."""
from __future__ import annotations

from keras import ops


def weighted_mean_quartic(y_true, y_pred, weights):
    """``y_true``, ``y_pred`` (batch, 34); ``weights`` (34,)."""
    diff = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
    return ops.mean(ops.convert_to_tensor(weights, "float32") * diff ** 4)
