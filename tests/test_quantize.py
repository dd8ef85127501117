"""int8 quantisation of a model folder's ONNX file: recorded, checked, chosen only when asked for."""
import json
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import jpeg_bytes
from core.errors import ModelLoadError
from models.engine.infer import CellPredictor


def _crops(folder, n=12):
    folder.mkdir()
    for seed in range(n):
        (folder / f"cell_{seed:02d}.jpg").write_bytes(jpeg_bytes(seed, px=256 if seed % 2 else 360))
    return sorted(str(p) for p in folder.iterdir())


def test_quantized_stage1_is_recorded_checked_and_used(tiny_models, tmp_path, monkeypatch):
    from cli import cli
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    _crops(tmp_path / "calib")
    r = CliRunner().invoke(cli, ["train", "quantize", str(folder), "--images", str(tmp_path / "calib")])
    assert r.exit_code == 0, r.output
    record = json.loads((folder / "metadata.json").read_text())["runtime"]["int8"]
    assert record["onnx"] == "cellnet.int8.onnx" and (folder / "cellnet.int8.onnx").is_file()
    assert record["calibration"] == "6 given crops" and 0.0 <= record["agreement_with_float"]["same_top_type"] <= 1.0
    check = json.loads((folder / "metadata.json").read_text())["runtime"]["check"]
    assert len(check["crops"]) == 6 and all((folder / "check" / name).is_file() for name in check["crops"])

    blobs = [jpeg_bytes(seed, px=300) for seed in range(20, 28)]
    auto = CellPredictor(folder)
    assert auto.runtime == "int8" and auto.runtime_checks["int8"]["passed"]  # the faster runtime, checked at load
    monkeypatch.setenv("MDSDX_RUNTIME", "int8")
    int8 = CellPredictor(folder)
    assert int8.runtime == "int8"
    a, b = CellPredictor(folder, runtime="onnx").predict_files(blobs), int8.predict_files(blobs)
    assert np.abs(a.type_probs - b.type_probs).max() < 0.1
    assert not np.allclose(a.embedding, b.embedding, atol=1e-7)  # the quantised graph really ran

    (folder / "cellnet.int8.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelLoadError, match="mdsdx train quantize"):
        CellPredictor(folder)


def test_int8_without_a_quantized_file_is_a_plain_error(tiny_models):
    with pytest.raises(ModelLoadError, match="mdsdx train quantize"):
        CellPredictor(tiny_models["cellnet"], runtime="int8")


def test_quantized_akira_scores_close_to_float(tiny_models, tmp_path):
    from models.engine.akira.infer import GranuleScorer, load_akira
    from models.export.quantize import add_int8
    folder = tmp_path / "akira"
    shutil.copytree(tiny_models["akira"], folder)
    images = _crops(tmp_path / "calib", n=6)
    record = add_int8(folder, images=images)
    assert record["onnx"] == "akira.int8.onnx" and record["agreement_with_float"]["crops"] == 3
    model, _ = load_akira(folder, runtime="int8")
    scorer = GranuleScorer(model=model, input_px=GranuleScorer(folder).input_px)
    assert scorer.runtime == "int8"
    blobs = [jpeg_bytes(seed, px=256) for seed in range(30, 33)]
    a, b = GranuleScorer(folder).score_files(blobs), scorer.score_files(blobs)
    assert np.abs(a.outputs - b.outputs).max() < 0.3  # outputs span 0-3


def test_quantization_import_leaves_sys_path_alone():
    from models.export.quantize import onnx_quantization
    onnx_quantization()
    # onnxruntime appends its transformers folder, whose `models` package would shadow this project's
    assert not [p for p in sys.path if p.rstrip("/").endswith("onnxruntime/transformers")]


def _misrecord_float_outputs(folder):
    """Store float outputs three times the true ones on the folder's check crops: what a runtime whose
    kernels compute something else (a saturating one, say) looks like to the check."""
    reference = folder / "check" / "float_outputs.npy"
    np.save(reference, np.load(reference) * 3)


def test_a_runtime_that_fails_its_check_is_skipped_or_refused(tiny_models, tmp_path, monkeypatch, caplog):
    """An int8 file whose outputs on the check crops differ from the stored float ones is passed over
    under auto, logged with the reason and shown in the predictor's checks; asked for by name it is
    one plain error."""
    from models.engine.akira.infer import GranuleScorer
    from models.export.quantize import add_int8
    folder = tmp_path / "akira"
    shutil.copytree(tiny_models["akira"], folder)
    add_int8(folder, images=_crops(tmp_path / "calib", n=4))
    assert GranuleScorer(folder).runtime == "int8"
    _misrecord_float_outputs(folder)
    with caplog.at_level("WARNING"):
        assert GranuleScorer(folder).runtime == "onnx"
    assert "the int8 runtime differs from the float model on this CPU" in caplog.text
    stage1 = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], stage1)
    add_int8(stage1, images=_crops(tmp_path / "calib2"))
    _misrecord_float_outputs(stage1)
    fallen_back = CellPredictor(stage1)
    assert fallen_back.runtime == "onnx" and not fallen_back.runtime_checks["int8"]["passed"]
    assert fallen_back.runtime_checks["int8"]["median_relative_error"] > 0.5
    monkeypatch.setenv("MDSDX_RUNTIME", "int8")
    with pytest.raises(ModelLoadError, match="differs from the float model on this CPU.*MDSDX_RUNTIME=onnx"):
        CellPredictor(stage1)


