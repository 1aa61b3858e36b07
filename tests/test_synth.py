"""Tests of the synthetic sample generator (geo_segment.synth)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from geo_segment import schema as S
from geo_segment.errors import ConfigError
from geo_segment.io.delimited import read_delimited
from geo_segment.layouts import BUILTIN_LAYOUTS, load_layout
from geo_segment.synth import (
    BAD_ROW_COLUMNS,
    DEFAULT_BLOCKS,
    SyntheticPopulation,
    generate_population,
    write_layout,
)

STREET_KEY = ["predir", "street_name", "street_type"]


@pytest.fixture(scope="module")
def pop20k() -> SyntheticPopulation:
    return generate_population(20_000, seed=0)


@pytest.fixture(scope="module")
def small() -> SyntheticPopulation:
    return generate_population(1_500, seed=3)


def _rows(path: Path, delimiter: str) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


# --- determinism ------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_bytes(tmp_path: Path) -> None:
    a = generate_population(800, seed=7)
    b = generate_population(800, seed=7)
    for name in ("voters", "elections", "history", "signals", "pockets"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    pa_ = write_layout(a, "nc", tmp_path / "a", bad_rows=4, seed=1)
    pb = write_layout(b, "nc", tmp_path / "b", bad_rows=4, seed=1)
    assert pa_.keys() == pb.keys()
    for key in pa_:
        assert pa_[key].read_bytes() == pb[key].read_bytes(), key


def test_different_seed_differs(tmp_path: Path) -> None:
    a = generate_population(800, seed=7)
    b = generate_population(800, seed=8)
    assert not a.voters[S.VOTER_ID].equals(b.voters[S.VOTER_ID])
    fa = write_layout(a, "fl", tmp_path / "a")["voters"]
    fb = write_layout(b, "fl", tmp_path / "b")["voters"]
    assert fa.read_bytes() != fb.read_bytes()
    # the write seed changes write-time choices (geocode jitter) but not the population's rows
    g1 = write_layout(a, "fl", tmp_path / "c", seed=1)["geocodes"]
    g2 = write_layout(a, "fl", tmp_path / "d", seed=2)["geocodes"]
    assert g1.read_bytes() != g2.read_bytes()
    assert (tmp_path / "c" / "voters.txt").read_bytes() == fa.read_bytes()


# --- counts, ids, households --------------------------------------------------------------------------------------


def test_counts_ids_and_households(pop20k: SyntheticPopulation) -> None:
    v = pop20k.voters
    assert len(v) == 20_000
    assert v[S.VOTER_ID].is_unique
    assert v[S.VOTER_ID].str.fullmatch(r"[A-Y][A-Z]\d{6}").all()
    assert v[S.VOTER_ID].is_monotonic_increasing
    sizes = v.groupby("household_key").size()
    assert sizes.between(1, 5).all()
    # a household lives at one address, in one building
    per_hh = v.groupby("household_key")[["building_key", S.HOUSE_NUMBER, "street_name", S.UNIT]].nunique()
    assert (per_hh == 1).all().all()
    units = v.groupby("building_key")["household_key"].nunique()
    multi_share = v["building_key"].map(units).gt(1).mean()
    assert 0.15 <= multi_share <= 0.25
    # units of one building are distinct and share the house number; single buildings have no unit
    multi = v[v["building_key"].map(units) > 1]
    assert (multi[S.UNIT] != "").all()
    assert (v.loc[v["building_key"].map(units) == 1, S.UNIT] == "").all()
    per_b = multi.groupby("building_key").agg(n_units=(S.UNIT, "nunique"), n_hh=("household_key", "nunique"),
                                              n_numbers=(S.HOUSE_NUMBER, "nunique"))
    assert (per_b["n_units"] == per_b["n_hh"]).all() and (per_b["n_numbers"] == 1).all()
    assert {"2", "10"} <= set(v[S.UNIT])  # natural sort matters: "2" < "10"


def test_house_numbers_odd_left_even_right_and_rising(pop20k: SyntheticPopulation) -> None:
    streets = pop20k.streets
    assert streets.crs.equals(S.CRS_STORAGE)
    assert not streets.duplicated(STREET_KEY).any()
    utm = streets.estimate_utm_crs()
    lines = streets.to_crs(utm)
    start = lines.geometry.interpolate(0.0)
    end = lines.geometry.interpolate(1.0, normalized=True)
    geo = pd.DataFrame({"ax": start.x, "ay": start.y, "bx": end.x, "by": end.y})
    geo[STREET_KEY] = streets[STREET_KEY].to_numpy()
    v = pop20k.voters.merge(geo, on=STREET_KEY, how="left", validate="many_to_one")
    assert v["ax"].notna().all()
    pts = gpd.GeoSeries(gpd.points_from_xy(v[S.LNG], v[S.LAT]), crs=S.CRS_STORAGE).to_crs(utm)
    ux, uy = v["bx"] - v["ax"], v["by"] - v["ay"]
    norm = np.hypot(ux, uy)
    ux, uy = ux / norm, uy / norm
    dx, dy = pts.x.to_numpy() - v["ax"], pts.y.to_numpy() - v["ay"]
    v["t"] = dx * ux + dy * uy
    cross = ux * dy - uy * dx
    odd = v[S.HOUSE_NUMBER] % 2 == 1
    assert (odd == (cross > 0)).all(), "odd numbers on the left of the street, even on the right"
    assert cross.abs().between(5.0, 11.0).all(), "houses sit a few metres off the street line"
    b = v.drop_duplicates("building_key").assign(side=odd)
    b = b.sort_values([*STREET_KEY, "side", "t"])
    rising = b.groupby([*STREET_KEY, "side"])[S.HOUSE_NUMBER].diff().dropna()
    assert (rising > 0).all(), "house numbers rise along each street"


def test_households_follow_block_population(pop20k: SyntheticPopulation) -> None:
    blocks = gpd.read_parquet(DEFAULT_BLOCKS)
    per_block = pop20k.voters.groupby("block_geoid").size()
    counts = blocks["GEOID10"].map(per_block).fillna(0)
    assert counts.sum() == 20_000
    assert np.corrcoef(counts, blocks["TOTPOP"])[0, 1] > 0.8
    assert (counts[blocks["TOTPOP"] == 0] == 0).all()


def test_people_dates_parties(pop20k: SyntheticPopulation) -> None:
    v = pop20k.voters
    as_of = pd.Timestamp(pop20k.as_of)
    age = (as_of - v["birth_date"]).dt.days / 365.2425
    assert age.min() >= 18 and age.max() < 96
    assert (v[S.REGISTRATION_DATE] >= v["birth_date"] + pd.DateOffset(years=18)).all()
    assert (v[S.REGISTRATION_DATE] < as_of).all()
    shares = v[S.PARTY].value_counts(normalize=True)
    for party, share in {"DEM": 0.45, "REP": 0.15, "UNA": 0.37, "LIB": 0.02, "GRE": 0.01}.items():
        assert abs(shares[party] - share) < 0.03, party
    assert set(v[S.STATUS]) == {"A", "I"} and (v[S.STATUS] == "A").mean() > 0.85
    assert set(v[S.ZIP5]) <= {"02903", "02904", "02905", "02906", "02907", "02908", "02909", "02912"}
    assert v["true_propensity"].between(0, 1).all()
    assert v[[S.LAT, S.LNG]].dtypes.eq("float64").all()
    assert v[S.LAT].between(41.77, 41.87).all() and v[S.LNG].between(-71.48, -71.37).all()


def test_contact_data_in_reserved_ranges(pop20k: SyntheticPopulation) -> None:
    v = pop20k.voters
    phones = v.loc[v[S.PHONE] != "", S.PHONE]
    assert phones.str.fullmatch(r"40155501\d\d").all() and len(phones) > 10_000
    emails = v.loc[v[S.EMAIL] != "", S.EMAIL]
    assert emails.str.fullmatch(r"[a-z0-9._]+@example\.com").all() and len(emails) > 5_000


def test_elections_and_history(pop20k: SyntheticPopulation) -> None:
    el = pop20k.elections
    assert 10 <= len(el) <= 12 and el[S.ELECTION_DATE].is_monotonic_increasing
    assert el[S.ELECTION_DATE].dt.year.between(2016, 2024).all()
    assert set(el[S.ELECTION_TYPE]) == {"general", "primary", "presidential_primary", "special"}
    for d in el.loc[el[S.ELECTION_TYPE] == "general", S.ELECTION_DATE]:
        assert d.month == 11 and d.weekday() == 1 and 2 <= d.day <= 8  # Tuesday after the first Monday
    h = pop20k.history
    S.validate_history(h)
    assert h[S.VOTED].all()
    assert not h.duplicated([S.VOTER_ID, S.ELECTION_DATE]).any()
    reg = h[S.VOTER_ID].map(pop20k.voters.set_index(S.VOTER_ID)[S.REGISTRATION_DATE])
    assert (h[S.ELECTION_DATE] > reg).all()
    primary = h[S.ELECTION_TYPE].isin(["primary", "presidential_primary"])
    assert (h.loc[primary, S.BALLOT_PARTY] != "").all() and (h.loc[~primary, S.BALLOT_PARTY] == "").all()
    assert set(h[S.VOTE_METHOD]) <= set(S.VOTE_METHODS)
    turnout = h.groupby(S.ELECTION_TYPE).size() / h[S.ELECTION_DATE].groupby(h[S.ELECTION_TYPE]).nunique()
    assert turnout["general"] > turnout["primary"]
    # higher propensity, more votes
    n_votes = h.groupby(S.VOTER_ID).size().reindex(pop20k.voters[S.VOTER_ID], fill_value=0)
    assert np.corrcoef(n_votes, pop20k.voters["true_propensity"])[0, 1] > 0.3


def test_pockets_are_engaged_and_dense(pop20k: SyntheticPopulation) -> None:
    v = pop20k.voters
    pockets = pop20k.pockets
    assert len(pockets) == 6 and (pockets["n_voters"] > 0).all()
    assert pockets["radius_m"].between(150, 250).all()
    inside = v["pocket_id"] >= 0
    assert v.loc[inside, "true_propensity"].mean() > v.loc[~inside, "true_propensity"].mean() + 0.2
    sig = pop20k.signals
    assert set(sig[S.KIND]) == set(S.SIGNAL_KINDS)
    assert str(sig[S.TIMESTAMP].dt.tz) == "UTC" and sig[S.TIMESTAMP].is_monotonic_increasing
    linked = sig[S.KIND].isin(["rsvp", "donation", "event_checkin", "canvass_contact"])
    assert (sig.loc[linked, S.VOTER_ID] != "").all()
    assert (sig.loc[sig[S.KIND] == "ping", S.DEVICE_ID] != "").all()
    assert sig.loc[sig[S.VOTER_ID] != "", S.VOTER_ID].isin(v[S.VOTER_ID]).all()
    # signal density inside a pocket is far above the city-wide background
    kx = np.cos(np.radians(41.82))
    for p in pockets.itertuples():
        d = np.hypot((sig[S.LAT] - p.lat) * 111_320, (sig[S.LNG] - p.lng) * 111_320 * kx)
        near = (d <= p.radius_m).sum()
        background = (sig["pocket_id"] < 0).sum() * (np.pi * p.radius_m**2) / 47e6
        assert near > 5 * background


# --- layouts ----------------------------------------------------------------------------------------------------


def _expected_width(name: str, small: SyntheticPopulation) -> dict[str, int]:
    layout = load_layout(name)
    widths = {"voters": len(layout.columns), "geocodes": 5, "signals": 7}
    if name == "oh":
        widths["voters"] += len(small.elections)
    if layout.history_style == "long":
        widths["history"] = len(layout.history["columns"])
    if name == "pa":
        widths["election_map"] = len(layout.history["map_columns"])
    return widths


@pytest.mark.parametrize("name", BUILTIN_LAYOUTS)
def test_layout_files_have_the_layout_columns(name: str, small: SyntheticPopulation, tmp_path: Path) -> None:
    layout = load_layout(name)
    paths = write_layout(small, name, tmp_path)
    widths = _expected_width(name, small)
    assert set(widths) <= set(paths)
    for key, width in widths.items():
        raw = paths[key].read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and raw.endswith(b"\n")
        delimiter = "," if key in ("geocodes", "signals") else (
            layout.history.get("delimiter", layout.delimiter) if key == "history"
            else layout.history.get("map_delimiter", "\t") if key == "election_map" else layout.delimiter
        )
        rows = _rows(paths[key], delimiter)
        assert {len(r) for r in rows} == {width}, key
        if key == "voters":
            assert len(rows) == len(small.voters) + layout.header
            if layout.header:
                assert rows[0][: len(layout.columns)] == list(layout.columns)
        if key == "history" and layout.history.get("header"):
            assert rows[0] == list(layout.history["columns"])
    if layout.history_style == "long":
        history_rows = len(_rows(paths["history"], layout.history["delimiter"])) - layout.history["header"]
        assert history_rows == len(small.history)


def test_nc_quotes_every_field_and_formats(small: SyntheticPopulation, tmp_path: Path) -> None:
    paths = write_layout(small, "nc", tmp_path)
    first, second = paths["voters"].read_text(encoding="utf-8").split("\n")[:2]
    assert all(f.startswith('"') and f.endswith('"') for f in first.split("\t") + second.split("\t"))
    rows = _rows(paths["voters"], "\t")
    header = rows[0]
    rec = dict(zip(header, rows[1], strict=True))
    voter = small.voters.iloc[0]
    assert rec["ncid"] == voter[S.VOTER_ID]
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", rec["registr_dt"])
    assert rec["birth_year"] == str(voter["birth_date"].year)
    assert rec["res_street_address"].startswith(str(voter[S.HOUSE_NUMBER]) + " ")
    with_unit = small.voters[small.voters[S.UNIT] != ""].index[0]
    assert dict(zip(header, rows[with_unit + 1], strict=True))["res_street_address"].endswith(
        " APT " + small.voters.loc[with_unit, S.UNIT]
    )
    hist = _rows(paths["history"], "\t")
    methods = {dict(zip(hist[0], r, strict=True))["voting_method"] for r in hist[1:]}
    assert methods <= set(load_layout("nc").history["method_map"])
    desc = {dict(zip(hist[0], r, strict=True))["election_desc"] for r in hist[1:]}
    assert "11/08/2022 GENERAL" in desc


def test_oh_wide_history_and_pa_election_map(small: SyntheticPopulation, tmp_path: Path) -> None:
    oh = _rows(write_layout(small, "oh", tmp_path / "oh")["voters"], ",")
    n_fixed = len(load_layout("oh").columns)
    election_cols = oh[0][n_fixed:]
    assert election_cols[0] == "PRIMARY-03/15/2016" and "GENERAL-11/08/2022" in election_cols
    cells = {c for r in oh[1:] for c in r[n_fixed:]}
    assert cells <= {"", "X", "D", "R", "L", "G"} and {"X", "D", "R"} <= cells
    n_votes = sum(c != "" for r in oh[1:] for c in r[n_fixed:])
    assert n_votes == len(small.history)
    paths = write_layout(small, "pa", tmp_path / "pa")
    emap = _rows(paths["election_map"], "\t")
    assert [r[1] for r in emap] == [str(k) for k in range(1, len(small.elections) + 1)]
    assert emap[-1][3] == "11/05/2024"
    fve = _rows(paths["voters"], "\t")
    cols = list(load_layout("pa").columns)
    methods = {r[cols.index(f"election_{k}_vote_method")] for r in fve for k in range(1, 41)}
    assert methods <= {"", "AP", "AB", "P"}
    voted = sum(r[cols.index(f"election_{k}_vote_method")] != "" for r in fve for k in range(1, 41))
    assert voted == len(small.history)


@pytest.mark.parametrize("name", BUILTIN_LAYOUTS)
def test_bad_rows_are_recorded_at_their_lines(name: str, small: SyntheticPopulation, tmp_path: Path) -> None:
    layout = load_layout(name)
    paths = write_layout(small, name, tmp_path, bad_rows=6)
    truth = pd.read_csv(paths["truth_bad_rows"], dtype={"column": str, "voter_id": str}, keep_default_na=False)
    assert list(truth.columns) == list(BAD_ROW_COLUMNS) and len(truth) == 6
    lines = paths["voters"].read_text(encoding="utf-8").split("\n")
    for rec in truth.itertuples():
        fields = next(csv.reader(io.StringIO(lines[rec.line - 1]), delimiter=layout.delimiter))
        assert len(fields) == rec.n_fields, rec.kind
        if rec.column:
            assert rec.voter_id in fields
    read = read_delimited(
        paths["voters"], delimiter=layout.delimiter, header=layout.header,
        columns=None if layout.header else layout.columns,
    )
    quarantined = truth.loc[~truth["parses_as_voter"], "line"]
    assert sorted(read.rejects[S.REJECT_LINE].tolist()) == sorted(quarantined.tolist())
    assert len(read.table) == len(small.voters) + truth["parses_as_voter"].sum()
    field_rows = truth[truth["parses_as_voter"]]
    got = read.table.set_index(S.SOURCE_LINE)
    for rec in field_rows.itertuples():
        value = got.loc[rec.line, rec.column]
        if rec.kind == "impossible_date":
            assert "30" in value and ("02/30/2019" == value or "2019-02-30" == value)
        if rec.kind == "zip_lost_leading_zero":
            assert len(value) == 4


def test_accented_names_survive_utf8(small: SyntheticPopulation, tmp_path: Path) -> None:
    v = small.voters
    names = set(v[S.LAST_NAME]) | set(v[S.FIRST_NAME])
    assert any(not n.isascii() for n in names) and any("'" in n for n in names)
    assert all(unicodedata.is_normalized("NFC", n) for n in names)
    for name in ("fl", "nc"):
        layout = load_layout(name)
        rows = _rows(write_layout(small, name, tmp_path / name)["voters"], layout.delimiter)
        data = rows[1:] if layout.header else rows
        last = list(layout.columns).index(layout.fields["last_name"][0])
        first = list(layout.columns).index(layout.fields["first_name"][0])
        assert [r[last] for r in data] == v[S.LAST_NAME].tolist()
        assert [r[first] for r in data] == v[S.FIRST_NAME].tolist()


def test_truth_geocodes_and_signals_files(small: SyntheticPopulation, tmp_path: Path) -> None:
    paths = write_layout(small, "mi", tmp_path)
    truth = pd.read_parquet(paths["truth"])
    assert {"voter_id", "true_propensity", "pocket_id", "household_key", "building_key", "n_votes",
            "geocoded"} <= set(truth.columns)
    assert truth["n_votes"].sum() == len(small.history)
    geo = pd.read_csv(paths["geocodes"], dtype={"voter_id": str})
    assert list(geo.columns) == ["voter_id", "latitude", "longitude", "match_score", "match_type"]
    ok = geo.dropna(subset=["latitude", "longitude"])
    assert set(ok["voter_id"]) == set(truth.loc[truth["geocoded"], "voter_id"])
    assert 0.95 < truth["geocoded"].mean() < 1.0
    exact = truth.set_index("voter_id").loc[ok["voter_id"]]
    err = np.hypot((ok["latitude"].to_numpy() - exact["lat"].to_numpy()) * 111_320,
                   (ok["longitude"].to_numpy() - exact["lng"].to_numpy()) * 111_320 * np.cos(np.radians(41.82)))
    assert np.median(err) < 10 and err.max() < 100
    sig = pd.read_csv(paths["signals"], dtype={"voter_id": str, "device_id": str}, keep_default_na=False)
    assert list(sig.columns) == ["timestamp", "kind", "lat", "lng", "weight", "voter_id", "device_id"]
    assert sig["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert len(sig) == len(small.signals)
    assert paths["geocodes"].read_bytes().isascii()


def test_without_geocodes(small: SyntheticPopulation, tmp_path: Path) -> None:
    paths = write_layout(small, "pa", tmp_path, geocodes=False)
    assert "geocodes" not in paths and not (tmp_path / "geocodes.csv").exists()
    assert pd.read_parquet(paths["truth"])["geocoded"].all()


# --- inputs -----------------------------------------------------------------------------------------------------


def test_custom_blocks() -> None:
    """Two blocks side by side, the east one twice as populated::

        +------+------+
        |  A   |  B   |   A: 100 people, B: 200 people, C (detached, south): 0 people
        +------+------+
            +------+
            |  C   |
            +------+
    """
    x0, y0, d = -71.42, 41.82, 0.002
    blocks = gpd.GeoDataFrame(
        {"GEOID10": ["A", "B", "C"], "TOTPOP": [100, 200, 0]},
        geometry=[box(x0, y0, x0 + d, y0 + d), box(x0 + d, y0, x0 + 2 * d, y0 + d),
                  box(x0 + d / 2, y0 - 2 * d, x0 + 1.5 * d, y0 - d)],
        crs=4326,
    )
    pop = generate_population(600, seed=5, blocks=blocks, n_pockets=1)
    counts = pop.voters["block_geoid"].value_counts()
    assert set(counts.index) == {"A", "B"} and counts["B"] > counts["A"]
    assert len(pop.streets) == 2 and len(pop.pockets) == 1
    inside = gpd.GeoSeries(gpd.points_from_xy(pop.voters[S.LNG], pop.voters[S.LAT]), crs=4326).within(
        blocks.geometry.iloc[:2].union_all().buffer(0.0002)
    )
    assert inside.all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_voters": 0}, "n_voters"),
        ({"n_voters": 10, "n_pockets": -1}, "n_pockets"),
        ({"n_voters": 10, "blocks": "blocks.parquet"}, "GeoDataFrame"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    n = kwargs.pop("n_voters")
    with pytest.raises(ConfigError, match=match):
        generate_population(n, **kwargs)  # type: ignore[arg-type]


def test_bad_blocks_and_layouts(small: SyntheticPopulation, tmp_path: Path) -> None:
    blocks = gpd.read_parquet(DEFAULT_BLOCKS).iloc[:50]
    with pytest.raises(ConfigError, match="EPSG:4326"):
        generate_population(10, blocks=blocks.to_crs(3857))
    with pytest.raises(ConfigError, match="population"):
        generate_population(10, blocks=blocks.drop(columns="TOTPOP"))
    with pytest.raises(ValueError, match="built-in layouts"):
        write_layout(small, "tx", tmp_path)
    with pytest.raises(ConfigError, match="bad_rows"):
        write_layout(small, "nc", tmp_path, bad_rows=-1)
    assert generate_population(1, seed=0).voters.shape[0] == 1
    assert date(2024, 11, 5) in set(small.elections[S.ELECTION_DATE].dt.date)
