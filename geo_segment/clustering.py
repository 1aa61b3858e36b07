"""Micro-geographies: density clusters of high-likelihood voters, in metres, with their polygons and quality.

A *micro-geography* is a small area where voters with a high score (turnout propensity, engagement, support) are
both dense and over-represented: a few blocks worth a canvass shift. :func:`cluster_voters` selects the voters
whose score is at or above a threshold (or in the top share), keeps those around whom high scorers are more common
than overall (the enrichment test), clusters them in a metric CRS (the UTM zone of the data,
``estimate_utm_crs()``), labels every voter and draws one polygon per cluster.

Algorithms
----------
``hdbscan`` (default)
    HDBSCAN* (Campello, Moulavi and Sander 2013) with excess-of-mass selection, as defined and implemented by the
    ``hdbscan`` package (McInnes, Healy and Astels), **with voter weights**. The implementation is this module's
    own (NumPy and SciPy): neither ``hdbscan.HDBSCAN`` nor ``sklearn.cluster.HDBSCAN`` accepts sample weights,
    which cell mode needs, and on 1M voters the ``hdbscan`` package takes minutes where this takes seconds (see
    ``benchmarks/cluster.py``). It follows the **``hdbscan`` package's conventions**: ``min_samples`` counts the
    *other* voters a voter needs within its core distance, **not itself** (``sklearn.cluster.HDBSCAN`` counts the
    point itself: its ``min_samples=k + 1`` is this ``min_samples=k``); ``min_samples`` defaults to
    ``min_cluster_size``; the root is never a cluster (``allow_single_cluster=False``); ``eps_m`` acts like the
    package's ``cluster_selection_epsilon``. ``tests/test_clustering.py`` checks that the labels are the ones the
    ``hdbscan`` package's own tree code gives. There is no ``approximate_predict``: refit to label new voters.
``dbscan``
    ``sklearn.cluster.DBSCAN`` (KD-tree, metres) with the voters' weights; a location is a core point when it has
    ``min_samples`` other voters within ``eps_m`` (sklearn's ``min_samples`` is set to ``min_samples + 1``).
    Clusters holding fewer than ``min_cluster_size`` voters become noise.

How weights work
----------------
Voters at one address share one point, so the estimator clusters *distinct locations* weighted by how many
voters stand on each: exactly HDBSCAN* on the repeated points (``k`` voters at a point are ``k`` points, each
with ``k - 1`` neighbours at distance 0), computed on the distinct points. Two guards keep a big building from
being an infinitely dense cluster on its own: core distances are at least ``min_distance_m`` (geocodes are
building-level), and in cell mode at least the radius a cell's voters would need if spread evenly over its
hexagon.

The mutual-reachability minimum spanning tree is taken over a candidate graph: each location's
``2 * (min_samples + 1)`` nearest locations plus the Delaunay triangulation's edges (every pair below 1,500
locations). It equals the exact tree (all pairs) in every comparison of the tests, but it is not proven exact; the
``hdbscan`` package's default (``approx_min_span_tree=True``) is approximate too. Ties in mutual reachability are
broken by location order (coordinates), so results do not depend on row order.

Modes
-----
``point``
    Every selected voter counts at its own (building) location.
``cell``
    Voters are binned into H3 cells at ``cell_resolution`` (default 10, about 0.015 km², 66 m edges); each cell is
    one location at its voters' mean position, weighted by its voter count. Fewer locations when voters are dense;
    boundaries are cell-sized (see ``docs/micro-geographies.md`` for a comparison with point mode).

The enrichment test (:func:`enrichment_pvalues`)
------------------------------------------------
Density alone finds where many people live: a crowded block of ordinary voters holds enough high scorers to make
a cluster. Before clustering, :func:`cluster_voters` keeps a selected voter only when, among its ``enrichment_k``
nearest scored voters, the count of selected ones is improbable under the overall share (one-sided binomial
test, p <= ``enrichment_alpha``). The others stay selected and are noise. ``enrichment_alpha=None`` switches the
test off.

Quality on record (``metrics`` of :func:`cluster_voters`)
---------------------------------------------------------
``validity``
    HDBSCAN's *relative validity* (the ``hdbscan`` package's ``relative_validity_``: DBCV's density sparseness
    and separation measured on the mutual-reachability minimum spanning tree), in [-1, 1], weighted by voters.
``bootstrap_ari``
    Mean adjusted Rand index between the clustering of the clustered voters (selected and enriched) and refits on
    bootstrap resamples of them (voters drawn with replacement, as multiplicities): compared on the voters present
    in the resample, each once; noise is one label.
``planted_ari``, ``pockets_recovered``
    When the voters carry a planted truth column (``pocket_id`` from :mod:`geo_segment.synth`, ``-1`` outside
    pockets): the ARI between ``micro_geo`` and ``pocket_id`` over **all the selected voters** (noise is one label,
    "not in a pocket" is one label; selected voters the enrichment test set aside count as noise), and the share
    of planted pockets of which one cluster holds at least half of the pocket's selected voters
    (``pockets_recovered_all``: half of all its voters, selected or not). See :func:`planted_truth_scores`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import Delaunay, QhullError, cKDTree
from scipy.stats import binom
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment.aggregates import K_MIN, suppress_small
from geo_segment.errors import ConfigError, SchemaError
from geo_segment.io.manifest import StageRecord

__all__ = [
    "ALGORITHMS",
    "H3_CELL_AREA_M2",
    "MICRO_GEO_COLUMNS",
    "MODES",
    "MicroGeoClusterer",
    "bootstrap_stability",
    "cluster_stage",
    "cluster_voters",
    "enrichment_pvalues",
    "planted_truth_scores",
    "relative_validity",
]

log = logging.getLogger(__name__)

ALGORITHMS = ("hdbscan", "dbscan")
MODES = ("point", "cell")
#: Average H3 hexagon area in m² by resolution (h3geo.org, "Tables of cell statistics across resolutions").
H3_CELL_AREA_M2 = {
    5: 252_903_364.5, 6: 36_129_052.1, 7: 5_161_293.4, 8: 737_327.6, 9: 105_332.5, 10: 15_047.5, 11: 2_149.6,
    12: 307.1, 13: 43.9, 14: 6.3, 15: 0.9,
}
#: Below this many distinct locations the spanning tree is computed on all pairs (exact).
EXACT_MAX_LOCATIONS = 1500
#: Candidate edges of the spanning tree: each location's KNN_FACTOR * (min_samples + 1) nearest locations (and the
#: Delaunay edges). 1 misses a few edges just beyond the core distance; 2 matched the exact tree in every test.
KNN_FACTOR = 2
#: Holes of a micro-geo polygon up to this many cells' area are filled (a missing cell inside a cluster).
MAX_HOLE_CELLS = 3
#: Grid (degrees, about 1 cm) onto which cell polygons are snapped before their union, so no sliver survives.
GRID_DEG = 1e-7

# micro-geo columns (the lead may move these into geo_segment.schema)
VOTERS = "voters"
HOUSEHOLDS = "households"
MEAN_SCORE = "mean_score"
MEDIAN_SCORE = "median_score"
EXPECTED = "expected"
N_PRECINCTS = "n_precincts"
PRECINCT_IDS = "precinct_ids"
N_CELLS = "cells"
AREA_M2 = "area_m2"
DENSITY = "voters_per_km2"
SUPPRESSED = "suppressed"
#: Columns of the micro-geos GeoDataFrame, in order (then ``geometry``).
MICRO_GEO_COLUMNS = (S.MICRO_GEO, VOTERS, HOUSEHOLDS, MEAN_SCORE, MEDIAN_SCORE, EXPECTED, N_PRECINCTS, PRECINCT_IDS,
                     N_CELLS, AREA_M2, DENSITY, SUPPRESSED)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# ---------------------------------------------------------------------------------------------------------------
# array-level engine
# ---------------------------------------------------------------------------------------------------------------

def _locations(X: FloatArray, weight: IntArray) -> tuple[FloatArray, IntArray, IntArray]:
    """Distinct rows of ``X`` (sorted by x, then y), their summed weights and each row's location."""
    z = X[:, 0] + 1j * X[:, 1]
    uz, inverse = np.unique(z, return_inverse=True)
    loc = np.column_stack([uz.real, uz.imag]).astype(np.float64)
    w = np.bincount(inverse, weights=weight, minlength=len(uz)).astype(np.int64)
    return loc, w, inverse.astype(np.int64)


