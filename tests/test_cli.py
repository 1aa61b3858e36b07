"""The CLI: one clear line and a documented exit code on errors, help with an example for every command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from geo_segment.cli.app import app
from geo_segment.cli.reference import render_reference
from typer.testing import CliRunner

from .conftest import nc_voter

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_docs_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == render_reference(), (
        "docs/cli.md is stale: run `python -m geo_segment.cli.reference > docs/cli.md`"
    )


@pytest.mark.parametrize("args", [["demo"], ["synth"], ["join"], ["score"], ["cluster"], ["ingest", "voters"],
                                  ["ingest", "signals"], ["ingest", "precincts"]])
def test_every_command_has_help_with_an_example(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert "Example: geo-segment " + args[0] in result.output


def test_ingest_voters_writes_the_run_folder(write_layout_file: Callable[..., Path], tmp_path: Path) -> None:
    v = write_layout_file("v.txt", "nc", [nc_voter("AA1"), nc_voter("AA2"), '"bad"'])
    out = tmp_path / "out"
    result = runner.invoke(app, ["ingest", "voters", str(v), "--layout", "nc", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "rejects.csv", "vote_history.parquet",
                                                     "voters.parquet"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["stages"]["voters"]["rows_in"] == 3
    assert man["stages"]["voters"]["rows_out"] == 2
    assert man["stages"]["voters"]["rows_rejected"] == 1
    assert man["inputs"][0]["role"] == "voters" and len(man["inputs"][0]["sha256"]) == 64
    assert "3 rows in = 2 voters + 1 rejects" in result.output
    assert "DOE" not in result.output  # personal data never reaches the terminal


def test_errors_are_one_line_with_exit_code(write_layout_file: Callable[..., Path], tmp_path: Path) -> None:
    v = write_layout_file("v.txt", "nc", [nc_voter("AA1"), nc_voter("AA1")])
    result = runner.invoke(app, ["ingest", "voters", str(v), "--out", str(tmp_path / "o")])
    assert result.exit_code == 4
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "voters.parquet").exists()


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["ingest", "voters", "missing.txt"], 4, "voters file not found"),
        (["ingest", "voters", "x.txt", "--layout", "tx"], 3, "unknown layout 'tx'"),
        (["ingest", "voters", "x.txt", "--duplicates", "sometimes"], 2, ""),
        (["demo", "--sample-dir", "nowhere"], 4, "the sample county is incomplete"),
    ],
)
def test_exit_codes(args: list[str], code: int, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert text in result.output


def test_unexpected_errors_hide_their_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import geo_segment.cli.demo as demo_mod

    def boom(*_a: object, **_k: object) -> None:
        raise KeyError("Jane Voter, 12 Main St")

    monkeypatch.setattr(demo_mod, "run_demo", boom)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "internal error: KeyError in demo" in result.output
    assert "Jane" not in result.output


def test_demo_runs_every_stage_on_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["command"] == "demo"
    assert [s["name"] for s in man["parameters"]["pipeline"]] == ["ingest", "join", "score", "cluster", "turfs",
                                                                  "maps", "exports"]
    assert {s["status"] for s in man["parameters"]["pipeline"]} == {"ran"}
    assert list(man["stages"]) == ["voters", "geocodes", "history", "signals", "precincts", "join",
                                   "join_signals", "aggregate", "score", "cluster", "universe", "doors", "turfs",
                                   "walklists", "maps", "export"]
    for name, st in man["stages"].items():
        assert st["rows_in"] == st["rows_out"] + st["rows_rejected"] + st["rows_dropped"], name
    assert man["stages"]["precincts"]["rows_out"] == 257
    # the run folder of DESIGN.md
    assert {"manifest.json", "report.html", "rejects.csv", "voters.parquet", "vote_history.parquet",
            "signals.parquet", "precincts.parquet", "cells.parquet", "micro_geos.parquet", "turfs.parquet",
            "walklists", "packets", "maps", "exports", "stages"} <= {p.name for p in out.iterdir()}
    maps = {p.name for p in (out / "maps").iterdir()}
    assert {"precincts.html", "hexes.html", "micro_geos.html", "turfs.html"} <= maps
    assert {"roc_auc", "pr_auc", "brier", "ece"} <= set(man["stages"]["score"]["metrics"])
    assert {"validity", "bootstrap_ari"} <= set(man["stages"]["cluster"]["metrics"])
    assert man["stages"]["cluster"]["metrics"]["clusters"] >= 1
    assert man["stages"]["join"]["rows_out"] == man["stages"]["voters"]["rows_out"]
    assert result.output.rstrip().endswith("(see manifest.json)")
    assert "balanced" in result.output
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Key figures" in report and report.count("data:image/png;base64,") == 3
    # a second run finds everything up to date
    again = runner.invoke(app, ["demo", "--out", str(out)])
    assert again.exit_code == 0, again.output
    man = json.loads((out / "manifest.json").read_text())
    assert {s["status"] for s in man["parameters"]["pipeline"]} == {"up-to-date"}
    assert "up-to-date" in again.output


def test_run_reads_inputs_relative_to_the_config_and_config_init(tmp_path: Path) -> None:
    import shutil

    cfg = tmp_path / "geo_segment.toml"
    r = runner.invoke(app, ["config", "init", str(cfg)])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["config", "init", str(cfg)]).exit_code == 6  # never overwrites silently
    text = cfg.read_text(encoding="utf-8")
    for name in ("nc/ncvoter.txt", "nc/ncvhis.txt", "nc/geocodes.csv", "providence_precincts.parquet"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / "sample_data" / name, tmp_path / name)
    text = (text.replace('voter_file = ""', 'voter_file = "nc/ncvoter.txt"')
            .replace('history = ""', 'history = "nc/ncvhis.txt"')
            .replace('geocodes = ""', 'geocodes = "nc/geocodes.csv"')
            .replace('precincts = ""', 'precincts = "providence_precincts.parquet"')
            .replace('id_col = "precinct_id"', 'id_col = "JOINID"').replace('label_election = "latest-general"',
                                                                            'label_election = "none"'))
    cfg.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--only", "join"])
    assert r.exit_code == 5 - 1, r.output  # --only needs the earlier stages: input error (4)
    assert "stage ingest has not run in this folder" in r.output
    r = runner.invoke(app, ["run", str(cfg), "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    statuses = {s["name"]: (s["status"], s["reason"]) for s in man["parameters"]["pipeline"]}
    assert statuses["exports"] == ("left out", "no [export] purpose (required to export)")
    assert statuses["score"][0] == "ran" and statuses["turfs"][0] == "ran"
    r = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--from", "turfs"])
    assert r.exit_code == 0, r.output
    pipeline = json.loads((out / "manifest.json").read_text())["parameters"]["pipeline"]
    statuses = {s["name"]: s["status"] for s in pipeline}
    assert statuses["ingest"] == "kept" and statuses["turfs"] == "ran" and statuses["maps"] == "ran"


def test_synth_writes_layout_truth_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = runner.invoke(app, ["synth", "--voters", "200", "--seed", "3", "--layout", "fl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["parameters"] == {"voters": 200, "seed": 3, "layout": "fl", "bad_rows": 0}
    assert man["stages"]["synth"]["rows_out"] == 200
    assert {"voters.txt", "history.txt", "truth.parquet", "geocodes.csv", "signals.csv"} <= set(man["outputs"])


def test_join_command_adds_columns_and_writes_aggregates(tmp_path: Path) -> None:
    import geopandas as gpd

    ing = tmp_path / "ing"
    r = runner.invoke(app, ["ingest", "voters", str(ROOT / "sample_data/nc/ncvoter.txt"), "--history",
                            str(ROOT / "sample_data/nc/ncvhis.txt"), "--geocodes",
                            str(ROOT / "sample_data/nc/geocodes.csv"), "--out", str(ing), "-q"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "join"
    r = runner.invoke(app, ["join", "--voters", str(ing / "voters.parquet"), "--history",
                            str(ing / "vote_history.parquet"), "--precincts",
                            str(ROOT / "sample_data/providence_precincts.parquet"), "--id-col", "JOINID",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    voters = gpd.read_parquet(out / "voters.parquet")
    assert {"h3_cell", "precinct_id", "precinct_method"} <= set(voters.columns)
    assert str(voters["h3_cell"].dtype) == "uint64"
    cells = gpd.read_parquet(out / "cells.parquet")
    assert cells.loc[~cells["suppressed"], "voters"].min() >= 11
    assert cells["voters"].sum() == cells.loc[~cells["suppressed"], "voters"].sum()
    assert "unassigned (30 of them not geocoded)" in r.output


def test_join_engine_dask_equals_local(tmp_path: Path) -> None:
    import geopandas as gpd
    import pandas as pd

    ing = tmp_path / "ing"
    r = runner.invoke(app, ["ingest", "voters", str(ROOT / "sample_data/nc/ncvoter.txt"), "--geocodes",
                            str(ROOT / "sample_data/nc/geocodes.csv"), "--out", str(ing), "-q"])
    assert r.exit_code == 0, r.output
    common = ["join", "--voters", str(ing / "voters.parquet"), "--precincts",
              str(ROOT / "sample_data/providence_precincts.parquet"), "--id-col", "JOINID", "-q"]
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "local")]).exit_code == 0
    r = runner.invoke(app, [*common, "--engine", "dask", "--out", str(tmp_path / "dask")])
    assert r.exit_code == 0, r.output
    for name in ("voters", "cells", "precincts"):
        pd.testing.assert_frame_equal(gpd.read_parquet(tmp_path / "dask" / f"{name}.parquet"),
                                      gpd.read_parquet(tmp_path / "local" / f"{name}.parquet"))
    r = runner.invoke(app, [*common, "--npartitions", "3", "--out", str(tmp_path / "bad")])
    assert r.exit_code == 3 and "--address and --npartitions belong to the dask engine" in r.output


def test_other_warnings_are_shown_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import warnings

    from geo_segment.cli import demo as demo_mod

    def warns(*args: object, **kwargs: object) -> object:
        warnings.warn("a library changed its default", FutureWarning, stacklevel=1)
        raise KeyError("stop")

    monkeypatch.setattr(demo_mod, "run_demo", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as a user's Python shows it, whatever -W the test run was given
        result = runner.invoke(app, ["demo", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.count("FutureWarning: a library changed its default") == 1


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_command_lets_openmp_threads_sleep_unless_told(given: str | None, expected: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", "import os, geo_segment.cli.app; print(os.environ['OMP_WAIT_POLICY'])"],
                         capture_output=True, text=True, check=True, env=env).stdout.strip()
    assert out == expected
