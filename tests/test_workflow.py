"""End to end: the Snakemake workflow on the embedded example, in a scratch copy of the project.

Table 1 is checked against an independent computation from the raw files with plain pandas
(not the package), and a bad input file must stop the run with a readable message and no
result that looks complete.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "resources" / "example"
PROJECT_PARTS = ["Snakefile", "environment.yml", "config", "workflow", "scripts", "resources"]

pytestmark = pytest.mark.slow


def copy_project(dest: Path) -> Path:
    for part in PROJECT_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        else:
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/default"]
    return subprocess.run(
        [*cmd, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    work = copy_project(tmp_path_factory.mktemp("workflow"))
    run = snakemake(work)
    assert run.returncode == 0, run.stderr[-3000:]
    return work


def test_every_output_is_made(finished_run):
    for path in [
        "results/validation/report.md",
        "results/validation/quarantine.csv",
        "results/data/clients.parquet",
        "results/data/sessions.parquet",
        "results/data/codes.parquet",
        "results/derived/client_table.parquet",
        "results/derived/person_period.parquet",
        "results/tables/table1.csv",
        "results/tables/table1.md",
        "results/figures/rupture_rate_by_session.pdf",
        "results/figures/rupture_rate_by_session.png",
        "results/figures/resistance_profile.pdf",
        "results/figures/resistance_profile.png",
    ]:
        assert (finished_run / path).is_file(), path
    for rule in ["ingest", "derive", "table1", "session_descriptives"]:
        assert (finished_run / "results" / "logs" / f"{rule}.log").is_file()


def test_a_second_run_does_no_work(finished_run):
    dry = snakemake(finished_run, "--dry-run")
    assert dry.returncode == 0
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_input_files_are_not_modified(finished_run):
    for name in ["clients.csv", "sessions.csv", "codes.csv"]:
        assert (finished_run / "resources/example" / name).read_bytes() == (
            EXAMPLE / name
        ).read_bytes()


def test_no_identifier_or_free_text_column_reaches_results(finished_run):
    for path in (finished_run / "results").rglob("*.parquet"):
        columns = {c.lower() for c in pd.read_parquet(path).columns}
        assert not columns & {"name", "email", "phone", "dob", "notes", "transcript"}, path


def test_report_names_every_figure_and_table(finished_run):
    run = snakemake(finished_run, "--report", "results/report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (finished_run / "results" / "report.html").read_text(errors="replace")
    for item in ["rupture_rate_by_session.png", "resistance_profile.png", "table1.csv"]:
        assert item in html


def test_lint_is_clean():
    run = subprocess.run(
        [str(BIN / "snakemake"), "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert "Congratulations, your workflow is in a good condition!" in run.stdout + run.stderr


def test_snakefmt_style():
    files = ["Snakefile", *sorted(str(p) for p in (ROOT / "workflow" / "rules").glob("*.smk"))]
    run = subprocess.run(
        [str(BIN / "snakefmt"), "--check", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


# --- Table 1 against an independent computation from the raw files ---------------------


def framework_of_label() -> dict[str, str]:
    mapping = yaml.safe_load((ROOT / "config" / "frameworks.yaml").read_text())
    out = {}
    for framework in ["psychoanalytic", "behavioral", "cognitive"]:
        for label in mapping["frameworks"][framework]:
            out[label.strip().lower()] = framework
    return out


def independent_client_summary() -> pd.DataFrame:
    """Per-client figures computed straight from the raw example files with pandas."""
    clients = pd.read_csv(EXAMPLE / "clients.csv", dtype=str)
    sessions = pd.read_csv(EXAMPLE / "sessions.csv", dtype={"client_id": str})
    codes = pd.read_csv(EXAMPLE / "codes.csv", dtype={"client_id": str})
    labels = framework_of_label()
    clients["framework"] = clients["treatment"].str.strip().str.lower().map(labels)
    attended = sessions[sessions["attended"] == "yes"]
    primary = codes[codes["coder_role"] == "primary"]
    unit = ["client_id", "session_no", "segment"]
    rupture_units = primary[primary["code"].str.match(r"^(W|C)_")].drop_duplicates(unit)
    ratings = primary[primary["code"] == "RES"].set_index(unit)["value"]
    rupture_units = rupture_units.join(ratings.rename("rating"), on=unit)
    repaired = rupture_units[rupture_units["rating"] >= 4]
    arguing = primary[primary["code"] == "M_ARG"]

    out = clients.set_index("client_id")
    per_client = {
        "attended": attended.groupby("client_id").size(),
        "ruptures": rupture_units.groupby("client_id").size(),
        "repaired": repaired.groupby("client_id").size(),
        "arguing": arguing.groupby("client_id").size(),
        "sessions_with_rupture": rupture_units.drop_duplicates(["client_id", "session_no"])
        .groupby("client_id")
        .size(),
    }
    for name, counts in per_client.items():
        out[name] = counts.reindex(out.index).fillna(0)
    out["rupture_rate"] = out["ruptures"] / out["attended"]
    out["arguing_rate"] = out["arguing"] / out["attended"]
    out["repair_rate"] = (out["repaired"] / out["ruptures"]).where(out["ruptures"] > 0)
    out["dropout"] = np.where(
        out["end_status"] == "ongoing", np.nan, (out["end_status"] == "dropout").astype(float)
    )
    return out.reset_index()


def test_table1_matches_an_independent_computation(finished_run):
    table = pd.read_csv(finished_run / "results" / "tables" / "table1.csv")
    expected = independent_client_summary()

    def cell(variable, statistic, framework):
        rows = table[
            (table["variable"] == variable)
            & (table["statistic"] == statistic)
            & (table["framework"] == framework)
        ]
        assert len(rows) == 1, (variable, statistic, framework)
        return rows.iloc[0]["value"]

    groups = [*expected.groupby("framework"), ("Total", expected)]
    for framework, group in groups:
        assert cell("Clients", "count", framework) == len(group)
        assert cell("Therapists", "count", framework) == group["therapist_id"].nunique()
        assert cell("Sessions attended", "count", framework) == group["attended"].sum()
        assert cell("Dropout (end_status)", "percent", framework) == pytest.approx(
            100 * group["dropout"].mean(), rel=1e-12
        )
        assert cell("Sessions with any rupture", "count", framework) == (
            group["sessions_with_rupture"].sum()
        )
        for variable, column in [
            ("Ruptures per attended session", "rupture_rate"),
            ("Repair rate (clients with ruptures)", "repair_rate"),
            ("Resistance per attended session: arguing", "arguing_rate"),
        ]:
            assert cell(variable, "mean", framework) == pytest.approx(
                group[column].mean(), rel=1e-12
            )
            assert cell(variable, "sd", framework) == pytest.approx(
                group[column].std(ddof=1), rel=1e-12
            )


# --- Bad input stops the run cleanly ----------------------------------------------------


def test_bad_input_stops_before_analysis_with_a_readable_message(tmp_path):
    work = copy_project(tmp_path)
    sessions_file = work / "resources" / "example" / "sessions.csv"
    lines = sessions_file.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    col = header.index("minutes")
    # the first attended session: its minutes become negative
    row = next(i for i, line in enumerate(lines[1:], start=1) if line.split(",")[col] != "")
    fields = lines[row].rstrip("\n").split(",")
    fields[col] = "-45"
    lines[row] = ",".join(fields) + "\n"
    sessions_file.write_text("".join(lines))

    run = snakemake(work)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "sessions.csv" in output
    assert f"row {row + 1}" in output
    assert "minutes" in output and "-45" in output
    assert "Traceback" not in output
    assert not (work / "results" / "data" / "clients.parquet").exists()
    assert not (work / "results" / "tables").exists()
