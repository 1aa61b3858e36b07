"""Walking order, walk lists (formula injection), packets (escaping, scripts, Chromium PNG and PDF), results
import (idempotency, unmatched rows), the [turfs] configuration and the turfs / walklist / results CLI."""

from __future__ import annotations

import csv
import itertools
import subprocess
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from geo_segment.cli.app import app
from typer.testing import CliRunner

from geo_segment.config import TurfsConfig, load_config
from geo_segment.errors import ConfigError, InputFileError
from geo_segment.turfs import Universe, build_doors, cut_turfs, turf_stage
from geo_segment.turfs.packets import CHROMIUM_FLAGS, find_chromium, packet_sections, print_pdfs, write_packets
from geo_segment.turfs.results import contacted_households, import_results, read_results
from geo_segment.turfs.scripts import check_templates, fill, match_scripts
from geo_segment.turfs.walk import house_number_key, path_length, route_order, street_order
from geo_segment.turfs.walklists import WALKLIST_COLUMNS, neutralize, walklist_rows, write_walklists

runner = CliRunner()
LAT0, LNG0 = 41.82, -71.41
KX = 111_320.0 * np.cos(np.radians(LAT0))
KY = 110_540.0


def street_voters() -> gpd.GeoDataFrame:
    """Two short streets, 16 houses and one 4-unit building, 1-2 voters each, in precinct P1.

    MAIN ST runs east (odd numbers north side, even south); OAK ST runs north from its west end.
    """
    rows = []
    k = 0
    for i, num in enumerate([1, 2, 3, 10, 11, 12, 100, 101]):
        x = 15.0 * (num if num < 20 else 15) + (0 if num % 2 else 5)
        y = 10.0 if num % 2 else -10.0
        rows.append(("MAIN ST", str(num), "", f"m{i}", x, y))
    for i, num in enumerate(["2", "4", "6", "8", "12A", "12B", "14-16", "18"]):
        rows.append(("OAK ST", num, "", f"o{i}", -10.0, 20.0 + 15 * i))
    for unit in ["10", "2", "3R", "1"]:
        rows.append(("MAIN ST", "5", unit, "apt", 80.0, 12.0))
    recs = []
    for street, num, unit, bld, x, y in rows:
        hh = f"{bld}-{unit or 'h'}"
        for j in range(1 + (k % 2)):
            recs.append({"voter_id": f"V{k:03d}-{j}", "household_id": hh, "building_id": bld, "street": street,
                         "house_number": num, "unit": unit, "address": f"{num} {street}",
                         "first_name": ["ANA", "LUIS"][j], "last_name": f"DOE{k}", "party": ["DEM", "REP"][k % 2],
                         "birth_year": 1960 + k, "engagement_score": (k % 10) / 10,
                         "lat": LAT0 + y / KY, "lng": LNG0 + x / KX, "precinct_id": "P1"})
        k += 1
    v = pd.DataFrame(recs)
    v["birth_year"] = v["birth_year"].astype("Int64")
    return gpd.GeoDataFrame(v, geometry=gpd.points_from_xy(v["lng"], v["lat"]), crs="EPSG:4326")


# --- walking order ------------------------------------------------------------------------------------------------

def test_house_numbers_sort_numerically() -> None:
    d = pd.DataFrame({"street": ["ELM ST"] * 8, "house_number": ["100", "12A", "2", "10", "12", "14-16", "1", "3"],
                      "building_id": list("abcdefgh"), "unit": [""] * 8})
    order = d["house_number"].iloc[street_order(d, both_sides=True)].tolist()
    assert order == ["1", "2", "3", "10", "12", "12A", "14-16", "100"]
    sides = d["house_number"].iloc[street_order(d)].tolist()
    assert sides == ["1", "3", "100", "14-16", "12A", "12", "10", "2"]  # odd side up, even side back down
    num, _ = house_number_key(pd.Series(["", "abc"]))
    assert np.isinf(num).all()


