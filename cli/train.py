"""``mdsdx train cells|diagnosis|attributes|recalibrate|soup|onnx|quantize``: train the shipped models with the project's own code."""
from __future__ import annotations

from pathlib import Path

import click

from cli.common import (check_images_option, cell_model_option, config_option, data_root_option, epochs_option, load_dataclass_config,
                        out_dir_option, seed_option, setup_logging, simulated_dir_option)


def simulated_cells(folder: Path, make_if_missing: bool = False, data_root: str | None = None, seed: int = 0):
    """The simulated cells in ``folder`` with their targets (:func:`simulate.training_set.read_training_set`).
    With ``make_if_missing``, a folder without cells.csv is first filled by the simulator from the
    crops of ``data_root`` (default ../shared/data), each split from its own split."""
    from simulate.training_set import make_training_set, read_training_set
    if make_if_missing and not (folder / "cells.csv").is_file():
        from core.datasets import load_all
        click.echo(f"simulating training cells into {folder}")
        make_training_set(load_all(data_root), folder, seed=seed)
    return read_training_set(folder)


@click.group()
def train() -> None:
    """Train a model from the real crops in ../shared/data and the simulator."""


@train.command("cells")
@out_dir_option()
@config_option()
@data_root_option()
@simulated_dir_option("Reuse simulated cells made before (cells.csv inside).", exists=False)
@epochs_option(type=int)
@click.option("--init-weights", type=click.Path(dir_okay=False, exists=True), help="Start from this weights file.")
@seed_option()
def train_cells(out: Path, config_file: Path | None, data_root, simulated_dir, epochs, init_weights, seed: int) -> None:
    """Train, calibrate and save the stage-1 cell CNN to OUT/cellnet.keras (+ metadata.json)."""
    setup_logging()
    from models.engine.train import TrainConfig, train_cells as run
    config = load_dataclass_config(TrainConfig, config_file, data_root=data_root, simulated_dir=simulated_dir,
                                   epochs=epochs, init_weights=init_weights, seed=seed)
    sim_dir = Path(config.simulated_dir) if config.simulated_dir else Path(out) / "simcells"
    path = run(out, config, simulated_cells(sim_dir, True, config.data_root, config.seed))
    click.echo(f"saved {path}")


@train.command("diagnosis")
@out_dir_option()
@config_option()
@cell_model_option()
@data_root_option()
@click.option("--design", type=click.Choice(["matched", "literature"]), default=None,
              help="Design of the cohorts the diagnoser trains on (default matched: MDS and AA share one type mix).")
def train_diagnosis(out: Path, config_file: Path | None, cell_model, data_root, design) -> None:
    """Simulate training and validation cohorts, featurize them through the stage-1 CNN, fit the MDS-vs-AA
    XGBoost and choose it on validation. Score it with `mdsdx evaluate diagnoser` (sealed test cohorts)."""
    setup_logging()
    from diagnose.train import DiagnosisTrainConfig, train_diagnosis as run
    config = load_dataclass_config(DiagnosisTrainConfig, config_file, cell_model_dir=cell_model, data_root=data_root,
                                   design=design)
    v = run(out, config)
    chosen = next(c for c in v["candidates"] if c["max_depth"] == v["chosen_max_depth"])
    click.echo(f"SIMULATED {config.design} validation cohort: AUC {chosen['val_auc']:.3f}, log-loss "
               f"{chosen['val_log_loss']:.3f} (max_depth {v['chosen_max_depth']}); saved to {out}. "
               f"Score it once on the sealed test cohorts: mdsdx evaluate diagnoser --model {out}")


