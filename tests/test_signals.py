"""Tests of :func:`geo_segment.io.signals.read_signals`: tiny CSV files written in ``tmp_path``, one row per case."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_segment import schema as S
from geo_segment.errors import (
    EncodingError,
    GeoSegmentWarning,
    InputFileError,
    MissingColumnsError,
    ProjectedCoordinatesError,
)
from geo_segment.io.signals import SignalRead, read_signals

HEADER = "timestamp,kind,lat,lng,weight,voter_id,device_id"
GOOD = "2024-05-01T10:00:00,ping,41.82,-71.41,1.5,V1,D1"
OUTPUT_COLUMNS = [S.TIMESTAMP, S.KIND, S.LAT, S.LNG, S.WEIGHT, S.VOTER_ID, S.DEVICE_ID, S.SOURCE_LINE, S.GEOMETRY]


def write_csv(folder: Path, *lines: str, header: str = HEADER, name: str = "signals.csv") -> Path:
    path = folder / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def read_quiet(path: Path, **kwargs: object) -> SignalRead:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeoSegmentWarning)
        return read_signals(path, **kwargs)  # type: ignore[arg-type]


# --- good rows ------------------------------------------------------------------------------------------------------


def test_good_file_contract(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        GOOD,
        "2024-05-01T12:30:00-04:00,web,41.83,-71.42,,V2,",
        "2024-05-02,rsvp,41.84,-71.43,0,,D3",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeoSegmentWarning)
        read = read_signals(path)
    s = read.signals
    assert list(s.columns) == OUTPUT_COLUMNS
    assert s.crs.equals(S.CRS_STORAGE) and isinstance(s.index, pd.RangeIndex)
    S.validate_signals(s)
    assert s[S.TIMESTAMP].dt.tz is not None and str(s[S.TIMESTAMP].dt.tz) == "UTC"
    assert s[S.TIMESTAMP].tolist() == [
        pd.Timestamp("2024-05-01T10:00:00Z"),  # naive means UTC
        pd.Timestamp("2024-05-01T16:30:00Z"),  # offsets are converted
        pd.Timestamp("2024-05-02T00:00:00Z"),
    ]
    assert s[S.KIND].tolist() == ["ping", "web_visit", "rsvp"]
    assert s[S.WEIGHT].tolist() == [1.5, 1.0, 0.0]  # a blank weight takes the default
    assert s[S.VOTER_ID].tolist() == ["V1", "V2", pd.NA]
    assert s[S.DEVICE_ID].tolist() == ["D1", pd.NA, "D3"]
    assert s[S.SOURCE_LINE].tolist() == [2, 3, 4]
    assert s.geometry.x.tolist() == [-71.41, -71.42, -71.43] and s.geometry.y.tolist() == [41.82, 41.83, 41.84]
    assert read.rejects.empty and list(read.rejects.columns) == list(S.REJECT_COLUMNS)
    st_ = read.stage
    assert (st_.name, st_.rows_in, st_.rows_out, st_.rows_rejected) == ("signals", 3, 3, 0)
    assert st_.metrics["duplicates_removed"] == 0 and st_.balanced


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("checkin", "event_checkin"),
        ("Event Check-In", "event_checkin"),
        ("event check-in", "event_checkin"),
        ("CHECK_IN", "event_checkin"),
        ("web", "web_visit"),
        ("Web Visit", "web_visit"),
        ("mobile_ping", "ping"),
        ("Mobile-Ping", "ping"),
        (" RSVP ", "rsvp"),
        ("donation", "donation"),
        ("canvass", "canvass_contact"),
    ],
)
def test_kind_aliases(tmp_path: Path, raw: str, kind: str) -> None:
    path = write_csv(tmp_path, f"2024-05-01T10:00:00,{raw},41.82,-71.41,1,V1,D1")
    assert read_signals(path).signals[S.KIND].tolist() == [kind]


@pytest.mark.parametrize(
    "header",
    [
        "timestamp,kind,latitude,longitude",
        "Timestamp,Kind,Lat,Lon",
        "TIMESTAMP,KIND,LAT,LONG",
        "kind,lng,lat,timestamp",
    ],
)
def test_column_aliases_and_order(tmp_path: Path, header: str) -> None:
    values = {"timestamp": "2024-05-01T10:00:00", "kind": "ping", "lat": "41.82", "lng": "-71.41"}
    canon = {"latitude": "lat", "longitude": "lng", "lon": "lng", "long": "lng"}
    row = ",".join(values[canon.get(c.lower(), c.lower())] for c in header.split(","))
    s = read_signals(write_csv(tmp_path, row, header=header), default_weight=2.5).signals
    assert (s[S.LAT].item(), s[S.LNG].item(), s[S.WEIGHT].item()) == (41.82, -71.41, 2.5)
    assert s[S.VOTER_ID].isna().all() and s[S.DEVICE_ID].isna().all()


def test_extra_columns_are_ignored_and_listed(tmp_path: Path) -> None:
    read = read_signals(write_csv(tmp_path, GOOD + ",x,y", header=HEADER + ",campaign,notes"))
    assert list(read.signals.columns) == OUTPUT_COLUMNS
    assert read.stage.metrics["ignored_columns"] == ["campaign", "notes"]


# --- quarantined rows -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("yesterday,ping,41.82,-71.41,1,V1,D1", "timestamp", "timestamp not ISO 8601"),
        ("2024-13-45T10:00:00,ping,41.82,-71.41,1,V1,D1", "timestamp", "timestamp not ISO 8601"),
        (",ping,41.82,-71.41,1,V1,D1", "timestamp", "timestamp missing"),
        (
            "2024-05-01T10:00:00,teleport,41.82,-71.41,1,V1,D1",
            "kind",
            "unknown kind 'teleport' (expected one of ['ping', 'event_checkin', 'rsvp', 'web_visit', 'donation', "
            "'canvass_contact'] or an alias)",
        ),
        ("2024-05-01T10:00:00,,41.82,-71.41,1,V1,D1", "kind", "kind missing"),
        ("2024-05-01T10:00:00,ping,,,1,V1,D1", "lat", "no coordinates (lat and lng missing)"),
        ("2024-05-01T10:00:00,ping,41.82,,1,V1,D1", "lat", "only one of lat/lng given"),
        ("2024-05-01T10:00:00,ping,NaN,-71.41,1,V1,D1", "lat", "coordinate is NaN or infinite"),
        ("2024-05-01T10:00:00,ping,41.82,inf,1,V1,D1", "lat", "coordinate is NaN or infinite"),
        ("2024-05-01T10:00:00,ping,-Infinity,-71.41,1,V1,D1", "lat", "coordinate is NaN or infinite"),
        ("2024-05-01T10:00:00,ping,north,-71.41,1,V1,D1", "lat", "coordinate is not a number"),
        ("2024-05-01T10:00:00,ping,91.5,-71.41,1,V1,D1", "lat", "coordinates out of range"),
        ("2024-05-01T10:00:00,ping,41.82,-181,1,V1,D1", "lat", "coordinates out of range"),
        ("2024-05-01T10:00:00,ping,0,0,1,V1,D1", "lat", "'Null Island': a failed geocode"),
        ("2024-05-01T10:00:00,ping,0.004,-0.009,1,V1,D1", "lat", "'Null Island': a failed geocode"),
        ("2024-05-01T10:00:00,ping,41.82,-71.41,-1,V1,D1", "weight", "weight is negative"),
        ("2024-05-01T10:00:00,ping,41.82,-71.41,heavy,V1,D1", "weight", "weight is not a number"),
        ("2024-05-01T10:00:00,ping,41.82,-71.41,nan,V1,D1", "weight", "weight is NaN or infinite"),
        ("2024-05-01T10:00:00,ping,41.82,-71.41,inf,V1,D1", "weight", "weight is NaN or infinite"),
        ("2024-05-01T10:00:00,ping,41.82,-71.41", None, "expected 7 fields, found 4"),
    ],
)
def test_bad_row_is_quarantined_with_line_and_reason(tmp_path: Path, row: str, column: str | None,
                                                     reason: str) -> None:
    path = write_csv(tmp_path, GOOD, row, GOOD.replace("V1", "V3"))
    with pytest.warns(GeoSegmentWarning, match=r"1 of 3 signal rows quarantined .*first at line 3"):
        read = read_signals(path)
    assert read.signals[S.SOURCE_LINE].tolist() == [2, 4]
    (rej,) = read.rejects.to_dict("records")
    assert rej[S.REJECT_FILE] == str(path)
    assert rej[S.REJECT_LINE] == 3
    assert rej[S.REJECT_SCOPE] == "row"
    assert (rej[S.REJECT_COLUMN] if rej[S.REJECT_COLUMN] is not pd.NA else None) == column
    assert reason in rej[S.REJECT_REASON]
    assert read.stage.rows_in == 3 and read.stage.rows_rejected == 1 and read.stage.balanced


def test_near_null_island_but_outside_the_box_is_kept(tmp_path: Path) -> None:
    read = read_signals(write_csv(tmp_path, "2024-05-01T10:00:00,ping,0.02,0.0,1,V1,D1"))
    assert len(read.signals) == 1 and read.rejects.empty


def test_every_fault_of_a_row_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, GOOD, "soon,teleport,95,-71.41,-2,V1,D1")
    read = read_quiet(path)
    (rej,) = read.rejects.to_dict("records")
    assert rej[S.REJECT_COLUMN] == "timestamp"
    parts = rej[S.REJECT_REASON].split("; ")
    assert parts[0] == "timestamp not ISO 8601"
    assert parts[1].startswith("unknown kind 'teleport'")
    assert parts[2].startswith("coordinates out of range")
    assert parts[3] == "weight is negative"


# --- duplicates -----------------------------------------------------------------------------------------------------


def test_exact_duplicates_are_removed_and_counted_not_rejected(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        GOOD,  # line 2: kept
        GOOD,  # line 3: duplicate
        GOOD.replace(",1.5,", ",9,"),  # line 4: differs only in weight: a duplicate too
        "2024-05-01T10:00:00Z,PING,41.82,-71.41,1.5,V1,D1",  # line 5: same after parsing
        GOOD.replace("D1", "D2"),  # line 6: another device: kept
        GOOD.replace("41.82", "91"),  # line 7: quarantined
        "2024-05-01T10:00:00,ping,41.82,-71.41,1.5,,",  # line 8: no ids
        "2024-05-01T10:00:00,ping,41.82,-71.41,1.5,,",  # line 9: duplicate of line 8 (null ids are equal)
    )
    read = read_quiet(path)
    assert read.signals[S.SOURCE_LINE].tolist() == [2, 6, 8]
    assert read.signals[S.WEIGHT].tolist() == [1.5, 1.5, 1.5]  # the first occurrence is kept
    assert read.rejects[S.REJECT_LINE].tolist() == [7]
    stage = read.stage
    assert stage.metrics["duplicates_removed"] == 4
    assert (stage.rows_in, stage.rows_out, stage.rows_rejected) == (8, 3, 1)
    assert stage.rows_in == stage.rows_out + stage.rows_rejected + stage.metrics["duplicates_removed"]
    assert stage.rows_dropped == 4 and stage.balanced  # duplicates are dropped with a stated reason


# --- whole-file errors ----------------------------------------------------------------------------------------------


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "2024-05-01T10:00:00,ping,41.82", header="timestamp,kind,lat")
    with pytest.raises(
        MissingColumnsError,
        match=r"signals\.csv, line 1: signals file lacks columns \['lng'\]; expected columns \['timestamp', "
        r"'kind', 'lat or latitude', 'lng or lon or long or longitude'\] \(weight, voter_id, device_id optional\), "
        r"found 3 columns \['timestamp', 'kind', 'lat'\]\. Fix: rename the columns",
    ):
        read_signals(path)


def test_wrong_delimiter_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "2024-05-01T10:00:00;ping;41.82;-71.41", header="timestamp;kind;lat;lng")
    with pytest.raises(
        MissingColumnsError,
        match=r"lacks columns \['timestamp', 'kind', 'lat', 'lng'\]; the header looks semicolon-delimited, "
        r"signals files are comma-separated; .*found 1 columns \['timestamp;kind;lat;lng'\]",
    ):
        read_signals(path)


def test_a_column_given_twice_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "2024-05-01T10:00:00,ping,41.82,41.82,-71.41", header="timestamp,kind,lat,Latitude,lng")
    with pytest.raises(InputFileError, match=r"signals file has several columns for 'lat': \['lat', 'Latitude'\]"):
        read_signals(path)


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match=r"empty\.csv: signals file is empty \(0 bytes\)"):
        read_signals(empty)
    with pytest.raises(InputFileError, match=r"signals file has a header but no data rows"):
        read_signals(write_csv(tmp_path, name="header.csv"))
    with pytest.raises(InputFileError, match=r"nope\.csv: signals file not found"):
        read_signals(tmp_path / "nope.csv")


def test_projected_coordinates_are_an_error(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "2024-05-01T10:00:00,ping,4630355.16,300609.93,1,V1,D1",
        "2024-05-01T11:00:00,ping,4630455.16,300709.93,1,V1,D1",
        GOOD,
    )
    with pytest.raises(ProjectedCoordinatesError, match=r"values look projected.*pass --crs EPSG:xxxx"):
        read_signals(path)
    # with the CRS named, lng is read as x and lat as y, reprojected with always_xy
    s = read_signals(write_csv(tmp_path, "2024-05-01T10:00:00,ping,4630355.16,300609.93,1,V1,D1", name="utm.csv"),
                     crs="EPSG:32619").signals
    assert s[S.LNG].item() == pytest.approx(-71.4, abs=1e-7)
    assert s[S.LAT].item() == pytest.approx(41.8, abs=1e-7)


def test_projected_file_with_crs_still_quarantines_bad_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "2024-05-01T10:00:00,ping,4630355.16,300609.93,1,V1,D1",
        "2024-05-01T10:00:00,ping,north,300609.93,1,V1,D2",
        "2024-05-01T10:00:00,ping,,,1,V1,D3",
    )
    read = read_quiet(path, crs="EPSG:32619")
    assert read.signals[S.SOURCE_LINE].tolist() == [2]
    assert read.rejects[S.REJECT_REASON].tolist() == ["coordinate is not a number",
                                                      "no coordinates (lat and lng missing)"]


def test_swapped_coordinates_are_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "2024-05-01T10:00:00,ping,-122.4,37.8,1,V1,D1")
    with pytest.raises(InputFileError,
                       match=r"signals\.csv, line 2, column 'lat': signals file latitude and longitude look swapped"):
        read_signals(path)


def test_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + "\n" + GOOD.replace("V1", "Zoë") + "\n").encode("latin-1"))
    with pytest.raises(EncodingError, match=r"--encoding latin-1"):
        read_signals(path)
    assert read_signals(path, encoding="latin-1").signals[S.VOTER_ID].tolist() == ["Zoë"]


def test_bad_default_weight() -> None:
    with pytest.raises(ValueError, match=r"default_weight must be a finite number >= 0"):
        read_signals("x.csv", default_weight=-1)


# --- Parquet --------------------------------------------------------------------------------------------------------


def test_parquet_input(tmp_path: Path) -> None:
    path = tmp_path / "signals.parquet"
    pd.DataFrame(
        {
            "Timestamp": pd.to_datetime(["2024-05-01 10:00", "2024-05-01 11:00", "2024-05-01 12:00"]),
            "kind": ["checkin", "web", "ping"],
            "latitude": [41.82, np.nan, 0.0],
            "longitude": [-71.41, -71.4, 0.0],
            "voter_id": [101, 102, 103],
        }
    ).to_parquet(path)
    read = read_quiet(path)
    s = read.signals
    assert s[S.TIMESTAMP].tolist() == [pd.Timestamp("2024-05-01T10:00:00Z")]
    assert s[S.KIND].tolist() == ["event_checkin"] and s[S.VOTER_ID].tolist() == ["101"]
    assert s[S.SOURCE_LINE].tolist() == [1]  # the row number in a Parquet file
    assert read.rejects[S.REJECT_LINE].tolist() == [2, 3]
    assert read.rejects[S.REJECT_REASON].tolist()[1].endswith("a failed geocode")
    S.validate_signals(s)


# --- property: every row is accounted for ---------------------------------------------------------------------------

ROWS = {
    "good": "2024-05-01T10:{m:02d}:00,ping,41.82,-71.41,1,V{i},D1",
    "dup": GOOD,  # the same row every time: all but the first are duplicates
    "bad_ts": "not-a-date,ping,41.82,-71.41,1,V{i},D1",
    "bad_kind": "2024-05-01T10:00:00,teleport,41.82,-71.41,1,V{i},D1",
    "lat_nan": "2024-05-01T10:00:00,ping,nan,-71.41,1,V{i},D1",
    "lng_inf": "2024-05-01T10:00:00,ping,41.82,-inf,1,V{i},D1",
    "lng_range": "2024-05-01T10:00:00,ping,41.82,-200,1,V{i},D1",
    "null_island": "2024-05-01T10:00:00,ping,0.0,0.0,1,V{i},D1",
    "missing": "2024-05-01T10:00:00,ping,,,1,V{i},D1",
    "neg_weight": "2024-05-01T10:00:00,ping,41.82,-71.41,-3,V{i},D1",
    "short": "2024-05-01T10:00:00,ping,41.82",
    "long": GOOD + ",extra",
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(ROWS)), min_size=1, max_size=40))
def test_every_row_is_accounted_for(kinds: list[str]) -> None:
    lines = [ROWS[k].format(i=i, m=i % 60) for i, k in enumerate(kinds)]
    with tempfile.TemporaryDirectory() as folder:
        path = write_csv(Path(folder), *lines)
        read = read_quiet(path)
    stage = read.stage
    n_dup = stage.metrics["duplicates_removed"]
    assert stage.rows_in == len(kinds)
    assert stage.rows_in == len(read.signals) + len(read.rejects) + n_dup
    assert stage.rows_rejected == len(read.rejects)
    bad = {i + 2 for i, k in enumerate(kinds) if k not in ("good", "dup")}
    assert set(read.rejects[S.REJECT_LINE].tolist()) == bad and read.rejects[S.REJECT_LINE].is_unique
    assert n_dup == max(kinds.count("dup") - 1, 0)
    kept = {i + 2 for i, k in enumerate(kinds) if k == "good"} | (
        {kinds.index("dup") + 2} if "dup" in kinds else set()
    )
    assert set(read.signals[S.SOURCE_LINE].tolist()) == kept
