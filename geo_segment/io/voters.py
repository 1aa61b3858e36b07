"""Voter-file ingest: any supported state layout or a user mapping -> the contract's voters and long history.

Every physical line of the voter file ends as a voter or as a row reject; unusable *values* (an impossible date,
a failed geocode) are set to null, recorded as field rejects, and the voter is kept.
"""

from __future__ import annotations

import codecs
import csv
import gc
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo_segment import schema as S
from geo_segment._keys import DISTINCT_MIN_POINTS, distinct_points
from geo_segment._vector import (
    arrow_str,
    factorize_str,
    isin_str,
    pack_short_str,
    per_distinct,
    repeated_str_sorted,
    sorted_text_categorical,
    text_categorical,
    text_from_codes,
)
from geo_segment.addresses import ParsedAddresses, _parse_addresses, normalize_zip, parse_addresses
from geo_segment.errors import ConfigError, DuplicateVoterError, InputFileError, Location, MissingColumnsError
from geo_segment.io.coords import PROBLEMS, check_projected, check_swapped, coordinate_codes
from geo_segment.io.delimited import DelimitedRead, read_delimited
from geo_segment.io.manifest import StageRecord
from geo_segment.layouts import Layout, load_layout

__all__ = ["VoterFileRead", "classify_election", "read_voter_file"]

Duplicates = Literal["error", "keep-latest"]


@dataclass
class VoterFileRead:
    """What :func:`read_voter_file` returns.

    Attributes
    ----------
    voters
        GeoDataFrame (EPSG:4326), one row per voter, the contract's voter columns; not geocoded voters have
        ``geocoded == False`` and an empty geometry.
    history
        Long vote history: ``voter_id``, ``election_date``, ``election_type``, ``voted``, ``method``,
        ``ballot_party``, ``source_line``.
    rejects
        Row and field rejects of every file read (``file``, ``line``, ``scope``, ``column``, ``reason``).
    stages
        One :class:`StageRecord` per file read (``voters``, ``history``, ``geocodes``).
    """

    voters: gpd.GeoDataFrame
    history: pd.DataFrame
    rejects: pd.DataFrame
    stages: list[StageRecord] = field(default_factory=list)


# --- value parsing ----------------------------------------------------------------------------------------------

def _dates_of(texts: pd.Series, fmt: str) -> pd.Series:
    """Dates parsed strictly (02/30 is invalid, not March 2nd); NaT where a text is no date in ``fmt``."""
    return pd.to_datetime(texts, format=fmt, errors="coerce").astype("datetime64[s]")


def _parse_dates(values: pd.Series, fmt: str) -> pd.Series:
    """:func:`_dates_of` each distinct text once."""
    return per_distinct(values, lambda u: _dates_of(u, fmt))


def _field_rejects(file: str, lines: pd.Series, mask: np.ndarray, column: str, reason: str) -> pd.DataFrame:
    return S.make_rejects(file, lines[mask].astype("int64").tolist(), reason, scope="field", column=column)


_ELECTION_PATTERNS = (
    ("presidential_primary", r"PRESIDENTIAL\s+(?:PREFERENCE\s+)?PRIMARY|\bPPP\b"),
    ("runoff", r"RUN-?OFF|SECOND\s+PRIMARY"),
    ("special", r"SPECIAL"),
    ("primary", r"PRIMARY"),
    ("general", r"GENERAL"),
)


def classify_election(text: pd.Series) -> pd.Series:
    """Classify free-text election descriptions ("11/08/2022 GENERAL") into the contract's election types.

    Examples
    --------
    >>> classify_election(pd.Series(["03/05/2024 PRIMARY", "11/05/2024 GENERAL", "TOWN BOND"])).tolist()
    ['primary', 'general', 'other']
    """
    return per_distinct(text.fillna("").astype("str"), _classify_distinct)


def _classify_distinct(text: pd.Series) -> pd.Series:
    up = text.fillna("").astype("str").str.upper()
    out = pd.Series("other", index=text.index, dtype="str")
    for kind, pattern in reversed(_ELECTION_PATTERNS):
        out = out.mask(up.str.contains(pattern, regex=True), kind)
    return out


def election_type_from_date(dates: pd.Series) -> pd.Series:
    """Election type from the date alone (for files without one): November election day is ``general``,
    the August Tuesday after the first Monday is ``primary``, anything else ``other``."""
    d = pd.to_datetime(dates)
    election_day = (d.dt.day_of_week == 1) & d.dt.day.between(2, 8)
    out = pd.Series("other", index=dates.index, dtype="str")
    out = out.mask(election_day & (d.dt.month == 11), "general")
    return out.mask(election_day & (d.dt.month == 8), "primary")


# --- the voter file ---------------------------------------------------------------------------------------------

_ADDRESS_COLUMNS = (S.ADDRESS, S.HOUSE_NUMBER, S.STREET, S.UNIT, S.HOUSEHOLD_ID, S.BUILDING_ID)
#: layout fields read dictionary-encoded and kept as text categoricals (dates and birth years are parsed per
#: distinct value from the dictionary)
_DICTIONARY_FIELDS = ("last_name", "first_name", "middle_name", "name_suffix", "city", "state", "zip", "birth_year",
                      "birth_date", "registration_date", "party", "status", "county", "source_precinct")

#: the voters' columns in order (before the geometry)
_ORDER = [S.VOTER_ID, S.LAST_NAME, S.FIRST_NAME, S.MIDDLE_NAME, S.NAME_SUFFIX, S.CITY, S.STATE, S.STATUS, S.COUNTY,
          S.SOURCE_PRECINCT, S.EMAIL, S.ZIP5, S.PHONE, S.PARTY, S.BIRTH_YEAR, S.REGISTRATION_DATE, *_ADDRESS_COLUMNS,
          S.SOURCE_LINE, S.LAT, S.LNG, S.GEOCODED, S.GEOCODE_SOURCE]

def _text_bytes(values: pd.Series) -> int:
    """Bytes of text in an Arrow-backed string column (from its offsets: no pass over the values)."""
    arr = pa.array(values.array, from_pandas=True)
    total = 0
    for chunk in (arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]):
        if len(chunk):
            width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
            offsets = np.frombuffer(chunk.buffers()[1], dtype=width, count=len(chunk) + 1,
                                    offset=chunk.offset * np.dtype(width).itemsize)
            total += int(offsets[-1]) - int(offsets[0])
    return total


def _may_strip(chunk: pa.Array) -> np.ndarray:
    """Per value of an Arrow string array, whether stripping might change it, from its first and last bytes.

    Any white space (ASCII or Unicode) starts and ends with a byte below ``0x21`` or above ``0x7e``: values whose
    ends are printable ASCII are their own stripped form, with no pass over their text and no copy.
    """
    n = len(chunk)
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(chunk.buffers()[1], dtype=width, count=n + 1,
                            offset=chunk.offset * np.dtype(width).itemsize).astype(np.int64)
    data_buf = chunk.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    if not len(data):
        return np.zeros(n, dtype=bool)
    starts, ends = offsets[:-1], offsets[1:]
    first = data.take(np.minimum(starts, len(data) - 1))  # (an empty value's bytes are not looked at below)
    last = data.take(np.maximum(ends - 1, 0))
    may = (ends > starts) & ((first < 0x21) | (first > 0x7E) | (last < 0x21) | (last > 0x7E))
    if chunk.null_count:
        may &= chunk.is_valid().to_numpy(zero_copy_only=False)
    return may


