"""Tests for resistance_outcomes.ingest: raw lab files -> validated canonical tables.

The small study below is written in the example's raw layout; expected construct counts
are worked out by hand next to it.
"""

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml

from resistance_outcomes.config import ConfigError
from resistance_outcomes.ingest import format_validation_report, ingest
from resistance_outcomes.validate import ValidationFailed

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "resources" / "example"
NA = pd.NA

CLIENTS = """client_id,therapist_id,treatment,planned_sessions,end_status,baseline_severity
001,T1,CBT,3,Completed,12
002,T1,psychodynamic ,3,drop-out,15
003,T2,ERP,2,completed,9
"""
SESSIONS = """\
client_id,session_no,attended,minutes,homework,wai,psq_tension,psq_intensity,psq_resolution
001,1,yes,50,,5.5,yes,2,4
001,2,yes,45,yes,5.0,no,,
001,3,no,,,,,,
002,1,yes,50,no,4.0,no,,
002,2,yes,50,,4.5,yes,3,2
003,1,yes,50,,6,no,,
003,2,yes,50,yes,6.1,no,,
"""
CODES = """client_id,session_no,segment,coder,coder_role,code,value
001,1,1,R1,primary,W_MIN,1
001,1,1,R1,primary,RES,4
001,1,2,R1,primary,m_arg,1
001,1,1,R2,reliability,W_MIN,1
001,1,1,R2,reliability,RES,3
002,2,1,R1,primary,C_REJ,1
002,2,1,R1,primary,RES,2
002,2,3,R1,primary,R_VAL,1
"""
# By hand, primary coder R1 only (R2 is the reliability coder):
#   001-1: unit 1 withdrawal + RES 4 (repaired at threshold 4); unit 2 arguing.
#   002-2: unit 1 confrontation + RES 2 (not repaired); unit 3 one strategy.
#   Other attended sessions: 0, rating mean empty. 001-3 not attended: empty.
# fmt: off
EXPECTED_CONSTRUCTS = {
    #                        001-1 001-2 001-3 002-1 002-2 003-1 003-2
    "rupture_withdrawal":    [1,    0,    NA,   0,    0,    0,    0],
    "rupture_confrontation": [0,    0,    NA,   0,    1,    0,    0],
    "ruptures":              [1,    0,    NA,   0,    1,    0,    0],
    "repaired":              [1,    0,    NA,   0,    0,    0,    0],
    "repair_strategies":     [0,    0,    NA,   0,    1,    0,    0],
    "resistance_arguing":    [1,    0,    NA,   0,    0,    0,    0],
    "resistance":            [1,    0,    NA,   0,    0,    0,    0],
}
EXPECTED_RESOLUTION_MEAN = [4.0, np.nan, np.nan, np.nan, 2.0, np.nan, np.nan]
# fmt: on

CONFIG = {
    "study": "lab",
    "data": {"clients": "clients.csv", "sessions": "sessions.csv", "codes": "codes.csv"},
    "columns": {
        "clients": {
            "client": "client_id",
            "therapist": "therapist_id",
            "treatment_label": "treatment",
            "planned_sessions": "planned_sessions",
            "end_status": "end_status",
            "baseline_severity": "baseline_severity",
        },
        "sessions": {
            "client": "client_id",
            "session": "session_no",
            "attended": "attended",
            "minutes": "minutes",
            "homework_done": "homework",
            "alliance": "wai",
            "psq_tension": "psq_tension",
            "psq_intensity": "psq_intensity",
            "psq_resolution": "psq_resolution",
        },
        "codes": {
            "client": "client_id",
            "session": "session_no",
            "unit": "segment",
            "coder": "coder",
            "role": "coder_role",
            "code": "code",
            "value": "value",
        },
    },
    "end_status_values": {
        "completed": ["completed"],
        "dropout": ["dropout", "drop-out"],
        "referred": ["referred"],
        "ongoing": ["ongoing"],
    },
    "covariates": ["baseline_severity"],
    "codebook": str(REPO / "config" / "codebook.yaml"),
    "frameworks": str(REPO / "config" / "frameworks.yaml"),
    "validation": {"mode": "strict", "identifiers": "refuse"},
    "coding": {"analysis_coder": "primary", "repair_threshold": 4},
}


def write_study(folder: Path, clients=CLIENTS, sessions=SESSIONS, codes=CODES) -> Path:
    for name, text in (("clients.csv", clients), ("sessions.csv", sessions), ("codes.csv", codes)):
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def config(**changes) -> dict:
    result = copy.deepcopy(CONFIG)
    for key, value in changes.items():
        result[key] = value
    return result


def lenient() -> dict:
    return config(validation={"mode": "lenient", "identifiers": "refuse"})


def located(problems):
    return [(p.file, p.row, p.column, p.value) for p in problems]


def failure(folder: Path, settings: dict) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        ingest(settings, folder)
    return caught.value


# ----------------------------------------------------------------- valid input


def test_valid_study_becomes_canonical_tables(tmp_path):
    result = ingest(CONFIG, write_study(tmp_path))
    assert result.problems == [] and result.quarantine.empty
    clients = result.clients
    assert clients["client"].tolist() == ["001", "002", "003"]
    assert clients["study"].tolist() == ["lab"] * 3
    assert clients["framework"].tolist() == ["cognitive", "psychoanalytic", "behavioral"]
    assert clients["end_status"].tolist() == ["completed", "dropout", "completed"]
    assert clients["planned_sessions"].dtype == "Int64"
    assert list(clients.columns) == [
        "study",
        "client",
        "therapist",
        "treatment_label",
        "framework",
        "planned_sessions",
        "end_status",
        "baseline_severity",
    ]


def test_construct_columns_match_the_hand_count(tmp_path):
    sessions = ingest(CONFIG, write_study(tmp_path)).sessions
    for column, expected in EXPECTED_CONSTRUCTS.items():
        assert sessions[column].tolist() == expected, column
    np.testing.assert_array_equal(sessions["resolution_mean"], EXPECTED_RESOLUTION_MEAN)
    assert sessions["attended"].tolist() == [True, True, False, True, True, True, True]
    assert sessions["homework_done"].isna().tolist() == [
        True,
        False,
        True,
        False,
        True,
        True,
        False,
    ]
    assert sessions["psq_intensity"].tolist() == [2, NA, NA, NA, 3, NA, NA]


