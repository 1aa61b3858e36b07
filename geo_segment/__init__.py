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

__all__ = ["__version__"]
