"""``mdsdx taxonomy``: print the 17 cell types and 97 dysmorphic features."""
from __future__ import annotations

import json

import click

from core.taxonomy import load_taxonomy


@click.command()
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="table", show_default=True,
              help="json for programs, table for people.")
def taxonomy(fmt: str) -> None:
    """Print the cell types and features the models use, in output order."""
    tax = load_taxonomy()
    if fmt == "json":
        click.echo(json.dumps(tax.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{len(tax.cell_types)} cell types")
    for t in tax.cell_types:
        click.echo(f"  {t.abbr:<4} {t.id:<22} {t.name}")
    click.echo(f"\n{len(tax.features)} features")
    click.echo(f"  {'id':<34} {'types':<12} {'lineage':<24} {'dysplasia':<9} {'source':<12} name")
    for f in tax.features:
        click.echo(f"  {f.id:<34} {','.join(f.cell_types):<12} {f.lineage:<24} {'yes' if f.dysplasia else 'no':<9} "
                   f"{f.source:<12} {f.name}")
