"""Engines: run the networks over data.

Stage-1 network: ``train`` (fitting), ``infer`` (``CellPredictor``), ``evaluate`` (held-out tables),
``calibrate`` (temperatures, UNID threshold, feature thresholds), ``soup`` (weight averages),
``grow`` (Net2Net widening), ``attribute_head`` (the WBCAtt head on frozen embeddings) and
``predictions_table`` (per-cell CSV). ``akira``: the same for the decreased-granules regressor.
"""
