"""Printable canvass packets: one HTML page set per turf (header, map with the route, results key, script and
survey bubbles, households separated by a line), and PDFs printed by headless Chromium.

Every value that comes from data (names, addresses, ids, script fields) is HTML-escaped. The map is an inline
SVG drawn from the coordinates (crisp in print, works offline). PDFs are printed in batches: one Chromium launch
prints many packets (each starting on a new page with a named destination) and the batch PDF is split per turf.
"""

from __future__ import annotations

import html
import shutil
import string
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geo_segment import schema as S
from geo_segment.config import TurfsConfig
from geo_segment.errors import GeoSegmentError
from geo_segment.io.atomic import atomic_path, safe_output_path, write_files
from geo_segment.turfs.scripts import fill_all, match_scripts
from geo_segment.turfs.walklists import file_stem

__all__ = ["CHROMIUM_FLAGS", "PacketRenderError", "find_chromium", "packet_sections", "print_pdfs",
           "turf_map_svg", "turf_map_svgs", "write_packet_html", "write_packets"]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-pdf-header-footer")


class PacketRenderError(GeoSegmentError, RuntimeError):
    """Packets could not be printed to PDF (no Chromium, or Chromium failed)."""

    exit_code = 8


_CSS = """
@page { size: letter; margin: 12mm 11mm 12mm 11mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 10pt; color: #000; margin: 0; }
.packet { break-before: page; }
.packet:first-of-type { break-before: auto; }
header.ph { border-bottom: 2px solid #000; padding-bottom: 4px; margin-bottom: 6px; }
.ph .title { font-size: 16pt; font-weight: bold; }
.ph .title a { color: #000; text-decoration: none; }
.ph .stats { font-size: 11pt; margin-top: 2px; }
.ph .flag { font-weight: bold; border: 1.5px solid #000; padding: 0 4px; margin-left: 6px; }
.ph .fill { margin-top: 4px; font-size: 10pt; }
.top { display: flex; gap: 10px; align-items: flex-start; margin-bottom: 6px; }
.top svg { flex: 0 0 58%; border: 1px solid #555; }
.side { flex: 1; font-size: 10pt; }
.side h3 { font-size: 10.5pt; margin: 0 0 2px 0; }
.side table { border-collapse: collapse; margin-bottom: 6px; }
.side td { padding: 0 6px 0 0; vertical-align: top; }
.script { border: 1px solid #000; padding: 3px 5px; margin-bottom: 6px; }
ol.doors { list-style: none; padding: 0; margin: 0; }
li.door { border-bottom: 1px solid #000; padding: 2px 0 3px 0; break-inside: avoid; }
.addr { font-weight: bold; font-size: 11pt; }
.num { display: inline-block; min-width: 2.2em; border: 1.5px solid #000; border-radius: 3px; text-align: center;
       margin-right: 6px; }
.voter { display: flex; justify-content: space-between; margin: 2px 0 0 2.9em; }
.voter .who { flex: 0 0 38%; }
.bubs { white-space: pre; font-size: 10.5pt; }
.say { margin: 2px 0 0 2.9em; font-style: italic; }
.row { display: flex; flex-wrap: wrap; column-gap: 14px; margin: 1px 0 0 2.9em; }
.notes { color: #333; }
"""


