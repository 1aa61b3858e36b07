"""``geo-segment export`` through typer's CliRunner, the export stage, and a scan of every export of the sample county
for its raw names, phones and emails."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geo_segment.cli.app import app
from typer.testing import CliRunner

from geo_segment.config import ExportConfig
from geo_segment.errors import ConfigError
from geo_segment.exports.platforms import DEFAULT_PLATFORMS_FILE, limits_table_markdown, load_rules
from geo_segment.exports.stage import export_stage
from geo_segment.io.atomic import write_parquet
from geo_segment.io.precincts import read_precincts
from geo_segment.io.voters import read_voter_file
from geo_segment.join import join_stage
from geo_segment.pipeline import find_sample
from geo_segment.synth import DEFAULT_BLOCKS

runner = CliRunner()


@pytest.mark.parametrize("cmd", ["geofences", "audience"])
def test_export_commands_have_help_with_an_example(cmd: str) -> None:
    result = runner.invoke(app, ["export", cmd, "--help"])
    assert result.exit_code == 0
    assert f"Example: geo-segment export {cmd}" in result.output


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample county's voters (with emails added, since the sample has none), precincts, and two small
    micro-geography-like polygons around clusters of voters."""
    files = find_sample()
    folder = tmp_path_factory.mktemp("sample")
    with pytest.warns():
        pre = read_precincts(files.precincts, id_col=files.precinct_id_col).precincts
    voters, _ = join_stage(read_voter_file(files.voters, layout="nc", geocodes=files.geocodes).voters, pre,
                           id_col="precinct_id", tolerance_m=50.0, resolution=9)
    rng = np.random.default_rng(0)
    has_email = rng.random(len(voters)) < 0.4
    emails = (voters["first_name"].str.lower().str.replace(r"[^a-z]", "", regex=True) + "."
              + voters["last_name"].str.lower().str.replace(r"[^a-z]", "", regex=True)
              + pd.Series(np.arange(len(voters)), index=voters.index).astype(str) + "@Example.org")
    voters["email"] = emails.where(has_email).astype("string")
    voters["engagement_score"] = rng.random(len(voters))
    geocoded = voters[voters["geocoded"]]
    pts = gpd.GeoSeries(gpd.points_from_xy(geocoded["lng"], geocoded["lat"]), crs=4326)
    utm = pts.estimate_utm_crs()
    blobs = pts.iloc[[0, 1]].to_crs(utm).buffer(150).to_crs(4326)
    micro = gpd.GeoDataFrame({"micro_geo": [0, 1]}, geometry=blobs.to_numpy(), crs=4326)
    paths = {"voters": folder / "voters.parquet", "precincts": folder / "precincts.parquet",
             "micro_geos": folder / "micro_geos.parquet", "folder": folder}
    write_parquet(voters, paths["voters"])
    write_parquet(pre, paths["precincts"])
    write_parquet(micro, paths["micro_geos"])
    (folder / "dnc.csv").write_text("voter_id\n" + "\n".join(voters["voter_id"].iloc[:7]) + "\n")
    return paths


