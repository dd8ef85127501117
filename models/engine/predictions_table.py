"""The per-cell predictions table written by ``mdsdx cells classify`` and read back by the diagnosis.

Columns: ``path,cell_type,confidence``, then ``p_<abbr>`` for the 17 types, then ``f_<feature id>``
for the 97 features (empty where a feature had no training label), then ``status`` (``ok`` or
``skipped``) and ``message`` (why a file was skipped; its other columns are empty).
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
    """One row per input, in input order: ``paths`` are every input, ``predictions.failed`` the
    (index, message) of those that could not be decoded, which get ``status`` skipped and the message."""
    failed = dict(predictions.failed)
    kept = [i for i in range(len(paths)) if i not in failed]
    frame = pd.concat([pd.DataFrame({"cell_type": predictions.cell_type, "confidence": np.round(predictions.confidence, 5)}),
                       pd.DataFrame(np.round(predictions.type_probs, 5), columns=type_columns()),
                       pd.DataFrame(np.round(predictions.feature_probs, 5), columns=feature_columns())], axis=1)
    frame = frame.set_axis(kept).reindex(range(len(paths)))  # skipped inputs: empty prediction columns
    frame.insert(0, "path", paths)
    frame["status"] = ["skipped" if i in failed else "ok" for i in range(len(paths))]
    frame["message"] = [failed.get(i, "") for i in range(len(paths))]
    return frame
