"""Population-averaged fits by generalised estimating equations (sensitivity analysis).

A mixed model's fixed effects are conditional on the random effects; generalised
estimating equations (Liang & Zeger, 1986) estimate population-averaged effects with
cluster-robust (sandwich) standard errors. The fit is statsmodels' ``GEE``; the result
has the same tidy columns as ``MixedResult.coefficients``, so both can be reported side
by side.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.genmod import cov_struct as sm_cov_struct
from statsmodels.genmod import families as sm_families
from statsmodels.genmod.generalized_estimating_equations import GEE
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from .design import build_design
from .families import get_family
from .formula import ModelSpecError
from .inference import wald_table

__all__ = ["fit_gee", "gee"]

COV_STRUCTS = {
    "exchangeable": sm_cov_struct.Exchangeable,
    "independence": sm_cov_struct.Independence,
}


def gee(
    formula: str,
    data: pd.DataFrame,
    family: str = "binomial",
    groups: str | None = None,
    cov_struct: str = "exchangeable",
) -> pd.DataFrame:
    """Fit a population-averaged model by GEE and return a tidy coefficient table.

    Parameters
    ----------
    formula : str
        lme4-style formula; its random part, if any, only names the clusters, e.g.
        ``"dropout ~ framework + (1 | therapist)"``. Offsets and ``cbind`` work as in
        :func:`resistance_outcomes.models.fit_mixed`.
    data : pandas.DataFrame
    family : str
        ``"binomial"`` (logit), ``"poisson"`` (log), ``"negative_binomial"`` (log; NB2
        variance with its size estimated by moments from a Poisson fit) or ``"gaussian"``.
    groups : str, optional
        Column (or ``a:b`` interaction) defining the clusters. When omitted, the
        outermost grouping factor of the formula's random part: the one every other
        factor is nested in (``therapist`` for ``(1 | therapist/client)``).
    cov_struct : {"exchangeable", "independence"}
        Working correlation within clusters.

    Returns
    -------
    pandas.DataFrame
        term, estimate, std_error (robust sandwich), statistic (z), df (empty), p_value,
        ci_low, ci_high, exp_estimate, exp_ci_low, exp_ci_high; ``attrs`` hold the
        cluster factor, the number of clusters and the working correlation parameter.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(2)
    >>> therapist = np.repeat(np.arange(30), 10)
    >>> x = rng.normal(size=300)
    >>> eta = -1 + 0.5 * x + rng.normal(0, 0.6, 30)[therapist]
    >>> df = pd.DataFrame({"dropout": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x,
    ...                    "therapist": therapist})
    >>> table = gee("dropout ~ x + (1 | therapist)", df)
    >>> table["term"].tolist(), table.attrs["n_clusters"]
    (['(Intercept)', 'x'], 30)
    """
    if cov_struct not in COV_STRUCTS:
        raise ModelSpecError(f"cov_struct must be one of {sorted(COV_STRUCTS)}, not {cov_struct!r}")
    cluster_formula = formula
    if groups is not None:
        cluster_formula = _with_cluster_term(formula, groups)
    design = build_design(cluster_formula, data)
    fit = fit_gee(design, family, groups=groups, cov_struct=cov_struct)
    for message in fit.messages:
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    table = wald_table(
        design.fixed_names,
        np.asarray(fit.result.params),
        np.asarray(fit.result.bse),
        exponentiate=get_family(family).exponentiate,
    )
    table.attrs.update(
        {
            "cluster": fit.cluster,
            "n_clusters": fit.n_clusters,
            "nobs": int(design.n),
            "n_dropped": int(design.n_dropped),
            "cov_struct": cov_struct,
            "working_correlation": fit.working_correlation,
        }
    )
    return table


@dataclass
class GeeFit:
    """A statsmodels GEE fit with the clusters it used and its convergence messages."""

    result: object
    cluster: str
    n_clusters: int
    working_correlation: float
    messages: list[str]


def fit_gee(
    design, family: str, groups: str | None = None, cov_struct: str = "exchangeable"
) -> GeeFit:
    """Fit statsmodels' GEE with robust (sandwich) SEs to a built design.

    The clusters are the outermost grouping factor of the design's random part (or
    ``groups``); convergence warnings are collected in ``messages``, not printed.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import build_design
    >>> rng = np.random.default_rng(2)
    >>> df = pd.DataFrame({"y": rng.binomial(1, 0.3, 200), "g": np.repeat(np.arange(20), 10)})
    >>> fit = fit_gee(build_design("y ~ 1 + (1 | g)", df), "binomial")
    >>> fit.cluster, fit.n_clusters
    ('g', 20)
    """
    if cov_struct not in COV_STRUCTS:
        raise ModelSpecError(f"cov_struct must be one of {sorted(COV_STRUCTS)}, not {cov_struct!r}")
    clusters, cluster_name = _cluster_codes(design, groups)
    model = GEE(
        design.y,
        design.X,
        groups=clusters,
        family=_statsmodels_family(family, design),
        cov_struct=COV_STRUCTS[cov_struct](),
        offset=design.offset,
        weights=design.prior_weights,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = model.fit(cov_type="robust")
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    return GeeFit(
        result=result,
        cluster=cluster_name,
        n_clusters=int(len(np.unique(clusters))),
        working_correlation=_working_correlation(result.cov_struct.dep_params),
        messages=messages,
    )


def _working_correlation(dep_params) -> float:
    """The exchangeable correlation; 0 for the independence structure."""
    values = np.ravel(np.asarray(dep_params if dep_params is not None else [], dtype=float))
    return float(values[0]) if values.size else 0.0


def _with_cluster_term(formula: str, groups: str) -> str:
    """The formula with its random part replaced by ``(1 | groups)``."""
    from .formula import parse_formula

    parsed = parse_formula(formula)
    rhs = [parsed.fixed] + [f"offset({o})" for o in parsed.offsets] + [f"(1 | {groups})"]
    return f"{parsed.response} ~ {' + '.join(rhs)}"


def _cluster_codes(design, groups) -> tuple[np.ndarray, str]:
    """Cluster labels: the outermost grouping factor of the random part."""
    if not design.blocks:
        raise ModelSpecError(
            f"formula {design.formula.formula!r} names no clusters: add a random term such "
            "as (1 | therapist) or pass groups='therapist'"
        )
    codes = [_block_codes(design, block) for block in design.blocks]
    outer = int(np.argmin([block.n_levels for block in design.blocks]))
    for i, code in enumerate(codes):
        parent = np.zeros(design.blocks[i].n_levels, dtype=np.intp)
        parent[code] = codes[outer]
        if not np.array_equal(parent[code], codes[outer]):
            raise ModelSpecError(
                f"the grouping factors of {design.formula.formula!r} are crossed, so the "
                f"clusters are ambiguous; pass groups= naming one of "
                f"{[b.group for b in design.blocks]}"
            )
    return codes[outer], design.blocks[outer].group


def _block_codes(design, block) -> np.ndarray:
    """Level index of each row in a random-effect block (from its rows of ``Zt``)."""
    part = design.Zt[block.z_slice, :].tocsc()
    nonempty = np.diff(part.indptr) > 0
    codes = np.zeros(design.n, dtype=np.intp)
    codes[nonempty] = part.indices[part.indptr[:-1][nonempty]] // block.n_coef
    return codes


def _statsmodels_family(family: str, design):
    """statsmodels family for the GEE fit, after validating the response."""
    fam = get_family(family)
    if not fam.glmm:
        return sm_families.Gaussian()
    fam.validate(design.y, design.prior_weights, design.formula.response, design.frame.index)
    if fam.name in ("binomial", "poisson"):
        return fam.statsmodels_family(design.prior_weights, False)[0]
    from .glmm import _nb_theta_start

    theta = _nb_theta_start(design.X, design.y, design.prior_weights, design.offset, fam).theta
    return sm_families.NegativeBinomial(alpha=1.0 / theta)
