"""Publication tables of the analyses and the report's summary page.

Tidy frames in, :class:`~resistance_outcomes.tables.ApaTable` objects (or Markdown) out:

- :func:`model_table`: one fitted model: fixed effects (estimate, SE, 95% CI, odds or
  incidence-rate ratio with its CI by the family's link, p), random effects (SDs,
  correlations, ICC) and fit (N, groups, R², AIC); :func:`model_table_data` holds its
  numbers at full precision;
- :func:`combined_table`: the main models side by side, "estimate [95% CI]" and p per model;
- :func:`contrasts_table`: framework contrasts and simple slopes with ratio, CI, p and
  adjusted p;
- :func:`sensitivity_publication_table`, :func:`table1_publication` and
  :func:`reliability_publication`: the sensitivity, descriptive and reliability tables;
- :func:`write_table_formats` (CSV at full precision, LaTeX, Markdown) and
  :func:`write_docx` (all tables in one Word file);
- :func:`summary_sentences`: the summary page, results stated in sentences made from the
  numbers, with model flags, the validation outcome, the reliability gate and the recovery
  of the simulated truth.

Labels. :func:`term_label` turns model terms into words: framework levels by name, known
variables through :data:`VARIABLE_LABELS`, anything else as it is written.

Numbers follow :mod:`resistance_outcomes.tables` (APA 7): two decimals, more (up to four)
where a standard error (or, for ratios, the lower confidence limit) would otherwise print as
0.00; p to three decimals without a leading
zero, "< .001" below .001; statistics bounded by 1 (R², ICC, r) without a leading zero.

Small cells. A count from 1 to ``min_cell - 1`` is shown as "<min_cell"
(:func:`resistance_outcomes.tables.suppress_count`) wherever a count appears: the number of
observations and of groups per grouping factor (and GEE clusters) in the model and combined
tables, rows left out of a model (model-table note), every count of Table 1 (with the
complementary and secondary suppression of :func:`resistance_outcomes.describe.table1`),
*n* of the reliability table, and rows read and set aside on the summary page. In the CSV
files such a count is left empty and its row marked ``suppressed``. The number of coders
in the reliability table is not a count of participants and is shown.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .describe import format_table1
from .reliability import format_reliability_table
from .tables import (
    MISSING,
    ApaTable,
    format_bounded,
    format_ci,
    format_number,
    format_p,
    suppress_count,
    title_case,
    to_csv,
    to_docx,
    to_latex,
    to_markdown,
)

__all__ = [
    "DEFAULT_MAIN_MODELS",
    "DEFAULT_MAIN_RESULTS",
    "GROUP_LABELS",
    "SLOPE_STEPS",
    "VARIABLE_LABELS",
    "PublishError",
    "combined_table",
    "combined_table_data",
    "contrasts_table",
    "contrasts_table_data",
    "model_table",
    "model_table_data",
    "publication_tables",
    "read_gate_report",
    "read_model_folder",
    "read_validation_report",
    "reliability_publication",
    "sensitivity_publication_table",
    "summary_sentences",
    "table1_publication",
    "term_label",
    "variable_label",
    "write_docx",
    "write_table_formats",
]


class PublishError(ValueError):
    """A table or summary cannot be made from the inputs given; the message says where."""


# --------------------------------------------------------------------------- vocabulary

#: Words for model variables; ``_within`` / ``_between`` suffixes of these are labelled
#: "(within client)" / "(between clients)". Unknown names are printed as written.
VARIABLE_LABELS = {
    "framework": "Framework",
    "session": "Session",
    "session_c": "Session (centred)",
    "log_time": "Log session number",
    "time": "Session number",
    "repair_rate": "Repair rate",
    "rupture_rate": "Rupture rate",
    "unrepaired_rate": "Unrepaired-rupture rate",
    "ruptures": "Ruptures",
    "repaired": "Repaired ruptures",
    "unrepaired": "Unrepaired ruptures",
    "resistance_type": "Resistance type",
    "alliance": "Alliance",
    "baseline_severity": "Baseline severity",
    "homework_done": "Homework done",
    "minutes": "Session minutes",
}

#: Words for grouping factors of the random part.
GROUP_LABELS = {"therapist": "Therapist", "client": "Client", "study": "Study", "site": "Site"}

_SUFFIXES = {"_within": "within client", "_between": "between clients"}

#: Simple slopes on the summary page: ``variable -> (step, subject, noun, unit)``. The
#: slope is reported per ``step`` units (repair rate is a proportion, so 0.1 is 10
#: percentage points); ``subject`` starts a sentence of an association, ``noun`` one of no
#: clear association, ``unit`` names the step. Other variables: per one unit.
SLOPE_STEPS = {
    "repair_rate_between": (
        0.1,
        "a repair rate 10 percentage points higher than other clients'",
        "the client's repair rate",
        "10 percentage points",
    ),
    "rupture_rate_between": (
        1.0,
        "one more rupture per attended session than other clients",
        "the client's rupture rate",
        "rupture per session",
    ),
    "unrepaired_within": (
        1.0,
        "each additional unrepaired rupture in a session, relative to the client's own average,",
        "the number of unrepaired ruptures in a session (relative to the client's own average)",
        "additional rupture",
    ),
    "unrepaired_between": (
        1.0,
        "one more unrepaired rupture per session than other clients, on average,",
        "the client's average number of unrepaired ruptures per session",
        "rupture per session",
    ),
    "session_c": (1.0, "each later session", "the session number", "session"),
}

#: What the response of a model is, in words, for the summary page.
_OUTCOMES = {
    "dropout": "dropout",
    "event": "dropping out after a session",
    "ruptures": "ruptures",
    "rupture_withdrawal": "withdrawal ruptures",
    "rupture_confrontation": "confrontation ruptures",
    "resistance_count": "resistance behaviours",
    "resistance": "resistance behaviours",
    "alliance": "alliance rating",
}

#: Models placed side by side in the combined table, when present.
DEFAULT_MAIN_MODELS = ("rupture_frequency", "repair_retention", "dropout_hazard")

#: Results stated on the summary page: model -> contrast kinds.
DEFAULT_MAIN_RESULTS = {
    "repair_retention": ("simple_slope",),
    "rupture_frequency": ("pairwise",),
    "dropout_hazard": ("simple_slope",),
}

_LINKS = {"binomial": "logit", "poisson": "log", "negative_binomial": "log", "gaussian": "identity"}
# link -> (column heading, ratio name, scale of the estimate)
_RATIOS = {
    "logit": ("OR", "odds ratio", "log-odds"),
    "log": ("IRR", "incidence-rate ratio", "log-rate"),
}
_FAMILY_WORDS = {
    "binomial": "binomial",
    "poisson": "Poisson",
    "negative_binomial": "negative-binomial",
    "gaussian": "Gaussian",
}
_FAMILY_NAMES = {
    "binomial": "logistic",
    "poisson": "Poisson",
    "negative_binomial": "negative-binomial",
    "gaussian": "linear",
}
_METHODS = {
    "Laplace": "maximum likelihood (Laplace approximation)",
    "REML": "restricted maximum likelihood (REML)",
    "ML": "maximum likelihood",
    "GEE": "generalized estimating equations with robust standard errors",
}
# ratio_kind of contrasts.csv and the sensitivity table -> panel wording
_SCALE_WORDS = {"odds ratio": "odds ratios", "rate ratio": "incidence-rate ratios"}
_ADJUSTMENTS = {"holm": "Holm", "bh": "Benjamini\u2013Hochberg", "none": ""}
_ADJUSTMENT_REFERENCES = {
    "holm": "Holm's (1979) step-down procedure",
    "bh": "the Benjamini\u2013Hochberg (1995) procedure",
}
_COEFFICIENT_COLUMNS = ("term", "estimate", "std_error", "p_value", "ci_low", "ci_high")
_CONTRAST_COLUMNS = (
    "kind",
    "variable",
    "level",
    "reference",
    "by",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "adjustment",
)
_DATA_COLUMNS = [
    "section",
    "term",
    "label",
    "statistic",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "df",
    "p_value",
    "suppressed",
]
_BASE_DECIMALS, _MOST_DECIMALS = 2, 4
_Z95 = 1.959963984540054  # standard-normal 97.5% quantile


# --------------------------------------------------------------------------- labels


def variable_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """Words for a model variable.

    Looks ``name`` up in ``labels`` (default :data:`VARIABLE_LABELS`); a name ending in
    ``_within`` or ``_between`` whose stem is known reads "<stem> (within client)" or
    "<stem> (between clients)". Anything else is returned as written.

    Parameters
    ----------
    name : str
        Column name as it appears in the formula.
    labels : mapping, optional
        Extra or replacement labels, merged over :data:`VARIABLE_LABELS`.

    Returns
    -------
    str

    Examples
    --------
    >>> variable_label("repair_rate_between"), variable_label("x1")
    ('Repair rate (between clients)', 'x1')
    """
    known = {**VARIABLE_LABELS, **(labels or {})}
    if name in known:
        return known[name]
    for suffix, words in _SUFFIXES.items():
        stem = name.removesuffix(suffix)
        if stem != name and stem in known:
            return f"{known[stem]} ({words})"
    return name


def _level_label(level) -> str:
    text = str(level).replace("_", " ")
    return text[:1].upper() + text[1:]


def _part_label(part: str, factor_levels: Mapping, labels: Mapping | None) -> str:
    patsy_style = re.fullmatch(r"(\w+)\[T\.(.+)\]", part)
    if patsy_style:
        return _level_label(patsy_style[2])
    for factor, levels in factor_levels.items():
        level = part.removeprefix(factor)
        if level != part and level in {str(lv) for lv in levels}:
            return _level_label(level)
    return variable_label(part, labels)


def term_label(
    term: str,
    factor_levels: Mapping[str, Sequence] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Human-readable label of a fixed-effect term.

    "(Intercept)" reads "Intercept"; a factor level (``frameworkcognitive`` or patsy's
    ``framework[T.cognitive]``) reads as the level ("Cognitive"); numeric variables through
    :func:`variable_label`; the parts of an interaction are joined by " × ".

    Parameters
    ----------
    term : str
        Term as in ``coefficients.csv``.
    factor_levels : mapping, optional
        Factor -> levels (``spec.json``'s ``factor_levels``), used to split
        ``frameworkcognitive`` into factor and level.
    labels : mapping, optional
        Extra variable labels (see :func:`variable_label`).

    Returns
    -------
    str

    Examples
    --------
    >>> levels = {"framework": ["psychoanalytic", "behavioral", "cognitive"]}
    >>> term_label("frameworkcognitive:session_c", levels)
    'Cognitive × Session (centred)'
    >>> term_label("(Intercept)"), term_label("I(x ** 2)")
    ('Intercept', 'I(x ** 2)')
    """
    if term == "(Intercept)":
        return "Intercept"
    return " \u00d7 ".join(_part_label(p, factor_levels or {}, labels) for p in term.split(":"))


