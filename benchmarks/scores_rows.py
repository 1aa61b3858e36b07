"""How many rows the propensity model needs, and which settings: held-out quality and seconds.

Usage: python benchmarks/scores_rows.py [--voters benchmarks/data/nc_1000000_1] [--caps 50000,100000,250000,0]
       python benchmarks/scores_rows.py --settings [--threads 1]

``--settings`` compares the model's speed settings instead of the caps: the defaults before 2026-11-27
(``cv=5``, ``learning_rate=0.05``), each change alone, and the defaults after (``cv=3``, ``learning_rate=0.1``),
reporting held-out ROC-AUC, the fit's and the 1M-row prediction's CPU seconds (with ``--threads 1`` CPU seconds
are what a quiet core would take, whatever else runs on the machine) and the boosting iterations.

A generated county (``benchmarks/pipeline.py`` writes it) is read and joined, features are built for the latest
general election as the label, and 100,000 labelled voters are set aside, never fitted on. For each cap on the
final fit (``PropensityModel(max_fit_rows=...)``, 0 = every other voter), the same model is fitted with
``max_cv_rows=100_000`` and scored on the held-out voters: ROC-AUC, Brier score, ECE, and seconds (fit = cross-
validation + final fit + importance). The difference to the uncapped fit, beside the held-out ROC-AUC's standard
error, says whether the cap costs anything.

Results: ``benchmarks/results/scores_rows.json`` and ``scores_rows.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as geo-segment sets it: idle OpenMP threads sleep
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voters", default=str(HERE / "data" / "nc_1000000_1"))
    ap.add_argument("--caps", default="50000,100000,250000,0")
    ap.add_argument("--holdout", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=None, help="OpenMP threads of each fit (default: every core)")
    ap.add_argument("--settings", action="store_true", help="compare speed settings instead of row caps")
    args = ap.parse_args()

    from geo_segment.features import build_features, eligible_voters, make_label
    from geo_segment.io.voters import read_voter_file
    from geo_segment.pipeline import _label_election
    from geo_segment.scoring import PropensityModel, expected_calibration_error

    d = Path(args.voters)
    t0 = time.perf_counter()
    read = read_voter_file(d / "ncvoter.txt", layout="nc", history=d / "ncvhis.txt", geocodes=d / "geocodes.csv")
    voters, history = read.voters, read.history
    label_election = _label_election(history, "latest-general")
    X = build_features(voters, history, label_election=label_election)
    y = make_label(history, voters["voter_id"], label_election).to_numpy()
    keep = eligible_voters(voters, label_election).to_numpy()
    X, y = X[keep].reset_index(drop=True), y[keep].astype(np.int64)
    print(f"  {len(X):,} labelled voters, {X.shape[1]} features, label {label_election} "
          f"({time.perf_counter() - t0:.0f} s to read and build)", flush=True)
    rng = np.random.default_rng(20261127)
    held = np.zeros(len(X), dtype=bool)
    held[rng.choice(len(X), size=args.holdout, replace=False)] = True
    Xt, yt, Xh, yh = X[~held], y[~held], X[held], y[held]
    if args.settings:
        return _settings(args, d, label_election, X, Xt, yt, Xh, yh, held)
    rows = []
    for cap in [int(c) for c in args.caps.split(",")]:
        load = os.getloadavg()[0]
        t = time.perf_counter()
        m = PropensityModel(max_fit_rows=cap or None, n_threads=args.threads, random_state=0).fit(Xt, yt)
        fit_s = time.perf_counter() - t
        p = m.predict_proba(Xh)[:, 1]
        auc, se = _heldout(yh, p)
        row = {"cap": cap or None, "n_fit": m.metrics_["n_fit"], "model": m.chosen_, "calibrated": m.calibrated_,
               "heldout_roc_auc": round(float(auc), 4), "heldout_auc_se": round(se, 4),
               "heldout_brier": round(float(brier_score_loss(yh, p)), 4),
               "heldout_ece": round(float(expected_calibration_error(yh, p)), 4),
               "cv_roc_auc": round(float(m.metrics_["roc_auc"]), 4), "fit_seconds": round(fit_s, 1),
               "load_before": round(load, 1)}
        rows.append(row)
        print("  ", row, flush=True)
    full = next((r for r in rows if r["cap"] is None), None)
    lines = [
        "# Propensity model: rows of the final fit",
        "",
        f"`python benchmarks/scores_rows.py` on {d.name}: {len(Xt):,} labelled voters to fit on, "
        f"{int(held.sum()):,} held out (never fitted), {X.shape[1]} features, label election {label_election}. "
        "Every fit cross-validates at most 100,000 rows; the cap is on the final model's rows. "
        f"OpenMP threads per fit: {args.threads or 'every core'}. Load: the 1-minute load average before the "
        "fit (on 2 cores; above 1, other jobs shared the CPU and seconds are pessimistic).",
        "",
        f"Machine: {machine()}",
        "",
        "| cap | rows fitted | model | held-out ROC-AUC (SE) | vs uncapped | Brier | ECE | fit s | load |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        diff = f"{r['heldout_roc_auc'] - full['heldout_roc_auc']:+.4f}" if full else "-"
        lines.append(f"| {r['cap'] or 'none'} | {r['n_fit']:,} | {r['model']} | {r['heldout_roc_auc']:.4f} "
                     f"({r['heldout_auc_se']:.4f}) | {diff} | {r['heldout_brier']:.4f} | {r['heldout_ece']:.4f} | "
                     f"{r['fit_seconds']} | {r.get('load_before', '-')} |")
    _save("scores_rows", rows, lines)


def _save(name: str, rows: list[dict[str, object]], lines: list[str]) -> None:
    out = HERE / "results"
    (out / f"{name}.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _heldout(yh: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Held-out ROC-AUC of probabilities ``p`` and its standard error (Hanley & McNeil 1982)."""
    auc = float(roc_auc_score(yh, p))
    n1, n0 = int(yh.sum()), int((1 - yh).sum())
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = float(np.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)))
    return auc, se


