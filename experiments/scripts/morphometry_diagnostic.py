"""Diagnostic only (python experiments/scripts/morphometry_diagnostic.py; writes runs/morph.npz): do measured morphometrics of the
simulator's segmentation (simulate.segment.segment_cell on the 256-px crop: cell and nucleus area as shares of the crop,
N:C ratio, nucleus components before and after 2- and 4-px erosions, nucleus thickness, boundary ratios) add to the
shipped model's frozen 512-d embedding? Scale augmentation (0.8-1.2, required by the issue) blurs absolute size,
and cell size and nucleus shape are the weakest WBCAtt attributes. Validation split only (never the test split).
Measured 2026-12-06: WBCAtt mean 93.03 % on the embedding, 92.92 % with the morphometrics (cell size 85.5 -> 84.9 %,
nucleus shape 71.1 -> 70.9 %); fine classes (logistic regression, balanced) 83.39 -> 84.39 % at C 0.1 and
83.16 -> 83.00 % at C 0.3. No gain beyond the choice of C, so nothing was built in."""
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.preprocessing import StandardScaler

from core.datasets import attribute_targets, load_all, source_map
from core.preprocess import decode_all
from models.engine.attribute_head import AttributeHeadConfig, embed_images, fit_attribute_head
from models.engine.evaluate import FINE_CLASSES, attribute_accuracy
from models.export.artifact import input_geometry, load_cellnet
from simulate.segment import segment_cell

warnings.simplefilter("ignore")


def morph(path) -> list[float]:
    """12 morphometrics of one crop (shares of the crop's area, counts, ratios to the square root of the area)."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    m = segment_cell(rgb)
    hw = rgb.shape[0] * rgb.shape[1]
    cell, nuc = m.cell, m.nucleus
    a_c, a_n = cell.sum() / hw, nuc.sum() / hw
    n_comp = ndi.label(nuc)[1]
    er2 = ndi.label(ndi.binary_erosion(nuc, iterations=2))[1]
    er4 = ndi.label(ndi.binary_erosion(nuc, iterations=4))[1]
    dt = ndi.distance_transform_edt(nuc)
    thick = dt.max() / max(np.sqrt(nuc.sum()), 1)
    mean_thick = dt[nuc].mean() / max(np.sqrt(nuc.sum()), 1) if nuc.any() else 0
    perim = (nuc & ~ndi.binary_erosion(nuc)).sum() / max(np.sqrt(nuc.sum()), 1)
    cperim = (cell & ~ndi.binary_erosion(cell)).sum() / max(np.sqrt(cell.sum()), 1)
    return [a_c, a_n, a_n / max(a_c, 1e-6), n_comp, er2, er4, thick, mean_thick, perim, cperim, np.sqrt(a_c), np.sqrt(a_n)]



net, meta = load_cellnet("models/cellnet")
px, field_of_view = input_geometry(meta)
gs = [len(v) for v in source_map()["wbcatt_attributes"].values()]
real = load_all(None)
t = attribute_targets(real)
lab = (t >= 0).any(1)
FINE = FINE_CLASSES
fine = (real["source"] == "pbc").values & real["cell_types"].map(lambda c: len(c) == 1 and c[0] in FINE).values
D = {}
for s in ("train", "val"):
    idx = np.flatnonzero((lab | fine) & (real["split"].values == s))
    paths = real["path"].iloc[idx].tolist()
    emb = embed_images(net, decode_all(paths, px, 2, field_of_view), 64)[0]
    with ThreadPoolExecutor(2) as ex:
        mf = np.array(list(ex.map(morph, paths)), float)
    D[s] = dict(emb=emb, mf=mf, t=t[idx], lab=lab[idx], fine=fine[idx], y=real["cell_types"].iloc[idx].map(lambda c: c[0]).values)
    print(s, len(idx), flush=True)
Path("runs").mkdir(exist_ok=True)
np.savez("runs/morph.npz", **{f"{s}_{k}": v for s in D for k, v in D[s].items()})
sc = StandardScaler().fit(D["train"]["mf"])
for name, use in (("embedding", False), ("embedding+morph", True)):
    xs = {s: np.hstack([D[s]["emb"], 3 * sc.transform(D[s]["mf"])]) if use else D[s]["emb"] for s in D}
    tr, va = D["train"], D["val"]
    k, b, _ = fit_attribute_head(xs["train"][tr["lab"]], tr["t"][tr["lab"]], gs, AttributeHeadConfig())
    acc = attribute_accuracy(xs["val"][va["lab"]] @ k + b, va["t"][va["lab"]])
    print(name, "WBCAtt val mean", round(100 * np.mean(list(acc.values())), 2), {a: round(100 * v, 1) for a, v in acc.items()}, flush=True)
    for C in (0.1, 0.3):
        clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(xs["train"][tr["fine"]], tr["y"][tr["fine"]])
        print(name, "fine LR C", C, "val macro", round(100 * recall_score(va["y"][va["fine"]], clf.predict(xs["val"][va["fine"]]), labels=FINE, average="macro"), 2), flush=True)
