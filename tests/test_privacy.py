"""No personal data outside the files meant to hold it: every output of a demo run, its logs and its manifest."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from geo_segment.cli.app import app
from typer.testing import CliRunner

#: the files of a run meant to hold personal data (DESIGN.md: walk lists, packets, the voters table and the
#: per-door tables beside them); everything else is scanned
PERSONAL = re.compile(r"^(voters\.parquet|walklists/.*|packets/.*|stages/.*)$")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("privacy") / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def _needles(out: Path) -> dict[str, set[str]]:
    v = pd.read_parquet(out / "voters.parquet")
    full_names = (v["first_name"].astype("str").fillna("") + " " + v["last_name"].astype("str").fillna("")).str.strip()
    phones = v["phone"].dropna().astype(str).str.replace(r"\D", "", regex=True)
    emails = v["email"].dropna().astype(str).str.lower()
    addresses = v["address"].dropna().astype(str).str.upper()
    return {
        "name": {n.upper() for n in full_names if len(n) > 5},
        "phone": {p for p in phones if len(p) >= 10},
        "email": {e for e in emails if "@" in e},
        "address": {a for a in addresses if re.match(r"^\d+ \S+", a)},
    }


def _texts(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        cols = [c for c in frame.columns if c != "geometry" and str(frame[c].dtype) in ("object", "str", "string")]
        return [" | ".join(frame[c].dropna().astype(str)) for c in cols] + [" ".join(map(str, frame.columns))]
    if path.suffix in (".png", ".joblib", ".pdf"):
        return []
    return [path.read_text(encoding="utf-8", errors="replace")]


def _leaks(text: str, needles: dict[str, set[str]]) -> list[str]:
    upper = text.upper()
    digits = re.sub(r"\D", "", text)
    found = [f"{k}: {n}" for k in ("name", "address") for n in needles[k] if n in upper]
    found += [f"email: {e}" for e in needles["email"] if e in text.lower()]
    found += [f"phone: {p}" for p in needles["phone"] if p in digits]
    return found


def test_the_needles_are_real(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    needles = _needles(out)
    sizes = {k: len(v) for k, v in needles.items()}
    # the NC layout carries no e-mail address, so the sample has none to leak; names, phones and addresses it has
    assert sizes["name"] > 1000 and sizes["address"] > 1000 and sizes["phone"] >= 50, sizes
    walk = next((out / "walklists").glob("*.csv")).read_text(encoding="utf-8")
    assert _leaks(walk, needles)  # the scan does find personal data where it is meant to be


def test_no_personal_data_outside_the_personal_files(demo_run: tuple[Path, str]) -> None:
    out, log = demo_run
    needles = _needles(out)
    scanned = []
    leaks: dict[str, list[str]] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if PERSONAL.match(rel):
            continue
        scanned.append(rel)
        found = [leak for text in _texts(path) for leak in _leaks(text, needles)]
        if found:
            leaks[rel] = found[:5]
    assert not leaks, leaks
    assert {"manifest.json", "report.html", "rejects.csv", "maps/precincts.html", "maps/turfs.html",
            "micro_geos.parquet", "cells.parquet", "precincts.parquet"} <= set(scanned)
    assert any(s.startswith("exports/") for s in scanned)
    assert not _leaks(log, needles)  # the terminal output (our log) holds none either
