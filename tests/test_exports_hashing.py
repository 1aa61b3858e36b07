"""Platform hashing: golden values computed here by hand-normalized strings and hashlib, never by the code under test.

Bad-inputs rows 22 (phones), 23 (ZIPs) and 24 (already hashed).
"""

from __future__ import annotations

import hashlib
import unicodedata

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geo_segment
from geo_segment.errors import ConfigError, IdentifierError
from geo_segment.exports import hashing
from geo_segment.exports.hashing import hash_identifier, hash_series, normalize_identifier


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_spec_golden_vector() -> None:
    assert sha("us") == "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
    assert hash_identifier("US", kind="country", platform="meta") == sha("us")
    assert geo_segment.hash_identifier is hash_identifier


# (raw value, kind, platform, default region, what the platform wants before hashing, typed by hand)
GOLDEN = [
    (" Jane.Doe@Example.COM ", "email", "meta", "US", "jane.doe@example.com"),
    ("John.Smith@Gmail.com", "email", "google", "US", "john.smith@gmail.com"),  # Gmail dots kept
    ("Émilie", "first_name", "meta", "US", "émilie"),  # accents kept (Meta's SDK would give "milie")
    ("E\u0301milie", "first_name", "meta", "US", "émilie"),  # decomposed accent: same hash as composed
    ("  ZOË ", "first_name", "google", "US", "zoë"),
    ("ŁUKASZ", "first_name", "meta", "US", "łukasz"),
    ("O'Connor", "last_name", "meta", "US", "oconnor"),  # apostrophe is punctuation for Meta
    ("O'Connor", "last_name", "google", "US", "o'connor"),  # Google: trim and lowercase only
    ("García-López", "last_name", "meta", "US", "garcíalópez"),
    ("De La Cruz", "last_name", "meta", "US", "delacruz"),
    ("Providence", "city", "meta", "US", "providence"),
    ("São Paulo", "city", "meta", "US", "saopaulo"),  # a-z only
    ("RI", "state", "meta", "US", "ri"),
    ("Rhode Island", "state", "meta", "US", "ri"),
    ("02908-1234", "zip", "meta", "US", "02908"),  # ZIP+4
    ("02908 1234", "zip", "meta", "US", "02908"),  # ZIP+4 with a space
    ("2134", "zip", "meta", "US", "02134"),  # lost its leading zero
    ("(657) 777-0000", "phone", "meta", "US", "16577770000"),  # country code required for Meta
    ("(657) 777-0000", "phone", "google", "US", "+16577770000"),  # E.164 with + for Google
    ("+1 401.555.0179", "phone", "meta", "US", "14015550179"),
    ("020 7946 0958", "phone", "meta", "GB", "442079460958"),  # national trunk zero dropped
    ("00 44 20 7946 0958", "phone", "google", "GB", "+442079460958"),  # international prefix zeros dropped
    ("United States", "country", "meta", "US", "us"),  # not "un" as Meta's SDK does
]


@pytest.mark.parametrize(("raw", "kind", "platform", "region", "plain"), GOLDEN)
def test_golden_hashes(raw: str, kind: str, platform: str, region: str, plain: str) -> None:
    assert normalize_identifier(raw, kind=kind, platform=platform, default_region=region) == plain
    assert hash_identifier(raw, kind=kind, platform=platform, default_region=region) == sha(plain)


@pytest.mark.parametrize(
    ("raw", "kind", "plain"),
    [("02908-1234", "zip", "02908"), ("2134", "zip", "02134"), ("usa", "country", "US"), (" us ", "country", "US")],
)
def test_google_country_and_zip_stay_plain(raw: str, kind: str, plain: str) -> None:
    assert hash_identifier(raw, kind=kind, platform="google") == plain


def test_one_phone_hashes_differently_per_platform() -> None:
    meta = hash_identifier("657-777-0000", kind="phone", platform="meta")
    google = hash_identifier("657-777-0000", kind="phone", platform="google")
    assert meta == sha("16577770000") and google == sha("+16577770000") and meta != google


