"""`mdsdx train soup`: the weight average and its input errors (the full run needs the shared data)."""
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from core.errors import InvalidInput
from models.engine.soup import average_weights


def _tiny_net(seed, width=4):
    import keras

    from models.architecture.cellnet import CellNetConfig, build_cellnet
    keras.utils.set_random_seed(seed)
    cfg = CellNetConfig(input_px=32, width=width, middle_width=16, middle_blocks=1, exit_width=32)
    return build_cellnet(cfg), cfg


def test_average_of_two_nets_is_their_mean_and_loads_back():
    (a, _), (b, _) = _tiny_net(1), _tiny_net(2)
    wa, wb = a.get_weights(), b.get_weights()
    assert any(not np.array_equal(x, y) for x, y in zip(wa, wb))
    mean = average_weights([wa, wb])
    a.set_weights(mean)
    for got, x, y in zip(a.get_weights(), wa, wb):
        assert got.dtype == x.dtype
        np.testing.assert_allclose(got, (x.astype(np.float64) + y) / 2, rtol=1e-6, atol=1e-7)


def test_average_rejects_one_member_and_other_shapes():
    (a, _), (c, _) = _tiny_net(1), _tiny_net(3, width=8)
    with pytest.raises(InvalidInput, match="at least 2"):
        average_weights([a.get_weights()])
    with pytest.raises(InvalidInput, match="differ in number or shape"):
        average_weights([a.get_weights(), c.get_weights()])


def test_cli_errors_are_one_line(tmp_path, tiny_models):
    from models.export.artifact import save_cellnet
    net, cfg = _tiny_net(3, width=8)
    other = tmp_path / "wider"
    save_cellnet(net, cfg, other, calibration={"type_temperature": 1.0, "feature_temperature": 1.0, "unid_threshold": 0.0},
                 trained_features=[], training={"note": "tiny test model"}, version="cellnet-tiny-wider")
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "cells.csv").write_text("path,split,cell_type,features\n")
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "soup", str(tiny_models["cellnet"]), "--out", str(tmp_path / "o"), "--simulated-dir", str(sim)])
    assert r.exit_code == 2 and "at least 2 model folders" in r.output
    r = runner.invoke(cli, ["train", "soup", str(tiny_models["cellnet"]), str(other), "--out", str(tmp_path / "o"),
                            "--simulated-dir", str(sim)])
    assert r.exit_code == 2 and "architecture differs" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(cli, ["train", "soup", str(tiny_models["cellnet"]), str(tiny_models["cellnet"]), "--out",
                            str(tmp_path / "o"), "--simulated-dir", str(tmp_path)])
    assert r.exit_code == 2 and "cells.csv" in r.output
    assert not (tmp_path / "o").exists()


def test_members_saved_before_the_field_of_view_setting_share_a_recipe():
    """A model saved before 2026-12-06 (no field_of_view, older preprocess text) soups with a new one that sees the
    whole crop, but not with one that sees the central 80 %."""
    import json

    from models.engine.soup import _check_same_recipe
    from models.export.artifact import DEFAULT_DIR
    new = json.loads((DEFAULT_DIR / "metadata.json").read_text())
    new["architecture"]["field_of_view"] = 1.0
    new["input"] = {**new["input"], "field_of_view": 1.0, "preprocess": "a newer description"}
    old = json.loads(json.dumps(new))
    del old["architecture"]["field_of_view"], old["input"]["field_of_view"]
    old["input"]["preprocess"] = "models.preprocess.load_cell_image (centre square crop, antialiased resize)"
    dirs = [Path("old"), Path("new")]
    _check_same_recipe([old, new], dirs)
    narrow = json.loads(json.dumps(new))
    narrow["architecture"]["field_of_view"] = narrow["input"]["field_of_view"] = 0.8
    with pytest.raises(InvalidInput, match="architecture differs"):
        _check_same_recipe([old, narrow], dirs)
    narrow["architecture"]["field_of_view"] = 1.0
    with pytest.raises(InvalidInput, match="input geometry differs"):
        _check_same_recipe([old, narrow], dirs)
