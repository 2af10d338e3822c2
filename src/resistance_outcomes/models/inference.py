"""Inference for fitted mixed models: Wald tables, Satterthwaite degrees of freedom,
Nakagawa R², ICCs, likelihood-ratio tests and convergence checks.

Numerical derivatives use central differences with Richardson extrapolation (as R's
numDeriv, which lmerTest uses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.stats as st

from .families import get_family
from .formula import ModelSpecError

__all__ = [
    "check_convergence",
    "icc",
    "linear_contrasts",
    "lrt",
    "nakagawa_r2",
    "satterthwaite",
    "wald_table",
]


# --- Wald tables ------------------------------------------------------------------------


def wald_table(
    terms: Sequence[str],
    estimate: np.ndarray,
    std_error: np.ndarray,
    df: np.ndarray | None = None,
    exponentiate: bool = False,
) -> pd.DataFrame:
    """Tidy Wald tests and 95% confidence intervals, one row per term.

    Parameters
    ----------
    terms : sequence of str
    estimate, std_error : numpy.ndarray
    df : numpy.ndarray, optional
        Degrees of freedom for t tests; z tests when omitted (df column empty).
    exponentiate : bool
        Fill exp_estimate, exp_ci_low, exp_ci_high (odds or rate ratios); empty otherwise.

    Returns
    -------
    pandas.DataFrame
        Columns term, estimate, std_error, statistic, df, p_value, ci_low, ci_high,
        exp_estimate, exp_ci_low, exp_ci_high.

    Examples
    --------
    >>> t = wald_table(["x"], np.array([1.96]), np.array([1.0]))
    >>> round(float(t.p_value[0]), 4), round(float(t.ci_low[0]), 4)
    (0.05, 0.0)
    """
    estimate = np.asarray(estimate, dtype=float)
    std_error = np.asarray(std_error, dtype=float)
    statistic = estimate / std_error
    if df is None:
        df_col = np.full(len(estimate), np.nan)
        p_value = 2 * st.norm.sf(np.abs(statistic))
        quantile = st.norm.ppf(0.975)
    else:
        df_col = np.asarray(df, dtype=float)
        p_value = 2 * st.t.sf(np.abs(statistic), df_col)
        quantile = st.t.ppf(0.975, df_col)
    table = pd.DataFrame(
        {
            "term": list(terms),
            "estimate": estimate,
            "std_error": std_error,
            "statistic": statistic,
            "df": df_col,
            "p_value": p_value,
            "ci_low": estimate - quantile * std_error,
            "ci_high": estimate + quantile * std_error,
        }
    )
    for column in ("estimate", "ci_low", "ci_high"):
        values = table[column].to_numpy()
        table[f"exp_{column}"] = np.exp(values) if exponentiate else np.nan
    return table


def linear_contrasts(result, contrasts: pd.DataFrame | np.ndarray, names=None) -> pd.DataFrame:
    """Wald tests of linear combinations ``L beta`` (e.g. per-framework simple slopes).

    For linear mixed models the degrees of freedom are Satterthwaite's for each contrast
    (lmerTest's ``contest1D``); otherwise z tests.

    Parameters
    ----------
    result : MixedResult
    contrasts : pandas.DataFrame or numpy.ndarray
        One row per contrast, one column per fixed effect (a DataFrame's columns are
        matched to the coefficient names; missing ones count as zero).
    names : sequence of str, optional
        Row names; the DataFrame's index otherwise.

    Returns
    -------
    pandas.DataFrame
        As :func:`wald_table`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> L = pd.DataFrame({"(Intercept)": [1.0], "x": [2.0]}, index=["y at x = 2"])
    >>> linear_contrasts(fit, L)[["term", "estimate", "std_error"]].round(3)
             term  estimate  std_error
    0  y at x = 2     2.787      0.426
    """
    names_fixed = result.design.fixed_names
    if isinstance(contrasts, pd.DataFrame):
        unknown = [c for c in contrasts.columns if c not in names_fixed]
        if unknown:
            raise ModelSpecError(
                f"contrast columns {unknown} are not fixed effects; use some of {names_fixed}"
            )
        names = list(contrasts.index.astype(str)) if names is None else list(names)
        matrix = contrasts.reindex(columns=names_fixed, fill_value=0.0).to_numpy(dtype=float)
    else:
        matrix = np.atleast_2d(np.asarray(contrasts, dtype=float))
        names = [f"contrast{i + 1}" for i in range(len(matrix))] if names is None else names
    if matrix.shape[1] != len(names_fixed):
        raise ModelSpecError(
            f"contrast matrix has {matrix.shape[1]} columns; the model has "
            f"{len(names_fixed)} fixed effects ({', '.join(names_fixed)})"
        )
    estimate = matrix @ result.beta
    variance = np.einsum("ij,jk,ik->i", matrix, result.vcov, matrix)
    df = None
    if result.df is not None and "vcov_jacobian" in result.extra:
        df = _satterthwaite_df(
            matrix, result.vcov, result.extra["vcov_jacobian"], result.extra["varpar_vcov"]
        )
    return wald_table(
        names, estimate, np.sqrt(variance), df, exponentiate=get_family(result.family).exponentiate
    )


# --- numerical derivatives --------------------------------------------------------------


def _steps(x: np.ndarray, relative: float) -> np.ndarray:
    """Base step per coordinate: relative to |x|, absolute near zero (as numDeriv)."""
    return np.where(np.abs(x) > 1e-4, relative * np.abs(x), relative)


def _richardson(estimates: list) -> np.ndarray:
    """Extrapolate O(h^2) central-difference estimates at h, h/2, h/4, ... to h -> 0."""
    table = [np.asarray(e, dtype=float) for e in estimates]
    for m in range(1, len(table)):
        factor = 4.0**m
        table = [(factor * table[i + 1] - table[i]) / (factor - 1) for i in range(len(table) - 1)]
    return table[0]


def numerical_jacobian(fun: Callable, x, relative: float = 1e-3, levels: int = 4) -> np.ndarray:
    """Derivatives of ``fun`` (scalar- or array-valued) at ``x``; first axis indexes ``x``."""
    x = np.asarray(x, dtype=float)
    base = _steps(x, relative)
    out = []
    for i in range(len(x)):
        estimates = []
        for k in range(levels):
            h = base[i] / 2**k
            step = np.zeros_like(x)
            step[i] = h
            estimates.append((np.asarray(fun(x + step)) - np.asarray(fun(x - step))) / (2 * h))
        out.append(_richardson(estimates))
    return np.array(out)


def numerical_hessian(fun: Callable, x, relative: float = 0.02, levels: int = 4) -> np.ndarray:
    """Hessian of a scalar function by second central differences with extrapolation."""
    x = np.asarray(x, dtype=float)
    m = len(x)
    base = _steps(x, relative)
    f0 = fun(x)
    hess = np.zeros((m, m))
    for i in range(m):
        for j in range(i + 1):
            estimates = []
            for k in range(levels):
                hi, hj = base[i] / 2**k, base[j] / 2**k
                ei, ej = np.zeros(m), np.zeros(m)
                ei[i], ej[j] = hi, hj
                if i == j:
                    estimates.append((fun(x + ei) - 2 * f0 + fun(x - ei)) / hi**2)
                else:
                    estimates.append(
                        (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej))
                        / (4 * hi * hj)
                    )
            hess[i, j] = hess[j, i] = _richardson(estimates)
    return hess


# --- convergence ------------------------------------------------------------------------


def check_convergence(
    fun: Callable,
    theta: np.ndarray,
    lower: np.ndarray,
    grad_tol: float = 2e-3,
    gradient: Callable | None = None,
    hessian: np.ndarray | None = None,
) -> dict:
    """Gradient and Hessian checks at an optimum, as lme4's ``checkConv``.

    Parameters at a zero lower bound are excluded from the Hessian; for them the one-sided
    derivative must not point outside (it must be >= -grad_tol). For the others the
    scaled gradient ``solve(chol(H), g)`` must be below ``grad_tol`` in absolute value and
    the Hessian positive definite. With ``gradient`` (the exact gradient of ``fun``) the
    gradient is exact and the Hessian its central differences, otherwise both are
    numerical derivatives of ``fun``; a given ``hessian`` (all parameters) is used as it is.

    Returns
    -------
    dict
        ok (bool), gradient (list), hessian_eigenvalues (list), messages (list of str).

    Examples
    --------
    >>> out = check_convergence(lambda t: float((t[0] - 1) ** 2), np.array([1.0]),
    ...                         np.array([0.0]))
    >>> out["ok"]
    True
    """
    exact = gradient
    theta = np.asarray(theta, dtype=float)
    at_bound = (lower == 0) & (theta <= 1e-8)
    free = ~at_bound
    messages: list[str] = []
    gradient = np.zeros_like(theta)
    f0 = fun(theta)
    for i in np.flatnonzero(at_bound):
        step = np.zeros_like(theta)
        step[i] = 1e-5
        gradient[i] = (fun(theta + step) - f0) / 1e-5
    ok = bool(np.all(gradient[at_bound] >= -grad_tol))
    if not ok:
        messages.append("convergence: the deviance decreases away from a zero variance")
    eigenvalues: list[float] = []
    if free.any():
        idx = np.flatnonzero(free)

        def sub(t_free):
            full = theta.copy()
            full[idx] = t_free
            return fun(full)

        if exact is None:
            g = numerical_jacobian(sub, theta[idx], relative=1e-4, levels=2)
            hess = numerical_hessian(sub, theta[idx])
        else:

            def sub_gradient(t_free):
                full = theta.copy()
                full[idx] = t_free
                return np.asarray(exact(full))[idx]

            g = sub_gradient(theta[idx])
            if hessian is None:
                hess = _symmetric(
                    numerical_jacobian(sub_gradient, theta[idx], relative=1e-4, levels=1)
                )
            else:
                hess = np.asarray(hessian)[np.ix_(idx, idx)]
        gradient[idx] = g
        eigenvalues = np.linalg.eigvalsh(hess).tolist()
        if min(eigenvalues) <= 0:
            ok = False
            messages.append(
                "convergence: Hessian of the deviance is not positive definite "
                f"(eigenvalues {np.round(eigenvalues, 6).tolist()})"
            )
        else:
            scaled = np.linalg.solve(np.linalg.cholesky(hess).T, g)
            if np.max(np.abs(scaled)) > grad_tol:
                ok = False
                messages.append(
                    f"convergence: scaled gradient {np.max(np.abs(scaled)):.2g} "
                    f"exceeds {grad_tol:g}"
                )
    return {
        "ok": ok,
        "gradient": gradient.tolist(),
        "hessian_eigenvalues": eigenvalues,
        "messages": messages,
    }


# --- Satterthwaite ----------------------------------------------------------------------


def satterthwaite(
    deviance: Callable,
    vcov: Callable,
    varpar: np.ndarray,
    hessian: np.ndarray | None = None,
    vcov_jacobian: Callable | None = None,
) -> tuple[np.ndarray | None, dict]:
    """Satterthwaite degrees of freedom for each fixed effect, as lmerTest.

    ``varpar`` holds the variance parameters ``(theta, sigma)``. Their asymptotic
    covariance is ``A = 2 H^(-1)`` with ``H`` the Hessian of the (RE)ML deviance in
    ``varpar``; with ``C(varpar)`` the covariance of the fixed effects and ``g`` the
    gradient of ``C_jj`` with respect to ``varpar``, ``df_j = 2 C_jj^2 / (g' A g)``
    (Kuznetsova, Brockhoff & Christensen, 2017, J Stat Softw 82(13)).

    Parameters
    ----------
    deviance : callable
        ``varpar -> deviance`` (not profiled over sigma).
    vcov : callable
        ``varpar -> covariance matrix of the fixed effects``.
    varpar : numpy.ndarray
    hessian : numpy.ndarray, optional
        Hessian of ``deviance`` at ``varpar`` when known (e.g. central differences of
        an exact gradient); otherwise second differences of ``deviance``.
    vcov_jacobian : callable, optional
        ``varpar -> (len(varpar), p, p)`` exact derivatives of ``vcov`` (otherwise
        central differences).

    Returns
    -------
    df : numpy.ndarray or None
        None when the Hessian is not positive definite (z tests are then used).
    extra : dict
        varpar, varpar_vcov, vcov_jacobian and messages.

    Examples
    --------
    ``fit_lmm`` stores the result in the ``df`` column of ``coefficients``:

    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> fit.coefficients[["term", "df"]].round(2)
              term     df
    0  (Intercept)   6.97
    1            x  44.23
    """
    varpar = np.asarray(varpar, dtype=float)
    hess = numerical_hessian(deviance, varpar) if hessian is None else np.asarray(hessian)
    messages = []
    if np.min(np.linalg.eigvalsh(hess)) <= 0:
        messages.append(
            "Satterthwaite df unavailable: the Hessian of the deviance in the "
            "variance parameters is not positive definite; z tests are reported"
        )
        return None, {"messages": messages}
    varpar_vcov = 2 * np.linalg.inv(hess)
    jacobian = numerical_jacobian(vcov, varpar) if vcov_jacobian is None else vcov_jacobian(varpar)
    c = vcov(varpar)
    df = _satterthwaite_df(np.eye(len(c)), c, jacobian, varpar_vcov)
    return df, {
        "varpar": varpar,
        "varpar_vcov": varpar_vcov,
        "vcov_jacobian": jacobian,
        "messages": messages,
    }


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2


def _satterthwaite_df(contrasts, c, jacobian, varpar_vcov) -> np.ndarray:
    var = np.einsum("ij,jk,ik->i", contrasts, c, contrasts)
    grad = np.einsum("ij,mjk,ik->im", contrasts, jacobian, contrasts)
    return 2 * var**2 / np.einsum("im,mn,in->i", grad, varpar_vcov, grad)


# --- R² and ICC -------------------------------------------------------------------------


def nakagawa_r2(result) -> dict:
    """Marginal and conditional R² and ICCs (Nakagawa, Johnson & Schielzeth, 2017).

    As ``performance::r2_nakagawa`` (performance 0.10, insight 0.18):

    * fixed-effects variance: sample variance (n - 1) of ``X beta``;
    * random-effects variance: for each term whose number of levels differs from the
      number of observations, ``trace(Sigma Z_t' Z_t) / n`` (Johnson 2014: the mean over
      observations of ``z_i' Sigma z_i``, so random slopes count at the observed values);
    * residual variance: ``sigma^2`` (gaussian), otherwise the distribution-specific
      variance plus observation-level random-effect variances. Distribution-specific
      variances: binomial logit ``pi^2 / 3``; Poisson log ``log(1 + 1 / mu)`` and NB2
      ``log(1 + 1 / mu + 1 / theta)`` (the lognormal approximation), with ``mu`` the
      expected count per observation of the null model (same random part and offsets,
      intercept only) refitted with the same family: ``exp(beta_0)``, or with an
      offset the mean of ``exp(beta_0 + offset)`` (``exp(beta_0)`` alone would be a
      rate per unit of the offset; performance 0.10 uses it so).

    ``r2_marginal = v_f / (v_f + v_r + v_e)``, ``r2_conditional = (v_f + v_r) / (...)``,
    ``icc_adjusted = v_r / (v_r + v_e)``, ``icc_unadjusted = v_r / (v_f + v_r + v_e)``.

    Parameters
    ----------
    result : MixedResult

    Returns
    -------
    dict
        var_fixed, var_random, var_residual, var_distribution, var_dispersion,
        r2_marginal, r2_conditional, icc_adjusted, icc_unadjusted, and null_mean (the
        null model's mean that the log-link counts' level-1 variance used; NaN otherwise).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> r2 = nakagawa_r2(fit)
    >>> round(r2["r2_marginal"], 3), round(r2["r2_conditional"], 3)
    (0.338, 0.57)
    """
    design = result.design
    var_fixed = float(np.var(design.X @ result.beta, ddof=1))
    covariances = design.covariance_matrices(result.theta, result.sigma)
    var_random = var_dispersion = 0.0
    for block, cov in zip(design.blocks, covariances, strict=True):
        mm = block.model_matrix
        value = float(np.sum(cov * (mm.T @ mm)) / design.n)
        if block.n_levels == design.n and result.family != "gaussian":
            var_dispersion += value
        else:
            var_random += value
    var_distribution, null_mean = _distribution_variance(result)
    var_residual = var_distribution + var_dispersion
    total = var_fixed + var_random + var_residual
    return {
        "var_fixed": var_fixed,
        "var_random": var_random,
        "var_residual": var_residual,
        "var_distribution": var_distribution,
        "var_dispersion": var_dispersion,
        "r2_marginal": var_fixed / total,
        "r2_conditional": (var_fixed + var_random) / total,
        "icc_adjusted": var_random / (var_random + var_residual),
        "icc_unadjusted": var_random / total,
        "null_mean": null_mean,
    }


def icc(result) -> dict:
    """Adjusted and unadjusted intraclass correlation (``performance::icc``).

    For binomial models this is the latent-scale ICC ``v_r / (v_r + pi^2 / 3)``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> {k: round(v, 3) for k, v in icc(fit).items()}
    {'icc_adjusted': 0.351, 'icc_unadjusted': 0.233}
    """
    values = result.extra.get("_r2") or nakagawa_r2(result)
    return {"icc_adjusted": values["icc_adjusted"], "icc_unadjusted": values["icc_unadjusted"]}


def _distribution_variance(result) -> tuple[float, float]:
    """The family's level-1 variance (:meth:`GlmmFamily.latent_variance`) at the fit and
    the null model's mean it used (log-link counts; NaN for the other families)."""
    family = _fitted_family(result)
    mean = float("nan")
    if family.latent_needs_mean:
        try:
            mean = _null_model_mean(result)
        except (ModelSpecError, np.linalg.LinAlgError):
            return float("nan"), mean  # the null model cannot be fitted: no R²
    return family.latent_variance(mean=mean, sigma=result.sigma), mean


def _fitted_family(result):
    """The fit's family object, NB2 with its estimated size."""
    family = get_family(result.family)
    if result.nb_theta is not None:
        family = replace(family, theta=float(result.nb_theta))
    return family


def _null_model_mean(result) -> float:
    """The null model's expected count per observation, ``mean(exp(b0 + offset))``.

    The null model has the same random part, offsets and family, and an intercept only.
    Without an offset this is ``exp(b0)`` (Nakagawa et al., 2017); with one, ``exp(b0)``
    is a rate per unit of the offset (per minute, say), not the mean count of an
    observation that the lognormal approximation of the level-1 variance needs.
    """
    from .design import build_design
    from .glmm import fit_glmm

    parsed = result.design.formula
    terms = ["1"] + [f"offset({o})" for o in parsed.offsets]
    terms += [f"({t.expr} | {t.group})" for t in parsed.random]
    formula = f"{parsed.response} ~ {' + '.join(terms)}"
    weights = None if parsed.response.startswith("cbind") else result.design.prior_weights
    null_design = build_design(formula, result.design.frame, weights=weights)
    nagq = int(result.method[4:-1]) if result.method.startswith("AGQ(") else 1
    null_fit = fit_glmm(null_design, result.family, nagq=nagq)
    return float(np.mean(np.exp(null_fit.beta[0] + null_design.offset)))


# --- likelihood-ratio tests -------------------------------------------------------------


def lrt(fit0, fit1) -> pd.DataFrame:
    """Likelihood-ratio test between two nested fits (as lme4's ``anova``).

    Both models must be fitted to the same rows with the same family. REML fits are only
    comparable when their fixed effects are identical; otherwise refit with
    ``reml=False``. A variance tested at its boundary (zero) makes the chi-square p value
    conservative.

    Parameters
    ----------
    fit0, fit1 : MixedResult
        The models, in either order; the one with fewer parameters is the null model.

    Returns
    -------
    pandas.DataFrame
        One row per model: model, n_params, aic, bic, loglik, deviance, chisq, df,
        p_value (test columns on the larger model's row).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> small = fit_mixed("y ~ 1 + (1 | g)", df, reml=False)
    >>> large = fit_mixed("y ~ x + (1 | g)", df, reml=False)
    >>> table = lrt(small, large)
    >>> round(float(table.chisq[1]), 2), int(table.df[1]), bool(table.p_value[1] < 0.001)
    (22.79, 1, True)
    """
    small, large = sorted((fit0, fit1), key=lambda f: f.n_params)
    if small.family != large.family:
        raise ModelSpecError(f"cannot compare a {small.family} with a {large.family} model")
    if small.design.n != large.design.n or not small.design.frame.index.equals(
        large.design.frame.index
    ):
        raise ModelSpecError(
            f"the models were fitted to different rows ({small.design.n} and "
            f"{large.design.n} observations); drop missing values first so both use the same"
        )
    if small.n_params == large.n_params:
        raise ModelSpecError("the models have the same number of parameters; they are not nested")
    reml = [f.method == "REML" for f in (small, large)]
    if any(reml) and (not all(reml) or small.design.fixed_names != large.design.fixed_names):
        raise ModelSpecError(
            "REML likelihoods are only comparable between models with the same fixed effects "
            "(and both fitted by REML); refit both models with reml=False"
        )
    chisq = max(2 * (large.loglik - small.loglik), 0.0)
    df = large.n_params - small.n_params
    rows = []
    for name, fit in (("model0", small), ("model1", large)):
        stats = {
            "model": name,
            "formula": fit.design.formula.formula,
            "n_params": fit.n_params,
            "aic": -2 * fit.loglik + 2 * fit.n_params,
            "bic": -2 * fit.loglik + np.log(fit.design.n) * fit.n_params,
            "loglik": fit.loglik,
            "deviance": -2 * fit.loglik,
            "chisq": np.nan,
            "df": np.nan,
            "p_value": np.nan,
        }
        rows.append(stats)
    rows[1].update(chisq=chisq, df=df, p_value=float(st.chi2.sf(chisq, df)))
    return pd.DataFrame(rows)
