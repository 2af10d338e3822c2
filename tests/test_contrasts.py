"""Framework contrasts and simple slopes against hand computations from beta and vcov.

Every contrast is checked against ``L beta`` and ``sqrt(L V L')`` written out term by term
from the coefficient names (treatment coding, psychoanalytic the reference level), and the
adjusted p values against the issue's hand value and statsmodels' ``multipletests`` (an
independent implementation).
"""

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from statsmodels.stats.multitest import multipletests

from resistance_outcomes.analysis import ContrastSpec
from resistance_outcomes.contrasts import (
    CONTRAST_COLUMNS,
    adjust_pvalues,
    framework_contrasts,
    pairwise_contrasts,
    reference_grid,
    simple_slopes,
)
from resistance_outcomes.models import ModelSpecError, fit_mixed

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
Z = st.norm.ppf(0.975)


def simulated_sessions(seed=11, therapists=18, clients=6, sessions=8):
    """Poisson counts with framework x repair and framework x type effects, random therapist
    intercepts; three frameworks, two behaviour types."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(therapists), clients * sessions * 2)
    framework = np.array(FRAMEWORKS)[t % 3]
    kind = np.tile(["arguing", "denying"], therapists * clients * sessions)
    repair = rng.normal(size=t.size)
    slope = (
        pd.Series(framework)
        .map({"psychoanalytic": 0.1, "behavioral": 0.3, "cognitive": -0.2})
        .to_numpy()
    )
    base = (
        pd.Series(framework)
        .map({"psychoanalytic": 0.0, "behavioral": -0.3, "cognitive": 0.4})
        .to_numpy()
    )
    eta = (
        -0.5 + base + slope * repair + 0.5 * (kind == "denying") + rng.normal(0, 0.3, therapists)[t]
    )
    return pd.DataFrame(
        {
            "count": rng.poisson(np.exp(eta)),
            "framework": pd.Categorical(framework, categories=FRAMEWORKS),
            "kind": pd.Categorical(kind, categories=["arguing", "denying"]),
            "repair": repair,
            "therapist": t.astype(str),
        }
    )


@pytest.fixture(scope="module")
def poisson_fit():
    return fit_mixed(
        "count ~ framework * (repair + kind) + (1 | therapist)",
        simulated_sessions(),
        family="poisson",
    )


def by_hand(fit, weights: dict) -> tuple[float, float]:
    """L beta and sqrt(L V L') for L given as {coefficient name: weight}."""
    names = fit.design.fixed_names
    L = np.array([weights.get(n, 0.0) for n in names])
    assert set(weights) <= set(names), set(weights) - set(names)
    return float(L @ fit.beta), float(np.sqrt(L @ fit.vcov @ L))


# --- adjustment -------------------------------------------------------------------------


def test_holm_hand_value_from_the_issue():
    # Holm on [.01, .02, .04]: 3 x .01 = .03; max(.03, 2 x .02) = .04; max(.04, 1 x .04)
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.02, 0.04], "holm"), [0.03, 0.04, 0.04])


def test_bh_hand_value():
    # BH on [.01, .02, .04]: min over j >= i of 3 p_(j) / j: [.03, .03, .04]
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.02, 0.04], "bh"), [0.03, 0.03, 0.04])


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjustment_matches_statsmodels(ours, theirs):
    rng = np.random.default_rng(5)
    for size in (1, 2, 7, 25):
        p = rng.uniform(0, 0.2, size)
        p[: size // 3] = p[0]  # ties
        expected = multipletests(p, method=theirs)[1]
        np.testing.assert_allclose(adjust_pvalues(p, ours), expected, rtol=1e-12)


def test_missing_p_values_stay_missing_and_do_not_count():
    adjusted = adjust_pvalues([0.01, np.nan, 0.02], "holm")
    np.testing.assert_allclose(adjusted, [0.02, np.nan, 0.02])


def test_no_adjustment_and_unknown_method():
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.5], "none"), [0.01, 0.5])
    with pytest.raises(ModelSpecError, match="'bonferoni' is not one of holm, bh, none"):
        adjust_pvalues([0.01], "bonferoni")


