"""Start a wider cell network from a trained narrower one, computing the same function.

Net2Net (Chen et al. 2016) in its zero-fan-out form, for :func:`models.architecture.cellnet.build_cellnet` with a
larger ``width``, ``middle_width`` or ``exit_width`` and the same ``middle_blocks``: each weight tensor
of the donor is copied into the leading slice of the new one. A new channel keeps its fresh random
incoming weights, but the weights that carry it into the layers that follow are zero (the
input-channel axis of a convolution, pointwise or dense kernel), so the old channels, and so every
output, are unchanged. Those zero weights still receive gradients, so fine-tuning can use the new
channels at once. The grown network matches the donor in inference mode up to float rounding.
"""
from __future__ import annotations

import numpy as np

# The axis of each kernel that indexes the layer's input channels.
_INPUT_AXIS = {"Conv2D": 2, "SeparableConv2D": 2, "Dense": 0}


def _grown(new: np.ndarray, old: np.ndarray, input_axis: int | None) -> np.ndarray:
    if new.ndim != old.ndim or any(o > n for o, n in zip(old.shape, new.shape)):
        raise ValueError(f"a {old.shape} tensor does not fit into {new.shape}")
    out = new.copy()
    if input_axis is not None and old.shape[input_axis] < new.shape[input_axis]:
        extra = [slice(None)] * new.ndim
        extra[input_axis] = slice(old.shape[input_axis], None)
        out[tuple(extra)] = 0.0
    out[tuple(slice(0, s) for s in old.shape)] = old
    return out


def _downstream_blocks(model) -> int:
    return sum(layer.name.endswith("_sepconv3") for layer in model.layers)


def grow_weights(donor, net) -> dict[str, int]:
    """Fill ``net`` (a :func:`build_cellnet` model at least as wide as ``donor``, with as many
    downstream blocks) from ``donor``.

    Returns counts: ``copied`` layers of equal shapes and ``grown`` layers embedded into larger
    tensors. Raises ``ValueError`` when a layer with weights has no counterpart in the donor or a
    donor tensor is larger than its counterpart.
    """
    if _downstream_blocks(donor) != _downstream_blocks(net):
        # the exit block is named after the block count, so it would meet a downstream block of the other
        raise ValueError(f"the donor has {_downstream_blocks(donor)} downstream blocks and this network "
                         f"{_downstream_blocks(net)}; growth only widens")
    by_name = {layer.name: layer for layer in donor.layers}
    counts = {"copied": 0, "grown": 0}
    for layer in net.layers:
        if not layer.weights:
            continue
        source = by_name.get(layer.name)
        if source is None or len(source.weights) != len(layer.weights):
            raise ValueError(f"layer {layer.name} has no counterpart in the donor model")
        old, new = source.get_weights(), layer.get_weights()
        if all(o.shape == n.shape for o, n in zip(old, new)):
            layer.set_weights(old)
            counts["copied"] += 1
            continue
        kind = type(layer).__name__
        axes = []
        for i in range(len(new)):
            # SeparableConv2D holds (depthwise, pointwise): only the pointwise kernel mixes channels
            mixes = kind in _INPUT_AXIS and not (kind == "SeparableConv2D" and i == 0) and new[i].ndim > 1
            axes.append(_INPUT_AXIS[kind] if mixes else None)
        layer.set_weights([_grown(n, o, a) for n, o, a in zip(new, old, axes)])
        counts["grown"] += 1
    return counts
