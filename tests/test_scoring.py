"""Features, rule score, propensity model and lookalikes: hand-worked values, leakage, planted truth.

The planted-truth tests run on one synthetic county of 15,000 voters, generated once per module, written in the NC
layout and read back with the real readers, so they exercise the same path as a campaign's files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from geo_segment import schema as S
from geo_segment.errors import ConfigError, GeoSegmentError, InputFileError, SchemaError
from geo_segment.features import (
    FEATURE_DEFINITIONS,
    FeatureBuilder,
    build_features,
    eligible_voters,
    feature_names,
    make_label,
)
from geo_segment.io.signals import read_signals
from geo_segment.io.voters import read_voter_file
from geo_segment.scoring import (
    LOOKALIKE_SCORE,
    FeatureMismatchError,
    LookalikeModel,
    PropensityModel,
    RuleWeights,
    expected_calibration_error,
    lookalike_recall,
    rule_score,
    score_voters,
)
from geo_segment.synth import SyntheticPopulation, generate_population, write_layout

ROOT = Path(__file__).resolve().parents[1]
LABEL = "2024-11-05"
SEED_KINDS = ("event_checkin", "donation")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One OpenMP thread: gradient boosting on small data is slower, and erratic on a busy machine, with more."""
    with threadpool_limits(limits=1):
        yield


# ---------------------------------------------------------------------------------------------------------------
# a hand-drawn county
# ---------------------------------------------------------------------------------------------------------------

P_LAT, P_LNG = 41.8240, -71.4128  # a, b and c live at the same point (one H3 cell); d has no coordinates


