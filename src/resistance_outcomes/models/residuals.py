"""Simulation-based (scaled quantile) residuals of a fitted mixed model and their tests.

The method of DHARMa (Hartig, R package DHARMa; Dunn & Smyth, 1996, randomised quantile
residuals): simulate ``nsim`` responses from the fitted model for every observation; the
scaled residual of an observation is the position of the observed response in its
simulated distribution, the fraction of simulated values below it. For an integer response
(counts, binomial successes) the observed value ties with some simulated ones; the
residual is then drawn uniformly between the fraction below and the fraction at or below
(probability integral transform, PIT). When the model is right the residuals are uniform
on (0, 1) whatever the family, so one picture and one set of tests serve every model:

- :func:`uniformity_test`: Kolmogorov-Smirnov test against U(0, 1);
- :func:`dispersion_test`: variance of the observed responses around the fitted values
  against the same variance of each simulated response (DHARMa's ``testDispersion``,
  ``type = "DHARMa"``);
- :func:`zero_inflation_test`: observed against simulated number of zeros;
- :func:`outlier_test`: residuals outside all simulations, binomial test against their
  expected frequency ``2 / (nsim + 1)`` (``testOutliers(type = "binomial")``).

:func:`residual_tests` gives all four as one tidy table. By default each simulation draws
new random effects (lme4's ``simulate(re.form = NA)``, DHARMa's default before its version
0.5.0); ``conditional=True`` keeps the conditional modes, which makes the dispersion test
much more sensitive (a Poisson GLMM fitted to negative-binomial data: rejected in 48% of
simulated datasets with new random effects, in all with the conditional modes; see
tests/test_models_residuals.py).

Rows that exist only while a unit is at risk (person-period rows of a discrete-time
hazard model: a client's rows end at the first event) must be simulated with the
conditional modes: clients and groups with high random effects leave early and
contribute fewer rows, so new random effects ignore that selection and simulate too many
events, and the uniformity test rejects correctly specified hazard models.
:func:`simulation_choice` is that rule (the measured rejection rates are in its
docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats as st

from .families import Binomial, get_family
from .formula import ModelSpecError

__all__ = [
    "TEST_COLUMNS",
    "TEST_NAMES",
    "SimulatedResiduals",
    "diagnostics_record",
    "dispersion_test",
    "not_assessed_record",
    "outlier_test",
    "residual_tests",
    "scaled_residuals",
    "simulated_residuals",
    "simulation_choice",
    "simulation_words",
    "uniformity_test",
    "zero_inflation_test",
]

#: Columns of every test's one-row table.
TEST_COLUMNS = ["test", "statistic", "p_value", "what"]


@dataclass
class SimulatedResiduals:
    """Scaled residuals of a fitted model and the simulations they come from.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per fitted observation: ``row`` (1-based position among the fitted rows),
        ``observed`` (the response on the simulation scale: binomial successes), ``fitted``
        (population-level predicted mean, ``g^-1(X beta + offset)``, as DHARMa's
        ``fittedPredictedResponse``) and ``residual`` (in [0, 1]).
    simulations : numpy.ndarray
        ``n x nsim`` simulated responses (same scale as ``observed``).
    nsim : int
    seed : int or None
    conditional : bool
        Whether the simulations kept the conditional modes of the random effects.
    family : str
    """

    table: pd.DataFrame
    simulations: np.ndarray
    nsim: int
    seed: int | None
    conditional: bool
    family: str

    @property
    def residuals(self) -> np.ndarray:
        return self.table["residual"].to_numpy(dtype=float)

    @property
    def observed(self) -> np.ndarray:
        return self.table["observed"].to_numpy(dtype=float)

    @property
    def fitted(self) -> np.ndarray:
        return self.table["fitted"].to_numpy(dtype=float)

    def tests(self) -> pd.DataFrame:
        """The four tests (:func:`residual_tests`)."""
        return residual_tests(self)


def scaled_residuals(
    simulations: np.ndarray, observed: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Scaled (PIT) residuals: the position of each observation among its simulations.

    For observation ``i`` with ``lower`` the fraction of its simulations below the observed
    value and ``upper`` the fraction at or below it, the residual is ``lower`` when the two
    agree (no ties, as for a continuous response) and a uniform draw between them otherwise.

    Parameters
    ----------
    simulations : array of shape (n, nsim)
    observed : array of shape (n,)
    rng : numpy.random.Generator
        Source of the randomisation of tied observations.

    Returns
    -------
    numpy.ndarray
        Residuals in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> sims = np.array([[1.0, 2.0, 2.0, 3.0], [0.5, 1.5, 2.5, 3.5]])
    >>> r = scaled_residuals(sims, np.array([2.0, 3.0]), np.random.default_rng(0))
    >>> bool(0.25 <= r[0] <= 0.75), float(r[1])
    (True, 0.75)
    """
    simulations = np.asarray(simulations, dtype=float)
    observed = np.asarray(observed, dtype=float)
    if simulations.ndim != 2 or simulations.shape[0] != observed.shape[0]:
        raise ModelSpecError(
            f"simulations must have one row per observation ({observed.shape[0]}); got shape "
            f"{simulations.shape}"
        )
    column = observed[:, None]
    lower = (simulations < column).mean(axis=1)
    upper = (simulations <= column).mean(axis=1)
    u = rng.uniform(size=observed.shape[0])
    return np.where(lower != upper, lower + u * (upper - lower), lower)