def _e(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return html.escape(str(value), quote=True)


def turf_map_svg(
    polygon: Any, route: Any, door_lng: Any, door_lat: Any, labels: Sequence[Any],
    *, width: int = 600, height: int = 380,
) -> str:
    """An inline SVG of the turf: its polygon, the walking route and numbered doors, with a 100 m scale bar.

    Coordinates are EPSG:4326, drawn in a local equirectangular projection (north up). One turf of
    :func:`turf_map_svgs`.
    """
    n = len(np.asarray(door_lng))
    return turf_map_svgs([polygon], [route], np.zeros(n, dtype=np.int64), door_lng, door_lat, labels,
                         width=width, height=height)[0]


def _pairs(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> list[str]:
    return ["%.1f,%.1f" % xy for xy in zip(x.tolist(), y.tolist(), strict=True)]  # noqa: UP031 - fast path


def _joined(pieces: list[str], group: npt.NDArray[np.int64], n: int, sep: str) -> list[str]:
    """``sep.join`` of ``pieces`` per group ``0..n-1`` (``group`` sorted); empty text for groups without any."""
    bounds = np.searchsorted(group, np.arange(n + 1)).tolist()
    return [sep.join(pieces[bounds[i]:bounds[i + 1]]) for i in range(n)]


def turf_map_svgs(
    polygons: Sequence[Any], routes: Sequence[Any], door_turf: Any, door_lng: Any, door_lat: Any,
    labels: Sequence[Any], *, width: int = 600, height: int = 380,
) -> list[str]:
    """The maps of many turfs at once (:func:`turf_map_svg` of each), numbers formatted in a few array passes.

    Parameters
    ----------
    polygons, routes
        The turf polygon and walking route (EPSG:4326) of each turf; ``None`` or empty to leave one out.
    door_turf
        The turf (position in ``polygons``) of each door; doors are drawn in their order within a turf.
    door_lng, door_lat, labels
        Door coordinates (EPSG:4326) and the number printed beside each door.

    Returns
    -------
    list of str
        One ``<svg>`` element per turf.
    """
    polys = np.empty(len(polygons), dtype=object)
    polys[:] = list(polygons)
    rts = np.empty(len(routes), dtype=object)
    rts[:] = list(routes)
    n = len(polys)
    order = np.argsort(np.asarray(door_turf, dtype=np.int64), kind="stable")
    dturf = np.asarray(door_turf, dtype=np.int64)[order]
    lng = np.asarray(door_lng, dtype=float)[order]
    lat = np.asarray(door_lat, dtype=float)[order]
    labs = np.empty(len(order), dtype=object)
    labs[:] = list(labels)
    labs = labs[order]
    has_poly = ~shapely.is_missing(polys) & ~shapely.is_empty(polys)
    has_route = ~shapely.is_missing(rts) & ~shapely.is_empty(rts)
    dbound = np.searchsorted(dturf, np.arange(n + 1)).tolist()
    ky = 110_540.0
    pad = 14.0
    # the frame of each turf: bounds of its polygon and route, metres per degree at its doors' mean latitude
    par = np.zeros((n, 6))  # minx, miny, kx, scale, ox, oy
    # the bounds of the polygon and route together (those of their union: its vertices are theirs, and where they
    # cross, points on their edges, so never beyond them; missing and empty geometries have NaN bounds)
    pb, rb = shapely.bounds(polys), shapely.bounds(rts)
    both = np.column_stack([np.fmin(pb[:, :2], rb[:, :2]), np.fmax(pb[:, 2:], rb[:, 2:])]).tolist()
    has_any = (has_poly | has_route).tolist()
    for i in range(n):
        lo, la = lng[dbound[i]:dbound[i + 1]], lat[dbound[i]:dbound[i + 1]]
        lat0 = float(np.nanmean(la)) if len(la) else 0.0
        kx = 111_320.0 * np.cos(np.radians(lat0))
        if has_any[i]:
            minx, miny, maxx, maxy = both[i]
        else:
            minx, miny, maxx, maxy = float(lo.min()), float(la.min()), float(lo.max()), float(la.max())
        wm = max((maxx - minx) * kx, 50.0)
        hm = max((maxy - miny) * ky, 50.0)
        scale = min((width - 2 * pad) / wm, (height - 2 * pad) / hm)
        ox = pad + ((width - 2 * pad) - wm * scale) / 2
        oy = pad + ((height - 2 * pad) - hm * scale) / 2
        par[i] = (minx, miny, kx, scale, ox, oy)

    def xy(t: npt.NDArray[np.int64], lon: npt.NDArray[np.float64],
           la: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        p = par[t]
        return p[:, 4] + (lon - p[:, 0]) * p[:, 2] * p[:, 3], height - (p[:, 5] + (la - p[:, 1]) * ky * p[:, 3])

    # polygons: one <polygon> per part, drawn from its exterior ring
    parts, pidx = shapely.get_parts(polys[has_poly], return_index=True)
    part_turf = np.flatnonzero(has_poly)[pidx]
    coords, cidx = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    px, py = xy(part_turf[cidx], coords[:, 0], coords[:, 1])
    ring_pts = _joined(_pairs(px, py), cidx, len(parts), " ")
    poly_el = [f'<polygon points="{pts}" fill="#f1f1f1" stroke="#000" stroke-width="1.6" stroke-dasharray="6 3"/>'
               for pts in ring_pts]
    poly_html = _joined(poly_el, part_turf, n, "")
    # routes: the polyline and a START circle at its first point
    route_turf = np.flatnonzero(has_route)
    coords, ridx = shapely.get_coordinates(rts[has_route], return_index=True)
    rx, ry = xy(route_turf[ridx], coords[:, 0], coords[:, 1])
    route_pts = _joined(_pairs(rx, ry), ridx, len(route_turf), " ")
    first = np.searchsorted(ridx, np.arange(len(route_turf)))
    route_html = [""] * n
    for k, t in enumerate(route_turf.tolist()):
        a, b = float(rx[first[k]]), float(ry[first[k]])
        route_html[t] = (f'<polyline points="{route_pts[k]}" fill="none" stroke="#1f5fbf" stroke-width="2.2" '
                         f'stroke-linejoin="round"/><circle cx="{a:.1f}" cy="{b:.1f}" r="7" fill="none" '
                         f'stroke="#0a7d2c" stroke-width="2.5"/><text x="{a + 9:.1f}" y="{b - 8:.1f}" font-size="12" '
                         'font-weight="bold" fill="#0a7d2c">START</text>')
    # doors: a dot each, and the number of the first door in each small area (keeps numbers readable)
    dx, dy = xy(dturf, lng, lat)
    cell = pd.DataFrame({"t": dturf, "cx": np.floor_divide(dx, 14).astype(np.int64),
                         "cy": np.floor_divide(dy, 11).astype(np.int64)})
    labelled = ~cell.duplicated(keep="first").to_numpy()
    text = np.full(len(dx), "", dtype=object)
    tx, ty = (dx[labelled] + 3.5).tolist(), (dy[labelled] - 3).tolist()
    # (whole numbers, the door numbers, need no escaping)
    lab_text = [str(lab) if type(lab) is int else _e(lab) for lab in labs[labelled].tolist()]
    text[labelled] = [f'<text x="{a:.1f}" y="{b:.1f}" font-size="10" fill="#000">{lab}</text>'
                      for a, b, lab in zip(tx, ty, lab_text, strict=True)]
    dots = [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.6" fill="#000"/>{t}'
            for a, b, t in zip(dx.tolist(), dy.tolist(), text.tolist(), strict=True)]
    door_html = _joined(dots, dturf, n, "")
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'role="img" aria-label="turf map"><rect width="{width}" height="{height}" fill="#fff"/>')
    tail = (f'<text x="{pad}" y="{height - 12}" font-size="11">100 m</text>'
            f'<text x="{width - 22}" y="22" font-size="15" font-weight="bold">N↑</text></svg>')
    out = []
    for i in range(n):
        bar = 100.0 * par[i, 3]
        out.append(f'{head}{poly_html[i]}{route_html[i]}{door_html[i]}<line x1="{pad}" y1="{height - 8}" '
                   f'x2="{pad + bar:.1f}" y2="{height - 8}" stroke="#000" stroke-width="3"/>{tail}')
    return out


def _minutes(m: float) -> str:
    m = int(round(float(m)))
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


def _bubbles(options: Iterable[str]) -> str:
    # one text run per row of bubbles: Chromium prints it several times faster than one element per bubble
    return '<span class="bubs">' + "  ".join("\u25cb\u202f" + _e(o) for o in options) + "</span>"



def packet_sections(
    turfs: pd.DataFrame,
    routes: pd.DataFrame,
    doors: pd.DataFrame,
    rows: pd.DataFrame,
    *,
    config: TurfsConfig | None = None,
) -> dict[str, str]:
    """The HTML ``<section>`` of every turf's packet, keyed by turf id.

    Built for all turfs at once: the household blocks from one pass over the walk-list rows (households are
    runs of rows, their text built column-wise in Arrow), the maps by :func:`turf_map_svgs`, then one f-string
    per turf.

    Parameters
    ----------
    turfs, routes, doors
        From :func:`geo_segment.turfs.cut_turfs`.
    rows
        Walk list rows (:func:`geo_segment.turfs.walklists.walklist_rows`), one per voter in walking order.
    config
        ``script``, ``scripts`` (by segment), ``survey`` and ``result_codes``.
    """
    return {tid: head + blocks.decode("utf-8") + _SECTION_END
            for tid, (head, blocks) in _packet_pieces(turfs, routes, doors, rows, config=config).items()}


def write_packet_html(
    turfs: pd.DataFrame,
    routes: pd.DataFrame,
    doors: pd.DataFrame,
    rows: pd.DataFrame,
    out_dir: str | Path,
    *,
    config: TurfsConfig | None = None,
) -> dict[str, Path]:
    """Write ``<out_dir>/<turf_id>.html`` for every turf: the bytes :func:`write_packets` writes for
    :func:`packet_sections`, with the household blocks kept as the UTF-8 bytes they are built in (never decoded
    into text and encoded again).

    Parameters
    ----------
    turfs, routes, doors, rows, config
        As for :func:`packet_sections`.
    out_dir
        The packets folder; every file is written by :func:`geo_segment.io.atomic.write_files` (each atomic, one
        file-system flush for all).

    Returns
    -------
    dict
        Turf id to the path written.
    """
    pieces = _packet_pieces(turfs, routes, doors, rows, config=config)
    names = {tid: f"{file_stem(tid)}.html" for tid in pieces}
    end = (_SECTION_END + _DOCUMENT_END).encode("utf-8")
    written = write_files(out_dir, ((names[tid], _document_start(f"Turf {tid}").encode("utf-8") + head.encode("utf-8")
                                     + blocks + end) for tid, (head, blocks) in pieces.items()))
    return {tid: written[names[tid]] for tid in pieces}


#: what closes a packet section (after the household blocks)
_SECTION_END = "</ol></section>"


def _packet_pieces(
    turfs: pd.DataFrame,
    routes: pd.DataFrame,
    doors: pd.DataFrame,
    rows: pd.DataFrame,
    *,
    config: TurfsConfig | None = None,
) -> dict[str, tuple[str, bytes]]:
    """Every turf's packet section as the text before its household blocks and those blocks (UTF-8 bytes): the
    section is ``head + blocks.decode() + _SECTION_END``."""
    cfg = config or TurfsConfig()
    codes = list(cfg.result_codes.items())
    key_rows = "".join(f"<tr><td><b>{_e(c)}</b></td><td>{_e(label)}</td></tr>" for c, label in codes)
    survey = [(q, [a.strip() for a in answers.split("|") if a.strip()]) for q, answers in cfg.survey.items()]
    survey_key = "".join(f"<div>{_e(q)}</div>" for q, _ in survey)
    door_html = _door_blocks(rows, doors, cfg, [c for c, _ in codes], survey)
    tids = turfs[S.TURF_ID].astype(str).tolist()
    pos_of = {tid: i for i, tid in enumerate(tids)}
    route_of = dict(zip(routes[S.TURF_ID].astype(str), routes.geometry, strict=True))
    d_turf = doors[S.TURF_ID].astype(object).to_numpy()
    d_pos = np.array([pos_of.get(t, -1) if isinstance(t, str) else -1 for t in d_turf], dtype=np.int64)
    d_order = doors[S.DOOR_ORDER].to_numpy(dtype=float, na_value=np.nan)
    keep = np.flatnonzero(d_pos >= 0)
    keep = keep[np.lexsort((d_order[keep], d_pos[keep]))]  # each turf's doors in walking order
    svgs = turf_map_svgs(list(turfs.geometry), [route_of.get(tid) for tid in tids], d_pos[keep],
                         doors[S.LNG].to_numpy(dtype=float)[keep], doors[S.LAT].to_numpy(dtype=float)[keep],
                         doors[S.DOOR_ORDER].astype(object).to_numpy()[keep].tolist())
    side = (f'<div class="side"><h3>Results key</h3><table>{key_rows}</table>'
            f"<h3>Survey</h3>{survey_key}<h3>Walking</h3><div>Start at the green circle; follow the blue "
            "line; door numbers match the list.</div></div>")
    out: dict[str, tuple[str, bytes]] = {}
    cols = [turfs[c].tolist() for c in ("list_number", "doors", "people", "est_minutes", "route_m", "drive_flag")]
    for i, (tid, list_number, n_doors, people, minutes, route_m, drive_flag) in enumerate(zip(tids, *cols,
                                                                                           strict=True)):
        anchor = "t-" + file_stem(tid)
        drive = '<span class="flag">DRIVE: doors far apart</span>' if bool(drive_flag) else ""
        head = (f'<header class="ph"><div class="title"><a href="#{anchor}">Turf {_e(tid)}</a> &middot; '
                f"List {_e(list_number)}</div>"
                f'<div class="stats">{_e(n_doors)} doors &middot; {_e(people)} people &middot; about '
                f"{_e(_minutes(minutes))} &middot; walk {float(route_m) / 1000:.1f} km{drive}</div>"
                '<div class="fill">Canvasser ____________________ Date ________ Start ______ '
                "End ______</div></header>")
        out[tid] = (f'<section class="packet" id="{anchor}">{head}<div class="top">{svgs[i]}{side}</div>'
                    '<ol class="doors">', door_html.get(tid, b""))
    return out


_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;"))


def _esc_arrow(values: Any) -> Any:
    """:func:`html.escape` of every value (missing values become empty text) as an Arrow ``large_string`` array:
    the five replaces (``&`` first), on the values that hold one of the characters only."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from geo_segment._vector import arrow_str

    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    arr = pc.fill_null(arrow_str(s.astype("string")), pa.scalar("", type=pa.large_string()))
    hit = pc.match_substring_regex(arr, "[&<>\"']")
    if not pc.any(hit).as_py():
        return arr
    sub = pc.filter(arr, hit)
    for old, new in _ESCAPES:
        sub = pc.replace_substring(sub, old, new)
    return pc.replace_with_mask(arr, hit, sub)


def _join(*pieces: Any) -> Any:
    """The element-wise concatenation of Arrow text arrays and Python strings (broadcast)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    args = [pa.scalar(p, type=pa.large_string()) if isinstance(p, str) else p for p in pieces]
    return pc.binary_join_element_wise(*args, pa.scalar("", type=pa.large_string()))


def _concat_runs(values: Any, starts: npt.NDArray[np.int64]) -> Any:
    """Concatenate consecutive runs of an Arrow text array (each run non-empty) starting at ``starts``: the runs'
    bytes are adjacent already, so only new offsets are made (no copy of the text)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    _, offsets, data = values.buffers()[:3]
    offs = np.frombuffer(offsets, dtype=np.int64)[values.offset:values.offset + len(values) + 1]
    bounds = np.append(np.asarray(starts, dtype=np.int64), len(values))
    new = np.ascontiguousarray(offs[bounds], dtype=np.int64)
    return pa.LargeStringArray.from_buffers(len(bounds) - 1, pa.py_buffer(new), data)


def _text(values: pd.Series) -> npt.NDArray[np.object_]:
    """Values as Python strings, missing values as empty text."""
    return values.astype("string").fillna("").to_numpy(dtype=object)


def _objects(values: pd.Series) -> npt.NDArray[np.object_]:
    """Values as Python objects, missing values as ``None``."""
    return np.asarray(values.astype(object).where(values.notna(), None).to_numpy(), dtype=object)


def _runs(group: npt.NDArray[np.int64], n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row order that puts each group's rows together (keeping their order) and the start of each group."""
    order = np.argsort(group, kind="stable")
    return order, np.searchsorted(group[order], np.arange(n))


def _concat(pieces: Sequence[str] | npt.NDArray[np.object_], starts: npt.NDArray[np.int64]) -> list[str]:
    """Concatenate consecutive runs of strings (each run non-empty) starting at ``starts``."""
    seq = pieces.tolist() if isinstance(pieces, np.ndarray) else list(pieces)
    bounds = [*np.asarray(starts).tolist(), len(seq)]
    return ["".join(seq[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]


def _door_blocks(rows: pd.DataFrame, doors: pd.DataFrame, cfg: TurfsConfig, codes: Sequence[str],
                 survey: Sequence[tuple[str, list[str]]]) -> dict[str, bytes]:
    """The household blocks of every turf (UTF-8), in walking order (vectorized string building).

    A household is a run of rows with the same turf, door number and household id (in order of first row);
    its script is chosen by its lead voter (highest score, the first such row on ties).
    """
    if len(rows) == 0:
        return {}
    r = rows.reset_index(drop=True)
    keys = [S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID]
    hh = np.asarray(r.groupby(keys, sort=False, dropna=False).ngroup().to_numpy(), dtype=np.int64)
    nh = int(hh.max()) + 1
    order, starts = _runs(hh, nh)
    # the voters of each household, in row order (the text built column-wise in Arrow)
    import pyarrow as pa
    import pyarrow.compute as pc

    bubbles = _bubbles(codes)
    take = pa.array(order)
    last, first, age, party = (pc.take(_esc_arrow(r[c]), take) for c in (S.LAST_NAME, S.FIRST_NAME, "age", S.PARTY))
    voters = _concat_runs(_join('<div class="voter"><span class="who">', last, ", ", first, " (", age, ", ", party,
                                f")</span>{bubbles}</div>"), starts)
    # per household: its first row, the first address and unit given, the lead voter
    first_row = order[starts]
    address = _first_given(r[S.ADDRESS], order, hh, nh)
    unit = _first_given(r[S.UNIT], order, hh, nh)
    score = pd.to_numeric(r["score"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    lead_order = np.lexsort((np.arange(len(r)), np.where(np.isnan(score), np.inf, -score), hh))
    lead = lead_order[np.searchsorted(hh[lead_order], np.arange(nh))]
    say = _household_scripts(r, doors, cfg, hh, nh, order, starts, lead)
    unit_esc = _esc_arrow(unit)
    unit_html = pc.if_else(pc.equal(unit_esc, ""), pa.scalar("", type=pa.large_string()), _join(", unit ", unit_esc))
    surv = "".join(f"<span>{_e(q)} {_bubbles(a)}</span>" for q, a in survey)
    tail = f'&rdquo;</div><div class="row">{surv}<span class="notes">Notes: ______________________________</span>' \
        "</div></li>"
    block = _join('<li class="door"><div class="addr"><span class="num">', _esc_arrow(r[S.DOOR_ORDER].iloc[first_row]),
                  "</span>", _esc_arrow(address), unit_html, "</div>", voters, '<div class="say">&ldquo;',
                  _esc_arrow(say), tail)
    # households are numbered in order of first row, so a turf's households keep that order
    turf_of = r[S.TURF_ID].astype(str).to_numpy(dtype=object)[first_row]
    tcode, tnames = pd.factorize(turf_of, sort=False)
    t_order, t_starts = _runs(tcode.astype(np.int64), len(tnames))
    # each turf's blocks: adjacent bytes of the blocks in turf order
    in_order = pc.take(block, pa.array(t_order))
    _, offsets, data = in_order.buffers()[:3]
    offs = np.frombuffer(offsets, dtype=np.int64)[in_order.offset:in_order.offset + len(in_order) + 1]
    at = offs[np.append(t_starts, len(in_order))].tolist()
    view = memoryview(data) if data is not None else memoryview(b"")
    return {str(t): view[at[i]:at[i + 1]].tobytes() for i, t in enumerate(tnames)}


def _first_given(values: pd.Series, order: npt.NDArray[np.int64], group: npt.NDArray[np.int64],
                 n: int) -> npt.NDArray[np.object_]:
    """The first non-missing value of each group (``groupby().first()``), empty text where there is none."""
    given = values.notna().to_numpy(dtype=bool)[order]
    out = np.full(n, "", dtype=object)
    g = group[order][given]
    firsts = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, dtype=bool)
    out[g[firsts]] = [str(x) for x in values.iloc[order[given][firsts]].astype(object).tolist()]
    return out


def _household_scripts(r: pd.DataFrame, doors: pd.DataFrame, cfg: TurfsConfig, hh: npt.NDArray[np.int64], nh: int,
                       order: npt.NDArray[np.int64], starts: npt.NDArray[np.int64],
                       lead: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """The filled-in script of each household: chosen by its lead voter's segment, fields of the household."""
    # (the lead rows of the columns read here only)
    lr = r[[c for c in (S.TURF_ID, "score", S.PARTY, "age", S.FIRST_NAME, S.LAST_NAME, S.ADDRESS, S.UNIT, S.DOOR_ORDER)
            if c in r.columns]].iloc[lead]
    turf = lr[S.TURF_ID].astype(str).to_numpy(dtype=object)
    precinct = np.array([t.rsplit("-", 1)[0] for t in turf], dtype=object)
    lr = lr.reset_index(drop=True)
    seg = pd.DataFrame({"score": pd.to_numeric(lr["score"], errors="coerce"), "party": lr[S.PARTY],
                        "age": lr["age"], "precinct": pd.Series(precinct, dtype=object)})
    templates = match_scripts(seg, cfg.script, cfg.scripts).to_numpy(dtype=object)
    used = {name for text in set(templates.tolist()) for _, name, _, _ in string.Formatter().parse(str(text))
            if name is not None}
    values: dict[str, Sequence[Any] | npt.NDArray[Any]] = {"turf_id": turf, "precinct_id": precinct}
    if "first_name" in used:
        values["first_name"] = [x.title() if isinstance(x, str) else "" for x in _objects(lr[S.FIRST_NAME])]
    if "last_name" in used:
        values["last_name"] = [x.title() for x in _text(lr[S.LAST_NAME])]
    if "address" in used:
        values["address"] = _text(lr[S.ADDRESS])
    if "unit" in used:
        values["unit"] = _text(lr[S.UNIT])
    if "names" in used:
        values["names"] = _household_names(r, hh, nh, order)
    if "street" in used or "house_number" in used:
        # street and house number of the household's door
        dkey = pd.MultiIndex.from_arrays([doors[S.TURF_ID].astype(str).to_numpy(dtype=object),
                                          doors[S.DOOR_ORDER].to_numpy(dtype=float, na_value=np.nan)])
        last = ~dkey.duplicated(keep="last")
        at = dkey[last].get_indexer(pd.MultiIndex.from_arrays(
            [turf, lr[S.DOOR_ORDER].to_numpy(dtype=float, na_value=np.nan)]))
        street = np.append(doors[S.STREET].astype(str).fillna("").to_numpy(dtype=object)[last], "")[at]
        values["street"] = [x.title() for x in street]
        values["house_number"] = np.append(doors[S.HOUSE_NUMBER].astype(str).fillna("").to_numpy(dtype=object)[last],
                                           "")[at]
    return fill_all(templates, values)


def _household_names(r: pd.DataFrame, hh: npt.NDArray[np.int64], nh: int,
                     order: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """``{names}`` of each household: its distinct first names, title-cased, in row order ("Ana and Luis")."""
    first = _objects(r[S.FIRST_NAME])[order]
    named = np.array([isinstance(x, str) and x != "" for x in first], dtype=bool)
    g = hh[order][named]
    titled = np.array([x.title() for x in first[named]], dtype=object)
    fresh = ~pd.DataFrame({"g": g, "n": titled}).duplicated().to_numpy()
    g, titled = g[fresh], titled[fresh]
    lead_name = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, dtype=bool)
    titled = np.where(lead_name, titled, " and " + titled) if len(g) else titled
    names = np.full(nh, "", dtype=object)
    if len(g):
        names[g[lead_name]] = _concat(titled, np.flatnonzero(lead_name))
    return names


_DOCUMENT_END = "</body></html>"


def _document_start(title: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>")


def _document(sections: Iterable[str], title: str) -> str:
    return f"{_document_start(title)}{''.join(sections)}{_DOCUMENT_END}"


def find_chromium(path: str | None = None) -> str | None:
    """The Chromium executable: ``path``, else ``chromium``/``chromium-browser``/``google-chrome`` on PATH."""
    if path is not None:
        return path if Path(path).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(chromium: str, args: Sequence[str], timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="geo_segment_chromium_") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise PacketRenderError(f"Chromium did not finish within {timeout:.0f} s",
                                    fix="print fewer packets per batch (--pdf-batch) or raise the timeout") from None
        if proc.returncode != 0:
            raise PacketRenderError(f"Chromium exited with code {proc.returncode}",
                                    found=proc.stderr.decode("utf-8", "replace")[-300:],
                                    fix="check that Chromium runs headless on this machine")


def print_pdfs(
    sections: Mapping[str, str], out_dir: str | Path, *, chromium: str | None = None, batch: int = 50,
    workers: int = 2, timeout: float = 300.0,
) -> dict[str, Path]:
    """Print each packet section to ``<out_dir>/<turf_id>.pdf`` with headless Chromium: ``batch`` packets per
    launch, ``workers`` launches at a time, each batch PDF split per turf at the packets' named destinations.

    Raises
    ------
    PacketRenderError
        Chromium or pypdf missing, or Chromium failing.
    """
    exe = find_chromium(chromium)
    if exe is None:
        raise PacketRenderError("Chromium was not found", expected="chromium on PATH or --chromium PATH",
                                fix="install Debian's chromium, or write HTML packets only (--no-pdf)")
    try:
        from pypdf import PdfReader, PdfWriter
    except ImportError:  # pragma: no cover - pypdf is a dependency
        raise PacketRenderError("pypdf is not installed", fix="pip install pypdf") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(sections)
    chunks = [ids[i : i + max(1, batch)] for i in range(0, len(ids), max(1, batch))]

    def run(k: int, chunk: list[str], tmp: str) -> dict[str, Path]:
        src = Path(tmp) / f"batch{k}.html"
        pdf = Path(tmp) / f"batch{k}.pdf"
        src.write_text(_document((sections[i] for i in chunk), "packets"), encoding="utf-8")
        _run_chromium(exe, [f"--print-to-pdf={pdf}", src.as_uri()], timeout)
        reader = PdfReader(str(pdf))
        dests = {str(key).lstrip("/"): reader.get_destination_page_number(v)
                 for key, v in reader.named_destinations.items()}
        firsts = [dests.get("t-" + file_stem(i)) for i in chunk]
        if any(f is None for f in firsts):
            raise PacketRenderError("a packet's first page could not be found in the printed batch",
                                    fix="report this with the Chromium version")
        bounds = [int(f) for f in firsts if f is not None] + [len(reader.pages)]
        done: dict[str, Path] = {}
        for i, tid in enumerate(chunk):
            writer = PdfWriter()
            for page in range(bounds[i], max(bounds[i + 1], bounds[i] + 1)):
                writer.add_page(reader.pages[page])
            target = safe_output_path(out, f"{file_stem(tid)}.pdf")
            with atomic_path(target) as t_path, open(t_path, "wb") as fh:
                writer.write(fh)
            done[tid] = target
        return done

    paths: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="geo_segment_packets_") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done in pool.map(lambda kc: run(kc[0], kc[1], tmp), enumerate(chunks)):
            paths.update(done)
    return {tid: paths[tid] for tid in ids}


def write_packets(
    sections: Mapping[str, str], out_dir: str | Path, *, pdf: bool = False, chromium: str | None = None,
    batch: int = 50,
) -> dict[str, dict[str, Path]]:
    """Write ``<out_dir>/<turf_id>.html`` for every packet (and ``.pdf`` with ``pdf=True``).

    The HTML files are written by :func:`geo_segment.io.atomic.write_files` (each atomic, one file-system flush
    for all). Returns ``{"html": {turf_id: path}, "pdf": {turf_id: path}}``.
    """
    out = Path(out_dir)
    names = {tid: f"{file_stem(tid)}.html" for tid in sections}
    written = write_files(out, ((names[tid], _document([section], f"Turf {tid}")) for tid, section in sections.items()))
    html_paths = {tid: written[names[tid]] for tid in sections}
    pdf_paths = print_pdfs(sections, out, chromium=chromium, batch=batch) if pdf and sections else {}
    return {"html": html_paths, "pdf": pdf_paths}
