"""Balanced, contiguous, compact turfs: recursive spanning-tree bipartition of a door adjacency graph.

Adjacency (stated, and checked by the tests)
-------------------------------------------
Atoms are buildings (doors at the same building, or at the same point, always stay together). Inside each region
(precinct, micro-geography, user polygon) atoms are joined by the edges of their Delaunay triangulation in the
data's UTM zone; edges crossing a barrier line (major road, river, rail) are removed; then edges longer than
``max_edge_m`` are removed unless they belong to the minimum spanning tree of what is left, so long edges never
disconnect a neighbourhood. The connected components of this graph are cut independently: a turf never crosses a
barrier and never leaves its region.

Cutting
-------
Each component of ``W`` doors gets ``k`` turfs, the ``k`` whose mean ``W / k`` is closest to the target (the
rural target where doors are far apart). Like GerryChain's ``recursive_tree_part``, every part with ``k > 1`` is
split in two along an edge of a random spanning tree so that each side holds a whole number of turfs' worth of
doors; unlike it, every tree edge is scored at once with subtree sums (numpy), the balanced cut with the smallest
within-part sum of squared distances (compactness) is kept among several trees, and every part of every region is
split in the same vectorized pass. Edge randomness is a hash of the two buildings' ids, the seed, the tree and the
level, so a change in one precinct leaves the other precincts' turfs exactly as they were. Finally boundary
buildings move to a neighbouring turf while that makes both more compact (k-means-like, exact sum of squared
distances), within the tolerance and without breaking contiguity (:func:`refine_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import Delaunay, QhullError

__all__ = ["Adjacency", "Cut", "atoms_of", "cut_atoms", "door_adjacency", "metric_crs", "min_spanning_forest",
           "refine_parts", "stable_hash", "to_metric"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_G = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finalizer, elementwise (wrapping uint64 arithmetic)."""
    z = z.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
    return z


def stable_hash(values: Any) -> npt.NDArray[np.uint64]:
    """A hash of strings that is the same on every machine and run (``pandas.util.hash_array``)."""
    return pd.util.hash_array(np.asarray(values, dtype=object).astype(str).astype(object))


def metric_crs(lat: FloatArray, lng: FloatArray) -> pyproj.CRS:
    """The UTM zone of the points (as :func:`geo_segment.join.assign_areas` picks it)."""
    import geopandas as gpd

    box = shapely.box(float(np.nanmin(lng)), float(np.nanmin(lat)), float(np.nanmax(lng)), float(np.nanmax(lat)))
    crs = gpd.GeoSeries([box], crs="EPSG:4326").estimate_utm_crs()
    assert crs is not None
    return crs


