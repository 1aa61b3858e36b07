"""Small vectorization helpers: work on each distinct value once, then spread the results back."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["STR_DTYPE", "arrow_str", "factorize_str", "index_in_str", "isin_str", "per_distinct", "take_str"]

#: pandas' default string dtype (Arrow-backed, NaN for missing), the column contract's ``str``
STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)


def arrow_str(values: pd.Series | npt.ArrayLike) -> pa.Array:
    """One contiguous Arrow ``large_string`` array of ``values`` (zero-copy for Arrow-backed strings)."""
    data = values.array if isinstance(values, pd.Series) else values
    arr = pa.array(data, from_pandas=True) if len(data) else pa.array([], pa.large_string())  # type: ignore[arg-type]
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    return arr


def index_in_str(values: pd.Series | npt.ArrayLike, value_set: pd.Series | npt.ArrayLike) -> np.ndarray:
    """Position of each string of ``values`` in ``value_set`` (int64, ``-1`` when absent or null), hashed by Arrow.

    The first occurrence wins when ``value_set`` repeats a value.
    """
    pos = pc.index_in(arrow_str(values), value_set=arrow_str(value_set))
    return pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def take_str(values: pd.Series | npt.ArrayLike, positions: np.ndarray, index: pd.Index | None = None) -> pd.Series:
    """``values[positions]`` as a contract string Series (``-1`` gives null) without Python string objects."""
    pos = np.asarray(positions, dtype=np.int64)
    taken = pc.take(arrow_str(values), pa.array(pos, mask=pos < 0))
    return pd.Series(pd.arrays.ArrowStringArray(taken, dtype=STR_DTYPE), index=index)  # type: ignore[call-arg]


def factorize_str(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Factorize strings with Arrow's hash kernel: codes (int64, -1 for null) and the distinct values."""
    arr = pa.array(values.array, from_pandas=True) if len(values) else pa.array([], pa.string())
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    codes = np.where(enc.indices.is_null().to_numpy(zero_copy_only=False), -1, codes).astype(np.int64)
    return codes, pd.Series(enc.dictionary.to_pandas(), dtype="str")


def per_distinct(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply a vectorized ``fn`` to the distinct non-null values only and align the result to ``values``.

    Voter files repeat the same dates, ZIPs, party codes and birth years millions of times: this turns a
    per-row parse into a per-distinct-value parse plus one ``take``.
    """
    codes, uniques = factorize_str(values)
    result = fn(uniques)
    if len(result) != len(uniques):
        raise ValueError(f"per_distinct: fn returned {len(result)} values for {len(uniques)} distinct values")
    # ``result.reindex(codes)`` by position, without hashing the codes into an index: -1 (null) gives the
    # missing value of the result's dtype (bool and int become object / float, as reindex makes them)
    missing = codes < 0
    fill = bool(missing.any())
    if isinstance(result.dtype, pd.api.extensions.ExtensionDtype):
        taken = result.array.take(codes, allow_fill=fill)
    else:
        taken = pd.api.extensions.take(result.to_numpy(), codes, allow_fill=fill)
    return pd.Series(taken, index=values.index, name=result.name, dtype=taken.dtype)


def isin_str(values: pd.Series, other: pd.Series) -> np.ndarray:
    """``values.isin(other)`` for strings with Arrow's hash kernel (pandas' path is ~50x slower on Arrow strings).

    Nulls are never members.
    """
    arr, value_set = arrow_str(values), arrow_str(other.dropna())
    member = pc.is_in(arr, value_set=value_set, skip_nulls=True)
    return pc.fill_null(member, False).to_numpy(zero_copy_only=False)
