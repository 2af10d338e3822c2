"""Publication figures by framework, in one house style.

Every figure takes the frameworks' order, colours, markers and printed labels from the
study's vocabulary (:class:`resistance_outcomes.vocabulary.Vocabulary`, argument
``vocab``): the order of ``config/frameworks.yaml``, one colour-blind-safe (Okabe-Ito)
colour and one marker per framework by its position there, grey for the ``other`` group.
So a framework has the same colour in every figure, whichever frameworks a figure shows.
Without a vocabulary, ``order`` (and ``colors``/``markers``) may be given; the default is
computed the same way from the frameworks of the table (:func:`framework_style`).

- :func:`plot_rupture_rate_by_session`: mean of a construct (ruptures) per session across
  sessions, with 95% confidence bands (input:
  :func:`resistance_outcomes.describe.rate_by_session`), and optionally the model's
  population-level prediction.
- :func:`plot_dropout_by_repair`: predicted probability of dropout against repair rate,
  one line and band per framework (input: predictions of the retention model).
- :func:`plot_forest`: framework-specific odds or rate ratios with 95% CIs on a log axis.
- :func:`plot_retention_curves`: percentage still in therapy after each session, by
  framework and by repair tertile (input: :func:`resistance_outcomes.describe.retention_curves`).
- :func:`plot_resistance_profile`: the forms of the profiled composite (resistance in the
  example) and the types within each form, per session or per 60 minutes, by framework
  (input: :func:`resistance_outcomes.describe.construct_profile`).
- :func:`plot_model_diagnostics`: Pearson residuals against fitted values
  (:func:`diagnostic_residuals`) and normal quantile plots of the random effects.
- :func:`plot_agreement`: inter-rater agreement per construct with 95% CIs against the
  Koo & Li (2016) bands (input: the reliability table).
- :func:`plot_influence`: the therapists (or other groups) whose absence moves a model
  most: DFBETAS of every estimate without each of them and the therapist SD (input:
  :func:`resistance_outcomes.influence.leave_one_out`).
- :func:`plot_not_assessed`, :func:`plot_not_fitted`: a small figure in place of one that
  has nothing to draw (a stage without data, a model not fitted), so that every declared
  figure exists.
- :func:`save_figure`: PDF and 300-dpi PNG, written atomically.

No panel is drawn empty: frameworks without anything to show (every cell suppressed) are
left out of the figure and named in a grey legend entry ("not shown"), and a figure with
nothing at all to show is a :func:`plot_not_assessed` placeholder. Legends are measured
with the renderer and laid out (columns, wrapped labels, a taller figure) so that no text
leaves the figure, for up to nine groups with names of 25 characters or more.

Figures are drawn with the style file ``resistance_outcomes.mplstyle`` shipped with the
package (sans-serif 8 pt, no top or right spines); widths follow journal columns
(:data:`SINGLE_COLUMN` 3.5 in, :data:`DOUBLE_COLUMN` 7.2 in).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator, PercentFormatter
from scipy import stats as scipy_stats

from resistance_outcomes.codebook import humanise
from resistance_outcomes.derive import DataError, require_columns
from resistance_outcomes.describe import framework_order
from resistance_outcomes.frameworks import FrameworkMap
from resistance_outcomes.io import write_atomically
from resistance_outcomes.labels import group_label, lower_first
from resistance_outcomes.models.families import get_family
from resistance_outcomes.models.residuals import simulation_words
from resistance_outcomes.predictions import random_effects_table, residual_table
from resistance_outcomes.tables import format_bounded
from resistance_outcomes.vocabulary import (
    MARKERS,
    PALETTE,
    FrameworkInfo,
    Vocabulary,
    framework_infos,
)

STYLE = Path(__file__).with_name("resistance_outcomes.mplstyle")
SINGLE_COLUMN = 3.5
DOUBLE_COLUMN = 7.2

#: Neutral ink for figures not split by framework, and for keys of line styles.
NEUTRAL = "#333333"
#: Ink of notes (frameworks not shown, placeholders).
NOTE_INK = "#666666"


# --------------------------------------------------------------------------- frameworks


@dataclass(frozen=True)
class FrameworkStyle:
    """The frameworks of one figure: reporting order, colour, marker and printed label.

    Attributes
    ----------
    order : tuple of str
        The frameworks of the figure's table, in reporting order.
    colors, markers, labels : dict
        Framework name -> colour, marker, printed label (for every framework of the
        study, not only those in ``order``).
    """

    order: tuple[str, ...]
    colors: Mapping[str, str]
    markers: Mapping[str, str]
    labels: Mapping[str, str]

    def color(self, name: str) -> str:
        """The framework's colour (neutral ink for none)."""
        return self.colors.get(name, NEUTRAL)

    def marker(self, name: str) -> str:
        """The framework's marker."""
        return self.markers.get(name, "o")

    def label(self, name: str) -> str:
        """The framework's printed label."""
        return self.labels.get(name) or humanise(name)


def framework_style(
    frameworks: Iterable = (),
    vocab: Vocabulary | None = None,
    order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    markers: Mapping[str, str] | None = None,
) -> FrameworkStyle:
    """Order, colours, markers and labels of the frameworks in a figure's table.

    With ``vocab``, everything comes from the study's vocabulary (the framework map's order,
    colour and marker by position, ``other`` grey and last), so a framework looks the same in
    every figure. Without it, the order is ``order`` (or the column's categorical order, or
    the order of appearance; :func:`resistance_outcomes.describe.framework_order`) and the
    colours and markers are given by position in that order, as
    :func:`resistance_outcomes.vocabulary.framework_infos` gives them. ``colors`` and
    ``markers`` override single frameworks. A framework the vocabulary does not know takes
    the next free colour of the palette.

    Parameters
    ----------
    frameworks : iterable or pandas.Series
        The ``framework`` column of the table drawn.
    vocab : Vocabulary, optional
        The study's vocabulary (``results/data/vocabulary.json``).
    order : sequence of str, optional
        Framework names in reporting order (all of the study's, for colours that stay put
        across figures).
    colors, markers : mapping, optional
        Framework name -> colour or marker, over the defaults.

    Returns
    -------
    FrameworkStyle

    Examples
    --------
    >>> style = framework_style(["systemic", "humanistic"],
    ...                         order=["humanistic", "psychodynamic", "systemic"])
    >>> style.order, style.color("systemic"), style.label("humanistic")
    (('humanistic', 'systemic'), '#009E73', 'Humanistic')
    """
    values = frameworks if isinstance(frameworks, pd.Series) else pd.Series(list(frameworks))
    if vocab is not None and vocab.frameworks:
        infos = list(vocab.frameworks)
        shown = vocab.order(values) if order is None else framework_order(values, order)
    else:
        shown = framework_order(values, order)
        names = tuple(dict.fromkeys(str(f) for f in (order if order is not None else shown)))
        infos = framework_infos(FrameworkMap(names, {}))
    known = {info.name for info in infos}
    used = len([info for info in infos if not info.other])
    for k, name in enumerate(f for f in shown if f not in known):
        position = (used + k) % len(PALETTE)
        infos.append(FrameworkInfo(name, humanise(name), PALETTE[position], MARKERS[position]))
    return FrameworkStyle(
        order=tuple(shown),
        colors={info.name: info.color for info in infos} | dict(colors or {}),
        markers={info.name: info.marker for info in infos} | dict(markers or {}),
        labels={info.name: info.label for info in infos},
    )


# --------------------------------------------------------------------------- layout


def _new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure with a renderer, so texts can be measured."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _renderer(fig: Figure):
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


#: Room kept free on each side of a legend (inches): constrained layout's pad and a margin.
_LEGEND_MARGIN = 0.1