def _strip_changes_nothing(text: pd.Series) -> bool:
    """Whether ``text.str.strip()`` would return every value as it is (Arrow-backed strings; else ``False``).

    Only the values :func:`_may_strip` finds are stripped, chunk by chunk, and their byte counts compared.
    """
    if not (isinstance(text.dtype, pd.StringDtype) and text.dtype.storage == "pyarrow"):
        return False
    arr = pa.array(text.array, from_pandas=True)
    for chunk in (arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]):
        if not len(chunk):
            continue
        where = np.flatnonzero(_may_strip(chunk))
        if len(where):
            few = chunk.take(pa.array(where))
            if pc.sum(pc.binary_length(pc.utf8_trim_whitespace(few))).as_py() != pc.sum(
                    pc.binary_length(few)).as_py():
                return False
    return True


def _stripped(values: pd.Series) -> pd.Series:
    """``values.astype("str").str.strip()``; when no value had blanks to strip, the parsed column itself, so the
    voters share its memory instead of holding a second copy of every name, city and code.

    A categorical (a column read dictionary-encoded) is stripped per category and comes back as a text
    categorical with sorted categories.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        return text_categorical(values, lambda u: u.str.strip())
    text = values.astype("str")
    if _strip_changes_nothing(text):
        return text
    out = text.str.strip()
    if isinstance(text.dtype, pd.StringDtype) and text.dtype.storage == "pyarrow" and (
            _text_bytes(out) == _text_bytes(text)):  # stripping only removes bytes: none went
        return text
    return out


def _joined(table: pd.DataFrame, cols: Sequence[str], *, categorical: bool = False) -> pd.Series:
    """The source columns ``cols`` stripped and joined with single spaces (empty gives null); with
    ``categorical``, as a text categorical (:data:`~geo_segment.schema.VOTER_CATEGORICAL`)."""
    if len(cols) == 1:
        one = _stripped(table[cols[0]])
        return text_categorical(one) if categorical and not isinstance(one.dtype, pd.CategoricalDtype) else one
    parts = [table[c].astype("str").fillna("").str.strip() for c in cols]
    out = parts[0]
    for p in parts[1:]:
        out = out + " " + p
    out = out.str.replace(r"\s+", " ", regex=True).str.strip()
    out = out.where(out != "")
    return text_categorical(out) if categorical else out


def _row_flags(flags: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each row's flag from its distinct value's (``codes`` from :func:`factorize_str`; ``-1``, a null, is False)."""
    return np.append(np.asarray(flags, dtype=bool), False)[codes]


def _phone_digits(phones: pd.Series) -> pd.Series:
    """Phone numbers as their digits, null when fewer than 7.

    State files mostly hold bare digits already ("4015550113"), and nearly every number is distinct: one regex
    test finds the numbers that need cleaning, and only those are cleaned (per distinct value). A column of bare
    numbers comes back as it is, sharing the parsed text (5M voters: no hash of 5M numbers, no copy).
    """
    def digits(u: pd.Series) -> pd.Series:
        d = u.str.replace(r"\D", "", regex=True)
        return d.where(d.str.len() >= 7)

    if not (isinstance(phones.dtype, pd.StringDtype) and phones.dtype.storage == "pyarrow"):
        return per_distinct(phones, digits)
    arr = pa.array(phones.array, from_pandas=True)
    needs_cleaning = pc.invert(pc.match_substring_regex(arr, r"^[0-9]{7,}$"))
    if not pc.any(needs_cleaning).as_py():  # every number is bare digits, or null
        return phones
    dirty = pc.fill_null(needs_cleaning, False).to_numpy(zero_copy_only=False)
    out = phones.copy()
    out[dirty] = per_distinct(phones[dirty], digits)
    return out


def _header_of(path: Path, delimiter: str, encoding: str) -> list[str]:
    """The column names on a file's first line (``[]`` when there is no file or no line)."""
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20).rstrip(b"\r\n")
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8):]
    text = first.decode(encoding, errors="replace")  # names only; read_delimited checks every byte strictly
    try:
        return next(csv.reader([text], delimiter=delimiter)) if text else []
    except csv.Error:  # read_delimited says what is wrong with the line
        return []


def _history_columns(layout: Layout, header: list[str]) -> list[str]:
    style = layout.history_style
    if style == "wide":
        pattern = re.compile(str(layout.history["column_pattern"]))
        return [c for c in header if pattern.match(c)]
    if style == "pairs":
        n = int(layout.history.get("pairs", 40))
        cols = []
        for i in range(1, n + 1):
            cols += [str(layout.history["method_column"]).format(n=i), str(layout.history["party_column"]).format(n=i)]
        return cols
    return []


def read_voter_file(
    path: str | Path,
    *,
    layout: str | Path | Layout,
    history: str | Path | None = None,
    geocodes: str | Path | None = None,
    election_map: str | Path | None = None,
    encoding: str | None = None,
    duplicates: Duplicates = "error",
    today: date | None = None,
) -> VoterFileRead:
    """Read a voter file (and its vote history and geocodes) into the column contract.

    Parameters
    ----------
    path
        The voter file.
    layout
        ``nc``, ``oh``, ``fl``, ``mi``, ``pa``, the path of a mapping TOML, or a :class:`Layout`.
    history
        The vote-history file for layouts that keep history apart (NC ``ncvhis``, FL, MI).
    geocodes
        A CSV with ``voter_id`` and ``latitude``/``longitude`` (or ``lat``/``lng``), as a geocoding vendor
        returns it; used for voters the voter file gives no coordinates.
    election_map
        PA only: the county Election Map (county, number, title, date) resolving the positional history.
    encoding
        ``None`` uses the layout's (strict UTF-8 unless the layout says otherwise); ``latin-1`` etc. otherwise.
    duplicates
        ``error`` (default) stops on a repeated voter id; ``keep-latest`` keeps the row with the latest
        registration date (then the last line) and quarantines the others.
    today
        The date birth years are checked against (default: today).

    Returns
    -------
    VoterFileRead
        Voters (GeoDataFrame, EPSG:4326), long history, rejects and per-file stage records.

    Raises
    ------
    InputFileError
        Empty file, header only, wrong delimiter or missing columns; duplicate ids (``DuplicateVoterError``).
    EncodingError
        Bytes invalid in the encoding (with byte offset and line).
    ConfigError
        Unknown layout or a history file the layout cannot use.

    Examples
    --------
    >>> read = read_voter_file("ncvoter.txt", layout="nc", history="ncvhis.txt")  # doctest: +SKIP
    >>> read.stages[0].rows_in == len(read.voters) + read.stages[0].rows_rejected  # doctest: +SKIP
    True
    """
    t0 = time.perf_counter()
    lay = layout if isinstance(layout, Layout) else load_layout(layout)
    enc = encoding or lay.encoding
    path = Path(path)
    # the history and geocodes files need nothing from the voter file until their ids are checked: they are read on
    # other threads (Arrow parses and hashes without the GIL), the history from the start, the geocodes once the
    # voter file is parsed; their errors surface where they are read in turn
    with _arrow_pool():
        side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-side")
        try:
            history_job = (side.submit(_prepare_long_history, lay, Path(history), encoding or lay.encoding)
                           if lay.history_style == "long" and history is not None else None)
            reads: list[DelimitedRead] = []
            try:
                return _read_voter_file(path, lay, history=history, geocodes=geocodes, election_map=election_map,
                                        enc=enc, duplicates=duplicates, today=today, t0=t0,
                                        history_job=history_job, side=side, reads=reads)
            finally:
                # the voter file's whole-file scan ran beside the mapping: what it found comes first (an encoding
                # problem also explains any failure better)
                for done in reads:
                    done.confirm()
        finally:
            side.shutdown(wait=False, cancel_futures=True)


