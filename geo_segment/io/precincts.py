"""Precinct boundaries: read any vector source, quarantine unusable features, repair invalid polygons, report coverage.

:func:`read_precincts` reads GeoJSON, (zipped) Shapefile, GeoPackage or anything else OGR opens (through pyogrio),
and GeoParquet. It returns precincts in EPSG:4326 with a unique string ``precinct_id``, the quarantined features with
their 1-based position in the source, and a report of how well the precincts tile the ground (overlaps and gaps).

Rules (``docs/bad-inputs.md`` rows 8, 9, 13 and 26)
-------------------------------------------------
* Null, empty, ``GeometryCollection`` and non-polygonal geometries are quarantined, never guessed at.
* Invalid polygons are repaired with ``shapely.make_valid(method="structure")`` (never ``buffer(0)``, which can drop
  half of a bowtie); only the polygonal part is kept. The area before repair is the area *as drawn*: the points
  inside some shell ring (winding number not zero, whatever the ring's orientation) and inside no hole ring, so a
  bowtie counts both lobes. A repair that changes that area by more than ``area_tolerance`` is an error.
* Overlaps and gaps are reported and warned about, not resolved: precinct assignment resolves them by its own stated
  rule. Areas are computed in the UTM zone of the data (``estimate_utm_crs()``).
"""

from __future__ import annotations

import difflib
import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from geo_segment import schema as S
from geo_segment.errors import ConfigError, GeoSegmentWarning, InputFileError, Location, MissingColumnsError
from geo_segment.io.manifest import StageRecord

__all__ = ["DEFAULT_MAX_GAP_M2", "DEFAULT_SLIVER_M2", "PrecinctRead", "read_precincts"]

log = logging.getLogger(__name__)

#: Overlaps and gaps smaller than this many m² are slivers from coordinate rounding: counted apart.
DEFAULT_SLIVER_M2 = 1.0
#: Holes of the precincts' union smaller than this many m² are gaps; larger ones are enclosed areas (lakes, parks).
DEFAULT_MAX_GAP_M2 = 100_000.0

_PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
_POLYGONAL = np.array(["Polygon", "MultiPolygon"])
_WHAT = "precinct file"
_N_SHOWN = 5


@dataclass
class PrecinctRead:
    """The result of :func:`read_precincts`.

    Attributes
    ----------
    precincts
        Precincts in EPSG:4326: ``precinct_id`` (string, unique) first, the source's other attributes, ``geometry``
        (valid Polygon or MultiPolygon). RangeIndex.
    rejects
        Quarantined features: ``file``, ``line`` (the feature's 1-based position in the source), ``column``,
        ``reason``.
    report
        Metrics of the read: counts, repairs, overlaps, gaps and timings (see :func:`read_precincts`).
    stage
        The :class:`~geo_segment.io.manifest.StageRecord` named ``"precincts"``; its metrics are ``report``.
    """

    precincts: gpd.GeoDataFrame
    rejects: pd.DataFrame
    report: dict[str, Any]
    stage: StageRecord


# --- reading ----------------------------------------------------------------------------------------------------


def _local_path(source: str) -> Path | None:
    """Return the local file a source names, or ``None`` for URLs and GDAL virtual paths."""
    if source.startswith("zip://"):
        return Path(source[len("zip://") :].split("!")[0])
    if "://" in source or source.startswith("/vsi"):
        return None
    return Path(source)


