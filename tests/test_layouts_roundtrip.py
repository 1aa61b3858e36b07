"""Every supported layout, written by the generator and read back: counts equal the generator's truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from geo_segment import schema as S
from geo_segment.io.voters import read_voter_file
from geo_segment.synth import SyntheticPopulation, generate_population, write_layout

N = 1500
TODAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def population() -> SyntheticPopulation:
    return generate_population(N, seed=11)


@pytest.mark.parametrize("layout", ["nc", "oh", "fl", "mi", "pa"])
def test_layout_round_trip_equals_truth(population: SyntheticPopulation, layout: str, tmp_path: Path) -> None:
    files = write_layout(population, layout, tmp_path, bad_rows=6, seed=5)
    truth = pd.read_parquet(files["truth"]).set_index(S.VOTER_ID)
    bad = pd.read_csv(files["truth_bad_rows"], dtype={"voter_id": str})
    read = read_voter_file(
        files["voters"], layout=layout, history=files.get("history"), geocodes=files["geocodes"],
        election_map=files.get("election_map"), today=TODAY,
    )
    voters = read.voters.set_index(S.VOTER_ID)
    extra = set(bad.loc[bad["parses_as_voter"], "voter_id"])

    # rows in = voters + rejects, and the quarantined rows are exactly the planted ones
    stage = read.stages[0]
    assert stage.rows_in == N + len(bad)
    assert stage.rows_out == N + len(extra) == len(voters)
    assert stage.balanced
    row_rejects = read.rejects[(read.rejects[S.REJECT_FILE] == str(files["voters"]))
                               & (read.rejects[S.REJECT_SCOPE] == "row")]
    assert sorted(row_rejects[S.REJECT_LINE]) == sorted(bad.loc[bad["expected"] == "quarantine_row", "line"])
    field_rejects = read.rejects[(read.rejects[S.REJECT_FILE] == str(files["voters"]))
                                 & (read.rejects[S.REJECT_SCOPE] == "field")]
    assert sorted(field_rejects[S.REJECT_LINE]) == sorted(bad.loc[bad["expected"] == "quarantine_field", "line"])
    repaired = bad.loc[bad["expected"] == "repair_field", "voter_id"]
    assert voters.loc[repaired, S.ZIP5].str.fullmatch(r"\d{5}").all()

    # the generator's voters, one for one
    assert set(voters.index) == set(truth.index) | extra
    good = voters.loc[truth.index]

    # per-voter vote-history counts equal the truth
    voted = read.history[read.history[S.VOTED]]
    counts = voted.groupby(S.VOTER_ID).size().reindex(truth.index, fill_value=0)
    assert (counts == truth["n_votes"]).all(), (counts - truth["n_votes"]).abs().sum()
    S.validate_history(read.history)
    assert all(s.balanced for s in read.stages)

    # geocoded where the vendor returned coordinates, and at the right place
    assert (good[S.GEOCODED] == truth["geocoded"]).all()
    geo = truth["geocoded"]
    assert (good.loc[geo, S.LAT] - truth.loc[geo, "lat"]).abs().max() < 1e-3

    # households and buildings partition voters exactly as the truth does
    for ours, theirs in ((S.HOUSEHOLD_ID, "household_key"), (S.BUILDING_ID, "building_key")):
        pairs = pd.DataFrame({"a": good[ours], "b": truth[theirs]})
        assert pairs.groupby("a")["b"].nunique().max() == 1, f"{ours} merges distinct {theirs}"
        assert pairs.groupby("b")["a"].nunique().max() == 1, f"{ours} splits one {theirs}"
