"""Publication tables of the analyses (APA 7).

Tidy frames in, :class:`~resistance_outcomes.tables.ApaTable` objects out:

- :func:`model_table`: one fitted model: fixed effects (estimate, SE, 95% CI, odds or
  incidence-rate ratio with its CI by the family's link, p), random effects (SDs,
  correlations, ICC) and fit (N, groups, R², AIC); :func:`model_table_data` holds its
  numbers at full precision;
- :func:`combined_table`: the main models side by side, "estimate [95% CI]" and p per model;
- :func:`contrasts_table`: framework contrasts and simple slopes with ratio, CI, p and
  adjusted p;
- :func:`sensitivity_publication_table`, :func:`table1_publication` and
  :func:`reliability_publication`: the sensitivity, descriptive and reliability tables;
- :func:`publication_tables`: every table of a run, numbered, each with the numbers behind
  it; a part of the analysis without data gets a table saying so (never a missing file);
- :func:`write_table_formats` (CSV at full precision, LaTeX, Markdown) and
  :func:`write_docx` (all tables in one Word file).

Labels come from :mod:`resistance_outcomes.labels` (the study's vocabulary: no raw column
names); families' links and ratios from :func:`resistance_outcomes.results.family_facts`;
the summary page's sentences are in :mod:`resistance_outcomes.summary`.

Not estimable. A coefficient or contrast its model could not identify (column
``estimable`` false in ``coefficients.csv``/``contrasts.csv``, or listed under
``not_estimable`` in ``fit.json``, e.g. complete separation) prints "not estimable" instead
of numbers, with the reason in the note. Tables without these columns are read as all
estimable.

Numbers follow :mod:`resistance_outcomes.tables` (APA 7): two decimals, more (up to four)
where a standard error (or, for ratios, the lower confidence limit) would otherwise print as
0.00; p to three decimals without a leading
zero, "< .001" below .001; statistics bounded by 1 (R², ICC, r) without a leading zero.

Small cells. A count from 1 to ``min_cell - 1`` is shown as "<min_cell"
(:func:`resistance_outcomes.tables.suppress_count`) wherever a count appears: the number of
observations and of groups per grouping factor (and GEE clusters) in the model and combined
tables, rows left out of a model (model-table note), every count of Table 1 (with the
complementary and secondary suppression of :func:`resistance_outcomes.describe.table1`),
*n* of the reliability table. In the CSV files such a count is left empty and its row marked
``suppressed``. The number of coders in the reliability table is not a count of
participants and is shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .codebook import humanise
from .config import ConfigError
from .describe import format_table1
from .labels import (
    group_label,
    level_label,
    lower_first,
    model_title,
    stage_words,
    term_label,
    variable_label,
    vocabulary_or_default,
)
from .reliability import format_reliability_table
from .results import (
    ResultsError,
    estimable,
    family_facts,
    not_estimable_reasons,
    read_model_folder,
)
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
from .vocabulary import Stage, Vocabulary, not_assessed_text

__all__ = [
    "NOT_ESTIMABLE",
    "PublishError",
    "combined_table",
    "combined_table_data",
    "contrasts_table",
    "contrasts_table_data",
    "model_table",
    "model_table_data",
    "not_assessed_table",
    "publication_tables",
    "read_model_folder",
    "reliability_publication",
    "sensitivity_publication_table",
    "table1_publication",
    "term_label",
    "variable_label",
    "write_docx",
    "write_table_formats",
]


class PublishError(ResultsError):
    """A table cannot be made from the inputs given; the message says where."""


#: What a table prints instead of the numbers of an estimate its model could not identify.
NOT_ESTIMABLE = "not estimable"

_METHODS = {
    "Laplace": "maximum likelihood (Laplace approximation)",
    "REML": "restricted maximum likelihood (REML)",
    "ML": "maximum likelihood",
    "GEE": "generalized estimating equations with robust standard errors",
}
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
    "estimable",
    "note",
]
_BASE_DECIMALS, _MOST_DECIMALS = 2, 4
_Z95 = 1.959963984540054  # standard-normal 97.5% quantile

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


def _family(family: str):
    """The family's link, ratio and words; an unknown family is a PublishError."""
    try:
        return family_facts(family)
    except ResultsError as err:
        raise PublishError(str(err)) from None


def _reason_text(reasons: Sequence[str]) -> str:
    reasons = [r for r in dict.fromkeys(reasons) if r]
    return "; ".join(reasons) if reasons else "the data do not identify it"


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


