"""Losses of the stage-1 network. Unknown labels are masked, never read as negatives.

All take logits. Shapes: ``allowed`` (batch, 17) 0/1; feature targets (batch, 97) in {1, 0, -1};
attribute targets (batch, 11) int with -1 for unknown.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mdsdx")
def partial_label_crossentropy(allowed, logits):
    """-log of the probability mass on the allowed types: plain cross-entropy for one allowed
    type, and for a partial label (an unsubtyped immature granulocyte) the mass on its set."""
    allowed = ops.cast(allowed, logits.dtype)
    masked = ops.where(allowed > 0, logits, ops.full_like(logits, -1e9))
    return ops.logsumexp(logits, axis=-1) - ops.logsumexp(masked, axis=-1)


@keras.saving.register_keras_serializable(package="mdsdx")
def masked_binary_crossentropy(targets, logits):
    """Mean binary cross-entropy over the known labels of each sample (0 when none is known)."""
    targets = ops.cast(targets, logits.dtype)
    known = ops.cast(targets >= 0, logits.dtype)
    y = ops.clip(targets, 0.0, 1.0)
    bce = ops.maximum(logits, 0) - logits * y + ops.log1p(ops.exp(-ops.abs(logits)))
    return ops.sum(bce * known, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)


def make_grouped_crossentropy(group_sizes: list[int]):
    """Sum over attribute groups of the softmax cross-entropy of each known attribute."""
    bounds = [0]
    for size in group_sizes:
        bounds.append(bounds[-1] + size)

    @keras.saving.register_keras_serializable(package="mdsdx")
    def grouped_crossentropy(targets, logits):
        targets = ops.cast(targets, "int32")
        total = ops.zeros_like(logits[:, 0])
        for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            t = targets[:, j]
            known = ops.cast(t >= 0, logits.dtype)
            group = logits[:, lo:hi]
            picked = ops.take_along_axis(group, ops.expand_dims(ops.maximum(t, 0), -1), axis=-1)[:, 0]
            total = total + known * (ops.logsumexp(group, axis=-1) - picked)
        return total / len(group_sizes)

    return grouped_crossentropy
