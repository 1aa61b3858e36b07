"""Ingest benchmark: the pipeline's ingest stage on a generated NC county, this code beside an earlier revision.

Usage: python benchmarks/ingest.py [--voters 1000000] [--seed 1] [--before REV] [--repeat 2] [--no-pandas]
       python benchmarks/ingest.py --read-only [--voters 5000000] [--before REV] [--repeat 1]

Generates (once, cached under benchmarks/data/) a synthetic NC voter file with its vote history, geocodes and
signals, then runs, each in a fresh child process so peak RSS is its own:

1. ``pandas.read_csv`` of the voter file, all columns as strings (the naive baseline: no line numbers, no
   validation, no addresses), unless ``--no-pandas``;
2. the ingest stage as ``geo-segment run`` does it (``runner._ingest``): ``read_voter_file`` with the vote history
   and geocodes, ``write_parquet`` of voters and history, ``read_signals`` and its ``write_parquet``, with the code
   of ``--before REV`` (extracted with ``git archive``) and with the working tree's;
3. the same stage through ``geo_segment.io.ingest.ingest_files`` (the runner change proposed with it: voters and
   history written on a side thread while the signals are read).

``--read-only`` times instead the call the join benchmark's end-to-end variant makes,
``read_voter_file(ncvoter, layout="nc", geocodes=geocodes)`` (no history, no writes), with ``--before REV``'s code
and the working tree's, and checks the results are identical: the voters frame (values, dtypes, index, column
order, geometry as WKB), the rejects (lines and reasons in order) and the stage records (all but the seconds).
Results go to benchmarks/results/ingest_read_<size>.json and .md.

Each run records wall seconds, CPU seconds (user + system, every thread), peak RSS and the
1-minute load average before it (2 cores shared with other jobs: above about 1 the figures include waiting). The
outputs of every variant are compared with the first's (pandas ``equals`` with dtypes, and byte for byte).

Prints a table and saves it to benchmarks/results/ingest_<size>.json and .md with the machine's facts.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PANDAS_CHILD = r"""
import json, os, resource, sys, time
import pandas as pd
ru0 = resource.getrusage(resource.RUSAGE_SELF)
load = os.getloadavg()[0]
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], sep="\t", dtype=str, keep_default_na=False)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows": len(df), "seconds": time.perf_counter() - t0,
                  "cpu_seconds": ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024, "load_1m": load}))
"""

# what runner._ingest does, timed: read the voter file (with history and geocodes) and the signals, write parquet
STAGE_CHILD = r"""
import json, os, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
folder, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
from geo_segment.io.atomic import write_parquet
from geo_segment.io.signals import read_signals
from geo_segment.io.voters import read_voter_file
import geo_segment
ru0 = resource.getrusage(resource.RUSAGE_SELF)
load = os.getloadavg()[0]
t0 = time.perf_counter()
inputs = {"voter_file": folder / "ncvoter.txt", "history": folder / "ncvhis.txt", "geocodes": folder / "geocodes.csv",
          "signals": folder / "signals.csv"}
if mode == "steps":  # runner._ingest as it is: read, write, read, write
    read = read_voter_file(inputs["voter_file"], layout="nc", history=inputs["history"], geocodes=inputs["geocodes"])
    write_parquet(read.voters, out / "voters.parquet")
    write_parquet(read.history, out / "vote_history.parquet")
    t1 = time.perf_counter()
    sig = read_signals(inputs["signals"])
    write_parquet(sig.signals, out / "signals.parquet")
    t2 = time.perf_counter()
    records, rejects = [*read.stages, sig.stage], [read.rejects, sig.rejects]
else:  # the proposed runner: geo_segment.io.ingest.ingest_files
    from geo_segment.io.ingest import ingest_files
    res = ingest_files(inputs, out, layout="nc")
    t1 = t2 = time.perf_counter()
    records, rejects = res.records, res.rejects
assert all(r.balanced for r in records)
import pandas as pd
from geo_segment import schema as S
rejects = pd.concat([r for r in rejects if len(r)] or [S.empty_rejects()], ignore_index=True)
rejects[list(S.REJECT_COLUMNS)].to_csv(out / "rejects.csv", index=False, lineterminator="\n")
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows": records[0].rows_out, "history_rows": records[2].rows_out,
                  "signals_rows": records[-1].rows_out,
                  "seconds": t2 - t0, "voters_seconds": t1 - t0, "signals_seconds": t2 - t1,
                  "cpu_seconds": ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024, "load_1m": load, "code": geo_segment.__file__}))
