"""Doctor in the loop (Mori et al.): export the misclassified cells for review and merge corrections.

- :func:`export_review` writes ``review.csv`` (the misclassified cells with all 34 raw outputs,
  the 16-view spread and the crop's source folder when the label table records it) and ``review.html`` (a contact sheet of their images with label and prediction).
- :func:`apply_corrections` merges a corrections CSV (``Filename,label,new_value,who``) into the
  label table and appends every change to ``label_history.csv`` (old value, new value, who, when).
  The next ``cv`` run reads the corrected table.
"""
from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import pandas as pd
from PIL import Image

from core.akira_labels import load_labels
from core.errors import InvalidInput
from models.engine.akira.data import crop_sources, read_label_table


def export_review(cv_dir: Path, labels_dir: Path, out: Path) -> pd.DataFrame:
    predictions = pd.read_csv(Path(cv_dir) / "cv_predictions.csv")
    wrong = predictions[predictions["true_dg"] != predictions["dg_grade"]].copy()
    wrong["grade_difference"] = (wrong["dg_grade"] - wrong["true_dg"]).abs()
    sources = crop_sources(labels_dir, wrong["Filename"])  # a stain or cell type that fails together shows up
    wrong["source"] = sources.values if sources is not None else ""
    wrong = wrong.sort_values(["grade_difference", "Filename"], ascending=[False, True])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wrong.to_csv(out / "review.csv", index=False)
    tiles = []
    for r in wrong.itertuples():
        with Image.open(Path(labels_dir) / "images" / r.Filename) as im:
            im = im.convert("RGB")
            im.thumbnail((160, 160))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
        src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        tiles.append(f'<figure><img src="{src}" alt="{escape(r.Filename)}"><figcaption>{escape(r.Filename)}<br>'
                     f'label DG{r.true_dg}, predicted DG{r.dg_grade} ({r.dg_score:.2f}, {escape(r.category)})'
                     f'{"<br>" + escape(r.source) if r.source else ""}</figcaption></figure>')
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>AKIRA review</title><style>"
            "body{font-family:sans-serif;margin:20px} figure{display:inline-block;margin:6px;width:170px;"
            "font-size:11px;vertical-align:top} img{width:160px;height:160px;border:1px solid #999}</style></head><body>"
            f"<h1>AKIRA: {len(wrong)} cells where label and prediction differ</h1><p>DG grades are SIMULATED. "
            "Correct a label with a CSV of Filename,label,new_value,who and <code>mdsdx granules relabel</code>.</p>"
            + "".join(tiles) + "</body></html>")
    (out / "review.html").write_text(html, encoding="utf-8")
    return wrong


def apply_corrections(labels_dir: Path, corrections_csv: Path) -> pd.DataFrame:
    labels = load_labels()
    path = Path(labels_dir) / "labels.csv"
    table = read_label_table(path)
    corrections = pd.read_csv(corrections_csv, dtype={"Filename": str, "label": str, "who": str})
    needed = {"Filename", "label", "new_value", "who"}
    if not needed <= set(corrections.columns):
        raise InvalidInput(f"{corrections_csv}: expected the columns {sorted(needed)}")
    index = {f: i for i, f in enumerate(table["Filename"])}
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    history = []
    for c in corrections.itertuples():
        if c.Filename not in index:
            raise InvalidInput(f"{corrections_csv}: unknown Filename {c.Filename!r}")
        if c.label not in labels.ids:
            raise InvalidInput(f"{corrections_csv}: unknown label {c.label!r}; labels are {list(labels.ids)}")
        top = labels.maxval[labels.index(c.label)]
        if not 0 <= float(c.new_value) <= top:
            raise InvalidInput(f"{corrections_csv}: {c.label} must be between 0 and {top:g}, got {c.new_value}")
        old = float(table.at[index[c.Filename], c.label])
        table.at[index[c.Filename], c.label] = float(c.new_value)
        history.append({"Filename": c.Filename, "label": c.label, "old_value": old, "new_value": float(c.new_value),
                        "who": c.who, "when": when})
    tmp = path.with_suffix(".csv.part")
    table.to_csv(tmp, index=False)  # the whole table is replaced at once: never half-written
    history_path = Path(labels_dir) / "label_history.csv"
    pd.DataFrame(history).to_csv(history_path, mode="a", header=not history_path.is_file(), index=False)
    tmp.replace(path)
    return pd.DataFrame(history)
