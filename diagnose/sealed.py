"""The sealed test cohorts of the diagnoser (``sealed_cohorts.yaml``) and the ledger of their scorings.

The cohorts are SIMULATED from test-split crops with seeds written into the repository before the
diagnoser that scores them was trained. Each diagnoser, identified by the SHA-256 of its
``diagnoser.ubj``, scores them once: :func:`check_unscored` refuses a second scoring unless forced,
and :func:`record_scoring` appends every scoring (forced or not) to ``sealed_ledger.jsonl``, which the
diagnoser's card reads.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import yaml

from core.errors import InvalidInput
from simulate.cohort import CohortConfig

LEDGER = Path(__file__).resolve().parent / "sealed_ledger.jsonl"


@dataclass(frozen=True)
class SealedCohort:
    """One sealed cohort: its name (the folder it is built in), its simulator settings, and for a
    dose-response cohort the MDS dysplasia rate."""
    name: str
    config: CohortConfig
    role: str                          # "ablation" or "dose_response"
    dysplasia_rate: float | None = None


def load_sealed_spec(path: Path | None = None) -> dict:
    """The parsed ``sealed_cohorts.yaml`` (shipped beside this module, or a file of the same form)."""
    text = Path(path).read_text() if path else resources.files("diagnose").joinpath("sealed_cohorts.yaml").read_text()
    return yaml.safe_load(text)


def dose_cohort_name(rate: float) -> str:
    return f"dose_mds_{rate:g}"


def sealed_cohorts(spec: dict | None = None, workers: int = 2) -> list[SealedCohort]:
    """Every sealed cohort of the spec: the ablation cohorts, then the dose-response AA cohort and one
    MDS cohort per rate."""
    spec = spec or load_sealed_spec()
    common = {"partition": spec["partition"], "difficulty": spec["difficulty"], "workers": workers,
              "cells_per_smear": spec.get("cells_per_smear")}
    out = [SealedCohort(name, CohortConfig(n_smears=c["smears"], seed=c["seed"], design=c["design"], **common), "ablation")
           for name, c in spec["cohorts"].items()]
    dose = spec.get("dose_response")
    if dose:
        out.append(SealedCohort("dose_aa", CohortConfig(n_smears=dose["aa"]["smears"], seed=dose["aa"]["seed"],
                                                        design=dose["design"], mds_fraction=0.0, **common), "dose_response"))
        for rate in dose["rates"]:
            out.append(SealedCohort(dose_cohort_name(rate), CohortConfig(
                n_smears=dose["mds"]["smears"], seed=dose["mds"]["seed"], design=dose["design"], mds_fraction=1.0,
                dysplasia_rate=float(rate), **common), "dose_response", float(rate)))
    return out


def build_sealed_cohorts(cohorts_dir: Path, source: Path, spec: dict | None = None, workers: int = 2) -> dict[str, Path]:
    """Simulate every sealed cohort not yet in ``cohorts_dir`` (deterministic: the same seeds give the
    same smears) and return name -> folder. Building is not scoring: nothing is recorded."""
    from simulate.cohort import simulate_cohort
    cohorts_dir = Path(cohorts_dir)
    folders = {}
    for c in sealed_cohorts(spec, workers):
        folder = cohorts_dir / c.name
        if not (folder / "cohort.csv").is_file():
            simulate_cohort(folder, c.config, source)
        folders[c.name] = folder
    return folders


def model_sha256(model_dir: Path) -> str:
    return hashlib.sha256((Path(model_dir) / "diagnoser.ubj").read_bytes()).hexdigest()


def read_ledger(ledger: Path = LEDGER) -> list[dict]:
    """Every recorded scoring, oldest first."""
    if not Path(ledger).is_file():
        return []
    return [json.loads(line) for line in Path(ledger).read_text().splitlines() if line.strip()]


def check_unscored(sha256: str, cohort_names: list[str], spec: dict, force: bool, ledger: Path = LEDGER) -> list[dict]:
    """The earlier scorings of these cohorts (same seeds) by the model ``sha256``; InvalidInput when
    there are any and ``force`` is False."""
    seeds = {c.name: c.config.seed for c in sealed_cohorts(spec)}
    earlier = [e for e in read_ledger(ledger)
               if e["model_sha256"] == sha256 and any(seeds.get(n) == s for n, s in e["cohorts"].items() if n in cohort_names)]
    if earlier and not force:
        when = ", ".join(e["date"] for e in earlier)
        raise InvalidInput(f"this diagnoser (sha256 {sha256[:12]}) already scored the sealed test cohorts ({when}); "
                           "a sealed cohort is scored once per diagnoser. Pass --force to score it again; the re-score "
                           "is recorded in diagnose/sealed_ledger.jsonl and in the diagnoser's card")
    return earlier


def record_scoring(model_version: str, sha256: str, cohorts: dict[str, int], forced: bool, note: str = "",
                   ledger: Path = LEDGER) -> dict:
    """Append one scoring (cohort name -> seed) to the ledger and return the entry."""
    entry = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model_version": model_version,
             "model_sha256": sha256, "cohorts": cohorts, "forced": bool(forced), "note": note}
    with open(ledger, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    return entry
