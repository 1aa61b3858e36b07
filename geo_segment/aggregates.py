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

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment._vector import factorize_str
from geo_segment.errors import ConfigError

__all__ = ["K_MIN", "PARTIES", "VoterCodes", "aggregate_cells", "aggregate_precincts", "decay_weights",
           "suppress_small", "voter_codes"]

K_MIN = 11
PARTIES = ("DEM", "REP", "UNA", "LIB", "GRE")


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
    return factorize_str(values.astype("str"))[0]


def _key_codes(keys: np.ndarray, index: pd.Index) -> np.ndarray:
    """Position of each key in ``index`` (every key must be there); Arrow's hash lookup for strings."""
    if keys.dtype.kind in "iu":
        return index.get_indexer(pd.Index(keys))
    pos = pc.index_in(pa.array(keys, pa.string(), from_pandas=True),
                      value_set=pa.array(index.to_numpy(), pa.string(), from_pandas=True))
    return pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _count_distinct(kc: np.ndarray, codes: np.ndarray, n_keys: int) -> np.ndarray:
    ok = codes >= 0
    pairs = kc[ok].astype(np.int64) * (int(codes.max()) + 1 if len(codes) else 1) + codes[ok]
    distinct = pd.unique(pairs)
    width = int(codes.max()) + 1 if len(codes) else 1
    return np.bincount((distinct // width).astype(np.int64), minlength=n_keys)


def _base_counts(voters: pd.DataFrame, key: str, index: pd.Index) -> pd.DataFrame:
    kc = _key_codes(voters[key].to_numpy(), index)
    n = len(index)
    out = pd.DataFrame(index=index)
    out["voters"] = np.bincount(kc, minlength=n)
    out["households"] = _count_distinct(kc, voters["_hh"].to_numpy(), n)
    out["buildings"] = _count_distinct(kc, voters["_bld"].to_numpy(), n)
    if S.PARTY in voters.columns:
        labels = (*PARTIES, "other")
        party_codes = pd.Index(PARTIES).get_indexer(pd.Index(voters[S.PARTY].astype("str").fillna("")))
        party_codes = party_codes.astype(np.int64)
        party_codes[party_codes < 0] = len(PARTIES)  # unknown or missing party
        table = np.bincount(kc * len(labels) + party_codes, minlength=n * len(labels)).reshape(n, len(labels))
        for j, p in enumerate(labels):
            out[f"party_{p}"] = table[:, j]
    return out


def _turnout(voters: pd.DataFrame, history: pd.DataFrame, key: str, index: pd.Index, n_generals: int) -> (
    pd.DataFrame
):
    gen = history[(history[S.ELECTION_TYPE] == "general") & history[S.VOTED]]
    out = pd.DataFrame(index=index)
    if gen.empty or n_generals <= 0:
        return out
    dates = np.sort(gen[S.ELECTION_DATE].dropna().unique())[::-1][:n_generals]
    gen = gen[gen[S.ELECTION_DATE].isin(dates)]
    vids = pa.array(np.asarray(voters[S.VOTER_ID].to_numpy(), dtype=object), pa.string(), from_pandas=True)
    pos = pc.index_in(pa.array(gen[S.VOTER_ID].astype("str").array, from_pandas=True), value_set=vids)
    pos_np = pc.fill_null(pos, -1).to_numpy(zero_copy_only=False)
    ok = pos_np >= 0
    date_codes, date_values = pd.factorize(gen[S.ELECTION_DATE].to_numpy()[ok])
    n_dates = max(len(date_values), 1)
    # one vote per voter and election, then count per (unit, election)
    distinct = pd.unique(pos_np[ok].astype(np.int64) * n_dates + date_codes)
    voter_pos, d_code = distinct // n_dates, distinct % n_dates
    unit = _key_codes(voters[key].to_numpy(), index)[voter_pos]
    table = np.bincount(unit * n_dates + d_code, minlength=len(index) * n_dates).reshape(len(index), n_dates)
    for d in sorted(dates, reverse=True):
        col = f"voted_general_{pd.Timestamp(d).date().isoformat()}"
        hit = np.flatnonzero(np.asarray(date_values) == d)
        out[col] = table[:, hit[0]] if len(hit) else 0
    return out


def _signals(signals: pd.DataFrame, key: str, index: pd.Index, half_life_days: float, as_of: pd.Timestamp) -> (
    pd.DataFrame
):
    out = pd.DataFrame(index=index)
    sig = signals[signals[key].notna()]
    if key == S.H3_CELL:
        sig = sig[sig[key] != 0]
    decayed = decay_weights(sig[S.TIMESTAMP], sig[S.WEIGHT], half_life_days=half_life_days, as_of=as_of)
    frame = pd.DataFrame({"k": sig[key].to_numpy(), "kind": sig[S.KIND].astype("str").to_numpy(), "w": decayed})
    table = frame.groupby(["k", "kind"])["w"].sum().unstack().fillna(0.0).reindex(index, fill_value=0.0)
    for kind in S.SIGNAL_KINDS:
        out[f"signals_{kind}"] = table[kind].to_numpy() if kind in table.columns else 0.0
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


@dataclass(frozen=True)
class VoterCodes:
    """Integer codes of each voter's household and building (``-1`` when missing), computed once per run."""

    household: np.ndarray
    building: np.ndarray


def voter_codes(voters: pd.DataFrame) -> VoterCodes:
    """Factorize ``household_id`` and ``building_id`` once, to share between the cell and precinct aggregates."""
    return VoterCodes(household=_codes(voters[S.HOUSEHOLD_ID]), building=_codes(voters[S.BUILDING_ID]))


def _slim(voters: pd.DataFrame, mask: np.ndarray, key: np.ndarray, codes: VoterCodes | None) -> pd.DataFrame:
    """Only the columns the counts need, for the rows in ``mask`` (no copy of geometry or personal columns)."""
    c = codes or voter_codes(voters)
    data: dict[str, Any] = {
        S.VOTER_ID: voters[S.VOTER_ID].to_numpy()[mask],
        "_key": key,
        "_hh": c.household[mask],
        "_bld": c.building[mask],
    }
    for col in (S.PARTY, S.PRECINCT_METHOD):
        if col in voters.columns:
            data[col] = voters[col].to_numpy()[mask]
    return pd.DataFrame(data)


def _assemble(voters: pd.DataFrame, key: str, index: pd.Index, history: pd.DataFrame | None,
              signals: pd.DataFrame | None, n_generals: int, half_life_days: float,
              as_of: pd.Timestamp | None) -> pd.DataFrame:
    parts = [_base_counts(voters, key, index)]
    if history is not None and len(history):
        turnout = _turnout(voters, history, key, index, n_generals)
        parts.append(turnout)
    if signals is not None and len(signals) and key in signals.columns:
        ref = as_of if as_of is not None else pd.to_datetime(signals[S.TIMESTAMP], utc=True).max()
        parts.append(_signals(signals, key, index, half_life_days, ref))
    out = pd.concat(parts, axis=1)
    voted = [c for c in out.columns if c.startswith("voted_general_")]
    if voted:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["turnout_last_general"] = out[voted[0]].to_numpy() / out["voters"].to_numpy()
    for c in out.columns:
        if pd.api.types.is_integer_dtype(out[c]):
            out[c] = out[c].astype("Int64")
    return out


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
    mask = voters[S.H3_CELL].to_numpy() != 0
    key_values = voters[S.H3_CELL].to_numpy(dtype=np.uint64)[mask]
    sig = signals
    if resolution is not None:
        key_values = _h3.cell_parents(key_values, resolution)
        if sig is not None and S.H3_CELL in sig.columns:
            sig = sig.assign(**{S.H3_CELL: _h3.cell_parents(sig[S.H3_CELL].to_numpy(dtype=np.uint64), resolution)})
    v = _slim(voters, mask, key_values, codes)
    index = pd.Index(np.sort(pd.unique(key_values)), name=S.H3_CELL)
    if sig is not None and S.H3_CELL in sig.columns:
        sig = sig.rename(columns={S.H3_CELL: "_key"})
    table = _assemble(v, "_key", index, history, sig, n_generals, half_life_days, as_of)
    table = suppress_small(table, k_min=k_min)
    cells = index.to_numpy(dtype=np.uint64)
    out = gpd.GeoDataFrame(table.reset_index(drop=True), geometry=_h3.cell_polygons(cells), crs=S.CRS_STORAGE)
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
    mask = voters[S.PRECINCT_ID].notna().to_numpy()
    v = _slim(voters, mask, voters[S.PRECINCT_ID].to_numpy()[mask], codes)
    sig = signals.rename(columns={S.PRECINCT_ID: "_key"}) if signals is not None else None
    table = _assemble(v, "_key", index, history, sig, n_generals, half_life_days, as_of)
    if S.PRECINCT_METHOD in v.columns:
        kinds = ("within", "boundary", "nearest")
        kc = _key_codes(v["_key"].to_numpy(), index)
        mc = pd.Index(kinds).get_indexer(pd.Index(v[S.PRECINCT_METHOD].astype("str")))
        ok = mc >= 0
        counts = np.bincount(kc[ok] * len(kinds) + mc[ok], minlength=len(index) * len(kinds))
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