def _fixed_rows(
    spec: Mapping,
    coefficients: pd.DataFrame,
    fit: Mapping,
    ratio: bool,
    what: str,
    vocab: Vocabulary,
) -> list[dict]:
    _require(coefficients, _COEFFICIENT_COLUMNS, what)
    coefs = _numbers(coefficients, [*_COEFFICIENT_COLUMNS[1:], "df"], what)
    identified = estimable(coefs).to_numpy()
    reasons = not_estimable_reasons(fit)
    notes = coefs["note"].map(_text) if "note" in coefs.columns else pd.Series("", coefs.index)
    levels = spec.get("factor_levels") or {}
    rows = []
    for i, row in enumerate(coefs.itertuples(index=False)):
        term = str(row.term)
        ok = bool(identified[i]) and term not in reasons
        exp = _exp([row.estimate, row.ci_low, row.ci_high]) if ratio else [np.nan] * 3
        rows.append(
            {
                "section": "fixed",
                "term": term,
                "label": term_label(term, levels, vocab=vocab),
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
                "estimable": ok,
                "note": "" if ok else (notes.iloc[i] or reasons.get(term, "")),
            }
        )
    return rows


def _text(value) -> str:
    """A text cell of a CSV, with missing values (NaN, "nan") as ""."""
    return "" if pd.isna(value) or str(value) == "nan" else str(value)


def _component_label(
    group: str, term1: str, term2: str, levels: Mapping, vocab: Vocabulary
) -> tuple[str, str]:
    """(label, statistic) of one variance-component row."""
    if group == "Residual":
        return "Residual SD", "SD"
    who = group_label(group, vocab)

    def words(term: str) -> str:
        return "intercept" if term == "(Intercept)" else term_label(term, levels, vocab=vocab)

    if term2:
        return f"{who}: r({words(term1)}, {words(term2)})", "r"
    return f"{who}: SD of {words(term1)}", "SD"


def _random_rows(
    spec: Mapping, variance_components: pd.DataFrame, fit: Mapping, what: str, vocab: Vocabulary
) -> list[dict]:
    if variance_components is None or variance_components.empty:
        return []
    _require(variance_components, ("group", "term1", "term2", "sd", "corr"), what)
    vc = _numbers(variance_components, ["sd", "corr"], what)
    levels = spec.get("factor_levels") or {}
    rows = []
    for row in vc.itertuples(index=False):
        group, term1, term2 = (_text(x) for x in (row.group, row.term1, row.term2))
        label, statistic = _component_label(group, term1, term2, levels, vocab)
        value = row.corr if statistic == "r" else row.sd
        if group == "Residual":
            key = (group, "sd")
        elif statistic == "r":
            key = (group, f"cor {term1}, {term2}")
        else:
            key = (group, f"sd {term1}")
        rows.append(
            {
                "section": "random",
                "term": "|".join(t for t in (group, term1, term2) if t),
                "label": label,
                "statistic": statistic,
                "estimate": value,
                "key": key,
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
                "key": "icc",
            }
        )
    return rows


#: Interval methods a table can show for its fixed effects (config ``tables.intervals``).
INTERVAL_METHODS = ("wald", "profile", "boot")


def _bootstrap_limits(bootstrap: pd.DataFrame, what: str) -> dict:
    """The keys of :func:`_interval_limits` -> (low, high) from bootstrap.csv, by its
    ``kind``, ``group`` and ``term`` (spelled as in intervals.csv): a fixed effect's term,
    (group, term) of a variance parameter, and "icc"; R² and contrasts have no key."""
    _require(bootstrap, ("group", "term", "kind", "ci_low", "ci_high"), what)
    numbers = _numbers(bootstrap, ["ci_low", "ci_high"], what)
    limits = {}
    for row in numbers.itertuples(index=False):
        group, term, kind = (_text(x) for x in (row.group, row.term, row.kind))
        pair = (float(row.ci_low), float(row.ci_high))
        if kind == "fixed":
            limits[term] = pair
        elif kind in ("sd", "cor", "sigma", "nb_size"):
            limits[(group, term)] = pair
        elif kind == "icc":
            limits["icc"] = pair
    return limits


def _interval_limits(intervals: pd.DataFrame | None, what: str) -> dict:
    """(group, term) of a variance parameter, a fixed-effect term, or "icc" (the ICC
    row) -> (low, high) from intervals.csv; the grouping factors' shares (``VPC``
    rows) are not in the tables."""
    if intervals is None or intervals.empty:
        return {}
    _require(intervals, ("parameter", "group", "term", "ci_low", "ci_high"), what)
    numbers = _numbers(intervals, ["ci_low", "ci_high"], what)
    limits = {}
    iccs = []
    for row in numbers.itertuples(index=False):
        parameter, group, term = (_text(x) for x in (row.parameter, row.group, row.term))
        pair = (float(row.ci_low), float(row.ci_high))
        if parameter.startswith("ICC"):
            iccs.append(pair)
        elif parameter.startswith("VPC"):
            continue
        elif parameter.startswith("."):
            limits[(group, term)] = pair
        else:
            limits[term] = pair
    if len(iccs) == 1:
        limits["icc"] = iccs[0]
    return limits


