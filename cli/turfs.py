"""``geo-segment turfs``, ``geo-segment walklist`` and ``geo-segment results import``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from geo_segment.config import load_config
from geo_segment.errors import InputFileError, Location

from ._common import err_console, handle_errors, print_summary

results_app = typer.Typer(help="Canvass results: import them into the contact history.", no_args_is_help=True)


def _read_geo(path: Path, what: str) -> Any:
    import geopandas as gpd

    if not path.exists():
        raise InputFileError(f"{what} file not found", where=Location(path), fix="check the path")
    if path.suffix.lower() in (".parquet", ".geoparquet"):
        return gpd.read_parquet(path)
    return gpd.read_file(path)


def _ids(path: Path | None) -> set[str] | None:
    """Ids of a do-not-contact list: its voter_id / household_id / id column, or its only column."""
    if path is None:
        return None
    from geo_segment.io.ids import read_ids

    return set(read_ids(path, columns=("voter_id", "household_id", "id"), what="do-not-contact file"))


def _previous_cut(out: Path, parameters: dict[str, Any]) -> Any:
    """The cut already in ``out`` when it was made with the same [turfs] settings and barriers, else None."""
    import json

    from geo_segment.turfs.run import read_previous_cut

    try:
        old = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    params = old.get("parameters", {})
    if old.get("command") != "turfs" or params.get("turfs") != json.loads(json.dumps(parameters["turfs"])) \
            or params.get("barriers") != parameters["barriers"]:
        return None
    return read_previous_cut(out)


@handle_errors
def turfs(
    voters: Annotated[Path, typer.Option("--voters", help="Scored voters.parquet of a run.")],
    precincts: Annotated[
        Path | None, typer.Option("--precincts", help="precincts.parquet (clips turf polygons to precincts).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([turfs] table).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("out/turfs"),
    within: Annotated[
        str | None, typer.Option("--within", help="Cut within: precinct, micro_geo, polygon or all.")
    ] = None,
    target_doors: Annotated[int | None, typer.Option("--target-doors", help="Doors per turf (default 50).")] = None,
    tolerance: Annotated[float | None, typer.Option("--tolerance", help="Allowed deviation (0.1 = ±10%).")] = None,
    door_unit: Annotated[
        str | None, typer.Option("--door-unit", help="household, or building (one door per apartment building).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (same seed, same turfs).")] = None,
    score_min: Annotated[float | None, typer.Option("--score-min", help="Lowest engagement score kept.")] = None,
    score_max: Annotated[float | None, typer.Option("--score-max", help="Highest engagement score kept.")] = None,
    score_col: Annotated[str, typer.Option("--score-col", help="engagement_score or propensity.")] = (
        "engagement_score"),
    party: Annotated[list[str] | None, typer.Option("--party", help="Party to keep (repeat).")] = None,
    age_min: Annotated[int | None, typer.Option("--age-min", help="Youngest age kept.")] = None,
    age_max: Annotated[int | None, typer.Option("--age-max", help="Oldest age kept.")] = None,
    precinct: Annotated[list[str] | None, typer.Option("--precinct", help="Precinct id to keep (repeat).")] = None,
    micro_geo: Annotated[list[int] | None, typer.Option("--micro-geo", help="Micro-geography to keep.")] = None,
    polygon: Annotated[
        Path | None, typer.Option("--polygon", help="Polygon file: keep voters inside; with --within polygon, "
                                                    "cut within each polygon (named by --polygon-id).")
    ] = None,
    polygon_id: Annotated[str, typer.Option("--polygon-id", help="Name column of --polygon.")] = "name",
    history: Annotated[
        Path | None, typer.Option("--history", help="vote_history.parquet (for --min-generals).")
    ] = None,
    min_generals: Annotated[
        int | None, typer.Option("--min-generals", help="Voted in at least this many of the last N generals.")
    ] = None,
    max_generals: Annotated[
        int | None, typer.Option("--max-generals", help="Voted in at most this many of the last N generals.")
    ] = None,
    n_generals: Annotated[int, typer.Option("--n-generals", help="N for the turnout filter.")] = 4,
    barriers: Annotated[
        Path | None, typer.Option("--barriers", help="Lines no turf may cross (major roads, rivers, rail).")
    ] = None,
    do_not_contact: Annotated[
        Path | None, typer.Option("--do-not-contact", help="CSV/text of voter or household ids never to knock.")
    ] = None,
    exclude_contacted: Annotated[
        bool, typer.Option("--exclude-contacted", help="Leave out households already contacted.")
    ] = False,
    contact_history: Annotated[
        Path | None, typer.Option("--contact-history", help="contact_history.parquet (default: in --out).")
    ] = None,
    packets: Annotated[bool, typer.Option("--packets/--no-packets", help="Write HTML packets.")] = True,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also print packets to PDF (Chromium).")] = False,
    chromium: Annotated[str | None, typer.Option("--chromium", help="Chromium executable.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Cut balanced, contiguous turfs and write turfs.parquet, routes, doors, walk lists and packets.

    Example: geo-segment turfs --voters out/demo/voters.parquet --precincts out/demo/precincts.parquet --out out/demo
    """
    import geopandas as gpd
    import pandas as pd

    from geo_segment.io.manifest import Manifest
    from geo_segment.pipeline import RunResult
    from geo_segment.turfs import Universe, turf_stage
    from geo_segment.turfs.doors import tuple_or_none
    from geo_segment.turfs.results import read_history

    cfg = load_config(config)
    given = {"within": within, "target_doors": target_doors, "tolerance": tolerance, "door_unit": door_unit,
             "seed": seed}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    tcfg = dataclasses.replace(cfg.turfs, **overrides)
    man = Manifest(command="turfs", parameters={"turfs": dataclasses.asdict(tcfg),
                                                "exclude_contacted": exclude_contacted,
                                                "barriers": str(barriers) if barriers else None})
    previous = _previous_cut(out, man.parameters) if exclude_contacted else None
    man.add_input("voters", voters)
    v = _read_geo(voters, "voters")
    pre = None
    if precincts is not None:
        man.add_input("precincts", precincts)
        pre = _read_geo(precincts, "precincts")
    poly_frame = None
    poly_geom = None
    if polygon is not None:
        man.add_input("polygon", polygon)
        poly_frame = _read_geo(polygon, "polygon").to_crs("EPSG:4326")
        poly_geom = poly_frame.geometry.union_all()
    hist = None
    if history is not None:
        man.add_input("history", history)
        hist = pd.read_parquet(history)
    bar = None
    if barriers is not None:
        man.add_input("barriers", barriers)
        bar = _read_geo(barriers, "barriers").to_crs("EPSG:4326").geometry
    universe = Universe(score_min=score_min, score_max=score_max, score_col=score_col,
                        parties=tuple_or_none(party), age_min=age_min, age_max=age_max,
                        precincts=tuple_or_none(precinct), micro_geos=tuple_or_none(micro_geo),
                        polygon=poly_geom if tcfg.within != "polygon" else None,
                        min_generals=min_generals, max_generals=max_generals, n_generals=n_generals)
    ch_path = contact_history or out / "contact_history.parquet"
    ch = read_history(ch_path) if exclude_contacted else None
    if exclude_contacted and ch_path.exists():
        man.add_input("contact_history", ch_path)
    result = turf_stage(v, pre, out, tcfg, universe=universe, history=hist, contact_history=ch,
                        exclude_contacted=exclude_contacted, do_not_contact=_ids(do_not_contact), barriers=bar,
                        polygons=poly_frame, polygon_id=polygon_id, packets=packets, pdf=pdf, chromium=chromium,
                        previous=previous)
    for stage in result.stages:
        man.add_stage(stage)
    outputs = dict(result.outputs)
    man.outputs = [p.name for p in outputs.values()] + ["walklists/", "packets/" if packets else ""]
    man.outputs = [o for o in man.outputs if o]
    outputs["manifest"] = man.write(out)
    print_summary(RunResult(out_dir=out, manifest=man, outputs=outputs), title="geo-segment turfs", quiet=quiet)
    if not quiet:
        c = result.counts
        t: gpd.GeoDataFrame = result.cut.turfs
        err_console.print(
            f"turfs: {c.get('doors', 0):,} doors in {c.get('turfs', 0):,} turfs; "
            f"{c.get('within_tolerance', 0):,} within ±{tcfg.tolerance:.0%} of the target "
            f"({c.get('outside_small_component', 0)} in areas smaller than a turf, "
            f"{c.get('outside_indivisible', 0)} in areas no whole number of turfs fits, "
            f"{c.get('outside_big_building', 0)} with a building bigger than a turf, "
            f"{c.get('outside_other', 0)} other); {c.get('drive_flag', 0)} to drive; removed before cutting: "
            f"{c.get('households_removed_do_not_contact', 0)} do-not-contact and "
            f"{c.get('households_removed_contacted', 0)} contacted households; "
            f"mean {float(t['est_minutes'].mean()) if len(t) else 0:.0f} min per turf"
            + (f"; {c['regions_reused']} regions unchanged since the last cut kept their turfs"
               if "regions_reused" in c else "")
        )


