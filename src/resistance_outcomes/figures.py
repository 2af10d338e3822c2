"""Publication figures by framework, in one house style.

- :data:`FRAMEWORK_COLORS`: one colour-blind-safe (Okabe-Ito) colour per framework, used in
  every figure; :func:`framework_colors` extends it to any other configured group.
- :func:`plot_rupture_rate_by_session`: mean ruptures per session across sessions, with
  95% confidence bands (input: :func:`resistance_outcomes.describe.rate_by_session`), and
  optionally the model's population-level prediction.
- :func:`plot_dropout_by_repair`: predicted probability of dropout against repair rate,
  one line and band per framework (input: predictions of the retention model).
- :func:`plot_forest`: framework-specific odds or rate ratios with 95% CIs on a log axis.
- :func:`plot_retention_curves`: percentage still in therapy after each session, by
  framework and by repair tertile (input: :func:`resistance_outcomes.describe.retention_curves`).
- :func:`plot_resistance_profile`: resistance behaviours per session (or per 60 minutes)
  by type (input: :func:`resistance_outcomes.describe.resistance_profile`).
- :func:`plot_model_diagnostics`: Pearson residuals against fitted values
  (:func:`diagnostic_residuals`) and normal quantile plots of the random effects.
- :func:`plot_agreement`: inter-rater agreement per construct with 95% CIs against the
  Koo & Li (2016) bands (input: :func:`resistance_outcomes.reliability.reliability_analysis`).
- :func:`save_figure`: PDF and 300-dpi PNG, written atomically.

Figures are drawn with the style file ``resistance_outcomes.mplstyle`` shipped with the
package (sans-serif 8 pt, no top or right spines); widths follow journal columns
(:data:`SINGLE_COLUMN` 3.5 in, :data:`DOUBLE_COLUMN` 7.2 in).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator, PercentFormatter
from scipy import stats as scipy_stats

from resistance_outcomes.derive import DataError, require_columns
from resistance_outcomes.describe import framework_order
from resistance_outcomes.io import write_atomically
from resistance_outcomes.reliability import construct_label
from resistance_outcomes.tables import format_bounded

STYLE = Path(__file__).with_name("resistance_outcomes.mplstyle")
SINGLE_COLUMN = 3.5
DOUBLE_COLUMN = 7.2

#: Okabe-Ito colours (Okabe & Ito, 2008), safe for the common colour-vision deficiencies.
FRAMEWORK_COLORS = {
    "psychoanalytic": "#0072B2",
    "behavioral": "#E69F00",
    "cognitive": "#009E73",
    "other": "#999999",
}
#: Markers that tell frameworks apart in greyscale print too.
FRAMEWORK_MARKERS = {"psychoanalytic": "o", "behavioral": "s", "cognitive": "^", "other": "D"}
#: Neutral ink for figures not split by framework, and for keys of line styles.
NEUTRAL = "#333333"
_SPARE_COLORS = ("#CC79A7", "#56B4E9", "#D55E00", "#000000")
_SPARE_MARKERS = ("v", "P", "X", "*")


def framework_colors(frameworks: Sequence[str]) -> dict[str, str]:
    """Colour of each framework: :data:`FRAMEWORK_COLORS`, then spare Okabe-Ito colours.

    Parameters
    ----------
    frameworks : sequence of str
        Framework names in reporting order.

    Returns
    -------
    dict
        Framework name -> hex colour.

    Examples
    --------
    >>> framework_colors(["cognitive", "integrative"])
    {'cognitive': '#009E73', 'integrative': '#CC79A7'}
    """
    spare = iter(_SPARE_COLORS)
    return {f: FRAMEWORK_COLORS.get(f) or next(spare, "#999999") for f in frameworks}


def _framework_markers(frameworks: Sequence[str]) -> dict[str, str]:
    spare = iter(_SPARE_MARKERS)
    return {f: FRAMEWORK_MARKERS.get(f) or next(spare, "o") for f in frameworks}


def _legend_above(fig: Figure, ax) -> None:
    """One-row legend above the axes, outside the data area."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels))


def _values(rows: pd.DataFrame, column: str) -> np.ndarray:
    return rows[column].to_numpy(dtype=float)


def _rows_of(table: pd.DataFrame, framework: str, by: str = "session") -> pd.DataFrame:
    return table[table["framework"].astype(str) == framework].sort_values(by)


def _style_key(label: str, **line) -> Line2D:
    """Legend entry in neutral ink that explains a line or marker style."""
    return Line2D([], [], color=NEUTRAL, label=label, **line)


