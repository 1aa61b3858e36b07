"""Lists of ids in a CSV (lookalike seeds, do-not-contact lists): one reader for every such input."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from geo_segment.errors import InputFileError, InputNotFoundError, Location, MissingColumnsError

__all__ = ["read_ids"]


def read_ids(path: str | Path, *, columns: Sequence[str], what: str) -> list[str]:
    """Ids, in file order without repeats: every value of the header's ``columns``, or of a single unnamed column.

    Parameters
    ----------
    path
        A CSV with a header naming one or more of ``columns`` (case-insensitive), or one column of ids and no header.
    columns
        The id columns to read (``voter_id``, ``household_id``).
    what
        How messages name the file ("seed file").

    Raises
    ------
    InputNotFoundError
        No such file.
    MissingColumnsError
        Several columns and none of ``columns``.
    InputFileError
        No ids in the file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{what} not found", where=Location(p), fix="check the path")
    frame = pd.read_csv(p, dtype="str", keep_default_na=False, header=None, skip_blank_lines=True)
    first = [str(v).strip().lower() for v in frame.iloc[0]] if len(frame) else []
    named = [i for i, name in enumerate(first) if name in columns]
    if named:
        values = pd.concat([frame.iloc[1:, i] for i in named], ignore_index=True)
    elif frame.shape[1] == 1:
        values = frame.iloc[:, 0]
    else:
        wanted = " or ".join(columns)
        raise MissingColumnsError(f"{what} has several columns and none named {wanted}", where=Location(p, line=1),
                                  expected=f"a {wanted} column, or one column of ids", found=f"columns {first}",
                                  fix=f"name the id column {columns[0]}")
    out = [v for v in (str(x).strip() for x in values) if v]
    if not out:
        raise InputFileError(f"{what} holds no ids", where=Location(p), fix="list one id per line")
    return list(dict.fromkeys(out))
