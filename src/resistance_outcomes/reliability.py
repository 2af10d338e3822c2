"""Inter-rater reliability: ICCs for ratings and counts, kappas for categorical codes, a gate.

Two tidy input frames are used.

*Ratings* (for :func:`icc_table`): one row per target x coder (x construct), with a
numeric value. A target is whatever was rated: usually a session, identified by
``["study", "client", "session"]``, with the construct count made from one coder's codes,
e.g. columns ``study, client, session, coder, construct, value``.

*Units* (for :func:`kappa_table`): one row per coded unit x coder (x construct), with a
category, e.g. columns ``unit_id, coder, category`` (MI client talk: change, neutral,
sustain; or a 3RS marker present/absent).

Only targets or units rated by two or more coders (the reliability sample) enter the
statistics; the others are counted in the ``note`` column. Results are tidy DataFrames
holding no target or unit identifiers.

:func:`reliability_analysis` runs the whole analysis on a canonical code table and coding
log: every construct of the codebook, per session and per unit, in one tidy table that
:func:`reliability_gate` checks, :func:`format_reliability_table` and
:func:`reliability_markdown` print, and :func:`resistance_outcomes.figures.plot_agreement`
draws.
"""

import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pingouin as pg
from statsmodels.stats.inter_rater import cohens_kappa as _sm_cohens_kappa

from resistance_outcomes.codebook import (
    CODER_KEY,
    SESSION_KEY,
    Codebook,
    session_values_by_coder,
    unit_level_codes,
)
from resistance_outcomes.tables import (
    MISSING,
    ApaTable,
    format_bounded,
    format_ci,
    format_number,
    to_markdown,
)

__all__ = [
    "DEFAULT_CATEGORICAL",
    "MIN_TARGETS",
    "ReliabilityGateError",
    "ReliabilityInputError",
    "ReliabilityResult",
    "ReliabilityWarning",
    "cohen_kappa",
    "construct_label",
    "fleiss_kappa_table",
    "format_reliability_table",
    "icc_table",
    "kappa_table",
    "koo_li_label",
    "reliability_analysis",
    "reliability_gate",
    "reliability_markdown",
]

MIN_TARGETS = 5
"""Fewest double-rated targets (or units) for which a table reports a coefficient."""

ICC_STATISTIC = "ICC(A,1)"
ICC_K_STATISTIC = "ICC(A,k)"
COHEN_STATISTIC = "Cohen's kappa"
FLEISS_STATISTIC = "Fleiss' kappa"
#: statistic -> (threshold key, value column of icc_table/kappa_table); None: not gated
#: (the gate judges one coder's reliability, ICC(A,1), not that of the mean of k coders).
_GATED = {
    ICC_STATISTIC: ("icc", "icc_a1"),
    ICC_K_STATISTIC: None,
    COHEN_STATISTIC: ("kappa", "kappa"),
    FLEISS_STATISTIC: ("kappa", "kappa"),
}
_THRESHOLD_KEYS = {"icc", "kappa", "per_construct"}


class ReliabilityInputError(ValueError):
    """Input to a reliability function is malformed (missing column, bad value, duplicate)."""


class ReliabilityGateError(RuntimeError):
    """One or more constructs fall below their minimum reliability in strict mode."""


class ReliabilityWarning(UserWarning):
    """One or more constructs fall below their minimum reliability in warn mode."""


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


def koo_li_label(value: float) -> str:
    """Label an ICC with the Koo & Li (2016) benchmarks.

    Below .50 poor, .50 to below .75 moderate, .75 to .90 good, above .90 excellent.
    A value on a boundary takes the upper category except at .90, which Koo & Li put in
    "good" ("greater than 0.90" is excellent).

    Parameters
    ----------
    value : float
        An intraclass correlation.

    Returns
    -------
    str
        ``"poor"``, ``"moderate"``, ``"good"``, ``"excellent"``, or ``"not estimable"``
        for NaN.

    Notes
    -----
    Koo & Li advise judging the 95% confidence interval, not only the point estimate;
    :func:`icc_table` reports both.

    References
    ----------
    Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting intraclass
    correlation coefficients for reliability research. Journal of Chiropractic
    Medicine, 15(2), 155-163.

    Examples
    --------
    >>> koo_li_label(0.75)
    'good'
    >>> koo_li_label(0.93)
    'excellent'
    """
    if pd.isna(value):
        return "not estimable"
    if value < 0.50:
        return "poor"
    if value < 0.75:
        return "moderate"
    if value <= 0.90:
        return "good"
    return "excellent"


# --------------------------------------------------------------------------------------
# Input checks shared by the table functions
# --------------------------------------------------------------------------------------


def _as_list(columns: str | Sequence[str] | None) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return list(columns)


