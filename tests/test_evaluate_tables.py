"""Kimura Table 2 keeps real crops and simulated cells apart."""
import numpy as np
import pytest

from models.evaluate import _table2
from models.taxonomy import load_taxonomy


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

    from models.model_card import cellnet_card
    (tmp_path / "metadata.json").write_text(json.dumps({"version": "v"}))
    (tmp_path / "metrics.json").write_text(json.dumps({"split": "val"}))
    with pytest.raises(ValueError, match="val split"):
        cellnet_card(tmp_path, tmp_path, commands=[])