def fit_legend(
    fig: Figure,
    handles: Sequence,
    labels: Sequence[str],
    loc: str = "outside upper center",
    grow: bool = True,
    **options,
) -> Legend | None:
    """A figure legend laid out to fit the figure's width, measured with the renderer.

    The legend takes as many columns as fit (all entries on one row when they can); when a
    single column is still too wide, or when wrapping labels gives a lower legend, labels
    are wrapped at word boundaries (words stay whole, a label takes at most two lines). Of
    the layouts that fit, the lowest is taken, with less wrapping on ties. With ``grow``,
    the figure grows by the height the legend needs beyond one row, so the data area keeps
    its size.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure with constrained layout.
    handles : sequence of artists
        Legend handles.
    labels : sequence of str
        Their labels.
    loc : str, default "outside upper center"
        Legend location (an ``outside`` location of constrained layout).
    grow : bool, default True
        Make the figure taller by the legend's extra rows.
    **options
        Passed to :meth:`matplotlib.figure.Figure.legend`.

    Returns
    -------
    matplotlib.legend.Legend or None
        None without entries.

    Examples
    --------
    >>> fig = _new_figure(3.5, 2.6)
    >>> ax = fig.add_subplot()
    >>> lines = [ax.plot([0, 1], label=f"A framework with a long name {k}")[0] for k in range(4)]
    >>> legend = fit_legend(fig, lines, [line.get_label() for line in lines])
    >>> bool(legend.get_window_extent().width < fig.bbox.width), bool(fig.get_figheight() > 2.6)
    (True, True)
    """
    if not handles:
        return None
    handles = list(handles)
    renderer = _renderer(fig)
    room = fig.bbox.width - 2 * _LEGEND_MARGIN * fig.dpi
    texts = [str(label) for label in labels]
    # One legend of one column gives the space around the texts (handle, pads, border);
    # the width of any other layout follows from the texts' widths, measured once each.
    probe = fig.legend(handles, texts, loc=loc, ncols=1, **options)
    measure = _TextWidths(renderer, probe.prop)
    around = probe.get_window_extent(renderer).width - max(measure(t) for t in texts)
    font = probe.prop.get_size_in_points() * fig.dpi / 72
    per_column = (probe.columnspacing + probe.handlelength + probe.handletextpad) * font
    probe.remove()

    def width_of(shown: list[str], ncols: int) -> float:
        columns = _legend_columns(shown, ncols)
        return around + sum(max(map(measure, c)) for c in columns) + (ncols - 1) * per_column

    def lines_of(shown: list[str], ncols: int) -> int:
        columns = _legend_columns(shown, ncols)
        return sum(
            max(c[r].count("\n") + 1 for c in columns if r < len(c)) for r in range(len(columns[0]))
        )

    longest = max(len(t) for t in texts)
    best, best_key = None, None
    for width in [None, *range(longest - 1, 7, -1)]:
        shown = texts if width is None else [_fill(t, width) for t in texts]
        if width is not None and (shown == texts or max(t.count("\n") for t in shown) > 1):
            continue  # the same as unwrapped, or a label on more than two lines
        ncols = next((n for n in range(len(shown), 0, -1) if width_of(shown, n) <= room), 0)
        if ncols:
            key = (lines_of(shown, ncols), -(width or longest + 1))
            if best_key is None or key < best_key:
                best, best_key = (shown, ncols), key
    shown, ncols = best or ([_fill(t, 8) for t in texts], 1)  # else the narrowest there is
    legend = fig.legend(handles, shown, loc=loc, ncols=ncols, **options)
    while ncols > 1 and legend.get_window_extent(renderer).width > room:
        legend.remove()  # the estimate was short: one column fewer
        ncols -= 1
        legend = fig.legend(handles, shown, loc=loc, ncols=ncols, **options)
    if grow:
        single = fig.legend(handles[:1], ["Xg"], loc=loc, ncols=1, **options)
        extra = legend.get_window_extent(renderer).height
        extra -= single.get_window_extent(renderer).height
        single.remove()
        if extra > 0:
            fig.set_figheight(fig.get_figheight() + extra / fig.dpi)
    return legend


class _TextWidths:
    """Width in pixels of (multi-line) legend texts, measured once each."""

    def __init__(self, renderer, prop):
        self.renderer, self.prop, self.cache = renderer, prop, {}

    def __call__(self, text: str) -> float:
        if text not in self.cache:
            self.cache[text] = max(
                self.renderer.get_text_width_height_descent(line, self.prop, ismath=False)[0]
                for line in text.split("\n")
            )
        return self.cache[text]


def _legend_columns(texts: list[str], ncols: int) -> list[list[str]]:
    """Entries per legend column as matplotlib fills them: column by column, the first
    ``len % ncols`` columns one entry longer."""
    rows, large = divmod(len(texts), ncols)
    sizes = [rows + 1] * large + [rows] * (ncols - large)
    starts = np.cumsum([0, *sizes])
    return [texts[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True) if b > a]


def _not_shown_entry(style: FrameworkStyle, omitted: Sequence[str], why: str):
    """A grey legend entry without a handle naming frameworks left out of the figure."""
    names = ", ".join(style.label(f) for f in omitted)
    return Line2D([], [], linestyle="none", marker="none"), f"{names}: not shown ({why})"


def _framework_legend(
    fig: Figure,
    style: FrameworkStyle,
    handles: Mapping[str, object],
    omitted: Sequence[str] = (),
    why: str = "too few data",
    loc: str = "outside upper center",
) -> Legend | None:
    """The frameworks' legend in reporting order, with a note of those not shown."""
    entries = [(handles[f], style.label(f)) for f in style.order if f in handles]
    if omitted:
        entries.append(_not_shown_entry(style, omitted, why))
    if not entries:
        return None
    legend = fit_legend(fig, [h for h, _ in entries], [t for _, t in entries], loc=loc)
    if omitted:
        legend.get_texts()[-1].set_color(NOTE_INK)
        legend.get_texts()[-1].set_fontstyle("italic")
    return legend


def _wrap_to(texts: Sequence[str], inches: float, points: float = 8) -> list[str]:
    """Texts wrapped to lines of about ``inches`` at ``points`` (0.55 em a character)."""
    chars = max(6, int(inches * 72 / (0.55 * points)))
    return [_fill(str(t), chars) for t in texts]


def _fill(text: str, width: int) -> str:
    """``text`` wrapped at spaces to lines of ``width`` characters; words stay whole."""
    return textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False)


def _values(rows: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float)


def _rows_of(table: pd.DataFrame, framework: str, by: str = "session") -> pd.DataFrame:
    return table[table["framework"].astype(str) == framework].sort_values(by)


def _has_values(table: pd.DataFrame, framework: str, column: str) -> bool:
    return bool(np.isfinite(_values(_rows_of(table, framework, column), column)).any())


def _style_key(label: str, **line) -> Line2D:
    """Legend entry in neutral ink that explains a line or marker style."""
    return Line2D([], [], color=NEUTRAL, label=label, **line)


# --------------------------------------------------------------------------- placeholders


def plot_placeholder(
    title: str, message: str, width: float = SINGLE_COLUMN, height: float = 0.9
) -> Figure:
    """A small figure that says why there is nothing to draw (title, then the message).

    Examples
    --------
    >>> fig = plot_placeholder("Resistance profile", "Not assessed: no resistance coding")
    >>> [t.get_text() for t in fig.texts]
    ['Resistance profile', 'Not assessed: no resistance coding']
    """
    with plt.style.context(STYLE):
        fig = _new_figure(width, height)
        lines = _wrap_to([message], width - 0.3, 8)[0]
        fig.text(0.5, 0.62, title, ha="center", va="bottom", fontsize=9, fontweight="bold")
        fig.text(0.5, 0.55, lines, ha="center", va="top", color=NOTE_INK)
        fig.set_layout_engine("none")
    return fig


def plot_not_assessed(what: str, reason: str, width: float = SINGLE_COLUMN) -> Figure:
    """The figure of a stage that had no data: "Not assessed: <reason>".

    Parameters
    ----------
    what : str
        What the figure would show ("Rupture rate by session").
    reason : str
        Why not, as :class:`resistance_outcomes.vocabulary.Stage` gives it ("no coding of
        ruptures").
    width : float
        Width in inches.

    Examples
    --------
    >>> fig = plot_not_assessed("Rupture rate by session", "no coding of ruptures")
    >>> fig.texts[1].get_text()
    'Not assessed: no coding of ruptures'
    """
    return plot_placeholder(what, f"Not assessed: {reason}", width)


def plot_not_fitted(model: str, reason: str, width: float = SINGLE_COLUMN) -> Figure:
    """A small figure stating that a model was not fitted, and why (in place of its plots).

    Examples
    --------
    >>> fig = plot_not_fitted("alliance_trajectory", "no alliance ratings in the data")
    >>> fig.texts[0].get_text().startswith("alliance_trajectory")
    True
    """
    return plot_placeholder(f"{model}: not fitted", reason, width)


# --------------------------------------------------------------------------- rates


