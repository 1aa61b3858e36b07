"""Stages chained into runs that write a run folder (outputs, ``rejects.csv``, ``manifest.json``).

Library functions here do the work and return a :class:`RunResult`; they never print. The CLI reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from geo_segment import schema as S
from geo_segment.config import Config
from geo_segment.errors import ConfigError
from geo_segment.io.atomic import write_csv, write_parquet
from geo_segment.io.manifest import Manifest, StageRecord
from geo_segment.io.voters import Duplicates, read_voter_file

__all__ = [
    "JoinResult",
    "RunResult",
    "SampleFiles",
    "find_sample",
    "ingest_voters",
    "join_and_aggregate",
    "run_demo",
    "run_join",
    "run_synth",
    "stage_table",
]


@dataclass
class RunResult:
    """What a run wrote: the folder, the manifest and the files by role."""

    out_dir: Path
    manifest: Manifest
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def stages(self) -> list[StageRecord]:
        """The stage records, in run order."""
        return self.manifest.stages


@dataclass(frozen=True)
class SampleFiles:
    """The files of the embedded sample county."""

    voters: Path
    history: Path
    geocodes: Path
    signals: Path
    precincts: Path
    precinct_id_col: str = "JOINID"


def find_sample(sample_dir: str | Path | None = None) -> SampleFiles:
    """Locate the sample county (``sample_data/`` of the source tree unless given).

    Raises
    ------
    FileNotFoundError
        As an ``InputFileError`` naming the missing files.
    """
    from geo_segment.errors import InputFileError, Location

    base = Path(sample_dir) if sample_dir is not None else Path(__file__).resolve().parents[1] / "sample_data"
    files = SampleFiles(
        voters=base / "nc" / "ncvoter.txt",
        history=base / "nc" / "ncvhis.txt",
        geocodes=base / "nc" / "geocodes.csv",
        signals=base / "nc" / "signals.csv",
        precincts=base / "providence_precincts.parquet",
    )
    missing = [str(p) for p in (files.voters, files.history, files.geocodes, files.signals, files.precincts)
               if not p.exists()]
    if missing:
        raise InputFileError(
            "the sample county is incomplete",
            where=Location(base),
            expected="sample_data/nc/{ncvoter.txt,ncvhis.txt,geocodes.csv,signals.csv}, providence_precincts.parquet",
            found=f"missing {missing}",
            fix="run from a source checkout, or pass --sample-dir",
        )
    return files


def _write_rejects(rejects: list[pd.DataFrame], out: Path) -> Path:
    frames = [r for r in rejects if len(r)]
    frame = pd.concat(frames, ignore_index=True) if frames else S.empty_rejects()
    return write_csv(frame[list(S.REJECT_COLUMNS)], out / "rejects.csv")


def ingest_voters(
    voter_file: str | Path,
    out_dir: str | Path,
    *,
    layout: str | Path = "nc",
    history: str | Path | None = None,
    geocodes: str | Path | None = None,
    election_map: str | Path | None = None,
    encoding: str | None = None,
    duplicates: Duplicates = "error",
    manifest: Manifest | None = None,
) -> RunResult:
    """Read a voter file into the contract and write ``voters.parquet`` (GeoParquet), ``vote_history.parquet``,
    ``rejects.csv`` and ``manifest.json`` into ``out_dir``.

    Returns
    -------
    RunResult
        The folder, the manifest (stages ``voters``, ``geocodes`` when given, ``history``) and the outputs.
    """
    from geo_segment.layouts import load_layout

    lay = load_layout(layout)
    out = Path(out_dir)
    man = manifest or Manifest(command="ingest voters")
    man.parameters.update({"layout": str(layout), "encoding": encoding, "duplicates": duplicates})
    for role, p in (("voters", voter_file), ("history", history), ("geocodes", geocodes),
                    ("election_map", election_map)):
        if p is not None:
            man.add_input(role, p)
    read = read_voter_file(voter_file, layout=lay, history=history, geocodes=geocodes,
                           election_map=election_map, encoding=encoding, duplicates=duplicates)
    for stage in read.stages:
        man.add_stage(stage)
    outputs = {
        "voters": write_parquet(read.voters, out / "voters.parquet"),
        "vote_history": write_parquet(read.history, out / "vote_history.parquet"),
        "rejects": _write_rejects([read.rejects], out),
    }
    man.outputs = [p.name for p in outputs.values()]
    outputs["manifest"] = man.write(out)
    return RunResult(out_dir=out, manifest=man, outputs=outputs)


def run_demo(out_dir: str | Path, *, sample_dir: str | Path | None = None, config: Config | None = None) -> RunResult:
    """Run every stage that exists on the embedded sample county and write the run folder.

    The sample goes through the same ingest path as a real file: the NC-layout voter file with its vote history
    and a vendor geocodes file, the signals CSV and the real Providence County precincts.
    """
    from geo_segment.io.precincts import read_precincts
    from geo_segment.io.signals import read_signals

    cfg = config or Config()
    files = find_sample(sample_dir)
    out = Path(out_dir)
    man = Manifest(command="demo", parameters={"config": cfg.to_dict()})
    for role, p in (("voters", files.voters), ("history", files.history), ("geocodes", files.geocodes),
                    ("signals", files.signals), ("precincts", files.precincts)):
        man.add_input(role, p)
    read = read_voter_file(files.voters, layout="nc", history=files.history, geocodes=files.geocodes,
                           encoding=cfg.ingest.encoding, duplicates="error")
    for stage in read.stages:
        man.add_stage(stage)
    sig = read_signals(files.signals, default_weight=cfg.signals.default_weight)
    man.add_stage(sig.stage)
    t0 = time.perf_counter()
    pre = read_precincts(files.precincts, id_col=files.precinct_id_col, area_tolerance=cfg.precincts.area_tolerance)
    pre.stage.seconds = pre.stage.seconds or round(time.perf_counter() - t0, 3)
    man.add_stage(pre.stage)
    joined = join_and_aggregate(read.voters, pre.precincts, id_col=S.PRECINCT_ID, history=read.history,
                                signals=sig.signals, config=cfg)
    for stage in joined.stages:
        man.add_stage(stage)
    scored, micro_geos = _score_and_cluster(joined.voters, read.history, joined.signals, man)
    outputs: dict[str, Path] = {
        "voters": write_parquet(scored, out / "voters.parquet"),
        "micro_geos": write_parquet(micro_geos, out / "micro_geos.parquet"),
        "vote_history": write_parquet(read.history, out / "vote_history.parquet"),
        "signals": write_parquet(joined.signals, out / "signals.parquet"),
        "cells": write_parquet(joined.cells, out / "cells.parquet"),
        "precincts": write_parquet(joined.precincts, out / "precincts.parquet"),
        "rejects": _write_rejects([read.rejects, sig.rejects, pre.rejects], out),
    }
    man.outputs = [p.name for p in outputs.values()]
    outputs["manifest"] = man.write(out)
    return RunResult(out_dir=out, manifest=man, outputs=outputs)


@dataclass
class JoinResult:
    """Outputs of the join-and-aggregate stage."""

    voters: Any
    signals: Any
    cells: Any
    precincts: Any
    stages: list[StageRecord]


def join_and_aggregate(
    voters: Any,
    precincts: Any,
    *,
    id_col: str,
    history: pd.DataFrame | None = None,
    signals: Any = None,
    config: Config | None = None,
) -> JoinResult:
    """H3 cells and exactly one precinct for voters and signals, then aggregates per cell and per precinct.

    Stage records ``join`` (voters), ``join_signals`` and ``aggregate`` (cells and precincts, with suppression).
    """
    from geo_segment._vector import isin_str
    from geo_segment.aggregates import aggregate_cells, aggregate_metrics, aggregate_precincts, voter_codes
    from geo_segment.join import add_h3_cells, assign_areas, join_stage

    cfg = (config or Config()).join
    joined, stage = join_stage(voters, precincts, id_col=id_col, tolerance_m=cfg.tolerance_m,
                               resolution=cfg.h3_resolution)
    stages = [stage]
    sig_out = None
    if signals is not None:
        t0 = time.perf_counter()
        sig_cells = add_h3_cells(signals, resolution=cfg.h3_resolution)
        sig_out, sig_metrics = assign_areas(sig_cells, precincts, id_col=id_col, tolerance_m=cfg.tolerance_m,
                                            out_id=S.PRECINCT_ID, out_method=S.PRECINCT_METHOD)
        has_voter = sig_out[S.VOTER_ID].notna().to_numpy()
        sig_out["voter_matched"] = has_voter & isin_str(sig_out[S.VOTER_ID].astype("str"), joined[S.VOTER_ID])
        sig_metrics = {k: v for k, v in sig_metrics.items() if k != "seconds"}
        sig_metrics["with_voter_id"] = int(has_voter.sum())
        sig_metrics["voter_matched"] = int(sig_out["voter_matched"].sum())
        stages.append(StageRecord("join_signals", rows_in=len(signals), rows_out=len(sig_out), rows_rejected=0,
                                  seconds=round(time.perf_counter() - t0, 3), metrics=sig_metrics))
    t0 = time.perf_counter()
    codes = voter_codes(joined)
    cells = aggregate_cells(joined, history, sig_out, resolution=cfg.cell_resolution, k_min=cfg.k_min,
                            n_generals=cfg.n_generals, half_life_days=cfg.half_life_days, codes=codes)
    pre = aggregate_precincts(joined, precincts, history, sig_out, id_col=id_col, k_min=cfg.k_min,
                              n_generals=cfg.n_generals, half_life_days=cfg.half_life_days, codes=codes)
    metrics = aggregate_metrics(cells, pre)
    metrics["k_min"] = cfg.k_min
    geocoded = int(joined[S.GEOCODED].sum())
    metrics["geocode_rate"] = round(geocoded / len(joined), 4) if len(joined) else None
    stages.append(StageRecord("aggregate", rows_in=geocoded, rows_out=geocoded, rows_rejected=0,
                              seconds=round(time.perf_counter() - t0, 3), metrics=metrics))
    return JoinResult(voters=joined, signals=sig_out, cells=cells, precincts=pre, stages=stages)


def _score_and_cluster(voters: Any, history: pd.DataFrame, signals: Any, man: Manifest) -> tuple[Any, Any]:
    """Demo stages: rule score and a propensity model labelled by the latest general election, then micro-geos.

    Settings are the demo's (top 20% by engagement score, clusters of at least 8 voters within 200 m); the
    ``score`` and ``cluster`` commands with their configuration tables are still to come.
    """
    from geo_segment.clustering import cluster_stage
    from geo_segment.scoring import score_voters

    t0 = time.perf_counter()
    generals = history.loc[(history[S.ELECTION_TYPE] == "general") & history[S.VOTED], S.ELECTION_DATE]
    label = generals.max() if len(generals) else None
    scored, metrics = score_voters(voters, history, signals, label_election=label)
    man.add_stage(StageRecord("score", rows_in=len(voters), rows_out=len(scored), rows_rejected=0,
                              seconds=round(time.perf_counter() - t0, 3), metrics=metrics))
    clustered, micro_geos, stage = cluster_stage(scored, score_col=S.ENGAGEMENT_SCORE, top_q=0.2,
                                                 min_cluster_size=8, eps_m=200.0)
    man.add_stage(stage)
    return clustered, micro_geos


def run_join(
    voters: str | Path,
    precincts: str | Path,
    out_dir: str | Path,
    *,
    id_col: str,
    history: str | Path | None = None,
    signals: str | Path | None = None,
    config: Config | None = None,
    engine: str = "local",
    address: str | None = None,
    npartitions: int | None = None,
) -> RunResult:
    """Join ingested voters (GeoParquet) to H3 cells and precincts, aggregate, and write the run folder.

    ``engine="dask"`` runs the same join and aggregates with dask-geopandas (``voters`` may then be a folder or
    glob of GeoParquet files larger than memory; ``address`` names a dask.distributed scheduler); outputs are
    identical to the local engine's. See ``docs/scale.md``.
    """
    import geopandas as gpd

    from geo_segment.io.precincts import read_precincts

    cfg = config or Config()
    out = Path(out_dir)
    man = Manifest(command="join", parameters={"id_col": id_col, "engine": engine, "config": cfg.to_dict()})
    from geo_segment.engines import expand_parquet_paths, load_engine

    module = load_engine(engine)  # unknown engine or missing dask: a clear error before any work
    for f in expand_parquet_paths(voters):
        man.add_input("voters", f)
    for role, p in (("history", history), ("signals", signals)):
        if p is not None:
            man.add_input(role, p)
    if Path(str(precincts)).exists():
        man.add_input("precincts", precincts)
    hist = pd.read_parquet(history) if history is not None else None
    pre = read_precincts(str(precincts), id_col=id_col, area_tolerance=cfg.precincts.area_tolerance)
    man.add_stage(pre.stage)
    outputs: dict[str, Path] = {}
    if module is not None:
        from geo_segment.engines import join_aggregate

        t0 = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        joined_voters, cells, pre_agg, metrics = join_aggregate(
            str(voters), pre.precincts, hist, str(signals) if signals is not None else None, id_col=S.PRECINCT_ID,
            engine=engine, resolution=cfg.join.h3_resolution, tolerance_m=cfg.join.tolerance_m, k_min=cfg.join.k_min,
            n_generals=cfg.join.n_generals, half_life_days=cfg.join.half_life_days, address=address,
            npartitions=npartitions,
        )
        join_m = dict(metrics.get("join", {}))
        agg_m = dict(metrics.get("aggregate", {}))
        n = len(joined_voters) if joined_voters is not None else int(join_m.get("points", 0))
        join_m.update({k: v for k, v in metrics.items() if k not in ("join", "aggregate")})
        man.add_stage(StageRecord("join", rows_in=n, rows_out=n, rows_rejected=0,
                                  seconds=round(time.perf_counter() - t0, 3), metrics=join_m))
        agg_m["k_min"] = cfg.join.k_min
        geocoded = int(join_m.get("with_coordinates", 0))
        man.add_stage(StageRecord("aggregate", rows_in=geocoded, rows_out=geocoded, rows_rejected=0, seconds=0.0,
                                  metrics=agg_m))
        if joined_voters is not None:
            outputs["voters"] = write_parquet(joined_voters, out / "voters.parquet")
        outputs["cells"] = write_parquet(cells, out / "cells.parquet")
        outputs["precincts"] = write_parquet(pre_agg, out / "precincts.parquet")
    else:
        if npartitions is not None or address is not None:
            raise ConfigError("--address and --npartitions belong to the dask engine", fix="add --engine dask")
        v = gpd.read_parquet(voters)
        S.validate_voters(v, stage="join input")
        sig = gpd.read_parquet(signals) if signals is not None else None
        joined = join_and_aggregate(v, pre.precincts, id_col=S.PRECINCT_ID, history=hist, signals=sig, config=cfg)
        for stage in joined.stages:
            man.add_stage(stage)
        outputs["voters"] = write_parquet(joined.voters, out / "voters.parquet")
        outputs["cells"] = write_parquet(joined.cells, out / "cells.parquet")
        outputs["precincts"] = write_parquet(joined.precincts, out / "precincts.parquet")
        if joined.signals is not None:
            outputs["signals"] = write_parquet(joined.signals, out / "signals.parquet")
    outputs["rejects"] = _write_rejects([pre.rejects], out)
    man.outputs = [p.name for p in outputs.values()]
    outputs["manifest"] = man.write(out)
    return RunResult(out_dir=out, manifest=man, outputs=outputs)


def run_synth(
    out_dir: str | Path, *, voters: int, seed: int = 0, layout: str = "nc", bad_rows: int = 0
) -> RunResult:
    """Generate a synthetic county, write it in ``layout`` with its truth, and a manifest, into ``out_dir``."""
    from geo_segment.synth import generate_population, write_layout

    out = Path(out_dir)
    man = Manifest(command="synth", parameters={"voters": voters, "seed": seed, "layout": layout,
                                                "bad_rows": bad_rows})
    t0 = time.perf_counter()
    population = generate_population(voters, seed=seed)
    paths = write_layout(population, layout, out, bad_rows=bad_rows, seed=seed)
    man.add_stage(StageRecord(
        "synth", rows_in=voters, rows_out=len(population.voters), rows_rejected=0,
        seconds=round(time.perf_counter() - t0, 3),
        metrics={"history_rows": len(population.history), "signals": len(population.signals),
                 "elections": len(population.elections), "bad_rows_planted": bad_rows},
    ))
    man.outputs = [p.name for p in paths.values()]
    outputs = dict(paths)
    outputs["manifest"] = man.write(out)
    return RunResult(out_dir=out, manifest=man, outputs=outputs)


def stage_table(result: RunResult) -> list[dict[str, Any]]:
    """Rows for a summary table: stage, rows in, out, rejected, whether they balance, seconds."""
    rows = []
    for s in result.stages:
        rows.append({
            "stage": s.name, "rows_in": s.rows_in, "rows_out": s.rows_out, "rows_rejected": s.rows_rejected,
            "other": s.rows_dropped, "balanced": s.balanced, "seconds": s.seconds,
        })
    return rows
