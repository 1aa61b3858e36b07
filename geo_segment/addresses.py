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
import pyarrow as pa
import pyarrow.compute as pc
import usaddress

from geo_segment import schema as S
from geo_segment._vector import (
    STR_DTYPE,
    code_width,
    factorize_str,
    side_by_side,
    sorted_text_categorical,
    text_from_codes,
    usable_cores,
)

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
#: what follows the house number (and its "1/2"): directions, street name, suffix, unit
_TAIL = (
    rf"(?:(?P<predir>{_DIR})\s+)?(?P<name>{_WORD}(?:\s+{_WORD})*?)"
    rf"(?:\s+(?P<suffix>{_SUF}))?(?:\s+(?P<postdir>{_DIR}))?"
    rf"(?:\s+{_UNIT}\s*#?\s*(?P<unit>[A-Z0-9\-]+))?$"
)
FAST_PATTERN = rf"^{_NUM}\s+{_TAIL}"
_FAST = re.compile(FAST_PATTERN)
#: from this many rows the id columns are built on a second thread beside the text columns
_ROWS_PER_THREAD = 200_000
_TAIL_PATTERN = rf"^{_TAIL}"
_TAIL_GROUPS = tuple(re.compile(_TAIL_PATTERN).groupindex)
#: the house number token of ``_NUM`` alone
_NUM_TOKEN = r"^\d+[A-Z]?(?:-\d+[A-Z]?)?$"
#: text that normalization may change: any character but capitals, digits, space and ``'/&-``, or a space that is
#: doubled, leading or trailing (text without any of these is its own normalized form)
_MAY_CHANGE = r"[^A-Z0-9 '/&\-]|  |^ | $"


@dataclass(frozen=True)
class ParsedAddresses:
    """Parsed parts aligned to the input, plus how each distinct address was parsed."""

    parts: pd.DataFrame  # columns: address, house_number, street, unit, household_id, building_id
    n_distinct: int
    n_fast: int
    n_parser: int
    n_unparsed: int
    n_households: int = 0
    n_buildings: int = 0


