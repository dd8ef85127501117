"""Featurizer definitions, the WHO view, and the XGBoost diagnoser with SHAP, on tiny seeded data."""
import numpy as np
import pandas as pd
import pytest

from core.errors import ModelLoadError
from core.taxonomy import load_taxonomy
from diagnose.model import DiagnoserConfig, MdsDiagnoser
from diagnose.who import who_view
from featurize import SmearFeaturizer, featurize_smear, parameter_names
from featurize.smear import parameter_ids

TAX = load_taxonomy()


def _onehot(types):
    out = np.zeros((len(types), 17))
    for i, t in enumerate(types):
        out[i, TAX.type_index(t)] = 1
    return out


def test_114_parameters_with_readable_names():
    ids = parameter_ids()
    assert len(ids) == 114 and len(set(ids)) == 114
    names = parameter_names()
    assert names["feat_neu_degranulation"] == "neutrophil: degranulation"
    assert names["type_SNE"] == "proportion: segmented neutrophil"


def test_proportions_and_rates_follow_their_definitions():
    types = ["SNE"] * 6 + ["BNE"] * 2 + ["LY"] * 10 + ["LP"] * 2
    tp = _onehot(types)
    fp = np.zeros((20, 97))
    dg = TAX.feature_index("neu_degranulation")
    fp[:2, dg] = 1.0          # 2 of 8 neutrophils degranulated
    fp[10:, dg] = 1.0         # lymphocytes' value must not count: not the feature's type
    fp[:, TAX.feature_index("ly_cleaved_nucleus")] = np.nan  # untrained feature
    f = featurize_smear(tp, fp, min_usable_cells=5)
    assert f.values["type_SNE"] == pytest.approx(6 / 20)
    assert f.values["type_LY"] == pytest.approx(10 / 20)
    assert f.values[[c for c in parameter_ids() if c.startswith("type_")]].sum() == pytest.approx(1.0)
    assert f.values["feat_neu_degranulation"] == pytest.approx(2 / 8)
    assert np.isnan(f.values["feat_ly_cleaved_nucleus"])
    assert np.isnan(f.values["feat_erb_karyorrhexis"])        # no erythroblast: missing, not 0
    assert f.values["type_ERB"] == 0.0


def test_expected_counts_use_probabilities():
    tp = np.zeros((2, 17))
    tp[0, TAX.type_index("SNE")] = 0.5
    tp[0, TAX.type_index("MMY")] = 0.5
    tp[1, TAX.type_index("SNE")] = 1.0
    fp = np.zeros((2, 97))
    fp[0, TAX.feature_index("neu_degranulation")] = 1.0
    f = featurize_smear(tp, fp, min_usable_cells=1)
    assert f.values["type_SNE"] == pytest.approx(0.75)
    assert f.values["feat_neu_degranulation"] == pytest.approx(0.5 / 1.5)


def test_few_usable_cells_warn():
    f = featurize_smear(_onehot(["SNE"] * 30 + ["SMU"] * 30), np.zeros((60, 97)))
    assert f.n_usable == 30
    assert f.warnings and "30 usable cells" in f.warnings[0]


def test_who_view_flags_lineage_and_blast_band():
    types = ["SNE"] * 40 + ["LY"] * 50 + ["BL"] * 4 + ["LP"] * 6
    fp = np.zeros((100, 97))
    fp[:8, TAX.feature_index("neu_degranulation")] = 0.9
    fp[:, TAX.feature_index("ly_cleaved_nucleus")] = np.nan
    fp[8:20, TAX.feature_index("neu_pseudo_pelger")] = 0.4  # below its threshold: not counted
    thresholds = {"neu_degranulation": {"threshold": 0.6, "validated": True},
                  "neu_pseudo_pelger": {"threshold": 0.7, "validated": True}}
    view = who_view(_onehot(types), fp, thresholds)
    gran = view["lineages"]["granulocytic"]
    assert gran["expected_cells"] == 40 and gran["dysplastic_percent"] == pytest.approx(20.0)
    assert gran["flag"] and gran["drivers"][0]["feature"] == "neutrophil: degranulation"
    assert set(gran["features_assessed"]) == {"neutrophil: degranulation", "neutrophil: pseudo-Pelger-Huët (hyposegmentation)"}
    assert view["lineages"]["erythroid"]["assessable"] is False
    assert view["blasts"]["percent"] == pytest.approx(100 * 4 / 94, abs=0.1)
    assert view["blasts"]["band"] == "2-4 %"


def test_who_view_ignores_unvalidated_detectors():
    types = ["SNE"] * 40
    fp = np.full((40, 97), 0.3)  # many weak feature probabilities: 1 - prod(1 - p) would read ~100 %
    weak = {"neu_degranulation": {"threshold": 0.2, "validated": False}}
    gran = who_view(_onehot(types), fp, weak)["lineages"]["granulocytic"]
    assert gran["dysplastic_percent"] is None and not gran["flag"] and not gran["assessable"]
    assert "neutrophil: degranulation" in gran["features_not_assessed"]
    none_given = who_view(_onehot(types), fp)["lineages"]["granulocytic"]
    assert none_given["assessable"] is False and none_given["features_assessed"] == []


