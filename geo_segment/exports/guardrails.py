"""Privacy and political-advertising guardrails every export passes through.

* a required purpose (:data:`PURPOSES`) checked against the per-state rules table and each platform's political
  rules (Google election ads: no Customer Match, no radius);
* EU/EEA records need a consent flag each (Regulation (EU) 2024/900); EU/EEA geographies are refused;
* forbidden columns (party, ideology, vote history, birth date) never enter an ad file, and each target has a
  column allowlist;
* suppression lists (do-not-contact, opt-outs, address-confidentiality participants) applied last, with counts;
* overlap between audiences, and mutual exclusivity by a stated priority;
* owner-only files for hashed identifiers and an append-only JSON-lines audit log without personal data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo_segment import schema as S
from geo_segment.errors import ConfigError, GuardrailError, InputFileError, InputNotFoundError, Location
from geo_segment.exports.platforms import PlatformRules
from geo_segment.io.atomic import atomic_path

__all__ = [
    "FORBIDDEN_PATTERN",
    "PURPOSES",
    "Suppression",
    "append_audit",
    "apply_suppression",
    "check_columns",
    "check_eu_geographies",
    "check_eu_records",
    "check_purpose",
    "check_states",
    "csv_bytes",
    "frame_digest",
    "load_suppression",
    "make_exclusive",
    "overlap_report",
    "write_private_csv",
]

PURPOSES = ("election", "political", "issue", "research")

#: Column names that never enter an ad file: party, ideology, vote history, birth date.
FORBIDDEN_PATTERN = re.compile(
    r"(^|_)(party|partisan\w*|ideology|ideological|ballot\w*|voted\w*|vote_history|history|turnout\w*|"
    r"election\w*|birth\w*|dob|age)($|_)",
    re.IGNORECASE,
)
SUPPRESSION_KEYS = (S.VOTER_ID, S.HOUSEHOLD_ID, S.EMAIL, S.PHONE)


def check_purpose(
    purpose: str | None, *, family: str, action: str, rules: PlatformRules
) -> list[str]:
    """Check a purpose for a platform family and action; return the warnings to show.

    Parameters
    ----------
    purpose
        One of :data:`PURPOSES` (required).
    family
        The platform family (``google``, ``meta``, ``generic``...).
    action
        What is exported: ``customer_match``, ``radius``, ``polygon``, ``h3``, ``zip`` or ``precinct``.
    rules
        The platform rules.

    Raises
    ------
    GuardrailError
        When the purpose is missing or unknown, or the platform's political rules refuse the action.
    """
    if purpose is None or purpose not in PURPOSES:
        raise GuardrailError(
            "an export needs a purpose",
            expected=f"one of {list(PURPOSES)}",
            found=repr(purpose),
            fix="pass --purpose (or set [export] purpose)",
        )
    warnings_: list[str] = []
    for row in rules.political_rules(family, purpose):
        if action in row.get("refuse", []):
            raise GuardrailError(
                f"{family} refuses {action} exports for purpose {purpose!r} ({row.get('source')})",
                fix="for election ads on Google use geography only: --format zip or precinct lists",
            )
        if row.get("warn"):
            warnings_.append(str(row["warn"]))
    return warnings_


def check_states(states: pd.Series, purpose: str, rules: PlatformRules) -> dict[str, int]:
    """Refuse when any record comes from a state whose rules forbid ``purpose``; return records per state (upper
    case, most records first).

    Raises
    ------
    GuardrailError
        Naming each refusing state, its allowed purposes, its source and the number of records.
    """
    # count each distinct spelling once, then merge spellings by upper case (a million rows hold a few states)
    codes, distinct = pd.factorize(states.dropna().astype("str"))
    per = np.bincount(codes, minlength=len(distinct))
    upper = pd.Series(distinct, dtype="str").str.upper().to_numpy(dtype=object)
    counts = pd.Series(per, index=upper).groupby(level=0, sort=False).sum()
    counts = counts.iloc[np.argsort(-counts.to_numpy(), kind="stable")]
    bad = {str(st): int(n) for st, n in counts.items() if purpose not in rules.allowed_purposes(str(st))}
    if bad:
        detail = "; ".join(
            f"{st}: {n} records, allowed {list(rules.allowed_purposes(st))} "
            f"({rules.state_sources.get(st, 'platforms file')})" for st, n in sorted(bad.items())
        )
        raise GuardrailError(
            f"purpose {purpose!r} is not allowed for voter data from {sorted(bad)} ({detail})",
            fix="choose an allowed purpose, or leave these records out",
        )
    return {str(k): int(v) for k, v in counts.items()}


def check_eu_records(
    frame: pd.DataFrame, *, default_region: str, consent_col: str, rules: PlatformRules, country_col: str = "country"
) -> int:
    """Refuse EU/EEA records without a true consent flag each; return the number of EU/EEA records.

    A record is EU/EEA when its ``country_col`` is an EU/EEA code, or, without that column, when
    ``default_region`` is.

    Raises
    ------
    GuardrailError
        With the number of EU/EEA records lacking consent.
    """
    if country_col in frame.columns:
        country = frame[country_col].astype("string").str.strip().str.upper()
        eu = country.isin(list(rules.eu_countries)).fillna(False).to_numpy(dtype=bool)
    else:
        eu = np.full(len(frame), default_region.upper() in rules.eu_countries)
    n_eu = int(eu.sum())
    if not n_eu:
        return 0
    if consent_col in frame.columns:
        consent = frame[consent_col].astype("boolean").fillna(False).to_numpy(dtype=bool)
    else:
        consent = np.zeros(len(frame), dtype=bool)
    missing = int((eu & ~consent).sum())
    if missing:
        raise GuardrailError(
            f"{missing} of {n_eu} EU/EEA records carry no political-ads consent flag ({rules.eu_source})",
            expected=f"a true {consent_col!r} on every EU/EEA record",
            fix=f"add the explicit, separate consent as column {consent_col!r}, or leave these records out",
        )
    return n_eu


def check_eu_geographies(centroid_lng: np.ndarray, centroid_lat: np.ndarray, rules: PlatformRules) -> None:
    """Refuse geofences whose centroid lies in the (conservative) EU/EEA box of the platforms file.

    Raises
    ------
    GuardrailError
        With the number of fences concerned.
    """
    x0, y0, x1, y1 = rules.eu_bbox
    inside = (centroid_lng >= x0) & (centroid_lng <= x1) & (centroid_lat >= y0) & (centroid_lat <= y1)
    n = int(np.count_nonzero(inside))
    if n:
        raise GuardrailError(
            f"{n} geofences lie in the EU/EEA, where political targeting needs each person's consent "
            f"({rules.eu_source})",
            fix="target EU/EEA people only through a consented customer list with a consent column",
        )


def check_columns(columns: Iterable[str], *, allowlist: Iterable[str], target: str) -> None:
    """Refuse forbidden columns and columns outside the target's allowlist.

    Raises
    ------
    GuardrailError
        Listing every forbidden or unlisted column.
    """
    cols = [str(c) for c in columns]
    forbidden = [c for c in cols if FORBIDDEN_PATTERN.search(c)]
    if forbidden:
        raise GuardrailError(
            f"columns {forbidden} never enter an ad file for {target} (party, ideology, vote history, birth date)",
            fix="drop them from the requested columns",
        )
    allowed = set(allowlist)
    extra = [c for c in cols if c not in allowed]
    if extra:
        raise GuardrailError(
            f"columns {extra} are not in the {target} allowlist",
            expected=f"columns among {sorted(allowed)}",
            fix="drop them (the allowlists are in docs/exports.md)",
        )


# --- suppression -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suppression:
    """Suppression keys: voter and household ids as given; emails and phones as SHA-256 of their normalized form."""

    voter_ids: frozenset[str] = frozenset()
    household_ids: frozenset[str] = frozenset()
    email_hashes: frozenset[str] = frozenset()
    phone_hashes: frozenset[str] = frozenset()
    sources: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.voter_ids) + len(self.household_ids) + len(self.email_hashes) + len(self.phone_hashes)


def _phone_hashes(values: pd.Series, default_region: str) -> set[str]:
    from geo_segment.exports.hashing import hash_series

    out: set[str] = set()
    for platform in ("meta", "google"):
        h, _ = hash_series(values, kind="phone", platform=platform, default_region=default_region)
        out.update(h.dropna().tolist())
    return out


def load_suppression(paths: Sequence[str | Path], *, default_region: str = "US") -> Suppression:
    """Read suppression lists (CSV or Parquet) with any of the columns voter_id, household_id, email, phone.

    Emails and phones may be raw or already hashed; they are normalized and hashed like the audience's.

    Raises
    ------
    InputFileError
        When a file is missing or holds none of the key columns.
    """
    from geo_segment.exports.hashing import hash_series
    from geo_segment.io.manifest import sha256_file

    voter: set[str] = set()
    house: set[str] = set()
    email: set[str] = set()
    phone: set[str] = set()
    sources = []
    for raw in paths:
        p = Path(raw)
        if not p.is_file():
            raise InputNotFoundError("suppression list not found", where=Location(p), fix="check the path")
        frame = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p, dtype="string",
                                                                                keep_default_na=False)
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        keys = [k for k in SUPPRESSION_KEYS if k in frame.columns]
        if not keys:
            raise InputFileError("a suppression list holds no key column", where=Location(p),
                                 expected=f"one of {list(SUPPRESSION_KEYS)}", found=f"{list(frame.columns)}",
                                 fix="name the column voter_id, household_id, email or phone")
        if S.VOTER_ID in frame:
            voter.update(v.strip() for v in frame[S.VOTER_ID].dropna().astype("str") if v.strip())
        if S.HOUSEHOLD_ID in frame:
            house.update(v.strip() for v in frame[S.HOUSEHOLD_ID].dropna().astype("str") if v.strip())
        if S.EMAIL in frame:
            h, _ = hash_series(frame[S.EMAIL], kind="email", platform="google", default_region=default_region)
            email.update(h.dropna().tolist())
        if S.PHONE in frame:
            phone.update(_phone_hashes(frame[S.PHONE], default_region))
        sources.append({"path": str(p), "sha256": sha256_file(p), "rows": len(frame), "keys": keys})
    return Suppression(frozenset(voter), frozenset(house), frozenset(email), frozenset(phone), tuple(sources))


def apply_suppression(
    frame: pd.DataFrame, suppression: Suppression | None, *, default_region: str = "US"
) -> tuple[pd.DataFrame, int]:
    """Remove suppressed records (by voter id, household id, email or phone); return the rest and the count removed.

    ``frame`` holds raw columns (voter_id, household_id, email, phone, any subset).
    """
    if suppression is None or not len(suppression) or not len(frame):
        return frame, 0
    from geo_segment.exports.hashing import hash_series

    hit = np.zeros(len(frame), dtype=bool)
    if S.VOTER_ID in frame and suppression.voter_ids:
        hit |= frame[S.VOTER_ID].astype("string").isin(list(suppression.voter_ids)).fillna(False).to_numpy(bool)
    if S.HOUSEHOLD_ID in frame and suppression.household_ids:
        hit |= frame[S.HOUSEHOLD_ID].astype("string").isin(list(suppression.household_ids)).fillna(False).to_numpy(
            bool)
    if S.EMAIL in frame and suppression.email_hashes:
        h, _ = hash_series(frame[S.EMAIL], kind="email", platform="google", default_region=default_region)
        hit |= h.isin(list(suppression.email_hashes)).fillna(False).to_numpy(bool)
    if S.PHONE in frame and suppression.phone_hashes:
        for platform in ("meta", "google"):
            h, _ = hash_series(frame[S.PHONE], kind="phone", platform=platform, default_region=default_region)
            hit |= h.isin(list(suppression.phone_hashes)).fillna(False).to_numpy(bool)
    return frame.loc[~hit], int(hit.sum())


# --- several audiences -----------------------------------------------------------------------------------------


def overlap_report(members: Mapping[str, pd.Index]) -> pd.DataFrame:
    """Pairwise overlap of audiences given as indexes of voter ids.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``a``, ``b``, ``n_a``, ``n_b``, ``overlap`` (voters in both), ``jaccard``.

    Examples
    --------
    >>> overlap_report({"x": pd.Index(["1", "2"]), "y": pd.Index(["2", "3"])}).overlap.tolist()
    [1]
    """
    names = list(members)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            inter = len(members[a].intersection(members[b]))
            union = len(members[a].union(members[b]))
            rows.append({"a": a, "b": b, "n_a": len(members[a]), "n_b": len(members[b]), "overlap": inter,
                         "jaccard": round(inter / union, 4) if union else 0.0})
    return pd.DataFrame(rows, columns=["a", "b", "n_a", "n_b", "overlap", "jaccard"])


def make_exclusive(members: Mapping[str, pd.Index], priority: Sequence[str]) -> dict[str, pd.Index]:
    """Make audiences mutually exclusive: a voter stays only in the highest-priority audience holding them.

    Raises
    ------
    ConfigError
        When ``priority`` does not name every audience exactly once.

    Examples
    --------
    >>> out = make_exclusive({"x": pd.Index(["1", "2"]), "y": pd.Index(["2", "3"])}, ["y", "x"])
    >>> out["x"].tolist(), out["y"].tolist()
    (['1'], ['2', '3'])
    """
    if sorted(priority) != sorted(members) or len(set(priority)) != len(priority):
        raise ConfigError("the priority order must name every audience once", expected=f"{sorted(members)}",
                          found=f"{list(priority)}", fix="pass --priority with every audience name")
    taken = pd.Index([])
    out: dict[str, pd.Index] = {}
    for name in priority:
        keep = members[name].difference(taken, sort=False)
        out[name] = members[name][members[name].isin(keep)]
        taken = taken.union(members[name])
    return {name: out[name] for name in members}


# --- files and audit -------------------------------------------------------------------------------------------


def write_private_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV atomically with owner-only permissions (0600): hashes of identifiers are personal data.

    The bytes are those of ``frame.to_csv(index=False, lineterminator="\\n")``; frames of two or more string
    columns whose values need no quoting (customer lists: hex digests, ZIPs, country codes) are joined by Arrow
    in one pass (see :func:`csv_bytes`), anything else is written by pandas.
    """
    parts = _csv_parts(frame)
    with atomic_path(path) as tmp:
        os.chmod(tmp, 0o600)
        if parts is None:
            frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
        else:
            with open(tmp, "wb") as fh:
                for part in parts:
                    fh.write(part)
    os.chmod(path, 0o600)
    return Path(path)


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def csv_bytes(frame: pd.DataFrame) -> bytes | None:
    """The UTF-8 bytes ``frame.to_csv(index=False, lineterminator="\\n")`` writes, built with Arrow kernels (no
    Python string per cell), or ``None`` when this fast path does not apply.

    It applies to frames of two or more string-dtype columns whose names and values hold no comma, double quote,
    carriage return or newline, so that pandas' minimal quoting quotes nothing and a missing value is an empty
    field. For any other frame the caller writes with pandas.

    Examples
    --------
    >>> csv_bytes(pd.DataFrame({"a": ["x", None], "b": ["1", "2"]}, dtype="string"))
    b'a,b\\nx,1\\n,2\\n'
    >>> csv_bytes(pd.DataFrame({"a": ["x,y"], "b": ["1"]}, dtype="string")) is None
    True
    """
    parts = _csv_parts(frame)
    return None if parts is None else b"".join(parts)


