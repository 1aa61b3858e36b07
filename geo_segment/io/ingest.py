"""The ingest stage's files: voters, vote history and signals read, checked and written as Parquet, overlapped.

:func:`ingest_files` does what the pipeline's ``ingest`` stage did step after step (read the voter file with its
history and geocodes, write voters and history, read and write the signals) with the same outputs byte for byte,
but writes the voters and the history on a side thread while the signals are read and written: Parquet encoding
and compression run in Arrow without the GIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from geo_segment._vector import plain_text
from geo_segment.io.atomic import write_parquet
from geo_segment.io.manifest import StageRecord
from geo_segment.io.signals import read_signals
from geo_segment.io.voters import Duplicates, read_voter_file

__all__ = ["IngestFiles", "ingest_files"]


@dataclass
class IngestFiles:
    """What :func:`ingest_files` wrote and found.

    Attributes
    ----------
    records
        The voter file's stage records (``voters``, ``geocodes``, ``history``) then ``signals`` when read.
    rejects
        Rejects of the voter file (with history and geocodes), then of the signals.
    written
        Paths written: ``voters.parquet``, ``vote_history.parquet`` and, with signals, ``signals.parquet``.
    """

    records: list[StageRecord]
    rejects: list[pd.DataFrame]
    written: list[Path]


def ingest_files(
    inputs: Mapping[str, str | Path],
    out_dir: str | Path,
    *,
    layout: str,
    encoding: str | None = None,
    duplicates: Duplicates = "error",
    default_weight: float = 1.0,
) -> IngestFiles:
    """Read the voter file (with ``history``, ``geocodes``, ``election_map``) and ``signals``; write Parquet.

    Parameters
    ----------
    inputs
        Input roles to paths: ``voter_file`` (required), and optionally ``history``, ``geocodes``,
        ``election_map``, ``signals``.
    out_dir
        Folder receiving ``voters.parquet``, ``vote_history.parquet`` and ``signals.parquet`` (atomic writes).
    layout, encoding, duplicates
        As in :func:`geo_segment.io.voters.read_voter_file`.
    default_weight
        As in :func:`geo_segment.io.signals.read_signals`.

    Returns
    -------
    IngestFiles
        Stage records and rejects in the order the stage reports them, and the files written.

    Raises
    ------
    GeoSegmentError
        Whatever the readers raise; files already being written are finished (atomically) first.

    Examples
    --------
    >>> out = ingest_files({"voter_file": "ncvoter.txt", "history": "ncvhis.txt"}, "stage",
    ...                    layout="nc")  # doctest: +SKIP
    >>> [r.name for r in out.records]  # doctest: +SKIP
    ['voters', 'history']
    """
    out = Path(out_dir)
    read = read_voter_file(inputs["voter_file"], layout=layout, history=inputs.get("history"),
                           geocodes=inputs.get("geocodes"), election_map=inputs.get("election_map"),
                           encoding=encoding, duplicates=duplicates)
    written = [out / "voters.parquet", out / "vote_history.parquet"]
    records = list(read.stages)
    rejects = [read.rejects]
    # the voters and history are encoded and compressed on a side thread while the signals are read (on this
    # thread: their warnings stay where callers record them) and written
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as pool:
        voters_job = pool.submit(write_parquet, plain_text(read.voters), written[0])  # as runner._ingest
        history_job = pool.submit(write_parquet, read.history, written[1])
        if "signals" in inputs:
            sig = read_signals(inputs["signals"], default_weight=default_weight)
            written.append(write_parquet(sig.signals, out / "signals.parquet"))
            records.append(sig.stage)
            rejects.append(sig.rejects)
        voters_job.result()
        history_job.result()
    return IngestFiles(records=records, rejects=rejects, written=written)