def _to_arrow(values: pd.Series) -> pa.Array:
    """The Arrow array behind a string Series (no copy when pandas already holds Arrow strings)."""
    arr = pa.array(values.array, from_pandas=True) if len(values) else pa.array([], pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _arrow_normalize(arr: pa.Array) -> pa.Array:
    out = pc.utf8_upper(arr)
    out = pc.replace_substring_regex(out, r"[.,;]", " ")
    out = pc.replace_substring(out, "#", " # ")
    out = pc.replace_substring_regex(out, r"\s+", " ")
    return pc.utf8_trim_whitespace(out)


def normalize_text(values: pd.Series) -> pd.Series:
    """Uppercase, drop periods and commas, space out ``#``, collapse whitespace (vectorized, Arrow kernels)."""
    return pd.Series(_arrow_normalize(_to_arrow(values)).to_pandas(), index=values.index, dtype="str")


def normalize_zip(values: pd.Series) -> pd.Series:
    """Return 5-digit US ZIP codes: ZIP+4 and ``02903 1234`` cut to 5, 4-digit ZIPs left-padded; else null."""
    digits = values.astype("str").str.replace(r"[^0-9]", "", regex=True)
    five = digits.str.slice(0, 5)
    five = five.where(digits.str.len() != 4, digits.str.zfill(5))
    five = five.where(digits.str.len() != 8, digits.str.slice(0, 4).str.zfill(5))  # 4-digit ZIP + 4
    return five.where(five.str.fullmatch(r"\d{5}").fillna(False).astype(bool)).astype("str")


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
    parts = ["num", "predir", "name", "suffix", "postdir", "unit"]
    # a part no row has is an all-NaN float column: filling it with "" needs object dtype (pandas 4 would raise)
    frame[parts] = frame[parts].astype(object).fillna("")
    return frame


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
    return _parse_addresses([addresses], zip5=zip5, city=city)


def _parse_addresses(source: list[pd.Series], *, zip5: pd.Series | None, city: pd.Series | None) -> ParsedAddresses:
    """:func:`parse_addresses` of ``source``'s one Series, which it takes out of the list: once the texts are
    numbered they go (a reader that hands over its only reference frees 5M addresses, about 130 MB, before the
    parts are built)."""
    addresses = source.pop()
    index, n_rows = addresses.index, len(addresses)
    place = zip5 if zip5 is not None else city
    # everything below works on distinct values, then is spread back with integer codes (missing addresses and
    # places are empty texts; the places are cleaned once per distinct value)
    a_codes, a_uniques = _factorize_filled(addresses)
    del addresses
    if place is not None:
        raw_codes, raw_places = _factorize_filled(place)
        place_codes, p_uniques = factorize_str(raw_places.str.upper().str.strip())
        p_codes = place_codes[raw_codes]
        del raw_codes, raw_places, place_codes
    else:
        p_codes, p_uniques = np.zeros(n_rows, dtype=np.int64), pd.Series([""], dtype="str")
    codes, pair_a, pair_p = _pairs(a_codes, p_codes, len(a_uniques), max(len(p_uniques), 1))
    norm_a, changed = _normalize_distinct(_to_arrow(a_uniques))
    if changed:  # some texts changed: two may now be one
        n_codes, n_uniques = factorize_str(pd.Series(norm_a.to_pandas(), dtype="str"))
        distinct = _to_arrow(n_uniques)  # distinct normalized addresses
        d_codes = n_codes[pair_a]  # pair -> distinct normalized address
        del n_codes, n_uniques
    else:  # already normalized: the distinct texts are the distinct addresses
        distinct, d_codes = norm_a, pair_a
    place_pair = _to_arrow(p_uniques).take(pa.array(pair_p))

    parts = _distinct_parts_threaded(distinct)
    nonempty, house, street, unit, building, full = (parts.nonempty, parts.house, parts.street, parts.unit,
                                                     parts.building, parts.full)
    n_fast, n_parser, n_unparsed = parts.n_fast, parts.n_parser, parts.n_unparsed
    del parts

    # per (address, place) pair: ids hash the building with its place; households add the unit
    take_d = pa.array(d_codes)
    key_b = pc.binary_join_element_wise(building.take(take_d), place_pair, "|")
    unit_pair = unit.take(take_d)
    hb = _hash64(key_b)
    hh = _combine_hash(hb, _hash64(unit_pair))
    empty_pair = ~nonempty[d_codes]
    # the per-distinct intermediates go before millions of rows are built (peak memory)
    del a_codes, a_uniques, p_codes, p_uniques, pair_a, pair_p, norm_a, distinct
    del place_pair, building, key_b, unit_pair, take_d
    # rows take their parts straight from the distinct addresses (one take per column, not two) and their ids
    # from the hashes of their pair; rows without an address are null throughout. With a second core, half the
    # columns are built on a helper thread (sorts, gathers and Arrow kernels release the GIL): the parse ends a big
    # read, with the other core otherwise waiting for it
    row_d = d_codes[codes]
    empty_rows = empty_pair[codes]
    if empty_rows.any():
        row_d[empty_rows] = -1

    def households_and_parts() -> tuple[tuple[pd.Series, int], dict[str, pd.Series]]:
        # few distinct house numbers, streets and units: text categoricals (the column contract's compact text)
        return (_id_categorical(hh, empty_pair, codes, "h", index),
                {S.HOUSE_NUMBER: text_from_codes(row_d, house, index), S.STREET: text_from_codes(row_d, street, index),
                 S.UNIT: text_from_codes(row_d, unit, index)})

    def buildings_and_addresses() -> tuple[tuple[pd.Series, int], pd.Series]:
        take_rows = pa.array(row_d, mask=empty_rows if empty_rows.any() else None)
        return _id_categorical(hb, empty_pair, codes, "b", index), _strings(full.take(take_rows), index)

    ((households, n_households), texts), ((buildings, n_buildings), address) = side_by_side(
        households_and_parts, buildings_and_addresses, threaded=n_rows >= _ROWS_PER_THREAD and usable_cores() > 1)
    frame = pd.DataFrame({S.ADDRESS: address, **texts, S.HOUSEHOLD_ID: households, S.BUILDING_ID: buildings},
                         index=index)
    return ParsedAddresses(
        parts=frame,
        n_distinct=int(nonempty.sum()),
        n_fast=n_fast,
        n_parser=n_parser,
        n_unparsed=n_unparsed,
        n_households=n_households,
        n_buildings=n_buildings,
    )


#: distinct addresses per thread of their parts (below twice this, one thread)
_DISTINCT_PER_THREAD = 100_000


@dataclass(frozen=True)
class _DistinctParts:
    """The standardized parts of each distinct normalized address, and how each was parsed."""

    nonempty: np.ndarray
    house: pa.Array
    street: pa.Array
    unit: pa.Array
    building: pa.Array
    full: pa.Array
    n_fast: int
    n_parser: int
    n_unparsed: int


def _distinct_parts_threaded(distinct: pa.Array) -> _DistinctParts:
    """:func:`_distinct_parts` of the two halves of ``distinct`` side by side (Arrow's string kernels release
    Python's lock), when there are enough and a second core: the rest of the read waits for the addresses, and
    the other core would otherwise be idle. Each text's parts depend on that text alone, so the halves' results,
    concatenated, are the whole's."""
    n = len(distinct)
    if n < 2 * _DISTINCT_PER_THREAD or usable_cores() < 2:
        return _distinct_parts(distinct)
    half = n // 2
    a, b = side_by_side(lambda: _distinct_parts(distinct.slice(0, half)),
                        lambda: _distinct_parts(distinct.slice(half)), threaded=True)

    def cat(x: pa.Array, y: pa.Array) -> pa.Array:
        return pa.concat_arrays([x, y.cast(x.type)])

    return _DistinctParts(
        nonempty=np.concatenate([a.nonempty, b.nonempty]), house=cat(a.house, b.house),
        street=cat(a.street, b.street), unit=cat(a.unit, b.unit), building=cat(a.building, b.building),
        full=cat(a.full, b.full), n_fast=a.n_fast + b.n_fast, n_parser=a.n_parser + b.n_parser,
        n_unparsed=a.n_unparsed + b.n_unparsed)


def _distinct_parts(distinct: pa.Array) -> _DistinctParts:
    """House number, street, unit, building and full address of each distinct normalized address: the fast
    path's where it matches, else the parser's; an address neither parses keeps its text as the building."""
    nonempty = pc.not_equal(distinct, "").to_numpy(zero_copy_only=False)
    fast = _fast_parts(distinct)
    ok_fast = fast.ok & nonempty
    need_idx = np.flatnonzero(~ok_fast & nonempty)
    parsed = _usaddress(distinct.take(pa.array(need_idx, pa.int64())).to_pylist())
    ok_parser = parsed["ok"].to_numpy(dtype=bool) if len(parsed) else np.zeros(0, bool)
    parsed_ok = ok_fast.copy()
    parsed_ok[need_idx] = ok_parser
    house, street, unit = fast.house, fast.street, fast.unit
    if ok_parser.any():  # the parser's parts take the same standardization as the fast path's
        mask = np.zeros(len(distinct), bool)
        mask[need_idx[ok_parser]] = True
        p_fields = {col: pa.array(parsed.loc[ok_parser, col].str.upper().tolist(), pa.string())
                    for col in ("num", "predir", "name", "suffix", "postdir", "unit")}
        p_house, p_street, p_unit = _standard_parts(
            p_fields["num"], pa.array([""] * len(p_fields["num"]), pa.string()), p_fields["predir"],
            p_fields["name"], p_fields["suffix"], p_fields["postdir"], p_fields["unit"])
        pmask = pa.array(mask)
        house = pc.replace_with_mask(house, pmask, p_house)
        street = pc.replace_with_mask(street, pmask, p_street)
        unit = pc.replace_with_mask(unit, pmask, p_unit)
    building = _join_nonempty([house, street])
    ok = pa.array(parsed_ok)
    # unparsed addresses keep their normalized text as the building, with no unit
    building = pc.if_else(ok, building, distinct)
    unit = pc.if_else(ok, unit, "")
    house = pc.if_else(ok, house, "")
    street = pc.if_else(ok, street, "")
    full = pc.if_else(pc.equal(unit, ""), building, pc.binary_join_element_wise(building, "UNIT", unit, " "))
    n_parser = int(ok_parser.sum())
    return _DistinctParts(nonempty=nonempty, house=house, street=street, unit=unit, building=building, full=full,
                          n_fast=int(ok_fast.sum()), n_parser=n_parser, n_unparsed=int(len(need_idx) - n_parser))


def _factorize_filled(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``factorize_str(values.astype("str").fillna(""))`` without filling millions of rows: nulls take the code of
    the empty text."""
    codes, uniques = factorize_str(values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("str"))
    missing = codes < 0
    if missing.any():
        empty = np.flatnonzero((uniques == "").to_numpy(dtype=bool))
        if len(empty):
            at = int(empty[0])
        else:
            at = len(uniques)
            uniques = pd.concat([uniques, pd.Series([""], dtype="str")], ignore_index=True)
        codes[missing] = at
    return codes, uniques


def _normalize_distinct(arr: pa.Array) -> tuple[pa.Array, bool]:
    """:func:`_arrow_normalize` on the texts it may change only (one regex test finds them); and whether any did.

    Standardized state files are mostly normalized already: the four passes then run on the few others.
    """
    may = pc.match_substring_regex(arr, _MAY_CHANGE)
    if not pc.any(may).as_py():
        return arr, False
    idx = np.flatnonzero(may.to_numpy(zero_copy_only=False))
    return pc.replace_with_mask(arr, may, _arrow_normalize(arr.take(pa.array(idx, pa.int64())))), True


@dataclass(frozen=True)
class _FastParts:
    """The fast path's standardized parts of each distinct address (meaningful where ``ok``)."""

    ok: np.ndarray
    house: pa.Array
    street: pa.Array
    unit: pa.Array


def _fast_parts(distinct: pa.Array) -> _FastParts:
    """Match :data:`FAST_PATTERN` in two steps, the second on far fewer texts.

    In normalized text (single spaces, no tabs), the pattern's house number is the first word, then ``1/2`` when
    the next word is ``1/2`` and more follows, then the rest: there is one way to cut any text the pattern matches,
    and no other cut can match. So the number is checked on its own (a test without captures), and the pattern's
    capturing tail runs once per distinct *rest* ("N MAIN ST APT 4"), which a state repeats for every house
    number of the street: 2.2M addresses had 51k rests. The street and unit are standardized per rest as well.
    """
    pieces = pc.split_pattern(distinct, " ", max_splits=1)  # [number, rest], or [text] without a space
    two = pc.list_value_length(pieces).to_numpy(zero_copy_only=False) == 2
    offsets = pieces.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    first = offsets[:-1] - offsets[0]
    values = pieces.flatten()
    num = values.take(pa.array(first))
    rest = pc.if_else(pa.array(two), values.take(pa.array(np.where(two, first + 1, first))), "")
    num_ok = pc.match_substring_regex(num, _NUM_TOKEN).to_numpy(zero_copy_only=False) & two
    has_frac = pc.starts_with(rest, "1/2 ")
    rest = pc.if_else(has_frac, pc.utf8_slice_codeunits(rest, 4), rest)
    frac = pc.if_else(has_frac, "1/2", "")
    rest_enc = pc.dictionary_encode(rest)
    rest_codes = pa.array(rest_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64))
    tail = pc.extract_regex(rest_enc.dictionary, _TAIL_PATTERN)
    tail_ok = tail.is_valid().to_numpy(zero_copy_only=False)
    t = {name: pc.fill_null(tail.field(name), "") for name in _TAIL_GROUPS}
    empty = pa.array([""] * len(rest_enc.dictionary), pa.string())
    _, street_r, unit_r = _standard_parts(empty, empty, t["predir"], t["name"], t["suffix"], t["postdir"], t["unit"])
    house = _join_nonempty([num, frac])
    return _FastParts(ok=num_ok & tail_ok[rest_codes.to_numpy()], house=house, street=street_r.take(rest_codes),
                      unit=unit_r.take(rest_codes))


def _standard_parts(num: pa.Array, frac: pa.Array, predir: pa.Array, name: pa.Array, suffix: pa.Array,
                    postdir: pa.Array, unit: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """House number, street and unit from parsed parts: standard directions and suffixes, natural unit numbers."""
    predir_std = _std_arrow(predir, DIRECTIONS)
    postdir_std = _std_arrow(postdir, DIRECTIONS)
    suffix_std = _std_arrow(suffix, SUFFIXES)
    house = _join_nonempty([num, frac])
    street = _join_nonempty([predir_std, name, suffix_std, postdir_std])
    return house, street, _clean_unit_arrow(unit)


def _pairs(a_codes: np.ndarray, p_codes: np.ndarray, n_addresses: int, width: int) -> (
    tuple[np.ndarray, np.ndarray, np.ndarray]
):
    """Number the distinct (address, place) pairs: each row's pair, and each pair's address and place codes.

    Most addresses come with one place, so a pair is numbered by its address, and only rows whose address also
    comes with another place are hashed (the numbering differs from first appearance; nothing depends on it).
    """
    some_place = np.zeros(n_addresses, dtype=np.int64)
    some_place[a_codes] = p_codes  # one of the places each address comes with
    codes = a_codes.astype(np.int64, copy=True)
    other = p_codes != some_place[a_codes]
    pair_a, pair_p = np.arange(n_addresses, dtype=np.int64), some_place
    if other.any():
        extra, keys = pd.factorize(a_codes[other].astype(np.int64) * width + p_codes[other], sort=False)
        codes[other] = n_addresses + extra
        pair_a = np.concatenate([pair_a, keys // width])
        pair_p = np.concatenate([pair_p, keys % width])
    return codes, pair_a, pair_p


def _strings(arr: pa.Array, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(arr, dtype=STR_DTYPE), index=index)  # type: ignore[call-arg]


def _join_nonempty(parts: list[pa.Array]) -> pa.Array:
    """Join string columns with single spaces, skipping empty parts (literal replaces, no regex).

    (``binary_join_element_wise(..., null_handling="skip")`` would do it in one kernel, but pyarrow drops rows
    whose parts are all null.)
    """
    joined = pc.binary_join_element_wise(*parts, " ")
    for _ in range(max(len(parts) - 2, 1)):
        joined = pc.replace_substring(joined, "  ", " ")
    return pc.utf8_trim_whitespace(joined)


def _std_arrow(arr: pa.Array, table: dict[str, str]) -> pa.Array:
    """Map a column with few distinct values through ``table`` (unmapped values stay)."""
    enc = pc.dictionary_encode(arr)
    mapped = pa.array([table.get(v, v) for v in enc.dictionary.to_pylist()], pa.string())
    return mapped.take(enc.indices)


def _clean_unit_arrow(arr: pa.Array) -> pa.Array:
    u = pc.replace_substring_regex(pc.fill_null(arr, ""), r"^[#\-]+", "")
    numeric = pc.match_substring_regex(u, r"^0*\d+$")
    stripped = pc.utf8_ltrim(u, "0")
    stripped = pc.if_else(pc.equal(stripped, ""), "0", stripped)
    return pc.if_else(numeric, stripped, u)


def _hash64(arr: pa.Array) -> np.ndarray:
    """Stable 64-bit hashes of strings (pandas' SipHash with a fixed key), hashing each distinct value once.

    The texts go to the hash as Python ``bytes`` of their UTF-8, which is what pandas hashes a ``str`` as: the same
    hashes, without decoding every text into a ``str`` and encoding it back (0.45 -> 0.2 s for 2.2M keys).
    """
    # mostly distinct (a sample decides), or with nulls: hash directly; both ways give the same hashes
    sample = (arr if len(arr) <= 8192
              else arr.take(np.linspace(0, len(arr) - 1, 4096).astype(np.int64)))
    if arr.null_count or (len(arr) > 64 and pc.count_distinct(sample).as_py() > len(sample) // 2):
        return _siphash(arr)
    enc = pc.dictionary_encode(arr)
    return _siphash(enc.dictionary)[enc.indices.to_numpy(zero_copy_only=False)]


def _siphash(texts: pa.Array) -> np.ndarray:
    """pandas' keyed SipHash of each text's UTF-8 bytes."""
    utf8 = texts.cast(pa.large_binary() if pa.types.is_large_string(texts.type) else pa.binary())
    values = utf8.to_numpy(zero_copy_only=False)  # bytes objects (None for nulls, hashed as pandas hashes None)
    return np.asarray(pd.util.hash_array(values, hash_key="geo_segment_2026", categorize=False), dtype=np.uint64)


def _combine_hash(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (a * np.uint64(0x9E3779B97F4A7C15)) ^ (b + np.uint64(0x632BE59BD9B4E019) + (a << np.uint64(6)))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


#: the 4 lowercase hex digits of every 16-bit value, as the 4 bytes of one uint32
_HEX4 = np.frombuffer(_HEX_DIGITS[np.arange(1 << 16)[:, None] >> np.array([12, 8, 4, 0]) & 15].tobytes(),
                      dtype=np.uint32)


def _id_categorical(hashed: np.ndarray, empty: np.ndarray, codes: np.ndarray, prefix: str, index: pd.Index) -> (
    tuple[pd.Series, int]
):
    """Household or building ids as a text categorical, and how many there are.

    ``hashed`` and ``empty`` are per (address, place) pair, ``codes`` the pair of each row. The categories are
    ``prefix`` + the 16 hex digits of each distinct hash: fixed-width hex sorts as its number does, so sorting the
    distinct hashes as integers gives the sorted categories without comparing a string.
    """
    # by sorting, not hashing: numpy's unique hashes (1.7 s for 2M pairs) and searchsorted misses the caches
    kept = np.flatnonzero(~empty)
    order = kept[np.argsort(hashed[kept])]
    ordered = hashed[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    distinct = ordered[first]
    # pair -> id number in the categorical's code width: the rows' gather then writes no 64-bit codes
    pair_code = np.full(len(hashed), -1, dtype=code_width(len(distinct)))
    pair_code[order] = np.cumsum(first) - 1
    texts = _hex_ids(distinct, np.arange(len(distinct)), prefix, np.zeros(len(distinct), dtype=bool))
    return sorted_text_categorical(pair_code[codes], texts, index=index), len(distinct)


def _hex_ids(hashed: np.ndarray, codes: np.ndarray, prefix: str, empty: np.ndarray) -> pa.Array:
    """``prefix`` + 16 lowercase hex digits of ``hashed[codes]``, written straight into one Arrow buffer (no Python
    strings, no intermediate hex text).

    Each row's 8-byte hash is gathered, then its digits come 4 at a time from a 256 kB table, in slices of rows
    small enough for the caches (gathering 17-byte texts made once per hash missed the caches twice as often).
    """
    lead = len(prefix)
    width = 16 + lead
    n = len(codes)
    data = np.empty((n, width), dtype=np.uint8)
    data[:, :lead] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    step = 1 << 16
    for start in range(0, n, step):
        rows = hashed[codes[start : start + step]]
        words = rows.astype(">u8").view(">u2").reshape(len(rows), 4)  # most significant 16 bits first
        data[start : start + step, lead:] = _HEX4[words].view(np.uint8).reshape(len(rows), 16)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    ids = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    if empty.any():
        ids = pc.if_else(pa.array(empty), pa.scalar(None, pa.large_string()), ids)
    return ids


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
