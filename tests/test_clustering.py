"""Micro-geographies: the weighted HDBSCAN* engine on hand-drawn fixtures, against the hdbscan package and
scikit-learn, the GeoDataFrame stage's contract, and the planted-pocket acceptance on generated voters."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

import geo_segment.clustering as C
from geo_segment import _h3
from geo_segment import schema as S
from geo_segment.clustering import (
    MICRO_GEO_COLUMNS,
    MicroGeoClusterer,
    bootstrap_stability,
    cluster_stage,
    cluster_voters,
    enrichment_pvalues,
    planted_truth_scores,
    relative_validity,
)
from geo_segment.errors import ConfigError, SchemaError

ROOT = Path(__file__).resolve().parents[1]


def grid(x0: float, y0: float, nx: int, ny: int, step: float = 10.0) -> list[tuple[float, float]]:
    return [(x0 + i * step, y0 + j * step) for j in range(ny) for i in range(nx)]


# Three tight blocks of voters and six loners far out, in metres (x to scale, one character = 25 m; rows not):
#
#          y=700                              n                      (100, 700)
#          y=400                                              n      (500, 400)
#          y=300          n                                          (-400, 300)
#     y=150..180                            CCC                      C: 5 x 4 voters 10 m apart (20), x 60..100
#        y=0..20  n                       AA    BB                   A: 5 x 3 (15), x 0..40; B: 4 x 3 (12), x 150..180
#         y=-300                                                  n  (600, -300)
#         y=-400              n                                      (-300, -400)
#                 |           |           |           |           |
#             x=  -600      -300          0          300         600
#
# A (x 0..40), B (x 150..180) and C (x 60..100, y 150..180) are 110-130 m apart; every loner is at least 350 m
# from everything, so it joins the tree only above the blocks' merge and is noise (a point that joins a
# cluster's branch before the clusters merge is a member of that cluster in HDBSCAN*, however far out it lies).
A = grid(0, 0, 5, 3)
B = grid(150, 0, 4, 3)
CC = grid(60, 150, 5, 4)
NOISE = [(100.0, 700.0), (500.0, 400.0), (-400.0, 300.0), (-600.0, 0.0), (600.0, -300.0), (-300.0, -400.0)]
BLOBS = np.array(A + B + CC + NOISE, dtype=np.float64)
#: Clusters are numbered by decreasing voters: C (20) is 0, A (15) is 1, B (12) is 2.
EXPECTED = np.array([1] * 15 + [2] * 12 + [0] * 20 + [-1] * 6)


def random_blobs(seed: int, n: int = 1200, *, round_to: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 4000, (6, 2))
    pts = np.vstack([centres[rng.integers(0, 6, n // 2)] + rng.normal(0, rng.uniform(40, 150), (n // 2, 2)),
                     rng.uniform(0, 4000, (n - n // 2, 2))])
    return np.round(pts, round_to) if round_to is not None else pts


# --- the estimator on the hand-drawn fixture -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"min_cluster_size": 8, "min_samples": 5},
    {"min_cluster_size": 10},
    {"algorithm": "dbscan", "min_cluster_size": 8, "min_samples": 4, "eps_m": 15.0},
])
def test_three_blobs_pinned_labels(kwargs: dict) -> None:
    est = MicroGeoClusterer(**kwargs).fit(BLOBS)
    assert est.labels_.tolist() == EXPECTED.tolist()
    assert est.n_clusters_ == 3
    assert est.cluster_sizes_.tolist() == [20, 15, 12]
    assert est.labels_.dtype == np.int64


def test_fit_returns_self_and_is_deterministic() -> None:
    est = MicroGeoClusterer(min_cluster_size=8)
    assert est.fit(BLOBS) is est
    again = MicroGeoClusterer(min_cluster_size=8).fit(BLOBS)
    assert np.array_equal(est.labels_, again.labels_)
    assert est.get_params()["min_cluster_size"] == 8  # scikit-learn estimator protocol


def test_fit_predict_and_clone() -> None:
    from sklearn.base import clone

    est = MicroGeoClusterer(min_cluster_size=8)
    assert est.fit_predict(BLOBS).tolist() == EXPECTED.tolist()
    assert clone(est).get_params() == est.get_params()


def test_rows_of_weight_k_equal_k_repeated_rows() -> None:
    """A location of weight k is exactly k voters standing on it."""
    rng = np.random.default_rng(3)
    locs = random_blobs(1, 500)
    w = rng.integers(1, 5, len(locs))
    weighted = MicroGeoClusterer(min_cluster_size=15, min_samples=6).fit(locs, sample_weight=w)
    repeated = MicroGeoClusterer(min_cluster_size=15, min_samples=6).fit(np.repeat(locs, w, axis=0))
    assert np.array_equal(np.repeat(weighted.labels_, w), repeated.labels_)
    assert weighted.n_clusters_ > 2


def test_weight_zero_rows_are_left_out() -> None:
    w = np.ones(len(BLOBS), dtype=int)
    w[:3] = 0
    est = MicroGeoClusterer(min_cluster_size=8, min_samples=5).fit(BLOBS, sample_weight=w)
    assert (est.labels_[:3] == -1).all()
    assert (est.row_location_[:3] == -1).all()
    assert est.labels_[3:].tolist() == EXPECTED[3:].tolist()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), dx=st.floats(-1e5, 1e5), dy=st.floats(-1e5, 1e5))
def test_labels_ignore_row_order_and_translation(seed: int, dx: float, dy: float) -> None:
    X = random_blobs(seed % 7, 400, round_to=0)  # rounded: many co-located voters and ties
    perm = np.random.default_rng(seed).permutation(len(X))
    base = MicroGeoClusterer(min_cluster_size=12, min_samples=5).fit(X).labels_
    moved = MicroGeoClusterer(min_cluster_size=12, min_samples=5).fit(X[perm] + [round(dx), round(dy)]).labels_
    assert np.array_equal(base[perm], moved)
    assert len(moved) == len(X)


# --- agreement with the reference implementations --------------------------------------------------------------

def _reference_labels(est: MicroGeoClusterer, min_cluster_size: int) -> np.ndarray:
    """The hdbscan package's own tree code (label, condense_tree, compute_stability, get_clusters) on the voters
    expanded from the estimator's weighted locations and spanning tree: k voters at a location meet each other at
    its core distance, before any edge of equal weight."""
    hl = pytest.importorskip("hdbscan._hdbscan_linkage")
    ht = pytest.importorskip("hdbscan._hdbscan_tree")
    w = est.location_weights_
    core = est.core_distances_
    a, b, d = est.mst_
    start = np.cumsum(w) - w
    rep = np.repeat(np.arange(len(w)), w - 1)
    offset = np.arange(len(rep)) - np.repeat(np.cumsum(w - 1) - (w - 1), w - 1)
    chain = np.column_stack([start[rep] + offset, start[rep] + offset + 1, core[rep]])
    links = np.column_stack([start[a], start[b], d])
    edges = np.vstack([chain, links]).astype(np.float64)
    kind = np.r_[np.zeros(len(chain)), np.ones(len(links))]
    edges = np.ascontiguousarray(edges[np.lexsort((kind, edges[:, 2]))])
    tree = ht.condense_tree(hl.label(edges), min_cluster_size)
    labels, _, _ = ht.get_clusters(tree, ht.compute_stability(tree), "eom", False, False, 0.0, 0)
    return np.asarray(labels)[start]


@pytest.mark.parametrize("seed,weights", [(0, False), (1, True), (2, True)])
def test_same_clusters_as_the_hdbscan_packages_tree_code(seed: int, weights: bool) -> None:
    X = random_blobs(seed, 1500, round_to=0)
    w = np.random.default_rng(seed).integers(1, 4, len(X)) if weights else None
    est = MicroGeoClusterer(min_cluster_size=15, min_samples=6, min_distance_m=1e-6).fit(X, sample_weight=w)
    ref = _reference_labels(est, 15)
    assert est.n_clusters_ >= 3
    assert adjusted_rand_score(ref, est.location_labels_) == 1.0
    assert np.array_equal(ref < 0, est.location_labels_ < 0)


def test_close_to_the_hdbscan_package_and_sklearn_on_raw_points() -> None:
    """Same data, same density parameters: scikit-learn counts the point itself (min_samples + 1). Equal up to
    ties in mutual reachability, which each implementation breaks its own way."""
    hdbscan = pytest.importorskip("hdbscan")
    from sklearn.cluster import HDBSCAN

    X = random_blobs(4, 2000)
    ours = MicroGeoClusterer(min_cluster_size=20, min_samples=10, min_distance_m=1e-6).fit(X).labels_
    pkg = hdbscan.HDBSCAN(min_cluster_size=20, min_samples=10, approx_min_span_tree=False).fit(X).labels_
    skl = HDBSCAN(min_cluster_size=20, min_samples=11, copy=True).fit(X).labels_
    assert adjusted_rand_score(pkg, ours) > 0.95
    assert adjusted_rand_score(skl, ours) > 0.95
    assert MicroGeoClusterer(min_cluster_size=10, min_samples=4).fit(BLOBS).labels_.tolist() == EXPECTED.tolist()
    skl_blobs = HDBSCAN(min_cluster_size=10, min_samples=5, copy=True).fit(BLOBS).labels_
    assert adjusted_rand_score(skl_blobs, EXPECTED) == 1.0


def test_spanning_tree_of_the_candidate_graph_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    X = random_blobs(5, 2500, round_to=0)
    w = np.random.default_rng(5).integers(1, 4, len(X))
    fast = MicroGeoClusterer(min_cluster_size=15, min_samples=8).fit(X, sample_weight=w)
    assert fast.n_locations_ > C.EXACT_MAX_LOCATIONS  # k-NN + Delaunay candidates
    monkeypatch.setattr(C, "EXACT_MAX_LOCATIONS", 10**6)  # every pair
    exact = MicroGeoClusterer(min_cluster_size=15, min_samples=8).fit(X, sample_weight=w)
    assert fast.mst_[2].sum() == pytest.approx(exact.mst_[2].sum(), rel=1e-12)
    assert np.array_equal(fast.labels_, exact.labels_)


def test_relative_validity_matches_the_hdbscan_package() -> None:
    hdbscan = pytest.importorskip("hdbscan")
    X = random_blobs(6, 1500)
    model = hdbscan.HDBSCAN(min_cluster_size=20, min_samples=8, gen_min_span_tree=True).fit(X)
    mst = model._min_spanning_tree
    ours = relative_validity(model.labels_, np.ones(len(X)), mst[:, 0].astype(int), mst[:, 1].astype(int),
                             mst[:, 2], np.zeros(len(X)))
    assert ours == pytest.approx(model.relative_validity_, rel=1e-12)
    assert -1 <= MicroGeoClusterer(min_cluster_size=8).fit(BLOBS).validity_ <= 1


def test_eps_merges_clusters_born_closer_than_eps() -> None:
    # two blocks 60 m apart (their gap is a density valley) and a third 500 m away
    X = np.array(grid(0, 0, 5, 4) + grid(100, 0, 5, 4) + grid(600, 0, 5, 4), dtype=float)
    apart = MicroGeoClusterer(min_cluster_size=10, min_samples=5).fit(X)
    merged = MicroGeoClusterer(min_cluster_size=10, min_samples=5, eps_m=100.0).fit(X)
    assert apart.n_clusters_ == 3
    assert merged.n_clusters_ == 2
    assert len(set(merged.labels_[:40].tolist())) == 1


def test_dbscan_drops_clusters_below_min_cluster_size() -> None:
    est = MicroGeoClusterer(algorithm="dbscan", eps_m=15.0, min_samples=4, min_cluster_size=13).fit(BLOBS)
    assert est.n_clusters_ == 2  # B (12 voters) is noise now
    assert (est.labels_[15:27] == -1).all()


# --- cell mode ---------------------------------------------------------------------------------------------------

def _lonlat(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres near Providence (UTM 19N) to lon/lat."""
    from pyproj import Transformer

    lng, lat = Transformer.from_crs(32619, 4326, always_xy=True).transform(X[:, 0] + 300_000, X[:, 1] + 4_633_000)
    return np.asarray(lng), np.asarray(lat)


