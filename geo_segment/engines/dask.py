"""The dask engine: join + aggregate over partitions, on a local or a remote dask.distributed cluster.

Imported only when asked for (``engine="dask"``, ``--engine dask``); needs the ``dask`` extra (``dask[dataframe]``,
``distributed``, ``dask-geopandas``). Its results equal the local engine's
(:func:`geo_segment.engines.join_aggregate_local`) row for row and bit for bit: ``tests/test_dask_engine.py`` compares
them on a 2-worker ``LocalCluster``. ``docs/scale.md`` explains how to run a national file.

How it runs
-----------
1. **Join, per input partition.** Voters stay in the partitions they come in: GeoParquet files (or row groups) read
   lazily by ``dask_geopandas.read_parquet``, or slices of an in-memory frame (of which only the coordinates and the
   aggregation columns are sent; the client adds the join's columns to its frame). Each partition gets its H3 cells and
   its precinct by :func:`geo_segment.join.join_areas`, the local engine's code, against the precinct layer
   broadcast once to every worker (as WKB and bounding boxes). A partition uses only the polygons whose bounding box
   comes within twice the tolerance of its points, with the layer-wide fast-path box size, id order and metric CRS:
   the rule depends only on the polygons a point touches or is near, so every point gets what the local engine gives
   it. With ``voters_out`` each joined Parquet partition is written there as GeoParquet and never leaves its worker.
2. **A slim table** per partition holds what aggregation needs (voter id, household, building, party, cell, precinct,
   method, input position), plus the joined signals (cell, precinct, time, kind, weight). With a vote history, every
   voter carries a bit mask of the last ``n_generals`` general elections they voted in (a group-by on voter id over
   the history, merged on voter id).
3. **Cells.** The slim table is shuffled (dask's p2p shuffle, which spills to disk) by the cell's H3 parent at
   ``partition_resolution``: a partition holds whole parent cells, hence whole cells with all their voters and
   signals, and runs :func:`~geo_segment.aggregates.aggregate_cells` itself (suppression included).
4. **Precincts.** The slim table is shuffled by precinct id: a partition holds whole precincts (every household and
   building of a precinct in one place, so distinct counts are exact) and runs
   :func:`~geo_segment.aggregates.aggregate_precincts` without suppression. The client stacks the partitions' rows
   in the layer's order, adds the precincts nothing fell in, and applies
   :func:`~geo_segment.aggregates.suppress_small` once.

Every partition must choose the same election dates and signal columns as a run on the whole file: the dates (the
latest ``n_generals`` general elections in the history) and ``as_of`` (the newest signal) are computed first, and
each partition's call gets one placeholder history row per date (under a voter id no voter has) and one zero-weight
placeholder signal (under a cell and a precinct id outside every index), which make the same columns appear and
count nowhere. Signal weights are summed per cell and precinct in input order, as the local engine sums them, so
float sums are equal.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import dask_geopandas
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from dask.delayed import delayed
from distributed import Client, LocalCluster, default_client

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment.aggregates import K_MIN, aggregate_cells, aggregate_metrics, aggregate_precincts, suppress_small
from geo_segment.engines import JoinAggregate, ParquetSource, expand_parquet_paths
from geo_segment.errors import ConfigError, MissingColumnsError, OutputPathError
from geo_segment.io.atomic import write_parquet
from geo_segment.join import METHODS, _require_4326, _xy, auto_fast_box_m, join_areas

__all__ = ["ROWS_PER_PARTITION", "join_aggregate_dask"]

log = logging.getLogger(__name__)

#: rows per partition when an in-memory frame is split (and ``npartitions`` is not given)
ROWS_PER_PARTITION = 250_000

_PLACEHOLDER = "\x00geo_segment:placeholder"
_PLACEHOLDER_CELL = np.uint64(1)  # not an H3 index (mode bits 0); never a voter's cell
_POS, _PART, _SRC, _VOTED = "_pos", "_part", "_src", "_voted"
_ROW_BITS = 40  # _pos = partition << 40 | row: order-preserving for partitions of up to 2**40 rows
_LAYER_ID = "_layer_id"
_VOTER_COLS = (S.VOTER_ID, S.HOUSEHOLD_ID, S.BUILDING_ID, S.PARTY, S.H3_CELL, S.PRECINCT_ID, S.PRECINCT_METHOD)
_SIGNAL_COLS = (S.H3_CELL, S.PRECINCT_ID, S.TIMESTAMP, S.KIND, S.WEIGHT)


# --- the precinct layer, broadcast to workers -----------------------------------------------------------------------

@dataclass(frozen=True)
class _Layer:
    """The precinct layer as workers use it: WKB (fresh, unprepared geometries per task), boxes, ids."""

    wkb: np.ndarray
    bounds: np.ndarray
    ids: np.ndarray
    fast_box_m: float
    metric_crs: Any


def _layer(precincts: gpd.GeoDataFrame, id_col: str) -> _Layer:
    _require_4326(precincts, "areas")
    if id_col not in precincts.columns:
        raise MissingColumnsError(f"area layer has no column {id_col!r}", found=f"{list(precincts.columns)}",
                                  fix="pass id_col naming the id column")
    geoms = np.asarray(precincts.geometry.values, dtype=object)
    metric_crs = None
    if len(geoms) and not shapely.is_missing(geoms).all():
        metric_crs = gpd.GeoSeries(geoms, crs=S.CRS_STORAGE).estimate_utm_crs()
    return _Layer(
        wkb=np.asarray(shapely.to_wkb(geoms), dtype=object),
        bounds=shapely.bounds(geoms),
        ids=precincts[id_col].astype("str").to_numpy(),
        fast_box_m=auto_fast_box_m(precincts.geometry.values),
        metric_crs=metric_crs,
    )


def _near(layer: _Layer, x: np.ndarray, y: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Positions of the polygons whose box comes within twice the tolerance of the points' box."""
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return np.zeros(0, dtype=np.int64)
    x0, x1, y0, y1 = x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max()
    dlat = 2.0 * max(tolerance_m, 0.0) / 110_000.0 + 1e-6  # a degree of latitude is >= 110.5 km
    top = max(abs(y0), abs(y1)) + dlat
    if x0 < -179.0 or x1 > 179.0 or top > 89.0:  # antimeridian or pole: keep everything
        return np.arange(len(layer.ids))
    dlng = 2.0 * max(tolerance_m, 0.0) / (110_000.0 * math.cos(math.radians(top))) + 1e-6
    b = layer.bounds
    keep = (b[:, 2] >= x0 - dlng) & (b[:, 0] <= x1 + dlng) & (b[:, 3] >= y0 - dlat) & (b[:, 1] <= y1 + dlat)
    return np.flatnonzero(keep)


