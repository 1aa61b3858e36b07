"""Turf cutting: hand-drawn door fixtures with expected turfs, properties (every door in one turf, no household or
building split, contiguity on the stated adjacency, no barrier crossed, determinism), universe and doors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geo_segment.config import TurfsConfig
from geo_segment.errors import ConfigError, SchemaError
from geo_segment.turfs import Universe, build_doors, cut_turfs, select_universe
from geo_segment.turfs.cut import door_adjacency, metric_crs, to_metric

LAT0, LNG0 = 41.82, -71.41
KX = 111_320.0 * np.cos(np.radians(LAT0))
KY = 110_540.0


def doors_at(xy_m: list[tuple[float, float]] | np.ndarray, *, region: str | list[str] = "P1",
             building: list[str] | None = None, street: str = "MAIN ST") -> pd.DataFrame:
    """Doors at metre offsets from a fixed point (x east, y north), one household and building each by default."""
    xy = np.asarray(xy_m, dtype=float)
    n = len(xy)
    ids = [f"h{i:04d}" for i in range(n)]
    regions = [region] * n if isinstance(region, str) else region
    return pd.DataFrame({
        "door_id": ids, "household_id": ids, "building_id": building or [f"b{i:04d}" for i in range(n)],
        "region": regions, "precinct_id": regions, "households": [1] * n, "people": [1] * n,
        "street": [street] * n, "house_number": [str(2 * i + 1) for i in range(n)], "unit": [""] * n,
        "lat": LAT0 + xy[:, 1] / KY, "lng": LNG0 + xy[:, 0] / KX,
    })


def grid(nx: int, ny: int, step: float = 20.0, x0: float = 0.0, y0: float = 0.0) -> list[tuple[float, float]]:
    return [(x0 + i * step, y0 + j * step) for j in range(ny) for i in range(nx)]


def line_m(x0: float, y0: float, x1: float, y1: float) -> shapely.LineString:
    return shapely.LineString([(LNG0 + x0 / KX, LAT0 + y0 / KY), (LNG0 + x1 / KX, LAT0 + y1 / KY)])


def turf_of(cut_doors: pd.DataFrame) -> dict[str, str]:
    return dict(zip(cut_doors["door_id"], cut_doors["turf_id"], strict=True))


def assert_contiguous(cut) -> None:  # type: ignore[no-untyped-def]
    """Every turf's atoms are connected by adjacency edges inside the turf."""
    d = cut.doors
    atom_turf = d.groupby("atom")["turf_id"].agg(lambda s: set(s))
    assert (atom_turf.map(len) == 1).all(), "an atom (building) is split between turfs"
    turf = atom_turf.map(lambda s: next(iter(s)))
    e = cut.edges
    same = turf.loc[e[:, 0]].to_numpy() == turf.loc[e[:, 1]].to_numpy() if len(e) else np.zeros(0, dtype=bool)
    n = int(d["atom"].max()) + 1
    g = coo_matrix((np.ones(int(same.sum())), (e[same, 0], e[same, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    per_turf = pd.Series(comp[turf.index.to_numpy()], index=turf.to_numpy()).groupby(level=0).nunique()
    assert (per_turf == 1).all(), f"turfs not contiguous: {per_turf[per_turf > 1].to_dict()}"


# --- hand-drawn fixtures ------------------------------------------------------------------------------------------

def test_two_blocks_across_a_river_become_two_turfs() -> None:
    """Two 4 x 5 blocks of doors 20 m apart, a river at x = 100 m between them::

        o o o o  |  o o o o
        o o o o  |  o o o o      target 20 doors: the river is never crossed,
        o o o o  |  o o o o      so the turfs are exactly the west and the east block
        o o o o  |  o o o o
        o o o o  |  o o o o
    """
    d = doors_at(grid(4, 5) + grid(4, 5, x0=140.0))
    river = [line_m(100, -50, 100, 150)]
    cut = cut_turfs(d, config=TurfsConfig(target_doors=20), barriers=river)
    t = turf_of(cut.doors)
    west = {t[f"h{i:04d}"] for i in range(20)}
    east = {t[f"h{i:04d}"] for i in range(20, 40)}
    assert len(west) == 1 and len(east) == 1 and west != east
    assert cut.turfs["doors"].tolist() == [20, 20]
    assert cut.metrics["components"] == 2
    assert cut.metrics["barrier_edges_removed"] > 0


@pytest.mark.parametrize("kind", ["list", "geoseries", "geodataframe_utm"])
def test_barriers_in_any_container(kind: str) -> None:
    import geopandas as gpd

    d = doors_at(grid(4, 5) + grid(4, 5, x0=140.0))
    river = [line_m(100, -50, 100, 150)]
    barriers: object = river
    if kind == "geoseries":
        barriers = gpd.GeoSeries(river, crs=4326)
    elif kind == "geodataframe_utm":
        barriers = gpd.GeoDataFrame({"name": ["river"]}, geometry=river, crs=4326).to_crs(32619)
    cut = cut_turfs(d, config=TurfsConfig(target_doors=20), barriers=barriers)
    assert cut.metrics["components"] == 2 and cut.turfs["doors"].tolist() == [20, 20]


def test_a_barrier_that_cuts_the_precinct_gives_undersized_turfs_not_a_crossing() -> None:
    """30 doors west of a rail line and 6 east of it, target 18: the 6 stay alone (explained as a small area)."""
    d = doors_at(grid(6, 5) + grid(2, 3, x0=160.0))
    cut = cut_turfs(d, config=TurfsConfig(target_doors=18), barriers=[line_m(140, -50, 140, 150)])
    sizes = sorted(cut.turfs["doors"].tolist())
    assert sizes == [6, 15, 15]
    assert cut.metrics["outside_small_component"] == 1
    assert cut.metrics["outside_indivisible"] == 2  # 30 doors: 1 turf of 30 or 2 of 15, neither within 18 ± 10 %


@pytest.mark.parametrize(("nx", "ny", "target", "expected"), [(20, 20, 50, [50] * 8), (10, 10, 25, [25] * 4),
                                                            (12, 10, 40, [40] * 3), (9, 11, 33, [33] * 3)])
def test_grids_are_cut_into_equal_turfs(nx: int, ny: int, target: int, expected: list[int]) -> None:
    d = doors_at(grid(nx, ny))
    cut = cut_turfs(d, config=TurfsConfig(target_doors=target, tolerance=0.10))
    assert sorted(cut.turfs["doors"].tolist()) == pytest.approx(expected, abs=target * 0.1)
    assert cut.turfs["within_tolerance"].all()
    assert_contiguous(cut)


def test_an_apartment_building_is_never_split() -> None:
    """A 12-household building in the middle of 28 houses, target 20: its households share one turf."""
    xy = grid(7, 4)
    apt = [(60.0, 30.0)] * 12
    d = doors_at(xy + apt, building=[f"b{i:04d}" for i in range(28)] + ["APT"] * 12)
    cut = cut_turfs(d, config=TurfsConfig(target_doors=20))
    apt_turfs = cut.doors.loc[cut.doors["building_id"] == "APT", "turf_id"].unique()
    assert len(apt_turfs) == 1
    assert cut.turfs["doors"].sum() == 40 and len(cut.turfs) == 2 and cut.turfs["within_tolerance"].all()


def test_ids_are_precinct_and_number_north_to_south() -> None:
    d = doors_at(grid(2, 3, y0=1000.0) + grid(2, 3), region="P7")
    cut = cut_turfs(d, config=TurfsConfig(target_doors=6))
    north = cut.doors.loc[cut.doors["door_id"] == "h0000", "turf_id"].item()
    south = cut.doors.loc[cut.doors["door_id"] == "h0006", "turf_id"].item()
    assert (north, south) == ("P7-01", "P7-02")
    assert cut.turfs["list_number"].tolist() == [1, 2]


def test_turf_statistics() -> None:
    """Ten doors 20 m apart on a line: route 180 m; minutes = 10 x 3 + 180 / 60."""
    d = doors_at([(20.0 * i, 0.0) for i in range(10)])
    d["people"] = [2] * 10
    cfg = TurfsConfig(target_doors=10, minutes_per_door=3.0, walking_speed_m_per_min=60.0)
    t = cut_turfs(d, config=cfg).turfs.iloc[0]
    assert (t["doors"], t["people"], t["target_doors"]) == (10, 20, 10)
    assert t["route_m"] == pytest.approx(180.0, abs=0.5)
    assert t["est_minutes"] == pytest.approx(33.0, abs=0.1)
    assert not t["drive_flag"]
    assert t.geometry.geom_type == "Polygon" and t.geometry.is_valid


def test_drive_flag_when_doors_are_far_apart() -> None:
    d = doors_at(grid(3, 2) + grid(3, 2, x0=900.0))
    t = cut_turfs(d, config=TurfsConfig(target_doors=12)).turfs
    assert len(t) == 1 and bool(t["drive_flag"].iloc[0]) and t["max_gap_m"].iloc[0] > 400


def test_rural_regions_get_the_smaller_target() -> None:
    sparse = doors_at([(300.0 * i, 0.0) for i in range(40)], region="R1")
    cut = cut_turfs(sparse, config=TurfsConfig(target_doors=40, rural_target_doors=20, rural_gap_m=120.0))
    assert cut.turfs["target_doors"].tolist() == [20, 20]
    assert cut.metrics["rural_regions"] == 1


def test_other_precincts_are_unchanged_when_one_changes() -> None:
    p1 = doors_at(grid(10, 10), region="P1")
    p2 = doors_at(grid(10, 10, x0=5000.0), region="P2")
    p2["door_id"] = p2["household_id"] = p2["building_id"] = [f"x{i}" for i in range(100)]
    before = cut_turfs(pd.concat([p1, p2], ignore_index=True), config=TurfsConfig(target_doors=25))
    after = cut_turfs(pd.concat([p1, p2.iloc[7:]], ignore_index=True), config=TurfsConfig(target_doors=25))
    keep = ["door_id", "turf_id", "door_order"]
    b = before.doors.loc[before.doors["region"] == "P1", keep].reset_index(drop=True)
    a = after.doors.loc[after.doors["region"] == "P1", keep].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_recut_with_the_previous_cut_equals_a_full_cut() -> None:
    parts = []
    for k in range(4):
        p = doors_at(np.random.default_rng(k).uniform(0, 400, size=(120, 2)) + [3000.0 * k, 0.0], region=f"P{k}")
        p["door_id"] = p["household_id"] = p["building_id"] = [f"P{k}-{i}" for i in range(120)]
        parts.append(p)
    before = pd.concat(parts, ignore_index=True)
    after = before.drop(index=[5, 17, 130]).reset_index(drop=True)  # doors of P0 and P1 contacted
    cfg = TurfsConfig(target_doors=30)
    first = cut_turfs(before, config=cfg)
    full = cut_turfs(after, config=cfg)
    inc = cut_turfs(after, config=cfg, previous=first)
    assert inc.metrics["regions_reused"] == 2 and inc.metrics["regions_recut"] == 2
    cols = ["door_id", "turf_id", "door_order", "street_rank", "region"]
    pd.testing.assert_frame_equal(inc.doors[cols], full.doors[cols])
    pd.testing.assert_frame_equal(inc.turfs.drop(columns="geometry"), full.turfs.drop(columns="geometry"))
    assert inc.turfs.geometry.geom_equals_exact(full.turfs.geometry, tolerance=1e-9).all()
    assert inc.routes.geometry.geom_equals_exact(full.routes.geometry, tolerance=1e-9).all()
    assert inc.metrics["share_within_tolerance"] == full.metrics["share_within_tolerance"]
    assert_contiguous(inc)


def test_same_seed_same_turfs() -> None:
    d = doors_at(np.random.default_rng(4).uniform(0, 600, size=(300, 2)))
    a = cut_turfs(d, config=TurfsConfig(target_doors=30, seed=1))
    b = cut_turfs(d, config=TurfsConfig(target_doors=30, seed=1))
    pd.testing.assert_frame_equal(a.doors, b.doors)
    assert a.turfs.drop(columns="geometry").equals(b.turfs.drop(columns="geometry"))


def test_polygons_do_not_overlap_and_cover_the_doors() -> None:
    d = doors_at(np.random.default_rng(5).uniform(0, 500, size=(200, 2)))
    cut = cut_turfs(d, config=TurfsConfig(target_doors=40))
    g = cut.turfs.to_crs(metric_crs(d["lat"].to_numpy(), d["lng"].to_numpy())).geometry
    assert g.is_valid.all()
    total = shapely.union_all(g.values).area
    assert total == pytest.approx(g.area.sum(), rel=1e-6)
    pts = shapely.points(d["lng"], d["lat"])
    for t in cut.turfs.itertuples():
        mine = cut.doors.loc[cut.doors["turf_id"] == t.turf_id, "door_id"]
        inside = shapely.covers(t.geometry, pts[d["door_id"].isin(mine).to_numpy()])
        assert inside.all()


def test_empty_doors() -> None:
    cut = cut_turfs(doors_at(np.zeros((0, 2))))
    assert len(cut.turfs) == 0 and cut.metrics["turfs"] == 0


# --- properties ---------------------------------------------------------------------------------------------------

@st.composite
def door_sets(draw: st.DrawFn) -> tuple[pd.DataFrame, int, bool]:
    n = draw(st.integers(3, 160))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    xy = np.round(rng.uniform(0, draw(st.sampled_from([200.0, 600.0, 2000.0])), size=(n, 2)), 1)
    n_build = max(1, int(n * draw(st.floats(0.3, 1.0))))
    building = [f"b{int(b)}" for b in rng.integers(0, n_build, n)]
    # doors of one building stand at one point
    first: dict[str, np.ndarray] = {}
    for i, b in enumerate(building):
        xy[i] = first.setdefault(b, xy[i])
    regions = [f"P{int(r)}" for r in rng.integers(0, draw(st.integers(1, 3)), n)]
    d = doors_at(xy, region=regions, building=building)
    # a building sits in one region
    d["region"] = d.groupby("building_id")["region"].transform("first")
    return d, draw(st.integers(3, 40)), draw(st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(door_sets())
def test_invariants(case: tuple[pd.DataFrame, int, bool]) -> None:
    d, target, with_barrier = case
    barrier = [line_m(100, -10, 100, 2100), line_m(-10, 300, 2100, 310)] if with_barrier else None
    cfg = TurfsConfig(target_doors=target, seed=3)
    cut = cut_turfs(d, config=cfg, barriers=barrier)
    out = cut.doors
    # every door in exactly one turf
    assert sorted(out["door_id"]) == sorted(d["door_id"]) and out["turf_id"].notna().all()
    # no building (hence no household) split, turfs inside one region
    assert (out.groupby("building_id")["turf_id"].nunique() == 1).all()
    assert (out.groupby("turf_id")["region"].nunique() == 1).all()
    assert_contiguous(cut)
    # no adjacency edge used inside a turf crosses a barrier
    if barrier is not None and len(cut.edges):
        crs = metric_crs(out["lat"].to_numpy(), out["lng"].to_numpy())
        x, y = to_metric(out["lat"].to_numpy(), out["lng"].to_numpy(), crs)
        ax = pd.Series(x).groupby(out["atom"].to_numpy()).mean().to_numpy()
        ay = pd.Series(y).groupby(out["atom"].to_numpy()).mean().to_numpy()
        bx, by = to_metric(np.array([LAT0 - 10 / KY, LAT0 + 2100 / KY]), np.array([LNG0 + 100 / KX] * 2), crs)
        wall = shapely.LineString(np.column_stack([bx, by]))
        e = cut.edges
        segs = shapely.linestrings(np.stack([np.column_stack([ax[e[:, 0]], ay[e[:, 0]]]),
                                             np.column_stack([ax[e[:, 1]], ay[e[:, 1]]])], axis=1))
        assert not shapely.intersects(segs, wall).any()
    # door order is a permutation inside each turf
    for _, g in out.groupby("turf_id"):
        assert sorted(g["door_order"].tolist()) == list(range(1, len(g) + 1))
    # deterministic
    again = cut_turfs(d, config=cfg, barriers=barrier)
    pd.testing.assert_frame_equal(cut.doors, again.doors)


def test_adjacency_keeps_long_edges_that_connect() -> None:
    """Two clusters 1 km apart: the long edges go except the one the spanning tree needs."""
    x = np.array([0.0, 10.0, 0.0, 1000.0, 1010.0, 1000.0])
    y = np.array([0.0, 0.0, 10.0, 0.0, 0.0, 10.0])
    adj = door_adjacency(x, y, np.zeros(6, dtype=np.int64), max_edge_m=100.0)
    long = adj.length > 100
    assert long.sum() == 1
    assert len(set(adj.component)) == 1


# --- universe and doors -------------------------------------------------------------------------------------------

def voters_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "voter_id": ["v1", "v2", "v3", "v4", "v5", "v6"],
        "household_id": ["h1", "h1", "h2", "h3", "h4", "h4"],
        "building_id": ["b1", "b1", "b1", "b2", "b3", "b3"],
        "party": ["DEM", "REP", "DEM", "UNA", "DEM", "DEM"],
        "birth_year": pd.array([1950, 1990, 2000, 1980, 1970, 1971], dtype="Int64"),
        "engagement_score": [0.9, 0.2, 0.5, np.nan, 0.7, 0.1],
        "precinct_id": ["P1", "P1", "P1", "P2", None, None],
        "lat": [41.82, 41.82, 41.82, 41.83, 41.84, np.nan],
        "lng": [-71.41, -71.41, -71.41, -71.42, -71.43, np.nan],
    })


def test_universe_filters_count_what_they_remove() -> None:
    v = voters_frame()
    kept, counts = select_universe(v, Universe(score_min=0.4, parties=("DEM",), age_min=30, as_of_year=2026))
    assert kept["voter_id"].tolist() == ["v1", "v5"]
    assert (counts["removed_score"], counts["removed_party"], counts["removed_age"]) == (3, 0, 1)
    poly = shapely.box(-71.415, 41.815, -71.405, 41.825)
    assert select_universe(v, Universe(polygon=poly))[0]["voter_id"].tolist() == ["v1", "v2", "v3"]


def test_turnout_filter_needs_history() -> None:
    v = voters_frame()
    h = pd.DataFrame({"voter_id": ["v1", "v1", "v2"], "election_date": pd.to_datetime(["2024-11-05",
                      "2022-11-08", "2024-11-05"]), "election_type": ["general"] * 3, "voted": [True] * 3})
    kept, _ = select_universe(v, Universe(min_generals=2, n_generals=2), history=h)
    assert kept["voter_id"].tolist() == ["v1"]
    with pytest.raises(ConfigError, match="the turnout filter needs the vote history"):
        select_universe(v, Universe(min_generals=1))
    with pytest.raises(SchemaError, match=r"voters lack columns \['micro_geo'\]"):
        select_universe(v, Universe(micro_geos=(1,)))


def test_doors_exclude_do_not_contact_and_contacted_households() -> None:
    v = voters_frame()
    doors, members, counts = build_doors(v, do_not_contact=["v2"], contacted=["h3"])
    assert doors["door_id"].tolist() == ["h2"]
    assert (counts["removed_not_geocoded"], counts["removed_no_region"]) == (1, 1)
    assert (counts["households_removed_do_not_contact"], counts["removed_do_not_contact"]) == (1, 2)
    assert (counts["households_removed_contacted"], counts["removed_contacted"]) == (1, 1)
    assert members["voter_id"].tolist() == ["v3"]


def test_building_doors() -> None:
    doors, _, counts = build_doors(voters_frame(), door_unit="building")
    assert doors["door_id"].tolist() == ["b1", "b2"]
    assert doors["households"].tolist() == [2, 1] and doors["people"].tolist() == [3, 1]
    assert counts["doors"] == 2
    with pytest.raises(ConfigError, match="unknown door unit"):
        build_doors(voters_frame(), door_unit="flat")
