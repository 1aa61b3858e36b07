"""Hashed customer lists for Meta Custom Audiences and Google Customer Match.

:func:`build_customer_list` turns voters into one platform's file (normalized, hashed, deduplicated, suppressed
last, checked against the platform's minimum); :func:`export_audiences` does it for several audiences at once with
the overlap report, optional mutual exclusivity, owner-only files and the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from geo_segment import schema as S
from geo_segment.errors import AudienceTooSmallError, ConfigError, SchemaError
from geo_segment.exports.guardrails import (
    Suppression,
    append_audit,
    apply_suppression,
    check_columns,
    check_eu_records,
    check_purpose,
    check_states,
    frame_digest,
    make_exclusive,
    overlap_report,
    write_private_csv,
)
from geo_segment.exports.hashing import GOOGLE_HEADERS, HASHED_KINDS, META_HEADERS, _string_series, hash_codes
from geo_segment.exports.platforms import AUDIENCE_PLATFORMS, PlatformRules, load_rules
from geo_segment.io.atomic import safe_output_path, write_csv

__all__ = ["AudienceExport", "CustomerList", "build_customer_list", "export_audiences"]

#: voters column feeding each identifier kind
SOURCE_COLUMNS: Mapping[str, str] = {
    "email": S.EMAIL, "phone": S.PHONE, "first_name": S.FIRST_NAME, "last_name": S.LAST_NAME, "city": S.CITY,
    "state": S.STATE, "zip": S.ZIP5, "country": "country",
}
_HEADERS = {"meta": META_HEADERS, "google": GOOGLE_HEADERS}
_GOOGLE_ADDRESS = ("first_name", "last_name", "country", "zip")
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass
class CustomerList:
    """One platform file ready to write, with its counts (rows in = out + unmatchable + duplicates + suppressed)."""

    platform: str
    frame: pd.DataFrame
    counts: dict[str, int]
    invalid: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _allowlist(platform: str) -> tuple[str, ...]:
    return tuple(_HEADERS[platform].values())


def build_customer_list(
    voters: pd.DataFrame,
    *,
    platform: str,
    purpose: str | None,
    default_region: str = "US",
    suppression: Suppression | None = None,
    min_audience: int | None = None,
    consent_col: str = "political_ads_consent",
    rules: PlatformRules | None = None,
    check_minimum: bool = True,
) -> CustomerList:
    """Normalize, hash, deduplicate and suppress voters into one platform's customer-list frame.

    Parameters
    ----------
    voters
        Voters with any of ``email``, ``phone``, ``first_name``, ``last_name``, ``city``, ``state``, ``zip5`` and
        optionally ``country`` (else ``default_region``) and the consent column. Other columns are ignored; party,
        ideology and vote history never reach the file.
    platform
        ``meta`` or ``google``.
    purpose
        ``election``, ``political``, ``issue`` or ``research`` (required; Google refuses ``election``).
    default_region
        ISO alpha-2 region for phones without a country code and the ZIP rules.
    suppression
        Suppression keys, applied last.
    min_audience
        Minimum rows after deduplication and suppression (default: the platform's, from the platforms file).
    consent_col
        Column with the per-record political-ads consent flag (needed for EU/EEA records).
    rules
        Platform rules (the packaged file by default).
    check_minimum
        Raise below the minimum (``False`` only to report it).

    Returns
    -------
    CustomerList
        ``frame`` has the platform's headers only (Meta: email, phone, fn, ln, ct, st, zip, country, all hashed;
        Google: Email, Phone, First Name, Last Name hashed, Country and Zip plain).

    Raises
    ------
    GuardrailError
        Missing or refused purpose, state rules, EU/EEA records without consent.
    AudienceTooSmallError
        Fewer rows than the minimum after deduplication and suppression (message names the minimum and count).
    """
    if platform not in AUDIENCE_PLATFORMS:
        raise ConfigError(f"unknown customer-list platform {platform!r}", expected=f"one of {list(AUDIENCE_PLATFORMS)}",
                          fix="use --platform meta or google")
    rules = rules or load_rules()
    warnings_ = check_purpose(purpose, family=platform, action="customer_match", rules=rules)
    assert purpose is not None
    if S.STATE in voters.columns:
        check_states(voters[S.STATE], purpose, rules)
    check_eu_records(voters, default_region=default_region, consent_col=consent_col, rules=rules)
    n_in = len(voters)
    headers = _HEADERS[platform]
    # every column as integer codes into its distinct outputs: rows are filtered and deduplicated on the codes,
    # and strings are made once, for the rows written
    codes: dict[str, np.ndarray] = {}
    outputs: dict[str, np.ndarray] = {}
    invalid: dict[str, int] = {}
    for kind, header in headers.items():
        col = SOURCE_COLUMNS[kind]
        if col in voters.columns:
            raw = voters[col]
        elif kind == "country":
            raw = pd.Series(default_region, index=voters.index, dtype="string")
        else:
            continue
        codes[header], outputs[header], n_bad = hash_codes(raw, kind=kind, platform=platform,
                                                           default_region=default_region)
        if n_bad:
            invalid[kind] = n_bad
    present = {k: h for k, h in headers.items() if h in codes}
    address_kinds = ("first_name", "last_name", "zip") if platform == "meta" else _GOOGLE_ADDRESS
    address_cols = [present[k] for k in address_kinds if k in present]
    counts: dict[str, int] = {"rows_in": n_in}
    if platform == "google" and address_cols:
        has = np.array([codes[c] >= 0 for c in address_cols]).reshape(len(address_cols), n_in)
        full = has.all(axis=0) if len(address_cols) == 4 else np.zeros(n_in, dtype=bool)
        counts["address_incomplete"] = int((has.any(axis=0) & ~full).sum())
        for c in address_cols:
            codes[c] = np.where(full, codes[c], -1)
    # a row can match when it has an email or phone, or a full name-and-address group
    direct = [present[k] for k in ("email", "phone") if k in present]
    can_match = np.zeros(n_in, dtype=bool)
    for c in direct:
        can_match |= codes[c] >= 0
    if len(address_cols) == len(address_kinds):
        can_match |= np.array([codes[c] >= 0 for c in address_cols]).reshape(len(address_cols), n_in).all(axis=0)
    counts["unmatchable"] = int((~can_match).sum())
    # rows kept so far, by position: matchable, then the first of each group of identical rows
    rows = np.flatnonzero(can_match)
    dup = _duplicated(list(codes.values()), rows)
    counts["duplicates"] = int(dup.sum())
    rows = rows[~dup]
    n_supp = 0
    if suppression is not None and len(suppression):
        keys = [c for c in (S.VOTER_ID, S.HOUSEHOLD_ID, S.EMAIL, S.PHONE) if c in voters.columns]
        kept, n_supp = apply_suppression(voters[keys].iloc[rows].set_axis(pd.Index(rows)), suppression,
                                         default_region=default_region)
        rows = kept.index.to_numpy(dtype=np.int64)
    index = pd.RangeIndex(len(rows))
    frame = pd.DataFrame({h: _string_series(outputs[h], pa.array(codes[h][rows], mask=codes[h][rows] < 0), index)
                          for h in codes}, index=index)
    counts["suppressed"] = n_supp
    counts["rows_out"] = len(frame)
    check_columns(frame.columns, allowlist=_allowlist(platform), target=f"{platform} customer list")
    minimum = min_audience if min_audience is not None else int(rules.profile(platform).limit("min_audience") or 0)
    counts["minimum"] = minimum
    if check_minimum and len(frame) < minimum:
        raise AudienceTooSmallError(
            f"{platform} audience below its minimum after deduplication and suppression",
            expected=f"at least {minimum} rows ({rules.profile(platform).source('min_audience')})",
            found=f"{len(frame)} rows ({n_in} in, {counts['unmatchable']} unmatchable, {counts['duplicates']} "
                  f"duplicates, {n_supp} suppressed)",
            fix="widen the audience, or lower [export] min_audience knowingly",
        )
    hashed = {_HEADERS[platform][k] for k in HASHED_KINDS[platform] if k in headers}
    for c in frame.columns:
        if c in hashed:  # each distinct value written, once
            used = np.unique(codes[c][rows])
            if not all(_DIGEST.fullmatch(v) for v in outputs[c][used[used >= 0]]):  # pragma: no cover
                raise SchemaError(f"column {c} holds values that are not SHA-256 digests", fix="report this bug")
    return CustomerList(platform=platform, frame=frame, counts=counts, invalid=invalid, warnings=warnings_)


def _duplicated(codes: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Whether each of ``rows`` repeats an earlier one of ``rows`` on every column, the columns given as integer
    codes (``-1`` missing: missing equals missing); ``DataFrame.duplicated(keep="first")`` on the rows' values."""
    key = np.zeros(len(rows), dtype=np.int64)
    for c in codes:
        col = c[rows].astype(np.int64) + 1
        # fold the column in, then renumber so the key stays below len(rows) (no overflow)
        key, _ = pd.factorize(key * (int(col.max(initial=0)) + 1) + col)
    _, first = np.unique(key, return_index=True)
    dup = np.ones(len(rows), dtype=bool)
    dup[first] = False
    return dup


