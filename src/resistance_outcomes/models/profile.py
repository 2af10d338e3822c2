"""Profile-likelihood confidence intervals of a mixed model's parameters.

The method of lme4's ``profile.merMod`` and ``confint.thpr`` (Bates, Maechler, Bolker &
Walker, 2015, JSS 67(1), section 5.1). The parameters are taken on the standard-deviation
scale: each random-effect SD (lme4's ``.sig01``, ``.sig02``, ...), each correlation, the
residual SD (``.sigma``, linear models), NB2's size (``.nb_size``) and each fixed effect.
For one parameter ``p`` held at a value, the deviance is minimised over all the others
(warm-started from the neighbouring value), and the profile is its signed square root

    zeta(p) = sign(p - p_hat) * sqrt(D(p) - D(p_hat)),

which is a straight line ``(p - p_hat) / se`` when the likelihood is quadratic. From the
estimate, the parameter steps out in each direction, each step chosen to move zeta by
about ``sqrt(qchisq(0.99, n_par)) / 8`` (lme4's step), until ``|zeta|`` passes the normal
quantile of the confidence level (and one unit further, so that the interpolation is not
at the end of the profile) or the parameter reaches its bound: an SD at zero, a
correlation at -1 or 1. The limits are where the interpolated zeta equals the
quantiles: zeta is interpolated by a natural cubic spline in ``p`` and inverted by the
cubic Hermite interpolant through the same points (lme4's ``interpSpline`` and
``backSpline``). A profile that reaches its bound before the quantile gives the bound as
the limit (an SD whose profile reaches zero gets the lower limit 0, as in lme4).

As in lme4:

* linear models are profiled on the ML deviance whether fitted by REML or ML (lme4's
  ``devfun2`` refits a REML fit by ML first): the deviance as a function of the SDs,
  correlations and ``sigma``, profiled over the fixed effects; a fixed effect is held at
  a value by moving its column into the offset, and the ML deviance profiled over the
  remaining fixed effects and ``sigma`` is minimised over the covariance parameters;
* generalised models are profiled on the Laplace (or quadrature) deviance as a function
  of all parameters, fixed effects included. The deviance is the exact Laplace
  approximation (the engine's default ``"exact"`` PIRLS mode; see
  :mod:`~resistance_outcomes.models.glmm`) whatever mode the fit used.

NB2's size is profiled through ``size**-0.5`` (the SD of its gamma frailty, zero at the
Poisson limit): a profile that reaches the Poisson limit gives an infinite upper limit.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize as so
import scipy.stats as st
from scipy.interpolate import CubicHermiteSpline, CubicSpline

from .formula import ModelSpecError
from .linalg import single_threaded_blas

__all__ = [
    "ParameterProfile",
    "make_profiler",
    "profile",
    "profile_intervals",
    "profile_parameters",
    "sdcor_to_theta",
    "theta_to_sdcor",
    "walk_profiles",
]

ALPHA_MAX = 0.01  # lme4's alphamax: the step is sqrt(qchisq(1 - alphamax, n_par)) / 8
DELTA_CUTOFF = 1 / 8  # lme4's delta.cutoff
MAX_POINTS = 100  # lme4's maxpts, per direction
MAX_MULT = 10  # lme4's maxmult: a step at most this many times the previous one
MIN_STEP = 1e-6  # lme4's minstep, where the profile does not increase
EXTRA_ZETA = 1.0  # the walk continues this far past the quantile of the level
NON_MONOTONE_TOL = 1e-2  # lme4's non.mono.tol: zeta may decrease this much (raw points)
NEWTON_STEPS = 8  # Newton steps over the other parameters before L-BFGS-B takes over
NEWTON_TOL = 1e-9  # Newton decrement (twice the deviance still to gain) that stops them
MAX_HALVINGS = 8
LOWER_DEVIANCE_TOL = 1e-6  # a profile point this far below the optimum: the fit was short


@dataclass
class ProfiledParameter:
    """One parameter of the profile: its name, what it is and its range.

    ``name`` is lme4's (``.sig01``, ``.sigma``, fixed-effect names; ``.nb_size`` for NB2's
    size); ``value`` is the estimate on the profile's scale (for ``.nb_size``:
    ``size**-0.5``).
    """

    name: str
    group: str
    term: str
    kind: str  # "sd", "cor", "sigma", "nb_size", "fixed"
    value: float
    lower: float
    upper: float


@dataclass
class ParameterProfile:
    """The profile of one parameter: its values, zeta and every parameter at each point.

    Attributes
    ----------
    parameter : ProfiledParameter
    values, zeta : numpy.ndarray
        Points of the profile in increasing order of the parameter.
    points : numpy.ndarray
        (n_points, n_par) all parameters at each point (profile scale).
    reached_lower, reached_upper : bool
        Whether the walk reached the parameter's bound before the quantile.
    messages : list of str
    """

    parameter: ProfiledParameter
    values: np.ndarray
    zeta: np.ndarray
    points: np.ndarray
    reached_lower: bool
    reached_upper: bool
    messages: list[str] = field(default_factory=list)

    def limits(self, level: float = 0.95) -> tuple[float, float]:
        """Lower and upper confidence limits on the profile's scale.

        Where the profile ends at the parameter's bound before reaching the quantile, the
        limit is the bound; where it ends elsewhere (failed evaluations), NaN.
        """
        z = st.norm.ppf(0.5 + level / 2)
        inverse = _inverse_profile(self.values, self.zeta, self.messages, self.parameter.name)
        out = []
        for target, reached, bound in (
            (-z, self.reached_lower, self.parameter.lower),
            (z, self.reached_upper, self.parameter.upper),
        ):
            if inverse is not None and self.zeta.min() <= target <= self.zeta.max():
                out.append(float(inverse(target)))
            else:
                out.append(float(bound) if reached else np.nan)
        return out[0], out[1]


# --- parameters on the SD scale ------------------------------------------------------


def theta_to_sdcor(design, theta, sigma: float = 1.0) -> np.ndarray:
    """SDs and correlations of the random effects from lme4's ``theta``.

    In the order of ``theta`` (per term, the lower triangle of its covariance matrix by
    columns): a diagonal entry gives the SD of that coefficient, an entry below the
    diagonal the correlation of its row's and column's coefficients (0 where an SD is 0).

    Parameters
    ----------
    design : MixedDesign
    theta : array-like
    sigma : float
        Residual SD of a linear model (1 otherwise): the SDs are ``sigma`` times those of
        the relative covariance factor.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models.design import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2, 4, 3, 5, 6], "x": [0.0, 1, 0, 1, 0, 1],
    ...                    "g": list("aabbcc")})
    >>> d = build_design("y ~ x + (x | g)", df)
    >>> theta_to_sdcor(d, [2.0, 0.0, 1.0], sigma=3.0).tolist()
    [6.0, 0.0, 3.0]
    >>> sdcor_to_theta(d, [6.0, 0.0, 3.0], sigma=3.0).tolist()
    [2.0, 0.0, 1.0]
    """
    from .design import _lower_triangle_colmajor

    theta = np.asarray(theta, dtype=float)
    out = np.empty(theta.size)
    for block in design.blocks:
        t = block.factor(theta)
        cov = sigma**2 * (t @ t.T)
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
        rows, cols = _lower_triangle_colmajor(block.n_coef)
        values = []
        for r, c in zip(rows, cols, strict=True):
            if r == c:
                values.append(sd[r])
            else:
                denom = sd[r] * sd[c]
                values.append(float(np.clip(cov[r, c] / denom, -1, 1)) if denom > 0 else 0.0)
        out[block.theta_slice] = values
    return out


def sdcor_to_theta(design, sdcor, sigma: float = 1.0) -> np.ndarray:
    """lme4's ``theta`` from SDs and correlations (:func:`theta_to_sdcor`'s inverse).

    Each term's factor is ``diag(sd) chol(R) / sigma`` with ``R`` the correlation matrix
    (its Cholesky factor taken as positive semidefinite, so correlations of -1 and 1 are
    allowed); raises ``numpy.linalg.LinAlgError`` when the correlations do not form a
    correlation matrix.
    """
    from .design import _lower_triangle_colmajor

    sdcor = np.asarray(sdcor, dtype=float)
    theta = np.empty(sdcor.size)
    for block in design.blocks:
        rows, cols = _lower_triangle_colmajor(block.n_coef)
        sd, corr = block_sd_corr(sdcor[block.theta_slice], rows, cols)
        factor = sd[:, None] * _psd_cholesky(corr) / sigma
        theta[block.theta_slice] = factor[rows, cols]
    return theta


def block_sd_corr(values, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """The SDs and the correlation matrix of one random term from its entries on the SD
    scale (:func:`theta_to_sdcor`'s order: the lower triangle by columns, ``rows`` and
    ``cols`` its indices)."""
    k = int(max(rows)) + 1
    corr = np.eye(k)
    sd = np.zeros(k)
    for v, r, c in zip(values, rows, cols, strict=True):
        if r == c:
            sd[r] = v
        else:
            corr[r, c] = corr[c, r] = v
    return sd, corr


def _psd_cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semidefinite matrix (zero columns where a
    pivot is zero); LinAlgError if it is not positive semidefinite."""
    k = matrix.shape[0]
    lower = np.zeros((k, k))
    for j in range(k):
        pivot = matrix[j, j] - lower[j, :j] @ lower[j, :j]
        if pivot < -1e-12:
            raise np.linalg.LinAlgError("correlations do not form a correlation matrix")
        lower[j, j] = np.sqrt(max(pivot, 0.0))
        for i in range(j + 1, k):
            num = matrix[i, j] - lower[i, :j] @ lower[j, :j]
            if lower[j, j] > 0:
                lower[i, j] = num / lower[j, j]
            elif abs(num) > 1e-12:
                raise np.linalg.LinAlgError("correlations do not form a correlation matrix")
    return lower


