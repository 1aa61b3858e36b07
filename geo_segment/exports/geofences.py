"""Geofence exports: GeoJSON (RFC 7946), KML 2.2, WKT CSV, radius CSV, H3 cell lists, ZIP and precinct lists.

Before writing, every fence is repaired and checked (bad-inputs rows 14-16, 25): reprojected to WGS84, split at the
antimeridian, ``make_valid``, rounded to the target's decimals, rings closed and wound (exterior counter-clockwise,
holes clockwise), then held against the target's limits (vertices per ring, parts, fences per file, radius range,
residents per fence). A limit is an error naming the target, the limit and the count, unless the caller asks to
simplify (coverage-preserving, shared borders kept) or to clamp a radius.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon

from geo_segment import schema as S
from geo_segment._h3 import cells_to_hex, polygons_to_cells
from geo_segment.errors import (
    AudienceTooSmallError,
    ConfigError,
    GuardrailError,
    InputFileError,
    LimitExceededError,
    Location,
    SchemaError,
)
from geo_segment.exports.guardrails import (
    Suppression,
    append_audit,
    apply_suppression,
    check_columns,
    check_eu_geographies,
    check_purpose,
    check_states,
    frame_digest,
)
from geo_segment.exports.platforms import PlatformRules, Profile, load_rules
from geo_segment.io.atomic import atomic_path, safe_output_path, write_csv

__all__ = [
    "FORMATS",
    "GeofenceExport",
    "VoterGrid",
    "count_residents",
    "export_geofences",
    "geojson_dict",
    "kml_text",
    "prepare_fences",
    "radius_targets",
    "read_fences",
    "split_antimeridian",
    "voter_grid",
]

#: inputs shorter than this run on one thread (a thread costs more than it saves)
_THREADED_MIN = 2048
FORMATS = ("geojson", "kml", "wkt", "radius", "h3", "zip", "precinct")
_ACTION = {"geojson": "polygon", "kml": "polygon", "wkt": "polygon", "radius": "radius", "h3": "h3", "zip": "zip",
           "precinct": "precinct"}
FENCE_ID = "fence_id"
RESIDENTS = "residents"
#: Columns allowed in geofence files (never personal data, party or vote history).
GEOFENCE_ALLOWLIST = (FENCE_ID, RESIDENTS, "wkt", "lat", "lng", "radius", "radius_unit", "overshoot", "circle",
                      S.H3_CELL, "resolution", S.ZIP5, S.PRECINCT_ID)


# --- reading and repairing -------------------------------------------------------------------------------------


def read_fences(path: str | Path, *, id_col: str, layer: str | int | None = None) -> tuple[gpd.GeoDataFrame, int]:
    """Read polygons from any OGR source, closing unclosed rings; return the frame and how many were closed.

    Raises
    ------
    InputFileError
        When the file is missing or unreadable, or ``id_col`` is absent.
    """
    import pyogrio

    p = Path(path)
    if not p.exists():
        raise InputFileError("geofence file not found", where=Location(p), fix="check the path")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL: "Non closed ring detected"
        try:
            fixed = pyogrio.read_dataframe(p, layer=layer, on_invalid="fix")
            strict = pyogrio.read_dataframe(p, layer=layer, on_invalid="ignore", columns=[])
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise InputFileError(f"cannot read polygons: {exc}", where=Location(p),
                                 fix="use a GeoJSON, GeoPackage, Shapefile, KML or GeoParquet file") from None
    if id_col not in fixed.columns:
        raise InputFileError(f"no column {id_col!r}", where=Location(p), found=f"columns {list(fixed.columns)}",
                             fix="pass --id-col with the fence id column")
    closed = int((strict.geometry.isna() & fixed.geometry.notna()).sum())
    return fixed, closed


def split_antimeridian(geom: Any) -> Any:
    """Split a lon/lat polygon that crosses the antimeridian into parts on either side (RFC 7946 section 3.1.9).

    A polygon crosses when its longitudes span more than 180 degrees (written as 179 ... -179) or leave
    [-180, 180] (written as 179 ... 181). Other geometries are returned unchanged.
    """
    if geom is None or geom.is_empty:
        return geom
    x0, _, x1, _ = geom.bounds
    if x1 - x0 <= 180 and x0 >= -180 and x1 <= 180:
        return geom
    if x1 - x0 > 180:  # 179 ... -179: move the western side east of 180
        geom = shapely.transform(geom, lambda c: np.column_stack([np.where(c[:, 0] < 0, c[:, 0] + 360, c[:, 0]),
                                                                  c[:, 1]]))
    geom = shapely.make_valid(geom)
    parts = []
    for lo in (-540.0, -180.0, 180.0):
        piece = shapely.intersection(geom, shapely.box(lo, -90, lo + 360, 90))
        if not piece.is_empty:
            shift = -360.0 if lo == 180.0 else (360.0 if lo == -540.0 else 0.0)
            parts.append(shapely.transform(piece, lambda c, s=shift: c + np.array([s, 0.0])))
    return _polygonal(shapely.union_all(parts)) if len(parts) > 1 else _polygonal(parts[0])


def _polygonal(geom: Any) -> Any:
    """Keep the polygonal parts of a geometry (a Polygon or MultiPolygon, possibly empty)."""
    if geom is None or geom.is_empty:
        return Polygon()
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    polys: list[Polygon] = []
    for g in getattr(geom, "geoms", []):
        p = _polygonal(g)
        polys.extend(p.geoms if isinstance(p, MultiPolygon) else [p] if not p.is_empty else [])
    return MultiPolygon(polys) if len(polys) > 1 else polys[0] if polys else Polygon()


def _ring_vertex_counts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per geometry: the largest ring's vertex count (closing vertex included) and the number of parts."""
    rings, idx = shapely.get_rings(geoms, return_index=True)
    counts = shapely.get_num_coordinates(rings)
    biggest = np.zeros(len(geoms), dtype=np.int64)
    np.maximum.at(biggest, idx, counts)
    parts = shapely.get_num_geometries(geoms)
    return biggest, np.asarray(parts, dtype=np.int64)