def _read_source(source: str, layer: str | None) -> gpd.GeoDataFrame:
    """Read every feature of ``source`` (one layer) into a GeoDataFrame, turning library errors into ours."""
    local = _local_path(source)
    if local is not None and not local.exists():
        raise InputFileError(f"{_WHAT} not found", where=Location(source), fix="check the path")
    if local is not None and local.suffix.lower() in _PARQUET_SUFFIXES and not source.startswith("zip://"):
        if layer is not None:
            raise InputFileError(
                f"a GeoParquet {_WHAT} has no layers but layer={layer!r} was given",
                where=Location(source),
                fix="drop the layer option",
            )
        try:
            return gpd.read_parquet(local)
        except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise InputFileError(
                f"{_WHAT} cannot be read as GeoParquet: {exc}",
                where=Location(source),
                expected="a GeoParquet file (Parquet with 'geo' metadata)",
                fix="write it with GeoDataFrame.to_parquet, or convert it with ogr2ogr",
            ) from None
    try:
        layers = pyogrio.list_layers(source)
        names = [str(n) for n in layers[:, 0]]
        if layer is None and len(names) > 1:
            raise InputFileError(
                f"{_WHAT} holds {len(names)} layers and no layer was chosen",
                where=Location(source),
                expected="one layer, or the layer option",
                found=f"layers {names}",
                fix=f"pass layer={names[0]!r} (or the right one of the list)",
            )
        if layer is not None and layer not in names:
            raise InputFileError(
                f"{_WHAT} has no layer {layer!r}",
                where=Location(source),
                found=f"layers {names}",
                fix="pass one of the listed layers",
            )
        return gpd.read_file(source, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.GeometryError) as exc:
        raise InputFileError(
            f"{_WHAT} cannot be read as a vector dataset: {exc}",
            where=Location(source),
            expected="GeoJSON, a (zipped) Shapefile, a GeoPackage, GeoParquet or another OGR format",
            fix="check the file opens in QGIS or with `ogrinfo`",
        ) from None


# --- ids ----------------------------------------------------------------------------------------------------------


def _unique_columns(frame: pd.DataFrame) -> list[str]:
    """Return the attribute columns whose values are all present and unique: candidates for ``id_col``."""
    attrs = frame.drop(columns=frame.geometry.name)
    ok = attrs.notna().all() & (attrs.nunique(dropna=True) == len(attrs))
    return [str(c) for c in ok.index[ok.to_numpy()]]


def _id_strings(values: pd.Series) -> pd.Series:
    """Return ids as strings: integral numbers without a trailing ``.0``, blank strings as missing."""
    if pd.api.types.is_bool_dtype(values.dtype):
        out = values.astype("string")
    elif pd.api.types.is_integer_dtype(values.dtype):
        out = values.astype("Int64").astype("string")
    elif pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        integral = bool(np.all(np.isfinite(finite)) and np.all(np.mod(finite, 1) == 0))
        out = values.astype("Int64").astype("string") if integral else values.astype("string")
    else:
        out = values.astype("string")
    return out.mask(out.str.strip() == "")


