"""Diagnostic only (python experiments/scripts/attribute_by_type_diagnostic.py [MODEL_DIR]; writes nothing): WBCAtt mean accuracy
on the validation split (never the test split) of the attribute head that `mdsdx train attributes` fits
(models.engine.attribute_head.fit_attribute_head on the frozen 512-d embeddings of the train split), fitted either once for
all white cells, as shipped, or once per WBCAtt cell type, each validation crop routed to the head of the type the
model itself predicts (the sum of its type probabilities over each WBCAtt type's stage-1 types).
On the shipped model (cellnet-20261204-1309-att202612041313, 2026-12-04; routing right for 99.84 % of validation
crops): pooled 93.04 %, by type 93.03 %, so per-type heads were not built into the model."""
import sys

import numpy as np

from core.datasets import attribute_targets, load_all, source_map
from core.preprocess import decode_all
from core.taxonomy import load_taxonomy
from models.engine.attribute_head import AttributeHeadConfig, fit_attribute_head
from models.engine.evaluate import attribute_accuracy
from models.export.artifact import input_geometry, load_cellnet

WBCATT_TYPES = {"Neutrophil": ["SNE", "BNE"], "Eosinophil": ["EO"], "Basophil": ["BA"],
                "Lymphocyte": ["LY", "VLY"], "Monocyte": ["MO"]}

net, meta = load_cellnet(sys.argv[1] if len(sys.argv) > 1 else "models/cellnet")
px, field_of_view = input_geometry(meta)
abbrs = load_taxonomy().type_abbrs
group_sizes = [len(v) for v in source_map()["wbcatt_attributes"].values()]
real = load_all(None)
targets = attribute_targets(real)
labelled = (targets >= 0).any(1)
data = {}
for split in ("train", "val"):
    idx = np.flatnonzero(labelled & (real["split"].values == split))
    images = decode_all(real["path"].iloc[idx].tolist(), px, 2, field_of_view)
    parts = [net.predict(images[i:i + 512].astype("float32"), batch_size=64, verbose=0) for i in range(0, len(images), 512)]
    probs = np.concatenate([np.asarray(p["cell_type"]) for p in parts])
    group_p = np.stack([probs[:, [abbrs.index(a) for a in members]].sum(1) for members in WBCATT_TYPES.values()], 1)
    data[split] = dict(x=np.concatenate([np.asarray(p["embedding"]) for p in parts]), t=targets[idx],
                       true=real["wbcatt_label"].iloc[idx].to_numpy(), routed=np.array(list(WBCATT_TYPES))[group_p.argmax(1)])
    print(split, len(idx), "routing accuracy", f"{100 * (data[split]['routed'] == data[split]['true']).mean():.2f} %")

train, val = data["train"], data["val"]
kernel, bias, _ = fit_attribute_head(train["x"], train["t"], group_sizes, AttributeHeadConfig())
pooled = attribute_accuracy(val["x"] @ kernel + bias, val["t"])
by_type_logits = np.zeros((len(val["x"]), sum(group_sizes)))
for label in WBCATT_TYPES:
    rows = train["true"] == label
    kernel, bias, _ = fit_attribute_head(train["x"][rows], train["t"][rows], group_sizes, AttributeHeadConfig())
    routed = val["routed"] == label
    by_type_logits[routed] = val["x"][routed] @ kernel + bias
by_type = attribute_accuracy(by_type_logits, val["t"])
for name in pooled:
    print(f"{name:28s} pooled {100 * pooled[name]:5.1f} %  by type {100 * by_type[name]:5.1f} %")
print(f"mean: pooled {100 * np.mean(list(pooled.values())):.2f} %, by type {100 * np.mean(list(by_type.values())):.2f} %")
