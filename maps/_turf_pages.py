"""A map per turf without folium per page: one page rendered through folium with slots, filled per turf.

At a million voters a run has about 9,000-12,000 turfs. Building and rendering a folium map for each one (Jinja
compiles every element's template again for every page, and each turf's rows were found by comparing whole tables)
cost most of the maps stage. Every turf's page has the same elements and differs only in its title, its data and
the view it opens on, so the page is rendered once per shape (with or without a route, doors, the drive-turf legend
entry) with unique slot tokens where those go, split at the tokens, and each turf's page is the pieces joined with
its own texts. The texts come from :class:`~geo_segment.maps.layers.TurfPieces` (computed once for all turfs,
script-safe JSON, every string escaped) and never pass through Jinja. The page holds the same data and layers as a
folium build of that turf, plus a link back to ``turfs.html``; with assets beside the pages, its script and styles
(the same for every turf) are shared files in ``assets/gs/`` and the page keeps only its title and data.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import folium
import numpy as np
from branca.element import MacroElement

from geo_segment.io.atomic import atomic_path

from ._assets import assets_beside as link_assets_beside
from ._assets import inline_assets
from ._base import add_raw_script, collection, esc, new_map
from .layers import TurfPieces, _BackLink, draw_turf_layers, turf_page_name

__all__ = ["TurfPageTemplate", "turf_pages"]

_FIT_OPTIONS = '{"paddingTopLeft":[20,60],"paddingBottomRight":[20,20]}'


class _Slot(MacroElement):
    """Raw script text ``text`` at the end of the page's script (a slot token, filled per page)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "GsSlot"
        self.text = text

    def render(self, **kwargs: Any) -> Any:
        add_raw_script(self, self.get_name(), self.text)


class TurfPageTemplate:
    """A turf page split at its slots: ``title`` (the escaped turf id, twice), ``turfs``, ``routes``, ``doors``
    (JSON texts) and ``fit`` (the script line fitting the view).

    Parameters
    ----------
    pieces
        The prepared turf data (its layer specs and door-field labels are built into the page).
    route, doors, drive
        The page's shape: with a route layer, with a door layer, with the legend's drive-turf entry.
    title, data_date, tiles
        As in :func:`~geo_segment.maps.turf_maps`; the page's title is ``"<title>: turf <id>"``.
    folder, self_contained, assets_beside
        Where the pages go and how they reach Leaflet (see :func:`~geo_segment.maps.save_map`).
    back_link
        A link to ``turfs.html`` (the map of all turfs) in the top left corner.
    """

    def __init__(self, pieces: TurfPieces, *, route: bool, doors: bool, drive: bool, title: str,
                 data_date: str | date | None, tiles: bool, folder: Path | None, self_contained: bool,
                 assets_beside: bool, back_link: bool) -> None:
        token = "gsslot" + secrets.token_hex(8)
        m = new_map(title=f"{title}: turf {token}title", data_date=data_date, tiles=tiles)
        draw_turf_layers(m, turfs_json=f"{token}turfs", spec=pieces.spec, drive=drive, n_turfs=1,
                         routes_json=f"{token}routes" if route else None, rspec=pieces.rspec,
                         doors_json=f"{token}doors" if doors else None, door_fields=pieces.door_fields)
        folium.LayerControl(collapsed=False).add_to(m)
        if back_link:
            m.add_child(_BackLink("turfs.html", "\u2190 All turfs", m.get_name()))
        m.add_child(_Slot(f"{token}fit"))
        self.map_name = m.get_name()
        text = m.get_root().render()
        self.script_beside = assets_beside
        if assets_beside:
            assert folder is not None
            text = self._share_script(link_assets_beside(text, folder), token, folder,
                                      ["turfs", *(["routes"] if route else []), *(["doors"] if doors else [])])
        elif self_contained:
            text = inline_assets(text)
        parts = re.split(f"{token}(title|turfs|routes|doors|fit)", text)
        self.literals = parts[0::2]
        self.slots = parts[1::2]
        expected = sorted(["title", "title", "turfs", "fit", *(["routes"] if route else []),
                           *(["doors"] if doors else [])])
        if sorted(self.slots) != expected:  # pragma: no cover - a change in folium's page structure
            raise RuntimeError(f"turf page template has slots {sorted(self.slots)}, expected {expected}")

    def _share_script(self, text: str, token: str, folder: Path, keys: list[str]) -> str:
        """Move the page's script (the same for every turf but its data) into ``assets/gs/turf-page-<hash>.js``.

        The page keeps its data in ``var GS = {...}`` and loads the shared script after it, so a folder of thousands
        of turf pages holds the script once (content-addressed: a changed script gets a new name).
        """
        i = text.rindex("<script>")
        j = text.index("</script>", i)
        body = text[i + len("<script>"):j]
        for key in keys:
            body = body.replace(f"{token}{key}", f"GS.{key}")
        body = body.replace(f"{token}fit", f"if (GS.fit) {{ {self.map_name}.fitBounds(GS.fit, {_FIT_OPTIONS}); }}")
        if token in body:  # pragma: no cover - a slot outside the script would be left unfilled
            raise RuntimeError("turf page template: a data slot outside the page's script")
        name = _shared_file(folder, "js", body)
        data = "var GS = {" + ",".join(f'"{k}":{token}{k}' for k in [*keys, "fit"]) + "};"
        text = (text[:i] + f"<script>\n{data}\n</script>\n<script src=\"{name}\"></script>"
                + text[j + len("</script>"):])
        # the page's own styles (the same on every page) go beside too, in one stylesheet
        head_end = text.index("</head>")
        styles = re.findall(r"<style>(.*?)</style>", text[:head_end], re.S)
        if styles:
            css = _shared_file(folder, "css", "\n".join(styles))
            head = re.sub(r"\s*<style>.*?</style>", "", text[:head_end], flags=re.S)
            text = head + f'\n<link rel="stylesheet" href="{css}"/>\n' + text[head_end:]
        return text

    def fit(self, bounds: np.ndarray) -> str:
        """The ``fit`` slot's text for (minx, miny, maxx, maxy): a script line, or its bounds in ``GS``."""
        ok = bool(np.isfinite(bounds).all())
        minx, miny, maxx, maxy = (float(v) for v in bounds)
        box = f"[[{miny!r},{minx!r}],[{maxy!r},{maxx!r}]]"
        if self.script_beside:
            return box if ok else "null"
        return f"{self.map_name}.fitBounds({box},{_FIT_OPTIONS});" if ok else ""

    def fill(self, values: dict[str, str]) -> str:
        """The page with each slot replaced by ``values[slot]``."""
        out = [self.literals[0]]
        for slot, literal in zip(self.slots, self.literals[1:], strict=True):
            out.append(values[slot])
            out.append(literal)
        return "".join(out)


