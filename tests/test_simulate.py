"""Simulator tests: each transform changes what it claims and nothing else; labels, determinism,
hygiene and the CLI's errors. Real-crop tests skip where ../shared/data is absent."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage as ndi

from conftest import needs_shared_data, synthetic_cell
from cli import cli
from core.errors import InvalidInput
from core.taxonomy import load_taxonomy
from simulate.cells import allowed_types, label_vector, parse_feature_string, simulated_feature_ids
from simulate.cohort import CohortConfig, load_disease_config, plan_cohort
from simulate.partition import COHORT_SPLITS
from simulate.segment import segment_cell
from simulate.transforms import TRANSFORMS, decreased_granules, granule_texture_energy


def _granular_cell(seed=0):
    """A synthetic neutrophil: lilac cytoplasm sprinkled with pink-purple granules."""
    rng = np.random.default_rng(seed)
    img = synthetic_cell(256, seed).astype(np.float32)
    masks = segment_cell(img.astype(np.uint8))
    ys, xs = np.nonzero(masks.cytoplasm)
    pick = rng.choice(len(ys), 900, replace=False)
    img[ys[pick], xs[pick]] = (160, 95, 150)
    return np.clip(img, 0, 255).astype(np.uint8)




def test_segmentation_finds_the_synthetic_nucleus():
    masks = segment_cell(synthetic_cell(256))
    assert 1500 < masks.nucleus.sum() < 5000
    assert masks.cell.sum() > 2 * masks.nucleus.sum()
    assert masks.cell[128, 128]


def _pink_neutrophil(seed=0):
    """Colours measured on real MGG crops: cream background, pink red cells, and a pink-lilac granular
    neutrophil cytoplasm only ~15 units of (blue - red) above the red cells. Returns (rgb, true cytoplasm)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.empty((256, 256, 3), np.float32)
    img[:] = (232, 202, 186)
    for cy, cx in [(30, 40), (40, 200), (215, 60), (220, 210), (128, 235), (128, 18)]:
        img[np.hypot(yy - cy, xx - cx) < 24] = (222, 180, 180)
    cell = np.hypot(yy - 128, xx - 128) < 52
    nucleus = np.hypot((yy - 122) * 1.1, xx - 128) < 30  # a third of the cell, as in real neutrophils
    img[cell] = (205, 166, 178)
    speckle = rng.random(img.shape[:2])
    img[cell & (speckle < 0.3)] = (180, 130, 160)
    img[cell & (speckle > 0.8)] = (225, 190, 185)
    img[nucleus] = (110, 60, 140)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), cell & ~nucleus


def test_segmentation_keeps_the_speckled_pink_cytoplasm_of_a_neutrophil():
    rgb, cytoplasm = _pink_neutrophil()
    masks = segment_cell(rgb)
    assert (masks.cytoplasm & cytoplasm).sum() > 0.8 * cytoplasm.sum()
    near_cell = ndi.binary_dilation(ndi.binary_fill_holes(cytoplasm), iterations=6)
    assert (masks.cell & ~near_cell).sum() < 0.05 * cytoplasm.sum()  # no red cell or background


@needs_shared_data
def test_segmentation_covers_real_neutrophil_cytoplasm(data_root):
    paths = sorted((data_root / "pbc" / "segmented_neutrophil").glob("*.jpg"))[:30]
    shares = [segment_cell(np.asarray(Image.open(p).convert("RGB"))).cytoplasm.mean() for p in paths]
    # a neutrophil of ~90 px on a 256-px crop has ~5 % of the crop as cytoplasm; the
    # unsmoothed threshold kept a median of 1.6 %
    assert np.median(shares) > 0.04, np.median(shares)


def test_decreased_granules_texture_falls_with_grade_and_nucleus_is_untouched():
    rgb = _granular_cell()
    masks = segment_cell(rgb)
    energies = []
    for grade in range(4):
        out = decreased_granules(rgb, masks, grade, np.random.default_rng(1))
        energies.append(granule_texture_energy(out, masks))
        assert np.array_equal(out[masks.nucleus], rgb[masks.nucleus]), f"nucleus changed at grade {grade}"
        assert np.array_equal(out[~masks.cell], rgb[~masks.cell]), "background changed"
    assert all(a > b for a, b in zip(energies, energies[1:])), energies
    assert energies[3] < 0.25 * energies[0]