def _group_label(group: str) -> str:
    parts = [GROUP_LABELS.get(p, _level_label(p)) for p in str(group).split(":")]
    inner = parts[-1]
    outer = [p.lower() for p in reversed(parts[:-1])]
    return inner + "".join(f" within {p}" for p in outer)


def _model_title(name: str) -> str:
    return _level_label(name)


def _framework_words(level) -> str:
    return str(level).replace("_", " ")


# --------------------------------------------------------------------------- checks


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise PublishError(f"{what}: expected a table (DataFrame), got {type(frame).__name__}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PublishError(
            f"{what}: column(s) {', '.join(missing)} missing (columns present: "
            f"{', '.join(map(str, frame.columns)) or 'none'}). Re-run the step that wrote it."
        )


def _numbers(frame: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Copy of ``frame`` with ``columns`` as floats; a non-number names row, column, value.

    Rows are numbered as a spreadsheet shows the CSV: header row 1, first data row 2.
    """
    out = frame.reset_index(drop=True).copy()
    for column in columns:
        if column not in out:
            out[column] = np.nan
            continue
        values = pd.to_numeric(out[column], errors="coerce").astype(float)
        bad = out[column].notna() & values.isna() & out[column].astype(str).str.strip().ne("")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise PublishError(
                f"{what}, row {row + 2}, column '{column}': {out[column].iloc[row]!r} is not a "
                "number. The file should be written by the workflow; re-run its step."
            )
        out[column] = values
    return out


def _flags(fit: Mapping) -> list[str]:
    if "flags" in fit:
        return list(fit["flags"])
    flags = [] if fit.get("converged", True) else ["not converged"]
    return flags + (["singular fit"] if fit.get("singular") else [])


def _link(family: str) -> str:
    if family not in _LINKS:
        raise PublishError(
            f"family {family!r} is not one of {', '.join(_LINKS)}; spec.json should hold the "
            "canonical family name written by the model step."
        )
    return _LINKS[family]


# --------------------------------------------------------------------------- numbers


def _decimals(scale: float) -> int:
    """Two decimals, or up to four while ``scale`` (a standard error) would print as 0."""
    decimals = _BASE_DECIMALS
    if not np.isfinite(scale) or scale == 0:
        return decimals
    while decimals < _MOST_DECIMALS and abs(scale) < 0.5 * 10.0**-decimals:
        decimals += 1
    return decimals


def _ratio_decimals(decimals: int, low: float) -> int:
    """Decimals of a ratio and its CI: the row's, or more while the lower limit prints as 0."""
    return max(decimals, _decimals(low))


def _exp(values) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(np.asarray(values, dtype=float))


def _p_phrase(p: float, adjustment: str = "none") -> str:
    """ "*p* = .004", "Holm-adjusted *p* < .001" (Markdown)."""
    text = format_p(p)
    prefix = f"{_ADJUSTMENTS[adjustment]}-adjusted " if _ADJUSTMENTS.get(adjustment) else ""
    relation = "" if text[0] in "<>" else "= "
    return f"{prefix}*p* {relation}{text}"


# --------------------------------------------------------------------------- model table


def _fixed_rows(spec: Mapping, coefficients: pd.DataFrame, link: str, what: str) -> list[dict]:
    _require(coefficients, _COEFFICIENT_COLUMNS, what)
    coefs = _numbers(coefficients, [*_COEFFICIENT_COLUMNS[1:], "df"], what)
    levels = spec.get("factor_levels") or {}
    ratio = link in _RATIOS
    rows = []
    for row in coefs.itertuples(index=False):
        exp = _exp([row.estimate, row.ci_low, row.ci_high]) if ratio else [np.nan] * 3
        rows.append(
            {
                "section": "fixed",
                "term": str(row.term),
                "label": term_label(str(row.term), levels),
                "statistic": "b",
                "estimate": row.estimate,
                "std_error": row.std_error,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "ratio": exp[0],
                "ratio_ci_low": exp[1],
                "ratio_ci_high": exp[2],
                "df": row.df,
                "p_value": row.p_value,
            }
        )
    return rows


def _text(value) -> str:
    """A text cell of a CSV, with missing values (NaN, "nan") as ""."""
    return "" if pd.isna(value) or str(value) == "nan" else str(value)


def _component_label(group: str, term1: str, term2: str, levels: Mapping) -> tuple[str, str]:
    """(label, statistic) of one variance-component row."""
    if group == "Residual":
        return "Residual SD", "SD"
    who = _group_label(group)

    def words(term: str) -> str:
        return "intercept" if term == "(Intercept)" else term_label(term, levels)

    if term2:
        return f"{who}: r({words(term1)}, {words(term2)})", "r"
    return f"{who}: SD of {words(term1)}", "SD"


def _random_rows(
    spec: Mapping, variance_components: pd.DataFrame, fit: Mapping, what: str
) -> list[dict]:
    if variance_components is None or variance_components.empty:
        return []
    _require(variance_components, ("group", "term1", "term2", "sd", "corr"), what)
    vc = _numbers(variance_components, ["sd", "corr"], what)
    levels = spec.get("factor_levels") or {}
    rows = []
    for row in vc.itertuples(index=False):
        group, term1, term2 = (_text(x) for x in (row.group, row.term1, row.term2))
        label, statistic = _component_label(group, term1, term2, levels)
        value = row.corr if statistic == "r" else row.sd
        rows.append(
            {
                "section": "random",
                "term": "|".join(t for t in (group, term1, term2) if t),
                "label": label,
                "statistic": statistic,
                "estimate": value,
            }
        )
    if fit.get("icc") is not None:
        rows.append(
            {
                "section": "random",
                "term": "icc",
                "label": "ICC (adjusted)",
                "statistic": "ICC",
                "estimate": float(fit["icc"]),
            }
        )
    return rows


def _fit_rows(fit: Mapping, min_cell: int) -> list[dict]:
    def count_row(term: str, label: str, n) -> dict:
        small = n is not None and 1 <= n < min_cell
        return {
            "section": "fit",
            "term": term,
            "label": label,
            "statistic": "count",
            "estimate": np.nan if small or n is None else float(n),
            "suppressed": small,
        }

    rows = [count_row("nobs", "Observations", fit.get("nobs"))]
    for group, n in (fit.get("groups") or {}).items():
        rows.append(count_row(f"groups:{group}", f"Groups: {_group_label(group)}", n))
    if fit.get("n_clusters") is not None:
        cluster = _group_label(fit.get("cluster", "cluster"))
        rows.append(count_row("n_clusters", f"Clusters: {cluster}", fit["n_clusters"]))
    for key, label, statistic in (
        ("r2_marginal", "Marginal R²", "R2"),
        ("r2_conditional", "Conditional R²", "R2"),
        ("working_correlation", "Working correlation", "r"),
        ("nb_theta", "Negative-binomial theta", "theta"),
        ("aic", "AIC", "AIC"),
    ):
        if fit.get(key) is not None:
            rows.append(
                {
                    "section": "fit",
                    "term": key,
                    "label": label,
                    "statistic": statistic,
                    "estimate": float(fit[key]),
                }
            )
    return rows


def model_table_data(
    spec: Mapping,
    coefficients: pd.DataFrame,
    variance_components: pd.DataFrame,
    fit: Mapping,
    min_cell: int = 5,
) -> pd.DataFrame:
    """The numbers of a model table at full precision, one row per table row.

    Parameters
    ----------
    spec, fit : mapping
        Contents of the model's ``spec.json`` and ``fit.json``.
    coefficients, variance_components : pandas.DataFrame
        The model's ``coefficients.csv`` and ``variance_components.csv``.
    min_cell : int, default 5
        Counts (observations, groups, clusters) from 1 to ``min_cell - 1`` are left empty
        and marked ``suppressed``.

    Returns
    -------
    pandas.DataFrame
        Columns ``section`` (fixed, random, fit), ``term``, ``label``, ``statistic`` (b,
        SD, r, ICC, count, R2, AIC, theta), ``estimate`` (the value), ``std_error``,
        ``ci_low``, ``ci_high``, ``ratio``, ``ratio_ci_low``, ``ratio_ci_high`` (exp of
        estimate and limits for log and logit links), ``df``, ``p_value``, ``suppressed``.

    Examples
    --------
    >>> import pandas as pd
    >>> coefs = pd.DataFrame({"term": ["(Intercept)"], "estimate": [-1.0],
    ...     "std_error": [0.5], "p_value": [0.05], "ci_low": [-2.0], "ci_high": [0.0]})
    >>> data = model_table_data({"family": "binomial"}, coefs, pd.DataFrame(),
    ...                         {"nobs": 40, "aic": 50.1})
    >>> data[["section", "label", "estimate"]].values.tolist()
    [['fixed', 'Intercept', -1.0], ['fit', 'Observations', 40.0], ['fit', 'AIC', 50.1]]
    """
    name = spec.get("name", "model")
    link = _link(spec.get("family", fit.get("family", "")))
    rows = _fixed_rows(spec, coefficients, link, f"coefficients.csv of model '{name}'")
    rows += _random_rows(
        spec, variance_components, fit, f"variance_components.csv of model '{name}'"
    )
    rows += _fit_rows(fit, min_cell)
    data = pd.DataFrame(rows).reindex(columns=_DATA_COLUMNS)
    data["suppressed"] = data["suppressed"].astype("boolean").fillna(False).astype(bool)
    return data


def _fixed_cells(row, ratio: bool) -> list[str]:
    decimals = _decimals(row.std_error)
    cells = [
        row.label,
        format_number(row.estimate, decimals),
        format_number(row.std_error, decimals),
        format_ci(row.ci_low, row.ci_high, decimals),
    ]
    if ratio:
        places = _ratio_decimals(decimals, row.ratio_ci_low)
        cells += [
            format_number(row.ratio, places),
            format_ci(row.ratio_ci_low, row.ratio_ci_high, places),
        ]
    return cells + [format_p(row.p_value)]


def _value_cell(row, min_cell: int) -> str:
    """A random-effect or fit value, formatted by its statistic."""
    if row.statistic == "count":
        return f"<{min_cell}" if row.suppressed else suppress_count(row.estimate, min_cell)
    if row.statistic in ("r", "ICC", "R2"):
        return format_bounded(row.estimate)
    if row.statistic == "SD":
        return format_number(row.estimate, _decimals(row.estimate))
    return format_number(row.estimate)


def _not_fitted_table(name: str, fit: Mapping, number: int) -> ApaTable:
    reason = fit.get("reason", "no reason recorded")
    return ApaTable(
        number=number,
        title=title_case(f"{_model_title(name)}: model not fitted"),
        columns=["Model", "Result"],
        rows=pd.DataFrame([[_model_title(name), "not fitted"]]),
        note=f"The model was not fitted: {reason}.",
    )


def _estimation_words(spec: Mapping, fit: Mapping) -> str:
    method = str(fit.get("method", spec.get("method", "")))
    quadrature = re.fullmatch(r"AGQ\((\d+)\)", method)
    if quadrature:
        return (
            f"maximum likelihood (adaptive Gauss\u2013Hermite quadrature, {quadrature[1]} points)"
        )
    return _METHODS.get(method, method)


def _model_note(spec: Mapping, fit: Mapping, data: pd.DataFrame, min_cell: int) -> str:
    family = spec.get("family", "")
    link = _link(family)
    levels = spec.get("factor_levels") or {}
    parts = [
        f"Model {spec.get('name', '')}: {spec.get('formula', fit.get('formula', ''))}.",
        f"Family: {_FAMILY_WORDS.get(family, family)} with {link} link; estimated by "
        f"{_estimation_words(spec, fit)}.",
    ]
    if spec.get("one_row_is"):
        parts.append(f"One observation is {spec['one_row_is']}.")
    if fit.get("method") == "GEE":
        parts.append(
            f"Population-averaged estimates; {fit.get('cov_struct', 'exchangeable')} working "
            f"correlation within {variable_label(str(fit.get('cluster', 'cluster'))).lower()}s "
            "(the random-effects terms of the formula only name the clusters)."
        )
    scale = _RATIOS[link][2] if link in _RATIOS else "response"
    parts.append(
        f"b = estimate on the {scale} scale; SE = standard error; CI = Wald confidence interval."
    )
    if link in _RATIOS:
        short, name, _ = _RATIOS[link]
        parts.append(
            f"{short} = {name}, exp(b), with the exponentiated CI; for the intercept it is the "
            f"baseline {'odds' if link == 'logit' else 'rate (per unit of the offset)'} at "
            "the reference levels with every other predictor at 0, not a ratio."
        )
    if levels:
        parts.append(
            "Reference levels: "
            + "; ".join(
                f"{variable_label(f).lower()} {_framework_words(lv[0])}"
                for f, lv in levels.items()
                if lv
            )
            + "."
        )
    if (data["section"] == "random").any():
        parts.append(
            "Random effects are standard deviations (SD) and correlations (r); "
            "ICC = adjusted intraclass correlation; marginal and conditional R² after "
            "Nakagawa, Johnson and Schielzeth (2017)."
        )
    if (data["term"] == "nb_theta").any():
        parts.append(_THETA_NOTE)
    if fit.get("method") == "REML":
        parts.append(
            "AIC from the REML criterion: compare it only between models with the "
            "same fixed effects."
        )
    if data["suppressed"].any():
        parts.append(f"Counts from 1 to {min_cell - 1} are shown as <{min_cell}.")
    lines = [" ".join(parts)]
    excluded = fit.get("rows_excluded") or []
    if excluded:
        lines.append(
            "Rows left out: "
            + "; ".join(f"{e['reason']} ({suppress_count(e['rows'], min_cell)})" for e in excluded)
            + "."
        )
    flags = _flags(fit)
    if flags:
        lines.append(
            f"Flags: {'; '.join(flags)}. Estimates from this fit should be read with caution."
        )
    return "\n".join(lines)


def _probability_words(data: pd.DataFrame) -> str:
    fixed = data[data["section"] == "fixed"]
    test = (
        "t tests with Satterthwaite degrees of freedom"
        if fixed["df"].notna().any()
        else "Wald z tests"
    )
    return f"p values are two-sided ({test}); values below .001 are shown as < .001."


def model_table(
    spec: Mapping,
    coefficients: pd.DataFrame,
    variance_components: pd.DataFrame,
    fit: Mapping,
    number: int,
    min_cell: int = 5,
) -> ApaTable:
    """APA table of one fitted model.

    Three panels: fixed effects (b, SE, 95% CI, then for logit and log links the odds or
    incidence-rate ratio exp(b) with its CI, and p); random effects (SDs, correlations and
    the adjusted ICC); model fit (observations, groups per grouping factor, marginal and
    conditional R², AIC, and for GEE fits clusters and working correlation). Each fixed
    row has two decimals, or more (up to four) when its SE would print as 0.00. The note
    gives formula, family and link, estimation method, reference levels, rows left out and
    any flag (not converged, singular fit).

    Parameters
    ----------
    spec, fit : mapping
        Contents of the model's ``spec.json`` and ``fit.json``.
    coefficients, variance_components : pandas.DataFrame
        The model's ``coefficients.csv`` and ``variance_components.csv``.
    number : int
        Table number.
    min_cell : int, default 5
        Counts from 1 to ``min_cell - 1`` are shown as "<min_cell".

    Returns
    -------
    resistance_outcomes.tables.ApaTable
        For a model that was not fitted, a one-row table saying so and why.

    Examples
    --------
    >>> import pandas as pd
    >>> coefs = pd.DataFrame({"term": ["(Intercept)", "frameworkcognitive"],
    ...     "estimate": [-2.0, 0.5], "std_error": [0.4, 0.3], "p_value": [1e-6, 0.0955],
    ...     "ci_low": [-2.78, -0.09], "ci_high": [-1.22, 1.09]})
    >>> spec = {"name": "m", "family": "binomial", "formula": "y ~ framework + (1 | therapist)",
    ...         "factor_levels": {"framework": ["psychoanalytic", "cognitive"]}}
    >>> table = model_table(spec, coefs, pd.DataFrame(), {"nobs": 120, "method": "Laplace"}, 2)
    >>> table.rows.iloc[1].tolist()
    ['Cognitive', '0.50', '0.30', '[−0.09, 1.09]', '1.65', '[0.91, 2.97]', '.096']
    """
    name = spec.get("name", fit.get("model", "model"))
    if fit.get("fitted") is False:
        return _not_fitted_table(name, fit, number)
    data = model_table_data(spec, coefficients, variance_components, fit, min_cell)
    link = _link(spec.get("family", ""))
    ratio = link in _RATIOS
    columns = ["Term", "b", "SE", "95% CI"]
    if ratio:
        columns += [_RATIOS[link][0], "95% CI"]
    columns.append("p")
    width = len(columns)
    cells, groups = [], []
    for section, heading in (
        ("fixed", "Fixed effects"),
        ("random", "Random effects"),
        ("fit", "Model fit"),
    ):
        part = data[data["section"] == section]
        if part.empty:
            continue
        groups.append((heading, len(part)))
        for row in part.itertuples(index=False):
            if section == "fixed":
                cells.append(_fixed_cells(row, ratio))
            else:
                cells.append([row.label, _value_cell(row, min_cell)] + [""] * (width - 2))
    spanners = None
    if ratio:
        scale = "Log odds" if link == "logit" else "Log rate"
        spanners = [("", 1), (scale, 3), (_RATIOS[link][1].capitalize(), 2), ("", 1)]
    description = spec.get("description") or _model_title(name)
    family = _FAMILY_NAMES.get(spec.get("family", ""), "")
    kind = "GEE model" if fit.get("method") == "GEE" else f"{family} mixed-effects model"
    return ApaTable(
        number=number,
        title=title_case(f"{description}: {kind}"),
        columns=columns,
        rows=pd.DataFrame(cells, dtype=object),
        spanners=spanners,
        row_groups=groups,
        note=_model_note(spec, fit, data, min_cell),
        probability_note=_probability_words(data),
    )


# --------------------------------------------------------------------------- combined


def combined_table(
    models: Sequence[tuple[str, Mapping, pd.DataFrame, pd.DataFrame, Mapping]],
    number: int,
    min_cell: int = 5,
) -> ApaTable:
    """The main models side by side: per model "estimate [95% CI]" and p.

    For logit and log links the cell holds the odds or incidence-rate ratio and its CI, for
    identity links b. Rows: the union of the models' fixed-effect terms in order of first
    appearance (a dash where a model has no such term), then observations, groups per
    grouping factor, adjusted ICC, marginal and conditional R² and AIC. Models that were not
    fitted are named in the note.

    Parameters
    ----------
    models : sequence of (name, spec, coefficients, variance_components, fit)
        One tuple per model, in the order of the columns.
    number : int
        Table number.
    min_cell : int, default 5
        Counts from 1 to ``min_cell - 1`` are shown as "<min_cell".

    Returns
    -------
    resistance_outcomes.tables.ApaTable

    Examples
    --------
    >>> import pandas as pd
    >>> coefs = pd.DataFrame({"term": ["(Intercept)"], "estimate": [0.0],
    ...     "std_error": [0.1], "p_value": [1.0], "ci_low": [-0.2], "ci_high": [0.2]})
    >>> spec = {"name": "m", "family": "poisson", "formula": "y ~ 1 + (1 | g)"}
    >>> table = combined_table([("m", spec, coefs, pd.DataFrame(), {"nobs": 3})], 3)
    >>> table.rows.values.tolist()
    [['Intercept', '1.00 [0.82, 1.22]', '> .999'], ['Observations', '<5', '']]
    """
    data = combined_table_data(models, min_cell)
    fitted = list(dict.fromkeys(data["model"]))
    if not fitted:
        raise PublishError("combined_table: none of the models given was fitted.")
    specs = {name: spec for name, spec, *_ in models}
    fixed = data[data["section"] == "fixed"]
    terms = list(dict.fromkeys(fixed["term"]))
    fit_keys = sorted(
        dict.fromkeys(data.loc[data["section"] != "fixed", "term"]), key=_fit_row_order
    )
    columns, spanners, links = ["Term"], [("", 1)], {}
    for name in fitted:
        link = _link(specs[name].get("family", ""))
        links[name] = link
        short = _RATIOS[link][0] if link in _RATIOS else "b"
        columns += [f"{short} [95% CI]", "p"]
        spanners.append((_model_title(name), 2))
    rows = []
    for term in terms:
        first = fixed[fixed["term"] == term].iloc[0]
        row = [first["label"]]
        for name in fitted:
            match = fixed[(fixed["model"] == name) & (fixed["term"] == term)]
            row += _combined_cells(match, links[name])
        rows.append(row)
    summary = data[data["section"] != "fixed"]
    for key in fit_keys:
        entries = summary[summary["term"] == key]
        row = [entries.iloc[0]["label"]]
        for name in fitted:
            match = entries[entries["model"] == name]
            row += [_value_cell(match.iloc[0], min_cell) if len(match) else MISSING, ""]
        rows.append(row)
    return ApaTable(
        number=number,
        title="Main Mixed-Effects Models Side by Side",
        columns=columns,
        rows=pd.DataFrame(rows, dtype=object),
        spanners=spanners,
        row_groups=[("Fixed effects", len(terms)), ("Model fit", len(fit_keys))],
        note=_combined_note(models, fitted, links, data, min_cell),
        probability_note="p values are two-sided Wald tests; values below .001 are shown as "
        "< .001.",
    )


def combined_table_data(
    models: Sequence[tuple[str, Mapping, pd.DataFrame, pd.DataFrame, Mapping]],
    min_cell: int = 5,
) -> pd.DataFrame:
    """The numbers of :func:`combined_table`: :func:`model_table_data` of each fitted model,
    with a ``model`` column; random-effect SDs and correlations are left out, the ICC kept.

    Examples
    --------
    >>> import pandas as pd
    >>> coefs = pd.DataFrame({"term": ["(Intercept)"], "estimate": [0.0],
    ...     "std_error": [0.1], "p_value": [1.0], "ci_low": [-0.2], "ci_high": [0.2]})
    >>> spec = {"name": "m", "family": "poisson"}
    >>> combined_table_data([("m", spec, coefs, pd.DataFrame(), {"nobs": 30})])["term"].tolist()
    ['(Intercept)', 'nobs']
    """
    frames = []
    for name, spec, coefficients, variance_components, fit in models:
        if fit.get("fitted") is False:
            continue
        data = model_table_data(
            {**spec, "name": name}, coefficients, variance_components, fit, min_cell
        )
        data = data[(data["section"] != "random") | (data["term"] == "icc")]
        frames.append(data.assign(model=name))
    if not frames:
        return pd.DataFrame(columns=["model", *_DATA_COLUMNS])
    data = pd.concat(frames, ignore_index=True)
    return data[["model", *_DATA_COLUMNS]]


_THETA_NOTE = "Negative-binomial theta = shape parameter (variance = mean + mean²/theta)."
_FIT_ORDER = (
    "nobs",
    "groups:",
    "n_clusters",
    "icc",
    "r2_marginal",
    "r2_conditional",
    "working_correlation",
    "nb_theta",
    "aic",
)


def _fit_row_order(term: str) -> int:
    """Position of a fit row in the combined table: counts, ICC, R², then AIC."""
    return next(i for i, key in enumerate(_FIT_ORDER) if term.startswith(key))


def _combined_cells(match: pd.DataFrame, link: str) -> list[str]:
    if match.empty:
        return [MISSING, MISSING]
    row = match.iloc[0]
    decimals = _decimals(row["std_error"])
    keys = (
        ("ratio", "ratio_ci_low", "ratio_ci_high")
        if link in _RATIOS
        else ("estimate", "ci_low", "ci_high")
    )
    value, low, high = (row[k] for k in keys)
    if link in _RATIOS:
        decimals = _ratio_decimals(decimals, low)
    cell = f"{format_number(value, decimals)} {format_ci(low, high, decimals)}"
    return [cell, format_p(row["p_value"])]


def _combined_note(models, fitted, links, data, min_cell) -> str:
    described = []
    for name, spec, *_rest in models:
        if name not in fitted:
            continue
        link = links[name]
        scale = f"{_RATIOS[link][1]}s" if link in _RATIOS else "estimates (b)"
        described.append(
            f"{_model_title(name)}: {spec.get('formula', '')} "
            f"({_FAMILY_WORDS.get(spec.get('family', ''), spec.get('family', ''))}; {scale})"
        )
    parts = [
        "Cells are estimates with 95% Wald confidence intervals; ratios are exp(b). "
        + "; ".join(described)
        + ".",
        "A dash marks a term or statistic the model does not have. ICC = adjusted "
        "intraclass correlation; R² after Nakagawa, Johnson and Schielzeth (2017).",
    ]
    if (data["term"] == "nb_theta").any():
        parts.append(_THETA_NOTE)
    if data["suppressed"].any():
        parts.append(f"Counts from 1 to {min_cell - 1} are shown as <{min_cell}.")
    lines = [" ".join(parts)]
    skipped = [name for name, *_ in models if name not in fitted]
    if skipped:
        lines.append("Not fitted: " + ", ".join(skipped) + ".")
    flagged = [
        f"{name} ({'; '.join(_flags(fit))})"
        for name, *_, fit in models
        if name in fitted and _flags(fit)
    ]
    if flagged:
        lines.append("Flags: " + ", ".join(flagged) + "; read these estimates with caution.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- contrasts


def _contrast_label(row: Mapping) -> str:
    """ "Psychoanalytic vs. cognitive (arguing)" or "Session (centred): cognitive"."""
    by = f" ({_framework_words(row['by'])})" if row["by"] else ""
    if row["kind"] == "pairwise":
        return f"{_level_label(row['level'])} vs. {_framework_words(row['reference'])}{by}"
    return f"{variable_label(str(row['variable']))}: {_framework_words(row['level'])}{by}"


def _clean_contrasts(contrasts: pd.DataFrame, what: str) -> pd.DataFrame:
    _require(contrasts, _CONTRAST_COLUMNS, what)
    out = _numbers(
        contrasts, ["estimate", "std_error", "ci_low", "ci_high", "p_value", "p_adjusted"], what
    )
    for column in ("kind", "variable", "level", "reference", "by", "adjustment"):
        out[column] = out[column].map(_text)
    return out


def contrasts_table(models: Sequence[tuple[str, Mapping, pd.DataFrame]], number: int) -> ApaTable:
    """Framework contrasts and simple slopes of the models, one panel per model.

    Columns: contrast, b, 95% CI, the odds or incidence-rate ratio exp(b) with its CI (log
    and logit links), p and the adjusted p; the note names the adjustment. Pairwise
    contrasts read "Psychoanalytic vs. cognitive" (level minus reference on the link scale,
    so the ratio is level / reference); simple slopes read "<predictor>: <framework>".

    Parameters
    ----------
    models : sequence of (name, spec, contrasts)
        ``contrasts`` is the model's ``contrasts.csv``; models without contrasts are left
        out.
    number : int
        Table number.

    Returns
    -------
    resistance_outcomes.tables.ApaTable

    Examples
    --------
    >>> import pandas as pd
    >>> row = {"kind": "pairwise", "variable": "framework", "level": "psychoanalytic",
    ...        "reference": "cognitive", "by": "", "estimate": 0.55, "std_error": 0.14,
    ...        "ci_low": 0.28, "ci_high": 0.82, "p_value": 0.00007, "p_adjusted": 0.0002,
    ...        "adjustment": "holm"}
    >>> spec = {"family": "negative_binomial"}
    >>> table = contrasts_table([("rupture_frequency", spec, pd.DataFrame([row]))], 4)
    >>> table.rows.iloc[0].tolist()[:5]
    ['Psychoanalytic vs. cognitive', '0.55', '[0.28, 0.82]', '1.73', '[1.32, 2.27]']
    """
    data = contrasts_table_data(models)
    if data.empty:
        raise PublishError(
            "contrasts_table: no model has contrasts; configure them under "
            "the model's `contrasts:` key."
        )
    cells, groups, adjustments = [], [], {}
    for name in dict.fromkeys(data["model"]):
        part = data[data["model"] == name]
        spec = next(spec for n, spec, _ in models if n == name)
        link = _link(spec.get("family", ""))
        scale = f"{_RATIOS[link][1]}s" if link in _RATIOS else "differences in b"
        groups.append((f"{_model_title(name)} ({scale})", len(part)))
        for row in part.to_dict("records"):
            decimals = _decimals(row["std_error"])
            ratio = ["", ""]
            if link in _RATIOS:
                places = _ratio_decimals(decimals, row["ratio_ci_low"])
                ratio = [
                    format_number(row["ratio"], places),
                    format_ci(row["ratio_ci_low"], row["ratio_ci_high"], places),
                ]
            cells.append(
                [
                    _contrast_label(row),
                    format_number(row["estimate"], decimals),
                    format_ci(row["ci_low"], row["ci_high"], decimals),
                    *ratio,
                    format_p(row["p_value"]),
                    format_p(row["p_adjusted"]),
                ]
            )
            adjustments.setdefault(row["adjustment"], []).append(_model_title(name))
    return ApaTable(
        number=number,
        title="Framework Contrasts and Simple Slopes",
        columns=["Contrast", "b", "95% CI", "Ratio", "95% CI", "p", "Adjusted p"],
        rows=pd.DataFrame(cells, dtype=object),
        row_groups=groups,
        note=_contrasts_note(adjustments),
        probability_note="p values are two-sided Wald tests; values below .001 are shown as "
        "< .001.",
    )


def contrasts_table_data(models: Sequence[tuple[str, Mapping, pd.DataFrame]]) -> pd.DataFrame:
    """The numbers of :func:`contrasts_table`: the models' contrasts with a ``model`` column
    and the ratio and its CI recomputed as exp of the estimate and limits (log and logit
    links; empty otherwise).

    Examples
    --------
    >>> import pandas as pd
    >>> contrasts_table_data([("m", {"family": "gaussian"}, pd.DataFrame())]).empty
    True
    """
    frames = []
    for name, spec, contrasts in models:
        if contrasts is None or contrasts.empty:
            continue
        data = _clean_contrasts(contrasts, f"contrasts.csv of model '{name}'")
        ratio = _link(spec.get("family", "")) in _RATIOS
        for column, source in (
            ("ratio", "estimate"),
            ("ratio_ci_low", "ci_low"),
            ("ratio_ci_high", "ci_high"),
        ):
            data[column] = _exp(data[source]) if ratio else np.nan
        frames.append(data.assign(model=name))
    if not frames:
        return pd.DataFrame()
    data = pd.concat(frames, ignore_index=True)
    first = ["model", *_CONTRAST_COLUMNS[:5]]
    return data[first + [c for c in data.columns if c not in first]]


def _contrasts_note(adjustments: Mapping[str, list[str]]) -> str:
    parts = [
        "b = contrast or slope on the link scale with its 95% Wald CI (not adjusted for "
        "multiplicity); Ratio = exp(b): the odds ratio for logistic models, the "
        "incidence-rate ratio for count models (level / reference for contrasts, per "
        "unit of the predictor for slopes). Contrasts and slopes are evaluated with the "
        "other numeric predictors at 0 (their mean, for centred predictors)."
    ]
    for adjustment, names in adjustments.items():
        models = ", ".join(dict.fromkeys(names))
        if adjustment in _ADJUSTMENT_REFERENCES:
            parts.append(
                f"Adjusted p: {_ADJUSTMENT_REFERENCES[adjustment]} within each "
                "model's family of pairwise contrasts and, separately, within each "
                f"predictor's simple slopes ({models})."
            )
        else:
            parts.append(f"Adjusted p equals p: no adjustment ({models}).")
    return " ".join(parts)


# --------------------------------------------------------------------------- sensitivity


def _analysis_label(changes: str) -> str:
    if not changes or changes == "main analysis":
        return "Main analysis"
    words = []
    for item in changes.split("; "):
        key, _, value = item.partition(": ")
        if key == "family":
            words.append(f"{_FAMILY_WORDS.get(value, value)} family")
        elif key == "method":
            words.append("population-averaged (GEE)" if value == "gee" else f"method {value}")
        elif key == "min_attended":
            words.append(f"clients with at least {value} attended sessions")
        elif key == "dropout":
            words.append(f"dropout definition: {value.replace('_', ' ')}")
        else:
            words.append(item)
    text = "; ".join(words)
    return text[:1].upper() + text[1:]


def sensitivity_publication_table(table: pd.DataFrame, number: int) -> ApaTable:
    """The sensitivity analyses: each contrast under the main analysis and its variants.

    One panel per model; within it, one block of rows per contrast (framework comparison or
    simple slope), one row per analysis (main analysis first). Cells hold the odds or
    incidence-rate ratio (or, for linear models, b) with its 95% CI, p and adjusted p. †
    marks an analysis with a flag (not converged, singular fit, not fitted), named in the
    note.

    Parameters
    ----------
    table : pandas.DataFrame
        ``results/sensitivity/sensitivity_table.csv``
        (:func:`resistance_outcomes.sensitivity.sensitivity_table`).
    number : int
        Table number.

    Returns
    -------
    resistance_outcomes.tables.ApaTable

    Examples
    --------
    >>> import pandas as pd
    >>> row = {"model": "m", "analysis": "m", "changes": "main analysis", "flags": "",
    ...        "kind": "pairwise", "variable": "framework", "level": "behavioral",
    ...        "reference": "cognitive", "by": "", "estimate": 0.1, "ci_low": -0.1,
    ...        "ci_high": 0.3, "ratio": 1.105, "ratio_ci_low": 0.905,
    ...        "ratio_ci_high": 1.35, "ratio_kind": "odds ratio", "p_value": 0.32,
    ...        "p_adjusted": 0.64, "adjustment": "holm"}
    >>> gee = {**row, "analysis": "m_gee", "changes": "method: gee", "ratio": 1.2}
    >>> table = sensitivity_publication_table(pd.DataFrame([row, gee]), 5)
    >>> table.rows.values.tolist()[1]
    ['', 'Population-averaged (GEE)', '1.20 [0.91, 1.35]', '.320', '.640']
    """
    columns = [
        "model",
        "analysis",
        "changes",
        "flags",
        "kind",
        "variable",
        "level",
        "reference",
        "by",
        "estimate",
        "ci_low",
        "ci_high",
        "ratio",
        "ratio_ci_low",
        "ratio_ci_high",
        "ratio_kind",
        "p_value",
        "p_adjusted",
    ]
    _require(table, columns, "sensitivity_table.csv")
    if table.empty:
        raise PublishError(
            "sensitivity_table.csv has no rows: no model has a sensitivity "
            "variant (configure them under `sensitivity:`)."
        )
    data = _numbers(
        table,
        [
            "estimate",
            "ci_low",
            "ci_high",
            "ratio",
            "ratio_ci_low",
            "ratio_ci_high",
            "p_value",
            "p_adjusted",
        ],
        "sensitivity_table.csv",
    )
    text = [
        "model",
        "analysis",
        "changes",
        "flags",
        "kind",
        "variable",
        "level",
        "reference",
        "by",
        "ratio_kind",
    ]
    data[text] = data[text].map(_text)
    cells, groups, flagged = [], [], {}
    for model, part in data.groupby("model", sort=False):
        kinds = part["ratio_kind"].replace("", np.nan).dropna()
        scale = (
            _SCALE_WORDS.get(kinds.iloc[0], f"{kinds.iloc[0]}s")
            if len(kinds)
            else ("differences in b")
        )
        start = len(cells)
        keys = ["kind", "variable", "level", "reference", "by"]
        for _, rows in part.groupby(keys, sort=False):
            first = rows.iloc[0]
            label = _contrast_label(first) if first["kind"] else "All contrasts"
            for i, row in enumerate(rows.to_dict("records")):
                mark = " \u2020" if row["flags"] else ""
                if row["flags"]:
                    flagged[row["analysis"]] = row["flags"]
                cells.append(
                    [
                        label if i == 0 else "",
                        _analysis_label(row["changes"]) + mark,
                        *_sensitivity_cells(row),
                    ]
                )
        groups.append((f"{_model_title(model)} ({scale})", len(cells) - start))
    note = (
        "Cells are estimates with 95% Wald confidence intervals: odds or incidence-rate "
        "ratios for logistic and count models, b for linear models; adjusted p within "
        "each analysis's family of contrasts (see the contrasts table)."
    )
    if flagged:
        note += "\n\u2020 " + "; ".join(f"{name}: {flags}" for name, flags in flagged.items()) + "."
    return ApaTable(
        number=number,
        title="Sensitivity Analyses of the Framework Contrasts",
        columns=["Contrast", "Analysis", "Estimate [95% CI]", "p", "Adjusted p"],
        rows=pd.DataFrame(cells, dtype=object),
        row_groups=groups,
        note=note,
    )


def _sensitivity_cells(row: Mapping) -> list[str]:
    if not row["kind"] or pd.isna(row["estimate"]):
        return ["not available", "", ""]
    keys = (
        ("ratio", "ratio_ci_low", "ratio_ci_high")
        if row["ratio_kind"]
        else ("estimate", "ci_low", "ci_high")
    )
    value, low, high = (row[k] for k in keys)
    decimals = _decimals((row["ci_high"] - row["ci_low"]) / (2 * _Z95))
    if row["ratio_kind"]:
        decimals = _ratio_decimals(decimals, low)
    return [
        f"{format_number(value, decimals)} {format_ci(low, high, decimals)}",
        format_p(row["p_value"]),
        format_p(row["p_adjusted"]),
    ]


# --------------------------------------------------------------------------- Table 1, reliability


def table1_publication(long: pd.DataFrame, number: int, min_cell: int) -> ApaTable:
    """Table 1 (sample by framework) as an APA table, from the long table of
    :func:`resistance_outcomes.describe.table1`.

    Cells are formatted by :func:`resistance_outcomes.describe.format_table1`: counts as
    "n" or "n (%)", client-level means as "M (SD)", suppressed cells as "<min_cell",
    "n<min_cell" or "s" (explained in the note).

    Parameters
    ----------
    long : pandas.DataFrame
        ``results/descriptives/table1.csv`` (already suppressed by ``table1``).
    number : int
        Table number.
    min_cell : int
        The threshold the long table was suppressed with.

    Returns
    -------
    resistance_outcomes.tables.ApaTable

    Examples
    --------
    >>> import pandas as pd
    >>> long = pd.DataFrame({"variable": ["Clients"], "statistic": ["count"],
    ...     "framework": ["Total"], "value": [45.0], "n": [45], "suppressed": [False],
    ...     "reason": [""]})
    >>> table1_publication(long, 1, 5).rows.values.tolist()
    [['Clients, n', '45']]
    """
    wide = format_table1(long, min_cell=min_cell)
    note = (
        "Counts are n or n (%), the percentage of the clients or sessions the row's "
        "definition applies to; means are M (SD) of client-level values."
    )
    if wide.attrs.get("note"):
        note += " " + wide.attrs["note"]
    return ApaTable(
        number=number,
        title="Sample Characteristics by Therapeutic Framework",
        columns=list(wide.columns),
        rows=pd.DataFrame(wide.to_numpy(dtype=object).tolist(), dtype=object),
        note=note,
    )


def reliability_publication(
    table: pd.DataFrame, number: int, sample: Mapping | None = None, min_cell: int = 5
) -> ApaTable:
    """The reliability table (:func:`resistance_outcomes.reliability.format_reliability_table`)
    with its *n* (sessions or units coded by two or more coders) suppressed below
    ``min_cell``.

    Parameters
    ----------
    table : pandas.DataFrame
        ``results/reliability/reliability.csv``.
    number : int
        Table number.
    sample : mapping, optional
        The reliability sample description (``ReliabilityResult.sample``).
    min_cell : int, default 5
        Counts from 1 to ``min_cell - 1`` are shown as "<min_cell".

    Returns
    -------
    resistance_outcomes.tables.ApaTable

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures"], "level": ["session"],
    ...     "statistic": ["ICC(A,1)"], "estimate": [0.912], "ci_low": [0.88],
    ...     "ci_high": [0.94], "n_targets": [3], "n_raters": [2],
    ...     "pct_agreement": [66.7], "label": ["excellent"], "note": [""]})
    >>> reliability_publication(table, 2).rows.iloc[0, 4]
    '<5'
    """
    apa = format_reliability_table(table, number, dict(sample) if sample else None)
    rows = apa.rows.copy()
    counts = rows.iloc[:, 4].map(int)
    rows.iloc[:, 4] = [suppress_count(n, min_cell) for n in counts]
    lines = apa.note.split("\n")
    if counts.between(1, min_cell - 1).any():
        lines[0] += f" Counts from 1 to {min_cell - 1} are shown as <{min_cell}."
    return ApaTable(
        number=apa.number,
        title=apa.title,
        columns=apa.columns,
        rows=rows,
        spanners=apa.spanners,
        row_groups=apa.row_groups,
        note="\n".join(lines),
        probability_note=apa.probability_note,
    )


def _reliability_data(table: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    data = table.copy()
    counts = pd.to_numeric(data["n_targets"]).astype("Int64")
    small = counts.between(1, min_cell - 1)
    data["n_targets"] = counts.mask(small)
    data["suppressed"] = small.to_numpy()
    return data


# --------------------------------------------------------------------------- writers


def write_table_formats(table: ApaTable, raw: pd.DataFrame, stem: str | os.PathLike) -> list[Path]:
    """Write one table as ``<stem>.csv`` (the numbers, full precision), ``<stem>.tex``
    (booktabs) and ``<stem>.md``.

    Parameters
    ----------
    table : resistance_outcomes.tables.ApaTable
        The formatted table.
    raw : pandas.DataFrame
        The numbers behind it (e.g. :func:`model_table_data`), small counts already blank.
    stem : str or path-like
        Path without suffix, e.g. ``results/tables/model_repair_retention``.

    Returns
    -------
    list of pathlib.Path
        The three files written (atomically).

    Examples
    --------
    >>> write_table_formats(table, raw, "results/tables/contrasts")  # doctest: +SKIP
    [PosixPath('results/tables/contrasts.csv'), ...]
    """
    stem = Path(stem)
    paths = [stem.with_name(f"{stem.name}{suffix}") for suffix in (".csv", ".tex", ".md")]
    to_csv(raw, paths[0])
    to_latex(table, paths[1])
    to_markdown(table, paths[2])
    return paths


def write_docx(tables: Sequence[ApaTable], path: str | os.PathLike) -> Path:
    """Write every table, in order, to one Word file (one table per page, APA layout).

    Examples
    --------
    >>> write_docx([table1, table2], "results/tables/tables.docx")  # doctest: +SKIP
    PosixPath('results/tables/tables.docx')
    """
    return to_docx(list(tables), path)


def read_model_folder(folder: str | os.PathLike) -> dict:
    """Read a model folder written by the model step.

    Parameters
    ----------
    folder : str or path-like
        ``results/models/<name>`` (or ``results/sensitivity/<variant>``).

    Returns
    -------
    dict
        ``name``, ``spec``, ``fit``, ``coefficients``, ``variance_components`` and
        ``contrasts`` (empty frames for a model that was not fitted).

    Examples
    --------
    >>> model = read_model_folder("results/models/repair_retention")  # doctest: +SKIP
    >>> model["fit"]["flags"]  # doctest: +SKIP
    []
    """
    folder = Path(folder)

    def table(name: str) -> pd.DataFrame:
        try:
            return pd.read_csv(folder / name)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    out = {"name": folder.name}
    for key in ("spec", "fit"):
        path = folder / f"{key}.json"
        if not path.is_file():
            raise PublishError(f"{path}: missing; run the model step for '{folder.name}' first.")
        out[key] = json.loads(path.read_text(encoding="utf-8"))
    for key in ("coefficients", "variance_components", "contrasts"):
        out[key] = table(f"{key}.csv")
    return out


def publication_tables(
    models: Sequence[Mapping],
    *,
    table1_long: pd.DataFrame | None = None,
    reliability: pd.DataFrame | None = None,
    reliability_sample: Mapping | None = None,
    sensitivity: pd.DataFrame | None = None,
    main_models: Sequence[str] = DEFAULT_MAIN_MODELS,
    min_cell: int = 5,
) -> dict[str, tuple[ApaTable, pd.DataFrame]]:
    """Every publication table, numbered in order, with the numbers behind it.

    Order and names: ``table1`` (descriptives), ``reliability``, ``models_combined`` (the
    ``main_models`` present), ``contrasts``, ``sensitivity``, then ``model_<name>`` for each
    model. A table whose input is absent (or empty) is left out and the numbering closes up.

    Parameters
    ----------
    models : sequence of mapping
        The main models (not sensitivity variants), each as :func:`read_model_folder`
        returns it.
    table1_long, reliability, sensitivity : pandas.DataFrame, optional
        ``table1.csv``, ``reliability.csv`` and ``sensitivity_table.csv``.
    reliability_sample : mapping, optional
        Reliability sample description for the reliability note.
    main_models : sequence of str
        Models placed side by side in the combined table.
    min_cell : int, default 5
        Smallest count shown.

    Returns
    -------
    dict
        Name -> (ApaTable, raw numbers for the CSV), in table order.

    Examples
    --------
    >>> tables = publication_tables(models, table1_long=long)  # doctest: +SKIP
    >>> for name, (table, raw) in tables.items():  # doctest: +SKIP
    ...     write_table_formats(table, raw, f"results/tables/{name}")
    >>> write_docx([t for t, _ in tables.values()], "results/tables/tables.docx")  # doctest: +SKIP
    """
    builders = []
    if table1_long is not None and not table1_long.empty:
        builders.append(
            ("table1", lambda n: table1_publication(table1_long, n, min_cell), table1_long)
        )
    if reliability is not None and not reliability.empty:
        builders.append(
            (
                "reliability",
                lambda n: reliability_publication(reliability, n, reliability_sample, min_cell),
                _reliability_data(reliability, min_cell),
            )
        )
    tuples = [
        (m["name"], m["spec"], m["coefficients"], m["variance_components"], m["fit"])
        for m in models
    ]
    main = [t for name in main_models for t in tuples if t[0] == name]
    if combined_table_data(main, min_cell).shape[0]:
        builders.append(
            (
                "models_combined",
                lambda n: combined_table(main, n, min_cell),
                combined_table_data(main, min_cell),
            )
        )
    with_contrasts = [(m["name"], m["spec"], m["contrasts"]) for m in models]
    contrasts = contrasts_table_data(with_contrasts)
    if not contrasts.empty:
        builders.append(("contrasts", lambda n: contrasts_table(with_contrasts, n), contrasts))
    if sensitivity is not None and not sensitivity.empty:
        builders.append(
            ("sensitivity", lambda n: sensitivity_publication_table(sensitivity, n), sensitivity)
        )
    for name, spec, coefficients, vc, fit in tuples:
        raw = (
            model_table_data({**spec, "name": name}, coefficients, vc, fit, min_cell)
            if fit.get("fitted") is not False
            else pd.DataFrame({"model": [name], "fitted": [False]})
        )
        builders.append(
            (f"model_{name}", _model_builder(name, spec, coefficients, vc, fit, min_cell), raw)
        )
    return {name: (build(i), raw) for i, (name, build, raw) in enumerate(builders, start=1)}


def _model_builder(name, spec, coefficients, vc, fit, min_cell):
    return lambda n: model_table({**spec, "name": name}, coefficients, vc, fit, n, min_cell)


# --------------------------------------------------------------------------- summary inputs


def read_validation_report(text: str) -> dict:
    """The numbers of the validation report (``results/validation/report.md``).

    Parameters
    ----------
    text : str
        The report's Markdown, as written by
        :func:`resistance_outcomes.ingest.format_validation_report` for a finished run.

    Returns
    -------
    dict
        ``tables``: list of ``{table, rows_read, rows_kept, rows_set_aside}``; ``problems``:
        the number of problems found.

    Raises
    ------
    PublishError
        When the text has no summary table (a failed validation writes none: nothing was
        analysed).

    Examples
    --------
    >>> report = ("# Validation report\\n\\n| table | file | rows read | rows kept | "
    ...           "rows set aside |\\n| --- | --- | ---: | ---: | ---: |\\n"
    ...           "| clients | c.csv | 12 | 10 | 2 |\\n\\n3 problems found.\\n")
    >>> read_validation_report(report)["problems"]
    3
    """
    rows = re.findall(r"^\| ([^|]+?) \| [^|]*? \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
    if not rows:
        raise PublishError(
            "validation report: no summary table (| table | file | rows read | rows kept | "
            "rows set aside |) found; pass the report of a finished validation."
        )
    found = re.search(r"^(\d[\d,]*) problems? found\.$", text, re.M)
    problems = int(found[1].replace(",", "")) if found else 0
    return {
        "tables": [
            {"table": t, "rows_read": int(r), "rows_kept": int(k), "rows_set_aside": int(s)}
            for t, r, k, s in rows
        ],
        "problems": problems,
    }


def read_gate_report(text: str) -> dict:
    """The outcome of the reliability gate (``results/reliability/gate.md``).

    Returns
    -------
    dict
        ``mode`` (warn or strict) and ``messages`` (constructs below their minimum).

    Examples
    --------
    >>> read_gate_report("# Reliability gate (warn mode)\\n\\nEvery construct meets its "
    ...                  "configured minimum.\\n")
    {'mode': 'warn', 'messages': []}
    """
    mode = re.search(r"^# Reliability gate \((\w+) mode\)", text, re.M)
    if not mode:
        raise PublishError(
            "reliability gate report: no '# Reliability gate (<mode> mode)' "
            "heading; pass results/reliability/gate.md."
        )
    return {"mode": mode[1], "messages": re.findall(r"^- (.+)$", text, re.M)}


# --------------------------------------------------------------------------- summary


def _outcome(spec: Mapping) -> str:
    response = str(spec.get("formula", "")).split("~")[0].strip()
    return _OUTCOMES.get(response, response.replace("_", " "))


def _slope_words(variable: str) -> tuple[float, str, str, str]:
    if variable in SLOPE_STEPS:
        return SLOPE_STEPS[variable]
    label = variable_label(variable).lower()
    return 1.0, f"a one-unit higher {label}", label, "unit"


def _statistic_phrase(
    row: Mapping, family: str, step: float = 1.0, per: str = ""
) -> tuple[str, float]:
    """ "OR = 0.83, 95% CI [0.65, 1.05], Holm-adjusted *p* = .331" and the value shown;
    with ``per``, "OR per <per> = ..."."""
    link = _link(family)
    decimals = _decimals(step * row["std_error"])
    estimates = np.array([row["estimate"], row["ci_low"], row["ci_high"]], dtype=float) * step
    if link in _RATIOS:
        symbol, values = _RATIOS[link][0], _exp(estimates)
        decimals = _ratio_decimals(decimals, values[1])
    else:
        symbol, values = "*b*", estimates
    symbol += f" per {per}" if per else ""
    text = (
        f"{symbol} = {format_number(values[0], decimals)}, 95% CI "
        f"{format_ci(values[1], values[2], decimals)}, "
        f"{_p_phrase(row['p_adjusted'], row['adjustment'])}"
    )
    return text, float(values[0])


def _direction(value: float, family: str) -> str:
    neutral = 1.0 if _link(family) in _RATIOS else 0.0
    return "higher" if value > neutral else "lower"


def _quantity(family: str, outcome: str, direction: str | None = None) -> str:
    """'higher odds of dropout', 'a lower rate of ruptures', 'the mean alliance rating'."""
    link = _link(family)
    if link == "logit":
        return f"{direction} odds of {outcome}" if direction else f"the odds of {outcome}"
    noun = f"rate of {outcome}" if link == "log" else f"mean {outcome}"
    return f"a {direction} {noun}" if direction else f"the {noun}"


def _pairwise_sentence(row: Mapping, family: str, outcome: str, alpha: float) -> str:
    stats, value = _statistic_phrase(row, family)
    level, reference = _framework_words(row["level"]), _framework_words(row["reference"])
    prefix = f"For {_framework_words(row['by'])}, " if row["by"] else ""
    if row["p_adjusted"] < alpha:
        direction = _direction(value, family)
        body = (
            f"{level} therapy had {_quantity(family, outcome, direction)} than {reference} therapy"
        )
    else:
        body = (
            f"{_quantity(family, outcome)} did not differ significantly between {level} "
            f"and {reference} therapy"
        )
    sentence = prefix + body
    return f"{sentence[:1].upper()}{sentence[1:]} ({stats})."


def _slope_sentence(row: Mapping, family: str, outcome: str, alpha: float) -> str:
    step, subject, noun, unit = _slope_words(row["variable"])
    where = f"In {_framework_words(row['level'])} therapy"
    if row["by"]:
        where += f" ({_framework_words(row['by'])})"
    if row["p_adjusted"] < alpha:
        stats, value = _statistic_phrase(row, family, step)
        direction = _direction(value, family)
        return (
            f"{where}, {subject} was associated with "
            f"{_quantity(family, outcome, direction)} ({stats})."
        )
    stats, _ = _statistic_phrase(row, family, step, per=unit)
    return (
        f"{where}, {noun} was not significantly associated with "
        f"{_quantity(family, outcome)} ({stats})."
    )


def _model_section(analysis: Mapping, kinds: Sequence[str], alpha: float) -> list[str]:
    spec, fit = analysis["spec"], analysis["fit"]
    name = analysis["name"]
    heading = spec.get("description") or _model_title(name)
    lines = [f"### {heading}", ""]
    if fit.get("fitted") is False:
        return lines + [f"The model `{name}` was not fitted: {fit.get('reason', '')}.", ""]
    flags = _flags(fit)
    if flags:
        lines += [
            f"**Caution:** `{name}` was flagged ({'; '.join(flags)}); its estimates "
            "may be unreliable.",
            "",
        ]
    contrasts = analysis.get("contrasts")
    if contrasts is None or contrasts.empty:
        return lines + [f"No contrasts were computed for `{name}`.", ""]
    data = _clean_contrasts(contrasts, f"contrasts.csv of model '{name}'")
    family, outcome = spec.get("family", ""), _outcome(spec)
    chosen = data[data["kind"].isin(kinds)]
    if chosen.empty:
        return lines + [f"`{name}` has no {' or '.join(kinds)} contrasts.", ""]
    for row in chosen.to_dict("records"):
        sentence = (_pairwise_sentence if row["kind"] == "pairwise" else _slope_sentence)(
            row, family, outcome, alpha
        )
        lines.append(f"- {sentence}")
    return lines + [""]


def _flag_section(analyses: Sequence[Mapping]) -> list[str]:
    lines = ["## Model checks", ""]
    flagged = [
        (a["name"], _flags(a["fit"]), a["fit"].get("reason")) for a in analyses if _flags(a["fit"])
    ]
    if not analyses:
        return lines + ["No model was part of this run.", ""]
    if not flagged:
        return lines + [
            f"All {len(analyses)} fitted models (sensitivity variants included) "
            "converged without a singular fit.",
            "",
        ]
    lines.append("Flagged models (read their estimates with caution):")
    lines.append("")
    for name, flags, reason in flagged:
        why = f": {reason}" if reason else ""
        lines.append(f"- `{name}`: {'; '.join(flags)}{why}")
    return lines + [
        "",
        f"The other {len(analyses) - len(flagged)} models and variants "
        "converged without a singular fit.",
        "",
    ]


def _validation_section(validation: Mapping | None, min_cell: int) -> list[str]:
    lines = ["## Data validation", ""]
    if not validation:
        return lines + ["No validation outcome was given.", ""]
    tables = validation.get("tables", [])
    read = sum(t["rows_read"] for t in tables)
    set_aside = sum(t["rows_set_aside"] for t in tables)
    per_table = "; ".join(
        f"{t['table'].replace('_', ' ')} {suppress_count(t['rows_read'], min_cell)}" for t in tables
    )
    mode = f" ({validation['mode']} mode)" if validation.get("mode") else ""
    problems = int(validation.get("problems", 0))
    found = (
        "no problems were found"
        if not problems
        else (
            "1 problem was found"
            if problems == 1
            else f"{format_number(problems, 0)} problems were found"
        )
    )
    aside = (
        "no rows were set aside"
        if not set_aside
        else (f"{suppress_count(set_aside, min_cell)} rows were set aside in the quarantine table")
    )
    return lines + [
        f"Validation{mode} read {suppress_count(read, min_cell)} rows from {len(tables)} "
        f"files ({per_table}); {found} and {aside}.",
        "",
    ]


def _gate_section(gate: Mapping | None) -> list[str]:
    lines = ["## Reliability", ""]
    if not gate:
        return lines + ["No reliability analysis was part of this run.", ""]
    if not gate["messages"]:
        return lines + [
            f"Reliability gate ({gate['mode']} mode): every construct met its configured minimum.",
            "",
        ]
    went_on = "the run went on" if gate["mode"] == "warn" else "the run stopped"
    lines += [
        f"Reliability gate ({gate['mode']} mode): {len(gate['messages'])} construct(s) "
        f"below the configured minimum ({went_on}; interpret them with care):",
        "",
    ]
    return lines + [f"- {message}" for message in gate["messages"]] + [""]


def _recovery_section(recovery: Mapping | None) -> list[str]:
    if not recovery:
        return []
    inside, total = recovery["inside_ci"], recovery["fixed_effects_with_truth"]
    share = format_number(100 * recovery["share_inside_ci"], 1)
    target = format_number(100 * recovery["target"], 0)
    met = "met" if recovery["meets_target"] else "not met"
    lines = [
        "## Recovery of the simulated truth",
        "",
        f"The example data are simulated. {inside} of {total} true fixed effects "
        f"({share}%) lay inside their 95% CIs (target {target}%: {met}).",
    ]
    pattern = recovery.get("repair_effect")
    if pattern:
        slope = variable_label(pattern["slope"]).lower()
        signs = "matched" if pattern["signs_match"] else "did not all match"
        strongest = (
            "was also the strongest estimated"
            if pattern["pattern_matches"]
            else f"was not; the strongest estimated was "
            f"{_framework_words(pattern['strongest_estimated'])}"
        )
        lines[-1] += (
            f" The signs of the per-framework slopes of {slope} {signs} the truth; "
            f"the framework with the strongest true slope "
            f"({_framework_words(pattern['strongest_true'])}) {strongest}."
        )
    return lines + [""]


def summary_sentences(
    analyses: Sequence[Mapping],
    validation: Mapping | None = None,
    reliability_gate: Mapping | None = None,
    recovery: Mapping | None = None,
    *,
    main_results: Mapping[str, Sequence[str]] | None = None,
    alpha: float = 0.05,
    min_cell: int = 5,
) -> str:
    """The report's summary page: main results in sentences made from the numbers.

    For each model of ``main_results`` (default :data:`DEFAULT_MAIN_RESULTS`: the repair
    slopes of ``repair_retention``, the framework contrasts of ``rupture_frequency``, the
    slopes of unrepaired ruptures of ``dropout_hazard``), one sentence per contrast with
    the ratio (odds or incidence-rate ratio; b for linear models), its 95% CI and the
    adjusted p, named. Simple slopes are reported per the step in :data:`SLOPE_STEPS`
    (repair rate per 10 percentage points: exp(0.1 b)). A contrast is called an
    association ("was associated with higher odds") only when its adjusted p is below
    ``alpha``; otherwise the sentence says it was not significant. Then: flagged models
    (not converged, singular, not fitted), the validation outcome, the reliability gate
    and, for simulated data, the recovery of the truth.

    Parameters
    ----------
    analyses : sequence of mapping
        Every fitted model and sensitivity variant, each with ``name``, ``spec``, ``fit``
        and ``contrasts`` (as :func:`read_model_folder` returns). Variants (with
        ``spec["variant_of"]``) enter the model checks only.
    validation : mapping, optional
        :func:`read_validation_report` output, optionally with ``mode``.
    reliability_gate : mapping, optional
        :func:`read_gate_report` output; None when the run has no reliability analysis.
    recovery : mapping, optional
        ``results/recovery/summary.json``.
    main_results : mapping, optional
        Model -> contrast kinds (``pairwise``, ``simple_slope``) to state.
    alpha : float, default 0.05
        Level for calling an adjusted p significant.
    min_cell : int, default 5
        Smallest count shown.

    Returns
    -------
    str
        Markdown.

    Examples
    --------
    >>> import pandas as pd
    >>> row = {"kind": "simple_slope", "variable": "repair_rate_between",
    ...        "level": "cognitive", "reference": "", "by": "", "estimate": -2.1,
    ...        "std_error": 0.75, "ci_low": -3.57, "ci_high": -0.63, "p_value": 0.005,
    ...        "p_adjusted": 0.015, "adjustment": "holm"}
    >>> model = {"name": "repair_retention", "fit": {"flags": []}, "contrasts":
    ...          pd.DataFrame([row]), "spec": {"family": "binomial",
    ...          "formula": "dropout ~ framework * repair_rate_between + (1 | therapist)"}}
    >>> print(summary_sentences([model]).splitlines()[8])  # doctest: +NORMALIZE_WHITESPACE
    - In cognitive therapy, a repair rate 10 percentage points higher than other clients'
      was associated with lower odds of dropout (OR = 0.81, 95% CI [0.70, 0.94],
      Holm-adjusted *p* = .015).
    """
    main_results = DEFAULT_MAIN_RESULTS if main_results is None else main_results
    by_name = {a["name"]: a for a in analyses if not a["spec"].get("variant_of")}
    lines = [
        "# Summary of results",
        "",
        "The models estimate associations in observational data; they do not show that "
        "one variable causes another. Confidence intervals are 95% Wald intervals, not "
        "adjusted for multiplicity; p values are adjusted within each family of contrasts, "
        f"as named, and called significant below {format_bounded(alpha)}. Framework "
        "contrasts and slopes are evaluated with the other numeric predictors at 0 (their "
        "mean, for centred predictors).",
        "",
        "## Main results",
        "",
    ]
    stated = [name for name in main_results if name in by_name]
    if not stated:
        lines += [
            "None of the models named for the summary ("
            + ", ".join(main_results)
            + ") was part of this run.",
            "",
        ]
    for name in stated:
        lines += _model_section(by_name[name], main_results[name], alpha)
    lines += _flag_section(analyses)
    lines += _validation_section(validation, min_cell)
    lines += _gate_section(reliability_gate)
    lines += _recovery_section(recovery)
    return "\n".join(lines).rstrip() + "\n"
