"""The batched turf outputs (walk lists, maps, packets, scripts, many files written with one flush) and the faster
cutting helpers give exactly what the one-turf-at-a-time code gave (kept in ``tests/_turfs_reference.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_segment.config import TurfsConfig
from geo_segment.errors import OutputPathError
from geo_segment.io.atomic import write_files
from geo_segment.turfs import build_doors, cut_turfs
from geo_segment.turfs.cut import _best_per_group
from geo_segment.turfs.packets import packet_sections, turf_map_svg, turf_map_svgs, write_packet_html, write_packets
from geo_segment.turfs.scripts import fill, fill_all
from geo_segment.turfs.walk import route_order, route_orders
from geo_segment.turfs.walklists import _float_text, walklist_rows, walklist_texts, write_walklists
from tests._turfs_reference import ref_packet_sections, ref_turf_map_svg, ref_write_walklists
from tests.test_turfs_outputs import street_voters

TRICKY = ["Ana", "=1+1", "-2", "@SUM(A1)", "li\nne", "two\n\nbreaks", 'q"uote', "a,b", "\rcr", "\ttab", "", None,
          "Zoë", "<b>&amp;</b>"]


def tricky_rows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Walk-list-like rows in no particular order: text with formulas, line breaks, quotes, missing values."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "list_number": pd.array(rng.integers(1, 9, n), dtype="Int64"),
        "turf_id": pd.Series(rng.choice(["P1-01", "P1-02", "P10-01", "P2-01", "Q 7"], n), dtype="string"),
        "door_order": pd.array(np.where(rng.random(n) < 0.05, -1, rng.integers(1, 60, n)), dtype="Int64"),
        "last_name": pd.Series(rng.choice(np.array(TRICKY, dtype=object), n), dtype="string"),
        "first_name": pd.Series(rng.choice(np.array(TRICKY, dtype=object), n), dtype="str"),
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.random(n).round(3)),
        "lat": rng.normal(41.8, 0.01, n).round(6),
        "age": pd.array([None if m else int(a) for m, a in zip(rng.random(n) < 0.2, rng.integers(-3, 120, n),
                                                                strict=True)], dtype="Int64"),
        "odd": rng.choice(np.array([1e-05, 1e17, -0.0, 123456789012.0, 0.1, np.nan, 2.5e-310, 1 / 3, -7.0]), n),
    })


def cut_streets(target: int = 10) -> tuple[object, pd.DataFrame, pd.DataFrame]:
    doors, members, _ = build_doors(street_voters())
    cut = cut_turfs(doors, config=TurfsConfig(target_doors=target))
    return cut, members, walklist_rows(cut.doors, members, cut.turfs, as_of_year=2026)


# --- walk lists ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 100_000])
def test_walklist_texts_are_the_per_turf_csvs(tmp_path: Path, chunk_rows: int) -> None:
    rows = tricky_rows()
    ref = ref_write_walklists(rows, tmp_path)
    texts = walklist_texts(rows, chunk_rows=chunk_rows)
    assert list(texts) == list(ref) == sorted(ref)
    for tid, path in ref.items():
        assert texts[tid].encode("utf-8") == path.read_bytes(), tid


def test_walklist_texts_with_other_column_kinds(tmp_path: Path) -> None:
    """Columns the Arrow path does not write (booleans, dates) go through to_csv: still the same text."""
    rows = tricky_rows(60).assign(flag=lambda f: f["score"] > 0.5, day=pd.Timestamp("2026-10-03"))
    ref = ref_write_walklists(rows, tmp_path)
    texts = walklist_texts(rows, chunk_rows=17)
    assert {t: p.read_bytes().decode("utf-8") for t, p in ref.items()} == texts


def test_write_walklists_bytes_and_other_files_kept(tmp_path: Path) -> None:
    _cut, _members, rows = cut_streets()
    ref = ref_write_walklists(rows, tmp_path / "ref")
    out = tmp_path / "new"
    out.mkdir()
    (out / "KEEP.csv").write_text("someone else's list\n", encoding="utf-8")
    paths = write_walklists(rows, out)
    assert list(paths) == list(ref)
    for tid in ref:
        assert paths[tid].read_bytes() == ref[tid].read_bytes()
    assert (out / "KEEP.csv").read_text(encoding="utf-8") == "someone else's list\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(["KEEP.csv", *(p.name for p in paths.values())])


@pytest.mark.parametrize("drop_turf", [False, True])
def test_walklist_rows_are_in_the_sorted_order(drop_turf: bool) -> None:
    cut, members, _ = cut_streets(target=6)
    turfs = cut.turfs.iloc[1:] if drop_turf else cut.turfs.iloc[::-1]  # type: ignore[attr-defined]
    rows = walklist_rows(cut.doors, members, turfs, as_of_year=2026)  # type: ignore[attr-defined]
    keys = ["turf_id", "door_order", "household_id", "last_name", "first_name", "voter_id"]
    ref = rows.sample(frac=1.0, random_state=3).sort_values(keys, kind="stable")
    assert rows[keys].reset_index(drop=True).equals(ref[keys].reset_index(drop=True))
    assert rows["list_number"].isna().any() == drop_turf and len(rows) == len(members)
    assert (rows[["result_code", "survey_answers", "notes"]] == "").all().all()


def test_walklist_texts_of_integer_kinds_are_to_csv() -> None:
    rows = pd.DataFrame({"turf_id": ["A", "A", "B"], "i64": np.array([1, -2, 3], dtype=np.int64),
                         "u8": np.array([1, 2, 255], dtype=np.uint8), "n": pd.array([None, 5, 7], dtype="Int64"),
                         "u64": np.array([2**64 - 1, 0, 1], dtype=np.uint64),
                         "obj": pd.Series([1, "=x", None], dtype=object), "f": [1.0, np.nan, 1e-7]})
    texts = walklist_texts(rows)
    assert texts["A"] == "turf_id,i64,u8,n,u64,obj,f\nA,1,1,,18446744073709551615,1,1.0\nA,-2,2,5,0,'=x,\n"
    assert texts["B"] == "turf_id,i64,u8,n,u64,obj,f\nB,3,255,7,1,,1e-07\n"


def test_walklists_of_no_rows(tmp_path: Path) -> None:
    rows = tricky_rows().iloc[:0]
    assert walklist_texts(rows) == {} and write_walklists(rows, tmp_path / "w") == {}


# --- many files, one flush ----------------------------------------------------------------------------------------

def test_write_files_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old", encoding="utf-8")
    files: dict[str, str | bytes] = {"a.txt": "new", "b.bin": b"\x00\x01", "sub/c.txt": "deep"}
    paths = write_files(tmp_path, files)
    assert paths["a.txt"].read_text(encoding="utf-8") == "new"
    assert paths["b.bin"].read_bytes() == b"\x00\x01"
    assert (tmp_path / "sub" / "c.txt").read_text(encoding="utf-8") == "deep"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_write_files_refuses_a_name_outside_the_folder_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="an output name would leave the output folder"):
        write_files(tmp_path / "out", {"ok.txt": "x", "../evil.txt": "y"})
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()


def test_write_files_cleans_up_after_a_failed_write(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where a file should go: its rename fails
    with pytest.raises(OSError):
        write_files(tmp_path, {"a.txt": "x", "taken": "y"})
    assert sorted(p.name for p in tmp_path.iterdir()) in (["a.txt", "taken"], ["taken"])
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


# --- maps and packets ---------------------------------------------------------------------------------------------

def test_turf_maps_at_once_are_the_maps_one_by_one() -> None:
    cut, _members, _rows = cut_streets(target=6)
    turfs, doors = cut.turfs, cut.doors  # type: ignore[attr-defined]
    routes = dict(zip(cut.routes["turf_id"], cut.routes.geometry, strict=True))  # type: ignore[attr-defined]
    polys = list(turfs.geometry)
    rts = [routes[t] for t in turfs["turf_id"]]
    # odd cases: no route, an empty polygon, a polygon in two parts, no polygon at all
    rts[0] = None
    polys[1] = shapely.Polygon()
    x0, y0, _, _ = shapely.bounds(polys[2])
    polys[2] = shapely.union(polys[2], shapely.box(x0 - 0.002, y0 - 0.002, x0 - 0.001, y0 - 0.001))
    if len(polys) > 3:
        polys[3] = None
    pos = {t: i for i, t in enumerate(turfs["turf_id"])}
    d = doors.assign(_t=doors["turf_id"].map(pos)).sort_values(["_t", "door_order"])
    maps = turf_map_svgs(polys, rts, d["_t"].to_numpy(), d["lng"].to_numpy(), d["lat"].to_numpy(),
                         d["door_order"].tolist())
    for i, tid in enumerate(turfs["turf_id"]):
        td = d[d["turf_id"] == tid]
        want = ref_turf_map_svg(polys[i], rts[i], td["lng"].to_numpy(), td["lat"].to_numpy(),
                                td["door_order"].tolist())
        assert maps[i] == want
        assert turf_map_svg(polys[i], rts[i], td["lng"], td["lat"], td["door_order"].tolist()) == want
    assert shapely.get_num_geometries(polys[2]) == 2 and maps[2].count("<polygon") == 2


@pytest.mark.parametrize("door_unit", ["household", "building"])
def test_packets_are_the_per_turf_packets(door_unit: str) -> None:
    v = street_voters()
    v.loc[0, "first_name"] = "<script>alert(1)</script>"
    v.loc[1, "address"] = '1 "MAIN" & <ST>'
    v.loc[2, "first_name"] = None  # no first name: left out of {names}
    v.loc[3, "engagement_score"] = np.nan
    v.loc[5, "first_name"] = v.loc[4, "first_name"]  # the same name twice in a household: said once
    v.loc[5, "household_id"] = v.loc[4, "household_id"]
    doors, members, _ = build_doors(v, door_unit=door_unit)
    scripts = {"party = REP & score >= 0.3": "Hello {names} at {address}{unit}!",
               "age > 40 & party = DEM": "{first_name} {last_name}, {street} {house_number} ({precinct_id}/{turf_id}) "
                                         "{{ok}}"}
    cfg = TurfsConfig(target_doors=6, scripts=scripts,
                      survey={"Support <Prop 1>?": "Yes | No", "Sign?": "Yes|No|Maybe"})
    cut = cut_turfs(doors, config=cfg)
    rows = walklist_rows(cut.doors, members, cut.turfs, as_of_year=2026)
    new = packet_sections(cut.turfs, cut.routes, cut.doors, rows, config=cfg)
    ref = ref_packet_sections(cut.turfs, cut.routes, cut.doors, rows, config=cfg)
    assert list(new) == list(ref)
    for tid in ref:
        assert new[tid] == ref[tid], tid
    assert "Hello " in "".join(new.values()) and "{ok}" in "".join(new.values())


def test_packets_of_a_subset_of_turfs_and_the_html_files(tmp_path: Path) -> None:
    cut, _members, rows = cut_streets(target=6)
    some = cut.turfs.iloc[1:3]  # type: ignore[attr-defined]
    part = rows[rows["turf_id"].isin(some["turf_id"])]
    new = packet_sections(some, cut.routes, cut.doors, part)  # type: ignore[attr-defined]
    assert new == ref_packet_sections(some, cut.routes, cut.doors, part)  # type: ignore[attr-defined]
    written = write_packets(new, tmp_path)
    assert sorted(written["html"]) == sorted(new) and written["pdf"] == {}
    for tid, path in written["html"].items():
        text = path.read_text(encoding="utf-8")
        assert text.startswith("<!DOCTYPE html>") and f"<title>Turf {tid}</title>" in text and new[tid] in text


@pytest.mark.parametrize("door_unit", ["household", "building"])
def test_packet_html_files_are_the_sections_written(tmp_path: Path, door_unit: str) -> None:
    v = street_voters()
    v.loc[0, "first_name"] = "<script>alert('1')</script> Zoë"
    v.loc[1, "address"] = '1 "MAIN" & <ST>'
    v.loc[2, "last_name"] = None
    v.loc[3, "unit"] = "A&B"
    doors, members, _ = build_doors(v, door_unit=door_unit)
    cfg = TurfsConfig(target_doors=6, script="Hi {names} at {address}{unit} ({turf_id})")
    cut = cut_turfs(doors, config=cfg)
    rows = walklist_rows(cut.doors, members, cut.turfs, as_of_year=2026)
    sections = packet_sections(cut.turfs, cut.routes, cut.doors, rows, config=cfg)
    old = write_packets(sections, tmp_path / "old")["html"]
    new = write_packet_html(cut.turfs, cut.routes, cut.doors, rows, tmp_path / "new", config=cfg)
    assert list(new) == list(old) == list(sections) and len(new) == len(cut.turfs) > 2
    for tid in old:
        assert new[tid].read_bytes() == old[tid].read_bytes(), tid
    assert "&lt;script&gt;alert(&#x27;1&#x27;)&lt;/script&gt; Zoë" in "".join(sections.values())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=40))
def test_float_text_is_repr(values: list[float]) -> None:
    v = np.array(values + [0.1, 41.123456, -71.5, 1e-4, 9.999e-5, 999999.9, 1e6, 2.0, -0.0, 0.5e-323], dtype=float)
    assert _float_text(v).to_pylist() == ["" if f != f else repr(f) for f in v.tolist()]


def test_float_text_matches_repr_on_many_random_doubles() -> None:
    rng = np.random.default_rng(7)
    v = np.concatenate([rng.random(20_000), rng.normal(0, 1e5, 20_000), (rng.random(20_000) * 200 - 100).round(6),
                        rng.random(20_000).round(3), np.frombuffer(rng.bytes(8 * 20_000), dtype=np.float64)])
    assert _float_text(v).to_pylist() == ["" if f != f else repr(f) for f in v.tolist()]


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("sizes", [[5, 1, 1, 1, 5, 1], [1] * 2500, [0, 0, 3], list(range(40)), [7], [3] * 12])
def test_chunk_bounds_cover_every_turf_once(monkeypatch: pytest.MonkeyPatch, workers: int, sizes: list[int]) -> None:
    import geo_segment.turfs.run as run_mod

    monkeypatch.setattr(run_mod, "_PACKET_CHUNK", 1000)
    monkeypatch.setattr(run_mod, "_CHUNKS_PER_WORKER", 2)
    steps = np.diff(run_mod._chunk_bounds(np.array(sizes), workers))
    assert steps.sum() == len(sizes) and steps.min() >= 1 and steps.max() <= 1000
    wanted = min(len(sizes), max(-(-len(sizes) // 1000), 2 * workers if workers > 1 else 1))
    assert len(steps) <= wanted
    if len(set(sizes)) == 1:  # equal turfs: exactly the chunks wanted, of equal sizes
        assert len(steps) == wanted and steps.max() - steps.min() <= 1


def test_a_missing_last_name_or_address_is_empty_in_the_script() -> None:
    v = street_voters()
    v["last_name"] = v["last_name"].astype("string")
    v["address"] = v["address"].astype("string")
    v.loc[:, "last_name"] = pd.NA  # the per-turf code failed here (bool of NA), and printed <NA> for an address
    v.loc[:, "address"] = pd.NA
    doors, members, _ = build_doors(v)
    cfg = TurfsConfig(target_doors=10, script="Hi {last_name}|{address}|{first_name}")
    cut = cut_turfs(doors, config=cfg)
    html = "".join(packet_sections(cut.turfs, cut.routes, cut.doors,
                                   walklist_rows(cut.doors, members, cut.turfs, as_of_year=2026), config=cfg).values())
    assert "Hi ||Ana" in html and "&lt;NA&gt;" not in html


# --- scripts ------------------------------------------------------------------------------------------------------

FIELD_VALUES = st.one_of(st.none(), st.just(float("nan")), st.text(max_size=6), st.integers(-5, 5))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Hi {first_name}!", "{names} and {unit}", "{{x}} {turf_id}{street}",
                                           "plain"]), FIELD_VALUES, FIELD_VALUES), max_size=12))
def test_fill_all_is_fill_row_by_row(rows: list[tuple[str, object, object]]) -> None:
    templates = [r[0] for r in rows]
    values = {"first_name": [r[1] for r in rows], "names": [r[2] for r in rows], "unit": [r[1] for r in rows],
              "turf_id": [r[2] for r in rows], "street": [r[1] for r in rows]}
    got = fill_all(templates, values)
    want = [fill(t, {k: v[i] for k, v in values.items()}) for i, t in enumerate(templates)]
    assert got.tolist() == want


# --- cutting helpers ----------------------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from([0.0, 0.5, 1.0, 2.0]),
                          st.sampled_from([-1.0, -0.0, 0.0, 3.5, 3.5, float("inf")])), min_size=1, max_size=40),
       st.booleans())
def test_best_per_group_is_the_first_of_a_lexsort(rows: list[tuple[int, float, float]], with_nan: bool) -> None:
    group = np.array([r[0] for r in rows], dtype=np.int64)
    v = np.array([r[1] for r in rows])
    cost = np.array([r[2] for r in rows])
    if with_nan:
        cost[0] = np.nan
    o = np.lexsort((cost, v, group))
    want = o[np.r_[True, group[o][1:] != group[o][:-1]]]
    got = _best_per_group(group, v, cost, 5)
    assert sorted(got.tolist()) == sorted(want.tolist())


def test_route_order_unchanged_on_a_street() -> None:
    x = np.array([0.0, 30.0, 10.0, 20.0, 40.0, 50.0])
    y = np.array([0.0, 0.0, 0.0, 0.0, 20.0, 20.0])
    assert route_order(x, y).tolist() == [0, 2, 3, 1, 4, 5]


POINT_SETS = st.lists(st.tuples(st.integers(1, 14), st.integers(0, 2), st.booleans(), st.integers(0, 10_000)),
                      min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(POINT_SETS, st.sampled_from([0.0, 15.0, 40.0]))
def test_route_orders_at_once_are_route_order_one_by_one(sets: list[tuple[int, int, bool, int]],
                                                         penalty: float) -> None:
    """Many turfs of a few sizes (so several are solved in one array), on a line, rounded to ties, with sides."""
    xs, ys, gs, ss = [], [], [], []
    for k, (n, sides, line, seed) in enumerate(sets):
        rng = np.random.default_rng(seed)
        xs.append(rng.normal(0, 60, n).round(0))
        ys.append(np.zeros(n) if line else rng.normal(0, 40, n).round(1))
        gs.append(np.full(n, k))
        ss.append(rng.integers(0, sides + 1, n))
    x, y, g, side = (np.concatenate(a) for a in (xs, ys, gs, ss))
    shuffle = np.random.default_rng(len(x)).permutation(len(x))
    x, y, g, side = x[shuffle], y[shuffle], g[shuffle], side[shuffle]
    pos = route_orders(x, y, g, side, side_penalty_m=penalty, max_cells=300)
    for k in range(len(sets)):
        idx = np.flatnonzero(g == k)
        order = route_order(x[idx], y[idx], side[idx], side_penalty_m=penalty, n_starts=1)
        assert pos[idx][order].tolist() == list(range(len(idx)))


def test_route_orders_of_nothing() -> None:
    assert route_orders(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)).tolist() == []


def test_stage_packets_in_chunks_are_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import geo_segment.turfs.run as run_mod
    from geo_segment.turfs import turf_stage

    cfg = TurfsConfig(target_doors=4)
    whole = turf_stage(street_voters(), None, tmp_path / "whole", cfg, as_of_year=2026)
    monkeypatch.setattr(run_mod, "_PACKET_CHUNK", 2)
    chunked = turf_stage(street_voters(), None, tmp_path / "chunked", cfg, as_of_year=2026)
    names = sorted(p.name for p in (tmp_path / "whole" / "packets").iterdir())
    assert len(names) == len(whole.cut.turfs) > 4
    assert names == sorted(p.name for p in (tmp_path / "chunked" / "packets").iterdir())
    for name in names:
        assert (tmp_path / "whole" / "packets" / name).read_bytes() == \
            (tmp_path / "chunked" / "packets" / name).read_bytes()
    assert chunked.stages[-1].metrics["packets_html"] == len(names)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.integers(0, 1000))
def test_run_lengths_are_path_lengths(sizes: list[int], seed: int) -> None:
    from geo_segment.turfs.stage import _run_lengths
    from geo_segment.turfs.walk import path_length

    rng = np.random.default_rng(seed)
    x, y = rng.normal(0, 500, sum(sizes)), rng.normal(0, 500, sum(sizes))
    bounds = np.r_[0, np.cumsum(sizes)]
    want = [path_length(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    assert _run_lengths(x, y, bounds).tolist() == want
