"""Tests for resistance_outcomes.figures: structure, colours, labels, layout and file output.

Frameworks have names unlike the example's; their colours are checked against the
Okabe-Ito palette by position in the framework map, written out here, not read from the
package.

Model-based figures are drawn from small simulated fits; Pearson residuals are checked
against the Poisson overdispersion the engine computes itself, statsmodels' variance
functions and the equivalence of binomial counts and their Bernoulli rows; quantile plots
against R's ``qqnorm`` positions.
"""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text
from scipy import stats
from statsmodels.genmod import families

from resistance_outcomes.derive import DataError
from resistance_outcomes.figures import (
    STYLE,
    diagnostic_residuals,
    framework_style,
    plot_agreement,
    plot_dropout_by_repair,
    plot_forest,
    plot_model_diagnostics,
    plot_resistance_profile,
    plot_response_odds,
    plot_retention_curves,
    plot_rupture_rate_by_session,
    save_figure,
)
from resistance_outcomes.models import fit_mixed

FRAMEWORKS = ["humanistic", "psychodynamic", "systemic"]
#: Okabe & Ito (2008) blue, orange, green, pink, ...: the colour of the first, second, ...
#: framework of the map; the ``other`` group grey.
OKABE_ITO = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000",
             "#f0e442"]  # fmt: skip
FRAMEWORK_COLORS = dict(zip(FRAMEWORKS, OKABE_ITO, strict=False)) | {"other": "#999999"}


@pytest.fixture
def rate_df():
    rows = []
    for k, framework in enumerate(FRAMEWORKS):
        for session in range(1, 11):
            mean = 0.5 + 0.1 * k + 0.02 * session
            rows.append((framework, session, 20, mean, mean * 0.7, mean * 1.4, False))
    df = pd.DataFrame(
        rows,
        columns=["framework", "session", "n_sessions", "mean", "ci_low", "ci_high", "suppressed"],
    )
    # a suppressed late session, as rate_by_session writes it
    df.loc[len(df)] = ("systemic", 11, np.nan, np.nan, np.nan, np.nan, True)
    return df


@pytest.fixture
def profile_df():
    rows = []
    for k, framework in enumerate(FRAMEWORKS):
        for j, behaviour in enumerate(["arguing", "interrupting", "denying", "ignoring"]):
            value = 0.2 + 0.05 * j + 0.03 * k
            rows.append(
                (
                    framework,
                    behaviour,
                    value,
                    value - 0.05,
                    value + 0.06,
                    value * 1.2,
                    value,
                    value * 1.5,
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "framework",
            "behaviour",
            "per_session",
            "per_session_ci_low",
            "per_session_ci_high",
            "per_hour",
            "per_hour_ci_low",
            "per_hour_ci_high",
        ],
    )


def drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def assert_readable_layout(fig):
    """Legend outside the axes; tick labels and axis labels do not overlap each other."""
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    assert legend.y0 >= ax.get_window_extent(renderer).y1 - 1  # above the data area
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.width  # inside the figure
    texts = [ax.xaxis.label, ax.yaxis.label]
    for labels, limits, coordinate in [
        (ax.get_xticklabels(), ax.get_xlim(), 0),
        (ax.get_yticklabels(), ax.get_ylim(), 1),
    ]:
        low, high = sorted(limits)
        texts += [
            t for t in labels if t.get_text() and low <= t.get_position()[coordinate] <= high
        ]  # drawn
    boxes = [t.get_window_extent(renderer) for t in texts]
    for a, b in itertools.combinations(boxes, 2):
        assert not overlaps(a, b)
    for box in boxes:
        assert not overlaps(box, legend)


def test_rate_plot_one_line_and_band_per_framework(rate_df):
    fig = drawn(plot_rupture_rate_by_session(rate_df))
    ax = fig.axes[0]
    lines = ax.get_lines()
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(lines) == len(bands) == 3
    for line, band, framework in zip(lines, bands, FRAMEWORKS, strict=True):
        assert to_hex(line.get_color()) == FRAMEWORK_COLORS[framework].lower()
        assert to_hex(band.get_facecolor()[0], keep_alpha=False) == (
            FRAMEWORK_COLORS[framework].lower()
        )
        assert line.get_label() == framework.capitalize()
    # the suppressed systemic session 11 is a gap, not a point
    assert np.isnan(lines[2].get_ydata()[-1])
    assert ax.get_xlabel() == "Session"
    assert ax.get_ylabel() == "Ruptures per session"
    assert ax.get_ylim()[0] == 0
    assert fig.get_size_inches().tolist() == pytest.approx([3.5, 2.6])
    assert_readable_layout(fig)
    plt.close(fig)


def test_rate_plot_reads_csv_output(rate_df, tmp_path):
    path = tmp_path / "rates.csv"
    rate_df.sample(frac=1, random_state=1).to_csv(path, index=False)
    fig = plot_rupture_rate_by_session(pd.read_csv(path), order=FRAMEWORKS)
    # framework order is the reporting order, not the order in the file
    assert [line.get_label() for line in fig.axes[0].get_lines()] == [
        "Humanistic",
        "Psychodynamic",
        "Systemic",
    ]
    assert fig.axes[0].get_lines()[0].get_xdata().tolist() == list(range(1, 11))


def test_profile_plot_error_bars_per_framework(profile_df):
    fig = drawn(plot_resistance_profile(profile_df))
    ax = fig.axes[0]
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(containers) == 3
    for container, framework in zip(containers, FRAMEWORKS, strict=True):
        marker_line = container.lines[0]
        assert to_hex(marker_line.get_color()) == FRAMEWORK_COLORS[framework].lower()
        assert container.get_label() == framework.capitalize()
        assert len(marker_line.get_xdata()) == 4
    # within a behaviour the frameworks are side by side, not on top of each other
    firsts = [c.lines[0].get_xdata()[0] for c in containers]
    assert firsts == sorted(firsts) and len(set(firsts)) == 3
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["Arguing", "Interrupting", "Denying", "Ignoring"]
    assert ax.get_ylabel() == "Per attended session"
    assert ax.get_xlabel() == "Behaviour"
    assert_readable_layout(fig)
    hour = plot_resistance_profile(profile_df, per="hour")
    assert hour.axes[0].get_ylabel() == "Per 60 minutes"
    with pytest.raises(ValueError, match="per must be 'session' or 'hour'"):
        plot_resistance_profile(profile_df, per="minute")


def test_framework_style_by_position_without_a_vocabulary():
    order = ["systemic", "humanistic", "psychodynamic", "integrative"]
    style = framework_style(["integrative", "humanistic"], order=order)
    assert style.order == ("humanistic", "integrative")  # the order given, present only
    # colours by position in the order given, whichever frameworks the table holds
    assert [style.color(f) for f in order] == [c.upper() for c in OKABE_ITO[:4]]
    assert style.marker("systemic") == "o" and style.marker("humanistic") == "s"
    # without an order: the order of appearance, colours by that position
    style = framework_style(pd.Series(["b_group", "a_group", "b_group"]))
    assert style.order == ("b_group", "a_group")
    assert style.label("a_group") == "A group"
    # explicit colours override single frameworks
    assert framework_style(["x"], colors={"x": "#123456"}).color("x") == "#123456"


