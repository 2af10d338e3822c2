"""The power target on a scratch copy of the project: a tiny planned-design analysis
(2 design points x 2 chunks), its outputs, power.csv byte-identical to power_simulation on
the same rows and seeds, and a second run that does nothing."""

from __future__ import annotations

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
SEED = 11


def test_power_target(tmp_path):
    (tmp_path / "project").mkdir()
    work = copy_project(tmp_path / "project")
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["power"] = {"chunk_size": 2, "seed": SEED, "analyses": {"tiny": ANALYSIS}}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

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

    # the same rows and seeds in one call of power_simulation: byte-identical power.csv
    points = pr.design_points("tiny", ANALYSIS)
    parts = []
    for _, point in points.iterrows():
        rows = pr.point_rows("tiny", ANALYSIS, point, SEED)
        table = power_simulation(
            config["models"]["rupture_frequency"]["formula"],
            rows,
            "negative_binomial",
            ANALYSIS["truth"],
            ANALYSIS["test"],
            replicates=4,
            seed=pr.point_seed(SEED, point["point"]),
        )
        table.insert(0, "therapists_per_framework", point["therapists_per_framework"])
        table.insert(0, "point", point["point"])
        parts.append(table)
    import pandas as pd

    direct = write_table(pd.concat(parts, ignore_index=True), tmp_path / "direct.csv")
    assert direct.read_bytes() == (out / "power.csv").read_bytes()
    assert "therapists per framework" in (out / "sentences.md").read_text()

    again = snakemake(work, "power")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr
