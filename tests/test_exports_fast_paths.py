"""The export stage's fast paths give what the straightforward code gives: voters inside fences on a grid (against
every (fence, voter) pair tested one by one), customer-list CSVs joined by Arrow (against pandas' ``to_csv``),
duplicates on integer codes (against ``DataFrame.duplicated``), state counts per distinct value, the two-thread
halves, the radius pieces' cached circles, and the stage reading only its columns (against the whole voter file).

The fence fixture, in lon/lat (the grid's cells are far smaller than the fences)::

    41.83 +----------+----------+
          |    A     |  B  +--+ |     A and B share the border x = -71.40; C is the small square inside B
          |          |     |C | |     (so its voters are in B too); voters sit on corners, on the shared
          |          |     +--+ |     border and just outside the fixture
    41.81 +----------+----------+
       -71.42     -71.40     -71.38
"""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from geo_segment import schema as S
from geo_segment.config import ExportConfig
from geo_segment.exports import geofences as G
from geo_segment.exports.audiences import _duplicated
from geo_segment.exports.geofences import _distinct_pairs, _minimum_circles, _voters_in_fences, voter_grid
from geo_segment.exports.guardrails import check_states, csv_bytes, write_private_csv
from geo_segment.exports.hashing import hash_codes, hash_series
from geo_segment.exports.platforms import load_rules
from geo_segment.exports.stage import export_columns, export_stage, read_export_voters

DEMO = Path("/work/demo_ref")

A = Polygon([(-71.42, 41.81), (-71.40, 41.81), (-71.40, 41.83), (-71.42, 41.83)])
B = Polygon([(-71.40, 41.81), (-71.38, 41.81), (-71.38, 41.83), (-71.40, 41.83)])
C = Polygon([(-71.39, 41.815), (-71.385, 41.815), (-71.385, 41.82), (-71.39, 41.82)])


def fences(*polys: Polygon) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"fid": [f"f{i}" for i in range(len(polys))]}, geometry=list(polys), crs=4326)


def voters(lng: list[float], lat: list[float]) -> pd.DataFrame:
    return pd.DataFrame({S.LNG: np.asarray(lng, dtype="float64"), S.LAT: np.asarray(lat, dtype="float64")})


def every_pair(polys: gpd.GeoDataFrame, v: pd.DataFrame) -> set[tuple[int, int]]:
    """The reference: every (fence, voter) pair tested on its own, no index of any kind."""
    out = set()
    for i, g in enumerate(polys.geometry):
        for j, (x, y) in enumerate(zip(v[S.LNG], v[S.LAT], strict=True)):
            if np.isfinite(x) and np.isfinite(y) and g.intersects(shapely.Point(x, y)):
                out.add((i, j))
    return out


