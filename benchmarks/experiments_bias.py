"""Experiments: where could the ITT's bias come from? Expected-outcome simulations, one suspect at a time.

Usage: python benchmarks/experiments_bias.py [--sims 300] [--seed 5151] [--voters 3003] [--name experiments_bias]

The estimator is linear in the outcome for a given assignment (WLS with weights and covariates fixed by the
design), so its expectation over the outcome draws is the estimator applied to the *expected* outcomes:
``E_u[est(Y)] = est(p)`` with ``p = p0 + T * complier * (p1 - p0)``. Feeding ``p`` instead of 0/1 turnout removes
the Bernoulli noise (most of the variance) and leaves only the randomness of the design and of the compliers, so
a few hundred simulations measure a bias of a few percent of the effect. Each simulation draws one design per
design variant (same seed) and one set of compliers; every estimator variant is applied to the same draws.

Suspects, each isolated:

* the truth: ``draw_outcome_election``'s ``true_itt`` against an independent mean of ``complier * (p1 - p0)`` over
  the design's members, and the share of voters whose ``p1`` is clipped at 1;
* the design: rerandomized (default threshold 0.05) or one blocked draw; blocks as the design makes them;
* the estimator: covariate-adjusted WLS (the default), unadjusted (the block-weighted difference in means) and
  the Horvitz-Thompson contrast of block totals (exactly unbiased for a blocked design with fixed unit
  probabilities); with and without the planted effect.

Prints Markdown and saves benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine  # noqa: E402
from experiments import county, linear_weights  # noqa: E402

from geo_segment import schema as S  # noqa: E402
from geo_segment.experiments import design_experiment  # noqa: E402
from geo_segment.experiments._covariates import build_covariates  # noqa: E402
from geo_segment.experiments.analysis import estimate_itt  # noqa: E402
from geo_segment.experiments.design import ARM_HOLDOUT  # noqa: E402
from geo_segment.synth import _OUTCOME_SALT, draw_outcome_election  # noqa: E402

DESIGNS = {"rerandomized 0.05": {}, "one blocked draw": {"balance_threshold": None}}


def ht_contrast(y: np.ndarray, t: np.ndarray, share_t: np.ndarray) -> float:
    """Horvitz-Thompson: sum_i y_i (T_i / pi_i - (1 - T_i) / (1 - pi_i)) / N, ``pi_i`` the unit's fixed
    treatment probability (``1 - holdout_share`` in every block by design)."""
    return float((y * (t / share_t - (1 - t) / (1 - share_t))).sum() / len(y))


def one_se(voters: pd.DataFrame, history: pd.DataFrame, cov_all: pd.DataFrame, *, seed: int, effect: float,
           contact_rate: float, holdout_share: float) -> dict[str, Any]:
    """One design + one Bernoulli outcome: the CR2 SE beside the exact SD of the estimate given the design."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = design_experiment(voters, history=history, holdout_share=holdout_share, seed=seed, check_draws=10)
    held = set(d.holdout_units)
    treated = ~voters[S.HOUSEHOLD_ID].isin(held)
    out = draw_outcome_election(voters, treated, effect=effect, contact_rate=contact_rate,
                                propensity_col=S.PROPENSITY, seed=seed)
    tr = out.truth.set_index(S.VOTER_ID)
    m = d.members
    vid = m[S.VOTER_ID].astype(str)
    a = d.assignment.set_index("unit_id")
    t = (a["arm"] != ARM_HOLDOUT).reindex(m["unit_id"]).to_numpy().astype(np.float64)
    block = a["block"].reindex(m["unit_id"]).to_numpy()
    p0, p1 = tr["p0"].reindex(vid).to_numpy(), tr["p1"].reindex(vid).to_numpy()
    comp = tr["complier"].reindex(vid).to_numpy(bool)
    p = np.where((t > 0) & comp, p1, p0)
    y = tr[S.VOTED].reindex(vid).to_numpy(np.float64)
    X = cov_all.reindex(vid).to_numpy(np.float64)
    cluster = m["unit_id"].to_numpy()
    wts = linear_weights(t, block, X)
    est_p = estimate_itt(p, t, block, cluster, X)
    if abs(float(est_p.effects[0]) - float(wts @ p)) > 1e-10:
        raise AssertionError("linear_weights does not reproduce estimate_itt")
    res = {"cr2": estimate_itt(y, t, block, cluster, X), "cr1": estimate_itt(y, t, block, cluster, X, vcov="CR1")}
    row = {"seed": seed, "truth": out.true_itt, "est_p": float(est_p.effects[0]),
           "exact_sd": float(np.sqrt((wts**2 * p * (1 - p)).sum())), "itt": float(res["cr2"].effects[0])}
    for k, e in res.items():
        row[f"se_{k}"] = float(np.sqrt(e.cov[0, 0]))
        row["df"] = e.df
    return row


