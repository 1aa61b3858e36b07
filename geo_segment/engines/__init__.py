"""Engines that run join + aggregate: ``local`` (one process, in memory) and ``dask`` (partitioned, optional).

Both take the same inputs and return the same four things, equal row for row and bit for bit:

* the joined voters (the input's rows, index and order, with ``h3_cell``, ``precinct_id``, ``precinct_method``),
* the per-cell aggregates (:func:`geo_segment.aggregates.aggregate_cells`),
* the per-precinct aggregates (:func:`geo_segment.aggregates.aggregate_precincts`),
* a dict of metrics (JSON-able) for the run's manifest.

Signals, when given, are joined like the voters (H3 cell at the run's resolution, precinct by the same rule) before
they are aggregated; their joined frame is not returned.

This package never imports dask: :mod:`geo_segment.engines.dask` is imported only by :func:`join_aggregate` with
``engine="dask"`` (or explicitly), so runs without ``--engine dask`` load nothing of it. See ``docs/scale.md``.
"""

from __future__ import annotations

import glob
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd

from geo_segment import schema as S
from geo_segment.aggregates import K_MIN, aggregate_metrics
from geo_segment.errors import ConfigError, InputNotFoundError, Location
from geo_segment.join import add_h3_cells, assign_areas

if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType

__all__ = ["ENGINES", "JoinAggregate", "expand_parquet_paths", "join_aggregate", "join_aggregate_local",
           "join_signals", "load_engine"]

#: The engines :func:`join_aggregate` knows.
ENGINES = ("local", "dask")

#: What every engine returns: joined voters (``None`` when the dask engine wrote them to ``voters_out``), cells,
#: precincts, metrics.
JoinAggregate = tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any]]

ParquetSource = str | Path | Sequence[str | Path]


def _natural_key(path: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def expand_parquet_paths(source: ParquetSource) -> list[str]:
    """The Parquet files a source names, in the order both engines read them.

    A file is itself; a folder is its ``*.parquet`` files; a pattern (``states/*/voters.parquet``) is its matches;
    a list is the concatenation of its items. Folders and patterns are sorted naturally (``part.2`` before
    ``part.10``), the order dask reads them in.

    Raises
    ------
    InputNotFoundError
        A name matches no file.
    """
    items = [source] if isinstance(source, str | Path) else list(source)
    out: list[str] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found = sorted((str(p) for p in path.glob("*.parquet")), key=_natural_key)
        elif any(ch in text for ch in "*?["):
            found = sorted(glob.glob(text), key=_natural_key)
        else:
            found = [text] if path.is_file() else []
        if not found:
            raise InputNotFoundError("no Parquet file found", where=Location(path),
                                     expected="a GeoParquet file, a folder of them or a glob pattern",
                                     fix="check the path; write voters with `geo-segment ingest` first")
        out.extend(found)
    return out


def _read_geoparquet(source: gpd.GeoDataFrame | ParquetSource) -> gpd.GeoDataFrame:
    if isinstance(source, gpd.GeoDataFrame):
        return source
    files = expand_parquet_paths(source)
    frames = [gpd.read_parquet(f) for f in files]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True)) if len(frames) > 1 else frames[0].reset_index(
        drop=True)


