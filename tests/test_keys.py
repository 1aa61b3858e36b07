"""Integer keys of fixed-width ids (geo_segment._keys): exact, and only where they apply."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_segment._keys import dense_codes, direct_span, distinct_points, fixed_width_keys, id_codes, slot_codes


def same_partition(codes: np.ndarray, values: list[str | None]) -> bool:
    """Equal codes exactly for equal values, -1 exactly for nulls."""
    ref, _ = pd.factorize(pd.Series(values, dtype="object"), use_na_sentinel=True)
    if not np.array_equal(codes < 0, ref < 0):
        return False
    ok = ref >= 0
    pairs = pd.DataFrame({"a": codes[ok], "b": ref[ok]}).drop_duplicates()
    return not pairs["a"].duplicated().any() and not pairs["b"].duplicated().any()


def test_counter_ids_are_their_own_codes() -> None:
    codes = id_codes(pd.Series(["H0012", "H0013", None, "H0012", "X0019"], dtype="str"))
    assert codes is not None
    # varying positions: the first ('H'..'X', 17 bytes of range) and the last ('2'..'9', 8): the keys are
    # 8 * (byte - 'H') + (digit - '2'), no factorization: 0, 1, 135, renumbered 0, 1, 2 (135 >= 5 rows)
    keys = fixed_width_keys(pd.Series(["H0012", "H0013", None, "H0012", "X0019"], dtype="str"))
    assert keys is not None and keys[0].tolist() == [0, 1, 0, 0, 16 * 8 + 7] and keys[2] == 17 * 8
    assert codes.tolist() == [0, 1, -1, 0, 2]


def test_project_ids_sixteen_hex_digits_fit_64_bits() -> None:
    digits = "0123456789abcdef"
    # every hex digit at every position (rotations): byte ranges '0'..'f' would need 55**16 keys, ranks need 16**16
    values = ["h" + "".join(digits[(i + k) % 16] for k in range(16)) for i in range(16)] + ["h" + "f" * 16]
    keys = fixed_width_keys(pd.Series(values, dtype="str"))
    assert keys is not None
    assert keys[2] == 2**64 and keys[0].dtype == np.uint64
    assert same_partition(id_codes(pd.Series(values, dtype="str")), values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (["AB1", "AB12"], "two widths"),
        (["", ""], "empty ids"),
        (["x" * 65, "y" * 65], "wider than 64 bytes"),
    ],
)
def test_where_keys_do_not_apply(values: list[str], why: str) -> None:
    assert fixed_width_keys(pd.Series(values, dtype="str")) is None
    assert id_codes(pd.Series(values, dtype="str")) is None


def test_too_many_distinct_bytes_per_position_falls_back() -> None:
    # 12 positions each holding 60 distinct bytes (rotations): 60**12 > 2**64
    alphabet = [chr(c) for c in range(40, 100)]
    values = ["".join(alphabet[(i + k) % 60] for k in range(12)) for i in range(60)]
    assert fixed_width_keys(pd.Series(values, dtype="str")) is None


def test_categorical_ids_give_category_codes() -> None:
    s = pd.Series(pd.Categorical(["b", None, "a", "b"]))
    assert id_codes(s).tolist() == [1, -1, 0, 1]  # type: ignore[union-attr]


def test_arrow_input_and_chunks() -> None:
    arr = pa.chunked_array([pa.array(["b01", None]), pa.array(["b02", "b01"])], pa.string())
    keys = fixed_width_keys(arr)
    assert keys is not None
    k, valid, span = keys
    assert valid.tolist() == [True, False, True, True] and k[0] == k[3] != k[2] and span == 2


def test_direct_codes_only_for_small_spans() -> None:
    n = 1000
    big = [f"{i * 7919:012d}" for i in range(n)]  # span about 10**9: slot codes, not the keys themselves
    codes = id_codes(pd.Series(big, dtype="str"))
    assert codes is not None and codes.max() < 2048 + n and direct_span(n) == 2**22
    assert same_partition(codes, big)  # type: ignore[arg-type]


ids = st.lists(
    st.one_of(
        st.none(),
        st.text(alphabet=st.sampled_from("09AFaf-xé"), min_size=6, max_size=6),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ids)
def test_keys_equal_exactly_when_ids_equal(values: list[str | None]) -> None:
    """Property: one key per distinct id; any width in bytes (é is two), nulls at -1; None only when widths differ."""
    series = pd.Series(values, dtype="str")
    codes = id_codes(series)
    widths = {len(v.encode()) for v in values if v is not None}
    if len(widths) > 1:
        assert codes is None
        return
    assert codes is not None
    assert same_partition(codes, values)


points = st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.5, -71.4, 41.8, 1e-300]),
                            st.sampled_from([0.0, 2.5, 41.8, -33.9])), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(points)
def test_distinct_points_rebuild_every_point(pairs: list[tuple[float, float]]) -> None:
    """Property: each point's pair is the first point with its exact coordinates (bit for bit); None only when the
    pairs are too many to pay (over 60 % of the points)."""
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    got = distinct_points(x, y, min_points=1)
    keys = [(np.float64(a).tobytes(), np.float64(b).tobytes()) for a, b in pairs]
    n_distinct = len(set(keys))
    if got is None:
        assert n_distinct > 0.6 * len(pairs)
        return
    codes, first = got
    assert len(first) == n_distinct
    assert np.array_equal(x[first][codes], x) and np.array_equal(y[first][codes], y)
    assert all(keys[first[c]] == k for c, k in zip(codes, keys, strict=True))
    assert all(keys.index(keys[f]) == f for f in first)  # each pair's first occurrence


def test_distinct_points_skip_small_and_mostly_distinct_inputs() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, 300_000), rng.uniform(0, 1, 300_000)
    assert distinct_points(x, y) is None  # all distinct: the sample says so, nothing is hashed
    assert distinct_points(x[:10], y[:10]) is None  # below min_points
    rep = np.repeat(np.arange(50_000, dtype=np.float64), 4)  # 200,000 points at 50,000 places
    codes, first = distinct_points(rep, rep * 2)  # type: ignore[misc]
    assert len(first) == 50_000 and np.array_equal(rep[first][codes], rep)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 3, 2**63, 2**64 - 1, 12345678901234567890, 99]), min_size=0, max_size=200))
def test_slot_codes_equal_exactly_when_keys_equal(values: list[int]) -> None:
    """Property: one code per distinct key whatever the slots they hash to (tiny tables force lost slots)."""
    keys = np.array(values, dtype=np.uint64)
    codes = slot_codes(keys)
    assert len(codes) == len(keys)
    assert same_partition(codes, [str(v) for v in values])
    assert (codes >= 0).all()


def test_slot_codes_on_many_random_keys() -> None:
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 2**63, 20_000).astype(np.uint64)[rng.integers(0, 20_000, 50_000)]
    codes = slot_codes(keys)
    ref = pd.factorize(keys)[0]
    assert len(np.unique(codes)) == len(np.unique(ref))
    assert len(pd.unique(codes.astype(np.int64) * 10**6 + ref)) == len(np.unique(ref))
    assert codes.max() < 2**17 + 20_000  # the table (2 * 50,000 rounded up) and the lost keys after it


def test_a_byte_the_sample_missed_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes each position holds are found on a sample of rows: a byte only in unsampled rows sends that
    position to a count over every row, and the keys stay exact."""
    import geo_segment._keys as K

    monkeypatch.setattr(K, "_ALPHABET_SAMPLE", 2)  # every 50th row of 100
    digits = "0123456789abcdef"
    values = ["h" + "".join(digits[(i + k) % 16] for k in range(16)) for i in range(99)] + ["hzzzzzzzzzzzzzzzz"]
    # 'z' only in the last row, never sampled; 17 bytes at every position: 17**16 > 2**64, so no keys at all
    assert K.fixed_width_keys(pd.Series(values, dtype="str")) is None
    values = [v[:16] for v in values[:-1]] + ["h0123456789abcdz"]  # 15 hex positions; one unsampled 'z', last
    keys = K.fixed_width_keys(pd.Series(values, dtype="str"))
    assert keys is not None and keys[2] == 16**14 * 17  # the last position holds 17 bytes, found on every row
    assert same_partition(K.id_codes(pd.Series(values, dtype="str")), values)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-1, 10**9), max_size=60))
def test_dense_codes_renumber_in_order(values: list[int]) -> None:
    """Property: the same partition, -1 kept, codes 0..k-1 in the order of the original codes."""
    codes = np.array(values, dtype=np.int64)
    dense = dense_codes(codes)
    assert np.array_equal(dense < 0, codes < 0)
    kept = sorted({v for v in values if v >= 0})
    assert dense[codes >= 0].tolist() == [kept.index(v) for v in values if v >= 0]
