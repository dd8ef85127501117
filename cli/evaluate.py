"""``mdsdx evaluate cells|diagnoser``: held-out evaluation of the stage-1 model and of the diagnoser."""
from __future__ import annotations

from pathlib import Path

import click

from cli.common import (cell_model_option, data_root_option, model_option, out_dir_option, seed_option, setup_logging,
                        simulated_dir_option)


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


@evaluate.command("diagnoser")
@model_option("Diagnoser folder to score (default: shipped).")
@click.option("--train-run", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True,
              help="The `mdsdx train diagnosis --out` folder: its training and validation features fit the ablation models.")
@click.option("--cohorts", "cohorts_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/sealed"),
              show_default=True, help="Where the sealed test cohorts are built (and reused: same seeds, same smears).")
@out_dir_option("Folder for metrics.json, ablation.csv, dose_response.csv and the figures.")
@click.option("--compare", "compare_dirs", multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Also score this diagnoser folder on the sealed cohorts (e.g. the one being replaced); repeatable.")
@click.option("--force", is_flag=True, help="Score a diagnoser again on sealed cohorts it already scored (recorded).")
@click.option("--note", default="", help="Why, recorded in the ledger with the scoring (say why with --force).")
@click.option("--resamples", type=click.IntRange(min=100), default=None, help="Bootstrap resamples (default: the sealed spec's).")
@cell_model_option()
@data_root_option()
def evaluate_diagnoser(model_dir, train_run: Path, cohorts_dir: Path, out: Path, compare_dirs, force: bool, note: str,
                       resamples, cell_model, data_root) -> None:
    """Score a diagnoser ONCE on the sealed SIMULATED test cohorts (diagnose/sealed_cohorts.yaml): the ablation
    (type proportions only, feature rates only, all 114; literature and matched designs) and the dose-response
    curve, with cluster-bootstrap intervals. A second scoring of the same diagnoser is refused unless --force."""
    setup_logging()
    from diagnose.evidence import evaluate_evidence
    from diagnose.model import DEFAULT_DIR
    m = evaluate_evidence(Path(model_dir) if model_dir else DEFAULT_DIR, train_run, cohorts_dir, out, force=force,
                          compare_dirs=tuple(compare_dirs), cell_model_dir=cell_model, data_root=data_root,
                          resamples=resamples, note=note)
    for row in m["ablation"]:
        click.echo(f"SIMULATED {row['cohort']:>10} | {row['model']:<40} AUC {row['auc']:.3f} [{row['auc_lo']:.3f}, "
                   f"{row['auc_hi']:.3f}]  sens@95%spec {row['sens']:.3f} [{row['sens_lo']:.3f}, {row['sens_hi']:.3f}]")
    limit = m["detection_limit"]
    click.echo(f"detection limit (sensitivity >= 90 % at 95 % specificity): "
               f"{'not reached' if limit is None else f'{100 * limit:g} % dysplastic cells'}; see {out}")
