"""H3 cells and exactly-one-precinct assignment on hand-drawn fixtures, properties and the real RI precincts."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from geo_segment import schema as S
from geo_segment.errors import ConfigError, MissingColumnsError
from geo_segment.join import METHODS, add_h3_cells, assign_areas, assign_precincts

ROOT = Path(__file__).resolve().parents[1]
RI = ROOT.parent / "shared" / "data" / "ri" / "ri_precincts_providence_washington_2016_2018.parquet"

# A hand-drawn layer near Providence, in units of D = 0.01 degrees from the origin O (about 0.8 x 1.1 km):
#
#   y=4 +-------+            E: a square ring (hole at x 0.4-0.6, y 3.4-3.6) with island F inside the hole
#   y=3 +-------+
#   y=2 +-------+-------+
#       |   A   |   B ##|    ## = a small piece of C inside B (x 1.5-1.7, y 1.0-1.2): an overlap
#   y=1 +-------+----+--+-+
#       |   D   | gap|  C |  C: x 1.5-2.5, y 0.5-1.5, minus B
#   y=0 O-------+    +----+  G: x 2.2-3, y 0-0.4;  H: two islands at (5-5.5) and (6-6.5)
D = 0.01
X0, Y0 = -71.5, 41.7


def sq(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return box(X0 + x0 * D, Y0 + y0 * D, X0 + x1 * D, Y0 + y1 * D)


def pt(x: float, y: float) -> tuple[float, float]:
    return (X0 + x * D, Y0 + y * D)


@pytest.fixture(scope="module")
def layer() -> gpd.GeoDataFrame:
    ring = sq(0, 3, 1, 4).difference(sq(0.4, 3.4, 0.6, 3.6))
    return gpd.GeoDataFrame(
        {
            "pid": ["A", "B", "C", "D", "E", "F", "G", "H"],
            "geometry": [
                sq(0, 1, 1, 2),
                sq(1, 1, 2, 2),
                sq(1.5, 0.5, 2.5, 1.5).difference(sq(1, 1, 2, 2)).union(sq(1.5, 1.0, 1.7, 1.2)),
                sq(0, 0, 1, 1),
                ring,
                sq(0.45, 3.45, 0.55, 3.55),
                sq(2.2, 0, 3, 0.4),
                MultiPolygon([sq(5, 5, 5.5, 5.5), sq(6, 6, 6.5, 6.5)]),  # islands
            ],
        },
        crs=4326,
    )


def _points(coords: list[tuple[float, float]]) -> gpd.GeoDataFrame:
    xs = [c[0] for c in coords]
    ys = [c[1] for c in coords]
    return gpd.GeoDataFrame(
        {S.VOTER_ID: [f"v{i}" for i in range(len(coords))], S.LAT: ys, S.LNG: xs},
        geometry=gpd.points_from_xy(xs, ys), crs=4326, index=pd.RangeIndex(100, 100 + len(coords)),
    )


@pytest.mark.parametrize("fast", [None, 20.0, "auto"], ids=["exact", "fast-20m", "fast-auto"])
@pytest.mark.parametrize(
    ("where", "xy", "pid", "method"),
    [
        ("inside A", (0.5, 1.5), "A", "within"),
        ("shared edge A|B", (1.0, 1.7), "A", "boundary"),
        ("shared vertex A,B,D", (1.0, 1.0), "A", "boundary"),
        ("inside overlap B/C", (1.6, 1.1), "B", "boundary"),
        ("in the hole of E", (0.5, 3.41), None, None),
        ("on island F in the hole", (0.5, 3.5), "F", "within"),
        ("inside E's ring", (0.2, 3.2), "E", "within"),
        ("second part of H", (6.2, 6.2), "H", "within"),
        ("gap 17 m east of D", (1.0 + 0.0002 / D, 0.5), "D", "nearest"),
        ("far outside", (9.0, 9.0), None, "unassigned"),
    ],
)
def test_each_place_gets_its_precinct(layer: gpd.GeoDataFrame, fast: int | str | None, where: str,
                                      xy: tuple[float, float], pid: str | None, method: str | None) -> None:
    out, _ = assign_areas(_points([pt(*xy)]), layer, id_col="pid", out_id=S.PRECINCT_ID,
                          out_method=S.PRECINCT_METHOD, fast_box_m=fast)
    got_id = out[S.PRECINCT_ID].iloc[0]
    got_id = None if pd.isna(got_id) else got_id
    if where == "in the hole of E":  # 0.01 D (about 11 m) from the hole's edge: nearest E within 50 m
        assert (got_id, out[S.PRECINCT_METHOD].iloc[0]) == ("E", "nearest")
        return
    assert (got_id, out[S.PRECINCT_METHOD].iloc[0]) == (pid, method), where


def test_rows_index_and_order_kept_nothing_duplicated(layer: gpd.GeoDataFrame) -> None:
    pts = _points([pt(0.5, 1.5), pt(1.0, 1.0), pt(9, 9), pt(1.6, 1.1)])
    pts.loc[pts.index[2], [S.LAT, S.LNG]] = np.nan  # not geocoded
    out = assign_precincts(pts, layer, id_col="pid")
    assert out.index.equals(pts.index)
    assert out[S.VOTER_ID].tolist() == pts[S.VOTER_ID].tolist()
    assert out[S.PRECINCT_METHOD].tolist() == ["within", "boundary", "unassigned", "boundary"]
    assert S.PRECINCT_ID not in pts.columns  # the input is not mutated


def test_tolerance_is_configurable(layer: gpd.GeoDataFrame) -> None:
    p = _points([pt(1.0 + 0.0002 / D, 0.5)])  # about 17 m east of D, in the gap
    assert assign_precincts(p, layer, id_col="pid", tolerance_m=10)[S.PRECINCT_METHOD].iloc[0] == "unassigned"
    assert assign_precincts(p, layer, id_col="pid", tolerance_m=0)[S.PRECINCT_METHOD].iloc[0] == "unassigned"
    assert assign_precincts(p, layer, id_col="pid", tolerance_m=50)[S.PRECINCT_ID].iloc[0] == "D"


def test_crs_mismatch_and_missing_id_are_errors(layer: gpd.GeoDataFrame) -> None:
    p = _points([pt(0.5, 1.5)])
    with pytest.raises(ConfigError, match="are not in the storage CRS; expected EPSG:4326, found EPSG:3857"):
        assign_precincts(p, layer.to_crs(3857), id_col="pid")
    with pytest.raises(MissingColumnsError, match="area layer has no column 'nope'"):
        assign_precincts(p, layer, id_col="nope")


def test_h3_cells_match_h3py_and_parents() -> None:
    coords = [pt(0.5, 1.5), pt(3, 3), (np.nan, np.nan)]
    out = add_h3_cells(_points(coords), resolution=9, parents=(7,))
    assert out[S.H3_CELL].dtype == np.uint64
    for (x, y), cell, parent in zip(coords[:2], out[S.H3_CELL], out["h3_cell_r7"], strict=False):
        assert h3.int_to_str(int(cell)) == h3.latlng_to_cell(y, x, 9)
        assert h3.int_to_str(int(parent)) == h3.cell_to_parent(h3.latlng_to_cell(y, x, 9), 7)
    assert out[S.H3_CELL].iloc[2] == 0


@pytest.mark.parametrize("res", [4, 16, 9.5])
def test_resolution_out_of_range(res: object) -> None:
    with pytest.raises(ConfigError, match="H3 resolution out of range"):
        add_h3_cells(_points([pt(0, 0)]), resolution=res)  # type: ignore[arg-type]


def reference_assign(points: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, id_col: str,
                     tolerance_m: float = 50.0) -> pd.Series:
    """The exact reference: geopandas sjoin (intersects) + interior-first, lowest-id tie-break; sjoin_nearest."""
    pts = points[[points.geometry.name]].copy()
    pts["_row"] = np.arange(len(pts))
    valid = pts[~(pts.geometry.is_empty | pts.geometry.isna())]
    hits = gpd.sjoin(valid, areas[[id_col, "geometry"]], predicate="intersects", how="inner")
    poly = areas.geometry.values[hits["index_right"].to_numpy()]
    hits["interior"] = shapely.contains_properly(poly, hits.geometry.values)
    hits["_id"] = hits[id_col].astype(str)
    best = hits.sort_values(["_row", "interior", "_id"], ascending=[True, False, True]).drop_duplicates("_row")
    result = pd.Series([None] * len(pts), dtype=object)
    result[best["_row"].to_numpy()] = best["_id"].to_numpy()
    rest = valid[~valid["_row"].isin(best["_row"])]
    if len(rest) and tolerance_m > 0:
        crs = areas.estimate_utm_crs()
        near = gpd.sjoin_nearest(rest.to_crs(crs), areas[[id_col, "geometry"]].to_crs(crs),
                                 max_distance=tolerance_m, how="inner")
        near["_id"] = near[id_col].astype(str)
        near = near.sort_values(["_row", "_id"]).drop_duplicates("_row")
        result[near["_row"].to_numpy()] = near["_id"].to_numpy()
    return result


@settings(max_examples=25, deadline=None)
@given(
    st.integers(2, 6), st.integers(2, 6), st.integers(0, 10_000),
    st.lists(st.tuples(st.floats(-0.5, 7.5), st.floats(-0.5, 7.5)), min_size=1, max_size=60),
)
def test_property_at_most_one_and_exactly_one_inside(nx: int, ny: int, seed: int,
                                                     raw: list[tuple[float, float]]) -> None:
    """Random valid tilings (jittered grids): every point gets at most one precinct, exactly one inside the union."""
    rng = np.random.default_rng(seed)
    xs = np.linspace(0, 7, nx + 1)
    ys = np.linspace(0, 7, ny + 1)
    jx = xs + np.r_[0, rng.uniform(-0.3, 0.3, nx - 1), 0]
    polys = [sq(jx[i], ys[j], jx[i + 1], ys[j + 1]) for i in range(nx) for j in range(ny)]
    ids = [f"p{k:03d}" for k in rng.permutation(len(polys))]
    layer = gpd.GeoDataFrame({"pid": ids, "geometry": polys}, crs=4326)
    # include exact grid vertices and edge points
    coords = [pt(x, y) for x, y in raw] + [pt(jx[1], ys[1]), pt(jx[1], (ys[0] + ys[1]) / 2)]
    points = _points(coords)
    out, _ = assign_areas(points, layer, id_col="pid", out_id="pid_out", out_method="m", tolerance_m=0)
    assert len(out) == len(points) and out.index.equals(points.index)
    union = shapely.union_all(layer.geometry.values)
    inside = shapely.intersects(union, points.geometry.values)
    assert (out["pid_out"].notna().to_numpy() == inside).all()
    ref = reference_assign(points, layer, "pid", tolerance_m=0)
    assert out["pid_out"].fillna("-").tolist() == ref.fillna("-").tolist()


@pytest.mark.skipif(not RI.exists(), reason="needs ../shared/data/ri")
def test_real_ri_precincts_equal_the_exact_reference() -> None:
    """Overlaps, gaps and shoreline: nobody lost or duplicated, exactly one inside the union, equal to sjoin."""
    precincts = gpd.read_parquet(RI)
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = precincts.total_bounds
    n = 20_000
    xs = rng.uniform(minx, maxx, n)
    ys = rng.uniform(miny, maxy, n)
    # plus every vertex of 40 precincts: points exactly on shared edges and vertices
    verts = shapely.get_coordinates(precincts.geometry.values[:40].boundary)[::7]
    xs = np.r_[xs, verts[:, 0]]
    ys = np.r_[ys, verts[:, 1]]
    points = _points(list(zip(xs, ys, strict=True)))
    out, metrics = assign_areas(points, precincts, id_col="JOINID", out_id=S.PRECINCT_ID,
                                out_method=S.PRECINCT_METHOD)
    assert len(out) == len(points) and out[S.VOTER_ID].is_unique
    union = shapely.union_all(precincts.geometry.values)
    inside = shapely.intersects(union, points.geometry.values)
    assert out.loc[inside, S.PRECINCT_ID].notna().all()
    ref = reference_assign(points, precincts, "JOINID")
    mismatch = (out[S.PRECINCT_ID].fillna("-").to_numpy() != ref.fillna("-").to_numpy())
    assert mismatch.sum() == 0, out[mismatch].head()
    assert metrics["boundary"] > 0 and metrics["nearest"] > 0 and metrics["unassigned"] > 0
    assert sum(metrics[m] for m in ("within", "boundary", "nearest", "unassigned")) == len(points)


@pytest.mark.skipif(not RI.exists(), reason="needs ../shared/data/ri")
@pytest.mark.skipif(not RI.exists(), reason="needs ../shared/data/ri")
@pytest.mark.parametrize("fast", [5.0, 25.0, 100.0, 400.0])
def test_fast_grid_equals_exact_on_ri(fast: float) -> None:
    """Shoreline, overlaps, gaps: points copied from their box's representative get the exact answer, with boxes
    from 5 m (most points tested themselves) to 400 m (most copied), in dense clusters and on every vertex."""
    precincts = gpd.read_parquet(RI)
    rng = np.random.default_rng(int(fast))
    minx, miny, maxx, maxy = precincts.total_bounds
    verts = shapely.get_coordinates(precincts.geometry.values.boundary)[::3]
    centres = np.column_stack([rng.uniform(minx, maxx, 150), rng.uniform(miny, maxy, 150)])
    cluster = np.repeat(centres, 30, axis=0) + rng.normal(0, 0.003, (4500, 2))
    xs = np.r_[rng.uniform(minx, maxx, 3000), cluster[:, 0], verts[:, 0]]
    ys = np.r_[rng.uniform(miny, maxy, 3000), cluster[:, 1], verts[:, 1]]
    points = _points(list(zip(xs, ys, strict=True)))
    fast_out, m_fast = assign_areas(points, precincts, id_col="JOINID", fast_box_m=fast)
    exact_out, _ = assign_areas(points, precincts, id_col="JOINID", fast_box_m=None)
    pd.testing.assert_frame_equal(fast_out, exact_out)
    assert m_fast["fast_points"] > 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([3.0, 11.0, 40.0, 150.0]))
def test_property_fast_grid_equals_exact_on_slanted_edges(seed: int, box_m: float) -> None:
    """Rotated, overlapping squares (edges at every angle, clipping box corners) and points packed along their
    edges: the fast grid never copies an answer across a ring, whatever the box size."""
    rng = np.random.default_rng(seed)
    polys = [shapely.affinity.rotate(sq(*(c := rng.uniform(0, 2, 2)), *(c + rng.uniform(0.2, 1.2))),
                                     float(rng.uniform(0, 90)), origin="centroid") for _ in range(5)]
    layer = gpd.GeoDataFrame({"pid": [f"q{k}" for k in range(5)], "geometry": polys}, crs=4326)
    rings = shapely.get_coordinates(layer.boundary.values)
    along = rings[rng.integers(0, len(rings) - 1, 400)]
    t = rng.uniform(0, 1, (400, 1))
    on_edges = along + t * (rings[np.minimum(rng.integers(0, len(rings) - 1, 400) + 1, len(rings) - 1)] - along)
    near = np.repeat(on_edges, 3, axis=0) + rng.normal(0, 0.00005, (1200, 2))  # within metres of an edge
    lattice = np.column_stack([rng.uniform(X0 - 0.005, X0 + 0.04, 800), rng.uniform(Y0 - 0.005, Y0 + 0.04, 800)])
    coords = np.r_[near, lattice, rings]
    points = _points([(float(x), float(y)) for x, y in coords])
    quick, _ = assign_areas(points, layer, id_col="pid", fast_box_m=box_m, tolerance_m=0)
    exact, _ = assign_areas(points, layer, id_col="pid", fast_box_m=None, tolerance_m=0)
    pd.testing.assert_frame_equal(quick, exact)


@pytest.mark.parametrize("fast", [30.0, 120.0, 500.0])
def test_fast_path_equals_the_exact_path(fast: float) -> None:
    """Points in untouched boxes copy their representative's answer, the others are tested themselves: the same
    answer as testing every point against the tree, on a jittered grid with an overlap, edges and vertices."""
    rng = np.random.default_rng(int(fast))
    xs = np.linspace(-71.6, -71.2, 9)
    ys = np.linspace(41.6, 41.9, 7)
    jx = xs + np.r_[0, rng.uniform(-0.01, 0.01, len(xs) - 2), 0]
    polys = [box(jx[i], ys[j], jx[i + 1], ys[j + 1]) for i in range(len(xs) - 1) for j in range(len(ys) - 1)]
    polys[5] = polys[5].buffer(0.004)  # an overlap with its neighbours
    layer = gpd.GeoDataFrame({"pid": [f"p{k:02d}" for k in rng.permutation(len(polys))], "geometry": polys},
                             crs=4326)
    verts = shapely.get_coordinates(layer.boundary.values)
    coords = np.r_[np.column_stack([rng.uniform(-71.65, -71.15, 6000), rng.uniform(41.55, 41.95, 6000)]), verts]
    points = _points([(float(x), float(y)) for x, y in coords])
    exact, m_exact = assign_areas(points, layer, id_col="pid", fast_box_m=None)
    quick, m_fast = assign_areas(points, layer, id_col="pid", fast_box_m=fast)
    pd.testing.assert_frame_equal(exact, quick)
    assert {k: m_exact[k] for k in METHODS} == {k: m_fast[k] for k in METHODS}
    assert m_fast["boundary"] > 0 and m_fast["nearest"] > 0 and m_fast["unassigned"] > 0
    assert 0 < m_fast["fast_points"] < len(points) and m_fast["exact_points"] < len(points)
    ref = reference_assign(points, layer, "pid")
    assert exact["area_id"].fillna("-").tolist() == ref.fillna("-").tolist()


def test_layer_with_lines_is_tested_exactly() -> None:
    """The grid marks polygon rings only: a layer holding a line (a street centreline drawn as a "precinct")
    makes every point take the exact test, so the points on the line still find it."""
    on_line = [pt(float(v), float(v) ** 2) for v in np.linspace(0, 1, 41)]  # the line's vertices
    layer = gpd.GeoDataFrame({"pid": ["L", "S"], "geometry": [shapely.LineString(on_line), sq(2, 2, 3, 3)]},
                             crs=4326)
    coords = on_line + [pt(2.5, 2.5), pt(0.5, 0.6)]
    out, metrics = assign_areas(_points(coords), layer, id_col="pid", tolerance_m=0, fast_box_m=20.0)
    assert out["area_id"].tolist()[:41] == ["L"] * 41
    assert out["area_id"].tolist()[41] == "S" and pd.isna(out["area_id"].iloc[42])
    assert metrics["exact_points"] == len(coords)


@pytest.mark.parametrize("samples", [1, 7, 1000])
def test_grid_marked_in_runs_equals_one_run(layer: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch,
                                            samples: int) -> None:
    """The ring samples are marked in runs of segments (bounded memory for national layers): any run length marks
    the same boxes at every level as one run over all segments."""
    import geo_segment.join as J

    geoms = np.asarray(layer.geometry.values, dtype=object)
    whole = J._fast_grid(geoms, 20.0 / J.M_PER_DEG)
    monkeypatch.setattr(J, "_GRID_SAMPLES", samples)
    runs = J._fast_grid(geoms, 20.0 / J.M_PER_DEG)
    assert whole is not None and runs is not None
    assert [int(t.sum()) for t in whole.touched] == [int(t.sum()) for t in runs.touched]
    assert all(np.array_equal(a, b) for a, b in zip(whole.touched, runs.touched, strict=True))
    assert whole.touched[0].sum() > 100


@pytest.mark.parametrize("fast", [None, 30.0])
@pytest.mark.parametrize("cores", [2, 3])
def test_exact_tests_in_parts_on_threads_equal_one_part(monkeypatch: pytest.MonkeyPatch, fast: float | None,
                                                        cores: int) -> None:
    """The exact tests run in contiguous parts, one thread per core: any number of parts gives the same answers
    and counts as one part (a tiny part size forces the threads on a small layer)."""
    import geo_segment.join as J

    rng = np.random.default_rng(cores)
    polys = [box(-71.6 + 0.05 * i, 41.6 + 0.05 * j, -71.55 + 0.05 * i, 41.65 + 0.05 * j)
             for i in range(6) for j in range(5)]
    polys[7] = polys[7].buffer(0.01)  # overlaps: boundary picks and ties
    layer = gpd.GeoDataFrame({"pid": [f"p{k:02d}" for k in rng.permutation(len(polys))], "geometry": polys},
                             crs=4326)
    coords = np.r_[np.column_stack([rng.uniform(-71.62, -71.28, 5000), rng.uniform(41.58, 41.87, 5000)]),
                   shapely.get_coordinates(layer.boundary.values)]
    points = _points([(float(x), float(y)) for x, y in coords])
    one, m_one = assign_areas(points, layer, id_col="pid", fast_box_m=fast)
    calls: list[int] = []
    real_exact = J._exact
    monkeypatch.setattr(J, "_exact", lambda rows, *a: (calls.append(len(rows)), real_exact(rows, *a)))
    monkeypatch.setattr(J, "_EXACT_ROWS_PER_THREAD", 50)
    monkeypatch.setattr(J, "usable_cores", lambda: cores)
    parts, m_parts = assign_areas(points, layer, id_col="pid", fast_box_m=fast)
    assert len(calls) == cores and sum(calls) == m_one["exact_points"]
    pd.testing.assert_frame_equal(one, parts)
    assert {k: m_one[k] for k in METHODS} == {k: m_parts[k] for k in METHODS}
    assert m_one["boundary"] > 0 and m_one["within"] > 0


@pytest.mark.parametrize("cores", [2, 3])
def test_grid_boxes_in_parts_on_threads_equal_one_part(monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    """The fast grid's box numbers are computed in contiguous parts, one thread per core: a box then has a
    representative per part, and every answer equals one part's (a tiny part size forces the threads)."""
    import geo_segment.join as J

    rng = np.random.default_rng(10 + cores)
    polys = [box(-71.6 + 0.05 * i, 41.6 + 0.05 * j, -71.55 + 0.05 * i, 41.65 + 0.05 * j)
             for i in range(6) for j in range(5)]
    polys[7] = polys[7].buffer(0.01)
    layer = gpd.GeoDataFrame({"pid": [f"p{k:02d}" for k in rng.permutation(len(polys))], "geometry": polys},
                             crs=4326)
    coords = np.r_[np.column_stack([rng.uniform(-71.62, -71.28, 5000), rng.uniform(41.58, 41.87, 5000)]),
                   shapely.get_coordinates(layer.boundary.values), [(-75.0, 40.0), (-71.5, 41.7)]]
    points = _points([(float(x), float(y)) for x, y in coords])
    one, m_one = assign_areas(points, layer, id_col="pid", fast_box_m=30.0)
    parts_seen: list[int] = []
    real_part = J._grid_part
    monkeypatch.setattr(J, "_grid_part", lambda x, *a: (parts_seen.append(len(x)), real_part(x, *a))[1])
    monkeypatch.setattr(J, "_GRID_ROWS_PER_THREAD", 100)
    monkeypatch.setattr(J, "usable_cores", lambda: cores)
    parts, m_parts = assign_areas(points, layer, id_col="pid", fast_box_m=30.0)
    assert len(parts_seen) == cores and sum(parts_seen) == len(points)
    pd.testing.assert_frame_equal(one, parts)
    assert {k: m_one[k] for k in METHODS} == {k: m_parts[k] for k in METHODS}
    assert m_one["fast_points"] > 1000 and m_parts["exact_points"] >= m_one["exact_points"]


