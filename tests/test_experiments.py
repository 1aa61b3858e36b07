"""Experiments: design (blocks, exact counts, seed, balance, hash), holdout exclusion, power, estimators with
answers computed independently, attrition and the no-dropping guard, the planted-effect generator."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from geo_segment import schema as S
from geo_segment.config import ExperimentConfig, load_config
from geo_segment.errors import ConfigError, SchemaError
from geo_segment.experiments import (
    DesignTamperedError,
    analyze_experiment,
    design_experiment,
    estimate_icc,
    exclude_holdout,
    holdout_mask,
    load_design,
    power,
    write_report,
)
from geo_segment.experiments.analysis import estimate_itt
from geo_segment.synth import draw_outcome_election

# --- fixtures ---------------------------------------------------------------------------------------------------


def _voters(sizes: list[list[int]], *, precincts: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """Voters from household sizes per precinct: ``sizes[p] = [size of household 0, ...]``.

    Voter ids are ``v<precinct>-<household>-<k>``, households ``h<precinct>-<household>``; a score, party and
    birth year are drawn from ``seed`` so covariates exist.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for p, hh_sizes in enumerate(sizes):
        pid = precincts[p] if precincts else f"P{p}"
        for h, n in enumerate(hh_sizes):
            for k in range(n):
                rows.append({S.VOTER_ID: f"v{p}-{h:03d}-{k}", S.HOUSEHOLD_ID: f"h{p}-{h:03d}", S.PRECINCT_ID: pid})
    v = pd.DataFrame(rows)
    v[S.PROPENSITY] = rng.random(len(v))
    v[S.PARTY] = rng.choice(["DEM", "REP", "UNA"], len(v))
    v[S.BIRTH_YEAR] = pd.array(rng.integers(1940, 2005, len(v)), dtype="Int64")
    return v


@pytest.fixture(scope="module")
def county() -> pd.DataFrame:
    """Three precincts of 60, 45 and 30 households of 1-3 voters."""
    rng = np.random.default_rng(5)
    return _voters([list(rng.integers(1, 4, n)) for n in (60, 45, 30)])


# --- design -----------------------------------------------------------------------------------------------------


def test_blocks_and_exact_holdout_counts_when_share_times_size_is_whole() -> None:
    # two precincts of 20 single-voter households, no score strata: two blocks, exactly 4 of 20 held out in each
    v = _voters([[1] * 20, [1] * 20])
    d = design_experiment(v, holdout_share=0.2, score_col=None, balance_threshold=None, seed=3)
    assert d.blocks.to_dict("records") == [
        {"block": "P0|s0", "units": 20, "holdout_units": 4, "voters": 20, "holdout_voters": 4},
        {"block": "P1|s0", "units": 20, "holdout_units": 4, "voters": 20, "holdout_voters": 4},
    ]
    a = d.assignment
    assert a["unit_id"].is_unique and len(a) == 40
    assert set(a["arm"]) == {"treatment", "holdout"}


def test_small_cells_join_their_precinct_and_small_precincts_are_pooled() -> None:
    # P0: 30 units (large), P1 and P2: 6 units each (pooled together: 12 < 20, so "pooled|all" joins P0's block)
    v = _voters([[1] * 30, [1] * 6, [1] * 6])
    d = design_experiment(v, holdout_share=0.1, score_col=None, balance_threshold=None, min_block_units=10)
    assert d.blocks["block"].tolist() == ["P0|s0", "pooled|s0"]
    assert d.blocks["units"].tolist() == [30, 12]
    d2 = design_experiment(v, holdout_share=0.1, score_col=None, balance_threshold=None, min_block_units=20)
    assert d2.blocks["block"].tolist() == ["P0|s0"]  # the pooled remainder (12) was too small: joins the largest
    assert d2.blocks["units"].tolist() == [42]


def test_score_strata_split_a_precinct_into_blocks() -> None:
    v = _voters([[1] * 60])
    v[S.PROPENSITY] = np.arange(60) / 60  # households h0-000..h0-019 lowest, h0-040..h0-059 highest
    d = design_experiment(v, holdout_share=0.1, n_strata=3, balance_threshold=None, min_block_units=20)
    a = d.assignment.set_index("unit_id")
    assert d.blocks["block"].tolist() == ["P0|s0", "P0|s1", "P0|s2"]
    assert a.loc["h0-000", "stratum"] == 0 and a.loc["h0-059", "stratum"] == 2
    assert (d.blocks["holdout_units"] == 2).all()