def _core_distances(tree: cKDTree, loc: FloatArray, w: IntArray, min_samples: int) -> tuple[
    FloatArray, IntArray, IntArray
]:
    """Weighted core distances: the distance at which a location's voters have ``min_samples`` others around.

    Returns the core distances, the neighbour indices (m, k) and, per location, the position of the neighbour
    that completes the count. Requires ``w.sum() > min_samples``.
    """
    m = len(loc)
    need = min_samples + 1  # the voter itself and min_samples others
    k = min(KNN_FACTOR * need, m)
    dist, idx = tree.query(loc, k=k, workers=-1)
    dist = np.asarray(dist, dtype=np.float64).reshape(m, k)
    idx = np.asarray(idx, dtype=np.int64).reshape(m, k)
    cum = np.cumsum(w[idx], axis=1)
    pos = (cum >= need).argmax(axis=1)
    return dist[np.arange(m), pos], idx, pos


def _delaunay_edges(loc: FloatArray) -> tuple[IntArray, IntArray]:
    """Edges of the Delaunay triangulation of distinct locations: GEOS (about twice as fast as qhull here), mapped
    back to the locations by exact coordinates; qhull when that fails (ties, degenerate input)."""
    m = len(loc)
    try:
        lines = shapely.delaunay_triangles(shapely.multipoints(loc), only_edges=True)
        coords = shapely.get_coordinates(lines)
        idx = pd.Index(loc[:, 0] + 1j * loc[:, 1]).get_indexer(coords[:, 0] + 1j * coords[:, 1])
        if len(coords) // 2 >= m - 1 and (idx >= 0).all():
            return idx[0::2].astype(np.int64), idx[1::2].astype(np.int64)
    except (pd.errors.InvalidIndexError, shapely.errors.GEOSException):
        pass
    centred = loc - loc.mean(axis=0)  # qhull is faster and more precise near the origin
    try:
        tri = Delaunay(centred).simplices.astype(np.int64)
    except QhullError:  # degenerate (all points on a line): joggle
        tri = Delaunay(centred, qhull_options="QJ").simplices.astype(np.int64)
    return (np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2]]), np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]]))


def _candidate_edges(loc: FloatArray, idx: IntArray, pos: IntArray) -> tuple[IntArray, IntArray]:
    """Pairs (a < b) that may belong to the mutual-reachability spanning tree (see the module docstring)."""
    m = len(loc)
    if m <= EXACT_MAX_LOCATIONS:
        a, b = np.triu_indices(m, 1)
        return a.astype(np.int64), b.astype(np.int64)
    k = idx.shape[1]
    j = np.arange(k)[None, :]
    within = (j >= 1) & (j < KNN_FACTOR * (pos[:, None] + 1))  # twice the locations that make the core count
    a1 = np.broadcast_to(np.arange(m)[:, None], (m, k))[within]
    b1 = idx[within]
    a2, b2 = _delaunay_edges(loc)
    a = np.concatenate([a1, a2]).astype(np.int64)
    b = np.concatenate([b1, b2]).astype(np.int64)
    key = np.sort(np.minimum(a, b) * m + np.maximum(a, b))  # sort, not np.unique: its hash path is slow here
    key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return key // m, key % m