def test_codes_keep_every_coder_and_mark_the_analysis_coder(tmp_path):
    codes = ingest(CONFIG, write_study(tmp_path)).codes
    assert len(codes) == 8
    assert codes["analysis_coder"].tolist() == [True, True, True, False, False, True, True, True]
    assert codes.loc[2, "code"] == "M_ARG"  # written as in the codebook
    assert codes["unit"].dtype == "Int64"


def test_analysis_coder_from_a_priority_list(tmp_path):
    settings = config(coding={"analysis_coder": ["R2", "R1"], "repair_threshold": 4})
    result = ingest(settings, write_study(tmp_path))
    # R2 rated the 001-1 rupture 3: not repaired at threshold 4; R2 coded no arguing.
    assert result.sessions.loc[0, ["ruptures", "repaired", "resistance_arguing"]].tolist() == [
        1,
        0,
        0,
    ]
    assert result.sessions.loc[0, "resolution_mean"] == 3.0


def test_input_files_are_unchanged(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    good = write_study(tmp_path / "good")
    bad = write_study(tmp_path / "bad", BAD_CLIENTS, BAD_SESSIONS, BAD_CODES)

    def digests():
        return {
            path: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(tmp_path.rglob("*.csv"))
        }

    before = digests()
    assert len(before) == 6
    ingest(CONFIG, good)
    failure(bad, CONFIG)
    assert len(ingest(lenient(), bad).quarantine) > 0
    assert digests() == before


def test_excel_and_parquet_inputs_give_the_same_tables(tmp_path):
    csv_result = ingest(CONFIG, write_study(tmp_path))
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Clients"
    for line in CLIENTS.strip().splitlines():
        sheet.append(line.split(","))
    workbook.save(tmp_path / "clients.xlsx")
    pd.read_csv(tmp_path / "sessions.csv", dtype=str).to_parquet(tmp_path / "sessions.parquet")
    settings = config(
        data={
            "clients": {"path": "clients.xlsx", "sheet": "Clients"},
            "sessions": "sessions.parquet",
            "codes": "codes.csv",
        }
    )
    other = ingest(settings, tmp_path)
    pd.testing.assert_frame_equal(other.clients, csv_result.clients)
    pd.testing.assert_frame_equal(other.sessions, csv_result.sessions)
    assert other.files["clients"] == "clients.xlsx, sheet Clients"


def test_without_codes_the_sessions_keep_supplied_counts(tmp_path):
    sessions = (
        "client_id,session_no,attended,minutes,ruptures,repaired\n"
        "001,1,yes,50,2,1\n001,2,no,,,\n001,3,yes,40,0,0\n"
        "002,1,yes,50,1,1\n002,2,yes,50,0,0\n003,1,yes,50,0,0\n003,2,yes,50,0,0\n"
    )
    write_study(tmp_path, sessions=sessions)
    columns = copy.deepcopy(CONFIG["columns"])
    columns["sessions"] = {
        "client": "client_id",
        "session": "session_no",
        "attended": "attended",
        "minutes": "minutes",
        "ruptures": "ruptures",
        "repaired": "repaired",
    }
    data = {"clients": "clients.csv", "sessions": "sessions.csv"}
    result = ingest(config(data=data, columns=columns), tmp_path)
    assert result.sessions["ruptures"].tolist() == [2, NA, 0, 1, 0, 0, 0]
    assert result.codes.empty
    assert {"coder", "code", "analysis_coder"} <= set(result.codes.columns)


def test_study_column_from_the_file(tmp_path):
    write_study(
        tmp_path,
        clients=CLIENTS.replace("client_id,", "trial,client_id,", 1).replace("\n0", "\nA,0"),
    )
    columns = copy.deepcopy(CONFIG["columns"])
    columns["clients"]["study"] = "trial"
    settings = config(
        columns=columns, study=None, data={"clients": "clients.csv", "sessions": "sessions.csv"}
    )
    problems = failure(tmp_path, settings).problems
    # The sessions file has no study column and config gives none.
    assert located(problems) == [("sessions.csv", None, "study", None)]
    assert "Set `study:`" in problems[0].hint


def test_other_covariates_are_read_as_numbers_or_text(tmp_path):
    clients = CLIENTS.replace("baseline_severity\n", "baseline_severity,age,site_type\n")
    clients = clients.replace(",12\n", ",12,34,urban\n").replace(",15\n", ",15,51,rural\n")
    clients = clients.replace(",9\n", ",9,,urban\n")
    write_study(tmp_path, clients=clients)
    columns = copy.deepcopy(CONFIG["columns"])
    columns["clients"] |= {"age": "age", "site_type": "site_type"}
    result = ingest(
        config(columns=columns, covariates=["baseline_severity", "age", "site_type"]), tmp_path
    )
    assert result.clients["age"].dtype == "float64"
    assert result.clients["age"].isna().tolist() == [False, False, True]
    assert result.clients["site_type"].tolist() == ["urban", "rural", "urban"]


def test_columns_not_mapped_are_not_read_and_are_reported(tmp_path):
    sessions = SESSIONS.replace("psq_resolution\n", "psq_resolution,room\n", 1)
    sessions = (
        "\n".join(
            line + ",A" if i else line for i, line in enumerate(sessions.strip().splitlines())
        )
        + "\n"
    )
    result = ingest(CONFIG, write_study(tmp_path, sessions=sessions))
    assert "room" not in result.sessions.columns
    assert result.unused_columns == {"sessions.csv": ["room"]}
    assert "| sessions.csv | room |" in format_validation_report(result)


# ------------------------------------------------------------ strict and lenient

# (file to change, text, replacement, expected (file, row, column, value), message part)
# Rows: clients 2-4 = 001-003; sessions 2-8 = 001-1..3, 002-1..2, 003-1..2; codes 2-9 as
# listed in CODES.
# fmt: off
BAD_FILES = [
    ("clients", "001,T1,CBT,3", "001,T1,CBT,three",
     ("clients.csv", 2, "planned_sessions", "three"), "not a whole number"),
    ("clients", "003,T2,ERP,2", "003,T2,ERP,0",
     ("clients.csv", 4, "planned_sessions", "0"), "below the minimum 1"),
    ("clients", "002,T1", ",T1",
     ("clients.csv", 3, "client_id (client)", None), "must be filled"),
    ("sessions", "001,1,yes,50,,5.5", "001,1,yes,50,,high",
     ("sessions.csv", 2, "wai (alliance)", "high"), "not a number"),
    ("sessions", "001,2,yes,45", "001,2,maybe,45",
     ("sessions.csv", 3, "attended", "maybe"), "not a yes/no value"),
    ("sessions", "002,2,yes,50,,4.5,yes,3", "002,2,yes,50,,4.5,yes,7",
     ("sessions.csv", 6, "psq_intensity", "7"), "above the maximum 5"),
    ("sessions", "003,2,yes", "003,1,yes",
     ("sessions.csv", 8, "session_no (session)", "1"), "appears on rows 7, 8"),
    ("sessions", "003,2,yes", "004,1,yes",
     ("sessions.csv", 8, "client_id (client)", "004"), "client is not in clients.csv"),
    ("sessions", "003,2,yes", "003,3,yes",
     ("sessions.csv", 8, "session_no (session)", "3"), "session 2 is missing before this one"),
    # minutes are optional (an attended session without them is valid), but minutes on a
    # session not attended contradict it
    ("sessions", "001,3,no,,", "001,3,no,50,",
     ("sessions.csv", 4, "minutes", "50.0"), "minutes given for a session not attended"),
    ("sessions", "001,2,yes,45", "001,2,yes,-99",
     ("sessions.csv", 3, "minutes", "-99"), "must be greater than 0"),
    ("codes", "001,1,2,R1", "001,3,2,R1",
     ("codes.csv", 4, "session_no (session)", "3"), "client 001, session 3 was not attended"),
    ("codes", "001,1,2,R1", "001,9,2,R1",
     ("codes.csv", 4, "session_no (session)", "9"), "session 9 is not in sessions.csv"),
    ("codes", "RES,4", "RES,6",
     ("codes.csv", 3, "value", "6"), "RES takes a value from 1 to 5"),
    ("codes", "m_arg", "M_XXX",
     ("codes.csv", 4, "code", "M_XXX"), "not in the codebook"),
    ("codes", "001,1,2,R1,primary", "001,1,2,R1,boss",
     ("codes.csv", 4, "coder_role (role)", "boss"), "coder role 'boss' is not listed"),
    ("codes", "002,2,3,R1", "002,2,0,R1",
     ("codes.csv", 9, "segment (unit)", "0"), "below the minimum 1"),
    ("codes", "001,1,1,R2,reliability,W_MIN", "001,1,1,R1,primary,W_MIN",
     ("codes.csv", 5, "code", "W_MIN"), "appears on rows 2, 5"),
    ("codes", "002,2,1,R1,primary,C_REJ", "002,2,2,R1,primary,C_REJ",
     ("codes.csv", 8, "code", "RES"), "rating on unit 1 without a ruptures marker"),
    ("codes", "001,1,1,R2,reliability,W_MIN", "001,1,1,R2,primary,W_MIN",
     ("codes.csv", 2, "coder", "R1"), "has 2 primary coders (R1, R2)"),
]
# fmt: on


@pytest.mark.parametrize(("table", "text", "replacement", "where", "message"), BAD_FILES)
def test_each_kind_of_bad_file_is_reported(tmp_path, table, text, replacement, where, message):
    files = {"clients": CLIENTS, "sessions": SESSIONS, "codes": CODES}
    assert text in files[table]
    files[table] = files[table].replace(text, replacement, 1)
    error = failure(write_study(tmp_path, **files), CONFIG)
    found = {(p.file, p.row, p.column, p.value): p for p in error.problems}
    assert where in found, located(error.problems)
    assert message in found[where].message
    assert str(found[where].row) in str(error) and where[0] in str(error)


BAD_CLIENTS = CLIENTS.replace("psychodynamic ", "IPT")  # clients row 3 (002)
BAD_SESSIONS = SESSIONS.replace("001,2,yes,45", "001,2,yes,45 min")  # sessions row 3 (001)
BAD_CODES = CODES.replace("002,2,3,R1,primary,R_VAL", "002,2,3,R1,primary,R_XYZ")  # row 9


def test_strict_mode_reports_every_problem(tmp_path):
    write_study(tmp_path, BAD_CLIENTS, BAD_SESSIONS, BAD_CODES)
    error = failure(tmp_path, CONFIG)
    assert located(error.problems) == [
        ("clients.csv", 3, "treatment (treatment_label)", "IPT"),
        ("sessions.csv", 3, "minutes", "45 min"),
        ("codes.csv", 9, "code", "R_XYZ"),
    ]
    text = str(error)
    for piece in (
        "clients.csv",
        "row 3",
        "'IPT'",
        "sessions.csv",
        "'45 min'",
        "not a number",
        "codes.csv",
        "row 9",
        "'R_XYZ'",
        "is not in the codebook",
    ):
        assert piece in text


def test_lenient_mode_sets_aside_bad_rows_with_their_clients(tmp_path):
    write_study(tmp_path, BAD_CLIENTS, SESSIONS, CODES)
    result = ingest(lenient(), tmp_path)
    assert result.clients["client"].tolist() == ["001", "003"]
    assert "002" not in set(result.sessions["client"]) | set(result.codes["client"])
    quarantine = result.quarantine
    # Client 002: its clients row (the problem), 2 sessions and 3 codes set aside with it.
    assert quarantine[["file", "row"]].values.tolist() == [
        ["clients.csv", 3],
        ["codes.csv", 7],
        ["codes.csv", 8],
        ["codes.csv", 9],
        ["sessions.csv", 5],
        ["sessions.csv", 6],
    ]
    assert quarantine.loc[0, "problem"].startswith("treatment label 'IPT' is not in")
    dependant = quarantine.loc[4]
    assert (dependant["column"], dependant["value"]) == ("client", "002")
    assert dependant["problem"].startswith("set aside with client 002: treatment label 'IPT'")
    assert dependant["problem"].endswith("(clients.csv row 3)")
    report = format_validation_report(result)
    assert "| clients | clients.csv | 3 | 2 | 1 |" in report
    assert "| sessions | sessions.csv | 7 | 5 | 2 |" in report
    assert "6 rows set aside" in report


def test_lenient_mode_sets_aside_rows_without_a_client_on_their_own(tmp_path):
    sessions = SESSIONS + ",4,yes,50,,,,,\n"
    result = ingest(lenient(), write_study(tmp_path, sessions=sessions))
    assert located(result.problems) == [("sessions.csv", 9, "client_id (client)", None)]
    assert result.quarantine["row"].tolist() == [9]
    assert len(result.sessions) == 7


def test_lenient_mode_still_stops_on_problems_with_whole_columns(tmp_path):
    columns = copy.deepcopy(CONFIG["columns"])
    columns["sessions"]["minutes"] = "mins"
    error = failure(write_study(tmp_path), config(columns=columns, validation={"mode": "lenient"}))
    assert located(error.problems) == [("sessions.csv", None, "mins", None)]
    message = error.problems[0].message
    assert "column 'mins' (mapped to minutes) is not in the file" in message
    assert "client_id, session_no, attended, minutes" in message
    assert "columns: sessions:" in error.problems[0].hint


def test_unknown_canonical_name_in_the_mapping(tmp_path):
    columns = copy.deepcopy(CONFIG["columns"])
    columns["sessions"]["atended"] = columns["sessions"].pop("attended")
    error = failure(write_study(tmp_path), config(columns=columns))
    codebook = CONFIG["codebook"]
    assert [p.message for p in error.problems] == [
        "'atended' is neither a canonical column of the sessions table (see "
        f"docs/data-dictionary.md) nor a construct of the codebook ({codebook})"
    ]
    assert "atended: attended" in error.problems[0].hint
    assert f"declare it in {codebook} under `constructs:`" in error.problems[0].hint


def test_unlisted_end_status(tmp_path):
    error = failure(write_study(tmp_path, clients=CLIENTS.replace("drop-out", "quit")), CONFIG)
    assert located(error.problems) == [("clients.csv", 3, "end_status", "quit")]
    assert "end_status_values" in error.problems[0].hint


def test_unreadable_files_are_all_reported(tmp_path):
    write_study(tmp_path, sessions="", codes="a,a\n1,2\n")
    error = failure(tmp_path, CONFIG)
    assert [(p.file, p.message) for p in error.problems] == [
        ("sessions.csv", "the file is empty."),
        (
            "codes.csv",
            "the column name 'a' appears twice in the header (columns 1 and 2). "
            "Rename one of them.",
        ),
    ]


def test_construct_both_supplied_and_coded_is_refused(tmp_path):
    sessions = SESSIONS.replace("psq_resolution\n", "psq_resolution,ruptures\n", 1)
    sessions = (
        "\n".join(
            line + ",0" if i else line for i, line in enumerate(sessions.strip().splitlines())
        )
        + "\n"
    )
    columns = copy.deepcopy(CONFIG["columns"])
    columns["sessions"]["ruptures"] = "ruptures"
    error = failure(
        write_study(tmp_path, sessions=sessions),
        config(columns=columns, validation={"mode": "lenient"}),
    )
    assert located(error.problems) == [("sessions.csv", None, "ruptures", None)]


# --------------------------------------------------------------- identifiers

CLIENTS_WITH_EMAIL = (
    "\n".join(
        line + (",contact" if i == 0 else f",person{i}@example.org")
        for i, line in enumerate(CLIENTS.strip().splitlines())
    )
    + "\n"
)


def test_identifier_columns_are_refused(tmp_path):
    error = failure(
        write_study(tmp_path, clients=CLIENTS_WITH_EMAIL),
        config(validation={"mode": "lenient", "identifiers": "refuse"}),
    )
    assert located(error.problems) == [("clients.csv", 2, "contact", None)]
    assert "identifiers: drop" in error.problems[0].hint
    assert "example.org" not in str(error)


def test_identifier_columns_can_be_dropped_and_reported(tmp_path):
    settings = config(validation={"mode": "strict", "identifiers": "drop"})
    result = ingest(settings, write_study(tmp_path, clients=CLIENTS_WITH_EMAIL))
    assert [(p.file, p.column) for p in result.dropped_identifier_columns] == [
        ("clients.csv", "contact")
    ]
    assert "contact" not in result.clients.columns
    report = format_validation_report(result)
    assert "| clients.csv | contact | holds an e-mail address |" in report
    assert "example.org" not in report
    assert result.unused_columns == {}


def test_mapped_identifier_column_is_not_read(tmp_path):
    clients = CLIENTS.replace("client_id,", "client_name,", 1)
    columns = copy.deepcopy(CONFIG["columns"])
    columns["clients"]["client"] = "client_name"
    settings = config(columns=columns, validation={"mode": "strict", "identifiers": "drop"})
    error = failure(write_study(tmp_path, clients=clients), settings)
    assert ("clients.csv", None, "client_name", None) in located(error.problems)
    assert any("is not read: the column name suggests a name" in p.message for p in error.problems)


# -------------------------------------------------------------------- report


def test_report_of_a_failed_run(tmp_path):
    write_study(tmp_path, BAD_CLIENTS, BAD_SESSIONS, BAD_CODES)
    report = format_validation_report(failure(tmp_path, CONFIG).problems)
    assert report.startswith("# Validation report\n")
    assert "Validation failed: 3 problems. Nothing was analysed." in report
    assert "### sessions.csv, column `minutes` (1 problem)" in report
    assert "| 3 | `45 min` | not a number |" in report
    assert "What to do: Write a number with a decimal point" in report


def test_report_of_a_clean_run(tmp_path):
    report = format_validation_report(ingest(CONFIG, write_study(tmp_path)))
    assert "| codes | codes.csv | 8 | 8 | 0 |" in report
    assert "No problems found." in report
    assert "## Problems" not in report and "## Quarantine" not in report


# ------------------------------------------------------------ example study


@pytest.mark.skipif(not (EXAMPLE / "truth.json").is_file(), reason="example study absent")
def test_example_study_ingests_without_problems_and_matches_its_truth_file():
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    result = ingest(settings, REPO)
    assert result.problems == [] and result.quarantine.empty
    assert len(result.clients) == 360
    # truth.json: per-session means of the primary coder's counts over attended sessions,
    # computed by the simulator from its own tables.
    truth = json.loads((EXAMPLE / "truth.json").read_text())["coding"]["expected_agreement"]
    attended = result.sessions[result.sessions["attended"]]
    for construct in (
        "ruptures",
        "resistance_arguing",
        "resistance_denying",
        "resistance_ignoring",
        "resistance_interrupting",
    ):
        expected = truth[f"{construct}_per_session"]["mean_primary"]
        assert attended[construct].mean() == pytest.approx(expected, abs=1e-6), construct
    # Mean resolution rating over the primary coder's rupture units (every rupture is
    # rated), recovered from the session means weighted by ruptures.
    rated = attended[attended["ruptures"] > 0]
    weighted = (rated["resolution_mean"] * rated["ruptures"]).sum() / rated["ruptures"].sum()
    assert weighted == pytest.approx(truth["resolution_rating"]["mean_primary"], abs=1e-5)


# ------------------------------------------------------------------ coding log

CODING_LOG = """client_id,session_no,coder,coder_role,segments
001,1,R1,primary,10
001,1,R2,reliability,10
001,2,R1,primary,9
002,1,R2,primary,10
002,2,R1,primary,10
003,1,R1,primary,10
"""
LOG_COLUMNS = {
    "client": "client_id",
    "session": "session_no",
    "coder": "coder",
    "role": "coder_role",
    "units": "segments",
}


def with_log(folder: Path, log: str = CODING_LOG, **changes) -> dict:
    (folder / "coding_log.csv").write_text(log, encoding="utf-8")
    settings = config(**changes)
    settings["data"]["coding_log"] = "coding_log.csv"
    settings["columns"]["coding_log"] = LOG_COLUMNS
    return settings


def test_coding_log_is_read_and_sessions_not_logged_are_not_coded(tmp_path):
    result = ingest(with_log(write_study(tmp_path)), tmp_path)
    assert result.problems == []
    log = result.coding_log
    assert list(log.columns) == ["study", "client", "session", "coder", "role", "units"]
    assert log["units"].tolist() == [10, 10, 9, 10, 10, 10]
    assert log["session"].dtype == "Int64"
    # The hand count above, except 003-2: attended but not in the log, so not coded
    # (empty, not 0).
    for column, expected in EXPECTED_CONSTRUCTS.items():
        assert result.sessions[column].tolist() == [*expected[:-1], NA], column
    assert "| coding_log | coding_log.csv | 6 | 6 | 0 |" in format_validation_report(result)


def test_coding_log_problems_name_file_row_column_and_value(tmp_path):
    log = (
        CODING_LOG.replace(
            "001,1,R2,reliability,10\n", ""
        ).replace(  # R2's codes of 001-1 not logged
            "002,2,R1,primary,10", "002,2,R1,reliability,2"
        )  # unit 3 coded; role
        + "001,3,R1,primary,9\n"  # session 3 was not attended
    )
    error = failure(tmp_path, with_log(write_study(tmp_path), log))
    assert located(error.problems) == [
        ("codes.csv", 5, "coder", "R2"),
        ("codes.csv", 6, "coder", "R2"),
        ("coding_log.csv", 5, "segments (units)", "2"),
        ("coding_log.csv", 5, "coder_role (role)", "reliability"),
        ("coding_log.csv", 7, "session_no (session)", "3"),
    ]
    messages = [p.message for p in error.problems]
    assert messages[0] == "coder R2 is not in coding_log.csv for client 001, session 1"
    assert messages[2] == (
        "coder R1 has codes up to unit 3 of this session in codes.csv, more than the 2 units logged"
    )
    assert messages[3] == "coder R1 is primary coder of this session in codes.csv"
    assert messages[4] == "client 001, session 3 was not attended"


# ------------------------------------------------------------ wide, codes only

# An utterance-level corpus laid out as AnnoMI: one row per utterance and annotator,
# utterance ids from 0, no session column, talk type on client rows only.
CORPUS = """transcript_id,utterance_id,annotator_id,interlocutor,client_talk_type,utterance_text
7,0,1,therapist,n/a,Hi.
7,1,1,client,sustain,No.
7,2,1,therapist,n/a,Why?
7,3,1,client,change,Maybe.
7,0,2,therapist,n/a,Hi.
7,1,2,client,neutral,No.
7,2,2,therapist,,Why?
7,3,2,client,change,Maybe.
8,10,1,client, Sustain,Never.
8,20,1,therapist,none,Ok.
"""
CORPUS_CONFIG = {
    "study": "mi",
    "data": {"codes": "corpus.csv"},
    "columns": {
        "codes": {
            "client": "transcript_id",
            "unit": "utterance_id",
            "coder": "annotator_id",
            "code_columns": ["client_talk_type"],
            "no_code": ["n/a", "none"],
            "unit_numbering": "order",
        }
    },
    "codebook": str(REPO / "config" / "codebook.yaml"),
    "frameworks": str(REPO / "config" / "frameworks.yaml"),
    "validation": {"mode": "strict", "identifiers": "drop"},
}


def corpus_study(folder: Path, text: str = CORPUS, **changes) -> dict:
    (folder / "corpus.csv").write_text(text, encoding="utf-8")
    settings = copy.deepcopy(CORPUS_CONFIG)
    settings["columns"]["codes"].update(changes)
    return settings


def test_wide_corpus_without_sessions_is_read_through_config(tmp_path):
    result = ingest(corpus_study(tmp_path), tmp_path)
    assert result.codes_only and result.problems == []
    # Units: transcript 7 utterances 0-3 -> 1-4; transcript 8 utterances 10, 20 -> 1, 2.
    codes = result.codes
    assert codes[["client", "session", "unit", "coder", "code"]].values.tolist() == [
        ["7", 1, 2, "1", "sustain"],
        ["7", 1, 4, "1", "change"],
        ["7", 1, 2, "2", "neutral"],
        ["7", 1, 4, "2", "change"],
        ["8", 1, 1, "1", "sustain"],
    ]
    assert (codes["value"] == 1).all()
    assert result.coding_log[["client", "coder", "units"]].values.tolist() == [
        ["7", "1", 4],
        ["7", "2", 4],
        ["8", "1", 2],
    ]
    # One session per transcript; annotator 1 (listed first) is analysed.
    sessions = result.sessions
    assert sessions[["client", "session", "attended"]].values.tolist() == [
        ["7", 1, True],
        ["8", 1, True],
    ]
    assert sessions["sustain_talk"].tolist() == [1, 1]
    assert sessions["change_talk"].tolist() == [1, 0]
    assert result.clients.values.tolist() == [["mi", "7"], ["mi", "8"]]
    assert [p.column for p in result.dropped_identifier_columns] == ["utterance_text"]
    report = format_validation_report(result)
    assert "corpus.csv has no session column: each client's coding is taken as session 1" in (
        report
    )
    assert "coding log made from its rows" in report
    assert "| corpus.csv | interlocutor |" in report  # read nowhere, reported


def test_wide_code_cells_not_in_the_codebook_are_named(tmp_path):
    text = CORPUS.replace("7,3,2,client,change", "7,3,2,client,maybe")
    error = failure(tmp_path, corpus_study(tmp_path, text))
    assert located(error.problems) == [("corpus.csv", 9, "client_talk_type", "maybe")]
    assert "not a marker or strategy code of the codebook" in error.problems[0].message
    assert "no_code" in error.problems[0].hint


def test_wide_layout_rows_repeated_for_a_unit_and_coder(tmp_path):
    text = CORPUS + "7,3,2,client,change,Maybe.\n"
    error = failure(tmp_path, corpus_study(tmp_path, text))
    assert [(p.row, p.column) for p in error.problems] == [
        (9, "annotator_id (coder)"),
        (12, "annotator_id (coder)"),
    ]


def test_long_layout_rows_with_a_no_code_value_are_left_out_and_counted(tmp_path):
    codes = CODES + "003,1,1,R1,primary,none,1\n"
    columns = copy.deepcopy(CONFIG["columns"])
    columns["codes"]["no_code"] = ["none"]
    result = ingest(config(columns=columns), write_study(tmp_path, codes=codes))
    assert len(result.codes) == 8
    assert "codes.csv: 1 row whose code is a no-code value" in format_validation_report(result)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"code_columns": "client_talk_type"}, "code_columns must be a list"),
        ({"unit_numbering": "sorted"}, "unit_numbering must be one of as_is, order"),
        ({"code": "client_talk_type"}, "replaces the code and value columns"),
    ],
)
def test_bad_code_layout_keys_are_config_errors(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        ingest(corpus_study(tmp_path, **changes), tmp_path)


def test_clients_without_sessions_is_a_config_error(tmp_path):
    settings = config()
    del settings["data"]["sessions"]
    with pytest.raises(ConfigError, match="data.sessions: the sessions file is required"):
        ingest(settings, write_study(tmp_path))


def test_codes_without_roles_take_them_from_the_coding_log(tmp_path):
    # Without a role column the analysis coder would be the first coder listed; here R2
    # (reliability) is listed first in session 001-1, and the log says R1 is primary.
    codes = CODES.replace(",coder_role", "").replace(",primary", "").replace(",reliability", "")
    lines = codes.splitlines()
    codes = "\n".join([lines[0], lines[4], lines[5], *lines[1:4], *lines[6:]]) + "\n"
    columns = copy.deepcopy(CONFIG["columns"])
    del columns["codes"]["role"]
    result = ingest(with_log(write_study(tmp_path, codes=codes), columns=columns), tmp_path)
    assert result.codes["role"].tolist()[:2] == ["reliability", "reliability"]
    for column, expected in EXPECTED_CONSTRUCTS.items():
        assert result.sessions[column].tolist() == [*expected[:-1], NA], column
    assert "roles (primary, reliability) are taken from the coding log" in (
        format_validation_report(result)
    )


# ------------------------------------------------------------ missing-value codes


def missing_study(folder: Path) -> Path:
    clients = CLIENTS.replace("drop-out,15", "drop-out,-99").replace("completed,9", "completed,NA")
    sessions = SESSIONS.replace("001,2,yes,45,", "001,2,yes,-99,")
    return write_study(folder, clients=clients, sessions=sessions)


def test_declared_missing_value_codes_become_missing_and_are_counted(tmp_path):
    settings = config(
        missing_values={
            "default": ["", "NA"],
            "clients": {"baseline_severity": ["-99", "-999"]},
            "sessions": {"minutes": [-99]},
        }
    )
    result = ingest(settings, missing_study(tmp_path))
    assert result.problems == []
    severity = result.clients["baseline_severity"]
    assert severity.isna().tolist() == [False, True, True] and severity[0] == 12.0
    assert result.sessions["minutes"].isna().tolist() == [
        False, True, True, False, False, False, False,
    ]  # fmt: skip
    report = format_validation_report(result)
    assert "| clients.csv | baseline_severity | `-99` | 1 | `missing_values:` |" in report
    assert "| clients.csv | baseline_severity | `NA` | 1 | `missing_values:` |" in report
    assert "| sessions.csv | minutes | `-99` | 1 | `missing_values:` |" in report
    assert "Also in clients, column baseline_severity: `-99`, `-999`." in report
    # 001-2 was attended: without minutes it is valid, and said so.
    assert "sessions.csv: 1 attended session without minutes, kept" in report


def test_a_list_of_codes_applies_to_every_column_of_every_file(tmp_path):
    result = ingest(config(missing_values=["-99", "NA", ""]), missing_study(tmp_path))
    assert result.clients["baseline_severity"].isna().tolist() == [False, True, True]
    assert result.sessions.loc[1, "minutes"] != result.sessions.loc[1, "minutes"]  # NaN
    assert {(r["file"], r["column"], r["code"], r["cells"]) for r in result.missing_values} == {
        ("clients.csv", "baseline_severity", "-99", 1),
        ("clients.csv", "baseline_severity", "NA", 1),
        ("sessions.csv", "minutes", "-99", 1),
    }


def test_undeclared_codes_are_errors_naming_file_row_column_and_value(tmp_path):
    error = failure(missing_study(tmp_path), config(config_file="lab.yaml"))
    # NA is a default code; -99 is not declared: in a covariate it lies far outside the
    # other values (12, 9), in minutes it is not > 0.
    assert located(error.problems) == [
        ("clients.csv", 3, "baseline_severity", "-99"),
        ("sessions.csv", 3, "minutes", "-99"),
    ]
    assert "looks like a code for a missing value" in error.problems[0].message
    for problem in error.problems:
        assert "`missing_values:` in lab.yaml" in problem.hint
    kept = ingest(
        config(validation={"mode": "strict", "undeclared_codes": "keep"},
               missing_values={"sessions": {"minutes": ["-99"]}}),
        tmp_path,
    )  # fmt: skip
    assert kept.clients["baseline_severity"].tolist()[1] == -99.0  # declared real


def test_missing_values_naming_a_column_not_mapped_is_a_config_error(tmp_path):
    settings = config(missing_values={"clients": {"severity": ["-99"]}}, config_file="lab.yaml")
    with pytest.raises(ConfigError, match=r"lab.yaml: missing_values.clients.severity: not a"):
        ingest(settings, write_study(tmp_path))
    # the file's own column name is accepted for a mapped column
    clients = CLIENTS.replace("baseline_severity\n", "sev\n")
    columns = copy.deepcopy(CONFIG["columns"])
    columns["clients"]["baseline_severity"] = "sev"
    settings = config(columns=columns, missing_values={"clients": {"sev": ["15"]}})
    result = ingest(settings, write_study(tmp_path, clients=clients))
    assert result.clients["baseline_severity"].isna().tolist() == [False, True, False]
    assert result.missing_values[0]["column"] == "sev (baseline_severity)"


# ------------------------------------------------------------------ role words


def role_study(folder: Path, primary="main", reliability="second") -> Path:
    codes = CODES.replace(",primary,", f",{primary},").replace(",reliability,", f",{reliability},")
    return write_study(folder, codes=codes)


def test_coder_role_words_are_mapped(tmp_path):
    settings = config(
        coder_role_values={"primary": ["main", "first"], "reliability": ["Check", "second"]}
    )
    result = ingest(settings, role_study(tmp_path, " Main ", "SECOND"))
    assert result.codes["role"].tolist() == ["primary"] * 3 + ["reliability"] * 2 + ["primary"] * 3
    for column, expected in EXPECTED_CONSTRUCTS.items():
        assert result.sessions[column].tolist() == expected, column


def test_unlisted_role_word_names_the_key_to_set(tmp_path):
    settings = config(coder_role_values={"primary": ["main"]}, config_file="lab.yaml")
    error = failure(role_study(tmp_path), settings)
    assert located(error.problems) == [
        ("codes.csv", 5, "coder_role (role)", "second"),
        ("codes.csv", 6, "coder_role (role)", "second"),
    ]
    assert error.problems[0].message == "coder role 'second' is not listed"
    assert "`coder_role_values:` in lab.yaml" in error.problems[0].hint
    with pytest.raises(ConfigError, match="coder_role_values: 'MAIN' is listed under both"):
        ingest(config(coder_role_values={"primary": ["main"], "reliability": ["MAIN"]}), tmp_path)


# ------------------------------------------------------------ constructs as columns


def test_a_construct_declared_in_the_codebook_is_accepted_as_a_session_column(tmp_path):
    codebook = tmp_path / "codebook.yaml"
    content = yaml.safe_load((REPO / "config" / "codebook.yaml").read_text(encoding="utf-8"))
    content["constructs"]["homework_noncompliance"] = {
        "aggregate": "column",
        "kind": "count",
        "label": "Homework not done",
    }
    codebook.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    lines = SESSIONS.strip().splitlines()
    counts = ["hw_not_done", "0", "2", "", "1", "0", "3", "1"]
    sessions = "\n".join(f"{line},{n}" for line, n in zip(lines, counts, strict=True)) + "\n"
    write_study(tmp_path, sessions=sessions)
    columns = copy.deepcopy(CONFIG["columns"])
    columns["sessions"]["homework_noncompliance"] = "hw_not_done"
    result = ingest(config(columns=columns, codebook=str(codebook)), tmp_path)
    assert result.sessions["homework_noncompliance"].dtype == "Int64"
    assert result.sessions["homework_noncompliance"].tolist() == [0, 2, NA, 1, 0, 3, 1]
    bad = sessions.replace("003,2,yes,50,yes,6.1,no,,,1", "003,2,yes,50,yes,6.1,no,,,-1")
    error = failure(
        write_study(tmp_path, sessions=bad), config(columns=columns, codebook=str(codebook))
    )
    assert located(error.problems) == [("sessions.csv", 8, "hw_not_done (homework_noncompliance)",
                                        "-1")]  # fmt: skip
    # Not declared: refused, naming the column, the file and both places to declare it.
    error = failure(tmp_path, config(columns=columns))
    assert located(error.problems) == [("sessions.csv", None, "hw_not_done", None)]
    assert "docs/data-dictionary.md" in error.problems[0].message
    assert "codebook.yaml" in error.problems[0].message
    assert "aggregate: column, kind: count" in error.problems[0].hint


# ------------------------------------------------------------------ SPSS input


def test_spss_clients_file_with_value_labels_and_user_missing_values(tmp_path):
    import pyreadstat

    write_study(tmp_path)
    # The clients of CLIENTS, coded as an SPSS user would: treatment and end status as
    # numbers with value labels, baseline severity with -99 as user-missing.
    frame = pd.DataFrame(
        {
            "client_id": ["001", "002", "003"],
            "therapist_id": ["T1", "T1", "T2"],
            "treatment": [1.0, 2.0, 3.0],
            "planned_sessions": [3.0, 3.0, 2.0],
            "end_status": [1.0, 2.0, 1.0],
            "baseline_severity": [12.0, 15.0, -99.0],
        }
    )
    path = tmp_path / "clients.sav"
    pyreadstat.write_sav(
        frame,
        path,
        variable_value_labels={
            "treatment": {1: "CBT", 2: "psychodynamic", 3: "ERP"},
            "end_status": {1: "Completed", 2: "drop-out"},
        },
        missing_ranges={"baseline_severity": [-99.0]},
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    settings = config(data={"clients": "clients.sav", "sessions": "sessions.csv",
                            "codes": "codes.csv"})  # fmt: skip
    result = ingest(settings, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    clients = result.clients
    assert clients["treatment_label"].tolist() == ["CBT", "psychodynamic", "ERP"]
    assert clients["framework"].tolist() == ["cognitive", "psychoanalytic", "behavioral"]
    assert clients["end_status"].tolist() == ["completed", "dropout", "completed"]
    assert clients["planned_sessions"].tolist() == [3, 3, 2]
    assert clients["baseline_severity"].tolist()[:2] == [12.0, 15.0]
    assert pd.isna(clients.loc[2, "baseline_severity"])
    report = format_validation_report(result)
    assert "clients.sav: treatment: 3 value labels used (1 = CBT, 2 = psychodynamic, 3 = ERP)" in (
        report
    )
    assert "clients.sav: end_status: 2 value labels used (1 = Completed, 2 = drop-out)" in report
    assert "| clients.sav | baseline_severity | `-99` | 1 | the SPSS file (user-missing) |" in (
        report
    )
    # A value without a label stays the value, and is reported with its case number.
    frame.loc[1, "treatment"] = 4.0
    pyreadstat.write_sav(frame, path, variable_value_labels={"treatment": {1: "CBT"}})
    error = failure(tmp_path, settings)
    assert ("clients.sav", 2, "treatment (treatment_label)", "4") in located(error.problems)


# ------------------------------------------------------------- lenient, by cell

# Four bad cells in columns that are neither keys nor required (kept rows, cell set to
# missing), one bad required cell (client 003 set aside) and one bad code (the codes of
# session 002-2 set aside).
LENIENT_CLIENTS = CLIENTS.replace("Completed,12", "Completed,x").replace(
    "003,T2,ERP,2", "003,T2,ERP,two"
)
LENIENT_SESSIONS = (
    SESSIONS.replace("001,1,yes,50,,5.5", "001,1,yes,50,,high")
    .replace("001,2,yes,45,", "001,2,yes,45 min,")
    .replace("002,2,yes,50,,4.5,yes,3", "002,2,yes,50,,4.5,yes,7")
)
LENIENT_CODES = CODES.replace("002,2,3,R1,primary,R_VAL", "002,2,3,R1,primary,R_XYZ")


def test_lenient_mode_sets_aside_bad_cells_rows_and_clients(tmp_path):
    write_study(tmp_path, LENIENT_CLIENTS, LENIENT_SESSIONS, LENIENT_CODES)
    result = ingest(lenient(), tmp_path)
    # Clients: 003 set aside (planned_sessions required); 001 kept, severity missing.
    assert result.clients["client"].tolist() == ["001", "002"]
    assert pd.isna(result.clients.loc[0, "baseline_severity"])
    assert result.clients.loc[1, "baseline_severity"] == 15.0
    # Sessions: 003's two set aside; three cells set to missing; 002-2 kept, not coded.
    sessions = result.sessions
    assert sessions[["client", "session"]].values.tolist() == [
        ["001", 1], ["001", 2], ["001", 3], ["002", 1], ["002", 2],
    ]  # fmt: skip
    assert pd.isna(sessions.loc[0, "alliance"]) and sessions.loc[1, "alliance"] == 5.0
    assert pd.isna(sessions.loc[1, "minutes"]) and sessions.loc[0, "minutes"] == 50.0
    assert pd.isna(sessions.loc[4, "psq_intensity"]) and sessions.loc[4, "psq_tension"]
    assert sessions["ruptures"].tolist() == [1, 0, NA, 0, NA]  # 002-2's codes set aside
    assert sessions["repaired"].tolist() == [1, 0, NA, 0, NA]
    assert result.codes["session"].tolist() == [1, 1, 1, 1, 1]  # the codes of 001-1
    quarantine = result.quarantine
    assert quarantine[["file", "row", "column", "action"]].values.tolist() == [
        ["clients.csv", 2, "baseline_severity", "cell set to missing"],
        ["clients.csv", 4, "planned_sessions", "client 003 set aside"],
        ["codes.csv", 7, "session", "set aside with the codes of client 002, session 2"],
        ["codes.csv", 8, "session", "set aside with the codes of client 002, session 2"],
        ["codes.csv", 9, "code", "codes of client 002, session 2 set aside"],
        ["sessions.csv", 2, "wai (alliance)", "cell set to missing"],
        ["sessions.csv", 3, "minutes", "cell set to missing"],
        ["sessions.csv", 6, "psq_intensity", "cell set to missing"],
        ["sessions.csv", 7, "client", "set aside with client 003"],
        ["sessions.csv", 8, "client", "set aside with client 003"],
    ]
    assert quarantine.loc[2, "problem"].endswith(
        "code 'R_XYZ' is not in the codebook (codes.csv row 9)"
    )
    assert result.set_aside == {"cells": 4, "cell_rows": 4, "clients": 1, "sessions": 1,
                                "rows": 6}  # fmt: skip
    report = format_validation_report(result)
    assert (
        "4 cells set to missing in 4 rows; 1 client set aside; the codes of 1 session set "
        "aside; 6 rows set aside." in report
    )
    assert "| clients | clients.csv | 3 | 2 | 1 |" in report
    assert "| sessions | sessions.csv | 7 | 5 | 2 |" in report
    assert "| codes | codes.csv | 8 | 5 | 3 |" in report


def test_spss_yes_no_labels_are_applied_and_number_labels_are_not(tmp_path):
    import pyreadstat

    write_study(tmp_path)
    sessions = pd.read_csv(tmp_path / "sessions.csv", dtype=str)
    frame = pd.DataFrame(
        {
            "client_id": sessions["client_id"],
            "session_no": sessions["session_no"].astype(float),
            # SPSS habit: 1 = yes, 2 = no, labelled
            "attended": sessions["attended"].map({"yes": 1.0, "no": 2.0}),
            "minutes": pd.to_numeric(sessions["minutes"]),
            "wai": pd.to_numeric(sessions["wai"]),
        }
    )
    pyreadstat.write_sav(
        frame,
        tmp_path / "sessions.sav",
        variable_value_labels={"attended": {1: "Yes", 2: "No"}, "wai": {5: "high"}},
    )
    columns = copy.deepcopy(CONFIG["columns"])
    columns["sessions"] = {
        key: columns["sessions"][key]
        for key in ("client", "session", "attended", "minutes", "alliance")
    }
    data = {"clients": "clients.csv", "sessions": "sessions.sav", "codes": "codes.csv"}
    result = ingest(config(data=data, columns=columns), tmp_path)
    assert result.sessions["attended"].tolist() == [True, True, False, True, True, True, True]
    assert result.sessions["alliance"].tolist()[:2] == [5.5, 5.0]  # the label "high" not used
    report = format_validation_report(result)
    assert "sessions.sav: attended: 2 value labels used (1 = Yes, 2 = No)." in report
    assert "sessions.sav: wai: 1 value label not applied (5 = high)" in report


def test_messages_name_the_config_file_used(tmp_path):
    settings = config(config_file="studies/lab.yaml")
    settings["data"]["clients"] = "absent.csv"
    error = failure(write_study(tmp_path), settings)
    assert error.problems[0].hint == (
        "Fix the file, or its path under `data: clients:` in studies/lab.yaml."
    )
    error = failure(write_study(tmp_path, clients=CLIENTS_WITH_EMAIL), config())
    assert "in config/config.yaml" in error.problems[0].hint
    with pytest.raises(ValidationFailed) as caught:
        ingest(config(), tmp_path, config_file="other.yaml")
    assert "`validation: identifiers: drop` in other.yaml" in caught.value.problems[0].hint


def test_lenient_problems_that_follow_from_a_client_set_aside_go_with_the_client(tmp_path):
    # 001-1 attended "maybe": the client is set aside; its codes then refer to a session
    # not known to be attended, which is part of the same client, not a session of its own.
    sessions = SESSIONS.replace("001,1,yes,50", "001,1,maybe,50")
    result = ingest(lenient(), write_study(tmp_path, sessions=sessions))
    assert result.clients["client"].tolist() == ["002", "003"]
    assert result.set_aside == {"cells": 0, "cell_rows": 0, "clients": 1, "sessions": 0,
                                "rows": 9}  # fmt: skip
    actions = set(result.quarantine.loc[result.quarantine["file"] == "codes.csv", "action"])
    assert actions == {"set aside with client 001"}
