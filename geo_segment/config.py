"""Frozen run configuration, loaded from TOML; unknown keys are errors.

Example ``geo_segment.toml``::

    [ingest]
    layout = "nc"
    encoding = "utf-8"
    duplicates = "error"

    [precincts]
    id_col = "precinct_id"
    area_tolerance = 0.01

    [signals]
    default_weight = 1.0

    [join]
    h3_resolution = 9
    tolerance_m = 50.0
    k_min = 11
    n_generals = 4
    half_life_days = 30.0
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from geo_segment.errors import ConfigError, Location

__all__ = ["ClusterConfig", "Config", "ExperimentConfig", "ExportConfig", "IngestConfig", "InputsConfig", "JoinConfig",
           "PrecinctConfig", "ScoresConfig", "SignalConfig", "TurfsConfig", "load_config"]


@dataclass(frozen=True)
class IngestConfig:
    """How voter files are read."""

    layout: str = "nc"
    encoding: str | None = None
    duplicates: str = "error"

    def __post_init__(self) -> None:
        if self.duplicates not in ("error", "keep-latest"):
            raise ConfigError(
                "ingest.duplicates is unknown",
                expected="'error' or 'keep-latest'",
                found=repr(self.duplicates),
                fix='set duplicates = "error" or "keep-latest"',
            )


@dataclass(frozen=True)
class PrecinctConfig:
    """How precinct polygons are read."""

    id_col: str = "precinct_id"
    area_tolerance: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.area_tolerance < 1:
            raise ConfigError(
                "precincts.area_tolerance out of range",
                expected="a fraction in [0, 1)",
                found=repr(self.area_tolerance),
                fix="set area_tolerance = 0.01 (1 %)",
            )


@dataclass(frozen=True)
class SignalConfig:
    """How location signals are read."""

    default_weight: float = 1.0


@dataclass(frozen=True)
class JoinConfig:
    """H3 cells, precinct assignment and aggregates."""

    h3_resolution: int = 9
    tolerance_m: float = 50.0
    k_min: int = 11
    n_generals: int = 4
    half_life_days: float = 30.0
    cell_resolution: int | None = None

    def __post_init__(self) -> None:
        from geo_segment._h3 import check_resolution

        check_resolution(self.h3_resolution)
        if self.cell_resolution is not None and not 5 <= self.cell_resolution <= self.h3_resolution:
            raise ConfigError("join.cell_resolution out of range", expected=f"5..{self.h3_resolution}",
                              found=repr(self.cell_resolution), fix="use a resolution at most h3_resolution")
        if self.tolerance_m < 0 or self.k_min < 1 or self.n_generals < 0 or self.half_life_days <= 0:
            raise ConfigError(
                "join settings out of range",
                expected="tolerance_m >= 0, k_min >= 1, n_generals >= 0, half_life_days > 0",
                found=f"{self.tolerance_m}, {self.k_min}, {self.n_generals}, {self.half_life_days}",
                fix="correct the [join] table",
            )


_MODELS = ("auto", "hgb", "logistic")


@dataclass(frozen=True)
class ScoresConfig:
    """Engagement scores: the rule score's weights, the propensity model and its label, feature options.

    ``label_election`` is ``"latest-general"`` (the newest general election anyone voted in), ``"none"`` (rule
    score only) or an ISO date (``"2022-11-08"``). ``rule_weights`` overrides fields of
    :class:`geo_segment.scoring.RuleWeights` (a ``[scores.rule_weights]`` table).
    """

    label_election: str = "latest-general"
    model: str = "auto"
    cv: int = 3
    n_elections: int = 8
    half_life_days: float = 30.0
    n_threads: int | None = None
    random_state: int = 0
    rule_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.label_election not in ("latest-general", "none"):
            try:
                date.fromisoformat(self.label_election)
            except ValueError:
                problems.append(f"label_election={self.label_election!r}")
        if self.model not in _MODELS:
            problems.append(f"model={self.model!r}")
        if self.cv < 2 or self.n_elections < 1 or self.half_life_days <= 0:
            problems.append(f"cv={self.cv}, n_elections={self.n_elections}, half_life_days={self.half_life_days}")
        if self.n_threads is not None and self.n_threads < 1:
            problems.append(f"n_threads={self.n_threads}")
        if problems:
            raise ConfigError(
                "[scores] settings out of range",
                expected=("label_election 'latest-general', 'none' or a date YYYY-MM-DD; model one of "
                          f"{list(_MODELS)}; cv >= 2; n_elections >= 1; half_life_days > 0; n_threads >= 1"),
                found=", ".join(problems),
                fix="correct the [scores] table",
            )
        if self.rule_weights:
            self.weights()  # validates names and values now, not in the middle of a run

    def weights(self) -> Any:
        """The :class:`geo_segment.scoring.RuleWeights` these settings describe."""
        from geo_segment.scoring import RuleWeights

        names = [f.name for f in dataclasses.fields(RuleWeights)]
        unknown = sorted(set(self.rule_weights) - set(names))
        if unknown:
            raise ConfigError(f"unknown keys {unknown} in [scores.rule_weights]", expected=f"keys among {names}",
                              fix="remove or correct them")
        return RuleWeights(**self.rule_weights)


_ALGORITHMS = ("hdbscan", "dbscan")
_CLUSTER_MODES = ("point", "cell")


@dataclass(frozen=True)
class ClusterConfig:
    """Micro-geographies (see :func:`geo_segment.clustering.cluster_voters`).

    ``score_col`` is ``"auto"`` (``propensity`` when the voters have it, else ``engagement_score``) or a column
    name. Voters are selected by ``threshold`` when it is set, else by ``top_q`` (the top share). ``eps_m = 0``
    means no epsilon (HDBSCAN only); ``enrichment = false`` clusters every selected voter.
    """

    score_col: str = "auto"
    threshold: float | None = None
    top_q: float = 0.2
    algorithm: str = "hdbscan"
    mode: str = "point"
    min_cluster_size: int = 25
    min_samples: int | None = None
    eps_m: float = 0.0
    cell_resolution: int = 10
    enrichment: bool = True
    enrichment_alpha: float = 1e-3
    enrichment_k: int = 50
    bootstrap: int = 10
    random_state: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.algorithm not in _ALGORITHMS:
            problems.append(f"algorithm={self.algorithm!r}")
        if self.mode not in _CLUSTER_MODES:
            problems.append(f"mode={self.mode!r}")
        if not 0 < self.top_q <= 1:
            problems.append(f"top_q={self.top_q}")
        if self.min_cluster_size < 2 or (self.min_samples is not None and self.min_samples < 1):
            problems.append(f"min_cluster_size={self.min_cluster_size}, min_samples={self.min_samples}")
        if self.eps_m < 0 or (self.algorithm == "dbscan" and self.eps_m <= 0):
            problems.append(f"eps_m={self.eps_m} with algorithm {self.algorithm!r}")
        if not 0 < self.enrichment_alpha < 1 or self.enrichment_k < 2 or self.bootstrap < 0:
            problems.append(f"enrichment_alpha={self.enrichment_alpha}, enrichment_k={self.enrichment_k}, "
                            f"bootstrap={self.bootstrap}")
        if problems:
            raise ConfigError(
                "[cluster] settings out of range",
                expected=(f"algorithm in {list(_ALGORITHMS)}, mode in {list(_CLUSTER_MODES)}, 0 < top_q <= 1, "
                          "min_cluster_size >= 2, min_samples >= 1, eps_m >= 0 (> 0 for dbscan), "
                          "0 < enrichment_alpha < 1, enrichment_k >= 2, bootstrap >= 0"),
                found=", ".join(problems),
                fix="correct the [cluster] table",
            )

    def options(self, columns: Any, *, k_min: int) -> dict[str, Any]:
        """Keyword options of :func:`geo_segment.clustering.cluster_voters` for voters with ``columns``."""
        score = self.score_col
        if score == "auto":
            score = "propensity" if "propensity" in columns else "engagement_score"
        return {
            "score_col": score,
            "threshold": self.threshold,
            "top_q": None if self.threshold is not None else self.top_q,
            "algorithm": self.algorithm,
            "mode": self.mode,
            "min_cluster_size": self.min_cluster_size,
            "min_samples": self.min_samples,
            "eps_m": self.eps_m or None,
            "cell_resolution": self.cell_resolution,
            "enrichment_alpha": self.enrichment_alpha if self.enrichment else None,
            "enrichment_k": self.enrichment_k,
            "bootstrap": self.bootstrap,
            "random_state": self.random_state,
            "k_min": k_min,
        }


_TURF_WITHIN = ("precinct", "micro_geo", "polygon", "all")
_DOOR_UNITS = ("household", "building")
_WALK_ORDERS = ("route", "street")


def _default_survey() -> dict[str, str]:
    return {"Will you vote on Election Day?": "Yes | Maybe | No"}


def _default_result_codes() -> dict[str, str]:
    return {"CT": "Talked", "NH": "Not home", "RF": "Refused", "MV": "Moved", "DC": "Deceased",
            "WA": "Wrong address", "IN": "Inaccessible", "LB": "Left literature"}


@dataclass(frozen=True)
class TurfsConfig:
    """Turf cutting, walking order and packets (``[turfs]``); see ``docs/turfs.md``.

    ``scripts`` maps a segment condition to a script, first match wins, e.g.
    ``"score >= 0.7" = "Hi {first_name}, thanks for voting!"`` or ``"party = REP" = "..."``; ``script`` is the
    fallback. ``survey`` maps a question to its answers separated by ``|``; ``result_codes`` maps a code to its
    label (the packet's results key and the codes accepted by ``results import``). ``workers`` is the number of
    processes that cut regions and write walk lists and packets: ``"auto"`` (the CPU count, at most 2), or an
    integer (1: no worker processes); the outputs are the same whatever it is.
    """

    within: str = "precinct"
    target_doors: int = 50
    rural_target_doors: int = 30
    rural_gap_m: float = 120.0
    tolerance: float = 0.10
    door_unit: str = "household"
    max_edge_m: float = 250.0
    minutes_per_door: float = 2.5
    walking_speed_m_per_min: float = 75.0
    drive_gap_m: float = 400.0
    walk_order: str = "route"
    both_sides: bool = False
    side_penalty_m: float = 15.0
    seed: int = 0
    workers: int | str = "auto"
    script: str = "Hi {first_name}, I'm a volunteer in your neighborhood. Can we count on your vote?"
    scripts: dict[str, str] = field(default_factory=dict)
    survey: dict[str, str] = field(default_factory=_default_survey)
    result_codes: dict[str, str] = field(default_factory=_default_result_codes)

    def __post_init__(self) -> None:
        problems = []
        if self.within not in _TURF_WITHIN:
            problems.append(f"within={self.within!r}")
        if self.door_unit not in _DOOR_UNITS:
            problems.append(f"door_unit={self.door_unit!r}")
        if self.walk_order not in _WALK_ORDERS:
            problems.append(f"walk_order={self.walk_order!r}")
        if self.target_doors < 2 or self.rural_target_doors < 2:
            problems.append(f"target_doors={self.target_doors}, rural_target_doors={self.rural_target_doors}")
        if not 0 < self.tolerance < 1:
            problems.append(f"tolerance={self.tolerance}")
        if min(self.max_edge_m, self.minutes_per_door, self.walking_speed_m_per_min, self.drive_gap_m,
               self.rural_gap_m) <= 0 or self.side_penalty_m < 0:
            problems.append("distances, speeds and minutes must be > 0 (side_penalty_m >= 0)")
        if not self.result_codes:
            problems.append("result_codes is empty")
        if not (self.workers == "auto" or (isinstance(self.workers, int) and not isinstance(self.workers, bool)
                                           and self.workers >= 1)):
            problems.append(f"workers={self.workers!r}")
        if problems:
            raise ConfigError(
                "[turfs] settings out of range",
                expected=(f"within in {list(_TURF_WITHIN)}, door_unit in {list(_DOOR_UNITS)}, walk_order in "
                          f"{list(_WALK_ORDERS)}, target_doors >= 2, 0 < tolerance < 1, positive distances, "
                          'workers = "auto" or an integer >= 1'),
                found=", ".join(problems),
                fix="correct the [turfs] table",
            )
        from geo_segment.turfs.scripts import check_templates

        check_templates(self.script, self.scripts)


@dataclass(frozen=True)
class ExperimentConfig:
    """Field experiments (``[experiment]``): holdout design, power and analysis; see ``docs/experiments.md``.

    ``unit`` is ``household``, ``turf``, ``micro_geo`` or ``precinct``. ``score_col`` is ``"auto"``
    (``propensity`` when the voters have it, else ``engagement_score``), ``"none"`` (no score strata) or a column.
    ``covariates`` empty means the automatic set (past turnout, age, party shares, score). ``balance_threshold = 0``
    switches rerandomization off; ``min_block_units = 0`` picks the smallest block automatically. ``icc`` and
    ``base_rate`` left out are estimated from the data.
    """

    unit: str = "household"
    holdout_share: float = 0.1
    blocks: tuple[str, ...] = ("precinct_id",)
    score_col: str = "auto"
    n_strata: int = 3
    seed: int = 0
    covariates: tuple[str, ...] = ()
    balance_threshold: float = 0.05
    max_draws: int = 20_000
    min_block_units: int = 0
    icc: float | None = None
    base_rate: float | None = None
    contact_rate: float = 1.0
    alpha: float = 0.05
    power: float = 0.8
    contact_codes: tuple[str, ...] = ("CT",)
    ri_draws: int = 2000

    def __post_init__(self) -> None:
        for name in ("blocks", "covariates", "contact_codes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = []
        if self.unit not in ("household", "turf", "micro_geo", "precinct"):
            problems.append(f"unit={self.unit!r}")
        if not 0 < self.holdout_share < 1:
            problems.append(f"holdout_share={self.holdout_share}")
        if self.n_strata < 1 or self.max_draws < 1 or self.min_block_units < 0 or self.ri_draws < 0:
            problems.append(f"n_strata={self.n_strata}, max_draws={self.max_draws}, "
                            f"min_block_units={self.min_block_units}, ri_draws={self.ri_draws}")
        if self.balance_threshold < 0:
            problems.append(f"balance_threshold={self.balance_threshold}")
        if not 0 < self.alpha < 1 or not 0 < self.power < 1 or not 0 < self.contact_rate <= 1:
            problems.append(f"alpha={self.alpha}, power={self.power}, contact_rate={self.contact_rate}")
        if (self.icc is not None and not 0 <= self.icc <= 1) or (
                self.base_rate is not None and not 0 < self.base_rate < 1):
            problems.append(f"icc={self.icc}, base_rate={self.base_rate}")
        if problems:
            raise ConfigError(
                "[experiment] settings out of range",
                expected=("unit in ['household', 'turf', 'micro_geo', 'precinct'], 0 < holdout_share < 1, "
                          "n_strata >= 1, max_draws >= 1, min_block_units >= 0, ri_draws >= 0, "
                          "balance_threshold >= 0, 0 < alpha < 1, 0 < power < 1, 0 < contact_rate <= 1, "
                          "0 <= icc <= 1, 0 < base_rate < 1"),
                found=", ".join(problems),
                fix="correct the [experiment] table",
            )

    def score_column(self, columns: Any) -> str | None:
        """The score column for voters with ``columns`` (``None``: no score strata)."""
        if self.score_col == "none":
            return None
        if self.score_col == "auto":
            return "propensity" if "propensity" in columns else "engagement_score"
        return self.score_col


_ON_SMALL = ("error", "skip")


@dataclass(frozen=True)
class ExportConfig:
    """Audience exports: geofences and hashed customer lists (see ``docs/exports.md``).

    ``purpose`` is required at export time (``election``, ``political``, ``issue`` or ``research``). Limits left at
    ``None`` come from the platforms data file (``platforms_file``, the packaged one by default). ``on_small`` is
    ``error`` (a fence or audience below its minimum stops the export) or ``skip`` (it is left out and reported
    with its count). ``audience_top_q`` picks the demo's audience: the top share of voters by engagement score.
    """

    purpose: str | None = None
    target: str = "generic"
    platforms: tuple[str, ...] = ("meta", "google")
    default_region: str = "US"
    formats: tuple[str, ...] = ("geojson", "kml", "wkt", "radius", "h3", "zip", "precinct")
    min_residents: int | None = None
    min_audience: int | None = None
    on_small: str = "error"
    suppression_files: tuple[str, ...] = ()
    exclusive: bool = False
    priority: tuple[str, ...] = ()
    consent_column: str = "political_ads_consent"
    simplify: bool = False
    clamp_radius: bool = False
    max_overshoot: float = 2.0
    max_circles: int = 8
    h3_resolution: int = 9
    max_vertices: int | None = None
    max_fences: int | None = None
    platforms_file: str | None = None
    audience_top_q: float = 0.2

    def __post_init__(self) -> None:
        from geo_segment._h3 import check_resolution
        from geo_segment.exports.geofences import FORMATS
        from geo_segment.exports.guardrails import PURPOSES

        for name in ("platforms", "formats", "suppression_files", "priority"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_resolution(self.h3_resolution)
        problems = []
        if self.purpose is not None and self.purpose not in PURPOSES:
            problems.append(f"purpose={self.purpose!r}")
        if set(self.formats) - set(FORMATS):
            problems.append(f"formats={list(self.formats)}")
        if set(self.platforms) - {"meta", "google"}:
            problems.append(f"platforms={list(self.platforms)}")
        if self.on_small not in _ON_SMALL:
            problems.append(f"on_small={self.on_small!r}")
        if self.max_overshoot < 1 or self.max_circles < 1 or not 0 < self.audience_top_q <= 1:
            problems.append(f"max_overshoot={self.max_overshoot}, max_circles={self.max_circles}, "
                            f"audience_top_q={self.audience_top_q}")
        for name in ("min_residents", "min_audience", "max_vertices", "max_fences"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name}={value}")
        if problems:
            raise ConfigError(
                "[export] settings out of range",
                expected=(f"purpose in {list(PURPOSES)}, formats among {list(FORMATS)}, platforms among "
                          f"['meta', 'google'], on_small in {list(_ON_SMALL)}, max_overshoot >= 1, max_circles >= 1, "
                          "0 < audience_top_q <= 1, limits >= 0"),
                found=", ".join(problems),
                fix="correct the [export] table",
            )


@dataclass(frozen=True)
class InputsConfig:
    """The files a ``geo-segment run`` reads; paths relative to the configuration file, empty = not given."""

    voter_file: str = ""
    history: str = ""
    geocodes: str = ""
    election_map: str = ""
    signals: str = ""
    precincts: str = ""
    seeds: str = ""
    model: str = ""
    contact_results: str = ""
    do_not_contact: str = ""
    barriers: str = ""
    population: str = ""
    experiment_design: str = ""


@dataclass(frozen=True)
class Config:
    """The whole run configuration. Build it with :func:`load_config` or directly."""

    inputs: InputsConfig = field(default_factory=InputsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    precincts: PrecinctConfig = field(default_factory=PrecinctConfig)
    signals: SignalConfig = field(default_factory=SignalConfig)
    join: JoinConfig = field(default_factory=JoinConfig)
    scores: ScoresConfig = field(default_factory=ScoresConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    turfs: TurfsConfig = field(default_factory=TurfsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain data (for the manifest)."""
        return dataclasses.asdict(self)


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        return isinstance(value, list | tuple) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        _, value_type = typing.get_args(annotation)
        return isinstance(value, dict) and all(_type_ok(v, value_type) for v in value.values())
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _build(cls: type[Any], raw: Any, section: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}] must be a table", where=Location(source), fix=f"write [{section}] then keys")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown keys {unknown} in [{section}]",
            where=Location(source),
            expected=f"keys among {names}",
            fix="remove or correct them (keys are case-sensitive)",
        )
    for key, value in raw.items():
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f"[{section}] {key} has the wrong type",
                where=Location(source),
                expected=getattr(hints[key], "__name__", str(hints[key])),
                found=f"{type(value).__name__} {value!r}",
                fix=f"correct {key} in [{section}]",
            )
    return cls(**raw)


def load_config(path: str | Path | None = None) -> Config:
    """Load a :class:`Config` from a TOML file; ``None`` gives the defaults.

    Raises
    ------
    ConfigError
        Missing file, invalid TOML, unknown sections or keys, wrong types or values.

    Examples
    --------
    >>> load_config().ingest.layout
    'nc'
    """
    if path is None:
        return Config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError("configuration file not found", where=Location(p), fix="check the --config path")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration is not valid TOML: {exc}", where=Location(p), fix="fix the syntax") from None
    sections = {"inputs": InputsConfig, "ingest": IngestConfig, "precincts": PrecinctConfig,
                "signals": SignalConfig, "join": JoinConfig,
                "scores": ScoresConfig, "cluster": ClusterConfig, "turfs": TurfsConfig,
                "export": ExportConfig, "experiment": ExperimentConfig}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(
            f"unknown sections {unknown}",
            where=Location(p),
            expected=f"sections among {sorted(sections)}",
            fix="remove or rename them",
        )
    return Config(**{name: _build(cls, raw.get(name, {}), name, str(p)) for name, cls in sections.items()})
