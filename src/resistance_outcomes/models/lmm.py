"""Linear mixed models by profiled REML or ML deviance (lme4's ``lmer``).

Notation of Bates, Maechler, Bolker & Walker (2015), JSS 67(1), section 3: for given
relative covariance parameters ``theta``, the penalised least-squares (PLS) problem

    min over (u, beta) of ||W^(1/2) (y - o - X beta - Z Lambda u)||^2 + ||u||^2

is solved through the sparse Cholesky-type factor of ``A = Lambda' Z' W Z Lambda + I``
(``log|L|^2 = log det A``) and the dense factor ``R_X`` of the Schur complement
``X' W X - X' W Z Lambda A^(-1) Lambda' Z' W X``. With ``r^2`` the penalised weighted
residual sum of squares the profiled deviances are (eqs. 34 and 41)

    ML:   log|L|^2 - log|W| + n (1 + log(2 pi r^2 / n))
    REML: log|L|^2 + log|R_X|^2 - log|W| + (n - p) (1 + log(2 pi r^2 / (n - p)))

and ``theta`` is found by bounded quasi-Newton minimisation. When every random-effects
term is a scalar (random intercepts of crossed or nested factors), ``A`` is factored from
blocks of ``Z' W Z`` stored once (:mod:`.lmm_blocks`) and the deviance has an exact
gradient: with ``V = W^-1 + Z Lambda Lambda' Z'`` and ``dV / dtheta_i = 2 theta_i Z_i
Z_i'``, ``theta_i^2 Z_i' V^-1 Z_i`` is the term's block of ``I - A^-1``,
``Lambda' Z' V^-1 X = A^-1 Lambda' Z' W X`` and ``Lambda' Z' e = u``, so the gradient
needs only the traces of ``A^-1`` over each term's rows; the Hessian in ``(theta,
sigma)`` used by the convergence check and the Satterthwaite degrees of freedom is then
central differences of that gradient, and the derivatives of ``(X' V^-1 X)^-1`` are
exact. Other designs use central differences of the deviance. To avoid cancellation the
response is first replaced by its weighted least-squares residuals on ``X`` (which leaves
``u`` and the deviance unchanged and shifts ``beta`` by the least-squares fit).

The optimizer works on ``theta`` times the root mean square of the random-effects column
of each entry's row (:func:`theta_scale`): the fit of the model-matrix columns divided by
their root mean squares, transformed back exactly. Its path, and so the result, do not
depend on the units of a covariate; starting at ``theta = 1`` then means random effects
of the size of the residual. A diagonal entry of ``theta`` stopped at zero is a stationary
point whether or not it is a minimum (the deviance is even in the last diagonal entry of
each term), where quasi-Newton steps stop; when the deviance decreases away from it the
optimizer restarts from there (as lme4's ``restart_edge``). A zero diagonal entry with
entries below it (a random intercept at zero beside a slope) is first moved to the
equivalent point with those entries changed in sign when the deviance decreases faster
away from zero there (:func:`_mirror_zero_columns`): the bounded optimizer cannot cross
to that side by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize as so
import scipy.sparse as sp

from .design import MixedDesign, _lower_triangle_colmajor
from .formula import ModelSpecError
from .inference import check_convergence, numerical_jacobian, satterthwaite
from .linalg import SparseCholesky, single_threaded_blas
from .lmm_blocks import ScalarBlockedFactor, scalar_blocked_applicable
from .result import MixedResult

__all__ = ["LmmProblem", "fit_lmm", "theta_scale"]

DEFAULT_CONTROL = {
    "maxiter": 2000,  # L-BFGS-B iterations
    "ftol": 1e-13,  # relative change of the deviance that stops the optimizer
    "gtol": 1e-8,  # projected-gradient size that stops the optimizer
    "singular_tol": 1e-4,  # a diagonal scaled theta below this is a singular fit (isSingular)
    "restart_edge": True,  # restart when the deviance decreases away from a zero variance
    "grad_tol": 2e-3,  # scaled-gradient tolerance of the convergence check (lme4's)
    "satterthwaite": True,  # compute Satterthwaite degrees of freedom
}
EDGE_PROBES = (1e-3, 1e-2, 1e-1)  # scaled-theta values probed next to a zero variance
MAX_RESTARTS = 3


@dataclass
class PlsSolution:
    """Solution of the penalised least-squares problem at one ``theta``."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    pwrss: float
    logdet_l: float  # log|L|^2 = log det(Lambda' Z' W Z Lambda + I)
    logdet_rx: float  # log|R_X|^2
    schur: np.ndarray  # R_X' R_X = X' V^(-1) X up to sigma^2


