"""Simulation-based power analysis: responses drawn from a stated truth, refitted.

- :func:`truth_result`: a :class:`~resistance_outcomes.models.MixedResult` that carries a
  stated truth (fixed effects, random-effect SDs and correlations, residual SD, NB size)
  on a design, so that the engine's :meth:`MixedResult.simulate` draws from it;
- :func:`simulate_responses`: responses drawn from the truth, without any fit;
- :func:`power_replicates`: replicates ``start .. stop - 1`` drawn and refitted, one row
  per replicate and tested term (what a workflow chunk computes);
- :func:`summarise_power`: those rows condensed to power, its Wilson interval, failed,
  singular and non-converged fits, bias, SDs and coverage;
- :func:`power_simulation`: both steps, optionally over several processes.

Replicate ``i`` is drawn from its own generator, seeded by the ``i``-th child of
``numpy.random.SeedSequence(seed)`` (``SeedSequence(seed, spawn_key=(i,))``, the same as
``SeedSequence(seed).spawn(i + 1)[i]``), so its responses and fit do not depend on which
chunk, job or process computes it.

The truth is stated on the model's own scale::

    truth = {"fixed": {"(Intercept)": 0.5, "x": 0.3},     # lme4 names of the X columns
             "sd": {"g": 0.4, "g:h": [0.3, 0.1]},          # per random term, its group name
             "corr": {"g:h": [[1, 0.2], [0.2, 1]]},        # optional, vector-valued terms
             "sigma": 0.8,                                 # gaussian only
             "theta": 2.5}                                 # NB2 size, negative_binomial only

The tested quantity (``test``) is a coefficient name, a list of them, or a mapping in the
spelling of a model's ``contrasts:`` entry (as contrasts.csv reports them):
``{"pairwise": "<factor>"}`` for every pairwise difference between the factor's levels,
``{"slopes": ["<numeric predictor>", ...], "factor": "<factor>"}`` for the slope of each
predictor within each level of the factor, with an optional ``"by": "<factor>"``; a list
may mix coefficient names and such mappings.

Refits reuse the design built once (only the response changes) and, by default, start
the covariance parameters at the truth (``warm_start``): the design's starting ``theta0``
(in the optimizer's coordinates, ``theta * theta_scale(design)``) is set to the truth's,
with zero variances started at 0.1 instead of at their bound. The optimum is the same as
from the engine's default start (to about 1e-7 on the tests' designs); the fits take
10-20% less time.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.stats as st

from ..contrasts import ADJUSTMENTS, adjust_pvalues, pairwise_contrasts, simple_slopes
from ..models import MixedResult, ModelSpecError, build_design, get_family
from ..models.design import MixedDesign, _expression_names
from ..models.formula import parse_formula
from ..models.refit import model_response, refit, warm_design
from .designs import attrition_mask

__all__ = [
    "parse_test",
    "POWER_COLUMNS",
    "REPLICATE_COLUMNS",
    "power_replicates",
    "power_simulation",
    "replicate_rng",
    "simulate_responses",
    "summarise_power",
    "estimate_targets",
    "truth_result",
    "wilson_interval",
]

#: Columns of :func:`power_replicates`: one row per replicate and tested term.
REPLICATE_COLUMNS = [
    "replicate",
    "term",
    "kind",
    "truth",
    "estimate",
    "std_error",
    "p_value",
    "ci_low",
    "ci_high",
    "failed",
    "converged",
    "singular",
    "error",
]
#: Columns of :func:`summarise_power` and :func:`power_simulation`.
POWER_COLUMNS = [
    "term",
    "kind",
    "truth",
    "alpha",
    "replicates",
    "rejections",
    "power",
    "power_ci_low",
    "power_ci_high",
    "failed",
    "singular",
    "not_converged",
    "converged_fits",
    "power_converged",
    "mean_estimate",
    "empirical_sd",
    "mean_se",
    "coverage",
]
_PLACEHOLDER = 1.0  # a valid response value of every family (and of log(y), sqrt(y), ...)


# --- the truth ---------------------------------------------------------------------------


def _design_from(formula: str, data: pd.DataFrame) -> MixedDesign:
    """The design of ``formula`` on ``data``; an absent response gets a placeholder."""
    parsed = parse_formula(formula)
    names = _expression_names(parsed.response, "response")
    missing = sorted(n for n in names if n not in data.columns)
    if missing:
        tree_is_cbind = parsed.response.replace(" ", "").startswith("cbind(")
        if tree_is_cbind:
            raise ModelSpecError(
                f"the binomial response {parsed.response!r} sets the number of trials per "
                f"row, but the data lack column(s) {', '.join(missing)}; give both columns "
                "(their sum is the trials; the successes are simulated)"
            )
        data = data.assign(**{name: _PLACEHOLDER for name in missing})
    return build_design(parsed, data)


def _fixed_effects(design: MixedDesign, fixed) -> np.ndarray:
    names = design.fixed_names
    if not isinstance(fixed, Mapping):
        raise ModelSpecError(
            f"truth['fixed'] must map each fixed-effect term to its value; the design's "
            f"terms are {names}"
        )
    unknown = [t for t in fixed if t not in names]
    absent = [t for t in names if t not in fixed]
    if unknown or absent:
        parts = []
        if unknown:
            parts.append(f"unknown term(s) {unknown}")
        if absent:
            parts.append(f"no value for term(s) {absent}")
        raise ModelSpecError(f"truth['fixed']: {'; '.join(parts)}; the design's terms are {names}")
    beta = np.array([_number(fixed[t], f"truth['fixed'][{t!r}]") for t in names])
    return beta


def _number(value, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ModelSpecError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ModelSpecError(f"{where} must be finite, got {value!r}")
    return out


def _psd_cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower-triangular ``L`` with ``L L' = cov`` for a positive semi-definite ``cov``
    (columns of zero variance stay zero, as lme4's theta at a boundary)."""
    k = len(cov)
    lower = np.zeros((k, k))
    for j in range(k):
        d = cov[j, j] - lower[j, :j] @ lower[j, :j]
        if d <= 1e-14 * max(1.0, abs(cov[j, j])):
            continue
        lower[j, j] = math.sqrt(d)
        for i in range(j + 1, k):
            lower[i, j] = (cov[i, j] - lower[i, :j] @ lower[j, :j]) / lower[j, j]
    return lower


