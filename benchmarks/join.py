"""Join benchmark: H3 cells + one precinct per voter + aggregates at state size, beside the naive notebook path.

Usage: python benchmarks/join.py [--sizes 1000000,5000000] [--repeat 3] [--seed 1] [--keep-going]

Data (generated once, cached under benchmarks/data/, see ``benchmarks/_state_data.py``): about 3,000 precincts
tiling a 300 km x 250 km state with irregular borders (hundreds of vertices each), and N voters clustered in towns,
1 % without coordinates, 0.5 % drifted outside the state, a few thousand exactly on precinct vertices and edges.

Variants, each in a fresh subprocess so its peak RSS (``VmHWM``, which includes the loaded input) is its own;
imports and loading are outside the timing:

* **project, in memory**: ``add_h3_cells(resolution=9)`` + ``assign_precincts`` + ``voter_codes`` (households and
  buildings factorized once) + ``aggregate_cells`` + ``aggregate_precincts``, as the join stage runs them. The
  generated household and building ids are counters (``H00012345``), which the aggregates read as integers
  directly; a second row (**hex ids**, unless ``--skip hex``) first rewrites them, untimed, as the project's
  ingest writes them (``h`` + 16 hex digits of a hash, one per id), which take an integer coding step.
* **naive notebook**: ``df.apply(lambda r: h3.latlng_to_cell(...), axis=1)`` + ``gpd.sjoin(predicate="intersects")``
  + a groupby count per precinct and per cell. Above ``--naive-full-max`` voters it runs fully when a sample run
  extrapolates to under ``--naive-full-seconds``, else on a ``--naive-sample`` sample, extrapolated linearly (the
  table says which).
* **exact reference** (untimed): ``gpd.sjoin(predicate="intersects")`` + a ``contains_properly`` interior flag + the
  documented tie-break done with pandas (interior first, then lowest id as string), + ``gpd.sjoin_nearest`` within
  50 m in the precincts' UTM zone for points nothing intersects. The project's output is compared point for point;
  on a mismatch the first mismatching points are printed and the run stops (unless ``--keep-going``).
* **end to end from the CSV**: ``read_voter_file(ncvoter, layout="nc", geocodes=...)`` (address parsing and
  validation) + ``read_precincts`` + H3 + precincts + aggregates. Synthetic voter files live in Providence, RI, so
  this variant joins them to the real Rhode Island precincts (``JOINID``), not to the synthetic state.

Prints a Markdown table and saves benchmarks/results/join.json and join.md with the machine's facts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _machine import machine as base_machine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _state_data as sd  # noqa: E402

RI_PRECINCTS = Path("/work/shared/data/ri/ri_precincts_providence_washington_2016_2018.parquet")
RI_ID = "JOINID"
TOLERANCE_M = 50.0
METHODS = ("within", "boundary", "nearest", "unassigned")
TARGETS = {
    "in_memory_5m_seconds": 8.0, "in_memory_5m_rss_mb": 4096.0, "naive_ratio": 20.0, "mismatches": 0,
    "e2e_5m_seconds": 15.0, "e2e_5m_rss_mb": 3072.0,
}

# ---------------------------------------------------------------------------------------------------------------
# children
# ---------------------------------------------------------------------------------------------------------------

COMMON = r"""
import json, resource, sys, time

def rss_now_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

def peak_mb():
    # the process's own high-water mark (VmHWM starts again at exec); ru_maxrss keeps the forking parent's RSS at
    # the fork (Linux carries it across exec), so a parent holding generated data would inflate every child's peak
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def aggregates():
    try:
        from geo_segment.aggregates import aggregate_cells, aggregate_precincts
    except ImportError as exc:
        return None, None, f"not available ({exc})"
    import inspect
    sig = (f"aggregate_cells{inspect.signature(aggregate_cells)}; "
           f"aggregate_precincts{inspect.signature(aggregate_precincts)}")
    return aggregate_cells, aggregate_precincts, sig
