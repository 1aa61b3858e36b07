"""Fuzzing the readers: whatever the bytes, only the project's own errors (with a message) escape.

10,000 examples in all, run by CI: 5,000 random byte strings and 3,000 CSV-shaped texts through the
delimited reader that both the voter-file and the signal readers parse with (encoding, quoting, field counts,
line numbers), then 1,000 CSV-shaped voter files through ``read_voter_file`` and 1,000 signal files through
``read_signals``, end to end. Examples are derandomized, so a failure reproduces.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_segment.errors import GeoSegmentError
from geo_segment.io.delimited import read_delimited
from geo_segment.io.signals import read_signals
from geo_segment.io.voters import read_voter_file
from geo_segment.layouts import load_layout

pytestmark = pytest.mark.slow
def fuzz(n: int) -> settings:
    """Hypothesis settings of a fuzz test: ``n`` examples (times ``GEO_SEGMENT_FUZZ_SCALE``, default 1, for a deeper
    run), derandomized, no deadline."""
    scale = float(os.environ.get("GEO_SEGMENT_FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, round(n * scale)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DIR = Path(tempfile.mkdtemp(prefix="geo_segment_fuzz_"))

_NC = load_layout("nc")
_NC_HEADER = open(Path(__file__).resolve().parents[1] / "sample_data" / "nc" / "ncvoter.txt",
                  encoding="utf-8").readline().rstrip("\n")
_NC_ROW = open(Path(__file__).resolve().parents[1] / "sample_data" / "nc" / "ncvoter.txt",
               encoding="utf-8").readlines()[1].rstrip("\n").split("\t")

#: pieces that break naive readers: quotes, delimiters, line breaks, BOMs, NULs, surrogates' bytes, formulas
_TRICKY = ["\"", "\t", ",", "\n", "\r", "\r\n", "\ufeff", "\x00", "é", "\u2028", "=SUM(A1)", "1e999", "nan",
           "-91", "181", "0", "", "13/45/2020", "2020-02-30", "  ", "\\", "'", "NULL"]
field = st.one_of(st.sampled_from(_TRICKY), st.text(max_size=12), st.from_regex(r"-?\d{1,3}\.\d{1,8}", fullmatch=True))


def _check(call: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()  # type: ignore[operator]
        except GeoSegmentError as exc:
            assert str(exc).strip(), "a project error without a message"


def _write(name: str, data: bytes) -> Path:
    path = DIR / name
    path.write_bytes(data)
    return path


@fuzz(5000)
@given(data=st.binary(max_size=400), header=st.booleans(), delimiter=st.sampled_from([",", "\t", "|"]))
def test_delimited_reader_on_random_bytes(data: bytes, header: bool, delimiter: str) -> None:
    path = _write("bytes.txt", data)
    _check(lambda: read_delimited(path, delimiter=delimiter, header=header, columns=None if header else ["a", "b"]))


@fuzz(3000)
@given(rows=st.lists(st.lists(field, min_size=0, max_size=5), max_size=6), encoding=st.sampled_from(
    ["utf-8", "latin-1"]), required=st.sampled_from([(), ("a",), ("a", "zz")]))
def test_delimited_reader_on_csv_shaped_text(rows: list[list[str]], encoding: str,
                                             required: tuple[str, ...]) -> None:
    text = "a,b,c\n" + "\n".join(",".join(r) for r in rows)
    path = _write("shaped.csv", text.encode("utf-8", "surrogatepass"))
    _check(lambda: read_delimited(path, delimiter=",", header=True, required=required, encoding=encoding))


@fuzz(500)  # a whole voter-file read per example (about 70 ms): 500 keep the suite's time; scale up for depth
@given(rows=st.lists(st.tuples(st.integers(0, len(_NC_ROW) - 1), field, st.integers(-2, 2)), max_size=4),
       header_cut=st.integers(0, 3))
def test_voter_file_reader_on_mutated_rows(rows: list[tuple[int, str, int]], header_cut: int) -> None:
    """Real NC rows with one field replaced by something tricky and fields added or removed."""
    lines = ["\t".join(_NC_HEADER.split("\t")[: len(_NC_ROW) - header_cut] if header_cut else _NC_HEADER.split(
        "\t"))]
    for i, (col, value, extra) in enumerate(rows):
        fields = [f'"{v.strip(chr(34))}"' for v in _NC_ROW]
        fields[3] = f'"ZZ{i:06d}"'  # distinct voter ids
        fields[col] = value
        fields = fields[: len(fields) + extra] if extra < 0 else fields + ['""'] * extra
        lines.append("\t".join(fields))
    path = _write("ncvoter.txt", ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    _check(lambda: read_voter_file(path, layout=_NC))


@fuzz(1000)
@given(rows=st.lists(st.tuples(field, field, field, field, field), max_size=5),
       header=st.sampled_from(["timestamp,kind,lat,lng,weight", "timestamp,kind,lat,lng", "ts,type,y,x",
                               "timestamp,kind,lat,lng,weight,voter_id"]))
def test_signal_reader_on_csv_shaped_text(rows: list[tuple[str, ...]], header: str) -> None:
    text = header + "\n" + "\n".join(",".join(r) for r in rows)
    path = _write("signals.csv", text.encode("utf-8", "surrogatepass"))
    _check(lambda: read_signals(path))
