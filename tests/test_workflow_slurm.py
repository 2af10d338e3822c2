"""The workflow through a real SLURM scheduler (workflow/profiles/slurm and the executor
plugin): the example's ingest-to-model chain for one model and a small power analysis
(2 design points x 2 chunks of 2 replicates, two chunks to a SLURM job) on a scratch copy.
Checks (a) that the jobs went through sbatch (each has its SLURM job id, its SLURM log and
its accounting record), (b) that every result is byte-identical to a local run of the same
targets, and (c) that a job SLURM killed at its time limit is reported as such and retried.

Marked ``slurm``: skipped, with the reason, where ``sbatch`` is not installed, the
cluster is not up or the executor plugin is missing. As root on Debian,
``tests/slurm/start-local-slurm.sh`` installs and starts a single-node SLURM (with the
account and partition ``local`` used here; SLURM_TEST_ACCOUNT and SLURM_TEST_PARTITION
name others) and ``.ci/run`` does so before the suite. About 5-7 minutes on 2 cores."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_workflow import BIN, copy_project

ACCOUNT = os.environ.get("SLURM_TEST_ACCOUNT", "local")
PARTITION = os.environ.get("SLURM_TEST_PARTITION", "local")
START = "tests/slurm/start-local-slurm.sh"
MODEL = "rupture_frequency"
TARGETS = [f"results/models/{MODEL}/fit.json", "power"]
POWER = {
    "chunk_size": 2,
    "seed": 11,
    "analyses": {
        "tiny": {
            "description": "Rupture rate, the example's design",
            "model": MODEL,
            "truth": {"from": f"results/models/{MODEL}"},
            "test": {"pairwise": "framework"},
            "replicates": 4,
            "vary": {"therapists_per_framework": [3, 4]},
        }
    },
}
# the first attempt of this chunk outlives its one-minute limit (the scratch copy's step
# script sleeps first, once: a flag file marks the first attempt); SLURM ends that job at
# its limit, Snakemake retries it and the retry finishes
SLOW_CHUNK = {"analysis": "tiny", "point": "0", "chunk": "0"}
SLOW_STEP = f"""import time
from pathlib import Path

if dict(snakemake.wildcards) == {SLOW_CHUNK!r}:  # noqa: F821
    flag = Path("slow-chunk-first-attempt")
    if not flag.exists():
        flag.touch()
        time.sleep(180)
"""
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _not_ready() -> str | None:
    """Why the SLURM test cannot run here, or None."""
    if shutil.which("sbatch") is None:
        return f"sbatch is not installed (no SLURM here; as root on Debian: {START})"
    try:
        state = subprocess.run(
            ["sinfo", "-h", "-p", PARTITION, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return f"the SLURM controller does not answer (start it: {START})"
    if state.returncode != 0 or not re.search(r"^(idle|mixed|allocated)", state.stdout, re.M):
        reason = (state.stderr or state.stdout).strip()[:200] or "no node up"
        return f"SLURM partition {PARTITION!r} is not up ({reason}; start it: {START})"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "the SLURM executor plugin is not installed: pip install -e '.[slurm]'"
    return None


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(_not_ready() is not None, reason=str(_not_ready())),
]


def _project(dest: Path, slow: bool = False) -> Path:
    """A scratch copy with the small power analysis, its SLURM profile set to the test
    cluster's account and partition (the two lines a researcher sets), and, if `slow`,
    the power step's script slowed down on the first attempt of SLOW_CHUNK."""
    dest.mkdir()
    work = copy_project(dest)
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["power"] = POWER
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    profile = work / "workflow" / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    text = re.sub(r"slurm_account: \S+  # SET", f"slurm_account: {ACCOUNT}", text)
    text = re.sub(r"slurm_partition: \S+  # SET", f"slurm_partition: {PARTITION}", text)
    assert text.count(ACCOUNT) and "# SET" not in text
    profile.write_text(text)
    if slow:
        script = work / "scripts" / "power_chunk.py"
        script.write_text(SLOW_STEP + script.read_text())
    return work


def _results(work: Path) -> dict[str, bytes]:
    """Every file under results/ but the step logs (which name the run's paths)."""
    root = work / "results"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "logs"
    }


