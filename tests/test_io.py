"""Tests for resistance_outcomes.io: readers keep raw text and spreadsheet row numbers."""

import hashlib
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resistance_outcomes.config import ConfigError
from resistance_outcomes.io import (
    DEFAULT_MISSING_VALUES,
    InputFileError,
    apply_missing_values,
    match_missing_values,
    read_canonical,
    read_input,
    read_table,
    read_yaml,
    write_table,
)

HEADER = ["client_id", "session_no", "minutes", "treatment"]
ROWS = [
    ["007", "1", "50.5", "CBT"],
    ["007", "2", "", " Psychoanalytic "],
    ["010", "1", "45", "ERP"],
]
# What every reader must return for HEADER/ROWS: text as written (leading zeros and spaces
# kept), empty cells missing, index = spreadsheet row (header is row 1).
EXPECTED = pd.DataFrame(
    {
        "client_id": ["007", "007", "010"],
        "session_no": ["1", "2", "1"],
        "minutes": ["50.5", None, "45"],
        "treatment": ["CBT", " Psychoanalytic ", "ERP"],
    },
    index=pd.RangeIndex(2, 5, name="row"),
    dtype=str,
)


def write_delimited(path: Path, separator: str, header=HEADER, rows=ROWS) -> Path:
    lines = [separator.join(header)] + [separator.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_xlsx(path: Path, header=HEADER, rows=ROWS, sheet="Sheet1") -> Path:
    workbook = openpyxl.Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    worksheet.append(header)
    for row in rows:
        worksheet.append([cell if cell != "" else None for cell in row])
    workbook.save(path)
    return path


def write_parquet(path: Path) -> Path:
    columns = {name: [row[i] or None for row in ROWS] for i, name in enumerate(HEADER)}
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("t.csv", lambda p: write_delimited(p, ",")),
        ("t.tsv", lambda p: write_delimited(p, "\t")),
        ("t.txt", lambda p: write_delimited(p, "\t")),
        ("t.xlsx", write_xlsx),
        ("t.parquet", write_parquet),
    ],
)
def test_every_format_reads_the_same_table(tmp_path, name, writer):
    table = read_table(writer(tmp_path / name))
    pd.testing.assert_frame_equal(table, EXPECTED, check_dtype=False)
    assert all(isinstance(v, str) for v in table.to_numpy().ravel() if not pd.isna(v))


def test_typed_parquet_and_excel_numbers_arrive_as_text(tmp_path):
    path = tmp_path / "typed.parquet"
    pq.write_table(
        pa.table({"session": [1, 2], "alliance": [5.5, None], "ok": [True, False]}), path
    )
    table = read_table(path)
    assert table["session"].tolist() == ["1", "2"]
    assert table.loc[2, "alliance"] == "5.5" and pd.isna(table.loc[3, "alliance"])
    assert table["ok"].tolist() == ["True", "False"]
    xlsx = write_xlsx(tmp_path / "typed.xlsx", ["session", "alliance"], [[1, 5.5], [2, 7]])
    assert read_table(xlsx).to_dict("list") == {"session": ["1", "2"], "alliance": ["5.5", "7"]}


