"""Address parsing and household / building keys.

State files mostly hold standardized one-line addresses ("123 N ELMWOOD AVE APT 3"). Each *distinct* address is
parsed once: a vectorized regular-expression fast path covers the standardized form; the rest go through
``usaddress`` (a CRF parser, about 8,500 addresses/s, so it only sees the irregular remainder). Addresses neither
can parse keep their normalized text as their key and are counted.

``household_id`` identifies an address with its unit, ``building_id`` the same address without unit; both are
short stable hashes (16 hex digits) of the normalized parts, so they can travel without carrying the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import usaddress

from geo_segment import schema as S

__all__ = ["ParsedAddresses", "natural_unit_key", "normalize_zip", "parse_addresses"]

DIRECTIONS = {"NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW",
              "SOUTHEAST": "SE", "SOUTHWEST": "SW"}
_DIR_ABBR = {"N", "S", "E", "W", "NE", "NW", "SE", "SW"}
#: USPS Publication 28 suffixes (common subset): full or variant spelling -> standard abbreviation
SUFFIXES = {
    "STREET": "ST", "STR": "ST", "ST": "ST", "AVENUE": "AVE", "AV": "AVE", "AVE": "AVE", "ROAD": "RD", "RD": "RD",
    "DRIVE": "DR", "DR": "DR", "LANE": "LN", "LN": "LN", "COURT": "CT", "CT": "CT", "BOULEVARD": "BLVD",
    "BLVD": "BLVD", "PLACE": "PL", "PL": "PL", "TERRACE": "TER", "TER": "TER", "CIRCLE": "CIR", "CIR": "CIR",
    "PARKWAY": "PKWY", "PKWY": "PKWY", "HIGHWAY": "HWY", "HWY": "HWY", "WAY": "WAY", "SQUARE": "SQ", "SQ": "SQ",
    "TRAIL": "TRL", "TRL": "TRL", "ALLEY": "ALY", "ALY": "ALY", "PIKE": "PIKE", "ROW": "ROW", "WALK": "WALK",
    "PLAZA": "PLZ", "PLZ": "PLZ", "EXTENSION": "EXT", "EXT": "EXT", "CRESCENT": "CRES", "CRES": "CRES",
}
UNIT_TYPES = ("APARTMENT", "APT", "UNIT", "SUITE", "STE", "FLOOR", "FL", "ROOM", "RM", "LOT", "BLDG", "TRLR",
              "SPC", "PH", "BSMT", "REAR", "FRNT", "#")

_NUM = r"(?P<num>\d+[A-Z]?(?:-\d+[A-Z]?)?)(?:\s+(?P<frac>1/2))?"
_DIR = r"(?:N|S|E|W|NE|NW|SE|SW|NORTH|SOUTH|EAST|WEST|NORTHEAST|NORTHWEST|SOUTHEAST|SOUTHWEST)"
_WORD = r"(?:\d+(?:ST|ND|RD|TH)|[A-Z][A-Z'\-]*)"
_SUF = "(?:" + "|".join(sorted(SUFFIXES, key=len, reverse=True)) + ")"
_UNIT = "(?:" + "|".join(re.escape(u) for u in UNIT_TYPES) + ")"
FAST_PATTERN = (
    rf"^{_NUM}\s+(?:(?P<predir>{_DIR})\s+)?(?P<name>{_WORD}(?:\s+{_WORD})*?)"
    rf"(?:\s+(?P<suffix>{_SUF}))?(?:\s+(?P<postdir>{_DIR}))?"
    rf"(?:\s+{_UNIT}\s*#?\s*(?P<unit>[A-Z0-9\-]+))?$"
)
_FAST = re.compile(FAST_PATTERN)


@dataclass(frozen=True)
class ParsedAddresses:
    """Parsed parts aligned to the input, plus how each distinct address was parsed."""

    parts: pd.DataFrame  # columns: address, house_number, street, unit, household_id, building_id
    n_distinct: int
    n_fast: int
    n_parser: int
    n_unparsed: int


def normalize_text(values: pd.Series) -> pd.Series:
    """Uppercase, drop periods and commas, space out ``#``, collapse whitespace."""
    out = values.astype("str").str.upper()
    out = out.str.replace(r"[.,;]", " ", regex=True).str.replace("#", " # ", regex=False)
    return out.str.replace(r"\s+", " ", regex=True).str.strip()