def test_cell_mode_clusters_cells_weighted_by_voters() -> None:
    lng, lat = _lonlat(BLOBS * 3)  # blocks 30 m apart voters, H3 res-11 cells of about 25 m
    cells = _h3.latlng_to_cells(lat, lng, 12)  # finer cells are accepted: their parents are used
    est = MicroGeoClusterer(mode="cell", cell_resolution=11, min_cluster_size=8, min_samples=5).fit(BLOBS * 3,
                                                                                                    cells=cells)
    parents = _h3.cell_parents(cells, 11)
    assert est.n_locations_ == len(np.unique(parents))
    assert est.location_weights_.sum() == len(BLOBS)
    for cell in np.unique(parents):  # one label per cell
        assert len(set(est.labels_[parents == cell].tolist())) == 1
    assert adjusted_rand_score(EXPECTED, est.labels_) == 1.0


def test_cell_mode_needs_cells_at_or_below_its_resolution() -> None:
    with pytest.raises(ConfigError, match="cell mode needs the rows' H3 cells"):
        MicroGeoClusterer(mode="cell").fit(BLOBS)
    lng, lat = _lonlat(BLOBS)
    with pytest.raises(ConfigError, match="coarser than cell_resolution"):
        MicroGeoClusterer(mode="cell", cell_resolution=10).fit(BLOBS, cells=_h3.latlng_to_cells(lat, lng, 9))


