import numpy as np
import pytest

from core.datasets import (assign_split, attribute_targets, feature_targets, load_all, load_attributes, load_marrow,
                             load_pbc, type_targets)
from core.errors import DataNotFound
from core.taxonomy import load_taxonomy


def test_split_is_deterministic_and_keeps_wbcatt():
    assert assign_split("pbc/x/a.jpg", "val") == "test"
    assert assign_split("pbc/x/a.jpg", "train") in ("train", "val")
    splits = [assign_split(f"pbc/platelet/{i}.jpg", None) for i in range(5000)]
    assert splits == [assign_split(f"pbc/platelet/{i}.jpg", None) for i in range(5000)]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.77 < frac["train"] < 0.83 and 0.08 < frac["test"] < 0.12


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFound, match="no such folder"):
        load_pbc(tmp_path)


def test_counts(data_root):
    pbc, marrow, attrs = load_pbc(data_root), load_marrow(data_root), load_attributes(data_root)
    assert len(pbc) == 12352
    assert len(marrow) == 2100
    assert len(attrs) == 7199
    assert pbc["wbcatt_split"].notna().sum() == 7199


def test_mapping_and_partial_labels(data_root):
    frame = load_all(data_root)
    tax = load_taxonomy()
    assert set(t for ts in frame["cell_types"] for t in ts) <= set(tax.type_abbrs)
    ig = frame[frame.source_label == "immature_granulocyte_unspecified"]
    assert set(ig["cell_types"]) == {("MMY", "MY", "PMY")}
    assert set(frame.loc[frame.source_label == "not_identifiable", "cell_types"]) == {("ART",)}
    assert set(frame.loc[frame.source_label == "platelet", "cell_types"]) == {("LP",)}
    targets = type_targets(frame["cell_types"])
    assert targets.shape == (len(frame), 17)
    assert (targets.sum(1) >= 1).all()


def test_wbcatt_split_kept_and_no_leak(data_root):
    frame = load_pbc(data_root)
    assert (frame.loc[frame.wbcatt_split == "val", "split"] == "test").all()
    assert not (frame.loc[frame.wbcatt_split == "train", "split"] == "test").any()
    assert frame["file"].is_unique


def test_feature_targets_mask_unknowns(data_root):
    frame = load_pbc(data_root)
    ft = feature_targets(frame)
    tax = load_taxonomy()
    vac = tax.feature_index("neu_vacuoles")
    neut = frame["wbcatt_label"] == "Neutrophil"
    assert set(np.unique(ft[neut.values, vac])) == {0.0, 1.0}
    assert (ft[~neut.values, vac] == -1).all()
    # dysplasia is never labelled on healthy-donor crops
    assert (ft[:, tax.feature_index("neu_degranulation")] == -1).all()
    at = attribute_targets(frame)
    assert ((at >= 0).all(1) == frame["wbcatt_label"].notna().values).all()
