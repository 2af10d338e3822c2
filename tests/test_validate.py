"""Tests for resistance_outcomes.validate: every kind of problem names file, row, column and
value; identifier columns are found by name and by content."""

import re
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from resistance_outcomes.codebook import load_codebook, select_analysis_codes
from resistance_outcomes.io import read_table
from resistance_outcomes.validate import (
    Problem,
    ValidationFailed,
    check_analysis_coders,
    check_coding_log,
    check_references,
    find_identifier_columns,
    find_suspect_missing_codes,
    load_schemas,
    schema_with_constructs,
    validate_table,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = load_schemas(REPO / "workflow" / "schemas")
CODEBOOK = load_codebook(REPO / "config" / "codebook.yaml")
# the sessions schema as ingest uses it: its own columns and the codebook's constructs
SESSIONS = schema_with_constructs(SCHEMAS["sessions"], CODEBOOK)
ANNOMI = REPO.parent / "shared" / "external" / "annomi" / "AnnoMI-simple.csv"


def raw(columns: dict, first_row: int = 2) -> pd.DataFrame:
    """A table as read_table returns it: text, indexed by spreadsheet row."""
    length = len(next(iter(columns.values())))
    return pd.DataFrame(
        columns, index=pd.RangeIndex(first_row, first_row + length, name="row"), dtype=str
    )


def sessions_raw(**changes) -> pd.DataFrame:
    columns = {
        "study": ["s", "s", "s"],
        "client": ["007", "007", "007"],
        "session": ["1", "2", "3"],
        "attended": ["yes", "No", "TRUE"],
        "minutes": ["50", None, "45.5"],
    }
    columns.update(changes)
    return raw(columns)


def located(problems):
    return [(p.file, p.row, p.column, p.value) for p in problems]


# ------------------------------------------------------------------ schemas


def test_schemas_are_valid_json_schema_and_describe_valid_rows():
    row = {"study": "s", "client": "007", "session": 2, "attended": True, "minutes": 50.0}
    jsonschema.validate(row, SCHEMAS["sessions"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(row | {"session": 0}, SCHEMAS["sessions"])


def dictionary_columns(section: str) -> set[str]:
    """Column names in one section of docs/data-dictionary.md (first table cell of each row)."""
    text = (REPO / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}")[1].split("\n## ")[0]
    names = set()
    for line in body.splitlines():
        if line.startswith("| ") and not line.startswith("| column") and "---" not in line:
            names |= set(re.findall(r"[a-z_]+", line.split("|")[1]))
    return names


@pytest.mark.parametrize(
    ("table", "sections", "added"),
    [
        ("clients", ["clients"], set()),
        ("sessions", ["sessions"], set()),
        ("codes", ["codes"], set()),
        ("coding_log", ["coding_log"], set()),
    ],
)
def test_schemas_match_the_data_dictionary(table, sections, added):
    documented = set().union(*(dictionary_columns(section) for section in sections))
    assert set(SCHEMAS[table]["properties"]) == documented | added


def test_constructs_of_the_shipped_codebook_are_documented():
    # Construct columns are not in the sessions schema: the codebook declares them.
    made = {name for name, c in CODEBOOK.constructs.items() if c.aggregate != "none"}
    assert dictionary_columns("Construct columns") == made
    assert not made & set(SCHEMAS["sessions"]["properties"])


def test_constructs_as_session_columns_are_typed_by_their_kind():
    from resistance_outcomes.codebook import Codebook, Construct

    codebook = Codebook(
        {},
        {
            "homework_noncompliance": Construct("homework_noncompliance", "column",
                                                value_kind="count"),
            "engagement": Construct("engagement", "column", value_kind="rating",
                                    minimum=1.0, maximum=7.0),
            "crisis": Construct("crisis", "column", value_kind="boolean"),
        },
    )  # fmt: skip
    schema = schema_with_constructs(SCHEMAS["sessions"], codebook)
    table = sessions_raw(
        homework_noncompliance=["2", "-1", "1.5"],
        engagement=["3.5", "8", None],
        crisis=["yes", "no", "maybe"],
    )
    typed, problems = validate_table(table, "sessions", "s.csv", schema)
    assert typed["homework_noncompliance"].dtype == "Int64"
    assert typed["homework_noncompliance"].tolist()[0] == 2
    assert typed["engagement"].tolist()[0] == 3.5
    assert typed["crisis"].tolist()[:2] == [True, False]
    assert sorted((p.row, p.column, p.message) for p in problems) == [
        (3, "engagement", "above the maximum 7"),
        (3, "homework_noncompliance", "below the minimum 0"),
        (4, "crisis", "not a yes/no value"),
        (4, "homework_noncompliance", "not a whole number"),
    ]
    # The example's constructs are typed exactly as the schema typed them before.
    assert SESSIONS["properties"]["resolution_mean"]["minimum"] == 1
    assert SESSIONS["properties"]["resolution_mean"]["maximum"] == 5
    assert SESSIONS["properties"]["ruptures"]["type"] == ["integer", "null"]


def test_numbers_that_look_like_undeclared_missing_codes():
    # severity: others 12..15, so values beyond 12 - 15 = -3 and 15 + 15 = 30 are suspect:
    # -99 and 999. age: others 30..98, bounds -68 and 196, so 99 is a real age.
    raw_table = raw({"severity": ["12", "-99", "15", "999"], "age": ["98", "99", "40", "30"]})
    typed = raw_table.astype("float64")
    problems = find_suspect_missing_codes(typed, raw_table, "c.csv", ["severity", "age"], "my.yaml")
    assert located(problems) == [("c.csv", 3, "severity", "-99"), ("c.csv", 5, "severity", "999")]
    assert "missing_values:` in my.yaml" in problems[0].hint
    assert "undeclared_codes: keep" in problems[0].hint


def test_out_of_range_values_suggest_declaring_a_missing_value_code():
    _, problems = validate_table(
        sessions_raw(minutes=["50", None, "-99"]), "sessions", "s.csv", SCHEMAS["sessions"],
        config_file="lab.yaml",
    )  # fmt: skip
    assert located(problems) == [("s.csv", 4, "minutes", "-99")]
    assert "declare it under `missing_values:` in lab.yaml" in problems[0].hint


# ------------------------------------------------------------ single tables


def test_valid_table_is_converted_to_its_types():
    typed, problems = validate_table(sessions_raw(), "sessions", "s.csv", SCHEMAS["sessions"])
    assert problems == []
    assert typed["client"].tolist() == ["007"] * 3
    assert typed["session"].dtype == "Int64"
    assert typed["attended"].tolist() == [True, False, True]
    assert typed["minutes"].dtype == "float64"
    assert typed.index.tolist() == [2, 3, 4]


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("session", ["1", "two", "3"], "not a whole number"),
        ("session", ["1", "1.5", "3"], "not a whole number"),
        ("session", ["1", "0", "3"], "below the minimum 1"),
        ("attended", ["yes", "maybe", "no"], "not a yes/no value"),
        ("minutes", ["50", "45 min", "50"], "not a number"),
        ("minutes", ["50", "0", "50"], "must be greater than 0"),
        ("minutes", ["50", "4,5", "50"], "not a number"),
        ("alliance", ["5", "8", "5"], "above the maximum 7"),
        ("psq_intensity", ["1", "6", "1"], "above the maximum 5"),
    ],
)
def test_bad_values_are_reported_with_file_row_column_and_value(column, values, message):
    table = sessions_raw(**{column: values})
    typed, problems = validate_table(table, "sessions", "s.csv", SCHEMAS["sessions"])
    assert located(problems) == [("s.csv", 3, column, values[1])]
    assert problems[0].message == message
    assert pd.isna(typed.loc[3, column])


def test_integer_written_as_decimal_is_accepted():
    typed, problems = validate_table(
        sessions_raw(session=["1.0", "2", " 3 "]), "sessions", "s.csv", SCHEMAS["sessions"]
    )
    assert problems == [] and typed["session"].tolist() == [1, 2, 3]


def test_category_values_match_ignoring_case_and_spaces():
    clients = raw(
        {
            "study": ["s", "s"],
            "client": ["1", "2"],
            "therapist": ["T", "T"],
            "treatment_label": ["CBT", "CBT"],
            "planned_sessions": ["8", "8"],
            "end_status": [" Dropout", "finished"],
        }
    )
    typed, problems = validate_table(clients, "clients", "c.csv", SCHEMAS["clients"])
    assert typed.loc[2, "end_status"] == "dropout"
    assert list(typed["end_status"].cat.categories) == [
        "completed",
        "dropout",
        "referred",
        "ongoing",
    ]
    assert located(problems) == [("c.csv", 3, "end_status", "finished")]
    assert "completed, dropout, referred, ongoing" in problems[0].message


def test_empty_required_cell_and_missing_required_column():
    table = sessions_raw(client=["007", "  ", "007"]).drop(columns="attended")
    _, problems = validate_table(table, "sessions", "s.csv", SCHEMAS["sessions"])
    assert located(problems) == [("s.csv", None, "attended", None), ("s.csv", 3, "client", None)]
    assert "required column 'attended' is missing" in problems[0].message
    assert "columns: sessions:" in problems[0].hint
    assert "must be filled" in problems[1].message


def test_duplicate_keys_are_reported_on_every_repeated_row():
    table = sessions_raw(session=["1", "2", "1"])
    _, problems = validate_table(table, "sessions", "s.csv", SCHEMAS["sessions"])
    assert located(problems) == [("s.csv", 2, "session", "1"), ("s.csv", 4, "session", "1")]
    assert "(study=s, client=007, session=1) appears on rows 2, 4" in problems[0].message


def test_derived_column_in_input_is_refused():
    clients = raw(
        {
            "study": ["s"],
            "client": ["1"],
            "therapist": ["T"],
            "treatment_label": ["CBT"],
            "framework": ["cognitive"],
            "planned_sessions": ["8"],
            "end_status": ["completed"],
        }
    )
    _, problems = validate_table(clients, "clients", "c.csv", SCHEMAS["clients"])
    assert located(problems) == [("c.csv", None, "framework", None)]


def test_columns_outside_the_schema_are_kept_as_text():
    table = sessions_raw().assign(extra=["a", "b", "c"])
    typed, _ = validate_table(table, "sessions", "s.csv", SCHEMAS["sessions"])
    assert typed["extra"].tolist() == ["a", "b", "c"]


# --------------------------------------------------------- across the tables


def typed_tables(sessions=None, codes=None):
    clients = raw(
        {
            "study": ["s", "s"],
            "client": ["007", "008"],
            "therapist": ["T1", "T1"],
            "treatment_label": ["CBT", "PDT"],
            "planned_sessions": ["3", "3"],
            "end_status": ["completed", "dropout"],
        }
    )
    sessions = sessions if sessions is not None else sessions_raw()
    typed_clients, _ = validate_table(clients, "clients", "c.csv", SCHEMAS["clients"])
    typed_sessions, _ = validate_table(sessions, "sessions", "s.csv", SESSIONS)
    typed_codes = None
    if codes is not None:
        typed_codes, _ = validate_table(raw(codes), "codes", "k.csv", SCHEMAS["codes"])
    return typed_clients, typed_sessions, typed_codes


FILES = {"clients": "c.csv", "sessions": "s.csv", "codes": "k.csv"}


def codes_raw(rows):
    """rows: (client, session, unit, coder, code, value)."""
    names = ["client", "session", "unit", "coder", "code", "value"]
    columns = {name: [str(row[i]) for row in rows] for i, name in enumerate(names)}
    return {"study": ["s"] * len(rows), **columns}


def test_consistent_tables_have_no_problems():
    codes = codes_raw(
        [
            ("007", 1, 1, "A", "W_MIN", 1),
            ("007", 1, 1, "A", "RES", 4),
            ("007", 3, 2, "A", "M_ARG", 1),
        ]
    )
    assert check_references(*typed_tables(codes=codes), CODEBOOK, FILES) == []


def test_sessions_of_unknown_clients():
    sessions = sessions_raw(client=["007", "007", "999"], session=["1", "2", "1"])
    problems = check_references(*typed_tables(sessions), files=FILES)
    assert located(problems) == [("s.csv", 4, "client", "999")]
    assert problems[0].message == "client is not in c.csv"


def test_session_numbers_with_gaps():
    sessions = raw(
        {
            "study": ["s"] * 3,
            "client": ["007"] * 3,
            "session": ["2", "3", "5"],
            "attended": ["no"] * 3,
        }
    )
    problems = check_references(*typed_tables(sessions), files=FILES)
    assert located(problems) == [("s.csv", 2, "session", "2"), ("s.csv", 4, "session", "5")]
    assert [p.message for p in problems] == [
        "session 1 is missing before this one",
        "session 4 is missing before this one",
    ]


def test_minutes_are_optional_but_not_given_for_missed_sessions():
    # Row 2: attended without minutes, valid (minutes are optional). Row 3: not attended,
    # with minutes: a contradiction.
    sessions = sessions_raw(minutes=[None, "50", "45"])
    problems = check_references(*typed_tables(sessions), files=FILES)
    assert located(problems) == [("s.csv", 3, "minutes", "50.0")]
    assert problems[0].message == "minutes given for a session not attended"


def test_repaired_cannot_exceed_ruptures():
    sessions = sessions_raw(ruptures=["1", None, "0"], repaired=["2", None, "0"])
    problems = check_references(*typed_tables(sessions), files=FILES)
    assert located(problems) == [("s.csv", 2, "repaired", "2")]


def test_negative_counts_are_out_of_range():
    _, problems = validate_table(
        sessions_raw(ruptures=["-1", "0", "0"]), "sessions", "s.csv", SESSIONS
    )
    assert located(problems) == [("s.csv", 2, "ruptures", "-1")]


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (("007", 2, 1, "A", "W_MIN", 1), "session", "2", "client 007, session 2 was not attended"),
        (("007", 9, 1, "A", "W_MIN", 1), "session", "9", "client 007, session 9 is not in s.csv"),
        (("007", 1, 1, "A", "W_XYZ", 1), "code", "W_XYZ", "code 'W_XYZ' is not in the codebook"),
        (("007", 1, 1, "A", "W_MIN", 2), "value", "2", "W_MIN takes the value 1 or 0"),
        (("007", 1, 1, "A", "W_MIN", 0.5), "value", "0.5", "W_MIN takes the value 1 or 0"),
    ],
)
def test_code_problems(row, column, value, message):
    codes = codes_raw([("007", 1, 1, "A", "C_REJ", 1), row])
    problems = check_references(*typed_tables(codes=codes), CODEBOOK, FILES)
    assert located(problems) == [("k.csv", 3, column, value)]
    assert problems[0].message == message


