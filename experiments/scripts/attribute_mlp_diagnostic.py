"""Diagnostic only (python experiments/scripts/attribute_mlp_diagnostic.py [MODEL_DIR]; writes nothing): WBCAtt mean accuracy on
the validation split (never the test split) of a one-hidden-layer head (256 ReLU units, scikit-learn MLPClassifier
with early stopping, one per attribute, on the standardised frozen 512-d embedding of the train split) against the
shipped linear head's form (models.engine.attribute_head.fit_attribute_head on the same embeddings).
On the shipped model (cellnet-20261204-1309-att202612041313), 2026-12-06: linear 93.04 %; MLP 92.73 % (alpha 0.01),
92.73 % (0.1), 92.72 % (1.0). A non-linear head does not gain, so the head stays linear."""
import sys
import warnings

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from models.engine.attribute_head import AttributeHeadConfig, fit_attribute_head, labelled_split_embeddings
from models.engine.evaluate import attribute_accuracy

x, t, group_sizes = labelled_split_embeddings(sys.argv[1] if len(sys.argv) > 1 else "models/cellnet")
kernel, bias, _ = fit_attribute_head(x["train"], t["train"], group_sizes, AttributeHeadConfig())
print(f"linear head: val mean {100 * np.mean(list(attribute_accuracy(x['val'] @ kernel + bias, t['val']).values())):.2f} %")
scaler = StandardScaler().fit(x["train"])
xt, xv = scaler.transform(x["train"]), scaler.transform(x["val"])
for alpha in (0.01, 0.1, 1.0):
    accs = []
    for j in range(t["train"].shape[1]):
        mt, mv = t["train"][:, j] >= 0, t["val"][:, j] >= 0
        classes = np.unique(t["train"][mt, j])
        if len(classes) < 2:
            accs.append(float((t["val"][mv, j] == classes[0]).mean()))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = MLPClassifier((256,), alpha=alpha, max_iter=300, early_stopping=True, random_state=0).fit(xt[mt], t["train"][mt, j])
        accs.append(float((clf.predict(xv[mv]) == t["val"][mv, j]).mean()))
    print(f"MLP head, alpha {alpha}: val mean {100 * np.mean(accs):.2f} %")
