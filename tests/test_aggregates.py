"""Aggregates per cell and per precinct against counts worked out by hand, and small-cell suppression."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geo_segment import schema as S
from geo_segment.aggregates import _count_distinct, aggregate_cells, aggregate_precincts, decay_weights, suppress_small
from geo_segment.join import add_h3_cells, assign_precincts


def _voters() -> gpd.GeoDataFrame:
    """12 voters in precinct P1 (one H3 cell), 2 in P2; 1 not geocoded.

    P1 households: h1 x3 (building b1), h2 x3 (b1), h3..h8 one each (b2..b7); P2: h9 x2 (b8).
    """
    n1 = 12
    lat = [41.8200 + 1e-6 * i for i in range(n1)] + [41.8300, 41.8300] + [np.nan]
    lng = [-71.4100] * n1 + [-71.3900, -71.3900] + [np.nan]
    hh = ["h1"] * 3 + ["h2"] * 3 + [f"h{i}" for i in range(3, 9)] + ["h9", "h9", "h10"]
    bld = ["b1"] * 6 + [f"b{i}" for i in range(2, 8)] + ["b8", "b8", "b9"]
    party = ["DEM"] * 6 + ["REP"] * 3 + ["UNA", "XYZ", None] + ["DEM", "REP", "DEM"]
    g = gpd.GeoDataFrame(
        {S.VOTER_ID: [f"v{i:02d}" for i in range(15)], S.LAT: lat, S.LNG: lng, S.HOUSEHOLD_ID: hh,
         S.BUILDING_ID: bld, S.PARTY: party, S.GEOCODED: ~np.isnan(lat)},
        geometry=gpd.points_from_xy(lng, lat), crs=4326,
    )
    return g


@pytest.fixture
def precincts() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"pid": ["P1", "P2", "P3"],
                             "geometry": [box(-71.42, 41.81, -71.40, 41.825), box(-71.40, 41.825, -71.38, 41.84),
                                          box(-71.30, 41.80, -71.29, 41.81)]}, crs=4326)


def _history() -> pd.DataFrame:
    rows = []
    for vid in ["v00", "v01", "v02", "v03", "v12"]:  # 4 of P1 and 1 of P2 voted in 2024
        rows.append((vid, "2024-11-05", "general", True))
    for vid in ["v00", "v05"]:
        rows.append((vid, "2022-11-08", "general", True))
    rows.append(("v01", "2022-11-08", "general", False))  # not a vote
    rows.append(("v00", "2024-03-05", "primary", True))  # not a general
    rows.append(("v00", "2024-11-05", "general", True))  # duplicate row counts once
    h = pd.DataFrame(rows, columns=[S.VOTER_ID, S.ELECTION_DATE, S.ELECTION_TYPE, S.VOTED])
    h[S.ELECTION_DATE] = pd.to_datetime(h[S.ELECTION_DATE])
    return h


def test_precinct_counts_by_hand(precincts: gpd.GeoDataFrame) -> None:
    voters = assign_precincts(add_h3_cells(_voters()), precincts, id_col="pid")
    out = aggregate_precincts(voters, precincts, _history(), id_col="pid", k_min=2).set_index(S.PRECINCT_ID)
    p1 = out.loc["P1"]
    assert (p1["voters"], p1["households"], p1["buildings"]) == (12, 8, 7)
    assert (p1["party_DEM"], p1["party_REP"], p1["party_UNA"], p1["party_other"]) == (6, 3, 1, 2)
    assert (p1["voted_general_2024-11-05"], p1["voted_general_2022-11-08"]) == (4, 2)
    assert p1["turnout_last_general"] == pytest.approx(4 / 12)
    assert p1["assigned_within"] == 12
    p2 = out.loc["P2"]
    assert (p2["voters"], p2["households"], p2["voted_general_2024-11-05"]) == (2, 1, 1)
    p3 = out.loc["P3"]  # no voters: kept, suppressed
    assert bool(p3["suppressed"]) and pd.isna(p3["voters"])
    assert list(out.index) == ["P1", "P2", "P3"] and out.crs.to_epsg() == 4326


def test_small_units_are_suppressed(precincts: gpd.GeoDataFrame) -> None:
    voters = assign_precincts(add_h3_cells(_voters()), precincts, id_col="pid")
    out = aggregate_precincts(voters, precincts, _history(), id_col="pid").set_index(S.PRECINCT_ID)
    assert out["suppressed"].tolist() == [False, True, True]
    shown = [c for c in out.columns if c.startswith(("party_", "voted_", "assigned_")) or c in ("voters",
                                                                                                "households")]
    assert out.loc["P2", shown].isna().all()
    assert out.loc["P1", "voters"] == 12


def test_cells_one_row_per_cell_with_hexagon() -> None:
    voters = add_h3_cells(_voters(), resolution=9)
    cells = aggregate_cells(voters, k_min=1)
    assert len(cells) == 2 and cells[S.H3_CELL].dtype == np.uint64
    assert sorted(cells["voters"].tolist()) == [2, 12]
    assert (cells.geometry.geom_type == "Polygon").all()
    coarse = aggregate_cells(voters, k_min=1, resolution=5)
    assert len(coarse) == 1 and coarse["voters"].iloc[0] == 14


def test_decay_halves_every_half_life() -> None:
    ts = pd.Series(pd.to_datetime(["2026-01-31", "2026-01-01", "2025-12-02", "2026-02-10"], utc=True))
    w = decay_weights(ts, pd.Series([1.0, 1.0, 2.0, 1.0]), half_life_days=30, as_of=pd.Timestamp("2026-01-31"))
    assert w == pytest.approx([1.0, 0.5, 0.5, 1.0])


def test_suppress_small_keeps_rows_and_nulls_counts() -> None:
    frame = pd.DataFrame({"voters": [3, 20], "party_DEM": [1, 10], "signals_rsvp": [0.5, 2.0]})
    out = suppress_small(frame, k_min=11)
    assert out["suppressed"].tolist() == [True, False]
    assert out.loc[0, ["voters", "party_DEM", "signals_rsvp"]].isna().all()
    assert out.loc[1, "voters"] == 20


def _signals(precinct_ids: list[str | None]) -> pd.DataFrame:
    """Signals of the given precincts: one ping, a day-old RSVP, an unknown kind, all weight 1 or 2."""
    n = len(precinct_ids)
    kinds = (["ping", "rsvp", "telepathy"] * n)[:n]
    ts = pd.to_datetime(["2024-10-02"] * n, utc=True) - pd.to_timedelta([i % 2 for i in range(n)], unit="D")
    return pd.DataFrame({S.PRECINCT_ID: pd.Series(precinct_ids, dtype="str"), S.KIND: kinds, S.TIMESTAMP: ts,
                         S.WEIGHT: [1.0, 2.0] * (n // 2) + [1.0] * (n % 2)})


def test_precinct_signals_decay_by_kind(precincts: gpd.GeoDataFrame) -> None:
    voters = assign_precincts(add_h3_cells(_voters()), precincts, id_col="pid")
    sig = _signals(["P1", "P1", "P1", "P2", None, "P9"])  # P9 is in no layer: ignored, like the null one
    out = aggregate_precincts(voters, precincts, None, sig, id_col="pid", k_min=1, half_life_days=1.0,
                              as_of=pd.Timestamp("2024-10-02", tz="UTC")).set_index(S.PRECINCT_ID)
    # P1: ping weight 1 age 0 -> 1.0; rsvp weight 2 age 1 day -> 1.0; telepathy not a kind. P2: ping weight 2 age 1
    assert out.loc["P1", "signals_ping"] == pytest.approx(1.0)
    assert out.loc["P1", "signals_rsvp"] == pytest.approx(1.0)
    assert out.loc["P2", "signals_ping"] == pytest.approx(1.0)
    assert out.loc["P2", "signals_rsvp"] == 0.0
    assert out["signals_web_visit"].dtype == np.float64


def test_signals_columns_are_float_even_without_voters(precincts: gpd.GeoDataFrame) -> None:
    voters = assign_precincts(add_h3_cells(_voters()), precincts, id_col="pid").iloc[:0]
    out = aggregate_precincts(voters, precincts, None, _signals(["P1", "P2"]), id_col="pid", k_min=0)
    assert {str(out[c].dtype) for c in out.columns if c.startswith("signals_")} == {"float64"}


@pytest.mark.parametrize("n_generals", [1, 2, 4])
def test_shared_codes_give_the_same_tables(precincts: gpd.GeoDataFrame, n_generals: int) -> None:
    from geo_segment.aggregates import voter_codes

    voters = assign_precincts(add_h3_cells(_voters()), precincts, id_col="pid")
    history = _history()
    # codes made for another n_generals, without history, and for this request: all give the fresh answer
    for codes in (voter_codes(voters), voter_codes(voters, history, n_generals=2),
                  voter_codes(voters, history, n_generals=n_generals)):
        for fn in (lambda c: aggregate_precincts(voters, precincts, history, id_col="pid", k_min=1,
                                                 n_generals=n_generals, codes=c),
                   lambda c: aggregate_cells(voters, history, k_min=1, n_generals=n_generals, codes=c)):
            pd.testing.assert_frame_equal(fn(codes), fn(None))
    cols = aggregate_cells(voters, history, k_min=1, n_generals=n_generals).columns
    assert sum(c.startswith("voted_general_") for c in cols) == min(n_generals, 2)


@pytest.mark.parametrize("cores", [1, 2])
def test_tables_counted_on_threads_equal_one_thread(monkeypatch: pytest.MonkeyPatch, precincts: gpd.GeoDataFrame,
                                                    cores: int) -> None:
    import geo_segment.aggregates as A

    voters = assign_precincts(add_h3_cells(_voters()), precincts, id_col="pid")
    history = _history()
    alone = (aggregate_precincts(voters, precincts, history, id_col="pid", k_min=1),
             aggregate_cells(voters, history, k_min=1))
    monkeypatch.setattr(A, "_MIN_ROWS_THREADED", 1)  # households and buildings counted side by side...
    monkeypatch.setattr(A, "usable_cores", lambda: cores)  # ...with a second core
    side = (aggregate_precincts(voters, precincts, history, id_col="pid", k_min=1),
            aggregate_cells(voters, history, k_min=1))
    for a, b in zip(alone, side, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert side[0].set_index("precinct_id").loc["P1", ["households", "buildings"]].tolist() == [8, 7]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(-1, 12)), max_size=80))
def test_distinct_households_per_unit_equal_pandas(pairs: list[tuple[int, int]]) -> None:
    """Households spanning several units, missing codes (-1) and units with none: the first-row shortcut counts
    the same distinct codes per unit as pandas' drop_duplicates."""
    kc = np.array([p[0] for p in pairs], dtype=np.int64)
    codes = np.array([p[1] for p in pairs], dtype=np.int64)
    ok = codes >= 0
    expected = (pd.DataFrame({"k": kc[ok], "c": codes[ok]}).drop_duplicates().groupby("k").size()
                .reindex(range(7), fill_value=0).to_numpy())
    assert _count_distinct(kc, codes, 7).tolist() == expected.tolist()


