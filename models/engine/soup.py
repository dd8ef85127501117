"""A uniform "model soup" (Wortsman et al. 2022) of stage-1 models (``mdsdx train soup``).

The members must be fine-tunes of one start (the same basin): their weights are averaged
element-wise, the batch-normalisation statistics are re-estimated on the train images (the mean
of the members' running statistics is not the statistics of the mean network), and the
calibration is refitted on the validation split, as after ``mdsdx train cells``.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.preprocess import decode_all
from models.engine.train import TrainConfig, assemble, average_weights, recalibrate_batchnorm


def _recipe(meta: dict) -> dict:
    """What soup members must share, with the defaults of settings added later filled in (a model saved
    before 2026-12-06 has no field_of_view and saw the whole crop)."""
    from models.architecture.cellnet import CellNetConfig
    from models.export.artifact import input_geometry
    return {"architecture": asdict(CellNetConfig(**meta["architecture"])), "input geometry": input_geometry(meta),
            "trained_features": meta.get("trained_features")}


def _check_same_recipe(metas: list[dict], model_dirs: list[Path]) -> None:
    recipes = [_recipe(m) for m in metas]
    for key in recipes[0]:
        values = [r[key] for r in recipes]
        for d, v in zip(model_dirs[1:], values[1:]):
            if v != values[0]:
                raise InvalidInput(f"{d}: its {key} differs from {model_dirs[0]}'s; a soup averages models of one architecture")


def average_saved(out: Path, model_dirs: list[Path], simulated: pd.DataFrame, simulated_dir: str,
                  data_root: str | None = None, threads: int = 2) -> Path:
    """Average the stage-1 models in ``model_dirs``, re-estimate batch norm on the train split,
    recalibrate on the validation split and save to ``out`` (cellnet.keras + metadata.json).

    ``simulated``: the simulated cells the members were trained with, read from ``simulated_dir``
    (:func:`simulate.training_set.read_training_set`); the folder is recorded in the metadata.
    """
    from models.architecture.cellnet import CellNetConfig
    from models.engine.calibrate import calibrate
    from models.export.artifact import input_geometry, load_cellnet, save_cellnet

    model_dirs = [Path(d) for d in model_dirs]
    if len(model_dirs) < 2:
        raise InvalidInput("a soup needs at least 2 model folders")
    loaded = [load_cellnet(d) for d in model_dirs]
    metas = [meta for _, meta in loaded]
    _check_same_recipe(metas, model_dirs)
    net, meta = loaded[0]
    net.set_weights(average_weights([member.get_weights() for member, _ in loaded]))
    del loaded

    px, field_of_view = input_geometry(meta)
    config = TrainConfig(simulated_dir=str(simulated_dir), data_root=data_root, input_px=px,
                         field_of_view=field_of_view, threads=threads)
    frame = assemble(config, simulated)
    frame = frame[frame["split"].isin(["train", "val"])].reset_index(drop=True)
    images = decode_all(frame["path"].tolist(), px, threads, field_of_view)
    train_idx = np.flatnonzero(frame["split"].to_numpy() == "train")
    val_idx = np.flatnonzero(frame["split"].to_numpy() == "val")
    recalibrate_batchnorm(net, images[train_idx], config.seed)
    calibration = calibrate(net, images[val_idx], frame.iloc[val_idx])
    return save_cellnet(net, CellNetConfig(**meta["architecture"]), Path(out), calibration=calibration,
                        trained_features=meta.get("trained_features", []),
                        training={"soup_of": [str(d) for d in model_dirs],
                                  "member_versions": [m["version"] for m in metas],
                                  "simulated_dir": str(simulated_dir),
                                  "n_train": int(len(train_idx)), "n_val": int(len(val_idx))})
