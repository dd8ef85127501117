"""Diagnostic only (python experiments/scripts/attribute_taps_diagnostic.py; writes nothing): WBCAtt mean accuracy on the
validation split (never the test split) of per-attribute logistic regressions fitted on the train split's frozen,
standardised features of the shipped stage-1 model: the 512-d embedding alone, and the embedding beside the global
average of the block-11 output (the last downstream block, 256-d). 2026-12-04: 92.80 % and 92.73 %."""
import warnings

import keras
import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.preprocessing import StandardScaler

from core.datasets import attribute_targets, load_all, source_map
from core.preprocess import decode_all
from models.export.artifact import input_geometry, load_cellnet

net, meta = load_cellnet("models/cellnet")
px, field_of_view = input_geometry(meta)
feat = keras.Model(net.input, {"embedding": net.get_layer("embedding").output,
                               "block11": keras.layers.GlobalAveragePooling2D()(net.get_layer("block11_add").output)})
real = load_all(None)
targets = attribute_targets(real)
labelled = (targets >= 0).any(1)
data = {}
for split in ("train", "val"):
    idx = np.flatnonzero(labelled & (real["split"].values == split))
    images = decode_all(real["path"].iloc[idx].tolist(), px, 2, field_of_view)
    parts = [feat.predict(images[i:i + 512].astype("float32"), batch_size=64, verbose=0) for i in range(0, len(images), 512)]
    data[split] = ({k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in ("embedding", "block11")}, targets[idx])
vocab = list(source_map()["wbcatt_attributes"])
for keys in (["embedding"], ["embedding", "block11"]):
    (ft, tt), (fv, tv) = data["train"], data["val"]
    scaler = StandardScaler().fit(np.concatenate([ft[k] for k in keys], 1))
    xt, xv = (scaler.transform(np.concatenate([f[k] for k in keys], 1)) for f in (ft, fv))
    accs = []
    for j in range(len(vocab)):
        mt, mv = tt[:, j] >= 0, tv[:, j] >= 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = LogisticRegressionCV(Cs=[0.003, 0.01, 0.03, 0.1, 0.3], cv=5, scoring="accuracy", max_iter=2000).fit(xt[mt], tt[mt, j])
        accs.append(100 * (clf.predict(xv[mv]) == tv[mv, j]).mean())
    print("+".join(keys), xt.shape[1], f"mean {np.mean(accs):.2f} %", dict(zip(vocab, np.round(accs, 1))))
