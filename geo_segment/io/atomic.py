"""Atomic writes: a temp file in the same folder, fsync, then ``os.replace``.

A crash or kill during a write leaves the old file intact and no partial file behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo_segment.errors import OutputPathError

__all__ = ["atomic_path", "safe_output_path", "write_csv", "write_files", "write_json", "write_parquet"]


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


def _sync_file_system(folder: Path, written: list[Path]) -> None:
    """Flush the file system holding ``folder`` once (Linux ``syncfs``), else ``os.sync``, else fsync each file."""
    syncfs = getattr(ctypes.CDLL(None), "syncfs", None) if os.name == "posix" else None
    if syncfs is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    if hasattr(os, "sync"):
        os.sync()
        return
    for path in written:  # pragma: no cover - platforms without sync()
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())


def write_files(
    folder: str | Path, files: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]], *,
    encoding: str = "utf-8",
) -> dict[str, Path]:
    """Write many files into ``folder``, each atomically, with one flush of the file system for all of them.

    Every file is first written to a temporary file beside its target (``.<name>.<token>.tmp``); once all are
    written the file system is flushed once (``syncfs``) and each temporary file is moved over its target
    (``os.replace``). A crash leaves every target either as it was or complete, like :func:`atomic_path`, but
    thousands of small files (walk lists, packets) cost one flush instead of one ``fsync`` each. Other files in
    ``folder`` are left alone.

    Parameters
    ----------
    folder
        The output folder (created when missing).
    files
        File name (relative to ``folder``, checked by :func:`safe_output_path`) to text or bytes, as a mapping or
        as ``(name, content)`` pairs (a generator keeps only one file's content in memory at a time).
    encoding
        Encoding of text contents.

    Returns
    -------
    dict
        File name to the path written.

    Raises
    ------
    OutputPathError
        A name would leave ``folder``; no file is written or replaced then.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     paths = write_files(d, {"a.csv": "x\\n1\\n", "b.csv": "x\\n2\\n"})
    ...     paths["b.csv"].read_text()
    'x\\n2\\n'
    """
    base = Path(folder)
    base.mkdir(parents=True, exist_ok=True)
    root = base.resolve()
    pairs = files.items() if isinstance(files, Mapping) else files
    targets: dict[str, Path] = {}
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    temps: dict[Path, Path] = {}  # temporary file -> target
    try:
        for name, content in pairs:
            plain = name not in ("", ".", "..") and "/" not in name and os.sep not in name and (
                os.altsep is None or os.altsep not in name)
            target = root / name if plain else safe_output_path(root, name)
            targets[name] = target
            if target.parent != root:
                target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{token}.tmp")
            data = content.encode(encoding) if isinstance(content, str) else content
            with open(tmp, "wb") as fh:
                temps[tmp] = target
                fh.write(data)
        _sync_file_system(root, list(temps))
        for tmp, target in list(temps.items()):
            os.replace(tmp, target)
            del temps[tmp]
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return targets
