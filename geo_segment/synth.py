"""Deterministic synthetic voter files with planted truth.

:func:`generate_population` builds a fictional electorate on real census blocks (by default the 3,014 blocks of
Providence, RI): synthetic streets, addresses, households, multi-unit buildings, vote history, campaign signals and
a few planted high-engagement *pockets*. :func:`write_layout` writes it exactly as one of the built-in state layouts
(``nc``, ``oh``, ``fl``, ``mi``, ``pa``) publishes its files, plus what a geocoding vendor returns, the signals feed
and the planted truth, optionally with deliberately bad rows at recorded line numbers.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same arguments give the same frames and the same
bytes on disk. Contact data is fictional by construction: phones are in the reserved 401-555-01xx range and e-mail
addresses are at ``example.com``.

How the streets work
--------------------
Every populated block gets one street: a straight segment along the long axis of the block's minimum rotated
rectangle, through a point inside the block (clipped to the block shrunk by a few metres). Buildings sit a few
metres to the left (odd house numbers) or right (even numbers) of the segment, and numbers rise from the segment's
start (its west or south end) to its end. Street names are unique per segment, so ``(predir, street_name,
street_type)`` identifies a street in :attr:`SyntheticPopulation.streets`.

How the pockets work
--------------------
``n_pockets`` centres are drawn among populated blocks (weighted by voters, at least 1 km apart when possible);
buildings within 150-250 m of a centre form the pocket. Its voters get a higher turnout propensity, and each pocket
emits a dense burst of signals (pings, check-ins, RSVPs, ...) on top of the city-wide background.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely

from geo_segment import schema as S
from geo_segment.errors import ConfigError
from geo_segment.io.atomic import atomic_path, write_csv, write_parquet
from geo_segment.layouts import BUILTIN_LAYOUTS, Layout, load_layout

__all__ = ["BAD_ROW_COLUMNS", "DEFAULT_BLOCKS", "PlantedOutcome", "SyntheticPopulation", "draw_outcome_election",
           "generate_population", "write_layout"]

#: The census blocks used when ``blocks`` is not given (Providence, RI, 2010; MGGG Redistricting Lab, ODbL).
DEFAULT_BLOCKS = Path(__file__).with_name("data") / "providence_blocks_2010.parquet"

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# --- columns of the synthetic frames beyond the contract's -----------------------------------------------------
BIRTH_DATE = "birth_date"
HOUSE_NUMBER_SUFFIX = "house_number_suffix"
PREDIR = "predir"
STREET_NAME = "street_name"
STREET_TYPE = "street_type"
GENDER = "gender"
RACE_ETHNICITY = "race_ethnicity"
BLOCK_GEOID = "block_geoid"
WARD = "ward"
TRUE_PROPENSITY = "true_propensity"
POCKET_ID = "pocket_id"
HOUSEHOLD_KEY = "household_key"
BUILDING_KEY = "building_key"
N_VOTES = "n_votes"
TITLE = "title"
RADIUS_M = "radius_m"
N_VOTERS = "n_voters"

# --- fixed facts of the fictional electorate --------------------------------------------------------------------
_AS_OF = date(2025, 1, 15)  # the date the synthetic files were "extracted"
_CITY = "PROVIDENCE"
_STATE = "RI"
_COUNTY = "PROVIDENCE"
_COUNTY_NUMBER = "7"  # Providence County, FIPS 44007
_PHONE_PREFIX = "40155501"  # 401-555-0100 .. 401-555-0199 is reserved for fiction
_EMAIL_DOMAIN = "example.com"
_SIGNALS_START = pd.Timestamp("2024-06-01", tz="UTC")
_SIGNALS_END = pd.Timestamp("2024-11-05", tz="UTC")
_SETBACK_M = 8.0  # streets run at least this far inside their block when the block allows it
_MIN_STREET_M = 16.0

_ZIP_CENTROIDS: tuple[tuple[str, float, float], ...] = (
    ("02903", 41.8205, -71.4125),
    ("02904", 41.8560, -71.4350),
    ("02905", 41.7880, -71.4020),
    ("02906", 41.8365, -71.3935),
    ("02907", 41.7985, -71.4265),
    ("02908", 41.8385, -71.4385),
    ("02909", 41.8195, -71.4480),
)
_ZIP_CAMPUS = ("02912", 41.8262, -71.4032, 350.0)  # Brown University: blocks within 350 m

_PARTIES = ("DEM", "REP", "UNA", "LIB", "GRE")
_PARTY_P = (0.45, 0.15, 0.37, 0.02, 0.01)
_PARTY_DESC = {"DEM": "DEMOCRATIC", "REP": "REPUBLICAN", "UNA": "UNAFFILIATED", "LIB": "LIBERTARIAN",
               "GRE": "GREEN"}
_PARTY_LOGIT = np.array([0.25, 0.30, -0.35, -0.20, 0.0])
#: standard deviations of the hidden household and individual turnout effects (logit scale)
_HOUSEHOLD_SD = 0.25
_PERSON_SD = 0.3
_METHODS = ("polls", "early", "mail", "absentee", "provisional")
_GROUPS = ("hispanic", "white", "black", "asian", "other")

_HOUSEHOLD_SIZE_P = (0.32, 0.34, 0.16, 0.12, 0.06)  # 1..5 voters
_MULTI_UNIT_P = 0.06  # share of buildings drawn as multi-unit (before splitting at block edges)
_UNIT_COUNTS = (2, 3, 4, 5, 6, 8, 10, 12)
_UNIT_COUNT_P = (0.22, 0.30, 0.12, 0.06, 0.10, 0.08, 0.05, 0.07)
_MAX_UNITS = max(_UNIT_COUNTS)


def _general_election_day(year: int) -> date:
    """The Tuesday after the first Monday of November."""
    nov1 = date(year, 11, 1)
    first_monday = nov1 + timedelta(days=(7 - nov1.weekday()) % 7)
    return first_monday + timedelta(days=1)


# date, type, title, turnout shift on the logit scale, method mix (polls, early, mail, absentee, provisional)
_ELECTIONS: tuple[tuple[date, str, str, float, tuple[float, ...]], ...] = (
    (date(2016, 3, 15), "presidential_primary", "PRESIDENTIAL PRIMARY", -1.0, (0.68, 0.22, 0.07, 0.02, 0.01)),
    (_general_election_day(2016), "general", "GENERAL", 1.1, (0.55, 0.33, 0.09, 0.02, 0.01)),
    (date(2018, 5, 8), "primary", "PRIMARY", -1.5, (0.70, 0.20, 0.07, 0.02, 0.01)),
    (_general_election_day(2018), "general", "GENERAL", 0.0, (0.55, 0.33, 0.09, 0.02, 0.01)),
    (date(2019, 9, 10), "special", "SPECIAL GENERAL", -1.9, (0.75, 0.15, 0.08, 0.01, 0.01)),
    (date(2020, 3, 3), "presidential_primary", "PRESIDENTIAL PRIMARY", -0.9, (0.66, 0.24, 0.07, 0.02, 0.01)),
    (_general_election_day(2020), "general", "GENERAL", 1.3, (0.22, 0.42, 0.33, 0.02, 0.01)),
    (_general_election_day(2021), "general", "MUNICIPAL GENERAL", -1.7, (0.75, 0.15, 0.08, 0.01, 0.01)),
    (date(2022, 5, 17), "primary", "PRIMARY", -1.4, (0.68, 0.22, 0.07, 0.02, 0.01)),
    (_general_election_day(2022), "general", "GENERAL", 0.0, (0.50, 0.38, 0.09, 0.02, 0.01)),
    (date(2024, 3, 5), "presidential_primary", "PRESIDENTIAL PRIMARY", -1.0, (0.66, 0.24, 0.07, 0.02, 0.01)),
    (_general_election_day(2024), "general", "GENERAL", 1.1, (0.40, 0.45, 0.12, 0.02, 0.01)),
)

_STREET_NAMES = (
    "ACADEMY", "ADELAIDE", "ADMIRAL", "ALABAMA", "ALGONQUIN", "ALVERSON", "AMHERST", "ANGELL", "ARCHER",
    "ARLINGTON", "ATWELLS", "AUBURN", "BABCOCK", "BAKER", "BALTIMORE", "BANCROFT", "BARNES", "BATEMAN", "BEACON",
    "BELLEVUE", "BENEFIT", "BERKSHIRE", "BLACKSTONE", "BLUFF", "BOWEN", "BRADFORD", "BRANCH", "BRIDGHAM",
    "BROAD", "BROOK", "BUTLER", "CAMP", "CANAL", "CARPENTER", "CARY", "CEDAR", "CENTRAL", "CHAD", "CHALKSTONE",
    "CHARLES", "CHESTNUT", "CHURCH", "CLIFFORD", "COLFAX", "CONGRESS", "CORLISS", "CRANSTON", "CYPRESS", "DEAN",
    "DEXTER", "DIAMOND", "DOUGLAS", "DUDLEY", "DUNCAN", "EATON", "EDDY", "ELLERY", "ELM", "ELMGROVE", "ELMWOOD",
    "ELTON", "EMPIRE", "ESSEX", "EVERETT", "FALCON", "FEDERAL", "FOUNTAIN", "FRANKLIN", "GALLATIN", "GANO",
    "GARFIELD", "GOVERNOR", "GRANT", "GREELEY", "GROTTO", "HARRISON", "HARTFORD", "HAWTHORNE", "HAZARD",
    "HIGHLAND", "HOLLY", "HOPE", "HOPKINS", "HUDSON", "IVES", "JACKSON", "JEFFERSON", "KNIGHT", "LAUREL",
    "LENOX", "LEXINGTON", "LINDEN", "LLOYD", "LOCUST", "LOWELL", "MANTON", "MAPLE", "MARGRAVE", "MASSASOIT",
    "MEETING", "MESSER", "MONTGOMERY", "MORRIS", "MOUNT", "NARRAGANSETT", "NEWARK", "OAKLAND", "OLNEY", "ORCHARD",
    "OXFORD", "PARADE", "PAVILION", "PEARL", "PLAINFIELD", "PLEASANT", "POCASSET", "POTTERS", "PRAIRIE",
    "PROSPECT", "PUBLIC", "RESERVOIR", "RHODE", "RIVER", "ROCHAMBEAU", "ROGER WILLIAMS", "SABIN", "SACKETT",
    "SAINT JAMES", "SCHOOL", "SESSIONS", "SHERIDAN", "SILVER", "SMITH", "SOMERSET", "SPRING", "SPRUCE", "SUMMIT",
    "SUMTER", "SUPERIOR", "SWAN", "SYCAMORE", "THAYER", "TRENTON", "UNION", "VALLEY", "VERNDALE", "WALDO",
    "WARRINGTON", "WASHINGTON", "WATERMAN", "WAYLAND", "WEBSTER", "WESTMINSTER", "WHITMARSH", "WICKENDEN",
    "WILLOW", "WINDSOR", "WOODBINE", "YORK",
)
_STREET_TYPES = ("ST", "AVE", "RD", "PL", "CT", "DR", "LN", "TER", "WAY", "BLVD", "PKWY", "SQ", "ROW", "CIR")
_STREET_TYPE_W = (40.0, 22.0, 6.0, 6.0, 5.0, 4.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0)
_PREDIRS = ("", "N", "S", "E", "W")
_PREDIR_W = (84.0, 4.0, 4.0, 4.0, 4.0)

# name pools by group (index into _GROUPS[:4]); "other" voters draw from any pool
_FIRST_F: tuple[tuple[str, ...], ...] = (
    ("María", "Ana", "Rosa", "Carmen", "Yesenia", "Lucía", "Sofía", "Guadalupe", "Isabel", "Daniela",
     "Valentina", "Ximena", "Beatriz", "Inés", "Marisol", "Yolanda", "Esperanza", "Mónica", "Aracely", "Ángela"),
    ("Mary", "Elizabeth", "Sarah", "Emily", "Kathleen", "Bridget", "Hannah", "Abigail", "Claire", "Zoë",
     "Chloé", "Renée", "Noémie", "Siobhán", "Anne-Marie", "Margaret", "Susan", "Jennifer", "Maeve", "Hélène"),
    ("Aisha", "Keisha", "Imani", "Nia", "Fatou", "Aminata", "Ngozi", "Chiamaka", "Danielle", "Jasmine",
     "Tanisha", "Latoya", "Adaeze", "Mariama", "Precious", "Shanice", "Folasade", "Ebony", "Khadija", "Zaïre"),
    ("Mai", "Linh", "Thảo", "Hạnh", "Sopheap", "Sreymom", "Mei", "Hua", "Priya", "Anjali",
     "Ji-yeon", "Yến", "Ngọc", "Soo-ah", "Xiu", "Kalpana", "Chanthy", "Phương", "Lan", "Yuki"),
)
_FIRST_M: tuple[tuple[str, ...], ...] = (
    ("José", "Juan", "Luis", "Carlos", "Jesús", "Miguel", "Ángel", "Ramón", "Joaquín", "Andrés",
     "Raúl", "Héctor", "Efraín", "Julio", "Pedro", "Francisco", "Néstor", "Rubén", "Óscar", "Germán"),
    ("John", "Michael", "Patrick", "Sean", "François", "João", "Björn", "Łukasz", "David", "James",
     "Thomas", "William", "Joseph", "Daniel", "Matthew", "Anthony", "Seamus", "René", "Jean-Luc", "Brendan"),
    ("DeShawn", "Malik", "Jamal", "Terrence", "Mamadou", "Ousmane", "Chukwuemeka", "Kwame", "Marcus",
     "Darnell", "Tyrone", "Ibrahima", "Kofi", "Olúwaṣeun", "Andre", "Jerome", "Moussa", "Cheikh", "Reggie",
     "Emeka"),
    ("Minh", "Dũng", "Tuấn", "Hùng", "Sokha", "Vannak", "Wei", "Jun", "Raj", "Arjun",
     "Min-jun", "Quốc", "Bảo", "Sang", "Hiroshi", "Vikram", "Sovann", "Long", "Khang", "Đức"),
)
_LAST: tuple[tuple[str, ...], ...] = (
    ("García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Pérez", "Sánchez", "Ramírez",
     "Torres", "Rivera", "Gómez", "Díaz", "Reyes", "Cruz", "Morales", "Ortiz", "Gutiérrez", "Peña", "Muñoz",
     "Castillo", "Jiménez", "Vásquez", "Santiago", "Rosario", "De La Cruz", "Del Valle", "Núñez", "Ibáñez",
     "Batista", "García-López", "Báez", "Quiñones", "Familia", "Matos"),
    ("O'Brien", "O'Connor", "D'Angelo", "DiPietro", "Smith", "Murphy", "Sullivan", "Kelly", "Russo", "Rossi",
     "Esposito", "Bianchi", "Silva", "Santos", "Medeiros", "Pacheco", "Amaral", "Conceição", "Gonçalves",
     "Müller", "Schröder", "Kowalski", "Dvořák", "McCarthy", "MacDonald", "Fitzgerald", "LeBlanc", "Côté",
     "Gagné", "Bélanger", "Smith-Jones", "D'Ambrosio", "Ó Súilleabháin", "Lindqvist", "Brennan"),
    ("Washington", "Johnson", "Williams", "Jackson", "N'Diaye", "Diallo", "Mbaye", "Sow", "Okafor", "Adeyemi",
     "Mensah", "Boateng", "Brown", "Davis", "Gomes", "Fonseca", "Lopes", "Barbosa", "Andrade", "Tavares",
     "Robinson", "Harris", "Thompson", "Ba", "Touré", "Nwosu", "Owusu", "Coleman", "Freeman", "Monteiro",
     "Da Graça", "Sané", "Kanté", "Achebe", "Baptiste"),
    ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Chea", "Sok", "Khieu", "Chen", "Wang", "Li",
     "Zhang", "Patel", "Shah", "Kim", "Lee", "Park", "Vang", "Xiong", "Huỳnh", "Phan", "Bùi", "Đỗ", "Ngô",
     "Lim", "Yang", "Choi", "Tanaka", "Gupta", "Singh", "Sim", "Chhay", "Lor"),
)
_SUFFIXES = ("", "JR", "SR", "II", "III", "IV")
_SUFFIX_P = (0.0, 0.6, 0.2, 0.1, 0.08, 0.02)
_BIRTH_STATES = ("", "RI", "MA", "NY", "CT", "NJ", "PR", "CA", "FL", "PA", "OC")
_BIRTH_STATE_P = (0.30, 0.30, 0.12, 0.07, 0.05, 0.03, 0.05, 0.02, 0.02, 0.02, 0.02)


def _upper_nfc(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(unicodedata.normalize("NFC", n).upper() for n in names)


_FOLD_EXTRA = str.maketrans({"đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss"})


def _ascii_fold(name: str) -> str:
    """Lower-case ASCII letters only: ``"Nguyễn"`` -> ``"nguyen"``, ``"O'Brien"`` -> ``"obrien"``."""
    text = unicodedata.normalize("NFKD", name.translate(_FOLD_EXTRA))
    return "".join(ch for ch in text.lower() if "a" <= ch <= "z")


@dataclass(frozen=True, eq=False)
class SyntheticPopulation:
    """A synthetic electorate and its planted truth, as returned by :func:`generate_population`.

    Attributes
    ----------
    voters
        One row per voter, sorted by ``voter_id``. Columns: ``voter_id``, ``last_name``, ``first_name``,
        ``middle_name``, ``name_suffix``, ``house_number`` (int64), ``house_number_suffix``, ``predir``,
        ``street_name``, ``street_type``, ``unit``, ``city``, ``state``, ``zip5``, ``lat``, ``lng`` (float64, the
        exact building location), ``birth_date``, ``registration_date`` (datetime64), ``party``, ``status``,
        ``county``, ``phone``, ``email``, ``gender``, ``race_ethnicity``, ``block_geoid``, ``ward`` (int64),
        ``source_precinct``, ``true_propensity`` (float64), ``pocket_id`` (int64, -1 outside pockets),
        ``household_key``, ``building_key``. Text columns are pandas ``str``; empty text is ``""``, never null.
    elections
        ``election_date`` (datetime64), ``election_type``, ``title``, ascending by date.
    history
        Long vote history, voted rows only: ``voter_id``, ``election_date``, ``election_type``, ``voted``
        (always True), ``method``, ``ballot_party`` (the ballot's party in primaries, ``""`` otherwise).
    signals
        ``timestamp`` (datetime64, UTC), ``kind``, ``lat``, ``lng``, ``weight``, ``voter_id``, ``device_id``,
        ``pocket_id`` (the pocket whose burst emitted the signal, -1 for background), sorted by time.
    streets
        GeoDataFrame (EPSG:4326) of the synthetic streets: ``predir``, ``street_name``, ``street_type``,
        ``block_geoid``, ``zip5``, ``length_m``, ``n_voters`` and a LineString running in the direction house
        numbers rise.
    pockets
        ``pocket_id``, ``lat``, ``lng``, ``radius_m``, ``n_voters``.
    seed
        The seed the population was drawn with.
    as_of
        The extract date of the synthetic files (ages and registrations are relative to it).
    """

    voters: pd.DataFrame
    elections: pd.DataFrame
    history: pd.DataFrame
    signals: pd.DataFrame
    streets: gpd.GeoDataFrame
    pockets: pd.DataFrame
    seed: int
    as_of: date


# ==================================================================================================================
# small array helpers
# ==================================================================================================================


def _str_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(arr.to_pandas(), dtype="str")


def _take(pool: Sequence[str] | pa.Array, idx: npt.ArrayLike) -> pa.Array:
    values = pool if isinstance(pool, pa.Array) else pa.array(list(pool), type=pa.string())
    return values.take(pa.array(np.asarray(idx, dtype=np.int64)))


def _int_str(values: npt.ArrayLike, width: int = 0) -> pa.Array:
    text = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    return pc.utf8_lpad(text, width=width, padding="0") if width else text


def _join(*parts: Any, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _squash(arr: pa.Array) -> pa.Array:
    """Collapse runs of spaces and trim: joins of optional parts leave double spaces."""
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, pattern=" {2,}", replacement=" "))


def _choice(rng: np.random.Generator, p: npt.ArrayLike, size: int) -> IntArray:
    probs = np.asarray(p, dtype=np.float64)
    return np.asarray(rng.choice(len(probs), size=size, p=probs / probs.sum()), dtype=np.int64)


def _group_starts(keys: npt.NDArray[Any]) -> BoolArray:
    """True where a run of equal consecutive keys starts."""
    starts = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        starts[1:] = keys[1:] != keys[:-1]
    return starts


def _days(d: date) -> int:
    return int((np.datetime64(d, "D") - np.datetime64("1970-01-01", "D")).astype(np.int64))


def _fmt_days(days: npt.ArrayLike, fmt: str) -> pa.Array:
    """Format day numbers (since 1970-01-01) with ``strftime`` codes, formatting each distinct day once."""
    values = np.asarray(days, dtype=np.int64)
    uniq, inverse = np.unique(values, return_inverse=True)
    stamps = pa.array(uniq.astype("datetime64[D]").astype("datetime64[s]"))
    return pc.strftime(stamps, format=fmt).take(pa.array(inverse.astype(np.int64)))


def _codes(values: pd.Series | pa.Array, categories: Sequence[str]) -> IntArray:
    """Position of each value in ``categories``, -1 where absent (hash lookup in Arrow)."""
    arr = values if isinstance(values, pa.Array) else pa.array(values).cast(pa.string())
    idx = pc.index_in(arr, value_set=pa.array(list(categories), type=pa.string()))
    return np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _repeat(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, type=pa.string()), n)


def _to_days(series: pd.Series) -> IntArray:
    return np.asarray(series.to_numpy(dtype="datetime64[D]").astype(np.int64), dtype=np.int64)


def _sigmoid(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


# ==================================================================================================================
# blocks and streets
# ==================================================================================================================

_POP_COLUMNS = ("TOTPOP", "POP100", "P0010001", "P1_001N", "total_population", "population", "pop")
_GEOID_COLUMNS = ("GEOID20", "GEOID10", "GEOID", "geoid")
_RACE_COLUMNS = ("HISP", "NH_WHITE", "NH_BLACK", "NH_ASIAN")
_RACE_DEFAULT = (0.35, 0.38, 0.13, 0.06, 0.08)


@dataclass(frozen=True)
class _Blocks:
    geoid: npt.NDArray[np.object_]
    population: FloatArray
    ward: IntArray
    precinct: npt.NDArray[np.object_]
    race_p: FloatArray  # (n, 5) hispanic, white, black, asian, other
    polygons_m: npt.NDArray[np.object_]
    crs_m: Any


def _find_column(frame: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    lower = {str(c).lower(): str(c) for c in frame.columns}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None


def _load_blocks(blocks: gpd.GeoDataFrame | None) -> _Blocks:
    frame = gpd.read_parquet(DEFAULT_BLOCKS) if blocks is None else blocks
    if not isinstance(frame, gpd.GeoDataFrame):
        raise ConfigError(
            "`blocks` must be a GeoDataFrame of census blocks",
            expected="a geopandas.GeoDataFrame with polygons and a population column",
            found=type(frame).__name__,
            fix="read the blocks with geopandas.read_file / read_parquet, or pass blocks=None",
        )
    if frame.crs is None or not frame.crs.equals(S.CRS_STORAGE):
        raise ConfigError(
            "`blocks` must be stored in EPSG:4326",
            expected=S.CRS_STORAGE,
            found=str(frame.crs),
            fix="call blocks.to_crs(4326) first",
        )
    pop_col = _find_column(frame, _POP_COLUMNS)
    if pop_col is None or not pd.api.types.is_numeric_dtype(frame[pop_col]):
        raise ConfigError(
            "`blocks` has no numeric total-population column",
            expected=f"one of {list(_POP_COLUMNS)}",
            found=f"columns {sorted(map(str, frame.columns))}",
            fix="rename the block population column to TOTPOP",
        )
    population = frame[pop_col].fillna(0).to_numpy(dtype=np.float64)
    valid = ~(shapely.is_empty(frame.geometry.values) | frame.geometry.isna().to_numpy())
    population = np.where(valid & (population > 0), population, 0.0)
    if not population.sum() > 0:
        raise ConfigError(
            "`blocks` hold no population",
            expected="at least one block with population > 0 and a geometry",
            found=f"total {population.sum():g} in {len(frame)} blocks",
            fix="check the population column",
        )
    geoid_col = _find_column(frame, _GEOID_COLUMNS)
    geoid = (frame[geoid_col].astype(str) if geoid_col else pd.Series(np.arange(len(frame)).astype(str))).to_numpy(
        dtype=object
    )
    ward_col = _find_column(frame, ("WARD",))
    ward = (
        frame[ward_col].fillna(0).to_numpy(dtype=np.int64) if ward_col else np.ones(len(frame), dtype=np.int64)
    )
    tract = np.array([g[:11] for g in geoid], dtype=object)
    _, precinct_no = np.unique(np.array([f"{w:04d}|{t}" for w, t in zip(ward, tract, strict=True)]),
                               return_inverse=True)
    precinct = np.array([f"{2801 + k}" for k in precinct_no], dtype=object)
    race_cols = [_find_column(frame, (c,)) for c in _RACE_COLUMNS]
    if all(c is not None for c in race_cols):
        counts = np.column_stack([frame[c].fillna(0).to_numpy(dtype=np.float64) for c in race_cols if c])
        other = np.clip(frame[pop_col].fillna(0).to_numpy(dtype=np.float64) - counts.sum(axis=1), 0, None)
        race = np.column_stack([counts, other])
        tot = race.sum(axis=1, keepdims=True)
        race_p = np.where(tot > 0, race / np.where(tot > 0, tot, 1), np.asarray(_RACE_DEFAULT))
    else:
        race_p = np.tile(np.asarray(_RACE_DEFAULT), (len(frame), 1))
    crs_m = frame.estimate_utm_crs()
    polygons_m = np.asarray(frame.geometry.to_crs(crs_m).values, dtype=object)
    return _Blocks(geoid, population, ward, precinct, race_p, polygons_m, crs_m)


def _street_segments(polys: npt.NDArray[np.object_]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray,
                                                             FloatArray]:
    """One straight street per polygon: start x, start y, unit direction x, y and length (metres).

    The street follows the long axis of the polygon's minimum rotated rectangle, through a point inside the
    polygon shrunk by the setback, clipped to it; it runs west to east (or south to north when steeper).
    """
    n = len(polys)
    env = shapely.oriented_envelope(polys)
    ring = shapely.get_exterior_ring(env)
    xy = [shapely.get_coordinates(shapely.get_point(ring, k)) for k in (0, 1, 2)]
    pts = np.full((3, n, 2), np.nan)
    has_ring = ~shapely.is_missing(ring)
    for k in range(3):
        pts[k, has_ring] = xy[k]
    e1 = pts[1] - pts[0]
    e2 = pts[2] - pts[1]
    l1 = np.hypot(e1[:, 0], e1[:, 1])
    l2 = np.hypot(e2[:, 0], e2[:, 1])
    axis = np.where((l1 >= l2)[:, None], e1, e2)
    span = np.maximum(l1, l2)
    ok = np.isfinite(span) & (span > 0)
    ux = np.where(ok, axis[:, 0] / np.where(ok, span, 1), 1.0)
    uy = np.where(ok, axis[:, 1] / np.where(ok, span, 1), 0.0)
    span = np.where(ok, span, 2 * _MIN_STREET_M)

    inner = shapely.buffer(polys, -_SETBACK_M)
    use_inner = ~shapely.is_empty(inner) & (shapely.area(inner) > 4 * _SETBACK_M**2)
    region = np.where(use_inner, inner, polys)
    centre = shapely.point_on_surface(region)
    cx, cy = shapely.get_x(centre), shapely.get_y(centre)
    reach = span + 50.0
    coords = np.stack([np.column_stack([cx - ux * reach, cy - uy * reach]),
                       np.column_stack([cx + ux * reach, cy + uy * reach])], axis=1)
    cut = shapely.intersection(shapely.linestrings(coords), region)
    parts, idx = shapely.get_parts(cut, return_index=True)
    is_line = shapely.get_type_id(parts) == 1
    parts, idx = parts[is_line], idx[is_line]
    mx, my = cx.copy(), cy.copy()
    length = np.zeros(n)
    if len(parts):
        dist = shapely.distance(parts, centre[idx])
        plen = shapely.length(parts)
        order = np.lexsort((-plen, dist, idx))
        pick = order[_group_starts(idx[order])]
        s = shapely.get_coordinates(shapely.get_point(parts[pick], 0))
        e = shapely.get_coordinates(shapely.get_point(parts[pick], -1))
        blk = idx[pick]
        mx[blk] = (s[:, 0] + e[:, 0]) / 2
        my[blk] = (s[:, 1] + e[:, 1]) / 2
        length[blk] = plen[pick]
    length = np.maximum(length, _MIN_STREET_M)
    flip = np.where(np.abs(ux) >= np.abs(uy), ux < 0, uy < 0)
    ux = np.where(flip, -ux, ux)
    uy = np.where(flip, -uy, uy)
    return mx - ux * length / 2, my - uy * length / 2, ux, uy, length


def _to_lonlat(x: FloatArray, y: FloatArray, crs_m: Any) -> tuple[FloatArray, FloatArray]:
    pts = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=crs_m).to_crs(S.CRS_STORAGE)
    return np.asarray(pts.x.to_numpy(), dtype=np.float64), np.asarray(pts.y.to_numpy(), dtype=np.float64)


def _zip_for(lat: FloatArray, lng: FloatArray) -> npt.NDArray[np.object_]:
    codes = np.array([z[0] for z in _ZIP_CENTROIDS], dtype=object)
    zlat = np.array([z[1] for z in _ZIP_CENTROIDS])
    zlng = np.array([z[2] for z in _ZIP_CENTROIDS])
    kx = np.cos(np.radians(41.82))
    d2 = (lat[:, None] - zlat[None, :]) ** 2 + ((lng[:, None] - zlng[None, :]) * kx) ** 2
    out = codes[np.argmin(d2, axis=1)]
    code, clat, clng, radius = _ZIP_CAMPUS
    campus = np.hypot((lat - clat) * 111_320.0, (lng - clng) * 111_320.0 * kx) < radius
    out[campus] = code
    return np.asarray(out, dtype=object)


def _street_names(rng: np.random.Generator, k: int) -> tuple[IntArray, IntArray, IntArray]:
    """Draw ``k`` distinct (predir, name, type) combinations, weighted, without replacement (Gumbel top-k)."""
    n_p, n_n, n_t = len(_PREDIRS), len(_STREET_NAMES), len(_STREET_TYPES)
    total = n_p * n_n * n_t
    if k > total:
        raise ConfigError(
            f"{k} populated blocks need more distinct street names than the generator has",
            expected=f"at most {total} populated blocks",
            found=str(k),
            fix="pass fewer blocks (for example one city)",
        )
    wp = np.asarray(_PREDIR_W)[:, None, None]
    wt = np.asarray(_STREET_TYPE_W)[None, None, :]
    weights = np.broadcast_to(wp * wt, (n_p, n_n, n_t)).ravel()
    keys = np.log(weights) - np.log(-np.log(rng.random(total)))
    top = np.argsort(-keys, kind="stable")[:k]
    p_idx, rest = np.divmod(top, n_n * n_t)
    n_idx, t_idx = np.divmod(rest, n_t)
    return p_idx.astype(np.int64), n_idx.astype(np.int64), t_idx.astype(np.int64)


# ==================================================================================================================
# households, buildings and addresses
# ==================================================================================================================


def _split_runs(group_of: IntArray, block_of: IntArray) -> IntArray:
    """Renumber consecutive runs so a run never crosses a block boundary."""
    starts = _group_starts(group_of)
    starts |= _group_starts(block_of)
    return np.cumsum(starts) - 1


def _pack(rng: np.random.Generator, block_of: IntArray, sizes_p: Sequence[float], values: Sequence[int],
          multi_p: float | None = None) -> IntArray:
    """Group consecutive items into units of drawn sizes, never across blocks; return the unit of each item."""
    n = len(block_of)
    if multi_p is None:
        sizes = np.asarray(values, dtype=np.int64)[_choice(rng, sizes_p, n)]
    else:
        multi = rng.random(n) < multi_p
        sizes = np.where(multi, np.asarray(values, dtype=np.int64)[_choice(rng, sizes_p, n)], 1)
    raw = np.searchsorted(np.cumsum(sizes), np.arange(n), side="right")
    return _split_runs(raw.astype(np.int64), block_of)


# ==================================================================================================================
# generate_population
# ==================================================================================================================


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(
            f"`{name}` must be an integer >= {minimum}",
            expected=f"an int >= {minimum}",
            found=repr(value),
            fix=f"pass {name}={max(minimum, 1)} or more",
        )
    return int(value)


def generate_population(
    n_voters: int,
    *,
    seed: int = 0,
    blocks: gpd.GeoDataFrame | None = None,
    n_pockets: int = 6,
) -> SyntheticPopulation:
    """Draw a synthetic electorate with addresses, vote history, signals and planted pockets.

    Households are placed in proportion to block population (multinomial over blocks), then grouped into
    buildings: about 80 % single-family houses, the rest multi-unit buildings with 2-12 units (unit labels such as
    ``"2"``, ``"10"``, ``"3R"``, ``"B"``). Each household holds 1-5 voters sharing the address, mostly one last
    name and often one party. ``true_propensity`` is a voter's probability of voting in a midterm general
    election; vote history draws each election from it, shifted on the logit scale (presidential generals higher,
    primaries, specials and municipal elections lower), and only for elections after the registration date.
    The propensity's logit is a known part (age, party, status, pocket) plus hidden household and individual
    effects (normal, standard deviations ``_HOUSEHOLD_SD`` and ``_PERSON_SD``); they are small enough that about
    ten past elections reveal them, so a model trained on the history can rank voters within about 0.02 ROC-AUC
    of the planted propensity itself.

    Parameters
    ----------
    n_voters
        Number of voters (>= 1).
    seed
        Seed for ``numpy.random.default_rng``; the same seed gives identical frames.
    blocks
        Census blocks (GeoDataFrame in EPSG:4326) with a total-population column (``TOTPOP``, ``POP100``, ...).
        Optional ``GEOID10``/``GEOID20``, ``WARD`` and race columns (``HISP``, ``NH_WHITE``, ``NH_BLACK``,
        ``NH_ASIAN``) are used when present. Default: :data:`DEFAULT_BLOCKS` (Providence, RI). Addresses always
        read PROVIDENCE, RI.
    n_pockets
        Number of planted high-engagement pockets (>= 0).

    Returns
    -------
    SyntheticPopulation
        ``voters``, ``elections``, ``history``, ``signals``, ``streets`` and ``pockets``; see its attributes for
        the columns and dtypes.

    Raises
    ------
    ConfigError
        ``n_voters`` < 1, ``n_pockets`` < 0, ``blocks`` not a GeoDataFrame in EPSG:4326 or without population.

    Examples
    --------
    >>> pop = generate_population(500, seed=1)
    >>> len(pop.voters), bool(pop.voters["voter_id"].is_unique)
    (500, True)
    >>> sorted(pop.history["election_type"].unique())
    ['general', 'presidential_primary', 'primary', 'special']
    """
    n = _check_int("n_voters", n_voters, 1)
    n_pockets = _check_int("n_pockets", n_pockets, 0)
    seed = _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    r_place, r_people, r_votes, r_signals = rng.spawn(4)
    blk = _load_blocks(blocks)

    # --- voters per block, households, buildings (construction order: sorted by block) --------------------------
    counts = r_place.multinomial(n, blk.population / blk.population.sum())
    active = np.flatnonzero(counts > 0)
    n_streets = len(active)
    block_of_voter = np.repeat(np.arange(n_streets, dtype=np.int64), counts[active])  # street index == block rank
    hh_of_voter = _pack(r_place, block_of_voter, _HOUSEHOLD_SIZE_P, (1, 2, 3, 4, 5))
    hh_first = np.flatnonzero(_group_starts(hh_of_voter))
    hh_block = block_of_voter[hh_first]
    n_hh = len(hh_first)
    bldg_of_hh = _pack(r_place, hh_block, _UNIT_COUNT_P, _UNIT_COUNTS, multi_p=_MULTI_UNIT_P)
    b_first = np.flatnonzero(_group_starts(bldg_of_hh))
    b_block = hh_block[b_first]
    n_b = len(b_first)
    units_in_b = np.bincount(bldg_of_hh, minlength=n_b)
    unit_rank = np.arange(n_hh) - b_first[bldg_of_hh]

    # --- streets -----------------------------------------------------------------------------------------------
    sx, sy, ux, uy, slen = _street_segments(blk.polygons_m[active])
    p_idx, n_idx, t_idx = _street_names(r_place, n_streets)

    # --- buildings along their street: side, position, house number ----------------------------------------------
    side = r_place.integers(0, 2, n_b)  # 0: left of the street, odd numbers; 1: right, even numbers
    key = b_block * 2 + side
    order = np.lexsort((r_place.random(n_b), key))
    skey = key[order]
    gstart = _group_starts(skey)
    gfirst = np.flatnonzero(gstart)
    gid = np.cumsum(gstart) - 1
    rank = np.arange(n_b) - gfirst[gid]
    gsize = np.diff(np.append(gfirst, n_b))
    t_sorted = (rank + r_place.uniform(0.2, 0.8, n_b)) / gsize[gid]
    steps = np.asarray((1, 2, 3), dtype=np.int64)[_choice(r_place, (0.78, 0.17, 0.05), n_b)]
    steps[gstart] = 0
    csum = np.cumsum(steps)
    within = csum - csum[gfirst][gid]
    base = 100 * r_place.integers(0, 16, n_streets)
    start_odd = base + 1 + 2 * r_place.integers(0, 5, n_streets)
    start_even = base + 2 + 2 * r_place.integers(0, 5, n_streets)
    g_block = skey[gfirst] // 2
    g_side = skey[gfirst] % 2
    g_start = np.where(g_side == 0, start_odd[g_block], start_even[g_block])
    house_number = np.empty(n_b, dtype=np.int64)
    house_number[order] = g_start[gid] + 2 * within
    t = np.empty(n_b)
    t[order] = t_sorted
    offset = r_place.uniform(6.0, 10.0, n_b) * np.where(side == 0, 1.0, -1.0)
    along = t * slen[b_block]
    bx = sx[b_block] + ux[b_block] * along - uy[b_block] * offset
    by = sy[b_block] + uy[b_block] * along + ux[b_block] * offset
    blng, blat = _to_lonlat(bx, by, blk.crs_m)
    half = (units_in_b == 1) & (r_place.random(n_b) < 0.004)
    unit_style = _choice(r_place, (0.70, 0.15, 0.15), n_b)  # numeric, rear ("2R"), letters

    # street endpoints and zips
    ex, ey = sx + ux * slen, sy + uy * slen
    mlng, mlat = _to_lonlat((sx + ex) / 2, (sy + ey) / 2, blk.crs_m)
    street_zip = _zip_for(mlat, mlng)

    # --- pockets -----------------------------------------------------------------------------------------------
    pocket_of_b = np.full(n_b, -1, dtype=np.int64)
    pocket_xy = np.zeros((0, 2))
    pocket_r = np.zeros(0)
    if n_pockets:
        weights = counts[active].astype(np.float64)
        cand = r_place.choice(n_streets, size=min(n_streets, 50 * n_pockets), p=weights / weights.sum())
        mid = np.column_stack([(sx + ex) / 2, (sy + ey) / 2])
        chosen: list[int] = []
        for min_gap in (1000.0, 500.0, 0.0):
            for c in cand:
                if len(chosen) == n_pockets:
                    break
                if c in chosen:
                    continue
                if all(np.hypot(*(mid[c] - mid[o])) >= min_gap for o in chosen):
                    chosen.append(int(c))
        pocket_xy = mid[np.asarray(chosen, dtype=np.int64)]
        pocket_r = r_place.uniform(150.0, 250.0, len(chosen))
        for k in range(len(chosen)):
            inside = np.hypot(bx - pocket_xy[k, 0], by - pocket_xy[k, 1]) <= pocket_r[k]
            pocket_of_b[inside & (pocket_of_b < 0)] = k

    # --- voter ids, then everything per voter in final (voter_id) order ----------------------------------------
    id_num = r_people.choice(25 * 26 * 900_000, size=n, replace=False).astype(np.int64)
    final = np.argsort(id_num, kind="stable")
    id_num = id_num[final]
    block_of_voter = block_of_voter[final]
    hh_of_voter = hh_of_voter[final]
    bldg_of_voter = bldg_of_hh[hh_of_voter]
    letters = np.array([chr(65 + i) for i in range(26)], dtype=object)
    prefix, digits = np.divmod(id_num, 900_000)
    voter_id = _join(_take(letters, prefix // 26), _take(letters, prefix % 26), _int_str(digits + 100_000))

    people = _draw_people(r_people, n, hh_of_voter, n_hh, blk.race_p[active][hh_block])
    pocket_of_voter = pocket_of_b[bldg_of_voter]

    # propensity: age, party, status, household and individual effects, pocket boost
    age = people["age"]
    logit = (
        -0.3 + 0.03 * (age - 45) - 0.0004 * (age - 45) ** 2 + _PARTY_LOGIT[people["party"]]
        - 1.6 * people["inactive"] + r_people.normal(0, _HOUSEHOLD_SD, n_hh)[hh_of_voter]
        + r_people.normal(0, _PERSON_SD, n)
        + 2.3 * (pocket_of_voter >= 0)
    )
    propensity = np.clip(_sigmoid(logit), 0.005, 0.995)

    elections = pd.DataFrame(
        {
            S.ELECTION_DATE: pd.to_datetime([e[0] for e in _ELECTIONS]).astype("datetime64[ns]"),
            S.ELECTION_TYPE: pd.Series([e[1] for e in _ELECTIONS], dtype="str"),
            TITLE: pd.Series([e[2] for e in _ELECTIONS], dtype="str"),
        }
    )
    history = _draw_history(r_votes, voter_id, logit, people)

    # --- assemble the voters frame -----------------------------------------------------------------------------
    unit_labels = _unit_labels()
    hh_unit = np.where(
        units_in_b[bldg_of_hh] > 1, unit_style[bldg_of_hh] * _MAX_UNITS + unit_rank, len(unit_labels) - 1
    )
    street_of_voter = block_of_voter
    sb = active[street_of_voter]
    predir = _take(_PREDIRS, p_idx[street_of_voter])
    street_name = _take(_STREET_NAMES, n_idx[street_of_voter])
    street_type = _take(_STREET_TYPES, t_idx[street_of_voter])
    voters = pd.DataFrame(
        {
            S.VOTER_ID: _str_series(voter_id),
            S.LAST_NAME: _str_series(people["last_name"]),
            S.FIRST_NAME: _str_series(people["first_name"]),
            S.MIDDLE_NAME: _str_series(people["middle_name"]),
            S.NAME_SUFFIX: _str_series(people["name_suffix"]),
            S.HOUSE_NUMBER: house_number[bldg_of_voter],
            HOUSE_NUMBER_SUFFIX: _str_series(_take(("", "1/2"), half[bldg_of_voter].astype(np.int64))),
            PREDIR: _str_series(predir),
            STREET_NAME: _str_series(street_name),
            STREET_TYPE: _str_series(street_type),
            S.UNIT: _str_series(_take(unit_labels, hh_unit[hh_of_voter])),
            S.CITY: pd.Series([_CITY] * n, dtype="str"),
            S.STATE: pd.Series([_STATE] * n, dtype="str"),
            S.ZIP5: _str_series(_take(list(street_zip), street_of_voter)),
            S.LAT: blat[bldg_of_voter],
            S.LNG: blng[bldg_of_voter],
            BIRTH_DATE: people["birth_days"].astype("datetime64[D]").astype("datetime64[ns]"),
            S.REGISTRATION_DATE: people["reg_days"].astype("datetime64[D]").astype("datetime64[ns]"),
            S.PARTY: _str_series(_take(_PARTIES, people["party"])),
            S.STATUS: _str_series(_take(("A", "I"), people["inactive"].astype(np.int64))),
            S.COUNTY: pd.Series([_COUNTY] * n, dtype="str"),
            S.PHONE: _str_series(people["phone"]),
            S.EMAIL: _str_series(people["email"]),
            GENDER: _str_series(_take(("F", "M", "U"), people["gender"])),
            RACE_ETHNICITY: _str_series(_take(_GROUPS, people["group"])),
            BLOCK_GEOID: _str_series(_take(list(blk.geoid), sb)),
            WARD: blk.ward[sb],
            S.SOURCE_PRECINCT: _str_series(_take(list(blk.precinct), sb)),
            TRUE_PROPENSITY: propensity.astype(np.float64),
            POCKET_ID: pocket_of_voter,
            HOUSEHOLD_KEY: _str_series(_join("H", _int_str(hh_of_voter, 7))),
            BUILDING_KEY: _str_series(_join("B", _int_str(bldg_of_voter, 7))),
        }
    )

    # --- streets and pockets frames ----------------------------------------------------------------------------
    line_m = shapely.linestrings(np.stack([np.column_stack([sx, sy]), np.column_stack([ex, ey])], axis=1))
    streets = gpd.GeoDataFrame(
        {
            PREDIR: _str_series(_take(_PREDIRS, p_idx)),
            STREET_NAME: _str_series(_take(_STREET_NAMES, n_idx)),
            STREET_TYPE: _str_series(_take(_STREET_TYPES, t_idx)),
            BLOCK_GEOID: _str_series(_take(list(blk.geoid), active)),
            S.ZIP5: pd.Series(list(street_zip), dtype="str"),
            "length_m": slen,
            N_VOTERS: counts[active].astype(np.int64),
        },
        geometry=gpd.GeoSeries(line_m, crs=blk.crs_m).to_crs(S.CRS_STORAGE).values,
        crs=S.CRS_STORAGE,
    )
    if len(pocket_r):
        plng, plat = _to_lonlat(pocket_xy[:, 0], pocket_xy[:, 1], blk.crs_m)
    else:
        plng = plat = np.zeros(0)
    pockets = pd.DataFrame(
        {
            POCKET_ID: np.arange(len(pocket_r), dtype=np.int64),
            S.LAT: plat,
            S.LNG: plng,
            RADIUS_M: pocket_r,
            N_VOTERS: np.bincount(pocket_of_voter[pocket_of_voter >= 0], minlength=len(pocket_r)).astype(np.int64),
        }
    )
    signals = _draw_signals(
        r_signals, voters, bx, by, bldg_of_voter, pocket_xy, pocket_r, blk.crs_m
    )
    return SyntheticPopulation(
        voters=voters,
        elections=elections,
        history=history,
        signals=signals,
        streets=streets,
        pockets=pockets,
        seed=seed,
        as_of=_AS_OF,
    )


def _unit_labels() -> list[str]:
    """Unit labels by style (numeric, rear, letters) and rank, then ``""`` for single-unit buildings."""
    numeric = [str(j + 1) for j in range(_MAX_UNITS)]
    rear = [str(j // 2 + 1) + ("R" if j % 2 else "") for j in range(_MAX_UNITS)]
    letters = [chr(65 + j) for j in range(_MAX_UNITS)]
    return [*numeric, *rear, *letters, ""]


def _name_pools() -> dict[str, Any]:
    first: list[str] = []
    first_start = np.zeros((4, 2), dtype=np.int64)
    first_len = np.zeros((4, 2), dtype=np.int64)
    for g in range(4):
        for s, pool in enumerate((_FIRST_F[g], _FIRST_M[g])):
            first_start[g, s] = len(first)
            first_len[g, s] = len(pool)
            first.extend(_upper_nfc(pool))
    last: list[str] = []
    last_start = np.zeros(4, dtype=np.int64)
    last_len = np.zeros(4, dtype=np.int64)
    for g in range(4):
        last_start[g] = len(last)
        last_len[g] = len(_LAST[g])
        last.extend(_upper_nfc(_LAST[g]))
    return {
        "first": first, "first_start": first_start, "first_len": first_len,
        "last": last, "last_start": last_start, "last_len": last_len,
        "first_fold": [_ascii_fold(x) for x in first], "last_fold": [_ascii_fold(x) for x in last],
    }


def _draw_people(
    rng: np.random.Generator, n: int, hh_of_voter: IntArray, n_hh: int, hh_race_p: FloatArray
) -> dict[str, Any]:
    """Names, sex, ages, dates, party, status and contact data, per voter (households share some of it)."""
    pools = _name_pools()
    # group per household, from the block's population shares
    cum = np.cumsum(hh_race_p, axis=1)
    cum /= cum[:, -1:]
    hh_group = np.minimum((rng.random(n_hh)[:, None] > cum).sum(axis=1), 4).astype(np.int64)
    hh_pool = np.where(hh_group == 4, rng.integers(0, 4, n_hh), hh_group)
    group = hh_group[hh_of_voter]
    pool = hh_pool[hh_of_voter]
    gender = _choice(rng, (0.52, 0.46, 0.02), n)
    sex = np.where(gender == 2, rng.integers(0, 2, n), gender)

    def pick_first(size: int, g: IntArray, s: IntArray) -> IntArray:
        u = rng.random(size) ** 1.5
        return np.asarray(pools["first_start"][g, s] + (u * pools["first_len"][g, s]).astype(np.int64))

    def pick_last(size: int, g: IntArray) -> IntArray:
        u = rng.random(size) ** 1.3
        return np.asarray(pools["last_start"][g] + (u * pools["last_len"][g]).astype(np.int64))

    first_i = pick_first(n, pool, sex)
    hh_last = pick_last(n_hh, hh_pool)
    own_last = pick_last(n, pool)
    last_i = np.where(rng.random(n) < 0.85, hh_last[hh_of_voter], own_last)
    n_first = len(pools["first"])
    middle_kind = _choice(rng, (0.55, 0.15, 0.30), n)  # a name, an initial, none
    middle_i = np.select(
        [middle_kind == 0, middle_kind == 1],
        [pick_first(n, pool, sex), n_first + rng.integers(0, 26, n)],
        n_first + 26,
    )
    middle_pool = pa.array([*pools["first"], *[chr(65 + i) for i in range(26)], ""], type=pa.string())

    # ages 18-95 at the extract date, registration after the 18th birthday
    ages = np.arange(18, 96)
    age_w = np.select([ages < 30, ages < 65, ages < 75, ages < 85], [1.25, 1.0, 0.8, 0.45], 0.15)
    age = ages[_choice(rng, age_w, n)].astype(np.int64)
    suffix_i = np.where((sex == 1) & (rng.random(n) < 0.05), _choice(rng, _SUFFIX_P, n), 0)
    suffix_i = np.where((suffix_i == _SUFFIXES.index("SR")) & (age < 40), _SUFFIXES.index("JR"), suffix_i)
    as_of = np.datetime64(_AS_OF, "D")
    as_of_m = as_of.astype("datetime64[M]")
    oldest = (as_of_m - np.timedelta64(96 * 12, "M")).astype("datetime64[D]") + (as_of - as_of_m.astype(
        "datetime64[D]")) + np.timedelta64(1, "D")
    youngest = (as_of_m - np.timedelta64(18 * 12, "M")).astype("datetime64[D]") + (as_of - as_of_m.astype(
        "datetime64[D]")) - np.timedelta64(2, "D")
    birth = as_of - ((age + rng.random(n)) * 365.2425).astype(np.int64).astype("timedelta64[D]")
    birth = np.clip(birth, oldest, youngest)
    birth_m = birth.astype("datetime64[M]")
    bday18 = (birth_m + np.timedelta64(18 * 12, "M")).astype("datetime64[D]") + (birth - birth_m.astype(
        "datetime64[D]"))
    elig = bday18.astype(np.int64)
    as_of_d = int(as_of.astype(np.int64))
    span = np.maximum(as_of_d - 1 - elig, 0)
    recent = rng.random(n) < 0.55
    reg = np.where(
        recent,
        as_of_d - 1 - (rng.random(n) * np.minimum(span, 3650)).astype(np.int64),
        elig + (rng.random(n) * span).astype(np.int64),
    )
    reg = np.clip(reg, elig, as_of_d - 1)
    birth_days = birth.astype(np.int64)

    # party (households lean together), status
    hh_party = _choice(rng, _PARTY_P, n_hh)
    party = np.where(rng.random(n) < 0.6, hh_party[hh_of_voter], _choice(rng, _PARTY_P, n))
    inactive = rng.random(n) < 0.07

    # contact data in reserved ranges
    has_phone = rng.random(n) < 0.7
    phone = pc.if_else(pa.array(has_phone), _join(_PHONE_PREFIX, _int_str(rng.integers(0, 100, n), 2)), "")
    f = _take(pools["first_fold"], first_i)
    ln = _take(pools["last_fold"], last_i)
    locals_ = pc.choose(
        pa.array(_choice(rng, (0.4, 0.3, 0.15, 0.15), n)),
        _join(f, ".", ln),
        _join(f, ln, _int_str(rng.integers(1, 100, n), 2)),
        _join(pc.utf8_slice_codeunits(f, 0, 1), ln),
        _join(f, "_", ln, _int_str((birth.astype("datetime64[Y]").astype(np.int64) + 1970) % 100, 2)),
    )
    has_email = rng.random(n) < 0.45
    email = pc.if_else(pa.array(has_email), _join(locals_, "@" + _EMAIL_DOMAIN), "")
    return {
        "first_name": _take(pools["first"], first_i),
        "last_name": _take(pools["last"], last_i),
        "middle_name": middle_pool.take(pa.array(middle_i.astype(np.int64))),
        "name_suffix": _take(_SUFFIXES, suffix_i),
        "gender": gender,
        "group": group,
        "age": age.astype(np.float64),  # whole years at the extract date
        "birth_days": birth_days,
        "reg_days": reg.astype(np.int64),
        "party": party,
        "inactive": inactive.astype(np.float64),
        "phone": phone,
        "email": email,
    }


def _draw_history(
    rng: np.random.Generator, voter_id: pa.Array, logit: FloatArray, people: Mapping[str, Any]
) -> pd.DataFrame:
    """Voted rows only, drawn per election from the voter's propensity and the election's turnout shift."""
    n = len(logit)
    e_days = np.array([_days(e[0]) for e in _ELECTIONS], dtype=np.int64)
    shift = np.array([e[3] for e in _ELECTIONS], dtype=np.float32)
    eligible = e_days[None, :] > people["reg_days"][:, None]
    p = _sigmoid(logit.astype(np.float32)[:, None] + shift[None, :])
    voted = eligible & (rng.random((n, len(e_days)), dtype=np.float32) < p)
    vi, ei = np.nonzero(voted)
    vi = vi.astype(np.int64)
    ei = ei.astype(np.int64)
    mix = np.cumsum(np.array([e[4] for e in _ELECTIONS]), axis=1)
    mix /= mix[:, -1:]
    method = np.minimum((rng.random(len(vi))[:, None] > mix[ei]).sum(axis=1), len(_METHODS) - 1)
    etype = np.array([e[1] for e in _ELECTIONS], dtype=object)
    primary = np.isin(etype, ("primary", "presidential_primary"))[ei]
    party = people["party"][vi]
    una = _PARTIES.index("UNA")
    chosen = np.asarray((_PARTIES.index("DEM"), _PARTIES.index("REP"), una))[_choice(rng, (0.6, 0.3, 0.1), len(vi))]
    ballot = np.where(party == una, chosen, party)
    ballot_idx = np.where(primary, ballot, len(_PARTIES))
    dates = np.array([np.datetime64(e[0], "D") for e in _ELECTIONS]).astype("datetime64[ns]")
    return pd.DataFrame(
        {
            S.VOTER_ID: _str_series(voter_id.take(pa.array(vi))),
            S.ELECTION_DATE: dates[ei],
            S.ELECTION_TYPE: _str_series(_take(list(etype), ei)),
            S.VOTED: np.ones(len(vi), dtype=bool),
            S.VOTE_METHOD: _str_series(_take(_METHODS, method)),
            S.BALLOT_PARTY: _str_series(_take([*_PARTIES, ""], ballot_idx)),
        }
    )


_SIGNAL_WEIGHT = {"ping": 0.1, "web_visit": 0.2, "rsvp": 1.0, "event_checkin": 1.5, "donation": 2.0,
                  "canvass_contact": 0.8}
_VOTER_KINDS = ("rsvp", "event_checkin", "donation", "canvass_contact")


def _draw_signals(
    rng: np.random.Generator,
    voters: pd.DataFrame,
    bx: FloatArray,
    by: FloatArray,
    bldg_of_voter: IntArray,
    pocket_xy: FloatArray,
    pocket_r: FloatArray,
    crs_m: Any,
) -> pd.DataFrame:
    """Background signals across the city plus a dense burst inside each pocket."""
    n = len(voters)
    n_b = len(bx)
    kinds = list(S.SIGNAL_KINDS)
    kind_of = {k: i for i, k in enumerate(kinds)}
    prop = voters[TRUE_PROPENSITY].to_numpy(dtype=np.float64)
    pocket_of_voter = voters[POCKET_ID].to_numpy(dtype=np.int64)
    n_devices = max(1, n // 10)
    device_home = rng.integers(0, n_b, n_devices)
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    ks: list[IntArray] = []
    vs: list[IntArray] = []  # voter index or -1
    ds: list[IntArray] = []  # device index or -1
    ps: list[IntArray] = []

    def add(x: FloatArray, y: FloatArray, kind: IntArray, voter: IntArray, device: IntArray, pocket: int) -> None:
        xs.append(x)
        ys.append(y)
        ks.append(kind)
        vs.append(voter)
        ds.append(device)
        ps.append(np.full(len(x), pocket, dtype=np.int64))

    # background pings: devices near home, sometimes elsewhere
    m = int(0.2 * n)
    dev = rng.integers(0, n_devices, m)
    where_b = np.where(rng.random(m) < 0.7, device_home[dev], rng.integers(0, n_b, m))
    sd = np.where(where_b == device_home[dev], 40.0, 60.0)
    add(bx[where_b] + rng.normal(0, 1, m) * sd, by[where_b] + rng.normal(0, 1, m) * sd,
        np.full(m, kind_of["ping"]), np.full(m, -1), dev, -1)
    # web visits: coarse IP locations
    m = int(0.04 * n)
    dev = rng.integers(0, n_devices, m)
    at = rng.integers(0, n_b, m)
    add(bx[at] + rng.normal(0, 400, m), by[at] + rng.normal(0, 400, m), np.full(m, kind_of["web_visit"]),
        np.full(m, -1), dev, -1)
    # voter-linked background: engaged voters more likely
    venues = rng.integers(0, n_b, 20)
    w = prop**2 / (prop**2).sum()
    for kind_name, rate in (("rsvp", 0.01), ("donation", 0.006), ("event_checkin", 0.008), ("canvass_contact", 0.03)):
        m = int(rate * n)
        who = rng.choice(n, size=m, p=w) if kind_name != "canvass_contact" else rng.integers(0, n, m)
        if kind_name == "event_checkin":
            venue = venues[rng.integers(0, len(venues), m)]
            x, y = bx[venue] + rng.normal(0, 15, m), by[venue] + rng.normal(0, 15, m)
        else:
            b = bldg_of_voter[who]
            x, y = bx[b] + rng.normal(0, 5, m), by[b] + rng.normal(0, 5, m)
        add(x, y, np.full(m, kind_of[kind_name]), who.astype(np.int64), np.full(m, -1), -1)
    # pocket bursts
    burst_kinds = np.array([kind_of[k] for k in
                            ("ping", "web_visit", "event_checkin", "rsvp", "donation", "canvass_contact")])
    for k in range(len(pocket_r)):
        m = max(40, int(0.01 * n))
        kind = burst_kinds[_choice(rng, (0.40, 0.10, 0.20, 0.15, 0.05, 0.10), m)]
        members = np.flatnonzero(pocket_of_voter == k)
        linked = np.isin(kind, [kind_of[v] for v in _VOTER_KINDS])
        if len(members) == 0:
            kind = np.where(linked, kind_of["ping"], kind)
            linked[:] = False
        who = np.where(linked, members[rng.integers(0, max(len(members), 1), m)] if len(members) else -1, -1)
        radius = pocket_r[k] * np.sqrt(rng.random(m)) * 0.9
        angle = rng.uniform(0, 2 * np.pi, m)
        x = pocket_xy[k, 0] + radius * np.cos(angle)
        y = pocket_xy[k, 1] + radius * np.sin(angle)
        home = linked & np.isin(kind, [kind_of["rsvp"], kind_of["donation"], kind_of["canvass_contact"]])
        hb = bldg_of_voter[np.where(home, who, 0)]
        x = np.where(home, bx[hb] + rng.normal(0, 5, m), x)
        y = np.where(home, by[hb] + rng.normal(0, 5, m), y)
        dev = np.where(np.isin(kind, [kind_of["ping"], kind_of["web_visit"]]), rng.integers(0, n_devices, m), -1)
        add(x, y, kind.astype(np.int64), who.astype(np.int64), dev.astype(np.int64), k)

    x = np.concatenate(xs)
    y = np.concatenate(ys)
    kind_all = np.concatenate(ks)
    voter = np.concatenate(vs)
    device = np.concatenate(ds)
    pocket = np.concatenate(ps)
    total = len(x)
    lng, lat = _to_lonlat(x, y, crs_m)
    span_s = int((_SIGNALS_END - _SIGNALS_START).total_seconds())
    ts = _SIGNALS_START.value // 10**9 + rng.integers(0, span_s, total)
    base_w = np.array([_SIGNAL_WEIGHT[k] for k in kinds])
    weight = np.round(base_w[kind_all] * rng.uniform(0.5, 1.5, total), 3)
    device_pool = pa.array([f"dev-{v:012x}" for v in rng.integers(0, 2**48, n_devices)] + [""], type=pa.string())
    vid = pa.array(voters[S.VOTER_ID]).cast(pa.string())
    vid_pool = pa.concat_arrays([vid, pa.array([""], type=pa.string())])
    order = np.lexsort((kind_all, ts))
    return pd.DataFrame(
        {
            S.TIMESTAMP: pd.to_datetime(ts[order], unit="s", utc=True).astype("datetime64[ns, UTC]"),
            S.KIND: _str_series(_take(kinds, kind_all[order])),
            S.LAT: np.round(lat[order], 6),
            S.LNG: np.round(lng[order], 6),
            S.WEIGHT: weight[order],
            S.VOTER_ID: _str_series(vid_pool.take(pa.array(np.where(voter < 0, n, voter)[order]))),
            S.DEVICE_ID: _str_series(device_pool.take(pa.array(np.where(device < 0, n_devices, device)[order]))),
            POCKET_ID: pocket[order],
        }
    )


# ==================================================================================================================
# writing state layouts
# ==================================================================================================================

_BAD_KINDS: tuple[tuple[str, str], ...] = (
    ("too_many_fields", "quarantine_row"),
    ("too_few_fields", "quarantine_row"),
    ("empty_row", "quarantine_row"),
    ("impossible_date", "quarantine_field"),
    ("future_birth_year", "quarantine_field"),
    ("zip_lost_leading_zero", "repair_field"),
)
#: Columns of ``truth_bad_rows.csv``.
BAD_ROW_COLUMNS = ("file", "line", "kind", "expected", "column", "voter_id", "parses_as_voter", "n_fields")
_METHOD_FALLBACK: Mapping[str, tuple[str, ...]] = {
    "polls": ("polls",),
    "early": ("early", "polls"),
    "mail": ("mail", "absentee"),
    "absentee": ("absentee", "mail"),
    "provisional": ("provisional", "polls"),
}
_TYPE_FALLBACK: Mapping[str, tuple[str, ...]] = {
    "general": ("general",),
    "primary": ("primary",),
    "presidential_primary": ("presidential_primary", "primary"),
    "special": ("special", "other", "general"),
}
_EXTRA_PARTY_CODES: Mapping[str, Mapping[str, str]] = {"pa": {"LIB": "LN", "GRE": "GR"}}


def _reverse(mapping: Mapping[str, Any], value: str, fallbacks: Sequence[str] = (), exclude: Sequence[str] = ()
             ) -> str:
    """The first source code mapping to ``value`` (or to a fallback), ``""`` when none does."""
    for target in (value, *fallbacks):
        for code, norm in mapping.items():
            if norm == target and code not in exclude:
                return str(code)
    return ""


def _fmt_parts(fmt: str, year: int, month: int, day: int) -> str:
    """Format a date that may not exist (``02/30/2019``) with a layout's strftime pattern."""
    return fmt.replace("%Y", f"{year:04d}").replace("%m", f"{month:02d}").replace("%d", f"{day:02d}")


class _Ctx:
    """Per-voter and per-history-row arrays shared by the layout builders (Arrow string arrays)."""

    def __init__(self, population: SyntheticPopulation, rng: np.random.Generator) -> None:
        v = population.voters
        self.pop = population
        self.rng = rng
        self.n = len(v)
        self._cache: dict[str, pa.Array] = {}
        self.birth_days = _to_days(v[BIRTH_DATE])
        self.reg_days = _to_days(v[S.REGISTRATION_DATE])
        self.birth_year = self.birth_days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
        self.party = _codes(v[S.PARTY], _PARTIES)
        self.inactive = (v[S.STATUS] == "I").to_numpy()
        self.ward = v[WARD].to_numpy(dtype=np.int64)
        el = population.elections
        self.e_days = _to_days(el[S.ELECTION_DATE])
        self.e_type = el[S.ELECTION_TYPE].astype(str).tolist()
        self.e_title = el[TITLE].astype(str).tolist()
        h = population.history
        h = h[h[S.VOTED].to_numpy(dtype=bool)]
        idx = pc.index_in(pa.array(h[S.VOTER_ID]).cast(pa.string()), value_set=self.col(S.VOTER_ID))
        if idx.null_count:
            raise ConfigError(
                "the population's history names voters missing from its voters frame",
                expected="every history voter_id in population.voters",
                found=f"{idx.null_count} unknown history rows",
                fix="build populations with generate_population and do not filter voters alone",
            )
        self.vi = np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)
        days = _to_days(h[S.ELECTION_DATE])
        self.ei = np.searchsorted(self.e_days, days).astype(np.int64)
        self.method = _codes(h[S.VOTE_METHOD], _METHODS)  # index into _METHODS
        self.ballot = _codes(h[S.BALLOT_PARTY], _PARTIES)  # index into _PARTIES, -1 when no ballot party
        self.primary = np.isin(np.asarray(self.e_type, dtype=object), ("primary", "presidential_primary"))

    def col(self, name: str) -> pa.Array:
        if name not in self._cache:
            self._cache[name] = pa.array(self.pop.voters[name]).cast(pa.string())
        return self._cache[name]

    def pick(self, labels: Sequence[str], codes: npt.ArrayLike) -> pa.Array:
        return _take(labels, codes)

    def dates(self, days: IntArray, fmt: str) -> pa.Array:
        return _fmt_days(days, fmt)

    @property
    def street_full(self) -> pa.Array:
        """``N ELMWOOD AVE``: predir, name and type."""
        if "_street_full" not in self._cache:
            self._cache["_street_full"] = _squash(
                _join(self.col(PREDIR), self.col(STREET_NAME), self.col(STREET_TYPE), sep=" ")
            )
        return self._cache["_street_full"]

    @property
    def street_line(self) -> pa.Array:
        """``123 1/2 N ELMWOOD AVE``."""
        if "_street_line" not in self._cache:
            self._cache["_street_line"] = _squash(
                _join(self.col(S.HOUSE_NUMBER), self.col(HOUSE_NUMBER_SUFFIX), self.street_full, sep=" ")
            )
        return self._cache["_street_line"]

    @property
    def unit_line(self) -> pa.Array:
        """``APT 3`` or ``""``."""
        if "_unit_line" not in self._cache:
            unit = self.col(S.UNIT)
            self._cache["_unit_line"] = pc.if_else(pc.not_equal(unit, ""), _join("APT", unit, sep=" "), "")
        return self._cache["_unit_line"]

    @property
    def address(self) -> pa.Array:
        """One line: ``123 N ELMWOOD AVE APT 3``."""
        return _squash(_join(self.street_line, self.unit_line, sep=" "))

    def party_codes(self, layout: Layout) -> pa.Array:
        extra = _EXTRA_PARTY_CODES.get(layout.name, {})
        labels = [_reverse(layout.party_map, p) or extra.get(p, "") for p in _PARTIES]
        return _take(labels, self.party)

    def race(self, labels: Mapping[str, str], unknown: str) -> pa.Array:
        race = _codes(self.col(RACE_ETHNICITY), _GROUPS)
        race[self.rng.random(self.n) < 0.08] = len(_GROUPS)
        return _take([*[labels[r] for r in _GROUPS], unknown], np.where(race < 0, len(_GROUPS), race))

    def yes_no(self, p_yes: float) -> pa.Array:
        return _take(("N", "Y"), (self.rng.random(self.n) < p_yes).astype(np.int64))

    def reg_num(self) -> pa.Array:
        return _int_str(np.arange(1, self.n + 1) * 7 + 100_000, 12)

    def mailing(self) -> tuple[pa.Array, BoolArray]:
        has = self.rng.random(self.n) < 0.08
        box = _join("PO BOX", _int_str(self.rng.integers(1, 9999, self.n)), sep=" ")
        return pc.if_else(pa.array(has), box, ""), has

    def when(self, mask: BoolArray, text: str) -> pa.Array:
        return pc.if_else(pa.array(mask), text, "")

    def history_methods(self, method_map: Mapping[str, str], exclude: Sequence[str] = ()) -> pa.Array:
        labels = [_reverse(method_map, m, _METHOD_FALLBACK[m], exclude) for m in _METHODS]
        return _take(labels, self.method)

    def history_party(self) -> IntArray:
        """Per history row, an index into ``_PARTIES``: the ballot party in primaries, else the voter's party."""
        own = self.party[self.vi]
        return np.where(self.primary[self.ei] & (self.ballot >= 0), self.ballot, own)


