"""Tests for resistance_outcomes.derive: every expected value below is worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.derive import (
    ConfigError,
    DataError,
    client_table,
    constructs_present,
    dropout_indicators,
    dropout_labels,
    infer_constructs,
    person_period,
    profile_forms,
    profile_long,
    session_table,
    within_between,
)
from resistance_outcomes.vocabulary import ConstructInfo, Vocabulary

NA = pd.NA

# client: (therapist, framework, planned_sessions, end_status, attendance by session)
HAND_CASE = {
    "C1": ("T1", "psychoanalytic", 4, "completed", "1111"),
    "C2": ("T1", "psychoanalytic", 6, "dropout", "110"),
    "C3": ("T2", "behavioral", 8, "referred", "111"),
    "C4": ("T2", "behavioral", 10, "ongoing", "11"),
    "C5": ("T3", "cognitive", 4, "ongoing", "11111"),
    "C6": ("T3", "cognitive", 3, "completed", "111"),
    "C7": ("T3", "cognitive", 5, "completed", "10110"),
    "C8": ("T4", "cognitive", 12, "dropout", "1111110"),
    "C9": ("T4", "behavioral", 8, "dropout", ""),
}

DEFINITIONS = {
    "end_status": {"rule": "end_status", "dropout": ["dropout"]},
    "with_referred": {"rule": "end_status", "dropout": ["dropout", "referred"]},
    "fewer_than_4": {"rule": "min_attended", "sessions": 4},
    "missed_last": {"rule": "missed_last_scheduled"},
    "protocol": {"rule": "protocol_incomplete"},
}

# Expected by hand from HAND_CASE, columns in DEFINITIONS order.
# C4 ongoing with 2 < 4 attended: NA everywhere. C5 ongoing but already 5 >= 4 and >= planned 4:
# 0 for fewer_than_4 and protocol, NA for the others. C6 completed a 3-session plan: dropout
# under fewer_than_4 only. C7 completed but missed sessions 2 and 5 (3 of 5 attended).
# C9 never attended: no last scheduled session to judge (NA).
EXPECTED_DROPOUT = {
    "C1": (0, 0, 0, 0, 0),
    "C2": (1, 1, 1, 1, 1),
    "C3": (0, 1, 1, 0, 1),
    "C4": (NA, NA, NA, NA, NA),
    "C5": (NA, NA, 0, NA, 0),
    "C6": (0, 0, 1, 0, 0),
    "C7": (0, 0, 1, 1, 1),
    "C8": (1, 1, 0, 1, 1),
    "C9": (1, 1, 1, NA, 1),
}


def make_hand_case(case=HAND_CASE):
    """Canonical clients and sessions; attended sessions get ruptures = session % 3 and
    repaired = 1 when ruptures == 2 (so unrepaired = 1, 1, 0 for sessions 1, 2, 3, ...)."""
    clients = pd.DataFrame(
        [
            {
                "study": "s1",
                "client": c,
                "therapist": t,
                "framework": f,
                "planned_sessions": p,
                "end_status": e,
                "baseline_severity": 10.0 + i,
            }
            for i, (c, (t, f, p, e, _)) in enumerate(case.items())
        ]
    )
    clients["framework"] = pd.Categorical(
        clients["framework"], categories=["psychoanalytic", "behavioral", "cognitive"]
    )
    rows = []
    for client, (*_, pattern) in case.items():
        for session, flag in enumerate(pattern, start=1):
            attended = flag == "1"
            ruptures = session % 3 if attended else NA
            rows.append(
                {
                    "study": "s1",
                    "client": client,
                    "session": session,
                    "attended": attended,
                    "minutes": 50.0 if attended else np.nan,
                    "ruptures": ruptures,
                    "repaired": (int(ruptures == 2) if attended else NA),
                }
            )
    sessions = pd.DataFrame(rows)
    sessions["ruptures"] = sessions["ruptures"].astype("Int64")
    sessions["repaired"] = sessions["repaired"].astype("Int64")
    return clients, sessions


# --------------------------------------------------------------------------- dropout


def test_dropout_indicators_match_hand_classification():
    clients, sessions = make_hand_case()
    result = dropout_indicators(clients, sessions, DEFINITIONS)
    expected = pd.DataFrame(
        [(c, *v) for c, v in EXPECTED_DROPOUT.items()],
        columns=["client", *(f"dropout_{name}" for name in DEFINITIONS)],
    )
    assert list(result.columns) == ["study", "client", *expected.columns[1:]]
    assert result["client"].tolist() == expected["client"].tolist()
    for column in expected.columns[1:]:
        assert result[column].dtype == "Int64"
        pd.testing.assert_series_equal(
            result[column], expected[column].astype("Int64"), check_names=False
        )


def test_dropout_indicators_default_end_status_list():
    clients, sessions = make_hand_case()
    result = dropout_indicators(clients, sessions, {"judged": {"rule": "end_status"}})
    assert result["dropout_judged"].tolist() == [0, 1, 0, NA, NA, 0, 0, 1, 1]


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ({"rule": "three_strikes"}, "unknown rule 'three_strikes'"),
        ({"rule": "min_attended"}, "whole number >= 1; got None"),
        ({"rule": "min_attended", "sessions": 0}, "got 0"),
        ({"rule": "min_attended", "sessions": "four"}, "got 'four'"),
        ({"rule": "min_attended", "sessions": True}, "got True"),
        ({"rule": "min_attended", "session": 4}, "unknown parameter(s) session"),
        ({"rule": "end_status", "dropout": ["quit"]}, "got ['quit']"),
        ({"rule": "end_status", "dropout": ["ongoing"]}, "ongoing clients are never"),
        ({"rule": "end_status", "dropout": "dropout"}, "non-empty list"),
        ({"sessions": 4}, "'rule' key"),
        ({"rule": "end_status", "description": ""}, "'description' must be a short text"),
    ],
)
def test_bad_definition_raises_config_error_naming_it(definition, fragment):
    clients, sessions = make_hand_case()
    with pytest.raises(ConfigError) as error:
        dropout_indicators(clients, sessions, {"my_rule": definition})
    assert "dropout definition 'my_rule'" in str(error.value)
    assert fragment in str(error.value)


def test_definition_name_must_make_a_column_name():
    clients, sessions = make_hand_case()
    with pytest.raises(ConfigError, match="letters, digits and underscores"):
        dropout_indicators(clients, sessions, {"fewer than 4": {"rule": "end_status"}})


# --------------------------------------------------------------------------- input errors


def test_unknown_end_status_is_named():
    clients, sessions = make_hand_case()
    clients.loc[2, "end_status"] = "finished"
    with pytest.raises(DataError) as error:
        dropout_indicators(clients, sessions, DEFINITIONS)
    message = str(error.value)
    assert "clients table" in message and "'end_status'" in message
    assert "'finished'" in message and "client 'C3'" in message


def test_session_of_unknown_client_is_named():
    clients, sessions = make_hand_case()
    sessions.loc[len(sessions)] = {
        "study": "s1",
        "client": "C99",
        "session": 1,
        "attended": True,
        "minutes": 50.0,
    }
    with pytest.raises(DataError, match="client 'C99', session '1'.*Add the client"):
        session_table(sessions, clients)


def test_duplicate_session_key_and_missing_attended_are_named():
    clients, sessions = make_hand_case()
    duplicated = pd.concat([sessions, sessions.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match="duplicated key.*client 'C1', session '4'"):
        client_table(duplicated, clients)
    sessions["attended"] = sessions["attended"].astype("boolean")
    sessions.loc[5, "attended"] = NA
    with pytest.raises(DataError, match="empty 'attended'.*client 'C2', session '2'"):
        client_table(sessions, clients)


def test_non_boolean_attended_is_named():
    clients, sessions = make_hand_case()
    sessions["attended"] = sessions["attended"].map({True: "yes", False: "no"})
    with pytest.raises(DataError, match="'attended' has value 'yes' at study 's1', client 'C1'"):
        dropout_indicators(clients, sessions, DEFINITIONS)


def test_missing_column_lists_what_is_there():
    clients, sessions = make_hand_case()
    with pytest.raises(DataError, match="sessions table: missing column\\(s\\) attended"):
        client_table(sessions.drop(columns="attended"), clients)


# --------------------------------------------------------------------------- within/between


def test_within_between_hand_case():
    df = pd.DataFrame(
        {
            "client": ["A", "A", "A", "A", "B", "B", "C"],
            "x": [1.0, 3.0, np.nan, 5.0, 2.0, 2.0, np.nan],
            "done": pd.array([True, False, NA, True, NA, False, NA], dtype="boolean"),
        }
    )
    out = within_between(df, ["x", "done"])
    # x: client means A = (1 + 3 + 5) / 3 = 3, B = 2, C none; grand mean (3 + 2) / 2 = 2.5
    np.testing.assert_allclose(out["x_within"], [-2, 0, np.nan, 2, 0, 0, np.nan])
    np.testing.assert_allclose(out["x_between"], [0.5, 0.5, 0.5, 0.5, -0.5, -0.5, np.nan])
    # done as 0/1: A = 2/3, B = 0; grand mean 1/3
    np.testing.assert_allclose(
        out["done_within"], [1 / 3, -2 / 3, np.nan, 1 / 3, np.nan, 0, np.nan]
    )
    np.testing.assert_allclose(out["done_between"], [1 / 3] * 4 + [-1 / 3] * 2 + [np.nan])
    assert "x_within" not in df  # input untouched


def test_within_between_uses_both_keys_when_ids_repeat_across_studies():
    df = pd.DataFrame({"study": ["a", "a", "b", "b"], "client": "C1", "x": [0.0, 2.0, 4.0, 8.0]})
    out = within_between(df, ["x"], cluster=["study", "client"])
    # study a: mean 1; study b: mean 6; grand mean 3.5
    np.testing.assert_allclose(out["x_between"], [-2.5, -2.5, 2.5, 2.5])
    np.testing.assert_allclose(out["x_within"], [-1, 1, -2, 2])


# --------------------------------------------------------------------------- session table


def test_session_table_joins_clients_and_centres_session():
    clients, sessions = make_hand_case()
    table = session_table(sessions, clients)
    assert len(table) == len(sessions)
    assert {"therapist", "framework", "baseline_severity", "unrepaired"} <= set(table.columns)
    # attended session numbers sum to 10+3+6+3+15+6+8+21 = 72 over 28 sessions: mean 18/7
    np.testing.assert_allclose(table["session_c"], table["session"] - 18 / 7)
    c8 = table[table["client"] == "C8"]
    assert c8["therapist"].unique().tolist() == ["T4"]
    # C8 attended 1..6: ruptures 1,2,0,1,2,0 (mean 1), session 7 missed
    np.testing.assert_allclose(c8["ruptures_within"], [0, 1, -1, 0, 1, -1, np.nan])
    np.testing.assert_allclose(c8["unrepaired"], [1, 1, 0, 1, 1, 0, np.nan])


# --------------------------------------------------------------------------- client table


def make_rates_case():
    clients = pd.DataFrame(
        {
            "study": "s1",
            "client": ["C1", "C2", "C3", "C4"],
            "therapist": ["T1", "T1", "T2", "T2"],
            "framework": ["cognitive", "cognitive", "behavioral", "behavioral"],
            "treatment_label": ["CBT", "CBT", "ERP", "ERP"],
            "planned_sessions": [3, 2, 1, 2],
            "end_status": ["completed", "completed", "dropout", "completed"],
            "baseline_severity": [12.0, 15.0, 20.0, 9.0],
        }
    )
    n = np.nan
    sessions = pd.DataFrame(
        {
            "study": "s1",
            "client": ["C1", "C1", "C1", "C2", "C2", "C3", "C4", "C4"],
            "session": [1, 2, 3, 1, 2, 1, 1, 2],
            "attended": [True, True, False, True, True, False, True, True],
            "minutes": [50.0, 40.0, n, 30.0, 30.0, n, 60.0, 30.0],
            "ruptures": [2, 1, n, 0, 0, n, n, 4],
            "repaired": [1, 1, n, 0, 0, n, n, 1],
            "rupture_withdrawal": [1, 1, n, 0, 0, n, n, 3],
            "rupture_confrontation": [1, 0, n, 0, 0, n, n, 1],
            "resistance_arguing": [0, 2, n, 0, 1, n, 0, 0],
            "resistance": [1, 3, n, 0, 1, n, 0, 0],
            "homework_done": pd.array([True, NA, NA, False, True, NA, NA, NA], dtype="boolean"),
            "alliance": [5.0, 6.0, n, 4.0, n, n, 6.5, 5.5],
        }
    )
    return clients, sessions


def test_client_table_rates_by_hand():
    clients, sessions = make_rates_case()
    table = client_table(sessions, clients, DEFINITIONS, primary="end_status")
    by = table.set_index("client")
    # C1: attended 2 of 3, 90 minutes, ruptures 2 + 1 = 3, repaired 2
    c1 = by.loc["C1"]
    assert (c1["sessions_scheduled"], c1["sessions_attended"]) == (3, 2)
    assert c1["attendance_rate"] == pytest.approx(2 / 3)
    assert c1["minutes_total"] == 90.0
    assert c1["ruptures_total"] == 3
    assert c1["rupture_rate"] == pytest.approx(3 / 2)
    assert c1["rupture_rate_hour"] == pytest.approx(3 / 90 * 60)
    assert c1["repaired_total"] == 2
    assert c1["repair_rate"] == pytest.approx(2 / 3)
    assert c1["unrepaired_rate"] == pytest.approx(1 / 2)
    assert (c1["rupture_withdrawal_total"], c1["rupture_confrontation_total"]) == (2, 1)
    assert c1["resistance_arguing_rate"] == pytest.approx(2 / 2)
    assert c1["resistance_arguing_rate_hour"] == pytest.approx(2 / 90 * 60)
    assert c1["resistance_total"] == 4
    assert c1["homework_rate"] == 1.0  # homework set once, done
    assert c1["alliance_mean"] == pytest.approx(5.5)
    assert c1["baseline_severity"] == 12.0 and c1["treatment_label"] == "CBT"
    # C2: no ruptures -> repair rate NaN by default; homework 1 of 2
    assert by.loc["C2", "rupture_rate"] == 0.0
    assert np.isnan(by.loc["C2", "repair_rate"])
    assert by.loc["C2", "homework_rate"] == 0.5
    # C3: attended nothing: totals 0, rates NaN
    assert by.loc["C3", "ruptures_total"] == 0 and by.loc["C3", "minutes_total"] == 0
    assert np.isnan(by.loc["C3", "rupture_rate"]) and np.isnan(by.loc["C3", "repair_rate"])
    assert by.loc["C3", "attendance_rate"] == 0.0
    # C4: session 1 attended but not coded: rates use the coded session only (4 in 30 min)
    assert by.loc["C4", "rupture_rate"] == 4.0
    assert by.loc["C4", "rupture_rate_hour"] == pytest.approx(8.0)
    assert by.loc["C4", "resistance_arguing_rate_hour"] == 0.0  # 0 in 90 coded minutes
    assert by.loc["C4", "repair_rate"] == pytest.approx(1 / 4)
    # between: rupture rates 1.5, 0, NaN, 4 -> mean 5.5 / 3
    assert c1["rupture_rate_between"] == pytest.approx(1.5 - 5.5 / 3)
    # repair rates 2/3 and 1/4 -> mean 11/24
    assert c1["repair_rate_between"] == pytest.approx(2 / 3 - 11 / 24)
    # dropout columns; primary copied
    assert by["dropout_end_status"].tolist() == [0, 0, 1, 0]
    assert by["dropout_fewer_than_4"].tolist() == [1, 1, 1, 1]
    assert by["dropout"].tolist() == by["dropout_end_status"].tolist()


@pytest.mark.parametrize(("rule", "value"), [("nan", np.nan), ("zero", 0.0), ("one", 1.0)])
def test_repair_rate_rule_for_clients_without_ruptures(rule, value):
    clients, sessions = make_rates_case()
    by = client_table(sessions, clients, repair_no_ruptures=rule).set_index("client")
    np.testing.assert_equal(by.loc["C2", "repair_rate"], value)
    assert np.isnan(by.loc["C3", "repair_rate"])  # attended nothing: never imputed
    assert by.loc["C1", "repair_rate"] == pytest.approx(2 / 3)


def test_repair_rate_exclude_drops_rows_with_a_warning():
    clients, sessions = make_rates_case()
    with pytest.warns(UserWarning, match="1 client\\(s\\) without ruptures were excluded"):
        table = client_table(sessions, clients, repair_no_ruptures="exclude")
    assert table["client"].tolist() == ["C1", "C3", "C4"]


def test_client_table_config_errors():
    clients, sessions = make_rates_case()
    with pytest.raises(ConfigError, match="repair_no_ruptures: unknown value 'drop'"):
        client_table(sessions, clients, repair_no_ruptures="drop")
    with pytest.raises(ConfigError, match="primary 'judged' is not among"):
        client_table(sessions, clients, DEFINITIONS, primary="judged")


# --------------------------------------------------------------------------- person-period


def test_person_period_rows_and_events_by_hand():
    clients, sessions = make_hand_case()
    pp = person_period(sessions, clients, DEFINITIONS["end_status"])
    rows = pp.groupby("client")["time"].apply(list).to_dict()
    # completers/referred/ongoing: attended sessions before the planned last one;
    # dropouts: every attended session; C9 attended nothing
    assert rows == {
        "C1": [1, 2, 3],
        "C2": [1, 2],
        "C3": [1, 2, 3],
        "C4": [1, 2],
        "C5": [1, 2, 3],
        "C6": [1, 2],
        "C7": [1, 3, 4],
        "C8": [1, 2, 3, 4, 5, 6],
    }
    events = pp.loc[pp["event"] == 1, ["client", "time"]].values.tolist()
    assert events == [["C2", 2], ["C8", 6]]
    assert {"therapist", "framework", "log_time"} <= set(pp.columns)
    np.testing.assert_allclose(pp["log_time"], np.log(pp["time"]))
    # ruptures = session % 3; client means over person-period rows:
    # C1 1, C2 1.5, C3 1, C4 1.5, C5 1, C6 1.5, C7 (1 + 0 + 1) / 3, C8 1
    grand = (1 + 1.5 + 1 + 1.5 + 1 + 1.5 + 2 / 3 + 1) / 8
    c7 = pp[pp["client"] == "C7"]
    np.testing.assert_allclose(c7["ruptures_between"], 2 / 3 - grand)
    np.testing.assert_allclose(c7["ruptures_within"], [1 / 3, -2 / 3, 1 / 3])
    np.testing.assert_allclose(c7["unrepaired"], [1, 0, 1])


def test_person_period_follows_the_definition():
    clients, sessions = make_hand_case()
    pp = person_period(sessions, clients, DEFINITIONS["missed_last"], name="missed_last")
    events = pp.loc[pp["event"] == 1, ["client", "time"]].values.tolist()
    # missed_last: C2, C7, C8 are dropouts (C7 after its last attended session, 4)
    assert events == [["C2", 2], ["C7", 4], ["C8", 6]]
    assert pp.loc[pp["client"] == "C5", "event"].tolist() == [0, 0, 0]  # ongoing: censored


def test_person_period_bad_definition_names_it():
    clients, sessions = make_hand_case()
    with pytest.raises(ConfigError, match="dropout definition 'quick'"):
        person_period(sessions, clients, {"rule": "min_attended"}, name="quick")


# --------------------------------------------------------------------------- dropout labels


def test_dropout_labels_come_from_the_description_or_the_rule_never_the_key():
    labels = dropout_labels(
        {
            "judged": {"rule": "end_status", "description": "judged by the therapist"},
            "fewer_than_4": {"rule": "min_attended", "sessions": 4},
            "one": {"rule": "min_attended", "sessions": 1},
            "missed_last": {"rule": "missed_last_scheduled"},
            "protocol": {"rule": "protocol_incomplete"},
            "status": {"rule": "end_status", "dropout": ["dropout", "referred"]},
        }
    )
    assert labels == {
        "dropout": "Dropout",
        "dropout_judged": "Dropout: judged by the therapist",
        "dropout_fewer_than_4": "Dropout: fewer than 4 sessions attended",
        "dropout_one": "Dropout: no session attended",
        "dropout_missed_last": "Dropout: last scheduled session not attended",
        "dropout_protocol": "Dropout: fewer sessions attended than planned",
        "dropout_status": "Dropout: end status dropout or referred",
    }


def test_a_description_does_not_change_the_classification():
    clients, sessions = make_hand_case()
    plain = dropout_indicators(clients, sessions, {"d": {"rule": "missed_last_scheduled"}})
    described = dropout_indicators(
        clients, sessions, {"d": {"rule": "missed_last_scheduled", "description": "missed"}}
    )
    pd.testing.assert_frame_equal(plain, described)


# ----------------------------------------------------- declared constructs flow everywhere

#: A lab's own study: sustain talk and homework non-compliance as session columns (counts),
#: an empathy rating, ruptures given by kind; no resistance coding, no repair coding.
LAB_VOCABULARY = Vocabulary(
    constructs={
        "sustain_talk": ConstructInfo("sustain_talk", "Sustain talk", "count", "column"),
        "homework_noncompliance": ConstructInfo(
            "homework_noncompliance", "Homework not done", "count", "column", stem="hw_missed"
        ),
        "empathy": ConstructInfo("empathy", "Empathy", "rating", "column"),
    }
)


def make_lab_case():
    clients = pd.DataFrame(
        {
            "study": "lab",
            "client": ["A", "B", "C"],
            "therapist": ["T1", "T1", "T2"],
            "framework": ["humanistic", "systemic", "systemic"],
            "planned_sessions": [3, 3, 2],
            "end_status": ["completed", "dropout", "completed"],
        }
    )
    sessions = pd.DataFrame(
        {
            "study": "lab",
            "client": ["A", "A", "A", "B", "B", "B", "C", "C"],
            "session": [1, 2, 3, 1, 2, 3, 1, 2],
            "attended": [True, True, False, True, True, False, True, True],
            "minutes": [50.0, 40.0, None, 60.0, 30.0, None, 45.0, 45.0],
            "sustain_talk": pd.array([3, 1, None, 0, 2, None, 4, None], dtype="Int64"),
            "homework_noncompliance": pd.array([1, 0, None, 1, 1, None, 0, 0], dtype="Int64"),
            "empathy": [4.5, 5.0, None, 3.0, None, None, 6.0, 5.5],
        }
    )
    return clients, sessions


def pandas_split(sessions, column):
    """within/between by plain groupby: client mean over sessions with a value."""
    values = sessions[column].astype("float64")
    means = values.groupby(sessions["client"]).mean()
    client_mean = sessions["client"].map(means)
    return values - client_mean, client_mean - means.mean()


def test_declared_constructs_get_session_splits():
    clients, sessions = make_lab_case()
    table = session_table(sessions, clients, constructs=LAB_VOCABULARY)
    for column in ["sustain_talk", "homework_noncompliance", "empathy"]:
        within, between = pandas_split(sessions, column)
        np.testing.assert_allclose(table[f"{column}_within"], within.to_numpy())
        np.testing.assert_allclose(table[f"{column}_between"], between.to_numpy())
    # sustain talk by hand: client means A 2, B 1, C 4; grand mean 7/3
    assert table["sustain_talk_between"].tolist()[:2] == pytest.approx([2 - 7 / 3] * 2)
    assert table["sustain_talk_within"].tolist()[:2] == pytest.approx([1.0, -1.0])


def test_declared_constructs_get_client_totals_rates_and_means():
    clients, sessions = make_lab_case()
    table = client_table(sessions, clients, constructs=LAB_VOCABULARY).set_index("client")
    done = sessions[sessions["attended"]]
    for column, stem in [("sustain_talk", "sustain_talk"), ("homework_noncompliance", "hw_missed")]:
        values = done[column].astype("float64")
        coded = done[values.notna()]
        total = values.groupby(done["client"]).sum()
        rate = values.groupby(done["client"]).mean()
        hours = coded["minutes"].groupby(coded["client"]).sum() / 60
        per_hour = coded[column].astype(float).groupby(coded["client"]).sum() / hours
        assert table[f"{column}_total"].to_dict() == pytest.approx(total.to_dict())
        assert table[f"{stem}_rate"].to_dict() == pytest.approx(rate.to_dict())
        assert table[f"{stem}_rate_hour"].to_dict() == pytest.approx(per_hour.to_dict())
        assert table[f"{stem}_rate_between"].to_dict() == pytest.approx(
            (rate - rate.mean()).to_dict()
        )
    # by hand: sustain talk of C is 4 in its one coded session of 45 minutes
    assert table.loc["C", "sustain_talk_rate"] == 4.0
    assert table.loc["C", "sustain_talk_rate_hour"] == pytest.approx(4 / 0.75)
    empathy = done["empathy"].groupby(done["client"]).mean()
    assert table["empathy_mean"].to_dict() == pytest.approx(empathy.to_dict())
    assert table["empathy_mean_between"].to_dict() == pytest.approx(
        (empathy - empathy.mean()).to_dict()
    )
    # nothing of ruptures, repair or resistance exists without their coding
    assert not any(c.startswith(("rupture", "repair", "resistance", "unrepaired")) for c in table)


def test_person_period_carries_the_declared_constructs_with_their_splits():
    clients, sessions = make_lab_case()
    rows = person_period(sessions, clients, {"rule": "end_status"}, constructs=LAB_VOCABULARY)
    assert {"sustain_talk_within", "homework_noncompliance_between", "empathy_within"} <= set(
        rows.columns
    )
    # A: sessions 1, 2 before its planned 3; B (dropout): 1, 2; C: session 1
    assert rows["sustain_talk"].tolist() == [3, 1, 0, 2, 4]


def test_constructs_inferred_from_the_columns_without_a_vocabulary():
    clients, sessions = make_lab_case()
    # whole numbers of at least 0 are counts, other numbers ratings (empathy has 4.5)
    inferred = [(c.name, c.kind) for c in infer_constructs(sessions)]
    assert inferred == [
        ("sustain_talk", "count"),
        ("homework_noncompliance", "count"),
        ("empathy", "rating"),
    ]
    table = client_table(sessions, clients)
    assert {"sustain_talk_rate", "homework_noncompliance_rate", "empathy_mean"} <= set(table)


def test_a_construct_not_declared_gets_no_columns():
    clients, sessions = make_lab_case()
    only_talk = [LAB_VOCABULARY.constructs["sustain_talk"]]
    table = client_table(sessions, clients, constructs=only_talk)
    assert "sustain_talk_rate" in table and "homework_noncompliance_total" not in table


def test_two_constructs_making_the_same_column_is_a_config_error():
    clients, sessions = make_lab_case()
    clash = [
        ConstructInfo("sustain_talk", "Sustain talk", "count", "column", stem="talk"),
        ConstructInfo("homework_noncompliance", "Homework", "count", "column", stem="talk"),
    ]
    with pytest.raises(ConfigError, match="'talk_rate' is already made by construct"):
        client_table(sessions, clients, constructs=clash)
    repair = [ConstructInfo("sustain_talk", "Sustain talk", "count", "column", stem="repair")]
    with pytest.raises(ConfigError, match="give the construct another `stem:`"):
        client_table(sessions, clients, constructs=repair)


def test_unrepaired_and_alliance_exist_only_with_their_inputs():
    _, sessions = make_lab_case()
    assert [c.name for c in constructs_present(sessions, LAB_VOCABULARY)] == list(
        LAB_VOCABULARY.constructs
    )
    with_repair = sessions.assign(ruptures=2, repaired=1, alliance=5.0)
    declared = [
        ConstructInfo("ruptures", "Ruptures", "count", "any_of", stem="rupture"),
        ConstructInfo("repaired", "Repaired", "count", "rated_at_least"),
    ]
    names = [c.name for c in constructs_present(with_repair, declared)]
    assert names == ["ruptures", "repaired", "unrepaired", "alliance"]


# --------------------------------------------------------------------------- profile level


def profile_sessions():
    return pd.DataFrame(
        {
            "study": "s",
            "client": ["C1", "C1", "C2", "C2"],
            "session": [1, 2, 1, 2],
            "attended": [True, True, True, False],
            "framework": "humanistic",
            "minutes": [50.0, 40.0, 45.0, None],
            "opposition_a": pd.array([1, 0, 2, None], dtype="Int64"),
            "opposition_b": pd.array([0, 3, None, None], dtype="Int64"),
            "opposition": pd.array([1, 3, None, None], dtype="Int64"),
            "opposition_a_within": [0.5, -0.5, 0.0, np.nan],
        }
    )


def test_profile_long_one_row_per_attended_session_and_part():
    long = profile_long(profile_sessions(), ["opposition_a", "opposition_b"], "opposition")
    # 3 attended sessions x 2 parts; C2's missed session has no rows; its uncoded part
    # keeps an empty count
    assert len(long) == 6
    assert list(long["profile_type"].cat.categories) == ["opposition_a", "opposition_b"]
    assert long["session"].tolist() == [1, 1, 2, 2, 1, 1]
    assert long["profile_count"].tolist()[:5] == [1, 0, 0, 3, 2]
    assert np.isnan(long["profile_count"].iloc[5])
    # the parts' and the composite's own columns are left out; the rest repeats
    assert not any(str(c).startswith("opposition") for c in long.columns)
    assert {"framework", "minutes", "client"} <= set(long.columns)


def test_profile_long_without_its_parts_is_named():
    with pytest.raises(DataError, match="no part of the profiled composite is present"):
        profile_long(profile_sessions(), ["arguing", "denying"])
    with pytest.raises(DataError, match="descriptives.profile"):
        profile_long(profile_sessions(), [])


#: A composite of forms as in the codebook (resistance = overt + covert + ...), written out
#: by hand: form "overt" of types a and b, form "covert" of type c, form "realistic" of
#: types r1 and r2 (not coded in these sessions: no columns).
FORMS = {"overt": ["type_a", "type_b"], "covert": ["type_c"], "realistic": ["r1", "r2"]}
TYPES_OF_FORMS = [t for types in FORMS.values() for t in types]


def forms_sessions():
    n = None
    table = pd.DataFrame(
        {
            "study": "s",
            "client": ["C1", "C1", "C2", "C2"],
            "session": [1, 2, 1, 2],
            "attended": [True, True, True, False],
            "framework": ["cognitive", "cognitive", "behavioral", "behavioral"],
            "therapist": ["T1", "T1", "T2", "T2"],
            "minutes": [50.0, 40.0, 45.0, None],
            "type_a": pd.array([1, 0, 2, n], dtype="Int64"),
            "type_b": pd.array([0, 3, 1, n], dtype="Int64"),
            "type_c": pd.array([4, 0, n, n], dtype="Int64"),  # C2's session 1 not coded for it
        }
    )
    # the forms' session values as the codebook makes them (sum of the types coded)
    table["overt"] = table["type_a"] + table["type_b"]
    table["covert"] = table["type_c"]
    table["resistance"] = table["overt"] + table["covert"]
    table["overt_within"] = [0.5, -0.5, 0.0, np.nan]  # a derived column of a form
    return table


def test_profile_long_gives_each_type_its_form_and_leaves_absent_types_absent():
    long = profile_long(forms_sessions(), TYPES_OF_FORMS, "resistance", FORMS)
    # 3 attended sessions x 3 types coded (r1 and r2 have no column: no rows, never 0)
    assert len(long) == 9
    assert list(long["profile_type"].cat.categories) == ["type_a", "type_b", "type_c"]
    assert list(long["profile_form"].cat.categories) == ["overt", "covert"]
    first = long[long["session"].eq(1) & long["client"].eq("C1")]
    assert first["profile_type"].tolist() == ["type_a", "type_b", "type_c"]
    assert first["profile_form"].tolist() == ["overt", "overt", "covert"]
    assert first["profile_count"].tolist() == [1.0, 0.0, 4.0]
    assert np.isnan(long.loc[long["client"].eq("C2") & long["profile_type"].eq("type_c"),
                             "profile_count"]).all()  # fmt: skip
    # the forms' and the composite's columns are not repeated on the type rows
    assert not {"overt", "covert", "resistance", "overt_within"} & set(long.columns)
    assert {"framework", "therapist", "minutes"} <= set(long.columns)


def test_profile_long_without_forms_names_the_composite_as_the_form():
    long = profile_long(profile_sessions(), ["opposition_a", "opposition_b"], "opposition")
    assert set(long["profile_form"]) == {"opposition"}


def test_profile_forms_one_row_per_attended_session_and_form_coded():
    long = profile_forms(forms_sessions(), list(FORMS), "resistance", TYPES_OF_FORMS)
    # 3 attended sessions x 2 forms coded; "realistic" has no column: absent, never 0
    assert len(long) == 6
    assert list(long["profile_form"].cat.categories) == ["overt", "covert"]
    assert long["profile_form"].tolist() == ["overt", "covert"] * 3
    # the count is the form's session value: C1 s1 1 + 0 and 4; s2 0 + 3 and 0; C2 s1 3, -
    assert long["profile_count"].tolist()[:5] == [1.0, 4.0, 3.0, 0.0, 3.0]
    assert np.isnan(long["profile_count"].iloc[5])
    assert long["session"].tolist() == [1, 1, 2, 2, 1, 1]
    assert not {"type_a", "type_b", "type_c", "overt", "resistance"} & set(long.columns)
    assert {"framework", "therapist", "minutes", "client"} <= set(long.columns)


def test_profile_forms_needs_two_forms_and_says_why():
    with pytest.raises(DataError, match="resistance has no forms"):
        profile_forms(forms_sessions(), [], "resistance", ["type_a"])
    with pytest.raises(DataError, match=r"fewer than two forms of resistance were coded "
                       r"\(forms: overt, realistic; coded: overt\)"):  # fmt: skip
        profile_forms(forms_sessions(), ["overt", "realistic"], "resistance")


def forms_vocabulary(forms=FORMS):
    infos = {
        t: ConstructInfo(t, t.replace("_", " ").capitalize(), "count", "codes")
        for types in forms.values()
        for t in types
    }
    infos |= {f: ConstructInfo(f, f.capitalize(), "count", "sum_of", tuple(t))
              for f, t in forms.items()}  # fmt: skip
    infos["resistance"] = ConstructInfo("resistance", "Resistance", "count", "sum_of",
                                        tuple(forms))  # fmt: skip
    return Vocabulary(constructs=infos, profile="resistance")


def test_analysis_levels_of_the_profile_and_a_skipped_forms_model():
    from resistance_outcomes import analysis

    sessions = forms_sessions()
    coded = {f: t for f, t in FORMS.items() if f != "realistic"}  # as the vocabulary has it
    tables = analysis.AnalysisTables(
        clients=pd.DataFrame(), sessions=sessions, session_table=sessions,
        client_table=pd.DataFrame(), dropout_definitions={},
        vocabulary=forms_vocabulary(coded),
    )  # fmt: skip
    forms_model = analysis.parse_model_spec(
        "forms",
        {"data": "profile_forms", "family": "poisson", "optional": True,
         "formula": "profile_count ~ framework * profile_form + offset(log(minutes))"
                    " + (1 | client)"},
    )  # fmt: skip
    types_model = analysis.parse_model_spec(
        "types",
        {"data": "profile_long", "family": "poisson",
         "formula": "profile_count ~ framework * profile_type + (1 | client)"},
    )  # fmt: skip
    rows, _ = analysis.data_level(forms_model, tables)
    assert rows["profile_form"].tolist() == ["overt", "covert"] * 3
    rows, _ = analysis.data_level(types_model, tables)
    assert rows["profile_form"].tolist()[:3] == ["overt", "overt", "covert"]
    assert analysis.DATA_LEVELS["profile_forms"] == (
        "one attended session and form of the profiled composite"
    )
    # a lab coding one form only: the forms model is skipped with the reason, the types
    # model still runs
    one = forms_vocabulary({"overt": FORMS["overt"]})
    tables.vocabulary = one
    checked = analysis.check_models({"forms": forms_model, "types": types_model}, tables)
    assert checked["models"]["types"]["status"] == "ok"
    assert checked["models"]["forms"]["status"] == "skipped"
    assert "fewer than two forms of resistance were coded" in (checked["models"]["forms"]["reason"])
    outputs = analysis.run_model(forms_model, tables)
    assert outputs.fit["fitted"] is False
    assert outputs.fit["reason"].startswith("its data level profile_forms cannot be built")


def test_repaired_has_its_total_only_however_it_is_made():
    clients, sessions = make_lab_case()
    sessions = sessions.assign(ruptures=pd.array([2, 1, None, 0, 1, None, 3, 0], dtype="Int64"))
    sessions["repaired"] = pd.array([1, 1, None, 0, 0, None, 2, 0], dtype="Int64")
    declared = [
        ConstructInfo("ruptures", "Ruptures", "count", "any_of", stem="rupture"),
        ConstructInfo("repaired", "Repaired ruptures", "count", "units"),  # not rated_at_least
    ]
    table = client_table(sessions, clients, constructs=declared).set_index("client")
    assert "repaired_total" in table and "repaired_rate" not in table
    # A: 2 of 3 ruptures repaired; C: 2 of 3
    assert table["repair_rate"].to_dict() == pytest.approx({"A": 2 / 3, "B": 0.0, "C": 2 / 3})
