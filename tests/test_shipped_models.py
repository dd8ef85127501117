"""The models committed to the repository load, match the taxonomy and answer on any input size."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_cell

ROOT = Path(__file__).resolve().parent.parent
CELLNET = ROOT / "models" / "cellnet"
DIAGNOSER = ROOT / "diagnose" / "diagnoser"
shipped = pytest.mark.skipif(not (CELLNET / "cellnet.keras").is_file() or not (DIAGNOSER / "diagnoser.ubj").is_file(),
                             reason="the shipped models are not in this checkout")


@shipped
def test_shipped_cellnet_contract():
    from models.engine.infer import CellPredictor
    meta = json.loads((CELLNET / "metadata.json").read_text())
    assert (CELLNET / "cellnet.keras").stat().st_size <= 20e6
    assert (CELLNET / "MODEL_CARD.md").is_file() and (CELLNET / "model_card.json").is_file()
    predictor = CellPredictor()
    assert predictor.version == meta["version"]
    crops = []
    for size in ((256, 256), (363, 360)):
        buf = io.BytesIO()
        Image.fromarray(synthetic_cell(px=size[1], height=size[0])).save(buf, "JPEG")
        crops.append(buf.getvalue())
    preds = predictor.predict_files(crops, ["a.jpg", "b.jpg"])
    assert preds.type_probs.shape == (2, 17)
    np.testing.assert_allclose(preds.type_probs.sum(1), 1.0, atol=1e-5)
    assert int(np.isnan(preds.feature_probs).all(axis=0).sum()) == 97 - len(meta["trained_features"])  # untrained: NaN
    if (meta.get("runtime") or {}).get("int8"):  # the int8 file loads (checksum and agreement checked) and roughly agrees
        int8 = CellPredictor(runtime="int8")
        assert int8.runtime == "int8"
        assert np.abs(int8.predict_files(crops, ["a.jpg", "b.jpg"]).type_probs - preds.type_probs).max() < 0.1
    assert set(meta["trained_features"]) >= {"neu_degranulation", "neu_pseudo_pelger", "plt_giant"}


@shipped
def test_shipped_diagnoser_and_pipeline():
    from diagnose.pipeline import SmearDiagnosisPipeline
    pipeline = SmearDiagnosisPipeline()
    assert (DIAGNOSER / "MODEL_CARD.md").is_file()
    blobs = []
    for i in range(60):
        buf = io.BytesIO()
        Image.fromarray(synthetic_cell(256, seed=i)).save(buf, "JPEG")
        blobs.append(buf.getvalue())
    result = pipeline.diagnose_images(blobs, [f"c{i}.jpg" for i in range(60)], "SHIPPED")
    assert result.call in ("MDS", "AA") and 0 <= result.p_mds <= 1
    assert (result.p_mds >= result.threshold) == (result.call == "MDS")
    shap_sum = sum(result.shap.values()) + result.shap_base
    margin = pipeline.diagnoser.margin(__import__("pandas").DataFrame([result.parameters]).astype(float))[0]
    assert shap_sum == pytest.approx(margin, abs=1e-3)


AKIRA = ROOT / "models" / "akira_compact"


@pytest.mark.skipif(not (AKIRA / "akira.keras").is_file(), reason="the shipped AKIRA model is not in this checkout")
def test_shipped_akira_contract():
    from core.akira_labels import load_labels
    from models.engine.akira.infer import GranuleScorer
    meta = json.loads((AKIRA / "metadata.json").read_text())
    assert (AKIRA / "akira.keras").stat().st_size <= 20e6
    assert (AKIRA / "MODEL_CARD.md").is_file() and (AKIRA / "model_card.json").is_file()
    scorer = GranuleScorer()
    assert scorer.version == meta["version"] and scorer.runtime == "onnx"
    # rotates its views as it was trained; a model saved before the setting existed was trained bilinear
    assert scorer.rotation_interpolation == meta["config"].get("rotation_interpolation", "bilinear") == "bilinear"
    crops = []
    for size in ((256, 256), (363, 360)):
        buf = io.BytesIO()
        Image.fromarray(synthetic_cell(px=size[1], height=size[0])).save(buf, "JPEG")
        crops.append(buf.getvalue())
    scores = scorer.score_files(crops)
    assert scores.outputs.shape == (2, 34) and scores.view_spread.shape == (2, 34)
    assert ((scores.outputs >= 0) & (scores.outputs <= load_labels().maxval + 1e-6)).all()
    assert set(scores.dg_grade) <= {0, 1, 2, 3}
    assert all(s == 0 for s, c in zip(scores.dg_score, scores.category) if c != "granulocytic")


@shipped
def test_shipped_diagnoser_card_says_simulated_and_matches_the_weights():
    """Every results row of the diagnoser's card names SIMULATED data, the card was written for these
    weights, and the sealed scoring behind it is in the ledger."""
    from diagnose.sealed import model_sha256, read_ledger
    card = json.loads((DIAGNOSER / "model_card.json").read_text())
    meta = json.loads((DIAGNOSER / "metadata.json").read_text())
    assert card["version"] == meta["version"]
    assert all("SIMULATED" in name for name in card["metrics"] if name != "decision threshold on P(MDS)")
    assert any(e["model_sha256"] == model_sha256(DIAGNOSER) for e in read_ledger())
    assert "seed 202" in (DIAGNOSER / "MODEL_CARD.md").read_text()