def _precinct_ids(frame: gpd.GeoDataFrame, id_col: str, source: str) -> pd.Series:
    """Return the precinct ids (string) or raise naming the columns found and unique ones."""
    columns = [str(c) for c in frame.columns if c != frame.geometry.name]
    if id_col not in frame.columns or id_col == frame.geometry.name:
        close = difflib.get_close_matches(id_col, columns, n=3, cutoff=0.5)
        unique = _unique_columns(frame)
        hint = f"did you mean {close}? " if close else ""
        raise MissingColumnsError(
            f"{_WHAT} lacks the id column {id_col!r}",
            where=Location(source, column=id_col),
            expected=f"a column {id_col!r} naming each precinct",
            found=f"{len(columns)} columns {columns}",
            fix=f"{hint}pass id_col= one of the columns with unique values: {unique}",
        )
    if S.PRECINCT_ID in frame.columns and id_col != S.PRECINCT_ID:
        raise InputFileError(
            f"{_WHAT} already has a column {S.PRECINCT_ID!r} and id_col is {id_col!r}",
            where=Location(source, column=S.PRECINCT_ID),
            fix=f"pass id_col={S.PRECINCT_ID!r}, or rename that column in the file",
        )
    ids = _id_strings(frame[id_col]).reset_index(drop=True)
    dup = ids.dropna()
    dup = dup[dup.duplicated(keep=False)]
    if len(dup):
        names = sorted(dup.unique())
        shown = ", ".join(repr(n) for n in names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise InputFileError(
            f"precinct ids in column {id_col!r} are not unique: {len(names)} ids appear on more than one feature",
            where=Location(source, column=id_col),
            expected="one feature per precinct id",
            found=f"duplicated ids {shown}",
            fix=f"pass id_col= a unique column ({_unique_columns(frame)}), or dissolve each precinct's parts "
            "into one feature",
        )
    return ids


# --- CRS ----------------------------------------------------------------------------------------------------------


def _storage_crs(frame: gpd.GeoDataFrame, crs: str | None, source: str) -> tuple[gpd.GeoDataFrame, bool]:
    """Give ``frame`` a CRS (declared, passed or clearly lon/lat) and return it in EPSG:4326.

    Returns the frame and whether EPSG:4326 was assumed for a source declaring no CRS.
    """
    assumed = False
    if frame.crs is None:
        if crs is not None:
            frame = frame.set_crs(crs)
        else:
            xmin, ymin, xmax, ymax = frame.total_bounds
            lonlat = bool(np.isfinite([xmin, ymin, xmax, ymax]).all()) and (
                -180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90
            )
            if not lonlat:
                raise InputFileError(
                    f"{_WHAT} declares no coordinate reference system and its coordinates are not "
                    "longitude/latitude",
                    where=Location(source),
                    expected="a CRS in the file (a .prj next to a shapefile, the CRS of a GeoPackage layer)",
                    found=f"no CRS, bounds ({xmin:.2f}, {ymin:.2f}, {xmax:.2f}, {ymax:.2f})",
                    fix="pass crs='EPSG:xxxx' (the CRS the file was drawn in), or set it in the file "
                    "(ogr2ogr -a_srs EPSG:xxxx)",
                )
            frame = frame.set_crs(S.CRS_STORAGE)
            assumed = True
    elif crs is not None and not CRS.from_user_input(crs).equals(frame.crs, ignore_axis_order=True):
        raise InputFileError(
            f"{_WHAT} declares a CRS other than the crs option",
            where=Location(source),
            expected=f"{crs}",
            found=f"{frame.crs.to_string()}",
            fix="drop the crs option (it only sets a CRS the file lacks), or fix the file's CRS",
        )
    if not frame.crs.equals(S.CRS_STORAGE):
        frame = frame.to_crs(S.CRS_STORAGE)  # geopandas transforms with always_xy=True
    return frame, assumed


# --- geometry checks and repair -----------------------------------------------------------------------------------


def _quarantine_reasons(geoms: np.ndarray) -> np.ndarray:
    """Return, per geometry, why it cannot be a precinct ("" when it can)."""
    types = np.asarray(shapely.get_type_id(geoms))
    names = np.array(
        ["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
         "GeometryCollection"],
        dtype=object,
    )
    type_names = names[np.clip(types, 0, len(names) - 1)]
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    collection = ~missing & ~empty & (types == 7)
    other = ~missing & ~empty & ~collection & ~np.isin(type_names, _POLYGONAL)
    return np.select(
        [missing, empty, collection, other],
        [
            "missing geometry (null)",
            "empty geometry",
            "GeometryCollection geometry; expected Polygon or MultiPolygon",
            type_names.astype(object) + " geometry; expected Polygon or MultiPolygon",
        ],
        default="",
    ).astype(object)


def _winding_numbers(ring: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Winding number of a closed ring (``(n + 1, 2)`` coordinates) around each of ``points`` (``(m, 2)``)."""
    x0, y0, x1, y1 = ring[:-1, 0], ring[:-1, 1], ring[1:, 0], ring[1:, 1]
    px, py = points[:, :1], points[:, 1:]
    left = (x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)
    up = (y0 <= py) & (y1 > py) & (left > 0)
    down = (y0 > py) & (y1 <= py) & (left < 0)
    return np.asarray(up.sum(axis=1) - down.sum(axis=1))


def _drawn_area(geom: shapely.Geometry) -> float:
    """Area of a possibly invalid (Multi)Polygon as drawn: the points inside some part's shell and outside its holes.

    "Inside a ring" means a winding number other than zero, whatever the ring's orientation, so a bowtie counts both
    lobes, a shell that touches itself around an inverted hole excludes the hole, overlapping parts of a
    MultiPolygon count once and an island in another part's lake counts.
    """
    polys = shapely.get_parts(geom)
    n_holes = shapely.get_num_interior_rings(polys)
    owner = np.repeat(np.arange(len(polys)), n_holes)
    k = np.arange(n_holes.sum()) - np.repeat(np.cumsum(n_holes) - n_holes, n_holes)
    shells = shapely.get_exterior_ring(polys)
    holes = shapely.get_interior_ring(polys[owner], k)
    noded = shapely.node(shapely.multilinestrings(np.concatenate([shells, holes])))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if len(faces) == 0:
        return 0.0
    points = shapely.get_coordinates(shapely.point_on_surface(faces))
    inside = np.zeros(len(faces), dtype=bool)
    for i, shell in enumerate(shells):  # the parts of one invalid precinct
        in_part = _winding_numbers(shapely.get_coordinates(shell), points) != 0
        for hole in holes[owner == i]:
            in_part &= _winding_numbers(shapely.get_coordinates(hole), points) == 0
        inside |= in_part
    return float(shapely.area(faces[inside]).sum())


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep the polygons of a repaired geometry (dropping collapsed lines and points)."""
    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = shapely.get_parts(geom)
    polys = shapely.get_parts(parts[np.isin(shapely.get_type_id(parts), (3, 6))])
    if len(polys) == 0:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.multipolygons(polys)


@dataclass(frozen=True)
class _Repair:
    geoms: np.ndarray  # repaired geometry array (same length as the input)
    repaired: np.ndarray  # positions repaired
    changes: np.ndarray  # relative area change of each repaired position
    degenerate: np.ndarray  # positions whose repair left no area


def _repair(geoms: np.ndarray) -> _Repair:
    """Repair invalid polygons with ``make_valid(method="structure")`` and measure each area change."""
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    out = geoms.copy()
    if invalid.size == 0:
        empty = np.array([], dtype=np.int64)
        return _Repair(out, empty, np.array([], dtype=float), empty)
    fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
    fixed = np.array([_polygonal_part(g) for g in fixed], dtype=object)  # only the few invalid ones
    drawn = np.array([_drawn_area(g) for g in geoms[invalid]])
    after = shapely.area(fixed)
    degenerate = (drawn <= 0) | shapely.is_empty(fixed) | (after <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(degenerate, np.nan, np.abs(after - drawn) / drawn)
    out[invalid] = fixed
    return _Repair(out, invalid[~degenerate], change[~degenerate], invalid[degenerate])


# --- coverage -----------------------------------------------------------------------------------------------------


def _metric_areas(geoms: np.ndarray, metric: CRS) -> np.ndarray:
    """Areas in m² of EPSG:4326 geometries, computed in ``metric``."""
    if len(geoms) == 0:
        return np.array([], dtype=float)
    return np.asarray(gpd.GeoSeries(geoms, crs=S.CRS_STORAGE).to_crs(metric).area, dtype=float)


def _coverage(
    geoms: np.ndarray, ids: np.ndarray, *, sliver_m2: float, max_gap_m2: float
) -> tuple[dict[str, Any], list[str]]:
    """Report overlaps, gaps and unmatched edges of the precincts; return the report and warning messages."""
    # the union (for the gaps) is the longest step: it runs on a side thread, on its own copy of the polygons
    # (GEOS objects are never shared between threads), while the overlaps are found
    with ThreadPoolExecutor(1, thread_name_prefix="precincts-union") as pool:
        union_job = pool.submit(_union_parts, shapely.from_wkb(shapely.to_wkb(geoms, flavor="iso")))
        report, msgs, tree, metric = _overlaps(geoms, ids, sliver_m2=sliver_m2)
        parts = union_job.result()
    _gaps(parts, ids, tree, metric, report, msgs, sliver_m2=sliver_m2, max_gap_m2=max_gap_m2)
    return report, msgs


def _union_parts(geoms: np.ndarray) -> np.ndarray:
    return np.asarray(shapely.get_parts(shapely.union_all(geoms)), dtype=object)


def _overlaps(geoms: np.ndarray, ids: np.ndarray, *, sliver_m2: float) -> tuple[
    dict[str, Any], list[str], shapely.STRtree, CRS
]:
    """Coverage validity, unmatched edges and overlapping pairs: the report so far, its warnings, the polygons'
    tree and the metric CRS."""
    metric = gpd.GeoSeries(geoms, crs=S.CRS_STORAGE).estimate_utm_crs()
    shapely.prepare(geoms)
    report: dict[str, Any] = {"metric_crs": metric.to_string()}
    msgs: list[str] = []

    # a coverage is valid when no polygon has an invalid edge (GEOS's CoverageValidator answers both from the same
    # pass): one call, not coverage_is_valid and then the edges (0.17 s less on the RI layer)
    edges = shapely.coverage_invalid_edges(geoms)
    bad_edges = ~shapely.is_missing(edges) & ~shapely.is_empty(edges)
    report["coverage_valid"] = not bool(bad_edges.any())
    report["n_invalid_edge_precincts"] = int(bad_edges.sum())
    report["invalid_edge_ids"] = ids[bad_edges][:20].tolist()

    # Pairs whose interiors share area: "intersects" through the tree, then a DE-9IM test on the candidates only.
    # (predicate="overlaps" alone would miss a precinct inside another and two identical precincts.)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.relate_pattern(geoms[left], geoms[right], "2********")
    left, right = left[shared], right[shared]
    areas = _metric_areas(shapely.intersection(geoms[left], geoms[right]), metric)
    order = np.argsort(-areas, kind="stable")
    left, right, areas = left[order], right[order], areas[order]
    big = areas >= sliver_m2
    pairs = [
        [str(a), str(b), round(float(m2), 3)]
        for a, b, m2 in zip(ids[left[big]], ids[right[big]], areas[big], strict=True)
    ]
    report.update(
        n_overlap_pairs=int(big.sum()),
        overlap_area_m2=round(float(areas[big].sum()), 3),
        overlap_pairs=pairs,
        n_overlap_slivers=int((~big).sum()),
        sliver_overlap_area_m2=round(float(areas[~big].sum()), 3),
    )
    if big.any() or bad_edges.any():
        worst = ", ".join(f"{a}/{b} ({m2:,.1f} m²)" for a, b, m2 in pairs[:_N_SHOWN])
        msgs.append(
            "precincts do not form a clean coverage: "
            f"{int(big.sum())} pairs overlap by {sliver_m2:g} m² or more ({areas[big].sum():,.1f} m² in total"
            + (f"; largest {worst}" if worst else "")
            + f"), {int((~big).sum())} sliver overlaps smaller than that; "
            f"{int(bad_edges.sum())} precincts have edges that do not match their neighbours'"
            + (f" (e.g. {', '.join(report['invalid_edge_ids'][:_N_SHOWN])})" if bad_edges.any() else "")
            + ". Precinct assignment resolves overlaps by its tie-break rule"
        )

    return report, msgs, tree, metric


def _gaps(parts: np.ndarray, ids: np.ndarray, tree: shapely.STRtree, metric: CRS, report: dict[str, Any],
          msgs: list[str], *, sliver_m2: float, max_gap_m2: float) -> None:
    """Gaps: holes of the union (``parts``). Small ones are gaps between precincts; large ones are enclosed areas
    (water). Adds to ``report`` and ``msgs``."""
    n_holes = shapely.get_num_interior_rings(parts)
    owner = np.repeat(np.arange(len(parts)), n_holes)
    k = np.arange(n_holes.sum()) - np.repeat(np.cumsum(n_holes) - n_holes, n_holes)
    holes = shapely.polygons(shapely.get_interior_ring(parts[owner], k))
    hole_m2 = _metric_areas(holes, metric)
    gap = (hole_m2 >= sliver_m2) & (hole_m2 < max_gap_m2)
    sliver = hole_m2 < sliver_m2
    gaps, gap_m2 = holes[gap], hole_m2[gap]
    top = np.argsort(-gap_m2, kind="stable")[:_N_SHOWN]
    largest: list[dict[str, Any]] = []
    for g, m2 in zip(gaps[top], gap_m2[top], strict=True):  # the few largest gaps only
        x, y = shapely.get_coordinates(shapely.point_on_surface(g))[0]
        around = ids[tree.query(g, predicate="intersects")]
        largest.append(
            {"area_m2": round(float(m2), 1), "lon": round(float(x), 6), "lat": round(float(y), 6),
             "precincts": sorted(map(str, around))}
        )
    report.update(
        n_gaps=int(gap.sum()),
        gap_area_m2=round(float(gap_m2.sum()), 3),
        largest_gaps=largest,
        n_gap_slivers=int(sliver.sum()),
        sliver_gap_area_m2=round(float(hole_m2[sliver].sum()), 3),
        n_enclosed_areas=int((hole_m2 >= max_gap_m2).sum()),
        enclosed_area_m2=round(float(hole_m2[hole_m2 >= max_gap_m2].sum()), 3),
    )
    if gap.any():
        where = "; ".join(
            f"{g['area_m2']:,.1f} m² at ({g['lon']:.5f}, {g['lat']:.5f}) bordered by {', '.join(g['precincts'])}"
            for g in largest[:3]
        )
        msgs.append(
            f"{int(gap.sum())} gaps between precincts ({gap_m2.sum():,.1f} m² in total; largest {where}), "
            f"{int(sliver.sum())} sliver gaps smaller than {sliver_m2:g} m². "
            "Points in a gap get the nearest precinct within the assignment tolerance"
        )


# --- public -------------------------------------------------------------------------------------------------------


def _rejects(file: str, lines: np.ndarray, columns: list[str], reasons: list[str]) -> pd.DataFrame:
    rejects = S.make_rejects(file, lines.tolist(), reasons, scope="row")
    rejects[S.REJECT_COLUMN] = pd.array(columns, dtype="string")
    return rejects


def read_precincts(
    source: str | os.PathLike[str],
    *,
    id_col: str,
    layer: str | None = None,
    area_tolerance: float = 0.01,
    crs: str | None = None,
    sliver_m2: float = DEFAULT_SLIVER_M2,
    max_gap_m2: float = DEFAULT_MAX_GAP_M2,
) -> PrecinctRead:
    """Read precinct polygons, quarantine unusable features, repair invalid ones and report overlaps and gaps.

    Parameters
    ----------
    source
        A file OGR can open through pyogrio (GeoJSON, GeoPackage, Shapefile, a zipped Shapefile as ``x.zip`` or
        ``zip://x.zip``, ...) or a GeoParquet file (``.parquet``).
    id_col
        The column naming each precinct; its values become ``precinct_id`` (strings; integral numbers without
        ``.0``) and must be unique.
    layer
        The layer to read from a multi-layer source (required when there is more than one).
    area_tolerance
        Largest relative area change a repair may make (0.01 = 1 %), measured against the area as drawn.
    crs
        CRS to assume when the source declares none (for example ``"EPSG:3438"``). Without it, a source without
        CRS is read as EPSG:4326 only when every coordinate is a valid longitude/latitude (with a warning).
    sliver_m2
        Overlaps and gaps smaller than this (m²) are counted as slivers (coordinate rounding), apart from real
        overlaps and gaps.
    max_gap_m2
        Holes of the precincts' union smaller than this (m²) are gaps; larger holes are enclosed areas (lakes).

    Returns
    -------
    PrecinctRead
        ``precincts``: GeoDataFrame in EPSG:4326 with ``precinct_id`` (string) first, the other attributes of the
        source and ``geometry`` (valid Polygon/MultiPolygon), RangeIndex. ``rejects``: quarantined features
        (``file``, ``line`` = 1-based feature position, ``column``, ``reason``). ``report``: ``n_features``,
        ``n_precincts``, ``n_rejected``, ``source_crs``, ``crs_assumed``, ``n_repaired``, ``max_area_change``,
        ``area_changes`` (id to relative change), ``coverage_valid``, ``n_invalid_edge_precincts``,
        ``invalid_edge_ids``, ``n_overlap_pairs``, ``overlap_area_m2``, ``overlap_pairs`` ([id, id, m²], largest
        first), ``n_overlap_slivers``, ``sliver_overlap_area_m2``, ``n_gaps``, ``gap_area_m2``, ``largest_gaps``
        (area, lon/lat of a point inside, precincts around), ``n_gap_slivers``, ``sliver_gap_area_m2``,
        ``n_enclosed_areas``, ``enclosed_area_m2``, ``metric_crs``, the options, and ``seconds_read``,
        ``seconds_repair``, ``seconds_coverage``, ``seconds``. ``stage``: StageRecord ``"precincts"`` with
        ``rows_in == rows_out + rows_rejected``.

    Raises
    ------
    InputFileError
        Missing or unreadable file, several layers and none chosen, no features, no usable polygon, duplicated ids,
        no CRS and coordinates that are not lon/lat, or a repair changing an area beyond ``area_tolerance``.
    MissingColumnsError
        ``id_col`` is not a column; the message lists the columns found.
    ConfigError
        A negative option.

    Warns
    -----
    GeoSegmentWarning
        Quarantined features; precincts overlapping or with edges not matching their neighbours' (counts and the
        largest pairs); gaps between precincts (count, area and places); a CRS assumed.

    Examples
    --------
    >>> import geopandas as gpd, shapely, tempfile, pathlib, warnings
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "p.geojson"
    >>> gpd.GeoDataFrame({"name": ["A", "B"]}, geometry=[shapely.box(0, 0, .01, .01),
    ...     shapely.box(.01, 0, .02, .01)], crs=4326).to_file(path)
    >>> read = read_precincts(path, id_col="name")
    >>> read.precincts[["precinct_id"]].to_dict("list"), read.report["n_overlap_pairs"], read.stage.balanced
    ({'precinct_id': ['A', 'B']}, 0, True)
    """
    for name, value in (("area_tolerance", area_tolerance), ("sliver_m2", sliver_m2),
                        ("max_gap_m2", max_gap_m2)):
        if not value >= 0:
            raise ConfigError(f"{name} must be a number >= 0", found=f"{value!r}")
    started = time.perf_counter()
    src = os.fspath(source)
    frame = _read_source(src, layer)
    n_features = len(frame)
    if n_features == 0:
        raise InputFileError(
            f"{_WHAT} has no features",
            where=Location(src),
            expected="at least one precinct polygon",
            found="0 features" + (f" in layer {layer!r}" if layer else ""),
            fix="check the export finished and the right file or layer was given",
        )
    ids = _precinct_ids(frame, id_col, src)
    source_crs = None if frame.crs is None else frame.crs.to_string()
    frame, crs_assumed = _storage_crs(frame, crs, src)
    seconds_read = time.perf_counter() - started
    if crs_assumed:
        warnings.warn(
            f"{src}: {_WHAT} declares no CRS; its coordinates are longitude/latitude, so EPSG:4326 is assumed "
            "(pass crs= to say otherwise)",
            GeoSegmentWarning,
            stacklevel=2,
        )

    t0 = time.perf_counter()
    geoms = np.asarray(frame.geometry.array, dtype=object)
    geoms = np.where(shapely.has_z(geoms), shapely.force_2d(geoms), geoms)
    reasons = _quarantine_reasons(geoms)
    reject_cols = np.where(reasons != "", S.GEOMETRY, "").astype(object)
    no_id = ids.isna().to_numpy() & (reasons == "")
    reasons[no_id] = f"missing precinct id in column {id_col!r}"
    reject_cols[no_id] = id_col
    usable = np.flatnonzero(reasons == "")
    repair = _repair(geoms[usable])
    geoms[usable] = repair.geoms
    degenerate = usable[repair.degenerate]
    reasons[degenerate] = "polygon encloses no area (its repair left nothing)"
    reject_cols[degenerate] = S.GEOMETRY
    repaired_pos = usable[repair.repaired]
    changes = dict(zip(ids.to_numpy()[repaired_pos].tolist(), repair.changes.tolist(), strict=True))
    too_much = {pid: c for pid, c in changes.items() if c > area_tolerance}
    if too_much:
        listing = ", ".join(f"{pid!r} by {c:.1%}" for pid, c in sorted(too_much.items(), key=lambda kv: -kv[1]))
        raise InputFileError(
            f"repairing invalid precinct polygons changed their area beyond the tolerance: {listing}",
            where=Location(src, column=id_col),
            expected=f"area changes of at most {area_tolerance:.1%} (area_tolerance)",
            found=f"{len(too_much)} precincts over it",
            fix="fix these polygons in a GIS (holes outside their shell, overlapping parts), "
            "or raise area_tolerance if the repaired shapes are right",
        )
    for pid, c in changes.items():
        log.info("repaired invalid polygon of precinct %r with make_valid; area changed by %.3f%%", pid, 100 * c)
    keep = reasons == ""
    bad = np.flatnonzero(~keep)
    rejects = _rejects(src, bad + 1, reject_cols[bad].tolist(), reasons[bad].tolist())
    if not keep.any():
        raise InputFileError(
            f"none of the {n_features} features of the {_WHAT} is a usable precinct",
            where=Location(src),
            expected="Polygon or MultiPolygon features with an id",
            found="; ".join(f"{n} x {r}" for r, n in pd.Series(reasons[bad]).value_counts().items()),
            fix="check the layer and the file's geometry type",
        )
    if len(bad):
        counts = pd.Series(reasons[bad]).value_counts()
        warnings.warn(
            f"{src}: {len(bad)} of {n_features} precinct features quarantined ("
            + "; ".join(f"{n} x {r}" for r, n in counts.items())
            + f"; features {', '.join(map(str, (bad + 1)[:10]))}"
            + (" ..." if len(bad) > 10 else "")
            + ")",
            GeoSegmentWarning,
            stacklevel=2,
        )
    attrs = frame.drop(columns=[frame.geometry.name, id_col]).iloc[keep].reset_index(drop=True)
    attrs.insert(0, S.PRECINCT_ID, ids[keep].reset_index(drop=True).astype("string"))
    precincts = gpd.GeoDataFrame(attrs, geometry=gpd.array.from_shapely(geoms[keep]), crs=S.CRS_STORAGE)
    if S.GEOMETRY not in precincts.columns:  # pragma: no cover - from_shapely names it "geometry"
        precincts = precincts.rename_geometry(S.GEOMETRY)
    seconds_repair = time.perf_counter() - t0

    t0 = time.perf_counter()
    coverage, msgs = _coverage(
        np.asarray(precincts.geometry.array, dtype=object),
        precincts[S.PRECINCT_ID].to_numpy(dtype=object),
        sliver_m2=sliver_m2,
        max_gap_m2=max_gap_m2,
    )
    for msg in msgs:
        warnings.warn(f"{src}: {msg}", GeoSegmentWarning, stacklevel=2)
    seconds_coverage = time.perf_counter() - t0

    S.validate_precincts(precincts, stage="precincts")
    seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "n_features": n_features,
        "n_precincts": len(precincts),
        "n_rejected": len(rejects),
        "source_crs": source_crs if source_crs is not None else (None if crs_assumed else crs),
        "crs_assumed": crs_assumed,
        "n_repaired": len(changes),
        "max_area_change": max(changes.values(), default=0.0),
        "area_changes": changes,
        **coverage,
        "area_tolerance": area_tolerance,
        "sliver_m2": sliver_m2,
        "max_gap_m2": max_gap_m2,
        "seconds_read": round(seconds_read, 3),
        "seconds_repair": round(seconds_repair, 3),
        "seconds_coverage": round(seconds_coverage, 3),
        "seconds": round(seconds, 3),
    }
    stage = StageRecord(
        name="precincts",
        rows_in=n_features,
        rows_out=len(precincts),
        rows_rejected=len(rejects),
        seconds=seconds,
        metrics=report,
    )
    return PrecinctRead(precincts=precincts, rejects=rejects, report=report, stage=stage)

