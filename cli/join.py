"""``geo-segment join``: H3 cells and exactly one precinct per voter, then aggregates per cell and precinct."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geo_segment.config import load_config
from geo_segment.pipeline import run_join

from ._common import handle_errors, print_summary


@handle_errors
def join(
    voters: Annotated[
        str, typer.Option("--voters", help="voters.parquet from `geo-segment ingest voters` (dask: a folder or glob).")
    ],
    precincts: Annotated[str, typer.Option("--precincts", help="Precinct polygons (any OGR source).")],
    id_col: Annotated[str, typer.Option("--id-col", help="Column holding the precinct id.")] = "precinct_id",
    history: Annotated[Path | None, typer.Option("--history", help="vote_history.parquet.")] = None,
    signals: Annotated[Path | None, typer.Option("--signals", help="signals.parquet.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([join] table).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="local, or dask (partitioned; see docs/scale.md).")] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="dask.distributed scheduler address (with --engine dask).")
    ] = None,
    npartitions: Annotated[
        int | None, typer.Option("--npartitions", help="Dask partitions (with --engine dask).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/join"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Add h3_cell, precinct_id and precinct_method to voters; write cells.parquet and precincts.parquet.

    Example: geo-segment join --voters out/nc/voters.parquet --precincts p.geojson --id-col PRECINCT --out out/nc
    """
    result = run_join(voters, precincts, out, id_col=id_col, history=history, signals=signals,
                      config=load_config(config), engine=engine, address=address, npartitions=npartitions)
    print_summary(result, title="geo-segment join", quiet=quiet)
