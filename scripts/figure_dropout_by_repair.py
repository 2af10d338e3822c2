"""Snakemake entry point: runs resistance_outcomes.pipeline.figure_dropout_by_repair_step."""

from resistance_outcomes.pipeline import figure_dropout_by_repair_step, run_step

run_step(figure_dropout_by_repair_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