def one(voters: pd.DataFrame, history: pd.DataFrame, cov_all: pd.DataFrame, *, seed: int, effect: float,
        contact_rate: float, holdout_share: float) -> list[dict[str, Any]]:
    rows = []
    # compliers and potential outcomes exactly as draw_outcome_election draws them (same seed, same stream)
    treated_all = pd.Series(True, index=voters.index)
    out = draw_outcome_election(voters, treated_all, effect=effect, contact_rate=contact_rate,
                                propensity_col=S.PROPENSITY, seed=seed)
    tr = out.truth.set_index(S.VOTER_ID)
    for dname, kw in DESIGNS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = design_experiment(voters, history=history, holdout_share=holdout_share, seed=seed, check_draws=10,
                                  **kw)
        m = d.members
        a = d.assignment.set_index("unit_id")
        vid = m[S.VOTER_ID].astype(str)
        hold = (a["arm"] == ARM_HOLDOUT).reindex(m["unit_id"]).to_numpy()
        t = (~hold).astype(np.float64)
        block = a["block"].reindex(m["unit_id"]).to_numpy()
        comp = tr["complier"].reindex(vid).to_numpy(bool)
        p0 = tr["p0"].reindex(vid).to_numpy()
        p1 = tr["p1"].reindex(vid).to_numpy()
        tau = comp * (p1 - p0)
        truth = float(tau.mean())  # independent: the members' planted ITT, every voter weighted once
        p = p0 + t * tau
        X = cov_all.reindex(vid).to_numpy(np.float64)
        cluster = m["unit_id"].to_numpy()
        adj = estimate_itt(p, t, block, cluster, X)
        una = estimate_itt(p, t, block, cluster, None)
        ht = ht_contrast(p, t, np.full(len(p), 1 - holdout_share))
        blocks = d.blocks
        pooled = blocks["block"].str.startswith("pooled")
        rows.append({
            "seed": seed, "design": dname, "truth": truth, "truth_generator": out.true_itt,
            "adjusted": float(adj.effects[0]), "unadjusted": float(una.effects[0]), "horvitz_thompson": ht,
            "clipped_share": float(((p0 + effect) > 1).mean()),
            "pooled_unit_share": float(blocks.loc[pooled, "units"].sum() / blocks["units"].sum()),
            "blocks": len(blocks), "max_abs_std_diff": float(d.check["max_abs_std_diff"]),
        })
    return rows


