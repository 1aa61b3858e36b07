"""``geo-segment score`` and ``geo-segment cluster`` on the sample county: outputs, saved models, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from geo_segment.cli.app import app
from typer.testing import CliRunner

from geo_segment.pipeline import ingest_voters, run_join

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
runner = CliRunner()


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample county ingested and joined (voters, history, signals) once for the module."""
    from geo_segment.io.atomic import write_parquet
    from geo_segment.io.signals import read_signals

    base = tmp_path_factory.mktemp("joined")
    ingest_voters(SAMPLE / "nc" / "ncvoter.txt", base / "ing", history=SAMPLE / "nc" / "ncvhis.txt",
                  geocodes=SAMPLE / "nc" / "geocodes.csv")
    write_parquet(read_signals(SAMPLE / "nc" / "signals.csv").signals, base / "ing" / "signals.parquet")
    run_join(base / "ing" / "voters.parquet", SAMPLE / "providence_precincts.parquet", base / "join",
             id_col="JOINID", history=base / "ing" / "vote_history.parquet",
             signals=base / "ing" / "signals.parquet")
    (base / "join" / "vote_history.parquet").write_bytes((base / "ing" / "vote_history.parquet").read_bytes())
    return base / "join"


def _score(joined: Path, out: Path, *extra: str) -> object:
    return runner.invoke(app, ["score", "--voters", str(joined / "voters.parquet"), "--history",
                               str(joined / "vote_history.parquet"), "--signals", str(joined / "signals.parquet"),
                               "--out", str(out), "-q", *extra])


@pytest.fixture(scope="module")
def scored(joined: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scored")
    result = _score(joined, out)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    return out


def test_score_trains_saves_and_reports(scored: Path, joined: Path) -> None:
    assert {p.name for p in scored.iterdir()} == {"voters.parquet", "model.joblib", "calibration.png",
                                                  "manifest.json"}
    voters = gpd.read_parquet(scored / "voters.parquet")
    before = gpd.read_parquet(joined / "voters.parquet")
    assert len(voters) == len(before) and (voters["voter_id"].to_numpy() == before["voter_id"].to_numpy()).all()
    assert voters["engagement_score"].between(0, 1).all()
    assert voters["propensity"].between(0, 1).all()
    man = json.loads((scored / "manifest.json").read_text())
    metrics = man["stages"]["score"]["metrics"]
    assert {"roc_auc", "pr_auc", "brier", "ece", "label_election", "top_features"} <= set(metrics)
    assert metrics["label_election"] == "2024-11-05"  # the latest general election (config default)
    assert 0.6 < metrics["roc_auc"] < 1 and metrics["ece"] <= 0.05
    assert (scored / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_score_with_saved_model_reproduces_its_scores(scored: Path, joined: Path, tmp_path: Path) -> None:
    result = _score(joined, tmp_path, "--model", str(scored / "model.joblib"))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "model.joblib").exists()  # scoring with a model does not train one
    again = gpd.read_parquet(tmp_path / "voters.parquet")
    first = gpd.read_parquet(scored / "voters.parquet")
    np.testing.assert_array_equal(again["propensity"].to_numpy(), first["propensity"].to_numpy())
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert [i["role"] for i in man["inputs"]] == ["voters", "history", "signals", "model"]


def test_score_refuses_a_file_whose_features_differ(scored: Path, joined: Path, tmp_path: Path) -> None:
    # trained with signals; scoring without them lacks the signal features
    result = runner.invoke(app, ["score", "--voters", str(joined / "voters.parquet"), "--history",
                                 str(joined / "vote_history.parquet"), "--model", str(scored / "model.joblib"),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 5, result.output
    assert "error: the features do not match the ones the model was trained on" in result.output
    assert "missing ['signal_" in result.output
    assert not (tmp_path / "voters.parquet").exists()


def test_score_lookalike_from_seed_csv(joined: Path, tmp_path: Path) -> None:
    voters = gpd.read_parquet(joined / "voters.parquet")
    seeds = voters["voter_id"].iloc[::20].tolist()
    pd.DataFrame({"voter_id": [*seeds, "NOBODY1"]}).to_csv(tmp_path / "seeds.csv", index=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[scores]\nlabel_election = "none"\n')
    result = _score(joined, tmp_path / "o", "--lookalike", str(tmp_path / "seeds.csv"), "--config", str(cfg))
    assert result.exit_code == 0, result.output
    out = gpd.read_parquet(tmp_path / "o" / "voters.parquet")
    assert "lookalike_score" in out.columns and "propensity" not in out.columns
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())["stages"]["score"]["metrics"]
    assert m["n_seeds"] == len(seeds) and m["n_seeds_unknown"] == 1
    assert 0 <= m["lookalike_recall"] <= 1


def test_seed_file_with_several_columns_needs_voter_id(joined: Path, tmp_path: Path) -> None:
    (tmp_path / "seeds.csv").write_text("id,name\nAA1,x\n")
    result = _score(joined, tmp_path / "o", "--lookalike", str(tmp_path / "seeds.csv"))
    assert result.exit_code == 4, result.output
    assert "seed file has several columns and none named voter_id" in result.output


def test_cluster_writes_micro_geos_with_config(scored: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[cluster]\nmin_cluster_size = 8\neps_m = 200.0\nbootstrap = 3\n"
                   'score_col = "engagement_score"\n')
    result = runner.invoke(app, ["cluster", "--voters", str(scored / "voters.parquet"), "--config", str(cfg),
                                 "--out", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 0, result.output
    voters = gpd.read_parquet(tmp_path / "c" / "voters.parquet")
    micro = gpd.read_parquet(tmp_path / "c" / "micro_geos.parquet")
    labels = voters["micro_geo"].dropna()
    man = json.loads((tmp_path / "c" / "manifest.json").read_text())
    st = man["stages"]["cluster"]
    located = int((voters.geometry.notna() & ~voters.geometry.is_empty).sum())
    assert len(labels) == st["metrics"]["selected"] >= 0.2 * located  # the top 20% of located voters (ties kept)
    assert set(labels.unique()) <= {-1, *micro["micro_geo"].tolist()}
    assert micro.crs.to_epsg() == 4326 and micro.geometry.is_valid.all()
    assert st["rows_in"] == st["rows_out"] == len(voters)
    assert {"validity", "bootstrap_ari"} <= set(st["metrics"])
    assert man["parameters"]["config"]["cluster"]["min_cluster_size"] == 8


def test_cluster_needs_a_score(joined: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["cluster", "--voters", str(joined / "voters.parquet"), "--out", str(tmp_path)])
    assert result.exit_code == 5, result.output
    assert "engagement_score" in result.output and result.output.startswith("error: ")