def test_same_seed_same_design_and_hash_different_seed_differs(county: pd.DataFrame) -> None:
    d1 = design_experiment(county, seed=11)
    d2 = design_experiment(county.sample(frac=1, random_state=1), seed=11)  # row order does not matter
    d3 = design_experiment(county, seed=12)
    pd.testing.assert_frame_equal(d1.assignment, d2.assignment)
    assert d1.content_sha256 == d2.content_sha256
    assert len(d1.content_sha256) == 64
    assert not d1.assignment["arm"].equals(d3.assignment["arm"])
    assert d1.content_sha256 != d3.content_sha256


def test_rerandomization_meets_the_threshold_and_is_reported(county: pd.DataFrame) -> None:
    d = design_experiment(county, holdout_share=0.3, balance_threshold=0.05, seed=2)
    assert d.check["threshold_met"] and d.params["rerandomized"]
    assert d.balance["std_diff"].abs().max() < 0.05
    assert d.check["max_abs_std_diff"] == pytest.approx(d.balance["std_diff"].abs().max())
    assert set(d.balance["covariate"]) == {"age", "party_dem", "party_rep", "party_una", "score"}


def test_balance_table_matches_an_independent_computation(county: pd.DataFrame) -> None:
    d = design_experiment(county, holdout_share=0.3, balance_threshold=None, seed=4)
    arm = county[S.HOUSEHOLD_ID].map(d.assignment.set_index("unit_id")["arm"])
    x = county[S.PROPENSITY]
    t, h = x[arm == "treatment"], x[arm == "holdout"]
    expected = (t.mean() - h.mean()) / math.sqrt((t.var(ddof=1) + h.var(ddof=1)) / 2)
    row = d.balance.set_index("covariate").loc["score"]
    assert row["std_diff"] == pytest.approx(expected, rel=1e-9)
    assert row["mean_holdout"] == pytest.approx(h.mean())


