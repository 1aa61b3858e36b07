"""Coordinate checks shared by every reader: projected values, range, non-finite values and Null Island."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo_segment.errors import Location, ProjectedCoordinatesError

__all__ = ["NULL_ISLAND_DEGREES", "PROBLEMS", "check_projected", "check_swapped", "coordinate_codes",
           "coordinate_problems", "parse_coordinates", "to_float64"]

#: points within this many degrees of (0, 0) are failed geocodes, never real places
NULL_ISLAND_DEGREES = 0.01


# comparisons instead of absolute values: a state's coordinates make no 40 MB temporaries (NaN fails every test)

def _beyond(a: np.ndarray, limit: float) -> np.ndarray:
    """``|a| > limit``."""
    out = a > limit
    out |= a < -limit
    return out


def _within(a: np.ndarray, limit: float) -> np.ndarray:
    """``|a| <= limit``."""
    out = a >= -limit
    out &= a <= limit
    return out


def _near_zero(a: np.ndarray, limit: float) -> np.ndarray:
    """``|a| < limit``."""
    out = a > -limit
    out &= a < limit
    return out


def check_projected(lat: np.ndarray, lng: np.ndarray, *, file: str | Path, what: str) -> None:
    """Raise when most coordinates are far beyond degrees, as projected metres or feet are.

    Raises
    ------
    ProjectedCoordinatesError
        "values look projected; pass --crs EPSG:xxxx" with the file and a sample magnitude.
    """
    finite = np.isfinite(lat) & np.isfinite(lng)
    n_finite = int(np.count_nonzero(finite))
    if not n_finite:
        return
    # whole arrays, no masked copies (NaN compares false; an infinite value is not finite, so it is masked out)
    big = _beyond(lat, 1000) | _beyond(lng, 1000)
    big &= finite
    n_big = int(np.count_nonzero(big))
    if n_big * 2 > n_finite:
        sample = float(np.nanmedian(np.abs(lat[finite])))
        raise ProjectedCoordinatesError(
            f"{what} coordinates are not degrees: values look projected",
            where=Location(file),
            expected="latitude in [-90, 90] and longitude in [-180, 180]",
            found=f"{n_big} of {n_finite} values beyond 1000 (median |lat| {sample:.0f})",
            fix="pass --crs EPSG:xxxx naming the projection the file uses (for example EPSG:3438)",
        )


def check_swapped(lat: np.ndarray, lng: np.ndarray, *, file: str | Path, what: str,
                  lines: np.ndarray | None = None, column: str | None = None) -> None:
    """Raise when most coordinates look swapped (lat beyond 90 degrees while lng is within): a whole-file problem.

    A few such rows are quarantined as out of range by :func:`parse_coordinates`; a majority means the columns
    are mislabelled, and repairing them silently would hide a wrong mapping.

    ``lines`` (physical line of each value) and ``column`` locate the first swapped row in the message.

    Raises
    ------
    InputFileError
        With the count and the fix (swap the column names).
    """
    from geo_segment.errors import InputFileError

    finite = np.isfinite(lat) & np.isfinite(lng)
    swapped = finite & _beyond(lat, 90) & _within(lat, 180) & _within(lng, 90)
    if finite.any() and swapped.sum() * 2 > finite.sum():
        first = int(np.asarray(lines)[swapped][0]) if lines is not None else None
        raise InputFileError(
            f"{what} latitude and longitude look swapped",
            where=Location(file, first, column),
            expected="latitude within [-90, 90]",
            found=f"{int(swapped.sum())} of {int(finite.sum())} rows with |lat| > 90 and |lng| <= 90",
            fix="map the latitude column to lat and the longitude column to lng (swap them in the mapping/header)",
        )


def coordinate_problems(lat: pd.Series, lng: pd.Series) -> pd.Series:
    """Return, aligned to the input, a reason string for every unusable coordinate pair and null for good ones.

    Missing pairs (both null) are not problems here: callers decide what a missing coordinate means.
    """
    return parse_coordinates(lat, lng)[2]


#: the reasons :func:`coordinate_codes` numbers (code ``i + 1`` is ``PROBLEMS[i]``; ``0`` is no problem)
PROBLEMS = (
    "coordinates at (0, 0) 'Null Island': a failed geocode",
    "coordinates out of range (lat in [-90, 90], lng in [-180, 180])",
    "coordinate is NaN or infinite",
    "only one of lat/lng given",
    "coordinate is not a number",
)


def parse_coordinates(lat: pd.Series, lng: pd.Series) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Parse coordinate text to float64 arrays and give the reason each unusable pair cannot be used.

    Returns
    -------
    lat, lng, reasons
        ``reasons`` is aligned to the input: a string for unusable pairs, null for good or missing ones.
    """
    la, ln, codes = coordinate_codes(lat, lng)
    reasons = np.array((None, *PROBLEMS), dtype=object)[codes]
    return la, ln, pd.Series(reasons, index=lat.index, dtype="object")


