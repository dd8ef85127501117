"""Tiny, randomly initialised models with the real artifact format, for service and CLI tests.

They exercise every code path of loading, inference, featurizing, XGBoost, SHAP and reports in
seconds; the shipped models' accuracy is measured by `mdsdx evaluate cells` and the slow tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_tiny_models(root: Path) -> dict[str, Path]:
    from diagnose.model import DiagnoserConfig, MdsDiagnoser
    from featurize.smear import parameter_ids
    from models.architecture.akira import build_akira
    from models.architecture.cellnet import CellNetConfig, build_cellnet
    from models.engine.akira.train import AkiraTrainConfig, save_akira
    from models.export.artifact import save_cellnet
    from simulate.cells import simulated_feature_ids
    root = Path(root)
    cfg = CellNetConfig(input_px=32, width=4, middle_width=16, middle_blocks=1, exit_width=32)
    save_cellnet(build_cellnet(cfg), cfg, root / "cellnet",
                 calibration={"type_temperature": 1.0, "feature_temperature": 1.0, "unid_threshold": 0.0},
                 trained_features=simulated_feature_ids(), training={"note": "tiny test model"}, version="cellnet-tiny-test")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.uniform(0, 0.3, (60, 114)), columns=parameter_ids())
    y = np.array([1, 0] * 30)
    X.loc[y == 1, "feat_neu_degranulation"] += 0.3
    MdsDiagnoser(DiagnoserConfig(n_estimators=20, n_folds=3)).fit(X, y).save(root / "diagnoser", version="diagnoser-tiny-test")
    akira_cfg = AkiraTrainConfig(input_px=32, width=4, middle_width=16, middle_blocks=1, init_from_cellnet=None)
    save_akira(build_akira(akira_cfg.net()), akira_cfg, root / "akira", version="akira-tiny-test")
    return {"cellnet": root / "cellnet", "diagnoser": root / "diagnoser", "akira": root / "akira"}
