"""Tests of :func:`geo_segment.io.precincts.read_precincts` on hand-drawn grids and on the real Rhode Island file.

The fixtures are drawn in cells of 0.01 degree from (-71.40, 41.82), near Providence: one cell is about
830 m wide and 1,110 m tall. Golden areas are computed independently with ``pyproj.Geod`` (geodesic areas on the
ellipsoid), while the reader computes planar areas in UTM, so they agree to about 0.1 %.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from shapely import GeometryCollection, MultiPolygon, Point, Polygon

from geo_segment import schema as S
from geo_segment.errors import GeoSegmentWarning, InputFileError, MissingColumnsError
from geo_segment.io.precincts import read_precincts

X0, Y0, CELL = -71.40, 41.82, 0.01
RI = Path("/work/shared/data/ri/ri_precincts_providence_washington_2016_2018.parquet")
GEOD = Geod(ellps="WGS84")


def cells(*xy: tuple[float, float]) -> list[tuple[float, float]]:
    """Turn grid coordinates (in cells) into lon/lat."""
    return [(X0 + x * CELL, Y0 + y * CELL) for x, y in xy]


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return Polygon(cells((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def geodesic_m2(geom: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def frame(geoms: dict[str, shapely.Geometry | None], crs: object = 4326) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": list(geoms), "pop": np.arange(len(geoms), dtype="int64") * 10},
        geometry=list(geoms.values()),
        crs=crs,
    )


def grid2x2() -> dict[str, shapely.Geometry | None]:
    """Four precincts tiling a 2 x 2 square::

        2 +-----+-----+
          |  C  |  D  |
        1 +-----+-----+
          |  A  |  B  |
        0 +-----+-----+
          0     1     2
    """
    return {"A": rect(0, 0, 1, 1), "B": rect(1, 0, 2, 1), "C": rect(0, 1, 1, 2), "D": rect(1, 1, 2, 2)}


def grid_overlap() -> dict[str, shapely.Geometry | None]:
    """B is drawn 0.1 cell too far left, over A::

        2 +-----+-----+
          |  C  |  D  |
        1 +----+-+----+
          |  A |#| B  |      # = A and B overlap (0.1 x 1 cell, about 83 m x 1,110 m)
        0 +----+-+----+
          0   0.9 1     2
    """
    return {**grid2x2(), "B": rect(0.9, 0, 2, 1)}


def grid_gap() -> dict[str, shapely.Geometry | None]:
    """Each precinct lacks a 0.1-cell triangle at the centre, leaving a diamond-shaped gap::

        2 +-----+-----+
          |  C  /\\ D  |
        1 +----<  >---+      the diamond: (1, 0.9) (1.1, 1) (1, 1.1) (0.9, 1)
          |  A  \\/ B  |
        0 +-----+-----+
    """
    return {
        "A": Polygon(cells((0, 0), (1, 0), (1, 0.9), (0.9, 1), (0, 1))),
        "B": Polygon(cells((1, 0), (2, 0), (2, 1), (1.1, 1), (1, 0.9))),
        "C": Polygon(cells((0, 1), (0.9, 1), (1, 1.1), (1, 2), (0, 2))),
        "D": Polygon(cells((1.1, 1), (2, 1), (2, 2), (1, 2), (1, 1.1))),
    }


def grid_bowtie() -> dict[str, shapely.Geometry | None]:
    """D is drawn (1,1) > (2,1) > (1,2) > (2,2) > (1,1): an hourglass, self-intersecting at its centre::

        2 +-----+-----+
          |     |\\###/|
          |  C  | \\#/ |
          |     |  X  |      make_valid keeps both lobes (0.25 cell each); buffer(0) could drop one.
          |     | /#\\ |
        1 +-----+/###\\+
          |  A  |  B  |
        0 +-----+-----+
    """
    return {**grid2x2(), "D": Polygon(cells((1, 1), (2, 1), (1, 2), (2, 2), (1, 1)))}


def grid_bad_geometries() -> dict[str, shapely.Geometry | None]:
    """A and B are fine; C is empty, D is null, E a GeometryCollection, F a point (features 3 to 6)::

        1 +-----+-----+
          |  A  |  B  |        C: POLYGON EMPTY   D: null   E: GEOMETRYCOLLECTION (POLYGON ...)   F: POINT
        0 +-----+-----+
    """
    return {
        "A": rect(0, 0, 1, 1),
        "B": rect(1, 0, 2, 1),
        "C": Polygon(),
        "D": None,
        "E": GeometryCollection([rect(0, 1, 1, 2)]),
        "F": Point(cells((1.5, 1.5))[0]),
    }


def write(gdf: gpd.GeoDataFrame, tmp_path: Path, fmt: str) -> str:
    """Write ``gdf`` as GeoJSON, GeoPackage, a zipped Shapefile (path or zip:// URI) or GeoParquet."""
    if fmt == "geojson":
        path = tmp_path / "p.geojson"
        gdf.to_file(path, engine="pyogrio")
    elif fmt == "gpkg":
        path = tmp_path / "p.gpkg"
        gdf.to_file(path, layer="precincts", engine="pyogrio")
    elif fmt == "parquet":
        path = tmp_path / "p.parquet"
        gdf.to_parquet(path)
    elif fmt in ("shp.zip", "zip://"):
        folder = tmp_path / "shp"
        folder.mkdir()
        gdf.to_file(folder / "p.shp", engine="pyogrio")
        path = tmp_path / "p.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for part in sorted(folder.iterdir()):
                zf.write(part, part.name)
        return f"zip://{path}" if fmt == "zip://" else str(path)
    else:  # pragma: no cover
        raise AssertionError(fmt)
    return str(path)


def read_quiet(source: object, **kwargs: object):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeoSegmentWarning)
        return read_precincts(source, **kwargs)  # type: ignore[arg-type]