def test_blank_rows_are_skipped_but_row_numbers_stay_those_of_the_spreadsheet(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("a,b\n1,x\n\n,\n2,y\n", encoding="utf-8")
    table = read_table(path)
    # Lines: 1 header, 2 data, 3 blank, 4 empty cells, 5 data.
    assert table.index.tolist() == [2, 5]
    assert table["a"].tolist() == ["1", "2"]


def test_quoted_multiline_cell_counts_as_one_row(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('id,text\n1,"two\nlines"\n2,plain\n', encoding="utf-8")
    assert read_table(path).index.tolist() == [2, 3]


def test_only_empty_cells_are_missing_when_read(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("id,a,b,c\n1,NA,n/a, \n2,#N/A,.,null\n3,NA ,nan,keep\n", encoding="utf-8")
    table = read_table(path)
    assert table["a"].tolist() == ["NA", "#N/A", "NA "]  # codes stay text: applied later
    assert table["c"].isna().tolist() == [True, False, False]  # " " is empty


def test_default_missing_value_codes_are_applied_and_counted(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("id,a,b,c\n1,NA,n/a, \n2,#N/A,.,null\n3,NA ,nan,keep\n", encoding="utf-8")
    table = read_table(path)
    codes = {column: DEFAULT_MISSING_VALUES for column in ["a", "b", "c"]}
    cleaned, counts = apply_missing_values(table, codes)
    assert cleaned[["a", "b"]].isna().all().all()
    assert cleaned["c"].isna().tolist() == [True, True, False]
    assert cleaned.loc[4, "c"] == "keep"
    assert cleaned["id"].tolist() == ["1", "2", "3"]
    # By hand: a holds NA twice (one with a trailing space) and #N/A once; b n/a (= N/A,
    # case ignored), "." and nan (= NaN); c null (= NULL); the empty cell is not counted.
    assert counts == {
        "a": {"#N/A": 1, "NA": 2},
        "b": {".": 1, "N/A": 1, "NaN": 1},
        "c": {"NULL": 1},
    }


def test_declared_numeric_codes_match_by_value_not_by_spelling():
    table = pd.DataFrame({"minutes": ["50", "-99", "-99.0", " -99 ", "-990", "99", None]})
    cleaned, counts = apply_missing_values(table, {"minutes": ["-99"]})
    assert cleaned["minutes"].isna().tolist() == [False, True, True, True, False, False, True]
    assert cleaned["minutes"].dropna().tolist() == ["50", "-990", "99"]
    assert counts == {"minutes": {"-99": 3}}
    assert match_missing_values(pd.Series(["x"]), [""]).isna().all()  # "" matches nothing


def test_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffclient,x\n1,2\n".encode())
    assert list(read_table(path).columns) == ["client", "x"]


def test_excel_sheet_by_name_and_unknown_sheet(tmp_path):
    path = write_xlsx(tmp_path / "book.xlsx", sheet="Clients")
    assert read_table(path, sheet="Clients").shape == (3, 4)
    with pytest.raises(InputFileError, match="sheet 'Nope'"):
        read_table(path, sheet="Nope")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "empty"),
        ("header.csv", "a,b\n", "no data rows"),
        ("dup.csv", "a,b,a\n1,2,3\n", "'a' appears twice in the header \\(columns 1 and 3\\)"),
        ("noname.csv", "a,,c\n1,2,3\n", "column 2 of the header has no name"),
        ("ragged.csv", "a,b\n1,2\n3,4,5\n", "line 3"),
        ("table.json", "{}", "unknown file type '.json'"),
    ],
)
def test_unreadable_files_give_a_clear_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError, match=message) as error:
        read_table(path)
    assert str(path) in str(error.value)