# --- checks --------------------------------------------------------------------------------------------------

def test_bad_parameters_are_reported_together() -> None:
    est = MicroGeoClusterer(algorithm="optics", mode="grid", min_cluster_size=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"3 bad parameters: algorithm was 'optics'.*mode was 'grid'.*"
                                          r"min_cluster_size was 1"):
        est.fit(BLOBS)
    with pytest.raises(ConfigError, match="algorithm 'dbscan' needs eps_m"):
        MicroGeoClusterer(algorithm="dbscan").fit(BLOBS)
    with pytest.raises(ValueError, match="expected shape \\(n, 2\\)"):  # also a built-in ValueError
        MicroGeoClusterer().fit(np.zeros((5, 3)))
    with pytest.raises(ConfigError, match="missing or infinite coordinates"):
        MicroGeoClusterer().fit(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ConfigError, match="non-negative whole number"):
        MicroGeoClusterer().fit(BLOBS, sample_weight=np.full(len(BLOBS), 0.5))


def test_too_few_voters_is_all_noise() -> None:
    est = MicroGeoClusterer(min_cluster_size=25).fit(BLOBS[:20])
    assert est.n_clusters_ == 0
    assert (est.labels_ == -1).all()
    assert np.isnan(est.validity_)
    empty = MicroGeoClusterer().fit(np.zeros((0, 2)))
    assert empty.labels_.shape == (0,)


