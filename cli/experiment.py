"""``geo-segment experiment``: randomized holdouts before launch, honest lift estimates after the election."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from geo_segment.config import ExperimentConfig, load_config
from geo_segment.errors import InputFileError, Location

from ._common import err_console, handle_errors

app = typer.Typer(help="Field experiments: randomized holdouts, power, and lift estimates after the election.",
                  no_args_is_help=True)


def _read(path: Path, what: str) -> Any:
    import geopandas as gpd
    import pandas as pd

    if not path.exists():
        raise InputFileError(f"{what} file not found", where=Location(path), fix="check the path")
    if path.suffix == ".parquet":
        try:
            return gpd.read_parquet(path)
        except ValueError:  # plain Parquet without geometry
            return pd.read_parquet(path)
    return pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])


def _settings(config: Path | None, **overrides: Any) -> ExperimentConfig:
    base = load_config(config).experiment
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


@app.command("design")
@handle_errors
def design(
    voters: Annotated[Path, typer.Option("--voters", help="voters.parquet (after join and score; turfs or cluster "
                                                          "for turf / micro_geo units).")],
    history: Annotated[Path | None, typer.Option("--history", help="vote_history.parquet (past turnout).")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="household, turf, micro_geo or precinct.")] = None,
    holdout_share: Annotated[float | None, typer.Option("--holdout-share", help="Share of units held out.")] = None,
    blocks: Annotated[str | None, typer.Option("--blocks", help="Comma-separated block columns (default "
                                                                "precinct_id; '' for none).")] = None,
    score_col: Annotated[str | None, typer.Option("--score-col", help="Score for strata: auto, none or a column.")
                         ] = None,
    n_strata: Annotated[int | None, typer.Option("--n-strata", help="Score strata.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the randomization.")] = None,
    balance_threshold: Annotated[float | None, typer.Option(
        "--balance-threshold", help="Redraw until every |std diff| is below this; 0 = one draw.")] = None,
    contact_rate: Annotated[float | None, typer.Option(
        "--contact-rate", help="Expected share of assigned households reached (power summary).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([experiment] table).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/experiment"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Randomize units into treatment and holdout within blocks; write design.json (with its SHA-256),
    assignment.csv, balance.csv, blocks.csv and power.json.

    Example: geo-segment experiment design --voters out/demo/voters.parquet --history out/demo/vote_history.parquet
    --holdout-share 0.1 --seed 7 --out out/experiment
    """
    from geo_segment.experiments import design_experiment

    cfg = _settings(config, unit=unit, holdout_share=holdout_share, blocks=_split(blocks), score_col=score_col,
                    n_strata=n_strata, seed=seed, balance_threshold=balance_threshold, contact_rate=contact_rate)
    v = _read(voters, "voters")
    h = _read(history, "vote history") if history is not None else None
    d = design_experiment(
        v, unit=cfg.unit, holdout_share=cfg.holdout_share, blocks=cfg.blocks, score_col=cfg.score_column(v.columns),
        n_strata=cfg.n_strata, seed=cfg.seed, history=h, covariates=cfg.covariates or "auto",
        balance_threshold=cfg.balance_threshold or None, max_draws=cfg.max_draws,
        min_block_units=cfg.min_block_units or None, icc=cfg.icc, base_rate=cfg.base_rate,
        contact_rate=cfg.contact_rate, alpha=cfg.alpha, target_power=cfg.power,
    )
    paths = d.save(out)
    if quiet:
        return
    a = d.assignment
    held = int((a["arm"] == "holdout").sum())
    err_console.print(
        f"experiment design: {len(a):,} {cfg.unit} units ({int(a['n_voters'].sum()):,} voters) in "
        f"{len(d.blocks):,} blocks; {held:,} units held out ({held / len(a):.1%}); seed {cfg.seed}")
    err_console.print(
        f"balance: largest |standardized difference| {d.check['max_abs_std_diff']:.3f} over "
        f"{', '.join(d.params['covariates']) or 'no covariates'} (randomization check p = {d.check['p_value']:.2f})")
    err_console.print(escape(f"power: {d.power.sentence()}"))
    err_console.print(f"design SHA-256 {d.content_sha256}")
    err_console.print(f"wrote {len(paths)} files to {out}")


