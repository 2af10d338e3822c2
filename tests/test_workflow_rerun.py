"""Reruns are scoped and errors come early: the workflow's rerun decisions, by dry runs.

Editing one model's formula must rerun that model and what depends on it (its diagnostics
figure, the figures and tables that use it, the summary), never ingest, derive or the other
models; a formula naming a column its data level lacks must stop the run after ingest and
derive, before any model is fitted, naming the model, the column, the available columns
and the config file the run used.

The first test needs a finished run's records, not its results: the outputs of the whole
workflow are created empty and then recorded by ``snakemake --touch --forceall``, which
stores for every job the same metadata (input files, params, code) a real run stores;
Snakemake's rerun decision after an edit reads only those records and the files' times.
That takes seconds instead of the minute a real run takes. Scratch folders are made with
``tempfile`` (not pytest's ``tmp_path``, whose old folders other pytest sessions on the
machine may remove while these tests run).
"""

import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from test_workflow import copy_project, snakemake

pytestmark = pytest.mark.slow

EDITED = "rupture_withdrawal"  # a model with no sensitivity variant and no figure of its own


def planned_jobs(run) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    text = run.stdout + run.stderr
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        if rule:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
            jobs.add((rule.group(1), wildcards.group(1).strip() if wildcards else ""))
    return jobs


def summary_outputs(run) -> list[str]:
    """The output files a ``--summary`` lists (first column, header left out)."""
    lines = (run.stdout).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file"))
    return [line.split("\t")[0] for line in lines[start + 1 :] if line.strip()]


@pytest.fixture
def scratch():
    folder = Path(tempfile.mkdtemp(prefix="resistance-outcomes-rerun-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def recorded_run():
    folder = Path(tempfile.mkdtemp(prefix="resistance-outcomes-rerun-"))
    yield _recorded_run(copy_project(folder))
    shutil.rmtree(folder, ignore_errors=True)


def _recorded_run(work: Path) -> Path:
    summary = snakemake(work, "--summary")
    assert summary.returncode == 0, summary.stderr[-3000:]
    outputs = summary_outputs(summary)
    assert any(path.endswith("results/models/checked.json") for path in outputs)
    for path in outputs:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).touch()
    touched = snakemake(work, "--touch", "--forceall")
    assert touched.returncode == 0, touched.stderr[-3000:]
    dry = snakemake(work, "--dry-run")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    return work


def edit_formula(work: Path, model: str) -> None:
    path = work / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["models"][model]["formula"] = config["models"][model]["formula"].replace(
        "(1 | therapist/client)", "(1 | client)"
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_editing_one_model_reruns_only_that_model_and_what_uses_it(recorded_run):
    work = recorded_run
    # what depends on the model's outputs: the jobs forcing its files would rerun
    forced = snakemake(work, "--dry-run", "--forcerun", *(f"results/models/{EDITED}/fit.json",))
    assert forced.returncode == 0, forced.stderr[-3000:]
    downstream = planned_jobs(forced)
    assert ("model", f"model={EDITED}") in downstream
    original = (work / "config" / "config.yaml").read_text()
    try:
        edit_formula(work, EDITED)
        dry = snakemake(work, "--dry-run")
    finally:
        (work / "config" / "config.yaml").write_text(original)
    assert dry.returncode == 0, dry.stderr[-3000:]
    rerun = planned_jobs(dry)
    # the model itself and its dependants...
    assert ("model", f"model={EDITED}") in rerun
    assert ("figure_diagnostics", f"model={EDITED}") in rerun
    # ...upstream of it only its entry file and the check of every formula (its result is
    # an ancient input of the models, so rewriting it reruns none of them), and the
    # provenance record, which holds the whole configuration; nothing else
    entry = ("model_entry", f"folder=models, name={EDITED}")
    allowed = {entry, ("check_models", ""), ("provenance", "")}
    assert rerun - downstream <= allowed, rerun - downstream
    assert entry in rerun and ("check_models", "") in rerun
    rules = {rule for rule, _ in rerun}
    assert not rules & {"ingest", "vocabulary", "derive", "table1", "reliability"}, rules
    assert [job for job in rerun if job[0] == "model_entry"] == [entry]
    assert not {job for job in rerun if job[0] in ("model", "sensitivity_variant")} - {
        ("model", f"model={EDITED}")
    }
    assert not {job for job in rerun if job[0] == "figure_diagnostics"} - {
        ("figure_diagnostics", f"model={EDITED}")
    }


def test_a_missing_column_stops_the_run_before_any_model_naming_it(scratch):
    work = copy_project(scratch)
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["models"][EDITED]["formula"] = config["models"][EDITED]["formula"].replace(
        "session_c", "sesion_c"
    )
    (work / "lab.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.monotonic()
    run = snakemake(work, "--configfile", "lab.yaml")
    elapsed = time.monotonic() - start
    assert run.returncode != 0
    message = run.stderr
    assert f"model '{EDITED}': (data level sessions)" in message
    assert "'sesion_c'" in message and "available columns:" in message
    assert "in lab.yaml; no model was fitted" in message
    assert "Traceback" not in message
    assert not list((work / "results" / "models").glob("*/fit.json"))
    assert not list((work / "results" / "sensitivity").glob("*/fit.json"))
    assert not list((work / "results" / "logs").glob("models/*.log"))  # no model started
    assert elapsed < 120, elapsed  # ingest, derive and the check (about 40 s on 2 cores)
    log = (work / "results" / "logs" / "check_models.log").read_text()
    assert "'sesion_c'" in log