def plot_rupture_rate_by_session(
    rate_df: pd.DataFrame,
    prediction: pd.DataFrame | None = None,
    ylabel: str | None = None,
    width: float = SINGLE_COLUMN,
    height: float | None = None,
    vocab: Vocabulary | None = None,
    order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    construct: str = "ruptures",
) -> Figure:
    """Mean of a construct (ruptures) per attended session across sessions by framework,
    optionally with the model's population-level prediction.

    Without ``prediction``, one line (observed means) and 95% band per framework. With it,
    the observed means are points with 95% error bars (frameworks side by side within a
    session) and the prediction is a dashed line of the framework's colour with its 95%
    band; a second legend below the axes explains the two styles. Suppressed cells (blank
    means) leave gaps rather than being bridged; a framework without any mean shown is
    left out and named in the legend as not shown. With no mean at all the figure is a
    :func:`plot_placeholder`.

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
    ylabel : str, optional
        y-axis label, with its unit; default "<construct label> per session".
    width : float, default 3.5
        Width in inches: 3.5 (single column) or 7.2 (double column).
    height : float, optional
        Height in inches; default 2.6, or 3.0 with ``prediction`` (room for its legend);
        taller when the legend needs more than one row.
    vocab : Vocabulary, optional
        Frameworks' order, colours and labels, and the construct's label.
    order, colors : optional
        Without ``vocab``: framework order and colours (see :func:`framework_style`).
    construct : str, default "ruptures"
        The construct drawn, for the default y label.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> rates = pd.DataFrame({"framework": "systemic", "session": [1, 2, 3],
    ...                       "mean": [0.8, 0.6, 0.5], "ci_low": [0.6, 0.4, 0.3],
    ...                       "ci_high": [1.0, 0.8, 0.7]})
    >>> fig = plot_rupture_rate_by_session(rates)
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    ('Session', 'Ruptures per session')
    >>> model = pd.DataFrame({"framework": "systemic", "session": [1, 2, 3],
    ...                       "estimate": [0.75, 0.62, 0.51], "ci_low": [0.6, 0.5, 0.4],
    ...                       "ci_high": [0.9, 0.75, 0.65]})
    >>> fig = plot_rupture_rate_by_session(rates, prediction=model)
    >>> fig.legends[1].get_texts()[1].get_text()
    'Model prediction (95% CI)'
    """
    require_columns(rate_df, ["framework", "session", "mean", "ci_low", "ci_high"], "rate")
    frameworks = rate_df["framework"]
    if prediction is not None:
        require_columns(
            prediction, ["framework", "session", "estimate", "ci_low", "ci_high"], "prediction"
        )
        frameworks = pd.concat([frameworks.astype(str), prediction["framework"].astype(str)])
    style = framework_style(frameworks, vocab, order, colors)
    drawn = [f for f in style.order if _has_values(rate_df, f, "mean")]
    omitted = [f for f in style.order if f not in drawn]
    ylabel = ylabel or f"{(vocab or Vocabulary()).label(construct)} per session"
    if not drawn:
        return plot_placeholder(ylabel, "Not shown: no session has enough data.", width)
    height = height or (2.6 if prediction is None else 3.0)
    dodge_step = min(0.12, 0.6 / max(len(drawn), 1))
    with plt.style.context(STYLE):
        fig = _new_figure(width, height)
        ax = fig.add_subplot()
        handles = {}
        for k, framework in enumerate(drawn):
            color, marker = style.color(framework), style.marker(framework)
            rows = _rows_of(rate_df, framework)
            x, mean = _values(rows, "session"), _values(rows, "mean")
            low, high = _values(rows, "ci_low"), _values(rows, "ci_high")
            label = style.label(framework)
            if prediction is None:
                ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)
                (handles[framework],) = ax.plot(x, mean, marker=marker, color=color,
                                                label=label)  # fmt: skip
                continue
            dodge = (k - (len(drawn) - 1) / 2) * dodge_step
            error = np.vstack([mean - low, high - mean])
            handles[framework] = ax.errorbar(x + dodge, mean, yerr=error, fmt=marker,
                                             color=color, elinewidth=0.8, label=label)  # fmt: skip
            model = _rows_of(prediction, framework)
            if not len(model):
                continue
            px = _values(model, "session")
            ax.fill_between(px, _values(model, "ci_low"), _values(model, "ci_high"),
                            color=color, alpha=0.12, linewidth=0)  # fmt: skip
            ax.plot(px, _values(model, "estimate"), color=color, linestyle="--",
                    linewidth=1.0)  # fmt: skip
        ax.set_xlabel("Session")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _framework_legend(fig, style, handles, omitted, "too few sessions")
        if prediction is not None:
            keys = [
                _style_key("Observed (95% CI)", marker="o", linestyle="none"),
                _style_key("Model prediction (95% CI)", linestyle="--", linewidth=1.0),
            ]
            fit_legend(fig, keys, [k.get_label() for k in keys], loc="outside lower center")
    return fig


def plot_dropout_by_repair(
    pred_df: pd.DataFrame,
    width: float = SINGLE_COLUMN,
    height: float = 2.6,
    vocab: Vocabulary | None = None,
    order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Predicted probability of dropout against repair rate (or the model's own predictor):
    one line and 95% band per framework.

    Parameters
    ----------
    pred_df : pandas.DataFrame
        Predictions of the retention model (its ``predictions.csv``): ``framework``, the
        predictor's grid (``repair_rate``, the proportion of ruptures repaired, 0-1, when
        the model has it; otherwise the table's one other column, labelled from the
        vocabulary), ``estimate``, ``ci_low``, ``ci_high`` (probabilities), also as read
        back from CSV.
    width, height : float
        Size in inches (taller when the legend needs more than one row).
    vocab : Vocabulary, optional
        Frameworks' order, colours and labels.
    order, colors : optional
        Without ``vocab``: framework order and colours (see :func:`framework_style`).

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
    >>> pred = pd.DataFrame({"framework": "systemic", "repair_rate": [0.0, 0.5, 1.0],
    ...                      "estimate": [0.30, 0.20, 0.12], "ci_low": [0.20, 0.15, 0.06],
    ...                      "ci_high": [0.42, 0.26, 0.22]})
    >>> fig = plot_dropout_by_repair(pred)
    >>> fig.axes[0].get_xlabel()
    'Repair rate (% of ruptures repaired)'
    """
    probabilities = ["estimate", "ci_low", "ci_high"]
    require_columns(pred_df, ["framework", *probabilities], "dropout prediction")
    others = [c for c in pred_df.columns if c not in ("framework", *probabilities)]
    predictor = "repair_rate" if "repair_rate" in pred_df else next(iter(others), None)
    if predictor is None:
        return plot_placeholder(
            "Dropout by repair rate", "Not shown: the model's predictions have no predictor.", width
        )
    for column in [*probabilities, *(["repair_rate"] if predictor == "repair_rate" else [])]:
        _check_proportions(pred_df, column)
    style = framework_style(pred_df["framework"], vocab, order, colors)
    drawn = [f for f in style.order if _has_values(pred_df, f, "estimate")]
    omitted = [f for f in style.order if f not in drawn]
    if not drawn:
        return plot_placeholder("Dropout by repair rate", "Not shown: no predictions.", width)
    with plt.style.context(STYLE):
        fig = _new_figure(width, height)
        ax = fig.add_subplot()
        handles = {}
        for framework in drawn:
            rows = _rows_of(pred_df, framework, by=predictor)
            x, color = _values(rows, predictor), style.color(framework)
            ax.fill_between(x, _values(rows, "ci_low"), _values(rows, "ci_high"),
                            color=color, alpha=0.15, linewidth=0)  # fmt: skip
            (handles[framework],) = ax.plot(x, _values(rows, "estimate"), color=color,
                                            label=style.label(framework))  # fmt: skip
        if predictor == "repair_rate":
            ax.set_xlabel("Repair rate (% of ruptures repaired)")
            ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0, symbol=""))
        else:
            ax.set_xlabel(vocab.label(predictor) if vocab is not None else humanise(predictor))
        ax.set_ylabel("Predicted probability of dropout (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0, symbol=""))
        ax.set_ylim(bottom=0)
        _framework_legend(fig, style, handles, omitted, "no predictions")
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


# --------------------------------------------------------------------------- profile


def _profile_parts(profile_df: pd.DataFrame, vocab: Vocabulary | None) -> tuple[str, list]:
    """The column naming the parts (``construct`` or ``behaviour``) and the parts in order
    (the vocabulary's order of the composite's parts, then the table's)."""
    column = "construct" if "construct" in profile_df else "behaviour"
    present = list(dict.fromkeys(profile_df[column].astype(str)))
    known = [p for p in (vocab.profile_parts() if vocab else []) if p in present]
    return column, known + [p for p in present if p not in known]


def _part_labels(profile_df: pd.DataFrame, column: str, parts, vocab) -> list[str]:
    """Printed names of the parts: the table's ``label`` column, else the vocabulary's."""
    given = {}
    if "label" in profile_df:
        pairs = profile_df[[column, "label"]].dropna().astype(str)
        given = dict(zip(pairs[column], pairs["label"], strict=True))
    vocab = vocab or Vocabulary()
    return [given.get(p) or vocab.label(p) for p in parts]


def _profile_groups(table: pd.DataFrame, vocab: Vocabulary | None) -> tuple[list, list]:
    """Forms (in the vocabulary's order, then the table's) and ``(form, [types])`` groups
    of a profile table with ``kind`` and ``form`` columns; types of no form last."""
    kinds = table["kind"].astype(str)
    forms_here = list(dict.fromkeys(table.loc[kinds == "form", "construct"].astype(str)))
    known = [f for f in (vocab.profile_forms() if vocab else []) if f in forms_here]
    forms = known + [f for f in forms_here if f not in known]
    types = table[kinds == "type"]
    constructs, forms_of = types["construct"].astype(str), types["form"].fillna("").astype(str)
    form_of = dict(zip(constructs, forms_of, strict=True))
    _, ordered = _profile_parts(types, vocab)
    groups = [(f, [t for t in ordered if form_of.get(t) == f]) for f in forms]
    groups += [("", [t for t in ordered if form_of.get(t, "") not in forms])]
    return forms, [(f, members) for f, members in groups if members]


def _profile_panel(ax, table, positions, style, drawn, column) -> dict:
    """Points and 95% CIs of each framework drawn, side by side at each part's position."""
    step = min(0.22, 0.8 / max(len(drawn), 1))
    handles = {}
    for k, framework in enumerate(drawn):
        rows = table[table["framework"].astype(str) == framework]
        rows = rows[rows["construct"].astype(str).isin(positions)]
        x = np.array(rows["construct"].astype(str).map(positions), dtype=float)
        x += (k - (len(drawn) - 1) / 2) * step
        estimate = _values(rows, column)
        error = np.vstack(
            [
                estimate - _values(rows, f"{column}_ci_low"),
                _values(rows, f"{column}_ci_high") - estimate,
            ]
        )
        ok = np.isfinite(estimate)
        handles[framework] = ax.errorbar(
            x[ok],
            estimate[ok],
            yerr=np.nan_to_num(error[:, ok]),
            fmt=style.marker(framework),
            color=style.color(framework),
            elinewidth=0.9,
            label=style.label(framework),
        )
    ax.set_ylim(bottom=0)
    return handles


def _plot_profile_by_form(table, per, column, vocab, style, drawn, omitted, width, height):
    """Two panels: the forms, then the types grouped under their forms."""
    forms, groups = _profile_groups(table, vocab)
    composite = vocab.label(vocab.profile) if vocab is not None and vocab.profile else None
    words = composite or "Profile"
    ylabel = "Per attended session" if per == "session" else "Per 60 minutes"
    positions, centres, x = {}, [], 0.0
    for form, members in groups:
        first = x
        for member in members:
            positions[member] = x
            x += 1.0
        centres.append((form, (first + x - 1.0) / 2, first - 0.5, x - 0.5))
        x += 0.6
    with plt.style.context(STYLE):
        fig = _new_figure(width, height)
        top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1.0, 1.25]})
        handles = _profile_panel(
            top, table, {f: i for i, f in enumerate(forms)}, style, drawn, column
        )
        form_labels = _part_labels(table, "construct", forms, vocab)
        top.set_xticks(range(len(forms)), _wrap_to(form_labels, 0.8 * (width - 0.6) / len(forms)))
        top.set_xlim(-0.5, len(forms) - 0.5)
        top.set_ylabel(ylabel)
        top.set_title(f"{words}: forms", loc="left", fontsize=8, fontweight="bold")
        _profile_panel(bottom, table, positions, style, drawn, column)
        types = list(positions)
        bottom.set_xticks(
            [positions[t] for t in types],
            _part_labels(table, "construct", types, vocab),
            rotation=45,
            ha="right",
            rotation_mode="anchor",
        )
        bottom.set_xlim(-0.6, x - 1.0)
        per_unit = (width - 0.8) / (x - 0.4)  # inches per position, roughly
        bottom.set_ylabel(ylabel)
        bottom.set_title(
            f"{words}: types within each form", loc="left", fontsize=8, fontweight="bold"
        )
        names = dict(zip(forms, form_labels, strict=True))
        for k, (form, centre, low, high) in enumerate(centres):
            if k:
                bottom.axvline(low - 0.3, color="#DDDDDD", linewidth=0.6, zorder=0)
            if form:
                bottom.text(
                    centre,
                    0.98,
                    _wrap_to([names.get(form, form)], 0.95 * per_unit * (high - low))[0],
                    transform=bottom.get_xaxis_transform(),
                    ha="center",
                    va="top",
                    fontsize=7,
                    color=NOTE_INK,
                )
        bottom.set_ylim(top=bottom.get_ylim()[1] * 1.25)
        _framework_legend(fig, style, handles, omitted, "too few clients")
    return fig


