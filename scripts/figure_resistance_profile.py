"""Snakemake entry point: runs resistance_outcomes.pipeline.figure_resistance_profile_step."""

from resistance_outcomes.pipeline import figure_resistance_profile_step, run_step

run_step(figure_resistance_profile_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
