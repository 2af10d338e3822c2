"""Bad input through the whole workflow: strict mode stops cleanly, lenient mode quarantines.

Each case edits one cell or column of the embedded example in a scratch copy of the project
and runs Snakemake there. Strict mode must stop before any analysis with a message naming
file, row, column and value, print no Python traceback, and leave no canonical table or
analysis result behind.
"""

import csv

import pandas as pd
import pytest
import yaml
from test_workflow import copy_project, snakemake

pytestmark = pytest.mark.slow


def edit_cell(path, row: int, column: str, value: str) -> None:
    """Set one cell of a CSV file; ``row`` is the spreadsheet row (header = 1)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows[row - 1][rows[0].index(column)] = value
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def add_column(path, name: str, values) -> None:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table[name] = list(values)[: len(table)]
    table.to_csv(path, index=False, lineterminator="\n")


def example(work, name):
    return work / "resources" / "example" / name


CASES = {
    # case: (file, row, column, bad value, words the message must contain)
    "negative minutes": ("sessions.csv", 2, "minutes", "-45", ["minutes", "-45"]),
    "unknown client": ("sessions.csv", 2, "client_id", "C9999", ["client_id", "C9999"]),
    "unmapped treatment label": ("clients.csv", 3, "treatment", "EMDR", ["treatment", "EMDR"]),
    "unknown code": ("codes.csv", 2, "code", "W_XYZ", ["code", "W_XYZ"]),
    "resolution rating out of range": ("codes.csv", None, "value", "9", ["value", "9"]),
    "end status not recognised": ("clients.csv", 2, "end_status", "vanished", ["vanished"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_strict_mode_stops_with_a_readable_message(tmp_path, case):
    work = copy_project(tmp_path)
    file, row, column, value, words = CASES[case]
    path = example(work, file)
    if row is None:  # the first resolution-rating row
        codes = pd.read_csv(path, dtype=str)
        row = int(codes.index[codes["code"] == "RES"][0]) + 2
    edit_cell(path, row, column, value)

    run = snakemake(work)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert file in output
    if case != "unmapped treatment label":  # that one lists labels with their rows
        assert f"row {row}" in output
    for word in words:
        assert word in output
    assert "Traceback" not in output
    assert not (work / "results" / "data").exists() or not any(
        (work / "results" / "data").iterdir()
    )
    assert not (work / "results" / "tables").exists()


def test_identifier_columns_are_refused_and_never_reach_results(tmp_path):
    work = copy_project(tmp_path)
    clients = example(work, "clients.csv")
    n = len(pd.read_csv(clients))
    add_column(clients, "email", [f"client{i}@example.org" for i in range(n)])
    run = snakemake(work)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "email" in output and "Traceback" not in output
    assert "client0@example.org" not in output


def test_identifier_columns_dropped_when_configured(tmp_path):
    work = copy_project(tmp_path)
    clients = example(work, "clients.csv")
    n = len(pd.read_csv(clients))
    add_column(clients, "client_name", [f"Person {i}" for i in range(n)])
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["validation"]["identifiers"] = "drop"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    run = snakemake(work, "results/derived/client_table.parquet")
    assert run.returncode == 0, run.stderr[-3000:]
    report = (work / "results" / "validation" / "report.md").read_text()
    assert "client_name" in report
    for path in (work / "results").rglob("*"):
        if path.is_file() and path.suffix in {".csv", ".parquet", ".md"}:
            assert b"Person 1" not in path.read_bytes(), path


def test_lenient_mode_quarantines_bad_cells_and_rows_and_says_how_many(tmp_path):
    # A bad minutes cell (not a key, not required) is set to missing and its row kept; a
    # bad attended cell (required) sets aside the client, since removing the session would
    # leave a gap in its schedule.
    work = copy_project(tmp_path)
    sessions_csv = example(work, "sessions.csv")
    sessions = pd.read_csv(sessions_csv, dtype=str)
    edit_cell(sessions_csv, 2, "minutes", "-45")
    other = sessions.index[sessions["client_id"] != sessions["client_id"][0]][0]
    edit_cell(sessions_csv, int(other) + 2, "attended", "maybe")
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["validation"]["mode"] = "lenient"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    # the analysis goes on with what was kept: run as far as Table 1 (the models are
    # checked on the example's full run in test_workflow.py)
    run = snakemake(work, "results/tables/table1.csv")
    assert run.returncode == 0, run.stderr[-3000:]
    table1 = pd.read_csv(work / "results" / "tables" / "table1.csv")
    clients_row = table1[(table1["variable"] == "Clients") & (table1["framework"] == "Total")]
    assert clients_row["value"].tolist() == [359]
    quarantine = pd.read_csv(work / "results" / "validation" / "quarantine.csv", dtype=str)
    cells = quarantine[quarantine["action"] == "cell set to missing"]
    assert cells[["row", "column", "value"]].values.tolist() == [["2", "minutes", "-45"]]
    set_aside_client = sessions["client_id"][other]
    clients = pd.read_parquet(work / "results" / "data" / "clients.parquet")
    assert sessions["client_id"][0] in set(clients["client"])
    assert set_aside_client not in set(clients["client"])
    assert len(clients) == 359
    # its sessions, codes and coding-log rows
    removed = len(quarantine[quarantine["action"] != "cell set to missing"])
    assert removed > int((sessions["client_id"] == set_aside_client).sum())
    report = (work / "results" / "validation" / "report.md").read_text()
    assert "quarantine" in report.lower()
    assert f"1 cell set to missing in 1 row; 1 client set aside; {removed} rows set aside" in (
        report
    )


def set_reliability(work, gate: str, icc: float) -> None:
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["reliability"]["gate"] = gate
    config["reliability"]["thresholds"]["icc"] = icc
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_strict_reliability_gate_stops_before_any_model(tmp_path):
    # the example's interrupting ICC(A,1) is .86 (truth .852), below a minimum of .88
    work = copy_project(tmp_path)
    set_reliability(work, "strict", 0.88)
    run = snakemake(work)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "interrupting: icc(a,1) = 0.86" in output.lower()
    assert "below the minimum 0.88" in output
    assert "Traceback" not in output
    # the models' entry files and the formula check may exist; no model was fitted
    assert not [*(work / "results").glob("models/*/fit.json")]
    assert not [*(work / "results").glob("sensitivity/*/fit.json")]
    assert not (work / "results" / "reliability" / "gate.md").exists()


def test_warn_reliability_gate_lists_constructs_and_goes_on(tmp_path):
    work = copy_project(tmp_path)
    set_reliability(work, "warn", 0.88)
    run = snakemake(work, "results/reliability/gate.md")
    assert run.returncode == 0, run.stderr[-3000:]
    gate = (work / "results" / "reliability" / "gate.md").read_text()
    assert "# Reliability gate (warn mode)" in gate
    assert "ICC(A,1) = 0.86" in gate and "below the minimum 0.88" in gate
    assert "Arguing" not in gate and "arguing" not in gate  # .93 passes
