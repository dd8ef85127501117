"""ONNX Runtime and Keras give the same predictions from a saved model folder."""
import json
import shutil

import numpy as np
import pytest

from conftest import jpeg_bytes
from core.errors import ModelLoadError
from models.engine.infer import CellPredictor


def test_saved_models_carry_a_checked_onnx_file(tiny_models):
    for folder, name in ((tiny_models["cellnet"], "cellnet.onnx"), (tiny_models["akira"], "akira.onnx")):
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["runtime"]["onnx"] == name and (folder / name).is_file()
        assert len(meta["runtime"]["onnx_sha256"]) == 64


def test_cell_predictions_agree_between_runtimes(tiny_models):
    blobs = [jpeg_bytes(seed, px=256 if seed % 2 else 360) for seed in range(10)]
    onnx = CellPredictor(tiny_models["cellnet"], runtime="onnx")
    keras_ = CellPredictor(tiny_models["cellnet"], runtime="keras")
    assert (onnx.runtime, keras_.runtime) == ("onnx", "keras")
    a, b = onnx.predict_files(blobs), keras_.predict_files(blobs)
    np.testing.assert_allclose(a.type_probs, b.type_probs, atol=1e-5)
    np.testing.assert_allclose(np.nan_to_num(a.feature_probs), np.nan_to_num(b.feature_probs), atol=1e-5)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)
    assert list(a.cell_type) == list(b.cell_type)
    assert CellPredictor(tiny_models["cellnet"]).runtime == "onnx"  # auto prefers ONNX when present


def test_granule_scores_agree_between_runtimes(tiny_models):
    from models.engine.akira.infer import GranuleScorer
    blobs = [jpeg_bytes(seed, px=256) for seed in range(3)]
    a = GranuleScorer(tiny_models["akira"]).score_files(blobs)
    keras_scorer = GranuleScorer(tiny_models["akira"])
    from models.engine.akira.infer import _forward_of, load_akira
    keras_scorer._forward = _forward_of(load_akira(tiny_models["akira"], runtime="keras")[0])
    b = keras_scorer.score_files(blobs)
    np.testing.assert_allclose(a.outputs, b.outputs, atol=1e-4)
    np.testing.assert_allclose(a.dg_score, b.dg_score, atol=1e-4)


def test_altered_or_missing_onnx_file(tiny_models, tmp_path):
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    (folder / "cellnet.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelLoadError, match="checksum"):
        CellPredictor(folder)
    (folder / "cellnet.onnx").unlink()
    assert CellPredictor(folder).runtime == "keras"  # falls back to the Keras file
    with pytest.raises(ModelLoadError, match="mdsdx train onnx"):
        CellPredictor(folder, runtime="onnx")
    from models.export.artifact import add_onnx
    add_onnx(folder)  # what `mdsdx train onnx DIR` does
    assert CellPredictor(folder).runtime == "onnx"


def test_predictor_uses_the_saved_field_of_view(tmp_path):
    """A model trained on the central share of each crop is served the same window; older metadata
    without the key means the whole crop."""
    from core.preprocess import load_cell_image
    from models.architecture.cellnet import CellNetConfig, build_cellnet
    from models.export.artifact import input_geometry, save_cellnet
    cfg = CellNetConfig(input_px=32, field_of_view=0.5, width=4, middle_width=16, middle_blocks=1, exit_width=32)
    net = build_cellnet(cfg)
    save_cellnet(net, cfg, tmp_path / "fov", calibration={"type_temperature": 1.0, "feature_temperature": 1.0,
                                                          "unid_threshold": 0.0},
                 trained_features=[], training={"note": "test"}, version="cellnet-fov-test")
    predictor = CellPredictor(tmp_path / "fov")
    assert (predictor.input_px, predictor.field_of_view) == (32, 0.5)
    blobs = [jpeg_bytes(seed, px=360) for seed in range(3)]
    expected = np.stack([load_cell_image(b, 32, field_of_view=0.5) for b in blobs])
    np.testing.assert_array_equal(predictor.decode(blobs)[0], expected)
    np.testing.assert_allclose(predictor.predict_files(blobs).embedding, np.asarray(net(expected.astype("float32"))["embedding"]),
                               atol=1e-4)
    assert input_geometry({"input": {"shape": [192, 192, 3]}}) == (192, 1.0)
