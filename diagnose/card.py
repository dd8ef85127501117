"""The diagnoser's model card (MODEL_CARD.md, model_card.json) from its metadata and the metrics of
``mdsdx evaluate diagnoser``: no figure in it is typed by hand. Every row of the results says SIMULATED."""
from __future__ import annotations

import json
from pathlib import Path

from models.export.model_card import write_card

# Said once, in every card written from now on: how the earlier diagnosers were scored.
EARLIER_REUSE = (
    "Until 2026-12-06 every diagnoser (nine versions, from the 2026-11-23 stage-1 model to diagnoser-20261206-2223) "
    "was scored on the same test cohort: seed 202, 300 smears, literature design, made by `mdsdx train diagnosis` "
    "itself, and the rule that sets the decision threshold was changed after its figures had been read. Their "
    "figures (AUC 0.999-1.000, sensitivity 96.0-100 %, specificity 98.7-100 %) are therefore not held-out "
    "estimates, and on that design the lymphocyte share alone separates the diagnoses. That cohort is retired; "
    "the sealed cohorts of `diagnose/sealed_cohorts.yaml` replace it.")


def _ci(lo: float, hi: float, pct: bool = False) -> str:
    return f"[{100 * lo:.1f}, {100 * hi:.1f}] %" if pct else f"[{lo:.3f}, {hi:.3f}]"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _row(r: dict) -> str:
    return (f"{r['auc']:.3f} (95 % CI {_ci(r['auc_lo'], r['auc_hi'])}); sensitivity at 95 % specificity "
            f"{_pct(r['sens'])} (95 % CI {_ci(r['sens_lo'], r['sens_hi'], True)})")


def ablation_table(rows: list[dict]) -> str:
    lines = ["| sealed test cohort (SIMULATED) | model | trained on | AUC (95 % CI) | sensitivity at 95 % specificity (95 % CI) | "
             "AUC CI, smears only |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cohort']} | {r['model']} | {r['trained_on']} | {r['auc']:.3f} {_ci(r['auc_lo'], r['auc_hi'])} | "
                     f"{_pct(r['sens'])} {_ci(r['sens_lo'], r['sens_hi'], True)} | "
                     f"{_ci(r['auc_smears_only_lo'], r['auc_smears_only_hi'])} |")
    return "\n".join(lines)