def plot_rupture_rate_by_session(
    rate_df: pd.DataFrame,
    prediction: pd.DataFrame | None = None,
    ylabel: str = "Ruptures per session",
    width: float = SINGLE_COLUMN,
    height: float | None = None,
) -> Figure:
    """Mean ruptures per attended session across sessions by framework, optionally with the
    model's population-level prediction.

    Without ``prediction``, one line (observed means) and 95% band per framework. With it,
    the observed means are points with 95% error bars (frameworks side by side within a
    session) and the prediction is a dashed line of the framework's colour with its 95%
    band; a second legend below the axes explains the two styles. Suppressed cells (blank
    means) leave gaps rather than being bridged.

    Parameters
    ----------
    rate_df : pandas.DataFrame
        Output of :func:`resistance_outcomes.describe.rate_by_session` (``framework``,
        ``session``, ``mean``, ``ci_low``, ``ci_high``), also as read back from CSV.
    prediction : pandas.DataFrame, optional
        Population-level prediction per framework and session: ``framework``, ``session``,
        ``estimate``, ``ci_low``, ``ci_high`` (e.g. ``MixedResult.predict(grid,
        level="population", ci=True)`` joined to its grid), per session on the scale of
        ``rate_df``.
    ylabel : str, default "Ruptures per session"
        y-axis label, with its unit.
    width : float, default 3.5
        Width in inches: 3.5 (single column) or 7.2 (double column).
    height : float, optional
        Height in inches; default 2.6, or 3.0 with ``prediction`` (room for its legend).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> rates = pd.DataFrame({"framework": "cognitive", "session": [1, 2, 3],
    ...                       "mean": [0.8, 0.6, 0.5], "ci_low": [0.6, 0.4, 0.3],
    ...                       "ci_high": [1.0, 0.8, 0.7]})
    >>> fig = plot_rupture_rate_by_session(rates)
    >>> fig.axes[0].get_xlabel()
    'Session'
    >>> model = pd.DataFrame({"framework": "cognitive", "session": [1, 2, 3],
    ...                       "estimate": [0.75, 0.62, 0.51], "ci_low": [0.6, 0.5, 0.4],
    ...                       "ci_high": [0.9, 0.75, 0.65]})
    >>> fig = plot_rupture_rate_by_session(rates, prediction=model)
    >>> fig.legends[1].get_texts()[1].get_text()
    'Model prediction (95% CI)'
    """
    require_columns(rate_df, ["framework", "session", "mean", "ci_low", "ci_high"], "rate")
    order = framework_order(rate_df["framework"])
    if prediction is not None:
        require_columns(
            prediction, ["framework", "session", "estimate", "ci_low", "ci_high"], "prediction"
        )
        extra = framework_order(prediction["framework"])
        order += [f for f in extra if f not in order]
    colors, markers = framework_colors(order), _framework_markers(order)
    height = height or (2.6 if prediction is None else 3.0)
    with plt.style.context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        for k, framework in enumerate(order):
            rows = _rows_of(rate_df, framework)
            x, mean = _values(rows, "session"), _values(rows, "mean")
            low, high = _values(rows, "ci_low"), _values(rows, "ci_high")
            style = {"color": colors[framework], "label": framework.capitalize()}
            if prediction is None:
                ax.fill_between(x, low, high, color=colors[framework], alpha=0.18, linewidth=0)
                ax.plot(x, mean, marker=markers[framework], **style)
                continue
            dodge = (k - (len(order) - 1) / 2) * 0.12
            error = np.vstack([mean - low, high - mean])
            ax.errorbar(x + dodge, mean, yerr=error, fmt=markers[framework], elinewidth=0.8,
                        **style)  # fmt: skip
            model = _rows_of(prediction, framework)
            px = _values(model, "session")
            ax.fill_between(px, _values(model, "ci_low"), _values(model, "ci_high"),
                            color=colors[framework], alpha=0.12, linewidth=0)  # fmt: skip
            ax.plot(px, _values(model, "estimate"), color=colors[framework], linestyle="--",
                    linewidth=1.0)  # fmt: skip
        ax.set_xlabel("Session")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _legend_above(fig, ax)
        if prediction is not None:
            keys = [
                _style_key("Observed (95% CI)", marker="o", linestyle="none"),
                _style_key("Model prediction (95% CI)", linestyle="--", linewidth=1.0),
            ]
            fig.legend(handles=keys, loc="outside lower center", ncols=2)
    return fig


def plot_dropout_by_repair(
    pred_df: pd.DataFrame, width: float = SINGLE_COLUMN, height: float = 2.6
) -> Figure:
    """Predicted probability of dropout against repair rate: one line and 95% band per
    framework.

    Parameters
    ----------
    pred_df : pandas.DataFrame
        Predictions of the retention model over a grid of repair rates: ``framework``,
        ``repair_rate`` (proportion of ruptures repaired, 0-1), ``estimate``, ``ci_low``,
        ``ci_high`` (probabilities), also as read back from CSV.
    width, height : float
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    resistance_outcomes.derive.DataError
        A repair rate or probability outside 0-1 (percentages given instead of
        proportions, say).

    Examples
    --------
    >>> import pandas as pd
    >>> pred = pd.DataFrame({"framework": "cognitive", "repair_rate": [0.0, 0.5, 1.0],
    ...                      "estimate": [0.30, 0.20, 0.12], "ci_low": [0.20, 0.15, 0.06],
    ...                      "ci_high": [0.42, 0.26, 0.22]})
    >>> fig = plot_dropout_by_repair(pred)
    >>> fig.axes[0].get_xlabel()
    'Repair rate (% of ruptures repaired)'
    """
    columns = ["repair_rate", "estimate", "ci_low", "ci_high"]
    require_columns(pred_df, ["framework", *columns], "dropout prediction")
    for column in columns:
        _check_proportions(pred_df, column)
    order = framework_order(pred_df["framework"])
    colors = framework_colors(order)
    with plt.style.context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        for framework in order:
            rows = _rows_of(pred_df, framework, by="repair_rate")
            x = _values(rows, "repair_rate")
            ax.fill_between(x, _values(rows, "ci_low"), _values(rows, "ci_high"),
                            color=colors[framework], alpha=0.15, linewidth=0)  # fmt: skip
            ax.plot(x, _values(rows, "estimate"), color=colors[framework],
                    label=framework.capitalize())  # fmt: skip
        ax.set_xlabel("Repair rate (% of ruptures repaired)")
        ax.set_ylabel("Predicted probability of dropout (%)")
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0, symbol=""))
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0, symbol=""))
        ax.set_ylim(bottom=0)
        _legend_above(fig, ax)
    return fig


def _check_proportions(table: pd.DataFrame, column: str) -> None:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.notna() & ~values.between(0, 1)
    bad |= values.isna() & table[column].notna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"dropout prediction table, row {position + 1}: column '{column}' has the value "
            f"'{table[column].iloc[position]}'; it must be a proportion from 0 to 1 (divide "
            "percentages by 100)."
        )