def test_unreachable_threshold_warns_and_keeps_the_most_balanced(county: pd.DataFrame) -> None:
    from geo_segment.errors import GeoSegmentWarning

    with pytest.warns(GeoSegmentWarning, match="no draw in 50 met the balance threshold 1e-06"):
        d = design_experiment(county, balance_threshold=1e-6, max_draws=50)
    assert not d.check["threshold_met"] and not d.params["rerandomized"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unit": "block"}, r"unit='block' \(expected one of \['household', 'micro_geo', 'precinct', 'turf'\]\)"),
        ({"holdout_share": 1.0}, r"holdout_share=1.0 \(expected 0 < share < 1\)"),
        ({"n_strata": 0}, r"n_strata=0"),
    ],
)
def test_bad_settings_are_config_errors(county: pd.DataFrame, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        design_experiment(county, **kwargs)  # type: ignore[arg-type]


def test_missing_unit_column_is_a_schema_error_naming_the_stage(county: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match=r"voters lack the columns the experiment design needs: \['turf_id'\]"):
        design_experiment(county, unit="turf")


@pytest.mark.parametrize("unit", ["turf", "micro_geo", "precinct"])
def test_other_units(unit: str) -> None:
    v = _voters([[1] * 12 for _ in range(8)])
    v[S.TURF_ID] = "T" + (np.arange(len(v)) // 4).astype(str)  # 24 turfs of 4 voters
    v[S.MICRO_GEO] = pd.array(np.where(np.arange(len(v)) % 8 == 0, -1, np.arange(len(v)) // 8), dtype="Int64")
    d = design_experiment(v, unit=unit, holdout_share=0.25, balance_threshold=None, min_block_units=4)
    counts = {"turf": 24, "micro_geo": 12, "precinct": 8}
    assert len(d.assignment) == counts[unit]
    if unit == "micro_geo":  # noise (-1) voters are not in the experiment
        assert len(d.members) == len(v) - int((v[S.MICRO_GEO] == -1).sum())
    if unit == "precinct":  # blocking on the unit itself is meaningless: only score strata block
        assert all(not b.startswith("P") for b in d.blocks["block"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    share=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
)
def test_every_unit_assigned_once_and_block_counts_within_one(sizes: list[int], share: float, seed: int) -> None:
    v = _voters([[1 + (i % 3) for i in range(n)] for n in sizes], seed=seed)
    if v[S.HOUSEHOLD_ID].nunique() < 2:
        return
    d = design_experiment(v, holdout_share=share, balance_threshold=None, seed=seed, n_strata=2, check_draws=10)
    a = d.assignment
    assert a["unit_id"].is_unique
    assert set(a["unit_id"]) == set(v[S.HOUSEHOLD_ID])
    assert set(d.members[S.VOTER_ID]) == set(v[S.VOTER_ID]) and d.members[S.VOTER_ID].is_unique
    held = d.blocks["holdout_units"].to_numpy()
    target = share * d.blocks["units"].to_numpy()
    assert np.all(np.abs(held - target) < 1)


# --- saved designs ----------------------------------------------------------------------------------------------


def test_save_load_round_trip_verifies_the_hash(county: pd.DataFrame, tmp_path: Path) -> None:
    d = design_experiment(county, seed=1)
    paths = d.save(tmp_path)
    assert sorted(p.name for p in paths.values()) == ["assignment.csv", "balance.csv", "blocks.csv", "design.json",
                                                      "power.json"]
    back = load_design(tmp_path)  # the folder works too
    pd.testing.assert_frame_equal(back.assignment, d.assignment)
    pd.testing.assert_frame_equal(back.members, d.members)
    assert back.content_sha256 == d.content_sha256 == back.compute_hash()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("edit", ["flip_arm", "drop_unit", "change_share", "move_voter"])
def test_an_edited_design_is_refused(county: pd.DataFrame, tmp_path: Path, edit: str) -> None:
    d = design_experiment(county, seed=1)
    path = d.save(tmp_path)["design"]
    raw = json.loads(path.read_text())
    a = raw["assignment"]
    if edit == "flip_arm":
        a["arm"][0] = "treatment" if a["arm"][0] == "holdout" else "holdout"
    elif edit == "drop_unit":
        for col in a:
            a[col] = a[col][1:]
    elif edit == "change_share":
        raw["params"]["holdout_share"] = 0.2
    else:
        raw["members"]["unit_id"][0] = raw["members"]["unit_id"][-1]
    path.write_text(json.dumps(raw))
    with pytest.raises(DesignTamperedError, match=(
            r"design.json: the experiment design was changed after it was saved \(its content no longer matches "
            r"its SHA-256\); expected content_sha256 [0-9a-f]{64}, found [0-9a-f]{64}\. Fix: restore the original")):
        load_design(path)


def test_not_a_design_file(tmp_path: Path) -> None:
    from geo_segment.errors import InputFileError

    p = tmp_path / "design.json"
    p.write_text('{"format": "something else"}')
    with pytest.raises(InputFileError, match="not a geo_segment experiment design; expected format"):
        load_design(p)
    with pytest.raises(InputFileError, match="experiment design not found"):
        load_design(tmp_path / "missing.json")


# --- holdout exclusion ------------------------------------------------------------------------------------------


def test_holdout_mask_and_exclusion(county: pd.DataFrame, tmp_path: Path) -> None:
    d = design_experiment(county, seed=9)
    held = set(d.holdout_units)
    mask = holdout_mask(county, d)
    assert mask.index.equals(county.index)
    assert mask.tolist() == county[S.HOUSEHOLD_ID].isin(held).tolist()
    kept = exclude_holdout(county, d)
    assert len(kept) == len(county) - int(mask.sum()) and not kept[S.HOUSEHOLD_ID].isin(held).any()
    # a voter who moved into a held-out household after the design is held out too
    newcomer = pd.DataFrame({S.VOTER_ID: ["new"], S.HOUSEHOLD_ID: [sorted(held)[0]]})
    assert holdout_mask(newcomer, d).tolist() == [True]
    # frames without the unit column are matched on voter_id; the saved path works as the design
    only_ids = county[[S.VOTER_ID]]
    assert holdout_mask(only_ids, d).tolist() == mask.tolist()
    d.save(tmp_path)
    assert len(exclude_holdout(county, tmp_path / "design.json")) == len(kept)
    assert exclude_holdout(county, None).equals(county)
    polygons = pd.DataFrame({S.PRECINCT_ID: ["P0", "P1"]})
    assert exclude_holdout(polygons, d, strict=False).equals(polygons)  # nothing to match: unchanged
    with pytest.raises(SchemaError, match=r"cannot tell which rows are held out; expected a 'household_id' or "
                                          r"'voter_id' column"):
        holdout_mask(pd.DataFrame({"x": [1]}), d)


def test_exclusion_keeps_geodataframe_crs_and_index() -> None:
    import geopandas as gpd

    v = _voters([[1] * 20])
    g = gpd.GeoDataFrame(v, geometry=gpd.points_from_xy(np.zeros(20), np.zeros(20)), crs=S.CRS_STORAGE)
    g.index = g.index + 100
    d = design_experiment(v, holdout_share=0.25, score_col=None, balance_threshold=None)
    out = exclude_holdout(g, d)
    assert isinstance(out, gpd.GeoDataFrame) and out.crs == g.crs and len(out) == 15
    assert set(out.index) <= set(g.index)


# --- power ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "icc", "p", "s"), [(10_000, 1.0, 0.0, 0.5, 0.5), (20_000, 1.6, 0.4, 0.55, 0.1),
                                                        (3_003, 1.47, 0.3, 0.65, 0.3)])
def test_power_matches_the_textbook_formula(n: int, m: float, icc: float, p: float, s: float) -> None:
    r = power(n, cluster_size=m, icc=icc, base_rate=p, holdout_share=s, contact_rate=0.5)
    deff = 1 + (m - 1) * icc
    expected = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(p * (1 - p) * deff / (n * s * (1 - s)))
    assert r.design_effect == pytest.approx(deff)
    assert r.mde == pytest.approx(expected)
    assert r.mde_cace == pytest.approx(2 * expected)
    # at the MDE the power is the target (the far tail adds a negligible amount)
    assert power(n, cluster_size=m, icc=icc, base_rate=p, holdout_share=s, effect=r.mde).power_at_effect == (
        pytest.approx(0.8, abs=1e-3))


def test_power_rejects_bad_inputs() -> None:
    with pytest.raises(ConfigError, match=r"power: icc out of range; expected a value in \[0, 1\], found 1.5"):
        power(100, icc=1.5)
    with pytest.raises(ConfigError, match="power: too few voters"):
        power(1)


def test_icc_estimate_against_the_anova_formula() -> None:
    assert estimate_icc([1, 1, 0, 0, 1, 1], ["a", "a", "b", "b", "c", "c"]) == pytest.approx(1.0)
    y = np.array([1, 0, 1, 1, 0, 0, 1])
    g = np.array(["a", "a", "a", "b", "b", "c", "c"])
    # by hand: group means 2/3, 1/2, 1/2; grand 4/7
    n_g = np.array([3, 2, 2])
    means = np.array([2 / 3, 1 / 2, 1 / 2])
    msb = (n_g * (means - 4 / 7) ** 2).sum() / 2
    msw = ((1 - 2 / 3) ** 2 * 2 + (2 / 3) ** 2 + 0.25 * 4) / 4
    n0 = (7 - (9 + 4 + 4) / 7) / 2
    assert estimate_icc(y, g) == pytest.approx(max(0.0, (msb - msw) / (msb + (n0 - 1) * msw)))
    assert estimate_icc([1, 0], ["a", "b"]) == 0.0  # no replication within groups


# --- the estimator, against independent computations -------------------------------------------------------------


def test_itt_and_cr1_by_hand_single_block() -> None:
    # households: h1 (T) [1, 1], h2 (T) [1, 0], h3 (H) [0], h4 (H) [1, 0]
    y = [1, 1, 1, 0, 0, 1, 0]
    t = [1, 1, 1, 1, 0, 0, 0]
    g = ["h1", "h1", "h2", "h2", "h3", "h4", "h4"]
    e = estimate_itt(y, t, ["b"] * 7, g, vcov="CR1")
    assert e.effects[0] == pytest.approx(3 / 4 - 1 / 3)
    # cluster-robust variance of a difference in means: sum of squared cluster residual sums over n_arm^2
    v0 = (0.5**2 + 0.5**2) / 16 + ((1 / 3) ** 2 + (1 / 3) ** 2) / 9
    c = (4 / 3) * (6 / 5)  # G/(G-1) * (N-1)/(N-K), K = 2
    assert e.cov[0, 0] == pytest.approx(c * v0)
    assert e.df == 3 and e.clusters == 4


def _sandwich(y: np.ndarray, X: np.ndarray, w: np.ndarray, g: np.ndarray, kind: str = "CR1"
              ) -> tuple[np.ndarray, np.ndarray]:
    """WLS coefficients and the CR1 or CR2 covariance with explicit matrices (the independent reference).

    CR2 (Bell and McCaffrey): in the sqrt(W)-transformed regression, each cluster's residuals are multiplied by
    ``(I - H_gg)^(-1/2)`` with ``H = X (X'X)^-1 X'`` before the usual sandwich.
    """
    from scipy.linalg import sqrtm

    v = np.sqrt(w)
    Xs, ys = X * v[:, None], y * v
    bread = np.linalg.inv(Xs.T @ Xs)
    beta = bread @ Xs.T @ ys
    es = ys - Xs @ beta
    H = Xs @ bread @ Xs.T
    meat = np.zeros((X.shape[1], X.shape[1]))
    for c in np.unique(g):
        m = g == c
        r = es[m]
        if kind == "CR2":
            r = np.real(np.linalg.inv(sqrtm(np.eye(int(m.sum())) - H[np.ix_(m, m)]))) @ r
        s = Xs[m].T @ r
        meat += np.outer(s, s)
    n, k = X.shape
    G = len(np.unique(g))
    c = (G / (G - 1)) * ((n - 1) / (n - k)) if kind == "CR1" else 1.0
    return beta, c * bread @ meat @ bread


def test_itt_with_blocks_and_covariates_matches_explicit_wls_sandwich() -> None:
    rng = np.random.default_rng(3)
    n_units = 60
    unit_block = np.repeat([0, 1, 2], 20)
    unit_t = np.concatenate([rng.permutation([1] * k + [0] * (20 - k)) for k in (14, 10, 5)])
    sizes = rng.integers(1, 4, n_units)
    g = np.repeat(np.arange(n_units), sizes)
    b = unit_block[g]
    t = unit_t[g].astype(float)
    x = rng.normal(size=(len(g), 2))
    y = (rng.random(len(g)) < 0.3 + 0.2 * t + 0.1 * (x[:, 0] > 0)).astype(float)
    p = np.array([t[b == k].mean() for k in range(3)])[b]
    w = np.where(t > 0, 1 / p, 1 / (1 - p))
    X = np.column_stack([t, (b == 0), (b == 1), (b == 2), x]).astype(float)
    for kind in ("CR1", "CR2"):
        beta, cov = _sandwich(y, X, w, g, kind)
        e = estimate_itt(y, t, b, g, x, vcov=kind)
        assert e.effects[0] == pytest.approx(beta[0], rel=1e-10)
        assert e.cov[0, 0] == pytest.approx(cov[0, 0], rel=1e-8), kind
        # without covariates: exactly the block-weighted difference in means
        e0 = estimate_itt(y, t, b, g, vcov=kind)
        diffs = [y[(b == k) & (t > 0)].mean() - y[(b == k) & (t == 0)].mean() for k in range(3)]
        nb = np.bincount(b)
        assert e0.effects[0] == pytest.approx(float((nb * diffs).sum() / nb.sum()))
        beta0, cov0 = _sandwich(y, X[:, :4], w, g, kind)
        assert e0.cov[0, 0] == pytest.approx(cov0[0, 0], rel=1e-8), kind
    # two outcomes at once: the joint covariance's diagonal is each outcome's own
    y2 = (rng.random(len(g)) < 0.5).astype(float)
    both = estimate_itt(np.column_stack([y, y2]), t, b, g, x)
    assert both.cov[1, 1] == pytest.approx(estimate_itt(y2, t, b, g, x).cov[0, 0])


def _every_blocked_assignment(units_per_block: list[int], share: float):  # type: ignore[no-untyped-def]
    """Every holdout draw of the design's procedure with its probability, enumerated from its definition (step 3 of
    ``geo_segment.experiments.design``): per block ``floor(s n)`` units, one more with probability
    ``s n - floor(s n)``, a uniformly random subset of that size."""
    per_block = []
    for n in units_per_block:
        base = math.floor(share * n)
        frac = share * n - base
        options = []
        for k, pk in ((base, 1 - frac), (base + 1, frac)):
            if pk > 1e-12:
                subsets = list(itertools.combinations(range(n), k))
                options += [(set(c), pk / len(subsets)) for c in subsets]
        per_block.append(options)
    for combo in itertools.product(*per_block):
        yield [c for c, _ in combo], math.prod(pk for _, pk in combo)


@pytest.mark.parametrize("share", [0.3, 0.45])
def test_itt_is_exactly_unbiased_over_every_blocked_household_assignment(share: float) -> None:
    # blocks of (households, voters per household): unequal block sizes, so the realized voter share treated
    # varies by block and draw; base turnout and effects differ by block and by voter. Averaged over every possible
    # assignment (exact enumeration, 1,500 / 2,000 of them), the estimate on the expected outcomes must equal the
    # planted ITT (the mean over voters of the individual effects), which is what the benchmark's truth is.
    layout = [(5, 2), (4, 1), (4, 3)]
    rng = np.random.default_rng(11)
    block, unit, p0, tau = [], [], [], []
    for b, (n_units, size) in enumerate(layout):
        for u in range(n_units):
            block += [b] * size
            unit += [f"{b}-{u}"] * size
            p0 += list(np.clip(0.2 + 0.3 * b + 0.1 * rng.standard_normal(size), 0.01, 0.95))
            tau += list(0.02 + 0.08 * (b == 1) + 0.03 * rng.random(size))
    block_a, unit_a, p0_a, tau_a = np.array(block), np.array(unit), np.array(p0), np.array(tau)
    unit_index = np.array([int(x.split("-")[1]) for x in unit])
    truth = float(tau_a.mean())
    mean_est = mean_naive = total = 0.0
    for holdouts, prob in _every_blocked_assignment([n for n, _ in layout], share):
        t = np.array([0.0 if unit_index[i] in holdouts[block_a[i]] else 1.0 for i in range(len(unit))])
        y = p0_a + t * tau_a
        mean_est += prob * float(estimate_itt(y, t, block_a, unit_a).effects[0])
        # a plausible slip: blocks weighted by their households instead of their voters
        by_units = sum(n * (y[(block_a == b) & (t > 0)].mean() - y[(block_a == b) & (t == 0)].mean())
                       for b, (n, _) in enumerate(layout)) / sum(n for n, _ in layout)
        mean_naive += prob * float(by_units)
        total += prob
    assert total == pytest.approx(1.0, abs=1e-12)
    assert mean_est == pytest.approx(truth, abs=1e-12)
    # the check can fail: weighting blocks by households misses the voters' ITT on this population
    assert abs(mean_naive - truth) > 5e-3


def test_blocks_with_one_arm_do_not_contribute() -> None:
    e = estimate_itt([1, 0, 1, 1, 0], [1, 0, 1, 1, 1], ["a", "a", "b", "b", "b"], ["u1", "u2", "u3", "u4", "u5"])
    assert e.blocks_used == 1 and e.effects[0] == pytest.approx(1.0)


# --- analysis ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_design() -> tuple[pd.DataFrame, object]:
    v = _voters([[1, 2] * 10, [2, 1] * 10], seed=2)
    d = design_experiment(v, holdout_share=0.3, score_col=None, balance_threshold=None, seed=5, min_block_units=10)
    return v, d


def _arm_of(v: pd.DataFrame, d: object) -> pd.Series:
    return v[S.HOUSEHOLD_ID].map(d.assignment.set_index("unit_id")["arm"])  # type: ignore[attr-defined]


def test_analysis_of_an_outcome_table_matches_the_block_weighted_difference(small_design: tuple) -> None:
    v, d = small_design
    arm = _arm_of(v, d)
    rng = np.random.default_rng(1)
    y = (rng.random(len(v)) < np.where(arm == "treatment", 0.7, 0.4)).astype(float)
    res = analyze_experiment(d, None, pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], "outcome": y}), ri_draws=500)
    o = res.overall
    blocks = v[S.PRECINCT_ID]
    diffs = [y[(blocks == p) & (arm == "treatment")].mean() - y[(blocks == p) & (arm == "holdout")].mean()
             for p in ("P0", "P1")]
    nb = [(blocks == p).sum() for p in ("P0", "P1")]
    assert o["itt"] == pytest.approx((nb[0] * diffs[0] + nb[1] * diffs[1]) / sum(nb))
    q = stats.t.ppf(0.975, o["df"])
    assert o["ci_low"] == pytest.approx(o["itt"] - q * o["se"]) and o["df"] == len(d.assignment) - 1
    assert o["n_voters"] == len(v) and o["n_observed"] == len(v) and o["adjusted_for"] == []
    assert 0 < o["ri_p_value"] <= 1 and o["ri_draws"] == 500
    assert res.by_block["block"].tolist() == ["P0|s0", "P1|s0"]
    assert res.by_block["itt"].tolist() == pytest.approx(diffs)
    assert res.attrition["missing"].tolist() == [0, 0]


