"""Smear-level evidence for the diagnoser (``mdsdx evaluate diagnoser``): the ablation, the dose-response
curve and the scoring of the sealed test cohorts, every figure with a cluster-bootstrap interval.

- **Ablation.** For each design (literature, matched), three diagnosers are fitted on that design's
  training cohort and chosen on its validation cohort (:func:`diagnose.train.fit_chosen`): the 17 type
  proportions only, the 97 feature rates only, and all 114 parameters. Each is scored on the design's
  sealed test cohort: AUC and sensitivity at 95 % specificity (read off the ROC curve,
  :func:`sensitivity_at_specificity`).
- **Dose-response.** The diagnosers of the matched design, the shipped one first, scored on the
  matched dose-response series (the same MDS smears at MDS dysplasia rates of 0-30 % of each
  lineage, against one AA cohort); the detection limit is the lowest rate at which sensitivity at
  95 % specificity reaches 90 %.
- **Intervals.** The smears of a cohort share real crops (about 1,600 test-split crops make tens of
  thousands of cells), so they are not independent. :func:`cluster_bootstrap` resamples smears
  (within each diagnosis) and, independently, source crops (within each crop type): Owen's pigeonhole
  bootstrap for crossed factors, which is conservative. A resampled crop drawn k times counts each of
  its cells k times in every smear's 114 parameters (:class:`diagnose.cohort_cells.ParameterMaker`),
  and the models score the re-made parameters. The 95 % interval is the point figure +- 1.96
  bootstrap standard errors, clipped to [0, 1]: a resampled crop counted twice makes every smear's
  parameters noisier than the real smear's, which pulls the resampled AUC down, so percentile
  intervals of this bootstrap can lie below the point figure (on the sealed cohorts they did); its
  spread is kept, centred on the point. The smear-only bootstrap, the same way, is reported beside it
  to show how much the crops widen the intervals.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from diagnose.cohort_cells import CohortCells, ParameterMaker
from diagnose.train import PARAMETER_SETS
from featurize.smear import parameter_ids

log = logging.getLogger(__name__)
TARGET_SPECIFICITY = 0.95
DETECTION_SENSITIVITY = 0.90
TRUE_PROPORTIONS = "true_proportions"   # the simulator's own type mix: a check of the design, not a screen
SET_NAMES = {TRUE_PROPORTIONS: "true type proportions (simulator's labels, 17)", "proportions": "type proportions only (17)",
             "features": "feature rates only (97)", "all": "all 114 parameters"}


def sensitivity_at_specificity(y: np.ndarray, score: np.ndarray, specificity: float = TARGET_SPECIFICITY,
                               sample_weight: np.ndarray | None = None) -> float:
    """The highest sensitivity on the ROC curve (sklearn.metrics.roc_curve) at a specificity of at least
    ``specificity``; ties of scores count as one threshold, so no smear is split."""
    from sklearn.metrics import roc_curve
    fpr, tpr, _ = roc_curve(y, score, sample_weight=sample_weight, drop_intermediate=False)
    ok = fpr <= 1.0 - specificity + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def auc(y: np.ndarray, score: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, score, sample_weight=sample_weight))


def crop_strata(cells: CohortCells) -> pd.Series:
    """Each distinct source crop's type (the type it was drawn for, before any render: a variant
    lymphocyte is drawn from a lymphocyte crop), the stratum its resampling keeps the count of."""
    from simulate.cells import RENDER_DONOR
    donor = pd.Series(cells.cell_type).map(lambda t: RENDER_DONOR.get(t, t))
    return donor.groupby(pd.Series(cells.cell_crop)).first()


@dataclass
class BootstrapResult:
    point: dict[str, dict[str, float]]                  # model -> {"auc", "sens_at_95spec"}
    cluster: dict[str, dict[str, list[float]]]          # model -> metric -> [lo, hi] (smears and crops)
    smears_only: dict[str, dict[str, list[float]]]      # model -> metric -> [lo, hi] (smears only)
    resamples: int


def _metrics(y, score, w=None) -> dict[str, float]:
    """AUC and sensitivity at 95 % specificity from one sklearn.metrics.roc_curve (the area under the full
    curve equals roc_auc_score, ties included)."""
    from sklearn.metrics import auc as area, roc_curve
    fpr, tpr, _ = roc_curve(y, score, sample_weight=w, drop_intermediate=False)
    ok = fpr <= 1.0 - TARGET_SPECIFICITY + 1e-12
    return {"auc": float(area(fpr, tpr)), "sens_at_95spec": float(tpr[ok].max()) if ok.any() else 0.0}


def _margin(model, X: np.ndarray) -> np.ndarray:
    """A score ranked as the model's calibrated probability, on a (n, 114) float32 matrix, without
    building a DataFrame: the margin times the sign of the Platt slope (a slope of 0, a model whose
    out-of-fold margins carried nothing, gives every smear the same probability)."""
    margin = model.native_.margin(X) if model.native_ is not None else model.model_.predict(X, output_margin=True)
    return np.sign(model.platt_[0]) * margin


def _blank(X: np.ndarray, parameter_set: str) -> np.ndarray:
    """:func:`diagnose.train.select_parameters` on a matrix in parameter_ids() order."""
    if parameter_set == "all":
        return X
    X = X.copy()
    n_types = sum(c.startswith("type_") for c in parameter_ids())
    if parameter_set == "proportions":
        X[:, n_types:] = np.nan
    else:
        X[:, :n_types] = np.nan
    return X


def _normal_interval(values: list[dict], key: str, point: float) -> list[float]:
    """point +- 1.96 bootstrap standard errors, clipped to [0, 1]."""
    sd = float(np.std([d[key] for d in values], ddof=1))
    return [max(0.0, point - 1.96 * sd), min(1.0, point + 1.96 * sd)]


def cluster_bootstrap(cells: CohortCells, models: dict, resamples: int = 1000, seed: int = 0) -> BootstrapResult:
    """Point figures and 95 % intervals of every model of ``models`` (name -> (model, parameter_set)) on one
    cohort. Each resample draws smears with replacement within each diagnosis and source crops with
    replacement within each crop type, independently; the smear-only intervals redraw the smears alone.
    A model of parameter set ``true_proportions`` reads the simulator's true type proportions
    (:func:`diagnose.cohort_cells.with_true_types`) instead of the stage-1 model's."""
    from diagnose.cohort_cells import with_true_types
    makers = {"cnn": ParameterMaker(cells), "truth": ParameterMaker(with_true_types(cells))}
    y = cells.y

    def scores(weights=None) -> dict[str, np.ndarray]:
        mats = {k: mk(weights)[parameter_ids()].to_numpy(np.float32) for k, mk in makers.items()}
        return {name: _margin(m, _blank(mats["truth" if subset == TRUE_PROPORTIONS else "cnn"],
                                        "proportions" if subset == TRUE_PROPORTIONS else subset))
                for name, (m, subset) in models.items()}

    base = scores()
    point = {name: _metrics(y, s) for name, s in base.items()}
    strata = crop_strata(cells)
    crop_index = pd.Index(strata.index)
    cell_crop = crop_index.get_indexer(cells.cell_crop)
    groups = [np.flatnonzero(strata.to_numpy() == t) for t in sorted(set(strata))]
    classes = [np.flatnonzero(y == k) for k in (0, 1)]
    rng = np.random.default_rng(seed)
    cluster, smears_only = {n: [] for n in models}, {n: [] for n in models}
    for _ in range(resamples):
        smear_w = np.zeros(len(y))
        for idx in classes:
            np.add.at(smear_w, rng.choice(idx, len(idx)), 1.0)
        crop_w = np.zeros(len(crop_index))
        for idx in groups:
            np.add.at(crop_w, rng.choice(idx, len(idx)), 1.0)
        resampled = scores(crop_w[cell_crop])
        keep = smear_w > 0
        for name in models:
            cluster[name].append(_metrics(y[keep], resampled[name][keep], smear_w[keep]))
            smears_only[name].append(_metrics(y[keep], base[name][keep], smear_w[keep]))
    ci = lambda runs: {n: {k: _normal_interval(r, k, point[n][k]) for k in ("auc", "sens_at_95spec")}
                       for n, r in runs.items()}
    return BootstrapResult(point, ci(cluster), ci(smears_only), resamples)