def profile_parameters(fit) -> list[ProfiledParameter]:
    """The parameters a profile of ``fit`` covers, in lme4's order and with its names.

    Random-effect SDs and correlations (``.sig01`` ...), the residual SD (``.sigma``,
    linear models), NB2's size (``.nb_size``, on the scale ``size**-0.5``), then the fixed
    effects. The values are the fit's estimates.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})
    >>> params = profile_parameters(fit_mixed("y ~ 1 + (1 | g)", df))
    >>> [(p.name, p.group, p.term) for p in params]  # doctest: +NORMALIZE_WHITESPACE
    [('.sig01', 'g', 'sd (Intercept)'), ('.sigma', 'Residual', 'sd'),
     ('(Intercept)', '', '(Intercept)')]
    """
    from .design import _lower_triangle_colmajor

    design = fit.design
    values = theta_to_sdcor(design, fit.theta, fit.sigma)
    out = []
    for block in design.blocks:
        rows, cols = _lower_triangle_colmajor(block.n_coef)
        names = block.coef_names
        for offset, (r, c) in enumerate(zip(rows, cols, strict=True)):
            index = block.theta_slice.start + offset
            name = f".sig{index + 1:02d}"
            if r == c:
                out.append(
                    ProfiledParameter(
                        name, block.group, f"sd {names[r]}", "sd", values[index], 0.0, np.inf
                    )
                )
            else:
                term = f"cor {names[c]}, {names[r]}"
                out.append(
                    ProfiledParameter(name, block.group, term, "cor", values[index], -1.0, 1.0)
                )
    if fit.family == "gaussian":
        out.append(ProfiledParameter(".sigma", "Residual", "sd", "sigma", fit.sigma, 0.0, np.inf))
    if fit.nb_theta is not None:
        from .families import glmm_family

        lower, upper = glmm_family(fit.family).dispersion_bounds()
        value = float(fit.nb_theta) ** -0.5 if np.isfinite(fit.nb_theta) else lower[0]
        out.append(
            ProfiledParameter(
                ".nb_size", "NB2", "size", "nb_size", value, float(lower[0]), float(upper[0])
            )
        )
    for name, value in zip(design.fixed_names, fit.beta, strict=True):
        out.append(ProfiledParameter(name, "", name, "fixed", float(value), -np.inf, np.inf))
    return out


