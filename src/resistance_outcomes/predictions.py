"""Model predictions and effects for the figures, from a model's saved folder.

Each model folder (``results/models/<name>/``) holds the spec and the exact model frame it
was fitted on, so a figure step refits the model from them (identical estimates) and asks
it for population-level predictions on a grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import ModelSpec, fit_model, read_model_frame
from .publish import variable_label

#: Grouping columns given to prediction grids: an unseen level, so random effects are zero.
NEW_LEVEL = "(new)"


def refit_model(folder: str | Path):
    """Refit a model from its folder's ``spec.json`` and ``model_frame.csv``.

    Returns
    -------
    (dict, fit)
        The spec as saved, and the fit (a :class:`~resistance_outcomes.models.MixedResult`
        or a population-averaged fit).

    Examples
    --------
    >>> spec, fit = refit_model("results/models/rupture_frequency")  # doctest: +SKIP
    """
    folder = Path(folder)
    spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    frame = read_model_frame(folder / "model_frame.csv", spec)
    return spec, fit_model(ModelSpec.from_dict(spec), frame)


def _grid(frame: pd.DataFrame, spec: dict, values: dict) -> pd.DataFrame:
    """A prediction grid: the given columns, grouping columns at an unseen level, others at 0."""
    levels = spec.get("factor_levels", {})
    n = len(next(iter(values.values())))
    grid = pd.DataFrame(values)
    for column in frame.columns:
        if column in grid:
            continue
        if column in levels:
            grid[column] = pd.Categorical([levels[column][0]] * n, categories=levels[column])
        elif frame[column].dtype == object or isinstance(frame[column].dtype, pd.StringDtype):
            grid[column] = NEW_LEVEL
        else:
            grid[column] = 0.0
    for column, categories in levels.items():
        if column in grid and not isinstance(grid[column].dtype, pd.CategoricalDtype):
            grid[column] = pd.Categorical(grid[column], categories=categories)
    return grid


def rupture_rate_prediction(spec: dict, fit, frame: pd.DataFrame) -> pd.DataFrame:
    """Population-level rupture count per session of average length, by framework and session.

    Parameters
    ----------
    spec : dict
        The saved spec of a model of the form ``y ~ framework * session_c + offset(log(minutes))
        + ...`` (its ``derived_variables`` give the centre of ``session_c``).
    fit : MixedResult
    frame : pandas.DataFrame
        The model frame it was fitted on (for the sessions observed and the mean minutes).

    Returns
    -------
    pandas.DataFrame
        framework, session, estimate, ci_low, ci_high (response scale, 95% CI from the
        fixed effects).
    """
    centre = spec["derived_variables"]["session_c"]["centre"]
    frameworks = spec["factor_levels"]["framework"]
    sessions = np.arange(int(frame["session"].min()), int(frame["session"].max()) + 1)
    framework_col = np.repeat(frameworks, len(sessions))
    session_col = np.tile(sessions, len(frameworks))
    values = {
        "framework": framework_col,
        "session": session_col,
        "session_c": session_col - centre,
    }
    if "minutes" in frame:
        values["minutes"] = np.full(len(session_col), float(frame["minutes"].mean()))
    grid = _grid(frame, spec, values)
    predicted = fit.predict(grid, level="population", scale="response", ci=True)
    out = grid[["framework", "session"]].astype({"framework": str}).reset_index(drop=True)
    return pd.concat([out, predicted.reset_index(drop=True)], axis=1)


def dropout_by_repair_prediction(
    spec: dict, fit, frame: pd.DataFrame, repair: str = "repair_rate", points: int = 51
) -> pd.DataFrame:
    """Predicted probability of dropout against the repair rate (0-1), by framework.

    Other between-client predictors are held at their grand mean (0 after centring).

    Returns
    -------
    pandas.DataFrame
        framework, repair_rate, estimate, ci_low, ci_high.
    """
    grand_mean = spec["derived_variables"][repair]["grand_mean"]
    frameworks = spec["factor_levels"]["framework"]
    rates = np.linspace(0.0, 1.0, points)
    framework_col = np.repeat(frameworks, points)
    rate_col = np.tile(rates, len(frameworks))
    grid = _grid(
        frame,
        spec,
        {"framework": framework_col, f"{repair}_between": rate_col - grand_mean},
    )
    predicted = fit.predict(grid, level="population", scale="response", ci=True)
    out = pd.DataFrame({"framework": framework_col, "repair_rate": rate_col})
    return pd.concat([out, predicted.reset_index(drop=True)], axis=1)


#: Predictors whose effects are shown per 10 points of a 0-1 rate rather than per unit.
PER_TEN_POINTS = ("repair_rate",)


def forest_effects(contrasts: dict[str, pd.DataFrame], labels: dict[str, str]) -> pd.DataFrame:
    """Per-framework simple slopes of several models as ratios, for a forest plot.

    Parameters
    ----------
    contrasts : dict
        Model name -> its ``contrasts.csv`` frame.
    labels : dict
        Model name -> a short description used as the group heading.

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
                    "label": variable_label(variable) + (", per 10 points" if scale != 1.0 else ""),
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
