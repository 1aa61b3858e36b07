"""The universe (which voters to knock) and the doors (households, or one door per building) to cut into turfs.

A *door* is a household (``door_unit="household"``) or a building (``door_unit="building"``: one door per
apartment building). The cutting *atom* is always the building, so a turf never splits a household or a building.
Do-not-contact and already-contacted households are removed before cutting, and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo_segment import schema as S
from geo_segment.errors import ConfigError, SchemaError

__all__ = ["DOOR_COLUMNS", "Universe", "build_doors", "region_labels", "select_universe"]

#: columns of the doors frame, in order
DOOR_COLUMNS = ("door_id", S.HOUSEHOLD_ID, S.BUILDING_ID, "region", S.PRECINCT_ID, "households", "people",
                S.STREET, S.HOUSE_NUMBER, S.UNIT, S.LAT, S.LNG)


@dataclass(frozen=True)
class Universe:
    """Filters choosing the voters to canvass; ``None`` means "no filter".

    Parameters
    ----------
    score_min, score_max
        Inclusive range of ``score_col`` (voters without a score fail a score filter).
    score_col
        ``engagement_score`` (default) or ``propensity``.
    parties
        Party codes to keep (``("DEM", "UNA")``).
    age_min, age_max
        Inclusive age range in years on ``as_of_year`` (``birth_year`` needed).
    precincts, micro_geos
        Precinct ids / micro-geography labels to keep.
    polygon
        A shapely (Multi)Polygon in EPSG:4326; voters inside (or on its boundary) are kept.
    min_generals, n_generals
        Turnout pattern: voted in at least ``min_generals`` of the last ``n_generals`` general elections
        (needs the vote history). ``max_generals`` caps it (``0`` keeps the non-voters).
    """

    score_min: float | None = None
    score_max: float | None = None
    score_col: str = S.ENGAGEMENT_SCORE
    parties: tuple[str, ...] | None = None
    age_min: int | None = None
    age_max: int | None = None
    as_of_year: int | None = None
    precincts: tuple[str, ...] | None = None
    micro_geos: tuple[int, ...] | None = None
    polygon: Any = None
    min_generals: int | None = None
    max_generals: int | None = None
    n_generals: int = 4


def _require(frame: pd.DataFrame, cols: Iterable[str], why: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise SchemaError(f"voters lack columns {missing} needed for {why}",
                          expected=f"columns {list(cols)}", found=f"columns {sorted(map(str, frame.columns))}",
                          fix="run the join/score/cluster stages first, or drop that filter")


def _general_counts(history: pd.DataFrame, voter_ids: pd.Series, n_generals: int) -> np.ndarray:
    gen = history.loc[history[S.ELECTION_TYPE] == "general"]
    dates = np.sort(gen[S.ELECTION_DATE].dropna().unique())[::-1][:n_generals]
    voted = gen.loc[gen[S.VOTED].astype(bool) & gen[S.ELECTION_DATE].isin(dates)]
    counts = voted.groupby(S.VOTER_ID, sort=False)[S.ELECTION_DATE].nunique()
    return counts.reindex(voter_ids.to_numpy()).fillna(0).to_numpy(dtype=np.int64)


def select_universe(
    voters: pd.DataFrame, universe: Universe | None = None, *, history: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return the voters passing every filter of ``universe`` and the count removed by each filter.

    Parameters
    ----------
    voters
        Scored voters (the contract's columns; ``lat``/``lng`` used by the polygon filter).
    universe
        The filters; ``None`` keeps everyone.
    history
        Long vote history, needed only by the turnout filter.

    Returns
    -------
    (DataFrame, dict)
        The kept rows (index kept, a copy) and ``{"voters_in": n, "removed_<filter>": m, ..., "universe": k}``.

    Raises
    ------
    SchemaError
        A filter needs a column the voters lack.
    ConfigError
        The turnout filter without a vote history.

    Examples
    --------
    >>> v = pd.DataFrame({"party": ["DEM", "REP"], "engagement_score": [0.9, 0.2]})
    >>> kept, counts = select_universe(v, Universe(parties=("DEM",)))
    >>> len(kept), counts["removed_party"]
    (1, 1)
    """
    u = universe or Universe()
    keep = np.ones(len(voters), dtype=bool)
    counts: dict[str, int] = {"voters_in": len(voters)}

    def apply(name: str, mask: np.ndarray) -> None:
        nonlocal keep
        counts[f"removed_{name}"] = int((keep & ~mask).sum())
        keep &= mask

    if u.score_min is not None or u.score_max is not None:
        _require(voters, [u.score_col], "the score filter")
        score = pd.to_numeric(voters[u.score_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        lo = -np.inf if u.score_min is None else u.score_min
        hi = np.inf if u.score_max is None else u.score_max
        apply("score", (score >= lo) & (score <= hi))
    if u.parties is not None:
        _require(voters, [S.PARTY], "the party filter")
        apply("party", voters[S.PARTY].isin(list(u.parties)).to_numpy())
    if u.age_min is not None or u.age_max is not None:
        _require(voters, [S.BIRTH_YEAR], "the age filter")
        year = u.as_of_year or pd.Timestamp.now().year
        age = year - pd.to_numeric(voters[S.BIRTH_YEAR], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        lo = -np.inf if u.age_min is None else u.age_min
        hi = np.inf if u.age_max is None else u.age_max
        apply("age", (age >= lo) & (age <= hi))
    if u.min_generals is not None or u.max_generals is not None:
        if history is None:
            raise ConfigError("the turnout filter needs the vote history", fix="pass --history vote_history.parquet")
        n = _general_counts(history, voters[S.VOTER_ID], u.n_generals)
        lo_g = 0 if u.min_generals is None else u.min_generals
        hi_g = u.n_generals if u.max_generals is None else u.max_generals
        apply("turnout", (n >= lo_g) & (n <= hi_g))
    if u.precincts is not None:
        _require(voters, [S.PRECINCT_ID], "the precinct filter")
        apply("precinct", voters[S.PRECINCT_ID].isin(list(u.precincts)).to_numpy())
    if u.micro_geos is not None:
        _require(voters, [S.MICRO_GEO], "the micro-geography filter")
        apply("micro_geo", voters[S.MICRO_GEO].isin(list(u.micro_geos)).to_numpy())
    if u.polygon is not None:
        _require(voters, [S.LAT, S.LNG], "the polygon filter")
        poly = u.polygon
        shapely.prepare(poly)
        lat = voters[S.LAT].to_numpy(dtype=float, na_value=np.nan)
        lng = voters[S.LNG].to_numpy(dtype=float, na_value=np.nan)
        apply("polygon", shapely.intersects_xy(poly, lng, lat))
    kept = voters.loc[keep].copy()
    counts["universe"] = len(kept)
    return kept, counts


def region_labels(
    voters: pd.DataFrame, within: str, *, polygons: pd.DataFrame | None = None, polygon_id: str = "name"
) -> pd.Series:
    """Return the region each voter is cut within (``<NA>`` when it has none).

    ``within`` is ``precinct`` (``precinct_id``), ``micro_geo`` (``M<label>``, noise excluded), ``polygon`` (the
    ``polygon_id`` of the first of ``polygons`` containing the voter) or ``all`` (``ALL``).
    """
    if within == "precinct":
        _require(voters, [S.PRECINCT_ID], "cutting within precincts")
        return voters[S.PRECINCT_ID].astype("string")
    if within == "micro_geo":
        _require(voters, [S.MICRO_GEO], "cutting within micro-geographies")
        mg = pd.to_numeric(voters[S.MICRO_GEO], errors="coerce")
        lab = ("M" + mg.astype("Int64").astype("string")).astype("string")
        return lab.where(mg.notna() & (mg >= 0), pd.NA)
    if within == "all":
        return pd.Series("ALL", index=voters.index, dtype="string")
    if within == "polygon":
        if polygons is None or len(polygons) == 0:
            raise ConfigError("within='polygon' needs polygons", fix="pass --polygons turf_areas.geojson")
        _require(polygons, [polygon_id], "naming the user polygons")
        lat = voters[S.LAT].to_numpy(dtype=float, na_value=np.nan)
        lng = voters[S.LNG].to_numpy(dtype=float, na_value=np.nan)
        out = np.full(len(voters), None, dtype=object)
        names = polygons[polygon_id].astype(str).to_numpy()
        geoms = np.asarray(polygons.geometry)
        for name, geom in zip(names[::-1], geoms[::-1], strict=True):  # the first polygon wins
            out[shapely.intersects_xy(geom, lng, lat)] = name
        return pd.Series(out, index=voters.index, dtype="string")
    raise ConfigError("unknown turf region", expected="precinct, micro_geo, polygon or all", found=repr(within),
                      fix="set [turfs] within")


def _id_set(values: Iterable[Any] | None) -> set[str]:
    return set() if values is None else {str(v) for v in values}


def build_doors(
    voters: pd.DataFrame,
    *,
    door_unit: str = "household",
    within: str = "precinct",
    polygons: pd.DataFrame | None = None,
    polygon_id: str = "name",
    do_not_contact: Iterable[Any] | None = None,
    contacted: Iterable[Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Group universe voters into doors, after removing do-not-contact and contacted households.

    Parameters
    ----------
    voters
        The universe (``voter_id``, ``household_id``, ``building_id``, ``lat``, ``lng``, the region column, and
        ``street``/``house_number``/``unit`` for walking order when present).
    door_unit
        ``household``: one door per household; ``building``: one door per building (apartment buildings are
        knocked once).
    within
        The region turfs are cut within (see :func:`region_labels`).
    do_not_contact, contacted
        Voter ids or household ids. A household with any listed voter is removed as a whole.

    Returns
    -------
    (doors, members, counts)
        ``doors``: one row per door with :data:`DOOR_COLUMNS` (``people`` = universe voters behind the door,
        ``households`` = households behind it); ``members``: the kept voters with a ``door_id`` column;
        ``counts``: voters removed as not geocoded / without region / do-not-contact / contacted, households
        removed, doors and buildings.

    Examples
    --------
    >>> v = pd.DataFrame({"voter_id": ["1", "2", "3"], "household_id": ["h1", "h1", "h2"],
    ...                   "building_id": ["b1", "b1", "b1"], "lat": [41.8] * 3, "lng": [-71.4] * 3,
    ...                   "precinct_id": ["P1"] * 3})
    >>> doors, members, counts = build_doors(v)
    >>> list(doors["door_id"]), list(doors["people"])
    (['h1', 'h2'], [2, 1])
    >>> build_doors(v, door_unit="building")[0]["households"].tolist()
    [2]
    """
    _require(voters, [S.VOTER_ID, S.HOUSEHOLD_ID, S.BUILDING_ID, S.LAT, S.LNG], "building doors")
    if door_unit not in ("household", "building"):
        raise ConfigError("unknown door unit", expected="household or building", found=repr(door_unit),
                          fix="set [turfs] door_unit")
    counts: dict[str, int] = {"universe": len(voters)}
    v = voters.copy()
    v["region"] = region_labels(v, within, polygons=polygons, polygon_id=polygon_id)
    lat = v[S.LAT].to_numpy(dtype=float, na_value=np.nan)
    lng = v[S.LNG].to_numpy(dtype=float, na_value=np.nan)
    geo = np.isfinite(lat) & np.isfinite(lng)
    counts["removed_not_geocoded"] = int((~geo).sum())
    has_region = v["region"].notna().to_numpy() & geo
    counts["removed_no_region"] = int((geo & ~has_region).sum())
    keep = has_region
    hh = v[S.HOUSEHOLD_ID].astype(str)
    for name, ids in (("do_not_contact", _id_set(do_not_contact)), ("contacted", _id_set(contacted))):
        hit = v[S.VOTER_ID].astype(str).isin(ids) | hh.isin(ids)
        bad_hh = set(hh[hit & keep])
        drop = hh.isin(bad_hh).to_numpy() & keep
        counts[f"removed_{name}"] = int(drop.sum())
        counts[f"households_removed_{name}"] = len(bad_hh)
        keep &= ~drop
    v = v.loc[keep].copy()
    key = S.HOUSEHOLD_ID if door_unit == "household" else S.BUILDING_ID
    v["door_id"] = v[key].astype(str)
    for col in (S.STREET, S.HOUSE_NUMBER, S.UNIT, S.PRECINCT_ID):
        if col not in v.columns:
            v[col] = ""
    # one building sits in one region: the region of its first voter (by voter_id) wins
    v = v.sort_values([S.BUILDING_ID, S.VOTER_ID], kind="stable")
    v["region"] = v.groupby(S.BUILDING_ID, sort=False)["region"].transform("first")
    g = v.groupby("door_id", sort=True)
    doors = pd.DataFrame({
        "door_id": pd.Series(g.size().index, dtype="string"),
        S.HOUSEHOLD_ID: g[S.HOUSEHOLD_ID].first().astype("string").to_numpy(),
        S.BUILDING_ID: g[S.BUILDING_ID].first().astype("string").to_numpy(),
        "region": g["region"].first().astype("string").to_numpy(),
        S.PRECINCT_ID: g[S.PRECINCT_ID].first().astype("string").to_numpy(),
        "households": g[S.HOUSEHOLD_ID].nunique().to_numpy(dtype=np.int64),
        "people": g.size().to_numpy(dtype=np.int64),
        S.STREET: g[S.STREET].first().astype("string").fillna("").to_numpy(),
        S.HOUSE_NUMBER: g[S.HOUSE_NUMBER].first().astype("string").fillna("").to_numpy(),
        S.UNIT: g[S.UNIT].first().astype("string").fillna("").to_numpy(),
        S.LAT: g[S.LAT].mean().to_numpy(dtype=float),
        S.LNG: g[S.LNG].mean().to_numpy(dtype=float),
    })
    if door_unit == "building":
        doors[S.UNIT] = pd.Series([""] * len(doors), dtype="string")
        doors[S.HOUSEHOLD_ID] = doors[S.HOUSEHOLD_ID].where(doors["households"] == 1, pd.NA)
    counts["voters"] = len(v)
    counts["households"] = int(v[S.HOUSEHOLD_ID].nunique())
    counts["buildings"] = int(v[S.BUILDING_ID].nunique())
    counts["doors"] = len(doors)
    return doors[list(DOOR_COLUMNS)], v, counts


def tuple_or_none(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
    """``None`` stays ``None``; anything else becomes a tuple (CLI lists to frozen filters)."""
    return None if values is None or len(values) == 0 else tuple(values)
