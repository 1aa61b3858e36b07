"""What every command shares: error translation, the summary table, console handles."""

from __future__ import annotations

import contextvars
import os
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from geo_segment.errors import GeoSegmentError, GeoSegmentWarning
from geo_segment.pipeline import RunResult, stage_table

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

#: documented exit codes (docs/cli.md)
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


_pending: contextvars.ContextVar[list[warnings.WarningMessage]] = contextvars.ContextVar("pending_warnings")


def _flush_warnings() -> None:
    """Print data warnings caught so far as one line each (once)."""
    caught = _pending.get([])
    pending = list(caught)
    caught.clear()  # inside catch_warnings(record=True), showing a warning records it again: never loop on it
    for w in pending:
        if issubclass(w.category, GeoSegmentWarning):
            err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}", markup=True, highlight=False)
        else:
            err_console.print(escape(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)).rstrip(),
                              markup=False, highlight=False)


def handle_errors(func: F) -> F:
    """Turn library errors into one clear line on stderr and their exit code; never print locals or data."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", GeoSegmentWarning)
                token = _pending.set(caught)
                try:
                    return func(*args, **kwargs)
                finally:
                    _flush_warnings()
                    _pending.reset(token)
        except GeoSegmentError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("GEO_SEGMENT_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__} in {func.__name__}; rerun with "
                "GEO_SEGMENT_DEBUG=1 for the traceback and report it (the message is hidden because it may quote "
                "voter data)",
                markup=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def print_summary(result: RunResult, *, title: str, quiet: bool = False) -> None:
    """Print rows in / out / rejected per stage on stderr, and where the outputs went."""
    _flush_warnings()
    if quiet:
        return
    table = Table(title=title, title_justify="left")
    for col, justify in (("stage", "left"), ("rows in", "right"), ("out", "right"), ("rejected", "right"),
                         ("dropped", "right"), ("balanced", "center"), ("seconds", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in stage_table(result):
        table.add_row(
            row["stage"], f"{row['rows_in']:,}", f"{row['rows_out']:,}", f"{row['rows_rejected']:,}",
            f"{row['other']:,}" if row["other"] else "", "yes" if row["balanced"] else "[red]NO[/]",
            f"{row['seconds']:.2f}",
        )
    err_console.print(table)
    for stage in result.stages:
        if stage.name == "voters":
            m = stage.metrics
            err_console.print(
                f"voters: {stage.rows_in:,} rows in = {stage.rows_out:,} voters + {stage.rows_rejected:,} rejects; "
                f"{m.get('geocoded', 0):,} geocoded, {m.get('not_geocoded', 0):,} not geocoded (kept, flagged); "
                f"{m.get('households', 0):,} households in {m.get('buildings', 0):,} buildings"
            )
        if stage.name == "join":
            m = stage.metrics
            err_console.print(
                f"join: {m.get('within', 0):,} within, {m.get('boundary', 0):,} on a boundary or overlap, "
                f"{m.get('nearest', 0):,} nearest within {m.get('tolerance_m', 0):g} m, {m.get('unassigned', 0):,} "
                f"unassigned ({m.get('not_geocoded', 0):,} of them not geocoded)"
            )
        if stage.name == "aggregate":
            m = stage.metrics
            err_console.print(
                f"aggregates: {m.get('cells', 0):,} H3 cells ({m.get('cells_suppressed', 0):,} suppressed below "
                f"{m.get('k_min')} voters), {m.get('precincts', 0):,} precincts "
                f"({m.get('precincts_suppressed', 0):,} suppressed)"
            )
        if stage.name == "score":
            m = stage.metrics
            if "roc_auc" in m:
                err_console.print(
                    f"score: propensity model ({m.get('model')}) labelled by the {m.get('label_election')} election: "
                    f"ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m.get('pr_auc', 0):.3f}, Brier {m.get('brier', 0):.3f}, "
                    f"ECE {m.get('ece', 0):.3f} (cross-validated)"
                )
    n = len(set(result.manifest.outputs) | {"manifest.json"})
    err_console.print(f"wrote {n} outputs to {result.out_dir} (see manifest.json)")
    sys.stderr.flush()
