"""``geo-segment demo``: every stage that exists, on the embedded sample county."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geo_segment.config import load_config
from geo_segment.pipeline import run_demo

from ._common import handle_errors, print_summary


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("out/demo"),
    sample_dir: Annotated[
        Path | None, typer.Option("--sample-dir", help="Folder of the sample county (default: sample_data/).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Configuration TOML (default: the sample's geo_segment.toml).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Run the pipeline on the sample county (Providence, RI) and print rows in/out/rejected per stage.

    Example: geo-segment demo --out out/demo
    """
    result = run_demo(out, sample_dir=sample_dir, config=load_config(config) if config is not None else None)
    print_summary(result, title="geo-segment demo: Providence County sample", quiet=quiet)
