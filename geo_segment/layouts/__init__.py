"""Voter-file layouts as data: one TOML file per supported state layout, plus user-written mappings.

A layout says how a file is delimited, whether it has a header (else the column order), which source columns feed
which contract columns (``[fields]``), how dates are written (``[formats]``), how party codes normalize
(``[party_map]``) and how vote history is stored (``[history]``: ``long`` rows, ``wide`` one column per election,
or positional ``pairs`` resolved through an election map). See ``docs/layouts.md``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from geo_segment.errors import ConfigError, Location

__all__ = ["BUILTIN_LAYOUTS", "Layout", "load_layout"]

BUILTIN_LAYOUTS = ("nc", "oh", "fl", "mi", "pa")

#: contract fields a layout may map, and whether they may name several source columns (joined by a space)
FIELD_KEYS: Mapping[str, bool] = MappingProxyType(
    {
        "voter_id": False,
        "last_name": False,
        "first_name": False,
        "middle_name": False,
        "name_suffix": False,
        "address": True,
        "city": False,
        "state": False,
        "zip": False,
        "birth_year": False,
        "birth_date": False,
        "registration_date": False,
        "party": False,
        "status": False,
        "county": False,
        "source_precinct": False,
        "phone": True,
        "email": False,
        "lat": False,
        "lng": False,
    }
)
_TOP_KEYS = {"name", "title", "delimiter", "header", "columns", "encoding", "fields", "formats", "party_map",
             "history"}
_FORMAT_KEYS = {"birth_date", "registration_date", "registration_date_placeholder"}
_HISTORY_KEYS = {
    "style", "delimiter", "header", "columns", "voter_id", "election_date", "date_format", "election_desc",
    "election_type", "method", "ballot_party", "absentee", "method_map", "type_map", "value_map", "not_voted",
    "column_pattern", "pairs", "method_column", "party_column", "map_delimiter", "map_columns",
}
_HISTORY_STYLES = ("long", "wide", "pairs", "none")


@dataclass(frozen=True)
class Layout:
    """A parsed, validated layout. Build it with :func:`load_layout`."""

    name: str
    title: str
    delimiter: str
    header: bool
    columns: tuple[str, ...]
    fields: Mapping[str, tuple[str, ...]]
    formats: Mapping[str, str]
    party_map: Mapping[str, str]
    history: Mapping[str, Any] = field(default_factory=dict)
    encoding: str = "utf-8"
    source: str = ""

    @property
    def history_style(self) -> str:
        """``long``, ``wide``, ``pairs`` or ``none``."""
        return str(self.history.get("style", "none"))

    def source_columns(self) -> list[str]:
        """Every source column the ``[fields]`` table reads, in a stable order."""
        seen: dict[str, None] = {}
        for cols in self.fields.values():
            for c in cols:
                seen.setdefault(c, None)
        return list(seen)


def _fail(source: str, what: str, fix: str) -> ConfigError:
    return ConfigError(what, where=Location(source), fix=fix)


def _parse(raw: dict[str, Any], source: str) -> Layout:
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise _fail(source, f"unknown layout keys {unknown}", f"allowed keys are {sorted(_TOP_KEYS)}")
    fields_raw = raw.get("fields")
    if not isinstance(fields_raw, dict) or "voter_id" not in fields_raw:
        raise _fail(source, "the [fields] table must map at least voter_id", 'add voter_id = "<column>"')
    bad = sorted(set(fields_raw) - set(FIELD_KEYS))
    if bad:
        raise _fail(source, f"unknown [fields] keys {bad}", f"allowed keys are {sorted(FIELD_KEYS)}")
    fields: dict[str, tuple[str, ...]] = {}
    for key, value in fields_raw.items():
        cols = (value,) if isinstance(value, str) else tuple(value)
        if not cols or not all(isinstance(c, str) for c in cols):
            raise _fail(source, f"[fields] {key} must name a column", f'write {key} = "<column>"')
        if len(cols) > 1 and not FIELD_KEYS[key]:
            raise _fail(source, f"[fields] {key} names {len(cols)} columns", f"{key} takes one column")
        fields[key] = cols
    if ("lat" in fields) != ("lng" in fields):
        raise _fail(source, "[fields] maps only one of lat and lng", "map both lat and lng, or neither")
    formats = dict(raw.get("formats", {}))
    bad = sorted(set(formats) - _FORMAT_KEYS)
    if bad:
        raise _fail(source, f"unknown [formats] keys {bad}", f"allowed keys are {sorted(_FORMAT_KEYS)}")
    history = dict(raw.get("history", {"style": "none"}))
    bad = sorted(set(history) - _HISTORY_KEYS)
    if bad:
        raise _fail(source, f"unknown [history] keys {bad}", f"allowed keys are {sorted(_HISTORY_KEYS)}")
    if history.get("style", "none") not in _HISTORY_STYLES:
        raise _fail(source, f"[history] style {history.get('style')!r} is unknown", f"use one of {_HISTORY_STYLES}")
    header = bool(raw.get("header", True))
    columns = tuple(raw.get("columns", ()))
    if not header and not columns:
        raise _fail(source, "a headerless layout needs `columns`", "list the column names in file order")
    missing = sorted({c for cols in fields.values() for c in cols} - set(columns)) if columns else []
    if missing and not header:
        raise _fail(source, f"[fields] name columns not in `columns`: {missing}", "fix the names")
    delimiter = str(raw.get("delimiter", ","))
    if len(delimiter) != 1:
        raise _fail(source, f"delimiter must be one character, found {delimiter!r}", 'write delimiter = ","')
    return Layout(
        name=str(raw.get("name", Path(source).stem)),
        title=str(raw.get("title", raw.get("name", ""))),
        delimiter=delimiter,
        header=header,
        columns=columns,
        fields=MappingProxyType(fields),
        formats=MappingProxyType(formats),
        party_map=MappingProxyType({str(k): str(v) for k, v in raw.get("party_map", {}).items()}),
        history=MappingProxyType(history),
        encoding=str(raw.get("encoding", "utf-8")),
        source=source,
    )


def load_layout(layout: str | Path) -> Layout:
    """Load a built-in layout by name (``nc``, ``oh``, ``fl``, ``mi``, ``pa``) or a user mapping TOML by path.

    Raises
    ------
    ConfigError
        Unknown layout name, unreadable TOML, or unknown keys (every table is checked).

    Examples
    --------
    >>> load_layout("nc").fields["voter_id"]
    ('ncid',)
    """
    text = str(layout)
    if text.lower() in BUILTIN_LAYOUTS:
        res = resources.files(__name__).joinpath(f"{text.lower()}.toml")
        with res.open("rb") as fh:
            return _parse(tomllib.load(fh), f"layouts/{text.lower()}.toml")
    path = Path(text)
    if path.suffix.lower() != ".toml" or not path.exists():
        raise ConfigError(
            f"unknown layout {text!r}",
            expected=f"one of {list(BUILTIN_LAYOUTS)} or the path of a mapping .toml file",
            found="neither",
            fix="pass --layout nc (for example) or --layout mapping.toml; see docs/layouts.md",
        )
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping is not valid TOML: {exc}", where=Location(path), fix="fix the syntax") from None
    return _parse(raw, str(path))
