"""Truth helpers: natural-scale conversions against their closed forms and published
figures, the checked truth builder, and the truth of a fit or of its model folder."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.io import write_table
from resistance_outcomes.models import fit_mixed
from resistance_outcomes.power import (
    TruthError,
    build_truth,
    client_design,
    icc_from_sd,
    log_rate_per_minute,
    log_ratio,
    logit,
    per_session_hazard,
    sd_from_icc,
    session_design,
    simulate_responses,
    truth_from_fit,
)

# --------------------------------------------------------------------------- conversions


def test_logit_icc_matches_saxon_et_al_2017():
    # /work/shared/domain.md section 4: therapist share of variance in dropout about 12.6%,
    # logit-scale therapist SD about 0.69 (Saxon et al. 2017)
    assert round(sd_from_icc(0.126, "binomial"), 2) == 0.69
    assert round(icc_from_sd(0.69, "binomial"), 3) == 0.126
    # closed form: var = icc / (1 - icc) * pi^2 / 3
    assert sd_from_icc(0.126) == pytest.approx(math.sqrt(0.126 / 0.874 * math.pi**2 / 3))


@pytest.mark.parametrize(
    ("family", "kwargs", "level1"),
    [
        ("binomial", {}, math.pi**2 / 3),
        ("gaussian", {"sigma": 2.0}, 4.0),
        # Nakagawa, Johnson & Schielzeth 2017, lognormal approximation
        ("poisson", {"mean": 1.5}, math.log(1 + 1 / 1.5)),
        ("negative_binomial", {"mean": 1.5, "theta": 2.5}, math.log(1 + 1 / 1.5 + 1 / 2.5)),
    ],
)
def test_icc_sd_closed_forms_and_round_trip(family, kwargs, level1):
    for icc in (0.0, 0.05, 0.3):
        for other in (0.0, 0.2):
            sd = sd_from_icc(icc, family, other_variance=other, **kwargs)
            assert sd**2 == pytest.approx(icc / (1 - icc) * (level1 + other), abs=1e-14)
            back = icc_from_sd(sd, family, other_variance=other, **kwargs)
            assert back == pytest.approx(icc, abs=1e-14)


def test_gaussian_icc_of_one_fifth_is_half_the_residual_sd():
    assert sd_from_icc(0.2, "gaussian", sigma=1.6) == pytest.approx(0.8)  # 0.25 * 1.6^2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"icc": 1.0}, "icc must be < 1"),
        ({"icc": -0.1}, "icc must be >= 0"),
        ({"icc": "high"}, "icc must be a number, got 'high'"),
        ({"icc": 0.1, "family": "gaussian"}, "give sigma"),
        ({"icc": 0.1, "family": "poisson"}, "give mean"),
        ({"icc": 0.1, "family": "negative_binomial", "mean": 2.0}, "give theta"),
        ({"icc": 0.1, "family": "poisson", "mean": 0.0}, "mean must be > 0"),
        ({"icc": 0.1, "other_variance": -1}, "other_variance must be >= 0"),
    ],
)
def test_icc_errors(kwargs, message):
    with pytest.raises(TruthError, match=message):
        sd_from_icc(**kwargs)


def test_ratios_probabilities_hazards_and_rates():
    assert log_ratio(2.7) == pytest.approx(math.log(2.7))
    assert log_ratio(1.0) == 0.0
    assert logit(0.5) == 0.0
    p = 0.197  # Swift & Greenberg 2012
    assert 1 / (1 + math.exp(-logit(p))) == pytest.approx(p)
    # domain.md section 4: per-session hazard over 12 / 20 sessions about 0.018 / 0.011
    assert round(per_session_hazard(p, 12), 3) == 0.018
    assert round(per_session_hazard(p, 20), 3) == 0.011
    assert 1 - (1 - per_session_hazard(p, 12)) ** 12 == pytest.approx(p)
    # 2 ruptures per 50-minute session: exp(b0) * 50 = 2
    assert math.exp(log_rate_per_minute(2.0, 50.0)) * 50.0 == pytest.approx(2.0)
    for call, message in [
        (lambda: log_ratio(0), "ratio must be > 0"),
        (lambda: logit(1.0), "probability must be < 1"),
        (lambda: per_session_hazard(0.2, 2.5), "whole number"),
        (lambda: log_rate_per_minute(2.0, -5), "minutes must be > 0"),
    ]:
        with pytest.raises(TruthError, match=message):
            call()


# --------------------------------------------------------------------------- build_truth

DROPOUT = "dropout ~ framework + (1 | therapist)"
RUPTURES = "ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)"


def test_build_truth_for_a_planned_dropout_study():
    plan = client_design(["cognitive", "humanistic", "psychodynamic"], 6, 8)
    truth = build_truth(
        DROPOUT,
        plan,
        "binomial",
        fixed={"(Intercept)": logit(0.2), "frameworkpsychodynamic": log_ratio(1.5)},
        sd={"therapist": sd_from_icc(0.126)},
        others_zero=True,
    )
    assert truth == {
        "fixed": {
            "(Intercept)": pytest.approx(math.log(0.25)),
            "frameworkhumanistic": 0.0,
            "frameworkpsychodynamic": pytest.approx(math.log(1.5)),
        },
        "sd": {"therapist": pytest.approx(0.6887, abs=1e-4)},
    }
    sims = simulate_responses(DROPOUT, plan, "binomial", truth, nsim=2, seed=1)
    assert sims.shape == (144, 2) and set(np.unique(sims)) <= {0, 1}


def test_build_truth_lists_missing_terms_and_checks_every_part():
    plan = session_design(["a", "b"], 2, 2, 4)
    fixed = {"(Intercept)": log_rate_per_minute(1.0, 50)}
    sd = {"therapist": 0.3, "therapist:client": 0.4}
    with pytest.raises(TruthError, match=r"\['frameworkb', 'session_c', 'frameworkb:session_c'\]"):
        build_truth(RUPTURES, plan, "negative_binomial", fixed=fixed, sd=sd, theta=2.0)
    truth = build_truth(
        RUPTURES, plan, "negative_binomial", fixed=fixed, sd=sd, theta=2.0, others_zero=True
    )
    assert list(truth["fixed"]) == [
        "(Intercept)",
        "frameworkb",
        "session_c",
        "frameworkb:session_c",
    ]
    assert truth["theta"] == 2.0 and "sigma" not in truth

    def build(**changes):
        args = {"fixed": fixed, "sd": sd, "theta": 2.0, "others_zero": True} | changes
        family = args.pop("family", "negative_binomial")
        return build_truth(RUPTURES, plan, family, **args)

    cases = [
        ({"fixed": {**fixed, "frameworkc": 1.0}}, r"\['frameworkc'\] are not columns"),
        (
            {"sd": {"therapist": 0.3}},
            r"no true SD for random-effect group\(s\) \['therapist:client'\]",
        ),
        ({"sd": {**sd, "client": 0.1}}, r"\['client'\] are not terms of the model"),
        ({"sd": {**sd, "therapist": -0.1}}, r"sd\['therapist'\] must be >= 0"),
        ({"sd": {**sd, "therapist": [0.1, 0.2]}}, r"needs 1 value\(s\)"),
        ({"theta": None}, "needs the NB2 size"),
        ({"sigma": 1.0}, "sigma is the residual SD of gaussian models"),
        ({"family": "poisson"}, "theta is the NB2 size"),
        ({"family": "gaussian", "theta": None}, "needs the residual SD"),
        ({"fixed": {"(Intercept)": float("nan")}}, "must be finite"),
    ]
    for changes, message in cases:
        with pytest.raises(TruthError, match=message):
            build(**changes)


def test_build_truth_vector_term_and_correlation_checks():
    plan = session_design(["a", "b"], 3, 2, 4)
    formula = "y ~ session_c + (1 + session_c | therapist)"
    base = {"fixed": {"(Intercept)": 1.0, "session_c": 0.2}, "sigma": 1.0}
    truth = build_truth(
        formula,
        plan,
        sd={"therapist": [0.5, 0.1]},
        corr={"therapist": [[1, 0.3], [0.3, 1]]},
        **base,
    )
    assert truth["sd"] == {"therapist": [0.5, 0.1]}
    assert truth["corr"] == {"therapist": [[1.0, 0.3], [0.3, 1.0]]}
    for corr, message in [
        ([[1, 0.3], [0.2, 1]], "symmetric"),
        ([[1, 1.5], [1.5, 1]], "not a correlation matrix"),
        ([[1]], "2 x 2 matrix"),
    ]:
        with pytest.raises(TruthError, match=message):
            build_truth(
                formula, plan, sd={"therapist": [0.5, 0.1]}, corr={"therapist": corr}, **base
            )


def test_a_stated_rate_per_session_is_the_simulated_mean_count():
    # NB2 counts per 40-minute session at a rate of 2.5 per 50 minutes (2.0 per session) and
    # no therapist variance: mean 2.0, variance mu + mu^2 / theta = 2 + 4 / 2.5 = 3.6
    plan = session_design(["a", "b"], 20, 10, 10, minutes=40)
    truth = build_truth(
        RUPTURES,
        plan,
        "negative_binomial",
        fixed={"(Intercept)": log_rate_per_minute(2.5, 50)},
        sd={"therapist": 0.0, "therapist:client": 0.0},
        theta=2.5,
        others_zero=True,
    )
    counts = simulate_responses(RUPTURES, plan, "negative_binomial", truth, 1, seed=3)["sim_1"]
    n = len(counts)
    assert n == 4000
    assert abs(counts.mean() - 2.0) < 4 * np.sqrt(3.6 / n)


# --------------------------------------------------------------------------- from a fit


@pytest.fixture(scope="module")
def slope_fit():
    """A gaussian fit with a correlated random intercept and slope (known-truth data)."""
    rng = np.random.default_rng(11)
    plan = session_design(["a", "b"], 6, 2, 6)
    g = plan.therapist.astype("category").cat.codes.to_numpy()
    u = rng.multivariate_normal([0, 0], [[0.36, 0.03], [0.03, 0.04]], size=12)
    y = 1.0 + 0.3 * (plan.framework == "b") + 0.2 * plan.session_c
    y = y + u[g, 0] + u[g, 1] * plan.session_c + rng.normal(0, 0.7, len(plan))
    data = plan.assign(y=y)
    return fit_mixed("y ~ framework + session_c + (1 + session_c | therapist)", data)


@pytest.fixture(scope="module")
def nb_fit():
    rng = np.random.default_rng(5)
    plan = session_design(["a", "b"], 5, 3, 4)
    g = plan.therapist.astype("category").cat.codes.to_numpy()
    mu = np.exp(-3.2 + 0.3 * (plan.framework == "b") + rng.normal(0, 0.4, 10)[g]) * plan.minutes
    counts = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
    data = plan.assign(ruptures=counts)
    formula = "ruptures ~ framework + offset(log(minutes)) + (1 | therapist)"
    return fit_mixed(formula, data, family="negative_binomial")


def test_truth_from_fit_reproduces_the_estimates(slope_fit):
    truth = truth_from_fit(slope_fit)
    coefficients = slope_fit.coefficients.set_index("term").estimate
    assert truth["fixed"] == pytest.approx(coefficients.to_dict(), abs=1e-12)
    vc = slope_fit.variance_components
    sds = vc[(vc.group == "therapist") & vc.term2.isna()].sd.tolist()
    corr = vc[(vc.group == "therapist") & vc.term2.notna()]["corr"].iloc[0]
    assert truth["sd"]["therapist"] == pytest.approx(sds, abs=1e-12)
    np.testing.assert_allclose(truth["corr"]["therapist"], [[1, corr], [corr, 1]], atol=1e-12)
    assert truth["sigma"] == pytest.approx(vc[vc.group == "Residual"].sd.iloc[0], abs=1e-12)
    assert "theta" not in truth
    # the truth drives a simulation on the fit's own design
    sims = simulate_responses(
        "y ~ framework + session_c + (1 + session_c | therapist)",
        slope_fit.design.frame,
        "gaussian",
        truth,
        nsim=1,
    )
    assert sims.shape == (len(slope_fit.design.frame), 1)


def test_truth_from_fit_nb_theta_and_overrides(nb_fit):
    truth = truth_from_fit(nb_fit)
    assert truth["theta"] == pytest.approx(nb_fit.nb_theta)
    assert "sigma" not in truth and "corr" not in truth
    changed = truth_from_fit(nb_fit, {"fixed": {"frameworkb": log_ratio(0.8)}, "theta": 4.0})
    assert changed["fixed"]["frameworkb"] == pytest.approx(math.log(0.8))
    assert changed["fixed"]["(Intercept)"] == truth["fixed"]["(Intercept)"]  # untouched
    assert changed["sd"] == truth["sd"] and changed["theta"] == 4.0
    assert truth_from_fit(nb_fit, {"sd": {"therapist": 0.0}})["sd"] == {"therapist": 0.0}
    for override, message in [
        ({"fixed": {"frameworkc": 1.0}}, r"\['frameworkc'\] are not in the fitted model"),
        ({"sd": {"client": 1.0}}, r"random-effect group\(s\) \['client'\]"),
        ({"sigma": 1.0}, "has no sigma"),
        ({"beta": {}}, "unknown override key"),
        ({"theta": -1.0}, "theta must be > 0"),
    ]:
        with pytest.raises(TruthError, match=message):
            truth_from_fit(nb_fit, override)
    with pytest.raises(TruthError, match="takes a MixedResult or a model folder, got dict"):
        truth_from_fit({"fixed": {}})


def _write_folder(fit, folder, family):
    """The files the model step writes (coefficients.csv, variance_components.csv,
    fit.json), with the package's one CSV writer."""
    write_table(fit.coefficients, folder / "coefficients.csv")
    write_table(fit.variance_components, folder / "variance_components.csv")
    statistics = {"model": folder.name, "fitted": True, "family": family, **fit.fit_statistics}
    (folder / "fit.json").write_text(json.dumps(statistics), encoding="utf-8")


