"""AKIRA (Mori et al. 2020): the bone-marrow decreased-granules (DG 0-3) regressor.

The regressor itself (paper-faithful ResNet-152 config and the default compact config) is built by
:mod:`models.architecture.akira`; its saved folder is read by :mod:`models.export.akira_artifact`.

- ``loss``, ``augment``: the weighted mean quartic loss and the per-epoch augmentation.
- ``data``: reading the label table (written by :mod:`simulate.label_table`); oversampling.
- ``train``: fitting and 5-fold cross-validation; ``infer``: 16-rotation inference and gating.
- ``metrics``: the paper's metrics from a 4x4 DG confusion matrix.

The 34 outputs, their categories and maxval are in :mod:`core.akira_labels`.
"""