def _mutual_reachability_mst(loc: FloatArray, core: FloatArray, a: IntArray, b: IntArray) -> tuple[
    IntArray, IntArray, FloatArray
]:
    """Minimum spanning tree of the candidate graph under mutual reachability, sorted (weight, a, b)."""
    m = len(loc)
    d = np.hypot(loc[a, 0] - loc[b, 0], loc[a, 1] - loc[b, 1])
    wgt = np.maximum(np.maximum(core[a], core[b]), d)
    graph = coo_matrix((wgt, (a, b)), shape=(m, m)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    ea, eb, ew = tree.row.astype(np.int64), tree.col.astype(np.int64), tree.data.astype(np.float64)
    if len(ea) < m - 1:  # only if the candidate graph is disconnected: join the parts far above every edge
        n_comp, comp = connected_components(tree, directed=False)
        first = np.array([np.flatnonzero(comp == c)[0] for c in range(n_comp)], dtype=np.int64)
        big = 2.0 * float(max(ew.max(initial=0.0), core.max(initial=0.0), 1.0))
        ea = np.concatenate([ea, first[:-1]])
        eb = np.concatenate([eb, first[1:]])
        ew = np.concatenate([ew, np.full(n_comp - 1, big)])
    lo, hi = np.minimum(ea, eb), np.maximum(ea, eb)
    order = np.lexsort((hi, lo, ew))
    return lo[order], hi[order], ew[order]


def _single_linkage(a: IntArray, b: IntArray, w: IntArray) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Kruskal's merge tree of sorted spanning-tree edges: nodes 0..m-1 are locations, m+i merges edge i.

    Returns ``left``, ``right`` (children of each merge), ``parent`` of every node (-1 for the root) and ``size``
    (voters under every node).
    """
    m = len(w)
    n_nodes = 2 * m - 1
    uf = list(range(n_nodes))
    size = w.tolist() + [0] * (m - 1)
    left = [0] * (m - 1)
    right = [0] * (m - 1)
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        while uf[x] != x:
            uf[x] = uf[uf[x]]
            x = uf[x]
        while uf[y] != y:
            uf[y] = uf[uf[y]]
            y = uf[y]
        left[i] = x
        right[i] = y
        uf[x] = uf[y] = m + i
        size[m + i] = size[x] + size[y]
    left_a = np.asarray(left, dtype=np.int64)
    right_a = np.asarray(right, dtype=np.int64)
    parent = np.full(n_nodes, -1, dtype=np.int64)
    parent[left_a] = np.arange(m, n_nodes)
    parent[right_a] = np.arange(m, n_nodes)
    return left_a, right_a, parent, np.asarray(size, dtype=np.int64)


def _jump(pointer: IntArray) -> IntArray:
    """Follow ``pointer`` to its fixed point for every node (pointer doubling, O(log depth) passes)."""
    p = pointer.copy()
    while True:
        nxt = p[p]
        if np.array_equal(nxt, p):
            return p
        p = nxt


def _hdbscan_labels(
    w: IntArray,
    core: FloatArray,
    edge_a: IntArray,
    edge_b: IntArray,
    edge_w: FloatArray,
    *,
    min_cluster_size: int,
    eps: float,
) -> IntArray:
    """Excess-of-mass clusters of the weighted single-linkage tree, per location (-1 = noise).

    The condensed tree of the ``hdbscan`` package (``condense_tree``, ``compute_stability``, ``get_clusters``)
    computed in bulk on the merge tree of locations: a location of weight ``k`` behaves as ``k`` voters that meet
    each other at its core distance, below every edge of the tree.
    """
    m = len(w)
    left, right, parent, size = _single_linkage(edge_a, edge_b, w)
    n_nodes = 2 * m - 1
    root = n_nodes - 1
    lam = np.empty(n_nodes, dtype=np.float64)
    lam[:m] = 1.0 / core  # a location's own voters part at its core distance
    lam[m:] = 1.0 / edge_w
    is_split = np.zeros(n_nodes, dtype=bool)
    is_split[m:] = (size[left] >= min_cluster_size) & (size[right] >= min_cluster_size)
    cluster_root = np.zeros(n_nodes, dtype=bool)
    cluster_root[root] = True
    split_nodes = np.flatnonzero(is_split[m:])
    cluster_root[left[split_nodes]] = True
    cluster_root[right[split_nodes]] = True
    nodes = np.arange(n_nodes)
    cluster_of = _jump(np.where(cluster_root | (parent < 0), nodes, parent))
    # where each location's voters leave their cluster, and at which lambda
    small = size < min_cluster_size
    up = np.where((parent >= 0) & small[np.maximum(parent, 0)], parent, nodes)
    top_small = _jump(up)[:m]
    loc_small = small[:m]
    fall_node = np.where(loc_small, parent[top_small], nodes[:m])
    fall_lam = np.where(loc_small, lam[np.maximum(fall_node, 0)], lam[:m])
    fall_cluster = cluster_of[np.maximum(fall_node, 0)]
    # condensed clusters, bottom-up order = increasing node id
    cl_nodes = np.flatnonzero(cluster_root)
    n_cl = len(cl_nodes)
    cl_index = np.full(n_nodes, -1, dtype=np.int64)
    cl_index[cl_nodes] = np.arange(n_cl)
    birth = np.where(cl_nodes == root, 0.0, lam[np.maximum(parent[cl_nodes], 0)])
    cl_parent = np.where(cl_nodes == root, -1, cl_index[cluster_of[np.maximum(parent[cl_nodes], 0)]])
    fc = cl_index[fall_cluster]
    stability = np.bincount(fc, weights=w * (fall_lam - birth[fc]), minlength=n_cl)
    child = np.flatnonzero(cl_parent >= 0)
    stability += np.bincount(cl_parent[child], weights=size[cl_nodes[child]] * (birth[child] - birth[cl_parent[child]]),
                             minlength=n_cl)
    # excess of mass, children before parents; the root is never selected
    stab = stability.tolist()
    par = cl_parent.tolist()
    kids_sum = [0.0] * n_cl
    chosen = [False] * n_cl
    for i in range(n_cl - 1):
        if kids_sum[i] > stab[i]:
            stab[i] = kids_sum[i]
        else:
            chosen[i] = True
        kids_sum[par[i]] += stab[i]
    if eps > 0:
        with np.errstate(divide="ignore"):
            birth_dist = np.where(birth > 0, 1.0 / np.where(birth > 0, birth, 1.0), np.inf)
        chosen = _epsilon_merge(chosen, par, birth_dist.tolist(), eps)
    # final label of each condensed cluster: its highest chosen ancestor-or-self (top-down)
    final = [-1] * n_cl
    for i in range(n_cl - 2, -1, -1):
        above = final[par[i]] if par[i] >= 0 else -1
        final[i] = above if above >= 0 else (i if chosen[i] else -1)
    return np.asarray(final, dtype=np.int64)[fc] if n_cl else np.full(m, -1, dtype=np.int64)


def _epsilon_merge(chosen: list[bool], par: list[int], birth_dist: list[float], eps: float) -> list[bool]:
    """The ``hdbscan`` package's ``cluster_selection_epsilon``: a chosen cluster born below ``eps`` metres gives
    way to its first ancestor born above ``eps`` (never the root)."""
    n_cl = len(chosen)
    root = n_cl - 1
    out = list(chosen)
    for i in range(n_cl - 1):
        if not chosen[i] or birth_dist[i] >= eps:
            continue
        j = i
        while par[j] != root and birth_dist[j] < eps:
            j = par[j]
        if j != i:
            out[i] = False
            out[j] = True
    return out


def relative_validity(labels: npt.ArrayLike, weight: npt.ArrayLike, edge_a: npt.ArrayLike, edge_b: npt.ArrayLike,
                      edge_w: npt.ArrayLike, core: npt.ArrayLike) -> float:
    """HDBSCAN's relative validity (a fast DBCV) of location labels on a mutual-reachability spanning tree.

    The formula of the ``hdbscan`` package's ``HDBSCAN.relative_validity_`` with weighted locations: a location
    of weight ``k > 1`` adds an internal edge of its core distance. Returns NaN when there is no cluster.

    Parameters
    ----------
    labels
        Cluster of each location (-1 = noise).
    weight
        Voters at each location.
    edge_a, edge_b, edge_w
        Spanning-tree edges (location indices) and their mutual-reachability weights.
    core
        Core distance of each location.
    """
    lab = np.asarray(labels, dtype=np.int64)
    w = np.asarray(weight, dtype=np.float64)
    core_a = np.asarray(core, dtype=np.float64)
    multi = np.flatnonzero(w > 1)
    ea = np.concatenate([np.asarray(edge_a, dtype=np.int64), multi])
    eb = np.concatenate([np.asarray(edge_b, dtype=np.int64), multi])
    ew = np.concatenate([np.asarray(edge_w, dtype=np.float64), core_a[multi]])
    n_cl = int(lab.max(initial=-1)) + 1
    if n_cl == 0:
        return float("nan")
    sizes = np.bincount(lab[lab >= 0], weights=w[lab >= 0], minlength=n_cl)
    total = float(w.sum())
    l1, l2 = lab[ea], lab[eb]
    one_noise = (l1 < 0) ^ (l2 < 0)
    neither = (l1 >= 0) & (l2 >= 0)
    same = neither & (l1 == l2)
    diff = neither & (l1 != l2)
    dsc = np.zeros(n_cl)
    np.maximum.at(dsc, l1[same], ew[same])
    dspc = np.full(n_cl, np.inf)
    np.minimum.at(dspc, l1[diff], ew[diff])
    np.minimum.at(dspc, l2[diff], ew[diff])
    max_distance = float(ew.max()) if len(ew) else 0.0
    min_outlier_sep = float(ew[one_noise].min()) if one_noise.any() else max_distance
    correction = 2.0 * (max_distance if n_cl > 1 else min_outlier_sep)
    dspc[np.isinf(dspc)] = correction
    denom = np.maximum(dspc, dsc)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(denom > 0, (dspc - dsc) / denom, 0.0)
    return float(np.sum(sizes * v / total))


def _renumber(loc_labels: IntArray, w: IntArray, loc: FloatArray) -> IntArray:
    """Number clusters 0.. by decreasing voters, ties by the lowest x then y of their locations."""
    n = int(loc_labels.max(initial=-1)) + 1
    if n == 0:
        return loc_labels
    ok = loc_labels >= 0
    sizes = np.bincount(loc_labels[ok], weights=w[ok], minlength=n)
    first = np.full(n, len(loc_labels), dtype=np.int64)
    np.minimum.at(first, loc_labels[ok], np.flatnonzero(ok))
    order = np.lexsort((first, -sizes))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return np.where(ok, rank[np.maximum(loc_labels, 0)], -1)


def _cell_resolution_of(cells: np.ndarray) -> int:
    nz = cells[cells != _h3.NO_CELL]
    return int((int(nz[0]) >> 52) & 0xF) if len(nz) else _h3.MAX_RESOLUTION


class MicroGeoClusterer(ClusterMixin, BaseEstimator):
    """Density clusters of voters in metres: weighted HDBSCAN* (default) or DBSCAN, per voter or per H3 cell.

    See the module docstring for the algorithm. **HDBSCAN implementation:** this module's own weighted HDBSCAN*,
    following the ``hdbscan`` package (not ``sklearn.cluster.HDBSCAN``): ``min_samples`` does **not** count the
    voter itself, EOM selection, no single-cluster result; tested against the ``hdbscan`` package's tree code.

    Parameters
    ----------
    algorithm
        ``"hdbscan"`` or ``"dbscan"``.
    min_cluster_size
        Fewest voters in a cluster (weights count: a location with 3 voters counts 3).
    min_samples
        Other voters needed within a voter's core distance, the voter itself **not** counted (the ``hdbscan``
        package's convention). Default: ``min_cluster_size`` (HDBSCAN) or ``min_cluster_size - 1`` (DBSCAN).
    eps_m
        DBSCAN: neighbourhood radius in metres (required). HDBSCAN: clusters born closer than this many metres
        merge upwards (``cluster_selection_epsilon``); ``None`` for none.
    mode
        ``"point"``: cluster the rows' locations. ``"cell"``: cluster H3 cells at ``cell_resolution`` (``fit``
        then needs ``cells``), weighted by their voters.
    cell_resolution
        H3 resolution of cell mode (5..15).
    min_distance_m
        Floor of core distances in metres (building-level geocodes: many voters share one point).
    random_state
        Seed used by :func:`bootstrap_stability` when it is given none; the fit itself is deterministic.

    Attributes
    ----------
    labels_ : ndarray of int64, shape (n_rows,)
        Cluster of each row (-1 noise); clusters are numbered 0.. by decreasing voters.
    n_clusters_ : int
        Number of clusters.
    cluster_sizes_ : ndarray of int64
        Voters (summed weights) per cluster.
    validity_ : float
        Relative validity (:func:`relative_validity`); NaN without clusters.
    n_locations_ : int
        Distinct locations (point mode) or cells (cell mode) clustered.
    location_labels_, location_weights_, location_xy_ : ndarray
        Cluster, voters and metre coordinates of each location.
    row_location_ : ndarray of int64
        Location of each row (-1 for rows of weight 0).
    core_distances_ : ndarray of float64
        Core distance of each location in metres.
    mst_ : tuple of ndarrays
        Mutual-reachability spanning tree of the locations: (a, b, weight in metres).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal((0, 0), 20, (40, 2)), rng.normal((500, 0), 20, (40, 2))])
    >>> est = MicroGeoClusterer(min_cluster_size=10).fit(X)
    >>> est.n_clusters_, sorted(np.bincount(est.labels_[est.labels_ >= 0]).tolist())
    (2, [40, 40])
    """

    def __init__(
        self,
        *,
        algorithm: Literal["hdbscan", "dbscan"] = "hdbscan",
        min_cluster_size: int = 25,
        min_samples: int | None = None,
        eps_m: float | None = None,
        mode: Literal["point", "cell"] = "point",
        cell_resolution: int = 10,
        min_distance_m: float = 10.0,
        random_state: int | None = 0,
    ) -> None:
        self.algorithm = algorithm
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.eps_m = eps_m
        self.mode = mode
        self.cell_resolution = cell_resolution
        self.min_distance_m = min_distance_m
        self.random_state = random_state

    # -- checks ------------------------------------------------------------------------------------------------
    def _check_params(self) -> tuple[int, int]:
        problems: list[str] = []
        if self.algorithm not in ALGORITHMS:
            problems.append(f"algorithm was {self.algorithm!r} but is expected to be one of {ALGORITHMS}")
        if self.mode not in MODES:
            problems.append(f"mode was {self.mode!r} but is expected to be one of {MODES}")
        mcs = self.min_cluster_size
        if isinstance(mcs, bool) or not isinstance(mcs, int | np.integer) or mcs < 2:
            problems.append(f"min_cluster_size was {mcs!r} but is expected to be an integer >= 2")
        ms = self.min_samples
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int | np.integer) or ms < 1):
            problems.append(f"min_samples was {ms!r} but is expected to be None or an integer >= 1")
        if self.eps_m is not None and not (np.isfinite(self.eps_m) and self.eps_m > 0):
            problems.append(f"eps_m was {self.eps_m!r} but is expected to be None or a positive number of metres")
        if self.algorithm == "dbscan" and self.eps_m is None:
            problems.append("algorithm 'dbscan' needs eps_m (metres), e.g. eps_m=75")
        if not (np.isfinite(self.min_distance_m) and self.min_distance_m > 0):
            problems.append(f"min_distance_m was {self.min_distance_m!r} but is expected to be positive (metres)")
        if self.mode == "cell":
            try:
                _h3.check_resolution(self.cell_resolution)
            except ConfigError as exc:
                problems.append(f"cell_resolution: {exc}")
        if problems:
            raise ConfigError(f"MicroGeoClusterer has {len(problems)} bad parameters: " + "; ".join(problems),
                              fix="see help(geo_segment.clustering.MicroGeoClusterer)")
        mcs_i = int(mcs)
        default_ms = mcs_i if self.algorithm == "hdbscan" else mcs_i - 1
        return mcs_i, int(ms) if ms is not None else default_ms

    @staticmethod
    def _check_X(X: npt.ArrayLike, sample_weight: npt.ArrayLike | None) -> tuple[FloatArray, IntArray]:
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ConfigError("X must hold one (x, y) pair in metres per row", expected="shape (n, 2)",
                              found=f"shape {arr.shape}", fix="project lon/lat to a metric CRS first "
                              "(geo_segment.clustering.cluster_voters does it)")
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr).all(axis=1)).sum())
            raise ConfigError("X holds missing or infinite coordinates", found=f"{bad} such rows",
                              fix="drop voters without coordinates before clustering")
        if sample_weight is None:
            return arr, np.ones(len(arr), dtype=np.int64)
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != (len(arr),) or not np.isfinite(sw).all() or (sw < 0).any() or (sw != np.round(sw)).any():
            raise ConfigError("sample_weight must be a non-negative whole number of voters per row",
                              expected=f"shape ({len(arr)},), integers >= 0",
                              found=f"shape {sw.shape}, min {float(sw.min(initial=0)):g}",
                              fix="pass voter counts (cell mode and resampling use them)")
        return arr, sw.astype(np.int64)

    # -- fit ---------------------------------------------------------------------------------------------------
    def fit(self, X: npt.ArrayLike, y: Any = None, *, sample_weight: npt.ArrayLike | None = None,
            cells: npt.ArrayLike | None = None) -> MicroGeoClusterer:
        """Cluster the rows of ``X`` (metres, projected CRS).

        Parameters
        ----------
        X
            Array (n, 2) of x, y in metres.
        y
            Ignored.
        sample_weight
            Voters per row (non-negative integers, default 1); rows of weight 0 are left out (label -1).
        cells
            Cell mode: uint64 H3 cells of the rows at ``cell_resolution`` or finer.

        Returns
        -------
        MicroGeoClusterer
            ``self``, fitted.

        Raises
        ------
        ConfigError
            A bad parameter, X not (n, 2) finite, weights not whole numbers, or cells missing in cell mode.
        """
        mcs, ms = self._check_params()
        arr, weight = self._check_X(X, sample_weight)
        n = len(arr)
        keep = weight > 0
        floor_extra: FloatArray | None = None
        if self.mode == "cell":
            if cells is None:
                raise ConfigError("cell mode needs the rows' H3 cells", expected="fit(X, cells=...)",
                                  found="cells=None", fix="pass cells from geo_segment._h3.latlng_to_cells, or "
                                  "use cluster_voters(mode='cell')")
            c = np.asarray(cells, dtype=np.uint64)
            if c.shape != (n,):
                raise ConfigError("cells must hold one H3 cell per row", expected=f"shape ({n},)",
                                  found=f"shape {c.shape}")
            if (c[keep] == _h3.NO_CELL).any():
                raise ConfigError("cells hold 0 (no cell) for rows with a positive weight",
                                  fix="drop rows without coordinates")
            res = _cell_resolution_of(c[keep])
            if keep.any() and res < self.cell_resolution:
                raise ConfigError("cells are coarser than cell_resolution", expected=f">= {self.cell_resolution}",
                                  found=str(res), fix=f"compute cells at resolution {self.cell_resolution}")
            parents = _h3.cell_parents(c[keep], self.cell_resolution) if res > self.cell_resolution else c[keep]
            codes, uniq = pd.factorize(parents, sort=True)
            wk = weight[keep]
            tot = np.bincount(codes, weights=wk, minlength=len(uniq))
            cx = np.bincount(codes, weights=wk * arr[keep, 0], minlength=len(uniq)) / tot
            cy = np.bincount(codes, weights=wk * arr[keep, 1], minlength=len(uniq)) / tot
            loc = np.column_stack([cx, cy])
            w = tot.astype(np.int64)
            row_loc = np.full(n, -1, dtype=np.int64)
            row_loc[keep] = codes
            area = H3_CELL_AREA_M2[int(self.cell_resolution)]
            floor_extra = np.sqrt(area / np.pi * np.minimum(1.0, (ms + 1) / w))
        else:
            loc, w, inverse = _locations(arr[keep], weight[keep])
            row_loc = np.full(n, -1, dtype=np.int64)
            row_loc[keep] = inverse
        self.location_xy_ = loc
        self.location_weights_ = w
        self.row_location_ = row_loc
        self.n_locations_ = len(loc)
        m = len(loc)
        empty = np.zeros(0, dtype=np.int64)
        self.mst_ = (empty, empty, np.zeros(0))
        self.core_distances_ = np.full(m, np.nan)
        if int(w.sum()) <= ms or int(w.sum()) < mcs or m == 0:
            loc_labels = np.full(m, -1, dtype=np.int64)
        else:
            tree = cKDTree(loc)
            core, idx, pos = _core_distances(tree, loc, w, ms)
            core = np.maximum(core, self.min_distance_m)
            if floor_extra is not None:
                core = np.maximum(core, floor_extra)
            self.core_distances_ = core
            if m == 1:
                ea, eb, ew = empty, empty, np.zeros(0)
            else:
                ca, cb = _candidate_edges(loc, idx, pos)
                ea, eb, ew = _mutual_reachability_mst(loc, core, ca, cb)
            self.mst_ = (ea, eb, ew)
            if self.algorithm == "hdbscan":
                loc_labels = _hdbscan_labels(w, core, ea, eb, ew, min_cluster_size=mcs,
                                             eps=float(self.eps_m or 0.0))
            else:
                db = DBSCAN(eps=float(self.eps_m or 0.0), min_samples=ms + 1, algorithm="kd_tree")
                loc_labels = db.fit(loc, sample_weight=w).labels_.astype(np.int64)
                n_db = int(loc_labels.max(initial=-1)) + 1
                if n_db:
                    ok = loc_labels >= 0
                    sizes = np.bincount(loc_labels[ok], weights=w[ok], minlength=n_db)
                    loc_labels = np.where(ok & (sizes[np.maximum(loc_labels, 0)] >= mcs), loc_labels, -1)
        loc_labels = _renumber(loc_labels, w, loc)
        self.location_labels_ = loc_labels
        self.labels_ = np.where(row_loc >= 0, loc_labels[np.maximum(row_loc, 0)], -1).astype(np.int64)
        self.n_clusters_ = int(loc_labels.max(initial=-1)) + 1
        ok = loc_labels >= 0
        self.cluster_sizes_ = np.bincount(loc_labels[ok], weights=w[ok], minlength=self.n_clusters_).astype(np.int64)
        self.validity_ = (relative_validity(loc_labels, w, *self.mst_, self.core_distances_)
                          if self.n_clusters_ else float("nan"))
        return self


def bootstrap_stability(
    estimator: MicroGeoClusterer,
    X: npt.ArrayLike,
    *,
    sample_weight: npt.ArrayLike | None = None,
    cells: npt.ArrayLike | None = None,
    n_resamples: int = 10,
    random_state: int | None = None,
    labels: npt.ArrayLike | None = None,
) -> FloatArray:
    """Adjusted Rand index between a clustering and refits on bootstrap resamples of its voters.

    Each resample draws as many voters as there are, with replacement (a row's weight becomes its multiplicity in
    the draw); the refit's labels are compared with the full fit's on the rows drawn at least once, each row
    counted by its weight. Noise (-1) is one label on both sides.

    Parameters
    ----------
    estimator
        A (fitted or not) :class:`MicroGeoClusterer`; it is cloned, never refitted in place.
    X, sample_weight, cells
        As for :meth:`MicroGeoClusterer.fit`.
    n_resamples
        Number of resamples.
    random_state
        Seed of the draws (default: ``estimator.random_state``).
    labels
        Labels of the full fit, when already known (saves one fit).

    Returns
    -------
    ndarray of float64
        One ARI per resample.
    """
    if n_resamples < 0:
        raise ConfigError("n_resamples must be >= 0", found=repr(n_resamples), fix="use 10")
    arr = np.asarray(X, dtype=np.float64)
    weight = (np.ones(len(arr), dtype=np.int64) if sample_weight is None
              else np.asarray(sample_weight, dtype=np.float64).astype(np.int64))
    base = (np.asarray(labels, dtype=np.int64) if labels is not None
            else clone(estimator).fit(arr, sample_weight=weight, cells=cells).labels_)
    seed = random_state if random_state is not None else estimator.random_state
    rng = np.random.default_rng(seed)
    total = int(weight.sum())
    out = np.full(n_resamples, np.nan)
    if total == 0:
        return out
    p = weight / total
    for r in range(n_resamples):
        draw = rng.multinomial(total, p)
        fit = clone(estimator).fit(arr, sample_weight=draw, cells=cells)
        present = draw > 0
        reps = weight[present]
        out[r] = adjusted_rand_score(np.repeat(base[present], reps), np.repeat(fit.labels_[present], reps))
    return out


def enrichment_pvalues(X: npt.ArrayLike, selected: npt.ArrayLike, *, k: int = 50, chunk: int = 100_000) -> (
    FloatArray
):
    """How surprising the high-likelihood voters around each high-likelihood voter are, given the overall share.

    For every selected row: among its ``k`` nearest other voters (all rows, selected or not; whole addresses, so
    slightly more than ``k`` when the last address holds several), the count of selected ones, tested against the
    share of selected rows overall with a one-sided binomial test. A small p-value means high-likelihood voters
    are over-represented around the voter, not merely that many people live there.

    Parameters
    ----------
    X
        Array (n, 2) of every scored voter's coordinates in metres.
    selected
        Boolean mask of the high-likelihood voters.
    k
        Neighbours that make up a voter's surroundings.
    chunk
        Locations queried at a time (bounds memory).

    Returns
    -------
    ndarray of float64, shape (n,)
        The p-value of every selected row; NaN for the others.

    Examples
    --------
    >>> X = np.column_stack([np.arange(200.0) * 10, np.zeros(200)])
    >>> sel = np.zeros(200, bool); sel[:20] = True; sel[100::10] = True
    >>> p = enrichment_pvalues(X, sel, k=10)
    >>> bool(p[5] < 1e-3), bool(p[150] > 0.05)
    (True, True)
    """
    arr = np.asarray(X, dtype=np.float64)
    sel = np.asarray(selected, dtype=bool)
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ConfigError("k must be a positive number of neighbours", found=repr(k), fix="use 50")
    out = np.full(len(arr), np.nan)
    if not sel.any():
        return out
    share = float(sel.mean())
    loc, _, inverse = _locations(arr, np.ones(len(arr), dtype=np.int64))
    all_w = np.bincount(inverse, minlength=len(loc)).astype(np.int64)
    sel_w = np.bincount(inverse, weights=sel, minlength=len(loc)).astype(np.int64)
    targets = np.flatnonzero(sel_w > 0)
    tree = cKDTree(loc)
    kq = min(int(k) + 1, len(loc))
    p_loc = np.full(len(loc), np.nan)
    for start in range(0, len(targets), chunk):
        t = targets[start:start + chunk]
        _, idx = tree.query(loc[t], k=kq, workers=-1)
        idx = np.asarray(idx, dtype=np.int64).reshape(len(t), kq)
        a = all_w[idx]
        b = sel_w[idx]
        own = idx[:, 0] == t  # the nearest location is the voter's own address: leave the voter out
        a[own, 0] -= 1
        b[own, 0] -= 1
        ca = np.cumsum(a, axis=1)
        cb = np.cumsum(b, axis=1)
        pos = np.where(ca[:, -1] >= k, (ca >= k).argmax(axis=1), kq - 1)
        rows = np.arange(len(t))
        n = ca[rows, pos]
        x = cb[rows, pos]
        p_loc[t] = np.where(n > 0, binom.sf(x - 1, np.maximum(n, 1), share), 1.0)
    out[sel] = p_loc[inverse[sel]]
    return out


def planted_truth_scores(micro_geo: npt.ArrayLike, truth: npt.ArrayLike, *, selected: npt.ArrayLike) -> dict[
    str, Any
]:
    """Compare micro-geos with planted pockets (synthetic data).

    Parameters
    ----------
    micro_geo
        Cluster of every voter (-1 noise; anything for voters not selected).
    truth
        Planted pocket of every voter (-1 outside pockets).
    selected
        Boolean mask of the voters that were clustered.

    Returns
    -------
    dict
        ``planted_ari``: ARI between ``micro_geo`` and ``truth`` over the selected voters (noise one label, outside
        pockets one label). ``pockets_recovered``: share of pockets of which a single cluster holds >= 50 % of the
        pocket's selected voters (``pockets_recovered_n`` of ``pockets``); ``pockets_recovered_all``: the same
        against **all** the pocket's voters, selected or not (it also charges the score threshold);
        ``pocket_purity``: mean share of the pocket's voters in the cluster matched to each recovered pocket.
    """
    lab = np.asarray(micro_geo, dtype=np.int64)
    tru = np.asarray(truth, dtype=np.int64)
    sel = np.asarray(selected, dtype=bool)
    ari = float(adjusted_rand_score(tru[sel], lab[sel])) if sel.any() else float("nan")
    pockets = np.unique(tru[tru >= 0])
    in_cluster = sel & (lab >= 0)
    recovered = recovered_all = 0
    purity: list[float] = []
    for p in pockets:
        members = tru == p
        hits = lab[members & in_cluster]
        if not len(hits):
            continue
        counts = np.bincount(hits)
        best = int(counts.argmax())
        if counts[best] >= 0.5 * (members & sel).sum():
            recovered += 1
            cl = in_cluster & (lab == best)
            purity.append(float((tru[cl] == p).mean()))
        if counts[best] >= 0.5 * members.sum():
            recovered_all += 1
    n_p = len(pockets)
    return {
        "planted_ari": ari,
        "pockets": n_p,
        "pockets_recovered_n": recovered,
        "pockets_recovered": recovered / n_p if n_p else float("nan"),
        "pockets_recovered_all": recovered_all / n_p if n_p else float("nan"),
        "pocket_purity": float(np.mean(purity)) if purity else float("nan"),
    }


# ---------------------------------------------------------------------------------------------------------------
# GeoDataFrame layer
# ---------------------------------------------------------------------------------------------------------------

def _voter_xy(voters: gpd.GeoDataFrame) -> tuple[FloatArray, FloatArray]:
    """Longitudes and latitudes (NaN without coordinates), from ``lng``/``lat`` when present, else the geometry."""
    if S.LAT in voters.columns and S.LNG in voters.columns:
        return (voters[S.LNG].to_numpy("float64", na_value=np.nan), voters[S.LAT].to_numpy("float64", na_value=np.nan))
    geoms = voters.geometry.values
    xy = np.full((len(voters), 2), np.nan)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if ok.any():
        xy[ok] = shapely.get_coordinates(geoms[ok])
    return xy[:, 0], xy[:, 1]


def _check_voters(voters: Any, score_col: str, threshold: float | None, top_q: float | None) -> None:
    """Collect every problem with the input and the selection options; raise one error."""
    if not isinstance(voters, gpd.GeoDataFrame):
        raise SchemaError("voters must be a GeoDataFrame", expected="geopandas.GeoDataFrame in EPSG:4326",
                          found=type(voters).__name__, fix="read them with geo_segment.read_voter_file")
    used = {c: S.VOTER_DTYPES[c] for c in (S.LAT, S.LNG, S.HOUSEHOLD_ID, S.PRECINCT_ID)}
    problems = [str(p) for p in S.check_frame(voters, dtypes=used, required=(score_col,), geometry=True)]
    if score_col in voters.columns and not pd.api.types.is_numeric_dtype(voters[score_col]):
        problems.append(f"{score_col}: expected a numeric score, found {voters[score_col].dtype}")
    if S.MICRO_GEO in voters.columns:
        problems.append(f"{S.MICRO_GEO}: already present; drop it before clustering again")
    if problems:
        raise SchemaError(f"voters at stage 'cluster' break the column contract ({len(problems)} problems: "
                          + "; ".join(problems), fix="see docs/column-contract.md; score voters first "
                          f"(the scoring stage adds {S.ENGAGEMENT_SCORE!r} and {S.PROPENSITY!r})")
    if (threshold is None) == (top_q is None):
        raise ConfigError("choose high-likelihood voters by exactly one of threshold and top_q",
                          found=f"threshold={threshold!r}, top_q={top_q!r}",
                          fix="pass threshold=0.7 (score at or above) or top_q=0.2 (the top 20 %)")
    if top_q is not None and not (0 < top_q <= 1):
        raise ConfigError("top_q is a share of voters", expected="0 < top_q <= 1", found=repr(top_q),
                          fix="pass 0.2 for the top 20 %")
    if threshold is not None and not np.isfinite(threshold):
        raise ConfigError("threshold must be a finite number", found=repr(threshold), fix="pass e.g. 0.7")


def _metric_crs(lng: FloatArray, lat: FloatArray) -> CRS:
    ok = np.isfinite(lng) & np.isfinite(lat)
    if not ok.any():
        return CRS.from_epsg(3857)  # nothing to cluster; any metric CRS will do
    corners = gpd.GeoSeries(gpd.points_from_xy([lng[ok].min(), lng[ok].max()], [lat[ok].min(), lat[ok].max()]),
                            crs=S.CRS_STORAGE)
    crs = corners.estimate_utm_crs()
    return CRS.from_user_input(crs)


def _fill_small_holes(geom: Any, max_hole_area: float) -> Any:
    parts = shapely.get_parts(geom)
    if len(parts) == 0:
        return geom
    out = []
    for part in parts:
        holes = [shapely.get_interior_ring(part, i) for i in range(shapely.get_num_interior_rings(part))]
        keep = [h for h in holes if shapely.area(shapely.polygons(h)) > max_hole_area]
        out.append(shapely.polygons(shapely.get_exterior_ring(part), holes=keep or None) if len(keep) != len(holes)
                   else part)
    return shapely.union_all(out, grid_size=GRID_DEG) if len(out) > 1 else out[0]


def _union_cells(hexes: npt.NDArray[np.object_]) -> Any:
    """Union of snapped hexagons: a coverage union (they share their snapped edges exactly), checked, with the
    overlay union on the 1 cm grid as the fallback."""
    if len(hexes) == 0:
        return shapely.Polygon()
    out = shapely.coverage_union_all(hexes)
    return out if shapely.is_valid(out) else shapely.union_all(hexes, grid_size=GRID_DEG)


def _polygons(lng: FloatArray, lat: FloatArray, labels: IntArray, n_clusters: int, resolution: int) -> tuple[
    npt.NDArray[np.object_], IntArray
]:
    """One polygon per cluster: the union of the H3 cells where its voters are the majority, snapped to a 1 cm
    grid (no slivers), small holes filled; clusters never overlap. Also the number of cells of each."""
    geoms = np.empty(n_clusters, dtype=object)
    n_cells = np.zeros(n_clusters, dtype=np.int64)
    if n_clusters == 0:
        return geoms, n_cells
    cells = _h3.latlng_to_cells(lat, lng, resolution)
    table = pd.DataFrame({"cell": cells, "label": labels}).value_counts().reset_index(name="n")
    table = table.sort_values(["cell", "n", "label"], ascending=[True, False, True]).drop_duplicates("cell")
    table = table.sort_values(["label", "cell"])
    cell_ids = table["cell"].to_numpy(dtype=np.uint64)
    cell_label = table["label"].to_numpy(dtype=np.int64)
    hexes = shapely.set_precision(_h3.cell_polygons(cell_ids), GRID_DEG, mode="pointwise")
    starts = np.searchsorted(cell_label, np.arange(n_clusters + 1))
    n_cells[:] = np.diff(starts)
    raw = np.array([_union_cells(hexes[starts[c]:starts[c + 1]]) for c in range(n_clusters)], dtype=object)
    lost = np.flatnonzero(n_cells == 0).tolist()  # outvoted in every cell they touch: finer cells, minus others
    if lost:
        kept = np.flatnonzero(n_cells > 0)
        tree = shapely.STRtree(raw[kept])
        fine_res = min(resolution + 2, _h3.MAX_RESOLUTION)
        for c in lost:
            mine = labels == c
            fine = np.unique(_h3.latlng_to_cells(lat[mine], lng[mine], fine_res))
            own = _union_cells(shapely.set_precision(_h3.cell_polygons(fine), GRID_DEG, mode="pointwise"))
            near = kept[tree.query(own, predicate="intersects")]
            raw[c] = shapely.difference(own, shapely.union_all(raw[near]), grid_size=GRID_DEG) if len(near) else own
    parts, owner = shapely.get_parts(raw, return_index=True)
    with_holes = np.unique(owner[shapely.get_num_interior_rings(parts) > 0]).tolist()
    filled = raw.copy()
    if with_holes:
        cell_area = float(np.mean(shapely.area(hexes)))
        tree = shapely.STRtree(raw)
        for c in with_holes:
            filled[c] = _fill_small_holes(raw[c], MAX_HOLE_CELLS * cell_area * 1.01)
            if shapely.equals_exact(filled[c], raw[c], tolerance=0.0):
                continue
            inside = [j for j in tree.query(filled[c], predicate="intersects").tolist() if j != c]
            if inside:  # a filled hole may hold another micro-geo: give its area back
                filled[c] = shapely.difference(filled[c], shapely.union_all(raw[inside]), grid_size=GRID_DEG)
    bad = ~shapely.is_valid(filled)
    if bad.any():
        filled[bad] = shapely.make_valid(filled[bad])
    geoms[:] = filled
    return geoms, n_cells


def _empty_micro_geos() -> gpd.GeoDataFrame:
    frame = pd.DataFrame({
        S.MICRO_GEO: pd.Series([], dtype="Int64"), VOTERS: pd.Series([], dtype="Int64"),
        HOUSEHOLDS: pd.Series([], dtype="Int64"), MEAN_SCORE: pd.Series([], dtype="float64"),
        MEDIAN_SCORE: pd.Series([], dtype="float64"), EXPECTED: pd.Series([], dtype="float64"),
        N_PRECINCTS: pd.Series([], dtype="Int64"), PRECINCT_IDS: pd.Series([], dtype="str"),
        N_CELLS: pd.Series([], dtype="Int64"), AREA_M2: pd.Series([], dtype="float64"),
        DENSITY: pd.Series([], dtype="float64"), SUPPRESSED: pd.Series([], dtype="bool"),
    })
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=S.CRS_STORAGE), crs=S.CRS_STORAGE)


def _micro_geo_table(members: pd.DataFrame, geoms: npt.NDArray[np.object_], n_cells: IntArray, n_clusters: int,
                     metric_crs: CRS, k_min: int) -> gpd.GeoDataFrame:
    if n_clusters == 0:
        return _empty_micro_geos()
    idx = pd.RangeIndex(n_clusters)
    grouped = members.groupby("label")
    score = grouped["score"]
    table = pd.DataFrame(index=idx)
    table[S.MICRO_GEO] = pd.array(np.arange(n_clusters), dtype="Int64")
    table[VOTERS] = grouped.size().reindex(idx, fill_value=0).astype("Int64")
    if "household" in members.columns:
        table[HOUSEHOLDS] = grouped["household"].nunique().reindex(idx, fill_value=0).astype("Int64")
    else:
        table[HOUSEHOLDS] = pd.array([pd.NA] * n_clusters, dtype="Int64")
    table[MEAN_SCORE] = score.mean().reindex(idx).astype("float64")
    table[MEDIAN_SCORE] = score.median().reindex(idx).astype("float64")
    table[EXPECTED] = score.sum().reindex(idx).astype("float64")
    if "precinct" in members.columns:
        prec = members.dropna(subset=["precinct"])
        table[N_PRECINCTS] = prec.groupby("label")["precinct"].nunique().reindex(idx, fill_value=0).astype("Int64")
        ids = prec.drop_duplicates(["label", "precinct"]).sort_values(["label", "precinct"])
        joined = ids.groupby("label")["precinct"].agg(lambda s: ";".join(s.astype(str)))
        table[PRECINCT_IDS] = joined.reindex(idx).astype("str")
    else:
        table[N_PRECINCTS] = pd.array([pd.NA] * n_clusters, dtype="Int64")
        table[PRECINCT_IDS] = pd.Series([None] * n_clusters, index=idx, dtype="str")
    table[N_CELLS] = pd.array(n_cells, dtype="Int64")
    area = gpd.GeoSeries(geoms, crs=S.CRS_STORAGE).to_crs(metric_crs).area.to_numpy()
    table[AREA_M2] = area
    with np.errstate(divide="ignore", invalid="ignore"):
        table[DENSITY] = table[VOTERS].to_numpy(dtype="float64", na_value=np.nan) / (area / 1e6)
    table = suppress_small(table, k_min=k_min, count_col=VOTERS)
    small = table[SUPPRESSED].to_numpy(dtype=bool)
    for col in (MEAN_SCORE, MEDIAN_SCORE, EXPECTED, DENSITY):
        table.loc[small, col] = np.nan
    table = table[list(MICRO_GEO_COLUMNS)]
    return gpd.GeoDataFrame(table.reset_index(drop=True), geometry=gpd.GeoSeries(geoms, crs=S.CRS_STORAGE),
                            crs=S.CRS_STORAGE)


def cluster_voters(
    voters: gpd.GeoDataFrame,
    *,
    score_col: str,
    threshold: float | None = None,
    top_q: float | None = None,
    algorithm: Literal["hdbscan", "dbscan"] = "hdbscan",
    mode: Literal["point", "cell"] = "point",
    min_cluster_size: int = 25,
    min_samples: int | None = None,
    eps_m: float | None = None,
    cell_resolution: int = 10,
    min_distance_m: float = 10.0,
    enrichment_alpha: float | None = 1e-3,
    enrichment_k: int = 50,
    polygon_resolution: int | None = None,
    k_min: int = K_MIN,
    bootstrap: int = 10,
    random_state: int | None = 0,
    truth_col: str | None = "pocket_id",
    metric_crs: Any = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any]]:
    """Cluster high-likelihood voters into micro-geographies; label voters, draw polygons, measure quality.

    Parameters
    ----------
    voters
        Voters (GeoDataFrame, EPSG:4326) with a numeric score column; ``household_id`` and ``precinct_id`` are
        used when present. Voters without coordinates or score are never selected.
    score_col
        Any score: ``propensity``, ``engagement_score``, or a planted ``true_propensity`` in tests.
    threshold, top_q
        Exactly one: select voters whose score is >= ``threshold``, or the top ``top_q`` share (0 < q <= 1; ties
        at the cut are all kept).
    algorithm, mode, min_cluster_size, min_samples, eps_m, cell_resolution, min_distance_m
        See :class:`MicroGeoClusterer`. ``min_samples`` does not count the voter itself.
    enrichment_alpha, enrichment_k
        Cluster only the selected voters around whom high-likelihood voters are over-represented: among their
        ``enrichment_k`` nearest scored voters, more than the overall share would give, at one-sided binomial
        p-value <= ``enrichment_alpha`` (:func:`enrichment_pvalues`). The others stay selected and are noise.
        Without it a dense neighbourhood of ordinary voters holds enough high scorers to form a cluster: density
        of people, not of engagement. ``None`` clusters every selected voter.
    polygon_resolution
        H3 resolution of the polygons (default ``cell_resolution``).
    k_min
        Micro-geos with fewer voters are flagged ``suppressed`` and their counts and scores set to null.
    bootstrap
        Resamples for ``bootstrap_ari`` (0 skips it; each costs one fit).
    random_state
        Seed of the bootstrap resamples.
    truth_col
        Planted pocket column (``-1`` outside pockets); when present, ``planted_ari`` and ``pockets_recovered``.
    metric_crs
        CRS to cluster in (metres); default the UTM zone of the voters (``estimate_utm_crs``).

    Returns
    -------
    voters : GeoDataFrame
        A copy (same index, rows, CRS) with ``micro_geo`` (Int64): the cluster of each selected voter, ``-1`` for
        selected voters in no cluster (noise), null for voters not selected.
    micro_geos : GeoDataFrame
        One row per cluster (EPSG:4326): ``micro_geo`` (Int64, 0 = most voters), ``voters``, ``households``
        (Int64), ``mean_score``, ``median_score``, ``expected`` (float64, sum of scores: expected voters or
        supporters when the score is a probability), ``n_precincts`` (Int64), ``precinct_ids`` (string,
        ``;``-separated), ``cells`` (Int64, H3 cells in the polygon), ``area_m2``, ``voters_per_km2`` (float64),
        ``suppressed`` (bool; counts and scores null when True) and ``geometry`` (Polygon or MultiPolygon).
    metrics : dict
        Selection counts, ``clusters``, ``noise_share``, ``validity``, ``bootstrap_ari`` (mean; per resample
        in ``bootstrap_aris``), timings, and with planted truth ``planted_ari``, ``pockets_recovered`` (share),
        ``pockets``, ``pocket_purity``. See the module docstring for the definitions.

    Raises
    ------
    SchemaError
        ``voters`` not a GeoDataFrame in EPSG:4326, or the score column missing or not numeric.
    ConfigError
        Bad options (both or neither of threshold and top_q, unknown algorithm, ...).

    Examples
    --------
    >>> from geo_segment.synth import generate_population
    >>> pop = generate_population(20_000, seed=7)
    >>> v = gpd.GeoDataFrame(pop.voters, geometry=gpd.points_from_xy(pop.voters.lng, pop.voters.lat), crs=4326)
    >>> out, geos, m = cluster_voters(v, score_col="true_propensity", threshold=0.8, min_cluster_size=12,
    ...                               bootstrap=0)
    >>> m["pockets_recovered"] >= 0.9  # doctest: +SKIP
    True
    """
    _check_voters(voters, score_col, threshold, top_q)
    if enrichment_alpha is not None and not (0 < enrichment_alpha < 1):
        raise ConfigError("enrichment_alpha is a p-value threshold", expected="None or 0 < alpha < 1",
                          found=repr(enrichment_alpha), fix="use 0.001, or None to cluster every selected voter")
    t0 = time.perf_counter()
    lng, lat = _voter_xy(voters)
    score = voters[score_col].to_numpy("float64", na_value=np.nan)
    has_xy = np.isfinite(lng) & np.isfinite(lat)
    usable = has_xy & np.isfinite(score)
    if top_q is not None:
        cut = float(np.quantile(score[usable], 1.0 - top_q)) if usable.any() else float("inf")
    else:
        cut = float(threshold)  # type: ignore[arg-type]
    selected = usable & (score >= cut)
    est = MicroGeoClusterer(algorithm=algorithm, min_cluster_size=min_cluster_size, min_samples=min_samples,
                            eps_m=eps_m, mode=mode, cell_resolution=cell_resolution, min_distance_m=min_distance_m,
                            random_state=random_state)
    est._check_params()
    poly_res = _h3.check_resolution(polygon_resolution if polygon_resolution is not None else cell_resolution)
    crs = CRS.from_user_input(metric_crs) if metric_crs is not None else _metric_crs(lng[has_xy], lat[has_xy])
    if not crs.is_projected:
        raise ConfigError("metric_crs must be a projected CRS in metres", found=crs.name,
                          fix="leave metric_crs=None for the UTM zone of the data")
    to_metres = Transformer.from_crs(S.CRS_STORAGE, crs, always_xy=True)
    t_enrich = time.perf_counter()
    if enrichment_alpha is not None and selected.any():
        use = np.flatnonzero(usable)
        ux, uy = to_metres.transform(lng[use], lat[use])
        p_values = enrichment_pvalues(np.column_stack([ux, uy]), selected[use], k=enrichment_k)
        enriched = np.zeros(len(voters), dtype=bool)
        enriched[use] = selected[use] & (p_values <= enrichment_alpha)
    else:
        enriched = selected.copy()
    enrich_seconds = time.perf_counter() - t_enrich
    sel = np.flatnonzero(enriched)
    x, y = to_metres.transform(lng[sel], lat[sel])
    X = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    cells = _h3.latlng_to_cells(lat[sel], lng[sel], cell_resolution) if mode == "cell" else None
    t_fit = time.perf_counter()
    est.fit(X, cells=cells)
    fit_seconds = time.perf_counter() - t_fit
    labels = est.labels_

    t_boot = time.perf_counter()
    if bootstrap and est.n_clusters_:
        aris = bootstrap_stability(est, X, cells=cells, n_resamples=bootstrap, random_state=random_state,
                                  labels=labels)
    else:
        aris = np.zeros(0)
    boot_seconds = time.perf_counter() - t_boot

    out = voters.copy()
    micro = pd.array([pd.NA] * len(voters), dtype="Int64")
    micro[np.flatnonzero(selected)] = -1
    micro[sel] = labels
    out[S.MICRO_GEO] = pd.Series(micro, index=voters.index)

    clustered = labels >= 0
    members = pd.DataFrame({"label": labels[clustered], "score": score[sel][clustered]})
    if S.HOUSEHOLD_ID in voters.columns:
        members["household"] = voters[S.HOUSEHOLD_ID].to_numpy()[sel][clustered]
    if S.PRECINCT_ID in voters.columns:
        members["precinct"] = voters[S.PRECINCT_ID].to_numpy()[sel][clustered]
    geoms, n_cells = _polygons(lng[sel][clustered], lat[sel][clustered], labels[clustered], est.n_clusters_,
                               poly_res)
    micro_geos = _micro_geo_table(members, geoms, n_cells, est.n_clusters_, crs, k_min)

    n_sel = int(selected.sum())
    metrics: dict[str, Any] = {
        "algorithm": algorithm, "mode": mode, "score_col": score_col, "threshold": cut, "top_q": top_q,
        "min_cluster_size": min_cluster_size, "min_samples": est._check_params()[1], "eps_m": eps_m,
        "cell_resolution": cell_resolution if mode == "cell" else None, "polygon_resolution": poly_res,
        "min_distance_m": min_distance_m, "metric_crs": crs.to_string(),
        "voters": len(voters), "without_coordinates": int((~has_xy).sum()),
        "without_score": int((has_xy & ~np.isfinite(score)).sum()), "selected": n_sel,
        "enrichment_alpha": enrichment_alpha, "enrichment_k": enrichment_k if enrichment_alpha is not None else None,
        "enriched": len(sel), "locations": est.n_locations_, "clusters": est.n_clusters_,
        "clustered_voters": int(clustered.sum()), "noise_voters": n_sel - int(clustered.sum()),
        "noise_share": 1.0 - float(clustered.sum()) / n_sel if n_sel else float("nan"),
        "suppressed_clusters": int(micro_geos[SUPPRESSED].sum()),
        "validity": float(est.validity_),
        "bootstrap_ari": float(np.mean(aris)) if len(aris) else float("nan"),
        "bootstrap_ari_min": float(np.min(aris)) if len(aris) else float("nan"),
        "bootstrap_aris": [round(float(a), 4) for a in aris],
        "bootstrap_resamples": int(len(aris)),
        "enrichment_seconds": round(enrich_seconds, 3), "fit_seconds": round(fit_seconds, 3),
        "bootstrap_seconds": round(boot_seconds, 3),
    }
    if truth_col is not None and truth_col in voters.columns:
        truth = voters[truth_col].to_numpy("float64", na_value=-1).astype(np.int64)
        lab_all = np.full(len(voters), -1, dtype=np.int64)
        lab_all[sel] = labels
        metrics.update(planted_truth_scores(lab_all, truth, selected=selected))
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("cluster: %d selected voters, %d micro-geos, noise %.2f", n_sel, est.n_clusters_,
             metrics["noise_share"])
    return out, micro_geos, metrics


def cluster_stage(voters: gpd.GeoDataFrame, **options: Any) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame,
                                                                       StageRecord]:
    """:func:`cluster_voters` with a stage record (rows in = rows out; nothing is rejected).

    ``options`` are :func:`cluster_voters`' keyword options; the record's metrics are its metrics without the
    per-resample list.
    """
    t0 = time.perf_counter()
    out, micro_geos, metrics = cluster_voters(voters, **options)
    record = StageRecord("cluster", rows_in=len(voters), rows_out=len(out), rows_rejected=0,
                         seconds=round(time.perf_counter() - t0, 3),
                         metrics={k: v for k, v in metrics.items() if k != "bootstrap_aris"})
    return out, micro_geos, record
