"""Recovery of known truth: estimates of a simulated study against its generating values.

The example study (``resources/example``) was drawn from stated generating models whose
parameters are in its ``truth.json``. For a fitted model mapped to one of those processes,
the true value of each fixed effect is found *in the fitted parametrisation* by matching
linear predictors: the generating linear predictor is evaluated on a grid of predictor
values, and ``X beta = eta_true`` is solved for ``beta``, with ``X`` the fitted model's
fixed-effects design on the same grid. This converts the truth to the workflow's
parametrisation (the derived variables are left as they are):

- ``session_c``: the simulator uses ``(session - 8.5) / 7.5``, the workflow ``session -
  centre`` with ``centre`` the mean attended session (``spec.json``, ``derived_variables``);
- within/between parts: ``x = x_within + x_between + grand_mean``;
- rates per minute: both use ``offset(log(minutes))``;
- treatment coding: intercepts, framework differences and interactions follow from the
  framework-specific generating values.

A coefficient whose true value the generating model does not determine (for example one
between-client slope where the generating model has a different one per framework) gets
no truth and a note; it does not count in the coverage.
"""

from __future__ import annotations

import ast
import itertools
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import patsy

from .models import parse_formula
from .models.design import FORMULA_FUNCTIONS, r_column_name

__all__ = [
    "PROCESSES",
    "RecoveryError",
    "load_truth",
    "recovery_summary",
    "recovery_table",
    "repair_pattern",
    "true_coefficients",
]

#: Share of true fixed effects that should lie inside their 95% CIs.
TARGET_COVERAGE = 0.9
_GRID_VALUES = (0.0, 1.0, 2.0)
_TOLERANCE = 1e-8


class RecoveryError(ValueError):
    """The truth file or the model mapping cannot be used; the message says why."""


