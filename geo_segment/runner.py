"""The one-command pipeline: every stage from one TOML file, resumable and incremental.

Each stage writes into its own folder, ``<run>/stages/<stage>/``, and records there (``stage.json``, written last)
the *key* it ran with: a SHA-256 of the stage's code version, the configuration tables it reads, the hashes of the
input files it reads and the keys of the stages it builds on. A re-run skips a stage whose key is unchanged and
whose files are still the ones it wrote, and says so; a changed setting or input re-runs that stage and everything
downstream. A stage that was interrupted has no ``stage.json`` and simply runs again.

After each stage its outputs are *published* into the run folder (hard links, or copies where links are not
possible, each swapped in atomically), so the run folder always has the layout of ``DESIGN.md``: ``voters.parquet``
is the newest stage's voters, ``micro_geos.parquet`` the cluster stage's, and so on; ``manifest.json``,
``rejects.csv`` and ``report.html`` are written at the end.

The library never imports the map code: callers that want maps (the CLI) pass the maps stage in ``stages``
(:func:`geo_segment.maps.pipeline_stages`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo_segment import __version__
from geo_segment import schema as S
from geo_segment._vector import plain_text
from geo_segment.config import Config, InputsConfig, load_config
from geo_segment.errors import ConfigError, InputNotFoundError, Location
from geo_segment.io.atomic import write_csv, write_json
from geo_segment.io.manifest import Manifest, StageRecord, sha256_file

__all__ = [
    "INPUT_ROLES",
    "PipelineResult",
    "StageContext",
    "StageOutput",
    "StageSpec",
    "StageStatus",
    "core_stages",
    "read_id_list",
    "resolve_inputs",
    "run_pipeline",
    "with_turfs",
]

#: keys of the ``[inputs]`` table: files a run reads (paths relative to the configuration file)
INPUT_ROLES = tuple(f.name for f in dataclasses.fields(InputsConfig))

#: bump when a stage's code changes what it writes, so cached stages re-run
#: 2: propensity defaults cv=3, learning rate 0.1; 3: ingest aligns parsed addresses by position (a row without a
#: voter id shifted the later rows' addresses)
_STAGE_CODE_VERSION = "3"
_STATE = "stage.json"


@dataclass
class StageOutput:
    """What a stage function returns: its records, rejects, and the files to publish into the run folder."""

    records: list[StageRecord]
    publish: list[str]
    rejects: list[pd.DataFrame] = field(default_factory=list)


def _file_key(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _FrameMemo:
    """GeoDataFrames this run's stages wrote, handed to later stages of the same process instead of re-reading.

    Each stage reads the voters table an earlier stage wrote (a million rows, a second or two to decode) and writes
    it back with more columns. The memo keeps, per file name, the last frame written *as reading the file back
    would give it* (same dtypes, index, column order and CRS; the geometry objects are the written ones, equal to
    their WKB round trip), keyed by the file's device, inode, size and modification time: the published hard link
    is the same file, and a file changed since (or written by another process) is read from disk as before.
    ``GEO_SEGMENT_NO_MEMO=1`` turns it off.
    """

    def __init__(self) -> None:
        self._frames: dict[str, tuple[tuple[int, int, int, int], Any]] = {}
        self.enabled = os.environ.get("GEO_SEGMENT_NO_MEMO", "") not in ("1", "true", "yes")

    def write(self, frame: Any, path: Path) -> Path:
        from geo_segment.io.atomic import write_parquet

        write_parquet(frame, path)
        if self.enabled:
            import geopandas as gpd

            if isinstance(frame, gpd.GeoDataFrame):
                self._frames[path.name] = (_file_key(path), as_read_back(frame))
        return path

    def read(self, path: Path) -> Any:
        import geopandas as gpd

        hit = self._frames.get(path.name)
        if hit is not None and hit[0] == _file_key(path):
            return hit[1].copy(deep=False)  # copy-on-write: a stage changing it never changes the memo
        return gpd.read_parquet(path)

    def clear(self) -> None:
        self._frames.clear()


def as_read_back(frame: Any) -> Any:
    """``frame`` as ``geopandas.read_parquet`` returns it after :func:`geo_segment.io.atomic.write_parquet` wrote it
    (``index=False``), without the Parquet encoding and decoding: the attribute columns go through the same Arrow
    conversion (``pyarrow.Table.from_pandas`` then ``to_pandas``), the geometry column is kept."""
    import geopandas as gpd
    import pyarrow as pa

    geom = frame.geometry.name
    columns = list(frame.columns)
    plain = pd.DataFrame({c: frame[c] for c in columns if c != geom}, index=frame.index)
    back = pa.Table.from_pandas(plain, preserve_index=False).to_pandas()
    back.insert(columns.index(geom), geom, frame[geom].array)
    out = gpd.GeoDataFrame(back, geometry=geom, crs=frame.crs)
    return out


@dataclass
class StageContext:
    """What a stage function receives."""

    config: Config
    inputs: dict[str, Path]
    run_dir: Path
    stage_dir: Path
    done: dict[str, Path]
    memo: _FrameMemo = field(default_factory=_FrameMemo)

    def read_geo(self, name: str) -> Any:
        """The newest upstream stage's GeoParquet ``name`` as a GeoDataFrame (from the memo when this run wrote it).

        Raises
        ------
        InputNotFoundError
            No earlier stage wrote it.
        """
        return self.memo.read(self.file(name))

    def write_geo(self, frame: Any, name: str) -> Path:
        """Write ``frame`` atomically as the stage's GeoParquet ``name`` and remember it for later stages."""
        return self.memo.write(frame, self.stage_dir / name)

    def optional_file(self, name: str) -> Path | None:
        """The newest upstream stage's file ``name`` (searching stages in reverse order), or ``None``."""
        for folder in reversed(list(self.done.values())):
            if (folder / name).exists():
                return folder / name
        return None

    def file(self, name: str) -> Path:
        """The newest upstream stage's file ``name``.

        Raises
        ------
        InputNotFoundError
            No earlier stage wrote it.
        """
        found = self.optional_file(name)
        if found is None:
            raise InputNotFoundError(f"no earlier stage wrote {name}", where=Location(self.run_dir),
                                     fix="run the earlier stages first (drop --only / --from)")
        return found


