"""Inter-rater reliability statistics: ICCs for ratings and counts, kappas for categories.

Pure functions on tidy frames; nothing here knows a study, a codebook or a construct.

*Ratings* (for :func:`icc_table`): one row per target x coder (x construct), with a
numeric value. A target is whatever was rated: usually a session, identified by
``["study", "client", "session"]``, with the construct count made from one coder's codes,
e.g. columns ``study, client, session, coder, construct, value``.

*Units* (for :func:`kappa_table`): one row per coded unit x coder (x construct), with a
category, e.g. columns ``unit_id, coder, category`` (a category per utterance, or a marker
present/absent per segment).

Only targets or units rated by two or more coders (the reliability sample) enter the
statistics; the others are counted in the ``note`` column. Results are tidy DataFrames
holding no target or unit identifiers. :func:`koo_li_label` labels a coefficient with the
Koo & Li (2016) benchmarks.
"""

import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pingouin as pg
from statsmodels.stats.inter_rater import cohens_kappa as _sm_cohens_kappa

__all__ = [
    "COHEN_STATISTIC",
    "FLEISS_STATISTIC",
    "ICC_K_STATISTIC",
    "ICC_STATISTIC",
    "MIN_TARGETS",
    "ReliabilityInputError",
    "cohen_kappa",
    "fleiss_kappa_table",
    "icc_table",
    "kappa_table",
    "koo_li_label",
]

MIN_TARGETS = 5
"""Fewest double-rated targets (or units) for which a table reports a coefficient."""

ICC_STATISTIC = "ICC(A,1)"
ICC_K_STATISTIC = "ICC(A,k)"
COHEN_STATISTIC = "Cohen's kappa"
FLEISS_STATISTIC = "Fleiss' kappa"


class ReliabilityInputError(ValueError):
    """Input to a reliability function is malformed (missing column, bad value, duplicate)."""


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
    >>> first = ["yes", "no", "unsure", "yes", "unsure", "no"]
    >>> second = ["yes", "no", "unsure", "unsure", "unsure", "no"]
    >>> units = pd.DataFrame(
    ...     {"unit_id": list(range(6)) * 2, "coder": ["A"] * 6 + ["B"] * 6,
    ...      "category": first + second}
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
