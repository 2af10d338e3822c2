"""The influence jobs on a scratch copy of the project: one model's leave-one-therapist-out
table and figure from the workflow, equal to leave_one_out on its model folder; the default
plan runs one job per summary model; ``models: []`` and a missing key plan none."""

from __future__ import annotations

import json

import pytest
import yaml
from test_workflow import CONFIG, copy_project, snakemake

from resistance_outcomes.analysis import ModelSpec, read_model_frame
from resistance_outcomes.influence import leave_one_out
from resistance_outcomes.io import write_table

pytestmark = pytest.mark.slow


def _config(work, influence):
    path = work / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    if influence is None:
        config.pop("influence", None)
    else:
        config["influence"] = influence
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _planned(run) -> dict:
    """Job counts of a dry run's job stats."""
    counts, started = {}, False
    for line in run.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            started = True
        elif started and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif started and parts and parts[0] == "total":
            break
    return counts


def test_influence_jobs(tmp_path):
    (tmp_path / "project").mkdir()
    work = copy_project(tmp_path / "project")
    plan = snakemake(work, "-n", "all")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert _planned(plan)["influence"] == len(CONFIG["summary"]["models"])

    for off in ({"models": []}, None):
        _config(work, off)
        plan = snakemake(work, "-n", "all")
        assert plan.returncode == 0, plan.stderr[-3000:]
        assert "influence" not in _planned(plan)

    _config(work, {"group": "therapist", "models": ["repair_retention"], "top": 5})
    targets = [
        "results/models/repair_retention/influence.csv",
        "results/figures/influence/repair_retention.png",
    ]
    run = snakemake(work, *targets)
    assert run.returncode == 0, run.stderr[-3000:]
    folder = work / "results" / "models" / "repair_retention"
    log = (work / "results/logs/influence/repair_retention.log").read_text()
    assert "45 refits without one therapist" in log and "(0 failed)" in log
    assert (work / "results/figures/influence/repair_retention.pdf").stat().st_size > 0

    spec_json = json.loads((folder / "spec.json").read_text())
    frame = read_model_frame(folder / "model_frame.csv", spec_json)
    direct = leave_one_out(ModelSpec.from_dict(spec_json), frame, "therapist", adjust="holm")
    written = (folder / "influence.csv").read_bytes()
    assert write_table(direct, tmp_path / "direct.csv").read_bytes() == written

    again = snakemake(work, "-n", *targets)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    _config(work, {"models": ["no_such_model"]})
    bad = snakemake(work, "-n", "all")
    assert bad.returncode != 0
    message = bad.stdout + bad.stderr
    assert "influence.models" in message and "'no_such_model'" in message