@dataclass(frozen=True)
class StageSpec:
    """One pipeline stage: its name, the configuration tables and inputs it reads, the stages it builds on."""

    name: str
    run: Callable[[StageContext], StageOutput]
    sections: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    #: returns a reason to leave the stage out of this run (its inputs are missing), or None to run it
    skip_if: Callable[[StageContext], str | None] | None = None


@dataclass
class StageStatus:
    """How a stage went in this run: ``ran``, ``up-to-date``, ``kept`` (before ``--from``) or ``left out``."""

    name: str
    status: str
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    key: str | None = None
    reason: str | None = None


@dataclass
class PipelineResult:
    """A finished run: its folder, manifest, per-stage status and the top-level files."""

    out_dir: Path
    manifest: Manifest
    statuses: list[StageStatus]
    outputs: dict[str, Path]

    @property
    def stages(self) -> list[StageRecord]:
        """Stage records in run order (what the summary table shows)."""
        return self.manifest.stages


# ------------------------------------------------------------------------------------------------------------------
# inputs and keys
# ------------------------------------------------------------------------------------------------------------------


def resolve_inputs(config: Config, base: str | Path | None = None, *, skip: Sequence[str] = ()) -> dict[str, Path]:
    """The files of the ``[inputs]`` table that are set, as paths; relative paths start at ``base``.

    ``base`` is the configuration file's folder (the current folder when ``None``); roles in ``skip`` are left
    out (the caller names those files itself).

    Raises
    ------
    InputNotFoundError
        A named file does not exist.
    """
    root = Path(base) if base is not None else Path.cwd()
    out: dict[str, Path] = {}
    for role, value in dataclasses.asdict(config.inputs).items():
        if not value or role in skip:
            continue
        path = Path(value) if Path(value).is_absolute() else root / value
        if not path.exists():
            raise InputNotFoundError(f"[inputs] {role} file not found", where=Location(path),
                                     fix=f"correct {role} in [inputs] (relative paths start at the config's folder)")
        out[role] = path
    return out


