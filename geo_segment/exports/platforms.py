"""Platform profiles: every limit and political-ads rule, read from one data file with its source and date.

The rules live in ``geo_segment/data/platforms.toml`` (one ``[[rule]]`` per limit with ``platform``, ``name``,
``value``, ``unit``, ``level`` (P = the platform's documentation, S = a secondary source), ``source`` and
``checked``). A user updates a limit by editing that file, or a copy passed as ``platforms_file``; no limit is a
literal in the code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from geo_segment.errors import ConfigError, Location

__all__ = [
    "AUDIENCE_PLATFORMS",
    "DEFAULT_PLATFORMS_FILE",
    "GEOFENCE_TARGETS",
    "PlatformRules",
    "Profile",
    "Rule",
    "limits_table_markdown",
    "load_rules",
]

DEFAULT_PLATFORMS_FILE = Path(__file__).resolve().parents[1] / "data" / "platforms.toml"

#: Geofence targets and the platform family whose political rules apply to them.
GEOFENCE_TARGETS: Mapping[str, str] = {
    "generic": "generic",
    "google_ads": "google",
    "dv360": "google",
    "meta": "meta",
    "microsoft": "microsoft",
    "aws": "aws",
    "tradedesk": "tradedesk",
    "simplifi": "simplifi",
    "eltoro": "eltoro",
}
#: Customer-list platforms.
AUDIENCE_PLATFORMS = ("meta", "google")

_LIMIT_NAMES = (
    "min_residents_per_fence",
    "coordinate_decimals",
    "min_audience",
    "min_radius_km",
    "max_radius_km",
    "max_radius_targets",
    "max_fences",
    "min_vertices",
    "max_vertices",
    "max_parts",
    "max_records_per_call",
    "min_lookalike_seed",
    "max_membership_days",
)


@dataclass(frozen=True)
class Rule:
    """One limit with its provenance."""

    platform: str
    name: str
    value: float
    unit: str
    level: str
    source: str
    checked: str


@dataclass(frozen=True)
class Profile:
    """The limits that apply to one target (platform-specific rules over the ``all`` rules).

    A limit is ``None`` when the target has none (or, for targets without a public spec, when it is not set).
    """

    target: str
    family: str
    limits: Mapping[str, float | None]
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def limit(self, name: str) -> float | None:
        """The value of limit ``name`` or ``None``."""
        return self.limits.get(name)

    def source(self, name: str) -> str:
        """Where limit ``name`` comes from, for messages (``"configured"`` when overridden)."""
        rule = self.rules.get(name)
        return f"{rule.source} ({rule.level}, checked {rule.checked})" if rule else "configured"

    def with_overrides(self, **overrides: float | None) -> Profile:
        """A copy with some limits replaced (``None`` values are ignored)."""
        set_ = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(set_) - set(_LIMIT_NAMES))
        if unknown:
            raise ConfigError(f"unknown limits {unknown}", expected=f"names among {list(_LIMIT_NAMES)}",
                              fix="correct the limit names")
        limits = dict(self.limits)
        limits.update(set_)
        rules = {k: v for k, v in self.rules.items() if k not in set_}
        return replace(self, limits=limits, rules=rules)


@dataclass(frozen=True)
class PlatformRules:
    """Everything in the platforms data file."""

    rules: tuple[Rule, ...]
    political: tuple[Mapping[str, Any], ...]
    states: Mapping[str, tuple[str, ...]]
    state_sources: Mapping[str, str]
    eu_countries: frozenset[str]
    eu_bbox: tuple[float, float, float, float]
    eu_source: str
    path: Path

    def profile(self, target: str) -> Profile:
        """The profile of a geofence target or customer-list platform.

        Raises
        ------
        ConfigError
            When ``target`` is unknown.
        """
        known = sorted({*GEOFENCE_TARGETS, *AUDIENCE_PLATFORMS})
        if target not in known:
            raise ConfigError(f"unknown export target {target!r}", expected=f"one of {known}",
                              fix="choose a target listed in docs/exports.md")
        family = GEOFENCE_TARGETS.get(target, target)
        limits: dict[str, float | None] = dict.fromkeys(_LIMIT_NAMES)
        chosen: dict[str, Rule] = {}
        for scope in ("all", family, target):
            for r in self.rules:
                if r.platform == scope:
                    # 0 marks "not set" for targets without a public spec
                    limits[r.name] = r.value if r.value else None
                    chosen[r.name] = r
        return Profile(target=target, family=family, limits=limits, rules=chosen)

    def political_rules(self, family: str, purpose: str) -> list[Mapping[str, Any]]:
        """The political-advertising rows for a platform family and purpose."""
        return [p for p in self.political if p.get("platform") == family and p.get("purpose") == purpose]

    def allowed_purposes(self, state: str) -> tuple[str, ...]:
        """Purposes a state allows for its voter data (the ``default`` row when the state has none)."""
        return self.states.get(state.upper(), self.states["default"])


def load_rules(path: str | Path | None = None) -> PlatformRules:
    """Read the platforms data file (the packaged one unless ``path`` is given).

    Raises
    ------
    ConfigError
        When the file is missing, not TOML, or a row lacks a field.

    Examples
    --------
    >>> load_rules().profile("aws").limit("max_vertices")
    1000
    """
    p = Path(path) if path is not None else DEFAULT_PLATFORMS_FILE
    if not p.is_file():
        raise ConfigError("platforms file not found", where=Location(p), fix="check [export] platforms_file")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"platforms file is not valid TOML: {exc}", where=Location(p), fix="fix the syntax") from None
    rules = []
    fields = ("platform", "name", "value", "unit", "level", "source", "checked")
    for i, row in enumerate(raw.get("rule", []), start=1):
        missing = [f for f in fields if f not in row]
        if missing or row.get("name") not in _LIMIT_NAMES:
            raise ConfigError(
                f"[[rule]] number {i} is incomplete or unknown",
                where=Location(p),
                expected=f"fields {list(fields)} and a name among {list(_LIMIT_NAMES)}",
                found=f"missing {missing}, name {row.get('name')!r}",
                fix="complete the row (every limit carries its source and the date it was checked)",
            )
        rules.append(Rule(**{f: row[f] for f in fields}))
    states = {str(r["state"]).upper(): tuple(r["allowed_purposes"]) for r in raw.get("state", [])}
    states = {("default" if k == "DEFAULT" else k): v for k, v in states.items()}
    if "default" not in states:
        raise ConfigError("platforms file has no default [[state]] row", where=Location(p),
                          fix='add [[state]] state = "default" with allowed_purposes')
    sources = {("default" if str(r["state"]).lower() == "default" else str(r["state"]).upper()): str(r["source"])
               for r in raw.get("state", [])}
    eu = raw.get("eu", {})
    bbox = tuple(float(x) for x in eu.get("bbox", (0.0, 0.0, 0.0, 0.0)))
    return PlatformRules(
        rules=tuple(rules),
        political=tuple(raw.get("political", [])),
        states=states,
        state_sources=sources,
        eu_countries=frozenset(str(c).upper() for c in eu.get("countries", [])),
        eu_bbox=(bbox[0], bbox[1], bbox[2], bbox[3]),
        eu_source=str(eu.get("source", "")),
        path=p,
    )


def limits_table_markdown(rules: PlatformRules | None = None) -> str:
    """The platforms file's limits as a Markdown table (``docs/exports.md`` embeds it; a test keeps it current)."""
    rules = rules or load_rules()
    lines = ["| platform | limit | value | unit | level | source | checked |", "|---|---|---|---|---|---|---|"]
    for r in rules.rules:
        value = "not set (configure)" if not r.value else f"{r.value:,}"
        lines.append(f"| {r.platform} | `{r.name}` | {value} | {r.unit} | {r.level} | {r.source} | {r.checked} |")
    return "\n".join(lines) + "\n"