# --- contrasts --------------------------------------------------------------------------


def test_reference_grid_puts_other_predictors_at_reference(poisson_fit):
    grid = reference_grid(poisson_fit.design, "framework", by="kind")
    assert grid["framework"].tolist() == FRAMEWORKS * 2
    assert grid["kind"].tolist() == ["arguing"] * 3 + ["denying"] * 3
    assert (grid["repair"] == 0).all()
    assert list(grid["framework"].cat.categories) == FRAMEWORKS


def test_pairwise_framework_contrasts_by_hand(poisson_fit):
    table = pairwise_contrasts(poisson_fit, "framework")
    assert list(table.columns) == CONTRAST_COLUMNS
    # at repair = 0 and kind = arguing: psychoanalytic - behavioral = -b_behavioral, ...
    hand = {
        ("psychoanalytic", "behavioral"): {"frameworkbehavioral": -1.0},
        ("psychoanalytic", "cognitive"): {"frameworkcognitive": -1.0},
        ("behavioral", "cognitive"): {"frameworkbehavioral": 1.0, "frameworkcognitive": -1.0},
    }
    assert list(zip(table["level"], table["reference"], strict=True)) == list(hand)
    for row, weights in zip(table.itertuples(), hand.values(), strict=True):
        estimate, se = by_hand(poisson_fit, weights)
        assert row.estimate == pytest.approx(estimate, rel=1e-12)
        assert row.std_error == pytest.approx(se, rel=1e-12)
        assert row.p_value == pytest.approx(2 * st.norm.sf(abs(estimate / se)), rel=1e-9)
        assert row.ci_low == pytest.approx(estimate - Z * se, rel=1e-12)
        assert row.ratio == pytest.approx(np.exp(estimate), rel=1e-12)
        assert row.ratio_ci_high == pytest.approx(np.exp(estimate + Z * se), rel=1e-12)
        assert row.ratio_kind == "incidence-rate ratio"
    expected = multipletests(table["p_value"], method="holm")[1]
    np.testing.assert_allclose(table["p_adjusted"], expected, rtol=1e-12)


def test_pairwise_contrasts_within_levels_of_by(poisson_fit):
    table = pairwise_contrasts(poisson_fit, "framework", by="kind", adjust="bh")
    assert table["by"].tolist() == ["arguing"] * 3 + ["denying"] * 3
    denying = table[table["by"] == "denying"].iloc[1]  # psychoanalytic - cognitive
    estimate, se = by_hand(
        poisson_fit, {"frameworkcognitive": -1.0, "frameworkcognitive:kinddenying": -1.0}
    )
    assert (denying.level, denying.reference) == ("psychoanalytic", "cognitive")
    assert denying.estimate == pytest.approx(estimate, rel=1e-12)
    assert denying.std_error == pytest.approx(se, rel=1e-12)
    # one family of six contrasts
    expected = multipletests(table["p_value"], method="fdr_bh")[1]
    np.testing.assert_allclose(table["p_adjusted"], expected, rtol=1e-12)
    assert (table["adjustment"] == "bh").all()


def test_simple_slopes_by_hand(poisson_fit):
    table = simple_slopes(poisson_fit, "repair", "framework")
    assert table["level"].tolist() == FRAMEWORKS
    hand = [
        {"repair": 1.0},
        {"repair": 1.0, "frameworkbehavioral:repair": 1.0},
        {"repair": 1.0, "frameworkcognitive:repair": 1.0},
    ]
    for row, weights in zip(table.itertuples(), hand, strict=True):
        estimate, se = by_hand(poisson_fit, weights)
        assert row.estimate == pytest.approx(estimate, rel=1e-12)
        assert row.std_error == pytest.approx(se, rel=1e-12)
        assert row.ratio == pytest.approx(np.exp(estimate), rel=1e-12)
    # the generating slopes (0.1, 0.3, -0.2) are recovered within 3 standard errors
    assert np.all(np.abs(table["estimate"] - [0.1, 0.3, -0.2]) < 3 * table["std_error"])