def _cohort(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([1] * (n // 2) + [0] * (n - n // 2))
    X = pd.DataFrame(rng.uniform(0, 0.05, (n, 114)), columns=parameter_ids())
    X["feat_neu_degranulation"] = np.where(y == 1, rng.uniform(0.1, 0.5, n), rng.uniform(0.0, 0.12, n))
    X["feat_plt_giant"] = np.where(y == 1, rng.uniform(0.1, 0.4, n), rng.uniform(0.0, 0.2, n))
    X.loc[X.index[:5], "feat_erb_karyorrhexis"] = np.nan
    return X, y


def test_diagnoser_learns_calibrates_and_explains_additively(tmp_path):
    X, y = _cohort()
    model = MdsDiagnoser(DiagnoserConfig(n_estimators=60), random_state=0).fit(X, y)
    proba = model.predict_proba(X)[:, 1]
    assert ((proba >= model.threshold_) == (y == 1)).mean() > 0.9
    assert 0 < model.threshold_ < 1
    spec = (model.oof_proba_[y == 0] < model.threshold_).mean()
    assert spec >= 0.97
    shap_values, base = model.explain(X)
    assert shap_values.shape == (len(X), 114)
    np.testing.assert_allclose(shap_values.sum(1) + base, model.margin(X), atol=1e-4)
    explainer = model.tree_explainer()  # the shap library's TreeExplainer gives the same values
    np.testing.assert_allclose(shap_values, np.asarray(explainer.shap_values(X)), atol=1e-4)
    assert base == pytest.approx(float(np.asarray(explainer.expected_value).reshape(-1)[0]), abs=1e-4)
    top = model.top_features(shap_values[0])
    assert top[0]["name"] in ("neutrophil: degranulation", "large platelet: giant platelet")
    model.save(tmp_path / "m")
    again = MdsDiagnoser.load(tmp_path / "m")
    assert again.native_ is not None  # served through XGBoost's C API
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X), atol=1e-6)
    again_shap, again_base = again.explain(X)
    np.testing.assert_allclose(again_shap, shap_values, atol=1e-6)
    assert again_base == pytest.approx(base, abs=1e-6)
    assert again.threshold_ == model.threshold_
    assert not list((tmp_path / "m").glob("*.pkl"))


def test_native_booster_rejects_bad_files_and_shapes(tmp_path):
    from diagnose.native_booster import NativeBooster
    (tmp_path / "bad.ubj").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="xgboost cannot read it"):
        NativeBooster(tmp_path / "bad.ubj", 114)
    X, y = _cohort(40)
    MdsDiagnoser(DiagnoserConfig(n_estimators=10, n_folds=2), random_state=0).fit(X, y).save(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="expected 5"):
        NativeBooster(tmp_path / "m" / "diagnoser.ubj", 5)
    booster = NativeBooster(tmp_path / "m" / "diagnoser.ubj", 114)
    with pytest.raises(ValueError, match="114"):
        booster.margin(np.zeros((2, 7)))


def test_loading_and_running_the_shipped_diagnoser_does_not_import_xgboost():
    import subprocess
    import sys
    code = ("import sys, pandas as pd, numpy as np\n"
            "from diagnose.model import MdsDiagnoser\n"
            "m = MdsDiagnoser.load()\n"
            "X = pd.DataFrame(np.full((1, 114), np.nan), columns=m.feature_names_)\n"
            "m.predict_proba(X); m.explain(X)\n"
            "print(sorted(k for k in ('xgboost', 'sklearn', 'scipy.stats') if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_diagnoser_load_errors_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="expected diagnoser.ubj"):
        MdsDiagnoser.load(tmp_path)
    (tmp_path / "diagnoser.ubj").write_bytes(b"not a model")
    (tmp_path / "metadata.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelLoadError, match="format"):
        MdsDiagnoser.load(tmp_path)


def test_featurizer_transformer_shape():
    class P:
        def __init__(self, t):
            self.type_probs, self.feature_probs = _onehot(t), np.zeros((len(t), 97))
    frame = SmearFeaturizer().fit().transform([P(["SNE"] * 60), P(["LY"] * 70)])
    assert frame.shape == (2, 114) and list(frame.columns) == parameter_ids()


def test_pairing_warning_names_both_stage1_versions():
    from diagnose.pipeline import pairing_warning
    meta = {"training": {"cellnet": "cellnet-20261125-0807-cal202612021312"}}
    assert pairing_warning(meta, "cellnet-20261125-0807-cal202612021312-att202612021640") is None
    assert pairing_warning({"training": {}}, "cellnet-x") is None
    text = pairing_warning(meta, "cellnet-20261204-1309-att202612041313")
    assert "cellnet-20261125-0807-cal202612021312" in text and "cellnet-20261204-1309-att202612041313" in text


def test_test_cohort_rates_have_exact_intervals_that_stay_open_at_100_percent(monkeypatch):
    import diagnose.train as train_module

    class Perfect:  # calls every MDS smear MDS and every AA smear AA
        threshold_ = 0.5

        def predict_proba(self, X):
            p = X["marker"].to_numpy(float)
            return np.stack([1 - p, p], 1)

    n = 150
    test = pd.DataFrame({"marker": np.r_[np.full(n, 0.9), np.full(n, 0.1)], "diagnosis": ["MDS"] * n + ["AA"] * n})
    monkeypatch.setattr(train_module, "parameter_ids", lambda: ["marker"])
    m = train_module.evaluate_diagnoser(Perfect(), test, resamples=200, seed=0)
    assert m["sensitivity"] == m["specificity"] == 1.0
    # Clopper-Pearson lower bound for 150 of 150: 0.025 ** (1 / 150) = 0.9757; a bootstrap would give [1, 1]
    assert m["sensitivity_ci95"][0] == pytest.approx(0.025 ** (1 / n), abs=1e-6)
    assert m["sensitivity_ci95"][1] == 1.0 and m["specificity_ci95"] == m["sensitivity_ci95"]
    assert m["auc_ci95"] == [1.0, 1.0] and m["interval_methods"]["sensitivity"] == "Clopper-Pearson"
