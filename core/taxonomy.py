"""The 17 cell types and 97 dysmorphic features, loaded from ``taxonomy.yaml``.

The order of ``CELL_TYPES`` and ``FEATURES`` is the order of the network's outputs and of the
featurizer's columns; it never changes for a released model.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.package_yaml import package_yaml

LINEAGES = ("granulocytic", "erythroid", "megakaryocytic-platelet", "lymphoid", "monocytic", "blast")
SOURCES = ("WHO 2022", "ICSH 2015", "CLSI H20-A2", "IWGM-MDS")


@dataclass(frozen=True)
class CellType:
    id: str
    abbr: str
    name: str


@dataclass(frozen=True)
class Feature:
    id: str
    name: str
    cell_types: tuple[str, ...]
    lineage: str
    dysplasia: bool
    source: str
    papers: tuple[str, ...] = ()

    def public(self) -> dict:
        """The fields printed by ``mdsdx taxonomy``."""
        return {"id": self.id, "name": self.name, "cell_types": list(self.cell_types),
                "lineage": self.lineage, "dysplasia": self.dysplasia, "source": self.source}


@dataclass(frozen=True)
class Taxonomy:
    cell_types: tuple[CellType, ...]
    features: tuple[Feature, ...]

    @property
    def type_abbrs(self) -> list[str]:
        return [t.abbr for t in self.cell_types]

    @property
    def feature_ids(self) -> list[str]:
        return [f.id for f in self.features]

    def type_index(self, abbr: str) -> int:
        return self.type_abbrs.index(abbr)

    def feature_index(self, feature_id: str) -> int:
        return self.feature_ids.index(feature_id)

    def feature(self, feature_id: str) -> Feature:
        return self.features[self.feature_index(feature_id)]

    def to_dict(self) -> dict:
        return {"cell_types": [{"id": t.id, "abbr": t.abbr, "name": t.name} for t in self.cell_types],
                "features": [f.public() for f in self.features]}


@lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    """Read ``taxonomy.yaml`` shipped in this package."""
    raw = package_yaml("core", "taxonomy.yaml")
    types = tuple(CellType(**t) for t in raw["cell_types"])
    feats = tuple(
        Feature(id=f["id"], name=f["name"], cell_types=tuple(f["cell_types"]), lineage=f["lineage"],
                dysplasia=bool(f["dysplasia"]), source=f["source"], papers=tuple(f.get("papers", ())))
        for f in raw["features"])
    return Taxonomy(types, feats)
