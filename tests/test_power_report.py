"""Power analyses of the workflow: a pilot's frame resampled to a design point (sizes,
distinct units, rows carried whole, seeds), the fan-out (design points, chunks, seeds), and
the report (aggregation equal to power_simulation on the same rows and seed, whatever the
chunks; the table and sentences checked by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.power import DesignError, power_simulation, resample_pilot
from resistance_outcomes.power import report as pr


def pilot() -> pd.DataFrame:
    # framework a: therapists t1 (2 clients, 3 rows each), t2 (1 client); b: t3 (2 clients)
    rows = []
    for fw, t, c in [
        ("a", "t1", "c1"),
        ("a", "t1", "c2"),
        ("a", "t2", "c3"),
        ("b", "t3", "c4"),
        ("b", "t3", "c5"),
    ]:
        rows += [
            {"framework": fw, "therapist": t, "client": c, "session": s, "y": f"{c}-{s}"}
            for s in (1, 2, 3)
        ]
    frame = pd.DataFrame(rows)
    frame["framework"] = pd.Categorical(frame["framework"], categories=["b", "a"])
    return frame


def test_resample_sizes_distinct_units_and_whole_clients():
    plan = resample_pilot(pilot(), 5, seed=3)
    per = plan.groupby("framework", observed=True)["therapist"].nunique()
    assert per.to_dict() == {"b": 5, "a": 5}  # categories kept, in their order
    assert list(plan["framework"].cat.categories) == ["b", "a"]
    # every resampled therapist keeps all its clients, each with all 3 rows
    assert (plan.groupby("client").size() == 3).all()
    # therapists and clients are distinct units: no client label under two therapists
    assert plan.groupby("client")["therapist"].nunique().max() == 1
    # the rows are the pilot's rows (the response text names the original client)
    original = plan["client"].str.split("_r").str[0]
    assert (plan["y"].str.split("-").str[0] == original).all()
    # within framework b only t3 exists: 5 copies of its 2 clients = 10 clients
    assert plan[plan.framework == "b"]["client"].nunique() == 10


def test_resample_clients_per_therapist_and_seeds():
    plan = resample_pilot(pilot(), 2, clients_per_therapist=4, seed=1)
    assert plan.groupby("therapist")["client"].nunique().tolist() == [4, 4, 4, 4]
    assert len(plan) == 2 * 2 * 4 * 3
    again = resample_pilot(pilot(), 2, clients_per_therapist=4, seed=1)
    pd.testing.assert_frame_equal(plan, again)
    other = resample_pilot(pilot(), 2, clients_per_therapist=4, seed=2)
    assert not plan["y"].equals(other["y"])


def test_resample_refuses_bad_input():
    with pytest.raises(DesignError, match="no column"):
        resample_pilot(pilot().drop(columns="therapist"), 2)
    with pytest.raises(DesignError, match="therapists_per_framework"):
        resample_pilot(pilot(), 0)


def test_design_points_chunks_and_seeds():
    points = pr.design_points(
        "x", {"vary": {"therapists_per_framework": [6, 10], "clients_per_therapist": [2, 3]}}
    )
    assert points.values.tolist() == [[0, 6, 2], [1, 6, 3], [2, 10, 2], [3, 10, 3]]
    assert pr.chunk_ranges(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert pr.point_seed(5, 1) != pr.point_seed(5, 1, 1)
    with pytest.raises(pr.PowerConfigError, match="not a design size"):
        pr.design_points("x", {"vary": {"sessions": [1]}})


ENTRY = {
    "design": {"shape": "client", "frameworks": ["f1", "f2"], "clients_per_therapist": 4},
    "vary": {"therapists_per_framework": [3, 5]},
}
FORMULA = "y ~ framework + (1 | therapist)"
TRUTH = {"fixed": {"(Intercept)": 0.0, "frameworkf2": 0.8}, "sd": {"therapist": 0.3}, "sigma": 1.0}


def test_chunked_aggregate_equals_power_simulation():
    points = pr.design_points("x", ENTRY)
    parts = []
    for _, point in points.iterrows():
        rows = pr.point_rows("x", ENTRY, point, seed=9)
        seed = pr.point_seed(9, point["point"])
        for start, stop in pr.chunk_ranges(6, 4):  # chunks of 4 and 2
            chunk = pr.power_chunk(
                FORMULA, rows, "gaussian", TRUTH, "frameworkf2", start, stop, seed
            )
            parts.append(chunk.assign(point=point["point"]))
    power = pr.aggregate_power(pd.concat(parts), points, 0.05)
    for _, point in points.iterrows():
        rows = pr.point_rows("x", ENTRY, point, seed=9)
        direct = power_simulation(
            FORMULA,
            rows,
            "gaussian",
            TRUTH,
            "frameworkf2",
            replicates=6,
            seed=pr.point_seed(9, point["point"]),
        )
        mine = (
            power[power.point == point["point"]]
            .drop(columns=["point", "therapists_per_framework"])
            .reset_index(drop=True)
        )
        pd.testing.assert_frame_equal(mine, direct)


def test_table_and_sentences_by_hand():
    power = pd.DataFrame(
        {
            "point": [0, 1, 0, 1],
            "therapists_per_framework": [6, 15, 6, 15],
            "term": ["cognitive - behavioral"] * 2 + ["x"] * 2,
            "kind": ["pairwise"] * 2 + ["coefficient"] * 2,
            "power": [0.5, 0.83, 0.2, 0.4],
            "power_ci_low": [0.4, 0.8, 0.1, 0.3],
            "power_ci_high": [0.6, 0.85, 0.3, 0.5],
            "replicates": 200,
            "failed": [0, 1, 0, 0],
            "singular": 0,
            "coverage": 0.95,
        }
    )
    labels = {"cognitive": "Cognitive", "behavioral": "Behavioral"}
    sentences = pr.power_sentences(power, labels)
    # 1 failed fit of 200 = 0.5%; the smallest size reaching .80 is 15
    assert sentences[0] == (
        "With 15 therapists per framework, power to detect the difference between cognitive "
        "and behavioral therapy was .83, 95% CI [.80, .85], 200 replicates, 0.5% of fits failed."
    )
    slope = power.assign(term="x in cognitive", kind="simple_slope").iloc[:2]
    assert (
        "power to detect the slope of x in cognitive therapy was .83"
        in (pr.power_sentences(slope, labels)[0])
    )
    assert sentences[1].endswith("80% power was not reached at the sizes tried.")
    assert sentences[1].startswith("With 15 therapists per framework")
    table = pr.power_table(power, labels)
    assert table.columns.tolist() == [
        "Therapists per framework",
        "Effect",
        "Power",
        "95% CI",
        "Replicates",
        "Failed fits",
        "Singular fits",
        "Coverage",
    ]
    assert table.iloc[1]["95% CI"] == "[.80, .85]"
    fig = pr.power_figure(power, "t", labels)
    assert len(fig.axes[0].lines) >= 3  # the curves, the 80% line, the marked size
    assert np.isclose(fig.axes[0].lines[-1].get_ydata()[0], 0.8)


def test_per_framework_curves_take_the_frameworks_colours():
    power = pd.DataFrame(
        {
            "point": [0, 1, 0, 1],
            "therapists_per_framework": [6, 15, 6, 15],
            "term": ["x in cognitive"] * 2 + ["a - b"] * 2,
            "power": [0.5, 0.83, 0.2, 0.4],
            "power_ci_low": [0.4, 0.8, 0.1, 0.3],
            "power_ci_high": [0.6, 0.85, 0.3, 0.5],
        }
    )
    fig = pr.power_figure(power, colors={"cognitive": "#009E73"})
    lines = fig.axes[0].get_lines()
    assert lines[0].get_color() == "#009E73"  # the vocabulary's colour of cognitive
    assert "#009E73" not in [line.get_color() for line in lines[2:] if line.get_marker() == "o"]