# --- quality measures ----------------------------------------------------------------------------------------

def test_bootstrap_stability_is_reproducible_and_high_on_clean_blobs() -> None:
    est = MicroGeoClusterer(min_cluster_size=8, min_samples=4, random_state=7)
    first = bootstrap_stability(est, BLOBS, n_resamples=5)
    assert first.shape == (5,)
    assert np.array_equal(first, bootstrap_stability(est, BLOBS, n_resamples=5))
    assert not np.array_equal(first, bootstrap_stability(est, BLOBS, n_resamples=5, random_state=8)) or (
        first == 1.0).all()
    assert first.mean() >= 0.8


def test_enrichment_pvalues_leave_the_voter_out() -> None:
    # 11 voters on a line 10 m apart, the first 6 high-likelihood; 89 far away, 1 of them high-likelihood
    X = np.vstack([grid(0, 0, 11, 1), grid(10_000, 0, 89, 1)])
    sel = np.zeros(100, dtype=bool)
    sel[:6] = True
    sel[50] = True
    p = enrichment_pvalues(X, sel, k=10)
    assert np.isnan(p[~sel]).all()
    # voter 0: its 10 nearest others are voters 1..10, 5 of them selected; overall share 7 %
    from scipy.stats import binom

    assert p[0] == pytest.approx(binom.sf(4, 10, 0.07))
    assert p[50] == pytest.approx(1.0)  # no selected neighbour at all


