"""Diagnostic only (python experiments/scripts/fine_class_head_diagnostic.py; writes nothing): within the 5 fine classes, the trained head's argmax vs a logistic regression
fitted on frozen train-split embeddings, scored on the validation split (never the test split)."""
import numpy as np, pandas as pd
from core.datasets import load_all
from core.preprocess import decode_all
from core.taxonomy import load_taxonomy
from models.export.artifact import input_geometry, load_cellnet
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
FINE = ["SNE", "BNE", "MMY", "MY", "PMY"]
net, meta = load_cellnet("models/cellnet")
px, field_of_view = input_geometry(meta)
tax = load_taxonomy(); cols = [tax.type_abbrs.index(a) for a in FINE]
r = load_all(None); r = r[(r.source == "pbc") & r.cell_types.map(lambda t: len(t) == 1 and t[0] in FINE)]
out = {}
for s in ("train", "val"):
    f = r[r.split == s]
    x = decode_all(f.path.tolist(), px, 2, field_of_view).astype("float32")
    p = net.predict(x, batch_size=64, verbose=0)
    out[s] = (np.asarray(p["embedding"]), np.asarray(p["cell_type_logits"]), f.cell_types.map(lambda t: t[0]).values)
cal = meta["calibration"]; b = np.asarray(cal.get("type_bias", np.zeros(17)))
ev, lv, yv = out["val"]
head = np.array(FINE)[(lv[:, cols] / cal["type_temperature"] + b[cols]).argmax(1)]
print("trained head within-5, val macro sens:", recall_score(yv, head, labels=FINE, average="macro"), recall_score(yv, head, labels=FINE, average=None).round(3))
et, lt, yt = out["train"]
headt = np.array(FINE)[(lt[:, cols] / cal["type_temperature"] + b[cols]).argmax(1)]
print("trained head within-5, TRAIN macro sens:", recall_score(yt, headt, labels=FINE, average="macro"))
for C in (0.03, 0.1, 0.3, 1.0, 3.0):
    clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(et, yt)
    print(C, "LR val macro sens:", round(recall_score(yv, clf.predict(ev), labels=FINE, average="macro"), 4),
          recall_score(yv, clf.predict(ev), labels=FINE, average=None).round(3), "train", round(recall_score(yt, clf.predict(et), labels=FINE, average="macro"), 4))