@pytest.mark.parametrize("which", ["slope_fit", "nb_fit"])
def test_truth_from_model_folder_equals_truth_from_the_fit(which, request, tmp_path):
    fit = request.getfixturevalue(which)
    folder = tmp_path / which
    _write_folder(fit, folder, fit.family)
    from_folder = truth_from_fit(folder)
    from_fit = truth_from_fit(fit)
    assert from_folder.keys() == from_fit.keys()
    assert from_folder["fixed"] == pytest.approx(from_fit["fixed"], abs=1e-12)
    for group, value in from_fit["sd"].items():
        assert from_folder["sd"][group] == pytest.approx(value, abs=1e-12)
    for group, value in from_fit.get("corr", {}).items():
        assert np.allclose(from_folder["corr"][group], value, atol=1e-12)
    for key in ("sigma", "theta"):
        if key in from_fit:
            assert from_folder[key] == pytest.approx(from_fit[key], abs=1e-12)
    assert truth_from_fit(folder / "fit.json") == from_folder  # a file in it: its folder
    override = truth_from_fit(folder, {"fixed": {"frameworkb": 0.0}})
    assert override["fixed"]["frameworkb"] == 0.0
    with pytest.raises(TruthError, match="theta must be > 0|sigma must be > 0"):
        truth_from_fit(folder, {"sigma": -1.0} if "sigma" in from_fit else {"theta": -1.0})
    with pytest.raises(TruthError, match=r"sd\['therapist'\] needs"):
        truth_from_fit(folder, {"sd": {"therapist": [0.1, 0.2, 0.3]}})


