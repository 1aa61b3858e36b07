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
from geo_segment._vector import plain_text
from geo_segment.config import Config
from geo_segment.errors import ConfigError
from geo_segment.io.atomic import write_csv, write_parquet
from geo_segment.io.manifest import Manifest, StageRecord
from geo_segment.io.voters import Duplicates, read_voter_file

__all__ = [
    "JoinResult",
    "RunResult",
    "ScoreResult",
    "SampleFiles",
    "find_sample",
    "ingest_voters",
    "join_and_aggregate",
    "run_demo",
    "read_seed_ids",
    "run_cluster",
    "run_join",
    "run_score",
    "run_synth",
    "score_stage",
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
    config: Path
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
        config=base / "geo_segment.toml",
    )
    missing = [str(p) for p in (files.voters, files.history, files.geocodes, files.signals, files.precincts,
                                files.config) if not p.exists()]
    if missing:
        raise InputFileError(
            "the sample county is incomplete",
            where=Location(base),
            expected=("sample_data/nc/{ncvoter.txt,ncvhis.txt,geocodes.csv,signals.csv}, providence_precincts.parquet, "
                      "geo_segment.toml"),
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
        "voters": write_parquet(plain_text(read.voters), out / "voters.parquet"),  # as runner._ingest
        "vote_history": write_parquet(read.history, out / "vote_history.parquet"),
        "rejects": _write_rejects([read.rejects], out),
    }
    man.outputs = [p.name for p in outputs.values()]
    outputs["manifest"] = man.write(out)
    return RunResult(out_dir=out, manifest=man, outputs=outputs)


def run_demo(out_dir: str | Path, *, sample_dir: str | Path | None = None, config: Config | None = None,
             stages: Any = None, **kw: Any) -> Any:
    """``geo-segment run`` on the embedded sample county: its ``geo_segment.toml`` names the files and settings.

    The sample goes through the same stages as a real run: the NC-layout voter file with its vote history and a
    vendor geocodes file, the signals CSV and the real Providence County precincts. ``config`` replaces the
    sample's settings (its inputs stay the sample's unless ``config`` names inputs). ``stages`` defaults to the
    library's (:func:`geo_segment.runner.core_stages`; the CLI adds the maps stage); ``kw`` goes to
    :func:`geo_segment.runner.run_pipeline`.

    Returns
    -------
    geo_segment.runner.PipelineResult
    """
    from geo_segment.config import InputsConfig, load_config
    from geo_segment.runner import resolve_inputs, run_pipeline

    files = find_sample(sample_dir)
    sample_cfg = load_config(files.config)
    inputs = resolve_inputs(sample_cfg, files.config.parent)
    if config is None:
        return run_pipeline(files.config, out_dir, stages=stages, command="demo", **kw)
    if config.inputs != InputsConfig():
        inputs = {}
    return run_pipeline(config, out_dir, inputs=inputs, stages=stages, command="demo", **kw)


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
    as_of: pd.Timestamp | None = None,
) -> JoinResult:
    """H3 cells and exactly one precinct for voters and signals, then aggregates per cell and per precinct.

    The one in-memory join-and-aggregate: ``geo-segment join``, ``run``/``demo`` and the local engine
    (:func:`geo_segment.engines.join_aggregate_local`) all call it. Stage records ``join`` (voters),
    ``join_signals`` and ``aggregate`` (cells and precincts, with suppression).

    Parameters
    ----------
    voters, precincts
        Voters and the precinct layer (EPSG:4326); ``id_col`` is the layer's id column.
    history, signals
        Long vote history and signals, optional.
    config
        The run's settings (``[join]``: resolution, tolerance, k, elections, half-life).
    as_of
        Reference time of the signals' decay (default: the newest signal).
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
    # households, buildings and general-election votes matched once for both tables
    codes = voter_codes(joined, history, n_generals=cfg.n_generals)
    opts: dict[str, Any] = {"k_min": cfg.k_min, "n_generals": cfg.n_generals,
                            "half_life_days": cfg.half_life_days, "as_of": as_of, "codes": codes}
    cells = aggregate_cells(joined, history, sig_out, resolution=cfg.cell_resolution, **opts)
    pre = aggregate_precincts(joined, precincts, history, sig_out, id_col=id_col, **opts)
    metrics = aggregate_metrics(cells, pre)
    metrics["k_min"] = cfg.k_min
    geocoded = int(joined[S.GEOCODED].sum()) if S.GEOCODED in joined.columns else int(
        (joined[S.H3_CELL].to_numpy() != 0).sum())
    metrics["geocode_rate"] = round(geocoded / len(joined), 4) if len(joined) else None
    stages.append(StageRecord("aggregate", rows_in=geocoded, rows_out=geocoded, rows_rejected=0,
                              seconds=round(time.perf_counter() - t0, 3), metrics=metrics))
    return JoinResult(voters=joined, signals=sig_out, cells=cells, precincts=pre, stages=stages)


def _label_election(history: pd.DataFrame, setting: str) -> str | None:
    """The label election a ``[scores] label_election`` setting names, or ``None`` for none."""
    if setting == "none":
        return None
    if setting != "latest-general":
        return setting
    generals = history.loc[(history[S.ELECTION_TYPE] == "general") & history[S.VOTED], S.ELECTION_DATE]
    return pd.Timestamp(generals.max()).date().isoformat() if len(generals) else None


def read_seed_ids(path: str | Path) -> list[str]:
    """Lookalike seed voter ids: a CSV with a ``voter_id`` column, or a single column of ids (no header).

    See :func:`geo_segment.io.ids.read_ids` for the errors.
    """
    from geo_segment.io.ids import read_ids

    return read_ids(path, columns=(S.VOTER_ID,), what="seed file")


@dataclass
class ScoreResult:
    """Scored voters, the stage's metrics and the propensity model used (trained or loaded), if any."""

    voters: Any
    metrics: dict[str, Any]
    model: Any
    stage: StageRecord


