"""Whole maps: precincts, hexagons, micro-geographies, turfs; and :func:`build_maps` for a run folder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from geo_segment import schema as S
from geo_segment.aggregates import K_MIN
from geo_segment.io.atomic import safe_output_path, write_files
from geo_segment.map_measures import map_measures

from ._base import collection, finish_map, new_map, save_map, union_bounds
from ._turf_pages import turf_pages
from .layers import (
    DEFAULT_PRECINCT_MEASURES,
    DOORS_ALL_MAX,
    TurfPieces,
    add_hex_layer,
    add_micro_geo_layer,
    add_outline_layer,
    add_precinct_layer,
    draw_turf_layers,
    turf_pieces,
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

    Notes
    -----
    The data of every turf, route and door is prepared once (:func:`~geo_segment.maps.layers.turf_pieces`).
    With ``out_dir`` the map of all turfs links each turf to its own map (click a turf) and has a "find a turf"
    box; with more than ``DOORS_ALL_MAX`` (20,000) doors it leaves the doors to the turfs' own maps (its legend
    says so). The turfs' own maps are rendered through folium once per page shape and filled per turf
    (``geo_segment.maps._turf_pages``), and written with one flush of the file system per batch; each links back
    to ``turfs.html``. With ``assets_beside`` their script and styles, the same for every turf, are shared files
    in ``out_dir/assets/gs/`` and a page holds only its title and data (about 6 kB). Two ids with the same
    file-safe name share one file (the later turf's).
    """
    files = out_dir is not None
    pieces = turf_pieces(turfs, routes, doors, door_fields=door_fields, personal=personal, links=files)
    has_routes = routes is not None and len(routes) > 0
    many_doors = files and len(pieces.door_rows) > DOORS_ALL_MAX
    m = new_map(title=title, data_date=data_date, tiles=tiles)
    draw_turf_layers(
        m, turfs_json=collection(pieces.turf_features), spec=pieces.spec, drive=bool(pieces.drive.any()),
        n_turfs=len(turfs), routes_json=collection(pieces.route_features) if has_routes else None,
        rspec=pieces.rspec,
        doors_json="[" + ",".join(pieces.door_rows) + "]" if doors is not None and len(doors) and not many_doors
        else None, door_fields=pieces.door_fields, links=files, doors_elsewhere=many_doors)
    finish_map(m, union_bounds(turfs))
    result: dict[str, folium.Map | Path] = {}
    if not files:
        result["all"] = m
        for k, tid in enumerate(pieces.ids):
            result[tid] = _one_turf_map(pieces, k, title=f"{title}: turf {tid}", data_date=data_date, tiles=tiles)
        return result
    folder = Path(out_dir)  # type: ignore[arg-type]
    result["all"] = save_map(m, safe_output_path(folder, "turfs.html"), self_contained=self_contained,
                             assets_beside=assets_beside)
    batch: dict[str, str] = {}
    ids: dict[str, str] = {}

    def flush() -> None:
        for name, path in write_files(folder, batch).items():
            result[ids[name]] = path
        batch.clear()
        ids.clear()

    for tid, name, text in turf_pages(pieces, title=title, data_date=data_date, tiles=tiles, folder=folder,
                                      self_contained=self_contained, assets_beside=assets_beside):
        batch[name] = text
        ids[name] = tid
        if len(batch) >= _PAGE_BATCH:
            flush()
    flush()
    return result


#: turf pages held in memory before they are written (one file-system flush per batch)
_PAGE_BATCH = 2000


def _one_turf_map(pieces: TurfPieces, k: int, *, title: str, data_date: str | date | None,
                  tiles: bool) -> folium.Map:
    """The folium Map of turf ``pieces.ids[k]`` (for callers that want Map objects, not files)."""
    rows = pieces.rows_of("turfs")[k]
    routes = pieces.rows_of("routes")[k]
    doors = pieces.rows_of("doors")[k]
    m = new_map(title=title, data_date=data_date, tiles=tiles)
    draw_turf_layers(
        m, turfs_json=collection([pieces.turf_features[i] for i in rows.tolist()]), spec=pieces.spec,
        drive=bool(pieces.drive[rows].any()), n_turfs=len(rows),
        routes_json=collection([pieces.route_features[i] for i in routes.tolist()]) if len(routes) else None,
        rspec=pieces.rspec,
        doors_json="[" + ",".join(pieces.door_rows[i] for i in doors.tolist()) + "]" if len(doors) else None,
        door_fields=pieces.door_fields)
    b = pieces.turf_bounds[rows]
    ok = np.isfinite(b).all(axis=1)
    bounds = [float(b[ok, 0].min()), float(b[ok, 1].min()), float(b[ok, 2].max()), float(b[ok, 3].max())] \
        if ok.any() else None
    return finish_map(m, bounds)


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