FORMATS = ["geojson", "gpkg", "shp.zip", "zip://", "parquet"]


# --- the clean grid, in every format ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_clean_grid_every_format(tmp_path: Path, fmt: str) -> None:
    source = write(frame(grid2x2()), tmp_path, fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeoSegmentWarning)  # a clean coverage warns about nothing
        read = read_precincts(source, id_col="name")
    p = read.precincts
    assert list(p.columns) == [S.PRECINCT_ID, "pop", S.GEOMETRY]
    assert p[S.PRECINCT_ID].tolist() == ["A", "B", "C", "D"]
    assert pd.api.types.is_string_dtype(p[S.PRECINCT_ID].dtype)
    assert p.crs.equals(S.CRS_STORAGE)
    assert isinstance(p.index, pd.RangeIndex)
    assert p["pop"].tolist() == [0, 10, 20, 30]
    np.testing.assert_allclose(p.total_bounds, [X0, Y0, X0 + 2 * CELL, Y0 + 2 * CELL])
    assert read.rejects.empty and list(read.rejects.columns) == list(S.REJECT_COLUMNS)
    r = read.report
    assert (r["n_features"], r["n_precincts"], r["n_rejected"], r["n_repaired"]) == (4, 4, 0, 0)
    assert r["coverage_valid"] is True
    assert (r["n_overlap_pairs"], r["n_overlap_slivers"], r["n_gaps"], r["n_gap_slivers"]) == (0, 0, 0, 0)
    assert r["metric_crs"] == "EPSG:32619"
    assert read.stage.name == "precincts" and read.stage.balanced
    assert read.stage.metrics is r


def test_numeric_ids_become_strings_without_decimals(tmp_path: Path) -> None:
    gdf = frame(grid2x2()).assign(num=[101, 102, 103, 104])
    read = read_precincts(write(gdf, tmp_path, "shp.zip"), id_col="num")
    assert read.precincts[S.PRECINCT_ID].tolist() == ["101", "102", "103", "104"]
    assert "name" in read.precincts.columns and "num" not in read.precincts.columns


# --- overlaps and gaps ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp.zip"])
def test_overlap_is_warned_with_ids_and_area(tmp_path: Path, fmt: str) -> None:
    source = write(frame(grid_overlap()), tmp_path, fmt)
    with pytest.warns(GeoSegmentWarning, match=r"1 pairs overlap by 1 m² or more .*largest A/B \("):
        read = read_precincts(source, id_col="name")
    r = read.report
    expected = geodesic_m2(rect(0.9, 0, 1, 1))
    assert r["n_overlap_pairs"] == 1
    assert r["overlap_pairs"][0][:2] == ["A", "B"]
    assert r["overlap_area_m2"] == pytest.approx(expected, rel=2e-3)
    assert r["overlap_pairs"][0][2] == pytest.approx(expected, rel=2e-3)
    assert r["coverage_valid"] is False
    assert r["n_invalid_edge_precincts"] >= 2 and {"A", "B"} <= set(r["invalid_edge_ids"])
    assert r["n_gaps"] == 0
    assert len(read.precincts) == 4  # reported, not resolved


def test_precinct_inside_another_counts_as_overlap(tmp_path: Path) -> None:
    """``predicate="overlaps"`` alone misses containment; the reader must not."""
    geoms = {**grid2x2(), "E": rect(0.25, 0.25, 0.75, 0.75)}
    with pytest.warns(GeoSegmentWarning, match="1 pairs overlap"):
        read = read_precincts(write(frame(geoms), tmp_path, "gpkg"), id_col="name")
    assert read.report["overlap_pairs"][0][:2] == ["A", "E"]
    assert read.report["overlap_area_m2"] == pytest.approx(geodesic_m2(geoms["E"]), rel=2e-3)


def test_tiny_overlap_is_a_sliver(tmp_path: Path) -> None:
    geoms = {**grid2x2(), "B": rect(1 - 1e-6, 0, 2, 1)}  # about 0.08 m x 1,110 m
    read = read_quiet(write(frame(geoms), tmp_path, "geojson"), id_col="name")
    assert (read.report["n_overlap_pairs"], read.report["n_overlap_slivers"]) == (0, 1)
    assert 0 < read.report["sliver_overlap_area_m2"] < 1.0


def test_gap_is_warned_with_place_and_area(tmp_path: Path) -> None:
    source = write(frame(grid_gap()), tmp_path, "gpkg")
    with pytest.warns(GeoSegmentWarning, match=r"1 gaps between precincts .* bordered by A, B, C, D"):
        read = read_precincts(source, id_col="name")
    r = read.report
    diamond = Polygon(cells((1, 0.9), (1.1, 1), (1, 1.1), (0.9, 1)))
    assert r["n_gaps"] == 1
    assert r["gap_area_m2"] == pytest.approx(geodesic_m2(diamond), rel=2e-3)
    (gap,) = r["largest_gaps"]
    assert gap["precincts"] == ["A", "B", "C", "D"]
    assert diamond.contains(Point(gap["lon"], gap["lat"]))
    assert r["coverage_valid"] is True and r["n_overlap_pairs"] == 0


def test_large_hole_is_an_enclosed_area_not_a_gap(tmp_path: Path) -> None:
    """A 3 x 3 ring of precincts around an empty centre cell (about 92 ha) is a lake, not a gap."""
    geoms = {f"P{x}{y}": rect(x, y, x + 1, y + 1) for x in range(3) for y in range(3) if (x, y) != (1, 1)}
    read = read_quiet(write(frame(geoms), tmp_path, "geojson"), id_col="name")
    r = read.report
    assert (r["n_gaps"], r["n_enclosed_areas"]) == (0, 1)
    assert r["enclosed_area_m2"] == pytest.approx(geodesic_m2(rect(1, 1, 2, 2)), rel=2e-3)
    bigger_gaps = read_quiet(write(frame(geoms), tmp_path, "gpkg"), id_col="name", max_gap_m2=2e6)
    assert (bigger_gaps.report["n_gaps"], bigger_gaps.report["n_enclosed_areas"]) == (1, 0)


# --- repairs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp.zip"])
def test_bowtie_is_repaired_keeping_both_lobes(tmp_path: Path, fmt: str) -> None:
    source = write(frame(grid_bowtie()), tmp_path, fmt)
    read = read_quiet(source, id_col="name")
    p = read.precincts.set_index(S.PRECINCT_ID)
    d = p.geometry["D"]
    assert d.is_valid and d.geom_type == "MultiPolygon" and len(d.geoms) == 2
    assert d.area == pytest.approx(0.5 * CELL**2, rel=1e-9)  # both lobes
    assert shapely.is_valid(p.geometry.to_numpy()).all()
    r = read.report
    assert r["n_repaired"] == 1 and r["area_changes"] == {"D": pytest.approx(0.0, abs=1e-9)}
    assert r["max_area_change"] == pytest.approx(0.0, abs=1e-9)


def test_self_touching_ring_around_a_lake_is_repaired_without_area_change(tmp_path: Path) -> None:
    """D's shell runs round a lake and touches itself at (1.5, 2): an "inverted hole", invalid for GEOS::

        2 +-----+--*--+
          |     | / \\ |
          |  C  | \\ / |     the diamond (lake) is outside D; make_valid turns it into a hole
        1 +-----+-----+
    """
    d = Polygon(cells((1, 1), (2, 1), (2, 2), (1.5, 2), (1.75, 1.5), (1.5, 1.25), (1.25, 1.5), (1.5, 2),
                      (1, 2), (1, 1)))
    assert not d.is_valid
    read = read_quiet(write(frame({**grid2x2(), "D": d}), tmp_path, "geojson"), id_col="name")
    fixed = read.precincts.set_index(S.PRECINCT_ID).geometry["D"]
    assert fixed.is_valid and len(fixed.interiors) == 1
    assert fixed.area == pytest.approx(d.area, rel=1e-9)
    assert read.report["area_changes"]["D"] == pytest.approx(0.0, abs=1e-9)


