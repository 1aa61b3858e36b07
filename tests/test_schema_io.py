"""Column contract validators, atomic writes, safe output names and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from geo_segment import schema as S
from geo_segment.errors import OutputPathError, SchemaError
from geo_segment.io.atomic import atomic_path, safe_output_path, write_csv
from geo_segment.io.manifest import Manifest, StageRecord, sha256_file


def _voters(**over: object) -> gpd.GeoDataFrame:
    data: dict[str, object] = {
        S.VOTER_ID: pd.Series(["a", "b"], dtype="str"),
        S.HOUSEHOLD_ID: pd.Series(["h1", "h2"], dtype="str"),
        S.BUILDING_ID: pd.Series(["b1", "b1"], dtype="str"),
        S.LAT: [41.8, np.nan],
        S.LNG: [-71.4, np.nan],
        S.GEOCODED: [True, False],
        S.SOURCE_LINE: pd.array([2, 3], dtype="Int64"),
    }
    data.update(over)
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy([-71.4, np.nan], [41.8, np.nan]), crs=4326)


def test_valid_voters_pass() -> None:
    S.validate_voters(_voters())


def test_validator_collects_every_problem_at_once() -> None:
    bad = _voters(**{S.VOTER_ID: ["a", "a"], S.LAT: [141.8, np.nan], S.H3_CELL: np.array([1, 2], dtype="int64")})
    bad = bad.drop(columns=[S.HOUSEHOLD_ID]).set_crs(3857, allow_override=True)
    with pytest.raises(SchemaError) as info:
        S.validate_voters(bad, stage="join")
    msg = str(info.value)
    assert "voters at stage 'join' break the column contract (5 problems" in msg
    for part in ("missing columns ['household_id']", "h3_cell: expected dtype uint64, found int64",
                 "voter_id: 1 duplicated values", "expected CRS EPSG:4326 at rest", "lat: 1 values outside [-90, 90]"):
        assert part in msg


def test_h3_cells_must_be_uint64() -> None:
    S.validate_voters(_voters(**{S.H3_CELL: np.array([1, 2], dtype="uint64")}), extra_required=[S.H3_CELL])


def test_atomic_write_keeps_old_file_on_crash(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a new fi")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_write_csv_is_utf8_without_bom(tmp_path: Path) -> None:
    p = write_csv(pd.DataFrame({"name": ["Zoë"]}), tmp_path / "x.csv")
    assert p.read_bytes() == "name\nZoë\n".encode()


@pytest.mark.parametrize("name", ["../x.csv", "../../etc/passwd", "/tmp/abs.csv", "a/../../b.csv"])
def test_output_names_stay_inside_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputPathError, match="an output name would leave the output folder"):
        safe_output_path(tmp_path, name)


def test_safe_output_path_accepts_plain_names(tmp_path: Path) -> None:
    assert safe_output_path(tmp_path, "walklists/t1.csv") == (tmp_path / "walklists" / "t1.csv").resolve()


def test_manifest_records_inputs_stages_versions(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"abc")
    man = Manifest(command="test", parameters={"k": 1})
    man.add_input("voters", src)
    man.add_stage(StageRecord("voters", rows_in=3, rows_out=2, rows_rejected=1, seconds=0.1, metrics={"m": 1}))
    data = json.loads(man.write(tmp_path).read_text())
    assert data["inputs"][0]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(src) == data["inputs"][0]["sha256"]
    assert data["stages"]["voters"] == {"rows_in": 3, "rows_out": 2, "rows_rejected": 1, "seconds": 0.1,
                                        "metrics": {"m": 1}, "rows_dropped": 0}
    assert {"python", "pandas", "geopandas", "shapely", "pyarrow"} <= set(data["versions"])
