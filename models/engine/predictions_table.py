"""The per-cell predictions table written by ``mdsdx cells classify`` and read back by the diagnosis.

Columns: ``path,cell_type,confidence``, then ``p_<abbr>`` for the 17 types, then ``f_<feature id>``
for the 97 features (empty where a feature had no training label).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.taxonomy import load_taxonomy


def type_columns() -> list[str]:
    return [f"p_{a}" for a in load_taxonomy().type_abbrs]


def feature_columns() -> list[str]:
    return [f"f_{f}" for f in load_taxonomy().feature_ids]


def predictions_frame(paths: list[str], predictions) -> pd.DataFrame:
    """One row per decoded cell; ``paths`` are the decoded inputs in order."""
    frame = pd.DataFrame({"path": paths, "cell_type": predictions.cell_type,
                          "confidence": np.round(predictions.confidence, 5)})
    types = pd.DataFrame(np.round(predictions.type_probs, 5), columns=type_columns())
    feats = pd.DataFrame(np.round(predictions.feature_probs, 5), columns=feature_columns())
    return pd.concat([frame, types, feats], axis=1)