def _sacct(job_ids: list[str]) -> dict[str, str]:
    """{SLURM job id: state} from the accounting database."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,State", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.split() if "|" in line)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    cluster = _project(root / "cluster", slow=True)
    cmd = [
        str(BIN / "snakemake"),
        "--workflow-profile",
        "workflow/profiles/slurm",
        *TARGETS,
        # two chunks to a SLURM job; one minute for a power job, so that the slow chunk's
        # first attempt ends at its limit; status checks every few seconds
        "--group-components",
        "power_chunks=2",
        "--set-resources",
        "power_chunk:runtime=1",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--seconds-between-status-checks",
        "5",
    ]
    # the local run of the same targets on one core, meanwhile: the SLURM jobs mostly wait
    # (its output to files: a full pipe would stop it)
    local_work = _project(root / "local")
    local_cmd = [str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/default"]
    out_path, err_path = root / "local.out", root / "local.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        local_run = subprocess.Popen(
            [*local_cmd, "--cores", "1", *TARGETS], cwd=local_work, stdout=out, stderr=err
        )
        slurm = subprocess.run(cmd, cwd=cluster, capture_output=True, text=True, timeout=1200)
        local_run.wait(timeout=600)
    local = subprocess.CompletedProcess(
        local_run.args, local_run.returncode, out_path.read_text(), err_path.read_text()
    )
    return cluster, slurm, local_work, local


def test_jobs_went_through_sbatch(runs):
    cluster, slurm, _, _ = runs
    assert slurm.returncode == 0, slurm.stderr[-4000:]
    submitted = SUBMITTED.findall(slurm.stdout + slurm.stderr)
    logs = {job_id: Path(path) for job_id, path in submitted}
    # .snakemake/slurm_logs/rule_<rule>[/<wildcards>]/<id>.log, group_<group>_<rules>/<id>.log
    folders = [p.relative_to(cluster / ".snakemake/slurm_logs").parts[0] for p in logs.values()]
    # the chain to the model ran as SLURM jobs, one each; the small steps on this machine
    for rule in ["ingest", "derive", "reliability", "rupture_segments", "check_models", "model"]:
        assert folders.count(f"rule_{rule}") == 1, (rule, folders)
    assert not [f for f in folders if "vocabulary" in f or "report" in f or "entry" in f]
    # 4 power chunks, two to a SLURM job: 2 jobs, and the retry of the one that timed out
    assert folders.count("group_power_chunks_power_chunk") == 3, folders
    for job_id, path in logs.items():
        assert path.name == f"{job_id}.log" and path.stat().st_size > 0, path
    # every job id is in SLURM's accounting, and all but the timed-out one completed
    states = _sacct(list(logs))
    assert sorted(states) == sorted(logs)
    assert sorted(states.values()) == ["COMPLETED"] * (len(logs) - 1) + ["TIMEOUT"], states
    model_log = next(p for p in logs.values() if "rule_model" in str(p)).read_text()
    assert f"wildcards: model={MODEL}" in model_log


def test_results_identical_to_a_local_run(runs):
    cluster, slurm, local_work, local = runs
    assert slurm.returncode == 0, slurm.stderr[-4000:]
    assert local.returncode == 0, local.stderr[-4000:]
    on_cluster, here = _results(cluster), _results(local_work)
    assert sorted(on_cluster) == sorted(here)
    assert f"models/{MODEL}/model_frame.csv" in here and "power/tiny/power.csv" in here
    assert len([p for p in here if p.startswith("power/tiny/chunks/")]) == 4
    differ = [p for p in here if on_cluster[p] != here[p]]
    assert not differ, differ


def test_job_over_its_time_limit_is_reported_and_retried(runs):
    cluster, slurm, _, _ = runs
    assert slurm.returncode == 0, slurm.stderr[-4000:]
    log = slurm.stdout + slurm.stderr
    logs = dict(SUBMITTED.findall(log))
    states = _sacct(list(logs))
    [timed_out] = [job_id for job_id, state in states.items() if state == "TIMEOUT"]
    # the run's error names that job's SLURM log, which says why; then the retry. (For a
    # group job Snakemake prints no SLURM state; a single job's error says "SLURM status
    # is: 'TIMEOUT'".)
    error = log[log.index("Error in group power_chunks") :]
    assert error.index(logs[timed_out]) < error.index("Trying to restart job")
    assert "CANCELLED AT" in (slurm_log := Path(logs[timed_out]).read_text())
    assert "DUE TO TIME LIMIT" in slurm_log
    # the retry had twice the memory of the first attempt (attempt-scaled resources)
    retried = [job_id for job_id, path in logs.items() if "power_chunks" in path][-1]
    mem = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,ReqMem", "-j", f"{timed_out},{retried}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    first, second = (int(re.sub(r"\D", "", line.split("|")[1])) for line in mem)
    assert second == 2 * first, mem
    assert (cluster / "results/power/tiny/chunks/point0_chunk0.csv").stat().st_size > 0
