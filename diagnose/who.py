"""The WHO view of one smear from the stage-1 output, shown beside the XGBoost call.

- Per myeloid lineage: the expected percentage of its cells showing at least one WHO dysplasia
  feature (``dysplasia: true`` in the taxonomy), flagged at >= 10 %. For cell i of type t the
  probability of being dysplastic is 1 - prod over the dysplasia features f of t of (1 - P_i(f))
  (features treated as independent); the lineage's percentage is the sum over its cells and types
  of P_i(t) times that, divided by the expected number of its cells.
- Blasts: expected blasts over expected leukocytes, against the WHO 2022 bands.
- Drivers: the features with the largest expected number of dysplastic cells in each lineage.
Thresholds live in ``who2022.yaml``.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

from models.taxonomy import load_taxonomy


@lru_cache(maxsize=1)
def who_rules() -> dict:
    return yaml.safe_load(resources.files("diagnose").joinpath("who2022.yaml").read_text("utf-8"))


def who_view(type_probs: np.ndarray, feature_probs: np.ndarray, top_drivers: int = 3) -> dict:
    """The WHO summary of one smear: ``{"lineages": {...}, "blasts": {...}}`` (JSON-ready)."""
    tax, rules = load_taxonomy(), who_rules()
    lineages = {}
    for lineage, types in rules["lineage_types"].items():
        expected_cells, expected_dysplastic, drivers = 0.0, 0.0, {}
        for t in types:
            w = type_probs[:, tax.type_index(t)] if len(type_probs) else np.zeros(0)
            expected_cells += float(w.sum())
            feats = [j for j, f in enumerate(tax.features) if f.dysplasia and t in f.cell_types
                     and len(feature_probs) and not np.isnan(feature_probs[:, j]).all()]
            if not feats:
                continue
            p = np.nan_to_num(feature_probs[:, feats])
            expected_dysplastic += float((w * (1 - np.prod(1 - p, axis=1))).sum())
            for k, j in enumerate(feats):
                drivers[tax.features[j].name] = drivers.get(tax.features[j].name, 0.0) + float((w * p[:, k]).sum())
        assessable = expected_cells >= rules["min_lineage_cells"]
        share = expected_dysplastic / expected_cells if expected_cells > 0 else None
        top = sorted(drivers.items(), key=lambda kv: -kv[1])[:top_drivers]
        lineages[lineage] = {
            "expected_cells": round(expected_cells, 1),
            "dysplastic_percent": None if share is None else round(100 * share, 1),
            "flag": bool(assessable and share is not None and share >= rules["dysplasia_threshold"]),
            "assessable": bool(assessable),
            "drivers": [{"feature": name, "expected_cells": round(v, 1)} for name, v in top if v >= 0.05],
        }
    leuk = [tax.type_index(t) for t in rules["leukocyte_types"]]
    n_leuk = float(type_probs[:, leuk].sum()) if len(type_probs) else 0.0
    n_blast = float(type_probs[:, tax.type_index("BL")].sum()) if len(type_probs) else 0.0
    share = n_blast / n_leuk if n_leuk > 0 else None
    band = next((b for b in rules["blast_bands"] if share is not None and share < b["upper"]), None)
    return {"lineages": lineages,
            "blasts": {"expected_blasts": round(n_blast, 1), "expected_leukocytes": round(n_leuk, 1),
                       "percent": None if share is None else round(100 * share, 1),
                       "band": band["label"] if band else None, "note": band["note"] if band else None},
            "basis": "peripheral-blood estimate of the WHO 2022 bone-marrow rule (>= 10 % dysplastic cells per lineage)"}