"""

CHILD_PROJECT = COMMON + r"""
voters_path, precincts_path, id_col, out_path = sys.argv[1:5]
ids = sys.argv[5] if len(sys.argv) > 5 else "as-is"
import geopandas as gpd
from geo_segment.join import add_h3_cells, assign_precincts
agg_cells, agg_precincts, agg_sig = aggregates()
voters = gpd.read_parquet(voters_path)
precincts = gpd.read_parquet(precincts_path)
if ids == "hex":
    # the ids as the project's ingest writes them ("h"/"b" + 16 hex digits of a 64-bit hash), one per generated id
    import numpy as np, pandas as pd, pyarrow as pa
    for col, prefix in (("household_id", b"h"), ("building_id", b"b")):
        codes, uniq = pd.factorize(voters[col])
        hashed = pd.util.hash_array(np.asarray(uniq, dtype=object), hash_key="join_bench_ids16", categorize=False)
        octets = hashed.astype(">u8").view(np.uint8).reshape(-1, 8)
        digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
        text = np.empty((len(uniq), 17), dtype=np.uint8)
        text[:, 0] = prefix[0]
        text[:, 1::2], text[:, 2::2] = digits[octets >> 4], digits[octets & 15]
        offsets = np.arange(0, 17 * (len(uniq) + 1), 17, dtype=np.int64)
        arr = pa.Array.from_buffers(pa.large_string(), len(uniq), [None, pa.py_buffer(offsets), pa.py_buffer(text)])
        taken = arr.take(pa.array(codes, mask=codes < 0))
        voters[col] = pd.Series(pd.arrays.ArrowStringArray(taken), index=voters.index)
    del codes, uniq, hashed, octets, text, arr, taken
loaded_rss = rss_now_mb()
c0 = cpu_s()
t0 = time.perf_counter()
v = add_h3_cells(voters, resolution=9)
t1 = time.perf_counter()
v = assign_precincts(v, precincts, id_col=id_col, tolerance_m=TOLERANCE)
t2 = time.perf_counter()
n_cells = n_prec = None
if agg_cells is not None:
    from geo_segment.aggregates import voter_codes
    codes = voter_codes(v)  # households and buildings factorized once for both tables, as the join stage does
    cells = agg_cells(v, codes=codes)
    per_precinct = agg_precincts(v, precincts, id_col=id_col, codes=codes)
    n_cells, n_prec = len(cells), len(per_precinct)
t3 = time.perf_counter()
cpu = cpu_s() - c0
peak = peak_mb()
counts = v["precinct_method"].value_counts().to_dict()
if out_path != "-":
    import pandas as pd
    pd.DataFrame({"precinct_id": v["precinct_id"], "precinct_method": v["precinct_method"]}).to_parquet(out_path)
print(json.dumps({"rows": len(v), "seconds": t3 - t0, "cpu_seconds": cpu, "h3_seconds": t1 - t0,
                  "precinct_seconds": t2 - t1,
                  "aggregate_seconds": t3 - t2, "peak_rss_mb": peak, "loaded_rss_mb": loaded_rss,
                  "methods": {k: int(c) for k, c in counts.items()}, "aggregates": agg_sig,
                  "aggregate_cells_rows": n_cells, "aggregate_precincts_rows": n_prec}))
""".replace("TOLERANCE", repr(TOLERANCE_M))

CHILD_NAIVE = COMMON + r"""
voters_path, precincts_path, id_col, sample = sys.argv[1:5]
import geopandas as gpd
import h3
voters = gpd.read_parquet(voters_path)
precincts = gpd.read_parquet(precincts_path)
if int(sample):
    voters = voters.sample(n=int(sample), random_state=0)
loaded_rss = rss_now_mb()
c0 = cpu_s()
t0 = time.perf_counter()
# the notebook's guard: h3 raises on NaN coordinates
voters["h3"] = voters.apply(lambda r: h3.latlng_to_cell(r.lat, r.lng, 9) if r.geocoded else None, axis=1)
t1 = time.perf_counter()
joined = gpd.sjoin(voters, precincts, predicate="intersects")
t2 = time.perf_counter()
per_precinct = joined.groupby(id_col).size()
per_cell = joined.groupby("h3").size()
t3 = time.perf_counter()
cpu = cpu_s() - c0
peak = peak_mb()
matched = joined.index.nunique()
print(json.dumps({"rows": len(voters), "seconds": t3 - t0, "cpu_seconds": cpu, "h3_seconds": t1 - t0,
                  "precinct_seconds": t2 - t1,
                  "aggregate_seconds": t3 - t2, "peak_rss_mb": peak, "loaded_rss_mb": loaded_rss,
                  "joined_rows": len(joined), "rows_added_by_duplication": len(joined) - matched,
                  "voters_dropped": len(voters) - matched, "precincts_counted": len(per_precinct),
                  "cells_counted": len(per_cell)}))
