"""Turf benchmark: 50k doors cut, re-cut after importing canvass results, the cutter beside k-means turfs,
quadkey-square turfs and GerryChain's ``recursive_tree_part`` on the same doors, routes beside OR-Tools, and 200
PDF packets.

Usage: python benchmarks/turfs.py [--voters 110000] [--seed 3] [--runs 2] [--compare 25] [--ortools 40]
                                  [--ortools-seconds 1.0] [--packets 200]

Doors: the synthetic county (``geo_segment.synth``, Providence streets and blocks; ~0.45 households per voter,
multi-unit buildings) shaped into scored voters, each in one of the sample county's real precincts; one door per
household; target 50 doors, ±10 %. Generation and imports are outside the timings.

Sections:

* **cut**: ``build_doors`` + ``cut_turfs`` (adjacency, cutting, walking order and routes of every turf, polygons)
  ``--runs`` times; checks: every door in one turf, no building split, every turf contiguous on the adjacency,
  identical outputs run to run.
* **re-cut**: results for 60 % of the households of 15 precincts (talked / not home / refused) are written as a
  CSV, imported into an empty contact history (timed), then the doors are rebuilt without the contacted
  households and cut again with the first cut as ``previous`` (timed: only changed precincts are cut); a full
  re-cut of every precinct is timed too and must give the same turfs.
* **anchors** on the doors of ``--compare`` precincts, every method with the same number of turfs per precinct as
  the cutter: k-means (scikit-learn, door-weighted, on the buildings), quadkey squares (Web Mercator tiles, the
  zoom whose squares hold closest to 50 doors on average, one turf per precinct and tile, as open-source turf
  cutters do), GerryChain ``recursive_tree_part`` (target W/k per precinct, epsilon 0.10, on the same building
  adjacency graph, at most 2,000 attempts per cut). Balance = share of turfs within 45-55 doors; contiguity on
  the stated adjacency; compactness = mean Polsby-Popper of the turf polygons (union of the buildings' Voronoi
  cells clipped to the precinct; 1 = a disc) and the mean distance of a door to its turf's centroid; walking =
  the best route this library finds through each turf's buildings (no street-side penalty), metres per door.
* **routes**: on ``--ortools`` sampled turfs, the route-optimized order (as written, with the street-side
  penalty), the same without the penalty and the street-sorted order, against OR-Tools (open path, guided local
  search, ``--ortools-seconds`` per turf).
* **packets**: HTML and PDF (headless Chromium) of ``--packets`` turfs.

Prints Markdown tables and saves benchmarks/results/turfs.json and turfs.md with the machine's facts and load.

Stage mode: ``python benchmarks/turfs.py --stage RUN_FOLDER [--before REV] [--before-workers auto] [--workers 1,auto]
[--repeat 1] [--reference DIR] [--size-label 1M]`` runs the whole turf stage as ``geo-segment run`` does
(``turf_stage`` with walk lists and HTML packets, then ``with_turfs``) on a run folder's scored voters
(``stages/cluster/voters.parquet`` and ``precincts.parquet`` of a ``geo-segment run`` folder, or a folder with
``voters.parquet`` and ``precincts.parquet``), each implementation in its own process, one after the other: the code
of git revision ``REV`` (the previous implementation, extracted with ``git archive``), then this tree with each
``[turfs] workers`` setting. It reports seconds (wall, and CPU including the worker processes) per sub-step (universe,
doors, cut: the region groups in the workers and the rest, walk-list rows, parquet files, walk lists and packets,
voters with turfs), the load average around each run, peak RSS (and the largest worker's), and what the runner's
manifest hashing of the stage folder costs; it checks that every run wrote the same bytes as the first (every walk
list and packet, the parquet files) and as ``--reference`` (a stage folder written before the change). Saves
benchmarks/results/turfs_stage_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _machine import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if "--stage-child" not in sys.argv:  # the child runs the code on its PYTHONPATH
    sys.path.insert(0, str(ROOT))

import geopandas as gpd  # noqa: E402
import shapely  # noqa: E402
from scipy.sparse import coo_matrix  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402

from geo_segment.config import TurfsConfig  # noqa: E402
from geo_segment.turfs import build_doors, cut_turfs  # noqa: E402
from geo_segment.turfs._synthetic import synthetic_voters  # noqa: E402
from geo_segment.turfs.cut import metric_crs, to_metric  # noqa: E402
from geo_segment.turfs.packets import find_chromium, packet_sections, write_packets  # noqa: E402
from geo_segment.turfs.results import contacted_households, import_results, read_results  # noqa: E402
from geo_segment.turfs.stage import _turf_polygons  # noqa: E402
from geo_segment.turfs.walk import path_length, route_order  # noqa: E402
from geo_segment.turfs.walklists import walklist_rows  # noqa: E402

TARGET = 50


def contiguous_share(atom_part: np.ndarray, edges: np.ndarray) -> float:
    n = len(atom_part)
    same = atom_part[edges[:, 0]] == atom_part[edges[:, 1]]
    g = coo_matrix((np.ones(int(same.sum())), (edges[same, 0], edges[same, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    pieces = pd.Series(comp).groupby(atom_part).nunique()
    return float((pieces == 1).mean())


def atom_table(cut: Any) -> tuple[pd.DataFrame, Any]:
    d = cut.doors
    crs = metric_crs(d["lat"].to_numpy(), d["lng"].to_numpy())
    x, y = to_metric(d["lat"].to_numpy(), d["lng"].to_numpy(), crs)
    a = pd.DataFrame({"atom": d["atom"].to_numpy(), "x": x, "y": y, "lat": d["lat"].to_numpy(),
                      "lng": d["lng"].to_numpy(), "region": d["region"].astype(str).to_numpy(),
                      "turf": d["turf_id"].astype(str).to_numpy()})
    g = a.groupby("atom")
    atoms = pd.DataFrame({"x": g["x"].mean(), "y": g["y"].mean(), "lat": g["lat"].mean(), "lng": g["lng"].mean(),
                          "w": g.size(), "region": g["region"].first(), "turf": g["turf"].first()})
    return atoms.sort_index(), crs


def evaluate(name: str, atoms: pd.DataFrame, labels: np.ndarray, edges: np.ndarray, crs: Any,
             polys: dict[str, Any], seconds: float, note: str = "") -> dict[str, Any]:
    _, part = np.unique(labels.astype(str), return_inverse=True)
    npart = int(part.max()) + 1
    w = atoms["w"].to_numpy(dtype=float)
    x, y = atoms["x"].to_numpy(), atoms["y"].to_numpy()
    doors = np.bincount(part, weights=w, minlength=npart)
    cx = np.bincount(part, weights=w * x) / doors
    cy = np.bincount(part, weights=w * y) / doors
    dist = float((np.hypot(x - cx[part], y - cy[part]) * w).sum() / w.sum())
    regions, rcode = np.unique(atoms["region"].to_numpy(dtype=str), return_inverse=True)
    geoms = _turf_polygons(x, y, rcode.astype(np.int64), regions, part.astype(np.int64), npart, crs, polys)
    pp = 4 * np.pi * shapely.area(geoms) / np.maximum(shapely.length(geoms), 1e-9) ** 2
    walk = 0.0
    order = np.argsort(part, kind="stable")
    for idx in np.split(order, np.flatnonzero(np.diff(part[order])) + 1):
        walk += path_length(x[idx], y[idx], route_order(x[idx], y[idx], side_penalty_m=0.0))
    within = (doors >= TARGET * 0.9) & (doors <= TARGET * 1.1)
    return {"method": name, "turfs": npart, "within_10pct": round(float(within.mean()), 3),
            "doors_min": int(doors.min()), "doors_max": int(doors.max()),
            "contiguous": round(contiguous_share(part, edges), 3), "polsby_popper": round(float(np.mean(pp)), 3),
            "mean_dist_to_centroid_m": round(dist, 1), "walk_m_per_door": round(walk / w.sum(), 2),
            "seconds": round(seconds, 2), "note": note}


def quadkey_labels(atoms: pd.DataFrame) -> tuple[np.ndarray, int]:
    best: tuple[float, int, np.ndarray] | None = None
    lat = np.radians(atoms["lat"].to_numpy())
    for z in range(14, 20):
        n = 2 ** z
        tx = np.floor((atoms["lng"].to_numpy() + 180) / 360 * n).astype(np.int64)
        ty = np.floor((1 - np.log(np.tan(lat) + 1 / np.cos(lat)) / np.pi) / 2 * n).astype(np.int64)
        lab = atoms["region"].to_numpy(dtype=str) + ":" + tx.astype(str) + "," + ty.astype(str)
        mean = pd.Series(atoms["w"].to_numpy()).groupby(lab).sum().mean()
        score = abs(mean - TARGET)
        if best is None or score < best[0]:
            best = (score, z, lab)
    assert best is not None
    return best[2], best[1]


def gerrychain_labels(atoms: pd.DataFrame, edges: np.ndarray, k_of: dict[str, int]) -> tuple[np.ndarray, int]:
    import networkx as nx
    from gerrychain import Graph
    from gerrychain.partition.initial_partition_generators import recursive_tree_part
    from gerrychain.tree import bipartition_tree

    labels = np.empty(len(atoms), dtype=object)
    failures = 0
    reg = atoms["region"].to_numpy(dtype=str)
    w = atoms["w"].to_numpy()
    for r in np.unique(reg):
        idx = np.flatnonzero(reg == r)
        k = k_of[r]
        if k == 1:
            labels[idx] = f"{r}:0"
            continue
        inside = np.isin(edges[:, 0], idx) & np.isin(edges[:, 1], idx)
        graph = nx.Graph()
        graph.add_nodes_from((int(i), {"pop": int(w[i])}) for i in idx)
        graph.add_edges_from((int(a), int(b)) for a, b in edges[inside])
        try:
            assign = recursive_tree_part(Graph.from_networkx(graph), range(k), float(w[idx].sum()) / k, "pop", 0.10,
                                         bipartition_tree_fn=partial(bipartition_tree, max_attempts=2000), rng=0)
            for node, p in assign.items():
                labels[int(node)] = f"{r}:{p}"
        except Exception:  # GerryChain raises several kinds when it finds no balanced cut
            failures += 1
            labels[idx] = f"{r}:failed"
    return labels.astype(str), failures


def ortools_route(x: np.ndarray, y: np.ndarray, seconds: float) -> float:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = len(x)
    d = np.zeros((n + 1, n + 1), dtype=np.int64)
    d[:n, :n] = np.round(np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) * 10).astype(np.int64)
    manager = pywrapcp.RoutingIndexManager(n + 1, 1, n)
    routing = pywrapcp.RoutingModel(manager)

    def cost(i: int, j: int) -> int:
        return int(d[manager.IndexToNode(i), manager.IndexToNode(j)])

    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitCallback(cost))
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(int(seconds * 1000))
    sol = routing.SolveWithParameters(params)
    idx = routing.Start(0)
    order = []
    while not routing.IsEnd(idx):
        node = manager.IndexToNode(idx)
        if node != n:
            order.append(node)
        idx = sol.Value(routing.NextVar(idx))
    return path_length(x, y, np.asarray(order))


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if c in ("method", "note") else "---:"
                                                          for c in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(f"{r.get(c, '')}" for c in cols) + " |")
    return "\n".join(out)


STEPS = ("select_universe", "build_doors", "cut_turfs", "walklist_rows", "write_parquet", "lists + packets")
#: what "lists + packets" times: the new code's one step (worker processes), or the older code's three
_LIST_STEPS = {"_write_lists_and_packets": "lists + packets", "write_walklists": "lists + packets",
               "packet_sections": "lists + packets", "write_packets": "lists + packets"}


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (worker processes), user + system."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _first_file(folder: Path, *names: str) -> Path:
    """The first of ``names`` that exists in ``folder`` (a run folder: the voters before the turf stage)."""
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"none of {names} in {folder}")


def stage_child(folder: Path, out: Path, workers: str) -> None:
    """Run the turf stage on ``folder`` into ``out`` (the code on ``sys.path`` first), print timings as JSON.

    ``workers`` is the ``[turfs] workers`` setting (ignored by code without it). CPU seconds include the worker
    processes'. Then the runner's manifest hashing of the stage folder is timed (``runner._files``).
    """
    import dataclasses
    import resource

    import geo_segment.turfs.run as run_mod
    from geo_segment.io.atomic import write_parquet
    from geo_segment.runner import with_turfs

    times: dict[str, list[float]] = {k: [0.0, 0.0] for k in STEPS}
    depth = [0]

    def timed(name: str, fn: Any) -> Any:
        def inner(*a: Any, **k: Any) -> Any:
            depth[0] += 1
            w, c = time.perf_counter(), _cpu()
            try:
                return fn(*a, **k)
            finally:
                depth[0] -= 1
                if depth[0] == 0 or name not in ("lists + packets",):
                    times[name][0] += time.perf_counter() - w
                    times[name][1] += _cpu() - c
        return inner

    for attr in (*STEPS, *_LIST_STEPS):
        if hasattr(run_mod, attr):
            setattr(run_mod, attr, timed(_LIST_STEPS.get(attr, attr), getattr(run_mod, attr)))
    voters = gpd.read_parquet(_first_file(folder, "stages/cluster/voters.parquet", "voters.parquet"))
    precincts = gpd.read_parquet(_first_file(folder, "precincts.parquet", "stages/join/precincts.parquet"))
    cfg = TurfsConfig()
    if any(f.name == "workers" for f in dataclasses.fields(cfg)):
        cfg = dataclasses.replace(cfg, workers=workers if workers == "auto" else int(workers))
    load0 = os.getloadavg()[0]
    w, c = time.perf_counter(), _cpu()
    res = run_mod.turf_stage(voters, precincts, out, cfg, packets=True, pdf=False, as_of_year=2026)
    stage = (time.perf_counter() - w, _cpu() - c)
    w2, c2 = time.perf_counter(), _cpu()
    write_parquet(with_turfs(voters, out), out / "voters.parquet")
    times["with_turfs"] = [time.perf_counter() - w2, _cpu() - c2]
    m = res.cut.metrics
    times["cut (region groups)"] = [float(m["seconds_cut"]), float("nan")]
    times["cut (rest)"] = [float(m["seconds_total"]) - float(m["seconds_cut"]), float("nan")]
    load1 = os.getloadavg()[0]
    from geo_segment.runner import _files

    w3, c3 = time.perf_counter(), _cpu()
    hashed = _files(out)
    hashing = [time.perf_counter() - w3, _cpu() - c3]
    print(json.dumps({"code": run_mod.__file__, "workers": m.get("workers", 1), "stage_wall": stage[0],
                      "stage_cpu": stage[1], "total_wall": stage[0] + times["with_turfs"][0],
                      "total_cpu": stage[1] + times["with_turfs"][1], "steps": times,
                      "group_seconds": {k: m[k] for k in m if k.startswith("seconds_")},
                      "turfs": len(res.cut.turfs), "doors": len(res.cut.doors), "voters": len(voters),
                      "load_start": load0, "load_end": load1, "runner_hashing": hashing,
                      "hashed_files": len(hashed), "hashed_mb": sum(p.stat().st_size for p in out.rglob("*")
                                                                    if p.is_file()) / 2**20,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def same_outputs(a: Path, b: Path) -> dict[str, Any]:
    """Byte-for-byte comparison of two turf stage folders."""
    out: dict[str, Any] = {}
    for sub in ("walklists", "packets"):
        fa = sorted(p.name for p in (a / sub).iterdir())
        fb = sorted(p.name for p in (b / sub).iterdir())
        differ = sum((a / sub / n).read_bytes() != (b / sub / n).read_bytes() for n in set(fa) & set(fb))
        out[sub] = {"files": len(fa), "same_names": fa == fb, "differ": differ}
    for name in ("turfs.parquet", "routes.parquet", "doors.parquet", "door_members.parquet", "voters.parquet"):
        out[name] = (a / name).read_bytes() == (b / name).read_bytes()
    out["identical"] = all(v["same_names"] and v["differ"] == 0 for k, v in out.items() if isinstance(v, dict)) \
        and all(v for v in out.values() if isinstance(v, bool))
    return out


def stage_main(folder: Path, before: str | None, label: str, workers: list[str], reference: Path | None,
               before_workers: str = "auto", repeat: int = 1) -> None:
    """Run the stage with the code of ``before`` (if given, with ``before_workers``) and this tree with each
    ``workers`` setting, each in its own process, one after the other, ``repeat`` rounds (each round runs every
    implementation once; the fastest run of each is reported, all their wall times listed); compare every output
    with the first run's (and with ``reference``, a turf stage folder written earlier, e.g. by ``geo-segment run
    --only turfs`` before the change)."""
    import subprocess

    result: dict[str, Any] = {"machine": machine(), "load_start": os.getloadavg()[0], "folder": str(folder),
                              "before": before, "workers": workers, "runs": {}, "same_outputs": {}}
    with tempfile.TemporaryDirectory(prefix="turfs_stage_") as tmp:
        codes = [(f"after, workers={w}", str(ROOT), w) for w in workers]
        if before:
            old = Path(tmp) / "before_code"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", before, "geo_segment"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            codes = [(f"before ({before}), workers={before_workers}", str(old), before_workers), *codes]
        outs = {}
        walls: dict[str, list[float]] = {name: [] for name, _, _ in codes}
        for r in range(max(1, repeat)):
            for i, (name, code, w) in enumerate(codes):
                env = {**os.environ, "PYTHONPATH": code}
                out = Path(tmp) / f"run{i}_{r}"
                proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--stage-child", str(folder),
                                       str(out), w], env=env, capture_output=True, text=True, check=True)
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                walls[name].append(round(run["total_wall"], 1))
                if name not in result["runs"] or run["total_wall"] < result["runs"][name]["total_wall"]:
                    result["runs"][name] = run
                    if name in outs:
                        subprocess.run(["rm", "-rf", str(outs[name])], check=True)
                    outs[name] = out
                else:
                    subprocess.run(["rm", "-rf", str(out)], check=True)
        for name in walls:
            result["runs"][name]["all_total_walls"] = walls[name]
        names = list(outs)
        for name in names[1:]:
            result["same_outputs"][f"{name} vs {names[0]}"] = same_outputs(outs[names[0]], outs[name])
        if reference is not None:
            for name in names:
                result["same_outputs"][f"{name} vs {reference}"] = same_outputs(reference, outs[name])
    result["load_end"] = os.getloadavg()[0]
    runs = result["runs"]
    names = list(runs)
    first = runs[names[0]]
    lines = [f"# Turf stage at {label}: {first['voters']:,} voters, {first['doors']:,} doors, {first['turfs']:,} turfs",
             "", f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, shared with other jobs. "
             "Seconds wall (CPU, worker processes included); the 1-minute load average at the start and end of each "
             "run (above about 2, other jobs competed for the two cores).", "",
             "| step | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    rows = [*STEPS[:3], "cut (region groups)", "cut (rest)", *STEPS[3:], "with_turfs"]
    for step in rows:
        cells = []
        for n in names:
            wall, cpu = runs[n]["steps"].get(step, [float("nan"), float("nan")])
            cells.append(f"{wall:.1f}" + ("" if cpu != cpu else f" ({cpu:.1f})"))
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines.append("| **stage + with_turfs** | " + " | ".join(
        f"**{runs[n]['total_wall']:.1f}** ({runs[n]['total_cpu']:.1f})" for n in names) + " |")
    lines.append("| load average start / end | " + " | ".join(
        f"{runs[n]['load_start']:.1f} / {runs[n]['load_end']:.1f}" for n in names) + " |")
    lines.append("| peak RSS MB (largest worker) | " + " | ".join(
        f"{runs[n]['peak_rss_mb']:,.0f} ({runs[n]['worker_peak_rss_mb']:,.0f})" for n in names) + " |")
    if any(len(runs[n].get("all_total_walls", [])) > 1 for n in names):
        lines.append("| stage + with_turfs, every round | " + " | ".join(
            " / ".join(f"{w:.1f}" for w in runs[n]["all_total_walls"]) for n in names) + " |")
    lines.append("| runner: hashing the stage folder | " + " | ".join(
        f"{runs[n]['runner_hashing'][0]:.1f} ({runs[n]['runner_hashing'][1]:.1f}), {runs[n]['hashed_files']:,} files, "
        f"{runs[n]['hashed_mb']:,.0f} MB" for n in names) + " |")
    lines += ["", "cut (region groups): adjacency, cutting, routes and polygons of every region, in the worker "
              "processes; cut (rest): atoms, targets, street order, ids, statistics. lists + packets: walk-list CSVs, "
              "packet HTML and their files (worker processes in the new code). In code without worker processes, "
              "'region groups' is the cutting alone and 'rest' everything else of cut_turfs. write_parquet: the four "
              "parquet files; since 9db3f1d they are one more task of the lists + packets pool (so with workers they "
              "are timed inside lists + packets only; with workers=1 they are timed in both rows)."]
    for key, same in result["same_outputs"].items():
        lines += ["", f"Same outputs, {key} (every walk list and packet, the parquet files, byte for byte): "
                  f"**{same['identical']}** ({same})."]
    text = "\n".join(lines)
    print(text)
    (HERE / "results").mkdir(exist_ok=True)
    slug = "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_") or "run"
    (HERE / "results" / f"turfs_stage_{slug}.json").write_text(json.dumps(result, indent=2) + "\n",
                                                               encoding="utf-8")
    (HERE / "results" / f"turfs_stage_{slug}.md").write_text(text + "\n", encoding="utf-8")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--stage-child":
        stage_child(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
        return
    if "--stage" in sys.argv:
        sp = argparse.ArgumentParser()
        sp.add_argument("--stage", type=Path, required=True)
        sp.add_argument("--before", default=None)
        sp.add_argument("--size-label", default="")
        sp.add_argument("--workers", default="1,auto", help="[turfs] workers settings to run, comma-separated")
        sp.add_argument("--reference", type=Path, default=None,
                        help="a turf stage folder written earlier (e.g. before the change) to compare with")
        sp.add_argument("--before-workers", default="auto", help="[turfs] workers setting of the --before run")
        sp.add_argument("--repeat", type=int, default=1, help="rounds; the fastest run of each code is reported")
        sa = sp.parse_args()
        stage_main(sa.stage, sa.before, sa.size_label or str(sa.stage), sa.workers.split(","), sa.reference,
                   before_workers=sa.before_workers, repeat=sa.repeat)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--voters", type=int, default=110_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--compare", type=int, default=25)
    ap.add_argument("--ortools", type=int, default=40)
    ap.add_argument("--ortools-seconds", type=float, default=1.0)
    ap.add_argument("--packets", type=int, default=200)
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": machine(), "load_start": os.getloadavg()[0], "args": vars(args)}
    v = synthetic_voters(args.voters, seed=args.seed)
    pre = gpd.read_parquet(ROOT / "sample_data" / "providence_precincts.parquet")
    polys = dict(zip(pre["JOINID"].astype(str), pre.geometry, strict=True))
    cfg = TurfsConfig(target_doors=TARGET)
    lines = [f"# Turf benchmark: {args.voters:,} synthetic voters", ""]

    # --- cut ----------------------------------------------------------------------------------------------------
    runs = []
    cuts = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        doors, members, _counts = build_doors(v)
        cut = cut_turfs(doors, config=cfg, region_polygons=polys)
        runs.append(time.perf_counter() - t0)
        cuts.append(cut)
    best_run = int(np.argmin(runs))
    cut = cuts[best_run]
    atoms, crs = atom_table(cut)
    atom_turf = atoms["turf"].to_numpy()
    d = cut.doors
    checks = {
        "doors": len(d), "turfs": int(len(cut.turfs)),
        "every_door_in_one_turf": bool(d["turf_id"].notna().all() and d["door_id"].is_unique),
        "buildings_split": int((d.groupby("building_id")["turf_id"].nunique() > 1).sum()),
        "contiguous_share": contiguous_share(np.unique(atom_turf, return_inverse=True)[1], cut.edges),
        "within_10pct": cut.metrics["share_within_tolerance"],
        "deterministic": all(c.doors.equals(cut.doors) for c in cuts),
        "seconds_best": round(min(runs), 2), "seconds_all": [round(s, 2) for s in runs],
        "seconds_cut_only": cut.metrics["seconds_cut"], "seconds_walk": cut.metrics["seconds_walk"],
        "outside": {k: cut.metrics[k] for k in ("outside_small_component", "outside_indivisible",
                                                "outside_big_building", "outside_other")},
        "drive_flag": cut.metrics["drive_flag"], "multipart_polygons": cut.metrics["multipart_polygons"],
    }
    result["cut"] = checks
    lines += ["## Cut", "", f"{checks['doors']:,} doors (households) in {checks['turfs']:,} turfs, target 50 ±10 %: "
              f"best of {args.runs} runs **{checks['seconds_best']} s** (all: {checks['seconds_all']}; in the best "
              f"run cutting took {checks['seconds_cut_only']} s, walking order and routes {checks['seconds_walk']} s, "
              "the rest doors, adjacency and polygons).", "",
              f"Within ±10 %: {checks['within_10pct']:.1%}; outside: {checks['outside']} (small component = a "
              "precinct or barrier-bounded area with fewer doors than a turf; indivisible = no whole number of turfs "
              "puts the area's doors within tolerance); contiguous: "
              f"{checks['contiguous_share']:.1%}; buildings split: {checks['buildings_split']}; every door in one "
              f"turf: {checks['every_door_in_one_turf']}; deterministic: {checks['deterministic']}; drive flags: "
              f"{checks['drive_flag']}; multi-part polygons: {checks['multipart_polygons']}.", ""]

    # --- results import and re-cut -------------------------------------------------------------------------------
    rng = np.random.default_rng(1)
    regions = sorted(d["region"].astype(str).unique())
    touched = set(rng.choice(regions, size=min(15, len(regions)), replace=False).tolist())
    hh = d.loc[d["region"].isin(touched), "household_id"].astype(str).to_numpy()
    pick = rng.choice(hh, size=int(0.6 * len(hh)), replace=False)
    codes = rng.choice(["CT", "NH", "RF"], size=len(pick), p=[0.5, 0.35, 0.15])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.csv"
        pd.DataFrame({"household_id": pick, "date": "2026-10-03", "result_code": codes,
                      "support": rng.choice(["Yes", "No", ""], size=len(pick))}).to_csv(path, index=False)
        t0 = time.perf_counter()
        hist, report = import_results(read_results(path), v, None, result_codes=cfg.result_codes,
                                      source_file="results.csv")
        t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = contacted_households(hist)
    doors2, _, counts2 = build_doors(v, contacted=done)
    recut = cut_turfs(doors2, config=cfg, region_polygons=polys, previous=cut)
    t_recut = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = cut_turfs(doors2, config=cfg, region_polygons=polys)
    t_full = time.perf_counter() - t0
    keep = ["door_id", "turf_id", "door_order"]
    a = cut.doors.loc[~cut.doors["region"].isin(touched), keep].reset_index(drop=True)
    b = full.doors.loc[~full.doors["region"].isin(touched), keep].reset_index(drop=True)
    same = recut.doors[keep].equals(full.doors[keep]) and recut.turfs.drop(columns="geometry").equals(
        full.turfs.drop(columns="geometry"))
    result["recut"] = {"results_rows": report.rows, "imported": report.added, "import_seconds": round(t_import, 2),
                       "households_excluded": counts2["households_removed_contacted"],
                       "recut_seconds": round(t_recut, 2), "full_recut_seconds": round(t_full, 2),
                       "regions_reused": recut.metrics["regions_reused"], "incremental_equals_full": bool(same),
                       "untouched_precincts_unchanged_in_full_cut": bool(a.equals(b)),
                       "turfs_after": int(len(recut.turfs)),
                       "within_10pct_after": recut.metrics["share_within_tolerance"]}
    r = result["recut"]
    lines += ["## Re-cut after importing results", "",
              f"{r['results_rows']:,} result rows imported in {r['import_seconds']} s; "
              f"{r['households_excluded']:,} contacted households excluded; re-cut **{r['recut_seconds']} s** "
              f"(doors again, then only the {len(touched)} changed precincts cut; {r['regions_reused']} reused); "
              f"a full re-cut of every precinct takes {r['full_recut_seconds']} s and gives the same turfs: "
              f"{r['incremental_equals_full']}; untouched precincts unchanged in the full cut: "
              f"{r['untouched_precincts_unchanged_in_full_cut']}; within ±10 % after: {r['within_10pct_after']:.1%}.",
              ""]

    # --- anchors ------------------------------------------------------------------------------------------------
    big = [reg for reg in regions if (d["region"] == reg).sum() >= 250][: args.compare]
    sub_doors = doors.loc[doors["region"].isin(big)]
    t0 = time.perf_counter()
    ours = cut_turfs(sub_doors, config=cfg, region_polygons=polys)
    t_ours = time.perf_counter() - t0
    sat, scrs = atom_table(ours)
    edges = ours.edges
    k_of = sat.groupby("region")["turf"].nunique().to_dict()
    rows = [evaluate("geo_segment (spanning-tree bipartition)", sat, sat["turf"].to_numpy(), edges, scrs, polys,
                     t_ours, "incl. walking order and polygons")]
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = np.empty(len(sat), dtype=object)
    reg = sat["region"].to_numpy(dtype=str)
    for rname in np.unique(reg):
        idx = np.flatnonzero(reg == rname)
        model = KMeans(n_clusters=k_of[rname], n_init=4, random_state=0)
        lab = model.fit_predict(sat[["x", "y"]].to_numpy()[idx], sample_weight=sat["w"].to_numpy()[idx])
        km[idx] = [f"{rname}:{c}" for c in lab]
    rows.append(evaluate("k-means", sat, km.astype(str), edges, scrs, polys, time.perf_counter() - t0))
    t0 = time.perf_counter()
    qk, zoom = quadkey_labels(sat)
    rows.append(evaluate("quadkey squares", sat, qk, edges, scrs, polys, time.perf_counter() - t0,
                         f"zoom {zoom}; its own number of turfs"))
    t0 = time.perf_counter()
    gc, failures = gerrychain_labels(sat, edges, k_of)
    rows.append(evaluate("GerryChain recursive_tree_part", sat, gc, edges, scrs, polys, time.perf_counter() - t0,
                         f"{failures} precincts without a balanced cut (left whole)"))
    result["anchors"] = {"precincts": len(big), "doors": int(sat["w"].sum()), "rows": rows}
    cols = ["method", "turfs", "within_10pct", "doors_min", "doors_max", "contiguous", "polsby_popper",
            "mean_dist_to_centroid_m", "walk_m_per_door", "seconds", "note"]
    lines += ["## Against the anchors (same doors, same number of turfs per precinct)", "",
              f"{len(big)} precincts, {int(sat['w'].sum()):,} doors.", "", table(rows, cols), ""]

    # --- routes vs OR-Tools -------------------------------------------------------------------------------------
    sample = rng.choice(cut.turfs["turf_id"].to_numpy(dtype=str), size=min(args.ortools, len(cut.turfs)),
                        replace=False)
    rrows = []
    for tid in sample:
        at = atoms[atoms["turf"] == tid]
        x, y = at["x"].to_numpy(), at["y"].to_numpy()
        trow = cut.turfs.loc[cut.turfs["turf_id"] == tid].iloc[0]
        t0 = time.perf_counter()
        plain = path_length(x, y, route_order(x, y, side_penalty_m=0.0))
        t_plain = time.perf_counter() - t0
        best = ortools_route(x, y, args.ortools_seconds)
        rrows.append({"turf": tid, "buildings": len(at), "ortools_m": best, "route_m": float(trow["route_m"]),
                      "plain_m": plain, "street_m": float(trow["street_route_m"]), "plain_seconds": t_plain})
    rr = pd.DataFrame(rrows)
    ratio = rr["route_m"] / rr["ortools_m"]
    ratio_plain = rr["plain_m"] / rr["ortools_m"]
    street_ratio = rr["street_m"] / rr["route_m"]
    result["routes"] = {"turfs": len(rr), "mean_buildings": round(float(rr["buildings"].mean()), 1),
                        "route_vs_ortools_mean": round(float(ratio.mean()), 3),
                        "route_vs_ortools_max": round(float(ratio.max()), 3),
                        "plain_vs_ortools_mean": round(float(ratio_plain.mean()), 3),
                        "plain_vs_ortools_max": round(float(ratio_plain.max()), 3),
                        "street_vs_route_mean": round(float(street_ratio.mean()), 3),
                        "route_shorter_than_street_share": round(float((rr["route_m"] < rr["street_m"]).mean()), 3),
                        "ortools_seconds_per_turf": args.ortools_seconds,
                        "ours_ms_per_turf": round(1000 * float(rr["plain_seconds"].mean()), 1)}
    q = result["routes"]
    lines += ["## Routes against OR-Tools", "",
              f"{q['turfs']} sampled turfs ({q['mean_buildings']} buildings on average); OR-Tools: open path, guided "
              f"local search, {args.ortools_seconds} s per turf; ours {q['ours_ms_per_turf']} ms per turf.", "",
              "| order | length / OR-Tools (mean) | max |", "|---|---:|---:|",
              f"| route-optimized, street-side penalty (as written) | {q['route_vs_ortools_mean']} | "
              f"{q['route_vs_ortools_max']} |",
              f"| route-optimized, no penalty | {q['plain_vs_ortools_mean']} | {q['plain_vs_ortools_max']} |",
              f"| street-sorted / route-optimized | {q['street_vs_route_mean']} | |", "",
              f"Route-optimized shorter than street-sorted in {q['route_shorter_than_street_share']:.0%} of turfs.",
              ""]

    # --- packets ------------------------------------------------------------------------------------------------
    exe = find_chromium()
    if exe is not None and args.packets > 0:
        turfs = cut.turfs.iloc[: args.packets]
        rows_w = walklist_rows(cut.doors, members, turfs)
        rows_w = rows_w[rows_w["turf_id"].isin(turfs["turf_id"])]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            sections = packet_sections(turfs, cut.routes, cut.doors, rows_w, config=cfg)
            written = write_packets(sections, Path(tmp), pdf=True)
            secs = time.perf_counter() - t0
            pages = 0
            from pypdf import PdfReader

            for p in written["pdf"].values():
                pages += len(PdfReader(str(p)).pages)
        result["packets"] = {"packets": len(written["pdf"]), "pages": pages, "seconds": round(secs, 1)}
        lines += ["## Packets", "", f"{len(written['pdf'])} packets ({pages:,} letter pages) to HTML and PDF "
                  "(headless Chromium, 50 packets per launch, two launches at a time, split per turf): "
                  f"**{secs:.1f} s**.", ""]
    else:
        result["packets"] = {"skipped": "Chromium not found" if exe is None else "--packets 0"}
    result["load_end"] = os.getloadavg()[0]
    m = result["machine"]
    lines.insert(1, "")
    lines.insert(2, f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; load "
                    f"average {result['load_start']:.2f} at start, {result['load_end']:.2f} at the end (shared).")
    text = "\n".join(lines)
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "turfs.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "turfs.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