@pytest.mark.parametrize("form", ["fixed-width", "hex", "categorical"])
def test_household_and_building_ids_in_any_form_give_the_same_tables(precincts: gpd.GeoDataFrame,
                                                                      form: str) -> None:
    """Fixed-width ids are counted as integers, categorical ones (and categorical party, precinct and method) by
    their codes, the fixture's (h1..h10, two widths) as hashed strings: the tables are equal."""
    voters = assign_precincts(add_h3_cells(_voters()), precincts, id_col="pid")
    other = voters.copy()
    for col in (S.HOUSEHOLD_ID, S.BUILDING_ID):
        num = voters[col].str.slice(1).astype(int)
        if form == "fixed-width":
            other[col] = (voters[col].str.slice(0, 1) + num.map("{:04d}".format)).astype("str")
        elif form == "hex":
            other[col] = ("h" + num.map(lambda k: f"{k * 0x9E3779B97F4A7C15 % 2**64:016x}")).astype("str")
        else:
            other[col] = voters[col].astype("category")
    if form == "categorical":  # party, precinct and method too; categories in any order, unused ones included
        for col in (S.PARTY, S.PRECINCT_ID, S.PRECINCT_METHOD):
            cats = pd.Index([*sorted(voters[col].dropna().unique(), reverse=True), "ZZ-unused"], dtype="str")
            other[col] = voters[col].astype(pd.CategoricalDtype(cats))
    for fn in (lambda v: aggregate_precincts(v, precincts, _history(), id_col="pid", k_min=1),
               lambda v: aggregate_cells(v, _history(), k_min=1)):
        pd.testing.assert_frame_equal(fn(other), fn(voters))
    # P1: h1, h2, h3..h8; P2: h9 twice (h10 has no coordinates); P3: no voters (suppressed)
    assert aggregate_precincts(other, precincts, id_col="pid", k_min=1)["households"].tolist()[:2] == [8, 1]


@pytest.mark.parametrize("n_other", [0, 3, 200])
def test_label_codes_of_a_categorical_equal_those_of_its_strings(n_other: int) -> None:
    # categories looked up once, then every row through its narrow code; missing and unknown values take the
    # position after the labels, as plain strings do
    from geo_segment.aggregates import _label_codes

    labels = ("DEM", "REP", "UNA")
    values = ["REP", None, "DEM", "UNA", "LIB", "REP", *(f"X{i}" for i in range(n_other)), None]
    plain = pd.Series(values, dtype="str")
    cat = pd.Series(pd.Categorical(values, categories=list(dict.fromkeys(reversed([v for v in values if v])))))
    got = _label_codes(cat, labels)
    assert got.tolist() == _label_codes(plain, labels).tolist() == [
        {"DEM": 0, "REP": 1, "UNA": 2}.get(v, 3) if v else 3 for v in values]
