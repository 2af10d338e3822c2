"""Response families for generalised linear mixed models.

Each family wraps a statsmodels family (link, log-likelihood, deviance and Pearson
residuals) and adds what penalised iteratively reweighted least squares needs on the
linear-predictor scale ``eta``: the score ``s = dl/deta``, the observed information
``w = -d2l/deta2`` and its derivative ``dw/deta``. For the canonical links used here
(binomial logit, Poisson log) observed and expected information coincide, so the
Laplace approximation equals lme4's; for the negative binomial (NB2, log link) the
observed information is used, as in glmmTMB's Laplace approximation.

``kernel`` is the log-likelihood without the terms that depend only on the data (for
example ``-log(y!)``); the complete log-likelihood comes from statsmodels.

Each family is also the one place that says what it is called and how its estimates are
read: ``name`` and ``aliases``, ``link_name``, the ratio its exponentiated estimates are
(``ratio``, ``ratio_name``), the scale of the estimates (``estimate_scale``), the words used
in table notes (``words``, ``model_words``) and figure axes (``fitted_label``,
``link_scale``), and which responses it accepts (:meth:`GlmmFamily.check_response`).
:func:`get_family` resolves a configured name or alias to its family object.

Families
--------
gaussian
    Identity link, for linear mixed models (fitted by :mod:`.lmm`, not by the GLMM engine;
    the family object only names and checks).
binomial
    Logit link; response 0/1, or a proportion with the number of trials as prior weight
    (``cbind(successes, failures)``).
poisson
    Log link; non-negative whole counts.
negative_binomial
    NB2 with log link, variance ``mu + mu**2 / theta`` (glmmTMB's ``nbinom2``); the size
    ``theta`` is estimated, parametrised by the frailty SD ``theta**-0.5`` in the fitting
    routine and kept within ``SIZE_BOUNDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import special
from statsmodels.genmod import families as sm_families

from .formula import ModelSpecError

__all__ = [
    "FAMILIES",
    "Binomial",
    "Gaussian",
    "GlmmFamily",
    "NegativeBinomial2",
    "Poisson",
    "digamma_ratio",
    "family_names",
    "get_family",
    "glmm_family",
    "log_rising_ratio",
]

SIZE_BOUNDS = (1e-6, 1e8)  # NB2 size (theta) allowed in the fit


@dataclass(frozen=True)
class GlmmFamily:
    """Base class: a response distribution with its link, for the GLMM engine.

    Subclasses implement ``mu``, ``kernel``, ``score_weight``, ``dweight`` and
    ``statsmodels_family``; families with a dispersion parameter also implement
    ``dispersion_terms``.
    """

    #: Canonical name, as written in spec.json and fit.json.
    name = "generic"
    #: Other names accepted in a model entry (matched case-insensitively, "-" as "_").
    aliases: ClassVar[tuple[str, ...]] = ()
    link_name = "identity"
    #: Abbreviation of the exponentiated estimate ("OR", "IRR"); None: not a ratio.
    ratio: ClassVar[str | None] = None
    #: The ratio in words ("odds ratio"); None for the identity link.
    ratio_name: ClassVar[str | None] = None
    #: Scale of the estimates b ("log-odds"); None: the response's own units.
    estimate_scale: ClassVar[str | None] = None
    #: What exp(intercept) is, for table notes ("odds"); None for the identity link.
    baseline: ClassVar[str | None] = None
    #: Adjective used in notes: "binomial family", "Poisson family".
    words = "generic"
    #: The model in words: "logistic", "linear".
    model_words = "generic"
    #: Axis label of fitted values in diagnostic plots.
    fitted_label = "Fitted value"
    #: Scale of the linear predictor and of the random effects, in axis labels.
    link_scale = "response units"
    #: Fitted by the GLMM engine (False: by the linear mixed model).
    glmm = True
    n_dispersion = 0

    @property
    def exponentiate(self) -> bool:
        """Whether estimates are reported also as ratios exp(b) (log and logit links)."""
        return self.ratio is not None

    @property
    def link(self):
        """The statsmodels link object (``link.inverse(eta)`` is the mean)."""
        return self.statsmodels_family(np.ones(1), False)[0].link

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """Variance function ``V(mu)``: Var(y) = dispersion x V(mu)."""
        return self.statsmodels_family(np.ones(1), False)[0].variance(np.asarray(mu, float))

    def check_response(self, y, where, response: str = "response", weights=None) -> None:
        """Raise ModelSpecError when the response cannot come from this family.

        Parameters
        ----------
        y : array-like
            Response values (for ``cbind(successes, failures)`` the proportion of
            successes, with the trials as ``weights``).
        where : callable or sequence
            Describes the row of position ``i`` in the message: ``where(i)`` or
            ``where[i]`` (e.g. "client C1, session 2").
        response : str
            The response as written in the formula (``cbind(`` marks trials).
        weights : array-like, optional
            Prior weights (trials for ``cbind``); checked to be finite and >= 0.

        Raises
        ------
        ModelSpecError
            "family poisson needs whole counts >= 0, but column 'y' has the value 2.5
            (row ...); 1 row(s) in all. ..."

        Examples
        --------
        >>> import numpy as np
        >>> try:
        ...     Poisson().check_response(np.array([0.0, 2.5]), ["a", "b"], "y")
        ... except ModelSpecError as err:
        ...     print(str(err)[:68])
        family poisson needs whole counts >= 0, but column 'y' has the value
        """
        if weights is None:
            return
        pw = np.asarray(weights, dtype=float) * np.ones(np.shape(y))
        bad = ~np.isfinite(pw) | (pw < 0)
        self._refuse(bad, pw, where, f"prior weights of '{response}'", "finite weights >= 0")

    def _refuse(self, bad, values, where, column: str, need: str) -> None:
        """Raise the family's message for the first offending row, if any."""
        if not np.any(bad):
            return
        first = int(np.flatnonzero(bad)[0])
        place = where(first) if callable(where) else where[first]
        raise ModelSpecError(
            f"family {self.name} needs {need}, but {column} has the value "
            f"{float(values[first]):g} ({place}); {int(np.sum(bad))} row(s) in all. Correct "
            "or remove these rows, or choose a family that fits the response."
        )

    def mu(self, eta: np.ndarray) -> np.ndarray:
        """Mean on the response scale for linear predictor ``eta``."""
        raise NotImplementedError

    def kernel(self, eta: np.ndarray, y: np.ndarray, pw: np.ndarray) -> np.ndarray:
        """Per-observation log-likelihood without data-only constants."""
        raise NotImplementedError

    def score_weight(self, eta, y, pw) -> tuple[np.ndarray, np.ndarray]:
        """Score ``dl/deta`` and observed information ``-d2l/deta2`` per observation."""
        raise NotImplementedError

    def dweight(self, eta, y, pw) -> np.ndarray:
        """Derivative of the observed information with respect to ``eta``."""
        raise NotImplementedError

    def statsmodels_family(self, pw: np.ndarray, trials: bool):
        """The statsmodels family object and the ``var_weights`` to pass to it."""
        raise NotImplementedError

    #: The level-1 variance on the link scale depends on the mean (log-link counts).
    latent_needs_mean: ClassVar[bool] = False

    def latent_variance(self, mean: float | None = None, sigma: float | None = None) -> float:
        """Level-1 variance on the link scale, the denominator's residual part of an ICC.

        Nakagawa, Johnson & Schielzeth (2017, J R Soc Interface 14: 20170213): ``sigma^2``
        for the gaussian family, ``pi^2 / 3`` for the binomial (logit link: the variance
        of the standard logistic distribution), ``log(1 + 1 / mean)`` for the Poisson and
        ``log(1 + 1 / mean + 1 / theta)`` for NB2 (the lognormal approximation), with
        ``mean`` the expected count per observation (:attr:`latent_needs_mean`).

        Examples
        --------
        >>> round(Binomial().latent_variance(), 4), round(Poisson().latent_variance(2.0), 4)
        (3.2899, 0.4055)
        >>> round(NegativeBinomial2(theta=4.0).latent_variance(2.0), 4)
        0.5596
        """
        raise ModelSpecError(f"no level-1 variance on the link scale for the {self.words} family")

    def dispersion(self) -> np.ndarray:
        """Dispersion parameters on the optimisation scale (empty when there are none)."""
        return np.empty(0)

    def with_dispersion(self, values: np.ndarray) -> GlmmFamily:
        """A copy with new dispersion parameters (optimisation scale)."""
        return self

    def dispersion_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the dispersion parameters (optimisation scale)."""
        return np.empty(0), np.empty(0)

    def loglik_obs(self, eta, y, pw, trials: bool = False) -> np.ndarray:
        """Complete per-observation log-likelihood from statsmodels.

        Parameters
        ----------
        eta, y, pw : ndarray
            Linear predictor, response and prior weights (trials when ``trials``).
        trials : bool
            Binomial only: ``y`` is a proportion and ``pw`` the number of trials, so the
            binomial coefficient is included (as lme4 does for ``cbind`` responses).
        """
        family, var_weights = self.statsmodels_family(pw, trials)
        return family.loglike_obs(y, self.mu(eta), var_weights=var_weights)

    def pearson_residuals(self, eta, y, pw) -> np.ndarray:
        """Pearson residuals ``(y - mu) * sqrt(pw / V(mu))``, V from statsmodels."""
        family, _ = self.statsmodels_family(pw, False)
        mu = self.mu(eta)
        return (y - mu) * np.sqrt(pw / family.variance(mu))

    def deviance_residuals(self, eta, y, pw, trials: bool = False) -> np.ndarray:
        """Signed deviance residuals from statsmodels."""
        family, var_weights = self.statsmodels_family(pw, trials)
        return family.resid_dev(y, self.mu(eta), var_weights=var_weights)

    def draw(self, rng: np.random.Generator, mu: np.ndarray, pw: np.ndarray, scale=1.0):
        """Responses drawn from the family with means ``mu`` (one per observation).

        ``pw`` are the prior weights (the trials of a ``cbind`` response); ``scale`` is the
        residual SD of a gaussian model. Used by ``MixedResult.simulate``.
        """
        raise ModelSpecError(f"the {self.words} family cannot simulate responses")

    def _unit_weights(self, pw) -> None:
        if not np.allclose(pw, 1.0):
            raise ModelSpecError(
                f"simulating from a {self.words} model with prior weights is not defined "
                "(lme4 ignores them there); refit without weights to simulate"
            )

    def validate(self, y: np.ndarray, pw: np.ndarray, response: str, index: pd.Index) -> None:
        """:meth:`check_response` for the engine: rows named by their data-frame index."""
        self.check_response(y, lambda i: f"row with index {index[i]!r}", response, pw)


@dataclass(frozen=True)
class Gaussian(GlmmFamily):
    """Gaussian family with identity link (lme4's ``lmer``; fitted by :mod:`.lmm`).

    The GLMM engine does not fit it (``glmm`` is False); the object names the family,
    gives its identity link and variance function, and checks the response.

    Examples
    --------
    >>> fam = Gaussian()
    >>> fam.link_name, fam.ratio, fam.model_words
    ('identity', None, 'linear')
    """

    name = "gaussian"
    aliases = ("normal",)
    link_name = "identity"
    words = "Gaussian"
    model_words = "linear"
    fitted_label = "Fitted value"
    link_scale = "response units"
    glmm = False

    def mu(self, eta):
        return np.asarray(eta, dtype=float)

    def latent_variance(self, mean=None, sigma=None):
        if sigma is None:
            raise ModelSpecError("the gaussian level-1 variance needs the residual SD sigma")
        return float(sigma) ** 2

    def draw(self, rng, mu, pw, scale=1.0):
        """Normal draws with SD ``scale / sqrt(pw)`` (lme4: weights scale the variance)."""
        return rng.normal(np.asarray(mu, float), scale / np.sqrt(pw))

    def statsmodels_family(self, pw, trials):
        return sm_families.Gaussian(), pw

    def check_response(self, y, where, response="response", weights=None):
        """A 0/1 response is refused: it is a binomial outcome (use family: binomial)."""
        super().check_response(y, where, response, weights)
        y = np.asarray(y, dtype=float)
        self._refuse(~np.isfinite(y), y, where, f"column '{response}'", "finite values")
        if y.size and np.isin(y, (0.0, 1.0)).all():
            raise ModelSpecError(
                f"family gaussian does not fit the 0/1 response '{response}'; use family: binomial."
            )


@dataclass(frozen=True)
class Binomial(GlmmFamily):
    """Binomial family with logit link (lme4's ``binomial``).

    Examples
    --------
    >>> import numpy as np
    >>> fam = Binomial()
    >>> s, w = fam.score_weight(np.array([0.0]), np.array([1.0]), np.array([1.0]))
    >>> float(s[0]), float(w[0])
    (0.5, 0.25)
    """

    name = "binomial"
    aliases = ("logit",)
    link_name = "logit"
    ratio = "OR"
    ratio_name = "odds ratio"
    estimate_scale = "log-odds"
    baseline = "odds"
    words = "binomial"
    model_words = "logistic"
    fitted_label = "Fitted probability"
    link_scale = "log odds"

    def mu(self, eta):
        return special.expit(eta)

    def latent_variance(self, mean=None, sigma=None):
        return float(np.pi**2 / 3)

    def draw(self, rng, mu, pw, scale=1.0):
        """Successes out of ``pw`` trials (1 for a 0/1 response; the trials of ``cbind``)."""
        trials = np.asarray(pw, float)
        if not np.allclose(trials, np.round(trials)):
            raise ModelSpecError(
                "simulating from a binomial model needs whole numbers of trials; the prior "
                "weights are not whole numbers (use cbind(successes, failures))"
            )
        return rng.binomial(np.round(trials).astype(np.int64), mu).astype(float)

    def kernel(self, eta, y, pw):
        # y*log(mu) + (1-y)*log(1-mu) = y*eta - log(1 + exp(eta))
        return pw * (y * eta - np.logaddexp(0.0, eta))

    def score_weight(self, eta, y, pw):
        mu = special.expit(eta)
        return pw * (y - mu), pw * mu * (1.0 - mu)

    def dweight(self, eta, y, pw):
        mu = special.expit(eta)
        return pw * mu * (1.0 - mu) * (1.0 - 2.0 * mu)

    def statsmodels_family(self, pw, trials):
        family = sm_families.Binomial()
        if trials:
            family.n = np.asarray(pw, dtype=float)
            return family, 1.0
        return family, pw

    def check_response(self, y, where, response="response", weights=None):
        super().check_response(y, where, response, weights)
        y = np.asarray(y, dtype=float)
        column = f"column '{response}'"
        if response.replace(" ", "").startswith("cbind("):
            need = "a 0/1 response (or cbind(successes, failures))"
            self._refuse(np.isnan(y), y, where, f"the trials (successes + failures) of {column}",
                         "positive trials")  # fmt: skip
            self._refuse((y < 0) | (y > 1), y, where, f"successes / trials of {column}",
                         f"{need}: successes must not exceed trials and failures must not be "
                         "negative")  # fmt: skip
            if weights is not None:
                counts = y * np.asarray(weights, dtype=float)
                whole = np.abs(counts - np.round(counts)) > 1e-8
                self._refuse(whole, counts, where, f"the successes of {column}",
                             "whole numbers of successes")  # fmt: skip
        else:
            bad = (y != 0) & (y != 1)
            self._refuse(bad, y, where, column, "a 0/1 response (or cbind(successes, failures))")


@dataclass(frozen=True)
class Poisson(GlmmFamily):
    """Poisson family with log link (lme4's ``poisson``).

    Examples
    --------
    >>> import numpy as np
    >>> s, w = Poisson().score_weight(np.log([2.0]), np.array([3.0]), np.array([1.0]))
    >>> float(s[0]), float(w[0])
    (1.0, 2.0)
    """

    name = "poisson"
    link_name = "log"
    ratio = "IRR"
    ratio_name = "incidence-rate ratio"
    estimate_scale = "log-rate"
    baseline = "rate (per unit of the offset)"
    words = "Poisson"
    model_words = "Poisson"
    fitted_label = "Fitted count"
    link_scale = "log rate"

    latent_needs_mean = True

    def latent_variance(self, mean=None, sigma=None):
        return float(np.log1p(1 / _positive_mean(mean, self)))

    def mu(self, eta):
        return np.exp(eta)

    def draw(self, rng, mu, pw, scale=1.0):
        """Poisson counts with means ``mu``."""
        self._unit_weights(pw)
        return rng.poisson(mu).astype(float)

    def kernel(self, eta, y, pw):
        return pw * (y * eta - np.exp(eta))

    def score_weight(self, eta, y, pw):
        mu = np.exp(eta)
        return pw * (y - mu), pw * mu

    def dweight(self, eta, y, pw):
        return pw * np.exp(eta)

    def statsmodels_family(self, pw, trials):
        return sm_families.Poisson(), pw

    def check_response(self, y, where, response="response", weights=None):
        super().check_response(y, where, response, weights)
        _check_counts(self, y, where, response)


def _positive_mean(mean, family) -> float:
    if mean is None or not np.isfinite(mean) or not mean > 0:
        raise ModelSpecError(
            f"the {family.words} level-1 variance needs a positive mean count, got {mean!r}"
        )
    return float(mean)


def _check_counts(family, y, where, response):
    y = np.asarray(y, dtype=float)
    bad = ~np.isfinite(y) | (y < 0) | (np.abs(y - np.round(y)) > 1e-8)
    family._refuse(bad, y, where, f"column '{response}'", "whole counts >= 0")


@dataclass(frozen=True)
class NegativeBinomial2(GlmmFamily):
    """Negative binomial NB2 with log link: variance ``mu + mu**2 / theta``.

    ``theta`` is glmmTMB's dispersion parameter for ``nbinom2`` (R's ``size``). NB2 is a
    Poisson whose mean is multiplied by a gamma frailty of mean 1 and SD
    ``sigma = theta**-0.5``; ``sigma`` is the optimisation scale. As ``sigma -> 0``
    (``theta -> inf``) the distribution tends to the Poisson, and the deviance is a
    smooth function of ``sigma`` there (``D_Poisson - c1 sigma^2 + c2 sigma^4``), whereas
    in ``log(theta)`` it flattens out like ``1 / theta`` and the optimisation becomes
    ill-conditioned. ``theta = inf`` is the Poisson family itself.

    Everything is written in terms of ``p = mu / (theta + mu) = expit(eta - log theta)``,
    which keeps the log-likelihood and its derivatives finite for every finite ``eta``
    (no ``exp(eta)`` that could overflow), and in terms of
    ``log Gamma(y + theta) - log Gamma(theta) - y log(theta)`` computed without
    cancellation for large ``theta`` (see :func:`log_rising_ratio`), so that the
    log-likelihood near the Poisson limit is accurate. ``loglik_obs`` is statsmodels'
    ``NegativeBinomial(alpha=1/theta).loglike_obs`` written this way.

    Examples
    --------
    >>> import numpy as np
    >>> fam = NegativeBinomial2(theta=2.0)
    >>> s, w = fam.score_weight(np.log([2.0]), np.array([2.0]), np.array([1.0]))
    >>> float(s[0]), float(w[0])
    (0.0, 1.0)
    >>> round(float(fam.dispersion()[0]) ** -2, 12)  # the size from the frailty SD
    2.0
    """

    theta: float = 1.0
    name = "negative_binomial"
    aliases = ("negativebinomial", "nbinom2", "negbin", "nb2")
    link_name = "log"
    ratio = "IRR"
    ratio_name = "incidence-rate ratio"
    estimate_scale = "log-rate"
    baseline = "rate (per unit of the offset)"
    words = "negative-binomial"
    model_words = "negative-binomial"
    fitted_label = "Fitted count"
    link_scale = "log rate"
    n_dispersion = 1

    latent_needs_mean = True

    def latent_variance(self, mean=None, sigma=None):
        return float(np.log1p(1 / _positive_mean(mean, self) + 1 / self.theta))

    def mu(self, eta):
        return np.exp(eta)

    def draw(self, rng, mu, pw, scale=1.0):
        """NB2 counts with means ``mu`` and size ``theta`` (Poisson when theta is inf)."""
        self._unit_weights(pw)
        if self._poisson:
            return rng.poisson(mu).astype(float)
        mu = np.asarray(mu, float)
        return rng.negative_binomial(self.theta, self.theta / (self.theta + mu)).astype(float)

    def dispersion(self):
        return np.array([self.theta**-0.5])

    def with_dispersion(self, values):
        sigma = float(values[0])
        return replace(self, theta=sigma**-2 if sigma != 0.0 else np.inf)

    def dispersion_bounds(self):
        """``sigma = theta**-0.5`` with ``theta`` within ``SIZE_BOUNDS``: at 1e8 the NB2
        log-likelihood is the Poisson one to about ``sum((y - mu)^2 - y) / 2e8``."""
        return np.array([SIZE_BOUNDS[1] ** -0.5]), np.array([SIZE_BOUNDS[0] ** -0.5])

    @property
    def _poisson(self) -> bool:
        return bool(np.isinf(self.theta))

    def _p_q(self, eta):
        """``p = mu / (theta + mu)`` and ``q = 1 - p``, each to full relative precision."""
        z = eta - np.log(self.theta)
        return special.expit(z), special.expit(-z)

    def kernel(self, eta, y, pw):
        # log Gamma(y+t) - log Gamma(t) + t log t - (t+y) log(t+mu) + y eta
        #   = log_rising_ratio(y, t) - (t+y) log(1 + mu/t) + y eta
        if self._poisson:
            return Poisson().kernel(eta, y, pw)
        t = self.theta
        return pw * (
            log_rising_ratio(y, t) - (t + y) * np.logaddexp(0.0, eta - np.log(t)) + y * eta
        )

    def loglik_obs(self, eta, y, pw, trials=False):
        return self.kernel(eta, y, pw) - pw * special.gammaln(y + 1.0)

    def score_weight(self, eta, y, pw):
        # s = t (y - mu) / (t + mu) = y q - t p;  w = t mu (t + y) / (t + mu)^2 = (t + y) p q
        if self._poisson:
            return Poisson().score_weight(eta, y, pw)
        t = self.theta
        p, q = self._p_q(eta)
        return pw * (y * q - t * p), pw * (t + y) * p * q

    def dweight(self, eta, y, pw):
        # t (t + y) mu (t - mu) / (t + mu)^3 = (t + y) p q (q - p)
        if self._poisson:
            return Poisson().dweight(eta, y, pw)
        p, q = self._p_q(eta)
        return pw * (self.theta + y) * p * q * (q - p)

    def dispersion_terms(self, eta, y, pw):
        """Derivatives with respect to ``sigma = theta**-0.5`` of the kernel, the score
        and ``w``.

        With ``p = mu / (t + mu)``, ``q = 1 - p``, the derivatives with respect to
        ``log(t)`` are ``dl = t [psi(y + t) - psi(t) - y / t] - t log(1 + mu / t)
        + (t + y) p``, ``ds = p (y q - t p)`` and ``dw = p q (2 t p + y (p - q))``, each
        ``O(1 / t)``; ``d log(t) / d sigma = -2 sqrt(t)``. All are zero at ``t = inf``
        (the deviance is even in ``sigma``).

        Returns
        -------
        dl, ds, dw : ndarray
            Per-observation derivatives.
        """
        if self._poisson:
            zeros = np.zeros(np.broadcast(eta, y, pw).shape)
            return zeros, zeros, zeros
        t = self.theta
        p, q = self._p_q(eta)
        dl = t * digamma_ratio(y, t) - t * np.logaddexp(0.0, eta - np.log(t)) + (t + y) * p
        ds = p * (y * q - t * p)
        dw = p * q * (2.0 * t * p + y * (p - q))
        scale = -2.0 * np.sqrt(t) * pw
        return scale * dl, scale * ds, scale * dw

    def statsmodels_family(self, pw, trials):
        return sm_families.NegativeBinomial(alpha=1.0 / self.theta), pw

    def check_response(self, y, where, response="response", weights=None):
        super().check_response(y, where, response, weights)
        _check_counts(self, y, where, response)


STIRLING_FROM = 100.0  # size from which the asymptotic series below replace gammaln/digamma


def log_rising_ratio(y, t: float):
    """``log Gamma(y + t) - log Gamma(t) - y log(t)``, accurate for any size ``t > 0``.

    For integer ``y`` this is ``sum_{k < y} log(1 + k / t)``, which tends to 0 as ``t``
    grows; the direct difference of ``gammaln`` loses up to ``1e-16 * t log t`` to
    cancellation (2e-7 at ``t = 1e8``). From ``t = 100`` on, Stirling's series
    ``log Gamma(x) = (x - 1/2) log x - x + log(2 pi)/2 + 1/(12 x) - 1/(360 x^3) + ...``
    gives the difference without cancellation (truncation error below
    ``1 / (1260 t^5)``, i.e. 1e-13).

    Examples
    --------
    >>> import numpy as np
    >>> bool(np.isclose(log_rising_ratio(np.array([3.0]), 2.0)[0], np.log(2 * 3 * 4 / 2**3)))
    True
    """
    y = np.asarray(y, dtype=float)
    if t < STIRLING_FROM:
        return special.gammaln(y + t) - special.gammaln(t) - y * np.log(t)
    x = t + y
    return (x - 0.5) * np.log1p(y / t) - y - y / (12.0 * t * x) - (1.0 / x**3 - 1.0 / t**3) / 360.0


def digamma_ratio(y, t: float):
    """``psi(y + t) - psi(t) - y / t``, the derivative of :func:`log_rising_ratio` in ``t``.

    From ``t = 100`` on, the asymptotic series
    ``psi(x) = log x - 1/(2 x) - 1/(12 x^2) + 1/(120 x^4) - ...`` (truncation error below
    ``1 / (252 t^6)``).

    Examples
    --------
    >>> import numpy as np
    >>> float(digamma_ratio(np.array([2.0]), 1.0)[0])  # 1/1 + 1/2 - 2
    -0.5
    """
    y = np.asarray(y, dtype=float)
    if t < STIRLING_FROM:
        return special.digamma(y + t) - special.digamma(t) - y / t
    x = t + y
    z = y / t
    return (
        np.log1p(z)
        - z
        + y / (2.0 * t * x)
        + y * (t + x) / (12.0 * t**2 * x**2)
        + (1.0 / x**4 - 1.0 / t**4) / 120.0
    )


#: The families, by canonical name.
FAMILIES: dict[str, type[GlmmFamily]] = {
    cls.name: cls for cls in (Gaussian, Binomial, Poisson, NegativeBinomial2)
}


def _key(name) -> str:
    return str(name).strip().lower().replace("-", "_")


_ALIASES = {
    _key(alias): canonical
    for canonical, cls in FAMILIES.items()
    for alias in (canonical, *cls.aliases)
}


def family_names(aliases: bool = False) -> list[str]:
    """Canonical family names (with ``aliases``: every accepted name), in a fixed order.

    Examples
    --------
    >>> family_names()
    ['gaussian', 'binomial', 'poisson', 'negative_binomial']
    """
    return list(_ALIASES) if aliases else list(FAMILIES)


def get_family(name) -> GlmmFamily:
    """Family object for a name or alias (case-insensitive; ``-`` read as ``_``).

    Parameters
    ----------
    name : str or GlmmFamily
        ``"gaussian"`` (alias ``normal``), ``"binomial"`` (``logit``), ``"poisson"`` or
        ``"negative_binomial"`` (``nbinom2``, ``negbin``, ``nb2``, ``negativebinomial``);
        a family object is returned as it is.

    Returns
    -------
    GlmmFamily

    Raises
    ------
    ModelSpecError
        For a name that is none of these, listing the accepted names.

    Examples
    --------
    >>> get_family("nbinom2").name
    'negative_binomial'
    >>> get_family("Normal").ratio is None
    True
    """
    if isinstance(name, GlmmFamily):
        return name
    key = _ALIASES.get(_key(name))
    if key is None:
        raise ModelSpecError(
            f"family {name!r} is not supported; use one of {', '.join(FAMILIES)} "
            f"(aliases: {', '.join(a for a in _ALIASES if a not in FAMILIES)})"
        )
    return FAMILIES[key]()


def glmm_family(name) -> GlmmFamily:
    """:func:`get_family` for the GLMM engine, which refuses the gaussian family.

    Examples
    --------
    >>> glmm_family("poisson").name
    'poisson'
    """
    family = get_family(name)
    if not family.glmm:
        raise ModelSpecError(
            f"family {family.name!r} is not available for generalised mixed models; use one "
            f"of {', '.join(n for n, c in FAMILIES.items() if c.glmm)} (linear mixed models "
            "are fitted by fit_mixed or fit_lmm)"
        )
    return family
