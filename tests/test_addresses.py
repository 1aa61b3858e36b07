"""Address parsing, households and buildings, natural unit order, ZIP repair."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_segment import schema as S
from geo_segment.addresses import natural_unit_key, normalize_zip, parse_addresses


def test_variants_of_one_flat_share_a_household() -> None:
    p = parse_addresses(pd.Series(["12 North Main Street Apt. 04", "12 N MAIN ST #4", "12 n. main st unit 4"]))
    assert p.parts[S.HOUSEHOLD_ID].nunique() == 1
    assert p.parts.loc[0, S.ADDRESS] == "12 N MAIN ST UNIT 4"
    assert (p.n_distinct, p.n_fast, p.n_parser) == (3, 3, 0)


def test_units_of_one_building_share_the_building_only() -> None:
    p = parse_addresses(pd.Series(["12 N MAIN ST APT 2", "12 N MAIN ST APT 10", "12 N MAIN ST"]))
    assert p.parts[S.BUILDING_ID].nunique() == 1
    assert p.parts[S.HOUSEHOLD_ID].nunique() == 3
    assert p.parts[S.UNIT].tolist() == ["2", "10", ""]


def test_same_street_address_in_two_zips_are_two_buildings() -> None:
    p = parse_addresses(pd.Series(["7 ELM ST", "7 ELM ST"]), zip5=pd.Series(["02903", "02906"]))
    assert p.parts[S.BUILDING_ID].nunique() == 2


@pytest.mark.parametrize(
    ("text", "house", "street", "unit"),
    [
        ("100 1ST AVE UNIT 10B", "100", "1ST AVE", "10B"),
        ("55 BROADWAY", "55", "BROADWAY", ""),
        ("9 SOUTH WATER STREET", "9", "S WATER ST", ""),
        ("31 1/2 HOPE ST", "31 1/2", "HOPE ST", ""),
        ("77 MAIN ST 4", "77", "MAIN ST", "4"),  # irregular: goes to usaddress
    ],
)
def test_parts(text: str, house: str, street: str, unit: str) -> None:
    row = parse_addresses(pd.Series([text])).parts.iloc[0]
    assert (row[S.HOUSE_NUMBER], row[S.STREET], row[S.UNIT]) == (house, street, unit)


def test_irregular_addresses_use_the_parser_and_missing_stay_null() -> None:
    p = parse_addresses(pd.Series(["77 MAIN ST 4", None, "PO BOX 55"]))
    assert p.n_parser == 2
    assert p.parts[S.HOUSEHOLD_ID].isna().tolist() == [False, True, False]


_street = st.sampled_from(["MAIN ST", "N ELMWOOD AVE", "BROADWAY", "HOPE ST", "S WATER ST"])


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 9999), _street, st.one_of(st.just(""), st.integers(1, 40).map(str)))
def test_normalization_is_idempotent(num: int, street: str, unit: str) -> None:
    text = f"{num} {street}" + (f" APT {unit}" if unit else "")
    first = parse_addresses(pd.Series([text])).parts.iloc[0]
    again = parse_addresses(pd.Series([first[S.ADDRESS]])).parts.iloc[0]
    assert again[S.ADDRESS] == first[S.ADDRESS]
    assert again[S.HOUSEHOLD_ID] == first[S.HOUSEHOLD_ID]


def test_units_sort_naturally() -> None:
    units = pd.Series(["10", "2", "B", "10A", "", "1"])
    keys = natural_unit_key(units)
    assert units.loc[keys.sort_values(["unit_num", "unit_rest"]).index].tolist() == ["", "1", "2", "10", "10A", "B"]


@pytest.mark.parametrize(
    ("raw", "zip5"),
    [("02903-1234", "02903"), ("02903 1234", "02903"), ("2903", "02903"), ("029031234", "02903"),
     ("29031234", "02903"), ("ABCDE", None), ("", None)],
)
def test_zip_repair(raw: str, zip5: str | None) -> None:
    got = normalize_zip(pd.Series([raw], dtype="str")).iloc[0]
    assert (None if pd.isna(got) else got) == zip5


@pytest.mark.parametrize("cores", [1, 2])
def test_ids_built_beside_the_texts_are_the_same(monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    import geo_segment.addresses as A

    texts = pd.Series(["12 N MAIN ST APT 4", None, "12 North Main Street #4", "7 ELM AVE", "7 ELM AVE UNIT B",
                       "PO BOX 12", "", "7 Elm Ave"], dtype="str")
    zips = pd.Series(["02903", "02903", "02903", "02906", "02906", None, "02903", "02906"], dtype="str")
    alone = parse_addresses(texts, zip5=zips).parts
    monkeypatch.setattr(A, "_ROWS_PER_THREAD", 1)  # every parse builds its ids on the helper thread...
    monkeypatch.setattr(A, "usable_cores", lambda: cores)  # ...when a second core is there
    beside = parse_addresses(texts, zip5=zips).parts
    pd.testing.assert_frame_equal(beside, alone)
    assert beside[S.HOUSEHOLD_ID].nunique() == 4 and beside.loc[[1, 6], S.HOUSEHOLD_ID].isna().all()


def test_distinct_addresses_parsed_in_two_halves_are_parsed_as_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import geo_segment.addresses as A

    texts = pd.Series(["12 N MAIN ST APT 4", None, "12 North Main Street #4", "7 ELM AVE", "7 ELM AVE UNIT B",
                       "PO BOX 12", "", "7 Elm Ave", "12 1/2 OAK ST", "ONE HUNDRED OAK", "3 RIVER RD #2B"],
                      dtype="str")
    zips = pd.Series(["02903"] * len(texts), dtype="str")
    monkeypatch.setattr(A, "usable_cores", lambda: 2)
    whole = parse_addresses(texts, zip5=zips)
    monkeypatch.setattr(A, "_DISTINCT_PER_THREAD", 1)  # every parse cuts its distinct texts in two halves
    halves = parse_addresses(texts, zip5=zips)
    pd.testing.assert_frame_equal(halves.parts, whole.parts)
    assert (halves.n_distinct, halves.n_fast, halves.n_parser, halves.n_unparsed) == (
        whole.n_distinct, whole.n_fast, whole.n_parser, whole.n_unparsed)
    assert whole.n_parser + whole.n_unparsed > 0  # both halves' parser paths were taken
