"""Power analysis by simulation: responses from a stated truth, rejection rates, power.

Every Monte Carlo check compares with a value known in closed form and allows 3.5
standard errors of the Monte Carlo estimate, the SE computed from the number of
replicates (binomial SE of a rejection rate) or from the spread of the replicates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from resistance_outcomes.contrasts import pairwise_contrasts, simple_slopes
from resistance_outcomes.models import ModelSpecError, fit_mixed
from resistance_outcomes.power import (
    POWER_COLUMNS,
    power_replicates,
    power_simulation,
    simulate_responses,
    summarise_power,
)

Z = 3.5  # Monte Carlo tolerance in standard errors


def _grouped(n_groups: int, per_group: int) -> pd.DataFrame:
    """Balanced groups; ``x`` varies between groups (+-0.5), ``w`` within them (+-0.5),
    ``z`` between groups and orthogonal to ``x`` (a 2 x 2 layout of the groups)."""
    g = np.repeat(np.arange(n_groups), per_group)
    x_group = np.tile([-0.5, 0.5], n_groups // 2)
    z_group = np.tile([-0.5, -0.5, 0.5, 0.5], n_groups // 4 + 1)[:n_groups]
    return pd.DataFrame(
        {
            "g": g,
            "x": x_group[g],
            "z": z_group[g],
            "w": np.tile([-0.5, 0.5], n_groups * per_group // 2),
        }
    )


# --- moments of the simulated responses ----------------------------------------------------


def test_gaussian_responses_have_the_stated_mean_variance_and_icc():
    # y = 1 + u_g + e, sd(u) = 0.6, sigma = 0.8: Var(y) = 1.0, ICC = 0.36
    n_groups, m, nsim = 300, 4, 20
    data = _grouped(n_groups, m)
    truth = {"fixed": {"(Intercept)": 1.0}, "sd": {"g": 0.6}, "sigma": 0.8}
    sims = simulate_responses("y ~ 1 + (1 | g)", data, "gaussian", truth, nsim=nsim, seed=11)
    assert sims.shape == (n_groups * m, nsim)
    y = sims.to_numpy().T.reshape(nsim, n_groups, m)
    means = y.mean(axis=(1, 2))
    # SE of one replicate's grand mean: sqrt((sd_u^2 + sigma^2 / m) / n_groups)
    se_mean = np.sqrt((0.36 + 0.64 / m) / n_groups / nsim)
    assert abs(means.mean() - 1.0) < Z * se_mean
    group_means = y.mean(axis=2)
    within = y.var(axis=2, ddof=1).mean(axis=1)  # estimates sigma^2 = 0.64
    between = group_means.var(axis=1, ddof=1) - within / m  # estimates sd_u^2 = 0.36
    total = between + within
    icc = between / total
    for estimate, expected in ((within, 0.64), (total, 1.0), (icc, 0.36)):
        se = estimate.std(ddof=1) / np.sqrt(nsim)
        assert abs(estimate.mean() - expected) < Z * se, (estimate.mean(), expected, se)


def test_negative_binomial_responses_follow_the_nb2_variance_function():
    # log mu = 1 + x (x in {0, 1}) + log(minutes / 50), theta = 2: Var = mu + mu^2 / 2
    n, nsim = 400, 40
    data = pd.DataFrame({"x": np.tile([0.0, 1.0], n // 2), "minutes": 50.0})
    truth = {"fixed": {"(Intercept)": 1.0, "x": 1.0}, "theta": 2.0}
    sims = simulate_responses(
        "count ~ x + offset(log(minutes / 50))", data, "negative_binomial", truth, nsim, seed=5
    )
    for level in (0.0, 1.0):
        mu = np.exp(1.0 + level)
        values = sims.to_numpy()[data["x"].to_numpy() == level]
        means, variances = values.mean(axis=0), values.var(axis=0, ddof=1)
        assert abs(means.mean() - mu) < Z * means.std(ddof=1) / np.sqrt(nsim)
        expected = mu + mu**2 / 2.0
        assert abs(variances.mean() - expected) < Z * variances.std(ddof=1) / np.sqrt(nsim)


def test_binomial_cbind_responses_are_successes_out_of_the_trials():
    data = _grouped(40, 5).assign(s=0, f=np.repeat([3, 7], 100))
    truth = {"fixed": {"(Intercept)": 0.0}, "sd": {"g": 0.0}}
    sims = simulate_responses("cbind(s, f) ~ 1 + (1 | g)", data, "binomial", truth, 30, seed=2)
    trials = data["s"] + data["f"]
    assert (sims.le(trials, axis=0)).all().all() and (sims >= 0).all().all()
    share = sims.to_numpy().sum() / (trials.sum() * 30)
    assert abs(share - 0.5) < Z * np.sqrt(0.25 / (trials.sum() * 30))


def test_replicates_do_not_depend_on_the_chunk_that_draws_them():
    data = _grouped(8, 3)
    truth = {"fixed": {"(Intercept)": 0.5, "x": 0.2}, "sd": {"g": 0.4}}
    formula = "n ~ x + (1 | g)"
    whole = simulate_responses(formula, data, "poisson", truth, nsim=6, seed=9)
    first = simulate_responses(formula, data, "poisson", truth, nsim=2, seed=9)
    rest = simulate_responses(formula, data, "poisson", truth, nsim=4, seed=9, start=2)
    pd.testing.assert_frame_equal(pd.concat([first, rest], axis=1), whole)
    other = simulate_responses(formula, data, "poisson", truth, nsim=6, seed=10)
    assert not whole.equals(other)


# --- rejection rates and power -------------------------------------------------------------


@pytest.fixture(scope="module")
def lmm_power():
    """y ~ x + z + (1 | g) on 24 balanced groups of 4: x has an effect, z none."""
    data = _grouped(24, 4)
    truth = {
        "fixed": {"(Intercept)": 0.0, "x": 0.65, "z": 0.0},
        "sd": {"g": 0.5},
        "sigma": 1.0,
    }
    out = power_simulation(
        "y ~ x + z + (1 | g)",
        data,
        "gaussian",
        truth,
        ["x", "z"],
        replicates=160,
        seed=21,
        n_jobs=2,
    )
    return data, out.set_index("term")


def test_lmm_null_effect_is_rejected_at_the_nominal_rate(lmm_power):
    _, out = lmm_power
    row = out.loc["z"]
    assert row["replicates"] == 160 and row["failed"] == 0
    assert abs(row["power"] - 0.05) < Z * np.sqrt(0.05 * 0.95 / 160)
    assert abs(row["coverage"] - 0.95) < Z * np.sqrt(0.05 * 0.95 / 160)


def test_lmm_power_matches_the_noncentral_t_power_of_a_between_group_effect(lmm_power):
    data, out = lmm_power
    # balanced between-group effect: Var(b_x) = (sd_g^2 + sigma^2 / m) / sum_g (x_g - mean)^2
    # = (0.25 + 1 / 4) / (24 * 0.25); t test with G - 3 = 21 df (the group-means regression)
    se = np.sqrt((0.25 + 1.0 / 4) / (24 * 0.25))
    df = 24 - 3
    crit = st.t.ppf(0.975, df)
    analytic = st.nct.sf(crit, df, 0.65 / se) + st.nct.cdf(-crit, df, 0.65 / se)
    assert 0.5 < analytic < 0.8  # informative: far from 0 and 1
    row = out.loc["x"]
    assert abs(row["power"] - analytic) < Z * np.sqrt(analytic * (1 - analytic) / 160)
    assert row["power_ci_low"] < row["power"] < row["power_ci_high"]
    assert abs(row["mean_estimate"] - 0.65) < Z * se / np.sqrt(160)
    assert abs(row["mean_se"] - se) < 0.1 * se  # REML SE near the known SE
    assert row["replicates"] == 160 and row["rejections"] == round(row["power"] * 160)


def test_poisson_null_effect_is_rejected_at_the_nominal_rate():
    data = _grouped(20, 6)
    truth = {"fixed": {"(Intercept)": np.log(2.0), "w": 0.0}, "sd": {"g": 0.5}}
    out = power_simulation(
        "n ~ w + (1 | g)", data, "poisson", truth, "w", replicates=160, seed=4, n_jobs=2
    )
    row = out.iloc[0]
    assert list(out.columns) == POWER_COLUMNS
    assert row["failed"] == 0
    assert abs(row["power"] - 0.05) < Z * np.sqrt(0.05 * 0.95 / 160)
    assert abs(row["coverage"] - 0.95) < Z * np.sqrt(0.05 * 0.95 / 160)


# --- reproducibility, refits and contrasts -------------------------------------------------


def test_results_are_identical_for_one_or_two_jobs_and_for_chunks():
    data = _grouped(12, 4)
    truth = {"fixed": {"(Intercept)": 0.3, "w": 0.4}, "sd": {"g": 0.5}}
    args = ("n ~ w + (1 | g)", data, "poisson", truth, "w")
    one = power_simulation(*args, replicates=10, seed=8, n_jobs=1)
    two = power_simulation(*args, replicates=10, seed=8, n_jobs=2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    chunks = pd.concat(
        [
            power_replicates(*args, start=6, stop=10, seed=8),
            power_replicates(*args, start=0, stop=6, seed=8),
        ]
    )
    pd.testing.assert_frame_equal(summarise_power(chunks), one, check_exact=True)
    with pytest.raises(ModelSpecError, match="more than once"):
        summarise_power(pd.concat([chunks, chunks]))


def test_a_refit_on_the_shared_design_equals_a_fresh_fit_of_the_simulated_data():
    data = _grouped(16, 3).assign(s=0, f=np.tile([2, 4, 6], 16))
    truth = {"fixed": {"(Intercept)": -0.2, "x": 0.5}, "sd": {"g": 0.6}}
    formula = "cbind(s, f) ~ x + (1 | g)"
    args = (formula, data, "binomial", truth, "x")
    rows = power_replicates(*args, start=3, stop=4, seed=6, warm_start=False)
    successes = simulate_responses(formula, data, "binomial", truth, 1, seed=6, start=3)
    trials = data["s"] + data["f"]
    fresh = fit_mixed(
        formula, data.assign(s=successes["sim_4"], f=trials - successes["sim_4"]), "binomial"
    ).coefficients.set_index("term")
    assert rows["estimate"].iloc[0] == pytest.approx(fresh.loc["x", "estimate"], rel=1e-10)
    assert rows["std_error"].iloc[0] == pytest.approx(fresh.loc["x", "std_error"], rel=1e-8)
    # the warm start (theta at the truth) reaches the same optimum as the default start
    cold = power_replicates(*args, start=0, stop=5, seed=6, warm_start=False)
    warm = power_replicates(*args, start=0, stop=5, seed=6)
    np.testing.assert_allclose(warm["estimate"], cold["estimate"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(warm["std_error"], cold["std_error"], rtol=1e-5)


def test_framework_contrasts_and_simple_slopes_are_tested_as_contrasts_csv_reports_them():
    rng = np.random.default_rng(0)
    data = _grouped(18, 4).assign(
        school=lambda d: pd.Categorical(np.array(["a", "b", "c"])[d["g"] % 3]),
        rate=lambda d: rng.normal(size=len(d)),
    )
    truth = {
        "fixed": {
            "(Intercept)": 0.0,
            "schoolb": 0.5,
            "schoolc": 1.0,
            "rate": 0.2,
            "schoolb:rate": -0.2,
            "schoolc:rate": 0.3,
        },
        "sd": {"g": 0.3},
        "sigma": 1.0,
    }
    formula = "y ~ school * rate + (1 | g)"
    test = [{"pairwise": "school"}, {"slopes": ["rate"], "factor": "school"}]
    rows = power_replicates(formula, data, "gaussian", truth, test, start=0, stop=1, seed=3)
    assert rows["term"].tolist() == [
        "a - b",
        "a - c",
        "b - c",
        "rate in a",
        "rate in b",
        "rate in c",
    ]
    np.testing.assert_allclose(rows["truth"], [-0.5, -1.0, -0.5, 0.2, 0.0, 0.5], atol=1e-12)
    y = simulate_responses(formula, data, "gaussian", truth, 1, seed=3)["sim_1"]
    fit = fit_mixed(formula, data.assign(y=y))
    expected = pd.concat(
        [
            pairwise_contrasts(fit, "school", adjust="none"),
            simple_slopes(fit, "rate", "school", adjust="none"),
        ]
    )
    np.testing.assert_allclose(rows["estimate"], expected["estimate"], rtol=1e-8)
    np.testing.assert_allclose(rows["p_value"], expected["p_value"], rtol=1e-6)


# --- bad truth and bad tests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("truth", "message"),
    [
        ({"fixed": {"(Intercept)": 0.0}, "sd": {"g": 1.0}, "sigma": 1}, r"no value .*'x'"),
        (
            {"fixed": {"(Intercept)": 0, "x": 0, "xx": 1}, "sd": {"g": 1.0}, "sigma": 1},
            r"unknown term\(s\) \['xx'\].*\['\(Intercept\)', 'x'\]",
        ),
        ({"fixed": {"(Intercept)": 0, "x": 0}, "sd": {"h": 1.0}, "sigma": 1}, r"\['h'\].*\['g'\]"),
        ({"fixed": {"(Intercept)": 0, "x": 0}, "sd": {}, "sigma": 1}, r"no value for group 'g'"),
        (
            {"fixed": {"(Intercept)": 0, "x": 0}, "sd": {"g": [1.0, 0.5]}, "sigma": 1},
            r"truth\['sd'\]\['g'\] must give 1 SD",
        ),
        ({"fixed": {"(Intercept)": 0, "x": 0}, "sd": {"g": 1.0}}, r"needs 'sigma'"),
        (
            {"fixed": {"(Intercept)": 0, "x": 0}, "sd": {"g": -1.0}, "sigma": 1},
            "must not be negative",
        ),
        (
            {"fixed": {"(Intercept)": 0, "x": 0}, "sd": {"g": 1}, "sigma": 1, "theta": 2},
            "negative-binomial size",
        ),
    ],
)
def test_a_bad_truth_is_refused_naming_the_term_or_group(truth, message):
    with pytest.raises(ModelSpecError, match=message):
        simulate_responses("y ~ x + (1 | g)", _grouped(8, 2), "gaussian", truth)


def test_correlated_random_slopes_are_checked_and_drawn_with_the_stated_covariance():
    data = _grouped(400, 4)
    formula = "y ~ w + (1 + w | g)"
    base = {"fixed": {"(Intercept)": 0.0, "w": 0.0}, "sd": {"g": [1.0, 2.0]}, "sigma": 0.5}
    with pytest.raises(ModelSpecError, match=r"corr'\]\['g'\] must be a 2 x 2"):
        simulate_responses(formula, data, "gaussian", {**base, "corr": {"g": [[1.0]]}})
    with pytest.raises(ModelSpecError, match="not a correlation matrix"):
        simulate_responses(formula, data, "gaussian", {**base, "corr": {"g": [[1, 2], [2, 1]]}})
    truth = {**base, "corr": {"g": [[1.0, 0.5], [0.5, 1.0]]}}
    sims = simulate_responses(formula, data, "gaussian", truth, nsim=10, seed=1).to_numpy()
    # per group: mean of the two rows at w = +-0.5 is u0 + mean(e); difference is u1 + diff(e)
    y = sims.T.reshape(10, 400, 2, 2)  # replicate, group, pair, (w=-0.5, w=+0.5)
    level = y.mean(axis=(2, 3))
    slope = (y[..., 1] - y[..., 0]).mean(axis=2)
    cov = np.array([np.cov(level[k], slope[k])[0, 1] for k in range(10)])
    # Cov(u0 + mean e, u1 + mean diff e) = 0.5 * 1 * 2 (the residual parts are uncorrelated)
    assert abs(cov.mean() - 1.0) < Z * cov.std(ddof=1) / np.sqrt(10)


def test_bad_tests_and_missing_trials_are_refused():
    data = _grouped(8, 2)
    truth = {"fixed": {"(Intercept)": 0.0, "x": 0.0}, "sd": {"g": 0.5}}
    with pytest.raises(ModelSpecError, match=r"'xx' is not a fixed effect.*'x'"):
        power_simulation("n ~ x + (1 | g)", data, "poisson", truth, "xx", replicates=2)
    with pytest.raises(ModelSpecError, match="factor whose levels"):
        power_simulation("n ~ x + (1 | g)", data, "poisson", truth, {"slopes": ["x"]}, 2)
    with pytest.raises(ModelSpecError, match="trials"):
        simulate_responses("cbind(s, f) ~ x + (1 | g)", data, "binomial", truth)
    with pytest.raises(ModelSpecError, match="replicates must be a positive"):
        power_simulation("n ~ x + (1 | g)", data, "poisson", truth, "x", replicates=0)


def test_binomial_power_agrees_with_an_independent_statsmodels_glm_loop():
    # at zero random-effect variance the GLMM's Wald test of a within-group effect is the
    # logistic regression's; statsmodels GLM refits the same simulated responses
    import statsmodels.api as sm

    data = _grouped(30, 6)
    truth = {"fixed": {"(Intercept)": 0.0, "w": 0.6}, "sd": {"g": 0.0}}
    formula = "y ~ w + (1 | g)"
    reps = 40
    rows = power_replicates(formula, data, "binomial", truth, "w", start=0, stop=reps, seed=12)
    sims = simulate_responses(formula, data, "binomial", truth, reps, seed=12)
    exog = sm.add_constant(data[["w"]].to_numpy())
    glm_p = np.array(
        [
            sm.GLM(sims[c].to_numpy(), exog, family=sm.families.Binomial()).fit().pvalues[1]
            for c in sims.columns
        ]
    )
    glmm_reject = rows["p_value"].to_numpy() < 0.05
    glm_reject = glm_p < 0.05
    discordant = int((glmm_reject != glm_reject).sum())
    # paired comparison: the difference of the two rates has SE sqrt(discordant) / reps
    difference = abs(glmm_reject.mean() - glm_reject.mean())
    assert difference <= Z * max(np.sqrt(discordant), 1.0) / reps
    assert discordant <= 0.1 * reps
    out = summarise_power(rows)
    assert out["failed"].iloc[0] == 0 and out["singular"].iloc[0] >= reps // 2


# lme4 1.1-31 (R 4.2.2), 2,000 simulate-and-refit replicates of a binary GLMM, 20 groups of
# 10, x = -0.5 / +0.5 between groups, intercept -0.5, slope 0.8, group SD 0.6:
#   set.seed(20261202); g <- rep(1:20, each = 10); x <- rep(rep(c(-.5, .5), 10), each = 10)
#   for (i in 1:2000) { b <- rnorm(20, 0, .6); d$y <- rbinom(200, 1, plogis(-.5 + .8*x + b[g]))
#     f <- glmer(y ~ x + (1 | g), d, binomial)
#     rej <- rej + (summary(f)$coefficients["x", "Pr(>|z|)"] < .05) }
# gave 1,052 rejections (power .526) and 252 singular fits, none failed.
LME4_POWER, LME4_REPLICATES, LME4_SINGULAR = 1052 / 2000, 2000, 252 / 2000


def test_binomial_glmm_power_agrees_with_lme4_simulate_and_refit():
    g = np.repeat(np.arange(20), 10)
    data = pd.DataFrame({"g": g, "x": np.repeat(np.tile([-0.5, 0.5], 10), 10)})
    truth = {"fixed": {"(Intercept)": -0.5, "x": 0.8}, "sd": {"g": 0.6}}
    reps = 400
    out = power_simulation(
        "y ~ x + (1 | g)", data, "binomial", truth, "x", replicates=reps, seed=5, n_jobs=2
    )
    row = out.iloc[0]
    # two independent Monte Carlo estimates: SE of the difference from both sample sizes
    se = np.sqrt(LME4_POWER * (1 - LME4_POWER) * (1 / reps + 1 / LME4_REPLICATES))
    assert abs(row["power"] - LME4_POWER) < Z * se  # 3.5 x 0.027
    singular = row["singular"] / reps
    se_singular = np.sqrt(LME4_SINGULAR * (1 - LME4_SINGULAR) * (1 / reps + 1 / LME4_REPLICATES))
    assert abs(singular - LME4_SINGULAR) < Z * se_singular
    assert row["failed"] == 0


def test_a_fit_that_raises_counts_as_failed_and_as_no_rejection(monkeypatch):
    import resistance_outcomes.power.simulate as simulate

    refit = simulate._refit
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise np.linalg.LinAlgError("not positive definite")
        return refit(*args, **kwargs)

    monkeypatch.setattr(simulate, "_refit", flaky)
    data = _grouped(12, 4)
    truth = {"fixed": {"(Intercept)": 0.3, "w": 2.0}, "sd": {"g": 0.5}}
    rows = power_replicates("n ~ w + (1 | g)", data, "poisson", truth, "w", start=0, stop=9)
    assert rows["failed"].tolist() == [False, False, True] * 3
    assert rows.loc[rows["failed"], "error"].str.contains("LinAlgError").all()
    out = summarise_power(rows).iloc[0]
    assert out["replicates"] == 9 and out["failed"] == 3
    assert out["rejections"] == 6 and out["power"] == pytest.approx(6 / 9)
    assert out["converged_fits"] == 6 and out["power_converged"] == 1.0


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    from resistance_outcomes.power import wilson_interval

    for k, n in ((0, 20), (7, 160), (88, 160), (200, 200)):
        low, high = wilson_interval(k, n)
        expected = proportion_confint(k, n, alpha=0.05, method="wilson")
        np.testing.assert_allclose([low, high], expected, rtol=1e-12, atol=1e-12)


# --- attrition from the hazard, multiplicity ----------------------------------------------


def _hazard_rows() -> pd.DataFrame:
    from resistance_outcomes.power import person_period_design

    return person_period_design(["a", "b"], 6, 5, planned_sessions=8)


HAZARD_TRUTH = {
    "fixed": {"(Intercept)": -2.2, "log_time": -0.3, "frameworkb": 0.0},
    "sd": {"therapist": 0.5},
}


def test_attrition_fits_each_replicate_to_the_rows_before_each_clients_first_event():
    from resistance_outcomes.power import apply_attrition

    rows = _hazard_rows()
    formula = "event ~ log_time + framework + (1 | therapist)"
    args = (formula, rows, "binomial", HAZARD_TRUTH, ["frameworkb", "log_time"])
    out = power_replicates(*args, start=2, stop=5, seed=11, attrition=True, warm_start=False)
    events = simulate_responses(formula, rows, "binomial", HAZARD_TRUTH, 3, seed=11, start=2)
    for i in range(2, 5):
        kept = apply_attrition(rows, events[f"sim_{i + 1}"].to_numpy())
        assert len(kept) < len(rows)  # some clients left early
        fresh = fit_mixed(formula, kept, "binomial").coefficients.set_index("term")
        mine = out[out["replicate"] == i].set_index("term")
        for term in ["frameworkb", "log_time"]:
            assert mine.loc[term, "estimate"] == pytest.approx(
                fresh.loc[term, "estimate"], rel=1e-8
            )
            assert mine.loc[term, "std_error"] == pytest.approx(
                fresh.loc[term, "std_error"], rel=1e-6
            )
    # without attrition every planned row is fitted: other estimates
    full = power_replicates(*args, start=2, stop=5, seed=11, warm_start=False)
    assert not np.allclose(full["estimate"], out["estimate"])
    # the warm start reaches the same optimum on the kept rows
    warm = power_replicates(*args, start=2, stop=5, seed=11, attrition=True)
    np.testing.assert_allclose(warm["estimate"], out["estimate"], rtol=1e-5, atol=1e-7)


def test_attrition_keeps_the_null_rejection_rate_and_the_results_independent_of_jobs():
    rows = _hazard_rows()
    args = (
        "event ~ log_time + framework + (1 | therapist)",
        rows,
        "binomial",
        HAZARD_TRUTH,
        "frameworkb",
    )
    one = power_simulation(*args, replicates=160, seed=12, n_jobs=2, attrition=True)
    row = one.iloc[0]
    assert row["failed"] == 0
    # Wald z of a GLMM with 12 therapists is a little liberal; 3.5 MC SEs around .05
    assert abs(row["power"] - 0.05) < Z * np.sqrt(0.05 * 0.95 / 160)
    part = power_simulation(*args, replicates=20, seed=12, n_jobs=1, attrition=True)
    two = power_simulation(*args, replicates=20, seed=12, n_jobs=2, attrition=True)
    pd.testing.assert_frame_equal(part, two, check_exact=True)


def test_attrition_is_refused_for_responses_that_are_not_events():
    data = _grouped(8, 4).assign(study="s", client=lambda d: d["g"], session=1)
    truth = {"fixed": {"(Intercept)": 0.0, "x": 0.0}, "sd": {"g": 0.5}, "sigma": 1.0}
    with pytest.raises(ModelSpecError, match="0/1 event response"):
        power_replicates("y ~ x + (1 | g)", data, "gaussian", truth, "x", attrition=True)
    rows = _hazard_rows().drop(columns="session")
    with pytest.raises(ModelSpecError, match=r"column\(s\) \['session'\]"):
        power_simulation(
            "event ~ log_time + (1 | therapist)",
            rows,
            "binomial",
            {"fixed": {"(Intercept)": -2.0, "log_time": 0.0}, "sd": {"therapist": 0.5}},
            "log_time",
            replicates=2,
            n_jobs=2,
            attrition=True,
        )
    with pytest.raises(ModelSpecError, match="cluster and order"):
        power_replicates(
            "event ~ log_time + (1 | therapist)",
            _hazard_rows(),
            "binomial",
            {"fixed": {"(Intercept)": -2.0, "log_time": 0.0}, "sd": {"therapist": 0.5}},
            "log_time",
            attrition={"group": "client"},
        )


def test_holm_adjustment_applies_within_each_replicate_and_lowers_power():
    from resistance_outcomes.contrasts import adjust_pvalues

    data = _grouped(16, 4).assign(f=lambda d: np.array(["p", "q", "r", "s"])[d["g"] % 4])
    truth = {
        "fixed": {"(Intercept)": 0.0, "fq": 0.6, "fr": 0.8, "fs": 0.4},
        "sd": {"g": 0.3},
        "sigma": 1.0,
    }
    args = ("y ~ f + (1 | g)", data, "gaussian", truth, {"pairwise": "f"})
    raw = power_replicates(*args, start=0, stop=6, seed=3)
    holm = power_replicates(*args, start=0, stop=6, seed=3, adjust="holm")
    for i in range(6):
        p = raw.loc[raw["replicate"] == i, "p_value"].to_numpy()
        np.testing.assert_allclose(
            holm.loc[holm["replicate"] == i, "p_value"], adjust_pvalues(p, "holm"), rtol=1e-12
        )
    np.testing.assert_array_equal(holm["ci_low"], raw["ci_low"])  # intervals unadjusted
    assert (summarise_power(holm)["power"] <= summarise_power(raw)["power"]).all()
    with pytest.raises(ModelSpecError, match="adjust 'tukey'"):
        power_replicates(*args, adjust="tukey")
