"""Walk lists: one VAN-like CSV per turf, every text cell neutralized against spreadsheet formula injection."""

from __future__ import annotations

import re
from pathlib import Path

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
        "result_code": pd.Series([""] * len(m), dtype="string"),
        "survey_answers": pd.Series([""] * len(m), dtype="string"),
        "notes": pd.Series([""] * len(m), dtype="string"),
    })
    return out.take(_sort_order(out)).reset_index(drop=True)[list(WALKLIST_COLUMNS)]


#: the walk list's row order: turf, door, household, then names and voter id
_SORT_KEYS = (S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID, S.LAST_NAME, S.FIRST_NAME, S.VOTER_ID)


def _sort_order(rows: pd.DataFrame) -> npt.NDArray[np.int64]:
    """``rows.sort_values(_SORT_KEYS, kind="stable")``'s order, by Arrow's stable multi-key sort (strings in code
    point order, missing values last)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for c in _SORT_KEYS:
        col = rows[c]
        if pd.api.types.is_integer_dtype(col.dtype):
            cols[c] = pa.array(col.to_numpy(dtype=float, na_value=np.nan), from_pandas=True)
        else:
            cols[c] = arrow_str(col.astype("str"))
    order = pc.sort_indices(pa.table(cols), sort_keys=[(c, "ascending", "at_end") for c in _SORT_KEYS])
    return order.to_numpy(zero_copy_only=False).astype(np.int64)


def walklist_texts(rows: pd.DataFrame, *, chunk_rows: int = 100_000) -> dict[str, str]:
    """The CSV text of every turf's walk list, keyed by turf id (sorted), text cells neutralized.

    Each text is what ``frame.to_csv(index=False, lineterminator="\\n")`` writes for the turf's rows (in their
    order in ``rows``), but the whole table is neutralized once and its records are built column-wise in Arrow
    (:func:`_csv_rows`; ``to_csv`` in large chunks for other column kinds) and then cut at the turfs' row
    boundaries, instead of one ``to_csv`` per turf. Rows without a turf id are left out.

    Examples
    --------
    >>> rows = pd.DataFrame({"turf_id": ["B", "A", "B"], "last_name": ["=1+1", "Doe", "Roe"]})
    >>> walklist_texts(rows)
    {'A': 'turf_id,last_name\\nA,Doe\\n', 'B': "turf_id,last_name\\nB,'=1+1\\nB,Roe\\n"}
    """
    if len(rows) == 0:
        return {}
    text_cols = [c for c in rows.columns if pd.api.types.is_string_dtype(rows[c]) or rows[c].dtype == object]
    key = rows[S.TURF_ID]
    ok = key.notna().to_numpy(dtype=bool)
    ids = key.astype(object).to_numpy()[ok].astype(str)
    pos = np.flatnonzero(ok)
    order = np.argsort(ids, kind="stable")  # the groups of groupby(turf_id, sort=True), rows kept in order
    ids, pos = ids[order], pos[order]
    safe = rows.iloc[pos].reset_index(drop=True)
    for col in text_cols:
        safe[col] = neutralize(safe[col])
    header = safe.iloc[:0].to_csv(index=False, lineterminator="\n")
    starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
    ends = np.r_[starts[1:], len(ids)]
    texts: dict[str, str] = {}
    g = 0
    while g < len(starts):
        # a chunk of whole turfs, about chunk_rows rows
        last = int(np.searchsorted(ends, starts[g] + max(1, chunk_rows), side="right"))
        last = max(last, g + 1)
        a, b = int(starts[g]), int(ends[last - 1])
        part = safe.iloc[a:b]
        fast = _csv_rows(part, text_cols)
        if fast is not None:  # one string per row
            lines, first = fast, np.arange(a, b + 1) - a
        else:
            lines = part.to_csv(index=False, header=False, lineterminator="\n").split("\n")
            # a quoted cell may hold a line break: count them to find where each row starts
            extra = np.zeros(b - a, dtype=np.int64)
            for col in text_cols:
                extra += part[col].str.count("\n").to_numpy(dtype=np.int64)
            first = np.r_[0, np.cumsum(1 + extra)]
        for i in range(g, last):
            lo, hi = int(first[starts[i] - a]), int(first[ends[i] - a])
            texts[str(ids[starts[i]])] = header + "\n".join(lines[lo:hi]) + "\n"
        g = last
    return texts


def _csv_rows(frame: pd.DataFrame, text_cols: list[str]) -> list[str] | None:
    """The CSV record of every row (no line end), exactly as ``to_csv`` writes it, built column-wise in Arrow.

    ``to_csv`` writes integers as ``str``, floats as numpy's ``astype(str)`` (the shortest repr, which is Python's
    ``repr``), missing values as empty cells, and quotes a text cell (doubling its quotes) when it holds a comma,
    a quote or a line feed (the csv module's minimal quoting with ``lineterminator="\\n"``). ``None`` for a
    column of another kind (then ``to_csv`` is used).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = []
    for name in frame.columns:
        col = frame[name]
        if name in text_cols:
            arr = pa.array(col.astype("string").fillna("")).cast(pa.large_string())
            q = pa.scalar('"', type=pa.large_string())
            quoted = pc.binary_join_element_wise(q, pc.replace_substring(arr, '"', '""'), q,
                                                 pa.scalar("", type=pa.large_string()))
            cells.append(pc.if_else(pc.match_substring_regex(arr, '[\\n",]'), quoted, arr))
        elif pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            cells.append(pa.array(col.astype("string").fillna("").to_numpy(dtype=object), type=pa.large_string()))
        elif col.dtype == np.float64:
            v = col.to_numpy(dtype=float)
            text = np.array([repr(f) for f in v.tolist()], dtype=object)  # the same digits as astype(str), faster
            text[np.isnan(v)] = ""
            cells.append(pa.array(text, type=pa.large_string()))
        else:
            return None
    if not cells:
        return None
    joined: list[str] = pc.binary_join_element_wise(*cells, pa.scalar(",", type=pa.large_string())).to_pylist()
    return joined


def write_walklists(rows: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<out_dir>/<turf_id>.csv`` per turf, text cells neutralized; return turf id to path.

    All lists are rendered by :func:`walklist_texts` and written by :func:`geo_segment.io.atomic.write_files`
    (each file atomic, one file-system flush for all). Other files in ``out_dir`` are left as they are.
    """
    texts = walklist_texts(rows)
    names = {tid: f"{file_stem(tid)}.csv" for tid in texts}
    written = write_files(out_dir, {names[tid]: text for tid, text in texts.items()})
    return {tid: written[names[tid]] for tid in texts}