@dataclass
class _Output:
    """One delimited file to write."""

    key: str
    name: str
    table: pa.Table
    delimiter: str
    header: bool
    quote_all: bool = False


def _assemble(columns: Sequence[str], values: Mapping[str, pa.Array | str], n: int, where: str) -> pa.Table:
    """A table with exactly ``columns`` in order; columns without a value are empty strings."""
    unknown = sorted(set(values) - set(columns))
    if unknown:
        raise ConfigError(
            f"the synthetic writer fills columns the layout does not have: {unknown}",
            where=None,
            expected=f"columns of {where}",
            found=str(unknown),
            fix="the built-in layout TOML changed; update geo_segment/synth.py to match",
        )
    empty: pa.Array | None = None
    arrays = []
    for name in columns:
        value = values.get(name, "")
        if isinstance(value, str):
            if value == "":
                if empty is None:
                    empty = _repeat("", n)
                arrays.append(empty)
            else:
                arrays.append(_repeat(value, n))
        else:
            arrays.append(value.cast(pa.string()))
    return pa.Table.from_arrays(arrays, names=list(columns))


def _f(layout: Layout, key: str, i: int = 0) -> str:
    return layout.fields[key][i]


def _districts(ctx: _Ctx) -> dict[str, pa.Array]:
    """Plausible district numbers derived from the ward."""
    ward = ctx.ward
    return {
        "cong": _int_str(np.where(np.isin(ward, (1, 2, 3, 4, 5, 6)), 1, 2)),
        "senate": _int_str(1 + (ward - 1) // 3),
        "house": _int_str(1 + (ward - 1) // 2 + 10),
        "ward": _int_str(ward),
        "ward_desc": _join("WARD", _int_str(ward, 2), sep=" "),
    }


def _nc(ctx: _Ctx, layout: Layout) -> list[_Output]:
    n = ctx.n
    d = _districts(ctx)
    mail, has_mail = ctx.mailing()
    precinct = ctx.col(S.SOURCE_PRECINCT)
    reg_num = ctx.reg_num()
    values: dict[str, pa.Array | str] = {
        "county_id": _COUNTY_NUMBER,
        _f(layout, "county"): _COUNTY,
        "voter_reg_num": reg_num,
        _f(layout, "voter_id"): ctx.col(S.VOTER_ID),
        _f(layout, "last_name"): ctx.col(S.LAST_NAME),
        _f(layout, "first_name"): ctx.col(S.FIRST_NAME),
        _f(layout, "middle_name"): ctx.col(S.MIDDLE_NAME),
        _f(layout, "name_suffix"): ctx.col(S.NAME_SUFFIX),
        _f(layout, "status"): ctx.col(S.STATUS),
        "voter_status_desc": ctx.pick(("ACTIVE", "INACTIVE"), ctx.inactive.astype(np.int64)),
        "reason_cd": ctx.pick(("AV", "IN"), ctx.inactive.astype(np.int64)),
        "voter_status_reason_desc": ctx.pick(("VERIFIED", "CONFIRMATION NOT RETURNED"),
                                             ctx.inactive.astype(np.int64)),
        _f(layout, "address"): ctx.address,
        _f(layout, "city"): ctx.col(S.CITY),
        _f(layout, "state"): ctx.col(S.STATE),
        _f(layout, "zip"): ctx.col(S.ZIP5),
        "mail_addr1": mail,
        "mail_city": ctx.when(has_mail, _CITY),
        "mail_state": ctx.when(has_mail, _STATE),
        "mail_zipcode": ctx.when(has_mail, "02901"),
        _f(layout, "phone"): ctx.col(S.PHONE),
        "confidential_ind": "N",
        _f(layout, "registration_date"): ctx.dates(ctx.reg_days, layout.formats["registration_date"]),
        "race_code": ctx.race({"hispanic": "O", "white": "W", "black": "B", "asian": "A", "other": "M"}, "U"),
        "ethnic_code": ctx.race({"hispanic": "HL", "white": "NL", "black": "NL", "asian": "NL", "other": "NL"},
                                "UN"),
        _f(layout, "party"): ctx.party_codes(layout),
        "gender_code": ctx.col(GENDER),
        _f(layout, "birth_year"): _int_str(ctx.birth_year),
        "age_at_year_end": _int_str(_AS_OF.year - ctx.birth_year),
        "birth_state": _take(_BIRTH_STATES, _choice(ctx.rng, _BIRTH_STATE_P, n)),
        "drivers_lic": ctx.yes_no(0.85),
        _f(layout, "source_precinct"): precinct,
        "precinct_desc": _join("PRECINCT", precinct, sep=" "),
        "municipality_abbrv": "PRO",
        "municipality_desc": _CITY,
        "ward_abbrv": d["ward"],
        "ward_desc": d["ward_desc"],
        "cong_dist_abbrv": d["cong"],
        "nc_senate_abbrv": d["senate"],
        "nc_house_abbrv": d["house"],
        "vtd_abbrv": precinct,
        "vtd_desc": precinct,
    }
    voters = _assemble(layout.columns, values, n, "nc voter file")

    hist = layout.history
    vi = ctx.vi
    m = len(vi)
    e_desc = [f"{_fmt_days([day], '%m/%d/%Y')[0].as_py()} {title}" for day, title in
              zip(ctx.e_days, ctx.e_title, strict=True)]
    party_codes = [_reverse(layout.party_map, p) or p for p in _PARTIES]
    voted_party = ctx.history_party()
    # a few election-day voters are recorded under the other labels the map accepts
    method = ctx.history_methods(hist["method_map"])
    polls_alt = [k for k, v in hist["method_map"].items() if v == "polls"][1:]
    if polls_alt:
        alt = (ctx.rng.random(m) < 0.03) & (ctx.method == _METHODS.index("polls"))
        method = pc.if_else(pa.array(alt), _take(polls_alt, ctx.rng.integers(0, len(polls_alt), m)), method)
    pct = precinct.take(pa.array(vi))
    hvalues: dict[str, pa.Array | str] = {
        "county_id": _COUNTY_NUMBER,
        "county_desc": _COUNTY,
        "voter_reg_num": reg_num.take(pa.array(vi)),
        hist["election_date"]: _fmt_days(ctx.e_days[ctx.ei], hist["date_format"]),
        hist["election_desc"]: _take(e_desc, ctx.ei),
        hist["method"]: method,
        hist["ballot_party"]: _take(party_codes, voted_party),
        "voted_party_desc": _take([_PARTY_DESC[p] for p in _PARTIES], voted_party),
        "pct_label": pct,
        "pct_description": _join("PRECINCT", pct, sep=" "),
        hist["voter_id"]: ctx.col(S.VOTER_ID).take(pa.array(vi)),
        "voted_county_id": _COUNTY_NUMBER,
        "voted_county_desc": _COUNTY,
        "vtd_label": pct,
        "vtd_description": pct,
    }
    history = _assemble(hist["columns"], hvalues, m, "nc history file")
    return [
        _Output("voters", "ncvoter.txt", voters, layout.delimiter, layout.header, quote_all=True),
        _Output("history", "ncvhis.txt", history, hist["delimiter"], hist["header"], quote_all=True),
    ]


def _wide_history(ctx: _Ctx, layout: Layout) -> tuple[list[str], list[pa.Array]]:
    """Ohio-style history: one column per election named TYPE-MM/DD/YYYY, ascending by date."""
    hist = layout.history
    type_codes = [_reverse(hist["type_map"], t, _TYPE_FALLBACK[t]) for t in ctx.e_type]
    names = [f"{code}-{_fmt_days([day], hist['date_format'])[0].as_py()}"
             for code, day in zip(type_codes, ctx.e_days, strict=True)]
    value_map = hist["value_map"]
    labels = ["", *[_reverse(value_map, p) or _reverse(value_map, "") for p in _PARTIES],
              _reverse(value_map, "")]
    code = np.where(ctx.primary[ctx.ei] & (ctx.ballot >= 0), ctx.ballot + 1, len(_PARTIES) + 1)
    cells = np.zeros((ctx.n, len(names)), dtype=np.int64)
    cells[ctx.vi, ctx.ei] = code
    return names, [_take(labels, cells[:, e]) for e in range(len(names))]


def _oh(ctx: _Ctx, layout: Layout) -> list[_Output]:
    n = ctx.n
    d = _districts(ctx)
    precinct = ctx.col(S.SOURCE_PRECINCT)
    values: dict[str, pa.Array | str] = {
        _f(layout, "voter_id"): ctx.col(S.VOTER_ID),
        _f(layout, "county"): "07",
        "COUNTY_ID": _int_str(np.arange(1, n + 1) * 3 + 1000, 0),
        _f(layout, "last_name"): ctx.col(S.LAST_NAME),
        _f(layout, "first_name"): ctx.col(S.FIRST_NAME),
        _f(layout, "middle_name"): ctx.col(S.MIDDLE_NAME),
        _f(layout, "name_suffix"): ctx.col(S.NAME_SUFFIX),
        _f(layout, "birth_date"): ctx.dates(ctx.birth_days, layout.formats["birth_date"]),
        _f(layout, "registration_date"): ctx.dates(ctx.reg_days, layout.formats["registration_date"]),
        _f(layout, "status"): ctx.pick(("ACTIVE", "CONFIRMATION"), ctx.inactive.astype(np.int64)),
        _f(layout, "party"): ctx.party_codes(layout),
        _f(layout, "address", 0): ctx.street_line,
        _f(layout, "address", 1): ctx.unit_line,
        _f(layout, "city"): ctx.col(S.CITY),
        _f(layout, "state"): ctx.col(S.STATE),
        _f(layout, "zip"): ctx.col(S.ZIP5),
        "CITY": _CITY,
        "CITY_SCHOOL_DISTRICT": "PROVIDENCE CITY SD",
        "CONGRESSIONAL_DISTRICT": d["cong"],
        "PRECINCT_NAME": _join(_CITY, precinct, sep=" "),
        _f(layout, "source_precinct"): precinct,
        "STATE_REPRESENTATIVE_DISTRICT": d["house"],
        "STATE_SENATE_DISTRICT": d["senate"],
        "WARD": d["ward_desc"],
    }
    names, cols = _wide_history(ctx, layout)
    values.update(dict(zip(names, cols, strict=True)))
    table = _assemble([*layout.columns, *names], values, n, "oh voter file")
    return [_Output("voters", "swvf.txt", table, layout.delimiter, layout.header)]


def _fl(ctx: _Ctx, layout: Layout) -> list[_Output]:
    n = ctx.n
    d = _districts(ctx)
    phone = ctx.col(S.PHONE)
    has_phone = pc.not_equal(phone, "")
    values: dict[str, pa.Array | str] = {
        _f(layout, "county"): "PRO",
        _f(layout, "voter_id"): ctx.col(S.VOTER_ID),
        _f(layout, "last_name"): ctx.col(S.LAST_NAME),
        _f(layout, "name_suffix"): ctx.col(S.NAME_SUFFIX),
        _f(layout, "first_name"): ctx.col(S.FIRST_NAME),
        _f(layout, "middle_name"): ctx.col(S.MIDDLE_NAME),
        "Requested_Public_Records_Exemption": "N",
        _f(layout, "address", 0): ctx.street_line,
        _f(layout, "address", 1): ctx.unit_line,
        _f(layout, "city"): ctx.col(S.CITY),
        _f(layout, "state"): ctx.col(S.STATE),
        _f(layout, "zip"): ctx.col(S.ZIP5),
        "Gender": ctx.col(GENDER),
        "Race": ctx.race({"hispanic": "4", "white": "5", "black": "3", "asian": "2", "other": "7"}, "9"),
        _f(layout, "birth_date"): ctx.dates(ctx.birth_days, layout.formats["birth_date"]),
        _f(layout, "registration_date"): ctx.dates(ctx.reg_days, layout.formats["registration_date"]),
        _f(layout, "party"): ctx.party_codes(layout),
        _f(layout, "source_precinct"): ctx.col(S.SOURCE_PRECINCT),
        "Precinct_Group": d["ward"],
        _f(layout, "status"): ctx.pick(("ACT", "INA"), ctx.inactive.astype(np.int64)),
        "Congressional_District": d["cong"],
        "House_District": d["house"],
        "Senate_District": d["senate"],
        _f(layout, "phone", 0): pc.if_else(has_phone, pc.utf8_slice_codeunits(phone, 0, 3), ""),
        _f(layout, "phone", 1): pc.if_else(has_phone, pc.utf8_slice_codeunits(phone, 3, 10), ""),
        _f(layout, "email"): ctx.col(S.EMAIL),
    }
    voters = _assemble(layout.columns, values, n, "fl voter file")
    hist = layout.history
    vi = ctx.vi
    type_codes = [_reverse(hist["type_map"], t, _TYPE_FALLBACK[t]) for t in ctx.e_type]
    not_voted = tuple(hist.get("not_voted", {}).get("codes", ()))
    hvalues: dict[str, pa.Array | str] = {
        "County_Code": "PRO",
        hist["voter_id"]: ctx.col(S.VOTER_ID).take(pa.array(vi)),
        hist["election_date"]: _fmt_days(ctx.e_days[ctx.ei], hist["date_format"]),
        hist["election_type"]: _take(type_codes, ctx.ei),
        hist["method"]: ctx.history_methods(hist["method_map"], exclude=not_voted),
    }
    history = _assemble(hist["columns"], hvalues, len(vi), "fl history file")
    return [
        _Output("voters", "voters.txt", voters, layout.delimiter, layout.header),
        _Output("history", "history.txt", history, hist["delimiter"], hist["header"]),
    ]


def _mi(ctx: _Ctx, layout: Layout) -> list[_Output]:
    n = ctx.n
    d = _districts(ctx)
    addr = layout.fields["address"]
    by_mail = np.isin(ctx.method, (_METHODS.index("mail"), _METHODS.index("absentee")))
    mail_share = np.bincount(ctx.vi[by_mail], minlength=n) / np.maximum(np.bincount(ctx.vi, minlength=n), 1)
    values: dict[str, pa.Array | str] = {
        _f(layout, "last_name"): ctx.col(S.LAST_NAME),
        _f(layout, "first_name"): ctx.col(S.FIRST_NAME),
        _f(layout, "middle_name"): ctx.col(S.MIDDLE_NAME),
        _f(layout, "name_suffix"): ctx.col(S.NAME_SUFFIX),
        _f(layout, "birth_year"): _int_str(ctx.birth_year),
        "GENDER": ctx.col(GENDER),
        _f(layout, "registration_date"): ctx.dates(ctx.reg_days, layout.formats["registration_date"]),
        addr[1]: ctx.col(S.HOUSE_NUMBER),
        addr[2]: ctx.col(HOUSE_NUMBER_SUFFIX),
        addr[3]: ctx.col(PREDIR),
        addr[4]: ctx.col(STREET_NAME),
        addr[5]: ctx.col(STREET_TYPE),
        addr[7]: ctx.unit_line,
        _f(layout, "city"): ctx.col(S.CITY),
        _f(layout, "state"): ctx.col(S.STATE),
        _f(layout, "zip"): ctx.col(S.ZIP5),
        _f(layout, "voter_id"): ctx.col(S.VOTER_ID),
        "COUNTY_CODE": _COUNTY_NUMBER,
        _f(layout, "county"): _COUNTY,
        "JURISDICTION_CODE": "2800",
        "JURISDICTION_NAME": "CITY OF PROVIDENCE",
        _f(layout, "source_precinct"): ctx.col(S.SOURCE_PRECINCT),
        "WARD": d["ward"],
        "SCHOOL_DISTRICT_CODE": "28000",
        "SCHOOL_DISTRICT_NAME": "PROVIDENCE SCHOOLS",
        "STATE_HOUSE_DISTRICT_CODE": d["house"],
        "STATE_SENATE_DISTRICT_CODE": d["senate"],
        "US_CONGRESS_DISTRICT_CODE": d["cong"],
        "IS_PERMANENT_ABSENTEE_VOTER": _take(("N", "Y"), (mail_share >= 0.5).astype(np.int64)),
        _f(layout, "status"): ctx.pick(("A", "V"), ctx.inactive.astype(np.int64)),
        "UOCAVA_STATUS_CODE": "N",
        "UOCAVA_STATUS_NAME": "NOT UOCAVA",
    }
    voters = _assemble(layout.columns, values, n, "mi voter file")
    hist = layout.history
    vi = ctx.vi
    absentee = np.isin(ctx.method, (_METHODS.index("mail"), _METHODS.index("absentee"))).astype(np.int64)
    hvalues: dict[str, pa.Array | str] = {
        hist["voter_id"]: ctx.col(S.VOTER_ID).take(pa.array(vi)),
        "COUNTY_CODE": _COUNTY_NUMBER,
        "COUNTY_NAME": _COUNTY,
        "JURISDICTION_CODE": "2800",
        "JURISDICTION_NAME": "CITY OF PROVIDENCE",
        "SCHOOL_DISTRICT_CODE": "28000",
        "SCHOOL_DISTRICT_NAME": "PROVIDENCE SCHOOLS",
        hist["election_date"]: _fmt_days(ctx.e_days[ctx.ei], hist["date_format"]),
        hist["absentee"]: _take(("N", "Y"), absentee),
    }
    history = _assemble(hist["columns"], hvalues, len(vi), "mi history file")
    return [
        _Output("voters", "qvf.csv", voters, layout.delimiter, layout.header),
        _Output("history", "history.csv", history, hist["delimiter"], hist["header"]),
    ]


def _pa(ctx: _Ctx, layout: Layout) -> list[_Output]:
    n = ctx.n
    d = _districts(ctx)
    hist = layout.history
    addr = layout.fields["address"]
    n_pairs = int(hist["pairs"])
    n_el = len(ctx.e_days)
    if n_el > n_pairs:
        raise ConfigError(
            f"the population has {n_el} elections but the pa layout holds {n_pairs} pairs",
            fix="use fewer elections",
        )
    party_codes = [_reverse(layout.party_map, p) or _EXTRA_PARTY_CODES["pa"].get(p, "") for p in _PARTIES]
    method_labels = ["", *[_reverse(hist["method_map"], m, _METHOD_FALLBACK[m]) for m in _METHODS]]
    m_code = np.zeros((n, n_el), dtype=np.int64)
    m_code[ctx.vi, ctx.ei] = ctx.method + 1
    p_code = np.zeros((n, n_el), dtype=np.int64)
    p_code[ctx.vi, ctx.ei] = ctx.history_party() + 1
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, ctx.vi, ctx.e_days[ctx.ei])
    fmt = layout.formats["registration_date"]
    last_vote = pc.if_else(pa.array(last >= 0), _fmt_days(np.maximum(last, 0), fmt), "")
    changed = ctx.rng.random(n) < 0.3
    change_days = ctx.reg_days + (ctx.rng.random(n) * (_days(_AS_OF) - 1 - ctx.reg_days)).astype(np.int64)
    values: dict[str, pa.Array | str] = {
        _f(layout, "voter_id"): ctx.col(S.VOTER_ID),
        "title": ctx.pick(("MS", "MR", ""), _codes(ctx.col(GENDER), ("F", "M", "U"))),
        _f(layout, "last_name"): ctx.col(S.LAST_NAME),
        _f(layout, "first_name"): ctx.col(S.FIRST_NAME),
        _f(layout, "middle_name"): ctx.col(S.MIDDLE_NAME),
        _f(layout, "name_suffix"): ctx.col(S.NAME_SUFFIX),
        "gender": ctx.col(GENDER),
        _f(layout, "birth_date"): ctx.dates(ctx.birth_days, layout.formats["birth_date"]),
        _f(layout, "registration_date"): ctx.dates(ctx.reg_days, fmt),
        _f(layout, "status"): ctx.col(S.STATUS),
        "status_change_date": pc.if_else(pa.array(changed), _fmt_days(change_days, fmt), ""),
        _f(layout, "party"): ctx.party_codes(layout),
        addr[0]: ctx.col(S.HOUSE_NUMBER),
        addr[1]: ctx.col(HOUSE_NUMBER_SUFFIX),
        addr[2]: ctx.street_full,
        addr[3]: ctx.unit_line,
        _f(layout, "city"): ctx.col(S.CITY),
        _f(layout, "state"): ctx.col(S.STATE),
        _f(layout, "zip"): ctx.col(S.ZIP5),
        "last_vote_date": last_vote,
        _f(layout, "source_precinct"): ctx.col(S.SOURCE_PRECINCT),
        "date_last_changed": _fmt_days(np.maximum(ctx.reg_days, np.where(changed, change_days, 0)), fmt),
        "district_1": d["cong"],
        "district_2": d["senate"],
        "district_3": d["house"],
        "district_4": d["ward"],
        _f(layout, "phone"): ctx.col(S.PHONE),
        _f(layout, "county"): _COUNTY,
    }
    for k in range(n_el):
        values[hist["method_column"].format(n=k + 1)] = _take(method_labels, m_code[:, k])
        values[hist["party_column"].format(n=k + 1)] = _take(["", *party_codes], p_code[:, k])
    voters = _assemble(layout.columns, values, n, "pa voter file")
    e_map = {
        hist["map_columns"][0]: _COUNTY,
        hist["map_columns"][1]: _int_str(np.arange(1, n_el + 1)),
        hist["map_columns"][2]: pa.array([f"{_fmt_days([day], '%Y')[0].as_py()} {title}"
                                          for day, title in zip(ctx.e_days, ctx.e_title, strict=True)]),
        hist["map_columns"][3]: _fmt_days(ctx.e_days, hist["date_format"]),
    }
    election_map = _assemble(hist["map_columns"], e_map, n_el, "pa election map")
    return [
        _Output("voters", "fve.txt", voters, layout.delimiter, layout.header),
        _Output("election_map", "election_map.txt", election_map, hist["map_delimiter"], False),
    ]


_BUILDERS = {"nc": _nc, "oh": _oh, "fl": _fl, "mi": _mi, "pa": _pa}


def _format_line(values: Sequence[str], delimiter: str, quote_all: bool) -> str:
    if quote_all:
        values = ['"' + v.replace('"', '""') + '"' for v in values]
    return delimiter.join(values) + "\n"


def _write_delimited(path: Path, table: pa.Table, *, delimiter: str, header: bool, quote_all: bool,
                     inserts: Sequence[tuple[int, str]] = ()) -> Path:
    """Write ``table`` as UTF-8 text with ``\\n`` line ends, atomically; ``inserts`` are raw lines placed before
    the given row positions (ascending)."""

    def attempt(style: str) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            if header:
                fh.write(_format_line(table.column_names, delimiter, quote_all).encode("utf-8"))
            options = pacsv.WriteOptions(include_header=False, delimiter=delimiter, quoting_style=style)
            start = 0
            for pos, line in (*inserts, (table.num_rows, "")):
                if pos > start:
                    pacsv.write_csv(table.slice(start, pos - start), fh, write_options=options)
                    start = pos
                fh.write(line.encode("utf-8"))

    if quote_all:
        attempt("all_valid")
    else:
        try:
            attempt("none")  # plain fields, as the states write them
        except pa.ArrowInvalid:
            attempt("needed")  # a value holds the delimiter or a quote: quote every text field
    return path


def _bad_rows(
    ctx: _Ctx, layout: Layout, out: _Output, k: int, rng: np.random.Generator, history_columns: Sequence[str]
) -> tuple[list[tuple[int, str]], pd.DataFrame]:
    """Build ``k`` bad lines for the voter file, their insert positions and their truth rows."""
    n = ctx.n
    table = out.table
    ncols = table.num_columns
    names = table.column_names
    header_lines = 1 if out.header else 0
    ids = rng.choice(900_000, size=k, replace=False) + 100_000 if k else np.zeros(0, dtype=np.int64)
    donors = rng.integers(0, n, k)
    new_first = rng.integers(0, len(_FIRST_F[1]), k)
    id_col = _f(layout, "voter_id")
    reg_col = _f(layout, "registration_date")
    birth_key = "birth_year" if "birth_year" in layout.fields else "birth_date"
    birth_col = _f(layout, birth_key)
    zip_col = _f(layout, "zip")
    first_col = _f(layout, "first_name")
    future = _AS_OF.year + 6
    inserts: list[tuple[int, str]] = []
    rows: list[dict[str, Any]] = []
    for j in range(k):
        kind, expected = _BAD_KINDS[j % len(_BAD_KINDS)]
        pos = max(1, round((j + 1) * n / (k + 1)))
        row = {c: str(v) for c, v in table.slice(int(donors[j]), 1).to_pylist()[0].items()}
        for c in history_columns:
            row[c] = ""
        row[id_col] = f"ZZ{ids[j]:06d}"
        row[first_col] = unicodedata.normalize("NFC", _FIRST_F[1][new_first[j]]).upper()
        column = ""
        if kind == "impossible_date":
            column = reg_col
            row[reg_col] = _fmt_parts(layout.formats.get("registration_date", "%m/%d/%Y"), 2019, 2, 30)
        elif kind == "future_birth_year":
            column = birth_col
            row[birth_col] = (str(future) if birth_key == "birth_year"
                              else _fmt_parts(layout.formats.get("birth_date", "%m/%d/%Y"), future, 6, 15))
        elif kind == "zip_lost_leading_zero":
            column = zip_col
            row[zip_col] = row[zip_col].lstrip("0")
        fields = [row[c] for c in names]
        if kind == "too_many_fields":
            fields = [*fields, "EXTRA"]
        elif kind == "too_few_fields":
            fields = fields[: ncols // 2]
        elif kind == "empty_row":
            fields = [""] * ncols
        parses = expected != "quarantine_row"
        inserts.append((pos, _format_line(fields, out.delimiter, out.quote_all)))
        rows.append(
            {
                "file": out.name,
                "line": header_lines + pos + j + 1,
                "kind": kind,
                "expected": expected,
                "column": column,
                "voter_id": "" if kind == "empty_row" else row[id_col],
                "parses_as_voter": parses,
                "n_fields": len(fields),
            }
        )
    frame = pd.DataFrame(rows, columns=list(BAD_ROW_COLUMNS))
    frame = frame.astype({"line": "int64", "parses_as_voter": "bool", "n_fields": "int64"})
    return inserts, frame


def _geocodes(ctx: _Ctx, rng: np.random.Generator) -> tuple[pa.Table, BoolArray]:
    """What a geocoding vendor returns, per building: rooftop or interpolated points, ~1 % failures."""
    v = ctx.pop.voters
    codes, uniq = pd.factorize(v[BUILDING_KEY])
    codes = np.asarray(codes, dtype=np.int64)
    nb = len(uniq)
    u = rng.random(nb)
    no_row = (u < 0.005)[codes]
    no_match = ((u >= 0.005) & (u < 0.01))[codes]
    rooftop = (rng.random(nb) < 0.87)[codes]
    sd = np.where(rooftop, 2.0, 12.0)
    lat = v[S.LAT].to_numpy(dtype=np.float64)
    lng = v[S.LNG].to_numpy(dtype=np.float64)
    dy = rng.normal(0, 1, nb)[codes] * sd
    dx = rng.normal(0, 1, nb)[codes] * sd
    glat = np.round(lat + dy / 111_320.0, 6)
    glng = np.round(lng + dx / (111_320.0 * np.cos(np.radians(lat))), 6)
    score = np.where(rooftop, rng.integers(95, 101, nb)[codes], rng.integers(80, 95, nb)[codes])
    kind = np.where(no_match, 2, np.where(rooftop, 0, 1))
    keep = ~no_row
    fail = pa.array(no_match[keep])
    table = pa.table(
        {
            "voter_id": ctx.col(S.VOTER_ID).filter(pa.array(keep)),
            "latitude": pc.if_else(fail, "", pc.cast(pa.array(glat[keep]), pa.string())),
            "longitude": pc.if_else(fail, "", pc.cast(pa.array(glng[keep]), pa.string())),
            "match_score": _int_str(np.where(no_match, 0, score)[keep]),
            "match_type": _take(("ROOFTOP", "RANGE_INTERPOLATED", "NO_MATCH"), kind[keep]),
        }
    )
    return table, ~(no_row | no_match)


def _signals_table(signals: pd.DataFrame) -> pa.Table:
    ts = pa.array(signals[S.TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]"))
    return pa.table(
        {
            S.TIMESTAMP: pc.strftime(ts, format="%Y-%m-%dT%H:%M:%SZ"),
            S.KIND: pa.array(signals[S.KIND]).cast(pa.string()),
            S.LAT: pc.cast(pa.array(signals[S.LAT].to_numpy(dtype=np.float64)), pa.string()),
            S.LNG: pc.cast(pa.array(signals[S.LNG].to_numpy(dtype=np.float64)), pa.string()),
            S.WEIGHT: pc.cast(pa.array(signals[S.WEIGHT].to_numpy(dtype=np.float64)), pa.string()),
            S.VOTER_ID: pa.array(signals[S.VOTER_ID]).cast(pa.string()),
            S.DEVICE_ID: pa.array(signals[S.DEVICE_ID]).cast(pa.string()),
        }
    )


def write_layout(
    population: SyntheticPopulation,
    layout: str,
    folder: str | Path,
    *,
    bad_rows: int = 0,
    seed: int = 0,
    geocodes: bool = True,
) -> dict[str, Path]:
    """Write a population as a state publishes its voter file, with the vendor geocodes, signals and truth.

    Every file is UTF-8 without BOM, ``\\n`` line ends, written atomically. Column names and order come from the
    layout TOML (:func:`geo_segment.layouts.load_layout`); columns the synthetic data has no value for are empty.

    ===========  ====================================================================================
    layout       files
    ===========  ====================================================================================
    ``nc``       ``ncvoter.txt``, ``ncvhis.txt``: tab, header, every field double-quoted
    ``oh``       ``swvf.txt``: comma, header, then one ``TYPE-MM/DD/YYYY`` column per election
    ``fl``       ``voters.txt``, ``history.txt``: tab, no header
    ``mi``       ``qvf.csv``, ``history.csv``: comma, header
    ``pa``       ``fve.txt`` (tab, no header, 40 history pairs), ``election_map.txt``
    ===========  ====================================================================================

    Always written: ``signals.csv`` (ISO 8601 UTC timestamps), ``truth.parquet`` (``voter_id``,
    ``true_propensity``, ``pocket_id``, ``household_key``, ``building_key``, ``n_votes``, ``geocoded``, ``lat``,
    ``lng``) and ``truth_bad_rows.csv`` (``file``, ``line``, ``kind``, ``expected``, ``column``, ``voter_id``,
    ``parses_as_voter``, ``n_fields``). With ``geocodes=True``, ``geocodes.csv`` (``voter_id``, ``latitude``,
    ``longitude``, ``match_score``, ``match_type``): about 0.5 % of voters get no row and 0.5 % an empty
    ``NO_MATCH`` row, by building.

    History conventions follow the states: NC ``voted_party_cd`` and PA ``election_N_party`` carry the ballot
    party in primaries and the voter's party in other elections; FL and PA method codes are the layout's (early
    votes are ``AP`` in PA, provisional votes ``F`` in FL); MI flags mail and absentee ballots only.

    Parameters
    ----------
    population
        From :func:`generate_population`.
    layout
        ``nc``, ``oh``, ``fl``, ``mi`` or ``pa``.
    folder
        Output folder (created if needed).
    bad_rows
        Number of deliberately bad lines inserted into the voter file at positions spread evenly through it
        (never line 1). Kinds cycle through ``too_many_fields``, ``too_few_fields``, ``empty_row`` (rows a
        reader must quarantine), ``impossible_date`` (``02/30/2019`` registration date), ``future_birth_year``
        (fields to quarantine; the voter stays) and ``zip_lost_leading_zero`` (a field to repair). Rows that
        still parse are extra voters with ids starting ``ZZ``: the file holds ``n_voters`` + that many voters.
    seed
        Seed for the geocodes (failures and jitter) and the bad rows (donors, ids). Filler values the population
        does not hold (race codes, mailing addresses, district numbers) follow ``population.seed``, so the
        voter and history files do not depend on ``seed`` unless ``bad_rows`` > 0.
    geocodes
        Whether to write ``geocodes.csv``.

    Returns
    -------
    dict[str, pathlib.Path]
        Keys ``voters``, ``history`` (nc, fl, mi), ``election_map`` (pa), ``geocodes``, ``signals``, ``truth``,
        ``truth_bad_rows``.

    Raises
    ------
    ConfigError
        Unknown layout, negative ``bad_rows``.

    Examples
    --------
    >>> import tempfile
    >>> pop = generate_population(300, seed=2)
    >>> paths = write_layout(pop, "nc", tempfile.mkdtemp(), bad_rows=2)
    >>> sorted(paths)
    ['geocodes', 'history', 'signals', 'truth', 'truth_bad_rows', 'voters']
    >>> paths["voters"].name
    'ncvoter.txt'
    """
    name = str(layout).lower()
    if name not in BUILTIN_LAYOUTS:
        raise ConfigError(
            f"the sample generator writes only the built-in layouts, not {layout!r}",
            expected=f"one of {list(BUILTIN_LAYOUTS)}",
            found=repr(layout),
            fix="pass layout='nc' (for example)",
        )
    bad_rows = _check_int("bad_rows", bad_rows, 0)
    seed = _check_int("seed", seed, 0)
    lay = load_layout(name)
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    # filler codes (race, mailing addresses, ...) follow the population, so its voter file does not depend on `seed`
    ctx = _Ctx(population, np.random.default_rng([population.seed, 1]))
    r_geo, r_bad = np.random.default_rng(seed).spawn(2)
    outputs = _BUILDERS[name](ctx, lay)
    voters_out = outputs[0]
    history_columns = [c for c in voters_out.table.column_names if c not in lay.columns]
    if lay.history_style == "pairs":
        history_columns = [lay.history["method_column"].format(n=k + 1) for k in range(int(lay.history["pairs"]))]
        history_columns += [lay.history["party_column"].format(n=k + 1) for k in range(int(lay.history["pairs"]))]
        history_columns.append("last_vote_date")
    inserts, bad_truth = _bad_rows(ctx, lay, voters_out, bad_rows, r_bad, history_columns)

    paths: dict[str, Path] = {}
    for out in outputs:
        paths[out.key] = _write_delimited(
            out_dir / out.name, out.table, delimiter=out.delimiter, header=out.header, quote_all=out.quote_all,
            inserts=inserts if out is voters_out else (),
        )
    geocoded = np.ones(ctx.n, dtype=bool)
    if geocodes:
        table, geocoded = _geocodes(ctx, r_geo)
        paths["geocodes"] = _write_delimited(out_dir / "geocodes.csv", table, delimiter=",", header=True,
                                             quote_all=False)
    paths["signals"] = _write_delimited(out_dir / "signals.csv", _signals_table(population.signals),
                                        delimiter=",", header=True, quote_all=False)
    v = population.voters
    truth = pd.DataFrame(
        {
            S.VOTER_ID: v[S.VOTER_ID],
            TRUE_PROPENSITY: v[TRUE_PROPENSITY],
            POCKET_ID: v[POCKET_ID],
            HOUSEHOLD_KEY: v[HOUSEHOLD_KEY],
            BUILDING_KEY: v[BUILDING_KEY],
            N_VOTES: np.bincount(ctx.vi, minlength=ctx.n).astype(np.int64),
            S.GEOCODED: geocoded,
            S.LAT: v[S.LAT],
            S.LNG: v[S.LNG],
        }
    )
    paths["truth"] = write_parquet(truth, out_dir / "truth.parquet")
    paths["truth_bad_rows"] = write_csv(bad_truth, out_dir / "truth_bad_rows.csv")
    return paths


# ==================================================================================================================
# a planted treatment effect: the outcome election of a field experiment
# ==================================================================================================================

#: a fixed salt so the outcome draws never share a stream with :func:`generate_population` or :func:`write_layout`
_OUTCOME_SALT = 0x0E1EC7
_EFFECT_SCALES = ("probability", "logit")


@dataclass(frozen=True, eq=False)
class PlantedOutcome:
    """An outcome election drawn with a known treatment effect, as returned by :func:`draw_outcome_election`.

    Attributes
    ----------
    history
        Voted rows of the outcome election, in the long vote-history form (``voter_id``, ``election_date``,
        ``election_type`` = ``general``, ``voted`` = True, ``method`` = ``polls``, ``ballot_party`` = ``""``):
        append it to the vote history to get the "updated" history.
    contacts
        Canvass results in the contact-history form of :mod:`geo_segment.turfs.results` (``voter_id`` empty:
        household-level rows; ``household_id``, ``contact_date``, ``result_code`` ``CT`` for reached households
        and ``NH`` for the others, ``survey`` ``{}``, ``source_file`` ``synthetic``), treatment households only.
    truth
        Per voter: ``voter_id``, ``treated`` (boolean, ``NA`` outside the experiment), ``complier`` (their household
        would be reached if assigned), ``p0`` and ``p1`` (turnout probability without and with contact),
        ``voted``.
    true_itt
        The planted intent-to-treat effect: the mean over the experiment's voters of ``complier * (p1 - p0)``.
    true_cace
        The planted effect on compliers: the mean of ``p1 - p0`` over the experiment's compliers.
    election_date
        The outcome election's date.
    """

    history: pd.DataFrame
    contacts: pd.DataFrame
    truth: pd.DataFrame
    true_itt: float
    true_cace: float
    election_date: pd.Timestamp


def draw_outcome_election(
    voters: pd.DataFrame,
    treated: Any,
    *,
    effect: float = 0.0,
    scale: str = "probability",
    contact_rate: float = 1.0,
    propensity_col: str = TRUE_PROPENSITY,
    household_col: str = S.HOUSEHOLD_ID,
    election_date: str = "2026-11-03",
    turnout_shift: float = 0.0,
    seed: int = 0,
) -> PlantedOutcome:
    """Draw the turnout of an election after a field experiment, with a planted effect of being contacted.

    Nothing here touches the random streams of :func:`generate_population` or :func:`write_layout`: the draws come
    from ``numpy.random.default_rng([seed, salt])``, so existing populations and files stay identical.

    A voter's turnout probability without the program is ``p0 = sigmoid(logit(propensity) + turnout_shift)``.
    Each household is a *complier* (would be reached if assigned) with probability ``contact_rate``. A voter whose
    household is assigned to treatment and is a complier votes with ``p1 = p0 + effect`` (clipped to [0, 1];
    ``scale="probability"``) or ``sigmoid(logit(p0) + effect)`` (``scale="logit"``); everyone else with ``p0``.
    Both potential outcomes share one uniform draw per voter.

    Parameters
    ----------
    voters
        ``voter_id``, ``propensity_col`` and ``household_col`` (e.g. :attr:`SyntheticPopulation.voters` with
        ``household_col="household_key"``).
    treated
        Per voter, aligned with ``voters``: True (assigned to treatment), False (held out) or ``NA`` (not in the
        experiment).
    effect
        The effect of contact on compliers, on ``scale`` (0 = no effect).
    scale
        ``"probability"`` or ``"logit"``.
    contact_rate
        Share of households reached when assigned, in (0, 1].
    propensity_col, household_col
        Column names.
    election_date
        Date of the outcome election.
    turnout_shift
        Shift of every voter's logit in this election (0: a midterm like the propensity describes).
    seed
        Seed of the outcome draws.

    Returns
    -------
    PlantedOutcome

    Raises
    ------
    ConfigError
        A bad scale, contact rate or length of ``treated``.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"voter_id": ["a", "b"], "household_id": ["h1", "h2"], "true_propensity": [0.5, 0.5]})
    >>> out = draw_outcome_election(v, [True, False], effect=0.1)
    >>> round(out.true_itt, 3), round(out.true_cace, 3)
    (0.1, 0.1)
    """
    if scale not in _EFFECT_SCALES:
        raise ConfigError("unknown effect scale", expected=f"one of {list(_EFFECT_SCALES)}", found=repr(scale),
                          fix='pass scale="probability" or scale="logit"')
    if not 0 < contact_rate <= 1:
        raise ConfigError("contact_rate out of range", expected="0 < contact_rate <= 1", found=repr(contact_rate),
                          fix="pass the share of assigned households reached")
    n = len(voters)
    t = pd.array(list(treated) if not isinstance(treated, pd.Series) else treated.to_numpy(), dtype="boolean")
    if len(t) != n:
        raise ConfigError("treated does not match the voters", expected=f"{n} values", found=f"{len(t)}",
                          fix="pass one value per voter, aligned with the voters")
    in_exp = ~np.asarray(t.isna(), dtype=bool)
    is_t = np.asarray(t.fillna(False), dtype=bool)
    rng = np.random.default_rng([_check_int("seed", seed, 0), _OUTCOME_SALT])
    hh_codes, hh_ids = pd.factorize(voters[household_col].astype(str))
    complier = (rng.random(len(hh_ids)) < contact_rate)[hh_codes]
    prop = np.clip(voters[propensity_col].to_numpy(np.float64), 1e-6, 1 - 1e-6)
    base = np.log(prop / (1 - prop)) + turnout_shift
    p0 = _sigmoid(base)
    p1 = np.clip(p0 + effect, 0.0, 1.0) if scale == "probability" else _sigmoid(base + effect)
    u = rng.random(n)
    p = np.where(is_t & complier, p1, p0)
    voted = u < p
    lift = complier * (p1 - p0)
    true_itt = float(lift[in_exp].mean()) if in_exp.any() else float("nan")
    comp = in_exp & complier
    true_cace = float((p1 - p0)[comp].mean()) if comp.any() else float("nan")
    day = pd.Timestamp(election_date)
    vid = voters[S.VOTER_ID].astype(str).to_numpy()
    m = int(voted.sum())
    history = pd.DataFrame({
        S.VOTER_ID: pd.Series(vid[voted], dtype="str"),
        S.ELECTION_DATE: np.full(m, np.datetime64(day.date(), "D")).astype("datetime64[ns]"),
        S.ELECTION_TYPE: pd.Series(["general"] * m, dtype="str"),
        S.VOTED: np.ones(m, dtype=bool),
        S.VOTE_METHOD: pd.Series(["polls"] * m, dtype="str"),
        S.BALLOT_PARTY: pd.Series([""] * m, dtype="str"),
    })
    t_hh = np.zeros(len(hh_ids), dtype=bool)
    t_hh[hh_codes[is_t]] = True
    comp_hh = np.zeros(len(hh_ids), dtype=bool)
    comp_hh[hh_codes[complier]] = True
    k = int(t_hh.sum())
    contacts = pd.DataFrame({
        S.VOTER_ID: pd.Series([pd.NA] * k, dtype="string"),
        S.HOUSEHOLD_ID: pd.Series(np.asarray(hh_ids)[t_hh], dtype="string"),
        "contact_date": np.full(k, np.datetime64((day - pd.Timedelta(days=14)).date(), "D")).astype("datetime64[ns]"),
        "result_code": pd.Series(np.where(comp_hh[t_hh], "CT", "NH"), dtype="string"),
        "survey": pd.Series(["{}"] * k, dtype="string"),
        "source_file": pd.Series(["synthetic"] * k, dtype="string"),
    })
    truth = pd.DataFrame({S.VOTER_ID: pd.Series(vid, dtype="str"), "treated": t, "complier": complier,
                          "p0": p0, "p1": p1, S.VOTED: voted})
    return PlantedOutcome(history=history, contacts=contacts, truth=truth, true_itt=true_itt, true_cace=true_cace,
                          election_date=day)
