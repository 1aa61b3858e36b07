"""Worker processes for the turf stage: regions are cut, and turfs written, by forked workers.

The turf stage runs one stage at a time on a machine whose other cores would sit idle; its two heavy parts are
independent by construction: every region (precinct) is cut on its own (per-region randomness, see
:mod:`geo_segment.turfs.cut`), and every turf's walk list and packet depends on that turf only. Both are spread over
``workers`` processes started with ``fork`` (Linux): a worker inherits the stage's arrays and frames copy-on-write
(nothing is pickled on the way in; only small task numbers and the results travel), so a worker costs a fork, not a
copy of the voter file. Where ``fork`` is unavailable (Windows, macOS's default), for small inputs (fewer than
:data:`MIN_PARALLEL_DOORS` doors) and with ``workers = 1`` everything runs in the calling process. The results are
the same, bit for bit, whatever the number of workers (tested).

A worker that raises or dies (killed, out of memory) stops the stage with :class:`TurfWorkerError` (a
``GeoSegmentError``); a :class:`~geo_segment.errors.GeoSegmentError` raised inside a worker reaches the caller as
itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import numpy.typing as npt

from geo_segment.errors import ConfigError, GeoSegmentError

__all__ = ["MIN_PARALLEL_DOORS", "TurfWorkerError", "balanced_groups", "fork_available", "resolve_workers",
           "run_tasks"]

#: inputs with fewer doors than this run in the calling process (a fork costs more than it saves)
MIN_PARALLEL_DOORS = 20_000

#: the most workers ``"auto"`` picks (the stage's parallel part halves with two; memory grows with each)
AUTO_MAX_WORKERS = 2


class TurfWorkerError(GeoSegmentError, RuntimeError):
    """A turf stage worker process failed (raised an error, or died: killed, out of memory)."""


def fork_available() -> bool:
    """Whether worker processes can be started with ``fork`` here (Linux; not Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def resolve_workers(workers: int | str, n_doors: int) -> int:
    """The number of processes to use for ``n_doors`` doors: ``workers`` (an int >= 1 or ``"auto"``: the CPU
    count, at most :data:`AUTO_MAX_WORKERS`), or 1 for small inputs or where ``fork`` is unavailable.

    Raises
    ------
    ConfigError
        ``workers`` is neither ``"auto"`` nor a positive integer.

    Examples
    --------
    >>> resolve_workers(1, 1_000_000)
    1
    >>> resolve_workers("auto", 10)
    1
    """
    if workers == "auto":
        wanted = min(AUTO_MAX_WORKERS, os.cpu_count() or 1)
    elif isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
        wanted = workers
    else:
        raise ConfigError("[turfs] workers must be \"auto\" or a positive integer", found=repr(workers),
                          fix='set workers = "auto" (default), 1 (no worker processes) or 2')
    if wanted <= 1 or n_doors < MIN_PARALLEL_DOORS or not fork_available():
        return 1
    return wanted


def balanced_groups(sizes: npt.ArrayLike, n_groups: int) -> list[npt.NDArray[np.int64]]:
    """Split items of the given sizes into ``n_groups`` groups of similar total size (largest first, each to the
    lightest group; ties by position), each group's items in ascending order. Deterministic.

    Examples
    --------
    >>> [g.tolist() for g in balanced_groups([5, 1, 4, 2], 2)]
    [[0, 1], [2, 3]]
    """
    s = np.asarray(sizes, dtype=float)
    load = np.zeros(max(1, n_groups))
    members: list[list[int]] = [[] for _ in range(len(load))]
    for i in np.argsort(-s, kind="stable").tolist():
        g = int(np.argmin(load))
        load[g] += s[i]
        members[g].append(i)
    return [np.sort(np.asarray(m, dtype=np.int64)) for m in members if m]


# set in each worker process by _init (inherited through fork, never pickled); unused in the calling process
_WORKER: dict[str, Any] = {}


def _init(fn: Callable[[Any, int], Any], shared: Any) -> None:
    _WORKER["fn"] = fn
    _WORKER["shared"] = shared


def _task(i: int) -> Any:
    return _WORKER["fn"](_WORKER["shared"], i)


def run_tasks(fn: Callable[[Any, int], Any], shared: Any, n_tasks: int, *, workers: int,
              what: str = "turf stage") -> list[Any]:
    """``[fn(shared, i) for i in range(n_tasks)]``, in ``workers`` forked processes when ``workers > 1``.

    ``shared`` reaches the workers through ``fork`` (copy-on-write, not pickled); ``fn`` must be a module-level
    function and its results picklable. Results come back in task order.

    Raises
    ------
    TurfWorkerError
        A task raised an error other than a ``GeoSegmentError`` (chained), or a worker died.
    GeoSegmentError
        As raised by a task.
    """
    if workers <= 1 or n_tasks <= 1 or not fork_available() or multiprocessing.current_process().daemon:
        # (a daemonic process, e.g. another pool's worker, may not start processes)
        return [fn(shared, i) for i in range(n_tasks)]
    for stream in (sys.stdout, sys.stderr):  # a forked worker would write the caller's unflushed output again
        with contextlib.suppress(Exception):
            stream.flush()
    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=min(workers, n_tasks), mp_context=ctx, initializer=_init,
                               initargs=(fn, shared))
    try:
        futures = [pool.submit(_task, i) for i in range(n_tasks)]
        return [f.result() for f in futures]
    except GeoSegmentError:
        raise
    except BrokenProcessPool as exc:
        raise TurfWorkerError(f"a worker process of the {what} died", found=str(exc) or type(exc).__name__,
                              fix="free memory or set [turfs] workers = 1 (no worker processes)") from exc
    except Exception as exc:
        raise TurfWorkerError(f"a worker process of the {what} failed", found=f"{type(exc).__name__}: {exc}",
                              fix="set [turfs] workers = 1 to run in one process and see the full error") from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