@handle_errors
def walklist(
    run: Annotated[Path, typer.Option("--run", help="Folder written by `geo-segment turfs`.")],
    voters: Annotated[Path, typer.Option("--voters", help="The voters.parquet the turfs were cut from.")],
    turf: Annotated[list[str] | None, typer.Option("--turf", help="Turf id (repeat; default: all).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([turfs] script).")] = None,
    order: Annotated[str, typer.Option("--order", help="route (as cut) or street (street, side, number).")] = (
        "route"),
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also print packets to PDF (Chromium).")] = False,
    chromium: Annotated[str | None, typer.Option("--chromium", help="Chromium executable.")] = None,
) -> None:
    """Write the walk lists and packets of some turfs again (for example in street order, or as PDF).

    Example: geo-segment walklist --run out/demo --voters out/demo/voters.parquet --turf P2858-01 --pdf
    """
    import geopandas as gpd
    import pandas as pd

    from geo_segment import schema as S
    from geo_segment.errors import ConfigError
    from geo_segment.turfs.packets import packet_sections, write_packets
    from geo_segment.turfs.walklists import walklist_rows, write_walklists

    if order not in ("route", "street"):
        raise ConfigError("unknown walking order", expected="route or street", found=repr(order),
                          fix="use --order route or --order street")
    cfg = load_config(config).turfs
    for name in ("turfs.parquet", "routes.parquet", "doors.parquet", "door_members.parquet"):
        if not (run / name).exists():
            raise InputFileError(f"{name} is missing from the run folder", where=Location(run),
                                 fix="run `geo-segment turfs --out` on this folder first")
    t = gpd.read_parquet(run / "turfs.parquet")
    routes = gpd.read_parquet(run / "routes.parquet")
    doors = pd.read_parquet(run / "doors.parquet").drop(columns="geometry", errors="ignore")
    members = pd.read_parquet(run / "door_members.parquet")
    if turf:
        unknown = sorted(set(turf) - set(t[S.TURF_ID]))
        if unknown:
            raise ConfigError("unknown turf ids", found=str(unknown[:5]), fix="use ids from turfs.parquet")
        t = t[t[S.TURF_ID].isin(turf)]
        routes = routes[routes[S.TURF_ID].isin(turf)]
        doors = doors[doors[S.TURF_ID].isin(turf)]
    if order == "street":
        doors = doors.assign(**{S.DOOR_ORDER: doors["street_rank"]})
    v = _read_geo(voters, "voters").drop(columns="geometry")
    m = members.merge(v, on=S.VOTER_ID, how="inner")
    addr = v.drop_duplicates(S.HOUSEHOLD_ID).set_index(S.HOUSEHOLD_ID)
    for col in (S.STREET, S.HOUSE_NUMBER, S.UNIT):
        if col not in doors.columns:
            doors[col] = doors[S.HOUSEHOLD_ID].map(addr[col]) if col in addr.columns else ""
    rows = walklist_rows(doors, m, t)
    lists = write_walklists(rows, run / "walklists")
    sections = packet_sections(t, routes, doors, rows, config=cfg)
    written = write_packets(sections, run / "packets", pdf=pdf, chromium=chromium)
    err_console.print(f"wrote {len(lists)} walk lists and {len(written['html'])} packets "
                      f"({len(written['pdf'])} PDF) to {run}")


