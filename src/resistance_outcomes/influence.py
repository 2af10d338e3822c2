"""Influence of single groups: leave one therapist (or any group) out, refit, compare.

- :func:`leave_one_out`: refit a mixed model once per left-out level of a grouping column
  (therapists in practice) and report, per left-out level, every key estimate without it:
  the fixed effects, the model's framework contrasts and simple slopes (as its
  ``contrasts.csv`` holds them, :func:`resistance_outcomes.contrasts.framework_contrasts`),
  the random-effect SDs and correlations and the negative-binomial size, with the change,
  the change scaled by a standard error, and whether a main contrast changes its sign or
  moves its p value across ``alpha``;
- :func:`influence_overview`: one row per left-out level: its largest scaled change, the
  change in the grouping factor's SD, and whether it moves a main result;
- :func:`influential_changes`: the main contrasts whose significance one left-out level
  changes, or whose sign it reverses while significant (what the summary page states).

The definitions follow lme4's ``influence.merMod`` (lme4 1.1-31) with ``groups =`` the
grouping column: each refit is the model fitted to the rows without that level, started
at the full fit's covariance parameters; ``change`` is lme4's ``dfbeta``, the estimate
without the level minus the full fit's estimate; ``dfbetas`` is lme4's ``dfbetas``, the
change divided by the standard error *of the refit without the level*
(``sqrt(diag(vcov(refit)))``). ``scaled_change`` divides the change by the standard error
of the *full* fit instead, so that every left-out level of a term is measured against the
same yardstick (the scale of the figure). For single-case deletion in linear regression
the size-adjusted cut-off of Belsley, Kuh & Welsch (1980) is ``|DFBETAS| > 2 / sqrt(n)``;
with groups deleted, ``n`` is the number of groups (as influence.ME's ``dfbetas`` is read,
Nieuwenhuis, te Grotenhuis & Pelzer, 2012): :func:`dfbetas_cutoff`.

Contrasts (``pairwise``, ``simple_slope``) are recomputed on every refit with the same
multiplicity adjustment as the model's ``contrasts.csv`` (their p values are the adjusted
ones, column ``adjustment``), so that "significant" means what it means in the summary;
coefficients carry their unadjusted p values.

A refit that raises (e.g. a fixed-effect level that only the left-out therapist had makes
the design rank deficient) is reported as failed, with its message, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from .analysis import ContrastSpec, ModelSpec, fit_model
from .contrasts import ADJUSTMENTS, framework_contrasts
from .models import MixedResult, ModelSpecError, build_design, get_family
from .models.refit import refit as refit_design
from .models.refit import warm_design
from .power.simulate import _label_contrasts

__all__ = [
    "INFLUENCE_COLUMNS",
    "OVERVIEW_COLUMNS",
    "dfbetas_cutoff",
    "influence_overview",
    "influential_changes",
    "leave_one_out",
    "read_influence",
]

#: Columns of :func:`leave_one_out`: one row per left-out level and estimate.
INFLUENCE_COLUMNS = [
    "group",
    "left_out",
    "rows_left_out",
    "kind",
    "term",
    "variable",
    "level",
    "reference",
    "by",
    "main",
    "estimate_full",
    "std_error_full",
    "p_full",
    "adjustment",
    "estimate",
    "std_error",
    "p_value",
    "change",
    "relative_change",
    "scaled_change",
    "dfbetas",
    "sign_changed",
    "significance_changed",
    "failed",
    "converged",
    "singular",
    "error",
]
#: Columns of :func:`influence_overview`: one row per left-out level.
OVERVIEW_COLUMNS = [
    "group",
    "left_out",
    "rows_left_out",
    "max_abs_dfbetas",
    "max_abs_scaled_change",
    "term_of_max",
    "group_sd_full",
    "group_sd",
    "group_sd_change",
    "main_changes",
    "failed",
    "error",
]
_CONTRAST_KINDS = ("pairwise", "simple_slope")
_TESTED = ("coefficient", *_CONTRAST_KINDS)


def dfbetas_cutoff(n_groups: int) -> float:
    """The size-adjusted cut-off ``2 / sqrt(n)`` of ``|DFBETAS|`` for ``n`` deleted groups
    (Belsley, Kuh & Welsch, 1980).

    Examples
    --------
    >>> round(dfbetas_cutoff(45), 4)
    0.2981
    """
    if int(n_groups) < 1:
        raise ModelSpecError(f"the number of groups must be at least 1, got {n_groups!r}")
    return 2.0 / float(np.sqrt(int(n_groups)))


# --------------------------------------------------------------------------- estimates


def _estimates(fit, contrasts: ContrastSpec | None, adjust: str, design=None) -> pd.DataFrame:
    """The key estimates of one fit: kind, term, variable, level, reference, by, estimate,
    std_error, p_value, adjustment. The contrasts are built on ``design`` when given (the
    full fit's, whose fixed-effects columns a refit shares: its contrast matrices are then
    built once for all refits)."""
    coefficients = fit.coefficients
    parts = [
        pd.DataFrame(
            {
                "kind": "coefficient",
                "term": coefficients["term"],
                "variable": "",
                "level": "",
                "reference": "",
                "by": "",
                "estimate": coefficients["estimate"],
                "std_error": coefficients["std_error"],
                "p_value": coefficients["p_value"],
                "adjustment": "none",
            }
        )
    ]
    if contrasts is not None:
        on = fit if design is None else replace(fit, design=design)
        table = framework_contrasts(on, contrasts, adjust=adjust)
        if not table.empty:
            table = table.fillna({"by": "", "reference": ""})
            terms = pd.Series(index=table.index, dtype=object)
            for kind in _CONTRAST_KINDS:
                mine = table["kind"] == kind
                if mine.any():
                    terms[mine] = _label_contrasts(table[mine], kind)
            parts.append(
                pd.DataFrame(
                    {
                        "kind": table["kind"],
                        "term": terms,
                        "variable": table["variable"].astype(str),
                        "level": table["level"].astype(str),
                        "reference": table["reference"].astype(str),
                        "by": table["by"].astype(str),
                        "estimate": table["estimate"],
                        "std_error": table["std_error"],
                        "p_value": table["p_adjusted"],
                        "adjustment": table["adjustment"],
                    }
                )
            )
    rows = []
    for row in fit.variance_components.itertuples(index=False):
        term1 = "" if pd.isna(row.term1) or row.term1 in ("nan", "None") else row.term1
        term2 = "" if pd.isna(row.term2) or row.term2 in ("nan", "None") else row.term2
        if np.isfinite(row.sd):
            term = row.group if not term1 else f"{row.group}: {term1}"
            rows.append(("sd", term, row.group, row.sd))
        else:
            rows.append(("corr", f"{row.group}: {term1}, {term2}", row.group, row.corr))
    if fit.nb_theta is not None:
        rows.append(("nb_size", "negative-binomial size", "", float(fit.nb_theta)))
    if rows:
        kind, term, variable, value = zip(*rows, strict=True)
        parts.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "term": term,
                    "variable": variable,
                    "level": "",
                    "reference": "",
                    "by": "",
                    "estimate": np.asarray(value, dtype=float),
                    "std_error": np.nan,
                    "p_value": np.nan,
                    "adjustment": "",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- refits


def _method_settings(result: MixedResult) -> tuple[bool, int]:
    """REML and quadrature points of a fit, from its method ("REML", "ML", "Laplace",
    "AGQ(25)")."""
    match = re.fullmatch(r"AGQ\((\d+)\)", str(result.method))
    return result.method == "REML", int(match[1]) if match else 1


def _full_fit(result_or_spec, frame, contrasts):
    if isinstance(result_or_spec, ModelSpec):
        spec = result_or_spec
        if spec.method != "mixed":
            raise ModelSpecError(
                f"model '{spec.name}' is a population-averaged ({spec.method}) fit; leaving "
                "groups out is for mixed models (method: mixed)"
            )
        fit = fit_model(spec, frame)
        return fit, spec.contrasts if contrasts is None else contrasts, spec.reml, spec.nagq
    if not isinstance(result_or_spec, MixedResult):
        raise ModelSpecError(
            "leave_one_out takes a fitted MixedResult or a ModelSpec (analysis."
            f"parse_model_spec), got {type(result_or_spec).__name__}"
        )
    reml, nagq = _method_settings(result_or_spec)
    return result_or_spec, contrasts, reml, nagq


def _check_frame(fit: MixedResult, frame: pd.DataFrame, group: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ModelSpecError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if group not in frame.columns:
        raise ModelSpecError(
            f"the grouping column {group!r} is not a column of the model frame (columns: "
            f"{', '.join(map(str, frame.columns))}); name the column whose levels are left out"
        )
    design = build_design(fit.design.formula.formula, frame)
    if design.n != fit.design.n or design.fixed_names != fit.design.fixed_names:
        raise ModelSpecError(
            f"the frame gives {design.n} complete rows and terms {design.fixed_names}, but the "
            f"model was fitted to {fit.design.n} rows with terms {fit.design.fixed_names}; "
            "pass the frame the model was fitted to (its model_frame.csv)"
        )


def _group_levels(frame: pd.DataFrame, group: str, design_index) -> list:
    values = frame.loc[design_index, group]
    if values.isna().any():
        raise ModelSpecError(
            f"the grouping column {group!r} has missing values in rows the model uses; every "
            "fitted row must belong to a level that can be left out"
        )
    return list(pd.Categorical(values).remove_unused_categories().categories)


def _compare(full: pd.DataFrame, refit: pd.DataFrame, alpha: float) -> pd.DataFrame:
    out = full.rename(
        columns={"estimate": "estimate_full", "std_error": "std_error_full", "p_value": "p_full"}
    )
    key = ["kind", "term"]
    refit = refit.set_index(key)[["estimate", "std_error", "p_value"]]
    matched = refit.reindex(pd.MultiIndex.from_frame(out[key]))
    for column in ("estimate", "std_error", "p_value"):
        out[column] = matched[column].to_numpy(dtype=float)
    out["change"] = out["estimate"] - out["estimate_full"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["relative_change"] = out["change"] / out["estimate_full"].abs()
        out["scaled_change"] = out["change"] / out["std_error_full"]
        out["dfbetas"] = out["change"] / out["std_error"]
    tested = out["kind"].isin(_TESTED).to_numpy()
    both = tested & np.isfinite(out["estimate"].to_numpy(dtype=float))
    out["sign_changed"] = both & (
        np.sign(out["estimate"].to_numpy(dtype=float))
        != np.sign(out["estimate_full"].to_numpy(dtype=float))
    )
    was = out["p_full"].to_numpy(dtype=float) < alpha
    now = out["p_value"].to_numpy(dtype=float) < alpha
    finite = both & np.isfinite(out["p_value"].to_numpy(dtype=float))
    out["significance_changed"] = np.select(
        [finite & was & ~now, finite & ~was & now], ["lost", "gained"], ""
    )
    return out


def leave_one_out(
    result_or_spec,
    frame: pd.DataFrame,
    group: str = "therapist",
    *,
    contrasts: ContrastSpec | None = None,
    adjust: str = "holm",
    alpha: float = 0.05,
    levels: Sequence | None = None,
    warm_start: bool = True,
    control: dict | None = None,
) -> pd.DataFrame:
    """Refit a mixed model leaving out one level of a grouping column at a time.

    Parameters
    ----------
    result_or_spec : MixedResult or ModelSpec
        The full fit (fitted to ``frame``), or a model spec (fitted here; its
        ``contrasts``, ``reml`` and ``nagq`` are used).
    frame : pandas.DataFrame
        The rows the model is fitted to (a model's ``model_frame.csv``, read with
        :func:`resistance_outcomes.analysis.read_model_frame`).
    group : str
        The column whose levels are left out one at a time (any column of ``frame``; the
        model's grouping factor ``therapist`` in practice).
    contrasts : ContrastSpec, optional
        Contrasts recomputed on every refit (default: the spec's; none for a bare fit).
    adjust : {"holm", "bh", "none"}
        Their multiplicity adjustment, as in the model's ``contrasts.csv``.
    alpha : float
        Level at which a p value counts as significant.
    levels : sequence, optional
        Only these levels are left out (e.g. one chunk of a workflow job); default all, in
        sorted order.
    warm_start : bool
        Start each refit's covariance parameters at the full fit's (as lme4's
        ``influence.merMod`` does with ``start``); zero variances start at 0.1.
    control : dict, optional
        Optimizer settings, as :func:`resistance_outcomes.models.fit_mixed` takes them.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`INFLUENCE_COLUMNS`, one row per left-out level and estimate:
        ``kind`` (``coefficient``, ``pairwise``, ``simple_slope``, ``sd``, ``corr``,
        ``nb_size``), ``term`` (coefficient name, ``"level - reference | by"``,
        ``"variable in level | by"``, ``"group: coefficient"`` for an SD, ``Residual``),
        ``main`` (a framework contrast or simple slope: the model's main results),
        ``estimate_full``, ``std_error_full``, ``p_full`` (full fit), ``estimate``,
        ``std_error``, ``p_value`` (without the level; contrasts' p values adjusted as
        named in ``adjustment``), ``change`` = estimate - estimate_full (lme4's
        ``dfbeta``), ``relative_change`` = change / abs(estimate_full), ``scaled_change``
        = change / std_error_full, ``dfbetas`` = change / std_error (lme4's
        ``dfbetas``: the refit's standard error), ``sign_changed`` and
        ``significance_changed`` (``"lost"``, ``"gained"`` or empty, at ``alpha``) for
        coefficients and contrasts; ``failed``, ``converged``, ``singular`` and ``error``
        of the refit (a failed refit has empty estimates and its message).

    Raises
    ------
    ModelSpecError
        For a grouping column the frame lacks, a frame the model was not fitted to, an
        unknown level or adjustment, or a population-averaged spec.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(6), 8)
    >>> df = pd.DataFrame({"g": g.astype(str), "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=6)[g] + rng.normal(size=48)
    >>> fit = fit_mixed("y ~ x + (1 | g)", df)
    >>> table = leave_one_out(fit, df, group="g")
    >>> table.query("term == 'x'")[["left_out", "change"]].round(3).head(2)
      left_out  change
    1        0   0.026
    5        1  -0.006
    >>> bool(table["failed"].any())
    False
    """
    if adjust not in ADJUSTMENTS:
        raise ModelSpecError(f"adjust {adjust!r} is not one of {', '.join(ADJUSTMENTS)}")
    if not 0 < alpha < 1:
        raise ModelSpecError(f"alpha must lie between 0 and 1, got {alpha!r}")
    fit, contrasts, reml, nagq = _full_fit(result_or_spec, frame, contrasts)
    _check_frame(fit, frame, group)
    family = get_family(fit.family).name
    formula = fit.design.formula.formula
    used = frame.loc[fit.design.frame.index]
    every = _group_levels(frame, group, fit.design.frame.index)
    if levels is None:
        chosen = every
    else:
        by_text = {str(v): v for v in every}
        unknown = [v for v in levels if str(v) not in by_text]
        if unknown:
            raise ModelSpecError(
                f"level(s) {unknown} of {group!r} are not in the rows the model uses "
                f"({len(every)} levels: {', '.join(map(str, every[:10]))}"
                f"{', ...' if len(every) > 10 else ''})"
            )
        chosen = [by_text[str(v)] for v in levels]
    full = _estimates(fit, contrasts, adjust)
    full["main"] = full["kind"].isin(_CONTRAST_KINDS)
    labels = used[group].astype(str).to_numpy()
    rows = []
    for level in chosen:
        keep = labels != str(level)
        reduced = used.loc[keep]
        flags = {"failed": False, "converged": True, "singular": False, "error": ""}
        try:
            design = build_design(formula, reduced)
            lost = [t for t in fit.design.fixed_names if t not in design.fixed_names]
            if lost:
                raise ModelSpecError(
                    f"without {group} {level} the fixed-effects design lacks term(s) "
                    f"{', '.join(lost)} (a factor level that only this {group} has)"
                )
            if warm_start:
                design = warm_design(design, fit.theta)
            refit = refit_design(design, family, design.y, reml, control, nagq)
            estimates = _estimates(refit, contrasts, adjust, design=fit.design)
            flags["converged"], flags["singular"] = bool(refit.converged), bool(refit.singular)
        except Exception as err:  # a refit that raises is reported, never dropped
            estimates = full[["kind", "term"]].assign(
                estimate=np.nan, std_error=np.nan, p_value=np.nan
            )
            flags = {
                "failed": True,
                "converged": False,
                "singular": False,
                "error": f"{type(err).__name__}: {err}",
            }
        table = _compare(full, estimates, alpha)
        table = table.assign(group=group, left_out=str(level), rows_left_out=int((~keep).sum()))
        rows.append(table.assign(**flags))
    if not rows:
        return pd.DataFrame(columns=INFLUENCE_COLUMNS)
    return pd.concat(rows, ignore_index=True)[INFLUENCE_COLUMNS]


# --------------------------------------------------------------------------- summaries


def influence_overview(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One row per left-out level, most influential first.

    ``max_abs_dfbetas`` and ``max_abs_scaled_change`` over the coefficients and contrasts
    (``term_of_max`` names the estimate with the largest ``|dfbetas|``); the grouping
    factor's SD in the full fit and without the level (the SD row named after the group,
    its intercept when it has several); ``main_changes``, how many main results it changes
    (:func:`influential_changes` at ``alpha``).

    Examples
    --------
    >>> rows = pd.DataFrame({"group": "g", "left_out": ["a", "a", "b", "b"],
    ...     "rows_left_out": 3, "kind": ["coefficient", "sd"] * 2, "term": ["x", "g"] * 2,
    ...     "main": False, "estimate_full": [1.0, 0.5] * 2, "estimate": [1.2, 0.4, 0.9, 0.6],
    ...     "scaled_change": [0.5, np.nan, -0.25, np.nan],
    ...     "dfbetas": [0.4, np.nan, -0.3, np.nan], "change": [0.2, -0.1, -0.1, 0.1],
    ...     "sign_changed": False, "significance_changed": "", "p_full": 0.5,
    ...     "failed": False, "error": ""})
    >>> influence_overview(rows)[["left_out", "max_abs_dfbetas", "group_sd"]]
      left_out  max_abs_dfbetas  group_sd
    0        a              0.4       0.4
    1        b              0.3       0.6
    """
    out = []
    for level, rows in table.groupby("left_out", sort=False):
        tested = rows[rows["kind"].isin(_TESTED)]
        dfbetas = tested["dfbetas"].abs()
        top = dfbetas.idxmax() if dfbetas.notna().any() else None
        group = str(rows["group"].iloc[0])
        sd = rows[
            (rows["kind"] == "sd")
            & rows["term"].astype(str).str.match(rf"^{re.escape(group)}(: \(Intercept\))?$")
        ]
        changes = influential_changes(rows, alpha)
        out.append(
            {
                "group": group,
                "left_out": level,
                "rows_left_out": int(rows["rows_left_out"].iloc[0]),
                "max_abs_dfbetas": float(dfbetas.max()) if top is not None else np.nan,
                "max_abs_scaled_change": float(tested["scaled_change"].abs().max())
                if tested["scaled_change"].notna().any()
                else np.nan,
                "term_of_max": str(tested.loc[top, "term"]) if top is not None else "",
                "group_sd_full": float(sd["estimate_full"].iloc[0]) if len(sd) else np.nan,
                "group_sd": float(sd["estimate"].iloc[0]) if len(sd) else np.nan,
                "group_sd_change": float(sd["change"].iloc[0]) if len(sd) else np.nan,
                "main_changes": len(changes),
                "failed": bool(rows["failed"].astype(bool).any()),
                "error": str(rows["error"].fillna("").iloc[0]),
            }
        )
    overview = pd.DataFrame(out, columns=OVERVIEW_COLUMNS)
    order = overview["max_abs_dfbetas"].fillna(np.inf).sort_values(ascending=False, kind="stable")
    return overview.loc[order.index].reset_index(drop=True)


def influential_changes(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The rows where leaving one level out changes a main result: a contrast or simple
    slope whose p value moves across ``alpha`` (``significance_changed``), or whose sign
    changes while it is significant in the full fit (a sign change of an estimate near
    zero is not a change of result); failed refits excluded; in the order of the table.

    Examples
    --------
    >>> rows = pd.DataFrame({"main": [True, True, True, False],
    ...                      "sign_changed": [False, True, True, True], "p_full": 0.01,
    ...                      "significance_changed": ["lost", "", "", ""], "failed": False})
    >>> rows.loc[2, "p_full"] = 0.4
    >>> influential_changes(rows).index.tolist()
    [0, 1]
    """
    if table.empty:
        return table
    main = table["main"].astype(bool) & ~table["failed"].astype(bool)
    crossed = table["significance_changed"].fillna("").astype(str) != ""
    reversed_ = table["sign_changed"].astype(bool) & (table["p_full"].astype(float) < alpha)
    return table[main & (crossed | reversed_)]


#: Text columns of influence.csv (read back as text, empty cells as "").
_TEXT_COLUMNS = ("group", "left_out", "kind", "term", "variable", "level", "reference", "by",
                 "adjustment", "significance_changed", "error")  # fmt: skip


def read_influence(path) -> pd.DataFrame:
    """Read a written ``influence.csv`` back: labels as text (``T07``, ``1``), empty text
    cells as "", an empty or header-only file as an empty table with the columns.

    Examples
    --------
    >>> read_influence("results/models/repair_retention/influence.csv")  # doctest: +SKIP
    """
    try:
        table = pd.read_csv(
            path, dtype={c: str for c in _TEXT_COLUMNS}, keep_default_na=False, na_values=[""]
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=INFLUENCE_COLUMNS)
    for column in _TEXT_COLUMNS:
        if column in table:
            table[column] = table[column].fillna("").astype(str)
    return table
