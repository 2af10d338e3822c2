"""Snakemake entry point: runs resistance_outcomes.pipeline.figure_forest_step."""

from resistance_outcomes.pipeline import figure_forest_step, run_step

run_step(figure_forest_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