@pytest.mark.parametrize("reduce_range", [False, True])
def test_reduce_range_keeps_the_weights_in_7_bits(tiny_models, tmp_path, reduce_range):
    """The default ``--reduce-range`` (the guard against u8s8 saturation on CPUs without VNNI) stores
    every int8 weight within [-64, 64]; ``--full-range`` uses the whole int8 range."""
    import onnx
    from onnx import numpy_helper
    from cli import cli
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    _crops(tmp_path / "calib")
    args = ["train", "quantize", str(folder), "--images", str(tmp_path / "calib")]
    r = CliRunner().invoke(cli, args + ([] if reduce_range else ["--full-range"]))
    assert r.exit_code == 0, r.output
    record = json.loads((folder / "metadata.json").read_text())["runtime"]["int8"]
    assert record["reduce_range"] is reduce_range and ("7 bits" in record["format"]) is reduce_range
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(folder / "cellnet.int8.onnx")).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    largest = max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
    assert largest <= 64 if reduce_range else largest > 64


def test_percentile_calibration_narrows_activation_ranges(tiny_models, tmp_path):
    """``--calibration percentile`` sets each activation's range from the 99.999th percentile of its
    values, so no range is wider than MinMax's extremes and some are narrower; the record says which."""
    import onnx
    from onnx import numpy_helper
    from cli import cli
    _crops(tmp_path / "calib")
    scales = {}
    for method in ("minmax", "percentile"):
        folder = tmp_path / method
        shutil.copytree(tiny_models["cellnet"], folder)
        r = CliRunner().invoke(cli, ["train", "quantize", str(folder), "--images", str(tmp_path / "calib"),
                                     "--calibration", method])
        assert r.exit_code == 0, r.output
        record = json.loads((folder / "metadata.json").read_text())["runtime"]["int8"]
        assert record["activation_calibration"] == method
        graph = onnx.load(str(folder / "cellnet.int8.onnx")).graph
        scales[method] = {t.name: float(numpy_helper.to_array(t)) for t in graph.initializer
                          if t.name.endswith("_scale") and t.data_type == onnx.TensorProto.FLOAT and not t.dims}
    assert scales["minmax"].keys() == scales["percentile"].keys() and scales["minmax"]
    ratio = np.array([scales["percentile"][k] / scales["minmax"][k] for k in scales["minmax"]])
    assert (ratio <= 1 + 1e-6).all() and ratio.min() < 1 - 1e-4


def test_unknown_calibration_is_refused(tiny_models, tmp_path):
    from cli import cli
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    r = CliRunner().invoke(cli, ["train", "quantize", str(folder), "--calibration", "entropy"])
    assert r.exit_code != 0 and "entropy" in r.output
    assert "int8" not in json.loads((folder / "metadata.json").read_text()).get("runtime", {})