def test_decreased_granules_fades_towards_blue_grey():
    rgb = _granular_cell()
    masks = segment_cell(rgb)
    out = decreased_granules(rgb, masks, 3, np.random.default_rng(0)).astype(float)
    before = rgb[masks.cytoplasm].astype(float).mean(0)
    after = out[masks.cytoplasm].mean(0)
    assert (after[2] - after[0]) > (before[2] - before[0])  # bluer relative to red


@pytest.mark.parametrize("name", ["toxic_granulation", "dohle_bodies", "vacuoles", "chromatin_clumping"])
def test_cytoplasm_and_chromatin_transforms_stay_in_their_compartment(name):
    rgb = _granular_cell(2)
    masks = segment_cell(rgb)
    out = TRANSFORMS[name].fn(rgb, masks, 2, np.random.default_rng(0))
    assert not np.array_equal(out, rgb)
    assert np.array_equal(out[~masks.cell], rgb[~masks.cell])
    if name == "chromatin_clumping":
        assert np.array_equal(out[~masks.nucleus], rgb[~masks.nucleus])
        assert out[masks.nucleus].astype(float).std() > rgb[masks.nucleus].astype(float).std()
    else:
        assert np.array_equal(out[masks.nucleus], rgb[masks.nucleus])


def test_hypersegmentation_makes_at_least_six_lobes():
    rgb = synthetic_cell(256, 3)
    masks = segment_cell(rgb)
    for grade in (1, 2, 3):
        out = TRANSFORMS["hypersegmentation"].fn(rgb, masks, grade, np.random.default_rng(grade))
        dark = out[..., 1] < 100
        cores = ndi.binary_erosion(dark, iterations=2)  # cut the thin filaments between lobes
        n_lobes = ndi.label(cores)[1]
        assert n_lobes >= 6, (grade, n_lobes)


def test_pseudo_pelger_is_bilobed():
    rgb = synthetic_cell(256, 4)
    out = TRANSFORMS["pseudo_pelger"].fn(rgb, segment_cell(rgb), 2, np.random.default_rng(0))
    cores = ndi.binary_erosion(out[..., 1] < 100, iterations=2)
    assert ndi.label(cores)[1] == 2


def test_giant_platelet_grows_with_grade():
    rgb = np.full((256, 256, 3), (235, 205, 200), np.uint8)
    yy, xx = np.mgrid[0:256, 0:256]
    rgb[np.hypot(yy - 128, xx - 128) < 8] = (150, 100, 175)
    masks = segment_cell(rgb)
    areas = [((TRANSFORMS["giant_platelet"].fn(rgb, masks, g, np.random.default_rng(0))[..., 1] < 160).sum()) for g in (1, 2, 3)]
    assert areas[0] < areas[1] < areas[2]


@pytest.mark.parametrize("sigma", [0.7, 2.0, 10.0])
def test_opencv_gaussian_matches_scipy(sigma):
    from simulate.filters import gaussian
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (64, 80, 3)).astype(np.float32)
    np.testing.assert_allclose(gaussian(image, sigma), ndi.gaussian_filter(image, (sigma, sigma, 0)), atol=1e-3)
    mask = rng.random((64, 80)) > 0.5
    np.testing.assert_allclose(gaussian(mask.astype(np.float32), sigma), ndi.gaussian_filter(mask.astype(np.float32), sigma),
                               atol=1e-5)


