"""Worker processes of the turf stage: the same turfs, walk lists and packets with one process or several; worker
failures surface as GeoSegment errors; the Borůvka spanning forest is scipy's minimum spanning tree."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree

import geo_segment.turfs.parallel as par
import geo_segment.turfs.stage as stage_mod
from geo_segment.config import TurfsConfig, load_config
from geo_segment.errors import ConfigError, GeoSegmentError, InputFileError
from geo_segment.turfs import build_doors, cut_turfs, turf_stage
from geo_segment.turfs.cut import min_spanning_forest
from geo_segment.turfs.parallel import TurfWorkerError, balanced_groups, resolve_workers, run_tasks

LAT0, LNG0 = 41.82, -71.41
KX = 111_320.0 * np.cos(np.radians(LAT0))
KY = 110_540.0

needs_fork = pytest.mark.skipif(not par.fork_available(), reason="worker processes need the fork start method")


def town(n_regions: int = 5, side: int = 9, seed: int = 0) -> pd.DataFrame:
    """Voters in ``n_regions`` precincts side by side (west to east), each a ``side`` x ``side`` grid of houses
    about 20 m apart (jittered) on east-west streets, 1-3 voters per household, a 6-unit building per precinct::

        P0        P1        P2  ...
        o o o o   o o o o   o o o o
        o o B o   o o B o   o o B o      B: the apartment building
        o o o o   o o o o   o o o o
    """
    rng = np.random.default_rng(seed)
    recs = []
    for r in range(n_regions):
        for i in range(side):
            for j in range(side):
                units = [f"{u}" for u in range(1, 7)] if (i, j) == (side // 2, side // 2) else [""]
                x = r * (side * 20.0 + 60.0) + i * 20.0 + rng.normal(0, 2)
                y = j * 20.0 + rng.normal(0, 2)
                bld = f"P{r}-b{i}-{j}"
                for unit in units:
                    hh = f"{bld}-{unit or 'h'}"
                    for k in range(int(rng.integers(1, 4))):
                        recs.append({"voter_id": f"{hh}-{k}", "household_id": hh, "building_id": bld,
                                     "street": f"ROW {j} ST", "house_number": str(2 * i + 1 + j % 2),
                                     "unit": unit, "address": f"{2 * i + 1} ROW {j} ST",
                                     "first_name": ["ANA", "LUIS", "=CMD"][k], "last_name": f"DOE{i}{j}",
                                     "party": ["DEM", "REP", "UNA"][(i + j + k) % 3], "birth_year": 1950 + i + j,
                                     "engagement_score": round(float(rng.random()), 3),
                                     "lat": LAT0 + y / KY, "lng": LNG0 + x / KX, "precinct_id": f"P{r}"})
    return pd.DataFrame(recs)


@pytest.fixture
def pool_for_small_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes even for the tiny fixtures (normally only from MIN_PARALLEL_DOORS doors)."""
    monkeypatch.setattr(par, "MIN_PARALLEL_DOORS", 0)


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    a, b = pd.DataFrame(a).copy(), pd.DataFrame(b).copy()
    for f in (a, b):
        if "geometry" in f.columns:
            f["geometry"] = shapely.to_wkb(np.asarray(f["geometry"].values))
    return a.equals(b)


# --- the same results ---------------------------------------------------------------------------------------------

@needs_fork
@pytest.mark.usefixtures("pool_for_small_inputs")
@pytest.mark.parametrize("workers", [2, 3])
def test_cut_with_workers_is_the_serial_cut(workers: int) -> None:
    doors, _, _ = build_doors(town())
    one = cut_turfs(doors, config=TurfsConfig(target_doors=12, workers=1))
    many = cut_turfs(doors, config=TurfsConfig(target_doors=12, workers=workers))
    assert one.metrics["workers"] == 1 and one.metrics["region_groups"] == 1
    assert many.metrics["workers"] == workers
    assert many.metrics["region_groups"] == min(2 * workers, 5)  # two groups per worker, at most a region each
    assert len(one.turfs) > 10
    assert _frames_equal(one.doors, many.doors)
    assert _frames_equal(one.turfs, many.turfs)
    assert _frames_equal(one.routes, many.routes)
    key = sorted(map(tuple, np.sort(one.edges, axis=1).tolist()))
    assert key == sorted(map(tuple, np.sort(many.edges, axis=1).tolist()))
    for name in ("turfs", "components", "adjacency_edges", "long_edges_removed", "within_tolerance",
                 "route_m_total"):
        assert one.metrics[name] == many.metrics[name]


