"""Small vectorization helpers: work on each distinct value once, then spread the results back."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["STR_DTYPE", "arrow_str", "code_width", "factorize_str", "index_in_str", "is_text_categorical", "isin_str",
           "pack_short_str", "per_distinct", "recode", "count_distinct_u64", "repeated_str", "repeated_str_sorted",
           "plain_text", "side_by_side", "sorted_text_categorical", "take_str", "text_categorical", "text_from_codes",
           "usable_cores"]

A = TypeVar("A")
B = TypeVar("B")

#: pandas' default string dtype (Arrow-backed, NaN for missing), the column contract's ``str``
STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)


def is_text_categorical(values: pd.Series | pd.Index) -> bool:
    """Whether ``values`` is a pandas categorical whose categories are strings (the contract's compact text)."""
    dtype = values.dtype
    return isinstance(dtype, pd.CategoricalDtype) and bool(pd.api.types.is_string_dtype(dtype.categories.dtype))


def arrow_str(values: pd.Series | npt.ArrayLike) -> pa.Array:
    """One contiguous Arrow ``large_string`` array of ``values`` (zero-copy for Arrow-backed strings)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        # a categorical's strings, one per row (the dictionary is decoded: callers wanting codes use them)
        cats = arrow_str(pd.Series(values.cat.categories))
        codes = values.cat.codes.to_numpy().astype(np.int64)
        return cats.take(pa.array(codes, mask=codes < 0))
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
    """Factorize strings with Arrow's hash kernel: codes (int64, -1 for null) and the distinct values.

    A text categorical gives its own codes and categories (no hashing; categories no row uses may be among them).
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        return (values.cat.codes.to_numpy().astype(np.int64),
                pd.Series(cats.astype("str") if not is_text_categorical(values) else cats, dtype="str"))
    arr = pa.array(values.array, from_pandas=True) if len(values) else pa.array([], pa.string())
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    indices = enc.indices
    if indices.null_count:
        codes = pc.fill_null(indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    else:  # no null: one widening copy, no mask and no second pass (fresh memory is slow to fault in)
        codes = indices.to_numpy(zero_copy_only=False).astype(np.int64)
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


def text_from_codes(codes: np.ndarray, values: pd.Series | pa.Array, index: pd.Index | None = None) -> pd.Series:
    """The text categorical whose row ``i`` is ``values[codes[i]]`` (``-1``, or a null value, gives null).

    ``values`` may repeat and need not be sorted: the categories are its distinct non-null strings in sorted
    (code point) order, so sorting or grouping by the categorical orders rows as the strings would.

    Parameters
    ----------
    codes
        Integer positions into ``values``; ``-1`` for null.
    values
        Strings, nulls allowed.
    index
        The index of the result (default: a range).

    Returns
    -------
    pandas.Series
        A ``category`` Series with string categories.

    Examples
    --------
    >>> s = text_from_codes(np.array([1, 0, -1, 2]), pd.Series(["b", "a", "b"], dtype="str"))
    >>> s.tolist(), list(s.cat.categories)
    (['a', 'b', nan, 'b'], ['a', 'b'])
    """
    value_codes, categories = _sorted_distinct(values)
    codes = np.asarray(codes, dtype=np.int64)
    # code -1 looks up the appended -1; the table is as narrow as the result, so the gather writes no 64-bit rows
    lookup = np.append(value_codes, -1).astype(code_width(len(categories)))
    return sorted_text_categorical(lookup[codes], categories, index=index)


def sorted_text_categorical(codes: np.ndarray, categories: pa.Array, index: pd.Index | None = None) -> pd.Series:
    """A text categorical from row codes (``-1`` null) and its categories, which must be distinct and sorted.

    The caller guarantees both (they come from a dictionary, or from sorted distinct hashes): pandas' own check
    hashes every category again (0.3 s for 2M household ids), so it is skipped where pandas allows it.
    """
    width = code_width(len(categories))
    if not pa.types.is_large_string(categories.type):
        categories = categories.cast(pa.large_string())
    cats = pd.Index(pd.arrays.ArrowStringArray(categories, dtype=STR_DTYPE))  # type: ignore[call-arg]
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    dtype = fastpath(cats, False) if fastpath is not None else pd.CategoricalDtype(cats, ordered=False)
    cat = pd.Categorical.from_codes(np.asarray(codes).astype(width, copy=False), dtype=dtype, validate=False)
    return pd.Series(cat, index=index)


def plain_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text categoricals as plain contract strings (other columns shared, not copied).

    For stages that build new text from many columns row by row (walk lists, packets): pandas' own
    ``Categorical.astype(str)`` turns every category into a Python string first (2 s for a stage's ids at 1M
    voters); an Arrow take of the categories is a fraction of that.
    """
    cols = [c for c in frame.columns if is_text_categorical(frame[c])]
    if not cols:
        return frame
    out = frame.copy(deep=False)
    for c in cols:
        out[c] = take_str(pd.Series(frame[c].cat.categories), frame[c].cat.codes.to_numpy(), index=frame.index)
    return out


def text_categorical(values: pd.Series, fn: Callable[[pd.Series], pd.Series] | None = None) -> pd.Series:
    """``values`` (strings or a categorical), passed through ``fn`` per distinct value, as a text categorical.

    Voter files repeat names, cities, codes and dates millions of times: the contract keeps such columns as
    categoricals of sorted strings (one small integer per row), see :func:`text_from_codes`.

    Parameters
    ----------
    values
        Strings or a categorical, nulls allowed.
    fn
        A vectorized function of the distinct values returning as many strings (nulls allowed); ``None`` keeps
        them.

    Returns
    -------
    pandas.Series
        A ``category`` Series with sorted string categories, aligned to ``values``.

    Examples
    --------
    >>> text_categorical(pd.Series([" b", "a", None, "b"]), lambda u: u.str.strip()).tolist()
    ['b', 'a', nan, 'b']
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # (a column read dictionary-encoded): no row is hashed
        uniques = pd.Series(values.cat.categories.astype("str"), dtype="str")
        result = fn(uniques) if fn is not None else uniques
        if len(result) != len(uniques):
            raise ValueError(f"text_categorical: fn returned {len(result)} values for {len(uniques)} distinct values")
        value_codes, categories = _sorted_distinct(result.astype("str"))
        return sorted_text_categorical(recode(values.cat.codes.to_numpy(), value_codes, len(categories)),
                                       categories, index=values.index)
    codes, uniques = factorize_str(values)
    result = fn(uniques) if fn is not None else uniques
    if len(result) != len(uniques):
        raise ValueError(f"text_categorical: fn returned {len(result)} values for {len(uniques)} distinct values")
    return text_from_codes(codes, result.astype("str"), index=values.index)


def code_width(n_categories: int) -> type[np.signedinteger]:
    """The narrowest signed integer holding codes ``-1 .. n_categories - 1`` (pandas' own choice)."""
    return np.int8 if n_categories < 127 else np.int16 if n_categories < 32767 else np.int32 if (
        n_categories < 2**31 - 1) else np.int64


def recode(codes: np.ndarray, value_codes: np.ndarray, n_categories: int) -> np.ndarray:
    """``value_codes[codes]`` (``-1`` stays ``-1``) in the narrowest code width.

    A categorical's codes are narrow integers: numpy would widen millions of them to 64-bit positions before
    gathering (and write 64-bit results); Arrow's take reads them as they are, in one call that releases Python's
    lock. The codes move up by one so that ``-1`` takes the ``-1`` put first; the result is a writable copy of
    Arrow's (a narrow one).
    """
    width = code_width(n_categories)
    lookup = pa.array(np.concatenate([[-1], np.asarray(value_codes, dtype=np.int64)]).astype(width))
    codes = np.asarray(codes)
    if not len(codes):
        return np.empty(0, dtype=width)
    if codes.dtype.itemsize < 8 and len(value_codes) >= np.iinfo(codes.dtype).max:  # no room for the shift
        codes = codes.astype(code_width(len(value_codes) + 1))
    taken = pc.take(lookup, pa.array(codes + codes.dtype.type(1)))
    return np.array(taken.to_numpy(zero_copy_only=False))  # writable (pandas may set values in place)


def _sorted_distinct(values: pd.Series | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Each value's position among the distinct non-null values in sorted (code point) order (``-1`` for null),
    and those sorted values."""
    arr = values if isinstance(values, pa.Array) else arrow_str(values)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    enc = pc.dictionary_encode(arr)
    dictionary = enc.dictionary
    order = pc.sort_indices(dictionary).to_numpy(zero_copy_only=False)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    sub = pc.fill_null(enc.indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    value_codes = np.where(enc.indices.is_null().to_numpy(zero_copy_only=False), -1,
                           rank[sub] if len(rank) else -1)
    return value_codes, dictionary.take(pa.array(order))


def isin_str(values: pd.Series, other: pd.Series) -> np.ndarray:
    """``values.isin(other)`` for strings with Arrow's hash kernel (pandas' path is ~50x slower on Arrow strings).

    Nulls are never members.
    """
    arr, value_set = arrow_str(values), arrow_str(other.dropna())
    member = pc.is_in(arr, value_set=value_set, skip_nulls=True)
    return pc.fill_null(member, False).to_numpy(zero_copy_only=False)


def _chunks(values: pd.Series | pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    if isinstance(values, pd.Series):
        values = pa.array(values.array, from_pandas=True) if len(values) else pa.array([], pa.large_string())
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def _pack_chunk(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    n = len(chunk)
    _, offsets_buf, data_buf = chunk.buffers()
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width, count=n + 1, offset=chunk.offset * np.dtype(width).itemsize)
    offsets = offsets.astype(np.int64, copy=False)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    valid = (np.ones(n, dtype=bool) if chunk.null_count == 0
             else chunk.is_valid().to_numpy(zero_copy_only=False))
    if chunk.null_count:
        lengths[~valid] = 0
    longest = int(lengths.max()) if n else 0
    if longest > 8:
        return None
    used = data[offsets[0]: offsets[-1]] if n else data[:0]
    if used.size and not used.all():  # a NUL byte: "A" and "A\0" would pack alike
        return None
    if n and longest and chunk.null_count == 0 and int(lengths.min()) == longest:
        # fixed width (ids usually are): the bytes are already an n x width matrix
        mat = np.zeros((n, 8), dtype=np.uint8)
        mat[:, :longest] = used.reshape(n, longest)
        return mat.view(">u8").ravel().astype(np.uint64), valid
    keys = np.zeros(n, dtype=np.uint64)
    starts = offsets[:-1]
    for j in range(longest):
        has = lengths > j
        keys[has] |= data[starts[has] + j].astype(np.uint64) << np.uint64(8 * (7 - j))
    return keys, valid


def pack_short_str(values: pd.Series | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """Pack strings of at most 8 bytes into one ``uint64`` each, so integer hashing can stand in for string hashing.

    The UTF-8 bytes are packed big-endian and padded with zeros: two strings get the same key exactly when they
    are equal, as long as no string holds a NUL byte. Voter ids such as NC's ``AA123456`` fit.

    Parameters
    ----------
    values
        Strings (a pandas Series, or an Arrow string or large_string array), nulls allowed.

    Returns
    -------
    tuple of numpy.ndarray or None
        ``(keys, valid)``: the ``uint64`` keys (0 for nulls and for the empty string) and whether each value is
        not null; ``None`` when a value is longer than 8 bytes or holds a NUL byte (use a string hash then).

    Examples
    --------
    >>> keys, valid = pack_short_str(pd.Series(["AB", "AB", "ABC", None], dtype="str"))
    >>> bool(keys[0] == keys[1]), bool(keys[0] != keys[2]), valid.tolist()
    (True, True, [True, True, True, False])
    """
    parts = []
    for chunk in _chunks(values):
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return None
        packed = _pack_chunk(chunk)
        if packed is None:
            return None
        parts.append(packed)
    if not parts:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([k for k, _ in parts]), np.concatenate([v for _, v in parts])


def repeated_str(values: pd.Series) -> np.ndarray:
    """Whether each value occurs more than once (``values.duplicated(keep=False)`` for non-null strings).

    Short values (see :func:`pack_short_str`) are hashed as integers, others by Arrow's string hash.
    """
    packed = pack_short_str(values)
    if packed is not None:
        codes = pd.factorize(packed[0])[0]
    else:
        codes = factorize_str(values)[0]
    if not len(codes):
        return np.zeros(0, dtype=bool)
    if (codes < 0).any():
        raise ValueError("repeated_str: values must not be null")
    return np.bincount(codes)[codes] > 1


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it, else the CPU count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def side_by_side(first: Callable[[], A], second: Callable[[], B], *, threaded: bool) -> tuple[A, B]:
    """``(first(), second())``, with ``first`` on a helper thread while this one runs ``second`` when ``threaded``
    (for work that releases Python's lock: numpy, Arrow, shapely); one after the other otherwise."""
    if not threaded:
        return first(), second()
    with ThreadPoolExecutor(1, thread_name_prefix="side-by-side") as helper:
        job = helper.submit(first)
        done = second()
        return job.result(), done


def repeated_str_sorted(values: pd.Series) -> np.ndarray:
    """:func:`repeated_str` by sorting: short values (see :func:`pack_short_str`) are sorted as ``uint64`` keys.

    A sort of integer keys streams through memory where a hash table of millions of keys misses the caches on
    every insert (5M voter ids: about 0.2 s against 1.4 s); when the sorted keys hold no repeat, which is what
    voter files are expected to be, nothing else is computed. Longer values go through :func:`repeated_str`.

    Parameters
    ----------
    values
        Strings without nulls.

    Returns
    -------
    numpy.ndarray
        ``values.duplicated(keep=False)`` as a boolean array.

    Raises
    ------
    ValueError
        When a value is null.

    Examples
    --------
    >>> repeated_str_sorted(pd.Series(["AA1", "AA2", "AA1"], dtype="str")).tolist()
    [True, False, True]
    """
    packed = pack_short_str(values)
    if packed is None:
        return repeated_str(values)
    keys, valid = packed
    if not len(keys):
        return np.zeros(0, dtype=bool)
    if not valid.all():
        raise ValueError("repeated_str: values must not be null")
    if bool(np.all(keys[1:] > keys[:-1])):  # strictly increasing (ids in file order often are): no repeat
        return np.zeros(len(keys), dtype=bool)
    ordered = np.sort(keys)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return np.zeros(len(keys), dtype=bool)
    repeats = np.unique(ordered[1:][same])
    pos = np.minimum(np.searchsorted(repeats, keys), len(repeats) - 1)
    return np.asarray(repeats[pos] == keys)


def count_distinct_u64(keys: np.ndarray) -> int:
    """How many distinct values an integer array holds, by sorting (no hash table).

    Parameters
    ----------
    keys
        Integers (``uint64`` hashes, for example).

    Returns
    -------
    int
        The number of distinct values (0 for an empty array).

    Examples
    --------
    >>> count_distinct_u64(np.array([3, 1, 3, 2], dtype=np.uint64))
    3
    """
    if not len(keys):
        return 0
    ordered = np.sort(keys)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1
