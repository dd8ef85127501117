"""Slow checks, run explicitly with `pytest -m slow`: training smoke runs on the real data, the
shipped models against their targets, and the benchmarks (which print their figures)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import needs_shared_data
from cli import cli

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@needs_shared_data
def test_train_cells_smoke_on_real_data(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 1\nsamples_per_epoch: 256\ninput_px: 64\n")
    simulated = ROOT / "runs" / "cellnet" / "simcells"
    args = ["train", "cells", "--out", str(tmp_path / "m"), "--config", str(config)]
    if (simulated / "cells.csv").is_file():
        args += ["--simulated-dir", str(simulated)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["input"]["shape"] == [64, 64, 3] and "neu_degranulation" in meta["trained_features"]


@needs_shared_data
def test_shipped_cellnet_meets_targets(tmp_path):
    from models.engine.evaluate import evaluate_cells
    m = evaluate_cells(tmp_path, tsne_max=500)
    assert m["classic_group_accuracy_pbc"] >= 0.98
    assert m["fine_class_macro_sensitivity_pbc"] >= 0.90
    assert m["wbcatt_mean_accuracy"] >= 0.93
    assert m["expected_calibration_error"] <= 0.03


@pytest.mark.parametrize("script", ["bench_classify.py", "bench_diagnose.py", "bench_granules.py"])
def test_benchmarks_run(script):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script)], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    print(r.stdout)
    assert "cells/s" in r.stdout or " ms" in r.stdout
