"""``mdsdx evaluate cells``: held-out evaluation of the stage-1 model."""
from __future__ import annotations

from pathlib import Path

import click

from cli.common import data_root_option, model_option, out_dir_option, seed_option, setup_logging, simulated_dir_option


@click.group()
def evaluate() -> None:
    """Evaluate a model on data no training step saw."""


@evaluate.command("cells")
@out_dir_option("Folder for tables and plots.")
@model_option()
@data_root_option()
@simulated_dir_option("Simulated cells (cells.csv) with a test split.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="val compares trained models without reading the test split.")
@click.option("--export-px", type=click.IntRange(64, 1024), default=None,
              help="Re-encode every crop as an analyser export of this width first (360: Sysmex DI-60 / CellaVision).")
@seed_option()
def evaluate_cells(out: Path, model_dir, data_root, simulated_dir, split: str, export_px, seed: int) -> None:
    """Table 2 / Table 3 layouts, confusion matrix, ECE and t-SNE on the held-out test split."""
    setup_logging()
    from models.engine.evaluate import evaluate_cells as run
    simulated = None
    if simulated_dir and (Path(simulated_dir) / "cells.csv").is_file():
        from simulate.training_set import read_training_set
        simulated = read_training_set(Path(simulated_dir))
    m = run(out, model_dir, data_root, simulated, seed, split=split, export_px=export_px)
    click.echo(f"8 groups {m['classic_group_accuracy_pbc']:.4f}, fine macro sens {m['fine_class_macro_sensitivity_pbc']:.4f}, "
               f"WBCAtt {m['wbcatt_mean_accuracy']:.4f}, ECE {m['expected_calibration_error']:.4f}; see {out}/report.md")
