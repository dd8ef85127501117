"""The foundations every other package stands on; this package imports none of them.

- ``errors``: the domain exceptions (one module, one base class ``MdsdxError``).
- ``taxonomy``: the 17 cell types and 97 dysmorphic features (data in ``taxonomy.yaml``).
- ``akira_labels``: the 34 outputs of the AKIRA regressor (data in ``akira_labels.yaml``).
- ``datasets``: loaders for the real crops in ``../shared/data`` and the split API (``sources.yaml``).
- ``preprocess``: image decoding and antialiased resizing shared by training and inference.
- ``metrics``: sensitivity, specificity, AUC, calibration error and exact intervals.
- ``package_yaml``: reads a YAML file shipped inside a package.
"""
