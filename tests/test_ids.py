"""One reader for id lists (lookalike seeds, do-not-contact lists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_segment.errors import InputFileError, InputNotFoundError, MissingColumnsError
from geo_segment.io.ids import read_ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("voter_id\nA1\n A2 \nA1\n\n", ["A1", "A2"]),  # header, spaces trimmed, repeats and blanks dropped
        ("A1\nA2\n", ["A1", "A2"]),  # one column, no header
        ("name,Voter_ID,household_id\nx,A1,h1\ny,A2,\n", ["A1", "A2", "h1"]),  # every named column
    ],
)
def test_reads_named_or_single_columns(tmp_path: Path, text: str, expected: list[str]) -> None:
    (tmp_path / "ids.csv").write_text(text, encoding="utf-8")
    assert read_ids(tmp_path / "ids.csv", columns=("voter_id", "household_id"), what="id list") == expected


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="id list not found"):
        read_ids(tmp_path / "none.csv", columns=("voter_id",), what="id list")
    (tmp_path / "two.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(MissingColumnsError, match=r"two.csv, line 1: id list has several columns and none named "
                                                  r"voter_id; expected a voter_id column"):
        read_ids(tmp_path / "two.csv", columns=("voter_id",), what="id list")
    (tmp_path / "empty.csv").write_text("voter_id\n\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="id list holds no ids"):
        read_ids(tmp_path / "empty.csv", columns=("voter_id",), what="id list")
