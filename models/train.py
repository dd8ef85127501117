"""Training of the stage-1 cell network (``mdsdx train cells``).

Data: the real PBC and marrow crops (types; WBCAtt attributes and vacuoles) and the simulator's
cells (dysplastic features and the types with no real images), each from its own ``train`` split;
``val`` drives early stopping, temperature scaling and the UNID threshold. Images are decoded
once into memory at ``input_px`` and augmented per batch in tf.data.

Resumable: ``keras.callbacks.BackupAndRestore`` keeps the last finished epoch in ``<out>/backup``.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.datasets import attribute_targets, feature_targets, load_all, source_map, type_targets
from models.preprocess import load_cell_image
from models.taxonomy import load_taxonomy

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of one training run; ``mdsdx train cells --config FILE`` overrides any of them (YAML)."""
    data_root: str | None = None          # ../shared/data when None
    simulated_dir: str | None = None      # output of simulate.training_set; made in <out>/simcells when None
    input_px: int = 128
    width: int = 16
    middle_width: int = 256
    middle_blocks: int = 8
    epochs: int = 12
    samples_per_epoch: int = 12000
    batch_size: int = 32
    learning_rate: float = 2e-3           # Adam, cosine decay to 0 over all epochs
    weight_decay: float = 1e-4
    balance_power: float = 0.5            # sampling weight of a type ~ count ** -balance_power
    loss_weights: dict = field(default_factory=lambda: {"cell_type": 1.0, "features_logits": 2.0, "attributes": 0.5})
    early_stopping_patience: int = 4
    seed: int = 0
    init_weights: str | None = None       # a .weights.h5 or .keras file to start from
    threads: int = 2


def _decode_all(paths: list[str], input_px: int, threads: int) -> np.ndarray:
    from tqdm import tqdm
    out = np.empty((len(paths), input_px, input_px, 3), np.uint8)
    with ThreadPoolExecutor(threads) as ex:
        for i, arr in enumerate(tqdm(ex.map(lambda p: load_cell_image(p, input_px), paths), total=len(paths),
                                     desc="decode", unit="img", mininterval=5)):
            out[i] = arr
    return out


def assemble(config: TrainConfig, simulated_dir: Path) -> pd.DataFrame:
    """One frame of every training image with its targets: real crops and simulated cells."""
    from simulate.cells import label_vector, parse_feature_string
    real = load_all(config.data_root)
    real_rows = pd.DataFrame({"path": real["path"], "split": real["split"], "origin": "real",
                              "key": [t[0] if len(t) == 1 else "+".join(t) for t in real["cell_types"]]})
    real_rows["type_target"] = list(type_targets(real["cell_types"]))
    real_rows["feature_target"] = list(feature_targets(real))
    real_rows["attribute_target"] = list(attribute_targets(real))
    sim = pd.read_csv(simulated_dir / "cells.csv", keep_default_na=False)
    n_attr = len(source_map()["wbcatt_attributes"])
    sim_rows = pd.DataFrame({"path": [str(simulated_dir / p) for p in sim["path"]], "split": sim["split"],
                             "origin": "simulated", "key": sim["cell_type"]})
    sim_rows["type_target"] = list(type_targets(sim["cell_type"].map(lambda t: (t,))))
    sim_rows["feature_target"] = [label_vector(t, parse_feature_string(f)) for t, f in zip(sim["cell_type"], sim["features"])]
    sim_rows["attribute_target"] = [np.full(n_attr, -1, np.int32)] * len(sim)
    return pd.concat([real_rows, sim_rows], ignore_index=True)


def _augment_fn(input_px: int, seed: int):
    import keras
    import tensorflow as tf
    geometric = keras.Sequential([
        keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
        keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomZoom((-0.2, 0.2), fill_mode="reflect", seed=seed + 2),  # scale 0.8-1.2
    ])

    def augment(images, targets):
        x = geometric(tf.cast(images, tf.float32), training=True)
        n = tf.shape(x)[0]
        # stain / colour jitter: per-channel gain and offset, then contrast about the image mean
        gain = tf.random.normal((n, 1, 1, 3), 1.0, 0.06)
        offset = tf.random.normal((n, 1, 1, 3), 0.0, 8.0)
        contrast = tf.random.uniform((n, 1, 1, 1), 0.85, 1.15)
        mean = tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True)
        x = (x * gain + offset - mean) * contrast + mean
        return tf.clip_by_value(x, 0.0, 255.0), targets

    return augment


