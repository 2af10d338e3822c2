"""The family objects: the one owner of each family's name, aliases, link, ratio, words,
axis labels and response checks."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from resistance_outcomes.models import ModelSpecError, fit_mixed, get_family
from resistance_outcomes.models.families import (
    FAMILIES,
    Binomial,
    Gaussian,
    NegativeBinomial2,
    Poisson,
    family_names,
    glmm_family,
)

# every attribute of every family, written out by hand
EXPECTED = {
    "gaussian": {
        "cls": Gaussian,
        "aliases": ("normal",),
        "link_name": "identity",
        "ratio": None,
        "ratio_name": None,
        "estimate_scale": None,
        "baseline": None,
        "words": "Gaussian",
        "model_words": "linear",
        "fitted_label": "Fitted value",
        "link_scale": "response units",
        "glmm": False,
        "exponentiate": False,
    },
    "binomial": {
        "cls": Binomial,
        "aliases": ("logit",),
        "link_name": "logit",
        "ratio": "OR",
        "ratio_name": "odds ratio",
        "estimate_scale": "log-odds",
        "baseline": "odds",
        "words": "binomial",
        "model_words": "logistic",
        "fitted_label": "Fitted probability",
        "link_scale": "log odds",
        "glmm": True,
        "exponentiate": True,
    },
    "poisson": {
        "cls": Poisson,
        "aliases": (),
        "link_name": "log",
        "ratio": "IRR",
        "ratio_name": "incidence-rate ratio",
        "estimate_scale": "log-rate",
        "baseline": "rate (per unit of the offset)",
        "words": "Poisson",
        "model_words": "Poisson",
        "fitted_label": "Fitted count",
        "link_scale": "log rate",
        "glmm": True,
        "exponentiate": True,
    },
    "negative_binomial": {
        "cls": NegativeBinomial2,
        "aliases": ("negativebinomial", "nbinom2", "negbin", "nb2"),
        "link_name": "log",
        "ratio": "IRR",
        "ratio_name": "incidence-rate ratio",
        "estimate_scale": "log-rate",
        "baseline": "rate (per unit of the offset)",
        "words": "negative-binomial",
        "model_words": "negative-binomial",
        "fitted_label": "Fitted count",
        "link_scale": "log rate",
        "glmm": True,
        "exponentiate": True,
    },
}
NAMES_AND_ALIASES = [
    (name, alias) for name, facts in EXPECTED.items() for alias in (name, *facts["aliases"])
]


def test_the_four_families_in_order():
    assert family_names() == ["gaussian", "binomial", "poisson", "negative_binomial"]
    assert list(FAMILIES) == list(EXPECTED)
    assert set(family_names(aliases=True)) == {alias for _, alias in NAMES_AND_ALIASES}


@pytest.mark.parametrize(("name", "alias"), NAMES_AND_ALIASES)
def test_every_alias_resolves_to_its_family_with_every_attribute(name, alias):
    for spelling in (alias, alias.upper(), f" {alias.replace('_', '-')} "):
        family = get_family(spelling)
        assert type(family) is EXPECTED[name]["cls"]
        assert family.name == name
        for attribute, value in EXPECTED[name].items():
            if attribute != "cls":
                assert getattr(family, attribute) == value, (alias, attribute)


def test_a_family_object_is_returned_as_it_is():
    family = NegativeBinomial2(theta=3.0)
    assert get_family(family) is family


def test_links_and_variance_functions():
    mu = np.array([0.2, 0.5, 0.9])
    eta = np.array([-1.0, 0.0, 2.0])
    assert get_family("gaussian").link.inverse(eta) == pytest.approx(eta)
    assert get_family("binomial").link.inverse(eta) == pytest.approx(expit(eta))
    assert get_family("poisson").link.inverse(eta) == pytest.approx(np.exp(eta))
    assert get_family("gaussian").variance(mu) == pytest.approx([1.0, 1.0, 1.0])
    assert get_family("binomial").variance(mu) == pytest.approx(mu * (1 - mu))
    assert get_family("poisson").variance(mu) == pytest.approx(mu)
    # NB2: mu + mu^2 / theta
    assert NegativeBinomial2(theta=2.0).variance(mu) == pytest.approx(mu + mu**2 / 2.0)


def test_unknown_family_lists_the_names_and_aliases():
    with pytest.raises(ModelSpecError) as err:
        get_family("gamma")
    message = str(err.value)
    assert message.startswith("family 'gamma' is not supported; use one of gaussian, binomial,")
    assert "nbinom2" in message and "normal" in message


def test_the_glmm_engine_refuses_the_gaussian_family():
    assert glmm_family("negbin").name == "negative_binomial"
    with pytest.raises(ModelSpecError, match="'gaussian' is not available for generalised"):
        glmm_family("normal")


def test_fit_mixed_accepts_the_gaussian_alias():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 5)
    df = pd.DataFrame({"g": g, "y": rng.normal(size=6)[g] + rng.normal(size=30)})
    fit = fit_mixed("y ~ 1 + (1 | g)", df, family="Normal")
    assert fit.family == "gaussian"
    assert fit.coefficients["exp_estimate"].isna().all()


# --- response checks: the one place, with their messages --------------------------------

WHERE = ["client C1, session 1", "client C1, session 2", "client C2, session 1"]


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_counts_must_be_whole_and_non_negative(name):
    family = get_family(name)
    family.check_response(np.array([0.0, 3.0, 12.0]), WHERE, "ruptures")
    with pytest.raises(ModelSpecError) as err:
        family.check_response(np.array([0.0, 2.5, -1.0]), WHERE, "ruptures")
    assert str(err.value) == (
        f"family {name} needs whole counts >= 0, but column 'ruptures' has the value 2.5 "
        "(client C1, session 2); 2 row(s) in all. Correct or remove these rows, or choose a "
        "family that fits the response."
    )


def test_binomial_needs_zero_or_one():
    family = get_family("binomial")
    family.check_response(np.array([0.0, 1.0, 1.0]), WHERE, "dropout")
    with pytest.raises(ModelSpecError) as err:
        family.check_response(np.array([0.0, 1.0, 2.0]), WHERE, "dropout")
    assert str(err.value) == (
        "family binomial needs a 0/1 response (or cbind(successes, failures)), but column "
        "'dropout' has the value 2 (client C2, session 1); 1 row(s) in all. Correct or remove "
        "these rows, or choose a family that fits the response."
    )


def test_binomial_cbind_needs_proportions_of_whole_successes():
    family = get_family("binomial")
    response = "cbind(k, n - k)"
    family.check_response(np.array([0.5, 1.0]), ["a", "b"], response, np.array([4.0, 2.0]))
    with pytest.raises(ModelSpecError, match="successes must not exceed trials.*value 1.25"):
        family.check_response(np.array([0.5, 1.25]), ["a", "b"], response, np.array([4.0, 4.0]))
    with pytest.raises(ModelSpecError, match=r"whole numbers of successes.*value 1\.5 \(b\)"):
        family.check_response(np.array([0.5, 0.5]), ["a", "b"], response, np.array([4.0, 3.0]))


def test_prior_weights_must_be_finite_and_non_negative():
    with pytest.raises(ModelSpecError, match=r"prior weights of 'y' has the value -1 \(b\)"):
        get_family("poisson").check_response(
            np.array([1.0, 2.0]), ["a", "b"], "y", np.array([1.0, -1.0])
        )


def test_gaussian_refuses_a_binary_response_and_missing_values():
    family = get_family("gaussian")
    family.check_response(np.array([4.5, 5.0, 1.0]), WHERE, "alliance")
    with pytest.raises(ModelSpecError) as err:
        family.check_response(np.array([0.0, 1.0, 1.0]), WHERE, "dropout")
    assert str(err.value) == (
        "family gaussian does not fit the 0/1 response 'dropout'; use family: binomial."
    )
    with pytest.raises(ModelSpecError, match="needs finite values.*value nan"):
        family.check_response(np.array([4.0, np.nan, 1.0]), WHERE, "alliance")


def test_where_may_be_a_function_of_the_row_position():
    with pytest.raises(ModelSpecError, match=r"value 7 \(row 3\)"):
        get_family("binomial").check_response(np.array([0, 1, 7]), lambda i: f"row {i + 1}", "y")


def test_the_engine_uses_the_same_checks():
    data = pd.DataFrame({"y": [1.0, 2.5, 3.0, 0.0], "g": ["a", "a", "b", "b"]})
    with pytest.raises(ModelSpecError) as err:
        fit_mixed("y ~ 1 + (1 | g)", data, family="poisson")
    assert str(err.value).startswith(
        "family poisson needs whole counts >= 0, but column 'y' has the value 2.5 (row with "
        "index 1); 1 row(s) in all."
    )


def test_the_config_schema_accepts_exactly_the_family_names_and_aliases():
    from pathlib import Path

    import yaml

    schema = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    enum = yaml.safe_load(schema.read_text(encoding="utf-8"))["$defs"]["family"]["enum"]
    assert sorted(enum) == sorted(family_names(aliases=True))