def test_labels_agree_with_taxonomy():
    tax = load_taxonomy()
    for t in TRANSFORMS.values():
        assert t.feature_id in tax.feature_ids
        assert set(t.cell_types) <= set(tax.feature(t.feature_id).cell_types)
    vec = label_vector("SNE", {"neu_degranulation": 2})
    assert vec[tax.feature_index("neu_degranulation")] == 1
    assert vec[tax.feature_index("neu_pseudo_pelger")] == 0
    assert vec[tax.feature_index("plt_giant")] == -1           # does not apply to a neutrophil
    assert vec[tax.feature_index("ly_cleaved_nucleus")] == -1  # not simulated: unknown
    assert label_vector("SNE", {"neu_degranulation": 1})[tax.feature_index("neu_degranulation")] == -1
    assert parse_feature_string("neu_degranulation:2;plt_giant:1") == {"neu_degranulation": 2, "plt_giant": 1}
    assert set(simulated_feature_ids()) == {t.feature_id for t in TRANSFORMS.values()}


def test_a_rewritten_nucleus_leaves_only_neutrophil_as_the_type_label():
    # band vs segmented is read from the nucleus; a transform that redraws it erases that truth
    for feature in ("neu_pseudo_pelger", "neu_spherical_nucleus", "neu_hypersegmentation"):
        assert allowed_types("SNE", {feature: 2}) == ("BNE", "SNE")
        assert allowed_types("BNE", {feature: 1, "neu_degranulation": 3}) == ("BNE", "SNE")
    assert allowed_types("SNE", {"neu_degranulation": 3, "neu_toxic_granulation": 1}) == ("SNE",)
    assert allowed_types("BNE", {"neu_pseudo_pelger": 0}) == ("BNE",)
    assert allowed_types("LP", {"plt_giant": 3}) == ("LP",)


def test_disease_config_and_plans_are_deterministic():
    diseases = load_disease_config()
    types = set(load_taxonomy().type_abbrs)
    a = plan_cohort(CohortConfig(n_smears=20, seed=5), diseases, types)
    b = plan_cohort(CohortConfig(n_smears=20, seed=5), diseases, types)
    c = plan_cohort(CohortConfig(n_smears=20, seed=6), diseases, types)
    assert a == b and a != c
    assert sorted(p.diagnosis for p in a).count("MDS") == 10
    assert all(100 <= p.n_cells <= 200 for p in a)
    # MDS draws more dysplasia than AA on average
    mds = np.mean([p.feature_rates["neu_degranulation"] for p in a if p.diagnosis == "MDS"])
    aa = np.mean([p.feature_rates["neu_degranulation"] for p in a if p.diagnosis == "AA"])
    assert mds > aa


def test_hard_difficulty_overlaps_more():
    diseases = load_disease_config()
    types = set(load_taxonomy().type_abbrs)
    def gap(level):
        plans = plan_cohort(CohortConfig(n_smears=400, seed=1, difficulty=level), diseases, types)
        r = lambda d: np.array([p.feature_rates["neu_degranulation"] for p in plans if p.diagnosis == d])
        return r("MDS").mean() - r("AA").mean()
    assert gap("hard") < gap("easy")


def test_cli_bad_arguments_are_one_line():
    runner = CliRunner()
    r = runner.invoke(cli, ["simulate", "--out", "x"])
    assert r.exit_code == 2 and "--smears" in r.output
    r = runner.invoke(cli, ["simulate", "--out", "x", "--smears", "2", "--difficulty", "extreme"])
    assert r.exit_code == 2


def test_cli_missing_source_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "c"), "--smears", "2", "--source", str(tmp_path)])
    assert r.exit_code == 2
    assert "expected crops in pbc/<class>/" in r.output
    assert not (tmp_path / "c").exists()