def test_planted_truth_scores_by_hand() -> None:
    #            pocket 0 (4 voters)   pocket 1 (4)     outside (4)
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1, -1, -1, -1, -1])
    micro = np.array([5, 5, 5, -1, 7, 7, -1, -1, -1, -1, 5, -1])
    selected = np.array([True] * 7 + [False] + [True] * 4)
    out = planted_truth_scores(micro, truth, selected=selected)
    # pocket 0: 3 of its 4 selected voters in cluster 5; pocket 1: 2 of its 3 selected voters in cluster 7 (and 2
    # of all 4 voters); cluster 5 also holds one outsider
    assert out["pockets"] == 2
    assert out["pockets_recovered"] == 1.0
    assert out["pockets_recovered_all"] == 1.0
    assert out["pocket_purity"] == pytest.approx((3 / 4 + 1.0) / 2)
    assert out["planted_ari"] == pytest.approx(adjusted_rand_score(truth[selected], micro[selected]))


# --- the GeoDataFrame stage ----------------------------------------------------------------------------------

def _voters_from_metres(X: np.ndarray, score: np.ndarray) -> gpd.GeoDataFrame:
    lng, lat = _lonlat(X)
    n = len(X)
    frame = pd.DataFrame({
        S.VOTER_ID: [f"V{i:05d}" for i in range(n)],
        S.HOUSEHOLD_ID: [f"H{i // 2:05d}" for i in range(n)],  # two voters per household
        S.LAT: lat, S.LNG: lng, "score": score,
        S.PRECINCT_ID: np.where(np.asarray(X)[:, 0] < 100, "P1", "P2"),  # C straddles x = 100
    }, index=pd.RangeIndex(100, 100 + n))
    for col in (S.VOTER_ID, S.HOUSEHOLD_ID, S.PRECINCT_ID):
        frame[col] = frame[col].astype("str")
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lng, lat), crs=S.CRS_STORAGE)


@pytest.fixture(scope="module")
def blob_voters() -> gpd.GeoDataFrame:
    """The blobs, plus 40 low-score voters spread between them (never selected)."""
    rng = np.random.default_rng(0)
    low = rng.uniform(-150, 500, (40, 2))
    X = np.vstack([BLOBS, low])
    score = np.r_[np.full(len(BLOBS), 0.9), np.full(40, 0.1)]
    return _voters_from_metres(X, score)


def test_cluster_voters_labels_and_contract(blob_voters: gpd.GeoDataFrame) -> None:
    before = blob_voters.copy()
    out, geos, metrics = cluster_voters(blob_voters, score_col="score", threshold=0.5, min_cluster_size=8,
                                        min_samples=4, enrichment_alpha=None, bootstrap=3)
    pd.testing.assert_frame_equal(blob_voters, before)  # the input is never mutated
    assert out.index.equals(blob_voters.index) and out.crs == blob_voters.crs
    assert out[S.MICRO_GEO].dtype == "Int64"
    assert out[S.MICRO_GEO].iloc[:len(BLOBS)].tolist() == EXPECTED.tolist()
    assert out[S.MICRO_GEO].iloc[len(BLOBS):].isna().all()  # not selected
    assert metrics["selected"] == len(BLOBS) and metrics["clusters"] == 3
    assert metrics["noise_share"] == pytest.approx(6 / len(BLOBS))
    assert metrics["bootstrap_resamples"] == 3 and 0.8 <= metrics["bootstrap_ari"] <= 1
    assert "planted_ari" not in metrics