def load_truth(path: str | Path) -> dict:
    """Read a simulated study's ``truth.json``.

    Examples
    --------
    >>> truth = load_truth("resources/example/truth.json")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RecoveryError(f"{path}: cannot read the truth file ({err}).") from None
    if not truth.get("simulated") or "parameters" not in truth:
        raise RecoveryError(
            f"{path}: not the truth file of a simulated study (no "
            "'simulated: true' and 'parameters')."
        )
    return truth


# --------------------------------------------------------------------------- processes


def _value(truth: Mapping, process: str, name: str):
    return truth["parameters"][process][name]["value"]


def _need(raw: pd.DataFrame, columns: tuple[str, ...], process: str) -> None:
    missing = [c for c in columns if c not in raw]
    if missing:
        raise RecoveryError(
            f"process '{process}' depends on {', '.join(missing)}, which the model does not "
            "use (directly or through session_c, log_time or within/between parts); map "
            "the model to another process or add the predictor."
        )


def _simulated_session(truth: Mapping, raw: pd.DataFrame) -> pd.Series:
    scale = truth["session_c"]
    return (raw["session"] - scale["centre"]) / scale["scale"]


def _ruptures(truth, raw, share=None):
    _need(raw, ("framework", "session"), "ruptures")
    intercept = raw["framework"].map(_value(truth, "ruptures", "rupture_log_rate"))
    slope = raw["framework"].map(_value(truth, "ruptures", "rupture_session_slope"))
    eta = intercept + slope * _simulated_session(truth, raw)
    if share is not None:  # a binomial thinning of NB2 counts is NB2 with mean p * mu
        withdrawal = raw["framework"].map(_value(truth, "ruptures", "withdrawal_prob"))
        eta = eta + np.log(withdrawal if share == "withdrawal" else 1 - withdrawal)
    return eta


def _rates_by_cell(raw, rates, column, process, parameter, what, suffix_match=False):
    """Each row's true log rate ``rates[framework][raw[column]]``; a cell without a rate is a
    RecoveryError naming the parameter. With ``suffix_match`` a key ``k`` also matches a
    level ending in ``_k`` (older truth files name the behaviour, ``arguing``, the profile
    its construct, ``resistance_arguing``)."""

    def rate(framework, level):
        cells = rates.get(framework, {})
        key = level if level in cells else None
        if key is None and suffix_match:
            key = next((k for k in cells if level.endswith(f"_{k}")), None)
        if key is None:
            raise RecoveryError(
                f"process {process!r}: parameters.resistance.{parameter} has no rate of "
                f"{what} {level!r} in framework {framework!r} ({what}s there: "
                f"{', '.join(cells) or 'none'})."
            )
        return cells[key]

    return pd.Series(
        [rate(f, level) for f, level in zip(raw["framework"], raw[column], strict=True)],
        index=raw.index,
    )


def _resistance(truth, raw):
    _need(raw, ("framework", "profile_type"), "resistance")
    rates = _value(truth, "resistance", "resistance_log_rate")
    return _rates_by_cell(
        raw, rates, "profile_type", "resistance", "resistance_log_rate", "type", True
    )


def _resistance_forms(truth, raw):
    _need(raw, ("framework", "profile_form"), "resistance_forms")
    parameters = truth["parameters"].get("resistance", {})
    if "form_log_rate" not in parameters:
        raise RecoveryError(
            "process 'resistance_forms': the truth file has no parameters.resistance."
            "form_log_rate (log rate per minute by framework and form); map the model to "
            "another process or regenerate the example."
        )
    rates = _value(truth, "resistance", "form_log_rate")
    return _rates_by_cell(raw, rates, "profile_form", "resistance_forms", "form_log_rate", "form")


def _responses(truth, raw):
    """Logit of repair of a rupture: the framework's intercept plus the log odds ratio of
    each response used (the rupture-level model of ``simulate``)."""
    _need(raw, ("framework",), "responses")
    parameters = truth["parameters"].get("responses", {})
    missing = [k for k in ("rupture_model_intercept", "response_log_or") if k not in parameters]
    if missing:
        raise RecoveryError(
            f"process 'responses': the truth file has no parameters.responses."
            f"{' or '.join(missing)}; map the model to another process or regenerate the "
            "example."
        )
    intercept = _value(truth, "responses", "rupture_model_intercept")
    log_or = _value(truth, "responses", "response_log_or")
    eta = raw["framework"].map(intercept).astype(float)
    named = {name for by_response in log_or.values() for name in by_response}
    for response in (c for c in raw.columns if c in named):
        effect = raw["framework"].map({f: v.get(response, 0.0) for f, v in log_or.items()})
        eta = eta + effect.astype(float) * raw[response].astype(float)
    return eta


def _dropout(truth, raw):
    _need(raw, ("framework", "log_time", "unrepaired"), "dropout")
    intercept = raw["framework"].map(_value(truth, "dropout", "dropout_logit"))
    per_unrepaired = raw["framework"].map(_value(truth, "dropout", "dropout_per_unrepaired"))
    time = _value(truth, "dropout", "dropout_log_session")
    return intercept + time * raw["log_time"] + per_unrepaired * raw["unrepaired"]


def _alliance(truth, raw):
    _need(raw, ("framework", "session", "unrepaired"), "alliance")
    intercept = raw["framework"].map(_value(truth, "alliance", "alliance_intercept"))
    slope = raw["framework"].map(_value(truth, "alliance", "alliance_session_slope"))
    penalty = _value(truth, "alliance", "alliance_unrepaired_penalty")
    return intercept + slope * _simulated_session(truth, raw) - penalty * raw["unrepaired"]


#: Generating processes of ``simulate.simulate_study``: name -> linear predictor of the
#: raw predictors (framework, session, log_time, unrepaired, profile_type, profile_form),
#: offsets excluded. ``resistance`` reads the rate of each type
#: (``parameters.resistance.resistance_log_rate``), ``resistance_forms`` the rate of each
#: form (``form_log_rate``: the log of the sum of its types' rates, since a sum of Poisson
#: counts sharing their random effects is Poisson with the summed rate). ``responses``
#: is the logit of repair of a rupture by the responses used
#: (``parameters.responses.rupture_model_intercept`` and ``response_log_or``).
PROCESSES = {
    "ruptures": _ruptures,
    "rupture_withdrawal": lambda truth, raw: _ruptures(truth, raw, "withdrawal"),
    "rupture_confrontation": lambda truth, raw: _ruptures(truth, raw, "confrontation"),
    "resistance": _resistance,
    "resistance_forms": _resistance_forms,
    "dropout": _dropout,
    "alliance": _alliance,
    "responses": _responses,
}


# --------------------------------------------------------------------------- the grid


def _fixed_variables(fixed: str) -> list[str]:
    """Data columns the fixed part reads, in order of appearance."""
    desc = patsy.ModelDesc.from_formula(fixed)
    names: list[str] = []
    for term in desc.rhs_termlist:
        for factor in term.factors:
            tree = ast.parse(factor.code, mode="eval")
            called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            names += [
                n.id
                for n in ast.walk(tree)
                if isinstance(n, ast.Name) and id(n) not in called and n.id not in FORMULA_FUNCTIONS
            ]
    return list(dict.fromkeys(names))


def _grid(variables: list[str], levels: Mapping, frozen: str | None) -> pd.DataFrame:
    values = [levels.get(v, [0.0] if v == frozen else _GRID_VALUES) for v in variables]
    grid = pd.DataFrame(list(itertools.product(*values)), columns=variables)
    for variable, order in levels.items():
        if variable in grid:
            grid[variable] = pd.Categorical(grid[variable], categories=order)
    return grid


def _raw_predictors(grid: pd.DataFrame, derived: Mapping) -> pd.DataFrame:
    """The generating model's predictors for each grid row (undoing centring and splits)."""
    raw = grid.copy()
    if "session_c" in grid:
        raw["session"] = grid["session_c"] + derived["session_c"]["centre"]
    if "time" in grid and "session" not in raw:
        raw["session"] = grid["time"]
    for stem, info in derived.items():
        parts = [f"{stem}_{p}" for p in ("within", "between") if f"{stem}_{p}" in grid]
        if "grand_mean" in info and parts:
            raw[stem] = grid[parts].sum(axis=1) + info["grand_mean"]
    for column in raw.columns:
        if isinstance(raw[column].dtype, pd.CategoricalDtype):
            raw[column] = raw[column].astype(str)
    return raw