def _check_columns(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ReliabilityInputError(f"{name} must be a pandas DataFrame, got {type(frame)!r}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReliabilityInputError(
            f"{name}: missing column(s) {missing}; columns present: {list(frame.columns)}. "
            "Rename the columns or pass the right names to the function."
        )


def _check_complete(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    for column in columns:
        empty = frame[column].isna()
        if empty.any():
            row = empty.idxmax()
            raise ReliabilityInputError(
                f"{name}: row {row!r}, column {column!r} is empty. "
                "Fill it in or drop the row before computing reliability."
            )


def _numeric_column(frame: pd.DataFrame, column: str, name: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = bad.idxmax()
        raise ReliabilityInputError(
            f"{name}: row {row!r}, column {column!r}: value {_shown(frame.at[row, column])} is not "
            "a number. Correct the value or drop the row."
        )
    return values.astype(float)


def _shown(value) -> str:
    """repr of a cell value without numpy's type wrapper (``-1``, not ``np.int64(-1)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _check_unique(frame: pd.DataFrame, keys: list[str], name: str) -> None:
    duplicated = frame.duplicated(keys, keep=False)
    if duplicated.any():
        rows = list(frame.index[duplicated][:4])
        first = frame.loc[rows[0], keys].to_dict()
        raise ReliabilityInputError(
            f"{name}: rows {rows} repeat the same {keys} ({first}). Each coder rates a "
            "target once per construct; remove or merge the duplicate rows."
        )


def _groups(frame: pd.DataFrame, by: list[str]):
    """Yield ``(dict of by values, sub-frame)``; the whole frame when ``by`` is empty."""
    if not by:
        yield {}, frame
        return
    for key, group in frame.groupby(by, sort=True, observed=True):
        yield dict(zip(by, key, strict=True)), group


def _single_note(n_single: int, what: str) -> str:
    if n_single == 0:
        return ""
    return f"{n_single} {what} with a single rating not used"


def _join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# --------------------------------------------------------------------------------------
# ICC
# --------------------------------------------------------------------------------------


def icc_table(
    ratings: pd.DataFrame,
    targets: str | Sequence[str] = "target",
    raters: str = "coder",
    ratings_col: str = "value",
    by: str | Sequence[str] | None = "construct",
    slot_by: str | None = None,
    target_name: str = "targets",
) -> pd.DataFrame:
    """Two-way random-effects, absolute-agreement ICCs per construct.

    For each construct, ICC(A,1) (the reliability of one coder's rating; Shrout & Fleiss
    ICC(2,1)) and ICC(A,k) (of the mean of the k ratings; ICC(2,k)) with 95% confidence
    intervals (McGraw & Wong, 1996), computed with :func:`pingouin.intraclass_corr`.

    Parameters
    ----------
    ratings : pandas.DataFrame
        One row per target x coder (x construct) with a numeric rating or count.
    targets : str or list of str
        Column(s) identifying what was rated, e.g. ``["study", "client", "session"]``.
    raters : str
        Column with the coder id.
    ratings_col : str
        Column with the numeric value.
    by : str, list of str or None
        Column(s) to compute one ICC for each of; None for a single ICC.
    slot_by : str or None
        Only for rotating coder pairs (see Notes): column whose sort order decides which
        rating of a target is the first rating, e.g. ``"role"`` with an ordered
        categorical primary < reliability. Ties, and the default, sort by coder id.
    target_name : str
        What a target is, in the notes (``"sessions"``, ``"units"``).

    Returns
    -------
    pandas.DataFrame
        One row per construct: the ``by`` columns, ``statistic`` (``"ICC(A,1)"``, the
        value the label and :func:`reliability_gate` refer to), ``design``
        (``"crossed"``, ``"rater slots"``, or ``"none"`` without double-rated targets),
        ``n_targets``, ``n_raters`` (distinct coders), ``ratings_per_target``, ``icc_a1``,
        ``icc_a1_ci_low``, ``icc_a1_ci_high``, ``icc_ak``, ``icc_ak_ci_low``,
        ``icc_ak_ci_high``, ``icc_1_1`` (one-way ICC, see Notes), ``pct_agreement``
        (percentage of targets whose ratings are all equal), ``label`` (Koo & Li, for
        ICC(A,1)) and ``note``.

    Raises
    ------
    ReliabilityInputError
        A column is missing, a value is empty or not numeric, a coder rates the same
        target twice, or coders rotate and targets have different numbers of ratings.

    Notes
    -----
    Targets rated by a single coder are not part of the reliability sample and are left
    out (the ``note`` says how many). Constructs with fewer than ``MIN_TARGETS`` double-
    rated targets, or whose ratings are all equal (no variance), get NaN and a note.
    When every target shows perfect agreement but targets differ, the ICCs are 1 and the
    F-based confidence intervals are undefined (NaN).

    *Crossed design*: when the same coders rated every target, coders are the rater
    factor, as in a classic reliability study.

    *Rotating coder pairs*: when targets were rated by different coders (A and B rated
    some sessions, B and C others), there is no target x coder matrix. The ratings of
    each target are then placed in rater *slots* ("first rating", "second rating", ...)
    and the two-way ICC(A,1) is computed on the target x slot matrix. This is what
    reliability studies with rotating pairs report as ICC(2,1)/ICC(A,1) (the ratings
    entered as "coder 1" and "coder 2" columns). Consequences: a coder's personal bias
    cannot be separated as a rater effect; it falls into the residual and lowers the ICC,
    as absolute agreement requires. A systematic difference between slots (e.g. primary
    versus reliability coders, with ``slot_by="role"``) is penalised as rater variance.
    Because the slot effect is estimated apart from the residual, ICC(A,1) can shift
    slightly with the slot order; the one-way ICC(1,1) (Shrout & Fleiss case 1, the
    textbook model for raters drawn anew for each target) pools both and does not depend
    on the order, so it is reported as ``icc_1_1`` for comparison. Targets must then all
    have the same number of ratings.

    References
    ----------
    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass
    correlation coefficients. Psychological Methods, 1(1), 30-46.
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in assessing
    rater reliability. Psychological Bulletin, 86(2), 420-428.

    Examples
    --------
    >>> import pingouin as pg
    >>> wine = pg.read_dataset("icc")
    >>> out = icc_table(wine, targets="Wine", raters="Judge", ratings_col="Scores", by=None)
    >>> out[["n_targets", "n_raters", "icc_a1", "icc_ak", "label"]].round(4)
       n_targets  n_raters  icc_a1  icc_ak     label
    0          8         4  0.7277  0.9145  moderate
    """
    name = "ratings"
    target_cols, by_cols = _as_list(targets), _as_list(by)
    order_cols = [slot_by] if slot_by else []
    _check_columns(ratings, [*target_cols, raters, ratings_col, *by_cols, *order_cols], name)
    _check_complete(ratings, [*target_cols, raters, ratings_col, *by_cols, *order_cols], name)
    frame = ratings.assign(**{ratings_col: _numeric_column(ratings, ratings_col, name)})
    _check_unique(frame, [*by_cols, *target_cols, raters], name)

    rows = []
    for key, group in _groups(frame, by_cols):
        where = ", ".join(f"{k}={v!r}" for k, v in key.items()) or "all ratings"
        matrix, design, n_coders, n_single = _rating_matrix(
            group, target_cols, raters, ratings_col, slot_by, where
        )
        row = _icc_row(matrix, target_name)
        row["note"] = _join_notes(row["note"], _single_note(n_single, target_name))
        rows.append(
            {**key, "statistic": ICC_STATISTIC, "design": design, "n_raters": n_coders, **row}
        )
    columns = [
        *by_cols,
        "statistic",
        "design",
        "n_targets",
        "n_raters",
        "ratings_per_target",
        "icc_a1",
        "icc_a1_ci_low",
        "icc_a1_ci_high",
        "icc_ak",
        "icc_ak_ci_low",
        "icc_ak_ci_high",
        "icc_1_1",
        "pct_agreement",
        "label",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)


def _rating_matrix(
    group: pd.DataFrame,
    targets: list[str],
    raters: str,
    ratings_col: str,
    slot_by: str | None,
    where: str,
) -> tuple[np.ndarray, str, int, int]:
    """Target x rater (or target x slot) matrix of the double-rated targets.

    Returns the matrix, the design name, the number of distinct coders and the number of
    targets with a single rating.
    """
    sizes = group.groupby(targets, sort=True).size()
    n_single = int((sizes < 2).sum())
    multi = sizes[sizes >= 2]
    rated = group.set_index(targets).loc[multi.index].reset_index()
    n_coders = int(rated[raters].nunique())
    if rated.empty:
        return np.empty((0, 0)), "none", n_coders, n_single

    coder_sets = rated.groupby(targets, sort=True)[raters].agg(frozenset)
    if coder_sets.nunique() == 1:
        wide = rated.pivot(index=targets, columns=raters, values=ratings_col)
        return wide.to_numpy(float), "crossed", n_coders, n_single

    if multi.nunique() > 1:
        spread = ", ".join(f"{n} ratings: {c} targets" for n, c in multi.value_counts().items())
        example = multi.index[multi != multi.mode().iloc[0]][0]
        raise ReliabilityInputError(
            f"ratings ({where}): coders differ between targets and targets have different "
            f"numbers of ratings ({spread}; e.g. target {example!r}). An ICC needs the same "
            "number of ratings per target: keep one rating per coder slot (e.g. the primary "
            "and one reliability rating) before calling icc_table."
        )
    order = [*targets, *([slot_by] if slot_by else []), raters]
    rated = rated.sort_values(order, kind="stable")
    rated["_slot"] = rated.groupby(targets, sort=False).cumcount()
    wide = rated.pivot(index=targets, columns="_slot", values=ratings_col)
    return wide.to_numpy(float), "rater slots", n_coders, n_single


def _icc_row(matrix: np.ndarray, target_name: str = "targets") -> dict:
    """ICCs, confidence intervals, agreement and label for a complete n x k matrix."""
    n, k = matrix.shape if matrix.size else (0, 0)
    nan = float("nan")
    row = {
        "n_targets": n,
        "ratings_per_target": k,
        "icc_a1": nan,
        "icc_a1_ci_low": nan,
        "icc_a1_ci_high": nan,
        "icc_ak": nan,
        "icc_ak_ci_low": nan,
        "icc_ak_ci_high": nan,
        "icc_1_1": nan,
        "pct_agreement": nan,
        "note": "",
    }
    if n:
        row["pct_agreement"] = 100.0 * float(np.mean(np.ptp(matrix, axis=1) == 0))
    if n < MIN_TARGETS:
        row["note"] = (
            f"{n} {target_name} rated by two or more coders; at least {MIN_TARGETS} needed"
        )
    elif np.ptp(matrix) == 0:
        row["note"] = (
            f"all {matrix.size} ratings equal {matrix.flat[0]:g}: no variance, ICC undefined"
        )
    elif row["pct_agreement"] == 100.0:
        row.update(icc_a1=1.0, icc_ak=1.0, icc_1_1=1.0)
        row["note"] = "ratings agree exactly on every target: confidence interval undefined"
    else:
        row.update(_pingouin_iccs(matrix))
    row["label"] = koo_li_label(row["icc_a1"])
    return row


def _pingouin_iccs(matrix: np.ndarray) -> dict:
    n, k = matrix.shape
    long = pd.DataFrame(
        {
            "target": np.repeat(np.arange(n), k),
            "rater": np.tile(np.arange(k), n),
            "value": matrix.ravel(),
        }
    )
    with warnings.catch_warnings(), _full_precision():
        # pingouin 0.7.0 calls DataFrame.dropna(inplace=True), deprecated in pandas 3.1.
        warnings.filterwarnings("ignore", message="The inplace keyword", module="pingouin")
        res = pg.intraclass_corr(long, targets="target", raters="rater", ratings="value")
    res = res.set_index("Type")
    a1, ak = res.loc["ICC(A,1)"], res.loc["ICC(A,k)"]
    return {
        "icc_a1": float(a1["ICC"]),
        "icc_a1_ci_low": float(a1["CI95"][0]),
        "icc_a1_ci_high": float(a1["CI95"][1]),
        "icc_ak": float(ak["ICC"]),
        "icc_ak_ci_low": float(ak["CI95"][0]),
        "icc_ak_ci_high": float(ak["CI95"][1]),
        "icc_1_1": float(res.loc["ICC(1,1)", "ICC"]),
    }


@contextmanager
def _full_precision():
    """Switch off pingouin's output rounding (CI95 to 2 decimals by default) for a call."""
    saved = dict(pg.options)
    for key in [key for key in pg.options if key.startswith("round.")]:
        del pg.options[key]
    pg.options["round"] = None
    try:
        yield
    finally:
        pg.options.clear()
        pg.options.update(saved)


# --------------------------------------------------------------------------------------
# Kappa
# --------------------------------------------------------------------------------------


def cohen_kappa(a: Sequence, b: Sequence) -> dict:
    """Cohen's kappa for two coders who categorised the same units.

    Parameters
    ----------
    a, b : sequence
        The categories the first and the second coder gave, unit by unit (same length,
        same order). Any hashable labels.

    Returns
    -------
    dict
        ``kappa``, ``se`` (large-sample standard error of Fleiss, Cohen & Everitt, 1969,
        from :func:`statsmodels.stats.inter_rater.cohens_kappa`), ``ci_low`` and
        ``ci_high`` (kappa -/+ 1.96 se), ``pct_agreement`` (percentage of units with the
        same category), ``n`` (units) and ``note``.

    Raises
    ------
    ReliabilityInputError
        The sequences differ in length, are empty, or hold a missing value.

    Notes
    -----
    When both coders used a single category throughout, chance agreement is 1 and kappa
    is undefined: NaN with a note.

    References
    ----------
    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
    Psychological Measurement, 20(1), 37-46.
    Fleiss, J. L., Cohen, J., & Everitt, B. S. (1969). Large sample standard errors of
    kappa and weighted kappa. Psychological Bulletin, 72(5), 323-327.

    Examples
    --------
    >>> a = ["yes"] * 25 + ["no"] * 25
    >>> b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    >>> res = cohen_kappa(a, b)
    >>> round(res["kappa"], 3), round(res["se"], 3), res["pct_agreement"]
    (0.4, 0.127, 70.0)
    """
    a, b = pd.Series(list(a), dtype=object), pd.Series(list(b), dtype=object)
    if len(a) != len(b):
        raise ReliabilityInputError(
            f"cohen_kappa: the coders rated different numbers of units ({len(a)} and "
            f"{len(b)}); pass the two coders' categories for the same units, in the same order."
        )
    if len(a) == 0:
        raise ReliabilityInputError("cohen_kappa: no units given.")
    for label, values in (("a", a), ("b", b)):
        if values.isna().any():
            raise ReliabilityInputError(
                f"cohen_kappa: {label}[{int(values.isna().idxmax())}] is missing; drop units "
                "that one coder did not categorise."
            )
    categories = sorted(set(a) | set(b), key=str)
    table = _square_table(a, b, categories)
    n = int(table.sum())
    result = {
        "kappa": np.nan,
        "se": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "pct_agreement": float(100.0 * np.trace(table) / n),
        "n": n,
        "note": "",
    }
    if len(categories) == 1:
        result["note"] = f"every rating is {categories[0]!r}: no chance correction, kappa undefined"
        return result
    with np.errstate(invalid="ignore"):  # statsmodels takes sqrt of a negative variance
        res = _sm_cohens_kappa(table)
    result.update(
        kappa=float(res.kappa),
        se=float(np.sqrt(max(res.var_kappa, 0.0))),
        ci_low=float(res.kappa_low),
        ci_high=float(res.kappa_upp),
    )
    return result


def _square_table(a: pd.Series, b: pd.Series, categories: list) -> np.ndarray:
    codes_a = pd.Categorical(a, categories=categories).codes
    codes_b = pd.Categorical(b, categories=categories).codes
    table = np.zeros((len(categories), len(categories)))
    np.add.at(table, (codes_a, codes_b), 1)
    return table


def fleiss_kappa_table(
    counts: pd.DataFrame | np.ndarray, n_boot: int = 2000, seed: int = 0
) -> dict:
    """Fleiss' kappa from a units x categories table of rating counts, bootstrap CI.

    Units may have different numbers of ratings (Fleiss' generalised kappa, Gwet 2014):
    observed agreement is the mean over units of the share of agreeing rater pairs,
    ``sum_j n_ij (n_ij - 1) / (n_i (n_i - 1))``; chance agreement is ``sum_j pi_j^2``
    with ``pi_j`` the mean over units of ``n_ij / n_i``. With the same number of ratings
    per unit this is Fleiss' (1971) kappa.

    Parameters
    ----------
    counts : pandas.DataFrame or numpy.ndarray
        One row per unit, one column per category, cells the number of coders who put the
        unit in the category. Units with fewer than two ratings are left out.
    n_boot : int
        Bootstrap resamples of units for the standard error and the percentile 95% CI.
    seed : int
        Seed of the bootstrap's random number generator.

    Returns
    -------
    dict
        ``kappa``, ``se`` (bootstrap standard deviation), ``ci_low``, ``ci_high``
        (bootstrap percentile interval), ``pct_agreement`` (percentage of units on which
        all ratings agree), ``n`` (units used) and ``note``.

    Raises
    ------
    ReliabilityInputError
        A count is missing, negative or not a whole number.

    References
    ----------
    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
    Psychological Bulletin, 76(5), 378-382.
    Gwet, K. L. (2014). Handbook of inter-rater reliability (4th ed.). Advanced
    Analytics.

    Examples
    --------
    >>> counts = [[3, 0], [0, 3], [2, 1], [3, 0], [0, 3], [1, 2]]
    >>> res = fleiss_kappa_table(counts, n_boot=200, seed=1)
    >>> round(res["kappa"], 3), round(res["pct_agreement"], 1)
    (0.556, 66.7)
    """
    table = _count_matrix(counts)
    totals = table.sum(axis=1)
    used = table[totals >= 2]
    n_single = int((totals < 2).sum())
    n = used.shape[0]
    result = {
        "kappa": np.nan,
        "se": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "pct_agreement": np.nan,
        "n": n,
        "note": _single_note(n_single, "units"),
    }
    if n == 0:
        result["note"] = _join_notes("no unit rated by two or more coders", result["note"])
        return result
    n_i = used.sum(axis=1, keepdims=True)
    agree = (used * (used - 1)).sum(axis=1) / (n_i[:, 0] * (n_i[:, 0] - 1))
    share = used / n_i
    result["pct_agreement"] = 100.0 * float(np.mean(used.max(axis=1) == n_i[:, 0]))
    result["kappa"] = _fleiss_from_parts(agree, share)
    if np.isnan(result["kappa"]):
        result["note"] = _join_notes(
            "every rating is in one category: no chance correction, kappa undefined",
            result["note"],
        )
        return result
    result.update(_bootstrap_fleiss(agree, share, n_boot, seed))
    result["note"] = _join_notes(result["note"], result.pop("boot_note"))
    return result


def _count_matrix(counts: pd.DataFrame | np.ndarray) -> np.ndarray:
    frame = pd.DataFrame(counts)
    values = frame.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() | (values < 0) | (values % 1 != 0)
    if bad.to_numpy().any():
        row, column = next((r, c) for r in frame.index for c in frame.columns if bad.at[r, c])
        raise ReliabilityInputError(
            f"counts: row {row!r}, column {column!r}: {_shown(frame.at[row, column])} is not a "
            "count (a whole number >= 0). Each cell is the number of coders who chose the "
            "category for the unit."
        )
    return values.to_numpy(float)


def _fleiss_from_parts(agree: np.ndarray, share: np.ndarray) -> float:
    p_observed = agree.mean()
    p_chance = float((share.mean(axis=0) ** 2).sum())
    if np.isclose(p_chance, 1.0):
        return float("nan")
    return float((p_observed - p_chance) / (1.0 - p_chance))


def _bootstrap_fleiss(agree: np.ndarray, share: np.ndarray, n_boot: int, seed: int) -> dict:
    if not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise ReliabilityInputError(f"n_boot must be an integer >= 2, got {n_boot!r}.")
    rng = np.random.default_rng(seed)
    n = agree.shape[0]
    kappas = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        kappas[b] = _fleiss_from_parts(agree[idx], share[idx])
    n_undefined = int(np.isnan(kappas).sum())
    kept = kappas[~np.isnan(kappas)]
    note = ""
    if n_undefined:
        note = f"{n_undefined} of {n_boot} bootstrap resamples had one category only"
    if kept.size < 2:
        return {"boot_note": note}
    low, high = np.quantile(kept, [0.025, 0.975])
    return {
        "se": float(kept.std(ddof=1)),
        "ci_low": float(low),
        "ci_high": float(high),
        "boot_note": note,
    }


def kappa_table(
    units: pd.DataFrame,
    unit: str | Sequence[str] = "unit_id",
    rater: str = "coder",
    category: str = "category",
    by: str | Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Kappa per construct for categorical codes, Cohen's or Fleiss' as the design allows.

    Cohen's kappa when the same two coders categorised every double-coded unit;
    otherwise (three or more coders, or rotating pairs) Fleiss' kappa, which does not
    assume the same coders for every unit. Only units with two or more ratings are used.

    Parameters
    ----------
    units : pandas.DataFrame
        One row per unit x coder (x construct) with a category.
    unit : str or list of str
        Column(s) identifying the unit.
    rater : str
        Column with the coder id.
    category : str
        Column with the category given.
    by : str, list of str or None
        Column(s) to compute one kappa for each of, e.g. ``"construct"``.
    n_boot : int
        Bootstrap resamples for Fleiss' kappa.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``statistic`` (``"Cohen's kappa"`` or
        ``"Fleiss' kappa"``), ``n_units``, ``n_raters``, ``kappa``, ``se``, ``ci_low``,
        ``ci_high``, ``pct_agreement`` and ``note``. Groups with fewer than
        ``MIN_TARGETS`` double-coded units get NaN and a note.

    Raises
    ------
    ReliabilityInputError
        A column is missing, a value is empty, or a coder categorised a unit twice.

    See Also
    --------
    cohen_kappa, fleiss_kappa_table

    Examples
    --------
    >>> import pandas as pd
    >>> talk = ["change", "sustain", "neutral", "change", "neutral", "sustain"]
    >>> other = ["change", "sustain", "neutral", "neutral", "neutral", "sustain"]
    >>> units = pd.DataFrame(
    ...     {"unit_id": list(range(6)) * 2, "coder": ["A"] * 6 + ["B"] * 6,
    ...      "category": talk + other}
    ... )
    >>> kappa_table(units)[["statistic", "n_units", "kappa", "pct_agreement"]].round(3)
           statistic  n_units  kappa  pct_agreement
    0  Cohen's kappa        6   0.75         83.333
    """
    name = "units"
    unit_cols, by_cols = _as_list(unit), _as_list(by)
    _check_columns(units, [*unit_cols, rater, category, *by_cols], name)
    _check_complete(units, [*unit_cols, rater, category, *by_cols], name)
    _check_unique(units, [*by_cols, *unit_cols, rater], name)

    rows = []
    for key, group in _groups(units, by_cols):
        rows.append({**key, **_kappa_row(group, unit_cols, rater, category, n_boot, seed)})
    columns = [
        *by_cols,
        "statistic",
        "n_units",
        "n_raters",
        "kappa",
        "se",
        "ci_low",
        "ci_high",
        "pct_agreement",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)


_EMPTY_KAPPA = {
    "kappa": np.nan,
    "se": np.nan,
    "ci_low": np.nan,
    "ci_high": np.nan,
    "pct_agreement": np.nan,
}


def _kappa_row(
    group: pd.DataFrame, unit: list[str], rater: str, category: str, n_boot: int, seed: int
) -> dict:
    sizes = group.groupby(unit, sort=True).size()
    n_single = int((sizes < 2).sum())
    rated = group.set_index(unit).loc[sizes.index[sizes >= 2]]
    coder_sets = rated.groupby(level=unit, sort=True)[rater].agg(frozenset)
    pair = coder_sets.iloc[0] if coder_sets.nunique() == 1 else frozenset()
    cohen = len(pair) == 2
    base = {
        "statistic": COHEN_STATISTIC if cohen else FLEISS_STATISTIC,
        "n_units": len(coder_sets),
        "n_raters": int(rated[rater].nunique()),
    }
    single = _single_note(n_single, "units")
    if base["n_units"] < MIN_TARGETS:
        too_few = (
            f"{base['n_units']} units rated by two or more coders; at least {MIN_TARGETS} needed"
        )
        return {**base, **_EMPTY_KAPPA, "note": _join_notes(too_few, single)}
    rated = rated.reset_index()
    if cohen:
        first, second = sorted(pair, key=str)
        wide = rated.pivot(index=unit, columns=rater, values=category)
        res = cohen_kappa(wide[first], wide[second])
    else:
        counts = rated.groupby([*unit, category], sort=True).size().unstack(fill_value=0)
        res = fleiss_kappa_table(counts, n_boot=n_boot, seed=seed)
    res.pop("n")
    res["note"] = _join_notes(res["note"], single)
    return {**base, **res}


# --------------------------------------------------------------------------------------
# Gate
# --------------------------------------------------------------------------------------


def reliability_gate(
    table: pd.DataFrame,
    thresholds: dict,
    mode: str = "warn",
    by: str = "construct",
) -> list[str]:
    """Check each construct's reliability against its minimum.

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table`` from :func:`reliability_analysis` (values in
        ``estimate``), or the output of :func:`icc_table`, :func:`kappa_table`, or both
        concatenated (values in ``icc_a1`` for ICC rows, ``kappa`` for kappa rows). The
        ``statistic`` column says which rows are checked: ICC(A,1) against the ICC minimum,
        Cohen's and Fleiss' kappa against the kappa minimum; ICC(A,k) rows are not gated.
    thresholds : dict
        ``{"icc": 0.75, "kappa": 0.6, "per_construct": {"repaired": 0.8, ...}}``. A
        ``per_construct`` entry overrides the general minimum for that construct; None
        there exempts the construct.
    mode : {"warn", "strict"}
        ``"warn"`` returns the messages and issues one :class:`ReliabilityWarning`;
        ``"strict"`` raises :class:`ReliabilityGateError` if there is any message.
    by : str
        Column naming the construct; when absent, rows are called "all units".

    Returns
    -------
    list of str
        One message per construct below its minimum or without an estimate (a construct
        whose reliability cannot be estimated cannot show that it meets the minimum).
        Empty when all pass.

    Raises
    ------
    ReliabilityGateError
        In strict mode, naming each failing construct, its value and its minimum.
    ReliabilityInputError
        Unknown mode or threshold key, a minimum outside [-1, 1], or no minimum for a
        statistic present in the table.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures", "repaired"],
    ...                       "statistic": ["ICC(A,1)", "ICC(A,1)"],
    ...                       "icc_a1": [0.91, 0.62]})
    >>> reliability_gate(table, {"icc": 0.75})
    ['repaired: ICC(A,1) = 0.620 is below the minimum 0.75.']
    """
    if mode not in ("warn", "strict"):
        raise ReliabilityInputError(f"mode must be 'warn' or 'strict', got {mode!r}.")
    _check_thresholds(thresholds)
    _check_columns(table, ["statistic"], "table")
    per_construct = thresholds.get("per_construct", {})

    messages = []
    for index, row in table.iterrows():
        construct = row[by] if by in table.columns else "all units"
        gated = _gated_statistic(row["statistic"], index)
        if gated is None:
            continue
        kind, value_col = gated
        value_col = "estimate" if "estimate" in table.columns else value_col
        if construct in per_construct:
            minimum = per_construct[construct]
        elif kind in thresholds:
            minimum = thresholds[kind]
        else:
            raise ReliabilityInputError(
                f"thresholds: no minimum for {kind!r} (needed for {construct!r}); add "
                f"thresholds[{kind!r}] or a per_construct entry."
            )
        if minimum is not None:
            message = _gate_message(construct, row, value_col, minimum)
            if message:
                messages.append(message)

    if messages and mode == "strict":
        raise ReliabilityGateError(
            "Inter-rater reliability below the minimum:\n" + "\n".join(messages)
        )
    if messages:
        warnings.warn("\n".join(messages), ReliabilityWarning, stacklevel=2)
    return messages


def _check_thresholds(thresholds: dict) -> None:
    if not isinstance(thresholds, dict):
        raise ReliabilityInputError(f"thresholds must be a dict, got {type(thresholds)!r}.")
    unknown = set(thresholds) - _THRESHOLD_KEYS
    if unknown:
        raise ReliabilityInputError(
            f"thresholds: unknown key(s) {sorted(unknown)}; use {sorted(_THRESHOLD_KEYS)}."
        )
    per_construct = thresholds.get("per_construct", {})
    if not isinstance(per_construct, dict):
        raise ReliabilityInputError("thresholds['per_construct'] must map construct -> minimum.")
    named = [(k, thresholds[k]) for k in ("icc", "kappa") if k in thresholds]
    named += [(f"per_construct[{c!r}]", v) for c, v in per_construct.items() if v is not None]
    for key, value in named:
        if not isinstance(value, int | float) or not -1.0 <= value <= 1.0:
            raise ReliabilityInputError(
                f"thresholds: {key} = {value!r} is not a number between -1 and 1."
            )


def _gated_statistic(statistic: str, index) -> tuple[str, str] | None:
    if statistic not in _GATED:
        raise ReliabilityInputError(
            f"table: row {index!r}, column 'statistic': {statistic!r} is not one of "
            f"{sorted(_GATED)}; pass a table made by icc_table or kappa_table."
        )
    return _GATED[statistic]


def _gate_message(construct, row: pd.Series, value_col: str, minimum: float) -> str:
    value = row[value_col]
    statistic = row["statistic"]
    if pd.isna(value):
        reason = f" ({row['note']})" if "note" in row.index and row["note"] else ""
        return (
            f"{construct}: {statistic} could not be estimated{reason}, so it cannot be shown "
            f"to reach the minimum {minimum:g}."
        )
    if value < minimum:
        return f"{construct}: {statistic} = {value:.3f} is below the minimum {minimum:g}."
    return ""


# --------------------------------------------------------------------------------------
# The reliability analysis of a coded study
# --------------------------------------------------------------------------------------

#: Categorical unit-level codes compared with kappa: name -> ``categories`` (category
#: label -> construct of the codebook) and ``units`` (``"logged"``: every unit of the
#: double-coded sessions, a unit without any of the constructs being ``"none"``;
#: ``"coded"``: only units where some coder gave one of the categories, for schemes that
#: code every unit of a kind, such as client utterances).
DEFAULT_CATEGORICAL = {
    "rupture_type": {
        "categories": {
            "withdrawal": "rupture_withdrawal",
            "confrontation": "rupture_confrontation",
        },
        "units": "logged",
    },
    "client_talk_type": {
        "categories": {
            "change": "change_talk",
            "neutral": "neutral_talk",
            "sustain": "sustain_talk",
        },
        "units": "coded",
    },
}
NO_CATEGORY = "none"
TABLE_COLUMNS = [
    "construct",
    "level",
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "n_targets",
    "n_raters",
    "pct_agreement",
    "label",
    "note",
]
_UNIT_ID = [*SESSION_KEY, "unit"]
_ROLE_ORDER = pd.CategoricalDtype(["primary", "reliability"], ordered=True)

#: Names printed for the default codebook's constructs; others print as written.
CONSTRUCT_LABELS = {
    "ruptures": "Ruptures",
    "rupture_withdrawal": "Withdrawal ruptures",
    "rupture_confrontation": "Confrontation ruptures",
    "repaired": "Repaired ruptures",
    "resolution_mean": "Resolution rating",
    "repair_strategies": "Resolution strategies",
    "resistance": "Resistance (all four)",
    "resistance_arguing": "Arguing",
    "resistance_interrupting": "Interrupting",
    "resistance_denying": "Denying",
    "resistance_ignoring": "Ignoring",
    "sustain_talk": "Sustain talk",
    "change_talk": "Change talk",
    "neutral_talk": "Neutral talk",
    "discord": "Discord",
    "rupture_type": "Rupture type",
    "client_talk_type": "Client talk type",
}


def construct_label(construct: str) -> str:
    """The printed name of a construct: :data:`CONSTRUCT_LABELS`, else the name with spaces.

    Examples
    --------
    >>> construct_label("rupture_withdrawal"), construct_label("my_scale")
    ('Withdrawal ruptures', 'My scale')
    """
    return CONSTRUCT_LABELS.get(construct, str(construct).replace("_", " ").capitalize())


@dataclass
class ReliabilityResult:
    """Inter-rater reliability of every construct of a coded study.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per construct and statistic (tidy): ``construct``, ``level``
        (``"session"``: counts per session; ``"unit"``: ratings and categorical codes per
        segment or utterance), ``statistic`` (ICC(A,1), ICC(A,k), Cohen's kappa, Fleiss'
        kappa), ``estimate``, ``ci_low``, ``ci_high`` (95%), ``n_targets`` (sessions or
        units coded by two or more coders), ``n_raters`` (distinct coders),
        ``pct_agreement`` (targets on which all coders gave the same value), ``label``
        (Koo & Li, 2016) and ``note``. No identifiers.
    icc : pandas.DataFrame
        :func:`icc_table` output for the ICC rows (design, ratings per target, ICC(1,1)).
    kappa : pandas.DataFrame
        :func:`kappa_table` output for the kappa rows (standard errors).
    sample : dict
        The reliability sample: ``source`` (``"coding log"`` or ``"codes"``),
        ``coded_sessions``, ``double_coded_sessions``, ``coders``, ``double_coded_units``,
        ``n_boot`` and ``note``.
    """

    table: pd.DataFrame
    icc: pd.DataFrame
    kappa: pd.DataFrame
    sample: dict = field(default_factory=dict)


def reliability_analysis(
    codes: pd.DataFrame,
    coding_log: pd.DataFrame | None,
    codebook: Codebook,
    *,
    repair_threshold: float = 4,
    categorical: Mapping[str, Mapping] | None = None,
    seed: int = 0,
    n_boot: int = 2000,
) -> ReliabilityResult:
    """Inter-rater reliability of every construct, from the double-coded sessions.

    The reliability sample is every session with two or more coders in the coding log.
    Each coder's codes of those sessions are made into the constructs of the codebook
    the same way the analysis makes them (:func:`resistance_outcomes.codebook.
    unit_level_codes`), over every unit the coder logged: a logged unit without codes
    is coded "nothing found", and a logged coder without any code in a session has 0 for
    every count. Then:

    - counts per session (ruptures by type, repaired ruptures, strategies, each resistance
      behaviour, ...): ICC(A,1) and ICC(A,k) over the double-coded sessions;
    - ratings (``mean_rating`` constructs, such as the resolution rating): ICC(A,1) and
      ICC(A,k) per unit, over units every coder of the session rated (a rating belongs to
      a unit, and a session mean would lose sessions where one coder saw no rupture);
    - categorical codes per unit (``categorical``): Cohen's kappa when one pair of coders
      coded every unit, Fleiss' kappa otherwise (bootstrap CI over units).

    Parameters
    ----------
    codes : pandas.DataFrame
        Canonical code table (``study``, ``client``, ``session``, ``unit``, ``coder``,
        ``code``, optionally ``value`` and ``role``), codes as in the codebook.
    coding_log : pandas.DataFrame or None
        Canonical coding log (``study``, ``client``, ``session``, ``coder``, ``units``,
        optionally ``role``). None or empty: the sample is inferred from the codes (each
        coder with codes in a session, units 1 .. the highest unit coded), which misses
        coders who coded nothing and units after the last code.
    codebook : Codebook
    repair_threshold : float
        Rating at or above which a rupture unit counts as repaired.
    categorical : mapping, optional
        Categorical codes compared per unit; default :data:`DEFAULT_CATEGORICAL`. Only
        those with codes in ``codes`` are computed. A unit whose coder gave two of the
        categories gets both, joined by "+".
    seed : int
        Seed of the bootstrap of Fleiss' kappa.
    n_boot : int
        Bootstrap resamples for Fleiss' kappa.

    Returns
    -------
    ReliabilityResult

    Raises
    ------
    ReliabilityInputError
        A column is missing; a coder has codes in a double-coded session without being
        logged for it; a category names a construct not in the codebook.

    Notes
    -----
    With roles given (``role`` in the coding log, or in the codes), the primary coder's
    rating is the first rating of a session in rotating designs (see :func:`icc_table`),
    so a systematic difference between primary and reliability coders counts against
    absolute agreement. Labels follow Koo & Li (2016) for ICCs and, with the same cut-offs,
    for kappas (for two categories kappa is an ICC; Fleiss & Cohen, 1973).

    References
    ----------
    Fleiss, J. L., & Cohen, J. (1973). The equivalence of weighted kappa and the intraclass
    correlation coefficient as measures of reliability. Educational and Psychological
    Measurement, 33(3), 613-619.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.codebook import load_codebook
    >>> codebook = load_codebook("config/codebook.yaml")  # doctest: +SKIP
    >>> log = pd.DataFrame({"study": "s", "client": "1", "session": [1, 1, 2, 2],
    ...                     "coder": ["A", "B", "A", "B"], "units": 5})
    >>> codes = pd.DataFrame({"study": "s", "client": "1", "session": [1, 1, 2],
    ...                       "unit": [3, 3, 1], "coder": ["A", "B", "A"],
    ...                       "code": ["W_MIN", "W_DEN", "C_REJ"]})
    >>> result = reliability_analysis(codes, log, codebook)  # doctest: +SKIP
    >>> result.table.iloc[-1][["construct", "statistic", "n_targets", "pct_agreement"]]
    ... # doctest: +SKIP
    construct        rupture_type
    statistic       Cohen's kappa
    n_targets                  10
    pct_agreement            90.0
    Name: 12, dtype: object

    Ten logged units, one disagreement (session 2, unit 1: B coded nothing there); the
    counts of two sessions are too few for an ICC (NaN, with a note).
    """
    categorical = DEFAULT_CATEGORICAL if categorical is None else categorical
    _check_columns(codes, [*_UNIT_ID, "coder", "code"], "codes")
    log, sample = _reliability_log(codes, coding_log)
    _check_logged_coders(codes, log)
    double = log.groupby(SESSION_KEY, observed=True)["coder"].transform("nunique") >= 2
    log = log[double.to_numpy()]
    in_sample = _in_log(codes, log, SESSION_KEY)
    present = codes["code"].dropna().unique()
    constructs = codebook.active_constructs(present)
    units = unit_level_codes(
        codes[in_sample], codebook, repair_threshold, constructs, coding_log=log
    )
    units = units[[c for c in units.columns if c != "analysis_coder"]]
    slot_by = "role" if "role" in units.columns and units["role"].notna().all() else None
    if slot_by:
        units["role"] = units["role"].astype(str).astype(_ROLE_ORDER)
    icc = _icc_rows(units, codebook, present, constructs, slot_by)
    kappa = _kappa_rows(units, codebook, present, categorical, n_boot, seed)
    sample.update(
        double_coded_sessions=int(log[SESSION_KEY].drop_duplicates().shape[0]),
        coders=int(log["coder"].nunique()),
        double_coded_units=int(units[_UNIT_ID].drop_duplicates().shape[0]),
        n_boot=n_boot,
    )
    return ReliabilityResult(_tidy(icc, kappa), icc, kappa, sample)


def _reliability_log(codes: pd.DataFrame, coding_log: pd.DataFrame | None):
    """The coding log, or one inferred from the codes; and the sample description."""
    if coding_log is not None and not coding_log.empty:
        _check_columns(coding_log, [*CODER_KEY, "units"], "coding_log")
        _check_complete(coding_log, [*CODER_KEY, "units"], "coding_log")
        log = coding_log.reset_index(drop=True)
        sample = {"source": "coding log", "note": ""}
    else:
        frame = codes.dropna(subset=[*CODER_KEY, "unit"])
        aggregations = {"units": ("unit", "max")}
        if "role" in frame.columns:
            aggregations["role"] = ("role", "first")
        log = frame.groupby(CODER_KEY, observed=True).agg(**aggregations).reset_index()
        sample = {
            "source": "codes",
            "note": "No coding log: the reliability sample is inferred from the codes, so "
            "coders who coded nothing in a session and units after a coder's last code are "
            "not counted.",
        }
    sample["coded_sessions"] = int(log[SESSION_KEY].drop_duplicates().shape[0])
    return log, sample


def _in_log(frame: pd.DataFrame, log: pd.DataFrame, keys: list[str]) -> np.ndarray:
    logged = pd.MultiIndex.from_frame(log[keys].astype(object))
    return pd.MultiIndex.from_frame(frame[keys].astype(object)).isin(logged)


def _check_logged_coders(codes: pd.DataFrame, log: pd.DataFrame) -> None:
    complete = codes.dropna(subset=CODER_KEY)
    unlogged = ~_in_log(complete, log, CODER_KEY)
    if unlogged.any():
        row = complete.index[unlogged][0]
        key = ", ".join(f"{k}={complete.at[row, k]!r}" for k in CODER_KEY)
        raise ReliabilityInputError(
            f"codes: row {row!r} ({key}): the coding log has no row for this coder in this "
            "session. Add the coder to the coding log (resistance_outcomes.validate."
            "check_coding_log lists every such row)."
        )


def _icc_rows(units, codebook, present, constructs, slot_by) -> pd.DataFrame:
    """ICCs of the per-session counts and of the per-unit ratings."""
    rated = {c for c in constructs if codebook.constructs[c].aggregate == "mean_rating"}
    counts = [c for c in codebook.session_columns(present) if c not in rated]
    keep = [*CODER_KEY, *([slot_by] if slot_by else [])]
    per_session = session_values_by_coder(units, codebook, counts)
    ratings = per_session.melt(keep, counts, var_name="construct", value_name="value")
    parts = [_ordered_icc(ratings, SESSION_KEY, counts, slot_by).assign(level="session")]
    rating_rows = []
    for name in [c for c in constructs if c in rated]:
        within = units.get(codebook.constructs[name].within, 0) > 0
        scoped = units[within & units[name].notna()]
        rating_rows.append(scoped[[*keep, "unit", name]].rename(columns={name: "value"}))
        rating_rows[-1]["construct"] = name
    if rating_rows:
        long = pd.concat(rating_rows, ignore_index=True)
        ordered = [c for c in constructs if c in rated]
        parts.append(_ordered_icc(long, _UNIT_ID, ordered, slot_by).assign(level="unit"))
    return pd.concat(parts, ignore_index=True)


def _ordered_icc(ratings, targets, order, slot_by) -> pd.DataFrame:
    """ICCs in codebook order; a construct without ratings gets a row saying so."""
    ratings = ratings.assign(construct=pd.Categorical(ratings["construct"], categories=order))
    name = "sessions" if targets == SESSION_KEY else "units"
    out = icc_table(ratings, targets, "coder", "value", "construct", slot_by, name)
    out = out.assign(construct=out["construct"].astype(str)).set_index("construct")
    out = out.reindex(order)
    unrated = out["statistic"].isna()
    out.loc[unrated, ["statistic", "design", "label"]] = [ICC_STATISTIC, "none", "not estimable"]
    out.loc[unrated, ["n_targets", "n_raters", "ratings_per_target"]] = 0
    out.loc[unrated, "note"] = f"no {name[:-1]} rated by two or more coders"
    return out.reset_index()


def _kappa_rows(units, codebook, present, categorical, n_boot, seed) -> pd.DataFrame:
    """Kappa of each categorical code with codes present, over its units."""
    parts = []
    for name, spec in categorical.items():
        categories = dict(spec["categories"])
        unknown = [c for c in categories.values() if c not in codebook.constructs]
        if unknown:
            raise ReliabilityInputError(
                f"categorical[{name!r}]: construct {unknown[0]!r} is not in the codebook "
                f"({codebook.source})."
            )
        if not set().union(*map(codebook.codes_of, categories.values())) & set(present):
            continue
        frame = units[[*_UNIT_ID, "coder"]].assign(
            category=_unit_categories(units, categories), construct=name
        )
        if spec.get("units", "logged") == "coded":
            coded = (
                frame["category"]
                .ne(NO_CATEGORY)
                .groupby([frame[k] for k in _UNIT_ID], observed=True)
                .transform("any")
            )
            frame = frame[coded.to_numpy()]
        parts.append(frame)
    columns = ["construct", "statistic", "n_units", "n_raters", "kappa", "se", "ci_low",
               "ci_high", "pct_agreement", "note"]  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)
    frame["construct"] = pd.Categorical(frame["construct"], categories=list(categorical))
    out = kappa_table(frame, _UNIT_ID, "coder", "category", "construct", n_boot, seed)
    return out.assign(construct=out["construct"].astype(str), level="unit")


def _unit_categories(units: pd.DataFrame, categories: dict[str, str]) -> pd.Series:
    """Each unit's category: the labels of the constructs present joined by "+", or
    "none"."""
    joined = pd.Series("", index=units.index, dtype=object)
    for label, construct in categories.items():
        if construct not in units.columns:
            continue
        separator = np.where(joined.ne(""), "+", "")
        joined = joined.where(~units[construct].gt(0), joined + separator + label)
    return joined.where(joined.ne(""), NO_CATEGORY)


def _tidy(icc: pd.DataFrame, kappa: pd.DataFrame) -> pd.DataFrame:
    """One row per construct and statistic, in the order of the analysis."""
    rows = []
    for _, row in icc.iterrows():
        for statistic, prefix in ((ICC_STATISTIC, "icc_a1"), (ICC_K_STATISTIC, "icc_ak")):
            estimate = row[prefix]
            rows.append(
                {
                    "construct": row["construct"],
                    "level": row["level"],
                    "statistic": statistic,
                    "estimate": estimate,
                    "ci_low": row[f"{prefix}_ci_low"],
                    "ci_high": row[f"{prefix}_ci_high"],
                    "n_targets": row["n_targets"],
                    "n_raters": row["n_raters"],
                    "pct_agreement": row["pct_agreement"],
                    "label": koo_li_label(estimate),
                    "note": row["note"],
                }
            )
    for _, row in kappa.iterrows():
        rows.append(
            {
                **{key: row[key] for key in ("construct", "level", "statistic")},
                "estimate": row["kappa"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "n_targets": row["n_units"],
                "n_raters": row["n_raters"],
                "pct_agreement": row["pct_agreement"],
                "label": koo_li_label(row["kappa"]),
                "note": row["note"],
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.astype({"estimate": float, "ci_low": float, "ci_high": float,
                         "pct_agreement": float})  # fmt: skip


# --------------------------------------------------------------------------------------
# Publication table
# --------------------------------------------------------------------------------------

_GROUPS = {
    "session": "Counts per session",
    "unit ICC": "Ratings per unit",
    "unit kappa": "Categorical codes per unit",
}


def _group_of(row: pd.Series) -> str:
    if row["level"] == "session":
        return "session"
    return "unit ICC" if str(row["statistic"]).startswith("ICC") else "unit kappa"


def format_reliability_table(
    table: pd.DataFrame, number: int = 1, sample: dict | None = None
) -> ApaTable:
    """The reliability table in APA style, ready for :func:`resistance_outcomes.tables.
    to_markdown`, ``to_latex`` or ``to_docx``.

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table`` (also as read back from CSV).
    number : int
        Table number.
    sample : dict, optional
        ``ReliabilityResult.sample``; adds the size of the reliability sample and, for
        Fleiss' kappa, the number of bootstrap resamples to the note.

    Returns
    -------
    resistance_outcomes.tables.ApaTable
        Panels by kind (counts per session, ratings per unit, categorical codes per unit);
        columns construct, statistic, estimate, 95% CI, *n*, coders, % agreement and
        interpretation. Each construct's notes (why a value is missing, targets left out)
        follow the general note.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures"], "level": ["session"],
    ...     "statistic": ["ICC(A,1)"], "estimate": [0.912], "ci_low": [0.88],
    ...     "ci_high": [0.94], "n_targets": [120], "n_raters": [4],
    ...     "pct_agreement": [71.7], "label": ["excellent"], "note": [""]})
    >>> format_reliability_table(table).rows.iloc[0].tolist()
    ['Ruptures', 'ICC(A,1)', '.91', '[.88, .94]', '120', '4', '71.7', 'excellent']
    """
    _check_columns(table, TABLE_COLUMNS, "table")
    groups = table.apply(_group_of, axis=1) if len(table) else pd.Series(dtype=str)
    order = [g for g in _GROUPS if (groups == g).any()]
    ordered = pd.concat([table[groups == g] for g in order]) if order else table
    cells = [
        [
            construct_label(row["construct"]),
            str(row["statistic"]),
            format_bounded(row["estimate"]),
            format_ci(*np.clip([row["ci_low"], row["ci_high"]], -1, 1), bounded=True),
            str(int(row["n_targets"])),
            str(int(row["n_raters"])),
            format_number(row["pct_agreement"], 1),
            row["label"] if row["label"] != "not estimable" else MISSING,
        ]
        for _, row in ordered.iterrows()
    ]
    return ApaTable(
        number=number,
        title="Inter-Rater Reliability of the Coded Constructs",
        columns=[
            "Construct",
            "Statistic",
            "Estimate",
            "95% CI",
            "n",
            "Coders",
            "% agreement",
            "Interpretation",
        ],  # fmt: skip
        rows=pd.DataFrame(cells, columns=range(8), dtype=object),
        row_groups=[(_GROUPS[g], int((groups == g).sum())) for g in order] or None,
        note=_reliability_note(ordered, sample),
    )


def _reliability_note(table: pd.DataFrame, sample: dict | None) -> str:
    general = (
        "ICC(A,1) = two-way random-effects, absolute-agreement intraclass correlation of a "
        "single coder; ICC(A,k) = of the mean of the k coders (McGraw & Wong, 1996), with "
        "F-based 95% CIs. Cohen's kappa for one pair of coders (large-sample CI), Fleiss' "
        "kappa for several or rotating coders (bootstrap CI over units). n = sessions or "
        "units coded by two or more coders; % agreement = share of them on which all "
        "coders gave the same value. Interpretation after Koo and Li (2016): below .50 "
        "poor, .50 to .75 moderate, .75 to .90 good, above .90 excellent."
    )
    if (table["ci_low"] < -1).any():
        general += " CI limits below \u22121 (few targets) are shown as \u22121.00."
    if sample:
        general += (
            f" Reliability sample: {sample.get('double_coded_sessions', 0)} of "
            f"{sample.get('coded_sessions', 0)} coded sessions coded by two or more coders "
            f"(from the {sample.get('source', 'coding log')})."
        )
        if sample.get("n_boot") and table["statistic"].eq(FLEISS_STATISTIC).any():
            general += f" Bootstrap: {sample['n_boot']} resamples."
        if sample.get("note"):
            general += f" {sample['note']}"
    specific = []
    for construct, rows in table.groupby("construct", sort=False):
        for note in dict.fromkeys(n for n in rows["note"].fillna("") if n):
            specific.append(f"{construct_label(construct)}: {note}.")
    return "\n".join([general, *specific])


def reliability_markdown(
    table: pd.DataFrame, number: int = 1, sample: dict | None = None, path=None
) -> str:
    """The reliability table as Markdown (see :func:`format_reliability_table`).

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table``.
    number : int
        Table number.
    sample : dict, optional
        ``ReliabilityResult.sample``.
    path : str or path-like, optional
        When given, the Markdown is also written there (atomically).

    Returns
    -------
    str

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures"], "level": ["session"],
    ...     "statistic": ["ICC(A,1)"], "estimate": [0.912], "ci_low": [0.88],
    ...     "ci_high": [0.94], "n_targets": [120], "n_raters": [4],
    ...     "pct_agreement": [71.7], "label": ["excellent"], "note": [""]})
    >>> print(reliability_markdown(table).splitlines()[6])
    | *Counts per session* |  |  |  |  |  |  |  |
    """
    return to_markdown(format_reliability_table(table, number, sample), path)