def prepare_fences(
    fences: gpd.GeoDataFrame, *, id_col: str, profile: Profile, simplify: bool = False
) -> tuple[gpd.GeoDataFrame, dict[str, int]]:
    """Repair and check fences for a target; return ``fence_id`` + ``geometry`` (EPSG:4326) and repair counts.

    Parameters
    ----------
    fences
        Polygons with a CRS and a unique ``id_col``.
    id_col
        Column naming each fence.
    profile
        The target's limits.
    simplify
        When a ring has more vertices than the target allows, simplify every fence together with
        ``shapely.coverage_simplify`` (shared borders stay shared) until they fit, instead of failing.

    Returns
    -------
    (geopandas.GeoDataFrame, dict)
        Fences with ``fence_id`` (string) and valid, rounded, wound geometry; counts ``reprojected``,
        ``made_valid``, ``antimeridian_split``, ``rewound``, ``simplified``.

    Raises
    ------
    SchemaError
        Missing CRS or id column, duplicated or missing ids.
    LimitExceededError
        Vertices per ring, parts per multipolygon or fences per file over the target's limit (message names the
        target, the limit and the count).
    """
    if id_col not in fences.columns:
        raise SchemaError(f"fences have no column {id_col!r}", found=f"columns {list(fences.columns)}",
                          fix="pass id_col naming the fence id")
    if fences.crs is None:
        raise SchemaError("fences have no CRS", expected="a GeoDataFrame with a CRS (EPSG:4326 at rest)",
                          fix="set the CRS of the polygon file")
    ids = fences[id_col].astype("string")
    if ids.isna().any() or ids.duplicated().any():
        raise SchemaError(f"fence ids in {id_col!r} must be present and unique",
                          found=f"{int(ids.isna().sum())} missing, {int(ids.duplicated().sum())} duplicated",
                          fix="choose a unique id column")
    counts = {"reprojected": 0, "made_valid": 0, "antimeridian_split": 0, "rewound": 0, "simplified": 0,
              "empty_dropped": 0}
    frame = fences
    if not frame.crs.equals(S.CRS_STORAGE):
        frame = frame.to_crs(S.CRS_STORAGE)
        counts["reprojected"] = len(frame)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    decimals = int(profile.limit("coordinate_decimals") or 6)
    grid = 10.0 ** -decimals
    out = geoms.copy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    bounds = shapely.bounds(geoms)
    crossing = present & ((bounds[:, 2] - bounds[:, 0] > 180) | (bounds[:, 0] < -180) | (bounds[:, 2] > 180))
    for i in np.flatnonzero(crossing):  # rare: one at a time
        out[i] = split_antimeridian(out[i])
    counts["antimeridian_split"] = int(crossing.sum())
    invalid = present & ~shapely.is_valid(out)
    out[invalid] = shapely.make_valid(out[invalid])
    counts["made_valid"] = int(invalid.sum())
    out[~present] = None
    out[present] = _polygonal_array(out[present])
    keep = np.array([g is not None and not g.is_empty for g in out], dtype=bool)
    counts["empty_dropped"] = int((~keep).sum())
    geoms = out[keep]
    ids = ids[keep]
    geoms = _polygonal_array(_in_halves(lambda a, b: shapely.set_precision(geoms[a:b], grid), len(geoms)))
    collapsed = shapely.is_missing(geoms) | shapely.is_empty(geoms)  # slivers thinner than the coordinate grid
    if collapsed.any():
        keep[np.flatnonzero(keep)[collapsed]] = False
        geoms, ids = geoms[~collapsed], ids[~collapsed]
        counts["empty_dropped"] = int((~keep).sum())
    oriented = shapely.orient_polygons(geoms)
    counts["rewound"] = int((~shapely.equals_exact(oriented, geoms, tolerance=0)).sum()) if len(geoms) else 0
    geoms = oriented
    biggest, parts = _ring_vertex_counts(geoms)
    max_v = profile.limit("max_vertices")
    if max_v is not None and len(geoms) and biggest.max() > max_v:
        over = int((biggest > max_v).sum())
        if not simplify:
            raise LimitExceededError(
                f"{over} fences have rings over {profile.target}'s vertex limit ({profile.source('max_vertices')})",
                expected=f"at most {int(max_v)} vertices per ring",
                found=f"up to {int(biggest.max())} (fence {ids.iloc[int(biggest.argmax())]})",
                fix="pass --simplify to simplify them (shared borders kept), or split the fences",
            )
        tol = grid
        for _ in range(40):
            tol *= 2
            trial = _polygonal_array(shapely.set_precision(shapely.coverage_simplify(geoms, tol), grid))
            trial = shapely.orient_polygons(shapely.make_valid(trial))
            trial = _polygonal_array(trial)
            biggest, parts = _ring_vertex_counts(trial)
            if biggest.max() <= max_v:
                break
        counts["simplified"] = over
        geoms = trial
    max_parts = profile.limit("max_parts")
    if max_parts is not None and len(geoms) and parts.max() > max_parts:
        raise LimitExceededError(
            f"fences have more polygons than {profile.target} allows ({profile.source('max_parts')})",
            expected=f"at most {int(max_parts)} polygons per multipolygon", found=f"up to {int(parts.max())}",
            fix="split the fence into several fences",
        )
    max_f = profile.limit("max_fences")
    if max_f is not None and len(geoms) > max_f:
        raise LimitExceededError(
            f"too many fences for {profile.target} ({profile.source('max_fences')})",
            expected=f"at most {int(max_f)}", found=str(len(geoms)), fix="export them in several campaigns",
        )
    min_v = profile.limit("min_vertices")
    if min_v is not None and len(geoms):
        rings = shapely.get_rings(geoms)
        if int(shapely.get_num_coordinates(rings).min()) < min_v:  # pragma: no cover - valid rings have >= 4
            raise LimitExceededError(f"a ring has fewer vertices than {profile.target} needs",
                                     expected=f"at least {int(min_v)}")
    result = gpd.GeoDataFrame({FENCE_ID: ids.to_numpy()}, geometry=geoms, crs=S.CRS_STORAGE,
                              index=frame.index[keep])
    result[FENCE_ID] = result[FENCE_ID].astype("string")
    return result, counts


