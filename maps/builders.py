"""Whole maps: precincts, hexagons, micro-geographies, turfs; and :func:`build_maps` for a run folder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import pandas as pd

from geo_segment import schema as S
from geo_segment.aggregates import K_MIN
from geo_segment.io.atomic import safe_output_path
from geo_segment.map_measures import map_measures

from ._base import finish_map, new_map, save_map, union_bounds
from .layers import (
    DEFAULT_PRECINCT_MEASURES,
    add_hex_layer,
    add_micro_geo_layer,
    add_outline_layer,
    add_precinct_layer,
    add_turf_layer,
    turf_slug,
)

__all__ = ["build_maps", "hex_map", "micro_geo_map", "precinct_map", "turf_maps"]


def _present(frame: pd.DataFrame, measures: Sequence[str]) -> list[str]:
    """The measures that are columns with at least one value (so a map never has an all-empty layer)."""
    return [c for c in measures if c in frame.columns and frame[c].notna().any()]


def _path(result: folium.Map | Path) -> Path:
    assert isinstance(result, Path)
    return result


def _out(m: folium.Map, out: str | Path | None, self_contained: bool) -> folium.Map | Path:
    return m if out is None else save_map(m, out, self_contained=self_contained)


def precinct_map(
    precincts: gpd.GeoDataFrame,
    voters: pd.DataFrame | None = None,
    *,
    measures: Sequence[str] = DEFAULT_PRECINCT_MEASURES,
    scheme: str = "quantiles",
    k: int = 5,
    bins: Sequence[float] | None = None,
    title: str = "Precincts",
    data_date: str | date | None = None,
    tiles: bool = False,
    k_min: int = K_MIN,
    out: str | Path | None = None,
    self_contained: bool = False,
) -> folium.Map | Path:
    """A precinct choropleth with one switchable layer per measure.

    Parameters
    ----------
    precincts
        ``precincts.parquet``.
    voters
        Optional scored voters, for ``mean_score`` and ``engaged_per_km2`` (only aggregates reach the map).
    measures
        Measures to offer; those absent or empty in the data are skipped.
    scheme, k, bins
        Classification (see :func:`~geo_segment.maps.add_precinct_layer`).
    title, data_date, tiles
        Title, the data's date shown under it, OpenStreetMap tiles (off: the maps work offline).
    k_min
        Small-cell threshold.
    out, self_contained
        When ``out`` is given the HTML is written there atomically and its path returned.

    Returns
    -------
    folium.Map or pathlib.Path
    """
    frame = map_measures(precincts, voters, key=S.PRECINCT_ID, k_min=k_min)
    chosen = _present(frame, measures) or ["voters"]
    m = new_map(title=title, data_date=data_date, tiles=tiles)
    add_precinct_layer(m, frame, measure=chosen, scheme=scheme, k=k, bins=bins, k_min=k_min)
    return _out(finish_map(m, union_bounds(frame)), out, self_contained)


def hex_map(
    cells: pd.DataFrame,
    voters: pd.DataFrame | None = None,
    *,
    measures: Sequence[str] = ("voters", "turnout_last_general", "mean_score", "share_DEM", "share_REP"),
    resolution: int | None = None,
    scheme: str = "quantiles",
    k: int = 5,
    title: str = "H3 cells",
    data_date: str | date | None = None,
    tiles: bool = False,
    k_min: int = K_MIN,
    out: str | Path | None = None,
    self_contained: bool = False,
) -> folium.Map | Path:
    """Hexagons coloured by measures (see :func:`~geo_segment.maps.add_hex_layer`); options as :func:`precinct_map`."""
    from .layers import _with_cell_geometry

    geo = _with_cell_geometry(cells)
    frame = map_measures(geo, voters, key=S.H3_CELL, k_min=k_min)
    chosen = _present(frame, measures) or ["voters"]
    m = new_map(title=title, data_date=data_date, tiles=tiles)
    add_hex_layer(m, frame, measure=chosen, resolution=resolution, scheme=scheme, k=k, k_min=k_min)
    return _out(finish_map(m, union_bounds(frame)), out, self_contained)


def micro_geo_map(
    micro_geos: gpd.GeoDataFrame,
    precincts: gpd.GeoDataFrame | None = None,
    *,
    measures: Sequence[str] = ("mean_score", "voters_per_km2", "voters"),
    scheme: str = "quantiles",
    k: int = 5,
    title: str = "Micro-geographies",
    data_date: str | date | None = None,
    tiles: bool = False,
    k_min: int = K_MIN,
    out: str | Path | None = None,
    self_contained: bool = False,
) -> folium.Map | Path:
    """Micro-geography polygons with their stats over precinct outlines; options as :func:`precinct_map`."""
    chosen = _present(micro_geos, measures) or ["voters"]
    m = new_map(title=title, data_date=data_date, tiles=tiles)
    if precincts is not None:
        add_outline_layer(m, precincts, name="Precinct outlines", id_col=S.PRECINCT_ID)
    add_micro_geo_layer(m, micro_geos, measure=chosen, scheme=scheme, k=k, k_min=k_min)
    return _out(finish_map(m, union_bounds(micro_geos)), out, self_contained)


def turf_maps(
    turfs: gpd.GeoDataFrame,
    routes: gpd.GeoDataFrame | None = None,
    doors: pd.DataFrame | None = None,
    *,
    door_fields: Sequence[str] = (),
    personal: bool = False,
    title: str = "Turfs",
    data_date: str | date | None = None,
    tiles: bool = False,
    out_dir: str | Path | None = None,
    self_contained: bool = False,
    assets_beside: bool = False,
) -> dict[str, folium.Map | Path]:
    """One map of all turfs and one per turf (boundary, route, numbered doors).

    Parameters
    ----------
    turfs, routes, doors, door_fields, personal
        See :func:`~geo_segment.maps.add_turf_layer`.
    title, data_date, tiles
        As in :func:`precinct_map`; each turf's map is titled ``"<title>: turf <id>"``.
    out_dir, self_contained, assets_beside
        When ``out_dir`` is given, writes ``turfs.html`` and ``turf_<id>.html`` there (ids made file-safe);
        ``assets_beside`` shares one copy of Leaflet in ``out_dir/assets/`` (see :func:`save_map`).

    Returns
    -------
    dict
        ``"all"`` and each turf id -> folium Map, or the path written.
    """
    result: dict[str, folium.Map | Path] = {}

    def one(key: str, t: gpd.GeoDataFrame, r: Any, d: Any, name: str, ttl: str) -> None:
        m = new_map(title=ttl, data_date=data_date, tiles=tiles)
        add_turf_layer(m, t, r, d, door_fields=door_fields, personal=personal)
        finish_map(m, union_bounds(t))
        result[key] = m if out_dir is None else save_map(m, safe_output_path(out_dir, name),
                                                          self_contained=self_contained, assets_beside=assets_beside)

    one("all", turfs, routes, doors, "turfs.html", title)
    ids = turfs[S.TURF_ID].astype("string")
    for tid in ids.dropna().unique().tolist():
        sel = turfs[ids == tid]
        r = routes[routes[S.TURF_ID].astype("string") == tid] if routes is not None else None
        d = doors[doors[S.TURF_ID].astype("string") == tid] if doors is not None else None
        one(str(tid), sel, r, d, f"turf_{turf_slug(tid)}.html", f"{title}: turf {tid}")
    return result


def build_maps(
    out_dir: str | Path,
    precincts: gpd.GeoDataFrame | None = None,
    cells: pd.DataFrame | None = None,
    micro_geos: gpd.GeoDataFrame | None = None,
    turfs: gpd.GeoDataFrame | None = None,
    *,
    routes: gpd.GeoDataFrame | None = None,
    doors: pd.DataFrame | None = None,
    voters: pd.DataFrame | None = None,
    data_date: str | date | None = None,
    tiles: bool = False,
    self_contained: bool = True,
    k_min: int = K_MIN,
) -> list[Path]:
    """Write every map the inputs allow into ``out_dir`` (the run folder's ``maps/``) and return the paths.

    ``precincts.html``, ``hexes.html``, ``micro_geos.html`` (over precinct outlines when precincts are given),
    ``turfs.html`` and ``turf_<id>.html``. Analyst maps show aggregates only; turf maps show no personal door
    fields. ``voters`` (scored) adds the mean score to precincts and cells. Offline by default
    (``self_contained``): the analyst maps carry Leaflet inside, the turf maps share ``assets/`` beside them.

    Examples
    --------
    >>> import geopandas as gpd
    >>> paths = build_maps("out/demo/maps", gpd.read_parquet("out/demo/precincts.parquet"))  # doctest: +SKIP
    """
    folder = Path(out_dir)
    written: list[Path] = []
    if precincts is not None:
        written.append(_path(precinct_map(precincts, voters, data_date=data_date, tiles=tiles, k_min=k_min,
                                         out=safe_output_path(folder, "precincts.html"),
                                         self_contained=self_contained)))
    if cells is not None:
        written.append(_path(hex_map(cells, voters, data_date=data_date, tiles=tiles, k_min=k_min,
                                    out=safe_output_path(folder, "hexes.html"), self_contained=self_contained)))
    if micro_geos is not None:
        written.append(_path(micro_geo_map(micro_geos, precincts, data_date=data_date, tiles=tiles, k_min=k_min,
                                          out=safe_output_path(folder, "micro_geos.html"),
                                          self_contained=self_contained)))
    if turfs is not None:
        maps = turf_maps(turfs, routes, doors, data_date=data_date, tiles=tiles, out_dir=folder,
                         self_contained=self_contained, assets_beside=self_contained)
        written.extend(Path(p) for p in maps.values() if isinstance(p, Path))
    return written