def plot_resistance_profile(
    profile_df: pd.DataFrame,
    per: str = "session",
    width: float | None = None,
    height: float | None = None,
    vocab: Vocabulary | None = None,
    order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    xlabel: str | None = None,
) -> Figure:
    """The forms and types of a composite (resistance, say) by framework: rate per session
    or per 60 minutes, points with 95% confidence intervals.

    When the table has form rows (``kind`` "form", as
    :func:`resistance_outcomes.describe.construct_profile` writes them for a composite made
    of forms), two panels: the forms, then every type grouped under its form (the form's
    label above its group). Otherwise one panel with one position per part. Whatever the
    parts are called, each is labelled by its construct label (the table's ``label``
    column, else the vocabulary's); the frameworks sit side by side within a part. Only
    what the table holds is drawn: a form or type the study did not code has no rows and
    no position. Suppressed rows (blank rates) are not drawn; a framework without any rate
    shown is left out and named in the legend as not shown, and a table without any rate
    gives a :func:`plot_placeholder`.

    Parameters
    ----------
    profile_df : pandas.DataFrame
        Output of :func:`resistance_outcomes.describe.construct_profile`, also as read
        back from CSV: ``framework``, the part (``construct`` or ``behaviour``), optionally
        ``kind``, ``form`` and ``label``, and ``per_session``/``per_hour`` with
        ``_ci_low``/``_ci_high``.
    per : {"session", "hour"}, default "session"
        Plot rates per attended session or per 60 minutes.
    width, height : float, optional
        Size in inches (taller when the legend needs more than one row); default one
        column by 2.6 in, or two columns by 5.2 in with forms.
    vocab : Vocabulary, optional
        Frameworks' order, colours and labels; the forms' and parts' labels and order; the
        composite's label (the x axis, the panels' titles).
    order, colors : optional
        Without ``vocab``: framework order and colours (see :func:`framework_style`).
    xlabel : str, optional
        x-axis label of the one-panel figure; default the profiled composite's label, else
        "Behaviour".

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> profile = pd.DataFrame({"framework": "systemic", "construct": ["talk_a", "talk_b"],
    ...                         "label": ["Sustain talk", "Discord"],
    ...                         "per_session": [0.4, 0.2], "per_session_ci_low": [0.3, 0.1],
    ...                         "per_session_ci_high": [0.5, 0.3]})
    >>> fig = plot_resistance_profile(profile)
    >>> fig.axes[0].get_ylabel(), [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ('Per attended session', ['Sustain talk', 'Discord'])
    >>> forms = pd.concat([profile.assign(kind="type", form="talk"),
    ...                    profile.iloc[:1].assign(kind="form", form="talk", construct="talk",
    ...                                            label="Talk", per_session=0.6,
    ...                                            per_session_ci_high=0.7)])
    >>> fig = plot_resistance_profile(forms)
    >>> [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes]
    [['Talk'], ['Sustain talk', 'Discord']]
    """
    if per not in ("session", "hour"):
        raise ValueError(f"per must be 'session' or 'hour'; got {per!r}.")
    column = f"per_{per}"
    if "construct" not in profile_df and "behaviour" not in profile_df:
        require_columns(profile_df, ["framework", "construct"], "resistance profile")
    require_columns(
        profile_df,
        ["framework", column, f"{column}_ci_low", f"{column}_ci_high"],
        "resistance profile",
    )
    part_column, parts = _profile_parts(profile_df, vocab)
    style = framework_style(profile_df["framework"], vocab, order, colors)
    drawn = [f for f in style.order if _has_values(profile_df, f, column)]
    omitted = [f for f in style.order if f not in drawn]
    composite = vocab.label(vocab.profile) if vocab is not None and vocab.profile else None
    xlabel = xlabel or composite or "Behaviour"
    if not drawn:
        return plot_placeholder(
            xlabel, "Not shown: every cell is below the minimum.", width or SINGLE_COLUMN
        )
    by_form = "kind" in profile_df and profile_df["kind"].astype(str).eq("form").any()
    if by_form:
        table = profile_df.rename(columns={part_column: "construct"})
        if "form" not in table:
            table["form"] = ""
        return _plot_profile_by_form(
            table, per, column, vocab, style, drawn, omitted, width or DOUBLE_COLUMN, height or 5.2
        )
    width, height = width or SINGLE_COLUMN, height or 2.6
    table = profile_df.rename(columns={part_column: "construct"})
    with plt.style.context(STYLE):
        fig = _new_figure(width, height)
        ax = fig.add_subplot()
        handles = _profile_panel(
            ax, table, {p: i for i, p in enumerate(parts)}, style, drawn, column
        )
        labels = _part_labels(profile_df, part_column, parts, vocab)
        ax.set_xticks(range(len(parts)), _wrap_to(labels, 0.8 * (width - 0.6) / len(parts)))
        ax.set_xlim(-0.5, len(parts) - 0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Per attended session" if per == "session" else "Per 60 minutes")
        _framework_legend(fig, style, handles, omitted, "too few clients")
    return fig


def construct_labels(constructs: Sequence[str], labels=None) -> list[str]:
    """Printed names of constructs: from ``labels`` (a mapping, a function such as
    :meth:`Vocabulary.label`, or a Vocabulary), else the name in words.

    Examples
    --------
    >>> construct_labels(["sustain_talk", "x"], {"x": "Homework"})
    ['Sustain talk', 'Homework']
    """
    if isinstance(labels, Vocabulary):
        labels = labels.label
    if labels is None:
        return [humanise(c) for c in constructs]
    if isinstance(labels, Mapping):
        return [str(labels.get(c) or humanise(c)) for c in constructs]
    return [str(labels(c)) for c in constructs]


# --------------------------------------------------------------------------- agreement

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
    table: pd.DataFrame,
    width: float = SINGLE_COLUMN,
    height: float | None = None,
    labels: Vocabulary | Mapping[str, str] | Callable[[str], str] | None = None,
) -> Figure:
    """Inter-rater agreement per construct: point and 95% CI for each statistic, over the
    Koo & Li (2016) interpretation bands.

    One row per construct, top to bottom in the order of the table; ICC(A,1) (filled
    circle) and ICC(A,k) (open circle) of a construct side by side, kappas as a square
    (Cohen's) or diamond (Fleiss'). A construct without an estimate is marked "not
    estimable". The x axis starts at the band boundary below the lowest value shown.
    Constructs are named by their labels: ``labels`` (the study's vocabulary, a mapping or
    a function), else the table's ``label`` column when it holds names rather than Koo &
    Li bands, else the name in words.

    Parameters
    ----------
    table : pandas.DataFrame
        ``ReliabilityResult.table`` (``construct``, ``statistic``, ``estimate``,
        ``ci_low``, ``ci_high``), also as read back from CSV.
    width : float
        Width in inches.
    height : float, optional
        Height in inches; default grows with the number of constructs.
    labels : Vocabulary, mapping or callable, optional
        Printed names of the constructs (see :func:`construct_labels`).

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
        fig = _new_figure(width, height)
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
        names = _wrap_to(construct_labels(constructs, labels), 0.4 * width)
        ax.set_yticks(range(len(constructs)), names)
        ax.set_ylim(len(constructs) - 0.5, -0.5)
        ax.set_xlim(lower, 1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(_without_leading_zero))
        ax.set_xlabel("Agreement (ICC or kappa), 95% CI")
        ax.tick_params(axis="y", length=0)
        handles, texts = ax.get_legend_handles_labels()
        fit_legend(fig, handles, texts)
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


def _within_rows(
    effects: pd.DataFrame, row_of: np.ndarray, order: Sequence[str]
) -> tuple[np.ndarray, int]:
    """Place of each effect within its row, centred on it (frameworks top to bottom in
    reporting order, effects without one last), and the most effects sharing a row."""
    frameworks = effects["framework"].astype("string").fillna("")
    order = [*order, ""]
    rank = frameworks.map({f: i for i, f in enumerate(order)}).astype(float)
    rows = pd.Series(row_of, index=effects.index)
    k = rank.groupby(rows).rank(method="first") - 1
    n = rank.groupby(rows).transform("size")
    return (k - (n - 1) / 2).to_numpy(), int(n.max())


def _draw_forest_panel(ax, effects, values, style: FrameworkStyle, wrap: int) -> dict:
    """Draw one panel; the errorbar container of each framework drawn."""
    rows, row_of = _forest_layout(effects)
    place, most = _within_rows(effects, row_of, style.order)
    y = row_of + place * min(0.22, 0.7 / most)
    frameworks = effects["framework"].astype("string").fillna("")
    estimate = values["estimate"].to_numpy(float)
    error = np.vstack([estimate - values["ci_low"].to_numpy(float),
                       values["ci_high"].to_numpy(float) - estimate])  # fmt: skip
    handles = {}
    for framework in [f for f in [*style.order, ""] if (frameworks == f).any()]:
        chosen = (frameworks == framework).to_numpy()
        ok = chosen & np.isfinite(estimate)
        color = style.color(framework) if framework else NEUTRAL
        container = ax.errorbar(
            estimate[ok],
            y[ok],
            xerr=np.nan_to_num(error[:, ok]),
            fmt=style.marker(framework) if framework else "D",
            color=color,
            elinewidth=0.9,
            label=style.label(framework) if framework else "_nolegend_",
        )
        if framework:  # also when "not estimable" only: the note is in its colour
            handles[framework] = container
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
    ax.set_yticks(range(len(rows)), [_fill(text, wrap) for text, _ in rows])
    for tick, (_, heading) in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if heading else "normal")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    return handles


def _forest_panel_height(effects: pd.DataFrame, wrap: int, order: Sequence[str]) -> float:
    """Inches a panel needs: rows tall enough for the frameworks side by side and for
    wrapped labels, plus the x axis."""
    rows, row_of = _forest_layout(effects)
    lines = max(len(_fill(text, wrap).splitlines()) for text, _ in rows)
    row = max(0.1 + 0.07 * _within_rows(effects, row_of, order)[1], 0.06 + 0.13 * lines)
    return row * len(rows) + 0.55


def plot_forest(
    effects_df: pd.DataFrame,
    width: float = SINGLE_COLUMN,
    height: float | None = None,
    vocab: Vocabulary | None = None,
    order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
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
    A table without effects gives a :func:`plot_placeholder`.

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
    vocab : Vocabulary, optional
        Frameworks' order, colours and labels.
    order, colors : optional
        Without ``vocab``: framework order and colours (see :func:`framework_style`).

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
    ...                         "framework": ["humanistic", "systemic"],
    ...                         "estimate": [0.8, 0.6], "ci_low": [0.6, 0.45],
    ...                         "ci_high": [1.1, 0.8], "ratio_kind": "odds ratio"})
    >>> fig = plot_forest(effects)
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_xscale()
    ('Odds ratio (log scale)', 'log')
    """
    require_columns(effects_df, ["label", "framework", "estimate", "ci_low", "ci_high"],
                    "effects")  # fmt: skip
    effects = effects_df.reset_index(drop=True)
    if effects.empty:
        return plot_placeholder("Framework-specific effects", "Not shown: no effects.", width)
    values = _check_effects(effects)
    kinds = effects["ratio_kind"] if "ratio_kind" in effects else pd.Series("", effects.index)
    kinds = kinds.astype("string").fillna("")
    panels = list(dict.fromkeys(kinds))
    style = framework_style(effects["framework"], vocab, order, colors)
    wrap = int(width * 72 * 0.4 / 4.5)  # labels take at most ~40% of the width (8 pt text)
    sizes = [_forest_panel_height(effects[kinds == kind], wrap, style.order) for kind in panels]
    with plt.style.context(STYLE):
        fig = _new_figure(width, height or 0.35 + sum(sizes))
        axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=sizes)[:, 0]
        handles = {}
        for ax, kind in zip(axes, panels, strict=True):
            chosen = (kinds == kind).to_numpy()
            part = effects[chosen].reset_index(drop=True)
            drawn = _draw_forest_panel(ax, part, values[chosen].reset_index(drop=True),
                                       style, wrap)  # fmt: skip
            for framework, handle in drawn.items():
                handles.setdefault(framework, handle)
            ax.set_xlabel(_ratio_axis_label(kind))
        _framework_legend(fig, style, handles)
    return fig


