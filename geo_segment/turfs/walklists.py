"""Walk lists: one VAN-like CSV per turf, every text cell neutralized against spreadsheet formula injection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_segment import schema as S
from geo_segment._vector import arrow_str, index_in_str
from geo_segment.io.atomic import write_files

__all__ = ["WALKLIST_COLUMNS", "file_stem", "neutralize", "walklist_rows", "walklist_texts", "write_walklists"]

#: columns of ``walklists/<turf_id>.csv``, in order
WALKLIST_COLUMNS = ("list_number", S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID, S.BUILDING_ID, S.VOTER_ID,
                    S.LAST_NAME, S.FIRST_NAME, S.ADDRESS, S.UNIT, "age", S.PARTY, "score", S.LAT, S.LNG,
                    "result_code", "survey_answers", "notes")
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def neutralize(values: pd.Series) -> pd.Series:
    """Prefix ``'`` to text that a spreadsheet would run as a formula (leading ``= + - @``, tab, CR).

    Examples
    --------
    >>> neutralize(pd.Series(["=HYPERLINK(1)", "Ana", "-2+3", "@SUM(A1)", None])).tolist()
    ["'=HYPERLINK(1)", 'Ana', "'-2+3", "'@SUM(A1)", '']
    """
    s = values.astype("string").fillna("")
    risky = s.str.startswith(_TRIGGERS).fillna(False).to_numpy(dtype=bool)
    out = s.to_numpy(dtype=object)
    out[risky] = np.char.add("'", out[risky].astype(str)).astype(object)
    return pd.Series(out, index=values.index, dtype="string")


def file_stem(turf_id: str) -> str:
    """A file name for a turf id (characters other than letters, digits, ``. _ -`` become ``_``)."""
    stem = _UNSAFE.sub("_", str(turf_id)).lstrip(".")
    return stem or "_"


def walklist_rows(
    doors: pd.DataFrame,
    members: pd.DataFrame,
    turfs: pd.DataFrame,
    *,
    as_of_year: int | None = None,
    score_col: str = S.ENGAGEMENT_SCORE,
) -> pd.DataFrame:
    """One row per voter in walking order, with :data:`WALKLIST_COLUMNS` (text not yet neutralized).

    Parameters
    ----------
    doors
        ``cut.doors`` (``door_id``, ``turf_id``, ``door_order``).
    members
        The voters behind the doors (``door_id`` column, from :func:`build_doors`).
    turfs
        ``cut.turfs`` (``turf_id``, ``list_number``).
    as_of_year
        Year ages are computed on (default: this year).
    """
    year = as_of_year or pd.Timestamp.now().year
    # the members' doors and turfs by Arrow hash lookups (as an inner merge on door_id, then a left merge on
    # turf_id: the members' order, those without a door left out)
    if not doors["door_id"].is_unique or not turfs[S.TURF_ID].is_unique:
        raise ValueError("walklist_rows: door_id and turf_id must be unique")
    door_pos = index_in_str(members["door_id"].astype("str"), doors["door_id"].astype("str"))
    has_door = door_pos >= 0
    m = members.loc[has_door].reset_index(drop=True) if not has_door.all() else members.reset_index(drop=True)
    door_pos = door_pos[has_door]
    m[S.TURF_ID] = doors[S.TURF_ID].array.take(door_pos)
    m[S.DOOR_ORDER] = doors[S.DOOR_ORDER].array.take(door_pos)
    turf_pos = index_in_str(m[S.TURF_ID].astype("str"), turfs[S.TURF_ID].astype("str"))
    m["list_number"] = pd.array(turfs["list_number"].to_numpy(), dtype="Int64").take(turf_pos, allow_fill=True)
    for col in (S.LAST_NAME, S.FIRST_NAME, S.ADDRESS, S.UNIT, S.PARTY):
        if col not in m.columns:
            m[col] = ""
    birth = pd.to_numeric(m[S.BIRTH_YEAR], errors="coerce") if S.BIRTH_YEAR in m.columns else pd.Series(
        np.nan, index=m.index)
    score = pd.to_numeric(m[score_col], errors="coerce") if score_col in m.columns else pd.Series(np.nan,
                                                                                                   index=m.index)
    out = pd.DataFrame({
        "list_number": m["list_number"].astype("Int64"),
        S.TURF_ID: m[S.TURF_ID].astype("string"),
        S.DOOR_ORDER: m[S.DOOR_ORDER].astype("Int64"),
        S.HOUSEHOLD_ID: m[S.HOUSEHOLD_ID].astype("string"),
        S.BUILDING_ID: m[S.BUILDING_ID].astype("string"),
        S.VOTER_ID: m[S.VOTER_ID].astype("string"),
        S.LAST_NAME: m[S.LAST_NAME].astype("string"),
        S.FIRST_NAME: m[S.FIRST_NAME].astype("string"),
        S.ADDRESS: m[S.ADDRESS].astype("string"),
        S.UNIT: m[S.UNIT].astype("string"),
        "age": (year - birth).astype("Int64"),
        S.PARTY: m[S.PARTY].astype("string"),
        "score": score.round(3),
        S.LAT: m[S.LAT].astype(float).round(6),
        S.LNG: m[S.LNG].astype(float).round(6),
    })
    # turfs in turf id order: by their rank among the turfs' ids when every row's turf is one of them
    turf_rank = None
    if len(turf_pos) and (turf_pos >= 0).all():
        import pyarrow.compute as pc

        ids = arrow_str(turfs[S.TURF_ID].astype("str"))
        turf_rank = pc.rank(ids, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)[turf_pos]
    out = out.take(_sort_order(out, turf_rank)).reset_index(drop=True)
    for col in ("result_code", "survey_answers", "notes"):  # (empty: added after the sort)
        out[col] = pd.array(np.full(len(out), "", dtype=object), dtype="string")
    return out[list(WALKLIST_COLUMNS)]


#: the walk list's row order: turf, door, household, then names and voter id
_SORT_KEYS = (S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID, S.LAST_NAME, S.FIRST_NAME, S.VOTER_ID)


def _sort_order(rows: pd.DataFrame, turf_rank: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.int64]:
    """``rows.sort_values(_SORT_KEYS, kind="stable")``'s order, by Arrow's stable multi-key sort (strings in code
    point order, missing values last); ``turf_rank``, when given, is each row's rank of its turf id (no missing
    ids), sorted on instead of the ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for c in _SORT_KEYS:
        col = rows[c]
        if c == S.TURF_ID and turf_rank is not None:
            cols[c] = pa.array(turf_rank)
        elif pd.api.types.is_integer_dtype(col.dtype):
            cols[c] = pa.array(col.to_numpy(dtype=float, na_value=np.nan), from_pandas=True)
        else:
            cols[c] = arrow_str(col.astype("str"))
    order = pc.sort_indices(pa.table(cols), sort_keys=[(c, "ascending", "at_end") for c in _SORT_KEYS])
    return order.to_numpy(zero_copy_only=False).astype(np.int64)


