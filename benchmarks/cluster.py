"""Clustering benchmark: micro-geography density clustering at 200k and 1M points, point and cell mode, beside the
``hdbscan`` package and ``sklearn.cluster.HDBSCAN``.

Usage: python benchmarks/cluster.py [--sizes 200000,1000000] [--sklearn-max 200000] [--timeout 1200] [--seed 1]
                                    [--skip-e2e] [--skip-sample]

Points: seeded samples of the geocoded voters of the state-size synthetic data (``benchmarks/_state_data.py``,
the 5M file when cached, else the 1M file: towns over a rural background, 1-5 voters per household, multi-unit
buildings, so many voters share a point), projected to their UTM zone. Every point counts as a high-likelihood
voter: this times the clustering itself (the whole ``cluster_voters`` stage is timed in the end-to-end section).

Variants, each in a fresh subprocess so its peak RSS (``ru_maxrss``, which includes the loaded input) is its own;
imports and loading are outside the timing. Same density parameters everywhere: ``min_cluster_size=25`` and 25
*other* voters within the core distance (``min_samples=25`` in the ``hdbscan`` package and geo_segment,
``min_samples=26`` in scikit-learn, which counts the point itself).

* **geo_segment hdbscan point / cell**: ``MicroGeoClusterer(min_cluster_size=25)`` (weighted HDBSCAN*, distinct
  locations), cell mode at H3 resolution 10; its default ``min_distance_m=10`` floors core distances at 10 m (the
  libraries have no floor: part of the label differences);
* **geo_segment dbscan point / cell**: the same estimator with ``algorithm="dbscan", eps_m=100`` (scikit-learn
  DBSCAN, KD-tree, weights);
* **hdbscan package**: ``hdbscan.HDBSCAN(min_cluster_size=25, min_samples=25)`` (``boruvka_kdtree``, its default
  approximate spanning tree, all cores for core distances) on every point;
* **sklearn.cluster.HDBSCAN**: ``HDBSCAN(min_cluster_size=25, min_samples=26)`` on every point, only up to
  ``--sklearn-max`` points (at 1M it would take far more than 10 minutes: 266 s at 200k was measured for the
  issue, and it grows faster than linearly); a run that passes ``--timeout`` is recorded as such.

Each variant's labels are compared with the ``hdbscan`` package's and scikit-learn's on the same points (adjusted
Rand index; the ``hdbscan`` package's default spanning tree is approximate, scikit-learn's is exact).

Two more sections:

* **end to end** (unless ``--skip-e2e``): the whole ``cluster_voters`` stage, point and cell mode, no bootstrap,
  on (a) the 1M-voter generated county of the ingest benchmark (``benchmarks/data/nc_1000000_1/truth.parquet``:
  coordinates, planted ``true_propensity`` and ``pocket_id``), threshold 0.8: seconds, peak RSS and the
  planted-truth scores; (b) the 1M state voters, every one selected, no enrichment test: the stage (fit,
  polygons, table) at 1M high-likelihood voters;
* **sample county** (unless ``--skip-sample``): point against cell mode on ``sample_data/nc`` through
  ``read_voter_file`` and the precinct join, with the planted truth, bootstrap 10.

Prints Markdown tables and saves them to benchmarks/results/cluster.json and cluster.md with the machine's facts
and its load average (other jobs on a shared machine slow every variant alike).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _machine import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _state_data as sd  # noqa: E402

MIN_CLUSTER_SIZE = 25
MIN_SAMPLES = 25  # other voters, the point itself not counted
EPS_M = 100.0
CELL_RESOLUTION = 10
TARGETS = {"point_1m_seconds": 60.0, "cell_1m_seconds": 10.0}

# ---------------------------------------------------------------------------------------------------------------
# children
# ---------------------------------------------------------------------------------------------------------------

POINTS = r"""
import json, resource, sys, time
import numpy as np
variant, points_path, labels_path = sys.argv[1:4]
data = np.load(points_path)
X, cells = data["X"], data["cells"]
MCS, MS, EPS, RES = 25, 25, 100.0, 10
extra = {}
if variant.startswith("geo_segment"):
    from geo_segment.clustering import MicroGeoClusterer
    algo = variant.split()[1]
    mode = "cell" if variant.endswith("cell") else "point"
    est = MicroGeoClusterer(algorithm=algo, mode=mode, min_cluster_size=MCS, min_samples=MS,
                            eps_m=EPS if algo == "dbscan" else None, cell_resolution=RES)
    t0 = time.perf_counter()
    est.fit(X, cells=cells if mode == "cell" else None)
    seconds = time.perf_counter() - t0
    labels = est.labels_
    extra = {"locations": int(est.n_locations_), "validity": float(est.validity_)}
