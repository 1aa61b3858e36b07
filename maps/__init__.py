"""Folium maps built from geo_segment's outputs (installed as ``geo_segment.maps``).

The map builders arrive with the maps issue; this package exists now so the layering and install layout are fixed.
"""
