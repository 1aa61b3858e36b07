"""``geo-segment score`` and ``geo-segment cluster``: engagement scores, then micro-geographies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geo_segment.config import load_config
from geo_segment.pipeline import run_cluster, run_score

from ._common import handle_errors, print_summary


@handle_errors
def score(
    voters: Annotated[Path, typer.Option("--voters", help="voters.parquet from `geo-segment join`.")],
    history: Annotated[Path, typer.Option("--history", help="vote_history.parquet from `geo-segment ingest`.")],
    signals: Annotated[Path | None, typer.Option("--signals", help="signals.parquet from `geo-segment join`.")] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Score with this saved model.joblib instead of training one; voters whose "
                                     "features differ from the model's are refused."),
    ] = None,
    lookalike: Annotated[
        Path | None, typer.Option("--lookalike", help="CSV of seed voter ids (a voter_id column) for lookalikes.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([scores] table).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/score"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Add engagement_score, propensity and lookalike_score to voters; save the model and its calibration plot.

    Example: geo-segment score --voters out/nc/voters.parquet --history out/nc/vote_history.parquet --out out/nc
    """
    result = run_score(voters, history, out, signals=signals, config=load_config(config), model=model,
                       seeds=lookalike)
    print_summary(result, title="geo-segment score", quiet=quiet)


@handle_errors
def cluster(
    voters: Annotated[Path, typer.Option("--voters", help="Scored voters.parquet from `geo-segment score`.")],
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([cluster] table).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/cluster"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Cluster high-likelihood voters into micro-geographies; write micro_geos.parquet and label voters.

    Example: geo-segment cluster --voters out/nc/voters.parquet --config geo_segment.toml --out out/nc
    """
    result = run_cluster(voters, out, config=load_config(config))
    print_summary(result, title="geo-segment cluster", quiet=quiet)
