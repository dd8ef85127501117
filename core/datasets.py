"""Loaders for the real single-cell crops in ``../shared/data`` and the split API.

Every loader returns a ``pandas.DataFrame`` with one row per image and these columns:

- ``path``: absolute path of the image file;
- ``file``: the path relative to the data root (``pbc/basophil/BA_100102.jpg``), the stable key;
- ``source``: ``pbc`` or ``marrow``; ``source_label``: the folder name;
- ``cell_types``: tuple of the type abbreviations the crop may be (one, or a partial label);
- ``group``: the classic PBC group (``neutrophil`` ...) or ``None``;
- ``split``: ``train``, ``val`` or ``test`` (see :func:`assign_split`);
- for WBCAtt rows, the 11 attribute columns (``None`` elsewhere).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import DataNotFound
from core.package_yaml import package_yaml
from core.preprocess import IMAGE_SUFFIXES
from core.taxonomy import load_taxonomy

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the deterministic hash split; WBCAtt rows keep their own split (see below)."""
    val_fraction: float = 0.10
    test_fraction: float = 0.10
    wbcatt_val_fraction: float = 0.10  # of WBCAtt `train` rows, held for early stopping and calibration


@lru_cache(maxsize=1)
def source_map() -> dict:
    """The mapping file ``sources.yaml``: folder -> types, classic groups, WBCAtt vocabularies."""
    return package_yaml("core", "sources.yaml")


