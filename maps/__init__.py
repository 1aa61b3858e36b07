"""Folium maps built from geo_segment's outputs (installed as ``geo_segment.maps``).

Layers (``add_*_layer``) draw on an existing map; builders (``*_map``, :func:`turf_maps`) return a folium Map or
write its HTML atomically; :func:`build_maps` writes every map of a run folder. See ``docs/maps.md``.
"""

from ._assets import ASSETS, asset_routes, inline_assets
from ._base import classify, finish_map, new_map, save_map, union_bounds
from .builders import build_maps, hex_map, micro_geo_map, precinct_map, turf_maps
from .layers import add_hex_layer, add_micro_geo_layer, add_outline_layer, add_precinct_layer, add_turf_layer

__all__ = ["ASSETS", "add_hex_layer", "add_micro_geo_layer", "add_outline_layer", "add_precinct_layer",
           "add_turf_layer", "asset_routes", "build_maps", "classify", "finish_map", "hex_map", "inline_assets",
           "micro_geo_map", "new_map", "precinct_map", "save_map", "turf_maps", "union_bounds"]