class LmmProblem:
    """The deviance of a linear mixed model as a function of its variance parameters.

    Parameters
    ----------
    design : MixedDesign

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0, 6.0, 8.0],
    ...                    "g": ["a", "a", "b", "b", "c", "c"]})
    >>> from resistance_outcomes.models.design import build_design
    >>> problem = LmmProblem(build_design("y ~ 1 + (1 | g)", df))
    >>> round(float(problem.solve([1.0]).beta[0]), 4)  # balanced: the grand mean
    4.0
    """

    def __init__(self, design: MixedDesign):
        self.design = design
        x, w = design.X, design.prior_weights
        self.n, self.p = x.shape
        sqrt_w = np.sqrt(w)
        y = design.y - design.offset
        self.beta_ls = np.linalg.lstsq(x * sqrt_w[:, None], y * sqrt_w, rcond=None)[0]
        resid = y - x @ self.beta_ls
        ztw = design.Zt.multiply(w).tocsc() if not np.all(w == 1) else design.Zt
        self.ztwz = (ztw @ design.Zt.T).tocsc()
        self.ztwx = np.asarray(ztw @ x)
        self.ztwr = np.asarray(ztw @ resid).ravel()
        self.xtwx = x.T @ (x * w[:, None])
        self.xtwr = x.T @ (resid * w)
        self.rtwr = float(resid @ (resid * w))
        self.log_w = float(np.sum(np.log(w)))
        self.identity = sp.identity(design.q, format="csc")
        self.chol = SparseCholesky(design.leading_block)
        # all terms scalar: blocks of Z'WZ stored once, exact gradients available
        self.blocked = (
            ScalarBlockedFactor(design, self.ztwz)
            if scalar_blocked_applicable(design, self.ztwz)
            else None
        )
        self._last = None
        # other designs: exact gradients from entries of A^-1 when the factor (or its
        # Schur complement) is always dense
        n1 = design.leading_block[0] if design.blocks else 0
        dense = self.chol.dense_below
        self._general_gradient = self.blocked is None and (
            design.q < dense or (n1 > 0 and design.q - n1 < dense)
        )
        self._lt_entries = design.lambdat_entries
        self._lt_indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(self._lt_entries[2], minlength=design.q))]
        )

    @property
    def has_gradient(self) -> bool:
        """Whether exact gradients of the deviance are available: all terms scalar, or
        a factor of ``A`` (or its Schur complement) that is dense."""
        return self.blocked is not None or self._general_gradient

    def solve(self, theta) -> PlsSolution:
        """Solve the PLS problem at ``theta``."""
        theta = np.asarray(theta, dtype=float)
        if self._last is not None and np.array_equal(self._last[0].theta, theta):
            return self._last[0]
        if self.blocked is not None:
            t = self.blocked.factor(theta).t
            ltzwx = t[:, None] * self.ztwx
            ltzwr = t * self.ztwr
            chol = self.blocked
        else:
            lt = self.design.lambdat(theta)
            a = (lt @ self.ztwz @ lt.T + self.identity).tocsc()
            ltzwx = np.asarray(lt @ self.ztwx)
            ltzwr = lt @ self.ztwr
            chol = self.chol.factor(a)
        sol = chol.solve(np.column_stack([ltzwx, ltzwr]))
        schur = self.xtwx - ltzwx.T @ sol[:, : self.p]
        rhs = self.xtwr - ltzwx.T @ sol[:, self.p]
        rx = scipy.linalg.cho_factor(schur, lower=True)
        delta = scipy.linalg.cho_solve(rx, rhs)
        u = sol[:, self.p] - sol[:, : self.p] @ delta
        pwrss = self.rtwr - u @ ltzwr - delta @ self.xtwr
        solution = PlsSolution(
            theta=theta,
            beta=self.beta_ls + delta,
            u=u,
            pwrss=max(pwrss, np.finfo(float).tiny),
            logdet_l=chol.logdet(),
            logdet_rx=float(2 * np.sum(np.log(np.diag(rx[0])))),
            schur=schur,
        )
        if self.has_gradient:
            solution.theta = theta.copy()
            self._last = (solution, sol[:, : self.p], rx)
        return solution

    def varpar_hessian(self, varpar, reml: bool) -> np.ndarray:
        """Hessian of :meth:`deviance_varpar` in ``(theta, sigma)``: central differences of
        its exact gradient (:attr:`has_gradient`)."""
        return numerical_jacobian(
            lambda v: self.deviance_varpar_gradient(v, reml), varpar, relative=1e-4, levels=1
        )

    def _derivative_parts(self, theta):
        """Per term: ``q_i - tr_i(A^-1)``, ``tr(C^-1 W_i' W_i)`` and ``||u_i||^2`` divided
        by ``theta_i`` (zero at ``theta_i = 0``), with ``W_i = Lambda_i' Z_i' V^-1 X``.

        For scalar terms ``dV / dtheta_i = 2 theta_i Z_i Z_i'`` (``V = W^-1 + Z Lambda
        Lambda' Z'``), ``theta_i^2 Z_i' V^-1 Z_i`` is the term's block of ``I - A^-1``,
        ``Lambda' Z' V^-1 X = A^-1 Lambda' Z' W X`` and ``Lambda' Z' e = u`` for the
        conditional residual ``e = V^-1 (y - X beta)``.
        """
        theta = np.asarray(theta, dtype=float)
        last = self._last
        if last is None or not np.array_equal(last[0].theta, theta):
            self.solve(theta)
            last = self._last
        if self.blocked is None:
            return self._general_derivative_parts(theta)
        solution, sol_x, rx = last
        traces = self.blocked.term_traces_of_inverse()
        out = np.zeros((3, len(theta)))
        for i, block in enumerate(self.design.blocks):
            j = block.theta_slice.start
            if theta[j] == 0.0:
                continue
            rows = block.z_slice
            w_i = sol_x[rows]
            c_inv_w = scipy.linalg.cho_solve(rx, w_i.T @ w_i)
            out[0, j] = (block.n_levels - traces[i]) / theta[j]
            out[1, j] = float(np.trace(c_inv_w)) / theta[j]
            out[2, j] = float(solution.u[rows] @ solution.u[rows]) / theta[j]
        return solution, out

    def _general_derivative_parts(self, theta):
        """As :meth:`_derivative_parts` for any ``Lambda``, from entries of ``A^-1``.

        With ``P_k = dLambda' / dtheta_k`` (ones where ``Lambda'`` holds ``theta_k``):
        ``d log det A / dtheta_k = 2 tr(A^-1 P_k G Lambda)`` with ``G = Z' W Z``, which
        needs ``A^-1`` only on the pattern of ``A``; ``X' V^-1 dV V^-1 X = M_k + M_k'``
        with ``M_k = (P_k Z' V^-1 X)' (Lambda' Z' V^-1 X)`` and ``Lambda' Z' V^-1 X =
        A^-1 Lambda' Z' W X``; ``e' dV e = 2 (P_k Z' e) . u``.
        """
        solution, sol_x, rx = self._last
        lind, rows, cols = self._lt_entries
        m = len(theta)
        lt = self.design.lambdat(theta)
        # (Lambda' G)' A^-1 at the entries (j, i) of Lambda's pattern: for each stored
        # H[m, j] of H = Lambda' G and each entry (i, j) of Lambda' in column j
        h = (lt @ self.ztwz).tocoo()
        indptr = self._lt_indptr
        per_col = np.diff(indptr)[h.col]
        entry = np.repeat(indptr[h.col], per_col) + (
            np.arange(per_col.sum()) - np.repeat(np.cumsum(per_col) - per_col, per_col)
        )
        inverse = self.chol.inverse_entries(np.repeat(h.row, per_col), rows[entry])
        acc = np.bincount(entry, np.repeat(h.data, per_col) * inverse, minlength=len(rows))
        log_part = np.bincount(lind, acc, minlength=m)
        # Z' V^-1 X and Z' e
        zvx = self.ztwx - self.ztwz @ (lt.T @ sol_x)
        delta = solution.beta - self.beta_ls
        z_e = self.ztwr - self.ztwx @ delta - self.ztwz @ (lt.T @ solution.u)
        c_inv_sol = scipy.linalg.cho_solve(rx, sol_x.T)  # (p, q)
        x_terms = np.einsum("ij,ji->i", zvx[cols], c_inv_sol[:, rows])
        x_part = np.bincount(lind, x_terms, minlength=m)
        u_part = np.bincount(lind, z_e[cols] * solution.u[rows], minlength=m)
        return solution, np.vstack([log_part, x_part, u_part])

    def profiled_deviance_gradient(self, theta, reml: bool) -> tuple[float, np.ndarray]:
        """Profiled deviance (:meth:`profiled_deviance`) and its exact gradient in ``theta``.

        Needs :attr:`has_gradient`.
        """
        theta = np.asarray(theta, dtype=float)
        self.solve(theta)
        solution, (log_part, x_part, u_part) = self._derivative_parts(theta)
        dev = self._profiled_from(solution, reml)
        m = self.n - self.p if reml else self.n
        grad = 2 * log_part - 2 * m * u_part / solution.pwrss
        if reml:
            grad -= 2 * x_part
        return dev, grad

    def deviance_varpar_gradient(self, varpar, reml: bool) -> np.ndarray:
        """Exact gradient of :meth:`deviance_varpar` in ``(theta, sigma)``.

        Needs :attr:`has_gradient`.
        """
        varpar = np.asarray(varpar, dtype=float)
        theta, sigma = varpar[:-1], varpar[-1]
        solution, (log_part, x_part, u_part) = self._derivative_parts(theta)
        grad_theta = 2 * log_part - 2 * u_part / sigma**2
        if reml:
            grad_theta -= 2 * x_part
        m = self.n - self.p if reml else self.n
        grad_sigma = -2 * solution.pwrss / sigma**3 + 2 * m / sigma
        return np.append(grad_theta, grad_sigma)

    def vcov_jacobian(self, varpar) -> np.ndarray:
        """Exact derivatives of :meth:`vcov_beta` in ``(theta, sigma)`` (:attr:`has_gradient`).

        ``C = X' V^-1 X`` has ``dC / dtheta_k = -(M_k + M_k')`` with ``M_k = (P_k Z' V^-1
        X)' (Lambda' Z' V^-1 X)``, ``P_k = dLambda' / dtheta_k``.
        """
        varpar = np.asarray(varpar, dtype=float)
        theta, sigma = varpar[:-1], varpar[-1]
        self.solve(theta)
        solution, sol_x, rx = self._last
        c_inv = scipy.linalg.cho_solve(rx, np.eye(self.p))
        lt = self.design.lambdat(theta)
        zvx = self.ztwx - self.ztwz @ (lt.T @ sol_x)  # Z' V^-1 X
        lind, rows, cols = self._lt_entries
        jac = np.zeros((len(varpar), self.p, self.p))
        for k in range(len(theta)):
            mine = lind == k
            m_k = zvx[cols[mine]].T @ sol_x[rows[mine]]
            jac[k] = sigma**2 * (c_inv @ (m_k + m_k.T) @ c_inv)
        jac[-1] = 2 * sigma * c_inv
        return jac

    def _profiled_from(self, s: PlsSolution, reml: bool) -> float:
        if reml:
            nmp = self.n - self.p
            return (
                s.logdet_l
                + s.logdet_rx
                - self.log_w
                + nmp * (1 + np.log(2 * np.pi * s.pwrss / nmp))
            )
        return s.logdet_l - self.log_w + self.n * (1 + np.log(2 * np.pi * s.pwrss / self.n))

    def profiled_deviance(self, theta, reml: bool) -> float:
        """REML criterion or ML deviance profiled over ``beta`` and ``sigma``."""
        return self._profiled_from(self.solve(theta), reml)

    def deviance_varpar(self, varpar, reml: bool) -> float:
        """Deviance as a function of ``(theta, sigma)``, not profiled over ``sigma``.

        As lmerTest's ``devfun_vp``: ``log|L|^2 + r^2 / sigma^2 + n log(2 pi sigma^2)``,
        plus ``log|R_X|^2 - p log(2 pi sigma^2)`` for REML (the constant ``log|W|`` omitted).
        """
        varpar = np.asarray(varpar, dtype=float)
        sigma2 = varpar[-1] ** 2
        s = self.solve(varpar[:-1])
        dev = s.logdet_l + s.pwrss / sigma2 + self.n * np.log(2 * np.pi * sigma2)
        if reml:
            dev += s.logdet_rx - self.p * np.log(2 * np.pi * sigma2)
        return dev

    def vcov_beta(self, varpar) -> np.ndarray:
        """Covariance of ``beta`` at ``(theta, sigma)``: ``sigma^2 (R_X' R_X)^(-1)``."""
        varpar = np.asarray(varpar, dtype=float)
        return varpar[-1] ** 2 * np.linalg.inv(self.solve(varpar[:-1]).schur)


