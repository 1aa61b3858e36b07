"""Canvass results round-trip: import a results CSV into the contact history (idempotently), report the rows
that match nobody, and list the households to leave out of the next cut.

The contact history is a table with one row per (id, date, result code): ``voter_id`` (or empty for a
household-level result), ``household_id``, ``contact_date``, ``result_code``, ``survey`` (JSON of the optional
answer columns) and ``source_file``. Importing the same file twice adds nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from geo_segment import schema as S
from geo_segment.errors import InputFileError, InputNotFoundError, Location
from geo_segment.io.atomic import write_parquet
from geo_segment.turfs.walklists import WALKLIST_COLUMNS

__all__ = ["HISTORY_COLUMNS", "ImportReport", "contacted_households", "empty_history", "import_results",
           "read_history", "read_results", "write_history"]

HISTORY_COLUMNS = (S.VOTER_ID, S.HOUSEHOLD_ID, "contact_date", "result_code", "survey", "source_file")
_ID_COLS = (S.VOTER_ID, S.HOUSEHOLD_ID)
_DATE_COLS = ("date", "contact_date")
_CODE_COLS = ("result_code", "result", "code")
#: result codes after which a household is not knocked again by default (not home and inaccessible are)
DEFAULT_DONE_CODES = ("CT", "RF", "MV", "DC", "WA", "LB")


@dataclass
class ImportReport:
    """What an import did: rows read, added, already present, rejected (with line numbers and reasons)."""

    rows: int
    added: int
    duplicates: int
    rejects: pd.DataFrame
    history_rows: int
    metrics: dict[str, Any] = field(default_factory=dict)


def empty_history() -> pd.DataFrame:
    """An empty contact history with the right columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype="datetime64[ns]" if c == "contact_date" else "string")
                         for c in HISTORY_COLUMNS})


