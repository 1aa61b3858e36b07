"""The only module that calls H3: numpy arrays in, uint64 cells out.

Cells are ``uint64`` inside the library; ``0`` marks "no cell" (a point without usable coordinates), which H3 never
uses as an index. Hex strings are made only at export (:func:`cells_to_hex`).

Vectorized through ``h3ronpy`` (Rust h3o; about 3M points/s here, identical cells to h3-py, which works one point
at a time at about 0.9M/s).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import shapely
from h3ronpy import change_resolution
from h3ronpy.vector import cells_to_wkb_polygons, coordinates_to_cells, wkb_to_cells

from geo_segment._keys import distinct_points
from geo_segment._vector import usable_cores
from geo_segment.errors import ConfigError

__all__ = ["MAX_RESOLUTION", "MIN_RESOLUTION", "NO_CELL", "cell_parents", "cell_polygons", "cell_resolutions",
           "cells_to_hex", "check_resolution", "latlng_to_cells", "polygons_to_cells"]

MIN_RESOLUTION = 5
MAX_RESOLUTION = 15
NO_CELL = np.uint64(0)
#: points per thread below which one thread is faster
_MIN_ROWS_PER_THREAD = 250_000


def check_resolution(resolution: int) -> int:
    """Return ``resolution`` when it is an int in 5..15, else raise ConfigError."""
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer) or not (
        MIN_RESOLUTION <= int(resolution) <= MAX_RESOLUTION
    ):
        raise ConfigError(
            "H3 resolution out of range",
            expected=f"an integer from {MIN_RESOLUTION} (about 250 km² cells) to {MAX_RESOLUTION}",
            found=repr(resolution),
            fix="use 9 (about 0.1 km², a few blocks) for voters",
        )
    return int(resolution)


def latlng_to_cells(lat: np.ndarray, lng: np.ndarray, resolution: int) -> np.ndarray:
    """H3 cells (uint64) of WGS84 points; ``0`` where a coordinate is missing or not finite."""
    res = check_resolution(resolution)
    lat = np.asarray(lat, dtype="float64")
    lng = np.asarray(lng, dtype="float64")
    out = np.zeros(len(lat), dtype=np.uint64)
    # comparisons only (NaN fails them): no 40 MB absolute values per 5M points
    ok = (lat >= -90) & (lat <= 90) & (lng >= -180) & (lng <= 180)
    if not ok.any():
        return out
    every = bool(ok.all())  # the usual case: no 5M-row positions
    rows = None if every else np.flatnonzero(ok)
    # voters of a household or building share a geocode: on one core, each distinct point once pays; on more, the
    # cells of every point on threads take less time than finding the distinct points on one (5M voters on 2 cores,
    # 1.8M distinct points: 0.98 s for every point, 1.65 s through the distinct ones)
    if _threads(len(lat) if rows is None else len(rows)) < 2:
        la, ln = (lat, lng) if rows is None else (lat[rows], lng[rows])
        distinct = distinct_points(ln, la)
        if distinct is not None:
            codes, first = distinct
            cells = _cells(la[first], ln[first], res)[codes]
            if rows is None:
                out[:] = cells
            else:
                out[rows] = cells
            return out
    _cells_into(lat, lng, rows, res, out)
    return out


def _threads(n: int) -> int:
    return min(usable_cores(), 4, n // _MIN_ROWS_PER_THREAD)


#: points whose cells are computed at once (their coordinates gathered into small temporaries)
_CHUNK = 1 << 18


def _cells_into(lat: np.ndarray, lng: np.ndarray, rows: np.ndarray | None, res: int, out: np.ndarray) -> None:
    """Cells of the points at ``rows`` (every point when ``None``) into ``out`` at the same rows.

    The rows are cut in one contiguous part per thread (h3ronpy releases Python's lock: 1.9 -> 1.2 s for 5M points
    on 2 cores), and each part goes in chunks of a quarter million: the chunks' coordinates and cells are small
    temporaries that the allocator reuses, where whole gathered columns would be fresh memory (slow to fault in).
    """
    m = len(lat) if rows is None else len(rows)
    threads = max(_threads(m), 1)
    bounds = np.linspace(0, m, threads + 1).astype(np.int64)

    def part(i: int) -> None:
        for a in range(int(bounds[i]), int(bounds[i + 1]), _CHUNK):
            b = min(a + _CHUNK, int(bounds[i + 1]))
            if rows is None:
                out[a:b] = np.asarray(coordinates_to_cells(lat[a:b], lng[a:b], res), dtype=np.uint64)
            else:
                r = rows[a:b]
                out[r] = np.asarray(coordinates_to_cells(lat[r], lng[r], res), dtype=np.uint64)

    if threads < 2:
        part(0)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(part, range(threads)))


def _cells(la: np.ndarray, ln: np.ndarray, res: int) -> np.ndarray:
    """Cells of valid points (every point has coordinates)."""
    out = np.empty(len(la), dtype=np.uint64)
    _cells_into(la, ln, None, res, out)
    return out


def cell_parents(cells: np.ndarray, resolution: int) -> np.ndarray:
    """Parent cells at a coarser ``resolution`` (``0`` stays ``0``)."""
    res = check_resolution(resolution) if resolution >= MIN_RESOLUTION else int(resolution)
    cells = np.asarray(cells, dtype=np.uint64)
    out = np.zeros(len(cells), dtype=np.uint64)
    ok = cells != NO_CELL
    if ok.any():
        out[ok] = np.asarray(change_resolution(cells[ok], res), dtype=np.uint64)
    return out


def cell_resolutions(cells: np.ndarray) -> np.ndarray:
    """Resolution (0..15, int8) of each cell, read from the index bits; ``-1`` for ``0`` (no cell)."""
    cells = np.asarray(cells, dtype=np.uint64)
    res = ((cells >> np.uint64(52)) & np.uint64(0xF)).astype(np.int8)
    res[cells == NO_CELL] = -1
    return res


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """Shapely polygons (lon/lat) of cells, as an object array aligned to ``cells``."""
    cells = np.asarray(cells, dtype=np.uint64)
    if len(cells) == 0:
        return np.empty(0, dtype=object)
    return shapely.from_wkb(np.asarray(cells_to_wkb_polygons(cells), dtype=object))


def cells_to_hex(cells: np.ndarray) -> np.ndarray:
    """Cells as the 15-digit lowercase hex strings people and platforms use (exports only)."""
    cells = np.asarray(cells, dtype=np.uint64)
    return np.array([format(int(c), "x") if c else "" for c in cells], dtype=object)


def polygons_to_cells(polygons: np.ndarray, resolution: int) -> list[np.ndarray]:
    """Cells (uint64) whose centroid lies in each (lon/lat) polygon, one array per polygon, sorted."""
    res = check_resolution(resolution)
    geoms = np.asarray(polygons, dtype=object)
    if len(geoms) == 0:
        return []
    nested = pa.array(wkb_to_cells(shapely.to_wkb(geoms), res))
    return [np.sort(np.asarray(nested[i].values, dtype=np.uint64)) for i in range(len(geoms))]