@pytest.mark.parametrize("fast", [None, 30.0])
def test_points_at_shared_coordinates_joined_once_equal_each_joined(monkeypatch: pytest.MonkeyPatch,
                                                                    fast: float | None) -> None:
    """Households share a geocode: each distinct point is joined (and its H3 cell found) once and the answer
    spread; the answers equal joining every point, on edges, vertices, an overlap and outside every polygon."""
    import functools

    import geo_segment._h3 as H
    import geo_segment.join as J
    from geo_segment._keys import distinct_points

    rng = np.random.default_rng(7)
    polys = [box(-71.6 + 0.05 * i, 41.6 + 0.05 * j, -71.55 + 0.05 * i, 41.65 + 0.05 * j)
             for i in range(4) for j in range(4)]
    polys[5] = polys[5].buffer(0.01)
    layer = gpd.GeoDataFrame({"pid": [f"p{k:02d}" for k in range(len(polys))], "geometry": polys}, crs=4326)
    places = np.r_[np.column_stack([rng.uniform(-71.62, -71.38, 600), rng.uniform(41.58, 41.82, 600)]),
                   shapely.get_coordinates(layer.boundary.values)]
    coords = places[rng.integers(0, len(places), 4000)]  # about 4 voters per place, shuffled
    coords[::97] = np.nan  # not geocoded
    frame = gpd.GeoDataFrame({"lat": coords[:, 1], "lng": coords[:, 0]},
                             geometry=gpd.points_from_xy(coords[:, 0], coords[:, 1]), crs=4326)
    each_cells = add_h3_cells(frame)
    each, m_each = assign_areas(frame, layer, id_col="pid", fast_box_m=fast)
    once_fn = functools.partial(distinct_points, min_points=1)
    monkeypatch.setattr(J, "distinct_points", once_fn)
    monkeypatch.setattr(H, "distinct_points", once_fn)
    once, m_once = assign_areas(frame, layer, id_col="pid", fast_box_m=fast)
    assert 0 < m_once["distinct_points"] < 0.3 * len(frame) and "distinct_points" not in m_each
    pd.testing.assert_frame_equal(each, once)
    assert {k: m_each[k] for k in METHODS} == {k: m_once[k] for k in METHODS}
    assert m_once["boundary"] > 0 and m_once["nearest"] + m_once["unassigned"] > 0
    pd.testing.assert_frame_equal(add_h3_cells(frame), each_cells)