def walklist_texts(rows: pd.DataFrame, *, chunk_rows: int = 100_000) -> dict[str, str]:
    """The CSV text of every turf's walk list, keyed by turf id (sorted), text cells neutralized.

    Each text is what ``frame.to_csv(index=False, lineterminator="\\n")`` writes for the turf's rows (in their
    order in ``rows``), but the records are built column-wise in Arrow, text cells neutralized there
    (:func:`_csv_records`; ``to_csv`` in large chunks for other column kinds), and then cut at the turfs' row
    boundaries, instead of one ``to_csv`` per turf. Rows without a turf id are left out.

    Examples
    --------
    >>> rows = pd.DataFrame({"turf_id": ["B", "A", "B"], "last_name": ["=1+1", "Doe", "Roe"]})
    >>> walklist_texts(rows)
    {'A': 'turf_id,last_name\\nA,Doe\\n', 'B': "turf_id,last_name\\nB,'=1+1\\nB,Roe\\n"}
    """
    return {tid: data.decode("utf-8") for tid, data in _walklist_bytes(rows, chunk_rows=chunk_rows).items()}


def _walklist_bytes(rows: pd.DataFrame, *, chunk_rows: int = 100_000) -> dict[str, bytes]:
    """:func:`walklist_texts` as UTF-8 bytes (what is written), each turf's records cut from one Arrow buffer."""
    if len(rows) == 0:
        return {}
    text_cols = [c for c in rows.columns if pd.api.types.is_string_dtype(rows[c]) or rows[c].dtype == object]
    key = rows[S.TURF_ID]
    ok = key.notna().to_numpy(dtype=bool)
    ids = key.astype(object).to_numpy()[ok].astype(str)
    pos = np.flatnonzero(ok)
    order = np.argsort(ids, kind="stable")  # the groups of groupby(turf_id, sort=True), rows kept in order
    ids, pos = ids[order], pos[order]
    # (the stage's rows are in turf id order already: no copy then)
    safe = rows.reset_index(drop=True) if np.array_equal(pos, np.arange(len(rows))) else \
        rows.iloc[pos].reset_index(drop=True)
    header = safe.iloc[:0].to_csv(index=False, lineterminator="\n").encode("utf-8")
    starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
    ends = np.r_[starts[1:], len(ids)]
    out: dict[str, bytes] = {}
    g = 0
    while g < len(starts):
        # a chunk of whole turfs, about chunk_rows rows
        last = int(np.searchsorted(ends, starts[g] + max(1, chunk_rows), side="right"))
        last = max(last, g + 1)
        a, b = int(starts[g]), int(ends[last - 1])
        part = safe.iloc[a:b]
        records = _csv_records(part, text_cols)
        if records is not None:  # one record per row, each ending in a line feed, in one buffer
            data, first = records
        else:
            for col in text_cols:
                part = part.assign(**{col: neutralize(part[col])})
            text = part.to_csv(index=False, header=False, lineterminator="\n")
            data = memoryview(text.encode("utf-8"))
            # a quoted cell may hold a line break: count them to find where each row starts
            extra = np.zeros(b - a, dtype=np.int64)
            for col in text_cols:
                extra += part[col].str.count("\n").to_numpy(dtype=np.int64)
            nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
            first = np.r_[0, nl[np.cumsum(1 + extra) - 1] + 1]
        first_at = first.tolist()
        for i in range(g, last):
            lo, hi = first_at[starts[i] - a], first_at[ends[i] - a]
            out[str(ids[starts[i]])] = header + data[lo:hi].tobytes()
        g = last
    return out