elif variant == "hdbscan package":
    import hdbscan
    t0 = time.perf_counter()
    labels = hdbscan.HDBSCAN(min_cluster_size=MCS, min_samples=MS, core_dist_n_jobs=-1).fit(X).labels_
    seconds = time.perf_counter() - t0
elif variant == "sklearn.cluster.HDBSCAN":
    from sklearn.cluster import HDBSCAN
    t0 = time.perf_counter()
    labels = HDBSCAN(min_cluster_size=MCS, min_samples=MS + 1, n_jobs=-1).fit(X).labels_
    seconds = time.perf_counter() - t0
else:
    raise SystemExit(f"unknown variant {variant}")
np.save(labels_path, np.asarray(labels, dtype=np.int64))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n_cl = int(np.asarray(labels).max()) + 1
print(json.dumps({"points": len(X), "seconds": seconds, "peak_rss_mb": rss, "clusters": n_cl,
                  "noise_share": float((np.asarray(labels) < 0).mean()), **extra}))
"""

E2E = r"""
import json, resource, sys, time
import geopandas as gpd, numpy as np, pandas as pd
source, path, mode = sys.argv[1:4]
if source == "county":
    t = pd.read_parquet(path, columns=["voter_id", "lat", "lng", "true_propensity", "pocket_id", "household_key"])
    t = t.rename(columns={"household_key": "household_id"})
    kw = {"score_col": "true_propensity", "threshold": 0.8, "eps_m": 200.0}
else:  # every geocoded state voter is high-likelihood, no enrichment test: the whole stage on 1M selected voters
    t = pd.read_parquet(path, columns=["voter_id", "household_id", "lat", "lng", "geocoded"])
    t = t[t["geocoded"]].assign(score=1.0)
    kw = {"score_col": "score", "threshold": 0.5, "enrichment_alpha": None}
v = gpd.GeoDataFrame(t, geometry=gpd.points_from_xy(t["lng"], t["lat"]), crs=4326)
from geo_segment.clustering import cluster_voters
t0 = time.perf_counter()
out, geos, m = cluster_voters(v, mode=mode, min_cluster_size=25, bootstrap=0, **kw)
seconds = time.perf_counter() - t0
keys = ("voters", "selected", "enriched", "locations", "clusters", "noise_share", "validity", "planted_ari",
        "pockets", "pockets_recovered", "pockets_recovered_all", "pocket_purity", "enrichment_seconds",
        "fit_seconds", "suppressed_clusters")
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": rss, **{k: m.get(k) for k in keys}}))
"""

SAMPLE = r"""
import json, sys, warnings
import numpy as np, pandas as pd
from sklearn.metrics import adjusted_rand_score
from geo_segment import read_precincts, read_voter_file
from geo_segment.clustering import cluster_voters
from geo_segment.join import assign_precincts
root = sys.argv[1]
r = read_voter_file(f"{root}/sample_data/nc/ncvoter.txt", layout="nc", geocodes=f"{root}/sample_data/nc/geocodes.csv",
                    history=f"{root}/sample_data/nc/ncvhis.txt")
truth = pd.read_parquet(f"{root}/sample_data/nc/truth.parquet", columns=["voter_id", "true_propensity", "pocket_id"])
v = r.voters.merge(truth, on="voter_id", how="left")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the RI layer's known overlaps and gaps
    pre = read_precincts(f"{root}/sample_data/providence_precincts.parquet", id_col="JOINID").precincts
v = assign_precincts(v, pre, id_col="precinct_id")
keys = ("selected", "enriched", "locations", "clusters", "noise_share", "planted_ari", "pockets",
        "pockets_recovered", "pockets_recovered_all", "pocket_purity", "bootstrap_ari", "validity",
        "suppressed_clusters", "seconds")
out = []
settings = [
    {"threshold": 0.8, "min_cluster_size": 5, "enrichment_k": 15, "eps_m": 200.0},
    {"threshold": 0.8, "min_cluster_size": 5, "enrichment_alpha": None},
]
for kw in settings:
    labels = {}
    for mode in ("point", "cell"):
        res, geos, m = cluster_voters(v, score_col="true_propensity", mode=mode, bootstrap=10, **kw)
        labels[mode] = res["micro_geo"]
        out.append({"settings": {k: val for k, val in kw.items()}, "mode": mode, **{k: m[k] for k in keys},
                    "areas_m2": [round(float(a)) for a in geos["area_m2"]]})
    s = labels["point"].notna().to_numpy()
    ari = adjusted_rand_score(labels["point"][s].astype(int), labels["cell"][s].astype(int))
    out.append({"settings": kw, "mode": "point vs cell", "ari_point_cell": float(ari)})
