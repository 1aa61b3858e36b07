"""Printable canvass packets: one HTML page set per turf (header, map with the route, results key, script and
survey bubbles, households separated by a line), and PDFs printed by headless Chromium.

Every value that comes from data (names, addresses, ids, script fields) is HTML-escaped. The map is an inline
SVG drawn from the coordinates (crisp in print, works offline). PDFs are printed in batches: one Chromium launch
prints many packets (each starting on a new page with a named destination) and the batch PDF is split per turf.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo_segment import schema as S
from geo_segment.config import TurfsConfig
from geo_segment.errors import GeoSegmentError
from geo_segment.io.atomic import atomic_path, safe_output_path
from geo_segment.turfs.scripts import fill, match_scripts
from geo_segment.turfs.walklists import file_stem

__all__ = ["CHROMIUM_FLAGS", "PacketRenderError", "find_chromium", "packet_sections", "print_pdfs",
           "turf_map_svg", "write_packets"]

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

    Coordinates are EPSG:4326, drawn in a local equirectangular projection (north up).
    """
    lng = np.asarray(door_lng, dtype=float)
    lat = np.asarray(door_lat, dtype=float)
    lat0 = float(np.nanmean(lat)) if len(lat) else 0.0
    kx = 111_320.0 * np.cos(np.radians(lat0))
    ky = 110_540.0
    geoms = [g for g in (polygon, route) if g is not None and not shapely.is_empty(g)]
    if geoms:
        b = shapely.bounds(shapely.union_all(geoms))
        minx, miny, maxx, maxy = (b[0], b[1], b[2], b[3])
    else:
        minx, miny, maxx, maxy = float(lng.min()), float(lat.min()), float(lng.max()), float(lat.max())
    wm = max((maxx - minx) * kx, 50.0)
    hm = max((maxy - miny) * ky, 50.0)
    pad = 14.0
    scale = min((width - 2 * pad) / wm, (height - 2 * pad) / hm)
    ox = pad + ((width - 2 * pad) - wm * scale) / 2
    oy = pad + ((height - 2 * pad) - hm * scale) / 2

    def xy(lon: np.ndarray, la: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ox + (lon - minx) * kx * scale, height - (oy + (la - miny) * ky * scale)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="turf map">', f'<rect width="{width}" height="{height}" fill="#fff"/>']
    if polygon is not None and not shapely.is_empty(polygon):
        for ring_poly in shapely.get_parts(polygon):
            c = shapely.get_coordinates(shapely.get_exterior_ring(ring_poly))
            px, py = xy(c[:, 0], c[:, 1])
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
            parts.append(f'<polygon points="{pts}" fill="#f1f1f1" stroke="#000" stroke-width="1.6" '
                         'stroke-dasharray="6 3"/>')
    if route is not None and not shapely.is_empty(route):
        c = shapely.get_coordinates(route)
        px, py = xy(c[:, 0], c[:, 1])
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#1f5fbf" stroke-width="2.2" '
                     'stroke-linejoin="round"/>')
        parts.append(f'<circle cx="{px[0]:.1f}" cy="{py[0]:.1f}" r="7" fill="none" stroke="#0a7d2c" '
                     'stroke-width="2.5"/>')
        parts.append(f'<text x="{px[0] + 9:.1f}" y="{py[0] - 8:.1f}" font-size="12" font-weight="bold" '
                     'fill="#0a7d2c">START</text>')
    dx, dy = xy(lng, lat)
    seen: set[tuple[int, int]] = set()
    for a, b, lab in zip(dx, dy, labels, strict=True):
        parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.6" fill="#000"/>')
        key = (int(a // 14), int(b // 11))
        if key not in seen:  # one label per small area keeps numbers readable
            seen.add(key)
            parts.append(f'<text x="{a + 3.5:.1f}" y="{b - 3:.1f}" font-size="10" fill="#000">{_e(lab)}</text>')
    bar = 100.0 * scale
    parts.append(f'<line x1="{pad}" y1="{height - 8}" x2="{pad + bar:.1f}" y2="{height - 8}" stroke="#000" '
                 'stroke-width="3"/>')
    parts.append(f'<text x="{pad}" y="{height - 12}" font-size="11">100 m</text>')
    parts.append(f'<text x="{width - 22}" y="22" font-size="15" font-weight="bold">N↑</text>')
    parts.append("</svg>")
    return "".join(parts)


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

    Parameters
    ----------
    turfs, routes, doors
        From :func:`geo_segment.turfs.cut_turfs`.
    rows
        Walk list rows (:func:`geo_segment.turfs.walklists.walklist_rows`), one per voter in walking order.
    config
        ``script``, ``scripts`` (by segment), ``survey`` and ``result_codes``.
    """
    cfg = config or TurfsConfig()
    codes = list(cfg.result_codes.items())
    key_rows = "".join(f"<tr><td><b>{_e(c)}</b></td><td>{_e(label)}</td></tr>" for c, label in codes)
    survey = [(q, [a.strip() for a in answers.split("|") if a.strip()]) for q, answers in cfg.survey.items()]
    survey_key = "".join(f"<div>{_e(q)}</div>" for q, _ in survey)
    # the script of each household, chosen by its lead voter (highest score), fields filled per household
    r = rows.copy()
    r["_score"] = pd.to_numeric(r["score"], errors="coerce")
    lead = r.sort_values(["_score"], ascending=False, kind="stable").drop_duplicates(
        [S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID])
    seg = pd.DataFrame({"score": lead["_score"], "party": lead[S.PARTY], "age": lead["age"],
                        "precinct": lead[S.TURF_ID].str.rsplit("-", n=1).str[0]}, index=lead.index)
    lead = lead.assign(script_text=match_scripts(seg, cfg.script, cfg.scripts))
    names = r.groupby([S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID], sort=False, dropna=False)[S.FIRST_NAME].agg(
        lambda s: " and ".join(dict.fromkeys(str(x).title() for x in s if isinstance(x, str) and x)))
    door_keys = list(zip(doors[S.TURF_ID].astype(str), doors[S.DOOR_ORDER].astype(int), strict=True))
    street_of = dict(zip(door_keys, doors[S.STREET].fillna("").astype(str), strict=True))
    number_of = dict(zip(door_keys, doors[S.HOUSE_NUMBER].fillna("").astype(str), strict=True))
    script_of: dict[tuple[Any, Any, Any], str] = {}
    for rec in lead.itertuples(index=False):
        k = (getattr(rec, S.TURF_ID), getattr(rec, S.DOOR_ORDER), getattr(rec, S.HOUSEHOLD_ID))
        first = getattr(rec, S.FIRST_NAME)
        values = {"first_name": str(first).title() if isinstance(first, str) else "",
                  "last_name": str(getattr(rec, S.LAST_NAME) or "").title(),
                  "names": names.get(k, ""), "address": getattr(rec, S.ADDRESS), "unit": getattr(rec, S.UNIT),
                  "turf_id": k[0], "precinct_id": str(k[0]).rsplit("-", 1)[0],
                  "street": street_of.get((str(k[0]), int(k[1])), "").title(),
                  "house_number": number_of.get((str(k[0]), int(k[1])), "")}
        script_of[k] = fill(str(rec.script_text), values)
    door_html = _door_blocks(rows, script_of, [c for c, _ in codes], survey)
    route_of = dict(zip(routes[S.TURF_ID].astype(str), routes.geometry, strict=True))
    out: dict[str, str] = {}
    doors_by_turf = {str(t): g for t, g in doors.groupby(S.TURF_ID, sort=False)}
    t: Any
    for t in turfs.itertuples(index=False):
        tid = str(getattr(t, S.TURF_ID))
        anchor = "t-" + file_stem(tid)
        tdoors = doors_by_turf.get(tid, doors.iloc[:0]).sort_values(S.DOOR_ORDER)
        svg = turf_map_svg(t.geometry, route_of.get(tid), tdoors[S.LNG].to_numpy(), tdoors[S.LAT].to_numpy(),
                           tdoors[S.DOOR_ORDER].tolist())
        drive = '<span class="flag">DRIVE: doors far apart</span>' if bool(t.drive_flag) else ""
        head = (f'<header class="ph"><div class="title"><a href="#{anchor}">Turf {_e(tid)}</a> &middot; '
                f"List {_e(t.list_number)}</div>"
                f'<div class="stats">{_e(t.doors)} doors &middot; {_e(t.people)} people &middot; about '
                f"{_e(_minutes(t.est_minutes))} &middot; walk {float(t.route_m) / 1000:.1f} km{drive}</div>"
                '<div class="fill">Canvasser ____________________ Date ________ Start ______ '
                "End ______</div></header>")
        side = (f'<div class="side"><h3>Results key</h3><table>{key_rows}</table>'
                f"<h3>Survey</h3>{survey_key}<h3>Walking</h3><div>Start at the green circle; follow the blue "
                "line; door numbers match the list.</div></div>")
        out[tid] = (f'<section class="packet" id="{anchor}">{head}<div class="top">{svg}{side}</div>'
                    f'<ol class="doors">{door_html.get(tid, "")}</ol></section>')
    return out


def _esc_col(values: pd.Series) -> pd.Series:
    return values.astype(object).map(_e)


def _door_blocks(rows: pd.DataFrame, script_of: Mapping[tuple[Any, Any, Any], str], codes: Sequence[str],
                 survey: Sequence[tuple[str, list[str]]]) -> dict[str, str]:
    """The household blocks of every turf, in walking order (vectorized string building)."""
    if len(rows) == 0:
        return {}
    bubbles = _bubbles(codes)
    r = rows.reset_index(drop=True)
    voter = ('<div class="voter"><span class="who">' + _esc_col(r[S.LAST_NAME]) + ", " + _esc_col(r[S.FIRST_NAME])
             + " (" + _esc_col(r["age"]) + ", " + _esc_col(r[S.PARTY]) + ")</span>" + bubbles + "</div>")
    keys = [S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID]
    frame = r[keys + [S.ADDRESS, S.UNIT]].assign(voter=voter)
    g = frame.groupby(keys, sort=False, dropna=False)
    doors = g.agg(address=(S.ADDRESS, "first"), unit=(S.UNIT, "first"), voters=("voter", "".join)).reset_index()
    unit = doors["unit"].astype(object).where(doors["unit"].notna(), "").astype(str)
    unit_html = np.where(unit != "", ", unit " + _esc_col(unit), "")
    say = [script_of.get((t, o, h), "") for t, o, h in zip(doors[S.TURF_ID], doors[S.DOOR_ORDER],
                                                            doors[S.HOUSEHOLD_ID], strict=True)]
    surv = "".join(f"<span>{_e(q)} {_bubbles(a)}</span>" for q, a in survey)
    block = ('<li class="door"><div class="addr"><span class="num">' + _esc_col(doors[S.DOOR_ORDER]) + "</span>"
             + _esc_col(doors["address"]) + unit_html + "</div>" + doors["voters"]
             + '<div class="say">&ldquo;' + pd.Series(say, index=doors.index).map(_e) + '&rdquo;</div><div class="row">'
             + surv + '<span class="notes">Notes: ______________________________</span></div></li>')
    return {str(t): "".join(b) for t, b in block.groupby(doors[S.TURF_ID].astype(str), sort=False)}


def _document(sections: Iterable[str], title: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>")


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

    Returns ``{"html": {turf_id: path}, "pdf": {turf_id: path}}``.
    """
    out = Path(out_dir)
    html_paths: dict[str, Path] = {}
    for tid, section in sections.items():
        target = safe_output_path(out, f"{file_stem(tid)}.html")
        with atomic_path(target) as tmp:
            tmp.write_text(_document([section], f"Turf {tid}"), encoding="utf-8")
        html_paths[tid] = target
    pdf_paths = print_pdfs(sections, out, chromium=chromium, batch=batch) if pdf and sections else {}
    return {"html": html_paths, "pdf": pdf_paths}