def score_stage(
    voters: Any,
    history: pd.DataFrame,
    signals: Any = None,
    *,
    config: Config | None = None,
    model: Any = None,
    seeds: list[str] | None = None,
) -> ScoreResult:
    """Engagement scores with the ``[scores]`` settings: rule score, propensity model, lookalikes.

    Parameters
    ----------
    voters, history, signals
        The contract's frames.
    config
        Run configuration; its ``scores`` table chooses the label election (``latest-general`` by default), the
        model family, the feature options and the rule weights.
    model
        A fitted :class:`~geo_segment.scoring.PropensityModel` to score with instead of training one (its feature
        options win; mismatching features raise :class:`~geo_segment.scoring.FeatureMismatchError`).
    seeds
        Voter ids for lookalikes (``lookalike_score``).

    Returns
    -------
    ScoreResult
        The scored copy of ``voters`` (``engagement_score``; ``propensity``; ``lookalike_score``), the metrics, the
        model used and a stage record (rows in = rows out).
    """
    from geo_segment.scoring import PropensityModel, score_voters_with_model

    sc = (config or Config()).scores
    t0 = time.perf_counter()
    kw: dict[str, Any] = {"weights": sc.weights(), "seeds": seeds, "random_state": sc.random_state}
    if model is not None:
        kw["model"] = model
    else:
        kw.update(n_elections=sc.n_elections, half_life_days=sc.half_life_days,
                  label_election=_label_election(history, sc.label_election))
        if kw["label_election"] is not None:
            kw["model"] = PropensityModel(model=sc.model, cv=sc.cv, n_threads=sc.n_threads,  # type: ignore[arg-type]
                                          random_state=sc.random_state)
    scored, metrics, used = score_voters_with_model(voters, history, signals, **kw)
    stage = StageRecord("score", rows_in=len(voters), rows_out=len(scored), rows_rejected=0,
                        seconds=round(time.perf_counter() - t0, 3), metrics=metrics)
    return ScoreResult(voters=scored, metrics=metrics, model=used, stage=stage)


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


