"""Each map kind opened in headless Chromium: no JavaScript errors, features drawn, legend, escaped tooltips.

CDN requests are answered from the vendored assets (tests/_browser.py); any other request is refused and recorded.
Set GS_SCREENSHOT_DIR to keep a PNG of each map.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from geo_segment.maps import hex_map, micro_geo_map, precinct_map, turf_maps

from ._browser import chromium, open_page, print_pdf, require_chromium, screenshot
from ._map_fixtures import EVIL, JINJA, X0, Y0, D, grid_cells, grid_micro_geos, grid_precincts, turf_inputs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# [name, features drawn, shown at load]; hidden layers are shown first (their features are made on first show)
_LAYERS = """() => { const m = window[Object.keys(window).find(k => window[k] instanceof L.Map)];
    return Object.keys(window).filter(k => window[k] instanceof L.GeoJSON).map(k => {
        const l = window[k], shown = l._map ? 1 : 0;
        if (!shown) m.addLayer(l);
        return [l.options.gsName, l.getLayers().length, shown]; }); }"""
_MAP = "Object.keys(window).find(k => window[k] instanceof L.Map)"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_chromium()
    d = tmp_path_factory.mktemp("maps")
    turfs, routes, doors = turf_inputs()
    out = {
        "precincts": precinct_map(grid_precincts(), out=d / "precincts.html", data_date="2026-01-02"),
        "hexes": hex_map(grid_cells(), out=d / "hexes.html"),
        "micro_geos": micro_geo_map(grid_micro_geos(), grid_precincts(), out=d / "micro_geos.html"),
        "precincts_inline": precinct_map(grid_precincts(), out=d / "inline.html", self_contained=True),
    }
    written = turf_maps(turfs, routes, doors, out_dir=d, door_fields=["household_id"])
    beside = turf_maps(turfs, routes, doors, out_dir=d / "beside", assets_beside=True)
    out["turf_beside"] = beside["T01"]  # type: ignore[assignment]
    out["turfs"] = written["all"]  # type: ignore[assignment]
    out["turf_one"] = written["T01"]  # type: ignore[assignment]
    return out  # type: ignore[return-value]


def _keep(png: Path) -> None:
    keep = os.environ.get("GS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)


def _hover(page: Any, lat: float, lng: float) -> str:
    point = page.evaluate(f"() => {{ const m = window[{_MAP}]; const p = m.latLngToContainerPoint([{lat}, {lng}]);"
                          " return [p.x, p.y]; }")
    page.mouse.move(point[0] - 5, point[1] - 5)
    page.mouse.move(point[0], point[1])
    page.wait_for_selector(".leaflet-tooltip-pane .leaflet-tooltip", timeout=3000)
    return str(page.evaluate("() => document.querySelector('.leaflet-tooltip-pane .leaflet-tooltip').innerHTML"))


@pytest.mark.parametrize(("kind", "expected"), [
    ("precincts", {"Precincts: Turnout, last general election": (6, 1), "Precincts: Registered DEM (share of voters)":
                   (6, 0)}),
    ("hexes", {"H3 cells (res 9): Registered voters": (7, 1), "H3 cells (res 9): Turnout, last general election":
               (7, 0)}),
    ("micro_geos", {"Precinct outlines": (6, 1), "Micro-geographies: Mean engagement score": (2, 1),
                    "Micro-geographies: Registered voters": (2, 0)}),
    ("turfs", {"Turfs": (2, 1), "Walking routes": (2, 1)}),
    ("turf_one", {"Turfs": (1, 1), "Walking routes": (1, 1)}),
    ("turf_beside", {"Turfs": (1, 1), "Walking routes": (1, 1)}),  # data in the page, script in assets/gs/
])
def test_map_opens_without_errors_and_draws_every_feature(browser: Any, maps: dict[str, Path], kind: str,
                                                            expected: dict[str, tuple[int, int]],
                                                            tmp_path: Path) -> None:
    with open_page(maps[kind], browser=browser) as opened:
        assert opened.errors == []
        assert opened.blocked == []
        assert opened.page.locator(".gs-legend").count() == 1  # the shown layer's legend only
        png = tmp_path / f"{kind}.png"
        opened.page.screenshot(path=str(png))
        _keep(png)
        layers = {name: (n, on) for name, n, on in opened.page.evaluate(_LAYERS)}
        assert layers == expected
        assert opened.errors == []
    assert png.stat().st_size > 5_000


def test_precinct_tooltip_shows_the_hostile_name_as_text(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["precincts"], browser=browser) as opened:
        inner = _hover(opened.page, Y0 - D / 2, X0 + D / 2)
        text = opened.page.evaluate("() => document.querySelector('.leaflet-tooltip-pane .leaflet-tooltip').innerText")
        assert EVIL in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in inner
        assert opened.page.locator(".leaflet-tooltip img").count() == 0
        assert "50.0%" in text  # turnout of P1, formatted in the browser
        assert opened.errors == []


def test_template_syntax_in_a_name_shows_as_text(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["precincts"], browser=browser) as opened:
        _hover(opened.page, Y0 - D / 2, X0 + 1.5 * D)  # P2
        text = opened.page.evaluate("() => document.querySelector('.leaflet-tooltip-pane .leaflet-tooltip').innerText")
        assert JINJA in text


def test_suppressed_precinct_tooltip_has_no_numbers(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["precincts"], browser=browser) as opened:
        _hover(opened.page, Y0 - 1.5 * D, X0 + 2.5 * D)  # P6
        text = opened.page.evaluate("() => document.querySelector('.leaflet-tooltip-pane .leaflet-tooltip').innerText")
        assert "P6" in text and "fewer than 11 voters" in text
        assert not any(ch.isdigit() for ch in text.replace("P6", "").replace("11", ""))


def test_switching_measure_swaps_the_legend(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["precincts"], browser=browser) as opened:
        page = opened.page
        assert "Turnout" in page.locator(".gs-legend").inner_text()
        page.get_by_text("Precincts: Registered DEM (share of voters)").click()
        assert page.locator(".gs-legend").count() == 1
        assert "Registered DEM" in page.locator(".gs-legend").inner_text()
        assert opened.errors == []


def test_micro_geo_tooltip_escapes_precinct_ids(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["micro_geos"], browser=browser) as opened:
        page = opened.page
        centre = page.evaluate("""() => { const k = Object.keys(window).find(k => window[k] instanceof L.GeoJSON
            && window[k].options.gsName.startsWith('Micro') && window[k]._map);
            const c = window[k].getLayers()[0].getBounds().getCenter(); return [c.lat, c.lng]; }""")
        inner = _hover(page, centre[0], centre[1])
        assert "P1;&lt;img" in inner
        assert page.locator(".leaflet-tooltip img").count() == 0


def test_turf_map_clusters_doors_and_escapes_turf_ids(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["turfs"], browser=browser) as opened:
        page = opened.page
        n_doors = page.evaluate("""() => Object.keys(window).filter(k => window[k] instanceof L.MarkerClusterGroup)
            .map(k => window[k].getLayers().length)""")
        assert n_doors == [6]
        labels = page.locator(".gs-label").all_inner_texts()
        assert sorted(labels) == ["T 02/<b> · 3 doors", "T01 · 3 doors"]
        assert page.locator(".gs-label b").count() == 0
        assert "drive turf" in page.locator(".gs-legend").inner_text()
        assert opened.errors == []


def test_self_contained_map_needs_no_request(browser: Any, maps: dict[str, Path]) -> None:
    html = maps["precincts_inline"].read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html and "<script src=" not in html
    with open_page(maps["precincts_inline"], browser=browser) as opened:
        assert opened.blocked == [] and opened.errors == []
        assert opened.page.evaluate("() => typeof L.version") == "string"


def test_map_with_assets_beside_needs_no_network(browser: Any, maps: dict[str, Path]) -> None:
    assert '<script src="assets/' in maps["turf_beside"].read_text(encoding="utf-8")
    with open_page(maps["turf_beside"], browser=browser) as opened:
        assert opened.blocked == [] and opened.errors == []
        assert opened.page.evaluate("() => typeof L.markerClusterGroup") == "function"


def test_screenshot_and_pdf_helpers(browser: Any, maps: dict[str, Path], tmp_path: Path) -> None:
    png = screenshot(maps["turf_one"], tmp_path / "turf.png", browser=browser, width=600, height=400)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = print_pdf(maps["turf_one"], tmp_path / "turf.pdf", browser=browser)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_turf_finder_zooms_to_a_turf_whose_popup_opens_its_own_map(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["turfs"], browser=browser) as opened:
        page = opened.page
        assert page.evaluate("() => Array.from(document.querySelectorAll('.gs-find option')).map(o => o.value)") \
            == ["T01", "T 02/<b>"]  # ids decoded from their escaped form, as the organizer typed them
        page.fill(".gs-find input", "T 02/<b>")
        page.press(".gs-find input", "Enter")
        popup = page.locator(".leaflet-popup-content")
        assert "Turf T 02/<b>" in popup.inner_text() and page.locator(".leaflet-popup-content b b").count() == 0
        zoom = page.evaluate(f"() => window[{_MAP}].getZoom()")
        assert zoom >= 14
        link = popup.locator(".gs-link a")
        assert link.get_attribute("href") == "turf_T_02_b.html"
        link.click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/turf_T_02_b.html")
        assert page.locator(".gs-title").inner_text().startswith("Turfs: turf T 02/<b>")
        assert page.locator(".gs-back a").get_attribute("href") == "turfs.html"
        assert opened.errors == [] and opened.blocked == []


def test_a_click_on_a_turf_opens_the_link_to_its_map(browser: Any, maps: dict[str, Path]) -> None:
    with open_page(maps["turfs"], browser=browser) as opened:
        page = opened.page
        point = page.evaluate(f"() => {{ const m = window[{_MAP}]; const p = m.latLngToContainerPoint("
                              f"[{Y0 - 0.8 * D}, {X0 + 0.2 * D}]); return [p.x, p.y]; }}")
        page.mouse.click(point[0], point[1])
        page.wait_for_selector(".leaflet-popup-content .gs-link a", timeout=3000)
        assert page.locator(".leaflet-popup-content .gs-link a").get_attribute("href") == "turf_T01.html"
        assert opened.errors == []


def test_a_turf_without_id_is_drawn_but_not_listed_or_linked(browser: Any, tmp_path: Path) -> None:
    turfs, routes, doors = turf_inputs()
    turfs.loc[1, "turf_id"] = None
    written = turf_maps(turfs, routes, doors, out_dir=tmp_path)
    assert sorted(map(str, written)) == ["T01", "all"]
    with open_page(written["all"], browser=browser) as opened:
        page = opened.page
        assert page.evaluate("() => Array.from(document.querySelectorAll('.gs-find option')).map(o => o.value)") \
            == ["T01"]
        layers = {name: n for name, n, _ in page.evaluate(_LAYERS)}
        assert layers["Turfs"] == 2
        point = page.evaluate(f"() => {{ const m = window[{_MAP}]; const p = m.latLngToContainerPoint("
                              f"[{Y0 - 0.8 * D}, {X0 + D + 0.2 * D}]); return [p.x, p.y]; }}")
        page.mouse.click(point[0], point[1])
        page.wait_for_selector(".leaflet-popup-content", timeout=3000)
        assert page.locator(".leaflet-popup-content .gs-link").count() == 0
        assert opened.errors == []