@single_threaded_blas
def fit_lmm(design: MixedDesign, reml: bool = True, control: dict | None = None) -> MixedResult:
    """Fit a linear mixed model by REML or ML.

    Parameters
    ----------
    design : MixedDesign
        From :func:`build_design`.
    reml : bool
        REML (default) or maximum likelihood.
    control : dict, optional
        Overrides of :data:`DEFAULT_CONTROL`.

    Returns
    -------
    MixedResult
        With Wald covariance ``sigma^2 (X' V^(-1) X)^(-1)`` and Satterthwaite degrees of
        freedom (as lmerTest).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(10), 5)
    >>> df = pd.DataFrame({"y": rng.normal(size=10)[g] + rng.normal(size=50), "g": g})
    >>> fit = fit_lmm(build_design("y ~ 1 + (1 | g)", df))
    >>> fit.method, fit.converged
    ('REML', True)
    """
    unknown = sorted(set(control or {}) - set(DEFAULT_CONTROL))
    if unknown:
        raise ModelSpecError(
            f"unknown control setting(s) {unknown} for a linear mixed model; "
            f"valid ones: {', '.join(DEFAULT_CONTROL)}"
        )
    control = {**DEFAULT_CONTROL, **(control or {})}
    _check_identifiable(design)
    problem = LmmProblem(design)
    scale = theta_scale(design)
    lower = design.theta_lower

    def objective(theta_scaled):
        try:
            return problem.profiled_deviance(theta_scaled / scale, reml)
        except np.linalg.LinAlgError:
            return np.inf

    # exact gradients drive the optimizer and the convergence check for scalar terms;
    # with vector-valued terms (whose deviance is flat along rotations of a factor's
    # columns at a zero variance) they serve the Satterthwaite step only
    gradient = value_and_gradient = None
    if problem.blocked is not None:

        def value_and_gradient(theta_scaled):
            try:
                dev, grad = problem.profiled_deviance_gradient(theta_scaled / scale, reml)
            except np.linalg.LinAlgError:
                return np.inf, np.zeros_like(theta_scaled)
            return dev, grad / scale

        def gradient(theta_scaled):
            return value_and_gradient(theta_scaled)[1]

    columns = _theta_columns(design)
    opt = _minimise(objective, design.theta0, lower, control, value_and_gradient)
    opt.x = _mirror_zero_columns(objective, _snap_to_bounds(opt.x, lower), columns)
    opt.fun = objective(opt.x)
    restarts = 0
    if control["restart_edge"]:
        opt, restarts = _restart_from_edge(
            objective, opt, lower, design, control, value_and_gradient
        )
    theta_scaled = opt.x
    theta = theta_scaled / scale
    solution = problem.solve(theta)
    nmp = design.n - design.p if reml else design.n
    sigma = float(np.sqrt(solution.pwrss / nmp))
    varpar = np.append(theta, sigma)
    hessian_varpar = hessian_scaled = None
    if problem.has_gradient and (control["satterthwaite"] or problem.blocked is not None):
        # one Hessian for the convergence check and the Satterthwaite df: the profiled
        # deviance's is its Schur complement in sigma (sigma at its optimum given theta)
        h = problem.varpar_hessian(varpar, reml)
        hessian_varpar = (h + h.T) / 2
        hessian_profiled = (
            hessian_varpar[:-1, :-1]
            - np.outer(hessian_varpar[:-1, -1], hessian_varpar[-1, :-1]) / hessian_varpar[-1, -1]
        )
        if problem.blocked is not None:
            hessian_scaled = hessian_profiled / np.outer(scale, scale)
    conv = check_convergence(
        objective, theta_scaled, lower, control["grad_tol"], gradient, hessian_scaled
    )
    # status 2: the line search found no lower deviance, which at a point passing the
    # gradient and Hessian checks means an optimum within rounding error
    optimizer_ok = bool(opt.success or (opt.status == 2 and conv["ok"]))
    messages = [] if optimizer_ok else [f"optimizer: {opt.message}"]
    messages += conv["messages"]
    singular = bool(np.any(theta_scaled[lower == 0] < control["singular_tol"]))
    if singular:
        messages.append(
            "singular fit: a random-effect variance is estimated at zero or a "
            "correlation at +-1; consider simplifying the random part"
        )
    vcov = problem.vcov_beta(varpar)
    df, satt = None, {}
    if control["satterthwaite"]:
        exact = problem.has_gradient
        df, satt = satterthwaite(
            lambda v: problem.deviance_varpar(v, reml),
            problem.vcov_beta,
            varpar,
            hessian=hessian_varpar,
            vcov_jacobian=problem.vcov_jacobian if exact else None,
        )
        messages += satt.pop("messages")

    ml_deviance = problem.profiled_deviance(theta, reml=False)
    criterion = problem.profiled_deviance(theta, reml) if reml else ml_deviance
    return MixedResult(
        design=design,
        family="gaussian",
        method="REML" if reml else "ML",
        beta=solution.beta,
        vcov=vcov,
        df=df,
        theta=theta,
        sigma=sigma,
        nb_theta=None,
        b=design.lambdat(theta).T @ solution.u,
        loglik=-criterion / 2,
        deviance=ml_deviance,
        n_params=design.p + len(theta) + 1,
        converged=optimizer_ok and conv["ok"],
        singular=singular,
        messages=messages,
        extra={
            "reml_criterion": criterion if reml else None,
            "optimizer": {
                "method": "L-BFGS-B",
                "iterations": int(opt.nit),
                "evaluations": int(opt.nfev),
                "message": str(opt.message),
                "restarts": restarts,
                "theta_scale": scale.tolist(),
            },
            "gradient": conv["gradient"],  # with the Hessian, in the scaled coordinates
            "hessian_eigenvalues": conv["hessian_eigenvalues"],
            **satt,
        },
    )