def default_data_root() -> Path:
    """``../shared/data`` relative to the project root (the folder holding ``core/``)."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) from a string, the same on every machine and Python."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def assign_split(file: str, wbcatt_split: str | None, config: SplitConfig = SplitConfig()) -> str:
    """The partition of one crop.

    - WBCAtt ``val`` rows are our ``test``: WBCAtt's own test split is not in the data, and its
      val split is the only attribute-labelled set that nothing was ever tuned on.
    - WBCAtt ``train`` rows are ``train``, except a hashed ``wbcatt_val_fraction`` kept as ``val``.
    - Every other crop is hashed by its relative path into train / val / test.
    Deterministic: it depends only on the relative path and the WBCAtt column.
    """
    u = hash_fraction(file)
    if wbcatt_split == "val":
        return "test"
    if wbcatt_split == "train":
        return "val" if u < config.wbcatt_val_fraction else "train"
    if u < config.test_fraction:
        return "test"
    if u < config.test_fraction + config.val_fraction:
        return "val"
    return "train"


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _check_root(root: Path, sub: str) -> Path:
    folder = Path(root) / sub
    if not folder.is_dir():
        raise DataNotFound(f"{folder}: no such folder; expected the `{sub}/<class>/` crops of "
                           f"../shared/data (pass --source or data_root to point elsewhere)")
    return folder


def _load_source(root: Path, source: str, config: SplitConfig, attributes: pd.DataFrame | None) -> pd.DataFrame:
    folder = _check_root(root, source)
    mapping = source_map()[source]
    groups = {abbr: g for g, abbrs in source_map()["classic_groups"].items() for abbr in abbrs}
    rows = []
    for label, types in mapping.items():
        class_dir = folder / label
        if not class_dir.is_dir():
            log.warning("%s: class folder missing, skipped", class_dir)
            continue
        for p in _list_images(class_dir):
            rows.append({"path": str(p.resolve()), "file": p.relative_to(root).as_posix(), "source": source,
                         "source_label": label, "cell_types": tuple(types),
                         "group": groups.get(types[0]) if source == "pbc" and len({groups.get(t) for t in types}) == 1 else None})
    frame = pd.DataFrame(rows, columns=["path", "file", "source", "source_label", "cell_types", "group"])
    attr_names = list(source_map()["wbcatt_attributes"])
    if attributes is not None and len(frame):
        frame = frame.merge(attributes[["file", "label", "wbcatt_split", *attr_names]].rename(columns={"label": "wbcatt_label"}),
                            on="file", how="left")
    else:
        for col in ["wbcatt_label", "wbcatt_split", *attr_names]:
            frame[col] = None
    frame = frame.astype({c: object for c in ["wbcatt_label", "wbcatt_split", *attr_names]})
    frame = frame.where(frame.notna(), None)
    frame["split"] = [assign_split(f, s, config) for f, s in zip(frame["file"], frame["wbcatt_split"])]
    return frame


def load_attributes(root: Path | str | None = None) -> pd.DataFrame:
    """The WBCAtt table ``pbc/attributes.csv``: one row per white cell, keyed by ``file``."""
    root = Path(root) if root else default_data_root()
    path = root / "pbc" / "attributes.csv"
    if not path.is_file():
        raise DataNotFound(f"{path}: WBCAtt attribute table not found")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load_pbc(root: Path | str | None = None, config: SplitConfig = SplitConfig()) -> pd.DataFrame:
    """The peripheral-blood crops (Acevedo et al. 2020) joined to their WBCAtt attributes."""
    root = Path(root) if root else default_data_root()
    attrs = load_attributes(root) if (root / "pbc" / "attributes.csv").is_file() else None
    return _load_source(root, "pbc", config, attrs)


def load_pbc_native(root: Path | str | None = None, config: SplitConfig = SplitConfig()) -> pd.DataFrame:
    """The PBC crops kept at their native 360 px (``pbc_native/``), one row per crop with the labels,
    attributes and split of the same cell in :func:`load_pbc` (``same_cell_as`` in its manifest); only
    ``path`` differs. Raises :class:`DataNotFound` where the folder is absent."""
    root = Path(root) if root else default_data_root()
    manifest = root / "pbc_native" / "manifest.csv"
    if not manifest.is_file():
        raise DataNotFound(f"{manifest}: the native 360-px crops are not there")
    native = pd.read_csv(manifest, dtype=str)
    pbc = load_pbc(root, config).set_index("file")
    rows = pbc.loc[native["same_cell_as"]].reset_index()
    rows["path"] = [str(root / f) for f in native["file"]]
    return rows


def consensus_band_segmented(frame: pd.DataFrame) -> pd.Series:
    """Per crop, ``SNE`` or ``BNE`` where two expert readings of its nucleus agree: PBC's class
    (segmented or band neutrophil) and WBCAtt's ``nucleus_shape`` (``segmented-*`` reads SNE,
    ``unsegmented-band`` reads BNE); missing (NaN) where they disagree, and for every other crop."""
    pbc_call = frame["source_label"].map({"segmented_neutrophil": "SNE", "band_neutrophil": "BNE"})
    shape = frame["nucleus_shape"].fillna("").astype(str)
    wbcatt_call = np.where(shape.str.startswith("segmented"), "SNE", np.where(shape == "unsegmented-band", "BNE", None))
    return pbc_call.where(pbc_call.notna() & (pbc_call == wbcatt_call), None)


def load_marrow(root: Path | str | None = None, config: SplitConfig = SplitConfig()) -> pd.DataFrame:
    """The bone-marrow crops (Matek et al. 2021 subset)."""
    root = Path(root) if root else default_data_root()
    return _load_source(root, "marrow", config, None)


def load_all(root: Path | str | None = None, config: SplitConfig = SplitConfig()) -> pd.DataFrame:
    """PBC and marrow crops in one frame."""
    return pd.concat([load_pbc(root, config), load_marrow(root, config)], ignore_index=True)


def type_targets(cell_types: pd.Series) -> np.ndarray:
    """Allowed-type masks, shape (n, 17) float32: 1 for every type a crop may be."""
    abbrs = load_taxonomy().type_abbrs
    out = np.zeros((len(cell_types), len(abbrs)), np.float32)
    for i, types in enumerate(cell_types):
        for t in types:
            out[i, abbrs.index(t)] = 1.0
    return out


def attribute_targets(frame: pd.DataFrame) -> np.ndarray:
    """WBCAtt attribute indices, shape (n, 11) int32, -1 where the crop has no attribute label."""
    vocab = source_map()["wbcatt_attributes"]
    out = np.full((len(frame), len(vocab)), -1, np.int32)
    for j, (name, values) in enumerate(vocab.items()):
        if name not in frame:
            continue
        for i, v in enumerate(frame[name]):
            if v is not None and v in values:
                out[i, j] = values.index(v)
    return out


def feature_targets(frame: pd.DataFrame) -> np.ndarray:
    """Feature labels a real crop's source supports, shape (n, 97) float32.

    1 present, 0 absent, -1 unknown. Unknown is masked in the loss, never read as negative: the
    healthy-donor crops carry no dysplasia labels at all, only WBCAtt's vacuole attribute.
    """
    tax = load_taxonomy()
    out = np.full((len(frame), len(tax.features)), -1.0, np.float32)
    for attr, rule in source_map()["wbcatt_features"].items():
        if attr not in frame or "wbcatt_label" not in frame:
            continue
        for i, (label, value) in enumerate(zip(frame["wbcatt_label"], frame[attr])):
            fid = rule["feature_by_label"].get(label) if label else None
            if fid and value in rule["values"]:
                out[i, tax.feature_index(fid)] = rule["values"][value]
    return out