def _dataset(images, frame, indices, batch_size, augment=None):
    import tensorflow as tf
    targets = {
        "cell_type": np.stack(frame["type_target"].values)[indices],
        "features_logits": np.stack(frame["feature_target"].values)[indices],
        "attributes": np.stack(frame["attribute_target"].values)[indices],
    }
    ds = tf.data.Dataset.from_tensor_slices((images[indices], targets)).batch(batch_size)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def train_cells(out: Path, config: TrainConfig) -> Path:
    """Train, calibrate and save ``<out>/cellnet.keras`` with ``metadata.json``; returns the model path."""
    import keras
    import tensorflow as tf

    from models.artifact import save_cellnet
    from models.calibrate import calibrate
    from models.cellnet import CellNetConfig, build_cellnet
    from models.losses import make_grouped_crossentropy, masked_binary_crossentropy, partial_label_crossentropy

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))

    sim_dir = Path(config.simulated_dir) if config.simulated_dir else out / "simcells"
    if not (sim_dir / "cells.csv").is_file():
        from simulate.training_set import make_training_set
        log.info("simulating training cells into %s", sim_dir)
        make_training_set(load_all(config.data_root), sim_dir, seed=config.seed)
    frame = assemble(config, sim_dir)
    fit_idx = np.flatnonzero(frame["split"].isin(["train", "val"]).values)
    frame = frame.iloc[fit_idx].reset_index(drop=True)
    log.info("decoding %d images at %d px", len(frame), config.input_px)
    images = _decode_all(frame["path"].tolist(), config.input_px, config.threads)
    train_idx = np.flatnonzero(frame["split"].values == "train")
    val_idx = np.flatnonzero(frame["split"].values == "val")

    counts = frame.iloc[train_idx]["key"].value_counts()
    weights = frame.iloc[train_idx]["key"].map(lambda k: counts[k] ** -config.balance_power).values
    weights = weights / weights.sum()
    rng = np.random.default_rng(config.seed)
    steps = config.samples_per_epoch // config.batch_size

    def epoch_indices():
        while True:
            yield rng.choice(train_idx, size=steps * config.batch_size, p=weights)

    import tensorflow as tf  # noqa: F811
    sampler = epoch_indices()
    augment = _augment_fn(config.input_px, config.seed)
    type_t = np.stack(frame["type_target"].values)
    feat_t = np.stack(frame["feature_target"].values)
    attr_t = np.stack(frame["attribute_target"].values)

    def gen():
        while True:
            idx = next(sampler)
            for s in range(0, len(idx), config.batch_size):
                b = idx[s:s + config.batch_size]
                yield images[b], {"cell_type": type_t[b], "features_logits": feat_t[b], "attributes": attr_t[b]}

    sig = (tf.TensorSpec((None, config.input_px, config.input_px, 3), tf.uint8),
           {"cell_type": tf.TensorSpec((None, type_t.shape[1]), tf.float32),
            "features_logits": tf.TensorSpec((None, feat_t.shape[1]), tf.float32),
            "attributes": tf.TensorSpec((None, attr_t.shape[1]), tf.int32)})
    train_ds = tf.data.Dataset.from_generator(gen, output_signature=sig).map(
        augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(4)
    val_ds = _dataset(images, frame, val_idx, 64)

    net_config = CellNetConfig(input_px=config.input_px, width=config.width, middle_width=config.middle_width,
                               middle_blocks=config.middle_blocks)
    net = build_cellnet(net_config)
    if config.init_weights:
        net.load_weights(config.init_weights)
    trainer = keras.Model(net.input, {"cell_type": net.output["cell_type_logits"],
                                      "features_logits": net.output["features_logits"],
                                      "attributes": net.output["attributes"]})
    group_sizes = [len(v) for v in source_map()["wbcatt_attributes"].values()]
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.epochs * steps)
    trainer.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss={"cell_type": partial_label_crossentropy, "features_logits": masked_binary_crossentropy,
              "attributes": make_grouped_crossentropy(group_sizes)},
        loss_weights=config.loss_weights)
    best = out / "best.weights.h5"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience),
        keras.callbacks.CSVLogger(str(out / "training_log.csv"), append=True),
    ]
    trainer.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps,
                callbacks=callbacks, verbose=2)
    trainer.load_weights(str(best))

    trained_features = [f for f, known in zip(load_taxonomy().feature_ids, (feat_t[train_idx] >= 0).any(0)) if known]
    calibration = calibrate(net, images[val_idx], frame.iloc[val_idx])
    return save_cellnet(net, net_config, out, calibration=calibration, trained_features=trained_features,
                        training={"config": asdict(config), "n_train": int(len(train_idx)), "n_val": int(len(val_idx))})
