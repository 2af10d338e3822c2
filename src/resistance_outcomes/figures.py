"""Publication figures by framework, in one house style.

- :data:`FRAMEWORK_COLORS`: one colour-blind-safe (Okabe-Ito) colour per framework, used in
  every figure; :func:`framework_colors` extends it to any other configured group.
- :func:`plot_rupture_rate_by_session`: mean ruptures per session across sessions, with
  95% confidence bands (input: :func:`resistance_outcomes.describe.rate_by_session`).
- :func:`plot_resistance_profile`: resistance behaviours per session (or per 60 minutes)
  by type (input: :func:`resistance_outcomes.describe.resistance_profile`).
- :func:`plot_agreement`: inter-rater agreement per construct with 95% CIs against the
  Koo & Li (2016) bands (input: :func:`resistance_outcomes.reliability.reliability_analysis`).
- :func:`save_figure`: PDF and 300-dpi PNG, written atomically.

Figures are drawn with the style file ``resistance_outcomes.mplstyle`` shipped with the
package (sans-serif 8 pt, no top or right spines); widths follow journal columns
(:data:`SINGLE_COLUMN` 3.5 in, :data:`DOUBLE_COLUMN` 7.2 in).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from resistance_outcomes.derive import require_columns
from resistance_outcomes.describe import framework_order
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


def plot_rupture_rate_by_session(
    rate_df: pd.DataFrame,
    ylabel: str = "Ruptures per session",
    width: float = SINGLE_COLUMN,
    height: float = 2.6,
) -> Figure:
    """Mean ruptures per attended session across sessions, one line and band per framework.

    Suppressed cells (blank means) leave gaps rather than being bridged.

    Parameters
    ----------
    rate_df : pandas.DataFrame
        Output of :func:`resistance_outcomes.describe.rate_by_session` (``framework``,
        ``session``, ``mean``, ``ci_low``, ``ci_high``), also as read back from CSV.
    ylabel : str, default "Ruptures per session"
        y-axis label, with its unit.
    width, height : float
        Size in inches; width 3.5 (single column) or 7.2 (double column).

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
    """
    require_columns(rate_df, ["framework", "session", "mean", "ci_low", "ci_high"], "rate")
    order = framework_order(rate_df["framework"])
    colors, markers = framework_colors(order), _framework_markers(order)
    with plt.style.context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        for framework in order:
            rows = rate_df[rate_df["framework"].astype(str) == framework].sort_values("session")
            x = rows["session"].to_numpy(dtype=float)
            ax.fill_between(
                x,
                rows["ci_low"].to_numpy(dtype=float),
                rows["ci_high"].to_numpy(dtype=float),
                color=colors[framework],
                alpha=0.18,
                linewidth=0,
            )
            ax.plot(
                x,
                rows["mean"].to_numpy(dtype=float),
                color=colors[framework],
                marker=markers[framework],
                label=framework.capitalize(),
            )
        ax.set_xlabel("Session")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _legend_above(fig, ax)
    return fig


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


#: Neutral ink for figures not split by framework.
NEUTRAL = "#333333"
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


def _save_atomic(fig: Figure, path: Path, fmt: str, dpi: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
    try:
        with open(tmp, "wb") as stream, plt.style.context(STYLE):
            fig.savefig(stream, format=fmt, dpi=dpi, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