def _polygonal_array(geoms: np.ndarray) -> np.ndarray:
    out = np.asarray(geoms, dtype=object).copy()
    for i, g in enumerate(out):
        if not isinstance(g, Polygon | MultiPolygon):
            out[i] = _polygonal(g)
    return out


# --- residents ---------------------------------------------------------------------------------------------------


def count_residents(
    fences: gpd.GeoDataFrame,
    *,
    residents_col: str | None = None,
    population: gpd.GeoDataFrame | None = None,
    population_col: str = "TOTPOP",
    voters: gpd.GeoDataFrame | None = None,
    _inside: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, str]:
    """Residents per fence, from the best source given; return the counts and the method used.

    In order: a column of the fences (``residents_col``, e.g. ``TOTPOP`` of precincts); a population layer
    (census blocks) weighted by the share of each block's area inside the fence; or the voters inside the fence
    (a lower bound: registered voters only).

    Raises
    ------
    GuardrailError
        When no source is given (the minimum residents per fence cannot be checked).
    """
    if residents_col is not None:
        if residents_col not in fences.columns:
            raise SchemaError(f"fences have no column {residents_col!r}", fix="correct --residents-col")
        return fences[residents_col].astype("float64").fillna(0).to_numpy(), f"column {residents_col}"
    if population is not None:
        if population_col not in population.columns:
            raise SchemaError(f"population layer has no column {population_col!r}", fix="name its count column")
        crs = fences.estimate_utm_crs()
        f = np.asarray(fences.to_crs(crs).geometry.values, dtype=object)
        b = np.asarray(population.to_crs(crs).geometry.values, dtype=object)
        pop = population[population_col].astype("float64").fillna(0).to_numpy()
        tree = shapely.STRtree(b)
        fi, bi = tree.query(f, predicate="intersects")
        share = shapely.area(shapely.intersection(f[fi], b[bi])) / np.maximum(shapely.area(b[bi]), 1e-9)
        out = np.bincount(fi, weights=share * pop[bi], minlength=len(f))
        return out, f"population layer ({population_col}, area-weighted)"
    if voters is not None:
        inside = _inside if _inside is not None else _voters_in_fences(fences, voters)
        return np.bincount(inside[0], minlength=len(fences)).astype("float64"), "voters inside (lower bound)"
    raise GuardrailError(
        "cannot check the minimum residents per fence without a source of residents",
        fix="pass residents_col (--residents-col), a population layer (--population) or voters (--voters)",
    )


