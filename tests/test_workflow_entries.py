"""What a model's job takes from the configuration, in a scratch copy of the project, without
fitting anything: the entry files (rule model_entry, whose JSON the model and variant jobs
also get as their params) are made, the configuration is edited, and a dry run says which
entry jobs would be redone. Changing the number of bootstrap refits or their seed leaves
every entry file as it was (so no model or variant job reruns; the bootstrap jobs take them
as params of their own); changing what the fit uses (``inference.profile``) does not."""

from __future__ import annotations

import json

import pytest
import yaml
from test_workflow import copy_project, snakemake

from resistance_outcomes.analysis import model_job_entry

pytestmark = pytest.mark.slow  # five snakemake calls: about 1 min on 2 busy cores

MODEL = "repair_retention"
ENTRIES = [
    f"results/models/{MODEL}/entry.json",
    f"results/sensitivity/{MODEL}_gee/entry.json",  # a variant inherits the inference
    f"results/sensitivity/{MODEL}_dropout_missed_last/entry.json",
]


def _set_inference(work, inference: dict) -> None:
    path = work / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["models"][MODEL]["inference"] = inference
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _redone(plan) -> list[str]:
    """The entry files a dry run would write again."""
    assert plan.returncode == 0, plan.stderr[-3000:]
    return [e for e in ENTRIES if f"output: {e}" in plan.stdout]


def test_the_bootstrap_settings_do_not_reach_the_model_jobs(tmp_path):
    work = copy_project(tmp_path)
    _set_inference(work, {"bootstrap": 20, "seed": 5})
    made = snakemake(work, *ENTRIES)
    assert made.returncode == 0, made.stderr[-3000:]
    before = {e: (work / e).read_bytes() for e in ENTRIES}
    entry = json.loads(before[ENTRIES[0]])["entry"]
    assert "inference" not in entry and entry["formula"].startswith("dropout ~")

    # more refits, another seed: nothing for the model jobs to redo
    _set_inference(work, {"bootstrap": 1000, "seed": 6})
    assert _redone(snakemake(work, "-n", *ENTRIES)) == []
    forced = snakemake(work, *ENTRIES, "--forcerun", "model_entry")  # targets first
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert {e: (work / e).read_bytes() for e in ENTRIES} == before

    # what the model job itself uses still reruns it, and its variants
    _set_inference(work, {"profile": False, "bootstrap": 1000})
    assert _redone(snakemake(work, "-n", *ENTRIES)) == ENTRIES


def test_model_job_entry_keeps_all_but_the_bootstrap_keys():
    entry = {"data": "clients", "formula": "d ~ x + (1 | g)", "family": "binomial"}
    assert model_job_entry(entry) == entry
    assert model_job_entry({**entry, "inference": {"bootstrap": 9, "seed": 1}}) == entry
    kept = model_job_entry({**entry, "inference": {"profile": True, "seed": 1}})
    assert kept == {**entry, "inference": {"profile": True}}
    assert model_job_entry({**entry, "inference": None}) == entry
    # a malformed inference stays for the entry check to name it
    assert model_job_entry({**entry, "inference": "yes"})["inference"] == "yes"
    source = {**entry, "inference": {"bootstrap": 9}}
    model_job_entry(source)
    assert source["inference"] == {"bootstrap": 9}  # the configuration is not changed
