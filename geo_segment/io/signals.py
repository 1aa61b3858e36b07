"""Engagement signals (pings, event check-ins, RSVPs, web visits, ...): read, check, quarantine, deduplicate.

:func:`read_signals` reads a comma-separated file (through :func:`~geo_segment.io.delimited.read_delimited`, so every
row keeps its physical line number) or a Parquet file, and returns a GeoDataFrame of points in EPSG:4326.

Accounting
----------
Every input row ends in exactly one place::

    rows_in == len(signals) + len(rejects) + duplicates_removed

``rejects`` holds the quarantined rows (bad field count, unparseable timestamp, unknown kind, missing, NaN, infinite
or out-of-range coordinates, the (0, 0) "Null Island" of failed geocodes, bad weights), one row per input row with
its line and every reason. Exact duplicates are not rejects: they are dropped with a stated reason and counted in
``stage.metrics["duplicates_removed"]`` and ``stage.rows_dropped``, so ``stage.rows_rejected`` counts quarantined
rows only and ``stage.balanced`` holds.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer

from geo_segment import schema as S
from geo_segment._vector import per_distinct
from geo_segment.errors import (
    ConfigError,
    GeoSegmentWarning,
    InputFileError,
    Location,
    MissingColumnsError,
)
from geo_segment.io.coords import check_projected, check_swapped, coordinate_problems, to_float64
from geo_segment.io.delimited import read_delimited
from geo_segment.io.manifest import StageRecord

__all__ = ["KIND_ALIASES", "SignalRead", "read_signals"]

log = logging.getLogger(__name__)

_WHAT = "signals file"
_PARQUET_SUFFIXES = (".parquet", ".pq")

#: Accepted spellings of each signal kind, after lower-casing and turning runs of spaces and hyphens into ``_``.
KIND_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{k: k for k in S.SIGNAL_KINDS},
        "mobile_ping": "ping",
        "location_ping": "ping",
        "gps_ping": "ping",
        "checkin": "event_checkin",
        "check_in": "event_checkin",
        "event_check_in": "event_checkin",
        "event_attendance": "event_checkin",
        "event_rsvp": "rsvp",
        "web": "web_visit",
        "website_visit": "web_visit",
        "site_visit": "web_visit",
        "page_view": "web_visit",
        "pageview": "web_visit",
        "donate": "donation",
        "contribution": "donation",
        "canvass": "canvass_contact",
        "door_knock": "canvass_contact",
        "doorknock": "canvass_contact",
    }
)

#: Accepted column names (case-insensitive) for each schema column.
_COLUMN_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        S.TIMESTAMP: (S.TIMESTAMP,),
        S.KIND: (S.KIND,),
        S.LAT: (S.LAT, "latitude"),
        S.LNG: (S.LNG, "lon", "long", "longitude"),
        S.WEIGHT: (S.WEIGHT,),
        S.VOTER_ID: (S.VOTER_ID,),
        S.DEVICE_ID: (S.DEVICE_ID,),
    }
)
_REQUIRED = (S.TIMESTAMP, S.KIND, S.LAT, S.LNG)
_DEDUP_KEY = [S.TIMESTAMP, S.KIND, S.LAT, S.LNG, S.VOTER_ID, S.DEVICE_ID]
_NAN_WORDS = ("nan", "-nan", "+nan")


@dataclass
class SignalRead:
    """The result of :func:`read_signals`.

    Attributes
    ----------
    signals
        GeoDataFrame in EPSG:4326: ``timestamp`` (datetime64, UTC), ``kind`` (string, one of
        :data:`~geo_segment.schema.SIGNAL_KINDS`), ``lat``, ``lng``, ``weight`` (float64), ``voter_id``,
        ``device_id`` (string, may be null), ``source_line`` (Int64), ``geometry`` (Point). RangeIndex.
    rejects
        Quarantined rows: ``file``, ``line``, ``scope``, ``column`` (the first column at fault), ``reason``.
    stage
        StageRecord ``"signals"``; ``rows_rejected`` counts quarantined rows only, duplicates are in
        ``metrics["duplicates_removed"]``.
    """

    signals: gpd.GeoDataFrame
    rejects: pd.DataFrame
    stage: StageRecord


# --- reading ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    table: pd.DataFrame  # source columns plus source_line
    rejects: pd.DataFrame
    rows_in: int


def _read_raw(path: Path, encoding: str) -> _Raw:
    if path.suffix.lower() not in _PARQUET_SUFFIXES:
        read = read_delimited(path, delimiter=",", header=True, encoding=encoding, what=_WHAT)
        return _Raw(read.table, read.rejects, read.rows_in)
    if not path.exists():
        raise InputFileError(f"{_WHAT} not found", where=Location(path), fix="check the path")
    try:
        table = pd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise InputFileError(
            f"{_WHAT} cannot be read as Parquet: {exc}", where=Location(path), fix="check the file"
        ) from None
    if len(table) == 0:
        raise InputFileError(
            f"{_WHAT} has no rows",
            where=Location(path),
            expected="at least one row",
            found=f"0 rows, columns {list(map(str, table.columns))}",
            fix="check the export finished",
        )
    table = table.reset_index(drop=True)
    table[S.SOURCE_LINE] = pd.array(np.arange(1, len(table) + 1), dtype="Int64")
    return _Raw(table, S.empty_rejects(), len(table))


def _resolve_columns(columns: list[str], path: Path) -> dict[str, str]:
    """Map schema column -> source column, accepting aliases case-insensitively."""
    found: dict[str, str] = {}
    for target, aliases in _COLUMN_ALIASES.items():
        hits = [c for c in columns if c.strip().lower() in aliases]
        if len(hits) > 1:
            raise InputFileError(
                f"{_WHAT} has several columns for {target!r}: {hits}",
                where=Location(path, 1),
                expected=f"one of {list(aliases)}",
                found=f"{hits}",
                fix="drop or rename all but one of them",
            )
        if hits:
            found[target] = hits[0]
    missing = [c for c in _REQUIRED if c not in found]
    if missing:
        wanted = [" or ".join(_COLUMN_ALIASES[c]) for c in _REQUIRED]
        hint = ""
        if len(columns) == 1:
            seps = [name for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")) if sep in columns[0]]
            hint = f"; the header looks {seps[0]}-delimited, signals files are comma-separated" if seps else ""
        raise MissingColumnsError(
            f"{_WHAT} lacks columns {missing}{hint}",
            where=Location(path, 1),
            expected=f"columns {wanted} (weight, voter_id, device_id optional)",
            found=f"{len(columns)} columns {columns}",
            fix="rename the columns, or save the file as comma-separated UTF-8",
        )
    return found


# --- parsing ------------------------------------------------------------------------------------------------------


@dataclass
class _Faults:
    """Collects per-row faults: the first column at fault and every reason, vectorized over checks."""

    column: pd.Series
    reason: pd.Series

    @classmethod
    def empty(cls, index: pd.Index) -> _Faults:
        return cls(pd.Series(pd.NA, index=index, dtype="string"), pd.Series("", index=index, dtype="string"))

    def add(self, mask: pd.Series | np.ndarray, column: str, reason: str | pd.Series) -> None:
        flags = np.asarray(mask, dtype=bool)
        if not flags.any():  # most checks find nothing: skip the string work
            return
        mask = pd.Series(flags, index=self.reason.index)
        joined = self.reason.where(self.reason == "", self.reason + "; ") + reason
        self.reason = self.reason.mask(mask, joined)
        self.column = self.column.mask(mask & self.column.isna(), column)

    @property
    def bad(self) -> np.ndarray:
        return (self.reason != "").to_numpy(dtype=bool)


def _timestamps(raw: pd.Series, faults: _Faults) -> pd.Series:
    """Parse ISO 8601 timestamps to UTC (naive ones are UTC), recording missing and unparseable ones."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        parsed = raw.dt.tz_localize("UTC")
    else:
        parsed = pd.to_datetime(raw.astype("string"), format="ISO8601", utc=True, errors="coerce")
    missing = raw.isna()
    faults.add(missing, S.TIMESTAMP, "timestamp missing")
    faults.add(~missing & parsed.isna(), S.TIMESTAMP, "timestamp not ISO 8601")
    return parsed