def test_save_figure_writes_both_files_and_closes(rate_df, tmp_path):
    fig = plt.figure()  # a pyplot-managed figure must be closed too
    number = fig.number
    pdf, png = tmp_path / "out" / "rate.pdf", tmp_path / "out" / "rate.png"
    save_figure(fig, pdf, png)
    assert number not in plt.get_fignums()
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in pdf.parent.iterdir()) == ["rate.pdf", "rate.png"]

    save_figure(plot_rupture_rate_by_session(rate_df), pdf, png)
    width, height = plt.imread(png).shape[1::-1]
    assert (width, height) == (1050, 780)  # 3.5 x 2.6 in at 300 dpi
    first = pdf.read_bytes()
    save_figure(plot_rupture_rate_by_session(rate_df), pdf, png)
    assert pdf.read_bytes() == first  # no creation date: same figure, same file


def test_style_file_ships_with_the_package():
    assert STYLE.is_file()
    with plt.style.context(STYLE):
        assert plt.rcParams["axes.spines.top"] is False
        assert plt.rcParams["font.size"] == 8
        assert plt.rcParams["font.family"] == ["sans-serif"]


# ------------------------------------------------------------------ agreement


def agreement_table(rows):
    return pd.DataFrame(rows, columns=["construct", "statistic", "estimate", "ci_low", "ci_high"])


def band_names(ax):
    return [t for t in ax.texts if t.get_text() in {"Poor", "Moderate", "Good", "Excellent"}]


def test_agreement_plot_one_row_per_construct_and_a_marker_per_statistic():
    table = agreement_table(
        [
            ("ruptures", "ICC(A,1)", 0.93, 0.91, 0.95),
            ("ruptures", "ICC(A,k)", 0.96, 0.95, 0.97),
            ("resistance_interrupting", "ICC(A,1)", 0.86, 0.84, 0.88),
            ("resistance_interrupting", "ICC(A,k)", 0.93, 0.91, 0.94),
            ("rupture_type", "Fleiss' kappa", 0.91, 0.89, 0.93),
        ]
    )
    fig = drawn(plot_agreement(table, labels={"resistance_interrupting": "Interrupting"}))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "Ruptures",
        "Interrupting",
        "Rupture type",
    ]
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in containers] == ["ICC(A,1)", "ICC(A,k)", "Fleiss' kappa"]
    first = containers[0].lines[0]
    assert to_hex(first.get_color()) == "#333333"  # one neutral ink, no framework colours
    assert list(first.get_xdata()) == [0.93, 0.86]
    # ICC(A,1) and ICC(A,k) of a construct side by side, in table order from the top
    y_a1, y_ak = containers[0].lines[0].get_ydata(), containers[1].lines[0].get_ydata()
    assert list(y_a1 < y_ak) == [True, True] and y_a1[0] < y_a1[1]
    assert ax.yaxis_inverted()
    # The axis starts at the Koo & Li boundary below the lowest limit (.84 -> .75);
    # ticks read as APA prints bounded statistics.
    assert ax.get_xlim() == (0.75, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == [".75", ".80"]
    names = band_names(ax)
    assert [t.get_text() for t in names] == ["Good", "Excellent"]
    assert_readable_layout(fig)


def test_agreement_plot_wide_range_missing_values_and_bad_input():
    table = agreement_table(
        [
            ("ruptures", "ICC(A,1)", 0.62, 0.45, 0.75),
            ("discord", "ICC(A,1)", np.nan, np.nan, np.nan),
            ("client_talk_type", "Fleiss' kappa", -0.12, -0.30, 0.05),
            ("rupture_type", "Cohen's kappa", 0.93, 0.90, 0.96),
        ]
    )
    fig = drawn(plot_agreement(table))
    ax = fig.axes[0]
    assert ax.get_xlim() == (-0.5, 1.0)
    assert [t.get_text() for t in ax.texts if t.get_text() == "not estimable"] == ["not estimable"]
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in band_names(ax)]
    assert len(boxes) == 4
    for a, b in itertools.combinations(boxes, 2):
        assert not overlaps(a, b)  # narrow bands' names go on further lines
    legend = fig.legends[0].get_window_extent(renderer)
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.width
    for box in boxes:
        assert not overlaps(box, legend)
    with pytest.raises(ValueError, match="statistic 'ICC\\(C,1\\)' cannot be drawn"):
        plot_agreement(table.assign(statistic="ICC(C,1)"))


# ------------------------------------------------------------------ shared checks


def text_boxes(fig):
    """Window boxes of every drawn text: tick labels in the axis range, axis labels,
    titles and free texts of every axes."""
    renderer = fig.canvas.get_renderer()
    texts = []
    for ax in fig.axes:
        texts += [ax.xaxis.label, ax.yaxis.label, ax.title, *ax.texts]
        for labels, limits, coordinate in [
            (ax.get_xticklabels(), ax.get_xlim(), 0),
            (ax.get_yticklabels(), ax.get_ylim(), 1),
        ]:
            low, high = sorted(limits)
            texts += [
                t for t in labels if t.get_text() and low <= t.get_position()[coordinate] <= high
            ]
    return [t.get_window_extent(renderer) for t in texts if t.get_text()]


def assert_no_overlap(fig):
    """No two texts overlap, every text and legend is inside the figure, and no legend
    covers an axes' data area or a text."""
    renderer = fig.canvas.get_renderer()
    boxes = text_boxes(fig)
    for a, b in itertools.combinations(boxes, 2):
        assert not overlaps(a, b), (a, b)
    legends = [legend.get_window_extent(renderer) for legend in fig.legends]
    for ax in fig.axes:
        legends += [ax.get_legend().get_window_extent(renderer)] if ax.get_legend() else []
    for box in boxes + legends:
        assert box.x0 >= -1 and box.x1 <= fig.bbox.width + 1, box
        assert box.y0 >= -1 and box.y1 <= fig.bbox.height + 1, box
    for legend in legends:
        for ax in fig.axes:
            assert not overlaps(legend, ax.get_window_extent(renderer))
        for box in boxes:
            assert not overlaps(legend, box)


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def colour(artist):
    return to_hex(artist.get_color())


def band_colour(band):
    return to_hex(band.get_facecolor()[0], keep_alpha=False)


# ------------------------------------------------------------------ rate with prediction


@pytest.fixture
def prediction_df():
    rows = []
    for k, framework in enumerate(FRAMEWORKS):
        for session in range(1, 12):
            estimate = 0.52 + 0.1 * k + 0.018 * session
            rows.append((framework, session, estimate, estimate * 0.85, estimate * 1.18))
    return pd.DataFrame(rows, columns=["framework", "session", "estimate", "ci_low", "ci_high"])


