"""The column contract: names, dtypes and CRS rules shared by every stage.

Column names are module constants; use them instead of string literals. ``validate_*`` functions check a frame
at a stage boundary, collect *every* problem and raise one :class:`~geo_segment.errors.SchemaError` listing them.

Rules
-----
* Geometry is stored in EPSG:4326 (:data:`CRS_STORAGE`). Distances, areas and clustering use a projected metric
  CRS chosen per dataset (``GeoDataFrame.estimate_utm_crs()``); a CRS mismatch is an error, never a silent
  reprojection.
* H3 cells are ``uint64`` inside the library (:data:`H3_DTYPE`); hex strings appear only in exports.
* ``source_line`` is the physical line (1-based) of the row in its input file, so any row can be traced back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geo_segment._vector import is_text_categorical, pack_short_str
from geo_segment.errors import SchemaError

CRS_STORAGE = "EPSG:4326"
H3_DTYPE = np.dtype("uint64")

# --- voters ---------------------------------------------------------------------------------------------------
VOTER_ID = "voter_id"
LAST_NAME = "last_name"
FIRST_NAME = "first_name"
MIDDLE_NAME = "middle_name"
NAME_SUFFIX = "name_suffix"
ADDRESS = "address"
HOUSE_NUMBER = "house_number"
STREET = "street"
UNIT = "unit"
CITY = "city"
STATE = "state"
ZIP5 = "zip5"
HOUSEHOLD_ID = "household_id"
BUILDING_ID = "building_id"
BIRTH_YEAR = "birth_year"
REGISTRATION_DATE = "registration_date"
PARTY = "party"
STATUS = "status"
COUNTY = "county"
SOURCE_PRECINCT = "source_precinct"
PHONE = "phone"
EMAIL = "email"
LAT = "lat"
LNG = "lng"
GEOCODED = "geocoded"
GEOCODE_SOURCE = "geocode_source"
GEOMETRY = "geometry"
SOURCE_LINE = "source_line"
H3_CELL = "h3_cell"
PRECINCT_ID = "precinct_id"
PRECINCT_METHOD = "precinct_method"
ENGAGEMENT_SCORE = "engagement_score"
PROPENSITY = "propensity"
MICRO_GEO = "micro_geo"
TURF_ID = "turf_id"
DOOR_ORDER = "door_order"

#: Columns holding personal data: never logged, mapped or exported unless the user asks for them.
PERSONAL_COLUMNS = frozenset(
    {LAST_NAME, FIRST_NAME, MIDDLE_NAME, NAME_SUFFIX, ADDRESS, HOUSE_NUMBER, UNIT, PHONE, EMAIL, BIRTH_YEAR}
)

# --- vote history (long form) ---------------------------------------------------------------------------------
ELECTION_DATE = "election_date"
ELECTION_TYPE = "election_type"
VOTED = "voted"
VOTE_METHOD = "method"
BALLOT_PARTY = "ballot_party"
ELECTION_TYPES = ("general", "primary", "presidential_primary", "special", "runoff", "other")
VOTE_METHODS = ("polls", "early", "absentee", "mail", "provisional", "unknown")

# --- signals --------------------------------------------------------------------------------------------------
TIMESTAMP = "timestamp"
KIND = "kind"
WEIGHT = "weight"
DEVICE_ID = "device_id"
SIGNAL_KINDS = ("ping", "event_checkin", "rsvp", "web_visit", "donation", "canvass_contact")

# --- rejects --------------------------------------------------------------------------------------------------
REJECT_FILE = "file"
REJECT_LINE = "line"
REJECT_COLUMN = "column"
REJECT_REASON = "reason"
REJECT_SCOPE = "scope"
#: ``scope`` is ``row`` (the row was not used) or ``field`` (one value was set to null; the row was kept)
REJECT_COLUMNS = (REJECT_FILE, REJECT_LINE, REJECT_SCOPE, REJECT_COLUMN, REJECT_REASON)

# dtype families, checked loosely so pandas' string storage choices do not matter
_STRING = "string"
_FLOAT = "float64"
_INT = "Int64"
_BOOL = "bool"
_DATE = "datetime"
_UINT64 = "uint64"

VOTER_DTYPES: Mapping[str, str] = {
    VOTER_ID: _STRING,
    LAST_NAME: _STRING,
    FIRST_NAME: _STRING,
    MIDDLE_NAME: _STRING,
    NAME_SUFFIX: _STRING,
    ADDRESS: _STRING,
    HOUSE_NUMBER: _STRING,
    STREET: _STRING,
    UNIT: _STRING,
    CITY: _STRING,
    STATE: _STRING,
    ZIP5: _STRING,
    HOUSEHOLD_ID: _STRING,
    BUILDING_ID: _STRING,
    BIRTH_YEAR: _INT,
    REGISTRATION_DATE: _DATE,
    PARTY: _STRING,
    STATUS: _STRING,
    COUNTY: _STRING,
    SOURCE_PRECINCT: _STRING,
    PHONE: _STRING,
    EMAIL: _STRING,
    LAT: _FLOAT,
    LNG: _FLOAT,
    GEOCODED: _BOOL,
    GEOCODE_SOURCE: _STRING,
    SOURCE_LINE: _INT,
    H3_CELL: _UINT64,
    PRECINCT_ID: _STRING,
    PRECINCT_METHOD: _STRING,
    ENGAGEMENT_SCORE: _FLOAT,
    PROPENSITY: _FLOAT,
    MICRO_GEO: _INT,
    TURF_ID: _STRING,
    DOOR_ORDER: _INT,
}

#: Text columns the voter readers hold as categoricals of sorted strings (one small integer per row instead of a
#: string: a state file repeats its names, places, codes and streets millions of times). Every stage accepts them
#: as categoricals or as plain strings; the string family of :data:`VOTER_DTYPES` takes both.
VOTER_CATEGORICAL = (LAST_NAME, FIRST_NAME, MIDDLE_NAME, NAME_SUFFIX, CITY, STATE, STATUS, COUNTY, SOURCE_PRECINCT,
                     ZIP5, PARTY, HOUSE_NUMBER, STREET, UNIT, GEOCODE_SOURCE, HOUSEHOLD_ID, BUILDING_ID)

#: Columns every ingested voter frame carries.
VOTER_REQUIRED = (VOTER_ID, HOUSEHOLD_ID, BUILDING_ID, LAT, LNG, GEOCODED, SOURCE_LINE, GEOMETRY)

HISTORY_DTYPES: Mapping[str, str] = {
    VOTER_ID: _STRING,
    ELECTION_DATE: _DATE,
    ELECTION_TYPE: _STRING,
    VOTED: _BOOL,
    VOTE_METHOD: _STRING,
    BALLOT_PARTY: _STRING,
}
HISTORY_REQUIRED = tuple(HISTORY_DTYPES)

SIGNAL_DTYPES: Mapping[str, str] = {
    TIMESTAMP: _DATE,
    KIND: _STRING,
    LAT: _FLOAT,
    LNG: _FLOAT,
    WEIGHT: _FLOAT,
    VOTER_ID: _STRING,
    DEVICE_ID: _STRING,
    SOURCE_LINE: _INT,
    H3_CELL: _UINT64,
    PRECINCT_ID: _STRING,
}
SIGNAL_REQUIRED = (TIMESTAMP, KIND, LAT, LNG, WEIGHT, SOURCE_LINE, GEOMETRY)

PRECINCT_DTYPES: Mapping[str, str] = {PRECINCT_ID: _STRING}
PRECINCT_REQUIRED = (PRECINCT_ID, GEOMETRY)


@dataclass(frozen=True)
class Problem:
    """One breach of the contract."""

    column: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.column}: {self.message}" if self.column else self.message


def _dtype_ok(series: pd.Series, family: str) -> bool:
    dtype = series.dtype
    if family == _STRING:
        if isinstance(dtype, pd.CategoricalDtype):  # compact text: a categorical of strings
            return is_text_categorical(series)
        return bool(pd.api.types.is_string_dtype(dtype)) and not pd.api.types.is_bool_dtype(dtype)
    if family == _FLOAT:
        return bool(pd.api.types.is_float_dtype(dtype))
    if family == _INT:
        return bool(pd.api.types.is_integer_dtype(dtype))
    if family == _BOOL:
        return bool(pd.api.types.is_bool_dtype(dtype))
    if family == _DATE:
        return bool(pd.api.types.is_datetime64_any_dtype(dtype))
    if family == _UINT64:
        return dtype == H3_DTYPE
    raise AssertionError(family)  # pragma: no cover


def _n_duplicated(values: pd.Series) -> int:
    """``values.dropna().duplicated().sum()``; short strings are hashed as integers (millions of voter ids)."""
    if isinstance(values.dtype, pd.StringDtype):
        packed = pack_short_str(values)
        if packed is not None:
            kept = packed[0][packed[1]]
            return len(kept) - len(pd.unique(kept))
    return int(values.dropna().duplicated().sum())


def check_frame(
    frame: pd.DataFrame,
    *,
    dtypes: Mapping[str, str],
    required: Iterable[str],
    unique: Iterable[str] = (),
    geometry: bool = False,
) -> list[Problem]:
    """Return every contract problem of ``frame`` (empty list when it conforms).

    Parameters
    ----------
    frame
        The (Geo)DataFrame to check.
    dtypes
        Column name to dtype family (``string``, ``float64``, ``Int64``, ``bool``, ``datetime``, ``uint64``),
        checked for the columns present.
    required
        Columns that must be present.
    unique
        Columns whose non-null values must be unique.
    geometry
        Whether the frame must be a GeoDataFrame stored in EPSG:4326.
    """
    problems: list[Problem] = []
    missing = [c for c in required if c not in frame.columns]
    if missing:
        problems.append(Problem(None, f"missing columns {missing}; present: {sorted(map(str, frame.columns))}"))
    for col, family in dtypes.items():
        if col in frame.columns and not _dtype_ok(frame[col], family):
            problems.append(Problem(col, f"expected dtype {family}, found {frame[col].dtype}"))
    for col in unique:
        if col in frame.columns:
            n_dup = _n_duplicated(frame[col])
            if n_dup:
                problems.append(Problem(col, f"{n_dup} duplicated values; values must be unique"))
    if geometry:
        crs = getattr(frame, "crs", None)
        if not hasattr(frame, "geometry"):
            problems.append(Problem(GEOMETRY, "expected a GeoDataFrame with an active geometry column"))
        elif crs is None or not crs.equals(CRS_STORAGE):
            problems.append(Problem(GEOMETRY, f"expected CRS {CRS_STORAGE} at rest, found {crs}"))
    if LAT in frame.columns and _dtype_ok(frame[LAT], _FLOAT):
        bad = ((frame[LAT].abs() > 90) & frame[LAT].notna()).sum()
        if bad:
            problems.append(Problem(LAT, f"{int(bad)} values outside [-90, 90]"))
    if LNG in frame.columns and _dtype_ok(frame[LNG], _FLOAT):
        bad = ((frame[LNG].abs() > 180) & frame[LNG].notna()).sum()
        if bad:
            problems.append(Problem(LNG, f"{int(bad)} values outside [-180, 180]"))
    return problems


def _raise(problems: list[Problem], what: str, stage: str) -> None:
    if problems:
        listing = "; ".join(str(p) for p in problems)
        raise SchemaError(
            f"{what} at stage {stage!r} break the column contract ({len(problems)} problems: {listing})",
            fix="see docs/column-contract.md; build frames with geo_segment's readers",
        )


def validate_voters(frame: pd.DataFrame, *, stage: str = "ingest", extra_required: Iterable[str] = (),
                    ids_checked: bool = False) -> None:
    """Check a voters GeoDataFrame against the contract; raise one SchemaError listing every problem.

    Parameters
    ----------
    frame
        Voters, as returned by :func:`geo_segment.read_voter_file`.
    stage
        Name of the stage boundary, used in the message.
    extra_required
        Columns a later stage adds and requires (for example :data:`H3_CELL`).
    ids_checked
        The caller has just made ``voter_id`` unique (a reader that stops on or quarantines repeats): skip hashing
        millions of ids a second time.

    Raises
    ------
    SchemaError
        When a required column is missing, a dtype is wrong, ``voter_id`` is not unique or the CRS is not
        EPSG:4326.

    Examples
    --------
    >>> import geopandas as gpd
    >>> validate_voters(gpd.GeoDataFrame({"voter_id": ["1"]}, geometry=[None], crs=4326))
    Traceback (most recent call last):
    ...
    geo_segment.errors.SchemaError: voters at stage 'ingest' break the column contract (1 problems: missing ...
    """
    problems = check_frame(
        frame,
        dtypes=VOTER_DTYPES,
        required=(*VOTER_REQUIRED, *extra_required),
        unique=() if ids_checked else (VOTER_ID,),
        geometry=True,
    )
    _raise(problems, "voters", stage)


def validate_history(frame: pd.DataFrame, *, stage: str = "ingest") -> None:
    """Check a long-form vote history frame; raise one SchemaError listing every problem."""
    problems = check_frame(frame, dtypes=HISTORY_DTYPES, required=HISTORY_REQUIRED)
    if ELECTION_TYPE in frame.columns:
        bad = sorted(set(frame[ELECTION_TYPE].dropna().unique()) - set(ELECTION_TYPES))
        if bad:
            problems.append(Problem(ELECTION_TYPE, f"unknown election types {bad}; allowed {ELECTION_TYPES}"))
    _raise(problems, "vote history", stage)


def validate_signals(frame: pd.DataFrame, *, stage: str = "ingest") -> None:
    """Check a signals GeoDataFrame; raise one SchemaError listing every problem."""
    problems = check_frame(frame, dtypes=SIGNAL_DTYPES, required=SIGNAL_REQUIRED, geometry=True)
    if KIND in frame.columns:
        bad = sorted(set(frame[KIND].dropna().unique()) - set(SIGNAL_KINDS))
        if bad:
            problems.append(Problem(KIND, f"unknown kinds {bad}; allowed {SIGNAL_KINDS}"))
    _raise(problems, "signals", stage)


def validate_precincts(frame: pd.DataFrame, *, stage: str = "ingest") -> None:
    """Check a precincts GeoDataFrame; raise one SchemaError listing every problem."""
    problems = check_frame(
        frame, dtypes=PRECINCT_DTYPES, required=PRECINCT_REQUIRED, unique=(PRECINCT_ID,), geometry=True
    )
    _raise(problems, "precincts", stage)


def make_rejects(
    file: str, lines: Iterable[int], reason: str | Iterable[str], *, scope: str = "row", column: str | None = None
) -> pd.DataFrame:
    """Build a rejects frame: one row per line with the same file, scope and column."""
    line_list = [int(x) for x in lines]
    reasons = [reason] * len(line_list) if isinstance(reason, str) else list(reason)
    return pd.DataFrame(
        {
            REJECT_FILE: pd.Series([file] * len(line_list), dtype="string"),
            REJECT_LINE: pd.Series(line_list, dtype="Int64"),
            REJECT_SCOPE: pd.Series([scope] * len(line_list), dtype="string"),
            REJECT_COLUMN: pd.Series([column] * len(line_list), dtype="string"),
            REJECT_REASON: pd.Series(reasons, dtype="string"),
        }
    )


def empty_rejects() -> pd.DataFrame:
    """Return an empty rejects frame with the contract's columns and dtypes."""
    return pd.DataFrame(
        {
            REJECT_FILE: pd.Series([], dtype="string"),
            REJECT_LINE: pd.Series([], dtype="Int64"),
            REJECT_SCOPE: pd.Series([], dtype="string"),
            REJECT_COLUMN: pd.Series([], dtype="string"),
            REJECT_REASON: pd.Series([], dtype="string"),
        }
    )