def _kinds(raw: pd.Series, faults: _Faults) -> pd.Series:
    """Map kinds and their aliases (case-insensitive) to :data:`~geo_segment.schema.SIGNAL_KINDS`."""
    # text columns (CSV) are mapped one distinct value at a time
    kind = (per_distinct(raw, _kind_of) if _is_text(raw) else _kind_of(raw)).astype("string")
    missing = raw.isna()
    faults.add(missing, S.KIND, "kind missing")
    unknown_rows = (~missing & kind.isna()).to_numpy(dtype=bool)
    if unknown_rows.any():
        text = raw[unknown_rows].astype("string")
        unknown = "unknown kind '" + text.str.slice(0, 40) + f"' (expected one of {list(S.SIGNAL_KINDS)} or an alias)"
        faults.add(unknown_rows, S.KIND, unknown.reindex(raw.index))
    return kind


def _kind_of(raw: pd.Series) -> pd.Series:
    key = raw.astype("string").str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)
    return key.map(dict(KIND_ALIASES))


def _is_text(raw: pd.Series) -> bool:
    return isinstance(raw.dtype, pd.StringDtype) and raw.dtype.storage == "pyarrow"


def _floats(raw: pd.Series) -> np.ndarray:
    if _is_text(raw):
        return to_float64(raw)  # Arrow's parser, pandas' results
    return np.array(pd.to_numeric(raw, errors="coerce"), dtype="float64")  # a writable copy


