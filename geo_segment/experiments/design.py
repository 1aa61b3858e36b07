"""Randomized holdout designs: units, blocks, complete randomization within blocks, balance, hash.

The randomization procedure (also replayed by the randomization-inference test of the analysis):

1. Units (households, turfs, micro-geographies or precincts) are sorted by id; each gets the score stratum of its
   voters' mean score (``n_strata`` equal-count strata) and the most common value of every block column.
2. Blocks are the cells ``block columns x score stratum`` with at least ``min_block_units`` units. A smaller cell
   joins the large block of the same block-column value with the nearest stratum; the cells of a value without
   any large block are pooled by stratum across values, and pooled strata still too small are pooled together.
3. In every block ``floor(s * n)`` units are held out, plus one more with probability ``s * n - floor(s * n)``
   (so every unit's holdout probability is exactly ``s`` and a block's count is within one unit of ``s * n``);
   which units is a uniform random permutation within the block.
4. With ``balance_threshold`` set, draws are repeated (in vectorized batches) until the largest absolute
   standardized difference of the covariates is below the threshold (rerandomization, Morgan and Rubin 2012);
   the first acceptable draw is kept. Everything comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_segment import schema as S
from geo_segment.errors import ConfigError, GeoSegmentError, GeoSegmentWarning, InputFileError, Location, SchemaError
from geo_segment.experiments._covariates import build_covariates, history_cutoff
from geo_segment.experiments.power import PowerResult, estimate_icc, power
from geo_segment.io.atomic import write_csv, write_json

__all__ = ["ARM_HOLDOUT", "ARM_TREATMENT", "UNITS", "DesignTamperedError", "ExperimentDesign", "design_experiment",
           "exclude_holdout", "holdout_mask", "load_design"]

#: unit kind -> the voters column naming the unit
UNITS = {"household": S.HOUSEHOLD_ID, "turf": S.TURF_ID, "micro_geo": S.MICRO_GEO, "precinct": S.PRECINCT_ID}
ARM_TREATMENT = "treatment"
ARM_HOLDOUT = "holdout"
FORMAT_VERSION = 1
_BATCH = 250
_F = TypeVar("_F", bound=Callable[..., Any])


def single_blas(func: _F) -> _F:
    """Run ``func`` with one BLAS thread: its products are small and many, and threads only add contention."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

_MAX_CELLS = 5_000_000  # units x draws per batch: bounds the memory of a batch (about 40 MB of keys)