@dataclass
class AudienceExport:
    """What :func:`export_audiences` wrote and counted."""

    files: dict[str, Path]
    lists: dict[str, CustomerList]
    refused: dict[str, str]
    overlap: pd.DataFrame
    audit: Path | None


def export_audiences(
    universes: Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    *,
    platform: str,
    purpose: str | None,
    default_region: str = "US",
    suppression: Suppression | None = None,
    min_audience: int | None = None,
    exclusive: bool = False,
    priority: Sequence[str] = (),
    consent_col: str = "political_ads_consent",
    rules: PlatformRules | None = None,
    on_small: str = "error",
    inputs: Sequence[Mapping[str, Any]] = (),
    config: Mapping[str, Any] | None = None,
    audit_name: str = "audit.jsonl",
) -> AudienceExport:
    """Write one hashed customer list per audience (``<name>_<platform>.csv``, mode 0600), the pairwise overlap
    report (``audience_overlap.csv``, counts only) and one audit line per list.

    Parameters
    ----------
    universes
        Audience name to voters (each with ``voter_id``).
    out_dir
        Output folder; audience names must stay inside it.
    platform, purpose, default_region, suppression, min_audience, consent_col, rules
        As in :func:`build_customer_list`.
    exclusive, priority
        When ``exclusive``, a voter lands only in the highest-priority audience holding them (``priority`` names
        every audience; default: the order of ``universes``).
    on_small
        ``error`` raises :class:`AudienceTooSmallError`; ``skip`` writes no file for that audience and records
        the refusal (with the minimum and the count) in ``refused`` and the audit log.
    inputs
        Input files with their SHA-256 (for the audit log).
    config
        The export configuration (for the audit log).
    audit_name
        File name of the append-only audit log inside ``out_dir``.
    """
    if on_small not in ("error", "skip"):
        raise ConfigError("on_small is unknown", expected="'error' or 'skip'", found=repr(on_small))
    rules = rules or load_rules()
    out = Path(out_dir)
    paths = {name: safe_output_path(out, f"{name}_{platform}.csv") for name in universes}
    members = {name: pd.Index(v[S.VOTER_ID].astype("str")) for name, v in universes.items()}
    overlap = overlap_report(members)
    if exclusive:
        keep = make_exclusive(members, list(priority) or list(universes))
        universes = {name: v.loc[v[S.VOTER_ID].astype("str").isin(keep[name]).to_numpy()]
                     for name, v in universes.items()}
    files: dict[str, Path] = {}
    lists: dict[str, CustomerList] = {}
    refused: dict[str, str] = {}
    audit = safe_output_path(out, audit_name)
    for name, voters in universes.items():
        record: dict[str, Any] = {
            "action": "audience", "audience": name, "target": platform, "purpose": purpose,
            "inputs": list(inputs), "input_digest": frame_digest(voters, [S.VOTER_ID]),
            "exclusive": exclusive, "priority": list(priority), "config": dict(config or {}),
            "suppression_lists": list(suppression.sources) if suppression else [],
        }
        try:
            cl = build_customer_list(voters, platform=platform, purpose=purpose, default_region=default_region,
                                     suppression=suppression, min_audience=min_audience, consent_col=consent_col,
                                     rules=rules)
        except AudienceTooSmallError as exc:
            append_audit(audit, {**record, "status": "refused", "reason": str(exc)})
            if on_small == "error":
                raise
            refused[name] = str(exc)
            continue
        files[name] = write_private_csv(cl.frame, paths[name])
        lists[name] = cl
        append_audit(audit, {**record, "status": "written", "output": paths[name].name, "counts": cl.counts,
                             "invalid_values": cl.invalid, "warnings": cl.warnings})
    if len(universes) > 1:
        files["overlap"] = write_csv(overlap, safe_output_path(out, "audience_overlap.csv"))
    return AudienceExport(files=files, lists=lists, refused=refused, overlap=overlap,
                          audit=audit if audit.exists() else None)
