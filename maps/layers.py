"""Map layers: precinct and hexagon choropleths, micro-geographies, turfs with routes and doors.

Each ``add_*_layer`` takes an existing folium Map (preferably from :func:`~geo_segment.maps.new_map`) and returns the
layers it added. Units under the small-cell threshold are drawn grey with "fewer than 11 voters" and no numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.template import Template

from geo_segment import _h3
from geo_segment import schema as S
from geo_segment.aggregates import K_MIN
from geo_segment.errors import ConfigError, SchemaError
from geo_segment.map_measures import measure_info

from ._assets import MARKERCLUSTER_CSS, MARKERCLUSTER_DEFAULT_CSS, MARKERCLUSTER_JS
from ._base import (
    NO_DATA_FILL,
    OKABE_ITO,
    SUPPRESSED_FILL,
    GeoData,
    GeoLayer,
    Legend,
    add_raw_script,
    classify,
    collection,
    ensure_helpers,
    esc,
    feature_collection,
    features_json,
    field_spec,
    heading_props,
    hidden_mask,
    numeric,
    prepare_geometry,
    safe_json,
)

__all__ = ["DEFAULT_PRECINCT_MEASURES", "TurfPieces", "add_hex_layer", "add_micro_geo_layer", "add_precinct_layer",
           "add_turf_layer", "draw_turf_layers", "turf_page_name", "turf_pieces"]

DEFAULT_PRECINCT_MEASURES = ("turnout_last_general", "mean_score", "share_DEM", "share_REP", "engaged_per_km2",
                             "contact_rate")
_PRECINCT_FIELDS = ("voters", "households", "turnout_last_general", "mean_score", "share_DEM", "share_REP",
                    "share_UNA", "engaged_per_km2", "contact_rate")
_NAME_COLS = ("precinct_name", "name", "PRENAME", "NAME")
_HEX_FIELDS = ("voters", "households", "turnout_last_general", "mean_score", "share_DEM", "share_REP", "contact_rate")
_MICRO_FIELDS = ("voters", "households", "mean_score", "median_score", "expected", "voters_per_km2", "n_precincts",
                 "precinct_ids")
_TURF_FIELDS = ("precinct_id", "list_number", "doors", "people", "est_minutes", "route_km", "drive_flag",
                "within_tolerance")


def _hidden_text(k_min: int) -> str:
    return f"fewer than {k_min} voters: numbers hidden"


def _check_geo(frame: Any, what: str, required: Sequence[str]) -> None:
    problems = []
    if not isinstance(frame, gpd.GeoDataFrame):
        problems.append(f"a GeoDataFrame (found {type(frame).__name__})")
    else:
        crs = frame.crs
        if crs is None or not crs.equals(S.CRS_STORAGE):
            problems.append(f"CRS {S.CRS_STORAGE} (found {crs})")
        missing = [c for c in required if c not in frame.columns]
        if missing:
            problems.append(f"columns {missing} (present: {sorted(map(str, frame.columns))[:30]})")
    if problems:
        raise SchemaError(f"the {what} table cannot be mapped", expected="; ".join(problems),
                          found=f"{what} as given", fix=f"read {what} with geopandas.read_parquet")


def _measures(measure: str | Sequence[str]) -> list[str]:
    return [measure] if isinstance(measure, str) else list(dict.fromkeys(measure))


def _choropleth(
    m: folium.Map,
    frame: gpd.GeoDataFrame,
    *,
    what: str,
    measures: list[str],
    head_cols: Sequence[str],
    fields: Sequence[str],
    scheme: str,
    k: int,
    bins: Sequence[float] | None,
    cmap: str,
    k_min: int,
    simplify_m: float,
    coverage: bool,
    outline: dict[str, Any],
    name_prefix: str,
    show_first: bool,
    overlay: bool,
) -> list[Layer]:
    """Shared body of the precinct, hexagon and micro-geography layers."""
    ensure_helpers(m)
    unknown = [c for c in measures if c not in frame.columns]
    if unknown:
        raise ConfigError(
            f"a measure is not a column of the {what} table", expected=f"numeric columns of {what}",
            found=f"{unknown}", fix="compute rates with geo_segment.map_measures.map_measures(..., voters=...) or "
            "choose another measure")
    hidden = hidden_mask(frame, k_min=k_min)
    geoms = prepare_geometry(frame.geometry.to_numpy(), simplify_m=simplify_m, coverage=coverage)
    props, head_keys = heading_props(frame, head_cols)
    fprops, fspec = field_spec(frame, [*[c for c in ("voters", "households") if c in fields], *measures, *fields])
    props.update(fprops)
    classified = []
    for i, col in enumerate(measures):
        values = numeric(frame, col)
        values[hidden] = np.nan
        cls = classify(values, scheme=scheme, k=k, bins=bins, fmt=measure_info(col).fmt, cmap=cmap)
        props[f"k{i}"] = [None if c < 0 else int(c) for c in cls.classes.tolist()]
        classified.append(cls)
    # hidden rows keep only the ``h*`` identifier keys (feature_collection), so no class index leaks
    data = GeoData(feature_collection(geoms, props, hidden))
    m.add_child(data)
    hidden_style = {"fillColor": SUPPRESSED_FILL, "fillOpacity": 0.45, "dashArray": "3 3"}
    layers: list[Layer] = []
    for i, col in enumerate(measures):
        info = measure_info(col)
        cls = classified[i]
        spec = {
            "head": head_keys, "fields": fspec, "hidden": esc(_hidden_text(k_min)), "key": f"k{i}",
            "palette": cls.palette, "categorical": False, "base": {**outline, "fillOpacity": 0.75},
            "suppressed": hidden_style, "nodata": {"fillColor": NO_DATA_FILL, "fillOpacity": 0.6},
        }
        layer = GeoLayer(data, spec, name=f"{name_prefix}: {info.label}", overlay=overlay,
                         show=show_first and i == 0)
        m.add_child(layer)
        entries = [(c, "", lab) for c, lab in zip(cls.palette, cls.labels, strict=True)]
        if hidden.any():
            entries.append((SUPPRESSED_FILL, "border-style:dashed", _hidden_text(k_min).split(":")[0]))
        if (~hidden & (cls.classes < 0)).any():
            entries.append((NO_DATA_FILL, "", "no data"))
        m.add_child(Legend(layer, f"{name_prefix}: {info.label}", entries, m.get_name()))
        layers.append(layer)
    return layers


def add_precinct_layer(
    m: folium.Map,
    precincts: gpd.GeoDataFrame,
    *,
    measure: str | Sequence[str] = "turnout_last_general",
    scheme: str = "quantiles",
    k: int = 5,
    bins: Sequence[float] | None = None,
    cmap: str = "viridis_r",
    tooltip_fields: Sequence[str] = _PRECINCT_FIELDS,
    name_col: str | None = None,
    k_min: int = K_MIN,
    simplify_m: float = 5.0,
    show: bool = True,
) -> list[Layer]:
    """Add a precinct choropleth per measure (switchable layers sharing one copy of the geometry).

    Parameters
    ----------
    m
        The map to draw on.
    precincts
        ``precincts.parquet`` (EPSG:4326, ``precinct_id``, aggregates, ``suppressed``); rate measures from
        :func:`geo_segment.map_measures.map_measures`.
    measure
        One column or several (each becomes a layer; the first is shown).
    scheme, k, bins
        Classification: ``quantiles``, ``natural_breaks`` (Fisher-Jenks) or ``user`` (``bins`` upper bounds).
    cmap
        A colour-blind-safe sequential matplotlib colormap (``viridis_r``, ``cividis_r``, ``YlGnBu``, ...).
    tooltip_fields
        Aggregate columns shown in the tooltip (when present).
    name_col
        Column with the precinct's name (default: the first of ``precinct_name``, ``name``, ``PRENAME``, ``NAME``).
    k_min
        Precincts flagged ``suppressed`` or with fewer than ``k_min`` voters are greyed out without numbers.
    simplify_m
        Simplification tolerance in metres; all precincts are simplified together so shared borders stay shared.
    show
        Whether the first measure is shown when the map opens.

    Returns
    -------
    list of folium.map.Layer
        One layer per measure.

    Raises
    ------
    SchemaError
        When ``precincts`` is not a GeoDataFrame in EPSG:4326 with ``precinct_id``.
    ConfigError
        When a measure is not a column, or the classification options are invalid.
    """
    _check_geo(precincts, "precincts", [S.PRECINCT_ID])
    names = [name_col] if name_col else [c for c in _NAME_COLS if c in precincts.columns][:1]
    return _choropleth(
        m, precincts, what="precincts", measures=_measures(measure), head_cols=[S.PRECINCT_ID, *names],
        fields=tooltip_fields, scheme=scheme, k=k, bins=bins, cmap=cmap, k_min=k_min, simplify_m=simplify_m,
        coverage=True, outline={"color": "#444444", "weight": 0.8, "opacity": 0.9}, name_prefix="Precincts",
        show_first=show, overlay=False,
    )


def _with_cell_geometry(cells: pd.DataFrame) -> gpd.GeoDataFrame:
    """``cells`` as a GeoDataFrame; polygons built from ``h3_cell`` when it has no geometry."""
    if isinstance(cells, gpd.GeoDataFrame) and cells.geometry.notna().all():
        return cells
    if S.H3_CELL not in cells.columns:
        raise SchemaError("the cells table cannot be mapped", expected=f"a column {S.H3_CELL!r} (uint64)",
                          found=f"columns {sorted(map(str, cells.columns))[:30]}", fix="pass cells.parquet")
    frame = pd.DataFrame(cells).drop(columns=[S.GEOMETRY], errors="ignore")
    polys = _h3.cell_polygons(frame[S.H3_CELL].to_numpy(dtype=np.uint64))
    return gpd.GeoDataFrame(frame, geometry=polys, crs=S.CRS_STORAGE)


def add_hex_layer(
    m: folium.Map,
    cells: pd.DataFrame,
    *,
    measure: str | Sequence[str] = "voters",
    resolution: int | None = None,
    scheme: str = "quantiles",
    k: int = 5,
    bins: Sequence[float] | None = None,
    cmap: str = "viridis_r",
    tooltip_fields: Sequence[str] = _HEX_FIELDS,
    k_min: int = K_MIN,
    show: bool = True,
) -> list[Layer]:
    """Add H3 hexagons coloured by a measure (one switchable layer per measure).

    Parameters
    ----------
    m
        The map to draw on.
    cells
        ``cells.parquet``: ``h3_cell`` (uint64), aggregates, ``suppressed``; polygons are built from the cells
        when the frame has no geometry.
    measure
        One column or several.
    resolution
        The H3 resolution the cells must have (checked; None accepts the cells' own). Aggregates are not
        re-summed to coarser cells because suppressed children have no counts; re-run the join at that
        resolution instead.
    scheme, k, bins, cmap, tooltip_fields, k_min, show
        As in :func:`add_precinct_layer`.

    Returns
    -------
    list of folium.map.Layer

    Raises
    ------
    ConfigError
        When the cells are not all at ``resolution``.
    """
    geo = _with_cell_geometry(cells)
    _check_geo(geo, "cells", [S.H3_CELL])
    res = _h3.cell_resolutions(geo[S.H3_CELL].to_numpy(dtype=np.uint64))
    found = sorted({int(r) for r in np.unique(res)})
    if resolution is not None and found and found != [_h3.check_resolution(resolution)]:
        raise ConfigError("the cells are not at the requested H3 resolution", expected=f"resolution {resolution}",
                          found=f"resolutions {found}",
                          fix="re-run `geo-segment join` with h3_resolution set in the configuration's join section, "
                          "or omit --resolution")
    label = f"H3 cells (res {found[0]})" if len(found) == 1 else "H3 cells"
    geo = geo.assign(h3_hex=_h3.cells_to_hex(geo[S.H3_CELL].to_numpy(dtype=np.uint64)))
    return _choropleth(
        m, geo, what="cells", measures=_measures(measure), head_cols=["h3_hex"], fields=tooltip_fields,
        scheme=scheme, k=k, bins=bins, cmap=cmap, k_min=k_min, simplify_m=0.0, coverage=False,
        outline={"color": "#ffffff", "weight": 0.3, "opacity": 0.8}, name_prefix=label, show_first=show,
        overlay=False,
    )


def add_micro_geo_layer(
    m: folium.Map,
    micro_geos: gpd.GeoDataFrame,
    *,
    measure: str | Sequence[str] = "mean_score",
    scheme: str = "quantiles",
    k: int = 5,
    bins: Sequence[float] | None = None,
    cmap: str = "YlOrRd",
    tooltip_fields: Sequence[str] = _MICRO_FIELDS,
    k_min: int = K_MIN,
    simplify_m: float = 2.0,
    show: bool = True,
) -> list[Layer]:
    """Add micro-geography (cluster) polygons with their stats, coloured by a measure, outlined in black.

    Parameters
    ----------
    m
        The map to draw on.
    micro_geos
        ``micro_geos.parquet``: ``micro_geo``, ``voters``, ``households``, ``mean_score``, ..., ``suppressed``.
    measure, scheme, k, bins, cmap, tooltip_fields, k_min, simplify_m, show
        As in :func:`add_precinct_layer`.

    Returns
    -------
    list of folium.map.Layer
    """
    _check_geo(micro_geos, "micro_geos", [S.MICRO_GEO])
    frame = micro_geos.assign(micro_geo_label="micro-geography " + micro_geos[S.MICRO_GEO].astype("string"))
    return _choropleth(
        m, frame, what="micro_geos", measures=_measures(measure), head_cols=["micro_geo_label"],
        fields=tooltip_fields, scheme=scheme, k=k, bins=bins, cmap=cmap, k_min=k_min, simplify_m=simplify_m,
        coverage=True, outline={"color": "#000000", "weight": 2.0, "opacity": 1.0}, name_prefix="Micro-geographies",
        show_first=show, overlay=False,
    )


def add_outline_layer(m: folium.Map, frame: gpd.GeoDataFrame, *, name: str, id_col: str,
                      simplify_m: float = 5.0) -> Layer:
    """Add plain outlines (no fill, no numbers) of polygons, e.g. precincts under micro-geographies."""
    _check_geo(frame, name, [id_col])
    ensure_helpers(m)
    geoms = prepare_geometry(frame.geometry.to_numpy(), simplify_m=simplify_m, coverage=True)
    props, head = heading_props(frame, [id_col])
    data = GeoData(feature_collection(geoms, props, np.zeros(len(frame), dtype=bool)))
    m.add_child(data)
    spec = {"head": head, "fields": [], "hidden": "", "key": None, "palette": [], "categorical": False,
            "base": {"color": "#666666", "weight": 0.8, "fill": True, "fillOpacity": 0.0, "opacity": 0.9},
            "suppressed": {}, "nodata": {}}
    layer = GeoLayer(data, spec, name=name, overlay=True, show=True)
    m.add_child(layer)
    return layer


# --- turfs ----------------------------------------------------------------------------------------------------

class _DoorCluster(JSCSSMixin, Layer):
    """Doors as clustered numbered markers (leaflet.markercluster), built in the browser from one array."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.markerClusterGroup({maxClusterRadius: 40, disableClusteringAtZoom: 18});
        (function () {
            var doors = {{ this.get_name() }}_rows;
            var fields = {{ this.fields }};
            doors.forEach(function (d) {
                var icon = L.divIcon({className: "gs-door", html: String(d[2]), iconSize: [18, 18]});
                var html = '<div class="gs-tip"><b>Turf ' + d[3] + ' \\u00b7 door ' + d[2] + '</b>';
                if (fields.length) {
                    html += '<table>';
                    fields.forEach(function (f, i) {
                        html += '<tr><th>' + f + '</th><td>' + (d[4 + i] === null ? "" : d[4 + i]) + '</td></tr>';
                    });
                    html += '</table>';
                }
                L.marker([d[0], d[1]], {icon: icon, gsDoor: true}).bindPopup(html + '</div>')
                    .addTo({{ this.get_name() }});
            });
        })();
        {% endmacro %}
    """)
    default_js = [("markerclusterjs", MARKERCLUSTER_JS)]
    default_css = [("markerclustercss", MARKERCLUSTER_CSS), ("markerclusterdefaultcss", MARKERCLUSTER_DEFAULT_CSS)]

    def __init__(self, rows: str, fields: str, *, name: str) -> None:
        super().__init__(name=esc(name), overlay=True, control=True, show=True)
        self._name = "GsDoors"
        self.rows = rows
        self.fields = fields

    def render(self, **kwargs: Any) -> Any:
        add_raw_script(self, self.get_name() + "_rows", f"var {self.get_name()}_rows = {self.rows};")
        return super().render(**kwargs)


class _TurfFinder(MacroElement):
    """A "find a turf" box (top left): pick a turf id, the map zooms to it and opens its popup (with the link)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "topleft"});
        {{ this.get_name() }}.onAdd = function (map) {
            var div = L.DomUtil.create("div", "gs-find");
            div.innerHTML = '<input type="search" placeholder="Find a turf" aria-label="Find a turf" list="'
                + {{ this.get_name()|tojson }} + '_ids"><datalist id="' + {{ this.get_name()|tojson }} + '_ids">'
                + '</datalist>';
            L.DomEvent.disableClickPropagation(div);
            L.DomEvent.disableScrollPropagation(div);
            var input = div.querySelector("input"), list = div.querySelector("datalist");
            var feats = {{ this.data.get_name() }}.features.filter(function (f) { return f.properties.t; });
            var byId = {}, popup = L.popup();
            /* ids are HTML-escaped in Python (quotes too), so they are safe as attribute values */
            list.innerHTML = feats.map(function (f) { return '<option value="' + f.properties.t + '">'; }).join("");
            Array.prototype.forEach.call(list.options, function (o, i) { byId[o.value] = feats[i]; });
            function go() {
                var f = byId[input.value.trim()], layer = {{ this.layer.get_name() }};
                if (!f) return;
                if (!layer._map) map.addLayer(layer);
                layer.eachLayer(function (l) {
                    if (l.feature !== f) return;
                    map.fitBounds(l.getBounds(), {maxZoom: 17});
                    popup.setLatLng(l.getBounds().getCenter())
                        .setContent({{ this.layer.get_name() }}_popup(f.properties)).openOn(map);
                });
            }
            input.addEventListener("change", go);  /* a pick from the list, or Enter */
            return div;
        };
        {{ this.get_name() }}.addTo({{ this.map_name }});
        {% endmacro %}
    """)

    def __init__(self, data: GeoData, layer: GeoLayer, map_name: str) -> None:
        super().__init__()
        self._name = "GsFind"
        self.data = data
        self.layer = layer
        self.map_name = map_name


class _BackLink(MacroElement):
    """A link (top left) from a turf's own map to the map of all turfs."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "topleft"});
        {{ this.get_name() }}.onAdd = function () {
            var div = L.DomUtil.create("div", "gs-back");
            div.innerHTML = {{ this.html|tojson }};
            return div;
        };
        {{ this.get_name() }}.addTo({{ this.map_name }});
        {% endmacro %}
    """)

    def __init__(self, href: str, text: str, map_name: str) -> None:
        super().__init__()
        self._name = "GsBack"
        self.html = f'<a href="{esc(href)}">{esc(text)}</a>'
        self.map_name = map_name


#: turf maps with more turfs than this label them only from zoom LABEL_MIN_ZOOM
LABEL_ALL_MAX = 25
LABEL_MIN_ZOOM = 16
#: a map of all turfs draws the doors only up to this many (beyond, each turf's own map has them)
DOORS_ALL_MAX = 20_000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def turf_slug(turf_id: Any) -> str:
    """A file-name-safe form of a turf id (``T 01/a`` -> ``T_01_a``)."""
    return _SAFE_NAME.sub("_", str(turf_id)).strip("._") or "turf"


def turf_page_name(turf_id: Any) -> str:
    """The file name of a turf's own map: ``turf_<slug>.html`` (see :func:`turf_slug`)."""
    return f"turf_{turf_slug(turf_id)}.html"