def _check_identifiable(design: MixedDesign) -> None:
    formula = design.formula.formula
    if design.n <= design.p:
        raise ModelSpecError(
            f"formula {formula!r} has {design.p} fixed effects for {design.n} observations; "
            "a linear mixed model needs more observations than fixed effects"
        )
    if not design.blocks:
        raise ModelSpecError(
            f"formula {formula!r} has no random-effects term such as (1 | group); "
            "fit an ordinary linear model instead"
        )
    for block in design.blocks:
        if block.n_levels * block.n_coef >= design.n:
            raise ModelSpecError(
                f"the random term for {block.group!r} in {formula!r} has "
                f"{block.n_levels * block.n_coef} random effects for {design.n} observations; "
                "a linear mixed model cannot separate them from the residual: remove the term"
            )


def theta_scale(design: MixedDesign) -> np.ndarray:
    """Scale factor of each entry of ``theta``: the root mean square of its row's column.

    Entry ``(r, c)`` of a term's factor ``T`` multiplies random coefficient ``r``; dividing
    that coefficient's model-matrix column by ``d_r`` multiplies the entry by ``d_r``. The
    optimizer works on ``theta * theta_scale(design)``, which is unchanged when a covariate
    is rescaled. Columns of zeros get the factor 1.

    Parameters
    ----------
    design : MixedDesign

    Returns
    -------
    numpy.ndarray
        One positive factor per entry of ``theta``.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0], "x": [3.0, -3.0, 3.0, -3.0],
    ...                    "g": ["a", "a", "b", "b"]})
    >>> theta_scale(build_design("y ~ 1 + (1 + x | g)", df)).tolist()  # T11, T21, T22
    [1.0, 3.0, 3.0]
    """
    factors = []
    for block in design.blocks:
        rms = np.sqrt(np.mean(block.model_matrix**2, axis=0))
        rows, _ = _lower_triangle_colmajor(block.n_coef)
        factors.append(np.where(rms > 0, rms, 1.0)[rows])
    return np.concatenate(factors)


