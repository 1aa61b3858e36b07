"""``report.html``: a run's key figures and plots for people, beside ``manifest.json``.

One self-contained HTML file (plots embedded as PNG): the stage table (rows in / out / rejected, time, peak
memory, whether the stage ran or was up to date), the key figures (voters, geocode rate, precincts, model quality,
micro-geographies, turfs and their balance, exports) and three plots: the propensity model's calibration curve,
the turf balance histogram and the score distribution by precinct. Aggregates only: no personal field is read
into it, and every string is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geo_segment import schema as S
from geo_segment.io.atomic import atomic_path

if TYPE_CHECKING:
    from geo_segment.runner import PipelineResult

__all__ = ["write_report"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:62em;
color:#1b1b1b;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.muted{color:#666}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}.figs img{max-width:30em;border:1px solid #ddd}
.bad{color:#a40000;font-weight:bold}.kv td{text-align:left}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _turf_balance(turfs: pd.DataFrame, target: int, tolerance: float) -> str:
    fig, ax = _figure()
    doors = turfs["doors"].to_numpy(dtype=float)
    ax.hist(doors, bins=min(40, max(5, len(doors) // 3)), color="#3b6ea5")
    for edge in (target * (1 - tolerance), target * (1 + tolerance)):
        ax.axvline(edge, color="#b35900", linestyle="--")
    ax.set_xlabel(f"doors per turf (dashed: target {target} ± {tolerance:.0%})")
    ax.set_ylabel("turfs")
    fig.tight_layout()
    return _png(fig)


def _scores_by_precinct(voters: pd.DataFrame, score: str, k_min: int) -> str | None:
    sub = voters.loc[voters[S.PRECINCT_ID].notna() & voters[score].notna(), [S.PRECINCT_ID, score]]
    counts = sub[S.PRECINCT_ID].value_counts()
    big = counts[counts >= k_min].index[:20]  # the 20 largest precincts; small ones are never shown
    if not len(big):
        return None
    sub = sub[sub[S.PRECINCT_ID].isin(big)]
    order = sub.groupby(S.PRECINCT_ID)[score].median().sort_values().index
    fig, ax = _figure()
    ax.boxplot([sub.loc[sub[S.PRECINCT_ID] == p, score].to_numpy() for p in order], orientation="horizontal",
               showfliers=False)
    ax.set_yticks(np.arange(1, len(order) + 1), [str(p) for p in order], fontsize=7)
    ax.set_xlabel(f"{score} (boxes: quartiles; the {len(order)} largest precincts)")
    fig.tight_layout()
    return _png(fig)


def write_report(result: PipelineResult) -> Path:
    """Write ``report.html`` into the run folder and return its path."""
    out = result.out_dir
    man = result.manifest.to_dict()
    stages = man["stages"]
    cfg = man["parameters"]["config"]
    rows = []
    for name, st in stages.items():
        balanced = st["rows_in"] == st["rows_out"] + st["rows_rejected"] + st["rows_dropped"]
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{st['rows_in']:,}</td><td>{st['rows_out']:,}</td>"
            f"<td>{st['rows_rejected']:,}</td><td>{st['rows_dropped']:,}</td>"
            f"<td class='{'' if balanced else 'bad'}'>{'yes' if balanced else 'NO'}</td>"
            f"<td>{st['seconds']:.2f}</td></tr>")
    pipe = []
    for s in result.statuses:
        secs = f"{s.seconds:.1f}" if s.status == "ran" else ""
        pipe.append(f"<tr><td>{_e(s.name)}</td><td>{_e(s.status)}</td><td>{secs}</td>"
                    f"<td>{'' if s.peak_rss_mb is None else f'{s.peak_rss_mb:,.0f}'}</td>"
                    f"<td class='muted'>{_e(s.reason or '')}</td></tr>")
    facts: list[tuple[str, str]] = []
    if "voters" in stages:
        facts.append(("voters read", f"{stages['voters']['rows_out']:,} ({stages['voters']['rows_rejected']:,} "
                                      "rows rejected)"))
    agg = stages.get("aggregate", {}).get("metrics", {})
    if agg.get("geocode_rate") is not None:
        facts.append(("geocode rate", f"{agg['geocode_rate']:.1%}"))
    if "join" in stages:
        jm = stages["join"]["metrics"]
        facts.append(("precinct assignment", ", ".join(f"{k} {jm[k]:,}" for k in ("within", "boundary", "nearest",
                                                                                   "unassigned") if k in jm)))
    sm = stages.get("score", {}).get("metrics", {})
    if "roc_auc" in sm:
        facts.append(("propensity model", f"{sm.get('model')} on {sm.get('label_election')}: ROC-AUC "
                                          f"{sm['roc_auc']:.3f}, PR-AUC {sm['pr_auc']:.3f}, Brier {sm['brier']:.3f}, "
                                          f"ECE {sm['ece']:.3f}"))
    cm = stages.get("cluster", {}).get("metrics", {})
    if "clusters" in cm:
        facts.append(("micro-geographies", f"{cm['clusters']} clusters of {cm.get('selected', 0):,} selected voters"
                                           f"; validity {cm.get('validity', float('nan')):.2f}, bootstrap ARI "
                                           f"{cm.get('bootstrap_ari', float('nan')):.2f}"))
    figs: list[tuple[str, str]] = []
    if (out / "calibration.png").exists():
        figs.append(("Propensity calibration (out-of-fold)",
                     base64.b64encode((out / "calibration.png").read_bytes()).decode("ascii")))
    if (out / "turfs.parquet").exists():
        turfs = pd.read_parquet(out / "turfs.parquet", columns=["doors", "within_tolerance"])
        tc = cfg.get("turfs", {})
        if len(turfs):
            share = float(turfs["within_tolerance"].mean())
            facts.append(("turfs", f"{len(turfs):,} turfs, {int(turfs['doors'].sum()):,} doors, {share:.0%} within "
                                   f"±{tc.get('tolerance', 0.1):.0%} of the target"))
            figs.append(("Turf balance", _turf_balance(turfs, int(tc.get("target_doors", 50)),
                                                       float(tc.get("tolerance", 0.1)))))
    if (out / "voters.parquet").exists():
        import pyarrow.parquet as pq

        names = set(pq.read_schema(out / "voters.parquet").names)
        score = S.PROPENSITY if S.PROPENSITY in names else S.ENGAGEMENT_SCORE
        if score in names and S.PRECINCT_ID in names:
            v = pd.read_parquet(out / "voters.parquet", columns=[S.PRECINCT_ID, score])
            png = _scores_by_precinct(v, score, int(cfg.get("join", {}).get("k_min", 11)))
            if png:
                figs.append((f"{score} by precinct", png))
    em = stages.get("export", {}).get("metrics", {})
    if em or (out / "exports").is_dir():
        n_files = sum(1 for p in (out / "exports").rglob("*") if p.is_file()) if (out / "exports").is_dir() else 0
        refused = em.get("refused", [])
        facts.append(("exports", f"{n_files} files for purpose {em.get('purpose', '?')}; {len(refused)} exports "
                                 "refused (below a minimum or by a guardrail; reasons in manifest.json)"))
    fig_html = "".join(f"<figure><figcaption>{_e(t)}</figcaption><img alt='{_e(t)}' src='data:image/png;base64,"
                       f"{b}'></figure>" for t, b in figs)
    fact_html = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in facts)
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>geo_segment run report</title>
<style>{_CSS}</style></head><body>
<h1>geo_segment run report</h1>
<p class="muted">{_e(man['command'])} · started {_e(man['started'])} · finished {_e(man['finished'])} ·
geo_segment {_e(man['versions'].get('geo-segment', '?'))} · folder {_e(out.name)}</p>
<h2>Key figures</h2><table class="kv">{fact_html}</table>
<h2>Stages</h2>
<table><tr><th>stage</th><th>status</th><th>seconds</th><th>peak MB</th><th></th></tr>{''.join(pipe)}</table>
<table><tr><th>record</th><th>rows in</th><th>out</th><th>rejected</th><th>dropped</th><th>balanced</th>
<th>seconds</th></tr>{''.join(rows)}</table>
<p class="muted">Every input row is an output, a reject (rejects.csv, with its line and reason) or dropped with a
stated reason (manifest.json).</p>
<h2>Plots</h2><div class="figs">{fig_html}</div>
</body></html>
"""
    target = out / "report.html"
    with atomic_path(target) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return target
