"""``geo-segment export``: geofences and hashed customer lists for ad platforms, behind the guardrails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from geo_segment.config import ExportConfig, load_config
from geo_segment.errors import ConfigError, InputFileError, Location

from ._common import err_console, handle_errors

app = typer.Typer(help="Export geofences and hashed customer lists for ad platforms.", no_args_is_help=True)

SUPPRESS_HELP = "Suppression list (CSV/Parquet with voter_id, household_id, email or phone); repeat."
PURPOSE_HELP = "Why the data is used: election, political, issue or research (required here or in [export])."


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def _settings(config: Path | None, **overrides: Any) -> ExportConfig:
    """[export] from the configuration file, with the options given on the command line over it."""
    import dataclasses

    base = load_config(config).export
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _read_frame(path: Path, what: str) -> Any:
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


@app.command("geofences")
@handle_errors
def geofences(
    polygons: Annotated[Path, typer.Argument(help="Polygons: micro_geos.parquet, turfs.parquet, precincts or any "
                                                  "OGR file (GeoJSON, GeoPackage, Shapefile, KML).")],
    id_col: Annotated[str, typer.Option("--id-col", help="Column naming each fence.")],
    purpose: Annotated[str | None, typer.Option("--purpose", help=PURPOSE_HELP)] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="generic, google_ads, dv360, meta, microsoft, aws, tradedesk, simplifi or eltoro.")] = None,
    formats: Annotated[str | None, typer.Option(
        "--format", help="Comma-separated: geojson,kml,wkt,radius,h3,zip,precinct (default: all in [export]).")] = None,
    voters: Annotated[Path | None, typer.Option(
        "--voters", help="voters.parquet: residents (lower bound), ZIP / precinct lists, state rules.")] = None,
    population: Annotated[Path | None, typer.Option(
        "--population", help="Census blocks with a population column, for residents per fence.")] = None,
    population_col: Annotated[str, typer.Option("--population-col", help="Population column.")] = "TOTPOP",
    residents_col: Annotated[str | None, typer.Option(
        "--residents-col", help="Column of the polygons holding residents (e.g. TOTPOP).")] = None,
    min_residents: Annotated[int | None, typer.Option(
        "--min-residents", help="Minimum residents per fence (default: the target's, 1,000).")] = None,
    on_small: Annotated[str | None, typer.Option(
        "--on-small", help="error (default) or skip: leave out fences below the minimum and report them.")] = None,
    simplify: Annotated[bool | None, typer.Option(
        "--simplify/--no-simplify", help="Simplify rings over the vertex limit (shared borders kept).")] = None,
    clamp_radius: Annotated[bool | None, typer.Option(
        "--clamp-radius/--no-clamp-radius", help="Clamp radii into the target's range instead of failing.")] = None,
    h3_resolution: Annotated[int | None, typer.Option("--h3-resolution", help="Resolution of H3 lists.")] = None,
    max_vertices: Annotated[int | None, typer.Option(
        "--max-vertices", help="Vertex limit per ring (targets without a public spec).")] = None,
    suppress: Annotated[list[Path] | None, typer.Option(
        "--suppress", help=SUPPRESS_HELP)] = None,
    name: Annotated[str, typer.Option("--name", help="File name stem inside --out.")] = "fences",
    layer: Annotated[str | None, typer.Option("--layer", help="Layer of a multi-layer polygon file.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([export] table).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/exports"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Write geofences for an ad platform, checked against its limits and the guardrails.

    Example: geo-segment export geofences out/demo/precincts.parquet --id-col precinct_id --residents-col TOTPOP
    --purpose political --target google_ads --format geojson,kml,radius --clamp-radius --out out/exports
    """
    import dataclasses

    import geopandas as gpd

    from geo_segment.exports.geofences import export_geofences, read_fences
    from geo_segment.exports.guardrails import load_suppression
    from geo_segment.exports.platforms import load_rules
    from geo_segment.io.manifest import sha256_file

    cfg = _settings(config, purpose=purpose, target=target, formats=_split(formats), min_residents=min_residents,
                    on_small=on_small, simplify=simplify, clamp_radius=clamp_radius, h3_resolution=h3_resolution,
                    max_vertices=max_vertices, suppression_files=tuple(str(p) for p in suppress) if suppress else None)
    if formats is None and voters is None:  # ZIP and precinct lists need voters: leave them out of the default
        cfg = dataclasses.replace(cfg, formats=tuple(f for f in cfg.formats if f not in ("zip", "precinct")))
    if polygons.suffix == ".parquet" and polygons.exists():
        fences, closed = gpd.read_parquet(polygons), 0
    else:
        fences, closed = read_fences(polygons, id_col=id_col, layer=layer)
    inputs = [{"role": "polygons", "path": str(polygons), "sha256": sha256_file(polygons)}]
    vot = pop = None
    if voters is not None:
        vot = _read_frame(voters, "voters")
        inputs.append({"role": "voters", "path": str(voters), "sha256": sha256_file(voters)})
    if population is not None:
        pop = gpd.read_parquet(population) if population.suffix == ".parquet" else gpd.read_file(population)
        inputs.append({"role": "population", "path": str(population), "sha256": sha256_file(population)})
    supp = load_suppression(cfg.suppression_files, default_region=cfg.default_region) \
        if cfg.suppression_files else None
    result = export_geofences(
        fences, out, id_col=id_col, purpose=cfg.purpose, target=cfg.target, formats=cfg.formats, name=name,
        voters=vot, population=pop, population_col=population_col, residents_col=residents_col,
        min_residents=cfg.min_residents, on_small=cfg.on_small, simplify=cfg.simplify,
        clamp_radius=cfg.clamp_radius, max_overshoot=cfg.max_overshoot, max_circles=cfg.max_circles,
        h3_resolution=cfg.h3_resolution, suppression=supp, default_region=cfg.default_region,
        limits={"max_vertices": cfg.max_vertices, "max_fences": cfg.max_fences},
        rules=load_rules(cfg.platforms_file), inputs=inputs, config={"closed_rings": closed},
    )
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", markup=True)
    if quiet:
        return
    c = result.counts
    err_console.print(
        f"geofences for {cfg.target}: {c['fences_in']:,} in, {c['fences_out']:,} written, "
        f"{c['refused_small']:,} below {c['min_residents']:,} residents ({c['residents_method']}), "
        f"{c['empty_dropped']:,} empty; repairs: {closed} rings closed, "
        + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in c["repairs"].items() if k != "empty_dropped")
    )
    if c.get("suppressed"):
        err_console.print(f"suppressed: {c['suppressed']:,} voters removed before counting and listing")
    for fmt, path in result.files.items():
        err_console.print(f"  {fmt}: {path}")
    err_console.print(f"audit: {result.audit}")


