"""``geo-segment ingest``: voter files, signals and precincts into the column contract."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from geo_segment.io.atomic import write_parquet
from geo_segment.io.manifest import Manifest
from geo_segment.pipeline import RunResult, _write_rejects, ingest_voters

from ._common import handle_errors, print_summary

app = typer.Typer(help="Read input files into the column contract.", no_args_is_help=True)


class DuplicatePolicy(StrEnum):
    """What to do with a voter id on several rows."""

    error = "error"
    keep_latest = "keep-latest"


@app.command("voters")
@handle_errors
def voters(
    file: Annotated[Path, typer.Argument(help="The voter file.")],
    layout: Annotated[str, typer.Option("--layout", help="nc, oh, fl, mi, pa or a mapping .toml file.")] = "nc",
    history: Annotated[Path | None, typer.Option("--history", help="Vote-history file (NC, FL, MI).")] = None,
    geocodes: Annotated[
        Path | None, typer.Option("--geocodes", help="CSV of voter_id, latitude, longitude from a geocoder.")
    ] = None,
    election_map: Annotated[Path | None, typer.Option("--election-map", help="PA county Election Map.")] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="Text encoding (default strict UTF-8), e.g. latin-1.")
    ] = None,
    duplicates: Annotated[
        DuplicatePolicy, typer.Option("--duplicates", help="error, or keep-latest registration.")
    ] = DuplicatePolicy.error,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/ingest"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Read a voter file (and its history and geocodes) into voters.parquet and vote_history.parquet.

    Example: geo-segment ingest voters ncvoter.txt --history ncvhis.txt --geocodes geocodes.csv --layout nc --out out/
    """
    result = ingest_voters(
        file, out, layout=layout, history=history, geocodes=geocodes, election_map=election_map,
        encoding=encoding, duplicates=duplicates.value,
    )
    print_summary(result, title=f"geo-segment ingest voters ({layout})", quiet=quiet)


@app.command("signals")
@handle_errors
def signals(
    file: Annotated[Path, typer.Argument(help="Signals CSV or Parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/ingest"),
    encoding: Annotated[str, typer.Option("--encoding", help="Text encoding.")] = "utf-8",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Read location signals (pings, check-ins, RSVPs, web visits...) into signals.parquet.

    Example: geo-segment ingest signals signals.csv --out out/
    """
    from geo_segment.io.signals import read_signals

    man = Manifest(command="ingest signals", parameters={"encoding": encoding})
    man.add_input("signals", file)
    read = read_signals(file, encoding=encoding)
    man.add_stage(read.stage)
    outputs = {"signals": write_parquet(read.signals, out / "signals.parquet"),
               "rejects": _write_rejects([read.rejects], out)}
    man.outputs = [p.name for p in outputs.values()]
    outputs["manifest"] = man.write(out)
    print_summary(RunResult(out, man, outputs), title="geo-segment ingest signals", quiet=quiet)


@app.command("precincts")
@handle_errors
def precincts(
    file: Annotated[str, typer.Argument(help="Any OGR source: GeoJSON, zipped Shapefile, GeoPackage, GeoParquet.")],
    id_col: Annotated[str, typer.Option("--id-col", help="Column holding the precinct id.")] = "precinct_id",
    layer: Annotated[str | None, typer.Option("--layer", help="Layer name (GeoPackage).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/ingest"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Read precinct polygons: repair invalid ones, report overlaps and gaps, write precincts.parquet.

    Example: geo-segment ingest precincts precincts.geojson --id-col PRECINCT --out out/
    """
    from geo_segment.io.precincts import read_precincts

    t0 = time.perf_counter()
    man = Manifest(command="ingest precincts", parameters={"id_col": id_col, "layer": layer})
    if Path(file).exists():
        man.add_input("precincts", file)
    read = read_precincts(file, id_col=id_col, layer=layer)
    read.stage.seconds = read.stage.seconds or round(time.perf_counter() - t0, 3)
    man.add_stage(read.stage)
    outputs = {"precincts": write_parquet(read.precincts, out / "precincts.parquet"),
               "rejects": _write_rejects([read.rejects], out)}
    man.outputs = [p.name for p in outputs.values()]
    outputs["manifest"] = man.write(out)
    print_summary(RunResult(out, man, outputs), title="geo-segment ingest precincts", quiet=quiet)