def test_slopes_with_interaction_are_adjusted_as_three_tests(poisson_fit):
    table = simple_slopes(poisson_fit, "repair", "framework", adjust="holm")
    expected = multipletests(table["p_value"], method="holm")[1]
    np.testing.assert_allclose(table["p_adjusted"], expected, rtol=1e-12)


def test_a_slope_without_framework_interaction_is_one_test_not_three():
    """Without framework x repair the slope is the same hypothesis in every framework: it is
    reported in each, but adjusted as one test (Holm over three copies would triple p)."""
    fit = fit_mixed(
        "count ~ framework + repair + kind + (1 | therapist)",
        simulated_sessions(seed=5),
        family="poisson",
    )
    estimate, se = by_hand(fit, {"repair": 1.0})
    for method in ("holm", "bh"):
        table = simple_slopes(fit, "repair", "framework", adjust=method)
        assert table["level"].tolist() == FRAMEWORKS
        np.testing.assert_allclose(table["estimate"], estimate, rtol=1e-12)
        np.testing.assert_allclose(table["std_error"], se, rtol=1e-12)
        p = 2 * st.norm.sf(abs(estimate / se))
        np.testing.assert_allclose(table["p_value"], p, rtol=1e-9)
        np.testing.assert_allclose(table["p_adjusted"], p, rtol=1e-9)  # one test: unchanged
    # the model has no repair x kind either: all six framework x kind slopes are one test
    by = simple_slopes(fit, "repair", "framework", by="kind", adjust="holm")
    assert len(by) == 6
    np.testing.assert_allclose(by["p_adjusted"], by["p_value"], rtol=1e-12)
    # with repair x kind (still none with framework): one test per level of kind
    fit = fit_mixed(
        "count ~ framework + repair * kind + (1 | therapist)",
        simulated_sessions(seed=5),
        family="poisson",
    )
    by = simple_slopes(fit, "repair", "framework", by="kind", adjust="holm")
    two = multipletests(by["p_value"].iloc[[0, 3]], method="holm")[1]
    np.testing.assert_allclose(by["p_adjusted"], np.repeat(two, 3), rtol=1e-12)


def test_linear_model_contrasts_are_differences_with_satterthwaite_df():
    data = simulated_sessions(seed=3)
    data["score"] = np.log1p(data["count"]) + data["repair"]
    fit = fit_mixed("score ~ framework * repair + (1 | therapist)", data)
    table = framework_contrasts(fit, ContrastSpec(slopes=("repair",)))
    assert table["kind"].tolist() == ["pairwise"] * 3 + ["simple_slope"] * 3
    assert table["ratio"].isna().all() and (table["ratio_kind"] == "").all()
    assert table["df"].notna().all()
    estimate, se = by_hand(fit, {"repair": 1.0, "frameworkcognitive:repair": 1.0})
    slope = table.iloc[5]
    assert slope.estimate == pytest.approx(estimate, rel=1e-12)
    assert slope.p_value == pytest.approx(2 * st.t.sf(abs(estimate / se), slope.df), rel=1e-9)


def test_slopes_of_a_variable_entering_non_linearly_or_not_at_all_are_refused():
    data = simulated_sessions(seed=4)
    data["x"] = data["repair"] + 3.0
    fit = fit_mixed("count ~ framework * I(x**2) + (1 | therapist)", data, family="poisson")
    with pytest.raises(ModelSpecError, match="'x' does not enter the fixed part linearly"):
        simple_slopes(fit, "x")
    with pytest.raises(ModelSpecError, match="'repair' is not a numeric predictor"):
        simple_slopes(fit, "repair")


def test_unknown_contrast_factor_is_named(poisson_fit):
    with pytest.raises(
        ModelSpecError,
        match="'treatment' is not a factor the model uses; "
        "its factors are framework, kind, therapist",
    ):
        pairwise_contrasts(poisson_fit, "treatment")


def test_no_contrasts_configured_gives_the_empty_table(poisson_fit):
    table = framework_contrasts(poisson_fit, ContrastSpec(pairwise=False))
    assert table.empty and list(table.columns) == CONTRAST_COLUMNS
