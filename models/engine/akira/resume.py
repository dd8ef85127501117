"""Epoch checkpoints of one AKIRA training run, so that a stopped run continues after its last epoch.

A checkpoint folder holds, after every finished epoch:
- ``ckpt-<epoch>``: the model, both optimisers and the weight average (a TensorFlow checkpoint);
- ``best-<epoch>.npz``: the weights of the best validation epoch so far;
- ``state.json``, written last and whole: the finished epoch, the best validation loss, the files
  above and the state of the augmentation random generator, so the resumed run draws what an
  uninterrupted run would have drawn.

``state.json`` names the files it belongs to, so a stop between writes leaves the previous epoch's
state usable. A folder written by another run (other labels, split or settings) is not resumed: its
fingerprint differs, and training starts afresh. ``epochs`` is not in the fingerprint, so a finished
run's folder also extends that run to more epochs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def run_fingerprint(config, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray) -> str:
    """A hash of what decides the run's trajectory: the settings other than ``epochs``, the labels
    (n_images, 34) and the train/validation indices."""
    settings = {k: v for k, v in config.identifying_settings().items() if k != "epochs"}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for array in (np.ascontiguousarray(y, dtype=np.float32), np.asarray(train_idx, np.int64), np.asarray(val_idx, np.int64)):
        h.update(array.tobytes())
    return h.hexdigest()[:16]


@dataclass
class ResumeState:
    epoch: int = 0                      # finished epochs
    best_loss: float = float("inf")
    best_weights: list | None = None    # arrays in ``model.get_weights()`` order


class EpochCheckpoints:
    """Save after each epoch and restore the last saved epoch of one run.

    ``trackables`` are the TensorFlow objects whose state continues (model, optimisers, average);
    the optimisers must be built before :meth:`restore`.
    """

    def __init__(self, folder: Path, fingerprint: str, **trackables):
        import tensorflow as tf
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.checkpoint = tf.train.Checkpoint(**trackables)

    def restore(self, rng: np.random.Generator) -> ResumeState:
        """Load the last finished epoch into the trackables and ``rng``; a fresh state if there is none."""
        path = self.folder / STATE_FILE
        if not path.is_file():
            return ResumeState()
        state = json.loads(path.read_text())
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s holds another run's checkpoints (other labels, split or settings); starting afresh", self.folder)
            shutil.rmtree(self.folder)
            return ResumeState()
        self.checkpoint.read(str(self.folder / state["checkpoint"])).assert_existing_objects_matched()
        rng.bit_generator.state = state["rng"]
        best = None
        if state["best_file"]:
            with np.load(self.folder / state["best_file"]) as arrays:
                best = [arrays[f"w{i}"] for i in range(len(arrays.files))]
        log.info("resuming %s after epoch %d", self.folder, state["epoch"])
        return ResumeState(epoch=state["epoch"], best_loss=state["best_loss"], best_weights=best)

    def save(self, state: ResumeState, rng: np.random.Generator, best_changed: bool) -> None:
        """Record the finished epoch ``state.epoch``; files of earlier epochs are removed afterwards."""
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = json.loads((self.folder / STATE_FILE).read_text()) if (self.folder / STATE_FILE).is_file() else {}
        checkpoint = Path(self.checkpoint.write(str(self.folder / f"ckpt-{state.epoch}"))).name
        best_file = previous.get("best_file")
        if best_changed and state.best_weights is not None:
            best_file = f"best-{state.epoch}.npz"
            with open(self.folder / best_file, "wb") as f:
                np.savez(f, **{f"w{i}": w for i, w in enumerate(state.best_weights)})
        record = {"fingerprint": self.fingerprint, "epoch": state.epoch, "best_loss": state.best_loss,
                  "checkpoint": checkpoint, "best_file": best_file, "rng": rng.bit_generator.state}
        tmp = self.folder / (STATE_FILE + ".part")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.folder / STATE_FILE)
        for stale in self.folder.iterdir():
            old_checkpoint = stale.name.startswith("ckpt-") and not stale.name.startswith(checkpoint + ".")
            old_best = stale.name.startswith("best-") and stale.name != best_file
            if old_checkpoint or old_best:
                stale.unlink()