@needs_fork
@pytest.mark.usefixtures("pool_for_small_inputs")
def test_stage_files_with_workers_are_the_serial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import geo_segment.turfs.run as run_mod

    monkeypatch.setattr(run_mod, "_PACKET_CHUNK", 3)  # several chunks of turfs for the workers to share
    voters = town(n_regions=4, side=7)
    res = {}
    for w in (1, 2):
        res[w] = turf_stage(voters, None, tmp_path / f"w{w}", TurfsConfig(target_doors=10, workers=w),
                            as_of_year=2026)
    assert res[1].stages[-1].metrics["workers"] == 1 and res[2].stages[-1].metrics["workers"] == 2
    files = sorted(str(p.relative_to(tmp_path / "w1")) for p in (tmp_path / "w1").rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(tmp_path / "w2")) for p in (tmp_path / "w2").rglob("*") if p.is_file())
    n_turfs = len(res[1].cut.turfs)
    assert n_turfs > 6 and sum(f.startswith("walklists/") for f in files) == n_turfs
    assert sum(f.startswith("packets/") for f in files) == n_turfs
    for f in files:
        assert (tmp_path / "w1" / f).read_bytes() == (tmp_path / "w2" / f).read_bytes(), f
    assert res[1].stages[-1].metrics["walklists"] == res[2].stages[-1].metrics["walklists"] == n_turfs


# --- failures -----------------------------------------------------------------------------------------------------

def _boom(shared: object, i: int) -> int:
    if i == 1:
        raise KeyError("no such column")
    return i


def _exits(shared: object, i: int) -> int:
    if i == 1:
        os._exit(3)  # a worker killed mid-task (out of memory, signal)
    return i


def _data_error(shared: object, i: int) -> int:
    raise InputFileError("a bad row", fix="correct it")


@needs_fork
def test_a_worker_error_is_a_turf_worker_error() -> None:
    with pytest.raises(TurfWorkerError, match=r"a worker process of the test failed; found KeyError: 'no such "
                                              r"column'\. Fix: set \[turfs\] workers = 1"):
        run_tasks(_boom, None, 3, workers=2, what="test")


@needs_fork
def test_a_dead_worker_is_a_turf_worker_error_not_a_hang() -> None:
    with pytest.raises(TurfWorkerError, match=r"a worker process of the test died") as info:
        run_tasks(_exits, None, 4, workers=2, what="test")
    assert isinstance(info.value, GeoSegmentError) and isinstance(info.value, RuntimeError)


@needs_fork
def test_a_geo_segment_error_in_a_worker_keeps_its_class() -> None:
    with pytest.raises(InputFileError, match="a bad row"):
        run_tasks(_data_error, None, 2, workers=2)


@needs_fork
@pytest.mark.usefixtures("pool_for_small_inputs")
def test_a_failing_cut_in_a_worker_stops_the_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise FloatingPointError("overflow")

    monkeypatch.setattr(stage_mod, "cut_atoms", broken)  # inherited by the forked workers
    doors, _, _ = build_doors(town(n_regions=3, side=4))
    with pytest.raises(TurfWorkerError, match=r"a worker process of the turf cut failed; found FloatingPointError"):
        cut_turfs(doors, config=TurfsConfig(target_doors=10, workers=2))


def test_serial_tasks_raise_the_error_itself() -> None:
    with pytest.raises(KeyError):
        run_tasks(_boom, None, 3, workers=1)
    assert run_tasks(_boom, None, 1, workers=2) == [0]


# --- settings -----------------------------------------------------------------------------------------------------

def test_resolve_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    big = par.MIN_PARALLEL_DOORS
    assert resolve_workers(1, big) == 1
    assert resolve_workers(3, big - 1) == 1  # small inputs: no processes
    assert resolve_workers("auto", big) == min(par.AUTO_MAX_WORKERS, os.cpu_count() or 1) or not par.fork_available()
    monkeypatch.setattr(par, "fork_available", lambda: False)
    assert resolve_workers(4, big) == 1
    for bad in (0, -1, True, "two", 1.5):
        with pytest.raises(ConfigError, match=r'\[turfs\] workers must be "auto" or a positive integer'):
            resolve_workers(bad, big)  # type: ignore[arg-type]


