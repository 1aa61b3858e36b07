"""Experiments acceptance benchmark: repeated simulated field experiments with a planted effect.

Usage: python benchmarks/experiments.py [--sims 400] [--voters 3003] [--effect 0.04] [--contact-rate 0.7]
                                        [--holdout-share 0.3] [--ri-sims 100] [--ri-draws 300] [--seed 20261103]

A synthetic county (``generate_population``, Providence blocks) is drawn once; households are the unit, blocked
on precinct x 3 propensity strata with the default rerandomization threshold (0.05). Each simulation draws a new
design (its own seed) and a new outcome election with ``draw_outcome_election`` (turnout from the planted
propensity; contacted compliers get ``+effect`` on the probability scale; ``contact_rate`` of the treatment
households are reached), then analyses it with ``analyze_experiment`` (block-weighted ITT adjusted for the
design's covariates, CR2 standard errors by household; CACE by the Wald / delta method).

Reported, against each simulation's own planted truth (the mean over the experiment's voters of
``complier * (p1 - p0)`` for the ITT, over compliers for the CACE):

* coverage of the 95 % intervals (target 93-97 %), with its binomial standard error;
* bias: mean(estimate - truth) and its simulation standard error (target |bias| < 1 SE; note that an exactly
  unbiased estimator meets "< 1 SE" only about 68 % of the time, so ``< 2 SE`` is reported too);
* with no planted effect: the false-positive rate of the cluster-robust test and of the randomization test
  (``--ri-sims`` simulations with ``--ri-draws`` re-randomizations each), target about 5 %;
* the bias split exactly into its design part (the analysis's estimator applied to each simulation's *expected*
  outcomes, minus the truth: what the design and the estimator contribute, measured without the Bernoulli noise of
  the turnout draws, so to a small fraction of a percent of the effect) and its outcome-noise part (mean zero by
  construction), and the exact SD of the estimate given the design beside the mean reported SE (see
  ``benchmarks/experiments_bias.py`` for the suspects one at a time);
* the balance of the blocked design on the sample county (``/work/demo_ref`` when present): the largest absolute
  standardized difference over 20 seeds (target < 0.05), beside unblocked and blocked-without-threshold designs.

Prints Markdown and saves benchmarks/results/experiments.json and experiments.md with the machine's facts.
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

from geo_segment import schema as S  # noqa: E402
from geo_segment.experiments import analyze_experiment, design_experiment  # noqa: E402
from geo_segment.experiments._covariates import build_covariates, history_cutoff  # noqa: E402
from geo_segment.experiments.analysis import estimate_itt  # noqa: E402
from geo_segment.experiments.design import ARM_HOLDOUT  # noqa: E402
from geo_segment.synth import draw_outcome_election, generate_population  # noqa: E402

SAMPLE = Path("/work/demo_ref")


def county(n_voters: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A synthetic county as the experiment sees it: voters (contract names) and the past vote history."""
    pop = generate_population(n_voters, seed=seed)
    v = pop.voters
    voters = pd.DataFrame({
        S.VOTER_ID: v[S.VOTER_ID].astype(str),
        S.HOUSEHOLD_ID: v["household_key"].astype(str),
        S.PRECINCT_ID: v[S.SOURCE_PRECINCT].astype(str),
        S.PARTY: v[S.PARTY].astype(str),
        S.BIRTH_YEAR: pd.to_datetime(v["birth_date"]).dt.year.astype("Int64"),
        S.PROPENSITY: v["true_propensity"].astype(float),
    })
    return voters, pop.history