def test_truth_from_model_folder_errors(tmp_path, nb_fit):
    with pytest.raises(TruthError, match="fit.json: missing"):
        truth_from_fit(tmp_path / "absent")
    folder = tmp_path / "not_fitted"
    folder.mkdir()
    (folder / "fit.json").write_text(
        json.dumps({"fitted": False, "reason": "the data have no values of 'y'"}), "utf-8"
    )
    with pytest.raises(TruthError, match="was not fitted \\(the data have no values of 'y'\\)"):
        truth_from_fit(folder)
    folder = tmp_path / "gee"
    _write_folder(nb_fit, folder, "poisson")
    (folder / "fit.json").write_text(json.dumps({"fitted": True, "method": "GEE"}), "utf-8")
    with pytest.raises(TruthError, match="population-averaged \\(GEE\\) fit"):
        truth_from_fit(folder)
    folder = tmp_path / "broken"
    _write_folder(nb_fit, folder, "negative_binomial")
    (folder / "variance_components.csv").unlink()
    with pytest.raises(TruthError, match="variance_components.csv: missing"):
        truth_from_fit(folder)
    _write_folder(nb_fit, folder, "negative_binomial")
    table = pd.read_csv(folder / "coefficients.csv")
    table["estimate"] = table["estimate"].astype(object)
    table.loc[1, "estimate"] = "n/a"
    table.to_csv(folder / "coefficients.csv", index=False)
    with pytest.raises(TruthError, match="coefficients.csv row 3 \\('frameworkb'\\) estimate"):
        truth_from_fit(folder)
