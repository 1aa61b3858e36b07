"""The analysis written for people: a plain-language Markdown report, a lift plot and the tables behind them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from geo_segment.experiments.analysis import ExperimentAnalysis
from geo_segment.experiments.design import ExperimentDesign
from geo_segment.io.atomic import atomic_path, write_csv, write_json

__all__ = ["plot_lift", "report_markdown", "write_report"]


def _pts(x: Any) -> str:
    """A proportion as percentage points with one decimal (``0.034`` -> ``+3.4``)."""
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):+.1f}"


def _pct(x: Any) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.1f}%"


def _p(x: Any) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else ("< 0.001" if float(x) < 0.001 else f"{float(x):.3f}")


def report_markdown(analysis: ExperimentAnalysis, design: ExperimentDesign, *, plot_name: str | None = "lift.png"
                    ) -> str:
    """The plain-language report (Markdown)."""
    o = analysis.overall
    conf = f"{o['confidence']:.0%}"
    unit = design.params.get("unit", "unit")
    lines = [f"# Experiment results: {o['outcome']}", ""]
    sig = math.isfinite(o["p_value"]) and o["p_value"] < 1 - o["confidence"]
    lines += [
        "## In plain words", "",
        f"Among voters assigned to the program, {o['outcome']} was {_pct(o['mean_treatment'])}; among voters held "
        f"out it was {_pct(o['mean_holdout'])}. The program's estimated effect (intent to treat) is "
        f"**{_pts(o['itt'])} percentage points** ({conf} interval {_pts(o['ci_low'])} to {_pts(o['ci_high'])}).",
        "",
        ("This difference is larger than chance alone would usually produce" if sig else
         "This difference could well be due to chance alone")
        + f" (p = {_p(o['p_value'])}; randomization test p = {_p(o.get('ri_p_value'))}).",
        "",
        "The comparison is by the group each voter was *assigned* to, whether or not a volunteer reached them: "
        "that is what keeps it fair. Every randomized voter is counted.",
        "",
    ]
    if "cace" in o:
        lines += [
            f"Volunteers reached {_pct(o['contact_rate_treatment'])} of the assigned voters "
            f"({_pct(o['contact_rate_holdout'])} of the holdout). Among voters actually reached, the estimated effect "
            "is "
            f"**{_pts(o['cace'])} points** ({conf} interval {_pts(o['cace_ci_low'])} to {_pts(o['cace_ci_high'])}).",
            "",
        ]
    elif "contact_rate_treatment" in o:
        lines += ["The contact rates do not differ between the arms, so the effect on the voters reached cannot be "
                  "estimated.", ""]
    lines += ["## The design", "",
              f"- {o['n_units']:,} {unit} units ({o['n_voters']:,} voters) randomized in {o['blocks']:,} blocks; "
              f"{design.params.get('holdout_share', 0):.0%} held out (seed {design.params.get('seed')}).",
              f"- Design SHA-256: `{design.content_sha256}` (verified).",
              f"- Before launch: {design.power.sentence()}", ""]
    lines += ["## Lift by score stratum", "", "| stratum | voters | ITT (points) | interval | holdout rate | "
              "treatment rate |", "|---|---:|---:|---|---:|---:|"]
    for r in analysis.by_stratum.to_dict("records"):
        lines.append(f"| {r['stratum']} | {r['voters']:,} | {_pts(r['itt'])} | {_pts(r['ci_low'])} to "
                     f"{_pts(r['ci_high'])} | {_pct(r['mean_holdout'])} | {_pct(r['mean_treatment'])} |")
    lines.append("")
    if plot_name:
        lines += [f"![Lift by stratum]({plot_name})", ""]
    lines += ["Stratum 0 holds the units with the lowest scores. Per-block results are in `by_block.csv`; blocks are "
              "small, so their intervals are wide.", ""]
    lines += ["## Attrition", "", "| arm | units | voters | without outcome | share | units with no outcome |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in analysis.attrition.to_dict("records"):
        lines.append(f"| {r['arm']} | {r['units']:,} | {r['voters']:,} | {r['missing']:,} | {_pct(r['missing_share'])} "
                     f"| {r['units_all_missing']:,} |")
    da = analysis.differential_attrition
    lines += ["", f"Difference in attrition (treatment minus holdout): {_pts(da['difference'])} points "
                  f"(p = {_p(da['p_value'])}).", ""]
    if analysis.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in analysis.notes] + [""]
    lines += ["## For analysts", "", f"- Estimator: {o['estimator']}.",
              f"- Adjusted for: {', '.join(o['adjusted_for']) or 'nothing'}.",
              f"- Standard error {o['se']:.4f} on {o['df']:,} degrees of freedom; {o['n_clusters']:,} clusters, "
              f"{o['blocks_used']:,} of {o['blocks']:,} blocks contribute.",
              f"- Randomization inference: {o.get('ri_draws', 0):,} re-randomizations within blocks with the design's "
              "procedure; statistic: the block-weighted difference in means.", ""]
    return "\n".join(lines)


def plot_lift(analysis: ExperimentAnalysis, path: str | Path) -> Path:
    """Write a PNG of the lift (percentage points) by score stratum and overall with their intervals, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    o = analysis.overall
    rows = analysis.by_stratum.to_dict("records")
    top = max((r["stratum"] for r in rows), default=0)
    names = {0: " (lowest score)", top: " (highest score)"} if top else {}
    labels = [f"stratum {r['stratum']}{names.get(r['stratum'], '')}" for r in rows] + ["overall"]
    est = [r["itt"] for r in rows] + [o["itt"]]
    lo = [r["ci_low"] for r in rows] + [o["ci_low"]]
    hi = [r["ci_high"] for r in rows] + [o["ci_high"]]
    fig = Figure(figsize=(6.5, 0.55 * len(labels) + 1.4), dpi=110)
    FigureCanvasAgg(fig)  # the Agg canvas, without touching pyplot's global backend
    ax = fig.subplots()
    ys = list(range(len(labels)))[::-1]
    for y, e, a, b, lab in zip(ys, est, lo, hi, labels, strict=True):
        color = "#1f4e79" if lab == "overall" else "#4a7fb0"
        if math.isfinite(a) and math.isfinite(b):
            ax.plot([100 * a, 100 * b], [y, y], color=color, lw=2)
        if math.isfinite(e):
            ax.plot([100 * e], [y], "o", color=color, ms=7 if lab == "overall" else 5)
    ax.axvline(0, color="#888", lw=1, ls="--")
    ax.set_yticks(ys, labels)
    ax.set_xlabel(f"lift in percentage points ({o['confidence']:.0%} intervals)")
    ax.set_title("Effect of the program by score stratum (intent to treat)")
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target


def write_report(analysis: ExperimentAnalysis, design: ExperimentDesign, folder: str | Path) -> dict[str, Path]:
    """Write ``analysis.json``, ``by_stratum.csv``, ``by_block.csv``, ``attrition.csv``, ``lift.png`` and
    ``report.md`` into ``folder`` (each atomically); return the paths by role."""
    out = Path(folder)
    paths = {
        "analysis": write_json(analysis.to_dict(), out / "analysis.json"),
        "by_stratum": write_csv(analysis.by_stratum, out / "by_stratum.csv"),
        "by_block": write_csv(analysis.by_block, out / "by_block.csv"),
        "attrition": write_csv(analysis.attrition, out / "attrition.csv"),
        "plot": plot_lift(analysis, out / "lift.png"),
    }
    text = report_markdown(analysis, design, plot_name="lift.png")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    paths["report"] = out / "report.md"
    return paths