"""

# the join benchmark's end-to-end ingest call, timed; the outputs are pickled (untimed) for the comparison
READ_CHILD = r"""
import json, os, pickle, resource, sys, time
from pathlib import Path
folder, out = Path(sys.argv[1]), Path(sys.argv[2])
from geo_segment.io.voters import read_voter_file
import geo_segment
ru0 = resource.getrusage(resource.RUSAGE_SELF)
load = os.getloadavg()[0]
t0 = time.perf_counter()
read = read_voter_file(folder / "ncvoter.txt", layout="nc", geocodes=folder / "geocodes.csv")
seconds = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
v = read.voters
with open(out / "read.pkl", "wb") as fh:
    pickle.dump({"voters": v.drop(columns=v.geometry.name).copy(), "wkb": v.geometry.to_wkb(), "crs": str(v.crs),
                 "columns": list(v.columns), "rejects": read.rejects, "history": read.history,
                 "stages": [(r.name, r.rows_in, r.rows_out, r.rows_rejected, r.metrics) for r in read.stages]}, fh)
print(json.dumps({"rows": len(v), "seconds": seconds,
                  "cpu_seconds": ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024, "load_1m": load, "code": geo_segment.__file__}))
"""

OUTPUTS = ("voters.parquet", "vote_history.parquet", "signals.parquet", "rejects.csv")


def ensure_data(n: int, seed: int) -> Path:
    folder = HERE / "data" / f"nc_{n}_{seed}"
    if not (folder / "ncvoter.txt").exists():
        from geo_segment.synth import generate_population, write_layout

        t0 = time.perf_counter()
        pop = generate_population(n, seed=seed)
        write_layout(pop, "nc", folder, seed=seed)
        print(f"generated {n:,} voters in {time.perf_counter() - t0:.1f} s -> {folder}", file=sys.stderr)
    return folder


def run_child(script: str, args: list[str], code: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    # run in the code's folder: ``python -c`` puts the working directory first on sys.path, ahead of PYTHONPATH,
    # so a child started from the repository would import the working tree's code whatever PYTHONPATH says
    out = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True,
                         env=env, cwd=str(code) if code is not None else None)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if code is not None and "code" in result and not result["code"].startswith(str(code)):
        raise RuntimeError(f"the child ran {result['code']}, not the code under {code}")
    return result


def same_outputs(a: Path, b: Path) -> dict[str, dict[str, bool]]:
    """Per output: equal as tables (values, dtypes, columns) and byte for byte."""
    import pandas as pd

    result = {}
    for name in OUTPUTS:
        if name.endswith(".csv"):
            x = pd.read_csv(a / name, dtype=str, keep_default_na=False)
            y = pd.read_csv(b / name, dtype=str, keep_default_na=False)
        else:
            x, y = pd.read_parquet(a / name), pd.read_parquet(b / name)
        equal = bool(x.equals(y) and list(x.columns) == list(y.columns) and (x.dtypes == y.dtypes).all())
        result[name] = {"equal": equal, "bytes_identical": filecmp.cmp(a / name, b / name, shallow=False)}
    return result


def same_read(a: Path, b: Path) -> dict[str, bool]:
    """Whether two READ_CHILD results are identical, part by part (pandas' exact comparison, dtypes included)."""
    import pickle

    import pandas as pd

    with open(a / "read.pkl", "rb") as fa, open(b / "read.pkl", "rb") as fb:
        x, y = pickle.load(fa), pickle.load(fb)

    def frames(p: pd.DataFrame, q: pd.DataFrame) -> bool:
        try:
            pd.testing.assert_frame_equal(p, q, check_exact=True)
        except AssertionError:
            return False
        return bool(p.index.equals(q.index) and list(p.columns) == list(q.columns))

    return {
        "voters": frames(x["voters"], y["voters"]) and x["columns"] == y["columns"] and x["crs"] == y["crs"],
        "geometry (WKB)": bool(x["wkb"].equals(y["wkb"])),
        "rejects": frames(x["rejects"], y["rejects"]),
        "history": frames(x["history"], y["history"]),
        "stage records": x["stages"] == y["stages"],
    }


def _checkout(rev: str, dest: Path) -> Path:
    """``geo_segment/`` as it was at ``rev``, extracted into ``dest`` (the before-code of a comparison)."""
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "geo_segment"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def read_only(args: argparse.Namespace, folder: Path, sizes: dict[str, int]) -> None:
    """The ``--read-only`` comparison: READ_CHILD with the ``--before`` code, then with the working tree's."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ingest_read_") as tmp_name:
        tmp = Path(tmp_name)
        variants: list[tuple[str, Path]] = []
        if args.before:
            old = _checkout(args.before, tmp / "before_code")
            variants.append((f"before ({args.before})", old))
        variants.append(("after (working tree)", ROOT))
        outs = []
        for name, code in variants:
            out = tmp / f"out_{len(outs)}"
            out.mkdir()
            outs.append(out)
            runs = []
            for _ in range(args.repeat):
                runs.append(run_child(READ_CHILD, [str(folder), str(out)], code))
                print(f"{name}: {runs[-1]['seconds']:.1f} s, CPU {runs[-1]['cpu_seconds']:.1f} s, "
                      f"{runs[-1]['peak_rss_mb']:,.0f} MB (load {runs[-1]['load_1m']:.2f})", file=sys.stderr)
            results[name] = summarize(runs)
        same = same_read(outs[0], outs[-1]) if len(outs) > 1 else {}
    report = {
        "benchmark": "ingest_read", "voters": args.voters, "seed": args.seed, "before": args.before,
        "call": 'read_voter_file(ncvoter, layout="nc", geocodes=geocodes)', "machine": machine(),
        "file_bytes": sizes, "results": results, "identical": same,
        "target": "issue 3: 5M end to end from the CSV (this call + join + aggregates) <= 15 s and <= 3 GB",
    }
    size = f"{args.voters // 1_000_000}m" if args.voters % 1_000_000 == 0 else f"{args.voters // 1000}k"
    lines = [
        f"# Voter file read as the end-to-end join benchmark does it: {args.voters:,} NC-layout voters "
        f"({sizes.get('ncvoter.txt', 0) / 2**20:,.0f} MiB voter file, {sizes.get('geocodes.csv', 0) / 2**20:,.0f} MiB "
        "geocodes)",
        "",
        f"`python benchmarks/ingest.py --read-only --voters {args.voters}"
        + (f" --before {args.before}" if args.before else "") + f" --repeat {args.repeat}`: "
        '`read_voter_file(ncvoter, layout="nc", geocodes=geocodes)` in a fresh process per run. Wall and CPU '
        "(user + system, every thread) of the best run, peak RSS of the process; load: 1-minute load average "
        "before each run (2 cores shared with other jobs: above about 1 the wall times include waiting).",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['memory_gib']} GiB, Python {report['machine']['python']}",
        "",
        "| code | voters | wall s (best) | runs s | CPU s | peak RSS MB | load |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for kind, r in results.items():
        lines.append(f"| {kind} | {r['rows']:,} | {r['seconds']:.1f} | {r['runs_seconds']} | {r['cpu_seconds']:.1f} | "
                     f"{r['peak_rss_mb']:,.0f} | {r['loads']} |")
    if len(results) == 2:
        b, a = results.values()
        lines += ["", f"Before / after: wall {b['seconds'] / a['seconds']:.2f}x, CPU "
                      f"{b['cpu_seconds'] / a['cpu_seconds']:.2f}x, "
                      f"peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x."]
    if same:
        lines += ["", "Results, before vs after: " + ", ".join(
            f"{k} {'identical' if v else 'DIFFERENT'}" for k, v in same.items())]
    save(f"ingest_read_{size}", report, lines)


def save(name: str, report: dict[str, Any], lines: list[str]) -> None:
    """Print the Markdown table and write it with the JSON report to ``results/<name>.md`` and ``.json``."""
    text = "\n".join(lines) + "\n"
    print(text)
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (res / f"{name}.md").write_text(text)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(runs, key=lambda r: r["seconds"])
    times = sorted(r["seconds"] for r in runs)
    return {**best, "median_seconds": times[len(times) // 2], "runs_seconds": [round(t, 2) for t in times],
            "loads": [round(r["load_1m"], 2) for r in runs],
            "rows_per_s": best["rows"] / best["seconds"], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voters", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--before", default=None, help="git revision to compare with (its geo_segment, via git archive)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per variant; the best is reported, with the median")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas.read_csv baseline")
    ap.add_argument("--read-only", action="store_true",
                    help="time read_voter_file(ncvoter, layout='nc', geocodes=...) only (join.py's e2e call)")
    args = ap.parse_args()
    folder = ensure_data(args.voters, args.seed)
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    if args.read_only:
        read_only(args, folder, sizes)
        return
    results: dict[str, Any] = {}
    same: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ingest_bench_") as tmp_name:
        tmp = Path(tmp_name)
        variants: list[tuple[str, Path, str]] = []
        if args.before:
            old = _checkout(args.before, tmp / "before_code")
            variants.append((f"before ({args.before}), runner's steps", old, "steps"))
        variants.append(("after, runner's steps", ROOT, "steps"))
        variants.append(("after, ingest_files (proposed runner)", ROOT, "ingest_files"))
        if not args.no_pandas:
            results["pandas.read_csv (voter file only)"] = summarize(
                [run_child(PANDAS_CHILD, [str(folder / "ncvoter.txt")], None) for _ in range(args.repeat)])
        outs = []
        for name, code, mode in variants:
            out = tmp / f"out_{len(outs)}"
            out.mkdir()
            outs.append(out)
            runs = []
            for _ in range(args.repeat):
                runs.append(run_child(STAGE_CHILD, [str(folder), str(out), mode], code))
                print(f"{name}: {runs[-1]['seconds']:.1f} s (load {runs[-1]['load_1m']:.2f})", file=sys.stderr)
            results[f"ingest stage, {name}"] = summarize(runs)
        same = {f"{variants[0][0]} vs {name}": same_outputs(outs[0], o)
                for (name, _, _), o in zip(variants[1:], outs[1:], strict=True)}
    report = {
        "benchmark": "ingest", "voters": args.voters, "seed": args.seed, "before": args.before,
        "machine": machine(), "file_bytes": sizes, "results": results, "same_outputs": same,
        "targets": "issue 8: ingest <= 8 s at 1M inside the pipeline; issue 3: 5M end to end from the CSV <= 15 s "
                   "and <= 3 GB",
    }
    size = f"{args.voters // 1_000_000}m" if args.voters % 1_000_000 == 0 else f"{args.voters // 1000}k"
    lines = [
        f"# Ingest stage: {args.voters:,} NC-layout voters ({sizes.get('ncvoter.txt', 0) / 2**20:,.0f} MiB voter "
        f"file, {sizes.get('ncvhis.txt', 0) / 2**20:,.0f} MiB history, {sizes.get('geocodes.csv', 0) / 2**20:,.0f} "
        f"MiB geocodes, {sizes.get('signals.csv', 0) / 2**20:,.0f} MiB signals)",
        "",
        f"`python benchmarks/ingest.py --voters {args.voters}"
        + (f" --before {args.before}" if args.before else "") + f" --repeat {args.repeat}"
        + (" --no-pandas" if args.no_pandas else "") + "`. The stage is what `geo-segment run` does in `ingest`: "
        "read the voter file with its history and geocodes, read the signals, write the three Parquet files. "
        "Wall and CPU (user + system, all threads) of the best run; load: 1-minute load average before it "
        "(2 cores shared with other jobs).",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['memory_gib']} GiB, Python {report['machine']['python']}",
        "",
        "| variant | voters | wall s (best) | runs s | CPU s | voters/s | peak RSS MB | load |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        lines.append(f"| {kind} | {r['rows']:,} | {r['seconds']:.1f} | {r['runs_seconds']} | {r['cpu_seconds']:.1f} | "
                     f"{r['rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} | {r['load_1m']:.2f} |")
    for pair, files in same.items():
        lines += ["", f"Outputs, {pair}: " + ", ".join(
            f"{k} {'equal' if v['equal'] else 'DIFFERENT'}{' (byte for byte)' if v['bytes_identical'] else ''}"
            for k, v in files.items())]
    save(f"ingest_{size}", report, lines)


if __name__ == "__main__":
    main()