def normalize_zip(values: pd.Series) -> pd.Series:
    """Return 5-digit US ZIP codes: ZIP+4 and ``02903 1234`` cut to 5, 4-digit ZIPs left-padded; else null."""
    digits = values.astype("str").str.replace(r"[^0-9]", "", regex=True)
    five = digits.str.slice(0, 5)
    five = five.where(digits.str.len() != 4, digits.str.zfill(5))
    five = five.where(digits.str.len() != 8, digits.str.slice(0, 4).str.zfill(5))  # 4-digit ZIP + 4
    return five.where(five.str.fullmatch(r"\d{5}").fillna(False).astype(bool)).astype("str")


def _clean_unit(unit: pd.Series) -> pd.Series:
    u = unit.fillna("").astype("str").str.replace(r"^[#\-]+", "", regex=True)
    numeric = u.str.fullmatch(r"0*\d+").fillna(False).astype(bool)
    return u.where(~numeric, u.str.lstrip("0").replace("", "0"))


def _std(series: pd.Series, table: dict[str, str]) -> pd.Series:
    s = series.fillna("").astype("str")
    return s.map(lambda v: table.get(v, v)) if len(s) < 64 else s.replace(table)


def _usaddress(texts: list[str]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for text in texts:
        try:
            tags, _ = usaddress.tag(text)
        except usaddress.RepeatedLabelError:
            rows.append({"ok": False})
            continue
        num = tags.get("AddressNumber")
        name = tags.get("StreetName")
        if not num or not name:
            box = tags.get("USPSBoxID")
            if box:
                rows.append({"ok": True, "num": "PO BOX", "name": box})
            else:
                rows.append({"ok": False})
            continue
        rows.append({
            "ok": True,
            "num": (tags.get("AddressNumberPrefix", "") + num + tags.get("AddressNumberSuffix", "")).strip(),
            "predir": tags.get("StreetNamePreDirectional", ""),
            "name": " ".join(filter(None, [tags.get("StreetNamePreType", ""), name])).strip(),
            "suffix": tags.get("StreetNamePostType", ""),
            "postdir": tags.get("StreetNamePostDirectional", ""),
            "unit": tags.get("OccupancyIdentifier", tags.get("SubaddressIdentifier", "")),
        })
    frame = pd.DataFrame(rows, columns=["ok", "num", "predir", "name", "suffix", "postdir", "unit"])
    return frame.fillna("")


def _hash_ids(keys: pd.Series, prefix: str) -> pd.Series:
    hashed = pd.util.hash_pandas_object(keys, index=False, hash_key="geo_segment_2026").to_numpy()
    hexed = np.frombuffer(hashed.astype(">u8").tobytes().hex().encode("ascii"), dtype="S16").astype("U16")
    return prefix + pd.Series(hexed, index=keys.index, dtype="str")


def parse_addresses(addresses: pd.Series, *, zip5: pd.Series | None = None, city: pd.Series | None = None) -> (
    ParsedAddresses
):
    """Parse one-line street addresses and build household and building ids.

    Parameters
    ----------
    addresses
        One-line residential addresses ("123 N Elmwood Ave Apt 3"); nulls allowed.
    zip5, city
        Aligned to ``addresses``; the ZIP (else the city) makes the keys unique across towns.

    Returns
    -------
    ParsedAddresses
        ``parts`` aligned to ``addresses``' index with string columns ``address`` (normalized), ``house_number``,
        ``street`` (pre-directional, name, suffix, post-directional), ``unit``, ``household_id``, ``building_id``.
        A missing address gives null ids.

    Examples
    --------
    >>> p = parse_addresses(pd.Series(["12 North Main Street Apt. 04", "12 N MAIN ST #4"]))
    >>> p.parts["household_id"].nunique(), p.parts.loc[0, "street"], p.parts.loc[0, "unit"]
    (1, 'N MAIN ST', '4')
    """
    place = zip5 if zip5 is not None else city
    raw = addresses.astype("str").fillna("")
    place_raw = (
        place.astype("str").fillna("").str.upper().str.strip() if place is not None
        else pd.Series("", index=addresses.index, dtype="str")
    )
    # everything below works on distinct (address, place) pairs, then is spread back with the codes
    a_codes, a_uniques = pd.factorize(raw, sort=False)
    p_codes, p_uniques = pd.factorize(place_raw, sort=False)
    width = max(len(p_uniques), 1)
    codes, pair_keys = pd.factorize(a_codes.astype(np.int64) * width + p_codes, sort=False)
    norm_a = normalize_text(pd.Series(a_uniques, dtype="str"))
    norm = pd.Series(norm_a.to_numpy()[pair_keys // width], dtype="str")
    place_norm = pd.Series(np.asarray(p_uniques, dtype=object)[pair_keys % width], dtype="str").fillna("")
    d_codes, d_uniques = pd.factorize(norm, sort=False)
    distinct = pd.Series(d_uniques, dtype="str")
    fast = distinct.str.extract(FAST_PATTERN)
    ok_fast = fast["num"].notna() & (distinct != "")
    need = distinct[~ok_fast & (distinct != "")]
    parsed = _usaddress(need.tolist())
    parsed.index = need.index
    ok_parser = parsed["ok"].astype(bool) if len(parsed) else pd.Series(dtype=bool)
    parts = fast[["num", "frac", "predir", "name", "suffix", "postdir", "unit"]].fillna("").astype("str")
    if len(parsed):
        good = parsed.index[ok_parser.to_numpy()]
        for col in ("num", "predir", "name", "suffix", "postdir", "unit"):
            parts.loc[good, col] = parsed.loc[good, col].str.upper()
    parsed_ok = ok_fast.copy()
    if len(parsed):
        parsed_ok.loc[parsed.index] = ok_parser.to_numpy()
    parts["predir"] = _std(parts["predir"], DIRECTIONS)
    parts["postdir"] = _std(parts["postdir"], DIRECTIONS)
    parts["suffix"] = _std(parts["suffix"], SUFFIXES)
    parts["unit"] = _clean_unit(parts["unit"])
    house = (parts["num"] + " " + parts["frac"]).str.strip()
    street = (parts["predir"] + " " + parts["name"] + " " + parts["suffix"] + " " + parts["postdir"])
    street = street.str.replace(r"\s+", " ", regex=True).str.strip()
    building = (house + " " + street).str.strip()
    # unparsed addresses keep their normalized text as the building, with no unit
    building = building.where(parsed_ok, distinct)
    parts["unit"] = parts["unit"].where(parsed_ok, "")
    full = building.where(parts["unit"] == "", building + " UNIT " + parts["unit"])
    per_pair = pd.DataFrame(
        {
            S.ADDRESS: full.to_numpy()[d_codes],
            S.HOUSE_NUMBER: house.where(parsed_ok, "").to_numpy()[d_codes],
            S.STREET: street.where(parsed_ok, "").to_numpy()[d_codes],
            S.UNIT: parts["unit"].to_numpy()[d_codes],
        }
    ).astype("str")
    key_b = pd.Series(building.to_numpy()[d_codes], dtype="str") + "|" + place_norm
    per_pair[S.HOUSEHOLD_ID] = _hash_ids(key_b + "|" + per_pair[S.UNIT], "h")
    per_pair[S.BUILDING_ID] = _hash_ids(key_b, "b")
    per_pair.loc[(norm == "").to_numpy(), :] = None
    per_row = per_pair.iloc[codes].set_axis(addresses.index)
    n_parser = int(ok_parser.sum()) if len(parsed) else 0
    return ParsedAddresses(
        parts=per_row,
        n_distinct=int((distinct != "").sum()),
        n_fast=int(ok_fast.sum()),
        n_parser=n_parser,
        n_unparsed=int(len(need) - n_parser),
    )


def natural_unit_key(units: pd.Series) -> pd.DataFrame:
    """Return sort keys so units sort naturally ("2" < "10" < "10A" < "B"); sort by both columns in order.

    Examples
    --------
    >>> u = pd.Series(["10", "2", "B", "10A", ""])
    >>> k = natural_unit_key(u)
    >>> u.loc[k.sort_values(["unit_num", "unit_rest"]).index].tolist()
    ['', '2', '10', '10A', 'B']
    """
    text = units.fillna("").astype("str")
    lead = text.str.extract(r"^(\d+)")[0]
    num = pd.to_numeric(lead, errors="coerce").fillna(np.inf)
    num = num.where(text != "", -1.0)
    rest = text.str.replace(r"^\d+", "", regex=True)
    return pd.DataFrame({"unit_num": num.astype("float64"), "unit_rest": rest}, index=units.index)