@needs_shared_data
def test_cohort_layout_determinism_and_hygiene(tmp_path, data_root):
    runner = CliRunner()
    for name in ("a", "b"):
        r = runner.invoke(cli, ["simulate", "--out", str(tmp_path / name), "--smears", "3", "--seed", "11",
                                "--cells", "12", "--workers", "1"])
        assert r.exit_code == 0, r.output
    a, b = tmp_path / "a", tmp_path / "b"
    cohort = pd.read_csv(a / "cohort.csv")
    assert list(cohort.columns) == ["smear_id", "diagnosis", "n_cells", "seed"]
    assert set(cohort["diagnosis"]) <= {"MDS", "AA"} and (cohort["n_cells"] == 12).all()
    cells = pd.read_csv(a / "cells.csv", keep_default_na=False)
    assert list(cells.columns) == ["path", "cell_type", "features"]
    assert len(cells) == 36 and (a / cells["path"][0]).is_file()
    assert cells["path"][0].endswith("smear_0001/cell_0001.jpg")
    for p in cells["path"]:
        assert np.array_equal(np.asarray(Image.open(a / p)), np.asarray(Image.open(b / p)))
    assert cells.equals(pd.read_csv(b / "cells.csv", keep_default_na=False))
    # hygiene: a test cohort draws only test-split crops
    from core.datasets import load_all
    split_of = dict(zip(load_all(data_root)["file"], load_all(data_root)["split"]))
    provenance = pd.read_csv(a / "provenance.csv")
    assert {split_of[f] for f in provenance["source_file"]} == set(COHORT_SPLITS["test-cohort"])
    # refusing to overwrite keeps the first cohort intact
    r = runner.invoke(cli, ["simulate", "--out", str(a), "--smears", "1"])
    assert r.exit_code == 2 and "not empty" in r.output
    assert pd.read_csv(a / "cohort.csv").equals(cohort)


@needs_shared_data
def test_partitions_never_share_crops(data_root):
    from core.datasets import load_all
    from simulate.cells import CropPool
    frame = load_all(data_root)
    pools = {name: CropPool.from_frame(frame, splits) for name, splits in COHORT_SPLITS.items() if name != "all"}
    files = {name: {f for items in pool.by_type.values() for _, f in items} for name, pool in pools.items()}
    assert not files["train-cohort"] & files["test-cohort"]
    cnn_train = set(frame.loc[frame.split == "train", "file"])
    assert not files["test-cohort"] & cnn_train


@needs_shared_data
def test_transforms_on_real_neutrophils(data_root):
    """On real neutrophils with enough cytoplasm to measure (>= 1500 px at 256 px), granule texture
    falls at every DG grade and the nucleus is untouched."""
    from core.datasets import load_pbc
    frame = load_pbc(data_root)
    paths = frame.loc[frame.source_label == "segmented_neutrophil", "path"].iloc[:40]
    measured = 0
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        masks = segment_cell(rgb)
        assert masks.nucleus.sum() > 300
        out3 = decreased_granules(rgb, masks, 3, np.random.default_rng(0))
        assert np.array_equal(out3[masks.nucleus], rgb[masks.nucleus])
        if masks.cytoplasm.sum() < 1500:
            continue
        measured += 1
        e = [granule_texture_energy(decreased_granules(rgb, masks, g, np.random.default_rng(0)), masks) for g in range(4)]
        assert all(x > y for x, y in zip(e, e[1:])), (p, e)
    assert measured >= 10


def test_mask_sheet_shows_one_source_and_refuses_an_unknown_one(tmp_path):
    from core.errors import InvalidInput
    from simulate.contact_sheet import TILE_PX, make_mask_sheet
    rows = []
    for k in range(10):
        path = tmp_path / f"cell_{k}.jpg"
        Image.fromarray(synthetic_cell(96, seed=k)).save(path)
        rows.append({"path": str(path), "source": "marrow" if k < 6 else "pbc", "source_label": "segmented_neutrophil"})
    frame = pd.DataFrame(rows)
    sheet = make_mask_sheet(frame, "marrow/segmented_neutrophil", tmp_path / "sheet.png", n=32)
    with Image.open(sheet) as im:
        assert im.size == (8 * TILE_PX, 2 * TILE_PX + 24)  # 6 crops: one row of crops over their masks
        overlay = np.asarray(im.convert("RGB"))[24 + TILE_PX:, :TILE_PX].astype(int)
    assert ((overlay[..., 1] - overlay[..., 0]) > 60).any()  # the green nucleus overlay is drawn
    with pytest.raises(InvalidInput, match="no crops of source"):
        make_mask_sheet(frame, "marrow/blast", tmp_path / "none.png")