def test_micro_geos_table(blob_voters: gpd.GeoDataFrame) -> None:
    out, geos, _ = cluster_voters(blob_voters, score_col="score", threshold=0.5, min_cluster_size=8, min_samples=4,
                                  enrichment_alpha=None, bootstrap=0, polygon_resolution=12, k_min=13)
    assert list(geos.columns) == [*MICRO_GEO_COLUMNS, "geometry"]
    assert geos.crs == S.CRS_STORAGE
    assert geos[S.MICRO_GEO].tolist() == [0, 1, 2]
    for col in ("voters", "households", "n_precincts", "cells"):
        assert geos[col].dtype == "Int64"
    # B has 12 voters < k_min 13: flagged, counts and scores null, polygon kept
    assert geos["suppressed"].tolist() == [False, False, True]
    assert geos["voters"].tolist()[:2] == [20, 15] and pd.isna(geos["voters"].iloc[2])
    assert pd.isna(geos["mean_score"].iloc[2]) and pd.isna(geos["voters_per_km2"].iloc[2])
    assert geos["expected"].iloc[0] == pytest.approx(20 * 0.9)
    assert geos["median_score"].iloc[1] == pytest.approx(0.9)
    assert geos["households"].iloc[0] == out.loc[out[S.MICRO_GEO] == 0, S.HOUSEHOLD_ID].nunique()
    assert geos["precinct_ids"].tolist() == ["P1;P2", "P1", "P2"] and geos["n_precincts"].tolist() == [2, 1, 1]
    # polygons: valid, disjoint, holding their voters
    g = geos.geometry.values
    assert shapely.is_valid(g).all() and not shapely.is_empty(g).any()
    for i, j in itertools.combinations(range(len(g)), 2):
        assert shapely.area(shapely.intersection(g[i], g[j])) == 0
    members = out[out[S.MICRO_GEO] == 0]
    assert shapely.contains_xy(g[0], members[S.LNG], members[S.LAT]).all()
    assert geos["area_m2"].iloc[0] == pytest.approx(geos.to_crs(32619).area.iloc[0], rel=1e-6)
    assert geos["voters_per_km2"].iloc[0] == pytest.approx(20 / (geos["area_m2"].iloc[0] / 1e6))


def test_polygons_are_cell_unions_without_slivers() -> None:
    # voters on a ring about 130 m across: the res-10 cells they stand in surround an empty middle, which is filled;
    # the union of the hexagons leaves no sliver or gap
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    lat = 41.82 + 0.0012 * np.cos(angles)
    lng = -71.41 + 0.0016 * np.sin(angles)
    geoms, n_cells = C._polygons(lng, lat, np.zeros(len(lat), dtype=np.int64), 1, 10)
    poly = geoms[0]
    hexes = _h3.cell_polygons(np.unique(_h3.latlng_to_cells(lat, lng, 10)))
    assert n_cells[0] == len(hexes)
    assert shapely.is_valid(poly) and shapely.get_type_id(poly) == 3  # one Polygon
    assert shapely.get_num_interior_rings(poly) == 0
    assert shapely.get_num_interior_rings(shapely.union_all(hexes)) == 1  # the middle, filled above
    union = shapely.union_all(hexes)
    hole = shapely.polygons(shapely.get_interior_ring(union, 0))
    # the cells plus the filled middle, equal up to the 1 cm snapping grid
    assert shapely.area(shapely.difference(union, poly)) < 1e-4 * shapely.area(poly)
    assert shapely.area(shapely.difference(poly, union)) == pytest.approx(shapely.area(hole), rel=1e-3)


def test_top_q_and_missing_values(blob_voters: gpd.GeoDataFrame) -> None:
    v = blob_voters.copy()
    v.loc[v.index[0], "score"] = np.nan
    v.loc[v.index[1], [S.LAT, S.LNG]] = np.nan
    out, _, metrics = cluster_voters(v, score_col="score", top_q=0.5, min_cluster_size=8, min_samples=4,
                                     enrichment_alpha=None, bootstrap=0)
    assert pd.isna(out[S.MICRO_GEO].iloc[0]) and pd.isna(out[S.MICRO_GEO].iloc[1])
    assert metrics["without_score"] == 1 and metrics["without_coordinates"] == 1
    assert metrics["selected"] == len(BLOBS) - 2  # the top half are the blobs' voters (ties at the cut kept)


def test_empty_input_gives_empty_outputs(blob_voters: gpd.GeoDataFrame) -> None:
    out, geos, metrics = cluster_voters(blob_voters.iloc[:0], score_col="score", threshold=0.5, bootstrap=2)
    assert len(out) == 0 and out[S.MICRO_GEO].dtype == "Int64"
    assert len(geos) == 0 and list(geos.columns) == [*MICRO_GEO_COLUMNS, "geometry"]
    assert metrics["clusters"] == 0 and np.isnan(metrics["bootstrap_ari"])