def plot_resistance_profile(
    profile_df: pd.DataFrame,
    per: str = "session",
    width: float = SINGLE_COLUMN,
    height: float = 2.6,
) -> Figure:
    """Resistance behaviours by type and framework: points with 95% confidence intervals.

    Parameters
    ----------
    profile_df : pandas.DataFrame
        Output of :func:`resistance_outcomes.describe.resistance_profile`, also as read back
        from CSV.
    per : {"session", "hour"}, default "session"
        Plot rates per attended session or per 60 minutes.
    width, height : float
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> profile = pd.DataFrame({"framework": "cognitive", "behaviour": ["arguing", "denying"],
    ...                         "per_session": [0.4, 0.2], "per_session_ci_low": [0.3, 0.1],
    ...                         "per_session_ci_high": [0.5, 0.3]})
    >>> fig = plot_resistance_profile(profile)
    >>> fig.axes[0].get_ylabel()
    'Behaviours per session'
    """
    if per not in ("session", "hour"):
        raise ValueError(f"per must be 'session' or 'hour'; got {per!r}.")
    column = f"per_{per}"
    require_columns(
        profile_df,
        ["framework", "behaviour", column, f"{column}_ci_low", f"{column}_ci_high"],
        "resistance profile",
    )
    order = framework_order(profile_df["framework"])
    colors, markers = framework_colors(order), _framework_markers(order)
    behaviours = list(dict.fromkeys(profile_df["behaviour"].astype(str)))
    positions = {b: i for i, b in enumerate(behaviours)}
    step = min(0.22, 0.8 / max(len(order), 1))
    with plt.style.context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        for k, framework in enumerate(order):
            rows = profile_df[profile_df["framework"].astype(str) == framework]
            x = rows["behaviour"].astype(str).map(positions).to_numpy(dtype=float)
            x += (k - (len(order) - 1) / 2) * step
            estimate = rows[column].to_numpy(dtype=float)
            error = np.vstack(
                [
                    estimate - rows[f"{column}_ci_low"].to_numpy(dtype=float),
                    rows[f"{column}_ci_high"].to_numpy(dtype=float) - estimate,
                ]
            )
            ax.errorbar(
                x,
                estimate,
                yerr=error,
                fmt=markers[framework],
                color=colors[framework],
                elinewidth=0.9,
                label=framework.capitalize(),
            )
        ax.set_xticks(range(len(behaviours)), [b.capitalize() for b in behaviours])
        ax.set_xlim(-0.5, len(behaviours) - 0.5)
        ax.set_xlabel("Resistance behaviour")
        ax.set_ylabel("Behaviours per session" if per == "session" else "Behaviours per 60 min")
        ax.set_ylim(bottom=0)
        _legend_above(fig, ax)
    return fig


#: Koo & Li (2016) bands: (lower, upper, name); shaded from light to lighter.
KOO_LI_BANDS = ((-1.0, 0.5, "Poor"), (0.5, 0.75, "Moderate"), (0.75, 0.9, "Good"),
                (0.9, 1.0, "Excellent"))  # fmt: skip
_BAND_SHADES = ("#FFFFFF", "#F5F5F5", "#EBEBEB", "#E1E1E1")
#: statistic -> (marker, filled, vertical offset within the construct's row)
_AGREEMENT_MARKERS = {
    "ICC(A,1)": ("o", True, -0.16),
    "ICC(A,k)": ("o", False, 0.16),
    "Cohen's kappa": ("s", True, 0.0),
    "Fleiss' kappa": ("D", True, 0.0),
}


def plot_agreement(
    table: pd.DataFrame, width: float = SINGLE_COLUMN, height: float | None = None
) -> Figure:
    """Inter-rater agreement per construct: point and 95% CI for each statistic, over the
    Koo & Li (2016) interpretation bands.

    One row per construct, top to bottom in the order of the table; ICC(A,1) (filled
    circle) and ICC(A,k) (open circle) of a construct side by side, kappas as a square
    (Cohen's) or diamond (Fleiss'). A construct without an estimate is marked "not
    estimable". The x axis starts at the band boundary below the lowest value shown.

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table`` (``construct``, ``statistic``, ``estimate``,
        ``ci_low``, ``ci_high``), also as read back from CSV.
    width : float
        Width in inches.
    height : float, optional
        Height in inches; default grows with the number of constructs.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"construct": ["ruptures", "ruptures", "rupture_type"],
    ...     "statistic": ["ICC(A,1)", "ICC(A,k)", "Fleiss' kappa"],
    ...     "estimate": [0.91, 0.95, 0.83], "ci_low": [0.88, 0.93, 0.79],
    ...     "ci_high": [0.93, 0.96, 0.87]})
    >>> fig = plot_agreement(table)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['Ruptures', 'Rupture type']
    """
    require_columns(table, ["construct", "statistic", "estimate", "ci_low", "ci_high"], "table")
    unknown = sorted(set(table["statistic"].astype(str)) - set(_AGREEMENT_MARKERS))
    if unknown:
        raise ValueError(
            f"table: statistic {unknown[0]!r} cannot be drawn; use one of "
            f"{', '.join(_AGREEMENT_MARKERS)}."
        )
    constructs = list(dict.fromkeys(table["construct"].astype(str)))
    rows = {construct: i for i, construct in enumerate(constructs)}
    values = table[["estimate", "ci_low", "ci_high"]].apply(pd.to_numeric, errors="coerce")
    lower = _agreement_axis_start(values.to_numpy(dtype=float))
    height = height if height is not None else 0.9 + 0.24 * max(len(constructs), 2)
    with plt.style.context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        _shade_koo_li_bands(ax, lower, width)
        for statistic, (marker, filled, offset) in _AGREEMENT_MARKERS.items():
            chosen = (table["statistic"].astype(str) == statistic).to_numpy()
            if not chosen.any():
                continue
            part = values[chosen]
            y = table.loc[chosen, "construct"].astype(str).map(rows).to_numpy(float) + offset
            ok = part["estimate"].notna().to_numpy()
            estimate = part["estimate"].to_numpy(float)
            error = np.vstack(
                [
                    estimate - part["ci_low"].to_numpy(float),
                    part["ci_high"].to_numpy(float) - estimate,
                ]
            )
            ax.errorbar(
                estimate[ok],
                y[ok],
                xerr=np.nan_to_num(error[:, ok]),
                fmt=marker,
                color=NEUTRAL,
                markerfacecolor=NEUTRAL if filled else "white",
                elinewidth=0.9,
                label=statistic,
            )
        for construct in table.loc[table["estimate"].isna(), "construct"].astype(str).unique():
            if values.loc[table["construct"].astype(str) == construct, "estimate"].isna().all():
                ax.text(lower + 0.01, rows[construct], "not estimable", va="center",
                        fontsize=7, color="#666666", style="italic")  # fmt: skip
        ax.set_yticks(range(len(constructs)), [construct_label(c) for c in constructs])
        ax.set_ylim(len(constructs) - 0.5, -0.5)
        ax.set_xlim(lower, 1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(_without_leading_zero))
        ax.set_xlabel("Agreement (ICC or kappa), 95% CI")
        ax.tick_params(axis="y", length=0)
        handles, labels = ax.get_legend_handles_labels()
        ncols = len(labels) if len(labels) <= 3 else 2
        fig.legend(handles, labels, loc="outside upper center", ncols=ncols)
    return fig


