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
A grid of lon/lat boxes covers the layer; a box is *touched* when a polygon ring (exterior or hole) passes through
it or within a hair of it (rings are sampled every half box and each sample marks the boxes its small square
covers, so no touched box is ever missed). An untouched box lies wholly inside the same polygons, all in their
interior, so its points share one answer: one representative point per box gets the exact test and the others
copy it. The grid is hierarchical (boxes of 8, 4, 2 and 1 finest sides; ``fast_box_m`` sets the finest, by default
from the polygons' median size): a point goes down a level only while its box is touched, and points in touched
finest boxes go through the exact STRtree tests themselves. Results equal the exact rule point for point
(``tests/test_join.py`` compares with ``geopandas.sjoin`` + the same tie-break).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment._keys import distinct_points
from geo_segment._vector import take_str, usable_cores
from geo_segment.errors import ConfigError, InputFileError, MissingColumnsError
from geo_segment.io.manifest import StageRecord

__all__ = ["METHODS", "AreaJoin", "add_h3_cells", "assign_areas", "assign_precincts", "auto_fast_box_m",
           "join_areas", "join_stage"]

METHODS = ("within", "boundary", "nearest", "unassigned")
_WITHIN, _BOUNDARY, _NEAREST, _UNASSIGNED = range(4)
#: metres in a degree of latitude (converts the fast grid's box size; the grid itself works in degrees)
M_PER_DEG = 111_320.0
#: most boxes in the finest fast-path grid (one byte each); a wider layer gets bigger boxes
GRID_MAX_BOXES = 2**26
#: levels of the fast grid above the finest (each doubles the box side)
GRID_LEVELS = 3
#: ring samples marked at a time while the grid is built (bounds its memory; runs that fit the cache are fastest)
_GRID_SAMPLES = 65_536
#: points per thread of the exact tests (below it, one thread: starting a pool costs more than it saves)
_EXACT_ROWS_PER_THREAD = 100_000
#: points per thread of the fast grid's box numbers
_GRID_ROWS_PER_THREAD = 500_000
#: extra margin of the ring samples' squares, in degrees: far above float rounding, far below a box
_EPS_DEG = 1e-9


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


def _coordinate(values: pd.Series) -> np.ndarray:
    """A coordinate column as float64 with NaN for missing: the column itself when it already is (no copy)."""
    if values.dtype == np.float64:
        return values.to_numpy()
    return values.to_numpy("float64", na_value=np.nan)


def _xy(points: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    if S.LAT in points.columns and S.LNG in points.columns:
        return _coordinate(points[S.LNG]), _coordinate(points[S.LAT])
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
    fast_box_m: float | str | None = "auto",
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
    fast_box_m
        Side of the fast path's finest boxes in metres (of latitude), ``"auto"`` (from the polygons' sizes, see
        :func:`auto_fast_box_m`), or ``None`` for exact tests of every point. It changes the speed, never the result.
    metric_crs
        CRS for the nearest search (default: the layer's estimated UTM zone).
    """
    t0 = time.perf_counter()
    n = len(x)
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    geoms = np.asarray(geoms, dtype=object)
    rank = pd.Series(np.asarray(ids).astype(str)).rank(method="dense").to_numpy(dtype=np.int64)
    has_xy = np.isfinite(x) & np.isfinite(y)
    n_xy = int(np.count_nonzero(has_xy))
    metrics: dict[str, Any] = {"points": n, "with_coordinates": n_xy}

    if fast_box_m == "auto":
        fast_box_m = auto_fast_box_m(geoms)
    grid = _fast_grid(geoms, float(fast_box_m) / M_PER_DEG) if fast_box_m is not None and n_xy else None
    if grid is not None:
        metrics["fast_box_m"] = round(grid.side * M_PER_DEG, 1)
    shapely.prepare(geoms)  # after the grid: nothing else touches the polygons while it reads their rings
    tree = shapely.STRtree(geoms)

    # 1. + 2. fast path, then exact tests (of each distinct point once: see _inside)
    if grid is not None and n_xy > n // 2:
        # every point at once, without gathering the coordinates of those that have them: the grid puts a point
        # without coordinates outside every box (NaN fails every comparison), where it stays unassigned
        index, method, p_metrics = _inside(x, y, grid, geoms, tree, rank)
        p_metrics["fast_points"] -= n - n_xy
        todo = np.flatnonzero(has_xy & (index < 0))
    else:
        todo = np.flatnonzero(has_xy)
        index = np.full(n, -1, dtype=np.int64)
        method = np.full(n, _UNASSIGNED, dtype=np.int8)
        p_index, p_method, p_metrics = _inside(x[todo], y[todo], grid, geoms, tree, rank)
        index[todo], method[todo] = p_index, p_method
        todo = todo[index[todo] < 0]
    metrics.update(p_metrics)

    # 3. nearest polygon within the tolerance, in metres (voters of a household outside every polygon: searched once)
    if len(todo) and tolerance_m > 0:
        crs = metric_crs or gpd.GeoSeries(geoms, crs=S.CRS_STORAGE).estimate_utm_crs()
        _once_per_point(todo, x, y, index, method,
                        lambda rows: _nearest(rows, x, y, geoms, tree, rank, index, method, tolerance_m, crs))
        metrics["metric_crs"] = str(crs)
    metrics.update({m: int((method == i).sum()) for i, m in enumerate(METHODS)})
    metrics["not_geocoded"] = n - n_xy
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    return AreaJoin(index=index, method=method, metrics=metrics)


def _nearest(todo: np.ndarray, x: np.ndarray, y: np.ndarray, geoms: np.ndarray, tree: shapely.STRtree,
             rank: np.ndarray, index: np.ndarray, method: np.ndarray, tolerance_m: float, crs: Any) -> None:
    """The nearest polygon within ``tolerance_m`` metres (in ``crs``) of the points at ``todo``, into ``index`` and
    ``method``; points with none stay as they are."""
    # Only polygons near a leftover point are projected (detailed precincts have thousands of vertices), and
    # only points near a polygon are searched: a box of twice the tolerance in degrees around each point
    # (metres per degree at the highest latitude; map projections distort distances by well under 2x near
    # their zone) holds every polygon within tolerance.
    lat_max = min(float(np.max(np.abs(y[todo]))), 89.0)
    dy = 2.0 * tolerance_m / 110_574.0
    dx = 2.0 * tolerance_m / (111_320.0 * np.cos(np.radians(lat_max)))
    boxes = shapely.box(x[todo] - dx, y[todo] - dy, x[todo] + dx, y[todo] + dy)
    box_pt, box_poly = tree.query(boxes)
    near_polys, poly_pos = np.unique(box_poly, return_inverse=True)
    near_pts, pt_pos = np.unique(box_pt, return_inverse=True)
    if not len(near_pts):
        return
    geoms_m = np.asarray(gpd.GeoSeries(geoms[near_polys], crs=S.CRS_STORAGE).to_crs(crs).values)
    rows = todo[near_pts]
    pts_m = np.asarray(gpd.GeoSeries(shapely.points(x[rows], y[rows]), crs=S.CRS_STORAGE).to_crs(crs).values)
    # prepared distance-within first (most leftover points are far from every polygon), exact distances
    # for the pairs within the tolerance only; ties by lowest id
    shapely.prepare(geoms_m)
    within = shapely.dwithin(geoms_m[poly_pos], pts_m[pt_pos], tolerance_m)
    pt, poly = pt_pos[within], poly_pos[within]
    dist = shapely.distance(geoms_m[poly], pts_m[pt])
    ok = dist <= tolerance_m
    pt, poly, dist = pt[ok], near_polys[poly[ok]], dist[ok]
    best = np.full(len(rows), np.inf)
    np.minimum.at(best, pt, dist)
    nearest = dist == best[pt]
    chosen, _ = _pick(pt[nearest], poly[nearest], np.zeros(int(nearest.sum()), bool), rank, len(rows))
    near = chosen >= 0
    index[rows[near]] = chosen[near]
    method[rows[near]] = _NEAREST


def _once_per_point(rows: np.ndarray, x: np.ndarray, y: np.ndarray, index: np.ndarray, method: np.ndarray,
                    assign: Callable[[np.ndarray], None]) -> int | None:
    """``assign`` (which writes ``index`` and ``method`` at the rows it is given) on each distinct point of ``rows``
    once, its answer spread to the points at the same coordinates (voters of a household or building share their
    geocode). Returns how many distinct points there were, or ``None`` when grouping did not pay.

    Only the points the fast grid leaves come here: grouping every point first cost more than the grid's own work
    on them (5M voters, 1.8M distinct points: 0.9 s to group, 0.74 s for the whole join without it).
    """
    distinct = distinct_points(x[rows], y[rows])
    if distinct is None:
        assign(rows)
        return None
    codes, first = distinct
    firsts = rows[first]
    assign(firsts)
    index[rows], method[rows] = index[firsts][codes], method[firsts][codes]
    return len(firsts)


@dataclass(frozen=True)
class _Grid:
    """The fast path's hierarchical box grid: ``touched[0]`` is the finest (``side`` degrees), each next level
    has boxes twice as wide; ``True`` where a polygon ring passes through or near the box."""

    x0: float
    y0: float
    side: float
    touched: tuple[np.ndarray, ...]


def _fast_grid(geoms: np.ndarray, side: float, levels: int = GRID_LEVELS) -> _Grid | None:
    """Mark the boxes every ring of ``geoms`` passes through (at least), at the finest level and the coarser ones."""
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not ok.any() or not side > 0:
        return None
    if not np.isin(shapely.get_type_id(geoms[ok]), (3, 6)).all():
        return None  # only polygon rings are marked: a layer with lines or points gets exact tests throughout
    minx, miny, maxx, maxy = shapely.total_bounds(geoms[ok])
    blk = 2**levels
    while ((maxx - minx) / side + 4 * blk) * ((maxy - miny) / side + 4 * blk) > GRID_MAX_BOXES:
        side *= 2
    # one spare box around the layer; sides rounded up to whole coarsest boxes so each level halves exactly
    x0, y0 = minx - side, miny - side
    nx = -(-(math.ceil((maxx - x0) / side) + 2) // blk) * blk
    ny = -(-(math.ceil((maxy - y0) / side) + 2) // blk) * blk
    coords, ring = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geoms[ok])), return_index=True)
    same = ring[1:] == ring[:-1]
    start, d = coords[:-1][same], np.diff(coords, axis=0)[same]
    # Samples at most half a box apart (in x and in y) along every segment, both ends included: each point of a
    # segment is within a quarter box of a sample in x and in y, so the squares of half-side a quarter box (plus a
    # hair for rounding) around the samples cover the rings, and each square covers at most 2 x 2 boxes: marking
    # the boxes of its four corners marks every box a ring passes through.
    step = side / 2
    k = np.ceil(np.abs(d).max(axis=1) / step).astype(np.int64) + 1
    half = step / 2 + _EPS_DEG
    finest = np.zeros((nx, ny), dtype=bool)
    flat = finest.reshape(-1)
    # segments in runs of at most _GRID_SAMPLES samples, so a national layer's rings never need gigabytes at once
    ends = np.cumsum(k)
    cuts = np.searchsorted(ends, np.arange(_GRID_SAMPLES, int(ends[-1]) if len(ends) else 0, _GRID_SAMPLES))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(k)], strict=True):
        if hi <= lo:
            continue
        kk = k[lo:hi]
        seg = np.repeat(np.arange(lo, hi), kk)
        t = (np.arange(len(seg)) - np.repeat(np.cumsum(kk) - kk, kk)) / np.repeat(np.maximum(kk - 1, 1), kk)
        sx = start[seg, 0] + t * d[seg, 0]
        sy = start[seg, 1] + t * d[seg, 1]
        gy = [np.floor((sy + o - y0) / side).astype(np.int64) for o in (-half, half)]
        for o in (-half, half):
            gx = np.floor((sx + o - x0) / side).astype(np.int64) * ny
            for g in gy:
                flat[gx + g] = True
    touched: list[np.ndarray] = [finest]
    for _ in range(levels):
        rows = touched[-1][0::2] | touched[-1][1::2]  # a box is touched when one of its four quarters is
        touched.append(rows[:, 0::2] | rows[:, 1::2])
    return _Grid(float(x0), float(y0), float(side), tuple(touched))


def _first_per_key(keys: np.ndarray, size: int) -> np.ndarray:
    """For each element, the position of an element with the same key (one per key), keys in ``0..size-1``."""
    n = len(keys)
    if size <= max(4 * n, 2**22):
        width = np.int32 if n < 2**31 else np.int64  # half the table's pages
        lut = np.empty(size, dtype=width)
        lut[keys] = np.arange(n, dtype=width)
        return lut[keys].astype(np.int64)
    codes, uniq = pd.factorize(keys)
    first = np.empty(len(uniq), dtype=np.int64)
    first[codes] = np.arange(n)
    return first[codes]


def _grid_representatives(x: np.ndarray, y: np.ndarray, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Each point's representative (a point of the same untouched box; ``-1`` for points in touched finest boxes,
    which need their own exact test) and those points. Points outside the grid intersect no polygon: ``-2``.

    Large inputs are cut into one contiguous part per core, each on its own thread (numpy releases Python's lock):
    a box then has a representative in each part it has points in, which changes nothing but a few more exact
    tests, since every point of an untouched box gets the same answer.
    """
    parts = min(usable_cores(), len(x) // _GRID_ROWS_PER_THREAD)
    if parts <= 1:
        return _grid_part(x, y, grid, 0)
    bounds = np.linspace(0, len(x), parts + 1).astype(np.int64)
    with ThreadPoolExecutor(parts, thread_name_prefix="join-grid") as pool:
        done = list(pool.map(lambda a, b: _grid_part(x[a:b], y[a:b], grid, a), bounds[:-1], bounds[1:]))
    return np.concatenate([r for r, _ in done]), np.concatenate([o for _, o in done])


def _grid_part(x: np.ndarray, y: np.ndarray, grid: _Grid, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_grid_representatives` of the points ``offset``, ``offset + 1``, ... (positions include it)."""
    nx, ny = grid.touched[0].shape
    # box numbers in 32 bits (a grid has at most GRID_MAX_BOXES boxes), through one scratch array: fresh memory is
    # slow to fault in, and 5M points made eight 40 MB temporaries here (0.25 s of a 0.85 s first join)
    box = np.subtract(x, grid.x0)
    box /= grid.side
    np.floor(box, out=box)
    inside = (box >= 0) & (box < nx)
    with np.errstate(invalid="ignore"):  # points without coordinates (NaN) are outside: their box is never read
        ix = box.astype(np.int32)
    np.subtract(y, grid.y0, out=box)
    box /= grid.side
    np.floor(box, out=box)
    inside &= (box >= 0) & (box < ny)
    with np.errstate(invalid="ignore"):
        iy = box.astype(np.int32)
    del box
    rep_of = np.full(len(x), -2, dtype=np.int64)
    rest = np.flatnonzero(inside)
    for level in range(len(grid.touched) - 1, -1, -1):  # coarsest first
        touched = grid.touched[level]
        key = (ix[rest] >> level) * np.int32(touched.shape[1]) + (iy[rest] >> level)
        hit = touched.reshape(-1)[key]
        free = rest[~hit]
        rep_of[free] = free[_first_per_key(key[~hit], touched.size)] + offset
        rest = rest[hit]
    rep_of[rest] = -1
    return rep_of, rest + offset


def _inside(x: np.ndarray, y: np.ndarray, grid: _Grid | None, geoms: np.ndarray, tree: shapely.STRtree,
            rank: np.ndarray) -> tuple[
    np.ndarray, np.ndarray, dict[str, int]
]:
    """Steps 1 (the fast grid) and 2 (exact tests) for points that all have coordinates.

    Returns each point's polygon position (``-1`` when none intersects it), its method and counts; ``tree`` is the
    STRtree of the prepared ``geoms``.
    """
    n = len(x)
    index = np.full(n, -1, dtype=np.int64)
    method = np.full(n, _UNASSIGNED, dtype=np.int8)
    metrics: dict[str, int] = {}
    if grid is None or not n:
        metrics.update(_exact_distinct(np.arange(n), x, y, geoms, tree, rank, index, method))
        return index, method, metrics
    rep_of, own = _grid_representatives(x, y, grid)
    reps = _representatives(rep_of)
    rows = np.concatenate([reps, own])
    metrics.update(_exact_distinct(rows, x, y, geoms, tree, rank, index, method))
    # every point of an untouched box takes its representative's answer: one gather through rep_of each (its
    # negative entries, the points tested themselves and those outside the grid, clip to row 0 and keep their own)
    copied = rep_of >= 0
    n_copied = int(np.count_nonzero(copied))
    index_all = index.take(rep_of, mode="clip")
    np.copyto(index_all, index, where=~copied)
    method_all = method.take(rep_of, mode="clip")
    np.copyto(method_all, method, where=~copied)
    metrics["fast_points"] = n_copied - len(reps) + int(np.count_nonzero(rep_of == -2))
    return index_all, method_all, metrics


#: rows compared at once by :func:`_representatives`
_REP_ROWS = 1 << 20


def _representatives(rep_of: np.ndarray) -> np.ndarray:
    """The points that represent their box (``rep_of[i] == i``), a million rows at a time (no 5M-row ``arange``)."""
    found = [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(rep_of), _REP_ROWS):
        part = rep_of[start : start + _REP_ROWS]
        found.append(start + np.flatnonzero(part == np.arange(start, start + len(part))))
    return np.concatenate(found)


def _exact_distinct(rows: np.ndarray, x: np.ndarray, y: np.ndarray, geoms: np.ndarray, tree: shapely.STRtree,
                    rank: np.ndarray, index: np.ndarray, method: np.ndarray) -> dict[str, int]:
    """:func:`_exact_threaded` on each distinct point of ``rows`` once (:func:`_once_per_point`); the counts."""
    n_distinct = _once_per_point(rows, x, y, index, method,
                                 lambda part: _exact_threaded(part, x, y, geoms, tree, rank, index, method))
    metrics = {"exact_points": len(rows)}
    if n_distinct is not None:
        metrics["distinct_points"] = n_distinct
    return metrics


def _exact_threaded(rows: np.ndarray, x: np.ndarray, y: np.ndarray, geoms: np.ndarray, tree: shapely.STRtree,
                    rank: np.ndarray, index: np.ndarray, method: np.ndarray) -> None:
    """STRtree candidates and exact tests of the points at ``rows``, in contiguous parts on one thread per core.

    Shapely's tree queries and predicates release Python's lock, and each part writes only its own rows of
    ``index`` and ``method``, so the parts run side by side; a point's answer never depends on the others'.
    GEOS builds a prepared polygon's point index lazily on first use, which is not thread-safe
    (libgeos/geos#825): every part but the first tests its own prepared copy of the polygons.
    """
    parts = min(usable_cores(), len(rows) // _EXACT_ROWS_PER_THREAD)

    def run(part: np.ndarray, polygons: np.ndarray) -> None:
        pt, poly = tree.query(shapely.points(x[part], y[part]))
        _exact(part, pt, poly, x, y, polygons, rank, index, method)

    if parts <= 1:
        run(rows, geoms)
        return
    copies = [geoms] + [_prepared_copy(geoms) for _ in range(parts - 1)]
    with ThreadPoolExecutor(parts, thread_name_prefix="join-exact") as pool:
        list(pool.map(run, np.array_split(rows, parts), copies))


def _prepared_copy(geoms: np.ndarray) -> np.ndarray:
    """New GEOS geometries equal to ``geoms`` (same coordinates, bit for bit), prepared."""
    copy = shapely.from_wkb(shapely.to_wkb(geoms, flavor="iso"))
    shapely.prepare(copy)
    return np.asarray(copy, dtype=object)


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


def auto_fast_box_m(geoms: np.ndarray) -> float:
    """The fast grid's finest box side in metres: the median polygon's side over 80 (boxes of 8 finest sides are
    a tenth of it), at least 5 m."""
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) if len(geoms) else np.zeros(0, bool)
    if not ok.any():
        return 50.0
    side_deg = float(np.sqrt(np.median(shapely.area(geoms[ok]))))
    return max(side_deg * M_PER_DEG / 80.0, 5.0)


def _sorted_pairs(query_idx: np.ndarray, tree_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """STRtree pairs ordered by tree geometry, so each prepared polygon is tested on a run of points."""
    # a stable sort of 16-bit keys is a radix sort in numpy: linear, about 3x faster than sorting int64
    keys = tree_idx.astype(np.uint16) if len(tree_idx) and tree_idx.max() < 2**16 else tree_idx
    order = np.argsort(keys, kind="stable")
    return query_idx[order], tree_idx[order]


def assign_areas(
    points: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    *,
    id_col: str,
    tolerance_m: float = 50.0,
    out_id: str = "area_id",
    out_method: str = "area_method",
    fast_box_m: float | str | None = "auto",
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Assign every point to exactly one polygon of any layer (districts, wards, counties, turf boundaries).

    ``fast_box_m`` is :func:`join_areas`'s (it changes the speed, never the result).

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
    res = join_areas(x, y, areas.geometry.values, ids, tolerance_m=tolerance_m, fast_box_m=fast_box_m)
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