def test_resolution_rating_out_of_range_and_without_a_rupture():
    codes = codes_raw(
        [
            ("007", 1, 1, "A", "W_MIN", 1),
            ("007", 1, 1, "A", "RES", 6),
            ("007", 1, 2, "A", "RES", 3),
            ("007", 1, 1, "B", "RES", 4),
        ]
    )
    problems = check_references(*typed_tables(codes=codes), CODEBOOK, FILES)
    assert located(problems) == [
        ("k.csv", 3, "value", "6"),
        ("k.csv", 4, "code", "RES"),
        ("k.csv", 5, "code", "RES"),
    ]
    assert problems[0].message == "RES takes a value from 1 to 5"
    assert problems[1].message == "rating on unit 2 without a ruptures marker by coder A"
    assert problems[2].message == "rating on unit 1 without a ruptures marker by coder B"


def test_construct_supplied_both_as_column_and_through_codes():
    sessions = sessions_raw(ruptures=["1", None, "0"])
    codes = codes_raw([("007", 1, 1, "A", "W_MIN", 1)])
    problems = check_references(*typed_tables(sessions, codes), CODEBOOK, FILES)
    assert located(problems) == [("s.csv", None, "ruptures", None)]
    assert "made from the codes in k.csv" in problems[0].message


def test_analysis_coder_problems():
    codes = raw(
        {
            "study": ["s"] * 5,
            "client": ["1"] * 5,
            "session": ["1", "1", "2", "2", "3"],
            "coder": ["A", "B", "A", "A", "C"],
            "role": ["primary", "primary", "primary", "reliability", "reliability"],
        }
    )
    typed, _ = validate_table(codes, "codes", "k.csv", SCHEMAS["codes"] | {"required": []})
    problems = check_analysis_coders(select_analysis_codes(typed), "k.csv")
    assert located(problems) == [("k.csv", 2, "coder", "A"), ("k.csv", 4, "role", "primary")]
    assert problems[0].message == "session 1 of client 1 has 2 primary coders (A, B)"
    assert problems[1].message == "coder A is both primary and reliability coder in this session"
    # Session 3 has only a reliability coder: its primary coder found nothing. Under a list
    # of coders, a session coded only by unlisted coders is a problem.
    listed = check_analysis_coders(select_analysis_codes(typed, ["A"]), "k.csv", ["A"])
    assert ("k.csv", 6, "coder", "C") in located(listed)


