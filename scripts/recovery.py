"""Snakemake entry point of rule recovery: see resistance_outcomes.pipeline.recovery_step."""

from resistance_outcomes.pipeline import recovery_step, run_step

run_step(recovery_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