def test_overlapping_parts_of_one_precinct_are_merged(tmp_path: Path) -> None:
    d = MultiPolygon([rect(1, 1, 2, 1.75), rect(1, 1.25, 2, 2)])
    read = read_quiet(write(frame({**grid2x2(), "D": d}), tmp_path, "gpkg"), id_col="name")
    fixed = read.precincts.set_index(S.PRECINCT_ID).geometry["D"]
    assert fixed.equals(rect(1, 1, 2, 2))
    assert read.report["area_changes"]["D"] == pytest.approx(0.0, abs=1e-9)


def test_island_in_a_lake_of_an_invalid_precinct_keeps_its_area(tmp_path: Path) -> None:
    """D's two parts overlap (invalid) and the lower one has a lake holding an island::

        2 +-----------+
          |     D2    |      D2 overlaps D1 between y = 1.7 and 1.75
       1.7+-----------+
          |  +-----+  |
          |  | [i] |  |      lake (1.3..1.7 x 1.3..1.6), island i (1.4..1.6 x 1.4..1.5)
          |  +-----+  |
        1 +-----------+
    """
    d1 = Polygon(rect(1, 1, 2, 1.75).exterior.coords, [rect(1.3, 1.3, 1.7, 1.6).exterior.coords])
    d2, island = rect(1, 1.7, 2, 2), rect(1.4, 1.4, 1.6, 1.5)
    d = MultiPolygon([d1, d2, island])
    assert not d.is_valid
    read = read_quiet(write(frame({**grid2x2(), "D": d}), tmp_path, "gpkg"), id_col="name")
    fixed = read.precincts.set_index(S.PRECINCT_ID).geometry["D"]
    assert fixed.area == pytest.approx(shapely.union_all([d1, d2, island]).area, rel=1e-9)
    assert read.report["area_changes"]["D"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.skipif(not RI.exists(), reason="shared RI data not available")
def test_area_as_drawn_equals_the_area_of_valid_polygons() -> None:
    """The repair's baseline (private) must agree with GEOS on valid polygons: 301 real ones, islands included."""
    from geo_segment.io.precincts import _drawn_area

    geoms = gpd.read_parquet(RI).geometry.to_numpy()
    drawn = np.array([_drawn_area(g) for g in geoms])
    np.testing.assert_allclose(drawn, shapely.area(geoms), rtol=1e-9)


def test_repair_beyond_tolerance_is_an_error(tmp_path: Path) -> None:
    """D has a hole drawn outside its shell; the repair turns it into area, +25 % over the area as drawn."""
    d = Polygon(rect(1, 1, 2, 2).exterior.coords, [rect(2.25, 1.25, 2.75, 1.75).exterior.coords])
    source = write(frame({**grid2x2(), "D": d}), tmp_path, "gpkg")
    with pytest.raises(
        InputFileError,
        match=r"p\.gpkg, column 'name': repairing invalid precinct polygons changed their area beyond the "
        r"tolerance: 'D' by 25\.0%; expected area changes of at most 1\.0% \(area_tolerance\), found 1 precincts "
        r"over it\. Fix: fix these polygons in a GIS",
    ):
        read_quiet(source, id_col="name")
    read = read_quiet(source, id_col="name", area_tolerance=0.3)
    assert read.report["area_changes"]["D"] == pytest.approx(0.25, rel=1e-9)


def test_degenerate_polygon_is_quarantined(tmp_path: Path) -> None:
    flat = Polygon(cells((1, 1), (1.5, 1), (2, 1), (1, 1)))  # a ring along one line: no area at all
    read = read_quiet(write(frame({**grid2x2(), "D": flat}), tmp_path, "geojson"), id_col="name")
    assert read.precincts[S.PRECINCT_ID].tolist() == ["A", "B", "C"]
    assert read.rejects[S.REJECT_LINE].tolist() == [4]
    assert read.rejects[S.REJECT_REASON].tolist() == ["polygon encloses no area (its repair left nothing)"]


# --- quarantine -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
def test_bad_geometries_are_quarantined_with_position_and_reason(tmp_path: Path, fmt: str) -> None:
    source = write(frame(grid_bad_geometries()), tmp_path, fmt)
    with pytest.warns(GeoSegmentWarning, match=r"4 of 6 precinct features quarantined"):
        read = read_precincts(source, id_col="name")
    assert read.precincts[S.PRECINCT_ID].tolist() == ["A", "B"]
    rej = read.rejects
    assert rej[S.REJECT_LINE].tolist() == [3, 4, 5, 6]
    assert rej[S.REJECT_COLUMN].tolist() == ["geometry"] * 4
    assert rej[S.REJECT_REASON].tolist() == [
        "empty geometry",
        "missing geometry (null)",
        "GeometryCollection geometry; expected Polygon or MultiPolygon",
        "Point geometry; expected Polygon or MultiPolygon",
    ]
    assert (rej[S.REJECT_FILE] == source).all()
    assert read.stage.rows_in == 6 and read.stage.rows_out == 2 and read.stage.rows_rejected == 4
    assert read.stage.balanced


def test_empty_geometry_in_zipped_shapefile_is_quarantined(tmp_path: Path) -> None:
    geoms = {**grid2x2(), "D": Polygon()}  # a shapefile stores it as a null shape
    read = read_quiet(write(frame(geoms), tmp_path, "shp.zip"), id_col="name")
    assert read.rejects[S.REJECT_LINE].tolist() == [4]
    assert read.rejects[S.REJECT_REASON].str.contains("geometry").all()


def test_missing_id_value_is_quarantined(tmp_path: Path) -> None:
    gdf = frame(grid2x2())
    gdf.loc[2, "name"] = None
    read = read_quiet(write(gdf, tmp_path, "geojson"), id_col="name")
    assert read.rejects[[S.REJECT_LINE, S.REJECT_COLUMN, S.REJECT_REASON]].values.tolist() == [
        [3, "name", "missing precinct id in column 'name'"]
    ]


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    source = write(frame({"A": Polygon(), "B": None}), tmp_path, "geojson")
    with pytest.raises(InputFileError, match=r"none of the 2 features of the precinct file is a usable precinct"):
        read_precincts(source, id_col="name")


# --- whole-file errors ----------------------------------------------------------------------------------------------


def test_missing_id_column_lists_found_columns(tmp_path: Path) -> None:
    source = write(frame(grid2x2()), tmp_path, "geojson")
    with pytest.raises(
        MissingColumnsError,
        match=r"p\.geojson, column 'nam': precinct file lacks the id column 'nam'; expected a column 'nam' naming "
        r"each precinct, found 2 columns \['name', 'pop'\]\. Fix: did you mean \['name'\]\? pass id_col= one of "
        r"the columns with unique values: \['name', 'pop'\]",
    ):
        read_precincts(source, id_col="nam")


def test_duplicate_ids_are_listed(tmp_path: Path) -> None:
    gdf = frame(grid2x2())
    gdf["name"] = ["A", "B", "A", "B"]
    with pytest.raises(
        InputFileError,
        match=r"precinct ids in column 'name' are not unique: 2 ids appear on more than one feature; expected one "
        r"feature per precinct id, found duplicated ids 'A', 'B'\. Fix: pass id_col= a unique column \(\['pop'\]\)",
    ):
        read_precincts(write(gdf, tmp_path, "gpkg"), id_col="name")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.gpkg: precinct file not found\. Fix: check the path"):
        read_precincts(tmp_path / "nope.gpkg", id_col="name")


def test_empty_layer(tmp_path: Path) -> None:
    source = write(frame(grid2x2()).iloc[:0], tmp_path, "gpkg")
    with pytest.raises(InputFileError, match=r"precinct file has no features; expected at least one precinct"):
        read_precincts(source, id_col="name")


def test_layers(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    frame(grid2x2()).to_file(path, layer="precincts", engine="pyogrio")
    frame(grid_overlap()).to_file(path, layer="old", engine="pyogrio")
    with pytest.raises(InputFileError, match=r"holds 2 layers and no layer was chosen; .*found layers \['precincts', "
                       r"'old'\]\. Fix: pass layer='precincts'"):
        read_precincts(path, id_col="name")
    with pytest.raises(InputFileError, match=r"has no layer 'new'; found layers \['precincts', 'old'\]"):
        read_precincts(path, id_col="name", layer="new")
    assert read_precincts(path, id_col="name", layer="precincts").report["n_overlap_pairs"] == 0


def test_not_a_vector_file(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    path.write_text("this is not json")
    with pytest.raises(InputFileError, match=r"precinct file cannot be read as a vector dataset"):
        read_precincts(path, id_col="name")


def test_not_geoparquet(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pd.DataFrame({"name": ["A"]}).to_parquet(path)
    with pytest.raises(InputFileError, match=r"precinct file cannot be read as GeoParquet"):
        read_precincts(path, id_col="name")


# --- CRS ------------------------------------------------------------------------------------------------------------


def test_projected_source_is_reprojected_lon_first(tmp_path: Path) -> None:
    gdf = frame(grid2x2()).to_crs(32619)
    read = read_precincts(write(gdf, tmp_path, "gpkg"), id_col="name")
    assert read.precincts.crs.equals(S.CRS_STORAGE)
    assert read.report["source_crs"] == "EPSG:32619"
    np.testing.assert_allclose(read.precincts.total_bounds, [X0, Y0, X0 + 2 * CELL, Y0 + 2 * CELL], atol=1e-9)


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
def test_no_crs_and_lonlat_coordinates_assumes_4326_with_warning(tmp_path: Path) -> None:
    gdf = frame(grid2x2(), crs=None)
    with pytest.warns(GeoSegmentWarning, match=r"declares no CRS; its coordinates are longitude/latitude, so "
                      r"EPSG:4326 is assumed"):
        read = read_precincts(write(gdf, tmp_path, "shp.zip"), id_col="name")
    assert read.report["crs_assumed"] is True and read.precincts.crs.equals(S.CRS_STORAGE)


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
def test_no_crs_and_projected_coordinates_is_an_error(tmp_path: Path) -> None:
    gdf = frame(grid2x2()).to_crs(32619).set_crs(None, allow_override=True)
    source = write(gdf, tmp_path, "shp.zip")
    with pytest.raises(
        InputFileError,
        match=r"precinct file declares no coordinate reference system and its coordinates are not "
        r"longitude/latitude; expected a CRS in the file .* found no CRS, bounds \(3\d{5}\.\d\d, 46\d{5}\.\d\d, .*\)\. "
        r"Fix: pass crs='EPSG:xxxx'",
    ):
        read_precincts(source, id_col="name")
    read = read_precincts(source, id_col="name", crs="EPSG:32619")
    np.testing.assert_allclose(read.precincts.total_bounds, [X0, Y0, X0 + 2 * CELL, Y0 + 2 * CELL], atol=1e-9)


def test_crs_option_conflicting_with_the_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"declares a CRS other than the crs option; expected EPSG:32619, "
                       r"found EPSG:4326"):
        read_precincts(write(frame(grid2x2()), tmp_path, "gpkg"), id_col="name", crs="EPSG:32619")


# --- the real Rhode Island file -------------------------------------------------------------------------------------


@pytest.mark.skipif(not RI.exists(), reason="shared RI data not available")
def test_rhode_island_precincts() -> None:
    """Known traits from /work/shared/data/ri/README.md: 301 precincts, 8 pairs overlapping by about 53 m² in
    total, about 498 small holes in the union (0.22 km², the largest about 85,000 m²)."""
    with pytest.warns(GeoSegmentWarning) as record:
        read = read_precincts(RI, id_col="JOINID")
    messages = [str(w.message) for w in record]
    assert any("8 pairs overlap by 1 m² or more" in m and "P3102/P3103" in m for m in messages)
    assert any("gaps between precincts" in m for m in messages)
    p, r = read.precincts, read.report
    assert len(p) == 301 and p[S.PRECINCT_ID].is_unique and read.rejects.empty
    assert p.crs.equals(S.CRS_STORAGE) and shapely.is_valid(p.geometry.to_numpy()).all()
    assert r["n_repaired"] == 0
    assert r["n_overlap_pairs"] == 8
    assert r["overlap_area_m2"] == pytest.approx(53, abs=1.0)
    assert r["overlap_pairs"][0][:2] == ["P3102", "P3103"]
    assert r["n_gaps"] + r["n_gap_slivers"] == pytest.approx(498, abs=1)
    assert r["gap_area_m2"] + r["sliver_gap_area_m2"] == pytest.approx(220_000, rel=0.02)
    assert r["largest_gaps"][0]["area_m2"] == pytest.approx(85_000, rel=0.01)
    assert r["coverage_valid"] is False
    assert read.stage.balanced and read.stage.rows_in == 301
