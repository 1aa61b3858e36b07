"""geo_segment: geo-segmentation for field campaigns.

The library is a chain of stages over (Geo)DataFrames: ingest (voter files, signals, precincts), join, score,
cluster, turfs, maps and exports. Column names live in :mod:`geo_segment.schema`; errors in
:mod:`geo_segment.errors`.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("geo-segment")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

from geo_segment.config import Config, load_config
from geo_segment.errors import GeoSegmentError, GeoSegmentWarning
from geo_segment.exports.hashing import hash_identifier
from geo_segment.io.precincts import read_precincts
from geo_segment.io.signals import read_signals
from geo_segment.io.voters import read_voter_file
from geo_segment.layouts import load_layout

__all__ = [
    "Config",
    "GeoSegmentError",
    "GeoSegmentWarning",
    "__version__",
    "hash_identifier",
    "load_config",
    "load_layout",
    "read_precincts",
    "read_signals",
    "read_voter_file",
]