def _read_table(source: pd.DataFrame | ParquetSource | None) -> pd.DataFrame | None:
    if source is None or isinstance(source, pd.DataFrame):
        return source
    files = expand_parquet_paths(source)
    frames = [pd.read_parquet(f) for f in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def join_signals(signals: gpd.GeoDataFrame, precincts: gpd.GeoDataFrame, *, id_col: str, resolution: int = 9,
                 tolerance_m: float = 50.0) -> gpd.GeoDataFrame:
    """Give signals their H3 cell and precinct, by the voters' rule, so they can be aggregated.

    Returns
    -------
    GeoDataFrame
        A copy of ``signals`` with ``h3_cell`` (uint64, at ``resolution``; existing values are replaced),
        ``precinct_id`` (string, null when unassigned) and ``precinct_method``.
    """
    with_cells = add_h3_cells(signals, resolution=resolution)
    out, _ = assign_areas(with_cells, precincts, id_col=id_col, tolerance_m=tolerance_m, out_id=S.PRECINCT_ID,
                          out_method=S.PRECINCT_METHOD)
    return out


def join_aggregate_local(
    voters: gpd.GeoDataFrame | ParquetSource,
    precincts: gpd.GeoDataFrame,
    history: pd.DataFrame | ParquetSource | None = None,
    signals: gpd.GeoDataFrame | ParquetSource | None = None,
    *,
    id_col: str,
    resolution: int = 9,
    tolerance_m: float = 50.0,
    k_min: int = K_MIN,
    n_generals: int = 4,
    half_life_days: float = 30.0,
    as_of: pd.Timestamp | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any]]:
    """Join voters to H3 cells and precincts and aggregate them, in memory: the reference engine.

    It is :func:`geo_segment.join.join_stage`, then :func:`geo_segment.aggregates.aggregate_cells` (at the
    voters' resolution) and :func:`geo_segment.aggregates.aggregate_precincts`, with signals joined by
    :func:`join_signals` first.

    Parameters
    ----------
    voters
        Voters (EPSG:4326) or GeoParquet file(s) of them (see :func:`expand_parquet_paths`; read in that
        order with a fresh ``RangeIndex``).
    precincts
        The precinct layer (EPSG:4326) with its id in ``id_col``.
    history
        Long vote history (DataFrame or Parquet), optional.
    signals
        Signals (GeoDataFrame or GeoParquet), optional.
    id_col
        The precincts' id column.
    resolution, tolerance_m
        H3 resolution of ``h3_cell`` and the nearest-precinct tolerance in metres.
    k_min, n_generals, half_life_days, as_of
        As in :func:`geo_segment.aggregates.aggregate_cells`.

    Returns
    -------
    (GeoDataFrame, GeoDataFrame, GeoDataFrame, dict)
        Joined voters, cells, precincts and metrics (``engine``, ``join``: the join stage's counts,
        ``aggregate``: units and suppressed units, ``seconds`` per step).

    Examples
    --------
    >>> voters, cells, areas, metrics = join_aggregate_local(read.voters, precincts, read.history,
    ...                                                      id_col="JOINID")  # doctest: +SKIP
    >>> metrics["join"]["unassigned"]  # doctest: +SKIP
    30
    """
    from geo_segment.config import Config, JoinConfig
    from geo_segment.pipeline import join_and_aggregate

    t0 = time.perf_counter()
    frame = _read_geoparquet(voters)
    hist = _read_table(history)
    sig_in = None if signals is None else _read_geoparquet(signals)
    t_read = time.perf_counter()
    cfg = Config(join=JoinConfig(h3_resolution=resolution, tolerance_m=tolerance_m, k_min=k_min,
                                 n_generals=n_generals, half_life_days=half_life_days, cell_resolution=None))
    res = join_and_aggregate(frame, precincts, id_col=id_col, history=hist, signals=sig_in, config=cfg, as_of=as_of)
    seconds = {r.name: r.seconds for r in res.stages}
    t_end = time.perf_counter()
    metrics: dict[str, Any] = {
        "engine": "local",
        "join": res.stages[0].metrics,
        "aggregate": aggregate_metrics(res.cells, res.precincts),
        "seconds": {"read": round(t_read - t0, 3),
                    "join": round(seconds["join"] + seconds.get("join_signals", 0.0), 3),
                    "aggregate": seconds["aggregate"], "total": round(t_end - t0, 3)},
    }
    return res.voters, res.cells, res.precincts, metrics


def load_engine(name: str) -> ModuleType | None:
    """Check an engine name; return the dask engine module for ``dask`` (importing dask), ``None`` for ``local``.

    Raises
    ------
    ConfigError
        An unknown name, or ``dask`` without the optional dependencies installed.
    """
    if name not in ENGINES:
        raise ConfigError("unknown engine", expected=" or ".join(repr(e) for e in ENGINES), found=repr(name),
                          fix="use --engine local (default) or --engine dask")
    if name == "local":
        return None
    try:
        from geo_segment.engines import dask as dask_engine
    except ImportError as exc:
        raise ConfigError(
            "the dask engine needs dask, distributed and dask-geopandas", found=f"ImportError: {exc}",
            fix='pip install "geo-segment[dask]"',
        ) from exc
    return dask_engine


def join_aggregate(
    voters: gpd.GeoDataFrame | ParquetSource,
    precincts: gpd.GeoDataFrame,
    history: pd.DataFrame | ParquetSource | None = None,
    signals: gpd.GeoDataFrame | ParquetSource | None = None,
    *,
    id_col: str,
    engine: str = "local",
    resolution: int = 9,
    tolerance_m: float = 50.0,
    k_min: int = K_MIN,
    n_generals: int = 4,
    half_life_days: float = 30.0,
    as_of: pd.Timestamp | None = None,
    address: str | None = None,
    npartitions: int | None = None,
    partition_resolution: int = 4,
    voters_out: str | Path | None = None,
) -> JoinAggregate:
    """Run join + aggregate with the chosen engine (``local`` or ``dask``); the CLI's ``--engine``.

    The options after ``engine`` are :func:`join_aggregate_local`'s; ``address``, ``npartitions``,
    ``partition_resolution`` and ``voters_out`` are the dask engine's
    (:func:`geo_segment.engines.dask.join_aggregate_dask`) and are refused with ``engine="local"`` when set.

    Raises
    ------
    ConfigError
        Unknown engine, dask options with the local engine, or dask missing.
    """
    module = load_engine(engine)
    opts: dict[str, Any] = {"id_col": id_col, "resolution": resolution, "tolerance_m": tolerance_m,
                            "k_min": k_min, "n_generals": n_generals, "half_life_days": half_life_days,
                            "as_of": as_of}
    if module is None:
        given = [name for name, value in (("address", address), ("npartitions", npartitions),
                                          ("voters_out", voters_out)) if value is not None]
        if given:
            raise ConfigError("options of the dask engine given to the local engine", found=", ".join(given),
                              fix="add --engine dask, or drop them")
        return join_aggregate_local(voters, precincts, history, signals, **opts)
    result: JoinAggregate = module.join_aggregate_dask(
        voters, precincts, history, signals, address=address, npartitions=npartitions,
        partition_resolution=partition_resolution, voters_out=voters_out, **opts)
    return result
