"""Customer-list benchmark: ``build_customer_list`` (normalize and hash each distinct value once) beside the naive
per-row approach (``hash_identifier`` on every cell, as a notebook's ``df.apply`` would).

Usage: python benchmarks/exports.py [--sizes 100000,1000000] [--naive-max 100000] [--seed 1]

Stage mode: ``python benchmarks/exports.py --stage RUN_FOLDER --config RUN_TOML [--before REV] [--repeat 2]
[--size-label 1M]`` runs the whole export stage of a finished run folder (read only: the outputs go to temporary
folders) in a child process per variant, the code of ``REV`` (extracted with ``git archive``) beside the working
tree's: reading the voters as the runner does today (``gpd.read_parquet`` of the whole file) and, for the new code,
with :func:`geo_segment.exports.stage.read_export_voters` (the stage's columns only). It also runs the stage inside
the pipeline (``run_pipeline(..., only="exports")`` on a hard-linked copy of the folder) and reports the seconds
the runner records. Wall and CPU seconds, the 1-minute load average before each run, peak RSS, and whether every
output is byte for byte the one of ``REV`` (``audit.jsonl`` without its time stamps). Results go to
``benchmarks/results/exports_stage_<label>.{json,md}``.

Voters come from ``geo_segment.synth.generate_population`` (names, ZIPs, city, state as the generator draws them:
a few hundred distinct names), with an email and a phone number unique to each voter (random valid US area codes),
so the two most expensive identifiers get no help from deduplication: the gain comes from names, city, state, ZIP
and country only. Both variants produce the same hashes (checked). Generation and imports are outside the timing;
best and median of three runs. Results go to ``benchmarks/results/exports.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine

from geo_segment.exports import build_customer_list, hash_identifier
from geo_segment.exports.hashing import META_HEADERS
from geo_segment.synth import generate_population

AREA_CODES = np.array([212, 301, 401, 415, 503, 617, 702, 704, 919, 984])
SOURCE = {"email": "email", "phone": "phone", "first_name": "first_name", "last_name": "last_name", "city": "city",
          "state": "state", "zip": "zip5"}


def make_voters(n: int, seed: int) -> pd.DataFrame:
    pop = generate_population(n, seed=seed).voters
    rng = np.random.default_rng(seed)
    idx = np.arange(len(pop))
    area = rng.choice(AREA_CODES, len(pop))
    exchange = rng.integers(200, 1000, len(pop))
    line = rng.integers(0, 10000, len(pop))
    frame = pd.DataFrame({
        "voter_id": pop["voter_id"].to_numpy(),
        "first_name": pop["first_name"].to_numpy(),
        "last_name": pop["last_name"].to_numpy(),
        "email": [f"{f}.{last}{i}@Example.org" for f, last, i in zip(pop["first_name"], pop["last_name"], idx,
                                                                        strict=True)],
        "phone": [f"({a}) {e}-{x:04d}" for a, e, x in zip(area, exchange, line, strict=True)],
        "city": pop["city"].to_numpy(),
        "state": pop["state"].to_numpy(),
        "zip5": pop["zip5"].to_numpy(),
    })
    return frame


def naive(voters: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for kind, col in SOURCE.items():
        values = []
        for v in voters[col]:
            try:
                values.append(hash_identifier(v, kind=kind, platform="meta"))
            except ValueError:
                values.append(None)
        out[META_HEADERS[kind]] = values
    out["country"] = [hash_identifier("US", kind="country", platform="meta")] * len(voters)
    return pd.DataFrame(out)


def timed(fn, *args):  # type: ignore[no-untyped-def]
    runs, result = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        result = fn(*args)
        runs.append(time.perf_counter() - t0)
    return result, min(runs), statistics.median(runs)


STEPS = {  # module: functions timed inside the stage (present in the old and the new code)
    "geo_segment.exports.stage": ("export_geofences", "export_audiences", "demo_audiences"),
    "geo_segment.exports.geofences": ("prepare_fences", "_voters_in_fences", "radius_targets", "geojson_dict",
                                      "kml_text", "polygons_to_cells"),
    "geo_segment.exports.audiences": ("build_customer_list", "write_private_csv", "hash_series", "hash_codes",
                                      "overlap_report", "frame_digest"),
}


def stage_child(folder: Path, config: Path, out: Path, read: str) -> None:
    """Run the export stage of ``folder`` into ``out`` as the runner does (the code on ``sys.path`` first); print
    timings as JSON. ``read``: ``runner`` (the whole voters file, as ``runner._exports`` reads it today) or
    ``columns`` (``read_export_voters``)."""
    import importlib
    import resource

    import geopandas as gpd

    from geo_segment.config import load_config

    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> Any:
        def inner(*a: Any, **k: Any) -> Any:
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                t = times.setdefault(name, [0.0, 0.0])
                t[0] += time.perf_counter() - w
                t[1] += time.process_time() - c
        return inner

    for mod_name, names in STEPS.items():
        mod = importlib.import_module(mod_name)
        for name in names:
            if hasattr(mod, name):
                setattr(mod, name, timed(name, getattr(mod, name)))
    stage_mod = importlib.import_module("geo_segment.exports.stage")
    cfg = load_config(config)
    w, c = time.perf_counter(), time.process_time()
    if read == "columns":
        voters = stage_mod.read_export_voters(folder / "voters.parquet", cfg)
    else:
        voters = gpd.read_parquet(folder / "voters.parquet")
    layers = {n: gpd.read_parquet(folder / f"{n}.parquet") if (folder / f"{n}.parquet").exists() else None
              for n in ("micro_geos", "turfs", "precincts")}
    read_s = (time.perf_counter() - w, time.process_time() - c)
    w, c = time.perf_counter(), time.process_time()
    stage_mod.export_stage(voters, layers["micro_geos"], layers["precincts"], out, cfg, turfs=layers["turfs"])
    stage_s = (time.perf_counter() - w, time.process_time() - c)
    print(json.dumps({"code": stage_mod.__file__, "read_wall": read_s[0], "read_cpu": read_s[1],
                      "stage_wall": stage_s[0], "stage_cpu": stage_s[1], "total_wall": read_s[0] + stage_s[0],
                      "total_cpu": read_s[1] + stage_s[1], "steps": times, "voters": len(voters),
                      "fences": {n: 0 if f is None else len(f) for n, f in layers.items()},
                      "output_mb": round(sum(f.stat().st_size for f in out.iterdir()) / 1e6, 1),
                      "columns": len(voters.columns),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def pipeline_child(config: Path, out: Path) -> None:
    """``run_pipeline(config, out, only="exports")`` with the library's stages; print the runner's record."""
    from geo_segment.runner import core_stages, run_pipeline

    w, c = time.perf_counter(), time.process_time()
    run_pipeline(config, out, stages=core_stages(), only="exports", report=False)
    state = json.loads((out / "stages" / "exports" / "stage.json").read_text())
    print(json.dumps({"runner_seconds": state["seconds"], "peak_rss_mb": state.get("peak_rss_mb"),
                      "process_wall": time.perf_counter() - w, "process_cpu": time.process_time() - c}))


def same_exports(a: Path, b: Path) -> dict[str, Any]:
    """Byte-for-byte comparison of two export folders (``audit.jsonl`` line by line without ``time``), and of the
    files' permissions."""
    fa = sorted(p.name for p in a.iterdir() if p.is_file())
    fb = sorted(p.name for p in b.iterdir() if p.is_file())
    differ = []
    for name in sorted(set(fa) & set(fb)):
        x, y = a / name, b / name
        if name == "audit.jsonl":
            def strip(p: Path) -> list[dict[str, Any]]:
                return [{k: v for k, v in json.loads(line).items() if k != "time"}
                        for line in p.read_text(encoding="utf-8").splitlines()]
            same = strip(x) == strip(y)
        else:
            same = x.read_bytes() == y.read_bytes()
        if not same or (x.stat().st_mode & 0o777) != (y.stat().st_mode & 0o777):
            differ.append(name)
    return {"files": len(fa), "same_names": fa == fb, "differ": differ, "identical": fa == fb and not differ}