def pairs(result: tuple[np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    fi, vi = result
    assert len(set(zip(fi.tolist(), vi.tolist(), strict=True))) == len(fi)  # no pair twice
    return set(zip(fi.tolist(), vi.tolist(), strict=True))


# --- voters inside fences ------------------------------------------------------------------------------------


def test_voters_inside_fences_on_corners_borders_and_holes_of_the_grid() -> None:
    v = voters(
        [-71.42, -71.40, -71.38, -71.41, -71.3875, -71.39, -71.43, np.nan, -71.40, -71.385, -71.381],
        [41.81, 41.82, 41.83, 41.82, 41.8175, 41.815, 41.82, 41.82, np.nan, 41.82, 41.829],
    )
    polys = fences(A, B, C)
    got = pairs(_voters_in_fences(polys, v))
    # corner of A; shared border (A and B); corner of B; inside A; inside C (and B); C's corner (and B);
    # outside; missing lng; missing lat; C's edge (and B); inside B near its corner
    assert got == {(0, 0), (0, 1), (1, 1), (1, 2), (0, 3), (1, 4), (2, 4), (1, 5), (2, 5), (1, 9), (2, 9), (1, 10)}
    assert got == every_pair(polys, v)


@pytest.mark.parametrize("size", [1, 2, 7, 1024])
def test_any_grid_size_finds_the_same_voters(size: int) -> None:
    rng = np.random.default_rng(size)
    v = voters(rng.uniform(-71.43, -71.37, 400).tolist(), rng.uniform(41.80, 41.84, 400).tolist())
    polys = fences(A, B, C, shapely.buffer(shapely.Point(-71.40, 41.82), 0.004))
    assert pairs(_voters_in_fences(polys, v, voter_grid(v, size=size))) == every_pair(polys, v)


def test_an_empty_fence_holds_nobody() -> None:
    v = voters([-71.41, -71.39], [41.82, 41.82])
    grid = voter_grid(v)
    boxes = np.array([[np.nan] * 4, [-71.42, 41.81, -71.40, 41.83], [np.nan] * 4])
    fi, vi = grid.in_boxes(boxes)
    assert fi.tolist() == [1] and vi.tolist() == [0]


def test_no_geocoded_voter_and_a_single_location() -> None:
    assert pairs(_voters_in_fences(fences(A), voters([np.nan], [np.nan]))) == set()
    same = voters([-71.41, -71.41], [41.82, 41.82])  # every voter at one point: a grid of one cell
    assert pairs(_voters_in_fences(fences(A, B), same)) == {(0, 0), (0, 1)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    xy=st.lists(st.tuples(st.sampled_from([-71.42, -71.41, -71.40, -71.39, -71.385, -71.38, -71.37]) | st.floats(
        -71.43, -71.37), st.sampled_from([41.81, 41.815, 41.82, 41.83, 41.84]) | st.floats(41.80, 41.84)),
                min_size=1, max_size=60),
    size=st.integers(1, 64),
    radius=st.floats(0.0005, 0.02),
)
def test_property_grid_finds_exactly_the_voters_every_pair_test_finds(
        xy: list[tuple[float, float]], size: int, radius: float) -> None:
    v = voters([p[0] for p in xy], [p[1] for p in xy])
    polys = fences(A, B, C, shapely.buffer(shapely.Point(-71.40, 41.82), radius))
    assert pairs(_voters_in_fences(polys, v, voter_grid(v, size=size))) == every_pair(polys, v)


def test_point_tests_in_two_threads_give_the_single_thread_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    v = voters(rng.uniform(-71.43, -71.37, 3000).tolist(), rng.uniform(41.80, 41.84, 3000).tolist())
    polys = fences(A, B, C)
    monkeypatch.setattr(G, "_THREADED_MIN", 10**9)
    one = _voters_in_fences(polys, v)
    monkeypatch.setattr(G, "_THREADED_MIN", 1)
    calls: list[int] = []
    real = shapely.intersects_xy

    def spy(geoms: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        calls.append(len(geoms))
        return np.asarray(real(geoms, x, y))

    monkeypatch.setattr(G.shapely, "intersects_xy", spy)
    two = _voters_in_fences(polys, v)
    assert len(calls) == 2  # really cut in two
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


@pytest.mark.parametrize("n,cut", [(10, 5), (10, 0), (10, 10), (5000, None), (5000, 1)])
def test_in_halves_is_the_whole_call(monkeypatch: pytest.MonkeyPatch, n: int, cut: int | None) -> None:
    monkeypatch.setattr(G, "_THREADED_MIN", 4)
    values = np.arange(n) * 3
    assert np.array_equal(G._in_halves(lambda a, b: values[a:b] + 1, n, cut), values + 1)


def test_set_precision_in_halves_keeps_every_fence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(G, "_THREADED_MIN", 2)
    profile = load_rules().profile("generic")
    polys = fences(*(shapely.affinity.translate(C, 0.001 * k, 0.0007 * k) for k in range(9)))
    threaded, _ = G.prepare_fences(polys, id_col="fid", profile=profile)
    monkeypatch.setattr(G, "_THREADED_MIN", 10**9)
    single, _ = G.prepare_fences(polys, id_col="fid", profile=profile)
    assert list(threaded["fence_id"]) == list(single["fence_id"])
    assert all(shapely.equals_exact(threaded.geometry.values, single.geometry.values, tolerance=0))


# --- ZIP / precinct pairs, states, radius pieces --------------------------------------------------------------


def test_distinct_pairs_keep_one_pair_per_fence_and_value() -> None:
    fi = np.array([0, 0, 0, 1, 1, 2, 2])
    vi = np.array([0, 1, 2, 1, 3, 4, 0])
    values = pd.Series(["02903", "02903", None, "02906", "02906"], dtype="string")
    f, v = _distinct_pairs((fi, vi), values)
    got = {(int(a), None if pd.isna(values.iloc[b]) else values.iloc[b]) for a, b in zip(f, v, strict=True)}
    naive = {(int(a), None if pd.isna(values.iloc[b]) else values.iloc[b]) for a, b in zip(fi, vi, strict=True)}
    assert got == naive and len(f) == len(naive)  # (0,02903) (0,None) (1,02903) (1,02906) (2,02906) (2,02903)
    assert _distinct_pairs((fi[:0], vi[:0]), values)[0].size == 0


@pytest.mark.parametrize("states,expected", [
    (["ri", "RI", None, "nc", "RI"], {"RI": 3, "NC": 1}),
    ([" ri", "RI"], {" RI": 1, "RI": 1}),
    ([], {}),
])
def test_state_counts_merge_spellings_by_upper_case(states: list[str | None], expected: dict[str, int]) -> None:
    got = check_states(pd.Series(states, dtype="str"), "political", load_rules())
    assert got == expected
    assert list(got.values()) == sorted(got.values(), reverse=True)  # most records first


def test_state_refusal_counts_each_spelling() -> None:
    with pytest.raises(Exception, match=r"from \['CA'\] \(CA: 3 records"):
        check_states(pd.Series(["ca", "CA", "Ca", None]), "issue", load_rules())


def test_minimum_circles_radii_are_the_pieces_circles() -> None:
    long_strip = shapely.box(0, 0, 20_000, 1_000)  # metres: one circle would cover far more than twice its area
    pieces, radii = _minimum_circles(long_strip, min_radius_m=1000, max_overshoot=2.0, max_circles=8)
    assert len(pieces) > 1
    assert np.array_equal(radii, shapely.minimum_bounding_radius(np.array(pieces, dtype=object)))
    assert abs(sum(p.area for p in pieces) - long_strip.area) < 1e-6


# --- customer-list CSVs and duplicates -------------------------------------------------------------------------


def pandas_csv(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_csv(buf, index=False, encoding="utf-8", lineterminator="\n")
    return buf.getvalue()


TRICKY = [
    ["a" * 64, None, "", " lead", "trail ", "é", "ß", "日本", "x-y", "+14015550179"],
    ["a,b", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"],
    ['say "hi"', "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"],
    ["line\nbreak", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"],
    ["car\rriage", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"],
    ["tab\there", "ok", None, None, None, None, None, None, None, None],
    [None] * 10,
]


@pytest.mark.parametrize("first", TRICKY)
def test_csv_bytes_are_pandas_bytes_or_none_when_quoting_is_needed(first: list[str | None]) -> None:
    frame = pd.DataFrame({"email": first, "Zip": list(reversed(first))}, dtype="string")
    got = csv_bytes(frame)
    needs_quotes = any(v is not None and any(c in v for c in ',"\r\n') for v in first)
    assert (got is None) == needs_quotes
    assert got is None or got == pandas_csv(frame)


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"only": ["a", None]}, dtype="string"),  # one column: pandas quotes an empty row
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).astype({"b": "string"}),  # not all strings
    pd.DataFrame({"a,b": ["x"], "c": ["y"]}, dtype="string"),  # header needs quotes
])
def test_csv_bytes_leaves_other_frames_to_pandas(frame: pd.DataFrame) -> None:
    assert csv_bytes(frame) is None


def test_csv_bytes_of_an_empty_frame_and_a_slice() -> None:
    frame = pd.DataFrame({"a": ["1", "2", "3"], "b": ["x", None, "z"]}, dtype="string")
    assert csv_bytes(frame.iloc[:0]) == b"a,b\n" == pandas_csv(frame.iloc[:0])
    assert csv_bytes(frame.iloc[1:]) == b"a,b\n2,\n3,z\n" == pandas_csv(frame.iloc[1:])


text = st.text(alphabet=st.sampled_from(list("abcAZ09 ,\"\r\n-+@.éß日")), max_size=6)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(st.none() | text, st.none() | text, st.none() | text), max_size=12))
def test_property_private_csv_is_byte_for_byte_pandas(rows: list[tuple[str | None, ...]], tmp_path_factory:
                                                      pytest.TempPathFactory) -> None:
    frame = pd.DataFrame(rows, columns=["email", "phone", "Country"], dtype="string")
    path = tmp_path_factory.mktemp("csv") / "list.csv"
    write_private_csv(frame, path)
    assert path.read_bytes() == pandas_csv(frame)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fast = csv_bytes(frame)
    assert fast is None or fast == pandas_csv(frame)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(st.none() | st.sampled_from(["a", "b", ""]), st.none() | st.sampled_from(["x", "y"])),
                     max_size=25), data=st.data())
