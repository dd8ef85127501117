"""The AKIRA label table as training reads it: ``<folder>/labels.csv`` (a ``Filename`` column
followed by the 34 label columns, the form of the authors' reference label file), its provenance,
and the oversampling of the DG grades. The table itself is written by the simulator
(:func:`simulate.label_table.build_label_table`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.akira_labels import load_labels
from core.errors import InvalidInput


def crop_sources(labels_dir: Path, filenames) -> pd.Series | None:
    """The source folder of each image in ``filenames`` from the table's ``provenance.csv`` ("" for
    one it does not list), or None for a table without one."""
    path = Path(labels_dir) / "provenance.csv"
    if not path.is_file():
        return None
    known = pd.read_csv(path).set_index("Filename")["source"]
    return pd.Series(list(filenames)).map(known).fillna("").reset_index(drop=True)


def shared_crops(a: Path, b: Path) -> set[str]:
    """The source crops two label-table folders both hold, from their ``provenance.csv`` ``crop`` columns
    (empty when either table predates that column)."""
    def crops(folder):
        path = Path(folder) / "provenance.csv"
        held = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        return set(held["crop"]) if "crop" in held else set()
    return crops(a) & crops(b)


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


def counted_as_grade0(y: np.ndarray, rule: str) -> np.ndarray | None:
    """The ``counts_as_grade0`` mask of :func:`oversample_dg` for a config's ``oversample_grade0`` rule, from the
    label matrix ``y`` (n, 34): None for "all" (the reference), else True on rows with a granulocytic output set."""
    if rule == "all":
        return None
    return (y[:, load_labels().category_mask("granulocytic")] > 0).any(1)


def oversample_dg(indices: np.ndarray, dg: np.ndarray, counts_as_grade0: np.ndarray | None = None) -> np.ndarray:
    """Repeat each image of DG grade i (1..3) floor(n0 / n_i) - 1 extra times (Mori et al.).

    ``dg`` (n,) holds every image's grade; n0 counts the DG0 images among ``indices``, all of them as in
    the reference, or only those where the boolean (n,) ``counts_as_grade0`` is true."""
    grades = np.rint(dg[indices]).astype(int)
    counted = np.ones(len(indices), bool) if counts_as_grade0 is None else counts_as_grade0[indices]
    n0 = int(((grades == 0) & counted).sum())
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