@app.command("analyze")
@handle_errors
def analyze(
    design: Annotated[Path, typer.Option("--design", help="design.json (or its folder) from `experiment design`.")],
    history: Annotated[Path | None, typer.Option(
        "--history", help="The updated vote history (after the election), with --outcome-election.")] = None,
    outcome_election: Annotated[str | None, typer.Option(
        "--outcome-election", help="Date of the election to measure (YYYY-MM-DD).")] = None,
    outcomes: Annotated[Path | None, typer.Option(
        "--outcomes", help="Instead of a vote history: a CSV/Parquet of voter_id and --outcome-col (surveys).")] = None,
    outcome_col: Annotated[str, typer.Option("--outcome-col", help="Outcome column of --outcomes.")] = "outcome",
    voters: Annotated[Path | None, typer.Option(
        "--voters", help="The voters.parquet the design was drawn from (covariates, household contacts).")] = None,
    roll: Annotated[Path | None, typer.Option(
        "--roll", help="The updated voter file: design voters missing from it have no outcome (attrition).")] = None,
    contacts: Annotated[Path | None, typer.Option(
        "--contacts", help="contact_history.parquet from `geo-segment results import` (effect on the contacted).")
                        ] = None,
    ri_draws: Annotated[int | None, typer.Option("--ri-draws", help="Randomization-inference draws.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the randomization-inference draws.")] = 0,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([experiment] table).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/experiment/analysis"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Estimate the lift by assigned arm (ITT, cluster-robust and randomization inference; CACE with contacts);
    write report.md, lift.png, analysis.json and the tables.

    Example: geo-segment experiment analyze --design out/experiment --voters out/demo/voters.parquet
    --history updated_history.parquet --outcome-election 2026-11-03 --contacts out/demo/contact_history.parquet
    """
    from geo_segment.experiments import analyze_experiment, load_design, write_report

    cfg = _settings(config, ri_draws=ri_draws)
    d = load_design(design)
    if (history is None) == (outcomes is None):
        raise InputFileError("give exactly one of --history (with --outcome-election) and --outcomes",
                             fix="pass the updated vote history, or a table of outcomes")
    table = _read(history, "vote history") if history is not None else _read(outcomes, "outcomes")  # type: ignore[arg-type]
    if outcomes is not None and outcome_col in table.columns:
        import pandas as pd

        table[outcome_col] = pd.to_numeric(table[outcome_col], errors="coerce")
    v = _read(voters, "voters") if voters is not None else None
    roll_ids = _read(roll, "voter file")["voter_id"].astype(str) if roll is not None else None
    c = _read(contacts, "contact history") if contacts is not None else None
    res = analyze_experiment(d, v, table, outcome_election=outcome_election, outcome_col=outcome_col,
                             roll=roll_ids, contacts=c, contact_codes=cfg.contact_codes, ri_draws=cfg.ri_draws,
                             seed=seed, alpha=cfg.alpha)
    paths = write_report(res, d, out)
    if quiet:
        return
    o = res.overall
    err_console.print(escape(
        f"ITT {100 * o['itt']:+.2f} points ({o['confidence']:.0%} CI {100 * o['ci_low']:+.2f} to "
        f"{100 * o['ci_high']:+.2f}; p = {o['p_value']:.3f}; randomization p = {o.get('ri_p_value', float('nan')):.3f})"
        f" on {o['n_observed']:,} of {o['n_voters']:,} voters"))
    if "cace" in o:
        err_console.print(escape(
            f"effect on the contacted (CACE) {100 * o['cace']:+.2f} points ({100 * o['cace_ci_low']:+.2f} to "
            f"{100 * o['cace_ci_high']:+.2f}); contact rate {o['contact_rate_treatment']:.1%} treatment, "
            f"{o['contact_rate_holdout']:.1%} holdout"))
    for note in res.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    err_console.print(f"wrote {len(paths)} files to {out} (report.md)")


@app.command("power")
@handle_errors
def power_cmd(
    voters: Annotated[int, typer.Option("--voters", help="Voters in the experiment.")],
    cluster_size: Annotated[float, typer.Option("--cluster-size", help="Mean voters per unit.")] = 1.5,
    icc: Annotated[float, typer.Option("--icc", help="Intra-cluster correlation of the outcome.")] = 0.3,
    base_rate: Annotated[float, typer.Option("--base-rate", help="Expected outcome rate without the program.")
                         ] = 0.5,
    holdout_share: Annotated[float, typer.Option("--holdout-share", help="Share held out.")] = 0.1,
    contact_rate: Annotated[float, typer.Option("--contact-rate", help="Share of assigned units reached.")] = 1.0,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = 0.05,
    target_power: Annotated[float, typer.Option("--power", help="Target power.")] = 0.8,
) -> None:
    """Print the minimum detectable effect of a planned experiment (stdout: one line of JSON).

    Example: geo-segment experiment power --voters 20000 --cluster-size 1.6 --icc 0.4 --base-rate 0.55
    """
    import json

    from geo_segment.experiments import power

    r = power(voters, cluster_size=cluster_size, icc=icc, base_rate=base_rate, holdout_share=holdout_share,
              contact_rate=contact_rate, alpha=alpha, power=target_power)
    err_console.print(escape(r.sentence()))
    typer.echo(json.dumps(r.to_dict()))
