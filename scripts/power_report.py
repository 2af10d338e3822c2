"""Snakemake entry point of rule power_report: see pipeline.power_report_step."""

from resistance_outcomes.pipeline import power_report_step, run_step

run_step(power_report_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
