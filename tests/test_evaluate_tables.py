"""Kimura Table 2 keeps real crops and simulated cells apart; the card rows and intervals of the evaluation."""
import numpy as np
import pytest

from core.taxonomy import load_taxonomy
from models.engine.evaluate import _table2


def test_table2_scores_real_and_simulated_cells_apart():
    tax = load_taxonomy()
    real_true = np.array(["SNE", "SNE", "BNE", "LY"])
    real_pred = np.array(["SNE", "SNE", "BNE", "LY"])
    # simulated dysplastic neutrophils keep the base type SNE; the network calls them BNE
    sim_true = np.array(["SNE", "SNE", "SNE", "VLY"])
    sim_pred = np.array(["BNE", "BNE", "SNE", "VLY"])
    table = _table2(real_true, real_pred, sim_true, sim_pred, tax).set_index("label")
    assert table.loc["SNE", "n_real"] == 2 and table.loc["SNE", "sensitivity_real"] == 1.0
    assert table.loc["BNE", "specificity_real"] == 1.0
    assert table.loc["SNE", "n_simulated"] == 3
    assert table.loc["SNE", "sensitivity_simulated"] == pytest.approx(1 / 3)
    assert table.loc["VLY", "n_real"] == 0 and np.isnan(table.loc["VLY", "sensitivity_real"])
    assert list(table.index) == list(tax.type_abbrs)


def test_a_model_card_refuses_a_validation_split_evaluation(tmp_path):
    import json

    from models.export.model_card import cellnet_card
    (tmp_path / "metadata.json").write_text(json.dumps({"version": "v"}))
    (tmp_path / "metrics.json").write_text(json.dumps({"split": "val"}))
    with pytest.raises(ValueError, match="val split"):
        cellnet_card(tmp_path, tmp_path, commands=[])


def test_export_rows_of_a_model_card_come_from_an_export_evaluation_of_the_same_model(tmp_path):
    import json

    from models.export.model_card import export_metric_rows
    m = {"split": "test", "export_px": 360, "model_version": "v1", "classic_group_accuracy_pbc": 0.9824,
         "fine_class_macro_sensitivity_pbc": 0.8349, "wbcatt_mean_accuracy": 0.9304, "expected_calibration_error": 0.0124}
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    rows = export_metric_rows(tmp_path, "v1")
    assert rows["fine classes, macro sensitivity (360 x 363 px exports of the same crops)"] == ("83.5 %", ">= 90 %")
    assert len(rows) == 4
    with pytest.raises(ValueError, match="not v2"):
        export_metric_rows(tmp_path, "v2")
    (tmp_path / "metrics.json").write_text(json.dumps({**m, "export_px": None}))
    with pytest.raises(ValueError, match="with --export-px"):
        export_metric_rows(tmp_path, "v1")


def test_the_fine_class_interval_brackets_the_macro_sensitivity_and_narrows_with_more_crops():
    from core.metrics import macro_sensitivity_ci95, one_vs_rest
    labels = ["SNE", "BNE", "MMY"]
    # per label 80 crops: 72, 64 and 68 called right (90, 80 and 85 %), the misses called the next label
    y_true = np.repeat(labels, 80)
    y_pred = y_true.copy()
    for i, (label, wrong) in enumerate(zip(labels, (8, 16, 12))):
        y_pred[i * 80:i * 80 + wrong] = labels[(i + 1) % 3]
    macro = np.mean([r["sensitivity"] for r in one_vs_rest(y_true, y_pred, labels)])
    low, high = macro_sensitivity_ci95(y_true, y_pred, labels)
    assert macro == pytest.approx(0.85) and low < macro < high
    # the macro mean's standard error is sqrt(sum p(1-p)/n) / 3, about 2.3 points here
    assert 0.07 < high - low < 0.11
    low10, high10 = macro_sensitivity_ci95(np.tile(y_true, 10), np.tile(y_pred, 10), labels)
    assert low < low10 < macro < high10 < high
    assert macro_sensitivity_ci95(y_true, y_pred, labels + ["PMY"]) == [low, high]   # no PMY crop: left out
    assert macro_sensitivity_ci95(y_true, y_true, labels) == [1.0, 1.0]