@train.command("attributes")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@data_root_option()
@click.option("--train-views", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Fit on this many exact views of each train crop (rotations by 90 degrees and flips).")
@click.option("--fit-on-validation", is_flag=True,
              help="After scoring the train-only fit on the validation split, save a head fitted on train and validation.")
def train_attributes(model_dir: Path, data_root, train_views: int, fit_on_validation: bool) -> None:
    """Refit a stage-1 model's WBCAtt attribute head on its frozen embeddings of the train split."""
    setup_logging()
    from models.engine.attribute_head import AttributeHeadConfig, refit_saved
    report = refit_saved(model_dir, data_root, AttributeHeadConfig(train_views=train_views, fit_on_validation=fit_on_validation))
    fitted_on = " and ".join(f"{report['n_' + s]} {s}" for s in report["fit_splits"])
    click.echo(f"attribute head of {model_dir} refitted on {fitted_on} crops: validation mean accuracy "
               f"{report['val_mean_before']:.4f} -> {report['val_mean_after']:.4f} (train-only fit, held out)")


@train.command("recalibrate")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@simulated_dir_option("The simulated cells the model was trained with (cells.csv inside).", required=True)
@data_root_option()
def train_recalibrate(model_dir: Path, simulated_dir, data_root) -> None:
    """Refit a stage-1 model's temperatures, UNID threshold and feature thresholds on its validation split."""
    setup_logging()
    from models.engine.train import TrainConfig, recalibrate_saved
    calibration = recalibrate_saved(model_dir, TrainConfig(simulated_dir=simulated_dir, data_root=data_root),
                                    simulated_cells(Path(simulated_dir)))
    validated = sorted(f for f, v in calibration["feature_thresholds"].items() if v["validated"])
    click.echo(f"recalibrated {model_dir}: type T {calibration['type_temperature']:.3f}, "
               f"UNID below {calibration['unid_threshold']:.3f}, validated features: {', '.join(validated) or 'none'}")


@train.command("soup")
@click.argument("model_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@out_dir_option()
@simulated_dir_option("The simulated cells the models were trained with (cells.csv inside).", required=True)
@data_root_option()
def train_soup(model_dirs: tuple[Path, ...], out: Path, simulated_dir, data_root) -> None:
    """Average the weights of 2 or more stage-1 fine-tunes of one start (MODEL_DIRS), then re-estimate
    batch norm and recalibrate; refit the attribute head after with `mdsdx train attributes OUT`."""
    setup_logging()
    from models.engine.soup import average_saved
    path = average_saved(out, list(model_dirs), simulated_cells(Path(simulated_dir)), simulated_dir=simulated_dir,
                         data_root=data_root)
    click.echo(f"saved {path} (uniform average of {len(model_dirs)} models)")


@train.command("onnx")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def train_onnx(model_dir: Path) -> None:
    """Export MODEL_DIR's Keras model (stage-1 or AKIRA) to ONNX and record it in its metadata.json."""
    setup_logging()
    from models.export.artifact import add_onnx
    path = add_onnx(model_dir)
    click.echo(f"saved {path}")


@train.command("bf16")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@data_root_option()
@click.option("--images", "images_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Check on the crops in this folder instead of the shared data's train split.")
@check_images_option()
def train_bf16(model_dir: Path, data_root, images_dir, check_dir) -> None:
    """Check MODEL_DIR's float ONNX file under the bf16 runtime (OpenVINO) and record it in its metadata.json."""
    setup_logging()
    from cli.cells import find_images
    from models.export.quantize import add_bf16
    images = [str(p) for p in find_images([str(images_dir)])] if images_dir else None
    checks = [str(p) for p in find_images([str(check_dir)])] if check_dir else None
    record = add_bf16(model_dir, data_root=data_root, images=images, check_images=checks)
    click.echo(f"recorded the bf16 runtime of {model_dir / record['onnx']} (agreement with ONNX Runtime's float "
               f"result on {record['checked_on']}: {record['agreement_with_float']})")


@train.command("quantize")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--data-root", type=click.Path(file_okay=False, exists=True), help="Folder with pbc/ and marrow/ (default ../shared/data).")
@click.option("--images", "images_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Calibrate on the crops in this folder instead of the shared data's train split.")
@click.option("--reduce-range/--full-range", default=True, show_default=True,
              help="7-bit weights, right on every x86 CPU; or 8-bit ones, which saturate on CPUs without VNNI.")
@click.option("--calibration", type=click.Choice(["minmax", "percentile"]), default="minmax", show_default=True,
              help="How activation ranges are set: each tensor's extremes, or the 99.999th percentile of its values.")
@check_images_option()
def train_quantize(model_dir: Path, data_root, images_dir, reduce_range: bool, calibration: str, check_dir) -> None:
    """Add an int8 ONNX file to MODEL_DIR (stage-1 or AKIRA), used wherever it passes its agreement check."""
    setup_logging()
    from cli.cells import find_images
    from models.export.quantize import add_int8
    images = [str(p) for p in find_images([str(images_dir)])] if images_dir else None
    checks = [str(p) for p in find_images([str(check_dir)])] if check_dir else None
    record = add_int8(model_dir, data_root=data_root, images=images, reduce_range=reduce_range, calibration=calibration,
                      check_images=checks)
    click.echo(f"saved {model_dir / record['onnx']} (calibrated on {record['calibration']}; "
               f"agreement with the float model: {record['agreement_with_float']})")
