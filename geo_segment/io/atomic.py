"""Atomic writes: a temp file in the same folder, fsync, then ``os.replace``.

A crash or kill during a write leaves the old file intact and no partial file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo_segment.errors import OutputPathError

__all__ = ["atomic_path", "safe_output_path", "write_csv", "write_json", "write_parquet"]


def safe_output_path(folder: str | Path, name: str) -> Path:
    """Return ``folder / name``, refusing names that would leave ``folder``.

    Raises
    ------
    OutputPathError
        When ``name`` is absolute or climbs out of ``folder`` (``../x``).
    """
    base = Path(folder).resolve()
    candidate = (base / name).resolve()
    if Path(name).is_absolute() or (candidate != base and base not in candidate.parents):
        raise OutputPathError(
            "an output name would leave the output folder",
            expected=f"a relative name inside {base}",
            found=repr(name),
            fix="use a plain file name such as 'turf_01.csv'",
        )
    return candidate


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and move it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as Parquet (a GeoDataFrame as GeoParquet) atomically and return the path."""
    with atomic_path(path) as tmp:
        if isinstance(frame, gpd.GeoDataFrame):
            frame.to_parquet(tmp, index=False, compression="zstd", write_covering_bbox=False)
        else:
            frame.to_parquet(tmp, index=False, compression="zstd")
    return Path(path)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as UTF-8 CSV without BOM, atomically, and return the path."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    return Path(path)


def write_json(obj: Any, path: str | Path) -> Path:
    """Write an object as pretty UTF-8 JSON atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return Path(path)
