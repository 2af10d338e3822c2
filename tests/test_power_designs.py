"""Planned designs for power simulations: sizes and columns by hand, agreement with the
workflow's own data levels (derive.session_table, derive.person_period), and attrition
from simulated events on hand-made event tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes import derive
from resistance_outcomes.models import build_design
from resistance_outcomes.power import (
    DesignError,
    apply_attrition,
    attrition_mask,
    client_design,
    logit,
    per_session_hazard,
    person_period_design,
    session_design,
    simulate_responses,
)

FRAMEWORKS = ["psychodynamic", "cognitive", "humanistic"]  # deliberately not sorted


def test_client_design_sizes_columns_and_reference_level():
    plan = client_design(FRAMEWORKS, 4, 5, planned_sessions=16)
    # 3 frameworks x 4 therapists x 5 clients = 60 clients, one row each
    assert len(plan) == 60
    assert list(plan.columns) == [
        "study",
        "framework",
        "therapist",
        "client",
        "planned_sessions",
    ]
    assert list(plan.framework.cat.categories) == FRAMEWORKS  # given order, first = reference
    assert plan.framework.value_counts()[FRAMEWORKS].tolist() == [20, 20, 20]
    assert plan.therapist.nunique() == 12 and plan.client.nunique() == 60
    assert plan.groupby("therapist").size().eq(5).all()
    assert plan.groupby("therapist").framework.nunique().eq(1).all()  # nested in frameworks
    assert plan.planned_sessions.eq(16).all() and plan.study.eq("planned").all()
    assert plan.therapist.iloc[:6].tolist() == ["T001"] * 5 + ["T002"]
    assert plan.client.iloc[:2].tolist() == ["C0001", "C0002"]
    design = build_design("dropout ~ framework + (1 | therapist)", plan.assign(dropout=0))
    assert design.fixed_names == ["(Intercept)", "frameworkcognitive", "frameworkhumanistic"]


def test_client_design_unequal_therapists_by_framework():
    plan = client_design(["a", "b"], {"b": 3, "a": 1}, 2)
    assert plan.framework.astype(str).tolist() == ["a"] * 2 + ["b"] * 6
    assert plan.therapist.nunique() == 4


def test_session_design_rows_session_c_minutes_and_derive_agreement():
    plan = session_design(FRAMEWORKS, 2, 3, planned_sessions=5, minutes=45)
    assert len(plan) == 3 * 2 * 3 * 5  # 90 sessions
    assert plan.session.tolist()[:6] == [1, 2, 3, 4, 5, 1]
    assert plan.session_c.tolist()[:5] == [-2.0, -1.0, 0.0, 1.0, 2.0]  # session - 3
    assert plan.minutes.eq(45.0).all()
    # session_c as the workflow's session level computes it from the same tables
    clients = client_design(FRAMEWORKS, 2, 3, planned_sessions=5).assign(end_status="completed")
    sessions = plan[["study", "client", "session"]].assign(attended=True, minutes=45.0)
    table = derive.session_table(sessions, clients)
    merged = plan.merge(table, on=["study", "client", "session"], suffixes=("", "_derive"))
    assert len(merged) == len(plan)
    np.testing.assert_array_equal(merged.session_c, merged.session_c_derive)
    formula = "ruptures ~ framework * session_c + offset(log(minutes)) + (1 | therapist/client)"
    design = build_design(formula, plan.assign(ruptures=0))
    assert {b.group: b.n_levels for b in design.blocks} == {"therapist:client": 18, "therapist": 6}
    assert design.fixed_names[-1] == "frameworkhumanistic:session_c"


def test_session_minutes_drawn_from_the_seed_only():
    a = session_design(["a", "b"], 2, 2, 4, minutes=50, minutes_sd=8, seed=3)
    b = session_design(["a", "b"], 2, 2, 4, minutes=50, minutes_sd=8, seed=3)
    c = session_design(["a", "b"], 2, 2, 4, minutes=50, minutes_sd=8, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.minutes.equals(c.minutes)
    expected = np.maximum(np.round(np.random.default_rng(3).normal(50, 8, size=32)), 1.0)
    np.testing.assert_array_equal(a.minutes, expected)
    assert (a.minutes == np.round(a.minutes)).all() and a.minutes.min() >= 1
    with pytest.raises(DesignError, match="give a seed"):
        session_design(["a"], 1, 1, 2, minutes_sd=5)


def test_person_period_design_matches_derive_for_clients_who_stay():
    rows = person_period_design(FRAMEWORKS, 2, 2, planned_sessions=6)
    assert len(rows) == 3 * 2 * 2 * 5  # sessions 1..5 of 6: at risk of leaving early
    assert rows.session.max() == 5
    np.testing.assert_array_equal(rows.time, rows.session)
    np.testing.assert_allclose(rows.log_time, np.log(rows.session))
    clients = client_design(FRAMEWORKS, 2, 2, planned_sessions=6).assign(end_status="completed")
    sessions = session_design(FRAMEWORKS, 2, 2, 6)[["study", "client", "session"]]
    expected = derive.person_period(sessions.assign(attended=True), clients, {"rule": "end_status"})
    key = ["study", "client", "session"]
    pd.testing.assert_frame_equal(
        rows[[*key, "time", "log_time"]].reset_index(drop=True),
        expected[[*key, "time", "log_time"]].reset_index(drop=True),
        check_dtype=False,
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: client_design([], 2, 2), "at least one framework"),
        (lambda: client_design("cognitive", 2, 2), "list of names"),
        (lambda: client_design(["a", "a"], 2, 2), "repeated: \\['a'\\]"),
        (lambda: client_design(["a"], 0, 2), "therapists_per_framework must be .* got 0"),
        (lambda: client_design(["a"], 2, 2.5), "clients_per_therapist .* got 2.5"),
        (lambda: client_design(["a"], True, 2), "whole number, got True"),
        (lambda: client_design(["a", "b"], {"a": 2}, 2), "missing: \\['b'\\]"),
        (lambda: session_design(["a"], 1, 1, 3, minutes=0), "minutes must be a positive"),
        (lambda: person_period_design(["a"], 1, 1, 1), "planned_sessions .* >= 2, got 1"),
    ],
)
def test_design_errors_name_the_argument_and_value(call, message):
    with pytest.raises(DesignError, match=message):
        call()


# --------------------------------------------------------------------------- attrition


def _event_table():
    # two clients, rows deliberately out of session order; client b has two events
    return pd.DataFrame(
        {
            "study": "s",
            "client": ["a", "b", "a", "b", "a", "b", "a", "c"],
            "session": [3, 1, 1, 2, 2, 3, 4, 1],
            "event": [0, 0, 0, 1, 1, 1, 0, 0],
        }
    )


def test_apply_attrition_drops_rows_after_the_first_event():
    table = _event_table()
    kept = apply_attrition(table)
    # a: sessions 1, 2 (event at 2), 3 and 4 dropped; b: 1, 2 (event), 3 dropped; c: 1
    assert kept[["client", "session", "event"]].values.tolist() == [
        ["b", 1, 0],
        ["a", 1, 0],
        ["b", 2, 1],
        ["a", 2, 1],
        ["c", 1, 0],
    ]
    assert kept.groupby("client").event.sum().to_dict() == {"a": 1, "b": 1, "c": 0}


def test_attrition_mask_per_replicate_column():
    table = _event_table()
    events = np.column_stack(
        [
            table.event,
            [0, 0, 0, 0, 0, 0, 0, 0],  # nobody leaves
            [1, 1, 0, 0, 0, 0, 0, 1],  # a leaves at 3, b at 1, c at 1
        ]
    )
    mask = attrition_mask(table, events)
    assert mask.shape == (8, 3)
    assert mask[:, 0].tolist() == [False, True, True, True, True, False, False, True]
    assert mask[:, 1].all()
    assert mask[:, 2].tolist() == [True, True, True, False, True, False, False, True]
    frame = pd.DataFrame(events, index=table.index, columns=["sim_1", "sim_2", "sim_3"])
    np.testing.assert_array_equal(attrition_mask(table, frame), mask)
    np.testing.assert_array_equal(attrition_mask(table, "event"), mask[:, 0])


def test_attrition_of_simulated_hazard_events():
    rows = person_period_design(["a", "b"], 3, 4, planned_sessions=8)
    truth = {"fixed": {"(Intercept)": -1.0, "frameworkb": 0.0}, "sd": {"therapist": 0.5}}
    sims = simulate_responses("event ~ framework + (1 | therapist)", rows, "binomial", truth, 3)
    mask = attrition_mask(rows, sims)
    for j, column in enumerate(sims.columns):
        kept = apply_attrition(rows, sims[column].to_numpy())
        assert len(kept) == mask[:, j].sum()
        per_client = kept.groupby("client").event
        assert per_client.sum().le(1).all()  # at most one event, and it is the last row
        last = kept.groupby("client").tail(1)
        assert kept.event.sum() == last.event.sum()


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([0, 1, 2, 0, 0, 0, 0, 0], "0 or 1; row 2 \\(index 2\\) has 2"),
        ([0, 1], "events have 2 rows but the data have 8"),
        ("dropout", "no event column 'dropout'"),
        (pd.Series([0] * 8, index=range(10, 18)), "index differs"),
    ],
)
def test_attrition_errors(events, message):
    with pytest.raises(DesignError, match=message):
        attrition_mask(_event_table(), events)


def test_attrition_needs_its_columns_and_one_replicate():
    with pytest.raises(DesignError, match="needs column\\(s\\) \\['session'\\]"):
        attrition_mask(_event_table().drop(columns="session"), "event")
    with pytest.raises(DesignError, match="one replicate"):
        apply_attrition(_event_table(), np.zeros((8, 2)))


def test_dropout_from_a_stated_hazard_through_attrition():
    # 1 - (1 - h)^(K - 1) of the clients leave: K - 1 = 11 person-period rows of 12 planned
    # sessions, h = per_session_hazard(0.197, 11) so 19.7% leave (binomial SE over clients)
    rows = person_period_design(["a", "b"], 50, 20, planned_sessions=12)
    hazard = per_session_hazard(0.197, 11)
    truth = {"fixed": {"(Intercept)": logit(hazard), "frameworkb": 0.0}, "sd": {"therapist": 0.0}}
    sims = simulate_responses("event ~ framework + (1 | therapist)", rows, "binomial", truth, 1, 7)
    kept = apply_attrition(rows, sims["sim_1"].to_numpy())
    clients = kept.groupby("client").event.max()
    n = len(clients)
    assert n == 2000
    se = np.sqrt(0.197 * 0.803 / n)
    assert abs(clients.mean() - 0.197) < 4 * se
    # the rows a client keeps: geometric up to 11, mean sum_{t=1..11} (1 - h)^(t - 1)
    expected_rows = sum((1 - hazard) ** (t - 1) for t in range(1, 12))
    per_client = kept.groupby("client").size()
    assert abs(per_client.mean() - expected_rows) < 4 * per_client.std(ddof=1) / np.sqrt(n)