# --- deviance with one parameter held fixed --------------------------------------------


class _LmmProfiler:
    """ML deviance of a linear mixed model on the SD scale (lme4's ``devfun2``)."""

    def __init__(self, fit):
        from .lmm import LmmProblem, fit_lmm

        self.design = design = fit.design
        ml = fit
        if fit.method == "REML":
            ml = fit_lmm(design, reml=False, control={"satterthwaite": False})
        self.problem = LmmProblem(design)
        self.params = profile_parameters(ml)
        self.n_var = len(ml.theta) + 1
        self.optimum = np.array([p.value for p in self.params])
        self.stderr = np.sqrt(np.diag(ml.vcov))
        self.lower = np.array([p.lower for p in self.params])
        self.upper = np.array([p.upper for p in self.params])
        sd_scale = np.where(self.optimum[: self.n_var] > 0, self.optimum[: self.n_var], ml.sigma)
        kinds = [p.kind for p in self.params[: self.n_var]]
        self.var_scale = np.where(np.array(kinds) == "cor", 1.0, sd_scale)
        self.base = self.deviance(self.optimum[: self.n_var])
        # optimise in units of the standard errors at the optimum, where the deviance's
        # curvature is about 1 in every direction
        self.var_scale = self.var_scale * _curvature_scale(
            lambda z: self.deviance(z * self.var_scale),
            self.optimum[: self.n_var] / self.var_scale,
        )
        from .lmm import theta_scale

        scale = theta_scale(design)
        self.theta_opt_scale = scale * _curvature_scale(
            lambda z: self._ml_deviance(z / scale), ml.theta * scale
        )

    def _ml_deviance(self, theta) -> float:
        try:
            return self.problem.profiled_deviance(theta, reml=False)
        except np.linalg.LinAlgError:
            return np.inf

    def _to_params(self, varpar) -> np.ndarray:
        """The SDs, correlations and sigma at a point of the walk's coordinates (the same
        here; a profile of a variance share walks in other coordinates)."""
        return varpar

    def deviance(self, varpar) -> float:
        """ML deviance at (SDs and correlations, sigma), profiled over the fixed effects."""
        sigma = varpar[-1]
        if not sigma > 0:
            return np.inf
        try:
            theta = sdcor_to_theta(self.design, varpar[:-1], sigma)
            value = self.problem.deviance_varpar(np.append(theta, sigma), reml=False)
        except np.linalg.LinAlgError:
            return np.inf
        return float(value - self.problem.log_w) if np.isfinite(value) else np.inf

    def point(self, index: int, value: float, start: np.ndarray):
        """Deviance minimised with parameter ``index`` at ``value``; all parameters there."""
        if index < self.n_var:
            return self._variance_point(index, value, start)
        return self._fixed_point(index - self.n_var, value, start)

    def _variance_point(self, index, value, start):
        free = np.delete(np.arange(self.n_var), index)
        scale = self.var_scale[free]

        def objective(z):
            par = np.empty(self.n_var)
            par[index] = value
            par[free] = z * scale
            return self.deviance(par)

        x0 = np.clip(start[free], self.lower[free], self.upper[free]) / scale
        bounds = [
            (lo / s if np.isfinite(lo) else None, hi / s if np.isfinite(hi) else None)
            for lo, hi, s in zip(self.lower[free], self.upper[free], scale, strict=True)
        ]
        res = _minimise(objective, x0, bounds)
        par = np.empty(self.n_var)
        par[index] = value
        par[free] = res.x * scale
        varpar = self._to_params(par)
        theta = sdcor_to_theta(self.design, varpar[:-1], varpar[-1])
        beta = self.problem.solve(theta).beta
        return float(res.fun), np.concatenate([par, beta])

    def _fixed_point(self, j, value, start):
        from .lmm import LmmProblem

        design = self.design
        keep = np.delete(np.arange(design.p), j)
        reduced = replace(
            design,
            X=design.X[:, keep],
            fixed_names=[design.fixed_names[k] for k in keep],
            offset=design.offset + design.X[:, j] * value,
        )
        problem = LmmProblem(reduced) if keep.size else _NoFixedProblem(reduced)
        scale = self.theta_opt_scale
        lower = design.theta_lower * scale

        def objective(z):
            try:
                return problem.profiled_deviance(z / scale, reml=False)
            except np.linalg.LinAlgError:
                return np.inf

        theta0 = sdcor_to_theta(design, start[: self.n_var - 1], start[self.n_var - 1])
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        res = _minimise(objective, np.maximum(theta0 * scale, lower), bounds)
        theta = res.x / scale
        solution = problem.solve(theta)
        sigma = float(np.sqrt(solution.pwrss / design.n))
        beta = np.empty(design.p)
        beta[keep] = solution.beta
        beta[j] = value
        varpar = np.append(theta_to_sdcor(design, theta, sigma), sigma)
        return float(res.fun), np.concatenate([varpar, beta])

    def first_step(self, index: int, delta: float) -> float:
        if index >= self.n_var:
            return self.optimum[index] + delta * self.stderr[index - self.n_var]
        value = self.optimum[index]
        return 1e-3 if value == 0 else value * 1.01