def _minimise(objective, start: np.ndarray, lower: np.ndarray, control: dict, with_gradient=None):
    """L-BFGS-B from ``start``; with ``with_gradient`` (``x -> (value, gradient)``) the
    exact gradient, otherwise central differences of ``objective``."""
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    return so.minimize(
        objective if with_gradient is None else with_gradient,
        start,
        method="L-BFGS-B",
        jac="3-point" if with_gradient is None else True,
        bounds=bounds,
        options={"maxiter": control["maxiter"], "ftol": control["ftol"], "gtol": control["gtol"]},
    )


def _restart_from_edge(
    objective, opt, lower: np.ndarray, design: MixedDesign, control: dict, with_gradient=None
):
    """Restart the optimizer while the deviance decreases away from a zero diagonal entry.

    ``opt.x`` is snapped and mirrored (:func:`_mirror_zero_columns`). Each diagonal entry
    below ``singular_tol`` is probed at :data:`EDGE_PROBES`; where the deviance is lower
    (by more than rounding) the entry is moved to the best probe and the optimizer
    restarts there, its end point snapped and mirrored in turn. The better optimum is
    kept, at most :data:`MAX_RESTARTS` times, so a variance whose deviance rises away from
    zero stays at zero.

    Returns
    -------
    opt : scipy.optimize.OptimizeResult
    restarts : int
    """
    for restarts in range(MAX_RESTARTS):
        start = _edge_probe(objective, opt.x, lower, control["singular_tol"], design)
        if start is None:
            return opt, restarts
        new = _minimise(objective, start, lower, control, with_gradient)
        new.x = _mirror_zero_columns(
            objective, _snap_to_bounds(new.x, lower), _theta_columns(design)
        )
        new.fun = objective(new.x)
        if not new.fun < opt.fun:
            return opt, restarts + 1
        opt = new
    return opt, MAX_RESTARTS


