"""Snakemake entry point: runs resistance_outcomes.pipeline.table1_step."""

from resistance_outcomes.pipeline import run_step, table1_step

run_step(table1_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
