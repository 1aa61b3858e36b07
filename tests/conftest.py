"""Shared fixtures: tiny voter files written by hand in a layout's exact format."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from geo_segment.layouts import load_layout


def layout_text(layout: str, rows: Sequence[dict[str, str] | str], *, history: bool = False) -> str:
    """Render rows (dicts of column -> value, or raw lines) in a built-in layout's format."""
    lay = load_layout(layout)
    if history:
        cols = list(lay.history["columns"])
        delim = str(lay.history.get("delimiter", lay.delimiter))
        header = bool(lay.history.get("header", True))
    else:
        cols, delim, header = list(lay.columns), lay.delimiter, lay.header
    quote = layout == "nc"

    def fmt(values: Sequence[str]) -> str:
        return delim.join(f'"{v}"' if quote else v for v in values)

    lines = [fmt(cols)] if header else []
    for row in rows:
        if isinstance(row, str):
            lines.append(row)
        else:
            unknown = set(row) - set(cols)
            assert not unknown, unknown
            lines.append(fmt([row.get(c, "") for c in cols]))
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_layout_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a hand-drawn file in a layout: ``write_layout_file("v.txt", "nc", rows)``."""

    def _write(name: str, layout: str, rows: Sequence[dict[str, str] | str], *, history: bool = False,
               encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(layout_text(layout, rows, history=history).encode(encoding))
        return path

    return _write


def nc_voter(ncid: str, **kw: str) -> dict[str, str]:
    """One NC voter row with sensible defaults."""
    row = {
        "ncid": ncid, "last_name": "DOE", "first_name": "ALEX", "res_street_address": "12 N MAIN ST",
        "res_city_desc": "PROVIDENCE", "state_cd": "RI", "zip_code": "02903", "birth_year": "1980",
        "registr_dt": "01/15/2004", "party_cd": "DEM", "status_cd": "A", "county_desc": "PROVIDENCE",
        "precinct_abbrv": "P1",
    }
    row.update(kw)
    return row
