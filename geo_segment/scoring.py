"""Scores per voter: a transparent rule score, a propensity model and lookalikes.

Three scores, all in [0, 1], land in the voters frame (:func:`score_voters`):

``engagement_score``
    :func:`rule_score`: a weighted mean of a few readable sub-scores (turnout rates, recency, signals, household,
    neighbourhood) whose weights are a frozen :class:`RuleWeights` from the configuration. No labels needed.
``propensity``
    :class:`PropensityModel`: the probability of voting, learnt from a past election (the *label election*) with
    features computed strictly before it (:func:`geo_segment.features.build_features`), then applied to features
    computed now. scikit-learn ``HistGradientBoostingClassifier`` and a scaled ``LogisticRegression`` are compared
    by stratified cross-validation; the better one is refitted on every row, calibrated when its calibration is
    poor, explained by permutation importance, and saved with its feature list, a hash of its training data and
    the library versions.
``lookalike_score``
    :class:`LookalikeModel`: a positive-unlabeled classifier scoring how much each voter resembles a seed list
    (donors, event attendees, volunteers); :func:`lookalike_recall` measures how well held-out seeds rank.

Everything random takes ``random_state``; nothing prints.
"""

from __future__ import annotations

import hashlib
import logging
import math
import platform
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
from joblib import parallel_config
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from geo_segment import schema as S
from geo_segment._vector import usable_cores
from geo_segment.errors import ConfigError, GeoSegmentWarning, SchemaError
from geo_segment.features import DateLike, FeatureBuilder, eligible_voters
from geo_segment.io.atomic import atomic_path

__all__ = [
    "LOOKALIKE_SCORE",
    "TRUE_PROPENSITY",
    "FeatureMismatchError",
    "LookalikeModel",
    "PropensityModel",
    "RuleWeights",
    "expected_calibration_error",
    "lookalike_recall",
    "rule_score",
    "score_voters",
    "score_voters_with_model",
]

log = logging.getLogger(__name__)

#: Column of the lookalike score in the voters frame.
LOOKALIKE_SCORE = "lookalike_score"
#: Planted truth carried by synthetic voters (:mod:`geo_segment.synth`); used only to report ``oracle_roc_auc``.
TRUE_PROPENSITY = "true_propensity"
_FORMAT = "geo_segment.propensity_model/1"


class FeatureMismatchError(SchemaError):
    """The features given to a fitted model differ from the ones it was trained on."""


# ---------------------------------------------------------------------------------------------------------------
# rule score
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleWeights:
    """Weights and scales of the transparent rule score (:func:`rule_score`).

    The score is the weighted mean of the sub-scores available for a voter; weights need not sum to 1.

    Attributes
    ----------
    general_turnout
        Weight of ``general_rate``: the share of eligible general elections of the window the voter voted in;
        dropped for voters eligible for none.
    primary_turnout
        Weight of ``primary_rate``; dropped for voters eligible for no primary.
    recency
        Weight of ``0.5 ** (years_since_last_vote / recency_half_life_years)`` (0 for voters who never voted).
    signals
        Weight of ``1 - exp(-sum of signal_* / signal_saturation)``; dropped when the features hold no signals.
    household
        Weight of ``household_others_rate``; dropped for voters living alone.
    neighbourhood
        Weight of ``cell_turnout_rate``; dropped for voters without a cell or alone in theirs.
    recency_half_life_years
        Years after which the recency sub-score halves.
    signal_saturation
        Decayed signal weight at which the signals sub-score reaches 1 - 1/e (about 0.63).
    """

    general_turnout: float = 0.30
    primary_turnout: float = 0.15
    recency: float = 0.15
    signals: float = 0.15
    household: float = 0.10
    neighbourhood: float = 0.15
    recency_half_life_years: float = 2.0
    signal_saturation: float = 1.0

    def __post_init__(self) -> None:
        bad = [f"{k}={v!r}" for k, v in asdict(self).items()
               if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0]
        bad += [f"{k}={getattr(self, k)!r}" for k in ("recency_half_life_years", "signal_saturation")
                if not bad and getattr(self, k) <= 0]
        if bad:
            raise ConfigError(
                "rule weights out of range",
                expected="finite weights >= 0 and positive recency_half_life_years and signal_saturation",
                found=", ".join(bad),
                fix="correct the [scores.rule_weights] table",
            )
        if sum(self.components().values()) <= 0:
            raise ConfigError("rule weights are all zero", expected="at least one positive weight",
                              found="0", fix="set general_turnout = 0.3 (for example)")

    def components(self) -> dict[str, float]:
        """The weights of the sub-scores, by name."""
        return {"general_turnout": self.general_turnout, "primary_turnout": self.primary_turnout,
                "recency": self.recency, "signals": self.signals, "household": self.household,
                "neighbourhood": self.neighbourhood}

    def to_dict(self) -> dict[str, float]:
        """Plain data, for the manifest."""
        return asdict(self)


_RULE_REQUIRED = ("general_rate", "general_eligible", "primary_rate", "primary_eligible", "years_since_last_vote",
                  "never_voted", "household_size", "household_others_rate", "cell_missing", "cell_voters",
                  "cell_turnout_rate")


def rule_subscores(features: pd.DataFrame, weights: RuleWeights = RuleWeights()) -> pd.DataFrame:
    """The rule score's sub-scores, each in [0, 1] and NaN where not available for a voter.

    Columns ``general_turnout``, ``primary_turnout``, ``recency``, ``signals`` (only with ``signal_*`` features),
    ``household``, ``neighbourhood`` (float64), index of ``features``.
    """
    missing = [c for c in _RULE_REQUIRED if c not in features.columns]
    if missing:
        raise SchemaError(f"features lack the rule score's inputs {missing}",
                          fix="build them with geo_segment.features.build_features")
    f = features
    out = pd.DataFrame(index=f.index)
    out["general_turnout"] = f["general_rate"].clip(0, 1).where(f["general_eligible"] > 0)
    out["primary_turnout"] = f["primary_rate"].clip(0, 1).where(f["primary_eligible"] > 0)
    recency = pd.Series(np.power(0.5, f["years_since_last_vote"].clip(lower=0).to_numpy(dtype=np.float64)
                                 / weights.recency_half_life_years), index=f.index)
    out["recency"] = recency.where(f["never_voted"] == 0, 0.0)
    sig_cols = [c for c in f.columns if c.startswith("signal_")]
    if sig_cols:
        out["signals"] = 1.0 - np.exp(-f[sig_cols].clip(lower=0).sum(axis=1) / weights.signal_saturation)
    out["household"] = f["household_others_rate"].clip(0, 1).where(f["household_size"] > 1)
    out["neighbourhood"] = f["cell_turnout_rate"].clip(0, 1).where((f["cell_missing"] == 0) & (f["cell_voters"] > 1))
    return out.astype("float64")