def _batch_cap(n_units: int) -> int:
    return max(1, _MAX_CELLS // max(n_units, 1))


def _draw_chunked(struct: _Structure, rng: np.random.Generator, k: int) -> npt.NDArray[np.bool_]:
    """:func:`draw_assignments` in batches small enough for large experiments."""
    cap = _batch_cap(struct.n_units)
    parts = [draw_assignments(struct, rng, min(cap, k - i)) for i in range(0, k, cap)]
    return np.concatenate(parts, axis=1) if parts else np.zeros((struct.n_units, 0), dtype=bool)


def _max_abs_diff(struct: _Structure, holdout: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Largest |standardized difference| of each draw (zeros without covariates), in batches."""
    if not struct.cov_names:
        return np.zeros(holdout.shape[1])
    cap = _batch_cap(struct.n_units)
    return np.concatenate([np.abs(std_diffs(struct, holdout[:, i: i + cap])).max(axis=0)
                           for i in range(0, holdout.shape[1], cap)] or [np.zeros(0)])


class DesignTamperedError(GeoSegmentError, ValueError):
    """A saved design's content no longer matches its recorded SHA-256."""

    exit_code = 4


@dataclass(frozen=True, eq=False)
class ExperimentDesign:
    """A randomized holdout design, as returned by :func:`design_experiment` or :func:`load_design`.

    Attributes
    ----------
    params
        The parameters the design was drawn with (unit, unit column, holdout share, block columns, score column,
        strata, seed, covariates, balance threshold, history cutoff, ...).
    assignment
        One row per unit, sorted by ``unit_id``: ``unit_id`` (str), ``block`` (str), ``stratum`` (int64, the
        unit's score stratum, 0 = lowest), ``arm`` (``"treatment"`` or ``"holdout"``), ``n_voters`` (int64).
    members
        ``voter_id`` -> ``unit_id``: the voters randomized (the experiment's population, fixed at design time).
    balance
        Per covariate: ``covariate``, ``mean_treatment``, ``mean_holdout``, ``sd_pooled``, ``std_diff``.
    blocks
        Per block: ``block``, ``units``, ``holdout_units``, ``voters``, ``holdout_voters``.
    check
        The randomization check: ``max_abs_std_diff``, ``p_value`` (share of unconstrained blocked draws at least
        as imbalanced), ``draws``, ``accepted_draw``, ``acceptance_rate``, ``threshold_met``.
    power
        The :class:`~geo_segment.experiments.power.PowerResult` before launch.
    content_sha256
        SHA-256 of the canonical parameters, assignment and members (see :meth:`compute_hash`).
    """

    params: dict[str, Any]
    assignment: pd.DataFrame
    members: pd.DataFrame
    balance: pd.DataFrame
    blocks: pd.DataFrame
    check: dict[str, Any]
    power: PowerResult
    content_sha256: str = field(default="")

    @property
    def unit_col(self) -> str:
        """The voters column naming the randomization unit."""
        return str(self.params["unit_col"])

    @property
    def holdout_units(self) -> pd.Index:
        """Ids (str) of the held-out units."""
        a = self.assignment
        return pd.Index(a.loc[a["arm"] == ARM_HOLDOUT, "unit_id"].astype(str))

    def compute_hash(self) -> str:
        """SHA-256 of the canonical JSON of the parameters, assignment and members."""
        return _content_hash(self.params, self.assignment, self.members)

    def to_dict(self) -> dict[str, Any]:
        """The whole design as plain data (the content of ``design.json``)."""
        a, m = self.assignment, self.members
        return {
            "format": "geo_segment.experiment_design",
            "version": FORMAT_VERSION,
            "content_sha256": self.content_sha256,
            "params": self.params,
            "check": self.check,
            "power": self.power.to_dict(),
            "balance": self.balance.to_dict("records"),
            "blocks": self.blocks.to_dict("records"),
            "assignment": {c: a[c].tolist() for c in ("unit_id", "block", "stratum", "arm", "n_voters")},
            "members": {c: m[c].tolist() for c in (S.VOTER_ID, "unit_id")},
        }

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``design.json`` (with its hash), ``assignment.csv``, ``balance.csv``, ``blocks.csv`` and
        ``power.json`` into ``folder`` atomically; return the paths by role."""
        out = Path(folder)
        paths = {
            "design": write_json(self.to_dict(), out / "design.json"),
            "assignment": write_csv(self.assignment, out / "assignment.csv"),
            "balance": write_csv(self.balance, out / "balance.csv"),
            "blocks": write_csv(self.blocks, out / "blocks.csv"),
            "power": write_json({**self.power.to_dict(), "summary": self.power.sentence()}, out / "power.json"),
        }
        return paths


def _canonical_payload(params: dict[str, Any], assignment: pd.DataFrame, members: pd.DataFrame) -> bytes:
    payload = {
        "version": FORMAT_VERSION,
        "params": params,
        "assignment": {c: [_plain(v) for v in assignment[c].tolist()] for c in ("unit_id", "block", "arm")},
        "members": {c: [str(v) for v in members[c].tolist()] for c in (S.VOTER_ID, "unit_id")},
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _content_hash(params: dict[str, Any], assignment: pd.DataFrame, members: pd.DataFrame) -> str:
    return hashlib.sha256(_canonical_payload(params, assignment, members)).hexdigest()


# ==================================================================================================================
# units and blocks
# ==================================================================================================================


def _unit_ids(voters: pd.DataFrame, unit_col: str) -> pd.Series:
    """Unit id per voter as str, ``NA`` for voters outside every unit (micro-geography noise, no turf)."""
    raw = voters[unit_col]
    ids = raw.astype("string")
    if unit_col == S.MICRO_GEO:
        num = pd.to_numeric(raw, errors="coerce")
        ids = ids.mask(num.isna() | (num < 0))
    return ids.mask(ids.str.strip() == "")


def _strata(score: npt.NDArray[np.float64], n_strata: int) -> npt.NDArray[np.int64]:
    """Equal-count strata of ``score`` (ties broken by order), 0 = lowest; NaN scores go to the middle."""
    n = len(score)
    if n_strata <= 1 or n == 0:
        return np.zeros(n, dtype=np.int64)
    filled = np.where(np.isnan(score), np.nanmedian(score) if np.isfinite(score).any() else 0.0, score)
    rank = np.argsort(np.argsort(filled, kind="stable"), kind="stable")
    return np.minimum(rank * n_strata // n, n_strata - 1).astype(np.int64)


def _make_blocks(keys: pd.Series, strata: npt.NDArray[np.int64], min_units: int) -> npt.NDArray[np.object_]:
    """Block label per unit (see the module docstring, step 2)."""
    n = len(keys)
    key = keys.astype(str).to_numpy()
    cell = pd.Series(key + "|s" + strata.astype(str))
    size = cell.map(cell.value_counts()).to_numpy()
    large = size >= min_units
    label = cell.to_numpy().astype(object)
    label[~large] = None
    # small cells join the large block of the same key with the nearest stratum
    large_cells = pd.DataFrame({"key": key[large], "stratum": strata[large], "cell": cell.to_numpy()[large]})
    large_cells = large_cells.drop_duplicates("cell")
    small = np.flatnonzero(~large)
    pooled = np.zeros(n, dtype=bool)
    if len(small):
        # nearest large stratum of the same key (ties: the lower stratum), as one merge
        cand = pd.DataFrame({"i": small, "key": key[small], "s": strata[small]}).merge(large_cells, on="key")
        cand["d"] = (cand["stratum"] - cand["s"]).abs()
        best = cand.sort_values(["i", "d", "stratum"], kind="stable").drop_duplicates("i")
        label[best["i"].to_numpy()] = best["cell"].to_numpy()
        pooled[small] = True
        pooled[best["i"].to_numpy()] = False
    if pooled.any():
        pool = np.array(["pooled|s" + str(s) for s in strata[pooled]], dtype=object)
        counts = pd.Series(pool).value_counts()
        too_small = pd.Series(pool).map(counts).to_numpy() < min_units
        pool[too_small] = "pooled|all"
        if 0 < int(too_small.sum()) < min_units and (~too_small).any():
            # the remainder is still too small: join the smallest pooled stratum
            pool[too_small] = pd.Series(pool[~too_small]).value_counts().index[-1]
        label[pooled] = pool
        if (label == "pooled|all").sum() < min_units and (label != "pooled|all").any():
            # last resort: the only pooled block is too small; join the largest block
            largest = pd.Series(label[label != "pooled|all"]).value_counts().index[0]
            label[label == "pooled|all"] = largest
    return label


@dataclass
class _Structure:
    """What the randomization needs, per unit (sorted by id)."""

    unit_ids: npt.NDArray[np.object_]
    block_code: npt.NDArray[np.int64]
    block_labels: list[str]
    n_voters: npt.NDArray[np.float64]
    share: float
    cov_names: list[str]
    cov_sum: npt.NDArray[np.float64]  # units x p, sums over the unit's voters
    cov_sq: npt.NDArray[np.float64]  # units x p, sums of squares
    threshold: float | None

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    def block_start(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        sizes = np.bincount(self.block_code, minlength=len(self.block_labels))
        return sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]])


def draw_assignments(struct: _Structure, rng: np.random.Generator, k: int) -> npt.NDArray[np.bool_]:
    """``k`` blocked complete randomizations: a (units x k) boolean matrix, True = held out."""
    sizes, start = struct.block_start()
    n_blocks = len(sizes)
    target = struct.share * sizes
    base = np.floor(target)
    frac = target - base
    counts = base[None, :] + (rng.random((k, n_blocks)) < frac[None, :])  # k x blocks
    # rows are draws (contiguous sorts): units sorted by (block, random key) in every draw
    keys = struct.block_code[None, :] + rng.random((k, struct.n_units))
    order = np.argsort(keys, axis=1)
    sorted_block = struct.block_code[order]
    pos = np.arange(struct.n_units)[None, :] - start[sorted_block]
    holdout_sorted = pos < np.take_along_axis(counts, sorted_block, axis=1)
    out = np.empty_like(holdout_sorted)
    np.put_along_axis(out, order, holdout_sorted, axis=1)
    return np.ascontiguousarray(out.T)


def _moments(struct: _Structure) -> npt.NDArray[np.float64]:
    """Units x (1 + 2p): voters, covariate sums and sums of squares, for one product per batch of draws."""
    return np.column_stack([struct.n_voters, struct.cov_sum, struct.cov_sq])


def std_diffs(struct: _Structure, holdout: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Voter-level standardized differences (treatment minus holdout over the pooled SD): (p x k)."""
    p = len(struct.cov_names)
    moments = _moments(struct)
    hold = moments.T @ holdout.astype(np.float64)  # (1 + 2p) x k
    treat = moments.sum(axis=0)[:, None] - hold
    out = []
    for arm in (treat, hold):
        n = arm[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = arm[1: 1 + p] / n
            var = (arm[1 + p:] / n - mean**2) * n / np.maximum(n - 1, 1)
        out.append((mean, np.maximum(var, 0.0)))
    (m_t, v_t), (m_h, v_h) = out
    sd = np.sqrt((v_t + v_h) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(sd > 1e-12, (m_t - m_h) / np.where(sd > 1e-12, sd, 1.0), 0.0)
    return np.nan_to_num(d)


def accepted(struct: _Structure, holdout: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Which draws meet the balance threshold (all of them without one)."""
    if struct.threshold is None or not struct.cov_names:
        return np.ones(holdout.shape[1], dtype=bool)
    return np.asarray(np.abs(std_diffs(struct, holdout)).max(axis=0) < struct.threshold)


def draw_accepted(struct: _Structure, rng: np.random.Generator, k: int, *, max_draws: int
                  ) -> tuple[npt.NDArray[np.bool_], int]:
    """Up to ``k`` draws that pass the balance threshold, drawing at most ``max_draws``; returns them and the number
    of draws made."""
    kept: list[npt.NDArray[np.bool_]] = []
    n_kept = drawn = 0
    batch = min(max(_BATCH, k) if struct.threshold is None else _BATCH, _batch_cap(struct.n_units))
    while n_kept < k and drawn < max_draws:
        m = min(batch, max_draws - drawn)
        cand = draw_assignments(struct, rng, m)
        ok = accepted(struct, cand)
        drawn += m
        if ok.any():
            good = cand[:, ok][:, : k - n_kept]
            kept.append(good)
            n_kept += good.shape[1]
            if n_kept >= k:
                # the draws after the last kept one were not needed: count only up to it
                drawn -= m - (int(np.flatnonzero(ok)[good.shape[1] - 1]) + 1)
    if not kept:
        return np.zeros((struct.n_units, 0), dtype=bool), drawn
    return np.concatenate(kept, axis=1), drawn


def build_structure(
    voters: pd.DataFrame,
    *,
    unit: str,
    holdout_share: float,
    blocks: Sequence[str],
    score_col: str | None,
    n_strata: int,
    min_block_units: int | None,
    covariates: pd.DataFrame,
    threshold: float | None,
) -> tuple[_Structure, pd.DataFrame, pd.DataFrame]:
    """Units, strata and blocks of the voters; returns the structure, the unit table and the members."""
    unit_col = UNITS[unit]
    uid = _unit_ids(voters, unit_col)
    inside = uid.notna().to_numpy()
    vid = voters[S.VOTER_ID].astype(str).to_numpy()
    members = pd.DataFrame({S.VOTER_ID: pd.Series(vid[inside], dtype="str"),
                            "unit_id": pd.Series(uid[inside].astype(str).to_numpy(), dtype="str")})
    members = members.sort_values(["unit_id", S.VOTER_ID], kind="stable").reset_index(drop=True)
    frame = pd.DataFrame({"unit_id": uid.to_numpy()[inside]})
    block_cols = [b for b in blocks if b != unit_col]
    for b in block_cols:
        frame[b] = voters[b].astype("string").fillna("<NA>").to_numpy()[inside]
    if score_col is not None:
        frame["_score"] = pd.to_numeric(voters[score_col], errors="coerce").to_numpy(np.float64)[inside]
    cov = covariates.to_numpy(np.float64)[inside]
    grouped = frame.groupby("unit_id", sort=True)
    units = pd.DataFrame({"n_voters": grouped.size().astype(np.int64)})
    for b in block_cols:
        # the most common value per unit (ties: the smallest value), vectorized
        counts = frame.groupby(["unit_id", b], sort=True).size().rename("n").reset_index()
        counts = counts.sort_values(["unit_id", "n", b], ascending=[True, False, True], kind="stable")
        units[b] = counts.drop_duplicates("unit_id").set_index("unit_id")[b].reindex(units.index)
    score = grouped["_score"].mean().to_numpy(np.float64) if score_col is not None else np.zeros(len(units))
    strata = _strata(score, n_strata if score_col is not None else 1)
    units["stratum"] = strata
    key = pd.Series("all", index=units.index)
    for j, b in enumerate(block_cols):  # "P1/ward3": vectorized concatenation, no per-row apply
        key = units[b].astype(str) if j == 0 else key + "/" + units[b].astype(str)
    s_min = min(holdout_share, 1 - holdout_share)
    min_units = int(min_block_units) if min_block_units else max(4, math.ceil(2 / s_min))
    label = _make_blocks(key, strata, min_units)
    block_labels = sorted(set(label.tolist()))
    code = pd.Index(block_labels).get_indexer(label).astype(np.int64)
    units["block"] = label
    codes = pd.Index(units.index).get_indexer(frame["unit_id"])
    p = cov.shape[1]
    cov_sum = np.zeros((len(units), p))
    cov_sq = np.zeros((len(units), p))
    np.add.at(cov_sum, codes, cov)
    np.add.at(cov_sq, codes, cov**2)
    struct = _Structure(
        unit_ids=units.index.to_numpy(dtype=object), block_code=code, block_labels=block_labels,
        n_voters=units["n_voters"].to_numpy(np.float64), share=holdout_share, cov_names=list(covariates.columns),
        cov_sum=cov_sum, cov_sq=cov_sq, threshold=threshold,
    )
    return struct, units, members


# ==================================================================================================================
# the design
# ==================================================================================================================


def _check_params(unit: str, holdout_share: float, n_strata: int, balance_threshold: float | None,
                  max_draws: int, voters: pd.DataFrame, blocks: Sequence[str], score_col: str | None) -> None:
    problems = []
    if unit not in UNITS:
        problems.append(f"unit={unit!r} (expected one of {sorted(UNITS)})")
    if not 0 < holdout_share < 1:
        problems.append(f"holdout_share={holdout_share!r} (expected 0 < share < 1)")
    if n_strata < 1:
        problems.append(f"n_strata={n_strata!r} (expected >= 1)")
    if balance_threshold is not None and balance_threshold <= 0:
        problems.append(f"balance_threshold={balance_threshold!r} (expected > 0 or None)")
    if max_draws < 1:
        problems.append(f"max_draws={max_draws!r} (expected >= 1)")
    if problems:
        raise ConfigError("experiment design settings out of range", found="; ".join(problems),
                          fix="correct the arguments or the [experiment] table")
    needed = [S.VOTER_ID, UNITS[unit], *[b for b in blocks if b != UNITS[unit]]]
    if score_col is not None:
        needed.append(score_col)
    missing = [c for c in dict.fromkeys(needed) if c not in voters.columns]
    if missing:
        raise SchemaError(
            f"voters lack the columns the experiment design needs: {missing}",
            expected=f"columns {list(dict.fromkeys(needed))}",
            found=f"columns {sorted(map(str, voters.columns))}",
            fix=("run the stage that adds them first (join for precinct_id, score for the score, turfs for turf_id, "
                 "cluster for micro_geo), or change unit / blocks / score_col"),
        )
    if voters[S.VOTER_ID].astype(str).duplicated().any():
        raise SchemaError("voter_id is not unique in the voters", fix="deduplicate the voter file first")


@single_blas
def design_experiment(
    voters: pd.DataFrame,
    *,
    unit: str = "household",
    holdout_share: float = 0.1,
    blocks: Sequence[str] = (S.PRECINCT_ID,),
    score_col: str | None = S.PROPENSITY,
    n_strata: int = 3,
    seed: int = 0,
    history: pd.DataFrame | None = None,
    covariates: Sequence[str] | str = "auto",
    balance_threshold: float | None = 0.05,
    max_draws: int = 20_000,
    min_block_units: int | None = None,
    n_generals: int = 4,
    icc: float | None = None,
    base_rate: float | None = None,
    contact_rate: float = 1.0,
    alpha: float = 0.05,
    target_power: float = 0.8,
    check_draws: int | None = None,
) -> ExperimentDesign:
    """Randomize units into treatment and holdout, blocked on ``blocks`` and score strata.

    Parameters
    ----------
    voters
        Voters with ``voter_id``, the unit column (``household_id``, ``turf_id``, ``micro_geo`` or
        ``precinct_id``), the block columns and the score column. Voters outside every unit (micro-geography
        noise, no turf) are not part of the experiment.
    unit
        ``"household"``, ``"turf"``, ``"micro_geo"`` or ``"precinct"``: the randomization unit. Randomize larger
        clusters when treating one voter may reach the neighbours (spillover).
    holdout_share
        Share of units held out (the control group), ``0 < share < 1``.
    blocks
        Voter columns to block on; a unit takes its voters' most common value. The unit column itself is ignored.
    score_col
        Score column whose unit means define ``n_strata`` equal-count strata (``None``: no score strata).
    n_strata
        Score strata per block value.
    seed
        Seed of every random draw; the same inputs and seed give the same design.
    history
        Long vote history (for the ``past_turnout`` covariate); only elections before the design matter.
    covariates
        ``"auto"`` (past turnout, age, party shares, score: what the inputs allow) or names (see
        :data:`geo_segment.experiments.AUTO_COVARIATES`, or numeric voter columns).
    balance_threshold
        Rerandomize until every absolute standardized difference is below this (``None``: one draw).
    max_draws
        Most draws tried; when none meets the threshold the most balanced is kept and a warning is issued.
    min_block_units
        Smallest block (default ``max(4, ceil(2 / min(s, 1 - s)))``, 20 units for a 10 % holdout).
    n_generals
        Past turnout looks at this many of the latest general elections.
    icc, base_rate, contact_rate, alpha, target_power
        Power assumptions. ``icc=None`` estimates it from turnout in the latest past general election (0.3 without
        a history); ``base_rate=None`` uses the mean score when it lies in [0, 1], else past turnout, else 0.5.
    check_draws
        Unconstrained blocked draws for the randomization check's p-value (default 1,000, fewer above 20,000
        units: ``max(100, 2e7 / units)``, so the check stays a few seconds).

    Returns
    -------
    ExperimentDesign
        With ``content_sha256`` set.

    Raises
    ------
    ConfigError
        A setting out of range, or fewer than two units.
    SchemaError
        A needed column is missing, or voter ids repeat.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"voter_id": [f"v{i}" for i in range(40)], "household_id": [f"h{i // 2}" for i in range(40)],
    ...                   "precinct_id": ["P1"] * 20 + ["P2"] * 20})
    >>> d = design_experiment(v, holdout_share=0.2, score_col=None, balance_threshold=None, seed=1,
    ...                       min_block_units=10)
    >>> d.blocks[["block", "units", "holdout_units"]].to_dict("records")
    [{'block': 'P1|s0', 'units': 10, 'holdout_units': 2}, {'block': 'P2|s0', 'units': 10, 'holdout_units': 2}]
    """
    blocks = tuple(blocks)
    _check_params(unit, holdout_share, n_strata, balance_threshold, max_draws, voters, blocks, score_col)
    cutoff = history_cutoff(history)
    cov = build_covariates(voters, history, covariates=covariates, score_col=score_col, cutoff=cutoff,
                           n_generals=n_generals)
    struct, units, members = build_structure(
        voters, unit=unit, holdout_share=holdout_share, blocks=blocks, score_col=score_col, n_strata=n_strata,
        min_block_units=min_block_units, covariates=cov, threshold=balance_threshold,
    )
    if struct.n_units < 2:
        raise ConfigError("too few units to randomize", expected="at least 2 units", found=f"{struct.n_units}",
                          fix="check the unit column or choose a smaller unit")
    if check_draws is None:
        check_draws = int(min(1000, max(100, 20_000_000 // struct.n_units)))
    rng = np.random.default_rng(seed)
    r_assign, r_check = rng.spawn(2)
    chosen, drawn = draw_accepted(struct, r_assign, 1, max_draws=max_draws)
    threshold_met = chosen.shape[1] == 1
    if not threshold_met:
        # nothing met the threshold: keep the most balanced of a fresh, seeded set of draws
        cand = _draw_chunked(struct, np.random.default_rng([seed, 1]), min(max_draws, 2000))
        best = int(np.argmin(_max_abs_diff(struct, cand)))
        chosen = cand[:, [best]]
        warnings.warn(
            f"no draw in {max_draws:,} met the balance threshold {balance_threshold}; kept the most balanced "
            "(the randomization test then ignores the threshold, which is conservative)",
            GeoSegmentWarning, stacklevel=2,
        )
    holdout = chosen[:, 0]
    d = std_diffs(struct, chosen)[:, 0] if struct.cov_names else np.zeros(0)
    # randomization check: how unusual is this imbalance among unconstrained blocked draws?
    ref = _draw_chunked(struct, r_check, check_draws)
    max_obs = float(np.abs(d).max()) if len(d) else 0.0
    ref_max = _max_abs_diff(struct, ref)
    p_value = float((1 + (ref_max >= max_obs - 1e-12).sum()) / (1 + check_draws))

    assignment = pd.DataFrame({
        "unit_id": pd.Series(struct.unit_ids.astype(str), dtype="str"),
        "block": pd.Series(units["block"].to_numpy(), dtype="str"),
        "stratum": units["stratum"].to_numpy(np.int64),
        "arm": pd.Series(np.where(holdout, ARM_HOLDOUT, ARM_TREATMENT), dtype="str"),
        "n_voters": units["n_voters"].to_numpy(np.int64),
    })
    balance = _balance_table(struct, holdout, d)
    block_table = _block_table(assignment)
    pw = _power(voters, history, cov, members, assignment, struct, icc=icc, base_rate=base_rate, cutoff=cutoff,
                contact_rate=contact_rate, alpha=alpha, target_power=target_power)
    params: dict[str, Any] = {
        "unit": unit, "unit_col": UNITS[unit], "holdout_share": float(holdout_share), "blocks": list(blocks),
        "score_col": score_col, "n_strata": int(n_strata), "seed": int(seed), "covariates": list(struct.cov_names),
        "balance_threshold": balance_threshold, "max_draws": int(max_draws),
        "min_block_units": int(min_block_units) if min_block_units else None,
        "history_cutoff": cutoff, "n_generals": int(n_generals), "rerandomized": bool(
            balance_threshold is not None and struct.cov_names and threshold_met),
    }
    check = {"max_abs_std_diff": max_obs, "p_value": p_value, "check_draws": int(check_draws),
             "draws": int(drawn), "accepted_draw": int(drawn) if threshold_met else None,
             "acceptance_rate": (float((ref_max < balance_threshold).mean()) if balance_threshold is not None
                                 else 1.0),
             "threshold_met": bool(threshold_met or balance_threshold is None)}
    design = ExperimentDesign(params=params, assignment=assignment, members=members, balance=balance,
                              blocks=block_table, check=check, power=pw)
    return _with_hash(design)


def _with_hash(design: ExperimentDesign) -> ExperimentDesign:
    object.__setattr__(design, "content_sha256", design.compute_hash())
    return design


def _balance_table(struct: _Structure, holdout: npt.NDArray[np.bool_], d: npt.NDArray[np.float64]) -> pd.DataFrame:
    rows = []
    for j, name in enumerate(struct.cov_names):
        stats = []
        for arm in (~holdout, holdout):
            n = float(struct.n_voters[arm].sum())
            s = float(struct.cov_sum[arm, j].sum())
            q = float(struct.cov_sq[arm, j].sum())
            mean = s / n if n else float("nan")
            var = max(q / n - mean**2, 0.0) * n / max(n - 1, 1) if n else float("nan")
            stats.append((mean, var))
        rows.append({"covariate": name, "mean_treatment": stats[0][0], "mean_holdout": stats[1][0],
                     "sd_pooled": math.sqrt((stats[0][1] + stats[1][1]) / 2), "std_diff": float(d[j])})
    return pd.DataFrame(rows, columns=["covariate", "mean_treatment", "mean_holdout", "sd_pooled", "std_diff"])


def _block_table(assignment: pd.DataFrame) -> pd.DataFrame:
    hold = assignment["arm"] == ARM_HOLDOUT
    g = assignment.assign(h=hold.astype(np.int64), hv=assignment["n_voters"] * hold).groupby("block", sort=True)
    return pd.DataFrame({
        "block": g.size().index.astype(str),
        "units": g.size().to_numpy(np.int64),
        "holdout_units": g["h"].sum().to_numpy(np.int64),
        "voters": g["n_voters"].sum().to_numpy(np.int64),
        "holdout_voters": g["hv"].sum().to_numpy(np.int64),
    })


def _power(voters: pd.DataFrame, history: pd.DataFrame | None, cov: pd.DataFrame, members: pd.DataFrame,
           assignment: pd.DataFrame, struct: _Structure, *, icc: float | None, base_rate: float | None,
           cutoff: str | None, contact_rate: float, alpha: float, target_power: float) -> PowerResult:
    sizes = assignment["n_voters"].to_numpy(np.float64)
    m = float((sizes**2).sum() / sizes.sum())
    in_exp = cov.reindex(members[S.VOTER_ID])
    if icc is None:
        icc = 0.3
        if history is not None and cutoff is not None and "past_turnout" in cov:
            from geo_segment.experiments._covariates import _past_turnout

            last = _past_turnout(pd.Index(members[S.VOTER_ID]), history, cutoff, 1).to_numpy()
            icc = estimate_icc(last, members["unit_id"].to_numpy()) if m > 1 else 0.0
    if base_rate is None:
        base_rate = 0.5
        if "score" in in_exp and len(in_exp) and 0 <= in_exp["score"].min() and in_exp["score"].max() <= 1:
            base_rate = float(in_exp["score"].mean())
        elif "past_turnout" in in_exp and len(in_exp):
            base_rate = float(in_exp["past_turnout"].mean())
        base_rate = min(max(base_rate, 0.01), 0.99)
    return power(int(sizes.sum()), n_units=len(sizes), cluster_size=m, icc=float(icc), base_rate=base_rate,
                 holdout_share=struct.share, alpha=alpha, power=target_power, contact_rate=contact_rate)


# ==================================================================================================================
# saved designs
# ==================================================================================================================


def load_design(path: str | Path) -> ExperimentDesign:
    """Read a ``design.json`` written by :meth:`ExperimentDesign.save`, verifying its SHA-256.

    Raises
    ------
    InputFileError
        The file is missing or is not a geo_segment experiment design.
    DesignTamperedError
        The parameters, assignment or members were changed after the design was saved.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "design.json"
    if not p.is_file():
        raise InputFileError("experiment design not found", where=Location(p),
                             fix="pass the design.json written by `geo-segment experiment design`")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"experiment design is not valid JSON ({exc})", where=Location(p),
                             fix="restore the file from the design run") from None
    if not isinstance(raw, dict) or raw.get("format") != "geo_segment.experiment_design":
        raise InputFileError("not a geo_segment experiment design", where=Location(p),
                             expected="format 'geo_segment.experiment_design'",
                             found=repr(raw.get("format") if isinstance(raw, dict) else type(raw).__name__),
                             fix="pass the design.json written by `geo-segment experiment design`")
    try:
        a = raw["assignment"]
        assignment = pd.DataFrame({
            "unit_id": pd.Series([str(x) for x in a["unit_id"]], dtype="str"),
            "block": pd.Series([str(x) for x in a["block"]], dtype="str"),
            "stratum": np.asarray(a["stratum"], dtype=np.int64),
            "arm": pd.Series(a["arm"], dtype="str"),
            "n_voters": np.asarray(a["n_voters"], dtype=np.int64),
        })
        mm = raw["members"]
        members = pd.DataFrame({S.VOTER_ID: pd.Series([str(x) for x in mm[S.VOTER_ID]], dtype="str"),
                                "unit_id": pd.Series([str(x) for x in mm["unit_id"]], dtype="str")})
        params = raw["params"]
        recorded = str(raw["content_sha256"])
        design = ExperimentDesign(
            params=params, assignment=assignment, members=members,
            balance=pd.DataFrame(raw["balance"], columns=["covariate", "mean_treatment", "mean_holdout",
                                                          "sd_pooled", "std_diff"]),
            blocks=pd.DataFrame(raw["blocks"]), check=raw["check"], power=PowerResult(**raw["power"]),
            content_sha256=recorded,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(f"experiment design is incomplete ({type(exc).__name__}: {exc})", where=Location(p),
                             fix="restore the file from the design run") from None
    actual = design.compute_hash()
    if actual != recorded:
        raise DesignTamperedError(
            "the experiment design was changed after it was saved (its content no longer matches its SHA-256)",
            where=Location(p), expected=f"content_sha256 {recorded}", found=actual,
            fix=("restore the original design.json; a design must not change after launch. To change the "
                 "experiment, draw a new design and launch it as a new experiment"),
        )
    bad_arms = sorted(set(assignment["arm"]) - {ARM_TREATMENT, ARM_HOLDOUT})
    if bad_arms:
        raise InputFileError(f"unknown arms {bad_arms} in the design", where=Location(p),
                             fix="restore the file from the design run")
    return design


# ==================================================================================================================
# holdout exclusion for turfs and exports
# ==================================================================================================================


def holdout_mask(frame: pd.DataFrame, design: ExperimentDesign) -> pd.Series:
    """True for the rows of ``frame`` that belong to a held-out unit (aligned to ``frame``'s index).

    A row is held out when its unit column (``household_id``, ``turf_id``, ``micro_geo`` or ``precinct_id``, as
    the design's unit) names a holdout unit, so a voter who joined a held-out household after the design is held
    out too. Frames without the unit column are matched on ``voter_id`` (the design's members).

    Raises
    ------
    SchemaError
        ``frame`` has neither the unit column nor ``voter_id``.
    """
    unit_col = design.unit_col
    held = set(design.holdout_units)
    if unit_col in frame.columns:
        ids = _unit_ids(frame, unit_col)
        return pd.Series(ids.isin(held).fillna(False).to_numpy(bool), index=frame.index, name="holdout")
    if S.VOTER_ID in frame.columns:
        m = design.members
        held_voters = set(m.loc[m["unit_id"].isin(held), S.VOTER_ID])
        return pd.Series(frame[S.VOTER_ID].astype(str).isin(held_voters).to_numpy(bool), index=frame.index,
                         name="holdout")
    raise SchemaError(
        "cannot tell which rows are held out",
        expected=f"a {unit_col!r} or {S.VOTER_ID!r} column",
        found=f"columns {sorted(map(str, frame.columns))}",
        fix="pass the voters (or doors, turfs, audience rows) with the design's unit column",
    )


def exclude_holdout(frame: pd.DataFrame, design: ExperimentDesign | str | Path | None, *,
                    strict: bool = True) -> pd.DataFrame:
    """``frame`` without the rows of held-out units (a new frame; index, CRS and columns kept).

    ``design`` may be a loaded design, the path of a ``design.json`` (loaded and hash-checked) or ``None`` (no
    experiment: ``frame`` is returned unchanged, as a copy). This is the call the turf and export stages make.
    With ``strict=False`` a frame that has neither the design's unit column nor ``voter_id`` (e.g. precinct
    polygons under a household design) is returned unchanged instead of raising.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"voter_id": [f"v{i}" for i in range(40)], "household_id": [f"h{i}" for i in range(40)],
    ...                   "precinct_id": ["P1"] * 40})
    >>> d = design_experiment(v, holdout_share=0.25, score_col=None, balance_threshold=None)
    >>> len(exclude_holdout(v, d))
    30
    """
    if design is None:
        return frame.copy()
    if not isinstance(design, ExperimentDesign):
        design = load_design(design)
    if not strict and design.unit_col not in frame.columns and S.VOTER_ID not in frame.columns:
        return frame.copy()
    return frame.loc[~holdout_mask(frame, design).to_numpy()].copy()
