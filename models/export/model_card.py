"""Model cards (Markdown and JSON) written beside each shipped model from its metadata and the
metrics measured by the evaluation commands: no figure in a card is typed by hand."""
from __future__ import annotations

import json
from pathlib import Path


GROUPS_ROW = "8 classic PBC groups, accuracy (real test crops)"
FINE_CLASS_ROW = "fine classes SNE/BNE/MMY/MY/PMY, macro sensitivity (real)"


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f} %"


def fine_class_text(m: dict) -> str:
    """The fine-class macro sensitivity of an evaluation's metrics (metrics.json of `mdsdx evaluate cells`),
    with its bootstrap interval where recorded: "86.0 % (95 % bootstrap CI 82.7-89.1 %)"."""
    ci = m.get("fine_class_macro_sensitivity_ci95")
    text = _pct(m["fine_class_macro_sensitivity_pbc"])
    return text + (f" (95 % bootstrap CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f} %)" if ci else "")


def write_card(model_dir: Path, card: dict) -> None:
    """``card``: title, summary, command(s), data, metrics (name -> (value, target or '')), intended use,
    limits, extra sections (title -> markdown). Writes MODEL_CARD.md and model_card.json."""
    model_dir = Path(model_dir)
    (model_dir / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    lines = [f"# Model card: {card['title']}", "", card["summary"], "",
             "**Research use only; not a medical device.**", "", "## How it was made", ""]
    lines += [f"    {c}" for c in card["commands"]]
    lines += ["", card.get("training_notes", ""), "", "## Data", "", card["data"], "", "## Held-out results", "",
              "| measure | value | target |", "|---|---|---|"]
    for name, (value, target) in card["metrics"].items():
        lines.append(f"| {name} | {value} | {target} |")
    for title, body in card.get("sections", {}).items():
        lines += ["", f"## {title}", "", body]
    lines += ["", "## Intended use", "", card["intended_use"], "", "## Limits", "", card["limits"], "",
              "## Versions", "", f"- model version: `{card['version']}`"]
    lines += [f"- {k} {v}" for k, v in card["libraries"].items()]
    (model_dir / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")


def _feature_threshold_table(calibration: dict) -> str:
    rules = calibration.get("feature_thresholds") or {}
    if not rules:
        return "No feature thresholds in this model's calibration (`mdsdx train recalibrate` adds them)."
    lines = [f"Thresholds on the validation split ({calibration.get('feature_threshold_rule', '')}); only validated "
             "features count a cell as dysplastic in the WHO view. The dysplasia labels are SIMULATED; vacuole labels also "
             "come from real WBCAtt attributes.", "",
             "| feature | validation AUC | threshold | sensitivity | specificity | positives / negatives | validated |",
             "|---|---|---|---|---|---|---|"]
    for fid, r in rules.items():
        lines.append(f"| {fid} | {r['auc']:.3f} | {r['threshold']:.3f} | {_pct(r['sensitivity'])} | {_pct(r['specificity'])} "
                     f"| {r['n_positive']} / {r['n_negative']} | {'yes' if r['validated'] else 'no'} |")
    return "\n".join(lines)


def _libraries_text(record: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in record.get("libraries", {}).items() if k != "python")


def _agreement_text(record: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in record["agreement_with_float"].items())


def _runtime_text(meta: dict, keras_file: str) -> str:
    record = meta.get("runtime") or {}
    if not record.get("onnx"):
        return f"Keras only (`{keras_file}`)."
    float_text = (f"the float file `{record['onnx']}` (opset {record['opset']}, sha256 `{record['onnx_sha256'][:16]}...`, "
                  f"{_libraries_text(record)}) with ONNX Runtime, exported from `{keras_file}` by the same save, whose "
                  "outputs agree with Keras within 1e-5 (tests/test_runtime.py).")
    if not (record.get("int8") or record.get("bf16")):
        return "Served by " + float_text
    check = record.get("check") or {}
    return ("Served by the first of these runtimes that passes its agreement check when the model is loaded: "
            f"on the {len(check.get('crops', []))} check crops in `check/`, its {check.get('statistic', 'error')} must "
            f"stay within {check.get('tolerance')} of the float outputs stored beside them, so a runtime whose kernels "
            "misbehave on a CPU is never used there (the one that serves, and every check, is on `/readyz`)."
            + _int8_text(record) + _bf16_text(record) + " Then " + float_text)


def _bf16_text(record: dict) -> str:
    b = record.get("bf16")
    if not b:
        return ""
    return (f" bf16, on CPUs with bfloat16 instructions (AVX512_BF16 or AMX): the same `{b['onnx']}` through the "
            f"{b['engine']} ({_libraries_text(b)}); agreement with ONNX Runtime's float result on {b['checked_on']}: "
            f"{_agreement_text(b)}.")


def _int8_text(record: dict) -> str:
    q = record.get("int8")
    if not q:
        return ""
    return (f" int8: `{q['onnx']}` (sha256 `{q['onnx_sha256'][:16]}...`; {q['format']}; calibrated on "
            f"{q['calibration']}); agreement with the float model on other train-split crops: {_agreement_text(q)}.")


def _input_text(meta: dict) -> str:
    from core.preprocess import frame_px
    from models.export.artifact import input_geometry
    px, field_of_view = input_geometry(meta)
    if field_of_view == 1.0:
        return f"{px}-px crops"
    return (f"{px}-px windows, the central {100 * field_of_view:.0f} % of each crop's side, "
            f"the crop first resized to {frame_px(px, field_of_view)} px")


def _export_metrics(eval_dir: Path, version: str) -> dict:
    """metrics.json of a test-split evaluation of model ``version`` with ``--export-px``."""
    m = json.loads((Path(eval_dir) / "metrics.json").read_text())
    if m.get("split", "test") != "test" or not m.get("export_px"):
        raise ValueError(f"{eval_dir} is not a test-split evaluation with --export-px")
    if m["model_version"] != version:
        raise ValueError(f"{eval_dir} scored {m['model_version']}, not {version}")
    return m


def export_metric_rows(eval_dir: Path, version: str) -> dict:
    """Card rows from a test-split evaluation of model ``version`` with ``--export-px`` (the same crops
    re-encoded as analyser exports): name -> (value, target)."""
    from core.preprocess import export_size
    m = _export_metrics(eval_dir, version)
    size = "%d x %d px exports of the same crops" % export_size(m["export_px"])
    return {f"8 classic PBC groups, accuracy ({size})": (_pct(m["classic_group_accuracy_pbc"]), ">= 98 %"),
            f"fine classes, macro sensitivity ({size})": (fine_class_text(m), ">= 90 %"),
            f"WBCAtt attributes, mean accuracy ({size})": (_pct(m["wbcatt_mean_accuracy"]), ">= 93 %"),
            f"expected calibration error, types ({size})": (_pct(m["expected_calibration_error"]), "<= 3 %")}


def export_limit_text(eval_dir: Path, version: str) -> str:
    """The sentence of a stage-1 card's limits on the figures at an analyser's export size."""
    from core.preprocess import export_size
    m = _export_metrics(eval_dir, version)
    return (" Scored on the same test crops re-encoded as %d x %d px analyser exports " % export_size(m["export_px"])
            + f"(`mdsdx evaluate cells --export-px {m['export_px']}`), the fine classes measure "
            f"{fine_class_text(m)}: their calls at the class boundaries follow how a crop "
            "was rendered (docs/training_history.md, \"Analyser exports\").")


def fine_class_caution(model_dir: Path, version: str) -> str | None:
    """The sentence a smear report puts under its cell counts: how reliable the stage-1 model ``version``
    is at the band / segmented and metamyelocyte / myelocyte / promyelocyte splits, from the card in
    ``model_dir``. None when that card is missing or describes other weights."""
    card = read_json(Path(model_dir) / "model_card.json")
    if not card or card.get("version") != version or FINE_CLASS_ROW not in card.get("metrics", {}):
        return None
    fine, target = card["metrics"][FINE_CLASS_ROW]
    groups = card["metrics"].get(GROUPS_ROW)
    return ("Band vs segmented neutrophils and metamyelocyte / myelocyte / promyelocyte are this model's least "
            f"reliable calls: macro sensitivity {fine} on held-out real crops, against a target of {target}. "
            "Read those splits with caution"
            + (f"; the 8 classic groups they sum into are called with {groups[0]} accuracy." if groups else "."))


def cellnet_card(model_dir: Path, eval_dir: Path, commands: list[str], training_notes: str = "", speed: str = "",
                 export_eval_dir: Path | None = None) -> dict:
    """The stage-1 card of ``model_dir`` from the test-split evaluation in ``eval_dir``; ``speed``: the
    measured `mdsdx cells classify` throughput, with its runtime and machine; ``export_eval_dir``: the
    same evaluation with ``--export-px``, whose figures become rows of their own."""
    meta = json.loads((Path(model_dir) / "metadata.json").read_text())
    m = json.loads((Path(eval_dir) / "metrics.json").read_text())
    if m.get("split", "test") != "test":
        raise ValueError(f"{eval_dir} scored the {m['split']} split; a model card reports the held-out test split")
    size_mb = (Path(model_dir) / "cellnet.keras").stat().st_size / 1e6
    report = (Path(eval_dir) / "report.md").read_text()
    tables = report.split("## Table 2 layout", 1)[1].replace("\n## ", "\n### ") if "## Table 2 layout" in report else ""
    card = {
        "title": "mdsdx stage-1 cell CNN (17 types, 97 features)", "version": meta["version"],
        "summary": ("A separable-convolution residual network in the shape of Kimura et al. 2019, Fig. 5 (3 upstream "
                    "blocks, 8 downstream residual blocks), trained from scratch on 2 CPU cores. Inputs are "
                    f"{_input_text(meta)} (antialiased resize from any size); outputs are calibrated "
                    "probabilities of the 17 cell types and of the dysmorphic features that had training labels, and "
                    "a 512-d embedding."),
        "commands": commands, "training_notes": training_notes,
        "data": ("Real crops of ../shared/data: PBC (Acevedo et al. 2020, CC BY 4.0; healthy donors) with WBCAtt "
                 "attributes (Tsutsui et al. 2023, MIT), and bone-marrow crops (Matek et al. 2021, CC BY 4.0), train "
                 f"split only ({meta['training']['n_train']} training and {meta['training']['n_val']} validation images, "
                 "real and simulated). Dysplastic features and the types with no real image (VLY, TAG, MEK, SMU) come "
                 "from mdsdx's SIMULATOR, made only from train-split crops. Features without any label source "
                 f"({97 - len(meta['trained_features'])} of 97) are untrained and output as missing (NaN)."),
        "metrics": {
            GROUPS_ROW: (_pct(m["classic_group_accuracy_pbc"]), ">= 98 %"),
            FINE_CLASS_ROW: (fine_class_text(m), ">= 90 %"),
            "WBCAtt attributes, mean accuracy (real, WBCAtt val split)": (_pct(m["wbcatt_mean_accuracy"]), ">= 93 %"),
            "expected calibration error, types (real)": (_pct(m["expected_calibration_error"]), "<= 3 %"),
            "UNID rate (real test crops)": (_pct(m["unid_rate_real_test"]), ""),
            "simulated features, macro AUC (SIMULATED test cells)": (f"{m['simulated_feature_macro_auc']:.3f}" if m.get("simulated_feature_macro_auc") else "n/a", ""),
            **(export_metric_rows(export_eval_dir, meta["version"]) if export_eval_dir else {}),
            "model file size": (f"{size_mb:.1f} MB", "<= 20 MB"),
            "speed, JPEG decode included, 2 cores": (speed or "see bench/bench_classify.py", ">= 200 cells/s"),
        },
        "sections": {"Per-type and per-feature tables (held-out test split)": "### Table 2 layout" + tables,
                     "Calibration": (f"Temperature scaling on the validation split: types T = "
                                     f"{meta['calibration']['type_temperature']:.3f}"
                                     f"{', with a per-type bias (bias-corrected temperature scaling)' if 'type_bias' in meta['calibration'] else ''}"
                                     f", features T = "
                                     f"{meta['calibration']['feature_temperature']:.3f}. UNID threshold "
                                     f"{meta['calibration']['unid_threshold']:.3f} ({meta['calibration']['unid_rule']})."),
                     "Feature detectors used by the WHO view": _feature_threshold_table(meta["calibration"]),
                     "Runtime": _runtime_text(meta, "cellnet.keras")},
        "intended_use": ("Research on automated peripheral-blood morphology and MDS screening; the first stage of "
                         "mdsdx's pipeline. Not for diagnosing patients."),
        "limits": ("Trained on healthy-donor crops of one analyser model (CellaVision DM96) and one marrow set; "
                   "dysplasia features are learned from SIMULATED transforms and their figures are measured on "
                   "simulated cells, not on patients. Features without a training label are reported "
                   "as missing. Real DI-60 exports at other stains, magnifications or focus may degrade accuracy. "
                   "The least reliable calls are the fine classes (band vs segmented neutrophil; metamyelocyte, "
                   f"myelocyte and promyelocyte): macro sensitivity {fine_class_text(m)} on real "
                   "test crops, below the 90 % target. Blasts and artefacts are learned only from bone-marrow crops, "
                   "taken with another stain and magnification (Table 2 layout of the model card)."
                   + (export_limit_text(export_eval_dir, meta["version"]) if export_eval_dir else "")),
        "libraries": meta["libraries"],
    }
    write_card(model_dir, card)
    return card


def _by_source_table(by_source: dict) -> str:
    lines = ["DG1-3 rates of the cross-validation per source folder of the crops; only neutrophils carry DG grades.",
             "", "| source | cells | DG0 | DG1-3 | false positives | specificity | sensitivity |",
             "|---|---|---|---|---|---|---|"]
    for name, g in by_source.items():
        sens = _pct(g["sensitivity"]) if g["positives"] else "-"
        lines.append(f"| {name} | {g['n']} | {g['negatives']} | {g['positives']} | {g['fp']} | "
                     f"{_pct(g['specificity'])} | {sens} |")
    return "\n".join(lines)


def _ci(rates: dict, name: str) -> str:
    ci = (rates.get("ci95") or {}).get(name)
    return f" (exact 95 % CI {_pct(ci[0])[:-2]}-{_pct(ci[1])})" if ci else ""


AKIRA_TARGETS = {"sensitivity": ">= 91.0 %", "specificity": ">= 97.7 %", "accuracy": ">= 97.2 %"}  # Mori et al., DG1-3


def _repeat_cv_rows(repeat_cv_dirs: list[Path]) -> dict:
    """One metrics row per repeat of the CV with the same recipe but another seed, so other folds: how far the
    headline figures move with the split alone."""
    rows = {}
    for d in repeat_cv_dirs:
        m = json.loads((Path(d) / "metrics.json").read_text())
        a = m["dg1_3"]
        rows[f"DG1-3 sensitivity / specificity / accuracy, same recipe, seed {m['config'].get('seed', '?')} (other folds; SIMULATED grades)"] = (
            # two decimals: at one, 97.15 % would read as the 97.2 % target met
            f"{100 * a['sensitivity']:.2f} % / {100 * a['specificity']:.2f} % ({a['fp']} false positives) / "
            f"{100 * a['accuracy']:.2f} %; AUC {a['auc']:.3f}", " / ".join(AKIRA_TARGETS.values()))
    return rows


def akira_card(model_dir: Path, cv_dir: Path, commands: list[str], speed: str = "", training_notes: str = "",
               repeat_cv_dirs: list[Path] = ()) -> dict:
    """Write the AKIRA model card of ``model_dir`` from its CV in ``cv_dir``; ``repeat_cv_dirs``: CVs of the same
    recipe with other seeds, each shown as one more row of the held-out table."""
    from models.engine.akira.augment import saved_interpolation
    meta = json.loads((Path(model_dir) / "metadata.json").read_text())
    m = json.loads((Path(cv_dir) / "metrics.json").read_text())
    a, b = m["dg1_3"], m["dg2_3"]
    c = meta["config"]
    card = {
        "title": "mdsdx AKIRA decreased-granules regressor (compact config)", "version": meta["version"],
        "summary": ("The regressor of Mori et al. 2020: backbone truncated at global average pooling, dropout 0.5, "
                    "Dense(34), sigmoid x maxval; weighted mean quartic loss (DG weight 10); two Adam optimisers, "
                    f"{c['head_lr']:g} head / {c['backbone_lr']:g} backbone (the paper: 1e-4 / 1e-5), with decoupled "
                    f"weight decay {c['weight_decay']:g}; batch {c['batch_size']}; {c['epochs']} epochs (the paper: 120); "
                    f"16-rotation max inference ({saved_interpolation(c)} rotation, as in training) "
                    "with category gating on a common 0-1 scale. The compact backbone is "
                    f"mdsdx's stage-1 CNN at {c['input_px']} px, initialised from the stage-1 model."
                    + (" DG oversampling departs from the reference: n0 counts the granulocytic DG0 images only, "
                       "not every DG0 image (`oversample_grade0: granulocytic`)."
                       if c.get("oversample_grade0") == "granulocytic" else "")),
        "commands": commands, "training_notes": training_notes,
        "data": (f"{meta.get('n_images', 'n/a')} images from real crops outside the stage-1 training split; DG grades "
                 "(and HS, HYPES, ACC) are SIMULATED by mdsdx's transforms on real neutrophils."),
        "metrics": {
            "DG1-3 sensitivity (5-fold CV, SIMULATED grades)": (_pct(a["sensitivity"]) + _ci(a, "sensitivity"), AKIRA_TARGETS["sensitivity"]),
            "DG1-3 specificity (SIMULATED grades)": (_pct(a["specificity"]) + _ci(a, "specificity"), AKIRA_TARGETS["specificity"]),
            "DG1-3 PPV / NPV (SIMULATED grades)": (f"{_pct(a['ppv'])} / {_pct(a['npv'])}", "(paper 76.3 % / 99.3 %)"),
            "DG1-3 accuracy (SIMULATED grades)": (_pct(a["accuracy"]) + _ci(a, "accuracy"), AKIRA_TARGETS["accuracy"]),
            "DG1-3 AUC (SIMULATED grades)": (f"{a['auc']:.3f}", "(paper 0.944)"),
            "DG2-3 sensitivity / specificity / accuracy (SIMULATED grades)": (f"{_pct(b['sensitivity'])} / {_pct(b['specificity'])} / "
                                                          f"{_pct(b['accuracy'])}", "(paper 85.2 / 98.9 / 98.2 %)"),
            "errors of two grades or more (SIMULATED grades)": (str(m["errors_two_or_more_grades"]), ""),
            **_repeat_cv_rows(list(repeat_cv_dirs)),
            "speed, 16 rotations, 2 cores": (speed or "see bench/bench_granules.py", ">= 20 cells/s"),
        },
        "sections": {"Confusion matrix (5-fold CV, SIMULATED grades)": "\n".join(
            ["| true \\ predicted | DG0 | DG1 | DG2 | DG3 |", "|---|---|---|---|---|"]
            + [f"| DG{i} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(m["confusion"])]),
                     **({"By source of the crops (5-fold CV, SIMULATED grades)": _by_source_table(m["by_source"])}
                        if "by_source" in m else {}),
                     "Runtime": _runtime_text(meta, "akira.keras")},
        "intended_use": "Research on bone-marrow dysplasia assessment. Not for diagnosing patients.",
        "limits": ("DG grades are simulated, not a morphologist's; the marrow crops are Pappenheim-stained and few, so "
                   "the pooled figures are carried by the peripheral-blood crops (see the by-source table); "
                   "no megakaryocyte, plasma cell, histiocyte, mitotic or red-cell images were available. The simulated "
                   "grades of the marrow neutrophils are mostly not what they say: the simulator's segmentation, "
                   "tuned on peripheral-blood crops, finds an acceptable cytoplasm mask on about 20 of 64 marrow "
                   "neutrophil crops against about 31 of 32 peripheral ones (`mdsdx simulate --mask-sheet FILE "
                   "--seed 0|1`, judged by eye, 2026-12-03), so on most marrow crops the DG transform writes "
                   "outside the cytoplasm or hardly at all, and the marrow rows of the by-source table measure "
                   "that noise. Label tables made since then use a marrow segmenter (`--segmenter marrow` on "
                   "the same sheets: about 42 of 64); this model was trained on the older table."),
        "libraries": meta["libraries"],
    }
    write_card(model_dir, card)
    return card
