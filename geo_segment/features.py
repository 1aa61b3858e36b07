"""Per-voter features for scoring: turnout history, registration, age, party, household, signals and context.

:func:`build_features` turns the contract's voters, long vote history and (optionally) signals into one numeric
row per voter, aligned to the voters' index. Every column is ``float64``; names and definitions are in
:data:`FEATURE_DEFINITIONS` and ``docs/scores.md``.

The cutoff
----------
Features are computed *as of* a cutoff instant, and every record at or after it is ignored: history rows whose
``election_date`` is on or after the cutoff day, signals whose ``timestamp`` is at or after the cutoff (UTC).
With ``label_election`` the cutoff is that election's day, so a model trained to predict turnout in that
election never sees its record or anything later (``tests/test_scoring.py`` perturbs those records and checks
the features stay bit-identical). Without it, ``as_of`` sets the cutoff; by default the day after the newest
record, so every record counts.

Speed
-----
Everything works on integer codes (Arrow hash lookups for ids, ``numpy.bincount`` for group sums); there is no
per-voter Python. One million voters with three million history rows take a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment._vector import factorize_str
from geo_segment.aggregates import PARTIES, decay_weights
from geo_segment.errors import ConfigError, SchemaError

__all__ = [
    "FEATURE_DEFINITIONS",
    "PERSON_SIGNAL_KINDS",
    "DateLike",
    "FeatureBuilder",
    "build_features",
    "eligible_voters",
    "feature_names",
    "make_label",
]

DateLike = str | date | datetime | pd.Timestamp | np.datetime64

#: Signal kinds attached to a voter (by ``voter_id``) and summed per voter. Pings are device traces, used per cell.
PERSON_SIGNAL_KINDS = ("event_checkin", "rsvp", "web_visit", "donation", "canvass_contact")

_GENERAL, _PRIMARY, _OTHER = 0, 1, 2
_TYPE_GROUP = {"general": _GENERAL, "primary": _PRIMARY, "presidential_primary": _PRIMARY}
_METHOD_GROUPS = ("polls", "early", "mail", "other")
_METHOD_GROUP = {"polls": 0, "early": 1, "mail": 2, "absentee": 2}
_DAY_NS = 86_400 * 10**9
_YEAR_DAYS = 365.25
_KM_PER_DEG = 111.32

#: Feature name -> definition (``{n}`` is the ``n_elections`` window). ``docs/scores.md`` lists the same names.
FEATURE_DEFINITIONS: Mapping[str, str] = {
    # turnout history, over the window of the n most recent elections before the cutoff
    "elections_eligible": "elections of the window held after the voter's registration date (or in which the voter "
                          "voted); all of them when the registration date is unknown",
    "votes": "elections of the window the voter voted in",
    "turnout_rate": "votes / elections_eligible (0 when no election was eligible)",
    "general_eligible": "eligible general elections of the window",
    "general_votes": "general elections of the window the voter voted in",
    "general_rate": "general_votes / general_eligible (0 when none)",
    "primary_eligible": "eligible primaries (primary, presidential_primary) of the window",
    "primary_votes": "primaries of the window the voter voted in",
    "primary_rate": "primary_votes / primary_eligible (0 when none)",
    "voted_prev_{k}": "1 when the voter voted in the k-th most recent election before the cutoff (k = 1..n), else 0",
    "votes_ever": "elections before the cutoff the voter voted in, whatever their age",
    "years_since_last_vote": "years from the last vote before the cutoff to the cutoff; for a voter who never voted, "
                             "years since registration (50 when that is unknown too)",
    "never_voted": "1 when the history holds no vote of the voter before the cutoff",
    "method_polls": "share of the window's votes cast at the polls on election day",
    "method_early": "share of the window's votes cast early in person",
    "method_mail": "share of the window's votes cast by mail or absentee ballot",
    "method_other": "share of the window's votes cast otherwise (provisional, unknown, missing)",
    # registration, age, party, status
    "registration_years": "years from the registration date to the cutoff (0 when unknown or after the cutoff)",
    "registration_missing": "1 when the registration date is unknown",
    "age": "cutoff year minus birth year (0 when unknown)",
    "age_missing": "1 when the birth year is unknown",
    **{f"party_{p}": f"1 when the registered party is {p}" for p in PARTIES},
    "party_other": "1 when the party is another one or unknown",
    "status_inactive": "1 when the registration status is inactive (a status starting with I)",
    # household
    "household_size": "voters sharing the voter's household_id (1 when it is unknown)",
    "household_others_rate": "pooled turnout rate of the other members of the household over the window: their "
                             "votes / their eligible elections (0 when alone or none eligible)",
    # signals (only when signals are given)
    **{f"signal_{k}": f"{k} signals linked to the voter by voter_id, each weight decayed by 0.5 ** (age / "
                      "half_life_days) to the cutoff, summed" for k in PERSON_SIGNAL_KINDS},
    # context: the voter's H3 cell
    "cell_missing": "1 when the voter has no usable coordinates (no cell); every cell_* feature is then 0",
    "cell_voters": "voters in the voter's H3 cell (at h3_resolution)",
    "cell_turnout_rate": "pooled turnout rate of the other voters of the cell over the window",
    "cell_engaged_per_km2": "engaged other voters of the cell per km² (engaged: turnout_rate >= engaged_threshold "
                            "with at least one eligible election)",
    "cell_foot_traffic": "ping weights located in the cell, decayed to the cutoff, per km² (only with signals)",
    "cell_activity": "weights of the other signal kinds located in the cell, decayed, per km² (only with signals)",
    # context: the voter's precinct (only when voters carry precinct_id)
    "precinct_voters": "voters in the voter's precinct (0 when unassigned)",
    "precinct_turnout_rate": "pooled turnout rate of the other voters of the precinct over the window",
    "precinct_engaged_share": "share of the other voters of the precinct who are engaged",
}


def feature_names(
    *, n_elections: int = 8, signals: bool = True, precincts: bool = False
) -> list[str]:
    """The columns :func:`build_features` returns, in order, for the given options.

    Parameters
    ----------
    n_elections
        The history window (number of ``voted_prev_k`` columns).
    signals
        Whether signals were given (adds ``signal_*``, ``cell_foot_traffic``, ``cell_activity``).
    precincts
        Whether the voters carry ``precinct_id`` (adds ``precinct_*``).

    Examples
    --------
    >>> feature_names(n_elections=2, signals=False)[:5]
    ['elections_eligible', 'votes', 'turnout_rate', 'general_eligible', 'general_votes']
    """
    names: list[str] = []
    for key in FEATURE_DEFINITIONS:
        if key == "voted_prev_{k}":
            names.extend(f"voted_prev_{k}" for k in range(1, n_elections + 1))
        elif key.startswith("signal_") or key in ("cell_foot_traffic", "cell_activity"):
            if signals:
                names.append(key)
        elif key.startswith("precinct_"):
            if precincts:
                names.append(key)
        else:
            names.append(key)
    return names


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def _to_naive_utc(value: DateLike, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} is not a date", found=repr(value), fix="pass a date such as '2024-11-05'") from exc
    if ts is pd.NaT:
        raise ConfigError(f"{what} is not a date", found=repr(value), fix="pass a date such as '2024-11-05'")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return pd.Timestamp(ts).as_unit("ns")


def _ns(values: pd.Series) -> npt.NDArray[np.int64]:
    """Timestamps as int64 nanoseconds since the epoch (naive = UTC); NaT as the int64 minimum."""
    s = values
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, utc=True).dt.tz_localize(None)
    arr = s.to_numpy(dtype="datetime64[ns]")
    return arr.view(np.int64)


_NAT = np.iinfo(np.int64).min


def _arrow_str(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    arr = pa.array(values.astype("str").array, from_pandas=True) if len(values) else pa.array([], pa.string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    return arr


def _index_in(values: pd.Series, keys: pd.Series) -> npt.NDArray[np.int64]:
    """Position of each value in ``keys`` (-1 when absent or null), through Arrow's hash kernel."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    pos = pc.index_in(_arrow_str(values), value_set=_arrow_str(keys))
    out = pc.fill_null(pos, -1)
    return np.asarray(out.to_numpy(zero_copy_only=False) if hasattr(out, "to_numpy") else out, dtype=np.int64)