def test_apartments_grouped_by_building_then_unit() -> None:
    d = pd.DataFrame({"street": ["MAIN ST"] * 5, "house_number": ["5", "5", "7", "5", "5"],
                      "building_id": ["a", "a", "b", "a", "a"], "unit": ["10", "2", "", "3R", "1"]})
    assert d["unit"].iloc[street_order(d)].tolist() == ["1", "2", "3R", "10", ""]


def test_route_is_no_longer_than_street_order_and_near_the_optimum() -> None:
    rng = np.random.default_rng(2)
    for _ in range(5):
        x, y = rng.uniform(0, 300, 8), rng.uniform(0, 300, 8)
        best = min(path_length(x, y, np.array(p)) for p in itertools.permutations(range(8)))
        got = path_length(x, y, route_order(x, y, side_penalty_m=0))
        assert got <= 1.15 * best + 1e-6
    line = route_order(np.array([0.0, 50.0, 10.0, 40.0, 20.0]), np.zeros(5))
    assert line.tolist() == [0, 2, 4, 3, 1]


def test_side_penalty_keeps_a_side_together() -> None:
    """Zig-zag doors 12 m across the street and 10 m apart along it: with the penalty, one side then the other."""
    x = np.repeat(np.arange(6) * 10.0, 2)
    y = np.tile([0.0, 12.0], 6)
    side = np.tile([0, 1], 6)
    order = route_order(x, y, side, side_penalty_m=30.0)
    assert np.count_nonzero(np.diff(side[order])) == 1


# --- walk lists ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_injection_is_neutralized(bad: str) -> None:
    assert neutralize(pd.Series([bad])).iloc[0] == "'" + bad
    assert neutralize(pd.Series(["Ana " + bad])).iloc[0] == "Ana " + bad


def cut_streets(**cfg: object) -> tuple[object, pd.DataFrame, pd.DataFrame]:
    v = street_voters()
    doors, members, _ = build_doors(v)
    cut = cut_turfs(doors, config=TurfsConfig(target_doors=10, **cfg))  # type: ignore[arg-type]
    return cut, members, walklist_rows(cut.doors, members, cut.turfs, as_of_year=2026)


def test_walklist_csv(tmp_path: Path) -> None:
    v = street_voters()
    v.loc[0, "last_name"] = '=HYPERLINK("http://x","y")'
    v.loc[1, "first_name"] = "@evil"
    doors, members, _ = build_doors(v)
    cut = cut_turfs(doors, config=TurfsConfig(target_doors=10))
    rows = walklist_rows(cut.doors, members, cut.turfs, as_of_year=2026)
    paths = write_walklists(rows, tmp_path)
    assert sorted(paths) == sorted(cut.turfs["turf_id"])
    with open(next(iter(paths.values())), encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(WALKLIST_COLUMNS)
    got = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths.values()])
    assert len(got) == len(v)
    assert "'=HYPERLINK(\"http://x\",\"y\")" in set(got["last_name"])
    assert "'@evil" in set(got["first_name"])
    assert (got["result_code"] == "").all()
    first = got[got["turf_id"] == got["turf_id"].iloc[0]]
    assert first["door_order"].astype(int).is_monotonic_increasing
    assert float(got["lng"].iloc[0]) < 0  # numbers stay numbers


# --- scripts and packets ------------------------------------------------------------------------------------------

def test_scripts_by_segment_and_fields() -> None:
    scripts = {"score >= 0.7 & party = DEM": "Thanks {first_name}!", "party = REP": "Hello {names}",
               "default": "Hi"}
    check_templates("Hi {first_name}", scripts)
    people = pd.DataFrame({"score": [0.8, 0.8, 0.1, 0.5], "party": ["DEM", "REP", "REP", "UNA"],
                           "age": [30, 40, 50, 60], "precinct": ["P1"] * 4})
    assert match_scripts(people, "fallback", scripts).tolist() == ["Thanks {first_name}!", "Hello {names}",
                                                                   "Hello {names}", "Hi"]
    assert fill("Thanks {first_name}!", {"first_name": "Ana"}) == "Thanks Ana!"


@pytest.mark.parametrize(("script", "message"), [("Hi {first_name.__class__}", "uses an unknown field"),
                                                 ("Hi {ssn}", "uses an unknown field"),
                                                 ("Hi {first_name", "is not a valid template")])
