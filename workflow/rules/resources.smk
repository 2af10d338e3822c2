# Resources of the jobs (threads, mem_mb, runtime in minutes), what a cluster run asks the
# scheduler for (workflow/profiles/slurm; README.md, "Running on a SLURM cluster"), and
# which steps run on the submitting machine (localrules). A local run (`make run`) is not
# limited by them unless it is given --resources.
#
# Every step is single-threaded (the engine holds BLAS at one thread), so `threads: 1`.
# Memory and runtime are multiplied by the attempt: a job the scheduler killed for its
# memory or time limit is retried (`retries:` of the profile) with twice, then three times
# as much. Where the data decide (the model fits, the steps that read a whole table), the
# memory comes from the size of the job's input, read when the job is ready to run.
import errno
import math
import os
from pathlib import Path


# The small steps: tables, figures from fitted results, aggregation and the report run on
# the machine that runs Snakemake (the login node), not as cluster jobs that wait in the
# queue longer than they run. model_entry, power_summary, power and the rules defined only
# for some configurations (recovery, figure_response_odds) say so themselves.
localrules:
    vocabulary,
    table1,
    session_descriptives,
    sensitivity_table,
    figure_rupture_rate,
    figure_resistance_profile,
    figure_dropout_by_repair,
    figure_forest,
    figure_retention,
    figure_diagnostics,
    bootstrap,
    power_report,
    publication_tables,
    summary,
    provenance,
    all,


# memory of the interpreter with pandas, numpy and the package loaded is about 200-250 MB
# (benchmarks/README.md, "peak memory"): every job gets at least BASE_MEM_MB
BASE_MEM_MB = 1000
# the analysis table a model's data level is built from (analysis.data_level; the model
# job's inputs), and at most how many rows of the level one row of that table makes: the
# profile levels have one row per attended session and type (form) of the composite
PROFILE_ROWS_PER_SESSION = 10
LEVEL_TABLES = {
    "sessions": ("session_table", 1),
    "person_period": ("session_table", 1),
    "person-period": ("session_table", 1),
    "profile_long": ("session_table", PROFILE_ROWS_PER_SESSION),
    "profile_forms": ("session_table", PROFILE_ROWS_PER_SESSION),
    "clients": ("client_table", 1),
    "rupture_segments": ("rupture_segments", 1),
}
# bytes a model job holds per row of its model frame: the fit (about 0.35 KB a row
# measured on 1.2 million rows, benchmarks/README.md, case c) and the profile refits, twice
# over, and the simulated-residual diagnostics (nsim simulated responses of 8 bytes a row,
# diagnostics: nsim, twice over); a sensitivity variant has no diagnostics
MODEL_BYTES_PER_ROW = 1000
SIMULATION_BYTES_PER_ROW = 16


def attempt_scaled(value):
    """A resource callable: `value` on the first attempt, `value * attempt` on a retry."""
    return lambda wildcards, attempt: value * attempt


def input_mb(input):
    """MB of the job's input files, read from the file system (a missing one: Snakemake
    evaluates the resource again when it is made); not input.size_mb, which cannot run
    inside Snakemake's DAG and report builders and leaves an unawaited coroutine."""
    size = 0
    for path in input:
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "not made yet", path)
        size += os.path.getsize(path)
    return size / 2**20


def input_mem_mb(per_input_mb):
    """A mem_mb callable: BASE_MEM_MB plus `per_input_mb` MB per MB of the job's input
    files (a table read into pandas takes several times its size on disk), by attempt.
    """

    def mem_mb(wildcards, input, attempt):
        return attempt * (BASE_MEM_MB + math.ceil(per_input_mb * input_mb(input)))

    return mem_mb


UNREADABLE_LEVEL_ROWS = 100_000  # rows assumed when the table's footer cannot be read


def level_rows(name, input):
    """At most how many rows the model frame of model or variant `name` has: the rows of
    the analysis table its data level is built from (read from the Parquet file's footer,
    not the data), times the rows of the level one of its rows makes. The model frame is
    an output of the same job, so it cannot be read before the job runs."""
    import pyarrow.parquet as pq

    level = model_settings(name)["entry"].get("data", "sessions")
    key, per_row = LEVEL_TABLES.get(level, ("session_table", PROFILE_ROWS_PER_SESSION))
    path = Path(input[key])
    if not path.exists():  # not made yet: Snakemake evaluates this again when it is
        raise FileNotFoundError(errno.ENOENT, "not made yet", input[key])
    try:
        rows = pq.read_metadata(path).num_rows
    except Exception:  # being rewritten by another job: size the job generously
        rows = UNREADABLE_LEVEL_ROWS
    return rows * per_row


def model_mem_mb(wildcards, input, attempt):
    """mem_mb of a model or sensitivity-variant job from the rows of its data level."""
    name = wildcards.get("model") or wildcards.get("variant")
    per_row = MODEL_BYTES_PER_ROW
    if "model" in wildcards.keys():  # configured models also run the diagnostics
        per_row += SIMULATION_BYTES_PER_ROW * int(DIAGNOSTICS["nsim"])
    return attempt * (
        BASE_MEM_MB + math.ceil(level_rows(name, input) * per_row / 2**20)
    )


def model_runtime(wildcards, input, attempt):
    """runtime (minutes) of a model or variant job: 30 minutes plus one per 10,000 rows of
    its data level (a fit of 1.2 million rows takes about 8 s, its profile intervals and
    diagnostics some tens of fits), by attempt."""
    name = wildcards.get("model") or wildcards.get("variant")
    return attempt * (30 + math.ceil(level_rows(name, input) / 10_000))
