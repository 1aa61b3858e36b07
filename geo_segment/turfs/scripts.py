"""Canvass scripts that vary by segment, with ``{first_name}``-style fields filled per household.

A script table maps a *condition* to a text; the first condition a household's lead voter meets wins, and the
``script`` fallback is used otherwise. Conditions are clauses joined by ``&``: ``score >= 0.7``, ``party = REP``,
``age < 30``, ``precinct != P2858`` (operators ``= != < <= > >=``; ``score`` and ``age`` are numbers). Fields
are plain names among :data:`FIELDS`; anything else (attribute access, indexing, format specs) is refused.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_segment.errors import ConfigError

__all__ = ["FIELDS", "check_templates", "fill", "fill_all", "match_scripts"]

#: fields a script may use
FIELDS = frozenset({"first_name", "last_name", "names", "address", "street", "house_number", "unit", "precinct_id",
                    "turf_id"})
_CLAUSE = re.compile(r"^\s*(score|party|age|precinct)\s*(>=|<=|!=|=|>|<)\s*(\S.*?)\s*$")
_NUMERIC = {"score", "age"}


def _check_text(text: str, where: str) -> None:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ConfigError(f"script {where} is not a valid template: {exc}",
                          fix="write fields as {first_name}; double braces {{ }} for literal braces") from None
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in FIELDS or spec or conv:
            raise ConfigError(f"script {where} uses an unknown field", expected=f"fields among {sorted(FIELDS)}",
                              found=repr("{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
                                         + "}"), fix="use plain fields such as {first_name}")


def _parse(condition: str) -> list[tuple[str, str, str]]:
    clauses = []
    for part in condition.split("&"):
        m = _CLAUSE.match(part)
        if m is None:
            raise ConfigError("a script condition cannot be read", expected="e.g. 'score >= 0.7 & party = DEM'",
                              found=repr(condition), fix="use score, party, age or precinct with = != < <= > >=")
        field_, op, value = m.groups()
        if field_ in _NUMERIC:
            try:
                float(value)
            except ValueError:
                raise ConfigError("a script condition compares a number with text", found=repr(condition),
                                  fix=f"write a number after {field_} {op}") from None
        elif op not in ("=", "!="):
            raise ConfigError("text fields compare with = or != only", found=repr(condition), fix="use = or !=")
        clauses.append((field_, op, value))
    return clauses


def check_templates(script: str, scripts: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` for an unreadable condition or an unknown field in any script."""
    _check_text(script, "'script'")
    for cond, text in scripts.items():
        if cond != "default":
            _parse(cond)
        _check_text(text, repr(cond))


def match_scripts(people: pd.DataFrame, script: str, scripts: Mapping[str, str]) -> pd.Series:
    """The script text for each row of ``people`` (columns ``score``, ``party``, ``age``, ``precinct``)."""
    out = pd.Series([script] * len(people), index=people.index, dtype=object)
    done = np.zeros(len(people), dtype=bool)
    for cond, text in scripts.items():
        if cond == "default":
            hit = np.ones(len(people), dtype=bool)
        else:
            hit = np.ones(len(people), dtype=bool)
            for field_, op, value in _parse(cond):
                col = people[field_] if field_ in people.columns else pd.Series([None] * len(people))
                if field_ in _NUMERIC:
                    a = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                    b = float(value)
                    res = {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
                else:
                    s = col.astype(str).fillna("").str.upper().to_numpy(dtype=object)
                    res = (s == value.upper()) if op == "=" else (s != value.upper())
                hit &= np.asarray(res, dtype=bool)
        sel = hit & ~done
        out[sel] = text
        done |= sel
    return out


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def fill(text: str, values: Mapping[str, Any]) -> str:
    """Fill a checked template; missing values become empty text.

    Examples
    --------
    >>> fill("Hi {first_name}!", {"first_name": "Ana"})
    'Hi Ana!'
    """
    clean = _Fields({k: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                     for k, v in values.items()})
    return text.format_map(clean)


def fill_all(templates: Sequence[str] | npt.NDArray[np.object_],
             values: Mapping[str, Sequence[Any] | npt.NDArray[Any]]) -> npt.NDArray[np.object_]:
    """:func:`fill` for many rows at once: row ``i`` fills ``templates[i]`` with ``values[field][i]``.

    Each distinct template is parsed once and its rows are built by concatenating its literal parts and the
    columns of its fields (missing values and fields become empty text, as in :func:`fill`).

    Examples
    --------
    >>> fill_all(["Hi {first_name}!", "Hello {names} {{x}}"], {"first_name": ["Ana", "Bo"], "names": ["", None]})
    array(['Hi Ana!', 'Hello  {x}'], dtype=object)
    """
    tpl = np.asarray(templates, dtype=object)
    n = len(tpl)
    out = np.full(n, "", dtype=object)
    if n == 0:
        return out
    cols: dict[str, npt.NDArray[np.object_]] = {}
    for key, col in values.items():
        arr = np.empty(n, dtype=object)
        arr[:] = ["" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v) for v in col]
        cols[key] = arr
    codes, uniques = pd.factorize(tpl)
    for k, text in enumerate(uniques):
        rows = np.flatnonzero(codes == k)
        acc = np.full(len(rows), "", dtype=object)
        for literal, name, _spec, _conv in string.Formatter().parse(str(text)):
            if literal:
                acc = acc + literal
            if name is not None:
                acc = acc + (cols[name][rows] if name in cols else "")
        out[rows] = acc
    return out