SETTINGS = {
    "before: cv=5, learning_rate=0.05": {"cv": 5, "learning_rate": 0.05},
    "cv=5, learning_rate=0.1": {"cv": 5, "learning_rate": 0.1},
    "cv=3, learning_rate=0.05": {"cv": 3, "learning_rate": 0.05},
    "after (defaults): cv=3, learning_rate=0.1": {},
}


def _settings(args, d, label_election, X, Xt, yt, Xh, yh, held):  # type: ignore[no-untyped-def]
    from geo_segment.scoring import PropensityModel

    rows = []
    for name, kw in SETTINGS.items():
        load = os.getloadavg()[0]
        t, c = time.perf_counter(), time.process_time()
        m = PropensityModel(n_threads=args.threads, random_state=0, **kw).fit(Xt, yt)
        fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
        big = X.iloc[np.resize(np.arange(len(X)), 1_000_000)]
        t, c = time.perf_counter(), time.process_time()
        m.predict_proba(big)
        pred_s, pred_cpu = time.perf_counter() - t, time.process_time() - c
        auc, se = _heldout(yh, m.predict_proba(Xh)[:, 1])
        est = m.estimator_
        row = {"settings": name, "model": m.chosen_, "calibrated": m.calibrated_,
               "iterations": int(getattr(est, "n_iter_", 0)) or None,
               "heldout_roc_auc": round(auc, 4), "heldout_auc_se": round(se, 4),
               "cv_roc_auc": round(float(m.metrics_["roc_auc"]), 4),
               "fit_seconds": round(fit_s, 1), "fit_cpu_seconds": round(fit_cpu, 1),
               "predict_1m_seconds": round(pred_s, 1), "predict_1m_cpu_seconds": round(pred_cpu, 1),
               "load_before": round(load, 1)}
        rows.append(row)
        print("  ", row, flush=True)
    lines = [
        "# Propensity model: speed settings",
        "",
        f"`python benchmarks/scores_rows.py --settings --threads {args.threads or 0}` on {d.name}: {len(Xt):,} "
        f"labelled voters to fit on, {int(held.sum()):,} held out (never fitted), label election {label_election}; "
        "every fit cross-validates at most 100,000 rows and fits the final model on at most 250,000. CPU seconds "
        "count every thread of the process; with one OpenMP thread they are what one quiet core takes. Load: "
        "the 1-minute load average before the fit (2 cores).",
        "",
        f"Machine: {machine()}",
        "",
        "| settings | model | iterations | held-out ROC-AUC (SE) | fit CPU s | fit s | predict 1M CPU s | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['settings']} | {r['model']} | {r['iterations'] or '-'} | {r['heldout_roc_auc']:.4f} "
                     f"({r['heldout_auc_se']:.4f}) | {r['fit_cpu_seconds']} | {r['fit_seconds']} | "
                     f"{r['predict_1m_cpu_seconds']} | {r['load_before']} |")
    _save("scores_settings", rows, lines)


if __name__ == "__main__":
    main()