@dataclass(frozen=True, eq=False)
class VoterGrid:
    """Geocoded voters bucketed on a regular ``size`` x ``size`` lng/lat grid over their extent, to find the
    voters of a box with array arithmetic (no point geometries, no tree of a million points).

    Built by :func:`voter_grid`; ``order[starts[c]:starts[c + 1]]`` are the positions of the voters in cell ``c``
    (row-major, ``c = row * size + column``).
    """

    lng: np.ndarray
    lat: np.ndarray
    order: np.ndarray
    starts: np.ndarray
    origin: tuple[float, float]
    scale: tuple[float, float]
    size: int

    def cells(self, values: np.ndarray, axis: int) -> np.ndarray:
        """Grid column (``axis=0``, longitudes) or row (``axis=1``, latitudes) of each value, clipped to the grid.

        Monotone in the value (a subtraction, a product by a positive scale, a floor, a clip), so a voter inside
        a box always falls in a cell between the cells of the box's corners.
        """
        c = np.floor((np.asarray(values, dtype="float64") - self.origin[axis]) * self.scale[axis])
        return np.clip(c, 0, self.size - 1).astype(np.int64)

    def in_boxes(self, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(box position, voter position) of the geocoded voters inside each box ``[lng0, lat0, lng1, lat1]``
        (edges included), grouped by box."""
        n = len(bounds)
        if not n or not len(self.order):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        finite = np.isfinite(bounds).all(axis=1)  # an empty geometry's box (NaN) holds nobody
        bounds = np.where(finite[:, None], bounds, 0.0)
        c0, c1 = self.cells(bounds[:, 0], 0), self.cells(bounds[:, 2], 0)
        r0, r1 = self.cells(bounds[:, 1], 1), np.where(finite, self.cells(bounds[:, 3], 1), -1)
        r0 = np.where(finite, r0, 0)
        # one run of consecutive cells per (box, grid row), then every voter of each run
        rows = r1 - r0 + 1
        box = np.repeat(np.arange(n), rows)
        row = r0[box] + np.arange(len(box)) - np.repeat(np.cumsum(rows) - rows, rows)
        lo = self.starts[row * self.size + c0[box]]
        hi = self.starts[row * self.size + c1[box] + 1]
        length = hi - lo
        box = np.repeat(box, length)
        vi = self.order[np.repeat(lo - (np.cumsum(length) - length), length) + np.arange(int(length.sum()))]
        x, y = self.lng[vi], self.lat[vi]
        inside = (x >= bounds[box, 0]) & (x <= bounds[box, 2]) & (y >= bounds[box, 1]) & (y <= bounds[box, 3])
        return box[inside], vi[inside]


def voter_grid(voters: pd.DataFrame, *, size: int = 1024) -> VoterGrid:
    """Bucket the geocoded voters (finite ``lat`` and ``lng``) on a grid; see :class:`VoterGrid`.

    Build it once and pass it to every :func:`export_geofences` call on the same voters (``grid=``).
    """
    lat = voters[S.LAT].to_numpy(dtype="float64")
    lng = voters[S.LNG].to_numpy(dtype="float64")
    ok = np.flatnonzero(np.isfinite(lat) & np.isfinite(lng))
    if not len(ok):
        return VoterGrid(lng, lat, ok, np.zeros(size * size + 1, np.int64), (0.0, 0.0), (1.0, 1.0), size)
    x0, x1, y0, y1 = lng[ok].min(), lng[ok].max(), lat[ok].min(), lat[ok].max()
    scale = (size / (x1 - x0) if x1 > x0 else 1.0, size / (y1 - y0) if y1 > y0 else 1.0)
    grid = VoterGrid(lng, lat, ok, np.zeros(0, np.int64), (float(x0), float(y0)), scale, size)
    cell = grid.cells(lat[ok], 1) * size + grid.cells(lng[ok], 0)
    order = ok[np.argsort(cell, kind="stable")]
    starts = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=size * size))]).astype(np.int64)
    return VoterGrid(lng, lat, order, starts, grid.origin, grid.scale, size)


def _voters_in_fences(
    fences: gpd.GeoDataFrame, voters: pd.DataFrame, grid: VoterGrid | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fence position, voter position) pairs of geocoded voters inside each fence (boundary included), grouped
    by fence.

    Candidates are the voters inside each fence's bounding box, found on a grid of the voters (``grid``: the
    :func:`voter_grid` of ``voters`` when already built); then exact point tests grouped by fence on prepared
    copies of the fences (grouping matters: the same tests in voter order are several times slower).
    """
    grid = grid if grid is not None else voter_grid(voters)
    f = shapely.from_wkb(shapely.to_wkb(np.asarray(fences.geometry.values, dtype=object)))  # prepare our own copy
    shapely.prepare(f)
    fi, vi = grid.in_boxes(shapely.bounds(f))
    # two halves on two threads (shapely releases the GIL), cut between two fences: a prepared fence is never
    # used by both threads
    cut = int(np.searchsorted(fi, fi[len(fi) // 2])) if len(fi) else 0
    hit = _in_halves(lambda a, b: shapely.intersects_xy(f[fi[a:b]], grid.lng[vi[a:b]], grid.lat[vi[a:b]]),
                     len(fi), cut)
    return fi[hit], vi[hit]


def _in_halves(fn: Callable[[int, int], np.ndarray], n: int, cut: int | None = None) -> np.ndarray:
    """``fn(0, n)`` computed as ``fn(0, cut)`` and ``fn(cut, n)`` on two threads and concatenated (the same array,
    in the same order). For element-wise shapely functions, which release the GIL: the stage runs alone, so the
    machine's second core is otherwise idle. Small inputs run in the calling thread."""
    cut = n // 2 if cut is None else cut
    if n < _THREADED_MIN or cut in (0, n):
        return fn(0, n)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(fn, 0, cut)
        second = fn(cut, n)
        return np.concatenate([first.result(), second])


# --- writers -----------------------------------------------------------------------------------------------------


def _num(x: float, decimals: int) -> float:
    v = round(float(x), decimals)
    return 0.0 if v == 0 else v


def _ring(ring: Any, decimals: int) -> list[list[float]]:
    return [[_num(x, decimals), _num(y, decimals)] for x, y in ring.coords]


def _poly_coords(p: Polygon, decimals: int) -> list[list[list[float]]]:
    return [_ring(p.exterior, decimals), *[_ring(r, decimals) for r in p.interiors]]


def geojson_dict(fences: gpd.GeoDataFrame, *, properties: Sequence[str] = (FENCE_ID, RESIDENTS),
                 decimals: int = 6) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection of prepared fences: lon/lat, ``decimals`` places, no ``crs`` member."""
    feats = []
    for row, g in zip(fences[list(properties)].itertuples(index=False), fences.geometry.values, strict=True):
        if isinstance(g, Polygon):
            geom = {"type": "Polygon", "coordinates": _poly_coords(g, decimals)}
        else:
            geom = {"type": "MultiPolygon", "coordinates": [_poly_coords(p, decimals) for p in g.geoms]}
        props = {k: (None if pd.isna(v) else int(v) if isinstance(v, int | float | np.number) else str(v))
                 for k, v in zip(properties, row, strict=True)}
        feats.append({"type": "Feature", "id": props.get(FENCE_ID), "properties": props, "geometry": geom})
    return {"type": "FeatureCollection", "features": feats}


def _kml_coords(ring: Any, decimals: int) -> str:
    return " ".join(f"{_fmt(x, decimals)},{_fmt(y, decimals)}" for x, y in ring.coords)


def _fmt(x: float, decimals: int) -> str:
    s = f"{_num(x, decimals):.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _kml_polygon(p: Polygon, decimals: int) -> str:
    inner = "".join(f"<innerBoundaryIs><LinearRing><coordinates>{_kml_coords(r, decimals)}</coordinates>"
                    "</LinearRing></innerBoundaryIs>" for r in p.interiors)
    return (f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{_kml_coords(p.exterior, decimals)}"
            f"</coordinates></LinearRing></outerBoundaryIs>{inner}</Polygon>")


def kml_text(fences: gpd.GeoDataFrame, *, name: str = "fences", decimals: int = 6) -> str:
    """A KML 2.2 document: one Placemark per fence, ``lon,lat`` tuples, closed rings, exterior counter-clockwise."""
    marks = []
    for fid, res, g in zip(fences[FENCE_ID], fences[RESIDENTS], fences.geometry.values, strict=True):
        body = (_kml_polygon(g, decimals) if isinstance(g, Polygon) else
                "<MultiGeometry>" + "".join(_kml_polygon(p, decimals) for p in g.geoms) + "</MultiGeometry>")
        value = "" if pd.isna(res) else str(int(res))
        data = f'<ExtendedData><Data name="{RESIDENTS}"><value>{value}</value></Data></ExtendedData>'
        marks.append(f"<Placemark><name>{escape(str(fid))}</name>{data}{body}</Placemark>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
            f"<name>{escape(name)}</name>" + "\n".join(marks) + "</Document></kml>\n")


def _write_text(text: str, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    os.chmod(path, 0o644)
    return path


def _minimum_circles(
    g: Any, *, min_radius_m: float, max_overshoot: float, max_circles: int
) -> tuple[list[Any], np.ndarray]:
    """Pieces of a metric polygon, each to be covered by its minimum bounding circle, and the circles' radii.

    While the circles together cover more than ``max_overshoot`` times the polygon's area, the piece with the
    largest circle is cut in two across its longer side (never below twice the minimum radius, at most
    ``max_circles`` pieces). Each piece's radius is computed once, when the piece is cut.
    """
    pieces = [g]
    radii = np.array([shapely.minimum_bounding_radius(g)], dtype="float64")
    area = max(g.area, 1e-9)
    while len(pieces) < max_circles:
        if np.pi * float((radii**2).sum()) / area <= max_overshoot:
            break
        splittable = radii >= 2 * min_radius_m
        if not splittable.any():
            break
        worst = int(np.argmax(np.where(splittable, radii, -1.0)))
        p = pieces[worst]
        x0, y0, x1, y1 = p.bounds
        if x1 - x0 >= y1 - y0:
            xm = (x0 + x1) / 2
            halves = [shapely.box(x0, y0, xm, y1), shapely.box(xm, y0, x1, y1)]
        else:
            ym = (y0 + y1) / 2
            halves = [shapely.box(x0, y0, x1, ym), shapely.box(x0, ym, x1, y1)]
        new = [_polygonal(shapely.intersection(p, h)) for h in halves]
        new = [n for n in new if not n.is_empty and n.area > 0]
        if len(new) < 2:
            break
        pieces = pieces[:worst] + new + pieces[worst + 1:]
        radii = np.concatenate([radii[:worst], shapely.minimum_bounding_radius(np.array(new, dtype=object)),
                                radii[worst + 1:]])
    return pieces, radii


def radius_targets(
    fences: gpd.GeoDataFrame,
    *,
    profile: Profile,
    clamp: bool = False,
    max_overshoot: float = 2.0,
    max_circles: int = 8,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Circles (lat, lng, radius in km) covering each fence: its minimum bounding circle, or several where one
    would cover more than ``max_overshoot`` times the fence's area.

    Raises
    ------
    LimitExceededError
        A radius outside the target's range (unless ``clamp``), or more circles than the target allows.
    """
    crs = fences.estimate_utm_crs()
    metric = np.asarray(fences.to_crs(crs).geometry.values, dtype=object)
    lo_km = profile.limit("min_radius_km")
    hi_km = profile.limit("max_radius_km")
    rows: list[tuple[str, int, Any, float, float]] = []
    for fid, g in zip(fences[FENCE_ID], metric, strict=True):
        pieces, radii = _minimum_circles(g, min_radius_m=(lo_km or 0) * 1000, max_overshoot=max_overshoot,
                                         max_circles=max_circles)
        for k, (p, r) in enumerate(zip(pieces, radii.tolist(), strict=True)):
            centre = shapely.centroid(shapely.minimum_bounding_circle(p)) if r > 0 else shapely.centroid(p)
            rows.append((str(fid), k + 1, centre, r / 1000, max(p.area, 1e-9)))
    centres = gpd.GeoSeries([r[2] for r in rows], crs=crs).to_crs(S.CRS_STORAGE)
    radius = np.array([r[3] for r in rows], dtype="float64")
    counts = {"circles": len(rows), "clamped": 0}
    lo, hi = lo_km or 0.0, hi_km or np.inf
    bad = (radius < lo) | (radius > hi)
    if bad.any():
        if not clamp:
            raise LimitExceededError(
                f"{int(bad.sum())} of {len(radius)} circles have a radius outside {profile.target}'s range "
                f"({profile.source('min_radius_km') if (radius < lo).any() else profile.source('max_radius_km')})",
                expected=f"{lo:g}-{hi:g} km", found=f"{radius.min():.3f}-{radius.max():.3f} km",
                fix="pass --clamp-radius to clamp them into the range (a clamped circle covers more than the fence)",
            )
        counts["clamped"] = int(bad.sum())
        radius = np.clip(radius, lo, hi)
    max_r = profile.limit("max_radius_targets")
    if max_r is not None and len(rows) > max_r:
        raise LimitExceededError(
            f"too many radius targets for {profile.target} ({profile.source('max_radius_targets')})",
            expected=f"at most {int(max_r)}", found=str(len(rows)), fix="export fewer fences or allow fewer circles",
        )
    frame = pd.DataFrame({
        FENCE_ID: pd.Series([r[0] for r in rows], dtype="string"),
        "circle": np.array([r[1] for r in rows], dtype="int64"),
        "lat": np.round(centres.y.to_numpy(), 6),
        "lng": np.round(centres.x.to_numpy(), 6),
        "radius": np.round(radius, 3),
        "radius_unit": "km",
        # circle area over the area of the piece it covers (after clamping)
        "overshoot": np.round(np.pi * (radius * 1000) ** 2 / np.array([r[4] for r in rows], dtype="float64"), 2),
    })
    return frame, counts


# --- the export ----------------------------------------------------------------------------------------------


@dataclass
class GeofenceExport:
    """What :func:`export_geofences` wrote: files by format, the fences kept, those refused and the counts."""

    files: dict[str, Path]
    fences: gpd.GeoDataFrame
    refused: dict[str, float]
    counts: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    audit: Path | None = None


def export_geofences(
    fences: gpd.GeoDataFrame,
    out_dir: str | Path,
    *,
    id_col: str,
    purpose: str | None,
    target: str = "generic",
    formats: Sequence[str] = ("geojson", "kml", "wkt", "radius", "h3"),
    name: str = "fences",
    voters: gpd.GeoDataFrame | None = None,
    population: gpd.GeoDataFrame | None = None,
    population_col: str = "TOTPOP",
    residents_col: str | None = None,
    min_residents: int | None = None,
    on_small: str = "error",
    simplify: bool = False,
    clamp_radius: bool = False,
    max_overshoot: float = 2.0,
    max_circles: int = 8,
    h3_resolution: int = 9,
    k_min: int = 11,
    suppression: Suppression | None = None,
    default_region: str = "US",
    limits: Mapping[str, float | None] | None = None,
    rules: PlatformRules | None = None,
    inputs: Sequence[Mapping[str, Any]] = (),
    config: Mapping[str, Any] | None = None,
    audit_name: str = "audit.jsonl",
    grid: VoterGrid | None = None,
) -> GeofenceExport:
    """Repair, check and write fences for a target in the requested formats, with one audit line.

    Files (in ``out_dir``, named ``<name>_<target>.<ext>``): ``.geojson`` (RFC 7946), ``.kml`` (KML 2.2),
    ``_wkt.csv`` (fence_id, wkt, residents), ``_radius.csv`` (fence_id, circle, lat, lng, radius, radius_unit,
    overshoot), ``_h3.csv`` (fence_id, h3_cell as hex, resolution), ``_zips.csv`` (fence_id, zip5) and
    ``_precincts.csv`` (fence_id, precinct_id); the last two need ``voters`` (suppressed voters removed first).

    Parameters
    ----------
    fences
        Polygons (micro-geographies, turfs, precincts or any polygon file) with a CRS and ``id_col``.
    out_dir
        Output folder; ``name`` must stay inside it.
    id_col
        Fence id column.
    purpose
        ``election``, ``political``, ``issue`` or ``research`` (required).
    target
        ``generic``, ``google_ads``, ``dv360``, ``meta``, ``microsoft``, ``aws``, ``tradedesk``, ``simplifi`` or
        ``eltoro``.
    formats
        Any of :data:`FORMATS`.
    voters, population, population_col, residents_col
        Sources of residents per fence (see :func:`count_residents`); voters also feed the ZIP and precinct
        lists and the per-state purpose rules.
    min_residents
        Minimum residents per fence (default: the target's, 1,000).
    on_small
        ``error``: a fence below the minimum fails the export naming the minimum and the count; ``skip``: such
        fences are left out, each reported in ``refused`` with its count.
    simplify, clamp_radius
        Simplify over-limit rings (coverage-preserving) / clamp radii into range, instead of failing.
    max_overshoot, max_circles
        Radius CSV: split a fence when its one circle covers more than ``max_overshoot`` times its area, into at
        most ``max_circles`` circles.
    h3_resolution
        Resolution of the H3 lists (cells whose centre lies in the fence).
    k_min
        Resident counts below ``k_min`` are left blank in the files (small-cell suppression; only reachable when
        the minimum residents per fence is set below it).
    suppression
        Suppression keys applied to the voters before counting and listing.
    limits
        Overrides of the target's limits (for targets without a public spec).
    grid
        :func:`voter_grid` of ``voters``, when several exports share the same voters (built here otherwise).

    Raises
    ------
    GuardrailError, LimitExceededError, AudienceTooSmallError
        As described in ``docs/exports.md``; nothing is written when a check fails.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"unknown geofence formats {unknown}", expected=f"some of {list(FORMATS)}",
                          fix="correct --format")
    if on_small not in ("error", "skip"):
        raise ConfigError("on_small is unknown", expected="'error' or 'skip'", found=repr(on_small))
    rules = rules or load_rules()
    profile = rules.profile(target)
    if limits:
        profile = profile.with_overrides(**dict(limits))
    warns: list[str] = []
    for fmt in formats:
        warns += check_purpose(purpose, family=profile.family, action=_ACTION[fmt], rules=rules)
    for fmt, col in (("zip", S.ZIP5), ("precinct", S.PRECINCT_ID)):
        if fmt in formats and (voters is None or col not in voters.columns):
            raise ConfigError(f"{fmt} lists need voters with column {col!r}", fix="pass --voters")
    assert purpose is not None
    out = Path(out_dir)
    stems = {fmt: safe_output_path(out, f"{name}_{target}" + {
        "geojson": ".geojson", "kml": ".kml", "wkt": "_wkt.csv", "radius": "_radius.csv", "h3": "_h3.csv",
        "zip": "_zips.csv", "precinct": "_precincts.csv"}[fmt]) for fmt in formats}
    n_in = len(fences)
    prepared, repairs = prepare_fences(fences, id_col=id_col, profile=profile, simplify=simplify)
    cents = shapely.centroid(np.asarray(prepared.geometry.values, dtype=object))
    check_eu_geographies(shapely.get_x(cents), shapely.get_y(cents), rules)
    n_suppressed = 0
    if voters is not None:
        keys = [c for c in (S.VOTER_ID, S.HOUSEHOLD_ID, S.EMAIL, S.PHONE) if c in voters.columns]
        kept, n_suppressed = apply_suppression(voters[keys], suppression, default_region=default_region)
        if n_suppressed:  # else every voter is kept, in order: no copy of the (large) frame
            voters, grid = voters.loc[kept.index], None
    src = prepared.copy()
    if residents_col is not None:
        src[residents_col] = fences.loc[prepared.index, residents_col].to_numpy()
    # voters inside every fence, found once: for the residents (when no better source) and the checks below
    inside_all = _voters_in_fences(prepared, voters, grid) if voters is not None and len(prepared) else None
    residents, method = count_residents(src, residents_col=residents_col, population=population,
                                        population_col=population_col, voters=voters, _inside=inside_all)
    prepared[RESIDENTS] = np.round(residents).astype("int64")
    published = prepared[RESIDENTS].astype("Int64").where(prepared[RESIDENTS] >= k_min)  # small cells: k = 11
    minimum = min_residents if min_residents is not None else int(profile.limit("min_residents_per_fence") or 0)
    small = prepared[RESIDENTS].to_numpy() < minimum
    refused = {str(f): float(r) for f, r in zip(prepared.loc[small, FENCE_ID], prepared.loc[small, RESIDENTS],
                                                strict=True)}
    if small.any() and on_small == "error":
        smallest = prepared.loc[small].sort_values(RESIDENTS).iloc[0]
        raise AudienceTooSmallError(
            f"{int(small.sum())} of {len(prepared)} geofences cover fewer residents than {target} allows "
            f"({profile.source('min_residents_per_fence')}; residents from {method})",
            expected=f"at least {minimum} residents per fence",
            found=f"as few as {int(smallest[RESIDENTS])} (fence {smallest[FENCE_ID]})",
            fix="merge small fences, or pass --on-small skip to leave them out",
        )
    kept_fences = prepared.loc[~small]
    to_write = kept_fences.copy()  # the files carry resident counts of k_min or more only
    to_write[RESIDENTS] = published.loc[~small]
    inside = None
    if voters is not None and len(kept_fences):
        assert inside_all is not None
        renumber = np.cumsum(~small) - 1  # a kept fence's position among the kept fences
        keep = ~small[inside_all[0]]
        inside = (renumber[inside_all[0][keep]], inside_all[1][keep])
        if S.STATE in voters.columns:
            listed = np.zeros(len(voters), dtype=bool)
            listed[inside[1]] = True
            check_states(voters[S.STATE].iloc[np.flatnonzero(listed)], purpose, rules)
    files: dict[str, Path] = {}
    counts: dict[str, Any] = {"fences_in": n_in, "fences_out": len(kept_fences), "refused_small": len(refused),
                              "empty_dropped": repairs["empty_dropped"], "residents_method": method,
                              "min_residents": minimum, "suppressed": n_suppressed, "repairs": repairs}
    decimals = int(profile.limit("coordinate_decimals") or 6)
    if len(kept_fences):
        if "geojson" in formats:
            text = json.dumps(geojson_dict(to_write, decimals=decimals), separators=(",", ":"))
            files["geojson"] = _write_text(text + "\n", stems["geojson"])
        if "kml" in formats:
            files["kml"] = _write_text(kml_text(to_write, name=name, decimals=decimals), stems["kml"])
        if "wkt" in formats:
            wkt = shapely.to_wkt(np.asarray(kept_fences.geometry.values, dtype=object), rounding_precision=decimals,
                                 trim=True)
            frame = pd.DataFrame({FENCE_ID: kept_fences[FENCE_ID].to_numpy(), "wkt": wkt,
                                  RESIDENTS: to_write[RESIDENTS].to_numpy()})
            files["wkt"] = _write_frame(frame, stems["wkt"], target)
        if "radius" in formats:
            circles, rc = radius_targets(kept_fences, profile=profile, clamp=clamp_radius,
                                         max_overshoot=max_overshoot, max_circles=max_circles)
            counts["radius"] = rc
            files["radius"] = _write_frame(circles, stems["radius"], target)
        if "h3" in formats:
            cells = polygons_to_cells(np.asarray(kept_fences.geometry.values, dtype=object), h3_resolution)
            lens = [len(c) for c in cells]
            frame = pd.DataFrame({
                FENCE_ID: np.repeat(kept_fences[FENCE_ID].to_numpy(), lens),
                S.H3_CELL: cells_to_hex(np.concatenate(cells) if cells else np.empty(0, np.uint64)),
                "resolution": h3_resolution,
            })
            counts["h3_cells"] = len(frame)
            files["h3"] = _write_frame(frame, stems["h3"], target)
        for fmt, col in (("zip", S.ZIP5), ("precinct", S.PRECINCT_ID)):
            if fmt not in formats:
                continue
            assert voters is not None and inside is not None
            as_text = voters[col].astype("string")
            fi, vi = _distinct_pairs(inside, as_text)
            vals = as_text.iloc[vi].to_numpy()
            frame = pd.DataFrame({FENCE_ID: kept_fences[FENCE_ID].to_numpy()[fi], col: vals}).dropna()
            frame = frame.drop_duplicates().sort_values([FENCE_ID, col]).reset_index(drop=True)
            counts[f"{fmt}_rows"] = len(frame)
            files[fmt] = _write_frame(frame, stems[fmt], target)
    audit = safe_output_path(out, audit_name)
    append_audit(audit, {
        "action": "geofences", "target": target, "purpose": purpose, "formats": list(formats), "name": name,
        "inputs": list(inputs), "input_digest": frame_digest(prepared, [FENCE_ID]),
        "counts": counts, "refused": refused, "outputs": {k: v.name for k, v in files.items()},
        "limits": {k: v for k, v in profile.limits.items() if v is not None}, "warnings": warns,
        "config": dict(config or {}),
    })
    return GeofenceExport(files=files, fences=kept_fences, refused=refused, counts=counts, warnings=warns,
                          audit=audit)


def _distinct_pairs(inside: tuple[np.ndarray, np.ndarray], values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Of (fence, voter) pairs, one per distinct (fence, value of the voter): the first such pair.

    The ZIP and precinct lists keep distinct (fence, value) rows only; deduplicating integer codes first leaves
    a few hundred rows to turn into strings instead of a million.
    """
    fi, vi = inside
    if not len(fi):
        return fi, vi
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    code = codes[vi].astype(np.int64) + 1  # 0: missing
    _, first = np.unique(fi.astype(np.int64) * (len(uniques) + 1) + code, return_index=True)
    return fi[first], vi[first]


def _write_frame(frame: pd.DataFrame, path: Path, target: str) -> Path:
    check_columns(frame.columns, allowlist=GEOFENCE_ALLOWLIST, target=f"{target} geofence file")
    write_csv(frame, path)
    os.chmod(path, 0o644)
    return path
