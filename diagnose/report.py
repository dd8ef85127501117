"""HTML reports for clinicians and the cohort figures (Kimura Fig. 3 heatmap, Fig. 4 ROC).

The report is one self-contained HTML page (inline CSS and SVG, no external asset). Cell images
come from ``image_src(name) -> str``: data URIs for files written by the CLI, URLs in the service.
"""
from __future__ import annotations

import base64
import io
from html import escape
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from core.taxonomy import load_taxonomy
from featurize.smear import parameter_names


def _template():
    from jinja2 import Environment, select_autoescape
    env = Environment(autoescape=select_autoescape(["html"]))
    return env.from_string(resources.files("diagnose").joinpath("templates/smear_report.html").read_text("utf-8"))


def shap_bar_svg(shap: dict, k: int = 12, width: int = 1100) -> str:
    """Horizontal bars of the k largest |SHAP| parameters, as inline SVG."""
    names = parameter_names()
    items = sorted(shap.items(), key=lambda kv: -abs(kv[1]))[:k]
    if not items:
        return "<p>no SHAP values</p>"
    scale = max(abs(v) for _, v in items) or 1.0
    row, label_w, mid = 22, 330, 330 + (width - 330) / 2
    half = (width - label_w) / 2 - 60
    parts = [f'<svg width="100%" viewBox="0 0 {width} {row * len(items) + 10}" role="img" aria-label="SHAP bar chart">']
    parts.append(f'<line x1="{mid}" x2="{mid}" y1="0" y2="{row * len(items)}" stroke="#8a94a3"/>')
    for i, (key, v) in enumerate(items):
        y = i * row + 4
        w = abs(v) / scale * half
        x = mid if v >= 0 else mid - w
        colour = "#c0392b" if v >= 0 else "#2e6da4"
        parts.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end" font-size="12">{escape(names.get(key, key))}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="15" fill="{colour}"/>')
        tx = x + w + 4 if v >= 0 else x - 4
        parts.append(f'<text x="{tx:.1f}" y="{y + 12}" font-size="11" text-anchor="{"start" if v >= 0 else "end"}">{v:+.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def file_data_uri(path: Path, max_px: int = 96) -> str:
    """A small JPEG thumbnail of an image file as a data URI."""
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((max_px, max_px))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_smear_report(result, image_src: Callable[[str], str], nav: str = "", caution: str | None = None) -> str:
    """The HTML report of one :class:`~diagnose.pipeline.SmearResult`; ``caution``: the stage-1 model's
    least reliable type calls, shown under the cell counts (:func:`models.export.model_card.fine_class_caution`)."""
    tax = load_taxonomy()
    names = parameter_names()
    parameters = sorted(
        ({"name": names[k], "value": "" if v is None else f"{v:.4f}", "shap": f"{result.shap.get(k, 0.0):+.4f}",
          "abs": abs(result.shap.get(k, 0.0))} for k, v in result.parameters.items()), key=lambda p: -p["abs"])
    by_type: dict[str, list] = {}
    for c in result.cells:
        by_type.setdefault(c.cell_type, []).append({**c.__dict__, "src": image_src(c.name)})
    order = tax.type_abbrs + ["UNID"]
    titles = {t.abbr: f"{t.abbr} {t.name}" for t in tax.cell_types} | {"UNID": "UNID (unidentified)"}
    gallery = [{"title": titles[t], "cells": sorted(by_type[t], key=lambda c: (not c["dysplastic"], c["name"]))}
               for t in order if t in by_type]
    return _template().render(r=result, shap_svg=shap_bar_svg(result.shap), types=tax.cell_types,
                              parameters=parameters, gallery=gallery, nav=nav, caution=caution)


def cohort_heatmap_png(smear_ids: list[str], shap_matrix: np.ndarray, labels: list[str] | None = None,
                       top_k: int = 25, path: Path | None = None, title: str | None = None) -> bytes:
    """Kimura Fig. 3: cases as rows, the ``top_k`` parameters by mean |SHAP| as columns, SHAP as colour.
    Rows are grouped by ``labels`` (the call or the truth) when given. ``title``: the figure's title, which
    must say SIMULATED when the smears are. Returns PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from featurize.smear import parameter_ids
    ids = parameter_ids()
    names = parameter_names()
    cols = np.argsort(-np.abs(shap_matrix).mean(0))[:top_k]
    order = np.arange(len(smear_ids))
    if labels is not None:
        order = np.array(sorted(order, key=lambda i: (labels[i] != "MDS", smear_ids[i])))
    data = shap_matrix[np.ix_(order, cols)]
    lim = float(np.abs(data).max()) or 1.0
    fig_h = max(3.0, 0.22 * len(order) + 2.6)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.34 * len(cols) + 3.5), fig_h))
    im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks(range(len(cols)), [names[ids[c]] for c in cols], rotation=60, ha="right", fontsize=7)
    row_labels = [f"{smear_ids[i]}" + (f" ({labels[i]})" if labels is not None else "") for i in order]
    ax.set_yticks(range(len(order)), row_labels, fontsize=6 if len(order) > 40 else 8)
    ax.set_title(title or "SHAP per smear (log-odds toward MDS); red = toward MDS", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    if path:
        Path(path).write_bytes(buf.getvalue())
    return buf.getvalue()


def roc_png(y_true: np.ndarray, score: np.ndarray, title: str, path: Path, auc_ci: tuple | None = None,
            operating_point: tuple | None = None) -> None:
    """Kimura Fig. 4: the ROC curve with its AUC (and bootstrap CI) and the chosen operating point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve
    fpr, tpr, _ = roc_curve(y_true, score)
    auc = roc_auc_score(y_true, score)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    label = f"AUC {auc:.3f}" + (f" (95 % CI {auc_ci[0]:.3f}-{auc_ci[1]:.3f})" if auc_ci else "")
    ax.plot(fpr, tpr, color="#b3261e", lw=2, label=label)
    ax.plot([0, 1], [0, 1], color="#8a94a3", lw=1, ls="--")
    if operating_point:
        ax.plot([1 - operating_point[1]], [operating_point[0]], "o", color="#1d2430",
                label=f"threshold: sens {operating_point[0]:.3f}, spec {operating_point[1]:.3f}")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