def _turf_status(turfs: pd.DataFrame) -> np.ndarray:
    ok = turfs["within_tolerance"].fillna(False).to_numpy(dtype=bool) if "within_tolerance" in turfs.columns \
        else np.ones(len(turfs), dtype=bool)
    return np.where(ok, 0, 1).astype(np.int8)


@dataclass
class TurfPieces:
    """Everything the turf layers draw, for all turfs at once, as JSON texts (script-safe) per row.

    Computed once (geometry simplified together, serialized in one call); a map of all turfs joins every row,
    a turf's own map joins the rows of that turf (``*_key`` are codes into ``ids``, -1 for another id).
    """

    ids: list[str]
    turf_key: np.ndarray
    turf_features: list[str | None]
    turf_bounds: np.ndarray
    drive: np.ndarray
    spec: dict[str, Any]
    route_key: np.ndarray
    route_features: list[str | None]
    rspec: dict[str, Any]
    door_key: np.ndarray
    door_rows: list[str]
    door_fields: str

    _groups: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

    def rows_of(self, which: str) -> list[np.ndarray]:
        """Row positions of ``turfs``/``routes``/``doors`` per id (in ``ids`` order, rows in input order).

        Grouped once (one stable sort) and kept.
        """
        if which not in self._groups:
            key = {"turfs": self.turf_key, "routes": self.route_key, "doors": self.door_key}[which]
            self._groups[which] = _group(key, len(self.ids))
        return self._groups[which]


