"""``mdsdx granules``: the AKIRA decreased-granules regressor (Mori et al. 2020) for bone-marrow cells."""
from __future__ import annotations

import json
from pathlib import Path

import click

from cli.common import (config_option, data_root_option, epochs_option, labels_option, load_dataclass_config,
                        model_option, out_dir_option, out_file_option, seed_option, setup_logging)


@click.group()
def granules() -> None:
    """Decreased-granules (DG 0-3) scoring of neutrophils. DG grades of the training data are SIMULATED."""


@granules.command("labels")
@out_dir_option("Label-table folder to write.")
@data_root_option()
@seed_option()
@click.option("--mix", type=click.Choice(["balanced", "table1"]), default="balanced", show_default=True,
              help="balanced: the same number of crops per source, a fixed share of neutrophils with DG; table1: the cell counts of Mori's Table 1.")
@click.option("--split", "splits", type=click.Choice(["train", "val", "test"]), multiple=True,
              help="Crop splits to draw from (repeatable; default val and test, the crops the stage-1 CNN never trained on).")
@click.option("--source", "sources", multiple=True,
              help="Only this source folder, e.g. marrow/segmented_neutrophil (repeatable; default all).")
@click.option("--neutrophils", type=click.IntRange(min=1), default=900, show_default=True,
              help="balanced mix: neutrophils drawn, shared among the neutrophil source folders.")
@click.option("--marrow-segmenter", type=click.Choice(["marrow", "pbc"]), default="marrow", show_default=True,
              help="Masks for the simulated grades of marrow crops; pbc reproduces the tables made before 2026-12-03.")
@click.option("--dg-share", type=click.FloatRange(0, 1),
              help="balanced mix: share of the neutrophils given DG 1-3 (default 0.22); 0 keeps them all DG0.")
@click.option("--other-dysplasia-share", type=click.FloatRange(0, 1),
              help="balanced mix: share of the neutrophils given HS, HYPES or ACC (default 0.12).")
def make_labels(out: Path, data_root, seed: int, mix: str, splits, sources, neutrophils: int, marrow_segmenter: str,
                dg_share: float, other_dysplasia_share: float) -> None:
    """Build the 34-column label table (Filename + labels) from real crops and simulated grades.

    A table of train-split crops (--split train) may only serve as a training-only extra table
    (``extra_train`` in the AKIRA config), never as a table to cross-validate on."""
    from core.datasets import load_all
    from core.errors import InvalidInput
    from simulate.label_table import LabelTableConfig, build_label_table
    if (out / "labels.csv").exists():
        raise InvalidInput(f"{out}/labels.csv exists; choose a new --out so no corrected label is overwritten")
    shares = {k: v for k, v in {"dg_share": dg_share, "other_dysplasia_share": other_dysplasia_share}.items() if v is not None}
    if mix == "table1" and shares:
        raise InvalidInput("--dg-share and --other-dysplasia-share set the balanced mix; table1 takes Mori's counts")
    config = LabelTableConfig(mix=mix, seed=seed, neutrophils=neutrophils, sources=tuple(sources) or None,
                              marrow_segmenter=marrow_segmenter, **shares)
    table = build_label_table(load_all(data_root), out, config, splits=tuple(splits) or ("val", "test"))
    click.echo(f"wrote {len(table)} labelled images to {out}")


@granules.command("train")
@labels_option()
@out_dir_option("Model folder to write.")
@config_option()
@click.option("--paper", is_flag=True, help="Paper-faithful ResNet-152 at 224 px and learning rates (random init unless backbone_weights is set).")
@epochs_option()
def train(labels_dir: Path, out: Path, config_file, paper: bool, epochs) -> None:
    """Train on the whole label table and save OUT/akira.keras with metadata.json."""
    setup_logging()
    from models.engine.akira.train import PAPER_OVERRIDES, AkiraTrainConfig, train_final
    overrides = PAPER_OVERRIDES if paper else {}
    config = load_dataclass_config(AkiraTrainConfig, config_file, epochs=epochs, **overrides)
    click.echo(f"saved {train_final(labels_dir, out, config)}")


