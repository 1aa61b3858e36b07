"""Compact text columns: categoricals of sorted strings from the readers, accepted by every stage as plain strings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_segment import schema as S
from geo_segment._vector import (
    factorize_str,
    is_text_categorical,
    recode,
    sorted_text_categorical,
    text_categorical,
    text_from_codes,
)
from geo_segment.addresses import parse_addresses
from geo_segment.errors import SchemaError
from geo_segment.io.delimited import read_delimited
from geo_segment.io.voters import read_voter_file

from .conftest import nc_voter

_TEXT = st.one_of(st.none(), st.sampled_from(["", "a", "A", "b", "ab", " b", "é", "Zoë", "z", "10", "9"]))


def _plain(values: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in values.astype(object)]


def test_text_from_codes_by_hand() -> None:
    s = text_from_codes(np.array([2, 0, -1, 1, 3]), pd.Series(["b", "a", "b", None], dtype="str"))
    assert _plain(s) == ["b", "b", None, "a", None]
    assert list(s.cat.categories) == ["a", "b"]  # distinct, sorted; the null value is no category
    assert is_text_categorical(s)


@settings(max_examples=150, deadline=None)
@given(st.lists(_TEXT, max_size=40))
def test_text_categorical_keeps_values_and_sorts_like_strings(values: list[str | None]) -> None:
    plain = pd.Series(values, dtype="str")
    cat = text_categorical(plain)
    assert _plain(cat) == _plain(plain)
    cats = list(cat.cat.categories)
    assert cats == sorted(set(v for v in values if v is not None))
    # sorting and grouping by the categorical order rows as the strings do
    assert cat.sort_values(kind="stable").index.tolist() == plain.sort_values(kind="stable").index.tolist()
    codes, uniques = factorize_str(cat)
    assert [None if c < 0 else uniques.iloc[c] for c in codes] == _plain(plain)


def test_text_categorical_merges_values_fn_makes_equal() -> None:
    s = text_categorical(pd.Series([" b", "b ", "a", None], dtype="str"), lambda u: u.str.strip())
    assert _plain(s) == ["b", "b", "a", None]
    assert list(s.cat.categories) == ["a", "b"]


def test_text_categorical_of_a_categorical_maps_its_categories() -> None:
    raw = pd.Series(pd.Categorical(["x ", "y", "x ", None], categories=["y", "x "]))
    s = text_categorical(raw, lambda u: u.str.strip().str.upper())
    assert _plain(s) == ["X", "Y", "X", None] and list(s.cat.categories) == ["X", "Y"]


@settings(max_examples=150, deadline=None)
@given(st.lists(_TEXT, max_size=40), st.lists(_TEXT.filter(lambda v: v is not None), max_size=5),
       st.sampled_from(["keep", "strip", "upper", "drop-b"]))
def test_text_categorical_of_a_categorical_equals_the_plain_path(values: list[str | None], unused: list[str],
                                                                 fn_name: str) -> None:
    # a categorical (as a dictionary-encoded read gives: categories in any order, some no row uses) is recoded
    # from its categories alone; the result equals the plain strings' path value for value and category for category
    fns: dict[str, Callable[[pd.Series], pd.Series] | None] = {
        "keep": None, "strip": lambda u: u.str.strip(), "upper": lambda u: u.str.upper(),
        "drop-b": lambda u: u.where(u != "b")}
    fn = fns[fn_name]
    present = list(dict.fromkeys(v for v in values if v is not None))
    categories = list(dict.fromkeys([*reversed(present), *unused]))
    raw = pd.Series(pd.Categorical(values, categories=categories))
    got = text_categorical(raw, fn)
    want = text_categorical(pd.Series(values, dtype="str"), fn)
    assert _plain(got) == _plain(want)
    assert list(got.cat.categories) == sorted(set(_plain(fn(pd.Series(categories, dtype="str")) if fn else
                                                        pd.Series(categories, dtype="str"))) - {None})
    assert got.cat.codes.dtype.itemsize <= 2


@pytest.mark.parametrize(("n_categories", "code"), [(126, 125), (127, 126), (32_766, 32_765), (32_767, 32_766)])
def test_recode_at_the_code_widths_edges(n_categories: int, code: int) -> None:
    # pandas gives int8 codes up to 126 categories, int16 up to 32766: the recode shifts codes by one, so the
    # largest code of each width must not wrap around
    width = np.int8 if n_categories < 127 else np.int16 if n_categories < 32_767 else np.int32
    codes = np.array([code, -1, 0], dtype=width)
    got = recode(codes, np.arange(n_categories)[::-1], n_categories)
    assert got.tolist() == [n_categories - 1 - code, -1, n_categories - 1]
    assert got.flags.writeable


def test_text_categorical_rejects_a_fn_of_another_length() -> None:
    with pytest.raises(ValueError, match="fn returned 1 values for 2 distinct values"):
        text_categorical(pd.Series(["a", "b"], dtype="str"), lambda u: u.iloc[:1])


@pytest.mark.parametrize(("n", "width"), [(1, np.int8), (126, np.int8), (127, np.int16), (40_000, np.int32)])
def test_sorted_text_categorical_code_width(n: int, width: type) -> None:
    cats = pa.array([f"{i:06d}" for i in range(n)], pa.large_string())
    s = sorted_text_categorical(np.array([n - 1, -1, 0]), cats)
    assert s.cat.codes.dtype == width
    assert _plain(s) == [f"{n - 1:06d}", None, "000000"]


def test_schema_takes_text_categoricals_and_rejects_other_categoricals() -> None:
    ok = pd.DataFrame({S.CITY: pd.Series(["A", None], dtype="category").astype(
        pd.CategoricalDtype(pd.Index(["A"], dtype="str")))})
    assert S.check_frame(ok, dtypes={S.CITY: "string"}, required=()) == []
    bad = pd.DataFrame({S.CITY: pd.Series([1, 2], dtype="category")})
    problems = S.check_frame(bad, dtypes={S.CITY: "string"}, required=())
    assert [str(p) for p in problems] == ["city: expected dtype string, found category"]
    with pytest.raises(SchemaError, match="city: expected dtype string"):
        S._raise(problems, "voters", "ingest")


def test_read_delimited_dictionary_columns_hold_the_same_values(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("id,city,zip\n1,PVD,02903\n2,,02903\n3,WARWICK,\n4,PVD,02906\n", encoding="utf-8")
    plain = read_delimited(f, delimiter=",", header=True).table
    coded = read_delimited(f, delimiter=",", header=True, dictionary=["city", "zip"]).table
    assert isinstance(coded["city"].dtype, pd.CategoricalDtype) and coded["id"].dtype == plain["id"].dtype
    for col in ("id", "city", "zip"):
        assert _plain(coded[col]) == _plain(plain[col])


def test_voter_reader_keeps_repeated_texts_as_sorted_categoricals(write_layout_file: Callable[..., Path]) -> None:
    v = write_layout_file("ncvoter.txt", "nc", [
        nc_voter("AA1", last_name=" O'BRIEN ", res_street_address="12 N MAIN ST APT 4", party_cd="dem"),
        nc_voter("AA2", last_name="ADAMS", res_street_address="12 N MAIN ST APT 10", zip_code="2906"),
        nc_voter("AA3", last_name="O'BRIEN", res_street_address="7 ELM ST", party_cd="REP"),
        nc_voter("AA4", last_name="ADAMS", res_street_address="7 ELM ST", zip_code="N/A"),  # no ZIP: null
    ])
    voters = read_voter_file(v, layout="nc").voters
    for col in S.VOTER_CATEGORICAL:
        assert is_text_categorical(voters[col]), col
        cats = list(voters[col].cat.categories)
        assert cats == sorted(set(cats)), col
    assert _plain(voters[S.LAST_NAME]) == ["O'BRIEN", "ADAMS", "O'BRIEN", "ADAMS"]  # stripped per category
    assert list(voters[S.LAST_NAME].cat.categories) == ["ADAMS", "O'BRIEN"]
    assert _plain(voters[S.PARTY]) == ["DEM", "DEM", "REP", "DEM"]
    assert _plain(voters[S.ZIP5]) == ["02903", "02906", "02903", None]
    assert _plain(voters[S.STREET]) == ["N MAIN ST", "N MAIN ST", "ELM ST", "ELM ST"]
    assert _plain(voters[S.UNIT]) == ["4", "10", "", ""]
    assert _plain(voters[S.GEOCODE_SOURCE]) == [None] * 4
    assert _plain(voters[S.EMAIL]) == [None] * 4 and voters[S.EMAIL].dtype == "str"
    S.validate_voters(voters)


def test_household_ids_sort_as_their_text() -> None:
    parts = parse_addresses(pd.Series(["12 MAIN ST APT 2", "9 ELM ST", None, "12 MAIN ST APT 2", "5 OAK AVE"],
                                      dtype="str")).parts
    for col, prefix in ((S.HOUSEHOLD_ID, "h"), (S.BUILDING_ID, "b")):
        ids = parts[col]
        cats = list(ids.cat.categories)
        assert cats == sorted(cats) and all(c.startswith(prefix) and len(c) == 17 for c in cats)
        assert pd.isna(ids.iloc[2]) and ids.iloc[0] == ids.iloc[3]
        assert ids.nunique() == 3


def test_text_categoricals_survive_parquet(tmp_path: Path) -> None:
    s = text_categorical(pd.Series(["b", None, "a", "b"], dtype="str"))
    pd.DataFrame({"c": s}).to_parquet(tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")["c"]
    assert is_text_categorical(back) and _plain(back) == _plain(s) and list(back.cat.categories) == ["a", "b"]


def test_plain_text_turns_only_text_categoricals_into_strings() -> None:
    from geo_segment._vector import plain_text

    frame = pd.DataFrame({"t": text_categorical(pd.Series(["x", None, "y"], dtype="str")),
                          "n": pd.Series([1, 2, 1], dtype="category"), "s": pd.Series(["a", "b", None], dtype="str")})
    out = plain_text(frame)
    assert out["t"].dtype == "str" and _plain(out["t"]) == ["x", None, "y"]
    assert isinstance(out["n"].dtype, pd.CategoricalDtype)  # not text: left alone
    assert out["s"] is not frame["s"] or out["s"].equals(frame["s"])
    assert is_text_categorical(frame["t"])  # the input is not changed
    assert plain_text(frame[["s"]]) is not None