def _theta(design: MixedDesign, truth: Mapping, sigma: float) -> np.ndarray:
    sds = truth.get("sd", {}) or {}
    corrs = truth.get("corr", {}) or {}
    groups = [block.group for block in design.blocks]
    for key, what in ((sds, "sd"), (corrs, "corr")):
        if not isinstance(key, Mapping):
            raise ModelSpecError(f"truth[{what!r}] must map group names to values")
        unknown = [g for g in key if g not in groups]
        if unknown:
            raise ModelSpecError(
                f"truth[{what!r}] names group(s) {unknown} that the design does not have; "
                f"its random-effect groups are {groups}"
            )
    theta = np.zeros(len(design.theta0))
    for block in design.blocks:
        group, k = block.group, block.n_coef
        if group not in sds:
            raise ModelSpecError(
                f"truth['sd'] has no value for group {group!r} (coefficients "
                f"{block.coef_names}); the design's groups are {groups}"
            )
        sd = np.atleast_1d(np.asarray(sds[group], dtype=object))
        if sd.ndim != 1 or len(sd) != k:
            raise ModelSpecError(
                f"truth['sd'][{group!r}] must give {k} SD(s), one per coefficient "
                f"{block.coef_names}; got {sds[group]!r}"
            )
        sd = np.array([_number(v, f"truth['sd'][{group!r}]") for v in sd])
        if np.any(sd < 0):
            raise ModelSpecError(f"truth['sd'][{group!r}] must not be negative, got {sd.tolist()}")
        corr = np.eye(k)
        if group in corrs:
            try:
                corr = np.asarray(corrs[group], dtype=float)
            except (TypeError, ValueError):
                raise ModelSpecError(
                    f"truth['corr'][{group!r}] must be a {k} x {k} matrix of numbers"
                ) from None
            if corr.shape != (k, k):
                raise ModelSpecError(
                    f"truth['corr'][{group!r}] must be a {k} x {k} matrix (coefficients "
                    f"{block.coef_names}); got shape {corr.shape}"
                )
            if (
                not np.allclose(corr, corr.T)
                or not np.allclose(np.diag(corr), 1.0)
                or np.any(np.abs(corr) > 1)
                or np.linalg.eigvalsh(corr).min() < -1e-10
            ):
                raise ModelSpecError(
                    f"truth['corr'][{group!r}] is not a correlation matrix (symmetric, unit "
                    f"diagonal, positive semi-definite): {corr.tolist()}"
                )
        cov = np.outer(sd, sd) * corr / sigma**2
        factor = _psd_cholesky(cov)
        rows, cols = np.tril_indices(k)
        order = np.lexsort((rows, cols))  # column-major lower triangle (lme4's theta)
        theta[block.theta_slice] = factor[rows[order], cols[order]]
    return theta


