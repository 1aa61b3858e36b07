"""The exception family and the frozen TOML configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from geo_segment import errors as E
from geo_segment.config import Config, IngestConfig, load_config


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (E.ConfigError, ValueError),
        (E.InputFileError, ValueError),
        (E.MissingColumnsError, ValueError),
        (E.EncodingError, ValueError),
        (E.ProjectedCoordinatesError, ValueError),
        (E.DuplicateVoterError, ValueError),
        (E.SchemaError, ValueError),
        (E.OutputPathError, ValueError),
    ],
)
def test_every_error_is_also_a_builtin(cls: type[E.GeoSegmentError], builtin: type[Exception]) -> None:
    assert issubclass(cls, E.GeoSegmentError)
    assert issubclass(cls, builtin)
    assert cls.exit_code >= 3


def test_message_says_where_what_expected_found_fix() -> None:
    exc = E.InputFileError(
        "voter file lacks columns ['ncid']",
        where=E.Location("v.txt", 1, "ncid"),
        expected="columns ['ncid']",
        found="2 columns ['a', 'b']",
        fix="choose the right --layout",
    )
    assert str(exc) == (
        "v.txt, line 1, column 'ncid': voter file lacks columns ['ncid']; expected columns ['ncid'], "
        "found 2 columns ['a', 'b']. Fix: choose the right --layout"
    )


def test_defaults_when_no_file() -> None:
    assert load_config() == Config()


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().ingest.layout = "oh"  # type: ignore[misc]


def test_loads_toml(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[ingest]\nlayout = "oh"\nduplicates = "keep-latest"\n[precincts]\narea_tolerance = 0.05\n')
    cfg = load_config(p)
    assert cfg.ingest.layout == "oh" and cfg.ingest.duplicates == "keep-latest"
    assert cfg.precincts.area_tolerance == 0.05


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[ingest]\nlayot = "nc"\n', r"unknown keys \['layot'\] in \[ingest\]; expected keys among \['layout'"),
        ('[ingst]\n', r"unknown sections \['ingst'\]"),
        ('[precincts]\narea_tolerance = "x"\n', r"\[precincts\] area_tolerance has the wrong type; expected float"),
        ('[precincts]\narea_tolerance = 2.0\n', r"precincts.area_tolerance out of range; expected a fraction"),
        ('[ingest]\nduplicates = "newest"\n', r"ingest.duplicates is unknown; expected 'error' or 'keep-latest'"),
        ("[ingest\n", r"configuration is not valid TOML"),
        ('[scores]\nlabel_election = "last"\n', r"\[scores\] settings out of range.*found label_election='last'"),
        ('[scores]\nmodel = "forest"\n', r"found model='forest'"),
        ('[scores.rule_weights]\nturnout = 0.5\n', r"unknown keys \['turnout'\] in \[scores.rule_weights\]"),
        ('[scores.rule_weights]\nrecency = -1.0\n', r"rule weights out of range.*recency=-1.0"),
        ('[scores.rule_weights]\nrecency = "high"\n', r"\[scores\] rule_weights has the wrong type"),
        ('[cluster]\nalgorithm = "optics"\n', r"\[cluster\] settings out of range.*found algorithm='optics'"),
        ('[cluster]\nalgorithm = "dbscan"\n', r"found eps_m=0.0 with algorithm 'dbscan'"),
        ('[cluster]\ntop_q = 1.5\n', r"found top_q=1.5"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(E.ConfigError, match=message):
        load_config(p)


def test_ingest_config_validates_directly() -> None:
    with pytest.raises(E.ConfigError):
        IngestConfig(duplicates="x")


def test_scores_and_cluster_tables(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[scores]\nlabel_election = "2022-11-08"\nmodel = "logistic"\n[scores.rule_weights]\n'
                 'recency = 0.5\n[cluster]\nthreshold = 0.7\nalgorithm = "dbscan"\neps_m = 75.0\n'
                 'enrichment = false\n')
    cfg = load_config(p)
    assert cfg.scores.label_election == "2022-11-08" and cfg.scores.model == "logistic"
    weights = cfg.scores.weights()
    assert weights.recency == 0.5 and weights.general_turnout == 0.30  # the rest keep their defaults
    opts = cfg.cluster.options(["engagement_score", "propensity"], k_min=cfg.join.k_min)
    assert opts["score_col"] == "propensity"  # auto prefers the model's propensity
    assert opts["threshold"] == 0.7 and opts["top_q"] is None  # a threshold wins over top_q
    assert opts["algorithm"] == "dbscan" and opts["eps_m"] == 75.0 and opts["enrichment_alpha"] is None
    assert opts["k_min"] == 11
    assert cfg.cluster.options(["engagement_score"], k_min=5)["score_col"] == "engagement_score"


def test_sample_config_is_valid_and_documents_every_table() -> None:
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "sample_data" / "geo_segment.toml")
    text = (root / "sample_data" / "geo_segment.toml").read_text(encoding="utf-8")
    for section in cfg.to_dict():
        assert f"[{section}]" in text, f"sample_data/geo_segment.toml lacks a [{section}] example"
    assert cfg.cluster.min_cluster_size == 8