def _without_leading_zero(value: float, _position=None) -> str:
    """Tick label of a statistic bounded by 1, as APA prints it: .75, −.50, 1.00."""
    return format_bounded(value)


def _agreement_axis_start(values: np.ndarray) -> float:
    """The Koo & Li cut-off (or -1, -0.5, 0) just below the lowest finite value."""
    finite = values[np.isfinite(values)]
    lowest = finite.min() if finite.size else 0.5
    cuts = (-1.0, -0.5, 0.0, 0.5, 0.75, 0.9)
    return max(cut for cut in cuts if cut <= lowest - 0.02) if lowest > -0.98 else -1.0


def _shade_koo_li_bands(ax, lower: float, width: float) -> None:
    """Shade the bands and name each above the axes, on a second (third) line where a name
    would run into its neighbour's."""
    points_per_unit = 0.6 * width * 72 / (1.0 - lower)  # the data area is ~60% of the width
    placed: list[tuple[float, float, int]] = []  # (left, right, line) of names, in points
    for (low, high, name), shade in zip(KOO_LI_BANDS, _BAND_SHADES, strict=True):
        if high <= lower:
            continue
        low = max(low, lower)
        ax.axvspan(low, high, color=shade, linewidth=0, zorder=0)
        centre = (low + high) / 2
        half = 0.55 * 7 * len(name) / 2 + 2  # 7 pt text, about 0.55 em per character
        left, right = (
            (centre - lower) * points_per_unit - half,
            (centre - lower) * points_per_unit + half,
        )
        line = min(
            n for n in range(len(KOO_LI_BANDS))
            if all(b <= left or a >= right for a, b, m in placed if m == n)
        )  # fmt: skip
        placed.append((left, right, line))
        ax.annotate(
            name,
            xy=(centre, 1.0),
            xycoords=ax.get_xaxis_transform(),
            xytext=(0, 2 + 9 * line),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
            color="#555555",
        )


# --------------------------------------------------------------------------- forest plot

#: Axis names of the ratios in ``ratio_kind`` (as written by the contrasts tables).
RATIO_NAMES = {
    "odds ratio": "Odds ratio",
    "or": "Odds ratio",
    "rate ratio": "Incidence-rate ratio",
    "incidence-rate ratio": "Incidence-rate ratio",
    "incidence rate ratio": "Incidence-rate ratio",
    "irr": "Incidence-rate ratio",
}


def _ratio_axis_label(kind: str) -> str:
    if not kind:
        return "Ratio (log scale)"
    return f"{RATIO_NAMES.get(kind.lower(), kind.capitalize())} (log scale)"


def _check_effects(effects: pd.DataFrame) -> pd.DataFrame:
    """Estimates and limits as floats, each a ratio (> 0) or missing; one row per group,
    label and framework."""
    values = effects[["estimate", "ci_low", "ci_high"]].apply(pd.to_numeric, errors="coerce")
    for column in values:
        bad = (values[column] <= 0) | (values[column].isna() & effects[column].notna())
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"effects table, row {position + 1} ({effects['label'].iloc[position]}): "
                f"column '{column}' has the value '{effects[column].iloc[position]}'; a ratio "
                "must be above 0. Give odds or rate ratios (exponentiated estimates), not "
                "log-scale coefficients."
            )
    key = [c for c in ("ratio_kind", "group", "label", "framework") if c in effects]
    repeated = effects.duplicated(key)
    if repeated.any():
        effect = effects.groupby(key, dropna=False, sort=False).ngroup().to_numpy()
        second = int(np.flatnonzero(repeated.to_numpy())[0])
        first = int(np.flatnonzero(effect == effect[second])[0])
        raise DataError(
            f"effects table: rows {first + 1} and {second + 1} have the same "
            f"{', '.join(key)}; they would be drawn on top of each other. Give each effect "
            "its own label."
        )
    return values


def _forest_layout(effects: pd.DataFrame) -> tuple[list[tuple[str, bool]], np.ndarray]:
    """Rows top to bottom as (text, is heading), and the row of each effect: one row per
    label, shared by its frameworks; with ``group``, each group's rows after its heading."""
    grouped = "group" in effects
    groups = effects["group"].astype(str) if grouped else pd.Series("", index=effects.index)
    labels = effects["label"].astype(str)
    rows: list[tuple[str, bool]] = []
    row_of = np.zeros(len(effects), dtype=int)
    for group in dict.fromkeys(groups):
        if grouped:
            rows.append((group, True))
        in_group = groups == group
        for label in dict.fromkeys(labels[in_group]):
            row_of[(in_group & (labels == label)).to_numpy()] = len(rows)
            rows.append((label, False))
    return rows, row_of


