"""Entry point of the ``geo-segment`` command: one Typer app, one file per command group."""

from __future__ import annotations

import os
from typing import Annotated

# OpenMP threads (gradient boosting) spin while they wait by default: two runs at once on a small machine then
# take several times longer than one after the other (measured in benchmarks/pipeline.py). Waiting threads that
# sleep cost little alone and keep concurrent runs fair. Set before any OpenMP library loads; a user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer

from geo_segment import __version__

from . import experiment, export, ingest, maps
from .demo import demo
from .join import join
from .run import config_app, run
from .score import cluster, score
from .synth import synth
from .turfs import results_app, turfs, walklist

app = typer.Typer(
    name="geo-segment",
    help="Geo-segmentation for field campaigns: voter files, precincts, H3 cells, turfs, maps and audiences.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command("demo")(demo)
app.command("run")(run)
app.add_typer(config_app, name="config")
app.command("synth")(synth)
app.command("join")(join)
app.command("score")(score)
app.command("cluster")(cluster)
app.add_typer(ingest.app, name="ingest")
app.add_typer(export.app, name="export")
app.add_typer(maps.app, name="map")
app.command("turfs")(turfs)
app.command("walklist")(walklist)
app.add_typer(results_app, name="results")
app.add_typer(experiment.app, name="experiment")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"geo-segment {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Geo-segmentation for field campaigns."""


def main() -> None:
    """Run the CLI."""
    app()
