"""Tests of resistance_outcomes.results: reading what earlier steps wrote."""

import json
import math

import pandas as pd
import pytest

from resistance_outcomes import results
from resistance_outcomes.ingest import IngestResult
from resistance_outcomes.validate import Problem

COEFFICIENTS = pd.DataFrame(
    {"term": ["(Intercept)", "x"], "estimate": [-1.2345, 0.5], "std_error": [0.4, 0.3],
     "p_value": [0.0004, 0.0955], "ci_low": [-2.0185, -0.088], "ci_high": [-0.4505, 1.088]}
)  # fmt: skip


def test_read_model_folder(tmp_path):
    folder = tmp_path / "my_model"
    folder.mkdir()
    (folder / "spec.json").write_text('{"family": "binomial"}', encoding="utf-8")
    (folder / "fit.json").write_text('{"flags": []}', encoding="utf-8")
    COEFFICIENTS.to_csv(folder / "coefficients.csv", index=False)
    (folder / "variance_components.csv").write_text("", encoding="utf-8")  # a GEE fit
    (folder / "contrasts.csv").write_text("", encoding="utf-8")  # a model without contrasts
    model = results.read_model_folder(folder)
    assert model["name"] == "my_model"
    assert model["coefficients"]["estimate"].tolist() == [-1.2345, 0.5]
    assert model["contrasts"].empty and model["variance_components"].empty
    # the path of the spec (as the workflow's inputs give it) reads the same folder
    assert results.read_model_folder(folder / "spec.json")["spec"] == {"family": "binomial"}
    with pytest.raises(results.ResultsError, match="spec.json: missing"):
        results.read_model_folder(tmp_path)
    (folder / "contrasts.csv").unlink()
    with pytest.raises(results.ResultsError, match="contrasts.csv: missing; run the model step"):
        results.read_model_folder(folder)


def test_estimable_reads_the_column_defensively():
    frame = pd.DataFrame({"estimable": [True, False, "False", "true", math.nan]})
    assert results.estimable(frame).tolist() == [True, False, False, True, True]
    assert results.estimable(COEFFICIENTS).tolist() == [True, True]  # no column: all
    assert results.not_estimable_reasons({}) == {}
    fit = {"not_estimable": [{"term": "frameworkb", "reason": " no events "}, "frameworkc"]}
    assert results.not_estimable_reasons(fit) == {"frameworkb": "no events", "frameworkc": ""}


def test_family_facts():
    assert results.family_facts("negative_binomial").ratio == "IRR"
    assert results.family_facts("gaussian").exponentiate is False
    with pytest.raises(results.ResultsError, match="family 'weibull' is not one of"):
        results.family_facts("weibull")


def _ingest_result(**extra):
    problem = Problem("clients.csv", 4, "planned_sessions", "x", "not a number", "Write a number.")
    quarantine = pd.DataFrame(
        [["clients.csv", 4, "planned_sessions", "x", "not a number"]],
        columns=["file", "row", "column", "value", "problem"],
    )
    dropped = Problem("clients.csv", None, "full_name", None, "looks like names", "Drop it.")
    return IngestResult(
        clients=pd.DataFrame({"client": ["C1", "C2"]}),
        sessions=pd.DataFrame({"client": ["C1"] * 5}),
        codes=pd.DataFrame(), problems=[problem], quarantine=quarantine,
        dropped_identifier_columns=[dropped],
        rows_read={"clients.csv": 3, "sessions.csv": 5},
        files={"clients": "clients.csv", "sessions": "sessions.csv"}, **extra,
    )  # fmt: skip


def test_validation_summary_counts_from_the_ingest_result(tmp_path):
    summary = results.validation_summary(_ingest_result(), "lenient")
    assert summary["mode"] == "lenient"
    assert summary["tables"] == [
        {"table": "clients", "file": "clients.csv", "rows_read": 3, "rows_kept": 2,
         "rows_set_aside": 1},
        {"table": "sessions", "file": "sessions.csv", "rows_read": 5, "rows_kept": 5,
         "rows_set_aside": 0},
    ]  # fmt: skip
    assert summary["problems"] == 1
    # no counts from ingest: the rows of the quarantine table
    assert summary["quarantined"] == {
        "rows": 1, "cells": 0, "cell_rows": 0, "clients": 0, "sessions": 0
    }  # fmt: skip
    assert summary["dropped_identifier_columns"] == [
        {"file": "clients.csv", "column": "full_name", "reason": "looks like names"}
    ]
    assert summary["missing_codes"] == {}
    # JSON round trip through the file the summary reads
    path = tmp_path / "report.json"
    path.write_text(json.dumps(summary), encoding="utf-8")
    assert results.read_validation_summary(path) == summary


def test_validation_summary_counts_cells_and_clients_as_ingest_reports_them():
    result = _ingest_result(
        set_aside={"cells": 21, "cell_rows": 17, "clients": 2, "sessions": 0, "rows": 30},
        missing_values=[{"file": "s.csv", "column": "minutes", "code": "-99", "cells": 12,
                         "source": "declared"}],
    )  # fmt: skip
    result.quarantine = pd.DataFrame(
        {"file": ["s.csv", "s.csv", "clients.csv"], "row": [2, 3, 4],
         "action": ["cell set to missing", "cell set to missing", "client C9 set aside"]}
    )  # fmt: skip
    summary = results.validation_summary(result)
    assert summary["quarantined"] == {
        "rows": 30, "cells": 21, "cell_rows": 17, "clients": 2, "sessions": 0
    }  # fmt: skip
    # rows set aside per file: cells set to missing keep their row
    assert [t["rows_set_aside"] for t in summary["tables"]] == [1, 0]
    assert summary["missing_values"][0]["cells"] == 12
    json.dumps(summary)  # JSON-ready


def test_read_validation_summary_errors_name_the_file(tmp_path):
    with pytest.raises(results.ResultsError, match="report.json: missing; .* ingest step"):
        results.read_validation_summary(tmp_path / "report.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(results.ResultsError, match="bad.json: not valid JSON"):
        results.read_validation_summary(bad)
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(results.ResultsError, match="no 'tables' list"):
        results.read_validation_summary(bad)