def _roundness(tick: float) -> int:
    """0 for powers of 10, 1 for 2 and 5 times them, 2 for other values."""
    mantissa = round(tick / 10.0 ** np.floor(np.log10(tick) + 1e-9), 6)
    return 0 if mantissa == 1 else 1 if mantissa in (2, 5) else 2


def _thin_ticks(ticks: Sequence[float], low: float, high: float) -> list[float]:
    """Ticks within the limits, rounder and nearer 1 first, each kept at least a seventh of
    the axis (in log units) from those kept before."""
    ticks = [t for t in ticks if low <= t <= high]
    ticks.sort(key=lambda t: (_roundness(t), abs(np.log(t))))
    gap = np.log(high / low) / 7
    kept: list[float] = []
    for tick in ticks:
        if all(abs(np.log(tick / k)) >= gap for k in kept):
            kept.append(tick)
    return sorted(kept)


def _ratio_ticks(low: float, high: float) -> list[float]:
    """Round ratios for a log axis from ``low`` to ``high``: 1-2-5 steps with finer values
    between, or round steps from 1 for a narrow range."""
    ticks = [round(m * 10.0**k, 6) for k in range(-4, 5) for m in (1, 1.5, 2, 3, 5, 7)]
    ticks = _thin_ticks(ticks, low, high)
    if len(ticks) >= 3:
        return ticks
    step = np.diff(MaxNLocator(nbins=4).tick_values(low, high))[0]
    return _thin_ticks([float(round(1 + k * step, 6)) for k in range(-40, 41)], low, high)


def _within_rows(effects: pd.DataFrame, row_of: np.ndarray) -> tuple[np.ndarray, int]:
    """Place of each effect within its row, centred on it (frameworks top to bottom in
    reporting order, effects without one last), and the most effects sharing a row."""
    frameworks = effects["framework"].astype("string").fillna("")
    order = [*framework_order(effects["framework"]), ""]
    rank = frameworks.map({f: i for i, f in enumerate(order)}).astype(float)
    rows = pd.Series(row_of, index=effects.index)
    k = rank.groupby(rows).rank(method="first") - 1
    n = rank.groupby(rows).transform("size")
    return (k - (n - 1) / 2).to_numpy(), int(n.max())


def _draw_forest_panel(ax, effects, values, colors, markers, wrap: int) -> None:
    rows, row_of = _forest_layout(effects)
    place, most = _within_rows(effects, row_of)
    y = row_of + place * min(0.22, 0.7 / most)
    frameworks = effects["framework"].astype("string").fillna("")
    estimate = values["estimate"].to_numpy(float)
    error = np.vstack([estimate - values["ci_low"].to_numpy(float),
                       values["ci_high"].to_numpy(float) - estimate])  # fmt: skip
    for framework in [f for f in [*colors, ""] if (frameworks == f).any()]:
        chosen = (frameworks == framework).to_numpy()
        ok = chosen & np.isfinite(estimate)
        color = colors.get(framework, NEUTRAL)
        ax.errorbar(
            estimate[ok],
            y[ok],
            xerr=np.nan_to_num(error[:, ok]),
            fmt=markers.get(framework, "D"),
            color=color,
            elinewidth=0.9,
            label=framework.capitalize() if framework else "_nolegend_",
        )
        for position in y[chosen & ~ok]:
            ax.text(0.02, position, "not estimable", transform=ax.get_yaxis_transform(),
                    va="center", fontsize=7, color=color, style="italic")  # fmt: skip
    ax.axvline(1.0, color="#888888", linewidth=0.7, linestyle="--", zorder=0)
    finite = values.to_numpy(float)
    finite = finite[np.isfinite(finite)]
    low = min(finite.min(initial=1.0), 1.0) / 1.15
    high = max(finite.max(initial=1.0), 1.0) * 1.15
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_xticks(_ratio_ticks(low, high))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yticks(range(len(rows)), [textwrap.fill(text, wrap) for text, _ in rows])
    for tick, (_, heading) in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if heading else "normal")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)


def _forest_panel_height(effects: pd.DataFrame, wrap: int) -> float:
    """Inches a panel needs: rows tall enough for the frameworks side by side and for
    wrapped labels, plus the x axis."""
    rows, row_of = _forest_layout(effects)
    lines = max(len(textwrap.wrap(text, wrap)) for text, _ in rows)
    row = max(0.1 + 0.07 * _within_rows(effects, row_of)[1], 0.06 + 0.13 * lines)
    return row * len(rows) + 0.55


