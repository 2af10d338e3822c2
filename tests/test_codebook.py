"""Tests for resistance_outcomes.codebook: codebook loading, analysis coder, aggregation.

Expected session values are counted by hand from the small code tables written below.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistance_outcomes.codebook import (
    Code,
    Codebook,
    Construct,
    aggregate_codes,
    composites_from_columns,
    load_codebook,
    logged_units,
    select_analysis_codes,
    session_values_by_coder,
    split_coders,
    unit_level_codes,
)
from resistance_outcomes.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
CODEBOOK = load_codebook(REPO / "config" / "codebook.yaml")
NA = pd.NA

# fmt: off
# (session, unit, coder, role, code, value)
HAND_CODES = [
    (1, 1, "A", "primary", "W_MIN", 1),
    (1, 1, "A", "primary", "W_DEN", 1),      # second withdrawal marker in the same unit
    (1, 1, "A", "primary", "RES", 4),
    (1, 2, "A", "primary", "C_REJ", 1),
    (1, 2, "A", "primary", "RES", 2),
    (1, 3, "A", "primary", "W_ABS", 1),      # withdrawal and confrontation in one unit
    (1, 3, "A", "primary", "C_THE", 1),
    (1, 3, "A", "primary", "RES", 5),
    (1, 4, "A", "primary", "R_CLA", 1),
    (1, 4, "A", "primary", "R_VAL", 1),
    (1, 5, "A", "primary", "M_ARG", 1),
    (1, 5, "A", "primary", "M_INT", 1),
    (1, 6, "A", "primary", "M_ARG", 1),
    (1, 1, "B", "reliability", "W_MIN", 1),  # reliability coder: must not count
    (1, 1, "B", "reliability", "RES", 3),
    (1, 7, "B", "reliability", "M_IGN", 1),
    (4, 1, "A", "primary", "W_SCH", 1),
    (4, 1, "A", "primary", "RES", 3),
    (4, 2, "A", "primary", "M_DEN", 0),      # coded absent
]
# fmt: on
# Session 1, coder A, by hand:
#   withdrawal units {1, 3} -> 2; confrontation units {2, 3} -> 2; rupture units {1, 2, 3} -> 3
#   ratings 4, 2, 5 -> mean 11/3; repaired (>= 4): units 1 and 3 -> 2
#   strategies R_CLA, R_VAL -> 2; arguing 2 (units 5, 6), interrupting 1 -> resistance 3
# Session 2: attended, no codes -> counts 0, mean empty. Session 3: not attended -> empty.
# Session 4: withdrawal unit 1 -> 1 rupture, rating 3 -> not repaired, mean 3.0;
#   M_DEN with value 0 is not a denial.
EXPECTED = (
    pd.DataFrame(
        {
            "rupture_withdrawal": [2, 0, NA, 1],
            "rupture_confrontation": [2, 0, NA, 0],
            "ruptures": [3, 0, NA, 1],
            "resolution_mean": [11 / 3, np.nan, np.nan, 3.0],
            "repaired": [2, 0, NA, 0],
            "repair_strategies": [2, 0, NA, 0],
            "resistance_arguing": [2, 0, NA, 0],
            "resistance_interrupting": [1, 0, NA, 0],
            "resistance_denying": [0, 0, NA, 0],
            "resistance_ignoring": [0, 0, NA, 0],
            "resistance_overt": [3, 0, NA, 0],
            "resistance": [3, 0, NA, 0],
        }
    )
    .astype({"resolution_mean": "float64"})
    .pipe(lambda frame: frame.astype({c: "Int64" for c in frame.columns if c != "resolution_mean"}))
)


def code_table(rows=HAND_CODES) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["session", "unit", "coder", "role", "code", "value"])
    frame.insert(0, "client", "C1")
    frame.insert(0, "study", "s")
    frame["session"] = frame["session"].astype("Int64")
    frame["unit"] = frame["unit"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    return frame


def session_table(attended=(True, True, False, True)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "study": "s",
            "client": "C1",
            "session": pd.array(range(1, len(attended) + 1), dtype="Int64"),
            "attended": pd.array(attended, dtype="boolean"),
        }
    )


def test_default_codebook_lists_every_instrument_code():
    codes = CODEBOOK.codes
    withdrawal = ["W_DEN", "W_MIN", "W_ABS", "W_AVS", "W_DEF", "W_CAS", "W_SCH"]
    confrontation = ["C_THE", "C_ACT", "C_PAR", "C_PRO", "C_REJ", "C_DEF", "C_CTL"]
    strategies = ["R_CLA", "R_CHG", "R_RAT", "R_INV", "R_ACK", "R_DIS", "R_LNK", "R_VAL", "R_RED"]
    assert all(codes[c].construct == "rupture_withdrawal" for c in withdrawal)
    assert all(codes[c].construct == "rupture_confrontation" for c in confrontation)
    assert all(codes[c].kind == "strategy" for c in strategies)
    assert (codes["RES"].kind, codes["RES"].minimum, codes["RES"].maximum) == ("rating", 1, 5)
    assert {c: codes[c].construct for c in ["M_ARG", "M_INT", "M_DEN", "M_IGN"]} == {
        "M_ARG": "resistance_arguing",
        "M_INT": "resistance_interrupting",
        "M_DEN": "resistance_denying",
        "M_IGN": "resistance_ignoring",
    }
    assert {c: codes[c].instrument for c in ["sustain", "change", "neutral"]} == {
        "sustain": "client_talk_type",
        "change": "client_talk_type",
        "neutral": "client_talk_type",
    }
    assert codes["MISC_DIS"].construct == "discord"
    assert set(CODEBOOK.instruments["PSQ"]["session_columns"]) == {
        "psq_tension",
        "psq_intensity",
        "psq_resolution",
    }


def test_canonical_code_ignores_case_and_spaces():
    assert CODEBOOK.canonical_code(" w_den ") == "W_DEN"
    assert CODEBOOK.canonical_code("SUSTAIN") == "sustain"
    assert CODEBOOK.canonical_code("W_XYZ") is None


def test_code_ranges():
    res = CODEBOOK.codes["RES"]
    marker = CODEBOOK.codes["W_MIN"]
    assert res.accepts(1) and res.accepts(4.5) and not res.accepts(0) and not res.accepts(6)
    assert marker.accepts(1) and marker.accepts(0)
    assert not marker.accepts(0.5) and not marker.accepts(2)
    assert res.range_text() == "a value from 1 to 5"
    assert Code("X", "i", "c", "marker", 0, 1).range_text() == "the value 1 or 0"


def test_aggregation_matches_the_hand_count():
    codes = select_analysis_codes(code_table())
    result = aggregate_codes(codes, session_table(), CODEBOOK)
    assert list(result.columns[:4]) == ["study", "client", "session", "attended"]
    assert list(result.columns[4:]) == list(EXPECTED.columns)
    pd.testing.assert_frame_equal(result[EXPECTED.columns], EXPECTED)
    assert result["ruptures"].dtype == "Int64"
    assert result["resolution_mean"].dtype == "float64"


@pytest.mark.parametrize(
    ("threshold", "expected"), [(5, [1, 0, NA, 0]), (3, [2, 0, NA, 1]), (2, [3, 0, NA, 1])]
)
def test_repair_threshold(threshold, expected):
    # Session 1 ratings 4, 2, 5; session 4 rating 3.
    codes = select_analysis_codes(code_table())
    result = aggregate_codes(codes, session_table(), CODEBOOK, repair_threshold=threshold)
    assert result["repaired"].tolist() == expected


def test_aggregation_keeps_the_sessions_rows_and_index():
    sessions = session_table().set_axis([10, 11, 12, 13])
    result = aggregate_codes(select_analysis_codes(code_table()), sessions, CODEBOOK)
    assert result.index.tolist() == [10, 11, 12, 13]
    pd.testing.assert_frame_equal(result[sessions.columns], sessions)


def test_only_instruments_present_make_columns():
    # AnnoMI-style client talk: 2 sustain, 1 change, 1 neutral utterance in session 1.
    rows = [
        (1, 1, "A", "primary", "sustain", 1),
        (1, 2, "A", "primary", "neutral", 1),
        (1, 3, "A", "primary", "sustain", 1),
        (1, 4, "A", "primary", "change", 1),
    ]
    result = aggregate_codes(code_table(rows), session_table((True, True)), CODEBOOK)
    assert list(result.columns[4:]) == ["sustain_talk", "change_talk"]
    assert result["sustain_talk"].tolist() == [2, 0]
    assert result["change_talk"].tolist() == [1, 0]


def test_unit_level_codes_per_unit_and_coder():
    units = unit_level_codes(code_table(), CODEBOOK)
    first = units[(units["session"] == 1) & (units["unit"] == 1)].set_index("coder")
    # Coder A: W_MIN + W_DEN + RES 4; coder B: W_MIN + RES 3.
    assert first.loc["A", ["rupture_withdrawal", "ruptures", "repaired"]].tolist() == [1, 1, 1]
    assert first.loc["A", "resolution_mean"] == 4.0
    assert first.loc["B", ["rupture_withdrawal", "ruptures", "repaired"]].tolist() == [1, 1, 0]
    assert first.loc["B", "resolution_mean"] == 3.0
    assert first.loc["B", "role"] == "reliability"
    # 6 units of A in session 1, 2 of B (units 1 and 7), 2 of A in session 4.
    assert len(units) == 10
    unit3 = units[(units["session"] == 1) & (units["unit"] == 3)].iloc[0]
    assert (unit3["rupture_withdrawal"], unit3["rupture_confrontation"], unit3["ruptures"]) == (
        1,
        1,
        1,
    )


def test_unit_level_codes_keep_constructs_not_made_into_session_columns():
    rows = [(1, 1, "A", "primary", "neutral", 1), (1, 1, "B", "reliability", "sustain", 1)]
    units = unit_level_codes(code_table(rows), CODEBOOK).set_index("coder")
    assert units.loc["A", ["sustain_talk", "change_talk", "neutral_talk"]].tolist() == [0, 0, 1]
    assert units.loc["B", ["sustain_talk", "change_talk", "neutral_talk"]].tolist() == [1, 0, 0]


def test_analysis_coder_by_role():
    marked = select_analysis_codes(code_table())
    assert marked["analysis_coder"].tolist() == [row[3] == "primary" for row in HAND_CODES]


def test_analysis_coder_without_role_is_the_first_listed_per_session():
    codes = code_table().drop(columns="role")
    codes = pd.concat([codes[codes["coder"] == "B"], codes[codes["coder"] == "A"]])
    marked = select_analysis_codes(codes)
    # Session 1 lists B first; session 4 is coded by A only.
    chosen = marked[marked["analysis_coder"]].groupby("session")["coder"].unique()
    assert {session: list(coders) for session, coders in chosen.items()} == {1: ["B"], 4: ["A"]}


def test_analysis_coder_by_priority_list_and_single_id():
    codes = code_table()
    by_list = select_analysis_codes(codes, ["B", "A"])
    chosen = by_list[by_list["analysis_coder"]].groupby("session")["coder"].unique()
    assert {s: list(c) for s, c in chosen.items()} == {1: ["B"], 4: ["A"]}
    only_b = select_analysis_codes(codes, "B")
    assert set(only_b.loc[only_b["analysis_coder"], "coder"]) == {"B"}


def test_split_coders():
    analysis, reliability = split_coders(code_table())
    assert set(analysis["coder"]) == {"A"} and len(analysis) == 16
    assert set(reliability["coder"]) == {"B"} and len(reliability) == 3


def test_aggregation_refuses_several_coders_without_a_choice():
    with pytest.raises(ValueError, match="several coders"):
        aggregate_codes(code_table().drop(columns="role"), session_table(), CODEBOOK)


def test_aggregation_follows_a_custom_codebook(tmp_path):
    path = tmp_path / "codebook.yaml"
    path.write_text(
        """
