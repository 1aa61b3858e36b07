"""The pipeline runner: keys, skipping, --from / --only, resuming after a failure or a kill, publishing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from geo_segment.config import Config, JoinConfig
from geo_segment.errors import ConfigError, InputNotFoundError
from geo_segment.io.atomic import write_csv
from geo_segment.io.manifest import StageRecord
from geo_segment.runner import StageContext, StageOutput, StageSpec, run_pipeline

CALLS: list[str] = []


def _first(ctx: StageContext) -> StageOutput:
    CALLS.append("first")
    src = pd.read_csv(ctx.inputs["voter_file"], dtype="str")
    write_csv(src, ctx.stage_dir / "table.csv")
    bad = pd.DataFrame({"file": ["v.csv"], "line": ["3"], "scope": ["row"], "column": [""], "reason": ["bad"]})
    return StageOutput(records=[StageRecord("first", rows_in=len(src) + 1, rows_out=len(src), rows_rejected=1,
                                            seconds=0.0)], publish=["table.csv"], rejects=[bad])


def _second(ctx: StageContext) -> StageOutput:
    CALLS.append("second")
    table = pd.read_csv(ctx.file("table.csv"), dtype="str")
    table["k"] = str(ctx.config.join.k_min)
    write_csv(table, ctx.stage_dir / "table.csv")
    (ctx.stage_dir / "lists").mkdir()
    for i in range(len(table)):
        write_csv(table.iloc[[i]], ctx.stage_dir / "lists" / f"{i}.csv")
    return StageOutput(records=[StageRecord("second", rows_in=len(table), rows_out=len(table), rows_rejected=0,
                                            seconds=0.0)], publish=["table.csv", "lists"])


def _third(ctx: StageContext) -> StageOutput:
    CALLS.append("third")
    table = pd.read_csv(ctx.file("table.csv"), dtype="str")
    write_csv(table.head(1), ctx.stage_dir / "summary.csv")
    return StageOutput(records=[StageRecord("third", rows_in=len(table), rows_out=len(table), rows_rejected=0,
                                            seconds=0.0)], publish=["summary.csv"])


STAGES = [
    StageSpec("first", _first, sections=("ingest",), inputs=("voter_file",)),
    StageSpec("second", _second, sections=("join",), needs=("first",)),
    StageSpec("third", _third, needs=("second",)),
]


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path]:
    CALLS.clear()
    (tmp_path / "v.csv").write_text("voter_id\nA1\nA2\n", encoding="utf-8")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs]\nvoter_file = "v.csv"\n[join]\nk_min = 11\n', encoding="utf-8")
    return cfg, tmp_path / "run"


def _statuses(out: Path) -> dict[str, str]:
    man = json.loads((out / "manifest.json").read_text())
    return {s["name"]: s["status"] for s in man["parameters"]["pipeline"]}


def test_first_run_runs_everything_and_publishes(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    result = run_pipeline(cfg, out, stages=STAGES, report=False)
    assert CALLS == ["first", "second", "third"]
    assert [s.status for s in result.statuses] == ["ran"] * 3
    # the run folder holds the newest stage's table, the lists folder, the rejects of every stage
    assert pd.read_csv(out / "table.csv", dtype="str")["k"].tolist() == ["11", "11"]
    assert sorted(p.name for p in (out / "lists").iterdir()) == ["0.csv", "1.csv"]
    assert pd.read_csv(out / "rejects.csv")["reason"].tolist() == ["bad"]
    man = json.loads((out / "manifest.json").read_text())
    assert [i["role"] for i in man["inputs"]] == ["config", "voter_file"]
    assert man["stages"]["first"]["rows_rejected"] == 1
    assert {"table.csv", "lists", "summary.csv", "rejects.csv"} <= set(man["outputs"])


def test_rerun_skips_what_is_up_to_date(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    run_pipeline(cfg, out, stages=STAGES, report=False)
    CALLS.clear()
    result = run_pipeline(cfg, out, stages=STAGES, report=False)
    assert CALLS == []
    assert [s.status for s in result.statuses] == ["up-to-date"] * 3
    assert pd.read_csv(out / "rejects.csv")["reason"].tolist() == ["bad"]  # rejects are kept from the cache
    man = json.loads((out / "manifest.json").read_text())
    assert man["stages"]["first"]["rows_rejected"] == 1


def test_a_changed_setting_reruns_its_stage_and_everything_downstream(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    run_pipeline(cfg, out, stages=STAGES, report=False)
    CALLS.clear()
    cfg.write_text('[inputs]\nvoter_file = "v.csv"\n[join]\nk_min = 5\n', encoding="utf-8")
    run_pipeline(cfg, out, stages=STAGES, report=False)
    assert CALLS == ["second", "third"]
    assert _statuses(out) == {"first": "up-to-date", "second": "ran", "third": "ran"}
    assert pd.read_csv(out / "table.csv", dtype="str")["k"].tolist() == ["5", "5"]


def test_a_changed_input_file_reruns_from_the_start(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    run_pipeline(cfg, out, stages=STAGES, report=False)
    CALLS.clear()
    (cfg.parent / "v.csv").write_text("voter_id\nA1\nA2\nA3\n", encoding="utf-8")
    run_pipeline(cfg, out, stages=STAGES, report=False)
    assert CALLS == ["first", "second", "third"]
    assert sorted(p.name for p in (out / "lists").iterdir()) == ["0.csv", "1.csv", "2.csv"]


def test_an_edited_output_is_not_trusted(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    run_pipeline(cfg, out, stages=STAGES, report=False)
    CALLS.clear()
    (out / "stages" / "second" / "table.csv").write_text("voter_id,k\nX,1\n", encoding="utf-8")
    run_pipeline(cfg, out, stages=STAGES, report=False)
    assert CALLS == ["second"]  # rebuilt; the third stage's key (inputs and settings) did not change
    assert pd.read_csv(out / "table.csv", dtype="str")["voter_id"].tolist() == ["A1", "A2"]


def test_from_and_only(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    run_pipeline(cfg, out, stages=STAGES, report=False)
    CALLS.clear()
    run_pipeline(cfg, out, stages=STAGES, from_stage="second", report=False)
    assert CALLS == ["second", "third"]
    assert _statuses(out) == {"first": "kept", "second": "ran", "third": "ran"}
    CALLS.clear()
    run_pipeline(cfg, out, stages=STAGES, only="second", report=False)
    assert CALLS == ["second"]
    assert _statuses(out) == {"first": "kept", "second": "ran", "third": "not asked"}


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"only": "fourth"}, ConfigError, r"--only names an unknown stage; expected one of \['first', 'second'"),
        ({"from_stage": "x"}, ConfigError, r"--from names an unknown stage"),
        ({"from_stage": "first", "only": "second"}, ConfigError, r"--from and --only together"),
        ({"only": "third"}, InputNotFoundError, r"stage first has not run in this folder"),
    ],
)
def test_bad_stage_requests(setup: tuple[Path, Path], kw: dict[str, str], error: type[Exception],
                            message: str) -> None:
    cfg, out = setup
    with pytest.raises(error, match=message):
        run_pipeline(cfg, out, stages=STAGES, report=False, **kw)  # type: ignore[arg-type]


def test_a_missing_input_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs]\nvoter_file = "nope.csv"\n', encoding="utf-8")
    with pytest.raises(InputNotFoundError, match=r"nope.csv: \[inputs\] voter_file file not found"):
        run_pipeline(cfg, tmp_path / "run", stages=STAGES, report=False)


def test_a_failed_stage_resumes_where_it_stopped(setup: tuple[Path, Path]) -> None:
    cfg, out = setup

    def broken(ctx: StageContext) -> StageOutput:
        CALLS.append("broken")
        (ctx.stage_dir / "half.csv").write_text("partial", encoding="utf-8")
        raise RuntimeError("disk full")

    stages = [STAGES[0], StageSpec("second", broken, sections=("join",), needs=("first",)), STAGES[2]]
    with pytest.raises(RuntimeError):
        run_pipeline(cfg, out, stages=stages, report=False)
    assert CALLS == ["first", "broken"]
    assert not (out / "stages" / "second" / "stage.json").exists()
    CALLS.clear()
    run_pipeline(cfg, out, stages=STAGES, report=False)
    assert CALLS == ["second", "third"]  # the first stage is not redone
    assert not (out / "stages" / "second" / "half.csv").exists()  # the failed attempt's files are gone


def test_stages_without_their_inputs_are_left_out_with_a_reason(tmp_path: Path) -> None:
    result = run_pipeline(Config(join=JoinConfig()), tmp_path / "run", inputs={},
                          stages=[StageSpec("first", _first, skip_if=lambda c: "no [inputs] voter_file"), *STAGES[1:]],
                          report=False)
    assert [(s.name, s.status, s.reason) for s in result.statuses] == [
        ("first", "left out", "no [inputs] voter_file"), ("second", "left out", "needs first"),
        ("third", "left out", "needs second")]


_KILLED_CHILD = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    import pandas as pd
    from geo_segment.io.atomic import atomic_path
    from geo_segment.io.manifest import StageRecord
    from geo_segment.runner import StageOutput, StageSpec, run_pipeline
    sys.path.insert(0, {tests!r})
    from test_runner import STAGES

    def slow(ctx):
        with atomic_path(ctx.stage_dir / "big.bin") as tmp, open(tmp, "wb") as fh:
            for _ in range(10_000):
                fh.write(b"x" * 65536)
                fh.flush()
                Path({flag!r}).touch()
                time.sleep(0.01)
        return StageOutput(records=[StageRecord("slow", 0, 0, 0, 0.0)], publish=["big.bin"])

    run_pipeline({cfg!r}, {out!r}, stages=[*STAGES, StageSpec("slow", slow, needs=("third",))], report=False)
''')


def test_a_kill_during_a_write_keeps_the_old_outputs_and_the_next_run_resumes(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    run_pipeline(cfg, out, stages=STAGES, report=False)
    before = (out / "table.csv").read_bytes()
    flag = cfg.parent / "writing"
    script = _KILLED_CHILD.format(tests=str(Path(__file__).parent), flag=str(flag), cfg=str(cfg), out=str(out))
    cfg.write_text('[inputs]\nvoter_file = "v.csv"\n[join]\nk_min = 7\n', encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": "0"})
    deadline = time.monotonic() + 60
    while not flag.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "the child never started writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # killed in the middle of writing big.bin: the published outputs are whole, the new one absent
    assert not (out / "big.bin").exists()
    assert not (out / "stages" / "slow" / "big.bin").exists()
    assert not (out / "stages" / "slow" / "stage.json").exists()
    assert pd.read_csv(out / "table.csv", dtype="str")["k"].tolist() == ["7", "7"]  # second re-ran before the kill
    assert before != (out / "table.csv").read_bytes()
    leftovers = list((out / "stages" / "slow").glob(".big.bin.*.tmp"))
    assert len(leftovers) == 1  # a SIGKILLed writer cannot remove its own temp file ...
    CALLS.clear()
    result = run_pipeline(cfg, out, stages=STAGES, report=False)
    assert CALLS == []  # ... the next run removes it and resumes: everything before the kill is up to date
    assert not leftovers[0].exists()
    assert result.manifest.parameters["partial_files_removed"] == 1
    assert not list(out.rglob("*.tmp"))


_TWO_AT_ONCE = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    from geo_segment.runner import run_pipeline
    from test_runner import STAGES
    run_pipeline({cfg!r}, sys.argv[1], stages=STAGES)
''')


def test_two_runs_into_different_folders_at_once_do_not_interfere(setup: tuple[Path, Path]) -> None:
    cfg, out = setup
    script = _TWO_AT_ONCE.format(tests=str(Path(__file__).parent), cfg=str(cfg))
    outs = [out.parent / "a", out.parent / "b"]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(o)]) for o in outs]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    for name in ("table.csv", "summary.csv", "rejects.csv", "lists/0.csv", "lists/1.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    for o in outs:
        man = json.loads((o / "manifest.json").read_text())
        assert [s["status"] for s in man["parameters"]["pipeline"]] == ["ran"] * 3
        assert (o / "report.html").exists()


def test_an_experiment_holdout_is_never_knocked_or_targeted(tmp_path: Path) -> None:
    import dataclasses as dc

    import geopandas as gpd

    from geo_segment.config import ScoresConfig, load_config
    from geo_segment.experiments import design_experiment
    from geo_segment.runner import core_stages, resolve_inputs

    sample = Path(__file__).resolve().parents[1] / "sample_data" / "geo_segment.toml"
    cfg = load_config(sample)
    cfg = dc.replace(cfg, scores=ScoresConfig(label_election="none"))
    inputs = resolve_inputs(cfg, sample.parent)
    out = tmp_path / "run"
    run_pipeline(cfg, out, inputs=inputs, stages=core_stages(), report=False)
    voters = gpd.read_parquet(out / "voters.parquet")
    design = design_experiment(voters, unit="household", holdout_share=0.3, score_col="engagement_score", seed=3)
    design.save(tmp_path / "design")
    held = set(voters.loc[voters["household_id"].isin(design.holdout_units), "voter_id"])
    assert len(held) > 300
    result = run_pipeline(cfg, out, inputs={**inputs, "experiment_design": tmp_path / "design" / "design.json"},
                          stages=core_stages(), report=False)
    statuses = {s.name: s.status for s in result.statuses}
    assert statuses["cluster"] == "up-to-date" and statuses["turfs"] == "ran" and statuses["exports"] == "ran"
    members = pd.read_parquet(out / "door_members.parquet")
    assert not set(members["voter_id"]) & held  # no holdout voter behind any door
    published = gpd.read_parquet(out / "voters.parquet")
    assert len(published) == len(voters)  # the holdout stays in the voters table, without a turf
    assert published.loc[published["voter_id"].isin(held), "turf_id"].isna().all()
    records = [r for r in result.manifest.stages if r.name == "holdout"]
    assert len(records) == 2 and all(r.rows_dropped == len(held) and r.balanced for r in records)
    export = next(r for r in result.manifest.stages if r.name == "export")
    assert export.rows_in == len(voters) - len(held)


def test_the_frame_memo_gives_what_reading_the_file_back_gives(tmp_path: Path) -> None:
    """Frames handed from stage to stage in memory equal the file read back: dtypes, index, order, CRS, values."""
    import geopandas as gpd
    import numpy as np
    from geopandas.testing import assert_geodataframe_equal
    from shapely.geometry import Point, Polygon

    from geo_segment.io.atomic import write_parquet
    from geo_segment.runner import as_read_back

    frame = gpd.GeoDataFrame(
        {
            "name": pd.Series(["a", None, "c"], dtype=object),
            "kind": pd.Categorical(["x", "y", "x"]),
            "count": pd.array([1, None, 3], dtype="Int64"),
            "u": np.array([1, 2, 2**63], dtype=np.uint64),
            "when": pd.to_datetime(["2024-11-05T00:00:00", None, "2020-01-01T12:00:00.000000001"], utc=True,
                           format="ISO8601"),
            "flag": [True, False, True],
            "geometry": [Point(1.5, 2.25), None, Polygon([(0, 0), (1, 0), (1, 1)])],
            "after": [0.1, np.nan, -3.0],
        },
        geometry="geometry", crs="EPSG:4326", index=pd.Index([7, 3, 5]),
    )
    write_parquet(frame, tmp_path / "f.parquet")
    back = gpd.read_parquet(tmp_path / "f.parquet")
    memo = as_read_back(frame)
    assert list(memo.columns) == list(back.columns) and list(memo.dtypes.astype(str)) == list(back.dtypes.astype(str))
    assert_geodataframe_equal(memo, back, check_dtype=True)
    assert memo.index.equals(back.index) and type(memo.index) is type(back.index)
    assert memo.crs == back.crs and memo.attrs == back.attrs


def test_a_run_with_the_frame_memo_writes_what_a_run_without_it_writes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo only saves reading: every output of the sample run is byte-identical with it off."""
    from geo_segment.config import load_config
    from geo_segment.runner import core_stages, resolve_inputs

    sample = Path(__file__).resolve().parents[1] / "sample_data" / "geo_segment.toml"
    cfg = load_config(sample)
    inputs = resolve_inputs(cfg, sample.parent)
    run_pipeline(cfg, tmp_path / "memo", inputs=inputs, stages=core_stages(), report=False)
    monkeypatch.setenv("GEO_SEGMENT_NO_MEMO", "1")
    run_pipeline(cfg, tmp_path / "disk", inputs=inputs, stages=core_stages(), report=False)

    def files(root: Path) -> dict[str, object]:
        out: dict[str, object] = {}
        for p in sorted(root.rglob("*")):
            # manifest, stage states and the pickled model hold timings; the audit log its time of writing
            if not p.is_file() or p.name in ("manifest.json", "stage.json", "model.joblib"):
                continue
            if p.name == "audit.jsonl":
                out[str(p.relative_to(root))] = [{k: v for k, v in json.loads(line).items() if k != "time"}
                                                 for line in p.read_text().splitlines()]
            else:
                out[str(p.relative_to(root))] = p.read_bytes()
        return out

    a, b = files(tmp_path / "memo"), files(tmp_path / "disk")
    assert len(a) > 100 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_speed_only_settings_do_not_change_a_stage_key() -> None:
    """``[turfs] workers`` changes how fast the turfs are cut, never what is written: a folder stays up to date."""
    import dataclasses as dc

    from geo_segment.config import TurfsConfig
    from geo_segment.runner import _Hashes, _stage_key, core_stages

    spec = next(s for s in core_stages() if s.name == "turfs")

    def key(**turfs: object) -> str:
        cfg = dc.replace(Config(), turfs=TurfsConfig(**turfs))  # type: ignore[arg-type]
        return _stage_key(spec, cfg.to_dict(), {}, {"cluster": "k"}, _Hashes())

    assert key(workers=1) == key(workers="auto") == key(workers=2)
    assert key(target_doors=40) != key(target_doors=50)
