"""Delimited text reading with physical line numbers, strict encodings and quarantined bad rows.

Every physical line after the header is a row: it ends in the returned table (with its line number in
``source_line``) or in the rejects with its line number and reason. ``rows_in == len(table) + len(rejects)``.
Fields are read as strings; typing happens in the layout mapping, where a bad value quarantines a field, not a row.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from geo_segment import schema as S
from geo_segment.errors import EncodingError, InputFileError, InputNotFoundError, Location, MissingColumnsError

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


def scan_text(path: Path, encoding: str) -> TextScan:
    """Check every byte decodes in ``encoding`` and count physical lines, in one streaming pass.

    Raises
    ------
    EncodingError
        Naming the byte offset and line of the first undecodable byte and suggesting ``--encoding``.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    newlines = 0
    first = b""
    last_byte = b""
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            if not first:
                first = block[: block.find(b"\n") if b"\n" in block else len(block)]
            try:
                decoder.decode(block, final=False)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line = newlines + block.count(b"\n", 0, exc.start) + 1
                raise EncodingError(
                    f"byte 0x{block[exc.start]:02x} at byte offset {bad} is not valid {encoding}",
                    where=Location(path, line),
                    expected=f"{encoding} text (a UTF-8 byte-order mark is accepted)",
                    found="bytes of another encoding (often latin-1 or cp1252)",
                    fix="pass --encoding latin-1 (or cp1252) if that is how the file was written",
                ) from None
            newlines += block.count(b"\n")
            offset += len(block)
            last_byte = block[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise EncodingError(
                f"the file ends inside a multi-byte {encoding} sequence at byte offset {offset}",
                where=Location(path, newlines + 1),
                fix="check the file was not truncated, or pass --encoding",
            ) from None
    n_lines = newlines + (1 if offset and last_byte != b"\n" else 0)
    head = first.rstrip(b"\r")
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    return TextScan(n_lines=n_lines, first_line=head.decode(encoding, errors="strict"))


@dataclass
class DelimitedRead:
    """The result of :func:`read_delimited`."""

    table: pd.DataFrame
    rejects: pd.DataFrame
    rows_in: int
    header: list[str]


def _split_header(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter))


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
    if not path.exists():
        raise InputNotFoundError(f"{what} not found", where=Location(path), fix="check the path")
    if path.stat().st_size == 0:
        raise InputFileError(
            f"{what} is empty (0 bytes)",
            where=Location(path),
            expected="a header line and at least one row" if header else "at least one row",
            fix="check the export finished and the right file was given",
        )
    scan = scan_text(path, encoding)
    if header:
        names = _split_header(scan.first_line, delimiter)
        if len(names) == 1 and len(required) > 1:
            guess = [d for d in _DELIMITER_NAMES if d != delimiter and d in scan.first_line]
            hint = f"; the header looks {_describe_delim(guess[0])}-delimited" if guess else ""
            raise InputFileError(
                f"{what} header has one column with the {_describe_delim(delimiter)} delimiter{hint}",
                where=Location(path, 1),
                expected=f"{_describe_delim(delimiter)}-delimited columns including {list(required)[:5]}",
                found=f"{scan.first_line[:80]!r}",
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
        n_first = len(_split_header(scan.first_line, delimiter))
        if n_first != len(names):
            raise InputFileError(
                f"{what} line 1 has {n_first} {_describe_delim(delimiter)}-separated fields",
                where=Location(path, 1),
                expected=f"{len(names)} fields per line (headerless layout)",
                found=f"{n_first}",
                fix="check the --layout and the delimiter; a header line means it is not this layout",
            )
        first_data = 1
    rows_in = max(scan.n_lines - first_data + 1, 0)
    if rows_in == 0:
        raise InputFileError(
            f"{what} has a header but no data rows",
            where=Location(path),
            expected="at least one row after the header",
            found="header only",
            fix="check the export finished",
        )

    bad_lines: list[int] = []
    bad_reasons: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_lines.append(int(row.number) if row.number is not None else -1)
        bad_reasons.append(f"expected {row.expected_columns} fields, found {row.actual_columns}")
        return "skip"

    keep = list(usecols) if usecols is not None else names
    keep = [c for c in keep if c in names]
    read_opts = pacsv.ReadOptions(
        use_threads=False,
        encoding=encoding if encoding.lower().replace("_", "-") not in ("utf-8", "utf8") else "utf8",
        column_names=None if header else names,
        block_size=1 << 24,
    )
    parse_opts = pacsv.ParseOptions(
        delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=False, ignore_empty_lines=False
    )
    conv_opts = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in names},
        include_columns=keep,
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(path, read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts)
    except pa.ArrowInvalid as exc:
        raise InputFileError(
            f"{what} cannot be parsed: {exc}", where=Location(path), fix="check the delimiter and quoting"
        ) from None
    frame = table.to_pandas()
    bad = np.asarray(bad_lines, dtype=np.int64)
    lines = np.arange(first_data, scan.n_lines + 1, dtype=np.int64)
    if bad.size:
        lines = lines[~np.isin(lines, bad)]
    if len(lines) != len(frame):  # pragma: no cover - guards the line accounting itself
        raise InputFileError(
            f"{what}: line accounting failed ({len(frame)} rows parsed, {len(lines)} lines expected)",
            where=Location(path),
            fix="the file may hold quoted line breaks; remove them",
        )
    frame[S.SOURCE_LINE] = pd.array(lines, dtype="Int64")
    # a line with every field empty is not a usable row
    value_cols = [c for c in frame.columns if c != S.SOURCE_LINE]
    empty = frame[value_cols].isna().all(axis=1).to_numpy() if value_cols else np.zeros(len(frame), bool)
    reject_lines = list(bad_lines)
    reject_reasons = list(bad_reasons)
    if empty.any():
        reject_lines.extend(frame.loc[empty, S.SOURCE_LINE].astype(int).tolist())
        reject_reasons.extend(["empty row (no values)"] * int(empty.sum()))
        frame = frame.loc[~empty].reset_index(drop=True)
    rejects = S.make_rejects(str(path), reject_lines, reject_reasons)
    return DelimitedRead(table=frame, rejects=rejects, rows_in=rows_in, header=names)