class _Hashes:
    """SHA-256 of input files, computed once per run (in a background thread once :meth:`prefetch` asked)."""

    def __init__(self) -> None:
        self._cache: dict[Path, str] = {}
        self._pending: dict[Path, Future[str]] = {}

    def prefetch(self, paths: Sequence[Path]) -> None:
        """Start hashing ``paths`` (files) in a background daemon thread: a fresh run's first stage reads the
        inputs while they are hashed (``hashlib`` releases the GIL), instead of after. A failing run exits without
        waiting for it."""
        todo = [p for p in paths if p.is_file() and p not in self._cache and p not in self._pending]
        if not todo:
            return
        futures: list[tuple[Path, Future[str]]] = [(p, Future()) for p in todo]
        self._pending.update(dict(futures))

        def work() -> None:
            for p, fut in futures:
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    fut.set_result(sha256_file(p))
                except BaseException as exc:
                    fut.set_exception(exc)

        threading.Thread(target=work, name="geo-segment-hash", daemon=True).start()

    def close(self) -> None:
        """Cancel what was prefetched and not yet asked for."""
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()

    def __call__(self, path: Path) -> str:
        if path in self._pending:
            self._cache[path] = self._pending.pop(path).result()
        if path not in self._cache:
            if path.is_dir():
                digest = hashlib.sha256()
                for f in sorted(p for p in path.rglob("*") if p.is_file()):
                    digest.update(str(f.relative_to(path)).encode() + b"\0" + sha256_file(f).encode())
                self._cache[path] = digest.hexdigest()
            else:
                self._cache[path] = sha256_file(path)
        return self._cache[path]


#: settings that change how fast a stage runs, never what it writes: left out of the stage keys
_SPEED_ONLY = {"turfs": ("workers",)}


def _outputs_settings(section: str, table: Any) -> Any:
    if isinstance(table, dict) and section in _SPEED_ONLY:
        return {k: v for k, v in table.items() if k not in _SPEED_ONLY[section]}
    return table