_POOL_LOCK = threading.Lock()
_POOL_STATE: dict[str, Any] = {"users": 0, "saved": None}


@contextmanager
def _arrow_pool() -> Iterator[None]:
    """Make Arrow allocate from its jemalloc pool while voter files are read (when pyarrow has it).

    The default mimalloc pool gives freed memory back to the system within milliseconds, so a read that builds
    and drops hundreds of MB of columns again and again zeroes fresh pages for each (5M voters: 9 s of system
    time); jemalloc keeps and reuses them for about a second. Measured at 5M voters: about 2 s less CPU and
    300 MB less peak RSS. Arrays remember the pool they came from, so they stay valid after the default pool
    is restored; overlapping reads restore it when the last one ends.
    """
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc: the default pool
        yield
        return
    with _POOL_LOCK:
        if _POOL_STATE["users"] == 0:
            _POOL_STATE["saved"] = pa.default_memory_pool()
            pa.set_memory_pool(pool)
        _POOL_STATE["users"] += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _POOL_STATE["users"] -= 1
            if _POOL_STATE["users"] == 0:
                pa.set_memory_pool(_POOL_STATE["saved"])
                _POOL_STATE["saved"] = None


def _read_voter_file(
    path: Path, lay: Layout, *, history: str | Path | None, geocodes: str | Path | None,
    election_map: str | Path | None, enc: str, duplicates: Duplicates, today: date | None, t0: float,
    history_job: Future[_LongHistory] | None, side: ThreadPoolExecutor, reads: list[DelimitedRead],
) -> VoterFileRead:
    fields = lay.fields
    header_names = _header_of(path, lay.delimiter, enc) if lay.header else list(lay.columns)
    hist_cols = _history_columns(lay, header_names)
    wanted = [*lay.source_columns(), *hist_cols]
    # columns that repeat few distinct texts are parsed dictionary-encoded (half the parse time, a fraction of
    # the memory); the ids, addresses, phones, emails, coordinates and history columns stay plain strings
    dictionary = [c for key in _DICTIONARY_FIELDS if key in fields for c in fields[key] if c not in hist_cols]
    read = read_delimited(
        path,
        delimiter=lay.delimiter,
        header=lay.header,
        columns=lay.columns if not lay.header else None,
        required=lay.source_columns() if lay.header else (),
        usecols=wanted,
        encoding=enc,
        what="voter file",
        block_size=1 << 22,  # 4 MB: with the dictionary columns, the least parse CPU (1, 4, 8, 16 MB measured)
        dictionary=dictionary,
        # the whole-file scan beside the mapping, not the parse (both cores parse; one waits at the end of the read)
        late_scan=True,
    )
    reads.append(read)
    # the geocodes file is read on a side thread from now on: while the voter file was parsed both cores were busy,
    # and at the end of the read one core waits for the address parse (5M voters: the parse 0.5 s shorter)
    geocodes_job = side.submit(_read_geocodes_file, Path(geocodes), enc) if geocodes is not None else None
    table = read.table
    file = str(path)
    rejects: list[pd.DataFrame] = [read.rejects]
    lines = table[S.SOURCE_LINE]

    vid = _stripped(table[fields["voter_id"][0]])
    no_id = vid.isna() | (vid == "")
    if no_id.any():
        rejects.append(S.make_rejects(file, lines[no_id].astype("int64"), "missing voter id", column=S.VOTER_ID))
        table, vid, lines = table.loc[~no_id], vid.loc[~no_id], lines.loc[~no_id]

    out = pd.DataFrame(index=table.index)
    out[S.VOTER_ID] = vid
    # address parsing is mostly Arrow kernels that release the GIL: it starts first and runs beside the rest of
    # the mapping (it needs the ZIP or the city); the columns take their usual order at the end
    out[S.ZIP5] = text_categorical(table[fields["zip"][0]], normalize_zip) if "zip" in fields else _no_text(
        table.index)
    out[S.CITY] = _joined(table, fields["city"], categorical=True) if "city" in fields else _no_text(table.index)
    addr_raw = _joined(table, fields["address"]) if "address" in fields else pd.Series(
        None, index=table.index, dtype="str")
    pool = ThreadPoolExecutor(max_workers=1)
    # the parse takes the only reference to the address texts, so they are freed once numbered
    addresses_job = pool.submit(
        _parse_addresses, [addr_raw], zip5=out[S.ZIP5] if out[S.ZIP5].notna().any() else None, city=out[S.CITY]
    )
    del addr_raw
    for key, col in (
        ("last_name", S.LAST_NAME), ("first_name", S.FIRST_NAME), ("middle_name", S.MIDDLE_NAME),
        ("name_suffix", S.NAME_SUFFIX), ("state", S.STATE), ("status", S.STATUS),
        ("county", S.COUNTY), ("source_precinct", S.SOURCE_PRECINCT), ("email", S.EMAIL),
    ):
        if col in S.VOTER_CATEGORICAL:
            out[col] = _joined(table, fields[key], categorical=True) if key in fields else _no_text(table.index)
        else:
            out[col] = _joined(table, fields[key]) if key in fields else pd.Series(None, index=table.index,
                                                                                    dtype="str")
    if "phone" in fields:
        out[S.PHONE] = _phone_digits(_joined(table, fields["phone"]))
    else:
        out[S.PHONE] = pd.Series(None, index=table.index, dtype="str")
    party_map = dict(lay.party_map)
    out[S.PARTY] = text_categorical(
        _joined(table, fields["party"]), lambda u: u.str.upper().map(lambda p: party_map.get(p, p)).astype("str")
    ) if "party" in fields else _no_text(table.index)

    # birth year and registration date: bad values are field rejects, the voter stays. Files repeat a few thousand
    # years and dates millions of times: each is parsed and checked once, and every row takes its value and flags
    # from its distinct text with one gather (no column of 5M floats or dates made three times over)
    this_year = (today or date.today()).year
    birth_key = "birth_year" if "birth_year" in fields else "birth_date" if "birth_date" in fields else None
    if birth_key is not None:
        codes, uniques = factorize_str(table[fields[birth_key][0]])
        if birth_key == "birth_year":
            year_u = pd.to_numeric(uniques, errors="coerce").astype("float64").to_numpy()
            reason_parse = "birth year is not a number"
        else:
            fmt_b = lay.formats.get("birth_date", "%m/%d/%Y")
            year_u = _dates_of(uniques, fmt_b).dt.year.astype("float64").to_numpy()
            reason_parse = f"birth date is not a valid date in format {fmt_b}"
        with np.errstate(invalid="ignore"):
            future_u = (year_u > this_year) | (year_u < 1880)
        bad_parse, future = _row_flags(np.isnan(year_u), codes), _row_flags(future_u, codes)
        if bad_parse.any():
            rejects.append(_field_rejects(file, lines, bad_parse, S.BIRTH_YEAR, reason_parse))
        if future.any():
            rejects.append(_field_rejects(file, lines, future, S.BIRTH_YEAR,
                                          f"birth year outside 1880..{this_year} (in the future or impossible)"))
        kept_u = pd.Series(np.where(future_u, np.nan, year_u)).round().astype("Int64").array
        out[S.BIRTH_YEAR] = pd.Series(pd.api.extensions.take(kept_u, codes, allow_fill=True), index=table.index)
        del codes, uniques, bad_parse, future
    else:
        out[S.BIRTH_YEAR] = pd.Series(pd.NA, index=table.index, dtype="Int64")

    if "registration_date" in fields:
        fmt = lay.formats.get("registration_date", "%m/%d/%Y")
        codes, uniques = factorize_str(table[fields["registration_date"][0]])
        reg_u = _dates_of(uniques, fmt)
        placeholder = lay.formats.get("registration_date_placeholder")
        if placeholder:
            reg_u = reg_u.mask(reg_u == pd.Timestamp(placeholder))
        bad_u = reg_u.isna().to_numpy().copy()
        if placeholder:
            bad_u &= (uniques != pd.Timestamp(placeholder).strftime(fmt)).to_numpy()
        future_u = (reg_u > pd.Timestamp(today or date.today())).to_numpy()
        bad, future = _row_flags(bad_u, codes), _row_flags(future_u, codes)
        if bad.any():
            rejects.append(_field_rejects(
                file, lines, bad, S.REGISTRATION_DATE, f"registration date is not a valid date in format {fmt}"))
        if future.any():
            rejects.append(_field_rejects(file, lines, future, S.REGISTRATION_DATE, "registration date in the future"))
        kept = reg_u.mask(future_u).astype("datetime64[ms]").to_numpy()
        out[S.REGISTRATION_DATE] = pd.Series(pd.api.extensions.take(kept, codes, allow_fill=True),
                                             index=table.index, dtype="datetime64[ms]")
        del codes, uniques, bad, future
    else:
        out[S.REGISTRATION_DATE] = pd.Series(pd.NaT, index=table.index, dtype="datetime64[ms]")

    # duplicates, the coordinates and the points need no address: they run while the addresses are parsed on
    # the other core; the columns take their usual order at the end
    out[S.SOURCE_LINE] = lines.astype("Int64")
    parsed_addr: ParsedAddresses | None = None
    if lay.history_style not in ("wide", "pairs"):  # (those read the history, and PA its county, from the table)
        # the dictionary-encoded source columns are mapped: their codes go now, not with the rest of the table
        table = table.drop(columns=[c for c in dictionary if c in table.columns])
        read.table = table

    def attach_addresses() -> ParsedAddresses:
        nonlocal parsed_addr
        if parsed_addr is None:  # addresses -> households and buildings
            parsed_addr = addresses_job.result()
            pool.shutdown()
            for col in _ADDRESS_COLUMNS:  # aligned on the index: rows quarantined as duplicates meanwhile drop
                out[col] = parsed_addr.parts[col]
        return parsed_addr

    # duplicates
    dup_all = pd.Series(repeated_str_sorted(out[S.VOTER_ID]), index=out.index)  # ids are never null here
    n_dup_dropped = 0
    if dup_all.any():
        if duplicates == "error":
            dup_lines = out.loc[dup_all, S.SOURCE_LINE].astype(int).tolist()
            n_ids = int(out.loc[dup_all, S.VOTER_ID].nunique())
            raise DuplicateVoterError(
                f"voter file has {n_ids} voter ids on more than one row ({len(dup_lines)} rows)",
                where=Location(path, dup_lines[0], fields["voter_id"][0]),
                expected="each voter id once",
                found=f"repeats on lines {dup_lines[:10]}{' ...' if len(dup_lines) > 10 else ''}",
                fix="pass --duplicates keep-latest to keep the latest registration and quarantine the rest",
            )
        order = out.sort_values([S.REGISTRATION_DATE, S.SOURCE_LINE], na_position="first")
        drop = order.duplicated(S.VOTER_ID, keep="last")
        drop_idx = order.index[drop.to_numpy()]
        rejects.append(S.make_rejects(
            file, out.loc[drop_idx, S.SOURCE_LINE].astype("int64"),
            "duplicate voter id: a later registration of the same voter is kept", column=S.VOTER_ID))
        n_dup_dropped = len(drop_idx)
        out = out.drop(index=drop_idx)
        table = table.drop(index=drop_idx)

    # coordinates: from the file, else from the geocodes file
    # numpy arrays until the end (pandas' masked assignment aligns the values on the index, and on a string
    # column rebuilds it): the source is a code, 0 none, 1 the file, 2 the geocodes
    # (arrays made only where they get values: fresh memory is slow to fault in)
    lat: np.ndarray | None = None
    lng: np.ndarray | None = None
    source = np.zeros(len(out), dtype=np.int8)
    if "lat" in fields:
        # parsed once: the numbers and each pair's reason (a code into PROBLEMS)
        num_lat, num_lng, code = coordinate_codes(table[fields["lat"][0]], table[fields["lng"][0]])
        check_projected(num_lat, num_lng, file=path, what="voter file")
        check_swapped(num_lat, num_lng, file=path, what="voter file")
        bad = code != 0
        for c in pd.unique(code[bad]):  # in order of first appearance
            rejects.append(_field_rejects(file, out[S.SOURCE_LINE], code == c, S.LAT, PROBLEMS[c - 1]))
        good = ~bad & np.isfinite(num_lat) & np.isfinite(num_lng)
        lat, lng = np.where(good, num_lat, np.nan), np.where(good, num_lng, np.nan)
        source[good] = 1
    if lay.history_style not in ("wide", "pairs"):
        # the raw columns are read no more (only wide and positional history come from them): free them before
        # the geocodes, the history and the points take their memory
        table = table.iloc[:0]
        read.table = table
    stages: list[StageRecord] = []
    if geocodes is not None:
        if not _geocodes_by_id(geocodes_job):
            attach_addresses()  # joined by address
        g_lat, g_lng, g_rejects, g_stage = _read_geocodes(Path(geocodes), out, encoding=enc,
                                                          prefetched=geocodes_job)
        g_lat_np, g_lng_np = g_lat.to_numpy(dtype="float64"), g_lng.to_numpy(dtype="float64")  # aligned to out
        if lat is not None and lng is not None and source.any():  # the file's own coordinates first
            need = np.isnan(lat) & ~np.isnan(g_lat_np)
            lat[need], lng[need] = g_lat_np[need], g_lng_np[need]
            source[need] = 2
        else:  # none (as in NC's file): the geocodes' arrays are the coordinates, without masked copies
            lat, lng = g_lat_np, g_lng_np
            source[~np.isnan(lat)] = 2
        del g_lat, g_lng, g_lat_np, g_lng_np
        rejects.append(g_rejects)
        stages.append(g_stage)
    if lat is None or lng is None:
        lat, lng = np.full(len(out), np.nan), np.full(len(out), np.nan)
    geocoded = ~np.isnan(lat) & ~np.isnan(lng)
    # shapely builds the points without the GIL, beside the addresses and the vote history's id checks
    geometry_job = side.submit(_points, lng, lat, geocoded)
    parsed_addr = attach_addresses()
    out[S.LAT] = pd.Series(lat, index=out.index)
    out[S.LNG] = pd.Series(lng, index=out.index)
    out[S.GEOCODED] = pd.Series(geocoded, index=out.index)
    out[S.GEOCODE_SOURCE] = text_from_codes(source - 1, pd.Series(["file", "geocodes"], dtype="str"), index=out.index)
    out = out[_ORDER]
    t1 = time.perf_counter()
    history_error: Exception | None = None
    try:
        hist, h_rejects, h_stage = _read_history(lay, table, out, path, history, election_map, enc,
                                                 prepared=history_job)
    except Exception as exc:  # raised once the voters are checked, as when the history was read after them
        history_error = exc
    history_seconds = time.perf_counter() - t1
    # copy=False: pandas would otherwise consolidate the numeric columns into new blocks (5M voters: 180 MB more
    # at the peak of the read)
    voters = gpd.GeoDataFrame(out.reset_index(drop=True), geometry=geometry_job.result(), crs=S.CRS_STORAGE,
                              copy=False)
    S.validate_voters(voters, stage="ingest", ids_checked=True)  # repeats stopped or were quarantined above

    row_rejects = pd.concat(rejects, ignore_index=True)
    voter_file_row_rejects = int(
        ((row_rejects[S.REJECT_FILE] == file) & (row_rejects[S.REJECT_SCOPE] == "row")).sum())
    voter_field_rejects = int(((row_rejects[S.REJECT_FILE] == file) & (row_rejects[S.REJECT_SCOPE] == "field")).sum())
    stages.insert(0, StageRecord(
        name="voters",
        rows_in=read.rows_in,
        rows_out=len(voters),
        rows_rejected=voter_file_row_rejects,
        seconds=0.0,
        metrics={
            "geocoded": int(voters[S.GEOCODED].sum()),
            "not_geocoded": int((~voters[S.GEOCODED]).sum()),
            "field_rejects": voter_field_rejects,
            "duplicates_quarantined": n_dup_dropped,
            "households": parsed_addr.n_households if not n_dup_dropped else int(voters[S.HOUSEHOLD_ID].nunique()),
            "buildings": parsed_addr.n_buildings if not n_dup_dropped else int(voters[S.BUILDING_ID].nunique()),
            "addresses_distinct": parsed_addr.n_distinct,
            "addresses_fast_path": parsed_addr.n_fast,
            "addresses_parser": parsed_addr.n_parser,
            "addresses_unparsed": parsed_addr.n_unparsed,
            "layout": lay.name,
            "encoding": enc,
        },
    ))
    stages[0].seconds = round(time.perf_counter() - t0 - history_seconds, 3)

    if history_error is not None:
        raise history_error
    if h_stage is not None:
        h_stage.seconds = round(history_seconds, 3)
        stages.append(h_stage)
    rejects.append(h_rejects)
    all_rejects = pd.concat([r for r in rejects if len(r)] or [S.empty_rejects()], ignore_index=True)
    return VoterFileRead(voters=voters, history=hist, rejects=all_rejects, stages=stages)


