"""Tests for resistance_outcomes.figures: structure, colours, labels, layout and file output."""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer

from resistance_outcomes.figures import (
    FRAMEWORK_COLORS,
    STYLE,
    framework_colors,
    plot_agreement,
    plot_resistance_profile,
    plot_rupture_rate_by_session,
    save_figure,
)

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]


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
    df.loc[len(df)] = ("cognitive", 11, np.nan, np.nan, np.nan, np.nan, True)
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
    # the suppressed cognitive session 11 is a gap, not a point
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
    fig = plot_rupture_rate_by_session(pd.read_csv(path))
    # framework order is the reporting order, not the order in the file
    assert [line.get_label() for line in fig.axes[0].get_lines()] == [
        "Psychoanalytic",
        "Behavioral",
        "Cognitive",
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
    assert ax.get_ylabel() == "Behaviours per session"
    assert ax.get_xlabel() == "Resistance behaviour"
    assert_readable_layout(fig)
    hour = plot_resistance_profile(profile_df, per="hour")
    assert hour.axes[0].get_ylabel() == "Behaviours per 60 min"
    with pytest.raises(ValueError, match="per must be 'session' or 'hour'"):
        plot_resistance_profile(profile_df, per="minute")


def test_other_groups_get_distinct_colours():
    colours = framework_colors(["psychoanalytic", "cognitive", "integrative", "systemic"])
    assert colours["psychoanalytic"] == "#0072B2"
    assert len(set(colours.values())) == 4
    assert framework_colors(["other"])["other"] == "#999999"


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
    fig = drawn(plot_agreement(table))
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
