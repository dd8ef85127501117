"""``mdsdx simulate``: simulated MDS / AA smear cohorts, or a contact sheet of the transforms."""
from __future__ import annotations

from pathlib import Path

import click

from cli.common import out_dir_option, seed_option
from simulate.partition import COHORT_SPLITS


@click.command()
@out_dir_option("Output folder (must be new or empty).", required=False)
@click.option("--smears", type=click.IntRange(min=1), help="Number of smears.")
@seed_option(help="Same seed, same cohort.")
@click.option("--cells", type=click.IntRange(1, 5000), help="Cells per smear (default: 100-200 drawn per smear).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Disease-distribution YAML (default: the shipped simulate/diseases.yaml).")
@click.option("--difficulty", type=click.Choice(["easy", "standard", "hard"]), default="standard", show_default=True)
@click.option("--design", type=click.Choice(["literature", "matched"]), default="literature", show_default=True,
              help="literature: each diagnosis has its own 17-type mix (the mix alone separates them); matched: MDS and "
                   "AA draw the mix from one shared distribution, so only dysplasia differs.")
@click.option("--dysplasia-rate", type=click.FloatRange(0.0, 1.0), default=None,
              help="MDS share of dysplastic cells in each lineage (neutrophils, platelets), e.g. 0.1, for a "
                   "dose-response series; default: the disease entries' rates.")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), help="Folder of crops in pbc/<class>/, marrow/<class>/ layout (default ../shared/data).")
@click.option("--partition", type=click.Choice(sorted(COHORT_SPLITS)), default="test-cohort", show_default=True,
              help="Which real crops to draw: train-cohort (CNN val split), test-cohort (test split), all.")
@click.option("--export-px", type=click.IntRange(64, 1024), help="Resize crops to this size (360 mimics a DI-60 export).")
@click.option("--include-normal", is_flag=True, help="Also make healthy smears (diagnosis 'normal').")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--contact-sheet", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of every feature and grade instead of a cohort.")
@click.option("--mask-sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of the segmentation masks on 32 crops of --mask-source instead of a cohort.")
@click.option("--mask-source", default="marrow/segmented_neutrophil", show_default=True,
              help="Source folder for --mask-sheet, e.g. pbc/band_neutrophil.")
@click.option("--segmenter", type=click.Choice(["pbc", "marrow"]), default="pbc", show_default=True,
              help="Segmenter for --mask-sheet: the peripheral-blood one or the crowded-marrow one.")
def simulate(out, smears, seed, cells, config_file, difficulty, design, dysplasia_rate, source, partition, export_px, include_normal, workers,
             contact_sheet, mask_sheet, mask_source, segmenter) -> None:
    """Make a SIMULATED cohort of smears from real crops (every output says it is simulated)."""
    from core.datasets import default_data_root
    from core.errors import InvalidInput
    source = source or default_data_root()
    if mask_sheet:
        from simulate.cohort import source_frame
        from simulate.contact_sheet import make_mask_sheet
        click.echo(f"wrote {make_mask_sheet(source_frame(Path(source)), mask_source, mask_sheet, seed=seed, segmenter=segmenter)}")
        return
    if contact_sheet:
        from simulate.cohort import source_frame
        from simulate.contact_sheet import make_contact_sheet
        path = make_contact_sheet(source_frame(Path(source)), contact_sheet, seed=seed)
        click.echo(f"wrote {path}")
        return
    if out is None or smears is None:
        raise InvalidInput("--out and --smears are required (or pass --contact-sheet FILE.png)")
    from simulate.cohort import CohortConfig, simulate_cohort
    config = CohortConfig(n_smears=smears, seed=seed, cells_per_smear=cells, difficulty=difficulty, partition=partition,
                          include_normal=include_normal, export_px=export_px, workers=workers, design=design,
                          dysplasia_rate=dysplasia_rate)
    cohort = simulate_cohort(out, config, Path(source), config_file)
    counts = cohort["diagnosis"].value_counts().to_dict()
    click.echo(f"wrote {len(cohort)} simulated smears to {out} ({counts}); ground truth in cohort.csv and cells.csv")
