"""Deterministic state-size synthetic data for the join benchmark: about 3,000 precincts and millions of voters.

Usage: python benchmarks/_state_data.py [--voters 1000000] [--seed 1]   (writes the cache and prints a summary)

Precincts tile a ~300 km x 250 km "state" in EPSG:4326 (lng -81.9..-78.5, lat 35.0..37.2):

1. Precinct seeds and about a million "fine" points are drawn from the same density: towns (Gaussian clusters of
   various sizes and weights) over a uniform rural background, so town precincts are small and rural ones large,
   and every precinct is made of a similar number of fine cells.
2. The fine points get a Voronoi tessellation (``shapely.voronoi_polygons``); each fine cell goes to the seed with
   the smallest *noisy* distance ``d * (1 + a * f(p))``, where ``f`` is a smooth random field (sums of plane waves
   at 1.5-12 km) drawn per seed group, so borders wiggle like roads and streams rather than straight bisectors.
3. The fine cells are dissolved per seed with ``shapely.coverage_union_all``: shared edges stay bit-identical, with
   no gaps and no overlaps (checked with ``shapely.coverage_is_valid``). Fine cells whose generator lies outside
   the box are dropped, so the state's outer border is jagged at the fine scale, and no cell is ever clipped
   (clipping would recompute the vertices of shared edges independently on each side).

Ids are ``P00001``.. assigned in random order and the rows are shuffled, so row order, id order and spatial order
all differ. Precincts holding several parts (an exclave cut off by the noisy border) are kept as MultiPolygons.

Voters live in buildings drawn from the town/background density (1-5 voters per household, 15 % multi-unit
buildings), rows sorted by ``voter_id``. About 1 % of buildings have no coordinates (``geocoded`` False, null
geometry), 0.5 % are pushed up to 400 m outside the box (drift, water), 1,000 voters sit exactly on precinct
vertices (shared ones are on two or three precincts) and 1,000 on the floating-point midpoints of precinct edges
(on the edge or within rounding of it: a robustness case for the exact tests).

Everything is cached as GeoParquet under ``benchmarks/data/state_<seed>/``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

ID_COL = "PREC_ID"
CRS = "EPSG:4326"
#: box of the state, in km from its south-west corner, and its anchor in degrees
WIDTH_KM, HEIGHT_KM = 300.0, 250.0
LNG0, LAT0 = -81.87, 34.975
KM_PER_DEG_LAT = 110.95
KM_PER_DEG_LNG = 111.32 * np.cos(np.radians(LAT0 + HEIGHT_KM / KM_PER_DEG_LAT / 2))
PARTIES = np.array(["DEM", "REP", "UNA", "LIB", "GRE"], dtype=object)


def to_lnglat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """km in the state's frame to degrees (elementwise, so equal inputs give bit-identical outputs)."""
    return LNG0 + x / KM_PER_DEG_LNG, LAT0 + y / KM_PER_DEG_LAT


def bbox_lnglat() -> tuple[float, float, float, float]:
    lng1, lat1 = to_lnglat(np.array([WIDTH_KM]), np.array([HEIGHT_KM]))
    return LNG0, LAT0, float(lng1[0]), float(lat1[0])


# --- density: towns over a rural background ---------------------------------------------------------------------

class Density:
    """A mixture of Gaussian towns and a uniform background over the box (km), seeded."""

    def __init__(self, seed: int, n_towns: int = 140, rural: float = 0.25) -> None:
        rng = np.random.default_rng([seed, 0])
        self.cx = rng.uniform(5, WIDTH_KM - 5, n_towns)
        self.cy = rng.uniform(5, HEIGHT_KM - 5, n_towns)
        w = rng.pareto(1.2, n_towns) + 0.05
        w = np.minimum(w, np.sort(w)[-3])  # no single metropolis dominating
        self.w = w / w.sum()
        self.sigma = 0.8 + 6.0 * np.sqrt(self.w / self.w.max())  # 0.8 km villages .. ~7 km cities
        self.rural = rural

    def pdf(self, x: np.ndarray, y: np.ndarray, *, rural: float | None = None) -> np.ndarray:
        """Probability density (per km²) of :meth:`sample` without margin, at (x, y)."""
        rural = self.rural if rural is None else rural
        out = np.full(len(x), rural / (WIDTH_KM * HEIGHT_KM))
        for cx, cy, w, s in zip(self.cx, self.cy, self.w, self.sigma, strict=True):
            out += (1 - rural) * w / (2 * np.pi * s * s) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
        return out

    def sample(self, rng: np.random.Generator, n: int, *, margin: float = 0.0, rural: float | None = None) -> tuple[
        np.ndarray, np.ndarray, np.ndarray
    ]:
        """``n`` points (x, y in km) inside the box grown by ``margin`` km, and whether each came from a town."""
        rural = self.rural if rural is None else rural
        xs, ys, towns = [], [], []
        got = 0
        while got < n:
            k = int((n - got) * 1.15) + 16
            is_rural = rng.random(k) < rural
            t = rng.choice(len(self.w), size=k, p=self.w)
            x = np.where(is_rural, rng.uniform(-margin, WIDTH_KM + margin, k),
                         self.cx[t] + rng.normal(0, 1, k) * self.sigma[t])
            y = np.where(is_rural, rng.uniform(-margin, HEIGHT_KM + margin, k),
                         self.cy[t] + rng.normal(0, 1, k) * self.sigma[t])
            ok = (x >= -margin) & (x <= WIDTH_KM + margin) & (y >= -margin) & (y <= HEIGHT_KM + margin)
            xs.append(x[ok])
            ys.append(y[ok])
            towns.append(~is_rural[ok])
            got += int(ok.sum())
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n], np.concatenate(towns)[:n]


