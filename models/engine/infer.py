"""Stage-1 inference: per cell, calibrated type probabilities, feature probabilities and the embedding.

The service and the CLI both call :class:`CellPredictor`; neither re-implements it. Decoding and
resizing run in a thread pool (Pillow releases the GIL) one batch ahead of the network. The network
runs in ONNX Runtime when the model folder has its checked ``cellnet.onnx`` (see
:mod:`models.export.runtime`), otherwise in Keras.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from core.preprocess import ImageLimits, decode_images, load_cell_image
from core.taxonomy import load_taxonomy
from models.export.artifact import DEFAULT_DIR, input_geometry, load_cellnet, open_checked_runtime, read_metadata
from models.export.runtime import OnnxModel, OpenVinoModel

log = logging.getLogger(__name__)
UNID = "UNID"


@dataclass
class CellPredictions:
    """Predictions for n cells.

    - ``type_probs`` (n, 17): calibrated softmax, columns in taxonomy order;
    - ``feature_probs`` (n, 97): calibrated sigmoid; NaN for features that had no training label;
    - ``embedding`` (n, d): the pooled last hidden layer;
    - ``cell_type`` (n,): the type abbreviation, or ``UNID`` below the confidence threshold;
    - ``confidence`` (n,): the top type probability;
    - ``attribute_logits`` (n, 31): the WBCAtt attribute head, grouped as in ``core/sources.yaml``;
    - ``failed``: (index, message) of inputs that could not be decoded, when decoding skipped them
      (the arrays above then hold only the decoded inputs, in input order).
    """
    type_probs: np.ndarray
    feature_probs: np.ndarray
    embedding: np.ndarray
    cell_type: np.ndarray
    confidence: np.ndarray
    attribute_logits: np.ndarray
    failed: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cell_type)


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, k) logits. numpy rather than scipy.special: importing scipy.special
    cost about 0.09 s of every `mdsdx diagnose` run (2026-12-06)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, in the tanh form that cannot overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class CellPredictor:
    """The loaded stage-1 model with its calibration. ``model_dir`` defaults to the shipped model."""

    def __init__(self, model_dir: Path | str | None = None, batch_size: int = 64, threads: int = 2,
                 limits: ImageLimits = ImageLimits(), runtime: str | None = None):
        self.model_dir = model_dir = Path(model_dir) if model_dir else DEFAULT_DIR
        self.metadata = read_metadata(model_dir)
        self.input_px, self.field_of_view = input_geometry(self.metadata)
        self.runtime, model = open_checked_runtime(model_dir, self.metadata, "cellnet", self._check_inputs, runtime, threads)
        self.runtime_checks = model.runtime_checks if model is not None else {}
        if model is not None:
            self.net = None
            self._forward = self._onnx_forward(model)
        else:
            self.net, _ = load_cellnet(model_dir)
            self._forward = self._make_forward()
        self.batch_size = batch_size
        self.threads = threads
        self.limits = limits
        cal = self.metadata["calibration"]
        self.type_temperature = float(cal["type_temperature"])
        self.type_bias = np.asarray(cal.get("type_bias", 0.0), dtype=np.float64)  # absent before 2026-12: no bias
        self.feature_temperature = float(cal["feature_temperature"])
        self.unid_threshold = float(cal["unid_threshold"])
        tax = load_taxonomy()
        self.type_abbrs = np.array(tax.type_abbrs)
        trained = set(self.metadata.get("trained_features", []))
        self.untrained = np.array([f not in trained for f in tax.feature_ids])

    @property
    def version(self) -> str:
        return self.metadata["version"]

    def _check_inputs(self, paths: Sequence[Path]) -> list[np.ndarray]:
        """The network's input batch (n, input_px, input_px, 3) float32 for the folder's check crops."""
        return [np.stack([load_cell_image(p, self.input_px, field_of_view=self.field_of_view) for p in paths]).astype(np.float32)]

    @staticmethod
    def _onnx_forward(model: OnnxModel | OpenVinoModel):
        def forward(x):
            out = model(x)
            return out["cell_type_logits"], out["features_logits"], out["embedding"], out["attributes"]
        return forward

    def _make_forward(self):
        import tensorflow as tf
        net = self.net

        @tf.function(reduce_retracing=True)
        def forward(x):
            out = net(tf.cast(x, tf.float32), training=False)
            return out["cell_type_logits"], out["features_logits"], out["embedding"], out["attributes"]
        return forward

    def decode(self, sources: Sequence[str | Path | bytes], names: Sequence[str] | None = None,
               skip_invalid: bool = False) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Decode images to (n_ok, input_px, input_px, 3) uint8 and the (index, message) of failures.

        Without ``skip_invalid`` the first undecodable image raises :class:`InvalidImage`.
        """
        return decode_images(sources, self.input_px, names, self.limits, self.field_of_view, skip_invalid, self.threads)

    def predict_arrays(self, images: np.ndarray) -> CellPredictions:
        """Predict already-decoded images (n, input_px, input_px, 3) uint8."""
        parts = [self._forward(images[s:s + self.batch_size]) for s in range(0, len(images), self.batch_size)]
        return self._finish(parts)

    def predict_files(self, sources: Sequence[str | Path | bytes], names: Sequence[str] | None = None,
                      skip_invalid: bool = False, progress=None) -> CellPredictions:
        """Decode and predict, decoding batch k+1 while the network runs batch k.

        ``progress`` (optional) is called with the number of inputs finished after each batch.
        """
        names = list(names) if names else [None] * len(sources)
        starts = list(range(0, len(sources), self.batch_size))
        batches = [(sources[s:s + self.batch_size], names[s:s + self.batch_size], skip_invalid) for s in starts]
        if not batches:
            return self._finish([])
        parts, failed = [], []
        with ThreadPoolExecutor(1) as prefetch:
            pending = prefetch.submit(self.decode, *batches[0])
            for k, start in enumerate(starts):
                images, bad = pending.result()
                failed += [(start + i, msg) for i, msg in bad]
                if k + 1 < len(batches):
                    pending = prefetch.submit(self.decode, *batches[k + 1])
                if len(images):
                    parts.append(self._forward(images))
                if progress:
                    progress(len(batches[k][0]))
        return self._finish(parts, failed)

    def _finish(self, parts: Iterable, failed: list | None = None) -> CellPredictions:
        parts = list(parts)
        if not parts:
            d = int(self.metadata["architecture"]["exit_width"])
            return CellPredictions(np.zeros((0, 17)), np.zeros((0, 97)), np.zeros((0, d)), np.array([], dtype=object),
                                   np.zeros(0), np.zeros((0, 31)), failed or [])
        type_logits = np.concatenate([np.asarray(p[0]) for p in parts])
        feat_logits = np.concatenate([np.asarray(p[1]) for p in parts])
        embedding = np.concatenate([np.asarray(p[2]) for p in parts])
        attribute_logits = np.concatenate([np.asarray(p[3]) for p in parts])
        type_probs = _softmax(type_logits / self.type_temperature + self.type_bias)
        feature_probs = _sigmoid(feat_logits / self.feature_temperature)
        feature_probs[:, self.untrained] = np.nan
        confidence = type_probs.max(1)
        calls = self.type_abbrs[type_probs.argmax(1)].astype(object)
        calls[confidence < self.unid_threshold] = UNID
        return CellPredictions(type_probs, feature_probs, embedding, calls, confidence, attribute_logits, failed or [])
