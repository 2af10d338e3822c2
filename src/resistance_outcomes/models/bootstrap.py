"""Parametric bootstrap of a fitted mixed model: replicate estimates and percentile intervals.

- :func:`bootstrap_parameters`: the bootstrapped quantities of one fit, one row each
  (fixed effects, random-effect SDs and correlations, the residual SD or NB size, ICC,
  the grouping factors' shares of variance, marginal and conditional R², and any
  contrast);
- :func:`parametric_bootstrap`: replicates ``start .. start + nsim - 1``, each a response
  set simulated from the fit and refitted, one row per replicate and quantity (what a
  workflow chunk computes);
- :func:`bootstrap_intervals`: those rows condensed to percentile intervals, with the
  number of replicates used and of failed and singular refits.

As lme4's ``bootMer(type = "parametric", use.u = FALSE)``: each replicate draws new random
effects from the estimated covariance and new responses around them
(:meth:`~resistance_outcomes.models.MixedResult.simulate`), and the same model is refitted
on the same design (:func:`~resistance_outcomes.models.refit.refit`), its covariance
parameters started at the estimates. Replicate ``i`` draws from its own generator,
``numpy.random.SeedSequence(seed, spawn_key=(i,))``
(:func:`resistance_outcomes.power.replicate_rng`), so its result does not depend on the
chunk, job or process that computes it.

Names of the quantities (``parameter``) follow lme4's ``confint(..., oldNames = FALSE)``:
the fixed-effect terms as the coefficient table names them, ``sd_<coef>|<group>``,
``cor_<coef2>.<coef1>|<group>``, ``sigma`` (gaussian), and further ``nb_size`` (NB2 size),
``icc`` (adjusted ICC), ``VPC (<group>)`` (each grouping factor's share of variance, when
there are several, as in ``intervals.csv``), ``r2_marginal``, ``r2_conditional`` and the
contrasts' labels as
contrasts.csv and the power module write them (``"cognitive - behavioral"``,
``"repair_rate_between in cognitive"``). Each quantity also carries ``group`` and ``term``
as the profile intervals (``intervals.csv``) spell them: ``("therapist", "sd (Intercept)")``,
``("client", "cor (Intercept), session_c")``, ``("Residual", "sd")`` for ``sigma``,
``("NB2", "size")`` for ``nb_size``, an empty group and the term itself for a fixed effect;
the whole-model quantities have an empty group and the terms ``"ICC (adjusted)"``,
``"R2 (marginal)"``, ``"R2 (conditional)"`` or the contrast's label.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing

import numpy as np
import pandas as pd

from .formula import ModelSpecError
from .refit import model_response, refit, warm_design
from .result import MixedResult

__all__ = [
    "BOOTSTRAP_COLUMNS",
    "INTERVAL_COLUMNS",
    "PARAMETER_COLUMNS",
    "bootstrap_intervals",
    "bootstrap_parameters",
    "contrast_test",
    "parametric_bootstrap",
]

#: Columns of :func:`bootstrap_parameters`: one row per quantity.
PARAMETER_COLUMNS = ["parameter", "group", "term", "kind", "value"]
#: Columns of :func:`parametric_bootstrap`: one row per replicate and quantity.
BOOTSTRAP_COLUMNS = [
    "replicate",
    "parameter",
    "kind",
    "value",
    "failed",
    "singular",
    "converged",
    "error",
]
#: Columns of :func:`bootstrap_intervals`: one row per quantity.
INTERVAL_COLUMNS = [
    "parameter",
    "group",
    "term",
    "kind",
    "estimate",
    "ci_low",
    "ci_high",
    "level",
    "method",
    "replicates",
    "nsim",
    "failed",
    "singular",
    "not_converged",
    "boot_sd",
]


# --- the quantities -----------------------------------------------------------------------


def _check_result(result) -> MixedResult:
    if not isinstance(result, MixedResult):
        raise ModelSpecError(
            "the parametric bootstrap needs a fitted mixed model (MixedResult); got "
            f"{type(result).__name__} (population-averaged fits have no model to simulate)"
        )
    if result.method == "truth":
        raise ModelSpecError("the parametric bootstrap needs a fitted model, not a stated truth")
    return result


def _targets(result: MixedResult, contrasts):
    if contrasts is None or (not isinstance(contrasts, str | dict) and not list(contrasts)):
        return []
    from ..power.simulate import parse_test

    return parse_test(contrasts, result.design)


def bootstrap_parameters(result, contrasts=None, targets=None) -> pd.DataFrame:
    """The quantities the bootstrap replicates, at one fit.

    Parameters
    ----------
    result : MixedResult
    contrasts : str, mapping or list, optional
        Contrasts as the power module's ``test`` names them: ``{"pairwise": "<factor>"}``,
        ``{"slopes": ["<predictor>"], "factor": "<factor>"}`` (optional ``"by"``), or a list
        of them (coefficient names are already included as fixed effects).
    targets : list, optional
        The parsed ``contrasts`` (:func:`resistance_outcomes.power.simulate.parse_test`),
        to parse them once for many fits.

    Returns
    -------
    pandas.DataFrame
        Columns parameter, group and term (as ``intervals.csv`` names the quantity; see
        the module's notes), kind (``fixed``, ``sd``, ``cor``, ``sigma``, ``nb_size``,
        ``icc``, ``share`` (a grouping factor's share of variance, ``VPC (<group>)``, when
        there are several factors), ``r2``, ``pairwise``, ``simple_slope``) and value.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> bootstrap_parameters(fit).round(3)  # doctest: +NORMALIZE_WHITESPACE
              parameter     group              term   kind  value
    0       (Intercept)                 (Intercept)  fixed  1.029
    1                 x                           x  fixed  0.879
    2  sd_(Intercept)|g         g    sd (Intercept)     sd  0.651
    3             sigma  Residual                sd  sigma  0.886
    4               icc              ICC (adjusted)    icc  0.351
    5       r2_marginal               R2 (marginal)     r2  0.338
    6    r2_conditional            R2 (conditional)     r2  0.570
    """
    from .inference import nakagawa_r2
    from .share_profile import share_specs, variance_share

    rows = []

    def add(name, group, term, kind, value):
        rows.append((name, group, term, kind, float(value) if value is not None else np.nan))

    for term, beta in zip(result.design.fixed_names, result.beta, strict=True):
        add(term, "", term, "fixed", beta)
    covariances = result.design.covariance_matrices(result.theta, result.sigma)
    for block, cov in zip(result.design.blocks, covariances, strict=True):
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        names, group = block.coef_names, block.group
        for i, coef in enumerate(names):
            add(f"sd_{coef}|{group}", group, f"sd {coef}", "sd", sd[i])
        for j in range(block.n_coef):
            for i in range(j + 1, block.n_coef):
                corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                name = f"cor_{names[i]}.{names[j]}|{group}"
                add(name, group, f"cor {names[j]}, {names[i]}", "cor", corr)
    if result.family == "gaussian":
        add("sigma", "Residual", "sd", "sigma", result.sigma)
    if result.nb_theta is not None:
        add("nb_size", "NB2", "size", "nb_size", result.nb_theta)
    if result.design.blocks:
        r2 = result.extra.get("_r2")
        if r2 is None:
            r2 = result.extra["_r2"] = nakagawa_r2(result)
        add("icc", "", "ICC (adjusted)", "icc", r2["icc_adjusted"])
        for spec in share_specs(result.design, result.family)[1:]:  # several factors
            add(spec.name, spec.group, spec.term, "share", variance_share(result, spec))
        add("r2_marginal", "", "R2 (marginal)", "r2", r2["r2_marginal"])
        add("r2_conditional", "", "R2 (conditional)", "r2", r2["r2_conditional"])
    table = pd.DataFrame(rows, columns=PARAMETER_COLUMNS)
    if targets is None:
        targets = _targets(result, contrasts)
    if targets:
        from ..power.simulate import estimate_targets

        tested = estimate_targets(result, targets)
        tested = tested[tested["kind"] != "coefficient"]
        extra = pd.DataFrame(
            {
                "parameter": tested["term"].to_numpy(),
                "group": "",
                "term": tested["term"].to_numpy(),
                "kind": tested["kind"].to_numpy(),
                "value": tested["estimate"].to_numpy(dtype=float),
            }
        )
        table = pd.concat([table, extra], ignore_index=True)
    return table


def contrast_test(spec) -> dict | None:
    """The ``contrasts`` argument for a model's configured contrasts (an
    :class:`~resistance_outcomes.analysis.ContrastSpec`: factor, pairwise, slopes, by), or
    None when it asks for none.

    Examples
    --------
    >>> from resistance_outcomes.analysis import ContrastSpec
    >>> contrast_test(ContrastSpec(slopes=("repair_rate_between",)))
    {'factor': 'framework', 'by': None, 'pairwise': True, 'slopes': ['repair_rate_between']}
    """
    if spec is None or not (spec.pairwise or spec.slopes):
        return None
    out = {"factor": spec.factor, "by": spec.by}
    if spec.pairwise:
        out["pairwise"] = True
    if spec.slopes:
        out["slopes"] = list(spec.slopes)
    return out


# --- the replicates -----------------------------------------------------------------------


def _fit_settings(result: MixedResult) -> tuple[bool, int]:
    """(reml, nagq) of the fit, from its method."""
    method = result.method
    nagq = int(method[4:-1]) if method.startswith("AGQ(") else 1
    return method == "REML", nagq


def _replicates(result: MixedResult, targets, seed: int, start: int, stop: int, control):
    from ..power.simulate import replicate_rng

    reml, nagq = _fit_settings(result)
    design = warm_design(result.design, result.theta)
    if result.family == "gaussian":  # the quantities need no degrees of freedom
        control = {"satterthwaite": False, **(control or {})}
    reference = bootstrap_parameters(result, targets=targets)
    tables = []
    for i in range(start, stop):
        sims = result.simulate(nsim=1, seed=replicate_rng(seed, i))["sim_1"].to_numpy()
        y = model_response(result.family, sims, result.design)
        try:
            fit = refit(design, result.family, y, reml, control, nagq)
            table = bootstrap_parameters(fit, targets=targets)
        except Exception as err:  # a refit that raises counts as failed, with its message
            table = reference[["parameter", "kind"]].assign(value=np.nan)
            flags = {
                "failed": True,
                "singular": False,
                "converged": False,
                "error": f"{type(err).__name__}: {err}",
            }
        else:
            flags = {
                "failed": False,
                "singular": bool(fit.singular),
                "converged": bool(fit.converged),
                "error": "",
            }
        tables.append(table.assign(replicate=i, **flags))
    return pd.concat(tables, ignore_index=True)[BOOTSTRAP_COLUMNS]


_WORKER_FIT: dict = {}


def _set_worker_fit(result, targets, control) -> None:
    _WORKER_FIT.update(result=result, targets=targets, control=control)


def _worker_replicates(seed: int, start: int, stop: int) -> pd.DataFrame:
    fit = _WORKER_FIT
    return _replicates(fit["result"], fit["targets"], seed, start, stop, fit["control"])


def _chunks(start: int, nsim: int, n_jobs: int) -> list[tuple[int, int]]:
    size = max(math.ceil(nsim / (n_jobs * 4)), 1)
    stop = start + nsim
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def _whole(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ModelSpecError(f"{what} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def parametric_bootstrap(
    result,
    nsim: int,
    seed: int,
    n_jobs: int = 1,
    start: int = 0,
    contrasts=None,
    control: dict | None = None,
) -> pd.DataFrame:
    """Replicate estimates of a parametric bootstrap of a fitted mixed model.

    Replicates ``start .. start + nsim - 1``: responses simulated from the fit with new
    random effects, the model refitted on the same design (warm-started at the
    estimates), the quantities of :func:`bootstrap_parameters` recorded. The rows do not
    depend on ``n_jobs`` or on how the replicates are split into calls (``start``).

    Parameters
    ----------
    result : MixedResult
    nsim : int
        Number of replicates.
    seed : int
        Seed of the bootstrap; replicate ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``.
    n_jobs : int
        Worker processes (``concurrent.futures``); 1 computes in this process.
    start : int
        Index of the first replicate (0-based).
    contrasts : str, mapping or list, optional
        Contrasts to bootstrap as well (see :func:`bootstrap_parameters`).
    control : dict, optional
        Optimizer settings of the refits (as :func:`~resistance_outcomes.models.fit_mixed`);
        linear refits skip the Satterthwaite degrees of freedom (``{"satterthwaite":
        False}``, half the time of a refit) unless ``control`` sets them.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BOOTSTRAP_COLUMNS`: replicate, parameter, kind, value, failed (the
        refit raised; value empty, message in ``error``), singular and converged (the
        refit's flags).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> rows = parametric_bootstrap(fit, nsim=4, seed=1)
    >>> rows.shape, int(rows["failed"].sum())
    ((28, 8), 0)
    >>> later = parametric_bootstrap(fit, nsim=2, seed=1, start=2)
    >>> bool(np.array_equal(later["value"], rows["value"].iloc[14:]))
    True
    """
    result = _check_result(result)
    nsim = _whole(nsim, "nsim (the number of bootstrap replicates)", 1)
    start = _whole(start, "start (the first replicate index)", 0)
    n_jobs = _whole(n_jobs, "n_jobs", 1)
    seed = _whole(seed, "seed", 0)
    targets = _targets(result, contrasts)  # bad contrasts raise here, before any refit
    if n_jobs == 1:
        return _replicates(result, targets, seed, start, start + nsim, control)
    chunks = _chunks(start, nsim, n_jobs)
    if "fork" not in multiprocessing.get_all_start_methods():  # the design cannot be pickled
        parts = [_replicates(result, targets, seed, a, b, control) for a, b in chunks]
        return pd.concat(parts, ignore_index=True)
    # forked workers inherit the fit (its design holds formula objects that cannot be
    # pickled); only replicate ranges go to them and rows come back
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=n_jobs,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_set_worker_fit,
        initargs=(result, targets, control),
    ) as pool:
        futures = [pool.submit(_worker_replicates, seed, a, b) for a, b in chunks]
        parts = [f.result() for f in futures]
    return pd.concat(parts, ignore_index=True)


# --- the intervals ------------------------------------------------------------------------


def bootstrap_intervals(
    rows: pd.DataFrame, estimates: pd.DataFrame, level: float = 0.95
) -> pd.DataFrame:
    """Percentile intervals of bootstrap replicates, one row per quantity.

    The limits are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
    (``numpy.quantile``, linear interpolation) of the values of the replicates that did
    not fail; failed refits are counted (``failed``), never silently dropped, and
    ``replicates`` says how many values each interval is over. Singular refits are kept
    (as lme4's ``bootMer`` keeps them) and counted.

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows of :func:`parametric_bootstrap` (any number of calls or chunks concatenated;
        each replicate once).
    estimates : pandas.DataFrame
        The quantities at the original fit: :func:`bootstrap_parameters` (columns
        parameter, group, term, kind, value; or estimate for value). Without group and
        term the rows get empty ones.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`INTERVAL_COLUMNS`: parameter, group and term (the quantity as
        ``intervals.csv`` names it), kind, estimate, ci_low, ci_high, level, method
        (``"boot"``), replicates (values used), nsim (replicates run), failed, singular and
        not_converged (counts of replicates), boot_sd (SD of the values used, ddof 1). For
        fixed effects ``parameter`` and ``term`` are the coefficient table's ``term``.

    Examples
    --------
    >>> rows = pd.DataFrame({"replicate": [0, 1, 2, 3], "parameter": "x", "kind": "fixed",
    ...     "value": [0.9, 1.2, 1.1, np.nan], "failed": [False, False, False, True],
    ...     "singular": [False, True, False, False], "converged": [True, True, True, False],
    ...     "error": ""})
    >>> est = pd.DataFrame({"parameter": ["x"], "group": [""], "term": ["x"],
    ...     "kind": ["fixed"], "value": [1.0]})
    >>> out = bootstrap_intervals(rows, est, level=0.5)
    >>> out[["ci_low", "ci_high"]].values.tolist()
    [[1.0, 1.15]]
    >>> out[["replicates", "nsim", "failed", "singular"]].values.tolist()
    [[3, 4, 1, 1]]
    """
    if not 0 < level < 1:
        raise ModelSpecError(f"level must lie between 0 and 1, got {level!r}")
    missing = [c for c in ("replicate", "parameter", "value", "failed") if c not in rows.columns]
    if missing:
        raise ModelSpecError(f"bootstrap rows lack column(s) {missing}")
    duplicated = rows.duplicated(["parameter", "replicate"])
    if duplicated.any():
        first = rows.loc[duplicated].iloc[0]
        raise ModelSpecError(
            f"replicate {first['replicate']} of {first['parameter']!r} appears more than once; "
            "chunks must not overlap"
        )
    estimates = estimates.rename(columns={"value": "estimate"})
    ordered = rows.sort_values("replicate", kind="stable")  # results independent of chunks
    grouped = dict(tuple(ordered.groupby("parameter", sort=False)))
    probs = [(1 - level) / 2, (1 + level) / 2]
    out = []
    for _, row in estimates.iterrows():
        name = row["parameter"]
        reps = grouped.get(name, ordered.iloc[0:0])
        ok = ~reps["failed"].astype(bool).to_numpy()
        values = reps["value"].to_numpy(dtype=float)
        used = values[ok & np.isfinite(values)]
        singular = _flag(reps, "singular", False) & ok
        converged = _flag(reps, "converged", True) & ok
        low, high = np.quantile(used, probs) if used.size else (np.nan, np.nan)
        out.append(
            {
                "parameter": name,
                "group": _text(row.get("group")),
                "term": _text(row.get("term")),
                "kind": _text(row.get("kind")),
                "estimate": float(row["estimate"]),
                "ci_low": float(low),
                "ci_high": float(high),
                "level": float(level),
                "method": "boot",
                "replicates": int(used.size),
                "nsim": int(len(reps)),
                "failed": int((~ok).sum()),
                "singular": int(singular.sum()),
                "not_converged": int((ok & ~converged).sum()),
                "boot_sd": float(used.std(ddof=1)) if used.size > 1 else np.nan,
            }
        )
    return pd.DataFrame(out, columns=INTERVAL_COLUMNS)


def _text(value) -> str:
    """A name cell as text; missing (absent, NaN: an empty CSV cell read back) is empty."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _flag(rows: pd.DataFrame, column: str, default: bool) -> np.ndarray:
    if column not in rows:
        return np.full(len(rows), default)
    return rows[column].astype(bool).to_numpy()


def bootstrap_result(
    result,
    nsim: int,
    seed: int,
    n_jobs: int = 1,
    level: float = 0.95,
    contrasts=None,
) -> pd.DataFrame:
    """:func:`parametric_bootstrap` and :func:`bootstrap_intervals` in one call (what
    :meth:`MixedResult.bootstrap` returns)."""
    result = _check_result(result)
    rows = parametric_bootstrap(result, nsim, seed, n_jobs=n_jobs, contrasts=contrasts)
    return bootstrap_intervals(rows, bootstrap_parameters(result, contrasts), level)