def test_randomization_inference_extremes(small_design: tuple) -> None:
    v, d = small_design
    arm = _arm_of(v, d)
    y_perfect = (arm == "treatment").astype(float)
    r = analyze_experiment(d, None, pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], "outcome": y_perfect}), ri_draws=300)
    assert r.overall["itt"] == pytest.approx(1.0)
    assert r.overall["ri_p_value"] == pytest.approx(1 / 301)
    y_const = np.ones(len(v))
    r = analyze_experiment(d, None, pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], "outcome": y_const}), ri_draws=300)
    assert r.overall["itt"] == pytest.approx(0.0) and r.overall["ri_p_value"] == 1.0


def test_attrition_is_reported_by_arm_and_no_unit_is_dropped(small_design: tuple) -> None:
    v, d = small_design
    arm = _arm_of(v, d)
    history = pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], S.ELECTION_DATE: pd.Timestamp("2026-11-03"),
                            S.ELECTION_TYPE: "general", S.VOTED: True})
    gone_t = v.loc[arm == "treatment", S.VOTER_ID].iloc[:3].tolist()
    gone_h = v.loc[arm == "holdout", S.VOTER_ID].iloc[:1].tolist()
    roll = sorted(set(v[S.VOTER_ID]) - set(gone_t) - set(gone_h))
    res = analyze_experiment(d, None, history, outcome_election="2026-11-03", roll=roll, ri_draws=0)
    att = res.attrition.set_index("arm")
    assert att.loc["treatment", "missing"] == 3 and att.loc["holdout", "missing"] == 1
    assert att["units"].sum() == len(d.assignment)
    assert att["voters"].sum() == len(v)
    assert res.overall["n_voters"] == len(v) and res.overall["n_observed"] == len(v) - 4
    assert any("4 of" in n and "have no outcome" in n for n in res.notes)
    assert res.overall["itt"] == pytest.approx(0.0)  # everyone on the roll voted


