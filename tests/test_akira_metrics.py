import json

import numpy as np
import pytest
from click.testing import CliRunner

from core.akira_labels import load_labels
from models.engine.akira.metrics import metrics_from_confusion, metrics_from_scores, rates_by_group

# Mori et al. 2020, Table 2: rows true DG0-3, columns predicted DG0-3.
TABLE2 = [[1623, 32, 5, 1], [5, 21, 19, 1], [6, 16, 50, 5], [1, 2, 7, 1]]


def test_table2_gives_the_papers_percentages():
    m = metrics_from_confusion(TABLE2)["dg1_3"]
    # the paper rounds half up (PPV 122/160 = 76.25 % is printed 76.3 %)
    for key, paper in [("sensitivity", 91.0), ("specificity", 97.7), ("ppv", 76.3), ("npv", 99.3), ("accuracy", 97.2)]:
        assert abs(100 * m[key] - paper) <= 0.05 + 1e-9, (key, 100 * m[key])


def test_table2_large_errors_match_the_text():
    m = metrics_from_confusion(TABLE2)
    # "nine false negative cells" and "seven false positive" with a scale difference of two or more
    assert m["false_negatives_two_or_more"] == 9
    assert m["false_positives_two_or_more"] == 7
    assert m["errors_two_or_more_grades"] == 16


def test_table2_dg23_bounds_bracket_the_paper():
    b = metrics_from_confusion(TABLE2)["dg2_3_bounds"]
    lo, hi = b["dg1_predictions_negative"], b["dg1_predictions_positive"]
    assert lo["sensitivity"] <= 0.852 <= hi["sensitivity"]
    assert hi["specificity"] <= 0.989 <= lo["specificity"]


def test_scores_path_reassigns_dg1_predictions():
    y = np.array([0, 0, 0, 1, 2, 2, 3])
    s = np.array([0.1, 0.9, 1.2, 1.0, 0.8, 1.3, 2.8])  # 0.9 and 0.8 round to DG1 but lie below 1.0
    m = metrics_from_scores(y, s)
    assert m["confusion"][0] == [1, 2, 0, 0]
    # DG2-3: the true-DG1 cell is excluded; 0.9 -> DG0 (TN), 1.2 -> DG2 (FP), 0.8 -> DG0 (FN), 1.3 -> DG2 (TP)
    assert m["dg2_3"]["tp"] == 2 and m["dg2_3"]["fn"] == 1 and m["dg2_3"]["fp"] == 1 and m["dg2_3"]["tn"] == 2
    assert 0 <= m["dg1_3"]["auc"] <= 1


def test_bad_matrix_is_refused():
    with pytest.raises(ValueError, match="4x4"):
        metrics_from_confusion([[1, 2], [3, 4]])


def test_cli_metrics(tmp_path):
    from cli import cli
    path = tmp_path / "cm.csv"
    path.write_text("\n".join(",".join(map(str, r)) for r in TABLE2))
    r = CliRunner().invoke(cli, ["granules", "metrics", "--confusion", str(path)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert round(100 * data["dg1_3"]["sensitivity"], 1) == 91.0
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,4\n")
    r = CliRunner().invoke(cli, ["granules", "metrics", "--confusion", str(bad)])
    assert r.exit_code == 2 and "4x4" in r.output


def test_label_layout_matches_the_reference():
    labels = load_labels()
    assert len(labels.ids) == 34
    assert labels.maxval.tolist() == [1] + [3] * 9 + [1] + [3] * 7 + [1] + [3] * 4 + [1] * 11
    assert labels.ids[labels.focus_index] == "DG" and labels.categories[labels.focus_index] == "granulocytic"
    w = labels.loss_weights()
    assert w.sum() == 33 + 10


def test_rates_by_group_splits_the_pooled_counts():
    y = np.array([0, 0, 0, 2, 0, 0, 1])
    s = np.array([0.1, 0.7, 0.2, 1.9, 0.9, 0.1, 0.2])
    groups = ["marrow", "marrow", "marrow", "marrow", "pbc", "pbc", "pbc"]
    by = rates_by_group(y, s, groups)
    assert by["marrow"]["n"] == 4 and by["marrow"]["negatives"] == 3 and by["marrow"]["positives"] == 1
    assert by["marrow"]["fp"] == 1 and by["marrow"]["specificity"] == pytest.approx(2 / 3)
    assert by["pbc"]["fp"] == 1 and by["pbc"]["fn"] == 1 and by["pbc"]["sensitivity"] == 0.0
    pooled = metrics_from_scores(y, s)["dg1_3"]
    assert sum(g["fp"] for g in by.values()) == pooled["fp"] and sum(g["tn"] for g in by.values()) == pooled["tn"]


def test_rates_carry_exact_95_percent_intervals():
    from models.engine.akira.metrics import exact_ci95
    m = metrics_from_confusion(TABLE2)["dg1_3"]
    for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        low, high = m["ci95"][key]
        assert 0 <= low < m[key] < high <= 1, key
    # the paper's specificity: 1,623 of 1,661 DG0 cells
    assert m["tn"] == 1623 and m["fp"] == 38
    low, high = m["ci95"]["specificity"]
    # Clopper-Pearson bounds of 1623 / 1661, checked against the beta quantiles they are defined by
    from scipy.stats import beta
    assert low == pytest.approx(beta.ppf(0.025, 1623, 39)) and high == pytest.approx(beta.ppf(0.975, 1624, 38))
    assert exact_ci95(0, 10)[0] == 0.0 and all(np.isnan(exact_ci95(0, 0)))
