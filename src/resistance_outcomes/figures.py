"""Publication figures by framework, in one house style.

- :data:`FRAMEWORK_COLORS`: one colour-blind-safe (Okabe-Ito) colour per framework, used in
  every figure; :func:`framework_colors` extends it to any other configured group.
- :func:`plot_rupture_rate_by_session`: mean ruptures per session across sessions, with
  95% confidence bands (input: :func:`resistance_outcomes.describe.rate_by_session`).
- :func:`plot_resistance_profile`: resistance behaviours per session (or per 60 minutes)
  by type (input: :func:`resistance_outcomes.describe.resistance_profile`).
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
from matplotlib.ticker import MaxNLocator

from resistance_outcomes.derive import require_columns
from resistance_outcomes.describe import framework_order

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
