"""Tiny hand-drawn inputs for the map tests (shared by test_maps.py and test_maps_browser.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import LineString, box

from geo_segment import _h3

EVIL = "<img src=x onerror=alert(1)>"
#: folium compiles rendered scripts as Jinja templates: this must reach the page as text
JINJA = "Two {{ 7*7 }} {% raw %}"
X0, Y0, D = -71.42, 41.82, 0.01


def grid_precincts() -> gpd.GeoDataFrame:
    """Six square precincts, 0.01° each; P6 is suppressed; P1 and P2 have hostile names::

        +----+----+----+
        | P1 | P2 | P3 |   voters 20, 30, 40
        +----+----+----+
        | P4 | P5 | P6 |   voters 50, 60, (suppressed)
        +----+----+----+
    """
    ids = ["P1", "P2", "P3", "P4", "P5", "P6"]
    geoms = [box(X0 + c * D, Y0 - (r + 1) * D, X0 + (c + 1) * D, Y0 - r * D) for r in range(2) for c in range(3)]
    voters = pd.array([20, 30, 40, 50, 60, None], dtype="Int64")
    dem = pd.array([10, 6, 20, 5, 30, None], dtype="Int64")
    return gpd.GeoDataFrame({
        "precinct_id": pd.array(ids, dtype="string"),
        "NAME": pd.array([EVIL, JINJA, "Three", "Four", "Five", "Six"], dtype="string"),
        "voters": voters,
        "households": pd.array([10, 15, 20, 25, 30, None], dtype="Int64"),
        "party_DEM": dem,
        "turnout_last_general": [0.5, 0.6, 0.7, 0.8, 0.9, np.nan],
        "suppressed": [False, False, False, False, False, True],
    }, geometry=geoms, crs="EPSG:4326")


def grid_cells() -> pd.DataFrame:
    """Seven H3 res-9 cells (a centre and its ring) without geometry; the last one suppressed."""
    import h3

    centre = h3.latlng_to_cell(Y0 - D, X0 + D, 9)
    cells = [centre, *sorted(set(h3.grid_disk(centre, 1)) - {centre})]
    ints = np.array([int(c, 16) for c in cells], dtype=np.uint64)
    voters = pd.array([15, 20, 25, 30, 35, 40, None], dtype="Int64")
    return pd.DataFrame({"h3_cell": ints, "voters": voters,
                         "turnout_last_general": [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, np.nan],
                         "suppressed": [False] * 6 + [True]})


def grid_micro_geos() -> gpd.GeoDataFrame:
    """Two micro-geographies (unions of two cells each); the second suppressed."""
    cells = grid_cells()["h3_cell"].to_numpy(dtype=np.uint64)
    polys = _h3.cell_polygons(cells)
    import shapely

    geoms = [shapely.union_all(polys[:2]), shapely.union_all(polys[3:5])]
    return gpd.GeoDataFrame({
        "micro_geo": pd.array([0, 1], dtype="Int64"), "voters": pd.array([35, None], dtype="Int64"),
        "households": pd.array([20, None], dtype="Int64"), "mean_score": [0.71, np.nan],
        "precinct_ids": pd.array([f"P1;{EVIL}", "P5"], dtype="string"), "suppressed": [False, True],
    }, geometry=geoms, crs="EPSG:4326")


def turf_inputs() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, pd.DataFrame]:
    """Two turfs on P1 and P2 (the contract of turfs.parquet / routes.parquet / doors), three doors each."""
    turfs = gpd.GeoDataFrame({
        "turf_id": pd.array(["T01", "T 02/<b>"], dtype="string"),
        "precinct_id": pd.array(["P1", "P2"], dtype="string"),
        "list_number": pd.array([1, 2], dtype="Int64"), "doors": pd.array([3, 3], dtype="Int64"),
        "people": pd.array([5, 4], dtype="Int64"), "est_minutes": [30.0, 45.0], "route_m": [800.0, 1200.0],
        "drive_flag": [False, True], "within_tolerance": [True, False],
    }, geometry=[box(X0, Y0 - D, X0 + D, Y0), box(X0 + D, Y0 - D, X0 + 2 * D, Y0)], crs="EPSG:4326")
    pts = {
        "T01": [(X0 + 0.002, Y0 - 0.002), (X0 + 0.005, Y0 - 0.004), (X0 + 0.008, Y0 - 0.007)],
        "T 02/<b>": [(X0 + D + 0.002, Y0 - 0.003), (X0 + D + 0.006, Y0 - 0.005), (X0 + D + 0.007, Y0 - 0.008)],
    }
    routes = gpd.GeoDataFrame({"turf_id": pd.array(list(pts), dtype="string")},
                              geometry=[LineString(p) for p in pts.values()], crs="EPSG:4326")
    rows = []
    for tid, plist in pts.items():
        for i, (x, y) in enumerate(plist, start=1):
            rows.append({"turf_id": tid, "door_order": i, "household_id": f"H-{tid}-{i}", "lat": y, "lng": x,
                         "last_name": "ZYXWVUTS" if i == 1 else EVIL, "address": f"{i} Elm St"})
    doors = pd.DataFrame(rows).astype({"turf_id": "string", "door_order": "Int64"})
    return turfs, routes, doors


_BLOB = re.compile(r"var gs_data_[0-9a-f]+ = (\{.*?\});\n", re.S)


def data_blobs(html: str) -> list[dict[str, Any]]:
    """Every GeoJSON blob (``var gs_data_... = {...};``) written into a map's HTML, parsed."""
    return [json.loads(b) for b in _BLOB.findall(html)]


def read(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")
