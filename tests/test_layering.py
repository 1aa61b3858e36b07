"""The house's layering and install layout."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("cli", "maps", "typer", "folium", "geo_segment.cli", "geo_segment.maps", "rich")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "geo_segment").rglob("*.py")), ids=lambda p: p.name)
def test_core_never_imports_cli_maps_typer_folium(path: Path) -> None:
    bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_package_dir_maps_cli_and_maps_under_geo_segment() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert conf["package-dir"]["geo_segment.cli"] == "cli"
    assert conf["package-dir"]["geo_segment.maps"] == "maps"
    assert not [p for p in conf["packages"] if p.split(".")[0] in ("cli", "maps")]


def test_cli_and_maps_import_as_geo_segment_subpackages() -> None:
    import geo_segment.cli
    import geo_segment.maps

    assert Path(geo_segment.cli.__file__).parent == ROOT / "cli"
    assert Path(geo_segment.maps.__file__).parent == ROOT / "maps"


@pytest.mark.slow
def test_wheel_holds_no_top_level_cli_or_maps(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("geo_segment-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"geo_segment", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for needed in ("geo_segment/cli/app.py", "geo_segment/maps/__init__.py", "geo_segment/py.typed",
                   "geo_segment/layouts/nc.toml", "geo_segment/data/providence_blocks_2010.parquet"):
        assert needed in names