def _observed_response(result, family) -> np.ndarray:
    """The response on the scale :meth:`MixedResult.simulate` draws: binomial successes."""
    y = np.asarray(result.design.y, dtype=float)
    if isinstance(family, Binomial):
        return np.round(y * np.asarray(result.design.prior_weights, dtype=float), 9)
    return y


def simulation_choice(conditional: bool = False, *, at_risk_rows: bool = False) -> tuple[bool, str]:
    """Whether to simulate with the random effects' conditional modes, and why.

    Rows that exist only while a unit is at risk (``at_risk_rows``: person-period rows of
    a discrete-time hazard model, each client's rows ending at its first event) are always
    simulated conditionally; otherwise the request ``conditional`` stands.

    With new random effects the simulations ignore that clients and therapists with high
    random effects leave early and contribute fewer rows, so they overstate the events
    and the uniformity (KS) test rejects correctly specified hazard models. In a
    simulation with known truth (tests/test_models_residuals_hazard.py: 30 therapists of 8
    clients, 12 planned sessions, the true model refitted to each of 1,000 replicates) the
    KS test at .05 rejected with therapist SD 1.2 in 73.2% of the replicates with new
    random effects and in 3.4% with the conditional modes (MC SE 1.4 and 0.6 points), with
    therapist SD 0.8 in 20.1% and 3.6%. With the true parameters and therapist effects (no
    fit) the conditional simulation is exact: 6.0% (MC SE 0.75 points; new random effects:
    77.4%).

    Parameters
    ----------
    conditional : bool, default False
        The requested simulation: True keeps the conditional modes.
    at_risk_rows : bool, default False
        The model's rows exist only while at risk (a discrete-time hazard).

    Returns
    -------
    conditional : bool
        Whether to keep the conditional modes.
    reason : str
        Why, for ``diagnostics.json``.

    Examples
    --------
    >>> simulation_choice(False, at_risk_rows=True)[0]
    True
    >>> simulation_choice(False)
    (False, 'as requested')
    """
    if at_risk_rows:
        return True, (
            "the rows exist only while at risk (a discrete-time hazard): units with high "
            "random effects leave early and contribute fewer rows, so new random effects "
            "would overstate the events; the conditional modes are kept"
        )
    return bool(conditional), "as requested"


def simulation_words(conditional: bool) -> str:
    """How the simulations drew the random effects, in words (``diagnostics.json``'s
    ``random_effects``, the diagnostics figure).

    Examples
    --------
    >>> simulation_words(True), simulation_words(False)
    ('conditional modes kept', 'drawn anew in each simulation')
    """
    return "conditional modes kept" if conditional else "drawn anew in each simulation"