def truth_result(design: MixedDesign, family: str, truth: Mapping) -> MixedResult:
    """A model result carrying the stated truth on ``design`` (no fit involved).

    Its ``beta``, ``theta``, ``sigma`` and ``nb_theta`` are the truth's (``theta`` being the
    relative Cholesky factor of each term's covariance, ``sd sd' corr / sigma^2``, in lme4's
    layout), so ``truth_result(...).simulate(...)`` draws responses from the truth.

    Parameters
    ----------
    design : MixedDesign
    family : str
    truth : mapping
        ``fixed``, ``sd``, optional ``corr``, ``sigma`` (gaussian), ``theta`` (NB2 size).

    Returns
    -------
    MixedResult

    Raises
    ------
    ModelSpecError
        For a missing or unknown term or group, SDs or correlations of the wrong size, or a
        missing or superfluous ``sigma`` / ``theta``; the message lists the design's terms
        or groups.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": list("aabb")})
    >>> fit = truth_result(build_design("y ~ 1 + (1 | g)", df), "gaussian",
    ...                    {"fixed": {"(Intercept)": 2}, "sd": {"g": 1.0}, "sigma": 0.5})
    >>> fit.theta.tolist(), fit.sigma
    ([2.0], 0.5)
    """
    if not isinstance(truth, Mapping):
        raise ModelSpecError("truth must be a mapping with keys fixed, sd, corr, sigma, theta")
    fam = get_family(family)
    known = {"fixed", "sd", "corr", "sigma", "theta"}
    unknown = sorted(set(truth) - known)
    if unknown:
        raise ModelSpecError(f"truth has unknown key(s) {unknown}; use {sorted(known)}")
    if "fixed" not in truth:
        raise ModelSpecError(
            f"truth has no 'fixed' values; the design's terms are {design.fixed_names}"
        )
    beta = _fixed_effects(design, truth["fixed"])
    if fam.name == "gaussian":
        if "sigma" not in truth:
            raise ModelSpecError("truth for a gaussian model needs 'sigma', the residual SD")
        sigma = _number(truth["sigma"], "truth['sigma']")
        if sigma <= 0:
            raise ModelSpecError(f"truth['sigma'] must be positive, got {sigma}")
    else:
        if "sigma" in truth:
            raise ModelSpecError(
                f"truth['sigma'] is the residual SD of a gaussian model; family {fam.name} "
                "has none (state the random-effect SDs on the link scale)"
            )
        sigma = 1.0
    nb_theta = None
    if fam.name == "negative_binomial":
        if "theta" not in truth:
            raise ModelSpecError("truth for a negative_binomial model needs 'theta', the NB2 size")
        nb_theta = _number(truth["theta"], "truth['theta']")
        if nb_theta <= 0:
            raise ModelSpecError(f"truth['theta'] must be positive, got {nb_theta}")
    elif "theta" in truth:
        raise ModelSpecError(
            f"truth['theta'] is the negative-binomial size; family {fam.name} has none"
        )
    theta = _theta(design, truth, sigma)
    p = design.p
    return MixedResult(
        design=design,
        family=fam.name,
        method="truth",
        beta=beta,
        vcov=np.zeros((p, p)),
        df=None,
        theta=theta,
        sigma=sigma,
        nb_theta=nb_theta,
        b=np.zeros(design.q),
        loglik=float("nan"),
        deviance=float("nan"),
        n_params=0,
        converged=True,
        singular=False,
    )


def replicate_rng(seed: int, replicate: int) -> np.random.Generator:
    """The generator of replicate ``replicate`` (0-based): the replicate-th child of
    ``SeedSequence(seed)``.

    Examples
    --------
    >>> a = replicate_rng(5, 3).normal()
    >>> b = np.random.default_rng(np.random.SeedSequence(5).spawn(4)[3]).normal()
    >>> a == b
    True
    """
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(replicate),)))