def _assign(x: np.ndarray, y: np.ndarray, layer: _Layer, *, tolerance_m: float) -> tuple[
    np.ndarray, np.ndarray
]:
    """:func:`geo_segment.join.assign_areas` on the polygons near the points: ids (None: unassigned) and methods."""
    near = _near(layer, x, y, tolerance_m)
    geoms = shapely.from_wkb(layer.wkb[near]) if len(near) else np.empty(0, dtype=object)
    ids = layer.ids[near]
    res = join_areas(x, y, geoms, ids, tolerance_m=tolerance_m, fast_box_m=layer.fast_box_m,
                     metric_crs=layer.metric_crs)
    chosen = res.index
    picked: np.ndarray = ids[np.maximum(chosen, 0)] if len(ids) else np.full(len(chosen), None, dtype=object)
    assigned: np.ndarray = np.where(chosen >= 0, picked, np.array(None, dtype=object))
    return assigned, np.asarray(METHODS, dtype=object)[res.method]


# --- per input partition ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _JoinOptions:
    resolution: int
    tolerance_m: float
    partition_resolution: int


_JOIN_COLUMNS = (S.H3_CELL, S.PRECINCT_ID, S.PRECINCT_METHOD)


def _join(part: pd.DataFrame, layer: _Layer, opts: _JoinOptions, check: bool) -> pd.DataFrame:
    """A copy of one partition with ``h3_cell``, ``precinct_id`` and ``precinct_method``, as the local join adds
    them (:func:`~geo_segment.join.add_h3_cells` then :func:`~geo_segment.join.assign_areas`)."""
    x, y = _xy(part)
    cells = _h3.latlng_to_cells(y, x, opts.resolution)
    ids, methods = _assign(x, y, layer, tolerance_m=opts.tolerance_m)
    out = part.copy()
    out[S.H3_CELL] = cells
    out[S.PRECINCT_ID] = pd.Series(ids, index=part.index, dtype="str")
    out[S.PRECINCT_METHOD] = pd.Series(methods, index=part.index, dtype="str")
    if check:
        S.validate_voters(out, stage="join", extra_required=_JOIN_COLUMNS)
    return out


