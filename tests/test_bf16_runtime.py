"""The bf16 runtime: the float ONNX file through OpenVINO in bfloat16, chosen only where it can run."""
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import jpeg_bytes
from core.errors import ModelLoadError
from models.engine.infer import CellPredictor
from models.export.runtime import bf16_support, runtime_candidates

needs_bf16 = pytest.mark.skipif(bf16_support() is not None, reason=f"bf16 runtime unavailable: {bf16_support()}")


def _crops(folder, n=8):
    folder.mkdir()
    for seed in range(n):
        (folder / f"cell_{seed:02d}.jpg").write_bytes(jpeg_bytes(seed, px=256 if seed % 2 else 360))
    return folder


@pytest.mark.parametrize("reason", [None, "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX)"])
def test_auto_takes_bf16_only_where_it_runs(monkeypatch, reason):
    monkeypatch.setattr("models.export.runtime.bf16_support", lambda: reason)
    monkeypatch.delenv("MDSDX_RUNTIME", raising=False)
    onnx = Path("m/cellnet.onnx")
    assert runtime_candidates(Path("m"), onnx, bf16_recorded=True) == (["bf16", "onnx"] if reason is None else ["onnx"])
    assert runtime_candidates(Path("m"), onnx, bf16_recorded=False) == ["onnx"]
    assert runtime_candidates(Path("m"), None, bf16_recorded=True) == ["keras"]  # no float file to run in bf16
    if reason is None:
        assert runtime_candidates(Path("m"), onnx, requested="bf16") == ["bf16"]
    else:
        with pytest.raises(ModelLoadError, match="bfloat16 instructions.*MDSDX_RUNTIME=onnx"):
            runtime_candidates(Path("m"), onnx, requested="bf16")


def test_bf16_without_an_onnx_file_is_a_plain_error():
    with pytest.raises(ModelLoadError, match="mdsdx train onnx"):
        runtime_candidates(Path("m"), None, requested="bf16")


@needs_bf16
def test_bf16_is_recorded_checked_and_close_to_float(tiny_models, tmp_path, monkeypatch):
    from cli import cli
    monkeypatch.delenv("MDSDX_RUNTIME", raising=False)
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    r = CliRunner().invoke(cli, ["train", "bf16", str(folder), "--images", str(_crops(tmp_path / "check"))])
    assert r.exit_code == 0, r.output
    runtime = json.loads((folder / "metadata.json").read_text())["runtime"]
    assert runtime["bf16"]["onnx"] == "cellnet.onnx" and len(runtime["check"]["crops"]) == 8
    assert runtime["bf16"]["agreement_with_float"]["crops"] == 8
    assert "openvino" in runtime["bf16"]["libraries"]

    blobs = [jpeg_bytes(seed, px=300) for seed in range(40, 52)]
    bf16 = CellPredictor(folder)
    assert bf16.runtime == "bf16" and bf16.runtime_checks["bf16"]["passed"]
    float32 = CellPredictor(folder, runtime="onnx")
    a, b = float32.predict_files(blobs), bf16.predict_files(blobs)
    assert np.abs(a.type_probs - b.type_probs).max() < 0.05
    assert not np.array_equal(a.embedding, b.embedding)  # bfloat16 really ran

    # one infer request per thread: concurrent calls return what one thread alone returns
    images, _ = bf16.decode(blobs)
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: bf16.predict_arrays(images).type_probs, range(8)))
    for probs in results:
        np.testing.assert_allclose(probs, b.type_probs, atol=1e-6)

    monkeypatch.setenv("MDSDX_RUNTIME", "onnx")
    assert CellPredictor(folder).runtime == "onnx"


@needs_bf16
def test_akira_runs_in_bf16_close_to_float(tiny_models, tmp_path):
    """A folder checked under bf16 (`mdsdx train bf16`) runs in it when asked; one never checked is refused."""
    from models.engine.akira.infer import GranuleScorer, load_akira
    from models.export.quantize import add_bf16
    with pytest.raises(ModelLoadError, match="no agreement check"):
        load_akira(tiny_models["akira"], runtime="bf16")
    folder = tmp_path / "akira"
    shutil.copytree(tiny_models["akira"], folder)
    add_bf16(folder, images=sorted(str(p) for p in _crops(tmp_path / "check", n=4).iterdir()))
    model, _ = load_akira(folder, runtime="bf16")
    scorer = GranuleScorer(model=model, input_px=GranuleScorer(folder).input_px)
    assert scorer.runtime == "bf16"
    blobs = [jpeg_bytes(seed, px=256) for seed in range(60, 63)]
    a, b = GranuleScorer(tiny_models["akira"]).score_files(blobs), scorer.score_files(blobs)  # float: no bf16 record there
    assert np.abs(a.outputs - b.outputs).max() < 0.1  # outputs span 0-3


def test_bf16_where_it_cannot_run_is_one_plain_line(tiny_models, tmp_path, monkeypatch):
    from cli import cli
    monkeypatch.setattr("models.export.quantize.bf16_support", lambda: "OpenVINO is not installed")
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    before = (folder / "metadata.json").read_text()
    r = CliRunner().invoke(cli, ["train", "bf16", str(folder), "--images", str(_crops(tmp_path / "check"))])
    assert r.exit_code == 2 and "OpenVINO is not installed" in r.output and len(r.output.strip().splitlines()) == 1
    assert (folder / "metadata.json").read_text() == before


def test_model_card_says_how_the_runtime_is_chosen():
    from models.export.model_card import _runtime_text
    record = {"onnx": "cellnet.onnx", "opset": 17, "onnx_sha256": "0" * 64, "libraries": {},
              "int8": {"onnx": "cellnet.int8.onnx", "onnx_sha256": "1" * 64, "format": "QDQ", "calibration": "c",
                       "agreement_with_float": {"same_top_type": 0.98}},
              "bf16": {"onnx": "cellnet.onnx", "engine": "OpenVINO CPU plugin", "checked_on": "192 crops",
                       "agreement_with_float": {"same_top_type": 1.0}, "libraries": {"openvino": "2026.4.1"}},
              "check": {"crops": ["check_00.jpg", "check_01.jpg"], "float_outputs": [], "tolerance": 0.25}}
    text = _runtime_text({"runtime": record}, "cellnet.keras")
    assert text.startswith("Served by the first of these runtimes that passes its agreement check")
    assert "2 check crops" in text and text.index(" int8: ") < text.index(" bf16, ") < text.index("the float file")
    only_float = _runtime_text({"runtime": {k: record[k] for k in ("onnx", "opset", "onnx_sha256", "libraries")}}, "cellnet.keras")
    assert only_float.startswith("Served by the float file `cellnet.onnx`")


@needs_bf16
def test_auto_prefers_a_passing_int8_file_to_bf16(tiny_models, tmp_path):
    """With int8 and bf16 both recorded and both right on this CPU, auto takes the int8 file, the faster."""
    from models.export.quantize import add_bf16, add_int8
    folder = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], folder)
    images = sorted(str(p) for p in _crops(tmp_path / "check", n=4).iterdir())
    add_bf16(folder, images=images)
    add_int8(folder, images=images)
    runtime = json.loads((folder / "metadata.json").read_text())["runtime"]
    assert "bf16" in runtime and "int8" in runtime
    assert CellPredictor(folder).runtime == "int8"
