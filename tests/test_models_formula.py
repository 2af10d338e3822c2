"""Parsing lme4-style formulas (expected parts written out by hand from lme4's rules:
``(1 | a/b)`` is ``(1 | a) + (1 | a:b)``; ``(x || g)`` is ``(1 | g) + (0 + x | g)``)."""

import pytest

from resistance_outcomes.models.formula import (
    ModelSpecError,
    ParsedFormula,
    RandomTerm,
    parse_formula,
)


def test_random_intercept_and_correlated_slope():
    f = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert f == ParsedFormula(
        formula="Reaction ~ Days + (Days | Subject)",
        response="Reaction",
        fixed="Days",
        random=(RandomTerm("Days", "Subject"),),
        offsets=(),
    )


def test_nesting_expands_to_outer_and_interaction():
    f = parse_formula("strength ~ 1 + (1 | batch/cask)")
    assert f.fixed == "1"
    assert f.random == (RandomTerm("1", "batch"), RandomTerm("1", "batch:cask"))


def test_three_level_nesting():
    f = parse_formula("y ~ x + (1 | site/therapist/client)")
    assert [t.group for t in f.random] == ["site", "site:therapist", "site:therapist:client"]
    assert f.random[2].group_columns == ("site", "therapist", "client")


def test_crossed_factors_are_separate_terms():
    f = parse_formula("diameter ~ 1 + (1 | plate) + (1 | sample)")
    assert f.random == (RandomTerm("1", "plate"), RandomTerm("1", "sample"))


def test_correlated_slopes_keep_the_whole_left_side():
    f = parse_formula("y ~ x + z + (1 + x + z | g)")
    assert f.random == (RandomTerm("1 + x + z", "g"),)
    assert f.fixed == "x + z"


def test_double_bar_gives_uncorrelated_terms():
    f = parse_formula("y ~ x + (1 + x || g)")
    assert f.random == (RandomTerm("1", "g"), RandomTerm("0 + x", "g"))


def test_offset_is_separated_from_the_fixed_part():
    f = parse_formula("ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist)")
    assert f.offsets == ("log(minutes)",)
    assert f.fixed == "framework * session_c"
    assert f.random == (RandomTerm("1", "therapist"),)


def test_cbind_response_is_kept_whole():
    f = parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert f.response == "cbind(incidence, size - incidence)"
    assert f.fixed == "period"


def test_transformations_and_factors_pass_through_to_patsy():
    f = parse_formula("log(y) ~ C(x) + log(z) + I(w**2) + np.sqrt(v) + (1 | g)")
    assert f.response == "log(y)"
    assert f.fixed == "C(x) + log(z) + I(w**2) + np.sqrt(v)"


def test_r_power_inside_I_becomes_python_power():
    assert parse_formula("y ~ x + I(x^2) + (1 | g)").fixed == "x + I(x**2)"


def test_removing_the_intercept_is_kept():
    assert parse_formula("y ~ x - 1 + (1 | g)").fixed == "x - 1"
    assert parse_formula("y ~ 0 + x + (1 | g)").fixed == "0 + x"


def test_no_fixed_terms_means_intercept_only():
    assert parse_formula("y ~ (1 | g)").fixed == "1"


def test_parenthesised_fixed_term_is_not_random():
    f = parse_formula("y ~ (a + b):c + (1 | g)")
    assert f.fixed == "(a + b):c"
    assert len(f.random) == 1


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y ~ x + (1 | g", "unbalanced parentheses"),
        ("y x + (1 | g)", "exactly one '~'"),
        ("y ~ x + ( | g)", "needs a model left of '|'"),
        ("y ~ x + (1 | )", "needs a model left of '|'"),
        ("y ~ x + (1 | log(g))", "must be column names"),
        ("y ~ x + (1 | g) + (1 | g)", "appears twice"),
        ("~ x", "needs a response"),
        ("y ~ x +", "ends with an operator"),
    ],
)
def test_bad_formulas_raise_readable_errors(formula, message):
    with pytest.raises(ModelSpecError, match=message):
        parse_formula(formula)