def summarize(f: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for dname, g in f.groupby("design", sort=False):
        n = len(g)
        for est in ("adjusted", "unadjusted", "horvitz_thompson"):
            err = g[est] - g["truth"]
            bias, se = float(err.mean()), float(err.std(ddof=1) / math.sqrt(n))
            out.append({"design": dname, "estimator": est, "sims": n, "mean_truth": float(g["truth"].mean()),
                        "bias": bias, "bias_se": se, "bias_in_se": bias / se if se > 0 else float("nan"),
                        "bias_pct_of_truth": (100 * bias / float(g["truth"].mean())
                                              if abs(g["truth"].mean()) > 1e-12 else float("nan")),
                        "sd_design_error": float(err.std(ddof=1))})
    return out


def se_part(args: argparse.Namespace, voters: pd.DataFrame, history: pd.DataFrame, cov_all: pd.DataFrame,
            t0: float) -> None:
    """Standard errors: mean CR2 / CR1 SE against the exact SD of (estimate - truth)."""
    from scipy import special

    res: dict[str, Any] = {"machine": machine(), "params": vars(args)}
    lines = ["# Experiments: standard errors against the exact SD (default design, adjusted ITT)", "",
             f"County seed {args.seed}, {args.voters:,} voters, {args.sims} simulations per scenario. Exact SD: "
             "sqrt(mean over simulations of sum_i a_i^2 p_i (1 - p_i) + variance of est(p) - truth), with a the "
             "estimator's linear weights given the design and p the planted turnout probabilities.", "",
             "| scenario | exact SD | SD of est - truth (draws) | mean CR2 SE | CR2 / exact | mean CR1 SE | "
             "CR1 / exact | coverage CR2 (SE) | coverage with exact SD |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for scen, eff in (("planted", args.effect), ("null", 0.0)):
        rows = []
        sims = args.sims if eff or args.null_sims is None else args.null_sims
        for i in range(sims):
            rows.append(one_se(voters, history, cov_all, seed=args.seed + (0 if eff else 100_000) + i, effect=eff,
                               contact_rate=args.contact_rate, holdout_share=args.holdout_share))
            if (i + 1) % 50 == 0:
                print(f"se {scen}: {i + 1}/{sims}, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                      flush=True)
        f = pd.DataFrame(rows)
        exact = math.sqrt(float((f["exact_sd"] ** 2).mean()) + float((f["est_p"] - f["truth"]).var(ddof=1)))
        q = special.stdtrit(f["df"].to_numpy(), 0.975)
        err = (f["itt"] - f["truth"]).abs()
        cov = float((err <= q * f["se_cr2"]).mean())
        s = {"sims": len(f), "exact_sd": exact, "sd_draws": float((f["itt"] - f["truth"]).std(ddof=1)),
             "mean_se_cr2": float(f["se_cr2"].mean()), "mean_se_cr1": float(f["se_cr1"].mean()),
             "coverage_cr2": cov, "coverage_se": math.sqrt(cov * (1 - cov) / len(f)),
             "coverage_exact": float((err <= q * exact).mean()),
             "design_error_sd": float((f["est_p"] - f["truth"]).std(ddof=1))}
        n = len(f)
        for part, e in (("bias_total", f["itt"] - f["truth"]), ("bias_design", f["est_p"] - f["truth"]),
                        ("bias_outcome_noise", f["itt"] - f["est_p"])):
            s[part] = float(e.mean())
            s[part + "_se"] = float(e.std(ddof=1) / math.sqrt(n))
        res[scen] = s
        res[scen + "_rows"] = f.to_dict("records")
        lines.append(f"| {scen} | {exact:.5f} | {s['sd_draws']:.5f} | {s['mean_se_cr2']:.5f} | "
                     f"{s['mean_se_cr2'] / exact:.3f} | {s['mean_se_cr1']:.5f} | {s['mean_se_cr1'] / exact:.3f} | "
                     f"{cov:.1%} ({s['coverage_se']:.1%}) | {s['coverage_exact']:.1%} |")
    lines += ["", "Bias of the estimate on the 0/1 turnout, split exactly into the design part (the estimator on the "
              "expected outcomes, minus the truth) and the outcome-noise part (the estimator on 0/1 turnout minus "
              "on the expected outcomes; mean zero by construction):", "",
              "| scenario | total bias (sim SE) | design part (sim SE) | outcome-noise part (sim SE) |",
              "|---|---:|---:|---:|"]
    for scen in ("planted", "null"):
        s = res[scen]
        lines.append(f"| {scen} | " + " | ".join(
            f"{s[k]:+.5f} ({s[k + '_se']:.5f})" for k in ("bias_total", "bias_design", "bias_outcome_noise")) + " |")
    res["seconds"] = time.perf_counter() - t0
    lines += ["", f"Seconds: {res['seconds']:.0f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "results" / f"{args.name}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (HERE / "results" / f"{args.name}.md").write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=300)
    ap.add_argument("--voters", type=int, default=3003)
    ap.add_argument("--effect", type=float, default=0.04)
    ap.add_argument("--contact-rate", type=float, default=0.7)
    ap.add_argument("--holdout-share", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=5151)
    ap.add_argument("--name", default="experiments_bias")
    ap.add_argument("--part", choices=("bias", "se"), default="bias")
    ap.add_argument("--null-sims", type=int, default=None, help="Simulations without an effect (default --sims).")
    args = ap.parse_args()
    voters, history = county(args.voters, args.seed)
    cov_all = build_covariates(voters, history, covariates="auto", score_col=S.PROPENSITY,
                               cutoff=(pd.to_datetime(history[S.ELECTION_DATE]).max().normalize()
                                       + pd.Timedelta(days=1)).date().isoformat())
    cov_all = cov_all[~cov_all.index.duplicated()]
    t0 = time.perf_counter()
    if args.part == "se":
        se_part(args, voters, history, cov_all, t0)
        return
    res: dict[str, Any] = {"machine": machine(), "params": vars(args), "salt": _OUTCOME_SALT}
    for scen, eff in (("planted", args.effect), ("null", 0.0)):
        rows: list[dict[str, Any]] = []
        for i in range(args.sims):
            rows += one(voters, history, cov_all, seed=args.seed + (0 if eff else 100_000) + i, effect=eff,
                        contact_rate=args.contact_rate, holdout_share=args.holdout_share)
            if (i + 1) % 50 == 0:
                print(f"{scen}: {i + 1}/{args.sims}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        f = pd.DataFrame(rows)
        res[scen] = {"summary": summarize(f),
                     "truth_vs_generator_max_abs": float((f["truth"] - f["truth_generator"]).abs().max()),
                     "clipped_share": float(f["clipped_share"].mean()),
                     "pooled_unit_share": float(f["pooled_unit_share"].mean()),
                     "blocks": float(f["blocks"].mean())}
    res["seconds"] = time.perf_counter() - t0
    lines = ["# Experiments: bias by suspect (expected outcomes, no Bernoulli noise)", "",
             f"County seed {args.seed}, {args.voters:,} voters; {args.sims} simulations per scenario; effect "
             f"{args.effect} on contacted compliers, contact rate {args.contact_rate}, holdout {args.holdout_share}.",
             "", "| scenario | design | estimator | mean truth | bias (sim SE) | bias / SE | bias % of truth | "
             "SD of design error |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for scen in ("planted", "null"):
        for s in res[scen]["summary"]:
            lines.append(f"| {scen} | {s['design']} | {s['estimator']} | {s['mean_truth']:.5f} | "
                         f"{s['bias']:+.5f} ({s['bias_se']:.5f}) | {s['bias_in_se']:+.2f} | "
                         f"{s['bias_pct_of_truth']:+.1f} | {s['sd_design_error']:.5f} |")
    pl = res["planted"]
    lines += ["", f"Truth: generator's true_itt vs an independent mean over the design's members: largest "
                  f"difference {pl['truth_vs_generator_max_abs']:.2e}; voters with p1 clipped at 1: "
                  f"{pl['clipped_share']:.2%}. Blocks per design {pl['blocks']:.0f}; units in pooled blocks "
                  f"{pl['pooled_unit_share']:.0%}.", "", f"Seconds: {res['seconds']:.0f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "results" / f"{args.name}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (HERE / "results" / f"{args.name}.md").write_text(text)


if __name__ == "__main__":
    main()
