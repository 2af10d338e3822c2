"""Snakemake entry point: runs resistance_outcomes.pipeline.figure_rupture_rate_step."""

from resistance_outcomes.pipeline import figure_rupture_rate_step, run_step

run_step(figure_rupture_rate_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
