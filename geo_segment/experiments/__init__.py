"""Field experiments: randomized holdouts before launch, honest lift estimates after the election.

* :func:`design_experiment` randomizes households, turfs, micro-geographies or precincts into treatment and
  holdout within blocks (precinct x score strata), checks balance, computes power and hashes the result;
  :meth:`ExperimentDesign.save` / :func:`load_design` write and verify ``design.json``.
* :func:`holdout_mask` / :func:`exclude_holdout` keep held-out units out of turfs and audience exports.
* :func:`analyze_experiment` estimates the intent-to-treat effect (block-weighted, cluster-robust), its
  randomization-inference p-value and the effect on the contacted, per stratum, block and overall;
  :func:`write_report` writes the plain-language report and the lift plot.

See ``docs/experiments.md``.
"""

from geo_segment.experiments._covariates import AUTO_COVARIATES
from geo_segment.experiments.analysis import ExperimentAnalysis, analyze_experiment
from geo_segment.experiments.design import (
    ARM_HOLDOUT,
    ARM_TREATMENT,
    UNITS,
    DesignTamperedError,
    ExperimentDesign,
    design_experiment,
    exclude_holdout,
    holdout_mask,
    load_design,
)
from geo_segment.experiments.power import PowerResult, estimate_icc, power
from geo_segment.experiments.report import write_report

__all__ = ["ARM_HOLDOUT", "ARM_TREATMENT", "AUTO_COVARIATES", "UNITS", "DesignTamperedError", "ExperimentAnalysis",
           "ExperimentDesign", "PowerResult", "analyze_experiment", "design_experiment", "estimate_icc",
           "exclude_holdout", "holdout_mask", "load_design", "power", "write_report"]
