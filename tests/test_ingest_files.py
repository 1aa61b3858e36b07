"""The ingest stage's files written with overlap (``ingest_files``) and the readers' side threads: same bytes as the
step-by-step path, errors in the order the files are read, and the fast parsers agreeing with pandas."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_segment._vector import factorize_str, per_distinct, plain_text
from geo_segment.errors import DuplicateVoterError, MissingColumnsError
from geo_segment.io.atomic import write_parquet
from geo_segment.io.coords import to_float64
from geo_segment.io.ingest import ingest_files
from geo_segment.io.signals import read_signals
from geo_segment.io.voters import read_voter_file

from .conftest import nc_voter

_HIST = [
    {"ncid": "AA1", "election_lbl": "11/08/2022", "election_desc": "11/08/2022 GENERAL",
     "voting_method": "ABSENTEE ONESTOP"},
    {"ncid": "AA1", "election_lbl": "03/03/2020", "election_desc": "03/03/2020 PRIMARY",
     "voting_method": "IN-PERSON", "voted_party_cd": "DEM"},
    {"ncid": "ZZ9", "election_lbl": "11/03/2020", "election_desc": "11/03/2020 GENERAL",
     "voting_method": "ABSENTEE BY MAIL"},  # not in the voter file: quarantined
    {"ncid": "AA3", "election_lbl": "02/30/2020", "election_desc": "BAD DATE", "voting_method": "IN-PERSON"},
]


def _inputs(write_layout_file: Callable[..., Path], tmp_path: Path, *, duplicate: bool = False) -> dict[str, Path]:
    voters = [nc_voter("AA1", res_street_address="12 N MAIN ST APT 4"), nc_voter("AA2", birth_year="2999"),
              nc_voter("AA3", res_street_address="7 ELM ST", zip_code="2906"), "too\tfew"]
    if duplicate:
        voters.append(nc_voter("AA2"))
    g = tmp_path / "geocodes.csv"
    g.write_text("voter_id,latitude,longitude\nAA1,41.82,-71.41\nAA2,0,0\nAA9,41.8,-71.4\n")
    s = tmp_path / "signals.csv"
    s.write_text("timestamp,kind,lat,lng,weight\n2024-05-01T10:00:00,checkin,41.82,-71.41,1\n"
                 "2024-05-01T10:00:00,checkin,41.82,-71.41,1\nnot a time,ping,41.8,-71.4,\n"
                 "2024-05-02T10:00:00,Web Visit,-0,51.5,nan\n")
    return {"voter_file": write_layout_file("ncvoter.txt", "nc", voters),
            "history": write_layout_file("ncvhis.txt", "nc", _HIST, history=True), "geocodes": g, "signals": s}


def test_ingest_files_writes_what_the_steps_write(write_layout_file: Callable[..., Path], tmp_path: Path) -> None:
    inputs = _inputs(write_layout_file, tmp_path)
    steps, together = tmp_path / "steps", tmp_path / "together"
    with warnings.catch_warnings(record=True) as caught_steps:
        warnings.simplefilter("always")
        read = read_voter_file(inputs["voter_file"], layout="nc", history=inputs["history"],
                               geocodes=inputs["geocodes"])
        write_parquet(plain_text(read.voters), steps / "voters.parquet")  # the run folder keeps plain strings
        write_parquet(read.history, steps / "vote_history.parquet")
        sig = read_signals(inputs["signals"])
        write_parquet(sig.signals, steps / "signals.parquet")
    with warnings.catch_warnings(record=True) as caught_together:
        warnings.simplefilter("always")
        out = ingest_files(inputs, together, layout="nc")
    for name in ("voters.parquet", "vote_history.parquet", "signals.parquet"):
        assert (steps / name).read_bytes() == (together / name).read_bytes(), name
    assert [r.name for r in out.records] == ["voters", "geocodes", "history", "signals"]
    assert [r.rows_in for r in out.records] == [r.rows_in for r in [*read.stages, sig.stage]]
    expected = pd.concat([read.rejects, sig.rejects], ignore_index=True)
    assert pd.concat(out.rejects, ignore_index=True).equals(expected)
    assert len(expected) > 5  # the fixture's bad rows, fields, geocodes, history rows and signals are all there
    assert [str(w.message) for w in caught_together] == [str(w.message) for w in caught_steps]
    assert out.written == [together / "voters.parquet", together / "vote_history.parquet",
                           together / "signals.parquet"]


def test_voter_file_errors_come_before_history_errors(write_layout_file: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    """The history is read on a side thread, but a bad voter file still stops first, then a bad history file."""
    inputs = _inputs(write_layout_file, tmp_path, duplicate=True)
    bad_history = tmp_path / "bad_hist.txt"
    bad_history.write_text("ncid\telection_lbl\nAA1\t11/08/2022\n")
    with pytest.raises(DuplicateVoterError):
        read_voter_file(inputs["voter_file"], layout="nc", history=bad_history, geocodes=inputs["geocodes"])
    inputs = _inputs(write_layout_file, tmp_path)
    with pytest.raises(MissingColumnsError, match="vote history file lacks columns"):
        read_voter_file(inputs["voter_file"], layout="nc", history=bad_history, geocodes=inputs["geocodes"])


def test_signals_error_leaves_voters_and_history_written(write_layout_file: Callable[..., Path],
                                                         tmp_path: Path) -> None:
    inputs = _inputs(write_layout_file, tmp_path)
    inputs["signals"].write_text("when,what\n1,2\n")
    out = tmp_path / "out"
    with pytest.raises(MissingColumnsError, match="signals file lacks columns"):
        ingest_files(inputs, out, layout="nc")
    assert sorted(p.name for p in out.iterdir()) == ["vote_history.parquet", "voters.parquet"]
    assert len(pd.read_parquet(out / "voters.parquet")) == 3


_NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.from_regex(r"\A[+-]?\d{0,4}(\.\d{0,8})?([eE][+-]?\d{1,3})?\Z"),
    st.sampled_from(["nan", "-nan", "Inf", "-Infinity", " 5", "5 ", "1,5", "", "-0", "0x10", "١٢", "1e400"]),
    st.text(max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), _NUMBER_TEXT), max_size=12))
def test_to_float64_is_pandas_to_numeric(values: list[str | None]) -> None:
    """Arrow parses the column when it can; the floats are pandas' to the bit, -0 and blanks included."""
    series = pd.Series(values, dtype="str")
    expected = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    got = to_float64(series)
    assert got.dtype == np.float64 and got.flags.writeable
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert got[ok].tobytes() == expected[ok].tobytes()


