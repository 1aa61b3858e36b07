"""Turf cutting on doors: the stage function, per-turf statistics, polygons and routes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely
from scipy.spatial import cKDTree

from geo_segment import schema as S
from geo_segment.config import TurfsConfig
from geo_segment.turfs.cut import (
    Adjacency,
    Cut,
    atoms_of,
    cut_atoms,
    door_adjacency,
    metric_crs,
    stable_hash,
    to_metric,
)
from geo_segment.turfs.parallel import balanced_groups, resolve_workers, run_tasks
from geo_segment.turfs.walk import route_orders, street_order

__all__ = ["TURF_COLUMNS", "TurfCut", "cut_turfs"]

#: columns of ``turfs.parquet`` (besides ``geometry``)
TURF_COLUMNS = (S.TURF_ID, "region", S.PRECINCT_ID, "list_number", "doors", "households", "people", "buildings",
                "target_doors", "within_tolerance", "est_minutes", "route_m", "street_route_m",
                "optimized_route_m", "max_gap_m", "drive_flag", "component_doors", "outside_reason")


@dataclass
class TurfCut:
    """What :func:`cut_turfs` returns.

    Attributes
    ----------
    doors
        The input doors with ``turf_id``, ``door_order`` (1-based walking order in the turf), ``street_rank``
        (position in street-sorted order) and ``atom`` added.
    turfs
        GeoDataFrame (EPSG:4326), one row per turf: :data:`TURF_COLUMNS` and a polygon (the union of its doors'
        Voronoi cells clipped to the region: contiguous where the doors are, non-overlapping).
    routes
        GeoDataFrame (EPSG:4326): ``turf_id`` and the walking path as a LineString.
    adjacency
        ``(edges, atom_of_door)``: the atom graph the turfs are contiguous on (for checks and tests).
    metrics
        Counts for the stage record.
    """

    doors: pd.DataFrame
    turfs: gpd.GeoDataFrame
    routes: gpd.GeoDataFrame
    edges: npt.NDArray[np.int64]
    metrics: dict[str, Any] = field(default_factory=dict)


def _to_4326(geoms: Any, crs: pyproj.CRS) -> Any:
    inv = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def fn(c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        xx, yy = inv.transform(c[:, 0], c[:, 1])
        return np.column_stack([xx, yy])

    return shapely.transform(geoms, fn)


def _to_metric_geoms(geoms: Any, crs: pyproj.CRS) -> Any:
    fwd = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def fn(c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        xx, yy = fwd.transform(c[:, 0], c[:, 1])
        return np.column_stack([xx, yy])

    return shapely.transform(geoms, fn)


def _run_lengths(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
                 bounds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Length of the path through each run ``bounds[k]:bounds[k + 1]`` of points (``path_length`` of each run,
    summed the same way, so to the same last bit)."""
    seg = np.hypot(np.diff(x), np.diff(y))
    b = bounds.tolist()
    # a fresh copy of each run is summed, as path_length sums a fresh array (same alignment, same pairwise sum)
    return np.array([float(seg[b[k]:b[k + 1] - 1].copy().sum()) if b[k + 1] - b[k] >= 2 else 0.0
                     for k in range(len(b) - 1)])


def _group_slices(codes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], list[npt.NDArray[np.int64]]]:
    order = np.argsort(codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    return order, np.split(order, cuts)


@dataclass(frozen=True)
class _GroupInput:
    """What every group of regions is cut from (shared with worker processes through fork)."""

    ax: npt.NDArray[np.float64]
    ay: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float64]
    rcode: npt.NDArray[np.int64]
    ahash: npt.NDArray[np.uint64]
    target: npt.NDArray[np.float64]
    atom_side: npt.NDArray[np.int64]
    groups: list[npt.NDArray[np.int64]]
    barriers: Any
    regions: Any
    crs: pyproj.CRS
    region_polygons: dict[str, Any] | None
    config: TurfsConfig


