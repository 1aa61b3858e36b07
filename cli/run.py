"""``geo-segment run`` and ``geo-segment config init``: the whole pipeline from one TOML file."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from geo_segment.runner import PipelineResult, run_pipeline

from ._common import err_console, handle_errors, print_summary

config_app = typer.Typer(help="Write or check a run configuration.", no_args_is_help=True)



def _stages() -> list[Any]:
    from geo_segment.maps.stage import pipeline_stages

    return pipeline_stages()


def run_with_progress(go: Callable[..., PipelineResult], *, quiet: bool) -> PipelineResult:
    """Call ``go(stages=..., progress=...)`` with a live stage list on a terminal (none with --quiet or piped)."""
    stages = _stages()
    if quiet or not err_console.is_terminal:
        return go(stages=stages, progress=None)
    with Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=False) as bar:
        overall = bar.add_task("pipeline", total=len(stages))
        tasks: dict[str, Any] = {}

        def on_event(event: str, stage: str, info: dict[str, Any]) -> None:
            if event == "start":
                tasks[stage] = bar.add_task(f"  {stage}: running", total=1)
                return
            if event == "done":
                bar.update(tasks[stage], description=f"  {stage}: done", completed=1)
            else:
                bar.update(bar.add_task(f"  {stage}: {info.get('status')}", total=1), completed=1)
            bar.advance(overall)

        return go(stages=stages, progress=on_event)


def print_pipeline(result: PipelineResult, *, title: str, quiet: bool) -> None:
    """The per-stage status table (ran, up to date, kept, left out; time; peak memory), then the row summary."""
    if not quiet:
        table = Table(title=f"{title}: stages", title_justify="left")
        for col, justify in (("stage", "left"), ("status", "left"), ("seconds", "right"), ("peak MB", "right"),
                             ("why", "left")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for s in result.statuses:
            table.add_row(s.name, s.status, f"{s.seconds:.1f}" if s.status == "ran" else "",
                          f"{s.peak_rss_mb:,.0f}" if s.peak_rss_mb is not None else "", s.reason or "")
        err_console.print(table)
    print_summary(result, title=title, quiet=quiet)  # type: ignore[arg-type]


@handle_errors
def run(
    config: Annotated[Path, typer.Argument(help="Run configuration (TOML; its [inputs] table names the files).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("out/run"),
    from_stage: Annotated[
        str | None, typer.Option("--from", help="Re-run this stage and every later one (earlier ones kept).")
    ] = None,
    only: Annotated[str | None, typer.Option("--only", help="Re-run this stage alone.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary tables.")] = False,
) -> None:
    """Run every stage (ingest, join, score, cluster, turfs, maps, exports); skip the ones that are up to date.

    Example: geo-segment run geo_segment.toml --out out/nightly
    """
    result = run_with_progress(partial(run_pipeline, config, out, command="run", from_stage=from_stage, only=only),
                               quiet=quiet)
    print_pipeline(result, title="geo-segment run", quiet=quiet)


@config_app.command("init")
@handle_errors
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the configuration.")] = Path("geo_segment.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented configuration with every table and its defaults; fill in [inputs].

    Example: geo-segment config init geo_segment.toml
    """
    from geo_segment.errors import OutputPathError
    from geo_segment.io.atomic import atomic_path

    if path.exists() and not force:
        raise OutputPathError("the configuration file exists", found=str(path),
                              fix="choose another path or pass --force")
    from importlib.resources import files

    template = files("geo_segment") / "data" / "geo_segment.example.toml"
    with atomic_path(path) as tmp:
        tmp.write_bytes(template.read_bytes())
    print(f"wrote {path}: fill in [inputs], then run `geo-segment run {path} --out out/run`", file=sys.stderr)