def test_cli_geofences_writes_files_and_summary(sample: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ex"
    result = runner.invoke(app, [
        "export", "geofences", str(sample["precincts"]), "--id-col", "precinct_id", "--residents-col", "TOTPOP",
        "--purpose", "political", "--target", "google_ads", "--format", "geojson,kml,radius,zip", "--clamp-radius",
        "--on-small", "skip", "--voters", str(sample["voters"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "geofences for google_ads: 257 in, 213 written, 44 below 1,000 residents (column TOTPOP)" in result.output
    assert "257 rewound" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["audit.jsonl", "fences_google_ads.geojson",
                                                     "fences_google_ads.kml", "fences_google_ads_radius.csv",
                                                     "fences_google_ads_zips.csv"]
    audit = json.loads((out / "audit.jsonl").read_text().splitlines()[-1])
    assert [i["role"] for i in audit["inputs"]] == ["polygons", "voters"]
    assert all(len(i["sha256"]) == 64 for i in audit["inputs"])


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--purpose", "election", "--target", "dv360", "--format", "radius"], 7,
         "google refuses radius exports for purpose 'election'"),
        ([], 7, "an export needs a purpose"),
        (["--purpose", "political", "--format", "geojson"], 7,
         "2 of 2 geofences cover fewer residents than generic allows"),
        (["--purpose", "political", "--name", "../../x"], 6, "an output name would leave the output folder"),
        (["--purpose", "political", "--format", "gif"], 3, "[export] settings out of range"),
        (["--purpose", "political", "--target", "snapchat"], 3, "unknown export target 'snapchat'"),
    ],
)
def test_cli_geofences_refusals(sample: dict[str, Path], tmp_path: Path, args: list[str], code: int,
                                text: str) -> None:
    result = runner.invoke(app, ["export", "geofences", str(sample["micro_geos"]), "--id-col", "micro_geo",
                                 "--population", str(DEFAULT_BLOCKS), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == code, result.output
    assert text in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_cli_audience_universes_exclusive_suppressed(sample: dict[str, Path], tmp_path: Path) -> None:
    voters = pd.read_parquet(sample["voters"], columns=["voter_id"])
    (tmp_path / "core.csv").write_text("voter_id\n" + "\n".join(voters.voter_id.iloc[:400]) + "\n")
    (tmp_path / "wide.csv").write_text("voter_id\n" + "\n".join(voters.voter_id.iloc[200:900]) + "\n")
    out = tmp_path / "ex"
    result = runner.invoke(app, [
        "export", "audience", str(sample["voters"]), "--platform", "meta", "--purpose", "political",
        "--universe", str(tmp_path / "core.csv"), "--universe", str(tmp_path / "wide.csv"), "--exclusive",
        "--priority", "core,wide", "--suppress", str(sample["folder"] / "dnc.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "overlap core / wide: 200 voters" in result.output
    assert re.search(r"core \(meta\): 400 in = \d+ written \+ 0 unmatchable \+ \d+ duplicates \+ 7 suppressed",
                     result.output)
    assert "wide (meta): 500 in" in result.output  # the 200 shared voters stay in core only
    assert "Meta political and election ads need advertiser authorization" in result.output
    for name in ("core_meta.csv", "wide_meta.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--platform", "google", "--purpose", "election"], 7, "google refuses customer_match"),
        (["--platform", "meta"], 7, "an export needs a purpose"),
        (["--platform", "meta", "--purpose", "political", "--min-audience", "5000"], 7,
         "expected at least 5000 rows"),
        (["--platform", "tiktok", "--purpose", "political"], 3, "unknown customer-list platform 'tiktok'"),
    ],
)
def test_cli_audience_refusals(sample: dict[str, Path], tmp_path: Path, args: list[str], code: int,
                               text: str) -> None:
    result = runner.invoke(app, ["export", "audience", str(sample["voters"]), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == code, result.output
    assert text in " ".join(result.output.split())
    assert not list((tmp_path / "o").glob("*.csv")) if (tmp_path / "o").exists() else True


def test_export_stage_records_files_and_refusals(sample: dict[str, Path], tmp_path: Path) -> None:
    voters = gpd.read_parquet(sample["voters"])
    voters["micro_geo"] = pd.array(np.where(np.arange(len(voters)) < 150, 0, -1), dtype="Int64")
    micro, pre = gpd.read_parquet(sample["micro_geos"]), gpd.read_parquet(sample["precincts"])
    files, record = export_stage(voters.drop(columns=["precinct_id"]), micro, pre, tmp_path / "a",
                                 ExportConfig(target="google_ads"),
                                 population=DEFAULT_BLOCKS, purpose="election", on_small="skip")
    assert record.name == "export" and record.balanced
    refused = {r["export"]: r["reason"] for r in record.metrics["refused"]}
    assert "google refuses radius exports for purpose 'election'" in refused["geofences precincts"]
    assert "google refuses customer_match" in refused["audiences google"]
    assert record.metrics["formats_skipped"] == ["precinct"]  # these voters were not joined to precincts
    turfs = gpd.GeoDataFrame({"turf_id": ["T1", "T2"]}, geometry=shapely.buffer(micro.geometry.values, 0.01),
                             crs=4326)
    files, record = export_stage(voters, micro, pre, tmp_path / "b", ExportConfig(formats=("geojson", "h3")),
                                 turfs=turfs, population=DEFAULT_BLOCKS, purpose="political", on_small="skip")
    assert record.metrics["geofences_turfs"]["fences_out"] == 2  # about 2 km across: several thousand residents
    assert "geofences_turfs_geojson" in files
    assert record.metrics["geofences_micro_geos"]["refused_small"] == 2
    assert record.metrics["geofences_precincts"] == {"fences_in": 257, "fences_out": 213, "refused_small": 44,
                                                     "residents_method": "column TOTPOP", "min_residents": 1000}
    assert record.metrics["audience_micro_geo_meta"]["rows_out"] >= 100
    assert {"audience_micro_geo_meta", "audience_top_google", "audience_overlap", "audit",
            "geofences_precincts_geojson", "geofences_precincts_h3"} <= set(files)
    assert all(p.exists() for p in files.values())


def test_no_raw_personal_data_in_any_export(sample: dict[str, Path], tmp_path: Path) -> None:
    """Every file the exports write, and the terminal output, is free of the sample's raw names, phones and
    emails; the hashed lists hold none of their normalized forms either."""
    out = tmp_path / "ex"
    runs = [
        ["export", "audience", str(sample["voters"]), "--platform", "meta", "--purpose", "political"],
        ["export", "audience", str(sample["voters"]), "--platform", "google", "--purpose", "political"],
        ["export", "geofences", str(sample["precincts"]), "--id-col", "precinct_id", "--residents-col", "TOTPOP",
         "--purpose", "political", "--on-small", "skip", "--voters", str(sample["voters"]), "--clamp-radius",
         "--target", "meta"],
        ["export", "geofences", str(sample["micro_geos"]), "--id-col", "micro_geo", "--purpose", "political",
         "--voters", str(sample["voters"]), "--min-residents", "1", "--name", "micro"],
    ]
    terminal = ""
    for args in runs:
        result = runner.invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        terminal += result.output
    voters = gpd.read_parquet(sample["voters"])
    export_stage(voters, gpd.read_parquet(sample["micro_geos"]), gpd.read_parquet(sample["precincts"]), out,
                 ExportConfig(min_residents=1), purpose="political", on_small="skip")
    written = sorted(p for p in out.iterdir() if p.is_file())
    assert len(written) >= 15
    names = {part for col in ("first_name", "last_name") for v in voters[col].dropna().astype(str)
             for part in v.split() if len(part) >= 3}
    emails = set(voters["email"].dropna().astype(str))
    phones = set(voters["phone"].dropna().astype(str))
    assert len(names) > 250 and len(emails) > 1000 and len(phones) >= 100
    local = {p[-7:] for p in phones}  # a phone's local part, wherever it hides in a longer run of digits
    texts = {p.name: p.read_text(encoding="utf-8") for p in written}
    for name, text in [*texts.items(), ("terminal", terminal)]:
        words = set(re.findall(r"[^\W\d_][\w'.@+-]*", text))  # every word-like token, accents included
        words |= {w.rstrip(".") for w in words}
        runs = re.findall(r"\d{7,}", text)
        windows = {run[i:i + 7] for run in runs for i in range(len(run) - 6)}
        assert not names & words, f"{name} holds raw names"
        assert not {e for e in emails if e in words or e.lower() in words}, f"{name} holds raw emails"
        assert not local & windows, f"{name} holds raw phone numbers"
    normalized = {re.sub(r"[^a-z]", "", v.lower()) for v in voters["last_name"].dropna().astype(str)}
    normalized |= {v.lower() for v in emails} | {"1" + p for p in phones}
    hashed_lists = [n for n in texts if n.endswith(("_meta.csv", "_google.csv"))]
    assert len(hashed_lists) == 4
    for name in hashed_lists:
        body = texts[name].split("\n", 1)[1]  # values only, not the header
        assert not re.search(r"[g-z]", body.replace("US", "")), name  # only hex, digits, commas, US
        assert not [v for v in normalized if len(v) >= 5 and v in body], name


ROOT = Path(__file__).resolve().parents[1]


def test_docs_limits_table_is_current() -> None:
    assert limits_table_markdown() in (ROOT / "docs" / "exports.md").read_text(encoding="utf-8"), (
        "docs/exports.md's limits table is stale: paste geo_segment.exports.platforms.limits_table_markdown()"
    )


def test_every_limit_lives_in_the_data_file_with_source_and_date(tmp_path: Path) -> None:
    rules = load_rules()
    assert rules.path == DEFAULT_PLATFORMS_FILE
    for r in rules.rules:
        assert r.source and r.level in ("P", "S") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", r.checked), r
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nplatform = "meta"\nname = "max_vertices"\nvalue = 1\n')
    with pytest.raises(ConfigError, match=r"\[\[rule\]\] number 1 is incomplete or unknown"):
        load_rules(bad)
    # a user updates a limit in a copy of the file; the code follows
    mine = tmp_path / "mine.toml"
    text = DEFAULT_PLATFORMS_FILE.read_text(encoding="utf-8")
    assert text.count('value = 1000\nunit = "vertices') == 1
    mine.write_text(text.replace('value = 1000\nunit = "vertices', 'value = 50\nunit = "vertices'))
    assert load_rules(mine).profile("aws").limit("max_vertices") == 50
    assert load_rules(mine).profile("aws").limit("min_residents_per_fence") == 1000
