"""Delimited reading: physical line numbers, strict encodings, whole-file errors (bad inputs 1, 2, 26)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_segment import schema as S
from geo_segment.errors import EncodingError, InputFileError, MissingColumnsError
from geo_segment.io.delimited import read_delimited


def _write(tmp_path: Path, data: bytes, name: str = "f.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_bad_field_counts_are_quarantined_with_physical_line(tmp_path: Path) -> None:
    # line 1 header, 2 ok, 3 too few, 4 too many, 5 ok, 6 empty
    p = _write(tmp_path, b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n\n")
    r = read_delimited(p, delimiter=",", header=True, required=["a", "b"])
    assert r.table[S.SOURCE_LINE].tolist() == [2, 5]
    assert r.table["a"].tolist() == ["1", "10"]
    assert r.rejects[S.REJECT_LINE].tolist() == [3, 4, 6]
    assert r.rejects[S.REJECT_REASON].tolist() == [
        "expected 3 fields, found 2", "expected 3 fields, found 4", "empty row (no values)"]
    assert r.rows_in == 5 == len(r.table) + len(r.rejects)


def test_blank_line_inside_is_a_row_reject(tmp_path: Path) -> None:
    p = _write(tmp_path, b"a,b\n1,2\n\n3,4\n")
    r = read_delimited(p, delimiter=",", header=True)
    assert r.table[S.SOURCE_LINE].tolist() == [2, 4]
    assert r.rejects[[S.REJECT_LINE, S.REJECT_REASON]].values.tolist() == [[3, "empty row (no values)"]]


def test_bom_is_accepted_and_last_line_without_newline_counts(tmp_path: Path) -> None:
    p = _write(tmp_path, b"\xef\xbb\xbfa,b\n1,2\n3,4")
    r = read_delimited(p, delimiter=",", header=True, required=["a", "b"])
    assert r.header == ["a", "b"]
    assert r.table[S.SOURCE_LINE].tolist() == [2, 3]


def test_latin1_bytes_stop_with_offset_and_fix(tmp_path: Path) -> None:
    p = _write(tmp_path, "a,b\nJos\xe9,1\n".encode("latin-1"))
    with pytest.raises(EncodingError) as info:
        read_delimited(p, delimiter=",", header=True)
    assert str(info.value) == (
        f"{p}, line 2: byte 0xe9 at byte offset 7 is not valid utf-8; expected utf-8 text (a UTF-8 byte-order mark "
        "is accepted), found bytes of another encoding (often latin-1 or cp1252). Fix: pass --encoding latin-1 "
        "(or cp1252) if that is how the file was written"
    )


def test_declared_latin1_reads_names_exactly(tmp_path: Path) -> None:
    p = _write(tmp_path, "a,b\nJos\xe9,1\n".encode("latin-1"))
    r = read_delimited(p, delimiter=",", header=True, encoding="latin-1")
    assert r.table["a"].tolist() == ["José"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"voter file is empty \(0 bytes\); expected a header line and at least one row"),
        (b"a,b,c\n", r"voter file has a header but no data rows"),
        (b"a;b;c\n1;2;3\n", r"voter file header has one column with the comma delimiter; the header looks "
                            r"semicolon-delimited"),
        (b"a,b\n1,2\n", r"line 1: voter file lacks columns \['c'\]; expected columns \['a', 'b', 'c'\], "
                        r"found 2 columns \['a', 'b'\]"),
    ],
    ids=["empty", "header-only", "wrong-delimiter", "missing-column"],
)
def test_whole_file_problems_stop_with_clear_message(tmp_path: Path, data: bytes, message: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(InputFileError, match=message):
        read_delimited(p, delimiter=",", header=True, required=["a", "b", "c"], what="voter file")


def test_missing_columns_error_is_specific(tmp_path: Path) -> None:
    p = _write(tmp_path, b"a,b\n1,2\n")
    with pytest.raises(MissingColumnsError):
        read_delimited(p, delimiter=",", header=True, required=["a", "zz"])


def test_headerless_with_wrong_field_count_on_line_one(tmp_path: Path) -> None:
    p = _write(tmp_path, b"1\t2\n")
    with pytest.raises(InputFileError, match=r"line 1 has 2 tab-separated fields; expected 3 fields per line"):
        read_delimited(p, delimiter="\t", header=False, columns=["x", "y", "z"], what="voter file")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["ok", "short", "long", "blank"]), min_size=1, max_size=40))
def test_every_line_is_a_row_or_a_reject(tmp_path: Path, kinds: list[str]) -> None:
    body = {"ok": "1,2,3", "short": "1,2", "long": "1,2,3,4", "blank": ""}
    lines = ["a,b,c"] + [body[k] for k in kinds]
    p = _write(tmp_path, ("\n".join(lines) + "\n").encode(), "prop.csv")
    r = read_delimited(p, delimiter=",", header=True)
    assert r.rows_in == len(kinds) == len(r.table) + len(r.rejects)
    got = sorted(r.table[S.SOURCE_LINE].tolist() + r.rejects[S.REJECT_LINE].tolist())
    assert got == list(range(2, len(kinds) + 2))
    assert r.table[S.SOURCE_LINE].tolist() == [i + 2 for i, k in enumerate(kinds) if k == "ok"]


def test_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    from geo_segment.errors import ConfigError

    p = _write(tmp_path, b"a\n1\n")
    with pytest.raises(ConfigError, match="unknown text encoding 'latin-9000'"):
        read_delimited(p, delimiter=",", header=True, encoding="latin-9000")


_COORDS = ("voter_id,latitude,longitude,match_score\n"
           "A,41.8,-71.4,99\nB,,,0\nC,nan,-71.4,7\nD,41.8,,5\nE,0,0,1\nF,inf,-71,2\nG,-1e1,1.5e2,3\n")


@pytest.mark.parametrize("extra", ["", "H, 41.8 ,-71.4,4\n", "H,north,-71.4,4\n"],
                         ids=["all numbers", "blanks around a number", "a word"])
def test_float_columns_read_as_the_text_would_be(tmp_path: Path, extra: str) -> None:
    """``floats`` changes the speed, never the coordinates or the reasons: numbers parse as Arrow floats (an
    empty field null, apart from ``nan``; Arrow, like pandas, reads a number with blanks around it); one value
    that is no number reads the columns as text."""
    from geo_segment.io.coords import PROBLEMS, coordinate_codes

    p = _write(tmp_path, (_COORDS + extra).encode())
    as_text = read_delimited(p, delimiter=",", header=True)
    as_floats = read_delimited(p, delimiter=",", header=True, floats=["latitude", "longitude"])
    assert (str(as_floats.table["latitude"].dtype) == "double[pyarrow]") == ("north" not in extra)
    assert as_floats.table["match_score"].tolist() == as_text.table["match_score"].tolist()  # others stay text
    lat_t, lng_t, codes_t = coordinate_codes(as_text.table["latitude"], as_text.table["longitude"])
    lat_f, lng_f, codes_f = coordinate_codes(as_floats.table["latitude"], as_floats.table["longitude"])
    assert codes_f.tolist() == codes_t.tolist()
    assert [("", *PROBLEMS)[c] for c in codes_f[:7]] == [
        "", "", "coordinate is NaN or infinite", "only one of lat/lng given",
        "coordinates at (0, 0) 'Null Island': a failed geocode", "coordinate is NaN or infinite", ""]
    for a, b in ((lat_t, lat_f), (lng_t, lng_f)):
        assert a.tobytes() == b.tobytes()  # bit for bit, NaN included


@pytest.mark.parametrize("late", [False, True], ids=["scan beside the parse", "late scan"])
@pytest.mark.parametrize("column", ["a", "b", "c"], ids=["kept", "kept dictionary", "not kept"])
def test_a_bad_byte_in_any_column_is_an_encoding_error(tmp_path: Path, late: bool, column: str) -> None:
    """``late_scan`` moves the whole-file scan after the parse, never past the caller's :meth:`confirm`: a bad byte
    in any column, kept or not, still stops the read with its offset and line."""
    rows = [b"a,b,c", b"1,x,y", b"2,x,y", b"3,x,y"]
    cells = rows[2].split(b",")
    cells["abc".index(column)] = b"M\xe9LLER"
    rows[2] = b",".join(cells)
    p = _write(tmp_path, b"\n".join(rows) + b"\n")
    offset = len(b"a,b,c\n1,x,y\n") + len(b",".join(cells[: "abc".index(column)])) + (1 if column != "a" else 0) + 1
    with pytest.raises(EncodingError, match=f"byte 0xe9 at byte offset {offset} is not valid utf-8") as err:
        read = read_delimited(p, delimiter=",", header=True, usecols=["a", "b"], dictionary=["b"], late_scan=late)
        assert late and column == "c"  # only a bad byte in a column Arrow does not keep gets this far
        read.confirm()
    assert err.value.where is not None and err.value.where.line == 3


def test_late_scan_counts_the_lines_the_parse_accounted_for(tmp_path: Path) -> None:
    p = _write(tmp_path, b"a,b\n1,2\n3\n\n4,5\n6,7")  # a short row, an empty line, no newline at the end
    late = read_delimited(p, delimiter=",", header=True, late_scan=True)
    eager = read_delimited(p, delimiter=",", header=True)
    late.confirm()
    assert late.n_lines == 6 and late.rows_in == eager.rows_in == 5
    assert late.table[S.SOURCE_LINE].tolist() == eager.table[S.SOURCE_LINE].tolist() == [2, 5, 6]
    assert late.rejects.equals(eager.rejects)
