"""Map layers without a browser: what reaches the HTML (escaping, suppression, sizes), classification, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geo_segment.cli.app import app
from geo_segment.maps import (
    ASSETS,
    add_precinct_layer,
    build_maps,
    classify,
    hex_map,
    inline_assets,
    micro_geo_map,
    new_map,
    precinct_map,
    turf_maps,
)
from geo_segment.maps._assets import ASSET_DIR
from geo_segment.maps._base import fisher_jenks, prepare_geometry
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from geo_segment.errors import ConfigError, SchemaError
from geo_segment.map_measures import map_measures, score_by_unit

from ._map_fixtures import EVIL, JINJA, data_blobs, grid_cells, grid_micro_geos, grid_precincts, read, turf_inputs

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _features(html: str, blob: int = 0) -> list[dict]:
    return data_blobs(html)[blob]["features"]


# --- escaping and suppression ---------------------------------------------------------------------------------

def test_hostile_name_is_escaped_in_the_data_and_never_raw(tmp_path: Path) -> None:
    html = read(precinct_map(grid_precincts(), out=tmp_path / "p.html"))
    assert EVIL not in html
    assert "onerror=alert(1)>" not in html
    props = {f["properties"]["h0"]: f["properties"] for f in _features(html)}
    assert props["P1"]["h1"] == "&lt;img src=x onerror=alert(1)&gt;"


def test_template_syntax_in_data_is_text_not_evaluated(tmp_path: Path) -> None:
    frame = grid_precincts().assign(**{JINJA: 0.5})
    html = read(precinct_map(frame, measures=[JINJA, "turnout_last_general"], title=JINJA, out=tmp_path / "p.html"))
    props = {f["properties"]["h0"]: f["properties"] for f in _features(html)}
    assert props["P2"]["h1"] == "Two &#123;&#123; 7*7 &#125;&#125; &#123;% raw %&#125;"
    assert "Two 49" not in html and "{{ 7*7 }}" not in html and "{% raw %}" not in html


def test_hostile_title_and_layer_names_are_escaped(tmp_path: Path) -> None:
    m = new_map(title=EVIL, data_date=EVIL)
    add_precinct_layer(m, grid_precincts().assign(**{EVIL: 1.0}), measure=EVIL)
    html = m.get_root().render()
    assert EVIL not in html
    assert "<title>&lt;img src=x onerror=alert(1)&gt;</title>" in html


def test_suppressed_precinct_carries_identifiers_only(tmp_path: Path) -> None:
    leaky = grid_precincts()
    leaky.loc[5, ["voters", "households", "party_DEM"]] = [7, 5, 3]  # counts left behind on a suppressed row
    leaky.loc[5, "turnout_last_general"] = 0.4242
    html = read(precinct_map(leaky, out=tmp_path / "p.html"))
    props = {f["properties"]["h0"]: f["properties"] for f in _features(html)}
    assert props["P6"] == {"h0": "P6", "h1": "Six", "_s": 1}
    assert "0.4242" not in html and "42.4" not in html


def test_small_unit_without_flag_is_hidden_too(tmp_path: Path) -> None:
    frame = grid_precincts().drop(columns="suppressed")
    frame.loc[0, "voters"] = 10  # P1 under k=11
    props = {f["properties"]["h0"]: f["properties"] for f in _features(read(precinct_map(frame,
                                                                                          out=tmp_path / "p.html")))}
    assert props["P1"].get("_s") == 1 and "f0" not in props["P1"]
    assert "_s" not in props["P2"]


def test_hex_map_builds_polygons_from_cells_and_hides_the_small_one(tmp_path: Path) -> None:
    cells = grid_cells()
    feats = _features(read(hex_map(cells, out=tmp_path / "h.html")))
    assert len(feats) == 7
    assert all(len(f["geometry"]["coordinates"][0]) == 7 for f in feats)  # hexagons, closed
    assert [f["properties"].get("_s") for f in feats] == [None] * 6 + [1]
    assert feats[0]["properties"]["h0"] == format(int(cells["h3_cell"][0]), "x")


def test_hex_resolution_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"not at the requested H3 resolution; expected resolution 8, found "
                                          r"resolutions \[9\]"):
        hex_map(grid_cells(), resolution=8)


def test_micro_geo_stats_escaped_and_suppressed(tmp_path: Path) -> None:
    html = read(micro_geo_map(grid_micro_geos(), grid_precincts(), out=tmp_path / "m.html"))
    outlines, micro = data_blobs(html)
    assert len(outlines["features"]) == 6 and set(outlines["features"][0]["properties"]) == {"h0"}
    p0, p1 = (f["properties"] for f in micro["features"])
    assert "P1;&lt;img src=x onerror=alert(1)&gt;" in p0.values()
    assert p1 == {"h0": "micro-geography 1", "_s": 1}


def test_not_a_geodataframe_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="the precincts table cannot be mapped; expected a GeoDataFrame"):
        add_precinct_layer(new_map(), pd.DataFrame({"precinct_id": ["A"]}))


def test_unknown_measure_names_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"a measure is not a column of the precincts table.*\['nope'\].*"
                                          r"map_measures"):
        add_precinct_layer(new_map(), grid_precincts(), measure="nope")


# --- turfs ----------------------------------------------------------------------------------------------------

def test_turf_maps_one_for_all_and_one_per_turf(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    written = turf_maps(turfs, routes, doors, out_dir=tmp_path)
    assert sorted(p.name for p in written.values()) == ["turf_T01.html", "turf_T_02_b.html", "turfs.html"]
    one = read(tmp_path / "turf_T01.html")
    turf_blob, route_blob = data_blobs(one)
    assert [f["properties"]["h0"] for f in turf_blob["features"]] == ["Turf T01"]
    assert route_blob["features"][0]["geometry"]["type"] == "LineString"
    assert one.count("household_id") == 0  # no door fields unless asked
    everything = read(tmp_path / "turfs.html")
    assert "<b>" not in everything.split("<body>")[1].split("<script>")[0]
    assert "T 02/\\u0026lt;b\\u0026gt;" in everything


def test_personal_door_fields_need_personal(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    with pytest.raises(ConfigError, match=r"personal door fields were asked for without personal=True.*"
                                          r"\['address', 'last_name'\]"):
        turf_maps(turfs, routes, doors, door_fields=["last_name", "address"])
    written = turf_maps(turfs, routes, doors, door_fields=["last_name"], personal=True, out_dir=tmp_path)
    html = read(written["T01"])
    assert "ZYXWVUTS" in html and EVIL not in html


# --- geometry size ----------------------------------------------------------------------------------------------

def _neighbour_pairs(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = i < j
    return i[keep], j[keep]


def test_coverage_simplification_keeps_every_shared_border() -> None:
    real = np.asarray(gpd.read_parquet(ROOT / "sample_data" / "providence_precincts.parquet").geometry)
    i, j = _neighbour_pairs(real)
    simplified = prepare_geometry(real, simplify_m=20.0, coverage=True)
    assert shapely.get_num_coordinates(simplified).sum() < 0.6 * shapely.get_num_coordinates(real).sum()
    assert shapely.intersects(simplified[i], simplified[j]).all()
    separately = prepare_geometry(real, simplify_m=20.0, coverage=False)
    assert not shapely.intersects(separately[i], separately[j]).all()  # what the coverage mode prevents


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-80, 80), st.floats(-179, 179)), min_size=3, max_size=12))
def test_rounding_leaves_at_most_six_decimals(points: list[tuple[float, float]]) -> None:
    geom = shapely.MultiPoint([(x, y) for y, x in points]).convex_hull.buffer(0.001)
    out = prepare_geometry(np.array([geom]), simplify_m=0.0, coverage=False)
    coords = shapely.get_coordinates(out)
    assert np.allclose(coords, np.round(coords, 6), atol=0, rtol=0)
    assert all(len(str(v).split(".")[-1]) <= 6 for v in json.loads(shapely.to_geojson(out[0]))["coordinates"][0][0])


# --- classification ---------------------------------------------------------------------------------------------

def test_quantiles_match_numpy_percentiles() -> None:
    values = np.arange(1.0, 11.0)
    got = classify(values, scheme="quantiles", k=5)
    assert got.bins == pytest.approx(np.percentile(values, [20, 40, 60, 80, 100]))
    assert got.classes.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(got.palette) == 5 and len(set(got.palette)) == 5


def test_natural_breaks_find_separated_groups_and_nan_is_no_class() -> None:
    got = classify(np.array([1, 1.2, 0.9, 10, 10.5, 9.8, 100, 101, np.nan]), scheme="natural_breaks", k=3)
    assert got.classes.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, -1]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=4, max_size=60), st.integers(2, 6))
def test_fisher_jenks_matches_mapclassify(ints: list[int], k: int) -> None:
    import warnings

    import mapclassify

    values = np.array(ints, dtype="float64") / 4
    k = min(k, len(np.unique(values)))
    if k < 2:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = mapclassify.FisherJenks(values, k=k)
    got = fisher_jenks(values, k)
    # the same partition (ties between equal-cost partitions aside): equal within-class sums of squares
    def tss(bounds: list[float]) -> float:
        cls = np.searchsorted(np.asarray(bounds), values, side="left")
        return float(sum(((values[cls == c] - values[cls == c].mean()) ** 2).sum() for c in np.unique(cls)))
    assert tss(got) == pytest.approx(tss(list(expected.bins)), abs=1e-9)


@pytest.mark.parametrize("values", [[np.nan, np.nan], [], [3.0, 3.0, np.nan]])
def test_degenerate_values_give_matching_palette_and_labels(values: list[float]) -> None:
    got = classify(np.array(values), scheme="quantiles", k=5)
    assert len(got.palette) == len(got.labels) == len(got.bins) == (1 if values and not np.isnan(values[0]) else 0)
    assert got.classes.tolist() == [0 if np.isfinite(v) else -1 for v in values]


def test_user_bins_and_labels() -> None:
    got = classify(np.array([0.1, 0.45, 0.9]), scheme="user", bins=[0.4, 0.6], fmt="pct")
    assert got.classes.tolist() == [0, 1, 2]
    assert got.labels == ["10.0% – 40.0%", "> 40.0% – 60.0%", "> 60.0% – 90.0%"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"scheme": "jenks"}, r"unknown classification scheme; expected one of \['quantiles', 'natural_breaks', 'user'\]"),
    ({"scheme": "user"}, "user classes need their bounds"),
    ({"k": 1}, "a choropleth needs at least 2 classes"),
])
def test_classification_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        classify(np.arange(5.0), **kwargs)


# --- measures ---------------------------------------------------------------------------------------------------

def test_map_measures_shares_density_and_scores() -> None:
    units = grid_precincts()
    voters = pd.DataFrame({"precinct_id": ["P1"] * 12 + ["P2"] * 3,
                           "engagement_score": [0.25] * 6 + [0.75] * 6 + [0.9] * 3})
    out = map_measures(units, voters)
    assert out["share_DEM"].tolist()[:5] == pytest.approx([0.5, 0.2, 0.5, 0.1, 0.5])
    assert np.isnan(out["share_DEM"].iloc[5])
    assert out["mean_score"].iloc[0] == pytest.approx(0.5)
    assert np.isnan(out["mean_score"].iloc[1])  # 3 scored voters < 11
    assert int(out["engaged_voters"].iloc[0]) == 6
    km2 = gpd.GeoSeries(units.geometry.iloc[[0]], crs=4326).to_crs(units.estimate_utm_crs()).area.iloc[0] / 1e6
    assert out["voters_per_km2"].iloc[0] == pytest.approx(20 / km2)
    assert list(units.columns) == list(grid_precincts().columns)  # input untouched


@pytest.mark.parametrize("rows", [slice(0, 0), slice(0, 6)])
def test_map_measures_contract_empty_input_index_and_crs(rows: slice) -> None:
    units = grid_precincts().iloc[rows]
    units.index = units.index + 100
    out = map_measures(units)
    assert out.index.equals(units.index) and out.crs == units.crs and len(out) == len(units)
    assert {"share_DEM", "voters_per_km2"} <= set(out.columns)


@pytest.mark.parametrize("build", [
    lambda: precinct_map(grid_precincts().iloc[:0]),
    lambda: hex_map(grid_cells().iloc[:0]),
    lambda: micro_geo_map(grid_micro_geos().iloc[:0]),
])
def test_empty_inputs_give_an_empty_map(build: Any) -> None:
    html = build().get_root().render()
    assert all(b["features"] == [] for b in data_blobs(html))


def test_score_by_unit_needs_its_columns() -> None:
    with pytest.raises(SchemaError, match=r"lacks the columns a score measure needs.*missing \['engagement_score'\]"):
        score_by_unit(pd.DataFrame({"precinct_id": ["A"]}))


# --- assets -----------------------------------------------------------------------------------------------------

def test_every_referenced_asset_is_vendored_with_its_licence() -> None:
    for rel in ASSETS.values():
        assert (ASSET_DIR / rel).is_file()
    assert (ASSET_DIR / "leaflet-1.9.3" / "LICENSE").is_file()
    assert (ASSET_DIR / "leaflet.markercluster-1.1.0" / "MIT-LICENCE.txt").is_file()


def test_every_asset_ships_in_the_wheel() -> None:
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "geo_segment.maps"]
    files = [p.relative_to(ASSET_DIR.parent) for p in ASSET_DIR.rglob("*") if p.is_file()]
    assert len(files) >= 10
    assert [str(f) for f in files if not any(f.match(g) for g in globs)] == []


def test_inline_assets_replaces_cdn_tags_and_refuses_unknown_ones() -> None:
    html = new_map().get_root().render()
    inlined = inline_assets(html)
    assert "cdn.jsdelivr.net" not in inlined and "layers.png" not in inlined
    assert "data:image/png;base64," in inlined
    with pytest.raises(ValueError, match="no local copy"):
        inline_assets('<script src="https://example.org/x.js"></script>')


def test_build_maps_writes_the_run_folder(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    paths = build_maps(tmp_path / "maps", grid_precincts(), grid_cells(), grid_micro_geos(), turfs, routes=routes,
                       doors=doors, data_date="2026-11-27")
    assert [p.name for p in paths] == ["precincts.html", "hexes.html", "micro_geos.html", "turfs.html",
                                       "turf_T01.html", "turf_T_02_b.html"]
    for p in paths:
        text = p.read_text(encoding="utf-8")
        assert "Data as of 2026-11-27" in text and "cdn" not in text
        if p.name.startswith("turf"):  # one shared copy of Leaflet beside the turf maps
            assert '<script src="assets/leaflet-1.9.3/leaflet.js"></script>' in text
        else:
            assert "<script src=" not in text
    assets = sorted(str(f.relative_to(tmp_path / "maps" / "assets")) for f in (tmp_path / "maps" / "assets").rglob("*")
                    if f.is_file() and f.parent.name != "gs")
    # the turf pages' shared script and styles, one each per page shape (T01 plain, T 02/<b> a drive turf)
    shared = sorted(f.name for f in (tmp_path / "maps" / "assets" / "gs").iterdir())
    assert len(shared) == 4 and all(re.fullmatch(r"turf-page-[0-9a-f]{16}\.(js|css)", n) for n in shared)
    for p in paths[4:]:
        text = read(p)
        assert re.search(r'<script src="assets/gs/(turf-page-[0-9a-f]{16}\.js)"></script>', text).group(1) in shared
        assert re.search(r'<link rel="stylesheet" href="assets/gs/(turf-page-[0-9a-f]{16}\.css)"/>',
                         text).group(1) in shared
        assert "<style>" not in text
    assert assets == ["leaflet-1.9.3/images/layers-2x.png", "leaflet-1.9.3/images/layers.png",
                      "leaflet-1.9.3/leaflet.css", "leaflet-1.9.3/leaflet.js",
                      "leaflet.markercluster-1.1.0/MarkerCluster.Default.css",
                      "leaflet.markercluster-1.1.0/MarkerCluster.css",
                      "leaflet.markercluster-1.1.0/leaflet.markercluster.js"]


# --- CLI --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["precincts", "hexes", "micro-geos", "turfs"])
def test_map_commands_have_help_with_an_example(cmd: str) -> None:
    result = runner.invoke(app, ["map", cmd, "--help"])
    assert result.exit_code == 0
    assert f"Example: geo-segment map {cmd}" in result.output


def test_cli_writes_maps_and_reports_errors(tmp_path: Path) -> None:
    grid_precincts().to_parquet(tmp_path / "precincts.parquet")
    grid_cells().to_parquet(tmp_path / "cells.parquet")
    turfs, routes, doors = turf_inputs()
    turfs.to_parquet(tmp_path / "turfs.parquet")
    doors.to_parquet(tmp_path / "doors.parquet")
    out = tmp_path / "p.html"
    result = runner.invoke(app, ["map", "precincts", str(tmp_path / "precincts.parquet"), "--out", str(out),
                                 "--measure", "turnout_last_general", "--scheme", "user", "--bins", "0.6,0.8",
                                 "--data-date", "2026-01-02"])
    assert result.exit_code == 0, result.output
    html = read(out)
    assert "Data as of 2026-01-02" in html and "<script src=" not in html
    assert re.search(r"wrote .*p\.html \(\d+\.\d\d MB\)", result.output)
    bad = runner.invoke(app, ["map", "hexes", str(tmp_path / "cells.parquet"), "--resolution", "8"])
    assert bad.exit_code == 3 and bad.output.startswith("error: the cells are not at the requested H3 resolution")
    refused = runner.invoke(app, ["map", "turfs", str(tmp_path / "turfs.parquet"), "--doors",
                                  str(tmp_path / "doors.parquet"), "--door-field", "last_name", "--out",
                                  str(tmp_path / "t")])
    assert refused.exit_code == 3 and "personal door fields" in refused.output
    assert not (tmp_path / "t").exists()
    missing = runner.invoke(app, ["map", "micro-geos", str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 4 and "micro_geos file not found" in missing.output


# --- turf pages at scale: prepared once, one template per page shape ------------------------------------------

def _door_rows_of(html: str) -> list[list[Any]]:
    found = re.findall(r"var gs_doors_[0-9a-f]+_rows = (\[.*?\]);\n", html, re.S)
    return [row for blob in found for row in json.loads(blob)]


def test_turf_page_holds_its_own_data_like_the_folium_build(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    written = turf_maps(turfs, routes, doors, out_dir=tmp_path, door_fields=["household_id"])
    maps = turf_maps(turfs, routes, doors, door_fields=["household_id"])  # folium Maps, built one by one
    for tid in ("T01", "T 02/<b>"):
        page = read(written[tid])
        built = maps[tid].get_root().render()
        blobs = data_blobs(page)
        for f in blobs[0]["features"]:  # the link and search keys, shared with the map of all turfs
            assert f["properties"].pop("u") == written[tid].name
            assert f["properties"].pop("t") == html_escape(tid)
        assert blobs == data_blobs(built)
        assert _door_rows_of(page) == _door_rows_of(built)
        assert len(_door_rows_of(page)) == 3 and {r[3] for r in _door_rows_of(page)} == {html_escape(tid)}
        assert f"<title>Turfs: turf {html_escape(tid)}</title>" in page
        assert "gsslot" not in page  # every slot filled
        b = turfs.loc[turfs["turf_id"] == tid].total_bounds.tolist()
        assert f".fitBounds([[{b[1]!r},{b[0]!r}],[{b[3]!r},{b[2]!r}]]," in page
        assert '\\u003ca href=\\"turfs.html\\"\\u003e' in page  # back to the map of all turfs


def _shared_data(html: str) -> dict[str, Any]:
    found = re.findall(r"<script>\nvar GS = (\{.*?\});\n</script>\n<script src=\"assets/gs/", html, re.S)
    assert len(found) == 1
    return dict(json.loads(found[0]))


def test_turf_pages_with_assets_beside_share_their_script(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    inline = turf_maps(turfs, routes, doors, out_dir=tmp_path / "inline")
    beside = turf_maps(turfs, routes, doors, out_dir=tmp_path / "beside", assets_beside=True)
    for tid in ("T01", "T 02/<b>"):
        page, alone = read(beside[tid]), read(inline[tid])
        data = _shared_data(page)
        assert [data["turfs"], data["routes"]] == data_blobs(alone)
        assert data["doors"] == _door_rows_of(alone)
        b = turfs.loc[turfs["turf_id"] == tid].total_bounds.tolist()
        assert data["fit"] == [[b[1], b[0]], [b[3], b[2]]]
        assert "var gs_data_" not in page and len(page) < len(alone) / 2
    scripts = list((tmp_path / "beside" / "assets" / "gs").iterdir())
    again = turf_maps(turfs, routes, doors, out_dir=tmp_path / "beside", assets_beside=True)
    assert read(again["T01"]).count("assets/gs/turf-page-") == 2  # its script and its styles
    assert all(f.is_file() for f in scripts)  # earlier scripts are left for pages that may still use them


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_turf_pages_of_different_shapes(tmp_path: Path) -> None:
    """T01 keeps doors but loses its route; T 02/<b> keeps its route but has no door with coordinates."""
    turfs, routes, doors = turf_inputs()
    routes = routes[routes["turf_id"] != "T01"]
    doors.loc[doors["turf_id"] != "T01", ["lat", "lng"]] = np.nan
    written = turf_maps(turfs, routes, doors, out_dir=tmp_path)
    one, two = read(written["T01"]), read(written["T 02/<b>"])
    assert [len(b["features"]) for b in data_blobs(one)] == [1]  # turf only: no route layer
    assert len(_door_rows_of(one)) == 3 and "Walking routes" not in one
    assert [len(b["features"]) for b in data_blobs(two)] == [1, 1] and _door_rows_of(two) == []
    assert "drive turf" not in one and "drive turf" in two  # the legend entry follows the turf's own flag


def test_a_repeated_turf_id_shares_one_page(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    twice = pd.concat([turfs, turfs.iloc[[0]]], ignore_index=True)
    written = turf_maps(twice, routes, doors, out_dir=tmp_path)
    assert sorted(map(str, written)) == ["T 02/<b>", "T01", "all"]
    assert len(data_blobs(read(written["T01"]))[0]["features"]) == 2


def test_template_syntax_in_a_turf_id_reaches_the_page_as_text(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    for frame in (turfs, routes, doors):
        frame["turf_id"] = frame["turf_id"].replace({"T01": JINJA})
    written = turf_maps(turfs, routes, doors, out_dir=tmp_path)
    page = read(written[JINJA])
    assert "Two 49" not in page and "{{ 7*7 }}" not in page
    assert "<title>Turfs: turf Two &#123;&#123; 7*7 &#125;&#125; &#123;% raw %&#125;</title>" in page
    assert written[JINJA].name == "turf_Two_7_7_raw.html"


def test_map_of_all_turfs_links_each_turf_and_leaves_many_doors_to_them(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import geo_segment.maps.builders as builders

    turfs, routes, doors = turf_inputs()
    small = read(turf_maps(turfs, routes, doors, out_dir=tmp_path / "small")["all"])
    assert len(_door_rows_of(small)) == 6 and "own map (click a turf)" not in small
    assert 'L.DomUtil.create("div", "gs-find")' in small
    props = {f["properties"]["t"]: f["properties"]["u"] for f in data_blobs(small)[0]["features"]}
    assert props == {"T01": "turf_T01.html", "T 02/&lt;b&gt;": "turf_T_02_b.html"}
    monkeypatch.setattr(builders, "DOORS_ALL_MAX", 5)
    written = turf_maps(turfs, routes, doors, out_dir=tmp_path / "big")
    big = read(written["all"])
    assert _door_rows_of(big) == [] and "doors: on each turf\\u0026#x27;s own map (click a turf)" in big
    assert len(_door_rows_of(read(written["T01"]))) == 3  # each turf's map keeps its doors
    plain = turf_maps(turfs, routes, doors)["all"].get_root().render()
    assert '"u":' not in plain and 'L.DomUtil.create("div", "gs-find")' not in plain  # no files, no links


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-1, 4), max_size=40))
def test_group_keeps_every_position_once_in_input_order(keys: list[int]) -> None:
    from geo_segment.maps.layers import _group

    key = np.array(keys, dtype=np.int64)
    groups = _group(key, 5)
    assert len(groups) == 5
    for k, rows in enumerate(groups):
        assert rows.tolist() == [i for i, v in enumerate(keys) if v == k]


def test_door_rows_match_a_plain_json_encoding() -> None:
    from geo_segment.maps.layers import _door_rows

    doors = pd.DataFrame({"turf_id": pd.array(["A<", None, "B", "A<"], dtype="string"),
                          "door_order": pd.array([1, 2, None, 4], dtype="Int64"),
                          "lat": [41.1234567, 41.5, 41.25, np.nan], "lng": [-71.0000004, -71.5, -71.25, -71.0],
                          "note": ["x & y", None, "{{ z }}", "w"]})
    rows, kept = _door_rows(doors, ["note"])
    expected = [[41.123457, -71.0, 1, "A&lt;", "x &amp; y"], [41.5, -71.5, 2, "", None],
                [41.25, -71.25, "", "B", "&#123;&#123; z &#125;&#125;"]]
    assert kept.tolist() == [0, 1, 2]
    assert json.loads("[" + ",".join(rows) + "]") == expected
    assert "<" not in "".join(rows) and "&lt;" not in json.dumps(expected).replace("&lt;", "")


def test_integer_columns_without_a_format_show_as_whole_numbers(tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()  # list_number, doors, people: Int64 columns measure_info does not know
    html = read(turf_maps(turfs, routes, doors, out_dir=tmp_path)["T01"])
    spec = json.loads(re.search(r"var gs_layer_[0-9a-f]+_spec = (\{.*?\});\n", html).group(1))
    fmts = {label: fmt for _, label, fmt in spec["fields"]}
    assert fmts["list number"] == fmts["doors"] == fmts["people"] == "int" and fmts["est minutes"] == "float2"
    props = data_blobs(html)[0]["features"][0]["properties"]
    keys = {label: key for key, label, _ in spec["fields"]}
    assert props[keys["doors"]] == 3 and isinstance(props[keys["doors"]], int)
