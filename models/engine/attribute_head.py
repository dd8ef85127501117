"""Refit of the stage-1 WBCAtt attribute head on frozen embeddings (``mdsdx train attributes``).

The head is one Dense layer on the 512-d pooled embedding, trained jointly with the rest of the
network at a loss weight of 0.5 beside types and features. Here each attribute gets its own
multinomial logistic regression on the embeddings of the unaugmented train-split crops, with its
L2 strength chosen by stratified cross-validation on the train split only (optionally then refitted
on train and validation together); the coefficients are
written back into the same Dense layer, so the model's architecture, size and speed are unchanged
and the type and feature outputs are untouched.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ABSENT_LOGIT_MARGIN = 10.0  # a value no train crop shows sits this far below the others' biases


@dataclass(frozen=True)
class AttributeHeadConfig:
    """Search grid and cross-validation of the per-attribute logistic regressions."""
    cs: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)   # inverse L2 strengths tried
    folds: int = 5
    seed: int = 0
    max_iter: int = 3000
    batch_size: int = 64
    # 1: the unaugmented train crops; up to 8: also their exact rotations by 90 degrees and flips. On the shipped
    # model 4 views gave validation mean accuracy 92.95 % against 93.03 % with 1 (runs/soup2m_att4, 2026-12-04).
    train_views: int = 1
    # After the train-only fit is scored on the validation split, fit the saved head again on the train and
    # validation crops together, with C again chosen by cross-validation. Nothing else in the head's fit looks at the
    # validation split, so its score before the refit stays the held-out estimate.
    fit_on_validation: bool = False


def fit_attribute_head(embeddings: np.ndarray, targets: np.ndarray, group_sizes: list[int],
                       config: AttributeHeadConfig = AttributeHeadConfig(),
                       groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Fit the head's ``kernel`` (d, sum(group_sizes)) and ``bias`` (sum,) and return them with the C
    chosen for each attribute.

    ``embeddings`` (n, d) float; ``targets`` (n, len(group_sizes)) int, the value index of each
    attribute or -1 where the crop has no label. ``groups`` (n,): the source crop of each row when
    rows are several views of one crop, so that the cross-validation never splits a crop's views.
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    d = embeddings.shape[1]
    kernel = np.zeros((d, sum(group_sizes)), np.float32)
    bias = np.zeros(sum(group_sizes), np.float32)
    chosen: list[float] = []
    start = 0
    for j, size in enumerate(group_sizes):
        known = targets[:, j] >= 0
        x, y = embeddings[known], targets[known, j]
        g = None if groups is None else groups[known]
        classes = np.unique(y)
        counts = np.array([len(np.unique(g[y == c])) for c in classes]) if g is not None else np.unique(y, return_counts=True)[1]
        cols = slice(start, start + size)
        if len(classes) < 2:
            group_bias = np.full(size, -ABSENT_LOGIT_MARGIN, np.float32)
            group_bias[classes] = 0.0
            bias[cols] = group_bias
            chosen.append(float("nan"))
            start += size
            continue
        folds = min(config.folds, int(counts.min()))
        if folds >= 2:
            splitter = (StratifiedKFold(folds, shuffle=True, random_state=config.seed) if g is None
                        else StratifiedGroupKFold(folds, shuffle=True, random_state=config.seed))
            cv = list(splitter.split(x, y, g))
            with warnings.catch_warnings():  # scikit-learn 1.9 announces new defaults; accuracy is set explicitly
                warnings.simplefilter("ignore", FutureWarning)
                clf = LogisticRegressionCV(Cs=list(config.cs), cv=cv, scoring="accuracy", max_iter=config.max_iter).fit(x, y)
            c = float(np.atleast_1d(clf.C_)[0])
        else:  # a value seen once: no fold can hold it out, so take the middle of the grid
            c = float(config.cs[len(config.cs) // 2])
            clf = LogisticRegression(C=c, max_iter=config.max_iter).fit(x, y)
        chosen.append(c)
        coef, intercept = clf.coef_, clf.intercept_
        if len(classes) == 2:  # sklearn gives one logit for two classes: softmax([0, z]) = sigmoid(z)
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.array([0.0, intercept[0]])
        group_kernel = np.zeros((d, size), np.float32)
        group_bias = np.full(size, intercept.min() - ABSENT_LOGIT_MARGIN, np.float32)
        group_kernel[:, classes] = coef.T
        group_bias[classes] = intercept
        kernel[:, cols], bias[cols] = group_kernel, group_bias
        start += size
    return kernel, bias, chosen


def dihedral_view(images: np.ndarray, view: int) -> np.ndarray:
    """View 0-7 of (n, h, w, 3) square images: rotation by ``view % 4`` quarter turns, mirrored when
    ``view >= 4``; exact pixel permutations, no interpolation."""
    if not 0 <= view < 8:
        raise ValueError(f"view must be 0-7, got {view}")
    out = np.rot90(images, view % 4, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if view >= 4 else out)


def embed_images(net, images: np.ndarray, batch_size: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (n, d) and attribute logits (n, 31) of uint8 images, converted to float a chunk at a time."""
    if len(images) == 0:
        return np.zeros((0, net.get_layer("embedding").output.shape[-1])), np.zeros((0, net.get_layer("attributes").units))
    parts = [net.predict(images[i:i + chunk].astype("float32"), batch_size=batch_size, verbose=0)
             for i in range(0, len(images), chunk)]
    return (np.concatenate([np.asarray(p["embedding"]) for p in parts]),
            np.concatenate([np.asarray(p["attributes"]) for p in parts]))


