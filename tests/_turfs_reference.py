"""The turf outputs as they were written one turf at a time (before the batched writers), kept as references:
the batched walk lists, maps and packets must give exactly the same text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo_segment import schema as S
from geo_segment.config import TurfsConfig
from geo_segment.io.atomic import safe_output_path, write_csv
from geo_segment.turfs.packets import _bubbles, _e, _minutes
from geo_segment.turfs.scripts import fill, match_scripts
from geo_segment.turfs.walklists import file_stem, neutralize


def ref_write_walklists(rows: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """One ``to_csv`` and one atomic write per turf."""
    text_cols = [c for c in rows.columns if pd.api.types.is_string_dtype(rows[c]) or rows[c].dtype == object]
    paths: dict[str, Path] = {}
    for turf_id, frame in rows.groupby(S.TURF_ID, sort=True):
        safe = frame.copy()
        for col in text_cols:
            safe[col] = neutralize(safe[col])
        paths[str(turf_id)] = write_csv(safe, safe_output_path(out_dir, f"{file_stem(str(turf_id))}.csv"))
    return paths


def ref_turf_map_svg(
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


def ref_packet_sections(
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
    street_of = dict(zip(door_keys, doors[S.STREET].astype(str).fillna(""), strict=True))
    number_of = dict(zip(door_keys, doors[S.HOUSE_NUMBER].astype(str).fillna(""), strict=True))
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
    door_html = ref_door_blocks(rows, script_of, [c for c, _ in codes], survey)
    route_of = dict(zip(routes[S.TURF_ID].astype(str), routes.geometry, strict=True))
    out: dict[str, str] = {}
    doors_by_turf = {str(t): g for t, g in doors.groupby(S.TURF_ID, sort=False)}
    t: Any
    for t in turfs.itertuples(index=False):
        tid = str(getattr(t, S.TURF_ID))
        anchor = "t-" + file_stem(tid)
        tdoors = doors_by_turf.get(tid, doors.iloc[:0]).sort_values(S.DOOR_ORDER)
        svg = ref_turf_map_svg(t.geometry, route_of.get(tid), tdoors[S.LNG].to_numpy(), tdoors[S.LAT].to_numpy(),
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


def ref_esc_col(values: pd.Series) -> pd.Series:
    return values.astype(object).map(_e)


def ref_door_blocks(rows: pd.DataFrame, script_of: Mapping[tuple[Any, Any, Any], str], codes: Sequence[str],
                 survey: Sequence[tuple[str, list[str]]]) -> dict[str, str]:
    """The household blocks of every turf, in walking order (vectorized string building)."""
    if len(rows) == 0:
        return {}
    bubbles = _bubbles(codes)
    r = rows.reset_index(drop=True)
    voter = ('<div class="voter"><span class="who">' + ref_esc_col(r[S.LAST_NAME]) + ", " + ref_esc_col(r[S.FIRST_NAME])
             + " (" + ref_esc_col(r["age"]) + ", " + ref_esc_col(r[S.PARTY]) + ")</span>" + bubbles + "</div>")
    keys = [S.TURF_ID, S.DOOR_ORDER, S.HOUSEHOLD_ID]
    frame = r[keys + [S.ADDRESS, S.UNIT]].assign(voter=voter)
    g = frame.groupby(keys, sort=False, dropna=False)
    doors = g.agg(address=(S.ADDRESS, "first"), unit=(S.UNIT, "first"), voters=("voter", "".join)).reset_index()
    unit = doors["unit"].astype(object).where(doors["unit"].notna(), "").astype(str)
    unit_html = np.where(unit != "", ", unit " + ref_esc_col(unit), "")
    say = [script_of.get((t, o, h), "") for t, o, h in zip(doors[S.TURF_ID], doors[S.DOOR_ORDER],
                                                            doors[S.HOUSEHOLD_ID], strict=True)]
    surv = "".join(f"<span>{_e(q)} {_bubbles(a)}</span>" for q, a in survey)
    block = ('<li class="door"><div class="addr"><span class="num">' + ref_esc_col(doors[S.DOOR_ORDER]) + "</span>"
             + ref_esc_col(doors["address"]) + unit_html + "</div>" + doors["voters"]
             + '<div class="say">&ldquo;' + pd.Series(say, index=doors.index).map(_e) + '&rdquo;</div><div class="row">'
             + surv + '<span class="notes">Notes: ______________________________</span></div></li>')
    return {str(t): "".join(b) for t, b in block.groupby(doors[S.TURF_ID].astype(str), sort=False)}
