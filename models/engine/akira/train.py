"""Training and 5-fold cross-validation of AKIRA (``mdsdx granules train|cv``).

Optimisation (Mori et al. and the reference code): Adam with learning rate 1e-4 for the head and
1e-5 for the backbone, as two optimisers (scaling gradients does nothing under Adam), beta1 0.9,
beta2 0.999, eps 1e-8, decoupled weight decay 1e-6 on all parameters, batch size 10, every layer
fine-tuned with BatchNorm in training mode. The paper fine-tuned an ImageNet backbone; here the
compact backbone starts from the shipped stage-1 cell CNN (same architecture, trained on blood
cells), our stand-in for that pretraining, since ImageNet weights cannot be downloaded.

Folds: 5 by iterative multilabel stratification on label presence (iterstrat, shuffled with the
seed); inside each training part a stratified 10 % validation split chooses the best epoch. DG
grades are oversampled per training fold (:func:`models.engine.akira.data.oversample_dg`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.akira_labels import load_labels
from core.errors import InvalidInput
from models.architecture.akira import AkiraConfig
from models.engine.akira.augment import DEFAULT_INTERPOLATION, augment, rotation_resample
from models.engine.akira.data import counted_as_grade0, crop_sources, oversample_dg, read_label_table, shared_crops
from models.engine.akira.metrics import metrics_from_scores, rates_by_group
from models.engine.akira.resume import EpochCheckpoints, ResumeState, run_fingerprint

log = logging.getLogger(__name__)


@dataclass
class AkiraTrainConfig:
    backbone: str = "compact"
    input_px: int = 112
    width: int = 16
    middle_width: int = 256
    middle_blocks: int = 8
    backbone_weights: str | None = None     # a weights file for the backbone
    init_from_cellnet: str | None = "shipped"  # compact only: stage-1 model folder, "shipped", or None for random
    epochs: int = 10                        # the paper: 120
    batch_size: int = 10
    # Adam learning rates, one optimiser each. The paper (ImageNet ResNet-152, 120 epochs): 1e-4 head,
    # 1e-5 backbone (PAPER_OVERRIDES). The compact config keeps their ratio at 10x: with the paper's
    # rates, 5 epochs gave DG scores compressed around the oversampled mean (fold 1: mean 1.60 for
    # DG0 and 2.32 for DG3 neutrophils, AUC 0.94, specificity 66 %), an underfit that 120 epochs
    # would absorb but a CPU session cannot.
    head_lr: float = 1e-3
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-6
    folds: int = 5
    val_fraction: float = 0.1
    seed: int = 0
    # Exponential moving average of the weights, updated after every step (None: off). Validation, the
    # best-epoch choice and the saved model then use the averaged weights. Not in the paper.
    ema_decay: float | None = None
    # A second label-table folder (``mdsdx granules labels``) whose images join the training part of every
    # fold and of the final model, but never a validation split or a test fold, so the CV figures stay
    # measured on the main table alone. It must share no source crop with the main table.
    extra_train: str | None = None
    # The rotation filter of the augmentation and of the 16 inference views (models.engine.akira.augment):
    # bilinear or bicubic. Saved in the model's metadata, so inference rotates as training did.
    rotation_interpolation: str = DEFAULT_INTERPOLATION
    # True: the reference's BatchNorm in training mode (batch statistics of each batch of 10, moving
    # statistics updated). False: every BatchNorm layer frozen at its initial statistics, scale and offset,
    # normalising with the moving statistics in training as in inference. Not in the paper.
    batchnorm_training: bool = True
    # Which DG0 images set n0 in the oversampling (each DG i image repeated floor(n0 / n_i) - 1 extra times):
    # "all" DG0 images, as in the reference, or only the "granulocytic" ones, the cells DG grades. Not in the paper.
    oversample_grade0: str = "all"

    def __post_init__(self):
        if self.oversample_grade0 not in ("all", "granulocytic"):
            raise InvalidInput(f"oversample_grade0 must be all or granulocytic, got {self.oversample_grade0!r}")
        try:
            rotation_resample(self.rotation_interpolation)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

    def identifying_settings(self) -> dict:
        """The settings that identify a run (CV folder, epoch checkpoints): all of them, except those added
        after runs were first recorded while they keep their defaults, so older runs still resume."""
        return without_later_defaults(asdict(self))

    def net(self) -> AkiraConfig:
        return AkiraConfig(backbone=self.backbone, input_px=self.input_px, width=self.width,
                           middle_width=self.middle_width, middle_blocks=self.middle_blocks,
                           backbone_weights=self.backbone_weights)


# Settings added after the first recorded runs, with the defaults those runs trained at.
LATER_DEFAULTS = {"extra_train": None, "rotation_interpolation": DEFAULT_INTERPOLATION, "batchnorm_training": True,
                  "oversample_grade0": "all"}


def without_later_defaults(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}


# ``--paper``: the reference configuration, Keras ResNet-152 at 224 px with the paper's learning rates.
PAPER_OVERRIDES = dict(backbone="paper", input_px=224, init_from_cellnet=None, head_lr=1e-4, backbone_lr=1e-5)


def _load_images(table: pd.DataFrame, images_dir: Path) -> list[np.ndarray]:
    def read(name):
        with Image.open(images_dir / name) as im:
            return np.asarray(im.convert("RGB"))
    with ThreadPoolExecutor(2) as ex:
        return list(ex.map(read, table["Filename"]))


def _build(config: AkiraTrainConfig):
    from models.architecture.akira import build_akira
    model = build_akira(config.net())
    if config.backbone == "compact" and config.init_from_cellnet:
        from models.export.artifact import copy_weights_by_name, load_cellnet
        source = None if config.init_from_cellnet == "shipped" else Path(config.init_from_cellnet)
        cellnet, _ = load_cellnet(source)
        copy_weights_by_name(cellnet, model.get_layer("backbone").layers)
    return model


def freeze_batchnorm(model) -> int:
    """Freeze every BatchNorm layer of ``model`` (Keras 3 then normalises with the moving statistics also
    when called with ``training=True``, and leaves scale and offset untrained); returns how many."""
    import keras

    def walk(layer):
        yield layer
        for inner in getattr(layer, "layers", []):
            yield from walk(inner)
    layers = [layer for layer in walk(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.trainable = False
    return len(layers)


def fit_akira(images: list[np.ndarray], y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
              config: AkiraTrainConfig, log_prefix: str = "", checkpoint_dir: Path | None = None):
    """Train one model; returns it with the weights of its best validation epoch.

    With ``checkpoint_dir`` every finished epoch is saved there and a rerun continues after the last
    one (:mod:`models.engine.akira.resume`); the caller discards the folder once the result is written.
    """
    import keras
    import tensorflow as tf

    from models.architecture.akira import backbone_variables, head_variables
    from models.engine.akira.loss import weighted_mean_quartic
    labels = load_labels()
    keras.utils.set_random_seed(config.seed)
    model = _build(config)
    if not config.batchnorm_training:
        freeze_batchnorm(model)
    bvars, hvars = backbone_variables(model), head_variables(model)
    adam = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=config.weight_decay)
    opt_backbone = keras.optimizers.AdamW(config.backbone_lr, **adam)
    opt_head = keras.optimizers.AdamW(config.head_lr, **adam)
    weights = labels.loss_weights()

    averaged = [v for v in model.weights if "float" in str(v.dtype)]  # trainables and BatchNorm statistics
    ema = WeightAverage(averaged, config.ema_decay) if config.ema_decay else None
    opt_backbone.build(bvars)
    opt_head.build(hvars)

    @tf.function(reduce_retracing=True)
    def step(x, t):
        with tf.GradientTape() as tape:
            loss = weighted_mean_quartic(t, model(x, training=True), weights)
        grads = tape.gradient(loss, bvars + hvars)
        opt_backbone.apply_gradients(zip(grads[:len(bvars)], bvars))
        opt_head.apply_gradients(zip(grads[len(bvars):], hvars))
        if ema is not None:
            ema.update()
        return loss

    @tf.function(reduce_retracing=True)
    def predict(x):
        return model(x, training=False)

    rng = np.random.default_rng(config.seed)
    epoch_idx = oversample_dg(train_idx, y[:, labels.focus_index], counted_as_grade0(y, config.oversample_grade0))
    val_views = np.stack([augment(images[i], config.input_px, np.random.default_rng([config.seed, int(i)]),
                                  config.rotation_interpolation)
                          for i in val_idx]).astype("float32") if len(val_idx) else None
    checkpoints, state = None, ResumeState()
    if checkpoint_dir is not None:
        seeds = [v for v in model.variables if "seed_generator" in v.path]  # dropout's, not in model.weights
        trackables = dict(model=model, opt_backbone=opt_backbone, opt_head=opt_head, dropout_seeds=seeds)
        if ema is not None:
            trackables.update(ema_shadow=ema.shadow, ema_updates=ema.updates)
        checkpoints = EpochCheckpoints(checkpoint_dir, run_fingerprint(config, y, train_idx, val_idx), **trackables)
        state = checkpoints.restore(rng)
    for epoch in range(state.epoch, config.epochs):
        order = rng.permutation(epoch_idx)
        batches = [order[s:s + config.batch_size] for s in range(0, len(order), config.batch_size)]
        make = lambda b: (np.stack([augment(images[i], config.input_px, rng, config.rotation_interpolation)
                                    for i in b]).astype("float32"), y[b])
        losses = []
        with ThreadPoolExecutor(1) as ex:
            pending = ex.submit(make, batches[0])
            for k in range(len(batches)):
                x, t = pending.result()
                if k + 1 < len(batches):
                    pending = ex.submit(make, batches[k + 1])
                losses.append(float(step(x, t)))
        live = ema.swap_in() if ema is not None else None
        val_loss = float("nan")
        if val_views is not None:
            pred = np.concatenate([np.asarray(predict(val_views[s:s + 64])) for s in range(0, len(val_views), 64)])
            val_loss = float(np.mean(weights * (pred - y[val_idx]) ** 4))
        log.info("%sepoch %d/%d: train %.4f, val %.4f%s (%d images)", log_prefix, epoch + 1, config.epochs,
                 np.mean(losses), val_loss, " (averaged weights)" if ema is not None else "", len(epoch_idx))
        improved = val_views is None or val_loss < state.best_loss
        if improved:
            state.best_loss, state.best_weights = val_loss, model.get_weights()
        if live is not None:
            ema.restore(live)
        state.epoch = epoch + 1
        if checkpoints is not None:
            checkpoints.save(state, rng, best_changed=improved)
    if state.best_weights is None:
        raise InvalidInput(f"no epoch to train: epochs is {config.epochs}")
    model.set_weights(state.best_weights)
    return model, state.best_loss


class WeightAverage:
    """An exponential moving average of some model variables, with the usual warm-up: the decay after
    ``n`` updates is ``min(decay, (1 + n) / (10 + n))``, so early averages are not dominated by the start."""

    def __init__(self, variables: list, decay: float):
        import tensorflow as tf
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be between 0 and 1, not {decay}")
        self.variables = list(variables)
        self.decay = decay
        self.shadow = [tf.Variable(v, trainable=False) for v in self.variables]
        self.updates = tf.Variable(0.0, trainable=False)

    def update(self) -> None:
        """One averaging step; callable inside a ``tf.function``."""
        import tensorflow as tf
        self.updates.assign_add(1.0)
        d = tf.minimum(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for s, v in zip(self.shadow, self.variables):
            s.assign(d * s + (1.0 - d) * tf.cast(v, s.dtype))

    def swap_in(self) -> list[np.ndarray]:
        """Load the averaged values into the model; returns the live values for :meth:`restore`."""
        live = [np.asarray(v) for v in self.variables]
        for s, v in zip(self.shadow, self.variables):
            v.assign(np.asarray(s))
        return live

    def restore(self, live: list[np.ndarray]) -> None:
        for value, v in zip(live, self.variables):
            v.assign(value)


def _load_table(labels_dir: Path, config: AkiraTrainConfig):
    """Images, labels (n, 34) and the number of main-table rows: the main table first, then the rows of
    ``config.extra_train``, which only ever join training parts."""
    labels = load_labels()
    table = read_label_table(Path(labels_dir) / "labels.csv")
    images = _load_images(table, Path(labels_dir) / "images")
    y = table[list(labels.ids)].values.astype("float32")
    if not config.extra_train:
        return table, images, y, len(y)
    extra_dir = Path(config.extra_train)
    if not (extra_dir / "labels.csv").is_file():
        raise InvalidInput(f"extra_train {extra_dir} has no labels.csv")
    overlap = shared_crops(labels_dir, extra_dir)
    if overlap:
        raise InvalidInput(f"extra_train {extra_dir} shares {len(overlap)} source crops with {labels_dir}; "
                           "a crop must not be both a training-only and a test image")
    extra = read_label_table(extra_dir / "labels.csv")
    images += _load_images(extra, extra_dir / "images")
    y = np.concatenate([y, extra[list(labels.ids)].values.astype("float32")])
    return table, images, y, len(table)


def _split(y: np.ndarray, config: AkiraTrainConfig):
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit
    presence = (y > 0).astype(int)
    folds = MultilabelStratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    for fold, (train_part, test_idx) in enumerate(folds.split(np.zeros(len(y)), presence)):
        inner = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=config.val_fraction, random_state=config.seed + fold)
        tr, va = next(inner.split(np.zeros(len(train_part)), presence[train_part]))
        yield fold, train_part[tr], train_part[va], test_idx


def cross_validate(labels_dir: Path, out: Path, config: AkiraTrainConfig, workers: int = 1) -> dict:
    """5-fold CV: writes ``fold<k>.csv`` per finished fold (a rerun resumes), ``cv_predictions.csv`` (raw
    outputs, view spread, gated scores) and ``metrics.json``.

    ``workers`` > 1 trains that many folds at once in separate processes, each with an equal share of
    the CPU cores: at batch size 10 one process keeps 2 cores only partly busy (one step takes 158 ms
    on 1 core against 117 ms on 2), so 2 workers finish a CV about 1.4 times sooner.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _claim_cv_folder(out, labels_dir, config)
    todo = [k for k in range(config.folds) if not (out / f"fold{k}.csv").is_file()]
    if workers <= 1 or len(todo) <= 1:
        _run_folds(labels_dir, out, config, todo)
    else:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_setup, initargs=(threads,)) as pool:
            for job in [pool.submit(_run_folds, labels_dir, out, config, [k]) for k in todo]:
                job.result()
    predictions = pd.concat([pd.read_csv(out / f"fold{k}.csv") for k in range(config.folds)], ignore_index=True)
    predictions.to_csv(out / "cv_predictions.csv", index=False)
    metrics = metrics_from_scores(predictions["true_dg"], predictions["dg_score"])
    sources = crop_sources(labels_dir, predictions["Filename"])
    if sources is not None:
        metrics["by_source"] = rates_by_group(predictions["true_dg"], predictions["dg_score"], sources.replace("", "unknown"))
    metrics["data"] = "DG grades SIMULATED by mdsdx on real neutrophil crops"
    metrics["config"] = asdict(config)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _claim_cv_folder(out: Path, labels_dir: Path, config: AkiraTrainConfig) -> None:
    """Record which labels and settings ``out`` holds a CV of (``cv_run.json``), and refuse to resume a
    CV of other ones: after ``relabel`` or a config change, finished fold files would be stale."""
    labels_hash = hashlib.sha256((Path(labels_dir) / "labels.csv").read_bytes()).hexdigest()
    run = {"labels_sha256": labels_hash, "config": config.identifying_settings()}
    if config.extra_train:
        run["extra_train_sha256"] = hashlib.sha256((Path(config.extra_train) / "labels.csv").read_bytes()).hexdigest()
    path = out / "cv_run.json"
    if path.is_file():
        held = json.loads(path.read_text())
        held["config"] = without_later_defaults(held.get("config", {}))  # some folders wrote later settings at defaults
        if held != json.loads(json.dumps(run)):
            what = "labels" if held.get("labels_sha256") != labels_hash else (
                "extra training labels" if held.get("extra_train_sha256") != run.get("extra_train_sha256") else "settings")
            raise InvalidInput(f"{out} holds a CV of other {what}; give a new --out (or remove the folder to start again)")
    elif any(out.glob("fold*.csv")):
        log.warning("%s has fold files from before cv_run.json existed; assuming they are of these labels and settings", out)
    path.write_text(json.dumps(run, indent=2))