"""

CHILD_REFERENCE = COMMON + r"""
voters_path, precincts_path, id_col, project_out = sys.argv[1:5]
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
voters = pd.read_parquet(voters_path, columns=["voter_id", "lat", "lng"])
precincts = gpd.read_parquet(precincts_path)
proj = pd.read_parquet(project_out)
t0 = time.perf_counter()
n = len(voters)
lat = voters["lat"].to_numpy("float64")
lng = voters["lng"].to_numpy("float64")
has = np.isfinite(lat) & np.isfinite(lng)
pos = np.flatnonzero(has)
pts = gpd.GeoDataFrame({"pos": pos}, geometry=gpd.points_from_xy(lng[has], lat[has]), crs=4326)
prec = gpd.GeoDataFrame({"pid": precincts[id_col].astype(str).to_numpy()}, geometry=precincts.geometry.values,
                        crs=precincts.crs)
# 1. every polygon the point intersects, with an interior flag; tie-break interior desc, id asc
hits = gpd.sjoin(pts, prec, predicate="intersects", how="inner")
interior = shapely.contains_properly(prec.geometry.values[hits["index_right"].to_numpy()],
                                     pts.geometry.values[hits.index.to_numpy()])
cand = pd.DataFrame({"pos": hits["pos"].to_numpy(), "pid": hits["pid"].to_numpy(), "interior": interior})
n_cand = cand.groupby("pos").size()
n_interior = cand.groupby("pos")["interior"].sum()
best = cand.sort_values(["pos", "interior", "pid"], ascending=[True, False, True]).drop_duplicates("pos")
ref_id = pd.Series([None] * n, dtype=object)
ref_method = pd.Series(["unassigned"] * n, dtype=object)
ref_id.iloc[best["pos"].to_numpy()] = best["pid"].to_numpy()
single = (n_cand.reindex(best["pos"]).to_numpy() == 1) & (n_interior.reindex(best["pos"]).to_numpy() == 1)
ref_method.iloc[best["pos"].to_numpy()] = np.where(single, "within", "boundary")
# 2. nearest within the tolerance, in metres, for points nothing intersects
rest = pts[~pts["pos"].isin(cand["pos"].unique())]
utm = prec.estimate_utm_crs()
near = gpd.sjoin_nearest(rest.to_crs(utm), prec.to_crs(utm), max_distance=TOLERANCE, distance_col="dist")
near = near[near["dist"] <= TOLERANCE]
near = pd.DataFrame({"pos": near["pos"].to_numpy(), "pid": near["pid"].to_numpy(), "dist": near["dist"].to_numpy()})
near = near.sort_values(["pos", "dist", "pid"]).drop_duplicates("pos")
ref_id.iloc[near["pos"].to_numpy()] = near["pid"].to_numpy()
ref_method.iloc[near["pos"].to_numpy()] = "nearest"
seconds = time.perf_counter() - t0
# 3. compare
got_id = proj["precinct_id"].astype(object).where(proj["precinct_id"].notna(), None).to_numpy()
got_method = proj["precinct_method"].astype(str).to_numpy()
rid = ref_id.to_numpy()
id_bad = np.array([a != b for a, b in zip(rid, got_id)], dtype=bool)
method_bad = ref_method.to_numpy() != got_method
first = []
for i in np.flatnonzero(id_bad | method_bad)[:10]:
    c = cand[cand["pos"] == i]
    first.append({"row": int(i), "voter_id": str(voters["voter_id"].iloc[i]), "lat": float(lat[i]),
                  "lng": float(lng[i]),
                  "reference": [rid[i], ref_method.iloc[i]], "project": [got_id[i], got_method[i]],
                  "candidates": [[p, bool(b)] for p, b in zip(c["pid"], c["interior"])]})
counts = ref_method.value_counts().to_dict()
print(json.dumps({"rows": n, "reference_seconds": seconds, "mismatches": int(id_bad.sum()),
                  "method_mismatches": int(method_bad.sum()), "first_mismatches": first,
                  "methods": {k: int(c) for k, c in counts.items()}, "utm": str(utm),
                  "peak_rss_mb": peak_mb()}))