def _child(args: list[str], code: str) -> tuple[dict[str, Any], float]:
    import subprocess

    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          env={**os.environ, "PYTHONPATH": code}, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1]), load


def stage_main(folder: Path, config: Path, before: str | None, repeat: int, label: str) -> None:
    import shutil
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    result: dict[str, Any] = {"machine": machine(), "load_start": os.getloadavg()[0], "folder": str(folder),
                              "config": str(config), "before": before, "runs": {}, "pipeline": {}}
    with tempfile.TemporaryDirectory(prefix="exports_stage_") as tmp_name:
        tmp = Path(tmp_name)
        variants = [("after (runner's read)", str(root), "runner"), ("after (stage's columns)", str(root), "columns")]
        if before:
            old = tmp / "before_code"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(root), "archive", before, "geo_segment"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            variants.insert(0, ("before (runner's read)", str(old), "runner"))
        for k in range(repeat):  # interleaved, so a busy spell of the shared machine hits every variant
            for name, code, read in variants:
                out = tmp / f"out_{len(result['runs'].get(name, []))}_{abs(hash(name))}"
                run, load = _child(["--stage-child", str(folder), str(config), str(out), read], code)
                run["load_1m"] = load
                result["runs"].setdefault(name, []).append(run)
                print(name, json.dumps({x: round(v, 2) for x, v in run.items() if isinstance(v, float)}), flush=True)
                if k == 0:
                    (tmp / f"first_{abs(hash(name))}").symlink_to(out)
                else:
                    shutil.rmtree(out)
            for name, code in ([("before", str(tmp / "before_code"))] if before else []) + [("after", str(root))]:
                copy = tmp / f"run_{name}_{k}"
                subprocess.run(["cp", "-al", str(folder), str(copy)], check=True)
                run, load = _child(["--pipeline-child", str(config), str(copy)], code)
                run["load_1m"] = load
                result["pipeline"].setdefault(name, []).append(run)
                print("pipeline", name, json.dumps(run), flush=True)
                if k == 0:
                    result.setdefault("pipeline_outputs", {})[name] = str(copy / "exports")
                else:
                    shutil.rmtree(copy)
        if before:
            ref = tmp / f"first_{abs(hash(variants[0][0]))}"
            result["same_outputs"] = {name: same_exports(ref, tmp / f"first_{abs(hash(name))}")
                                      for name, _, _ in variants[1:]}
            result["same_outputs"]["pipeline after"] = same_exports(Path(result["pipeline_outputs"]["before"]),
                                                                    Path(result["pipeline_outputs"]["after"]))
        result.pop("pipeline_outputs", None)
    result["load_end"] = os.getloadavg()[0]
    text = stage_report(result, label)
    print(text)
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    slug = "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_") or "run"
    (out_dir / f"exports_stage_{slug}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"exports_stage_{slug}.md").write_text(text + "\n", encoding="utf-8")


def stage_report(result: dict[str, Any], label: str) -> str:
    runs = result["runs"]
    names = list(runs)
    best = {n: min(runs[n], key=lambda r: r["total_wall"]) for n in names}
    first = best[names[-1]]
    m = result["machine"]
    fences = ", ".join(f"{n:,} {k}" for k, n in first.get("fences", {}).items())
    lines = [f"# Export stage at {label}: {first['voters']:,} voters", "",
             f"Fences: {fences}; two audiences (`micro_geo`, `top`) for Meta and Google; "
             f"{first.get('output_mb', '?')} MB of exports.", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; 1-minute load "
             f"average {result['load_start']:.2f} at start, {result['load_end']:.2f} at the end (2 cores shared with "
             f"other agents: wall times are noisy, CPU seconds less so). Best of {len(runs[names[0]])} runs per "
             "variant (interleaved); seconds wall (CPU).", "",
             "| step | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    steps = sorted({s for n in names for s in best[n]["steps"]},
                   key=lambda s: -max(best[n]["steps"].get(s, [0, 0])[1] for n in names))
    for row, key in (("read voters + fence layers", "read"), ("export_stage", "stage")):
        lines.append(f"| {row} | " + " | ".join(
            f"{best[n][key + '_wall']:.1f} ({best[n][key + '_cpu']:.1f})" for n in names) + " |")
    for s in steps:
        cells = [f"{best[n]['steps'][s][0]:.2f} ({best[n]['steps'][s][1]:.2f})" if s in best[n]["steps"] else "-"
                 for n in names]
        lines.append(f"| &nbsp; {s} | " + " | ".join(cells) + " |")
    lines.append("| **read + stage** | " + " | ".join(
        f"**{best[n]['total_wall']:.1f}** ({best[n]['total_cpu']:.1f})" for n in names) + " |")
    lines.append("| median read + stage, wall | " + " | ".join(
        f"{statistics.median(r['total_wall'] for r in runs[n]):.1f}" for n in names) + " |")
    lines.append("| load average before the best run | " + " | ".join(f"{best[n]['load_1m']:.2f}" for n in names)
                 + " |")
    lines.append("| voter columns read | " + " | ".join(str(best[n]["columns"]) for n in names) + " |")
    lines.append("| peak RSS MB | " + " | ".join(f"{best[n]['peak_rss_mb']:,.0f}" for n in names) + " |")
    if result["pipeline"]:
        lines += ["", "Inside the pipeline (`run_pipeline(config, copy, only=\"exports\")`, the runner reading the "
                  "whole voters file as today): the seconds the runner records for the stage, and the process.", "",
                  "| code | runner's stage seconds (best, median) | process wall (CPU) of the best | load before |",
                  "|---|---:|---:|---:|"]
        for name, rs in result["pipeline"].items():
            b = min(rs, key=lambda r: r["runner_seconds"])
            lines.append(f"| {name} | {b['runner_seconds']:.1f}, "
                         f"{statistics.median(r['runner_seconds'] for r in rs):.1f} | "
                         f"{b['process_wall']:.1f} ({b['process_cpu']:.1f}) | {b['load_1m']:.2f} |")
    if "same_outputs" in result:
        lines += ["", "Same outputs as the old code (every file of `exports/` byte for byte and its permissions; "
                  "`audit.jsonl` without its time stamps): " + "; ".join(
                      f"{n}: **{v['identical']}** ({v['files']} files, differ {v['differ']})"
                      for n, v in result["same_outputs"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--stage-child":
        stage_child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--pipeline-child":
        pipeline_child(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    if "--stage" in sys.argv:
        sp = argparse.ArgumentParser()
        sp.add_argument("--stage", type=Path, required=True)
        sp.add_argument("--config", type=Path, required=True)
        sp.add_argument("--before", default=None)
        sp.add_argument("--repeat", type=int, default=2)
        sp.add_argument("--size-label", default="")
        sa = sp.parse_args()
        stage_main(sa.stage, sa.config, sa.before, sa.repeat, sa.size_label or str(sa.stage))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--naive-max", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    load = os.getloadavg()[0]
    for n in [int(s) for s in args.sizes.split(",")]:
        voters = make_voters(n, args.seed)
        distinct = {c: int(voters[c].nunique()) for c in SOURCE.values()}
        project, best, med = timed(lambda v: build_customer_list(v, platform="meta", purpose="political",
                                                                 min_audience=0), voters)
        rows.append({"variant": "project (per distinct value)", "voters": n, "best_s": round(best, 2),
                     "median_s": round(med, 2), "voters_per_s": round(n / med), "distinct": distinct})
        if n <= args.naive_max:
            ref, nbest, nmed = timed(naive, voters)
            cols = list(project.frame.columns)
            same = (len(ref) == len(project.frame)
                    and bool((ref[cols].fillna("").astype(str).to_numpy()
                              == project.frame.fillna("").astype(str).to_numpy()).all()))
            rows.append({"variant": "naive (per row)", "voters": n, "best_s": round(nbest, 2),
                         "median_s": round(nmed, 2), "voters_per_s": round(n / nmed),
                         "ratio_naive_over_project": round(nmed / med, 1), "identical_hashes": same})
        print(json.dumps(rows[-1]), flush=True)
    result = {"machine": machine(), "load_average_1m": round(load, 2), "rows": rows}
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "exports.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# Customer-list benchmark: per-distinct normalization beside per-row hashing", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; 1-minute load "
        f"average before the runs: {result['load_average_1m']} (2 cores shared)", "",
        "Meta file (email, phone, fn, ln, ct, st, zip, country). Emails and phones are unique per voter; the other "
        "identifiers have the generator's cardinality (see `distinct`).", "",
        "| variant | voters | best s | median s | voters/s | ratio naive/project | identical hashes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['voters']:,} | {r['best_s']} | {r['median_s']} | {r['voters_per_s']:,} "
                     f"| {r.get('ratio_naive_over_project', '-')} | {r.get('identical_hashes', '-')} |")
    lines += ["", "Distinct values per column: " + "; ".join(
        f"{r['voters']:,} voters: {r['distinct']}" for r in rows if "distinct" in r), ""]
    (out / "exports.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
