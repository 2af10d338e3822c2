"""Recovery: the truth of the simulated example converted to the fitted parametrisation.

Expected values are written out by hand from the generating equations in
``resources/example/truth.json`` (``models`` and ``parameters``): the simulator's
``session_c = (session - 8.5) / 7.5`` against the workflow's ``session - centre``, treatment
coding with psychoanalytic as reference, and ``x = x_within + x_between + grand_mean``. An
independent check fits statsmodels' Poisson GLM to counts drawn from the generating model.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from resistance_outcomes.recovery import (
    RecoveryError,
    load_truth,
    recovery_summary,
    recovery_table,
    repair_pattern,
    true_coefficients,
)

ROOT = Path(__file__).resolve().parents[1]
TRUTH = load_truth(ROOT / "resources" / "example" / "truth.json")
P = TRUTH["parameters"]
FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
TYPES = ["arguing", "interrupting", "denying", "ignoring"]
CENTRE = 6.25  # session_c = session - 6.25 in the fitted model
GRAND_MEAN = 0.3  # unrepaired = within + between + 0.3


def spec(formula, derived=None, levels=None):
    return {
        "formula": formula,
        "factor_levels": {"framework": FRAMEWORKS, **(levels or {})},
        "derived_variables": derived or {},
    }


def truth_of(table):
    return dict(zip(table["term"], table["truth"], strict=True))


RUPTURE_TERMS = [
    "(Intercept)",
    "frameworkbehavioral",
    "frameworkcognitive",
    "session_c",
    "frameworkbehavioral:session_c",
    "frameworkcognitive:session_c",
]
RUPTURE_SPEC = spec(
    "ruptures ~ framework * session_c + offset(log(minutes)) + (1 | client)",
    {"session_c": {"centre": CENTRE}},
)


def rupture_cell(framework, share=1.0):
    """log rate per minute at session_c = 0 (session 6.25) and slope per session."""
    b0 = P["ruptures"]["rupture_log_rate"]["value"][framework]
    slope = P["ruptures"]["rupture_session_slope"]["value"][framework]
    return b0 + slope * (CENTRE - 8.5) / 7.5 + np.log(share), slope / 7.5


def test_rupture_truth_in_the_fitted_parametrisation():
    truth = truth_of(true_coefficients(TRUTH, "ruptures", RUPTURE_SPEC, RUPTURE_TERMS))
    (a_p, s_p), (a_b, s_b), (a_c, s_c) = (rupture_cell(f) for f in FRAMEWORKS)
    # e.g. psychoanalytic: -4.2687 + 0.1 * (6.25 - 8.5) / 7.5 = -4.2987, slope 0.1 / 7.5
    assert truth["(Intercept)"] == pytest.approx(-4.2987, abs=1e-12)
    expected = [a_p, a_b - a_p, a_c - a_p, s_p, s_b - s_p, s_c - s_p]
    np.testing.assert_allclose([truth[t] for t in RUPTURE_TERMS], expected, atol=1e-10)


@pytest.mark.parametrize("kind", ["withdrawal", "confrontation"])
def test_rupture_type_truth_thins_the_rate(kind):
    probability = P["ruptures"]["withdrawal_prob"]["value"]
    share = {f: probability[f] if kind == "withdrawal" else 1 - probability[f] for f in FRAMEWORKS}
    truth = truth_of(true_coefficients(TRUTH, f"rupture_{kind}", RUPTURE_SPEC, RUPTURE_TERMS))
    (a_p, s_p), (a_b, _), (a_c, s_c) = (rupture_cell(f, share[f]) for f in FRAMEWORKS)
    # psychoanalytic withdrawal: log(0.75) below the rupture rate; slopes unchanged
    assert truth["(Intercept)"] == pytest.approx(a_p, abs=1e-10)
    assert truth["frameworkbehavioral"] == pytest.approx(a_b - a_p, abs=1e-10)
    assert truth["frameworkcognitive:session_c"] == pytest.approx(s_c - s_p, abs=1e-10)


def test_resistance_profile_truth_cell_by_cell():
    g = P["resistance"]["resistance_log_rate"]["value"]
    form_of = P["resistance"]["form_of"]["value"]
    parts = list(form_of)  # the profile's levels: the types' construct names
    assert {"resistance_arguing", "covert_distancing", "disengagement_homework"} <= set(parts)
    terms = ["(Intercept)", "frameworkbehavioral", "frameworkcognitive"]
    terms += [f"profile_type{t}" for t in parts[1:]]
    terms += [f"framework{f}:profile_type{t}" for t in parts[1:] for f in FRAMEWORKS[1:]]
    model = spec(
        "profile_count ~ framework * profile_type + offset(log(minutes)) + (1 | client)",
        levels={"profile_type": parts},
    )
    truth = truth_of(true_coefficients(TRUTH, "resistance", model, terms))
    first = parts[0]
    assert truth["(Intercept)"] == pytest.approx(g["psychoanalytic"][first])
    assert truth["frameworkcognitive"] == pytest.approx(
        g["cognitive"][first] - g["psychoanalytic"][first]
    )
    for t in parts[1:]:
        assert truth[f"profile_type{t}"] == pytest.approx(
            g["psychoanalytic"][t] - g["psychoanalytic"][first]
        )
        assert truth[f"frameworkbehavioral:profile_type{t}"] == pytest.approx(
            g["behavioral"][t] - g["behavioral"][first] - g["psychoanalytic"][t]
            + g["psychoanalytic"][first]
        )  # fmt: skip


def test_a_type_without_a_true_rate_is_named():
    model = spec("profile_count ~ framework * profile_type + (1 | client)",
                 levels={"profile_type": ["resistance_arguing", "not_simulated"]})  # fmt: skip
    terms = ["(Intercept)", "frameworkbehavioral", "frameworkcognitive",
             "profile_typenot_simulated", "frameworkbehavioral:profile_typenot_simulated",
             "frameworkcognitive:profile_typenot_simulated"]  # fmt: skip
    with pytest.raises(RecoveryError, match="no rate of type 'not_simulated'"):
        true_coefficients(TRUTH, "resistance", model, terms)


#: A hand-made truth of two frameworks and two forms: form "overt" of types a (0.2 per
#: 50 minutes in psychoanalytic, 0.5 in cognitive) and b (0.3, 0.1), form "covert" of type
#: c (0.6, 0.2). A form's count is the sum of its types' Poisson counts, which share the
#: random effects, so its true log rate per minute is exactly log(sum of the types' rates).
HAND_RATES = {
    "psychoanalytic": {"a": 0.2, "b": 0.3, "c": 0.6},
    "cognitive": {"a": 0.5, "b": 0.1, "c": 0.2},
}
HAND_FORMS = {"overt": ["a", "b"], "covert": ["c"]}


def hand_truth():
    log_rate = {f: {t: float(np.log(r / 50)) for t, r in rates.items()}
                for f, rates in HAND_RATES.items()}  # fmt: skip
    form_rate = {
        f: {form: float(np.log(sum(np.exp(log_rate[f][t]) for t in types)))
            for form, types in HAND_FORMS.items()}
        for f in HAND_RATES
    }  # fmt: skip
    return {"simulated": True, "parameters": {"resistance": {
        "resistance_log_rate": {"value": log_rate},
        "form_log_rate": {"value": form_rate},
    }}}  # fmt: skip


FORMS_TERMS = [
    "(Intercept)",
    "frameworkcognitive",
    "profile_formcovert",
    "frameworkcognitive:profile_formcovert",
]


def test_resistance_forms_truth_is_the_log_of_the_summed_type_rates():
    model = {
        "formula": "profile_count ~ framework * profile_form + offset(log(minutes))"
        " + (1 | therapist/client)",
        "factor_levels": {
            "framework": ["psychoanalytic", "cognitive"],
            "profile_form": ["overt", "covert"],
        },  # fmt: skip
        "derived_variables": {},
    }
    truth = truth_of(true_coefficients(hand_truth(), "resistance_forms", model, FORMS_TERMS))
    # by hand: overt in psychoanalytic (0.2 + 0.3) / 50 per minute, in cognitive 0.6 / 50;
    # covert 0.6 / 50 and 0.2 / 50
    assert truth["(Intercept)"] == pytest.approx(np.log(0.5 / 50), abs=1e-12)
    assert truth["frameworkcognitive"] == pytest.approx(np.log(0.6 / 0.5), abs=1e-12)
    assert truth["profile_formcovert"] == pytest.approx(np.log(0.6 / 0.5), abs=1e-12)
    assert truth["frameworkcognitive:profile_formcovert"] == pytest.approx(
        np.log(0.2 / 0.6) - np.log(0.6 / 0.5), abs=1e-12
    )
    # the cognitive vs psychoanalytic rate ratio of covert signs: 0.2 / 0.6
    assert np.exp(truth["frameworkcognitive"] + truth["frameworkcognitive:profile_formcovert"]) == (
        pytest.approx(1 / 3)
    )


def test_resistance_forms_sum_of_poisson_types_fits_to_the_form_truth():
    """Counts of each type drawn from the hand-made truth, summed into forms; statsmodels'
    Poisson GLM of the form counts recovers the form truth (no random effects drawn)."""
    rng = np.random.default_rng(2026)
    rows = []
    for framework, rates in HAND_RATES.items():
        for _ in range(4000):
            minutes = float(rng.integers(40, 61))
            counts = {t: rng.poisson(r / 50 * minutes) for t, r in rates.items()}
            for form, types in HAND_FORMS.items():
                rows.append((framework, form, minutes, sum(counts[t] for t in types)))
    data = pd.DataFrame(rows, columns=["framework", "profile_form", "minutes", "profile_count"])
    data["framework"] = pd.Categorical(data["framework"], ["psychoanalytic", "cognitive"])
    data["profile_form"] = pd.Categorical(data["profile_form"], ["overt", "covert"])
    fit = sm.GLM.from_formula(
        "profile_count ~ framework * profile_form", data, family=sm.families.Poisson(),
        offset=np.log(data["minutes"]),
    ).fit()  # fmt: skip
    model = {"formula": "profile_count ~ framework * profile_form + offset(log(minutes))",
             "factor_levels": {"framework": ["psychoanalytic", "cognitive"],
                               "profile_form": ["overt", "covert"]},
             "derived_variables": {}}  # fmt: skip
    truth = true_coefficients(hand_truth(), "resistance_forms", model, FORMS_TERMS)["truth"]
    z = (fit.params.to_numpy() - truth.to_numpy()) / fit.bse.to_numpy()
    assert np.all(np.abs(z) < 3), z  # seeded: z = -1.75, -0.54, 1.53, 1.99


def test_resistance_forms_without_a_form_truth_is_named():
    model = {"formula": "profile_count ~ framework * profile_form",
             "factor_levels": {"framework": ["psychoanalytic", "cognitive"],
                               "profile_form": ["overt", "realistic"]},
             "derived_variables": {}}  # fmt: skip
    terms = [t.replace("covert", "realistic") for t in FORMS_TERMS]
    with pytest.raises(RecoveryError, match="no rate of form 'realistic'"):
        true_coefficients(hand_truth(), "resistance_forms", model, terms)
    no_forms = hand_truth()
    del no_forms["parameters"]["resistance"]["form_log_rate"]
    with pytest.raises(RecoveryError, match="no parameters.resistance.form_log_rate"):
        true_coefficients(no_forms, "resistance_forms", model, terms)


def test_dropout_hazard_truth_and_the_between_slope_without_one():
    terms = [
        "(Intercept)",
        "frameworkbehavioral",
        "frameworkcognitive",
        "log_time",
        "unrepaired_within",
        "frameworkbehavioral:unrepaired_within",
        "frameworkcognitive:unrepaired_within",
        "unrepaired_between",
    ]
    model = spec(
        "event ~ log_time + framework * unrepaired_within + unrepaired_between + (1 | therapist)",
        {"unrepaired": {"grand_mean": GRAND_MEAN}},
    )
    table = true_coefficients(TRUTH, "dropout", model, terms)
    truth = truth_of(table)
    d0 = P["dropout"]["dropout_logit"]["value"]
    beta = P["dropout"]["dropout_per_unrepaired"]["value"]
    # at within = between = 0 a client has grand_mean unrepaired ruptures per session:
    # psychoanalytic -3.6 + 0.3 * 0.3 = -3.51
    assert truth["(Intercept)"] == pytest.approx(-3.51, abs=1e-10)
    assert truth["frameworkcognitive"] == pytest.approx(
        d0["cognitive"] + beta["cognitive"] * GRAND_MEAN - (-3.51), abs=1e-10
    )
    assert truth["log_time"] == pytest.approx(-0.4)
    assert truth["unrepaired_within"] == pytest.approx(0.3)
    assert truth["frameworkcognitive:unrepaired_within"] == pytest.approx(0.8 - 0.3)
    assert np.isnan(truth["unrepaired_between"])
    note = table.set_index("term").loc["unrepaired_between", "note"]
    assert note == (
        "no single true value: the generating effect of unrepaired_between differs by framework"
    )


def test_alliance_truth_with_within_and_between_parts():
    terms = [
        "(Intercept)",
        "frameworkbehavioral",
        "frameworkcognitive",
        "session_c",
        "frameworkbehavioral:session_c",
        "frameworkcognitive:session_c",
        "unrepaired_within",
        "unrepaired_between",
    ]
    model = spec(
        "alliance ~ framework * session_c + unrepaired_within + unrepaired_between + (1 | client)",
        {"session_c": {"centre": CENTRE}, "unrepaired": {"grand_mean": GRAND_MEAN}},
    )
    truth = truth_of(true_coefficients(TRUTH, "alliance", model, terms))
    # psychoanalytic: 4.7 + 0.25 * (6.25 - 8.5) / 7.5 - 0.25 * 0.3
    assert truth["(Intercept)"] == pytest.approx(4.7 + 0.25 * -0.3 - 0.075, abs=1e-10)
    assert truth["session_c"] == pytest.approx(0.25 / 7.5)
    assert truth["unrepaired_within"] == pytest.approx(-0.25)
    assert truth["unrepaired_between"] == pytest.approx(-0.25)


def test_conversion_agrees_with_an_independent_poisson_glm():
    """Counts from the generating rupture model (random effects at 0, Poisson instead of
    NB2, which leaves the mean unchanged), fitted by statsmodels in the workflow's
    parametrisation: estimates within 4 standard errors of the converted truth."""
    rng = np.random.default_rng(2026)
    n = 60_000
    framework = rng.choice(FRAMEWORKS, n)
    session = rng.integers(1, 17, n).astype(float)
    minutes = rng.integers(30, 61, n).astype(float)
    b0 = pd.Series(framework).map(P["ruptures"]["rupture_log_rate"]["value"]).to_numpy()
    slope = pd.Series(framework).map(P["ruptures"]["rupture_session_slope"]["value"]).to_numpy()
    counts = rng.poisson(np.exp(b0 + slope * (session - 8.5) / 7.5 + np.log(minutes)))
    data = pd.DataFrame(
        {
            "y": counts,
            "framework": pd.Categorical(framework, FRAMEWORKS),
            "session_c": session - CENTRE,
        }
    )
    glm = sm.GLM.from_formula(
        "y ~ framework * session_c", data, family=sm.families.Poisson(), offset=np.log(minutes)
    ).fit()
    truth = true_coefficients(TRUTH, "ruptures", RUPTURE_SPEC, RUPTURE_TERMS)["truth"]
    z = (np.asarray(glm.params) - truth.to_numpy()) / np.asarray(glm.bse)
    assert np.all(np.abs(z) < 4), z


def test_process_needing_a_predictor_the_model_lacks_is_named():
    model = spec("ruptures ~ framework + (1 | client)")
    with pytest.raises(RecoveryError, match="process 'ruptures' depends on session"):
        true_coefficients(TRUTH, "ruptures", model, RUPTURE_TERMS[:3])
    with pytest.raises(RecoveryError, match="unknown process 'homework'"):
        true_coefficients(TRUTH, "homework", model, RUPTURE_TERMS[:3])


def test_load_truth_refuses_other_files(tmp_path):
    path = tmp_path / "truth.json"
    path.write_text(json.dumps({"parameters": {}}))
    with pytest.raises(RecoveryError, match="not the truth file of a simulated study"):
        load_truth(path)
    with pytest.raises(RecoveryError, match="cannot read the truth file"):
        load_truth(tmp_path / "missing.json")


# --- tables -----------------------------------------------------------------------------


def fitted(estimates, half_width, flags=()):
    coefficients = pd.DataFrame({"term": RUPTURE_TERMS, "estimate": estimates})
    coefficients["ci_low"] = coefficients["estimate"] - half_width
    coefficients["ci_high"] = coefficients["estimate"] + half_width
    return {
        "process": "ruptures",
        "spec": RUPTURE_SPEC,
        "coefficients": coefficients,
        "fit": {"flags": list(flags), "fitted": True},
    }


def test_recovery_table_and_coverage():
    truth = true_coefficients(TRUTH, "ruptures", RUPTURE_SPEC, RUPTURE_TERMS)["truth"]
    shifted = truth.to_numpy() + np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.5])  # last misses
    table = recovery_table(
        TRUTH,
        {
            "rupture_frequency": fitted(shifted, 0.1, flags=["singular fit"]),
            "alliance_trajectory": {
                "process": "alliance",
                "spec": {},
                "coefficients": None,
                "fit": {"fitted": False, "reason": "no alliance ratings"},
            },
        },
    )
    assert table["inside_ci"].tolist()[:6] == [True] * 5 + [False]
    assert (table["flags"].iloc[:6] == "singular fit").all()
    assert table.iloc[6][["model", "flags", "note"]].tolist() == [
        "alliance_trajectory",
        "not fitted",
        "no alliance ratings",
    ]
    summary = recovery_summary(table)
    assert summary["fixed_effects_with_truth"] == 6 and summary["inside_ci"] == 5
    assert summary["share_inside_ci"] == pytest.approx(5 / 6)
    assert summary["meets_target"] is False  # 0.83 < 0.9
    assert summary["models_with_flags"] == {
        "rupture_frequency": "singular fit",
        "alliance_trajectory": "not fitted",
    }


def test_repair_pattern_direction_and_strongest_framework():
    contrasts = pd.DataFrame(
        {
            "kind": "simple_slope",
            "variable": "unrepaired_within",
            "level": FRAMEWORKS,
            "estimate": [0.57, 0.42, 0.79],
            "ci_low": [0.04, -0.23, 0.12],
            "ci_high": [1.11, 1.07, 1.46],
        }
    )
    model = spec(
        "event ~ log_time + framework * unrepaired_within + (1 | therapist)",
        {"unrepaired": {"grand_mean": GRAND_MEAN}},
    )
    pattern = repair_pattern(TRUTH, "dropout", model, contrasts, "unrepaired_within")
    # truth per framework: 0.3, 0.5, 0.8 (log odds ratio per unrepaired rupture)
    np.testing.assert_allclose([r["truth"] for r in pattern["by_framework"]], [0.3, 0.5, 0.8])
    assert pattern["signs_match"] is True
    assert (pattern["strongest_true"], pattern["strongest_estimated"]) == ("cognitive", "cognitive")
    assert pattern["pattern_matches"] is True
    assert pattern["order_estimated"] == ["cognitive", "psychoanalytic", "behavioral"]
    flipped = contrasts.assign(estimate=[0.57, -0.42, 0.3])
    pattern = repair_pattern(TRUTH, "dropout", model, flipped, "unrepaired_within")
    assert pattern["signs_match"] is False and pattern["pattern_matches"] is False
    with pytest.raises(RecoveryError, match="no simple slopes of 'repair_rate'"):
        repair_pattern(TRUTH, "dropout", model, contrasts, "repair_rate")


# --------------------------------------------------------------------------- responses

RESPONSE_FORMULA = (
    "repaired ~ framework * (response_calm + response_reframe) + (1 | therapist/client)"
)


def test_response_truth_in_the_fitted_parametrisation():
    """Treatment coding with psychoanalytic as reference, from truth.json's
    rupture_model_intercept a_f and response_log_or b_fj: (Intercept) = a_psy,
    framework<f> = a_f - a_psy, response_j = b_psy,j, framework<f>:response_j =
    b_f,j - b_psy,j."""
    a = P["responses"]["rupture_model_intercept"]["value"]
    b = P["responses"]["response_log_or"]["value"]
    terms = [
        "(Intercept)",
        "frameworkbehavioral",
        "frameworkcognitive",
        "response_calm",
        "frameworkbehavioral:response_calm",
        "frameworkcognitive:response_calm",
        "response_reframe",
        "frameworkbehavioral:response_reframe",
        "frameworkcognitive:response_reframe",
    ]
    truth = true_coefficients(TRUTH, "responses", spec(RESPONSE_FORMULA), terms)
    expected = [
        a["psychoanalytic"],
        a["behavioral"] - a["psychoanalytic"],
        a["cognitive"] - a["psychoanalytic"],
        b["psychoanalytic"]["response_calm"],
        b["behavioral"]["response_calm"] - b["psychoanalytic"]["response_calm"],
        b["cognitive"]["response_calm"] - b["psychoanalytic"]["response_calm"],
        b["psychoanalytic"]["response_reframe"],
        b["behavioral"]["response_reframe"] - b["psychoanalytic"]["response_reframe"],
        b["cognitive"]["response_reframe"] - b["psychoanalytic"]["response_reframe"],
    ]
    np.testing.assert_allclose(truth["truth"], expected, atol=1e-10)
    # the example's values as simulate.py states them (psychoanalytic, behavioral,
    # cognitive): reframing 1.1, 0.0, 0.3
    assert [b[f]["response_reframe"] for f in FRAMEWORKS] == [1.1, 0.0, 0.3]


def test_response_truth_with_all_nine_responses_and_a_long_grid():
    """Nine 0/1 predictors and three frameworks: 3 x 3^9 grid rows, solved quickly."""
    responses = list(P["responses"]["response_log_or"]["value"]["cognitive"])
    assert len(responses) == 9
    formula = f"repaired ~ framework * ({' + '.join(responses)}) + (1 | therapist/client)"
    terms = ["(Intercept)", "frameworkbehavioral", "frameworkcognitive"]
    for response in responses:
        terms += [response, f"frameworkbehavioral:{response}", f"frameworkcognitive:{response}"]
    truth = true_coefficients(TRUTH, "responses", spec(formula), terms).set_index("term")
    b = P["responses"]["response_log_or"]["value"]
    for response in responses:
        slope = truth.loc[response, "truth"] + truth.loc[f"frameworkcognitive:{response}", "truth"]
        assert slope == pytest.approx(b["cognitive"][response], abs=1e-10)


def test_response_truth_without_its_parameters_is_named():
    truth = {**TRUTH, "parameters": {k: v for k, v in P.items() if k != "responses"}}
    formula = "repaired ~ framework + response_calm + (1 | client)"
    terms = ["(Intercept)", "frameworkbehavioral", "frameworkcognitive", "response_calm"]
    with pytest.raises(RecoveryError, match="no parameters.responses.rupture_model_intercept"):
        true_coefficients(truth, "responses", spec(formula), terms)
