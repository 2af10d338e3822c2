"""Snakemake entry point: runs resistance_outcomes.pipeline.summary_step."""

from resistance_outcomes.pipeline import run_step, summary_step

run_step(summary_step, snakemake)  # noqa: F821 (the object Snakemake gives a script)