class _NoFixedProblem:
    """The PLS problem of a model with no fixed effects left (the only column held fixed)."""

    def __init__(self, design):
        from .linalg import SparseCholesky

        self.design = design
        self.n = design.n
        w = design.prior_weights
        self.resid = design.y - design.offset
        self.w = w
        ztw = design.Zt.multiply(w).tocsc() if not np.all(w == 1) else design.Zt
        self.ztwz = (ztw @ design.Zt.T).tocsc()
        self.ztwr = np.asarray(ztw @ self.resid).ravel()
        self.rtwr = float(self.resid @ (self.resid * w))
        self.log_w = float(np.sum(np.log(w)))
        self.chol = SparseCholesky(design.leading_block)

    def solve(self, theta):
        import scipy.sparse as sp

        from .lmm import PlsSolution

        lt = self.design.lambdat(theta)
        a = (lt @ self.ztwz @ lt.T + sp.identity(self.design.q, format="csc")).tocsc()
        ltzwr = lt @ self.ztwr
        self.chol.factor(a)
        u = self.chol.solve(ltzwr[:, None])[:, 0]
        pwrss = max(self.rtwr - u @ ltzwr, np.finfo(float).tiny)
        empty = np.empty(0)
        return PlsSolution(theta, empty, u, pwrss, self.chol.logdet(), 0.0, np.empty((0, 0)))

    def profiled_deviance(self, theta, reml: bool = False) -> float:
        s = self.solve(theta)
        return s.logdet_l - self.log_w + self.n * (1 + np.log(2 * np.pi * s.pwrss / self.n))


