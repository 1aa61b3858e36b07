"""After the election: intent-to-treat, randomization inference and the effect on the contacted.

Estimators (see ``docs/experiments.md``)
----------------------------------------
* **ITT** (intent to treat): everyone is analysed in the arm they were *assigned* to, whether or not anyone
  knocked on their door. The estimate is a weighted least-squares regression of the outcome on the assignment,
  block fixed effects and (by default) the design's pre-treatment covariates, with weights
  ``1 / p_b`` for treatment voters and ``1 / (1 - p_b)`` for holdout voters (``p_b`` the treatment share of the
  block's voters). Without covariates this is exactly the block-weighted difference in means
  ``sum_b (N_b / N) (mean_T,b - mean_H,b)``; blocks whose voters are all in one arm cannot contribute.
* **Standard errors** are cluster-robust at the randomization unit (CR2, Bell and McCaffrey's bias-reduced
  linearization, which corrects for the leverage of the few holdout units of a block), with ``t`` intervals on
  ``G - 1`` degrees of freedom.
* **Randomization inference**: the sharp null of no effect for anyone; the design's own procedure (blocked
  complete randomization, with its rerandomization threshold) is replayed ``ri_draws`` times and the p-value is
  the share of draws whose block-weighted difference is at least as large in absolute value.
* **CACE** (complier average causal effect, the effect on the voters actually contacted): the ITT on the
  outcome over the ITT on contact (Wald / instrumental-variables estimator), with a delta-method standard error
  from the joint cluster-robust covariance of the two ITTs.
* **Attrition**: voters without an outcome (off the rolls after the election, unanswered surveys) are reported
  by arm with a test of differential attrition; the effect is estimated on the voters with an outcome. No unit
  is ever dropped: every randomized unit appears in the counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse, special

from geo_segment import schema as S
from geo_segment.errors import SchemaError
from geo_segment.experiments._covariates import _naive_dates, build_covariates
from geo_segment.experiments.design import (
    ARM_HOLDOUT,
    DesignTamperedError,
    ExperimentDesign,
    _Structure,
    accepted,
    draw_accepted,
    single_blas,
)

__all__ = ["ExperimentAnalysis", "analyze_experiment", "estimate_itt"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """Effects of the assignment on one or more outcomes with their joint cluster-robust covariance."""

    effects: FloatArray
    cov: FloatArray
    df: int
    n: int
    clusters: int
    blocks_used: int
    means_treatment: FloatArray
    means_holdout: FloatArray


def _cr2_sums(w: FloatArray, b: npt.NDArray[np.intp], g: npt.NDArray[np.intp], ok: npt.NDArray[np.bool_],
              sw: npt.NDArray[Any], Z: FloatArray, t_perp: FloatArray, e: FloatArray) -> FloatArray:
    """Per-cluster CR2 score sums ``(v t_perp)_g' (I - H_gg)^(-1/2) (v e)_g`` (clusters x r), ``v = sqrt(w)``.

    In the sqrt(W)-transformed regression on block dummies and ``Z`` (the within-block demeaned assignment and
    covariates), the hat matrix is ``P_blocks + P_Z`` (Frisch-Waugh-Lovell), so a cluster's diagonal block is
    ``v_g v_g' / sum_b(w) + Z*_g (Z*'Z*)^+ Z*_g'``: clusters nest in blocks. Clusters of equal size are adjusted
    together (batched symmetric eigendecompositions); eigenvalues of ``I - H_gg`` near 0 get a pseudo-inverse.
    """
    v = np.sqrt(w)
    rows = np.flatnonzero(ok)
    rows = rows[np.argsort(g[rows], kind="stable")]
    gs = g[rows]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    sizes = np.diff(np.r_[starts, len(rows)])
    Zs = v[:, None] * Z
    M = np.linalg.pinv(Zs[ok].T @ Zs[ok])
    es = v[:, None] * e
    ts = v * t_perp
    out = np.zeros((len(starts), e.shape[1]))
    for size in np.unique(sizes):
        which = np.flatnonzero(sizes == size)
        idx = rows[starts[which][:, None] + np.arange(size)[None, :]]  # clusters x size
        vg = v[idx]
        H = vg[:, :, None] * vg[:, None, :] / sw[b[idx[:, 0]]][:, None, None]
        Zg = Zs[idx]  # clusters x size x p
        H = H + np.einsum("csp,pq,ctq->cst", Zg, M, Zg)
        vals, vecs = np.linalg.eigh(np.eye(size)[None] - H)
        inv_sqrt = np.where(vals > 1e-10, 1.0 / np.sqrt(np.clip(vals, 1e-10, None)), 0.0)
        A = np.einsum("csk,ck,ctk->cst", vecs, inv_sqrt, vecs)
        adj = np.einsum("cst,ctr->csr", A, es[idx])
        out[which] = np.einsum("cs,csr->cr", ts[idx], adj)
    return out


def estimate_itt(
    y: npt.ArrayLike,
    treated: npt.ArrayLike,
    block: npt.ArrayLike,
    cluster: npt.ArrayLike,
    covariates: npt.ArrayLike | None = None,
    *,
    vcov: str = "CR2",
) -> Estimate:
    """Block-weighted ITT of ``treated`` on each column of ``y`` with a cluster-robust covariance.

    Parameters
    ----------
    y
        Outcomes, shape ``(n,)`` or ``(n, r)``, no missing values (drop unobserved rows first).
    treated
        Assignment (bool or 0/1) per row.
    block, cluster
        Block and randomization-unit labels per row (clusters nest in blocks).
    covariates
        Optional ``(n, k)`` pre-treatment covariates for regression adjustment.
    vcov
        ``"CR2"`` (default; Bell and McCaffrey's bias-reduced linearization, which corrects for the leverage of
        small blocks and arms) or ``"CR1"`` (``G / (G - 1) * (N - 1) / (N - K)`` times the plain sandwich).

    Returns
    -------
    Estimate
        ``effects`` (r,), ``cov`` (r, r), ``df`` = clusters - 1, counts, and the block-weighted arm means.

    Examples
    --------
    >>> e = estimate_itt([1, 1, 0, 0], [1, 1, 0, 0], ["b"] * 4, ["u1", "u2", "u3", "u4"])
    >>> float(e.effects[0])
    1.0
    """
    Y = np.asarray(y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    t = np.asarray(treated, dtype=np.float64)
    n = len(t)
    r = Y.shape[1]
    b = pd.factorize(np.asarray(block))[0]
    g = pd.factorize(np.asarray(cluster))[0]
    nb = int(b.max()) + 1 if n else 0
    n_t = np.bincount(b, weights=t, minlength=nb)
    n_all = np.bincount(b, minlength=nb).astype(np.float64)
    p = np.divide(n_t, n_all, out=np.zeros(nb), where=n_all > 0)
    usable = (p > 0) & (p < 1)
    pb = p[b]
    ok = usable[b]
    w = np.zeros(n)
    w[ok] = np.where(t[ok] > 0, 1.0 / pb[ok], 1.0 / (1.0 - pb[ok]))
    nan = np.full(r, np.nan)
    if not ok.any():
        return Estimate(nan, np.full((r, r), np.nan), 0, n, 0, 0, nan, nan)

    sw = np.bincount(b, weights=w, minlength=nb)
    sw_safe = np.where(sw > 0, sw, 1.0)

    def demean(v: FloatArray) -> FloatArray:
        v2 = v[:, None] if v.ndim == 1 else v
        means = np.stack([np.bincount(b, weights=w * v2[:, j], minlength=nb) / sw_safe for j in range(v2.shape[1])],
                         axis=1)
        return np.asarray(v2 - means[b])

    # block-weighted arm means (weights N_b / N over usable blocks)
    nu = n_all * usable
    wb = nu / nu.sum()
    mean_t = np.array([(wb * np.divide(np.bincount(b, weights=Y[:, j] * t, minlength=nb), n_t,
                                       out=np.zeros(nb), where=n_t > 0)).sum() for j in range(r)])
    n_h = n_all - n_t
    mean_h = np.array([(wb * np.divide(np.bincount(b, weights=Y[:, j] * (1 - t), minlength=nb), n_h,
                                       out=np.zeros(nb), where=n_h > 0)).sum() for j in range(r)])

    tt = demean(t)[:, 0]
    yy = demean(Y)
    k = 0
    if covariates is not None:
        X = np.asarray(covariates, dtype=np.float64)
        X = X[:, None] if X.ndim == 1 else X
        if X.shape[1]:
            X = demean(X)
            keep = X[ok].std(axis=0) > 1e-12
            X = X[:, keep]
            k = X.shape[1]
    sq = np.sqrt(w)
    if k:
        gamma = np.linalg.lstsq(X * sq[:, None], tt * sq, rcond=None)[0]
        t_perp = tt - X @ gamma
        rank = int(np.linalg.matrix_rank(X[ok] * sq[ok, None]))
    else:
        t_perp = tt
        rank = 0
    denom = float((w * t_perp * tt).sum())
    # FWL: the coefficient on t in the full regression
    effects = (w * t_perp) @ yy / denom
    if k:
        # residuals of the full regression: y~ - t~ tau - X delta
        resid_t = yy - np.outer(tt, effects)
        delta = np.linalg.lstsq(X * sq[:, None], resid_t * sq[:, None], rcond=None)[0]
        e = resid_t - X @ delta
    else:
        e = yy - np.outer(tt, effects)
    used_g = np.unique(g[ok])
    clusters = len(used_g)
    n_ok = int(ok.sum())
    if vcov == "CR1":
        scores = (w * t_perp)[:, None] * e / denom  # n x r
        sums = np.zeros((int(g.max()) + 1, r))
        np.add.at(sums, g, scores)
        sums = sums[used_g]
        n_params = int(usable.sum()) + 1 + rank
        c = (clusters / max(clusters - 1, 1)) * ((n_ok - 1) / max(n_ok - n_params, 1))
        cov = c * sums.T @ sums
    else:
        Z = np.column_stack([tt, X]) if k else tt[:, None]
        sums = _cr2_sums(w, b, g, ok, sw, Z, t_perp, e) / denom
        cov = sums.T @ sums
    return Estimate(effects=np.asarray(effects, dtype=np.float64), cov=cov, df=max(clusters - 1, 1), n=n_ok,
                    clusters=clusters, blocks_used=int(usable.sum()), means_treatment=mean_t, means_holdout=mean_h)


def _interval(est: float, se: float, df: int, alpha: float) -> tuple[float, float, float]:
    if not (math.isfinite(est) and math.isfinite(se)) or se <= 0:
        return float("nan"), float("nan"), float("nan")
    q = float(special.stdtrit(df, 1 - alpha / 2))
    p = float(2 * special.stdtr(df, -abs(est) / se))
    return est - q * se, est + q * se, p


@dataclass(frozen=True, eq=False)
class ExperimentAnalysis:
    """What :func:`analyze_experiment` found.

    Attributes
    ----------
    overall
        The overall results (effects on the probability / outcome scale): ``itt``, ``se``, ``ci_low``,
        ``ci_high``, ``p_value`` (cluster-robust t test), ``ri_p_value``, ``ri_draws``, ``mean_treatment``,
        ``mean_holdout`` (block-weighted), ``cace``, ``cace_se``, ``cace_ci_low``, ``cace_ci_high``,
        ``contact_rate_treatment``, ``contact_rate_holdout``, counts and the covariates adjusted for.
    by_stratum
        One row per score stratum: ``stratum``, ``voters``, ``units``, ``itt``, ``se``, ``ci_low``, ``ci_high``,
        ``p_value``, ``mean_treatment``, ``mean_holdout``.
    by_block
        One row per block: ``block``, ``units_treatment``, ``units_holdout``, ``voters``, ``observed``,
        ``mean_treatment``, ``mean_holdout``, ``itt``, ``se``, ``ci_low``, ``ci_high``.
    attrition
        One row per arm: ``arm``, ``units``, ``voters``, ``missing``, ``missing_share``, ``units_all_missing``.
    differential_attrition
        ``difference`` (treatment minus holdout share missing, block-weighted), ``se``, ``p_value``.
    notes
        Plain-language caveats (attrition, unadjusted randomization test, blocks without both arms, ...).
    params
        The outcome, the design's hash and unit, the options used.
    """

    overall: dict[str, Any]
    by_stratum: pd.DataFrame
    by_block: pd.DataFrame
    attrition: pd.DataFrame
    differential_attrition: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"params": self.params, "overall": self.overall,
                "by_stratum": self.by_stratum.to_dict("records"), "by_block": self.by_block.to_dict("records"),
                "attrition": self.attrition.to_dict("records"),
                "differential_attrition": self.differential_attrition, "notes": self.notes}


def _outcome(design: ExperimentDesign, outcomes: pd.DataFrame, *, outcome_election: Any, outcome_col: str,
             roll: Iterable[Any] | None) -> tuple[FloatArray, str]:
    """Outcome per design member (NaN = missing) and a description of it."""
    vid = design.members[S.VOTER_ID].astype(str)
    if S.ELECTION_DATE in outcomes.columns:
        if outcome_election is None:
            raise SchemaError("the outcomes are a vote history but no outcome election was given",
                              fix="pass outcome_election='YYYY-MM-DD' (--outcome-election), the election to measure")
        day = pd.Timestamp(outcome_election).normalize()
        dates = _naive_dates(outcomes[S.ELECTION_DATE]).dt.normalize()
        rows = (dates == day).to_numpy().copy()
        if S.VOTED in outcomes.columns:
            rows &= outcomes[S.VOTED].fillna(False).astype(bool).to_numpy()
        if not rows.any():
            newest = dates.max()
            raise SchemaError(
                f"the vote history holds no votes in the outcome election {day.date().isoformat()}",
                expected="the updated vote history, after the election",
                found=f"newest election {newest.date().isoformat() if pd.notna(newest) else 'none'}",
                fix="import the updated vote history, or correct --outcome-election",
            )
        voted = set(outcomes.loc[rows, S.VOTER_ID].astype(str))
        y: FloatArray = np.asarray(vid.isin(voted).to_numpy(np.float64), dtype=np.float64)
        if roll is not None:
            present = set(pd.Series(list(roll)).astype(str))
            y[~vid.isin(present).to_numpy()] = np.nan
        return y, f"turnout in the {day.date().isoformat()} election"
    if S.VOTER_ID not in outcomes.columns or outcome_col not in outcomes.columns:
        raise SchemaError(
            "the outcomes have neither a vote history's columns nor the outcome column",
            expected=f"{S.ELECTION_DATE!r} (a vote history) or {S.VOTER_ID!r} and {outcome_col!r}",
            found=f"columns {sorted(map(str, outcomes.columns))}",
            fix="pass the updated vote history, or a table of voter_id and the outcome (--outcome-col)",
        )
    o = outcomes[[S.VOTER_ID, outcome_col]].copy()
    o[S.VOTER_ID] = o[S.VOTER_ID].astype(str)
    if o[S.VOTER_ID].duplicated().any():
        raise SchemaError("the outcomes repeat voter ids", fix="keep one outcome per voter")
    values = pd.to_numeric(o[outcome_col].astype("object").replace({True: 1.0, False: 0.0}), errors="coerce")
    y = np.asarray(pd.Series(values.to_numpy(np.float64), index=o[S.VOTER_ID]).reindex(vid), dtype=np.float64)
    if roll is not None:
        y[~vid.isin(set(pd.Series(list(roll)).astype(str))).to_numpy()] = np.nan
    return y, f"{outcome_col}"


def _contacted(design: ExperimentDesign, contacts: pd.DataFrame, voters: pd.DataFrame | None,
               codes: Iterable[str], before: Any) -> FloatArray:
    """1 when the voter (or their household, for household-level results) had a contact with a code in ``codes``."""
    c = contacts
    mask = c["result_code"].astype(str).str.upper().isin({x.upper() for x in codes}).to_numpy()
    if before is not None and "contact_date" in c.columns:
        mask = mask & (_naive_dates(c["contact_date"]) <= pd.Timestamp(before)).fillna(False).to_numpy()
    c = c.loc[mask]
    vid = design.members[S.VOTER_ID].astype(str)
    hit = vid.isin(set(c[S.VOTER_ID].dropna().astype(str))) if S.VOTER_ID in c else pd.Series(False, index=vid.index)
    hh_rows = c[S.VOTER_ID].isna() if S.VOTER_ID in c else pd.Series(True, index=c.index)
    hh_ids = set(c.loc[hh_rows.to_numpy(), S.HOUSEHOLD_ID].dropna().astype(str)) if S.HOUSEHOLD_ID in c else set()
    if hh_ids:
        if voters is not None and S.HOUSEHOLD_ID in voters:
            hh = pd.Series(voters[S.HOUSEHOLD_ID].astype(str).to_numpy(), index=voters[S.VOTER_ID].astype(str))
            hh = hh[~hh.index.duplicated()]
            hit = hit | vid.map(hh).isin(hh_ids).to_numpy()
        elif design.params.get("unit") == "household":
            hit = hit | design.members["unit_id"].astype(str).isin(hh_ids).to_numpy()
    return np.asarray(hit, dtype=np.float64)


def _structure_for(design: ExperimentDesign, cov: pd.DataFrame | None) -> _Structure:
    a = design.assignment
    labels = sorted(set(a["block"]))
    code = pd.Index(labels).get_indexer(a["block"]).astype(np.int64)
    names: list[str] = []
    p = 0
    cov_sum = np.zeros((len(a), 0))
    cov_sq = np.zeros((len(a), 0))
    if cov is not None and cov.shape[1]:
        names = list(cov.columns)
        p = len(names)
        u = pd.Index(a["unit_id"]).get_indexer(design.members["unit_id"])
        vals = cov.to_numpy(np.float64)
        cov_sum = np.zeros((len(a), p))
        cov_sq = np.zeros((len(a), p))
        np.add.at(cov_sum, u, vals)
        np.add.at(cov_sq, u, vals**2)
    thr = design.params.get("balance_threshold") if design.params.get("rerandomized") else None
    return _Structure(unit_ids=a["unit_id"].to_numpy(dtype=object), block_code=code, block_labels=labels,
                      n_voters=a["n_voters"].to_numpy(np.float64), share=float(design.params["holdout_share"]),
                      cov_names=names, cov_sum=cov_sum, cov_sq=cov_sq, threshold=thr if names else None)


def _ri_stat(B: sparse.csr_matrix, ysum: FloatArray, nobs: FloatArray, holdout: npt.NDArray[np.bool_]) -> FloatArray:
    """Block-weighted difference in means for each column of ``holdout`` (units x k)."""
    h = holdout.astype(np.float64)
    t = 1.0 - h
    st, sh = B @ (ysum[:, None] * t), B @ (ysum[:, None] * h)
    nt, nh = B @ (nobs[:, None] * t), B @ (nobs[:, None] * h)
    both = (nt > 0) & (nh > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(both, st / np.where(nt > 0, nt, 1) - sh / np.where(nh > 0, nh, 1), 0.0)
    wts = np.where(both, nt + nh, 0.0)
    tot = wts.sum(axis=0)
    return np.asarray((wts * diff).sum(axis=0) / np.where(tot > 0, tot, 1.0))


@single_blas
def analyze_experiment(
    design: ExperimentDesign,
    voters: pd.DataFrame | None,
    outcomes: pd.DataFrame,
    *,
    outcome_election: Any = None,
    outcome_col: str = "outcome",
    history: pd.DataFrame | None = None,
    roll: Iterable[Any] | None = None,
    contacts: pd.DataFrame | None = None,
    contact_codes: Iterable[str] = ("CT",),
    adjust: bool = True,
    ri_draws: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> ExperimentAnalysis:
    """Estimate the lift of the program from a saved design and the outcomes, by assigned arm.

    Parameters
    ----------
    design
        The design (from :func:`~geo_segment.experiments.load_design`); its hash is checked again here.
    voters
        The voter file the design was drawn from (for the pre-treatment covariates and household contacts), or
        ``None`` (no covariate adjustment).
    outcomes
        Either the updated long vote history (``voter_id``, ``election_date``, ``voted``; with
        ``outcome_election``), or a table of ``voter_id`` and ``outcome_col`` (surveys; missing = no answer).
    outcome_election
        Date of the election whose turnout is the outcome (vote-history outcomes).
    outcome_col
        The outcome column of a table of outcomes.
    history
        Vote history for the past-turnout covariate (default: ``outcomes`` when it is a vote history; only
        elections before the design's cutoff are read).
    roll
        Voter ids still on the rolls after the election (e.g. the updated voter file's ``voter_id``): design
        voters not among them have no outcome (attrition). ``None``: every design voter has one.
    contacts
        Contact history (``geo_segment.turfs.results``: ``voter_id``, ``household_id``, ``contact_date``,
        ``result_code``) for the effect on the contacted; household-level rows count for every member.
    contact_codes
        Result codes that count as a contact (default ``CT``, talked).
    adjust
        Adjust for the design's covariates (more precision; the estimate stays the ITT).
    ri_draws
        Randomization-inference draws (0: skip).
    seed
        Seed of the randomization-inference draws.
    alpha
        1 - confidence level of the intervals.

    Returns
    -------
    ExperimentAnalysis

    Raises
    ------
    DesignTamperedError
        The design's content does not match its hash (units dropped or arms changed after randomization).
    SchemaError
        The outcomes cannot be read as a vote history or an outcome table.
    """
    if design.compute_hash() != design.content_sha256:
        raise DesignTamperedError(
            "the experiment design was changed after randomization (its content no longer matches its SHA-256)",
            expected=f"content_sha256 {design.content_sha256}", found=design.compute_hash(),
            fix="analyse the saved design as it was launched: every randomized unit, in its assigned arm",
        )
    notes: list[str] = []
    members = design.members
    a = design.assignment
    unit_index = pd.Index(a["unit_id"])
    u_of = unit_index.get_indexer(members["unit_id"])
    hold_unit = (a["arm"] == ARM_HOLDOUT).to_numpy()
    treated = (~hold_unit[u_of]).astype(np.float64)
    block = a["block"].to_numpy()[u_of]
    stratum = a["stratum"].to_numpy(np.int64)[u_of]
    cluster = members["unit_id"].to_numpy()

    y, described = _outcome(design, outcomes, outcome_election=outcome_election, outcome_col=outcome_col, roll=roll)
    observed = ~np.isnan(y)

    # covariates (pre-treatment): recomputed from the design-time voters and the history before the cutoff
    hist = history if history is not None else (outcomes if S.ELECTION_DATE in outcomes.columns else None)
    cov: pd.DataFrame | None = None
    if voters is not None and design.params.get("covariates"):
        missing_voters = int((~members[S.VOTER_ID].isin(set(voters[S.VOTER_ID].astype(str)))).sum())
        if missing_voters:
            notes.append(f"{missing_voters:,} design voters are not in the voters file given; their covariates are "
                         "set to the mean")
        try:
            cov_all = build_covariates(voters, hist, covariates=design.params["covariates"],
                                       score_col=design.params.get("score_col"),
                                       cutoff=design.params.get("history_cutoff"),
                                       n_generals=int(design.params.get("n_generals", 4)))
            cov = cov_all[~cov_all.index.duplicated()].reindex(members[S.VOTER_ID].astype(str))
            cov = cov.fillna(cov.mean()).fillna(0.0)
        except SchemaError as exc:
            notes.append(f"covariates could not be rebuilt ({exc.what}); no adjustment, and the randomization test "
                         "ignores the balance threshold (conservative)")
            cov = None
    X = cov.to_numpy(np.float64) if (adjust and cov is not None) else None

    # contacts
    d: FloatArray | None = None
    if contacts is not None:
        d = _contacted(design, contacts, voters, contact_codes, outcome_election)

    obs = observed
    cols = [y[obs]] + ([d[obs]] if d is not None else [])
    est = estimate_itt(np.column_stack(cols), treated[obs], block[obs], cluster[obs],
                       None if X is None else X[obs])
    itt = float(est.effects[0])
    se = float(math.sqrt(est.cov[0, 0])) if np.isfinite(est.cov[0, 0]) else float("nan")
    lo, hi, p = _interval(itt, se, est.df, alpha)
    overall: dict[str, Any] = {
        "outcome": described, "itt": itt, "se": se, "ci_low": lo, "ci_high": hi, "p_value": p, "df": est.df,
        "confidence": 1 - alpha, "mean_treatment": float(est.means_treatment[0]),
        "mean_holdout": float(est.means_holdout[0]), "n_voters": len(members), "n_observed": int(obs.sum()),
        "n_units": len(a), "n_clusters": est.clusters, "blocks": int(a["block"].nunique()),
        "blocks_used": est.blocks_used, "adjusted_for": list(cov.columns) if X is not None and cov is not None else [],
        "estimator": "block-weighted ITT (IPW + block fixed effects" + (" + covariates" if X is not None else "")
                     + "), CR2 standard errors clustered by unit",
    }
    if est.blocks_used < overall["blocks"]:
        notes.append(f"{overall['blocks'] - est.blocks_used} blocks have observed voters in only one arm and do not "
                     "contribute to the estimate")

    # CACE
    if d is not None:
        itt_d = float(est.effects[1])
        overall["contact_rate_treatment"] = float(np.mean(d[treated > 0])) if (treated > 0).any() else float("nan")
        overall["contact_rate_holdout"] = float(np.mean(d[treated == 0])) if (treated == 0).any() else float("nan")
        overall["itt_contact"] = itt_d
        if overall["contact_rate_holdout"] > 0:
            notes.append(f"{overall['contact_rate_holdout']:.1%} of holdout voters have a contact record: the holdout "
                         "was not fully excluded from the program")
        if abs(itt_d) > 1e-9:
            cace = itt / itt_d
            v = (est.cov[0, 0] - 2 * cace * est.cov[0, 1] + cace**2 * est.cov[1, 1]) / itt_d**2
            cse = float(math.sqrt(max(v, 0.0)))
            clo, chi, cp = _interval(cace, cse, est.df, alpha)
            overall.update({"cace": cace, "cace_se": cse, "cace_ci_low": clo, "cace_ci_high": chi, "cace_p_value": cp})
        else:
            notes.append("no difference in contact rates between the arms: the effect on the contacted is undefined")

    # randomization inference (sharp null; the design's own procedure, replayed)
    if ri_draws > 0:
        struct = _structure_for(design, cov)
        if struct.threshold is not None and not bool(accepted(struct, hold_unit[:, None])[0]):
            notes.append("the covariates rebuilt from the inputs given do not reproduce the design's balance; the "
                         "randomization test ignores the balance threshold (conservative)")
            struct.threshold = None
        elif design.params.get("rerandomized") and struct.threshold is None:
            notes.append("the randomization test ignores the design's balance threshold (no covariates; conservative)")
        ysum = np.asarray(np.bincount(u_of[obs], weights=y[obs], minlength=len(a)), dtype=np.float64)
        nobs = np.asarray(np.bincount(u_of[obs], minlength=len(a)), dtype=np.float64)
        B = sparse.csr_matrix((np.ones(len(a)), (struct.block_code, np.arange(len(a)))),
                              shape=(len(struct.block_labels), len(a)))
        stat = float(_ri_stat(B, ysum, nobs, hold_unit[:, None])[0])
        rate = float(design.check.get("acceptance_rate") or 1.0) if struct.threshold is not None else 1.0
        cap = int(min(2_000_000, max(10 * ri_draws, 20 * ri_draws / max(rate, 1e-3))))
        draws, _ = draw_accepted(struct, np.random.default_rng([seed, 7]), ri_draws, max_draws=cap)
        ref = _ri_stat(B, ysum, nobs, draws) if draws.shape[1] else np.zeros(0)
        overall["ri_statistic"] = stat
        overall["ri_draws"] = int(draws.shape[1])
        overall["ri_p_value"] = (float((1 + (np.abs(ref) >= abs(stat) - 1e-12).sum()) / (1 + len(ref)))
                                 if len(ref) else float("nan"))
        if draws.shape[1] < ri_draws:
            notes.append(f"only {draws.shape[1]:,} of {ri_draws:,} randomization draws met the balance threshold")

    # per stratum
    rows = []
    for s in sorted(set(stratum.tolist())):
        m = obs & (stratum == s)
        e = estimate_itt(y[m], treated[m], block[m], cluster[m], None if X is None else X[m])
        s_se = float(math.sqrt(e.cov[0, 0])) if np.isfinite(e.cov[0, 0]) else float("nan")
        s_lo, s_hi, s_p = _interval(float(e.effects[0]), s_se, e.df, alpha)
        rows.append({"stratum": int(s), "voters": int((stratum == s).sum()), "observed": int(m.sum()),
                     "units": int(len(set(cluster[stratum == s]))), "itt": float(e.effects[0]), "se": s_se,
                     "ci_low": s_lo, "ci_high": s_hi, "p_value": s_p,
                     "mean_treatment": float(e.means_treatment[0]), "mean_holdout": float(e.means_holdout[0])})
    by_stratum = pd.DataFrame(rows, columns=["stratum", "voters", "observed", "units", "itt", "se", "ci_low",
                                             "ci_high", "p_value", "mean_treatment", "mean_holdout"])

    # per block (unadjusted difference in means within the block)
    brow = []
    units_h = a.loc[hold_unit, "block"].value_counts()
    units_t = a.loc[~hold_unit, "block"].value_counts()
    for blk, idx in pd.Series(np.arange(len(members))).groupby(block, sort=True):
        ii = idx.to_numpy()
        m = ii[obs[ii]]
        eb = estimate_itt(y[m], treated[m], block[m], cluster[m]) if len(m) else None
        b_se = float(math.sqrt(eb.cov[0, 0])) if eb is not None and np.isfinite(eb.cov[0, 0]) else float("nan")
        b_eff = float(eb.effects[0]) if eb is not None else float("nan")
        b_lo, b_hi, _ = _interval(b_eff, b_se, eb.df if eb is not None else 1, alpha)
        brow.append({"block": str(blk), "units_treatment": int(units_t.get(blk, 0)),
                     "units_holdout": int(units_h.get(blk, 0)), "voters": len(ii),
                     "observed": len(m),
                     "mean_treatment": float(np.mean(y[m][treated[m] > 0])) if (treated[m] > 0).any() else np.nan,
                     "mean_holdout": float(np.mean(y[m][treated[m] == 0])) if (treated[m] == 0).any() else np.nan,
                     "itt": b_eff, "se": b_se, "ci_low": b_lo, "ci_high": b_hi})
    by_block = pd.DataFrame(brow)

    # attrition, never dropping a unit
    arow = []
    for arm, is_hold in (("treatment", False), ("holdout", True)):
        vm = (treated == 0) if is_hold else (treated > 0)
        miss = vm & ~obs
        unit_missing = pd.Series(~obs[vm]).groupby(cluster[vm]).all()
        arow.append({"arm": arm, "units": int((hold_unit == is_hold).sum()), "voters": int(vm.sum()),
                     "missing": int(miss.sum()), "missing_share": float(miss.sum() / max(vm.sum(), 1)),
                     "units_all_missing": int(unit_missing.sum())})
    attrition = pd.DataFrame(arow)
    miss_ind = (~obs).astype(np.float64)
    diff_att: dict[str, Any] = {"difference": 0.0, "se": 0.0, "p_value": 1.0}
    if miss_ind.any():
        ea = estimate_itt(miss_ind, treated, block, cluster)
        a_se = float(math.sqrt(ea.cov[0, 0])) if np.isfinite(ea.cov[0, 0]) else float("nan")
        _, _, a_p = _interval(float(ea.effects[0]), a_se, ea.df, alpha)
        diff_att = {"difference": float(ea.effects[0]), "se": a_se, "p_value": a_p}
        notes.append(f"{int(miss_ind.sum()):,} of {len(members):,} voters ({miss_ind.mean():.1%}) have no outcome; the "
                     "effect is estimated on the others")
        if math.isfinite(a_p) and a_p < 0.05:
            notes.append("attrition differs between the arms (p < 0.05): the estimate may be biased; read it with care")

    params = {"design_sha256": design.content_sha256, "unit": design.params.get("unit"),
              "outcome_election": None if outcome_election is None else str(pd.Timestamp(outcome_election).date()),
              "outcome_col": outcome_col if S.ELECTION_DATE not in outcomes.columns else None,
              "contact_codes": list(contact_codes) if contacts is not None else None, "adjust": bool(adjust),
              "ri_draws": int(ri_draws), "seed": int(seed), "alpha": float(alpha)}
    return ExperimentAnalysis(overall=overall, by_stratum=by_stratum, by_block=by_block, attrition=attrition,
                              differential_attrition=diff_att, notes=notes, params=params)