def test_rate_plot_overlays_the_model_prediction(rate_df, prediction_df):
    fig = drawn(plot_rupture_rate_by_session(rate_df, prediction=prediction_df))
    ax = fig.axes[0]
    observed = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in observed] == ["Humanistic", "Psychodynamic", "Systemic"]
    model_lines = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(model_lines) == len(bands(ax)) == 3
    for container, line, band, framework in zip(
        observed, model_lines, bands(ax), FRAMEWORKS, strict=True
    ):
        expected = FRAMEWORK_COLORS[framework].lower()
        assert colour(container.lines[0]) == colour(line) == band_colour(band) == expected
        assert container.lines[0].get_linestyle() == "None"  # observed means are points
        assert line.get_xdata().tolist() == list(range(1, 12))
    # observed points of a session side by side, centred on the session
    firsts = [c.lines[0].get_xdata()[0] for c in observed]
    assert firsts == pytest.approx([0.88, 1.0, 1.12])
    # the style key sits below the axes, the framework legend above
    renderer = fig.canvas.get_renderer()
    key = fig.legends[1]
    assert [t.get_text() for t in key.get_texts()] == [
        "Observed (95% CI)",
        "Model prediction (95% CI)",
    ]
    assert key.get_window_extent(renderer).y1 <= ax.xaxis.label.get_window_extent(renderer).y0
    assert fig.get_size_inches().tolist() == pytest.approx([3.5, 3.0])
    assert_readable_layout(fig)
    assert_no_overlap(fig)


# ------------------------------------------------------------------ dropout by repair


@pytest.fixture
def dropout_df():
    grid = np.linspace(0, 1, 21)
    rows = []
    for k, framework in enumerate(FRAMEWORKS):
        p = 1 / (1 + np.exp(-(-1.0 - (0.5 + k) * grid)))
        rows += [
            (framework, r, e, 0.7 * e, min(1.0, 1.4 * e)) for r, e in zip(grid, p, strict=True)
        ]
    return pd.DataFrame(
        rows, columns=["framework", "repair_rate", "estimate", "ci_low", "ci_high"]
    ).sample(frac=1, random_state=3)


def test_dropout_plot_one_line_and_band_per_framework(dropout_df):
    fig = drawn(plot_dropout_by_repair(dropout_df, order=FRAMEWORKS))
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == len(bands(ax)) == 3
    for line, band, framework in zip(lines, bands(ax), FRAMEWORKS, strict=True):
        assert colour(line) == band_colour(band) == FRAMEWORK_COLORS[framework].lower()
        assert line.get_label() == framework.capitalize()
        assert list(line.get_xdata()) == sorted(line.get_xdata())  # sorted by repair rate
    # proportions on the data, percentages on the axes
    low, high = ax.get_xlim()
    ticks = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
    assert ticks == ["0", "20", "40", "60", "80", "100"]
    assert ax.get_xlabel() == "Repair rate (% of ruptures repaired)"
    assert ax.get_ylabel() == "Predicted probability of dropout (%)"
    assert ax.get_ylim()[0] == 0
    assert_readable_layout(fig)
    assert_no_overlap(fig)


def test_dropout_plot_draws_the_models_own_predictor_by_its_label(dropout_df):
    """A retention model without repair rate: the one other column of its predictions is
    the x axis, named by the vocabulary, not formatted as a percentage."""
    own = dropout_df.rename(columns={"repair_rate": "sustain_talk_rate"})
    own["sustain_talk_rate"] *= 4.0  # a rate per session, not a proportion
    vocab = Vocabulary(
        constructs={
            "sustain_talk": ConstructInfo("sustain_talk", "Sustain talk", "count", "column")
        },
        frameworks=[FrameworkInfo(f, f.capitalize(), FRAMEWORK_COLORS[f], "o") for f in FRAMEWORKS],
    )
    ax = drawn(plot_dropout_by_repair(own, vocab=vocab)).axes[0]
    assert ax.get_xlabel() == "Sustain talk per session"
    for line, framework in zip(ax.get_lines(), FRAMEWORKS, strict=True):
        expected = own[own["framework"] == framework].sort_values("sustain_talk_rate")
        np.testing.assert_allclose(line.get_xdata(), expected["sustain_talk_rate"])
        np.testing.assert_allclose(line.get_ydata(), expected["estimate"])
    assert max(line.get_xdata().max() for line in ax.get_lines()) == pytest.approx(4.0)


def test_dropout_plot_rejects_percentages(dropout_df):
    bad = dropout_df.reset_index(drop=True)
    bad.loc[4, "repair_rate"] = 40.0
    with pytest.raises(DataError, match=r"row 5: column 'repair_rate' has the value '40.0'"):
        plot_dropout_by_repair(bad)


# ------------------------------------------------------------------ forest plot


def effects_table(labels=("Repair rate, +10 points",), group=None, kind="odds ratio"):
    rows = []
    for i, label in enumerate(labels):
        for k, framework in enumerate(FRAMEWORKS):
            estimate = 0.6 + 0.25 * k + 0.1 * i
            rows.append((label, framework, estimate, estimate / 1.5, estimate * 1.5))
    table = pd.DataFrame(rows, columns=["label", "framework", "estimate", "ci_low", "ci_high"])
    table["ratio_kind"] = kind
    if group is not None:
        table.insert(0, "group", group)
    return table


def test_forest_plot_log_axis_reference_line_and_framework_colours():
    fig = drawn(plot_forest(effects_table(["Repair rate, +10 points", "Rupture rate, +1"])))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Odds ratio (log scale)"
    reference = [line for line in ax.get_lines() if list(line.get_xdata()) == [1, 1]]
    assert len(reference) == 1 and reference[0].get_linestyle() == "--"
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in containers] == ["Humanistic", "Psychodynamic", "Systemic"]
    for k, (container, framework) in enumerate(zip(containers, FRAMEWORKS, strict=True)):
        assert colour(container.lines[0]) == FRAMEWORK_COLORS[framework].lower()
        assert container.lines[0].get_xdata().tolist() == pytest.approx(
            [0.6 + 0.25 * k, 0.7 + 0.25 * k]
        )
    # one row per label, frameworks side by side within it, first row at the top
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "Repair rate, +10\npoints",
        "Rupture rate, +1",
    ]
    assert ax.yaxis_inverted()
    rows = np.array([c.lines[0].get_ydata() for c in containers])
    assert (np.diff(rows, axis=0) > 0).all() and (np.abs(rows - [0, 1]) < 0.5).all()
    # ticks are round ratios including 1
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "1" in ticks and all(float(t) > 0 for t in ticks)
    assert_no_overlap(fig)


def test_forest_plot_groups_and_panels_per_ratio_kind():
    effects = pd.concat(
        [
            effects_table(["Repair rate, +10 points"], group="Dropout (client level)"),
            effects_table(["Unrepaired ruptures, +1"], group="Dropout hazard"),
            effects_table(["Session, +1"], group="Rupture frequency", kind="rate ratio"),
        ]
    )
    fig = drawn(plot_forest(effects))
    odds, rates = fig.axes
    assert odds.get_xlabel() == "Odds ratio (log scale)"
    assert rates.get_xlabel() == "Incidence-rate ratio (log scale)"
    labels = odds.get_yticklabels()
    assert [t.get_text() for t in labels] == [
        "Dropout (client level)",
        "Repair rate, +10\npoints",
        "Dropout hazard",
        "Unrepaired ruptures,\n+1",
    ]
    assert [t.get_fontweight() for t in labels] == ["bold", "normal", "bold", "normal"]
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 3
    assert_no_overlap(fig)


