"""``geo-segment synth``: a deterministic synthetic county in any supported layout, with its ground truth."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ._common import err_console, handle_errors


class LayoutName(StrEnum):
    """Layouts the generator writes."""

    nc = "nc"
    oh = "oh"
    fl = "fl"
    mi = "mi"
    pa = "pa"


@handle_errors
def synth(
    voters: Annotated[int, typer.Option("--voters", min=1, help="Number of voters.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    layout: Annotated[LayoutName, typer.Option("--layout", help="State layout to write.")] = LayoutName.nc,
    bad_rows: Annotated[int, typer.Option("--bad-rows", min=0, help="Deliberately bad rows to insert.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/synth"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing.")] = False,
) -> None:
    """Generate a synthetic voter file (Providence, RI streets) with vote history, geocodes, signals and truth.

    Example: geo-segment synth --voters 100000 --seed 7 --layout oh --out out/oh
    """
    from geo_segment.pipeline import run_synth

    result = run_synth(out, voters=voters, seed=seed, layout=layout.value, bad_rows=bad_rows)
    if not quiet:
        for role, path in result.outputs.items():
            err_console.print(f"{role:>16}: {path}")
