"""AKIRA inference: 16 rotated views in one batch, the maximum per output, gating by category.

Gating (Mori et al.): a cell whose category is not granulocytic gets DG 0. The category is the one
whose outputs reach the highest value on a common 0-1 scale (each output divided by its maxval).
The authors' reference code compares the raw outputs, where a 0-3 grade outweighs a 0-1 flag;
that is a bug we do not reproduce. The DG grade is the gated score rounded to 0-3; the continuous
gated score is kept for ROC analysis.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.akira_labels import load_labels
from core.preprocess import ImageLimits, decode_images, load_cell_image
from models.engine.akira.augment import DEFAULT_INTERPOLATION, rotation_views, saved_interpolation
from models.engine.akira.metrics import grades_from_scores
from models.export.akira_artifact import DEFAULT_DIR, load_akira_keras, read_akira_metadata
from models.export.artifact import open_checked_runtime
from models.export.runtime import OnnxModel, OpenVinoModel

N_VIEWS = 16
SCORE_CHUNK = 64  # files decoded, then scored, at a time


@dataclass
class GranuleScores:
    """Per cell: ``outputs`` (n, 34) maxima over the views, ``view_spread`` (n, 34) max - min over
    the views, ``category`` (n,), ``dg_score`` (n,) gated continuous, ``dg_grade`` (n,) 0-3; ``failed``:
    the inputs :meth:`GranuleScorer.score_files` skipped."""
    outputs: np.ndarray
    view_spread: np.ndarray
    category: np.ndarray
    dg_score: np.ndarray
    dg_grade: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)  # (input index, message) of skipped files


def decode_px(input_px: int) -> int:
    """The square size a crop is decoded to before its views are cut: 256 / 224 of the input, the
    paper's canvas-to-crop ratio."""
    return int(round(input_px * 256 / 224))


def gate(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Category per cell and the gated DG score from (n, 34) outputs."""
    labels = load_labels()
    scaled = outputs / labels.maxval
    cats = list(labels.category_names)
    per_cat = np.stack([scaled[:, labels.category_mask(c)].max(1) for c in cats], 1)
    category = np.array(cats)[per_cat.argmax(1)]
    dg = np.where(category == "granulocytic", outputs[:, labels.focus_index], 0.0)
    return category, dg


def load_akira(model_dir: Path | None = None, runtime: str | None = None):
    """``(model, metadata)``: the model is an :class:`~models.export.runtime.OnnxModel` when the folder has
    its checked ``akira.onnx`` (or, for ``runtime`` ``int8``, its quantised file) and ``runtime`` is
    not ``keras`` (an :class:`~models.export.runtime.OpenVinoModel` of the same file for ``bf16``),
    otherwise the Keras model."""
    model_dir = Path(model_dir) if model_dir else DEFAULT_DIR
    meta = read_akira_metadata(model_dir)
    px, interpolation = int(meta["config"]["input_px"]), saved_interpolation(meta["config"])
    make_inputs = lambda paths: [rotation_views(load_cell_image(p, decode_px(px)), px, N_VIEWS, interpolation).astype(np.float32)
                                 for p in paths]
    _, model = open_checked_runtime(model_dir, meta, "akira", make_inputs, runtime)
    if model is not None:
        return model, meta
    return load_akira_keras(model_dir)


def _forward_of(model):
    """(n, px, px, 3) float32 -> (n, 34) for an OnnxModel, an OpenVinoModel or a Keras model."""
    if isinstance(model, (OnnxModel, OpenVinoModel)):
        return lambda x: model(x)["output"]
    import tensorflow as tf
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: np.asarray(forward(x))


class GranuleScorer:
    """The loaded regressor; ``score_files`` / ``score_arrays`` give :class:`GranuleScores`."""

    def __init__(self, model_dir: Path | str | None = None, limits: ImageLimits = ImageLimits(), model=None,
                 input_px: int | None = None, rotation_interpolation: str = DEFAULT_INTERPOLATION):
        if model is None:
            self.model, self.metadata = load_akira(Path(model_dir) if model_dir else None)
            self.input_px = int(self.metadata["config"]["input_px"])
            self.rotation_interpolation = saved_interpolation(self.metadata["config"])
        else:
            self.model, self.metadata, self.input_px = model, {"version": "in-memory"}, int(input_px)
            self.rotation_interpolation = rotation_interpolation
        self._forward = _forward_of(self.model)
        self.runtime = self.model.label if isinstance(self.model, (OnnxModel, OpenVinoModel)) else "keras"
        self.runtime_checks = getattr(self.model, "runtime_checks", {})
        self.limits = limits
        self.decode_px = decode_px(self.input_px)

    @property
    def version(self) -> str:
        return self.metadata["version"]

    def score_arrays(self, crops: Sequence[np.ndarray]) -> GranuleScores:
        """Score RGB uint8 crops of any size. The next cell's 16 views are made in a second thread while
        the network runs on the current one's."""
        outputs, spread = [], []
        make_views = lambda rgb: rotation_views(rgb, self.input_px, N_VIEWS, self.rotation_interpolation).astype("float32")
        with ThreadPoolExecutor(1) as ex:
            pending = ex.submit(make_views, crops[0]) if len(crops) else None
            for k in range(len(crops)):
                views = pending.result()
                if k + 1 < len(crops):
                    pending = ex.submit(make_views, crops[k + 1])
                out = self._forward(views)
                outputs.append(out.max(0))
                spread.append(out.max(0) - out.min(0))
        outputs = np.array(outputs).reshape(-1, len(load_labels().ids))
        category, dg = gate(outputs)
        return GranuleScores(outputs, np.array(spread).reshape(outputs.shape), category, dg, grades_from_scores(dg))

    def score_files(self, sources: Sequence, names: Sequence[str] | None = None, skip_invalid: bool = False,
                    progress=None, chunk: int = SCORE_CHUNK) -> GranuleScores:
        """Decode and score image paths or bytes, ``chunk`` at a time, with the decoding contract of
        :meth:`models.engine.infer.CellPredictor.predict_files` (:func:`core.preprocess.decode_images`):
        without ``skip_invalid`` the first undecodable input raises :class:`~core.errors.InvalidImage`;
        with it, such inputs are left out and listed in ``failed`` as (index, message).
        ``progress`` (optional) is called with the number of inputs finished after each chunk."""
        names = list(names) if names else [None] * len(sources)
        parts, failed = [], []
        for start in range(0, len(sources), chunk):
            crops, bad = decode_images(sources[start:start + chunk], self.decode_px, names[start:start + chunk],
                                       self.limits, skip_invalid=skip_invalid)
            failed += [(start + i, msg) for i, msg in bad]
            if len(crops):
                parts.append(self.score_arrays(crops))
            if progress:
                progress(len(sources[start:start + chunk]))
        if not parts:
            return GranuleScores(**{**vars(self.score_arrays([])), "failed": failed})
        joined = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("outputs", "view_spread", "category",
                                                                             "dg_score", "dg_grade")}
        return GranuleScores(**joined, failed=failed)