def covariates(voters: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The design's ``"auto"`` covariates per voter id, as :func:`analyze_experiment` rebuilds them."""
    cov = build_covariates(voters, history, covariates="auto", score_col=S.PROPENSITY,
                           cutoff=history_cutoff(history))
    return cov[~cov.index.duplicated()]


def linear_weights(t: np.ndarray, block: np.ndarray, X: np.ndarray | None) -> np.ndarray:
    """The weights ``a`` with ``estimate_itt(y, t, block, ..., X).effects[0] == a @ y`` for every ``y``.

    The estimator's WLS / Frisch-Waugh-Lovell algebra written out again (weights ``1/p_b``, ``1/(1-p_b)``;
    assignment and covariates demeaned within blocks; the assignment residualized on the covariates); the callers
    check it against ``estimate_itt``. Given the design, ``Var(est) = sum_i a_i^2 Var(Y_i)`` exactly when the
    outcomes are drawn independently.
    """
    b = pd.factorize(block)[0]
    nb = int(b.max()) + 1
    n_t = np.bincount(b, weights=t, minlength=nb)
    n_all = np.bincount(b, minlength=nb).astype(np.float64)
    pb = (n_t / n_all)[b]
    w = np.where(t > 0, 1.0 / pb, 1.0 / (1.0 - pb))
    sw = np.bincount(b, weights=w, minlength=nb)

    def demean(v: np.ndarray) -> np.ndarray:
        return np.asarray(v - (np.bincount(b, weights=w * v, minlength=nb) / sw)[b])

    tt = demean(t)
    if X is not None:
        Xd = np.column_stack([demean(X[:, j]) for j in range(X.shape[1])])
        Xd = Xd[:, Xd.std(axis=0) > 1e-12]
        sq = np.sqrt(w)
        gamma = np.linalg.lstsq(Xd * sq[:, None], tt * sq, rcond=None)[0]
        tt = tt - Xd @ gamma
        return np.asarray(w * tt / float((w * tt * demean(t)).sum()))
    return np.asarray(w * tt / float((w * tt * tt).sum()))


def expected_outcome_parts(design: Any, truth: pd.DataFrame, cov: pd.DataFrame, itt: float) -> dict[str, float]:
    """The estimator on the *expected* outcomes ``p`` (its mean over the outcome draws, given the design and the
    compliers) and the exact SD of the estimate given them; ``itt`` (the analysis on 0/1 turnout) is reproduced
    from the same arrays first, so both use the analysis's own estimator."""
    m = design.members
    vid = m[S.VOTER_ID].astype(str)
    a = design.assignment.set_index("unit_id")
    t = (a["arm"] != ARM_HOLDOUT).reindex(m["unit_id"]).to_numpy().astype(np.float64)
    block = a["block"].reindex(m["unit_id"]).to_numpy()
    cluster = m["unit_id"].to_numpy()
    tr = truth.set_index(S.VOTER_ID)
    p0, p1 = tr["p0"].reindex(vid).to_numpy(), tr["p1"].reindex(vid).to_numpy()
    p = np.where((t > 0) & tr["complier"].reindex(vid).to_numpy(bool), p1, p0)
    y = tr[S.VOTED].reindex(vid).to_numpy(np.float64)
    X = cov.reindex(vid)[list(design.params["covariates"])].to_numpy(np.float64)
    est = estimate_itt(np.column_stack([y, p]), t, block, cluster, X)
    wts = linear_weights(t, block, X)
    # both checks are counted in the summary (a long run is not stopped by one of them)
    reproduced = abs(float(est.effects[0]) - itt) <= 1e-9 and abs(float(wts @ p) - float(est.effects[1])) <= 1e-9
    return {"itt_expected": float(est.effects[1]), "exact_sd": float(np.sqrt((wts**2 * p * (1 - p)).sum())),
            "reproduced": bool(reproduced)}


def one_simulation(voters: pd.DataFrame, history: pd.DataFrame, *, seed: int, effect: float, contact_rate: float,
                   holdout_share: float, ri_draws: int = 0, check_draws: int = 50,
                   cov: pd.DataFrame | None = None) -> dict[str, Any]:
    """Design, planted outcome and analysis for one seed; the estimates beside the truth (and, with ``cov``, the
    estimate on the expected outcomes and the exact SD given the design)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design = design_experiment(voters, history=history, holdout_share=holdout_share, seed=seed,
                                   check_draws=check_draws)
    held = set(design.holdout_units)
    treated = ~voters[S.HOUSEHOLD_ID].isin(held)
    out = draw_outcome_election(voters, treated, effect=effect, contact_rate=contact_rate,
                                propensity_col=S.PROPENSITY, seed=seed)
    updated = pd.concat([history, out.history], ignore_index=True)
    res = analyze_experiment(design, voters, updated, outcome_election=out.election_date,
                             contacts=out.contacts, ri_draws=ri_draws, seed=seed)
    o = res.overall
    row = {"seed": seed, "true_itt": out.true_itt, "itt": o["itt"], "se": o["se"], "ci_low": o["ci_low"],
           "ci_high": o["ci_high"], "p_value": o["p_value"], "ri_p_value": o.get("ri_p_value"),
           "true_cace": out.true_cace, "cace": o.get("cace"), "cace_ci_low": o.get("cace_ci_low"),
           "cace_ci_high": o.get("cace_ci_high"), "max_abs_std_diff": design.check["max_abs_std_diff"]}
    if cov is not None:
        row.update(expected_outcome_parts(design, out.truth, cov, o["itt"]))
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Coverage, bias and rejection rates of a list of simulations."""
    f = pd.DataFrame(rows)
    n = len(f)
    err = f["itt"] - f["true_itt"]
    cover = ((f["ci_low"] <= f["true_itt"]) & (f["true_itt"] <= f["ci_high"])).mean()
    out: dict[str, Any] = {
        "sims": n,
        "mean_true_itt": float(f["true_itt"].mean()),
        "mean_itt": float(f["itt"].mean()),
        "bias": float(err.mean()),
        "bias_se": float(err.std(ddof=1) / math.sqrt(n)),
        "sd_estimate": float(f["itt"].std(ddof=1)),
        "mean_se": float(f["se"].mean()),
        "coverage": float(cover),
        "coverage_se": float(math.sqrt(cover * (1 - cover) / n)),
        "reject_rate": float((f["p_value"] < 0.05).mean()),
    }
    out["bias_in_se"] = out["bias"] / out["bias_se"] if out["bias_se"] > 0 else float("nan")
    if "itt_expected" in f:
        # bias = design part (estimator on the expected outcomes - truth) + outcome-noise part (mean zero)
        for part, e in (("bias_design", f["itt_expected"] - f["true_itt"]),
                        ("bias_outcome_noise", f["itt"] - f["itt_expected"])):
            out[part] = float(e.mean())
            out[part + "_se"] = float(e.std(ddof=1) / math.sqrt(n))
        out["exact_sd"] = math.sqrt(float((f["exact_sd"] ** 2).mean())
                                    + float((f["itt_expected"] - f["true_itt"]).var(ddof=1)))
        out["mean_se_over_exact_sd"] = out["mean_se"] / out["exact_sd"]
        out["not_reproduced"] = int((~f["reproduced"].astype(bool)).sum())
    if f["cace"].notna().all():
        cerr = f["cace"] - f["true_cace"]
        out.update({
            "cace_bias": float(cerr.mean()), "cace_bias_se": float(cerr.std(ddof=1) / math.sqrt(n)),
            "cace_coverage": float(((f["cace_ci_low"] <= f["true_cace"])
                                    & (f["true_cace"] <= f["cace_ci_high"])).mean()),
        })
    ri = f["ri_p_value"].dropna()
    if len(ri):
        out["ri_sims"] = len(ri)
        out["ri_reject_rate"] = float((ri < 0.05).mean())
    return out


def sample_balance(seeds: int = 20) -> dict[str, Any] | None:
    """Largest |standardized difference| of household designs on the sample county, three ways."""
    if not (SAMPLE / "voters.parquet").exists():
        return None
    import geopandas as gpd

    v = gpd.read_parquet(SAMPLE / "voters.parquet")
    h = pd.read_parquet(SAMPLE / "vote_history.parquet")
    res: dict[str, Any] = {"voters": len(v), "households": int(v[S.HOUSEHOLD_ID].nunique())}
    variants = {
        "unblocked, one draw": {"blocks": (), "score_col": None, "balance_threshold": None},
        "blocked (precinct x 3 strata), one draw": {"balance_threshold": None},
        "blocked + threshold 0.05 (default)": {},
    }
    for share in (0.1, 0.3):
        for name, kw in variants.items():
            vals = []
            t0 = time.perf_counter()
            for s in range(seeds):
                d = design_experiment(v, history=h, seed=s, holdout_share=share, check_draws=50, **kw)  # type: ignore[arg-type]
                vals.append(float(d.balance["std_diff"].abs().max()))
            res[f"{name}, share {share}"] = {"max": max(vals), "median": float(np.median(vals)),
                                             "share_below_0.05": float(np.mean(np.array(vals) < 0.05)),
                                             "seconds_per_design": (time.perf_counter() - t0) / seeds}
    return res


def _progress(what: str, i: int, n: int, t0: float) -> None:
    if (i + 1) % 25 == 0 or i + 1 == n:
        print(f"{what}: {i + 1}/{n} simulations, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def run(sims: int, n_voters: int, effect: float, contact_rate: float, holdout_share: float, ri_sims: int,
        ri_draws: int, seed: int, *, balance: bool = True) -> dict[str, Any]:
    """The whole benchmark as a dict."""
    voters, history = county(n_voters, seed)
    cov = covariates(voters, history)
    report: dict[str, Any] = {"machine": machine(), "params": {
        "sims": sims, "voters": n_voters, "households": int(voters[S.HOUSEHOLD_ID].nunique()),
        "precincts": int(voters[S.PRECINCT_ID].nunique()), "effect": effect, "contact_rate": contact_rate,
        "holdout_share": holdout_share, "ri_sims": ri_sims, "ri_draws": ri_draws, "seed": seed}}
    t0 = time.perf_counter()
    planted, null = [], []
    for i in range(sims):
        planted.append(one_simulation(voters, history, seed=seed + i, effect=effect, contact_rate=contact_rate,
                                      holdout_share=holdout_share, cov=cov))
        _progress("planted", i, sims, t0)
    t1 = time.perf_counter()
    for i in range(sims):
        null.append(one_simulation(voters, history, seed=seed + 100_000 + i, effect=0.0, contact_rate=contact_rate,
                                   holdout_share=holdout_share, ri_draws=ri_draws if i < ri_sims else 0, cov=cov))
        _progress("null", i, sims, t1)
    t2 = time.perf_counter()
    report["planted"] = summarize(planted)
    report["null"] = summarize(null)
    report["seconds"] = {"planted": t1 - t0, "null": t2 - t1}
    if balance:
        report["sample_balance"] = sample_balance()
    return report


def markdown(r: dict[str, Any]) -> str:
    p, pl, nu = r["params"], r["planted"], r["null"]
    lines = [
        "# Experiments benchmark", "",
        f"{p['sims']} simulated experiments per scenario on a synthetic county of {p['voters']:,} voters "
        f"({p['households']:,} households, {p['precincts']} precincts); households randomized, "
        f"{p['holdout_share']:.0%} held out, blocked on precinct x 3 propensity strata, rerandomized to "
        f"|std diff| < 0.05; {p['contact_rate']:.0%} of treatment households reached; seed {p['seed']}.", "",
        "| scenario | mean truth | mean estimate | bias (sim SE) | bias / SE | SD of estimates | mean SE | "
        "95% coverage (SE) | rejection rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in ((f"planted effect {p['effect']:+.2f} on contacted", pl), ("no effect", nu)):
        lines.append(
            f"| {name} | {s['mean_true_itt']:.4f} | {s['mean_itt']:.4f} | {s['bias']:+.4f} ({s['bias_se']:.4f}) | "
            f"{s['bias_in_se']:+.2f} | {s['sd_estimate']:.4f} | {s['mean_se']:.4f} | "
            f"{s['coverage']:.1%} ({s['coverage_se']:.1%}) | {s['reject_rate']:.1%} |")
    if "bias_design" in pl:
        lines += ["", "Bias split exactly into the design part (the analysis's estimator on the expected outcomes "
                      "given each simulation's design and compliers, minus the truth: what the design and estimator "
                      "contribute) and the outcome-noise part (0/1 turnout minus expected outcomes; mean zero by "
                      "construction); the exact SD of the estimate (sum_i a_i^2 p_i (1 - p_i) over the estimator's "
                      "linear weights a, plus the design part's variance) beside the mean reported SE:", "",
                  "| scenario | design part (sim SE) | outcome-noise part (sim SE) | exact SD | mean SE / exact SD |",
                  "|---|---:|---:|---:|---:|"]
        for name, s in (("planted", pl), ("no effect", nu)):
            lines.append(f"| {name} | {s['bias_design']:+.5f} ({s['bias_design_se']:.5f}) | "
                         f"{s['bias_outcome_noise']:+.5f} ({s['bias_outcome_noise_se']:.5f}) | {s['exact_sd']:.4f} | "
                         f"{s['mean_se_over_exact_sd']:.3f} |")
        lines += ["", f"Simulations where the split's estimator did not reproduce the analysis's estimate (or the "
                      f"linear weights the estimator): planted {pl['not_reproduced']}, no effect "
                      f"{nu['not_reproduced']}."]
    nan = float("nan")
    lines += ["", f"CACE (planted): bias {pl.get('cace_bias', nan):+.4f} (sim SE {pl.get('cace_bias_se', nan):.4f}), "
                  f"coverage {pl.get('cace_coverage', nan):.1%}."]
    if "ri_reject_rate" in nu:
        lines.append(f"Randomization test, no effect: {nu['ri_reject_rate']:.1%} of {nu['ri_sims']} simulations "
                     f"reject at 5 % ({p['ri_draws']} re-randomizations each).")
    sb = r.get("sample_balance")
    if sb:
        lines += ["", f"## Balance on the sample county ({sb['voters']:,} voters, {sb['households']:,} households, "
                      "20 seeds, largest |std diff| over past turnout, age, party shares and score)", "",
                  "| design | max over seeds | median | share of seeds < 0.05 | seconds per design |",
                  "|---|---:|---:|---:|---:|"]
        for k, v in sb.items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {v['max']:.3f} | {v['median']:.3f} | {v['share_below_0.05']:.0%} | "
                             f"{v['seconds_per_design']:.2f} |")
    lines += ["", f"Seconds: planted {r['seconds']['planted']:.0f}, null {r['seconds']['null']:.0f}. "
                  f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=400)
    ap.add_argument("--voters", type=int, default=3003)
    ap.add_argument("--effect", type=float, default=0.04)
    ap.add_argument("--contact-rate", type=float, default=0.7)
    ap.add_argument("--holdout-share", type=float, default=0.3)
    ap.add_argument("--ri-sims", type=int, default=100)
    ap.add_argument("--ri-draws", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20261103)
    ap.add_argument("--no-balance", action="store_true")
    ap.add_argument("--name", default="experiments", help="Results file names (benchmarks/results/<name>.json/.md).")
    args = ap.parse_args()
    r = run(args.sims, args.voters, args.effect, args.contact_rate, args.holdout_share, args.ri_sims,
            args.ri_draws, args.seed, balance=not args.no_balance)
    text = markdown(r)
    print(text)
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / f"{args.name}.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    (res / f"{args.name}.md").write_text(text)


if __name__ == "__main__":
    main()
