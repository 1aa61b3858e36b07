"""Properties at every stage of a whole run, over generated counties in every layout with planted bad rows.

For any county: every stage record balances (rows in = rows out + rejected + dropped with a reason), the voters
planted in the file are all accounted for, voter ids stay unique after every join, every door's voters are one
household, and what the run folder holds re-reads equal to what each stage wrote.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames

from geo_segment import schema as S
from geo_segment.config import ClusterConfig, Config, IngestConfig, PrecinctConfig, ScoresConfig, TurfsConfig
from geo_segment.io.atomic import write_parquet
from geo_segment.runner import core_stages, run_pipeline
from geo_segment.synth import generate_population, write_layout

ROOT = Path(__file__).resolve().parents[1]
PRECINCTS = ROOT / "sample_data" / "providence_precincts.parquet"


@pytest.mark.slow
@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(120, 300), seed=st.integers(0, 10_000), layout=st.sampled_from(["nc", "oh", "fl", "mi", "pa"]),
       bad=st.integers(0, 12), door_unit=st.sampled_from(["household", "building"]))
def test_every_stage_balances_and_keeps_voters_unique(n: int, seed: int, layout: str, bad: int,
                                                      door_unit: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="geo_segment_prop_"))
    paths = write_layout(generate_population(n, seed=seed), layout, folder / "in", bad_rows=bad, seed=seed)
    cfg = Config(ingest=IngestConfig(layout=layout), precincts=PrecinctConfig(id_col="JOINID"),
                 scores=ScoresConfig(model="logistic", cv=2),
                 cluster=ClusterConfig(min_cluster_size=5, bootstrap=0, score_col="engagement_score"),
                 turfs=TurfsConfig(within="all", target_doors=20, door_unit=door_unit))
    inputs = {"voter_file": paths["voters"], "precincts": PRECINCTS, "signals": paths["signals"]}
    for role in ("history", "geocodes", "election_map"):
        if role in paths:
            inputs[role] = paths[role]
    stages = [s for s in core_stages() if s.name != "exports"]
    result = run_pipeline(cfg, folder / "run", inputs=inputs, stages=stages, report=False)
    assert [s.status for s in result.statuses] == ["ran"] * len(stages)
    records = {r.name: r for r in result.manifest.stages}
    for r in records.values():
        assert r.balanced, dataclasses.asdict(r)
    truth_bad = pd.read_csv(paths["truth_bad_rows"])
    quarantined = int((~truth_bad["parses_as_voter"].astype(bool)).sum())
    assert records["voters"].rows_in == n + len(truth_bad)
    assert records["voters"].rows_out == n + len(truth_bad) - quarantined
    assert records["voters"].rows_rejected == quarantined
    assert records["join"].rows_in == records["join"].rows_out == records["voters"].rows_out
    n_voters = records["voters"].rows_out
    for stage in ("ingest", "join", "score", "cluster"):
        voters = gpd.read_parquet(folder / "run" / "stages" / stage / "voters.parquet")
        assert len(voters) == n_voters, stage
        assert voters[S.VOTER_ID].is_unique, stage
    # the run folder's voters are the last stage's: the cluster stage's plus each voter's turf and door order
    published = gpd.read_parquet(folder / "run" / "voters.parquet")
    pd.testing.assert_frame_equal(published.drop(columns=[S.TURF_ID, S.DOOR_ORDER]),
                                  gpd.read_parquet(folder / "run" / "stages" / "cluster" / "voters.parquet"))
    S.validate_voters(published, stage="published")
    members = pd.read_parquet(folder / "run" / "door_members.parquet")
    assert members[S.VOTER_ID].is_unique  # nobody behind two doors
    doors = pd.read_parquet(folder / "run" / "doors.parquet")
    assert doors["door_id"].is_unique and set(members["door_id"]) == set(doors["door_id"])
    voters = pd.read_parquet(folder / "run" / "voters.parquet", columns=[S.VOTER_ID, S.HOUSEHOLD_ID, S.BUILDING_ID])
    unit = S.HOUSEHOLD_ID if door_unit == "household" else S.BUILDING_ID
    per_door = members.merge(voters, on=S.VOTER_ID).groupby("door_id")[unit].nunique()
    assert (per_door == 1).all()  # a door is one household (or one building): never split, never merged
    placed = published[S.TURF_ID].notna()
    assert set(published.loc[placed, S.VOTER_ID]) == set(members[S.VOTER_ID])  # turf_id exactly for door voters
    assert published.loc[placed, S.DOOR_ORDER].notna().all()


_CONTRACT_FRAMES = data_frames(columns=[
    column(S.VOTER_ID, dtype=str, elements=st.text(min_size=1, max_size=8)),
    column("party", elements=st.one_of(st.none(), st.sampled_from(["DEM", "REP", "UNA", "É"]))),
    column(S.BIRTH_YEAR, elements=st.one_of(st.none(), st.integers(1900, 2008))),
    column(S.H3_CELL, elements=st.integers(0, 2**64 - 1)),
    column(S.ENGAGEMENT_SCORE, elements=st.floats(0, 1)),
    column(S.GEOCODED, dtype=bool),
    column("lng", elements=st.floats(-180, 180)),
    column("lat", elements=st.floats(-90, 90)),
])


@settings(max_examples=60, deadline=None)
@given(frame=_CONTRACT_FRAMES)
def test_written_outputs_read_back_equal(frame: pd.DataFrame) -> None:
    frame = frame.astype({S.VOTER_ID: "str", "party": "str", S.BIRTH_YEAR: "Int64", S.H3_CELL: "uint64"})
    gdf = gpd.GeoDataFrame(frame, geometry=shapely.points(frame["lng"].to_numpy(), frame["lat"].to_numpy()),
                           crs=4326)
    path = Path(tempfile.mkdtemp(prefix="geo_segment_rt_")) / "voters.parquet"
    write_parquet(gdf, path)
    back = gpd.read_parquet(path)
    pd.testing.assert_frame_equal(back, gdf.reset_index(drop=True), check_index_type=False)
    assert np.array_equal(back[S.H3_CELL].to_numpy(), gdf[S.H3_CELL].to_numpy())  # uint64 survives whole
