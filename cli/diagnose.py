"""``mdsdx diagnose``: batch rescoring of smear folders, with optional HTML reports."""
from __future__ import annotations

from pathlib import Path

import click

from cli.common import cell_model_option, out_file_option


@click.command()
@click.argument("smear_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@out_file_option("results CSV to write.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), help="Write one HTML report per smear and the cohort heatmap here.")
@cell_model_option()
@click.option("--diagnoser", type=click.Path(file_okay=False, exists=True), help="Diagnoser folder (default: shipped).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: Ray workers, each loading the models once (pip install -e \".[ray]\").")
@click.option("--address", default=None, help="With --engine ray: an existing Ray cluster (ray://HOST:10001); "
                                             "none starts a local one.")
@click.option("--workers", type=click.IntRange(1, 1024), default=2, show_default=True,
              help="With --engine ray: how many workers (each uses --threads cores).")
@click.option("--threads", type=click.IntRange(1, 64), default=None,
              help="Cores per process (default: 2 locally, 1 per Ray worker).")
def diagnose(smear_dirs, out: Path, report_dir: Path | None, cell_model, diagnoser, engine: str, address: str | None,
             workers: int, threads: int | None) -> None:
    """Diagnose each SMEAR_DIR (one folder of cell images = one smear) as MDS or AA.

    Writes smear_id,status,p_mds,call,n_cells,skipped_cells,top_features,message: status ``ok`` or
    ``failed``, and the message says why a smear failed or which of its cells were skipped. Exits 1
    when any smear failed. The same folders give the same rows with either engine.
    """
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from core.errors import SomeInputsFailed
    from diagnose.pipeline import render_report
    from diagnose.report import cohort_heatmap_png, file_data_uri
    from diagnose.rescore import CSV_COLUMNS, PipelineSpec, rescore_local, rescore_ray, smear_files
    spec = PipelineSpec(cell_model, diagnoser, threads=threads or (1 if engine == "ray" else 2))
    keep = report_dir is not None
    with tqdm(total=len(smear_dirs), desc="smears", unit="smear", disable=None) as bar:
        if engine == "ray":
            rescored = rescore_ray(list(smear_dirs), spec, workers, address, keep, bar.update)
        else:
            rescored = rescore_local(list(smear_dirs), spec, keep, bar.update)
    rows = [r.row for r in rescored]
    for r in rows:
        if r["status"] == "failed":
            click.echo(f"failed: {r['smear_id']}: {r['message']}", err=True)
        elif r["message"]:
            click.echo(f"warning: {r['smear_id']}: {r['message']}", err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    pd.DataFrame(rows, columns=CSV_COLUMNS).astype({"n_cells": "Int64", "skipped_cells": "Int64"}).to_csv(tmp, index=False)
    tmp.replace(out)
    results = [(smear_dir, r.result) for smear_dir, r in zip(smear_dirs, rescored) if r.result is not None]
    if report_dir and results:
        report_dir.mkdir(parents=True, exist_ok=True)
        for smear_dir, result in results:
            by_name = {f.name: f for f in smear_files(smear_dir)}
            html = render_report(result, lambda name: file_data_uri(by_name[name]), cell_model)
            (report_dir / f"{result.smear_id}.html").write_text(html, encoding="utf-8")
        ids = list(results[0][1].shap)
        matrix = np.array([[r.shap[k] for k in ids] for _, r in results])
        cohort_heatmap_png([r.smear_id for _, r in results], matrix, [r.call for _, r in results],
                           path=report_dir / "cohort_heatmap.png")
    failures = sum(r["status"] == "failed" for r in rows)
    summary = f"wrote {len(rows)} smears to {out}: {len(rows) - failures} diagnosed, {failures} failed"
    if failures:
        raise SomeInputsFailed(summary + " (see the status and message columns)")
    click.echo(summary)
