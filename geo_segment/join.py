"""Join points to H3 cells and to exactly one polygon of a layer (precincts, districts, wards, turfs).

Assignment rule, for every point with coordinates
------------------------------------------------
1. Candidates are the polygons the point *intersects* (interior or boundary).
2. Tie-break, deterministic: a polygon holding the point in its **interior** beats one that only has it on its
   **boundary**; among equals the **lowest id** (string order) wins.
3. ``method`` is ``within`` when exactly one polygon intersects the point and holds it in its interior;
   ``boundary`` when the point lies on an edge or a vertex, or inside an overlap (several candidates).
4. A point no polygon intersects (geocode drift, a gap, water) takes the **nearest** polygon within
   ``tolerance_m`` metres (distances in a UTM CRS estimated from the layer; ties by lowest id): ``nearest``.
5. Beyond the tolerance, or without coordinates: ``unassigned`` with a null id. No point is ever dropped or
   duplicated: the output has the input's rows, index and order.

Fast path
---------
Points are bucketed by their H3 cell at ``fast_resolution`` (``"auto"``: the coarsest resolution whose cells are
at most 1/25 of the median polygon's area, between 6 and 11). A cell whose polygon,
grown by about a metre to cover the difference between H3's spherical edges and straight lon/lat edges, lies in
the interior of exactly one polygon and touches no other, assigns all its points at once (``within``). Only
points in the remaining cells go through the exact STRtree tests. Results equal the exact rule point for point
(``tests/test_join.py`` compares with ``geopandas.sjoin`` + the same tie-break).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment._vector import take_str
from geo_segment.errors import ConfigError, InputFileError, MissingColumnsError
from geo_segment.io.manifest import StageRecord

__all__ = ["METHODS", "AreaJoin", "add_h3_cells", "assign_areas", "assign_precincts", "auto_fast_resolution",
           "join_areas", "join_stage"]

METHODS = ("within", "boundary", "nearest", "unassigned")
_WITHIN, _BOUNDARY, _NEAREST, _UNASSIGNED = range(4)
#: growth of an H3 cell polygon before the containment test, in degrees (about 1.1 m of latitude)
CELL_MARGIN_DEG = 1e-5


def _require_4326(frame: gpd.GeoDataFrame, what: str) -> None:
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InputFileError(f"{what} must be a GeoDataFrame", found=type(frame).__name__,
                             fix="read it with geo_segment's readers")
    if frame.crs is None or not frame.crs.equals(S.CRS_STORAGE):
        raise ConfigError(
            f"{what} are not in the storage CRS",
            expected=S.CRS_STORAGE,
            found=str(frame.crs),
            fix=f"reproject with .to_crs('{S.CRS_STORAGE}') before joining; geo_segment never reprojects silently",
        )


def _xy(points: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    if S.LAT in points.columns and S.LNG in points.columns:
        return (points[S.LNG].to_numpy("float64", na_value=np.nan), points[S.LAT].to_numpy("float64", na_value=np.nan))
    geoms = points.geometry.values
    xy = np.full((len(points), 2), np.nan)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    xy[ok] = shapely.get_coordinates(geoms[ok])
    return xy[:, 0], xy[:, 1]


def add_h3_cells(
    frame: gpd.GeoDataFrame, *, resolution: int = 9, parents: tuple[int, ...] = (), column: str = S.H3_CELL
) -> gpd.GeoDataFrame:
    """Add the H3 cell of every point, and optionally its parents for roll-ups.

    Parameters
    ----------
    frame
        Voters or signals (EPSG:4326); coordinates from ``lat``/``lng`` when present, else from the geometry.
    resolution
        H3 resolution 5..15 (default 9, about 0.1 km²).
    parents
        Coarser resolutions to add as ``h3_cell_r{res}`` columns.
    column
        Name of the cell column.

    Returns
    -------
    GeoDataFrame
        A copy with ``h3_cell`` (uint64; ``0`` for rows without coordinates) and the parent columns.

    Examples
    --------
    >>> import geopandas as gpd
    >>> g = gpd.GeoDataFrame({"lat": [41.82], "lng": [-71.41]}, geometry=gpd.points_from_xy([-71.41], [41.82]),
    ...                      crs=4326)
    >>> hex(int(add_h3_cells(g)["h3_cell"].iloc[0]))
    '0x892a3315xxxxxxx'  # doctest: +SKIP
    """
    _require_4326(frame, "points")
    res = _h3.check_resolution(resolution)
    x, y = _xy(frame)
    out = frame.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    cells = _h3.latlng_to_cells(y, x, res)
    out[column] = cells
    for p in parents:
        if not 0 <= p < res:
            raise ConfigError("parent resolution must be coarser than the cell resolution",
                              expected=f"0..{res - 1}", found=repr(p), fix="drop or lower it")
        out[f"{column}_r{p}"] = _h3.cell_parents(cells, p)
    return out


@dataclass
class AreaJoin:
    """Positions into the layer (``-1`` when unassigned) and the method of every point, with counts."""

    index: np.ndarray
    method: np.ndarray
    metrics: dict[str, Any] = field(default_factory=dict)


def _pick(pt: np.ndarray, poly: np.ndarray, interior: np.ndarray, rank: np.ndarray, n_points: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """Apply the tie-break to candidate pairs; return the chosen polygon per point (-1 none) and candidate counts."""
    chosen = np.full(n_points, -1, dtype=np.int64)
    counts = np.bincount(pt, minlength=n_points) if len(pt) else np.zeros(n_points, dtype=np.int64)
    if len(pt):
        order = np.lexsort((rank[poly], ~interior, pt))
        first = np.ones(len(order), dtype=bool)
        first[1:] = pt[order][1:] != pt[order][:-1]
        chosen[pt[order][first]] = poly[order][first]
    return chosen, counts


def join_areas(
    x: np.ndarray,
    y: np.ndarray,
    geoms: np.ndarray,
    ids: np.ndarray,
    *,
    tolerance_m: float = 50.0,
    fast_resolution: int | str | None = "auto",
    cells: np.ndarray | None = None,
    metric_crs: Any = None,
) -> AreaJoin:
    """Assign each (x=lng, y=lat) point to one polygon by the module's rule; the array-level engine.

    Parameters
    ----------
    x, y
        Longitudes and latitudes (NaN = no coordinates).
    geoms
        Polygons (EPSG:4326).
    ids
        Their ids (the tie-break sorts them as strings).
    tolerance_m
        Nearest-polygon tolerance in metres for points outside every polygon; 0 disables.
    fast_resolution
        H3 resolution of the fast path, ``"auto"`` (from the polygons' sizes), or ``None`` for exact tests only.
    cells
        Precomputed H3 cells of the points; reused when their resolution is ``fast_resolution``.
    metric_crs
        CRS for the nearest search (default: the layer's estimated UTM zone).
    """
    t0 = time.perf_counter()
    n = len(x)
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    geoms = np.asarray(geoms, dtype=object)
    rank = pd.Series(np.asarray(ids).astype(str)).rank(method="dense").to_numpy(dtype=np.int64)
    index = np.full(n, -1, dtype=np.int64)
    method = np.full(n, _UNASSIGNED, dtype=np.int8)
    has_xy = np.isfinite(x) & np.isfinite(y)
    todo = np.flatnonzero(has_xy)
    metrics: dict[str, Any] = {"points": n, "with_coordinates": int(has_xy.sum())}

    if fast_resolution == "auto":
        fast_resolution = auto_fast_resolution(geoms)
    fast: np.ndarray | None = None
    if fast_resolution is not None and len(todo):
        fres = int(fast_resolution)
        metrics["fast_resolution"] = fres
        # a cell's parent is not the coarser cell that contains the point (H3 children stick out of their
        # parent's hexagon), so precomputed cells are reused only at the fast resolution itself
        if cells is not None and _cell_res(np.asarray(cells, dtype=np.uint64)) == fres:
            fast = np.asarray(cells, dtype=np.uint64)[todo]
        else:
            fast = _h3.latlng_to_cells(y[todo], x[todo], fres)

    # 1. + 2. fast path, then exact tests
    p_index, p_method, p_metrics = _inside(x[todo], y[todo], fast, geoms, rank)
    index[todo], method[todo] = p_index, p_method
    metrics.update(p_metrics)
    todo = todo[index[todo] < 0]

    # 3. nearest polygon within the tolerance, in metres
    if len(todo) and tolerance_m > 0:
        crs = metric_crs or gpd.GeoSeries(geoms, crs=S.CRS_STORAGE).estimate_utm_crs()
        # Only polygons near a leftover point are projected (detailed precincts have thousands of vertices): a box
        # of twice the tolerance in degrees around each point (metres per degree at the highest latitude; map
        # projections distort distances by well under 2x near their zone) holds every polygon within tolerance.
        lat_max = min(float(np.max(np.abs(y[todo]))), 89.0)
        dy = 2.0 * tolerance_m / 110_574.0
        dx = 2.0 * tolerance_m / (111_320.0 * np.cos(np.radians(lat_max)))
        boxes = shapely.box(x[todo] - dx, y[todo] - dy, x[todo] + dx, y[todo] + dy)
        near_polys = np.unique(shapely.STRtree(geoms).query(boxes)[1])
        geoms_m = np.asarray(gpd.GeoSeries(geoms[near_polys], crs=S.CRS_STORAGE).to_crs(crs).values)
        pts_m = gpd.GeoSeries(shapely.points(x[todo], y[todo]), crs=S.CRS_STORAGE).to_crs(crs).values
        tree_m = shapely.STRtree(geoms_m)
        (pt, poly), dist = tree_m.query_nearest(
            np.asarray(pts_m), max_distance=tolerance_m, return_distance=True, all_matches=True
        )
        poly = near_polys[poly]
        ok = dist <= tolerance_m
        chosen, _ = _pick(pt[ok], poly[ok], np.zeros(int(ok.sum()), bool), rank, len(todo))
        near = chosen >= 0
        index[todo[near]] = chosen[near]
        method[todo[near]] = _NEAREST
        metrics["metric_crs"] = str(crs)
    metrics.update({m: int((method == i).sum()) for i, m in enumerate(METHODS)})
    metrics["not_geocoded"] = int((~has_xy).sum())
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    return AreaJoin(index=index, method=method, metrics=metrics)


def _inside(x: np.ndarray, y: np.ndarray, fast: np.ndarray | None, geoms: np.ndarray, rank: np.ndarray) -> tuple[
    np.ndarray, np.ndarray, dict[str, int]
]:
    """Steps 1 (fast path over the ``fast`` cells) and 2 (exact tests) for points that all have coordinates.

    Returns each point's polygon position (``-1`` when none intersects it), its method and counts.
    """
    n = len(x)
    index = np.full(n, -1, dtype=np.int64)
    method = np.full(n, _UNASSIGNED, dtype=np.int8)
    metrics: dict[str, int] = {}
    shapely.prepare(geoms)
    tree = shapely.STRtree(geoms)
    if fast is None or not n:
        pt, poly = tree.query(shapely.points(x, y))
        _exact(np.arange(n), pt, poly, x, y, geoms, rank, index, method)
        metrics["exact_points"] = n
        return index, method, metrics
    codes, uniq = pd.factorize(fast)
    uniq = np.asarray(uniq, dtype=np.uint64)
    real = uniq != 0  # 0: no cell (coordinates H3 refuses); those points take the tree's candidates below
    cell_geoms = np.full(len(uniq), None, dtype=object)
    cell_geoms[real] = _grow(_h3.cell_polygons(uniq[real]), CELL_MARGIN_DEG)
    c_idx, p_idx = _sorted_pairs(*tree.query(cell_geoms))
    hit = shapely.intersects(geoms[p_idx], cell_geoms[c_idx])
    c_idx, p_idx = c_idx[hit], p_idx[hit]
    n_hits = np.bincount(c_idx, minlength=len(uniq))
    single = n_hits[c_idx] == 1
    clean_poly = np.full(len(uniq), -1, dtype=np.int64)
    inside = shapely.contains_properly(geoms[p_idx[single]], cell_geoms[c_idx[single]])
    clean_poly[c_idx[single][inside]] = p_idx[single][inside]
    per_point = clean_poly[codes]
    done = per_point >= 0
    index[done] = per_point[done]
    method[done] = _WITHIN
    metrics.update({"fast_cells": len(uniq), "fast_cells_clean": int((clean_poly >= 0).sum()),
                    "fast_points": int(done.sum())})
    # The other points of a cell can only touch the polygons its grown hexagon intersects: those are their
    # candidates, with no point geometry and no tree query per point.
    rest = np.flatnonzero(~done & real[codes])
    order = np.argsort(c_idx, kind="stable")
    cand = p_idx[order]
    first = np.concatenate([[0], np.cumsum(n_hits)[:-1]])
    k = n_hits[codes[rest]]
    pt = np.repeat(np.arange(len(rest)), k)
    poly = cand[np.repeat(first[codes[rest]] - (np.cumsum(k) - k), k) + np.arange(int(k.sum()))]
    _exact(rest, pt, poly, x, y, geoms, rank, index, method)
    nocell = np.flatnonzero(~real[codes])
    if len(nocell):
        pt, poly = tree.query(shapely.points(x[nocell], y[nocell]))
        _exact(nocell, pt, poly, x, y, geoms, rank, index, method)
    metrics["exact_points"] = len(rest) + len(nocell)
    return index, method, metrics


def _exact(rows: np.ndarray, pt: np.ndarray, poly: np.ndarray, x: np.ndarray, y: np.ndarray, geoms: np.ndarray,
           rank: np.ndarray, index: np.ndarray, method: np.ndarray) -> None:
    """Exact tests of candidate pairs (``pt`` indexes ``rows``), the tie-break, and the results into ``index`` and
    ``method`` at ``rows``."""
    if not len(rows):
        return
    tx, ty = x[rows], y[rows]
    # pairs grouped by polygon: each prepared polygon is tested on a run of points (cache-friendly)
    pt, poly = _sorted_pairs(pt, poly)
    hit = shapely.intersects_xy(geoms[poly], tx[pt], ty[pt])
    pt, poly = pt[hit], poly[hit]
    interior = shapely.contains_xy(geoms[poly], tx[pt], ty[pt])
    chosen, counts = _pick(pt, poly, interior, rank, len(rows))
    single_interior = np.zeros(len(rows), dtype=bool)
    if len(pt):
        single_interior[pt[interior]] = True
    assigned = chosen >= 0
    index[rows[assigned]] = chosen[assigned]
    is_within = assigned & (counts == 1) & single_interior
    method[rows[is_within]] = _WITHIN
    method[rows[assigned & ~is_within]] = _BOUNDARY


#: average H3 cell areas in km² by resolution (h3geo.org)
_CELL_KM2 = {6: 36.13, 7: 5.161, 8: 0.7373, 9: 0.1053, 10: 0.01504, 11: 0.002149}


def auto_fast_resolution(geoms: np.ndarray) -> int:
    """The coarsest H3 resolution (6..11) whose average cell is at most 1/25 of the median polygon's area."""
    if len(geoms) == 0:
        return 9
    b = shapely.bounds(geoms)
    lat = np.radians((b[:, 1] + b[:, 3]) / 2)
    # area in km² from degrees², good enough to pick a resolution
    km2 = shapely.area(geoms) * (111.32**2) * np.cos(lat)
    target = float(np.median(km2)) / 25
    for res in sorted(_CELL_KM2):
        if _CELL_KM2[res] <= target:
            return res
    return 11


def _sorted_pairs(query_idx: np.ndarray, tree_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """STRtree pairs ordered by tree geometry, so each prepared polygon is tested on a run of points."""
    # a stable sort of 16-bit keys is a radix sort in numpy: linear, about 3x faster than sorting int64
    keys = tree_idx.astype(np.uint16) if len(tree_idx) and tree_idx.max() < 2**16 else tree_idx
    order = np.argsort(keys, kind="stable")
    return query_idx[order], tree_idx[order]


def _grow(polys: np.ndarray, margin: float) -> np.ndarray:
    """Scale each convex cell polygon about its centre so every vertex moves out by at least ``margin`` degrees."""
    if len(polys) == 0:
        return polys
    coords, offsets = shapely.get_coordinates(polys), shapely.get_num_coordinates(polys)
    owner = np.repeat(np.arange(len(polys)), offsets)
    centre = np.column_stack([np.bincount(owner, coords[:, 0]) / offsets, np.bincount(owner, coords[:, 1]) / offsets])
    delta = coords - centre[owner]
    radius = np.hypot(delta[:, 0], delta[:, 1])
    grown = centre[owner] + delta * ((radius + margin) / np.where(radius > 0, radius, 1.0))[:, None]
    return shapely.polygons(shapely.linearrings(grown, indices=owner))


def _cell_res(cells: np.ndarray) -> int:
    nz = cells[cells != 0]
    if not len(nz):
        return _h3.MAX_RESOLUTION
    return int((int(nz[0]) >> 52) & 0xF)


def assign_areas(
    points: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    *,
    id_col: str,
    tolerance_m: float = 50.0,
    out_id: str = "area_id",
    out_method: str = "area_method",
    fast_resolution: int | str | None = "auto",
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Assign every point to exactly one polygon of any layer (districts, wards, counties, turf boundaries).

    ``fast_resolution`` is :func:`join_areas`'s (it changes the speed, never the result).

    Returns
    -------
    (GeoDataFrame, dict)
        A copy of ``points`` (same index, rows and order) with ``out_id`` (string, null when unassigned) and
        ``out_method`` (``within``, ``boundary``, ``nearest``, ``unassigned``), and the counts per method.

    Raises
    ------
    MissingColumnsError
        ``id_col`` is not a column of ``areas``.
    ConfigError
        Either frame is not in EPSG:4326 (no silent reprojection).
    """
    _require_4326(points, "points")
    _require_4326(areas, "areas")
    if id_col not in areas.columns:
        raise MissingColumnsError(f"area layer has no column {id_col!r}", found=f"{list(areas.columns)}",
                                  fix="pass id_col naming the id column")
    ids = areas[id_col].astype("str").to_numpy()
    x, y = _xy(points)
    cells = points[S.H3_CELL].to_numpy() if S.H3_CELL in points.columns else None
    if fast_resolution == "auto":
        fast_resolution = auto_fast_resolution(areas.geometry.values)

    res = join_areas(x, y, areas.geometry.values, ids, tolerance_m=tolerance_m, fast_resolution=fast_resolution,
                     cells=cells)
    out = points.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    out[out_id] = take_str(ids, res.index, index=points.index)
    out[out_method] = take_str(list(METHODS), res.method.astype(np.int64), index=points.index)
    return out, res.metrics


def assign_precincts(
    voters: gpd.GeoDataFrame,
    precincts: gpd.GeoDataFrame,
    *,
    id_col: str = S.PRECINCT_ID,
    tolerance_m: float = 50.0,
) -> gpd.GeoDataFrame:
    """Give every geocoded voter exactly one precinct (see the module docstring for the rule).

    Parameters
    ----------
    voters
        Voters (EPSG:4326), as from :func:`geo_segment.read_voter_file`.
    precincts
        Precinct polygons (EPSG:4326).
    id_col
        The precincts' id column.
    tolerance_m
        Points outside every precinct take the nearest one within this many metres (flagged ``nearest``).

    Returns
    -------
    GeoDataFrame
        A copy of ``voters`` (same index and rows) with ``precinct_id`` (string, null when unassigned) and
        ``precinct_method`` (``within``, ``boundary``, ``nearest``, ``unassigned``).

    Examples
    --------
    >>> out = assign_precincts(voters, precincts, id_col="JOINID", tolerance_m=50.0)  # doctest: +SKIP
    >>> out["precinct_method"].value_counts()  # doctest: +SKIP
    """
    out, _ = assign_areas(voters, precincts, id_col=id_col, tolerance_m=tolerance_m, out_id=S.PRECINCT_ID,
                          out_method=S.PRECINCT_METHOD)
    return out


def join_stage(voters: gpd.GeoDataFrame, precincts: gpd.GeoDataFrame, *, id_col: str, tolerance_m: float,
               resolution: int) -> tuple[gpd.GeoDataFrame, StageRecord]:
    """H3 cells and precincts for voters, with a stage record (rows in = rows out; nothing is rejected)."""
    t0 = time.perf_counter()
    with_cells = add_h3_cells(voters, resolution=resolution)
    out, metrics = assign_areas(with_cells, precincts, id_col=id_col, tolerance_m=tolerance_m,
                                out_id=S.PRECINCT_ID, out_method=S.PRECINCT_METHOD)
    S.validate_voters(out, stage="join", extra_required=(S.H3_CELL, S.PRECINCT_ID, S.PRECINCT_METHOD))
    metrics = {k: v for k, v in metrics.items() if k != "seconds"}
    metrics.update({"h3_resolution": resolution, "tolerance_m": tolerance_m})
    stage = StageRecord("join", rows_in=len(voters), rows_out=len(out), rows_rejected=0,
                        seconds=round(time.perf_counter() - t0, 3), metrics=metrics)
    return out, stage