class _GlmmProfiler:
    """Laplace (or AGQ) deviance of a GLMM on the SD scale, all parameters jointly."""

    def __init__(self, fit):
        from .glmm import laplace_objective

        self.design = design = fit.design
        nagq = int(fit.method[4:-1]) if fit.method.startswith("AGQ(") else 1
        self.objective, lower_x, upper_x = laplace_objective(design, fit.family, nagq)
        self.params = profile_parameters(fit)
        self.n_theta = len(fit.theta)
        self.n_disp = len(lower_x) - self.n_theta - design.p
        self.lower = np.array([p.lower for p in self.params])
        self.upper = np.array([p.upper for p in self.params])
        self.scalar = all(block.n_coef == 1 for block in design.blocks)
        stderr = np.sqrt(np.diag(fit.vcov))
        n_theta, p = self.n_theta, design.p
        self.scale = np.ones(len(self.params))
        sd = np.array([q.value for q in self.params[:n_theta]])
        kinds = np.array([q.kind for q in self.params[:n_theta]])
        self.scale[:n_theta] = np.where((kinds == "sd") & (sd > 0), sd, 1.0)
        self.scale[n_theta + self.n_disp :] = np.where(stderr > 0, stderr, 1.0)
        self.stderr = stderr
        # params are (sdcor, disp, beta), x = (theta, beta, disp): x[order[k]] is param k
        order = list(range(n_theta)) + list(range(n_theta + p, n_theta + p + self.n_disp))
        self.order = np.array(order + list(range(n_theta, n_theta + p)))
        self.to_x_order = np.argsort(self.order)
        start = np.array([q.value for q in self.params])
        self._hessian = None
        self.optimum = start
        self.optimum, self.base, self.moved = self._polish(start)
        if self.moved:
            self._hessian = None  # to be taken at the polished optimum

    def _x(self, par) -> np.ndarray:
        theta = sdcor_to_theta(self.design, par[: self.n_theta])
        x = np.concatenate([theta, par[self.n_theta :]])
        # x in profile order is (theta, disp, beta); the objective wants (theta, beta, disp)
        return x[self.to_x_order]

    def value_and_gradient(self, par):
        par = np.asarray(par, dtype=float)
        try:
            x = self._x(par)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(par)
        value, grad_x = self.objective.value_and_gradient(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(par)
        grad = grad_x[self.order]
        grad[: self.n_theta] = self._theta_chain(par, grad_x[: self.n_theta])
        return float(value), grad

    def _theta_chain(self, par, grad_theta):
        if self.scalar:
            return grad_theta
        sdcor = par[: self.n_theta]
        jac = np.empty((self.n_theta, self.n_theta))
        for k in range(self.n_theta):
            h = 1e-6 * max(1.0, abs(sdcor[k]))
            up, down = sdcor.copy(), sdcor.copy()
            up[k] += h
            down[k] -= h
            if self.params[k].kind == "cor":
                up[k], down[k] = min(up[k], 1.0), max(down[k], -1.0)
            elif down[k] < 0:
                down[k] = 0.0
            try:
                jac[:, k] = (
                    sdcor_to_theta(self.design, up) - sdcor_to_theta(self.design, down)
                ) / (up[k] - down[k])
            except np.linalg.LinAlgError:
                jac[:, k] = 0.0
        return jac.T @ grad_theta

    def _minimise_over(self, free, fixed_values, start):
        """Minimise over the parameters ``free`` from ``start``, the others at
        ``fixed_values``. The fixed effects among them move in coordinates whitened by
        their block of the Hessian at the optimum (:meth:`_whitening`), the variance
        parameters in units of their estimates; bounds apply to the latter only."""
        scale = self.scale[free]
        newton = self._newton_over(free, fixed_values, start)
        if newton is not None:
            return newton
        unbounded = np.array([self.params[i].kind == "fixed" for i in free])
        root = self._whitening(free[unbounded]) if unbounded.any() else None
        origin = np.clip(start[free], self.lower[free], self.upper[free]) / scale

        def to_par(z):
            y = z.copy()
            if root is not None:
                y[unbounded] = origin[unbounded] + scipy.linalg.solve_triangular(
                    root, z[unbounded], lower=True, trans="T"
                )
            par = fixed_values.copy()
            par[free] = y * scale
            return par

        def fun(z):
            value, grad = self.value_and_gradient(to_par(z))
            g = grad[free] * scale
            if root is not None:
                g[unbounded] = scipy.linalg.solve_triangular(root, g[unbounded], lower=True)
            return value, g

        bounds = [
            (lo / s if np.isfinite(lo) else None, hi / s if np.isfinite(hi) else None)
            for lo, hi, s in zip(self.lower[free], self.upper[free], scale, strict=True)
        ]
        z0 = origin.copy()
        if root is not None:
            z0[unbounded] = 0.0
        res = so.minimize(
            fun,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-5, "maxcor": 20},
        )
        return float(res.fun), to_par(res.x)

    def _newton_over(self, free, fixed_values, start):
        """Newton steps with the Hessian at the optimum, within the bounds; the minimum
        and the parameters there, or None where they do not converge in
        :data:`NEWTON_STEPS` steps (then L-BFGS-B takes over).

        The profile moves a little from one point to the next, so the Hessian at the
        optimum is a good model of the deviance over the others: a few steps, each one
        evaluation of the deviance and its gradient, reach the minimum. Parameters at a
        bound that the gradient pushes outwards stay there; a step that would cross a
        bound is shortened to reach it.
        """
        hess = self._full_hessian()
        if hess is None:
            return None
        scale = self.scale[free]
        lo, hi = self.lower[free] / scale, self.upper[free] / scale
        h = hess[np.ix_(free, free)]
        y = np.clip(start[free] / scale, lo, hi)

        def evaluate(y):
            par = fixed_values.copy()
            par[free] = y * scale
            value, grad = self.value_and_gradient(par)
            return value, grad[free] * scale, par

        value, grad, par = evaluate(y)
        if not np.isfinite(value):
            return None
        for _ in range(NEWTON_STEPS):
            held = ((y <= lo + 1e-12) & (grad > 0)) | ((y >= hi - 1e-12) & (grad < 0))
            move = ~held
            step = np.zeros_like(y)
            try:
                step[move] = -np.linalg.solve(h[np.ix_(move, move)], grad[move])
            except np.linalg.LinAlgError:
                return None
            decrement = float(-grad @ step)
            if decrement < 0:
                return None
            if decrement < NEWTON_TOL:
                return float(value), par
            with np.errstate(divide="ignore", invalid="ignore"):
                room = np.where(step < 0, (lo - y) / step, np.where(step > 0, (hi - y) / step, 1))
            length = min(1.0, float(np.min(room)))
            for _ in range(MAX_HALVINGS):
                trial = np.clip(y + length * step, lo, hi)
                t_value, t_grad, t_par = evaluate(trial)
                if np.isfinite(t_value) and t_value <= value - 1e-4 * length * decrement:
                    break
                length /= 2
            else:
                return None
            y, value, grad, par = trial, t_value, t_grad, t_par
        return None

    def _full_hessian(self):
        """The Hessian at the optimum in units of the parameters' scales (None if it is
        not finite or not positive definite)."""
        self._whitening(np.arange(1))
        hess = self._hessian
        if not np.all(np.isfinite(hess)) or np.linalg.eigvalsh(hess)[0] <= 0:
            return None
        return hess

    def _whitening(self, indices):
        """Lower Cholesky factor of the Hessian block of the fixed effects ``indices``
        (in units of their standard errors) at the optimum, or None if it is not
        positive definite. The Hessian is taken once, by central differences of the
        gradient."""
        if self._hessian is None:
            n = len(self.params)
            hess = np.empty((n, n))
            for j in range(n):
                step = np.zeros(n)
                step[j] = 1e-4 * self.scale[j]
                up = self.value_and_gradient(self.optimum + step)[1] * self.scale
                down = self.value_and_gradient(self.optimum - step)[1] * self.scale
                hess[:, j] = (up - down) / 2e-4
            self._hessian = 0.5 * (hess + hess.T)
        block = self._hessian[np.ix_(indices, indices)]
        try:
            return np.linalg.cholesky(block) if np.all(np.isfinite(block)) else None
        except np.linalg.LinAlgError:
            return None

    def _polish(self, start):
        """The optimum of the exact deviance near the fit's estimates (the fit may have
        used lme4's PIRLS mode or stopped at a looser tolerance)."""
        value0, _ = self.value_and_gradient(start)
        value, par = self._minimise_over(np.arange(len(start)), start.copy(), start)
        if not value <= value0:
            return start, value0, False
        return par, value, bool(np.max(np.abs(par - start) / self.scale) > 1e-3)

    def point(self, index, value, start):
        free = np.delete(np.arange(len(self.params)), index)
        fixed = start.copy()
        fixed[index] = value
        return self._minimise_over(free, fixed, start)

    def first_step(self, index: int, delta: float) -> float:
        value = self.optimum[index]
        if self.params[index].kind == "fixed":
            return value + delta * self.stderr[index - self.n_theta - self.n_disp]
        return 1e-3 if value == 0 else value * 1.01