#: Printed names of the multiplicity adjustments (contrasts.ADJUSTMENTS).
_ADJUSTMENT_WORDS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def plot_response_odds(
    contrasts_df: pd.DataFrame,
    vocab: Vocabulary | None = None,
    alpha: float = 0.05,
    width: float = SINGLE_COLUMN,
    order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Forest plot of the per-framework ratios of each response: which responses are
    followed by the outcome (repair), in which framework.

    One row per response (the slope variables of a model on the ``rupture_segments`` level,
    in the order of the table, labelled from the vocabulary), one point per framework in
    its colour and marker, the ratio and its 95% CI on a log axis (:func:`plot_forest`). A
    filled marker is an adjusted p below ``alpha``, an open marker one that is not; the
    axis label says which adjustment. A ratio the model could not identify reads "not
    estimable".

    Parameters
    ----------
    contrasts_df : pandas.DataFrame
        The model's ``contrasts.csv``: its ``simple_slope`` rows (``variable``, ``level``,
        ``ratio``, ``ratio_ci_low``, ``ratio_ci_high``, ``p_adjusted``, ``adjustment``,
        ``ratio_kind``) are drawn.
    vocab : Vocabulary, optional
        Labels of the responses; frameworks' order, colours and labels.
    alpha : float
        Level of the adjusted p values marked as significant.
    width : float
        Width in inches.
    order, colors : optional
        Without ``vocab``: framework order and colours (see :func:`framework_style`).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> slopes = pd.DataFrame({"kind": "simple_slope", "variable": ["calm", "calm"],
    ...     "level": ["humanistic", "systemic"], "ratio": [2.0, 1.1],
    ...     "ratio_ci_low": [1.4, 0.8], "ratio_ci_high": [2.9, 1.5],
    ...     "p_adjusted": [0.001, 0.6], "adjustment": "holm", "ratio_kind": "odds ratio"})
    >>> fig = plot_response_odds(slopes)
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_yticklabels()[0].get_text()
    ('log', 'Calm')
    """
    require_columns(contrasts_df, ["kind", "variable", "level", "ratio", "ratio_ci_low",
                                   "ratio_ci_high", "p_adjusted"], "contrasts")  # fmt: skip
    slopes = contrasts_df[contrasts_df["kind"] == "simple_slope"].reset_index(drop=True)
    if slopes.empty:
        return plot_placeholder("Responses and repair", "Not shown: no per-framework ratios.",
                                width)  # fmt: skip
    label = vocab.label if vocab is not None else humanise
    effects = pd.DataFrame(
        {
            "label": [label(str(v)) for v in slopes["variable"]],
            "framework": slopes["level"].astype(str),
            "estimate": slopes["ratio"],
            "ci_low": slopes["ratio_ci_low"],
            "ci_high": slopes["ratio_ci_high"],
        }
    )
    fig = plot_forest(effects, width=width, vocab=vocab, order=order, colors=colors)
    ax = fig.axes[0]
    style = framework_style(effects["framework"], vocab, order, colors)
    rows, row_of = _forest_layout(effects)
    place, most = _within_rows(effects, row_of, style.order)
    y = row_of + place * min(0.22, 0.7 / most)
    estimate = pd.to_numeric(effects["estimate"], errors="coerce").to_numpy(float)
    p = pd.to_numeric(slopes["p_adjusted"], errors="coerce").to_numpy(float)
    hollow = np.isfinite(estimate) & ~(p < alpha)
    with plt.style.context(STYLE):
        size = plt.rcParams["lines.markersize"]
        for framework in style.order:
            chosen = hollow & (effects["framework"] == framework).to_numpy()
            if chosen.any():
                ax.scatter(estimate[chosen], y[chosen], marker=style.marker(framework),
                           s=(0.75 * size) ** 2, facecolors="white", linewidths=0,
                           zorder=3)  # fmt: skip
    adjustment = slopes["adjustment"].dropna().astype(str) if "adjustment" in slopes else []
    named = _ADJUSTMENT_WORDS.get(adjustment.iloc[0], "") if len(adjustment) else ""
    kind = slopes["ratio_kind"].dropna().astype(str) if "ratio_kind" in slopes else []
    note = (
        f"filled: {named + '-' if named else ''}adjusted p < {format_bounded(alpha)}; "
        "open: not significant"
    )
    axis = _ratio_axis_label(kind.iloc[0] if len(kind) else "")
    ax.set_xlabel(f"{axis}\n{_fill(note, int(width * 72 / 6.5))}")
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
#: Most panels side by side in the retention figure; more go on further rows.
RETENTION_PANELS_PER_ROW = 4


def _retention_steps(rows: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Session and percentages still in therapy, from 100% before session 1 up to the
    last session before the first suppressed one."""
    rows = rows.sort_values("session")
    hidden = np.flatnonzero(np.isnan(_values(rows, "survival")))
    rows = rows.iloc[: hidden[0]] if hidden.size else rows
    x = np.concatenate([[0.0], _values(rows, "session")])
    return (x, *(100 * np.concatenate([[1.0], _values(rows, c)])
                 for c in ("survival", "ci_low", "ci_high")))  # fmt: skip


