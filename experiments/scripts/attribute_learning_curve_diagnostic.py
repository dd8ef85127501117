"""Diagnostic only (python experiments/scripts/attribute_learning_curve_diagnostic.py [MODEL_DIR]; writes nothing): WBCAtt mean
accuracy on the validation split (never the test split) of the shipped linear head's fit
(models.engine.attribute_head.fit_attribute_head) on random fractions of the train split's frozen embeddings, 3 draws each
below the whole. Question: does the head still gain from more crops, so that refitting it on train and validation
(`mdsdx train attributes --fit-on-validation`) is worth the validation crops?
On the shipped model (cellnet-20261204-1309-att202612041313), 2026-12-06, 5,526 train crops, 643 validation crops:
50 % 92.62 %, 75 % 92.77 %, 89 % 92.94 %, 100 % 92.95 % (measured by this script's scratch form, which saved the
embeddings and ran the fractions in two runs; about 40 minutes on 2 cores, the fits dominating). The same 100 % in
the split's own row order gives 93.04 % (experiments/scripts/attribute_mlp_diagnostic.py): the cross-validated choice of C
depends on the row order, about 0.1 point of noise, as large as the last steps of the curve. The head gains little
beyond 89 % of the train crops: refitting on train and validation is expected to gain 0.1 point at most."""
import sys

import numpy as np

from models.engine.attribute_head import AttributeHeadConfig, fit_attribute_head, labelled_split_embeddings
from models.engine.evaluate import attribute_accuracy

x, t, group_sizes = labelled_split_embeddings(sys.argv[1] if len(sys.argv) > 1 else "models/cellnet")
n = len(x["train"])
for fraction in (0.5, 0.75, 0.89, 1.0):
    accs = []
    for seed in ((0, 1, 2) if fraction < 1 else (0,)):
        pick = np.random.default_rng(seed).permutation(n)[:int(fraction * n)]
        kernel, bias, _ = fit_attribute_head(x["train"][pick], t["train"][pick], group_sizes, AttributeHeadConfig())
        accs.append(100 * np.mean(list(attribute_accuracy(x["val"] @ kernel + bias, t["val"]).values())))
    print(f"train fraction {fraction:.2f} ({int(fraction * n)} crops): val mean {np.mean(accs):.2f} % {np.round(accs, 2)}",
          flush=True)