def plot_forest(
    effects_df: pd.DataFrame,
    width: float = SINGLE_COLUMN,
    height: float | None = None,
) -> Figure:
    """Forest plot of framework-specific effects: ratio and 95% CI on a log axis.

    One row per label, top to bottom in the order of the table, with one point per
    framework side by side in the framework's colour and marker; a dashed reference line
    marks 1 (no effect). With a ``group`` column (the model, say) each group's rows follow
    a bold heading. With a ``ratio_kind`` column each kind gets its own panel with its own
    axis label, "Odds ratio (log scale)" or "Incidence-rate ratio (log scale)". Long
    labels are wrapped, and the height grows with the number of rows so that labels never
    overlap. Effects without an estimate are marked "not estimable" in their framework's
    colour; effects without a framework (a pooled effect, say) are drawn in neutral ink.

    Parameters
    ----------
    effects_df : pandas.DataFrame
        ``label``, ``framework``, ``estimate``, ``ci_low``, ``ci_high`` (ratios, > 0) and
        optionally ``group`` and ``ratio_kind`` ("odds ratio", "rate ratio", as in
        :data:`resistance_outcomes.contrasts.CONTRAST_COLUMNS`).
    width : float
        Width in inches.
    height : float, optional
        Height in inches; by default what the rows need.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    resistance_outcomes.derive.DataError
        A value at or below 0 (log-scale coefficients given instead of ratios), or two
        effects with the same group, label and framework.

    Examples
    --------
    >>> import pandas as pd
    >>> effects = pd.DataFrame({"label": "Repair rate, +10 points",
    ...                         "framework": ["behavioral", "cognitive"],
    ...                         "estimate": [0.8, 0.6], "ci_low": [0.6, 0.45],
    ...                         "ci_high": [1.1, 0.8], "ratio_kind": "odds ratio"})
    >>> fig = plot_forest(effects)
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_xscale()
    ('Odds ratio (log scale)', 'log')
    """
    require_columns(effects_df, ["label", "framework", "estimate", "ci_low", "ci_high"],
                    "effects")  # fmt: skip
    effects = effects_df.reset_index(drop=True)
    values = _check_effects(effects)
    kinds = effects["ratio_kind"] if "ratio_kind" in effects else pd.Series("", effects.index)
    kinds = kinds.astype("string").fillna("")
    panels = list(dict.fromkeys(kinds))
    order = framework_order(effects["framework"])
    colors, markers = framework_colors(order), _framework_markers(order)
    wrap = int(width * 72 * 0.4 / 4.5)  # labels take at most ~40% of the width (8 pt text)
    sizes = [_forest_panel_height(effects[kinds == kind], wrap) for kind in panels]
    with plt.style.context(STYLE):
        fig = Figure(figsize=(width, height or 0.35 + sum(sizes)), layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=sizes)[:, 0]
        for ax, kind in zip(axes, panels, strict=True):
            chosen = (kinds == kind).to_numpy()
            part = effects[chosen].reset_index(drop=True)
            _draw_forest_panel(ax, part, values[chosen].reset_index(drop=True), colors,
                               markers, wrap)  # fmt: skip
            ax.set_xlabel(_ratio_axis_label(kind))
        handles = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="outside upper center",
                       ncols=len(handles))  # fmt: skip
    return fig


# --------------------------------------------------------------------------- retention

#: Line style of each repair group of :func:`resistance_outcomes.describe.repair_tertile`.
REPAIR_LINESTYLES = {
    "Low repair": ":",
    "Middle repair": "--",
    "High repair": "-",
    "No ruptures": "-.",
    "Not coded": (0, (1, 3)),
}


