"""The parametric bootstrap in the workflow, on a scratch copy of the project: a model
entry with ``inference: {bootstrap: 20, seed: 5}`` and ``inference: {chunk_size: 8}`` runs
three chunk jobs and writes bootstrap.csv, byte-identical to one call of the package on the
same fit and seed; models without it get no bootstrap jobs; a second run does nothing."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from test_workflow import copy_project, snakemake

from resistance_outcomes import analysis
from resistance_outcomes.io import write_table
from resistance_outcomes.models.bootstrap import (
    bootstrap_intervals,
    bootstrap_parameters,
    contrast_test,
    parametric_bootstrap,
)

MODEL = "repair_retention"
TARGET = f"results/models/{MODEL}/bootstrap.csv"
pytestmark = pytest.mark.slow  # the model's upstream jobs: about 2-5 min on 2 cores


def test_bootstrap_rules(tmp_path):
    work = copy_project(tmp_path)
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["models"][MODEL]["inference"] = {"bootstrap": 20, "seed": 5}
    config["inference"] = {"chunk_size": 8}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    plan = snakemake(work, "-n", "all")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert re.search(r"^bootstrap_chunk\s+3$", plan.stdout, re.M)  # 20 = 8 + 8 + 4
    assert "Parametric bootstrap of repair_retention: replicates 16-19 of 20" in plan.stdout
    assert "rupture_frequency/bootstrap" not in plan.stdout

    run = snakemake(work, TARGET)
    assert run.returncode == 0, run.stderr[-3000:]
    folder = work / "results" / "models" / MODEL
    assert sorted(p.name for p in (folder / "bootstrap").glob("*.csv")) == [
        "chunk0.csv",
        "chunk1.csv",
        "chunk2.csv",
    ]
    # the same fit, seed and replicates in one call: byte-identical intervals
    spec_json = json.loads((folder / "spec.json").read_text())
    spec = analysis.ModelSpec.from_dict(spec_json)
    fit = analysis.fit_model(spec, analysis.read_model_frame(folder / "model_frame.csv", spec_json))
    contrasts = contrast_test(spec.contrasts)  # pairwise and the slopes of repair rate
    rows = parametric_bootstrap(fit, 20, 5, contrasts=contrasts)
    direct = bootstrap_intervals(rows, bootstrap_parameters(fit, contrasts))
    assert (
        write_table(direct, tmp_path / "direct.csv").read_bytes()
        == (folder / "bootstrap.csv").read_bytes()
    )
    assert set(fit.coefficients["term"]) <= set(direct["parameter"])
    assert (direct["replicates"] + direct["failed"] == 20).all()
    assert "repair_rate_between in cognitive" in set(direct["parameter"])
    assert "psychoanalytic - cognitive" in set(direct["parameter"])

    again = snakemake(work, TARGET)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr
