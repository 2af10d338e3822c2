"""The power target on a scratch copy of the project: two tiny planned-design analyses
(2 design points x 2 chunks; a session design, and a dropout hazard whose attrition comes
from the simulated events), their outputs, power.csv byte-identical to power_simulation on
the same rows and seeds, the power summary, a second run that does nothing, and
``power: in_run`` putting the analyses into the default run."""

from __future__ import annotations

import pandas as pd
import yaml
from test_workflow import copy_project, snakemake

from resistance_outcomes.io import write_table
from resistance_outcomes.power import power_simulation
from resistance_outcomes.power import report as pr

FRAMEWORKS = ["psychoanalytic", "behavioral", "cognitive"]
ANALYSIS = {
    "description": "Rupture rate, planned design",
    "model": "rupture_frequency",
    "design": {
        "shape": "session",
        "frameworks": FRAMEWORKS,
        "clients_per_therapist": 2,
        "planned_sessions": 4,
        "minutes": 50.0,
    },
    "truth": {
        "fixed": {
            "(Intercept)": -4.0,
            "frameworkbehavioral": 0.4,
            "frameworkcognitive": 0.0,
            "session_c": -0.05,
            "frameworkbehavioral:session_c": 0.0,
            "frameworkcognitive:session_c": 0.0,
        },
        "sd": {"therapist": 0.3, "therapist:client": 0.4},
        "theta": 3.0,
    },
    "test": {"pairwise": "framework"},
    "replicates": 4,
    "vary": {"therapists_per_framework": [3, 4]},
}
HAZARD = {
    "description": "Dropout hazard, planned design",
    "model": "hazard_planned",
    "design": {
        "shape": "person_period",
        "frameworks": FRAMEWORKS,
        "clients_per_therapist": 3,
        "planned_sessions": 6,
    },
    "truth": {
        "fixed": {
            "(Intercept)": -2.0,
            "log_time": -0.3,
            "frameworkbehavioral": 0.5,
            "frameworkcognitive": 0.0,
        },
        "sd": {"therapist": 0.4},
    },
    "test": ["frameworkbehavioral", "frameworkcognitive"],
    "adjust": "holm",
    "replicates": 4,
    "vary": {"therapists_per_framework": [3, 4]},
}
HAZARD_MODEL = {
    "data": "person_period",
    "formula": "event ~ log_time + framework + (1 | therapist)",
    "family": "binomial",
}
SEED = 11


def _direct(formula, family, entry, name, **options):
    """power.csv of one analysis from power_simulation on the same rows and seeds."""
    parts = []
    for _, point in pr.design_points(name, entry).iterrows():
        rows = pr.point_rows(name, entry, point, SEED)
        table = power_simulation(
            formula,
            rows,
            family,
            entry["truth"],
            entry["test"],
            replicates=entry["replicates"],
            seed=pr.point_seed(SEED, point["point"]),
            **options,
        )
        table.insert(0, "therapists_per_framework", point["therapists_per_framework"])
        table.insert(0, "point", point["point"])
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def _without_effect(path, scratch) -> bytes:
    """power.csv without its label column (``effect``), rewritten as the step writes it."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return write_table(table.drop(columns="effect"), scratch).read_bytes()


def test_power_target(tmp_path):
    (tmp_path / "project").mkdir()
    work = copy_project(tmp_path / "project")
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["models"]["hazard_planned"] = HAZARD_MODEL
    config["power"] = {
        "chunk_size": 2,
        "seed": SEED,
        "analyses": {"tiny": ANALYSIS, "hazard": HAZARD},
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = snakemake(work, "-n", "all")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "power_chunk" not in plan.stdout  # not part of the default run

    run = snakemake(work, "power")
    assert run.returncode == 0, run.stderr[-3000:]
    out = work / "results" / "power" / "tiny"
    for name in [
        "power.csv",
        "power_curve.pdf",
        "power_curve.png",
        "power_table.csv",
        "power_table.md",
        "sentences.md",
    ]:
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "chunks").glob("*.csv"))) == 4  # 2 points x 2 chunks
    chunk_log = (work / "results/logs/power/tiny/point0_chunk0.log").read_text()
    assert "2 fits" in chunk_log and "first fit" in chunk_log

    assert "Power analysis tiny, design point 0: replicates 0-1 of 4" in run.stdout + run.stderr
    assert "fits of the analysis take about" in run.stderr

    # the same rows and seeds in one call of power_simulation: byte-identical power.csv
    formula = config["models"]["rupture_frequency"]["formula"]
    direct = _direct(formula, "negative_binomial", ANALYSIS, "tiny")
    produced = _without_effect(out / "power.csv", tmp_path / "tiny.csv")
    assert write_table(direct, tmp_path / "direct.csv").read_bytes() == produced
    assert "therapists per framework" in (out / "sentences.md").read_text()
    # the hazard: each replicate fitted to the rows up to each client's first event,
    # Holm-adjusted within the replicate
    hazard = _direct(
        HAZARD_MODEL["formula"], "binomial", HAZARD, "hazard", attrition=True, adjust="holm"
    )
    produced = _without_effect(work / "results/power/hazard/power.csv", tmp_path / "h.csv")
    assert write_table(hazard, tmp_path / "hazard.csv").read_bytes() == produced
    labels = pd.read_csv(work / "results/power/hazard/power.csv")["effect"]
    assert labels.tolist()[:2] == ["Behavioral - Psychoanalytic", "Cognitive - Psychoanalytic"]
    unadjusted = _direct(HAZARD_MODEL["formula"], "binomial", HAZARD, "hazard", attrition=True)
    assert not unadjusted["mean_estimate"].isna().any()
    table_md = (work / "results/power/hazard/power_table.md").read_text()
    assert "Holm-adjusted within each replicate" in table_md
    summary = (work / "results/power/summary.md").read_text()
    assert "### Rupture rate, planned design" in summary
    assert "### Dropout hazard, planned design" in summary
    assert "a stated truth; 4 replicates at each of 2 design points" in summary
    assert "power to detect the difference between behavioral and psychoanalytic" in summary
    assert "not by the default run" in summary

    again = snakemake(work, "power")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr

    # power: in_run puts the analyses into the default run and its summary
    config["power"]["in_run"] = True
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = snakemake(work, "-n", "all")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "power_summary" in plan.stdout and "summary" in plan.stdout