def _join_counts(joined: pd.DataFrame) -> dict[str, int]:
    """The join stage's counts of one partition: points, with coordinates, per method, not geocoded."""
    x, y = _xy(joined)
    with_xy = int((np.isfinite(x) & np.isfinite(y)).sum())
    methods = joined[S.PRECINCT_METHOD].value_counts()
    counts = {"points": len(joined), "with_coordinates": with_xy}
    counts.update({m: int(methods.get(m, 0)) for m in METHODS})
    counts["not_geocoded"] = len(joined) - with_xy
    return counts


def _join_columns(joined: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(joined[list(_JOIN_COLUMNS)])


def _write(joined: pd.DataFrame, path: str) -> str:
    write_parquet(joined, path)
    return path


def _slim(joined: pd.DataFrame, number: int, columns: Sequence[str], src: int, partition_resolution: int) -> (
    pd.DataFrame
):
    """The aggregation columns of rows with a cell or a precinct, with input position and parent cell."""
    cells = joined[S.H3_CELL].to_numpy(dtype=np.uint64)
    keep = np.flatnonzero((cells != 0) | joined[S.PRECINCT_ID].notna().to_numpy())
    slim = pd.DataFrame(joined[[c for c in columns if c in joined.columns]]).iloc[keep].reset_index(drop=True)
    for col in slim.columns:
        # plain strings: each partition's categoricals have their own categories, which a shuffle cannot mix
        if col == S.VOTER_ID or isinstance(slim[col].dtype, pd.CategoricalDtype):
            slim[col] = slim[col].astype("str")
    slim[_POS] = (np.int64(number) << _ROW_BITS) + keep.astype(np.int64)
    slim[_PART] = _h3.cell_parents(cells[keep], partition_resolution)
    slim[_SRC] = np.int8(src)
    return slim


# --- per shuffled partition ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    """What every aggregation task must share with a run on the whole file."""

    k_min: int
    n_generals: int
    half_life_days: float
    as_of: pd.Timestamp | None
    dates: np.ndarray | None
    signals: bool
    ids: np.ndarray
    voter_meta: pd.DataFrame
    signal_meta: pd.DataFrame | None

    @property
    def options(self) -> dict[str, Any]:
        return {"n_generals": self.n_generals, "half_life_days": self.half_life_days, "as_of": self.as_of}


def _split(frame: pd.DataFrame, ctx: _Context) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Voter and signal rows of a shuffled partition, each in input order and with its own dtypes."""
    src = frame[_SRC].to_numpy()
    voters = frame.loc[src == 0, list(ctx.voter_meta.columns)].sort_values(_POS, kind="stable")
    if _VOTED in voters.columns:
        voters[_VOTED] = voters[_VOTED].fillna(0)
    voters = voters.astype(ctx.voter_meta.dtypes.to_dict()).reset_index(drop=True)
    signals = None
    if ctx.signal_meta is not None:
        signals = frame.loc[src == 1, list(ctx.signal_meta.columns)].sort_values(_POS, kind="stable")
        signals = signals.astype(ctx.signal_meta.dtypes.to_dict()).reset_index(drop=True)
    return voters, signals


def _history(voters: pd.DataFrame, ctx: _Context) -> pd.DataFrame | None:
    """Long history rebuilt from the voters' bit masks, plus one placeholder row per chosen date."""
    if ctx.dates is None:
        return None
    bits = voters[_VOTED].to_numpy(dtype=np.int64)
    vids = voters[S.VOTER_ID].astype("str").reset_index(drop=True)
    ids = [vids[(bits >> i) & 1 == 1] for i in range(len(ctx.dates))]
    dates = [np.full(len(chunk), d) for chunk, d in zip(ids, ctx.dates, strict=True)]
    ids.append(pd.Series(np.full(len(ctx.dates), _PLACEHOLDER, dtype=object), dtype="str"))
    dates.append(ctx.dates)
    n = sum(len(c) for c in ids)
    return pd.DataFrame({
        S.VOTER_ID: pd.concat(ids, ignore_index=True),
        S.ELECTION_DATE: np.concatenate(dates),
        S.ELECTION_TYPE: pd.Series(np.full(n, "general", dtype=object), dtype="str"),
        S.VOTED: np.ones(n, dtype=bool),
    })


def _signals(signals: pd.DataFrame | None, ctx: _Context) -> pd.DataFrame | None:
    """The partition's signals plus one zero-weight placeholder (so every partition gets every signal column)."""
    if not ctx.signals or signals is None:
        return None
    meta = signals.dtypes.to_dict()
    extra = pd.DataFrame({
        S.H3_CELL: np.array([_PLACEHOLDER_CELL], dtype=np.uint64), S.PRECINCT_ID: [_PLACEHOLDER],
        S.TIMESTAMP: [ctx.as_of], S.KIND: [S.SIGNAL_KINDS[0]], S.WEIGHT: [0.0],
    })
    extra = extra.reindex(columns=signals.columns).astype({c: meta[c] for c in extra.columns if c in meta})
    return pd.concat([signals, extra], ignore_index=True)


def _cells_partition(frame: pd.DataFrame, ctx: _Context) -> gpd.GeoDataFrame | None:
    """Aggregate the whole cells of one partition (suppression included: a cell never spans partitions)."""
    voters, signals = _split(frame, ctx)
    voters = voters[voters[S.H3_CELL].to_numpy() != 0]
    if voters.empty:
        return None
    return aggregate_cells(voters, _history(voters, ctx), _signals(signals, ctx), k_min=ctx.k_min, **ctx.options)


def _precinct_table(voters: pd.DataFrame, signals: pd.DataFrame | None, ids: np.ndarray, ctx: _Context) -> (
    pd.DataFrame
):
    """``aggregate_precincts`` for the precincts ``ids`` without suppression: ``precinct_id`` and the counts."""
    layer = gpd.GeoDataFrame({_LAYER_ID: ids}, geometry=np.full(len(ids), None), crs=S.CRS_STORAGE)
    out = aggregate_precincts(voters, layer, _history(voters, ctx), _signals(signals, ctx), id_col=_LAYER_ID,
                              k_min=0, **ctx.options)
    return pd.DataFrame(out.drop(columns=[_LAYER_ID, out.geometry.name]))


def _precincts_partition(frame: pd.DataFrame, ctx: _Context) -> pd.DataFrame | None:
    """Counts of the whole precincts of one partition, unsuppressed."""
    voters, signals = _split(frame, ctx)
    voters = voters[voters[S.PRECINCT_ID].notna().to_numpy()]
    present = set(voters[S.PRECINCT_ID].unique())
    if signals is not None:
        signals = signals[signals[S.PRECINCT_ID].notna().to_numpy()]
        present.update(signals[S.PRECINCT_ID].unique())
    if not present:
        return None
    ids = pd.unique(ctx.ids[pd.Index(ctx.ids).isin(present)])
    return _precinct_table(voters, signals, ids, ctx)


# --- the client side -------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _connect(address: str | None) -> Iterator[Client]:
    """A client for ``address``; else the active client; else a temporary 2-worker ``LocalCluster``."""
    if address is not None:
        with Client(address, set_as_default=False) as client:
            yield client
        return
    try:
        active: Client | None = default_client()
    except ValueError:
        active = None
    if active is not None:
        yield active
        return
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


def _is_dask(obj: Any) -> bool:
    return isinstance(obj, dd.DataFrame)


#: what workers need of in-memory voters and signals (coordinates and the aggregation columns)
_VOTER_INPUT = (S.LAT, S.LNG, S.VOTER_ID, S.HOUSEHOLD_ID, S.BUILDING_ID, S.PARTY)
_SIGNAL_INPUT = (S.LAT, S.LNG, S.TIMESTAMP, S.KIND, S.WEIGHT)


def _project(frame: Any, columns: Sequence[str] | None) -> Any:
    """The ``columns`` present, plus the geometry when the coordinates must come from it (no ``lat``/``lng``)."""
    if columns is None:
        return frame
    keep = [c for c in columns if c in frame.columns]
    if not (S.LAT in keep and S.LNG in keep):
        keep.append(frame.geometry.name)
    return frame[keep]


def _sources(data: Any, client: Client, npartitions: int | None, what: str, columns: Sequence[str] | None) -> (
    tuple[list[Any], pd.DataFrame, bool]
):
    """Partitions of an input (scattered slices or lazy Parquet reads), their empty meta, whether it was in memory.

    In-memory frames are sliced in order and only ``columns`` are sent; Parquet is read whole unless ``columns``.
    """
    if isinstance(data, gpd.GeoDataFrame):
        _require_4326(data, what)
        frame = _project(data, columns)
        n = npartitions or max(1, math.ceil(len(data) / ROWS_PER_PARTITION))
        edges = np.linspace(0, len(data), min(n, max(len(data), 1)) + 1).astype(int)
        chunks = [frame.iloc[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
        return list(client.scatter(chunks)), frame.iloc[:0], True
    ddf = data if _is_dask(data) else dask_geopandas.read_parquet(expand_parquet_paths(data))
    if not isinstance(ddf._meta, gpd.GeoDataFrame):
        raise ConfigError(f"{what} are not a GeoDataFrame", found=type(ddf._meta).__name__,
                          fix="write them as GeoParquet (geo-segment ingest does)")
    _require_4326(ddf._meta, what)
    ddf = _project(ddf, columns)
    return list(ddf.to_delayed()), ddf._meta, False


def _table(data: Any, columns: Sequence[str], client: Client | None = None) -> dd.DataFrame:
    """A dask frame of ``columns``: in-memory frames are scattered in slices (not embedded in the graph)."""
    if isinstance(data, pd.DataFrame):
        frame = pd.DataFrame(data[list(columns)])
        if client is None or not len(frame):
            return dd.from_pandas(frame, npartitions=1, sort=False)
        edges = range(0, len(frame), ROWS_PER_PARTITION * 4)
        futures = client.scatter([frame.iloc[a:a + ROWS_PER_PARTITION * 4] for a in edges])
        return dd.from_delayed(futures, meta=frame.iloc[:0], verify_meta=False)
    if _is_dask(data):
        return data[list(columns)]
    return dd.read_parquet(expand_parquet_paths(data), columns=list(columns))


def _general_dates(history: Any, n_generals: int) -> np.ndarray | None:
    """The last ``n_generals`` general elections anyone voted in, newest first (the local rule), or None."""
    if history is None or n_generals <= 0:
        return None
    cols = (S.VOTER_ID, S.ELECTION_DATE, S.ELECTION_TYPE, S.VOTED)
    if isinstance(history, pd.DataFrame):
        gen = history[(history[S.ELECTION_TYPE] == "general") & history[S.VOTED]]
        uniq = np.asarray(gen[S.ELECTION_DATE].dropna().unique())
    else:
        h = _table(history, cols)
        gen = h[(h[S.ELECTION_TYPE] == "general") & h[S.VOTED]]
        uniq = np.asarray(gen[S.ELECTION_DATE].dropna().unique().compute())
    if not len(uniq):
        return None
    return np.sort(uniq)[::-1][:n_generals]


def _voted_flags(part: pd.DataFrame, dates: np.ndarray) -> pd.DataFrame:
    gen = part[(part[S.ELECTION_TYPE] == "general") & part[S.VOTED]]
    code = pd.Index(dates).get_indexer(gen[S.ELECTION_DATE])
    ok = code >= 0
    out = pd.DataFrame({S.VOTER_ID: gen[S.VOTER_ID].astype("str").to_numpy()[ok]})
    for i in range(len(dates)):
        out[f"_g{i}"] = (code[ok] == i).astype(np.int8)
    return out


def _pack_bits(part: pd.DataFrame, n: int) -> pd.DataFrame:
    bits = np.zeros(len(part), dtype=np.int64)
    for i in range(n):
        bits |= part[f"_g{i}"].to_numpy(dtype=np.int64) << i
    return pd.DataFrame({_VOTED: bits}, index=part.index)


def _flags(history: Any, dates: np.ndarray, nparts: int, client: Client) -> dd.DataFrame:
    """One row per voter who voted in a chosen general election: ``_voted``, bit i for ``dates[i]``."""
    h = _table(history, (S.VOTER_ID, S.ELECTION_DATE, S.ELECTION_TYPE, S.VOTED), client)
    meta = _voted_flags(h._meta, dates)
    rows = h.map_partitions(_voted_flags, dates, meta=meta)
    per_voter = rows.groupby(S.VOTER_ID).max(split_out=nparts)
    return per_voter.map_partitions(_pack_bits, len(dates), meta=_pack_bits(per_voter._meta, len(dates)))


def _newest_signal(signals: Any) -> tuple[int, pd.Timestamp | None]:
    """Number of signals and their newest timestamp (UTC), the local default of ``as_of``."""
    if isinstance(signals, pd.DataFrame):
        return len(signals), pd.to_datetime(signals[S.TIMESTAMP], utc=True).max()
    ts = _table(signals, (S.TIMESTAMP,))[S.TIMESTAMP]
    ts = ts.map_partitions(pd.to_datetime, utc=True, meta=pd.to_datetime(ts._meta, utc=True))
    n, newest = dask.compute(ts.size, ts.max())
    return int(n), newest


def _assemble_precincts(parts: list[pd.DataFrame], precincts: gpd.GeoDataFrame, id_col: str, k_min: int) -> (
    gpd.GeoDataFrame
):
    """Stack partitions' precinct rows in the layer's order, suppress once, put the layer's attributes back."""
    ids = precincts[id_col].astype("str")
    table = pd.concat(parts, ignore_index=True).set_index(S.PRECINCT_ID)
    table = table.reindex(pd.Index(ids.to_numpy(), name=S.PRECINCT_ID)).drop(columns="suppressed")
    table = suppress_small(table.reset_index(drop=True), k_min=k_min)
    attrs = precincts.drop(columns=[c for c in precincts.columns if c in table.columns or c == S.PRECINCT_ID])
    out = pd.concat([attrs.reset_index(drop=True), table], axis=1)
    out.insert(0, S.PRECINCT_ID, ids.to_numpy())
    return gpd.GeoDataFrame(out, geometry=precincts.geometry.name, crs=precincts.crs)


def _check_output(voters_out: str | Path | None) -> None:
    if voters_out is None:
        return
    folder = Path(voters_out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputPathError("voters_out must be a new or empty folder", found=str(folder),
                              fix="choose another folder, or empty this one")


def _output_paths(voters_out: str | Path | None, n: int) -> list[str]:
    if voters_out is None:
        return []
    folder = Path(voters_out)
    folder.mkdir(parents=True, exist_ok=True)
    return [str(folder / f"part.{i:05d}.parquet") for i in range(n)]


def _check_options(resolution: int, partition_resolution: int, npartitions: int | None) -> None:
    res = _h3.check_resolution(resolution)
    if isinstance(partition_resolution, bool) or not isinstance(partition_resolution, int | np.integer) or not (
        0 <= partition_resolution <= res
    ):
        raise ConfigError("partition_resolution must be an H3 resolution no finer than the cells'",
                          expected=f"an integer from 0 to {res}", found=repr(partition_resolution),
                          fix="use 4 (about 1,800 km² parents) or 5 for dense areas")
    if npartitions is not None and (isinstance(npartitions, bool) or not isinstance(npartitions, int)
                                    or npartitions < 1):
        raise ConfigError("npartitions must be a positive integer", found=repr(npartitions),
                          fix="leave it unset to follow the input's partitions")


def join_aggregate_dask(
    voters: gpd.GeoDataFrame | ParquetSource | dd.DataFrame,
    precincts: gpd.GeoDataFrame,
    history: pd.DataFrame | ParquetSource | dd.DataFrame | None = None,
    signals: gpd.GeoDataFrame | ParquetSource | dd.DataFrame | None = None,
    *,
    id_col: str,
    resolution: int = 9,
    tolerance_m: float = 50.0,
    k_min: int = K_MIN,
    n_generals: int = 4,
    half_life_days: float = 30.0,
    as_of: pd.Timestamp | None = None,
    partition_resolution: int = 4,
    address: str | None = None,
    npartitions: int | None = None,
    voters_out: str | Path | None = None,
) -> JoinAggregate:
    """Join voters to H3 cells and precincts and aggregate them on a dask.distributed cluster.

    Same inputs, options and outputs as :func:`geo_segment.engines.join_aggregate_local`, equal to them (see the
    module docstring for how), with memory bounded by the partitions' size: voters are read lazily, joined partition
    by partition, and only a slim table of them is shuffled (spilling to disk).

    Parameters
    ----------
    voters
        Voters (EPSG:4326): a GeoDataFrame (split into ``npartitions`` slices and scattered to the workers),
        GeoParquet file(s) (a path, a folder, a glob or a list, read with ``dask_geopandas.read_parquet``), or a
        dask-geopandas frame.
    precincts
        The precinct layer (EPSG:4326), broadcast to every worker; ``id_col`` holds its id.
    history
        Long vote history: a DataFrame, Parquet file(s) or a dask frame (only ``voter_id``, ``election_date``,
        ``election_type`` and ``voted`` are read).
    signals
        Signals: a GeoDataFrame, GeoParquet file(s) or a dask-geopandas frame; joined like the voters.
    id_col, resolution, tolerance_m, k_min, n_generals, half_life_days, as_of
        As in the local engine.
    partition_resolution
        H3 resolution (0..``resolution``) of the parent cells the slim table is shuffled by for the cell
        aggregates: 4 (about 1,800 km²) by default, 5 (about 250 km²) for smaller partitions in dense areas.
    address
        A scheduler address (``tcp://host:8786``). ``None`` uses the active client, or else starts a temporary
        ``LocalCluster`` with 2 single-threaded worker processes and closes it at the end.
    npartitions
        Partitions of an in-memory input (default one per 250,000 rows) and of each shuffle (default: as many
        as the voters' input partitions).
    voters_out
        A new or empty folder for the joined voters, and the first returned value is ``None``. Parquet input: each
        partition is written as ``part.NNNNN.parquet`` (GeoParquet) by the worker that joined it, so the joined
        voters never need to fit in the client's memory (the folder must be reachable by every worker). In-memory
        input: the client writes ``part.00000.parquet``.

    Returns
    -------
    (GeoDataFrame or None, GeoDataFrame, GeoDataFrame, dict)
        Joined voters (the input's rows, index and order; a fresh ``RangeIndex`` for Parquet input), cells and
        precincts as the local engine returns them, and metrics: ``engine``, ``join`` (counts summed over
        partitions; the method counts equal the local engine's, the fast-path counts need not),
        ``aggregate``, ``partitions`` (input, shuffle, partition resolution, workers) and ``seconds``.

    Raises
    ------
    ConfigError
        A CRS other than EPSG:4326, a bad resolution, partition resolution or ``npartitions``.
    MissingColumnsError
        ``id_col`` is not a column of ``precincts``.
    SchemaError
        A partition of joined voters breaks the column contract (``voter_id`` uniqueness is checked within
        partitions only).
    OutputPathError
        ``voters_out`` exists and is not an empty folder.

    Examples
    --------
    >>> from geo_segment.engines.dask import join_aggregate_dask  # doctest: +SKIP
    >>> voters, cells, areas, metrics = join_aggregate_dask(
    ...     "voters/*.parquet", precincts, "history/*.parquet", id_col="precinct_id",
    ...     address="tcp://scheduler:8786", voters_out="run/voters_joined")  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    _check_options(resolution, partition_resolution, npartitions)
    _check_output(voters_out)
    layer = _layer(precincts, id_col)
    jopts = _JoinOptions(resolution=int(resolution), tolerance_m=float(tolerance_m),
                         partition_resolution=int(partition_resolution))
    in_memory = isinstance(voters, gpd.GeoDataFrame)
    if isinstance(voters, gpd.GeoDataFrame):
        _require_4326(voters, "voters")
        S.validate_voters(voters.drop(columns=[c for c in _JOIN_COLUMNS if c in voters.columns]), stage="join")
    with _connect(address) as client, client.as_current(), dask.config.set({"dataframe.shuffle.method": "p2p"}):
        t_connect = time.perf_counter()
        workers = len(client.nthreads())
        sources, meta, _ = _sources(voters, client, npartitions, "voters", _VOTER_INPUT if in_memory else None)
        if not in_memory:
            S.validate_voters(meta, stage="join")
        n = len(sources)
        out_paths = _output_paths(voters_out, 1 if in_memory else n)
        layer_f = client.scatter(layer, broadcast=True)
        n_shuffle = npartitions or max(1, n)
        pres = int(partition_resolution)
        log.info("dask engine: %d input partitions, %d shuffle partitions, %d workers", n, n_shuffle, workers)

        # 1-2. join per input partition; slim tables
        joined_d = [delayed(_join)(src, layer_f, jopts, not in_memory) for src in sources]
        counts = [delayed(_join_counts)(j) for j in joined_d]
        if in_memory:
            outputs = [delayed(_join_columns)(j) for j in joined_d]
        elif voters_out is not None:
            outputs = [delayed(_write)(j, path) for j, path in zip(joined_d, out_paths, strict=True)]
        else:
            outputs = joined_d
        slim_meta = _slim(_join(meta, layer, jopts, False), 0, _VOTER_COLS, 0, pres)
        slim = dd.from_delayed([delayed(_slim)(j, i, _VOTER_COLS, 0, pres) for i, j in enumerate(joined_d)],
                               meta=slim_meta, verify_meta=False)

        dates = _general_dates(history, n_generals)
        if dates is not None:
            flags = _flags(history, dates, n_shuffle, client)
            slim = slim.merge(flags, how="left", left_on=S.VOTER_ID, right_index=True)
            slim_meta = slim_meta.assign(**{_VOTED: np.zeros(0, dtype=np.int64)})

        n_signals, newest = (0, None) if signals is None else _newest_signal(signals)
        signal_meta = None
        if n_signals:
            s_sources, s_meta, _ = _sources(signals, client, npartitions, "signals", _SIGNAL_INPUT)
            signal_meta = _slim(_join(s_meta, layer, jopts, False), 0, _SIGNAL_COLS, 1, pres)
            s_slim = dd.from_delayed([delayed(_slim)(delayed(_join)(src, layer_f, jopts, False), i, _SIGNAL_COLS, 1,
                                                     pres) for i, src in enumerate(s_sources)],
                                     meta=signal_meta, verify_meta=False)
            slim = dd.concat([slim, s_slim])
        ctx = _Context(k_min=k_min, n_generals=n_generals, half_life_days=half_life_days,
                       as_of=as_of if as_of is not None else newest, dates=dates, signals=bool(n_signals),
                       ids=layer.ids, voter_meta=slim_meta, signal_meta=signal_meta)
        ctx_f = client.scatter(ctx, broadcast=True)

        # 3-4. shuffle by parent cell and by precinct; aggregate whole units per partition
        by_parent = slim.shuffle(on=_PART, npartitions=n_shuffle).to_delayed()
        by_precinct = slim.shuffle(on=S.PRECINCT_ID, npartitions=n_shuffle).to_delayed()
        cell_tasks = [delayed(_cells_partition)(p, ctx_f) for p in by_parent]
        precinct_tasks = [delayed(_precincts_partition)(p, ctx_f) for p in by_precinct]
        t_graph = time.perf_counter()
        results = client.gather(client.compute([*outputs, *counts, *cell_tasks, *precinct_tasks]))
        t_run = time.perf_counter()
    t_closed = time.perf_counter()

    out_parts, join_counts = results[:n], results[n:2 * n]
    cell_parts = [p for p in results[2 * n:2 * n + len(cell_tasks)] if p is not None]
    precinct_parts = [p for p in results[2 * n + len(cell_tasks):] if p is not None]

    joined: gpd.GeoDataFrame | None = None
    if in_memory:
        joined = _attach(voters, out_parts)
        if voters_out is not None:
            write_parquet(joined, out_paths[0])
            joined = None
    elif voters_out is None:
        joined = gpd.GeoDataFrame(pd.concat(out_parts, ignore_index=True)) if n > 1 else out_parts[0].reset_index(
            drop=True)
    empty_v = slim_meta.iloc[:0]
    if cell_parts:
        cells = gpd.GeoDataFrame(pd.concat(cell_parts, ignore_index=True))
        cells = cells.sort_values(S.H3_CELL, kind="stable").reset_index(drop=True)
    else:
        cells = aggregate_cells(empty_v, _history(empty_v, ctx), _signals(_empty_signals(ctx), ctx),
                                k_min=k_min, **ctx.options)
    present = set().union(*(set(p[S.PRECINCT_ID].unique()) for p in precinct_parts))
    absent = pd.unique(layer.ids[~pd.Index(layer.ids).isin(present)])
    if len(absent) or not precinct_parts:
        precinct_parts.append(_precinct_table(empty_v, _empty_signals(ctx), absent, ctx))
    areas = _assemble_precincts(precinct_parts, precincts, id_col, k_min)
    t_end = time.perf_counter()

    jm: dict[str, Any] = {k: sum(c[k] for c in join_counts) for k in ("points", "with_coordinates", *METHODS,
                                                                      "not_geocoded")}
    jm.update({"fast_box_m": layer.fast_box_m, "metric_crs": str(layer.metric_crs),
               "h3_resolution": resolution, "tolerance_m": tolerance_m})
    metrics: dict[str, Any] = {
        "engine": "dask",
        "join": jm,
        "aggregate": aggregate_metrics(cells, areas),
        "partitions": {"input": n, "shuffle": n_shuffle, "partition_resolution": pres, "workers": workers},
        "seconds": {"connect": round(t_connect - t0, 3), "graph": round(t_graph - t_connect, 3),
                    "run": round(t_run - t_graph, 3), "close": round(t_closed - t_run, 3),
                    "assemble": round(t_end - t_closed, 3),
                    "total": round(t_end - t0, 3)},
    }
    if voters_out is not None:
        metrics["voters_out"] = str(voters_out)
    return joined, cells, areas, metrics


def _attach(voters: gpd.GeoDataFrame, parts: list[pd.DataFrame]) -> gpd.GeoDataFrame:
    """The in-memory voters with the join's columns from the workers, as the local join builds them."""
    cols = pd.concat(parts) if len(parts) > 1 else parts[0]
    out = voters.copy()
    out[S.H3_CELL] = cols[S.H3_CELL].to_numpy(dtype=np.uint64)
    for c in (S.PRECINCT_ID, S.PRECINCT_METHOD):
        out[c] = pd.Series(cols[c].to_numpy(dtype=object), index=voters.index, dtype="str")
    S.validate_voters(out, stage="join", extra_required=_JOIN_COLUMNS)
    return out


def _empty_signals(ctx: _Context) -> pd.DataFrame | None:
    return None if ctx.signal_meta is None else ctx.signal_meta.iloc[:0]
