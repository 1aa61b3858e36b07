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