def _check_range(nsim: int, start: int) -> tuple[int, int]:
    if int(nsim) != nsim or nsim < 1:
        raise ModelSpecError(
            f"the number of replicates must be a positive whole number, got {nsim!r}"
        )
    if int(start) != start or start < 0:
        raise ModelSpecError(f"the first replicate index must be 0 or more, got {start!r}")
    return int(nsim), int(start)


def _draw(result: MixedResult, seed: int, replicate: int) -> np.ndarray:
    sims = result.simulate(nsim=1, seed=replicate_rng(seed, replicate))
    return sims["sim_1"].to_numpy()


def simulate_responses(
    formula: str,
    data: pd.DataFrame,
    family: str,
    truth: Mapping,
    nsim: int = 1,
    seed: int = 0,
    start: int = 0,
) -> pd.DataFrame:
    """Responses drawn from a stated truth, without any fit.

    The design is built from ``formula`` and ``data`` (the response column may be absent;
    a ``cbind(successes, failures)`` response needs both columns for the trials). Each
    replicate draws new random effects from the truth's covariances and then the responses
    from the family (through :meth:`MixedResult.simulate`).

    Parameters
    ----------
    formula : str
        lme4-style formula, as :func:`resistance_outcomes.models.fit_mixed` takes it.
    data : pandas.DataFrame
    family : str
    truth : mapping
        See the module docstring.
    nsim : int
        Number of replicates.
    seed : int
    start : int
        Index of the first replicate (0-based): replicates ``start .. start + nsim - 1``
        are drawn, each from its own seed, so chunks drawn apart equal one draw of all.

    Returns
    -------
    pandas.DataFrame
        Columns ``sim_<start + 1>`` ... ``sim_<start + nsim>``, indexed like the rows used
        (rows with missing values in used columns are dropped); binomial ``cbind`` models
        give successes.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"g": [1, 1, 2, 2, 3, 3], "x": [0.0, 1, 0, 1, 0, 1]})
    >>> truth = {"fixed": {"(Intercept)": 1.0, "x": 0.5}, "sd": {"g": 0.3}}
    >>> sims = simulate_responses("n ~ x + (1 | g)", df, "poisson", truth, nsim=4, seed=1)
    >>> list(sims.columns), sims.shape
    (['sim_1', 'sim_2', 'sim_3', 'sim_4'], (6, 4))
    >>> later = simulate_responses("n ~ x + (1 | g)", df, "poisson", truth, 2, seed=1, start=2)
    >>> bool((later == sims[["sim_3", "sim_4"]]).all().all())
    True
    """
    nsim, start = _check_range(nsim, start)
    design = _design_from(formula, data)
    result = truth_result(design, family, truth)
    columns = {f"sim_{i + 1}": _draw(result, seed, i) for i in range(start, start + nsim)}
    return pd.DataFrame(columns, index=design.frame.index)


# --- what is tested ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    kind: str  # "coefficient", "pairwise" or "simple_slope"
    term: str | None = None
    factor: str | None = None
    variable: str | None = None
    by: str | None = None


def parse_test(test, design: MixedDesign) -> list[_Target]:
    """The tested quantities named by ``test`` (see the module docstring), checked against
    the design's fixed effects; :func:`estimate_targets` computes them for a fit."""
    items = [test] if isinstance(test, str | Mapping) else list(test or [])
    if not items:
        raise ModelSpecError("test names nothing: give a coefficient name or a contrast mapping")
    targets = []
    for item in items:
        if isinstance(item, str):
            if item not in design.fixed_names:
                raise ModelSpecError(
                    f"test term {item!r} is not a fixed effect of the model; its terms are "
                    f"{design.fixed_names}"
                )
            targets.append(_Target("coefficient", term=item))
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - {"pairwise", "slopes", "factor", "by"})
            if unknown:
                raise ModelSpecError(
                    f"test mapping has unknown key(s) {unknown}; use pairwise, slopes, factor, by"
                )
            pairwise = item.get("pairwise")
            slopes = item.get("slopes", []) or []
            slopes = [slopes] if isinstance(slopes, str) else list(slopes)
            factor = item.get("factor")
            if isinstance(pairwise, str):
                if factor is not None and factor != pairwise:
                    raise ModelSpecError(
                        f"test mapping names factor {factor!r} and pairwise {pairwise!r}; "
                        "name the factor once"
                    )
                factor = pairwise
            elif pairwise not in (None, False, True):
                raise ModelSpecError(
                    f"test 'pairwise' must be a factor name or true/false, got {pairwise!r}"
                )
            if (pairwise or slopes) and factor is None:
                raise ModelSpecError(
                    "test mapping needs the factor whose levels are compared: "
                    "{'pairwise': '<factor>'} or 'factor': '<factor>'"
                )
            if not pairwise and not slopes:
                raise ModelSpecError(
                    f"test mapping {dict(item)!r} asks for nothing: give pairwise or slopes"
                )
            by = item.get("by")
            if pairwise:
                targets.append(_Target("pairwise", factor=factor, by=by))
            targets += [_Target("simple_slope", factor=factor, variable=v, by=by) for v in slopes]
        else:
            raise ModelSpecError(
                f"test item {item!r} is neither a coefficient name nor a contrast mapping"
            )
    return targets


