"""Bias-corrected temperature scaling of the type probabilities (models.engine.calibrate, models.engine.infer)."""
from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image
from scipy.special import log_softmax

from models.engine.calibrate import _partial_label_nll, fit_type_calibration, fit_type_temperature

from conftest import synthetic_cell


def _label_shift_sample(n: int, prior: np.ndarray, seed: int):
    """Cells whose logits are class log-likelihoods (what a classifier trained under a uniform prior
    learns), drawn under ``prior``: the calibrated bias should be log(prior), centred."""
    rng = np.random.default_rng(seed)
    k = len(prior)
    y = rng.choice(k, size=n, p=prior)
    centres = np.eye(k) * 2.0
    x = centres[y] + rng.normal(0, 1.0, (n, k))
    logits = log_softmax(-0.5 * ((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    return logits, np.eye(k)[y]


def test_bias_recovers_a_label_shift_and_lowers_held_out_nll():
    prior = np.array([0.7, 0.2, 0.1])
    logits, allowed = _label_shift_sample(6000, prior, seed=0)
    t0 = fit_type_temperature(logits, allowed)
    t, bias = fit_type_calibration(logits, allowed, t0)
    expected = np.log(prior) - np.log(prior).mean()
    assert np.allclose(bias, expected, atol=0.15)
    assert abs(t - 1.0) < 0.1
    assert abs(bias.mean()) < 1e-9
    test_logits, test_allowed = _label_shift_sample(6000, prior, seed=1)
    assert _partial_label_nll(test_logits / t + bias, test_allowed) < _partial_label_nll(test_logits / t0, test_allowed) - 0.02


def test_without_a_shift_the_bias_stays_near_zero():
    logits, allowed = _label_shift_sample(6000, np.full(3, 1 / 3), seed=2)
    _, bias = fit_type_calibration(logits, allowed, fit_type_temperature(logits, allowed))
    assert np.abs(bias).max() < 0.1


def test_predictor_applies_the_type_bias(tiny_models, tmp_path):
    from models.engine.infer import CellPredictor
    image = tmp_path / "cell.jpg"
    Image.fromarray(synthetic_cell(96)).save(image)
    plain = CellPredictor(tiny_models["cellnet"]).predict_files([str(image)])
    biased_dir = tmp_path / "biased"
    shutil.copytree(tiny_models["cellnet"], biased_dir)
    meta = json.loads((biased_dir / "metadata.json").read_text())
    k = int(np.argmin(plain.type_probs[0]))
    meta["calibration"]["type_bias"] = [50.0 if j == k else 0.0 for j in range(17)]
    (biased_dir / "metadata.json").write_text(json.dumps(meta))
    biased = CellPredictor(biased_dir).predict_files([str(image)])
    assert biased.type_probs[0].argmax() == k
    assert np.isclose(biased.type_probs[0].sum(), 1.0)
    assert np.allclose(biased.embedding, plain.embedding)


def test_recalibrating_a_saved_model_gives_it_a_new_version(tmp_path, tiny_models, monkeypatch):
    """Same weights, new probabilities: the version changes, and the weights' version is kept beside it."""
    import pandas as pd

    import models.engine.calibrate
    import models.engine.train
    from models.engine.train import TrainConfig, recalibrate_saved

    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "cells.csv").write_text("path\n")
    monkeypatch.setattr(models.engine.train, "assemble", lambda config, sim: pd.DataFrame({"path": ["a.jpg"], "split": ["val"]}))
    monkeypatch.setattr(models.engine.train, "decode_all", lambda paths, px, threads, field_of_view=1.0: np.zeros((len(paths), px, px, 3)))
    monkeypatch.setattr(models.engine.calibrate, "calibrate", lambda net, images, val: {"type_temperature": 1.5,
                        "feature_temperature": 1.0, "unid_threshold": 0.4})
    recalibrate_saved(folder, TrainConfig(simulated_dir=tmp_path / "sim"), pd.DataFrame())
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["weights_version"] == "cellnet-tiny-test"
    assert meta["version"].startswith("cellnet-tiny-test-cal") and meta["calibration"]["type_temperature"] == 1.5
    assert "fitted" in meta["calibration"]
    recalibrate_saved(folder, TrainConfig(simulated_dir=tmp_path / "sim"), pd.DataFrame())
    again = json.loads((folder / "metadata.json").read_text())
    assert again["weights_version"] == "cellnet-tiny-test" and again["version"].count("-cal") == 1