@pytest.mark.parametrize("cores", [1, 2, 3])
@pytest.mark.parametrize("missing", [False, True])
def test_h3_cells_on_threads_equal_h3_py(monkeypatch: pytest.MonkeyPatch, cores: int, missing: bool) -> None:
    """Each thread writes its slice of the cells; any number of threads gives h3-py's cell of every point (``0``
    for missing or impossible coordinates)."""
    import geo_segment._h3 as H

    rng = np.random.default_rng(cores)
    lat, lng = rng.uniform(41.0, 42.0, 1001), rng.uniform(-72.0, -71.0, 1001)
    if missing:
        lat[[0, 500, 1000]] = [np.nan, 95.0, 41.5]
        lng[[0, 500, 1000]] = [-71.5, -71.5, np.inf]
    monkeypatch.setattr(H, "_MIN_ROWS_PER_THREAD", 10)
    monkeypatch.setattr(H, "_CHUNK", 64)  # each thread's part in several chunks, the last one short
    monkeypatch.setattr(H, "usable_cores", lambda: cores)
    monkeypatch.setattr(H, "distinct_points", lambda *a, **k: None)  # every point through the threads
    got = H.latlng_to_cells(lat, lng, 9)
    ok = np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90)
    expected = [h3.str_to_int(h3.latlng_to_cell(a, b, 9)) if k else 0 for a, b, k in zip(lat, lng, ok, strict=True)]
    assert got.dtype == np.uint64 and got.tolist() == expected
    assert (got == 0).sum() == (3 if missing else 0)