_TEST_COLUMNS = ["term", "estimate", "std_error", "p_value", "ci_low", "ci_high"]


def _label_contrasts(table: pd.DataFrame, kind: str) -> pd.Series:
    by = table["by"].fillna("").astype(str).map(lambda b: f" | {b}" if b else "")
    if kind == "pairwise":
        return table["level"].astype(str) + " - " + table["reference"].astype(str) + by
    return table["variable"].astype(str) + " in " + table["level"].astype(str) + by


def estimate_targets(fit: MixedResult, targets: list[_Target]) -> pd.DataFrame:
    """The tested quantities of one fit: term, kind, estimate, std_error, p, 95% CI
    (unadjusted contrasts labelled ``"<level> - <reference>"`` and
    ``"<variable> in <level>"``, with ``" | <by>"`` within a second factor)."""
    tables = []
    coefficients = [t.term for t in targets if t.kind == "coefficient"]
    if coefficients:
        table = fit.coefficients.set_index("term").loc[coefficients].reset_index()
        tables.append(table[_TEST_COLUMNS].assign(kind="coefficient"))
    for target in targets:
        if target.kind == "coefficient":
            continue
        if target.kind == "pairwise":
            table = pairwise_contrasts(fit, target.factor, target.by, adjust="none")
        else:
            table = simple_slopes(fit, target.variable, target.factor, target.by, adjust="none")
        table = table.assign(term=_label_contrasts(table, target.kind), kind=target.kind)
        tables.append(table[[*_TEST_COLUMNS, "kind"]])
    return pd.concat(tables, ignore_index=True)


def _truth_values(result: MixedResult, targets: list[_Target]) -> pd.DataFrame:
    """Term, kind and true value of each tested quantity (``L beta`` at the truth)."""
    p = result.design.p
    probe = replace(result, vcov=np.eye(p), df=None, extra={})
    table = estimate_targets(probe, targets)
    return table[["term", "kind", "estimate"]].rename(columns={"estimate": "truth"})


# --- refits ------------------------------------------------------------------------------
# (models.refit: refit a built design to a new response, warm-started; the private names
# stay so that tests can replace _refit)
_refit = refit
_model_response = model_response
_warm_design = warm_design


def _prepare(formula, data, family, truth, test):
    """Design, family name, truth result, tested quantities and their true values."""
    design = _design_from(formula, data)
    fam = get_family(family).name
    result = truth_result(design, fam, truth)
    targets = parse_test(test, design)
    return design, fam, result, targets, _truth_values(result, targets)


def _attrition(attrition, formula: str, data: pd.DataFrame, family: str, design) -> dict | None:
    """The attrition settings of :func:`power_replicates`, checked, or None."""
    if attrition is False or attrition is None:
        return None
    settings = dict(attrition) if isinstance(attrition, Mapping) else {}
    if attrition is not True and not isinstance(attrition, Mapping):
        raise ModelSpecError(f"attrition must be true, false or a mapping, got {attrition!r}")
    unknown = sorted(set(settings) - {"cluster", "order"})
    if unknown:
        raise ModelSpecError(f"attrition takes cluster and order, not {unknown}")
    response = parse_formula(formula).response.strip()
    if family != "binomial" or not response.isidentifier():
        raise ModelSpecError(
            "attrition needs a 0/1 event response (binomial, one trial per row, a column "
            f"name); the model has {response!r} ({family})"
        )
    if not np.all(design.prior_weights == 1):
        raise ModelSpecError("attrition needs one trial per person-period row (no weights)")
    mask = {
        "cluster": list(settings.get("cluster", ["study", "client"])),
        "order": settings.get("order", "session"),
    }
    missing = [c for c in [*mask["cluster"], mask["order"]] if c not in data.columns]
    if missing:
        raise ModelSpecError(
            f"attrition needs column(s) {missing} in the data (its cluster and order); "
            f"columns: {', '.join(map(str, data))}"
        )
    return {"response": response, "mask": mask}