def _read_voters(path: str | Path, stage: str) -> Any:
    import geopandas as gpd

    from geo_segment.errors import InputNotFoundError, Location

    if not Path(path).is_file():
        raise InputNotFoundError("voters file not found", where=Location(path),
                                 fix="pass the voters.parquet written by `geo-segment join` (or `ingest voters`)")
    voters = gpd.read_parquet(path)
    S.validate_voters(voters, stage=stage)
    return voters


def run_score(
    voters: str | Path,
    history: str | Path,
    out_dir: str | Path,
    *,
    signals: str | Path | None = None,
    config: Config | None = None,
    model: str | Path | None = None,
    seeds: str | Path | None = None,
) -> RunResult:
    """Score voters and write ``voters.parquet`` with the scores, and ``manifest.json``, into ``out_dir``.

    Trains a propensity model labelled by the ``[scores] label_election`` and writes it (``model.joblib``, with
    its feature list, training data hash and library versions) with its calibration plot (``calibration.png``);
    or scores with a saved ``model`` and refuses voters whose features differ from the model's. ``seeds`` (a CSV
    of voter ids) adds ``lookalike_score``.

    Raises
    ------
    FeatureMismatchError
        The saved model was trained on other features.
    InputNotFoundError, MissingColumnsError, InputFileError, SchemaError, ConfigError
        Missing or malformed inputs or settings.
    """
    from geo_segment.scoring import PropensityModel

    cfg = config or Config()
    out = Path(out_dir)
    man = Manifest(command="score", parameters={"config": cfg.to_dict(), "model": str(model) if model else None})
    for role, p in (("voters", voters), ("history", history), ("signals", signals), ("model", model),
                    ("seeds", seeds)):
        if p is not None:
            man.add_input(role, p)
    v = _read_voters(voters, "score input")
    hist = pd.read_parquet(history)
    S.validate_history(hist, stage="score input")
    sig = pd.read_parquet(signals) if signals is not None else None
    loaded = PropensityModel.load(model) if model is not None else None
    seed_ids = read_seed_ids(seeds) if seeds is not None else None
    result = score_stage(v, hist, sig, config=cfg, model=loaded, seeds=seed_ids)
    man.add_stage(result.stage)
    outputs: dict[str, Path] = {"voters": write_parquet(result.voters, out / "voters.parquet")}
    if result.model is not None and loaded is None:
        outputs["model"] = result.model.save(out / "model.joblib")
        outputs["calibration"] = result.model.calibration_plot(out / "calibration.png")
    man.outputs = [p.name for p in outputs.values()]
    outputs["manifest"] = man.write(out)
    return RunResult(out_dir=out, manifest=man, outputs=outputs)


def run_cluster(voters: str | Path, out_dir: str | Path, *, config: Config | None = None) -> RunResult:
    """Cluster scored voters into micro-geographies with the ``[cluster]`` settings.

    Writes ``voters.parquet`` (with ``micro_geo``), ``micro_geos.parquet`` and ``manifest.json`` (the stage's
    metrics: ``validity``, ``bootstrap_ari``, and ``planted_ari`` / ``pockets_recovered`` with planted truth).

    Raises
    ------
    SchemaError
        The score column is missing or not numeric (run ``geo-segment score`` first).
    ConfigError
        Bad ``[cluster]`` settings.
    """
    from geo_segment.clustering import cluster_stage

    cfg = config or Config()
    out = Path(out_dir)
    man = Manifest(command="cluster", parameters={"config": cfg.to_dict()})
    man.add_input("voters", voters)
    v = _read_voters(voters, "cluster input")
    clustered, micro_geos, stage = cluster_stage(v, **cfg.cluster.options(v.columns, k_min=cfg.join.k_min))
    man.add_stage(stage)
    outputs = {"voters": write_parquet(clustered, out / "voters.parquet"),
               "micro_geos": write_parquet(micro_geos, out / "micro_geos.parquet")}
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
