"""``geo-segment demo``: ``geo-segment run`` on the embedded sample county."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from geo_segment.config import load_config
from geo_segment.pipeline import run_demo

from ._common import handle_errors
from .run import print_pipeline, run_with_progress


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("out/demo"),
    sample_dir: Annotated[
        Path | None, typer.Option("--sample-dir", help="Folder of the sample county (default: sample_data/).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Settings to use instead of the sample's geo_segment.toml (its inputs stay "
                                      "the sample's unless the file has an [inputs] table)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary tables.")] = False,
) -> None:
    """Run every stage on the sample county (Providence, RI): `geo-segment run sample_data/geo_segment.toml`.

    Example: geo-segment demo --out out/demo
    """
    cfg = load_config(config) if config is not None else None
    result = run_with_progress(partial(run_demo, out, sample_dir=sample_dir, config=cfg), quiet=quiet)
    print_pipeline(result, title="geo-segment demo: Providence County sample", quiet=quiet)