def test_workers_setting(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    assert load_config(None).turfs.workers == "auto"
    p.write_text("[turfs]\nworkers = 2\n", encoding="utf-8")
    assert load_config(p).turfs.workers == 2
    for bad in ("0", '"many"', "true"):
        p.write_text(f"[turfs]\nworkers = {bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"\[turfs\] settings out of range.*found workers="):
            load_config(p)
    p.write_text("[turfs]\nworkers = 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[turfs\] workers has the wrong type"):
        load_config(p)


def test_balanced_groups() -> None:
    assert [g.tolist() for g in balanced_groups([5, 1, 4, 2], 2)] == [[0, 1], [2, 3]]
    assert [g.tolist() for g in balanced_groups([3, 3, 3], 5)] == [[0], [1], [2]]
    groups = balanced_groups(np.arange(1, 50), 4)
    loads = [int(np.arange(1, 50)[g].sum()) for g in groups]
    assert sorted(np.concatenate(groups).tolist()) == list(range(49)) and max(loads) - min(loads) <= 49


# --- the spanning forest ------------------------------------------------------------------------------------------

def _scipy_forest(n: int, ei: np.ndarray, ej: np.ndarray, w: np.ndarray) -> list[tuple[int, int]]:
    m = minimum_spanning_tree(coo_matrix((w, (ei, ej)), shape=(n, n)).tocsr()).tocoo()
    return sorted(zip(np.minimum(m.row, m.col).tolist(), np.maximum(m.row, m.col).tolist(), strict=True))


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 40), st.integers(0, 10_000), st.sampled_from([1, 3, 1000]), st.floats(0.0, 1.0))
def test_spanning_forest_is_scipys(n: int, seed: int, levels: int, density: float) -> None:
    """Any graph (several components, isolated nodes), weights with many ties (``levels`` distinct values)."""
    rng = np.random.default_rng(seed)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)], dtype=np.int64)
    pairs = pairs[rng.random(len(pairs)) < density * 0.5]
    rng.shuffle(pairs)
    w = rng.integers(1, levels + 1, len(pairs)).astype(float)
    got = min_spanning_forest(n, pairs[:, 0], pairs[:, 1], w)
    assert len(np.unique(got)) == len(got)
    ours = sorted(zip(pairs[got, 0].tolist(), pairs[got, 1].tolist(), strict=True))
    assert ours == _scipy_forest(n, pairs[:, 0], pairs[:, 1], w)


def test_spanning_forest_ties_go_to_the_lowest_pair() -> None:
    """A square 0-1-2-3 with equal sides and one equal diagonal: the forest keeps the lowest (i, j) pairs::

        3 --- 2
        |   / |
        0 --- 1
    """
    ei, ej = np.array([2, 0, 1, 0, 0]), np.array([3, 1, 2, 3, 2])
    got = min_spanning_forest(4, ei, ej, np.ones(5))
    assert sorted(zip(ei[got].tolist(), ej[got].tolist(), strict=True)) == [(0, 1), (0, 2), (0, 3)]
    assert min_spanning_forest(3, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)).size == 0


# --- walk-list rows -----------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["h1", "h2", "h10"]),
                          st.sampled_from(["DOE", "", None, "doe", "ÉLAN", "Zed"]),
                          st.sampled_from(["A", "", None, "b"])), min_size=1, max_size=30))
def test_walklist_rows_order_is_sort_values(people: list[tuple[int, str, str | None, str | None]]) -> None:
    """Rows by turf, door, household, last name, first name, voter id; missing names last; members without a door
    left out (the merge-and-sort_values implementation as the reference)."""
    from geo_segment.turfs.walklists import walklist_rows

    members = pd.DataFrame({
        "voter_id": [f"v{i:02d}" for i in range(len(people))][::-1], "door_id": [f"d{p[0]}" for p in people],
        "household_id": [p[1] for p in people], "building_id": "b",
        "last_name": pd.Series([p[2] for p in people], dtype="string"),
        "first_name": pd.Series([p[3] for p in people], dtype="str"), "lat": 41.8, "lng": -71.4})
    doors = pd.DataFrame({"door_id": pd.Series([f"d{i}" for i in range(5)], dtype="string"),  # d5: no door
                          "turf_id": pd.Series(["T2", "T1", "T2", "T10", "T1"], dtype="string"),
                          "door_order": pd.array([2, 1, 1, 1, 2], dtype="Int64")})
    turfs = pd.DataFrame({"turf_id": pd.Series(["T1", "T10", "T2"], dtype="string"), "list_number": [1, 2, 3]})
    rows = walklist_rows(doors, members, turfs, as_of_year=2026)
    ref = members.merge(doors, on="door_id", how="inner").merge(turfs, on="turf_id", how="left").sort_values(
        ["turf_id", "door_order", "household_id", "last_name", "first_name", "voter_id"], kind="stable")
    assert rows["voter_id"].tolist() == ref["voter_id"].tolist()
    assert rows["list_number"].tolist() == ref["list_number"].tolist()


def _ident(shared: object, i: int) -> int:
    return i


def _nested(shared: object, i: int) -> list[int]:
    return [*run_tasks(_ident, None, 3, workers=2), i]


@needs_fork
def test_tasks_inside_a_daemonic_process_run_in_it() -> None:
    """A multiprocessing.Pool worker is daemonic and may not start processes: the tasks it runs stay in it (the
    stage's own workers may start theirs)."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_nested, (None, 5)) == [0, 1, 2, 5]
    assert run_tasks(_nested, None, 2, workers=2) == [[0, 1, 2, 0], [0, 1, 2, 1]]
