"""The AKIRA label table: real crops in their categories and simulated dysplasia grades.

Written as ``<out>/images/<name>.jpg`` and ``<out>/labels.csv`` with a ``Filename`` column followed
by the 34 label columns, the form of the authors' reference label file (read back by
:func:`models.engine.akira.data.read_label_table`). DG and the other neutrophil grades are made by the
simulator's transforms on real neutrophils (SIMULATED grades); every other label comes from the
crop's source folder (``core/akira_labels.yaml`` ``sources``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.akira_labels import load_labels
from core.errors import InvalidInput
from simulate.segment import segment_for_source
from simulate.transforms import TRANSFORMS

# The simulator transforms that fill graded granulocytic slots (slot id -> transform name).
SIMULATED_SLOTS = {"DG": "decreased_granules", "HS": "pseudo_pelger", "HYPES": "hypersegmentation",
                   "ACC": "chromatin_clumping"}


# Mori et al. Table 1, final labels, for the label ids the shared crops can fill: cells per id, and for
# the simulated granulocytic dysplasias the cells per grade 1, 2, 3. Red cells, megakaryocytes, plasma
# cells, histiocytes, mitoses, dividing erythroid cells and dysplastic erythroid cells have no source.
TABLE1_CELLS = {"NN": 96, "IG": 440, "NE": 392, "LYM": 78, "EOS": 18, "MON": 24, "BAS": 1, "PLT": 29}
TABLE1_GRADES = {"DG": (46, 77, 11), "HS": (4, 12, 22), "HYPES": (1, 1, 0), "ACC": (47, 17, 1)}


@dataclass(frozen=True)
class LabelTableConfig:
    """How many images of each kind.

    ``mix="balanced"`` (the label tables used so far): ``per_category_source`` crops per source folder,
    ``neutrophils`` neutrophils of which ``dg_share`` get DG 1-3 in equal thirds, larger than the
    paper's share (134 of 1797) so that every fold holds every grade. About 30 % of its DG0 cells are
    neutrophils, the hard negatives. ``mix="table1"``: the counts of Mori's Table 1 (``TABLE1_CELLS``,
    ``TABLE1_GRADES``), each capped by the crops available, so DG0 granulocytes are a smaller share.
    """
    mix: str = "balanced"                # "balanced" or "table1"
    per_category_source: int = 90        # crops drawn per source folder other than neutrophils
    neutrophils: int = 900               # neutrophils (marrow and PBC)
    dg_share: float = 0.22               # of the neutrophils given DG 1-3 (equal thirds)
    other_dysplasia_share: float = 0.12  # of the neutrophils given HS, HYPES or ACC (with or without DG)
    sources: tuple[str, ...] | None = None  # only these source folders (e.g. "marrow/segmented_neutrophil"); None: all
    # Segmenter for the marrow crops the transforms write through: "marrow" (simulate.segment.segment_marrow_cell)
    # or "pbc", the peripheral one, which the tables made before 2026-12-03 (labels3) used for every crop.
    marrow_segmenter: str = "marrow"
    seed: int = 0


def _balanced_rows(pools: dict[str, list], labels, config: LabelTableConfig, rng) -> list[tuple]:
    """(path, source, label id, None): neutrophil grades are drawn later, image by image."""
    neutrophil_sources = [s for s in pools if labels.sources[s] == "NN"]
    rows = []
    for source, pool in pools.items():
        label_id = labels.sources[source]
        n = config.neutrophils // len(neutrophil_sources) if label_id == "NN" else config.per_category_source
        rows += [(str(path), source, label_id, None) for path in rng.choice(pool, size=min(n, len(pool)), replace=False)]
    return rows


def _draw_grades(config: LabelTableConfig, rng) -> dict[str, int]:
    """The balanced mix's random grades for one neutrophil."""
    grades: dict[str, int] = {}
    if rng.random() < config.dg_share:
        grades["DG"] = int(rng.integers(1, 4))
    if rng.random() < config.other_dysplasia_share:
        grades[str(rng.choice(["HS", "HYPES", "ACC"]))] = int(rng.integers(1, 4))
    return grades


