"""Power before launch: the minimum detectable effect of a (cluster-)randomized holdout.

The formula is the textbook one for a difference in proportions between two arms, inflated by the design effect of
randomizing clusters (households, turfs, precincts) instead of voters:

``MDE = (z[1 - alpha/2] + z[power]) * sqrt(p (1 - p) * deff * (1 - R2) / (N * s * (1 - s)))``

with ``deff = 1 + (m - 1) * ICC``, ``m`` the (size-weighted) mean number of voters per unit, ``N`` the voters in
the experiment, ``s`` the holdout share and ``p`` the base rate (expected turnout without the program).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

from geo_segment.errors import ConfigError

__all__ = ["PowerResult", "estimate_icc", "power"]


@dataclass(frozen=True)
class PowerResult:
    """The minimum detectable effects of a design (effects on the probability scale, 0.02 = 2 points).

    Attributes
    ----------
    n_voters, n_units
        Voters and randomization units in the experiment.
    cluster_size
        Size-weighted mean voters per unit (``sum(n^2) / sum(n)``).
    icc, design_effect
        Intra-cluster correlation of the outcome and ``1 + (cluster_size - 1) * icc``.
    effective_n
        ``n_voters / design_effect``.
    base_rate, holdout_share, alpha, power, r2, contact_rate
        The assumptions.
    mde
        Minimum detectable intent-to-treat effect (two-sided test at ``alpha`` with the given power).
    mde_cace
        Minimum detectable effect on the contacted (``mde / contact_rate``).
    effect, power_at_effect
        The power to detect ``effect`` when one was given, else ``None``.
    """

    n_voters: int
    n_units: int
    cluster_size: float
    icc: float
    design_effect: float
    effective_n: float
    base_rate: float
    holdout_share: float
    alpha: float
    power: float
    r2: float
    contact_rate: float
    mde: float
    mde_cace: float
    effect: float | None = None
    power_at_effect: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)

    def sentence(self) -> str:
        """One plain-language sentence for organizers."""
        text = (f"With {self.n_voters:,} voters in {self.n_units:,} units and {self.holdout_share:.0%} held out, "
                f"the experiment can detect a turnout lift of {100 * self.mde:.1f} points or more "
                f"({self.power:.0%} power, two-sided {self.alpha:g} test; base rate {self.base_rate:.0%}, "
                f"ICC {self.icc:.2f}, design effect {self.design_effect:.2f})")
        if self.contact_rate < 1:
            text += (f"; among voters actually reached ({self.contact_rate:.0%}) the lift must be "
                     f"{100 * self.mde_cace:.1f} points")
        return text + "."


def _check(name: str, value: float, lo: float, hi: float, *, open_lo: bool = True, open_hi: bool = True) -> None:
    bad = (value <= lo if open_lo else value < lo) or (value >= hi if open_hi else value > hi) or math.isnan(value)
    if bad:
        lb, rb = ("(" if open_lo else "["), (")" if open_hi else "]")
        raise ConfigError(f"power: {name} out of range", expected=f"a value in {lb}{lo}, {hi}{rb}",
                          found=repr(value), fix=f"pass a valid {name}")


def power(
    n_voters: int,
    *,
    n_units: int | None = None,
    cluster_size: float = 1.0,
    icc: float = 0.0,
    base_rate: float = 0.5,
    holdout_share: float = 0.1,
    alpha: float = 0.05,
    power: float = 0.8,
    r2: float = 0.0,
    contact_rate: float = 1.0,
    effect: float | None = None,
) -> PowerResult:
    """Minimum detectable effect (and optionally the power at a given effect) of a holdout experiment.

    Parameters
    ----------
    n_voters
        Voters in the experiment (treatment plus holdout).
    n_units
        Randomization units (default ``round(n_voters / cluster_size)``).
    cluster_size
        Mean voters per unit, size-weighted (1 for voter-level randomization).
    icc
        Intra-cluster correlation of the outcome within a unit (households: about 0.3-0.5 for turnout).
    base_rate
        Expected outcome rate without the program (e.g. turnout 0.55).
    holdout_share
        Share of units held out.
    alpha, power
        Two-sided significance level and target power.
    r2
        Share of outcome variance explained by the blocks and covariates (0 = no adjustment credit).
    contact_rate
        Expected share of the treatment group actually reached, for the effect on the contacted.
    effect
        When given, the power to detect this effect is also computed.

    Returns
    -------
    PowerResult

    Raises
    ------
    ConfigError
        A parameter out of range.

    Examples
    --------
    >>> r = power(10_000, cluster_size=1.5, icc=0.4, base_rate=0.5, holdout_share=0.5)
    >>> round(r.design_effect, 2), round(r.mde, 4)
    (1.2, 0.0307)
    """
    if n_voters < 2:
        raise ConfigError("power: too few voters", expected="n_voters >= 2", found=repr(n_voters),
                          fix="an experiment needs voters in both arms")
    _check("base_rate", base_rate, 0, 1)
    _check("holdout_share", holdout_share, 0, 1)
    _check("alpha", alpha, 0, 1)
    _check("power", power, 0, 1)
    _check("icc", icc, 0, 1, open_lo=False, open_hi=False)
    _check("r2", r2, 0, 1, open_lo=False)
    _check("contact_rate", contact_rate, 0, 1, open_hi=False)
    if cluster_size < 1:
        raise ConfigError("power: cluster_size below 1", expected="cluster_size >= 1", found=repr(cluster_size),
                          fix="pass the mean voters per unit")
    units = int(n_units) if n_units is not None else max(1, round(n_voters / cluster_size))
    deff = 1.0 + (cluster_size - 1.0) * icc
    var_unit = base_rate * (1 - base_rate) * deff * (1 - r2)
    se = math.sqrt(var_unit / (n_voters * holdout_share * (1 - holdout_share)))
    z_a = float(stats.norm.ppf(1 - alpha / 2))
    z_b = float(stats.norm.ppf(power))
    mde = (z_a + z_b) * se
    achieved = None
    if effect is not None:
        achieved = float(stats.norm.cdf(abs(effect) / se - z_a) + stats.norm.cdf(-abs(effect) / se - z_a))
    return PowerResult(
        n_voters=int(n_voters), n_units=units, cluster_size=float(cluster_size), icc=float(icc),
        design_effect=deff, effective_n=n_voters / deff, base_rate=float(base_rate),
        holdout_share=float(holdout_share), alpha=float(alpha), power=float(power), r2=float(r2),
        contact_rate=float(contact_rate), mde=mde, mde_cace=mde / contact_rate, effect=effect,
        power_at_effect=achieved,
    )


def estimate_icc(values: Any, groups: Any) -> float:
    """One-way ANOVA estimate of the intra-cluster correlation of ``values`` within ``groups``, clipped to [0, 1].

    Uses the unbalanced-design form ``(MSB - MSW) / (MSB + (n0 - 1) MSW)`` with
    ``n0 = (N - sum(n_g^2) / N) / (G - 1)``. Returns 0 when there are fewer than two groups or no within-group
    replication.
    """
    import numpy as np
    import pandas as pd

    y = np.asarray(values, dtype=np.float64)
    g = pd.factorize(np.asarray(groups))[0]
    n_total = len(y)
    n_groups = int(g.max()) + 1 if n_total else 0
    if n_groups < 2 or n_total <= n_groups:
        return 0.0
    n_g = np.bincount(g, minlength=n_groups).astype(np.float64)
    mean_g = np.bincount(g, weights=y, minlength=n_groups) / n_g
    grand = y.mean()
    ssb = float((n_g * (mean_g - grand) ** 2).sum())
    ssw = float(((y - mean_g[g]) ** 2).sum())
    msb = ssb / (n_groups - 1)
    msw = ssw / (n_total - n_groups)
    n0 = (n_total - float((n_g**2).sum()) / n_total) / (n_groups - 1)
    denom = msb + (n0 - 1) * msw
    if denom <= 0:
        return 0.0
    return float(min(1.0, max(0.0, (msb - msw) / denom)))
