"""The geo_segment exception family.

Every exception raised on purpose by geo_segment derives from :class:`GeoSegmentError` and from the built-in
exception a Python user would expect (``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps
working. Messages follow one pattern: what was expected, what was found, where (file, line, column) and how to fix
it. Messages never contain personal data from a voter file: they name rows by line number and columns by name.

Each class carries an ``exit_code`` that the CLI uses (see ``docs/cli.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AudienceTooSmallError",
    "ConfigError",
    "DuplicateVoterError",
    "EncodingError",
    "ExportError",
    "GeoSegmentError",
    "GeoSegmentWarning",
    "GuardrailError",
    "IdentifierError",
    "InputFileError",
    "InputNotFoundError",
    "LimitExceededError",
    "Location",
    "MissingColumnsError",
    "OutputPathError",
    "ProjectedCoordinatesError",
    "SchemaError",
]


@dataclass(frozen=True)
class Location:
    """Where a problem was found: file, physical line (1-based) and column name, each optional."""

    file: str | Path | None = None
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(str(self.file))
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)


class GeoSegmentError(Exception):
    """Base class of every error geo_segment raises on purpose.

    Parameters
    ----------
    what
        One sentence: what went wrong.
    expected, found
        What the code expected and what it found instead.
    where
        The file, line and column concerned.
    fix
        How the user can fix it.
    """

    exit_code: int = 1

    def __init__(
        self,
        what: str,
        *,
        expected: str | None = None,
        found: str | None = None,
        where: Location | None = None,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.expected = expected
        self.found = found
        self.where = where
        self.fix = fix
        super().__init__(self._compose())

    def _compose(self) -> str:
        msg = self.what.rstrip(".")
        if self.where is not None and str(self.where):
            msg = f"{self.where}: {msg}"
        if self.expected is not None:
            msg += f"; expected {self.expected}"
        if self.found is not None:
            msg += f", found {self.found}" if self.expected is not None else f"; found {self.found}"
        if self.fix is not None:
            msg += f". Fix: {self.fix}"
        return msg


class ConfigError(GeoSegmentError, ValueError):
    """A configuration file or option is wrong (unknown key, bad type, bad value)."""

    exit_code = 3


class InputFileError(GeoSegmentError, ValueError):
    """An input file cannot be used as a whole (empty, wrong delimiter, missing columns, unreadable)."""

    exit_code = 4


class InputNotFoundError(InputFileError, FileNotFoundError):
    """An input file does not exist."""


class MissingColumnsError(InputFileError):
    """Columns the layout needs are missing from the file."""


class EncodingError(InputFileError):
    """A file's bytes are not valid in the declared encoding."""


class ProjectedCoordinatesError(InputFileError):
    """Coordinates given as latitude/longitude look like projected metres or feet."""


class DuplicateVoterError(InputFileError):
    """The voter file holds the same voter id on more than one row."""


class SchemaError(GeoSegmentError, ValueError):
    """A (Geo)DataFrame at a stage boundary breaks the column contract."""

    exit_code = 5


class OutputPathError(GeoSegmentError, ValueError):
    """An output name would escape the output folder, or the folder cannot be written."""

    exit_code = 6


class ExportError(GeoSegmentError, ValueError):
    """An export was refused: a platform limit, a minimum size or a privacy / political-ads guardrail."""

    exit_code = 7


class LimitExceededError(ExportError):
    """A geofence breaks a target's limit (vertices, fences per file, radius range)."""


class AudienceTooSmallError(ExportError):
    """An audience or geofence is below its minimum size after deduplication and suppression."""


class GuardrailError(ExportError):
    """A purpose, state rule, EU/EEA consent rule or forbidden column refuses the export."""


class IdentifierError(ExportError):
    """One identifier cannot be normalized for a platform (the message never quotes the value)."""


class GeoSegmentWarning(UserWarning):
    """A recoverable data problem: the run goes on, the problem is logged and counted."""