def table1_rows(pools: dict[str, list], labels, rng) -> list[tuple]:
    """(path, source, label id, grades) in the counts of Mori's Table 1, capped by the pools.

    Each label id draws from its source folders together; neutrophils are one pool, of which the
    first cells get the DG grades, the next the other simulated dysplasias, and the rest stay normal.
    """
    rows = []
    for label_id, wanted in TABLE1_CELLS.items():
        if label_id == "NN":
            wanted += sum(sum(g) for g in TABLE1_GRADES.values())
        candidates = [(str(p), s) for s, pool in pools.items() if labels.sources[s] == label_id for p in pool]
        if not candidates:
            continue
        chosen = rng.choice(len(candidates), size=min(wanted, len(candidates)), replace=False)
        picked = [candidates[i] for i in chosen]
        if label_id != "NN":
            rows += [(path, source, label_id, {}) for path, source in picked]
            continue
        plan = [{slot: g} for slot, counts in TABLE1_GRADES.items() for g, n in enumerate(counts, 1) for _ in range(n)]
        plan += [{}] * max(0, len(picked) - len(plan))
        rows += [(path, source, "NN", grades) for (path, source), grades in zip(picked, plan)]
    return rows


def build_label_table(frame: pd.DataFrame, out: Path, config: LabelTableConfig = LabelTableConfig(),
                      splits: tuple[str, ...] = ("val", "test")) -> pd.DataFrame:
    """Write the images and ``labels.csv`` from the real-crop frame of :func:`core.datasets.load_all`.

    Only crops of ``splits`` are used: the compact backbone starts from the stage-1 CNN, which
    trained on the ``train`` crops (with simulated degranulation), so those stay out of every fold.
    """
    labels = load_labels()
    frame = frame[frame["split"].isin(splits)]
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    key = frame["source"] + "/" + frame["source_label"]
    pools = {source: frame.loc[key == source, "path"].tolist() for source in labels.sources}
    if config.sources is not None:
        unknown = sorted(set(config.sources) - set(labels.sources))
        if unknown:
            raise InvalidInput(f"unknown source folder(s) {', '.join(unknown)}; known: {', '.join(labels.sources)}")
        pools = {source: pool for source, pool in pools.items() if source in config.sources}
    pools = {source: pool for source, pool in pools.items() if pool}
    if not pools:
        raise InvalidInput("no crops found for the AKIRA label table; check --data-root, the splits and the sources")
    if config.mix == "balanced":
        rows = _balanced_rows(pools, labels, config, rng)
    elif config.mix == "table1":
        rows = table1_rows(pools, labels, rng)
    else:
        raise InvalidInput(f"unknown label-table mix {config.mix!r}; use 'balanced' or 'table1'")
    records = []
    for i, (path, source, label_id, grades) in enumerate(rows):
        y = np.zeros(len(labels.ids), np.float32)
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        if label_id == "NN":
            if grades is None:
                grades = _draw_grades(config, rng)
            if grades:
                masks = segment_for_source(rgb, source, config.marrow_segmenter)
                for slot in ("HS", "HYPES", "ACC", "DG"):  # nucleus first, then the cytoplasm
                    if slot in grades:
                        rgb = TRANSFORMS[SIMULATED_SLOTS[slot]].fn(rgb, masks, grades[slot], rng)
                        if slot in ("HS", "HYPES"):
                            masks = segment_for_source(rgb, source, config.marrow_segmenter)
                for slot, g in grades.items():
                    y[labels.index(slot)] = g
            else:
                y[labels.index("NN")] = 1
        else:
            y[labels.index(label_id)] = 1
        name = f"akira_{i:05d}.jpg"
        Image.fromarray(rgb).save(out / "images" / name, "JPEG", quality=92)
        records.append({"Filename": name, **dict(zip(labels.ids, y.tolist())), "_source": source, "_crop": str(path)})
    table = pd.DataFrame(records)
    table.drop(columns=["_source", "_crop"]).to_csv(out / "labels.csv", index=False)
    table[["Filename", "_source", "_crop"]].rename(columns={"_source": "source", "_crop": "crop"}).to_csv(
        out / "provenance.csv", index=False)
    (out / "README.txt").write_text("AKIRA label table made by mdsdx from real crops of the split(s) "
                                    f"{', '.join(splits)}; the dysplasia grades (DG, HS, HYPES, ACC) are "
                                    "SIMULATED by mdsdx's transforms.\n")
    return table.drop(columns="_source")