@pytest.mark.parametrize("kind", ["email", "phone", "first_name", "zip"])
@pytest.mark.parametrize("platform", ["meta", "google"])
def test_already_hashed_passes_through_never_hashed_twice(kind: str, platform: str) -> None:
    digest = sha("anything")
    if kind == "zip" and platform == "google":  # Google's Zip is plain: a digest is not a ZIP
        with pytest.raises(IdentifierError, match="not a US ZIP"):
            hash_identifier(digest, kind=kind, platform=platform)
        return
    assert hash_identifier(digest, kind=kind, platform=platform) == digest
    assert hash_identifier(digest.upper(), kind=kind, platform=platform) == digest  # lowercase hex out
    assert hash_identifier(f"  {digest} ", kind=kind, platform=platform) == digest


@pytest.mark.parametrize(
    ("raw", "region", "meta", "google"),
    [
        ("401-555-0179", "US", "14015550179", "+14015550179"),  # no country code: default region
        ("(401) 555-0179 ext. 12", "US", "14015550179", "+14015550179"),  # extension dropped
        ("1-800-FLOWERS", "US", "18003569377", "+18003569377"),  # letters of a vanity number
        ("0044 20 7946 0958", "GB", "442079460958", "+442079460958"),  # leading zeros
        ("07911 123456", "GB", "447911123456", "+447911123456"),
    ],
)
def test_bad_input_row_22_phones_repaired(raw: str, region: str, meta: str, google: str) -> None:
    assert normalize_identifier(raw, kind="phone", platform="meta", default_region=region) == meta
    assert normalize_identifier(raw, kind="phone", platform="google", default_region=region) == google


@pytest.mark.parametrize("raw", ["call me", "555-0179", "12", "401-555-01790000000"])
def test_bad_input_row_22_phones_quarantined(raw: str) -> None:
    with pytest.raises(IdentifierError, match="not a valid phone number with default region US") as info:
        hash_identifier(raw, kind="phone", platform="meta")
    assert raw not in str(info.value)  # messages never quote personal data
    values, why = hash_series(pd.Series([raw, "401-555-0179"]), kind="phone", platform="meta")
    assert values.isna().tolist() == [True, False]
    assert why.tolist() == ["phone: not a valid phone number with default region US", pd.NA]


@pytest.mark.parametrize(
    ("raw", "plain"), [("02908-1234", "02908"), ("02908 1234", "02908"), ("2134", "02134"), ("029081234", "02908"),
                       (" 02908 ", "02908")],
)
def test_bad_input_row_23_zips_repaired(raw: str, plain: str) -> None:
    assert hash_identifier(raw, kind="zip", platform="meta") == sha(plain)
    assert hash_identifier(raw, kind="zip", platform="google") == plain


@pytest.mark.parametrize("raw", ["ABCDE", "123", "02908-12345"])
def test_bad_zips_are_refused(raw: str) -> None:
    with pytest.raises(IdentifierError, match="not a US ZIP"):
        hash_identifier(raw, kind="zip", platform="meta")


def test_missing_values_give_none() -> None:
    for raw in (None, float("nan"), pd.NA, "   "):
        assert hash_identifier(raw, kind="email", platform="meta") is None


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"kind": "city", "platform": "google"}, "google customer lists take no city column"),
        ({"kind": "dob", "platform": "meta"}, "unknown identifier kind 'dob'"),
        ({"kind": "email", "platform": "tiktok"}, "unknown customer-list platform 'tiktok'"),
        ({"kind": "phone", "platform": "meta", "default_region": "XX"}, "unknown default region"),
    ],
)
def test_configuration_errors(kwargs: dict[str, str], text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        hash_identifier("x", **kwargs)  # type: ignore[arg-type]


def test_hash_series_matches_scalar_and_normalizes_each_distinct_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = pd.Series(["Jane@x.org", "bob@y.org", None, "Jane@x.org"] * 250, index=range(10, 1010))
    calls: list[str] = []
    real = hashing._normalize

    def counting(value: str, *args: str) -> str:
        calls.append(value)
        return real(value, *args)

    monkeypatch.setattr(hashing, "_normalize", counting)
    out, why = hash_series(raw, kind="email", platform="meta")
    assert len(calls) == 2  # two distinct non-missing values
    assert out.index.equals(raw.index)
    assert out.iloc[0] == sha("jane@x.org") and out.iloc[1] == sha("bob@y.org") and pd.isna(out.iloc[2])
    assert why.isna().all()


# --- properties ---------------------------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(value=names, kind=st.sampled_from(["first_name", "last_name", "email", "city", "state", "zip", "country"]),
       platform=st.sampled_from(["meta", "google"]))
