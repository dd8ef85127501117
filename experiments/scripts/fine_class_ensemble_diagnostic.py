"""Diagnostic only (python experiments/scripts/fine_class_ensemble_diagnostic.py; writes nothing; about 2 minutes): would an
ensemble of the field-of-view fine-tunes, averaging their calibrated type probabilities (one forward pass per
member), beat their weight average (one pass)? Fine-class macro sensitivity on the real PBC validation crops of
SNE, BNE, MMY, MY and PMY (never the test split).
Measured 2026-12-06: runs/cellnet14 84.45 %, runs/cellnet15 84.94 %, runs/cellnet16 83.47 %; weight
averages runs/soup_fov2 (14 + 15, shipped) 85.79 %, runs/soup_fov3 (14 + 15 + 16) 85.34 %; probability ensembles
14 + 15 85.60 %, 14 + 15 + 16 84.59 %. The ensembles cost 2-3x the inference and do not beat the soups, so they
are no teacher for distilling a better single model."""
import numpy as np
from sklearn.metrics import recall_score
from core.datasets import load_all
from core.taxonomy import load_taxonomy
from models.engine.evaluate import FINE_CLASSES
from models.engine.infer import CellPredictor
abbrs = np.array(load_taxonomy().type_abbrs)
real = load_all(None)
real = real[(real["split"] == "val") & (real["source"] == "pbc") & (real["cell_types"].map(len) == 1)]
real = real[real["cell_types"].map(lambda t: t[0] in FINE_CLASSES)].reset_index(drop=True)
y = np.array([t[0] for t in real["cell_types"]])
P = {}
for d in ("runs/cellnet14", "runs/cellnet15", "runs/cellnet16", "runs/soup_fov2", "runs/soup_fov3"):
    p = CellPredictor(d)
    imgs, _ = p.decode(real["path"].tolist())
    P[d] = p.predict_arrays(imgs).type_probs
    print(d, p.runtime, round(100 * recall_score(y, abbrs[P[d].argmax(1)], labels=FINE_CLASSES, average="macro"), 2), flush=True)
for combo in (("runs/cellnet14", "runs/cellnet15"), ("runs/cellnet14", "runs/cellnet15", "runs/cellnet16")):
    m = np.mean([P[c] for c in combo], 0)
    print("prob ensemble", combo, round(100 * recall_score(y, abbrs[m.argmax(1)], labels=FINE_CLASSES, average="macro"), 2))