def _solve(x: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares beta, which coefficients the grid determines, and the residual."""
    beta, *_ = np.linalg.lstsq(x, eta, rcond=None)
    _, singular, vt = np.linalg.svd(x, full_matrices=False)  # vt: (p, p), grids can be long
    rank = int(np.sum(singular > _TOLERANCE * singular[0]))
    null = vt[rank:].T
    determined = np.all(np.abs(null) < 1e-8, axis=1) if null.size else np.ones(len(beta), bool)
    residual = float(np.max(np.abs(x @ beta - eta)))
    return beta, determined, residual


def true_coefficients(
    truth: Mapping, process: str, spec: Mapping, terms: list[str]
) -> pd.DataFrame:
    """True values of a fitted model's fixed effects, in the fitted parametrisation.

    Parameters
    ----------
    truth : mapping
        ``truth.json`` of the simulated study.
    process : str
        A key of :data:`PROCESSES`.
    spec : mapping
        The model's ``spec.json`` (formula, factor levels, derived variables).
    terms : list of str
        The model's coefficient names (``coefficients.csv``, column ``term``).

    Returns
    -------
    pandas.DataFrame
        term, truth (NaN where the generating model gives no single value), note.

    Raises
    ------
    RecoveryError
        Unknown process, or a model whose fixed part lacks a predictor the process needs.

    Examples
    --------
    >>> spec = {"formula": "event ~ log_time + (1 | therapist)", "factor_levels": {},
    ...         "derived_variables": {}}
    >>> truth = {"parameters": {"dropout": {
    ...     "dropout_logit": {"value": {}}, "dropout_per_unrepaired": {"value": {}},
    ...     "dropout_log_session": {"value": -0.4}}}}
    >>> true_coefficients(truth, "dropout", spec,
    ...                   ["(Intercept)", "log_time"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    resistance_outcomes.recovery.RecoveryError: process 'dropout' depends on framework, ...
    """
    if process not in PROCESSES:
        raise RecoveryError(f"unknown process {process!r}; known: {', '.join(PROCESSES)}.")
    fixed = parse_formula(spec["formula"]).fixed
    variables = _fixed_variables(fixed)
    levels = spec.get("factor_levels", {})
    numeric = [v for v in variables if v not in levels]
    for frozen in [None, *numeric]:
        grid = _grid(variables, levels, frozen)
        matrix = patsy.dmatrix(fixed, grid, eval_env=patsy.EvalEnvironment([FORMULA_FUNCTIONS]))
        names = [r_column_name(n) for n in matrix.design_info.column_names]
        if names != list(terms):
            raise RecoveryError(
                f"the formula's terms {names} differ from the coefficients "
                f"{list(terms)}; the spec and coefficients do not belong "
                "together."
            )
        raw = _raw_predictors(grid, spec.get("derived_variables", {}))
        eta = np.asarray(PROCESSES[process](truth, raw), dtype=float)
        beta, determined, residual = _solve(np.asarray(matrix), eta)
        if residual < 1e-6:
            break
    else:
        return pd.DataFrame(
            {
                "term": terms,
                "truth": np.nan,
                "note": f"the generating model of '{process}' is not of this form",
            }
        )
    note = (
        ""
        if frozen is None
        else f"no single true value: the generating effect of {frozen} differs by framework"
    )
    return pd.DataFrame(
        {
            "term": terms,
            "truth": np.where(determined, beta, np.nan),
            "note": np.where(determined, "", note),
        }
    )


# --------------------------------------------------------------------------- tables


def recovery_table(truth: Mapping, fits: Mapping[str, Mapping]) -> pd.DataFrame:
    """Estimates, 95% CIs and true values of the fixed effects of the mapped models.

    Parameters
    ----------
    truth : mapping
        ``truth.json``.
    fits : mapping
        Model name -> ``{"process": ..., "spec": spec.json, "coefficients": DataFrame,
        "fit": fit.json}``.

    Returns
    -------
    pandas.DataFrame
        model, process, term, estimate, ci_low, ci_high, truth, inside_ci (empty where
        there is no truth), flags (of the fit), note. A model that was not fitted has
        one row saying so.

    Examples
    --------
    >>> table = recovery_table(truth, {"rupture_frequency": {...}})  # doctest: +SKIP
    """
    tables = []
    for model, item in fits.items():
        if not item["fit"].get("fitted", True):
            tables.append(
                pd.DataFrame(
                    [
                        {
                            "model": model,
                            "process": item["process"],
                            "flags": "not fitted",
                            "note": item["fit"]["reason"],
                        }
                    ]
                )
            )
            continue
        coefficients = item["coefficients"]
        true = true_coefficients(truth, item["process"], item["spec"], list(coefficients["term"]))
        table = coefficients[["term", "estimate", "ci_low", "ci_high"]].merge(true, on="term")
        inside = (table["ci_low"] <= table["truth"]) & (table["truth"] <= table["ci_high"])
        table["inside_ci"] = inside.astype("boolean").where(table["truth"].notna())
        table.insert(0, "process", item["process"])
        table.insert(0, "model", model)
        table["flags"] = "; ".join(item["fit"].get("flags", []))
        tables.append(table)
    columns = [
        "model",
        "process",
        "term",
        "estimate",
        "ci_low",
        "ci_high",
        "truth",
        "inside_ci",
        "flags",
        "note",
    ]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True).reindex(columns=columns)


def repair_pattern(
    truth: Mapping, process: str, spec: Mapping, contrasts: pd.DataFrame, slope: str
) -> dict:
    """Direction and framework pattern of an estimated effect against the truth.

    The per-framework simple slopes of ``slope`` (``contrasts.csv``) are compared with the
    generating effect of the same predictor in each framework: do the signs agree, and is
    the framework with the strongest true effect also the one with the strongest
    estimate?

    Parameters
    ----------
    truth : mapping
    process : str
    spec : mapping
        ``spec.json`` of the model.
    contrasts : pandas.DataFrame
        ``contrasts.csv`` of the model, with simple slopes of ``slope``.
    slope : str
        The predictor, e.g. ``unrepaired_within``.

    Returns
    -------
    dict
        by_framework (estimate, CI, truth, sign_matches per framework), signs_match,
        strongest_true, strongest_estimated, pattern_matches, order_true,
        order_estimated.

    Examples
    --------
    >>> repair_pattern(truth, "dropout", spec, contrasts, "unrepaired_within")  # doctest: +SKIP
    """
    if contrasts.empty:
        slopes = contrasts
    else:
        slopes = contrasts[(contrasts["kind"] == "simple_slope") & (contrasts["variable"] == slope)]
    if slopes.empty:
        raise RecoveryError(
            f"the model has no simple slopes of '{slope}'; add it under "
            "contrasts: slopes in its entry."
        )
    frameworks = list(slopes["level"])
    derived = spec.get("derived_variables", {})
    stem = slope.removesuffix("_within").removesuffix("_between")
    raw = pd.DataFrame(
        {
            "framework": frameworks,
            "log_time": 0.0,
            stem: 0.0,
            "session": derived.get("session_c", {}).get("centre", 1.0),
        }
    )
    eta = PROCESSES[process]
    true = np.asarray(eta(truth, raw.assign(**{stem: 1.0}))) - np.asarray(eta(truth, raw))
    estimates = slopes["estimate"].to_numpy(dtype=float)
    by_framework = [
        {
            "framework": f,
            "estimate": e,
            "ci_low": lo,
            "ci_high": hi,
            "truth": t,
            "sign_matches": bool(np.sign(e) == np.sign(t)),
        }
        for f, e, lo, hi, t in zip(
            frameworks, estimates, slopes["ci_low"], slopes["ci_high"], true, strict=True
        )
    ]
    order_true = [frameworks[i] for i in np.argsort(-true, kind="stable")]
    order_estimated = [frameworks[i] for i in np.argsort(-estimates, kind="stable")]
    return {
        "slope": slope,
        "by_framework": by_framework,
        "signs_match": all(row["sign_matches"] for row in by_framework),
        "strongest_true": order_true[0],
        "strongest_estimated": order_estimated[0],
        "pattern_matches": order_true[0] == order_estimated[0],
        "order_true": order_true,
        "order_estimated": order_estimated,
    }


def recovery_summary(
    table: pd.DataFrame, pattern: dict | None = None, target: float = TARGET_COVERAGE
) -> dict:
    """Coverage of the true fixed effects by their 95% CIs, the models with flags, and the
    repair pattern check.

    Examples
    --------
    >>> table = pd.DataFrame({"model": "m", "truth": [1.0, 2.0, float("nan")], "flags": "",
    ...                       "inside_ci": pd.array([True, False, None], dtype="boolean")})
    >>> recovery_summary(table)["share_inside_ci"]
    0.5
    """
    judged = table["inside_ci"].dropna()
    share = float(judged.mean()) if len(judged) else float("nan")
    flagged = table[table["flags"].fillna("") != ""].drop_duplicates("model")
    summary = {
        "fixed_effects_with_truth": int(len(judged)),
        "inside_ci": int(judged.sum()),
        "share_inside_ci": share,
        "target": target,
        "meets_target": bool(share >= target),
        "without_truth": int(table["truth"].isna().sum()),
        "models_with_flags": dict(zip(flagged["model"], flagged["flags"], strict=True)),
    }
    if pattern is not None:
        summary["repair_effect"] = pattern
    return summary
