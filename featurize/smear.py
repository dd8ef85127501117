"""The 114 parameters of one smear: 17 cell-type proportions and 97 feature rates.

Definitions (n = the number of imaged objects of the smear; P_i(t) the calibrated probability that
object i is of type t; P_i(f) the probability that it shows feature f), all from expected counts,
so an uncertain cell contributes to each type in proportion to its probability:

- **Type proportion** ``type_<ABBR>`` = sum_i P_i(t) / n. The denominator is every object the
  analyser imaged for the slide (white cells, erythroblasts, platelets, smudges, artifacts), as in
  the DI-60 differential, so the 17 proportions sum to 1. An absent type gives 0.
- **Feature rate** ``feat_<id>`` = sum_i P_i(T_f) P_i(f) / sum_i P_i(T_f), where T_f is the set of
  cell types the feature applies to (``cell_types`` in ``core/taxonomy.yaml``) and
  P_i(T_f) = sum over t in T_f of P_i(t): the expected share of the feature's own cells that show it.
  When the expected number of such cells is below ``min_expected_cells`` (0.5 by default), the
  type is absent and the rate is **missing** (NaN), which XGBoost routes by its learned default
  direction. A feature the model had no training label for is missing too.

A smear with fewer than ``min_usable_cells`` (50) usable cells (confident calls, not smudge or
artifact) gets a warning in its result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from core.taxonomy import load_taxonomy

NOT_USABLE_TYPES = ("SMU", "ART")


def usable_cells(cell_calls: np.ndarray) -> np.ndarray:
    """(n,) bool: confident calls (not UNID) that are not smudge or artifact."""
    calls = np.asarray(cell_calls)
    return (calls != "UNID") & ~np.isin(calls, NOT_USABLE_TYPES)


@lru_cache(maxsize=1)
def feature_type_matrix() -> np.ndarray:
    """(17, 97) float: 1 where the feature (column) applies to the cell type (row)."""
    tax = load_taxonomy()
    out = np.zeros((len(tax.cell_types), len(tax.features)))
    for j, f in enumerate(tax.features):
        out[[tax.type_index(t) for t in f.cell_types], j] = 1.0
    return out


@lru_cache(maxsize=1)
def _parameter_ids() -> tuple[str, ...]:
    tax = load_taxonomy()
    return tuple([f"type_{a}" for a in tax.type_abbrs] + [f"feat_{f}" for f in tax.feature_ids])


def parameter_ids() -> list[str]:
    """Machine column names, in order: 17 ``type_<ABBR>`` then 97 ``feat_<id>``."""
    return list(_parameter_ids())


def parameter_names() -> dict[str, str]:
    """Readable names: ``proportion: segmented neutrophil``, ``neutrophil: degranulation``."""
    tax = load_taxonomy()
    names = {f"type_{t.abbr}": f"proportion: {t.name.lower()}" for t in tax.cell_types}
    names.update({f"feat_{f.id}": f.name for f in tax.features})
    return names


@dataclass
class SmearFeatures:
    """The 114 parameters of one smear (``values``, indexed by :func:`parameter_ids`) and its counts."""
    values: pd.Series
    n_cells: int
    n_usable: int
    expected_type_counts: pd.Series
    warnings: list[str] = field(default_factory=list)


def featurize_smear(type_probs: np.ndarray, feature_probs: np.ndarray, usable: np.ndarray | None = None,
                    min_expected_cells: float = 0.5, min_usable_cells: int = 50) -> SmearFeatures:
    """Parameters of one smear from ``type_probs`` (n, 17) and ``feature_probs`` (n, 97; NaN = no label).

    ``usable`` (n,) bool marks confident, usable calls; by default every object whose top type is
    not smudge or artifact.
    """
    tax = load_taxonomy()
    n = len(type_probs)
    if usable is None:
        top = np.array(tax.type_abbrs)[type_probs.argmax(1)] if n else np.array([])
        usable = ~np.isin(top, NOT_USABLE_TYPES)
    expected = type_probs.sum(0) if n else np.zeros(len(tax.cell_types))
    proportions = expected / n if n else np.full(len(tax.cell_types), np.nan)
    rates = np.full(len(tax.features), np.nan)
    if n:
        weight = type_probs @ feature_type_matrix()           # (n, 97): P_i(T_f)
        denominator = weight.sum(0)
        known = ~np.isnan(feature_probs).all(0)
        numerator = (weight * np.nan_to_num(feature_probs)).sum(0)
        ok = (denominator >= min_expected_cells) & known
        rates[ok] = numerator[ok] / denominator[ok]
    warnings = []
    n_usable = int(np.asarray(usable).sum())
    if n_usable < min_usable_cells:
        warnings.append(f"only {n_usable} usable cells (< {min_usable_cells}); the parameters are unreliable")
    values = pd.Series(np.concatenate([proportions, rates]), index=parameter_ids(), dtype=float)
    counts = pd.Series(expected, index=tax.type_abbrs, dtype=float)
    return SmearFeatures(values=values, n_cells=n, n_usable=n_usable, expected_type_counts=counts, warnings=warnings)


class SmearFeaturizer:
    """scikit-learn style transformer: a list of per-smear predictions -> a (n_smears, 114) frame."""

    def __init__(self, min_expected_cells: float = 0.5, min_usable_cells: int = 50):
        self.min_expected_cells = min_expected_cells
        self.min_usable_cells = min_usable_cells

    def fit(self, smears=None, y=None) -> "SmearFeaturizer":
        self.feature_names_ = parameter_ids()
        return self

    def transform(self, smears) -> pd.DataFrame:
        """``smears``: iterable of objects with ``type_probs`` and ``feature_probs`` (CellPredictions)."""
        rows = [featurize_smear(s.type_probs, s.feature_probs, min_expected_cells=self.min_expected_cells,
                                min_usable_cells=self.min_usable_cells).values for s in smears]
        return pd.DataFrame(rows, columns=parameter_ids()).reset_index(drop=True)