def _group(key: np.ndarray, n: int) -> list[np.ndarray]:
    """Positions of each code 0..n-1 in ``key`` (a stable sort and one split; -1 left out)."""
    order = np.argsort(key, kind="stable")
    counts = np.bincount(key[key >= 0], minlength=n) if n else np.zeros(0, dtype=np.int64)
    start = int((key < 0).sum())
    return np.split(order[start:], np.cumsum(counts)[:-1]) if n else []


def _codes(values: pd.Series, ids: list[str]) -> np.ndarray:
    return pd.Index(ids).get_indexer(pd.Index(values.astype("string"))).astype(np.int64) if ids else \
        np.full(len(values), -1, dtype=np.int64)


def turf_pieces(
    turfs: gpd.GeoDataFrame,
    routes: gpd.GeoDataFrame | None = None,
    doors: pd.DataFrame | None = None,
    *,
    door_fields: Sequence[str] = (),
    personal: bool = False,
    links: bool = False,
) -> TurfPieces:
    """The turf, route and door data of :func:`add_turf_layer`, computed once for many maps.

    ``links`` adds each turf's page name (``u``, see :func:`turf_page_name`) and its escaped id (``t``) to its
    properties, for the map of all turfs (a click links to the turf's map; the finder searches the ids).
    Checks every input before any work (see :func:`add_turf_layer` for what it raises).
    """
    _check_geo(turfs, "turfs", [S.TURF_ID])
    if routes is not None:
        _check_geo(routes, "routes", [S.TURF_ID])
    if doors is not None:
        _check_doors(doors, door_fields=door_fields, personal=personal)
    frame = turfs.copy()
    if "route_m" in frame.columns:
        frame["route_km"] = numeric(frame, "route_m") / 1000.0
    ids_col = frame[S.TURF_ID].astype("string")
    ids = [str(t) for t in ids_col.dropna().unique().tolist()]
    status = _turf_status(frame)
    drive = frame["drive_flag"].fillna(False).to_numpy(dtype=bool) if "drive_flag" in frame.columns \
        else np.zeros(len(frame), dtype=bool)
    raw = frame.geometry.to_numpy()
    geoms = prepare_geometry(raw, simplify_m=1.0, coverage=True)
    frame = frame.assign(turf_label="Turf " + ids_col)
    props, head = heading_props(frame, ["turf_label"])
    fprops, fspec = field_spec(frame, _TURF_FIELDS)
    props.update(fprops)
    props["k0"] = status.tolist()
    props["d"] = drive.astype(int).tolist()
    doors_n = numeric(frame, "doors") if "doors" in frame.columns else np.full(len(frame), np.nan)
    reps = shapely.point_on_surface(geoms)
    ok = ~shapely.is_missing(reps) & ~shapely.is_empty(reps)
    x = np.round(shapely.get_x(np.where(ok, reps, None)), 6)
    y = np.round(shapely.get_y(np.where(ok, reps, None)), 6)
    props["lp"] = [[b, a] if k else None for a, b, k in zip(x.tolist(), y.tolist(), ok.tolist(), strict=True)]
    escaped = [esc(t) for t in frame[S.TURF_ID].tolist()]
    props["lab"] = [t + ("" if np.isnan(n) else f" · {int(n)} doors")
                    for t, n in zip(escaped, doors_n.tolist(), strict=True)]
    if links:
        props["t"] = [t or None for t in escaped]
        props["u"] = [None if pd.isna(t) else esc(turf_page_name(t)) for t in ids_col.tolist()]
    features = features_json(geoms, props, np.zeros(len(frame), dtype=bool))
    palette = [OKABE_ITO[0], OKABE_ITO[1]]
    spec = {"head": head, "fields": fspec, "hidden": "", "key": "k0", "palette": palette, "categorical": True,
            "base": {"color": "#222222", "weight": 2, "opacity": 1, "fillOpacity": 0.25},
            "suppressed": {}, "nodata": {"fillColor": NO_DATA_FILL}, "dash": "d"}
    rspec = {"head": ["h0"], "fields": [], "hidden": "", "key": None, "palette": [], "categorical": False,
             "base": {"color": "#111111", "weight": 3, "opacity": 0.85, "dashArray": "6 4"},
             "suppressed": {}, "nodata": {}}
    route_key = np.zeros(0, dtype=np.int64)
    route_features: list[str | None] = []
    if routes is not None and len(routes):
        rgeoms = prepare_geometry(routes.geometry.to_numpy(), simplify_m=0.0, coverage=False)
        rprops, _ = heading_props(routes.assign(route_label="Route of turf " + routes[S.TURF_ID].astype("string")),
                                  ["route_label"])
        route_features = features_json(rgeoms, rprops, np.zeros(len(routes), dtype=bool))
        route_key = _codes(routes[S.TURF_ID], ids)
    door_key = np.zeros(0, dtype=np.int64)
    door_rows: list[str] = []
    if doors is not None and len(doors):
        door_rows, kept = _door_rows(doors, door_fields)
        door_key = _codes(doors[S.TURF_ID].iloc[kept], ids)
    return TurfPieces(ids=ids, turf_key=_codes(ids_col, ids), turf_features=features,
                      turf_bounds=shapely.bounds(raw), drive=drive, spec=spec, route_key=route_key,
                      route_features=route_features, rspec=rspec, door_key=door_key, door_rows=door_rows,
                      door_fields=safe_json([esc(measure_info(c).label) for c in door_fields]))