def _has_curve(rows: pd.DataFrame) -> bool:
    """Whether a group has at least one session shown before its first suppressed one."""
    survival = _values(rows.sort_values("session"), "survival")
    return survival.size > 0 and not np.isnan(survival[0])


def retention_frameworks(curves: pd.DataFrame, order: Sequence[str] | None = None):
    """Frameworks with a curve to draw, and those without (every session suppressed).

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`resistance_outcomes.describe.retention_curves` by ``framework`` (and
        optionally ``repair_tertile``).
    order : sequence of str, optional
        Reporting order (default: :func:`resistance_outcomes.describe.framework_order`).

    Returns
    -------
    (list of str, list of str)
        Frameworks drawn and frameworks left out, in reporting order.

    Examples
    --------
    >>> import pandas as pd
    >>> curves = pd.DataFrame({"framework": ["a", "a", "other"], "session": [1, 2, 1],
    ...                        "survival": [0.9, 0.8, None]})
    >>> retention_frameworks(curves)
    (['a'], ['other'])
    """
    order = framework_order(curves["framework"], order)
    groups = "repair_tertile" in curves
    drawn = []
    for framework in order:
        rows = _rows_of(curves, framework)
        parts = [g for _, g in rows.groupby("repair_tertile", observed=True)] if groups else [rows]
        if any(_has_curve(part) for part in parts):
            drawn.append(framework)
    return drawn, [f for f in order if f not in drawn]


def _draw_retention(ax, rows: pd.DataFrame, color: str, label: str, alpha: float, **line):
    x, survival, low, high = _retention_steps(rows)
    ax.fill_between(x, low, high, step="post", color=color, alpha=alpha, linewidth=0)
    return ax.step(x, survival, where="post", color=color, label=label, **line)[0]


def _title_ink(color: str) -> str:
    """The colour itself for a title, or neutral ink where it is too light to read
    (Okabe-Ito yellow: relative luminance above 0.6)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return NEUTRAL if luminance > 0.6 else color


def _retention_axes(ax, last_session: float, bottom: float) -> None:
    ax.set_xlim(0, last_session + 0.5)
    ax.set_ylim(bottom, 101)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.set_xlabel("Session")


def plot_retention_curves(
    curves_df: pd.DataFrame,
    tertile_curves: pd.DataFrame | None = None,
    width: float | None = None,
    height: float | None = None,
    vocab: Vocabulary | None = None,
    order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Retention curves: percentage of clients still in therapy after each session, as
    steps with 95% bands, by framework and, optionally, by repair tertile.

    The first panel has one curve per framework. With ``tertile_curves``, one further
    panel per framework shows its repair groups in the framework's colour, told apart by
    line style (dotted low, dashed middle, solid high repair; dash-dot no ruptures); panels
    go four to a row. Every curve starts at 100% before session 1; suppressed sessions end
    it. A framework without any session shown (too few clients at risk from the start, a
    small ``other`` group say) gets no curve and no panel; the legend names it as not
    shown (:func:`retention_frameworks` gives the same lists). Panels share the y axis,
    which starts at the 10% step below the lowest interval. With nothing to draw the figure
    is a :func:`plot_placeholder`.

    Parameters
    ----------
    curves_df : pandas.DataFrame
        :func:`resistance_outcomes.describe.retention_curves` by ``framework``.
    tertile_curves : pandas.DataFrame, optional
        The same by ``["framework", "repair_tertile"]``.
    width : float, optional
        Width in inches; default 3.5 (one panel) or 7.2 (with repair panels).
    height : float, optional
        Height in inches; default 2.6 per row of panels (less for further rows), more when
        the legend needs more than one row.
    vocab : Vocabulary, optional
        Frameworks' order, colours and labels.
    order, colors : optional
        Without ``vocab``: framework order and colours (see :func:`framework_style`).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> curves = pd.DataFrame({"framework": "systemic", "session": [1, 2, 3],
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
    style = framework_style(curves_df["framework"], vocab, order, colors)
    drawn, omitted = retention_frameworks(curves_df, style.order)
    panels = []
    if tertile_curves is not None:
        panels = retention_frameworks(tertile_curves, style.order)[0]
    if not drawn:
        return plot_placeholder(
            "Retention by session", "Not shown: too few clients at risk at every session.",
            width or SINGLE_COLUMN,
        )  # fmt: skip
    lowest = min(np.nanmin(_values(t, "ci_low"), initial=1.0) for t in tables)
    bottom = 10 * np.floor(10 * lowest - 1e-9)
    last = max(np.nanmax(_values(t, "session")) for t in tables)
    n_panels = 1 + len(panels)
    nrows = -(-n_panels // RETENTION_PANELS_PER_ROW)
    ncols = -(-n_panels // nrows)  # rows as even as can be: 5 panels as 3 + 2
    width = width or (SINGLE_COLUMN if n_panels == 1 else DOUBLE_COLUMN)
    height = height or 2.6 + 2.0 * (nrows - 1)
    with plt.style.context(STYLE):
        fig = _new_figure(width, height)
        grid = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
        axes = list(grid.flat[:n_panels])
        for ax in grid.flat[n_panels:]:
            ax.remove()
        handles = {}
        for framework in drawn:
            handles[framework] = _draw_retention(axes[0], _rows_of(curves_df, framework),
                                                 style.color(framework),
                                                 style.label(framework), alpha=0.13)  # fmt: skip
        titles = _wrap_to([style.label(f) for f in panels], width / ncols - 0.4, 9)
        keys = {}
        for ax, framework, title in zip(axes[1:], panels, titles, strict=True):
            rows = _rows_of(tertile_curves, framework)
            groups = rows["repair_tertile"]
            for group in _present_groups(groups):
                part = rows[groups.astype(str) == group]
                if not _has_curve(part):
                    continue
                linestyle = REPAIR_LINESTYLES.get(group, "-")
                _draw_retention(ax, part, style.color(framework), group, alpha=0.08,
                                linestyle=linestyle)  # fmt: skip
                keys.setdefault(group, _style_key(group, linestyle=linestyle))
            ax.set_title(title, color=_title_ink(style.color(framework)))
        for k, ax in enumerate(axes):
            _retention_axes(ax, last, bottom)
            if k % ncols == 0:
                ax.set_ylabel("Still in therapy (%)")
        if panels:
            axes[0].set_title("By framework")
        _framework_legend(fig, style, handles, omitted, "too few clients at risk")
        entries = list(keys.items())
        no_panel = [f for f in drawn if f not in panels] if tertile_curves is not None else []
        if no_panel:
            handle, text = _not_shown_entry(style, no_panel, "too few clients at risk")
            entries.append((text.replace("not shown", "no repair panel"), handle))
        if entries:
            key = fit_legend(fig, [h for _, h in entries], [t for t, _ in entries],
                             loc="outside lower center")  # fmt: skip
            if no_panel:
                key.get_texts()[-1].set_color(NOTE_INK)
                key.get_texts()[-1].set_fontstyle("italic")
    return fig


def _present_groups(groups: pd.Series) -> list[str]:
    """Repair groups present, in the order of the categories (else of appearance)."""
    present = set(groups.dropna().astype(str))
    if isinstance(groups.dtype, pd.CategoricalDtype):
        return [str(c) for c in groups.cat.categories if str(c) in present]
    known = [g for g in REPAIR_LINESTYLES if g in present]
    return known + sorted(present - set(known))


# --------------------------------------------------------------------------- diagnostics


def diagnostic_residuals(result) -> pd.DataFrame:
    """Fitted values and Pearson residuals of a fitted model, one row per observation.

    :func:`resistance_outcomes.predictions.residual_table` (which the model step writes as
    ``residuals.csv``) without its row number and factor columns.

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
    return residual_table(result)[["fitted", "residual"]]