def _fit_rows(fit: Mapping, min_cell: int, vocab: Vocabulary) -> list[dict]:
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
        rows.append(count_row(f"groups:{group}", f"Groups: {group_label(group, vocab)}", n))
    if fit.get("n_clusters") is not None:
        cluster = group_label(fit.get("cluster", "cluster"), vocab)
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
    vocab: Vocabulary | None = None,
    intervals: pd.DataFrame | None = None,
    fixed_intervals: str = "wald",
    bootstrap: pd.DataFrame | None = None,
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
    vocab : Vocabulary, optional
        The study's vocabulary, for the labels.
    intervals : pandas.DataFrame, optional
        The model's ``intervals.csv`` (profile-likelihood intervals,
        :meth:`resistance_outcomes.models.MixedResult.confint`): the random-effect SDs,
        correlations and the ICC get their limits from it.
    fixed_intervals : {"wald", "profile", "boot"}
        The fixed effects' intervals: the coefficient table's Wald limits, the profile
        limits of ``intervals``, or (``"boot"``, when ``bootstrap`` is given) the
        parametric-bootstrap percentile limits of ``bootstrap``, which then also give the
        random effects' limits; a term without such a limit keeps its Wald limits.
    bootstrap : pandas.DataFrame, optional
        The model's ``bootstrap.csv`` (:meth:`MixedResult.bootstrap`).

    Returns
    -------
    pandas.DataFrame
        Columns ``section`` (fixed, random, fit), ``term``, ``label``, ``statistic`` (b,
        SD, r, ICC, count, R2, AIC, theta), ``estimate`` (the value), ``std_error``,
        ``ci_low``, ``ci_high``, ``ratio``, ``ratio_ci_low``, ``ratio_ci_high`` (exp of
        estimate and limits for log and logit links), ``df``, ``p_value``, ``suppressed``,
        ``estimable`` (False for a coefficient the model could not identify) and ``note``
        (why not).

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
    vocab = vocabulary_or_default(vocab)
    name = spec.get("name", "model")
    facts = _family(spec.get("family", fit.get("family", "")))
    if fixed_intervals not in INTERVAL_METHODS:
        raise ConfigError(
            f"tables.intervals: {fixed_intervals!r}; use one of {', '.join(INTERVAL_METHODS)}"
        )
    if fixed_intervals == "boot" and bootstrap is not None and not bootstrap.empty:
        limits = _bootstrap_limits(bootstrap, f"bootstrap.csv of model '{name}'")
    else:
        limits = _interval_limits(intervals, f"intervals.csv of model '{name}'")
    if fixed_intervals in ("profile", "boot") and limits:
        coefficients = coefficients.copy()
        for i, term in coefficients["term"].astype(str).items():
            if term in limits:
                coefficients.loc[i, ["ci_low", "ci_high"]] = limits[term]
    rows = _fixed_rows(
        spec,
        coefficients,
        fit,
        facts.exponentiate,
        f"coefficients.csv of model '{name}'",
        vocab,
    )
    rows += _random_rows(
        spec, variance_components, fit, f"variance_components.csv of model '{name}'", vocab
    )
    for row in rows:  # profile limits of the SDs, correlations and the ICC
        if row["section"] == "random" and row.get("key") in limits:
            row["ci_low"], row["ci_high"] = limits[row["key"]]
        row.pop("key", None)
    rows += _fit_rows(fit, min_cell, vocab)
    data = pd.DataFrame(rows).reindex(columns=_DATA_COLUMNS)
    data["suppressed"] = data["suppressed"].astype("boolean").fillna(False).astype(bool)
    data["estimable"] = data["estimable"].astype("boolean").fillna(True).astype(bool)
    data["note"] = data["note"].map(_text)
    return data


def _fixed_cells(row, ratio: bool) -> list[str]:
    if not row.estimable:
        return [row.label, NOT_ESTIMABLE] + [""] * (5 if ratio else 3)
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
        title=title_case(f"{model_title(name)}: model not fitted"),
        columns=["Model", "Result"],
        rows=pd.DataFrame([[model_title(name), "not fitted"]]),
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


def _exclusion_reason(entry: Mapping, vocab: Vocabulary) -> str:
    """Why rows were left out, a missing variable named by its label."""
    column = entry.get("column")
    if column:
        return f"missing value in {lower_first(variable_label(column, vocab=vocab))}"
    return str(entry["reason"])


def _model_note(
    spec: Mapping,
    fit: Mapping,
    data: pd.DataFrame,
    min_cell: int,
    vocab: Vocabulary,
    fixed_intervals: str = "wald",
    replicates: int = 0,
) -> str:
    facts = _family(spec.get("family", ""))
    levels = spec.get("factor_levels") or {}
    parts = [
        f"Formula: {spec.get('formula', fit.get('formula', ''))}.",
        f"Family: {facts.words} with {facts.link_name} link; estimated by "
        f"{_estimation_words(spec, fit)}.",
    ]
    if spec.get("one_row_is"):
        parts.append(f"One observation is {spec['one_row_is']}.")
    if fit.get("method") == "GEE":
        parts.append(
            f"Population-averaged estimates; {fit.get('cov_struct', 'exchangeable')} working "
            f"correlation within {lower_first(group_label(fit.get('cluster', 'cluster'), vocab))}s "
            "(the random-effects terms of the formula only name the clusters)."
        )
    scale = facts.estimate_scale or "response"
    random = data[data["section"] == "random"]
    kind = "Wald"
    if fixed_intervals == "profile" and random["ci_low"].notna().any():
        kind = "profile-likelihood"
    elif fixed_intervals == "boot":
        kind = f"parametric-bootstrap percentile ({replicates:,} refits)"
    parts.append(
        f"b = estimate on the {scale} scale; SE = standard error; CI = {kind} confidence interval."
    )
    if random["ci_low"].notna().any():
        how = (
            "parametric-bootstrap percentile intervals"
            if fixed_intervals == "boot"
            else 'profile-likelihood intervals (as lme4\'s confint(method = "profile"))'
        )
        parts.append(f"The CIs of the random-effect SDs, correlations and the ICC are {how}.")
    if facts.exponentiate:
        parts.append(
            f"{facts.ratio} = {facts.ratio_name}, exp(b), with the exponentiated CI; for the "
            f"intercept it is the baseline {facts.baseline} at the reference levels with every "
            "other predictor at 0, not a ratio."
        )
    if levels:
        parts.append(
            "Reference levels: "
            + "; ".join(
                f"{lower_first(variable_label(f, vocab=vocab))} "
                f"{lower_first(level_label(f, lv[0], vocab))}"
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
            + "; ".join(
                f"{_exclusion_reason(e, vocab)} ({suppress_count(e['rows'], min_cell)})"
                for e in excluded
            )
            + "."
        )
    unidentified = data[~data["estimable"]]
    if len(unidentified):
        lines.append(
            "Not estimable: "
            + "; ".join(
                f"{row.label} ({_reason_text([row.note])})"
                for row in unidentified.itertuples(index=False)
            )
            + ". The data do not identify these estimates (e.g. a group without events); "
            "their numbers are not shown."
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
    vocab: Vocabulary | None = None,
    intervals: pd.DataFrame | None = None,
    fixed_intervals: str = "wald",
    bootstrap: pd.DataFrame | None = None,
) -> ApaTable:
    """APA table of one fitted model.

    Three panels: fixed effects (b, SE, 95% CI, then for logit and log links the odds or
    incidence-rate ratio exp(b) with its CI, and p); random effects (SDs, correlations and
    the adjusted ICC); model fit (observations, groups per grouping factor, marginal and
    conditional R², AIC, and for GEE fits clusters and working correlation). Each fixed
    row has two decimals, or more (up to four) when its SE would print as 0.00. The note
    gives formula, family and link, estimation method, reference levels, rows left out,
    coefficients that are not estimable (printed "not estimable", with the reason) and any
    flag (not converged, singular fit).

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
    vocab : Vocabulary, optional
        The study's vocabulary, for the labels.
    intervals, fixed_intervals, bootstrap
        As :func:`model_table_data`: profile-likelihood intervals of the random effects
        (and, with ``fixed_intervals="profile"``, of the fixed effects), or with
        ``"boot"`` the bootstrap's of both; the note says which intervals the table shows.

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
    vocab = vocabulary_or_default(vocab)
    data = model_table_data(
        spec,
        coefficients,
        variance_components,
        fit,
        min_cell,
        vocab,
        intervals,
        fixed_intervals,
        bootstrap,
    )
    booted = fixed_intervals == "boot" and bootstrap is not None and not bootstrap.empty
    shown = fixed_intervals if booted or fixed_intervals != "boot" else "wald"
    facts = _family(spec.get("family", ""))
    ratio = facts.exponentiate
    columns = ["Term", "b", "SE", "95% CI"]
    if ratio:
        columns += [facts.ratio, "95% CI"]
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
                limits = ""
                if section == "random" and pd.notna(row.ci_low) and pd.notna(row.ci_high):
                    limits = _random_interval(row)
                cells.append([row.label, _value_cell(row, min_cell), "", limits])
                cells[-1] += [""] * (width - 4)
    spanners = None
    if ratio:
        scale = str(facts.estimate_scale).replace("-", " ").capitalize()
        spanners = [("", 1), (scale, 3), (facts.ratio_name.capitalize(), 2), ("", 1)]
    description = model_title(name, spec)
    kind = "GEE model" if fit.get("method") == "GEE" else f"{facts.model_words} mixed-effects model"
    return ApaTable(
        number=number,
        title=title_case(f"{description}: {kind}"),
        columns=columns,
        rows=pd.DataFrame(cells, dtype=object),
        spanners=spanners,
        row_groups=groups,
        note=_model_note(spec, fit, data, min_cell, vocab, shown, _bootstrap_replicates(bootstrap)),
        probability_note=_probability_words(data),
    )


def _bootstrap_replicates(bootstrap: pd.DataFrame | None) -> int:
    """The refits behind bootstrap.csv's intervals (the fewest of its quantities)."""
    if bootstrap is None or "replicates" not in bootstrap.columns or bootstrap.empty:
        return 0
    return int(pd.to_numeric(bootstrap["replicates"], errors="coerce").min())


def _random_interval(row) -> str:
    """The profile interval of an SD, correlation or ICC, formatted as its value is."""
    if row.statistic in ("r", "ICC"):
        return f"[{format_bounded(row.ci_low)}, {format_bounded(row.ci_high)}]"
    decimals = _decimals(row.estimate)
    return format_ci(row.ci_low, row.ci_high, decimals)


# --------------------------------------------------------------------------- combined


def combined_table(
    models: Sequence[tuple[str, Mapping, pd.DataFrame, pd.DataFrame, Mapping]],
    number: int,
    min_cell: int = 5,
    vocab: Vocabulary | None = None,
) -> ApaTable:
    """The main models side by side: per model "estimate [95% CI]" and p.

    For logit and log links the cell holds the odds or incidence-rate ratio and its CI, for
    identity links b. Rows: the union of the models' fixed-effect terms in order of first
    appearance (a dash where a model has no such term), then observations, groups per
    grouping factor, adjusted ICC, marginal and conditional R² and AIC. Models that were not
    fitted are named in the note; a term a model could not identify reads "not estimable".

    Parameters
    ----------
    models : sequence of (name, spec, coefficients, variance_components, fit)
        One tuple per model, in the order of the columns.
    number : int
        Table number.
    min_cell : int, default 5
        Counts from 1 to ``min_cell - 1`` are shown as "<min_cell".
    vocab : Vocabulary, optional
        The study's vocabulary, for the labels.

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
    vocab = vocabulary_or_default(vocab)
    data = combined_table_data(models, min_cell, vocab)
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
        facts = _family(specs[name].get("family", ""))
        links[name] = facts
        columns += [f"{facts.ratio or 'b'} [95% CI]", "p"]
        spanners.append((model_title(name), 2))
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
    vocab: Vocabulary | None = None,
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
            {**spec, "name": name}, coefficients, variance_components, fit, min_cell, vocab
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


def _combined_cells(match: pd.DataFrame, facts) -> list[str]:
    if match.empty:
        return [MISSING, MISSING]
    row = match.iloc[0]
    if not row["estimable"]:
        return [NOT_ESTIMABLE, ""]
    decimals = _decimals(row["std_error"])
    keys = (
        ("ratio", "ratio_ci_low", "ratio_ci_high")
        if facts.exponentiate
        else ("estimate", "ci_low", "ci_high")
    )
    value, low, high = (row[k] for k in keys)
    if facts.exponentiate:
        decimals = _ratio_decimals(decimals, low)
    cell = f"{format_number(value, decimals)} {format_ci(low, high, decimals)}"
    return [cell, format_p(row["p_value"])]


def _combined_note(models, fitted, links, data, min_cell) -> str:
    described = []
    for name, spec, *_rest in models:
        if name not in fitted:
            continue
        facts = links[name]
        scale = f"{facts.ratio_name}s" if facts.exponentiate else "estimates (b)"
        described.append(f"{model_title(name)}: {spec.get('formula', '')} ({facts.words}; {scale})")
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
    unidentified = data[(data["section"] == "fixed") & ~data["estimable"]]
    if len(unidentified):
        lines.append(
            "Not estimable: "
            + "; ".join(
                f"{model_title(row.model)}, {row.label} ({_reason_text([row.note])})"
                for row in unidentified.itertuples(index=False)
            )
            + "."
        )
    skipped = [model_title(name) for name, *_ in models if name not in fitted]
    if skipped:
        lines.append("Not fitted: " + ", ".join(skipped) + ".")
    flagged = [
        f"{model_title(name)} ({'; '.join(_flags(fit))})"
        for name, *_, fit in models
        if name in fitted and _flags(fit)
    ]
    if flagged:
        lines.append("Flags: " + ", ".join(flagged) + "; read these estimates with caution.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- contrasts


def _contrast_label(row: Mapping, vocab: Vocabulary | None = None) -> str:
    """ "Psychoanalytic vs. cognitive (arguing)" or "Session (centred): cognitive"."""
    by = f" ({lower_first(level_label(None, row['by'], vocab))})" if row["by"] else ""
    if row["kind"] == "pairwise":
        factor = row["variable"] or None
        level = level_label(factor, row["level"], vocab)
        reference = lower_first(level_label(factor, row["reference"], vocab))
        return f"{level} vs. {reference}{by}"
    variable = variable_label(str(row["variable"]), vocab=vocab)
    return f"{variable}: {lower_first(level_label(None, row['level'], vocab))}{by}"


def _clean_contrasts(
    contrasts: pd.DataFrame, what: str, fit: Mapping | None = None
) -> pd.DataFrame:
    """Contrasts with numbers as floats, text columns as text, and ``estimable`` and
    ``note`` (why not; from the table's ``note`` column, else the fit's reasons)."""
    _require(contrasts, _CONTRAST_COLUMNS, what)
    out = _numbers(
        contrasts, ["estimate", "std_error", "ci_low", "ci_high", "p_value", "p_adjusted"], what
    )
    for column in ("kind", "variable", "level", "reference", "by", "adjustment"):
        out[column] = out[column].map(_text)
    out["estimable"] = estimable(out).to_numpy()
    notes = out["note"].map(_text) if "note" in out.columns else pd.Series("", index=out.index)
    fallback = "; ".join(r for r in dict.fromkeys(not_estimable_reasons(fit or {}).values()) if r)
    out["note"] = [
        "" if ok else (note or fallback) for ok, note in zip(out["estimable"], notes, strict=True)
    ]
    return out


def contrasts_table(
    models: Sequence[tuple], number: int, vocab: Vocabulary | None = None
) -> ApaTable:
    """Framework contrasts and simple slopes of the models, one panel per model.

    Columns: contrast, b, 95% CI, the odds or incidence-rate ratio exp(b) with its CI (log
    and logit links), p and the adjusted p; the note names the adjustment. Pairwise
    contrasts read "Psychoanalytic vs. cognitive" (level minus reference on the link scale,
    so the ratio is level / reference); simple slopes read "<predictor>: <framework>". A
    contrast the model could not identify reads "not estimable", its reason in the note.

    Parameters
    ----------
    models : sequence of (name, spec, contrasts) or (name, spec, contrasts, fit)
        ``contrasts`` is the model's ``contrasts.csv``; models without contrasts are left
        out. ``fit`` (``fit.json``) gives the reasons of estimates that are not estimable.
    number : int
        Table number.
    vocab : Vocabulary, optional
        The study's vocabulary, for the labels.

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
    cells, groups, adjustments, unidentified = [], [], {}, []
    for name in dict.fromkeys(data["model"]):
        part = data[data["model"] == name]
        spec = next(entry[1] for entry in models if entry[0] == name)
        facts = _family(spec.get("family", ""))
        scale = f"{facts.ratio_name}s" if facts.exponentiate else "differences in b"
        groups.append((f"{model_title(name)} ({scale})", len(part)))
        for row in part.to_dict("records"):
            label = _contrast_label(row, vocab)
            if not row["estimable"]:
                cells.append([label, NOT_ESTIMABLE, "", "", "", "", ""])
                unidentified.append(f"{model_title(name)}, {label} ({_reason_text([row['note']])})")
                continue
            decimals = _decimals(row["std_error"])
            ratio = ["", ""]
            if facts.exponentiate:
                places = _ratio_decimals(decimals, row["ratio_ci_low"])
                ratio = [
                    format_number(row["ratio"], places),
                    format_ci(row["ratio_ci_low"], row["ratio_ci_high"], places),
                ]
            cells.append(
                [
                    label,
                    format_number(row["estimate"], decimals),
                    format_ci(row["ci_low"], row["ci_high"], decimals),
                    *ratio,
                    format_p(row["p_value"]),
                    format_p(row["p_adjusted"]),
                ]
            )
            adjustments.setdefault(row["adjustment"], []).append(model_title(name))
    note = _contrasts_note(adjustments)
    if unidentified:
        note += "\nNot estimable: " + "; ".join(unidentified) + "."
    return ApaTable(
        number=number,
        title="Framework Contrasts and Simple Slopes",
        columns=["Contrast", "b", "95% CI", "Ratio", "95% CI", "p", "Adjusted p"],
        rows=pd.DataFrame(cells, dtype=object),
        row_groups=groups,
        note=note,
        probability_note="p values are two-sided Wald tests; values below .001 are shown as "
        "< .001.",
    )


def contrasts_table_data(models: Sequence[tuple]) -> pd.DataFrame:
    """The numbers of :func:`contrasts_table`: the models' contrasts with a ``model`` column,
    the ratio and its CI recomputed as exp of the estimate and limits (log and logit
    links; empty otherwise), ``estimable`` and ``note`` (why not).

    Examples
    --------
    >>> import pandas as pd
    >>> contrasts_table_data([("m", {"family": "gaussian"}, pd.DataFrame())]).empty
    True
    """
    frames = []
    for entry in models:
        name, spec, contrasts = entry[:3]
        fit = entry[3] if len(entry) > 3 else {}
        if contrasts is None or contrasts.empty:
            continue
        data = _clean_contrasts(contrasts, f"contrasts.csv of model '{name}'", fit)
        ratio = _family(spec.get("family", "")).exponentiate
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
            try:
                words.append(f"{family_facts(value).words} family")
            except ResultsError:
                words.append(f"{value} family")
        elif key == "method":
            words.append("population-averaged (GEE)" if value == "gee" else f"method {value}")
        elif key == "min_attended":
            words.append(f"clients with at least {value} attended sessions")
        elif key == "dropout":
            words.append(f"dropout definition: {lower_first(humanise(value))}")
        else:
            words.append(item)
    text = "; ".join(words)
    return text[:1].upper() + text[1:]


def sensitivity_publication_table(
    table: pd.DataFrame, number: int, vocab: Vocabulary | None = None
) -> ApaTable:
    """The sensitivity analyses: each contrast under the main analysis and its variants.

    One panel per model; within it, one block of rows per contrast (framework comparison or
    simple slope), one row per analysis (main analysis first). Cells hold the odds or
    incidence-rate ratio (or, for linear models, b) with its 95% CI, p and adjusted p. †
    marks an analysis with a flag (not converged, singular fit, not fitted), named in the
    note. A row marked not estimable (column ``estimable`` false, when present) reads "not
    estimable".

    Parameters
    ----------
    table : pandas.DataFrame
        ``results/sensitivity/sensitivity_table.csv``
        (:func:`resistance_outcomes.sensitivity.sensitivity_table`).
    number : int
        Table number.
    vocab : Vocabulary, optional
        The study's vocabulary, for the labels.

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
    data["estimable"] = estimable(data).to_numpy()
    cells, groups, flagged = [], [], {}
    for model, part in data.groupby("model", sort=False):
        kinds = part["ratio_kind"].replace("", np.nan).dropna()
        scale = (
            f"{kinds.iloc[0]}s"  # ratio_kind is the family's ratio_name
            if len(kinds)
            else ("differences in b")
        )
        start = len(cells)
        keys = ["kind", "variable", "level", "reference", "by"]
        for _, rows in part.groupby(keys, sort=False):
            first = rows.iloc[0]
            label = _contrast_label(first, vocab) if first["kind"] else "All contrasts"
            for i, row in enumerate(rows.to_dict("records")):
                mark = " \u2020" if row["flags"] else ""
                if row["flags"]:
                    analysis = (
                        f"{model_title(model)}, {lower_first(_analysis_label(row['changes']))}"
                    )
                    flagged[analysis] = row["flags"]
                cells.append(
                    [
                        label if i == 0 else "",
                        _analysis_label(row["changes"]) + mark,
                        *_sensitivity_cells(row),
                    ]
                )
        groups.append((f"{model_title(model)} ({scale})", len(cells) - start))
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
    if row["kind"] and not row["estimable"]:
        return [NOT_ESTIMABLE, "", ""]
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


def table1_publication(
    long: pd.DataFrame, number: int, min_cell: int, not_assessed: Sequence[str] = ()
) -> ApaTable:
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
    not_assessed : sequence of str
        Sentences naming the parts of the analysis without data ("Alliance: not assessed
        (no alliance ratings)."), added to the note.

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
    if not_assessed:
        note += "\n" + " ".join(not_assessed)
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


def not_assessed_table(number: int, title: str, what: str, reason: str) -> ApaTable:
    """A table standing in for a part of the analysis that had no data, so that every
    declared table exists and the report renders.

    Examples
    --------
    >>> table = not_assessed_table(2, "Inter-Rater Reliability", "Inter-rater reliability",
    ...                            "no double-coded sessions")
    >>> table.rows.values.tolist()
    [['Inter-rater reliability', 'not assessed: no double-coded sessions']]
    >>> table.note
    'Inter-rater reliability: not assessed (no double-coded sessions).'
    """
    return ApaTable(
        number=number,
        title=title,
        columns=["Part of the analysis", "Result"],
        rows=pd.DataFrame([[what, f"not assessed: {reason}"]], dtype=object),
        note=not_assessed_text(Stage(False, reason), what),
    )


def _placeholder(name: str, title: str, what: str, reason: str):
    raw = pd.DataFrame({"table": [name], "assessed": [False], "reason": [reason]})
    return (name, lambda n: not_assessed_table(n, title, what, reason), raw)


def _stage_sentences(vocab: Vocabulary, names: Sequence[str]) -> list[str]:
    """ "<Part>: not assessed (<reason>)." for each named stage the vocabulary records as
    not assessed (stages it does not record are left out)."""
    return [
        not_assessed_text(vocab.stages[name], stage_words(name, vocab))
        for name in names
        if name in vocab.stages and not vocab.stages[name].assessed
    ]


def publication_tables(
    models: Sequence[Mapping],
    *,
    table1_long: pd.DataFrame | None = None,
    reliability: pd.DataFrame | None = None,
    reliability_sample: Mapping | None = None,
    sensitivity: pd.DataFrame | None = None,
    main_models: Sequence[str] = (),
    min_cell: int = 5,
    vocab: Vocabulary | None = None,
    fixed_intervals: str = "wald",
) -> dict[str, tuple[ApaTable, pd.DataFrame]]:
    """Every publication table, numbered in order, with the numbers behind it.

    Order and names: ``table1`` (descriptives), ``reliability``, ``models_combined`` (when
    ``main_models`` names a model given), ``contrasts``, ``sensitivity`` (when a sensitivity
    table is given), then ``model_<name>`` for each model. Each of these exists in every
    case: a part without data (no double-coded sessions, no contrasts, no main model
    fitted) gets a one-row table saying "not assessed" and why, so the files the workflow
    declares are always written.

    Parameters
    ----------
    models : sequence of mapping
        The configured models (not sensitivity variants), each as :func:`read_model_folder`
        returns it.
    table1_long, reliability, sensitivity : pandas.DataFrame, optional
        ``table1.csv``, ``reliability.csv`` and ``sensitivity_table.csv``.
    reliability_sample : mapping, optional
        Reliability sample description for the reliability note.
    main_models : sequence of str
        Models placed side by side in the combined table (config ``tables.main_models``;
        the workflow's default is the summary's leading models).
    min_cell : int, default 5
        Smallest count shown.
    vocab : Vocabulary, optional
        The study's vocabulary: labels, framework names, and which stages had data (a
        reliability stage recorded as not assessed gives the placeholder table).

    fixed_intervals : {"wald", "profile", "boot"}
        The fixed effects' intervals in the model tables (config ``tables.intervals``); the
        random effects' are their profile-likelihood intervals whenever a model folder has
        ``intervals.csv``, or with ``"boot"`` the bootstrap's for a model with
        ``bootstrap.csv`` (the others keep Wald and profile intervals).

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
    vocab = vocabulary_or_default(vocab)
    builders = []
    parts = _stage_sentences(vocab, ("ruptures", "repair", "profile", "alliance", "psq"))
    if table1_long is not None and not table1_long.empty:
        builders.append(
            (
                "table1",
                lambda n: table1_publication(table1_long, n, min_cell, parts),
                table1_long,
            )
        )
    else:
        builders.append(
            _placeholder(
                "table1",
                "Sample Characteristics by Therapeutic Framework",
                "Sample characteristics",
                "no clients in the analysis tables",
            )
        )
    stage = vocab.stages.get("reliability")
    if stage is not None and not stage.assessed:
        reason = stage.reason
    elif reliability is None or reliability.empty:
        reason = (reliability_sample or {}).get("reason") or "no double-coded sessions"
    else:
        reason = ""
    if reason:
        builders.append(
            _placeholder(
                "reliability",
                "Inter-Rater Reliability",
                stage_words("reliability", vocab),
                reason,
            )
        )
    else:
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
    if main:
        combined = combined_table_data(main, min_cell, vocab)
        if combined.shape[0]:
            builders.append(
                ("models_combined", lambda n: combined_table(main, n, min_cell, vocab), combined)
            )
        else:
            names = ", ".join(model_title(t[0]) for t in main)
            builders.append(
                _placeholder(
                    "models_combined",
                    "Main Mixed-Effects Models Side by Side",
                    "Main models",
                    f"none of the main models was fitted ({names})",
                )
            )
    with_contrasts = [(m["name"], m["spec"], m["contrasts"], m["fit"]) for m in models]
    contrasts = contrasts_table_data(with_contrasts)
    if not contrasts.empty:
        builders.append(
            ("contrasts", lambda n: contrasts_table(with_contrasts, n, vocab), contrasts)
        )
    else:
        builders.append(
            _placeholder(
                "contrasts",
                "Framework Contrasts and Simple Slopes",
                "Framework contrasts and simple slopes",
                "no model has contrasts (configure them under a model's `contrasts:` key)",
            )
        )
    if sensitivity is not None:
        if not sensitivity.empty:
            builders.append(
                (
                    "sensitivity",
                    lambda n: sensitivity_publication_table(sensitivity, n, vocab),
                    sensitivity,
                )
            )
        else:
            builders.append(
                _placeholder(
                    "sensitivity",
                    "Sensitivity Analyses of the Framework Contrasts",
                    "Sensitivity analyses",
                    "no contrasts to compare across the variants",
                )
            )
    intervals = {m["name"]: m.get("intervals") for m in models}
    boots = {m["name"]: m.get("bootstrap") for m in models}
    for name, spec, coefficients, vc, fit in tuples:
        options = {
            "intervals": intervals.get(name),
            "fixed_intervals": fixed_intervals,
            "bootstrap": boots.get(name),
        }
        raw = (
            model_table_data(
                {**spec, "name": name}, coefficients, vc, fit, min_cell, vocab, **options
            )
            if fit.get("fitted") is not False
            else pd.DataFrame({"model": [name], "fitted": [False]})
        )
        builders.append(
            (
                f"model_{name}",
                _model_builder(name, spec, coefficients, vc, fit, min_cell, vocab, options),
                raw,
            )
        )
    return {name: (build(i), raw) for i, (name, build, raw) in enumerate(builders, start=1)}


def _model_builder(name, spec, coefficients, vc, fit, min_cell, vocab, options):
    return lambda n: model_table(
        {**spec, "name": name}, coefficients, vc, fit, n, min_cell, vocab, **options
    )