def rule_score(features: pd.DataFrame, weights: RuleWeights = RuleWeights()) -> pd.Series:
    """Transparent engagement score in [0, 1]: the weighted mean of the sub-scores available for each voter.

    ``score = sum(w_i * s_i) / sum(w_i)`` over the sub-scores ``s_i`` of :func:`rule_subscores` that are defined
    for the voter (general and primary turnout only when an election of that type was eligible; signals only when
    the features hold them; household only for voters not living alone; neighbourhood only with a cell shared
    with other voters). A voter with none of them scores 0.

    Parameters
    ----------
    features
        From :func:`geo_segment.features.build_features`.
    weights
        The configuration's :class:`RuleWeights`.

    Returns
    -------
    pandas.Series
        ``engagement_score`` (float64), index of ``features``.

    Raises
    ------
    SchemaError
        ``features`` lack a column the score needs.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"general_rate": [1.0, 0.0], "general_eligible": [2.0, 2.0],
    ...                   "primary_rate": [1.0, 0.0], "primary_eligible": [1.0, 1.0],
    ...                   "years_since_last_vote": [0.0, 9.0], "never_voted": [0.0, 1.0],
    ...                   "household_size": [1.0, 1.0], "household_others_rate": [0.0, 0.0],
    ...                   "cell_missing": [1.0, 1.0], "cell_voters": [0.0, 0.0], "cell_turnout_rate": [0.0, 0.0]})
    >>> rule_score(f).round(3).tolist()
    [1.0, 0.0]
    """
    sub = rule_subscores(features, weights)
    w = pd.Series(weights.components())
    w = w[sub.columns]
    avail = sub.notna().to_numpy()
    values = sub.fillna(0.0).to_numpy()
    num = (values * w.to_numpy()).sum(axis=1)
    den = (avail * w.to_numpy()).sum(axis=1)
    score = np.divide(num, den, out=np.zeros(len(sub)), where=den > 0)
    return pd.Series(np.clip(score, 0.0, 1.0), index=features.index, name=S.ENGAGEMENT_SCORE, dtype="float64")


# ---------------------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------------------


def expected_calibration_error(y_true: npt.ArrayLike, proba: npt.ArrayLike, *, n_bins: int = 10) -> float:
    """Expected calibration error: ``sum_b (n_b / n) * |mean(proba_b) - mean(y_b)|`` over equal-width bins.

    Examples
    --------
    >>> expected_calibration_error([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0])
    0.0
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    gap = np.abs(np.bincount(b, weights=p, minlength=n_bins) - np.bincount(b, weights=y, minlength=n_bins))
    return float(gap.sum() / len(y)) if count.sum() else float("nan")


def _calibration_table(y: npt.NDArray[Any], p: npt.NDArray[np.float64], n_bins: int) -> pd.DataFrame:
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    sum_y = np.bincount(b, weights=y.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({
            "bin_lower": np.arange(n_bins) / n_bins,
            "bin_upper": np.arange(1, n_bins + 1) / n_bins,
            "mean_predicted": sum_p / count,
            "fraction_positive": sum_y / count,
            "count": count.astype(np.int64),
        })
    return table


def _metrics(y: npt.NDArray[Any], p: npt.NDArray[np.float64], n_bins: int) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, n_bins=n_bins),
    }


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("geo-segment", "scikit-learn", "numpy", "pandas", "scipy", "joblib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[dist] = "unknown"
    return out


def _data_hash(X: pd.DataFrame, y: npt.NDArray[Any]) -> str:
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, X.columns)).encode("utf-8"))
    h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    h.update(np.asarray(y, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _check_xy(X: Any, y: Any | None, what: str) -> tuple[pd.DataFrame, npt.NDArray[np.int64] | None]:
    if not isinstance(X, pd.DataFrame):
        raise SchemaError(f"{what} expects a DataFrame of features", found=type(X).__name__,
                          fix="build it with geo_segment.features.build_features")
    problems = [f"{c}: dtype {X[c].dtype} is not numeric" for c in X.columns
                if not pd.api.types.is_numeric_dtype(X[c])]
    if not problems:
        bad = ~np.isfinite(X.to_numpy(dtype=np.float64))
        if bad.any():
            cols = [str(c) for c, k in zip(X.columns, bad.any(axis=0), strict=True) if k]
            problems.append(f"NaN or infinite values in {cols}")
    if problems:
        raise SchemaError(f"{what}: features are not all finite numbers ({'; '.join(problems)})",
                          fix="build them with geo_segment.features.build_features")
    if y is None:
        return X, None
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(X):
        raise SchemaError(f"{what}: labels do not match the features", expected=f"{len(X)} labels",
                          found=f"shape {labels.shape}", fix="pass one label per feature row")
    if labels.dtype != bool:
        uniq = set(pd.unique(labels).tolist())
        if not uniq <= {0, 1}:
            raise SchemaError(f"{what}: labels must be 0/1 or bool", found=f"values {sorted(map(str, uniq))[:5]}",
                              fix="use make_label or a boolean mask")
    return X, labels.astype(np.int64)


@contextmanager
def _threads(n_threads: int | None) -> Iterator[None]:
    """Cap the OpenMP threads of gradient boosting (``None``: leave them alone) and run BLAS on one thread.

    The logistic regression's BLAS calls are small (tens of features): on two cores, threaded BLAS took three times
    the wall time of one thread (its threads spin while waiting), for the same result.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        if n_threads is None:
            yield
            return
        with threadpool_limits(limits=n_threads, user_api="openmp"):
            yield


def _cv_predict(
    estimator: Any, X: pd.DataFrame, y: npt.NDArray[np.int64], splitter: StratifiedKFold,
    pool: Executor | None = None,
) -> tuple[npt.NDArray[np.float64], Any, npt.NDArray[np.int64]]:
    """Out-of-fold probabilities, plus the first fold's fitted model and its held-out rows.

    With a ``pool`` (threads; the caller caps OpenMP at one thread per fit) the folds are fitted side by side: the
    trees and BLAS release Python's lock. Each fold is the same clone with the same seed, so the result does not
    depend on the pool.
    """
    folds = list(splitter.split(np.zeros(len(y)), y))

    def fit(train: npt.NDArray[np.int64]) -> Any:
        return clone(estimator).fit(X.iloc[train], y[train])

    if pool is not None:
        models = [f.result() for f in [pool.submit(fit, train) for train, _ in folds]]
    else:
        models = [fit(train) for train, _ in folds]
    oof = np.zeros(len(y), dtype=np.float64)
    for est, (_, test) in zip(models, folds, strict=True):
        oof[test] = est.predict_proba(X.iloc[test])[:, 1]
    return oof, models[0], folds[0][1]


