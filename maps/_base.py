"""The pieces every map shares: a lean folium Map, GeoJSON encoding, classification, legend, title, saving.

Safety: every string taken from data (ids, names, layer names, legend labels, the title) is HTML-escaped here in
Python, once, because Leaflet inserts tooltip, popup, layer-control and legend text as HTML. Numbers are formatted
in the browser. Suppressed units carry no numbers at all in the page, only their identifiers and a flag.

Size: geometry goes out as one JSON blob per table (several measure layers share it), coordinates rounded to
6 decimals, properties under short keys (``h0`` heading strings, ``f0`` tooltip fields, ``k0`` class of measure 0,
``_s`` suppressed).
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import mapclassify
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from folium.template import Template
from matplotlib import colormaps
from matplotlib.colors import to_hex

from geo_segment.aggregates import K_MIN
from geo_segment.errors import ConfigError
from geo_segment.io.atomic import atomic_path
from geo_segment.map_measures import measure_info

from ._assets import LEAFLET_CSS, LEAFLET_JS, inline_assets
from ._assets import assets_beside as link_assets_beside

__all__ = ["SCHEMES", "Classified", "classify", "esc", "new_map", "save_map"]

SCHEMES = ("quantiles", "natural_breaks", "user")
SUPPRESSED_FILL = "#9e9e9e"
NO_DATA_FILL = "#f4f4f4"
#: Okabe-Ito colours (safe for the common colour-vision deficiencies), for categories
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_SAMPLE_FOR_BREAKS = 1000


def esc(value: Any) -> str:
    """HTML-escape a value for display (quotes too, and braces); ``None``/NA become an empty string.

    Braces become ``&#123;`` / ``&#125;`` (shown as braces) because folium compiles rendered scripts as Jinja
    templates: a name like ``{{ 7*7 }}`` must reach the page as text, not be evaluated.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True).replace("{", "&#123;").replace("}", "&#125;")


class RawScript(Element):
    """Script text added to the page as is: never compiled as a Jinja template (fast for megabytes of data)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


def add_raw_script(element: Element, name: str, text: str) -> None:
    """Add ``text`` to the page's script section under ``name`` (replacing an earlier render's copy)."""
    figure = element.get_root()
    assert isinstance(figure, Figure)
    figure.script.add_child(RawScript(text), name=name)


class _LeanMap(folium.Map):
    """A folium Map that loads Leaflet only (no jQuery, Bootstrap, Font Awesome or awesome-markers)."""

    default_js = [("leaflet", LEAFLET_JS)]
    default_css = [("leaflet_css", LEAFLET_CSS)]


_CSS = """
<style>
.gs-title{position:absolute;top:8px;left:50%;transform:translateX(-50%);z-index:1000;background:rgba(255,255,255,.92);
 padding:4px 12px;border-radius:4px;font:600 15px/1.3 system-ui,sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3);
 text-align:center;pointer-events:none;max-width:70%}