def _tiny() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Four voters, five elections, three signals.

    ==========  ==========  ==========  =========  ==========  ==========
    voter       2018-11-06  2020-03-03  2020-11-03  2022-11-08  2024-11-05
                general     pres. prim. general     general     general
    ==========  ==========  ==========  =========  ==========  ==========
    a (h1)      polls       early       mail        early       polls
    b (h1)      .           .           (not reg.)  polls       polls
    c (h2)      mail        .           polls       .           .
    d (none)    .           .           .           .           .
    ==========  ==========  ==========  =========  ==========  ==========

    a registered 2010, b in 2021, c in 2010, d unknown.
    """
    voters = pd.DataFrame(
        {
            S.VOTER_ID: ["a", "b", "c", "d"],
            S.HOUSEHOLD_ID: ["h1", "h1", "h2", None],
            S.REGISTRATION_DATE: pd.to_datetime(pd.Series(["2010-01-01", "2021-01-01", "2010-01-01", None])).to_numpy(),
            S.BIRTH_YEAR: pd.array([1980, 2000, None, 1990], dtype="Int64"),
            S.PARTY: ["DEM", "REP", "XYZ", None],
            S.STATUS: ["A", "I", "A", "A"],
            S.LAT: [P_LAT, P_LAT, P_LAT, np.nan],
            S.LNG: [P_LNG, P_LNG, P_LNG, np.nan],
            S.PRECINCT_ID: ["P1", "P1", "P2", None],
        },
        index=[10, 11, 12, 13],
    )
    rows = [
        ("a", "2018-11-06", "general", "polls"), ("a", "2020-03-03", "presidential_primary", "early"),
        ("a", "2020-11-03", "general", "mail"), ("a", "2022-11-08", "general", "early"),
        ("a", "2024-11-05", "general", "polls"), ("b", "2022-11-08", "general", "polls"),
        ("b", "2024-11-05", "general", "polls"), ("c", "2018-11-06", "general", "mail"),
        ("c", "2020-11-03", "general", "polls"),
    ]
    history = pd.DataFrame(rows, columns=[S.VOTER_ID, S.ELECTION_DATE, S.ELECTION_TYPE, S.VOTE_METHOD])
    history[S.ELECTION_DATE] = pd.to_datetime(history[S.ELECTION_DATE])
    history[S.VOTED] = True
    signals = pd.DataFrame(
        {
            S.TIMESTAMP: pd.to_datetime(["2024-10-06T00:00:00Z", "2024-11-04T00:00:00Z", "2024-11-06T00:00:00Z"]),
            S.KIND: ["donation", "ping", "donation"],
            S.WEIGHT: [2.0, 1.0, 5.0],
            S.LAT: [P_LAT, P_LAT, P_LAT],
            S.LNG: [P_LNG, P_LNG, P_LNG],
            S.VOTER_ID: ["a", None, "a"],
        }
    )
    return voters, history, signals


def test_features_by_hand() -> None:
    voters, history, signals = _tiny()
    before = voters.copy()
    f = build_features(voters, history, signals, label_election=LABEL, n_elections=3, half_life_days=30.0)
    pd.testing.assert_frame_equal(voters, before)  # input untouched
    assert list(f.index) == [10, 11, 12, 13]
    assert f.attrs["window"] == ["2022-11-08", "2020-11-03", "2020-03-03"]

    def col(name: str) -> list[float]:
        return [round(x, 9) for x in f[name].tolist()]

    assert col("elections_eligible") == [3, 1, 3, 3]
    assert col("votes") == [3, 1, 1, 0]
    assert col("turnout_rate") == [1, 1, round(1 / 3, 9), 0]
    assert col("general_votes") == [2, 1, 1, 0] and col("general_eligible") == [2, 1, 2, 2]
    assert col("primary_rate") == [1, 0, 0, 0] and col("primary_eligible") == [1, 0, 1, 1]
    assert [col(f"voted_prev_{k}") for k in (1, 2, 3)] == [[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0]]
    assert col("votes_ever") == [4, 1, 2, 0]
    assert col("years_since_last_vote") == [round(728 / 365.25, 9), round(728 / 365.25, 9),
                                            round(1463 / 365.25, 9), 50]
    assert col("never_voted") == [0, 0, 0, 1]
    assert col("method_early") == [round(2 / 3, 9), 0, 0, 0] and col("method_mail") == [round(1 / 3, 9), 0, 0, 0]
    assert col("method_polls") == [0, 1, 1, 0]
    assert col("registration_years") == [round(5422 / 365.25, 9), round(1404 / 365.25, 9),
                                         round(5422 / 365.25, 9), 0]
    assert col("registration_missing") == [0, 0, 0, 1]
    assert col("age") == [44, 24, 0, 34] and col("age_missing") == [0, 0, 1, 0]
    assert col("party_DEM") == [1, 0, 0, 0] and col("party_REP") == [0, 1, 0, 0]
    assert col("party_other") == [0, 0, 1, 1] and col("status_inactive") == [0, 1, 0, 0]
    assert col("household_size") == [2, 2, 1, 1] and col("household_others_rate") == [1, 1, 0, 0]
    # the donation of 2024-10-06 is 30 days (one half-life) old at the cutoff; the one after it is ignored
    assert col("signal_donation") == [1.0, 0, 0, 0] and col("signal_rsvp") == [0, 0, 0, 0]
    cell = h3.latlng_to_cell(P_LAT, P_LNG, 9)
    area = h3.cell_area(cell, unit="km^2")
    assert col("cell_missing") == [0, 0, 0, 1] and col("cell_voters") == [3, 3, 3, 0]
    assert col("cell_turnout_rate") == [0.5, round(4 / 6, 9), 1.0, 0]  # the other voters of the cell, pooled
    np.testing.assert_allclose(f["cell_engaged_per_km2"], [1 / area, 1 / area, 2 / area, 0], rtol=5e-3)
    np.testing.assert_allclose(f["cell_foot_traffic"], [0.5 ** (1 / 30) / area] * 3 + [0], rtol=5e-3)
    assert col("precinct_voters") == [2, 2, 1, 0] and col("precinct_turnout_rate") == [1, 1, 0, 0]
    assert col("precinct_engaged_share") == [1, 1, 0, 0]
    assert list(f.columns) == feature_names(n_elections=3, signals=True, precincts=True)
    assert (f.dtypes == "float64").all()


def test_feature_options_change_columns_and_are_checked() -> None:
    voters, history, _ = _tiny()
    f = build_features(voters.drop(columns=[S.PRECINCT_ID]), history, n_elections=2)
    assert list(f.columns) == feature_names(n_elections=2, signals=False, precincts=False)
    assert f.attrs["as_of"].startswith("2024-11-06")  # the day after the newest record
    assert f.loc[10, "voted_prev_1"] == 1.0  # the 2024 general counts when scoring now
    with pytest.raises(ConfigError, match="both set"):
        build_features(voters, history, label_election=LABEL, as_of="2025-01-01")
    with pytest.raises(ConfigError, match="n_elections"):
        build_features(voters, history, n_elections=0)
    with pytest.raises(SchemaError, match=r"history: missing columns \['voted'\]"):
        build_features(voters, history.drop(columns=[S.VOTED]))
    with pytest.raises(SchemaError, match="1 duplicated voter_id"):
        build_features(pd.concat([voters, voters.iloc[:1]]), history)


def test_empty_voters_give_an_empty_frame() -> None:
    voters, history, signals = _tiny()
    f = build_features(voters.iloc[:0], history, signals, label_election=LABEL)
    assert len(f) == 0 and list(f.columns) == feature_names(signals=True, precincts=True)


def test_make_label_and_eligibility() -> None:
    voters, history, _ = _tiny()
    assert make_label(history, voters[S.VOTER_ID], LABEL).tolist() == [True, True, False, False]
    assert make_label(history, voters[S.VOTER_ID], LABEL).index.tolist() == [10, 11, 12, 13]
    assert eligible_voters(voters, "2020-11-03").tolist() == [True, False, True, True]
    with pytest.raises(ConfigError, match=r"not in the vote history.*2024-11-05"):
        make_label(history, voters[S.VOTER_ID], "2024-11-06")


def test_every_feature_is_documented() -> None:
    doc = (ROOT / "docs" / "scores.md").read_text(encoding="utf-8")
    missing = [n for n in FEATURE_DEFINITIONS if f"`{n}`" not in doc]
    assert not missing, f"docs/scores.md does not document {missing}"


# ---------------------------------------------------------------------------------------------------------------
# rule score
# ---------------------------------------------------------------------------------------------------------------


def test_rule_score_in_unit_interval_and_monotone() -> None:
    voters, history, signals = _tiny()
    f = build_features(voters, history, signals, label_election=LABEL, n_elections=3)
    score = rule_score(f)
    assert score.name == S.ENGAGEMENT_SCORE and score.between(0, 1).all()
    assert score.loc[10] > score.loc[12] > score.loc[13]  # a votes always, c sometimes, d never
    better = f.copy()
    better["general_rate"] = 1.0
    assert (rule_score(better) >= score).all()
    only_general = RuleWeights(general_turnout=1, primary_turnout=0, recency=0, signals=0, household=0,
                               neighbourhood=0)
    pd.testing.assert_series_equal(rule_score(f, only_general), f["general_rate"].rename(S.ENGAGEMENT_SCORE))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"recency": -0.1}, "recency=-0.1"), ({"signal_saturation": 0.0}, "signal_saturation=0.0"),
     ({"general_turnout": 0, "primary_turnout": 0, "recency": 0, "signals": 0, "household": 0, "neighbourhood": 0},
      "all zero")],
)
def test_rule_weights_are_validated(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RuleWeights(**kwargs)


def test_expected_calibration_error_by_hand() -> None:
    # bins [0.2, 0.3) and [0.7, 0.8) hold four predictions each, 0.25 and 0.75
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    p = [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(y, p) == pytest.approx(0.0)
    assert expected_calibration_error([1, 1, 1, 1, 0, 0, 0, 0], p) == pytest.approx(0.5 * 0.75 + 0.5 * 0.75)


# ---------------------------------------------------------------------------------------------------------------
# a planted county
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class County:
    pop: SyntheticPopulation
    voters: pd.DataFrame
    history: pd.DataFrame
    signals: pd.DataFrame


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> County:
    pop = generate_population(15_000, seed=7)
    paths = write_layout(pop, "nc", tmp_path_factory.mktemp("county"))
    read = read_voter_file(paths["voters"], layout="nc", history=paths["history"], geocodes=paths["geocodes"])
    truth = pd.read_parquet(paths["truth"])[[S.VOTER_ID, "true_propensity", "pocket_id"]]
    voters = read.voters.merge(truth, on=S.VOTER_ID, how="left")
    signals = pd.DataFrame(read_signals(paths["signals"]).signals.drop(columns="geometry"))
    return County(pop, voters, read.history, signals)



@pytest.mark.parametrize("h3_resolution", [9, 7])
def test_one_builder_at_many_cutoffs_equals_fresh_builds(county: County, h3_resolution: int) -> None:
    """The builder caches what does not depend on the cutoff: reusing it across cutoffs (label election, an instant
    in the middle of an election day, the default, before any record) gives what a fresh build gives."""
    v, h, s = county.voters, county.history, county.signals
    builder = FeatureBuilder(v, h, s)
    cutoffs: list[dict[str, object]] = [
        {"label_election": LABEL},
        {"as_of": "2024-03-05T12:00:00"},  # rows of 2024-03-05 count, signals after noon do not
        {},
        {"as_of": "1990-01-01"},
        {"label_election": "2022-11-08", "n_elections": 3, "half_life_days": 7.0},
    ]
    built = []
    for kw in cutoffs:
        got = builder.build(h3_resolution=h3_resolution, **kw)  # type: ignore[arg-type]
        want = build_features(v, h, s, h3_resolution=h3_resolution, **kw)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert got.attrs == want.attrs
        built.append((got, want))
    # a later build never changes an earlier one (the scoring features are built while the model trains on the
    # training features)
    for got, want in built:
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert builder.label(LABEL).equals(make_label(h, v[S.VOTER_ID], LABEL))
    # the mid-day cutoff keeps that day's election: it is the newest of the window
    mid = builder.build(as_of="2024-03-05T12:00:00")
    assert mid.attrs["window"][0] == "2024-03-05"
    with pytest.raises(ConfigError, match="the label election is not in the vote history"):
        builder.label("2024-03-06")


@dataclass
class Trained:
    X: pd.DataFrame
    y: pd.Series
    eligible: np.ndarray
    model: PropensityModel


@pytest.fixture(scope="module")
def trained(county: County) -> Trained:
    X = build_features(county.voters, county.history, county.signals, label_election=LABEL)
    y = make_label(county.history, county.voters[S.VOTER_ID], LABEL)
    eligible = eligible_voters(county.voters, LABEL).to_numpy()
    model = PropensityModel(random_state=0).fit(X[eligible], y[eligible])
    return Trained(X, y, eligible, model)


def test_no_feature_sees_the_label_election_or_later(county: County) -> None:
    """Rewrite every record on or after the label election (history and signals): features stay bit-identical."""
    rng = np.random.default_rng(0)
    h = county.history
    cutoff = pd.Timestamp(LABEL)
    late = h[S.ELECTION_DATE] >= cutoff
    ids = county.voters[S.VOTER_ID].to_numpy()
    fake = pd.DataFrame({
        S.VOTER_ID: np.concatenate([rng.choice(ids, 9000, replace=False), rng.choice(ids, 4000, replace=False)]),
        S.ELECTION_DATE: pd.to_datetime([LABEL] * 9000 + ["2026-11-03"] * 4000).as_unit("ms"),
        S.ELECTION_TYPE: ["general"] * 9000 + ["special"] * 4000,
        S.VOTED: rng.random(13000) < 0.8,
        S.VOTE_METHOD: rng.choice(["polls", "mail", "early"], 13000),
        S.BALLOT_PARTY: "",
    })
    perturbed_h = pd.concat([h[~late], fake], ignore_index=True)
    assert late.any() and len(perturbed_h) != len(h)
    sig = county.signals
    n_fake = 3000
    voter_rows = county.voters.sample(n_fake, random_state=0)
    fake_sig = pd.DataFrame({
        S.TIMESTAMP: pd.Timestamp(LABEL, tz="UTC") + pd.to_timedelta(rng.integers(0, 90 * 86400, n_fake), unit="s"),
        S.KIND: rng.choice(["ping", "donation", "event_checkin", "rsvp"], n_fake),
        S.LAT: voter_rows[S.LAT].fillna(41.82).to_numpy(),
        S.LNG: voter_rows[S.LNG].fillna(-71.41).to_numpy(),
        S.WEIGHT: rng.uniform(0.5, 5, n_fake),
        S.VOTER_ID: voter_rows[S.VOTER_ID].to_numpy(),
    })
    perturbed_s = pd.concat([sig, fake_sig], ignore_index=True)

    a = build_features(county.voters, h, sig, label_election=LABEL)
    b = build_features(county.voters, perturbed_h, perturbed_s, label_election=LABEL)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes()
    assert a.attrs == b.attrs

    # the test has teeth: the same rewrite one election earlier changes the features
    earlier = h[S.ELECTION_DATE] == pd.Timestamp("2024-03-05")
    c = build_features(county.voters, h[~earlier], sig, label_election=LABEL)
    assert not a.equals(c)


def _best_achievable_auc(pop: SyntheticPopulation, eligible: np.ndarray, label: np.ndarray) -> float:
    """ROC-AUC of the Bayes-optimal turnout prediction from the history, knowing the generator's parameters.

    The generator draws each voter's logit as a known part (age, party, status, pocket) plus household and
    individual effects N(0, _HOUSEHOLD_SD) and N(0, _PERSON_SD), then every election from that logit plus the
    election's shift.
    The best any model can do from the history is the posterior mean of P(vote) given the known part and the
    past votes, integrated over the unknown effects (ignoring what relatives' votes say about the household
    effect, worth about +0.002 AUC here). It falls short of ranking by the planted propensity itself only by
    what the past votes cannot tell about the hidden effects.
    """
    from geo_segment.synth import _ELECTIONS, _HOUSEHOLD_SD, _PARTIES, _PARTY_LOGIT, _PERSON_SD

    v = pop.voters
    age = np.floor((pd.Timestamp(pop.as_of) - v["birth_date"]).dt.days.to_numpy() / 365.2425)
    party = v[S.PARTY].map({p: i for i, p in enumerate(_PARTIES)}).to_numpy(dtype=np.int64)
    known = (-0.3 + 0.03 * (age - 45) - 0.0004 * (age - 45) ** 2 + _PARTY_LOGIT[party]
             - 1.6 * (v[S.STATUS] == "I").to_numpy() + 2.3 * (v["pocket_id"] >= 0).to_numpy())
    days = pd.to_datetime([e[0] for e in _ELECTIONS])
    shift = np.array([e[3] for e in _ELECTIONS])
    past = np.flatnonzero(days < pd.Timestamp(LABEL))
    pos = pd.Index(v[S.VOTER_ID]).get_indexer(pd.Index(pop.history[S.VOTER_ID]))
    col = pd.Index(days).get_indexer(pd.Index(pop.history[S.ELECTION_DATE]))
    voted = np.zeros((len(v), len(days)), dtype=bool)
    voted[pos, col] = True
    could = days.to_numpy()[None, :] > v[S.REGISTRATION_DATE].to_numpy()[:, None]
    u = np.linspace(-4, 4, 161)
    loglik = np.zeros((len(v), len(u))) - u[None, :] ** 2 / (2 * (_HOUSEHOLD_SD**2 + _PERSON_SD**2))
    for j in past:
        p = 1 / (1 + np.exp(-(known[:, None] + u[None, :] + shift[j])))
        loglik += np.where(could[:, j:j + 1], np.where(voted[:, j:j + 1], np.log(p), np.log1p(-p)), 0.0)
    w = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    j_label = int(np.flatnonzero(days == pd.Timestamp(LABEL))[0])
    pred = (w / w.sum(axis=1, keepdims=True) * (1 / (1 + np.exp(-(known[:, None] + u[None, :]
                                                                    + shift[j_label]))))).sum(axis=1)
    return float(roc_auc_score(label, pred[eligible]))  # the caller checks both frames list voters alike


def test_propensity_model_reaches_the_best_achievable_auc_and_is_calibrated(county: County,
                                                                            trained: Trained) -> None:
    m = trained.model
    el = trained.eligible
    y = trained.y.to_numpy()[el]
    oracle = roc_auc_score(y, county.voters["true_propensity"].to_numpy()[el])
    assert (county.voters[S.VOTER_ID].to_numpy() == county.pop.voters[S.VOTER_ID].to_numpy()).all()
    best = _best_achievable_auc(county.pop, el, y)
    assert set(m.cv_results_) >= {"hgb", "logistic"} and m.chosen_ in ("hgb", "logistic")
    auc = m.metrics_["roc_auc"]
    # the criterion: cross-validated ROC-AUC within 0.03 of the oracle (ranking by the planted propensity)
    assert auc >= oracle - 0.03, (auc, best, oracle)
    # and close to the Bayes-optimal predictor computed independently from the generator's parameters
    assert auc >= best - 0.02, (auc, best, oracle)
    assert best <= oracle + 0.005
    assert m.metrics_["ece"] <= 0.05
    assert 0 < m.metrics_["brier"] < 0.25 and m.metrics_["pr_auc"] > y.mean()
    assert len(m.oof_proba_) == el.sum()
    assert m.calibration_curve_["count"].sum() == el.sum()
    imp = m.permutation_importance_
    assert set(imp["feature"]) == set(trained.X.columns) and imp["importance_mean"].iloc[0] > 0.005


def test_forced_calibration_is_reported(trained: Trained) -> None:
    X = trained.X[trained.eligible].iloc[:4000]
    y = trained.y[trained.eligible].iloc[:4000]
    m = PropensityModel(model="logistic", cv=3, calibrate=True, calibration_method="sigmoid",
                        importance_repeats=0).fit(X, y)
    assert m.calibrated_ and "logistic+calibrated" in m.cv_results_
    assert m.permutation_importance_.empty
    assert m.predict_proba(X).shape == (4000, 2)


def test_model_save_load_and_feature_check(trained: Trained, tmp_path: Path) -> None:
    m = trained.model
    path = m.save(tmp_path / "propensity.joblib")
    loaded = PropensityModel.load(path)
    X = trained.X.iloc[:500]
    np.testing.assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))
    assert loaded.training_hash_ == m.training_hash_ and re.fullmatch(r"[0-9a-f]{64}", m.training_hash_)
    assert {"scikit-learn", "numpy", "pandas", "python"} <= set(loaded.versions_)
    assert loaded.feature_names_ == list(trained.X.columns)
    assert loaded.feature_options_["label_election"] == LABEL
    shuffled = X[X.columns[::-1]]
    np.testing.assert_array_equal(loaded.predict_proba(shuffled), m.predict_proba(X))  # order does not matter
    with pytest.raises(FeatureMismatchError, match=r"missing \['signal_donation'\], extra \[\]") as err:
        loaded.predict_proba(X.drop(columns=["signal_donation"]))
    assert isinstance(err.value, GeoSegmentError) and isinstance(err.value, ValueError)
    with pytest.raises(FeatureMismatchError, match=r"missing \[\], extra \['shoe_size'\]"):
        loaded.predict_proba(X.assign(shoe_size=1.0))
    # a new file built without signals (or with another window) is refused, listing what differs
    voters, history, _ = _tiny()
    with pytest.raises(FeatureMismatchError, match=r"missing \['voted_prev_5'.*'signal_event_checkin'"):
        loaded.predict_proba(build_features(voters, history, n_elections=4))
    (tmp_path / "junk.joblib").write_bytes(b"not a model")
    with pytest.raises(InputFileError, match="cannot read the model file"):
        PropensityModel.load(tmp_path / "junk.joblib")


def test_calibration_plot_is_a_png(trained: Trained, tmp_path: Path) -> None:
    out = trained.model.calibration_plot(tmp_path / "calibration.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000


def test_propensity_settings_are_checked(trained: Trained) -> None:
    X = trained.X.iloc[:200]
    y = trained.y.iloc[:200]
    with pytest.raises(ConfigError, match="cv=1"):
        PropensityModel(cv=1).fit(X, y)
    with pytest.raises(ConfigError, match="too few voters in a class"):
        PropensityModel(cv=5).fit(X.iloc[:6], np.array([1, 0, 0, 0, 0, 0]))
    with pytest.raises(SchemaError, match="NaN or infinite values in \\['age'\\]"):
        PropensityModel().fit(X.assign(age=np.nan), y)
    with pytest.raises(ConfigError, match="not fitted"):
        PropensityModel().predict_proba(X)
    with pytest.raises(ConfigError, match=r"max_fit_rows=50 \(expected None or an integer >= 100\)"):
        PropensityModel(max_fit_rows=50).fit(X, y)


@pytest.mark.parametrize(("max_cv_rows", "max_fit_rows"), [(300, 500), (500, 300), (300, 300), (None, 500)])
def test_final_fit_row_cap_is_a_stratified_superset_of_the_cv_rows(trained: Trained, max_cv_rows: int | None,
                                                                   max_fit_rows: int) -> None:
    X, y = trained.X.iloc[:1200].reset_index(drop=True), trained.y.iloc[:1200].to_numpy()
    m = PropensityModel(model="logistic", cv=3, importance_repeats=0, max_cv_rows=max_cv_rows,
                        max_fit_rows=max_fit_rows)
    m.fit(X, y)
    fit_rows = m._fit_rows(m.cv_rows_, y)
    assert len(fit_rows) == max_fit_rows and len(np.unique(fit_rows)) == max_fit_rows
    assert abs(y[fit_rows].mean() - y.mean()) < 0.01  # stratified (cv rows are a stratified sample too)
    assert m.metrics_["n_fit"] == max_fit_rows and m.metrics_["n"] == len(y)
    assert m.metrics_["n_cv"] == (max_cv_rows or len(y))
    # the final model equals one fitted on exactly those rows; every voter is scored
    if max_cv_rows is not None and max_cv_rows <= max_fit_rows:
        assert set(m.cv_rows_) <= set(fit_rows)
    ref = clone(m.estimator_).fit(X.iloc[fit_rows], y[fit_rows])
    np.testing.assert_allclose(m.predict_proba(X)[:, 1], ref.predict_proba(X)[:, 1])


def _seed_mask(county: County) -> np.ndarray:
    """Seeds a campaign has: voters who checked in at an event or donated before the label election."""
    s = county.signals
    early = s[S.TIMESTAMP] < pd.Timestamp(LABEL, tz="UTC")
    ids = set(s.loc[early & s[S.KIND].isin(SEED_KINDS), S.VOTER_ID].dropna())
    return county.voters[S.VOTER_ID].isin(ids).to_numpy()


def test_lookalikes_rank_held_out_seeds_high(county: County, trained: Trained) -> None:
    X = trained.X
    seeds = _seed_mask(county)
    assert 150 < seeds.sum() < 1000
    # leave out the features the seed list was drawn from, or the held-out seeds are found trivially
    excluded = tuple(c for c in X.columns if c.startswith("signal_")) + ("cell_activity",)
    result = lookalike_recall(X, seeds, model=LookalikeModel(exclude_features=excluded, random_state=0),
                              holdout=0.3, top=0.1, random_state=0)
    assert result["random_recall"] == 0.1 and result["n_heldout"] == round(0.3 * seeds.sum())
    assert result["recall"] >= 3 * result["random_recall"], result


def test_lookalike_model_scores() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    seeds = (X["a"] > 1.0).to_numpy() & (rng.random(600) < 0.5)
    m = LookalikeModel(cv=3, exclude_features=("b",), random_state=0).fit(X, seeds)
    assert m.feature_names_ == ["a"] and m.scores_.between(0, 1).all() and m.scores_.name == LOOKALIKE_SCORE
    assert m.scores_[X["a"] > 1.5].mean() > m.scores_[X["a"] < 0].mean()
    assert m.score_samples(X).between(0, 1).all()
    with pytest.raises(ConfigError, match="too few seeds"):
        LookalikeModel().fit(X, np.zeros(600, dtype=bool))
    with pytest.raises(SchemaError, match="boolean mask"):
        LookalikeModel().fit(X, np.zeros(5, dtype=bool))


# ---------------------------------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------------------------------


def test_score_voters_with_a_fitted_model(county: County, trained: Trained) -> None:
    before = county.voters.copy()
    out, metrics = score_voters(county.voters, county.history, county.signals, model=trained.model)
    pd.testing.assert_frame_equal(county.voters, before)
    assert out.index.equals(county.voters.index) and type(out) is type(county.voters)
    assert out[S.ENGAGEMENT_SCORE].between(0, 1).all() and out[S.PROPENSITY].between(0, 1).all()
    assert LOOKALIKE_SCORE not in out.columns
    now = build_features(county.voters, county.history, county.signals)
    np.testing.assert_array_equal(out[S.PROPENSITY], trained.model.predict_propensity(now))
    assert metrics["as_of"].startswith("2024-11-06") and metrics["n_voters"] == len(county.voters)
    # engaged voters (rule score) turn out more in the label election than the rest
    top = out[S.ENGAGEMENT_SCORE] >= out[S.ENGAGEMENT_SCORE].quantile(0.8)
    assert trained.y[top].mean() > trained.y[~top].mean() + 0.2
    with pytest.raises(ConfigError, match="both a fitted propensity model and a label election"):
        score_voters(county.voters, county.history, county.signals, model=trained.model, label_election=LABEL)


def test_score_voters_trains_reports_and_scores_lookalikes(county: County) -> None:
    small = county.voters.iloc[:3000]
    seeds = small.loc[_seed_mask(county)[:3000], S.VOTER_ID].tolist() + ["NOT-A-VOTER"]
    out, metrics = score_voters(
        small, county.history, county.signals, label_election=LABEL, seeds=seeds,
        model=PropensityModel(cv=3, importance_repeats=1, random_state=0),
        lookalike=LookalikeModel(cv=3, exclude_features=("signal_event_checkin", "signal_donation")),
    )
    for key in ("roc_auc", "pr_auc", "brier", "ece", "oracle_roc_auc", "label_election", "model", "cv_results",
                "lookalike_recall", "lookalike_lift", "n_seeds", "top_features"):
        assert key in metrics, key
    assert metrics["label_election"] == LABEL and metrics["n_seeds_unknown"] == 1
    assert metrics["n_seeds"] == len(seeds) - 1
    assert 0.6 < metrics["roc_auc"] <= metrics["oracle_roc_auc"] + 0.02
    assert out[LOOKALIKE_SCORE].between(0, 1).all() and out[S.PROPENSITY].between(0, 1).all()
    import json

    json.dumps(metrics)  # ready for the manifest


def test_importance_in_two_threads_equals_one_thread(trained: Trained) -> None:
    """Permutation importance runs features in two threads; each feature's shuffles have their own seed, so the
    numbers are those of a serial run."""
    from sklearn.inspection import permutation_importance

    m = trained.model
    X, y = trained.X[trained.eligible], trained.y[trained.eligible].to_numpy().astype(np.int64)
    rows = np.arange(min(len(y), 2000))
    got = m._importance(m.estimator_, X, y, rows)
    ref = permutation_importance(m.estimator_, X.iloc[rows], y[rows], scoring="roc_auc",
                                 n_repeats=m.importance_repeats, random_state=m.random_state)
    want = pd.DataFrame({"feature": list(map(str, X.columns)), "importance_mean": ref.importances_mean})
    want = want.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True)
    assert got["feature"].tolist() == want["feature"].tolist()
    np.testing.assert_array_equal(got["importance_mean"].to_numpy(), want["importance_mean"].to_numpy())
    assert got["importance_mean"].iloc[0] > 0.01  # a real ranking, not all zeros


def test_folds_on_threads_equal_one_fold_at_a_time(trained: Trained) -> None:
    """Cross-validation fits its folds on threads (``n_threads=None``: one per core), and the final fit runs
    beside the permutation importance; each fit is the same clone with the same seed, so the out-of-fold
    probabilities, the choice, the importances and the final model equal a serial run's (``n_threads=1``)."""
    X, y = trained.X[trained.eligible], trained.y[trained.eligible]
    serial = PropensityModel(random_state=0, n_threads=1, importance_repeats=2).fit(X, y)
    threaded = PropensityModel(random_state=0, n_threads=2, importance_repeats=2).fit(X, y)
    pd.testing.assert_frame_equal(serial.permutation_importance_, threaded.permutation_importance_)
    np.testing.assert_array_equal(serial.oof_proba_, threaded.oof_proba_)
    assert serial.chosen_ == threaded.chosen_
    assert serial.cv_results_.keys() == threaded.cv_results_.keys()
    for name, res in serial.cv_results_.items():
        assert {k: v for k, v in res.items() if k != "seconds"} == {
            k: v for k, v in threaded.cv_results_[name].items() if k != "seconds"}
    np.testing.assert_array_equal(serial.predict_proba(X), threaded.predict_proba(X))