def _region_groups(rcode: npt.NDArray[np.int64], n_regions: int, n_groups: int) -> list[npt.NDArray[np.int64]]:
    """Atom indices (ascending) of ``n_groups`` groups of whole regions with similar numbers of atoms."""
    if n_groups <= 1:
        return [np.arange(len(rcode), dtype=np.int64)]
    by_region = balanced_groups(np.bincount(rcode, minlength=n_regions), n_groups)
    out = []
    for regs in by_region:
        mask = np.zeros(n_regions, dtype=bool)
        mask[regs] = True
        out.append(np.flatnonzero(mask[rcode]).astype(np.int64))
    return out


def _cut_group(shared: _GroupInput, g: int) -> tuple[Adjacency, Cut, npt.NDArray[np.int64], Any, tuple[float, ...]]:
    """Adjacency, cut, route positions and turf polygons of one group of regions (atoms renumbered in order).

    A region's turfs depend on its own atoms only, in their order, so a group's result is the whole input's
    result restricted to its regions (with local atom and part numbers)."""
    cfg = shared.config
    idx = shared.groups[g]
    t0 = time.perf_counter()
    x, y, rcode = shared.ax[idx], shared.ay[idx], shared.rcode[idx]
    adj = door_adjacency(x, y, rcode, max_edge_m=cfg.max_edge_m, barriers=shared.barriers)
    t1 = time.perf_counter()
    cut = cut_atoms(x, y, shared.weight[idx], adj, shared.ahash[idx], shared.target[idx], tolerance=cfg.tolerance,
                    seed=cfg.seed)
    t2 = time.perf_counter()
    apos = route_orders(x, y, cut.part, shared.atom_side[idx], side_penalty_m=cfg.side_penalty_m)
    t3 = time.perf_counter()
    npart = int(cut.part.max()) + 1 if len(idx) else 0
    # polygons: union of the atoms' Voronoi cells clipped to the region
    polys = _turf_polygons(x, y, rcode, shared.regions, cut.part, npart, shared.crs, shared.region_polygons)
    t4 = time.perf_counter()
    return adj, cut, apos, polys, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)


def _merge_groups(
    groups: list[npt.NDArray[np.int64]],
    done: list[tuple[Adjacency, Cut, npt.NDArray[np.int64], Any, tuple[float, ...]]],
    na: int,
) -> tuple[Adjacency, Cut, npt.NDArray[np.int64], Any, npt.NDArray[np.float64]]:
    """The groups' results in the whole input's atom numbers (parts and components numbered group by group)."""
    if len(done) == 1:
        adj, cut, apos, polys, secs = done[0]
        return adj, cut, apos, polys, np.asarray([secs])
    part = np.zeros(na, dtype=np.int64)
    comp = np.zeros(na, dtype=np.int64)
    apos = np.zeros(na, dtype=np.int64)
    edges, lengths, polys, targets = [], [], [], []
    n_parts = n_comp = 0
    for idx, (g_adj, g_cut, g_apos, g_polys, _) in zip(groups, done, strict=True):
        part[idx] = g_cut.part + n_parts
        comp[idx] = g_adj.component + n_comp
        apos[idx] = g_apos
        edges.append(idx[g_adj.edges])
        lengths.append(g_adj.length)
        polys.append(np.asarray(g_polys, dtype=object))
        targets.append(g_cut.part_target)
        n_parts += len(g_cut.part_target)
        n_comp += int(g_adj.component.max()) + 1 if len(g_adj.component) else 0
    adj = Adjacency(edges=np.concatenate(edges).astype(np.int64), length=np.concatenate(lengths), component=comp,
                    barrier_edges_removed=sum(r[0].barrier_edges_removed for r in done),
                    long_edges_removed=sum(r[0].long_edges_removed for r in done))
    cut = Cut(part=part, part_target=np.concatenate(targets), n_components=sum(r[1].n_components for r in done),
              levels=max(r[1].levels for r in done), moves=sum(r[1].moves for r in done))
    return adj, cut, apos, np.concatenate(polys), np.asarray([r[4] for r in done])


