"""The dask engine gives the local engine's outputs, exactly, on a 2-worker LocalCluster; without it, no dask.

Outputs are compared with ``check_exact=True`` and without sorting: same rows, same order, same index, same dtypes,
same float bits and the same geometries (``==`` on shapely geometries is exact). Sorting by ``voter_id``,
``h3_cell`` and ``precinct_id`` first would be weaker.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pandas.testing import assert_frame_equal

from geo_segment import read_signals, read_voter_file
from geo_segment.engines import expand_parquet_paths, join_aggregate, join_aggregate_local
from geo_segment.errors import ConfigError, OutputPathError
from geo_segment.io.voters import VoterFileRead

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
ID_COL = "JOINID"


# --- fixtures --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample() -> VoterFileRead:
    return read_voter_file(SAMPLE / "nc" / "ncvoter.txt", layout="nc", history=SAMPLE / "nc" / "ncvhis.txt",
                           geocodes=SAMPLE / "nc" / "geocodes.csv")


@pytest.fixture(scope="module")
def precincts() -> gpd.GeoDataFrame:
    return gpd.read_parquet(SAMPLE / "providence_precincts.parquet")


@pytest.fixture(scope="module")
def signals() -> gpd.GeoDataFrame:
    return read_signals(SAMPLE / "nc" / "signals.csv").signals


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A 2-worker, 1-thread-each LocalCluster shared by the module's tests (about 3 s to start)."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("dask_geopandas")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as local:
        yield local


def assert_same(local: tuple[Any, ...], dask: tuple[Any, ...]) -> None:
    """Joined voters, cells and precincts equal: values, dtypes, order, index, CRS and geometries."""
    for name, a, b in zip(("voters", "cells", "precincts"), local[:3], dask[:3], strict=True):
        assert isinstance(b, gpd.GeoDataFrame), name
        assert_frame_equal(a, b, check_exact=True, obj=name)
        assert a.crs == b.crs, name
        assert a.geometry.name == b.geometry.name, name
        assert a.geometry.to_wkb().equals(b.geometry.to_wkb()), name  # bit-exact geometries
    lj, dj = local[3]["join"], dask[3]["join"]
    for key in ("points", "with_coordinates", "within", "boundary", "nearest", "unassigned", "not_geocoded",
                "h3_resolution", "tolerance_m"):
        assert lj.get(key) == dj.get(key), key
    assert local[3]["aggregate"] == dask[3]["aggregate"]


# --- identical outputs -----------------------------------------------------------------------------------------------

def test_sample_county_identical_on_active_client(sample: VoterFileRead, precincts: gpd.GeoDataFrame,
                                                  signals: gpd.GeoDataFrame, cluster: Any) -> None:
    from distributed import Client

    local = join_aggregate_local(sample.voters, precincts, sample.history, signals, id_col=ID_COL)
    with Client(cluster.scheduler_address):  # the active client is used when no address is given
        dask = join_aggregate(sample.voters, precincts, sample.history, signals, id_col=ID_COL, engine="dask",
                              npartitions=3)
    assert_same(local, dask)
    assert dask[3]["partitions"] == {"input": 3, "shuffle": 3, "partition_resolution": 4, "workers": 2}
    assert any(c.startswith("signals_") for c in dask[1].columns)
    assert any(c.startswith("voted_general_") for c in dask[2].columns)


def _perturbed(voters: gpd.GeoDataFrame, precincts: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Sample voters moved where the rule's branches are, under a reversed, gappy integer index.

    Seen from above, around Providence's west edge::

        P1 | P2        x  on shared vertices of precincts          -> boundary
        ---x----   o   o  0.0003 deg (about 25 m) west of the layer -> nearest
        P3 | P4        *  0.02 deg (about 1.7 km) west               -> unassigned
    """
    out = voters.copy()
    vertices = shapely.get_coordinates(shapely.boundary(precincts.geometry.values[:40]))[::5][:120]
    minx, miny, maxx, maxy = precincts.total_bounds
    ys = np.linspace(miny + 0.01, maxy - 0.01, 40)
    rays = shapely.linestrings([[[minx - 1, y], [maxx + 1, y]] for y in ys])
    edge_x = shapely.bounds(shapely.intersection(precincts.geometry.union_all(), rays))[:, 0]  # westmost, per y
    ok = np.isfinite(edge_x)
    xy = np.vstack([vertices, np.column_stack([edge_x[ok] - 0.0003, ys[ok]]),
                    np.column_stack([edge_x[ok] - 0.02, ys[ok]])])
    rows = np.flatnonzero(out["geocoded"].to_numpy())[: len(xy)]
    lat, lng = out["lat"].to_numpy().copy(), out["lng"].to_numpy().copy()
    lng[rows], lat[rows] = xy[: len(rows), 0], xy[: len(rows), 1]
    out["lat"], out["lng"] = lat, lng
    out = out.set_geometry(gpd.points_from_xy(lng, lat, crs=out.crs))
    out.loc[~out["geocoded"], "geometry"] = shapely.Point()  # not geocoded: empty points, as read
    out.index = pd.Index(np.arange(len(out))[::-1] * 3 + 7)
    return out


