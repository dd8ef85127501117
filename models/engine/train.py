"""Training of the stage-1 cell network (``mdsdx train cells``).

Data: the real PBC and marrow crops (types; WBCAtt attributes and vacuoles) and the simulator's
cells (dysplastic features and the types with no real images), each from its own ``train`` split;
the simulated cells come in as the frame of :func:`simulate.training_set.read_training_set`, which
the CLI makes (this package does not import the simulator);
``val`` drives early stopping, temperature scaling and the UNID threshold. Images are decoded
once into memory at ``input_px`` and augmented per batch in tf.data.

Resumable: after every epoch the weights, optimizer state and early-stopping state are saved in
``<out>/resume`` (and, for stochastic weight averaging, the epoch's weights in ``<out>/epochs``); the same
command run again continues after the last finished epoch.
"""
from __future__ import annotations

import json
import logging
import sys
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from core.datasets import attribute_targets, feature_targets, load_all, source_map, type_targets
from core.preprocess import centre_crop, decode_all, frame_px
from core.taxonomy import load_taxonomy

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of one training run; ``mdsdx train cells --config FILE`` overrides any of them (YAML)."""
    data_root: str | None = None          # ../shared/data when None
    simulated_dir: str | None = None      # output of simulate.training_set; the CLI makes <out>/simcells when None
    input_px: int = 128
    field_of_view: float = 1.0            # the network sees the central share of each crop's side (core.preprocess)
    width: int = 16
    middle_width: int = 256
    middle_blocks: int = 8
    epochs: int = 8
    samples_per_epoch: int = 12000
    batch_size: int = 32
    learning_rate: float = 2e-3           # AdamW; see schedule
    schedule: str = "cosine"              # "cosine": decay to 0 over all epochs; "constant": for swa_epochs
    swa_epochs: int = 0                   # > 0: ship the mean of the last swa_epochs epochs' weights (SWA), not the best epoch
    weight_decay: float = 1e-4
    balance_power: float = 0.5            # sampling weight of a type ~ count ** -balance_power
    real_sampling_boost: dict = field(default_factory=dict)  # type key -> factor on the sampling weight of its real crops
    sharpness_jitter: float = 0.0         # > 0: sharpen or soften each source image by a ~ U(-s, s) (models.engine.train._rendition)
    jpeg_quality_min: int = 0             # > 0: re-encode half the source images as JPEG of quality U(min, 95)
    loss_weights: dict = field(default_factory=lambda: {"cell_type": 1.0, "features_logits": 2.0, "attributes": 0.5})
    early_stopping_patience: int = 4
    seed: int = 0
    init_weights: str | None = None       # a .weights.h5 or .keras file to start from
    grow_init: bool = False               # init_weights is a narrower saved model: widen it, same function (models.engine.grow)
    threads: int = 2

    def __post_init__(self):
        from core.errors import InvalidInput
        try:
            frame_px(self.input_px, self.field_of_view)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if self.schedule not in ("cosine", "constant"):
            raise InvalidInput(f"schedule: {self.schedule!r} is not one of cosine, constant")
        if not 0 <= self.jpeg_quality_min <= 95:
            raise InvalidInput(f"jpeg_quality_min: {self.jpeg_quality_min} must lie between 0 (off) and 95")
        if not 0 <= self.sharpness_jitter <= 1:
            raise InvalidInput(f"sharpness_jitter: {self.sharpness_jitter} must lie between 0 (off) and 1")
        if self.grow_init and not self.init_weights:
            raise InvalidInput("grow_init: needs init_weights, the saved model to grow from")
        if not 0 <= self.swa_epochs <= self.epochs:
            raise InvalidInput(f"swa_epochs: {self.swa_epochs} must lie between 0 and epochs ({self.epochs})")


def assemble(config: TrainConfig, simulated: pd.DataFrame) -> pd.DataFrame:
    """One frame of every training image with its targets: the real crops of ``config.data_root`` and
    the ``simulated`` cells (the frame of :func:`simulate.training_set.read_training_set`)."""
    real = load_all(config.data_root)
    real_rows = pd.DataFrame({"path": real["path"], "split": real["split"], "origin": "real",
                              "key": [t[0] if len(t) == 1 else "+".join(t) for t in real["cell_types"]]})
    real_rows["type_target"] = list(type_targets(real["cell_types"]))
    real_rows["feature_target"] = list(feature_targets(real))
    real_rows["attribute_target"] = list(attribute_targets(real))
    sim = simulated.reset_index(drop=True)
    n_attr = len(source_map()["wbcatt_attributes"])
    sim_rows = pd.DataFrame({"path": sim["path"], "split": sim["split"], "origin": "simulated", "key": sim["cell_type"]})
    sim_rows["type_target"] = list(type_targets(pd.Series(list(sim["allowed_types"]), dtype=object)))
    sim_rows["feature_target"] = list(sim["feature_target"])
    sim_rows["attribute_target"] = [np.full(n_attr, -1, np.int32)] * len(sim)
    return pd.concat([real_rows, sim_rows], ignore_index=True)


def _rendition(images, sharpness_jitter: float = 0.0, jpeg_quality_min: int = 0):
    """Vary how a uint8 (n, px, px, 3) batch was rendered, as another analyser, export size or resize
    chain would: half the images are re-encoded as JPEG of quality U(``jpeg_quality_min``, 95), then
    each becomes x + a (x - blur(x)) with a ~ U(-``sharpness_jitter``, ``sharpness_jitter``) and a
    Gaussian blur of sigma 1 px (a < 0 softens, a > 0 sharpens). Returns float32 values 0-255.

    Why: the shipped model of 2026-12-06 changed 2.1 % of its validation calls, most at the fine-class
    boundaries, when the same crops came as 360-px exports (a pixel difference of 1.8 grey levels)."""
    import numpy as np
    import tensorflow as tf
    if jpeg_quality_min:
        def recode(img):
            quality = tf.random.uniform((), jpeg_quality_min, 96, dtype=tf.int32)
            return tf.cond(tf.random.uniform(()) < 0.5, lambda: tf.image.adjust_jpeg_quality(img, quality), lambda: img)
        images = tf.map_fn(recode, images)
    x = tf.cast(images, tf.float32)
    if sharpness_jitter:
        taps = np.exp(-0.5 * np.arange(-2, 3) ** 2)
        taps = (taps / taps.sum()).astype("float32")
        blur = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
        blur = tf.nn.depthwise_conv2d(blur, tf.constant(np.tile(taps[:, None, None, None], (1, 1, 3, 1))), [1, 1, 1, 1], "VALID")
        blur = tf.nn.depthwise_conv2d(blur, tf.constant(np.tile(taps[None, :, None, None], (1, 1, 3, 1))), [1, 1, 1, 1], "VALID")
        a = tf.random.uniform((tf.shape(x)[0], 1, 1, 1), -sharpness_jitter, sharpness_jitter)
        x = tf.clip_by_value(x + a * (x - blur), 0.0, 255.0)
    return x


def augment_fn(input_px: int, source_px: int | None = None, sharpness_jitter: float = 0.0, jpeg_quality_min: int = 0):
    """Per-image augmentation on a uint8 batch of ``source_px`` squares (default ``input_px``): the
    rendition jitter of :func:`_rendition` (off by default), then flips, rotation U(-180, 180) deg and
    scale U(0.8, 1.2) about the centre in one projective warp (reflect fill) that also takes the
    central ``input_px`` window, then stain / colour jitter."""
    import numpy as np
    import tensorflow as tf
    centre = (input_px - 1) / 2.0
    source_centre = ((source_px or input_px) - 1) / 2.0

    def augment(images, targets):
        x = _rendition(images, sharpness_jitter, jpeg_quality_min)
        n = tf.shape(x)[0]
        angle = tf.random.uniform((n,), -np.pi, np.pi)
        scale = tf.random.uniform((n,), 0.8, 1.2)
        flip = tf.where(tf.random.uniform((n,)) < 0.5, -1.0, 1.0)
        # output pixel (u, v) samples input (a0 u + a1 v + a2, b0 u + b1 v + b2): a rotation by
        # `angle` and zoom by `scale` about the centre, with a mirror when flip = -1
        c, s_ = tf.cos(angle) / scale, tf.sin(angle) / scale
        a0, a1 = c * flip, -s_
        b0, b1 = s_ * flip, c
        a2 = source_centre - a0 * centre - a1 * centre
        b2 = source_centre - b0 * centre - b1 * centre
        zeros = tf.zeros_like(c)
        transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        x = tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=transforms, output_shape=[input_px, input_px],
                                                  fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
        x = tf.where(tf.random.uniform((n, 1, 1, 1)) < 0.5, tf.reverse(x, axis=[1]), x)
        # stain / colour jitter: per-channel gain and offset, then contrast about the image mean
        gain = tf.random.normal((n, 1, 1, 3), 1.0, 0.06)
        offset = tf.random.normal((n, 1, 1, 3), 0.0, 8.0)
        contrast = tf.random.uniform((n, 1, 1, 1), 0.85, 1.15)
        mean = tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True)
        x = (x * gain + offset - mean) * contrast + mean
        return tf.clip_by_value(x, 0.0, 255.0), targets

    return augment


def _targets(frame: pd.DataFrame, indices: np.ndarray) -> dict:
    return {"cell_type": np.stack(frame["type_target"].values)[indices],
            "features_logits": np.stack(frame["feature_target"].values)[indices],
            "attributes": np.stack(frame["attribute_target"].values)[indices]}


def _dataset(images, targets: dict, indices, batch_size, augment=None):
    # from_tensor_slices over the epoch's arrays: a Python generator here costs ~1 s a step on 2 cores
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((images[indices], {k: v[indices] for k, v in targets.items()}))
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=1)
    return ds.prefetch(2)


def recalibrate_batchnorm(net, images: np.ndarray, seed: int, n_images: int = 3200, batch_size: int = 64) -> None:
    """Re-estimate every BatchNorm layer's moving mean and variance on unaugmented training images
    ("precise BN", Wu & Johnson 2021): forward passes in training mode, no weight update. The
    moving averages kept during training lag behind weights that change fast at a high learning
    rate; inference with them was measured at 27 % validation accuracy after 2 epochs, against
    71 % after this pass."""
    import keras
    rng = np.random.default_rng([seed, 99])
    pick = rng.choice(len(images), size=min(n_images, len(images)), replace=False)
    layers_bn = [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers_bn]
    for layer in layers_bn:
        layer.momentum = 0.8  # 50 batches: the old statistics decay to 0.8 ** 50 ~ 1e-5
    for s in range(0, len(pick), batch_size):
        net(images[np.sort(pick[s:s + batch_size])].astype("float32"), training=True)
    for layer, momentum in zip(layers_bn, saved):
        layer.momentum = momentum
    log.info("BatchNorm statistics re-estimated on %d training images", len(pick))


def load_initial_weights(net, trainer, path: Path, grow: bool = False) -> None:
    """Start from ``path``: a ``best.weights.h5`` written by a training run (the training wrapper's
    weights) or a saved ``cellnet.keras`` model (weights copied layer by layer, by name). With
    ``grow``, ``path`` is a saved model narrower than ``net``, widened by :func:`models.engine.grow.grow_weights`."""
    import keras

    from core.errors import InvalidInput
    from models.export.artifact import copy_weights_by_name
    if not path.is_file():
        raise InvalidInput(f"{path}: no such weights file")
    if grow:
        from models.engine.grow import grow_weights
        if not path.name.endswith(".keras"):
            raise InvalidInput(f"{path}: grow_init needs a saved cellnet.keras model")
        try:
            counts = grow_weights(keras.saving.load_model(path, compile=False), net)
        except ValueError as exc:
            raise InvalidInput(f"{path}: cannot be grown into this architecture ({exc})") from None
        log.info("initial weights grown from %s: %s", path, counts)
        return
    # Keras warns (and leaves layers freshly initialised) or raises when the file does not match
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if path.name.endswith(".keras"):
                copy_weights_by_name(keras.saving.load_model(path, compile=False), net.layers)
            else:
                trainer.load_weights(str(path))
            problem = next((str(w.message) for w in caught if "Skipping" in str(w.message)), None)
        except ValueError as exc:
            problem = str(exc)
    if problem:
        raise InvalidInput(f"{path}: weights do not fit this architecture ({problem.splitlines()[0][:200]})")
    log.info("initial weights loaded from %s", path)


def sampling_weights(keys: pd.Series, origins: pd.Series, balance_power: float,
                     real_boost: dict | None = None) -> np.ndarray:
    """Sampling probability of each training image (sums to 1): ``count(key) ** -balance_power``,
    real and simulated images of a key counted together, times ``real_boost[key]`` for the real
    crops of the keys listed. A key is a type abbreviation, or types joined by '+'."""
    from core.errors import InvalidInput
    boost = real_boost or {}
    counts = keys.value_counts()
    unknown = sorted(set(boost) - set(keys[origins == "real"]))
    if unknown:
        raise InvalidInput(f"real_sampling_boost names types with no real training crop: {', '.join(unknown)}")
    factor = np.where(origins.to_numpy() == "real", keys.map(boost).fillna(1.0).to_numpy(float), 1.0)
    w = keys.map(counts).to_numpy(float) ** -balance_power * factor
    return w / w.sum()


def _epoch_weights_path(out: Path, epoch: int) -> Path:
    return out / "epochs" / f"epoch{epoch:03d}.weights.h5"


def average_weights(weight_lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Element-wise mean of several models' ``get_weights()`` lists, each tensor in its own dtype: the
    weights of stochastic weight averaging here and of a model soup (:mod:`models.engine.soup`)."""
    from core.errors import InvalidInput
    if len(weight_lists) < 2:
        raise InvalidInput("a soup needs at least 2 models")
    shapes = [[w.shape for w in ws] for ws in weight_lists]
    if any(s != shapes[0] for s in shapes[1:]):
        raise InvalidInput("the models' weight tensors differ in number or shape")
    return [np.mean([ws[i] for ws in weight_lists], axis=0).astype(weight_lists[0][i].dtype)
            for i in range(len(weight_lists[0]))]