def _coordinates(
    table: pd.DataFrame, cols: dict[str, str], path: Path, crs: str | None, faults: _Faults
) -> tuple[pd.Series, pd.Series]:
    """Parse, check (shared rules of :mod:`geo_segment.io.coords`) and, with ``crs``, reproject lat/lng."""
    raw_lat, raw_lng = table[cols[S.LAT]], table[cols[S.LNG]]
    lat, lng = _floats(raw_lat), _floats(raw_lng)
    if crs is None:
        check_projected(lat, lng, file=path, what=_WHAT)
        check_swapped(lat, lng, file=path, what=_WHAT, lines=table[S.SOURCE_LINE].to_numpy(), column=S.LAT)
    else:
        ok = np.isfinite(lat) & np.isfinite(lng)
        transformer = Transformer.from_crs(crs, S.CRS_STORAGE, always_xy=True)
        lng[ok], lat[ok] = transformer.transform(lng[ok], lat[ok])
        # judge the reprojected degrees; values that were no finite number stay as read, to be named as such
        raw_lat = raw_lat.astype(object).where(~ok, pd.Series(lat, index=raw_lat.index, dtype=object))
        raw_lng = raw_lng.astype(object).where(~ok, pd.Series(lng, index=raw_lng.index, dtype=object))
    problems = coordinate_problems(raw_lat, raw_lng)
    problems = problems.mask((raw_lat.isna() & raw_lng.isna()).to_numpy(), "no coordinates (lat and lng missing)")
    bad = problems.notna().to_numpy()
    faults.add(bad, S.LAT, problems.where(bad, "").astype("string"))
    return pd.Series(lat, index=table.index), pd.Series(lng, index=table.index)


def _weights(table: pd.DataFrame, cols: dict[str, str], default: float, faults: _Faults) -> pd.Series:
    """Parse weights; a blank (null) weight takes ``default``, a bad one quarantines the row."""
    if S.WEIGHT not in cols:
        return pd.Series(default, index=table.index, dtype="float64")
    raw = table[cols[S.WEIGHT]]
    values = pd.Series(_floats(raw), index=table.index)
    given = raw.notna().to_numpy()
    number = values.notna().to_numpy()
    nan_text = np.zeros(len(raw), dtype=bool)  # spellings of NaN, looked for among the values that did not parse
    unparsed = given & ~number
    if unparsed.any():
        nan_text[unparsed] = (raw[unparsed].astype("string").str.strip().str.lower().isin(_NAN_WORDS)
                              .fillna(False).to_numpy(dtype=bool))
    faults.add(given & ~number & ~nan_text, S.WEIGHT, "weight is not a number")
    faults.add(given & (nan_text | np.isinf(values.to_numpy())), S.WEIGHT, "weight is NaN or infinite")
    faults.add(given & (values < 0).to_numpy() & np.isfinite(values.to_numpy()), S.WEIGHT, "weight is negative")
    return values.mask(~given, default)