def test_analysis_refuses_a_design_with_dropped_units(small_design: tuple) -> None:
    import dataclasses

    v, d = small_design
    trimmed = dataclasses.replace(d, assignment=d.assignment.iloc[1:].reset_index(drop=True))
    out = pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], "outcome": 1.0})
    with pytest.raises(DesignTamperedError, match=r"changed after randomization .* Fix: analyse the saved design as "
                                                  r"it was launched: every randomized unit, in its assigned arm"):
        analyze_experiment(trimmed, None, out)


def test_history_without_the_outcome_election_is_an_error(small_design: tuple) -> None:
    v, d = small_design
    h = pd.DataFrame({S.VOTER_ID: ["v0-000-0"], S.ELECTION_DATE: pd.Timestamp("2024-11-05"), S.VOTED: True})
    with pytest.raises(SchemaError, match=r"holds no votes in the outcome election 2026-11-03; expected the updated "
                                          r"vote history, after the election, found newest election 2024-11-05"):
        analyze_experiment(d, None, h, outcome_election="2026-11-03")
    with pytest.raises(SchemaError, match="no outcome election was given"):
        analyze_experiment(d, None, h)


def test_cace_is_itt_over_the_contact_difference(small_design: tuple) -> None:
    v, d = small_design
    arm = _arm_of(v, d)
    rng = np.random.default_rng(8)
    y = (rng.random(len(v)) < np.where(arm == "treatment", 0.6, 0.45)).astype(float)
    t_hh = sorted(set(v.loc[arm == "treatment", S.HOUSEHOLD_ID]))
    reached = t_hh[::2]  # half the treatment households, by household-level results
    contacts = pd.DataFrame({S.VOTER_ID: pd.Series([pd.NA] * (len(t_hh)), dtype="string"),
                             S.HOUSEHOLD_ID: t_hh, "contact_date": pd.Timestamp("2026-10-20"),
                             "result_code": ["CT" if h in reached else "NH" for h in t_hh]})
    res = analyze_experiment(d, v, pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], "outcome": y}), contacts=contacts,
                             adjust=False, ri_draws=0)
    o = res.overall
    contacted = v[S.HOUSEHOLD_ID].isin(reached).to_numpy(float)
    blocks = v[S.PRECINCT_ID].to_numpy()
    t = (arm == "treatment").to_numpy(float)
    e = estimate_itt(np.column_stack([y, contacted]), t, blocks, v[S.HOUSEHOLD_ID].to_numpy())
    assert o["itt_contact"] == pytest.approx(e.effects[1])
    assert o["cace"] == pytest.approx(e.effects[0] / e.effects[1])
    grad = np.array([1 / e.effects[1], -e.effects[0] / e.effects[1] ** 2])
    assert o["cace_se"] == pytest.approx(math.sqrt(grad @ e.cov @ grad))
    assert o["contact_rate_holdout"] == 0.0
    assert o["contact_rate_treatment"] == pytest.approx(contacted[t > 0].mean())
    # the ITT compares assigned arms: who was reached does not change it
    no_contacts = analyze_experiment(d, v, pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], "outcome": y}), adjust=False,
                                     ri_draws=0)
    assert no_contacts.overall["itt"] == pytest.approx(o["itt"]) and "cace" not in no_contacts.overall


