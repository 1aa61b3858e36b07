"""The run record: ``manifest.json`` with inputs' hashes, parameters, versions and per-stage counts."""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from geo_segment.errors import InputNotFoundError, Location
from geo_segment.io.atomic import write_json

__all__ = ["Manifest", "StageRecord", "package_versions", "sha256_file"]

_PACKAGES = ("geo-segment", "numpy", "pandas", "pyarrow", "shapely", "geopandas", "pyogrio", "h3", "usaddress")


def sha256_file(path: str | Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks into one reused buffer (the GIL is released while hashing,
    so threads hash files in parallel)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def package_versions() -> dict[str, str]:
    """Return the versions of Python and of the packages a run depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class StageRecord:
    """Counts and timing of one stage: ``rows_in == rows_out + rows_rejected + rows_dropped``.

    ``rows_rejected`` are quarantined in ``rejects.csv``; ``rows_dropped`` are removed with a reason stated in
    ``metrics`` (exact duplicate signals, for example).
    """

    name: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    rows_dropped: int = 0

    @property
    def balanced(self) -> bool:
        """Whether every input row is accounted for."""
        return self.rows_in == self.rows_out + self.rows_rejected + self.rows_dropped


@dataclass
class Manifest:
    """Accumulates what a command read, how it was configured and what each stage did."""

    command: str
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add_input(self, role: str, path: str | Path) -> None:
        """Record an input file with its size and SHA-256."""
        p = Path(path)
        if not p.is_file():
            raise InputNotFoundError(f"{role} file not found", where=Location(p), fix="check the path")
        self.inputs.append(
            {"role": role, "path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
        )

    def add_stage(self, record: StageRecord) -> None:
        """Record one stage's counts."""
        self.stages.append(record)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as plain JSON-able data."""
        return {
            "command": self.command,
            "started": self.started,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "inputs": self.inputs,
            "parameters": self.parameters,
            "versions": package_versions(),
            "stages": {s.name: {k: v for k, v in asdict(s).items() if k != "name"} for s in self.stages},
            "outputs": sorted(self.outputs),
        }

    def write(self, folder: str | Path) -> Path:
        """Write ``manifest.json`` atomically into ``folder`` and return its path."""
        return write_json(self.to_dict(), Path(folder) / "manifest.json")
