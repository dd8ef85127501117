"""The ``mdsdx`` command group. One module per command; heavy imports stay inside the commands."""
from __future__ import annotations

import sys

import click

from core.errors import MdsdxError
from service.cli.cells import cells
from service.cli.diagnose import diagnose
from service.cli.evaluate import evaluate
from service.cli.granules import granules
from service.cli.keys import keys
from service.cli.serve import serve
from service.cli.simulate import simulate
from service.cli.smears import smears
from service.cli.taxonomy import taxonomy
from service.cli.train import train


class MdsdxGroup(click.Group):
    """A click group that turns domain errors into one plain line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MdsdxError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=MdsdxGroup)
@click.version_option(package_name="mdsdx")
def cli() -> None:
    """mdsdx: MDS screening from peripheral-blood cell images (research use only, not a medical device)."""


cli.add_command(cells)
cli.add_command(diagnose)
cli.add_command(evaluate)
cli.add_command(granules)
cli.add_command(keys)
cli.add_command(serve)
cli.add_command(simulate)
cli.add_command(smears)
cli.add_command(taxonomy)
cli.add_command(train)


def main() -> None:
    cli(prog_name="mdsdx")
