"""``mdsdx diagnose``: batch rescoring of smear folders, with optional HTML reports."""
from __future__ import annotations

from pathlib import Path

import click

from cli.common import cell_model_option, out_file_option
from core.preprocess import IMAGE_SUFFIXES


@click.command()
@click.argument("smear_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@out_file_option("results CSV to write.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), help="Write one HTML report per smear and the cohort heatmap here.")
@cell_model_option()
@click.option("--diagnoser", type=click.Path(file_okay=False, exists=True), help="Diagnoser folder (default: shipped).")
def diagnose(smear_dirs, out: Path, report_dir: Path | None, cell_model, diagnoser) -> None:
    """Diagnose each SMEAR_DIR (one folder of cell images = one smear) as MDS or AA.

    Writes smear_id,status,p_mds,call,n_cells,skipped_cells,top_features,message: status ``ok`` or
    ``failed``, and the message says why a smear failed or which of its cells were skipped. Exits 1
    when any smear failed.
    """
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from core.errors import InvalidInput, MdsdxError, SomeInputsFailed
    from diagnose.pipeline import SmearDiagnosisPipeline
    from diagnose.report import cohort_heatmap_png, file_data_uri
    pipeline = SmearDiagnosisPipeline(cell_model, diagnoser)
    rows, results, failures = [], [], 0
    if report_dir:
        report_dir.mkdir(parents=True, exist_ok=True)
    for smear_dir in tqdm(smear_dirs, desc="smears", unit="smear", disable=None):
        try:
            if not smear_dir.is_dir():
                raise InvalidInput(f"{smear_dir}: no such folder")
            files = sorted(p for p in smear_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            result = pipeline.diagnose_images([str(f) for f in files], [f.name for f in files], smear_dir.name,
                                              skip_invalid=True)
        except MdsdxError as exc:
            failures += 1
            click.echo(f"failed: {smear_dir.name}: {exc}", err=True)
            rows.append({"smear_id": smear_dir.name, "status": "failed", "message": str(exc)})
            continue
        rows.append({"smear_id": result.smear_id, "status": "ok", "p_mds": result.p_mds, "call": result.call,
                     "n_cells": result.n_cells, "skipped_cells": len(files) - result.n_cells,
                     "top_features": "; ".join(f"{t['name']} ({t['shap']:+.3f})" for t in result.top_features),
                     "message": "; ".join(result.warnings)})
        for w in result.warnings:
            click.echo(f"warning: {result.smear_id}: {w}", err=True)
        if report_dir:
            by_name = {f.name: f for f in files}
            html = pipeline.render_report(result, lambda name: file_data_uri(by_name[name]))
            (report_dir / f"{result.smear_id}.html").write_text(html, encoding="utf-8")
            results.append(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    columns = ["smear_id", "status", "p_mds", "call", "n_cells", "skipped_cells", "top_features", "message"]
    pd.DataFrame(rows, columns=columns).astype({"n_cells": "Int64", "skipped_cells": "Int64"}).to_csv(tmp, index=False)
    tmp.replace(out)
    if report_dir and results:
        ids = pipeline.diagnoser.feature_names_
        matrix = np.array([[r.shap[k] for k in ids] for r in results])
        cohort_heatmap_png([r.smear_id for r in results], matrix, [r.call for r in results],
                           path=report_dir / "cohort_heatmap.png")
    summary = f"wrote {len(rows)} smears to {out}: {len(rows) - failures} diagnosed, {failures} failed"
    if failures:
        raise SomeInputsFailed(summary + " (see the status and message columns)")
    click.echo(summary)
