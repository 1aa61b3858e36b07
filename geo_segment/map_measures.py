"""Measures the maps colour by, derived from the aggregates (and, for scores, from the scored voters).

The aggregate tables (``precincts.parquet``, ``cells.parquet``, ``micro_geos.parquet``) hold counts. A choropleth
needs rates: shares, densities, means. :func:`map_measures` adds them as new columns, keeping suppression: a unit
flagged ``suppressed`` (fewer than ``k_min`` voters) gets no value, and a mean score computed from fewer than
``k_min`` scored voters is dropped as well. Pure pandas/numpy; no plotting here.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_segment import schema as S
from geo_segment.aggregates import K_MIN
from geo_segment.errors import ConfigError, SchemaError

__all__ = ["MEASURES", "Measure", "map_measures", "score_by_unit"]

SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Measure:
    """How a measure is named and printed: ``fmt`` is ``int``, ``pct`` (a 0..1 share), ``float2`` or ``float1``."""

    label: str
    fmt: str


#: Measures known by name (``share_<party>`` measures are added for every ``party_<party>`` column present).
MEASURES: dict[str, Measure] = {
    "mean_score": Measure("Mean engagement score", "float2"),
    "turnout_last_general": Measure("Turnout, last general election", "pct"),
    "engaged_per_km2": Measure("Engaged voters per km²", "float1"),
    "voters_per_km2": Measure("Registered voters per km²", "float1"),
    "contact_rate": Measure("Canvass contacts per household (decayed)", "float2"),
    "voters": Measure("Registered voters", "int"),
    "households": Measure("Households", "int"),
    "engaged_voters": Measure("Engaged voters", "int"),
}


def measure_info(name: str) -> Measure:
    """The :class:`Measure` of ``name``; ``share_X`` and unknown numeric columns get a generated label."""
    if name in MEASURES:
        return MEASURES[name]
    if name.startswith("share_"):
        return Measure(f"Registered {name[6:]} (share of voters)", "pct")
    if name.startswith("party_"):
        return Measure(f"Registered {name[6:]}", "int")
    if name.startswith("voted_general_"):
        return Measure(f"Voted in the {name[14:]} general", "int")
    if name.startswith("signals_"):
        return Measure(f"Signals: {name[8:].replace('_', ' ')} (decayed weight)", "float1")
    return Measure(name.replace("_", " "), "float2")


def score_by_unit(
    voters: pd.DataFrame,
    *,
    key: str = S.PRECINCT_ID,
    score_col: str = S.ENGAGEMENT_SCORE,
    engaged_threshold: float = 0.5,
    k_min: int = K_MIN,
) -> pd.DataFrame:
    """Mean score and number of engaged voters per unit, from scored voters.

    Parameters
    ----------
    voters
        Voters with ``key`` and ``score_col`` (e.g. ``voters.parquet`` after ``score``).
    key
        The unit column: ``precinct_id``, ``h3_cell`` or ``micro_geo``.
    score_col
        The score to average (``engagement_score`` or ``propensity``).
    engaged_threshold
        A voter whose score is at least this is counted in ``engaged_voters``.
    k_min
        Units with fewer than ``k_min`` scored voters get no values (null).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``key`` with ``mean_score`` (float64), ``engaged_voters`` (Int64) and ``scored_voters``
        (Int64). Only identifiers and these aggregates: no voter-level column survives.

    Raises
    ------
    SchemaError
        When ``key`` or ``score_col`` is missing.

    Examples
    --------
    >>> v = pd.DataFrame({"precinct_id": ["A"] * 11 + ["B"], "engagement_score": [0.6] * 11 + [0.9]})
    >>> score_by_unit(v).loc["A", "mean_score"], pd.isna(score_by_unit(v).loc["B", "mean_score"])
    (0.6, True)
    """
    missing = [c for c in (key, score_col) if c not in voters.columns]
    if missing:
        raise SchemaError(
            "the voters frame lacks the columns a score measure needs",
            expected=f"columns {[key, score_col]}",
            found=f"missing {missing}",
            fix="pass voters.parquet written after the score stage",
        )
    if not 1 <= k_min:
        raise ConfigError("k_min must be at least 1", found=repr(k_min), fix="use 11")
    frame = voters[[key, score_col]]
    frame = frame[frame[key].notna() & frame[score_col].notna()]
    if key == S.H3_CELL:
        frame = frame[frame[key] != 0]
    score = frame[score_col].astype("float64")
    grouped = score.groupby(frame[key], sort=True)
    out = pd.DataFrame({
        "mean_score": grouped.mean(),
        "engaged_voters": (score >= engaged_threshold).groupby(frame[key], sort=True).sum().astype("Int64"),
        "scored_voters": grouped.size().astype("Int64"),
    })
    small = out["scored_voters"].to_numpy() < k_min
    out.loc[small, "mean_score"] = np.nan
    out["engaged_voters"] = out["engaged_voters"].mask(small)
    out.index.name = key
    return out


def _as_float(frame: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(frame[col], errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def map_measures(
    units: gpd.GeoDataFrame,
    voters: pd.DataFrame | None = None,
    *,
    key: str = S.PRECINCT_ID,
    score_col: str = S.ENGAGEMENT_SCORE,
    engaged_threshold: float = 0.5,
    k_min: int = K_MIN,
) -> gpd.GeoDataFrame:
    """Add the rate measures maps colour by to an aggregate table (a new frame; the input is not changed).

    Parameters
    ----------
    units
        ``precincts.parquet``, ``cells.parquet`` or ``micro_geos.parquet`` (EPSG:4326) with a ``suppressed`` flag.
    voters
        Optional scored voters; adds ``mean_score``, ``engaged_voters`` and ``engaged_per_km2`` when ``units``
        does not have them already.
    key
        The unit column shared by ``units`` and ``voters``.
    score_col, engaged_threshold, k_min
        See :func:`score_by_unit`.

    Returns
    -------
    geopandas.GeoDataFrame
        ``units`` with float64 columns added when their inputs exist: ``share_<P>`` (``party_<P>`` / ``voters``),
        ``voters_per_km2`` (area in the local UTM zone), ``contact_rate`` (``signals_canvass_contact`` /
        ``households``), ``mean_score``, ``engaged_voters`` (Int64) and ``engaged_per_km2``. Every added value
        of a suppressed unit is null. Index and CRS kept.

    Raises
    ------
    SchemaError
        When ``units`` is not a GeoDataFrame in EPSG:4326, or ``key`` is missing while ``voters`` is given.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> u = gpd.GeoDataFrame({"precinct_id": ["A"], "voters": [20], "party_DEM": [5], "suppressed": [False]},
    ...                      geometry=[box(0, 0, 0.01, 0.01)], crs="EPSG:4326")
    >>> float(map_measures(u)["share_DEM"].iloc[0])
    0.25
    """
    crs = getattr(units, "crs", None)
    if not isinstance(units, gpd.GeoDataFrame) or crs is None or not crs.equals(S.CRS_STORAGE):
        raise SchemaError(
            "map measures need polygons stored in EPSG:4326",
            expected=f"a GeoDataFrame in {S.CRS_STORAGE}",
            found=f"{type(units).__name__} with CRS {crs}",
            fix="read the aggregate table with geopandas.read_parquet",
        )
    out = units.copy()
    hidden = out[SUPPRESSED].to_numpy(dtype=bool) if SUPPRESSED in out.columns else np.zeros(len(out), dtype=bool)
    added: list[str] = []
    area_km2 = np.full(len(out), np.nan)
    if len(out):
        valid = out.geometry.notna().to_numpy() & ~out.geometry.is_empty.to_numpy()
        if valid.any():
            projected = out.geometry[valid].to_crs(out.geometry[valid].estimate_utm_crs())
            area_km2[valid] = projected.area.to_numpy() / 1e6
    area_km2 = np.where(area_km2 > 0, area_km2, np.nan)
    voters_n = _as_float(out, "voters") if "voters" in out.columns else None
    with np.errstate(divide="ignore", invalid="ignore"):
        if voters_n is not None:
            for col in [c for c in out.columns if str(c).startswith("party_")]:
                name = "share_" + str(col)[6:]
                if name not in out.columns:
                    out[name] = np.where(voters_n > 0, _as_float(out, col) / voters_n, np.nan)
                    added.append(name)
            if "voters_per_km2" not in out.columns:
                out["voters_per_km2"] = voters_n / area_km2
                added.append("voters_per_km2")
        if {"signals_canvass_contact", "households"} <= set(out.columns) and "contact_rate" not in out.columns:
            hh = _as_float(out, "households")
            out["contact_rate"] = np.where(hh > 0, np.nan_to_num(_as_float(out, "signals_canvass_contact")) / hh,
                                           np.nan)
            added.append("contact_rate")
        if voters is not None:
            if key not in out.columns:
                raise SchemaError("the units lack the key shared with the voters", expected=f"a column {key!r}",
                                  found=f"columns {sorted(map(str, out.columns))}", fix="pass key=... explicitly")
            scores = score_by_unit(voters, key=key, score_col=score_col, engaged_threshold=engaged_threshold,
                                   k_min=k_min)
            pos = scores.index.get_indexer(pd.Index(out[key]))
            found = pos >= 0
            if "mean_score" not in out.columns:
                ms = np.full(len(out), np.nan)
                ms[found] = scores["mean_score"].to_numpy(dtype="float64", na_value=np.nan)[pos[found]]
                out["mean_score"] = ms
                added.append("mean_score")
            if "engaged_voters" not in out.columns:
                ev = np.full(len(out), np.nan)
                ev[found] = scores["engaged_voters"].to_numpy(dtype="float64", na_value=np.nan)[pos[found]]
                out["engaged_voters"] = pd.Series(ev, index=out.index).round().astype("Int64")
                added.append("engaged_voters")
            if "engaged_per_km2" not in out.columns:
                out["engaged_per_km2"] = _as_float(out, "engaged_voters") / area_km2
                added.append("engaged_per_km2")
    for col in added:
        out[col] = out[col].mask(hidden)
    return out