def _load_swa_weights(trainer, out: Path, last_epoch: int, swa_epochs: int) -> None:
    """Set ``trainer`` to the element-wise mean of the weights saved after epochs
    ``last_epoch - swa_epochs + 1 .. last_epoch`` (stochastic weight averaging, Izmailov et al. 2018);
    batch norm is re-estimated afterwards, as SWA requires."""
    epochs = range(last_epoch - swa_epochs + 1, last_epoch + 1)
    snapshots = []
    for e in epochs:
        trainer.load_weights(str(_epoch_weights_path(out, e)))
        snapshots.append([w.copy() for w in trainer.get_weights()])
    trainer.set_weights(average_weights(snapshots) if len(snapshots) > 1 else snapshots[0])
    log.info("weights averaged over epochs %d-%d (SWA)", epochs[0], epochs[-1])


def train_cells(out: Path, config: TrainConfig, simulated: pd.DataFrame) -> Path:
    """Train, calibrate and save ``<out>/cellnet.keras`` with ``metadata.json``; returns the model path.

    ``simulated``: the simulated cells (:func:`simulate.training_set.read_training_set` of
    ``config.simulated_dir``, which ``mdsdx train cells`` makes in ``<out>/simcells`` when unset)."""
    import keras
    import tensorflow as tf

    from models.architecture.cellnet import CellNetConfig, build_cellnet
    from models.architecture.losses import make_grouped_crossentropy, masked_binary_crossentropy, partial_label_crossentropy
    from models.engine.calibrate import calibrate
    from models.export.artifact import save_cellnet

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))

    frame = assemble(config, simulated)
    fit_idx = np.flatnonzero(frame["split"].isin(["train", "val"]).values)
    frame = frame.iloc[fit_idx].reset_index(drop=True)
    source_px = frame_px(config.input_px, config.field_of_view)
    log.info("decoding %d images at %d px (the network sees the central %d px)", len(frame), source_px, config.input_px)
    full_images = decode_all(frame["path"].tolist(), source_px, config.threads)  # augmentation crops after its warp
    images = centre_crop(full_images, config.input_px)
    train_idx = np.flatnonzero(frame["split"].values == "train")
    val_idx = np.flatnonzero(frame["split"].values == "val")

    train_rows = frame.iloc[train_idx]
    weights = sampling_weights(train_rows["key"], train_rows["origin"], config.balance_power, config.real_sampling_boost)
    steps = config.samples_per_epoch // config.batch_size
    targets = {"cell_type": np.stack(frame["type_target"].values),
               "features_logits": np.stack(frame["feature_target"].values),
               "attributes": np.stack(frame["attribute_target"].values)}
    augment = augment_fn(config.input_px, source_px, config.sharpness_jitter, config.jpeg_quality_min)
    val_ds = _dataset(images, targets, val_idx, 64)

    net_config = CellNetConfig(input_px=config.input_px, field_of_view=config.field_of_view, width=config.width,
                               middle_width=config.middle_width, middle_blocks=config.middle_blocks)
    net = build_cellnet(net_config)
    trainer = keras.Model(net.input, {"cell_type": net.output["cell_type_logits"],
                                      "features_logits": net.output["features_logits"],
                                      "attributes": net.output["attributes"]})
    if config.init_weights:
        load_initial_weights(net, trainer, Path(config.init_weights), grow=config.grow_init)
    group_sizes = [len(v) for v in source_map()["wbcatt_attributes"].values()]
    schedule = (keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.epochs * steps)
                if config.schedule == "cosine" else config.learning_rate)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    trainer.compile(
        optimizer=optimizer,
        loss={"cell_type": partial_label_crossentropy, "features_logits": masked_binary_crossentropy,
              "attributes": make_grouped_crossentropy(group_sizes)},
        loss_weights=config.loss_weights)
    optimizer.build(trainer.trainable_variables)

    # Resume: the last finished epoch's weights and optimizer state, and the early-stopping state.
    best = out / "best.weights.h5"
    state_path = out / "resume_state.json"
    ckpt = tf.train.Checkpoint(model=trainer, optimizer=optimizer)
    manager = tf.train.CheckpointManager(ckpt, str(out / "resume"), max_to_keep=1)
    state = {"epoch": 0, "best_val_loss": None, "epochs_without_improvement": 0}
    if manager.latest_checkpoint and state_path.is_file():
        ckpt.restore(manager.latest_checkpoint)
        state = json.loads(state_path.read_text())
        log.info("resuming after epoch %d", state["epoch"])
    log_path = out / "training_log.csv"
    for epoch in range(state["epoch"], config.epochs):
        epoch_rng = np.random.default_rng([config.seed, epoch])  # the same draw after a resume
        idx = epoch_rng.choice(train_idx, size=steps * config.batch_size, p=weights)
        history = trainer.fit(_dataset(full_images, targets, idx, config.batch_size, augment), epochs=1, shuffle=False,
                              verbose=1 if sys.stdout.isatty() else 2)  # a progress bar on a terminal, a line in logs
        val = trainer.evaluate(val_ds, return_dict=True, verbose=0)
        row = {"epoch": epoch + 1, **{k: float(v[-1]) for k, v in history.history.items()},
               **{f"val_{k}": float(v) for k, v in val.items()}}
        pd.DataFrame([row]).to_csv(log_path, mode="a", header=not log_path.is_file(), index=False)
        log.info("epoch %d/%d: %s", epoch + 1, config.epochs, {k: round(v, 4) for k, v in row.items() if k != "epoch"})
        improved = state["best_val_loss"] is None or val["loss"] < state["best_val_loss"]
        if improved:
            trainer.save_weights(str(best))
            state["best_val_loss"], state["epochs_without_improvement"] = float(val["loss"]), 0
        else:
            state["epochs_without_improvement"] += 1
        if epoch >= config.epochs - config.swa_epochs:
            _epoch_weights_path(out, epoch + 1).parent.mkdir(exist_ok=True)
            trainer.save_weights(str(_epoch_weights_path(out, epoch + 1)))
        state["epoch"] = epoch + 1
        manager.save()
        state_path.write_text(json.dumps(state))
        if not config.swa_epochs and state["epochs_without_improvement"] >= config.early_stopping_patience:
            log.info("early stopping: no validation improvement for %d epochs", config.early_stopping_patience)
            break
    if config.swa_epochs:
        _load_swa_weights(trainer, out, state["epoch"], config.swa_epochs)
    else:
        trainer.load_weights(str(best))
    recalibrate_batchnorm(net, images[train_idx], config.seed)

    trained_features = [f for f, known in zip(load_taxonomy().feature_ids, (targets["features_logits"][train_idx] >= 0).any(0)) if known]
    calibration = calibrate(net, images[val_idx], frame.iloc[val_idx])
    return save_cellnet(net, net_config, out, calibration=calibration, trained_features=trained_features,
                        training={"config": asdict(config), "n_train": int(len(train_idx)), "n_val": int(len(val_idx))})


def recalibrate_saved(model_dir: Path, config: TrainConfig, simulated: pd.DataFrame) -> dict:
    """Refit the calibration of a saved stage-1 model on the validation split its training used
    (``simulated`` must be that run's simulated cells, as in :func:`train_cells`) and rewrite its metadata."""
    from models.engine.calibrate import calibrate
    from models.export.artifact import input_geometry, load_cellnet
    model_dir = Path(model_dir)
    net, meta = load_cellnet(model_dir)
    frame = assemble(config, simulated)
    val = frame[frame["split"] == "val"].reset_index(drop=True)
    px, field_of_view = input_geometry(meta)
    images = decode_all(val["path"].tolist(), px, config.threads, field_of_view)
    meta["calibration"] = calibrate(net, images, val)
    # New probabilities from the same weights: a new version, so reports say which calibration made them.
    now = datetime.now(timezone.utc)
    meta.setdefault("weights_version", meta["version"])
    meta["version"] = f"{meta['weights_version']}-cal{now:%Y%m%d%H%M}"
    meta["calibration"]["fitted"] = now.isoformat(timespec="seconds")
    (model_dir / "metadata.json").write_text(json.dumps(meta, indent=2))
    return meta["calibration"]
