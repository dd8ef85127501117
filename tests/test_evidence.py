"""The diagnoser's smear-level evidence: parameters from kept cell predictions, sensitivity at a fixed
specificity, the crop-cluster bootstrap, the sealed cohorts' ledger, and `mdsdx evaluate diagnoser`."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import needs_shared_data
from core.errors import InvalidInput
from diagnose.cohort_cells import CohortCells, ParameterMaker, smear_parameters
from diagnose.evidence import (cluster_bootstrap, detection_limit, dose_response_png, sensitivity_at_specificity)
from diagnose.sealed import check_unscored, load_sealed_spec, record_scoring, sealed_cohorts
from diagnose.train import fit_chosen, select_parameters
from featurize.smear import featurize_smear, parameter_ids


def _cells(n_smears=6, cells_per_smear=40, n_crops=30, seed=0, crop_effect=0.0) -> CohortCells:
    """Random predictions; a crop's cells share a degranulation offset of ``crop_effect`` times a crop draw."""
    rng = np.random.default_rng(seed)
    n = n_smears * cells_per_smear
    crop = rng.integers(0, n_crops, n)
    tp = rng.dirichlet(np.ones(17) * 0.3, n)
    fp = rng.uniform(0, 0.2, (n, 97))
    fp[:, 5] = np.nan  # an untrained feature
    y = np.arange(n_smears) % 2
    smear = np.repeat(np.arange(n_smears), cells_per_smear)
    fp[:, 0] = np.clip(0.1 + 0.3 * y[smear] + crop_effect * rng.normal(size=n_crops)[crop], 0, 1)
    return CohortCells(smear_ids=np.array([f"s{i}" for i in range(n_smears)]), diagnosis=np.where(y == 1, "MDS", "AA"),
                       cell_smear=smear, cell_crop=np.array([f"crop{c}.jpg" for c in crop]),
                       cell_type=np.array(["SNE"] * n), type_probs=tp, feature_probs=fp)


def test_parameters_from_kept_predictions_equal_featurize_smear_and_weights_count_cells():
    cells = _cells()
    frame = smear_parameters(cells)
    for i, sid in enumerate(cells.smear_ids):
        rows = cells.cell_smear == i
        ref = featurize_smear(cells.type_probs[rows], cells.feature_probs[rows]).values
        got = frame.loc[sid, parameter_ids()].astype(float)
        assert np.allclose(ref.fillna(-1), got.fillna(-1), atol=1e-12)
    # a weight of 2 is the cell counted twice; a weight of 0 drops it
    w = np.where(np.arange(len(cells.cell_smear)) % 3 == 0, 2.0, 1.0)
    w[1::7] = 0.0
    rows = cells.cell_smear == 0
    reps = np.repeat(np.flatnonzero(rows), w[rows].astype(int))
    ref = featurize_smear(cells.type_probs[reps], cells.feature_probs[reps]).values
    assert np.allclose(ref.fillna(-1), ParameterMaker(cells)(w).iloc[0].fillna(-1), atol=1e-12)


def test_sensitivity_at_specificity_reads_the_roc_curve():
    y = np.array([0] * 20 + [1] * 10)
    aa = np.linspace(0, 0.95, 20)              # the highest AA score is 0.95
    score = np.r_[aa, [0.99] * 6 + [0.5] * 4]
    # 95 % specificity allows 1 of 20 AA above the threshold: the 6 MDS at 0.99 are caught
    assert sensitivity_at_specificity(y, score, 0.95) == pytest.approx(0.6)
    assert sensitivity_at_specificity(y, score, 0.50) == pytest.approx(1.0)  # 10 AA at or above 0.5
    assert detection_limit([0, 0.05, 0.1, 0.2], [0.1, 0.5, 0.92, 0.95]) == 0.1
    assert detection_limit([0, 0.1], [0.1, 0.5]) is None