print(json.dumps({"voters": len(v), "results": out}))
"""




def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("geo-segment", "numpy", "scipy", "scikit-learn", "hdbscan", "shapely", "h3ronpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def prepare_points(sizes: list[int], seed: int, folder: Path) -> dict[int, Path]:
    """Project the state voters to metres once; save each size's points and res-10 cells as .npz."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from pyproj import Transformer

    from geo_segment import _h3

    voters_path = sd.voters_path(5_000_000, seed)  # exact sizes when the 5M file is cached (join benchmark)
    if not voters_path.exists() or max(sizes) > 5_000_000:
        _, voters_path = sd.ensure(max(1_000_000, max(sizes)), seed)
    v = pd.read_parquet(voters_path, columns=["lat", "lng", "geocoded"])
    v = v[v["geocoded"] & v["lat"].notna()]
    lng, lat = v["lng"].to_numpy(), v["lat"].to_numpy()
    corners = gpd.GeoSeries(gpd.points_from_xy([lng.min(), lng.max()], [lat.min(), lat.max()]), crs=4326)
    crs = corners.estimate_utm_crs()
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(lng, lat)
    X = np.column_stack([x, y])
    cells = _h3.latlng_to_cells(lat, lng, CELL_RESOLUTION)
    rng = np.random.default_rng(seed)
    paths = {}
    for n in sizes:
        idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
        p = folder / f"points_{n}.npz"
        np.savez(p, X=X[idx], cells=cells[idx])
        paths[n] = p
    return paths


def run_child(code: str, args: list[str], timeout: float) -> dict[str, Any]:
    try:
        out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:.0f} s"}
    except subprocess.CalledProcessError as exc:
        return {"status": "failed", "stderr": exc.stderr[-2000:]}
    return {"status": "ok", **json.loads(out.stdout.strip().splitlines()[-1])}


def ari(a_path: Path, b_path: Path) -> float | None:
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    if not (a_path.exists() and b_path.exists()):
        return None
    return float(adjusted_rand_score(np.load(a_path), np.load(b_path)))


VARIANTS = ("geo_segment hdbscan point", "geo_segment hdbscan cell", "geo_segment dbscan point",
            "geo_segment dbscan cell", "hdbscan package", "sklearn.cluster.HDBSCAN")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200000,1000000")
    ap.add_argument("--sklearn-max", type=int, default=200_000)
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds before a variant is recorded as timeout")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-sample", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_start = os.getloadavg()
    results: dict[str, Any] = {"points": {}, "end_to_end": {}, "sample_county": None}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        points = prepare_points(sizes, args.seed, folder)
        for n in sizes:
            rows: dict[str, Any] = {}
            for variant in VARIANTS:
                labels = folder / f"labels_{n}_{variant.replace(' ', '_')}.npy"
                if variant == "sklearn.cluster.HDBSCAN" and n > args.sklearn_max:
                    rows[variant] = {"status": f"not run above {args.sklearn_max:,} points (would take > 10 min)"}
                    continue
                print(f"{n:,} points: {variant} ...", file=sys.stderr, flush=True)
                rows[variant] = run_child(POINTS, [variant, str(points[n]), str(labels)], args.timeout)
            ref = folder / f"labels_{n}_hdbscan_package.npy"
            ref_sk = folder / f"labels_{n}_sklearn.cluster.HDBSCAN.npy"
            for variant in VARIANTS:
                mine = folder / f"labels_{n}_{variant.replace(' ', '_')}.npy"
                rows[variant]["ari_vs_hdbscan_package"] = ari(mine, ref)
                rows[variant]["ari_vs_sklearn"] = ari(mine, ref_sk)
            results["points"][str(n)] = rows
    truth = HERE / "data" / "nc_1000000_1" / "truth.parquet"
    if not args.skip_e2e:
        sources = [("state", sd.voters_path(1_000_000, args.seed))]
        if truth.exists():
            sources.insert(0, ("county", truth))
        else:
            results["end_to_end"]["county"] = {"status": f"{truth} missing: run benchmarks/ingest.py first"}
        for source, path in sources:
            for mode in ("point", "cell"):
                print(f"end to end: {source} {mode} ...", file=sys.stderr, flush=True)
                results["end_to_end"][f"{source} {mode}"] = run_child(E2E, [source, str(path), mode], args.timeout)
    if not args.skip_sample:
        print("sample county ...", file=sys.stderr, flush=True)
        results["sample_county"] = run_child(SAMPLE, [str(ROOT)], args.timeout)
    report = {
        "benchmark": "cluster", "sizes": sizes, "seed": args.seed, "machine": machine(), "versions": versions(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "parameters": {"min_cluster_size": MIN_CLUSTER_SIZE, "min_samples_excluding_self": MIN_SAMPLES,
                       "dbscan_eps_m": EPS_M, "cell_resolution": CELL_RESOLUTION},
        "targets": TARGETS, "results": results,
    }
    text = render(report)
    print(text)
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "cluster.json").write_text(json.dumps(report, indent=2) + "\n")
    (res / "cluster.md").write_text(text)


