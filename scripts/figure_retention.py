"""Snakemake entry point: runs resistance_outcomes.pipeline.figure_retention_step."""

from resistance_outcomes.pipeline import figure_retention_step, run_step

run_step(figure_retention_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