def test_ablation_blanks_the_other_parameters():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.uniform(0, 1, (80, 114)), columns=parameter_ids())
    X["diagnosis"] = np.where(np.arange(80) % 2, "MDS", "AA")
    X.loc[X.diagnosis == "MDS", "type_LY"] -= 0.4           # only the proportions separate
    props = select_parameters(X, "proportions")
    assert props.filter(like="feat_").isna().all().all() and props.filter(like="type_").notna().all().all()
    assert select_parameters(X, "features").filter(like="type_").isna().all().all()
    from diagnose.model import DiagnoserConfig
    train, val = X.iloc[:60], X.iloc[60:]
    model, record = fit_chosen(train, val, "features", (2, 3))
    assert record["chosen_max_depth"] in (2, 3) and len(record["candidates"]) == 2
    importance = model.model_.get_booster().get_score(importance_type="gain")
    assert not any(k.startswith("type_") for k in importance)
    assert DiagnoserConfig().max_depth == 3


def test_cluster_bootstrap_widens_intervals_when_smears_share_crops():
    """Ten smears drawn from few crops whose degranulation varies by crop: the smear-and-crop bootstrap
    interval of the AUC is at least as wide as the smear-only one."""
    from diagnose.model import DiagnoserConfig, MdsDiagnoser
    train = smear_parameters(_cells(n_smears=40, seed=1))
    model = MdsDiagnoser(DiagnoserConfig(n_estimators=20, n_folds=3)).fit(train[parameter_ids()], train["diagnosis"])
    cells = _cells(n_smears=12, cells_per_smear=30, n_crops=8, seed=2, crop_effect=0.3)
    result = cluster_bootstrap(cells, {"m": (model, "all")}, resamples=200, seed=0)
    lo, hi = result.cluster["m"]["auc"]
    slo, shi = result.smears_only["m"]["auc"]
    assert lo <= result.point["m"]["auc"] <= hi
    assert hi - lo >= shi - slo
    summary = cells.crop_summary()
    assert summary["distinct_crops"] == 8 and summary["effective_crops_kish"] <= 8


