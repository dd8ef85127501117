"""The WHO view of one smear from the stage-1 output, shown beside the XGBoost call.

- Per myeloid lineage: the expected percentage of its cells showing at least one WHO dysplasia
  feature (``dysplasia: true`` in the taxonomy), flagged at >= 10 %. Only features whose detector
  was validated on held-out cells (``feature_thresholds`` in the stage-1 calibration, see
  ``models.engine.calibrate``) take part: cell i counts as dysplastic when, for a validated feature f of
  its type, P_i(f) reaches f's threshold. The lineage's percentage is
  sum_i P_i(lineage types) * dysplastic_i / sum_i P_i(lineage types). Combining unvalidated
  probabilities as 1 - prod(1 - p) was tried first and read 29-56 % granulocytic dysplasia in
  simulated AA smears, from weak detectors' false positives.
- A lineage is not assessable with fewer than ``min_lineage_cells`` expected cells or with no
  validated detector; the features that could not be assessed are listed.
- Blasts: expected blasts over expected leukocytes, against the WHO 2022 bands.
- Drivers: the validated features flagging the most cells in each lineage.
Thresholds live in ``who2022.yaml``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from core.package_yaml import package_yaml
from core.taxonomy import load_taxonomy


@lru_cache(maxsize=1)
def who_rules() -> dict:
    return package_yaml("diagnose", "who2022.yaml")


def dysplastic_cells(cell_calls: np.ndarray, feature_probs: np.ndarray, feature_thresholds: dict) -> dict[str, np.ndarray]:
    """Per validated dysplasia feature id, the (n,) bool of cells whose call is one of the feature's
    types and whose probability reaches its validated threshold."""
    tax = load_taxonomy()
    out = {}
    for j, f in enumerate(tax.features):
        rule = feature_thresholds.get(f.id)
        if not f.dysplasia or not rule or not rule.get("validated") or not len(feature_probs):
            continue
        p = feature_probs[:, j]
        out[f.id] = np.isin(cell_calls, list(f.cell_types)) & ~np.isnan(p) & (np.nan_to_num(p) >= rule["threshold"])
    return out


def who_view(type_probs: np.ndarray, feature_probs: np.ndarray, feature_thresholds: dict | None = None,
             top_drivers: int = 3) -> dict:
    """The WHO summary of one smear: ``{"lineages": {...}, "blasts": {...}}`` (JSON-ready).

    ``type_probs`` (n, 17) and ``feature_probs`` (n, 97) are the calibrated stage-1 outputs;
    ``feature_thresholds`` the model's validated thresholds (none: dysplasia not assessable).
    """
    tax, rules = load_taxonomy(), who_rules()
    thresholds = feature_thresholds or {}
    n = len(type_probs)
    top_type = np.array(tax.type_abbrs)[type_probs.argmax(1)] if n else np.array([])
    # a cell is judged against the features of the type it is most likely to be
    flags_by_id = dysplastic_cells(top_type, feature_probs, thresholds)
    lineages = {}
    for lineage, types in rules["lineage_types"].items():
        idx = [tax.type_index(t) for t in types]
        w = type_probs[:, idx].sum(1) if n else np.zeros(0)
        expected_cells = float(w.sum())
        candidates = [f for f in tax.features if f.dysplasia and set(f.cell_types) & set(types)]
        validated = [f for f in candidates if f.id in flags_by_id]
        flags = {f.name: flags_by_id[f.id] for f in validated}
        any_flag = np.any(np.stack(list(flags.values())), axis=0) if flags else np.zeros(n, bool)
        assessable = expected_cells >= rules["min_lineage_cells"] and bool(validated)
        share = float((w * any_flag).sum() / expected_cells) if expected_cells > 0 and validated else None
        drivers = sorted(((name, float((w * m).sum())) for name, m in flags.items()), key=lambda kv: -kv[1])
        lineages[lineage] = {
            "expected_cells": round(expected_cells, 1),
            "dysplastic_percent": None if share is None else round(100 * share, 1),
            "flag": bool(assessable and share is not None and share >= rules["dysplasia_threshold"]),
            "assessable": bool(assessable),
            "features_assessed": [f.name for f in validated],
            "features_not_assessed": [f.name for f in candidates if f not in validated],
            "drivers": [{"feature": name, "expected_cells": round(v, 1)} for name, v in drivers[:top_drivers] if v >= 0.05],
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
