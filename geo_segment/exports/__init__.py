"""Audience exports: geofences for ad platforms and hashed customer lists, behind privacy and political-ads
guardrails. See ``docs/exports.md``."""

from __future__ import annotations

from geo_segment.exports.audiences import AudienceExport, CustomerList, build_customer_list, export_audiences
from geo_segment.exports.hashing import hash_codes, hash_identifier, hash_series, normalize_identifier
from geo_segment.exports.platforms import load_rules

__all__ = [
    "AudienceExport",
    "CustomerList",
    "build_customer_list",
    "export_audiences",
    "hash_codes",
    "hash_identifier",
    "hash_series",
    "load_rules",
    "normalize_identifier",
]
