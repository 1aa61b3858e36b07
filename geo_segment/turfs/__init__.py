"""Turfs and walk lists: the universe, doors, balanced contiguous turfs, walking order, lists, packets, results.

See ``docs/turfs.md``.
"""

from geo_segment.turfs.doors import Universe, build_doors, select_universe
from geo_segment.turfs.run import TurfStageResult, turf_stage
from geo_segment.turfs.stage import TurfCut, cut_turfs

__all__ = ["TurfCut", "TurfStageResult", "Universe", "build_doors", "cut_turfs", "select_universe", "turf_stage"]
