"""The export stage of ``demo`` / ``run``: geofences of precincts, micro-geographies (and turfs) and hashed customer
lists of the scored voters, each refusal recorded with its reason instead of stopping the run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_segment import schema as S
from geo_segment.config import Config, ExportConfig
from geo_segment.errors import ExportError
from geo_segment.exports.audiences import SOURCE_COLUMNS, export_audiences
from geo_segment.exports.geofences import export_geofences, voter_grid
from geo_segment.exports.guardrails import load_suppression
from geo_segment.exports.platforms import load_rules
from geo_segment.io.manifest import StageRecord

__all__ = ["demo_audiences", "export_columns", "export_stage", "read_export_voters"]


def export_columns(config: Config | ExportConfig | None = None) -> tuple[str, ...]:
    """The voter columns :func:`export_stage` reads: identifiers of the customer lists, the consent column,
    location, ZIP, state and precinct for the geofences, the audiences' score and micro-geography, and the unit
    columns of an experiment design (household, turf, micro-geography, precinct)."""
    cfg = config.export if isinstance(config, Config) else (config or ExportConfig())
    return tuple(dict.fromkeys((
        S.VOTER_ID, S.HOUSEHOLD_ID, *SOURCE_COLUMNS.values(), cfg.consent_column, S.LAT, S.LNG, S.ZIP5, S.STATE,
        S.PRECINCT_ID, S.MICRO_GEO, S.TURF_ID, S.ENGAGEMENT_SCORE,
    )))


def read_export_voters(path: str | Path, config: Config | ExportConfig | None = None) -> pd.DataFrame:
    """Read from a voters Parquet file only the columns the export stage uses (:func:`export_columns`, those
    present), without the point geometries.

    A pipeline's voters file has some 36 columns; reading all of them, with a point geometry per voter, costs
    several times more than the whole export at a million voters. The stage's outputs are the same.

    Examples
    --------
    >>> read_export_voters("voters.parquet").columns  # doctest: +SKIP
    """
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    return pd.read_parquet(path, columns=[c for c in export_columns(config) if c in present])


def demo_audiences(voters: pd.DataFrame, *, top_q: float) -> dict[str, pd.DataFrame]:
    """The stage's audiences: ``micro_geo`` (voters in a micro-geography) and ``top`` (the top ``top_q`` share
    by engagement score)."""
    out: dict[str, pd.DataFrame] = {}
    if S.MICRO_GEO in voters.columns:
        mg = voters[S.MICRO_GEO].astype("Int64")
        out["micro_geo"] = voters.loc[(mg >= 0).fillna(False).to_numpy(dtype=bool)]
    if S.ENGAGEMENT_SCORE in voters.columns:
        score = voters[S.ENGAGEMENT_SCORE].astype("float64")
        cut = float(np.nanquantile(score.to_numpy(), 1 - top_q)) if score.notna().any() else np.inf
        out["top"] = voters.loc[(score >= cut).to_numpy(dtype=bool)]
    return out


def export_stage(
    voters: gpd.GeoDataFrame,
    micro_geos: gpd.GeoDataFrame | None,
    precincts: gpd.GeoDataFrame | None,
    out_dir: str | Path,
    config: Config | ExportConfig | None = None,
    *,
    turfs: gpd.GeoDataFrame | None = None,
    population: gpd.GeoDataFrame | str | Path | None = None,
    purpose: str | None = None,
    on_small: str | None = None,
) -> tuple[dict[str, Path], StageRecord]:
    """Write the run's exports into ``out_dir`` (the run folder's ``exports/``) and return the files and a record.

    Geofences (the configured target and formats) of ``precincts`` (residents from their ``TOTPOP`` column when
    present), ``micro_geos`` and ``turfs`` (residents from ``population``, census blocks with ``TOTPOP``, else
    the voters inside: a lower bound); hashed customer lists for each configured platform of two audiences,
    ``micro_geo`` and ``top`` (see :func:`demo_audiences`), with their overlap report. Every export goes through
    the guardrails and appends to ``audit.jsonl``. A refused export (below a minimum, refused purpose) is recorded
    in the metrics with its reason and the run goes on.

    Parameters
    ----------
    voters
        Scored voters (``engagement_score``, ``micro_geo``, identifiers).
    micro_geos, precincts, turfs
        Polygons with ``micro_geo``, ``precinct_id`` and ``turf_id``; any may be ``None``.
    out_dir
        Output folder.
    config
        The run configuration (its ``[export]`` table) or an :class:`ExportConfig`.
    population
        Census blocks (GeoDataFrame or file) with ``TOTPOP`` for residents per micro-geography or turf.
    purpose, on_small
        Override ``[export] purpose`` / ``on_small`` (the demo passes ``"political"`` and ``"skip"``).

    Returns
    -------
    (dict, StageRecord)
        Files by role (``geofences_<source>_<format>``, ``audience_<name>_<platform>``, ``audience_overlap``,
        ``audit``) and the stage record ``export``: rows in = rows out = voters (exports drop nobody from the run);
        ``metrics`` hold per-export counts, suppression counts and refusals.
    """
    t0 = time.perf_counter()
    cfg = config.export if isinstance(config, Config) else (config or ExportConfig())
    purpose = purpose or cfg.purpose
    on_small = on_small or cfg.on_small
    rules = load_rules(cfg.platforms_file)
    out = Path(out_dir)
    suppression = load_suppression(cfg.suppression_files, default_region=cfg.default_region) \
        if cfg.suppression_files else None
    if isinstance(population, str | Path):
        population = gpd.read_parquet(population) if str(population).endswith(".parquet") else gpd.read_file(
            population)
    files: dict[str, Path] = {}
    metrics: dict[str, Any] = {"purpose": purpose, "target": cfg.target, "refused": []}
    limits = {"max_vertices": cfg.max_vertices, "max_fences": cfg.max_fences}
    formats = [f for f in cfg.formats
               if not (f == "zip" and S.ZIP5 not in voters.columns)
               and not (f == "precinct" and S.PRECINCT_ID not in voters.columns)]
    if len(formats) < len(cfg.formats):
        metrics["formats_skipped"] = sorted(set(cfg.formats) - set(formats))
    sources: list[tuple[str, gpd.GeoDataFrame | None, str, dict[str, Any]]] = [
        ("precincts", precincts, S.PRECINCT_ID,
         {"residents_col": "TOTPOP"} if precincts is not None and "TOTPOP" in precincts.columns else {}),
        ("micro_geos", micro_geos, S.MICRO_GEO, {"population": population}),
        ("turfs", turfs, S.TURF_ID, {"population": population}),
    ]
    # the voters bucketed on a grid once, to find the voters inside every layer's fences
    grid = voter_grid(voters) if {S.LAT, S.LNG} <= set(voters.columns) and any(
        frame is not None and len(frame) for _, frame, _, _ in sources) else None
    common: dict[str, Any] = {
        "purpose": purpose, "target": cfg.target, "formats": formats, "voters": voters, "grid": grid,
        "min_residents": cfg.min_residents, "on_small": on_small, "simplify": cfg.simplify,
        "clamp_radius": cfg.clamp_radius, "max_overshoot": cfg.max_overshoot, "max_circles": cfg.max_circles,
        "h3_resolution": cfg.h3_resolution, "suppression": suppression, "default_region": cfg.default_region,
        "limits": limits, "rules": rules, "config": _plain(cfg),
    }
    for label, frame, id_col, extra in sources:
        if frame is None or not len(frame):
            continue
        try:
            res = export_geofences(frame, out, id_col=id_col, name=label, **common, **extra)
        except ExportError as exc:
            metrics["refused"].append({"export": f"geofences {label}", "reason": str(exc)})
            continue
        for fmt, path in res.files.items():
            files[f"geofences_{label}_{fmt}"] = path
        metrics[f"geofences_{label}"] = {"fences_in": res.counts["fences_in"], "fences_out": res.counts["fences_out"],
                                         "refused_small": res.counts["refused_small"],
                                         "residents_method": res.counts["residents_method"],
                                         "min_residents": res.counts["min_residents"]}
        if res.refused:
            metrics["refused"].append({
                "export": f"geofences {label}",
                "reason": f"{len(res.refused)} fences below {res.counts['min_residents']} residents "
                          f"({res.counts['residents_method']}): " + ", ".join(
                              f"{k}: {int(v)}" for k, v in list(res.refused.items())[:10])
                          + (" ..." if len(res.refused) > 10 else ""),
            })
    # the audiences carry the columns customer lists read, not the whole voter file (cheaper slices)
    wanted = set(export_columns(cfg)) - {S.LAT, S.LNG, S.PRECINCT_ID, S.TURF_ID}
    audiences = demo_audiences(voters[[c for c in voters.columns if c in wanted]], top_q=cfg.audience_top_q)
    for platform in cfg.platforms:
        try:
            aud = export_audiences(
                audiences, out, platform=platform, purpose=purpose, default_region=cfg.default_region,
                suppression=suppression, min_audience=cfg.min_audience, exclusive=cfg.exclusive,
                priority=cfg.priority, consent_col=cfg.consent_column, rules=rules,
                on_small="skip" if on_small == "skip" else "error", config=_plain(cfg),
            )
        except ExportError as exc:
            metrics["refused"].append({"export": f"audiences {platform}", "reason": str(exc)})
            continue
        for name, path in aud.files.items():
            files["audience_overlap" if name == "overlap" else f"audience_{name}_{platform}"] = path
        for name, cl in aud.lists.items():
            metrics[f"audience_{name}_{platform}"] = cl.counts
        for name, reason in aud.refused.items():
            metrics["refused"].append({"export": f"audience {name} {platform}", "reason": reason})
        if len(aud.overlap):
            metrics["overlap"] = aud.overlap.to_dict(orient="records")
    if (out / "audit.jsonl").exists():
        files["audit"] = out / "audit.jsonl"
    n = len(voters)
    record = StageRecord("export", rows_in=n, rows_out=n, rows_rejected=0,
                         seconds=round(time.perf_counter() - t0, 3), metrics=metrics)
    return files, record


def _plain(cfg: ExportConfig) -> Mapping[str, Any]:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
