"""Platform normalization and SHA-256 hashing of customer-list identifiers (Meta Custom Audiences, Google Customer
Match).

Each platform documents its own normalization; the same phone number hashes differently per platform (Meta:
digits with the country code, ``16577770000``; Google: E.164 with the plus, ``+16577770000``). The rules followed
here are the documented ones (see ``docs/exports.md``), not Meta's SDK, which strips accented letters and cuts
country names to two letters. A value that already looks like a SHA-256 hash (64 hex characters) passes through,
lowercased: it is never hashed twice.

Every text is first put in Unicode NFC form, so a composed ``é`` and ``e`` + combining accent hash the same.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa

from geo_segment.errors import ConfigError, IdentifierError

__all__ = [
    "GOOGLE_HEADERS",
    "HASHED_KINDS",
    "KINDS",
    "META_HEADERS",
    "PLATFORMS",
    "hash_codes",
    "hash_identifier",
    "hash_series",
    "is_sha256",
    "normalize_identifier",
]

KINDS = ("email", "phone", "first_name", "last_name", "city", "state", "zip", "country")
PLATFORMS = ("meta", "google")

#: File headers per platform (kinds a platform does not take are absent).
META_HEADERS: Mapping[str, str] = {
    "email": "email", "phone": "phone", "first_name": "fn", "last_name": "ln", "city": "ct", "state": "st",
    "zip": "zip", "country": "country",
}
GOOGLE_HEADERS: Mapping[str, str] = {
    "email": "Email", "phone": "Phone", "first_name": "First Name", "last_name": "Last Name", "country": "Country",
    "zip": "Zip",
}
_HEADERS = {"meta": META_HEADERS, "google": GOOGLE_HEADERS}
#: Kinds each platform wants hashed (Google takes Country and Zip in plain text).
HASHED_KINDS: Mapping[str, frozenset[str]] = {
    "meta": frozenset(META_HEADERS),
    "google": frozenset({"email", "phone", "first_name", "last_name"}),
}

#: the dtype of hash_series' results (pandas' ``"string"``: Arrow-backed, ``<NA>`` for missing)
_STRING = pd.StringDtype("pyarrow", na_value=pd.NA)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_WS = re.compile(r"\s+")
_US_STATES = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA", "COLORADO": "CO",
    "CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC", "FLORIDA": "FL", "GEORGIA": "GA",
    "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL", "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS",
    "KENTUCKY": "KY", "LOUISIANA": "LA", "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA", "MICHIGAN": "MI",
    "MINNESOTA": "MN", "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT", "NEBRASKA": "NE", "NEVADA": "NV",
    "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ", "NEW MEXICO": "NM", "NEW YORK": "NY", "NORTH CAROLINA": "NC",
    "NORTH DAKOTA": "ND", "OHIO": "OH", "OKLAHOMA": "OK", "OREGON": "OR", "PENNSYLVANIA": "PA",
    "RHODE ISLAND": "RI", "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD", "TENNESSEE": "TN", "TEXAS": "TX",
    "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA", "WEST VIRGINIA": "WV", "WISCONSIN": "WI",
    "WYOMING": "WY", "PUERTO RICO": "PR", "GUAM": "GU", "AMERICAN SAMOA": "AS", "VIRGIN ISLANDS": "VI",
    "NORTHERN MARIANA ISLANDS": "MP",
}
_US_CODES = frozenset(_US_STATES.values())
_COUNTRY_ALIASES = {
    "USA": "US", "UNITED STATES": "US", "UNITED STATES OF AMERICA": "US", "U S": "US", "U S A": "US",
    "GBR": "GB", "UK": "GB", "UNITED KINGDOM": "GB", "CAN": "CA", "CANADA": "CA", "MEX": "MX", "MEXICO": "MX",
}


class _Invalid(Exception):
    """A value that cannot be normalized; ``args[0]`` is a reason without the value."""


def is_sha256(value: str) -> bool:
    """Whether ``value`` already is a SHA-256 hex digest (64 hex characters, surrounding spaces ignored)."""
    return bool(_SHA256.fullmatch(value.strip()))


def _check(kind: str, platform: str, default_region: str) -> None:
    if platform not in PLATFORMS:
        raise ConfigError(f"unknown customer-list platform {platform!r}", expected=f"one of {list(PLATFORMS)}",
                          fix="use platform='meta' or 'google'")
    if kind not in KINDS:
        raise ConfigError(f"unknown identifier kind {kind!r}", expected=f"one of {list(KINDS)}",
                          fix="name the identifier's kind")
    if kind not in _HEADERS[platform]:
        raise ConfigError(f"{platform} customer lists take no {kind} column",
                          expected=f"one of {sorted(_HEADERS[platform])}", fix=f"drop {kind} for {platform}")
    if default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError("unknown default region", expected="an ISO 3166-1 alpha-2 code such as 'US'",
                          found=repr(default_region), fix="set [export] default_region")


def _nfc_lower(value: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).strip().lower())


def _letters(value: str) -> str:
    """Unicode letters (and their combining marks) only, lowercase, NFC: accents kept."""
    low = _nfc_lower(value)
    return "".join(ch for ch in low if unicodedata.category(ch)[0] in "LM")


def _ascii_letters(value: str) -> str:
    """a-z only: accents folded to their base letter, everything else dropped."""
    folded = unicodedata.normalize("NFKD", value.strip().lower())
    return "".join(ch for ch in folded if "a" <= ch <= "z")


def _email(value: str) -> str:
    e = _nfc_lower(value)
    local, at, domain = e.partition("@")
    if not at or not local or "." not in domain or "@" in domain or _WS.search(e):
        raise _Invalid("not an email address")
    return e


_NANP_CLEAN = re.compile(r"\+?1?[\s().-]*[2-9]\d{2}[\s().-]*\d{3}[\s.-]*\d{4}")


def _nanp_fast(value: str, region: str) -> Any:
    """A North American number written with only digits, spaces and ``+().-``: the PhoneNumber phonenumbers.parse
    would build (country code 1, the last 10 digits), without its string handling; ``None`` when not that shape."""
    if not _NANP_CLEAN.fullmatch(value):
        return None
    plus = value.startswith("+")
    if not plus and phonenumbers.country_code_for_region(region) != 1:
        return None
    digits = re.sub(r"\D", "", value)
    if plus and not digits.startswith("1"):
        return None
    return phonenumbers.PhoneNumber(country_code=1, national_number=int(digits[-10:]))


def _valid(number: Any, region: str) -> bool:
    """``phonenumbers.is_valid_number``, checking the default region first (one metadata pass instead of two for
    the common case: the number belongs to the default region)."""
    if number.country_code == phonenumbers.country_code_for_region(region) and \
            phonenumbers.is_valid_number_for_region(number, region):
        return True
    return bool(phonenumbers.is_valid_number(number))


def _phone(value: str, platform: str, region: str) -> str:
    number = None
    fast = _nanp_fast(value.strip(), region)
    if fast is not None and _valid(fast, region):
        number = fast
    else:
        number = _phone_slow(value, region)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if platform == "google" else e164.lstrip("+")


def _phone_slow(value: str, region: str) -> Any:
    number = None
    national_length_ok = False
    try:
        parsed = phonenumbers.parse(value, region)
        national_length_ok = bool(phonenumbers.is_possible_number(parsed))
        if _valid(parsed, region):
            number = parsed
    except phonenumbers.NumberParseException:
        pass
    if number is None and not national_length_ok:
        # digits that already carry a country code ("14015550179" with default region GB, as Meta writes them):
        # tried only when the digits cannot be a number of the default region (wrong length), so an invalid
        # local number is never reinterpreted as a foreign one
        digits = re.sub(r"\D", "", value)
        if not re.search(r"[A-Za-z]", value) and len(digits.lstrip("0")) >= 8:
            try:
                parsed = phonenumbers.parse("+" + digits.lstrip("0"), None)
                if phonenumbers.is_valid_number(parsed):
                    number = parsed
            except phonenumbers.NumberParseException:
                pass
    if number is None:
        raise _Invalid(f"not a valid phone number with default region {region}")
    return number


def _state(value: str, region: str) -> str:
    if region != "US":
        s = _ascii_letters(value)
        if not s:
            raise _Invalid("empty state after normalization")
        return s
    key = _WS.sub(" ", re.sub(r"[.,]", " ", value.strip().upper())).strip()
    code = _US_STATES.get(key, key)
    if code not in _US_CODES:
        raise _Invalid("not a US state (2-letter code or full name)")
    return code.lower()


def _zip(value: str, platform: str, region: str) -> str:
    s = value.strip()
    if region != "US":
        out = re.sub(r"[\s-]", "", s)
        if not out:
            raise _Invalid("empty postal code")
        return out.lower() if platform == "meta" else out.upper()
    digits = re.sub(r"[\s-]", "", s)
    if not digits.isascii() or not digits.isdigit() or len(digits) not in (4, 5, 8, 9):
        raise _Invalid("not a US ZIP (5 digits, ZIP+4, or 4 digits that lost a leading zero)")
    if len(digits) in (4, 8):  # a ZIP read as a number loses its leading zero (02134 -> 2134)
        digits = "0" + digits
    return digits[:5]


def _country(value: str, platform: str) -> str:
    key = _WS.sub(" ", re.sub(r"[.,]", " ", value.strip().upper())).strip()
    code = _COUNTRY_ALIASES.get(key, key)
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise _Invalid("not an ISO 3166-1 alpha-2 country code")
    return code.lower() if platform == "meta" else code


def _normalize(value: str, kind: str, platform: str, region: str) -> str:
    if kind == "email":
        return _email(value)
    if kind == "phone":
        return _phone(value, platform, region)
    if kind in ("first_name", "last_name"):
        out = _letters(value) if platform == "meta" else _nfc_lower(value)
    elif kind == "city":
        out = _ascii_letters(value)
    elif kind == "state":
        out = _state(value, region)
    elif kind == "zip":
        out = _zip(value, platform, region)
    else:
        out = _country(value, platform)
    if not out:
        raise _Invalid(f"empty {kind} after normalization")
    return out


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def normalize_identifier(value: Any, *, kind: str, platform: str, default_region: str = "US") -> str | None:
    """Return the platform's normalized plain form of one identifier (before hashing), or ``None`` when missing.

    Parameters
    ----------
    value
        The raw identifier (a string; ``None``, NaN and blank strings are missing).
    kind
        One of ``email``, ``phone``, ``first_name``, ``last_name``, ``city``, ``state``, ``zip``, ``country``.
    platform
        ``meta`` or ``google``.
    default_region
        ISO alpha-2 region for phones written without a country code and for ZIP rules (``US``: 5 digits,
        4-digit ZIPs left-padded).

    Raises
    ------
    IdentifierError
        When the value cannot be normalized (the message gives the reason, never the value).
    ConfigError
        For an unknown kind, platform or region, or a kind the platform does not take.

    Examples
    --------
    >>> normalize_identifier("(401) 555-0179", kind="phone", platform="meta")
    '14015550179'
    >>> normalize_identifier("(401) 555-0179", kind="phone", platform="google")
    '+14015550179'
    """
    _check(kind, platform, default_region)
    if _missing(value):
        return None
    try:
        return _normalize(str(value), kind, platform, default_region)
    except _Invalid as exc:
        raise IdentifierError(f"{kind} cannot be normalized for {platform}: {exc.args[0]}",
                              fix="correct the value, or leave it out of the list") from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_identifier(value: Any, *, kind: str, platform: str, default_region: str = "US") -> str | None:
    """Return one identifier as the platform wants it in its file.

    That is the SHA-256 (lowercase hex of the UTF-8 bytes) of the normalized value, or the normalized plain value
    where the platform wants it unhashed (Google's ``Country`` and ``Zip``). A value that already is a 64-hex
    SHA-256 passes through lowercased, never hashed twice. Missing values give ``None``.

    Parameters
    ----------
    value
        The raw identifier.
    kind
        ``email``, ``phone``, ``first_name``, ``last_name``, ``city``, ``state``, ``zip`` or ``country``.
    platform
        ``meta`` or ``google``.
    default_region
        ISO alpha-2 region for phones without a country code, and the ZIP mode.

    Returns
    -------
    str or None
        A 64-character lowercase hex digest, or the plain normalized value (Google Country / Zip).

    Raises
    ------
    IdentifierError
        When the value cannot be normalized (no personal data in the message).
    ConfigError
        For an unknown kind, platform or region.

    Examples
    --------
    >>> hash_identifier("US", kind="country", platform="meta")
    '79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621'
    >>> hash_identifier("02908-1234", kind="zip", platform="google")
    '02908'
    """
    _check(kind, platform, default_region)
    if _missing(value):
        return None
    text = str(value)
    hashed = kind in HASHED_KINDS[platform]
    if hashed and is_sha256(text):
        return text.strip().lower()
    norm = normalize_identifier(text, kind=kind, platform=platform, default_region=default_region)
    assert norm is not None
    return _sha256(norm) if hashed else norm


def hash_series(
    values: pd.Series, *, kind: str, platform: str, default_region: str = "US"
) -> tuple[pd.Series, pd.Series]:
    """Vectorized :func:`hash_identifier` over a column: each distinct value is normalized and hashed once.

    Parameters
    ----------
    values
        The raw identifiers (any dtype; missing values stay missing).
    kind, platform, default_region
        As in :func:`hash_identifier`.

    Returns
    -------
    (pandas.Series, pandas.Series)
        The output values (``string`` dtype, ``<NA>`` where missing or invalid) and the reasons (``string``,
        ``<NA>`` where the value was fine or missing), both aligned to ``values``' index.

    Examples
    --------
    >>> out, why = hash_series(pd.Series(["02908-1234", "bad"]), kind="zip", platform="google")
    >>> out.tolist(), why.isna().tolist()
    (['02908', <NA>], [True, False])
    """
    _check(kind, platform, default_region)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out_u, why_u = _hash_distinct(uniques, kind, platform, default_region)
    # spread the per-distinct results back with one Arrow take each (no Python object per row)
    positions = pa.array(codes, mask=codes < 0)
    return (_string_series(out_u, positions, values.index), _string_series(why_u, positions, values.index))


def _hash_distinct(uniques: Any, kind: str, platform: str, region: str) -> tuple[np.ndarray, np.ndarray]:
    """Output and reason (``None`` each where missing / fine) of every distinct raw value."""
    hashed = kind in HASHED_KINDS[platform]
    out_u = np.empty(len(uniques), dtype=object)
    why_u = np.empty(len(uniques), dtype=object)
    for i, raw in enumerate(uniques):
        out_u[i], why_u[i] = None, None
        if _missing(raw):
            continue
        text = str(raw)
        if hashed and is_sha256(text):
            out_u[i] = text.strip().lower()
            continue
        try:
            norm = _normalize(text, kind, platform, region)
        except _Invalid as exc:
            why_u[i] = f"{kind}: {exc.args[0]}"
            continue
        out_u[i] = _sha256(norm) if hashed else norm
    return out_u, why_u


def hash_codes(
    values: pd.Series, *, kind: str, platform: str, default_region: str = "US"
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`hash_series` as integer codes: what a customer list needs to filter and deduplicate rows before
    any per-row string exists.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, int)
        ``codes`` (int64, one per value: the position of its output in ``outputs``, ``-1`` where missing or
        invalid), ``outputs`` (the distinct output strings, object array; two raw values with the same output
        share a code) and the number of invalid values.

    Examples
    --------
    >>> codes, outputs, bad = hash_codes(pd.Series(["02908-1234", "bad", "02908", None]), kind="zip",
    ...                                  platform="google")
    >>> codes.tolist(), outputs.tolist(), bad
    ([0, -1, 0, -1], ['02908'], 1)
    """
    _check(kind, platform, default_region)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out_u, why_u = _hash_distinct(uniques, kind, platform, default_region)
    position: dict[str, int] = {}
    out_code = np.full(len(uniques) + 1, -1, dtype=np.int64)  # the last slot: missing values (code -1)
    for i, out in enumerate(out_u):
        if out is not None:
            out_code[i] = position.setdefault(out, len(position))
    bad = np.append(np.array([w is not None for w in why_u], dtype=bool), False)
    outputs = np.empty(len(position), dtype=object)
    outputs[:] = list(position)
    return out_code[codes], outputs, int(bad[codes].sum())


def _string_series(distinct: np.ndarray, positions: pa.Array, index: pd.Index) -> pd.Series:
    """``distinct[positions]`` (null positions give ``<NA>``) as a ``string`` Series on ``index``."""
    taken = pa.array(distinct, type=pa.large_string()).take(positions)
    return pd.Series(pd.arrays.ArrowStringArray(taken, dtype=_STRING), index=index)  # type: ignore[call-arg]
