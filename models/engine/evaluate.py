"""Held-out evaluation of the stage-1 model (``mdsdx evaluate cells``).

Real test crops (our ``test`` split: WBCAtt ``val`` plus hashed crops no training step saw) give
the type, group, fine-class, attribute, vacuole-feature and calibration figures. The simulator's
``test`` cells, made only from test crops, give the simulated-feature figures and the types with
no real images; every such figure is labelled SIMULATED.

Writes to ``out``: ``metrics.json``, ``table2_types.csv`` (Kimura Table 2 layout),
``table3_features_real.csv`` and ``table3_features_simulated.csv`` (Table 3 layout),
``confusion_matrix.png`` (Fig. 1), ``tsne.png`` (Fig. 2) and ``report.md``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from core.datasets import (attribute_targets, consensus_band_segmented, feature_targets, load_all, load_pbc_native,
                           source_map)
from core.errors import DataNotFound
from core.metrics import (binary_scores, exact_ci95, expected_calibration_error, macro_sensitivity_ci95,
                          normalised_confusion, one_vs_rest)
from core.preprocess import export_size
from core.taxonomy import load_taxonomy
from models.export.model_card import fine_class_text

log = logging.getLogger(__name__)
FINE_CLASSES = ["SNE", "BNE", "MMY", "MY", "PMY"]
IMMATURE_CLASSES = ["MMY", "MY", "PMY"]
SIMULATED_ONLY_TYPES = ["VLY", "TAG", "MEK", "SMU"]


def _table2(real_true: np.ndarray, real_pred: np.ndarray, sim_true: np.ndarray, sim_pred: np.ndarray, tax) -> pd.DataFrame:
    """Kimura Table 2, one vs rest, computed separately on real crops and on SIMULATED cells (the
    simulator's dysplastic neutrophils keep their base type, SNE or BNE, so mixing would blur both)."""
    real = pd.DataFrame(one_vs_rest(real_true, real_pred, tax.type_abbrs))
    sim = pd.DataFrame(one_vs_rest(sim_true, sim_pred, tax.type_abbrs))
    return pd.DataFrame({"label": tax.type_abbrs, "cell_type": [t.name for t in tax.cell_types],
                         "n_real": real["n"], "sensitivity_real": real["sensitivity"], "specificity_real": real["specificity"],
                         "n_simulated": sim["n"], "sensitivity_simulated": sim["sensitivity"],
                         "specificity_simulated": sim["specificity"]})


def attribute_accuracy(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Accuracy of each WBCAtt attribute (name -> 0-1, NaN where no crop has a label): ``logits`` (n, 31)
    hold the attribute groups side by side in ``sources.yaml`` order, ``targets`` (n, 11) the value index
    per attribute, -1 for unknown."""
    vocab = source_map()["wbcatt_attributes"]
    out, start = {}, 0
    for j, (name, values) in enumerate(vocab.items()):
        pred = logits[:, start:start + len(values)].argmax(1)
        known = targets[:, j] >= 0
        out[name] = float((pred[known] == targets[known, j]).mean()) if known.any() else float("nan")
        start += len(values)
    return out


def _plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 8))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j] >= 0.01:
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _plot_tsne(embedding: np.ndarray, labels: np.ndarray, path: Path, seed: int, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=30).fit_transform(embedding)
    fig, ax = plt.subplots(figsize=(9, 8))
    cmap = plt.get_cmap("tab20")
    for k, label in enumerate(load_taxonomy().type_abbrs):
        sel = labels == label
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=5, color=cmap(k % 20), label=label, alpha=0.7)
            cx, cy = np.median(xy[sel], axis=0)
            ax.text(cx, cy, label, fontsize=9, weight="bold")
    ax.legend(markerscale=3, fontsize=7, ncol=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def expert_figures(frame: pd.DataFrame, pred_type: np.ndarray, unid: np.ndarray, seed: int = 0) -> dict:
    """The figures that do not hinge on one annotator, for PBC crops ``frame`` (rows of
    :func:`core.datasets.load_all`) whose top types are ``pred_type`` (n,) and UNID calls ``unid`` (n,):

    - ``band_segmented_consensus``: top-type accuracy on the neutrophils whose PBC class and WBCAtt
      nucleus shape agree (:func:`core.datasets.consensus_band_segmented`), with its exact 95 % interval
      and crop count, beside the same on every PBC band or segmented crop against PBC's label;
    - ``immature_macro_sensitivity``: MMY / MY / PMY, with its bootstrap interval and the crops per class;
    - ``selective_group_accuracy``: 8-group accuracy on the crops not called UNID, and the UNID rate."""
    true_type = np.array([t[0] for t in frame["cell_types"]])
    consensus = consensus_band_segmented(frame).to_numpy()
    agreed = pd.notna(consensus)
    neutrophil = np.isin(true_type, ["SNE", "BNE"])
    hits, n = int((pred_type[agreed] == consensus[agreed]).sum()), int(agreed.sum())
    all_hits, all_n = int((pred_type[neutrophil] == true_type[neutrophil]).sum()), int(neutrophil.sum())
    immature = one_vs_rest(true_type, pred_type, IMMATURE_CLASSES)
    groups = {a: g for g, abbrs in source_map()["classic_groups"].items() for a in abbrs}
    called = ~unid
    pred_group = np.array([groups.get(t) for t in pred_type], dtype=object)
    return {
        "band_segmented_consensus": {"accuracy": hits / n if n else float("nan"), "ci95": exact_ci95(hits, n), "crops": n,
                                     "all_crops_accuracy": all_hits / all_n if all_n else float("nan"),
                                     "all_crops_ci95": exact_ci95(all_hits, all_n), "all_crops": all_n},
        "immature_macro_sensitivity": {"value": float(np.nanmean([r["sensitivity"] for r in immature])),
                                       "ci95": macro_sensitivity_ci95(true_type, pred_type, IMMATURE_CLASSES, seed),
                                       "crops": {r["label"]: r["n"] for r in immature}},
        "selective_group_accuracy": {"value": float((pred_group[called] == frame["group"].to_numpy()[called]).mean())
                                     if called.any() else float("nan"),
                                     "called": int(called.sum()), "unid_rate": float(unid.mean()) if len(unid) else float("nan")},
    }


def native_figures(predictor, data_root: Path | None, split: str, seed: int = 0) -> dict | None:
    """The figures of the real PBC crops kept at their native 360 px (``pbc_native``, five neutrophil
    and immature-granulocyte classes) of ``split``, or None where that folder is absent: 8-group
    accuracy, fine-class macro sensitivity with its interval, WBCAtt mean accuracy and
    :func:`expert_figures`."""
    try:
        native = load_pbc_native(data_root)
    except DataNotFound:
        return None
    native = native[native["split"] == split].reset_index(drop=True)
    if native.empty:
        return None
    log.info("predicting %d native 360-px %s crops", len(native), split)
    rp = predictor.predict_files(native["path"].tolist())
    pred_type = np.array(load_taxonomy().type_abbrs)[rp.type_probs.argmax(1)]
    true_type = np.array([t[0] for t in native["cell_types"]])
    groups = {a: g for g, abbrs in source_map()["classic_groups"].items() for a in abbrs}
    pred_group = np.array([groups.get(t) for t in pred_type], dtype=object)
    has_attr = (attribute_targets(native) >= 0).any(1)
    attr_acc = attribute_accuracy(rp.attribute_logits[has_attr], attribute_targets(native[has_attr]))
    fine = one_vs_rest(true_type, pred_type, FINE_CLASSES)
    return {"crops": int(len(native)), "classic_group_accuracy": float((pred_group == native["group"].to_numpy()).mean()),
            "fine_class_macro_sensitivity": float(np.nanmean([r["sensitivity"] for r in fine])),
            "fine_class_macro_sensitivity_ci95": macro_sensitivity_ci95(true_type, pred_type, FINE_CLASSES, seed),
            "wbcatt_mean_accuracy": float(np.mean(list(attr_acc.values()))),
            **expert_figures(native, pred_type, rp.cell_type == "UNID", seed)}


def _predict(predictor, paths: list[str], export_px: int | None):
    if not export_px:
        return predictor.predict_files(paths)
    from core.preprocess import as_export
    return predictor.predict_files([as_export(Path(p).read_bytes(), export_px) for p in paths], [Path(p).name for p in paths])


def evaluate_cells(out: Path, model_dir: Path | None = None, data_root: Path | None = None,
                   simulated: pd.DataFrame | None = None, seed: int = 0, tsne_max: int = 3000, split: str = "test",
                   export_px: int | None = None) -> dict:
    """Evaluate the model on the held-out split and write the tables, plots and metrics.json.

    ``simulated``: the simulator's cells with their targets (the frame of
    :func:`simulate.training_set.read_training_set`; its rows of ``split`` are scored), or None.

    ``split="val"`` scores the validation split instead, to choose between trained models without
    reading the test split; the metric names stay those of the test report. ``export_px`` (e.g. 360)
    first re-encodes every crop at an analyser's export size (:func:`core.preprocess.as_export`)."""
    from models.engine.infer import CellPredictor
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tax = load_taxonomy()
    predictor = CellPredictor(model_dir)
    real = load_all(data_root)
    real = real[real["split"] == split].reset_index(drop=True)
    log.info("predicting %d real %s crops", len(real), split)
    rp = _predict(predictor, real["path"].tolist(), export_px)
    pred_type = np.array(tax.type_abbrs)[rp.type_probs.argmax(1)]
    single = real["cell_types"].map(len).values == 1
    true_type = np.array([t[0] if len(t) == 1 else "+".join(t) for t in real["cell_types"]])

    groups = {a: g for g, abbrs in source_map()["classic_groups"].items() for a in abbrs}
    is_pbc = (real["source"] == "pbc").values
    pred_group = np.array([groups.get(t) for t in pred_type], dtype=object)
    group_acc = float((pred_group[is_pbc] == real["group"].values[is_pbc]).mean())
    fine_rows = one_vs_rest(true_type[is_pbc & single], pred_type[is_pbc & single], FINE_CLASSES)
    fine_macro = float(np.nanmean([r["sensitivity"] for r in fine_rows]))
    fine_ci = macro_sensitivity_ci95(true_type[is_pbc & single], pred_type[is_pbc & single], FINE_CLASSES, seed)
    allowed = np.stack([np.isin(tax.type_abbrs, t) for t in real["cell_types"]])
    correct = allowed[np.arange(len(real)), rp.type_probs.argmax(1)]
    ece = expected_calibration_error(rp.confidence, correct)
    unid_rate = float((rp.cell_type == "UNID").mean())

    has_attr = (attribute_targets(real) >= 0).any(1)
    attr_acc = attribute_accuracy(rp.attribute_logits[has_attr], attribute_targets(real[has_attr]))
    attr_mean = float(np.mean(list(attr_acc.values())))

    real_feat_t = feature_targets(real)
    real_feature_rows = []
    for j, fid in enumerate(tax.feature_ids):
        known = real_feat_t[:, j] >= 0
        if known.any():
            real_feature_rows.append({"feature": tax.features[j].name, "id": fid, "label_source": "WBCAtt (real)",
                                      **binary_scores(real_feat_t[known, j], rp.feature_probs[known, j])})

    sim_feature_rows, sim_true, sim_pred, sim_emb = [], np.array([]), np.array([]), None
    if simulated is not None:
        sim = simulated[simulated["split"] == split].reset_index(drop=True)
        log.info("predicting %d simulated %s cells", len(sim), split)
        sp = _predict(predictor, sim["path"].tolist(), export_px)
        # a neutrophil whose nucleus a transform rewrote has no band / segmented truth: left out of Table 2
        fine_known = np.array([len(t) == 1 for t in sim["allowed_types"]], bool)
        sim_true = sim["cell_type"].values[fine_known]
        sim_pred = np.array(tax.type_abbrs)[sp.type_probs.argmax(1)][fine_known]
        sim_emb = sp.embedding[fine_known]
        targets = np.stack(list(sim["feature_target"]))
        for j, fid in enumerate(tax.feature_ids):
            known = targets[:, j] >= 0
            if known.any() and not np.isnan(sp.feature_probs[known, j]).all():
                sim_feature_rows.append({"feature": tax.features[j].name, "id": fid, "label_source": "SIMULATED",
                                         **binary_scores(targets[known, j], sp.feature_probs[known, j])})

    table2 = _table2(true_type[single], pred_type[single], sim_true, sim_pred, tax)
    table2.to_csv(out / "table2_types.csv", index=False)
    pd.DataFrame(real_feature_rows).to_csv(out / "table3_features_real.csv", index=False)
    pd.DataFrame(sim_feature_rows).to_csv(out / "table3_features_simulated.csv", index=False)

    # Fig. 1 and Fig. 2 show real crops, plus simulated renders only of the types with no real image.
    sim_only = np.isin(sim_true, SIMULATED_ONLY_TYPES)
    all_true = np.concatenate([true_type[single], sim_true[sim_only]])
    all_pred = np.concatenate([pred_type[single], sim_pred[sim_only]])
    cm = normalised_confusion(all_true, all_pred, tax.type_abbrs)
    _plot_confusion(cm, tax.type_abbrs, out / "confusion_matrix.png",
                    f"Stage-1 confusion matrix, held-out {split} split\n(real crops; VLY, TAG, MEK, SMU are SIMULATED renders)")
    rng = np.random.default_rng(seed)
    emb = np.concatenate([rp.embedding[single], sim_emb[sim_only]]) if sim_emb is not None else rp.embedding[single]
    keep = rng.permutation(len(emb))[:tsne_max]
    _plot_tsne(emb[keep], all_true[keep], out / "tsne.png", seed,
               "t-SNE of the embedding, held-out cells (real; VLY/TAG/MEK/SMU simulated)")

    pbc_single = is_pbc & single
    experts = expert_figures(real[pbc_single], pred_type[pbc_single], rp.cell_type[pbc_single] == "UNID", seed)
    metrics = {
        "model_version": predictor.version, "runtime": predictor.runtime, "split": split, "export_px": export_px,
        "n_real_test": int(len(real)), "n_simulated_test": int(len(sim_true)),
        "classic_group_accuracy_pbc": group_acc,
        "fine_class_macro_sensitivity_pbc": fine_macro, "fine_class_macro_sensitivity_ci95": fine_ci,
        "fine_classes": fine_rows,
        "wbcatt_attribute_accuracy": attr_acc, "wbcatt_mean_accuracy": attr_mean,
        "expected_calibration_error": ece, "unid_rate_real_test": unid_rate,
        "type_accuracy_real_single_label": float((pred_type[single] == true_type[single]).mean()),
        "simulated_feature_macro_auc": float(np.nanmean([r["auc"] for r in sim_feature_rows])) if sim_feature_rows else None,
        "real_feature_macro_auc": float(np.nanmean([r["auc"] for r in real_feature_rows])) if real_feature_rows else None,
        **experts,
        "native_360": native_figures(predictor, data_root, split, seed),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_report(out, metrics, table2, real_feature_rows, sim_feature_rows)
    return metrics


def _expert_lines(m: dict) -> list[str]:
    """The report's table of :func:`expert_figures`, for the split's crops as scored and, where the
    folder exists, for the native 360-px crops of the same cells."""
    pct = lambda x: "n/a" if x is None or x != x else f"{100 * x:.1f}"
    ci = lambda c: f"{pct(c[0])}-{pct(c[1])} %"
    sets = [("as scored above", m)] + ([("native 360 px (pbc_native)", m["native_360"])] if m.get("native_360") else [])
    lines = ["## Figures that do not hinge on one annotator (real crops)", "",
             "Band / segmented on consensus crops: the top type against the neutrophils whose PBC class and WBCAtt "
             "nucleus shape agree; beside it, every PBC band or segmented crop against PBC's label.", "",
             "| crops | band / segmented, consensus | all band / segmented | MMY / MY / PMY macro sensitivity | "
             "8 groups on cells called (UNID rate) |", "|---|---|---|---|---|"]
    for name, f in sets:
        b, im, sel = f["band_segmented_consensus"], f["immature_macro_sensitivity"], f["selective_group_accuracy"]
        lines.append(f"| {name} | {pct(b['accuracy'])} % ({ci(b['ci95'])}; {b['crops']} crops) | "
                     f"{pct(b['all_crops_accuracy'])} % ({ci(b['all_crops_ci95'])}; {b['all_crops']}) | "
                     f"{pct(im['value'])} % ({ci(im['ci95'])}; " + ", ".join(f"{k} {v}" for k, v in im["crops"].items())
                     + f") | {pct(sel['value'])} % of {sel['called']} ({pct(sel['unid_rate'])} % UNID) |")
    if m.get("native_360"):
        n = m["native_360"]
        lines += ["", f"Native 360-px crops ({n['crops']}): 8 groups {pct(n['classic_group_accuracy'])} %, fine classes "
                  f"{pct(n['fine_class_macro_sensitivity'])} % ({ci(n['fine_class_macro_sensitivity_ci95'])}), "
                  f"WBCAtt {pct(n['wbcatt_mean_accuracy'])} %."]
    return lines + [""]


def _write_report(out: Path, m: dict, table2: pd.DataFrame, real_rows: list, sim_rows: list) -> None:
    pct = lambda x: "n/a" if x is None or x != x else f"{100 * x:.1f}"
    lines = [f"# Stage-1 evaluation: {m['model_version']}", "",
             f"Held-out {m.get('split', 'test')} split: real crops no training step saw, and SIMULATED cells made only "
             f"from {m.get('split', 'test')} crops."
             + (" Every crop was first re-encoded as a %d x %d px analyser export (JPEG q90)." % export_size(m["export_px"])
                if m.get("export_px") else ""), "",
             "| measure | value | target |", "|---|---|---|",
             f"| 8 classic PBC groups, accuracy (real) | {pct(m['classic_group_accuracy_pbc'])} % | >= 98 % |",
             f"| fine classes SNE/BNE/MMY/MY/PMY, macro sensitivity (real) | {fine_class_text(m)} | >= 90 % |",
             f"| WBCAtt attributes, mean accuracy (real) | {pct(m['wbcatt_mean_accuracy'])} % | >= 93 % |",
             f"| expected calibration error, types (real) | {pct(m['expected_calibration_error'])} % | <= 3 % |",
             f"| UNID rate (real) | {pct(m['unid_rate_real_test'])} % | |", ""]
    lines += _expert_lines(m)
    lines += ["## Table 2 layout: cell types (one vs rest)", "",
             "Real crops and SIMULATED cells are scored apart; the simulated SNE and BNE are dysplastic renders "
             "(degranulated, toxic granulation...) of real neutrophils. Simulated neutrophils whose nucleus a transform "
             "rewrote (pseudo-Pelger, round nucleus, hypersegmentation) are only known to be SNE or BNE and are left "
             "out of this table.", "",
             "| type | real n | real sensitivity % | real specificity % | SIMULATED n | SIMULATED sensitivity % | SIMULATED specificity % |",
             "|---|---|---|---|---|---|---|"]
    for r in table2.itertuples():
        lines.append(f"| {r.label} {r.cell_type} | {r.n_real} | {pct(r.sensitivity_real)} | {pct(r.specificity_real)} | "
                     f"{r.n_simulated} | {pct(r.sensitivity_simulated)} | {pct(r.specificity_simulated)} |")
    for title, rows in (("real labels (WBCAtt vacuoles)", real_rows), ("SIMULATED labels", sim_rows)):
        lines += ["", f"## Table 3 layout: features, {title}", "", "| feature | positives | negatives | sensitivity % | specificity % | AUC |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['feature']} | {r['n_positive']} | {r['n_negative']} | {pct(r['sensitivity'])} | {pct(r['specificity'])} | "
                  f"{r['auc']:.3f} |" for r in rows]
    lines += ["", "WBCAtt attributes: " + ", ".join(f"{k} {pct(v)} %" for k, v in m["wbcatt_attribute_accuracy"].items()), ""]
    (out / "report.md").write_text("\n".join(lines))