def test_normalization_is_idempotent(value: str, kind: str, platform: str) -> None:
    if kind not in hashing._HEADERS[platform]:
        return
    try:
        once = normalize_identifier(value, kind=kind, platform=platform)
    except IdentifierError:
        return
    if once is None:
        return
    assert normalize_identifier(once, kind=kind, platform=platform) == once
    assert unicodedata.is_normalized("NFC", once)


area_codes = st.sampled_from(["212", "401", "415", "657", "702", "919"])
formats = st.sampled_from(["{a}{e}{n}", "({a}) {e}-{n}", "{a}.{e}.{n}", "+1 {a} {e} {n}", "1-{a}-{e}-{n}"])


@settings(max_examples=100, deadline=None)
@given(a=area_codes, e=st.integers(200, 999), n=st.integers(0, 9999), fmt=formats,
       platform=st.sampled_from(["meta", "google"]))
def test_phone_normalization_is_idempotent_and_platform_shaped(a: str, e: int, n: int, fmt: str,
                                                              platform: str) -> None:
    raw = fmt.format(a=a, e=e, n=f"{n:04d}")
    once = normalize_identifier(raw, kind="phone", platform=platform)
    assert once == (f"1{a}{e}{n:04d}" if platform == "meta" else f"+1{a}{e}{n:04d}")
    assert normalize_identifier(once, kind="phone", platform=platform) == once
    assert hash_identifier(hash_identifier(raw, kind="phone", platform=platform), kind="phone",
                           platform=platform) == sha(once)


@settings(max_examples=300, deadline=None)
@given(a=st.integers(200, 999), e=st.integers(0, 999), n=st.integers(0, 9999),
       fmt=st.sampled_from(["{a}{e}{n}", "({a}) {e}-{n}", "{a}.{e}.{n}", "+1 {a} {e} {n}", "1-{a}-{e}-{n}",
                            "1{a}{e}{n}", "+1({a}){e}-{n}", "{a} {e} {n}"]),
       region=st.sampled_from(["US", "CA", "PR", "GB", "FR"]))
def test_phone_fast_path_agrees_with_phonenumbers_parse(a: int, e: int, n: int, fmt: str, region: str) -> None:
    """Clean North American numbers skip phonenumbers' string parsing: the result must be what parsing gives."""
    import phonenumbers

    raw = fmt.format(a=a, e=f"{e:03d}", n=f"{n:04d}")
    try:
        parsed = phonenumbers.parse(raw, region)
        expected = (phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                    if phonenumbers.is_valid_number(parsed) else None)
    except phonenumbers.NumberParseException:
        expected = None
    try:
        got = normalize_identifier(raw, kind="phone", platform="google", default_region=region)
    except IdentifierError:
        got = None
    if expected is not None:
        assert got == expected
    elif got is not None:  # only the documented fallback: digits that cannot be a local number carry a code
        assert not phonenumbers.is_possible_number(phonenumbers.parse(raw, region))
        digits = "".join(ch for ch in raw if ch.isdigit()).lstrip("0")
        assert got == phonenumbers.format_number(phonenumbers.parse("+" + digits), phonenumbers.PhoneNumberFormat.E164)


def test_an_invalid_local_number_is_never_read_as_a_foreign_one() -> None:
    with pytest.raises(IdentifierError, match="not a valid phone number with default region US"):
        normalize_identifier("460 200 0000", kind="phone", platform="google")  # not +46 (Sweden)