def test_every_method_identical_across_many_partitions(sample: VoterFileRead, precincts: gpd.GeoDataFrame,
                                                       signals: gpd.GeoDataFrame, cluster: Any) -> None:
    voters = _perturbed(sample.voters, precincts)
    local = join_aggregate_local(voters, precincts, sample.history, signals, id_col=ID_COL, k_min=3)
    dask = join_aggregate(voters, precincts, sample.history, signals, id_col=ID_COL, k_min=3, engine="dask",
                          address=cluster.scheduler_address, npartitions=5, partition_resolution=7)
    assert_same(local, dask)
    assert dask[0] is not None
    methods = dask[0]["precinct_method"].value_counts()
    assert {"within", "boundary", "nearest", "unassigned"} <= set(methods.index), methods
    assert list(dask[0].index) == list(voters.index)


def test_parquet_input_and_voters_out_identical(sample: VoterFileRead, precincts: gpd.GeoDataFrame,
                                                signals: gpd.GeoDataFrame, cluster: Any, tmp_path: Path) -> None:
    """Voters as GeoParquet files per 'county' (read lazily by dask-geopandas), history and signals as Parquet."""
    folder = tmp_path / "voters"
    folder.mkdir()
    edges = [0, 700, 1900, len(sample.voters)]
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=False)):
        sample.voters.iloc[a:b].to_parquet(folder / f"county.{i}.parquet", index=False)
    sample.history.to_parquet(tmp_path / "history.parquet", index=False)
    signals.to_parquet(tmp_path / "signals.parquet", index=False)
    files = expand_parquet_paths(folder)
    assert [Path(f).name for f in files] == ["county.0.parquet", "county.1.parquet", "county.2.parquet"]

    args = (folder, precincts, tmp_path / "history.parquet", tmp_path / "signals.parquet")
    local = join_aggregate_local(*args, id_col=ID_COL)
    dask = join_aggregate(*args, id_col=ID_COL, engine="dask", address=cluster.scheduler_address)
    assert_same(local, dask)
    assert dask[3]["partitions"]["input"] == 3

    out = tmp_path / "joined"
    written = join_aggregate(*args, id_col=ID_COL, engine="dask", address=cluster.scheduler_address,
                             voters_out=out)
    assert written[0] is None
    back = pd.concat([gpd.read_parquet(f) for f in expand_parquet_paths(out)], ignore_index=True)
    assert_frame_equal(local[0], back, check_exact=True)
    assert_same(local, (local[0], *written[1:]))