def simulated_residuals(
    result, nsim: int = 250, *, seed: int | None, conditional: bool = False
) -> SimulatedResiduals:
    """Simulation-based scaled residuals of a fitted mixed model (the DHARMa method).

    Parameters
    ----------
    result : MixedResult
        A fitted model.
    nsim : int, default 250
        Number of simulated responses per observation (DHARMa's default); at least 2.
    seed : int or None
        Seed of the simulations and of the randomisation of ties; the same seed gives the
        same residuals. The simulations use ``SeedSequence(seed, spawn_key=(0,))``, the
        randomisation ``spawn_key=(1,)``.
    conditional : bool, default False
        Simulate with the conditional modes of the random effects instead of new draws
        from their estimated distribution.

    Returns
    -------
    SimulatedResiduals
        ``table`` (row, observed, fitted, residual) and the ``simulations``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(3)
    >>> g = np.repeat(np.arange(10), 8)
    >>> df = pd.DataFrame({"g": g, "y": rng.poisson(np.exp(0.5 + rng.normal(0, .4, 10)[g]))})
    >>> fit = fit_mixed("y ~ 1 + (1 | g)", df, family="poisson")
    >>> res = simulated_residuals(fit, nsim=100, seed=1)
    >>> list(res.table.columns), res.simulations.shape
    (['row', 'observed', 'fitted', 'residual'], (80, 100))
    >>> residual_tests(res)[["test", "p_value"]].round(3)
                 test  p_value
    0      uniformity    0.418
    1      dispersion    0.380
    2  zero_inflation    0.220
    3        outliers    0.674
    """
    if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 2:
        raise ModelSpecError(f"nsim must be a whole number of at least 2 simulations, got {nsim!r}")
    if not hasattr(result, "simulate") or not hasattr(result, "design"):
        raise ModelSpecError(
            "simulated residuals need a fitted mixed model (MixedResult); a population-"
            "averaged (GEE) fit defines no distribution to simulate from"
        )
    family = get_family(result.family)
    sim_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    pit_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    simulations = result.simulate(int(nsim), seed=sim_rng, use_re=conditional).to_numpy(float)
    observed = _observed_response(result, family)
    fitted = result.predict(level="population")["estimate"].to_numpy(dtype=float)
    residual = scaled_residuals(simulations, observed, pit_rng)
    table = pd.DataFrame(
        {
            "row": np.arange(1, observed.shape[0] + 1),
            "observed": observed,
            "fitted": fitted,
            "residual": residual,
        },
        index=result.design.frame.index,
    )
    return SimulatedResiduals(
        table=table,
        simulations=simulations,
        nsim=int(nsim),
        seed=seed,
        conditional=bool(conditional),
        family=family.name,
    )


# --------------------------------------------------------------------------- tests


def _one_row(test: str, statistic: float, p_value: float, what: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"test": test, "statistic": float(statistic), "p_value": float(p_value), "what": what}],
        columns=TEST_COLUMNS,
    )


def _simulation_p(simulated: np.ndarray, observed: float) -> float:
    """Two-sided simulation p value: twice the smaller tail share, at most 1 (DHARMa's
    ``getP(alternative = "two.sided")``)."""
    simulated = np.asarray(simulated, dtype=float)
    tail = min(np.mean(simulated <= observed), np.mean(simulated >= observed))
    return float(min(2 * tail, 1.0))


def _ratio(observed: float, simulated: np.ndarray) -> float:
    expected = float(np.mean(simulated))
    if expected == 0:
        return 1.0 if observed == 0 else float("inf")
    return observed / expected


def uniformity_test(res: SimulatedResiduals) -> pd.DataFrame:
    """Kolmogorov-Smirnov test of the scaled residuals against U(0, 1).

    The exact distribution for fewer than 100 residuals, the asymptotic (Kolmogorov) one
    otherwise, as R's ``ks.test`` (which DHARMa's ``testUniformity`` calls) chooses.

    Returns
    -------
    pandas.DataFrame
        One row: test ``uniformity``, statistic D, p_value, what.
    """
    r = res.residuals
    method = "exact" if r.size < 100 else "asymp"
    ks = st.kstest(r, "uniform", method=method)
    return _one_row(
        "uniformity",
        ks.statistic,
        ks.pvalue,
        "Kolmogorov-Smirnov D of the scaled residuals against uniform(0, 1); a small p: "
        "the data do not follow the model's distribution",
    )


def dispersion_test(res: SimulatedResiduals) -> pd.DataFrame:
    """Dispersion of the observations around the fitted values, against the simulations'.

    DHARMa's ``testDispersion(type = "DHARMa")`` without refits: the variance of
    ``y - fitted`` over the observations, divided by the mean of the same variance of each
    simulated response; the two-sided p value is the simulation tail share. A ratio above
    1 is overdispersion, below 1 underdispersion.

    Returns
    -------
    pandas.DataFrame
        One row: test ``dispersion``, statistic (the ratio), p_value, what.
    """
    fitted = res.fitted
    observed = float(np.var(res.observed - fitted, ddof=1))
    simulated = np.var(res.simulations - fitted[:, None], axis=0, ddof=1)
    return _one_row(
        "dispersion",
        _ratio(observed, simulated),
        _simulation_p(simulated, observed),
        "variance of the observations around the fitted values over its mean in the "
        "simulations; above 1 with a small p: overdispersion, below 1: underdispersion",
    )


