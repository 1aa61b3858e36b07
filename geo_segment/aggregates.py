"""Aggregates per H3 cell and per precinct: voters, households, buildings, party, turnout, signals.

Small units are suppressed: a cell or precinct with fewer than ``k_min`` voters (default 11) keeps its row and
geometry, is flagged ``suppressed``, and has every count set to null, so no display or export can reveal a handful
of people. Counts are computed with integer codes (no per-row Python).

Columns
-------
``voters``, ``households``, ``buildings`` (Int64); ``party_<P>`` (Int64) for DEM, REP, UNA, LIB, GRE and
``party_other``; ``voted_general_<YYYY-MM-DD>`` (Int64): voters of the unit who voted in each of the last
``n_generals`` general elections, and ``turnout_last_general`` (float64: that count over ``voters``);
``signals_<kind>`` (float64): signal weights decayed with a half-life of ``half_life_days`` to ``as_of``;
``suppressed`` (bool).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment._keys import id_codes
from geo_segment._vector import factorize_str, index_in_str, recode, side_by_side, usable_cores
from geo_segment.errors import ConfigError

__all__ = ["K_MIN", "PARTIES", "VoterCodes", "aggregate_cells", "aggregate_precincts", "decay_weights",
           "suppress_small", "voter_codes"]

K_MIN = 11
#: voters from which households and buildings are factorized on two threads
_MIN_ROWS_THREADED = 200_000
PARTIES = ("DEM", "REP", "UNA", "LIB", "GRE")
#: how voters were assigned, as counted per precinct
_ASSIGNED = ("within", "boundary", "nearest")


def decay_weights(timestamps: pd.Series, weights: pd.Series, *, half_life_days: float, as_of: pd.Timestamp) -> (
    np.ndarray
):
    """``weight * 0.5 ** (age / half_life)``; signals after ``as_of`` count fully (age 0)."""
    if half_life_days <= 0:
        raise ConfigError("half_life_days must be positive", found=repr(half_life_days), fix="use 30 (days)")
    ts = pd.to_datetime(timestamps, utc=True)
    ref = pd.Timestamp(as_of)
    ref = ref.tz_localize("UTC") if ref.tzinfo is None else ref.tz_convert("UTC")
    age = np.clip((ref - ts).dt.total_seconds().to_numpy() / 86400.0, 0, None)
    return weights.to_numpy("float64") * np.power(0.5, age / half_life_days)


def _codes(values: pd.Series) -> np.ndarray:
    """Codes of household or building ids (``-1`` when missing; not always dense): fixed-width ids are read as
    integers (:func:`geo_segment._keys.id_codes`), other ids are hashed as strings."""
    if isinstance(values.dtype, pd.CategoricalDtype):  # the category codes in their own width (no 64-bit copy)
        return np.asarray(values.cat.codes)
    codes = id_codes(values)
    return codes if codes is not None else factorize_str(values.astype("str"))[0]


def _label_codes(values: pd.Series, labels: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``labels`` (an integer array), ``len(labels)`` for anything else or missing."""
    if isinstance(values.dtype, pd.CategoricalDtype):  # the categories are looked up, not the rows
        per_category = _label_codes(pd.Series(values.cat.categories, dtype="str"), labels)
        out = recode(values.cat.codes.to_numpy(), per_category, len(labels) + 1)  # narrow; -1 (missing) stays -1
        out[out < 0] = len(labels)
        return out
    pos = index_in_str(values.astype("str"), list(labels))
    pos[pos < 0] = len(labels)
    return pos


