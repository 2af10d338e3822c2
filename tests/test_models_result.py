"""MixedResult.simulate: responses drawn from a fitted model.

Checked against the moments the fitted parameters imply in closed form (each with its Monte
Carlo standard error): the mean and variance of a normal response with a random intercept,
and the covariance of two rows of one group; the conditional mean and variance of Poisson,
NB2 (mu + mu^2 / theta) and binomial cbind responses with the random effects held at their
modes; the lognormal marginal mean exp(eta + sd^2 / 2) of a Poisson model with new random
effects; and the covariance matrix of new correlated random slopes against VarCorr.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.models import fit_mixed
from resistance_outcomes.models.formula import ModelSpecError

NSIM = 4000


def grouped(n_groups=12, per_group=6, seed=11):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=len(g))
    frame = pd.DataFrame({"g": g.astype(str), "x": x, "minutes": rng.integers(30, 61, len(g))})
    u = rng.normal(0, 0.5, n_groups)[g]
    frame["y"] = 1 + 0.5 * x + u + rng.normal(0, 0.8, len(g))
    frame["count"] = rng.poisson(np.exp(-2.5 + 0.3 * x + u + np.log(frame["minutes"])))
    frame["trials"] = rng.integers(3, 9, len(g))
    frame["successes"] = rng.binomial(frame["trials"], 1 / (1 + np.exp(-(0.2 + 0.4 * x + u))))
    frame["failures"] = frame["trials"] - frame["successes"]
    return frame


def within(value, expected, se, k=4.0):
    assert abs(value - expected) < k * se, (value, expected, se)


def test_gaussian_new_random_effects_give_the_fitted_variance_and_group_covariance():
    fit = fit_mixed("y ~ x + (1 | g)", grouped())
    sims = fit.simulate(nsim=NSIM, seed=1).to_numpy()
    vc = fit.variance_components.set_index("group")["variance"]
    fixed = fit.design.X @ fit.beta
    resid = sims - fixed[:, None]
    # mean: E(y) = X beta; the SE of the grand mean over rows and replicates uses the
    # replicate means' spread (rows of one replicate share their group effects)
    within(resid.mean(), 0.0, resid.mean(axis=0).std(ddof=1) / np.sqrt(NSIM))
    total = vc["g"] + vc["Residual"]  # Var(y_i) = sd_g^2 + sigma^2
    var_i = resid.var(axis=1, ddof=1)
    within(var_i.mean(), total, var_i.std(ddof=1) / np.sqrt(len(var_i)) + total * 0.03)
    # rows 0 and 1 share group "0": Cov = sd_g^2; rows 0 and 6 do not: Cov = 0
    cov_same = np.cov(resid[0], resid[1])[0, 1]
    cov_other = np.cov(resid[0], resid[6])[0, 1]
    se_cov = total / np.sqrt(NSIM)  # sd of a sample covariance <= sqrt(var_a var_b / n)
    within(cov_same, vc["g"], 2 * se_cov)
    within(cov_other, 0.0, 2 * se_cov)


def test_gaussian_conditional_on_the_modes_has_the_residual_variance():
    fit = fit_mixed("y ~ x + (1 | g)", grouped())
    sims = fit.simulate(nsim=NSIM, seed=2, use_re=True).to_numpy()
    fitted = fit.predict()["estimate"].to_numpy()
    resid = sims - fitted[:, None]
    within(resid.mean(), 0.0, fit.sigma / np.sqrt(resid.size))
    var = resid.var(axis=1, ddof=1).mean()
    # the variance of a sample variance of normal draws is 2 sigma^4 / (n - 1)
    within(var, fit.sigma**2, fit.sigma**2 * np.sqrt(2 / (NSIM - 1)) / np.sqrt(len(resid)))


def test_poisson_with_offset_conditional_and_marginal_means():
    data = grouped()
    fit = fit_mixed("count ~ x + offset(log(minutes)) + (1 | g)", data, family="poisson")
    conditional = fit.simulate(nsim=NSIM, seed=3, use_re=True).to_numpy()
    mu = fit.predict()["estimate"].to_numpy()  # exp(X beta + offset + Z b)
    z = (conditional.mean(axis=1) - mu) / np.sqrt(mu / NSIM)
    assert np.abs(z).max() < 4.5 and abs(z.mean()) < 4 / np.sqrt(len(z))
    var = conditional.var(axis=1, ddof=1)
    assert np.median(var / mu) == pytest.approx(1.0, abs=0.06)  # Poisson: Var = mu
    # new random effects: E(y) = exp(X beta + offset) * exp(sd^2 / 2) (lognormal mean)
    marginal = fit.simulate(nsim=NSIM, seed=4).to_numpy()
    sd = fit.variance_components.set_index("group").loc["g", "sd"]
    expected = fit.predict(level="population")["estimate"].to_numpy() * np.exp(sd**2 / 2)
    ratio = marginal.sum(axis=0).mean() / expected.sum()
    spread = marginal.sum(axis=0).std(ddof=1) / expected.sum() / np.sqrt(NSIM)
    within(ratio, 1.0, spread)


def test_negative_binomial_draws_have_the_nb2_variance():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 10)
    mean = np.exp(1.0 + rng.normal(0, 0.4, 30)[g])
    data = pd.DataFrame({"g": g, "y": rng.negative_binomial(2.0, 2.0 / (2.0 + mean))})
    fit = fit_mixed("y ~ 1 + (1 | g)", data, family="negative_binomial")
    sims = fit.simulate(nsim=NSIM, seed=6, use_re=True).to_numpy()
    mu = fit.predict()["estimate"].to_numpy()
    within(sims.mean() / mu.mean(), 1.0, 4 * np.sqrt(mu.mean() / sims.size) / mu.mean())
    expected = mu + mu**2 / fit.nb_theta
    assert np.median(sims.var(axis=1, ddof=1) / expected) == pytest.approx(1.0, abs=0.06)
    assert (sims >= 0).all() and np.array_equal(sims, np.round(sims))


def test_binomial_cbind_draws_successes_out_of_each_rows_trials():
    data = grouped()
    fit = fit_mixed("cbind(successes, failures) ~ x + (1 | g)", data, family="binomial")
    sims = fit.simulate(nsim=NSIM, seed=7, use_re=True).to_numpy()
    trials = data["trials"].to_numpy()[:, None]
    assert ((sims >= 0) & (sims <= trials)).all()
    p = fit.predict()["estimate"].to_numpy()
    expected = trials[:, 0] * p
    z = (sims.mean(axis=1) - expected) / np.sqrt(trials[:, 0] * p * (1 - p) / NSIM)
    assert np.abs(z).max() < 4.5
    binary = data.assign(any=(data["successes"] > 0).astype(int))
    fit01 = fit_mixed("any ~ x + (1 | g)", binary, family="binomial")
    assert set(np.unique(fit01.simulate(nsim=20, seed=8).to_numpy())) <= {0.0, 1.0}


def test_new_correlated_random_slopes_follow_varcorr():
    rng = np.random.default_rng(9)
    g = np.repeat(np.arange(40), 8)
    t = np.tile(np.arange(8) / 7, 40)
    u = rng.multivariate_normal([0, 0], [[0.6, 0.2], [0.2, 0.4]], 40)
    data = pd.DataFrame({"g": g, "t": t})
    data["y"] = 1 + 0.5 * t + u[g, 0] + u[g, 1] * t + rng.normal(0, 0.5, len(g))
    fit = fit_mixed("y ~ t + (1 + t | g)", data)
    draws = np.array([fit.new_random_effects(np.random.default_rng(s)) for s in range(3000)])
    pairs = draws.reshape(len(draws) * 40, 2)  # (intercept, slope) per group and draw
    expected = fit.design.covariance_matrices(fit.theta, fit.sigma)[0]
    np.testing.assert_allclose(
        np.cov(pairs.T), expected, atol=4 * expected.max() / np.sqrt(len(pairs)) * 2
    )


def test_same_seed_same_responses_and_bad_arguments_are_refused():
    fit = fit_mixed("y ~ x + (1 | g)", grouped())
    a, b = fit.simulate(nsim=2, seed=10), fit.simulate(nsim=2, seed=10)
    pd.testing.assert_frame_equal(a, b)
    assert not fit.simulate(nsim=2, seed=11).equals(a)
    assert list(a.index) == list(fit.design.frame.index)
    with pytest.raises(ModelSpecError, match="nsim"):
        fit.simulate(nsim=0)
    weighted = fit_mixed(
        "count ~ x + (1 | g)", grouped(), family="poisson", weights=np.full(72, 2.0)
    )
    with pytest.raises(ModelSpecError, match="prior weights"):
        weighted.simulate(seed=1)