def _stage_key(spec: StageSpec, cfg: dict[str, Any], inputs: dict[str, Path], upstream: dict[str, str],
               hashes: _Hashes) -> str:
    payload = {
        "stage": spec.name,
        "code": [__version__, _STAGE_CODE_VERSION],
        "config": {s: _outputs_settings(s, cfg.get(s)) for s in spec.sections},
        "inputs": {r: hashes(inputs[r]) for r in spec.inputs if r in inputs},
        "upstream": {n: upstream[n] for n in spec.needs if n in upstream},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _files(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (but the stage state and hidden files), by relative path.

    A turf stage writes tens of thousands of walk lists and packets, so the files are listed with ``os.walk`` and
    hashed by two threads (``hashlib`` releases the GIL).
    """
    rel: list[str] = []
    for root, _dirs, names in os.walk(folder):
        base = os.path.relpath(root, folder)
        for name in names:
            if name != _STATE and not name.startswith(".") and os.path.isfile(os.path.join(root, name)):
                rel.append(name if base == "." else os.path.join(base, name))
    rel.sort()
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(lambda r: sha256_file(folder / r), rel))
    return dict(zip(rel, digests, strict=True))


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((folder / _STATE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


def _up_to_date(folder: Path, key: str) -> dict[str, Any] | None:
    state = _read_state(folder)
    if state is None or state.get("key") != key:
        return None
    files = state.get("files", {})
    for rel, digest in files.items():
        p = folder / rel
        if not p.is_file() or sha256_file(p) != digest:
            return None
    return state


# ------------------------------------------------------------------------------------------------------------------
# memory and publishing
# ------------------------------------------------------------------------------------------------------------------


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _publish(stage_dir: Path, run_dir: Path, names: Sequence[str]) -> list[Path]:
    """Swap the stage's files and folders ``names`` into the run folder, each atomically."""
    done = []
    for name in names:
        src = stage_dir / name
        dst = run_dir / name
        if not src.exists():
            continue
        tmp = run_dir / f".{name}.publish.tmp"
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
        if src.is_dir():
            for root, _dirs, files in os.walk(src):
                target_dir = tmp / os.path.relpath(root, src)
                target_dir.mkdir(parents=True, exist_ok=True)
                for fname in files:
                    if os.path.isfile(os.path.join(root, fname)):
                        _link_or_copy(Path(root, fname), target_dir / fname)
            tmp.mkdir(exist_ok=True)
            old = run_dir / f".{name}.old.tmp"
            if dst.exists():
                if old.exists():
                    shutil.rmtree(old)
                os.replace(dst, old)
            os.replace(tmp, dst)
            if old.exists():
                shutil.rmtree(old)
        elif not (dst.is_file() and os.path.samefile(src, dst)):
            _link_or_copy(src, tmp)
            os.replace(tmp, dst)
            if tmp.exists():  # rename() between two links of one file does nothing
                tmp.unlink()
        done.append(dst)
    return done


def _sweep_partial_files(run_dir: Path) -> int:
    """Remove temp files a killed writer left behind (``.<name>.*.tmp``); return how many."""
    n = 0
    if not run_dir.exists():
        return 0
    for p in sorted(run_dir.rglob(".*.tmp"), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        n += 1
    return n


# ------------------------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------------------------

Progress = Callable[[str, str, dict[str, Any]], None]


def _noop(event: str, stage: str, info: dict[str, Any]) -> None:
    return None


def run_pipeline(
    config: str | Path | Config,
    out_dir: str | Path,
    *,
    inputs: dict[str, Path] | None = None,
    stages: Sequence[StageSpec] | None = None,
    from_stage: str | None = None,
    only: str | None = None,
    progress: Progress | None = None,
    command: str = "run",
    report: bool = True,
) -> PipelineResult:
    """Run every stage (or the ones asked for) into ``out_dir``; skip stages that are up to date.

    Parameters
    ----------
    config
        A configuration file (its ``[inputs]`` table names the files, relative to the file) or a
        :class:`~geo_segment.config.Config` (then ``inputs`` names the files).
    out_dir
        The run folder.
    inputs
        Input files by role (see :data:`INPUT_ROLES`); overrides the ``[inputs]`` table.
    stages
        The stages, in order (default :func:`core_stages`; the CLI adds the maps stage).
    from_stage
        Re-run this stage and every later one; earlier stages must have run before and are kept as they are.
    only
        Re-run this stage alone; the stages it builds on must have run before.
    progress
        Called with ``(event, stage, info)``; events ``start``, ``skip``, ``done``.
    command
        The manifest's command name.
    report
        Write ``report.html``.

    Returns
    -------
    PipelineResult

    Raises
    ------
    ConfigError
        Unknown stage names, both ``from_stage`` and ``only``, or a bad configuration.
    InputNotFoundError
        A named input is missing, or ``--only`` / ``--from`` without the earlier stages' outputs.
    """
    if isinstance(config, Config):
        cfg, config_path = config, None
    else:
        config_path = Path(config)
        cfg = load_config(config_path)
    files = resolve_inputs(cfg, config_path.resolve().parent if config_path is not None else None,
                           skip=list(inputs or {}))
    files.update(inputs or {})
    specs = list(stages) if stages is not None else core_stages()
    names = [s.name for s in specs]
    for flag, value in (("--from", from_stage), ("--only", only)):
        if value is not None and value not in names:
            raise ConfigError(f"{flag} names an unknown stage", expected=f"one of {names}", found=repr(value),
                              fix=f"use {flag} {names[0]}")
    if from_stage is not None and only is not None:
        raise ConfigError("--from and --only together", expected="one of them", found="both",
                          fix="use --only STAGE for one stage, --from STAGE for it and everything after")
    emit = progress or _noop
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    swept = _sweep_partial_files(out)
    cfg_dict = cfg.to_dict()
    man = Manifest(command=command, parameters={"config": cfg_dict, "from": from_stage, "only": only,
                                                "stages": names})
    if config_path is not None:
        man.add_input("config", config_path)
    hashes = _Hashes()
    hashes.prefetch(list(files.values()))  # listed in the manifest after the stages ran
    keys: dict[str, str] = {}
    done: dict[str, Path] = {}
    statuses: list[StageStatus] = []
    rejects: list[pd.DataFrame] = []
    first_forced = names.index(from_stage) if from_stage is not None else None
    memo = _FrameMemo()
    for i, spec in enumerate(specs):
        folder = out / "stages" / spec.name
        ctx = StageContext(config=cfg, inputs=files, run_dir=out, stage_dir=folder, done=dict(done), memo=memo)
        reason = spec.skip_if(ctx) if spec.skip_if is not None else None
        missing_needs = [n for n in spec.needs if n in names and n not in keys]
        if reason is None and missing_needs:
            reason = f"needs {', '.join(missing_needs)}"
        if reason is not None:
            statuses.append(StageStatus(spec.name, "left out", reason=reason))
            emit("skip", spec.name, {"status": "left out", "reason": reason})
            continue
        key: str | None = None
        if (folder / _STATE).exists():  # a fresh stage's key waits until it ran (its inputs hash meanwhile)
            key = _stage_key(spec, cfg_dict, files, keys, hashes)
        keep = (only is not None and spec.name != only) or (first_forced is not None and i < first_forced)
        forced = only == spec.name or (first_forced is not None and i >= first_forced)
        if only is not None and spec.name != only and names.index(spec.name) > names.index(only):
            statuses.append(StageStatus(spec.name, "not asked", reason="--only"))
            continue
        state = None
        if keep:
            state = _read_state(folder)
            if state is None:
                raise InputNotFoundError(
                    f"stage {spec.name} has not run in this folder", where=Location(folder),
                    fix=f"run the whole pipeline once before using --only/--from (or --from {spec.name})")
            keys[spec.name] = state["key"]
            status = StageStatus(spec.name, "kept", key=state["key"], reason="before --from/--only")
        elif not forced and key is not None and (state := _up_to_date(folder, key)) is not None:
            keys[spec.name] = key
            status = StageStatus(spec.name, "up-to-date", key=key)
        else:
            state = None
        if state is not None:
            for rec in state.get("records", []):
                man.add_stage(StageRecord(**rec))
            if (folder / "rejects.csv").exists():
                rejects.append(pd.read_csv(folder / "rejects.csv", dtype="str", keep_default_na=False))
            _publish(folder, out, state.get("publish", []))
            done[spec.name] = folder
            statuses.append(status)
            emit("skip", spec.name, {"status": status.status})
            continue
        emit("start", spec.name, {})
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        measured = _reset_peak_rss()
        t0 = time.perf_counter()
        produced = spec.run(ctx)
        seconds = round(time.perf_counter() - t0, 3)
        peak = _peak_rss_mb() if measured else None
        if key is None:
            key = _stage_key(spec, cfg_dict, files, keys, hashes)
        if produced.rejects:
            frames = [r for r in produced.rejects if len(r)]
            stage_rejects = pd.concat(frames, ignore_index=True) if frames else S.empty_rejects()
            write_csv(stage_rejects[list(S.REJECT_COLUMNS)], folder / "rejects.csv")
            rejects.append(pd.read_csv(folder / "rejects.csv", dtype="str", keep_default_na=False))
        for rec in produced.records:
            man.add_stage(rec)
        write_json({"key": key, "stage": spec.name, "files": _files(folder), "publish": produced.publish,
                    "records": [dataclasses.asdict(r) for r in produced.records], "seconds": seconds,
                    "peak_rss_mb": peak}, folder / _STATE)
        _publish(folder, out, produced.publish)
        keys[spec.name] = key
        done[spec.name] = folder
        statuses.append(StageStatus(spec.name, "ran", seconds=seconds, peak_rss_mb=peak, key=key))
        emit("done", spec.name, {"seconds": seconds, "peak_rss_mb": peak})
    memo.clear()
    for role, p in files.items():
        if p.is_file():
            man.inputs.append({"role": role, "path": str(p), "bytes": p.stat().st_size, "sha256": hashes(p)})
    hashes.close()
    outputs: dict[str, Path] = {}
    all_rejects = pd.concat(rejects, ignore_index=True) if rejects else S.empty_rejects()
    outputs["rejects"] = write_csv(all_rejects, out / "rejects.csv")
    man.parameters["pipeline"] = [dataclasses.asdict(s) for s in statuses]
    man.parameters["partial_files_removed"] = swept
    man.outputs = sorted({str(p.relative_to(out)) for p in out.iterdir()
                          if p.name not in ("stages", "manifest.json", "report.html") and not p.name.startswith(".")}
                         | {"rejects.csv"})
    outputs["manifest"] = man.write(out)
    result = PipelineResult(out_dir=out, manifest=man, statuses=statuses, outputs=outputs)
    if report:
        from geo_segment.report import write_report

        outputs["report"] = write_report(result)
    return result


# ------------------------------------------------------------------------------------------------------------------
# the core stages
# ------------------------------------------------------------------------------------------------------------------


def _need_input(role: str) -> Callable[[StageContext], str | None]:
    def check(ctx: StageContext) -> str | None:
        return None if role in ctx.inputs else f"no [inputs] {role}"
    return check


def _ingest(ctx: StageContext) -> StageOutput:
    from geo_segment.io.atomic import write_parquet
    from geo_segment.io.signals import read_signals
    from geo_segment.io.voters import read_voter_file

    cfg = ctx.config
    read = read_voter_file(ctx.inputs["voter_file"], layout=cfg.ingest.layout, history=ctx.inputs.get("history"),
                           geocodes=ctx.inputs.get("geocodes"), election_map=ctx.inputs.get("election_map"),
                           encoding=cfg.ingest.encoding, duplicates=cfg.ingest.duplicates)  # type: ignore[arg-type]
    # the run folder keeps plain strings: the later stages build text row by row and ran 9 s slower at 1M voters
    # on categoricals (docs/ingest.md); the compact text stays the in-memory form of read_voter_file
    ctx.write_geo(plain_text(read.voters), "voters.parquet")
    write_parquet(read.history, ctx.stage_dir / "vote_history.parquet")
    records = list(read.stages)
    rejects = [read.rejects]
    publish = ["vote_history.parquet"]
    if "signals" in ctx.inputs:
        sig = read_signals(ctx.inputs["signals"], default_weight=cfg.signals.default_weight)
        ctx.write_geo(sig.signals, "signals.parquet")
        records.append(sig.stage)
        rejects.append(sig.rejects)
    return StageOutput(records=records, publish=publish, rejects=rejects)


def _join(ctx: StageContext) -> StageOutput:

    from geo_segment.io.atomic import write_parquet
    from geo_segment.io.precincts import read_precincts
    from geo_segment.pipeline import join_and_aggregate

    cfg = ctx.config
    t0 = time.perf_counter()
    pre = read_precincts(str(ctx.inputs["precincts"]), id_col=cfg.precincts.id_col,
                         area_tolerance=cfg.precincts.area_tolerance)
    pre.stage.seconds = pre.stage.seconds or round(time.perf_counter() - t0, 3)
    voters = ctx.read_geo("voters.parquet")
    history = pd.read_parquet(ctx.file("vote_history.parquet"))
    signals = ctx.read_geo("signals.parquet") if ctx.optional_file("signals.parquet") is not None else None
    joined = join_and_aggregate(voters, pre.precincts, id_col=S.PRECINCT_ID, history=history, signals=signals,
                                config=cfg)
    ctx.write_geo(joined.voters, "voters.parquet")
    write_parquet(joined.cells, ctx.stage_dir / "cells.parquet")
    write_parquet(joined.precincts, ctx.stage_dir / "precincts.parquet")
    publish = ["voters.parquet", "cells.parquet", "precincts.parquet"]
    if joined.signals is not None:
        ctx.write_geo(joined.signals, "signals.parquet")
        publish.append("signals.parquet")
    return StageOutput(records=[pre.stage, *joined.stages], publish=publish, rejects=[pre.rejects])


def _score(ctx: StageContext) -> StageOutput:

    from geo_segment.pipeline import read_seed_ids, score_stage
    from geo_segment.scoring import PropensityModel

    voters = ctx.read_geo("voters.parquet")
    history = pd.read_parquet(ctx.file("vote_history.parquet"))
    signals = ctx.read_geo("signals.parquet") if ctx.optional_file("signals.parquet") is not None else None
    model = PropensityModel.load(ctx.inputs["model"]) if "model" in ctx.inputs else None
    seeds = read_seed_ids(ctx.inputs["seeds"]) if "seeds" in ctx.inputs else None
    result = score_stage(voters, history, signals, config=ctx.config, model=model, seeds=seeds)
    ctx.write_geo(result.voters, "voters.parquet")
    publish = ["voters.parquet"]
    if result.model is not None and model is None:
        result.model.save(ctx.stage_dir / "model.joblib")
        result.model.calibration_plot(ctx.stage_dir / "calibration.png")
        publish += ["model.joblib", "calibration.png"]
    return StageOutput(records=[result.stage], publish=publish)


def _cluster(ctx: StageContext) -> StageOutput:

    from geo_segment.clustering import cluster_stage
    from geo_segment.io.atomic import write_parquet

    voters = ctx.read_geo("voters.parquet")
    cfg = ctx.config
    clustered, micro_geos, record = cluster_stage(voters, **cfg.cluster.options(voters.columns, k_min=cfg.join.k_min))
    ctx.write_geo(clustered, "voters.parquet")
    write_parquet(micro_geos, ctx.stage_dir / "micro_geos.parquet")
    return StageOutput(records=[record], publish=["voters.parquet", "micro_geos.parquet"])


def read_id_list(path: str | Path) -> set[str]:
    """Voter and household ids of a do-not-contact list (see :func:`geo_segment.io.ids.read_ids`)."""
    from geo_segment.io.ids import read_ids

    return set(read_ids(path, columns=(S.VOTER_ID, S.HOUSEHOLD_ID), what="id list"))


def _holdout(ctx: StageContext, voters: Any, records: list[StageRecord]) -> Any:
    """Voters without the experiment's holdout units (recorded as dropped), or all of them without a design."""
    design = ctx.inputs.get("experiment_design")
    if design is None:
        return voters
    from geo_segment.experiments import exclude_holdout

    t0 = time.perf_counter()
    kept = exclude_holdout(voters, design)
    records.append(StageRecord("holdout", rows_in=len(voters), rows_out=len(kept), rows_rejected=0,
                               rows_dropped=len(voters) - len(kept), seconds=round(time.perf_counter() - t0, 3),
                               metrics={"reason": "held out by the experiment design (never contacted or targeted)",
                                        "design": str(design)}))
    return kept


def _turfs(ctx: StageContext) -> StageOutput:
    import geopandas as gpd

    from geo_segment.io.atomic import write_parquet
    from geo_segment.turfs import turf_stage
    from geo_segment.turfs.results import import_results, read_results

    cfg = ctx.config
    voters = ctx.read_geo("voters.parquet")
    precincts = gpd.read_parquet(ctx.file("precincts.parquet"))
    records: list[StageRecord] = []
    rejects: list[pd.DataFrame] = []
    contact_history = None
    publish = ["turfs.parquet", "routes.parquet", "doors.parquet", "door_members.parquet", "walklists", "packets"]
    if "contact_results" in ctx.inputs:
        t0 = time.perf_counter()
        results = read_results(ctx.inputs["contact_results"])
        contact_history, rep = import_results(results, voters, None, result_codes=cfg.turfs.result_codes,
                                              source_file=str(ctx.inputs["contact_results"]))
        write_parquet(contact_history, ctx.stage_dir / "contact_history.parquet")
        publish.append("contact_history.parquet")
        records.append(StageRecord("results", rows_in=rep.rows, rows_out=rep.added, rows_rejected=len(rep.rejects),
                                   rows_dropped=rep.duplicates, seconds=round(time.perf_counter() - t0, 3),
                                   metrics={**rep.metrics, "duplicates_dropped": rep.duplicates}))
        rejects.append(rep.rejects)
    everyone = voters
    voters = _holdout(ctx, voters, records)
    dnc = read_id_list(ctx.inputs["do_not_contact"]) if "do_not_contact" in ctx.inputs else None
    barriers = gpd.read_file(ctx.inputs["barriers"]).to_crs(4326) if "barriers" in ctx.inputs else None
    # no vote history: the run's universe has no turnout filter (which would say it needs one)
    result = turf_stage(voters, precincts, ctx.stage_dir, cfg.turfs, history=None,
                        contact_history=contact_history, exclude_contacted=contact_history is not None,
                        do_not_contact=dnc, barriers=barriers, packets=True, pdf=False)
    records.extend(result.stages)
    ctx.write_geo(with_turfs(everyone, ctx.stage_dir), "voters.parquet")
    return StageOutput(records=records, publish=["voters.parquet", *publish], rejects=rejects)


def with_turfs(voters: Any, turf_dir: Path) -> Any:
    """``voters`` with ``turf_id`` and ``door_order`` (null for voters behind no door) from a turf stage's
    ``door_members.parquet`` and ``doors.parquet``; rows, order and index kept."""
    from geo_segment._vector import index_in_str, take_str

    members = pd.read_parquet(turf_dir / "door_members.parquet", columns=[S.VOTER_ID, "door_id"])
    doors = pd.read_parquet(turf_dir / "doors.parquet", columns=["door_id", S.TURF_ID, S.DOOR_ORDER])
    door_of_member = index_in_str(members["door_id"].astype("str"), doors["door_id"].astype("str"))
    member = index_in_str(voters[S.VOTER_ID].astype("str"), members[S.VOTER_ID].astype("str"))
    door = np.where(member >= 0, door_of_member[np.maximum(member, 0)], -1)
    out = voters.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    out[S.TURF_ID] = take_str(doors[S.TURF_ID].astype("str"), door, index=out.index)
    out[S.DOOR_ORDER] = pd.Series(doors[S.DOOR_ORDER].astype("Int64").array.take(door, allow_fill=True),
                                  index=out.index)
    return out


def _exports(ctx: StageContext) -> StageOutput:
    import geopandas as gpd

    from geo_segment.exports.stage import export_stage

    records: list[StageRecord] = []
    voters = _holdout(ctx, ctx.read_geo("voters.parquet"), records)
    design = ctx.inputs.get("experiment_design")
    layers: dict[str, Any] = {}
    for name in ("micro_geos", "turfs", "precincts"):
        path = ctx.optional_file(f"{name}.parquet")
        layer = gpd.read_parquet(path) if path is not None else None
        if layer is not None and design is not None:
            from geo_segment.experiments import exclude_holdout

            layer = exclude_holdout(layer, design, strict=False)  # drops polygons only for a unit of that layer
        layers[name] = layer
    _, record = export_stage(voters, layers["micro_geos"], layers["precincts"], ctx.stage_dir / "exports",
                             ctx.config, turfs=layers["turfs"], population=ctx.inputs.get("population"))
    return StageOutput(records=[*records, record], publish=["exports"])


def _needs_purpose(ctx: StageContext) -> str | None:
    return None if ctx.config.export.purpose else "no [export] purpose (required to export)"


def core_stages() -> list[StageSpec]:
    """The library's stages in order: ingest, join, score, cluster, turfs, exports.

    The maps stage lives in ``geo_segment.maps`` (the library never imports folium); see
    :func:`geo_segment.maps.pipeline_stages`.
    """
    specs = [
        StageSpec("ingest", _ingest, sections=("ingest", "signals"),
                  inputs=("voter_file", "history", "geocodes", "election_map", "signals"),
                  skip_if=_need_input("voter_file")),
        StageSpec("join", _join, sections=("precincts", "join"), inputs=("precincts",), needs=("ingest",),
                  skip_if=_need_input("precincts")),
        StageSpec("score", _score, sections=("scores",), inputs=("model", "seeds"), needs=("join",)),
        StageSpec("cluster", _cluster, sections=("cluster", "join"), needs=("score",)),
        StageSpec("turfs", _turfs, sections=("turfs",),
                  inputs=("contact_results", "do_not_contact", "barriers", "experiment_design"), needs=("cluster",)),
        StageSpec("exports", _exports, sections=("export", "join"), inputs=("population", "experiment_design"),
                  needs=("cluster", "turfs"), skip_if=_needs_purpose),
    ]
    return specs