#: wavelengths (km) of the border noise: octaves from 0.3 to 19 km, two random plane waves each
WAVELENGTHS = 0.3 * 2.0 ** np.repeat(np.arange(7), 2)


def _waves(rng: np.random.Generator, n_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """Wave vectors (2, n_fields, n_waves) and phases (n_fields, n_waves) of ``n_fields`` random fields."""
    ang = rng.uniform(0, 2 * np.pi, (n_fields, len(WAVELENGTHS)))
    k = (2 * np.pi / WAVELENGTHS)[None, None, :] * np.stack([np.cos(ang), np.sin(ang)])
    return k, rng.uniform(0, 2 * np.pi, (n_fields, len(WAVELENGTHS)))


def _weights(spacing: np.ndarray) -> np.ndarray:
    """Weight of each wavelength at a local precinct spacing (km): peaks at 1.5 spacings, one octave wide."""
    z = np.log2(WAVELENGTHS[None, :] / (1.5 * spacing[:, None]))
    w = np.exp(-0.5 * z * z)
    return w / w.sum(axis=1, keepdims=True)


def make_precincts(seed: int = 1, *, n_precincts: int = 3000, n_fine: int = 2_000_000, noise: float = 0.3) -> (
    gpd.GeoDataFrame
):
    """About ``n_precincts`` precincts tiling the box (see the module docstring)."""
    rng = np.random.default_rng([seed, 1])
    dens = Density(seed)
    # seeds follow the voters less closely than the fine points, so rural precincts hold fewer voters
    sx, sy, _ = dens.sample(rng, n_precincts, rural=0.45)
    fx, fy, _ = dens.sample(rng, n_fine, margin=3.0, rural=0.45)
    fine = shapely.points(fx, fy)
    vor = shapely.get_parts(shapely.voronoi_polygons(
        shapely.multipoints(np.column_stack([fx, fy])), extend_to=shapely.box(-50, -50, WIDTH_KM + 50, HEIGHT_KM + 50),
        ordered=True))
    keep = (fx >= 0) & (fx <= WIDTH_KM) & (fy >= 0) & (fy <= HEIGHT_KM)

    # noisy nearest seed: candidates are the seeds within d1 * (1 + a) / (1 - a) of the point
    seeds = shapely.points(sx, sy)
    tree = shapely.STRtree(seeds)
    kept = np.flatnonzero(keep)
    (_, nearest), d1 = tree.query_nearest(fine[kept], return_distance=True)
    del nearest
    reach = d1 * (1 + noise) / (1 - noise) + 1e-9
    p_i, s_i = tree.query(fine[kept], predicate="dwithin", distance=reach)
    n_fields = 7
    k, phase = _waves(rng, n_fields)
    fidx = rng.integers(0, n_fields, n_precincts)
    # local precinct spacing (km) from the seeds' density sets which wavelengths matter where
    spacing = 1.0 / np.sqrt(n_precincts * dens.pdf(fx[kept], fy[kept], rural=0.45))
    wts = _weights(spacing)
    px, py = fx[kept][p_i], fy[kept][p_i]
    f = np.zeros(len(p_i))
    for j in range(len(WAVELENGTHS)):
        kk = k[:, fidx[s_i], j]
        f += wts[p_i, j] * np.sin(kk[0] * px + kk[1] * py + phase[fidx[s_i], j])
    score = np.hypot(px - sx[s_i], py - sy[s_i]) * (1 + noise * f)
    order = np.lexsort((score, p_i))
    first = np.ones(len(order), dtype=bool)
    first[1:] = p_i[order][1:] != p_i[order][:-1]
    owner = np.empty(len(kept), dtype=np.int64)
    owner[p_i[order][first]] = s_i[order][first]

    # dissolve per seed (coverage union keeps shared edges exact)
    by = np.argsort(owner, kind="stable")
    cells = vor[kept][by]
    own = owner[by]
    starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
    ends = np.r_[starts[1:], len(own)]
    geoms_km = np.array([shapely.coverage_union_all(cells[a:b]) for a, b in zip(starts, ends, strict=True)],
                        dtype=object)
    geoms = shapely.transform(geoms_km, lambda xy: np.column_stack(to_lnglat(xy[:, 0], xy[:, 1])))
    n = len(geoms)
    ids = np.array([f"P{i + 1:05d}" for i in rng.permutation(n)], dtype=object)
    frame = gpd.GeoDataFrame(
        {ID_COL: pd.Series(ids, dtype="str"),
         "NAME": pd.Series([f"Precinct {i}" for i in ids], dtype="str"),
         "fine_cells": (ends - starts).astype(np.int64)},
        geometry=geoms, crs=CRS,
    )
    return frame.iloc[rng.permutation(n)].reset_index(drop=True)


def check_precincts(precincts: gpd.GeoDataFrame) -> dict[str, object]:
    """Validity facts: coverage validity, parts, vertices."""
    g = precincts.geometry.values
    nv = shapely.get_num_coordinates(g)
    return {
        "precincts": len(g),
        "valid": bool(shapely.is_valid(g).all()),
        "coverage_valid": bool(shapely.coverage_is_valid(g)),
        "multipolygons": int((shapely.get_type_id(g) == 6).sum()),
        "with_holes": int((shapely.get_num_interior_rings(shapely.get_geometry(g, 0)) > 0).sum()),
        "vertices_total": int(nv.sum()),
        "vertices_median": int(np.median(nv)),
        "vertices_p10": int(np.percentile(nv, 10)),
        "vertices_p90": int(np.percentile(nv, 90)),
        "ids_unique": bool(precincts[ID_COL].is_unique),
    }


# --- voters ------------------------------------------------------------------------------------------------------

def _str(arr: pa.Array) -> pd.Series:
    return pd.Series(arr.to_pandas(), dtype="str")


def _ids(prefix: str, nums: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(np.asarray(nums, dtype=np.int64)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


def make_voters(n: int, precincts: gpd.GeoDataFrame, seed: int = 1, *, n_on_vertices: int = 1000,
                n_on_edges: int = 1000) -> gpd.GeoDataFrame:
    """``n`` voters in the column contract (see the module docstring), sorted by ``voter_id``."""
    rng = np.random.default_rng([seed, 2, n])
    dens = Density(seed)
    # households (1-5 voters) and buildings (85 % one household, else 2-24)
    hh_size = rng.choice(np.arange(1, 6), size=int(n / 2.0) + 100, p=[0.33, 0.36, 0.15, 0.11, 0.05])
    hh_size = hh_size[: int(np.searchsorted(np.cumsum(hh_size), n)) + 1]
    hh_size[-1] -= int(hh_size.sum() - n)
    n_hh = len(hh_size)
    units = np.where(rng.random(n_hh) < 0.85, 1, rng.integers(2, 25, n_hh))
    units = units[: int(np.searchsorted(np.cumsum(units), n_hh)) + 1]
    units[-1] -= int(units.sum() - n_hh)
    n_b = len(units)
    bldg_of_hh = np.repeat(np.arange(n_b), units)
    hh_of_voter = np.repeat(np.arange(n_hh), hh_size)
    bldg_of_voter = bldg_of_hh[hh_of_voter]

    bx, by, town = dens.sample(rng, n_b)
    # 0.5 % of buildings drift up to 400 m outside the box, across a random side
    out = rng.random(n_b) < 0.005
    side = rng.integers(0, 4, n_b)
    push = rng.uniform(0.0, 0.4, n_b)
    bx = np.where(out & (side == 0), -push, np.where(out & (side == 1), WIDTH_KM + push, bx))
    by = np.where(out & (side == 2), -push, np.where(out & (side == 3), HEIGHT_KM + push, by))
    blng, blat = to_lnglat(bx, by)
    # 1 % of buildings without coordinates
    lost = rng.random(n_b) < 0.01
    blng[lost] = np.nan
    blat[lost] = np.nan

    lng = blng[bldg_of_voter]
    lat = blat[bldg_of_voter]
    hh_key = _ids("H", hh_of_voter, 8)
    b_key = _ids("B", bldg_of_voter, 8)

    # voters exactly on precinct vertices and on midpoints of precinct edges (their own buildings)
    coords, ring = shapely.get_coordinates(shapely.get_rings(precincts.geometry.values), return_index=True)
    starts = np.flatnonzero(ring[:-1] == ring[1:])  # segment starts (a segment never joins two rings)
    n_special = min(n_on_vertices + n_on_edges, n // 10)
    nv = min(n_on_vertices, n_special)
    special = rng.choice(n, size=n_special, replace=False)
    v_pick = starts[rng.integers(0, len(starts), n_special)]
    pts = coords[v_pick].copy()
    pts[nv:] = (coords[v_pick[nv:]] + coords[v_pick[nv:] + 1]) / 2
    lng[special] = pts[:, 0]
    lat[special] = pts[:, 1]
    own_np = np.zeros(n, dtype=bool)
    own_np[special] = True
    own = pa.array(own_np)
    x_key = _ids("X", np.arange(n), 8)
    hh_key = pc.if_else(own, x_key, hh_key)
    b_key = pc.if_else(own, x_key, b_key)

    geocoded = np.isfinite(lat) & np.isfinite(lng)
    town_v = town[bldg_of_voter]
    p_dem = np.where(town_v, 0.42, 0.26)
    u = rng.random(n)
    party_code = np.where(u < p_dem, 0, np.where(u < 0.70, 1, np.where(u < 0.97, 2, np.where(u < 0.99, 3, 4))))
    party = PARTIES[party_code]

    # voter ids in random order relative to geography; rows sorted by voter id like a published voter file
    vid_num = rng.permutation(n) + 10_000_000
    order = np.argsort(vid_num, kind="stable")
    idx = pa.array(order)
    geometry = shapely.points(lng[order], lat[order])
    geometry[~geocoded[order]] = None
    frame = gpd.GeoDataFrame(
        {
            "voter_id": _str(_ids("SV", vid_num[order], 8)),
            "household_id": _str(hh_key.take(idx)),
            "building_id": _str(b_key.take(idx)),
            "party": pd.Series(party[order], dtype="str"),
            "status": pd.Series(np.where(rng.random(n) < 0.12, "I", "A")[order], dtype="str"),
            "lat": lat[order],
            "lng": lng[order],
            "geocoded": geocoded[order],
            "source_line": pd.array(np.arange(2, n + 2), dtype="Int64"),
        },
        geometry=geometry, crs=CRS,
    )
    return frame


# --- cache -------------------------------------------------------------------------------------------------------

def folder(seed: int) -> Path:
    return DATA / f"state_{seed}"


def precincts_path(seed: int = 1) -> Path:
    return folder(seed) / "precincts.parquet"


def voters_path(n: int, seed: int = 1) -> Path:
    return folder(seed) / f"voters_{n}.parquet"


def ensure(n_voters: int, seed: int = 1, *, log: bool = True) -> tuple[Path, Path]:
    """Generate (once) and cache the precincts and ``n_voters`` voters; return their paths."""
    pp, vp = precincts_path(seed), voters_path(n_voters, seed)
    pp.parent.mkdir(parents=True, exist_ok=True)
    if not pp.exists():
        t0 = time.perf_counter()
        prec = make_precincts(seed)
        facts = check_precincts(prec)
        if not (facts["valid"] and facts["coverage_valid"] and facts["ids_unique"]):
            raise RuntimeError(f"generated precincts are not a valid tiling: {facts}")
        prec.to_parquet(pp)
        if log:
            print(f"generated {len(prec):,} precincts in {time.perf_counter() - t0:.1f} s: {facts} -> {pp}")
    if not vp.exists():
        prec = gpd.read_parquet(pp)
        t0 = time.perf_counter()
        voters = make_voters(n_voters, prec, seed)
        t1 = time.perf_counter()
        voters.to_parquet(vp)
        if log:
            print(f"generated {n_voters:,} voters in {t1 - t0:.1f} s (+{time.perf_counter() - t1:.1f} s to write)"
                  f" -> {vp}")
    return pp, vp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voters", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    pp, vp = ensure(args.voters, args.seed)
    prec = gpd.read_parquet(pp)
    print(check_precincts(prec))
    v = gpd.read_parquet(vp)
    print(len(v), "voters;", int((~v["geocoded"]).sum()), "without coordinates;", v["building_id"].nunique(),
          "buildings;", v["household_id"].nunique(), "households")


if __name__ == "__main__":
    main()