def _curvature_scale(fun, y, h=1e-3) -> np.ndarray:
    """``1 / sqrt(d2 fun / dy_i^2)`` at ``y`` by central differences (one-sided at a zero),
    the factors that give each coordinate unit curvature; 1 where that fails."""
    f0 = fun(y)
    out = np.ones(y.size)
    for i in range(y.size):
        up, down, up2 = y.copy(), y.copy(), y.copy()
        if y[i] - h < 0 <= y[i]:  # next to a zero bound: forward second difference
            up[i] += h
            up2[i] += 2 * h
            second = (fun(up2) - 2 * fun(up) + f0) / h**2
        else:
            up[i] += h
            down[i] -= h
            second = (fun(up) - 2 * f0 + fun(down)) / h**2
        if np.isfinite(second) and second > 0:
            out[i] = 1 / np.sqrt(second)
    return np.clip(out, 1e-3, 1e3)


def _minimise(objective, x0, bounds):
    """Bounded quasi-Newton minimisation with numerical gradients (the LMM's settings)."""
    if len(x0) == 0:
        return so.OptimizeResult(x=np.empty(0), fun=objective(np.empty(0)))
    return so.minimize(
        objective,
        x0,
        method="L-BFGS-B",
        jac="2-point",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-10, "gtol": 1e-5},
    )


# --- the walk --------------------------------------------------------------------------


def _walk(profiler, index, first, cutoff, delta, messages):
    """lme4's ``fillmat``: from the optimum through ``first`` outwards, one direction."""
    par = profiler.params[index]
    lowcut, upcut = par.lower, par.upper
    opt = profiler.optimum
    est = opt[index]
    rows = [(est, 0.0, opt.copy())]
    point = _zeta_point(profiler, index, first, opt, est, messages)
    if point is None:
        return rows[1:], False
    rows.append(point)
    reached = False
    while len(rows) < MAX_POINTS:
        value, zeta, _ = rows[-1]
        if not (lowcut < value < upcut) or abs(zeta) > cutoff:
            break
        nxt = _next_value(rows[-2], rows[-1], delta, lowcut, upcut, messages, par.name)
        start = _extrapolate(rows[-2], rows[-1], nxt, profiler.lower, profiler.upper)
        point = _zeta_point(profiler, index, nxt, start, est, messages)
        if point is None:
            break
        rows.append(point)
    value, zeta, _ = rows[-1]
    reached = (value <= lowcut or value >= upcut) and abs(zeta) <= cutoff
    return rows[1:], reached


def _extrapolate(previous, last, value, lower, upper):
    """Warm start at ``value``: the other parameters extrapolated linearly from the last
    two points of the walk, within their bounds."""
    step = last[0] - previous[0]
    if step == 0:
        return last[2]
    start = last[2] + (last[2] - previous[2]) * (value - last[0]) / step
    return np.clip(start, lower, upper)


def _next_value(previous, last, delta, lowcut, upcut, messages, name):
    """lme4's ``nextpar``: the value that moves zeta by about ``delta``."""
    num = last[0] - previous[0]
    denom = last[1] - previous[1]
    if not np.isfinite(denom) or denom == 0:
        step = MIN_STEP
    else:
        step = delta * num / denom
        if step < 0:
            messages.append(f"{name}: the profile decreased on the way out")
            step = MIN_STEP
        elif abs(step) > MAX_MULT * abs(num):
            step = MAX_MULT * abs(num)
    return float(min(upcut, max(lowcut, last[0] + np.sign(num) * step)))


def _zeta_point(profiler, index, value, start, est, messages):
    try:
        deviance, point = profiler.point(index, value, start)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        deviance = np.nan
    if not np.isfinite(deviance):
        messages.append(f"{profiler.params[index].name}: the deviance failed at {value:.6g}")
        return None
    diff = deviance - profiler.base
    if diff < -LOWER_DEVIANCE_TOL * max(1.0, abs(profiler.base)):
        messages.append(
            f"{profiler.params[index].name}: the profile found a deviance {-diff:.3g} below "
            "the fit's; the fit had not reached the optimum"
        )
    return value, float(np.sign(value - est) * np.sqrt(max(diff, 0.0))), point


