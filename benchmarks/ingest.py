"""Ingest benchmark: a generated NC-layout voter file through geo_segment beside plain pandas.read_csv.

Usage: python benchmarks/ingest.py [--voters 1000000] [--seed 1]

Generates (once, cached under benchmarks/data/) a synthetic NC voter file with its vote history and geocodes,
then runs, each in a fresh subprocess so peak RSS is its own:

1. ``pandas.read_csv`` of the voter file, all columns as strings (the naive baseline: no line numbers, no
   validation, no addresses);
2. ``geo_segment.io.voters.read_voter_file`` on the voter file alone (strict UTF-8 check, line numbers, every
   contract column, address parsing, households);
3. the same with the vote history and geocodes.

Prints a table and saves it to benchmarks/results/ingest.json and .md with the machine's facts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _machine import machine

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time
kind, voters, history, geocodes = sys.argv[1:5]
# imports are outside the timing for both variants
if kind == "pandas":
    import pandas as pd
    t0 = time.perf_counter()
    df = pd.read_csv(voters, sep="\t", dtype=str, keep_default_na=False)
    n = len(df)
else:
    from geo_segment.io.voters import read_voter_file
    kw = {} if kind == "voters" else {"history": history, "geocodes": geocodes}
    t0 = time.perf_counter()
    r = read_voter_file(voters, layout="nc", **kw)
    n = len(r.voters)
    assert all(s.balanced for s in r.stages), r.stages
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": n, "seconds": seconds, "peak_rss_mb": rss}))
"""




def ensure_data(n: int, seed: int) -> Path:
    folder = HERE / "data" / f"nc_{n}_{seed}"
    if not (folder / "ncvoter.txt").exists():
        from geo_segment.synth import generate_population, write_layout

        t0 = time.perf_counter()
        pop = generate_population(n, seed=seed)
        write_layout(pop, "nc", folder, seed=seed)
        print(f"generated {n:,} voters in {time.perf_counter() - t0:.1f} s -> {folder}", file=sys.stderr)
    return folder


def run(kind: str, folder: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(folder / "ncvoter.txt"), str(folder / "ncvhis.txt"),
         str(folder / "geocodes.csv")],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voters", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; best and median are reported")
    args = ap.parse_args()
    folder = ensure_data(args.voters, args.seed)
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    results = {}
    for kind in ("pandas", "voters", "voters+history+geocodes"):
        runs = [run(kind, folder) for _ in range(args.repeat)]
        times = sorted(r["seconds"] for r in runs)
        results[kind] = {
            "rows": runs[0]["rows"],
            "seconds": times[0],
            "median_seconds": times[len(times) // 2],
            "rows_per_s": runs[0]["rows"] / times[0],
            "median_rows_per_s": runs[0]["rows"] / times[len(times) // 2],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "runs_seconds": [round(t, 3) for t in times],
        }
    ratio = results["voters"]["median_seconds"] / results["pandas"]["median_seconds"]
    report = {
        "benchmark": "ingest", "voters": args.voters, "seed": args.seed, "machine": machine(),
        "file_bytes": sizes, "results": results,
        "geo_segment_vs_pandas_time_ratio": round(ratio, 2),
        "target": ">= 200,000 voters/s including address parsing, peak RSS <= 3 GB",
    }
    lines = [
        f"# Ingest benchmark: {args.voters:,} NC-layout voters ({sizes.get('ncvoter.txt', 0) / 2**20:.0f} MiB voter "
        f"file, {sizes.get('ncvhis.txt', 0) / 2**20:.0f} MiB history)",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['memory_gib']} GiB, Python {report['machine']['python']}",
        "",
        "| variant | voters | best s | median s | voters/s (best) | voters/s (median) | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        lines.append(f"| {kind} | {r['rows']:,} | {r['seconds']:.2f} | {r['median_seconds']:.2f} | "
                     f"{r['rows_per_s']:,.0f} | {r['median_rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} |")
    lines += ["", f"geo_segment voters / pandas.read_csv median time ratio: {ratio:.2f}x (pandas does no validation, "
              "line numbers, addresses or households)", ""]
    text = "\n".join(lines)
    print(text)
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    (res / "ingest.md").write_text(text)


if __name__ == "__main__":
    main()