def _shared_file(folder: Path, suffix: str, text: str) -> str:
    """Write ``text`` once as ``assets/gs/turf-page-<hash>.<suffix>`` under ``folder``; return that address."""
    name = f"assets/gs/turf-page-{hashlib.sha256(text.encode()).hexdigest()[:16]}.{suffix}"
    target = folder / name
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        with atomic_path(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return name


def turf_pages(
    pieces: TurfPieces,
    *,
    title: str = "Turfs",
    data_date: str | date | None = None,
    tiles: bool = False,
    folder: Path | None = None,
    self_contained: bool = False,
    assets_beside: bool = False,
    back_link: bool = True,
) -> Iterator[tuple[str, str, str]]:
    """Every turf's page: yields ``(turf id, file name, HTML)`` in the order of ``pieces.ids``.

    A page holds its turf's rows (several when the id repeats), the routes and doors of that id, and opens fitted
    to its turf's bounds; one template per page shape is rendered (at most eight).
    """
    templates: dict[tuple[bool, bool, bool], TurfPageTemplate] = {}
    turf_rows = pieces.rows_of("turfs")
    route_rows = pieces.rows_of("routes")
    door_rows = pieces.rows_of("doors")
    for k, tid in enumerate(pieces.ids):
        rows = turf_rows[k]
        shape = (len(route_rows[k]) > 0, len(door_rows[k]) > 0, bool(pieces.drive[rows].any()))
        template = templates.get(shape)
        if template is None:
            template = templates[shape] = TurfPageTemplate(
                pieces, route=shape[0], doors=shape[1], drive=shape[2], title=title, data_date=data_date,
                tiles=tiles, folder=folder, self_contained=self_contained, assets_beside=assets_beside,
                back_link=back_link)
        b = pieces.turf_bounds[rows]
        bounds = np.array([np.nanmin(b[:, 0]), np.nanmin(b[:, 1]), np.nanmax(b[:, 2]), np.nanmax(b[:, 3])]) \
            if np.isfinite(b).all(axis=1).any() else np.full(4, np.nan)
        values = {
            "title": esc(tid),
            "turfs": collection([pieces.turf_features[i] for i in rows.tolist()]),
            "routes": collection([pieces.route_features[i] for i in route_rows[k].tolist()]),
            "doors": "[" + ",".join(pieces.door_rows[i] for i in door_rows[k].tolist()) + "]",
            "fit": template.fit(bounds),
        }
        yield tid, turf_page_name(tid), template.fill(values)