@granules.command("cv")
@labels_option()
@out_dir_option("Folder for predictions and metrics.")
@config_option()
@click.option("--paper", is_flag=True, help="Paper-faithful ResNet-152 at 224 px and learning rates.")
@epochs_option()
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Folds trained at once, in separate processes sharing the CPU cores.")
def cv(labels_dir: Path, out: Path, config_file, paper: bool, epochs, workers: int) -> None:
    """5-fold cross-validation (iterative multilabel stratification); prints the DG metrics as JSON."""
    setup_logging()
    from models.engine.akira.train import PAPER_OVERRIDES, AkiraTrainConfig, cross_validate
    overrides = PAPER_OVERRIDES if paper else {}
    config = load_dataclass_config(AkiraTrainConfig, config_file, epochs=epochs, **overrides)
    metrics = cross_validate(labels_dir, out, config, workers=workers)
    shown = ("dg1_3", "dg2_3", "errors_two_or_more_grades", "by_source")
    click.echo(json.dumps({k: metrics[k] for k in shown if k in metrics}, indent=2))


@granules.command("score")
@click.argument("paths", nargs=-1, required=True)
@out_file_option()
@model_option()
def score(paths, out: Path, model_dir) -> None:
    """Score cell images (files or folders): path,category,dg_score,dg_grade,status,message.

    ``status`` is ``scored`` for a granulocytic cell, ``gated`` for another category (its DG columns
    are empty: the grade does not apply), ``skipped`` for a file that could not be read (the message
    says why). Exits 1 when any file was skipped."""
    import pandas as pd
    from tqdm import tqdm

    from cli.cells import find_images
    from core.errors import SomeInputsFailed
    from models.engine.akira.infer import GranuleScorer
    files = find_images(paths)
    scorer = GranuleScorer(model_dir)
    with tqdm(total=len(files), unit="cell", desc="score", disable=None) as bar:
        s = scorer.score_files([str(f) for f in files], skip_invalid=True, progress=bar.update)
    for _, message in s.failed:
        click.echo(f"skipped: {message}", err=True)
    failed = dict(s.failed)
    scored = iter(zip(s.dg_score, s.dg_grade, s.category))
    rows = []
    for i, f in enumerate(files):
        if i in failed:
            rows.append({"path": str(f), "status": "skipped", "message": failed[i]})
            continue
        value, grade, category = next(scored)
        applies = category == "granulocytic"
        rows.append({"path": str(f), "category": category, "dg_score": round(float(value), 4) if applies else None,
                     "dg_grade": int(grade) if applies else None, "status": "scored" if applies else "gated",
                     "message": "" if applies else f"{category} cell: decreased granules are graded on granulocytes only"})
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["path", "category", "dg_score", "dg_grade", "status", "message"]
    pd.DataFrame(rows, columns=columns).astype({"dg_grade": "Int64"}).to_csv(out, index=False)
    summary = (f"wrote {len(rows)} rows to {out}: {sum(r['status'] == 'scored' for r in rows)} scored, "
               f"{sum(r['status'] == 'gated' for r in rows)} gated, {len(failed)} skipped")
    if failed:
        raise SomeInputsFailed(summary + " (see the status and message columns)")
    click.echo(summary)


@granules.command("review")
@click.option("--cv", "cv_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True)
@labels_option()
@out_dir_option(None)
def review(cv_dir: Path, labels_dir: Path, out: Path) -> None:
    """Export the misclassified cells (raw outputs, 16-view spread, contact sheet) for the doctors."""
    from models.engine.akira.review import export_review
    wrong = export_review(cv_dir, labels_dir, out)
    click.echo(f"{len(wrong)} cells to review: {out}/review.csv and {out}/review.html")


@granules.command("relabel")
@labels_option()
@click.option("--corrections", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="CSV with Filename,label,new_value,who.")
def relabel(labels_dir: Path, corrections: Path) -> None:
    """Merge corrected labels into the table; every change goes to label_history.csv."""
    from models.engine.akira.review import apply_corrections
    changes = apply_corrections(labels_dir, corrections)
    click.echo(f"applied {len(changes)} corrections; history in {labels_dir}/label_history.csv")


@granules.command("metrics")
@click.option("--confusion", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="CSV of a 4x4 confusion matrix: rows true DG0-3, columns predicted DG0-3, no header.")
def metrics(confusion: Path) -> None:
    """Sensitivity, specificity, PPV, NPV and accuracy (DG1-3 positive) from a confusion matrix, as JSON."""
    import numpy as np

    from core.errors import InvalidInput
    from models.engine.akira.metrics import metrics_from_confusion
    try:
        matrix = np.loadtxt(confusion, delimiter=",", ndmin=2)
        result = metrics_from_confusion(matrix)
    except ValueError as exc:
        raise InvalidInput(f"{confusion}: {exc}") from exc
    click.echo(json.dumps(result, indent=2))
