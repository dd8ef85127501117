"""One smear from images to a diagnosis and its report: what the service and the CLI both call.

decode (core.preprocess) -> per-cell predictions (models.engine.infer) -> 114 parameters (featurize)
-> calibrated XGBoost call and SHAP (diagnose.model) -> WHO view (diagnose.who) -> the HTML report
with the stage-1 model's caution (:func:`render_report`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.errors import InvalidInput
from core.taxonomy import load_taxonomy
from diagnose.model import MdsDiagnoser
from diagnose.who import dysplastic_cells, who_view
from featurize.smear import feature_type_matrix, featurize_smear, usable_cells

log = logging.getLogger(__name__)
SHOWN_FEATURE_PROBABILITY = 0.5  # a feature without a validated threshold is shown in the gallery from this


@dataclass
class CellCall:
    """One cell of the gallery: its name, type call, confidence and the features it shows (p >= 0.5)."""
    name: str
    cell_type: str
    confidence: float
    features: list[dict]
    dysplastic: bool


@dataclass
class SmearResult:
    """Everything a report or an API response shows about one smear."""
    smear_id: str
    p_mds: float
    call: str
    threshold: float
    n_cells: int
    n_usable: int
    type_counts: dict            # hard calls per type (UNID included)
    expected_type_counts: dict   # sum of probabilities per type
    parameters: dict             # the 114 parameters (None where missing)
    shap: dict                   # SHAP (log-odds) per parameter
    shap_base: float
    top_features: list[dict]
    who: dict
    warnings: list[str]
    model_versions: dict
    cells: list[CellCall] = field(default_factory=list)

    def summary(self) -> dict:
        """The JSON-ready result without the per-cell gallery."""
        out = asdict(self)
        out.pop("cells")
        return out


def pairing_warning(diagnoser_metadata: dict, cellnet_version: str) -> str | None:
    """A warning when the diagnoser was trained on the parameters of another stage-1 model than the
    one loaded: its 114 inputs are that model's outputs. A refitted attribute head (``-att...``
    suffix) does not change them, so it is ignored."""
    trained_on = (diagnoser_metadata.get("training") or {}).get("cellnet")
    if not trained_on or re.sub(r"-att\d+$", "", cellnet_version) == re.sub(r"-att\d+$", "", trained_on):
        return None
    return (f"the diagnoser was trained on the outputs of stage-1 model {trained_on}, not the loaded {cellnet_version}; "
            "retrain it (`mdsdx train diagnosis`) before relying on its calls")


def report_caution(cell_model_dir: Path | str | None, cellnet_version: str | None) -> str | None:
    """The caution a smear report puts under its cell counts: the least reliable type calls of the
    stage-1 model ``cellnet_version``, from the model card in ``cell_model_dir`` (None: the shipped
    model). None when that card is missing or describes other weights."""
    from models.export.artifact import DEFAULT_DIR
    from models.export.model_card import fine_class_caution
    return fine_class_caution(Path(cell_model_dir) if cell_model_dir else DEFAULT_DIR, cellnet_version)


def render_report(result: "SmearResult", image_src: Callable[[str], str], cell_model_dir: Path | str | None = None,
                  nav: str = "") -> str:
    """The HTML report of one smear with its caution (:func:`report_caution` of the stage-1 model that
    called the cells, whose folder is ``cell_model_dir``); ``image_src`` maps a cell's name to its image URL."""
    from diagnose.report import render_smear_report
    caution = report_caution(cell_model_dir, result.model_versions.get("cellnet"))
    return render_smear_report(result, image_src, nav=nav, caution=caution)