def to_metric(lat: FloatArray, lng: FloatArray, crs: pyproj.CRS) -> tuple[FloatArray, FloatArray]:
    """Project lat/lng (EPSG:4326) to ``crs`` (metres)."""
    tr = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(np.asarray(lng, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


@dataclass(frozen=True)
class Adjacency:
    """The graph turfs are contiguous on: ``edges`` (E x 2 atom indices, i < j), their ``length`` in metres and
    the ``component`` of every atom (components never span regions or barriers)."""

    edges: IntArray
    length: FloatArray
    component: IntArray
    barrier_edges_removed: int
    long_edges_removed: int


def _region_edges(px: FloatArray, py: FloatArray) -> IntArray:
    n = len(px)
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    if n == 2:
        return np.array([[0, 1]], dtype=np.int64)
    pts = np.column_stack([px, py])
    try:
        tri = Delaunay(pts - pts.mean(axis=0), qhull_options="QJ")
        s = tri.simplices
        e = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
    except (QhullError, ValueError):  # pragma: no cover - QJ joggles degenerate input
        o = np.lexsort((py, px))
        e = np.column_stack([o[:-1], o[1:]])
    e = np.sort(e, axis=1).astype(np.int64)
    # unique pairs in (i, j) order: as np.unique(e, axis=0), on one integer key per pair
    key = np.unique(e[:, 0] * n + e[:, 1])
    return np.column_stack([key // n, key % n])


def door_adjacency(
    x: FloatArray,
    y: FloatArray,
    region: IntArray,
    *,
    max_edge_m: float = 250.0,
    barriers: Any = None,
) -> Adjacency:
    """Build the stated adjacency of atoms (see the module docstring).

    Parameters
    ----------
    x, y
        Atom coordinates in metres (distinct points within a region).
    region
        Integer region code per atom; edges never join two regions.
    max_edge_m
        Edges longer than this are dropped unless they are needed to keep a component connected.
    barriers
        Array of shapely lines in the same metric CRS, or ``None``. Edges intersecting one are dropped.
    """
    n = len(x)
    order = np.argsort(region, kind="stable")
    bounds = np.flatnonzero(np.diff(region[order])) + 1
    chunks = []
    for idx in np.split(order, bounds):
        if len(idx) > 1:
            chunks.append(idx[_region_edges(x[idx], y[idx])])
    edges = np.sort(np.concatenate(chunks), axis=1) if chunks else np.empty((0, 2), dtype=np.int64)
    length = np.hypot(x[edges[:, 0]] - x[edges[:, 1]], y[edges[:, 0]] - y[edges[:, 1]])
    n_barrier = 0
    if barriers is not None and len(barriers) and len(edges):
        lines = shapely.linestrings(np.stack([np.column_stack([x[edges[:, 0]], y[edges[:, 0]]]),
                                              np.column_stack([x[edges[:, 1]], y[edges[:, 1]]])], axis=1))
        tree = shapely.STRtree(np.asarray(barriers))
        hit = np.unique(tree.query(lines, predicate="intersects")[0])
        keep = np.ones(len(edges), dtype=bool)
        keep[hit] = False
        n_barrier = int((~keep).sum())
        edges, length = edges[keep], length[keep]
    # the minimum spanning forest keeps every component connected when long edges go
    in_mst = np.zeros(len(edges), dtype=bool)
    in_mst[min_spanning_forest(n, edges[:, 0], edges[:, 1], length + 1e-6)] = True
    keep = (length <= max_edge_m) | in_mst
    n_long = int((~keep).sum())
    edges, length = edges[keep], length[keep]
    g = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    return Adjacency(edges=edges, length=length, component=comp.astype(np.int64),
                     barrier_edges_removed=n_barrier, long_edges_removed=n_long)


def atoms_of(doors: pd.DataFrame, x: FloatArray, y: FloatArray) -> IntArray:
    """Atom index of each door: doors of one building, or at one point of one region, share an atom."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from geo_segment._vector import arrow_str

    region = arrow_str(doors["region"].astype(str))
    # buildings numbered in the order of "<region>\x1f<building_id>" (code points), as np.unique numbers them
    bkey = pc.binary_join_element_wise(region, arrow_str(doors["building_id"].astype(str)),
                                       pa.scalar("\x1f", type=pa.large_string()))
    b_code = pc.subtract(pc.rank(bkey, sort_keys="ascending", tiebreaker="dense"), 1).to_numpy().astype(np.int64)
    # buildings at the very same point of a region are one atom too (Delaunay needs distinct points); how the
    # points are numbered does not matter: every atom's lowest node is a building
    # (distinct (region, x, y) triples, the coordinates to the centimetre, by hashing: pairs of codes, twice)
    r_code = pc.rank(region, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
    p_code = r_code - 1
    for coord in (np.round(x, 2) + 0.0, np.round(y, 2) + 0.0):
        c_code, c_uniq = pd.factorize(coord, use_na_sentinel=False)
        p_code = pd.factorize(p_code * len(c_uniq) + c_code)[0].astype(np.int64)
    # union of the two groupings: connected components of the door-building-point bipartite graph
    nb, npnt = int(b_code.max()) + 1, int(p_code.max()) + 1
    g = coo_matrix((np.ones(len(doors)), (b_code, nb + p_code)), shape=(nb + npnt, nb + npnt))
    _, lab = connected_components(g, directed=False)
    _, atom = np.unique(lab[b_code], return_inverse=True)
    return atom.astype(np.int64)


@dataclass
class Cut:
    """Result of :func:`cut_atoms`: ``part`` per atom (consecutive ints), the target per part and counts."""

    part: IntArray
    part_target: FloatArray
    n_components: int
    levels: int
    moves: int = 0


def min_spanning_forest(n: int, ei: IntArray, ej: IntArray, w: FloatArray) -> IntArray:
    """Positions of the edges of the minimum spanning forest of an undirected graph (Borůvka, vectorized).

    Edges are ordered by weight, then by ``(ei, ej)``: the forest is the one ``scipy.sparse.csgraph.
    minimum_spanning_tree`` returns for the CSR matrix of these edges (Kruskal on a stable sort of the weights,
    whose ties fall in row, column order), found without sorting the edges: every round, each component takes its
    lightest edge to another component, and components joined by chosen edges merge (pointer jumping), until no
    edge joins two components (a few rounds; each round at least halves the components).

    Parameters
    ----------
    n
        Number of nodes.
    ei, ej
        The two ends of every edge (no self loops, no repeated pair).
    w
        Edge weights (finite).

    Returns
    -------
    ndarray
        Positions of the forest's edges in ``ei`` (in no particular order).

    Examples
    --------
    >>> sorted(min_spanning_forest(3, np.array([0, 0, 1]), np.array([1, 2, 2]), np.array([1.0, 3.0, 2.0])).tolist())
    [0, 2]
    """
    ei = np.asarray(ei, dtype=np.int64)
    ej = np.asarray(ej, dtype=np.int64)
    pos = np.arange(len(ei), dtype=np.int64)
    lu, lv, wa = ei, ej, np.asarray(w, dtype=float)  # per edge still in play: the components of its ends (their
    chosen: list[IntArray] = []                       # root node) and its weight
    nodes = np.arange(n, dtype=np.int64)
    while len(pos):
        best = np.full(n, np.inf)
        np.minimum.at(best, lu, wa)
        np.minimum.at(best, lv, wa)
        hu = wa == best[lu]  # the edge is the lightest of the component at its first end
        hv = wa == best[lv]
        if np.count_nonzero(hu) + np.count_nonzero(hv) != np.count_nonzero(best < np.inf):
            # equal weights: the lowest (ei, ej) among the component's lightest edges
            key = ei[pos] * n + ej[pos]
            low = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(low, lu[hu], key[hu])
            np.minimum.at(low, lv[hv], key[hv])
            hu &= key == low[lu]
            hv &= key == low[lv]
        chosen.append(pos[hu | hv])
        # every component points to the other end of its lightest edge; the two ends of an edge chosen by both
        # point at each other: the lower one becomes the root; then pointer jumping to the roots
        parent = nodes.copy()
        parent[lu[hu]] = lv[hu]
        parent[lv[hv]] = lu[hv]
        mutual = (parent[parent] == nodes) & (nodes < parent)
        parent[mutual] = nodes[mutual]
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
        lu, lv = parent[lu], parent[lv]
        keep = lu != lv
        pos, lu, lv, wa = pos[keep], lu[keep], lv[keep], wa[keep]
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def _viol(avg: FloatArray, j: IntArray, tgt: FloatArray, center: FloatArray, eps: float) -> FloatArray:
    m = eps * tgt
    feasible = (center >= tgt - m) & (center <= tgt + m)
    lo1 = np.where(feasible, tgt - m, center - m)
    hi1 = np.where(feasible, tgt + m, center + m)
    lo = np.where(j == 1, lo1, center - m / 2)
    hi = np.where(j == 1, hi1, center + m / 2)
    return np.maximum(0.0, np.maximum(lo - avg, avg - hi)) / tgt


def _best_per_group(group: IntArray, v: FloatArray, cost: FloatArray, n_groups: int) -> IntArray:
    """Position of the best row of each group: lowest ``v``, then lowest ``cost``, then first.

    The same rows as the first of each group in ``np.lexsort((cost, v, group))``, found with three ``fmin.at``
    passes instead of a sort (the sort is used when a value is NaN, which sorts last).
    """
    if np.isnan(v).any() or np.isnan(cost).any():
        o = np.lexsort((cost, v, group))
        return o[np.r_[True, group[o][1:] != group[o][:-1]]]
    vmin = np.full(n_groups, np.inf)
    np.fmin.at(vmin, group, v)
    at_v = np.flatnonzero(v == vmin[group])
    cmin = np.full(n_groups, np.inf)
    np.fmin.at(cmin, group[at_v], cost[at_v])
    at_c = at_v[cost[at_v] == cmin[group[at_v]]]
    first = np.full(n_groups, len(group), dtype=np.int64)
    np.minimum.at(first, group[at_c], at_c)
    return first[first < len(group)]


def _choose_k(weight: FloatArray, target: FloatArray) -> IntArray:
    lo = np.maximum(1, np.floor(weight / target)).astype(np.int64)
    hi = lo + 1
    dlo = np.abs(weight / lo - target)
    dhi = np.abs(weight / hi - target)
    return np.where(dhi < dlo, hi, lo)


def cut_atoms(
    x: FloatArray,
    y: FloatArray,
    weight: FloatArray,
    adjacency: Adjacency,
    atom_hash: npt.NDArray[np.uint64],
    target: FloatArray,
    *,
    tolerance: float = 0.10,
    seed: int = 0,
    n_trees: int = 6,
    jitter: float = 1.0,
    gap_weight: float = 5.0,
    refine: bool = False,
) -> Cut:
    """Partition atoms into balanced contiguous parts (see the module docstring).

    Parameters
    ----------
    x, y, weight
        Atom coordinates (metres) and door counts.
    adjacency
        From :func:`door_adjacency`.
    atom_hash
        A stable hash per atom (of its building id) that drives the edge randomness.
    target
        Target doors per turf, per atom (constant within a component).
    tolerance
        Allowed relative deviation from the target (0.10 = ±10 %).
    seed
        Same seed, same turfs.
    n_trees
        Random spanning trees tried per split; the best balanced, most compact cut among them is kept.
    jitter
        Relative randomness of the tree edge weights: an edge of length ``l`` weighs ``l * (1 + jitter * (u -
        0.5))``, ``u`` uniform in [0, 1). Near 0 the trees follow the Euclidean minimum spanning tree (streets) and
        walk short but balance less often; larger values give more balanced cuts to choose from.
    gap_weight
        Among balanced cuts the cost is the mean squared distance to the parts' centroids minus ``gap_weight``
        times the length of the cut edge (metres), so turfs end where the doors have a gap.
    refine
        Then move boundary buildings between neighbouring turfs while it makes them more compact
        (:func:`refine_parts`), never leaving the tolerance or breaking contiguity. Off by default: in the
        benchmark it shortens distances to the centroid but lengthens the walk.
    """
    n = len(x)
    w = np.asarray(weight, dtype=float)
    comp = adjacency.component
    n_comp = int(comp.max()) + 1 if n else 0
    comp_w = np.bincount(comp, weights=w, minlength=n_comp)
    comp_t = np.zeros(n_comp)
    comp_t[comp] = target
    k_comp = _choose_k(comp_w.astype(float), comp_t)
    center_comp = comp_w / k_comp
    part = comp.copy()
    part_k = k_comp.copy()
    part_t = comp_t.copy()
    part_c = center_comp.copy()
    e = adjacency.edges
    if n == 0:
        return Cut(part=part, part_target=part_t, n_components=0, levels=0)
    ha, hb = atom_hash[e[:, 0]], atom_hash[e[:, 1]]
    ehash = _mix(np.minimum(ha, hb) ^ _mix(np.maximum(ha, hb) ^ _mix(np.array([seed], dtype=np.uint64))))
    vals = np.column_stack([w, w * x, w * y, w * (x * x + y * y)])
    level = 0
    while (part_k > 1).any():
        level += 1
        n_parts = len(part_k)
        active_part = part_k > 1
        same = (part[e[:, 0]] == part[e[:, 1]]) & active_part[part[e[:, 0]]]
        ea = e[same]
        eh = ehash[same]
        elen = adjacency.length[same]
        tot = np.zeros((n_parts, 4))
        np.add.at(tot, part, vals)
        best_v = np.full(n_parts, np.inf)
        best_c = np.full(n_parts, np.inf)
        best_t = np.full(n_parts, -1, dtype=np.int64)
        best_node = np.full(n_parts, -1, dtype=np.int64)
        best_j = np.zeros(n_parts, dtype=np.int64)
        trees: list[tuple[IntArray, IntArray, list[IntArray]]] = []
        active_atoms = np.flatnonzero(active_part[part])
        # one root per active part: its lowest atom index
        first = np.full(n_parts, n, dtype=np.int64)
        np.minimum.at(first, part[active_atoms], active_atoms)
        roots = first[active_part]
        sup = n
        for t in range(n_trees):
            salt = _mix(np.array([(level << 8) + t + 1], dtype=np.uint64))
            u = (_mix(eh ^ salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
            wt = elen * (1.0 + jitter * (u - 0.5)) + 1e-3
            in_tree = min_spanning_forest(n, ea[:, 0], ea[:, 1], wt)
            rows = np.concatenate([ea[in_tree, 0], np.full(len(roots), sup)])
            cols = np.concatenate([ea[in_tree, 1], roots])
            tg = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
            order, pred = breadth_first_order(tg, sup, directed=False, return_predecessors=True)
            pred = pred.astype(np.int64)
            pred[sup] = sup
            reached = np.zeros(n + 1, dtype=bool)
            reached[order] = True
            pred[~reached] = sup
            # depth by pointer jumping
            anc = pred.copy()
            dist = (np.arange(n + 1) != sup).astype(np.int64)
            dist[~reached] = 0
            while (anc != sup).any():
                dist = dist + np.where(anc != sup, dist[anc], 0)
                anc = anc[anc]
            nodes = np.flatnonzero(reached[:n])
            d = dist[nodes]
            # nodes by depth (stable); depths fit 16 bits in practice, where numpy sorts by radix (same order)
            by_depth = np.argsort(d.astype(np.uint16) if len(d) and d.max() < 65536 else d, kind="stable")
            o = nodes[by_depth]
            ds = d[by_depth]
            cuts = np.flatnonzero(np.diff(ds)) + 1
            levels = np.split(o, cuts)
            # subtree sums, one contiguous row per quantity (1-D ufunc.at is several times faster; the additions
            # happen in the same order, so the sums are the same to the last bit)
            sub = np.zeros((4, n + 1))
            sub[:, :n] = vals.T
            for lv in levels[:0:-1]:  # deepest first; roots (depth 1) never add into the super node
                plv = pred[lv]
                for row in sub:
                    np.add.at(row, plv, row[lv])
            trees.append((pred, nodes, levels))
            cand = nodes[pred[nodes] != sup]
            if len(cand) == 0:  # every active part is a single building
                continue
            p = part[cand]
            k = part_k[p]
            sw = sub[0, cand]
            tw = tot[p, 0]
            ssd_s = sub[3, cand] - (sub[1, cand] ** 2 + sub[2, cand] ** 2) / np.maximum(sw, 1e-9)
            rest = tot[p] - sub[:, cand].T
            ssd_r = rest[:, 3] - (rest[:, 1] ** 2 + rest[:, 2] ** 2) / np.maximum(rest[:, 0], 1e-9)
            cost = ssd_s + ssd_r
            if gap_weight:
                gap = np.hypot(x[cand] - x[pred[cand]], y[cand] - y[pred[cand]])
                cost = cost / np.maximum(tot[p, 0], 1.0) - gap_weight * gap
            ctr, tg_ = part_c[p], part_t[p]
            best_here_v = np.full(len(cand), np.inf)
            best_here_j = np.zeros(len(cand), dtype=np.int64)
            for j in (k // 2, k - k // 2):
                v = _viol(sw / j, j, tg_, ctr, tolerance) + _viol((tw - sw) / (k - j), k - j, tg_, ctr, tolerance)
                better = v < best_here_v
                best_here_v = np.where(better, v, best_here_v)
                best_here_j = np.where(better, j, best_here_j)
            vq = np.round(best_here_v, 9)
            firsts = _best_per_group(p, vq, cost, n_parts)
            pp = p[firsts]
            improve = (vq[firsts] < best_v[pp]) | ((vq[firsts] == best_v[pp]) & (cost[firsts] < best_c[pp]))
            sel = firsts[improve]
            ps = p[sel]
            best_v[ps] = vq[sel]
            best_c[ps] = cost[sel]
            best_t[ps] = t
            best_node[ps] = cand[sel]
            best_j[ps] = best_here_j[sel]
        new_part = part.copy()
        next_id = n_parts
        add_k: list[np.int64] = []
        add_t: list[float] = []
        add_c: list[float] = []
        part_k[active_part & (best_node < 0)] = 1  # one atom heavier than the turfs (a big building)
        splittable = np.flatnonzero(active_part & (best_node >= 0))
        for t, (pred, _nodes, levels) in enumerate(trees):
            ps = splittable[best_t[splittable] == t]
            if len(ps) == 0:
                continue
            mark = np.zeros(n + 1, dtype=bool)
            mark[best_node[ps]] = True
            for lv in levels[1:]:
                mark[lv] |= mark[pred[lv]]
            newid = np.full(n_parts, -1, dtype=np.int64)
            newid[ps] = np.arange(next_id, next_id + len(ps))
            next_id += len(ps)
            m = np.flatnonzero(mark[:n])
            new_part[m] = newid[part[m]]
            add_k.extend(best_j[ps])
            add_t.extend(part_t[ps])
            add_c.extend(part_c[ps])
            part_k[ps] = part_k[ps] - best_j[ps]
        part = new_part
        part_k = np.concatenate([part_k, np.asarray(add_k, dtype=np.int64)])
        part_t = np.concatenate([part_t, np.asarray(add_t, dtype=float)])
        part_c = np.concatenate([part_c, np.asarray(add_c, dtype=float)])
    used, part = np.unique(part, return_inverse=True)
    part_t = part_t[used]
    moves = 0
    if refine:
        pw = np.bincount(part, weights=w)
        lo = np.minimum(part_t * (1 - tolerance), pw)
        hi = np.maximum(part_t * (1 + tolerance), pw)
        part, moves = refine_parts(x, y, w, part.astype(np.int64), e, lo, hi)
    return Cut(part=part.astype(np.int64), part_target=part_t, n_components=n_comp, levels=level, moves=moves)


def refine_parts(
    x: FloatArray,
    y: FloatArray,
    weight: FloatArray,
    part: IntArray,
    edges: IntArray,
    lo: FloatArray,
    hi: FloatArray,
    *,
    max_rounds: int = 200,
) -> tuple[IntArray, int]:
    """Move boundary buildings between neighbouring turfs while it makes them more compact.

    A move takes an atom from turf A to an adjacent turf B when it lowers the total within-turf sum of squared
    distances (exact, centroid shift included), keeps A at least ``lo[A]`` and B at most ``hi[B]`` doors, and
    leaves A contiguous (moves that disconnect A are undone). Each round moves at most one atom in or out of a
    turf, the best one; rounds stop when nothing improves. Decisions in one region never depend on another.

    Returns
    -------
    (part, moves)
    """
    part = part.copy()
    n = len(x)
    npart = int(part.max()) + 1 if n else 0
    if n == 0 or len(edges) == 0:
        return part, 0
    w = weight
    e0, e1 = edges[:, 0], edges[:, 1]
    blocked = np.zeros(n, dtype=bool)
    moves = 0
    for _ in range(max_rounds):
        pa, pb = part[e0], part[e1]
        cross = pa != pb
        if not cross.any():
            break
        atom = np.concatenate([e0[cross], e1[cross]])
        dest = np.concatenate([pb[cross], pa[cross]])
        keep = ~blocked[atom]
        atom, dest = atom[keep], dest[keep]
        src = part[atom]
        tw = np.bincount(part, weights=w, minlength=npart)
        cx = np.bincount(part, weights=w * x, minlength=npart) / np.maximum(tw, 1e-9)
        cy = np.bincount(part, weights=w * y, minlength=npart) / np.maximum(tw, 1e-9)
        wa = w[atom]
        wsrc, wdst = tw[src], tw[dest]
        ok = (wsrc - wa >= lo[src] - 1e-9) & (wdst + wa <= hi[dest] + 1e-9) & (wsrc - wa > 0)
        d_src = (x[atom] - cx[src]) ** 2 + (y[atom] - cy[src]) ** 2
        d_dst = (x[atom] - cx[dest]) ** 2 + (y[atom] - cy[dest]) ** 2
        delta = wa * wdst / (wdst + wa) * d_dst - wa * wsrc / np.maximum(wsrc - wa, 1e-9) * d_src
        ok &= delta < -1e-6
        if not ok.any():
            break
        atom, dest, src, delta = atom[ok], dest[ok], src[ok], delta[ok]
        # best move per source turf, then per destination turf, then no turf on both ends of two moves
        o = np.lexsort((atom, delta, src))
        first = o[np.r_[True, src[o][1:] != src[o][:-1]]]
        o = first[np.lexsort((atom[first], delta[first], dest[first]))]
        first = o[np.r_[True, dest[o][1:] != dest[o][:-1]]]
        as_src = np.zeros(npart, dtype=bool)
        as_src[src[first]] = True
        sel = first[~as_src[dest[first]]]
        if len(sel) == 0:
            break
        old = part[atom[sel]].copy()
        part[atom[sel]] = dest[sel]
        same = part[e0] == part[e1]
        g = coo_matrix((np.ones(int(same.sum())), (e0[same], e1[same])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        pieces = np.zeros(npart, dtype=np.int64)
        pc = np.unique(np.column_stack([part, comp]), axis=0)
        np.add.at(pieces, pc[:, 0], 1)
        broken = pieces[old] > 1
        part[atom[sel][broken]] = old[broken]
        blocked[atom[sel][broken]] = True
        moves += int((~broken).sum())
        if not (~broken).any() and broken.all():
            continue
    return part, moves
