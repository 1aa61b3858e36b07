"""The maps stage of ``geo-segment run`` / ``demo``: every map of the run folder, written into ``maps/``.

Kept here, not in the library, so that ``geo_segment`` never imports folium: the CLI builds the stage list with
:func:`pipeline_stages`.
"""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd

from geo_segment.io.manifest import StageRecord
from geo_segment.runner import StageContext, StageOutput, StageSpec, core_stages

__all__ = ["maps_stage", "pipeline_stages"]


def _run(ctx: StageContext) -> StageOutput:
    import time

    from .builders import build_maps

    t0 = time.perf_counter()

    def geo(name: str) -> gpd.GeoDataFrame | None:
        p = ctx.optional_file(name)
        return gpd.read_parquet(p) if p is not None else None

    cells_path = ctx.optional_file("cells.parquet")
    cells = pd.read_parquet(cells_path) if cells_path is not None else None
    voters_path = ctx.optional_file("voters.parquet")
    voters = None
    if voters_path is not None:
        import pyarrow.parquet as pq

        # the columns the maps' score measures use (map_measures); aggregates only, no personal field is read
        wanted = [c for c in ("precinct_id", "h3_cell", "engagement_score")
                  if c in pq.read_schema(voters_path).names]
        voters = pd.read_parquet(voters_path, columns=wanted)
    doors_path = ctx.optional_file("doors.parquet")
    written = build_maps(ctx.stage_dir / "maps", geo("precincts.parquet"), cells, geo("micro_geos.parquet"),
                         geo("turfs.parquet"), routes=geo("routes.parquet"),
                         doors=pd.read_parquet(doors_path) if doors_path is not None else None, voters=voters,
                         data_date=date.today().isoformat(), k_min=ctx.config.join.k_min)
    record = StageRecord("maps", rows_in=len(written), rows_out=len(written), rows_rejected=0,
                         seconds=round(time.perf_counter() - t0, 3),
                         metrics={"maps": sorted(p.name for p in written),
                                  "bytes": sum(p.stat().st_size for p in written)})
    return StageOutput(records=[record], publish=["maps"])


def maps_stage() -> StageSpec:
    """The maps stage: after turfs, before exports."""
    return StageSpec("maps", _run, sections=("join",), needs=("join", "cluster", "turfs"))


def pipeline_stages() -> list[StageSpec]:
    """The library's stages with the maps stage inserted before the exports."""
    stages = core_stages()
    at = next((i for i, s in enumerate(stages) if s.name == "exports"), len(stages))
    return [*stages[:at], maps_stage(), *stages[at:]]