def _retention_steps(rows: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Session and percentages still in therapy, from 100% before session 1 up to the
    last session before the first suppressed one."""
    rows = rows.sort_values("session")
    hidden = np.flatnonzero(np.isnan(_values(rows, "survival")))
    rows = rows.iloc[: hidden[0]] if hidden.size else rows
    x = np.concatenate([[0.0], _values(rows, "session")])
    return (x, *(100 * np.concatenate([[1.0], _values(rows, c)])
                 for c in ("survival", "ci_low", "ci_high")))  # fmt: skip


def _draw_retention(ax, rows: pd.DataFrame, color: str, label: str, alpha: float, **line):
    x, survival, low, high = _retention_steps(rows)
    ax.fill_between(x, low, high, step="post", color=color, alpha=alpha, linewidth=0)
    ax.step(x, survival, where="post", color=color, label=label, **line)


def _two_row_legend(fig: Figure, first: list, second: list) -> None:
    """Legend above the axes with ``first`` (handles) on one row and ``second`` below."""
    ncols = max(len(first), len(second))
    blank = Line2D([], [], linestyle="none", label=" ")
    first = first + [blank] * (ncols - len(first))
    second = second + [blank] * (ncols - len(second))
    handles = [h for pair in zip(first, second, strict=True) for h in pair]  # column-major
    fig.legend(handles=handles, loc="outside upper center", ncols=ncols)


def _retention_axes(ax, last_session: float, bottom: float) -> None:
    ax.set_xlim(0, last_session + 0.5)
    ax.set_ylim(bottom, 101)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.set_xlabel("Session")


def plot_retention_curves(
    curves_df: pd.DataFrame,
    tertile_curves: pd.DataFrame | None = None,
    width: float | None = None,
    height: float = 2.6,
) -> Figure:
    """Retention curves: percentage of clients still in therapy after each session, as
    steps with 95% bands, by framework and, optionally, by repair tertile.

    The first panel has one curve per framework. With ``tertile_curves``, one further
    panel per framework shows its repair groups in the framework's colour, told apart by
    line style (dotted low, dashed middle, solid high repair; dash-dot no ruptures). Every
    curve starts at 100% before session 1; suppressed sessions end it. Panels share the y
    axis, which starts at the 10% step below the lowest interval.

    Parameters
    ----------
    curves_df : pandas.DataFrame
        :func:`resistance_outcomes.describe.retention_curves` by ``framework``.
    tertile_curves : pandas.DataFrame, optional
        The same by ``["framework", "repair_tertile"]``.
    width : float, optional
        Width in inches; default 3.5 (one panel) or 7.2 (with repair panels).
    height : float, default 2.6
        Height in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> curves = pd.DataFrame({"framework": "cognitive", "session": [1, 2, 3],
    ...                        "survival": [0.95, 0.9, 0.85], "ci_low": [0.9, 0.84, 0.78],
    ...                        "ci_high": [0.98, 0.94, 0.9]})
    >>> fig = plot_retention_curves(curves)
    >>> fig.axes[0].get_ylabel()
    'Still in therapy (%)'
    """
    needed = ["framework", "session", "survival", "ci_low", "ci_high"]
    require_columns(curves_df, needed, "retention curves")
    tables = [curves_df]
    if tertile_curves is not None:
        require_columns(tertile_curves, [*needed, "repair_tertile"], "repair-tertile curves")
        tables.append(tertile_curves)
    order = framework_order(curves_df["framework"])
    colors = framework_colors(order)
    lowest = min(np.nanmin(t["ci_low"].to_numpy(dtype=float), initial=1.0) for t in tables)
    bottom = 10 * np.floor(10 * lowest - 1e-9)
    last = max(np.nanmax(t["session"].to_numpy(dtype=float)) for t in tables)
    with plt.style.context(STYLE):
        width = width or (SINGLE_COLUMN if tertile_curves is None else DOUBLE_COLUMN)
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, 1 + (len(order) if tertile_curves is not None else 0),
                            sharey=True, squeeze=False)[0]  # fmt: skip
        for framework in order:
            _draw_retention(axes[0], _rows_of(curves_df, framework), colors[framework],
                            framework.capitalize(), alpha=0.13)  # fmt: skip
        for ax, framework in zip(axes[1:], order, strict=False):
            rows = _rows_of(tertile_curves, framework)
            groups = rows["repair_tertile"]
            for group in _present_groups(groups):
                style = {"alpha": 0.08, "linestyle": REPAIR_LINESTYLES.get(group, "-")}
                part = rows[groups.astype(str) == group]
                _draw_retention(ax, part, colors[framework], group, **style)
            ax.set_title(framework.capitalize(), color=colors[framework])
        for ax in axes:
            _retention_axes(ax, last, bottom)
        axes[0].set_ylabel("Still in therapy (%)")
        handles = axes[0].get_legend_handles_labels()[0]
        if len(axes) == 1:
            fig.legend(handles=handles, loc="outside upper center", ncols=len(handles))
            return fig
        axes[0].set_title("By framework")
        groups = dict.fromkeys(g for ax in axes[1:] for g in ax.get_legend_handles_labels()[1])
        keys = [_style_key(g, linestyle=REPAIR_LINESTYLES.get(g, "-")) for g in groups]
        _two_row_legend(fig, handles, keys)
    return fig


def _present_groups(groups: pd.Series) -> list[str]:
    """Repair groups present, in the order of the categories (else of appearance)."""
    present = set(groups.dropna().astype(str))
    if isinstance(groups.dtype, pd.CategoricalDtype):
        return [str(c) for c in groups.cat.categories if str(c) in present]
    known = [g for g in REPAIR_LINESTYLES if g in present]
    return known + sorted(present - set(known))


# --------------------------------------------------------------------------- diagnostics

_FITTED_LABELS = {
    "gaussian": "Fitted value",
    "binomial": "Fitted probability",
    "poisson": "Fitted count",
    "negative_binomial": "Fitted count",
}
_LINK_SCALES = {
    "gaussian": "response units",
    "binomial": "log odds",
    "poisson": "log rate",
    "negative_binomial": "log rate",
}


def _variance_function(result, mu: np.ndarray) -> np.ndarray:
    if result.family == "binomial":
        return mu * (1 - mu)
    if result.family == "poisson":
        return mu
    if result.family == "negative_binomial":
        return mu + mu**2 / result.nb_theta
    return np.ones_like(mu)


def diagnostic_residuals(result) -> pd.DataFrame:
    """Fitted values and Pearson residuals of a mixed model, one row per fitted observation.

    The fitted value is the conditional mean ``mu`` (fixed effects plus the random effects'
    conditional modes, on the response scale). The Pearson residual is
    ``(y - mu) sqrt(w / V(mu)) / sigma``, with prior weights ``w`` (the number of trials for
    ``cbind`` responses) and the family's variance function ``V``: 1 for gaussian (then
    ``sigma`` is the residual SD, so the residuals are in SD units), ``mu (1 - mu)``
    binomial, ``mu`` Poisson, ``mu + mu^2 / theta`` negative binomial (``sigma = 1`` for
    these).

    Parameters
    ----------
    result : resistance_outcomes.models.MixedResult
        A fitted model.

    Returns
    -------
    pandas.DataFrame
        ``fitted`` and ``residual``, indexed like the rows used in fitting.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(3)
    >>> g = np.repeat(np.arange(10), 8)
    >>> df = pd.DataFrame({"g": g, "y": rng.poisson(np.exp(0.5 + rng.normal(0, .4, 10)[g]))})
    >>> res = diagnostic_residuals(fit_mixed("y ~ 1 + (1 | g)", df, family="poisson"))
    >>> list(res.columns), len(res)
    (['fitted', 'residual'], 80)
    """
    design = result.design
    mu = result.predict(level="conditional", scale="response")["estimate"].to_numpy()
    scale = np.sqrt(design.prior_weights / _variance_function(result, mu)) / result.sigma
    return pd.DataFrame(
        {"fitted": mu, "residual": (design.y - mu) * scale}, index=design.frame.index
    )


def _random_effect_terms(result) -> list[tuple[str, np.ndarray]]:
    """(title, conditional modes) of each random-effect term: grouping factor and
    coefficient, modes split by ``design.blocks`` (levels major, coefficients minor)."""
    terms = []
    for block in result.design.blocks:
        modes = np.asarray(result.b)[block.z_slice].reshape(block.n_levels, block.n_coef)
        for j, name in enumerate(block.coef_names):
            what = "intercept" if name == "(Intercept)" else name
            terms.append((f"{block.group}\n{what}", modes[:, j]))
    return terms


def _normal_scores(n: int) -> np.ndarray:
    """Expected normal order statistics as R's ``qqnorm`` places them (``ppoints``)."""
    a = 3 / 8 if n <= 10 else 1 / 2
    return scipy_stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))


def _draw_quantiles(ax, values: np.ndarray) -> None:
    """Normal quantile plot with R's ``qqline`` (through the quartiles)."""
    y = np.sort(values)
    x = _normal_scores(y.size)
    ax.plot(x, y, linestyle="none", marker="o", markersize=2.5, color=NEUTRAL, alpha=0.7)
    q_y = np.quantile(y, [0.25, 0.75])
    q_x = scipy_stats.norm.ppf([0.25, 0.75])
    slope = (q_y[1] - q_y[0]) / (q_x[1] - q_x[0])
    ax.axline((q_x[0], q_y[0]), slope=slope, color="#D55E00", linewidth=0.9)


