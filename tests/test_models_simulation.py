"""Reduced simulation study of the GLMM engine (the full one: benchmarks/simulation_study.py).

Data are simulated with known fixed effects (three-level Poisson with an offset, two-level
binomial). With R replicates the Monte Carlo standard error of a coverage near 0.95 is
sqrt(0.95 * 0.05 / R) and that of the mean estimate is SD / sqrt(R); the bounds below
are the study's targets (|bias| < 0.1 SD, coverage 0.93-0.97) widened by three Monte
Carlo standard errors.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import simulation_study  # noqa: E402

REPLICATES = 200


@pytest.mark.parametrize("design", ["poisson", "binomial"])
def test_fixed_effects_unbiased_with_nominal_coverage(design):
    fits = simulation_study.replicate_fits(design, REPLICATES, seed=7)
    table = simulation_study.summarise(fits, design)
    assert table["converged"].min() == 1.0
    mc_coverage = np.sqrt(0.95 * 0.05 / REPLICATES)
    assert (table["coverage"] >= 0.93 - 3 * mc_coverage).all(), table
    assert (table["coverage"] <= 0.97 + 3 * mc_coverage).all(), table
    assert (table["bias_over_sd"].abs() < 0.1 + 3 / np.sqrt(REPLICATES)).all(), table
    # model-based SEs agree with the spread of the estimates (SD of an SD estimate is
    # about SD / sqrt(2 (R - 1)); allow 4 of them)
    ratio = table["mean_model_se"] / table["empirical_sd"]
    assert (np.abs(ratio - 1) < 4 / np.sqrt(2 * (REPLICATES - 1))).all(), table