@app.command("audience")
@handle_errors
def audience(
    voters: Annotated[Path, typer.Argument(help="voters.parquet (or CSV) holding the identifiers.")],
    platform: Annotated[str, typer.Option("--platform", help="meta or google.")],
    purpose: Annotated[str | None, typer.Option("--purpose", help=PURPOSE_HELP)] = None,
    universe: Annotated[list[Path] | None, typer.Option(
        "--universe", help="An audience: a file of voter_id (CSV or Parquet), named by its stem; repeat for several "
                           "(default: every voter, as 'all').")] = None,
    exclusive: Annotated[bool | None, typer.Option(
        "--exclusive/--overlapping", help="Make audiences mutually exclusive by --priority.")] = None,
    priority: Annotated[str | None, typer.Option(
        "--priority", help="Comma-separated audience names, highest priority first.")] = None,
    suppress: Annotated[list[Path] | None, typer.Option(
        "--suppress", help=SUPPRESS_HELP)] = None,
    default_region: Annotated[str | None, typer.Option(
        "--default-region", help="ISO country for phones without a country code (default US).")] = None,
    min_audience: Annotated[int | None, typer.Option(
        "--min-audience", help="Minimum rows after dedupe and suppression (default: the platform's, 100).")] = None,
    on_small: Annotated[str | None, typer.Option(
        "--on-small", help="error (default) or skip: write no file for an audience below the minimum.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([export] table).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/exports"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Write hashed customer lists (Meta Custom Audience or Google Customer Match), owner-only (0600).

    Example: geo-segment export audience out/demo/voters.parquet --platform meta --purpose political
    --universe core.csv --universe persuade.csv --exclusive --priority core,persuade --suppress dnc.csv
    """
    from geo_segment import schema as S
    from geo_segment.exports.audiences import export_audiences
    from geo_segment.exports.guardrails import load_suppression
    from geo_segment.exports.platforms import load_rules
    from geo_segment.io.manifest import sha256_file

    cfg = _settings(config, purpose=purpose, default_region=default_region, min_audience=min_audience,
                    on_small=on_small, exclusive=exclusive, priority=_split(priority),
                    suppression_files=tuple(str(p) for p in suppress) if suppress else None)
    frame = _read_frame(voters, "voters")
    if S.VOTER_ID not in frame.columns:
        raise InputFileError("voters have no voter_id column", where=Location(voters), fix="use voters.parquet")
    inputs = [{"role": "voters", "path": str(voters), "sha256": sha256_file(voters)}]
    universes = {}
    for path in universe or []:
        ids = _read_frame(path, "universe")
        if S.VOTER_ID not in ids.columns:
            raise InputFileError("a universe file has no voter_id column", where=Location(path),
                                 fix="write one voter_id per row")
        if path.stem in universes:
            raise ConfigError("two universes share a name", found=repr(path.stem), fix="rename one file")
        wanted = set(ids[S.VOTER_ID].dropna().astype("str"))
        universes[path.stem] = frame.loc[frame[S.VOTER_ID].astype("str").isin(wanted).to_numpy(dtype=bool)]
        inputs.append({"role": f"universe {path.stem}", "path": str(path), "sha256": sha256_file(path)})
    if not universes:
        universes = {"all": frame}
    supp = load_suppression(cfg.suppression_files, default_region=cfg.default_region) \
        if cfg.suppression_files else None
    result = export_audiences(
        universes, out, platform=platform, purpose=cfg.purpose, default_region=cfg.default_region, suppression=supp,
        min_audience=cfg.min_audience, exclusive=cfg.exclusive, priority=cfg.priority, consent_col=cfg.consent_column,
        rules=load_rules(cfg.platforms_file), on_small=cfg.on_small, inputs=inputs,
    )
    warned: set[str] = set()
    for cl in result.lists.values():
        for w in cl.warnings:
            if w not in warned:
                err_console.print(f"[yellow]warning:[/] {escape(w)}", markup=True)
                warned.add(w)
    if quiet:
        return
    for name, cl in result.lists.items():
        c = cl.counts
        bad = ", ".join(f"{n} {k}" for k, n in cl.invalid.items())
        err_console.print(
            f"{name} ({platform}): {c['rows_in']:,} in = {c['rows_out']:,} written + {c['unmatchable']:,} "
            f"unmatchable + {c['duplicates']:,} duplicates + {c['suppressed']:,} suppressed"
            + (f"; values quarantined: {bad}" if bad else "") + f" -> {result.files[name]} (mode 0600)"
        )
    for name, reason in result.refused.items():
        err_console.print(f"[red]refused[/] {escape(name)}: {escape(reason)}", markup=True)
    if len(result.overlap):
        for row in result.overlap.itertuples(index=False):
            err_console.print(f"overlap {row.a} / {row.b}: {row.overlap:,} voters (Jaccard {row.jaccard})")
    err_console.print("hashed identifiers are still personal data: keep these files private")
    err_console.print(f"audit: {result.audit}")