instruments:
  lab:
    codes:
      SIL: {construct: silence, kind: marker, range: [0, 1]}
      LATE: {construct: lateness, kind: marker, range: [0, 1]}
      QUAL: {construct: quality, kind: rating, range: [0, 10]}
constructs:
  silence: {aggregate: codes}
  lateness: {aggregate: units}
  disengagement: {aggregate: sum_of, of: [silence, lateness]}
  quality: {aggregate: mean_rating, within: lateness}
""",
        encoding="utf-8",
    )
    codebook = load_codebook(path)
    rows = [
        (1, 1, "A", "primary", "SIL", 1),
        (1, 2, "A", "primary", "SIL", 1),
        (1, 2, "A", "primary", "LATE", 1),
        (1, 2, "A", "primary", "QUAL", 8),
        (1, 3, "A", "primary", "QUAL", 2),
    ]
    result = aggregate_codes(code_table(rows), session_table((True,)), codebook)
    # silence: 2 codes; lateness: 1 unit; disengagement 3; quality over late units only: 8.
    assert result.loc[0, ["silence", "lateness", "disengagement"]].tolist() == [2, 1, 3]
    assert result.loc[0, "quality"] == 8.0


@pytest.mark.parametrize(
    ("codes", "constructs", "message"),
    [
        (
            "X: {construct: nothing, kind: marker, range: [0, 1]}",
            "a: {aggregate: codes}",
            "not under `constructs:`",
        ),
        ("X: {construct: a, kind: flag, range: [0, 1]}", "a: {aggregate: codes}", "kind 'flag'"),
        (
            "X: {construct: a, kind: marker, range: [1]}",
            "a: {aggregate: codes}",
            "range: \\[lowest, highest\\]",
        ),
        (
            "X: {construct: a, kind: marker, range: [0, 1]}\n      x: {construct: a, kind: marker,"
            " range: [0, 1]}",
            "a: {aggregate: codes}",
            "listed twice",
        ),
        (
            "X: {construct: a, kind: rating, range: [1, 5]}",
            "a: {aggregate: units}",
            "cannot take rating codes",
        ),
        (
            "X: {construct: a, kind: marker, range: [0, 1]}",
            "a: {aggregate: codes}\n  b: {aggregate: any_of, of: [c]}",
            "must be defined above",
        ),
        (
            "X: {construct: a, kind: marker, range: [0, 1]}",
            "a: {aggregate: total}",
            "aggregate 'total'",
        ),
        (
            "X: {construct: a, kind: marker, range: [0, 1]}",
            "a: {aggregate: codes}\n  b: {aggregate: mean_rating}",
            "needs `within:`",
        ),
    ],
)
def test_bad_codebooks_are_refused(tmp_path, codes, constructs, message):
    path = tmp_path / "codebook.yaml"
    path.write_text(
        f"instruments:\n  i:\n    codes:\n      {codes}\nconstructs:\n  {constructs}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=message):
        load_codebook(path)


# ------------------------------------------------------------------ coding log

# Session 1: A coded units 1-7 (codes on 1-6), B coded units 1-7 (codes on 1 and 7);
# session 2: A coded units 1-5 and found nothing; session 4: A coded units 1-3.
HAND_LOG = pd.DataFrame(
    {
        "study": "s",
        "client": "C1",
        "session": pd.array([1, 1, 2, 4], dtype="Int64"),
        "coder": ["A", "B", "A", "A"],
        "role": ["primary", "reliability", "primary", "primary"],
        "units": pd.array([7, 7, 5, 3], dtype="Int64"),
    }
)


def test_logged_units_expand_the_log():
    units = logged_units(HAND_LOG)
    assert len(units) == 7 + 7 + 5 + 3
    assert units.loc[units["coder"] == "B", "unit"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert units.loc[units["session"] == 2, "role"].unique().tolist() == ["primary"]


def test_unit_level_codes_with_a_log_have_every_logged_unit():
    units = unit_level_codes(code_table(), CODEBOOK, coding_log=HAND_LOG)
    assert len(units) == 22  # every logged unit, coded or not
    b = units[(units["session"] == 1) & (units["coder"] == "B")].set_index("unit")
    # B's units 2-6 carry no code: 0 for every count, no rating, role from the log.
    assert b.loc[2:6, ["ruptures", "resistance", "repaired"]].to_numpy().sum() == 0
    assert b.loc[2:6, "resolution_mean"].isna().all()
    assert (b["role"] == "reliability").all()
    assert b.loc[7, "resistance_ignoring"] == 1
    silent = units[units["session"] == 2]
    assert len(silent) == 5 and silent["ruptures"].eq(0).all()


def test_session_values_by_coder_sum_per_session_with_zeros():
    units = unit_level_codes(code_table(), CODEBOOK, coding_log=HAND_LOG)
    values = session_values_by_coder(units, CODEBOOK, ["ruptures", "resolution_mean"])
    values = values.set_index(["session", "coder"])
    # Session 1: A 3 ruptures rated 4, 2, 5 (mean 11/3); B 1 rupture rated 3.
    # Session 2: A coded nothing: 0 ruptures, no mean. Session 4: A 1 rupture rated 3.
    assert values["ruptures"].tolist() == [3, 1, 0, 1]
    np.testing.assert_allclose(values["resolution_mean"], [11 / 3, 3.0, np.nan, 3.0])
    assert values["role"].tolist() == ["primary", "reliability", "primary", "primary"]


def test_aggregation_with_a_log_leaves_sessions_not_coded_empty():
    # Session 2 is attended and logged (nothing found): 0. Without session 2 in the log it
    # was not coded: empty, like session 3 (not attended).
    log = HAND_LOG[HAND_LOG["session"] != 2]
    codes = select_analysis_codes(code_table())
    with_log = aggregate_codes(codes, session_table(), CODEBOOK, coding_log=HAND_LOG)
    assert with_log["ruptures"].tolist() == [3, 0, NA, 1]
    without = aggregate_codes(codes, session_table(), CODEBOOK, coding_log=log)
    assert without["ruptures"].tolist() == [3, NA, NA, 1]
    assert without["resistance"].tolist() == [3, NA, NA, 0]


# ------------------------------------------------------------- composites from columns


def column_sessions(**columns):
    base = {"study": "s", "client": "1", "session": [1, 2, 3, 4], "attended": True}
    return pd.DataFrame({**base, **{k: pd.array(v, dtype="Int64") for k, v in columns.items()}})


def test_ruptures_are_formed_from_withdrawal_and_confrontation_columns():
    sessions = column_sessions(
        rupture_withdrawal=[2, 0, 1, None], rupture_confrontation=[1, 0, None, None]
    )
    formed, notes = composites_from_columns(sessions, CODEBOOK)
    # by hand: 2 + 1, 0 + 0; a part missing -> missing
    assert formed["ruptures"].tolist() == [3, 0, NA, NA]
    assert str(formed["ruptures"].dtype) == "Int64"
    assert sessions.columns.tolist() == formed.columns.tolist()[:-1]  # input unchanged
    assert len(notes) == 1 and notes[0].startswith("ruptures: formed from the sessions columns")
    assert "upper bound" in notes[0]


def test_sum_of_composites_and_composites_of_composites_are_formed_in_order():
    constructs = {
        "a": Construct("a", "column", value_kind="count"),
        "b": Construct("b", "column", value_kind="count"),
        "c": Construct("c", "column", value_kind="count"),
        "ab": Construct("ab", "sum_of", of=("a", "b")),
        "abc": Construct("abc", "any_of", of=("ab", "c")),
    }
    sessions = column_sessions(a=[1, 0, 2, 1], b=[1, 1, 0, None], c=[0, 4, 1, 1])
    formed, notes = composites_from_columns(sessions, Codebook({}, constructs))
    assert formed["ab"].tolist() == [2, 1, 2, NA]
    assert formed["abc"].tolist() == [2, 5, 3, NA]
    assert "upper bound" not in notes[0] and "upper bound" in notes[1]


def test_a_composite_present_is_kept_and_one_with_missing_parts_is_not_formed():
    sessions = column_sessions(ruptures=[5, 0, 1, 1], rupture_withdrawal=[1, 0, 0, 0],
                               rupture_confrontation=[0, 0, 0, 0])  # fmt: skip
    formed, notes = composites_from_columns(sessions, CODEBOOK)
    assert formed["ruptures"].tolist() == [5, 0, 1, 1] and notes == []
    partial = column_sessions(resistance_arguing=[1, 0, 0, 2])
    formed, notes = composites_from_columns(partial, CODEBOOK)
    assert "resistance" not in formed
    assert notes == [
        "resistance_overt: not formed; the sessions table has resistance_arguing but not "
        "resistance_interrupting, resistance_denying, resistance_ignoring. Supply every "
        "part, or the resistance_overt column itself."
    ]


INGEST_CLIENTS = (
    "client_id,therapist_id,treatment,planned_sessions,end_status\n001,T1,CBT,2,completed\n"
)
INGEST_SESSIONS = """client_id,session_no,attended,minutes,withdrawal,confrontation,repaired
001,1,yes,50,1,1,2
001,2,yes,50,0,1,2
"""


def ingest_config(folder: Path) -> dict:
    (folder / "clients.csv").write_text(INGEST_CLIENTS, encoding="utf-8")
    (folder / "sessions.csv").write_text(INGEST_SESSIONS, encoding="utf-8")
    return {
        "study": "lab",
        "data": {"clients": "clients.csv", "sessions": "sessions.csv"},
        "columns": {
            "clients": {
                "client": "client_id",
                "therapist": "therapist_id",
                "treatment_label": "treatment",
                "planned_sessions": "planned_sessions",
                "end_status": "end_status",
            },
            "sessions": {
                "client": "client_id",
                "session": "session_no",
                "attended": "attended",
                "minutes": "minutes",
                "rupture_withdrawal": "withdrawal",
                "rupture_confrontation": "confrontation",
                "repaired": "repaired",
            },
        },
        "codebook": str(REPO / "config" / "codebook.yaml"),
        "frameworks": str(REPO / "config" / "frameworks.yaml"),
        "validation": {"mode": "strict", "identifiers": "refuse"},
        "coding": {"analysis_coder": "primary", "repair_threshold": 4},
    }


def test_ingest_forms_ruptures_from_columns_and_still_checks_repaired(tmp_path):
    from resistance_outcomes.ingest import ingest
    from resistance_outcomes.validate import ValidationFailed

    settings = ingest_config(tmp_path)
    # session 2: 2 repaired of 0 + 1 ruptures
    with pytest.raises(ValidationFailed) as failed:
        ingest(settings, tmp_path)
    problems = [(p.row, p.column) for p in failed.value.problems]
    assert len(problems) == 1 and "more repaired ruptures than ruptures (1)" in str(
        failed.value.problems[0]
    )
    text = INGEST_SESSIONS.replace("001,2,yes,50,0,1,2", "001,2,yes,50,0,1,1")
    (tmp_path / "sessions.csv").write_text(text, encoding="utf-8")
    result = ingest(settings, tmp_path)
    assert result.sessions["ruptures"].tolist() == [2, 1]
    assert any(
        note.startswith("ruptures: formed from the sessions columns") for note in result.notes
    )


# Every form of resistance and every therapist response of the shipped codebook, by hand.
# Session 1: unit 1 CV_DIS + CV_AVT, unit 2 CV_DIS (covert: distancing 2, avoidance 1);
#   unit 3 RR_TEC; unit 4 D_PAR + D_HWK; unit 5 M_ARG; unit 6 T_EMP + T_RFR, unit 7 T_EMP.
# Session 2: unit 1 CL_FRG; unit 2 T_CLM with value 0 (coded absent: no response).
FORM_CODES = [
    (1, 1, "CV_DIS"), (1, 1, "CV_AVT"), (1, 2, "CV_DIS"), (1, 3, "RR_TEC"),
    (1, 4, "D_PAR"), (1, 4, "D_HWK"), (1, 5, "M_ARG"), (1, 6, "T_EMP"), (1, 6, "T_RFR"),
    (1, 7, "T_EMP"), (2, 1, "CL_FRG"),
]  # fmt: skip


def test_every_form_of_resistance_and_response_flows_to_session_counts():
    rows = [(s, u, "R1", "primary", c, 1.0) for s, u, c in FORM_CODES]
    rows.append((2, 2, "R1", "primary", "T_CLM", 0.0))
    result = aggregate_codes(code_table(rows), session_table((True, True)), CODEBOOK)
    by = result.set_index("session")
    expected = {
        "covert_distancing": [2, 0],
        "covert_topic_avoidance": [1, 0],
        "covert_withdrawal": [0, 0],
        "resistance_covert": [3, 0],
        "realistic_technique": [1, 0],
        "resistance_realistic": [1, 0],
        "collusive_fragility": [0, 1],
        "resistance_collusive": [0, 1],
        "disengagement_partial_agreement": [1, 0],
        "disengagement_homework": [1, 0],
        "resistance_disengagement": [2, 0],
        "resistance_arguing": [1, 0],
        "resistance_overt": [1, 0],
        "resistance": [7, 1],  # 3 covert + 1 realistic + 2 disengagement + 1 overt; 1 collusive
        "response_empathy": [2, 0],
        "response_reframe": [1, 0],
        "response_calm": [0, 0],
        "therapist_responses": [3, 0],
    }
    for column, values in expected.items():
        assert by[column].tolist() == values, column
    # a lab that codes only the covert form gets the covert constructs and nothing else
    covert = [(s, u, "R1", "primary", c, 1.0) for s, u, c in FORM_CODES if c.startswith("CV")]
    only = aggregate_codes(code_table(covert), session_table((True, True)), CODEBOOK)
    assert "resistance_covert" in only and "resistance" in only
    for absent in ("resistance_overt", "resistance_realistic", "resistance_disengagement",
                   "therapist_responses", "resistance_arguing"):  # fmt: skip
        assert absent not in only, absent
    assert only["resistance"].tolist() == only["resistance_covert"].tolist() == [3, 0]


def test_resistance_from_columns_is_the_sum_of_the_forms_supplied():
    forms = column_sessions(resistance_covert=[1, 0, 2, 0], resistance_overt=[0, 1, 1, 3])
    formed, notes = composites_from_columns(forms, CODEBOOK)
    assert formed["resistance"].tolist() == [1, 1, 3, 3]
    assert notes[0].startswith("resistance: formed from resistance_overt, resistance_covert only")


def test_codes_carry_their_citation_or_their_instruments():
    assert CODEBOOK.codes["CV_DIS"].citation.startswith("Ackerman, S. J., & Hilsenroth")
    assert CODEBOOK.codes["RR_TEC"].citation.startswith("Rennie, D. L. (1994)")
    assert CODEBOOK.codes["W_DEN"].citation.startswith("Eubanks, C. F.")
    forms = {"covert_resistance", "realistic_resistance", "collusive_resistance",
             "disengagement", "therapist_responses"}  # fmt: skip
    assert forms <= set(CODEBOOK.instruments)
    assert all(
        CODEBOOK.codes[c].kind == "strategy" for c in CODEBOOK.codes_of("therapist_responses")
    )
    assert CODEBOOK.constructs["resistance"].of == (
        "resistance_overt", "resistance_covert", "resistance_realistic",
        "resistance_collusive", "resistance_disengagement",
    )  # fmt: skip