def _crowded_marrow_field(seed=0):
    """A bone-marrow-like crop: a pale granular neutrophil in the centre, a touching neighbour with a dark
    nucleus and blue cytoplasm, and more cells than background, so the crop median is a cell colour.
    Returns (rgb, true cytoplasm of the central cell, neighbour cell)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.empty((256, 256, 3), np.float32)
    img[:] = (205, 200, 215)  # grey-lilac background
    for cy, cx in [(20, 20), (20, 236), (236, 20), (236, 236), (128, 10)]:  # crowding cells
        img[np.hypot(yy - cy, xx - cx) < 45] = (120, 110, 190)
        img[np.hypot(yy - cy, xx - cx) < 25] = (70, 40, 120)
    neighbour = np.hypot(yy - 128, xx - 222) < 46
    img[neighbour] = (125, 120, 195)
    img[np.hypot(yy - 128, xx - 228) < 26] = (70, 40, 120)
    cell = np.hypot(yy - 128, xx - 128) < 50
    nucleus = np.hypot((yy - 124) * 1.1, xx - 126) < 28
    img[cell] = (215, 185, 215)  # pale pink-lilac, close to the background
    speckle = rng.random(img.shape[:2])
    img[cell & (speckle < 0.25)] = (190, 150, 200)
    img[nucleus] = (95, 55, 140)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), cell & ~nucleus, neighbour & ~cell


def test_marrow_segmenter_finds_pale_cytoplasm_and_leaves_the_touching_neighbour():
    from simulate.segment import segment_for_source, segment_marrow_cell
    rgb, cytoplasm, neighbour = _crowded_marrow_field()
    masks = segment_marrow_cell(rgb)
    assert (masks.cytoplasm & cytoplasm).sum() > 0.6 * cytoplasm.sum()
    assert (masks.cell & neighbour).sum() < 0.05 * neighbour.sum()
    central_cell = np.hypot(*np.mgrid[-128:128, -128:128]) < 50
    assert not (masks.nucleus & ~ndi.binary_dilation(central_cell, iterations=3)).any()
    assert segment_for_source(rgb, "marrow/segmented_neutrophil").cell.sum() == masks.cell.sum()
    pbc = segment_cell(rgb)
    assert segment_for_source(rgb, "pbc/segmented_neutrophil").cell.sum() == pbc.cell.sum()
    assert segment_for_source(rgb, "marrow/segmented_neutrophil", marrow="pbc").cell.sum() == pbc.cell.sum()


def test_matched_design_shares_the_type_mix_literature_does_not():
    """The matched design draws MDS and AA type mixes from one distribution: no type's proportion
    differs between the diagnoses (two-sample KS per type, Bonferroni over 17), while the literature
    design separates the lymphocyte share by itself."""
    from scipy.stats import ks_2samp
    diseases = load_disease_config()
    types = set(load_taxonomy().type_abbrs)
    abbrs = load_taxonomy().type_abbrs

    def pvalues(design):
        plans = plan_cohort(CohortConfig(n_smears=600, seed=5, design=design), diseases, types)
        mix = lambda d: np.array([[p.type_probs[a] for a in abbrs] for p in plans if p.diagnosis == d])
        return dict(zip(abbrs, (ks_2samp(m, a).pvalue for m, a in zip(mix("MDS").T, mix("AA").T))))

    matched = pvalues("matched")
    assert min(matched.values()) > 0.05 / len(abbrs), matched
    assert pvalues("literature")["LY"] < 1e-20
    plans = plan_cohort(CohortConfig(n_smears=200, seed=3, design="matched"), diseases, types)
    # the reactive features are shared too; only the dysplasia features keep the diseases' own rates
    from simulate.cohort import dysplasia_features
    shared = diseases["designs"]["matched"]["shared_feature_rates"]
    for p in plans:
        assert set(p.feature_rates) == dysplasia_features(diseases) | set(shared)
    gap = lambda f: (np.mean([p.feature_rates[f] for p in plans if p.diagnosis == "MDS"])
                     - np.mean([p.feature_rates[f] for p in plans if p.diagnosis == "AA"]))
    assert gap("neu_degranulation") > 0.15 and abs(gap("neu_toxic_granulation")) < 0.02


def test_dysplasia_rate_replaces_the_mds_rates_and_keeps_the_smears():
    diseases = load_disease_config()
    types = set(load_taxonomy().type_abbrs)
    from simulate.cohort import dysplasia_features
    at = {r: plan_cohort(CohortConfig(n_smears=30, seed=8, design="matched", dysplasia_rate=r), diseases, types)
          for r in (0.0, 0.3)}
    for a, b in zip(at[0.0], at[0.3]):
        assert (a.diagnosis, a.type_probs, a.n_cells, a.stain_gain, a.focus_sigma_px) == \
               (b.diagnosis, b.type_probs, b.n_cells, b.stain_gain, b.focus_sigma_px)
        if a.diagnosis == "MDS":
            assert (a.dysplasia_rate, b.dysplasia_rate) == (0.0, 0.3)
            assert not set(a.feature_rates) & dysplasia_features(diseases)
        else:
            assert a == b and a.dysplasia_rate is None
    with pytest.raises(InvalidInput):
        plan_cohort(CohortConfig(n_smears=2, design="matched", dysplasia_rate=1.5), diseases, types)
    with pytest.raises(InvalidInput):
        plan_cohort(CohortConfig(n_smears=2, design="balanced"), diseases, types)


@needs_shared_data
def test_dysplasia_rate_shows_in_the_cell_labels(tmp_path, data_root):
    """At R = 0.3 about 30 % of MDS neutrophils and large platelets carry one dysplasia label; AA smears
    and every cell not dysplastic at either rate are byte-identical to the R = 0 cohort of one seed."""
    from scipy.stats import binomtest

    from simulate.cohort import dysplasia_features, lineage_types
    diseases = load_disease_config()
    runner = CliRunner()
    for r in ("0", "0.3"):
        res = runner.invoke(cli, ["simulate", "--out", str(tmp_path / r), "--smears", "8", "--seed", "4", "--cells", "80",
                                  "--design", "matched", "--dysplasia-rate", r, "--workers", "1"])
        assert res.exit_code == 0, res.output
    dysplastic = dysplasia_features(diseases)
    frames = {}
    for r in ("0", "0.3"):
        cells = pd.read_csv(tmp_path / r / "cells.csv", keep_default_na=False)
        cohort = pd.read_csv(tmp_path / r / "cohort.csv")
        cells["diagnosis"] = cells["path"].str.split("/").str[0].map(dict(zip(cohort.smear_id, cohort.diagnosis)))
        cells["labels"] = cells["features"].map(lambda s: set(parse_feature_string(s)) & dysplastic)
        frames[r] = cells
    high = frames["0.3"]
    for lineage, weights in diseases["dysplasia_lineages"].items():
        own = high[(high.diagnosis == "MDS") & high.cell_type.isin(lineage_types(weights))]
        k = int(own["labels"].map(bool).sum())
        assert binomtest(k, len(own), 0.3).pvalue > 0.001, (lineage, k, len(own))
        assert own["labels"].map(len).max() <= 1
    assert not frames["0"].loc[frames["0"].diagnosis == "MDS", "labels"].map(bool).any()
    params = pd.read_csv(tmp_path / "0.3" / "smear_parameters.csv")
    assert set(params["design"]) == {"matched"} and params["dysplasia_rate"].dropna().eq(0.3).all()
    same = 0
    for (_, a), (_, b) in zip(frames["0"].iterrows(), frames["0.3"].iterrows()):
        if a.diagnosis == "AA" or not (a["labels"] or b["labels"]):
            assert (tmp_path / "0" / a.path).read_bytes() == (tmp_path / "0.3" / b.path).read_bytes()
            same += 1
    assert same > 0.8 * len(frames["0"])