""".replace("TOLERANCE", repr(TOLERANCE_M))

CHILD_E2E = COMMON + r"""
ncvoter, geocodes, precincts_path, id_col = sys.argv[1:5]
from geo_segment.io.voters import read_voter_file
from geo_segment.io.precincts import read_precincts
from geo_segment.join import add_h3_cells, assign_precincts
import warnings
agg_cells, agg_precincts, agg_sig = aggregates()
c0 = cpu_s()
t0 = time.perf_counter()
read = read_voter_file(ncvoter, layout="nc", geocodes=geocodes)
t1 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the RI layer's known overlaps and gaps
    precincts = read_precincts(precincts_path, id_col=id_col).precincts
t2 = time.perf_counter()
v = add_h3_cells(read.voters, resolution=9)
t3 = time.perf_counter()
v = assign_precincts(v, precincts, id_col="precinct_id", tolerance_m=TOLERANCE)
t4 = time.perf_counter()
if agg_cells is not None:
    from geo_segment.aggregates import voter_codes
    codes = voter_codes(v)
    agg_cells(v, codes=codes)
    agg_precincts(v, precincts, id_col="precinct_id", codes=codes)
t5 = time.perf_counter()
cpu = cpu_s() - c0
peak = peak_mb()
counts = v["precinct_method"].value_counts().to_dict()
print(json.dumps({"rows": len(v), "seconds": t5 - t0, "cpu_seconds": cpu, "ingest_seconds": t1 - t0,
                  "read_precincts_seconds": t2 - t1,
                  "h3_seconds": t3 - t2, "precinct_seconds": t4 - t3, "aggregate_seconds": t5 - t4,
                  "peak_rss_mb": peak, "precincts": len(precincts), "aggregates": agg_sig,
                  "methods": {k: int(c) for k, c in counts.items()}}))