def zero_inflation_test(res: SimulatedResiduals) -> pd.DataFrame:
    """Observed number of zeros against the simulated numbers (DHARMa's
    ``testZeroInflation``): ratio observed / mean simulated, two-sided simulation p.

    Returns
    -------
    pandas.DataFrame
        One row: test ``zero_inflation``, statistic (the ratio), p_value, what.
    """
    observed = float(np.sum(res.observed == 0))
    simulated = np.sum(res.simulations == 0, axis=0).astype(float)
    return _one_row(
        "zero_inflation",
        _ratio(observed, simulated),
        _simulation_p(simulated, observed),
        "observed number of zeros over its mean in the simulations; above 1 with a small "
        "p: more zeros than the model expects",
    )


def outlier_test(res: SimulatedResiduals) -> pd.DataFrame:
    """Observations outside the range of all their simulations, against their expected
    frequency (DHARMa's ``testOutliers(type = "binomial", margin = "both")``).

    An outlier is a residual below ``1 / (nsim + 1)`` or above ``1 - 1 / (nsim + 1)``; under
    the model each end has probability ``1 / (nsim + 1)``, so their count is tested with an
    exact two-sided binomial test against ``2 / (nsim + 1)``. For integer responses this
    expectation is approximate (DHARMa warns that the test may reject too often then).

    Returns
    -------
    pandas.DataFrame
        One row: test ``outliers``, statistic (the number of outliers), p_value, what.
    """
    r = res.residuals
    edge = 1.0 / (res.nsim + 1)
    count = int(np.sum(r < edge) + np.sum(r > 1 - edge))
    test = st.binomtest(count, r.size, p=2 * edge, alternative="two-sided")
    return _one_row(
        "outliers",
        count,
        test.pvalue,
        f"observations outside all {res.nsim} simulations, exact binomial test against "
        f"the expected share 2/(nsim + 1) = {2 * edge:.4f}; a small p: more (or fewer) "
        "outliers than the model expects",
    )


def residual_tests(res: SimulatedResiduals) -> pd.DataFrame:
    """The uniformity, dispersion, zero-inflation and outlier tests, one row each.

    Returns
    -------
    pandas.DataFrame
        Columns test, statistic, p_value, what.
    """
    tests = (uniformity_test, dispersion_test, zero_inflation_test, outlier_test)
    return pd.concat([test(res) for test in tests], ignore_index=True)


# --------------------------------------------------------------------------- records

#: Names of the tests in sentences (summary, figure).
TEST_NAMES = {
    "uniformity": "uniformity (KS) test",
    "dispersion": "dispersion test",
    "zero_inflation": "zero-inflation test",
    "outliers": "outlier test",
}


def diagnostics_record(
    res: SimulatedResiduals, alpha: float = 0.05, simulation_reason: str = "as requested"
) -> dict:
    """The tests of simulated residuals as a JSON-ready mapping (``diagnostics.json``).

    Parameters
    ----------
    res : SimulatedResiduals
    alpha : float, default 0.05
        A test with ``p < alpha`` is ``flagged``.
    simulation_reason : str, default "as requested"
        Why the random effects were drawn anew or kept (:func:`simulation_choice`).

    Returns
    -------
    dict
        ``assessed`` (True), ``method``, ``nsim``, ``seed``, ``conditional``,
        ``random_effects`` (the simulation in words), ``simulation_reason``, ``alpha``,
        ``tests`` (one mapping per test: test, statistic, p_value, what, flagged) and
        ``flagged`` (the names of the flagged tests).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> table = pd.DataFrame({"row": [1, 2], "observed": [0.0, 1.0], "fitted": [.5, .5],
    ...                       "residual": [0.2, 0.9]})
    >>> sims = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    >>> record = diagnostics_record(SimulatedResiduals(table, sims, 3, 1, False, "binomial"))
    >>> [t["test"] for t in record["tests"]], record["flagged"]
    (['uniformity', 'dispersion', 'zero_inflation', 'outliers'], [])
    """
    tests = residual_tests(res)
    rows = []
    for row in tests.to_dict(orient="records"):
        p = row["p_value"]
        rows.append({**row, "flagged": bool(np.isfinite(p) and p < alpha)})
    return {
        "assessed": True,
        "method": "simulated scaled (quantile) residuals, DHARMa's method",
        "nsim": res.nsim,
        "seed": res.seed,
        "conditional": res.conditional,
        "random_effects": simulation_words(res.conditional),
        "simulation_reason": simulation_reason,
        "alpha": alpha,
        "tests": rows,
        "flagged": [row["test"] for row in rows if row["flagged"]],
    }


def not_assessed_record(reason: str) -> dict:
    """``diagnostics.json`` of a model without simulated residuals (not fitted, or a
    population-averaged fit), with the reason."""
    return {"assessed": False, "reason": reason, "tests": [], "flagged": []}
