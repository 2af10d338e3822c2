"""The fitted mixed model: estimates, tidy tables, fit statistics and predictions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.stats as st

from .design import MixedDesign
from .families import get_family
from .formula import ModelSpecError

__all__ = ["MixedResult"]
_STATISTIC_NAME = {True: "t", False: "z"}


@dataclass
class MixedResult:
    """A fitted linear or generalised linear mixed model.

    Attributes
    ----------
    design : MixedDesign
    family : str
        ``"gaussian"``, ``"binomial"``, ``"poisson"`` or ``"negative_binomial"``.
    method : str
        ``"REML"``, ``"ML"``, ``"Laplace"`` or ``"AGQ(25)"``.
    beta : numpy.ndarray
        Fixed effects.
    vcov : numpy.ndarray
        Covariance matrix of ``beta``.
    df : numpy.ndarray or None
        Satterthwaite degrees of freedom per coefficient (linear models); None means
        z tests.
    theta : numpy.ndarray
        Relative covariance parameters (lme4's ``theta``).
    sigma : float
        Residual standard deviation (gaussian), 1 otherwise.
    nb_theta : float or None
        Negative-binomial size parameter (NB2: Var = mu + mu^2 / nb_theta).
    b : numpy.ndarray
        Conditional modes of the random effects on the data scale (``Lambda u``).
    loglik : float
        Log-likelihood; for REML fits the REML log-likelihood (lme4's ``logLik``).
    deviance : float
        -2 log-likelihood of ML and Laplace fits; for REML fits the ML deviance at the REML
        estimates (lme4's ``deviance(fit, REML = FALSE)``).
    n_params : int
        Parameters counted by AIC and BIC.
    converged, singular : bool
    messages : list of str
    extra : dict
        Optimizer details, gradient, Hessian eigenvalues, ``reml_criterion``,
        ``overdispersion`` (Poisson) and similar.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> fit.variance_components[["group", "sd"]].round(3)
          group     sd
    0         g  0.651
    1  Residual  0.886
    >>> fit.fit_statistics["nobs"], fit.fit_statistics["converged"]
    (48, True)
    >>> fit.predict(pd.DataFrame({"x": [0.0], "g": [99]}), ci=True).round(2)
       estimate  ci_low  ci_high
    0      1.03    0.51     1.55
    """

    design: MixedDesign
    family: str
    method: str
    beta: np.ndarray
    vcov: np.ndarray
    df: np.ndarray | None
    theta: np.ndarray
    sigma: float
    nb_theta: float | None
    b: np.ndarray
    loglik: float
    deviance: float
    n_params: int
    converged: bool
    singular: bool
    messages: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    # --- tables -----------------------------------------------------------------------

    @property
    def coefficients(self) -> pd.DataFrame:
        """Fixed effects, one row per term.

        Columns: term, estimate, std_error, statistic (t with Satterthwaite df for linear
        models, z otherwise), df (empty for z tests), p_value, ci_low, ci_high (95%, t or
        normal quantile) and, for non-identity links, exp_estimate, exp_ci_low, exp_ci_high
        (odds ratios or rate ratios; empty for gaussian models).
        """
        from .inference import wald_table

        return wald_table(
            self.design.fixed_names,
            self.beta,
            np.sqrt(np.diag(self.vcov)),
            self.df,
            exponentiate=get_family(self.family).exponentiate,
        )

    @property
    def variance_components(self) -> pd.DataFrame:
        """Random-effect variances, SDs and correlations in lme4's ``VarCorr`` layout.

        One row per variance (term2 empty, sd filled) and per covariance (term2 names the
        second coefficient, corr filled), plus a ``Residual`` row for gaussian models.
        """
        rows = []
        covariances = self.design.covariance_matrices(self.theta, self.sigma)
        for block, cov in zip(self.design.blocks, covariances, strict=True):
            sd = np.sqrt(np.diag(cov))
            for i, name in enumerate(block.coef_names):
                rows.append((block.group, name, np.nan, cov[i, i], sd[i], np.nan))
            for j in range(block.n_coef):
                for i in range(j + 1, block.n_coef):
                    corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                    rows.append(
                        (
                            block.group,
                            block.coef_names[j],
                            block.coef_names[i],
                            cov[i, j],
                            np.nan,
                            corr,
                        )
                    )
        if self.family == "gaussian":
            rows.append(("Residual", np.nan, np.nan, self.sigma**2, self.sigma, np.nan))
        table = pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd", "corr"])
        return table.astype({"group": "str", "term1": "str", "term2": "str"})

    @property
    def fit_statistics(self) -> dict:
        """Fit statistics as a JSON-serialisable mapping.

        Keys: nobs, n_dropped, dropped_columns, groups, loglik, aic, bic, deviance,
        reml_criterion, converged, singular, r2_marginal, r2_conditional, icc,
        overdispersion (Poisson), nb_theta, messages. R² and ICC follow
        :func:`resistance_outcomes.models.inference.nakagawa_r2`.
        """
        from .inference import nakagawa_r2

        r2 = self.extra.get("_r2")
        if r2 is None:
            r2 = self.extra["_r2"] = nakagawa_r2(self)
        nobs = self.design.n
        return {
            "nobs": nobs,
            "n_dropped": self.design.n_dropped,
            "dropped_columns": dict(self.design.dropped_columns),
            "groups": {block.group: block.n_levels for block in self.design.blocks},
            "loglik": self.loglik,
            "aic": -2 * self.loglik + 2 * self.n_params,
            "bic": -2 * self.loglik + math.log(nobs) * self.n_params,
            "deviance": self.deviance,
            "reml_criterion": self.extra.get("reml_criterion"),
            "converged": bool(self.converged),
            "singular": bool(self.singular),
            "r2_marginal": r2["r2_marginal"],
            "r2_conditional": r2["r2_conditional"],
            "icc": r2["icc_adjusted"],
            "overdispersion": self._overdispersion(),
            "nb_theta": self.nb_theta,
            "messages": list(self.messages),
        }

    def _overdispersion(self) -> float | None:
        """Pearson chi-square over residual df of a Poisson fit (None for other families)."""
        if self.family != "poisson":
            return None
        return self.extra.get("overdispersion", self.extra.get("overdispersion_ratio"))

    # --- prediction -------------------------------------------------------------------

    def new_random_effects(self, rng: np.random.Generator) -> np.ndarray:
        """Random effects drawn afresh from the fitted covariance: ``sigma Lambda u`` with
        ``u ~ N(0, I)`` (the layout of ``b``; lme4's ``simulate(re.form = NA)``)."""
        u = rng.standard_normal(self.design.q)
        return self.sigma * (self.design.lambdat(self.theta).T @ u)

    def simulate(
        self, nsim: int = 1, seed: int | np.random.Generator | None = None, use_re: bool = False
    ) -> pd.DataFrame:
        """Responses simulated from the fitted model, for the rows it was fitted to.

        Each replicate draws new random effects from the estimated covariance (as lme4's
        ``simulate.merMod`` does by default) or, with ``use_re=True``, keeps the conditional
        modes ``b``; then draws each response from the family around
        ``g^-1(X beta + Z b + offset)``: normal with SD ``sigma / sqrt(weight)``, binomial
        successes out of the row's trials (1 for a 0/1 response, ``s + f`` for
        ``cbind(s, f)``), Poisson, or NB2 with the estimated size.

        Parameters
        ----------
        nsim : int
            Number of replicates.
        seed : int or numpy.random.Generator, optional
            Seed of the draws; the same seed gives the same responses.
        use_re : bool
            Condition on the estimated random effects instead of drawing new ones.

        Returns
        -------
        pandas.DataFrame
            One column per replicate (``sim_1``, ``sim_2``, ...), indexed like the fitted
            rows (``design.frame``); binomial ``cbind`` models give successes.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from resistance_outcomes.models import fit_mixed
        >>> rng = np.random.default_rng(3)
        >>> g = np.repeat(np.arange(10), 5)
        >>> df = pd.DataFrame({"g": g, "y": rng.poisson(np.exp(0.5 + rng.normal(0, .5, 10)[g]))})
        >>> fit = fit_mixed("y ~ 1 + (1 | g)", df, family="poisson")
        >>> sims = fit.simulate(nsim=3, seed=1)
        >>> sims.shape, list(sims.columns)
        ((50, 3), ['sim_1', 'sim_2', 'sim_3'])
        >>> bool((fit.simulate(nsim=3, seed=1) == sims).all().all())
        True
        """
        if int(nsim) < 1:
            raise ModelSpecError(f"nsim must be a positive whole number, got {nsim!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        family = get_family(self.family)
        if self.nb_theta is not None and hasattr(family, "theta"):
            family = replace(family, theta=float(self.nb_theta))
        design = self.design
        fixed = design.X @ self.beta + design.offset
        zt = design.Zt
        columns = {}
        for k in range(int(nsim)):
            eta = fixed
            if zt.shape[0]:
                b = self.b if use_re else self.new_random_effects(rng)
                eta = fixed + zt.T @ b
            mu = family.mu(eta)
            columns[f"sim_{k + 1}"] = family.draw(rng, mu, design.prior_weights, self.sigma)
        return pd.DataFrame(columns, index=design.frame.index)

    def simulated_residuals(self, nsim: int = 250, *, seed: int | None, conditional: bool = False):
        """Simulation-based scaled quantile residuals (the DHARMa method).

        See :func:`resistance_outcomes.models.residuals.simulated_residuals`; the result's
        ``tests()`` gives the uniformity, dispersion, zero-inflation and outlier tests.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from resistance_outcomes.models import fit_mixed
        >>> rng = np.random.default_rng(3)
        >>> g = np.repeat(np.arange(10), 5)
        >>> df = pd.DataFrame({"g": g, "y": rng.poisson(np.exp(0.5 + rng.normal(0, .5, 10)[g]))})
        >>> fit = fit_mixed("y ~ 1 + (1 | g)", df, family="poisson")
        >>> res = fit.simulated_residuals(nsim=50, seed=2)
        >>> res.table.shape, bool(res.table.residual.between(0, 1).all())
        ((50, 4), True)
        """
        from .residuals import simulated_residuals

        return simulated_residuals(self, nsim, seed=seed, conditional=conditional)

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        level: str = "conditional",
        scale: str = "response",
        ci: bool = False,
    ) -> pd.DataFrame:
        """Predicted values, optionally with 95% confidence intervals.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Rows to predict for; the fitted rows when omitted. Groups not seen in fitting
            get zero random effects.
        level : {"conditional", "population"}
            ``"conditional"`` adds the random effects' conditional modes to ``X beta``;
            ``"population"`` uses ``X beta`` (plus offset) alone.
        scale : {"response", "link"}
        ci : bool
            Add ci_low and ci_high: ``eta -+ 1.96 se`` on the link scale, with
            ``se^2 = x' vcov(beta) x``, transformed to the response scale. The uncertainty
            of the random effects is not included (so for ``level="conditional"`` the
            interval describes the fixed part only).

        Returns
        -------
        pandas.DataFrame
            Column ``estimate`` (and ``ci_low``, ``ci_high``), indexed like the rows.
        """
        if level not in ("conditional", "population"):
            raise ModelSpecError(f"level must be 'conditional' or 'population', got {level!r}")
        if scale not in ("response", "link"):
            raise ModelSpecError(f"scale must be 'response' or 'link', got {scale!r}")
        if newdata is None:
            x, zt, offset = self.design.X, self.design.Zt, self.design.offset
            index = self.design.frame.index
        else:
            x, zt, offset = self.design.new_design_matrices(newdata)
            index = newdata.index
        eta = x @ self.beta + offset
        if level == "conditional" and zt.shape[0]:
            eta = eta + zt.T @ self.b
        link = get_family(self.family).link
        inverse = link.inverse if scale == "response" else (lambda v: v)
        out = pd.DataFrame({"estimate": inverse(eta)}, index=index)
        if ci:
            se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.vcov, x))
            z = st.norm.ppf(0.975)
            out["ci_low"] = inverse(eta - z * se)
            out["ci_high"] = inverse(eta + z * se)
        return out

    # --- confidence intervals -----------------------------------------------------------

    def confint(
        self,
        method: str = "profile",
        level: float = 0.95,
        parm=None,
        *,
        nsim: int = 1000,
        seed: int | None = None,
        n_jobs: int = 1,
    ) -> pd.DataFrame:
        """Confidence intervals of the parameters (lme4's ``confint``).

        Parameters
        ----------
        method : {"profile", "wald", "boot"}
            ``"profile"``: profile-likelihood intervals of every random-effect SD and
            correlation, the residual SD (linear models), NB2's size and every fixed
            effect (:func:`~resistance_outcomes.models.profile.profile_intervals`), plus
            (``parm`` omitted) the ICC's and each grouping factor's share of variance
            (:func:`~resistance_outcomes.models.share_profile.share_intervals`). ``"wald"``: the
            fixed effects' intervals of :attr:`coefficients` at ``level`` (t with
            Satterthwaite df for linear models, z otherwise) and NaN for the variance
            parameters, as lme4's ``method = "Wald"``. ``"boot"``: parametric-bootstrap
            percentile intervals from ``nsim`` refits (:meth:`bootstrap`, whose columns
            it returns; ``seed`` required).
        level : float
            Confidence level.
        parm : list of str, optional
            Parameters by name (``.sig01``, ``.sigma``, ``.nb_size``, fixed-effect names;
            ``"theta_"`` or ``"beta_"``); all when omitted (profile and Wald).
        nsim, seed, n_jobs
            The bootstrap's refits, seed and worker processes (``method="boot"`` only).

        Returns
        -------
        pandas.DataFrame
            One row per parameter: parameter (lme4's name; ``ICC`` and ``VPC (<group>)``
            for the variance shares), group and term (what it is), estimate, ci_low,
            ci_high, method and note (what the profile met, e.g. a bound; empty
            otherwise).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from resistance_outcomes.models import fit_mixed
        >>> rng = np.random.default_rng(1)
        >>> g = np.repeat(np.arange(8), 6)
        >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})
        >>> fit = fit_mixed("y ~ 1 + (1 | g)", df)
        >>> fit.confint(method="wald")[["parameter", "ci_low", "ci_high"]].round(3)
             parameter  ci_low  ci_high
        0       .sig01     NaN      NaN
        1       .sigma     NaN      NaN
        2  (Intercept)  -0.453     0.69
        """
        from . import profile as prof

        method = str(method).lower()
        if not 0 < level < 1:
            raise ModelSpecError(f"level must be between 0 and 1, got {level!r}")
        if method == "boot":
            if seed is None:
                raise ModelSpecError("method='boot' needs a seed: confint('boot', seed=...)")
            return self.bootstrap(nsim, seed, n_jobs=n_jobs, level=level)
        if method == "profile":
            from .share_profile import share_intervals

            profiler = prof.make_profiler(self)
            table = prof.profile_intervals(self, level=level, parm=parm, profiler=profiler)
            if parm is None:
                shares = share_intervals(self, level=level, profiler=profiler)
                table = pd.concat([table, shares], ignore_index=True) if len(shares) else table
            return table
        if method != "wald":
            raise ModelSpecError(
                f"unknown confint method {method!r}; use 'profile', 'wald' or 'boot'"
            )
        params = prof.profile_parameters(self)
        chosen = prof._select(parm, params)
        se = np.sqrt(np.diag(self.vcov))
        alpha = 0.5 + level / 2
        rows = []
        fixed = {name: i for i, name in enumerate(self.design.fixed_names)}
        for k in chosen:
            par = params[k]
            low = high = np.nan
            estimate = par.value if par.kind != "nb_size" else float(self.nb_theta)
            if par.kind == "fixed":
                i = fixed[par.name]
                q = st.norm.ppf(alpha) if self.df is None else st.t.ppf(alpha, self.df[i])
                low, high = estimate - q * se[i], estimate + q * se[i]
            rows.append((par.name, par.group, par.term, estimate, low, high, "wald", ""))
        return pd.DataFrame(rows, columns=prof.INTERVAL_COLUMNS)

    # --- parametric bootstrap ---------------------------------------------------------

    def bootstrap(
        self,
        nsim: int,
        seed: int,
        n_jobs: int = 1,
        level: float = 0.95,
        contrasts=None,
    ) -> pd.DataFrame:
        """Parametric-bootstrap percentile intervals (lme4's ``confint(method = "boot")``).

        ``nsim`` response sets are simulated from the fit with new random effects, the
        model is refitted to each, and the intervals are percentiles of the refits'
        fixed effects, random-effect SDs and correlations, residual SD or NB size, ICC,
        marginal and conditional R² and any ``contrasts``
        (:mod:`resistance_outcomes.models.bootstrap`). Failed refits are counted, not
        dropped silently; results depend on ``seed`` only, not on ``n_jobs``.

        Parameters
        ----------
        nsim : int
        seed : int
        n_jobs : int
            Worker processes.
        level : float
        contrasts : str, mapping or list, optional
            ``{"pairwise": "<factor>"}``, ``{"slopes": [...], "factor": "<factor>"}``.

        Returns
        -------
        pandas.DataFrame
            One row per quantity: parameter, group and term (as :meth:`confint`'s
            profile rows name it), kind, estimate, ci_low, ci_high, level, method
            (``"boot"``), replicates (refits used), nsim, failed, singular,
            not_converged, boot_sd.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from resistance_outcomes.models import fit_mixed
        >>> rng = np.random.default_rng(1)
        >>> g = np.repeat(np.arange(8), 6)
        >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
        >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
        >>> ci = fit_mixed("y ~ x + (1 | g)", df).bootstrap(nsim=20, seed=1)
        >>> ci[["parameter", "replicates", "failed"]].head(2).values.tolist()
        [['(Intercept)', 20, 0], ['x', 20, 0]]
        """
        from .bootstrap import bootstrap_result

        return bootstrap_result(self, nsim, seed, n_jobs=n_jobs, level=level, contrasts=contrasts)

    # --- reports ----------------------------------------------------------------------

    def summary(self) -> str:
        """A plain-text report in the spirit of lme4's ``summary``."""
        stats = self.fit_statistics
        kind = "Linear" if self.family == "gaussian" else f"Generalised linear ({self.family})"
        groups = ", ".join(f"{g} {n}" for g, n in stats["groups"].items())
        lines = [
            f"{kind} mixed model fit by {self.method}",
            f"Formula: {self.design.formula.formula}",
            f"Observations: {stats['nobs']} (dropped for missing values: {stats['n_dropped']})"
            f"; groups: {groups}",
            f"logLik {stats['loglik']:.4f}   AIC {stats['aic']:.4f}   BIC {stats['bic']:.4f}"
            f"   deviance {stats['deviance']:.4f}",
        ]
        if stats["reml_criterion"] is not None:
            lines.append(f"REML criterion at convergence: {stats['reml_criterion']:.4f}")
        if self.nb_theta is not None:
            lines.append(f"Negative-binomial dispersion (theta): {self.nb_theta:.4f}")
        lines += [
            "",
            "Random effects:",
            _format_frame(self.variance_components),
            "",
            f"Fixed effects ({_STATISTIC_NAME[self.df is not None]} tests"
            f"{', Satterthwaite df' if self.df is not None else ''}):",
            _format_frame(
                self.coefficients.drop(
                    columns=[]
                    if self.family != "gaussian"
                    else ["exp_estimate", "exp_ci_low", "exp_ci_high"]
                )
            ),
            "",
            f"R2 marginal {_fmt(stats['r2_marginal'])}, conditional "
            f"{_fmt(stats['r2_conditional'])}; ICC (adjusted) {_fmt(stats['icc'])}",
            f"Converged: {'yes' if self.converged else 'NO'}; "
            f"singular fit: {'YES' if self.singular else 'no'}",
        ]
        lines += [f"Note: {message}" for message in self.messages]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Coefficients, variance components and fit statistics as JSON-ready data."""
        out = {
            "formula": self.design.formula.formula,
            "family": self.family,
            "method": self.method,
            "coefficients": self.coefficients.to_dict(orient="records"),
            "variance_components": self.variance_components.to_dict(orient="records"),
            "fit_statistics": self.fit_statistics,
        }
        return json.loads(json.dumps(json_ready(out)))


def _fmt(value) -> str:
    return "NA" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _format_frame(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.6g}")


def json_ready(value):
    """Replace NaN and infinities by None and numpy scalars by Python ones, recursively."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