def test_missing_file_and_non_utf8_file(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        read_table(tmp_path / "absent.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,x\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_table(path)


def test_duplicate_header_in_excel(tmp_path):
    path = write_xlsx(tmp_path / "dup.xlsx", ["a", "a"], [["1", "2"]])
    with pytest.raises(InputFileError, match="appears twice"):
        read_table(path)


def test_reading_never_changes_the_file(tmp_path):
    path = write_delimited(tmp_path / "t.csv", ",")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    read_table(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_table_replaces_the_target_and_leaves_no_temporary_file(tmp_path, suffix):
    target = tmp_path / "out" / f"table{suffix}"
    write_table(pd.DataFrame({"client": ["001"], "n": [1]}), target)
    write_table(pd.DataFrame({"client": ["002", "003"], "n": [2, 3]}), target)
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert read_table(target)["client"].tolist() == ["002", "003"]


def test_write_table_refuses_other_formats(tmp_path):
    with pytest.raises(ValueError, match="parquet or .csv"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "x.xlsx")


def test_read_canonical_keeps_types(tmp_path):
    frame = pd.DataFrame(
        {
            "client": pd.Series(["001"], dtype=str),
            "session": pd.array([1], dtype="Int64"),
            "framework": pd.Categorical(["cognitive"], categories=["behavioral", "cognitive"]),
        }
    )
    path = write_table(frame, tmp_path / "t.parquet")
    back = read_canonical(path)
    assert back["session"].dtype == "Int64"
    assert list(back["framework"].cat.categories) == ["behavioral", "cognitive"]
    assert back.loc[0, "client"] == "001"
    with pytest.raises(InputFileError, match="Parquet"):
        read_canonical(tmp_path / "t.csv")


def test_read_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="codebook not found"):
        read_yaml(tmp_path / "none.yaml", "codebook")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        read_yaml(scalar)


# ------------------------------------------------------------------ SPSS and Stata

SPSS_CLIENTS = pd.DataFrame(
    {
        "client_id": ["007", "008", "009", "010"],
        "treatment": [1.0, 2.0, 3.0, 1.0],
        "end": [1.0, 2.0, 9.0, 1.0],
        "severity": [12.5, -99.0, -950.0, 14.0],
        "sessions": [12.0, 8.0, 10.0, 12.0],
    }
)
SPSS_LABELS = {
    "treatment": {1: "CBT", 2: "PDT", 3: "BA"},
    "end": {1: "completed", 2: "dropout", 9: "not known"},
}
# -99 and the range -999 .. -900 are user-missing in severity, 9 in end.
SPSS_MISSING = {"severity": [-99.0, {"lo": -999.0, "hi": -900.0}], "end": [9.0]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["clients.sav", "clients.zsav"])
def test_spss_file_values_labels_and_user_missing(tmp_path, name):
    import pyreadstat

    path = tmp_path / name
    pyreadstat.write_sav(
        SPSS_CLIENTS,
        path,
        variable_value_labels=SPSS_LABELS,
        missing_ranges=SPSS_MISSING,
        compress=name.endswith(".zsav"),
    )
    before = sha256(path)
    table = read_input(path)
    assert table.kind == "SPSS"
    frame = table.frame
    # Cases are numbered as SPSS's Data View shows them; values as text, whole numbers
    # without ".0"; user-missing values missing; labels not applied by the reader.
    assert frame.index.tolist() == [1, 2, 3, 4]
    assert frame["client_id"].tolist() == ["007", "008", "009", "010"]
    assert frame["treatment"].tolist() == ["1", "2", "3", "1"]
    assert frame["sessions"].tolist() == ["12", "8", "10", "12"]
    assert frame["severity"].isna().tolist() == [False, True, True, False]
    assert frame["severity"].dropna().tolist() == ["12.5", "14"]
    assert frame["end"].isna().tolist() == [False, False, True, False]
    assert table.missing == {"severity": {"-99": 1, "-999 to -900": 1}, "end": {"9": 1}}
    assert table.value_labels == {
        "treatment": {"1": "CBT", "2": "PDT", "3": "BA"},
        "end": {"1": "completed", "2": "dropout", "9": "not known"},
    }
    assert sha256(path) == before
    pd.testing.assert_frame_equal(read_table(path), frame)


def test_stata_file_values_labels_and_extended_missing(tmp_path):
    import pyreadstat

    path = tmp_path / "clients.dta"
    frame = pd.DataFrame(
        {
            "client_id": ["007", "008", "009"],
            "treatment": [1, 2, 2],
            "severity": [12.5, "a", 15.0],  # .a: Stata's extended missing value
        },
        dtype=object,
    )
    pyreadstat.write_dta(
        frame,
        path,
        variable_value_labels={"treatment": {1: "CBT", 2: "PDT"}},
        missing_user_values={"severity": ["a"]},
    )
    before = sha256(path)
    table = read_input(path)
    assert table.kind == "Stata"
    assert table.frame["treatment"].tolist() == ["1", "2", "2"]
    assert table.frame["severity"].isna().tolist() == [False, True, False]
    assert table.frame["severity"].dropna().tolist() == ["12.5", "15"]
    assert table.missing == {"severity": {".a": 1}}
    assert table.value_labels == {"treatment": {"1": "CBT", "2": "PDT"}}
    assert sha256(path) == before


def test_unreadable_spss_file_names_the_file(tmp_path):
    path = tmp_path / "broken.sav"
    path.write_bytes(b"not an SPSS file")
    with pytest.raises(InputFileError, match="cannot be read as an SPSS file") as error:
        read_table(path)
    assert str(path) in str(error.value)


def test_results_are_written_with_the_permissions_of_a_new_file(tmp_path):
    import os
    import stat

    from resistance_outcomes.io import write_text

    old = os.umask(0o022)
    try:
        target = write_text(tmp_path / "summary.md", "# Summary\n")
        (tmp_path / "plain.md").write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.md").stat().st_mode) == 0o644