@pytest.mark.parametrize("share_missing", [0.01, 0.3, 0.7])
def test_grid_over_points_without_coordinates_equals_exact_tests(share_missing: float) -> None:
    """With most points geocoded the grid takes every point at once (no gathered coordinates), and a point without
    coordinates falls outside every box: the answers, methods and counts equal exact tests of every point."""
    rng = np.random.default_rng(11)
    polys = [box(-71.6 + 0.05 * i, 41.6 + 0.05 * j, -71.55 + 0.05 * i, 41.65 + 0.05 * j)
             for i in range(4) for j in range(4)]
    layer = gpd.GeoDataFrame({"pid": [f"p{k:02d}" for k in range(len(polys))], "geometry": polys}, crs=4326)
    coords = np.r_[np.column_stack([rng.uniform(-71.62, -71.38, 3000), rng.uniform(41.58, 41.82, 3000)]),
                   shapely.get_coordinates(layer.boundary.values)]
    missing = rng.random(len(coords)) < share_missing
    coords[missing] = np.nan
    frame = gpd.GeoDataFrame({"lat": coords[:, 1], "lng": coords[:, 0]},
                             geometry=gpd.points_from_xy(coords[:, 0], coords[:, 1]), crs=4326)
    exact, m_exact = assign_areas(frame, layer, id_col="pid", fast_box_m=None)
    grid, m_grid = assign_areas(frame, layer, id_col="pid", fast_box_m=30.0)
    pd.testing.assert_frame_equal(exact, grid)
    assert {k: m_exact[k] for k in (*METHODS, "not_geocoded", "with_coordinates")} == {
        k: m_grid[k] for k in (*METHODS, "not_geocoded", "with_coordinates")}
    assert m_grid["not_geocoded"] == int(missing.sum()) > 0
    assert 0 < m_grid["fast_points"] <= m_grid["with_coordinates"]
    assert grid.loc[missing, "area_method"].eq("unassigned").all() and grid.loc[missing, "area_id"].isna().all()
