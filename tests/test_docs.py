"""The docs stay true: every bad input of the spec is in docs/bad-inputs.md, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tests_in(file: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / file).read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_bad_input_row_is_documented_with_existing_tests() -> None:
    text = (ROOT / "docs" / "bad-inputs.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([\d, ]+) \|", text, flags=re.M)
    covered = {int(n) for r in rows for n in r.split(",")}
    assert covered == set(range(1, 28)), sorted(set(range(1, 28)) - covered)
    last_file = None
    named = 0
    for ref in re.findall(r"`((?:test_\w+\.py)?(?:::)?test_\w+|test_\w+\.py)`", text):
        file, _, name = ref.partition("::")
        if file.endswith(".py"):
            last_file = file
            assert (ROOT / "tests" / file).exists(), file
        else:
            name = file
        if name:
            assert last_file is not None and name in _tests_in(last_file), f"{last_file}::{name} does not exist"
            named += 1
    assert named >= 30