def test_report_and_plot_are_written(small_design: tuple, tmp_path: Path) -> None:
    v, d = small_design
    y = np.random.default_rng(2).random(len(v)) < 0.5
    res = analyze_experiment(d, None, pd.DataFrame({S.VOTER_ID: v[S.VOTER_ID], "outcome": y}), ri_draws=100)
    paths = write_report(res, d, tmp_path)
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths["report"].read_text()
    assert "## In plain words" in text and "percentage points" in text and d.content_sha256 in text
    assert "by the group each voter was *assigned* to" in text
    assert json.loads(paths["analysis"].read_text())["params"]["design_sha256"] == d.content_sha256
    assert not list(tmp_path.glob(".*.tmp"))


# --- the planted-effect generator -------------------------------------------------------------------------------


def test_draw_outcome_election_truth_and_contacts() -> None:
    v = pd.DataFrame({S.VOTER_ID: list("abcdef"), S.HOUSEHOLD_ID: ["h1", "h1", "h2", "h3", "h4", "h5"],
                      "true_propensity": [0.2, 0.4, 0.5, 0.5, 0.9, 0.5]})
    treated = pd.array([True, True, False, True, pd.NA, False], dtype="boolean")
    out = draw_outcome_election(v, treated, effect=0.2, contact_rate=1.0, seed=3)
    p1 = np.clip(np.array([0.2, 0.4, 0.5, 0.5, 0.9, 0.5]) + 0.2, 0, 1)
    lift = p1 - np.array([0.2, 0.4, 0.5, 0.5, 0.9, 0.5])
    in_exp = [0, 1, 2, 3, 5]
    assert out.true_itt == pytest.approx(lift[in_exp].mean())
    assert out.true_cace == pytest.approx(lift[in_exp].mean())
    assert sorted(out.contacts[S.HOUSEHOLD_ID]) == ["h1", "h3"] and set(out.contacts["result_code"]) == {"CT"}
    assert set(out.history[S.VOTER_ID]) == set(out.truth.loc[out.truth[S.VOTED], S.VOTER_ID])
    again = draw_outcome_election(v, treated, effect=0.2, contact_rate=1.0, seed=3)
    pd.testing.assert_frame_equal(out.history, again.history)
    logit = draw_outcome_election(v, treated, effect=1.0, scale="logit", seed=3)
    p0 = np.array([0.2, 0.4, 0.5, 0.5, 0.9, 0.5])
    expected = 1 / (1 + np.exp(-(np.log(p0 / (1 - p0)) + 1.0))) - p0
    assert logit.true_itt == pytest.approx(expected[in_exp].mean())
    with pytest.raises(ConfigError, match="unknown effect scale"):
        draw_outcome_election(v, treated, scale="odds")


# --- configuration ----------------------------------------------------------------------------------------------


def test_experiment_config_section(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[experiment]\nunit = "turf"\nholdout_share = 0.2\nblocks = ["precinct_id", "ward"]\n'
                 'score_col = "none"\n')
    cfg = load_config(p).experiment
    assert cfg.unit == "turf" and cfg.blocks == ("precinct_id", "ward") and cfg.score_column(["propensity"]) is None
    assert ExperimentConfig().score_column(["engagement_score"]) == "engagement_score"
    assert ExperimentConfig().score_column(["propensity", "engagement_score"]) == "propensity"
    p.write_text('[experiment]\nholdout_share = 1.5\n')
    with pytest.raises(ConfigError, match=r"\[experiment\] settings out of range; expected .*found holdout_share=1.5"):
        load_config(p)
    p.write_text('[experiment]\nholdout = 0.5\n')
    with pytest.raises(ConfigError, match=r"unknown keys \['holdout'\] in \[experiment\]"):
        load_config(p)
