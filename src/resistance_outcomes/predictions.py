"""What a fitted model hands to the figures: predictions, residuals and random effects.

The model step writes, beside the coefficients, three tables into the model's folder
(``results/models/<name>/``), so that no figure step has to refit the model:

``predictions.csv`` (:func:`population_predictions`)
    Population-level predictions (random effects at zero) on the response scale with 95%
    confidence intervals from the fixed effects, on a grid: per level of the contrast
    factor (``framework``), over the first numeric predictor that interacts with it (or
    else the first numeric predictor), on that predictor's raw scale (``session`` for
    ``session_c``, ``<x>`` for ``<x>_between``). Columns: the factor, the predictor, then
    ``estimate``, ``ci_low``, ``ci_high``.
``residuals.csv`` (:func:`residual_table`)
    One row per fitted observation: ``row`` (its row in ``model_frame.csv``, 1 = first),
    ``fitted`` (the conditional mean), ``residual`` (Pearson) and the factor's level. No
    identifiers.
``random_effects.csv`` (:func:`random_effects_table`)
    The conditional modes of the random effects: ``group`` (grouping factor), ``term``
    (coefficient, ``(Intercept)`` or a slope), ``level`` (the level's pseudonymous code, as
    in ``model_frame.csv``) and ``mode``. A population-averaged (GEE) fit has no random
    effects: the file has its header only.

:func:`forest_effects` turns the simple slopes of several models' ``contrasts.csv`` into the
rows of a forest plot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.stats as st

from .models.families import get_family
from .models.formula import parse_formula

__all__ = [
    "NEW_LEVEL",
    "PREDICTION_COLUMNS",
    "RANDOM_EFFECT_COLUMNS",
    "RESIDUAL_COLUMNS",
    "forest_effects",
    "population_predictions",
    "prediction_axis",
    "random_effects_table",
    "read_model_table",
    "residual_table",
]

#: Grouping columns given to prediction grids: an unseen level, so random effects are zero.
NEW_LEVEL = "(new)"
#: Columns of predictions.csv after the factor and the predictor.
PREDICTION_COLUMNS = ["estimate", "ci_low", "ci_high"]
#: Columns of residuals.csv (the factor's column follows when the model has the factor).
RESIDUAL_COLUMNS = ["row", "fitted", "residual"]
#: Columns of random_effects.csv.
RANDOM_EFFECT_COLUMNS = ["group", "term", "level", "mode"]
_POINTS = 51  # grid points over a continuous predictor
_MOST_WHOLE = 200  # whole-number predictors with up to this many values get every value


# --------------------------------------------------------------------------- predictions


def _term_codes(design) -> list[list[str]]:
    """The variables of each fixed-effects term, in formula order (patsy factor codes)."""
    return [[factor.code for factor in term.factors] for term in design.x_info.terms]


def _factor(spec: Mapping) -> str:
    contrasts = spec.get("contrasts") or {}
    return contrasts.get("factor") or "framework"


def prediction_axis(spec: Mapping, design, frame: pd.DataFrame) -> dict:
    """Which factor and which predictor a model's predictions run over.

    The factor is the model's contrast factor (``framework`` by default) when the model
    has it. The predictor is the first numeric predictor of the fixed part that shares a
    term with the factor, else the first numeric predictor, else none. Its raw scale
    comes from ``spec["derived_variables"]``: ``session_c`` is ``session - centre``,
    ``<x>_between`` is ``<x> - grand_mean``.

    Parameters
    ----------
    spec : mapping
        The model's ``spec.json`` (``formula``, ``factor_levels``, ``derived_variables``,
        ``contrasts``).
    design : MixedDesign
        The fitted design (``fit.design``).
    frame : pandas.DataFrame
        The model frame.

    Returns
    -------
    dict
        ``factor`` (or None), ``levels``, ``term`` (the predictor as in the formula, or
        None), ``name`` (its raw name), ``shift`` (raw = term + shift), ``crossed``
        (further factors crossed with the factor when there is no numeric predictor).

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models import build_design
    >>> frame = pd.DataFrame({"y": [1, 0, 1, 0], "x_between": [0.1, -0.1, 0.2, -0.2],
    ...                       "framework": ["a", "a", "b", "b"], "g": ["1", "2", "1", "2"]})
    >>> spec = {"factor_levels": {"framework": ["a", "b"]},
    ...         "derived_variables": {"x": {"grand_mean": 0.5}}}
    >>> axis = prediction_axis(spec, build_design("y ~ framework * x_between + (1 | g)",
    ...                                           frame), frame)
    >>> axis["factor"], axis["term"], axis["name"], axis["shift"]
    ('framework', 'x_between', 'x', 0.5)
    """
    levels = spec.get("factor_levels") or {}
    factor = _factor(spec)
    factor = factor if factor in levels and factor in frame else None
    response = parse_formula(spec["formula"]).response if "formula" in spec else None
    terms = _term_codes(design)
    numeric = [
        code
        for codes in terms
        for code in codes
        if code in frame
        and code != response
        and code not in levels
        and pd.api.types.is_numeric_dtype(frame[code])
        and not pd.api.types.is_bool_dtype(frame[code])
    ]
    numeric = list(dict.fromkeys(numeric))
    with_factor = [c for c in numeric if any(factor in t and c in t for t in terms)]
    term = (with_factor or numeric or [None])[0]
    crossed = []
    if term is None and factor is not None:
        crossed = [
            c for t in terms if factor in t for c in t if c != factor and c in levels and c in frame
        ]
    name, shift = term, 0.0
    derived = spec.get("derived_variables") or {}
    if term is not None:
        stem = term.removesuffix("_between")
        if term == "session_c" and "centre" in derived.get("session_c", {}):
            name, shift = "session", float(derived["session_c"]["centre"])
        elif stem != term and "grand_mean" in derived.get(stem, {}):
            name, shift = stem, float(derived[stem]["grand_mean"])
    return {
        "factor": factor,
        "levels": list(levels.get(factor, [])) if factor else [],
        "term": term,
        "name": name,
        "shift": shift,
        "crossed": list(dict.fromkeys(crossed)),
    }


def _axis_values(raw: np.ndarray, points: int) -> np.ndarray:
    """Grid of a predictor on its raw scale: 0-1 for proportions, every whole value for
    whole numbers (up to 200 of them), else ``points`` values over the observed range."""
    raw = raw[np.isfinite(raw)]
    low, high = float(raw.min()), float(raw.max())
    whole = np.allclose(raw, np.round(raw), atol=1e-9)
    if low >= 0.0 and high <= 1.0 and not (whole and set(np.round(raw)) <= {0.0, 1.0}):
        return np.linspace(0.0, 1.0, points)
    if whole and high - low < _MOST_WHOLE:
        return np.arange(round(low), round(high) + 1)
    return np.linspace(low, high, points)


def _offset_columns(spec: Mapping, frame: pd.DataFrame) -> list[str]:
    offsets = parse_formula(spec["formula"]).offsets if "formula" in spec else ()
    return [
        c
        for c in frame.columns
        if any(re.search(rf"(?<![\w.]){re.escape(str(c))}(?![\w.])", o) for o in offsets)
    ]


def _centred(column: str, spec: Mapping) -> bool:
    derived = spec.get("derived_variables") or {}
    stem = column.removesuffix("_within").removesuffix("_between")
    return column in derived or stem in derived or stem != column


def _grid(frame: pd.DataFrame, spec: Mapping, values: dict, n: int) -> pd.DataFrame:
    """A prediction grid of ``n`` rows: the given columns; factors at their reference level,
    grouping columns at an unseen level; offset variables and uncentred numeric predictors
    at their mean, centred ones (within/between parts, ``session_c``) at 0."""
    levels = spec.get("factor_levels") or {}
    grid = pd.DataFrame(values, index=pd.RangeIndex(n))
    offsets = _offset_columns(spec, frame)
    for column in frame.columns:
        if column in grid:
            continue
        values_ = frame[column]
        if column in levels:
            grid[column] = pd.Categorical([levels[column][0]] * n, categories=levels[column])
        elif pd.api.types.is_bool_dtype(values_):
            grid[column] = False
        elif not pd.api.types.is_numeric_dtype(values_):
            grid[column] = NEW_LEVEL
        elif column in offsets or not _centred(str(column), spec):
            grid[column] = float(values_.mean())
        else:
            grid[column] = 0.0
    for column, categories in levels.items():
        if column in grid and not isinstance(grid[column].dtype, pd.CategoricalDtype):
            grid[column] = pd.Categorical(grid[column], categories=categories)
    return grid


def _predict(fit, grid: pd.DataFrame) -> pd.DataFrame:
    """``X beta`` (+ offset) of a grid on the response scale, with the 95% Wald CI of the
    fixed part (as ``MixedResult.predict(level="population", ci=True)``; also for GEE)."""
    x, _, offset = fit.design.new_design_matrices(grid)
    eta = x @ np.asarray(fit.beta) + offset
    se = np.sqrt(np.einsum("ij,jk,ik->i", x, np.asarray(fit.vcov), x))
    z = st.norm.ppf(0.975)
    inverse = get_family(fit.family).link.inverse
    low, high = inverse(eta - z * se), inverse(eta + z * se)
    return pd.DataFrame({"estimate": inverse(eta), "ci_low": low, "ci_high": high})


def population_predictions(
    spec: Mapping, fit, frame: pd.DataFrame, points: int = _POINTS
) -> pd.DataFrame:
    """Population-level predictions per level of the factor over the model's predictor.

    The grid is chosen by :func:`prediction_axis`: every level of the contrast factor
    (``framework``) times the predictor's raw values (0 to 1 in ``points`` steps for a
    proportion such as a repair rate, every whole value for a whole-number predictor such
    as the session, else ``points`` values over the observed range); without a numeric
    predictor, the factor's levels crossed with the factors that interact with it. Other
    factors are at their reference level, centred predictors at 0 (their grand mean),
    other numeric predictors and offset variables (``minutes`` of ``offset(log(minutes))``)
    at their mean in the model frame, random effects at 0. Estimates and 95% CIs (from the
    fixed effects' covariance) are on the response scale: probabilities, counts per
    observation of mean exposure, or response units.

    Parameters
    ----------
    spec : mapping
        The model's ``spec.json`` content.
    fit : MixedResult or PopulationAveragedFit
        The fit (``design``, ``beta``, ``vcov``, ``family``).
    frame : pandas.DataFrame
        The model frame it was fitted on.
    points : int, default 51
        Grid points over a continuous predictor.

    Returns
    -------
    pandas.DataFrame
        The factor's column (when the model has it), the predictor's column on its raw
        scale (when there is one) or the crossed factors, then ``estimate``, ``ci_low``,
        ``ci_high``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(4)
    >>> g = np.repeat(np.arange(10), 12)
    >>> frame = pd.DataFrame({"g": g.astype(str), "session": np.tile(np.arange(1, 13), 10),
    ...                       "framework": np.where(g < 5, "a", "b")})
    >>> frame["session_c"] = frame["session"] - 6.5
    >>> frame["y"] = rng.poisson(np.exp(0.5 + 0.05 * frame["session_c"]))
    >>> fit = fit_mixed("y ~ framework * session_c + (1 | g)", frame, family="poisson")
    >>> spec = {"formula": "y ~ framework * session_c + (1 | g)",
    ...         "factor_levels": {"framework": ["a", "b"]},
    ...         "derived_variables": {"session_c": {"centre": 6.5}}}
    >>> pred = population_predictions(spec, fit, frame)
    >>> list(pred.columns), len(pred)
    (['framework', 'session', 'estimate', 'ci_low', 'ci_high'], 24)
    """
    axis = prediction_axis(spec, fit.design, frame)
    levels = spec.get("factor_levels") or {}
    axes: dict[str, np.ndarray] = {}
    if axis["factor"]:
        axes[axis["factor"]] = np.asarray(axis["levels"], dtype=object)
    if axis["term"] is not None:
        raw = frame[axis["term"]].to_numpy(dtype=float) + axis["shift"]
        axes[axis["name"]] = _axis_values(raw, points)
    for factor in axis["crossed"]:
        axes[factor] = np.asarray(levels[factor], dtype=object)
    mesh = np.meshgrid(*axes.values(), indexing="ij") if axes else []
    out = pd.DataFrame({name: m.ravel() for name, m in zip(axes, mesh, strict=True)})
    n = len(out) if axes else 1
    values = {c: out[c].to_numpy() for c in out.columns}
    if axis["term"] is not None:
        out[axis["name"]] = out[axis["name"]].to_numpy(dtype=axes[axis["name"]].dtype)
        values[axis["term"]] = out[axis["name"]].to_numpy(dtype=float) - axis["shift"]
    grid = _grid(frame, spec, values, n)
    out = out.astype({c: str for c in out.columns if c in levels})
    return pd.concat([out.reset_index(drop=True), _predict(fit, grid)], axis=1)


# --------------------------------------------------------------------------- residuals


def _fitted_family(fit):
    """The fit's family object, with its estimated NB2 size."""
    family = get_family(fit.family)
    theta = getattr(fit, "nb_theta", None)
    if family.n_dispersion and theta is not None:
        family = replace(family, theta=float(theta))
    return family


def residual_table(fit, frame: pd.DataFrame | None = None, factor: str = "framework"):
    """Fitted values and Pearson residuals, one row per fitted observation, no identifiers.

    The fitted value is the conditional mean ``mu`` (fixed effects plus the random effects'
    conditional modes, on the response scale; for a population-averaged fit the fixed part
    only). The Pearson residual is ``(y - mu) sqrt(w / V(mu)) / sigma``, with prior weights
    ``w`` (the number of trials for ``cbind`` responses) and the family's variance function
    ``V`` (:meth:`~resistance_outcomes.models.families.GlmmFamily.variance`): 1 for
    gaussian (then ``sigma`` is the residual SD, so the residuals are in SD units),
    ``mu (1 - mu)`` binomial, ``mu`` Poisson, ``mu + mu^2 / theta`` negative binomial
    (``sigma = 1`` for these).

    Parameters
    ----------
    fit : MixedResult or PopulationAveragedFit
    frame : pandas.DataFrame, optional
        The model frame, for the factor's level of each row (default: the design's rows).
    factor : str, default "framework"
        Column whose level is kept beside each residual (left out when absent).

    Returns
    -------
    pandas.DataFrame
        ``row`` (1-based row of the model frame), ``fitted``, ``residual`` and ``factor``;
        indexed like the rows used in fitting.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(3)
    >>> g = np.repeat(np.arange(10), 8)
    >>> df = pd.DataFrame({"g": g, "y": rng.poisson(np.exp(0.5 + rng.normal(0, .4, 10)[g]))})
    >>> res = residual_table(fit_mixed("y ~ 1 + (1 | g)", df, family="poisson"))
    >>> list(res.columns), len(res)
    (['row', 'fitted', 'residual'], 80)
    """
    design = fit.design
    eta = np.asarray(design.X) @ np.asarray(fit.beta) + np.asarray(design.offset)
    b = getattr(fit, "b", None)
    if b is not None and design.Zt.shape[0]:
        eta = eta + design.Zt.T @ np.asarray(b)
    family = _fitted_family(fit)
    mu = family.link.inverse(eta)
    sigma = float(getattr(fit, "sigma", 1.0) or 1.0) if not family.glmm else 1.0
    weights = np.asarray(design.prior_weights, dtype=float) * np.ones_like(mu)
    residual = (np.asarray(design.y, dtype=float) - mu) * np.sqrt(weights / family.variance(mu))
    index = design.frame.index
    positions = np.arange(1, len(index) + 1)
    if frame is not None and len(frame) and index.isin(frame.index).all():
        positions = frame.index.get_indexer(index) + 1
    out = pd.DataFrame({"row": positions, "fitted": mu, "residual": residual / sigma}, index=index)
    source = frame if frame is not None else design.frame
    if factor in source.columns:
        out[factor] = source.loc[index, factor].astype(str).to_numpy()
    return out


def random_effects_table(fit) -> pd.DataFrame:
    """The conditional modes of the random effects, by grouping factor, term and level.

    Terms in the engine's order (lme4's: grouping factors by decreasing number of levels,
    coefficients as written). Level codes are the pseudonymous codes of the model frame.
    A population-averaged (GEE) fit has none: the table is empty, with its columns.

    Returns
    -------
    pandas.DataFrame
        ``group``, ``term``, ``level``, ``mode`` (on the link scale).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})
    >>> table = random_effects_table(fit_mixed("y ~ 1 + (1 | g)", df))
    >>> table.shape, table["term"].unique().tolist()
    ((8, 4), ['(Intercept)'])
    """
    b = getattr(fit, "b", None)
    if b is None:
        return pd.DataFrame(columns=RANDOM_EFFECT_COLUMNS)
    parts = []
    for block in fit.design.blocks:
        modes = np.asarray(b)[block.z_slice].reshape(block.n_levels, block.n_coef)
        for j, name in enumerate(block.coef_names):
            parts.append(
                pd.DataFrame(
                    {
                        "group": block.group,
                        "term": name,
                        "level": [str(v) for v in block.levels],
                        "mode": modes[:, j],
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=RANDOM_EFFECT_COLUMNS)
    return pd.concat(parts, ignore_index=True)[RANDOM_EFFECT_COLUMNS]


def read_model_table(path, text: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read one of the model folder's tables back; an empty file gives an empty frame.

    Parameters
    ----------
    path : path-like
        E.g. ``results/models/<name>/predictions.csv``.
    text : tuple of str
        Columns to read as text (factor levels, codes), never as numbers or missing.

    Examples
    --------
    >>> read_model_table("results/models/m/residuals.csv", ("framework",))  # doctest: +SKIP
    """
    try:
        return pd.read_csv(
            path, dtype={c: str for c in text}, keep_default_na=False, na_values=[""]
        )
    except pd.errors.EmptyDataError:  # a model that was not fitted
        return pd.DataFrame()


# --------------------------------------------------------------------------- forest


#: Predictors whose effects are shown per 10 points of a 0-1 rate rather than per unit.
PER_TEN_POINTS = ("repair_rate",)


def forest_effects(
    contrasts: dict[str, pd.DataFrame], labels: dict[str, str], vocab=None
) -> pd.DataFrame:
    """Per-framework simple slopes of several models as ratios, for a forest plot.

    Parameters
    ----------
    contrasts : dict
        Model name -> its ``contrasts.csv`` frame.
    labels : dict
        Model name -> a short description used as the group heading.
    vocab : Vocabulary, optional
        The study's vocabulary, for the predictors' labels.

    Returns
    -------
    pandas.DataFrame
        group, label, framework, estimate, ci_low, ci_high, ratio_kind (ratios; slopes of
        0-1 rates are rescaled to a 10-point increase).

    Examples
    --------
    >>> c = pd.DataFrame({"kind": ["simple_slope"], "variable": ["repair_rate_between"],
    ...     "level": ["cognitive"], "estimate": [-2.0], "ci_low": [-3.0], "ci_high": [-1.0],
    ...     "ratio_kind": ["odds ratio"]})
    >>> forest_effects({"m": c}, {"m": "Retention"})["estimate"].round(4).tolist()
    [0.8187]
    """
    from .publish import variable_label

    rows = []
    for model, table in contrasts.items():
        slopes = table[table["kind"] == "simple_slope"]
        for _, row in slopes.iterrows():
            if pd.isna(row.get("ratio_kind")) or not row.get("ratio_kind"):
                continue
            variable = str(row["variable"])
            scale = 0.1 if variable.startswith(PER_TEN_POINTS) else 1.0
            rows.append(
                {
                    "group": labels.get(model, model),
                    "label": variable_label(variable, vocab=vocab)
                    + (", per 10 points" if scale != 1.0 else ""),
                    "framework": row["level"],
                    "estimate": float(np.exp(scale * row["estimate"])),
                    "ci_low": float(np.exp(scale * row["ci_low"])),
                    "ci_high": float(np.exp(scale * row["ci_high"])),
                    "ratio_kind": row["ratio_kind"],
                }
            )
    return pd.DataFrame(
        rows, columns=["group", "label", "framework", "estimate", "ci_low", "ci_high", "ratio_kind"]
    )