def _fmt(x: Any, spec: str) -> str:
    return "" if x is None else format(x, spec)


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Clustering benchmark: micro-geographies at 200k and 1M points",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; load average "
        f"{report['load_average_start'][0]} at start, {report['load_average_end'][0]} at the end (shared machine).",
        f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.",
        "",
        "min_cluster_size 25; 25 other voters within the core distance (scikit-learn: min_samples=26); geo_segment "
        "floors core distances at 10 m (min_distance_m); DBSCAN eps 100 m; cell mode at H3 resolution 10. Points: "
        "the state-size synthetic voters (many share a building).",
        "",
        "| points | variant | distinct locations | seconds | peak RSS (MB) | clusters | noise share | ARI vs hdbscan "
        "package | ARI vs sklearn |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, rows in report["results"]["points"].items():
        for variant, r in rows.items():
            if r.get("status") != "ok":
                lines.append(f"| {int(n):,} | {variant} | | {r.get('status')} | | | | | |")
                continue
            lines.append(
                f"| {r['points']:,} | {variant} | {_fmt(r.get('locations'), ',')} | {r['seconds']:.1f} | "
                f"{r['peak_rss_mb']:,.0f} | {r['clusters']:,} | {r['noise_share']:.3f} | "
                f"{_fmt(r.get('ari_vs_hdbscan_package'), '.3f')} | {_fmt(r.get('ari_vs_sklearn'), '.3f')} |"
            )
    e2e = report["results"]["end_to_end"]
    if e2e:
        lines += ["", "## End to end: `cluster_voters` (selection, enrichment, fit, polygons, table; no bootstrap)",
                  "", "county: the 1M-voter generated county, threshold 0.8 on the planted true_propensity, "
                  "min_cluster_size 25, eps_m 200. state: every geocoded voter of the 1M state file selected, "
                  "no enrichment test, min_cluster_size 25.", "",
                  "| data, mode | selected | clustered | clusters | seconds (enrichment / fit) | peak RSS (MB) "
                  "| planted ARI | pockets recovered | validity |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in e2e.items():
            if r.get("status") != "ok":
                lines.append(f"| {name} | {r.get('status')} | | | | | | | |")
                continue
            planted = (f"{r['planted_ari']:.3f} | {r['pockets_recovered']:.2f}" if r.get("planted_ari") is not None
                       else " | ")
            lines.append(
                f"| {name} | {r['selected']:,} | {r['enriched']:,} | {r['clusters']:,} | {r['seconds']:.1f} "
                f"({r['enrichment_seconds']:.1f} / {r['fit_seconds']:.1f}) | {r['peak_rss_mb']:,.0f} | "
                f"{planted} | {r['validity']:.3f} |")
    sample = report["results"]["sample_county"]
    if sample and sample.get("status") == "ok":
        lines += ["", f"## Sample county (sample_data/nc, {sample['voters']:,} voters): point against cell mode", "",
                  "| settings | mode | selected | enriched | clusters | planted ARI | pockets recovered "
                  "| bootstrap ARI | validity | point vs cell ARI |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sample["results"]:
            kw = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
            if r["mode"] == "point vs cell":
                lines.append(f"| {kw} | point vs cell | | | | | | | | {r['ari_point_cell']:.3f} |")
                continue
            lines.append(f"| {kw} | {r['mode']} | {r['selected']} | {r['enriched']} | {r['clusters']} | "
                         f"{r['planted_ari']:.3f} | {r['pockets_recovered']:.2f} | {r['bootstrap_ari']:.3f} | "
                         f"{r['validity']:.3f} | |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
