"""The 34 AKIRA outputs loaded from ``labels.yaml``: ids, categories and maxval."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.package_yaml import package_yaml


@dataclass(frozen=True)
class AkiraLabels:
    ids: tuple[str, ...]
    names: tuple[str, ...]
    categories: tuple[str, ...]          # category of each output
    maxval: np.ndarray                   # (34,) float32
    category_names: tuple[str, ...]
    focus: str
    focus_weight: float
    sources: dict
    taxonomy: dict                       # output id -> taxonomy feature id (graded slots)

    @property
    def focus_index(self) -> int:
        return self.ids.index(self.focus)

    def index(self, label_id: str) -> int:
        return self.ids.index(label_id)

    def category_mask(self, category: str) -> np.ndarray:
        return np.array([c == category for c in self.categories])

    def loss_weights(self) -> np.ndarray:
        """w = 1 everywhere and ``focus_weight`` on the focus output (DG)."""
        w = np.ones(len(self.ids), np.float32)
        w[self.focus_index] = self.focus_weight
        return w


@lru_cache(maxsize=1)
def load_labels() -> AkiraLabels:
    raw = package_yaml("core", "akira_labels.yaml")
    ids, names, cats, maxval, taxonomy = [], [], [], [], {}
    for category, items in raw["categories"].items():
        for item in items:
            ids.append(item["id"])
            names.append(item["name"])
            cats.append(category)
            maxval.append(float(item["maxval"]))
            if "taxonomy" in item:
                taxonomy[item["id"]] = item["taxonomy"]
    return AkiraLabels(tuple(ids), tuple(names), tuple(cats), np.array(maxval, np.float32),
                       tuple(raw["categories"]), raw["focus"], float(raw["focus_weight"]), raw["sources"], taxonomy)
