"""The turfs stage: universe -> doors -> turfs -> walk lists -> packets, written into a run folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_segment import schema as S
from geo_segment._vector import plain_text
from geo_segment.config import TurfsConfig
from geo_segment.io.atomic import write_parquet
from geo_segment.io.manifest import StageRecord
from geo_segment.turfs.doors import Universe, build_doors, select_universe
from geo_segment.turfs.packets import packet_sections, write_packet_html, write_packets
from geo_segment.turfs.parallel import resolve_workers, run_tasks
from geo_segment.turfs.results import contacted_households
from geo_segment.turfs.stage import TurfCut, cut_turfs
from geo_segment.turfs.walklists import walklist_rows, write_walklists

__all__ = ["TurfStageResult", "read_previous_cut", "turf_stage"]


def read_previous_cut(folder: str | Path) -> TurfCut | None:
    """The cut written in ``folder`` by :func:`turf_stage` (``None`` when its files are not all there)."""
    from geo_segment.turfs.cut import metric_crs

    base = Path(folder)
    names = ("turfs.parquet", "routes.parquet", "doors.parquet")
    if not all((base / n).exists() for n in names):
        return None
    doors = pd.read_parquet(base / "doors.parquet").drop(columns="geometry", errors="ignore")
    if "atom" not in doors.columns or len(doors) == 0:
        return None
    crs = metric_crs(doors[S.LAT].to_numpy(dtype=float), doors[S.LNG].to_numpy(dtype=float))
    return TurfCut(doors=doors, turfs=gpd.read_parquet(base / "turfs.parquet"),
                   routes=gpd.read_parquet(base / "routes.parquet"), edges=np.empty((0, 2), dtype=np.int64),
                   metrics={"metric_crs": crs.to_string()})


@dataclass
class TurfStageResult:
    """Outputs of :func:`turf_stage`: files by role, the stage records, the cut and the walk-list rows."""

    outputs: dict[str, Path]
    stages: list[StageRecord]
    cut: TurfCut
    rows: pd.DataFrame
    counts: dict[str, Any] = field(default_factory=dict)


def turf_stage(
    voters: pd.DataFrame,
    precincts: pd.DataFrame | None,
    out_dir: str | Path,
    config: TurfsConfig | None = None,
    *,
    universe: Universe | None = None,
    history: pd.DataFrame | None = None,
    contact_history: pd.DataFrame | None = None,
    exclude_contacted: bool = False,
    do_not_contact: Any = None,
    barriers: Any = None,
    polygons: pd.DataFrame | None = None,
    polygon_id: str = "name",
    packets: bool = True,
    pdf: bool = False,
    chromium: str | None = None,
    as_of_year: int | None = None,
    previous: TurfCut | None = None,
) -> TurfStageResult:
    """Cut turfs for the chosen universe and write ``turfs.parquet``, ``routes.parquet``, ``doors.parquet``,
    ``walklists/<turf_id>.csv`` and ``packets/<turf_id>.html`` (and ``.pdf`` with ``pdf=True``).

    Parameters
    ----------
    voters
        Scored voters (``voters.parquet`` of a run: ``voter_id``, ``household_id``, ``building_id``, ``lat``,
        ``lng``, ``precinct_id``, ``street``, ``house_number``, ``unit``, names, ``party``, ``birth_year``,
        ``engagement_score``).
    precincts
        Precinct polygons (``precinct_id``, geometry EPSG:4326) to clip turf polygons; ``None`` to skip.
    out_dir
        The run folder.
    config
        ``[turfs]`` settings.
    universe, history
        Voter filters (:class:`Universe`) and the vote history for the turnout filter.
    contact_history, exclude_contacted
        With ``exclude_contacted``, households with a finished contact in ``contact_history`` are left out.
    do_not_contact
        Voter or household ids never to knock.
    barriers
        Lines (EPSG:4326) turfs may not cross (major roads, rivers, rail).
    polygons, polygon_id
        User polygons for ``within = "polygon"``.
    packets, pdf, chromium
        Write HTML packets; print them to PDF with Chromium.
    previous
        The cut of an earlier run with the same settings (see :func:`read_previous_cut`): regions whose doors did
        not change keep their turfs and only the others are cut again (the same result as a full cut).

    Returns
    -------
    TurfStageResult
        Stage records ``universe`` (voters in -> kept + filtered), ``doors`` (universe voters -> voters behind
        a door + removed) and ``turfs`` (doors in -> doors in turfs).
    """
    cfg = config or TurfsConfig()
    out = Path(out_dir)
    t0 = time.perf_counter()
    # only the columns the filters, doors and walk lists read (a voter file has many more; copies stay small)
    used = {*_USED_COLUMNS, (universe or Universe()).score_col}
    # plain strings: doors, walk lists and packets build text from these columns row by row
    chosen, ucounts = select_universe(plain_text(pd.DataFrame(voters[[c for c in voters.columns if c in used]])),
                                      universe, history=history)
    removed_u = sum(v for k, v in ucounts.items() if k.startswith("removed_"))
    stages = [StageRecord("universe", rows_in=len(voters), rows_out=len(chosen), rows_rejected=0,
                          rows_dropped=removed_u, seconds=round(time.perf_counter() - t0, 3), metrics=ucounts)]
    t1 = time.perf_counter()
    contacted = None
    if exclude_contacted and contact_history is not None:
        contacted = contacted_households(contact_history)
    doors, members, dcounts = build_doors(chosen, door_unit=cfg.door_unit, within=cfg.within, polygons=polygons,
                                          polygon_id=polygon_id, do_not_contact=do_not_contact, contacted=contacted)
    removed_d = sum(v for k, v in dcounts.items() if k.startswith("removed_"))
    stages.append(StageRecord("doors", rows_in=len(chosen), rows_out=len(members), rows_rejected=0,
                              rows_dropped=removed_d, seconds=round(time.perf_counter() - t1, 3), metrics=dcounts))
    region_polygons = None
    if precincts is not None and cfg.within == "precinct":
        region_polygons = dict(zip(precincts[S.PRECINCT_ID].astype(str), precincts.geometry, strict=True))
    elif polygons is not None and cfg.within == "polygon":
        region_polygons = dict(zip(polygons[polygon_id].astype(str), polygons.geometry, strict=True))
    cut = cut_turfs(doors, config=cfg, region_polygons=region_polygons, barriers=barriers, previous=previous)
    stages.append(StageRecord("turfs", rows_in=len(doors), rows_out=len(cut.doors), rows_rejected=0,
                              seconds=cut.metrics.get("seconds_total", 0.0), metrics=cut.metrics))
    t2 = time.perf_counter()
    rows = walklist_rows(cut.doors, members, cut.turfs, as_of_year=as_of_year)
    outputs, (n_lists, n_html, n_pdf, workers) = _write_lists_and_packets(cut, rows, members, out, cfg,
                                                                          packets=packets, pdf=pdf,
                                                                          chromium=chromium)
    stages.append(StageRecord("walklists", rows_in=len(members), rows_out=len(rows), rows_rejected=0,
                              seconds=round(time.perf_counter() - t2, 3),
                              metrics={"walklists": n_lists, "packets_html": n_html, "packets_pdf": n_pdf,
                                       "workers": workers}))
    counts = {**ucounts, **dcounts, **{k: v for k, v in cut.metrics.items() if not k.startswith("seconds")}}
    return TurfStageResult(outputs=outputs, stages=stages, cut=cut, rows=rows, counts=counts)


#: the most turfs whose walk lists and packets are built and written together
_PACKET_CHUNK = 1000

#: chunks of turfs per worker process at least (smaller chunks even out the workers' shares of the work)
_CHUNKS_PER_WORKER = 6


@dataclass(frozen=True)
class _WriteInput:
    """What the walk lists and packets of every chunk of turfs are built from (shared with workers by fork)."""

    cut: TurfCut
    rows: pd.DataFrame
    members: pd.DataFrame
    bounds: list[int]
    routes_aligned: bool
    row_chunk: Any
    door_chunk: Any
    out: Path
    config: TurfsConfig
    packets: bool
    pdf: bool
    chromium: str | None


def _write_task(shared: _WriteInput, task: int) -> tuple[int, int, int]:
    """Task 0 writes the parquet files (:func:`_write_tables`; the longest task first, so that the chunks even
    out the workers' shares), task ``k + 1`` the walk lists and packets of chunk ``k``."""
    if task == 0:
        _write_tables(shared.cut, shared.members, shared.out)
        return 0, 0, 0
    return _write_chunk(shared, task - 1)


def _write_chunk(shared: _WriteInput, k: int) -> tuple[int, int, int]:
    """Write the walk lists and packets of chunk ``k`` of the turfs (in ``turf_id`` order); return the counts."""
    rows = _chunk_of(shared.rows, shared.row_chunk, k)
    lists = write_walklists(rows, shared.out / "walklists")
    if not shared.packets:
        return len(lists), 0, 0
    turfs = shared.cut.turfs.iloc[shared.bounds[k]:shared.bounds[k + 1]]
    routes = shared.cut.routes.iloc[shared.bounds[k]:shared.bounds[k + 1]] if shared.routes_aligned else \
        shared.cut.routes
    doors = _chunk_of(shared.cut.doors, shared.door_chunk, k)
    if not shared.pdf:
        html = write_packet_html(turfs, routes, doors, rows, shared.out / "packets", config=shared.config)
        return len(lists), len(html), 0
    sections = packet_sections(turfs, routes, doors, rows, config=shared.config)
    written = write_packets(sections, shared.out / "packets", pdf=shared.pdf, chromium=shared.chromium)
    return len(lists), len(written["html"]), len(written["pdf"])


#: the parquet files of the stage, by output role
_TABLES = {"turfs": "turfs.parquet", "routes": "routes.parquet", "doors": "doors.parquet",
           "door_members": "door_members.parquet"}


def _write_tables(cut: TurfCut, members: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Write ``turfs.parquet``, ``routes.parquet``, ``doors.parquet`` and ``door_members.parquet``."""
    return {
        "turfs": write_parquet(cut.turfs, out / _TABLES["turfs"]),
        "routes": write_parquet(cut.routes, out / _TABLES["routes"]),
        "doors": write_parquet(_door_output(cut.doors), out / _TABLES["doors"]),
        "door_members": write_parquet(members[[S.VOTER_ID, "door_id"]].astype("string"),
                                      out / _TABLES["door_members"]),
    }


def _chunk_of(frame: pd.DataFrame, chunk: Any, k: int) -> pd.DataFrame:
    """The rows of ``frame`` in chunk ``k``: a slice when the frame is in chunk order (rows and doors are sorted by
    turf id, as the turfs), else a selection."""
    c = np.asarray(chunk)
    if len(c) and c[0] >= 0 and bool((c[1:] >= c[:-1]).all()):
        lo, hi = np.searchsorted(c, [k, k + 1])
        return frame.iloc[int(lo):int(hi)]
    return frame.loc[c == k]


def _chunk_bounds(rows_per_turf: npt.NDArray[np.int64], workers: int) -> list[int]:
    """First turf of each chunk (and the number of turfs last): consecutive turfs with about the same number of
    walk-list rows, at most :data:`_PACKET_CHUNK` turfs each, and (with workers) at least
    :data:`_CHUNKS_PER_WORKER` chunks per worker when there are turfs enough.

    Examples
    --------
    >>> _chunk_bounds(np.array([5, 1, 1, 1, 5, 1]), 1)
    [0, 6]
    >>> _chunk_bounds(np.array([5, 1, 1, 1, 5, 1]), 2)
    [0, 1, 2, 3, 5, 6]
    """
    n = len(rows_per_turf)
    n_chunks = -(-n // _PACKET_CHUNK)
    if workers > 1:
        n_chunks = min(n, max(n_chunks, workers * _CHUNKS_PER_WORKER))
    if n_chunks <= 1:
        return [0, n]
    # chunk j ends at the turf where the rows so far (plus one per turf) pass j / n_chunks of them all
    cum = np.cumsum(np.asarray(rows_per_turf, dtype=np.float64) + 1.0)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_chunks) / n_chunks, side="left") + 1
    # at least one turf and at most _PACKET_CHUNK turfs per chunk
    bounds = [0]
    for c in cuts.tolist():
        c = min(max(c, bounds[-1] + 1), bounds[-1] + _PACKET_CHUNK, n)
        if c < n:
            bounds.append(c)
    while n - bounds[-1] > _PACKET_CHUNK:
        bounds.append(bounds[-1] + _PACKET_CHUNK)
    return [*bounds, n]


def _write_lists_and_packets(cut: TurfCut, rows: pd.DataFrame, members: pd.DataFrame, out: Path, cfg: TurfsConfig,
                             *, packets: bool, pdf: bool,
                             chromium: str | None) -> tuple[dict[str, Path], tuple[int, int, int, int]]:
    """Walk lists and packets in chunks of consecutive turfs with about the same number of rows (the HTML of every
    packet of a big county never sits in memory at once), the chunks spread over ``[turfs] workers`` processes
    (not when printing PDFs: Chromium runs its own processes), and the parquet files written as one more task.
    Each turf's files depend on that turf only, so they are the same whatever the split. Returns the parquet
    files by role and the numbers of walk lists, HTML and PDF packets, and the workers used."""
    if len(cut.turfs) == 0:
        return _write_tables(cut, members, out), (len(write_walklists(rows, out / "walklists")), 0, 0, 1)
    workers = 1 if pdf else resolve_workers(cfg.workers, len(cut.doors))
    turf_ids = pd.Index(cut.turfs[S.TURF_ID].astype(str))
    row_turf = turf_ids.get_indexer(rows[S.TURF_ID].astype(str))
    bounds = _chunk_bounds(np.bincount(row_turf[row_turf >= 0], minlength=len(turf_ids)), workers)
    chunk_of_turf = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    # (rows and doors of no listed turf: chunk -1)
    row_chunk = np.where(row_turf >= 0, chunk_of_turf[np.maximum(row_turf, 0)], -1)
    door_turf = turf_ids.get_indexer(cut.doors[S.TURF_ID].astype(str))
    door_chunk = np.where(door_turf >= 0, chunk_of_turf[np.maximum(door_turf, 0)], -1)
    # (the routes are in the turfs' order, as cut_turfs writes them: each chunk's routes are a slice too)
    aligned = len(cut.routes) == len(turf_ids) and bool(
        (cut.routes[S.TURF_ID].astype(str).to_numpy() == turf_ids.to_numpy()).all())
    shared = _WriteInput(cut=cut, rows=rows, members=members, bounds=bounds, routes_aligned=aligned,
                         row_chunk=row_chunk, door_chunk=door_chunk, out=out, config=cfg, packets=packets, pdf=pdf,
                         chromium=chromium)
    n_tasks = len(bounds)  # the parquet files, then the chunks
    counts = run_tasks(_write_task, shared, n_tasks, workers=workers, what="walk lists and packets")
    n_lists, n_html, n_pdf = (sum(c[i] for c in counts) for i in range(3))
    return {role: out / name for role, name in _TABLES.items()}, (n_lists, n_html, n_pdf, min(workers, n_tasks))

#: voter columns the turf stage reads (universe filters, regions, doors, walk lists)
_USED_COLUMNS = (S.VOTER_ID, S.HOUSEHOLD_ID, S.BUILDING_ID, S.LAT, S.LNG, S.PRECINCT_ID, S.MICRO_GEO, S.STREET,
                 S.HOUSE_NUMBER, S.UNIT, S.ADDRESS, S.LAST_NAME, S.FIRST_NAME, S.PARTY, S.BIRTH_YEAR,
                 S.ENGAGEMENT_SCORE)


def _door_output(doors: pd.DataFrame) -> gpd.GeoDataFrame:
    cols = [S.TURF_ID, S.DOOR_ORDER, "street_rank", "door_id", S.HOUSEHOLD_ID, S.BUILDING_ID, "region",
            S.PRECINCT_ID, "households", "people", S.LAT, S.LNG, "atom"]
    d = doors[cols].copy()
    return gpd.GeoDataFrame(d, geometry=gpd.points_from_xy(d[S.LNG], d[S.LAT]), crs=S.CRS_STORAGE)