def test_property_duplicates_on_codes_are_pandas_duplicates(rows: list[tuple[str | None, str | None]],
                                                            data: st.DataObject) -> None:
    frame = pd.DataFrame(rows, columns=["fn", "ln"], dtype="string")
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows))), dtype=bool)
    sel = np.flatnonzero(keep)
    codes = [pd.factorize(frame[c], use_na_sentinel=True)[0] for c in frame.columns]  # missing: -1
    assert np.array_equal(_duplicated(codes, sel), frame.iloc[sel].duplicated(keep="first").to_numpy())


@pytest.mark.parametrize("platform", ["meta", "google"])
def test_hash_codes_are_hash_series_as_codes(platform: str) -> None:
    raw = pd.Series(["RI", " ri", None, "Rhode Island", "XX", "", "RI"], index=[9, 8, 7, 6, 5, 4, 3])
    kind = "state" if platform == "meta" else "first_name"
    codes, outputs, bad = hash_codes(raw, kind=kind, platform=platform)
    values, why = hash_series(raw, kind=kind, platform=platform)
    assert [None if c < 0 else outputs[c] for c in codes] == [None if pd.isna(v) else v for v in values]
    assert bad == int(why.notna().sum())
    assert len(set(outputs)) == len(outputs)  # one code per distinct output


