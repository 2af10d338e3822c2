"""Snakemake entry point of rule power_summary: see pipeline.power_summary_step."""

from resistance_outcomes.pipeline import power_summary_step, run_step

run_step(power_summary_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
