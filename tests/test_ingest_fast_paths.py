"""The ingest's fast paths against the simple computations they replace: hand-drawn cases and properties."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geo_segment import schema as S
from geo_segment._vector import count_distinct_u64, pack_short_str, repeated_str_sorted
from geo_segment.io import voters as V
from geo_segment.io.voters import read_voter_file

from .conftest import nc_voter

TODAY = date(2026, 11, 27)

# short ids (packed into integers), long ids (hashed as strings), non-ASCII, empty strings, prefixes of each other
IDS = st.sampled_from(["AA1", "AA10", "AA1 ", "A", "", "É1", "ÉÉÉÉ", "AA123456", "AA1234567", "ZZ99999999",
                       "X" * 20, "0", "00"])


# --- duplicate voter ids by sorting -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("ids", "repeated"),
    [
        ([], []),
        (["AA1"], [False]),
        (["AA1", "AA2", "AA1"], [True, False, True]),
        (["AA1", "AA2", "AA3"], [False, False, False]),  # strictly increasing: no sort
        (["A", "B", "B", "C"], [False, True, True, False]),  # in order, with a repeat
        (["B", "A", "C", "A", "B"], [True, True, False, True, True]),
        (["", "A", ""], [True, False, True]),  # the empty string is a value like any other
        (["AA123456", "AA12345", "AA123456"], [True, False, True]),  # 8 bytes: the widest packed id
        (["AA1234567", "AA1234567", "AA1"], [True, True, False]),  # 9 bytes: the string path
        (["É", "E", "É"], [True, False, True]),
    ],
)
def test_repeated_str_sorted_hand_drawn(ids: list[str], repeated: list[bool]) -> None:
    assert repeated_str_sorted(pd.Series(ids, dtype="str")).tolist() == repeated


def test_repeated_str_sorted_rejects_nulls() -> None:
    with pytest.raises(ValueError, match="repeated_str: values must not be null"):
        repeated_str_sorted(pd.Series(["A", None], dtype="str"))


@settings(max_examples=200, deadline=None)
@given(st.lists(IDS, max_size=40))
def test_repeated_str_sorted_is_duplicated_keep_false(ids: list[str]) -> None:
    values = pd.Series(ids, dtype="str")
    expected = values.duplicated(keep=False).to_numpy()
    np.testing.assert_array_equal(repeated_str_sorted(values), expected)


@given(st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63]), max_size=50))
def test_count_distinct_u64_is_the_number_of_unique_values(values: list[int]) -> None:
    keys = np.array(values, dtype=np.uint64)
    assert count_distinct_u64(keys) == len(np.unique(keys))


# --- the geocode join -------------------------------------------------------------------------------------------

def _reference_match(g: pd.Series, v: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The join written with pandas: membership, duplicated(), and the first row of each key by a merge."""
    known = (g.isin(v.dropna()) & g.notna()).to_numpy()
    repeated = g.duplicated(keep="first").to_numpy()  # nulls repeat each other
    firsts = pd.DataFrame({"key": g, "row": np.arange(len(g))}).dropna().drop_duplicates("key", keep="first")
    merged = pd.DataFrame({"key": v}).merge(firsts, on="key", how="left")
    first_row = merged["row"].fillna(-1).to_numpy().astype(np.int64)
    return known, repeated, first_row


def _check_match(g: pd.Series, v: pd.Series) -> None:
    known, repeated, first_row = V._match_keys(g, v)
    r_known, r_repeated, r_first = _reference_match(g, v)
    np.testing.assert_array_equal(known, r_known)
    np.testing.assert_array_equal(repeated, r_repeated)
    np.testing.assert_array_equal(first_row, r_first)


@pytest.mark.parametrize(
    ("g", "v"),
    [
        (["AA1", "AA2", "AA3"], ["AA1", "AA2", "AA3"]),  # in order: the no-sort path
        (["AA3", "AA1", "AA3", "AA9"], ["AA1", "AA3", "AA2"]),  # out of order, a repeat, an unknown id
        (["AA1", None, "AA2", None, ""], ["AA2", "AA1", "AA5"]),  # null keys repeat each other; "" is not null
        (["AA1", "AA1", "AA1"], ["AA1"]),
        (["AA1234567", "AA1", "AA1234567"], ["AA1234567", "AA1"]),  # a long id: the string path
        (["É1", "E1"], ["E1", "É1", "É2"]),
        (["AA1"], ["AA1", None]),  # a null voter key matches nothing
    ],
)
def test_match_keys_hand_drawn(g: list[str | None], v: list[str | None]) -> None:
    _check_match(pd.Series(g, dtype="str"), pd.Series(v, dtype="str"))