def dose_table(rows: list[dict], shares: dict) -> str:
    models = list(dict.fromkeys(r["model"] for r in rows))
    head = "| MDS dysplasia rate | labelled dysplastic, MDS neutrophils (mean) | " + " | ".join(
        f"{m}: AUC (95 % CI) | {m}: sensitivity at 95 % spec. (95 % CI)" for m in models) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(models))]
    for rate in sorted({r["rate"] for r in rows}):
        share = shares.get(f"MDS {rate:g}", {}).get("neutrophil", {}).get("mean")
        cells = []
        for m in models:
            r = next(x for x in rows if x["rate"] == rate and x["model"] == m)
            cells += [f"{r['auc']:.3f} {_ci(r['auc_lo'], r['auc_hi'])}", f"{_pct(r['sens'])} {_ci(r['sens_lo'], r['sens_hi'], True)}"]
        lines.append(f"| {100 * rate:g} % | {_pct(share)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crops_table(crops: dict) -> str:
    lines = ["| cohort | smears | cells | distinct source crops | cells per crop (mean) | effective crops (Kish) |",
             "|---|---|---|---|---|---|"]
    for name, c in crops.items():
        lines.append(f"| {name} | {c['smears']} | {c['cells']} | {c['distinct_crops']} | {c['mean_cells_per_crop']:.1f} | "
                     f"{c['effective_crops_kish']:.0f} |")
    return "\n".join(lines)


def ledger_text(entries: list[dict], version: str) -> str:
    own = [e for e in entries if e["model_version"] == version]
    forced = [e for e in own if e["forced"]]
    lines = [f"Scorings of the sealed cohorts recorded in `diagnose/sealed_ledger.jsonl` ({len(entries)} in all):", "",
             "| date (UTC) | diagnoser | forced | note |", "|---|---|---|---|"]
    lines += [f"| {e['date']} | {e['model_version']} | {'yes' if e['forced'] else 'no'} | {e.get('note', '')} |" for e in entries]
    lines += ["", f"This diagnoser scored them {len(own)} time(s); forced re-scores: {len(forced)}."
              + (" Forced: " + "; ".join(f"{e['date']} ({e.get('note', '')})" for e in forced) if forced else "")]
    return "\n".join(lines)


def diagnoser_card(model_dir: Path, evaluation_dir: Path, commands: list[str], training_notes: str = "",
                   ledger: Path | None = None) -> dict:
    """Write the card of the diagnoser in ``model_dir`` from the metrics.json of its sealed evaluation in
    ``evaluation_dir`` (which must have scored these weights)."""
    from diagnose.sealed import LEDGER, model_sha256, read_ledger
    meta = json.loads((Path(model_dir) / "metadata.json").read_text())
    m = json.loads((Path(evaluation_dir) / "metrics.json").read_text())
    if m["model_sha256"] != model_sha256(model_dir):
        raise ValueError(f"{evaluation_dir} scored other weights than {model_dir}/diagnoser.ubj")
    version = meta["version"]
    training = meta["training"]
    cfg = training["config"]
    v = training["validation"]
    shipped = {r["cohort"]: r for r in m["ablation"] if r["model"] == f"{version} (shipped)"}
    by = {(r["cohort"], r["parameter_set"], r["trained_on"]): r for r in m["ablation"]}
    thr = m["shipped_at_threshold"]["matched"][f"{version} (shipped)"]
    dose = m["dose_response"]
    at10 = next((r for r in dose if r["parameter_set"] == "all" and abs(r["rate"] - 0.10) < 1e-9), None)
    limit = m["detection_limit"]
    props_matched = by.get(("matched", "proportions", "matched"))
    truth_matched = by.get(("matched", "true_proportions", "matched"))
    signal = m.get("type_signal", {}).get("matched", {})
    leaders = sorted(signal.items(), key=lambda kv: -abs(kv[1]["stage1_auc"] - 0.5))[:3]
    leak = ", ".join(f"{t} {s['stage1_auc']:.2f} (true {s['truth_auc']:.2f})" for t, s in leaders)
    chosen = next(c for c in v["candidates"] if c["max_depth"] == v["chosen_max_depth"])
    aa_share = m["dysplastic_share"].get("AA", {}).get("neutrophil", {})
    metrics = {
        "AUC, sealed matched cohort (SIMULATED; all 114)": (
            f"{shipped['matched']['auc']:.3f} (95 % CI {_ci(shipped['matched']['auc_lo'], shipped['matched']['auc_hi'])})", ">= 0.95"),
        "sensitivity at 95 % specificity, sealed matched cohort (SIMULATED)": (
            f"{_pct(shipped['matched']['sens'])} (95 % CI {_ci(shipped['matched']['sens_lo'], shipped['matched']['sens_hi'], True)})", ""),
        "sensitivity at 95 % specificity, 10 % MDS dysplasia (SIMULATED matched dose series)": (
            f"{_pct(at10['sens'])} (95 % CI {_ci(at10['sens_lo'], at10['sens_hi'], True)})" if at10 else "n/a", ">= 90 %"),
        "detection limit, sensitivity >= 90 % at 95 % specificity (SIMULATED matched dose series)": (
            f"{100 * limit:g} % dysplastic neutrophils" if limit is not None else
            f"not reached at {100 * max(r['rate'] for r in dose):g} %", "<= 10 %"),
        "true type proportions (simulator's labels) only, AUC on the sealed matched cohort (SIMULATED; proves the design)": (
            f"{truth_matched['auc']:.3f} (95 % CI {_ci(truth_matched['auc_lo'], truth_matched['auc_hi'])})" if truth_matched else "n/a",
            "<= 0.6"),
        "stage-1 type proportions only, AUC on the sealed matched cohort (SIMULATED)": (
            f"{props_matched['auc']:.3f} (95 % CI {_ci(props_matched['auc_lo'], props_matched['auc_hi'])})" if props_matched else "n/a",
            "<= 0.6"),
        "AUC, sealed literature cohort (SIMULATED; all 114)": (
            f"{shipped['literature']['auc']:.3f} (95 % CI {_ci(shipped['literature']['auc_lo'], shipped['literature']['auc_hi'])})"
            if "literature" in shipped else "n/a", ""),
        "sensitivity / specificity at the threshold, sealed matched cohort (SIMULATED)": (
            f"{_pct(thr['sensitivity'])} (exact 95 % CI {_ci(*thr['sensitivity_ci95'], True)}) / {_pct(thr['specificity'])} "
            f"(exact 95 % CI {_ci(*thr['specificity_ci95'], True)})", ""),
        "decision threshold on P(MDS)": (f"{meta['threshold']:.3f}", ""),
    }
    shap_text = ", ".join(f"{p['parameter']} ({p['mean_abs_shap']:.2f})" for p in m["shap_top"]["parameters"][:6])
    sections = {
        "Ablation (sealed test cohorts, SIMULATED)": (
            "Three models per design, each fitted on that design's training cohort and chosen on its validation cohort "
            "(`max_depth` by validation log-loss), scored once on the design's sealed test cohort: the 17 type proportions "
            "only, the 97 feature rates only, all 114 (the other parameters blanked to missing, so XGBoost cannot use "
            "them). Sensitivity at 95 % specificity is read off each cohort's ROC curve (sklearn.metrics.roc_curve). "
            "The shipped diagnoser is the matched, all-114 model; the row of the diagnoser it replaces is its own "
            "scoring on these cohorts (through this machine's stage-1 runtime). The `true_proportions` rows read the "
            "simulator's own type labels instead of the stage-1 model's calls: they show what the design put into the "
            "type mix. The stage-1 type proportions can carry dysplasia even where the true mix carries none, because "
            "a dysplastic cell can be called another type; on the sealed matched cohort the proportions that separate "
            f"the diagnoses most, one at a time (AUC of the stage-1 proportion, true proportion in brackets), are: {leak}."
            "\n\n" + ablation_table(m["ablation"])),
        "Dose-response (sealed matched dose series, SIMULATED)": (
            "The matched design's three models on 100 MDS smears at each dysplasia rate R (the same smears at every "
            "rate: each neutrophil and large platelet is dysplastic with probability R, one feature each) against 100 AA "
            "smears of the same design. The simulated AA smears keep their own entry's dysplasia rates: "
            f"{_pct(aa_share.get('mean'))} of their neutrophils carry a dysplasia label on average (95th percentile of "
            f"smears {_pct(aa_share.get('p95'))}), so MDS smears at a rate below that are less dysplastic than the AA "
            "ones and an AUC below 0.5 there is expected. `dose_response.png` beside this card.\n\n"
            + dose_table(dose, m["dysplastic_share"])
            + f"\n\nDetection limit ({m['detection_rule']}): "
            + (f"**{100 * limit:g} %**." if limit is not None else "**not reached** in the series.")),
        "Intervals": (
            f"{m['interval_method']}; {m['resamples']} resamples, seed {m['sealed_spec']['bootstrap']['seed']}. The "
            "smears of a cohort are built from a limited pool of test-split crops, so the same crop recurs in many "
            "smears; resampling the crops as well as the smears keeps smears that share crops from counting as "
            "independent evidence (the last column of the ablation table gives the narrower smear-only interval). "
            "Independent crops per cohort:\n\n" + crops_table(m["crops"])),
        "Sealed evaluation": (
            "The test cohorts were fixed in `diagnose/sealed_cohorts.yaml` (seeds and sizes, committed before this "
            "diagnoser was trained) and built from test-split crops only. `mdsdx evaluate diagnoser` scores a "
            "diagnoser on them once and refuses a second scoring unless `--force`, which is recorded. "
            + EARLIER_REUSE + "\n\n" + ledger_text(read_ledger(ledger or LEDGER), version)),
        "Comparison": ("Kimura et al. report 96.2 % sensitivity, 100 % specificity and AUC 0.990 on 26 MDS and 11 AA "
                       "patients. The figures above are on SIMULATED cohorts and are not comparable to patients."),
        "Figures": ("`roc.png` (Fig. 4 layout) and `heatmap.png` (Fig. 3 layout, 60 smears) on the sealed matched cohort, "
                    "and `dose_response.png`, beside this card; every one is titled SIMULATED."),
    }
    card = {
        "title": "mdsdx MDS-vs-AA diagnoser (XGBoost on 114 smear parameters)", "version": version,
        "summary": ("XGBoost (Kimura et al. 2019) on the 17 type proportions and 97 feature rates of a smear, computed "
                    "through the stage-1 CNN, trained on SIMULATED smears of the matched design (MDS and AA draw their "
                    "type mix from one distribution, so only dysplasia separates them); Platt-calibrated probability; "
                    "threshold chosen on out-of-fold predictions where the one-sided 95 % Clopper-Pearson lower bound "
                    "of specificity is >= 97 %; tree depth chosen on a validation cohort; TreeSHAP contributions "
                    "(XGBoost's, equal to shap.TreeExplainer). Saved in XGBoost's UBJ format; served through XGBoost's "
                    "C API (diagnose/native_booster.py)."),
        "commands": commands, "training_notes": training_notes,
        "data": (f"SIMULATED cohorts only (mdsdx simulate, {cfg['difficulty']} difficulty), featurized through stage-1 "
                 f"model {training['cellnet']} ({training.get('stage1_runtime', 'default')} runtime). Training: "
                 f"{cfg['train_smears']} smears of the {cfg['design']} design (seed {cfg['train_seed']}); validation: "
                 f"{cfg['val_smears']} smears (seed {cfg['val_seed']}); both from the CNN's validation-split crops "
                 f"(validation AUC {chosen['val_auc']:.3f}, log-loss {chosen['val_log_loss']:.3f} at max_depth "
                 f"{v['chosen_max_depth']}). Sealed test cohorts from test-split crops that no training step saw: "
                 + ", ".join(f"{k} ({c['smears']} smears, seed {c['seed']})" for k, c in m["sealed_spec"]["cohorts"].items())
                 + f", and the dose-response series ({m['sealed_spec']['dose_response']['aa']['smears']} AA smears, "
                   f"seed {m['sealed_spec']['dose_response']['aa']['seed']}; {m['sealed_spec']['dose_response']['mds']['smears']} "
                   f"MDS smears per rate, seed {m['sealed_spec']['dose_response']['mds']['seed']})."),
        "metrics": metrics,
        "sections": sections,
        "intended_use": "Research on MDS screening from peripheral-blood morphology. Not for diagnosing patients.",
        "limits": ("Trained and evaluated on SIMULATED cohorts whose disease distributions are settings "
                   "(simulate/diseases.yaml), not measurements; performance on patients is unknown. In the matched "
                   "design the type mix carries no information by construction, which also removes the excess of "
                   "blasts and immature granulocytes that real MDS can show. The dysplasia the simulator paints is "
                   "what the stage-1 model was trained to see (its transforms), so the dose-response curve bounds "
                   "what the screen could do with real dysplasia only from above. On the sealed matched cohort the "
                   f"largest mean |SHAP| come from: {shap_text} (heatmap.png). Where a feature the matched design "
                   "shares between the diagnoses (vacuoles, Döhle bodies, toxic granulation) carries weight, it is a "
                   "proxy: the stage-1 detector's probability moves with the other neutrophil changes (its Döhle-body "
                   "detector is near chance, cell-level AUC 0.63 on simulated test cells). MDS vs AA only: other cytopenias, "
                   "infection or treatment effects were not modelled."),
        "libraries": meta["libraries"],
    }
    write_card(Path(model_dir), card)
    return card
