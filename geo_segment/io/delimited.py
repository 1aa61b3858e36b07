"""Delimited text reading with physical line numbers, strict encodings and quarantined bad rows.

Every physical line after the header is a row: it ends in the returned table (with its line number in
``source_line``) or in the rejects with its line number and reason. ``rows_in == len(table) + len(rejects)``.
Fields are read as strings; typing happens in the layout mapping, where a bad value quarantines a field, not a row.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from geo_segment import schema as S
from geo_segment.errors import (
    ConfigError,
    EncodingError,
    InputFileError,
    InputNotFoundError,
    Location,
    MissingColumnsError,
)

__all__ = ["DelimitedRead", "read_delimited", "scan_text"]

_CHUNK = 1 << 24
_DELIMITER_NAMES = {",": "comma", "\t": "tab", "|": "pipe", ";": "semicolon"}


@dataclass(frozen=True)
class TextScan:
    """What one pass over a file's bytes found."""

    n_lines: int
    first_line: str


def _describe_delim(d: str) -> str:
    return _DELIMITER_NAMES.get(d, repr(d))


def _utf8_valid(block: bytes | memoryview) -> bool:
    """Validate UTF-8 with Arrow's vectorized validator (no copy, no Python decoding, the GIL released).

    The binary-to-string cast checks every byte; a large block becomes one binary value (int64 offsets).
    """
    buf = pa.py_buffer(block)
    offsets = pa.py_buffer(np.array([0, len(buf)], dtype=np.int64).tobytes())
    arr = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, buf])
    try:
        arr.cast(pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def _count_newlines(block: bytes | bytearray | memoryview, scratch: np.ndarray | None = None) -> int:
    """Count ``\\n`` bytes with numpy: a vectorized compare into ``scratch`` (a reused bool buffer at least as long
    as the block, so no fresh pages per block) and a count; the GIL is released, unlike ``bytes.count``, which
    was also three times slower."""
    data = np.frombuffer(block, dtype=np.uint8)
    if scratch is None or len(scratch) < len(data):
        return int(np.count_nonzero(data == 10))
    out = scratch[: len(data)]
    np.equal(data, 10, out=out)
    return int(np.count_nonzero(out))


def scan_text(path: Path, encoding: str) -> TextScan:
    """Check every byte decodes in ``encoding`` and count physical lines, in one streaming pass.

    UTF-8 is validated in blocks cut at line ends (a newline never falls inside a multi-byte sequence) by Arrow's
    validator; only a failing block is decoded by Python, to find the exact byte offset.

    Raises
    ------
    EncodingError
        Naming the byte offset and line of the first undecodable byte and suggesting ``--encoding``.
    """
    is_utf8 = codecs.lookup(encoding).name == "utf-8"
    offset = 0  # file offset of the start of ``pending``
    newlines = 0
    first = b""
    last_byte = b""

    def check(view: memoryview, final: bool) -> None:
        if is_utf8 and _utf8_valid(view):
            return
        block = bytes(view)
        try:
            block.decode(encoding, errors="strict")
        except UnicodeDecodeError as exc:
            bad = offset + exc.start
            line = newlines + block.count(b"\n", 0, exc.start) + 1
            if exc.start >= len(block) - 3 and final and exc.reason.startswith("unexpected end"):
                raise EncodingError(
                    f"the file ends inside a multi-byte {encoding} sequence at byte offset {bad}",
                    where=Location(path, line),
                    fix="check the file was not truncated, or pass --encoding",
                ) from None
            raise EncodingError(
                f"byte 0x{block[exc.start]:02x} at byte offset {bad} is not valid {encoding}",
                where=Location(path, line),
                expected=f"{encoding} text (a UTF-8 byte-order mark is accepted)",
                found="bytes of another encoding (often latin-1 or cp1252)",
                fix="pass --encoding latin-1 (or cp1252) if that is how the file was written",
            ) from None

    # one reused buffer: blocks are read into it, validated and counted in place, and the unfinished last line
    # moves to its front (fresh 16 MB buffers per block cost more in page faults than the checks themselves)
    buf = bytearray(_CHUNK)
    scratch = np.empty(0, dtype=bool)  # for counting newlines: as long as the longest block (small files, small)
    start = 0  # bytes of the unfinished line at the front of ``buf``
    with open(path, "rb") as fh:
        while True:
            if start == len(buf):  # a line longer than the buffer: grow it
                buf = buf + bytearray(len(buf))
            with memoryview(buf) as view:
                n = fh.readinto(view[start:])
            if not n:
                break
            end = start + n
            if not first and offset == 0:
                nl = buf.find(b"\n", 0, end)
                first = bytes(buf[: nl if nl >= 0 else end])
            cut = buf.rfind(b"\n", 0, end) + 1
            if cut == 0:
                start = end
                continue
            with memoryview(buf) as view:
                check(view[:cut], final=False)
            if len(scratch) < cut:  # blocks of a big file all fit the buffer's length: one allocation
                scratch = np.empty(cut if cut < len(buf) // 4 else len(buf), dtype=bool)
            with memoryview(buf) as view:
                newlines += _count_newlines(view[:cut], scratch)
            offset += cut
            last_byte = bytes(buf[cut - 1 : cut])
            buf[: end - cut] = buf[cut:end]
            start = end - cut
        if start:
            pending = bytes(buf[:start])
            with memoryview(pending) as view:
                check(view, final=True)
            offset += len(pending)
            last_byte = pending[-1:]
            if not first:
                first = pending
    n_lines = newlines + (1 if offset and last_byte != b"\n" else 0)
    head = first.rstrip(b"\r")
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    return TextScan(n_lines=n_lines, first_line=head.decode(encoding, errors="strict"))


class _NotFloats(Exception):
    """A column asked for as floats holds a value that is not a number."""


@dataclass
class DelimitedRead:
    """The result of :func:`read_delimited`."""

    table: pd.DataFrame
    rejects: pd.DataFrame
    rows_in: int
    header: list[str]
    #: the whole-file scan still running (``late_scan``), and the physical lines the parse accounted for
    pending_scan: Future[TextScan] | None = None
    n_lines: int = 0
    path: Path | None = None
    what: str = "file"

    def confirm(self) -> None:
        """Wait for a late scan: raise its :class:`EncodingError`, or an error when the file's physical lines are
        not the lines the parse accounted for. Nothing to do without a late scan (or once confirmed)."""
        job, self.pending_scan = self.pending_scan, None
        if job is None:
            return
        scan = job.result()
        if scan.n_lines != self.n_lines:  # pragma: no cover - guards the line accounting itself
            raise InputFileError(
                f"{self.what}: line accounting failed ({self.n_lines} lines parsed, {scan.n_lines} in the file)",
                where=Location(self.path),
                fix="the file may hold quoted line breaks; remove them",
            )


def _split_header(line: str, delimiter: str, path: str | Path | None = None) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except csv.Error as exc:  # a bare carriage return inside the first line (classic Mac line endings)
        raise InputFileError(
            "the first line holds a carriage return that does not end the line",
            where=Location(path, 1) if path is not None else None,
            expected="lines ending in LF or CRLF",
            found=f"a bare CR ({exc})",
            fix="convert the file's line endings to LF (e.g. `dos2unix -c mac FILE`)",
        ) from None


def read_delimited(
    path: str | Path,
    *,
    delimiter: str,
    header: bool,
    columns: Sequence[str] | None = None,
    required: Sequence[str] = (),
    usecols: Sequence[str] | None = None,
    encoding: str = "utf-8",
    what: str = "file",
    block_size: int = 1 << 24,
    dictionary: Sequence[str] = (),
    floats: Sequence[str] = (),
    late_scan: bool = False,
) -> DelimitedRead:
    """Read a delimited text file as strings, with line numbers and quarantined bad rows.

    Parameters
    ----------
    path
        The file.
    delimiter
        One character.
    header
        Whether the first line names the columns. Without a header, ``columns`` gives the names in order.
    columns
        Column names for a headerless file.
    required
        Columns that must exist (checked against the header); missing ones raise one error listing them all.
    usecols
        Columns to keep (others are parsed for field counts but not kept). ``None`` keeps all.
    encoding
        ``utf-8`` (strict; a BOM is accepted) or any Python codec name such as ``latin-1``.
    what
        How messages name the file ("voter file", "vote history file", ...).
    block_size
        Bytes per block Arrow parses at once. 1 MB blocks stay in the CPU caches (a 67-column voter file took half
        the CPU time of 16 MB blocks); the table is the same, but held in more chunks, and Parquet files written
        from some such columns differ in bytes (not in values), so the readers whose files the pipeline writes
        keep the default.
    dictionary
        Columns to read dictionary-encoded (pandas categoricals, categories in order of appearance): Arrow's
        parser then keeps each distinct text of a block once, which for columns with few distinct values takes
        less memory and about half the parse time of plain strings.
    floats
        Columns to parse as float64 when every value is a number, ``nan``/``inf`` or empty (Arrow's correctly
        rounded parser; ``pd.ArrowDtype`` columns, so an empty field stays null and apart from ``nan``). One value
        that is not (a word) reads them as strings, like the other columns. (A ``-0`` in a column of integers is
        the one value :func:`geo_segment.io.coords.to_float64` reads otherwise: ``0.0``, as pandas does.)
    late_scan
        UTF-8 files only: Arrow checks the kept columns' bytes as it parses, line numbers come from the parse,
        and the whole-file scan (every byte decodes; the physical lines are the lines parsed) runs afterwards,
        beside the caller's work, instead of beside the parse. The caller must call
        :meth:`DelimitedRead.confirm` before it returns anything read (it raises what the scan found).

    Returns
    -------
    DelimitedRead
        ``table`` holds the kept columns as strings (empty fields are null) plus ``source_line`` (Int64);
        ``rejects`` has ``file``, ``line``, ``column``, ``reason``.

    Raises
    ------
    InputFileError
        Empty file, header only, wrong delimiter, missing columns (the message lists what was found).
    EncodingError
        Bytes invalid in ``encoding``.
    """
    path = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(
            f"unknown text encoding {encoding!r}",
            expected="a Python codec name such as utf-8, latin-1 or cp1252",
            fix="pass --encoding latin-1 (for example)",
        ) from None
    if not path.exists():
        raise InputNotFoundError(f"{what} not found", where=Location(path), fix="check the path")
    if path.stat().st_size == 0:
        raise InputFileError(
            f"{what} is empty (0 bytes)",
            where=Location(path),
            expected="a header line and at least one row" if header else "at least one row",
            fix="check the export finished and the right file was given",
        )
    # the whole-file scan (strict decoding, line count) runs on the other core while Arrow parses, or after it
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")
    late = late_scan and codecs.lookup(encoding).name == "utf-8"
    scan_job = _LateScan(pool, path, encoding) if late else pool.submit(scan_text, path, encoding)
    read: DelimitedRead | None = None
    try:
        read = _read(path, scan_job, block_size=block_size, delimiter=delimiter, header=header, columns=columns,
                     required=required, usecols=usecols, encoding=encoding, what=what, dictionary=dictionary,
                     floats=floats, late=late)
        return read
    finally:
        pool.shutdown(wait=read is None or read.pending_scan is None)


class _LateScan:
    """The scan of a ``late_scan`` read: started only when asked for (after the parse, or when an error needs it)."""

    def __init__(self, pool: ThreadPoolExecutor, path: Path, encoding: str) -> None:
        self._pool, self._path, self._encoding = pool, path, encoding
        self._job: Future[TextScan] | None = None

    def start(self) -> Future[TextScan]:
        if self._job is None:
            self._job = self._pool.submit(scan_text, self._path, self._encoding)
        return self._job

    def result(self) -> TextScan:
        return self.start().result()


def _first_line(path: Path, encoding: str, scan_job: Future[TextScan] | _LateScan) -> str:
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20).rstrip(b"\r\n")
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    try:
        return first.decode(encoding, errors="strict")
    except UnicodeDecodeError:
        scan_job.result()  # raises the EncodingError with offset and line
        raise


def _read(
    path: Path,
    scan_job: Future[TextScan] | _LateScan,
    *,
    delimiter: str,
    header: bool,
    columns: Sequence[str] | None,
    required: Sequence[str],
    usecols: Sequence[str] | None,
    encoding: str,
    what: str,
    block_size: int,
    dictionary: Sequence[str] = (),
    floats: Sequence[str] = (),
    late: bool = False,
) -> DelimitedRead:
    first_line = _first_line(path, encoding, scan_job)
    if header:
        names = _split_header(first_line, delimiter, path)
        if len(names) == 1 and len(required) > 1:
            guess = [d for d in _DELIMITER_NAMES if d != delimiter and d in first_line]
            hint = f"; the header looks {_describe_delim(guess[0])}-delimited" if guess else ""
            raise InputFileError(
                f"{what} header has one column with the {_describe_delim(delimiter)} delimiter{hint}",
                where=Location(path, 1),
                expected=f"{_describe_delim(delimiter)}-delimited columns including {list(required)[:5]}",
                found=f"{first_line[:80]!r}",
                fix="pass the --layout matching the file (or set delimiter in your mapping TOML)",
            )
        missing = [c for c in required if c not in names]
        if missing:
            raise MissingColumnsError(
                f"{what} lacks columns {missing}",
                where=Location(path, 1),
                expected=f"columns {list(required)}",
                found=f"{len(names)} columns {names}",
                fix="choose the --layout matching the file, or write a mapping TOML for it",
            )
        first_data = 2
    else:
        if columns is None:
            raise ValueError("columns are required for a headerless file")
        names = list(columns)
        n_first = len(_split_header(first_line, delimiter, path))
        if n_first != len(names):
            raise InputFileError(
                f"{what} line 1 has {n_first} {_describe_delim(delimiter)}-separated fields",
                where=Location(path, 1),
                expected=f"{len(names)} fields per line (headerless layout)",
                found=f"{n_first}",
                fix="check the --layout and the delimiter; a header line means it is not this layout",
            )
        first_data = 1

    bad_lines: list[int] = []
    bad_reasons: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_lines.append(int(row.number) if row.number is not None else -1)
        bad_reasons.append(f"expected {row.expected_columns} fields, found {row.actual_columns}")
        return "skip"

    keep = list(usecols) if usecols is not None else names
    keep = [c for c in keep if c in names]
    arrow_encoding = "utf8" if codecs.lookup(encoding).name == "utf-8" else encoding
    as_dictionary = set(dictionary)
    as_float = {c for c in floats if c in keep}

    def convert_options() -> pacsv.ConvertOptions:
        return pacsv.ConvertOptions(
            # pandas' str dtype holds large_string: no cast
            column_types={c: pa.float64() if c in as_float else
                          pa.dictionary(pa.int32(), pa.large_string()) if c in as_dictionary else pa.large_string()
                          for c in names},
            include_columns=keep,
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=True,
            # every byte is validated by the scan, awaited before the table is used: a second UTF-8 check of the
            # kept columns here would only cost time; a late scan comes after the table is used, so Arrow checks them
            check_utf8=late,
        )

    def parse(threads: bool) -> pa.Table:
        bad_lines.clear()
        bad_reasons.clear()
        read_opts = pacsv.ReadOptions(
            use_threads=threads, encoding=arrow_encoding, column_names=None if header else names,
            block_size=block_size,
        )
        parse_opts = pacsv.ParseOptions(
            delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=False, ignore_empty_lines=False
        )
        try:
            return pacsv.read_csv(path, read_options=read_opts, parse_options=parse_opts,
                                  convert_options=convert_options())
        except pa.ArrowInvalid as exc:
            if as_float and "conversion error to double" in str(exc):
                raise _NotFloats from None
            raise InputFileError(
                f"{what} cannot be parsed: {exc}", where=Location(path), fix="check the delimiter and quoting"
            ) from None

    # threads are fast but do not know the line number of a bad row; re-read on one thread only when needed
    try:
        try:
            table = parse(threads=True)
        except _NotFloats:  # a value that is no number: the float columns are read as text, as the others
            as_float.clear()
            table = parse(threads=True)
    except InputFileError:
        scan_job.result()  # an encoding problem explains a parse failure better
        raise
    if bad_lines:
        table = parse(threads=False)
    if late:  # every physical line is a row or a bad line: the scan checks that count later
        n_lines = first_data - 1 + table.num_rows + len(bad_lines)
    else:
        n_lines = scan_job.result().n_lines
    rows_in = max(n_lines - first_data + 1, 0)
    if rows_in == 0:
        raise InputFileError(
            f"{what} has a header but no data rows",
            where=Location(path),
            expected="at least one row after the header",
            found="header only",
            fix="check the export finished",
        )
    # a line with every field empty is not a usable row (found on the Arrow table: no per-column pandas masks)
    all_null = np.ones(table.num_rows, dtype=bool) if table.num_columns else np.zeros(table.num_rows, dtype=bool)
    for col in table.columns:
        if col.null_count == 0:
            all_null[:] = False
            break
        all_null &= col.is_null().to_numpy(zero_copy_only=False)
    # float columns as Arrow-backed floats: an empty field is null, apart from a nan in the file
    frame = table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if t == pa.float64() else None)
    bad = np.asarray(bad_lines, dtype=np.int64)
    lines = np.arange(first_data, n_lines + 1, dtype=np.int64)
    if bad.size:
        lines = lines[~np.isin(lines, bad)]
    if len(lines) != len(frame):  # pragma: no cover - guards the line accounting itself
        raise InputFileError(
            f"{what}: line accounting failed ({len(frame)} rows parsed, {len(lines)} lines expected)",
            where=Location(path),
            fix="the file may hold quoted line breaks; remove them",
        )
    frame[S.SOURCE_LINE] = pd.array(lines, dtype="Int64")
    empty = all_null
    reject_lines = list(bad_lines)
    reject_reasons = list(bad_reasons)
    if empty.any():
        reject_lines.extend(frame.loc[empty, S.SOURCE_LINE].astype(int).tolist())
        reject_reasons.extend(["empty row (no values)"] * int(empty.sum()))
        frame = frame.loc[~empty].reset_index(drop=True)
    rejects = S.make_rejects(str(path), reject_lines, reject_reasons)
    return DelimitedRead(table=frame, rejects=rejects, rows_in=rows_in, header=names,
                         pending_scan=scan_job.start() if isinstance(scan_job, _LateScan) else None,
                         n_lines=n_lines, path=path, what=what)
