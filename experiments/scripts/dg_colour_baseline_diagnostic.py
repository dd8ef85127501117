"""Diagnostic only (python experiments/scripts/dg_colour_baseline_diagnostic.py [LABELS_DIR [CV_DIR]]; writes nothing): how well
does a hand-made statistic separate the SIMULATED DG grades of an AKIRA label table's neutrophils, against the CNN?

For every neutrophil row of LABELS_DIR (default runs/akira/labels3), the simulator's own segmentation
(simulate.segment.segment_cell) gives the inner cytoplasm; its mean and standard deviation of R, G and B (6 numbers),
and the log granule texture energy, feed a logistic regression for DG1-3 against DG0, scored by 5-fold stratified
cross-validation. Prints its AUC and its false positives among the DG0 neutrophils at 91.0 % (the paper's) and
95.5 % (the 2026-12-03 model's CV) sensitivity; then, on the neutrophils of the folds finished in CV_DIR (default
runs/akira/cv17), the same for the CNN's raw 16-view DG output. The statistic is privileged: it reads the mask
the simulator wrote the grade through, and the simulator fades the cytoplasm toward one fixed pale blue-grey.

Measured 2026-12-06 on runs/akira/labels3 (335 neutrophils: 134 DG1-3, 201 DG0; SIMULATED DG), about 1 minute:
- texture alone AUC 0.956, 16 / 21 false positives at 91.0 / 95.5 % sensitivity;
- colour alone AUC 0.978, 4 / 16 (the 4 all bone-marrow neutrophils); texture and colour AUC 0.974, 4 / 18;
- the 2026-12-03 CNN's 5-fold CV (runs/akira/cv10), at its own rounding: 25 false positives at 95.5 % sensitivity;
- on the 134 neutrophils of folds 1-2 of runs/akira/cv17 (the bicubic probe, 11 false positives at its rounding):
  CNN raw DG output AUC 0.962, 5 / 10 false positives of 81 DG0 at 91.0 / 95.5 % sensitivity; colour AUC 0.987,
  0 / 1.
So the simulated grades are not lost in the natural range of pale peripheral-blood neutrophils: six colour numbers
read them better than the CNN does, which ranks them less well as well as rounding more of the DG0 ones up. The
CNN's false positives are therefore not an overlap built into the simulated labels; it reads the simulator's colour
signature less well than the statistic does (from about 270 training neutrophils a fold, at 112 px). Under the
reference oversampling one epoch of the whole table shows 201 / 1,012 / 1,001 / 1,023 copies of DG0 / 1 / 2 / 3
neutrophils and 824 other DG0 cells: n0 counts every DG0 cell, so 94 % of the neutrophils the CNN sees are graded.
With n0 from the granulocytic DG0 images only (oversample_grade0: granulocytic, the shipped model's), 201 / 184 / 154 /
198 and 824: 73 % graded. With CV_DIR runs/akira/cv20 (that model's CV): CNN raw DG output on all 335 neutrophils AUC
0.977, 5 / 9 false positives of 201 DG0 at 91.0 / 95.5 % sensitivity; colour 0.978, 4 / 16."""
import glob
import sys

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.akira_labels import load_labels
from models.engine.akira.data import counted_as_grade0, oversample_dg
from simulate.segment import segment_cell
from simulate.transforms import granule_texture_energy, inner_cytoplasm

labels_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/akira/labels3"
cv_dir = sys.argv[2] if len(sys.argv) > 2 else "runs/akira/cv17"
table = pd.read_csv(f"{labels_dir}/labels.csv").merge(pd.read_csv(f"{labels_dir}/provenance.csv"), on="Filename")
neutrophils = table[table["source"].str.contains("neutrophil")].reset_index(drop=True)
stats = []
for name in neutrophils["Filename"]:
    rgb = np.asarray(Image.open(f"{labels_dir}/images/{name}").convert("RGB"))
    masks = segment_cell(rgb)
    inner = inner_cytoplasm(masks, 3)
    cytoplasm = rgb[inner if inner.any() else masks.cell].astype(float)
    stats.append([np.log(granule_texture_energy(rgb, masks) + 1e-3), *cytoplasm.mean(0), *cytoplasm.std(0)])
stats = np.array(stats)
positive = (neutrophils["DG"].values > 0).astype(int)


def false_positives(score: np.ndarray, truth: np.ndarray, sensitivity: float) -> int:
    """DG0 cells at or above the highest threshold that keeps ``sensitivity`` of the positives."""
    threshold = np.sort(score[truth == 1])[int(np.floor((1 - sensitivity) * truth.sum()))]
    return int(((score >= threshold) & (truth == 0)).sum())


def cross_validated(columns: list[int]) -> np.ndarray:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return cross_val_predict(model, stats[:, columns], positive, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                             method="predict_proba")[:, 1]


print(f"{len(positive)} neutrophils, {positive.sum()} DG1-3 (SIMULATED)")
scores = {name: cross_validated(cols) for name, cols in
          [("texture", [0]), ("colour", list(range(1, 7))), ("texture+colour", list(range(7)))]}
for name, score in scores.items():
    fp = [false_positives(score, positive, s) for s in (0.910, 0.955)]
    print(f"{name:15s} AUC {roc_auc_score(positive, score):.3f}; false positives of {(positive == 0).sum()} DG0 at "
          f"91.0 / 95.5 % sensitivity: {fp[0]} / {fp[1]}")

cv = pd.concat([pd.read_csv(path) for path in sorted(glob.glob(f"{cv_dir}/fold*.csv"))])
same = neutrophils.assign(colour=scores["colour"], truth=positive).merge(cv[["Filename", "out_DG"]], on="Filename")
for name, column in [("CNN raw DG", "out_DG"), ("colour", "colour")]:
    score, truth = same[column].values, same["truth"].values
    fp = [false_positives(score, truth, s) for s in (0.910, 0.955)]
    print(f"{cv_dir}, {len(same)} neutrophils: {name:10s} AUC {roc_auc_score(truth, score):.3f}; false positives of "
          f"{(truth == 0).sum()} DG0 at 91.0 / 95.5 % sensitivity: {fp[0]} / {fp[1]}")

# What the CNN is shown: one training epoch of the whole table under each oversampling rule
y = table[list(load_labels().ids)].to_numpy(float)
is_neutrophil = table["source"].str.contains("neutrophil").values
for rule in ("all", "granulocytic"):
    epoch = oversample_dg(np.arange(len(table)), table["DG"].values, counted_as_grade0(y, rule))
    copies = np.bincount(epoch, minlength=len(table))
    print(f"one epoch, oversample_grade0 {rule}: neutrophil copies by DG grade",
          [int(copies[is_neutrophil & (table["DG"].values == g)].sum()) for g in range(4)],
          f"other DG0 cells {int(copies[~is_neutrophil].sum())}")