def test_sealed_cohorts_are_test_split_and_the_ledger_refuses_a_second_scoring(tmp_path):
    spec = load_sealed_spec()
    cohorts = sealed_cohorts(spec)
    assert {c.config.partition for c in cohorts} == {"test-cohort"}
    assert len({c.name for c in cohorts}) == len(cohorts)
    dose = [c for c in cohorts if c.dysplasia_rate is not None]
    assert sorted(c.dysplasia_rate for c in dose) == [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
    assert len({c.config.seed for c in dose}) == 1 and {c.config.mds_fraction for c in dose} == {1.0}
    ledger = tmp_path / "ledger.jsonl"
    names = [c.name for c in cohorts]
    assert check_unscored("abc", names, spec, False, ledger) == []
    record_scoring("dx-1", "abc", {c.name: c.config.seed for c in cohorts}, False, ledger=ledger)
    with pytest.raises(InvalidInput, match="--force"):
        check_unscored("abc", names, spec, False, ledger)
    assert check_unscored("other", names, spec, False, ledger) == []
    assert len(check_unscored("abc", names, spec, True, ledger)) == 1
    entry = record_scoring("dx-1", "abc", {"matched": 4602}, True, "a re-score", ledger)
    assert entry["forced"] and len(ledger.read_text().splitlines()) == 2


def test_dose_response_png(tmp_path):
    rows = []
    for s, base in (("all", 0.6), ("proportions", 0.5)):
        for r in (0, 0.05, 0.1, 0.3):
            a = min(base + r * 1.5 * (s == "all"), 1)
            rows.append({"rate": r, "model": f"matched/{s}", "parameter_set": s, "auc": a, "auc_lo": a - 0.05,
                         "auc_hi": min(a + 0.05, 1), "sens": a - 0.1, "sens_lo": a - 0.2, "sens_hi": a})
    dose_response_png(pd.DataFrame(rows), tmp_path / "d.png", aa_share=0.08, limit=0.3)
    from PIL import Image
    with Image.open(tmp_path / "d.png") as im:
        assert im.size[0] > 800


@pytest.mark.slow  # about 60 s on 2 cores: simulates and featurizes 10 small cohorts
@needs_shared_data
def test_train_then_evaluate_diagnoser_once(tmp_path, data_root, tiny_models):
    """`mdsdx train diagnosis` on tiny cohorts, then `mdsdx evaluate diagnoser` on tiny sealed cohorts:
    the tables and figures are written, the scoring is in the ledger, and a second scoring is refused."""
    from cli import cli
    from diagnose.evidence import evaluate_evidence
    config = tmp_path / "train.yaml"
    config.write_text("train_smears: 12\nval_smears: 6\ncells_per_smear: 30\nmax_depth_grid: [2]\n")
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "diagnosis", "--out", str(tmp_path / "run"), "--config", str(config),
                            "--cell-model", str(tiny_models["cellnet"])])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["training"]["validation"]["chosen_max_depth"] == 2
    assert (tmp_path / "run" / "literature_val_features.csv").is_file()
    spec = {"partition": "test-cohort", "difficulty": "standard", "cells_per_smear": 30,
            "cohorts": {"literature": {"design": "literature", "smears": 6, "seed": 1},
                        "matched": {"design": "matched", "smears": 6, "seed": 2}},
            "dose_response": {"design": "matched", "aa": {"smears": 3, "seed": 3}, "mds": {"smears": 3, "seed": 4},
                              "rates": [0.0, 0.3]},
            "bootstrap": {"resamples": 100, "seed": 0}}
    ledger = tmp_path / "ledger.jsonl"
    kwargs = dict(cell_model_dir=str(tiny_models["cellnet"]), ledger=ledger, spec=spec)
    m = evaluate_evidence(tmp_path / "run", tmp_path / "run", tmp_path / "sealed", tmp_path / "eval", **kwargs)
    for name in ("metrics.json", "ablation.csv", "dose_response.csv", "dose_response.png", "roc.png", "heatmap.png"):
        assert (tmp_path / "eval" / name).is_file(), name
    table = pd.read_csv(tmp_path / "eval" / "ablation.csv")
    assert set(table["cohort"]) == {"literature", "matched"} and len(table) == 10
    assert "true_proportions" in set(table["parameter_set"]) and set(m["type_signal"]) == {"literature", "matched"}
    assert set(pd.read_csv(tmp_path / "eval" / "dose_response.csv")["rate"]) == {0.0, 0.3}
    assert m["crops"]["matched"]["distinct_crops"] > 0 and len(ledger.read_text().splitlines()) == 1
    with pytest.raises(InvalidInput):
        evaluate_evidence(tmp_path / "run", tmp_path / "run", tmp_path / "sealed", tmp_path / "eval2", **kwargs)
    m = evaluate_evidence(tmp_path / "run", tmp_path / "run", tmp_path / "sealed", tmp_path / "eval2", force=True,
                          note="test", **kwargs)
    assert m["ledger_entries"][0]["forced"] and len(ledger.read_text().splitlines()) == 2
    # the card: every results row says SIMULATED, the forced re-score and the earlier reuse are stated
    from diagnose.card import diagnoser_card
    card = diagnoser_card(tmp_path / "run", tmp_path / "eval2", ["mdsdx train diagnosis ..."], ledger=ledger)
    assert all("SIMULATED" in name for name in card["metrics"] if name != "decision threshold on P(MDS)")
    text = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert "forced re-scores: 1" in text and "seed 202" in text and "Detection limit" in text
    with pytest.raises(ValueError):
        diagnoser_card(tiny_models["diagnoser"], tmp_path / "eval2", [], ledger=ledger)


def test_true_types_are_one_hot_proportions():
    from diagnose.cohort_cells import with_true_types
    cells = _cells()
    cells.cell_type[::2] = "LY"
    frame = smear_parameters(with_true_types(cells))
    assert np.allclose(frame["type_LY"], 0.5) and np.allclose(frame["type_SNE"], 0.5)
    assert np.allclose(frame.filter(like="type_").sum(axis=1), 1.0)