def _inverse_profile(values, zeta, messages, name):
    """Parameter as a function of zeta (lme4's ``backSpline(interpSpline(...))``), or
    linear interpolation of a slightly non-monotone profile; None if it is not monotone."""
    if values.size < 2:
        return None
    dz = np.diff(zeta)
    if np.all(dz > 0):
        forward = CubicSpline(values, zeta, bc_type="natural") if values.size > 2 else None
        if forward is not None:
            slope = forward(values, 1)
            if np.all(slope > 0):
                return CubicHermiteSpline(zeta, values, 1.0 / slope)
        return lambda z: np.interp(z, zeta, values)
    if np.min(dz) < -NON_MONOTONE_TOL:
        messages.append(f"{name}: the profile is not monotone; no interval")
        return None
    keep = np.concatenate([[True], dz > 0])
    return lambda z: np.interp(z, zeta[keep], values[keep])


# --- public functions ------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """The walk meets infinite and undefined deviances on purpose (beyond a bound)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@single_threaded_blas
def make_profiler(fit):
    """The deviance of ``fit`` as a function of its parameters on the SD scale, at its
    optimum, ready for :func:`profile` (and for the variance shares'
    :func:`~resistance_outcomes.models.share_profile.share_intervals`): building it takes
    a polish of the optimum and a Hessian, which the profiles of one fit can share.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})
    >>> [p.name for p in make_profiler(fit_mixed("y ~ 1 + (1 | g)", df)).params]
    ['.sig01', '.sigma', '(Intercept)']
    """
    if not fit.design.blocks:
        raise ModelSpecError("a profile needs a mixed model with at least one random term")
    with _quiet():
        return _LmmProfiler(fit) if fit.family == "gaussian" else _GlmmProfiler(fit)


@single_threaded_blas
def profile(fit, parm=None, level: float = 0.95, profiler=None) -> dict[str, ParameterProfile]:
    """Profiles of the deviance of a fitted mixed model, one per parameter.

    Parameters
    ----------
    fit : MixedResult
    parm : list of str, optional
        Parameters to profile by name (:func:`profile_parameters`: ``.sig01``, ``.sigma``,
        ``.nb_size``, fixed-effect names; ``"theta_"`` all variance parameters,
        ``"beta_"`` all fixed effects); all when omitted.
    level : float
        The walk continues until ``|zeta|`` passes this level's normal quantile plus
        :data:`EXTRA_ZETA`.
    profiler : optional
        From :func:`make_profiler` (``fit``'s), to share it between calls.

    Returns
    -------
    dict
        Parameter name -> :class:`ParameterProfile`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})
    >>> prof = profile(fit_mixed("y ~ 1 + (1 | g)", df, reml=False), parm=[".sigma"])
    >>> p = prof[".sigma"]
    >>> bool(np.all(np.diff(p.zeta) > 0)), [round(v, 3) for v in p.limits()]
    (True, [0.764, 1.188])
    """
    _check_level(level)
    profiler = profiler or make_profiler(fit)
    selected = _select(parm, profiler.params)
    return walk_profiles(profiler, selected, level)


def _check_level(level) -> None:
    if not 0 < level < 1:
        raise ModelSpecError(f"level must be between 0 and 1, got {level!r}")


def walk_profiles(
    profiler, selected, level: float, refine: bool = False
) -> dict[str, ParameterProfile]:
    """The profiles of the parameters ``selected`` (indices into ``profiler.params``),
    each walked out to the quantile of ``level`` plus :data:`EXTRA_ZETA`; with
    ``refine``, points are added where the limits are (:func:`_refine_limits`)."""
    names = [p.name for p in profiler.params]
    cutoff = st.norm.ppf(0.5 + level / 2) + EXTRA_ZETA
    delta = np.sqrt(st.chi2.ppf(1 - ALPHA_MAX, len(names))) * DELTA_CUTOFF
    out = {}
    with _quiet():
        for index in selected:
            prof = _profile_one(profiler, index, cutoff, delta)
            out[names[index]] = _refine_limits(profiler, index, prof, level) if refine else prof
    if getattr(profiler, "moved", False):
        for prof in out.values():
            prof.messages.append(
                "the profile started from the exact Laplace optimum, which differs from "
                "the fit's estimates (lme4's PIRLS mode or a loose optimizer tolerance)"
            )
    return out


def _select(parm, params) -> list[int]:
    names = [p.name for p in params]
    if parm is None:
        return list(range(len(names)))
    if isinstance(parm, str):
        parm = [parm]
    chosen = set()
    for item in parm:
        if item == "theta_":
            chosen |= {i for i, p in enumerate(params) if p.kind != "fixed"}
        elif item == "beta_":
            chosen |= {i for i, p in enumerate(params) if p.kind == "fixed"}
        elif item in names:
            chosen.add(names.index(item))
        else:
            raise ModelSpecError(
                f"unknown parameter {item!r} to profile; the model has {', '.join(names)} "
                "(or 'theta_' for all variance parameters, 'beta_' for all fixed effects)"
            )
    return sorted(chosen)


