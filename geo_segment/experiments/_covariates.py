"""Pre-treatment covariates of the voters in an experiment: past turnout, age, party shares, score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from geo_segment import schema as S
from geo_segment.errors import SchemaError

#: the covariates built from the voter file and vote history when ``covariates="auto"``
AUTO_COVARIATES = ("past_turnout", "age", "party_dem", "party_rep", "party_una", "score")
_PARTY = {"party_dem": "DEM", "party_rep": "REP", "party_una": "UNA"}


def history_cutoff(history: pd.DataFrame | None) -> str | None:
    """The day after the newest election in ``history`` (ISO date), or ``None`` without history."""
    if history is None or len(history) == 0:
        return None
    newest = pd.to_datetime(history[S.ELECTION_DATE]).max()
    return (newest.normalize() + pd.Timedelta(days=1)).date().isoformat()


def _naive_dates(values: pd.Series) -> pd.Series:
    """Datetimes without a time zone (UTC when one was given), nanosecond unit."""
    dates = pd.to_datetime(values)
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert(None)
    return dates.astype("datetime64[ns]")


def _past_turnout(voter_ids: pd.Index, history: pd.DataFrame, cutoff: str, n_generals: int) -> pd.Series:
    """Share of the last ``n_generals`` general elections before ``cutoff`` each voter voted in."""
    dates = _naive_dates(history[S.ELECTION_DATE])
    before = (dates < pd.Timestamp(cutoff)).to_numpy()
    general = (history[S.ELECTION_TYPE].astype(str) == "general").to_numpy() if S.ELECTION_TYPE in history else before
    voted = history[S.VOTED].astype(bool).to_numpy() if S.VOTED in history else np.ones(len(history), bool)
    keep = before & general
    last = np.sort(dates[keep].unique())[-n_generals:]
    if len(last) == 0:
        return pd.Series(0.0, index=voter_ids)
    rows = keep & voted & dates.isin(last).to_numpy()
    counts = history.loc[rows].drop_duplicates([S.VOTER_ID, S.ELECTION_DATE])[S.VOTER_ID].astype(str).value_counts()
    return (counts.reindex(voter_ids, fill_value=0) / len(last)).astype(np.float64)


def build_covariates(
    voters: pd.DataFrame,
    history: pd.DataFrame | None,
    *,
    covariates: Sequence[str] | str = "auto",
    score_col: str | None = None,
    cutoff: str | None = None,
    n_generals: int = 4,
) -> pd.DataFrame:
    """A float frame indexed by ``voter_id`` (as str), one column per covariate; missing values are mean-imputed.

    ``"auto"`` takes every covariate of :data:`AUTO_COVARIATES` the inputs allow: ``past_turnout`` needs a
    history, ``age`` needs ``birth_year``, the party shares need ``party``, ``score`` needs ``score_col``. Other
    names are numeric columns of ``voters``.

    Raises
    ------
    SchemaError
        A named covariate cannot be built (its column is missing or not numeric).
    """
    ids = pd.Index(voters[S.VOTER_ID].astype(str).to_numpy(), name=S.VOTER_ID)
    auto = isinstance(covariates, str)
    names = list(AUTO_COVARIATES) if auto else list(covariates)
    out: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for name in names:
        if name == "past_turnout":
            if history is None or cutoff is None:
                if not auto:
                    problems.append("past_turnout needs the vote history")
                continue
            out[name] = _past_turnout(ids, history, cutoff, n_generals).to_numpy()
        elif name == "age":
            if S.BIRTH_YEAR not in voters:
                if not auto:
                    problems.append(f"age needs column {S.BIRTH_YEAR!r}")
                continue
            ref = pd.Timestamp(cutoff).year if cutoff else 2000
            age = ref - pd.to_numeric(voters[S.BIRTH_YEAR], errors="coerce")
            out[name] = age.to_numpy(np.float64, na_value=np.nan)
        elif name in _PARTY:
            if S.PARTY not in voters:
                if not auto:
                    problems.append(f"{name} needs column {S.PARTY!r}")
                continue
            party = voters[S.PARTY].astype("string").str.upper()
            out[name] = (party == _PARTY[name]).fillna(False).to_numpy(np.float64)
        elif name == "score":
            if score_col is None or score_col not in voters:
                if not auto:
                    problems.append(f"score needs the score column {score_col!r}")
                continue
            out[name] = pd.to_numeric(voters[score_col], errors="coerce").to_numpy(np.float64, na_value=np.nan)
        else:
            if name not in voters or not (pd.api.types.is_numeric_dtype(voters[name])
                                          or pd.api.types.is_bool_dtype(voters[name])):
                problems.append(f"{name!r} is not a numeric column of the voters")
                continue
            out[name] = pd.to_numeric(voters[name], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    if problems:
        raise SchemaError(f"covariates cannot be built ({'; '.join(problems)})",
                          fix="pass covariates that exist, or covariates='auto'")
    frame = pd.DataFrame(out, index=ids)
    for col in frame.columns:
        values = frame[col].to_numpy()
        if np.isnan(values).any():
            fill = np.nanmean(values) if np.isfinite(values).any() else 0.0
            frame[col] = np.where(np.isnan(values), fill, values)
    return frame