def _reindexed(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """per_distinct as it was written first: reindex the distinct results on the codes."""
    codes, uniques = factorize_str(values)
    return fn(uniques).reset_index(drop=True).reindex(codes).set_axis(values.index)


_FNS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "upper": lambda u: u.str.upper(),
    "bool": lambda u: u.str.strip().isin(["a", "b"]),
    "float": lambda u: pd.to_numeric(u, errors="coerce").astype("float64"),
    "int": lambda u: pd.Series(np.arange(len(u)), index=u.index),
    "date": lambda u: pd.to_datetime(u, format="%m/%d/%Y", errors="coerce").astype("datetime64[s]"),
    "object": lambda u: u.astype(object),
    "named": lambda u: u.rename("n").str.len(),
}


@pytest.mark.parametrize("fn", list(_FNS), ids=list(_FNS))
@pytest.mark.parametrize("values", [["a", "b", None, "a"], ["a", "b"], [], [None], ["01/02/2020", "x", None]])
def test_per_distinct_spreads_like_reindex(values: list[str | None], fn: str) -> None:
    series = pd.Series(values, dtype="str", index=pd.Index(np.arange(len(values)) * 3 + 5))
    got, expected = per_distinct(series, _FNS[fn]), _reindexed(series, _FNS[fn])
    assert got.dtype == expected.dtype and got.equals(expected) and got.index.equals(expected.index)
    assert got.name == expected.name