def _random_effect_terms(random_effects: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """(title, conditional modes) of each random-effect term of a ``random_effects.csv``
    table (:func:`resistance_outcomes.predictions.random_effects_table`), in its order."""
    terms = []
    if random_effects is None or random_effects.empty:
        return terms
    for (group, name), part in random_effects.groupby(["group", "term"], sort=False):
        what = "intercept" if name == "(Intercept)" else name
        terms.append((f"{group_label(group)}\n{what}", part["mode"].to_numpy(dtype=float)))
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


# simulated (DHARMa) residuals: quantile plot with the tests, residuals against predicted

_SIMULATED_QUANTILES = (0.25, 0.5, 0.75)
_FLAG_INK = "#D55E00"


def _test_lines(tests) -> list[tuple[str, bool]]:
    """(text, flagged) of the uniformity, dispersion and outlier tests of
    ``diagnostics.json`` (or :func:`~resistance_outcomes.models.residuals.residual_tests`)."""
    from resistance_outcomes.tables import format_p

    if tests is None:
        return []
    rows = tests.to_dict(orient="records") if isinstance(tests, pd.DataFrame) else list(tests)
    by_name = {row["test"]: row for row in rows}
    lines = []
    for name, label, statistic in (
        ("uniformity", "KS test", "D = {:.3f}"),
        ("dispersion", "Dispersion", "ratio {:.2f}"),
        ("outliers", "Outliers", "{:.0f}"),
    ):
        row = by_name.get(name)
        if row is None or row.get("p_value") is None or not np.isfinite(row["p_value"]):
            continue
        p = format_p(row["p_value"])
        relation = "" if p[0] in "<>" else "= "
        text = f"{label}: {statistic.format(row['statistic'])}, p {relation}{p}"
        lines.append((text, bool(row["p_value"] < 0.05)))
    return lines


#: Most points drawn in a simulated-residual panel (evenly spaced rows; lines use all).
_MAX_POINTS = 3000


def _thinned(n: int) -> np.ndarray:
    """Positions of at most ``_MAX_POINTS`` rows, evenly spaced over ``n``."""
    return np.unique(np.linspace(0, n - 1, min(n, _MAX_POINTS)).round().astype(int))


def _draw_simulated_qq(ax, residual: np.ndarray, tests, simulation: str | None = None) -> None:
    """Sorted scaled residuals against uniform quantiles, the diagonal, the tests and, when
    given, how the simulations drew the random effects."""
    y = np.sort(residual)
    x = (np.arange(1, y.size + 1) - 0.5) / y.size
    ax.plot(x, y, linestyle="none", marker="o", markersize=1.5, color=NEUTRAL, alpha=0.5,
            rasterized=True)  # fmt: skip
    ax.axline((0, 0), slope=1, color=_FLAG_INK, linewidth=0.9)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Expected (uniform)", ylabel="Scaled residual")
    ax.set_title("Quantiles of simulated residuals")
    lines = _test_lines(tests)
    if simulation:
        lines.append((f"Random effects: {simulation}", False))
    for k, (text, flagged) in enumerate(lines):
        ink = _FLAG_INK if flagged else NEUTRAL
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1}
        ax.text(0.03, 0.97 - 0.085 * k, text, transform=ax.transAxes, ha="left", va="top",
                fontsize=6.5, color=ink, bbox=box)  # fmt: skip


def _rank_transform(values: np.ndarray) -> np.ndarray:
    """Ranks (ties averaged) scaled to (0, 1): ``(rank - 0.5) / n``."""
    return (scipy_stats.rankdata(values) - 0.5) / values.size