def test_forest_plot_height_grows_with_rows_and_labels_do_not_overlap():
    few = plot_forest(effects_table([f"Effect {i}" for i in range(2)]))
    many = drawn(
        plot_forest(effects_table([f"A longer effect label number {i}" for i in range(12)]))
    )
    assert many.get_size_inches()[1] > 3 * few.get_size_inches()[1] / 2
    assert_no_overlap(many)
    wide = drawn(
        plot_forest(effects_table([f"A longer effect label number {i}" for i in range(12)]), 7.2)
    )
    assert "\n" not in wide.axes[0].get_yticklabels()[0].get_text()  # room to stay on one line
    assert_no_overlap(wide)


def test_forest_plot_narrow_range_missing_estimate_and_no_framework():
    effects = effects_table(["Session, +1"], kind="rate ratio")
    effects[["estimate", "ci_low", "ci_high"]] = [[1.01, 0.99, 1.03], [0.98, 0.96, 1.0],
                                                  [np.nan, np.nan, np.nan]]  # fmt: skip
    pooled = pd.DataFrame([("Session, +1 (all)", None, 0.99, 0.98, 1.0, "rate ratio")],
                          columns=effects.columns)  # fmt: skip
    fig = drawn(plot_forest(pd.concat([effects, pooled])))
    ax = fig.axes[0]
    ticks = [float(t.get_text()) for t in ax.get_xticklabels()]
    assert len(ticks) >= 3 and 1.0 in ticks  # round steps, not a lone "1"
    assert [t.get_text() for t in ax.texts] == ["not estimable"]
    assert colour(ax.texts[0]) == FRAMEWORK_COLORS["systemic"].lower()
    assert ax.texts[0].get_position()[1] == pytest.approx(0.22)  # systemic's place in row 0
    neutral = [c for c in ax.containers if c.get_label() == "_nolegend_"]
    assert len(neutral) == 1 and colour(neutral[0].lines[0]) == "#333333"
    assert neutral[0].lines[0].get_ydata().tolist() == [1.0]  # alone in its row: centred
    # every framework of the table is in the legend, the neutral pooled row is not
    assert len(fig.legends[0].get_texts()) == 3
    assert_no_overlap(fig)


def test_forest_plot_rejects_log_scale_values_and_repeated_effects():
    effects = effects_table()
    effects.loc[1, "estimate"] = -0.3
    with pytest.raises(DataError, match=r"row 2 \(Repair rate.*'estimate' has the value '-0.3'"):
        plot_forest(effects)
    with pytest.raises(DataError, match="rows 1 and 4 have the same ratio_kind, label, framework"):
        plot_forest(pd.concat([effects_table(), effects_table()]))


# ------------------------------------------------------------------ retention curves


def retention_table(frameworks=FRAMEWORKS, tertiles=None):
    rows = []
    for k, framework in enumerate(frameworks):
        for j, group in enumerate(tertiles or [None]):
            survival = 1.0
            for session in range(1, 11):
                survival *= 1 - (0.02 + 0.01 * k + 0.01 * j)
                row = {"framework": framework, "session": session, "survival": survival,
                       "ci_low": survival - 0.06, "ci_high": min(1.0, survival + 0.05),
                       "suppressed": False}  # fmt: skip
                if group is not None:
                    row["repair_tertile"] = group
                rows.append(row)
    return pd.DataFrame(rows)


def test_retention_plot_step_curves_from_100_percent():
    curves = retention_table()
    curves.loc[curves.index[-2:], ["survival", "ci_low", "ci_high"]] = np.nan  # suppressed
    fig = drawn(plot_retention_curves(curves))
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == len(bands(ax)) == 3
    for line, band, framework in zip(lines, bands(ax), FRAMEWORKS, strict=True):
        assert line.get_drawstyle() == "steps-post"
        assert colour(line) == band_colour(band) == FRAMEWORK_COLORS[framework].lower()
        assert (line.get_xdata()[0], line.get_ydata()[0]) == (0, 100)
    first = curves[curves["framework"] == "humanistic"]["survival"].to_numpy()
    assert lines[0].get_ydata()[1:].tolist() == pytest.approx((100 * first).tolist())
    assert lines[2].get_xdata()[-1] == 8  # the curve ends before its suppressed sessions
    assert ax.get_ylabel() == "Still in therapy (%)"
    assert ax.get_xlabel() == "Session"
    assert ax.get_ylim() == (60, 101)  # the 10% step below the lowest interval (0.6...)
    assert_readable_layout(fig)
    assert_no_overlap(fig)


def test_retention_plot_repair_tertile_panels():
    groups = ["Low repair", "Middle repair", "High repair", "No ruptures"]
    fig = drawn(plot_retention_curves(retention_table(), retention_table(tertiles=groups)))
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == [
        "By framework",
        "Humanistic",
        "Psychodynamic",
        "Systemic",
    ]
    assert fig.get_size_inches()[0] == pytest.approx(7.2)
    for ax, framework in zip(fig.axes[1:], FRAMEWORKS, strict=True):
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == groups
        assert {colour(line) for line in lines} == {FRAMEWORK_COLORS[framework].lower()}
        assert len({str(line.get_linestyle()) for line in lines}) == 4  # told apart by style
        assert len(bands(ax)) == 4
        assert ax.get_ylim() == fig.axes[0].get_ylim()
    # frameworks in the legend above, the repair groups' line styles in the one below
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "Humanistic",
        "Psychodynamic",
        "Systemic",
    ]
    assert [t.get_text() for t in fig.legends[1].get_texts()] == groups
    renderer = fig.canvas.get_renderer()
    above = fig.legends[0].get_window_extent(renderer)
    below = fig.legends[1].get_window_extent(renderer)
    assert below.y1 < min(ax.get_window_extent(renderer).y0 for ax in fig.axes) < above.y0
    assert_no_overlap(fig)


# ------------------------------------------------------------------ model diagnostics


