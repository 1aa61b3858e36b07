"""Maps benchmark: a county map (about 300 precincts, 20k H3 cells, 60 micro-geographies) against a naive folium build.

Usage: python benchmarks/maps.py [--repeats 3] [--cells-k 81] [--seed 1] [--keep FOLDER] [--no-browser]
                                 [--browser-timeout 60]

Inputs (generated here, imports and data outside the timing):

* **precincts**: the 257 real Providence County precincts of ``sample_data`` (65k vertices, real border detail)
  with synthetic aggregates (voters, households, party counts, turnout, canvass signals; a quarter under the
  small-cell threshold and suppressed as ``aggregate_precincts`` would);
* **cells**: every H3 resolution-9 cell within ``--cells-k`` rings of the county's centre (81 rings: 19,927 cells)
  with synthetic aggregates, about 30 % suppressed;
* **micro-geographies**: 60 unions of 7-19 neighbouring cells with synthetic stats, 10 suppressed.

Variants, each built ``--repeats`` times (best and median seconds, size of the written HTML):

* **geo_segment**: one map with every layer: ``add_precinct_layer`` (6 measures sharing one geometry copy,
  coverage-simplified at 5 m), ``add_hex_layer`` (5 measures), ``add_micro_geo_layer`` (3 measures), written with
  ``save_map``; once with the CDN links (``--cdn``) and once self-contained (Leaflet inlined);
* **naive folium**: the same layers as a folium user would write them: one ``folium.GeoJson`` per measure of the
  unsimplified frame with every column, a Python ``style_function`` per layer (mapclassify quantiles, the same
  palette), ``GeoJsonTooltip`` over the aggregate columns, saved with ``Map.save``.

Then both pages are opened in headless Chromium (Debian's, through Playwright; CDN requests answered from the
vendored copies) and the time to the load event is recorded (unless ``--no-browser``).

Targets (issue 6): the county map is at most 10 MB and builds in at most 5 s. Saves
benchmarks/results/maps.json and maps.md with the machine's facts and its load average.

**The maps stage on a run folder** (issue 8: 1M voters end to end in 90 s; the maps stage's share is 15 s)::

    python benchmarks/maps.py --stage RUN_FOLDER [--before 2588d88] [--label 1M]

times the stage's work on a finished run folder (``geo-segment run`` output: precincts, cells, micro-geographies,
turfs, routes, doors, voters): reading the inputs as ``maps/stage.py`` does, then ``build_maps`` into a temporary
folder, each variant in its own process (peak RSS from ``getrusage``). ``--before COMMIT`` also runs the maps
package of that commit (extracted with ``git archive``, imported under another name, the same ``geo_segment``), the
one-folium-map-per-turf build. Appends to benchmarks/results/maps_stage.json and rewrites maps_stage.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

TARGET_MB = 10.0
TARGET_S = 5.0
PRECINCT_MEASURES = ["turnout_last_general", "mean_score", "share_DEM", "share_REP", "voters_per_km2",
                     "contact_rate"]
CELL_MEASURES = ["voters", "turnout_last_general", "mean_score", "share_DEM", "share_REP"]
MICRO_MEASURES = ["mean_score", "voters_per_km2", "voters"]


def make_inputs(seed: int, cells_k: int) -> tuple[Any, Any, Any]:
    """Precincts with aggregates, H3 cells with aggregates, micro-geographies (all EPSG:4326)."""
    import geopandas as gpd
    import h3
    import numpy as np
    import pandas as pd
    import shapely

    from geo_segment import _h3
    from geo_segment.map_measures import map_measures

    rng = np.random.default_rng(seed)

    def aggregates(n: int, scale: float, small: float) -> pd.DataFrame:
        voters = np.maximum(1, rng.lognormal(np.log(scale), 0.8, n)).round().astype(int)
        tiny = rng.random(n) < small
        voters[tiny] = rng.integers(1, 11, tiny.sum())
        frame = pd.DataFrame({"voters": voters, "households": (voters / rng.uniform(1.5, 2.5, n)).round()})
        dem = rng.beta(4, 3, n)
        rep = (1 - dem) * rng.beta(3, 4, n)
        frame["party_DEM"] = (voters * dem).round()
        frame["party_REP"] = (voters * rep).round()
        frame["party_UNA"] = voters - frame["party_DEM"] - frame["party_REP"]
        frame["voted_general_2024-11-05"] = (voters * rng.beta(6, 4, n)).round()
        frame["turnout_last_general"] = frame["voted_general_2024-11-05"] / voters
        frame["signals_canvass_contact"] = rng.gamma(1.5, 2.0, n) * voters / 50
        frame["mean_score"] = rng.beta(5, 5, n)
        frame["suppressed"] = voters < 11
        counts = [c for c in frame.columns if c not in ("suppressed",)]
        frame.loc[frame["suppressed"], counts] = np.nan
        return frame.astype({c: "Int64" for c in ("voters", "households", "party_DEM", "party_REP", "party_UNA",
                                                    "voted_general_2024-11-05")})

    real = gpd.read_parquet(ROOT / "sample_data" / "providence_precincts.parquet")
    real = real.rename(columns={"JOINID": "precinct_id"})
    precincts = gpd.GeoDataFrame(
        pd.concat([real.reset_index(drop=True), aggregates(len(real), 900, 0.25)], axis=1), crs=real.crs)
    precincts = map_measures(precincts)

    lat, lng = precincts.union_all().centroid.y, precincts.union_all().centroid.x
    centre = h3.latlng_to_cell(lat, lng, 9)
    ring = np.array(sorted(int(c, 16) for c in h3.grid_disk(centre, cells_k)), dtype=np.uint64)
    cells = pd.concat([pd.DataFrame({"h3_cell": ring}), aggregates(len(ring), 25, 0.3)], axis=1)
    cells = gpd.GeoDataFrame(cells, geometry=_h3.cell_polygons(ring), crs="EPSG:4326")
    cells = map_measures(cells)

    seeds = rng.choice(len(ring), 60, replace=False)
    polys, stats = [], []
    for i, s in enumerate(seeds):
        disk = [int(c, 16) for c in h3.grid_disk(format(int(ring[s]), "x"), 2)]
        take = rng.choice(len(disk), rng.integers(7, 20), replace=False)
        polys.append(shapely.union_all(_h3.cell_polygons(np.array([disk[t] for t in take], dtype=np.uint64))))
        v = int(rng.integers(30, 400)) if i >= 10 else int(rng.integers(1, 11))
        stats.append({"micro_geo": i, "voters": v, "households": v // 2, "mean_score": float(rng.beta(8, 3)),
                      "median_score": float(rng.beta(8, 3)), "n_precincts": int(rng.integers(1, 4)),
                      "precinct_ids": "P0301;P0302", "suppressed": v < 11})
    micro = gpd.GeoDataFrame(pd.DataFrame(stats), geometry=polys, crs="EPSG:4326")
    micro = map_measures(micro)
    micro.loc[micro["suppressed"], ["voters", "households", "mean_score", "median_score", "voters_per_km2"]] = None
    return precincts, cells, micro


def build_geo_segment(precincts: Any, cells: Any, micro: Any, out: Path, self_contained: bool) -> Path:
    from geo_segment.maps import add_hex_layer, add_micro_geo_layer, add_precinct_layer, new_map, save_map
    from geo_segment.maps._base import finish_map, union_bounds

    m = new_map(title="County", data_date="2026-11-27")
    add_precinct_layer(m, precincts, measure=PRECINCT_MEASURES)
    add_hex_layer(m, cells, measure=CELL_MEASURES, show=False)
    add_micro_geo_layer(m, micro, measure=MICRO_MEASURES, show=False)
    finish_map(m, union_bounds(precincts, cells, micro))
    return save_map(m, out, self_contained=self_contained)


def build_naive(precincts: Any, cells: Any, micro: Any, out: Path) -> Path:
    """What a folium user writes: a GeoJson per measure of the whole frame, Python style functions, tooltips."""
    import folium
    import mapclassify
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=True)
    for frame, measures, name in ((precincts, PRECINCT_MEASURES, "precincts"), (cells, CELL_MEASURES, "cells"),
                                  (micro, MICRO_MEASURES, "micro")):
        frame = frame.copy()
        for col in frame.columns:
            if col != "geometry" and str(frame[col].dtype) in ("Int64", "uint64", "string", "str", "object"):
                frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
                if str(frame[col].dtype) == "object" and col == "h3_cell":
                    frame[col] = frame[col].astype(str)
        for i, col in enumerate(measures):
            values = frame[col].astype("float64").to_numpy()
            ok = np.isfinite(values)
            bins = mapclassify.Quantiles(values[ok], k=5).bins
            colours = [to_hex(colormaps["viridis_r"](x)) for x in np.linspace(0, 1, len(bins))]

            def style(feature: dict, col: str = col, bins: Any = bins, colours: list[str] = colours) -> dict:
                v = feature["properties"].get(col)
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    return {"fillColor": "#9e9e9e", "color": "#444", "weight": 0.5, "fillOpacity": 0.5}
                k = min(int(np.searchsorted(bins, v)), len(colours) - 1)
                return {"fillColor": colours[k], "color": "#444", "weight": 0.5, "fillOpacity": 0.75}

            fields = [c for c in ("voters", "households", *measures) if c in frame.columns]
            folium.GeoJson(frame, name=f"{name}: {col}", style_function=style, show=i == 0,
                           tooltip=folium.GeoJsonTooltip(fields=list(dict.fromkeys(fields)))).add_to(m)
    folium.LayerControl().add_to(m)
    m.fit_bounds([[precincts.total_bounds[1], precincts.total_bounds[0]],
                  [precincts.total_bounds[3], precincts.total_bounds[2]]])
    m.save(str(out))
    return out


def open_in_chromium(pages: dict[str, Path], timeout_s: float) -> dict[str, Any]:
    """Seconds until each page's load event in headless Chromium (CDN requests answered from the local copies)."""
    import shutil

    exe = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    if exe is None:
        return {k: "chromium not found" for k in pages}
    from geo_segment.maps import asset_routes
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    routes = asset_routes()
    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        for name, path in pages.items():
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.route("**/*", lambda r: r.fulfill(body=routes[r.request.url].read_bytes()) if r.request.url in routes
                       else (r.continue_() if r.request.url.startswith("file:") else r.abort()))
            try:
                page.goto(path.resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
                t = page.evaluate("() => performance.timing.loadEventEnd - performance.timing.navigationStart")
                out[name] = round(t / 1000, 2)
            except PlaywrightError:
                out[name] = f"not loaded within {timeout_s:g} s"
            page.close()
        browser.close()
    return out


def timed(fn: Any, repeats: int) -> dict[str, Any]:
    seconds = []
    path = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        path = fn()
        seconds.append(time.perf_counter() - t0)
    assert path is not None
    size = Path(path).stat().st_size
    return {"best_s": round(min(seconds), 3), "median_s": round(statistics.median(seconds), 3),
            "mb": round(size / 1e6, 2), "runs": len(seconds)}


STAGE_TARGET_S = 15.0
STAGE_STRETCH_S = 8.0
STAGE_TARGET_GB = 3.0


def stage_child(variant: str, run: Path, out: Path, package: Path | None) -> None:
    """One stage build in this process; prints a JSON line with seconds, files, bytes and peak RSS."""
    import importlib.util
    import resource
    from datetime import date

    t0 = time.perf_counter()
    if package is not None:  # an older maps package, imported as "gs_maps_before" over today's geo_segment
        spec = importlib.util.spec_from_file_location("gs_maps_before", package / "__init__.py",
                                                      submodule_search_locations=[str(package)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["gs_maps_before"] = module
        spec.loader.exec_module(module)
        build_maps = module.build_maps
    else:
        from geo_segment.maps import build_maps
    import geopandas as gpd
    import pandas as pd
    import pyarrow.parquet as pq

    t_import = time.perf_counter()

    def geo(name: str) -> Any:
        return gpd.read_parquet(run / name) if (run / name).exists() else None

    # the voter columns each version's maps/stage.py reads (2588d88 read voter_id and propensity too)
    cols = ("voter_id", "precinct_id", "h3_cell", "engagement_score", "propensity") if package is not None \
        else ("precinct_id", "h3_cell", "engagement_score")
    wanted = [c for c in cols if c in pq.read_schema(run / "voters.parquet").names]
    voters = pd.read_parquet(run / "voters.parquet", columns=wanted)
    inputs = dict(precincts=geo("precincts.parquet"), cells=pd.read_parquet(run / "cells.parquet"),
                  micro_geos=geo("micro_geos.parquet"), turfs=geo("turfs.parquet"), routes=geo("routes.parquet"),
                  doors=pd.read_parquet(run / "doors.parquet"))
    t_read = time.perf_counter()
    written = build_maps(out, inputs["precincts"], inputs["cells"], inputs["micro_geos"], inputs["turfs"],
                         routes=inputs["routes"], doors=inputs["doors"], voters=voters,
                         data_date=date.today().isoformat())
    t_build = time.perf_counter()
    sizes = {p.name: p.stat().st_size for p in written}
    per_turf = [v for k, v in sizes.items() if k.startswith("turf_")]
    print(json.dumps({
        "variant": variant, "import_s": round(t_import - t0, 2), "read_s": round(t_read - t_import, 2),
        "build_s": round(t_build - t_read, 2), "stage_s": round(t_build - t_import, 2), "files": len(written),
        "mb": round(sum(sizes.values()) / 1e6, 1), "turfs_html_mb": round(sizes.get("turfs.html", 0) / 1e6, 2),
        "turf_page_kb_median": round(statistics.median(per_turf) / 1e3, 1) if per_turf else None,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "turfs": len(inputs["turfs"]), "doors": len(inputs["doors"]), "voters": len(voters),
    }), flush=True)


def stage_benchmark(run: Path, before: str | None, label: str, repeats: int) -> None:
    """Time the maps stage's work on ``run`` (after, and with ``before`` the given commit's maps package)."""
    import subprocess
    import tarfile

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gs-maps-stage-") as tmp:
        d = Path(tmp)
        variants: list[tuple[str, Path | None]] = [("after (HEAD + working tree)", None)]
        if before:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", before, "maps"], check=True,
                                     capture_output=True).stdout
            with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
                tar.extractall(d / "before", filter="data")
            variants.append((f"before ({before}: a folium map per turf)", d / "before" / "maps"))
        for name, package in variants:
            for i in range(repeats):
                out = d / f"out{len(rows)}"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--stage-child", name, "--stage", str(run),
                       "--stage-out", str(out)] + (["--stage-package", str(package)] if package else [])
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row["repeat"] = i + 1
                row["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                print(row, flush=True)
                rows.append(row)
                import shutil

                shutil.rmtree(out, ignore_errors=True)
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    path = res / "maps_stage.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append({"label": label, "run": str(run), "machine": machine(), "load_average": os.getloadavg(),
                    "targets": {"stage_s": STAGE_TARGET_S, "stretch_s": STAGE_STRETCH_S,
                                "peak_rss_gb": STAGE_TARGET_GB}, "results": rows})
    path.write_text(json.dumps(history, indent=2) + "\n")
    lines = ["# Maps stage benchmark", "",
             "The maps stage's work on a finished run folder: read the inputs as `maps/stage.py` does, then "
             "`build_maps` (precinct, hexagon, micro-geography and turf maps, one map per turf). `stage s` = read + "
             "build (imports excluded); each variant in its own process.", "",
             f"Targets (issue 8, at 1M voters): stage ≤ {STAGE_TARGET_S:g} s (stretch {STAGE_STRETCH_S:g} s), peak "
             f"RSS ≤ {STAGE_TARGET_GB:g} GB.", ""]
    for entry in history:
        m = entry["machine"]
        lines += [f"## {entry['label']}: {entry['results'][0]['voters']:,} voters, {entry['results'][0]['turfs']:,} "
                  f"turfs, {entry['results'][0]['doors']:,} doors", "",
                  f"{m['cpu']}, {m['cores']} cores; load average at the end "
                  f"{tuple(round(x, 2) for x in entry['load_average'])}.", "",
                  "| variant | stage s | read s | build s | files | MB | turfs.html MB | turf page kB (median) "
                  "| peak RSS GB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['variant']} | {r['stage_s']} | {r['read_s']} | {r['build_s']} | {r['files']:,} | {r['mb']} "
                  f"| {r['turfs_html_mb']} | {r['turf_page_kb_median']} | {r['peak_rss_gb']} |"
                  for r in entry["results"]]
        lines.append("")
    (res / "maps_stage.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    if "--stage" in sys.argv:
        sp = argparse.ArgumentParser(description="The maps stage on a run folder (see the module docstring).")
        sp.add_argument("--stage", type=Path, required=True)
        sp.add_argument("--before", default=None, help="A commit whose maps package is timed too.")
        sp.add_argument("--label", default="run")
        sp.add_argument("--repeats", type=int, default=1)
        sp.add_argument("--stage-child", default=None, help=argparse.SUPPRESS)
        sp.add_argument("--stage-out", type=Path, default=None, help=argparse.SUPPRESS)
        sp.add_argument("--stage-package", type=Path, default=None, help=argparse.SUPPRESS)
        sa = sp.parse_args()
        import warnings

        warnings.simplefilter("ignore")
        if sa.stage_child:
            stage_child(sa.stage_child, sa.stage, sa.stage_out, sa.stage_package)
        else:
            stage_benchmark(sa.stage, sa.before, sa.label, sa.repeats)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cells-k", type=int, default=81)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="Folder to copy the written maps to (to open them).")
    ap.add_argument("--no-browser", action="store_true", help="Skip opening the maps in headless Chromium.")
    ap.add_argument("--browser-timeout", type=float, default=60.0)
    args = ap.parse_args()

    import warnings

    warnings.simplefilter("ignore")
    import folium  # noqa: F401  (imports outside the timing)
    import geo_segment.maps  # noqa: F401

    t0 = time.perf_counter()
    precincts, cells, micro = make_inputs(args.seed, args.cells_k)
    inputs = {"precincts": len(precincts), "precinct_vertices": int(precincts.count_coordinates().sum()),
              "precincts_suppressed": int(precincts["suppressed"].sum()), "cells": len(cells),
              "cells_suppressed": int(cells["suppressed"].sum()), "micro_geos": len(micro),
              "generate_s": round(time.perf_counter() - t0, 1)}
    print(f"inputs: {inputs}", flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gs-maps-bench-") as tmp:
        d = Path(tmp)
        results["geo_segment (CDN links)"] = timed(
            lambda: build_geo_segment(precincts, cells, micro, d / "cdn.html", False), args.repeats)
        print(results, flush=True)
        results["geo_segment (self-contained)"] = timed(
            lambda: build_geo_segment(precincts, cells, micro, d / "inline.html", True), args.repeats)
        print(results, flush=True)
        results["naive folium"] = timed(lambda: build_naive(precincts, cells, micro, d / "naive.html"),
                                        args.repeats)
        opened = {} if args.no_browser else open_in_chromium(
            {"geo_segment (self-contained)": d / "inline.html", "naive folium": d / "naive.html"}, args.browser_timeout)
        for k, v in opened.items():
            results[k]["open_s"] = v
        if args.keep:
            import shutil

            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("cdn.html", "inline.html", "naive.html"):
                shutil.copy(d / name, args.keep / f"county_{name}")
    best = results["geo_segment (self-contained)"]
    report = {
        "benchmark": "maps", "machine": machine(), "load_average": os.getloadavg(), "inputs": inputs,
        "targets": {"mb": TARGET_MB, "seconds": TARGET_S},
        "met": {"size": best["mb"] <= TARGET_MB, "time": best["best_s"] <= TARGET_S}, "results": results,
    }
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "maps.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Maps benchmark", "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['memory_gib']} GiB; load average {tuple(round(x, 2) for x in report['load_average'])}.",
        "",
        f"County map: {inputs['precincts']} real precincts ({inputs['precinct_vertices']:,} vertices, "
        f"{inputs['precincts_suppressed']} suppressed) with 6 measures, {inputs['cells']:,} H3 res-9 cells "
        f"({inputs['cells_suppressed']:,} suppressed) with 5 measures, {inputs['micro_geos']} micro-geographies "
        "with 3 measures, all in one HTML file.", "",
        "| variant | build: best s | median s | MB | opens in Chromium (s to load event) |",
        "|---|---:|---:|---:|---:|",
        *[f"| {k} | {v['best_s']} | {v['median_s']} | {v['mb']} | {v.get('open_s', '')} |"
          for k, v in results.items()], "",
        f"Targets: ≤ {TARGET_MB:g} MB and ≤ {TARGET_S:g} s: size {'met' if report['met']['size'] else 'NOT met'}, "
        f"time {'met' if report['met']['time'] else 'NOT met'}.",
    ]
    (res / "maps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
