"""Voter-file ingest on hand-drawn files: rows in = voters + rejects, and each bad input's documented handling."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from geo_segment import schema as S
from geo_segment.errors import (
    ConfigError,
    DuplicateVoterError,
    EncodingError,
    InputFileError,
    MissingColumnsError,
    ProjectedCoordinatesError,
)
from geo_segment.io.voters import classify_election, read_voter_file

from .conftest import nc_voter

TODAY = date(2026, 11, 27)


def _rejects(read, file: Path) -> list[tuple[int, str, str | None, str]]:  # type: ignore[no-untyped-def]
    r = read.rejects[read.rejects[S.REJECT_FILE] == str(file)]
    return [(int(a), b, None if pd.isna(c) else c, d) for a, b, c, d in
            r[[S.REJECT_LINE, S.REJECT_SCOPE, S.REJECT_COLUMN, S.REJECT_REASON]].itertuples(index=False)]


def test_nc_file_with_history_and_geocodes(write_layout_file: Callable[..., Path], tmp_path: Path) -> None:
    v = write_layout_file("ncvoter.txt", "nc", [
        nc_voter("AA1", last_name="O'BRIEN", first_name="JOSÉ", res_street_address="12 N MAIN ST APT 4"),
        nc_voter("AA2", first_name="ZOË", res_street_address="12 N MAIN ST APT 10"),
        nc_voter("AA3", res_street_address="7 ELM ST", zip_code="2906"),
    ])
    h = write_layout_file("ncvhis.txt", "nc", [
        {"ncid": "AA1", "election_lbl": "11/08/2022", "election_desc": "11/08/2022 GENERAL",
         "voting_method": "ABSENTEE ONESTOP"},
        {"ncid": "AA1", "election_lbl": "03/03/2020", "election_desc": "03/03/2020 PRIMARY",
         "voting_method": "IN-PERSON", "voted_party_cd": "DEM"},
        {"ncid": "AA3", "election_lbl": "11/03/2020", "election_desc": "11/03/2020 GENERAL",
         "voting_method": "ABSENTEE BY MAIL"},
    ], history=True)
    g = tmp_path / "geocodes.csv"
    g.write_text("voter_id,latitude,longitude,match_score\nAA1,41.82,-71.41,98\nAA2,41.82,-71.41,98\n")
    read = read_voter_file(v, layout="nc", history=h, geocodes=g, today=TODAY)
    voters = read.voters
    assert voters[S.VOTER_ID].tolist() == ["AA1", "AA2", "AA3"]
    assert voters[S.FIRST_NAME].tolist() == ["JOSÉ", "ZOË", "ALEX"]
    assert voters[S.LAST_NAME].iloc[0] == "O'BRIEN"
    assert voters[S.ZIP5].tolist() == ["02903", "02903", "02906"]
    assert voters[S.GEOCODED].tolist() == [True, True, False]
    assert voters.geometry.is_empty.tolist() == [False, False, True] or voters.geometry.isna().tolist()[2]
    assert voters[S.BUILDING_ID].iloc[0] == voters[S.BUILDING_ID].iloc[1]
    assert voters[S.HOUSEHOLD_ID].nunique() == 3
    assert voters.crs.to_epsg() == 4326
    hist = read.history
    assert hist[[S.VOTER_ID, S.ELECTION_TYPE, S.VOTE_METHOD, S.BALLOT_PARTY]].values.tolist() == [
        ["AA1", "general", "early", ""], ["AA1", "primary", "polls", "DEM"], ["AA3", "general", "mail", ""]]
    assert str(hist[S.ELECTION_DATE].dtype).startswith("datetime64")
    S.validate_history(hist)
    names = [s.name for s in read.stages]
    assert names == ["voters", "geocodes", "history"]
    assert all(s.balanced for s in read.stages)


def test_bad_rows_quarantined_and_bad_fields_nulled(write_layout_file: Callable[..., Path]) -> None:
    """Bad inputs 1 (field counts) and 27 (dates): the row goes, or only the field goes."""
    v = write_layout_file("v.txt", "nc", [
        nc_voter("AA1"),
        '"only"\t"three"\t"fields"',
        nc_voter("AA2", registr_dt="02/30/2019"),
        nc_voter("AA3", birth_year="2090"),
        nc_voter("AA4", registr_dt="2019-01-01"),
        nc_voter("", last_name="NOID"),
    ])
    read = read_voter_file(v, layout="nc", today=TODAY)
    assert read.voters[S.VOTER_ID].tolist() == ["AA1", "AA2", "AA3", "AA4"]
    assert _rejects(read, v) == [
        (3, "row", None, "expected 67 fields, found 3"),
        (7, "row", "voter_id", "missing voter id"),
        (5, "field", "birth_year", "birth year outside 1880..2026 (in the future or impossible)"),
        (4, "field", "registration_date", "registration date is not a valid date in format %m/%d/%Y"),
        (6, "field", "registration_date", "registration date is not a valid date in format %m/%d/%Y"),
    ]
    assert read.voters[S.REGISTRATION_DATE].isna().tolist() == [False, True, False, True]
    assert read.voters[S.BIRTH_YEAR].isna().tolist() == [False, False, True, False]
    stage = read.stages[0]
    assert (stage.rows_in, stage.rows_out, stage.rows_rejected) == (6, 4, 2)
    assert stage.metrics["field_rejects"] == 3


def test_row_without_id_leaves_the_other_voters_their_own_addresses(
        write_layout_file: Callable[..., Path]) -> None:
    """A quarantined row before the others must not shift the parsed addresses onto the wrong voters."""
    v = write_layout_file("v.txt", "nc", [
        nc_voter("", res_street_address="1 GONE ST"),
        nc_voter("AA1", res_street_address="12 N MAIN ST APT 4"),
        nc_voter("AA2", res_street_address=""),
        nc_voter("AA3", res_street_address="7 ELM ST"),
    ])
    voters = read_voter_file(v, layout="nc", today=TODAY).voters
    assert voters[S.VOTER_ID].tolist() == ["AA1", "AA2", "AA3"]
    assert voters[S.ADDRESS].tolist()[0::2] == ["12 N MAIN ST UNIT 4", "7 ELM ST"]
    assert voters[S.UNIT].tolist()[0::2] == ["4", ""]
    assert voters[[S.ADDRESS, S.HOUSEHOLD_ID, S.BUILDING_ID]].iloc[1].isna().all()
    assert voters[S.HOUSEHOLD_ID].iloc[[0, 2]].notna().all()


def test_duplicate_ids_stop_by_default(write_layout_file: Callable[..., Path]) -> None:
    """Bad input 12."""
    v = write_layout_file("v.txt", "nc", [nc_voter("AA1"), nc_voter("AA2"), nc_voter("AA1")])
    with pytest.raises(DuplicateVoterError) as info:
        read_voter_file(v, layout="nc", today=TODAY)
    assert str(info.value) == (
        f"{v}, line 2, column 'ncid': voter file has 1 voter ids on more than one row (2 rows); expected each "
        "voter id once, found repeats on lines [2, 4]. Fix: pass --duplicates keep-latest to keep the latest "
        "registration and quarantine the rest"
    )


def test_duplicates_keep_latest_registration(write_layout_file: Callable[..., Path]) -> None:
    v = write_layout_file("v.txt", "nc", [
        nc_voter("AA1", registr_dt="01/01/2010", res_street_address="1 OLD ST"),
        nc_voter("AA2"),
        nc_voter("AA1", registr_dt="01/01/2020", res_street_address="2 NEW ST"),
        nc_voter("AA1", registr_dt="01/01/2015", res_street_address="3 MID ST"),
    ])
    read = read_voter_file(v, layout="nc", duplicates="keep-latest", today=TODAY)
    kept = read.voters.set_index(S.VOTER_ID)
    assert kept.loc["AA1", S.ADDRESS] == "2 NEW ST"
    assert sorted(line for line, *_ in _rejects(read, v)) == [2, 5]
    assert read.stages[0].balanced and read.stages[0].metrics["duplicates_quarantined"] == 2


def test_latin1_file_stops_then_reads_with_encoding(write_layout_file: Callable[..., Path]) -> None:
    """Bad input 2: never replace bytes; name the offset; read exactly with --encoding."""
    v = write_layout_file("v.txt", "nc", [nc_voter("AA1", first_name="JOSÉ")], encoding="latin-1")
    with pytest.raises(EncodingError, match=r"line 2: byte 0xc9 at byte offset \d+ is not valid utf-8"):
        read_voter_file(v, layout="nc", today=TODAY)
    read = read_voter_file(v, layout="nc", encoding="latin-1", today=TODAY)
    assert read.voters[S.FIRST_NAME].tolist() == ["JOSÉ"]


def test_missing_column_names_what_was_found(write_layout_file: Callable[..., Path], tmp_path: Path) -> None:
    """Bad input 26."""
    p = tmp_path / "v.txt"
    p.write_text("ncid\tlast_name\nAA1\tDOE\n")
    with pytest.raises(MissingColumnsError, match=r"voter file lacks columns \['first_name', 'middle_name'.*found 2 "
                                                  r"columns \['ncid', 'last_name'\]"):
        read_voter_file(p, layout="nc", today=TODAY)


MAPPING = """
name = "vendor"
delimiter = ","
header = true
[fields]
voter_id = "VAN_ID"
last_name = "LAST"
address = ["ADDR", "UNIT"]
zip = "ZIP"
lat = "LAT"
lng = "LON"
birth_date = "DOB"
[formats]
birth_date = "%Y-%m-%d"
"""


def _vendor(tmp_path: Path, rows: list[str]) -> tuple[Path, Path]:
    m = tmp_path / "vendor.toml"
    m.write_text(MAPPING)
    f = tmp_path / "vendor.csv"
    f.write_text("VAN_ID,LAST,ADDR,UNIT,ZIP,LAT,LON,DOB\n" + "\n".join(rows) + "\n")
    return f, m


def test_mapping_with_coordinates_quarantines_bad_values(tmp_path: Path) -> None:
    """Bad inputs 5 and 6: out of range, NaN, inf and Null Island lose their coordinates; voters stay."""
    f, m = _vendor(tmp_path, [
        "1,A,10 HOPE ST,,02906,41.83,-71.40,1970-05-01",
        "2,B,11 HOPE ST,,02906,95.0,-71.40,1970-02-30",
        "3,C,12 HOPE ST,,02906,nan,-71.40,",
        "4,D,13 HOPE ST,,02906,41.83,inf,",
        "5,E,14 HOPE ST,APT 2,02906,0.0,0.0,",
        "6,F,15 HOPE ST,,02906,,,",
        "7,G,16 HOPE ST,,02906,abc,-71.4,",
    ])
    read = read_voter_file(f, layout=m, today=TODAY)
    assert read.voters[S.GEOCODED].tolist() == [True, False, False, False, False, False, False]
    assert len(read.voters) == 7
    got = {(line, reason) for line, scope, _col, reason in _rejects(read, f) if scope == "field"}
    assert got == {
        (3, "coordinates out of range (lat in [-90, 90], lng in [-180, 180])"),
        (3, "birth date is not a valid date in format %Y-%m-%d"),
        (4, "coordinate is NaN or infinite"),
        (5, "coordinate is NaN or infinite"),
        (6, "coordinates at (0, 0) 'Null Island': a failed geocode"),
        (8, "coordinate is not a number"),
    }
    assert read.voters.loc[4, S.UNIT] == "2"


def test_projected_coordinates_stop(tmp_path: Path) -> None:
    """Bad input 7."""
    f, m = _vendor(tmp_path, ["1,A,10 HOPE ST,,02906,4636000.5,299000.25,", "2,B,11 HOPE ST,,02906,4636100,299100,"])
    with pytest.raises(ProjectedCoordinatesError, match=r"values look projected.*pass --crs EPSG:xxxx"):
        read_voter_file(f, layout=m, today=TODAY)


def test_unknown_layout_and_bad_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown layout 'tx'; expected one of \['nc', 'oh', 'fl', 'mi', 'pa'\]"):
        read_voter_file(tmp_path / "x.txt", layout="tx")
    m = tmp_path / "m.toml"
    m.write_text('[fields]\nvoter_id = "ID"\nshoe_size = "S"\n')
    with pytest.raises(ConfigError, match=r"unknown \[fields\] keys \['shoe_size'\]"):
        read_voter_file(tmp_path / "x.txt", layout=m)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("11/08/2022 GENERAL", "general"), ("03/05/2024 PRIMARY", "primary"),
     ("03/17/2020 PRESIDENTIAL PREFERENCE PRIMARY", "presidential_primary"), ("SECOND PRIMARY", "runoff"),
     ("09/12/2023 SPECIAL GENERAL", "special"), ("MUNICIPAL BOND", "other"), (None, "other")],
)
def test_classify_election(text: str | None, kind: str) -> None:
    assert classify_election(pd.Series([text], dtype="str")).iloc[0] == kind


def test_geocodes_join_by_normalized_address(write_layout_file: Callable[..., Path], tmp_path: Path) -> None:
    v = write_layout_file("v.txt", "nc", [
        nc_voter("AA1", res_street_address="12 N MAIN ST APT 4"),
        nc_voter("AA2", res_street_address="12 N MAIN ST APT 10"),
        nc_voter("AA3", res_street_address="7 ELM ST"),
        nc_voter("AA4", res_street_address="9 ELM ST"),
    ])
    g = tmp_path / "geo.csv"
    g.write_text("address,zip,lat,lon\n12 North Main Street,02903,41.8,-71.4\n7 Elm St.,2903,41.7,-71.3\n"
                 "99 NOWHERE RD,02903,41.0,-71.0\n7 ELM ST,02903,41.6,-71.2\n")
    read = read_voter_file(v, layout="nc", geocodes=g, today=TODAY)
    assert read.voters[S.LAT].tolist()[:3] == [41.8, 41.8, 41.7]
    assert read.voters[S.GEOCODED].tolist() == [True, True, True, False]
    assert _rejects(read, g) == [(4, "row", None, "address not in the voter file"),
                                 (5, "row", None, "repeated address: the first geocode is used")]
    assert read.stages[1].metrics == {"joined_by": "address", "voters_matched": 3}


@pytest.mark.parametrize("swapped_rows", [3, 2])
def test_bad_input_row_4_swapped_geocodes_stop_unless_few(write_layout_file: Callable[..., Path], tmp_path: Path,
                                                        swapped_rows: int) -> None:
    """Row 4: a majority of |lat| > 90 with |lng| <= 90 stops with the fix; a few such rows are quarantined."""
    v = write_layout_file("v.txt", "nc", [nc_voter(f"AA{i}") for i in range(1, 5)])
    rows = [f"AA{i},-122.40{i},37.7{i}" for i in range(1, swapped_rows + 1)]  # San Francisco, swapped
    rows += [f"AA{i},37.7{i},-122.40{i}" for i in range(swapped_rows + 1, 5)]
    g = tmp_path / "geo.csv"
    g.write_text("voter_id,latitude,longitude\n" + "\n".join(rows) + "\n")
    if swapped_rows * 2 > 4:
        with pytest.raises(InputFileError, match=r"geocodes file latitude and longitude look swapped; expected "
                                                   r"latitude within \[-90, 90\], found 3 of 4 rows"):
            read_voter_file(v, layout="nc", geocodes=g, today=TODAY)
        return
    read = read_voter_file(v, layout="nc", geocodes=g, today=TODAY)
    assert read.voters[S.GEOCODED].tolist() == [False, False, True, True]
    assert [r[3] for r in _rejects(read, g)] == ["coordinates out of range (lat in [-90, 90], lng in [-180, 180])"] * 2
