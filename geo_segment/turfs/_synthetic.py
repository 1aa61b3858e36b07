"""Synthetic scored voters for turf tests and benchmarks: :func:`geo_segment.synth.generate_population` shaped
into the contract's columns, with a precinct per voter from the sample county's precincts."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_segment import schema as S

__all__ = ["synthetic_voters"]


def synthetic_voters(
    n_voters: int, *, seed: int = 0, precincts: gpd.GeoDataFrame | None = None, id_col: str = "precinct_id"
) -> gpd.GeoDataFrame:
    """Voters with ids, households, buildings, address parts, party, birth year, a score and a precinct."""
    from geo_segment.synth import generate_population

    pop = generate_population(n_voters, seed=seed)
    v = pop.voters
    street = (v["predir"] + " " + v["street_name"] + " " + v["street_type"]).str.strip().str.replace(r"\s+", " ",
                                                                                                     regex=True)
    house = v["house_number"].astype(str) + v["house_number_suffix"]
    address = (house + " " + street).str.strip()
    out = pd.DataFrame({
        S.VOTER_ID: v[S.VOTER_ID].astype("string"),
        S.FIRST_NAME: v[S.FIRST_NAME].astype("string"),
        S.LAST_NAME: v[S.LAST_NAME].astype("string"),
        S.HOUSEHOLD_ID: v["household_key"].astype("string"),
        S.BUILDING_ID: v["building_key"].astype("string"),
        S.HOUSE_NUMBER: house.astype("string"),
        S.STREET: street.astype("string"),
        S.UNIT: v[S.UNIT].astype("string"),
        S.ADDRESS: address.astype("string"),
        S.PARTY: v[S.PARTY].astype("string"),
        S.BIRTH_YEAR: pd.Series(v["birth_date"].dt.year.to_numpy(), dtype="Int64"),
        S.ENGAGEMENT_SCORE: v["true_propensity"].to_numpy(dtype=float),
        S.LAT: v[S.LAT].to_numpy(dtype=float),
        S.LNG: v[S.LNG].to_numpy(dtype=float),
    })
    geo = gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(out[S.LNG], out[S.LAT]), crs=S.CRS_STORAGE)
    if precincts is None:
        path = Path(__file__).resolve().parents[2] / "sample_data" / "providence_precincts.parquet"
        precincts = gpd.read_parquet(path)
        id_col = "JOINID" if "JOINID" in precincts.columns else id_col
    polys = np.asarray(precincts.geometry.values)
    ids = precincts[id_col].astype(str).to_numpy()
    tree = shapely.STRtree(polys)
    pi, tj = tree.query(np.asarray(geo.geometry.values), predicate="intersects")
    first = pd.Series(tj, index=pi).groupby(level=0).min()
    pid = np.full(len(geo), None, dtype=object)
    pid[first.index.to_numpy()] = ids[first.to_numpy()]
    geo[S.PRECINCT_ID] = pd.Series(pid, dtype="string")
    geo[S.MICRO_GEO] = pd.Series(np.where(v["pocket_id"].to_numpy() >= 0, v["pocket_id"].to_numpy(), -1),
                                 dtype="Int64")
    return geo
