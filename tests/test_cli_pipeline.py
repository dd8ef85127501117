"""`mdsdx cells classify` and `mdsdx diagnose` driven through click's CliRunner with tiny models."""
import pandas as pd
from click.testing import CliRunner

from conftest import jpeg_bytes
from cli import cli


def _smear(folder, n, seed=0):
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"cell_{i:04d}.jpg").write_bytes(jpeg_bytes(seed + i, px=120 if i % 2 else 96))
    return folder


def test_cells_classify_columns_and_bad_file(tmp_path, tiny_models):
    smear = _smear(tmp_path / "s1" / "nested", 5)
    (smear / "broken.jpg").write_bytes(b"not really a jpeg")
    out = tmp_path / "preds.csv"
    r = CliRunner().invoke(cli, ["cells", "classify", str(tmp_path / "s1"), "--out", str(out),
                                 "--model", str(tiny_models["cellnet"])])
    assert r.exit_code == 1, r.output  # a skipped input: exit 1, and the table says which and why
    assert "skipped: broken.jpg" in r.stderr
    assert "5 cells classified, 1 skipped" in r.stderr
    frame = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert len(frame) == 6
    skipped = frame[frame["status"] == "skipped"]
    assert skipped["path"].str.endswith("broken.jpg").all() and len(skipped) == 1
    assert "broken.jpg" in skipped["message"].iloc[0] and skipped["cell_type"].isna().all()
    frame = frame[frame["status"] == "ok"]
    assert len(frame) == 5
    cols = list(frame.columns)
    assert cols[:3] == ["path", "cell_type", "confidence"]
    assert cols[3:20] == ["p_SNE", "p_BNE", "p_MMY", "p_MY", "p_PMY", "p_BL", "p_LY", "p_VLY", "p_MO", "p_EO", "p_BA",
                          "p_LP", "p_MEK", "p_TAG", "p_ERB", "p_SMU", "p_ART"]
    assert len(cols) == 3 + 17 + 97 + 2 and cols[20] == "f_neu_degranulation" and cols[-2:] == ["status", "message"]
    assert frame[cols[3:20]].sum(axis=1).round(3).eq(1.0).all()
    assert frame["f_ly_cleaved_nucleus"].isna().all()  # untrained feature: missing, not a made-up number

    clean = tmp_path / "clean.csv"
    r = CliRunner().invoke(cli, ["cells", "classify", str(smear / "cell_0000.jpg"), "--out", str(clean),
                                 "--model", str(tiny_models["cellnet"])])
    assert r.exit_code == 0 and "1 cells classified, 0 skipped" in r.output


def test_cells_classify_errors(tmp_path, tiny_models):
    runner = CliRunner()
    r = runner.invoke(cli, ["cells", "classify", str(tmp_path / "nope"), "--out", str(tmp_path / "p.csv"),
                            "--model", str(tiny_models["cellnet"])])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(cli, ["cells", "classify", str(tmp_path / "empty"), "--out", str(tmp_path / "p.csv"),
                            "--model", str(tiny_models["cellnet"])])
    assert r.exit_code == 2 and "no image files" in r.output
    _smear(tmp_path / "one", 1)
    r = runner.invoke(cli, ["cells", "classify", str(tmp_path / "one"), "--out", str(tmp_path / "p.csv"),
                            "--model", str(tmp_path)])
    assert r.exit_code == 2 and "expected cellnet.keras and metadata.json" in r.output


def test_diagnose_batch_with_reports_and_a_failing_smear(tmp_path, tiny_models):
    a = _smear(tmp_path / "SMEAR-A", 12)
    b = _smear(tmp_path / "SMEAR-B", 8, seed=50)
    empty = tmp_path / "SMEAR-EMPTY"
    empty.mkdir()
    out, reports = tmp_path / "results.csv", tmp_path / "reports"
    r = CliRunner().invoke(cli, ["diagnose", str(a), str(empty), str(b), "--out", str(out), "--report", str(reports),
                                 "--cell-model", str(tiny_models["cellnet"]), "--diagnoser", str(tiny_models["diagnoser"])])
    assert r.exit_code == 1, r.output  # one smear failed: exit 1, with a summary line
    assert "failed: SMEAR-EMPTY" in r.stderr and "2 diagnosed, 1 failed" in r.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["smear_id", "status", "p_mds", "call", "n_cells", "skipped_cells", "top_features",
                                   "message"]
    assert frame["status"].tolist() == ["ok", "failed", "ok"] and "SMEAR-EMPTY" in frame["message"][1]
    frame = frame[frame["status"] == "ok"]
    assert frame["smear_id"].tolist() == ["SMEAR-A", "SMEAR-B"] and frame["n_cells"].tolist() == [12, 8]
    assert frame["skipped_cells"].tolist() == [0, 0]
    assert frame["call"].isin(["MDS", "AA"]).all() and frame["p_mds"].between(0, 1).all()
    assert all(len(t.split("; ")) == 5 for t in frame["top_features"])
    html = (reports / "SMEAR-A.html").read_text()
    assert "data:image/jpeg;base64," in html and "SMEAR-A" in html
    assert (reports / "cohort_heatmap.png").read_bytes()[:4] == b"\x89PNG"


def test_diagnose_all_failing_exits_1_and_says_why(tmp_path, tiny_models):
    r = CliRunner().invoke(cli, ["diagnose", str(tmp_path / "missing"), "--out", str(tmp_path / "r.csv"),
                                 "--cell-model", str(tiny_models["cellnet"]), "--diagnoser", str(tiny_models["diagnoser"])])
    assert r.exit_code == 1 and "0 diagnosed, 1 failed" in r.output
    frame = pd.read_csv(tmp_path / "r.csv")
    assert frame["status"].tolist() == ["failed"] and "no such folder" in frame["message"][0]
    r = CliRunner().invoke(cli, ["diagnose", "--out", str(tmp_path / "r.csv")])
    assert r.exit_code == 2  # bad usage