def _check_doors(doors: pd.DataFrame, *, door_fields: Sequence[str], personal: bool) -> None:
    needed = [S.TURF_ID, S.DOOR_ORDER, S.LAT, S.LNG]
    missing = [c for c in [*needed, *door_fields] if c not in doors.columns]
    if missing:
        raise SchemaError("the doors table lacks columns", expected=f"columns {[*needed, *door_fields]}",
                          found=f"missing {missing}", fix="pass the doors table written by the turf stage")
    personal_asked = sorted(set(door_fields) & S.PERSONAL_COLUMNS)
    if personal_asked and not personal:
        raise ConfigError("personal door fields were asked for without personal=True",
                          expected="personal=True (organizers' walk maps only)", found=f"{personal_asked}",
                          fix="pass personal=True (CLI: --personal) or drop these fields")


def _fixed6(values: np.ndarray) -> pa.Array:
    """Numbers as text with exactly 6 decimals (``-71.000000``), vectorized (integer micro-units, no printf)."""
    q = np.rint(values * 1e6).astype(np.int64)
    a = np.abs(q)
    frac = pc.utf8_lpad(pa.array(a % 1_000_000).cast(pa.string()), width=6, padding="0")
    return pc.binary_join_element_wise(pa.array(np.where(q < 0, "-", "")), pa.array(a // 1_000_000).cast(pa.string()),
                                       ".", frac, "")


def _door_rows(doors: pd.DataFrame, door_fields: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """One JSON array text per door with coordinates: ``[lat, lng, order, escaped turf id, *escaped fields]``.

    Coordinates with 6 decimals (about 0.1 m, as the geometry). Returns the texts and the positions of those doors
    in ``doors``.
    """
    lat = numeric(doors, S.LAT)
    lng = numeric(doors, S.LNG)
    kept = np.flatnonzero(np.isfinite(lat) & np.isfinite(lng))
    order = numeric(doors, S.DOOR_ORDER)[kept]
    order_txt = pc.fill_null(pa.array(np.nan_to_num(order).astype(np.int64), mask=np.isnan(order)).cast(pa.string()),
                             '""')
    codes, uniques = pd.factorize(doors[S.TURF_ID].iloc[kept].astype("string"), use_na_sentinel=True)
    id_txt = np.array([*(safe_json(esc(t)) for t in uniques.tolist()), '""'], dtype=object)[codes]
    columns = [_fixed6(lat[kept]), _fixed6(lng[kept]), order_txt, pa.array(id_txt, type=pa.string())]
    for c in door_fields:
        columns.append(pa.array([safe_json(esc(v) or None) for v in doors[c].iloc[kept].tolist()], type=pa.string()))
    if not len(kept):
        return [], kept
    body = pc.binary_join_element_wise(*columns, ",")
    return pc.binary_join_element_wise("[", body, "]", "").to_pylist(), kept


def draw_turf_layers(
    m: folium.Map,
    *,
    turfs_json: str,
    spec: dict[str, Any],
    drive: bool,
    n_turfs: int,
    routes_json: str | None = None,
    rspec: dict[str, Any] | None = None,
    doors_json: str | None = None,
    door_fields: str = "[]",
    labels: bool = True,
    links: bool = False,
    doors_elsewhere: bool = False,
) -> list[Layer]:
    """The turf, route and door layers, legend (and with ``links`` the finder) from prepared JSON texts.

    The texts come from :class:`TurfPieces` (script-safe, every string escaped); ``drive`` adds the legend's
    drive-turf entry; ``doors_elsewhere`` says in the legend that doors are on each turf's own map.
    """
    ensure_helpers(m)
    data = GeoData(turfs_json)
    m.add_child(data)
    palette = spec["palette"]
    if n_turfs > LABEL_ALL_MAX:  # many turfs: thin borders, so the overview is not a black blot
        spec = {**spec, "base": {**spec["base"], "weight": 0.8}}
    # many turfs: labels from street level only, so the overview stays readable
    layer = GeoLayer(data, spec, name="Turfs", overlay=True, show=True, label_key="lab" if labels else None,
                     label_min_zoom=0 if n_turfs <= LABEL_ALL_MAX else LABEL_MIN_ZOOM,
                     link_key="u" if links else None, link_text="Open this turf's map")
    m.add_child(layer)
    entries = [(palette[0], "", "within the balance tolerance"), (palette[1], "", "outside the balance tolerance")]
    if drive:
        entries.append(("#ffffff", "border:2px dashed #222", "drive turf (dashed border)"))
    if doors_elsewhere:
        entries.append(("#ffffff", "border:2px solid #0072B2;border-radius:50%",
                        "doors: on each turf's own map (click a turf)"))
    m.add_child(Legend(layer, "Turfs", entries, m.get_name()))
    if links:
        m.add_child(_TurfFinder(data, layer, m.get_name()))
    layers: list[Layer] = [layer]
    if routes_json is not None:
        rdata = GeoData(routes_json)
        m.add_child(rdata)
        # many turfs: routes start hidden (one tick away) so the overview stays readable and opens fast
        rlayer = GeoLayer(rdata, rspec or {}, name="Walking routes", overlay=True, show=n_turfs <= LABEL_ALL_MAX)
        m.add_child(rlayer)
        layers.append(rlayer)
    if doors_json is not None:
        doors_layer = _DoorCluster(doors_json, door_fields, name="Doors")
        m.add_child(doors_layer)
        layers.append(doors_layer)
    return layers


def add_turf_layer(
    m: folium.Map,
    turfs: gpd.GeoDataFrame,
    routes: gpd.GeoDataFrame | None = None,
    doors: pd.DataFrame | None = None,
    *,
    door_fields: Sequence[str] = (),
    personal: bool = False,
    labels: bool = True,
) -> list[Layer]:
    """Add turf boundaries (coloured by balance status, door counts as labels), walking routes and doors.

    Parameters
    ----------
    m
        The map to draw on.
    turfs
        ``turfs.parquet`` (EPSG:4326): ``turf_id``, ``precinct_id``, ``list_number``, ``doors``, ``people``,
        ``est_minutes``, ``route_m``, ``drive_flag``, ``within_tolerance``, polygon geometry.
    routes
        ``routes.parquet``: ``turf_id`` and the walking route as a LineString (in walking order).
    doors
        The doors table: ``turf_id``, ``door_order``, ``lat``, ``lng`` (and whatever ``door_fields`` names).
    door_fields
        Extra door columns shown in each door's popup (escaped). Personal columns (names, addresses, phones,
        emails, house numbers, units, birth years) need ``personal=True``.
    personal
        Allow personal door fields (organizers' walk maps only; never for analyst maps).
    labels
        Permanent labels with the turf id and door count (with more than 25 turfs, from zoom 16 on; the walking
        routes then start hidden and borders are thinner, so the overview stays readable).

    Returns
    -------
    list of folium.map.Layer
        Turfs, then routes and doors when given.

    Raises
    ------
    ConfigError
        When a personal door field is asked for without ``personal=True``, or a door field is missing.
    """
    p = turf_pieces(turfs, routes, doors, door_fields=door_fields, personal=personal)
    return draw_turf_layers(
        m, turfs_json=collection(p.turf_features), spec=p.spec, drive=bool(p.drive.any()), n_turfs=len(turfs),
        routes_json=collection(p.route_features) if routes is not None and len(routes) else None, rspec=p.rspec,
        doors_json="[" + ",".join(p.door_rows) + "]" if doors is not None and len(doors) else None,
        door_fields=p.door_fields, labels=labels)