def test_empty_voters_identical(sample: VoterFileRead, precincts: gpd.GeoDataFrame, cluster: Any) -> None:
    empty = sample.voters.iloc[:0]
    local = join_aggregate_local(empty, precincts, sample.history, id_col=ID_COL)
    dask = join_aggregate(empty, precincts, sample.history, id_col=ID_COL, engine="dask",
                          address=cluster.scheduler_address)
    assert_same(local, dask)
    assert dask[2]["suppressed"].all()


# --- errors, checked before any cluster is started -------------------------------------------------------------------

@pytest.mark.parametrize(("opts", "match"), [
    ({"engine": "spark"}, "unknown engine"),
    ({"engine": "local", "address": "tcp://x:8786"}, "options of the dask engine.*address"),
    ({"engine": "dask", "partition_resolution": 10}, "partition_resolution.*0 to 9"),
    ({"engine": "dask", "npartitions": 0}, "npartitions must be a positive integer"),
])
def test_bad_options(sample: VoterFileRead, precincts: gpd.GeoDataFrame, opts: dict[str, Any], match: str) -> None:
    if opts["engine"] == "dask":
        pytest.importorskip("dask_geopandas")
    with pytest.raises(ConfigError, match=match):
        join_aggregate(sample.voters, precincts, id_col=ID_COL, **opts)


def test_crs_mismatch_and_used_output_folder(sample: VoterFileRead, precincts: gpd.GeoDataFrame,
                                             tmp_path: Path) -> None:
    pytest.importorskip("dask_geopandas")
    with pytest.raises(ConfigError, match="not in the storage CRS"):
        join_aggregate(sample.voters.to_crs(3857), precincts, id_col=ID_COL, engine="dask")
    (tmp_path / "old.parquet").write_bytes(b"")
    with pytest.raises(OutputPathError, match="new or empty folder"):
        join_aggregate(sample.voters, precincts, id_col=ID_COL, engine="dask", voters_out=tmp_path)


# --- nothing of dask without --engine dask ---------------------------------------------------------------------------

def test_no_dask_imported_without_the_dask_engine() -> None:
    code = f"""
import json, sys
import geo_segment, geo_segment.join, geo_segment.aggregates, geo_segment.pipeline, geo_segment.cli.app
import geopandas as gpd
from geo_segment.engines import join_aggregate
read = geo_segment.read_voter_file({str(SAMPLE / "nc" / "ncvoter.txt")!r}, layout="nc")
areas = gpd.read_parquet({str(SAMPLE / "providence_precincts.parquet")!r})
join_aggregate(read.voters, areas, read.history, id_col="JOINID", engine="local")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "dask_geopandas"))))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# --- 1M voters -------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GEO_SEGMENT_SLOW") != "1", reason="set GEO_SEGMENT_SLOW=1 (about 3 minutes)")
def test_one_million_generated_voters_identical(precincts: gpd.GeoDataFrame, tmp_path: Path,
                                                record_property: Any) -> None:
    """A generated 1M-voter NC file, read like a real one; the dask engine starts its own 2-worker cluster."""
    pytest.importorskip("dask_geopandas")
    from geo_segment.synth import generate_population, write_layout

    paths = write_layout(generate_population(1_000_000, seed=1), "nc", tmp_path)
    read = read_voter_file(paths["voters"], layout="nc", history=paths["history"], geocodes=paths["geocodes"])
    sig = read_signals(paths["signals"]).signals
    t0 = time.perf_counter()
    local = join_aggregate_local(read.voters, precincts, read.history, sig, id_col=ID_COL)
    t1 = time.perf_counter()
    dask = join_aggregate(read.voters, precincts, read.history, sig, id_col=ID_COL, engine="dask")
    t2 = time.perf_counter()
    assert_same(local, dask)
    assert dask[0] is not None and len(dask[0]) == 1_000_000
    record_property("local_seconds", round(t1 - t0, 1))
    record_property("dask_seconds", round(t2 - t1, 1))
    record_property("dask_phases", dask[3]["seconds"])