def _ids(table: pd.DataFrame, cols: dict[str, str], name: str) -> pd.Series:
    if name not in cols:
        return pd.Series(pd.NA, index=table.index, dtype="string")
    values = table[cols[name]]
    if pd.api.types.is_integer_dtype(values.dtype):
        values = values.astype("Int64")
    return values.astype("string")


# --- public -------------------------------------------------------------------------------------------------------


def read_signals(
    path: str | os.PathLike[str],
    *,
    encoding: str = "utf-8",
    default_weight: float = 1.0,
    crs: str | None = None,
) -> SignalRead:
    """Read engagement signals, quarantine bad rows, drop exact duplicates and build points in EPSG:4326.

    Parameters
    ----------
    path
        A comma-separated file with a header (any other suffix than ``.parquet``/``.pq``) or a Parquet file.
        Columns (names case-insensitive): ``timestamp`` (ISO 8601; naive means UTC), ``kind`` (one of
        :data:`~geo_segment.schema.SIGNAL_KINDS` or an alias in :data:`KIND_ALIASES`, e.g. ``"Event check-in"``),
        ``lat`` (or ``latitude``), ``lng`` (or ``lon``, ``long``, ``longitude``), and optionally ``weight``,
        ``voter_id``, ``device_id``. Other columns are ignored (listed in the stage metrics).
    encoding
        Encoding of a CSV file: strict ``utf-8`` (a BOM is accepted) or a codec name such as ``latin-1``.
    default_weight
        Weight of rows without a ``weight`` column or with a blank (null) weight.
    crs
        CRS of projected coordinates (``lng`` read as x, ``lat`` as y), reprojected with ``always_xy=True``.
        ``None`` (default) means the columns hold degrees.

    Returns
    -------
    SignalRead
        ``signals``: GeoDataFrame (EPSG:4326, RangeIndex) with ``timestamp`` (datetime64, UTC), ``kind``
        (string), ``lat``, ``lng``, ``weight`` (float64), ``voter_id``, ``device_id`` (string), ``source_line``
        (Int64: the physical line in a CSV file, the 1-based row number in a Parquet file) and ``geometry``
        (Point). ``rejects``: ``file``, ``line``, ``scope`` (``"row"``), ``column`` (first column at fault),
        ``reason`` (every fault, ``"; "``-separated), one row per quarantined input row. Reasons: ``timestamp
        missing`` / ``not ISO 8601``, ``kind missing`` / ``unknown kind '...'``, the shared coordinate reasons of
        :func:`geo_segment.io.coords.coordinate_problems` (not a number, NaN or infinite, out of range, only one
        given, (0, 0) "Null Island": a failed geocode) plus ``no coordinates``, ``weight is not a number`` /
        ``NaN or infinite`` / ``negative``, and the field-count faults of ``read_delimited``.
        ``stage``: StageRecord ``"signals"`` with ``rows_in == rows_out + rows_rejected + duplicates_removed``;
        metrics ``duplicates_removed``, ``rejected_by_column``, ``ignored_columns``, ``crs``.

    Raises
    ------
    InputFileError
        Missing, empty or header-only file, a column given twice (``lat`` and ``latitude``), or most coordinates
        looking swapped (|lat| > 90, |lng| <= 90).
    MissingColumnsError
        A required column is missing; the message lists the columns found.
    ProjectedCoordinatesError
        Most coordinates beyond ±1000 and no ``crs``: "values look projected; pass --crs EPSG:xxxx".
    EncodingError
        Bytes invalid in ``encoding``.
    ConfigError
        ``default_weight`` negative or not finite.

    Warns
    -----
    GeoSegmentWarning
        When rows were quarantined (count by column).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = path.write_text("timestamp,kind,lat,lng\\n2024-05-01T10:00:00,checkin,41.82,-71.41\\n")
    >>> read = read_signals(path)
    >>> read.signals[["kind", "lat", "source_line"]].to_dict("list")
    {'kind': ['event_checkin'], 'lat': [41.82], 'source_line': [2]}
    """
    if not np.isfinite(default_weight) or default_weight < 0:
        raise ConfigError("default_weight must be a finite number >= 0", found=f"{default_weight!r}")
    started = time.perf_counter()
    path = Path(path)
    raw = _read_raw(path, encoding)
    table = raw.table
    columns = [str(c) for c in table.columns if c != S.SOURCE_LINE]
    cols = _resolve_columns(columns, path)
    ignored = [c for c in columns if c not in cols.values()]

    faults = _Faults.empty(table.index)
    timestamp = _timestamps(table[cols[S.TIMESTAMP]], faults)
    kind = _kinds(table[cols[S.KIND]], faults)
    lat, lng = _coordinates(table, cols, path, crs, faults)
    weight = _weights(table, cols, default_weight, faults)

    frame = pd.DataFrame(
        {
            S.TIMESTAMP: timestamp,
            S.KIND: kind,
            S.LAT: lat.astype("float64"),
            S.LNG: lng.astype("float64"),
            S.WEIGHT: weight.astype("float64"),
            S.VOTER_ID: _ids(table, cols, S.VOTER_ID),
            S.DEVICE_ID: _ids(table, cols, S.DEVICE_ID),
            S.SOURCE_LINE: table[S.SOURCE_LINE].astype("Int64"),
        }
    )
    bad = faults.bad
    quarantined = S.make_rejects(
        str(path), frame.loc[bad, S.SOURCE_LINE].astype("int64"), faults.reason[bad].tolist(), scope="row"
    )
    quarantined[S.REJECT_COLUMN] = pd.array(faults.column[bad].to_numpy(), dtype="string")
    parts = [r for r in (raw.rejects, quarantined) if len(r)]
    rejects = (
        pd.concat(parts, ignore_index=True).sort_values(S.REJECT_LINE, kind="stable").reset_index(drop=True)
        if parts
        else S.empty_rejects()
    )

    good = frame.loc[~bad]
    dup = good.duplicated(subset=_DEDUP_KEY, keep="first").to_numpy(dtype=bool)
    n_dup = int(dup.sum())
    good = good.loc[~dup].reset_index(drop=True)
    signals = gpd.GeoDataFrame(
        good, geometry=gpd.points_from_xy(good[S.LNG], good[S.LAT], crs=S.CRS_STORAGE), crs=S.CRS_STORAGE
    )
    S.validate_signals(signals, stage="signals")

    by_column = {str(k): int(v) for k, v in rejects[S.REJECT_COLUMN].fillna("(row)").value_counts().items()}
    if len(rejects):
        warnings.warn(
            f"{path}: {len(rejects)} of {raw.rows_in} signal rows quarantined ("
            + ", ".join(f"{k}: {v}" for k, v in by_column.items())
            + f"; first at line {int(rejects[S.REJECT_LINE].iloc[0])})",
            GeoSegmentWarning,
            stacklevel=2,
        )
    if n_dup:
        log.info("%s: removed %d exact duplicate signals (same %s)", path, n_dup, ", ".join(_DEDUP_KEY))
    metrics: dict[str, Any] = {
        "duplicates_removed": n_dup,
        "duplicate_key": list(_DEDUP_KEY),
        "rejected_by_column": by_column,
        "ignored_columns": ignored,
        "crs": crs or S.CRS_STORAGE,
        "note": "rows_in == rows_out + rows_rejected + rows_dropped; exact duplicates are dropped, not rejected",
    }
    stage = StageRecord(
        name="signals",
        rows_in=raw.rows_in,
        rows_out=len(signals),
        rows_rejected=len(rejects),
        seconds=round(time.perf_counter() - started, 3),
        metrics=metrics,
        rows_dropped=n_dup,
    )
    return SignalRead(signals=signals, rejects=rejects, stage=stage)