class SmearDiagnosisPipeline:
    """Loads the stage-1 model and the diagnoser once; diagnoses any number of smears. ``runtime``: the
    stage-1 runtime to ask for (``onnx``, ``int8``, ...; default: the first that passes its check here)."""

    def __init__(self, cell_model_dir: Path | str | None = None, diagnoser_dir: Path | str | None = None,
                 batch_size: int = 64, threads: int = 2, limits=None, runtime: str | None = None):
        from core.preprocess import ImageLimits
        from models.engine.infer import CellPredictor
        self.predictor = CellPredictor(cell_model_dir, batch_size=batch_size, threads=threads,
                                       limits=limits or ImageLimits(), runtime=runtime)
        self.diagnoser = MdsDiagnoser.load(diagnoser_dir)
        self.model_versions = {"cellnet": self.predictor.version, "diagnoser": self.diagnoser.metadata_["version"]}
        self.feature_thresholds = self.predictor.metadata["calibration"].get("feature_thresholds", {})
        self.pairing_warning = pairing_warning(self.diagnoser.metadata_, self.predictor.version)
        self._cautions: dict[str | None, str | None] = {}  # stage-1 version -> the report's caution
        if self.pairing_warning:
            log.warning(self.pairing_warning)

    def render_report(self, result: SmearResult, image_src: Callable[[str], str], nav: str = "") -> str:
        """:func:`render_report` for a result of this pipeline; each model version's caution is read once."""
        from diagnose.report import render_smear_report
        version = result.model_versions.get("cellnet")
        if version not in self._cautions:
            self._cautions[version] = report_caution(self.predictor.model_dir, version)
        return render_smear_report(result, image_src, nav=nav, caution=self._cautions[version])

    def diagnose_images(self, sources: Sequence, names: Sequence[str], smear_id: str,
                        skip_invalid: bool = False) -> SmearResult:
        """Diagnose one smear from image paths or bytes. Without ``skip_invalid`` a bad image raises
        :class:`~core.errors.InvalidImage`; with it, bad images are left out and listed in the warnings."""
        if not len(sources):
            raise InvalidInput(f"{smear_id}: the smear has no cell images")
        preds = self.predictor.predict_files(list(sources), list(names), skip_invalid=skip_invalid)
        bad = {i for i, _ in preds.failed}
        kept = [n for i, n in enumerate(names) if i not in bad]
        if not kept:
            raise InvalidInput(f"{smear_id}: none of the {len(names)} images could be decoded")
        result = self.diagnose_predictions(preds, kept, smear_id)
        result.warnings += [f"skipped: {msg}" for _, msg in preds.failed]
        return result

    def _gallery(self, preds, names: Sequence[str]) -> list[CellCall]:
        """Per cell: its call, and the features it shows. A feature is shown at its validated
        threshold (``models.engine.calibrate``) or, without one, at probability 0.5; a cell is dysplastic
        when a validated WHO dysplasia feature of its type is shown (the WHO view's rule)."""
        tax = load_taxonomy()
        probs = np.nan_to_num(preds.feature_probs, nan=-1.0)
        cut = np.array([self.feature_thresholds.get(f.id, {}).get("threshold", SHOWN_FEATURE_PROBABILITY)
                        for f in tax.features])
        applies = feature_type_matrix() > 0  # (17, 97)
        type_row = {t: k for k, t in enumerate(tax.type_abbrs)}
        dysplastic = dysplastic_cells(preds.cell_type, preds.feature_probs, self.feature_thresholds)
        any_dysplastic = np.any(np.stack(list(dysplastic.values())), axis=0) if dysplastic else np.zeros(len(names), bool)
        ids, feature_names = tax.feature_ids, [f.name for f in tax.features]
        cells = []
        for i, name in enumerate(names):
            call = str(preds.cell_type[i])
            shown = np.flatnonzero((probs[i] >= cut) & applies[type_row[call]]) if call in type_row else []
            cells.append(CellCall(name=str(name), cell_type=call, confidence=round(float(preds.confidence[i]), 4),
                                  features=[{"id": ids[j], "name": feature_names[j], "p": round(float(probs[i, j]), 3)}
                                            for j in shown],
                                  dysplastic=bool(any_dysplastic[i])))
        return cells

    def diagnose_predictions(self, preds, names: Sequence[str], smear_id: str) -> SmearResult:
        import pandas as pd
        feats = featurize_smear(preds.type_probs, preds.feature_probs, usable=usable_cells(preds.cell_type))
        row = pd.DataFrame([feats.values.values], columns=list(feats.values.index))
        p_mds = float(self.diagnoser.predict_proba(row)[0, 1])
        shap_values, base = self.diagnoser.explain(row)
        shap_row = shap_values[0]
        call_counts = pd.Series(preds.cell_type).value_counts()
        cells = self._gallery(preds, names)
        warnings = list(feats.warnings) + ([self.pairing_warning] if self.pairing_warning else [])
        return SmearResult(
            smear_id=smear_id, p_mds=round(p_mds, 4), call="MDS" if p_mds >= self.diagnoser.threshold_ else "AA",
            threshold=round(self.diagnoser.threshold_, 4), n_cells=feats.n_cells, n_usable=feats.n_usable,
            type_counts={k: int(v) for k, v in call_counts.items()},
            expected_type_counts={k: round(float(v), 2) for k, v in feats.expected_type_counts.items()},
            parameters={k: (None if np.isnan(v) else round(float(v), 5)) for k, v in feats.values.items()},
            shap={k: round(float(v), 5) for k, v in zip(self.diagnoser.feature_names_, shap_row)},
            shap_base=round(base, 5), top_features=self.diagnoser.top_features(shap_row, 5),
            who=who_view(preds.type_probs, preds.feature_probs, self.feature_thresholds), warnings=warnings,
            model_versions=dict(self.model_versions), cells=cells)
