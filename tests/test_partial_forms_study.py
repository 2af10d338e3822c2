"""End to end: a lab that codes only some forms of resistance and some therapist responses,
under its own code names, construct names, framework names and model names.

The lab's files are made from a third of the embedded example (five therapists per
framework): its primary coder's 3RS codes, the covert and disengagement codes renamed, four
of the nine therapist responses renamed, no reliability coder, no PSQ, two frameworks. Its
codebook (tests/data/partial_forms_codebook.yaml) declares the two forms as composites of a
composite ``opposition`` and the four moves as constructs. The run must report exactly
what was coded: two forms and their eight types, four responses, nothing of the other
forms, and the rupture-level model with a window of one segment.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml
from test_workflow import EXAMPLE, ROOT, copy_project, snakemake

CODE_NAMES = {"T_EMP": "EMP", "T_RFR": "REFR", "T_GOL": "GOAL", "T_NPS": "WAIT", "RES": "RES"}
FORM_LABELS = ["Hidden opposition", "Drifting away"]
MOVES = ["move_empathy", "move_reframe", "move_goals", "move_wait"]
TARGETS = [
    "results/tables/table1.csv",
    "results/descriptives/profile.csv",
    "results/derived/rupture_segments.parquet",
    "results/models/opposition_by_form/contrasts.csv",
    "results/models/moves_and_repair/contrasts.csv",
    "results/models/moves_and_repair/spec.json",
]


def lab_code(code: str) -> str | None:
    if code[:2] in ("W_", "C_"):
        return code
    if code.startswith("CV_"):
        return "cov_" + code[3:].lower()
    if code.startswith("D_"):
        return "dis_" + code[2:].lower()
    return CODE_NAMES.get(code)


def write_lab_files(lab) -> pd.DataFrame:
    clients = pd.read_csv(EXAMPLE / "clients.csv", dtype=str)
    keep = sorted(clients["therapist_id"].unique())[::3]
    clients = clients[clients["therapist_id"].isin(keep)]
    sessions = pd.read_csv(EXAMPLE / "sessions.csv", dtype=str)
    sessions = sessions[sessions["client_id"].isin(clients["client_id"])]
    codes = pd.read_csv(EXAMPLE / "codes.csv", dtype=str)
    codes = codes[codes["client_id"].isin(clients["client_id"])]
    codes = codes[codes["coder_role"] == "primary"].drop(columns="coder_role")
    codes["code"] = codes["code"].map(lab_code)
    codes = codes[codes["code"].notna()]
    clients.rename(
        columns={
            "client_id": "pid",
            "therapist_id": "clin",
            "treatment": "tx",
            "planned_sessions": "plan",
            "end_status": "outcome",
        }  # fmt: skip
    ).drop(columns="baseline_severity").to_csv(lab / "clients.csv", index=False)
    sessions.rename(
        columns={"client_id": "pid", "session_no": "visit", "attended": "came", "minutes": "mins"}
    )[["pid", "visit", "came", "mins"]].to_csv(lab / "sessions.csv", index=False)
    codes = codes.rename(
        columns={
            "client_id": "pid",
            "session_no": "visit",
            "segment": "seg",
            "coder": "rater",
            "code": "tag",
            "value": "val",
        }  # fmt: skip
    )
    codes.to_csv(lab / "codes.csv", index=False)
    return codes


CONFIG = {
    "study": "partial_forms_lab",
    "data": {
        "clients": "lab/clients.csv",
        "sessions": "lab/sessions.csv",
        "codes": "lab/codes.csv",
    },  # fmt: skip
    "columns": {
        "clients": {
            "client": "pid",
            "therapist": "clin",
            "treatment_label": "tx",
            "planned_sessions": "plan",
            "end_status": "outcome",
        },  # fmt: skip
        "sessions": {"client": "pid", "session": "visit", "attended": "came", "minutes": "mins"},
        "codes": {
            "client": "pid",
            "session": "visit",
            "unit": "seg",
            "coder": "rater",
            "code": "tag",
            "value": "val",
        },  # fmt: skip
    },
    "end_status_values": {
        "completed": ["completed"],
        "dropout": ["dropout"],
        "referred": ["referred"],
        "ongoing": ["ongoing"],
    },  # fmt: skip
    "missing_values": [""],
    "codebook": "lab/codebook.yaml",
    "frameworks": "lab/frameworks.yaml",
    "descriptives": {"profile": "opposition"},
    "coding": {"analysis_coder": "primary", "repair_threshold": 4},
    "validation": {"mode": "strict", "identifiers": "refuse"},
    "reliability": {"gate": "warn", "thresholds": {"icc": 0.75, "kappa": 0.6}, "n_boot": 200},
    "tables": {"min_cell": 5},
    "dropout": {
        "primary": "call",
        "definitions": {"call": {"rule": "end_status", "dropout": ["dropout"]}},
    },  # fmt: skip
    "seed": 7,
    "rupture_responses": {"outcome": "repaired", "responses": MOVES, "window": 1},
    "models": {
        "opposition_by_form": {
            "data": "profile_forms",
            "formula": "profile_count ~ framework * profile_form + offset(log(minutes))"
            " + (1 | therapist/client)",
            "family": "poisson",
            "contrasts": {"by": "profile_form"},
        },
        "moves_and_repair": {
            "data": "rupture_segments",
            "formula": "repaired ~ framework * ({responses}) + (1 | therapist/client)",
            "family": "binomial",
            "contrasts": {"slopes": ["{responses}"]},
        },
    },
    "contrasts": {"adjust": "bh"},
}


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    work = copy_project(tmp_path_factory.mktemp("partial_forms"))
    lab = work / "lab"
    lab.mkdir()
    codes = write_lab_files(lab)
    shutil.copy(ROOT / "tests" / "data" / "partial_forms_codebook.yaml", lab / "codebook.yaml")
    (lab / "frameworks.yaml").write_text(
        "frameworks:\n  psychodynamic: [PDT, psychodynamic, Psychoanalytic, STPP]\n"
        "  cbt: [CBT, REBT, CT, cognitive therapy, ERP, BA, behaviour therapy, Exposure]\n"
    )
    (lab / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    run = snakemake(work, *TARGETS, "--configfile", "lab/config.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    return work, codes


def test_table1_has_the_coded_forms_and_types_only(lab_run):
    work, codes = lab_run
    table = pd.read_csv(work / "results" / "tables" / "table1.csv")
    rows = [v for v in table["variable"].unique() if "per attended session" in v]
    forms = [v for v in rows if ":" not in v and v.split(" per ")[0] in FORM_LABELS]
    assert forms == [f"{label} per attended session" for label in FORM_LABELS]
    assert not any(word in " ".join(rows) for word in ("Overt", "Covert", "Realistic", "Arguing"))
    assert sum(v.startswith("Hidden opposition per attended session:") for v in rows) == 3
    assert sum(v.startswith("Drifting away per attended session:") for v in rows) == 5
    # the mean of the clients' hidden-opposition rates, from the raw codes by hand
    sessions = pd.read_csv(work / "lab" / "sessions.csv", dtype=str)
    attended = sessions[sessions["came"] == "yes"].groupby("pid").size()
    hidden = codes[codes["tag"].str.startswith("cov_")].groupby("pid").size()
    rate = (hidden.reindex(attended.index).fillna(0) / attended).mean()
    total = table[(table["variable"] == forms[0]) & (table["statistic"] == "mean")
                  & (table["framework"] == "Total")]  # fmt: skip
    assert total["value"].iloc[0] == pytest.approx(rate, rel=1e-12)


def test_profile_and_its_model_cover_the_two_forms(lab_run):
    work, _ = lab_run
    profile = pd.read_csv(work / "results" / "descriptives" / "profile.csv")
    assert set(profile["form"].dropna()) == {"hidden_opposition", "drifting"}
    contrasts = pd.read_csv(work / "results" / "models" / "opposition_by_form" / "contrasts.csv")
    assert set(contrasts["by"]) == {"hidden_opposition", "drifting"}
    assert set(contrasts["ratio_kind"]) == {"incidence-rate ratio"}


def test_response_model_uses_the_four_moves_with_a_window_of_one(lab_run):
    work, codes = lab_run
    segments = pd.read_parquet(work / "results" / "derived" / "rupture_segments.parquet")
    assert [c for c in segments.columns if c.startswith("move_")] == MOVES
    # by hand: a rupture segment counts an empathic move in its own or the next segment
    key = ["pid", "visit"]
    codes = codes.assign(seg=codes["seg"].astype(int))
    ruptures = codes[codes["tag"].str.match(r"^(W|C)_")].drop_duplicates([*key, "seg"])
    empathy = set(map(tuple, codes[codes["tag"] == "EMP"][[*key, "seg"]].to_numpy()))
    expected = sum(
        (p, v, s) in empathy or (p, v, s + 1) in empathy
        for p, v, s in ruptures[[*key, "seg"]].itertuples(index=False)
    )
    assert len(segments) == len(ruptures)
    assert segments["move_empathy"].sum() == expected
    spec = yaml.safe_load((work / "results/models/moves_and_repair/spec.json").read_text())
    assert " + ".join(MOVES) in str(spec)
    slopes = pd.read_csv(work / "results" / "models" / "moves_and_repair" / "contrasts.csv")
    slopes = slopes[slopes["kind"] == "simple_slope"]
    assert sorted(slopes["variable"].unique()) == sorted(MOVES)
    assert set(slopes["level"]) == {"psychodynamic", "cbt"}