def combine(a: CohortCells, b: CohortCells) -> CohortCells:
    """Two cohorts as one (the dose-response AA cohort with one MDS cohort); smear ids are prefixed so
    they stay distinct, and crops keep their names, so a crop shared by the two is one cluster."""
    n = len(a.smear_ids)
    return CohortCells(smear_ids=np.r_[[f"aa/{s}" for s in a.smear_ids], [f"mds/{s}" for s in b.smear_ids]],
                       diagnosis=np.r_[a.diagnosis, b.diagnosis], cell_smear=np.r_[a.cell_smear, b.cell_smear + n],
                       cell_crop=np.r_[a.cell_crop, b.cell_crop], cell_type=np.r_[a.cell_type, b.cell_type],
                       type_probs=np.vstack([a.type_probs, b.type_probs]),
                       feature_probs=np.vstack([a.feature_probs, b.feature_probs]))


def dysplastic_share(cohort_dir: Path, lineage_features: dict[str, dict]) -> pd.DataFrame:
    """Per smear and lineage, the share of the lineage's cells that the simulator made dysplastic (the
    labels in cells.csv): what a dysplasia rate R means, measured."""
    from simulate.cells import parse_feature_string
    from simulate.cohort import lineage_types
    cells = pd.read_csv(Path(cohort_dir) / "cells.csv", keep_default_na=False)
    cells["smear_id"] = cells["path"].str.split("/").str[0]
    rows = {}
    for lineage, weights in lineage_features.items():
        own = cells[cells["cell_type"].isin(lineage_types(weights))]
        flag = own["features"].map(lambda s: bool(set(parse_feature_string(s)) & set(weights)))
        rows[lineage] = flag.groupby(own["smear_id"]).mean()
    return pd.DataFrame(rows)


