"""The Leaflet assets the maps load, their CDN addresses and the local copies (see ``assets/SOURCES.md``).

A map normally references the CDN addresses (as folium does). ``self_contained`` writes the local copies into the
HTML instead, so the file opens without internet. :func:`asset_routes` maps each CDN address to its local file,
which lets a test browser answer CDN requests from disk.
"""

from __future__ import annotations

import base64
import re
from functools import cache
from pathlib import Path

__all__ = ["ASSETS", "ASSET_DIR", "LEAFLET_CSS", "LEAFLET_JS", "MARKERCLUSTER_CSS", "MARKERCLUSTER_DEFAULT_CSS",
           "MARKERCLUSTER_JS", "asset_routes", "inline_assets"]

ASSET_DIR = Path(__file__).resolve().parent / "assets"

LEAFLET_JS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"
LEAFLET_CSS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css"
_MC = "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/"
MARKERCLUSTER_JS = _MC + "leaflet.markercluster.js"
MARKERCLUSTER_CSS = _MC + "MarkerCluster.css"
MARKERCLUSTER_DEFAULT_CSS = _MC + "MarkerCluster.Default.css"

#: CDN address -> file under ``assets/`` (the same version, from the npm registry's package)
ASSETS: dict[str, str] = {
    LEAFLET_JS: "leaflet-1.9.3/leaflet.js",
    LEAFLET_CSS: "leaflet-1.9.3/leaflet.css",
    MARKERCLUSTER_JS: "leaflet.markercluster-1.1.0/leaflet.markercluster.js",
    MARKERCLUSTER_CSS: "leaflet.markercluster-1.1.0/MarkerCluster.css",
    MARKERCLUSTER_DEFAULT_CSS: "leaflet.markercluster-1.1.0/MarkerCluster.Default.css",
}


def asset_routes() -> dict[str, Path]:
    """CDN address -> local file, for every asset the maps reference (used by the browser tests)."""
    return {url: ASSET_DIR / rel for url, rel in ASSETS.items()}


@cache
def _inline_text(url: str) -> str:
    path = ASSET_DIR / ASSETS[url]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".css":
        def data_uri(match: re.Match[str]) -> str:
            image = path.parent / match.group(1)
            if not image.is_file():  # e.g. the default marker icon, which these maps never use
                return match.group(0)
            return "url(data:image/png;base64," + base64.b64encode(image.read_bytes()).decode("ascii") + ")"

        text = re.sub(r"url\((images/[^)]+\.png)\)", data_uri, text)
    text = re.sub(r"//# sourceMappingURL=\S+", "", text)
    return text.replace("</script", "<\\/script").replace("</style", "<\\/style")


_SCRIPT = re.compile(r'<script src="(?P<url>[^"]+)"></script>')
_LINK = re.compile(r'<link rel="stylesheet" href="(?P<url>[^"]+)"/>')


def assets_beside(html: str, folder: str | Path) -> str:
    """Copy the page's assets into ``folder/assets/`` (once) and point the page at them by relative address.

    For many maps in one folder (a map per turf): one copy of Leaflet instead of one per page.

    Raises
    ------
    ValueError
        When the page references an address that has no local copy.
    """
    from geo_segment.io.atomic import atomic_path

    urls = sorted({m.group("url") for m in (*_SCRIPT.finditer(html), *_LINK.finditer(html))})
    unknown = [u for u in urls if u not in ASSETS]
    if unknown:
        raise ValueError(f"no local copy of {unknown}; add it to geo_segment/maps/assets (see SOURCES.md)")
    for url in urls:
        src = ASSET_DIR / ASSETS[url]
        needed = [src]
        if src.suffix == ".css":
            needed += [src.parent / rel for rel in re.findall(r"url\((images/[^)]+\.png)\)", src.read_text())
                       if (src.parent / rel).is_file()]
        for file in needed:
            target = Path(folder) / "assets" / file.relative_to(ASSET_DIR)
            if not target.is_file() or target.stat().st_size != file.stat().st_size:
                with atomic_path(target) as tmp:
                    tmp.write_bytes(file.read_bytes())
    html = _SCRIPT.sub(lambda m: f'<script src="assets/{ASSETS[m.group("url")]}"></script>', html)
    return _LINK.sub(lambda m: f'<link rel="stylesheet" href="assets/{ASSETS[m.group("url")]}"/>', html)


def inline_assets(html: str) -> str:
    """Replace every ``<script src>`` / stylesheet ``<link>`` of a known CDN address by the local file's text.

    Raises
    ------
    ValueError
        When the page references an address that has no local copy (the map would need internet).
    """
    unknown = sorted({m.group("url") for m in (*_SCRIPT.finditer(html), *_LINK.finditer(html))} - set(ASSETS))
    if unknown:
        raise ValueError(f"no local copy of {unknown}; add it to geo_segment/maps/assets (see SOURCES.md)")
    html = _SCRIPT.sub(lambda m: "<script>" + _inline_text(m.group("url")) + "</script>", html)
    return _LINK.sub(lambda m: "<style>" + _inline_text(m.group("url")) + "</style>", html)
