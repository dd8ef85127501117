"""AKIRA (Mori et al. 2020): the bone-marrow decreased-granules (DG 0-3) regressor.

- ``labels``: the 34 outputs, their categories and maxval (``labels.yaml``).
- ``net``: the regressor (paper-faithful ResNet-152 config and the default compact config).
- ``loss``, ``augment``: the weighted mean quartic loss and the per-epoch augmentation.
- ``data``: the label table built from the real crops and the simulator; oversampling.
- ``train``: fitting and 5-fold cross-validation; ``infer``: 16-rotation inference and gating.
- ``metrics``: the paper's metrics from a 4x4 DG confusion matrix.
"""