def _csv_parts(frame: pd.DataFrame) -> list[bytes | memoryview] | None:
    """:func:`csv_bytes` as the header and a view of the rows' bytes in Arrow's buffer (written without a copy)."""
    from geo_segment._vector import arrow_str

    cols = [str(c) for c in frame.columns]
    if len(cols) < 2 or any(_NEEDS_QUOTES.search(c) for c in cols) or \
            not all(isinstance(dt, pd.StringDtype) for dt in frame.dtypes):
        return None
    header = (",".join(cols) + "\n").encode("utf-8")
    n = len(frame)
    if not n:
        return [header]
    arrays = [arrow_str(frame.iloc[:, j]) for j in range(len(cols))]
    if any(_may_need_quotes(a) for a in arrays):
        return None
    sep, end = pa.scalar(",", pa.large_string()), pa.scalar("\n", pa.large_string())
    # the last value of each row carries the line end (a missing one is just the line end)
    last = pc.binary_join_element_wise(arrays[-1], pa.scalar("", pa.large_string()), end,
                                       null_handling="replace", null_replacement="")
    lines = pc.binary_join_element_wise(*arrays[:-1], last, sep, null_handling="replace", null_replacement="")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + n + 1]
    data = lines.buffers()[2]
    return [header, memoryview(data)[int(offsets[0]):int(offsets[-1])]]


def _may_need_quotes(values: pa.Array) -> bool:
    """Whether some string of ``values`` holds a comma, double quote, carriage return or newline.

    All four are bytes below ``0x2D`` (``-``): when the smallest byte of the values is above it (hex digests,
    digits, letters) nothing needs quoting and no value is read one by one.
    """
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + len(values) + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi == lo:
        return False
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8, count=hi - lo, offset=lo)
    if int(data.min()) > ord(","):
        return False
    return bool(pc.any(pc.match_substring_regex(values, _NEEDS_QUOTES.pattern)).as_py())


def frame_digest(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """A SHA-256 over some columns of a frame (order-independent), to name an in-memory input in the audit log."""
    cols = [c for c in columns if c in frame.columns]
    if not cols or not len(frame):
        return hashlib.sha256(b"").hexdigest()
    rows = pd.util.hash_pandas_object(frame[cols].astype("string"), index=False).to_numpy()
    return hashlib.sha256(np.sort(rows).tobytes()).hexdigest()


def append_audit(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Append one JSON line to the audit log (created if needed; never rewritten) and fsync it.

    The record holds counts, hashes, names of files and configuration only; the caller passes no personal data.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **record}
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return p