# ------------------------------------------------------------ error message


def test_validation_failed_groups_problems_and_limits_examples():
    problems = [
        Problem("s.csv", row, "minutes", "x", "not a number", "Write a number.")
        for row in range(2, 10)
    ]
    problems.append(Problem("c.csv", None, "client", None, "required column missing", "Map it."))
    text = str(ValidationFailed(problems, max_examples=3))
    assert text.startswith("Validation found 9 problems.")
    assert "s.csv, column 'minutes' (8 problems):" in text
    assert "  row 2, 'x': not a number" in text and "row 5" not in text
    assert "... and 5 more" in text
    assert "What to do: Write a number." in text
    assert "c.csv, column 'client' (1 problem):" in text


def test_problem_reads_as_a_sentence():
    problem = Problem("s.csv", 7, "minutes", "45 min", "not a number", "Write the number only.")
    assert str(problem) == (
        "s.csv, row 7, column 'minutes', value '45 min': not a number. Write the number only."
    )


# ------------------------------------------------------------ identifiers


@pytest.mark.parametrize(
    "name",
    [
        "name",
        "first_name",
        "LastName",
        "Email",
        "e_mail",
        "phoneNumber",
        "DOB",
        "date_of_birth",
        "BirthDate",
        "home address",
        "PostCode",
        "zip",
        "nhs_number",
        "SSN",
        "mrn",
        "session_notes",
        "utterance_text",
        "Transcript",
        "comments",
    ],
)
def test_identifier_columns_by_name(name):
    problems = find_identifier_columns(raw({name: ["1"]}), "c.csv")
    assert located(problems) == [("c.csv", None, name, None)]
    assert problems[0].message.startswith("the column name suggests")