def test_match_keys_packed_and_string_paths_agree() -> None:
    g = pd.Series(["AA3", None, "AA1", "AA3", "", "AA2", None], dtype="str")
    v = pd.Series(["AA1", "AA2", "AA4", "AA3"], dtype="str")
    assert pack_short_str(g) is not None
    packed = V._match_keys(g, v)
    # the same keys, made too long to pack, take the string hash path; the answers must be the same
    longer = V._match_keys(g + "-LONGER-THAN-8", v + "-LONGER-THAN-8")
    for a, b in zip(packed, longer, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=200, deadline=None)
@given(st.lists(IDS | st.none(), max_size=30), st.lists(IDS, max_size=30), st.booleans())
def test_match_keys_is_a_pandas_merge(g: list[str | None], v: list[str], sort_g: bool) -> None:
    if sort_g:  # sorted geocode keys take the path without a sort
        g = sorted(x for x in g if x is not None)
    _check_match(pd.Series(g, dtype="str"), pd.Series(v, dtype="str"))


def test_geocodes_out_of_order_with_repeats(write_layout_file: Callable[..., Path], tmp_path: Path) -> None:
    """A repeated id whose first row is bad leaves the voter without coordinates (the first geocode is used)."""
    v = write_layout_file("v.txt", "nc", [nc_voter("AA1"), nc_voter("AA2"), nc_voter("AA3"), nc_voter("AA4")])
    g = tmp_path / "geo.csv"
    g.write_text("voter_id,latitude,longitude\n"
                 "AA3,41.3,-71.3\n"     # line 2
                 "AA1, ,\n"             # line 3: failed geocode (blank coordinates)
                 "AA1,41.1,-71.1\n"     # line 4: repeat of a bad first row: not used
                 "AA9,41.9,-71.9\n"     # line 5: unknown id
                 "AA3,40.0,-70.0\n"     # line 6: repeat
                 ",41.0,-71.0\n"        # line 7: no id
                 "AA2,41.2,-71.2\n")    # line 8
    read = read_voter_file(v, layout="nc", geocodes=g, today=TODAY)
    voters = read.voters
    assert voters[S.LAT].tolist()[1:3] == [41.2, 41.3]
    assert voters[S.LAT].isna().tolist() == [True, False, False, True]
    assert voters[S.GEOCODED].tolist() == [False, True, True, False]
    rej = read.rejects[read.rejects[S.REJECT_FILE] == str(g)]
    assert list(zip(rej[S.REJECT_LINE].astype(int), rej[S.REJECT_REASON], strict=True)) == [
        (3, "coordinate is not a number"),
        (4, "repeated voter id: the first geocode is used"),
        (5, "voter id not in the voter file"),
        (6, "repeated voter id: the first geocode is used"),
        (7, "voter id not in the voter file"),
    ]
    assert read.stages[1].metrics == {"joined_by": "voter_id", "voters_matched": 2}


# --- points with the collector paused ---------------------------------------------------------------------------

@pytest.mark.parametrize("enabled", [True, False])
def test_points_restore_the_collector_state(enabled: bool) -> None:
    lng, lat = np.array([-71.4, np.nan, -71.3]), np.array([41.8, np.nan, 41.7])
    geocoded = np.array([True, False, True])
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        got = V._points(lng, lat, geocoded)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
    expected = gpd.points_from_xy(lng, lat, crs=S.CRS_STORAGE)
    expected[~geocoded] = None
    assert gpd.GeoSeries(got).to_wkb().equals(gpd.GeoSeries(expected).to_wkb())
    assert got.crs == expected.crs


def test_points_resume_the_collector_after_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        assert not gc.isenabled()  # paused while the points are built
        raise MemoryError("no room for points")

    monkeypatch.setattr(V.shapely, "points", fail)
    assert gc.isenabled()
    with pytest.raises(MemoryError, match="no room for points"):
        V._points(np.array([1.0]), np.array([1.0]), np.array([True]))
    assert gc.isenabled()


