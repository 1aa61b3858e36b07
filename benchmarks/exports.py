"""Customer-list benchmark: ``build_customer_list`` (normalize and hash each distinct value once) beside the naive
per-row approach (``hash_identifier`` on every cell, as a notebook's ``df.apply`` would).

Usage: python benchmarks/exports.py [--sizes 100000,1000000] [--naive-max 100000] [--seed 1]

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


def main() -> None:
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
