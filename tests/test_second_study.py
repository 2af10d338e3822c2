"""End to end on the second shipped study (resources/second_study), shaped unlike the example.

Route 1 runs the study's own config as shipped: an SPSS clients file with value labels and
user-missing values, construct counts as session columns under the lab's own names, two
frameworks plus `other`, its own constructs (sustain talk, homework not done) and models,
"-99"/"NA" missing codes, no code table, no double coding, no resistance coding. Route 2
runs the long code table with the lab's own codes and coder role words, on a smaller model
set. Every expected number is computed here from the raw files with plain pandas,
pyreadstat and numpy, not with the package.
"""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml
from test_workflow import copy_project

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STUDY = ROOT / "resources" / "second_study"
CONFIG = yaml.safe_load((STUDY / "config.yaml").read_text())
#: this study's framework map, written out by hand from resources/second_study/frameworks.yaml
FRAMEWORK_OF = {
    "Psychodynamic psychotherapy": "psychodynamic",
    "CBT": "cognitive_behavioural",
    "Interpersonal therapy": "other",
}
FRAMEWORKS = ["psychodynamic", "cognitive_behavioural", "other"]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, configfile: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/default"]
    cmd += ["--configfile", configfile, "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1800)


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


# --------------------------------------------------------------------- raw data by hand


def raw_clients() -> pd.DataFrame:
    """The clients file read with pyreadstat alone: labels applied, user-missing as NaN."""
    data, meta = pyreadstat.read_sav(STUDY / "clients.sav", user_missing=True)
    labels = meta.variable_value_labels
    data["framework"] = data["tx"].map(labels["tx"]).map(FRAMEWORK_OF)
    data["status"] = data["status"].map(labels["status"])
    data["bdi"] = data["bdi"].where(data["bdi"] != -99)
    return data


def raw_sessions() -> pd.DataFrame:
    """The sessions file with -99 minutes and NA sustain talk as missing."""
    sessions = pd.read_csv(STUDY / "sessions.csv", dtype=str, keep_default_na=False)
    for column in ["visit", "came", "wd", "cf", "rep", "hw_nc"]:
        sessions[column] = pd.to_numeric(sessions[column].replace("", np.nan))
    sessions["mins"] = pd.to_numeric(sessions["mins"].replace({"": np.nan, "-99": np.nan}))
    sessions["st"] = pd.to_numeric(sessions["st"].replace({"": np.nan, "NA": np.nan}))
    return sessions


def attended() -> pd.DataFrame:
    sessions = raw_sessions()
    done = sessions[sessions["came"] == 1].copy()
    done["ruptures"] = done["wd"] + done["cf"]
    return done.merge(raw_clients()[["pid", "framework"]], on="pid")


def icc_a1(matrix: np.ndarray) -> float:
    """ICC(A,1), two-way random effects, absolute agreement (McGraw & Wong, 1996, case 2A),
    from the mean squares of a targets x raters table."""
    n, k = matrix.shape
    grand = matrix.mean()
    ss_rows = k * ((matrix.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((matrix.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((matrix - grand) ** 2).sum() - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)


# --------------------------------------------------------------------- route 1: columns


@pytest.fixture(scope="module")
def columns_run(tmp_path_factory):
    work = copy_project(tmp_path_factory.mktemp("second_study"))
    before = digests(work / "resources" / "second_study")
    run = snakemake(work, "resources/second_study/config.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    report = snakemake(
        work, "resources/second_study/config.yaml", "--report", "results/report.html"
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert digests(work / "resources" / "second_study") == before  # inputs never modified
    return work


def table1_value(table: pd.DataFrame, variable: str, statistic: str, framework: str):
    row = table[
        (table["variable"] == variable)
        & (table["statistic"] == statistic)
        & (table["framework"] == framework)
    ]
    assert len(row) == 1, (variable, statistic, framework)
    return row.iloc[0]


def test_table1_matches_an_independent_computation(columns_run):
    table = pd.read_csv(columns_run / "results" / "tables" / "table1.csv")
    clients, done = raw_clients(), attended()
    sessions = raw_sessions().merge(clients[["pid", "framework"]], on="pid")
    for framework in FRAMEWORKS:
        mine = clients[clients["framework"] == framework]
        assert table1_value(table, "Clients", "count", framework)["value"] == len(mine)
        scheduled = sessions[sessions["framework"] == framework]
        assert table1_value(table, "Sessions scheduled", "count", framework)["value"] == len(
            scheduled
        )
        came = done[done["framework"] == framework]
        assert table1_value(table, "Sessions attended", "count", framework)["value"] == len(came)
        # client means of the per-session values, over attended sessions with a value
        for variable, column in [
            ("Ruptures per attended session", "ruptures"),
            ("Sustain talk per attended session", "st"),
            ("Homework not done per attended session", "hw_nc"),
        ]:
            rates = came.dropna(subset=[column]).groupby("pid")[column].mean()
            row = table1_value(table, variable, "mean", framework)
            assert row["value"] == pytest.approx(rates.mean(), rel=1e-9), (variable, framework)
            assert row["n"] == len(rates)
    # dropout as the therapist recorded it, clients still in treatment left out
    total = table1_value(table, "Dropout: therapist recorded a dropout", "count", "Total")
    classified = clients[clients["status"] != "still in treatment"]
    assert total["value"] == (classified["status"] == "dropped out").sum()
    assert total["n"] == (classified["status"] == "dropped out").sum()
    percent = table1_value(table, "Dropout: therapist recorded a dropout", "percent", "Total")
    assert percent["value"] == pytest.approx(
        100 * (classified["status"] == "dropped out").mean(), rel=1e-9
    )
    # nothing about constructs this study did not code, no raw names in the printed table
    markdown = (columns_run / "results" / "tables" / "table1.md").read_text()
    assert "Resistance" not in markdown and "Alliance" not in markdown
    assert "Cognitive behavioural" in markdown and "_" not in markdown


def test_declared_missing_codes_never_reach_a_model(columns_run):
    models = columns_run / "results" / "models"
    clients = raw_clients()
    frame = pd.read_csv(models / "retention_by_repair" / "model_frame.csv")
    assert frame["baseline_bdi"].min() > 0  # no -99
    # clients classified, with a baseline score and at least one rupture (a repair rate)
    done = attended()
    ruptures = done.groupby("pid")["ruptures"].sum()
    usable = clients[
        (clients["status"] != "still in treatment")
        & clients["bdi"].notna()
        & clients["pid"].map(ruptures).gt(0)
    ]
    assert len(frame) == len(usable)
    assert set(frame["client"]) == set(usable["pid"])
    fit = json.loads((models / "retention_by_repair" / "fit.json").read_text())
    assert fit["nobs"] == len(usable)
    # the offset model leaves out the attended sessions without minutes, and says so
    rates = json.loads((models / "rupture_counts" / "fit.json").read_text())
    assert rates["nobs"] == done["mins"].notna().sum()
    excluded = {e["reason"]: e["rows"] for e in rates["rows_excluded"]}
    assert excluded["missing value in minutes"] == done["mins"].isna().sum() == 29


def test_own_construct_gets_its_within_client_split(columns_run):
    """sustain_talk_within of the hazard model is the session's raw count minus the client's
    mean over the client's person-period rows (the sessions at risk, as documented)."""
    frame = pd.read_csv(
        columns_run / "results" / "models" / "sustain_talk_hazard" / "model_frame.csv"
    )
    raw = attended().set_index(["pid", "visit"])["st"]
    keys = pd.MultiIndex.from_arrays([frame["client"], frame["session"]])
    counts = pd.Series(raw.loc[keys].to_numpy(), index=frame.index)
    assert counts.notna().all()
    expected = counts - counts.groupby(frame["client"]).transform("mean")
    np.testing.assert_allclose(frame["sustain_talk_within"], expected, atol=1e-12)
    # at risk: a client who completed every planned session has no row for the last one
    clients = raw_clients().set_index("pid")
    last = frame.groupby("client")["session"].max()
    completed = clients.loc[last.index, "status"].eq("finished")
    planned = clients.loc[last.index, "planned"]
    assert (last[completed] < planned[completed]).all()


def test_validation_report_counts_labels_and_missing_codes(columns_run):
    report = (columns_run / "results" / "validation" / "report.md").read_text()
    assert "tx: 3 value labels used (1 = Psychodynamic psychotherapy, 2 = CBT" in report
    sessions = pd.read_csv(STUDY / "sessions.csv", dtype=str, keep_default_na=False)
    minutes_codes = (sessions["mins"] == "-99").sum()
    na_codes = (sessions["st"] == "NA").sum()
    data, _ = pyreadstat.read_sav(STUDY / "clients.sav", user_missing=True)
    user_missing = (data["bdi"] == -99).sum()
    for column, code, count in [
        ("mins (minutes)", "-99", minutes_codes),
        ("st (sustain_talk)", "NA", na_codes),
        ("bdi (baseline_bdi)", "-99", user_missing),
    ]:
        assert re.search(rf"\| {re.escape(column)} \| `{re.escape(code)}` \| {count} \|", report)


def test_summary_speaks_of_the_labs_models(columns_run):
    summary = (columns_run / "results" / "summary.md").read_text()
    models = CONFIG["models"]
    for name in CONFIG["summary"]["models"]:
        assert f"### {models[name]['description']}" in summary, name
    assert summary.index("## Main results") < summary.index("## Other models")
    assert "_" not in summary
    assert "Inter-rater reliability: not assessed (no double-coded sessions)." in summary
    assert "met its" not in summary and "meets" not in summary
    assert "cognitive behavioural therapy" in summary
    # the pairwise odds ratio of the client-level model is exp of its framework coefficient
    folder = columns_run / "results" / "models" / "retention_by_repair"
    coefficients = pd.read_csv(folder / "coefficients.csv").set_index("term")
    ratio = np.exp(-coefficients.loc["frameworkcognitive_behavioural", "estimate"])
    assert f"OR = {ratio:.2f}" in summary


def test_every_figure_is_drawn_and_colours_follow_the_map(columns_run):
    figures = columns_run / "results" / "figures"
    names = ["rupture_rate_by_session", "retention_curves", "dropout_by_repair", "forest"]
    names += ["resistance_profile", "reliability_agreement"]
    names += [f"diagnostics/{m}" for m in CONFIG["models"]]
    for name in names:
        image = matplotlib.image.imread(figures / f"{name}.png")
        assert image.shape[0] > 100 and image.std() > 0.01, name  # drawn, not blank
        assert (figures / f"{name}.pdf").stat().st_size > 1000, name
    vocabulary = json.loads((columns_run / "results" / "data" / "vocabulary.json").read_text())
    colours = {f["name"]: f["color"] for f in vocabulary["frameworks"]}
    # Okabe & Ito (2008) blue and orange by position in the map, the other group grey
    assert colours == {
        "psychodynamic": "#0072B2",
        "cognitive_behavioural": "#E69F00",
        "other": "#999999",
    }
    html = (columns_run / "results" / "report.html").read_text(errors="replace")
    for item in ["summary.md", "table1.csv", "tables.docx", "forest.png", "reliability.csv"]:
        assert item in html, item


def test_publication_tables_print_labels_not_column_names(columns_run):
    folder = columns_run / "results" / "publication"
    combined = (folder / "models_combined.md").read_text()
    assert "Repair rate (between clients)" in combined and "Baseline BDI-II" in combined
    for path in folder.glob("*.md"):
        body = "\n".join(
            line for line in path.read_text().splitlines() if not line.startswith("*Note")
        )
        assert "_" not in body, path.name
    single = (folder / "model_retention_by_repair.md").read_text()
    assert "missing value in baseline BDI-II (10)" in single  # the SPSS user-missing -99s
    assert (folder / "tables.docx").stat().st_size > 10_000


# --------------------------------------------------------------------- route 2: codes


@pytest.fixture(scope="module")
def codes_run(tmp_path_factory):
    """The long-code route on a smaller model set (two models, no sensitivity variants)."""
    work = copy_project(tmp_path_factory.mktemp("second_study_codes"))
    config = yaml.safe_load((STUDY / "config_codes.yaml").read_text())
    config["models"] = {m: config["models"][m] for m in ["rupture_counts", "retention_by_repair"]}
    config["summary"] = {"models": ["retention_by_repair"]}
    config["tables"]["main_models"] = ["retention_by_repair", "rupture_counts"]
    config.pop("sensitivity")
    config["figures"] = {
        "rupture_rate_model": "rupture_counts",
        "dropout_model": "retention_by_repair",
        "forest_models": ["retention_by_repair"],
        "diagnostics": False,
    }
    path = work / "resources" / "second_study" / "config_codes_small.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = snakemake(work, "resources/second_study/config_codes_small.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    return work


def rater_counts(codes: pd.DataFrame, tags: set[str]) -> pd.DataFrame:
    """Units with any of ``tags`` per session and rater, for the sessions both raters coded."""
    both = codes.groupby(["pid", "visit"])["rater"].transform("nunique") == 2
    coded = codes[both]
    sessions = coded[["pid", "visit"]].drop_duplicates()
    hits = coded[coded["tag"].isin(tags)].drop_duplicates(["pid", "visit", "seg", "rater"])
    counts = hits.groupby(["pid", "visit", "rater"]).size().unstack("rater")
    counts = counts.reindex(pd.MultiIndex.from_frame(sessions)).fillna(0.0)
    return counts[["R1", "R2"]]


def test_reliability_of_the_labs_constructs_matches_an_anova_by_hand(codes_run):
    table = pd.read_csv(codes_run / "results" / "reliability" / "reliability.csv")
    codes = pd.read_csv(STUDY / "codes.csv")
    for construct, tags in [
        ("ruptures", {"WDR", "CFR"}),
        ("rupture_withdrawal", {"WDR"}),
        ("repaired", {"REP"}),
        ("sustain_talk", {"SUST"}),
    ]:
        counts = rater_counts(codes, tags)
        row = table[(table["construct"] == construct) & (table["statistic"] == "ICC(A,1)")]
        assert len(row) == 1, construct
        assert row.iloc[0]["n_targets"] == len(counts)
        assert row.iloc[0]["estimate"] == pytest.approx(icc_a1(counts.to_numpy()), abs=1e-10)
    labels = dict(zip(table["construct"], table["construct_label"], strict=False))
    assert labels["sustain_talk"] == "Sustain talk"
    gate = json.loads((codes_run / "results" / "reliability" / "gate.json").read_text())
    assert gate["assessed"] is True


def test_role_words_choose_the_analysis_coder(codes_run):
    sessions = pd.read_parquet(codes_run / "results" / "data" / "sessions.parquet")
    codes = pd.read_csv(STUDY / "codes.csv")
    main = codes[codes["duty"] == "main"]
    sustain = main[main["tag"] == "SUST"].groupby(["pid", "visit"]).size()
    raw = raw_sessions()
    came = raw[raw["came"] == 1].set_index(["pid", "visit"])
    expected = sustain.reindex(came.index).fillna(0).astype(int)
    got = sessions.set_index(["client", "session"])["sustain_talk"]
    got.index = got.index.set_levels(got.index.levels[1].astype(int), level=1)
    assert (got.loc[expected.index].astype(int) == expected).all()
    summary = (codes_run / "results" / "summary.md").read_text()
    assert "not assessed (no double-coded sessions)" not in summary
