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

Families
--------
binomial
    Logit link; response 0/1, or a proportion with the number of trials as prior weight
    (``cbind(successes, failures)``).
poisson
    Log link; non-negative whole counts.
negative_binomial
    NB2 with log link, variance ``mu + mu**2 / theta`` (glmmTMB's ``nbinom2``); the size
    ``theta`` is estimated, parametrised as ``log(theta)`` by the fitting routine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special
from statsmodels.genmod import families as sm_families

from .formula import ModelSpecError

__all__ = [
    "Binomial",
    "GlmmFamily",
    "NegativeBinomial2",
    "Poisson",
    "get_family",
]

FAMILY_ALIASES = {
    "binomial": "binomial",
    "logit": "binomial",
    "poisson": "poisson",
    "negative_binomial": "negative_binomial",
    "negativebinomial": "negative_binomial",
    "nbinom2": "negative_binomial",
    "negbin": "negative_binomial",
    "nb2": "negative_binomial",
}


@dataclass(frozen=True)
class GlmmFamily:
    """Base class: a response distribution with its link, for the GLMM engine.

    Subclasses implement ``mu``, ``kernel``, ``score_weight``, ``dweight`` and
    ``statsmodels_family``; families with a dispersion parameter also implement
    ``dispersion_terms``.
    """

    name = "generic"
    link_name = "identity"
    n_dispersion = 0

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

    def dispersion(self) -> np.ndarray:
        """Dispersion parameters on the optimisation scale (empty when there are none)."""
        return np.empty(0)

    def with_dispersion(self, values: np.ndarray) -> GlmmFamily:
        """A copy with new dispersion parameters (optimisation scale)."""
        return self

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

    def validate(self, y: np.ndarray, pw: np.ndarray, response: str, index: pd.Index) -> None:
        """Raise ModelSpecError when the response cannot come from this family."""
        bad = ~np.isfinite(pw) | (pw < 0)
        _raise_first(bad, pw, index, f"prior weights of {response!r}", "be finite and >= 0")


def _raise_first(bad: np.ndarray, values: np.ndarray, index: pd.Index, what: str, rule: str):
    """Raise a ModelSpecError naming the first offending row, if any."""
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ModelSpecError(
            f"{what} must {rule}; the row with index {index[first]!r} has value "
            f"{values[first]!r} ({int(np.sum(bad))} row(s) in all). Correct or remove "
            "these rows, or choose a family that fits the response."
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
    link_name = "logit"

    def mu(self, eta):
        return special.expit(eta)

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

    def validate(self, y, pw, response, index):
        super().validate(y, pw, response, index)
        trials = response.replace(" ", "").startswith("cbind(")
        if trials:
            _raise_first(np.isnan(y), pw, index, f"trials (successes + failures) of {response!r}",
                         "be positive")
            _raise_first((y < 0) | (y > 1), y, index,
                         f"successes / trials of {response!r}",
                         "lie in [0, 1]: successes must not exceed trials and failures must "
                         "not be negative")
            counts = y * pw
            _raise_first(np.abs(counts - np.round(counts)) > 1e-8, counts, index,
                         f"successes in {response!r}", "be whole numbers")
        else:
            _raise_first((y != 0) & (y != 1), y, index, f"binomial response {response!r}",
                         "be 0 or 1 (or use cbind(successes, failures))")


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

    def mu(self, eta):
        return np.exp(eta)

    def kernel(self, eta, y, pw):
        return pw * (y * eta - np.exp(eta))

    def score_weight(self, eta, y, pw):
        mu = np.exp(eta)
        return pw * (y - mu), pw * mu

    def dweight(self, eta, y, pw):
        return pw * np.exp(eta)

    def statsmodels_family(self, pw, trials):
        return sm_families.Poisson(), pw

    def validate(self, y, pw, response, index):
        super().validate(y, pw, response, index)
        _check_counts(y, response, index, self.name)


def _check_counts(y, response, index, family):
    _raise_first((y < 0) | (np.abs(y - np.round(y)) > 1e-8), y, index,
                 f"{family} response {response!r}", "be a non-negative whole count")


@dataclass(frozen=True)
class NegativeBinomial2(GlmmFamily):
    """Negative binomial NB2 with log link: variance ``mu + mu**2 / theta``.

    ``theta`` is glmmTMB's dispersion parameter for ``nbinom2`` (R's ``size``). The
    optimisation scale is ``log(theta)``.

    Examples
    --------
    >>> import numpy as np
    >>> fam = NegativeBinomial2(theta=2.0)
    >>> s, w = fam.score_weight(np.log([2.0]), np.array([2.0]), np.array([1.0]))
    >>> float(s[0]), float(w[0])
    (0.0, 1.0)
    """

    theta: float = 1.0
    name = "negative_binomial"
    link_name = "log"
    n_dispersion = 1

    def mu(self, eta):
        return np.exp(eta)

    def dispersion(self):
        return np.array([np.log(self.theta)])

    def with_dispersion(self, values):
        return replace(self, theta=float(np.exp(values[0])))

    def kernel(self, eta, y, pw):
        t = self.theta
        mu = np.exp(eta)
        return pw * (special.gammaln(y + t) - special.gammaln(t) + t * np.log(t)
                     - (t + y) * np.log(t + mu) + y * eta)

    def score_weight(self, eta, y, pw):
        t = self.theta
        mu = np.exp(eta)
        denom = t + mu
        return pw * t * (y - mu) / denom, pw * t * mu * (t + y) / denom**2

    def dweight(self, eta, y, pw):
        t = self.theta
        mu = np.exp(eta)
        return pw * t * (t + y) * mu * (t - mu) / (t + mu) ** 3

    def dispersion_terms(self, eta, y, pw):
        """Derivatives with respect to ``log(theta)`` of the kernel, the score and ``w``.

        Returns
        -------
        dl, ds, dw : ndarray
            Per-observation derivatives.
        """
        t = self.theta
        mu = np.exp(eta)
        denom = t + mu
        dl = (special.digamma(y + t) - special.digamma(t) + np.log(t) + 1.0
              - np.log(denom) - (t + y) / denom)
        ds = (y - mu) * mu / denom**2
        dw = mu * (2.0 * t * mu - t * y + y * mu) / denom**3
        return pw * t * dl, pw * t * ds, pw * t * dw

    def statsmodels_family(self, pw, trials):
        return sm_families.NegativeBinomial(alpha=1.0 / self.theta), pw

    def validate(self, y, pw, response, index):
        super().validate(y, pw, response, index)
        _check_counts(y, response, index, self.name)


def get_family(name: str) -> GlmmFamily:
    """Family object for a name; aliases ``nbinom2``, ``negbin`` mean NB2.

    Parameters
    ----------
    name : str
        ``"binomial"``, ``"poisson"`` or ``"negative_binomial"`` (aliases accepted,
        case-insensitive).

    Returns
    -------
    GlmmFamily

    Examples
    --------
    >>> get_family("nbinom2").name
    'negative_binomial'
    """
    key = FAMILY_ALIASES.get(str(name).strip().lower().replace("-", "_"))
    if key is None:
        raise ModelSpecError(
            f"family {name!r} is not available for generalised mixed models; use one of "
            "'binomial', 'poisson', 'negative_binomial' (or 'gaussian' for linear models)"
        )
    return {"binomial": Binomial, "poisson": Poisson,
            "negative_binomial": NegativeBinomial2}[key]()