def _ratio(num: npt.NDArray[Any], den: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(len(num), dtype=np.float64)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def _group_codes(values: pd.Series) -> tuple[npt.NDArray[np.int64], int]:
    """Codes of a string key (-1 for null or empty) and the number of groups."""
    codes, uniques = factorize_str(values)
    empty = np.flatnonzero(uniques.to_numpy(dtype=object) == "")
    if len(empty):
        codes = np.where(codes == empty[0], -1, codes)
    return codes, len(uniques)


def _loo(codes: npt.NDArray[np.int64], n_groups: int, *values: npt.NDArray[Any]) -> list[npt.NDArray[np.float64]]:
    """Leave-one-out group sums: for each row, the sum of ``values`` over the *other* rows of its group (0 when the
    row has no group)."""
    ok = codes >= 0
    safe = np.where(ok, codes, 0)
    out = []
    for v in values:
        v = np.asarray(v, dtype=np.float64)
        sums = np.bincount(codes[ok], weights=v[ok], minlength=max(n_groups, 1))
        out.append(np.where(ok, sums[safe] - v, 0.0))
    return out


def _check(frame: pd.DataFrame | None, required: Iterable[str], what: str) -> list[str]:
    if frame is None:
        return []
    missing = [c for c in required if c not in frame.columns]
    return [f"{what}: missing columns {missing}"] if missing else []


def _cutoff(hist_ns: npt.NDArray[np.int64], sig_ns: npt.NDArray[np.int64] | None, label_election: DateLike | None,
            as_of: DateLike | None) -> pd.Timestamp:
    if label_election is not None and as_of is not None:
        raise ConfigError(
            "label_election and as_of are both set",
            expected="one of them: label_election for training, as_of for scoring",
            found=f"label_election={label_election!r}, as_of={as_of!r}",
            fix="drop as_of: the label election's day is the cutoff",
        )
    if label_election is not None:
        return _to_naive_utc(label_election, "label_election").normalize()
    if as_of is not None:
        return _to_naive_utc(as_of, "as_of")
    latest = [int(a[a != _NAT].max()) for a in (hist_ns, sig_ns) if a is not None and (a != _NAT).any()]
    if not latest:
        return pd.Timestamp.now("UTC").tz_localize(None).normalize().as_unit("ns")
    return (pd.Timestamp(max(latest), unit="ns").normalize() + pd.Timedelta(days=1)).as_unit("ns")


# ---------------------------------------------------------------------------------------------------------------
# the builder: what does not depend on the cutoff is computed once
# ---------------------------------------------------------------------------------------------------------------


class _History:
    """The vote history as integer arrays, one entry per history row."""

    def __init__(self, voters: pd.DataFrame, history: pd.DataFrame) -> None:
        self.ns = _ns(history[S.ELECTION_DATE]) if len(history) else np.zeros(0, dtype=np.int64)
        valid = self.ns != _NAT
        # the distinct election days (sorted) and each row's index into them (-1: no date)
        self.udays, inv = np.unique(self.ns[valid] // _DAY_NS, return_inverse=True)
        self.day_idx = np.full(len(self.ns), -1, dtype=np.int64)
        self.day_idx[valid] = inv.reshape(-1)
        self.pos = _index_in(history[S.VOTER_ID], voters[S.VOTER_ID])
        self.voted = history[S.VOTED].to_numpy(dtype=bool, na_value=False)
        type_codes, type_uniques = factorize_str(history[S.ELECTION_TYPE])
        type_group_of = np.array([_TYPE_GROUP.get(t, _OTHER) for t in type_uniques.astype(str)] + [_OTHER],
                                 dtype=np.int64)
        self.group = type_group_of[type_codes]  # -1 (null) indexes the trailing _OTHER
        if S.VOTE_METHOD in history.columns:
            m_codes, m_uniques = factorize_str(history[S.VOTE_METHOD])
            m_group_of = np.array([_METHOD_GROUP.get(m, 3) for m in m_uniques.astype(str)] + [3], dtype=np.int64)
            self.method = m_group_of[m_codes]
        else:
            self.method = np.full(len(history), 3, dtype=np.int64)


class _Signals:
    """The signals as arrays: timestamps, kinds, the voter each is linked to; cells per resolution on demand."""

    def __init__(self, voters: pd.DataFrame, signals: pd.DataFrame) -> None:
        self.frame = signals
        self.ns = _ns(signals[S.TIMESTAMP])
        self.kind = signals[S.KIND].astype("str").fillna("").to_numpy(dtype=object)
        self.pos = (_index_in(signals[S.VOTER_ID], voters[S.VOTER_ID]) if S.VOTER_ID in signals.columns
                    and len(signals) else np.full(len(signals), -1, dtype=np.int64))
        self._cells: dict[int, npt.NDArray[np.uint64]] = {}

    def cells(self, resolution: int) -> npt.NDArray[np.uint64]:
        if resolution not in self._cells:
            self._cells[resolution] = _h3.latlng_to_cells(
                self.frame[S.LAT].to_numpy(dtype=np.float64, na_value=np.nan),
                self.frame[S.LNG].to_numpy(dtype=np.float64, na_value=np.nan), resolution)
        return self._cells[resolution]


class FeatureBuilder:
    """Builds :func:`build_features` from one set of frames at one or several cutoffs.

    Everything that does not depend on the cutoff (voter positions of the history and signal rows, household,
    cell and precinct codes, party and status flags) is computed once and reused, so training features (cut at the
    label election) and scoring features (cut now) cost little more than one set. The frames must not change
    while the builder is in use.

    Parameters
    ----------
    voters, history, signals
        As for :func:`build_features`.

    Raises
    ------
    SchemaError
        A required column is missing, or ``voter_id`` is not unique (every problem listed at once).

    Examples
    --------
    >>> import pandas as pd
    >>> voters = pd.DataFrame({"voter_id": ["a", "b"]})
    >>> history = pd.DataFrame({"voter_id": ["a", "a", "b"], "election_type": ["general"] * 3,
    ...                         "election_date": pd.to_datetime(["2020-11-03", "2022-11-08", "2022-11-08"]),
    ...                         "voted": [True, True, True]})
    >>> fb = FeatureBuilder(voters, history)
    >>> fb.build(label_election="2022-11-08", n_elections=2)["votes"].tolist()
    [1.0, 0.0]
    >>> fb.build(n_elections=2)["votes"].tolist()
    [2.0, 1.0]
    """

    def __init__(self, voters: pd.DataFrame, history: pd.DataFrame, signals: pd.DataFrame | None = None) -> None:
        problems = _check(voters, (S.VOTER_ID,), "voters")
        problems += _check(history, (S.VOTER_ID, S.ELECTION_DATE, S.ELECTION_TYPE, S.VOTED), "history")
        problems += _check(signals, (S.TIMESTAMP, S.KIND, S.WEIGHT, S.LAT, S.LNG), "signals")
        if not problems and voters[S.VOTER_ID].dropna().duplicated().any():
            problems.append(f"voters: {int(voters[S.VOTER_ID].dropna().duplicated().sum())} duplicated voter_id "
                            "values")
        if problems:
            raise SchemaError(f"cannot build features ({len(problems)} problems: {'; '.join(problems)})",
                              fix="build frames with geo_segment's readers (see docs/column-contract.md)")
        self.voters, self.history, self.signals = voters, history, signals
        self._hist: _History | None = None
        self._sig: _Signals | None = None
        self._static: dict[str, Any] | None = None
        self._cells: dict[int, tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}

    # -- cached parts ------------------------------------------------------------------------------------------
    def _history(self) -> _History:
        if self._hist is None:
            self._hist = _History(self.voters, self.history)
        return self._hist

    def _signal_arrays(self) -> _Signals | None:
        if self.signals is None:
            return None
        if self._sig is None:
            self._sig = _Signals(self.voters, self.signals)
        return self._sig

    def _voter_arrays(self) -> dict[str, Any]:
        if self._static is not None:
            return self._static
        voters, n = self.voters, len(self.voters)
        st: dict[str, Any] = {}
        st["reg_ns"] = (_ns(voters[S.REGISTRATION_DATE]) if S.REGISTRATION_DATE in voters.columns
                        else np.full(n, _NAT, dtype=np.int64))
        if S.BIRTH_YEAR in voters.columns:
            st["birth"] = voters[S.BIRTH_YEAR].to_numpy(dtype=np.float64, na_value=np.nan)
        elif "birth_date" in voters.columns:
            st["birth"] = pd.to_datetime(voters["birth_date"]).dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            st["birth"] = np.full(n, np.nan)
        party = (voters[S.PARTY].astype("str").fillna("").str.upper().to_numpy(dtype=object)
                 if S.PARTY in voters.columns else np.full(n, "", dtype=object))
        st["party"] = {p: (party == p).astype(np.float64) for p in PARTIES}
        st["party_other"] = (~np.isin(party, PARTIES)).astype(np.float64)
        if S.STATUS in voters.columns:
            status = voters[S.STATUS].astype("str").fillna("").str.strip().str.upper().str.startswith("I")
            st["status_inactive"] = np.asarray(status.to_numpy(dtype=bool, na_value=False), dtype=np.float64)
        else:
            st["status_inactive"] = np.zeros(n)
        st["household"] = (_group_codes(voters[S.HOUSEHOLD_ID]) if S.HOUSEHOLD_ID in voters.columns
                           else (np.full(n, -1, dtype=np.int64), 0))
        st["precinct"] = _group_codes(voters[S.PRECINCT_ID]) if S.PRECINCT_ID in voters.columns else None
        self._static = st
        return st

    def _voter_cells(self, resolution: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64],
                                                      npt.NDArray[np.float64]]:
        """Distinct cells (sorted), each voter's code into them (-1: no cell) and the cells' areas in km²."""
        if resolution not in self._cells:
            voters = self.voters
            if S.LAT in voters.columns and S.LNG in voters.columns:
                cells = _h3.latlng_to_cells(voters[S.LAT].to_numpy(dtype=np.float64, na_value=np.nan),
                                            voters[S.LNG].to_numpy(dtype=np.float64, na_value=np.nan), resolution)
            else:
                cells = np.zeros(len(voters), dtype=np.uint64)
            ucells, c_code = np.unique(cells, return_inverse=True)
            c_code = np.where(cells == _h3.NO_CELL, -1, c_code).astype(np.int64)
            self._cells[resolution] = (ucells, c_code, _cell_area_km2(ucells))
        return self._cells[resolution]

    # -- building ----------------------------------------------------------------------------------------------
    def build(
        self,
        *,
        label_election: DateLike | None = None,
        as_of: DateLike | None = None,
        n_elections: int = 8,
        half_life_days: float = 30.0,
        h3_resolution: int = 9,
        engaged_threshold: float = 0.5,
    ) -> pd.DataFrame:
        """The features at one cutoff: see :func:`build_features` for the parameters and the result.

        Raises
        ------
        ConfigError
            A parameter is out of range, or both ``label_election`` and ``as_of`` are given.
        """
        if isinstance(n_elections, bool) or not isinstance(n_elections, int | np.integer) or n_elections < 1:
            raise ConfigError("n_elections must be a positive integer", found=repr(n_elections), fix="use 8")
        if not half_life_days > 0:
            raise ConfigError("half_life_days must be positive", found=repr(half_life_days), fix="use 30 (days)")
        if not 0 < engaged_threshold <= 1:
            raise ConfigError("engaged_threshold must be in (0, 1]", found=repr(engaged_threshold), fix="use 0.5")
        _h3.check_resolution(h3_resolution)
        n_elections = int(n_elections)
        hist = self._history()
        sig = self._signal_arrays()
        cutoff = _cutoff(hist.ns, sig.ns if sig is not None else None, label_election, as_of)
        cutoff_ns = int(cutoff.value)
        n = len(self.voters)
        st = self._voter_arrays()

        reg_ns = st["reg_ns"]
        cols, votes, elig, window = _history_block(hist, n, cutoff_ns, n_elections, reg_ns)

        # registration, age, party, status
        reg_known = reg_ns != _NAT
        reg_safe = np.where(reg_known, reg_ns, cutoff_ns)
        cols["registration_years"] = np.maximum(cutoff_ns - reg_safe, 0) / (_DAY_NS * _YEAR_DAYS)
        cols["registration_missing"] = (~reg_known).astype(np.float64)
        birth = st["birth"]
        age_known = np.isfinite(birth)
        cols["age"] = np.where(age_known, cutoff.year - np.where(age_known, birth, 0.0), 0.0)
        cols["age_missing"] = (~age_known).astype(np.float64)
        for p in PARTIES:
            cols[f"party_{p}"] = st["party"][p]
        cols["party_other"] = st["party_other"]
        cols["status_inactive"] = st["status_inactive"]

        # household
        hh, n_hh = st["household"]
        ok = hh >= 0
        size = np.bincount(hh[ok], minlength=max(n_hh, 1))
        cols["household_size"] = np.where(ok, size[np.where(ok, hh, 0)], 1).astype(np.float64)
        o_votes, o_elig = _loo(hh, n_hh, votes, elig)
        cols["household_others_rate"] = _ratio(o_votes, o_elig)

        # signals, cut off and decayed
        sig_cells = sig_decayed = sig_is_ping = None
        if sig is not None:
            s_keep = (sig.ns != _NAT) & (sig.ns < cutoff_ns)
            frame = sig.frame[s_keep]
            decayed = (decay_weights(frame[S.TIMESTAMP], frame[S.WEIGHT], half_life_days=half_life_days,
                                     as_of=cutoff.tz_localize("UTC")) if len(frame) else np.zeros(0))
            decayed = np.nan_to_num(decayed, nan=0.0)
            kind = sig.kind[s_keep]
            s_pos = sig.pos[s_keep]
            for k in PERSON_SIGNAL_KINDS:
                m = (kind == k) & (s_pos >= 0)
                cols[f"signal_{k}"] = np.bincount(s_pos[m], weights=decayed[m], minlength=n).astype(np.float64)
            sig_cells = sig.cells(h3_resolution)[s_keep]
            sig_decayed = decayed
            sig_is_ping = kind == "ping"

        # context: H3 cell
        engaged = ((elig > 0) & (_ratio(votes, elig) >= engaged_threshold)).astype(np.float64)
        ucells, c_code, area = self._voter_cells(h3_resolution)
        has_cell = c_code >= 0
        c_safe = np.where(has_cell, c_code, 0)
        cols["cell_missing"] = (~has_cell).astype(np.float64)
        n_cells = len(ucells)
        c_size = np.bincount(c_code[has_cell], minlength=max(n_cells, 1))
        cols["cell_voters"] = np.where(has_cell, c_size[c_safe], 0).astype(np.float64)
        c_votes, c_elig, c_engaged = _loo(c_code, n_cells, votes, elig, engaged)
        cols["cell_turnout_rate"] = _ratio(c_votes, c_elig)
        cols["cell_engaged_per_km2"] = np.where(has_cell, c_engaged / area[c_safe], 0.0)
        if sig_cells is not None and sig_decayed is not None and sig_is_ping is not None:
            if n_cells:
                j = np.minimum(np.searchsorted(ucells, sig_cells), n_cells - 1)
                hit = (sig_cells != _h3.NO_CELL) & (ucells[j] == sig_cells)
            else:
                j = np.zeros(len(sig_cells), dtype=np.int64)
                hit = np.zeros(len(sig_cells), dtype=bool)
            for name, m in (("cell_foot_traffic", sig_is_ping), ("cell_activity", ~sig_is_ping)):
                sel = hit & m
                per_cell = np.bincount(j[sel], weights=sig_decayed[sel], minlength=max(n_cells, 1))
                cols[name] = np.where(has_cell, per_cell[c_safe] / area[c_safe], 0.0)

        # context: precinct
        if st["precinct"] is not None:
            pr, n_pr = st["precinct"]
            has_pr = pr >= 0
            p_size = np.bincount(pr[has_pr], minlength=max(n_pr, 1))
            cols["precinct_voters"] = np.where(has_pr, p_size[np.where(has_pr, pr, 0)], 0).astype(np.float64)
            p_votes, p_elig, p_engaged, p_count = _loo(pr, n_pr, votes, elig, engaged, np.ones(n))
            cols["precinct_turnout_rate"] = _ratio(p_votes, p_elig)
            cols["precinct_engaged_share"] = _ratio(p_engaged, p_count)

        names = feature_names(n_elections=n_elections, signals=sig is not None, precincts=st["precinct"] is not None)
        # one (features x voters) block, handed to pandas transposed: no consolidation copy
        block = np.empty((len(names), n), dtype=np.float64)
        for i, name in enumerate(names):
            block[i] = cols[name]
        out = pd.DataFrame(block.T, columns=pd.Index(names), index=self.voters.index, copy=False)
        out.attrs.update({
            "as_of": cutoff.isoformat(),
            "label_election": None if label_election is None else cutoff.date().isoformat(),
            "window": window,
            "n_elections": n_elections,
            "half_life_days": float(half_life_days),
            "h3_resolution": int(h3_resolution),
            "engaged_threshold": float(engaged_threshold),
        })
        return out

    def label(self, election_date: DateLike) -> pd.Series:
        """:func:`make_label` for these voters, reusing the history's voter positions."""
        hist = self._history()
        on_day = _on_label_day(np.where(hist.ns == _NAT, _NAT, hist.ns // _DAY_NS), election_date)
        rows = on_day & hist.voted & (hist.pos >= 0)
        label = np.zeros(len(self.voters), dtype=bool)
        label[hist.pos[rows]] = True
        return pd.Series(label, index=self.voters.index, name=S.VOTED)


# ---------------------------------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------------------------------


def _history_block(
    hist: _History, n: int, cutoff_ns: int, n_elections: int, reg_ns: npt.NDArray[np.int64]
) -> tuple[dict[str, npt.NDArray[np.float64]], npt.NDArray[np.float64], npt.NDArray[np.float64], list[str]]:
    """Turnout features; also returns votes and eligible elections in the window per voter and the window dates."""
    keep = (hist.ns != _NAT) & (hist.ns < cutoff_ns)
    pos = hist.pos[keep]
    voted = hist.voted[keep]
    group = hist.group[keep]
    method = hist.method[keep]
    # elections: distinct days before the cutoff (any row, voted or not); type of a day = its most common type
    all_inv = hist.day_idx[keep]
    present = np.bincount(all_inv, minlength=len(hist.udays)) > 0
    udays = hist.udays[present]
    inv = (np.cumsum(present) - 1)[all_inv]
    nd = len(udays)
    type_counts = np.bincount(inv * 3 + group, minlength=3 * nd).reshape(nd, 3)
    day_group = type_counts.argmax(axis=1) if nd else np.zeros(0, dtype=np.int64)
    k_window = min(n_elections, nd)
    window_days = udays[::-1][:k_window]  # most recent first
    window_group = day_group[::-1][:k_window]

    # one vote per (voter, election day); its method is the one of its first row
    v_ok = voted & (pos >= 0)
    width = max(nd, 1)
    vote_key, first_idx = np.unique(pos[v_ok] * width + inv[v_ok], return_index=True)
    v_pos = vote_key // width
    v_inv = vote_key % width
    v_method = method[np.flatnonzero(v_ok)[first_idx]]
    v_rank = (nd - 1) - v_inv

    voted_m = np.zeros((n, n_elections), dtype=bool)
    in_w = v_rank < k_window
    voted_m[v_pos[in_w], v_rank[in_w]] = True
    elig_m = np.zeros((n, n_elections), dtype=bool)
    if k_window:
        reg_known = reg_ns != _NAT
        reg_day = np.where(reg_known, reg_ns // _DAY_NS, np.iinfo(np.int64).min)
        elig_m[:, :k_window] = reg_day[:, None] < window_days[None, :]
    elig_m |= voted_m

    out: dict[str, npt.NDArray[np.float64]] = {}
    is_gen = np.zeros(n_elections, dtype=bool)
    is_pri = np.zeros(n_elections, dtype=bool)
    is_gen[:k_window] = window_group == _GENERAL
    is_pri[:k_window] = window_group == _PRIMARY
    votes = voted_m.sum(axis=1).astype(np.float64)
    elig = elig_m.sum(axis=1).astype(np.float64)
    out["elections_eligible"] = elig
    out["votes"] = votes
    out["turnout_rate"] = _ratio(votes, elig)
    for name, mask in (("general", is_gen), ("primary", is_pri)):
        e = elig_m[:, mask].sum(axis=1)
        v = voted_m[:, mask].sum(axis=1)
        out[f"{name}_eligible"] = e.astype(np.float64)
        out[f"{name}_votes"] = v.astype(np.float64)
        out[f"{name}_rate"] = _ratio(v, e)
    for k in range(n_elections):
        out[f"voted_prev_{k + 1}"] = voted_m[:, k].astype(np.float64)
    out["votes_ever"] = np.bincount(v_pos, minlength=n).astype(np.float64)
    last_day = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    if len(v_pos):
        np.maximum.at(last_day, v_pos, udays[v_inv])
    never = last_day == np.iinfo(np.int64).min
    cutoff_day = cutoff_ns / _DAY_NS
    reg_known = reg_ns != _NAT
    since_reg = np.where(reg_known, np.maximum(cutoff_day - np.where(reg_known, reg_ns, 0) / _DAY_NS, 0.0)
                         / _YEAR_DAYS, 50.0)
    out["years_since_last_vote"] = np.where(never, since_reg, (cutoff_day - last_day) / _YEAR_DAYS)
    out["never_voted"] = never.astype(np.float64)
    m_counts = np.bincount(v_pos[in_w] * 4 + v_method[in_w], minlength=4 * n).reshape(n, 4)
    for j, name in enumerate(_METHOD_GROUPS):
        out[f"method_{name}"] = _ratio(m_counts[:, j], votes)
    window = [pd.Timestamp(int(d) * _DAY_NS, unit="ns").date().isoformat() for d in window_days]
    return out, votes, elig, window


# ---------------------------------------------------------------------------------------------------------------
# the public functions
# ---------------------------------------------------------------------------------------------------------------


def build_features(
    voters: pd.DataFrame,
    history: pd.DataFrame,
    signals: pd.DataFrame | None = None,
    *,
    label_election: DateLike | None = None,
    as_of: DateLike | None = None,
    n_elections: int = 8,
    half_life_days: float = 30.0,
    h3_resolution: int = 9,
    engaged_threshold: float = 0.5,
) -> pd.DataFrame:
    """Build one numeric feature row per voter from records strictly before a cutoff.

    Parameters
    ----------
    voters
        Voters (``voter_id`` unique; optional ``household_id``, ``registration_date``, ``birth_year``, ``party``,
        ``status``, ``lat``/``lng``, ``precinct_id``). Not modified.
    history
        Long vote history (``voter_id``, ``election_date``, ``election_type``, ``voted``, optional ``method``).
    signals
        Optional signals (``timestamp``, ``kind``, ``weight``, ``lat``, ``lng``, optional ``voter_id``).
    label_election
        Training mode: the election whose turnout is the label. Its day is the cutoff, so its records and every
        later record are excluded.
    as_of
        Scoring mode: the cutoff instant (records at or after it are excluded). Default: the day after the newest
        history or signal record. Not allowed together with ``label_election``.
    n_elections
        The history window: the ``n_elections`` most recent election days before the cutoff.
    half_life_days
        Half-life of the signals' exponential time decay, in days.
    h3_resolution
        Resolution of the H3 cells used for context features (computed from ``lat``/``lng``).
    engaged_threshold
        A voter is *engaged* when ``turnout_rate`` reaches this value (with at least one eligible election).

    Returns
    -------
    pandas.DataFrame
        Index of ``voters``, every column ``float64``, names from :func:`feature_names` (see
        :data:`FEATURE_DEFINITIONS`): ``signal_*``, ``cell_foot_traffic`` and ``cell_activity`` only with
        ``signals``; ``precinct_*`` only when ``voters`` has ``precinct_id``. ``attrs`` holds ``as_of`` (ISO
        cutoff), ``window`` (the election days used, most recent first), ``n_elections``, ``half_life_days``,
        ``h3_resolution``, ``engaged_threshold`` and ``label_election``.

    Raises
    ------
    SchemaError
        A required column is missing, or ``voter_id`` is not unique (every problem listed at once).
    ConfigError
        A parameter is out of range, or both ``label_election`` and ``as_of`` are given.

    Examples
    --------
    >>> import pandas as pd
    >>> voters = pd.DataFrame({"voter_id": ["a", "b"], "household_id": ["h1", "h1"]})
    >>> history = pd.DataFrame({"voter_id": ["a", "a", "b"], "election_type": ["general"] * 3,
    ...                         "election_date": pd.to_datetime(["2020-11-03", "2022-11-08", "2022-11-08"]),
    ...                         "voted": [True, True, True]})
    >>> f = build_features(voters, history, label_election="2022-11-08", n_elections=2)
    >>> f[["votes", "general_rate", "household_size", "household_others_rate"]].to_dict("list")
    {'votes': [1.0, 0.0], 'general_rate': [1.0, 0.0], 'household_size': [2.0, 2.0], 'household_others_rate': [0.0, 1.0]}
    """
    return FeatureBuilder(voters, history, signals).build(
        label_election=label_election, as_of=as_of, n_elections=n_elections, half_life_days=half_life_days,
        h3_resolution=h3_resolution, engaged_threshold=engaged_threshold)


def _cell_area_km2(cells: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Area of each cell in km² (equirectangular at the cell's latitude; well under 1 % off at city scale)."""
    area = np.ones(len(cells), dtype=np.float64)
    real = cells != _h3.NO_CELL
    if real.any():
        polys = _h3.cell_polygons(cells[real])
        lat = shapely.get_y(shapely.centroid(polys))
        area[real] = shapely.area(polys) * _KM_PER_DEG**2 * np.cos(np.radians(lat))
    return area


def _history_days(history: pd.DataFrame) -> npt.NDArray[np.int64]:
    d = _ns(history[S.ELECTION_DATE])
    return np.where(d == _NAT, _NAT, d // _DAY_NS)


def _on_label_day(days: npt.NDArray[np.int64], election_date: DateLike) -> npt.NDArray[np.bool_]:
    """History rows (as epoch days) held on ``election_date``; a ConfigError listing the latest days if none."""
    day = _to_naive_utc(election_date, "election_date").normalize().value // _DAY_NS
    on_day = days == day
    if not on_day.any():
        known = sorted({int(d) for d in np.unique(days[days != _NAT])})[-8:]
        listing = [pd.Timestamp(d * _DAY_NS, unit="ns").date().isoformat() for d in known]
        raise ConfigError(
            "the label election is not in the vote history",
            expected="an election day present in the history",
            found=f"{pd.Timestamp(day * _DAY_NS, unit='ns').date().isoformat()}; latest election days {listing}",
            fix="pick one of the listed days",
        )
    return on_day


def make_label(history: pd.DataFrame, voter_ids: pd.Series, election_date: DateLike) -> pd.Series:
    """Whether each voter voted in the election held on ``election_date``.

    Parameters
    ----------
    history
        Long vote history (``voter_id``, ``election_date``, ``voted``).
    voter_ids
        The voters to label, for example ``voters["voter_id"]``.
    election_date
        The label election's day.

    Returns
    -------
    pandas.Series
        ``bool``, aligned to ``voter_ids``' index, named ``voted``: True when the history holds a row of the voter
        on that day with ``voted`` True.

    Raises
    ------
    ConfigError
        No history row falls on ``election_date`` (the message lists the latest election days).

    Examples
    --------
    >>> import pandas as pd
    >>> h = pd.DataFrame({"voter_id": ["a"], "election_date": pd.to_datetime(["2024-11-05"]), "voted": [True]})
    >>> make_label(h, pd.Series(["a", "b"]), "2024-11-05").tolist()
    [True, False]
    """
    on_day = _on_label_day(_history_days(history), election_date)
    rows = on_day & history[S.VOTED].to_numpy(dtype=bool, na_value=False)
    pos = _index_in(history[S.VOTER_ID][rows], voter_ids)
    label = np.zeros(len(voter_ids), dtype=bool)
    label[pos[pos >= 0]] = True
    return pd.Series(label, index=voter_ids.index, name=S.VOTED)


def eligible_voters(voters: pd.DataFrame, election_date: DateLike) -> pd.Series:
    """Voters who could vote in the election of ``election_date``: registered before that day (or date unknown).

    Returns
    -------
    pandas.Series
        ``bool``, aligned to ``voters``' index, named ``eligible``.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"registration_date": pd.to_datetime(["2020-01-01", "2024-12-01", None])})
    >>> eligible_voters(v, "2024-11-05").tolist()
    [True, False, True]
    """
    day = _to_naive_utc(election_date, "election_date").normalize().value
    if S.REGISTRATION_DATE not in voters.columns:
        return pd.Series(np.ones(len(voters), dtype=bool), index=voters.index, name="eligible")
    reg = _ns(voters[S.REGISTRATION_DATE])
    return pd.Series((reg == _NAT) | (reg < day), index=voters.index, name="eligible")
