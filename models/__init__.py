"""The stage-1 cell network and the AKIRA decreased-granules regressor, and the engines that run them.

- ``cellnet``: the Kimura Fig. 5 network builder; ``train`` / ``infer`` run it.
- ``akira``: the Mori et al. 2020 decreased-granules regressor.

The foundations (taxonomy, datasets, preprocessing, errors, metrics) are in :mod:`core`. This package
never imports the simulator: training and evaluation take simulated cells as a frame that the CLI
makes (:func:`simulate.training_set.read_training_set`).
"""
