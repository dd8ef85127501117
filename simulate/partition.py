"""Train/test hygiene: which real crops a cohort may be built from.

The rule: every real crop has one split (``core.datasets.assign_split``). The stage-1 CNN trains
on ``train`` crops and uses ``val`` for early stopping and calibration. Cohorts are built from one
named set of splits:

- ``train-cohort`` = ``val`` crops: diagnosis training cohorts. The CNN's weights never trained on
  them, so their predictions look like those of a new smear.
- ``test-cohort`` = ``test`` crops: independent test cohorts. No training step of any model saw
  them, and no training cohort can draw them.
- ``all``: every crop, for demonstrations or for an external ``--source`` whose crops no model saw.

Simulated training cells for the CNN (:mod:`simulate.training_set`) are made per split, from that
split's crops only.
"""
from __future__ import annotations

COHORT_SPLITS: dict[str, tuple[str, ...]] = {
    "train-cohort": ("val",),
    "test-cohort": ("test",),
    "all": ("train", "val", "test"),
}


def splits_for(partition: str) -> tuple[str, ...]:
    if partition not in COHORT_SPLITS:
        raise ValueError(f"unknown partition {partition!r}; choose one of {sorted(COHORT_SPLITS)}")
    return COHORT_SPLITS[partition]