@results_app.command("import")
@handle_errors
def results_import(
    file: Annotated[Path, typer.Argument(help="Results CSV: voter_id or household_id, date, result_code, answers.")],
    voters: Annotated[Path, typer.Option("--voters", help="voters.parquet (rows must match a voter/household).")],
    history: Annotated[
        Path, typer.Option("--history", help="contact_history.parquet to update (created if missing).")
    ] = Path("out/turfs/contact_history.parquet"),
    config: Annotated[Path | None, typer.Option("--config", help="Configuration TOML ([turfs] result_codes).")] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="Contact date for rows without one (e.g. a filled-in walk list).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Import canvass results into the contact history (idempotent: same id, date and code once).

    Rows that match no voter or household, bad dates and unknown codes are listed with their line numbers in
    <history>.rejects.csv and not imported. Then `geo-segment turfs --exclude-contacted` re-cuts without them.

    Example: geo-segment results import results.csv --voters out/demo/voters.parquet --history out/demo/ch.parquet
    """
    import pandas as pd

    from geo_segment.io.atomic import write_csv
    from geo_segment.turfs.results import import_results, read_history, read_results, write_history

    cfg = load_config(config).turfs
    res = read_results(file, date_given=date is not None)
    v = pd.read_parquet(voters, columns=["voter_id", "household_id"])
    new, report = import_results(res, v, read_history(history), result_codes=cfg.result_codes,
                                 source_file=file.name, default_date=date)
    write_history(new, history)
    rejects_path = history.with_name(history.stem + ".rejects.csv")
    write_csv(report.rejects, rejects_path)
    if not quiet:
        err_console.print(f"results: {report.rows:,} rows read ({report.metrics.get('blank', 0):,} blank), "
                          f"{report.added:,} added, {report.duplicates:,} "
                          f"already in the history, {len(report.rejects):,} rejected; history now "
                          f"{report.history_rows:,} rows ({history})")
        for rec in report.rejects.head(20).itertuples(index=False):
            err_console.print(f"  line {rec.line}: {rec.reason}", highlight=False)
        if len(report.rejects) > 20:
            err_console.print(f"  ... and {len(report.rejects) - 20} more in {rejects_path}")
