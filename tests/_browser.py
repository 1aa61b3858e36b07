"""Headless Chromium for tests: open an HTML file offline, collect JavaScript errors, screenshot, print to PDF.

Uses Debian's ``/usr/bin/chromium`` through Playwright's ``executable_path`` (Playwright never downloads a browser
here). Every request for a known CDN asset is answered from the local copy in ``geo_segment/maps/assets``; every
other non-file request is aborted and recorded, so a test can assert the page needed no network.

Usage in a test::

    from tests._browser import chromium, open_page, print_pdf, require_chromium, screenshot

    def test_x(tmp_path):
        require_chromium()                      # skips, saying why, without Chromium
        with chromium() as browser:             # or a module-scoped fixture around chromium()
            with open_page(path, browser=browser) as opened:
                assert opened.errors == [] and opened.blocked == []
                opened.page.evaluate("1 + 1")
            screenshot(path, tmp_path / "x.png", browser=browser)
            print_pdf(path, tmp_path / "x.pdf", browser=browser)
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    """Path of a Chromium binary, or None."""
    for cand in CHROMIUM_CANDIDATES:
        if Path(cand).is_file():
            return cand
    found = shutil.which("chromium")
    return found


def require_chromium() -> str:
    """Skip the calling test, saying why, when Chromium or Playwright is missing; else return Chromium's path."""
    path = chromium_path()
    if path is None:
        pytest.skip("headless Chromium not found (/usr/bin/chromium; Debian package `chromium`): browser tests skipped")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]'): browser tests skipped")
    return path


@dataclass
class OpenPage:
    """A loaded page, the JavaScript errors and console errors seen, and requests that were refused."""

    page: Any
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


def _routes() -> dict[str, Path]:
    from geo_segment.maps import asset_routes

    return asset_routes()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium for several pages (a module-scoped fixture saves a launch per test)."""
    exe = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(html: str | Path, *, browser: Any = None, width: int = 1200, height: int = 800,
              wait_ms: int = 300) -> Iterator[OpenPage]:
    """Open a local HTML file in headless Chromium with CDN assets served locally and no network.

    ``browser`` from :func:`chromium` reuses a running browser; without it one is launched for this page.
    """
    if browser is None:
        with chromium() as own:
            with open_page(html, browser=own, width=width, height=height, wait_ms=wait_ms) as opened:
                yield opened
        return
    routes = _routes()
    ctx = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = ctx.new_page()
        opened = OpenPage(page)

        def handle(route: Any) -> None:
            url = route.request.url
            if url in routes:
                path = routes[url]
                ctype = "text/css" if path.suffix == ".css" else "application/javascript"
                route.fulfill(status=200, body=path.read_bytes(), content_type=ctype)
            elif url.startswith(("file:", "data:", "about:")):
                route.continue_()
            else:
                opened.blocked.append(url)
                route.abort()

        page.route("**/*", handle)
        page.on("pageerror", lambda exc: opened.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: opened.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("dialog", lambda d: (opened.errors.append(f"dialog: {d.message}"), d.dismiss()))
        page.goto(Path(html).resolve().as_uri(), wait_until="load")
        page.wait_for_timeout(wait_ms)
        yield opened
    finally:
        ctx.close()


def screenshot(html: str | Path, png: str | Path, *, browser: Any = None, width: int = 1200, height: int = 800,
               wait_ms: int = 500) -> Path:
    """Screenshot an HTML file (viewport size) to PNG; returns the PNG path."""
    with open_page(html, browser=browser, width=width, height=height, wait_ms=wait_ms) as opened:
        opened.page.screenshot(path=str(png))
    return Path(png)


def print_pdf(html: str | Path, pdf: str | Path, *, browser: Any = None, format: str = "Letter",
              landscape: bool = False, wait_ms: int = 500) -> Path:
    """Print an HTML file to PDF with backgrounds (headless only); returns the PDF path."""
    with open_page(html, browser=browser, wait_ms=wait_ms) as opened:
        opened.page.emulate_media(media="print")
        opened.page.pdf(path=str(pdf), format=format, landscape=landscape, print_background=True)
    return Path(pdf)