def _edge_probe(objective, x: np.ndarray, lower: np.ndarray, tol: float, design: MixedDesign):
    """``x`` with near-zero diagonal entries moved where the deviance is lower, or None.

    A diagonal entry with entries below it is probed both as it is and folded
    (:func:`_fold_column`). When one entry moves, the other near-zero diagonal entries
    start at the smallest probe: the deviance is even in the last diagonal entry of a
    term, so at zero its gradient is zero and the optimizer would keep it there however
    the other entries move.
    """
    f0 = objective(x)
    near_zero = np.flatnonzero((lower == 0) & (x < tol))
    start = x.copy()
    for i in near_zero:
        values = {}
        for base in (start, _fold_column(start, i, design)):
            for step in EDGE_PROBES:
                trial = base.copy()
                trial[i] = step
                values[objective(trial)] = trial
        best = min(values)
        if best < f0 - 1e-9 * max(1.0, abs(f0)):
            start = values[best]
    if np.array_equal(start, x):
        return None
    start[near_zero] = np.maximum(start[near_zero], EDGE_PROBES[0])
    return start


def _fold_column(x: np.ndarray, index: int, design: MixedDesign) -> np.ndarray:
    """The point with the same covariance as ``x`` and zeros below the zero diagonal
    entry ``x[index]``, the entries below moved into the columns to its right.

    With the diagonal entry of column ``c`` of a term's factor ``T`` at zero, the lower
    right block of ``T T'`` is ``v v' + R R'`` (``v`` the entries below it, ``R`` the block
    of ``T`` right of ``c`` and below the diagonal entry); its lower-triangular factor with
    a nonnegative diagonal (from the QR decomposition of ``[v R]'``) replaces ``R``. Moving
    the diagonal entry away from zero then adds variance without the covariance that ``v``
    would impose, a direction neither ``x`` nor its mirror image offers.
    """
    for block in design.blocks:
        rows, cols = _lower_triangle_colmajor(block.n_coef)
        position = index - block.theta_slice.start
        if 0 <= position < len(rows) and rows[position] == cols[position] < block.n_coef - 1:
            c = cols[position]
            factor = block.factor(x)
            stacked = np.column_stack([factor[c + 1 :, c], factor[c + 1 :, c + 1 :]])
            r = np.linalg.qr(stacked.T, mode="r")
            folded = (np.sign(np.diag(r)) + (np.diag(r) == 0))[:, None] * r
            factor[c + 1 :, c] = 0.0
            factor[c + 1 :, c + 1 :] = folded.T
            out = x.copy()
            out[block.theta_slice] = factor[rows, cols]
            return out + 0.0
    return x