# --- geocodes ---------------------------------------------------------------------------------------------------

def _no_text(index: pd.Index) -> pd.Series:
    """An all-null text categorical (a field the layout does not have)."""
    return sorted_text_categorical(np.full(len(index), -1, dtype=np.int8), pa.array([], pa.large_string()),
                                   index=index)


def _pick(columns: Sequence[str], *names: str) -> str | None:
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _building_key(address: pd.Series, unit: pd.Series, place: pd.Series) -> pd.Series:
    """Normalized building address (the address without its unit) plus place: the address join key."""
    building = address.astype("str").str.replace(r" UNIT \S+$", "", regex=True)
    return (building + "|" + place.astype("str").fillna("")).where(address.notna())


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while millions of objects that hold no cycles are created.

    Every shapely point is a tracked Python object: building 5M of them triggered a dozen full collections, each
    walking every object made so far (1.4 of the 3 s). Reference counting still frees everything meanwhile; the
    collector is resumed (if it was on) when the block ends, even on error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _points(lng: np.ndarray, lat: np.ndarray, geocoded: np.ndarray, *,
            min_points: int = DISTINCT_MIN_POINTS) -> gpd.array.GeometryArray:
    """Points (EPSG:4326) of the geocoded voters, None for the others.

    Voters at the same coordinates (a household's rooftop geocode) share one point object: shapely geometries are
    immutable, and each costs about 200 bytes of fresh memory (5M voters at 1.8M distinct coordinates: 1 GB of
    points becomes 0.4 GB, and the read is shorter). ``min_points`` is :func:`distinct_points`'.
    """
    rows = np.flatnonzero(geocoded)
    x, y = lng[rows], lat[rows]
    with _gc_paused():
        distinct = distinct_points(x, y, min_points=min_points)
        if distinct is None:
            geoms = np.full(len(lng), None, dtype=object)
            geoms[rows] = shapely.points(x, y)
        else:
            codes, first = distinct
            made = shapely.points(x[first], y[first])
            del x, y
            # one gather of the object references: row -> its point, or the None appended at the end
            pick = np.full(len(lng), len(made), dtype=np.int64)
            pick[rows] = codes
            del codes, rows
            geoms = np.append(made, np.array([None], dtype=object))[pick]
    return gpd.array.GeometryArray(geoms, crs=S.CRS_STORAGE)