""".replace("TOLERANCE", repr(TOLERANCE_M))

CHILDREN = {"project": CHILD_PROJECT, "naive": CHILD_NAIVE, "reference": CHILD_REFERENCE, "e2e": CHILD_E2E}


def run(kind: str, *args: object) -> dict[str, Any]:
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", CHILDREN[kind], *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{kind} child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_before"] = load
    return result


def code_facts() -> dict[str, Any]:
    """Which code was measured: git HEAD, dirty files and a hash of each module the benchmark runs."""
    import hashlib

    root = HERE.parent
    facts: dict[str, Any] = {}
    try:
        facts["git_head"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                           text=True).stdout.strip()
        facts["git_status"] = subprocess.run(["git", "status", "--short", "geo_segment"], cwd=root,
                                             capture_output=True, text=True).stdout.splitlines()[:20]
    except OSError:
        pass
    for mod in ("join.py", "_h3.py", "_keys.py", "aggregates.py", "addresses.py", "io/voters.py", "io/precincts.py"):
        path = root / "geo_segment" / mod
        if path.exists():
            facts[mod] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return facts


# ---------------------------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------------------------

def machine() -> dict[str, object]:
    import geopandas
    import pandas
    import shapely

    return {**base_machine(), "shapely": shapely.__version__, "geos": shapely.geos_version_string,
            "geopandas": geopandas.__version__, "pandas": pandas.__version__}


def ensure_nc(n: int, seed: int) -> Path:
    """The NC-layout voter file of ``benchmarks/ingest.py`` (same cache folder)."""
    folder = HERE / "data" / f"nc_{n}_{seed}"
    if not (folder / "ncvoter.txt").exists():
        from geo_segment.synth import generate_population, write_layout

        t0 = time.perf_counter()
        pop = generate_population(n, seed=seed)
        write_layout(pop, "nc", folder, seed=seed)
        print(f"generated {n:,} NC voters in {time.perf_counter() - t0:.1f} s -> {folder}", file=sys.stderr)
    return folder


def summarize(runs: list[dict[str, Any]], scale: float = 1.0) -> dict[str, Any]:
    """Best and median of repeats; ``scale`` extrapolates a sample's seconds linearly."""
    times = sorted(r["seconds"] * scale for r in runs)
    med = times[len(times) // 2]
    rows = runs[0]["rows"] * scale
    out: dict[str, Any] = {
        "seconds": times[0], "median_seconds": med, "voters_per_s": rows / times[0], "median_voters_per_s": rows / med,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs_seconds": [round(t, 3) for t in times],
        "load_before": [round(r["load_before"], 2) for r in runs],
    }
    for k in ("cpu_seconds", "ingest_seconds", "read_precincts_seconds", "h3_seconds", "precinct_seconds",
              "aggregate_seconds"):
        if k in runs[0]:
            vals = sorted(r[k] * scale for r in runs)
            out[f"median_{k}"] = vals[len(vals) // 2]
    keep = ("rows", "methods", "loaded_rss_mb", "aggregates", "rows_added_by_duplication", "voters_dropped",
            "joined_rows", "precincts", "aggregate_cells_rows", "aggregate_precincts_rows")
    out.update({k: runs[0][k] for k in keep if k in runs[0]})
    return out


def data_facts(n: int, seed: int) -> dict[str, Any]:
    import geopandas as gpd
    import shapely

    prec = gpd.read_parquet(sd.precincts_path(seed))
    nv = shapely.get_num_coordinates(prec.geometry.values)
    return {"voters": n, "precincts": len(prec), "vertices_total": int(nv.sum()), "vertices_median": int(sorted(nv)[
        len(nv) // 2]), "multipolygons": int((shapely.get_type_id(prec.geometry.values) == 6).sum())}


def fmt_methods(m: dict[str, int] | None) -> str:
    if not m:
        return "-"
    return " / ".join(f"{m.get(k, 0):,}" for k in METHODS)


def render(report: dict[str, Any]) -> str:
    mach = report["machine"]
    lines = [
        "# Join benchmark: H3 + precincts + aggregates at state size",
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB, Python {mach['python']}, "
        f"shapely {mach['shapely']} (GEOS {mach['geos']}), geopandas {mach['geopandas']}, pandas {mach['pandas']}",
        "",
        f"Aggregates: {report.get('aggregates', 'not run')}",
        "",
        "Methods are within / boundary / nearest / unassigned. Peak RSS is the subprocess's `VmHWM` and includes "
        "the input already loaded (in-memory variants: see `loaded_rss_mb` in join.json). Ratio = naive median s / "
        "project median s.",
        "",
        f"Code: {json.dumps(report.get('code', {}))}",
        "",
        f"1-minute load average before the runs: {report.get('load_range', '?')} (on {mach['cores']} cores; above "
        f"~1 other processes shared the CPU and the timings are pessimistic)",
        "",
        "| variant | voters | precincts (vertices) | best s | median s | median CPU s | voters/s (median) | "
        "peak RSS MB | ratio naive/project | mismatches (id / method) | methods |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for size in report["sizes"]:
        d = size["data"]
        prec = f"{d['precincts']:,} ({d['vertices_total']:,}; median {d['vertices_median']})"
        p = size.get("project")
        ref = size.get("reference")
        mm = f"{ref['mismatches']:,} / {ref['method_mismatches']:,}" if ref else "-"
        for label, r, ratio, mism in (
            ("project, in memory", p, "1", mm),
            ("project, in memory, hex ids (as the ingest writes them)", size.get("project_hex_ids"),
             f"{size.get('ratio_hex_ids', float('nan')):.1f}", "-"),
        ):
            if r:
                lines.append(f"| {label} | {d['voters']:,} | {prec} | {r['seconds']:.2f} | {r['median_seconds']:.2f} | "
                             f"{r['median_cpu_seconds']:.2f} | {r['median_voters_per_s']:,.0f} | "
                             f"{r['peak_rss_mb']:,.0f} | {ratio} | {mism} | {fmt_methods(r.get('methods'))} |")
        nv = size.get("naive")
        if nv:
            label = "naive notebook" + (f" (sample {nv['sample']:,}, extrapolated x{nv['scale']:g})"
                                         if nv.get("sample") else "")
            extra = (f"sjoin adds {nv['rows_added_by_duplication_full']:,} duplicate rows, drops "
                     f"{nv['voters_dropped_full']:,} voters")
            lines.append(f"| {label} | {d['voters']:,} | {prec} | {nv['seconds']:.2f} | {nv['median_seconds']:.2f} | "
                         f"{nv['median_cpu_seconds']:.2f} | {nv['median_voters_per_s']:,.0f} | {nv['peak_rss_mb']:,.0f}"
                         f"{' (sample)' if nv.get('sample') else ''} | **{size.get('ratio', float('nan')):.1f}** | - |"
                         f" {extra} |")
        e = size.get("e2e")
        if e:
            lines.append(f"| end to end from CSV (RI precincts) | {e['rows']:,} | {e['precincts']} (real RI) | "
                         f"{e['seconds']:.2f} | {e['median_seconds']:.2f} | {e['median_cpu_seconds']:.2f} | "
                         f"{e['median_voters_per_s']:,.0f} | "
                         f"{e['peak_rss_mb']:,.0f} | - | - | {fmt_methods(e.get('methods'))} |")
    lines += ["", "Median seconds per stage:", "",
              "| variant | voters | H3 | precincts | aggregates | ingest | read precincts |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for size in report["sizes"]:
        for name, key in (("project", "project"), ("project, hex ids", "project_hex_ids"), ("naive", "naive"),
                          ("end to end", "e2e")):
            r = size.get(key)
            if r:
                def g(k: str, r: dict[str, Any] = r) -> str:
                    return f"{r[k]:.2f}" if k in r else "-"
                lines.append(f"| {name} | {size['data']['voters']:,} | {g('median_h3_seconds')} | "
                             f"{g('median_precinct_seconds')} | {g('median_aggregate_seconds')} | "
                             f"{g('median_ingest_seconds')} | {g('median_read_precincts_seconds')} |")
    if report.get("targets_met"):
        lines += ["", "Targets (5M voters, this machine):", ""]
        lines += [f"- {k}: {'met' if ok else 'MISSED'} ({v})" for k, (ok, v) in report["targets_met"].items()]
    bad = [s for s in report["sizes"] if s.get("reference") and s["reference"]["first_mismatches"]]
    for s in bad:
        lines += ["", f"First mismatches at {s['data']['voters']:,} voters (reference vs project):", ""]
        lines += [f"- `{json.dumps(m)}`" for m in s["reference"]["first_mismatches"]]
    if report.get("stopped"):
        lines += ["", f"**Stopped: {report['stopped']}**"]
    return "\n".join(lines) + "\n"


def targets(report: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    five = [s for s in report["sizes"] if s["data"]["voters"] >= 5_000_000]
    if not five:
        return {}
    s = five[-1]
    out: dict[str, tuple[bool, str]] = {}
    p, e, ref = s.get("project"), s.get("e2e"), s.get("reference")
    if p:
        out["in memory <= 8 s"] = (p["median_seconds"] <= TARGETS["in_memory_5m_seconds"],
                                   f"median {p['median_seconds']:.2f} s")
        out["in memory peak RSS <= 4 GB"] = (p["peak_rss_mb"] <= TARGETS["in_memory_5m_rss_mb"],
                                             f"{p['peak_rss_mb']:,.0f} MB")
    if "ratio" in s:
        out[">= 20x faster than naive"] = (s["ratio"] >= TARGETS["naive_ratio"], f"{s['ratio']:.1f}x")
    if ref:
        out["0 mismatches"] = (ref["mismatches"] == 0, f"{ref['mismatches']} id, {ref['method_mismatches']} method")
    if e:
        out["end to end <= 15 s"] = (e["median_seconds"] <= TARGETS["e2e_5m_seconds"],
                                     f"median {e['median_seconds']:.2f} s")
        out["end to end peak RSS <= 3 GB"] = (e["peak_rss_mb"] <= TARGETS["e2e_5m_rss_mb"],
                                              f"{e['peak_rss_mb']:,.0f} MB")
    return out


def save(report: dict[str, Any]) -> str:
    report["targets_met"] = targets(report)
    loads = [x for s in report["sizes"] for k in ("project", "naive", "e2e") if k in s for x in s[k]["load_before"]]
    if loads:
        report["load_range"] = f"{min(loads):.1f}..{max(loads):.1f}"
    text = render(report)
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "join.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (res / "join.md").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,5000000", help="comma-separated voter counts")
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; best and median are reported")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--naive-full-max", type=int, default=1_000_000, help="run the naive path fully up to this size")
    ap.add_argument("--naive-full-seconds", type=float, default=300.0,
                    help="above --naive-full-max, run fully (once) if a sample extrapolates below this")
    ap.add_argument("--naive-sample", type=int, default=500_000)
    ap.add_argument("--skip", default="", help="comma-separated variants to skip: naive, e2e, reference, hex")
    ap.add_argument("--keep-going", action="store_true", help="continue after reference mismatches")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    skip = {s for s in args.skip.split(",") if s}
    report: dict[str, Any] = {"benchmark": "join", "seed": args.seed, "repeat": args.repeat, "machine": machine(),
                              "tolerance_m": TOLERANCE_M, "h3_resolution": 9, "sizes": [],
                              "targets": TARGETS, "code": code_facts()}
    for n in sizes:
        pp, vp = sd.ensure(n, args.seed)
        size: dict[str, Any] = {"data": data_facts(n, args.seed)}
        report["sizes"].append(size)
        out_path = sd.folder(args.seed) / f"project_out_{n}.parquet"
        runs = [run("project", vp, pp, sd.ID_COL, out_path if i == 0 else "-") for i in range(args.repeat)]
        size["project"] = summarize(runs)
        report["aggregates"] = runs[0]["aggregates"]
        print(f"[{n:,}] project: {size['project']['runs_seconds']} s, peak {size['project']['peak_rss_mb']:,.0f} MB",
              file=sys.stderr)
        if "hex" not in skip:
            hruns = [run("project", vp, pp, sd.ID_COL, "-", "hex") for _ in range(args.repeat)]
            size["project_hex_ids"] = summarize(hruns)
            print(f"[{n:,}] project, hex ids: {size['project_hex_ids']['runs_seconds']} s", file=sys.stderr)
        if "reference" not in skip:
            ref = run("reference", vp, pp, sd.ID_COL, out_path)
            size["reference"] = ref
            print(f"[{n:,}] reference: {ref['mismatches']} id mismatches, {ref['method_mismatches']} method "
                  f"mismatches ({ref['reference_seconds']:.1f} s)", file=sys.stderr)
            if (ref["mismatches"] or ref["method_mismatches"]) and not args.keep_going:
                for m in ref["first_mismatches"]:
                    print("  mismatch:", json.dumps(m), file=sys.stderr)
                report["stopped"] = (f"{ref['mismatches']} precinct id and {ref['method_mismatches']} method "
                                     f"mismatches against the exact reference at {n:,} voters")
                print(save(report))
                sys.exit(1)
        if "naive" not in skip:
            if n <= args.naive_full_max:
                nruns = [run("naive", vp, pp, sd.ID_COL, 0) for _ in range(args.repeat)]
                size["naive"] = summarize(nruns)
                size["naive"].update(rows_added_by_duplication_full=nruns[0]["rows_added_by_duplication"],
                                     voters_dropped_full=nruns[0]["voters_dropped"])
            else:
                sample = min(args.naive_sample, n)
                first = run("naive", vp, pp, sd.ID_COL, sample)
                scale = n / sample
                if first["seconds"] * scale < args.naive_full_seconds:
                    nruns = [run("naive", vp, pp, sd.ID_COL, 0)]
                    size["naive"] = summarize(nruns)
                    size["naive"].update(rows_added_by_duplication_full=nruns[0]["rows_added_by_duplication"],
                                         voters_dropped_full=nruns[0]["voters_dropped"], note="full run, once")
                else:
                    nruns = [first] + [run("naive", vp, pp, sd.ID_COL, sample) for _ in range(args.repeat - 1)]
                    size["naive"] = summarize(nruns, scale=scale)
                    size["naive"].update(
                        sample=sample, scale=scale, rows=n,
                        rows_added_by_duplication_full=round(nruns[0]["rows_added_by_duplication"] * scale),
                        voters_dropped_full=round(nruns[0]["voters_dropped"] * scale),
                        note=f"run on a {sample:,}-voter sample; seconds and counts extrapolated linearly x{scale:g};"
                             " peak RSS is the sample's")
            size["ratio"] = size["naive"]["median_seconds"] / size["project"]["median_seconds"]
            if "project_hex_ids" in size:
                size["ratio_hex_ids"] = size["naive"]["median_seconds"] / size["project_hex_ids"]["median_seconds"]
            print(f"[{n:,}] naive: {size['naive']['runs_seconds']} s, ratio {size['ratio']:.1f}x", file=sys.stderr)
        if "e2e" not in skip:
            folder = ensure_nc(n, args.seed)
            eruns = [run("e2e", folder / "ncvoter.txt", folder / "geocodes.csv", RI_PRECINCTS, RI_ID)
                     for _ in range(args.repeat)]
            size["e2e"] = summarize(eruns)
            print(f"[{n:,}] end to end: {size['e2e']['runs_seconds']} s, peak {size['e2e']['peak_rss_mb']:,.0f} MB",
                  file=sys.stderr)
        save(report)
    print(save(report))


if __name__ == "__main__":
    main()