def cut_turfs(
    doors: pd.DataFrame,
    *,
    config: TurfsConfig | None = None,
    region_polygons: dict[str, Any] | None = None,
    barriers: Any = None,
    previous: TurfCut | None = None,
    metric: pyproj.CRS | None = None,
) -> TurfCut:
    """Cut doors into balanced contiguous turfs, order each turf for walking and compute its statistics.

    Parameters
    ----------
    doors
        From :func:`geo_segment.turfs.build_doors` (``door_id``, ``building_id``, ``region``, ``households``,
        ``people``, ``street``, ``house_number``, ``unit``, ``lat``, ``lng``).
    config
        ``[turfs]`` settings (target, tolerance, seed, walking order, minutes per door, speed, drive gap).
    region_polygons
        Region id to (Multi)Polygon in EPSG:4326 (the precincts), used to clip the turf polygons; regions
        without one are clipped to their doors' hull buffered by 75 m.
    previous
        An earlier cut with the same configuration and barriers: regions whose doors are exactly the same keep
        their turfs, door order, routes and polygons as they were and only the changed regions are cut (the
        result equals a full cut, since a region's turfs depend on its doors only). ``metrics["regions_reused"]``
        counts them.
    metric
        The metric CRS to work in (default: the UTM zone of the doors).
    barriers
        Lines no turf may cross (GeoDataFrame / GeoSeries in any CRS, or shapely lines in EPSG:4326): the
        adjacency drops every edge meeting one.

    Returns
    -------
    TurfCut

    Examples
    --------
    >>> d = pd.DataFrame({"door_id": list("abcd"), "household_id": list("abcd"), "building_id": list("abcd"),
    ...     "region": ["P1"] * 4, "precinct_id": ["P1"] * 4, "households": [1] * 4, "people": [1, 2, 1, 1],
    ...     "street": ["MAIN ST"] * 4, "house_number": ["1", "3", "5", "7"], "unit": [""] * 4,
    ...     "lat": [41.8, 41.8, 41.8, 41.8], "lng": [-71.4000, -71.4002, -71.4004, -71.4006]})
    >>> cut = cut_turfs(d, config=TurfsConfig(target_doors=2))
    >>> cut.turfs["turf_id"].tolist(), cut.turfs["doors"].tolist()
    (['P1-01', 'P1-02'], [2, 2])
    """
    cfg = config or TurfsConfig()
    t0 = time.perf_counter()
    d = doors.reset_index(drop=True).copy()
    n = len(d)
    metrics: dict[str, Any] = {"doors": n}
    if n == 0:
        text = (S.TURF_ID, "region", S.PRECINCT_ID, "outside_reason")
        flags = ("within_tolerance", "drive_flag")
        floats = ("est_minutes", "route_m", "street_route_m", "optimized_route_m", "max_gap_m")
        empty = gpd.GeoDataFrame({c: pd.Series([], dtype="string" if c in text else bool if c in flags
                                               else float if c in floats else np.int64) for c in TURF_COLUMNS},
                                 geometry=[], crs=S.CRS_STORAGE)
        routes = gpd.GeoDataFrame({S.TURF_ID: pd.Series([], dtype="string")}, geometry=[], crs=S.CRS_STORAGE)
        for c in (S.TURF_ID, S.DOOR_ORDER, "street_rank", "atom"):
            d[c] = pd.Series([], dtype="string" if c == S.TURF_ID else "Int64" if c == S.DOOR_ORDER else np.int64)
        return TurfCut(d, empty, routes, np.empty((0, 2), dtype=np.int64), {**metrics, "turfs": 0})
    lat = d[S.LAT].to_numpy(dtype=float)
    lng = d[S.LNG].to_numpy(dtype=float)
    crs = metric or metric_crs(lat, lng)
    if previous is not None and len(previous.doors) and previous.metrics.get("metric_crs") == crs.to_string():
        return _recut(d, previous, cfg, region_polygons, barriers, crs, t0)
    x, y = to_metric(lat, lng, crs)
    atom = atoms_of(d, x, y)
    na = int(atom.max()) + 1
    d["atom"] = atom
    weight = np.bincount(atom, minlength=na).astype(float)
    ax = np.bincount(atom, weights=x, minlength=na) / weight
    ay = np.bincount(atom, weights=y, minlength=na) / weight
    region_of_atom = np.empty(na, dtype=object)
    region_of_atom[atom] = d["region"].astype(str).to_numpy(dtype=object)
    regions, rcode = np.unique(region_of_atom.astype(str), return_inverse=True)
    # stable per-atom hash: the smallest building id hash of the atom
    bh = stable_hash(d[S.BUILDING_ID].astype(str).to_numpy())
    ahash = np.full(na, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(ahash, atom, bh)
    bar = None
    if barriers is not None:
        if isinstance(barriers, gpd.GeoDataFrame):
            barriers = barriers.geometry
        if isinstance(barriers, gpd.GeoSeries):
            series = barriers if barriers.crs is not None else barriers.set_crs(S.CRS_STORAGE)
            bgeoms = np.asarray(series.to_crs(crs).values, dtype=object)
        else:
            bgeoms = _to_metric_geoms(np.asarray(list(barriers), dtype=object), crs)
        bar = bgeoms[~shapely.is_empty(bgeoms) & ~shapely.is_missing(bgeoms)]
    # rural regions (median gap to the nearest door above rural_gap_m) get the smaller target
    if na > 1:
        dist, _ = cKDTree(np.column_stack([ax, ay])).query(np.column_stack([ax, ay]), k=2)
        nn = dist[:, 1]
    else:
        nn = np.zeros(na)
    med = pd.Series(nn).groupby(rcode).median().reindex(range(len(regions))).to_numpy()
    rural_region = med > cfg.rural_gap_m
    target = np.where(rural_region[rcode], cfg.rural_target_doors, cfg.target_doors).astype(float)
    # walking order: the street side of each door; an atom's side is that of its last door
    hn = pd.to_numeric(d[S.HOUSE_NUMBER].astype(str).str.extract(r"^\s*(\d+)", expand=False), errors="coerce")
    odd = np.where(hn.fillna(0).to_numpy() % 2 == 1, "|o", "|e")
    side_key = np.char.add(d[S.STREET].astype(str).fillna("").to_numpy(dtype=str), odd)
    _, side_code = np.unique(side_key, return_inverse=True)
    atom_side = np.zeros(na, dtype=np.int64)
    atom_side[atom] = side_code
    # adjacency, cutting, the route through each turf's buildings and the turf polygons: region by region
    # (nothing crosses a region), in worker processes for big inputs
    workers = resolve_workers(cfg.workers, n)
    groups = _region_groups(rcode, len(regions), 1 if workers == 1 else 2 * workers)
    shared = _GroupInput(ax=ax, ay=ay, weight=weight, rcode=rcode.astype(np.int64), ahash=ahash, target=target,
                         atom_side=atom_side, groups=groups, barriers=bar, regions=regions, crs=crs,
                         region_polygons=region_polygons, config=cfg)
    done = run_tasks(_cut_group, shared, len(groups), workers=workers, what="turf cut")
    adj, cut, apos, polys, group_seconds = _merge_groups(groups, done, na)
    part = cut.part
    npart = int(part.max()) + 1
    t_cut = time.perf_counter() - t0
    # readable, stable ids: per region, turfs numbered north to south in 250 m bands, west to east
    pw = np.bincount(part, weights=weight, minlength=npart)
    pcx = np.bincount(part, weights=weight * ax, minlength=npart) / pw
    pcy = np.bincount(part, weights=weight * ay, minlength=npart) / pw
    preg = np.zeros(npart, dtype=np.int64)
    preg[part] = rcode
    order = np.lexsort((pcx, -np.floor(pcy / 250.0), preg))
    rank = np.zeros(npart, dtype=np.int64)
    seq = np.arange(npart)
    starts = np.r_[0, np.flatnonzero(np.diff(preg[order])) + 1]
    first_of = np.repeat(starts, np.diff(np.r_[starts, npart]))
    rank[order] = seq - first_of + 1
    width = max(2, len(str(int(rank.max()))))
    turf_ids = np.array([f"{regions[preg[p]]}-{rank[p]:0{width}d}" for p in range(npart)], dtype=object)
    d[S.TURF_ID] = pd.Series(turf_ids[part[atom]], dtype="string")
    # walking order
    door_order = np.zeros(n, dtype=np.int64)
    street_rank = np.zeros(n, dtype=np.int64)
    stats = np.zeros((npart, 4))  # street length, optimized length, used length, max gap
    route_geoms = np.empty(npart, dtype=object)
    dpart = part[atom]
    global_street = street_order(d, both_sides=cfg.both_sides, group=dpart)
    grank = np.empty(n, dtype=np.int64)
    grank[global_street] = np.arange(n)
    # street-sorted order: doors are grouped by turf in global_street already
    t_first = np.searchsorted(dpart[global_street], np.arange(npart + 1))
    street_rank[global_street] = np.arange(n) - t_first[dpart[global_street]] + 1
    s_len = _run_lengths(x[global_street], y[global_street], t_first)
    # route order: the turf's buildings in route order, the doors of a building in street order
    a_seq = np.lexsort((apos, part))
    r_len = _run_lengths(ax[a_seq], ay[a_seq], np.searchsorted(part[a_seq], np.arange(npart + 1)))
    if cfg.walk_order == "route":
        use_seq = np.lexsort((grank, apos[atom], dpart))
        stats[:, 2] = r_len
    else:
        use_seq = global_street
        stats[:, 2] = s_len
    stats[:, 0], stats[:, 1] = s_len, r_len
    door_order[use_seq] = np.arange(n) - t_first[dpart[use_seq]] + 1
    gaps = np.hypot(np.diff(x[use_seq]), np.diff(y[use_seq]))
    inner = dpart[use_seq][1:] == dpart[use_seq][:-1]  # steps between two doors of one turf
    has_gap = np.bincount(dpart[use_seq][1:][inner], minlength=npart) > 0
    max_gap = np.zeros(npart)
    np.maximum.at(max_gap, dpart[use_seq][1:][inner], gaps[inner])
    stats[:, 3] = np.where(has_gap, max_gap, 0.0)
    # routes: the doors in walking order, one LineString per turf (a single door is drawn twice)
    by_walk = np.lexsort((door_order, dpart))
    tp = dpart[by_walk]
    single = np.bincount(dpart, minlength=npart) == 1
    take = np.concatenate([by_walk, by_walk[single[tp]]])
    line_of = np.concatenate([tp, tp[single[tp]]])
    sort_lines = np.argsort(line_of, kind="stable")
    route_geoms[:] = shapely.linestrings(np.column_stack([lng[take], lat[take]])[sort_lines],
                                         indices=line_of[sort_lines])
    d[S.DOOR_ORDER] = pd.Series(door_order, dtype="Int64")
    d["street_rank"] = street_rank
    t_walk = time.perf_counter() - t0 - t_cut
    # statistics
    doors_per = np.bincount(part, weights=weight, minlength=npart).astype(np.int64)
    hh = np.bincount(dpart, weights=d["households"].to_numpy(dtype=float), minlength=npart).astype(np.int64)
    people = np.bincount(dpart, weights=d["people"].to_numpy(dtype=float), minlength=npart).astype(np.int64)
    bld = d.groupby(dpart)[S.BUILDING_ID].nunique().reindex(range(npart)).to_numpy(dtype=np.int64)
    tgt = np.zeros(npart)
    tgt[part] = target
    comp_w = np.bincount(adj.component, weights=weight)
    cdoors = np.zeros(npart)
    cdoors[part] = comp_w[adj.component]
    within = np.abs(doors_per - tgt) <= cfg.tolerance * tgt + 1e-9
    est = doors_per * cfg.minutes_per_door + stats[:, 2] / cfg.walking_speed_m_per_min
    pre = d.groupby(dpart)[S.PRECINCT_ID].first().reindex(range(npart))
    list_order = np.argsort(turf_ids, kind="stable")
    list_number = np.empty(npart, dtype=np.int64)
    list_number[list_order] = np.arange(1, npart + 1)
    turfs = gpd.GeoDataFrame({
        S.TURF_ID: pd.Series(turf_ids, dtype="string"),
        "region": pd.Series(regions[preg], dtype="string"),
        S.PRECINCT_ID: pd.Series(pre.to_numpy(), dtype="string"),
        "list_number": list_number,
        "doors": doors_per,
        "households": hh,
        "people": people,
        "buildings": bld,
        "target_doors": tgt.astype(np.int64),
        "within_tolerance": within,
        "est_minutes": np.round(est, 1),
        "route_m": np.round(stats[:, 2], 1),
        "street_route_m": np.round(stats[:, 0], 1),
        "optimized_route_m": np.round(stats[:, 1], 1),
        "max_gap_m": np.round(stats[:, 3], 1),
        "drive_flag": stats[:, 3] > cfg.drive_gap_m,
        "component_doors": cdoors.astype(np.int64),
    }, geometry=_to_4326(polys, crs), crs=S.CRS_STORAGE)
    turfs = turfs.iloc[list_order].reset_index(drop=True)
    routes = gpd.GeoDataFrame({S.TURF_ID: pd.Series(turf_ids, dtype="string")}, geometry=list(route_geoms),
                              crs=S.CRS_STORAGE).iloc[list_order].reset_index(drop=True)
    # sorted by turf id, then door number: list numbers follow the turf ids (distinct, in sorted order)
    d = d.take(np.lexsort((door_order, list_number[dpart]))).reset_index(drop=True)
    # why turfs fall outside the tolerance
    lo, hi = (1 - cfg.tolerance) * tgt, (1 + cfg.tolerance) * tgt
    small_region = (~within) & (cdoors < lo)
    big_atom = np.zeros(npart, dtype=bool)
    big_atom[part[weight > hi[part]]] = True
    # a component of W doors can hold turfs within tolerance only if some k puts W / k inside it
    comp_t = np.zeros(len(comp_w))
    comp_t[adj.component] = target
    k_c = np.maximum(1, np.round(comp_w / comp_t))
    feasible_c = np.abs(comp_w / k_c - comp_t) <= cfg.tolerance * comp_t + 1e-9
    feasible = np.zeros(npart, dtype=bool)
    feasible[part] = feasible_c[adj.component]
    indivisible = ~within & ~small_region & ~big_atom & ~feasible
    reason = np.where(within, "", np.where(small_region, "small_area", np.where(
        big_atom, "big_building", np.where(indivisible, "indivisible", "other"))))
    turfs.insert(turfs.columns.get_loc("within_tolerance") + 1, "outside_reason",
                 pd.Series(reason[list_order], dtype="string"))
    metrics.update({
        "atoms": na, "regions": len(regions), "components": cut.n_components, "turfs": npart,
        "refine_moves": cut.moves,
        "rural_regions": int(rural_region.sum()),
        "within_tolerance": int(within.sum()), "share_within_tolerance": round(float(within.mean()), 4),
        "outside_small_component": int(small_region.sum()),
        "outside_big_building": int((~within & big_atom).sum()),
        "outside_indivisible": int(indivisible.sum()),
        "outside_other": int((~within & ~small_region & ~big_atom & ~indivisible).sum()),
        "drive_flag": int((stats[:, 3] > cfg.drive_gap_m).sum()),
        "adjacency_edges": len(adj.edges), "barrier_edges_removed": adj.barrier_edges_removed,
        "long_edges_removed": adj.long_edges_removed, "multipart_polygons": int(
            (shapely.get_num_geometries(np.asarray(turfs.geometry.values)) > 1).sum()),
        "route_m_total": round(float(stats[:, 2].sum()), 1),
        "street_route_m_total": round(float(stats[:, 0].sum()), 1),
        "optimized_route_m_total": round(float(stats[:, 1].sum()), 1),
        "seconds_cut": round(t_cut, 3), "seconds_walk": round(t_walk, 3),
        "seconds_total": round(time.perf_counter() - t0, 3), "metric_crs": crs.to_string(),
        "workers": workers, "region_groups": len(groups),
        # summed over the groups of regions (worker seconds, not wall time, when workers > 1)
        **{f"seconds_{k}": round(float(v), 3) for k, v in zip(("adjacency", "cutting", "routes", "polygons"),
                                                               group_seconds.sum(axis=0), strict=True)},
    })
    return TurfCut(doors=d, turfs=turfs, routes=routes, edges=adj.edges, metrics=metrics)


#: what identifies a region's doors for reuse (the columns ``doors.parquet`` keeps, no addresses)
_SIGNATURE = ("door_id", S.HOUSEHOLD_ID, S.BUILDING_ID, "households", "people", S.LAT, S.LNG)


def _region_signatures(doors: pd.DataFrame) -> pd.Series:
    """An order-independent hash of each region's doors (ids, buildings, counts, address parts, coordinates)."""
    cols = [c for c in _SIGNATURE if c in doors.columns]
    h = pd.util.hash_pandas_object(doors[cols].astype(str), index=False).to_numpy(dtype=np.uint64)
    frame = pd.DataFrame({"region": doors["region"].astype(str).to_numpy(), "h": h})
    frame = frame.sort_values("region", kind="stable")
    regions, starts = np.unique(frame["region"].to_numpy(), return_index=True)
    xor = np.bitwise_xor.reduceat(frame["h"].to_numpy(dtype=np.uint64), starts)
    counts = np.diff(np.r_[starts, len(frame)])
    return pd.Series([f"{int(a)}:{int(b)}" for a, b in zip(xor, counts, strict=True)], index=regions)


def _recut(d: pd.DataFrame, previous: TurfCut, cfg: TurfsConfig, region_polygons: dict[str, Any] | None,
           barriers: Any, crs: pyproj.CRS, t0: float) -> TurfCut:
    new_sig = _region_signatures(d)
    old_sig = _region_signatures(previous.doors)
    common = new_sig.index.intersection(old_sig.index)
    same = set(common[(new_sig[common] == old_sig[common]).to_numpy()])
    changed = d.loc[~d["region"].astype(str).isin(same)]
    sub = cut_turfs(changed.drop(columns=[c for c in (S.TURF_ID, S.DOOR_ORDER, "street_rank", "atom")
                                          if c in changed.columns]),
                    config=cfg, region_polygons=region_polygons, barriers=barriers, metric=crs)
    keep = previous.doors["region"].astype(str).isin(same).to_numpy()
    old_doors = previous.doors.loc[keep]
    old_atoms = np.unique(old_doors["atom"].to_numpy())
    remap = np.full(int(previous.doors["atom"].max()) + 1, -1, dtype=np.int64)
    remap[old_atoms] = np.arange(len(old_atoms))
    old_doors = old_doors.assign(atom=remap[old_doors["atom"].to_numpy()])
    e = previous.edges
    e_keep = e[(remap[e[:, 0]] >= 0) & (remap[e[:, 1]] >= 0)] if len(e) else e
    edges = np.concatenate([remap[e_keep], sub.edges + len(old_atoms)]) if len(e_keep) else sub.edges + len(
        old_atoms)
    new_doors = sub.doors.assign(atom=sub.doors["atom"].to_numpy() + len(old_atoms)) if len(sub.doors) else \
        sub.doors
    doors = pd.concat([old_doors, new_doors], ignore_index=True)
    doors = doors.sort_values([S.TURF_ID, S.DOOR_ORDER], kind="stable").reset_index(drop=True)
    t_old = previous.turfs.loc[previous.turfs["region"].astype(str).isin(same)]
    turfs = pd.concat([t_old, sub.turfs], ignore_index=True) if len(sub.turfs) else t_old.copy()
    turfs = turfs.sort_values(S.TURF_ID, kind="stable").reset_index(drop=True)
    turfs["list_number"] = np.arange(1, len(turfs) + 1)
    r_old = previous.routes.loc[previous.routes[S.TURF_ID].isin(t_old[S.TURF_ID])]
    routes = pd.concat([r_old, sub.routes], ignore_index=True) if len(sub.routes) else r_old.copy()
    routes = routes.sort_values(S.TURF_ID, kind="stable").reset_index(drop=True)
    turfs = gpd.GeoDataFrame(turfs, geometry="geometry", crs=S.CRS_STORAGE)
    routes = gpd.GeoDataFrame(routes, geometry="geometry", crs=S.CRS_STORAGE)
    within = turfs["within_tolerance"].to_numpy(dtype=bool)
    reason = turfs["outside_reason"].astype(str)
    metrics: dict[str, Any] = {
        "doors": len(doors), "turfs": len(turfs), "regions": int(doors["region"].nunique()),
        "regions_reused": len(same), "regions_recut": int(sub.metrics.get("regions", 0)),
        "within_tolerance": int(within.sum()),
        "share_within_tolerance": round(float(within.mean()), 4) if len(turfs) else 0.0,
        "outside_small_component": int((reason == "small_area").sum()),
        "outside_big_building": int((reason == "big_building").sum()),
        "outside_indivisible": int((reason == "indivisible").sum()),
        "outside_other": int((reason == "other").sum()),
        "drive_flag": int(turfs["drive_flag"].sum()),
        "multipart_polygons": int((shapely.get_num_geometries(np.asarray(turfs.geometry.values)) > 1).sum()),
        "route_m_total": round(float(turfs["route_m"].sum()), 1),
        "street_route_m_total": round(float(turfs["street_route_m"].sum()), 1),
        "optimized_route_m_total": round(float(turfs["optimized_route_m"].sum()), 1),
        "seconds_cut": sub.metrics.get("seconds_cut", 0.0), "seconds_walk": sub.metrics.get("seconds_walk", 0.0),
        "seconds_total": round(time.perf_counter() - t0, 3), "metric_crs": crs.to_string(),
    }
    return TurfCut(doors=doors, turfs=turfs, routes=routes, edges=edges.astype(np.int64), metrics=metrics)


def _turf_polygons(
    ax: npt.NDArray[np.float64], ay: npt.NDArray[np.float64], rcode: npt.NDArray[np.int64], regions: Any,
    part: npt.NDArray[np.int64], npart: int, crs: pyproj.CRS, region_polygons: dict[str, Any] | None,
) -> npt.NDArray[np.object_]:
    cells = np.empty(len(ax), dtype=object)
    _, groups = _group_slices(rcode.astype(np.int64))
    for idx in groups:
        name = str(regions[rcode[idx[0]]])
        pts = shapely.points(ax[idx], ay[idx])
        hull = shapely.buffer(shapely.convex_hull(shapely.multipoints(pts)), 75.0)
        clip = hull
        if region_polygons is not None and region_polygons.get(name) is not None:
            clip = _to_metric_geoms(region_polygons[name], crs)
            outside = ~shapely.contains_xy(clip, ax[idx], ay[idx])
            if outside.any():
                clip = shapely.union(clip, shapely.union_all(shapely.buffer(pts[outside], 25.0)))
            clip = shapely.make_valid(clip)
        if len(idx) == 1:
            cells[idx] = clip
            continue
        vor = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=clip, ordered=True)
        parts_ = shapely.get_parts(vor)
        shapely.prepare(clip)
        inside = shapely.contains(clip, parts_)  # most cells: no clipping needed
        clipped = parts_.copy()
        clipped[~inside] = shapely.intersection(parts_[~inside], clip)
        cells[idx] = clipped
    out = np.empty(npart, dtype=object)
    _, pgroups = _group_slices(part)
    for idx in pgroups:
        p = int(part[idx[0]])
        g = shapely.coverage_union_all(cells[idx])
        if not shapely.is_valid(g):  # pragma: no cover - floating-point slivers between clipped cells
            g = shapely.make_valid(shapely.union_all(cells[idx], grid_size=0.01))
        out[p] = g
    return out