def detection_limit(rates: list[float], sensitivity: list[float], target: float = DETECTION_SENSITIVITY) -> float | None:
    """The lowest rate whose sensitivity at 95 % specificity reaches ``target``; None when none does."""
    for r, s in sorted(zip(rates, sensitivity)):
        if s >= target:
            return float(r)
    return None


def dose_response_png(table: pd.DataFrame, path: Path, aa_share: float | None = None, limit: float | None = None,
                      title: str = "") -> None:
    """AUC and sensitivity at 95 % specificity against the MDS dysplasia rate, one line per model with
    its cluster-bootstrap 95 % band; ``table`` rows: rate, model, auc, auc_lo, auc_hi, sens, sens_lo, sens_hi."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = {"all": "#b3261e", "features": "#2e6da4", "proportions": "#8a94a3"}
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4))
    for ax, (key, label, floor) in zip(axes, (("auc", "AUC", 0.5), ("sens", "sensitivity at 95 % specificity", None))):
        for model, g in table.groupby("model", sort=False):
            g = g.sort_values("rate")
            x = 100 * g["rate"].to_numpy()
            c = colours.get(g["parameter_set"].iloc[0], "#1d2430")
            ax.plot(x, g[key], "o-", color=c, lw=2 if g["parameter_set"].iloc[0] == "all" else 1.2,
                    label=SET_NAMES.get(g["parameter_set"].iloc[0], model))
            ax.fill_between(x, g[f"{key}_lo"], g[f"{key}_hi"], color=c, alpha=0.15, lw=0)
        if floor is not None:
            ax.axhline(floor, color="#8a94a3", lw=0.8, ls="--")
        else:
            ax.axhline(DETECTION_SENSITIVITY, color="#8a94a3", lw=0.8, ls="--")
            ax.text(0.5, DETECTION_SENSITIVITY + 0.01, "90 %", fontsize=7, color="#5a6473")
        ax.axvline(10, color="#1d2430", lw=0.8, ls=":")
        ax.text(10.4, 0.03, "WHO 10 %", fontsize=7, rotation=90, color="#1d2430")
        if aa_share is not None:
            ax.axvline(100 * aa_share, color="#7a4ea3", lw=0.8, ls="-.")
            ax.text(100 * aa_share + 0.4, 0.03, f"AA mean {100 * aa_share:.1f} %", fontsize=7, rotation=90, color="#7a4ea3")
        if limit is not None and key == "sens":
            ax.plot([100 * limit], [table.loc[(table["rate"] == limit) & (table["parameter_set"] == "all"), "sens"].iloc[0]],
                    "s", ms=10, mfc="none", mec="#1d2430")
        ax.set_xlabel("MDS dysplasia rate (% of neutrophils and of large platelets)")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.25)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title or "SIMULATED matched cohorts: dose-response of the MDS-vs-AA diagnoser", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _ablation_models(train_run: Path, designs: tuple[str, ...], max_depth_grid, random_state: int,
                     predictor) -> tuple[dict, dict]:
    """design -> parameter set -> the diagnoser fitted on the design's training cohort and chosen on its
    validation cohort; and the validation records. ``true_proportions``: the same on the simulator's
    true type proportions of those cohorts."""
    from diagnose.cohort_cells import predict_cohort, smear_parameters, with_true_types
    from diagnose.train import fit_chosen
    models, records = {}, {}
    for design in designs:
        frames = {split: pd.read_csv(Path(train_run) / f"{design}_{split}_features.csv", index_col="smear_id")
                  for split in ("train", "val")}
        truth = {split: smear_parameters(with_true_types(predict_cohort(predictor, Path(train_run) / f"{design}_{split}_cohort")))
                 for split in ("train", "val")}
        for subset in (*PARAMETER_SETS, TRUE_PROPORTIONS):
            train, val = (truth["train"], truth["val"]) if subset == TRUE_PROPORTIONS else (frames["train"], frames["val"])
            model, record = fit_chosen(train, val, "proportions" if subset == TRUE_PROPORTIONS else subset,
                                       max_depth_grid, random_state)
            models.setdefault(design, {})[subset] = model
            records[f"{design}/{subset}"] = record
    return models, records


def _rows(result: BootstrapResult, cohort: str, labels: dict[str, tuple[str, str]]) -> list[dict]:
    """Table rows (cohort, model, parameter set, trained on, figures, intervals) of one bootstrap."""
    rows = []
    for name, (trained_on, subset) in labels.items():
        p, c, s = result.point[name], result.cluster[name], result.smears_only[name]
        rows.append({"cohort": cohort, "model": name, "trained_on": trained_on, "parameter_set": subset,
                     "auc": p["auc"], "auc_lo": c["auc"][0], "auc_hi": c["auc"][1],
                     "sens": p["sens_at_95spec"], "sens_lo": c["sens_at_95spec"][0], "sens_hi": c["sens_at_95spec"][1],
                     "auc_smears_only_lo": s["auc"][0], "auc_smears_only_hi": s["auc"][1],
                     "sens_smears_only_lo": s["sens_at_95spec"][0], "sens_smears_only_hi": s["sens_at_95spec"][1]})
    return rows


def evaluate_evidence(model_dir: Path, train_run: Path, cohorts_dir: Path, out: Path, force: bool = False,
                      compare_dirs: tuple[Path, ...] = (), cell_model_dir: str | None = None,
                      data_root: str | None = None, resamples: int | None = None, note: str = "",
                      ledger: Path | None = None, spec: dict | None = None) -> dict:
    """Score the diagnoser of ``model_dir`` (and the diagnosers of ``compare_dirs``) once on the sealed
    test cohorts, fit and score the ablation models, and write metrics.json, ablation.csv,
    dose_response.csv, dose_response.png, roc.png and heatmap.png to ``out``. ``spec`` and ``ledger``
    replace the shipped sealed_cohorts.yaml and sealed_ledger.jsonl (tests)."""
    import json

    from core.datasets import default_data_root
    from diagnose.model import MdsDiagnoser
    from diagnose.report import cohort_heatmap_png, roc_png
    from diagnose.sealed import (LEDGER, build_sealed_cohorts, check_unscored, dose_cohort_name, load_sealed_spec,
                                 model_sha256, record_scoring, sealed_cohorts)
    from diagnose.train import evaluate_diagnoser
    from models.engine.infer import CellPredictor
    from simulate.cohort import load_disease_config

    ledger = Path(ledger) if ledger else LEDGER
    out = Path(out)
    spec = spec or load_sealed_spec()
    cohorts = sealed_cohorts(spec)
    names = [c.name for c in cohorts]
    scored = [Path(model_dir), *map(Path, compare_dirs)]
    shas = {d: model_sha256(d) for d in scored}
    earlier = {d: check_unscored(shas[d], names, spec, force, ledger) for d in scored}
    diagnosers = {d: MdsDiagnoser.load(d) for d in scored}
    train_config = json.loads((Path(train_run) / "train_config.json").read_text())
    designs = tuple(train_config["designs"])
    out.mkdir(parents=True, exist_ok=True)

    source = Path(data_root) if data_root else default_data_root()
    folders = build_sealed_cohorts(Path(cohorts_dir), source, spec)
    predictor = CellPredictor(cell_model_dir)
    memo: dict = {}
    from diagnose.cohort_cells import predict_cohort
    cells = {name: predict_cohort(predictor, folders[name], memo) for name in names}
    resamples = resamples or int(spec["bootstrap"]["resamples"])
    seed = int(spec["bootstrap"]["seed"])

    ablation, validation = _ablation_models(Path(train_run), designs, train_config["max_depth_grid"],
                                            train_config["random_state"], predictor)
    shipped = diagnosers[Path(model_dir)]
    version = shipped.metadata_["version"]
    compare = {f"{diagnosers[d].metadata_['version']} (compared)": (diagnosers[d], "all") for d in compare_dirs}
    rows, crops, at_threshold = [], {}, {}
    for design in spec["cohorts"]:
        if design not in designs:
            continue
        c = cells[design]
        crops[design] = c.crop_summary()
        models = {f"{design}/{s}": (ablation[design][s], s) for s in (*PARAMETER_SETS, TRUE_PROPORTIONS)}
        models[f"{version} (shipped)"] = (shipped, "all")
        models.update(compare)
        labels = {f"{design}/{s}": (design, s) for s in (*PARAMETER_SETS, TRUE_PROPORTIONS)}
        labels[f"{version} (shipped)"] = (train_config["design"], "all")
        labels.update({k: ("literature", "all") for k in compare})
        log.info("cluster bootstrap on the sealed %s cohort (%d resamples)", design, resamples)
        rows += _rows(cluster_bootstrap(c, models, resamples, seed), design, labels)
        frame = ParameterMaker(c)()
        frame["diagnosis"] = c.diagnosis
        at_threshold[design] = {name: evaluate_diagnoser(m, frame, resamples, seed)
                                for name, (m, _) in models.items() if name.endswith("(shipped)") or name in compare}
    type_signal = {}
    for design in at_threshold:
        # which proportions separate the diagnoses, one at a time: the simulator's true ones against the
        # stage-1 model's (which see dysplasia when a dysplastic cell is called another type)
        from diagnose.cohort_cells import with_true_types
        cnn, truth = ParameterMaker(cells[design])(), ParameterMaker(with_true_types(cells[design]))()
        y = cells[design].y
        type_signal[design] = {col[5:]: {"truth_auc": auc(y, truth[col].to_numpy()), "stage1_auc": auc(y, cnn[col].to_numpy())}
                               for col in parameter_ids() if col.startswith("type_") and truth[col].nunique() > 1}
    ablation_table = pd.DataFrame(rows)
    ablation_table.to_csv(out / "ablation.csv", index=False)

    # dose-response on the matched design, with the matched design's three models
    dose_rows, shares = [], {}
    dose = spec.get("dose_response")
    lineages = load_disease_config()["dysplasia_lineages"]
    if dose:
        design = dose["design"]
        aa_share = dysplastic_share(folders["dose_aa"], lineages)
        shares["AA"] = {k: {"mean": float(v.mean()), "p95": float(v.quantile(0.95))} for k, v in aa_share.items()}
        models = {f"{design}/{s}": (ablation[design][s], s) for s in PARAMETER_SETS}
        for rate in dose["rates"]:
            name = dose_cohort_name(rate)
            mds_share = dysplastic_share(folders[name], lineages)
            shares[f"MDS {rate:g}"] = {k: {"mean": float(v.mean()), "p95": float(v.quantile(0.95))} for k, v in mds_share.items()}
            combined = combine(cells["dose_aa"], cells[name])
            crops[f"dose {rate:g}"] = combined.crop_summary()
            log.info("cluster bootstrap at dysplasia rate %g", rate)
            for row in _rows(cluster_bootstrap(combined, models, resamples, seed), f"dose {rate:g}",
                             {f"{design}/{s}": (design, s) for s in PARAMETER_SETS}):
                dose_rows.append({"rate": float(rate), **row})
    dose_table = pd.DataFrame(dose_rows)
    limit = None
    if len(dose_table):
        dose_table.to_csv(out / "dose_response.csv", index=False)
        main = dose_table[dose_table["parameter_set"] == "all"]
        limit = detection_limit(main["rate"].tolist(), main["sens"].tolist())
        dose_response_png(dose_table, out / "dose_response.png", shares["AA"]["neutrophil"]["mean"], limit)

    # figures of the shipped diagnoser on the sealed matched cohort (or the first sealed cohort)
    fig_design = "matched" if "matched" in cells else next(iter(spec["cohorts"]))
    c = cells[fig_design]
    frame = ParameterMaker(c)()
    p = shipped.predict_proba(frame)[:, 1]
    m = at_threshold[fig_design][f"{version} (shipped)"]
    shipped_row = ablation_table[(ablation_table["cohort"] == fig_design) & (ablation_table["model"] == f"{version} (shipped)")].iloc[0]
    roc_png(c.y, p, f"SIMULATED sealed {fig_design}-design test cohort ({len(c.y)} smears)\n"
                    f"{version}, featurized through the stage-1 CNN", out / "roc.png",
            (shipped_row["auc_lo"], shipped_row["auc_hi"]), (m["sensitivity"], m["specificity"]))
    shap_values, _ = shipped.explain(frame)
    from featurize.smear import parameter_names
    mean_abs = np.abs(shap_values).mean(0)
    shap_top = [{"parameter": parameter_names()[parameter_ids()[i]], "mean_abs_shap": float(mean_abs[i])}
                for i in np.argsort(-mean_abs)[:8]]
    sample = np.random.default_rng(0).permutation(len(c.y))[:60]
    cohort_heatmap_png([str(c.smear_ids[i]) for i in sample], shap_values[sample], [str(c.diagnosis[i]) for i in sample],
                       path=out / "heatmap.png",
                       title=f"SIMULATED sealed {fig_design}-design test cohort, 60 smears: SHAP (log-odds toward MDS); "
                             "red = toward MDS")

    entries = []
    seeds = {co.name: co.config.seed for co in cohorts}
    for d in scored:
        entries.append(record_scoring(diagnosers[d].metadata_["version"], shas[d], seeds, bool(earlier[d]), note, ledger))
    metrics = {
        "model_version": version, "model_sha256": shas[Path(model_dir)], "cellnet": predictor.version,
        "stage1_runtime": predictor.runtime, "train_run": str(train_run), "training_design": train_config["design"],
        "sealed_spec": spec, "ledger_entries": entries, "earlier_scorings": {str(d): e for d, e in earlier.items()},
        "resamples": resamples, "interval_method": ("two-way cluster bootstrap: smears within diagnosis and source crops "
                                                    "within crop type, resampled independently (Owen's pigeonhole "
                                                    "bootstrap); 95 % interval = point +- 1.96 bootstrap standard errors, "
                                                    "clipped to [0, 1]"),
        "crops": crops, "validation": validation, "type_signal": type_signal, "ablation": rows, "shipped_at_threshold": at_threshold,
        "dose_response": dose_rows, "dysplastic_share": shares, "detection_limit": limit,
        "shap_top": {"cohort": fig_design, "parameters": shap_top},
        "detection_rule": f"lowest MDS dysplasia rate at which sensitivity at {100 * TARGET_SPECIFICITY:.0f} % specificity "
                          f"reaches {100 * DETECTION_SENSITIVITY:.0f} % (all 114 parameters, matched design)",
        "data": "SIMULATED cohorts (mdsdx simulate) from test-split crops, featurized through the stage-1 CNN"}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics
