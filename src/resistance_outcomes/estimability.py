"""Which estimates of a fitted model the data identify: separation and runaway estimates.

A logistic model fitted where one framework has no dropout at all, or a count model where
one framework x behaviour cell has only zeros, has no finite maximum-likelihood estimate
for the coefficients of that cell (quasi-complete separation; Albert & Anderson, 1984):
the optimiser walks towards infinity and stops somewhere, giving ratios such as
2,352,245,449,612 with meaningless intervals. Such estimates are reported as not
estimable, with the reason, never as numbers.

Two rules, for the binomial, Poisson and negative-binomial families (gaussian models are
never separated and their coefficients carry the response's units, so no rule applies):

1. **Separation, from the data.** A *cell* is a level of a factor of the fixed part, or a
   combination of levels of two factors that share an interaction term. A cell is
   separated when its response has no events (binomial: every row 0), only events (every
   row 1; for ``cbind`` no failures), or, for counts, every count 0. The linear predictor
   of a separated cell runs off to minus or plus infinity, so a linear function
   ``L beta`` (a coefficient: ``L`` a unit vector; a contrast: its weights) is estimable
   only if it can be written from the rows outside the separated cells, i.e. if ``L``
   lies in the row space of the fixed-effects matrix without those rows (the classical
   definition of an estimable function). A contrast between two levels that are both
   fine stays estimable even when both are compared against a separated reference level.
2. **Runaway estimates, numerically.** A coefficient whose standard error exceeds
   :data:`SE_LIMIT` (5) on the link scale, or (intercept excepted) whose absolute estimate
   exceeds :data:`ESTIMATE_LIMIT` (10), is not estimable. For a numeric predictor both
   are taken per its largest absolute observed value (the coefficient times
   ``max |x|``), so the rule does not depend on the predictor's units; for a factor that
   value is 1. Why these limits: a log odds or rate ratio of 10 is a ratio of about
   22,000, far beyond any effect in this field; a standard error of 5 makes the 95%
   interval of the ratio span a factor of about 3 x 10^8, and it cannot arise from data
   with at least one event in each compared group (Woolf's standard error of a log odds
   ratio is at most 2 when every cell has one event, that of a log rate ratio at most
   about 1.4). A contrast is not estimable when its own estimate or standard error breaks
   the same limits (slopes per the largest absolute value of their predictor), or when it
   gives weight to a coefficient that rule 2 flagged.

:func:`assess` applies both rules to a fit; :func:`mark_tables` writes the result into the
coefficient and contrast tables (``estimable``, ``note``; ratios set to missing).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd

from .models.families import get_family

__all__ = [
    "ESTIMATE_LIMIT",
    "SE_LIMIT",
    "Estimability",
    "assess",
    "contrast_weights",
    "estimable_functions",
    "mark_tables",
    "separated_cells",
]

#: Largest absolute estimate on the link scale (per the largest |x| of a numeric
#: predictor) that is reported as a number.
ESTIMATE_LIMIT = 10.0
#: Largest standard error on the link scale (per the largest |x|) reported as a number.
SE_LIMIT = 5.0
_RATIO_COLUMNS = {
    "coefficients": ["exp_estimate", "exp_ci_low", "exp_ci_high"],
    "contrasts": ["ratio", "ratio_ci_low", "ratio_ci_high"],
}
_TOL = 1e-8


@dataclass
class Estimability:
    """Which coefficients and contrasts of a fit are estimable, and why not.

    Attributes
    ----------
    coefficients : list of str
        One note per coefficient (in the order of the fit's fixed effects); empty when
        estimable.
    contrasts : list of str
        One note per contrast row; empty when estimable.
    not_estimable : list of dict
        ``{"term": ..., "reason": ...}`` for each coefficient that is not estimable.
    cells : list of dict
        The separated cells: ``{"cell": {factor: level, ...}, "reason": ...}``.
    """

    coefficients: list[str]
    contrasts: list[str] = field(default_factory=list)
    not_estimable: list[dict] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)

    @property
    def flag(self) -> str | None:
        """``"not estimable: <reasons>"`` for ``fit.json``'s flags, or None."""
        if not self.not_estimable:
            return None
        reasons = list(dict.fromkeys(item["reason"] for item in self.not_estimable))
        return "not estimable: " + "; ".join(reasons)


# --------------------------------------------------------------------------- separation


def _model_factors(design) -> tuple[list[str], list[tuple[str, str]]]:
    """Factors of the fixed part and the pairs of factors sharing an interaction term."""
    frame = design.frame
    factors, pairs = [], []
    for term in design.x_info.terms:
        names = [f.code for f in term.factors]
        cats = [
            n
            for n in names
            if n in frame.columns and isinstance(frame[n].dtype, pd.CategoricalDtype)
        ]
        factors += [c for c in cats if c not in factors]
        pairs += [p for p in itertools.combinations(cats, 2) if p not in pairs]
    return factors, pairs


def _cell_name(cell: dict) -> str:
    return " x ".join(f"{level} ({factor})" for factor, level in cell.items())


def _applies(family) -> bool:
    """Whether the rules apply: families reported as ratios (log and logit links)."""
    return get_family(family).exponentiate


def _events(design, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the events and the non-events (binomial), or the count and NaN."""
    y = np.asarray(design.y, dtype=float)
    if get_family(family).name == "binomial":
        trials = np.asarray(design.prior_weights, dtype=float)
        if design.formula.response.startswith("cbind"):
            return y * trials, (1 - y) * trials
        return y, 1 - y
    return y, np.full(len(y), np.nan)


def separated_cells(design, family: str) -> list[dict]:
    """The cells of the fixed part in which the response separates.

    Parameters
    ----------
    design : MixedDesign
        ``fit.design`` of a fitted model.
    family : str or GlmmFamily
        A family with a log or logit link (``binomial``, ``poisson``,
        ``negative_binomial``); others have no separated cells.

    Returns
    -------
    list of dict
        ``{"cell": {factor: level, ...}, "rows": boolean mask, "reason": text}``; a
        combination of levels is listed only when neither of its levels is separated.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.models import build_design
    >>> df = pd.DataFrame({"dropout": [0, 0, 0, 1, 0, 1], "g": list("aabbcc"),
    ...                    "framework": list("xxyyzz")})
    >>> cells = separated_cells(build_design("dropout ~ framework + (1 | g)", df),
    ...                         "binomial")
    >>> [c["reason"] for c in cells]
    ['no dropout in x (framework)']
    """
    if not _applies(family):
        return []
    binomial = get_family(family).name == "binomial"
    frame = design.frame
    response = design.formula.response
    events, non_events = _events(design, family)
    factors, pairs = _model_factors(design)
    candidates = [(f,) for f in factors] + pairs
    out: list[dict] = []
    for names in candidates:
        values = [frame[n].astype(object).to_numpy() for n in names]
        levels = itertools.product(*(frame[n].cat.categories for n in names))
        for combo in levels:
            rows = np.logical_and.reduce([v == lv for v, lv in zip(values, combo, strict=True)])
            if not rows.any():
                continue
            cell = dict(zip(names, map(str, combo), strict=True))
            if len(names) > 1 and any(c["cell"] == {n: lv} for c in out for n, lv in cell.items()):
                continue  # one of its levels is already separated
            reason = None
            if np.nansum(events[rows]) == 0:
                every = "" if binomial else " (every count is 0)"
                reason = f"no {response} in {_cell_name(cell)}{every}"
            elif binomial and np.nansum(non_events[rows]) == 0:
                reason = f"only {response} in {_cell_name(cell)} (no row without it)"
            if reason:
                out.append({"cell": cell, "rows": rows, "reason": reason})
    return out


def estimable_functions(X: np.ndarray, keep: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Whether each row of ``L`` lies in the row space of ``X[keep]`` (is estimable).

    Columns are scaled to a largest absolute value of 1 first, so the tolerance does not
    depend on the units of the predictors.

    Parameters
    ----------
    X : numpy.ndarray
        (n, p) fixed-effects matrix.
    keep : numpy.ndarray
        Boolean mask of the rows that identify the coefficients.
    L : numpy.ndarray
        (m, p) linear functions of the coefficients.

    Returns
    -------
    numpy.ndarray of bool, length m

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1.0]])  # intercept, level b, level c
    >>> keep = np.array([False, True, True])              # the reference level separated
    >>> estimable_functions(X, keep, np.array([[1, 0, 0], [0, 1, -1.0]])).tolist()
    [False, True]
    """
    X = np.asarray(X, dtype=float)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    Xs, Ls = X[keep] / scale, L * scale
    if Xs.shape[0] == 0:
        return np.zeros(len(L), dtype=bool)
    _, s, vt = np.linalg.svd(Xs, full_matrices=True)
    rank = int((s > _TOL * max(s.max(initial=0.0), 1.0) * max(Xs.shape)).sum())
    null = vt[rank:]
    if len(null) == 0:
        return np.ones(len(L), dtype=bool)
    norms = np.linalg.norm(Ls, axis=1)
    leak = np.linalg.norm(Ls @ null.T, axis=1)
    return leak <= 1e-6 * np.maximum(norms, 1.0)


# --------------------------------------------------------------------------- contrasts


def contrast_weights(fit, contrast_spec) -> np.ndarray:
    """The weights ``L`` of each configured contrast (one row per contrast row).

    Contrasts are linear in the coefficients, so column ``j`` of ``L`` is the contrasts
    evaluated with the unit vector ``e_j`` as coefficients.

    Parameters
    ----------
    fit : MixedResult or PopulationAveragedFit
    contrast_spec : ContrastSpec

    Returns
    -------
    numpy.ndarray
        (contrast rows, fixed effects).

    Examples
    --------
    >>> L = contrast_weights(fit, spec.contrasts)  # doctest: +SKIP
    """
    from .contrasts import framework_contrasts

    p = len(fit.design.fixed_names)
    columns = []
    for j in range(p):
        probe = SimpleNamespace(
            design=fit.design,
            family=fit.family,
            beta=np.eye(p)[j],
            vcov=np.eye(p),
            df=None,
            extra={},
        )
        columns.append(framework_contrasts(probe, contrast_spec, adjust="none")["estimate"])
    return np.column_stack(columns) if columns else np.zeros((0, 0))


# --------------------------------------------------------------------------- the rules


def _is_intercept(column: np.ndarray) -> bool:
    return bool(np.all(column == 1.0))


def _runaway(estimate: float, se: float, scale: float, intercept: bool) -> str | None:
    """The numeric rule's note for one estimate, or None."""
    per = "" if scale == 1.0 else f" per unit (x {scale:.3g}, the largest observed |value|)"
    if not math.isfinite(se):
        return "no standard error: the data do not identify it"
    if se * scale > SE_LIMIT:
        return (
            f"standard error {se:.3g} on the link scale{per} is above {SE_LIMIT:g}: "
            "the data do not identify it"
        )
    if not intercept and abs(estimate) * scale > ESTIMATE_LIMIT:
        return (
            f"estimate {estimate:.3g} on the link scale{per} is beyond +-{ESTIMATE_LIMIT:g} "
            "(a ratio above 22,000): the data do not identify it"
        )
    return None


def assess(fit, family: str, contrasts: pd.DataFrame | None = None, contrast_spec=None):
    """Apply both rules to a fitted model and its contrasts.

    Parameters
    ----------
    fit : MixedResult or PopulationAveragedFit
        Needs ``design``, ``beta``, ``vcov``.
    family : str
    contrasts : pandas.DataFrame, optional
        The model's contrast table (columns of
        :data:`resistance_outcomes.contrasts.CONTRAST_COLUMNS`).
    contrast_spec : ContrastSpec, optional
        The configured contrasts that made ``contrasts``.

    Returns
    -------
    Estimability

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(5)
    >>> df = pd.DataFrame({"framework": np.repeat(["a", "b", "c"], 30),
    ...                    "therapist": np.repeat([f"T{i}" for i in range(9)], 10)})
    >>> df["dropout"] = np.where(df.framework == "b", 0, rng.binomial(1, 0.35, 90))
    >>> fit = fit_mixed("dropout ~ framework + (1 | therapist)", df, family="binomial")
    >>> assess(fit, "binomial").not_estimable
    [{'term': 'frameworkb', 'reason': 'no dropout in b (framework)'}]
    """
    design = fit.design
    names = list(design.fixed_names)
    p = len(names)
    n_contrasts = 0 if contrasts is None else len(contrasts)
    result = Estimability(coefficients=[""] * p, contrasts=[""] * n_contrasts)
    if not _applies(family) or p == 0:
        return result
    X = np.asarray(design.X, dtype=float)
    beta = np.asarray(fit.beta, dtype=float)
    se = np.sqrt(np.abs(np.diag(np.asarray(fit.vcov, dtype=float))))
    se = np.where(np.isfinite(np.diag(fit.vcov)), se, np.nan)
    cells = separated_cells(design, family)
    result.cells = [{"cell": c["cell"], "reason": c["reason"]} for c in cells]
    separated = np.zeros(len(X), dtype=bool)
    for cell in cells:
        separated |= cell["rows"]

    def structural(L: np.ndarray) -> list[str]:
        """Per row of L: the separation reasons that make it not estimable ('' if none)."""
        if not cells:
            return [""] * len(L)
        fine = estimable_functions(X, ~separated, L)
        notes = []
        for i, ok in enumerate(fine):
            if ok:
                notes.append("")
                continue
            own = [
                c["reason"]
                for c in cells
                if not estimable_functions(X, ~c["rows"], L[i : i + 1])[0]
            ]
            notes.append("; ".join(own or [c["reason"] for c in cells]))
        return notes

    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    numeric_only = np.zeros(p, dtype=bool)
    for j, note in enumerate(structural(np.eye(p))):
        if not note:
            note = _runaway(beta[j], se[j], float(scale[j]), _is_intercept(X[:, j])) or ""
            numeric_only[j] = bool(note)
        result.coefficients[j] = note
    result.not_estimable = [
        {"term": names[j], "reason": note} for j, note in enumerate(result.coefficients) if note
    ]
    if n_contrasts and contrast_spec is not None:
        L = contrast_weights(fit, contrast_spec)
        notes = structural(L)
        for i, row in enumerate(contrasts.itertuples(index=False)):
            if notes[i]:
                continue
            uses = [names[j] for j in np.flatnonzero(numeric_only) if abs(L[i, j]) > _TOL]
            if uses:
                notes[i] = f"uses {', '.join(uses)}, which is not estimable"
                continue
            s = 1.0
            if row.kind == "simple_slope" and row.variable in design.frame.columns:
                s = float(np.abs(design.frame[row.variable].astype(float)).max()) or 1.0
            notes[i] = _runaway(float(row.estimate), float(row.std_error), s, False) or ""
        result.contrasts = notes
    return result


def mark_tables(
    coefficients: pd.DataFrame, contrasts: pd.DataFrame, assessment: Estimability
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``estimable`` and ``note`` to both tables; ratios of the others become missing.

    Parameters
    ----------
    coefficients : pandas.DataFrame
        One row per fixed effect (``fit.coefficients``).
    contrasts : pandas.DataFrame
        The contrast table (may be empty).
    assessment : Estimability

    Returns
    -------
    coefficients, contrasts : pandas.DataFrame
        Copies with the two columns; ``exp_estimate``, ``exp_ci_low``, ``exp_ci_high``
        (coefficients) and ``ratio``, ``ratio_ci_low``, ``ratio_ci_high`` (contrasts) are
        NaN where ``estimable`` is False. Estimates on the link scale are kept.

    Examples
    --------
    >>> import pandas as pd
    >>> coefs = pd.DataFrame({"term": ["a"], "estimate": [-31.4], "exp_estimate": [2e-14],
    ...                       "exp_ci_low": [0.0], "exp_ci_high": [float("inf")]})
    >>> out, _ = mark_tables(coefs, pd.DataFrame(), Estimability(["no dropout in b"]))
    >>> out[["estimable", "note", "exp_estimate"]].to_dict("records")
    [{'estimable': False, 'note': 'no dropout in b', 'exp_estimate': nan}]
    """
    out = []
    for table, notes, kind in (
        (coefficients, assessment.coefficients, "coefficients"),
        (contrasts, assessment.contrasts, "contrasts"),
    ):
        table = table.copy()
        notes = list(notes) if len(notes) == len(table) else [""] * len(table)
        table["estimable"] = pd.Series([not n for n in notes], index=table.index, dtype=bool)
        table["note"] = pd.Series(notes, index=table.index, dtype=object)
        for column in _RATIO_COLUMNS[kind]:
            if column in table:
                table[column] = table[column].astype(float).where(table["estimable"])
        out.append(table)
    return out[0], out[1]