def _draw_residuals_vs_predicted(ax, fitted: np.ndarray, residual: np.ndarray, bins: int) -> None:
    """Scaled residuals against the rank of the predicted values (at most 3,000 points,
    evenly spaced over the rows), with the 0.25, 0.5 and 0.75 quantiles of all residuals
    within bins of equal size (dashed: where they should lie)."""
    x = _rank_transform(fitted)
    shown = _thinned(x.size)
    ax.plot(x[shown], residual[shown], linestyle="none", marker="o", markersize=1.5,
            color=NEUTRAL, alpha=0.3, rasterized=True)  # fmt: skip
    n_bins = max(1, min(bins, x.size // 20))
    bin_of = np.minimum((x * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"x": x, "r": residual, "bin": bin_of}).groupby("bin")
    centres = frame["x"].mean().to_numpy()
    for q in _SIMULATED_QUANTILES:
        ax.axhline(q, color="#888888", linewidth=0.7, linestyle="--", zorder=0)
        line = frame["r"].quantile(q).to_numpy()
        ax.plot(centres, line, color=_FLAG_INK, linewidth=1.0, marker="o", markersize=2)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Predicted value (rank-transformed)",
           ylabel="Scaled residual")  # fmt: skip
    ax.set_title(f"Residual quantiles in {n_bins} bins")


def _simulated_table(simulated) -> pd.DataFrame:
    table = getattr(simulated, "table", simulated)
    require_columns(table, ["fitted", "residual"], "simulated residuals")
    return table


def plot_model_diagnostics(
    result,
    width: float = DOUBLE_COLUMN,
    height: float | None = None,
    bins: int = 20,
    *,
    random_effects: pd.DataFrame | None = None,
    family: str | None = None,
    simulated=None,
    tests=None,
    simulation: str | None = None,
) -> Figure:
    """Diagnostics panel of a mixed model: residuals against fitted values, and a normal
    quantile plot of each random-effect term's conditional modes.

    With ``simulated`` residuals, for binomial, Poisson and negative-binomial models, the
    left panel is replaced by two: the quantiles of the simulated scaled residuals against
    uniform quantiles with the KS, dispersion and outlier tests printed in the panel (a
    test with p < .05 in orange), and the residuals against the rank-transformed
    predicted values with their 0.25, 0.5 and 0.75 quantiles in bins (orange lines; they
    should follow the dashed ones), as DHARMa's ``plotQQunif`` and ``plotResiduals``.
    Gaussian models keep their Pearson-residual panel.

    Left: Pearson residuals (:func:`diagnostic_residuals`) against fitted values, with the
    mean residual within ``bins`` bins of equal size (orange line; it should stay near 0,
    which reads more easily than the raw points for binary outcomes); the legend sits
    above the axes. Right: one small axes per random-effect term (grouping factor and
    coefficient in its title), its conditional modes against normal quantiles with a line
    through the quartiles, as R's ``qqnorm`` and ``qqline`` draw them.

    Parameters
    ----------
    result : MixedResult or pandas.DataFrame
        A fitted model, or the residuals a model step wrote (``residuals.csv``:
        ``fitted``, ``residual``; :func:`resistance_outcomes.predictions.residual_table`).
    width : float, default 7.2
        Width in inches.
    height : float, optional
        Height in inches; default 2.6, more when there are more than two terms.
    bins : int, default 20
        Number of bins of the binned means (fewer with fewer than 5 observations a bin).
    random_effects : pandas.DataFrame, optional
        With residuals: the model's ``random_effects.csv`` (``group``, ``term``, ``level``,
        ``mode``); none or empty (a population-averaged fit) draws the residuals only.
    family : str, optional
        With residuals: the model's family (axis labels come from the family object).
    simulated : SimulatedResiduals or pandas.DataFrame, optional
        Simulated scaled residuals (:meth:`MixedResult.simulated_residuals`, or the
        ``simulated_residuals.csv`` a model step wrote: ``fitted``, ``residual``).
    tests : pandas.DataFrame or list of dict, optional
        Their tests (``diagnostics.json``'s ``tests``); by default those of a
        ``SimulatedResiduals``.
    simulation : str, optional
        How the simulations drew the random effects (``diagnostics.json``'s
        ``random_effects``: "drawn anew in each simulation" or "conditional modes kept"),
        printed below the tests; by default a ``SimulatedResiduals``' own.

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
    ['', 'G\\nintercept']
    >>> df["n"] = rng.poisson(np.exp(0.5 + 0.3 * df.x))
    >>> counts = fit_mixed("n ~ x + (1 | g)", df, family="poisson")
    >>> fig = plot_model_diagnostics(counts, simulated=counts.simulated_residuals(50, seed=1))
    >>> [ax.get_title() for ax in fig.axes][:2]
    ['Quantiles of simulated residuals', 'Residual quantiles in 2 bins']
    """
    if isinstance(result, pd.DataFrame):
        residuals, family = result, get_family(family or "gaussian")
    else:
        residuals, family = residual_table(result), get_family(result.family)
        random_effects = random_effects_table(result)
    require_columns(residuals, ["fitted", "residual"], "residuals")
    fitted = residuals["fitted"].to_numpy(dtype=float)
    residual = residuals["residual"].to_numpy(dtype=float)
    terms = _random_effect_terms(random_effects)
    ncols = min(len(terms), 2)
    nrows = -(-len(terms) // 2)
    height = height if height is not None else max(2.6, 0.4 + 1.5 * nrows)
    if simulated is not None and family.glmm:
        if tests is None and hasattr(simulated, "tests"):
            tests = simulated.tests()
        if simulation is None and hasattr(simulated, "conditional"):
            simulation = simulation_words(simulated.conditional)
        return _plot_simulated_diagnostics(
            _simulated_table(simulated), tests, terms, family, width, height, simulation
        )
    with plt.style.context(STYLE):
        fig = _new_figure(width, height)
        left, right = fig.subfigures(1, 2, width_ratios=[1.15, 1]) if terms else (fig, None)
        ax = left.subplots()
        ax.plot(fitted, residual, linestyle="none", marker="o", markersize=2, alpha=0.35,
                color=NEUTRAL, rasterized=True, label="Observation")  # fmt: skip
        n_bins = max(1, min(bins, fitted.size // 5))
        means = _binned_means(fitted, residual, n_bins)
        ax.plot(means["fitted"], means["residual"], color="#D55E00", marker="o",
                markersize=2.5, linewidth=1.0, label=f"Mean of {n_bins} bins")  # fmt: skip
        ax.axhline(0, color="#888888", linewidth=0.7, linestyle="--", zorder=0)
        ax.set_xlabel(family.fitted_label)
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
                    axq.set_ylabel(f"Conditional mode\n({family.link_scale})")
            for axq in grid.flat[len(terms) :]:
                axq.remove()
    return fig


def _draw_random_effect_panels(sub, terms, family, per_row: int = 2) -> None:
    """Normal quantile plots of the random-effect terms, ``per_row`` to a row (a single
    term takes half the width)."""
    ncols = max(min(len(terms), per_row), 2)
    nrows = -(-len(terms) // per_row)
    grid = sub.subplots(nrows, ncols, squeeze=False)
    for k, (axq, (title, values)) in enumerate(zip(grid.flat, terms, strict=False)):
        _draw_quantiles(axq, values)
        axq.set_title(title)
        if k >= len(terms) - ncols:
            axq.set_xlabel("Normal quantile")
        if k % ncols == 0:
            axq.set_ylabel(f"Conditional mode\n({family.link_scale})")
    for axq in grid.flat[len(terms) :]:
        axq.remove()


def _plot_simulated_diagnostics(
    table, tests, terms, family, width, height, simulation=None
) -> Figure:
    """The diagnostics figure of a generalised model with simulated residuals: the two
    simulated-residual panels on top, the random-effect quantile plots (up to four to a
    row) below."""
    fitted = table["fitted"].to_numpy(dtype=float)
    residual = table["residual"].to_numpy(dtype=float)
    per_row = 4
    rows = -(-len(terms) // per_row)
    with plt.style.context(STYLE):
        fig = _new_figure(width, 2.9 + 2.0 * rows)
        if terms:
            top, bottom = fig.subfigures(2, 1, height_ratios=[2.9, 2.0 * rows])
        else:
            top, bottom = fig, None
        qq, vs = top.subplots(1, 2)
        _draw_simulated_qq(qq, residual, tests, simulation)
        _draw_residuals_vs_predicted(vs, fitted, residual, bins=10)
        if bottom is not None:
            _draw_random_effect_panels(bottom, terms, family, per_row=per_row)
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


# --------------------------------------------------------------------------- influence


def plot_influence(
    table: pd.DataFrame,
    top: int = 10,
    width: float = DOUBLE_COLUMN,
    model: str = "",
    alpha: float = 0.05,
    labels: Mapping[str, str] | None = None,
    group_name: str | None = None,
) -> Figure:
    """The most influential groups of a leave-one-out analysis (therapists in practice).

    Left: for each of the ``top`` left-out groups with the largest ``|DFBETAS|``
    (:func:`resistance_outcomes.influence.influence_overview`), the DFBETAS of every key
    estimate without it (lme4's ``dfbetas``: the change over the refit's standard error),
    coefficients as grey dots, the model's contrasts and simple slopes (its main results)
    as black dots, the largest named; dashed lines at the size-adjusted cut-off
    ``+-2/sqrt(n)`` for ``n`` groups (:func:`resistance_outcomes.influence.dfbetas_cutoff`),
    dotted lines at ``+-1``. A contrast whose significance changes, or whose sign changes
    while it is significant (:func:`resistance_outcomes.influence.influential_changes`), is
    drawn in vermillion. Right: the grouping factor's SD without each group, the full
    fit's as a line. A refit that failed is named in place of its dots.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`resistance_outcomes.influence.leave_one_out`.
    top : int
        Number of groups shown.
    width : float
    model : str
        Named in the title.
    group_name : str, optional
        The grouping factor's label ("Therapist"); its name in the table by default.
    alpha : float
        Level of the significance of the contrasts.
    labels : mapping, optional
        Estimate (the table's ``term``) -> the label it is named by.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from resistance_outcomes.influence import leave_one_out
    >>> from resistance_outcomes.models import fit_mixed
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(6), 8)
    >>> df = pd.DataFrame({"g": g.astype(str), "x": rng.normal(size=48)})
    >>> df["y"] = 1 + df.x + rng.normal(size=6)[g] + rng.normal(size=48)
    >>> fig = plot_influence(leave_one_out(fit_mixed("y ~ x + (1 | g)", df), df, "g"), top=3)
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['DFBETAS (change / SE without the group)', 'g SD without it']
    """
    from .influence import _TESTED, dfbetas_cutoff, influence_overview, influential_changes

    if table.empty:
        return plot_not_assessed("Influence of single groups", "no leave-one-out refits")
    names = dict(labels or {})
    overview = influence_overview(table, alpha)
    group = group_name or str(overview["group"].iloc[0])
    n_groups = len(overview)
    shown = overview.head(int(top))
    cutoff = dfbetas_cutoff(n_groups)
    with plt.style.context(STYLE):
        height = (1.15 if model else 1.0) + 0.22 * len(shown)
        fig = _new_figure(width, height)
        left, right = fig.subplots(1, 2, width_ratios=[3, 1.2], sharey=True)
        labels = shown["left_out"].astype(str).tolist()
        positions = np.arange(len(labels))[::-1]
        for y, (_, over) in zip(positions, shown.iterrows(), strict=True):
            rows = table[(table["left_out"].astype(str) == str(over["left_out"]))]
            if over["failed"]:
                left.text(0, y, "refit failed", va="center", ha="center", color=NOTE_INK)
                continue
            tested = rows[rows["kind"].isin(_TESTED)]
            main = tested["main"].astype(bool)
            moved = tested.index.isin(influential_changes(tested, alpha).index)
            values = tested["dfbetas"].to_numpy(dtype=float)
            left.plot(values[~main], np.full((~main).sum(), y), "o", ms=3, color="#aaaaaa")
            left.plot(values[main & ~moved], np.full((main & ~moved).sum(), y), "o", ms=3.5,
                      color=NEUTRAL)  # fmt: skip
            left.plot(values[main & moved], np.full((main & moved).sum(), y), "o", ms=4.5,
                      color=PALETTE[5])  # fmt: skip
            if np.isfinite(values).any():  # name the moved result, else the largest
                size = np.abs(values) + np.where(moved, 1e9, 0.0)
                at = int(np.nanargmax(size))
                term = str(tested["term"].iloc[at])
                left.annotate(
                    names.get(term, term), (values[at], y), xytext=(4, 3),
                    textcoords="offset points", fontsize=6, color=NOTE_INK,
                )  # fmt: skip
            right.plot(over["group_sd"], y, "o", ms=3.5, color=NEUTRAL)
        for x in (-cutoff, cutoff):
            left.axvline(x, ls="--", lw=0.7, color=NOTE_INK)
        for x in (-1, 1):
            left.axvline(x, ls=":", lw=0.7, color=NOTE_INK)
        left.axvline(0, lw=0.5, color="#cccccc")
        left.set_yticks(positions, labels)
        left.set_ylim(-0.7, len(labels) - 0.3)
        left.set_xlabel("DFBETAS (change / SE without the group)")
        left.set_ylabel(f"{group} left out")
        full_sd = overview["group_sd_full"].iloc[0]
        if np.isfinite(full_sd):
            right.axvline(full_sd, lw=0.7, color=NOTE_INK)
        right.set_xlabel(f"{group} SD without it")
        title = f"{model}\n" if model else ""
        fig.suptitle(
            f"{title}the {len(shown)} of {n_groups} levels of {lower_first(group)} with the "
            "largest |DFBETAS| "
            f"(dashed: \u00b12/\u221a{n_groups} = \u00b1{cutoff:.2f}; dotted: \u00b11)",
            fontsize=8,
        )
    return fig