def _theta_columns(design: MixedDesign) -> list[np.ndarray]:
    """Theta indices of each column of each term's factor, the diagonal entry first."""
    columns = []
    for block in design.blocks:
        _, cols = _lower_triangle_colmajor(block.n_coef)
        columns += [
            block.theta_slice.start + np.flatnonzero(cols == c) for c in range(block.n_coef)
        ]
    return columns


def _mirror_zero_columns(objective, x: np.ndarray, columns) -> np.ndarray:
    """``x`` with the entries below each zero diagonal entry changed in sign where the
    deviance decreases faster away from zero that way.

    Changing the sign of a column of a term's factor ``T`` leaves the deviance unchanged.
    With the column's diagonal entry at zero this flips only the entries below it, a
    point the bounded optimizer cannot reach from here, and flips the odd part of the
    deviance in the diagonal entry: its slope at zero, proportional to the covariance the
    entries below imply. Where that slope is positive (the optimizer stopped at a zero
    variance, e.g. a random intercept with the slope's SD in the entry below) the mirrored
    point has a negative one, which the edge probes and convergence checks then see. The
    two sides are compared at the smallest of :data:`EDGE_PROBES`, where the even part of
    the deviance cancels.
    """
    x = x.copy()
    for column in columns:
        diagonal, below = column[0], column[1:]
        if x[diagonal] != 0.0 or not np.any(x[below] != 0.0):
            continue
        probe = x.copy()
        probe[diagonal] = EDGE_PROBES[0]
        mirrored = probe.copy()
        mirrored[below] = -probe[below]
        if objective(mirrored) < objective(probe):
            x[below] = -x[below] + 0.0
    return x


def _snap_to_bounds(theta: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Set diagonal entries within 1e-10 of their zero bound to exactly zero."""
    theta = theta.copy()
    theta[(lower == 0) & (theta < 1e-10)] = 0.0
    return theta
