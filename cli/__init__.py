"""The ``mdsdx`` command line, beside the service: one click group, one module per command, shared
options in :mod:`cli.common`. Heavy imports stay inside the commands, so ``mdsdx --help`` answers at once."""
from __future__ import annotations

import sys

import click

from cli.cells import cells
from cli.diagnose import diagnose
from cli.evaluate import evaluate
from cli.granules import granules
from cli.keys import keys
from cli.serve import serve
from cli.simulate import simulate
from cli.smears import smears
from cli.taxonomy import taxonomy
from cli.train import train
from core.errors import MdsdxError


class MdsdxGroup(click.Group):
    """A click group that turns domain errors into one plain line: exit code 1 when some inputs of a
    batch failed (:class:`~core.errors.SomeInputsFailed`, whose output says which), 2 otherwise."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MdsdxError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))


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