.gs-title .gs-date{display:block;font-weight:400;font-size:12px;color:#444}
.gs-legend{background:rgba(255,255,255,.94);padding:6px 8px;border-radius:4px;font:12px/1.35 system-ui,sans-serif;
 box-shadow:0 1px 4px rgba(0,0,0,.3);max-width:260px}
.gs-legend b{display:block;margin-bottom:3px}
.gs-legend i{display:inline-block;width:14px;height:12px;margin-right:6px;vertical-align:-1px;border:1px solid #777}
.gs-tip{font:12px/1.3 system-ui,sans-serif}
.gs-tip table{border-collapse:collapse;margin-top:2px}
.gs-tip th{text-align:left;font-weight:400;color:#444;padding:0 8px 0 0}
.gs-tip td{text-align:right;font-variant-numeric:tabular-nums}
.gs-hidden{color:#555;font-style:italic;margin-top:2px}
.gs-label{white-space:nowrap}
.gs-label span{display:inline-block;transform:translate(-50%,-50%);background:rgba(255,255,255,.85);padding:0 3px;
 border-radius:3px;font:600 11px system-ui,sans-serif}
.gs-link{margin-top:4px;font:600 12px system-ui,sans-serif}
.gs-find input{width:15em;padding:3px 6px;font:13px system-ui,sans-serif;border:1px solid #888;border-radius:4px}
.gs-back{background:rgba(255,255,255,.94);padding:3px 8px;border-radius:4px;font:600 12px system-ui,sans-serif;
 box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gs-door{background:#fff;border:2px solid #0072B2;border-radius:50%;text-align:center;
 font:10px/16px system-ui,sans-serif;color:#000}
</style>
"""

_JS = """
function gsFmt(v, f) {
  if (v === null || v === undefined) return "\\u2013";
  if (f === "int") return Math.round(v).toLocaleString("en-US");
  if (f === "pct") return (100 * v).toFixed(1) + "%";
  if (f === "float1") return v.toLocaleString("en-US", {maximumFractionDigits: 1, minimumFractionDigits: 1});
  if (f === "float2") return v.toFixed(2);
  if (f === "bool") return v ? "yes" : "no";
  return String(v);  /* strings arrive HTML-escaped from Python */
}
function gsTip(p, spec) {
  var head = spec.head.map(function (k) { return p[k]; }).filter(function (x) {
    return x !== undefined && x !== null && x !== ""; }).join(" \\u00b7 ");
  var h = '<div class="gs-tip"><b>' + head + '</b>';
  if (p._s) return h + '<div class="gs-hidden">' + spec.hidden + '</div></div>';
  h += '<table>';
  spec.fields.forEach(function (f) {
    if (f[0] in p) h += '<tr><th>' + f[1] + '</th><td>' + gsFmt(p[f[0]], f[2]) + '</td></tr>';
  });
  return h + '</table></div>';
}
function gsStyle(p, spec) {
  var s = Object.assign({}, spec.base);
  if (spec.dash && p[spec.dash]) s.dashArray = "8 5";
  if (p._s) return Object.assign(s, spec.suppressed);
  if (spec.key === null) return s;
  var k = p[spec.key];
  if (spec.categorical) { s.fillColor = spec.palette[k] || spec.nodata.fillColor; return s; }
  if (k === undefined || k === null || k < 0) return Object.assign(s, spec.nodata);
  s.fillColor = spec.palette[k];
  return s;
}
"""


class _Helpers(MacroElement):
    """The CSS and the JavaScript functions the layers call (added once per map)."""

    _template = Template("""
        {% macro header(this, kwargs) %}""" + _CSS + """{% endmacro %}
        {% macro script(this, kwargs) %}""" + _JS + """{% endmacro %}
    """)


def ensure_helpers(m: folium.Map) -> None:
    """Add the shared CSS/JS to ``m`` unless it is there already."""
    if not any(isinstance(child, _Helpers) for child in m._children.values()):
        helpers = _Helpers()
        m.add_child(helpers, name="gs_helpers", index=0)


class GeoData(MacroElement):
    """``var <name> = <GeoJSON FeatureCollection>;`` written once, shared by every layer drawn from it.

    Added as raw script text: folium would otherwise compile the megabytes of JSON as a Jinja template.
    """

    def __init__(self, blob: str) -> None:
        super().__init__()
        self._name = "GsData"
        self.blob = blob

    def render(self, **kwargs: Any) -> Any:
        add_raw_script(self, self.get_name(), f"var {self.get_name()} = {self.blob};")


class GeoLayer(Layer):
    """One Leaflet GeoJSON layer drawn from a :class:`GeoData`, styled and tooltipped by a spec (see ``_JS``).

    Its features are created the first time it is shown, so a map with many hidden measure layers opens fast;
    one tooltip is bound to the whole layer (not one per feature).
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson(null, {
            gsName: {{ this.gs_name|tojson }},
            style: function (f) { return gsStyle(f.properties, {{ this.spec_name }}); }
        });
        {%- if this.tooltip %}
        {{ this.get_name() }}.bindTooltip(function (l) { return gsTip(l.feature.properties, {{ this.spec_name }}); },
                                          {sticky: true});
        {%- endif %}
        {%- if this.link_key %}
        /* a click opens a popup with a link to the feature's own page (a turf's map) */
        function {{ this.get_name() }}_popup(p) {
            var href = p[{{ this.link_key|tojson }}];  /* none for a feature without an id */
            return gsTip(p, {{ this.spec_name }}) + (href ? '<div class="gs-link"><a href="' + href + '">'
                + {{ this.link_text|tojson }} + '</a></div>' : '');
        }
        {{ this.get_name() }}.bindPopup(function (l) { return {{ this.get_name() }}_popup(l.feature.properties); });
        {%- endif %}
        {%- if this.label_key %}
        var {{ this.get_name() }}_labels = L.layerGroup();
        function {{ this.get_name() }}_syncLabels() {
            var layer = {{ this.get_name() }}, labels = {{ this.get_name() }}_labels, map = layer._map;
            if (map && map.getZoom() >= {{ this.label_min_zoom }}) { if (!labels._map) labels.addTo(map); }
            else if (labels._map) labels.remove();
        }
        {{ this.get_name() }}.on("remove", function () { {{ this.get_name() }}_labels.remove(); });
        {%- endif %}
        /* features are made when the layer is first shown: hidden measure layers cost nothing at load */
        {{ this.get_name() }}.on("add", function () {
            var layer = {{ this.get_name() }};
            if (!layer._gsLoaded) {
                layer._gsLoaded = true;
                layer.addData({{ this.data.get_name() }});
                {%- if this.label_key %}
                layer.eachLayer(function (l) {
                    var p = l.feature.properties;
                    if (!p.lp) return;
                    L.marker(p.lp, {interactive: false, keyboard: false, icon: L.divIcon({className: "gs-label",
                        iconSize: null, html: "<span>" + p[{{ this.label_key|tojson }}] + "</span>"})})
                        .addTo({{ this.get_name() }}_labels);
                });
                {%- endif %}
            }
            {%- if this.label_key %}
            layer._map.off("zoomend", {{ this.get_name() }}_syncLabels);
            layer._map.on("zoomend", {{ this.get_name() }}_syncLabels);
            {{ this.get_name() }}_syncLabels();
            {%- endif %}
        });
        {% endmacro %}
    """)

    def __init__(self, data: GeoData, spec: dict[str, Any], *, name: str, overlay: bool, show: bool,
                 tooltip: bool = True, label_key: str | None = None, label_min_zoom: int = 0,
                 link_key: str | None = None, link_text: str = "") -> None:
        """``link_key``: a property holding a relative address (escaped in Python); a click on the feature opens
        a popup with the tooltip's content and a link ``link_text`` (escaped here) to that address."""
        super().__init__(name=esc(name), overlay=overlay, control=True, show=show)
        self._name = "GsLayer"
        self.data = data
        self.gs_name = esc(name)
        self.tooltip = tooltip
        self.label_key = label_key
        self.label_min_zoom = int(label_min_zoom)
        self.link_key = link_key
        self.link_text = esc(link_text)
        self.spec_name = self.get_name() + "_spec"
        self.spec = spec

    def render(self, **kwargs: Any) -> Any:
        add_raw_script(self, self.spec_name, f"var {self.spec_name} = {safe_json(self.spec)};")
        return super().render(**kwargs)


class Legend(MacroElement):
    """A legend control, shown while its layer is on the map."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "bottomright"});
        {{ this.get_name() }}.onAdd = function () {
            var div = L.DomUtil.create("div", "gs-legend");
            div.innerHTML = {{ this.html|tojson }};
            return div;
        };
        (function () {
            var map = {{ this.map_name }}, layer = {{ this.layer.get_name() }}, legend = {{ this.get_name() }};
            function sync() {
                var on = map.hasLayer(layer);
                if (on && !legend._map) legend.addTo(map);
                if (!on && legend._map) legend.remove();
            }
            map.on("layeradd layerremove", sync);
            sync();
        })();
        {% endmacro %}
    """)

    def __init__(self, layer: Layer, title: str, entries: Sequence[tuple[str, str, str]], map_name: str) -> None:
        """``entries`` are (fill colour, border style CSS, label); texts are escaped here."""
        super().__init__()
        self._name = "GsLegend"
        self.layer = layer
        self.map_name = map_name
        rows = "".join(f'<div><i style="background:{c};{b}"></i>{esc(label)}</div>' for c, b, label in entries)
        self.html = f"<b>{esc(title)}</b>{rows}"


def safe_json(obj: Any) -> str:
    """JSON that is safe inside ``<script>``: ``<``, ``>``, ``&`` and line separators written as escapes."""
    return make_script_safe(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


def make_script_safe(text: str) -> str:
    """Escape ``<``, ``>``, ``&``, U+2028 and U+2029 in JSON text (valid JSON, inert inside a script tag)."""
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# --- geometry -------------------------------------------------------------------------------------------------

def prepare_geometry(geoms: np.ndarray, *, simplify_m: float, coverage: bool) -> np.ndarray:
    """Simplify (shared borders kept when ``coverage``) and round coordinates to 6 decimals (about 0.1 m).

    ``coverage=True`` simplifies the polygons together (``shapely.coverage_simplify``), so an edge shared by two
    neighbours is simplified once and no gap or overlap appears between them; ``simplify_m`` is the tolerance in
    metres (converted at about 111 km per degree).
    """
    geoms = np.asarray(geoms, dtype=object)
    if simplify_m > 0 and len(geoms):
        tol = simplify_m / 111_320.0
        ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        out = geoms.copy()
        if coverage:
            out[ok] = shapely.coverage_simplify(geoms[ok], tol)
        else:
            out[ok] = shapely.simplify(geoms[ok], tol, preserve_topology=True)
        geoms = out
    return shapely.transform(geoms, lambda c: np.round(c, 6))


def _round_prop(values: np.ndarray, fmt: str) -> list[Any]:
    if fmt == "int":
        return [None if math.isnan(v) else int(round(v)) for v in values.tolist()]
    digits = {"pct": 4, "float2": 3, "float1": 1}.get(fmt, 4)
    return [None if math.isnan(v) else round(v, digits) for v in values.tolist()]


def numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    """A column as float64 with NaN for missing values."""
    s = frame[col]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64").to_numpy(copy=True)
    return np.array(pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(na_value=np.nan), copy=True)


def features_json(geoms: np.ndarray, props: dict[str, list[Any]], hidden: np.ndarray) -> list[str | None]:
    """One GeoJSON Feature (script-safe JSON text) per row; None for rows without geometry.

    Rows flagged in ``hidden`` keep only properties whose key starts with ``h`` (identifiers) plus ``_s: 1``.
    Geometry is serialized for all rows at once (``shapely.to_geojson``); the per-row pieces can be joined into
    several collections (a county map and a map per turf) without serializing twice.
    """
    keys = list(props)
    cols = [props[k] for k in keys]
    gj = shapely.to_geojson(geoms)
    out: list[str | None] = []
    for i, g in enumerate(gj.tolist()):
        if g is None:
            out.append(None)
            continue
        if hidden[i]:
            p = {k: c[i] for k, c in zip(keys, cols, strict=True) if k.startswith("h") and c[i] is not None}
            p["_s"] = 1
        else:
            p = {k: c[i] for k, c in zip(keys, cols, strict=True) if c[i] is not None}
        out.append(make_script_safe('{"type":"Feature","geometry":' + g + ',"properties":'
                                    + json.dumps(p, ensure_ascii=False, separators=(",", ":")) + "}"))
    return out


def collection(features: Sequence[str | None]) -> str:
    """A FeatureCollection's JSON text from Feature texts (None entries left out)."""
    return '{"type":"FeatureCollection","features":[' + ",".join(f for f in features if f is not None) + "]}"


def feature_collection(geoms: np.ndarray, props: dict[str, list[Any]], hidden: np.ndarray) -> str:
    """FeatureCollection JSON text (script-safe) from geometries and aligned property columns.

    Rows flagged in ``hidden`` keep only properties whose key starts with ``h`` (identifiers) plus ``_s: 1``.
    Rows without geometry are left out.
    """
    return collection(features_json(geoms, props, hidden))


# --- classification -------------------------------------------------------------------------------------------

@dataclass
class Classified:
    """Classes of a measure: ``classes`` (int8, -1 = no value), ``palette`` per class, legend ``labels``."""

    classes: np.ndarray
    palette: list[str]
    labels: list[str]
    bins: list[float] = field(default_factory=list)


def fisher_jenks(values: np.ndarray, k: int) -> list[float]:
    """Upper bounds of the ``k`` classes minimising the within-class sum of squares (Fisher's exact method).

    Dynamic programming over the sorted values with prefix sums, one vectorized ``n x n`` step per class
    (mapclassify's ``FisherJenks`` gives the same classes but loops in Python without numba).
    """
    y = np.sort(np.asarray(values, dtype="float64"))
    n = len(y)
    k = min(k, n)
    s1 = np.concatenate([[0.0], np.cumsum(y)])
    s2 = np.concatenate([[0.0], np.cumsum(y * y)])
    i = np.arange(n + 1)[:, None]  # class starts after i values
    j = np.arange(n + 1)[None, :]  # class ends with value j (exclusive end j)
    with np.errstate(divide="ignore", invalid="ignore"):
        cnt = (j - i).astype("float64")
        ssd = s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / cnt
    ssd = np.where(j > i, np.maximum(ssd, 0.0), np.inf)
    cost = ssd[0].copy()  # one class: values [0, j)
    back = np.zeros((k, n + 1), dtype=np.int64)
    for m in range(1, k):
        total = cost[:, None] + ssd  # best with m classes over [0, i), then one class over [i, j)
        back[m] = np.argmin(total, axis=0)
        cost = total[back[m], np.arange(n + 1)]
    ends = [n]
    for m in range(k - 1, 0, -1):
        ends.append(int(back[m][ends[-1]]))
    ends = sorted(set(ends) - {0})
    return [float(y[e - 1]) for e in ends]


def _fmt_value(v: float, fmt: str) -> str:
    if fmt == "pct":
        return f"{100 * v:.1f}%"
    if fmt == "int":
        return f"{v:,.0f}"
    if fmt == "float1":
        return f"{v:,.1f}"
    return f"{v:.2f}"


def classify(values: np.ndarray, *, scheme: str = "quantiles", k: int = 5, bins: Sequence[float] | None = None,
             fmt: str = "float2", cmap: str = "viridis_r") -> Classified:
    """Classify values with mapclassify and colour the classes from a colour-blind-safe sequential palette.

    ``quantiles`` (equal counts), ``natural_breaks`` (Fisher-Jenks, exact; on an even sample of the sorted
    values when there are more than 1,000) or ``user`` (``bins`` are the upper bounds; values above the last bound
    form one more class). NaN values get class -1 ("no data").
    """
    if scheme not in SCHEMES:
        raise ConfigError("unknown classification scheme", expected=f"one of {list(SCHEMES)}", found=repr(scheme),
                          fix='use scheme="quantiles"')
    if scheme == "user" and not bins:
        raise ConfigError("user classes need their bounds", expected="bins=[b1, b2, ...] (upper bounds)",
                          found=repr(bins), fix='pass bins=... or use scheme="quantiles"')
    if k < 2 and scheme != "user":
        raise ConfigError("a choropleth needs at least 2 classes", found=f"k={k}", fix="use k=5")
    values = np.asarray(values, dtype="float64")
    classes = np.full(len(values), -1, dtype=np.int8)
    ok = np.isfinite(values)
    y = values[ok]
    if scheme == "user":
        upper = sorted(float(b) for b in bins or ())
        if len(y) and y.max() > upper[-1]:
            upper.append(float(y.max()))
    elif len(y) == 0:
        upper = []
    else:
        n_unique = len(np.unique(y))
        kk = min(k, n_unique)
        if kk < 2:
            upper = [float(y.max())]
        elif scheme == "quantiles":
            with warnings.catch_warnings():  # tied values give fewer classes; the legend shows what is left
                warnings.simplefilter("ignore", UserWarning)
                upper = [float(b) for b in mapclassify.Quantiles(y, k=kk).bins]
        else:
            sample = np.sort(y)
            if len(sample) > _SAMPLE_FOR_BREAKS:
                sample = sample[np.linspace(0, len(sample) - 1, _SAMPLE_FOR_BREAKS).round().astype(int)]
            upper = fisher_jenks(sample, kk)
            upper[-1] = float(y.max())
        upper = sorted(set(upper))
    if len(y) and upper:
        cls = mapclassify.UserDefined(y, bins=upper).yb
        classes[ok] = np.asarray(cls, dtype=np.int8)
    n = len(upper)
    cm = colormaps[cmap]
    palette = [to_hex(cm(x)) for x in (np.linspace(0.0, 1.0, n) if n > 1 else [0.6] * n)]
    labels = []
    lo = float(y.min()) if len(y) else float("nan")
    for i, hi in enumerate(upper):
        a = lo if i == 0 else upper[i - 1]
        labels.append(f"{_fmt_value(a, fmt)} – {_fmt_value(hi, fmt)}" if i == 0
                      else f"> {_fmt_value(a, fmt)} – {_fmt_value(hi, fmt)}")
    return Classified(classes, palette, labels, upper)


# --- the map --------------------------------------------------------------------------------------------------

def new_map(*, title: str | None = None, data_date: str | date | None = None, tiles: bool = False,
            prefer_canvas: bool = True) -> folium.Map:
    """An empty map: scale bar, no basemap unless ``tiles`` (OpenStreetMap), a title and the data's date.

    Layers are added by the ``add_*_layer`` functions; finish with :func:`finish_map` (layer control, fit).
    """
    m = _LeanMap(location=[0, 0], zoom_start=2, tiles=None, control_scale=True, prefer_canvas=prefer_canvas)
    m.options["max_zoom"] = 19  # without tiles Leaflet has no maximum, which marker clustering needs
    ensure_helpers(m)
    if tiles:
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap", overlay=True, control=True).add_to(m)
    if title:
        root = m.get_root()
        root.title = esc(title)  # type: ignore[attr-defined]
        note = f'<span class="gs-date">Data as of {esc(data_date)}</span>' if data_date else ""
        root.html.add_child(Element(f'<div class="gs-title">{esc(title)}{note}</div>'),  # type: ignore[attr-defined]
                            name="gs_title")
    return m


def finish_map(m: folium.Map, bounds: Sequence[float] | None) -> folium.Map:
    """Add the layer control and fit the view to ``bounds`` (minx, miny, maxx, maxy)."""
    folium.LayerControl(collapsed=False).add_to(m)
    if bounds is not None and all(np.isfinite(bounds)):
        minx, miny, maxx, maxy = bounds
        m.fit_bounds([[miny, minx], [maxy, maxx]], padding_top_left=(20, 60), padding_bottom_right=(20, 20))
    return m


def union_bounds(*frames: gpd.GeoDataFrame | None) -> list[float] | None:
    """Total bounds of the non-empty frames, or None."""
    boxes = [f.total_bounds for f in frames if f is not None and len(f) and np.isfinite(f.total_bounds).all()]
    if not boxes:
        return None
    arr = np.array(boxes)
    return [float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())]


def save_map(m: folium.Map, path: str | Path, *, self_contained: bool = False, assets_beside: bool = False) -> Path:
    """Write the map's HTML atomically.

    Parameters
    ----------
    m
        The map.
    path
        The HTML file.
    self_contained
        Write the Leaflet assets into the page (opens without internet).
    assets_beside
        Instead, copy the assets once into ``assets/`` next to the page and link them relatively (opens without
        internet; many maps in one folder share one copy). Takes precedence over ``self_contained``.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    text = m.get_root().render()
    if assets_beside:
        text = link_assets_beside(text, Path(path).parent)
    elif self_contained:
        text = inline_assets(text)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def hidden_mask(frame: pd.DataFrame, *, k_min: int = K_MIN) -> np.ndarray:
    """Units to grey out: flagged ``suppressed``, or with a known ``voters`` count under ``k_min``."""
    hidden = np.zeros(len(frame), dtype=bool)
    if "suppressed" in frame.columns:
        hidden |= frame["suppressed"].fillna(True).to_numpy(dtype=bool)
    if "voters" in frame.columns:
        v = numeric(frame, "voters")
        hidden |= np.isfinite(v) & (v < k_min)
    return hidden


def field_spec(frame: pd.DataFrame, fields: Sequence[str]) -> tuple[dict[str, list[Any]], list[list[str]]]:
    """Tooltip properties (``f<i>`` keys) and their spec rows [key, escaped label, fmt] for the present fields."""
    props: dict[str, list[Any]] = {}
    spec: list[list[str]] = []
    for col in dict.fromkeys(fields):
        if col not in frame.columns:
            continue
        key = f"f{len(spec)}"
        s = frame[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            props[key] = [None if pd.isna(v) else bool(v) for v in s.tolist()]
            fmt = "bool"
        elif pd.api.types.is_numeric_dtype(s.dtype):
            fmt = measure_info(col).fmt
            if fmt == "float2" and pd.api.types.is_integer_dtype(s.dtype):  # a count without its own format
                fmt = "int"
            props[key] = _round_prop(numeric(frame, col), fmt)
        else:
            props[key] = [esc(v) or None for v in s.tolist()]
            fmt = "str"
        spec.append([key, esc(measure_info(col).label), fmt])
    return props, spec


def heading_props(frame: pd.DataFrame, cols: Sequence[str]) -> tuple[dict[str, list[Any]], list[str]]:
    """Heading strings (``h<i>`` keys, escaped) kept even for suppressed units: identifiers and names only."""
    props: dict[str, list[Any]] = {}
    keys: list[str] = []
    for col in cols:
        if col in frame.columns:
            key = f"h{len(keys)}"
            props[key] = [esc(v) or None for v in frame[col].tolist()]
            keys.append(key)
    return props, keys