def power_replicates(
    formula: str,
    data: pd.DataFrame,
    family: str,
    truth: Mapping,
    test,
    start: int = 0,
    stop: int = 1,
    seed: int = 0,
    reml: bool = True,
    nagq: int = 1,
    control: dict | None = None,
    warm_start: bool = True,
    adjust: str = "none",
    attrition: bool | Mapping = False,
) -> pd.DataFrame:
    """Replicates ``start .. stop - 1``: responses drawn from the truth, the model refitted,
    the tested quantities recorded.

    Parameters
    ----------
    formula, data, family, truth
        As :func:`simulate_responses`.
    test : str, mapping or list
        Coefficient name(s) and/or contrast mappings (see the module docstring).
    start, stop : int
        Replicate indices (0-based, ``stop`` excluded).
    seed : int
    reml, nagq, control
        As :func:`resistance_outcomes.models.fit_mixed`.
    warm_start : bool
        Start the covariance parameters of each refit at the truth (see the module
        docstring); False uses the engine's default start.
    adjust : {"none", "holm", "bh"}
        Multiplicity adjustment of the p values of one replicate's tested quantities
        (:func:`resistance_outcomes.contrasts.adjust_pvalues`), so that power is that of
        the adjusted tests; the intervals stay unadjusted.
    attrition : bool or mapping
        For a discrete-time dropout hazard on person-period rows (0/1 response): each
        replicate is fitted to each client's rows up to and including the first simulated
        event (:func:`~resistance_outcomes.power.attrition_mask`), so that attrition
        comes from the hazard itself. True uses clusters ``("study", "client")`` ordered by
        ``"session"``; a mapping may give ``cluster`` and ``order``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`REPLICATE_COLUMNS`, one row per replicate and tested quantity. A
        replicate whose fit raises has ``failed`` true, empty estimates and the error
        message (so has a term whose standard error is not finite); ``converged`` and
        ``singular`` are the fit's own flags (``fit_statistics["converged"]``,
        ``["singular"]``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(6), 4), "x": np.tile([0.0, 1], 12)})
    >>> truth = {"fixed": {"(Intercept)": 0.0, "x": 1.0}, "sd": {"g": 0.5}, "sigma": 1.0}
    >>> rows = power_replicates("y ~ x + (1 | g)", df, "gaussian", truth, "x", 0, 3, seed=2)
    >>> rows[["replicate", "term", "truth", "failed"]].values.tolist()
    [[0, 'x', 1.0, False], [1, 'x', 1.0, False], [2, 'x', 1.0, False]]
    """
    _check_range(max(int(stop) - int(start), 1), start)
    if stop <= start:
        raise ModelSpecError(f"stop ({stop}) must exceed start ({start})")
    if adjust not in ADJUSTMENTS:
        raise ModelSpecError(f"adjust {adjust!r} is not one of {', '.join(ADJUSTMENTS)}")
    design, fam, result, targets, truths = _prepare(formula, data, family, truth, test)
    dropout = _attrition(attrition, formula, data, fam, design)
    fit_design = _warm_design(design, result.theta) if warm_start else design
    rows = []
    for i in range(int(start), int(stop)):
        y = _model_response(fam, _draw(result, seed, i), design)
        try:
            if dropout is None:
                fit = _refit(fit_design, fam, y, reml, control, nagq)
            else:
                keep = attrition_mask(data, y, **dropout["mask"])
                kept = _design_from(formula, data[keep].assign(**{dropout["response"]: y[keep]}))
                kept = _warm_design(kept, result.theta) if warm_start else kept
                fit = _refit(kept, fam, y[keep], reml, control, nagq)
            table = estimate_targets(fit, targets)
            table["p_value"] = adjust_pvalues(table["p_value"].to_numpy(dtype=float), adjust)
        except Exception as err:  # a fit that raises counts as failed, with its message
            table = truths[["term", "kind"]].assign(
                estimate=np.nan, std_error=np.nan, p_value=np.nan, ci_low=np.nan, ci_high=np.nan
            )
            flags = {
                "failed": True,
                "converged": False,
                "singular": False,
                "error": f"{type(err).__name__}: {err}",
            }
        else:
            flags = {
                "failed": False,
                "converged": bool(fit.converged),
                "singular": bool(fit.singular),
                "error": "",
            }
        table = table.assign(replicate=i, truth=truths["truth"].to_numpy(), **flags)
        unusable = ~table["failed"] & ~np.isfinite(table["std_error"].to_numpy(dtype=float))
        if unusable.any():  # a fit without a usable test of this term failed for it
            table.loc[unusable, "failed"] = True
            table.loc[unusable, "error"] = "the fit gives no finite standard error"
        rows.append(table)
    return pd.concat(rows, ignore_index=True)[REPLICATE_COLUMNS]