def _shared_codes(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes of two string columns over their common distinct values (-1 for null), and how many."""
    packed_a = pack_short_str(a)
    packed_b = pack_short_str(b) if packed_a is not None else None
    if packed_a is not None and packed_b is not None:  # short ids: hashed as integers, several times faster
        codes, uniques = pd.factorize(np.concatenate([packed_a[0], packed_b[0]]))
        codes = codes.astype(np.int64, copy=False)
        codes[~np.concatenate([packed_a[1], packed_b[1]])] = -1  # (a code left unused by nulls is harmless)
        return codes[: len(a)], codes[len(a):], len(uniques)
    enc = pc.dictionary_encode(pa.concat_arrays([arrow_str(a), arrow_str(b)]))
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return codes[: len(a)], codes[len(a):], len(enc.dictionary)


def _match_keys(g_keys: pd.Series, v_keys: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match geocode keys to voter keys.

    Returns
    -------
    known
        Per geocode row: its key is some voter's (null keys never are).
    repeated
        Per geocode row: an earlier row has the same key (null keys count as one key).
    first_row
        Per voter: the first geocode row with the voter's key, ``-1`` when none (or the voter's key is null).
    """
    packed_g = pack_short_str(g_keys)
    packed_v = pack_short_str(v_keys) if packed_g is not None else None
    if packed_g is not None and packed_v is not None:
        return _match_packed(packed_g[0], packed_g[1], packed_v[0], packed_v[1])
    g_codes, v_codes, n_codes = _shared_codes(g_keys, v_keys)
    in_voters = np.zeros(n_codes + 1, dtype=bool)  # slot n_codes: null keys, never known
    in_voters[v_codes[v_codes >= 0]] = True
    slots = np.where(g_codes >= 0, g_codes, n_codes)
    known = in_voters[slots]
    firsts, first_of = np.unique(slots, return_index=True)
    repeated = np.ones(len(g_codes), dtype=bool)
    repeated[first_of] = False
    first_of_code = np.full(n_codes + 1, -1, dtype=np.int64)
    first_of_code[firsts] = first_of
    first_of_code[n_codes] = -1  # null voter keys match nothing
    first_row = first_of_code[np.where(v_codes >= 0, v_codes, n_codes)]
    return known, repeated, first_row


def _match_packed(g_keys: np.ndarray, g_valid: np.ndarray, v_keys: np.ndarray, v_valid: np.ndarray) -> (
    tuple[np.ndarray, np.ndarray, np.ndarray]
):
    """:func:`_match_keys` for keys packed into integers (:func:`pack_short_str`), by sorting instead of hashing.

    The geocode keys are sorted once (a stable sort, so each run of equal keys starts with its first row; already
    sorted keys, as vendors return them, take one linear pass); each voter key is then found by binary search.
    """
    m = len(g_keys)
    order: np.ndarray | None = None  # None: the keys are in order already (no gathers)
    if g_valid.all() and bool(np.all(g_keys[1:] >= g_keys[:-1])):
        ordered = g_keys
    else:
        rows = np.flatnonzero(g_valid)
        order = rows[np.argsort(g_keys[rows], kind="stable")]
        ordered = g_keys[order]
    starts = np.ones(len(ordered), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    uniques = ordered[starts]
    first_of = np.flatnonzero(starts) if order is None else order[starts]
    repeated = np.ones(m, dtype=bool)
    repeated[first_of] = False
    nulls = np.flatnonzero(~g_valid)
    if len(nulls):
        repeated[nulls[0]] = False  # the first null key is the first of its kind
    known = np.zeros(m, dtype=bool)
    if not len(uniques):
        first_row = np.full(len(v_keys), -1, dtype=np.int64)
    else:
        # in place where it can be: 5M voters made six 40 MB temporaries here, and fresh memory is slow to fault in
        pos = np.searchsorted(uniques, v_keys)
        np.minimum(pos, len(uniques) - 1, out=pos)
        hit = uniques[pos] == v_keys
        hit &= v_valid
        hit_unique = np.zeros(len(uniques), dtype=bool)
        hit_unique[pos[hit]] = True
        first_row = first_of[pos]
        first_row[~hit] = -1
        unique_of = np.cumsum(starts)
        unique_of -= 1
        known_ordered = hit_unique[unique_of]
        if order is None:
            known = known_ordered
        else:
            known[order] = known_ordered
    return known, repeated, first_row


def _geocodes_by_id(job: Future[list[DelimitedRead]] | None) -> bool:
    """Whether the geocodes file read on the side has a voter id column (else it joins by address)."""
    try:
        read = job.result()[0] if job is not None else None
    except Exception:  # raised again where the geocodes are read, after the addresses as before
        return False
    return read is not None and _GeocodeColumns.pick(
        [c for c in read.table.columns if c != S.SOURCE_LINE]).id is not None


def _read_geocodes_file(path: Path, encoding: str) -> list[DelimitedRead]:
    """The geocodes file read on a side thread, in a list its reader empties (the future would keep the table).

    Only the columns :func:`_read_geocodes` uses are parsed (vendors add scores and match types: 5M rows of them
    cost 0.3 s and 150 MB), the coordinates as numbers by Arrow when they all are (0.4 s less than the text); a
    file lacking some is read whole, so the error lists every column it has.
    """
    used = _GeocodeColumns.pick(_header_of(path, ",", encoding)).used()
    return [read_delimited(path, delimiter=",", header=True, encoding=encoding, what="geocodes file",
                           usecols=used, floats=used[-2:] if used else ())]


@dataclass(frozen=True)
class _GeocodeColumns:
    """The columns of a geocodes file, by the names vendors give them (``None`` when absent)."""

    id: str | None
    address: str | None
    zip: str | None
    city: str | None
    lat: str | None
    lng: str | None

    @staticmethod
    def pick(cols: Sequence[str]) -> _GeocodeColumns:
        return _GeocodeColumns(
            id=_pick(cols, "voter_id", "voterid", "id"),
            address=_pick(cols, "address", "street_address", "res_street_address"),
            zip=_pick(cols, "zip", "zip5", "zip_code", "zipcode", "postal_code"),
            city=_pick(cols, "city"),
            lat=_pick(cols, "latitude", "lat", "y"),
            lng=_pick(cols, "longitude", "lng", "lon", "long", "x"),
        )

    def key_ok(self) -> bool:
        """A voter id, or an address with a ZIP or a city."""
        return self.id is not None or (self.address is not None and (self.zip is not None or self.city is not None))

    def used(self) -> list[str] | None:
        """The key columns, then latitude and longitude; ``None`` when some are missing."""
        if not self.key_ok() or self.lat is None or self.lng is None:
            return None
        keys = [self.id] if self.id is not None else [self.address, self.zip, self.city]
        return [*(c for c in keys if c is not None), self.lat, self.lng]


def _read_geocodes(
    path: Path, voters: pd.DataFrame, *, encoding: str, prefetched: Future[list[DelimitedRead]] | None = None
) -> tuple[pd.Series, pd.Series, pd.DataFrame, StageRecord]:
    """Read a vendor geocodes file and align its coordinates to ``voters``.

    Joined by voter id when the file has one; else by normalized address (building, without unit) and ZIP (or
    city), so one rooftop geocode serves every flat of a building.
    """
    t0 = time.perf_counter()
    read = (prefetched.result() if prefetched is not None else _read_geocodes_file(path, encoding)).pop()
    cols = [c for c in read.table.columns if c != S.SOURCE_LINE]
    picked = _GeocodeColumns.pick(cols)
    id_col, addr_col, zip_col, city_col = picked.id, picked.address, picked.zip, picked.city
    lat_col, lng_col = picked.lat, picked.lng
    missing = [n for n, c in (("voter_id (or address with zip or city)", "ok" if picked.key_ok() else None),
                              ("latitude", lat_col), ("longitude", lng_col)) if c is None]
    if missing:
        raise MissingColumnsError(
            f"geocodes file lacks columns {missing}",
            where=Location(path, 1),
            expected="voter_id (or address and zip), latitude and longitude (or lat/lng)",
            found=f"{cols}",
            fix="rename the columns to voter_id, latitude, longitude",
        )
    assert lat_col is not None and lng_col is not None
    t = read.table
    file = str(path)
    rejects = [read.rejects]
    raw_lat, raw_lng = t[lat_col], t[lng_col]
    # reasons as codes into a table (no string per row): 0 none, then the coordinate problems, then the rest
    num_lat, num_lng, code = coordinate_codes(raw_lat, raw_lng)
    check_projected(num_lat, num_lng, file=path, what="geocodes file")
    check_swapped(num_lat, num_lng, file=path, what="geocodes file")
    no_coords, unknown, repeat = len(PROBLEMS) + 1, len(PROBLEMS) + 2, len(PROBLEMS) + 3
    code[(raw_lat.isna() & raw_lng.isna()).to_numpy()] = no_coords
    del raw_lat, raw_lng
    if id_col is not None:
        by = "voter_id"
        keys = _stripped(t[id_col])
        voter_keys = voters[S.VOTER_ID]
        unknown_reason = "voter id not in the voter file"
        repeat_reason = "repeated voter id: the first geocode is used"
    else:
        by = "address"
        assert addr_col is not None
        use_zip = zip_col is not None and voters[S.ZIP5].notna().any()
        g_place = normalize_zip(t[zip_col]) if use_zip and zip_col else t[str(city_col)].str.upper().str.strip()
        v_place = voters[S.ZIP5] if use_zip else voters[S.CITY].str.upper().str.strip()
        parsed = parse_addresses(t[addr_col], zip5=g_place).parts
        keys = _building_key(parsed[S.ADDRESS], parsed[S.UNIT], g_place)
        voter_keys = _building_key(voters[S.ADDRESS], voters[S.UNIT], v_place)
        unknown_reason = "address not in the voter file"
        repeat_reason = "repeated address: the first geocode is used"
    known, repeated, first_row = _match_keys(keys, voter_keys)
    code[~known & (code == 0)] = unknown
    # repeats: every row after the first of its key (null keys repeat each other, as pandas' duplicated says)
    code[repeated & (code == 0)] = repeat
    bad = code != 0
    if bad.any():
        table = np.array(["", *PROBLEMS, "no coordinates (failed geocode)", unknown_reason, repeat_reason],
                         dtype=object)
        rejects.append(S.make_rejects(file, t.loc[bad, S.SOURCE_LINE].astype("int64"), table[code[bad]].tolist()))
    # align: each voter takes the first geocode row of its key when that row is good (a later row of the same key
    # is a repeat, so it never is)
    row = np.maximum(first_row, 0)
    if len(bad):
        lost = bad[row]
        lost |= first_row < 0
        lat_np, lng_np = num_lat[row], num_lng[row]  # one gather each, then NaN in place
        lat_np[lost] = np.nan
        lng_np[lost] = np.nan
    else:
        lat_np, lng_np = np.full(len(first_row), np.nan), np.full(len(first_row), np.nan)
    lat, lng = pd.Series(lat_np, index=voters.index), pd.Series(lng_np, index=voters.index)
    stage = StageRecord(
        name="geocodes", rows_in=read.rows_in, rows_out=int((~bad).sum()),
        rows_rejected=int(bad.sum() + len(read.rejects)), seconds=round(time.perf_counter() - t0, 3),
        metrics={"joined_by": by, "voters_matched": int(lat.notna().sum())},
    )
    return lat, lng, pd.concat(rejects, ignore_index=True), stage


# --- vote history -----------------------------------------------------------------------------------------------

_PARTY_BALLOT_TYPES = ("primary", "presidential_primary", "runoff")


def _history_frame(
    voter_id: pd.Series, dates: pd.Series, etype: pd.Series, voted: pd.Series, method: pd.Series,
    party: pd.Series, lines: pd.Series,
) -> pd.DataFrame:
    # files repeat the voter's registered party on general-election rows; a ballot party exists only in primaries
    etype = etype.reset_index(drop=True).astype("str")
    primary = isin_str(etype, pd.Series(_PARTY_BALLOT_TYPES, dtype="str"))
    party = party.reset_index(drop=True).fillna("").astype("str").where(primary, "")
    return pd.DataFrame(
        {
            S.VOTER_ID: voter_id.reset_index(drop=True).astype("str"),
            S.ELECTION_DATE: pd.to_datetime(dates.reset_index(drop=True)).astype("datetime64[ms]"),
            S.ELECTION_TYPE: etype,
            S.VOTED: voted.reset_index(drop=True).astype(bool),
            S.VOTE_METHOD: method.reset_index(drop=True).astype("str"),
            S.BALLOT_PARTY: party,
            S.SOURCE_LINE: lines.reset_index(drop=True).astype("Int64"),
        }
    )


def _empty_history() -> pd.DataFrame:
    e = pd.Series([], dtype="str")
    return _history_frame(e, pd.Series([], dtype="datetime64[ms]"), e, pd.Series([], dtype=bool), e, e,
                          pd.Series([], dtype="Int64"))


def _map_values(values: pd.Series, mapping: Any, default: str | None) -> pd.Series:
    table = {str(k).upper(): str(v) for k, v in dict(mapping or {}).items()}

    def _map(u: pd.Series) -> pd.Series:
        up = u.astype("str").str.strip().str.upper()
        mapped = up.map(table)
        return (mapped.fillna(up) if default is None else mapped.fillna(default)).astype("str")

    return per_distinct(values.fillna("").astype("str"), _map)


@dataclass
class _LongHistory:
    """A long vote-history file read and mapped row by row, before the voters are known."""

    read: DelimitedRead
    path: Path
    fmt: str
    vid: pd.Series
    dates: pd.Series
    etype: pd.Series
    method: pd.Series
    voted: pd.Series
    party: pd.Series
    vid_codes: np.ndarray  # voter id -> its distinct value (-1 for null), hashed on the side thread
    vid_distinct: pd.Series
    seconds: float


def _prepare_long_history(lay: Layout, hpath: Path, enc: str) -> _LongHistory:
    """Read a long history file and map every row (dates, types, methods, parties), each distinct value once.

    Needs nothing from the voter file, so it runs beside the voters; :func:`_finish_long_history` checks the ids.
    """
    t0 = time.perf_counter()
    h = lay.history
    party_map = dict(lay.party_map)
    id_col = str(h["voter_id"])
    date_col = str(h["election_date"])
    req = [id_col, date_col] + [str(h[k]) for k in ("election_desc", "election_type", "method", "ballot_party",
                                                    "absentee") if k in h]
    read = read_delimited(
        hpath, delimiter=str(h.get("delimiter", lay.delimiter)), header=bool(h.get("header", True)),
        columns=h.get("columns"), required=req if h.get("header", True) else (), usecols=req, encoding=enc,
        what="vote history file",
    )
    t = read.table
    fmt = str(h.get("date_format", "%m/%d/%Y"))
    dates = _parse_dates(t[date_col], fmt)
    vid = t[id_col].astype("str").str.strip()
    # every mapping is per row (each distinct value once), so mapping all rows and keeping the good ones later
    # gives what mapping the good rows would
    if "election_type" in h:
        etype = _map_values(t[str(h["election_type"])], h.get("type_map"), "other")
    elif "election_desc" in h:
        etype = classify_election(t[str(h["election_desc"])])
    else:
        etype = election_type_from_date(dates)
    if "method" in h:
        method = _map_values(t[str(h["method"])], h.get("method_map"), "unknown")
        codes = {str(c).upper() for c in dict(h.get("not_voted", {})).get("codes", [])}
        voted = ~per_distinct(
            t[str(h["method"])].fillna("").astype("str"), lambda u: u.str.strip().str.upper().isin(codes))
    elif "absentee" in h:
        absentee = per_distinct(t[str(h["absentee"])].fillna("").astype("str"),
                                lambda u: u.str.strip().str.upper().isin(["Y", "YES", "1", "TRUE"]))
        method = pd.Series(np.where(absentee, "absentee", "polls"), index=t.index, dtype="str")
        voted = pd.Series(True, index=t.index)
    else:
        method = pd.Series("unknown", index=t.index, dtype="str")
        voted = pd.Series(True, index=t.index)
    if "ballot_party" in h:
        party = _map_values(t[str(h["ballot_party"])], party_map, None)
    else:
        party = pd.Series("", index=t.index, dtype="str")
    vid_codes, vid_distinct = factorize_str(vid)
    read.table = t[[S.SOURCE_LINE]]  # every value is mapped: only the line numbers are needed from here
    del t
    return _LongHistory(read=read, path=hpath, fmt=fmt, vid=vid, dates=dates, etype=etype, method=method,
                        voted=voted, party=party, vid_codes=vid_codes, vid_distinct=vid_distinct,
                        seconds=time.perf_counter() - t0)


def _finish_long_history(
    prep: _LongHistory, voters: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, StageRecord]:
    """Quarantine history rows without a valid date or a known voter and build the long history frame."""
    t0 = time.perf_counter()
    read, vid, dates = prep.read, prep.vid, prep.dates
    t = read.table
    file = str(prep.path)
    reason = pd.Series(None, index=t.index, dtype="object")
    reason = reason.mask(dates.isna(), f"election date is not a valid date in format {prep.fmt}")
    reason = reason.mask(vid.isna() | (vid == ""), "missing voter id")
    # each distinct id is looked up once among the voters; null ids are never known
    known_distinct = np.append(isin_str(prep.vid_distinct, voters[S.VOTER_ID]), False)
    known = known_distinct[prep.vid_codes]  # code -1 takes the appended False
    reason = reason.mask(reason.isna().to_numpy() & ~known, "voter id not in the voter file")
    bad = reason.notna().to_numpy()
    rejects = [read.rejects]
    if bad.any():
        rejects.append(S.make_rejects(file, t.loc[bad, S.SOURCE_LINE].astype("int64"),
                                      reason[bad].astype(str).tolist()))
    columns = (vid, dates, prep.etype, prep.voted, prep.method, prep.party, t[S.SOURCE_LINE])
    if bad.any():  # no copies of millions of rows when every row is good
        good = ~bad
        columns = tuple(c[good] for c in columns)  # type: ignore[assignment]
    frame = _history_frame(*columns)
    rej = pd.concat(rejects, ignore_index=True)
    stage = StageRecord("history", rows_in=read.rows_in, rows_out=len(frame), rows_rejected=len(rej),
                        seconds=round(prep.seconds + time.perf_counter() - t0, 3),
                        metrics={"style": "long", "elections": int(frame[S.ELECTION_DATE].nunique())})
    return frame, rej, stage


def _read_history(
    lay: Layout, table: pd.DataFrame, voters: pd.DataFrame, path: Path, history: str | Path | None,
    election_map: str | Path | None, enc: str, prepared: Future[_LongHistory] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, StageRecord | None]:
    h = lay.history
    style = lay.history_style
    party_map = dict(lay.party_map)
    if style == "long":
        if history is None:
            return _empty_history(), S.empty_rejects(), None
        prep = prepared.result() if prepared is not None else _prepare_long_history(lay, Path(history), enc)
        return _finish_long_history(prep, voters)

    if style == "none":
        if history is not None:
            raise ConfigError(
                f"layout {lay.name!r} has no [history] table, so the history file cannot be read",
                fix="add a [history] table to the mapping (see docs/layouts.md) or drop --history",
            )
        return _empty_history(), S.empty_rejects(), None
    if history is not None:
        raise ConfigError(
            f"layout {lay.name!r} keeps vote history inside the voter file; a separate history file was given",
            fix="drop --history",
        )
    kept = table.set_index(table[lay.fields["voter_id"][0]].astype("str").str.strip())
    kept = kept.loc[isin_str(pd.Series(kept.index, dtype="str"), voters[S.VOTER_ID])]
    kept = kept[~kept.index.duplicated(keep="last")]
    if style == "wide":
        pattern = re.compile(str(h["column_pattern"]))
        cols = [c for c in kept.columns if pattern.match(str(c))]
        if not cols:
            return _empty_history(), S.empty_rejects(), StageRecord("history", 0, 0, 0, 0.0, {"style": "wide"})
        cells = kept[cols].stack(future_stack=True).dropna()
        cells = cells[cells.astype("str").str.strip() != ""]
        vid = pd.Series(cells.index.get_level_values(0), dtype="str")
        col = pd.Series(cells.index.get_level_values(1), dtype="str")
        parts = col.str.extract(str(h["column_pattern"]))
        dates = _parse_dates(parts[1], str(h.get("date_format", "%m/%d/%Y")))
        etype = _map_values(parts[0], h.get("type_map"), "other")
        values = pd.Series(cells.to_numpy(), dtype="str").str.strip().str.upper()
        party = _map_values(values, h.get("value_map"), None)
        lines = pd.Series(kept[S.SOURCE_LINE].reindex(vid.to_numpy()).to_numpy(), dtype="Int64")
        method = pd.Series("unknown", index=vid.index, dtype="str")
        frame = _history_frame(vid, dates, etype, pd.Series(True, index=vid.index), method, party, lines)
        frame = frame.sort_values([S.VOTER_ID, S.ELECTION_DATE], kind="stable").reset_index(drop=True)
        stage = StageRecord("history", rows_in=len(frame), rows_out=len(frame), rows_rejected=0, seconds=0.0,
                            metrics={"style": "wide", "election_columns": len(cols),
                                     "elections": int(frame[S.ELECTION_DATE].nunique())})
        return frame, S.empty_rejects(), stage

    # positional pairs (PA) resolved through the election map
    if election_map is None:
        raise ConfigError(
            f"layout {lay.name!r} stores vote history as numbered elections; the election map is needed to date them",
            fix="pass --election-map '<COUNTY> Election Map.txt'",
        )
    mpath = Path(election_map)
    mcols = list(h.get("map_columns", ["county", "number", "title", "date"]))
    mread = read_delimited(mpath, delimiter=str(h.get("map_delimiter", "\t")), header=False, columns=mcols,
                           encoding=enc, what="election map")
    emap = mread.table
    emap["_number"] = pd.to_numeric(emap["number"], errors="coerce")
    emap["_date"] = _parse_dates(emap["date"], str(h.get("date_format", "%m/%d/%Y")))
    emap["_county"] = emap["county"].astype("str").str.strip().str.upper()
    bad_map = emap["_number"].isna() | emap["_date"].isna()
    if bad_map.any():
        raise InputFileError(
            "election map rows without a valid number or date",
            where=Location(mpath, int(emap.loc[bad_map, S.SOURCE_LINE].iloc[0])),
            expected="county, election number, title, date (MM/DD/YYYY)",
            fix="check the election map file",
        )
    n_pairs = int(h.get("pairs", 40))
    frames = []
    rows_in = 0
    county_col = lay.fields.get("county", (None,))[0]
    for i in range(1, n_pairs + 1):
        mcol = str(h["method_column"]).format(n=i)
        pcol = str(h["party_column"]).format(n=i)
        if mcol not in kept.columns:
            continue
        m = kept[mcol].fillna("").astype("str").str.strip()
        has = (m != "").to_numpy()
        rows_in += int(has.sum())
        if not has.any():
            continue
        sub = kept.loc[has]
        frames.append(pd.DataFrame({
            "vid": sub.index.to_numpy(), "n": i, "method": m[has].to_numpy(),
            "party": sub[pcol].to_numpy() if pcol in sub.columns else "",
            "county": sub[county_col].astype("str").str.strip().str.upper().to_numpy() if county_col else "",
            "line": sub[S.SOURCE_LINE].to_numpy(),
        }))
    if not frames:
        return _empty_history(), S.empty_rejects(), StageRecord("history", 0, 0, 0, 0.0, {"style": "pairs"})
    long = pd.concat(frames, ignore_index=True)
    counties = set(emap["_county"])
    on_county = bool(county_col) and bool(isin_str(long["county"].astype("str"),
                                                   pd.Series(sorted(counties), dtype="str")).all())
    keys = ["_county", "_number"] if on_county else ["_number"]
    lookup = emap.drop_duplicates(keys).set_index(keys)
    idx = pd.MultiIndex.from_arrays([long["county"], long["n"]]) if on_county else pd.Index(long["n"])
    found = lookup.reindex(idx)
    unresolved = found["_date"].isna().to_numpy()
    pair_rejects = S.empty_rejects()
    if unresolved.any():
        pair_rejects = S.make_rejects(str(path), long.loc[unresolved, "line"].astype("int64"),
                                 "election number not in the election map", scope="field", column="history")
    long, found = long.loc[~unresolved], found.loc[~unresolved]
    frame = _history_frame(
        pd.Series(long["vid"].to_numpy()), pd.Series(found["_date"].to_numpy()),
        classify_election(pd.Series(found["title"].to_numpy())), pd.Series(True, index=range(len(long))),
        _map_values(pd.Series(long["method"].to_numpy()), h.get("method_map"), "unknown"),
        _map_values(pd.Series(long["party"].to_numpy()), party_map, None), pd.Series(long["line"].to_numpy()),
    )
    frame = frame.sort_values([S.VOTER_ID, S.ELECTION_DATE], kind="stable").reset_index(drop=True)
    stage = StageRecord("history", rows_in=rows_in, rows_out=len(frame), rows_rejected=int(unresolved.sum()),
                        seconds=0.0, metrics={"style": "pairs", "elections": int(frame[S.ELECTION_DATE].nunique())})
    return frame, pair_rejects, stage
