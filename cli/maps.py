"""``geo-segment map``: interactive HTML maps of precincts, H3 cells, micro-geographies and turfs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from geo_segment.errors import ConfigError, InputFileError, InputNotFoundError, Location

from ._common import err_console, handle_errors

app = typer.Typer(help="Interactive HTML maps (Leaflet via folium) that open offline.", no_args_is_help=True)

MEASURE_HELP = "Measure to colour by; repeat for switchable layers (default: every usual measure present)."
OFFLINE_HELP = "Write Leaflet into the HTML so it opens without internet (--cdn: load it from the CDN)."
TILES_HELP = "Add OpenStreetMap tiles as a basemap (needs internet when viewed)."
DATE_HELP = "Date of the data shown under the title (default: the input file's modification date)."


def _read(path: Path, what: str, *, geo: bool = True) -> Any:
    import geopandas as gpd
    import pandas as pd

    if not path.exists():
        raise InputNotFoundError(f"{what} file not found", where=Location(path), fix="check the path")
    if path.suffix == ".parquet":
        try:
            return gpd.read_parquet(path) if geo else pd.read_parquet(path)
        except ValueError:  # plain Parquet without geometry (cells without polygons, doors)
            return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if geo:
        return gpd.read_file(path)
    raise InputFileError(f"cannot read the {what} file", expected=".parquet or .csv", found=path.suffix,
                         where=Location(path))


def _voters(path: Path | None) -> Any:
    """Only the columns a map can use from voters.parquet (never names, addresses, phones or emails)."""
    if path is None:
        return None
    import pandas as pd

    if not path.exists():
        raise InputNotFoundError("voters file not found", where=Location(path), fix="check the path")
    import pyarrow.parquet as pq

    cols = [c for c in ("precinct_id", "h3_cell", "micro_geo", "engagement_score", "propensity")
            if c in pq.read_schema(path).names]
    return pd.read_parquet(path, columns=cols)


def _date(value: str | None, path: Path) -> str:
    if value:
        return value
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date().isoformat()


def _bins(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError("--bins must be numbers", expected="comma-separated upper bounds such as 0.4,0.6,0.8",
                          found=repr(value)) from None


def _report(paths: list[Path]) -> None:
    for p in paths:
        err_console.print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB)")


@app.command("precincts")
@handle_errors
def precincts_cmd(
    precincts: Annotated[Path, typer.Argument(help="precincts.parquet from join/demo (aggregates, suppressed).")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("maps/precincts.html"),
    voters: Annotated[Path | None, typer.Option("--voters", help="Scored voters.parquet, for mean score "
                                                                 "(only aggregates reach the map).")] = None,
    measure: Annotated[list[str] | None, typer.Option("--measure", help=MEASURE_HELP)] = None,
    scheme: Annotated[str, typer.Option("--scheme", help="quantiles, natural_breaks or user.")] = "quantiles",
    k: Annotated[int, typer.Option("--k", help="Number of classes.")] = 5,
    bins: Annotated[str | None, typer.Option("--bins", help="Upper bounds for --scheme user: 0.4,0.6,0.8")] = None,
    title: Annotated[str, typer.Option("--title", help="Map title.")] = "Precincts",
    data_date: Annotated[str | None, typer.Option("--data-date", help=DATE_HELP)] = None,
    tiles: Annotated[bool, typer.Option("--tiles", help=TILES_HELP)] = False,
    self_contained: Annotated[bool, typer.Option("--self-contained/--cdn", help=OFFLINE_HELP)] = True,
) -> None:
    """Precinct choropleth, one switchable layer per measure; small precincts greyed out.

    Example: geo-segment map precincts out/demo/precincts.parquet --voters out/demo/voters.parquet --out p.html
    """
    from geo_segment.maps import precinct_map
    from geo_segment.maps.layers import DEFAULT_PRECINCT_MEASURES

    frame = _read(precincts, "precincts")
    path = precinct_map(frame, _voters(voters), measures=measure or DEFAULT_PRECINCT_MEASURES, scheme=scheme, k=k,
                        bins=_bins(bins), title=title, data_date=_date(data_date, precincts), tiles=tiles, out=out,
                        self_contained=self_contained)
    _report([Path(str(path))])


@app.command("hexes")
@handle_errors
def hexes_cmd(
    cells: Annotated[Path, typer.Argument(help="cells.parquet from join/demo (h3_cell, aggregates, suppressed).")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("maps/hexes.html"),
    voters: Annotated[Path | None, typer.Option("--voters", help="Scored voters.parquet, for mean score.")] = None,
    measure: Annotated[list[str] | None, typer.Option("--measure", help=MEASURE_HELP)] = None,
    resolution: Annotated[int | None, typer.Option("--resolution", help="Expected H3 resolution (checked).")] = None,
    scheme: Annotated[str, typer.Option("--scheme", help="quantiles, natural_breaks or user.")] = "quantiles",
    k: Annotated[int, typer.Option("--k", help="Number of classes.")] = 5,
    title: Annotated[str, typer.Option("--title", help="Map title.")] = "H3 cells",
    data_date: Annotated[str | None, typer.Option("--data-date", help=DATE_HELP)] = None,
    tiles: Annotated[bool, typer.Option("--tiles", help=TILES_HELP)] = False,
    self_contained: Annotated[bool, typer.Option("--self-contained/--cdn", help=OFFLINE_HELP)] = True,
) -> None:
    """H3 hexagons coloured by a measure; cells under the small-cell threshold greyed out.

    Example: geo-segment map hexes out/demo/cells.parquet --measure voters --measure turnout_last_general
    """
    from geo_segment.maps import hex_map

    kwargs: dict[str, Any] = {"measures": measure} if measure else {}
    path = hex_map(_read(cells, "cells"), _voters(voters), resolution=resolution, scheme=scheme, k=k, title=title,
                   data_date=_date(data_date, cells), tiles=tiles, out=out, self_contained=self_contained, **kwargs)
    _report([Path(str(path))])


@app.command("micro-geos")
@handle_errors
def micro_geos_cmd(
    micro_geos: Annotated[Path, typer.Argument(help="micro_geos.parquet from cluster/demo.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("maps/micro_geos.html"),
    precincts: Annotated[Path | None, typer.Option("--precincts", help="Precincts drawn as outlines.")] = None,
    measure: Annotated[list[str] | None, typer.Option("--measure", help=MEASURE_HELP)] = None,
    title: Annotated[str, typer.Option("--title", help="Map title.")] = "Micro-geographies",
    data_date: Annotated[str | None, typer.Option("--data-date", help=DATE_HELP)] = None,
    tiles: Annotated[bool, typer.Option("--tiles", help=TILES_HELP)] = False,
    self_contained: Annotated[bool, typer.Option("--self-contained/--cdn", help=OFFLINE_HELP)] = True,
) -> None:
    """Micro-geography polygons with their stats, over precinct outlines.

    Example: geo-segment map micro-geos out/demo/micro_geos.parquet --precincts out/demo/precincts.parquet
    """
    from geo_segment.maps import micro_geo_map

    kwargs: dict[str, Any] = {"measures": measure} if measure else {}
    path = micro_geo_map(_read(micro_geos, "micro_geos"), _read(precincts, "precincts") if precincts else None,
                         title=title, data_date=_date(data_date, micro_geos), tiles=tiles, out=out,
                         self_contained=self_contained, **kwargs)
    _report([Path(str(path))])


@app.command("turfs")
@handle_errors
def turfs_cmd(
    turfs: Annotated[Path, typer.Argument(help="turfs.parquet from the turf stage.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for turfs.html and turf_<id>.html.")] = Path("maps"),
    routes: Annotated[Path | None, typer.Option("--routes", help="routes.parquet (walking order lines).")] = None,
    doors: Annotated[Path | None, typer.Option("--doors", help="Doors table (Parquet or CSV).")] = None,
    door_field: Annotated[list[str] | None, typer.Option(
        "--door-field", help="Extra door column in the door popups; repeat. Personal ones need --personal.")] = None,
    personal: Annotated[bool, typer.Option(
        "--personal", help="Allow personal door fields (organizers' walk maps only).")] = False,
    title: Annotated[str, typer.Option("--title", help="Map title.")] = "Turfs",
    data_date: Annotated[str | None, typer.Option("--data-date", help=DATE_HELP)] = None,
    tiles: Annotated[bool, typer.Option("--tiles", help=TILES_HELP)] = False,
    self_contained: Annotated[bool, typer.Option("--self-contained/--cdn", help=OFFLINE_HELP)] = True,
    assets_beside: Annotated[bool, typer.Option(
        "--assets-beside", help="Copy Leaflet once into <out>/assets/ and link it (offline; one copy for many "
                                "turf maps) instead of writing it into every page.")] = False,
) -> None:
    """One map of all turfs and one per turf: boundaries by balance status, routes, numbered doors.

    Example: geo-segment map turfs out/run/turfs.parquet --routes out/run/routes.parquet --doors out/run/doors.parquet
    """
    from geo_segment.maps import turf_maps

    written = turf_maps(_read(turfs, "turfs"), _read(routes, "routes") if routes else None,
                        _read(doors, "doors", geo=False) if doors else None, door_fields=door_field or (),
                        personal=personal, title=title, data_date=_date(data_date, turfs), tiles=tiles, out_dir=out,
                        self_contained=self_contained, assets_beside=assets_beside)
    _report([Path(str(p)) for p in written.values()])