def _count_distinct(kc: np.ndarray, codes: np.ndarray, n_keys: int) -> np.ndarray:
    """Distinct ``codes`` per key ``kc`` (codes ``-1`` ignored)."""
    ok = codes >= 0
    if not ok.all():
        kc, codes = kc[ok], codes[ok]
    if not len(codes):
        return np.zeros(n_keys, dtype=np.int64)
    width = int(codes.max()) + 1
    # 32-bit positions when they fit: the scatter and gather below are memory-bound (2x faster at 5M voters)
    small = width < 2**31 and n_keys < 2**31
    kc = kc.astype(np.int32 if small else np.int64, copy=False)
    codes = codes.astype(np.int32 if small else np.int64, copy=False)
    # A household (building) nearly always falls in one key: pair each code with the key of one of its rows (any
    # one: the last written), count those pairs at once, and hash only the rows whose key differs from it.
    first = np.full(width, -1, dtype=kc.dtype)
    first[codes] = kc
    present = first >= 0
    counts = np.bincount(first[present], minlength=n_keys)
    other = kc != first[codes]
    if other.any():
        distinct = pd.unique(kc[other].astype(np.int64) * width + codes[other])
        counts += np.bincount(distinct // width, minlength=n_keys)
    return counts


@dataclass(frozen=True)
class VoterCodes:
    """Integer codes of each voter's household and building (``-1`` when missing; equal exactly for equal ids, not
    always dense), party, precinct and precinct method, computed once per run for both the cell and the precinct
    tables.

    ``votes``, when the codes were made with a history, holds each vote in one of the last general elections as
    (voter position, election position) pairs, one per voter and election, and ``vote_dates`` those elections.
    """

    household: np.ndarray
    building: np.ndarray
    votes: tuple[np.ndarray, np.ndarray] | None = None
    vote_dates: tuple[Any, ...] = ()
    n_generals: int = 0
    #: position of each voter's party in ``PARTIES`` (``len(PARTIES)``: any other or none), when voters have one
    party: np.ndarray | None = None
    #: codes of each voter's ``precinct_id`` (``-1``: none) and the distinct ids they index, after the join
    precinct: tuple[np.ndarray, np.ndarray] | None = None
    #: position of each voter's ``precinct_method`` in ``_ASSIGNED`` (``len(_ASSIGNED)``: unassigned)
    method: np.ndarray | None = None


def _general_votes(voters: pd.DataFrame, history: pd.DataFrame, n_generals: int) -> (
    tuple[tuple[np.ndarray, np.ndarray], tuple[Any, ...]]
):
    """Distinct (voter position, election position) of the votes in the last ``n_generals`` general elections."""
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    gen = history[(history[S.ELECTION_TYPE] == "general").to_numpy() & history[S.VOTED].to_numpy(dtype=bool)]
    if gen.empty or n_generals <= 0:
        return none, ()
    dates = tuple(np.sort(gen[S.ELECTION_DATE].dropna().unique())[::-1][:n_generals])
    gen = gen[gen[S.ELECTION_DATE].isin(dates)]
    pos = index_in_str(gen[S.VOTER_ID].astype("str"), voters[S.VOTER_ID].astype("str"))
    ok = pos >= 0
    date_codes = pd.Index(dates).get_indexer(gen[S.ELECTION_DATE].to_numpy()[ok]).astype(np.int64)
    distinct = pd.unique(pos[ok] * len(dates) + date_codes)  # one vote per voter and election
    return (distinct // len(dates), distinct % len(dates)), dates


def voter_codes(voters: pd.DataFrame, history: pd.DataFrame | None = None, *, n_generals: int = 4) -> VoterCodes:
    """Factorize ``household_id``, ``building_id``, ``party``, ``precinct_id`` and ``precinct_method`` (those
    present) and match the history's general votes once, to share between the cell and precinct aggregates of the
    same voters. From 200,000 voters the columns are hashed on two threads."""
    votes, dates = (None, ())
    if history is not None and len(history):
        votes, dates = _general_votes(voters, history, n_generals)
    tasks: dict[str, Callable[[], Any]] = {
        "household": lambda: _codes(voters[S.HOUSEHOLD_ID]),
        "building": lambda: _codes(voters[S.BUILDING_ID]),
    }
    if S.PARTY in voters.columns:
        tasks["party"] = lambda: _label_codes(voters[S.PARTY], PARTIES)
    if S.PRECINCT_ID in voters.columns:
        tasks["precinct"] = lambda: _precinct_codes(voters[S.PRECINCT_ID])
    if S.PRECINCT_METHOD in voters.columns:
        tasks["method"] = lambda: _label_codes(voters[S.PRECINCT_METHOD], _ASSIGNED)
    if len(voters) >= _MIN_ROWS_THREADED and usable_cores() > 1:
        with ThreadPoolExecutor(2) as pool:  # Arrow's hashing releases Python's lock
            done = dict(zip(tasks, pool.map(lambda task: task(), tasks.values()), strict=True))
    else:
        done = {name: task() for name, task in tasks.items()}
    return VoterCodes(votes=votes, vote_dates=dates, n_generals=n_generals if votes is not None else 0, **done)


def _precinct_codes(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(ids.dtype, pd.CategoricalDtype):
        return np.asarray(ids.cat.codes, dtype=np.int64), ids.cat.categories.astype("str").to_numpy()
    codes, values = factorize_str(ids.astype("str"))
    return codes, values.to_numpy()


def _base_counts(voters: pd.DataFrame, unit: np.ndarray, index: pd.Index, codes: VoterCodes) -> pd.DataFrame:
    has = unit >= 0
    kc = unit[has]
    n = len(index)
    out = pd.DataFrame(index=index)
    out["voters"] = np.bincount(kc, minlength=n)
    # households and buildings side by side from 200,000 voters (scatters and gathers that release Python's lock)
    out["buildings"], out["households"] = side_by_side(
        lambda: _count_distinct(kc, codes.building[has], n), lambda: _count_distinct(kc, codes.household[has], n),
        threaded=len(kc) >= _MIN_ROWS_THREADED and usable_cores() > 1)
    if S.PARTY in voters.columns:
        labels = (*PARTIES, "other")
        party = (codes.party if codes.party is not None else _label_codes(voters[S.PARTY], PARTIES))[has]
        table = np.bincount(kc * len(labels) + party, minlength=n * len(labels)).reshape(n, len(labels))
        for j, p in enumerate(labels):
            out[f"party_{p}"] = table[:, j]
    return out


def _turnout(unit: np.ndarray, index: pd.Index, codes: VoterCodes) -> pd.DataFrame:
    out = pd.DataFrame(index=index)
    if codes.votes is None or not codes.vote_dates:
        return out
    voter_pos, d_code = codes.votes
    n_dates = len(codes.vote_dates)
    u = unit[voter_pos]
    ok = u >= 0
    table = np.bincount(u[ok] * n_dates + d_code[ok], minlength=len(index) * n_dates).reshape(len(index), n_dates)
    for j, d in enumerate(codes.vote_dates):
        out[f"voted_general_{pd.Timestamp(d).date().isoformat()}"] = table[:, j]
    return out


def _signals(signals: pd.DataFrame, unit: np.ndarray, index: pd.Index, half_life_days: float,
             as_of: pd.Timestamp) -> pd.DataFrame:
    """Decayed signal weights per unit and kind; ``unit`` is each signal's unit position (``-1``: none)."""
    out = pd.DataFrame(index=index)
    ok = unit >= 0
    decayed = decay_weights(signals[S.TIMESTAMP][ok], signals[S.WEIGHT][ok], half_life_days=half_life_days,
                            as_of=as_of)
    kinds = tuple(S.SIGNAL_KINDS)
    kind = _label_codes(signals[S.KIND][ok], kinds)
    known = kind < len(kinds)
    table = np.bincount(unit[ok][known] * len(kinds) + kind[known], weights=decayed[known],
                        minlength=len(index) * len(kinds)).astype(np.float64).reshape(len(index), len(kinds))
    for j, k in enumerate(kinds):
        out[f"signals_{k}"] = table[:, j]
    return out


def suppress_small(frame: pd.DataFrame, *, k_min: int = K_MIN, count_col: str = "voters") -> pd.DataFrame:
    """Flag units with fewer than ``k_min`` voters as ``suppressed`` and null every count and rate in them."""
    out = frame.copy()
    small = out[count_col].to_numpy() < k_min
    out["suppressed"] = small
    cols = [c for c in out.columns if c == count_col or c in ("households", "buildings", "turnout_last_general")
            or c.startswith(("party_", "voted_general_", "signals_", "assigned_"))]
    for c in cols:
        if pd.api.types.is_integer_dtype(out[c]):
            out[c] = out[c].astype("Int64")
        out.loc[small, c] = None
    return out


def _codes_for(voters: pd.DataFrame, history: pd.DataFrame | None, n_generals: int,
               codes: VoterCodes | None) -> VoterCodes:
    """The caller's codes when they fit this history request, else fresh ones."""
    wants_votes = history is not None and len(history) > 0 and n_generals > 0
    if codes is not None and (not wants_votes or (codes.votes is not None and codes.n_generals == n_generals)):
        return codes if wants_votes else replace(codes, votes=None, vote_dates=(), n_generals=0)
    if codes is not None:
        votes, dates = _general_votes(voters, history, n_generals)  # type: ignore[arg-type]
        return replace(codes, votes=votes, vote_dates=dates, n_generals=n_generals)
    return voter_codes(voters, history if wants_votes else None, n_generals=n_generals)


def _assemble(voters: pd.DataFrame, unit: np.ndarray, index: pd.Index, codes: VoterCodes,
              signals: pd.DataFrame | None, signal_unit: np.ndarray | None, half_life_days: float,
              as_of: pd.Timestamp | None) -> pd.DataFrame:
    parts = [_base_counts(voters, unit, index, codes), _turnout(unit, index, codes)]
    if signals is not None and signal_unit is not None and len(signals):
        ref = as_of if as_of is not None else pd.to_datetime(signals[S.TIMESTAMP], utc=True).max()
        parts.append(_signals(signals, signal_unit, index, half_life_days, ref))
    out = pd.concat(parts, axis=1)
    voted = [c for c in out.columns if c.startswith("voted_general_")]
    if voted:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["turnout_last_general"] = out[voted[0]].to_numpy() / out["voters"].to_numpy()
    for c in out.columns:
        if pd.api.types.is_integer_dtype(out[c]):
            out[c] = out[c].astype("Int64")
    return out


def _cell_units(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct non-zero cells and each cell's position among them (``-1`` for ``0``, no cell)."""
    codes, uniq = pd.factorize(cells)
    uniq = np.asarray(uniq, dtype=np.uint64)
    keep = uniq != 0
    order = np.argsort(uniq[keep], kind="stable")
    rank = np.full(len(uniq), -1, dtype=np.int64)
    rank[np.flatnonzero(keep)[order]] = np.arange(len(order))
    unit = rank[codes] if len(codes) else np.zeros(0, np.int64)
    return uniq[keep][order], unit


def aggregate_cells(
    voters: gpd.GeoDataFrame,
    history: pd.DataFrame | None = None,
    signals: pd.DataFrame | None = None,
    *,
    resolution: int | None = None,
    k_min: int = K_MIN,
    n_generals: int = 4,
    half_life_days: float = 30.0,
    as_of: pd.Timestamp | None = None,
    codes: VoterCodes | None = None,
) -> gpd.GeoDataFrame:
    """Aggregate voters (and their history and signals) per H3 cell; cells with < ``k_min`` voters suppressed.

    Parameters
    ----------
    voters
        Voters with ``h3_cell`` (from :func:`geo_segment.join.add_h3_cells`).
    history
        Long vote history (optional).
    signals
        Signals with ``h3_cell`` (optional).
    resolution
        Aggregate at this coarser resolution (parents of the voters' cells); default the cells' own.
    k_min
        Minimum voters for a cell to show its counts.
    n_generals
        How many of the most recent general elections get a ``voted_general_<date>`` column.
    half_life_days, as_of
        Signal time decay: half-life and reference time (default the newest signal).
    codes
        :func:`voter_codes` of ``voters``, when the caller aggregates the same voters several times.

    Returns
    -------
    GeoDataFrame
        One row per cell holding voters: ``h3_cell`` (uint64), ``geometry`` (hexagon, EPSG:4326) and the module's
        count columns.
    """
    if S.H3_CELL not in voters.columns:
        raise ConfigError("voters have no h3_cell column", fix="run add_h3_cells (the join stage) first")
    key_values = voters[S.H3_CELL].to_numpy(dtype=np.uint64)
    if resolution is not None:
        key_values = _h3.cell_parents(key_values, resolution)  # 0 (no cell) stays 0
    cells, unit = _cell_units(key_values)
    index = pd.Index(cells, name=S.H3_CELL)
    sig_unit = None
    if signals is not None and S.H3_CELL in signals.columns:
        sig_cells = signals[S.H3_CELL].to_numpy(dtype=np.uint64)
        if resolution is not None:
            sig_cells = _h3.cell_parents(sig_cells, resolution)
        sig_unit = np.searchsorted(cells, sig_cells).astype(np.int64)
        inside = sig_unit < len(cells)
        inside[inside] = cells[sig_unit[inside]] == sig_cells[inside]
        sig_unit[~inside | (sig_cells == 0)] = -1
    # the hexagons are drawn on a side thread while the counts are made (H3 and WKB parsing release the lock)
    with ThreadPoolExecutor(1) as pool:
        hexagons = pool.submit(_h3.cell_polygons, cells)
        table = _assemble(voters, unit, index, _codes_for(voters, history, n_generals, codes), signals, sig_unit,
                          half_life_days, as_of)
        table = suppress_small(table, k_min=k_min)
        polygons = hexagons.result()
    out = gpd.GeoDataFrame(table.reset_index(drop=True), geometry=polygons, crs=S.CRS_STORAGE)
    out.insert(0, S.H3_CELL, cells)
    return out


def aggregate_precincts(
    voters: gpd.GeoDataFrame,
    precincts: gpd.GeoDataFrame,
    history: pd.DataFrame | None = None,
    signals: pd.DataFrame | None = None,
    *,
    id_col: str = S.PRECINCT_ID,
    k_min: int = K_MIN,
    n_generals: int = 4,
    half_life_days: float = 30.0,
    as_of: pd.Timestamp | None = None,
    codes: VoterCodes | None = None,
) -> gpd.GeoDataFrame:
    """Aggregate voters per precinct onto the precinct polygons (every precinct kept, even with no voters).

    ``voters`` and ``signals`` need ``precinct_id`` (from :func:`geo_segment.join.assign_precincts`). The result
    is ``precincts`` with ``precinct_id`` (string) first, its own attributes, the count columns and, per
    precinct, how its voters were assigned (``assigned_within``, ``assigned_boundary``, ``assigned_nearest``).
    """
    if S.PRECINCT_ID not in voters.columns:
        raise ConfigError("voters have no precinct_id column", fix="run assign_precincts (the join stage) first")
    ids = precincts[id_col].astype("str")
    index = pd.Index(ids.to_numpy(), name=S.PRECINCT_ID)
    vc = _codes_for(voters, history, n_generals, codes)
    if vc.precinct is not None:  # the distinct ids found, then each voter through its code
        pcodes, values = vc.precinct
        unit = np.append(index_in_str(values, ids), -1)[pcodes]
    else:
        unit = index_in_str(voters[S.PRECINCT_ID].astype("str"), ids)
    sig_unit = None
    if signals is not None and S.PRECINCT_ID in signals.columns:
        sig_unit = index_in_str(signals[S.PRECINCT_ID].astype("str"), ids)
    table = _assemble(voters, unit, index, vc, signals, sig_unit, half_life_days, as_of)
    if S.PRECINCT_METHOD in voters.columns:
        kinds = _ASSIGNED
        mc = vc.method if vc.method is not None else _label_codes(voters[S.PRECINCT_METHOD], kinds)
        ok = (unit >= 0) & (mc < len(kinds))
        counts = np.bincount(unit[ok] * len(kinds) + mc[ok], minlength=len(index) * len(kinds))
        counts = counts.reshape(len(index), len(kinds))
        for j, m in enumerate(kinds):
            table[f"assigned_{m}"] = pd.array(counts[:, j], dtype="Int64")
    table = suppress_small(table, k_min=k_min)
    attrs = precincts.drop(columns=[c for c in precincts.columns if c in table.columns or c == S.PRECINCT_ID])
    out = pd.concat([attrs.reset_index(drop=True), table.reset_index(drop=True)], axis=1)
    out.insert(0, S.PRECINCT_ID, ids.to_numpy())
    return gpd.GeoDataFrame(out, geometry=precincts.geometry.name, crs=precincts.crs)


def aggregate_metrics(cells: pd.DataFrame, precincts: pd.DataFrame) -> dict[str, Any]:
    """Counts for the stage record: units and how many are suppressed."""
    return {
        "cells": len(cells), "cells_suppressed": int(cells["suppressed"].sum()),
        "precincts": len(precincts), "precincts_suppressed": int(precincts["suppressed"].sum()),
    }