@pytest.mark.parametrize("min_points", [1, 10**9], ids=["shared", "one-per-voter"])
def test_points_at_the_same_coordinates_share_one_object(min_points: int) -> None:
    # a household of five at one rooftop, a neighbour, a voter without coordinates, and -0.0 against 0.0
    lng = np.array([-71.4, -71.4, -71.3, np.nan, -71.4, 0.0, -0.0, -71.4, -71.4])
    lat = np.array([41.8, 41.8, 41.7, np.nan, 41.8, 0.0, 0.0, 41.8, 41.8])
    geocoded = np.isfinite(lng)
    got = V._points(lng, lat, geocoded, min_points=min_points)
    expected = gpd.points_from_xy(lng, lat, crs=S.CRS_STORAGE)
    expected[~geocoded] = None
    assert gpd.GeoSeries(got).to_wkb().equals(gpd.GeoSeries(expected).to_wkb())
    assert got.crs == expected.crs
    assert got[3] is None
    shared = got[0] is got[1] and got[1] is got[4]
    assert shared is (min_points == 1)
    assert got[0] is not got[2] and got[5] is not got[6]  # other coordinates: other points


# --- addresses: the two-step fast pattern, normalization of the changing texts only, hex ids from a table -------

_NUMBERS = st.sampled_from(["12", "7", "1524", "12A", "12-14", "12A-3B", "0", "12-", "A12", "1/2", "12½"])
_WORDS = st.sampled_from(["MAIN", "N", "NORTH", "SOUTHWEST", "E", "ELM", "O'NEIL", "SMITH-JONES", "5TH", "21ST",
                          "1ST", "ST", "STREET", "AVE", "av", "Ave.", "RD", "TER", "WAY", "PIKE", "1/2", "APT",
                          "UNIT", "#", "#4", "STE", "LOT", "4", "04", "B", "-2", "12B", "PO", "BOX", "ÉLAN", "ß",
                          "1/2ST", "main", "Elm", "x", "Q1"])
_SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\t", ", ", ". ", " # ", ";"])


@st.composite
def _address(draw: st.DrawFn) -> str | None:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return draw(st.text(alphabet="12 ABN#.-/'É\t", max_size=12))
    parts = [draw(_NUMBERS)] + draw(st.lists(_WORDS, min_size=0, max_size=6))
    text = parts[0]
    for p in parts[1:]:
        text += draw(_SEPARATORS) + p
    lead, trail = draw(st.sampled_from(["", "", " "])), draw(st.sampled_from(["", "", " ", "."]))
    return lead + text + trail


def _same_parse(addresses: list[str | None], zips: list[str | None] | None) -> None:
    from geo_segment.addresses import parse_addresses

    from ._addresses_reference import parse_addresses as reference

    a = pd.Series(addresses, dtype="str")
    z = pd.Series(zips, dtype="str") if zips is not None else None
    got, want = parse_addresses(a, zip5=z), reference(a, zip5=z)
    # the oracle predates the compact text columns: the same values, the categoricals sorted
    for col in ("house_number", "street", "unit"):
        cats = got.parts[col].cat.categories
        assert list(cats) == sorted(cats) and cats.is_unique, col
    pd.testing.assert_frame_equal(got.parts.astype("str"), want.parts, check_exact=True)
    for name in ("n_distinct", "n_fast", "n_parser", "n_unparsed", "n_households", "n_buildings"):
        assert getattr(got, name) == getattr(want, name), name


@pytest.mark.parametrize(
    "addresses",
    [
        ["12 N MAIN ST APT 4", "12 N MAIN ST APT 10", "7 ELM ST", "7 ELM ST"],  # normalized already
        ["12 North Main Street Apt. 04", "12 N MAIN ST #4", " 7  elm st. "],  # every text changes
        ["12 1/2 N MAIN ST", "12 1/2", "12 1/2 1/2 ST", "1/2 MAIN ST", "12 MAIN ST 1/2", "12 1/2ST", "12 1/2B ST"],
        ["12A-3B ELM ST", "12- ELM ST", "A12 ELM ST", "12A ELM", "12", "", None],  # number tokens
        ["5 5TH AVE", "5 N 21ST ST SW UNIT 3B", "5 O'NEIL WAY # 2", "5 ÉLAN RD"],
        ["PO BOX 123", "123 MAIN ST ñ", "999 AVENUE OF THE AMERICAS"],  # for the parser
    ],
)
def test_parse_addresses_equals_the_reference_hand_drawn(addresses: list[str | None]) -> None:
    _same_parse(addresses, ["02903"] * len(addresses))
    _same_parse(addresses, None)


