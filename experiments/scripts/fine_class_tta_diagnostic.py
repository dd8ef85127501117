"""Diagnostic only (python experiments/scripts/fine_class_tta_diagnostic.py; writes nothing): does test-time augmentation help
the fine classes? The shipped stage-1 model's calibrated type probabilities averaged over 1, 2, 4 or 8 exact
rotations / flips of the real PBC validation crops of SNE, BNE, MMY, MY and PMY (never the test split).
Measured 2026-12-06: fine-class macro sensitivity 82.30 % (1 view), 81.16 (2), 80.44 (4), 82.25 (8): no gain, and
each view costs a forward pass, so `mdsdx cells classify` stays single-view."""
import numpy as np
from sklearn.metrics import recall_score

from core.datasets import load_all
from core.taxonomy import load_taxonomy
from models.engine.evaluate import FINE_CLASSES
from models.engine.infer import CellPredictor

abbrs = load_taxonomy().type_abbrs
real = load_all(None)
real = real[(real["split"] == "val") & (real["source"] == "pbc") & (real["cell_types"].map(len) == 1)]
real = real[real["cell_types"].map(lambda t: t[0] in FINE_CLASSES)].reset_index(drop=True)
y = np.array([t[0] for t in real["cell_types"]])
p = CellPredictor(None)
imgs, _ = p.decode(real["path"].tolist())
# in this order: identity, the two mirrors, three quarter turns, and the two transposes
views = [imgs, imgs[:, ::-1], imgs[:, :, ::-1], np.rot90(imgs, 1, (1, 2)), np.rot90(imgs, 2, (1, 2)),
         np.rot90(imgs, 3, (1, 2)), np.rot90(imgs[:, ::-1], 1, (1, 2)), np.rot90(imgs[:, ::-1], 3, (1, 2))]
probs = [p.predict_arrays(np.ascontiguousarray(v)).type_probs for v in views]
for k in (1, 2, 4, 8):
    m = np.mean(probs[:k], 0)
    pred = np.array(abbrs)[m.argmax(1)]
    print(k, "views: fine macro sens", round(100 * recall_score(y, pred, labels=FINE_CLASSES, average="macro"), 2))