# --- summaries ---------------------------------------------------------------------------


def wilson_interval(successes, trials, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (Wilson, 1927).

    Examples
    --------
    >>> low, high = wilson_interval(80, 100)
    >>> round(float(low), 4), round(float(high), 4)
    (0.7112, 0.8666)
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = st.norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def summarise_power(replicates: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Power and the operating characteristics of the fits, one row per tested term.

    Parameters
    ----------
    replicates : pandas.DataFrame
        Rows of :func:`power_replicates` (any number of chunks concatenated; each
        replicate index counted once).
    alpha : float
        Level of the two-sided tests.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`POWER_COLUMNS`. ``power`` = rejections / replicates, failed fits
        counting as non-rejections, with its Wilson 95% interval; ``power_converged`` over
        the fits that did not fail and converged (``converged_fits`` of them); ``failed``,
        ``singular`` and ``not_converged`` count replicates; ``mean_estimate``,
        ``empirical_sd`` (ddof 1), ``mean_se`` and ``coverage`` (share of 95% intervals
        that contain the truth) are over the fits that did not fail.

    Examples
    --------
    >>> rows = pd.DataFrame({"replicate": [0, 1, 2, 3], "term": "x", "kind": "coefficient",
    ...     "truth": 1.0, "estimate": [0.9, 1.2, 1.1, np.nan], "std_error": 0.3,
    ...     "p_value": [0.01, 0.001, 0.2, np.nan], "ci_low": [0.3, 0.6, 0.5, np.nan],
    ...     "ci_high": [1.5, 1.8, 1.7, np.nan], "failed": [False, False, False, True],
    ...     "converged": [True, True, True, False], "singular": False, "error": ""})
    >>> out = summarise_power(rows)
    >>> out[["rejections", "failed", "converged_fits"]].values.tolist()
    [[2, 1, 3]]
    >>> out[["power", "power_converged", "coverage"]].round(3).values.tolist()
    [[0.5, 0.667, 1.0]]
    """
    if not 0 < alpha < 1:
        raise ModelSpecError(f"alpha must lie between 0 and 1, got {alpha!r}")
    missing = [c for c in REPLICATE_COLUMNS if c not in replicates.columns]
    if missing:
        raise ModelSpecError(f"replicate rows lack column(s) {missing}")
    duplicated = replicates.duplicated(["term", "replicate"])
    if duplicated.any():
        first = replicates.loc[duplicated].iloc[0]
        raise ModelSpecError(
            f"replicate {first['replicate']} of term {first['term']!r} appears more than once; "
            "chunks must not overlap"
        )
    out = []
    ordered = replicates.sort_values("replicate", kind="stable")  # sums independent of chunks
    for term in pd.unique(replicates["term"]):
        rows = ordered[ordered["term"] == term]
        failed = rows["failed"].astype(bool).to_numpy()
        ok = ~failed
        reject = ok & (rows["p_value"].to_numpy(dtype=float) < alpha)
        converged = ok & rows["converged"].astype(bool).to_numpy()
        n = len(rows)
        low, high = wilson_interval(reject.sum(), n)
        est = rows["estimate"].to_numpy(dtype=float)[ok]
        truth = float(rows["truth"].iloc[0])
        covered = (rows["ci_low"].to_numpy(dtype=float)[ok] <= truth) & (
            truth <= rows["ci_high"].to_numpy(dtype=float)[ok]
        )
        out.append(
            {
                "term": term,
                "kind": rows["kind"].iloc[0],
                "truth": truth,
                "alpha": alpha,
                "replicates": n,
                "rejections": int(reject.sum()),
                "power": reject.sum() / n,
                "power_ci_low": float(low),
                "power_ci_high": float(high),
                "failed": int(failed.sum()),
                "singular": int((ok & rows["singular"].astype(bool).to_numpy()).sum()),
                "not_converged": int((ok & ~converged).sum()),
                "converged_fits": int(converged.sum()),
                "power_converged": reject[converged].mean() if converged.any() else np.nan,
                "mean_estimate": est.mean() if est.size else np.nan,
                "empirical_sd": est.std(ddof=1) if est.size > 1 else np.nan,
                "mean_se": rows["std_error"].to_numpy(dtype=float)[ok].mean()
                if ok.any()
                else np.nan,
                "coverage": covered.mean() if ok.any() else np.nan,
            }
        )
    return pd.DataFrame(out, columns=POWER_COLUMNS)


def _chunks(replicates: int, n_jobs: int) -> list[tuple[int, int]]:
    size = math.ceil(replicates / max(n_jobs * 4, 1))
    return [(a, min(a + size, replicates)) for a in range(0, replicates, size)]


def power_simulation(
    formula: str,
    data: pd.DataFrame,
    family: str,
    truth: Mapping,
    test,
    replicates: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    n_jobs: int = 1,
    reml: bool = True,
    nagq: int = 1,
    control: dict | None = None,
    warm_start: bool = True,
    adjust: str = "none",
    attrition: bool | Mapping = False,
) -> pd.DataFrame:
    """Simulation-based power of Wald tests in a mixed model, for a stated truth.

    Draws ``replicates`` response sets from the truth (:func:`simulate_responses`), refits
    the model to each and counts the replicates whose two-sided test rejects at ``alpha``
    (:func:`summarise_power`). Results depend only on ``seed``, not on ``n_jobs``.

    Parameters
    ----------
    formula, data, family, truth
        As :func:`simulate_responses`.
    test : str, mapping or list
        A coefficient name (``"x"``), a list of them, ``{"pairwise": "<factor>"}``,
        ``{"slopes": ["<predictor>"], "factor": "<factor>"}`` (optional ``"by"``), or a list
        mixing them.
    replicates : int
    alpha : float
    seed : int
    n_jobs : int
        Worker processes (``concurrent.futures``); 1 computes in this process.
    reml, nagq, control
        As :func:`resistance_outcomes.models.fit_mixed`.
    warm_start, adjust, attrition
        As :func:`power_replicates` (by default the tests are unadjusted for
        multiplicity and every row is fitted).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`POWER_COLUMNS`, one row per tested coefficient or contrast.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(8), 5), "x": np.tile(np.arange(5.0), 8)})
    >>> truth = {"fixed": {"(Intercept)": 0.0, "x": 0.4}, "sd": {"g": 0.5}, "sigma": 1.0}
    >>> out = power_simulation("y ~ x + (1 | g)", df, "gaussian", truth, "x",
    ...                        replicates=20, seed=1)
    >>> out[["term", "replicates", "failed"]].values.tolist()
    [['x', 20, 0]]
    """
    if int(replicates) != replicates or replicates < 1:
        raise ModelSpecError(f"replicates must be a positive whole number, got {replicates!r}")
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise ModelSpecError(f"n_jobs must be a positive whole number, got {n_jobs!r}")
    if not 0 < alpha < 1:
        raise ModelSpecError(f"alpha must lie between 0 and 1, got {alpha!r}")
    args = (formula, data, family, truth, test)
    options = {
        "seed": seed,
        "reml": reml,
        "nagq": nagq,
        "control": control,
        "warm_start": warm_start,
        "adjust": adjust,
        "attrition": attrition,
    }
    chunks = _chunks(int(replicates), int(n_jobs))
    if n_jobs == 1:
        parts = [power_replicates(*args, start=a, stop=b, **options) for a, b in chunks]
    else:
        design, fam, *_ = _prepare(*args)  # bad input raises here, before any process starts
        _attrition(attrition, formula, data, fam, design)
        with concurrent.futures.ProcessPoolExecutor(max_workers=int(n_jobs)) as pool:
            futures = [
                pool.submit(power_replicates, *args, start=a, stop=b, **options) for a, b in chunks
            ]
            parts = [f.result() for f in futures]
    return summarise_power(pd.concat(parts, ignore_index=True), alpha)
