"""``mdsdx cells classify``: per-cell types and features for image files or folders."""
from __future__ import annotations

from pathlib import Path

import click

from cli.common import model_option, out_file_option
from core.preprocess import IMAGE_SUFFIXES


def find_images(paths: tuple[str, ...]) -> list[Path]:
    """Image files among ``paths``, folders searched recursively, in a stable order."""
    from core.errors import InvalidInput
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise InvalidInput(f"{p}: no such file or folder")
    if not found:
        raise InvalidInput(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {', '.join(paths)}")
    return found


@click.group()
def cells() -> None:
    """Stage-1 cell classification."""


@cells.command("classify")
@click.argument("paths", nargs=-1, required=True)
@out_file_option("CSV to write.")
@model_option("Model folder (default: the shipped model).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=64, show_default=True)
def classify(paths, out: Path, model_dir, batch_size: int) -> None:
    """Classify every image in PATHS (files or folders) into 17 types and 97 features."""
    from tqdm import tqdm

    from models.engine.infer import CellPredictor
    from models.engine.predictions_table import predictions_frame
    files = find_images(paths)
    predictor = CellPredictor(model_dir, batch_size=batch_size)
    with tqdm(total=len(files), unit="cell", desc="classify", disable=None) as bar:
        preds = predictor.predict_files([str(f) for f in files], skip_invalid=True, progress=bar.update)
    for _, msg in preds.failed:
        click.echo(f"skipped: {msg}", err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    predictions_frame([str(f) for f in files], preds).to_csv(tmp, index=False)
    tmp.replace(out)
    summary = f"wrote {len(files)} rows to {out}: {len(preds)} cells classified, {len(preds.failed)} skipped"
    if preds.failed:
        from core.errors import SomeInputsFailed
        raise SomeInputsFailed(summary + " (see the status and message columns)")
    click.echo(summary)