def test_parse_addresses_fast_parts_hand_drawn() -> None:
    from geo_segment.addresses import parse_addresses

    p = parse_addresses(pd.Series(["12 1/2 North Main Street Apt 04", "12A-3B elm st", "12 1/2"], dtype="str"))
    assert p.parts[S.HOUSE_NUMBER].tolist() == ["12 1/2", "12A-3B", ""]
    assert p.parts[S.STREET].tolist() == ["N MAIN ST", "ELM ST", ""]  # "12 1/2" has no street: unparsed
    assert p.parts[S.UNIT].tolist() == ["4", "", ""]
    assert p.parts[S.ADDRESS].tolist() == ["12 1/2 N MAIN ST UNIT 4", "12A-3B ELM ST", "12 1/2"]
    assert (p.n_fast, p.n_parser, p.n_unparsed) == (2, 0, 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(_address(), max_size=12), st.sampled_from([None, "02903", "mixed"]))
def test_parse_addresses_equals_the_reference(addresses: list[str | None], zips: str | None) -> None:
    z = None if zips is None else [("02903", "02906", None)[i % 3] if zips == "mixed" else zips
                                   for i in range(len(addresses))]
    _same_parse(addresses, z)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="aA1 .,;#\t\n'/&-É\u00a0", max_size=10) | _address().filter(bool), max_size=10))
def test_normalize_only_what_may_change(texts: list[str]) -> None:
    import pyarrow as pa

    from geo_segment.addresses import _arrow_normalize, _normalize_distinct

    arr = pa.array(texts, pa.string())
    got, changed = _normalize_distinct(arr)
    assert got.to_pylist() == _arrow_normalize(arr).to_pylist()
    if not changed:
        assert got.to_pylist() == texts


@pytest.mark.parametrize("n", [0, 1, 5, (1 << 16) + 3])
def test_hex_ids_are_the_hex_digits_of_each_rows_hash(n: int) -> None:
    from geo_segment.addresses import _hex_ids

    rng = np.random.default_rng(n)
    hashed = np.concatenate([np.array([0, 2**64 - 1, 0x0123456789ABCDEF], dtype=np.uint64),
                             rng.integers(0, 2**63, 50, dtype=np.int64).astype(np.uint64)])
    codes = rng.integers(0, len(hashed), n)
    empty = rng.random(n) < 0.1
    got = _hex_ids(hashed, codes, "h", empty).to_pylist()
    assert got == [None if e else f"h{int(hashed[c]):016x}" for c, e in zip(codes, empty, strict=True)]


# --- stripping only columns whose values may change; newlines counted with numpy --------------------------------

_PADDED = st.text(alphabet=st.sampled_from(list("AÉ1 \t\n\r\x0b\x0c\x1c\x1f\x85\u00a0\u2003\u3000\u200bz.")),
                  max_size=6)


def _chunked(values: list[str | None], cuts: list[int]) -> pd.Series:
    """A str Series over an Arrow array of several chunks, some of them slices (a non-zero offset)."""
    import pyarrow as pa

    arr = pa.array(["pad", *values], pa.large_string()).slice(1)  # an offset into the buffers
    bounds = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    chunks = [arr.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)] or [arr]
    from geo_segment._vector import STR_DTYPE

    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(chunks, pa.large_string()), dtype=STR_DTYPE))


@settings(max_examples=200, deadline=None)
@given(st.lists(_PADDED | st.none(), max_size=12), st.lists(st.integers(0, 20), max_size=3))
@example(["A ", "B"], [])
@example([" A", None, "É", "A\u3000"], [1, 2])
def test_stripped_is_str_strip(values: list[str | None], cuts: list[int]) -> None:
    series = _chunked(values, cuts)
    got = V._stripped(series)
    pd.testing.assert_series_equal(got, series.astype("str").str.strip(), check_exact=True)


@pytest.mark.parametrize(
    ("values", "may"),
    [
        (["AB", "A B", "", None, "1"], [False, False, False, False, False]),
        ([" A", "A ", "\tA", "A\u00a0", "É", "AÉ", "ÉA", "A."], [True, True, True, True, True, True, True, False]),
    ],
)
def test_may_strip_looks_at_the_end_bytes(values: list[str | None], may: list[bool]) -> None:
    import pyarrow as pa

    assert V._may_strip(pa.array(values, pa.string())).tolist() == may
    assert V._may_strip(pa.array(["x", *values], pa.large_string()).slice(1)).tolist() == may
    assert not V._strip_changes_nothing(pd.Series(values, dtype=object))  # not Arrow-backed: the plain path


