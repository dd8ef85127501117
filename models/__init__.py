"""Stage-1 cell models and the foundations they stand on.

- ``taxonomy``: the 17 cell types and 97 dysmorphic features (data in ``taxonomy.yaml``).
- ``datasets``: loaders for the real crops in ``../shared/data`` and the split API.
- ``preprocess``: image decoding and antialiased resizing shared by training and inference.
- ``cellnet``: the Kimura Fig. 5 network builder; ``train`` / ``infer`` run it.
- ``akira``: the Mori et al. 2020 decreased-granules regressor.
"""