def _fold_workers(n_threads: int | None) -> int:
    """Fits run at once: ``n_threads`` when set, else the usable cores (at most 4)."""
    if n_threads is not None:
        return max(int(n_threads), 1)
    return max(min(usable_cores(), 4), 1)


# ---------------------------------------------------------------------------------------------------------------
# propensity
# ---------------------------------------------------------------------------------------------------------------

ModelName = Literal["auto", "hgb", "logistic"]


class PropensityModel(ClassifierMixin, BaseEstimator):
    """Turnout propensity: gradient boosting or scaled logistic regression, chosen by stratified cross-validation.

    Parameters
    ----------
    model
        ``"auto"`` compares ``"hgb"`` (``HistGradientBoostingClassifier``) and ``"logistic"`` (``StandardScaler`` +
        ``LogisticRegression``) by cross-validated ROC-AUC (ties: lower Brier score) and keeps the better one;
        ``"hgb"`` or ``"logistic"`` uses that one (still cross-validated, for the metrics).
    cv
        Number of stratified folds (shuffled with ``random_state``).
    calibrate
        ``"auto"``: when the out-of-fold expected calibration error exceeds ``ece_tolerance``, also
        cross-validate the model wrapped in ``CalibratedClassifierCV`` and keep that when its ECE is lower;
        ``True``: always calibrate; ``False``: never.
    calibration_method
        ``"isotonic"`` or ``"sigmoid"``, for ``CalibratedClassifierCV`` (3 internal folds).
    ece_tolerance
        The ECE above which ``calibrate="auto"`` tries calibration.
    n_bins
        Equal-width bins of the calibration curve and ECE.
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, l2_regularization
        Gradient boosting settings (with early stopping on 10 % of the training rows).
    C
        Inverse regularization strength of the logistic regression.
    importance_repeats
        Repeats of the permutation importance (0 skips it). It is measured with ROC-AUC on the first fold's
        held-out rows (at most ``importance_max_rows`` of them), with the model that did not see them.
    importance_max_rows
        Cap on the rows used for permutation importance.
    n_threads
        OpenMP threads for gradient boosting while fitting and predicting; ``None`` uses every core. On a
        machine shared with other jobs, 1 is often faster (OpenMP threads wait for each other). Above one
        thread (``None``: one per core, at most 4), the fits run side by side on that many threads, each on one
        OpenMP thread: the final gradient boosting fit starts first, beside the cross-validation folds, and the
        permutation importance runs beside the final fit. The results do not depend on it.
    max_cv_rows
        Cap on the rows used for cross-validation (model choice, metrics, calibration check, importance): above
        it, a stratified random sample of that size is cross-validated. ``None``: no cap. At 100,000 rows the
        out-of-fold ROC-AUC has a standard error of about 0.002.
    max_fit_rows
        Cap on the rows the final model is fitted on: above it, a stratified random sample of that size (the
        cross-validated rows first, so the metrics describe the same kind of fit). ``None``: every row. Every
        voter is still scored. Turnout models on a few dozen features stop gaining well before 250,000 rows
        (``benchmarks/results/scores_rows.md``); the cap keeps a statewide fit to seconds.
    random_state
        Seed of the folds, the models, the sample and the importance permutations.

    Attributes
    ----------
    feature_names_ : list of str
        The features, in training order; scoring requires exactly these.
    chosen_ : str
        ``"hgb"`` or ``"logistic"``.
    calibrated_ : bool
        Whether the final model is wrapped in ``CalibratedClassifierCV``.
    estimator_
        The final scikit-learn estimator, fitted on every row (at most ``max_fit_rows``).
    cv_results_ : dict
        Out-of-fold ``roc_auc``, ``pr_auc``, ``brier``, ``ece`` and ``seconds`` per candidate
        (``"hgb"``, ``"logistic"``, and ``"<name>+calibrated"`` when calibration was tried).
    metrics_ : dict
        The final configuration's out-of-fold metrics plus ``model``, ``calibrated``, ``n`` (labelled rows),
        ``n_fit`` (rows the final model was fitted on), ``n_cv`` (rows cross-validated), ``positives``,
        ``positive_rate``, ``cv``.
    cv_rows_ : numpy.ndarray
        Positions of the rows that were cross-validated (every row unless ``max_cv_rows`` capped them).
    oof_proba_ : numpy.ndarray
        Out-of-fold probabilities of the final configuration, one per cross-validated row.
    calibration_curve_ : pandas.DataFrame
        ``bin_lower``, ``bin_upper``, ``mean_predicted``, ``fraction_positive``, ``count`` (out-of-fold).
    permutation_importance_ : pandas.DataFrame
        ``feature``, ``importance_mean``, ``importance_std`` (drop in ROC-AUC), largest first.
    training_hash_ : str
        SHA-256 of the feature names, feature values and labels.
    versions_ : dict
        Python and library versions at training time.
    feature_options_ : dict
        ``X.attrs`` of the training features (cutoff, window, ``n_elections``, ``half_life_days``, ...).
    classes_ : numpy.ndarray
        ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    >>> y = rng.random(400) < 1 / (1 + np.exp(-2 * X["a"]))
    >>> m = PropensityModel(model="logistic", cv=3, importance_repeats=0).fit(X, y)
    >>> m.chosen_, round(m.metrics_["roc_auc"], 1) > 0.7
    ('logistic', True)
    """

    def __init__(
        self,
        *,
        model: ModelName = "auto",
        cv: int = 3,
        calibrate: bool | Literal["auto"] = "auto",
        calibration_method: Literal["isotonic", "sigmoid"] = "isotonic",
        ece_tolerance: float = 0.02,
        n_bins: int = 10,
        learning_rate: float = 0.1,
        max_iter: int = 300,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        C: float = 1.0,
        importance_repeats: int = 5,
        importance_max_rows: int = 5_000,
        max_cv_rows: int | None = 100_000,
        max_fit_rows: int | None = 250_000,
        n_threads: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.model = model
        self.cv = cv
        self.calibrate = calibrate
        self.calibration_method = calibration_method
        self.ece_tolerance = ece_tolerance
        self.n_bins = n_bins
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.C = C
        self.importance_repeats = importance_repeats
        self.importance_max_rows = importance_max_rows
        self.max_cv_rows = max_cv_rows
        self.max_fit_rows = max_fit_rows
        self.n_threads = n_threads
        self.random_state = random_state

    # -- construction ------------------------------------------------------------------------------------------
    def _candidate(self, name: str) -> Any:
        if name == "hgb":
            return HistGradientBoostingClassifier(
                learning_rate=self.learning_rate, max_iter=self.max_iter, max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
                early_stopping=True, validation_fraction=0.1, n_iter_no_change=20, random_state=self.random_state,
            )
        return Pipeline([("scale", StandardScaler()),
                         ("logistic", LogisticRegression(C=self.C, max_iter=2000))])

    def _calibrated(self, base: Any) -> CalibratedClassifierCV:
        return CalibratedClassifierCV(base, method=self.calibration_method, cv=3)

    def _check_params(self) -> None:
        problems = []
        if self.model not in ("auto", "hgb", "logistic"):
            problems.append(f"model={self.model!r} (expected 'auto', 'hgb' or 'logistic')")
        if isinstance(self.cv, bool) or not isinstance(self.cv, int) or self.cv < 2:
            problems.append(f"cv={self.cv!r} (expected an integer >= 2)")
        if self.calibrate not in ("auto", True, False):
            problems.append(f"calibrate={self.calibrate!r} (expected 'auto', True or False)")
        if self.calibration_method not in ("isotonic", "sigmoid"):
            problems.append(f"calibration_method={self.calibration_method!r} (expected 'isotonic' or 'sigmoid')")
        if not isinstance(self.n_bins, int) or self.n_bins < 2:
            problems.append(f"n_bins={self.n_bins!r} (expected an integer >= 2)")
        for name in ("max_cv_rows", "max_fit_rows"):
            value = getattr(self, name, None)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 100):
                problems.append(f"{name}={value!r} (expected None or an integer >= 100)")
        if problems:
            raise ConfigError("propensity model settings are invalid", found="; ".join(problems),
                              fix="correct the [scores.propensity] table")

    # -- fitting -----------------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: npt.ArrayLike) -> PropensityModel:
        """Cross-validate the candidates, pick one, calibrate if needed, refit on every row and explain it.

        Parameters
        ----------
        X
            Numeric, finite features (from :func:`geo_segment.features.build_features`), one row per voter.
        y
            Labels (bool or 0/1), aligned to ``X`` (from :func:`geo_segment.features.make_label`).

        Returns
        -------
        PropensityModel
            ``self``, fitted.

        Raises
        ------
        SchemaError
            Non-numeric or non-finite features, labels of the wrong length or values.
        ConfigError
            Invalid settings, or fewer than ``cv`` voters in a class.
        """
        self._check_params()
        with _threads(self.n_threads):
            return self._fit(X, y)

    def _fit(self, X: pd.DataFrame, y: npt.ArrayLike) -> PropensityModel:
        X, labels = _check_xy(X, y, "PropensityModel.fit")
        assert labels is not None
        counts = np.bincount(labels, minlength=2)
        if counts.min() < self.cv:
            raise ConfigError(
                "too few voters in a class to cross-validate the propensity model",
                expected=f"at least cv={self.cv} voters who voted and who did not",
                found=f"{int(counts[1])} voted, {int(counts[0])} did not",
                fix="pick a label election with more turnout history, or lower cv",
            )
        splitter = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        rows = np.arange(len(labels))
        if self.max_cv_rows is not None and len(labels) > self.max_cv_rows:
            rows, _ = train_test_split(rows, train_size=self.max_cv_rows, stratify=labels,
                                       random_state=self.random_state)
            rows = np.sort(rows)
        Xcv, ycv = X.iloc[rows], labels[rows]
        names = ["hgb", "logistic"] if self.model == "auto" else [self.model]
        fit_rows = self._fit_rows(rows, labels)
        Xf, yf = (X, labels) if len(fit_rows) == len(labels) else (X.iloc[fit_rows], labels[fit_rows])
        workers = _fold_workers(self.n_threads)
        with ExitStack() as stack:
            pool: ThreadPoolExecutor | None = None
            early: Future[Any] | None = None
            if workers > 1:
                # Every fit on one OpenMP thread, side by side on threads (gradient boosting on tens of thousands
                # of rows uses two OpenMP threads poorly). The final gradient boosting fit starts first, on the
                # guess that it wins (it does on large files; otherwise it is refitted below): on two cores it
                # runs beside the folds of both candidates.
                stack.enter_context(threadpool_limits(limits=1, user_api="openmp"))
                pool = stack.enter_context(ThreadPoolExecutor(workers))
                if "hgb" in names:
                    early = pool.submit(clone(self._candidate("hgb")).fit, Xf, yf)
            results: dict[str, dict[str, float]] = {}
            runs: dict[str, tuple[Any, npt.NDArray[np.float64], Any, npt.NDArray[np.int64]]] = {}
            for name in names:
                t0 = time.perf_counter()
                est = self._candidate(name)
                oof, first_model, first_test = _cv_predict(est, Xcv, ycv, splitter, pool)
                results[name] = {**_metrics(ycv, oof, self.n_bins), "seconds": round(time.perf_counter() - t0, 3)}
                runs[name] = (est, oof, first_model, first_test)
                log.info("propensity candidate %s: %s", name, results[name])
            chosen = min(names, key=lambda k: (-results[k]["roc_auc"], results[k]["brier"]))
            key = chosen
            want_cal = self.calibrate is True or (
                self.calibrate == "auto" and results[chosen]["ece"] > self.ece_tolerance)
            if want_cal:
                t0 = time.perf_counter()
                cal = self._calibrated(runs[chosen][0])
                oof, first_model, first_test = _cv_predict(cal, Xcv, ycv, splitter, pool)
                ckey = f"{chosen}+calibrated"
                results[ckey] = {**_metrics(ycv, oof, self.n_bins), "seconds": round(time.perf_counter() - t0, 3)}
                runs[ckey] = (cal, oof, first_model, first_test)
                if self.calibrate is True or results[ckey]["ece"] < results[chosen]["ece"]:
                    key = ckey
            final, oof, first_model, first_test = runs[key]
            if pool is not None:
                fitted = early if key == "hgb" and early is not None else pool.submit(clone(final).fit, Xf, yf)
                # the importance on every thread while the final fit ends (two cores briefly shared by three)
                importance = self._importance(first_model, Xcv, ycv, first_test, jobs=workers)
                self.estimator_ = fitted.result()
            else:
                self.estimator_ = clone(final).fit(Xf, yf)
                importance = self._importance(first_model, Xcv, ycv, first_test, jobs=1)
        self.chosen_ = chosen
        self.calibrated_ = key != chosen
        self.cv_results_ = results
        self.oof_proba_ = oof
        self.cv_rows_ = rows
        self.feature_names_ = [str(c) for c in X.columns]
        self.n_features_in_ = len(self.feature_names_)
        self.classes_ = np.array([0, 1])
        self.metrics_: dict[str, Any] = {
            **{k: v for k, v in results[key].items() if k != "seconds"},
            "model": chosen, "calibrated": self.calibrated_, "n": len(labels), "n_fit": len(fit_rows),
            "n_cv": len(rows),
            "positives": int(counts[1]),
            "positive_rate": float(counts[1] / len(labels)), "cv": self.cv,
        }
        self.calibration_curve_ = _calibration_table(ycv, oof, self.n_bins)
        self.permutation_importance_ = importance
        self.training_hash_ = _data_hash(X, labels)
        self.versions_ = _versions()
        self.feature_options_: dict[str, Any] = {str(k): v for k, v in X.attrs.items()}
        return self

    def _fit_rows(self, cv_rows: npt.NDArray[np.int64], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Rows of the final fit: all, or the cross-validated rows topped up to ``max_fit_rows`` by a stratified
        sample of the others (sorted positions)."""
        cap = getattr(self, "max_fit_rows", None)
        if cap is None or len(labels) <= cap:
            return np.arange(len(labels))
        if len(cv_rows) >= cap:
            if len(cv_rows) == cap:
                return cv_rows
            kept, _ = train_test_split(cv_rows, train_size=cap, stratify=labels[cv_rows],
                                       random_state=self.random_state)
            return np.sort(kept)
        others = np.setdiff1d(np.arange(len(labels)), cv_rows, assume_unique=True)
        extra, _ = train_test_split(others, train_size=cap - len(cv_rows), stratify=labels[others],
                                    random_state=self.random_state)
        return np.sort(np.concatenate([cv_rows, extra]))

    def _importance(self, model: Any, X: pd.DataFrame, y: npt.NDArray[np.int64], rows: npt.NDArray[np.int64],
                    jobs: int = 2) -> pd.DataFrame:
        empty = pd.DataFrame({"feature": pd.Series([], dtype="str"), "importance_mean": pd.Series([], dtype=float),
                              "importance_std": pd.Series([], dtype=float)})
        if self.importance_repeats <= 0 or len(np.unique(y[rows])) < 2:
            return empty
        rng = np.random.default_rng(self.random_state)
        if len(rows) > self.importance_max_rows:
            rows = np.sort(rng.choice(rows, size=self.importance_max_rows, replace=False))
        # features in ``jobs`` threads, each prediction on one OpenMP thread (the trees release the GIL); each
        # feature's shuffles come from its own seed, so the result is the same as in one thread
        with threadpool_limits(limits=1, user_api="openmp"), parallel_config(backend="threading", n_jobs=jobs):
            result = permutation_importance(model, X.iloc[rows], y[rows], scoring="roc_auc", n_jobs=jobs,
                                            n_repeats=self.importance_repeats, random_state=self.random_state)
        table = pd.DataFrame({"feature": pd.Series(list(map(str, X.columns)), dtype="str"),
                              "importance_mean": result.importances_mean, "importance_std": result.importances_std})
        return table.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True)

    # -- scoring -----------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise ConfigError("the propensity model is not fitted", fix="call fit(X, y) or PropensityModel.load(path)")

    def check_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return ``X``'s columns in training order; raise :class:`FeatureMismatchError` when they differ.

        Raises
        ------
        FeatureMismatchError
            Features are missing or extra; the message lists both.
        """
        self._check_fitted()
        X, _ = _check_xy(X, None, "PropensityModel")
        have = [str(c) for c in X.columns]
        missing = [c for c in self.feature_names_ if c not in set(have)]
        extra = [c for c in have if c not in set(self.feature_names_)]
        if missing or extra:
            raise FeatureMismatchError(
                "the features do not match the ones the model was trained on",
                expected=f"{len(self.feature_names_)} features",
                found=f"missing {missing}, extra {extra}",
                fix="build the features with the same options as at training (signals given or not, precinct_id "
                    f"present or not, n_elections; recorded: {self.feature_options_}), or retrain the model",
            )
        return X[self.feature_names_]

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Probabilities ``[P(not vote), P(vote)]`` per row, shape ``(n, 2)``.

        Raises
        ------
        FeatureMismatchError
            The features differ from the training features.
        """
        Xc = self.check_features(X)
        with _threads(getattr(self, "n_threads", None)):
            p = np.clip(self.estimator_.predict_proba(Xc)[:, 1], 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[np.int64]:
        """``1`` where the propensity is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def predict_propensity(self, X: pd.DataFrame) -> pd.Series:
        """The propensity (float64 in [0, 1]) as a Series named ``propensity`` aligned to ``X``."""
        return pd.Series(self.predict_proba(X)[:, 1], index=X.index, name=S.PROPENSITY, dtype="float64")

    # -- outputs -----------------------------------------------------------------------------------------------
    def calibration_plot(self, path: str | Path) -> Path:
        """Write the out-of-fold reliability diagram and the histogram of probabilities as a PNG (Agg backend).

        Returns
        -------
        pathlib.Path
            ``path``, written atomically.
        """
        self._check_fitted()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        curve = self.calibration_curve_
        fig = Figure(figsize=(6.0, 6.5), dpi=100)
        FigureCanvasAgg(fig)
        ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        ok = curve["count"].to_numpy() > 0
        ax.plot(curve["mean_predicted"][ok], curve["fraction_positive"][ok], marker="o",
                label=f"{self.chosen_}{' + calibration' if self.calibrated_ else ''}")
        ax.set_ylabel("fraction who voted")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        m = self.metrics_
        ax.set_title(f"Calibration (out-of-fold): ECE {m['ece']:.3f}, Brier {m['brier']:.3f}, "
                     f"ROC-AUC {m['roc_auc']:.3f}", fontsize=10)
        ax.legend(loc="upper left")
        hist.hist(self.oof_proba_, bins=self.n_bins, range=(0, 1), color="tab:blue", alpha=0.7)
        hist.set_xlabel("predicted propensity")
        hist.set_ylabel("voters")
        fig.tight_layout()
        target = Path(path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
        return target

    def save(self, path: str | Path) -> Path:
        """Save the fitted model with joblib, with its feature list, training data hash and library versions.

        Returns
        -------
        pathlib.Path
            ``path``, written atomically. Load it with :meth:`load` (only load files you trust: joblib unpickles).
        """
        self._check_fitted()
        payload = {
            "format": _FORMAT,
            "model": self,
            "feature_names": list(self.feature_names_),
            "training_hash": self.training_hash_,
            "versions": dict(self.versions_),
            "feature_options": dict(self.feature_options_),
            "metrics": dict(self.metrics_),
        }
        target = Path(path)
        with atomic_path(target) as tmp:
            joblib.dump(payload, tmp)
        return target

    @classmethod
    def load(cls, path: str | Path) -> PropensityModel:
        """Load a model written by :meth:`save`; warn (:class:`GeoSegmentWarning`) when library versions differ.

        Raises
        ------
        InputNotFoundError
            No such file.
        InputFileError
            The file is not a geo_segment propensity model.
        """
        from geo_segment.errors import InputFileError, InputNotFoundError, Location

        p = Path(path)
        if not p.exists():
            raise InputNotFoundError("model file not found", where=Location(p), fix="check the path")
        try:
            payload = joblib.load(p)
        except Exception as exc:  # any unpickling failure means "not a model file"
            raise InputFileError("cannot read the model file", where=Location(p), found=type(exc).__name__,
                                 fix="pass a file written by PropensityModel.save") from exc
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT or not isinstance(
                payload.get("model"), cls):
            raise InputFileError("not a geo_segment propensity model", where=Location(p), expected=_FORMAT,
                                 found=repr(payload.get("format")) if isinstance(payload, dict) else type(
                                     payload).__name__, fix="pass a file written by PropensityModel.save")
        model: PropensityModel = payload["model"]
        now = _versions()
        differ = {k: (v, now.get(k)) for k, v in payload.get("versions", {}).items()
                  if k in ("scikit-learn", "numpy") and v != now.get(k)}
        if differ:
            warnings.warn(
                f"{p}: model saved with {differ} (saved, running); predictions may differ slightly, retrain to be "
                "safe", GeoSegmentWarning, stacklevel=2)
        return model


# ---------------------------------------------------------------------------------------------------------------
# lookalikes
# ---------------------------------------------------------------------------------------------------------------


def _seed_mask(seeds: npt.ArrayLike | pd.Series, n: int) -> npt.NDArray[np.bool_]:
    mask = np.asarray(seeds)
    if mask.dtype != bool or mask.ndim != 1 or len(mask) != n:
        raise SchemaError("seeds must be a boolean mask aligned to the features", expected=f"{n} booleans",
                          found=f"dtype {mask.dtype}, shape {mask.shape}",
                          fix="pass features.index.isin(...) or voters['voter_id'].isin(seed_ids)")
    return mask


class LookalikeModel(BaseEstimator):
    """Positive-unlabeled lookalikes: how much each voter resembles a seed list.

    Seeds are labeled positives; every other voter is unlabeled (a mix of lookalikes and others). A
    ``HistGradientBoostingClassifier`` learns seeds against unlabeled with ``cv``-fold cross-fitting, so every voter,
    seed or not, is scored by a model that did not see them. Under the usual assumption that the seeds are a random
    sample of the positives, ``P(positive | x) = P(seed | x) / c`` where ``c`` is the mean score of the seeds
    (Elkan & Noto, 2008); the score is that ratio clipped to [0, 1], so its ranking is the classifier's.

    Parameters
    ----------
    cv
        Cross-fitting folds.
    exclude_features
        Features left out, typically the ones the seed list was drawn from (a donor list is trivially found by
        ``signal_donation``).
    learning_rate, max_iter, min_samples_leaf
        Gradient boosting settings (early stopping on 10 % of the training rows).
    n_threads
        OpenMP threads for gradient boosting (``None``: every core).
    max_unlabeled
        Cap on the unlabeled voters each classifier trains on (a random sample; every voter is still scored).
        ``None``: no cap.
    random_state
        Seed of the folds, the sample and the models.

    Attributes
    ----------
    feature_names_ : list of str
        Features used.
    estimator_
        Classifier fitted on every row (scores new rows in :meth:`score_samples`).
    c_ : float
        Estimated label frequency (mean cross-fitted seed probability).
    scores_ : pandas.Series
        Cross-fitted ``lookalike_score`` of the training rows, aligned to ``X``.
    n_seeds_ : int
        Number of seeds.
    """

    def __init__(
        self,
        *,
        cv: int = 5,
        exclude_features: Sequence[str] = (),
        learning_rate: float = 0.05,
        max_iter: int = 200,
        min_samples_leaf: int = 40,
        max_unlabeled: int | None = 200_000,
        n_threads: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.cv = cv
        self.exclude_features = exclude_features
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.min_samples_leaf = min_samples_leaf
        self.max_unlabeled = max_unlabeled
        self.n_threads = n_threads
        self.random_state = random_state

    def _classifier(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            learning_rate=self.learning_rate, max_iter=self.max_iter, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=1.0, early_stopping=True, validation_fraction=0.1, n_iter_no_change=20,
            random_state=self.random_state,
        )

    def _sample(self, rows: npt.NDArray[np.int64], y: npt.NDArray[np.int64], rng: np.random.Generator) -> (
        npt.NDArray[np.int64]
    ):
        """``rows`` with their unlabeled part sampled down to ``max_unlabeled``."""
        unlabeled = rows[y[rows] == 0]
        if self.max_unlabeled is None or len(unlabeled) <= self.max_unlabeled:
            return rows
        keep = rng.choice(unlabeled, size=self.max_unlabeled, replace=False)
        return np.sort(np.concatenate([rows[y[rows] == 1], keep]))

    def _features(self, X: pd.DataFrame) -> pd.DataFrame:
        unknown = [c for c in self.exclude_features if c not in X.columns]
        if unknown:
            raise ConfigError(f"exclude_features names unknown features {unknown}",
                              fix=f"pick among {list(map(str, X.columns))}")
        return X.drop(columns=list(self.exclude_features))

    def fit(self, X: pd.DataFrame, seeds: npt.ArrayLike | pd.Series) -> LookalikeModel:
        """Learn seeds against unlabeled voters; cross-fitted scores in :attr:`scores_`.

        Parameters
        ----------
        X
            Features (from :func:`geo_segment.features.build_features`).
        seeds
            Boolean mask aligned to ``X``: True for seed voters.

        Raises
        ------
        ConfigError
            Fewer than ``cv`` seeds or unlabeled voters.
        """
        X, _ = _check_xy(X, None, "LookalikeModel.fit")
        s = _seed_mask(seeds, len(X))
        n_seeds = int(s.sum())
        if isinstance(self.cv, bool) or not isinstance(self.cv, int) or self.cv < 2:
            raise ConfigError("cv must be an integer >= 2", found=repr(self.cv), fix="use cv=5")
        if n_seeds < self.cv or len(s) - n_seeds < self.cv:
            raise ConfigError("too few seeds (or too few other voters) for lookalikes",
                              expected=f"at least cv={self.cv} of each", found=f"{n_seeds} seeds of {len(s)} voters",
                              fix="give more seed voter ids")
        Xf = self._features(X)
        y = s.astype(np.int64)
        splitter = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        rng = np.random.default_rng(self.random_state)
        oof = np.zeros(len(y), dtype=np.float64)
        with _threads(self.n_threads):
            for train, test in splitter.split(np.zeros(len(y)), y):
                rows = self._sample(train, y, rng)
                oof[test] = self._classifier().fit(Xf.iloc[rows], y[rows]).predict_proba(Xf.iloc[test])[:, 1]
            rows = self._sample(np.arange(len(y)), y, rng)
            self.estimator_ = self._classifier().fit(Xf.iloc[rows], y[rows])
        self.c_ = float(max(oof[s].mean(), 1e-12))
        self.feature_names_ = [str(c) for c in Xf.columns]
        self.n_seeds_ = n_seeds
        self.scores_ = pd.Series(np.clip(oof / self.c_, 0.0, 1.0), index=X.index, name=LOOKALIKE_SCORE)
        return self

    def score_samples(self, X: pd.DataFrame) -> pd.Series:
        """``lookalike_score`` (float64 in [0, 1]) of new rows, from the model fitted on every training row."""
        if not hasattr(self, "estimator_"):
            raise ConfigError("the lookalike model is not fitted", fix="call fit(X, seeds)")
        X, _ = _check_xy(X, None, "LookalikeModel")
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise FeatureMismatchError("the features lack columns the lookalike model was trained on",
                                       found=f"missing {missing}", fix="build the features with the same options")
        with _threads(self.n_threads):
            p = self.estimator_.predict_proba(X[self.feature_names_])[:, 1]
        return pd.Series(np.clip(p / self.c_, 0.0, 1.0), index=X.index, name=LOOKALIKE_SCORE)


def lookalike_recall(
    X: pd.DataFrame,
    seeds: npt.ArrayLike | pd.Series,
    *,
    holdout: float = 0.3,
    top: float = 0.1,
    model: LookalikeModel | None = None,
    random_state: int | None = 0,
) -> dict[str, float | int]:
    """How well held-out seeds rank: hide a share of the seeds, fit on the rest, and count the hidden ones in the top.

    Candidates are every voter but the training seeds; they are ranked by cross-fitted score (ties in random
    order). Random ranking would put a share ``top`` of the hidden seeds in the top ``top`` of the candidates.

    Parameters
    ----------
    X
        Features.
    seeds
        Boolean mask aligned to ``X``.
    holdout
        Share of the seeds hidden (at least one).
    top
        Share of the candidates counted as the top.
    model
        A :class:`LookalikeModel` whose settings to use (cloned; default ``LookalikeModel(random_state=...)``).
    random_state
        Seed of the hold-out draw and the tie order.

    Returns
    -------
    dict
        ``recall`` (share of hidden seeds in the top), ``random_recall`` (= ``top``), ``lift`` (their ratio),
        ``top``, ``n_seeds``, ``n_heldout``, ``n_candidates``.
    """
    if not 0 < holdout < 1 or not 0 < top < 1:
        raise ConfigError("holdout and top must be shares in (0, 1)", found=f"holdout={holdout}, top={top}",
                          fix="use holdout=0.3, top=0.1")
    s = _seed_mask(seeds, len(X))
    rng = np.random.default_rng(random_state)
    seed_pos = np.flatnonzero(s)
    n_held = max(1, int(round(holdout * len(seed_pos))))
    held = np.zeros(len(s), dtype=bool)
    held[rng.choice(seed_pos, size=min(n_held, len(seed_pos)), replace=False)] = True
    train = s & ~held
    base = model if model is not None else LookalikeModel(random_state=random_state)
    fitted = clone(base).fit(X, train)
    cand = np.flatnonzero(~train)
    scores = fitted.scores_.to_numpy()[cand]
    order = rng.permutation(len(cand))
    ranked = order[np.argsort(-scores[order], kind="stable")]
    k = max(1, int(math.ceil(top * len(cand))))
    in_top = held[cand[ranked[:k]]].sum()
    recall = float(in_top / held.sum())
    return {"recall": recall, "random_recall": float(top), "lift": recall / top, "top": float(top),
            "n_seeds": int(s.sum()), "n_heldout": int(held.sum()), "n_candidates": len(cand)}


# ---------------------------------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def score_voters(
    voters: pd.DataFrame,
    history: pd.DataFrame,
    signals: pd.DataFrame | None = None,
    *,
    label_election: DateLike | None = None,
    model: PropensityModel | None = None,
    seeds: Iterable[str] | None = None,
    lookalike: LookalikeModel | None = None,
    weights: RuleWeights = RuleWeights(),
    as_of: DateLike | None = None,
    n_elections: int | None = None,
    half_life_days: float | None = None,
    h3_resolution: int | None = None,
    random_state: int | None = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add ``engagement_score``, and ``propensity`` and ``lookalike_score`` when possible, to a copy of the voters.

    Parameters
    ----------
    voters, history, signals
        The contract's frames (see :func:`geo_segment.features.build_features`). ``voters`` is not modified.
    label_election
        Train a propensity model on turnout in this past election (features strictly before it; only voters
        registered before it), then score every voter with features as of ``as_of``.
    model
        A fitted :class:`PropensityModel` (e.g. from :meth:`PropensityModel.load`) to score with; or an unfitted
        one whose settings to train with when ``label_election`` is given (default ``PropensityModel(random_state=
        random_state)``).
    seeds
        Seed voter ids for lookalikes; ids not among the voters are counted and ignored.
    lookalike
        Settings for the lookalike model (default ``LookalikeModel(random_state=random_state)``).
    weights
        Rule score weights.
    as_of
        Cutoff of the scoring features (default: the day after the newest record).
    n_elections, half_life_days, h3_resolution
        Feature options; default to the fitted model's (when one is given) else 8, 30.0 and 9.
    random_state
        Seed for the default models and the lookalike hold-out.

    Returns
    -------
    tuple
        The voters copy (same index and type, CRS kept) with ``engagement_score`` (float64 in [0, 1]), plus
        ``propensity`` (float64) when a model was trained or given and ``lookalike_score`` (float64) when seeds
        were given; and a JSON-ready metrics dict: ``as_of``, ``n_voters``, ``engagement_score_mean``,
        ``rule_weights``; with a trained model ``label_election``, ``model``, ``calibrated``, ``roc_auc``,
        ``pr_auc``, ``brier``, ``ece`` (out-of-fold), ``n_train``, ``positive_rate``, ``cv_results``,
        ``top_features`` and ``oracle_roc_auc`` (when ``voters`` carries ``true_propensity``); with seeds
        ``n_seeds``, ``n_seeds_unknown``, ``lookalike_recall``, ``lookalike_lift``, ``lookalike_random_recall``.

    Raises
    ------
    FeatureMismatchError
        A given fitted model was trained on other features.
    ConfigError
        Both a fitted ``model`` and a ``label_election``; and see :func:`~geo_segment.features.build_features`
        and :meth:`PropensityModel.fit`.
    SchemaError
        See :func:`~geo_segment.features.build_features`.

    Examples
    --------
    >>> import pandas as pd
    >>> voters = pd.DataFrame({"voter_id": ["a", "b"]})
    >>> history = pd.DataFrame({"voter_id": ["a"], "election_date": pd.to_datetime(["2024-11-05"]),
    ...                         "election_type": ["general"], "voted": [True]})
    >>> out, metrics = score_voters(voters, history)
    >>> out["engagement_score"].round(2).tolist(), metrics["as_of"][:10]
    ([1.0, 0.0], '2024-11-06')
    """
    out, metrics, _ = score_voters_with_model(
        voters, history, signals, label_election=label_election, model=model, seeds=seeds, lookalike=lookalike,
        weights=weights, as_of=as_of, n_elections=n_elections, half_life_days=half_life_days,
        h3_resolution=h3_resolution, random_state=random_state)
    return out, metrics


def score_voters_with_model(
    voters: pd.DataFrame,
    history: pd.DataFrame,
    signals: pd.DataFrame | None = None,
    *,
    label_election: DateLike | None = None,
    model: PropensityModel | None = None,
    seeds: Iterable[str] | None = None,
    lookalike: LookalikeModel | None = None,
    weights: RuleWeights = RuleWeights(),
    as_of: DateLike | None = None,
    n_elections: int | None = None,
    half_life_days: float | None = None,
    h3_resolution: int | None = None,
    random_state: int | None = 0,
) -> tuple[pd.DataFrame, dict[str, Any], PropensityModel | None]:
    """:func:`score_voters`, also returning the propensity model used (trained here or given), or ``None``.

    The model is what :meth:`PropensityModel.save` writes for ``geo-segment score --model`` to reuse.
    """
    fitted = model is not None and hasattr(model, "estimator_")
    if fitted and label_election is not None:
        raise ConfigError(
            "both a fitted propensity model and a label election were given",
            expected="a fitted model to score with, or a label election to train on",
            found=f"a fitted {type(model).__name__} and label_election={label_election!r}",
            fix="drop label_election to score with the saved model, or pass an unfitted PropensityModel to retrain",
        )
    opts: dict[str, Any] = dict(model.feature_options_) if fitted and model is not None else {}
    feature_kw: dict[str, Any] = {
        "n_elections": n_elections if n_elections is not None else int(opts.get("n_elections", 8)),
        "half_life_days": half_life_days if half_life_days is not None else float(opts.get("half_life_days", 30.0)),
        "h3_resolution": h3_resolution if h3_resolution is not None else int(opts.get("h3_resolution", 9)),
    }
    if "engaged_threshold" in opts:
        feature_kw["engaged_threshold"] = float(opts["engaged_threshold"])
    builder = FeatureBuilder(voters, history, signals)
    use: PropensityModel | None = model if fitted else None
    if not fitted and label_election is not None:
        train_x = builder.build(label_election=label_election, **feature_kw)
        label = builder.label(label_election)
        eligible = eligible_voters(voters, label_election).to_numpy()
        template = model if model is not None else PropensityModel(random_state=random_state)
        # the model trains on a side thread (its fits release Python's lock) while the scoring features are built
        with ThreadPoolExecutor(1) as pool:
            fitting = pool.submit(clone(template).fit, train_x[eligible], label.to_numpy()[eligible])
            now = builder.build(as_of=as_of, **feature_kw)
            use = fitting.result()
    else:
        now = builder.build(as_of=as_of, **feature_kw)
    out = voters.copy()
    metrics: dict[str, Any] = {"as_of": now.attrs["as_of"], "n_voters": len(voters),
                               "rule_weights": weights.to_dict()}
    out[S.ENGAGEMENT_SCORE] = rule_score(now, weights).to_numpy()
    metrics["engagement_score_mean"] = float(out[S.ENGAGEMENT_SCORE].mean()) if len(out) else None

    if not fitted and use is not None:  # trained here
        metrics.update({
            "label_election": train_x.attrs["label_election"],
            **{k: use.metrics_[k] for k in ("model", "calibrated", "roc_auc", "pr_auc", "brier", "ece")},
            "n_train": int(eligible.sum()),
            "positive_rate": use.metrics_["positive_rate"],
            "cv_results": use.cv_results_,
            "top_features": use.permutation_importance_.head(10).to_dict("records"),
        })
        if TRUE_PROPENSITY in voters.columns:
            truth = voters[TRUE_PROPENSITY].to_numpy(dtype=np.float64, na_value=np.nan)[eligible]
            y = label.to_numpy()[eligible]
            ok = np.isfinite(truth)
            if ok.any() and len(np.unique(y[ok])) == 2:
                metrics["oracle_roc_auc"] = float(roc_auc_score(y[ok], truth[ok]))
    if use is not None:
        out[S.PROPENSITY] = use.predict_propensity(now).to_numpy()
        metrics["propensity_mean"] = float(out[S.PROPENSITY].mean()) if len(out) else None

    if seeds is not None:
        seed_ids = pd.Series(list(seeds), dtype="str")
        mask = voters[S.VOTER_ID].astype("str").isin(set(seed_ids)).to_numpy()
        metrics["n_seeds"] = int(mask.sum())
        metrics["n_seeds_unknown"] = int((~seed_ids.isin(set(voters[S.VOTER_ID].astype("str")))).sum())
        template_l = lookalike if lookalike is not None else LookalikeModel(random_state=random_state)
        fitted_l = clone(template_l).fit(now, mask)
        out[LOOKALIKE_SCORE] = fitted_l.scores_.to_numpy()
        rec = lookalike_recall(now, mask, model=template_l, random_state=random_state)
        metrics.update({"lookalike_recall": rec["recall"], "lookalike_lift": rec["lift"],
                        "lookalike_random_recall": rec["random_recall"]})
    return out, _jsonable(metrics), use