@given(st.binary(max_size=300), st.booleans())
def test_count_newlines_is_bytes_count(block: bytes, scratch: bool) -> None:
    from geo_segment.io.delimited import _count_newlines

    buffer = np.empty(len(block) + 3, dtype=bool) if scratch else None
    assert _count_newlines(memoryview(block), buffer) == block.count(b"\n")


def test_scan_counts_lines_across_blocks_and_a_growing_buffer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from geo_segment.io import delimited

    monkeypatch.setattr(delimited, "_CHUNK", 16)
    text = "h1,h2\n" + "a,b\n" * 7 + "x" * 50 + ",long line\n" + "c,d\n\n" + "é,last line without newline"
    path = tmp_path / "f.csv"
    path.write_text(text, encoding="utf-8")
    scan = delimited.scan_text(path, "utf-8")
    assert scan.n_lines == text.count("\n") + 1
    assert scan.first_line == "h1,h2"


# --- Arrow's jemalloc pool while voter files are read -----------------------------------------------------------

def test_arrow_pool_is_jemalloc_inside_and_restored_after_overlapping_reads() -> None:
    import threading

    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow has no jemalloc pool")
    before = pa.default_memory_pool().backend_name
    inside_a, a_may_leave, b_is_inside = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []

    def reader_a() -> None:
        with V._arrow_pool():
            seen.append(pa.default_memory_pool().backend_name)
            inside_a.set()
            b_is_inside.wait(5)
        a_may_leave.set()

    t = threading.Thread(target=reader_a)
    t.start()
    inside_a.wait(5)
    with V._arrow_pool():  # reader B overlaps A and outlives it
        b_is_inside.set()
        a_may_leave.wait(5)
        seen.append(pa.default_memory_pool().backend_name)  # A has left: still jemalloc for B
    t.join(5)
    assert seen == ["jemalloc", "jemalloc"]
    assert pa.default_memory_pool().backend_name == before


def test_arrow_pool_without_jemalloc_keeps_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    def missing() -> None:
        raise NotImplementedError("built without jemalloc")

    before = pa.default_memory_pool().backend_name
    monkeypatch.setattr(V.pa, "jemalloc_memory_pool", missing)
    with V._arrow_pool():
        assert pa.default_memory_pool().backend_name == before
    assert pa.default_memory_pool().backend_name == before


def test_read_voter_file_restores_the_pool_on_error(write_layout_file: Callable[..., Path]) -> None:
    import pyarrow as pa

    from geo_segment.errors import DuplicateVoterError

    before = pa.default_memory_pool().backend_name
    v = write_layout_file("v.txt", "nc", [nc_voter("AA1"), nc_voter("AA1")])
    with pytest.raises(DuplicateVoterError):
        read_voter_file(v, layout="nc", today=TODAY)
    assert pa.default_memory_pool().backend_name == before


@settings(max_examples=100, deadline=None)
@given(st.lists(_address(), max_size=12), st.lists(st.integers(0, 20), max_size=3))
def test_parse_addresses_same_on_a_chunked_column(addresses: list[str | None], cuts: list[int]) -> None:
    """The voter file's columns come in many chunks (1 MB blocks); the parts are those of one chunk."""
    from geo_segment.addresses import parse_addresses

    chunked = _chunked(addresses, cuts)
    whole = pd.Series(addresses, dtype="str")
    zips = pd.Series(["02903"] * len(addresses), dtype="str")
    got, want = parse_addresses(chunked, zip5=zips), parse_addresses(whole, zip5=zips)
    pd.testing.assert_frame_equal(got.parts, want.parts, check_exact=True)
    assert (got.n_fast, got.n_households, got.n_buildings) == (want.n_fast, want.n_households, want.n_buildings)


@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=1, max_size=50))
@settings(max_examples=60, deadline=None)
def test_ids_hash_the_utf8_bytes_as_pandas_hashes_the_texts(texts: list[str | None]) -> None:
    # household and building ids must not change: hashing the UTF-8 bytes gives pandas' hashes of the str objects
    from geo_segment.addresses import _hash64, _siphash

    texts = [t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if t is not None else None for t in texts]
    arr = pa.array(texts, pa.large_string())
    expected = np.asarray(pd.util.hash_array(np.array(texts, dtype=object), hash_key="geo_segment_2026",
                                             categorize=False), dtype=np.uint64)
    assert np.array_equal(_siphash(arr), expected)
    assert np.array_equal(_hash64(arr), expected)
