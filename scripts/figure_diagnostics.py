"""Snakemake entry point: runs resistance_outcomes.pipeline.figure_diagnostics_step."""

from resistance_outcomes.pipeline import figure_diagnostics_step, run_step

run_step(figure_diagnostics_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