def coordinate_codes(lat: pd.Series, lng: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`parse_coordinates` with each pair's reason as a small code (int8): ``0`` for good or missing pairs,
    ``i + 1`` for :data:`PROBLEMS` ``[i]`` (no string per row: 5M geocodes took 0.5 s less)."""
    la = to_float64(lat)
    ln = to_float64(lng)
    raw_lat_present = lat.notna().to_numpy()
    raw_lng_present = lng.notna().to_numpy()
    codes = np.zeros(len(la), dtype=np.int8)
    both_missing = ~raw_lat_present & ~raw_lng_present
    not_number = _not_number(lat, la, raw_lat_present) | _not_number(lng, ln, raw_lng_present)
    one_missing = raw_lat_present != raw_lng_present
    finite = np.isfinite(la) & np.isfinite(ln)
    with np.errstate(invalid="ignore"):
        out_of_range = _beyond(la, 90) | _beyond(ln, 180)
        null_island = _near_zero(la, NULL_ISLAND_DEGREES) & _near_zero(ln, NULL_ISLAND_DEGREES)
    # later assignments win, as the reasons' precedence says
    codes[null_island] = 1
    codes[out_of_range & finite] = 2
    codes[~finite] = 3
    codes[one_missing] = 4
    codes[not_number] = 5
    codes[both_missing] = 0
    return la, ln, codes


def _not_number(raw: pd.Series, parsed: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Present values that did not parse and are no spelling of NaN/inf (the text test runs on those only)."""
    out = present & np.isnan(parsed)
    if out.any():
        if pd.api.types.is_numeric_dtype(raw.dtype):  # parsed as numbers already: a NaN there was spelt NaN
            return np.zeros(len(out), dtype=bool)
        idx = np.flatnonzero(out)
        out[idx] = ~_is_nan_text(raw.iloc[idx])
    return out


def to_float64(values: pd.Series) -> np.ndarray:
    """``pd.to_numeric(values, errors="coerce")`` as float64 (null -> NaN), parsed by Arrow when it can.

    Arrow's correctly rounded parser takes the whole column at once; any text it refuses (blanks around a number,
    words) sends the column through pandas, as does a ``-0`` (pandas reads an all-integer column as integers,
    which have no negative zero). Numeric columns (from Parquet) go straight to pandas.
    """
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_float64(values.dtype.pyarrow_dtype):
        # parsed as numbers by the reader: one copy with NaN for nulls (through pandas it took two)
        out = values.to_numpy(dtype="float64", na_value=np.nan)
        return out if out.flags.writeable else out.copy()
    if len(values) and (isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype) or values.dtype == object):
        try:
            arr = pa.array(values.array, from_pandas=True)
            if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
                out = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
                if not (np.signbit(out) & (out == 0)).any():
                    return np.array(out, dtype="float64")  # writable
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            pass
    return np.array(pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan),
                    dtype="float64")


def _is_nan_text(values: pd.Series) -> np.ndarray:
    text = values.astype("str").str.strip().str.lower()
    return text.isin(["nan", "inf", "-inf", "infinity", "-infinity"]).to_numpy()
