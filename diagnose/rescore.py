"""Batch rescoring of smear folders (``mdsdx diagnose``), on this machine or spread over a Ray cluster.

Both engines run :func:`diagnose_folder` with a :class:`~diagnose.pipeline.SmearDiagnosisPipeline`
loaded once per process, and return one :class:`Rescored` per folder in the order the folders were
given, so their CSVs are the same row for row. On Ray each worker is an actor that loads the models
once; an actor whose process dies is restarted (the models load again) and its smears are retried,
so none is lost or scored twice in the output.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from core.errors import InvalidInput, MdsdxError
from core.preprocess import IMAGE_SUFFIXES

CSV_COLUMNS = ["smear_id", "status", "p_mds", "call", "n_cells", "skipped_cells", "top_features", "message"]


@dataclass
class Rescored:
    """One smear folder's outcome: its CSV ``row`` (:data:`CSV_COLUMNS`), and the full ``result``
    (a :class:`~diagnose.pipeline.SmearResult`, None when the smear failed) for the HTML report."""
    row: dict
    result: object | None = None


@dataclass(frozen=True)
class PipelineSpec:
    """What each process loads: the stage-1 model and diagnoser folders (None: the shipped ones), the
    stage-1 runtime (None: the first that passes its check) and the threads each process uses."""
    cell_model: str | None = None
    diagnoser: str | None = None
    runtime: str | None = None
    threads: int = 2

    def load(self):
        from diagnose.pipeline import SmearDiagnosisPipeline
        return SmearDiagnosisPipeline(self.cell_model, self.diagnoser, threads=self.threads, runtime=self.runtime)


def smear_files(smear_dir: Path) -> list[Path]:
    """The cell images of one smear folder, by name."""
    if not smear_dir.is_dir():
        raise InvalidInput(f"{smear_dir}: no such folder")
    return sorted(p for p in smear_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def diagnose_folder(pipeline, smear_dir: Path, keep_result: bool = False) -> Rescored:
    """Diagnose one smear folder; a smear that cannot be diagnosed becomes a ``failed`` row saying why.
    Probabilities are rounded to 6 decimals, so that rows agree whichever process scored them."""
    smear_dir = Path(smear_dir)
    try:
        files = smear_files(smear_dir)
        result = pipeline.diagnose_images([str(f) for f in files], [f.name for f in files], smear_dir.name,
                                          skip_invalid=True)
    except MdsdxError as exc:
        return Rescored({"smear_id": smear_dir.name, "status": "failed", "message": str(exc)})
    row = {"smear_id": result.smear_id, "status": "ok", "p_mds": round(float(result.p_mds), 6), "call": result.call,
           "n_cells": result.n_cells, "skipped_cells": len(files) - result.n_cells,
           "top_features": "; ".join(f"{t['name']} ({t['shap']:+.3f})" for t in result.top_features),
           "message": "; ".join(result.warnings)}
    return Rescored(row, result if keep_result else None)


def rescore_local(smear_dirs: Sequence[Path], spec: PipelineSpec, keep_results: bool = False,
                  progress: Callable[[int], None] | None = None) -> list[Rescored]:
    """Every smear folder, one after another in this process."""
    pipeline = spec.load()
    out = []
    for smear_dir in smear_dirs:
        out.append(diagnose_folder(pipeline, smear_dir, keep_results))
        if progress:
            progress(1)
    return out


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput('--engine ray needs Ray: pip install -e ".[ray]"') from exc
    return ray


def start_ray_workers(spec: PipelineSpec, workers: int) -> list:
    """``workers`` Ray actors, each loading the models of ``spec`` once, on the Ray cluster this process
    is connected to. An actor whose process dies is restarted and its pending smears retried."""
    ray = _ray()

    @ray.remote(num_cpus=spec.threads, max_restarts=-1, max_task_retries=-1)
    class Worker:
        def __init__(self):
            self.pipeline = spec.load()

        def diagnose(self, index: int, smear_dir: str, keep_result: bool) -> tuple[int, Rescored]:
            return index, diagnose_folder(self.pipeline, Path(smear_dir), keep_result)

    return [Worker.remote() for _ in range(workers)]


def rescore_ray(smear_dirs: Sequence[Path], spec: PipelineSpec, workers: int, address: str | None = None,
                keep_results: bool = False, progress: Callable[[int], None] | None = None,
                actors: list | None = None) -> list[Rescored]:
    """Every smear folder over ``workers`` Ray actors (:func:`start_ray_workers`, or the ``actors``
    given), in the order given. ``address``: an existing cluster (``ray://host:10001`` or ``auto``);
    None starts a local one unless this process is connected already. The folders must be readable
    from every node (a shared file system)."""
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        pool = ray.util.ActorPool(actors or start_ray_workers(spec, workers))
        done: dict[int, Rescored] = {}
        for index, rescored in pool.map_unordered(lambda actor, item: actor.diagnose.remote(*item, keep_results),
                                                  [(i, str(d)) for i, d in enumerate(smear_dirs)]):
            done[index] = rescored
            if progress:
                progress(1)
        return [done[i] for i in range(len(smear_dirs))]
    finally:
        if started_here:
            ray.shutdown()