def _worker_setup(threads: int) -> None:
    import tensorflow as tf
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _run_folds(labels_dir: Path, out: Path, config: AkiraTrainConfig, folds: list[int]) -> None:
    """Train and score the given CV folds, writing ``out/fold<k>.csv`` for each."""
    from models.engine.akira.infer import GranuleScorer
    if not folds:
        return
    labels = load_labels()
    table, images, y, n_main = _load_table(labels_dir, config)
    extra_idx = np.arange(n_main, len(y))
    for fold, train_idx, val_idx, test_idx in _split(y[:n_main], config):
        if fold not in folds:
            continue
        train_idx = np.concatenate([train_idx, extra_idx])
        resume = out / f"fold{fold}.resume"
        model, _ = fit_akira(images, y, train_idx, val_idx, config, log_prefix=f"fold {fold + 1}/{config.folds} ",
                             checkpoint_dir=resume)
        scores = GranuleScorer(model=model, input_px=config.input_px,
                               rotation_interpolation=config.rotation_interpolation).score_arrays([images[i] for i in test_idx])
        part = pd.DataFrame({"Filename": table["Filename"].values[test_idx], "fold": fold,
                             "true_dg": y[test_idx, labels.focus_index].astype(int),
                             "dg_score": scores.dg_score, "dg_grade": scores.dg_grade, "category": scores.category})
        part = pd.concat([part, pd.DataFrame(scores.outputs, columns=[f"out_{i}" for i in labels.ids]),
                          pd.DataFrame(scores.view_spread, columns=[f"spread_{i}" for i in labels.ids])], axis=1)
        partial = out / f"fold{fold}.csv.part"
        part.to_csv(partial, index=False)
        partial.replace(out / f"fold{fold}.csv")  # a fold file is whole or absent
        shutil.rmtree(resume, ignore_errors=True)