def test_bad_script_fields_are_refused(script: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TurfsConfig(script=script)
    with pytest.raises(ConfigError, match="a script condition cannot be read"):
        TurfsConfig(scripts={"turnout = high": "x"})


def test_packet_escapes_names_and_fills_scripts() -> None:
    v = street_voters()
    v.loc[0, "first_name"] = "<script>alert(1)</script>"
    v.loc[0, "address"] = '1 "MAIN" & <ST>'
    doors, members, _ = build_doors(v)
    cfg = TurfsConfig(target_doors=10, scripts={"party = REP": "Hello {names} at {address}"},
                      survey={"Support <Prop 1>?": "Yes | No"})
    cut = cut_turfs(doors, config=cfg)
    rows = walklist_rows(cut.doors, members, cut.turfs, as_of_year=2026)
    sections = packet_sections(cut.turfs, cut.routes, cut.doors, rows, config=cfg)
    html = "".join(sections.values())
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;MAIN&quot; &amp; &lt;ST&gt;" in html
    assert "Support &lt;Prop 1&gt;?" in html
    assert "Hello Ana And Luis" not in html and "Hello Ana and Luis at" in html
    assert "<svg" in html and html.count('class="packet"') == len(cut.turfs)
    for label in cfg.result_codes.values():
        assert label in html


def _packet(tmp_path: Path) -> tuple[dict[str, str], str]:
    cut, _members, rows = cut_streets()
    sections = packet_sections(cut.turfs, cut.routes, cut.doors, rows)  # type: ignore[attr-defined]
    tid = next(iter(sections))
    return {tid: sections[tid]}, tid


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (Debian package chromium)")
def test_packet_renders_in_chromium_to_png_and_pdf(tmp_path: Path) -> None:
    sections, tid = _packet(tmp_path)
    written = write_packets(sections, tmp_path / "packets", pdf=True)
    html_path = written["html"][tid]
    png = tmp_path / "packet.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=900,1300",
                        "--hide-scrollbars", f"--screenshot={png}", html_path.as_uri()],
                       capture_output=True, timeout=120, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    from pypdf import PdfReader

    text = " ".join(p.extract_text() for p in PdfReader(str(written["pdf"][tid])).pages)
    assert f"Turf {tid}" in text and "Results key" in text and "Not home" in text
    assert "MAIN ST" in text and "doors" in text


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (Debian package chromium)")
def test_batch_pdfs_are_split_per_packet(tmp_path: Path) -> None:
    cut, _members, rows = cut_streets(door_unit="household")
    sections = packet_sections(cut.turfs, cut.routes, cut.doors, rows)  # type: ignore[attr-defined]
    paths = print_pdfs(sections, tmp_path, batch=10)
    from pypdf import PdfReader

    for tid, path in paths.items():
        text = PdfReader(str(path)).pages[0].extract_text()
        assert f"Turf {tid}" in text
        others = [o for o in paths if o != tid]
        assert not any(f"Turf {o}" in text for o in others)


def test_pdf_without_chromium_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="Chromium was not found"):
        print_pdfs({"T-01": "<section></section>"}, tmp_path, chromium=str(tmp_path / "nope"))


# --- results ------------------------------------------------------------------------------------------------------

