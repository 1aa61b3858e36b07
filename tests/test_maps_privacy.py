"""No personal field of the sample county reaches an analyst map (names, phones, emails), checked on the real demo.

The scanner is shown to work by a positive control: an organizer's turf map with personal door fields asked for.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from geo_segment.maps import build_maps, new_map, turf_maps

from geo_segment.pipeline import run_demo

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::geo_segment.errors.GeoSegmentWarning")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("demo")
    run_demo(out)
    voters = pd.read_parquet(out / "voters.parquet")
    precincts = gpd.read_parquet(out / "precincts.parquet")
    paths = build_maps(out / "maps", precincts, gpd.read_parquet(out / "cells.parquet"),
                       gpd.read_parquet(out / "micro_geos.parquet"),
                       voters=voters[["precinct_id", "h3_cell", "engagement_score"]])
    return {"out": out, "voters": voters, "precincts": precincts, "paths": paths}


_WORD = re.compile(r"[^\W\d_][\w'\-]*")


def _words(text: str) -> list[str]:
    """Word tokens (letters first; hyphens, apostrophes, accents kept), upper-cased, HTML entities decoded."""
    return _WORD.findall(html.unescape(text).upper())


def _needles(voters: pd.DataFrame, precincts: pd.DataFrame) -> dict[str, set[str]]:
    """Every name (4+ letters), full name, phone (digits) and email of the voter file, by kind.

    Names that occur in an empty map (library code) or in the precincts' own text columns (place names) are left
    out: finding them is no evidence of a person.
    """
    from geo_segment.maps import inline_assets

    baseline = new_map().get_root().render()
    exclude = set(_words(inline_assets(baseline)))
    exclude |= set(_words(" ".join(precincts.select_dtypes(exclude=["geometry", "number", "bool"]).astype(str)
                                   .to_numpy().ravel().tolist())))
    names = {n.upper() for col in ("last_name", "first_name") for n in voters[col].dropna().unique().tolist()}
    first, last = (voters[c].astype("str").fillna("") for c in ("first_name", "last_name"))
    full = (first + " " + last).str.strip().str.upper()
    return {
        "name": {n for n in names if len(n) >= 4 and n not in exclude},
        "full name": set(full[full.str.contains(" ")].unique().tolist()),
        "phone": {re.sub(r"\D", "", p) for p in voters["phone"].dropna().unique().tolist()
                  if len(re.sub(r"\D", "", p)) >= 7},
        "email": {e.lower() for e in voters["email"].dropna().unique().tolist()},
    }


def _found(text: str, needles: dict[str, set[str]]) -> list[str]:
    """Which needles occur in ``text``: one pass of tokenising, then set intersections."""
    words = _words(text)
    pairs = {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}
    digits = set(re.findall(r"\d+", text))
    emails = {e.lower() for e in re.findall(r"[\w.+-]+@[\w-]+\.[\w.-]+", html.unescape(text))}
    hits = [("name", needles["name"] & set(words)), ("full name", needles["full name"] & pairs),
            ("phone", needles["phone"] & digits), ("email", needles["email"] & emails)]
    return sorted(f"{kind} {v}" for kind, found in hits for v in found)


def test_analyst_maps_hold_no_name_phone_or_email(demo: dict[str, object]) -> None:
    voters = demo["voters"]
    assert isinstance(voters, pd.DataFrame)
    needles = _needles(voters, demo["precincts"])  # type: ignore[arg-type]
    assert len(needles["name"]) > 100 and len(needles["full name"]) > 1000 and len(needles["phone"]) >= 50
    paths = demo["paths"]
    assert [p.name for p in paths] == ["precincts.html", "hexes.html", "micro_geos.html"]  # type: ignore[attr-defined]
    for path in paths:  # type: ignore[attr-defined]
        assert _found(Path(path).read_text(encoding="utf-8"), needles) == [], path


def test_scanner_finds_personal_fields_when_a_turf_map_asks_for_them(demo: dict[str, object],
                                                                      tmp_path: Path) -> None:
    voters = demo["voters"]
    assert isinstance(voters, pd.DataFrame)
    sample = voters[voters["lat"].notna() & voters["phone"].notna() & (voters["last_name"].str.len() >= 6)].head(5)
    doors = pd.DataFrame({"turf_id": "T1", "door_order": range(1, len(sample) + 1), "lat": sample["lat"].to_numpy(),
                          "lng": sample["lng"].to_numpy(), "last_name": sample["last_name"].to_numpy(),
                          "phone": sample["phone"].to_numpy()})
    hull = shapely.MultiPoint(list(zip(doors["lng"], doors["lat"], strict=True))).convex_hull.buffer(0.001)
    turfs = gpd.GeoDataFrame({"turf_id": ["T1"], "doors": [len(doors)]}, geometry=[hull], crs="EPSG:4326")
    needles = _needles(voters, demo["precincts"])  # type: ignore[arg-type]
    plain = turf_maps(turfs, None, doors, out_dir=tmp_path / "plain")
    assert _found(Path(str(plain["all"])).read_text(encoding="utf-8"), needles) == []
    asked = turf_maps(turfs, None, doors, door_fields=["last_name", "phone"], personal=True, out_dir=tmp_path / "p")
    hits = _found(Path(str(asked["all"])).read_text(encoding="utf-8"), needles)
    assert any(h.startswith("phone") for h in hits) and any(h.startswith("name") for h in hits)