def train_final(labels_dir: Path, out: Path, config: AkiraTrainConfig) -> Path:
    """Train on every labelled image (10 % validation for the best epoch) and save the model."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _, images, y, n_main = _load_table(labels_dir, config)
    split = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=config.val_fraction, random_state=config.seed)
    train_idx, val_idx = next(split.split(np.zeros(n_main), (y[:n_main] > 0).astype(int)))
    train_idx = np.concatenate([train_idx, np.arange(n_main, len(y))])
    model, val_loss = fit_akira(images, y, train_idx, val_idx, config, checkpoint_dir=out / "resume")
    saved = save_akira(model, config, out, {"validation_loss": val_loss, "n_images": int(len(y)),
                                            "n_extra_train": int(len(y) - n_main),
                                            "labels": str(Path(labels_dir) / "labels.csv")})
    shutil.rmtree(out / "resume", ignore_errors=True)
    return saved


def save_akira(model, config: AkiraTrainConfig, out: Path, extra: dict | None = None, version: str | None = None) -> Path:
    """Save ``akira.keras`` and its ``metadata.json`` (format, output order, maxval, config)."""
    from models.export.akira_artifact import FORMAT, ONNX_FILE
    from models.export.artifact import library_versions, onnx_record
    from models.export.runtime import export_onnx
    labels = load_labels()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "akira.keras")
    onnx_path = export_onnx(model, out / ONNX_FILE, config.input_px)
    meta = {"format": FORMAT, "version": version or datetime.now(timezone.utc).strftime("akira-%Y%m%d-%H%M"),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "libraries": library_versions("tensorflow-cpu", "tensorflow", "keras", "numpy"),
            "config": asdict(config), "outputs": list(labels.ids), "maxval": labels.maxval.tolist(),
            "categories": list(labels.categories), "runtime": onnx_record(onnx_path), **(extra or {})}
    (out / "metadata.json").write_text(json.dumps(meta, indent=2))
    return out / "akira.keras"
