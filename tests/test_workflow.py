"""End to end: the Snakemake workflow on the embedded example, in a scratch copy of the project.

Table 1 is checked against an independent computation from the raw files with plain pandas
(not the package), and a bad input file must stop the run with a readable message and no
result that looks complete.
"""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from resistance_outcomes.analysis import ModelSpec, fit_model, read_model_frame
from resistance_outcomes.pipeline import model_step, publication_tables_step
from resistance_outcomes.sensitivity import variant_entries

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "resources" / "example"
PROJECT_PARTS = ["environment.yml", "config", "workflow", "scripts", "resources"]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
MODEL_FILES = [
    "spec.json",
    "model_frame.csv",
    "coefficients.csv",
    "variance_components.csv",
    "fit.json",
    "contrasts.csv",
    "predictions.csv",
    "residuals.csv",
    "random_effects.csv",
]

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
        [*cmd, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True, timeout=1800
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
    for item in [
        "rupture_rate_by_session.png",
        "resistance_profile.png",
        "table1.csv",
        "coefficients.csv",
        "contrasts.csv",
        "sensitivity_table.csv",
        "recovery.csv",
        "dropout_by_repair.png",
        "forest.png",
        "retention_curves.png",
        "reliability_agreement.png",
        "reliability.csv",
        "tables.docx",
        "summary.md",
        "provenance.json",
        *(f"{m}.png" for m in CONFIG["models"]),
    ]:
        assert item in html, item


def test_lint_is_clean():
    run = subprocess.run(
        [str(BIN / "snakemake"), "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert "Congratulations, your workflow is in a good condition!" in run.stdout + run.stderr


def test_snakefmt_style():
    files = [
        "workflow/Snakefile",
        *sorted(str(p) for p in (ROOT / "workflow" / "rules").glob("*.smk")),
    ]
    run = subprocess.run(
        [str(BIN / "snakefmt"), "--check", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


# --- Models, sensitivity analyses and recovery of the simulated truth ------------------


def model_folders(work: Path) -> list[Path]:
    models = [work / "results" / "models" / name for name in CONFIG["models"]]
    return models + [work / "results" / "sensitivity" / name for name in variant_entries(CONFIG)]


def test_every_model_variant_and_table_is_made(finished_run):
    for folder in model_folders(finished_run):
        for name in MODEL_FILES:
            assert (folder / name).is_file(), folder / name
        if folder.parent.name == "models":
            intervals = pd.read_csv(folder / "intervals.csv")
            assert list(intervals.columns[:6]) == [
                "parameter",
                "group",
                "term",
                "estimate",
                "ci_low",
                "ci_high",
            ]
        fit = json.loads((folder / "fit.json").read_text())
        assert isinstance(fit["flags"], list) and fit["rows_excluded"] is not None
        assert fit["fitted"] or fit["flags"] == ["not fitted"]
        log = "models" if folder.parent.name == "models" else "sensitivity"
        assert (finished_run / "results" / "logs" / log / f"{folder.name}.log").is_file()
        if folder.parent.name == "models":  # simulated-residual diagnostics: models only
            diagnostics = json.loads((folder / "diagnostics.json").read_text())
            assert diagnostics["assessed"] == fit["fitted"], folder
            assert (folder / "simulated_residuals.csv").is_file(), folder
    for path in [
        "results/sensitivity/sensitivity_table.csv",
        "results/sensitivity/sensitivity_table.md",
        "results/recovery/recovery.csv",
        "results/recovery/summary.json",
    ]:
        assert (finished_run / path).is_file(), path


def test_each_default_model_refits_from_its_model_frame(finished_run):
    for name in CONFIG["models"]:
        folder = finished_run / "results" / "models" / name
        spec = json.loads((folder / "spec.json").read_text())
        frame = read_model_frame(folder / "model_frame.csv", spec)
        refit = fit_model(ModelSpec.from_dict(spec), frame).coefficients
        written = pd.read_csv(folder / "coefficients.csv")
        assert refit["term"].tolist() == written["term"].tolist(), name
        np.testing.assert_allclose(
            refit["estimate"], written["estimate"], rtol=1e-6, atol=1e-9, err_msg=name
        )


def test_model_frames_hold_only_pseudonymous_keys_and_analysis_variables(finished_run):
    keys = {"study", "therapist", "client", "session"}
    for folder in model_folders(finished_run):
        spec = json.loads((folder / "spec.json").read_text())
        columns = set(pd.read_csv(folder / "model_frame.csv", nrows=1).columns)
        others = columns - keys
        assert all(column in spec["formula"] for column in others), (folder, others)


def test_model_outputs_are_identical_when_rerun(finished_run, tmp_path):
    results = finished_run / "results"
    inputs = SimpleNamespace(
        clients=results / "data" / "clients.parquet",
        sessions=results / "data" / "sessions.parquet",
        session_table=results / "derived" / "session_table.parquet",
        client_table=results / "derived" / "client_table.parquet",
        vocabulary=results / "data" / "vocabulary.json",
        rupture_segments=results / "derived" / "rupture_segments.parquet",
        rupture_info=results / "derived" / "rupture_segments.json",
    )
    keys = ["spec", "frame", "coefficients", "variance_components", "fit", "contrasts"]
    keys += ["predictions", "residuals", "random_effects", "simulated_residuals", "diagnostics"]
    keys += ["intervals"]  # profile intervals: models, not variants
    files = [*MODEL_FILES, "simulated_residuals.csv", "diagnostics.json", "intervals.csv"]
    diagnostics = {"nsim": 250, "conditional": False, **CONFIG.get("diagnostics", {})}
    diagnostics.setdefault("seed", CONFIG["seed"])
    for name, entry in CONFIG["models"].items():
        output = dict(zip(keys, (tmp_path / name / f for f in files), strict=True))
        params = SimpleNamespace(
            name=name,
            entry=entry,
            dropout=CONFIG["dropout"],
            adjust=CONFIG["contrasts"]["adjust"],
            diagnostics=diagnostics,
        )
        model_step(input=inputs, output=output, params=params)
        for file in files:
            assert (tmp_path / name / file).read_bytes() == (
                results / "models" / name / file
            ).read_bytes(), (name, file)


def test_sensitivity_table_compares_every_variant_with_its_model(finished_run):
    table = pd.read_csv(finished_run / "results" / "sensitivity" / "sensitivity_table.csv")
    for name, entry in variant_entries(CONFIG).items():
        rows = table[table["analysis"] == name]
        assert len(rows) > 0 and (rows["model"] == entry["variant_of"]).all(), name
        assert (table["analysis"] == entry["variant_of"]).any()
    markdown = (finished_run / "results" / "sensitivity" / "sensitivity_table.md").read_text()
    assert "## repair_retention (odds ratios, 95% CI)" in markdown
    assert "slope of repair_rate_between: cognitive" in markdown


def test_recovery_meets_the_acceptance_criteria(finished_run):
    """At least 90% of the true fixed effects inside their 95% CIs; the unrepaired-rupture
    effect on the dropout hazard raises it in every framework and is strongest where the
    truth says (cognitive)."""
    summary = json.loads((finished_run / "results" / "recovery" / "summary.json").read_text())
    table = pd.read_csv(finished_run / "results" / "recovery" / "recovery.csv")
    assert set(table["model"]) == set(CONFIG["recovery"]["models"])
    assert summary["fixed_effects_with_truth"] >= 40
    assert summary["share_inside_ci"] >= 0.9, table[table["inside_ci"] == False]  # noqa: E712
    repair = summary["repair_effect"]
    assert repair["signs_match"] and repair["pattern_matches"], repair


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
    covert = primary[primary["code"].str.match(r"^CV_")]  # the covert form: CV_DIS, CV_AVT, CV_WDR

    out = clients.set_index("client_id")
    per_client = {
        "attended": attended.groupby("client_id").size(),
        "ruptures": rupture_units.groupby("client_id").size(),
        "repaired": repaired.groupby("client_id").size(),
        "arguing": arguing.groupby("client_id").size(),
        "covert": covert.groupby("client_id").size(),
        "sessions_with_rupture": rupture_units.drop_duplicates(["client_id", "session_no"])
        .groupby("client_id")
        .size(),
    }
    for name, counts in per_client.items():
        out[name] = counts.reindex(out.index).fillna(0)
    out["rupture_rate"] = out["ruptures"] / out["attended"]
    out["arguing_rate"] = out["arguing"] / out["attended"]
    out["covert_rate"] = out["covert"] / out["attended"]
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
        # labelled by the definition's description in config/config.yaml
        label = "Dropout: " + CONFIG["dropout"]["definitions"]["end_status"]["description"]
        assert cell(label, "percent", framework) == pytest.approx(
            100 * group["dropout"].mean(), rel=1e-12
        )
        assert cell("Sessions with any rupture", "count", framework) == (
            group["sessions_with_rupture"].sum()
        )
        for variable, column in [
            ("Ruptures per attended session", "rupture_rate"),
            ("Repair rate (clients with ruptures)", "repair_rate"),
            ("Overt resistance per attended session: arguing", "arguing_rate"),
            ("Covert resistance per attended session", "covert_rate"),
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


# --- Publication output and provenance ---------------------------------------------------


def test_publication_model_tables_carry_the_model_numbers(finished_run):
    results = finished_run / "results"
    for name in CONFIG["models"]:
        coefficients = pd.read_csv(results / "models" / name / "coefficients.csv")
        if coefficients.empty:
            continue
        table = pd.read_csv(results / "publication" / f"model_{name}.csv")
        fixed = table[table["section"] == "fixed"].set_index("term")
        for _, row in coefficients.iterrows():
            for column in ["estimate", "std_error", "ci_low", "ci_high", "p_value"]:
                assert fixed.loc[row["term"], column] == pytest.approx(
                    row[column], rel=1e-12, nan_ok=True
                ), (name, row["term"], column)


def test_word_file_holds_every_publication_table(finished_run):
    docx = pytest.importorskip("docx")
    document = docx.Document(finished_run / "results" / "publication" / "tables.docx")
    markdown = sorted((finished_run / "results" / "publication").glob("*.md"))
    assert len(document.tables) == len(markdown)
    captions = [p.text for p in document.paragraphs if p.text.startswith("Table ")]
    assert captions[:2] == ["Table 1", "Table 2"]


def test_publication_tables_are_identical_when_rerun(finished_run, tmp_path):
    results = finished_run / "results"
    names = [f"model_{m}" for m in CONFIG["models"]] + ["table1", "contrasts"]
    inputs = SimpleNamespace(
        table1=results / "tables" / "table1.csv",
        reliability=results / "reliability" / "reliability.csv",
        gate=results / "reliability" / "gate.json",
        vocabulary=results / "data" / "vocabulary.json",
        sensitivity=results / "sensitivity" / "sensitivity_table.csv",
        model_specs=[results / "models" / m / "spec.json" for m in CONFIG["models"]],
        keys=lambda: ["table1", "reliability", "gate", "vocabulary", "sensitivity", "model_specs"],
    )
    output = SimpleNamespace(docx=tmp_path / "tables.docx")
    params = SimpleNamespace(
        main_models=CONFIG["tables"]["main_models"],
        min_cell=CONFIG["tables"]["min_cell"],
    )
    publication_tables_step(input=inputs, output=output, params=params)
    for name in names:
        assert (tmp_path / f"{name}.csv").read_bytes() == (
            results / "publication" / f"{name}.csv"
        ).read_bytes(), name


def test_provenance_records_input_hashes_and_config(finished_run):
    record = json.loads((finished_run / "results" / "provenance.json").read_text())
    for name in ["clients", "sessions", "codes", "coding_log"]:
        entry = record["inputs"][name]
        digest = hashlib.sha256((finished_run / entry["path"]).read_bytes()).hexdigest()
        assert entry["sha256"] == digest
    assert record["config"]["seed"] == CONFIG["seed"] == record["seed"]
    assert record["packages"]["pandas"] == pd.__version__
    assert set(record["code"]) == {"commit", "dirty"}


def test_summary_states_results_in_sentences(finished_run):
    summary = (finished_run / "results" / "summary.md").read_text()
    assert "95% CI" in summary and "Holm-adjusted" in summary
    assert "Validation (strict mode) read" in summary
    assert "Reliability gate (warn mode)" in summary