def write_results(path: Path, rows: list[str]) -> Path:
    path.write_text("voter_id,household_id,date,result_code,support\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_results_import_is_idempotent_and_reports_unmatched_rows(tmp_path: Path) -> None:
    v = street_voters()
    f = write_results(tmp_path / "r.csv", [
        "V000-0,,2026-10-03,NH,",          # line 2
        ",o1-h,2026-10-03,CT,Yes",         # line 3: household-level
        "NOBODY,,2026-10-03,CT,",          # line 4: matches nobody
        "V001-0,,not a date,CT,",          # line 5
        "V001-1,,2026-10-03,XX,",          # line 6
        "V000-0,,2026-10-03,NH,",          # line 7: duplicate of line 2
        ",,2026-10-03,CT,",                # line 8
    ])
    res = read_results(f)
    codes = TurfsConfig().result_codes
    hist, rep = import_results(res, v, None, result_codes=codes, source_file="r.csv")
    assert (rep.rows, rep.added, rep.duplicates, len(rep.rejects)) == (7, 2, 1, 4)
    assert rep.rejects["line"].tolist() == [4, 5, 6, 8]
    assert rep.rejects["reason"].tolist()[0] == "matches no voter or household"
    assert hist["household_id"].tolist() == ["m0-h", "o1-h"]
    assert hist["survey"].tolist()[1] == '{"support": "Yes"}'
    again, rep2 = import_results(res, v, hist, result_codes=codes, source_file="r.csv")
    pd.testing.assert_frame_equal(again, hist)
    assert rep2.added == 0 and rep2.duplicates == 3
    assert contacted_households(hist) == {"o1-h"}  # not home is knocked again


def test_a_filled_in_walk_list_is_a_results_file(tmp_path: Path) -> None:
    cut, members, rows = cut_streets()
    paths = write_walklists(rows, tmp_path)
    tid, path = next(iter(paths.items()))
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    sheet.loc[0, "result_code"] = "ct"
    sheet.loc[0, "survey_answers"] = "Yes"
    sheet.loc[1, "notes"] = "dog"  # a note without a code: kept as an answer, but the code is missing
    sheet.to_csv(path, index=False)
    hist, rep = import_results(read_results(path, date_given=True), street_voters(), None,
                               result_codes=TurfsConfig().result_codes, default_date="2026-10-04")
    assert (rep.added, len(rep.rejects), rep.metrics["blank"]) == (1, 1, len(sheet) - 2)
    assert rep.rejects["line"].tolist() == [3] and rep.rejects["reason"].str.startswith("unknown result code").all()
    assert hist["voter_id"].tolist() == [sheet.loc[0, "voter_id"]]
    assert hist["contact_date"].tolist() == [pd.Timestamp("2026-10-04")]
    assert hist["survey"].tolist() == ['{"survey_answers": "Yes"}']


def test_results_without_a_date_column(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("voter_id,result_code\nV1,CT\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="results file has no date column"):
        read_results(p)


# --- config, stage and CLI ----------------------------------------------------------------------------------------

def test_turfs_config_table(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[turfs]\ntarget_doors = 40\ndoor_unit = "building"\n[turfs.scripts]\n"party = REP" = "Hi"\n'
                 '[turfs.survey]\n"Yard sign?" = "Yes | No"\n', encoding="utf-8")
    cfg = load_config(p).turfs
    assert (cfg.target_doors, cfg.door_unit, cfg.scripts, cfg.survey) == (40, "building", {"party = REP": "Hi"},
                                                                         {"Yard sign?": "Yes | No"})
    p.write_text('[turfs]\nwithin = "county"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[turfs\] settings out of range"):
        load_config(p)
    p.write_text("[turfs]\ntarget = 40\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown keys \['target'\] in \[turfs\]"):
        load_config(p)


def test_stage_writes_the_contract(tmp_path: Path) -> None:
    res = turf_stage(street_voters(), None, tmp_path, TurfsConfig(target_doors=10))
    t = gpd.read_parquet(tmp_path / "turfs.parquet")
    assert t.crs.to_epsg() == 4326
    for col in ("turf_id", "precinct_id", "list_number", "doors", "people", "target_doors", "est_minutes",
                "route_m", "drive_flag", "within_tolerance"):
        assert col in t.columns
    assert t["turf_id"].dtype == "string" and t["drive_flag"].dtype == bool
    r = gpd.read_parquet(tmp_path / "routes.parquet")
    assert set(r.geom_type) == {"LineString"} and set(r["turf_id"]) == set(t["turf_id"])
    d = gpd.read_parquet(tmp_path / "doors.parquet")
    assert {"turf_id", "door_order", "household_id", "building_id", "lat", "lng"} <= set(d.columns)
    assert all(s.balanced for s in res.stages)
    assert sorted(p.name for p in (tmp_path / "packets").iterdir()) == sorted(f"{i}.html" for i in t["turf_id"])


def test_stage_on_an_empty_universe(tmp_path: Path) -> None:
    res = turf_stage(street_voters(), None, tmp_path, TurfsConfig(), universe=Universe(parties=("GRN",)))
    assert len(res.cut.turfs) == 0 and res.cut.turfs["turf_id"].dtype == "string"
    assert gpd.read_parquet(tmp_path / "turfs.parquet").empty


def test_cli_turfs_results_and_recut(tmp_path: Path) -> None:
    v = street_voters()
    vp = tmp_path / "voters.parquet"
    v.to_parquet(vp)
    out = tmp_path / "run"
    r = runner.invoke(app, ["turfs", "--voters", str(vp), "--out", str(out), "--target-doors", "10"])
    assert r.exit_code == 0, r.output
    assert "doors in 2 turfs" in r.output
    before = gpd.read_parquet(out / "turfs.parquet")
    res = write_results(tmp_path / "r.csv", [",o1-h,2026-10-03,CT,Yes", "V000-0,,2026-10-03,RF,", "X,,2026-10-03,CT,"])
    hist = out / "contact_history.parquet"
    for _ in range(2):
        r = runner.invoke(app, ["results", "import", str(res), "--voters", str(vp), "--history", str(hist)])
        assert r.exit_code == 0, r.output
    assert "0 added, 2 already in the history, 1 rejected" in r.output and "line 4: matches no voter" in r.output
    r = runner.invoke(app, ["turfs", "--voters", str(vp), "--out", str(out), "--target-doors", "10",
                            "--exclude-contacted"])
    assert r.exit_code == 0, r.output
    after = gpd.read_parquet(out / "turfs.parquet")
    assert after["doors"].sum() == before["doors"].sum() - 2
    assert "2 contacted households" in r.output and "1 regions unchanged" not in r.output
    fresh = tmp_path / "fresh"
    r = runner.invoke(app, ["turfs", "--voters", str(vp), "--out", str(fresh), "--target-doors", "10",
                            "--exclude-contacted", "--contact-history", str(hist), "--no-packets"])
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(gpd.read_parquet(fresh / "turfs.parquet").drop(columns="geometry"),
                                  after.drop(columns="geometry"))
    r = runner.invoke(app, ["walklist", "--run", str(out), "--voters", str(vp), "--order", "street",
                            "--turf", str(after["turf_id"].iloc[0])])
    assert r.exit_code == 0, r.output
    rows = pd.read_csv(out / "walklists" / f"{after['turf_id'].iloc[0]}.csv", dtype=str)
    assert rows["door_order"].astype(int).is_monotonic_increasing


def test_cli_errors_have_exit_codes(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[turfs]\ndoor_unit = "flat"\n', encoding="utf-8")
    vp = tmp_path / "v.parquet"
    street_voters().to_parquet(vp)
    r = runner.invoke(app, ["turfs", "--voters", str(vp), "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert r.exit_code == 3 and "[turfs] settings out of range" in r.output
    r = runner.invoke(app, ["turfs", "--voters", str(tmp_path / "missing.parquet")])
    assert r.exit_code == 4 and "voters file not found" in r.output
    r = runner.invoke(app, ["walklist", "--run", str(tmp_path), "--voters", str(vp)])
    assert r.exit_code == 4 and "turfs.parquet is missing from the run folder" in r.output
    r = runner.invoke(app, ["turfs", "--voters", str(vp), "--out", str(tmp_path / "p"), "--pdf",
                            "--chromium", str(tmp_path / "no-chromium")])
    assert r.exit_code == 8 and "Chromium was not found" in r.output
    assert (tmp_path / "p" / "packets").is_dir() and any((tmp_path / "p" / "packets").glob("*.html"))


@pytest.mark.parametrize("args", [["turfs"], ["walklist"], ["results", "import"]])
def test_help_has_an_example(args: list[str]) -> None:
    r = runner.invoke(app, [*args, "--help"])
    assert r.exit_code == 0 and "Example: geo-segment " + args[0] in r.output