def _neutral_arrow(values: pd.Series) -> Any:
    """:func:`neutralize` of ``values`` as an Arrow ``large_string`` array (missing values as empty text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.fill_null(arrow_str(values.astype("string")), pa.scalar("", type=pa.large_string()))
    risky = pc.starts_with(arr, _TRIGGERS[0])
    for t in _TRIGGERS[1:]:
        risky = pc.or_(risky, pc.starts_with(arr, t))
    if not pc.any(risky).as_py():
        return arr
    empty = pa.scalar("", type=pa.large_string())
    return pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'", type=pa.large_string()), arr, empty), arr)


def _float_text(v: npt.NDArray[np.float64]) -> Any:
    """``repr`` of each float (as ``astype(str)`` and ``to_csv`` write them), missing values empty, as Arrow text.

    Arrow's float to text cast gives the same shortest round-trip digits; it differs from ``repr`` in the notation
    of whole numbers (``1`` for ``1.0``), of very small and of large numbers, which keep ``repr``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(pa.array(v, type=pa.float64()), pa.large_string())
    with np.errstate(invalid="ignore"):
        own = ~((np.abs(v) >= 1e-4) & (np.abs(v) < 1e6) & (np.floor(v) != v))  # (NaN: own too)
    if own.any():
        at = np.flatnonzero(own)
        fixed = [repr(f) if f == f else "" for f in v[at].tolist()]
        mask = pa.array(own)
        text = pc.replace_with_mask(text, mask, pa.array(fixed, type=pa.large_string()))
    return text


def _csv_records(frame: pd.DataFrame, text_cols: list[str]) -> tuple[memoryview, npt.NDArray[np.int64]] | None:
    """The CSV record of every row with its line feed, exactly as ``to_csv`` writes it (text cells neutralized),
    built column-wise in Arrow: the bytes of all records and where each starts (one more: the end).

    ``to_csv`` writes integers as ``str``, floats as numpy's ``astype(str)`` (the shortest repr, which is Python's
    ``repr``), missing values as empty cells, and quotes a text cell (doubling its quotes) when it holds a comma,
    a quote or a line feed (the csv module's minimal quoting with ``lineterminator="\\n"``). ``None`` for a
    column of another kind (then ``to_csv`` is used).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = pa.scalar("", type=pa.large_string())
    cells = []
    for name in frame.columns:
        col = frame[name]
        if name in text_cols:
            arr = _neutral_arrow(col)
            special = pc.match_substring_regex(arr, '[\n",]')
            if pc.any(special).as_py():
                q = pa.scalar('"', type=pa.large_string())
                quoted = pc.binary_join_element_wise(q, pc.replace_substring(arr, '"', '""'), q, empty)
                arr = pc.if_else(special, quoted, arr)
            cells.append(arr)
        elif pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            ints = pa.array(col.array, from_pandas=True)  # (integers as str writes them; missing: empty)
            cells.append(pc.fill_null(pc.cast(ints, pa.large_string()), empty))
        elif col.dtype == np.float64:
            cells.append(_float_text(col.to_numpy(dtype=float)))
        else:
            return None
    if not cells:
        return None
    joined = pc.binary_join_element_wise(*cells, pa.scalar(",", type=pa.large_string()))
    lines = pc.binary_join_element_wise(joined, pa.scalar("\n", type=pa.large_string()), empty)
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    _, offsets, data = lines.buffers()
    first = np.frombuffer(offsets, dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(data) if data is not None else memoryview(b""), first


def write_walklists(rows: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<out_dir>/<turf_id>.csv`` per turf, text cells neutralized; return turf id to path.

    All lists are rendered by :func:`walklist_texts` and written by :func:`geo_segment.io.atomic.write_files`
    (each file atomic, one file-system flush for all). Other files in ``out_dir`` are left as they are.
    """
    texts = _walklist_bytes(rows)
    names = {tid: f"{file_stem(tid)}.csv" for tid in texts}
    written = write_files(out_dir, {names[tid]: text for tid, text in texts.items()})
    return {tid: written[names[tid]] for tid in texts}
