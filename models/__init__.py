"""The stage-1 cell network and the AKIRA decreased-granules regressor, split by role:

- ``architecture``: the network builders (Kimura Fig. 5 ``cellnet``, Mori et al. ``akira``) and losses.
- ``engine``: what runs them over data: training, inference, evaluation, calibration, soups.
- ``export``: saved folders, ONNX / OpenVINO runtimes, quantisation and model cards.

The shipped weights are in ``cellnet/`` and ``akira_compact/``. The foundations (taxonomy, datasets,
preprocessing, errors, metrics) are in :mod:`core`. This package never imports the simulator:
training and evaluation take simulated cells as a frame that the CLI makes
(:func:`simulate.training_set.read_training_set`).
"""