def read_results(path: str | Path, *, date_given: bool = False) -> pd.DataFrame:
    """Read a results CSV as text with a ``source_line`` column (the physical line, header = 1).

    A filled-in walk list (``walklists/<turf_id>.csv``) is a results file: it has no date column, so pass
    ``date_given=True`` and give the date to :func:`import_results`.

    Raises
    ------
    InputFileError
        Missing file, no id column, no date or result code column.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError("results file not found", where=Location(p), fix="check the path")
    with open(p, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise InputFileError("results file is empty", where=Location(p), fix="export the results again") from None
        lines: list[int] = []
        records: list[list[str]] = []
        for rec in reader:
            if not any(c.strip() for c in rec):
                continue
            lines.append(reader.line_num)
            records.append((rec + [""] * len(header))[: len(header)])
    frame = pd.DataFrame(records, columns=header, dtype="string")
    frame["source_line"] = pd.Series(lines, dtype="Int64")
    if not any(c in header for c in _ID_COLS):
        raise InputFileError("results file has no id column", where=Location(p),
                             expected=f"one of {list(_ID_COLS)}", found=f"columns {header}",
                             fix="add a voter_id or household_id column")
    for what, names in (("date", _DATE_COLS), ("result code", _CODE_COLS)):
        if what == "date" and date_given:
            continue
        if not any(c in header for c in names):
            raise InputFileError(f"results file has no {what} column", where=Location(p),
                                 expected=f"one of {list(names)}", found=f"columns {header}",
                                 fix=f"add a {names[0]} column")
    return frame


def import_results(
    results: pd.DataFrame,
    voters: pd.DataFrame,
    history: pd.DataFrame | None = None,
    *,
    result_codes: Iterable[str],
    source_file: str = "",
    default_date: str | None = None,
) -> tuple[pd.DataFrame, ImportReport]:
    """Add the matched rows of ``results`` to the contact ``history``, deduplicated on (id, date, code).

    Parameters
    ----------
    results
        From :func:`read_results` (``voter_id`` and/or ``household_id``, ``date``, ``result_code``, optional
        survey answer columns, ``source_line``).
    voters
        The voters (``voter_id``, ``household_id``): a row must match one of them.
    history
        The contact history so far (``None``: empty).
    result_codes
        Accepted codes (the ``[turfs] result_codes`` keys); comparison ignores case.
    default_date
        Date for rows without one (and for files without a date column).

    Returns
    -------
    (DataFrame, ImportReport)
        The new history (old rows first) and the report; rejected rows (unknown id, bad date, unknown code)
        are listed with their line numbers and are not imported.
    """
    hist = empty_history() if history is None else history[list(HISTORY_COLUMNS)].copy()
    r = results.copy()
    cols = list(r.columns)
    date_col = next((c for c in _DATE_COLS if c in cols), None)
    code_col = next(c for c in _CODE_COLS if c in cols)
    walk = set(WALKLIST_COLUMNS) - {"survey_answers", "notes"}
    extra = [c for c in cols if c not in (*_ID_COLS, date_col, code_col, "source_line", *walk)]
    vid = r[S.VOTER_ID].fillna("").str.strip() if S.VOTER_ID in cols else pd.Series("", index=r.index)
    hid = r[S.HOUSEHOLD_ID].fillna("").str.strip() if S.HOUSEHOLD_ID in cols else pd.Series("", index=r.index)
    vid = vid.str.lstrip("'")
    hid = hid.str.lstrip("'")
    v_hh = pd.Series(voters[S.HOUSEHOLD_ID].astype(str).to_numpy(), index=voters[S.VOTER_ID].astype(str).to_numpy())
    v_hh = v_hh[~v_hh.index.duplicated()]
    known_hh = set(voters[S.HOUSEHOLD_ID].astype(str))
    hh_of_voter = vid.map(v_hh)
    voter_ok = (vid != "") & hh_of_voter.notna()
    hh_ok = (hid != "") & hid.isin(known_hh)
    household: Any = hh_of_voter.where(voter_ok, hid.where(hh_ok, pd.NA))  # type: ignore[call-overload]
    raw_date = r[date_col].fillna("").str.strip() if date_col else pd.Series("", index=r.index, dtype="string")
    if default_date is not None:
        raw_date = raw_date.mask(raw_date == "", default_date)
    date = pd.to_datetime(raw_date, errors="coerce", format="mixed")
    allowed = {str(c).upper() for c in result_codes}
    code = r[code_col].fillna("").str.strip().str.upper()
    answered = pd.Series(False, index=r.index)
    for c in extra:
        answered |= r[c].fillna("").str.strip() != ""
    blank = (code == "") & ~answered  # a door not knocked yet: skipped, not rejected
    kept = ~blank.to_numpy(dtype=bool)
    r = r.loc[kept]
    vid, hid, hh_of_voter, code = vid[kept], hid[kept], hh_of_voter[kept], code[kept]
    voter_ok, hh_ok, household, date = voter_ok[kept], hh_ok[kept], household[kept], date[kept]
    reasons = pd.Series("", index=r.index, dtype="string")
    no_id = (vid == "") & (hid == "")
    reasons = reasons.mask(no_id, "no voter_id or household_id")
    reasons = reasons.mask(~no_id & ~voter_ok & ~hh_ok, "matches no voter or household")
    reasons = reasons.mask((reasons == "") & date.isna(), "date is not a date")
    reasons = reasons.mask((reasons == "") & ~code.isin(allowed), "unknown result code (allowed: "
                           + ", ".join(sorted(allowed)) + ")")
    bad = (reasons != "").to_numpy()
    rejects = S.make_rejects(source_file or "results", r.loc[bad, "source_line"].astype(int).tolist(),
                             reasons[bad].astype(str).tolist(), scope="row")
    good = ~bad
    survey = [json.dumps({c: s for c in extra if isinstance((s := rec.get(c)), str) and s.strip()},
                         sort_keys=True, ensure_ascii=False) if extra else "{}"
              for rec in r.loc[good, extra].to_dict("records")] if good.any() else []
    new = pd.DataFrame({
        S.VOTER_ID: vid[good].where(voter_ok[good], pd.NA).astype("string"),  # type: ignore[call-overload]
        S.HOUSEHOLD_ID: household[good].astype("string"),
        "contact_date": date[good].astype("datetime64[ns]"),
        "result_code": code[good].astype("string"),
        "survey": pd.Series(survey, index=r.index[good], dtype="string"),
        "source_file": pd.Series([source_file] * int(good.sum()), index=r.index[good], dtype="string"),
    })
    merged = pd.concat([hist, new], ignore_index=True)
    key = merged[S.VOTER_ID].fillna("hh:" + merged[S.HOUSEHOLD_ID].fillna(""))
    dup = pd.DataFrame({"k": key, "d": merged["contact_date"], "c": merged["result_code"]}).duplicated()
    out = merged.loc[~dup.to_numpy()].reset_index(drop=True)
    added = len(out) - len(hist)
    report = ImportReport(rows=len(r) + int(blank.sum()), added=added, duplicates=int(good.sum()) - added,
                          rejects=rejects, history_rows=len(out),
                          metrics={"blank": int(blank.sum()), "matched_voter": int((voter_ok & good).sum()),
                                   "matched_household": int((~voter_ok & hh_ok & good).sum())})
    return out, report


def contacted_households(
    history: pd.DataFrame, *, done_codes: Iterable[str] = DEFAULT_DONE_CODES, since: Any = None
) -> set[str]:
    """Households with a contact whose code is in ``done_codes`` (on or after ``since`` when given)."""
    h = history
    mask = h["result_code"].astype(str).str.upper().isin({c.upper() for c in done_codes}).to_numpy()
    if since is not None:
        mask &= (h["contact_date"] >= pd.Timestamp(since)).to_numpy()
    return set(h.loc[mask, S.HOUSEHOLD_ID].dropna().astype(str))


def read_history(path: str | Path | None) -> pd.DataFrame:
    """Read ``contact_history.parquet`` (an empty history when ``path`` is ``None`` or missing)."""
    if path is None or not Path(path).exists():
        return empty_history()
    return pd.read_parquet(path)


def write_history(history: pd.DataFrame, path: str | Path) -> Path:
    """Write the contact history atomically."""
    return write_parquet(history[list(HISTORY_COLUMNS)], path)


