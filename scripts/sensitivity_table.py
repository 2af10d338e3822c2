"""Snakemake entry point of rule sensitivity_table: see
resistance_outcomes.pipeline.sensitivity_table_step."""

from resistance_outcomes.pipeline import run_step, sensitivity_table_step

run_step(sensitivity_table_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