def test_cluster_stage_record(blob_voters: gpd.GeoDataFrame) -> None:
    out, geos, record = cluster_stage(blob_voters, score_col="score", threshold=0.5, min_cluster_size=8,
                                      min_samples=4, enrichment_alpha=None, bootstrap=0)
    assert record.name == "cluster" and record.balanced and record.rows_out == len(blob_voters)
    assert record.metrics["clusters"] == 3 and "bootstrap_aris" not in record.metrics


def test_cluster_voters_input_errors(blob_voters: gpd.GeoDataFrame) -> None:
    with pytest.raises(SchemaError, match=r"missing columns \['propensity'\]"):
        cluster_voters(blob_voters, score_col="propensity", threshold=0.5)
    with pytest.raises(SchemaError, match="expected CRS EPSG:4326"):
        cluster_voters(blob_voters.to_crs(32619), score_col="score", threshold=0.5)
    with pytest.raises(SchemaError, match="must be a GeoDataFrame"):
        cluster_voters(pd.DataFrame(blob_voters), score_col="score", threshold=0.5)
    with pytest.raises(ConfigError, match="exactly one of threshold and top_q"):
        cluster_voters(blob_voters, score_col="score", threshold=0.5, top_q=0.1)
    with pytest.raises(ConfigError, match="top_q is a share"):
        cluster_voters(blob_voters, score_col="score", top_q=20)
    with pytest.raises(SchemaError, match="expected a numeric score"):
        cluster_voters(blob_voters.assign(score="high"), score_col="score", threshold=0.5)
    with pytest.raises(ConfigError, match="enrichment_alpha is a p-value"):
        cluster_voters(blob_voters, score_col="score", threshold=0.5, enrichment_alpha=2.0)


# --- acceptance on generated voters (the planted truth) ------------------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> gpd.GeoDataFrame:
    """20,000 generated voters written in the NC layout and read back (vendor geocodes, failures included),
    joined to the generator's truth (true_propensity, pocket_id)."""
    from geo_segment import read_voter_file
    from geo_segment.synth import generate_population, write_layout

    folder = tmp_path_factory.mktemp("nc20k")
    paths = write_layout(generate_population(20_000, seed=2026), "nc", folder, seed=2026)
    voters = read_voter_file(paths["voters"], layout="nc", geocodes=paths["geocodes"]).voters
    truth = pd.read_parquet(paths["truth"], columns=["voter_id", "true_propensity", "pocket_id"])
    return voters.merge(truth, on=S.VOTER_ID, how="left")


#: the setting documented in docs/micro-geographies.md for 20k-voter generated counties
ACCEPTANCE: dict[str, Any] = {"score_col": "true_propensity", "top_q": 0.2, "min_cluster_size": 8, "eps_m": 200.0,
              "bootstrap": 10, "random_state": 0}


@pytest.mark.parametrize("mode", ["point", "cell"])
def test_planted_pockets_are_recovered(generated: gpd.GeoDataFrame, mode: Literal["point", "cell"]) -> None:
    out, geos, m = cluster_voters(generated, mode=mode, **ACCEPTANCE)
    assert m["planted_ari"] >= 0.8, m
    assert m["pockets_recovered"] >= 0.9, m
    assert m["bootstrap_ari"] >= 0.8, m
    assert m["validity"] > 0.5
    assert shapely.is_valid(geos.geometry.values).all()
    # the ARI really is over the selected voters, noise and outside-pocket voters each one label
    sel = out[S.MICRO_GEO].notna()
    assert m["planted_ari"] == pytest.approx(adjusted_rand_score(
        out.loc[sel, "pocket_id"].astype(int), out.loc[sel, S.MICRO_GEO].astype(int)))


def test_without_the_enrichment_test_population_density_shows_up(generated: gpd.GeoDataFrame) -> None:
    """Plain density clustering of high scorers also finds crowded blocks of ordinary voters (why the
    enrichment test is on by default)."""
    _, _, plain = cluster_voters(generated, **{**ACCEPTANCE, "enrichment_alpha": None, "bootstrap": 0})
    _, _, enriched = cluster_voters(generated, **{**ACCEPTANCE, "bootstrap": 0})
    assert plain["clusters"] > enriched["clusters"]
    assert plain["planted_ari"] < enriched["planted_ari"] - 0.2
