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
    frame = pd.DataFrame({"path": [paths[i] for i in kept], "cell_type": predictions.cell_type,
                          "confidence": np.round(predictions.confidence, 5)})
    types = pd.DataFrame(np.round(predictions.type_probs, 5), columns=type_columns())
    feats = pd.DataFrame(np.round(predictions.feature_probs, 5), columns=feature_columns())
    ok = pd.concat([frame, types, feats], axis=1).assign(status="ok", message="", order=kept)
    skipped = pd.DataFrame({"path": [paths[i] for i in failed], "status": "skipped",
                            "message": list(failed.values()), "order": list(failed)})
    return pd.concat([ok, skipped.reindex(columns=ok.columns)] if failed else [ok], ignore_index=True) \
        .sort_values("order", kind="stable").drop(columns="order").reset_index(drop=True)
