"""APA 7 publication tables: number formatting, small-cell suppression and table writers.

Three jobs, in the order a table is made:

1. **Format numbers** as APA 7 prints them (Publication Manual, 7th ed., sections 6.36
   "Decimal Fractions", 6.38 "Commas in Numbers", 6.44 "Statistical Symbols"):
   :func:`format_number`, :func:`format_bounded` (statistics that cannot exceed 1:
   correlations, ICCs, R², kappa, proportions; no leading zero), :func:`format_p`,
   :func:`format_ci`, :func:`format_mean_sd`, :func:`format_n_pct`,
   :func:`significance_stars` and :func:`probability_note`.
2. **Suppress small cells** so that published tables cannot identify a person:
   :func:`suppress_count` and, for a whole frame, :func:`suppress_cells` (primary
   suppression; complementary suppression of totals is the job of the table that knows its
   margins).
3. **Write** an :class:`ApaTable` of formatted text as Markdown (:func:`to_markdown`),
   LaTeX with booktabs rules (:func:`to_latex`) or Word (:func:`to_docx`); write the
   unformatted numbers behind it with :func:`to_csv`. Every writer given a path writes a
   temporary file in the same folder and renames it, so a reader never sees half a file.
   In Word, :func:`docx_layout` sizes the columns to their content (measured with
   :func:`text_width`) and puts a table too wide for a portrait page on a landscape one.

Conventions chosen here (APA leaves them open):

* Rounding is half-up on the number as Python prints it (``repr``): 0.125 -> 0.13 and
  2.675 -> 2.68, as a reader rounding the printed value by hand would get (binary
  round-half-even would give 0.12 and 2.67).
* A value that rounds to zero is printed without a sign: -0.001 -> "0.00".
* Negative numbers carry the true minus sign U+2212 (:data:`MINUS`), which Word, HTML and
  Markdown render at the width of a plus sign; :func:`to_latex` turns it into ``$-$``, which
  every LaTeX engine typesets. Pass ``minus="-"`` for plain ASCII. CSV files hold the
  unformatted numbers, so they use the ASCII hyphen-minus of the number itself.
* Missing values are printed as an em dash (:data:`MISSING`; APA tables mark a cell without
  data with a dash explained in the note); pass ``missing=""`` for a blank cell (not
  applicable).
* p values have three decimals; below .001 they read "< .001" (APA 7 section 6.36). A p
  value that rounds to 1.000 reads "> .999": p cannot exceed 1, so no leading zero, and
  "1.000" would claim a certainty the test cannot give. Significance stars are decided on the
  unrounded p: p = .04999 is printed ".050" and still earns "*" at alpha = .05.
* Statistical symbols in column headings, spanners and notes (M, SD, n, p, ...; see
  :data:`STATISTICAL_SYMBOLS`) are set in italics by every writer (APA 7 section 6.44).
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import pandas as pd

from .io import write_atomically, write_table, write_text

__all__ = [
    "MINUS",
    "MISSING",
    "STATISTICAL_SYMBOLS",
    "CELL_MARGIN",
    "MIN_FONT_SIZE",
    "PAGE_MARGIN",
    "PAPER_SIZES",
    "ApaTable",
    "DocxLayout",
    "TableFormatError",
    "docx_layout",
    "format_bounded",
    "format_ci",
    "format_mean_sd",
    "format_n_pct",
    "format_number",
    "format_p",
    "probability_note",
    "significance_stars",
    "suppress_cells",
    "suppress_count",
    "text_width",
    "title_case",
    "to_csv",
    "to_docx",
    "to_latex",
    "to_markdown",
]

MINUS = "\u2212"
"""The true minus sign (U+2212), used for negative numbers by default."""

MISSING = "\u2014"
"""The em dash printed for a missing value by default."""

INFINITY = "\u221e"

STATISTICAL_SYMBOLS: tuple[str, ...] = (
    "M", "SD", "SE", "n", "N", "p", "t", "z", "F", "r", "R", "R²", "b", "B", "d", "df",
    "k", "LL", "UL",
)  # fmt: skip
"""Symbols italicised in headings, spanners and notes (APA 7 section 6.44; Greek letters and
abbreviations such as CI, ICC, OR are set upright)."""

_P_FLOOR = 0.001
_TOLERANCE = 1e-12  # floating-point slack for bounds such as |r| <= 1 and p <= 1
_DECIMAL_PRECISION = 1000  # digits for Decimal rounding; enough for any float


class TableFormatError(ValueError):
    """A value or table cannot be formatted as asked (wrong type, out of range, bad layout)."""


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------


def _to_float(value, what: str) -> float:
    """Return ``value`` as a float (NaN when missing); refuse anything that is not a number."""
    if value is None or value is pd.NA or value is pd.NaT:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TableFormatError(
            f"{what} must be a number, got {value!r} ({type(value).__name__}). "
            "Pass the unformatted numeric value."
        )
    return float(value)


def _check_decimals(decimals, what: str) -> None:
    if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral) or decimals < 0:
        raise TableFormatError(f"{what}: decimals must be a whole number >= 0, got {decimals!r}.")


def _fixed(x: float, decimals: int, *, leading_zero: bool, thousands: bool, minus: str) -> str:
    """Round half-up to ``decimals`` places and print; no sign on a rounded zero."""
    if math.isinf(x):
        return (minus if x < 0 else "") + INFINITY
    with localcontext(prec=_DECIMAL_PRECISION):
        rounded = Decimal(repr(x)).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
    text = format(abs(rounded), f"{',' if thousands else ''}.{decimals}f")
    if not leading_zero and text.startswith("0."):
        text = text[1:]
    return (minus if rounded < 0 else "") + text


def format_number(
    x,
    decimals: int = 2,
    leading_zero: bool = True,
    *,
    thousands: bool = True,
    minus: str = MINUS,
    missing: str = MISSING,
) -> str:
    """Format a number as APA 7 prints it.

    Parameters
    ----------
    x : float or int
        The value. ``None`` and NaN are missing.
    decimals : int, default 2
        Decimal places, rounded half-up on the printed value.
    leading_zero : bool, default True
        Keep the zero before the decimal point. APA 7 (section 6.36) drops it only for
        statistics that cannot exceed 1 in absolute value; see :func:`format_bounded`.
    thousands : bool, default True
        Group digits of numbers of 1,000 or more with commas (APA 7 section 6.38). Pass
        False for degrees of freedom, page numbers and serial numbers.
    minus : str, default :data:`MINUS`
        Sign printed before negative numbers.
    missing : str, default :data:`MISSING`
        Text printed for a missing value.

    Returns
    -------
    str
        The formatted number; infinite values print as "∞" with their sign.

    Raises
    ------
    TableFormatError
        When ``x`` is not a number or ``decimals`` is not a whole number >= 0.

    Examples
    --------
    >>> from resistance_outcomes.tables import format_number
    >>> format_number(0.125), format_number(-1.5, 1), format_number(1314.2, 0)
    ('0.13', '−1.5', '1,314')
    >>> format_number(float("nan")), format_number(-0.5, minus="-")
    ('—', '-0.50')
    """
    _check_decimals(decimals, "format_number")
    value = _to_float(x, "format_number: x")
    if math.isnan(value):
        return missing
    return _fixed(value, decimals, leading_zero=leading_zero, thousands=thousands, minus=minus)


def format_bounded(x, decimals: int = 2, *, minus: str = MINUS, missing: str = MISSING) -> str:
    """Format a statistic that cannot exceed 1 in absolute value, without a leading zero.

    Correlations, ICCs, R², kappas and proportions are printed as ".43" and "−.12"
    (APA 7 section 6.36); the values 1 and -1 themselves keep their digit ("1.00").

    Parameters
    ----------
    x : float
        The value, between -1 and 1. ``None`` and NaN are missing.
    decimals : int, default 2
        Decimal places, rounded half-up.
    minus : str, default :data:`MINUS`
        Sign printed before negative values.
    missing : str, default :data:`MISSING`
        Text printed for a missing value.

    Returns
    -------
    str
        The formatted value.

    Raises
    ------
    TableFormatError
        When ``x`` is not a number or lies outside [-1, 1].

    Examples
    --------
    >>> from resistance_outcomes.tables import format_bounded
    >>> format_bounded(0.4321), format_bounded(-0.118), format_bounded(1)
    ('.43', '−.12', '1.00')
    """
    _check_decimals(decimals, "format_bounded")
    value = _to_float(x, "format_bounded: x")
    if math.isnan(value):
        return missing
    if abs(value) > 1 + _TOLERANCE:
        raise TableFormatError(
            f"format_bounded: {value!r} lies outside [-1, 1]. Use it only for correlations, "
            "ICCs, R², kappas and proportions; use format_number for other statistics."
        )
    value = max(-1.0, min(1.0, value))
    return _fixed(value, decimals, leading_zero=False, thousands=False, minus=minus)


def format_p(p, *, missing: str = MISSING) -> str:
    """Format a p value: three decimals, no leading zero, "< .001" below .001.

    Follows APA 7 section 6.36: exact p values to three decimals without a leading zero,
    and p < .001 for smaller values. A p value that rounds to 1.000 reads "> .999".

    Parameters
    ----------
    p : float
        The p value, between 0 and 1. ``None`` and NaN are missing.
    missing : str, default :data:`MISSING`
        Text printed for a missing value.

    Returns
    -------
    str
        The formatted p value, e.g. ".040", "< .001" or "> .999".

    Raises
    ------
    TableFormatError
        When ``p`` is not a number or lies outside [0, 1].

    Examples
    --------
    >>> from resistance_outcomes.tables import format_p
    >>> format_p(0.0004), format_p(0.04), format_p(0.04999), format_p(1.0)
    ('< .001', '.040', '.050', '> .999')
    """
    value = _to_float(p, "format_p: p")
    if math.isnan(value):
        return missing
    if value < 0 or value > 1 + _TOLERANCE:
        raise TableFormatError(
            f"format_p: p must lie between 0 and 1, got {value!r}. "
            "Pass a probability, not a percentage or a test statistic."
        )
    if value < _P_FLOOR:
        return "< .001"
    text = _fixed(min(value, 1.0), 3, leading_zero=False, thousands=False, minus="-")
    return "> .999" if text == "1.000" else text


def _check_levels(levels: Sequence[float]) -> list[float]:
    levels = [float(level) for level in levels]
    if (
        not levels
        or any(not 0 < level < 1 for level in levels)
        or levels != sorted(set(levels), reverse=True)
    ):
        raise TableFormatError(
            f"Significance levels must be distinct, between 0 and 1 and in decreasing order "
            f"(e.g. (.05, .01, .001)); got {levels!r}."
        )
    return levels


def significance_stars(p, levels: Sequence[float] = (0.05, 0.01, 0.001)) -> str:
    """Return one star for each significance level the unrounded p value falls below.

    Parameters
    ----------
    p : float
        The p value. ``None`` and NaN give no stars.
    levels : sequence of float, default (.05, .01, .001)
        Significance levels in decreasing order; the note is made by
        :func:`probability_note` with the same levels.

    Returns
    -------
    str
        "", "*", "**", ... .

    Examples
    --------
    >>> from resistance_outcomes.tables import significance_stars
    >>> significance_stars(0.04999), significance_stars(0.05), significance_stars(0.0002)
    ('*', '', '***')
    """
    levels = _check_levels(levels)
    value = _to_float(p, "significance_stars: p")
    if math.isnan(value):
        return ""
    return "*" * sum(value < level for level in levels)


def probability_note(levels: Sequence[float] = (0.05, 0.01, 0.001)) -> str:
    """Write the APA probability note that explains :func:`significance_stars`.

    Parameters
    ----------
    levels : sequence of float, default (.05, .01, .001)
        Significance levels in decreasing order.

    Returns
    -------
    str
        E.g. "*p < .05. **p < .01. ***p < .001." (APA 7 section 7.14).

    Examples
    --------
    >>> from resistance_outcomes.tables import probability_note
    >>> probability_note()
    '*p < .05. **p < .01. ***p < .001.'
    """
    levels = _check_levels(levels)
    return " ".join(
        f"{'*' * (i + 1)}p < {_no_leading_zero(level)}." for i, level in enumerate(levels)
    )


def _no_leading_zero(level: float) -> str:
    """Print a level exactly as written, without its leading zero: 0.05 -> ".05"."""
    return format(Decimal(repr(level)), "f").removeprefix("0")


def format_ci(
    low,
    high,
    decimals: int = 2,
    *,
    bounded: bool = False,
    minus: str = MINUS,
    missing: str = MISSING,
) -> str:
    """Format a confidence interval as "[low, high]", as APA 7 prints intervals.

    Parameters
    ----------
    low, high : float
        The limits. A missing limit prints as ``missing``; when both are missing the whole
        interval does.
    decimals : int, default 2
        Decimal places of both limits.
    bounded : bool, default False
        Limits of a statistic that cannot exceed 1 (correlation, ICC): no leading zero.
    minus : str, default :data:`MINUS`
        Sign printed before negative limits.
    missing : str, default :data:`MISSING`
        Text printed for a missing limit.

    Returns
    -------
    str
        E.g. "[0.12, 0.45]".

    Raises
    ------
    TableFormatError
        When a limit is not a number, or ``low`` exceeds ``high``.

    Examples
    --------
    >>> from resistance_outcomes.tables import format_ci
    >>> format_ci(0.123, 0.449), format_ci(-2.44, 4.3), format_ci(0.12, 0.45, bounded=True)
    ('[0.12, 0.45]', '[−2.44, 4.30]', '[.12, .45]')
    """
    lo = _to_float(low, "format_ci: low")
    hi = _to_float(high, "format_ci: high")
    if math.isnan(lo) and math.isnan(hi):
        return missing
    if lo > hi:
        raise TableFormatError(f"format_ci: the lower limit {lo!r} exceeds the upper {hi!r}.")
    fmt = format_bounded if bounded else format_number
    return f"[{fmt(lo, decimals, minus=minus, missing=missing)}, " + (
        f"{fmt(hi, decimals, minus=minus, missing=missing)}]"
    )


def format_mean_sd(
    mean, sd, decimals: int = 2, *, minus: str = MINUS, missing: str = MISSING
) -> str:
    """Format a mean and standard deviation as "M (SD)".

    Parameters
    ----------
    mean, sd : float
        The mean and standard deviation. A missing mean makes the cell missing; a missing SD
        (one observation) prints as ``missing`` inside the parentheses.
    decimals : int, default 2
        Decimal places of both.
    minus : str, default :data:`MINUS`
        Sign printed before a negative mean.
    missing : str, default :data:`MISSING`
        Text printed for a missing value.

    Returns
    -------
    str
        E.g. "3.41 (1.20)".

    Raises
    ------
    TableFormatError
        When a value is not a number or ``sd`` is negative.

    Examples
    --------
    >>> from resistance_outcomes.tables import format_mean_sd
    >>> format_mean_sd(3.414, 1.2), format_mean_sd(-0.5, 0.25, 1)
    ('3.41 (1.20)', '−0.5 (0.3)')
    """
    m = _to_float(mean, "format_mean_sd: mean")
    s = _to_float(sd, "format_mean_sd: sd")
    if s < 0:
        raise TableFormatError(f"format_mean_sd: the standard deviation {s!r} is negative.")
    if math.isnan(m):
        return missing
    return (
        f"{format_number(m, decimals, minus=minus)} ({format_number(s, decimals, missing=missing)})"
    )


def _check_count(value, what: str) -> float:
    """Return a count as float (NaN when missing); it must be a whole number >= 0."""
    n = _to_float(value, what)
    if not math.isnan(n) and (n < 0 or not n.is_integer()):
        raise TableFormatError(f"{what} must be a whole number >= 0, got {value!r}.")
    return n


def _check_min_cell(min_cell, what: str) -> None:
    if isinstance(min_cell, bool) or not isinstance(min_cell, numbers.Integral) or min_cell < 1:
        raise TableFormatError(f"{what}: min_cell must be a whole number >= 1, got {min_cell!r}.")


def _is_small(n: float, min_cell: int) -> bool:
    return 1 <= n < min_cell


def suppress_count(n, min_cell: int = 5, *, missing: str = MISSING) -> str:
    """Format a count, hiding it as "<min_cell" when it is between 1 and ``min_cell - 1``.

    Zero is shown (it identifies no one); ``min_cell = 1`` shows every count.

    Parameters
    ----------
    n : int
        The count. ``None`` and NaN are missing.
    min_cell : int, default 5
        Smallest count shown (``tables.min_cell`` in the configuration).
    missing : str, default :data:`MISSING`
        Text printed for a missing count.

    Returns
    -------
    str
        E.g. "0", "<5", "12", "1,314".

    Raises
    ------
    TableFormatError
        When ``n`` is not a whole number >= 0 or ``min_cell`` is not a whole number >= 1.

    Examples
    --------
    >>> from resistance_outcomes.tables import suppress_count
    >>> [suppress_count(n, min_cell=5) for n in (0, 1, 4, 5, 12)]
    ['0', '<5', '<5', '5', '12']
    """
    _check_min_cell(min_cell, "suppress_count")
    count = _check_count(n, "suppress_count: n")
    if math.isnan(count):
        return missing
    if _is_small(count, min_cell):
        return f"<{min_cell}"
    return _fixed(count, 0, leading_zero=True, thousands=True, minus=MINUS)


def format_n_pct(
    n, pct, decimals: int = 1, *, min_cell: int | None = None, missing: str = MISSING
) -> str:
    """Format a count with its percentage as "n (pct%)", optionally suppressing small counts.

    Parameters
    ----------
    n : int
        The count.
    pct : float
        The percentage, between 0 and 100 (not a proportion).
    decimals : int, default 1
        Decimal places of the percentage.
    min_cell : int, optional
        When given, a count between 1 and ``min_cell - 1`` prints as "<min_cell" and its
        percentage is hidden (see :func:`suppress_count`).
    missing : str, default :data:`MISSING`
        Text printed for a missing count or percentage.

    Returns
    -------
    str
        E.g. "18 (20.0%)".

    Raises
    ------
    TableFormatError
        When ``n`` is not a whole number >= 0 or ``pct`` lies outside [0, 100].

    Examples
    --------
    >>> from resistance_outcomes.tables import format_n_pct
    >>> format_n_pct(18, 20), format_n_pct(3, 3.3, min_cell=5), format_n_pct(0, 0, min_cell=5)
    ('18 (20.0%)', '<5', '0 (0.0%)')
    """
    count = _check_count(n, "format_n_pct: n")
    percent = _to_float(pct, "format_n_pct: pct")
    if not math.isnan(percent) and not 0 <= percent <= 100 + _TOLERANCE:
        raise TableFormatError(
            f"format_n_pct: pct must lie between 0 and 100, got {pct!r}. "
            "Pass a percentage, not a proportion or a count."
        )
    if math.isnan(count):
        return missing
    shown = suppress_count(count, min_cell if min_cell is not None else 1)
    if min_cell is not None and _is_small(count, min_cell):
        return shown
    return f"{shown} ({format_number(percent, decimals, missing=missing)}" + (
        "%)" if not math.isnan(percent) else ")"
    )


def _dependents_by_count(
    df: pd.DataFrame,
    count_columns: list[str],
    dependent_columns: Mapping[str, Sequence[str] | str] | Sequence[str] | str | None,
) -> dict[str, list[str]]:
    """Map every count column to the columns hidden with it."""
    if dependent_columns is None:
        mapping: dict[str, list[str]] = {col: [] for col in count_columns}
    elif isinstance(dependent_columns, Mapping):
        unknown = sorted(set(dependent_columns) - set(count_columns))
        if unknown:
            raise TableFormatError(
                f"suppress_cells: dependent_columns names {unknown} as counts, but the count "
                f"columns are {count_columns}."
            )
        mapping = {col: _as_list(dependent_columns.get(col, [])) for col in count_columns}
    else:
        mapping = {col: _as_list(dependent_columns) for col in count_columns}
    named = [col for cols in mapping.values() for col in cols]
    missing = [col for col in named if col not in df.columns]
    if missing:
        raise TableFormatError(
            f"suppress_cells: dependent column(s) {missing} are not in the frame "
            f"(columns: {list(df.columns)})."
        )
    return mapping


def _as_list(columns: Sequence[str] | str) -> list[str]:
    return [columns] if isinstance(columns, str) else list(columns)


def suppress_cells(
    df: pd.DataFrame,
    count_columns: Sequence[str] | str,
    min_cell: int = 5,
    dependent_columns: Mapping[str, Sequence[str] | str] | Sequence[str] | str | None = None,
    *,
    hidden: str = "",
    missing: str = MISSING,
) -> pd.DataFrame:
    """Suppress small counts in a frame and hide the cells derived from them.

    Every cell of ``count_columns`` is formatted with :func:`suppress_count` (counts from 1
    to ``min_cell - 1`` become "<min_cell"). In each row where a count is suppressed, the
    cells of its dependent columns (its percentage, a mean over those people) are replaced by
    ``hidden``, so the count cannot be recovered from them. This is primary suppression only.

    Parameters
    ----------
    df : DataFrame
        Counts as numbers; the dependent columns in any form (usually already formatted).
    count_columns : str or sequence of str
        Columns holding counts.
    min_cell : int, default 5
        Smallest count shown.
    dependent_columns : mapping, sequence of str or str, optional
        Either ``{count_column: [dependent, ...]}``, or columns that depend on every count
        column (hidden when any count in the row is suppressed).
    hidden : str, default ""
        Text that replaces a hidden dependent cell.
    missing : str, default :data:`MISSING`
        Text printed for a missing count.

    Returns
    -------
    DataFrame
        A copy with the count columns as text and suppressed dependents hidden.

    Raises
    ------
    TableFormatError
        When a named column is absent, or a count is not a whole number >= 0 (the message
        names the column, the index and the value).

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.tables import suppress_cells
    >>> df = pd.DataFrame({"n": [0, 3, 18], "pct": ["0.0", "3.3", "20.0"]})
    >>> suppress_cells(df, "n", min_cell=5, dependent_columns={"n": "pct"}).to_dict("list")
    {'n': ['0', '<5', '18'], 'pct': ['0.0', '', '20.0']}
    """
    _check_min_cell(min_cell, "suppress_cells")
    count_columns = _as_list(count_columns)
    absent = [col for col in count_columns if col not in df.columns]
    if absent:
        raise TableFormatError(
            f"suppress_cells: count column(s) {absent} are not in the frame "
            f"(columns: {list(df.columns)})."
        )
    dependents = _dependents_by_count(df, count_columns, dependent_columns)
    out = df.copy()
    for col in count_columns:
        small, shown = [], []
        for label, value in df[col].items():
            try:
                count = _check_count(value, "count")
            except TableFormatError as err:
                raise TableFormatError(
                    f"suppress_cells: column {col!r}, index {label!r}: {err}"
                ) from None
            small.append(_is_small(count, min_cell))
            shown.append(suppress_count(count, min_cell, missing=missing))
        out[col] = pd.Series(shown, index=df.index, dtype=object)
        for dependent in dependents[col]:
            column = out[dependent].astype(object)
            column[small] = hidden
            out[dependent] = column
    return out


# --------------------------------------------------------------------------------------
# Titles and the table object
# --------------------------------------------------------------------------------------

_MINOR_WORDS = frozenset(
    "a an the and as but for if nor or so yet at by in of off on per to up via".split()
)
_SENTENCE_END = (":", "\u2014", ".", "?", "!")


def _capitalize(word: str) -> str:
    """Upper-case the first letter of a word, after any opening bracket or quote."""
    return re.sub(r"^([(\[\"'\u201c\u2018]*)([a-z])", lambda m: m[1] + m[2].upper(), word)


def title_case(text: str) -> str:
    """Put a table title in APA title case (APA 7 section 6.17).

    Major words and all words of four letters or more are capitalised, as are both parts of
    hyphenated compounds and the first word of the title and after a colon or em dash.
    Short conjunctions, articles and short prepositions are lower case. Capitals already
    present (acronyms such as ICC, 3RS) are kept.

    Parameters
    ----------
    text : str
        The title.

    Returns
    -------
    str
        The title in title case.

    Examples
    --------
    >>> from resistance_outcomes.tables import title_case
    >>> title_case("rupture repair and retention by framework")
    'Rupture Repair and Retention by Framework'
    >>> title_case("self-reported tension: an overview of the 3RS markers")
    'Self-Reported Tension: An Overview of the 3RS Markers'
    """
    tokens = re.split(r"(\s+)", text.strip())
    out, first = [], True
    for token in tokens:
        if not token or token.isspace():
            out.append(token)
            continue
        if not first and "-" not in token and token.lower() in _MINOR_WORDS:
            out.append(token.lower())
        else:
            out.append("-".join(_capitalize(part) for part in token.split("-")))
        first = token.endswith(_SENTENCE_END)
    return "".join(out)


@dataclass
class ApaTable:
    """An APA 7 table of formatted text, ready for :func:`to_markdown`, :func:`to_latex` and
    :func:`to_docx`.

    Parameters
    ----------
    number : int
        Table number (bold "Table 1" above the title).
    title : str
        Title, printed in italics; give it in title case (see :func:`title_case`).
    columns : list of str
        Column headings, one per column of ``rows``; the first column is the stub (row
        labels), left-aligned; the others are centred.
    rows : DataFrame
        The body, every cell a formatted string (use the ``format_*`` functions; "" for an
        empty cell). Its own column names are not printed.
    spanners : list of (str, int), optional
        Column spanners over the headings, as consecutive (label, number of columns) pairs
        covering every column; "" for columns without a spanner, e.g.
        ``[("", 1), ("Psychoanalytic", 2), ("Behavioral", 2)]``.
    row_groups : list of (str, int), optional
        Panel headings (table spanners) inside the body, as consecutive (heading, number of
        rows) pairs covering every row; printed across the body, centred.
    note : str, default ""
        General note, printed after an italic "Note."; each further line (separated by
        "\\n") is printed as its own paragraph, for specific notes.
    probability_note : str, default ""
        Probability note on its own line after the others (see :func:`probability_note`).
    italic_terms : tuple of str, default :data:`STATISTICAL_SYMBOLS`
        Whole words set in italics in headings, spanners and notes.

    Raises
    ------
    TableFormatError
        When a cell is not text, or the headings, spanners or row groups do not match the
        body (the message names the table, column, index and value).

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.tables import ApaTable
    >>> table = ApaTable(
    ...     number=1,
    ...     title="Resistance by Framework",
    ...     columns=["Framework", "M", "SD"],
    ...     rows=pd.DataFrame([["Cognitive", "2.10", "1.30"]]),
    ...     note="Counts per session.",
    ... )
    >>> table.columns
    ['Framework', 'M', 'SD']
    """

    number: int
    title: str
    columns: list[str]
    rows: pd.DataFrame
    spanners: list[tuple[str, int]] | None = None
    row_groups: list[tuple[str, int]] | None = None
    note: str = ""
    probability_note: str = ""
    italic_terms: tuple[str, ...] = field(default=STATISTICAL_SYMBOLS)

    def __post_init__(self) -> None:
        where = f"Table {self.number!r}"
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 1:
            raise TableFormatError(f"{where}: the number must be a whole number >= 1.")
        if not isinstance(self.title, str) or not self.title.strip():
            raise TableFormatError(f"{where}: the title must be non-empty text.")
        if not isinstance(self.rows, pd.DataFrame):
            raise TableFormatError(f"{where}: rows must be a DataFrame of formatted strings.")
        self.columns = list(self.columns)
        if len(self.columns) != self.rows.shape[1]:
            raise TableFormatError(
                f"{where}: {len(self.columns)} column headings for a body of "
                f"{self.rows.shape[1]} columns; give one heading per column."
            )
        for text, what in [(self.title, "title"), *((c, "column heading") for c in self.columns)]:
            _check_text(text, f"{where}, {what}")
        self._check_cells(where)
        if self.spanners is not None:
            self.spanners = _check_spans(self.spanners, len(self.columns), f"{where}, spanners")
        if self.row_groups is not None:
            self.row_groups = _check_spans(self.row_groups, len(self.rows), f"{where}, row_groups")
            if any(not label for label, _ in self.row_groups):
                raise TableFormatError(f"{where}, row_groups: every panel needs a heading.")

    def _check_cells(self, where: str) -> None:
        for position, name in enumerate(self.rows.columns):
            for label, value in self.rows.iloc[:, position].items():
                if not isinstance(value, str):
                    raise TableFormatError(
                        f"{where}: the cell in column {name!r}, index {label!r} holds "
                        f"{value!r} ({type(value).__name__}); cells must be formatted text. "
                        "Format numbers first (format_number, format_p, format_ci, ...) and "
                        "write missing values as the em dash or ''."
                    )
                _check_text(value, f"{where}, column {name!r}, index {label!r}")

    def body(self) -> list[tuple[str, list[str]]]:
        """The body as a list of ("group", [heading]) and ("row", cells) entries, in order."""
        cells = self.rows.to_numpy(dtype=object).tolist()
        if not self.row_groups:
            return [("row", row) for row in cells]
        out: list[tuple[str, list[str]]] = []
        start = 0
        for heading, size in self.row_groups:
            out.append(("group", [heading]))
            out.extend(("row", row) for row in cells[start : start + size])
            start += size
        return out

    def note_lines(self) -> list[str]:
        """The note paragraphs in order: general and specific note lines, probability note."""
        lines = [line.strip() for line in self.note.splitlines() if line.strip()]
        if self.probability_note.strip():
            lines.append(self.probability_note.strip())
        return lines


def _check_text(text: str, where: str) -> None:
    if "\n" in text or "\r" in text:
        raise TableFormatError(f"{where}: {text!r} contains a line break; use one line.")


def _check_spans(spans: Iterable[tuple[str, int]], total: int, where: str) -> list[tuple[str, int]]:
    spans = [tuple(span) for span in spans]
    for span in spans:
        if (
            len(span) != 2
            or not isinstance(span[0], str)
            or isinstance(span[1], bool)
            or not isinstance(span[1], int)
            or span[1] < 1
        ):
            raise TableFormatError(f"{where}: {span!r} is not a (label, size >= 1) pair.")
        _check_text(span[0], where)
    covered = sum(size for _, size in spans)
    if covered != total:
        raise TableFormatError(
            f"{where}: the sizes add up to {covered}, but there are {total}; cover each "
            "exactly once, using '' as the label where there is none."
        )
    return spans


# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------


def _italic_runs(text: str, terms: Sequence[str]) -> list[tuple[str, bool]]:
    """Split text into (piece, italic) runs, italicising whole-word statistical symbols."""
    if not terms or not text:
        return [(text, False)] if text else []
    alternatives = "|".join(re.escape(term) for term in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w'\u2019])(?:{alternatives})(?![\w'\u2019])")
    runs, start = [], 0
    for match in pattern.finditer(text):
        if match.start() > start:
            runs.append((text[start : match.start()], False))
        runs.append((match.group(), True))
        start = match.end()
    if start < len(text):
        runs.append((text[start:], False))
    return runs


# Markdown ------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_|])|<(?=[A-Za-z/!?])")
_MD_BLOCK_START = re.compile(r"^(#|[-+>]|\d+[.)])")


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(lambda m: "\\" + (m[1] or "<"), text)


def _md_inline(text: str, terms: Sequence[str]) -> str:
    return "".join(
        f"*{_md_escape(piece)}*" if italic else _md_escape(piece)
        for piece, italic in _italic_runs(text, terms)
    )


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(table: ApaTable, path: str | os.PathLike | None = None) -> str:
    """Write an :class:`ApaTable` as a Markdown (GitHub pipe) table.

    Layout: bold "Table N", the italic title, the table (stub left-aligned, other columns
    centred), then the note paragraphs with an italic "Note.". Pipe tables have one heading
    row and no spanning cells, so a spanner is joined to the headings under it
    ("Psychoanalytic: *M*") and a panel heading is a row with the heading in italics in the
    stub. Markdown characters in the text are escaped.

    Parameters
    ----------
    table : ApaTable
        The table.
    path : str or path-like, optional
        When given, the Markdown is also written there (atomically, UTF-8).

    Returns
    -------
    str
        The Markdown text, ending in a newline.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.tables import ApaTable, to_markdown
    >>> table = ApaTable(1, "Resistance by Framework", ["Framework", "M"],
    ...                  pd.DataFrame([["Cognitive", "2.10"]]))
    >>> print(to_markdown(table))
    **Table 1**
    <BLANKLINE>
    *Resistance by Framework*
    <BLANKLINE>
    | Framework | *M* |
    | :--- | :---: |
    | Cognitive | 2.10 |
    <BLANKLINE>
    """
    terms = table.italic_terms
    headings = [_md_inline(heading, terms) for heading in table.columns]
    if table.spanners:
        labels = [label for label, size in table.spanners for _ in range(size)]
        headings = [
            f"{_md_inline(label, terms)}: {heading}" if label else heading
            for label, heading in zip(labels, headings, strict=True)
        ]
    n_columns = len(table.columns)
    lines = [
        f"**Table {table.number}**",
        "",
        f"*{_md_escape(table.title.strip())}*",
        "",
        _md_row(headings),
        _md_row([":---"] + [":---:"] * (n_columns - 1)),
    ]
    for kind, cells in table.body():
        if kind == "group":
            lines.append(_md_row([f"*{_md_escape(cells[0])}*"] + [""] * (n_columns - 1)))
        else:
            lines.append(_md_row([_md_escape(cell) for cell in cells]))
    for i, line in enumerate(table.note_lines()):
        text = _md_inline(line, terms)
        text = "*Note.* " + text if i == 0 and table.note.strip() else text
        lines += ["", _MD_BLOCK_START.sub(r"\\\1", text)]
    markdown = "\n".join(lines) + "\n"
    if path is not None:
        write_text(path, markdown)
    return markdown


# LaTeX ---------------------------------------------------------------------------------

_LATEX_REPLACEMENTS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    MINUS: "$-$",
    "\u2014": "---",
    "\u2013": "--",
    INFINITY: r"$\infty$",
    "²": r"\textsuperscript{2}",
}
_LATEX_SPECIAL = re.compile("|".join(re.escape(char) for char in _LATEX_REPLACEMENTS))


def _latex_escape(text: str) -> str:
    return _LATEX_SPECIAL.sub(lambda m: _LATEX_REPLACEMENTS[m.group()], text)


def _latex_inline(text: str, terms: Sequence[str]) -> str:
    return "".join(
        rf"\textit{{{_latex_escape(piece)}}}" if italic else _latex_escape(piece)
        for piece, italic in _italic_runs(text, terms)
    )


def _latex_spanner_lines(spanners: list[tuple[str, int]], terms: Sequence[str]) -> list[str]:
    cells, rules, start = [], [], 1
    for label, size in spanners:
        text = _latex_inline(label, terms)
        cells.append(rf"\multicolumn{{{size}}}{{c}}{{{text}}}" if size > 1 else text)
        if label:
            rules.append(rf"\cmidrule(lr){{{start}-{start + size - 1}}}")
        start += size
    return [" & ".join(cells) + r" \\", " ".join(rules)]


def to_latex(table: ApaTable, path: str | os.PathLike | None = None) -> str:
    """Write an :class:`ApaTable` as a LaTeX ``table`` float with booktabs rules.

    Layout: bold "Table N", the italic title, a ``tabular`` with ``\\toprule``,
    ``\\cmidrule`` under spanners, ``\\midrule`` under the headings and ``\\bottomrule``,
    then the note paragraphs with ``\\emph{Note.}``. No vertical rules. The preamble needs
    ``\\usepackage{booktabs}``. LaTeX special characters (``% & _ # $ { } ~ ^ \\ < > |``)
    are escaped; the minus sign U+2212 becomes ``$-$`` and the em dash ``---``.

    Parameters
    ----------
    table : ApaTable
        The table.
    path : str or path-like, optional
        When given, the LaTeX is also written there (atomically, UTF-8).

    Returns
    -------
    str
        The LaTeX source, ending in a newline.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.tables import ApaTable, to_latex
    >>> table = ApaTable(2, "Rupture Rates", ["Framework", "Rate (%)"],
    ...                  pd.DataFrame([["Cognitive", "−0.50"]]))
    >>> print(to_latex(table))  # doctest: +ELLIPSIS
    \\begin{table}[htbp]
    ...
    Cognitive & $-$0.50 \\\\
    \\bottomrule
    ...
    """
    terms = table.italic_terms
    n_columns = len(table.columns)
    lines = [
        r"\begin{table}[htbp]",
        r"\raggedright",
        rf"\textbf{{Table {table.number}}}\par",
        r"\medskip",
        rf"\textit{{{_latex_escape(table.title.strip())}}}\par",
        r"\medskip",
        rf"\begin{{tabular}}{{l{'c' * (n_columns - 1)}}}",
        r"\toprule",
    ]
    if table.spanners:
        lines += _latex_spanner_lines(table.spanners, terms)
    headings = [_latex_inline(heading, terms) for heading in table.columns]
    headings[0] = rf"\multicolumn{{1}}{{c}}{{{headings[0]}}}"
    lines += [" & ".join(headings) + r" \\", r"\midrule"]
    for kind, cells in table.body():
        if kind == "group":
            text = _latex_escape(cells[0])
            lines.append(rf"\multicolumn{{{n_columns}}}{{c}}{{{text}}} \\")
        else:
            lines.append(" & ".join(_latex_escape(cell) for cell in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = table.note_lines()
    if notes:
        lines.append(r"\par\medskip")
    for i, line in enumerate(notes):
        text = _latex_inline(line, terms)
        lines.append((r"\emph{Note.} " if i == 0 and table.note.strip() else "") + text + r"\par")
    lines.append(r"\end{table}")
    latex = "\n".join(lines) + "\n"
    if path is not None:
        write_text(path, latex)
    return latex


# Word ----------------------------------------------------------------------------------

_BORDER_SIDES = ("top", "left", "bottom", "right", "insideH", "insideV")
_TC_BORDERS_SUCCESSORS = (
    "w:shd", "w:noWrap", "w:tcMar", "w:textDirection", "w:tcFitText", "w:vAlign",
    "w:hideMark", "w:headers", "w:cellIns", "w:cellDel", "w:cellMerge", "w:tcPrChange",
)  # fmt: skip
_TBL_BORDERS_SUCCESSORS = (
    "w:shd", "w:tblLayout", "w:tblCellMar", "w:tblLook", "w:tblCaption", "w:tblDescription",
    "w:tblPrChange",
)  # fmt: skip
_RULE_SIZE = "8"  # eighths of a point: a 1-pt rule

PAPER_SIZES: dict[str, tuple[int, int]] = {"letter": (12240, 15840), "a4": (11906, 16838)}
"""Portrait page width and height in twips (1/1440 inch) of the papers :func:`to_docx` knows."""

PAGE_MARGIN = 1440
"""Page margin on every side, in twips: 1 inch (APA 7 section 2.22)."""

CELL_MARGIN = 108
"""Space left and right of the text in every table cell, in twips (Word's default, 0.075 in)."""

MIN_FONT_SIZE = 8.0
"""The smallest font size, in points, :func:`docx_layout` sets a wide table in."""

_TWIPS_PER_POINT = 20
_WIDTH_RESERVE = 1.05  # measured widths are widened by 5% for differences between renderers
_SHRINK_STEPS = 2  # points a table's font is reduced, 1 pt at a time, before its text wraps
_MIN_WRAPPED_STUB = 1 / 3  # share of the text width a wrapping stub keeps on a portrait page
_STUB_WEIGHT = 2.0  # the stub's share of spare width, relative to each other column's
_MEASURE_SIZE = 100.0  # point size the metric fonts are set to (widths scale linearly)
# Fonts shipped with matplotlib whose advance widths stand in for a requested font: STIX
# General has the Times metrics (Times New Roman, Liberation Serif, TeX Gyre Termes); any
# other font is measured with DejaVu, which is wider than most, so its text finds room.
_METRIC_FONTS = (
    (("times", "liberation serif", "tinos", "nimbus roman", "termes", "stix"), "STIXGeneral.ttf"),
    (("dejavu serif",), "DejaVuSerif.ttf"),
)
_FALLBACK_METRIC_FONT = "DejaVuSans.ttf"


@functools.cache
def _metric_font(font: str):
    import matplotlib
    from matplotlib.ft2font import FT2Font

    name = font.lower()
    file = next(
        (file for keys, file in _METRIC_FONTS if any(key in name for key in keys)),
        _FALLBACK_METRIC_FONT,
    )
    metric = FT2Font(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", file))
    metric.set_size(_MEASURE_SIZE, 72)  # 72 dpi: one pixel is one point
    return metric


@functools.lru_cache(maxsize=65536)
def _em_width(text: str, font: str) -> float:
    """Advance width of ``text`` in ems (points at a 1-pt font size)."""
    from matplotlib.ft2font import LoadFlags

    if not text:
        return 0.0
    metric = _metric_font(font)
    metric.set_text(text, 0.0, flags=LoadFlags.NO_HINTING)
    return metric.get_width_height()[0] / 64 / _MEASURE_SIZE


def text_width(text: str, font: str = "Times New Roman", size: float = 12) -> float:
    """Width in points of one line of ``text`` in ``font`` at ``size`` points.

    Measured with the advance widths of a font shipped with matplotlib, so the result is the
    same on every machine: STIX General for Times-like fonts (it has the metrics of Times New
    Roman and Liberation Serif), DejaVu Serif for DejaVu Serif, DejaVu Sans (wider than most
    fonts, so text measured with it finds room) for any other font.

    Parameters
    ----------
    text : str
        One line of text.
    font : str, default "Times New Roman"
        The font the text will be set in.
    size : float, default 12
        Font size in points.

    Returns
    -------
    float
        The width in points (1/72 inch).

    Examples
    --------
    >>> from resistance_outcomes.tables import text_width
    >>> round(text_width("Observations", "Times New Roman", 12), 1)
    63.3
    >>> round(text_width("Observations", "Times New Roman", 6), 2)
    31.66
    """
    return _em_width(text, font) * size


def _twips(text: str, font: str, size: float) -> int:
    """Width a cell needs for ``text`` on one line: the text, a reserve and the cell margins."""
    points = text_width(text, font, size) * _WIDTH_RESERVE
    return math.ceil(points * _TWIPS_PER_POINT) + 2 * CELL_MARGIN


def _words(text: str) -> list[str]:
    """The pieces a line may break between: split at ordinary spaces only (the writer keeps
    hyphens unbreakable, and a no-break space binds)."""
    return [word for word in text.split(" ") if word]


NBSP = "\u00a0"
_VALUE_BINDS = re.compile(r"\[[^\]]*\]|\([^)]*\)|^[<>\u2264\u2265=] ")


def _bind_value(text: str) -> str:
    """A value cell with no-break spaces inside its brackets and after a leading "<" or
    ">", so that it wraps only between estimate and interval: "1.24 [1.03, 1.58]" may
    become "1.24" over "[1.03, 1.58]", and "< .001" stays whole."""
    return _VALUE_BINDS.sub(lambda match: match.group().replace(" ", NBSP), text)


@dataclass(frozen=True)
class DocxLayout:
    """How :func:`to_docx` sets one table: page orientation, font size and column widths.

    Attributes
    ----------
    orientation : {"portrait", "landscape"}
        Orientation of the page (section) the table is on.
    size : float
        Font size of the table's cells in points.
    widths : tuple of int
        Column widths in twips (1/1440 inch), cell margins included; they add up to
        ``text_width``.
    text_width : int
        Width between the page margins, in twips.
    wrapping : {"none", "labels", "all"}
        "none": every cell fits on one line. "labels": the table is too wide for that even
        on a landscape page in a slightly smaller font, so the stub, the headings and the
        spanners wrap at their spaces while values stay on one line. "all": values wrap at
        their spaces too. A word is never broken, unless even the longest words of the
        columns together are wider than a landscape page at :data:`MIN_FONT_SIZE`.
    """

    orientation: str
    size: float
    widths: tuple[int, ...]
    text_width: int
    wrapping: str


def _column_needs(
    table: ApaTable, font: str, size: float
) -> tuple[dict[str, list[int]], list[tuple[int, int, int, int]]]:
    """Width each column needs (twips) for each way of wrapping (:class:`DocxLayout`
    ``wrapping``): "none" its longest cell on one line; "labels" its longest word in the
    stub and the heading, its longest value (estimate, "[lo, hi]", "n (%)", "< .001") in the
    other columns; "all" its longest word. Also the texts spanning several columns, as
    (start, stop, one line, longest word)."""
    n_columns = len(table.columns)
    columns = [[heading] for heading in table.columns]
    spans = []
    for kind, cells in table.body():
        if kind == "group":
            spans.append((0, n_columns, cells[0]))
        else:
            for position, text in enumerate(cells):
                columns[position].append(text)
    start = 0
    for label, width in table.spanners or []:
        if label and width > 1:
            spans.append((start, start + width, label))
        elif label:
            columns[start].append(label)
        start += width

    def line(texts: Iterable[str]) -> int:
        return max((_twips(text, font, size) for text in texts), default=0)

    def word(texts: Iterable[str]) -> int:
        return max((_twips(w, font, size) for text in texts for w in _words(text)), default=0)

    needs = {
        "none": [line(texts) for texts in columns],
        "labels": [word(columns[0])] + [max(word(t[:1]), line(t[1:])) for t in columns[1:]],
        "all": [word(columns[0])]
        + [max(word(t[:1]), word(_bind_value(v) for v in t[1:])) for t in columns[1:]],
    }
    span_needs = [(first, stop, line([text]), word([text])) for first, stop, text in spans]
    return needs, span_needs


def _widen_for_spans(floors: list[int], spans: Sequence[tuple[int, int, int]]) -> list[int]:
    """Widen the columns under each spanning text evenly until the text fits."""
    floors = list(floors)
    for first, stop, need in spans:
        deficit = need - sum(floors[first:stop])
        if deficit > 0:
            share, extra = divmod(deficit, stop - first)
            for i in range(first, stop):
                floors[i] += share + (1 if i - first < extra else 0)
    return floors


def _share_out(floors: Sequence[int], available: int) -> tuple[int, ...]:
    """Column widths adding up to ``available``: each at least its floor, the spare width
    shared so that columns are filled to a common level (the stub to twice that level)."""
    weights = [_STUB_WEIGHT, *([1.0] * (len(floors) - 1))]

    def total(level: float) -> float:
        return sum(
            max(floor, level * weight) for floor, weight in zip(floors, weights, strict=True)
        )

    low, high = 0.0, available / min(weights)
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if total(middle) <= available else (low, middle)
    exact = [max(floor, low * weight) for floor, weight in zip(floors, weights, strict=True)]
    widths = [math.floor(x) for x in exact]
    spare = available - sum(widths)
    by_fraction = sorted(range(len(widths)), key=lambda i: (widths[i] - exact[i], i))
    for i in by_fraction[: max(spare, 0)]:
        widths[i] += 1
    widths[0] += available - sum(widths)  # the stub takes any twip left over by rounding
    return tuple(widths)


def _toward_natural(
    minimum: list[int], natural: list[int], spans: Sequence[tuple], available: int
) -> list[int]:
    """Widths between the minimum and the natural widths, as near the natural ones as the
    page allows (the same fraction of the way for every column), so that width goes to the
    columns that would wrap (the stub, long headings) and not to values that fit already."""
    full = _widen_for_spans(natural, [(a, b, n) for a, b, n, _ in spans])

    def at(fraction: float) -> list[int]:
        return [math.floor(lo + fraction * (hi - lo)) for lo, hi in zip(minimum, full, strict=True)]

    low, high = 0.0, 1.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if sum(at(middle)) <= available else (low, middle)
    return [max(lo, width) for lo, width in zip(minimum, at(low), strict=True)]


def docx_layout(
    table: ApaTable,
    *,
    font: str = "Times New Roman",
    size: float = 12,
    paper: str = "letter",
) -> DocxLayout:
    """Decide how :func:`to_docx` sets a table: column widths, orientation, font size.

    Each column gets the width of its longest cell (measured with :func:`text_width`, plus
    cell margins), so no cell wraps; the width left over is shared so that the stub (the
    label column) gets the most. The widths add up to the text width of the page. In order,
    the first that fits is taken:

    1. portrait page at ``size``;
    2. portrait page at ``size`` with the stub, headings and spanners wrapping at their
       spaces, when the stub keeps at least a third of the text width (labels of two
       lines read better than a page turned sideways);
    3. landscape page at ``size``;
    4. landscape page at ``size`` reduced 1 pt at a time, by at most 2 pt and never below
       :data:`MIN_FONT_SIZE`;
    5. landscape page at that smallest size, then 1 pt smaller down to
       :data:`MIN_FONT_SIZE`, with the stub, headings and spanners wrapping at their
       spaces; values (estimates, confidence intervals, p values) stay on one line. The
       width left over goes first to the columns that wrap;
    6. landscape page at :data:`MIN_FONT_SIZE`, every cell wrapping at its spaces;
    7. if even the longest words are too wide, the widths of 6. scaled down to the page.

    Words are never broken in 1-6 (the writer makes hyphens in cells non-breaking).

    Parameters
    ----------
    table : ApaTable
        The table.
    font : str, default "Times New Roman"
        Font of the table text.
    size : float, default 12
        Font size in points.
    paper : {"letter", "a4"}, default "letter"
        Paper size (see :data:`PAPER_SIZES`); margins are :data:`PAGE_MARGIN`.

    Returns
    -------
    DocxLayout

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.tables import ApaTable, docx_layout
    >>> table = ApaTable(1, "Sessions", ["Framework", "n"], pd.DataFrame([["Cognitive", "12"]]))
    >>> layout = docx_layout(table)
    >>> layout.orientation, layout.size, layout.wrapping
    ('portrait', 12, 'none')
    >>> sum(layout.widths) == layout.text_width == 12240 - 2 * 1440
    True
    >>> layout.widths[0] > layout.widths[1]
    True
    """
    if paper not in PAPER_SIZES:
        raise TableFormatError(
            f"docx_layout: paper {paper!r} is not one of {', '.join(sorted(PAPER_SIZES))}."
        )
    short, long = PAPER_SIZES[paper]
    portrait, landscape = short - 2 * PAGE_MARGIN, long - 2 * PAGE_MARGIN

    def attempt(orientation, available, at, wrapping) -> DocxLayout | None:
        needs, spans = _column_needs(table, font, at)
        span_floor = [(a, b, n if wrapping == "none" else w) for a, b, n, w in spans]
        floors = _widen_for_spans(needs[wrapping], span_floor)
        if sum(floors) > available:
            return None
        if wrapping != "none":
            floors = _toward_natural(floors, needs["none"], spans, available)
        widths = _share_out(floors, available)
        return DocxLayout(orientation, at, widths, available, wrapping)

    smallest = max(min(size, MIN_FONT_SIZE), size - _SHRINK_STEPS)
    reduced = [size - step for step in range(1, _SHRINK_STEPS + 1) if size - step >= smallest]
    tries = [("portrait", portrait, size, "none"), ("portrait", portrait, size, "labels")]
    tries += [("landscape", landscape, size, "none")]
    tries += [("landscape", landscape, at, "none") for at in reduced]
    smaller = [smallest - step for step in range(1, math.floor(smallest - MIN_FONT_SIZE) + 1)]
    if smallest > MIN_FONT_SIZE and MIN_FONT_SIZE not in smaller:
        smaller.append(MIN_FONT_SIZE)
    tries += [("landscape", landscape, at, "labels") for at in [smallest, *smaller]]
    tries.append(("landscape", landscape, min(size, MIN_FONT_SIZE), "all"))
    for orientation, available, at, wrapping in tries:
        layout = attempt(orientation, available, at, wrapping)
        wraps_narrow = (
            layout is not None
            and orientation == "portrait"
            and wrapping != "none"
            and layout.widths[0] < _MIN_WRAPPED_STUB * available
        )
        if layout is not None and not wraps_narrow:
            return layout
    # Wider than the page even with every cell wrapping: words must break; scale down.
    at = min(size, MIN_FONT_SIZE)
    needs, spans = _column_needs(table, font, at)
    floors = _widen_for_spans(needs["all"], [(a, b, w) for a, b, _, w in spans])
    scaled = [math.floor(floor * landscape / sum(floors)) for floor in floors]
    return DocxLayout("landscape", at, _share_out(scaled, landscape), landscape, "all")


def _border_element(side: str, val: str):
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    element = OxmlElement(f"w:{side}")
    element.set(qn("w:val"), val)
    if val == "single":
        element.set(qn("w:sz"), _RULE_SIZE)
        element.set(qn("w:space"), "0")
        element.set(qn("w:color"), "000000")
    return element


def _clear_table_borders(docx_table) -> None:
    """No borders at table level (APA 7 section 7.15: no vertical rules, no grid)."""
    from docx.oxml import OxmlElement

    tbl_pr = docx_table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for side in _BORDER_SIDES:
        borders.append(_border_element(side, "nil"))
    tbl_pr.insert_element_before(borders, *_TBL_BORDERS_SUCCESSORS)


def _rule(cell, side: str) -> None:
    """Draw a horizontal rule on one side ("top" or "bottom") of a cell."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tc_pr = cell._tc.get_or_add_tcPr()
    borders = tc_pr.find(qn("w:tcBorders"))
    if borders is None:
        borders = OxmlElement("w:tcBorders")
        tc_pr.insert_element_before(borders, *_TC_BORDERS_SUCCESSORS)
    for old in borders.findall(qn(f"w:{side}")):
        borders.remove(old)
    element = _border_element(side, "single")
    if side == "top":
        borders.insert(0, element)
    else:
        borders.append(element)


def _unique_cells(row) -> list:
    seen, out = set(), []
    for cell in row.cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            out.append(cell)
    return out


def _cell_run(paragraph, text: str, italic: bool, size: float | None) -> None:
    """Add a run whose hyphens are non-breaking (w:noBreakHyphen): a word processor wraps a
    cell at its spaces only, never inside "between-client"; the text reads back unchanged."""
    from docx.oxml import OxmlElement
    from docx.shared import Pt

    run = paragraph.add_run()
    run.italic = italic
    if size is not None:
        run.font.size = Pt(size)
    for i, part in enumerate(text.split("-")):
        if i:
            run._r.append(OxmlElement("w:noBreakHyphen"))
        if part:
            run._r.add_t(part)


def _mark_size(paragraph, size: float) -> None:
    """Set the size of the paragraph mark, which sets the height of an empty cell's line."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    p_pr = paragraph._p.get_or_add_pPr()
    r_pr = OxmlElement("w:rPr")
    for tag in ("w:sz", "w:szCs"):
        element = OxmlElement(tag)
        element.set(qn("w:val"), str(round(size * 2)))
        r_pr.append(element)
    p_pr.insert_element_before(r_pr, "w:sectPr", "w:pPrChange")


def _fill(cell, text: str, terms: Sequence[str], *, center: bool, size: float | None) -> None:
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    paragraph = cell.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER if center else WD_ALIGN_PARAGRAPH.LEFT
    if size is not None:
        _mark_size(paragraph, size)
    for piece, piece_italic in _italic_runs(text, terms):
        _cell_run(paragraph, piece, piece_italic, size)


def _repeat_as_header(row) -> None:
    from docx.oxml import OxmlElement

    row._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))


def _set_widths(grid, layout: DocxLayout) -> None:
    """Fixed layout with the widths of ``layout`` in every place a word processor reads them:
    w:tblW, w:tblLayout fixed, the w:gridCol of each column and the w:tcW of each cell (a
    merged cell gets the sum of its columns); cell margins explicit in w:tblCellMar."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Twips

    grid.autofit = False  # w:tblLayout w:type="fixed"
    tbl_pr = grid._tbl.tblPr
    tbl_w = tbl_pr.find(qn("w:tblW"))
    if tbl_w is None:
        tbl_w = OxmlElement("w:tblW")
        tbl_pr.insert_element_before(tbl_w, "w:jc", "w:tblCellSpacing", "w:tblInd",
                                     "w:tblBorders", *_TBL_BORDERS_SUCCESSORS)  # fmt: skip
    tbl_w.set(qn("w:type"), "dxa")
    tbl_w.set(qn("w:w"), str(sum(layout.widths)))
    margins = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        element = OxmlElement(f"w:{side}")
        element.set(qn("w:w"), str(CELL_MARGIN))
        element.set(qn("w:type"), "dxa")
        margins.append(element)
    tbl_pr.insert_element_before(margins, *_TBL_BORDERS_SUCCESSORS[3:])
    for column, width in zip(grid.columns, layout.widths, strict=True):
        column.width = Twips(width)
    for tr in grid._tbl.tr_lst:
        position = 0
        for tc in tr.tc_lst:
            tc.width = Twips(sum(layout.widths[position : position + tc.grid_span]))
            position += tc.grid_span


def _add_docx_table(document, table: ApaTable, layout: DocxLayout, base_size: float) -> None:
    terms = table.italic_terms
    size = None if layout.size == base_size else layout.size
    number = document.add_paragraph()
    number.add_run(f"Table {table.number}").bold = True
    title = document.add_paragraph()
    title.add_run(table.title.strip()).italic = True
    for paragraph in (number, title):
        paragraph.paragraph_format.line_spacing = 2.0

    body = table.body()
    n_columns = len(table.columns)
    n_header = 2 if table.spanners else 1
    grid = document.add_table(rows=n_header + len(body), cols=n_columns)
    _clear_table_borders(grid)
    rows = grid.rows
    if table.spanners:
        start = 0
        for label, span in table.spanners:
            cell = rows[0].cells[start]
            if span > 1:
                cell = cell.merge(rows[0].cells[start + span - 1])
            _fill(cell, label, terms, center=True, size=size)
            if label:
                _rule(cell, "bottom")
            start += span
    for cell, heading in zip(rows[n_header - 1].cells, table.columns, strict=True):
        _fill(cell, heading, terms, center=True, size=size)
        _rule(cell, "bottom")
    for row in rows[:n_header]:
        _repeat_as_header(row)
    for row, (kind, cells) in zip(rows[n_header:], body, strict=True):
        if kind == "group":
            merged = row.cells[0].merge(row.cells[-1]) if n_columns > 1 else row.cells[0]
            _fill(merged, cells[0], (), center=True, size=size)
            continue
        for position, (cell, text) in enumerate(zip(row.cells, cells, strict=True)):
            if position and layout.wrapping == "all":
                text = _bind_value(text)
            _fill(cell, text, (), center=position > 0, size=size)
    for cell in _unique_cells(rows[0]):
        _rule(cell, "top")
    for cell in _unique_cells(rows[-1]):
        _rule(cell, "bottom")
    _set_widths(grid, layout)

    for i, line in enumerate(table.note_lines()):
        paragraph = document.add_paragraph()
        paragraph.paragraph_format.line_spacing = 2.0
        if i == 0 and table.note.strip():
            paragraph.add_run("Note.").italic = True
            paragraph.add_run(" ")
        for piece, italic in _italic_runs(line, terms):
            paragraph.add_run(piece).italic = italic


def _set_base_font(document, font: str, size: float) -> None:
    from docx.oxml.ns import qn
    from docx.shared import Pt

    normal = document.styles["Normal"]
    normal.font.name = font
    normal.font.size = Pt(size)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), font)
    normal.paragraph_format.space_before = Pt(0)
    normal.paragraph_format.space_after = Pt(0)
    normal.paragraph_format.line_spacing = 1.0


def _set_page(section, orientation: str, paper: str) -> None:
    """Paper size, orientation (width and height swapped for landscape) and 1-inch margins."""
    from docx.enum.section import WD_ORIENT
    from docx.shared import Twips

    short, long = PAPER_SIZES[paper]
    landscape = orientation == "landscape"
    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    section.page_width = Twips(long if landscape else short)
    section.page_height = Twips(short if landscape else long)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Twips(PAGE_MARGIN))


def to_docx(
    tables: Sequence[ApaTable] | ApaTable,
    path: str | os.PathLike,
    *,
    font: str = "Times New Roman",
    size: float = 12,
    paper: str = "letter",
) -> Path:
    """Write one or more :class:`ApaTable` objects to a Word document, one table per page.

    Layout (APA 7 sections 7.10-7.15): the table number in bold, the title in italics on the
    next line, the table with horizontal rules only at the top, under the spanners and the
    headings and at the bottom (cell borders in the XML; no vertical lines), headings centred,
    stub left-aligned and other cells centred, then the notes with "Note." in italics. The
    heading rows repeat on every page of a long table. All text is in one font.

    Columns are sized to their content by :func:`docx_layout` (the stub widest, every value
    on one line, no word broken) and fixed in the file, so Word and LibreOffice show the same
    widths. A table too wide for a portrait page is set on a landscape page of its own (a
    section of its own), the next table back on portrait; one too wide for landscape gets a
    slightly smaller font, then labels wrapping at their spaces. Hyphens in cells do not
    break. Pages have 1-inch margins.

    Parameters
    ----------
    tables : ApaTable or sequence of ApaTable
        The tables, in order.
    path : str or path-like
        The .docx file to write (atomically).
    font : str, default "Times New Roman"
        Font of all text.
    size : float, default 12
        Font size in points (of the tables too, unless :func:`docx_layout` reduces it).
    paper : {"letter", "a4"}, default "letter"
        Paper size.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.tables import ApaTable, to_docx
    >>> table = ApaTable(1, "Resistance by Framework", ["Framework", "M"],
    ...                  pd.DataFrame([["Cognitive", "2.10"]]))
    >>> to_docx([table], "results/tables/tables.docx")  # doctest: +SKIP
    PosixPath('results/tables/tables.docx')
    """
    from docx import Document
    from docx.enum.section import WD_SECTION

    tables = [tables] if isinstance(tables, ApaTable) else list(tables)
    if not tables or not all(isinstance(table, ApaTable) for table in tables):
        raise TableFormatError("to_docx: pass one or more ApaTable objects.")
    layouts = [docx_layout(table, font=font, size=size, paper=paper) for table in tables]
    document = Document()
    _set_base_font(document, font, size)
    _set_page(document.sections[0], layouts[0].orientation, paper)
    for i, (table, layout) in enumerate(zip(tables, layouts, strict=True)):
        if i and layout.orientation == layouts[i - 1].orientation:
            document.add_page_break()
        elif i:
            _set_page(document.add_section(WD_SECTION.NEW_PAGE), layout.orientation, paper)
        _add_docx_table(document, table, layout, size)
    return write_atomically(path, document.save)


# CSV -----------------------------------------------------------------------------------


def to_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the unformatted numbers behind a table as CSV, at full precision.

    Floats are written with as many digits as it takes to read back the same value;
    missing values are empty fields; the index is not written (``reset_index`` first to
    keep it). UTF-8, "\\n" line ends, written atomically.

    Parameters
    ----------
    df : DataFrame
        The machine-readable table.
    path : str or path-like
        The .csv file to write.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import pandas as pd
    >>> from resistance_outcomes.tables import to_csv
    >>> to_csv(pd.DataFrame({"estimate": [0.1 + 0.2]}), "results/tables/t.csv")  # doctest: +SKIP
    PosixPath('results/tables/t.csv')
    """
    if not isinstance(df, pd.DataFrame):
        raise TableFormatError(f"to_csv: expected a DataFrame, got {type(df).__name__}.")
    return write_table(df, path)
