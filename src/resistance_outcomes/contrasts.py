"""Theory-specific contrasts of a fitted model: framework differences and simple slopes.

- :func:`pairwise_contrasts`: the difference between every pair of levels of a factor
  (by default ``framework``), optionally within each level of a second factor;
- :func:`simple_slopes`: the slope of a numeric predictor within each level of the factor
  (e.g. the repair slope in each framework, when the model has framework x repair);
- :func:`adjust_pvalues`: Holm (default) or Benjamini-Hochberg adjustment across a family
  of contrasts;
- :func:`framework_contrasts`: the contrasts configured for a model, as one tidy table.

Every contrast is a Wald test of a linear combination ``L beta`` with standard error
``sqrt(L V L')`` (:func:`resistance_outcomes.models.linear_contrasts`: Satterthwaite
degrees of freedom for linear mixed models, z tests otherwise). The rows of ``L`` are
differences of rows of the fixed-effects design evaluated on a reference grid: every
numeric predictor other than the one in question at 0 (the derived predictors are centred,
so 0 is the average session, the average client), every other factor at its first level.
For log and logit links the estimates are also given exponentiated, as rate or odds
ratios with their 95% confidence intervals (not adjusted for multiplicity).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import patsy

from .models import ModelSpecError, get_family, linear_contrasts

__all__ = [
    "ADJUSTMENTS",
    "CONTRAST_COLUMNS",
    "adjust_pvalues",
    "framework_contrasts",
    "pairwise_contrasts",
    "reference_grid",
    "simple_slopes",
]

#: Multiplicity adjustments: Holm's step-down, Benjamini-Hochberg's step-up, or none.
ADJUSTMENTS = ("holm", "bh", "none")
CONTRAST_COLUMNS = [
    "kind",
    "variable",
    "level",
    "reference",
    "by",
    "estimate",
    "std_error",
    "statistic",
    "df",
    "p_value",
    "p_adjusted",
    "adjustment",
    "ci_low",
    "ci_high",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "ratio_kind",
]


def adjust_pvalues(p_values: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjust a family of p values for multiple testing.

    Holm (1979): the i-th smallest of m p values becomes ``max_{j<=i} (m - j + 1) p_(j)``.
    Benjamini & Hochberg (1995): the i-th smallest becomes ``min_{j>=i} m p_(j) / j``.
    Both are capped at 1. Missing p values stay missing and do not count in ``m``.

    Parameters
    ----------
    p_values : sequence of float
    method : {"holm", "bh", "none"}

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.02, 0.04]).round(4).tolist()
    [0.03, 0.04, 0.04]
    >>> adjust_pvalues([0.01, 0.02, 0.04], "bh").round(4).tolist()
    [0.03, 0.03, 0.04]
    """
    if method not in ADJUSTMENTS:
        raise ModelSpecError(f"adjustment {method!r} is not one of {', '.join(ADJUSTMENTS)}")
    p = np.asarray(p_values, dtype=float)
    out = p.copy()
    finite = np.flatnonzero(np.isfinite(p))
    if method == "none" or finite.size == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adjusted = np.minimum.accumulate((m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _factor_levels(design, factor: str) -> list:
    frame = design.frame
    if factor not in frame.columns or not isinstance(frame[factor].dtype, pd.CategoricalDtype):
        factors = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
        raise ModelSpecError(
            f"contrast factor '{factor}' is not a factor the model uses; its factors are "
            f"{', '.join(map(str, factors)) or 'none'}"
        )
    return list(frame[factor].cat.categories)


def reference_grid(design, factor: str = "framework", by: str | None = None) -> pd.DataFrame:
    """One row per level of ``factor`` (within each level of ``by``), others at reference.

    Numeric columns are 0, other factors at their first level. With ``by``, the rows run
    through the levels of ``factor`` within the first level of ``by``, then the second...

    Parameters
    ----------
    design : MixedDesign
        ``fit.design`` of a fitted model.
    factor : str
    by : str, optional

    Returns
    -------
    pandas.DataFrame
        With every column of ``design.frame``, factors keeping their levels.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [0.0, 1, 2, 0, 1, 2],
    ...                    "f": pd.Categorical(list("aabbcc")), "g": list("uvuvuv")})
    >>> reference_grid(build_design("y ~ f * x + (1 | g)", df), "f")[["f", "x"]]
       f    x
    0  a  0.0
    1  b  0.0
    2  c  0.0
    """
    frame = design.frame
    varying = ([by] if by else []) + [factor]  # the factor varies fastest
    levels = {name: _factor_levels(design, name) for name in varying}
    combos = list(itertools.product(*levels.values()))
    grid = {}
    for column in frame.columns:
        values = frame[column]
        if column in levels:
            position = varying.index(column)
            grid[column] = pd.Categorical(
                [c[position] for c in combos], categories=values.cat.categories
            )
        elif isinstance(values.dtype, pd.CategoricalDtype):
            grid[column] = pd.Categorical(
                [values.cat.categories[0]] * len(combos), categories=values.cat.categories
            )
        else:
            grid[column] = np.zeros(len(combos))
    return pd.DataFrame(grid)


def _design_rows(design, grid: pd.DataFrame) -> np.ndarray:
    """Rows of the fixed-effects design matrix for the grid's rows, kept on the design
    object (``_contrast_rows``): refits that share one design (leave-one-out refits give
    their estimates the full fit's design) build each grid once."""
    cache = design.__dict__.setdefault("_contrast_rows", {})
    key = grid.to_json(orient="split")
    if key not in cache:
        (matrix,) = patsy.build_design_matrices([design.x_info], grid)
        cache[key] = np.asarray(matrix, dtype=float)
        cache[key].flags.writeable = False
    return cache[key]


def _wald(fit, matrix: np.ndarray, labels: list[str]) -> pd.DataFrame:
    contrasts = pd.DataFrame(matrix, columns=fit.design.fixed_names, index=labels)
    return linear_contrasts(fit, contrasts)


def _distinct_rows(matrix: np.ndarray) -> np.ndarray:
    """For each row of a contrast matrix, the index of the first row equal to it."""
    first = np.arange(len(matrix))
    for i in range(len(matrix)):
        for j in range(i):
            if np.allclose(matrix[i], matrix[j], rtol=0, atol=1e-12):
                first[i] = first[j]
                break
    return first


def _finish(
    table: pd.DataFrame, info: pd.DataFrame, fit, adjust: str, matrix: np.ndarray | None = None
) -> pd.DataFrame:
    """Contrast rows with their adjusted p values. Rows of ``matrix`` that are the same
    hypothesis (a slope that does not depend on the framework is the same in every
    framework) count once in the family: the adjustment is over the distinct tests."""
    out = pd.concat([info.reset_index(drop=True), table.drop(columns="term")], axis=1)
    first = _distinct_rows(matrix) if matrix is not None else np.arange(len(out))
    distinct = np.unique(first)
    p_distinct = adjust_pvalues(out["p_value"].to_numpy()[distinct], adjust)
    adjusted = dict(zip(distinct, p_distinct, strict=True))
    out["p_adjusted"] = [adjusted[i] for i in first]
    out["adjustment"] = adjust
    out = out.rename(
        columns={
            "exp_estimate": "ratio",
            "exp_ci_low": "ratio_ci_low",
            "exp_ci_high": "ratio_ci_high",
        }
    )
    out["ratio_kind"] = get_family(fit.family).ratio_name or ""
    return out[CONTRAST_COLUMNS]


def pairwise_contrasts(
    fit, factor: str = "framework", by: str | None = None, adjust: str = "holm"
) -> pd.DataFrame:
    """Differences between every pair of levels of ``factor``, adjusted as one family.

    For levels in their order ``l1, l2, l3`` the contrasts are ``l1 - l2``, ``l1 - l3``,
    ``l2 - l3`` (as emmeans' ``pairwise``): the difference of the linear predictor, with
    every numeric predictor at 0 and other factors at their first level, or within each
    level of ``by``. For log and logit links ``ratio`` is the rate or odds ratio
    ``level / reference``.

    Parameters
    ----------
    fit : MixedResult or PopulationAveragedFit
    factor : str
    by : str, optional
    adjust : {"holm", "bh", "none"}

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONTRAST_COLUMNS`; ``kind`` is ``pairwise``, ``variable`` the
        factor, ``level`` minus ``reference`` the contrast, ``by`` the level of ``by``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(3)
    >>> g = np.repeat(np.arange(12), 5)
    >>> f = pd.Categorical(np.repeat(list("abc"), 20))
    >>> y = np.select([f == "a", f == "b"], [0.0, 1.0], 2.0) + rng.normal(size=12)[g]
    >>> df = pd.DataFrame({"y": y + rng.normal(size=60), "f": f, "g": g})
    >>> table = pairwise_contrasts(fit_mixed("y ~ f + (1 | g)", df), "f")
    >>> table[["level", "reference"]].values.tolist()
    [['a', 'b'], ['a', 'c'], ['b', 'c']]
    """
    grid = reference_grid(fit.design, factor, by)
    rows = _design_rows(fit.design, grid)
    levels = _factor_levels(fit.design, factor)
    by_levels = _factor_levels(fit.design, by) if by else [""]
    matrix, info = [], []
    for b, by_level in enumerate(by_levels):
        block = rows[b * len(levels) : (b + 1) * len(levels)] if by else rows
        for i, j in itertools.combinations(range(len(levels)), 2):
            matrix.append(block[i] - block[j])
            info.append(("pairwise", factor, levels[i], levels[j], by_level))
    labels = [f"{lv} - {ref}{f' | {b}' if b else ''}" for _, _, lv, ref, b in info]
    table = _wald(fit, np.array(matrix), labels)
    info = pd.DataFrame(info, columns=["kind", "variable", "level", "reference", "by"])
    return _finish(table, info, fit, adjust)


def simple_slopes(
    fit, variable: str, factor: str = "framework", by: str | None = None, adjust: str = "holm"
) -> pd.DataFrame:
    """The slope of ``variable`` within each level of ``factor``, adjusted as one family.

    The slope is the change of the linear predictor per unit of ``variable`` with the
    other numeric predictors at 0 (for ``framework * repair_rate_between`` in framework f:
    ``b_repair + b_f:repair``). For log and logit links ``ratio`` is the rate or odds
    ratio per unit.

    Parameters
    ----------
    fit : MixedResult or PopulationAveragedFit
    variable : str
        A numeric predictor that enters the fixed part linearly.
    factor : str
    by : str, optional
    adjust : {"holm", "bh", "none"}

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONTRAST_COLUMNS`; ``kind`` is ``simple_slope``, ``variable`` the
        predictor, ``level`` the factor level, ``reference`` empty.

    Raises
    ------
    ModelSpecError
        When ``variable`` is not a numeric predictor of the fixed part or does not enter
        it linearly (``log(x)``, ``I(x**2)``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(4)
    >>> g = np.repeat(np.arange(12), 6)
    >>> f = pd.Categorical(np.repeat(["a", "b"], 36))
    >>> x = rng.normal(size=72)
    >>> y = np.where(f == "a", 1.0, -1.0) * x + rng.normal(size=12)[g] + rng.normal(size=72)
    >>> df = pd.DataFrame({"y": y, "x": x, "f": f, "g": g})
    >>> slopes = simple_slopes(fit_mixed("y ~ f * x + (1 | g)", df), "x", "f")
    >>> (slopes["estimate"] > 0).tolist()
    [True, False]
    """
    frame = fit.design.frame
    if variable not in frame.columns or isinstance(frame[variable].dtype, pd.CategoricalDtype):
        raise ModelSpecError(
            f"simple slopes: '{variable}' is not a numeric predictor of the model; its "
            f"columns are {', '.join(map(str, frame.columns))}"
        )
    grid = reference_grid(fit.design, factor, by)
    at = [_design_rows(fit.design, grid.assign(**{variable: float(v)})) for v in (0, 1, 2)]
    step = at[1] - at[0]
    if not np.allclose(at[2] - at[1], step) or not np.any(step):
        raise ModelSpecError(
            f"simple slopes: '{variable}' does not enter the fixed part linearly (or not at "
            "all); slopes need a term such as framework * variable"
        )
    levels = _factor_levels(fit.design, factor)
    by_levels = _factor_levels(fit.design, by) if by else [""]
    info = [("simple_slope", variable, lv, "", b) for b in by_levels for lv in levels]
    labels = [f"{variable} in {lv}{f' | {b}' if b else ''}" for *_, lv, _, b in info]
    table = _wald(fit, step, labels)
    info = pd.DataFrame(info, columns=["kind", "variable", "level", "reference", "by"])
    return _finish(table, info, fit, adjust, step)


def framework_contrasts(fit, spec, adjust: str = "holm") -> pd.DataFrame:
    """The contrasts configured for a model: pairwise differences and simple slopes.

    Each kind is its own family for the adjustment: all pairwise contrasts of the model
    (over every level of ``by``) form one family, the slopes of each variable another.

    Parameters
    ----------
    fit : MixedResult or PopulationAveragedFit
    spec : ContrastSpec
        ``factor``, ``pairwise``, ``slopes`` and ``by`` (see
        :class:`resistance_outcomes.analysis.ContrastSpec`).
    adjust : {"holm", "bh", "none"}

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONTRAST_COLUMNS`.

    Examples
    --------
    >>> from resistance_outcomes.analysis import ContrastSpec
    >>> framework_contrasts(fit, ContrastSpec(slopes=("repair_rate_between",)))  # doctest: +SKIP
    """
    tables = []
    if spec.pairwise:
        tables.append(pairwise_contrasts(fit, spec.factor, spec.by, adjust))
    for variable in spec.slopes:
        tables.append(simple_slopes(fit, variable, spec.factor, spec.by, adjust))
    if not tables:
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    return pd.concat(tables, ignore_index=True)