def _profile_one(profiler, index, cutoff, delta) -> ParameterProfile:
    par = profiler.params[index]
    messages: list[str] = []
    est = profiler.optimum[index]
    shift = profiler.first_step(index, delta)
    up_rows, reached_upper = _walk(profiler, index, shift, cutoff, delta, messages)
    down_rows, reached_lower = [], est <= par.lower
    if est > par.lower:
        # the first point below the estimate mirrors the shift (lme4 starts the downward
        # walk from (shift, optimum) and steps on from the optimum)
        below = _first_below(profiler, index, up_rows, est, delta, par)
        if below is not None:
            down_rows, reached_lower = _walk(profiler, index, below, cutoff, delta, messages)
    base_row = (est, 0.0, profiler.optimum.copy())
    rows = sorted({r[0]: r for r in [*down_rows, base_row, *up_rows]}.values(), key=lambda r: r[0])
    values = np.array([r[0] for r in rows])
    return ParameterProfile(
        parameter=replace(par, value=float(est)),
        values=values,
        zeta=np.array([r[1] for r in rows]),
        points=np.vstack([r[2] for r in rows]),
        reached_lower=bool(reached_lower),
        reached_upper=bool(reached_upper),
        messages=messages,
    )


def _refine_limits(profiler, index, prof, level, max_points=4, tol=1e-3) -> ParameterProfile:
    """Points added to a profile at its interpolated limits until zeta there is within
    ``tol`` of the quantile (at most ``max_points`` per limit).

    The walk's steps suit a profile close to a straight line; where the profile bends
    sharply between two points (another SD reaching zero, say), the spline through them
    misplaces the limit. Each added point is the deviance minimised at the spline's
    limit, warm-started from the nearest point, so the spline then passes through a point
    next to the quantile.
    """
    z = st.norm.ppf(0.5 + level / 2)
    points = zip(prof.values, prof.zeta, prof.points, strict=True)
    rows = {v: (v, zeta, point) for v, zeta, point in points}
    est = prof.parameter.value
    for target in (-z, z):
        for _ in range(max_points):
            values = np.array(sorted(rows))
            zeta = np.array([rows[v][1] for v in values])
            if not zeta.min() <= target <= zeta.max():
                break
            inverse = _inverse_profile(values, zeta, [], prof.parameter.name)
            if inverse is None:
                break
            value = float(inverse(target))
            nearest = values[np.argmin(np.abs(values - value))]
            if value in rows:
                break
            point = _zeta_point(profiler, index, value, rows[nearest][2], est, prof.messages)
            if point is None:
                break
            rows[value] = point
            if abs(point[1] - target) < tol:
                break
    ordered = [rows[v] for v in sorted(rows)]
    return replace(
        prof,
        values=np.array([r[0] for r in ordered]),
        zeta=np.array([r[1] for r in ordered]),
        points=np.vstack([r[2] for r in ordered]),
    )


def _first_below(profiler, index, up_rows, est, delta, par):
    if not up_rows:
        return None
    shift_value, shift_zeta, _ = up_rows[0]
    return _next_value(
        (shift_value, shift_zeta), (est, 0.0), delta, par.lower, par.upper, [], par.name
    )


def profile_intervals(fit, level: float = 0.95, parm=None, profiler=None) -> pd.DataFrame:
    """Profile-likelihood confidence intervals (lme4's ``confint(fit, method="profile")``).

    Parameters
    ----------
    fit : MixedResult
    level : float
    parm : list of str, optional
        As :func:`profile`.
    profiler : optional
        As :func:`profile`.

    Returns
    -------
    pandas.DataFrame
        One row per parameter: parameter (lme4's name), group, term (what it is),
        estimate (the fit's), ci_low, ci_high, method (``"profile"``), and the profile's
        messages in ``note`` (empty when there are none). SDs, correlations and
        ``sigma`` are on their natural scale, NB2's size as the size (an upper limit of
        infinity: the profile reaches the Poisson limit).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})
    >>> ci = profile_intervals(fit_mixed("y ~ 1 + (1 | g)", df))
    >>> ci[["parameter", "ci_low", "ci_high"]].round(3)
         parameter  ci_low  ci_high
    0       .sig01   0.118    1.083
    1       .sigma   0.764    1.188
    2  (Intercept)  -0.384    0.621
    """
    profiles = profile(fit, parm=parm, level=level, profiler=profiler)
    estimates = {p.name: p for p in profile_parameters(fit)}
    rows = []
    for name, prof in profiles.items():
        par = estimates[name]
        low, high = prof.limits(level)
        estimate = par.value
        if par.kind == "nb_size":  # profiled as size**-0.5: decreasing in the size
            estimate = float(fit.nb_theta)
            low, high = _size(high), np.inf if prof.reached_lower else _size(low)
        rows.append(
            {
                "parameter": name,
                "group": par.group,
                "term": par.term,
                "estimate": float(estimate),
                "ci_low": low,
                "ci_high": high,
                "method": "profile",
                "note": "; ".join(dict.fromkeys(prof.messages)),
            }
        )
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


INTERVAL_COLUMNS = ["parameter", "group", "term", "estimate", "ci_low", "ci_high", "method", "note"]


def _size(sigma: float) -> float:
    return float(sigma) ** -2 if np.isfinite(sigma) and sigma > 0 else np.nan
