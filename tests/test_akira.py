"""AKIRA: gating, loss, oversampling, augmentation, and a tiny end-to-end train / cv / score /
review / relabel on generated images (the real-data run is `mdsdx granules cv`, marked slow)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import synthetic_cell
from core.akira_labels import load_labels
from core.errors import InvalidInput
from models.engine.akira.augment import augment, blank_smear_colour, rotation_views
from models.engine.akira.data import oversample_dg
from models.engine.akira.infer import gate
from simulate.label_table import TABLE1_CELLS, TABLE1_GRADES, table1_rows

L = load_labels()


def test_gating_compares_categories_on_a_common_scale():
    out = np.zeros((2, 34), np.float32)
    out[0, L.index("DG")] = 2.0          # 2/3 = 0.67 on the common scale
    out[0, L.index("EOS")] = 1.0         # 1.0: an eosinophil, so DG is gated to 0
    out[1, L.index("DG")] = 2.4
    out[1, L.index("EOS")] = 0.3
    category, dg = gate(out)
    assert list(category) == ["not_applicable", "granulocytic"]
    assert dg[0] == 0.0 and dg[1] == pytest.approx(2.4)
    # the reference code compared raw outputs and would have called cell 0 granulocytic (2.0 > 1.0)


def test_weighted_mean_quartic_is_a_plain_mean():
    from models.engine.akira.loss import weighted_mean_quartic
    y = np.zeros((2, 34), np.float32)
    p = np.zeros((2, 34), np.float32)
    p[:, L.focus_index] = 1.0
    p[0, 0] = 1.0
    loss = float(weighted_mean_quartic(y, p, L.loss_weights()))
    assert loss == pytest.approx((2 * 10 * 1.0 + 1 * 1.0) / (2 * 34))


def test_oversampling_balances_grades_and_refuses_a_missing_grade():
    dg = np.array([0] * 40 + [1] * 4 + [2] * 8 + [3] * 10, float)
    idx = oversample_dg(np.arange(len(dg)), dg)
    counts = np.bincount(dg[idx].astype(int))
    assert counts[0] == 40 and counts[1] == 40 and counts[2] == 40 and counts[3] == 40
    with pytest.raises(InvalidInput, match="no image of DG grade 3"):
        oversample_dg(np.arange(52), dg[:52])
    # n0 from the 20 granulocytic DG0 images only (the other 20 DG0 images are, say, lymphocytes)
    granulocytic = np.array([True] * 20 + [False] * 20 + [True] * 22)
    idx = oversample_dg(np.arange(len(dg)), dg, granulocytic)
    counts = np.bincount(dg[idx].astype(int))
    assert counts[0] == 40 and counts[1] == 20 and counts[2] == 16 and counts[3] == 20


def test_oversampling_reference_is_checked():
    from models.engine.akira.train import AkiraTrainConfig
    assert AkiraTrainConfig().oversample_grade0 == "all"  # the reference
    with pytest.raises(InvalidInput, match="oversample_grade0"):
        AkiraTrainConfig(oversample_grade0="neutrophils")


def test_table1_mix_follows_mori_table1_and_caps_at_the_pools():
    pools = {source: [f"{source}/{i}.jpg" for i in range(n)] for source, n in
             [("pbc/segmented_neutrophil", 300), ("marrow/segmented_neutrophil", 100), ("pbc/erythroblast", 50),
              ("pbc/myelocyte", 500), ("pbc/lymphocyte", 200), ("pbc/basophil", 10)]}
    rows = table1_rows(pools, L, np.random.default_rng(0))
    by_id = pd.Series([label_id for _, _, label_id, _ in rows]).value_counts()
    assert by_id["IG"] == TABLE1_CELLS["IG"] and by_id["LYM"] == TABLE1_CELLS["LYM"] and by_id["BAS"] == 1
    assert by_id["NE"] == 50  # capped: the pool holds fewer than Table 1's 392
    grades = [g for _, _, label_id, g in rows if label_id == "NN"]
    for slot, counts in TABLE1_GRADES.items():
        assert [sum(1 for g in grades if g.get(slot) == k) for k in (1, 2, 3)] == list(counts)
    assert sum(1 for g in grades if not g) == TABLE1_CELLS["NN"]
    assert len({path for path, *_ in rows}) == len(rows)  # no crop drawn twice


def test_augmentation_geometry_and_background():
    rgb = synthetic_cell(256)
    rng = np.random.default_rng(0)
    view = augment(rgb, 112, rng)
    assert view.shape == (112, 112, 3)
    bg = np.array(blank_smear_colour(rgb), float)
    assert np.abs(view[0, 0].astype(float) - bg).max() < 25  # blank-smear colour, not black
    views = rotation_views(rgb, 112)
    assert views.shape == (16, 112, 112, 3)
    assert not np.array_equal(views[0], views[4])
    assert np.abs(views[8].astype(float) - views[0][::-1, ::-1].astype(float)).mean() < 6  # 180 degrees, within a pixel


def _texture_energy(view: np.ndarray) -> float:
    """Mean squared difference of the green channel from its 3x3 box mean, over the view's centre."""
    from scipy.ndimage import uniform_filter
    g = view[..., 1].astype(float)
    c = slice(view.shape[0] // 4, 3 * view.shape[0] // 4)
    return float(((g - uniform_filter(g, 3))[c, c] ** 2).mean())


def test_bicubic_rotation_keeps_the_fine_texture_at_every_angle():
    """Granule-scale texture (pixel noise) survives a 22.5-degree view with bicubic rotation, while
    bilinear rotation averages much of it away; a multiple of 90 degrees is exact with both."""
    rng = np.random.default_rng(0)
    rgb = (180 + rng.normal(0, 25, (128, 128, 3))).clip(0, 255).astype(np.uint8)
    ratio = {}
    for name in ("bilinear", "bicubic"):
        views = rotation_views(rgb, 112, interpolation=name)
        ratio[name] = _texture_energy(views[1]) / _texture_energy(views[0])
        assert _texture_energy(views[4]) == pytest.approx(_texture_energy(views[0]), rel=0.02)
    assert ratio["bilinear"] < 0.6 and ratio["bicubic"] > 0.8  # white noise measured 0.42 and 0.85
    view = augment(rgb, 112, np.random.default_rng(1), "bicubic")
    assert view.shape == (112, 112, 3)
    with pytest.raises(ValueError, match="rotation_interpolation 'nearest'"):
        rotation_views(rgb, 112, interpolation="nearest")


def test_unknown_rotation_interpolation_is_one_line_and_exit_2(tmp_path):
    from cli import cli
    config = tmp_path / "bad.yaml"
    config.write_text("rotation_interpolation: lanczos\n")
    r = CliRunner().invoke(cli, ["granules", "cv", "--labels", str(tmp_path), "--out", str(tmp_path / "cv"),
                                 "--config", str(config)])
    assert r.exit_code == 2 and "rotation_interpolation 'lanczos'" in r.output
    assert not (tmp_path / "cv").exists()


def _tiny_table(root):
    """36 generated neutrophil-like and other images with all DG grades, in the reference layout."""
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(36):
        rgb = synthetic_cell(96, seed=i)
        y = dict.fromkeys(L.ids, 0.0)
        if i < 24:
            grade = i % 4
            if grade:
                y["DG"] = float(grade)
                rgb = (rgb.astype(float) * (1 - 0.1 * grade) + 20 * grade).clip(0, 255).astype(np.uint8)
            else:
                y["NN"] = 1.0
        else:
            y[["LYM", "EOS", "NE"][i % 3]] = 1.0
        name = f"img_{i:03d}.jpg"
        Image.fromarray(rgb).save(root / "images" / name)
        rows.append({"Filename": name, **y})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    sources = ["marrow/segmented_neutrophil" if i % 2 else "pbc/segmented_neutrophil" for i in range(36)]
    pd.DataFrame({"Filename": [r["Filename"] for r in rows], "source": sources}).to_csv(root / "provenance.csv", index=False)


def test_tiny_end_to_end(tmp_path):
    from cli import cli
    labels_dir = tmp_path / "labels"
    _tiny_table(labels_dir)
    config = tmp_path / "tiny.yaml"
    config.write_text("input_px: 48\nwidth: 8\nmiddle_width: 32\nmiddle_blocks: 1\nepochs: 1\nfolds: 2\n"
                      "init_from_cellnet: null\nrotation_interpolation: bicubic\n")
    runner = CliRunner()
    r = runner.invoke(cli, ["granules", "cv", "--labels", str(labels_dir), "--out", str(tmp_path / "cv"),
                            "--config", str(config)])
    assert r.exit_code == 0, r.output
    preds = pd.read_csv(tmp_path / "cv" / "cv_predictions.csv")
    assert len(preds) == 36 and set(preds["fold"]) == {0, 1}
    assert {"out_DG", "spread_DG", "dg_score", "dg_grade", "category"} <= set(preds.columns)
    metrics = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert "dg1_3" in metrics and "dg2_3" in metrics

    r = runner.invoke(cli, ["granules", "train", "--labels", str(labels_dir), "--out", str(tmp_path / "model"),
                            "--config", str(config)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["granules", "score", str(labels_dir / "images"), "--out", str(tmp_path / "scores.csv"),
                            "--model", str(tmp_path / "model")])
    assert r.exit_code == 0, r.output
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns) == ["path", "category", "dg_score", "dg_grade", "status", "message"] and len(scores) == 36
    scored = scores["status"] == "scored"
    assert (scored == (scores["category"] == "granulocytic")).all()
    assert scores.loc[scored, "dg_grade"].between(0, 3).all()
    assert scores.loc[~scored, ["dg_score", "dg_grade"]].isna().all().all()  # gated: the grade does not apply
    from models.engine.akira.infer import GranuleScorer
    scorer = GranuleScorer(tmp_path / "model")
    assert scorer.rotation_interpolation == "bicubic"  # inference rotates as the model's training did
    one_by_one = scorer.score_files([p for p in scores["path"][:3]])
    np.testing.assert_allclose(scores["dg_score"][:3].fillna(0.0), one_by_one.dg_score, atol=1e-4)  # the pipelined scoring
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("img_000.jpg", "img_001.jpg"):
        (mixed / name).write_bytes((labels_dir / "images" / name).read_bytes())
    (mixed / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    r = runner.invoke(cli, ["granules", "score", str(mixed), "--out", str(tmp_path / "mixed.csv"),
                            "--model", str(tmp_path / "model")])
    assert r.exit_code == 1, r.output
    assert "skipped: broken.jpg" in r.output and "1 skipped" in r.output
    mixed_scores = pd.read_csv(tmp_path / "mixed.csv")
    assert sorted(mixed_scores["path"].map(lambda p: Path(p).name)) == ["broken.jpg", "img_000.jpg", "img_001.jpg"]
    assert mixed_scores.set_index(mixed_scores["path"].map(lambda p: Path(p).name)).loc["broken.jpg", "status"] == "skipped"
    not_images = tmp_path / "not_images"
    not_images.mkdir()
    (not_images / "notes.jpg").write_text("these are notes")
    r = runner.invoke(cli, ["granules", "score", str(not_images), "--out", str(tmp_path / "none.csv"),
                            "--model", str(tmp_path / "model")])
    assert r.exit_code == 1 and "0 scored, 0 gated, 1 skipped" in r.output
    assert pd.read_csv(tmp_path / "none.csv")["status"].tolist() == ["skipped"]

    r = runner.invoke(cli, ["granules", "review", "--cv", str(tmp_path / "cv"), "--labels", str(labels_dir),
                            "--out", str(tmp_path / "review")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "review" / "review.html").read_text().startswith("<!doctype html>")
    reviewed = pd.read_csv(tmp_path / "review" / "review.csv")
    assert set(reviewed["source"]) <= {"marrow/segmented_neutrophil", "pbc/segmented_neutrophil"}
    assert len(reviewed) > 0 and reviewed["source"].iloc[0] in (tmp_path / "review" / "review.html").read_text()

    corrections = tmp_path / "corr.csv"
    corrections.write_text("Filename,label,new_value,who\nimg_001.jpg,DG,2,dr_a\n")
    r = runner.invoke(cli, ["granules", "relabel", "--labels", str(labels_dir), "--corrections", str(corrections)])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(labels_dir / "labels.csv")
    assert table.loc[table.Filename == "img_001.jpg", "DG"].item() == 2.0
    history = pd.read_csv(labels_dir / "label_history.csv")
    assert history.iloc[0][["old_value", "new_value", "who"]].tolist() == [1.0, 2.0, "dr_a"]
    # The finished folds are of the old labels: resuming that CV folder is refused and nothing in it changes.
    before = (tmp_path / "cv" / "cv_predictions.csv").read_bytes()
    r = runner.invoke(cli, ["granules", "cv", "--labels", str(labels_dir), "--out", str(tmp_path / "cv"),
                            "--config", str(config)])
    assert r.exit_code == 2 and "holds a CV of other labels" in r.output
    assert (tmp_path / "cv" / "cv_predictions.csv").read_bytes() == before

    bad = tmp_path / "bad.csv"
    bad.write_text("Filename,label,new_value,who\nimg_001.jpg,DG,7,dr_a\n")
    r = runner.invoke(cli, ["granules", "relabel", "--labels", str(labels_dir), "--corrections", str(bad)])
    assert r.exit_code == 2 and "between 0 and 3" in r.output
    assert pd.read_csv(labels_dir / "labels.csv").equals(table)  # nothing half-applied

    # the model card, whose summary names a departure from the reference oversampling
    from models.export.model_card import akira_card
    card = akira_card(tmp_path / "model", tmp_path / "cv", ["mdsdx granules train ..."])
    text = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "| DG0 |" in text and "SIMULATED" in text and "departs from the reference" not in card["summary"]
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    meta["config"]["oversample_grade0"] = "granulocytic"
    (tmp_path / "model" / "metadata.json").write_text(json.dumps(meta))
    assert "departs from the reference" in akira_card(tmp_path / "model", tmp_path / "cv", [])["summary"]
    # a repeat of the CV with another seed is one more row, named by its seed, with its false positives
    repeat = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    repeat["config"]["seed"] = 7
    (tmp_path / "cv7").mkdir()
    (tmp_path / "cv7" / "metrics.json").write_text(json.dumps(repeat))
    rows = akira_card(tmp_path / "model", tmp_path / "cv", [], repeat_cv_dirs=[tmp_path / "cv7"])["metrics"]
    row = next(v[0] for k, v in rows.items() if "seed 7" in k)
    assert f"({sum(repeat['confusion'][0][1:])} false positives)" in row


def test_weight_average_warms_up_and_swaps():
    import tensorflow as tf
    from models.engine.akira.train import WeightAverage
    v = tf.Variable([0.0, 2.0])
    ema = WeightAverage([v], decay=0.5)
    v.assign([1.0, 1.0])
    ema.update()  # decay min(0.5, 2/11): the average moves most of the way at the start
    np.testing.assert_allclose(ema.shadow[0].numpy(), [9 / 11, 13 / 11], rtol=1e-6)
    v.assign([3.0, 3.0])
    ema.update()  # now min(0.5, 3/12) = 0.25
    expected = 0.25 * np.array([9 / 11, 13 / 11]) + 0.75 * 3.0
    live = ema.swap_in()
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6)
    ema.restore(live)
    np.testing.assert_allclose(v.numpy(), [3.0, 3.0])
    with pytest.raises(ValueError):
        WeightAverage([v], decay=1.0)


def test_cv_in_two_worker_processes_matches_one(tmp_path):
    from models.engine.akira.train import AkiraTrainConfig, cross_validate
    _tiny_table(tmp_path / "labels")
    config = AkiraTrainConfig(input_px=48, width=8, middle_width=32, middle_blocks=1, epochs=1, folds=2,
                              init_from_cellnet=None, ema_decay=0.9)
    cross_validate(tmp_path / "labels", tmp_path / "one", config, workers=1)
    cross_validate(tmp_path / "labels", tmp_path / "two", config, workers=2)  # both folds at once
    one = pd.read_csv(tmp_path / "one" / "cv_predictions.csv")
    two = pd.read_csv(tmp_path / "two" / "cv_predictions.csv")
    assert len(one) == 36 and set(one["fold"]) == {0, 1}
    # A worker gets fewer TF threads than the lone run, so sums are reordered: equal up to float round-off.
    pd.testing.assert_frame_equal(one, two, check_exact=False, rtol=1e-2, atol=1e-5)
    assert not list((tmp_path / "two").glob("*.part"))
    by_source = json.loads((tmp_path / "two" / "metrics.json").read_text())["by_source"]
    assert set(by_source) == {"marrow/segmented_neutrophil", "pbc/segmented_neutrophil"}
    assert sum(g["n"] for g in by_source.values()) == 36


def test_paper_config_builds_resnet152():
    from models.architecture.akira import AkiraConfig, build_akira
    model = build_akira(AkiraConfig(backbone="paper", input_px=64))
    assert model.output.shape[-1] == 34
    assert model.get_layer("backbone").count_params() > 50_000_000
    out = np.asarray(model(np.zeros((1, 64, 64, 3), np.float32)))
    assert (out >= 0).all() and (out <= L.maxval + 1e-6).all()


def _tiny_fit_inputs(tmp_path):
    from models.engine.akira.data import read_label_table
    from models.engine.akira.train import _load_images
    _tiny_table(tmp_path / "labels")
    table = read_label_table(tmp_path / "labels" / "labels.csv")
    images = _load_images(table, tmp_path / "labels" / "images")
    y = table[list(L.ids)].values.astype("float32")
    idx = np.arange(len(y))
    return images, y, idx[idx % 6 != 0], idx[idx % 6 == 0]


def test_a_stopped_run_resumes_after_its_last_epoch(tmp_path):
    from dataclasses import replace
    from models.engine.akira.train import AkiraTrainConfig, fit_akira
    images, y, train_idx, val_idx = _tiny_fit_inputs(tmp_path)
    two = AkiraTrainConfig(input_px=48, width=8, middle_width=32, middle_blocks=1, epochs=2,
                           init_from_cellnet=None, ema_decay=0.9)
    straight, straight_loss = fit_akira(images, y, train_idx, val_idx, two)

    ckpt = tmp_path / "resume"
    fit_akira(images, y, train_idx, val_idx, replace(two, epochs=1), checkpoint_dir=ckpt)  # "stopped" after epoch 1
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 1 and (ckpt / state["best_file"]).is_file()
    resumed, resumed_loss = fit_akira(images, y, train_idx, val_idx, two, checkpoint_dir=ckpt)
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2
    assert len([p for p in ckpt.iterdir() if p.name.endswith(".index")]) == 1  # earlier epochs removed
    np.testing.assert_allclose(resumed_loss, straight_loss, rtol=1e-6)  # the same draws as one run
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    other = replace(two, seed=1)  # another run's folder is not resumed
    fit_akira(images, y, train_idx, val_idx, replace(other, epochs=1), checkpoint_dir=ckpt)
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 1


def test_extra_training_images_join_training_parts_only(tmp_path, monkeypatch):
    import models.engine.akira.train as train_module
    from models.engine.akira.train import AkiraTrainConfig, cross_validate
    _tiny_table(tmp_path / "labels")
    _tiny_table(tmp_path / "extra")
    for folder, crops in (("labels", "main"), ("extra", "other")):
        provenance = pd.read_csv(tmp_path / folder / "provenance.csv")
        provenance["crop"] = [f"/{crops}/{name}" for name in provenance["Filename"]]
        provenance.to_csv(tmp_path / folder / "provenance.csv", index=False)
    seen = []
    real_fit = train_module.fit_akira

    def recording_fit(images, y, train_idx, val_idx, config, **kw):
        seen.append((len(images), set(train_idx.tolist()), set(val_idx.tolist())))
        return real_fit(images, y, train_idx, val_idx, config, **kw)
    monkeypatch.setattr(train_module, "fit_akira", recording_fit)
    config = AkiraTrainConfig(input_px=48, width=8, middle_width=32, middle_blocks=1, epochs=1, folds=2,
                              init_from_cellnet=None, extra_train=str(tmp_path / "extra"))
    cross_validate(tmp_path / "labels", tmp_path / "cv", config)
    extra = set(range(36, 72))
    assert len(seen) == 2
    for n_images, train_idx, val_idx in seen:
        assert n_images == 72 and extra <= train_idx and not extra & val_idx
    preds = pd.read_csv(tmp_path / "cv" / "cv_predictions.csv")
    assert len(preds) == 36 and preds["Filename"].is_unique  # test folds: the main table alone
    assert "extra_train_sha256" in json.loads((tmp_path / "cv" / "cv_run.json").read_text())

    provenance = pd.read_csv(tmp_path / "extra" / "provenance.csv")
    provenance.loc[0, "crop"] = "/main/img_005.jpg"  # one crop in both tables
    provenance.to_csv(tmp_path / "extra" / "provenance.csv", index=False)
    with pytest.raises(InvalidInput, match="shares 1 source crops"):
        cross_validate(tmp_path / "labels", tmp_path / "cv2", config)


def test_label_table_from_one_source_and_split(tmp_path):
    from simulate.label_table import LabelTableConfig, build_label_table
    rows = []
    for source, label in (("marrow", "segmented_neutrophil"), ("pbc", "band_neutrophil"), ("pbc", "lymphocyte")):
        for split in ("train", "val"):
            for k in range(4):
                path = tmp_path / "crops" / f"{source}_{label}_{split}_{k}.jpg"
                path.parent.mkdir(exist_ok=True)
                Image.fromarray(synthetic_cell(96, seed=k)).save(path)
                rows.append({"path": str(path), "source": source, "source_label": label, "split": split})
    frame = pd.DataFrame(rows)
    config = LabelTableConfig(neutrophils=10, sources=("marrow/segmented_neutrophil",), seed=0)
    table = build_label_table(frame, tmp_path / "out", config, splits=("train",))
    provenance = pd.read_csv(tmp_path / "out" / "provenance.csv")
    assert len(table) == 4 and set(provenance["source"]) == {"marrow/segmented_neutrophil"}
    assert all("_train_" in crop for crop in provenance["crop"])
    with pytest.raises(InvalidInput, match="unknown source"):
        build_label_table(frame, tmp_path / "bad", LabelTableConfig(sources=("marrow/nonsense",)))


def test_label_table_of_normal_neutrophils_only(tmp_path):
    from core.akira_labels import load_labels
    from simulate.label_table import LabelTableConfig, build_label_table
    rows = []
    for label in ("segmented_neutrophil", "band_neutrophil"):
        for k in range(6):
            path = tmp_path / "crops" / f"{label}_{k}.jpg"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(synthetic_cell(96, seed=k)).save(path)
            rows.append({"path": str(path), "source": "pbc", "source_label": label, "split": "train"})
    config = LabelTableConfig(neutrophils=12, dg_share=0.0, other_dysplasia_share=0.0, seed=0)
    table = build_label_table(pd.DataFrame(rows), tmp_path / "out", config, splits=("train",))
    ids = load_labels().ids
    assert len(table) == 12 and (table["NN"] == 1).all()
    assert (table[[i for i in ids if i != "NN"]] == 0).all().all()  # no DG, HS, HYPES or ACC drawn


def test_labels_cli_refuses_shares_with_table1(tmp_path):
    from cli import cli
    r = CliRunner().invoke(cli, ["granules", "labels", "--out", str(tmp_path / "t"), "--mix", "table1", "--dg-share", "0"])
    assert r.exit_code != 0 and "balanced mix" in r.output
    assert not (tmp_path / "t" / "labels.csv").exists()


def test_frozen_batchnorm_normalises_with_moving_statistics_in_training():
    import keras

    from models.architecture.akira import backbone_variables, build_akira
    from models.engine.akira.train import AkiraTrainConfig, freeze_batchnorm
    model = build_akira(AkiraTrainConfig(input_px=48, width=8, middle_width=32, middle_blocks=1).net())
    backbone = model.get_layer("backbone")  # before the head's dropout
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 3)).astype("float32")
    trainable_before = len(backbone_variables(model))
    assert not np.allclose(backbone(x, training=True), backbone(x, training=False), atol=1e-5)
    frozen = freeze_batchnorm(model)
    assert frozen > 0
    np.testing.assert_allclose(backbone(x, training=True), backbone(x, training=False), atol=1e-5)
    assert len(backbone_variables(model)) == trainable_before - 2 * frozen  # scale and offset of each
    assert all(not layer.trainable for layer in model.get_layer("backbone").layers
               if isinstance(layer, keras.layers.BatchNormalization))


def test_cv_folders_recorded_before_or_with_later_settings_at_defaults_still_resume(tmp_path):
    from models.engine.akira.train import LATER_DEFAULTS, AkiraTrainConfig, _claim_cv_folder
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    (labels_dir / "labels.csv").write_text("Filename,DG\na.jpg,0\n")
    config = AkiraTrainConfig()
    _claim_cv_folder(tmp_path, labels_dir, config)
    run = json.loads((tmp_path / "cv_run.json").read_text())
    assert not set(LATER_DEFAULTS) & set(run["config"])
    run["config"].update(LATER_DEFAULTS)  # as written by a version that recorded them
    (tmp_path / "cv_run.json").write_text(json.dumps(run))
    _claim_cv_folder(tmp_path, labels_dir, config)
    with pytest.raises(InvalidInput, match="other settings"):
        _claim_cv_folder(tmp_path, labels_dir, AkiraTrainConfig(batchnorm_training=False))
