"""The AKIRA label table: real crops in their categories and simulated dysplasia grades.

Written as ``<out>/images/<name>.jpg`` and ``<out>/labels.csv`` with a ``Filename`` column followed
by the 34 label columns, the form of the authors' reference label file. DG and the other
neutrophil grades are made by the simulator's transforms on real neutrophils (SIMULATED grades);
every other label comes from the crop's source folder (``labels.yaml`` ``sources``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from models.akira.labels import load_labels
from models.errors import InvalidInput
from simulate.segment import segment_cell
from simulate.transforms import TRANSFORMS

# The simulator transforms that fill graded granulocytic slots (slot id -> transform name).
SIMULATED_SLOTS = {"DG": "decreased_granules", "HS": "pseudo_pelger", "HYPES": "hypersegmentation",
                   "ACC": "chromatin_clumping"}


@dataclass(frozen=True)
class LabelTableConfig:
    """How many images of each kind; the DG share follows the paper's order of magnitude (134 of 1797)
    but is larger so that every fold holds every grade."""
    per_category_source: int = 90        # crops drawn per source folder other than neutrophils
    neutrophils: int = 900               # neutrophils (marrow and PBC)
    dg_share: float = 0.22               # of the neutrophils given DG 1-3 (equal thirds)
    other_dysplasia_share: float = 0.12  # of the neutrophils given HS, HYPES or ACC (with or without DG)
    seed: int = 0


def build_label_table(frame: pd.DataFrame, out: Path, config: LabelTableConfig = LabelTableConfig(),
                      splits: tuple[str, ...] = ("val", "test")) -> pd.DataFrame:
    """Write the images and ``labels.csv`` from the real-crop frame of :func:`models.datasets.load_all`.

    Only crops of ``splits`` are used: the compact backbone starts from the stage-1 CNN, which
    trained on the ``train`` crops (with simulated degranulation), so those stay out of every fold.
    """
    labels = load_labels()
    frame = frame[frame["split"].isin(splits)]
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    rows = []
    key = frame["source"] + "/" + frame["source_label"]
    neutrophil_sources = [s for s, lab in labels.sources.items() if lab == "NN"]
    for source, label_id in labels.sources.items():
        pool = frame.loc[key == source, "path"].tolist()
        if not pool:
            continue
        n = config.neutrophils // len(neutrophil_sources) if label_id == "NN" else config.per_category_source
        for path in rng.choice(pool, size=min(n, len(pool)), replace=False):
            rows.append((str(path), source, label_id))
    if not rows:
        raise InvalidInput("no crops found for the AKIRA label table; check --data-root")
    records = []
    for i, (path, source, label_id) in enumerate(rows):
        y = np.zeros(len(labels.ids), np.float32)
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        if label_id == "NN":
            grades: dict[str, int] = {}
            if rng.random() < config.dg_share:
                grades["DG"] = int(rng.integers(1, 4))
            if rng.random() < config.other_dysplasia_share:
                grades[str(rng.choice(["HS", "HYPES", "ACC"]))] = int(rng.integers(1, 4))
            if grades:
                masks = segment_cell(rgb)
                for slot in ("HS", "HYPES", "ACC", "DG"):  # nucleus first, then the cytoplasm
                    if slot in grades:
                        rgb = TRANSFORMS[SIMULATED_SLOTS[slot]].fn(rgb, masks, grades[slot], rng)
                        if slot in ("HS", "HYPES"):
                            masks = segment_cell(rgb)
                for slot, g in grades.items():
                    y[labels.index(slot)] = g
            else:
                y[labels.index("NN")] = 1
        else:
            y[labels.index(label_id)] = 1
        name = f"akira_{i:05d}.jpg"
        Image.fromarray(rgb).save(out / "images" / name, "JPEG", quality=92)
        records.append({"Filename": name, **dict(zip(labels.ids, y.tolist())), "_source": source})
    table = pd.DataFrame(records)
    table.drop(columns="_source").to_csv(out / "labels.csv", index=False)
    table[["Filename", "_source"]].rename(columns={"_source": "source"}).to_csv(out / "provenance.csv", index=False)
    (out / "README.txt").write_text("AKIRA label table made by mdsdx from real crops; the dysplasia grades "
                                    "(DG, HS, HYPES, ACC) are SIMULATED by mdsdx's transforms.\n")
    return table.drop(columns="_source")


def read_label_table(path: Path) -> pd.DataFrame:
    """Read ``labels.csv`` and check its columns: ``Filename`` then the 34 labels in order."""
    labels = load_labels()
    table = pd.read_csv(path)
    expected = ["Filename", *labels.ids]
    if list(table.columns) != expected:
        raise InvalidInput(f"{path}: expected the columns {expected}")
    if (table[list(labels.ids)].values > labels.maxval).any() or (table[list(labels.ids)].values < 0).any():
        raise InvalidInput(f"{path}: a label is outside 0..maxval")
    return table


def oversample_dg(indices: np.ndarray, dg: np.ndarray) -> np.ndarray:
    """Repeat each image of DG grade i (1..3) floor(n0 / n_i) - 1 extra times (Mori et al.)."""
    grades = np.rint(dg[indices]).astype(int)
    n0 = int((grades == 0).sum())
    out = [indices]
    for g in (1, 2, 3):
        members = indices[grades == g]
        if len(members) == 0:
            raise InvalidInput(f"this training fold has no image of DG grade {g}; oversampling cannot balance it "
                               f"(add DG{g} images or use fewer folds)")
        extra = n0 // len(members) - 1
        if extra > 0:
            out.append(np.repeat(members, extra))
    return np.concatenate(out)