@pytest.fixture(scope="module")
def poisson_fit():
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=120)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + rng.normal(0, 0.5, 12)[g]))
    return fit_mixed("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), "poisson")


def test_pearson_residuals_of_a_poisson_fit(poisson_fit):
    res = diagnostic_residuals(poisson_fit)
    y = poisson_fit.design.y
    # the fitted value is the conditional mean exp(X beta + Z b)
    eta = poisson_fit.design.X @ poisson_fit.beta + poisson_fit.design.Zt.T @ poisson_fit.b
    assert res["fitted"].to_numpy() == pytest.approx(np.exp(eta))
    mu = res["fitted"].to_numpy()
    assert res["residual"].to_numpy() == pytest.approx((y - mu) / np.sqrt(mu))
    # sum of squares over residual df: the overdispersion ratio the engine reports itself
    n, p = len(y), poisson_fit.n_params
    ratio = poisson_fit.fit_statistics["overdispersion"]
    assert np.sum(res["residual"] ** 2) / (n - p) == pytest.approx(ratio, rel=1e-8)


def test_pearson_residuals_use_the_family_variance():
    rng = np.random.default_rng(9)
    g = np.repeat(np.arange(10), 12)
    mu = np.exp(0.5 + rng.normal(0, 0.4, 10)[g])
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    fit = fit_mixed("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g}), "negative_binomial")
    res = diagnostic_residuals(fit)
    fitted = res["fitted"].to_numpy()
    variance = families.NegativeBinomial(alpha=1 / fit.nb_theta).variance(fitted)  # mu + mu^2/theta
    assert res["residual"].to_numpy() == pytest.approx((y - fitted) / np.sqrt(variance))

    frame = pd.DataFrame({"y": rng.normal(size=120) + rng.normal(size=10)[g], "g": g})
    gaussian = fit_mixed("y ~ 1 + (1 | g)", frame)
    res = diagnostic_residuals(gaussian)
    # in residual SD units
    assert (res["residual"] * gaussian.sigma).to_numpy() == pytest.approx(
        frame["y"] - res["fitted"]
    )


def test_pearson_residuals_of_binomial_counts_match_their_bernoulli_rows():
    # 8 groups x 5 units x 6 trials; the same data as 240 0/1 rows give the same fit, and
    # the count residual is the sum of its Bernoulli residuals over sqrt(trials):
    # (s - n mu) / sqrt(mu (1 - mu)) / sqrt(n) = (s / n - mu) sqrt(n / (mu (1 - mu))).
    rng = np.random.default_rng(10)
    g = np.repeat(np.arange(8), 5)
    x = rng.normal(size=40)
    successes = rng.binomial(6, 1 / (1 + np.exp(-(0.2 + 0.5 * x + rng.normal(0, 0.6, 8)[g]))))
    counts = pd.DataFrame({"s": successes, "f": 6 - successes, "x": x, "g": g})
    rows = counts.loc[counts.index.repeat(6)].reset_index(names="unit")
    rows["y"] = (rows.groupby("unit").cumcount() < rows["s"]).astype(int)
    by_count = diagnostic_residuals(fit_mixed("cbind(s, f) ~ x + (1 | g)", counts, "binomial"))
    by_row = diagnostic_residuals(fit_mixed("y ~ x + (1 | g)", rows, "binomial"))
    summed = by_row["residual"].groupby(rows["unit"]).sum() / np.sqrt(6)
    assert by_count["residual"].to_numpy() == pytest.approx(summed.to_numpy(), rel=1e-5)


def test_diagnostics_panel_residuals_and_one_quantile_plot_per_term():
    rng = np.random.default_rng(11)
    g = np.tile(np.arange(5), 24)  # 5 groups: random intercept and slope
    h = np.repeat(np.arange(12), 10)  # 12 groups: random intercept
    x = rng.normal(size=120)
    y = (rng.normal(0, 0.1, 5)[g] + (1 + rng.normal(0, 2.0, 5)[g]) * x
         + rng.normal(0, 1, 12)[h] + rng.normal(0, 0.5, 120))  # fmt: skip
    fit = fit_mixed("y ~ x + (1 + x | g) + (1 | h)", pd.DataFrame({"y": y, "x": x, "g": g, "h": h}))
    fig = drawn(plot_model_diagnostics(fit))
    residual_ax, *quantile_axes = fig.axes
    points, means = residual_ax.get_lines()[:2]
    res = diagnostic_residuals(fit)
    assert points.get_xdata().tolist() == pytest.approx(res["fitted"].tolist())
    assert points.get_ydata().tolist() == pytest.approx(res["residual"].tolist())
    assert len(means.get_xdata()) == 20
    assert residual_ax.get_xlabel() == "Fitted value"
    assert residual_ax.get_ylabel() == "Pearson residual"
    # lme4 order: terms by decreasing number of levels; one axes per coefficient
    assert [ax.get_title() for ax in quantile_axes] == ["H\nintercept", "G\nintercept", "G\nx"]
    h_points = quantile_axes[0].get_lines()[0]
    # R: qnorm(ppoints(12)) uses (i - 0.5) / 12; qnorm(ppoints(5)) uses (i - 3/8) / 5.25
    assert h_points.get_xdata() == pytest.approx(stats.norm.ppf((np.arange(1, 13) - 0.5) / 12))
    assert quantile_axes[1].get_lines()[0].get_xdata() == pytest.approx(
        [-1.1797611, -0.4972006, 0.0, 0.4972006, 1.1797611], abs=1e-6
    )
    assert list(h_points.get_ydata()) == sorted(h_points.get_ydata())
    # the slope modes (true SD 2) spread far more than the intercept modes (true SD 0.1)
    spread = [np.std(ax.get_lines()[0].get_ydata()) for ax in quantile_axes[1:]]
    assert spread[1] > 5 * spread[0]
    assert all(
        ax.get_ylabel() in ("", "Conditional mode\n(response units)") for ax in quantile_axes
    )
    assert quantile_axes[0].get_ylabel() and quantile_axes[2].get_xlabel() == "Normal quantile"
    assert_no_overlap(fig)


def test_diagnostics_of_a_logistic_model(poisson_fit):
    rng = np.random.default_rng(12)
    g = np.repeat(np.arange(15), 8)
    y = rng.binomial(1, 1 / (1 + np.exp(-rng.normal(0, 1, 15)[g])))
    fit = fit_mixed("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g}), "binomial")
    fig = drawn(plot_model_diagnostics(fit))
    assert fig.axes[0].get_xlabel() == "Fitted probability"
    assert fig.axes[1].get_ylabel() == "Conditional mode\n(log odds)"
    poisson = drawn(plot_model_diagnostics(poisson_fit))
    assert poisson.axes[0].get_xlabel() == "Fitted count"
    assert poisson.axes[1].get_ylabel() == "Conditional mode\n(log rate)"
    assert_no_overlap(fig)


# ------------------------------------------------------------------ the study's frameworks

from types import SimpleNamespace  # noqa: E402

from matplotlib.collections import Collection  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from resistance_outcomes import pipeline  # noqa: E402
from resistance_outcomes.figures import (  # noqa: E402
    plot_not_assessed,
    retention_frameworks,
)
from resistance_outcomes.frameworks import FrameworkMap  # noqa: E402
from resistance_outcomes.vocabulary import (  # noqa: E402
    ConstructInfo,
    FrameworkInfo,
    Stage,
    Vocabulary,
    framework_infos,
)

STUDY = ["humanistic", "psychodynamic", "systemic"]
GROUPS = ["Low repair", "Middle repair", "High repair", "No ruptures"]
PARTS = ["resistance_arguing", "homework_noncompliance"]


def study_vocabulary(frameworks=STUDY, other="other"):
    """A vocabulary as the workflow writes it: frameworks in map order, one profiled
    composite of two parts with their codebook labels."""
    fmap = FrameworkMap(tuple(frameworks), {}, other=other, unmapped="other" if other else "error")
    constructs = {
        "resistance_arguing": ConstructInfo("resistance_arguing", "Arguing", "count", "codes"),
        "homework_noncompliance": ConstructInfo(
            "homework_noncompliance", "Homework not done", "count", "column"
        ),
        "resistance": ConstructInfo("resistance", "Resistance", "count", "sum_of", tuple(PARTS)),
    }
    return Vocabulary(constructs=constructs, frameworks=framework_infos(fmap), profile="resistance")


def rates_for(frameworks, hidden=()):
    rows = []
    for k, framework in enumerate(frameworks):
        for session in range(1, 9):
            mean = np.nan if framework in hidden else 0.5 + 0.1 * k + 0.02 * session
            rows.append((framework, session, mean, 0.7 * mean, 1.4 * mean))
    return pd.DataFrame(rows, columns=["framework", "session", "mean", "ci_low", "ci_high"])


def profile_for(frameworks, hidden=()):
    rows = []
    for k, framework in enumerate(frameworks):
        for j, part in enumerate(PARTS):
            v = np.nan if framework in hidden else 0.2 + 0.05 * j + 0.03 * k
            rows.append((framework, part, v, v - 0.05, v + 0.06))
    columns = ["framework", "construct", "per_session", "per_session_ci_low",
               "per_session_ci_high"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def dropout_for(frameworks):
    grid = np.linspace(0, 1, 6)
    rows = [(f, r, 0.3 - 0.1 * r + 0.02 * k, 0.2 - 0.1 * r + 0.02 * k, 0.4 - 0.1 * r)
            for k, f in enumerate(frameworks) for r in grid]  # fmt: skip
    return pd.DataFrame(rows, columns=["framework", "repair_rate", "estimate", "ci_low",
                                       "ci_high"])  # fmt: skip


def effects_for(frameworks):
    rows = [("Repair rate, +10 points", f, 0.6 + 0.1 * k, 0.4 + 0.1 * k, 0.9 + 0.1 * k,
             "odds ratio") for k, f in enumerate(frameworks)]  # fmt: skip
    columns = ["label", "framework", "estimate", "ci_low", "ci_high", "ratio_kind"]
    return pd.DataFrame(rows, columns=columns)


def retention_for(frameworks, hidden=(), tertiles=False):
    table = retention_table(frameworks, GROUPS if tertiles else None)
    numbers = ["survival", "ci_low", "ci_high"]
    table.loc[table["framework"].isin(hidden), numbers] = np.nan
    return table


def every_figure(frameworks, vocab, hidden=()):
    """Each framework figure, drawn from tables holding ``frameworks`` (in scrambled order)."""
    scrambled = list(reversed(frameworks))
    rates = rates_for(scrambled, hidden)
    prediction = rates.dropna().rename(columns={"mean": "estimate"})
    return {
        "rate": plot_rupture_rate_by_session(rates, vocab=vocab),
        "rate+model": plot_rupture_rate_by_session(rates, prediction=prediction, vocab=vocab),
        "profile": plot_resistance_profile(profile_for(scrambled, hidden), vocab=vocab),
        "dropout": plot_dropout_by_repair(dropout_for(scrambled), vocab=vocab),
        "forest": plot_forest(effects_for(scrambled), vocab=vocab),
        "retention": plot_retention_curves(
            retention_for(scrambled, hidden),
            retention_for(scrambled, hidden, True),
            vocab=vocab,
        ),  # fmt: skip
    }


def legend_colours(fig):
    """Printed framework label -> colour of its legend handle, over every legend."""
    found = {}
    for legend in fig.legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            if handle is not None and text.get_text() and text.get_color() != "#666666":
                colour_of = getattr(handle, "get_color", None) or handle.get_facecolor
                found[text.get_text()] = to_hex(colour_of())
    return found


def drawn_colours(fig):
    """Colours of every line, errorbar and band drawn in the data areas."""
    colours = set()
    for ax in fig.axes:
        colours |= {colour(line) for line in ax.get_lines() if len(line.get_xdata())}
        colours |= {band_colour(band) for band in bands(ax) if len(band.get_paths())}
    return colours


def test_one_framework_has_one_colour_in_every_figure():
    vocab = study_vocabulary()
    expected = {"Humanistic": "#0072b2", "Psychodynamic": "#e69f00", "Systemic": "#009e73",
                "Other": "#999999"}  # fmt: skip
    # each figure sees a different subset of the frameworks: colours stay put anyway
    subsets = [["psychodynamic", "other"], ["systemic", "humanistic"], [*STUDY, "other"]]
    for subset in subsets:
        for name, fig in every_figure(subset, vocab).items():
            drawn(fig)
            shown = {vocab.framework_label(f) for f in subset}
            colours = legend_colours(fig)
            assert {k: v for k, v in colours.items() if k in shown} == {
                k: expected[k] for k in shown
            }, name
            # and what is drawn is in those colours (the style keys in neutral ink)
            assert drawn_colours(fig) - {"#333333", "#888888"} <= set(colours.values()), name
            plt.close(fig)


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_frameworks_follow_the_order_of_the_map():
    order = ["systemic", "humanistic", "psychodynamic"]
    vocab = study_vocabulary(order)
    labels = ["Systemic", "Humanistic", "Psychodynamic", "Other"]
    for name, fig in every_figure(["humanistic", "other", "psychodynamic", "systemic"],
                                  vocab).items():  # fmt: skip
        texts = [t for t in legend_texts(fig) if t in labels]
        assert texts == labels, name
        plt.close(fig)
    fig = every_figure(STUDY, vocab)["retention"]
    assert [ax.get_title() for ax in fig.axes] == ["By framework", *labels[:3]]
    # the map's colours by position: the first framework listed is blue
    assert legend_colours(drawn(fig))["Systemic"] == "#0072b2"


LONG_NAMES = [
    "person_centred_experiential",  # 27 characters
    "brief_psychodynamic_therapy",
    "systemic_family_therapy",
    "cognitive_behavioural_therapy",
    "emotion_focused_therapy",
    "mentalization_based_treatment",
    "acceptance_and_commitment",
    "interpersonal_psychotherapy",
]


def assert_legends_inside(fig):
    """Every legend text is inside the figure and no two legend texts overlap."""
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    boxes = []
    for legend in fig.legends:
        for text in legend.get_texts():
            box = text.get_window_extent(renderer)
            assert frame.x0 - 0.5 <= box.x0 and box.x1 <= frame.x1 + 0.5, text.get_text()
            assert frame.y0 - 0.5 <= box.y0 and box.y1 <= frame.y1 + 0.5, text.get_text()
            boxes.append(box)
    for a, b in itertools.combinations(boxes, 2):
        assert not overlaps(a, b)


@pytest.mark.parametrize("count", [2, 4, 8])
def test_legends_fit_long_names_and_many_frameworks(count):
    names = LONG_NAMES[:count]
    vocab = study_vocabulary(names)
    for name, fig in every_figure([*names, "other"], vocab).items():
        drawn(fig)
        assert_legends_inside(fig)
        texts = " ".join(legend_texts(fig)).replace("\n", " ")
        for framework in names:
            assert vocab.framework_label(framework) in texts, (name, framework)  # whole
        assert_no_overlap(fig)
        plt.close(fig)


def test_legend_grows_the_figure_instead_of_squeezing_the_axes():
    few = drawn(every_figure(STUDY, study_vocabulary())["rate"])
    many = drawn(every_figure(LONG_NAMES, study_vocabulary(LONG_NAMES))["rate"])
    assert many.get_figheight() > few.get_figheight() == pytest.approx(2.6)
    renderer = few.canvas.get_renderer()
    height = [f.axes[0].get_window_extent(renderer).height for f in (few, many)]
    assert height[1] == pytest.approx(height[0], rel=0.1)


def has_data(ax):
    """An axes draws something: a line with a finite point, a band, a patch."""
    for line in ax.get_lines():
        if np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any():
            return True
    collections = [c for c in ax.collections if isinstance(c, Collection)]
    if any(len(c.get_paths()) for c in collections):
        return True
    return any(isinstance(p, Patch) and p.get_visible() for p in ax.patches)


def test_no_panel_is_empty_and_frameworks_without_data_are_named():
    vocab = study_vocabulary()
    figs = every_figure([*STUDY, "other"], vocab, hidden=("other",))
    for name, fig in figs.items():
        drawn(fig)
        for ax in fig.axes:
            assert ax.get_visible() and has_data(ax), (name, ax.get_title())
        if name in ("dropout", "forest"):
            continue  # predictions and effects have values for every framework
        texts = legend_texts(fig)
        assert "Other" not in texts, name  # no entry that draws nothing
        assert any(t.startswith("Other: not shown") for t in texts), name
    retention = figs["retention"]
    assert [ax.get_title() for ax in retention.axes] == [
        "By framework", "Humanistic", "Psychodynamic", "Systemic"
    ]  # no panel for the group without a curve  # fmt: skip
    assert len(retention.axes[0].get_lines()) == 3
    for fig in figs.values():
        plt.close(fig)


def test_retention_frameworks_and_panel_grid():
    curves = retention_for([*STUDY, "other"], hidden=("other",), tertiles=True)
    assert retention_frameworks(curves, ["other", *STUDY]) == (STUDY, ["other"])
    # nine groups: one panel each plus the first, four to a row at most, rows even
    names = LONG_NAMES
    vocab = study_vocabulary(names)
    fig = drawn(plot_retention_curves(retention_for(names), retention_for(names, (), True),
                                      vocab=vocab))  # fmt: skip
    assert len(fig.axes) == 9
    rows = sorted({round(ax.get_position().y0, 3) for ax in fig.axes})
    assert len(rows) == 3
    assert_no_overlap(fig)
    assert_legends_inside(fig)


def test_nothing_to_draw_gives_a_placeholder_not_an_empty_axes():
    vocab = study_vocabulary()
    hidden = [*STUDY, "other"]
    rates = rates_for(hidden, hidden)
    for fig in (
        plot_rupture_rate_by_session(rates, vocab=vocab),
        plot_resistance_profile(profile_for(hidden, hidden), vocab=vocab),
        plot_retention_curves(retention_for(hidden, hidden), vocab=vocab),
        plot_forest(effects_for(hidden).iloc[:0], vocab=vocab),
    ):
        assert fig.axes == [] and "Not shown" in fig.texts[1].get_text()
    fig = plot_not_assessed("Rupture rate by session", "no coding of ruptures")
    assert [t.get_text() for t in fig.texts] == [
        "Rupture rate by session",
        "Not assessed: no coding of ruptures",
    ]
    assert fig.axes == []


def test_profile_draws_any_parts_by_their_labels():
    vocab = study_vocabulary()
    fig = drawn(plot_resistance_profile(profile_for(STUDY), vocab=vocab))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Arguing", "Homework not done"]
    assert ax.get_xlabel() == "Resistance"  # the profiled composite's label
    # a label column in the table wins; the old behaviour column still works
    table = profile_for(STUDY).rename(columns={"construct": "behaviour"})
    table["label"] = table["behaviour"].map({PARTS[0]: "Contesting", PARTS[1]: "Homework"})
    fig = plot_resistance_profile(table)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["Contesting", "Homework"]


def write_vocabulary(tmp_path, vocab):
    path = tmp_path / "vocabulary.json"
    path.write_text(vocab.to_json(), encoding="utf-8")
    return str(path)


def test_figure_steps_write_placeholders_for_stages_without_data(tmp_path):
    vocab = study_vocabulary()
    vocab.stages = {
        "ruptures": Stage(False, "no coding of ruptures"),
        "profile": Stage(False, "fewer than two of its parts were coded (a, b)"),
    }
    path = write_vocabulary(tmp_path, vocab)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    for step, inputs, what in [
        (pipeline.figure_rupture_rate_step, {"rates": str(empty)}, "rate"),
        (pipeline.figure_resistance_profile_step, {"profile": str(empty)}, "profile"),
    ]:
        output = SimpleNamespace(pdf=tmp_path / f"{what}.pdf", png=tmp_path / f"{what}.png")
        step(SimpleNamespace(vocabulary=path, **inputs), output)
        assert output.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert output.pdf.read_bytes()[:4] == b"%PDF"
    # the profile's placeholder says why, in words
    fig = plot_not_assessed("Profile of Resistance", vocab.stage("profile").reason)
    assert fig.texts[1].get_text().startswith("Not assessed: fewer than two")


def test_figure_step_draws_with_the_vocabulary(tmp_path):
    vocab = study_vocabulary(["systemic", "humanistic", "psychodynamic"])
    vocab.stages = {"profile": Stage(True, ", ".join(PARTS))}
    path = write_vocabulary(tmp_path, vocab)
    table = tmp_path / "profile.csv"
    profile_for(STUDY).to_csv(table, index=False)
    output = SimpleNamespace(pdf=tmp_path / "p.pdf", png=tmp_path / "p.png")
    pipeline.figure_resistance_profile_step(
        SimpleNamespace(vocabulary=path, profile=str(table)), output
    )
    image = plt.imread(output.png)
    assert image.shape[1] == 1050  # 3.5 in at 300 dpi


# --------------------------------------------------------------------------- profile by form

#: A profiled composite of two forms, as the codebook declares resistance: overt (types
#: a, b) and covert (type c); a third form, realistic (type r), is declared but not coded.
FORM_TYPES = {"overt": ["type_a", "type_b"], "covert": ["type_c"], "realistic": ["type_r"]}


def forms_vocabulary(frameworks=STUDY):
    fmap = FrameworkMap(tuple(frameworks), {}, other="other", unmapped="other")
    coded = {f: t for f, t in FORM_TYPES.items() if f != "realistic"}
    constructs = {t: ConstructInfo(t, f"Type {t[-1]}", "count", "codes")
                  for types in coded.values() for t in types}  # fmt: skip
    constructs |= {f: ConstructInfo(f, f"{f.capitalize()} resistance", "count", "sum_of",
                                    tuple(t)) for f, t in coded.items()}  # fmt: skip
    constructs["resistance"] = ConstructInfo(
        "resistance", "Resistance", "count", "sum_of", tuple(FORM_TYPES)
    )
    return Vocabulary(constructs=constructs, frameworks=framework_infos(fmap), profile="resistance")


def forms_profile(frameworks, hidden=()):
    """A profile table as construct_profile writes it for the coded forms: each form, then
    its types, per framework."""
    rows = []
    entries = [("form", "overt", "overt"), ("type", "overt", "type_a"),
               ("type", "overt", "type_b"), ("form", "covert", "covert"),
               ("type", "covert", "type_c")]  # fmt: skip
    for k, framework in enumerate(frameworks):
        for j, (kind, form, construct) in enumerate(entries):
            v = np.nan if framework in hidden else 0.3 + 0.1 * j + 0.05 * k
            rows.append((framework, kind, form, construct, v, 0.8 * v, 1.2 * v))
    columns = ["framework", "kind", "form", "construct", "per_session", "per_session_ci_low",
               "per_session_ci_high"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def test_profile_by_form_draws_forms_then_types_grouped_under_their_forms():
    vocab = forms_vocabulary()
    table = forms_profile(list(reversed(STUDY)))
    fig = drawn(plot_resistance_profile(table, vocab=vocab))
    forms_ax, types_ax = fig.axes
    # only what was coded: no position for the realistic form or its type
    assert [t.get_text() for t in forms_ax.get_xticklabels()] == [
        "Overt resistance", "Covert resistance"]  # fmt: skip
    assert [t.get_text() for t in types_ax.get_xticklabels()] == ["Type a", "Type b", "Type c"]
    assert forms_ax.get_title(loc="left") == "Resistance: forms"
    assert types_ax.get_title(loc="left") == "Resistance: types within each form"
    # the form's label heads its group of types
    heads = [t.get_text() for t in types_ax.texts]
    assert heads == ["Overt resistance", "Covert resistance"]
    # each framework in its colour, in map order, with each point's CI
    for ax, n in ((forms_ax, 2), (types_ax, 3)):
        containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert [c.get_label() for c in containers] == ["Humanistic", "Psychodynamic", "Systemic"]
        for container, framework in zip(containers, STUDY, strict=True):
            assert to_hex(container.lines[0].get_color()) == OKABE_ITO[STUDY.index(framework)]
            assert len(container.lines[0].get_xdata()) == n
        assert ax.get_ylabel() == "Per attended session"
    # a gap between the forms' groups: type c sits further from type b than b from a
    x = dict(zip(["Type a", "Type b", "Type c"], types_ax.get_xticks(), strict=True))
    assert x["Type c"] - x["Type b"] > x["Type b"] - x["Type a"]
    # the CI of the humanistic overt form (third in the table: 0.3 + 2 * 0.05): 0.8 and
    # 1.2 times the rate
    bars = [c for c in forms_ax.containers if isinstance(c, ErrorbarContainer)][0]
    segments = bars.lines[2][0].get_segments()
    assert bars.lines[0].get_ydata()[0] == pytest.approx(0.4)
    assert segments[0][:, 1].tolist() == pytest.approx([0.32, 0.48])
    assert fig.get_size_inches()[0] == pytest.approx(7.2)
    plt.close(fig)


def test_profile_by_form_leaves_out_a_framework_without_rates():
    vocab = forms_vocabulary()
    fig = drawn(plot_resistance_profile(forms_profile(STUDY, hidden=["systemic"]), vocab=vocab))
    containers = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in containers] == ["Humanistic", "Psychodynamic"]
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("Systemic" in t and "not shown" in t for t in texts)
    plt.close(fig)


# ------------------------------------------------------------------ responses and repair


def response_slopes():
    """Per-framework odds ratios of two responses as contrasts.csv holds them: the first
    response significant (Holm) in the first framework only, the second not estimable in
    the last framework."""
    rows = []
    for r, response in enumerate(["response_calm", "response_reframe"]):
        for k, framework in enumerate(FRAMEWORKS):
            ratio = np.nan if (r, k) == (1, 2) else 2.0 - 0.4 * k + 0.1 * r
            p = 0.001 if (r, k) == (0, 0) else 0.4
            rows.append(("simple_slope", response, framework, ratio, ratio / 1.6, ratio * 1.6,
                         p, "holm", "odds ratio"))  # fmt: skip
    rows.append(("pairwise", "framework", FRAMEWORKS[0], 1.2, 0.9, 1.6, 0.3, "holm", "odds ratio"))
    columns = ["kind", "variable", "level", "ratio", "ratio_ci_low", "ratio_ci_high",
               "p_adjusted", "adjustment", "ratio_kind"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def test_response_odds_rows_labels_colours_and_significance():
    vocab = Vocabulary(
        constructs={
            "response_calm": ConstructInfo("response_calm", "Staying calm", "count", "codes"),
            "response_reframe": ConstructInfo("response_reframe", "Reframing", "count", "codes"),
        },
        frameworks=[FrameworkInfo(f, f.capitalize(), FRAMEWORK_COLORS[f], "o") for f in FRAMEWORKS],
    )
    fig = drawn(plot_response_odds(response_slopes(), vocab=vocab))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Staying calm", "Reframing"]
    assert ax.get_xlabel().startswith("Odds ratio (log scale)\nfilled: Holm-adjusted p < .05")
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in containers] == [f.capitalize() for f in FRAMEWORKS]
    for container, framework in zip(containers, FRAMEWORKS, strict=True):
        assert colour(container.lines[0]) == FRAMEWORK_COLORS[framework].lower()
    # the pairwise row is not drawn: 3 + 3 - 1 (not estimable) points
    assert sum(len(c.lines[0].get_xdata()) for c in containers) == 5
    # open markers (white over the filled ones) for the 4 drawn effects that are not
    # significant; the significant one stays filled
    markers = [c for c in ax.collections if isinstance(c, PathCollection)]
    hollow = np.vstack([c.get_offsets() for c in markers])
    assert all(to_hex(c.get_facecolor()[0]) == "#ffffff" for c in markers)
    assert len(hollow) == 4
    significant = containers[0].lines[0]
    xy = (significant.get_xdata()[0], significant.get_ydata()[0])
    assert xy[0] == pytest.approx(2.0)
    assert not any(np.allclose(point, xy) for point in hollow)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["not estimable"]
    assert_no_overlap(fig)


def test_response_odds_without_slopes_is_a_placeholder():
    fig = plot_response_odds(response_slopes().iloc[-1:])
    assert "no per-framework ratios" in " ".join(t.get_text() for t in fig.findobj(Text))