@pytest.mark.parametrize(
    "name",
    [
        "client_id",
        "transcript_id",
        "note_type",
        "treatment",
        "wai",
        "session_no",
        "coder",
        "segment",
        "psq_tension",
    ],
)
def test_ordinary_column_names_are_not_identifiers(name):
    assert find_identifier_columns(raw({name: ["1"]}), "c.csv") == []


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["C1", "ann.lee@example.org"], "holds an e-mail address"),
        (["C1", "+44 20 7946 0958"], "holds a phone number"),
        (["C1", "(555) 123-4567"], "holds a phone number"),
        (["C1", "1980-02-29"], "holds full dates (day, month, year)"),
        (["C1", "29/02/1980"], "holds full dates (day, month, year)"),
        (["C1", "1975-06-01 00:00:00"], "holds full dates (day, month, year)"),
        (
            ["ok", "she said she would not come back because the last session went badly"],
            "holds free text (10 or more words in a cell)",
        ),
    ],
)
def test_identifier_columns_by_content_never_show_the_value(values, reason):
    problems = find_identifier_columns(raw({"x": values}), "c.csv")
    assert located(problems) == [("c.csv", 3, "x", None)]
    assert problems[0].message == reason
    assert values[1] not in str(ValidationFailed(problems))


@pytest.mark.parametrize(
    "values",
    [
        ["0012345678", "0099999999"],
        ["5.333333333333", "4.28571428571"],
        ["C-001-002", "T19"],
        ["2019", "2020"],
        ["1-5", "3"],
        ["cognitive behavioural therapy with exposure", "CBT"],
    ],
)
def test_ordinary_values_are_not_identifiers(values):
    assert find_identifier_columns(raw({"x": values}), "c.csv") == []