def labelled_split_embeddings(model_dir: Path | str | None, splits: tuple[str, ...] = ("train", "val"),
                              threads: int = 2, batch_size: int = 64) -> tuple[dict, dict, list[int]]:
    """For the stage-1 model in ``model_dir`` (None: the shipped one), the embeddings (n, d) and WBCAtt
    targets (n, attributes) of each split's unaugmented crops with WBCAtt labels, keyed by split, and the
    attributes' group sizes. Used by the head diagnostics in experiments/scripts/."""
    from core.datasets import attribute_targets, load_all, source_map
    from core.preprocess import decode_all
    from models.export.artifact import input_geometry, load_cellnet
    net, meta = load_cellnet(model_dir)
    px, field_of_view = input_geometry(meta)
    real = load_all(None)
    targets = attribute_targets(real)
    labelled = (targets >= 0).any(1)
    x, t = {}, {}
    for split in splits:
        idx = np.flatnonzero(labelled & (real["split"].values == split))
        x[split] = embed_images(net, decode_all(real["path"].iloc[idx].tolist(), px, threads, field_of_view), batch_size)[0]
        t[split] = targets[idx]
    return x, t, [len(v) for v in source_map()["wbcatt_attributes"].values()]


def refit_saved(model_dir: Path, data_root: Path | None = None,
                config: AttributeHeadConfig = AttributeHeadConfig(), threads: int = 2) -> dict:
    """Refit the attribute head of the stage-1 model in ``model_dir`` in place and return the
    validation-split accuracy of each attribute before and after. "After" is always the train-only
    fit's, a held-out figure, also when ``config.fit_on_validation`` then refits the saved head on
    train and validation."""
    from core.datasets import attribute_targets, load_all, source_map
    from core.errors import InvalidInput
    from core.preprocess import decode_all
    from models.engine.evaluate import attribute_accuracy
    from models.export.artifact import input_geometry, load_cellnet, resave_cellnet
    model_dir = Path(model_dir)
    net, meta = load_cellnet(model_dir)
    px, field_of_view = input_geometry(meta)
    vocab = source_map()["wbcatt_attributes"]
    group_sizes = [len(v) for v in vocab.values()]
    real = load_all(data_root)
    targets = attribute_targets(real)
    labelled = (targets >= 0).any(1)
    split = {s: np.flatnonzero(labelled & (real["split"].values == s)) for s in ("train", "val")}
    if len(split["train"]) == 0:
        raise InvalidInput("no train-split crop has WBCAtt attributes; check --data-root")
    views, old_logits = {}, {}
    for s, idx in split.items():
        log.info("embedding %d %s crops with WBCAtt attributes", len(idx), s)
        images = decode_all(real["path"].iloc[idx].tolist(), px, threads, field_of_view)
        first, old_logits[s] = embed_images(net, images, config.batch_size)
        n_views = config.train_views if s == "train" or config.fit_on_validation else 1
        views[s] = [first] + [embed_images(net, dihedral_view(images, v), config.batch_size)[0]
                              for v in range(1, n_views)]
        del images

    def fit(splits: tuple[str, ...]):
        x = np.concatenate([np.concatenate(views[s]) for s in splits])
        t = np.concatenate([np.tile(targets[split[s]], (config.train_views, 1)) for s in splits])
        offset = {"train": 0, "val": len(split["train"])}  # one group id per source crop across both splits
        crop = np.concatenate([np.tile(offset[s] + np.arange(len(split[s])), config.train_views) for s in splits])
        return fit_attribute_head(x, t, group_sizes, config, groups=crop if config.train_views > 1 else None)

    kernel, bias, chosen = fit(("train",))
    val_t = targets[split["val"]]
    before = attribute_accuracy(old_logits["val"], val_t)
    after = attribute_accuracy(views["val"][0] @ kernel + bias, val_t)
    fit_splits = ("train", "val") if config.fit_on_validation and len(split["val"]) else ("train",)
    if fit_splits != ("train",):
        log.info("held-out validation mean accuracy of the train-only fit %.4f; refitting on train and validation",
                 np.nanmean(list(after.values())))
        kernel, bias, chosen = fit(fit_splits)
    net.get_layer("attributes").set_weights([kernel, bias])

    now = datetime.now(timezone.utc)
    meta["version"] = f"{meta['version']}-att{now:%Y%m%d%H%M}"
    meta["weights_version"] = meta["version"]  # the attribute weights changed
    report = {"fitted": now.isoformat(timespec="seconds"), "config": asdict(config), "n_train": int(len(split["train"])),
              "n_val": int(len(split["val"])), "fit_splits": list(fit_splits), "c": dict(zip(vocab, chosen)),
              "val_accuracy_before": before, "val_accuracy_after": after,
              "val_mean_before": float(np.nanmean(list(before.values()))),
              "val_mean_after": float(np.nanmean(list(after.values())))}
    meta["attribute_head"] = report
    resave_cellnet(net, model_dir, meta)
    return report