def _binned_means(fitted: np.ndarray, residual: np.ndarray, bins: int) -> pd.DataFrame:
    """Mean fitted value and residual within bins of equal numbers of fitted values."""
    rank = np.argsort(np.argsort(fitted, kind="stable"), kind="stable")
    bin_of = rank * bins // fitted.size
    frame = pd.DataFrame({"fitted": fitted, "residual": residual, "bin": bin_of})
    return frame.groupby("bin").mean()


def plot_model_diagnostics(
    result, width: float = DOUBLE_COLUMN, height: float | None = None, bins: int = 20
) -> Figure:
    """Diagnostics panel of a mixed model: residuals against fitted values, and a normal
    quantile plot of each random-effect term's conditional modes.

    Left: Pearson residuals (:func:`diagnostic_residuals`) against fitted values, with the
    mean residual within ``bins`` bins of equal size (orange line; it should stay near 0,
    which reads more easily than the raw points for binary outcomes); the legend sits
    above the axes. Right: one small axes per random-effect term (grouping factor and
    coefficient in its title), its conditional modes against normal quantiles with a line
    through the quartiles, as R's ``qqnorm`` and ``qqline`` draw them.

    Parameters
    ----------
    result : resistance_outcomes.models.MixedResult
        A fitted model.
    width : float, default 7.2
        Width in inches.
    height : float, optional
        Height in inches; default 2.6, more when there are more than two terms.
    bins : int, default 20
        Number of bins of the binned means (fewer with fewer than 5 observations a bin).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(8), 6)
    >>> df = pd.DataFrame({"g": g, "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fig = plot_model_diagnostics(fit_mixed("y ~ x + (1 | g)", df))
    >>> [ax.get_title() for ax in fig.axes]
    ['', 'g\\nintercept']
    """
    residuals = diagnostic_residuals(result)
    fitted, residual = residuals["fitted"].to_numpy(), residuals["residual"].to_numpy()
    terms = _random_effect_terms(result)
    ncols = min(len(terms), 2)
    nrows = -(-len(terms) // 2)
    height = height if height is not None else max(2.6, 0.4 + 1.5 * nrows)
    with plt.style.context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[1.15, 1]) if terms else (fig, None)
        ax = left.subplots()
        ax.plot(fitted, residual, linestyle="none", marker="o", markersize=2, alpha=0.35,
                color=NEUTRAL, rasterized=True, label="Observation")  # fmt: skip
        n_bins = max(1, min(bins, fitted.size // 5))
        means = _binned_means(fitted, residual, n_bins)
        ax.plot(means["fitted"], means["residual"], color="#D55E00", marker="o",
                markersize=2.5, linewidth=1.0, label=f"Mean of {n_bins} bins")  # fmt: skip
        ax.axhline(0, color="#888888", linewidth=0.7, linestyle="--", zorder=0)
        ax.set_xlabel(_FITTED_LABELS[result.family])
        ax.set_ylabel("Pearson residual")
        left.legend(loc="outside upper center", ncols=2)
        if right is not None:
            grid = right.subplots(nrows, ncols, squeeze=False)
            for k, (axq, (title, values)) in enumerate(zip(grid.flat, terms, strict=False)):
                _draw_quantiles(axq, values)
                axq.set_title(title)
                if k >= len(terms) - ncols:
                    axq.set_xlabel("Normal quantile")
                if k % ncols == 0:
                    axq.set_ylabel(f"Conditional mode\n({_LINK_SCALES[result.family]})")
            for axq in grid.flat[len(terms) :]:
                axq.remove()
    return fig


def _save_atomic(fig: Figure, path: Path, fmt: str, dpi: int) -> None:
    metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}

    def write(temporary: str) -> None:
        with open(temporary, "wb") as stream, plt.style.context(STYLE):
            fig.savefig(stream, format=fmt, dpi=dpi, metadata=metadata)

    write_atomically(path, write)


def save_figure(
    fig: Figure, pdf_path: str | os.PathLike, png_path: str | os.PathLike, dpi: int = 300
) -> None:
    """Write a figure as PDF and PNG, each atomically, then close it.

    Each file is written to a temporary file in the target folder and renamed into place,
    so an interrupted run never leaves a half-written figure. The PDF carries no creation
    date, so the same figure gives the same file.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    pdf_path, png_path : path-like
        Output files (folders are created).
    dpi : int, default 300
        Resolution of the PNG.

    Examples
    --------
    >>> import pandas as pd
    >>> rates = pd.DataFrame({"framework": "cognitive", "session": [1, 2], "mean": [0.8, 0.6],
    ...                       "ci_low": [0.6, 0.4], "ci_high": [1.0, 0.8]})
    >>> fig = plot_rupture_rate_by_session(rates)
    >>> save_figure(fig, "results/figures/rate.pdf", "results/figures/rate.png")  # doctest: +SKIP
    """
    try:
        _save_atomic(fig, Path(pdf_path), "pdf", dpi)
        _save_atomic(fig, Path(png_path), "png", dpi)
    finally:
        plt.close(fig)


def plot_not_fitted(model: str, reason: str, width: float = SINGLE_COLUMN) -> Figure:
    """A small figure stating that a model was not fitted, and why (in place of its plots).

    Examples
    --------
    >>> fig = plot_not_fitted("alliance_trajectory", "no alliance ratings in the data")
    >>> fig.texts[0].get_text().startswith("alliance_trajectory")
    True
    """
    with plt.style.context(STYLE):
        fig = plt.figure(figsize=(width, 1.0))
        fig.text(0.5, 0.5, f"{model}: not fitted\n{reason}", ha="center", va="center", wrap=True)
    return fig