@pytest.mark.skipif(not ANNOMI.is_file(), reason="AnnoMI corpus not available")
def test_annomi_utterances_are_found_by_name_and_by_content():
    corpus = read_table(ANNOMI)
    # AnnoMI README: 9,699 utterances (one utterance text holds a newline).
    assert len(corpus) == 9699
    flagged = {p.column: p.message for p in find_identifier_columns(corpus, "AnnoMI-simple.csv")}
    # Video titles (which hold first names) and some topics are long free text too.
    assert flagged == {
        "utterance_text": "the column name suggests free text",
        "video_title": "holds free text (10 or more words in a cell)",
        "topic": "holds free text (10 or more words in a cell)",
    }
    renamed = corpus[["transcript_id", "utterance_text"]].rename(columns={"utterance_text": "u"})
    problems = find_identifier_columns(renamed, "AnnoMI-simple.csv")
    assert [(p.column, p.message) for p in problems] == [
        ("u", "holds free text (10 or more words in a cell)")
    ]


# ------------------------------------------------------------------ coding log


def test_coding_log_schema_and_checks_against_the_codes():
    log, problems = validate_table(
        raw(
            {
                "study": ["s", "s", "s"],
                "client": ["1", "1", "1"],
                "session": ["1", "1", "2"],
                "coder": ["A", "B", "A"],
                "role": ["primary", "primary", "primary"],
                "units": ["3", "2", "0"],
            }
        ),
        "coding_log",
        "log.csv",
        SCHEMAS["coding_log"],
    )
    assert located(problems) == [("log.csv", 4, "units", "0")]  # at least one unit
    codes, _ = validate_table(
        raw(
            {
                "study": ["s"] * 4,
                "client": ["1"] * 4,
                "session": ["1", "1", "1", "2"],
                "unit": ["3", "4", "1", "1"],
                "coder": ["A", "B", "B", "C"],
                "role": ["primary", "reliability", "reliability", "primary"],
                "code": ["W_MIN"] * 4,
            }
        ),
        "codes",
        "k.csv",
        SCHEMAS["codes"],
    )
    files = {"codes": "k.csv", "coding_log": "log.csv"}
    problems = check_coding_log(log, codes, files)
    # B coded unit 4 of session 1 but logged 2 units; B is reliability coder in the codes
    # and primary in the log; C is not logged for session 2.
    assert located(problems) == [
        ("k.csv", 5, "coder", "C"),
        ("log.csv", 3, "units", "2"),
        ("log.csv", 3, "role", "primary"),
    ]
    assert problems[0].message == "coder C is not in log.csv for client 1, session 2"