def test_a_card_row_carries_the_fine_class_interval_when_the_evaluation_has_one(tmp_path):
    import json

    from models.export.model_card import export_metric_rows
    m = {"split": "test", "export_px": 360, "model_version": "v1", "classic_group_accuracy_pbc": 0.9824,
         "fine_class_macro_sensitivity_pbc": 0.8349, "fine_class_macro_sensitivity_ci95": [0.8012, 0.8671],
         "wbcatt_mean_accuracy": 0.9304, "expected_calibration_error": 0.0124}
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    rows = export_metric_rows(tmp_path, "v1")
    assert rows["fine classes, macro sensitivity (360 x 363 px exports of the same crops)"] == (
        "83.5 % (95 % bootstrap CI 80.1-86.7 %)", ">= 90 %")


def _neutrophil_frame():
    import pandas as pd
    # PBC class, WBCAtt nucleus shape: 2 agreeing segmented, 1 agreeing band, 1 disagreeing, 1 myelocyte
    return pd.DataFrame({
        "source_label": ["segmented_neutrophil", "segmented_neutrophil", "band_neutrophil", "segmented_neutrophil",
                         "myelocyte"],
        "nucleus_shape": ["segmented-bilobed", "segmented-multilobed", "unsegmented-band", "unsegmented-band",
                          "unsegmented-round"],
        "cell_types": [("SNE",), ("SNE",), ("BNE",), ("SNE",), ("MY",)],
        "group": ["neutrophil", "neutrophil", "neutrophil", "neutrophil", "ig"]})


def test_band_segmented_consensus_needs_both_expert_readings():
    from core.datasets import consensus_band_segmented
    consensus = consensus_band_segmented(_neutrophil_frame())
    assert consensus.tolist()[:3] == ["SNE", "SNE", "BNE"]
    assert consensus.isna().tolist() == [False, False, False, True, True]


def test_expert_figures_score_consensus_crops_apart_from_all_crops():
    from models.engine.evaluate import expert_figures
    frame = _neutrophil_frame()
    pred = np.array(["SNE", "BNE", "BNE", "BNE", "MY"])  # one consensus crop wrong; the disputed one called band
    unid = np.array([False, False, False, True, False])
    f = expert_figures(frame, pred, unid)
    b = f["band_segmented_consensus"]
    assert (b["crops"], b["all_crops"]) == (3, 4)
    assert b["accuracy"] == pytest.approx(2 / 3) and b["all_crops_accuracy"] == pytest.approx(2 / 4)
    assert b["ci95"][0] < 2 / 3 < b["ci95"][1]
    assert f["immature_macro_sensitivity"]["value"] == 1.0 and f["immature_macro_sensitivity"]["crops"]["MY"] == 1
    assert np.isnan(f["immature_macro_sensitivity"]["ci95"]).all()  # one crop: no interval
    sel = f["selective_group_accuracy"]
    assert sel["called"] == 4 and sel["unid_rate"] == pytest.approx(0.2)


def test_native_crops_are_the_same_cells_as_their_pbc_files(data_root):
    from core.datasets import load_pbc, load_pbc_native
    native = load_pbc_native(data_root)
    assert len(native) == 2446 and set(native["split"]) == {"train", "val", "test"}
    pbc = load_pbc(data_root).set_index("file")
    sample = native.sample(20, random_state=0)
    assert (pbc.loc[sample["file"], "split"].to_numpy() == sample["split"].to_numpy()).all()
    assert all("pbc_native" in p for p in sample["path"])
    from PIL import Image
    with Image.open(sample["path"].iloc[0]) as image:
        assert image.size[0] == 360