# --- the stage reads its own columns -------------------------------------------------------------------------


def audit_without_time(path: Path) -> list[dict[str, object]]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in path.read_text().splitlines()]


@pytest.mark.skipif(not (DEMO / "voters.parquet").exists(), reason="the demo reference run is not on this machine")
def test_stage_on_its_own_columns_writes_what_it_writes_from_the_whole_voter_file(tmp_path: Path) -> None:
    full = gpd.read_parquet(DEMO / "voters.parquet")
    slim = read_export_voters(DEMO / "voters.parquet")
    assert list(slim.columns) == [c for c in export_columns() if c in full.columns]
    assert "party" in full.columns and "party" not in slim.columns and "geometry" not in slim.columns
    micro, pre = gpd.read_parquet(DEMO / "micro_geos.parquet"), gpd.read_parquet(DEMO / "precincts.parquet")
    cfg = ExportConfig(min_residents=1, min_audience=1)
    _, rec_a = export_stage(full, micro, pre, tmp_path / "a", cfg, purpose="political", on_small="skip")
    _, rec_b = export_stage(slim, micro, pre, tmp_path / "b", cfg, purpose="political", on_small="skip")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) >= 15
    for name in names:
        a, b = tmp_path / "a" / name, tmp_path / "b" / name
        if name == "audit.jsonl":
            assert audit_without_time(a) == audit_without_time(b)
        else:
            assert a.read_bytes() == b.read_bytes(), name
    assert rec_a.metrics == rec_b.metrics
